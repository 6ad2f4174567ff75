/*
 * keymesh's OpenSSL 3 TLS engine for nng 1.5.2.
 *
 * nng drives the engine from its own threads, holding the connection's lock
 * (engine.h, "locking theory").  Ciphertext moves through a custom BIO whose
 * read and write call nng_tls_engine_recv/send; when nng has no data or no
 * send space they return NNG_EAGAIN, the BIO reports "retry", OpenSSL
 * returns SSL_ERROR_WANT_READ/WRITE and the engine returns NNG_EAGAIN, and
 * nng calls in again when its TCP I/O completes.
 *
 * Policy, whatever the caller asks (DESIGN.md §5, §1.6): TLS 1.3 only (RFC
 * 8446), peer certificate required and verified on both sides, CRL checked
 * when one is given, the server's DNS name checked by the client, no session
 * tickets (nothing to resume on long-lived mesh connections, and no ticket
 * key to protect).
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/engine.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net/net.h"
#include "net/tls.h"
#include "pki/pki.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

struct km_tls_hook {
	atomic_int refs;
	pthread_mutex_t mu;
	X509_STORE *store; /* verify store for new connections, or NULL */
	km_tls_info info;
};

/*
 * Server connections still in their handshake, per config.  nng 1.5.2 has
 * no negotiation timeout for tls+tcp and the engine API no timer, so a peer
 * that connects and stays silent is only reaped by TCP keepalive; the cap
 * bounds the memory such peers can hold (~40 KiB each).
 */
#define KM_TLS_MAX_PENDING 1024

struct nng_tls_engine_config {
	SSL_CTX *ctx;
	atomic_int pending; /* server handshakes in progress */
	nng_tls_mode mode;
	char *server_name;
	km_tls_hook *hook;
	bool have_ca;
	bool have_cert;
};

/*
 * Send-side framing (km_tls_conn_send).  nng 1.5.2's tls+tcp transport
 * hands the engine each SP message as separate pieces (its 8-byte length,
 * the req/rep header, the body), one send call and one task-queue hop
 * each.  The engine follows the tls+tcp framing to gather each message
 * into one TLS record: first the 8-byte SP connection header ("\0SP\0",
 * protocol, reserved), then frames of an 8-byte big-endian length L and
 * exactly L bytes.
 */
enum km_tls_tx {
	KM_TX_HELLO,  /* gathering the SP connection header */
	KM_TX_PREFIX, /* gathering a frame's 8-byte length */
	KM_TX_FRAME,  /* gathering the rest of a frame */
	KM_TX_DIRECT, /* passing an oversized frame's body straight on */
	KM_TX_OFF     /* not coalescing: every piece goes straight on */
};

/* Frames with a length above this are written as they come. */
#define KM_TLS_COALESCE_MAX ((size_t)64 * 1024)
/* Gather buffer kept between frames; a larger one is freed after use. */
#define KM_TLS_TX_KEEP ((size_t)16 * 1024 + 8)

struct nng_tls_engine_conn {
	void *nng; /* nng's connection, for nng_tls_engine_send/recv */
	SSL *ssl;
	struct nng_tls_engine_config *cfg;
	uint64_t start_ns;
	bool done;     /* handshake finished and recorded */
	bool failed;   /* handshake failure recorded */
	bool got_data; /* application data has arrived */
	bool counted;  /* holds a slot in cfg->pending */
	/* send-side framing, see enum km_tls_tx */
	enum km_tls_tx tx_state;
	enum km_tls_tx tx_next; /* state once the pending write is done */
	bool tx_flushing;       /* tx[tx_done..tx_len) is being written */
	uint8_t *tx;            /* gather buffer (allocated on first use) */
	size_t tx_cap;          /* its size */
	size_t tx_len;          /* bytes gathered */
	size_t tx_need;         /* bytes of the unit being gathered */
	size_t tx_done;         /* bytes of tx taken by SSL_write */
	size_t tx_last;         /* bytes of nng's last piece in tx */
	uint64_t tx_direct;     /* oversized body bytes still to pass on */
};

static pthread_mutex_t km_tls_mu = PTHREAD_MUTEX_INITIALIZER;
static BIO_METHOD *km_tls_bio_meth;
static atomic_uint_fast64_t km_tls_ok, km_tls_bad;
static atomic_uint_fast64_t km_tls_frames_gathered, km_tls_frames_direct;
/* -1: not yet read from KEYMESH_TLS_COALESCE; else 0 or 1 */
static atomic_int km_tls_coalesce = -1;

/*
 * The hook of the config being made: nng_tls_config_alloc() calls our
 * config init on the calling thread, and this is how km_tls_config_new()
 * hands it the hook without touching nng's private structures.
 */
static __thread km_tls_hook *km_tls_pending_hook;

int
km_net_err(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return KM_ERR_TIMEOUT;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNABORTED:
	case NNG_ECONNSHUT:
	case NNG_EUNREACHABLE:
		return KM_ERR_CONN;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return KM_ERR_CLOSED;
	case NNG_ENOMEM:
		return KM_ERR_ALLOC;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_EBADTYPE:
		return KM_ERR_INVALID_ARG;
	case NNG_EMSGSIZE:
		return KM_ERR_TOO_LARGE;
	case NNG_ECRYPTO:
		return KM_ERR_TLS;
	case NNG_EPEERAUTH:
		return KM_ERR_AUTH;
	case NNG_ENOTSUP:
		return KM_ERR_NOT_SUPPORTED;
	case NNG_EADDRINUSE:
	case NNG_EBUSY:
		return KM_ERR_BUSY;
	case NNG_ESTATE:
		return KM_ERR_STATE;
	case NNG_ENOENT:
		return KM_ERR_NOT_FOUND;
	case NNG_EPROTO:
		return KM_ERR_BAD_FORMAT;
	default:
		return KM_ERR_IO;
	}
}

