/*
 * keymesh transport: credentials, the request server with worker threads,
 * and the client with blocking and asynchronous calls.
 *
 * Wire: nng req/rep (one context per worker or call) over tls+tcp:// with
 * the OpenSSL engine of tls.c; each message is a signed envelope
 * (envelope.c, docs/transport.md).
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "net/envelope.h"
#include "net/net-int.h"
#include "net/net.h"
#include "net/relay.h"
#include "net/tls.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

#define KM_NET_PEM_MAX (64u << 10)

int
km_net_init(void)
{
	return km_tls_register();
}

const char *
km_net_engine_name(void)
{
	(void)km_net_init();
	return nng_tls_engine_name();
}

/* The nng receive limit: past it nng drops the connection, so it sits well
 * above the envelope limit, which gets a proper error reply. */
static size_t
km_net_hard_limit(size_t body_max)
{
	return 2
	    * (body_max + KM_ENV_CERT_MAX + KM_ENV_SIG_MAX + KM_ENV_OVERHEAD)
	    + (64u << 10);
}

/*
 * TCP keepalive reaps connections whose peer vanished, including ones that
 * never finished their handshake: nng 1.5.2 has no negotiation timeout for
 * tls+tcp and the engine API no timer (docs/transport.md, "Limits").
 * Best effort: a transport without the option is not an error.
 */
static int
km_net_keepalive(int rv)
{
	return rv == NNG_ENOTSUP ? 0 : rv;
}

/* ---- credentials ------------------------------------------------------- */

struct km_net_creds {
	atomic_int refs;
	pthread_mutex_t mu;
	char *ca_pem;
	char *crl_pem; /* may be NULL */
	char *cert_pem;
	char *key_pem;     /* secure arena */
	X509_STORE *store; /* CA + CRL, replaced by set_crl */
	uint64_t gen;      /* bumped with each new store */
	EVP_PKEY *key;
	uint8_t *cert_der;
	size_t cert_der_len;
	km_identity id;
	km_tls_hook **hooks; /* TLS configs to tell about a new store */
	size_t nhooks;
};

static char *
km_net_strdup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

