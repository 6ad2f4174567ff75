/*
 * keymesh transport: nng req/rep over tls+tcp:// with keymesh's OpenSSL
 * TLS 1.3 engine, and a signed envelope around every request and reply.
 *
 * What is checked (docs/transport.md has the details and the byte format):
 *   - every connection: TLS 1.3 only, both sides present a certificate of
 *     the mesh CA that is not on the CRL, and the client checks that the
 *     server's DNS SAN is the node it meant to reach;
 *   - every request: the sender's certificate (CA + CRL, cached by hash and
 *     re-checked after a CRL update), its ECDSA signature over the whole
 *     envelope, a timestamp within the window and a nonce never seen in it;
 *     the handler is then given the sender's verified identity;
 *   - every reply: signed by the node dialed, echoing the request's nonce.
 *
 * Errors are KM_ERR_*: KM_ERR_TIMEOUT (no answer in time), KM_ERR_CONN (no
 * connection to the peer), KM_ERR_TLS/KM_ERR_AUTH/KM_ERR_REVOKED (the
 * connection or the reply was refused), and whatever the server's handler
 * or envelope check returned, carried back in an error envelope.
 *
 * All functions are thread-safe unless noted.
 */
#ifndef KM_NET_NET_H
#define KM_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"
#include "util/buf.h"

/* Default and largest request/reply body. */
#define KM_NET_BODY_DEFAULT      (256u << 10)
#define KM_NET_BODY_MAX          (4u << 20)
#define KM_NET_WINDOW_DEFAULT_MS 30000u
#define KM_NET_REPLAY_DEFAULT    (1u << 17)

/**
 * km_net_init:
 *
 * Registers keymesh's OpenSSL engine with nng.  Idempotent and thread-safe;
 * every other km_net_* function calls it, and it registers the engine again
 * if an nng_fini() has put nng's own back.
 *
 * Returns: 0 or KM_ERR_CRYPTO / KM_ERR_NOT_SUPPORTED.
 */
int km_net_init(void);

/**
 * km_net_work_enter:
 * For a library's own background threads (the PKCS#11 module's view
 * refresher and evidence reporter): brackets a piece of work that calls
 * OpenSSL or this transport.  Returns false once the process has begun
 * to exit (an atexit handler registered after OpenSSL's, the same one
 * that guards the TLS engine's calls from nng's threads): the thread must
 * then stop without touching either.  On true, call km_net_work_leave()
 * after the work; exit() waits for work in progress.
 */
bool km_net_work_enter(void);
void km_net_work_leave(void);

/** km_net_engine_name: the TLS engine nng currently uses. */
const char *km_net_engine_name(void);

/* ---- credentials ------------------------------------------------------- */

typedef struct km_net_creds km_net_creds;

/**
 * km_net_creds_new:
 * @ca_pem: the mesh CA certificate(s)
 * @crl_pem: the CA's CRL (may be NULL: no revocation check)
 * @cert_pem, @key_pem: this process's certificate and private key (P-256)
 * @out: receives the credentials (reference-counted)
 *
 * Returns: 0, KM_ERR_BAD_FORMAT (unparsable PEM), KM_ERR_AUTH (own
 * certificate not from this CA, or revoked), KM_ERR_INVALID_ARG (key does
 * not match), KM_ERR_ALLOC.
 */
int km_net_creds_new(const char *ca_pem, const char *crl_pem,
    const char *cert_pem, const char *key_pem, km_net_creds **out);

/**
 * km_net_creds_load:
 * @ca_dir: a CA directory (see pki.h)
 * @name: the issued name whose certs/NAME.crt and private/NAME.key to use
 *
 * Convenience for tools and tests that sit next to the CA directory.
 */
int km_net_creds_load(
    const char *ca_dir, const char *name, km_net_creds **out);

/**
 * km_net_creds_set_crl:
 * @crl_pem: the new CRL
 *
 * Replaces the CRL at run time: new connections are checked against it at
 * once, and every server and client using these credentials re-checks each
 * sender's certificate on its next envelope.
 */