/* ---- the BIO between OpenSSL and nng's TCP stream ---------------------- */

static int
km_tls_bio_write(BIO *b, const char *buf, size_t len, size_t *done)
{
	size_t n = len;
	int rv;

	BIO_clear_retry_flags(b);
	rv = nng_tls_engine_send(BIO_get_data(b), (const uint8_t *)buf, &n);
	if (rv == 0) {
		*done = n;
		return 1;
	}
	if (rv == NNG_EAGAIN) {
		BIO_set_retry_write(b);
	}
	return 0;
}

static int
km_tls_bio_read(BIO *b, char *buf, size_t len, size_t *done)
{
	size_t n = len;
	int rv;

	BIO_clear_retry_flags(b);
	rv = nng_tls_engine_recv(BIO_get_data(b), (uint8_t *)buf, &n);
	if (rv == 0 && n > 0) {
		*done = n;
		return 1;
	}
	if (rv == NNG_EAGAIN) {
		BIO_set_retry_read(b);
	}
	return 0;
}

static long
km_tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	/* nng sends as soon as it can, so a flush has nothing to do. */
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
km_tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int
km_tls_bio_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

/* ---- hooks ------------------------------------------------------------- */

int
km_tls_hook_new(X509_STORE *store, km_tls_hook **out)
{
	km_tls_hook *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		return KM_ERR_ALLOC;
	}
	atomic_init(&h->refs, 1);
	pthread_mutex_init(&h->mu, NULL);
	if (store != NULL && X509_STORE_up_ref(store) == 1) {
		h->store = store;
	}
	*out = h;
	return 0;
}

void
km_tls_hook_ref(km_tls_hook *h)
{
	atomic_fetch_add(&h->refs, 1);
}

void
km_tls_hook_unref(km_tls_hook *h)
{
	if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1) {
		return;
	}
	X509_STORE_free(h->store);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

void
km_tls_hook_set_store(km_tls_hook *h, X509_STORE *store)
{
	X509_STORE *old;

	if (store != NULL && X509_STORE_up_ref(store) != 1) {
		return;
	}
	pthread_mutex_lock(&h->mu);
	old = h->store;
	h->store = store;
	pthread_mutex_unlock(&h->mu);
	X509_STORE_free(old);
}

void
km_tls_hook_info(km_tls_hook *h, km_tls_info *info)
{
	pthread_mutex_lock(&h->mu);
	*info = h->info;
	pthread_mutex_unlock(&h->mu);
}

void
km_tls_hook_clear_error(km_tls_hook *h)
{
	pthread_mutex_lock(&h->mu);
	h->info.last_error = 0;
	h->info.last_reason[0] = '\0';
	pthread_mutex_unlock(&h->mu);
}

void
km_tls_stats(uint64_t *ok, uint64_t *bad)
{
	if (ok != NULL) {
		*ok = atomic_load(&km_tls_ok);
	}
	if (bad != NULL) {
		*bad = atomic_load(&km_tls_bad);
	}
}

/*
 * Whether new connections gather each SP message into one TLS record:
 * on unless KEYMESH_TLS_COALESCE=0 in the environment, or as last set by
 * km_tls_set_coalesce().
 */
static bool
km_tls_coalescing(void)
{
	int v = atomic_load(&km_tls_coalesce);

	if (v < 0) {
		const char *e = getenv("KEYMESH_TLS_COALESCE");
		int want = (e != NULL && strcmp(e, "0") == 0) ? 0 : 1;

		(void)atomic_compare_exchange_strong(
		    &km_tls_coalesce, &v, want);
		v = atomic_load(&km_tls_coalesce);
	}
	return v != 0;
}

void
km_tls_set_coalesce(bool on)
{
	atomic_store(&km_tls_coalesce, on ? 1 : 0);
}

void
km_tls_coalesce_stats(uint64_t *gathered, uint64_t *direct)
{
	if (gathered != NULL) {
		*gathered = atomic_load(&km_tls_frames_gathered);
	}
	if (direct != NULL) {
		*direct = atomic_load(&km_tls_frames_direct);
	}
}

/* ---- config ops -------------------------------------------------------- */

/*
 * OpenSSL's chain check, then the catalog's deny-list: a node the catalog
 * evicted is refused in the handshake, whatever its certificate's dates
 * and the CRL file say (pki.h km_pki_deny_set, docs/eviction.md).  One
 * log line per 10 s at most: a refused node keeps redialling.
 */
static int
km_tls_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	static _Atomic uint64_t last_ms;
	X509 *cert;
	uint64_t now, prev;

	if (ok != 1 || X509_STORE_CTX_get_error_depth(ctx) != 0) {
		return ok;
	}
	cert = X509_STORE_CTX_get_current_cert(ctx);
	if (!km_pki_denied_cert(cert)) {
		return ok;
	}
	X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_REVOKED);
	now = km_now_ms();
	prev = atomic_load(&last_ms);
	if (now - prev >= 10000
	    && atomic_compare_exchange_strong(&last_ms, &prev, now)) {
		km_log_warn("KM-TLS-EVICTED",
		    "TLS peer refused: its node is evicted from the mesh");
	}
	return 0;
}