int
km_net_creds_new(const char *ca_pem, const char *crl_pem, const char *cert_pem,
    const char *key_pem, km_net_creds **out)
{
	km_net_creds *c = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	uint8_t *der = NULL;
	int r, n;

	if (ca_pem == NULL || cert_pem == NULL || key_pem == NULL
	    || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_net_init()) != 0) {
		return r;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KM_ERR_ALLOC;
	}
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->mu, NULL);
	if ((c->ca_pem = km_net_strdup(ca_pem)) == NULL
	    || (crl_pem != NULL
	        && (c->crl_pem = km_net_strdup(crl_pem)) == NULL)
	    || (c->cert_pem = km_net_strdup(cert_pem)) == NULL
	    || (c->key_pem = km_secure_strdup(key_pem)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if ((r = km_pki_store_load(ca_pem, crl_pem, &c->store)) != 0) {
		goto out;
	}
	if ((bio = BIO_new_mem_buf(cert_pem, -1)) == NULL
	    || (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key_pem, -1)) == NULL
	    || (c->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL))
	        == NULL) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (X509_check_private_key(x, c->key) != 1
	    || EVP_PKEY_get_base_id(c->key) != EVP_PKEY_EC) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	/* Our own certificate must pass the checks our peers will make. */
	if ((r = km_pki_verify(c->store, x, KM_ROLE_NONE, &c->id)) != 0) {
		goto out;
	}
	if ((n = i2d_X509(x, &der)) <= 0) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((c->cert_der = malloc((size_t)n)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	memcpy(c->cert_der, der, (size_t)n);
	c->cert_der_len = (size_t)n;
	c->gen = 1;
	*out = c;
	c = NULL;
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(bio);
	km_net_creds_free(c);
	ERR_clear_error();
	return r;
}

int
km_net_creds_load(const char *ca_dir, const char *name, km_net_creds **out)
{
	char path[4096];
	uint8_t *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
	size_t len, keylen = 0;
	int r;

	if ((r = km_pki_path(path, sizeof(path), ca_dir, "ca.crt", NULL)) != 0
	    || (r = km_read_file(path, &ca, &len, KM_NET_PEM_MAX)) != 0
	    || (r = km_pki_path(path, sizeof(path), ca_dir, name, ".crt")) != 0
	    || (r = km_read_file(path, &cert, &len, KM_NET_PEM_MAX)) != 0
	    || (r = km_pki_path(path, sizeof(path), ca_dir, name, ".key")) != 0
	    || (r = km_read_file(path, &key, &keylen, KM_NET_PEM_MAX)) != 0
	    || (r = km_pki_path(path, sizeof(path), ca_dir, "crl.pem", NULL))
	        != 0) {
		goto out;
	}
	if ((r = km_read_file(path, &crl, &len, KM_NET_PEM_MAX)) != 0
	    && r != KM_ERR_NOT_FOUND) {
		goto out;
	}
	r = km_net_creds_new(
	    (char *)ca, (char *)crl, (char *)cert, (char *)key, out);
out:
	free(ca);
	free(crl);
	free(cert);
	if (key != NULL) {
		km_secret_wipe(key, keylen);
		free(key);
	}
	return r;
}

int
km_net_creds_set_crl(km_net_creds *c, const char *crl_pem)
{
	X509_STORE *store = NULL, *old;
	char *dup = NULL, *olddup;
	size_t i;
	int r;

	if (c == NULL || crl_pem == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((dup = strdup(crl_pem)) == NULL) {
		return KM_ERR_ALLOC;
	}
	pthread_mutex_lock(&c->mu);
	if ((r = km_pki_store_load(c->ca_pem, crl_pem, &store)) != 0) {
		pthread_mutex_unlock(&c->mu);
		free(dup);
		return r;
	}
	old = c->store;
	olddup = c->crl_pem;
	c->store = store;
	c->crl_pem = dup;
	c->gen++;
	for (i = 0; i < c->nhooks; i++) {
		km_tls_hook_set_store(c->hooks[i], store);
	}
	pthread_mutex_unlock(&c->mu);
	X509_STORE_free(old);
	free(olddup);
	km_log_info("KM-NET-CRL", "CRL replaced; peers are checked again");
	return 0;
}

const km_identity *
km_net_creds_identity(const km_net_creds *c)
{
	return &c->id;
}

void
km_net_creds_ref(km_net_creds *c)
{
	atomic_fetch_add(&c->refs, 1);
}

void
km_net_creds_free(km_net_creds *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) {
		return;
	}
	free(c->ca_pem);
	free(c->crl_pem);
	free(c->cert_pem);
	km_secure_strfree(c->key_pem);
	X509_STORE_free(c->store);
	EVP_PKEY_free(c->key);
	free(c->cert_der);
	free(c->hooks);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* The current store, up-ref'd, and its generation. */
static X509_STORE *
km_net_creds_store(km_net_creds *c, uint64_t *gen)
{
	X509_STORE *s;

	pthread_mutex_lock(&c->mu);
	s = c->store;
	X509_STORE_up_ref(s);
	*gen = c->gen;
	pthread_mutex_unlock(&c->mu);
	return s;
}

/* A TLS config tied to @c: it follows CRL updates and records handshakes. */
static int
km_net_tls_config(km_net_creds *c, nng_tls_mode mode, const char *server,
    km_tls_hook **hookp, nng_tls_config **cfgp)
{
	km_tls_hook *h = NULL;
	km_tls_hook **nh;
	int r;

	pthread_mutex_lock(&c->mu);
	if ((r = km_tls_hook_new(c->store, &h)) != 0) {
		goto out;
	}
	if ((r = km_tls_config_new(mode, h, c->ca_pem, c->crl_pem, c->cert_pem,
	         c->key_pem, server, cfgp))
	    != 0) {
		goto out;
	}
	if ((nh = realloc(c->hooks, (c->nhooks + 1) * sizeof(*nh))) == NULL) {
		nng_tls_config_free(*cfgp);
		*cfgp = NULL;
		r = KM_ERR_ALLOC;
		goto out;
	}
	c->hooks = nh;
	c->hooks[c->nhooks++] = h;
	*hookp = h;
	h = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&c->mu);
	km_tls_hook_unref(h);
	return r;
}

static void
km_net_tls_forget(km_net_creds *c, km_tls_hook *h)
{
	size_t i;

	if (h == NULL) {
		return;
	}
	pthread_mutex_lock(&c->mu);
	for (i = 0; i < c->nhooks; i++) {
		if (c->hooks[i] == h) {
			c->hooks[i] = c->hooks[--c->nhooks];
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	km_tls_hook_unref(h);
}

/* ---- server ------------------------------------------------------------ */

typedef struct km_net_worker {
	struct km_net_server *srv;
	pthread_t thread;
	bool started;
	nng_ctx ctx;
	nng_aio *aio;
	km_buf reply; /* the handler's reply body */
	km_buf env;   /* the sealed envelope */
	EVP_MD_CTX *md;
} km_net_worker;

struct km_net_server {
	km_net_creds *creds;
	km_tls_hook *hook;
	nng_socket sock;
	bool sock_open;
	nng_listener listener;
	km_net_handler handler;
	void *arg;
	km_net_server_opts o;
	km_verifier *ver;
	km_replay *replay;
	km_net_worker *workers;
	char host[256];
	atomic_uint_fast64_t refused;
	atomic_bool stopping;
};

/* Check one request envelope and run the handler; fills w->env. */
static void
km_net_serve_one(
    km_net_server *s, km_net_worker *w, const uint8_t *data, size_t len)
{
	static const uint8_t zero_nonce[KM_ENV_NONCE_LEN];
	const uint8_t *nonce = zero_nonce;
	X509_STORE *store = NULL;
	km_identity id;
	km_env e;
	uint64_t now = km_now_ms(), gen;
	int r, hr = 0;

	memset(&id, 0, sizeof(id));
	km_buf_reset(&w->reply);
	if ((r = km_env_parse(data, len, s->o.body_max, &e)) != 0) {
		goto refused;
	}
	nonce = e.nonce;
	if (e.type != KM_ENV_REQUEST) {
		r = KM_ERR_BAD_FORMAT;
		goto refused;
	}
	if (e.ts_ms + s->o.window_ms < now || e.ts_ms > now + s->o.window_ms) {
		r = KM_ERR_STALE;
		goto refused;
	}
	store = km_net_creds_store(s->creds, &gen);
	if ((r = km_verifier_check(
	         s->ver, store, gen, w->md, &e, s->o.peer_role, &id))
	    != 0) {
		goto refused;
	}
	/* Only signed nonces enter the replay cache. */
	if ((r = km_replay_add(
	         s->replay, e.nonce, now, 2 * (uint64_t)s->o.window_ms))
	    != 0) {
		goto refused;
	}
	hr = s->handler(s->arg, &id, e.body, e.body_len, &w->reply);
	if (hr > 0) {
		hr = KM_ERR_INTERNAL;
	}
	if (hr == 0 && km_buf_failed(&w->reply)) {
		hr = KM_ERR_ALLOC;
	}
	r = 0;
	goto seal;
refused:
	atomic_fetch_add(&s->refused, 1);
	km_log_warn_r(r, "KM-NET-REFUSE",
	    "request from %s refused (%zu bytes)",
	    id.name[0] != '\0' ? id.name : "an unverified sender", len);
seal:
	X509_STORE_free(store);
	if (r != 0 || hr != 0) {
		km_env_error_body(
		    &w->reply, r != 0 ? r : hr, km_strerror(r != 0 ? r : hr));
	}
	if (km_env_seal(&w->env, w->md,
	        r != 0 || hr != 0 ? KM_ENV_ERROR : KM_ENV_REPLY,
	        s->creds->cert_der, s->creds->cert_der_len, km_now_ms(), nonce,
	        w->reply.data, w->reply.len, s->creds->key)
	    != 0) {
		km_buf_reset(&w->env);
	}
}

static void *
km_net_worker_main(void *arg)
{
	km_net_worker *w = arg;
	km_net_server *s = w->srv;
	nng_msg *msg;
	int rv;

	for (;;) {
		if (atomic_load(&s->stopping)) {
			break;
		}
		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if ((rv = nng_aio_result(w->aio)) != 0) {
			if (rv == NNG_ECLOSED || atomic_load(&s->stopping)) {
				break;
			}
			continue;
		}
		msg = nng_aio_get_msg(w->aio);
		km_net_serve_one(s, w, nng_msg_body(msg), nng_msg_len(msg));
		if (w->env.len == 0) {
			/* Could not even seal an error: let it time out. */
			nng_msg_free(msg);
			continue;
		}
		/* Reuse the request's message for the reply. */
		nng_msg_clear(msg);
		if (nng_msg_append(msg, w->env.data, w->env.len) != 0) {
			nng_msg_free(msg);
			continue;
		}
		nng_aio_set_msg(w->aio, msg);
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if ((rv = nng_aio_result(w->aio)) != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED) {
				break;
			}
		}
	}
	return NULL;
}

int
km_net_server_start(km_net_creds *creds, const char *url,
    const km_net_server_opts *opts, km_net_handler handler, void *arg,
    km_net_server **out)
{
	km_net_server *s = NULL;
	nng_tls_config *cfg = NULL;
	nng_url *u = NULL;
	unsigned i;
	int r, rv;

	if (creds == NULL || url == NULL || handler == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_net_init()) != 0) {
		return r;
	}
	if ((rv = nng_url_parse(&u, url)) != 0
	    || strcmp(u->u_scheme, "tls+tcp") != 0) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	snprintf(s->host, sizeof(s->host), "%s", u->u_hostname);
	km_net_creds_ref(creds);
	s->creds = creds;
	s->handler = handler;
	s->arg = arg;
	if (opts != NULL) {
		s->o = *opts;
	}
	if (s->o.workers == 0) {
		s->o.workers = 4;
	}
	if (s->o.body_max == 0) {
		s->o.body_max = KM_NET_BODY_DEFAULT;
	}
	if (s->o.body_max > KM_NET_BODY_MAX || s->o.workers > 256) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if (s->o.window_ms == 0) {
		s->o.window_ms = KM_NET_WINDOW_DEFAULT_MS;
	}
	if (s->o.replay_max == 0) {
		s->o.replay_max = KM_NET_REPLAY_DEFAULT;
	}
	if ((r = km_verifier_new(1024, &s->ver)) != 0
	    || (r = km_replay_new(s->o.replay_max, &s->replay)) != 0
	    || (r = km_net_tls_config(
	            creds, NNG_TLS_MODE_SERVER, NULL, &s->hook, &cfg))
	        != 0) {
		goto out;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		r = km_net_err(rv);
		goto out;
	}
	s->sock_open = true;
	if ((rv = nng_socket_set_size(
	         s->sock, NNG_OPT_RECVMAXSZ, km_net_hard_limit(s->o.body_max)))
	        != 0
	    || (rv = nng_listener_create(&s->listener, s->sock, url)) != 0
	    || (rv = nng_listener_set_ptr(
	            s->listener, NNG_OPT_TLS_CONFIG, cfg))
	        != 0
	    || (rv = km_net_keepalive(nng_listener_set_bool(
	            s->listener, NNG_OPT_TCP_KEEPALIVE, true)))
	        != 0
	    || (rv = nng_listener_start(s->listener, 0)) != 0) {
		r = km_net_err(rv);
		km_log_error_r(r, "KM-NET-LISTEN", "cannot listen on %s", url);
		goto out;
	}
	if ((s->workers = calloc(s->o.workers, sizeof(*s->workers))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < s->o.workers; i++) {
		km_net_worker *w = &s->workers[i];

		w->srv = s;
		km_buf_init(&w->reply);
		km_buf_init(&w->env);
		if ((w->md = EVP_MD_CTX_new()) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		if ((rv = nng_ctx_open(&w->ctx, s->sock)) != 0
		    || (rv = nng_aio_alloc(&w->aio, NULL, NULL)) != 0) {
			r = km_net_err(rv);
			goto out;
		}
		if (pthread_create(&w->thread, NULL, km_net_worker_main, w)
		    != 0) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		w->started = true;
	}
	*out = s;
	s = NULL;
	r = 0;
out:
	if (cfg != NULL) {
		nng_tls_config_free(cfg); /* the listener holds its own */
	}
	nng_url_free(u);
	km_net_server_stop(s);
	return r;
}

int
km_net_server_port(km_net_server *s, int *port)
{
	int rv;

	if ((rv = nng_listener_get_int(
	         s->listener, NNG_OPT_TCP_BOUND_PORT, port))
	    != 0) {
		return km_net_err(rv);
	}
	return 0;
}

int
km_net_server_url(km_net_server *s, char *out, size_t outlen)
{
	int port, r, n;

	if ((r = km_net_server_port(s, &port)) != 0) {
		return r;
	}
	n = snprintf(out, outlen, "tls+tcp://%s:%d", s->host, port);
	return n < 0 || (size_t)n >= outlen ? KM_ERR_BUFFER_TOO_SMALL : 0;
}

uint64_t
km_net_server_refused(km_net_server *s)
{
	return atomic_load(&s->refused);
}

void
km_net_server_stop(km_net_server *s)
{
	unsigned i;

	if (s == NULL) {
		return;
	}
	/*
	 * Stop the workers before the socket goes: nng 1.5.2 can panic when
	 * a socket is closed under a context that is sending at that moment.
	 * Closing each context fails its pending and later operations with
	 * ECLOSED, so every worker leaves its loop; only then the socket.
	 */
	atomic_store(&s->stopping, true);
	if (s->workers != NULL) {
		for (i = 0; i < s->o.workers; i++) {
			if (s->workers[i].started) {
				nng_ctx_close(s->workers[i].ctx);
			}
		}
		for (i = 0; i < s->o.workers; i++) {
			km_net_worker *w = &s->workers[i];

			if (w->started) {
				pthread_join(w->thread, NULL);
			}
			nng_aio_free(w->aio);
			EVP_MD_CTX_free(w->md);
			km_buf_free(&w->reply);
			km_buf_free(&w->env);
		}
		free(s->workers);
	}
	if (s->sock_open) {
		nng_close(s->sock);
	}
	if (s->creds != NULL) {
		km_net_tls_forget(s->creds, s->hook);
	}
	km_verifier_free(s->ver);
	km_replay_free(s->replay);
	km_net_creds_free(s->creds);
	free(s);
}

/* ---- client ------------------------------------------------------------ */

static void
km_net_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	km_net_client *c = arg;

	(void)p;
	pthread_mutex_lock(&c->mu);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		/*
		 * nng adds the pipe only after both SP headers crossed, and
		 * the server sends its header only after it accepted our
		 * certificate: the link is verified both ways.
		 */
		c->npipes++;
		km_tls_hook_clear_error(c->hook);
	} else if (ev == NNG_PIPE_EV_REM_POST && c->npipes > 0) {
		c->npipes--;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

int
km_net_client_open(km_net_creds *creds, const char *url, const char *peer_name,
    const km_net_client_opts *opts, km_net_client **out)
{
	km_net_client *c = NULL;
	nng_tls_config *cfg = NULL;
	int r, rv;

	if (creds == NULL || url == NULL || out == NULL
	    || !km_name_valid(peer_name)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_net_init()) != 0) {
		return r;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	km_net_creds_ref(creds);
	c->creds = creds;
	snprintf(c->peer_name, sizeof(c->peer_name), "%s", peer_name);
	if (opts != NULL) {
		c->o = *opts;
	}
	if (c->o.body_max == 0) {
		c->o.body_max = KM_NET_BODY_DEFAULT;
	}
	if (c->o.peer_role == KM_ROLE_NONE) {
		c->o.peer_role = KM_ROLE_NODE;
	}
	if (c->o.reconnect_min_ms <= 0) {
		c->o.reconnect_min_ms = 50;
	}
	if (c->o.reconnect_max_ms <= 0) {
		c->o.reconnect_max_ms = 2000;
	}
	if (c->o.body_max > KM_NET_BODY_MAX) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = km_verifier_new(4, &c->ver)) != 0
	    || (r = km_net_tls_config(
	            creds, NNG_TLS_MODE_CLIENT, peer_name, &c->hook, &cfg))
	        != 0) {
		goto out;
	}
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		r = km_net_err(rv);
		goto out;
	}
	c->sock_open = true;
	/*
	 * No timed re-sends: a re-sent envelope would only meet the
	 * server's replay check.  nng still re-sends a request whose
	 * connection dropped before the reply.
	 */
	if ((rv = nng_socket_set_ms(
	         c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE))
	        != 0
	    || (rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	            km_net_hard_limit(c->o.body_max)))
	        != 0
	    || (rv = nng_pipe_notify(
	            c->sock, NNG_PIPE_EV_ADD_POST, km_net_pipe_cb, c))
	        != 0
	    || (rv = nng_pipe_notify(
	            c->sock, NNG_PIPE_EV_REM_POST, km_net_pipe_cb, c))
	        != 0
	    || (rv = nng_dialer_create(&c->dialer, c->sock, url)) != 0
	    || (rv = nng_dialer_set_ptr(c->dialer, NNG_OPT_TLS_CONFIG, cfg))
	        != 0
	    || (rv = km_net_keepalive(nng_dialer_set_bool(
	            c->dialer, NNG_OPT_TCP_KEEPALIVE, true)))
	        != 0
	    || (rv = nng_dialer_set_ms(
	            c->dialer, NNG_OPT_RECONNMINT, c->o.reconnect_min_ms))
	        != 0
	    || (rv = nng_dialer_set_ms(
	            c->dialer, NNG_OPT_RECONNMAXT, c->o.reconnect_max_ms))
	        != 0
	    || (rv = nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK)) != 0) {
		r = km_net_err(rv);
		km_log_error_r(r, "KM-NET-DIAL", "cannot dial %s", url);
		goto out;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	if (cfg != NULL) {
		nng_tls_config_free(cfg);
	}
	km_net_client_close(c);
	return r;
}

