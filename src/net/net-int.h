/*
 * Internals of the transport client shared by net.c (the in-process nng
 * path) and relay.c (the relay path a forked PKCS#11 child uses, see
 * docs/pkcs11.md "Threads and fork").  Not for use outside src/net/.
 */
#ifndef KM_NET_NET_INT_H
#define KM_NET_NET_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <openssl/evp.h>

#include "net/envelope.h"
#include "net/net.h"
#include "net/tls.h"

enum { KM_CALL_IDLE, KM_CALL_SENDING, KM_CALL_RECEIVING, KM_CALL_DONE };

struct km_net_relay;

struct km_net_call {
	struct km_net_client *cl;
	nng_ctx ctx;
	nng_aio *aio;  /* asynchronous calls: completes into km_net_call_cb */
	nng_aio *saio; /* km_net_client_call: waited on by the caller */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state;
	bool cancelled;
	uint64_t seq;      /* calls started */
	uint64_t seq_done; /* calls whose callback has returned */
	int result;
	uint64_t deadline_ns;
	uint8_t nonce[KM_ENV_NONCE_LEN];
	km_buf env;
	km_buf reply;
	/*
	 * The verified reply envelope of the last call that succeeded
	 * (asynchronous path only): nng's message is kept instead of freed,
	 * so km_net_call_envelopes() can copy it when asked and the hot path
	 * pays nothing.  Freed when the call starts again or is freed.
	 */
	nng_msg *rmsg;
	km_identity peer;
	EVP_MD_CTX *md;
	km_net_done done;
	void *arg;
	struct km_net_call *next_free;
	/* relay path (relay.c), under the relay's lock */
	uint32_t relay_id;    /* 0: not in flight through the relay */
	bool relay_cancelled; /* to be finished by the reader thread */
	struct km_net_call *relay_next;
};

struct km_net_client {
	km_net_creds *creds;
	km_tls_hook *hook;
	nng_socket sock;
	bool sock_open;
	nng_dialer dialer;
	char peer_name[KM_NAME_MAX + 1];
	km_net_client_opts o;
	km_verifier *ver;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int npipes;
	km_net_call *pool; /* idle calls for km_net_client_call */
	/* relay path: set for a client made by km_net_relay_client_open() */
	struct km_net_relay *relay;
	uint8_t relay_chan, relay_node;
};

/* net.c: complete a call; called with call->mu held, releases it. */
void km_net_call_finish(km_net_call *call, int r);

/* relay.c: the relay side of the km_net_client/km_net_call API. */
int km_net_relay_call_start(
    km_net_call *call, const void *req, size_t req_len, int timeout_ms);
void km_net_relay_call_cancel(km_net_call *call);
bool km_net_relay_connected(km_net_client *c);
int km_net_relay_wait_connected(km_net_client *c, int timeout_ms);
void km_net_relay_client_closed(km_net_client *c);

#endif /* KM_NET_NET_INT_H */