static int
km_tls_cfg_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(mode == NNG_TLS_MODE_SERVER ? TLS_server_method()
	                                              : TLS_client_method());
	if (ctx == NULL) {
		ERR_clear_error();
		return NNG_ENOMEM;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1
	    || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NNG_ENOTSUP;
	}
	/* Mutual authentication, always (DESIGN.md §1.6). */
	SSL_CTX_set_verify(ctx,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
	    km_tls_verify_cb);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx,
	    SSL_MODE_ENABLE_PARTIAL_WRITE
	        | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	cfg->ctx = ctx;
	cfg->mode = mode;
	if ((cfg->hook = km_tls_pending_hook) != NULL) {
		km_tls_hook_ref(cfg->hook);
	}
	return 0;
}

static void
km_tls_cfg_fini(nng_tls_engine_config *cfg)
{
	SSL_CTX_free(cfg->ctx);
	free(cfg->server_name);
	km_tls_hook_unref(cfg->hook);
}

static int
km_tls_cfg_server(nng_tls_engine_config *cfg, const char *name)
{
	char *dup = NULL;

	if (name != NULL && (dup = strdup(name)) == NULL) {
		return NNG_ENOMEM;
	}
	free(cfg->server_name);
	cfg->server_name = dup;
	return 0;
}

static int
km_tls_cfg_auth(nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
	(void)cfg;
	(void)mode;
	/*
	 * Accepted but never weakening: nng's own listener asks for
	 * NNG_TLS_AUTH_MODE_NONE on its default config, yet keymesh never
	 * runs an unauthenticated or optional-auth link, so verification
	 * stays required whatever is asked.
	 */
	return 0;
}

static int
km_tls_cfg_ca_chain(
    nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
	STACK_OF(X509_INFO) *infos = NULL;
	X509_STORE *store = NULL;
	BIO *bio = NULL;
	int i, ncert = 0, ncrl = 0, rv = NNG_EINVAL;

	if (certs == NULL || (store = X509_STORE_new()) == NULL) {
		goto out;
	}
	/* Certificates first, then CRLs; either text may hold both. */
	for (i = 0; i < 2; i++) {
		const char *pem = i == 0 ? certs : crl;
		int j;

		if (pem == NULL) {
			continue;
		}
		if ((bio = BIO_new_mem_buf(pem, -1)) == NULL
		    || (infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL))
		        == NULL) {
			goto out;
		}
		for (j = 0; j < sk_X509_INFO_num(infos); j++) {
			X509_INFO *xi = sk_X509_INFO_value(infos, j);

			if (xi->x509 != NULL && i == 0) {
				if (X509_STORE_add_cert(store, xi->x509)
				    != 1) {
					goto out;
				}
				ncert++;
			}
			if (xi->crl != NULL) {
				if (X509_STORE_add_crl(store, xi->crl) != 1) {
					goto out;
				}
				ncrl++;
			}
		}
		sk_X509_INFO_pop_free(infos, X509_INFO_free);
		infos = NULL;
		BIO_free(bio);
		bio = NULL;
	}
	if (ncert == 0 || (crl != NULL && ncrl == 0)) {
		goto out;
	}
	if (ncrl > 0
	    && X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK) != 1) {
		goto out;
	}
	SSL_CTX_set_cert_store(cfg->ctx, store); /* takes ownership */
	store = NULL;
	cfg->have_ca = true;
	rv = 0;
out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(bio);
	X509_STORE_free(store);
	ERR_clear_error();
	return rv;
}

static int
km_tls_pass_cb(char *buf, int size, int rwflag, void *u)
{
	size_t n;

	(void)rwflag;
	if (u == NULL || size <= 0) {
		return 0;
	}
	n = strlen(u);
	if (n > (size_t)size) {
		return 0;
	}
	memcpy(buf, u, n);
	return (int)n;
}

/*
 * The last identity parsed (leaf, chain, key), by the SHA-256 of its PEM
 * text: a client opens one TLS config per node, all with the same
 * identity, and parsing the PEM key and certificate each time was a third
 * of C_Initialize (callgrind, docs/performance.md).  Only unencrypted keys
 * are kept; the key is the one the caller already holds in memory.
 */
static struct {
	pthread_mutex_t mu;
	uint8_t digest[32];
	X509 *x;
	STACK_OF(X509) *chain;
	EVP_PKEY *pkey;
} km_tls_id_cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int
km_tls_id_digest(const char *cert, const char *key, uint8_t out[32])
{
	EVP_MD_CTX *md;
	int ok;

	if ((md = EVP_MD_CTX_new()) == NULL) {
		return -1;
	}
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
	    && EVP_DigestUpdate(md, cert, strlen(cert) + 1) == 1
	    && EVP_DigestUpdate(md, key, strlen(key) + 1) == 1
	    && EVP_DigestFinal_ex(md, out, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* Parses @cert (leaf, then its chain) and @key. */
static int
km_tls_id_parse(const char *cert, const char *key, const char *pass,
    X509 **x, STACK_OF(X509) **chain, EVP_PKEY **pkey)
{
	BIO *bio = NULL;
	X509 *extra = NULL;
	int rv = NNG_EINVAL;

	*x = NULL;
	*pkey = NULL;
	if ((*chain = sk_X509_new_null()) == NULL
	    || (bio = BIO_new_mem_buf(cert, -1)) == NULL
	    || (*x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		goto out;
	}
	/* Anything after the leaf is its chain. */
	while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(*chain, extra) <= 0) {
			X509_free(extra);
			goto out;
		}
	}
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key, -1)) == NULL
	    || (*pkey = PEM_read_bio_PrivateKey(
	            bio, NULL, km_tls_pass_cb, (void *)pass))
	        == NULL) {
		goto out;
	}
	rv = 0;