bool
km_net_client_connected(km_net_client *c)
{
	bool up;

	if (c->relay != NULL) {
		return km_net_relay_connected(c);
	}
	pthread_mutex_lock(&c->mu);
	up = c->npipes > 0;
	pthread_mutex_unlock(&c->mu);
	return up;
}

/* Why there is no connection: the last handshake's refusal, if any. */
static int
km_net_client_down_reason(km_net_client *c)
{
	km_tls_info info;

	km_tls_hook_info(c->hook, &info);
	return info.last_error != 0 ? info.last_error : KM_ERR_CONN;
}

int
km_net_client_wait_connected(km_net_client *c, int timeout_ms)
{
	uint64_t deadline = km_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	struct timespec ts;
	bool up;

	if (c->relay != NULL) {
		return km_net_relay_wait_connected(c, timeout_ms);
	}
	pthread_mutex_lock(&c->mu);
	while (c->npipes == 0 && km_mono_ns() < deadline) {
		/* Short waits: the clock of the condvar is the wall clock. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	up = c->npipes > 0;
	pthread_mutex_unlock(&c->mu);
	return up ? 0 : km_net_client_down_reason(c);
}

int
km_net_client_tls_info(km_net_client *c, km_net_tls_info *info)
{
	km_tls_info ti;

	memset(info, 0, sizeof(*info));
	if (c->relay != NULL) {
		/* the TLS connections are the relay helper's */
		return KM_ERR_NOT_SUPPORTED;
	}
	km_tls_hook_info(c->hook, &ti);
	snprintf(info->version, sizeof(info->version), "%s", ti.version);
	snprintf(info->cipher, sizeof(info->cipher), "%s", ti.cipher);
	info->handshake_us = ti.handshake_ns / 1000u;
	info->handshakes_ok = ti.handshakes_ok;
	info->handshakes_bad = ti.handshakes_bad;
	info->last_error = ti.last_error;
	snprintf(info->last_reason, sizeof(info->last_reason), "%s",
	    ti.last_reason);
	return ti.handshakes_ok > 0 ? 0 : KM_ERR_NOT_FOUND;
}