int km_net_creds_set_crl(km_net_creds *c, const char *crl_pem);

/** km_net_creds_identity: our own verified identity. */
const km_identity *km_net_creds_identity(const km_net_creds *c);

void km_net_creds_ref(km_net_creds *c);
/** km_net_creds_free: drop a reference (NULL is fine). */
void km_net_creds_free(km_net_creds *c);

/* ---- server ------------------------------------------------------------ */

/**
 * km_net_handler:
 * @arg: the server's handler argument
 * @peer: the verified sender of this request
 * @req, @req_len: the request body
 * @reply: an empty buffer for the reply body
 *
 * Runs on one of the server's worker threads (never on an nng thread), up to
 * @workers at once.  May block (an RSA partial takes ~2 ms).
 *
 * Returns: 0 to send @reply, or a negative KM_ERR_* to send an error
 * envelope with that code instead.
 */
typedef int (*km_net_handler)(void *arg, const km_identity *peer,
    const uint8_t *req, size_t req_len, km_buf *reply);

typedef struct km_net_server_opts {
	unsigned workers;   /* parallel handlers (0: 4) */
	size_t body_max;    /* largest request body (0: KM_NET_BODY_DEFAULT) */
	uint32_t window_ms; /* timestamp window, +/- (0: 30 s) */
	uint32_t replay_max; /* nonces remembered (0: KM_NET_REPLAY_DEFAULT) */
	km_role peer_role;   /* role a sender must have (KM_ROLE_NONE: any) */
} km_net_server_opts;

typedef struct km_net_server km_net_server;

/**
 * km_net_server_start:
 * @creds: our credentials (a reference is taken)
 * @url: "tls+tcp://HOST:PORT" (port 0 picks a free port)
 * @opts: may be NULL for the defaults
 * @handler, @arg: called for each verified request
 * @out: receives the running server
 *
 * Returns: 0, KM_ERR_BUSY (address in use), KM_ERR_INVALID_ARG (bad URL),
 * KM_ERR_ALLOC, ...
 */
int km_net_server_start(km_net_creds *creds, const char *url,
    const km_net_server_opts *opts, km_net_handler handler, void *arg,
    km_net_server **out);

/** km_net_server_port: the TCP port actually bound. */
int km_net_server_port(km_net_server *s, int *port);

/** km_net_server_url: "tls+tcp://HOST:PORT" with the bound port. */
int km_net_server_url(km_net_server *s, char *out, size_t outlen);

/** km_net_server_refused: envelopes refused so far (for tests/status). */
uint64_t km_net_server_refused(km_net_server *s);

/** km_net_server_stop: close, wait for running handlers, free. */
void km_net_server_stop(km_net_server *s);

/* ---- client ------------------------------------------------------------ */

typedef struct km_net_client_opts {
	size_t body_max;      /* largest reply body (0: KM_NET_BODY_DEFAULT) */
	km_role peer_role;    /* role the server must have (0: node) */
	int reconnect_min_ms; /* (0: 50) */
	int reconnect_max_ms; /* (0: 2000) */
} km_net_client_opts;

typedef struct km_net_client km_net_client;

/**
 * km_net_client_open:
 * @creds: our credentials (a reference is taken)
 * @url: the server's "tls+tcp://HOST:PORT"
 * @peer_name: the node name the server's certificate must carry
 * @opts: may be NULL
 * @out: receives the client
 *
 * Starts dialing in the background and keeps the connection up (nng
 * reconnects); a call made while it is down waits for it until its timeout.
 */
int km_net_client_open(km_net_creds *creds, const char *url,
    const char *peer_name, const km_net_client_opts *opts,
    km_net_client **out);

/** km_net_client_connected: true while a verified connection is up. */
bool km_net_client_connected(km_net_client *c);

/**
 * km_net_client_wait_connected: wait up to @timeout_ms for a connection.
 *
 * Returns: 0, or the reason the handshakes failed (KM_ERR_TLS, KM_ERR_AUTH,
 * KM_ERR_REVOKED) or KM_ERR_CONN / KM_ERR_TIMEOUT.
 */