out:
	BIO_free(bio);
	if (rv != 0) {
		X509_free(*x);
		sk_X509_pop_free(*chain, X509_free);
		EVP_PKEY_free(*pkey);
		*x = NULL;
		*chain = NULL;
		*pkey = NULL;
	}
	return rv;
}

static int
km_tls_cfg_own_cert(nng_tls_engine_config *cfg, const char *cert,
    const char *key, const char *pass)
{
	X509 *x = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *pkey = NULL;
	uint8_t digest[32];
	bool cacheable, hit = false;
	int i, rv = NNG_EINVAL;

	if (cert == NULL || key == NULL) {
		goto out;
	}
	cacheable = pass == NULL && km_tls_id_digest(cert, key, digest) == 0;
	if (cacheable) {
		pthread_mutex_lock(&km_tls_id_cache.mu);
		if (km_tls_id_cache.x != NULL
		    && memcmp(km_tls_id_cache.digest, digest, 32) == 0
		    && X509_up_ref(km_tls_id_cache.x) == 1) {
			x = km_tls_id_cache.x;
			if (EVP_PKEY_up_ref(km_tls_id_cache.pkey) == 1) {
				pkey = km_tls_id_cache.pkey;
			}
			chain = X509_chain_up_ref(km_tls_id_cache.chain);
			hit = pkey != NULL && chain != NULL;
		}
		pthread_mutex_unlock(&km_tls_id_cache.mu);
		if (!hit) {
			X509_free(x);
			EVP_PKEY_free(pkey);
			sk_X509_pop_free(chain, X509_free);
			x = NULL;
			pkey = NULL;
			chain = NULL;
		}
	}
	if (!hit && km_tls_id_parse(cert, key, pass, &x, &chain, &pkey) != 0) {
		goto out;
	}
	if (SSL_CTX_use_certificate(cfg->ctx, x) != 1) {
		goto out;
	}
	for (i = 0; i < sk_X509_num(chain); i++) {
		/* add1: the context takes its own reference */
		if (SSL_CTX_add1_chain_cert(cfg->ctx, sk_X509_value(chain, i))
		    != 1) {
			goto out;
		}
	}
	if (SSL_CTX_use_PrivateKey(cfg->ctx, pkey) != 1
	    || SSL_CTX_check_private_key(cfg->ctx) != 1) {
		goto out;
	}
	if (cacheable && !hit) {
		pthread_mutex_lock(&km_tls_id_cache.mu);
		if (X509_up_ref(x) == 1 && EVP_PKEY_up_ref(pkey) == 1) {
			X509_free(km_tls_id_cache.x);
			sk_X509_pop_free(km_tls_id_cache.chain, X509_free);
			EVP_PKEY_free(km_tls_id_cache.pkey);
			km_tls_id_cache.x = x;
			km_tls_id_cache.pkey = pkey;
			km_tls_id_cache.chain = X509_chain_up_ref(chain);
			memcpy(km_tls_id_cache.digest, digest, 32);
			if (km_tls_id_cache.chain == NULL) {
				/* no chain copy: forget the entry */
				X509_free(km_tls_id_cache.x);
				EVP_PKEY_free(km_tls_id_cache.pkey);
				km_tls_id_cache.x = NULL;
				km_tls_id_cache.pkey = NULL;
			}
		}
		pthread_mutex_unlock(&km_tls_id_cache.mu);
	}
	cfg->have_cert = true;
	rv = 0;
out:
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return rv;
}

static int
km_tls_cfg_version(
    nng_tls_engine_config *cfg, nng_tls_version min, nng_tls_version max)
{
	(void)cfg;
	/*
	 * The range is clamped to TLS 1.3; a range without 1.3 in it cannot
	 * be served (the engine contract's NNG_ENOTSUP).
	 */
	if (min > max || max < NNG_TLS_1_3) {
		return NNG_ENOTSUP;
	}
	return 0;
}

/* ---- connection ops ---------------------------------------------------- */

static void
km_tls_release_slot(nng_tls_engine_conn *c)
{
	if (c->counted) {
		c->counted = false;
		atomic_fetch_sub(&c->cfg->pending, 1);
	}
}

static void
km_tls_record_failure(nng_tls_engine_conn *c, int r, const char *why)
{
	km_tls_hook *h = c->cfg->hook;

	if (c->failed) {
		return;
	}
	c->failed = true;
	atomic_fetch_add(&km_tls_bad, 1);
	km_log_warn_r(r, "KM-TLS-HANDSHAKE", "%s handshake refused: %s",
	    c->cfg->mode == NNG_TLS_MODE_SERVER ? "server" : "client", why);
	if (h != NULL) {
		pthread_mutex_lock(&h->mu);
		h->info.handshakes_bad++;
		h->info.last_error = r;
		snprintf(h->info.last_reason, sizeof(h->info.last_reason),
		    "%s", why);
		pthread_mutex_unlock(&h->mu);
	}
}