/* Check a reply envelope against the call it answers. */
static int
km_net_check_reply(km_net_call *call, const uint8_t *data, size_t len)
{
	static const uint8_t zero_nonce[KM_ENV_NONCE_LEN];
	km_net_client *c = call->cl;
	X509_STORE *store;
	km_env e;
	km_identity id;
	uint64_t gen;
	int r, code;

	if ((r = km_env_parse(data, len, c->o.body_max, &e)) != 0) {
		goto out;
	}
	if (e.type == KM_ENV_REQUEST
	    || (memcmp(e.nonce, call->nonce, KM_ENV_NONCE_LEN) != 0
	        && !(e.type == KM_ENV_ERROR
	            && memcmp(e.nonce, zero_nonce, KM_ENV_NONCE_LEN) == 0))) {
		r = KM_ERR_VERIFY;
		goto out;
	}
	store = km_net_creds_store(c->creds, &gen);
	r = km_verifier_check(
	    c->ver, store, gen, call->md, &e, c->o.peer_role, &id);
	X509_STORE_free(store);
	if (r != 0) {
		goto out;
	}
	if (strcmp(id.name, c->peer_name) != 0) {
		r = KM_ERR_AUTH;
		km_log_warn_r(r, "KM-NET-WRONG-PEER",
		    "reply signed by %s, expected %s", id.name, c->peer_name);
		return r;
	}
	call->peer = id;
	if (e.type == KM_ENV_ERROR) {
		if ((r = km_env_error_parse(e.body, e.body_len, &code)) == 0) {
			r = code;
		}
		return r;
	}
	km_buf_reset(&call->reply);
	if (km_buf_put_raw(&call->reply, e.body, e.body_len) != 0) {
		return KM_ERR_ALLOC;
	}
	r = 0;
out:
	if (r != 0) {
		km_log_warn_r(r, "KM-NET-BAD-REPLY", "reply from %s refused",
		    c->peer_name);
	}
	return r;
}

