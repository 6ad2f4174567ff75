/*
 * The transport relay: how a forked child of a process that started nng
 * reaches the mesh (docs/pkcs11.md "Threads and fork", docs/PROTOCOL.md
 * "Relay frames").
 *
 * nng 1.5 refuses to start in a forked child (its pthread_atfork child
 * handler marks the library forked for good), so such a child spawns a
 * helper, keymesh-p11-relay, with posix_spawn: a fresh exec, where nng
 * works.  The two talk over a socketpair in length-prefixed frames; the
 * helper opens the mesh from the same client config and makes each call
 * with the ordinary signed-envelope client (km_net_call_*), and the child
 * gets a km_net_client whose calls go through the helper.  Everything
 * above km_net_client (login, view refresh, the quorum's fan-out, hedging,
 * combining and verification) runs unchanged in the child.
 *
 * Frames (payload after a uint32 length, at most KM_RELAY_FRAME_MAX):
 *   byte 1 REQUEST  uint32 id, byte channel, byte node, uint32 timeout_ms,
 *                   string body                       (module -> helper)
 *   byte 2 REPLY    uint32 id, uint32 code, string peer, string body
 *   byte 3 STATUS   uint32 connected[2] (bit i: node i)  (helper -> module)
 *   byte 4 HELLO    uint32 version, uint32 nodes        (helper -> module)
 */
#ifndef KM_NET_RELAY_H
#define KM_NET_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/net.h"
#include "util/buf.h"
#include "util/util.h"

#define KM_RELAY_VERSION 1u
/* channel 0: the client identity ([tls]); 1: the admin identity */
#define KM_RELAY_CHANNELS  2u
#define KM_RELAY_NODES_MAX 32u
/* the largest frame payload: a request with a largest body */
#define KM_RELAY_FRAME_MAX (KM_NET_BODY_MAX + 64u)
/* key generation waits up to 30 min (KM_KEYGEN_TIMEOUT_MS) */
#define KM_RELAY_TIMEOUT_MAX_MS 3600000u
/* calls a helper keeps in flight at once (more: KM_ERR_BUSY) */
#define KM_RELAY_INFLIGHT_MAX 1024u

enum {
	KM_RELAY_REQUEST = 1,
	KM_RELAY_REPLY = 2,
	KM_RELAY_STATUS = 3,
	KM_RELAY_HELLO = 4,
};

/* One decoded frame; body points into the decoded bytes. */
typedef struct km_relay_frame {
	uint8_t type;
	uint32_t id;
	uint8_t channel, node;
	uint32_t timeout_ms;
	int code; /* REPLY: 0 or a KM_ERR_* (negative) */
	char peer[KM_NAME_MAX + 1];
	uint32_t connected[KM_RELAY_CHANNELS];
	uint32_t version, nodes;
	const uint8_t *body;
	size_t body_len;
} km_relay_frame;

/**
 * km_relay_frame_encode:
 * Appends @f as one frame (its uint32 length, then the payload) to @out.
 *
 * Returns: 0, KM_ERR_INVALID_ARG (a field out of range), KM_ERR_ALLOC.
 */
int km_relay_frame_encode(km_buf *out, const km_relay_frame *f);

/**
 * km_relay_frame_decode:
 * @p, @len: one frame's payload (without the length prefix)
 *
 * Strict: a known type, every field in range, no trailing bytes.
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_TOO_LARGE, KM_ERR_BAD_VERSION.
 */
int km_relay_frame_decode(const uint8_t *p, size_t len, km_relay_frame *f);

/* A frame reader over a stream socket: bounded, never blocks. */
typedef struct km_relay_rx {
	uint8_t *buf;
	size_t len, cap;
	size_t used; /* bytes of the frame handed out last */
} km_relay_rx;

void km_relay_rx_init(km_relay_rx *rx);
/* wipes what it held (request bodies may carry a PIN) */
void km_relay_rx_free(km_relay_rx *rx);

/**
 * km_relay_rx_fill: read what @fd has (one read).
 *
 * Returns: 0, KM_ERR_CLOSED (end of stream), KM_ERR_IO.
 */
int km_relay_rx_fill(km_relay_rx *rx, int fd);

/**
 * km_relay_rx_next: the next whole frame, decoded (valid until the next
 * call).
 *
 * Returns: 0, KM_ERR_NOT_FOUND (need more bytes), or the decoder's error
 * for a bad frame (the stream is then unusable).
 */
int km_relay_rx_next(km_relay_rx *rx, km_relay_frame *f);

/**
 * km_relay_send: write all of @data to @fd (MSG_NOSIGNAL: a dead peer is
 * KM_ERR_CONN, never SIGPIPE).
 */
int km_relay_send(int fd, const void *data, size_t len);

/* ---- the module side ---- */

typedef struct km_net_relay km_net_relay;

/**
 * km_net_relay_start:
 * @helper: the helper's path (NULL: km_net_relay_helper_path())
 * @conf_path: the client config the helper opens
 * @out: receives the running relay
 * @err: one line naming what went wrong
 *
 * Makes a socketpair, spawns the helper with posix_spawn (a fresh exec,
 * default signal handling, an empty signal mask, only the socket as fd 3
 * besides stdin/stdout/stderr), waits for its HELLO and starts the reader
 * thread.  The helper exits when the socket closes.
 *
 * Returns: 0, KM_ERR_NOT_FOUND (no helper), KM_ERR_CONN (it did not start),
 * KM_ERR_IO, KM_ERR_ALLOC.
 */
int km_net_relay_start(const char *helper, const char *conf_path,
    km_net_relay **out, char *err, size_t errlen);

/**
 * km_net_relay_helper_path:
 * $KEYMESH_RELAY (secure_getenv) if set, else the configure-time path
 * (pkglibexecdir/keymesh-p11-relay).
 */
const char *km_net_relay_helper_path(void);

/**
 * km_net_relay_client_open:
 * A km_net_client whose calls go through @r to node @node of channel
 * @channel (0: client identity, 1: admin identity).  @creds (a reference
 * is taken) is only kept for km_mesh_creds() users; nothing here signs.
 */
int km_net_relay_client_open(km_net_relay *r, km_net_creds *creds,
    unsigned channel, unsigned node, const char *peer_name,
    km_net_client **out);

/** km_net_relay_pid: the helper's pid (for tests and logs). */
pid_t km_net_relay_pid(const km_net_relay *r);

/**
 * km_net_relay_stop:
 * Close the socket, join the reader (outstanding calls fail with
 * KM_ERR_CONN), reap the helper with waitpid() on its pid only (SIGKILL
 * after 2 s), free.  Close every client of @r first.
 */
void km_net_relay_stop(km_net_relay *r);

#endif /* KM_NET_RELAY_H */