static void
km_tls_record_success(nng_tls_engine_conn *c)
{
	km_tls_hook *h = c->cfg->hook;
	X509 *peer;

	c->done = true;
	km_tls_release_slot(c);
	atomic_fetch_add(&km_tls_ok, 1);
	if (h == NULL) {
		return;
	}
	peer = SSL_get0_peer_certificate(c->ssl);
	pthread_mutex_lock(&h->mu);
	h->info.handshakes_ok++;
	h->info.handshake_ns = km_mono_ns() - c->start_ns;
	snprintf(h->info.version, sizeof(h->info.version), "%s",
	    SSL_get_version(c->ssl));
	snprintf(h->info.cipher, sizeof(h->info.cipher), "%s",
	    SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
	h->info.peer[0] = '\0';
	if (peer != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
		    NID_commonName, h->info.peer, sizeof(h->info.peer));
	}
	pthread_mutex_unlock(&h->mu);
}

/*
 * Turn an OpenSSL result into an nng code: NNG_EAGAIN when nng has to move
 * bytes first, otherwise the connection is finished.
 */
static int
km_tls_alert_error(unsigned long e)
{
	if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
		return KM_ERR_TLS;
	}
	switch (ERR_GET_REASON(e)) {
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
		return KM_ERR_REVOKED;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return KM_ERR_AUTH;
	default:
		return KM_ERR_TLS;
	}
}

/*
 * Turn an OpenSSL result into an nng code: NNG_EAGAIN when nng has to move
 * bytes first, otherwise the connection is finished.  A failure before any
 * application data is a refused handshake and is recorded: in TLS 1.3 the
 * client finishes before the server has judged the client's certificate,
 * so the server's refusal reaches the client as an alert on its first read.
 */
static int
km_tls_result(nng_tls_engine_conn *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);
	unsigned long last;
	long vr;
	char why[160];

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return NNG_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		/*
		 * The peer's close_notify.  Not NNG_ECLOSED: that code means
		 * "we closed it" to nng, and a listener whose accept fails
		 * with it stops accepting for good.
		 */
		ERR_clear_error();
		return NNG_ECONNSHUT;
	default:
		break;
	}
	last = ERR_peek_last_error();
	vr = SSL_get_verify_result(c->ssl);
	if (!c->got_data && !SSL_is_init_finished(c->ssl) && vr != X509_V_OK) {
		snprintf(why, sizeof(why), "peer certificate: %s",
		    X509_verify_cert_error_string(vr));
		km_tls_record_failure(c,
		    vr == X509_V_ERR_CERT_REVOKED ? KM_ERR_REVOKED
		                                  : KM_ERR_AUTH,
		    why);
		ERR_clear_error();
		return NNG_EPEERAUTH;
	}
	if (!c->got_data) {
		if (last != 0) {
			ERR_error_string_n(last, why, sizeof(why));
		} else {
			snprintf(why, sizeof(why), "connection closed");
		}
		km_tls_record_failure(c, km_tls_alert_error(last), why);
	}
	ERR_clear_error();
	return e == SSL_ERROR_SYSCALL ? NNG_ECONNSHUT : NNG_ECRYPTO;
}

static int
km_tls_conn_init(nng_tls_engine_conn *c, void *nng, nng_tls_engine_config *cfg)
{
	BIO *bio = NULL;
	X509_STORE *store = NULL;
	int rv = NNG_ENOMEM;

	c->nng = nng;
	c->cfg = cfg;
	c->start_ns = km_mono_ns();
	c->tx_state = km_tls_coalescing() ? KM_TX_HELLO : KM_TX_OFF;
	c->tx_need = 8;
	if (!cfg->have_cert || (!cfg->have_ca && cfg->hook == NULL)) {
		km_log_error("KM-TLS-CONFIG",
		    "TLS config lacks its own certificate or the CA");
		return NNG_EINVAL;
	}
	if (cfg->mode == NNG_TLS_MODE_SERVER) {
		if (atomic_fetch_add(&cfg->pending, 1) >= KM_TLS_MAX_PENDING) {
			atomic_fetch_sub(&cfg->pending, 1);
			km_log_warn("KM-TLS-BUSY",
			    "%d handshakes pending; connection dropped",
			    KM_TLS_MAX_PENDING);
			return NNG_EBUSY;
		}
		c->counted = true;
	}
	if ((c->ssl = SSL_new(cfg->ctx)) == NULL
	    || (bio = BIO_new(km_tls_bio_meth)) == NULL) {
		goto out;
	}
	BIO_set_data(bio, nng);
	SSL_set_bio(c->ssl, bio, bio);
	bio = NULL;
	if (cfg->hook != NULL) {
		pthread_mutex_lock(&cfg->hook->mu);
		if ((store = cfg->hook->store) != NULL) {
			X509_STORE_up_ref(store);
		}
		pthread_mutex_unlock(&cfg->hook->mu);
		/* The current CA + CRL, so a CRL update reaches new links. */
		if (store != NULL
		    && SSL_set1_verify_cert_store(c->ssl, store) != 1) {
			goto out;
		}
	}
	if (cfg->mode == NNG_TLS_MODE_SERVER) {
		SSL_set_accept_state(c->ssl);
	} else {
		/*
		 * The server must be the node we meant: its DNS SAN must
		 * match the expected name (RFC 6125 through OpenSSL).
		 */
		if (cfg->server_name == NULL
		    || X509_VERIFY_PARAM_set1_host(
		           SSL_get0_param(c->ssl), cfg->server_name, 0)
		        != 1) {
			km_log_error("KM-TLS-CONFIG",
			    "client TLS config has no usable server name");
			rv = NNG_EINVAL;
			goto out;
		}
		X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(c->ssl),
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		(void)SSL_set_tlsext_host_name(c->ssl, cfg->server_name);
		SSL_set_connect_state(c->ssl);
	}
	rv = 0;
out:
	if (rv != 0) {
		km_tls_release_slot(c);
	}
	X509_STORE_free(store);
	BIO_free(bio);
	ERR_clear_error();
	return rv;
}