/* Map a failed wait: a timeout with no connection is a connection error. */
static int
km_net_call_err(km_net_call *call, int rv)
{
	if (rv == NNG_ETIMEDOUT && !km_net_client_connected(call->cl)) {
		return km_net_client_down_reason(call->cl);
	}
	return km_net_err(rv);
}

/* Called with call->mu held; releases it. */
void
km_net_call_finish(km_net_call *call, int r)
{
	km_net_done done = call->done;
	void *arg = call->arg;
	uint64_t seq = call->seq;

	call->state = KM_CALL_DONE;
	call->result = r;
	pthread_mutex_unlock(&call->mu);
	if (done != NULL) {
		done(call, r, arg);
	}
	pthread_mutex_lock(&call->mu);
	if (call->seq_done < seq) {
		call->seq_done = seq;
	}
	pthread_cond_broadcast(&call->cv);
	pthread_mutex_unlock(&call->mu);
}

static void
km_net_call_cb(void *arg)
{
	km_net_call *call = arg;
	nng_msg *msg;
	uint64_t now;
	int rv, r;

	pthread_mutex_lock(&call->mu);
	rv = nng_aio_result(call->aio);
	if (call->state == KM_CALL_SENDING) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(call->aio));
			km_net_call_finish(call, km_net_call_err(call, rv));
			return;
		}
		if (call->cancelled) {
			km_net_call_finish(call, KM_ERR_CLOSED);
			return;
		}
		now = km_mono_ns();
		call->state = KM_CALL_RECEIVING;
		nng_aio_set_timeout(call->aio,
		    now >= call->deadline_ns
		        ? 1
		        : (nng_duration)((call->deadline_ns - now) / 1000000u
		            + 1));
		nng_ctx_recv(call->ctx, call->aio);
		pthread_mutex_unlock(&call->mu);
		return;
	}
	if (call->state != KM_CALL_RECEIVING) {
		pthread_mutex_unlock(&call->mu);
		return;
	}
	if (rv != 0) {
		km_net_call_finish(call,
		    call->cancelled ? KM_ERR_CLOSED
		                    : km_net_call_err(call, rv));
		return;
	}
	msg = nng_aio_get_msg(call->aio);
	r = km_net_check_reply(call, nng_msg_body(msg), nng_msg_len(msg));
	if (r == 0) {
		/* kept for km_net_call_envelopes(); freed at the next start */
		call->rmsg = msg;
	} else {
		nng_msg_free(msg);
	}
	km_net_call_finish(call, r);
}