int km_net_client_wait_connected(km_net_client *c, int timeout_ms);

/* What the connection negotiated (for status output and the demo). */
typedef struct km_net_tls_info {
	char version[16];
	char cipher[64];
	uint64_t handshake_us;
	uint64_t handshakes_ok;
	uint64_t handshakes_bad;
	int last_error;
	char last_reason[128];
} km_net_tls_info;

int km_net_client_tls_info(km_net_client *c, km_net_tls_info *info);

/**
 * km_net_client_call:
 * @req, @req_len: the request body
 * @timeout_ms: for the whole round trip
 * @reply: receives the reply body (reset first)
 * @peer: receives the replying node's identity (may be NULL); also set
 * for a verified error envelope, zeroed when no verified reply came
 *
 * Runs in the caller's thread (no callback hops).
 *
 * Returns: 0, the server's KM_ERR_* from an error envelope, KM_ERR_TIMEOUT,
 * KM_ERR_CONN or the handshake's refusal (KM_ERR_AUTH, KM_ERR_REVOKED,
 * KM_ERR_TLS) when no connection came up in time, KM_ERR_VERIFY/KM_ERR_AUTH
 * (reply not signed by the node dialed), KM_ERR_TOO_LARGE.
 */
int km_net_client_call(km_net_client *c, const void *req, size_t req_len,
    int timeout_ms, km_buf *reply, km_identity *peer);

/** km_net_client_close: close (free every call first). */
void km_net_client_close(km_net_client *c);

/* ---- asynchronous calls ------------------------------------------------ */

typedef struct km_net_call km_net_call;

/**
 * km_net_done:
 * Called once per started call with its result (0 or KM_ERR_*; a cancelled
 * call gets KM_ERR_CLOSED).  Runs on an nng thread: it must not block, must
 * not free @call, and may start @call again.
 */
typedef void (*km_net_done)(km_net_call *call, int r, void *arg);

/** km_net_call_new: a reusable call slot on @c (one request at a time). */
int km_net_call_new(km_net_client *c, km_net_call **out);

/**
 * km_net_call_start: send @req; @done (may be NULL) runs on completion.
 *
 * Returns: 0, or KM_ERR_BUSY when this call is still in flight; on an
 * error @done is not called.
 */
int km_net_call_start(km_net_call *call, const void *req, size_t req_len,
    int timeout_ms, km_net_done done, void *arg);

/** km_net_call_cancel: stop waiting; @done gets KM_ERR_CLOSED. */
void km_net_call_cancel(km_net_call *call);

/** km_net_call_wait: wait for completion (and its callback); the result. */
int km_net_call_wait(km_net_call *call);

/**
 * km_net_call_reply: the reply of a completed call: body and the replying
 * node (valid until the call is started again or freed).
 */
int km_net_call_reply(km_net_call *call, const uint8_t **body, size_t *len,
    const km_identity **peer);

/**
 * km_net_call_envelopes:
 * @call: a call that completed with 0
 * @req_env: receives the signed request envelope exactly as sent (reset
 *   first)
 * @rep_env: receives the signed reply envelope exactly as received and
 *   verified (reset first)
 *
 * The two signed envelopes of the last call: together they prove what
 * this client asked and what the node answered (docs/evidence.md).  The
 * bytes are kept with the call at no cost on the hot path and copied only
 * here; they are replaced when the call is started again.
 *
 * Returns: 0, KM_ERR_STATE (the call did not complete with 0 or is in
 * flight), KM_ERR_NOT_SUPPORTED (a relay client, made by
 * km_net_relay_client_open(): the helper process seals and checks the
 * envelopes and keeps none), KM_ERR_ALLOC.
 */
int km_net_call_envelopes(km_net_call *call, km_buf *req_env, km_buf *rep_env);

/** km_net_call_free: cancel if running, wait, free (NULL is fine). */
void km_net_call_free(km_net_call *call);

#endif /* KM_NET_NET_H */