static void
km_tls_conn_fini(nng_tls_engine_conn *c)
{
	km_tls_release_slot(c);
	SSL_free(c->ssl);
	c->ssl = NULL;
	free(c->tx);
	c->tx = NULL;
	c->tx_cap = 0;
}

static void
km_tls_conn_close(nng_tls_engine_conn *c)
{
	if (c->ssl != NULL && SSL_is_init_finished(c->ssl)) {
		(void)SSL_shutdown(c->ssl); /* a close_notify, no wait */
	}
	ERR_clear_error();
}

static int
km_tls_conn_handshake(nng_tls_engine_conn *c)
{
	int ret;

	ERR_clear_error();
	if ((ret = SSL_do_handshake(c->ssl)) == 1) {
		if (!c->done) {
			km_tls_record_success(c);
		}
		return 0;
	}
	return km_tls_result(c, ret);
}

static int
km_tls_conn_recv(nng_tls_engine_conn *c, uint8_t *buf, size_t *szp)
{
	size_t got = 0;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_read_ex(c->ssl, buf, *szp, &got)) == 1) {
		if (!c->done && SSL_is_init_finished(c->ssl)) {
			km_tls_record_success(c);
		}
		c->got_data = true;
		*szp = got;
		return 0;
	}
	return km_tls_result(c, ret);
}

/* One SSL_write of @buf as it comes (the uncoalesced path). */
static int
km_tls_write_now(nng_tls_engine_conn *c, const uint8_t *buf, size_t *szp)
{
	size_t put = 0;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_write_ex(c->ssl, buf, *szp, &put)) == 1) {
		if (!c->done && SSL_is_init_finished(c->ssl)) {
			km_tls_record_success(c);
		}
		*szp = put;
		return 0;
	}
	return km_tls_result(c, ret);
}

/* Room for @need gathered bytes; false when memory is short. */
static bool
km_tls_tx_reserve(nng_tls_engine_conn *c, size_t need)
{
	uint8_t *p;
	size_t cap = need < 2048 ? 2048 : need;

	if (need <= c->tx_cap) {
		return true;
	}
	if ((p = realloc(c->tx, cap)) == NULL) {
		return false;
	}
	c->tx = p;
	c->tx_cap = cap;
	return true;
}

static uint64_t
km_tls_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

/*
 * Write the gathered unit tx[tx_done..tx_len) with SSL_write until all of
 * it is taken, then report the bytes of nng's last piece as sent.  On
 * NNG_EAGAIN nothing is reported: nng keeps that piece at the head of its
 * queue and calls again with it once its TCP send has made room, and the
 * write resumes where it stopped (OpenSSL wants the same bytes again after
 * WANT_WRITE, which tx still holds).  Reporting the last piece only once
 * its frame is written matters: nng calls the engine only while it has
 * something queued, so a frame accepted whole but left unwritten could
 * wait for ever.
 */
static int
km_tls_tx_flush(nng_tls_engine_conn *c, size_t *szp)
{
	size_t put;
	int ret;

	while (c->tx_done < c->tx_len) {
		put = 0;
		ERR_clear_error();
		ret = SSL_write_ex(
		    c->ssl, c->tx + c->tx_done, c->tx_len - c->tx_done, &put);
		if (ret != 1) {
			return km_tls_result(c, ret);
		}
		c->tx_done += put;
	}
	if (!c->done && SSL_is_init_finished(c->ssl)) {
		km_tls_record_success(c);
	}
	*szp = c->tx_last;
	c->tx_flushing = false;
	c->tx_state = c->tx_next;
	c->tx_len = c->tx_done = c->tx_last = 0;
	c->tx_need = 8;
	if (c->tx_cap > KM_TLS_TX_KEEP) {
		free(c->tx);
		c->tx = NULL;
		c->tx_cap = 0;
	}
	return 0;
}

/*
 * The SP connection header nng's tls+tcp transport sends first: "\0SP\0",
 * a 16-bit protocol number, two zero bytes.  Anything else is some other
 * use of the TLS stream (nng's stream API, wss://), whose framing the
 * engine does not know, so it stops gathering for the connection.
 */
static bool
km_tls_is_sp_header(const uint8_t *h)
{
	return h[0] == 0 && h[1] == 'S' && h[2] == 'P' && h[3] == 0
	    && h[6] == 0 && h[7] == 0;
}

/*
 * Gather nng's pieces into one TLS record per SP message.  Pieces before
 * the last of a unit are copied and reported as sent at once, so nng moves
 * on to the next; the last one is reported only once the whole unit went
 * through SSL_write (km_tls_tx_flush).  The header and an oversized
 * frame's length go out as units of their own; an oversized body and
 * anything after an unknown header pass straight through.
 */