int
km_net_call_new(km_net_client *c, km_net_call **out)
{
	km_net_call *call;
	int rv;

	if (c == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		return KM_ERR_ALLOC;
	}
	call->cl = c;
	pthread_mutex_init(&call->mu, NULL);
	pthread_cond_init(&call->cv, NULL);
	km_buf_init(&call->env);
	km_buf_init(&call->reply);
	if ((call->md = EVP_MD_CTX_new()) == NULL) {
		km_net_call_free(call);
		return KM_ERR_ALLOC;
	}
	if (c->relay != NULL) {
		/* no nng here: the relay helper makes the call */
		*out = call;
		return 0;
	}
	if ((rv = nng_aio_alloc(&call->aio, km_net_call_cb, call)) != 0
	    || (rv = nng_ctx_open(&call->ctx, c->sock)) != 0) {
		km_net_call_free(call);
		return km_net_err(rv);
	}
	*out = call;
	return 0;
}

int
km_net_call_start(km_net_call *call, const void *req, size_t req_len,
    int timeout_ms, km_net_done done, void *arg)
{
	km_net_client *c;
	nng_msg *msg = NULL;
	int r, rv;

	if (call == NULL || (req == NULL && req_len > 0) || timeout_ms <= 0) {
		return KM_ERR_INVALID_ARG;
	}
	c = call->cl;
	if (req_len > KM_NET_BODY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	pthread_mutex_lock(&call->mu);
	if (call->state == KM_CALL_SENDING
	    || call->state == KM_CALL_RECEIVING) {
		r = KM_ERR_BUSY;
		goto out;
	}
	/* the last call's envelopes go now: the request is resealed */
	if (call->rmsg != NULL) {
		nng_msg_free(call->rmsg);
		call->rmsg = NULL;
	}
	if (c->relay != NULL) {
		/* the helper seals, sends and checks the reply (relay.c) */
		r = km_net_relay_call_start(call, req, req_len, timeout_ms);
		call->done = r == 0 ? done : NULL;
		call->arg = r == 0 ? arg : NULL;
		goto out;
	}
	if ((r = km_random(call->nonce, sizeof(call->nonce))) != 0
	    || (r = km_env_seal(&call->env, call->md, KM_ENV_REQUEST,
	            c->creds->cert_der, c->creds->cert_der_len, km_now_ms(),
	            call->nonce, req, req_len, c->creds->key))
	        != 0) {
		goto out;
	}
	if ((rv = nng_msg_alloc(&msg, call->env.len)) != 0) {
		r = km_net_err(rv);
		goto out;
	}
	memcpy(nng_msg_body(msg), call->env.data, call->env.len);
	memset(&call->peer, 0, sizeof(call->peer));
	km_buf_reset(&call->reply);
	call->done = done;
	call->arg = arg;
	call->cancelled = false;
	call->result = KM_ERR_STATE;
	call->seq++;
	call->state = KM_CALL_SENDING;
	call->deadline_ns = km_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	nng_aio_set_msg(call->aio, msg);
	nng_aio_set_timeout(call->aio, timeout_ms);
	nng_ctx_send(call->ctx, call->aio);
	r = 0;
out:
	pthread_mutex_unlock(&call->mu);
	return r;
}

void
km_net_call_cancel(km_net_call *call)
{
	if (call == NULL) {
		return;
	}
	pthread_mutex_lock(&call->mu);
	if (call->state == KM_CALL_SENDING
	    || call->state == KM_CALL_RECEIVING) {
		/* Under the lock, so the callback cannot start the receive
		 * between our flag and the abort. */
		call->cancelled = true;
		if (call->cl->relay != NULL) {
			km_net_relay_call_cancel(call);
		} else {
			nng_aio_cancel(call->aio);
		}
	}
	pthread_mutex_unlock(&call->mu);
}

int
km_net_call_wait(km_net_call *call)
{
	int r;

	pthread_mutex_lock(&call->mu);
	while (call->seq_done < call->seq) {
		pthread_cond_wait(&call->cv, &call->mu);
	}
	r = call->seq == 0 ? KM_ERR_STATE : call->result;
	pthread_mutex_unlock(&call->mu);
	return r;
}

int
km_net_call_reply(km_net_call *call, const uint8_t **body, size_t *len,
    const km_identity **peer)
{
	int r;

	pthread_mutex_lock(&call->mu);
	r = call->state != KM_CALL_DONE ? KM_ERR_STATE : call->result;
	if (r == 0) {
		*body = call->reply.data;
		*len = call->reply.len;
		if (peer != NULL) {
			*peer = &call->peer;
		}
	}
	pthread_mutex_unlock(&call->mu);
	return r;
}

int
km_net_call_envelopes(km_net_call *call, km_buf *req_env, km_buf *rep_env)
{
	int r;

	if (call == NULL || req_env == NULL || rep_env == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	pthread_mutex_lock(&call->mu);
	if (call->cl->relay != NULL) {
		/* the relay helper seals and checks; it keeps nothing */
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	if (call->state != KM_CALL_DONE || call->result != 0
	    || call->rmsg == NULL) {
		r = KM_ERR_STATE;
		goto out;
	}
	km_buf_reset(req_env);
	km_buf_reset(rep_env);
	if (km_buf_put_raw(req_env, call->env.data, call->env.len) != 0
	    || km_buf_put_raw(rep_env, nng_msg_body(call->rmsg),
	           nng_msg_len(call->rmsg))
	        != 0) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&call->mu);
	return r;
}

void
km_net_call_free(km_net_call *call)
{
	if (call == NULL) {
		return;
	}
	if (call->cl != NULL && call->cl->relay != NULL) {
		km_net_call_cancel(call);
		km_net_call_wait(call);
	}
	if (call->aio != NULL) {
		km_net_call_cancel(call);
		km_net_call_wait(call);
		nng_aio_stop(call->aio);
		nng_aio_free(call->aio);
	}
	if (call->saio != NULL) {
		nng_aio_stop(call->saio);
		nng_aio_free(call->saio);
	}
	if (call->ctx.id != 0) {
		nng_ctx_close(call->ctx);
	}
	if (call->rmsg != NULL) {
		nng_msg_free(call->rmsg);
	}
	EVP_MD_CTX_free(call->md);
	km_buf_free(&call->env);
	km_buf_free(&call->reply);
	pthread_cond_destroy(&call->cv);
	pthread_mutex_destroy(&call->mu);
	free(call);
}

/*
 * The blocking path: the caller's own thread waits on nng, which saves the
 * two callback hops (and a condition variable) of the asynchronous path.
 * The call is from the client's pool and owned by this thread alone.
 */
static int
km_net_call_sync(
    km_net_call *call, const void *req, size_t req_len, int timeout_ms)
{
	km_net_client *c = call->cl;
	nng_msg *msg = NULL;
	uint64_t deadline, now;
	int r, rv;

	if ((req == NULL && req_len > 0) || timeout_ms <= 0) {
		return KM_ERR_INVALID_ARG;
	}
	if (req_len > KM_NET_BODY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	if (call->saio == NULL
	    && (rv = nng_aio_alloc(&call->saio, NULL, NULL)) != 0) {
		return km_net_err(rv);
	}
	deadline = km_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	memset(&call->peer, 0, sizeof(call->peer));
	if ((r = km_random(call->nonce, sizeof(call->nonce))) != 0
	    || (r = km_env_seal(&call->env, call->md, KM_ENV_REQUEST,
	            c->creds->cert_der, c->creds->cert_der_len, km_now_ms(),
	            call->nonce, req, req_len, c->creds->key))
	        != 0) {
		return r;
	}
	if ((rv = nng_msg_alloc(&msg, call->env.len)) != 0) {
		return km_net_err(rv);
	}
	memcpy(nng_msg_body(msg), call->env.data, call->env.len);
	nng_aio_set_msg(call->saio, msg);
	nng_aio_set_timeout(call->saio, timeout_ms);
	nng_ctx_send(call->ctx, call->saio);
	nng_aio_wait(call->saio);
	if ((rv = nng_aio_result(call->saio)) != 0) {
		nng_msg_free(msg);
		return km_net_call_err(call, rv);
	}
	now = km_mono_ns();
	nng_aio_set_timeout(call->saio,
	    now >= deadline ? 1
	                    : (nng_duration)((deadline - now) / 1000000u + 1));
	nng_ctx_recv(call->ctx, call->saio);
	nng_aio_wait(call->saio);
	if ((rv = nng_aio_result(call->saio)) != 0) {
		return km_net_call_err(call, rv);
	}
	msg = nng_aio_get_msg(call->saio);
	r = km_net_check_reply(call, nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
	return r;
}

int
km_net_client_call(km_net_client *c, const void *req, size_t req_len,
    int timeout_ms, km_buf *reply, km_identity *peer)
{
	km_net_call *call;
	int r;

	if (c == NULL || reply == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	pthread_mutex_lock(&c->mu);
	if ((call = c->pool) != NULL) {
		c->pool = call->next_free;
	}
	pthread_mutex_unlock(&c->mu);
	if (call == NULL && (r = km_net_call_new(c, &call)) != 0) {
		return r;
	}
	if (c->relay != NULL) {
		/* the relay has no blocking path: start, then wait */
		if ((r = km_net_call_start(
		         call, req, req_len, timeout_ms, NULL, NULL))
		    == 0) {
			r = km_net_call_wait(call);
		}
	} else {
		r = km_net_call_sync(call, req, req_len, timeout_ms);
	}
	if (r == 0) {
		km_buf_reset(reply);
		if (km_buf_put_raw(reply, call->reply.data, call->reply.len)
		    != 0) {
			r = KM_ERR_ALLOC;
		}
	}
	/* Even an error reply names the node that sent it. */
	if (peer != NULL) {
		*peer = call->peer;
	}
	pthread_mutex_lock(&c->mu);
	call->next_free = c->pool;
	c->pool = call;
	pthread_mutex_unlock(&c->mu);
	return r;
}

void
km_net_client_close(km_net_client *c)
{
	km_net_call *call;

	if (c == NULL) {
		return;
	}
	while ((call = c->pool) != NULL) {
		c->pool = call->next_free;
		km_net_call_free(call);
	}
	if (c->sock_open) {
		nng_close(c->sock);
	}
	if (c->relay != NULL) {
		km_net_relay_client_closed(c);
	}
	if (c->creds != NULL && c->hook != NULL) {
		km_net_tls_forget(c->creds, c->hook);
	}
	km_verifier_free(c->ver);
	km_net_creds_free(c->creds);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