static int
km_tls_conn_send(nng_tls_engine_conn *c, const uint8_t *buf, size_t *szp)
{
	size_t take;
	uint64_t flen;

	if (c->tx_flushing) {
		/*
		 * nng calls again with the piece whose bytes were gathered
		 * last; a shorter one means its view and ours differ.
		 */
		if (*szp < c->tx_last) {
			km_log_error("KM-TLS-FRAMING",
			    "send piece changed while its frame was pending");
			return NNG_EINTERNAL;
		}
		return km_tls_tx_flush(c, szp);
	}
	if (c->tx_state == KM_TX_OFF) {
		return km_tls_write_now(c, buf, szp);
	}
	if (c->tx_state == KM_TX_DIRECT) {
		int rv;

		if (*szp > c->tx_direct) {
			*szp = (size_t)c->tx_direct;
		}
		if ((rv = km_tls_write_now(c, buf, szp)) == 0
		    && (c->tx_direct -= *szp) == 0) {
			c->tx_state = KM_TX_PREFIX;
		}
		return rv;
	}
	if (!km_tls_tx_reserve(c, c->tx_need)) {
		return NNG_ENOMEM;
	}
	take = c->tx_need - c->tx_len;
	if (take > *szp) {
		take = *szp;
	}
	memcpy(c->tx + c->tx_len, buf, take);
	c->tx_len += take;
	if (c->tx_len < c->tx_need) {
		*szp = take;
		return 0;
	}
	/* A unit is complete (or, for a length, known). */
	c->tx_next = KM_TX_PREFIX;
	switch (c->tx_state) {
	case KM_TX_HELLO:
		if (!km_tls_is_sp_header(c->tx)) {
			c->tx_next = KM_TX_OFF;
		}
		break;
	case KM_TX_PREFIX:
		flen = km_tls_be64(c->tx);
		if (flen == 0) {
			/* a message with no header and no body */
			atomic_fetch_add(&km_tls_frames_gathered, 1);
			break;
		}
		if (flen <= KM_TLS_COALESCE_MAX
		    && km_tls_tx_reserve(c, 8 + (size_t)flen)) {
			c->tx_state = KM_TX_FRAME;
			c->tx_need = 8 + (size_t)flen;
			*szp = take;
			return 0;
		}
		/* Too large to gather: the length alone, then the body. */
		atomic_fetch_add(&km_tls_frames_direct, 1);
		c->tx_next = KM_TX_DIRECT;
		c->tx_direct = flen;
		break;
	default: /* KM_TX_FRAME */
		atomic_fetch_add(&km_tls_frames_gathered, 1);
		break;
	}
	c->tx_last = take;
	c->tx_flushing = true;
	return km_tls_tx_flush(c, szp);
}

static bool
km_tls_conn_verified(nng_tls_engine_conn *c)
{
	return SSL_is_init_finished(c->ssl)
	    && SSL_get0_peer_certificate(c->ssl) != NULL
	    && SSL_get_verify_result(c->ssl) == X509_V_OK;
}

static int km_tls_cfg_init_g(nng_tls_engine_config *cfg, nng_tls_mode mode);
static void km_tls_cfg_fini_g(nng_tls_engine_config *cfg);

static nng_tls_engine_config_ops km_tls_config_ops = {
	.size = sizeof(nng_tls_engine_config),
	.init = km_tls_cfg_init_g,
	.fini = km_tls_cfg_fini_g,
	.server = km_tls_cfg_server,
	.auth = km_tls_cfg_auth,
	.ca_chain = km_tls_cfg_ca_chain,
	.own_cert = km_tls_cfg_own_cert,
	.version = km_tls_cfg_version,
};

/*
 * Process exit.  nng's threads outlive C_Finalize (and an application
 * may exit without calling it), so at exit() a connection may still be in
 * the middle of a handshake on one of them while OpenSSL's own atexit
 * handler frees the library context under it: `openssl pkeyutl` through
 * libp11's engine crashed so in about one exit in ten while the other
 * nodes' handshakes were still running.  km_tls_atexit() is registered
 * after OpenSSL's (atexit runs last-in first-out), waits for every engine
 * call in progress and lets none start afterwards; the connections are
 * then left to the exiting process.
 */
static pthread_rwlock_t km_tls_exit_lock = PTHREAD_RWLOCK_INITIALIZER;
static bool km_tls_exiting;
static pthread_once_t km_tls_exit_once = PTHREAD_ONCE_INIT;

static void
km_tls_atexit(void)
{
	pthread_rwlock_wrlock(&km_tls_exit_lock);
	km_tls_exiting = true;
	pthread_rwlock_unlock(&km_tls_exit_lock);
}

static void
km_tls_atexit_register(void)
{
	/* OpenSSL's atexit is in place once it has initialised */
	(void)OPENSSL_init_crypto(0, NULL);
	(void)atexit(km_tls_atexit);
}

/* false when the process is exiting: the caller must not touch OpenSSL */
static bool
km_tls_enter(void)
{
	pthread_rwlock_rdlock(&km_tls_exit_lock);
	if (km_tls_exiting) {
		pthread_rwlock_unlock(&km_tls_exit_lock);
		return false;
	}
	return true;
}

static void
km_tls_leave(void)
{
	pthread_rwlock_unlock(&km_tls_exit_lock);
}

bool
km_net_work_enter(void)
{
	(void)pthread_once(&km_tls_exit_once, km_tls_atexit_register);
	return km_tls_enter();
}

void
km_net_work_leave(void)
{
	km_tls_leave();
}

static int
km_tls_cfg_init_g(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	int rv;

	if (!km_tls_enter()) {
		return NNG_ECLOSED;
	}
	rv = km_tls_cfg_init(cfg, mode);
	km_tls_leave();
	return rv;
}

static void
km_tls_cfg_fini_g(nng_tls_engine_config *cfg)
{
	if (km_tls_enter()) {
		km_tls_cfg_fini(cfg);
		km_tls_leave();
	}
}

static int
km_tls_conn_init_g(
    nng_tls_engine_conn *c, void *nng, nng_tls_engine_config *cfg)
{
	int rv;

	if (!km_tls_enter()) {
		return NNG_ECLOSED;
	}
	rv = km_tls_conn_init(c, nng, cfg);
	km_tls_leave();
	return rv;
}

static void
km_tls_conn_fini_g(nng_tls_engine_conn *c)
{
	if (km_tls_enter()) {
		km_tls_conn_fini(c);
		km_tls_leave();
	}
}

static void
km_tls_conn_close_g(nng_tls_engine_conn *c)
{
	if (km_tls_enter()) {
		km_tls_conn_close(c);
		km_tls_leave();
	}
}

static int
km_tls_conn_handshake_g(nng_tls_engine_conn *c)
{
	int rv;

	if (!km_tls_enter()) {
		return NNG_ECLOSED;
	}
	rv = km_tls_conn_handshake(c);
	km_tls_leave();
	return rv;
}

static int
km_tls_conn_recv_g(nng_tls_engine_conn *c, uint8_t *buf, size_t *szp)
{
	int rv;

	if (!km_tls_enter()) {
		return NNG_ECLOSED;
	}
	rv = km_tls_conn_recv(c, buf, szp);
	km_tls_leave();
	return rv;
}

static int
km_tls_conn_send_g(nng_tls_engine_conn *c, const uint8_t *buf, size_t *szp)
{
	int rv;

	if (!km_tls_enter()) {
		return NNG_ECLOSED;
	}
	rv = km_tls_conn_send(c, buf, szp);
	km_tls_leave();
	return rv;
}

static nng_tls_engine_conn_ops km_tls_conn_ops = {
	.size = sizeof(nng_tls_engine_conn),
	.init = km_tls_conn_init_g,
	.fini = km_tls_conn_fini_g,
	.close = km_tls_conn_close_g,
	.handshake = km_tls_conn_handshake_g,
	.recv = km_tls_conn_recv_g,
	.send = km_tls_conn_send_g,
	.verified = km_tls_conn_verified,
};

static const nng_tls_engine km_tls_engine = {
	.version = NNG_TLS_ENGINE_VERSION,
	.config_ops = &km_tls_config_ops,
	.conn_ops = &km_tls_conn_ops,
	.name = KM_TLS_ENGINE_NAME,
	.description = "keymesh OpenSSL 3 engine (TLS 1.3 only, mutual auth)",
	.fips_mode = false,
};

int
km_tls_register(void)
{
	int r = 0, rv;

	(void)pthread_once(&km_tls_exit_once, km_tls_atexit_register);
	pthread_mutex_lock(&km_tls_mu);
	if (km_tls_bio_meth == NULL) {
		BIO_METHOD *m;

		m = BIO_meth_new(
		    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "keymesh-nng");
		if (m == NULL
		    || BIO_meth_set_write_ex(m, km_tls_bio_write) != 1
		    || BIO_meth_set_read_ex(m, km_tls_bio_read) != 1
		    || BIO_meth_set_ctrl(m, km_tls_bio_ctrl) != 1
		    || BIO_meth_set_create(m, km_tls_bio_create) != 1
		    || BIO_meth_set_destroy(m, km_tls_bio_destroy) != 1) {
			BIO_meth_free(m);
			ERR_clear_error();
			r = KM_ERR_CRYPTO;
			goto out;
		}
		km_tls_bio_meth = m;
	}
	/*
	 * nng_tls_engine_name() runs nng's init, which after an nng_fini()
	 * registers mbed TLS again: check the name every time and register
	 * ours whenever it is not the one in place.
	 */
	if (strcmp(nng_tls_engine_name(), KM_TLS_ENGINE_NAME) != 0) {
		if ((rv = nng_tls_engine_register(&km_tls_engine)) != 0) {
			r = km_net_err(rv);
			km_log_error_r(r, "KM-TLS-REGISTER",
			    "cannot register the OpenSSL TLS engine");
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&km_tls_mu);
	return r;
}

int
km_tls_config_new(nng_tls_mode mode, km_tls_hook *hook, const char *ca_pem,
    const char *crl_pem, const char *cert_pem, const char *key_pem,
    const char *server_name, nng_tls_config **out)
{
	nng_tls_config *cfg = NULL;
	int r, rv;

	if ((r = km_tls_register()) != 0) {
		return r;
	}
	km_tls_pending_hook = hook;
	rv = nng_tls_config_alloc(&cfg, mode);
	km_tls_pending_hook = NULL;
	if (rv != 0) {
		return km_net_err(rv);
	}
	if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED))
	        != 0
	    || (rv = nng_tls_config_version(cfg, NNG_TLS_1_3, NNG_TLS_1_3))
	        != 0
	    || (rv = nng_tls_config_ca_chain(cfg, ca_pem, crl_pem)) != 0
	    || (rv = nng_tls_config_own_cert(cfg, cert_pem, key_pem, NULL))
	        != 0
	    || (server_name != NULL
	        && (rv = nng_tls_config_server_name(cfg, server_name)) != 0)) {
		nng_tls_config_free(cfg);
		/* A wrong engine in place shows as ENOTSUP from auth. */
		return rv == NNG_EINVAL ? KM_ERR_BAD_FORMAT : km_net_err(rv);
	}
	*out = cfg;
	return 0;
}
