/*
 * Signed envelopes: the codec, the certificate cache and the replay cache.
 *
 * Every request and reply carries the sender's certificate and an
 * ECDSA P-256 / SHA-256 signature (FIPS 186-4, RFC 5758 for the X.509
 * naming; the signature is the DER ECDSA-Sig-Value of RFC 3279) over all
 * preceding bytes, so the receiver learns who sent each message even though
 * nng 1.5.2 does not hand the TLS peer to the reader (DESIGN.md §5 (a)).
 */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "net/envelope.h"
#include "util/err.h"
#include "util/log.h"

/* ---- signature ---------------------------------------------------------
 *
 * The envelope's signature is over SHA-256 of the signed bytes.  They are
 * hashed here with a SHA-256 fetched once, and the digest is signed or
 * verified with EVP_PKEY_sign/EVP_PKEY_verify, the signature digest set to
 * SHA-256 so that the bytes on the wire are exactly what
 * EVP_DigestSign/EVP_DigestVerify produce (for an RSA key too).  The
 * EVP_Digest{Sign,Verify}Init_ex pair looks both algorithms up by name on
 * every call: 16 us more per signature and 24 us more per verification on
 * the development machine, four of each for every partial
 * (docs/performance.md, section 6).
 */
static EVP_MD *km_env_md;
static pthread_once_t km_env_md_once = PTHREAD_ONCE_INIT;

static void
km_env_md_init(void)
{
	km_env_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256 of @data into @dg; @md is a scratch context (reset on return). */
static int
km_env_digest(EVP_MD_CTX *md, const uint8_t *data, size_t len, uint8_t dg[32])
{
	unsigned int n = 0;
	int ok;

	pthread_once(&km_env_md_once, km_env_md_init);
	if (km_env_md == NULL) {
		return KM_ERR_CRYPTO;
	}
	ok = EVP_DigestInit_ex(md, km_env_md, NULL) == 1
	    && EVP_DigestUpdate(md, data, len) == 1
	    && EVP_DigestFinal_ex(md, dg, &n) == 1 && n == 32;
	EVP_MD_CTX_reset(md);
	return ok ? 0 : KM_ERR_CRYPTO;
}

/* A signing or verifying context for @key with the digest set. */
static EVP_PKEY_CTX *
km_env_pctx(EVP_PKEY *key, bool sign)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);

	if (pc == NULL
	    || (sign ? EVP_PKEY_sign_init(pc) : EVP_PKEY_verify_init(pc)) != 1
	    || EVP_PKEY_CTX_set_signature_md(pc, km_env_md) != 1) {
		EVP_PKEY_CTX_free(pc);
		return NULL;
	}
	return pc;
}

/* ---- codec ------------------------------------------------------------- */

int
km_env_parse(const uint8_t *p, size_t len, size_t body_max, km_env *e)
{
	km_buf b;
	uint8_t magic[4], version;
	size_t before_sig;
	int r;

	memset(e, 0, sizeof(*e));
	/* Length-limit before reading a single field. */
	if (len
	    > body_max + KM_ENV_CERT_MAX + KM_ENV_SIG_MAX + KM_ENV_OVERHEAD) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_init_view(&b, p, len);
	if (km_buf_get_raw(&b, magic, sizeof(magic)) != 0
	    || memcmp(magic, KM_ENV_MAGIC, 4) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (km_buf_get_u8(&b, &version) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (version != KM_ENV_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if (km_buf_get_u8(&b, &e->type) != 0 || e->type < KM_ENV_REQUEST
	    || e->type > KM_ENV_ERROR) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((r = km_buf_get_string_ptr(
	         &b, &e->cert, &e->cert_len, KM_ENV_CERT_MAX))
	        != 0
	    || (r = km_buf_get_u64(&b, &e->ts_ms)) != 0
	    || (r = km_buf_get_raw(&b, e->nonce, KM_ENV_NONCE_LEN)) != 0
	    || (r = km_buf_get_string_ptr(
	            &b, &e->body, &e->body_len, body_max))
	        != 0) {
		return r;
	}
	before_sig = b.off;
	if ((r = km_buf_get_string_ptr(
	         &b, &e->sig, &e->sig_len, KM_ENV_SIG_MAX))
	    != 0) {
		return r;
	}
	if (km_buf_remaining(&b) != 0 || e->cert_len == 0 || e->sig_len == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	e->signed_data = p;
	e->signed_len = before_sig;
	return 0;
}

int
km_env_seal(km_buf *out, EVP_MD_CTX *md, uint8_t type, const uint8_t *cert_der,
    size_t cert_len, uint64_t ts_ms, const uint8_t nonce[KM_ENV_NONCE_LEN],
    const void *body, size_t body_len, EVP_PKEY *key)
{
	EVP_MD_CTX *own = NULL;
	EVP_PKEY_CTX *pc = NULL;
	uint8_t sig[KM_ENV_SIG_MAX], dg[32];
	size_t siglen = sizeof(sig);
	int r;

	km_buf_reset(out);
	if (km_buf_put_raw(out, KM_ENV_MAGIC, 4) != 0
	    || km_buf_put_u8(out, KM_ENV_VERSION) != 0
	    || km_buf_put_u8(out, type) != 0
	    || km_buf_put_string(out, cert_der, cert_len) != 0
	    || km_buf_put_u64(out, ts_ms) != 0
	    || km_buf_put_raw(out, nonce, KM_ENV_NONCE_LEN) != 0
	    || km_buf_put_string(out, body, body_len) != 0) {
		return out->failed ? KM_ERR_TOO_LARGE : KM_ERR_ALLOC;
	}
	if (md == NULL && (md = own = EVP_MD_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	if ((r = km_env_digest(md, out->data, out->len, dg)) != 0) {
		goto out;
	}
	if ((pc = km_env_pctx(key, true)) == NULL
	    || EVP_PKEY_sign(pc, sig, &siglen, dg, sizeof(dg)) != 1) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_buf_put_string(out, sig, siglen)) != 0) {
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(own);
	ERR_clear_error();
	return r;
}

int
km_env_error_body(km_buf *out, int code, const char *reason)
{
	km_buf_reset(out);
	if (code >= 0) {
		code = KM_ERR_INTERNAL;
	}
	if (km_buf_put_u32(out, (uint32_t)-code) != 0
	    || km_buf_put_cstring(out, reason != NULL ? reason : "") != 0) {
		return KM_ERR_ALLOC;
	}
	return 0;
}

int
km_env_error_parse(const uint8_t *p, size_t len, int *code)
{
	km_buf b;
	uint32_t c;
	const uint8_t *s;
	size_t slen;

	km_buf_init_view(&b, p, len);
	if (km_buf_get_u32(&b, &c) != 0
	    || km_buf_get_string_ptr(&b, &s, &slen, 256) != 0
	    || km_buf_remaining(&b) != 0 || c == 0 || c > 0x7fffffffu) {
		return KM_ERR_BAD_FORMAT;
	}
	/* An unknown code from a newer peer still reads as an error. */
	*code = c > (uint32_t)-KM_ERR_LAST ? KM_ERR_INTERNAL : -(int)c;
	return 0;
}

/* ---- certificate cache ------------------------------------------------- */

typedef struct km_vcache_ent {
	uint8_t hash[32];
	bool used;
	km_identity id;
	EVP_PKEY *pkey;
} km_vcache_ent;

struct km_verifier {
	pthread_mutex_t mu;
	size_t mask;
	uint64_t gen;
	km_vcache_ent *ents;
};

int
km_verifier_new(size_t cache_max, km_verifier **out)
{
	km_verifier *v;
	size_t n = 1;

	while (n < cache_max && n < (1u << 16)) {
		n <<= 1;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL
	    || (v->ents = calloc(n, sizeof(*v->ents))) == NULL) {
		free(v);
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&v->mu, NULL);
	v->mask = n - 1;
	*out = v;
	return 0;
}

static void
km_verifier_flush(km_verifier *v)
{
	size_t i;

	for (i = 0; i <= v->mask; i++) {
		EVP_PKEY_free(v->ents[i].pkey);
		memset(&v->ents[i], 0, sizeof(v->ents[i]));
	}
}

void
km_verifier_free(km_verifier *v)
{
	if (v == NULL) {
		return;
	}
	km_verifier_flush(v);
	pthread_mutex_destroy(&v->mu);
	free(v->ents);
	free(v);
}

/* Look the certificate up, or verify it and cache it; *pkey is up-ref'd. */
static int
km_verifier_cert(km_verifier *v, X509_STORE *store, uint64_t gen,
    const km_env *e, km_identity *id, EVP_PKEY **pkey)
{
	uint8_t hash[32];
	const uint8_t *p = e->cert;
	km_vcache_ent *ent;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	km_identity fresh;
	int r;

	SHA256(e->cert, e->cert_len, hash);
	pthread_mutex_lock(&v->mu);
	if (gen != v->gen) {
		/* A new CA/CRL: nothing verified before counts any more. */
		km_verifier_flush(v);
		v->gen = gen;
	}
	ent = &v->ents[(hash[0] | (size_t)hash[1] << 8 | (size_t)hash[2] << 16)
	    & v->mask];
	if (ent->used && memcmp(ent->hash, hash, 32) == 0
	    && EVP_PKEY_up_ref(ent->pkey) == 1) {
		*id = ent->id;
		*pkey = ent->pkey;
		pthread_mutex_unlock(&v->mu);
		return 0;
	}
	pthread_mutex_unlock(&v->mu);

	if ((x = d2i_X509(NULL, &p, (long)e->cert_len)) == NULL
	    || p != e->cert + e->cert_len) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if ((r = km_pki_verify(store, x, KM_ROLE_NONE, &fresh)) != 0) {
		goto out;
	}
	if ((k = X509_get_pubkey(x)) == NULL
	    || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC) {
		r = KM_ERR_AUTH;
		goto out;
	}
	pthread_mutex_lock(&v->mu);
	if (gen == v->gen && EVP_PKEY_up_ref(k) == 1) {
		EVP_PKEY_free(ent->pkey);
		memcpy(ent->hash, hash, 32);
		ent->id = fresh;
		ent->pkey = k;
		ent->used = true;
	}
	pthread_mutex_unlock(&v->mu);
	*id = fresh;
	*pkey = k;
	k = NULL;
	r = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return r;
}

int
km_verifier_check(km_verifier *v, X509_STORE *store, uint64_t gen,
    EVP_MD_CTX *md, const km_env *e, km_role role, km_identity *id)
{
	EVP_MD_CTX *own = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pkey = NULL;
	uint8_t dg[32];
	int r;

	if ((r = km_verifier_cert(v, store, gen, e, id, &pkey)) != 0) {
		return r;
	}
	if (km_pki_denied(id)) {
		/* evicted since it was cached (pki.h km_pki_deny_set) */
		r = KM_ERR_REVOKED;
		goto out;
	}
	if (role != KM_ROLE_NONE && id->role != role) {
		r = KM_ERR_AUTH;
		goto out;
	}
	if (md == NULL && (md = own = EVP_MD_CTX_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if ((r = km_env_digest(md, e->signed_data, e->signed_len, dg)) != 0) {
		goto out;
	}
	if ((pc = km_env_pctx(pkey, false)) == NULL
	    || EVP_PKEY_verify(pc, e->sig, e->sig_len, dg, sizeof(dg)) != 1) {
		r = KM_ERR_VERIFY;
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(own);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return r;
}

/* ---- replay cache ------------------------------------------------------ */

/*
 * A ring of nonces in arrival order (so expiry is FIFO: every entry is kept
 * for the same @keep_ms from local arrival), indexed by a chained hash on
 * the nonce's first bytes.  Nonces enter only after their envelope's
 * signature checked, so only a mesh member could try to crowd the table.
 */
typedef struct km_replay_ent {
	uint8_t nonce[KM_ENV_NONCE_LEN];
	uint64_t expiry;
	int32_t next; /* next in the bucket chain, -1 at the end */
} km_replay_ent;

struct km_replay {
	pthread_mutex_t mu;
	uint32_t cap;
	uint32_t mask; /* buckets - 1 */
	uint32_t head;
	uint32_t count;
	km_replay_ent *ring;
	int32_t *buckets;
};

int
km_replay_new(uint32_t cap, km_replay **out)
{
	km_replay *rc;
	uint32_t nb = 1, i;

	if (cap == 0 || cap > (1u << 24)) {
		return KM_ERR_INVALID_ARG;
	}
	while (nb < cap) {
		nb <<= 1;
	}
	if ((rc = calloc(1, sizeof(*rc))) == NULL
	    || (rc->ring = calloc(cap, sizeof(*rc->ring))) == NULL
	    || (rc->buckets = malloc(nb * sizeof(*rc->buckets))) == NULL) {
		if (rc != NULL) {
			free(rc->ring);
		}
		free(rc);
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < nb; i++) {
		rc->buckets[i] = -1;
	}
	pthread_mutex_init(&rc->mu, NULL);
	rc->cap = cap;
	rc->mask = nb - 1;
	*out = rc;
	return 0;
}

void
km_replay_free(km_replay *rc)
{
	if (rc == NULL) {
		return;
	}
	pthread_mutex_destroy(&rc->mu);
	free(rc->ring);
	free(rc->buckets);
	free(rc);
}

static uint32_t
km_replay_bucket(const km_replay *rc, const uint8_t *nonce)
{
	return ((uint32_t)nonce[0] | (uint32_t)nonce[1] << 8
	           | (uint32_t)nonce[2] << 16 | (uint32_t)nonce[3] << 24)
	    & rc->mask;
}

int
km_replay_add(km_replay *rc, const uint8_t nonce[KM_ENV_NONCE_LEN],
    uint64_t now_ms, uint64_t keep_ms)
{
	uint32_t bkt, idx;
	int32_t *pp;
	int r;

	pthread_mutex_lock(&rc->mu);
	/* Expire from the front of the ring. */
	while (rc->count > 0 && rc->ring[rc->head].expiry <= now_ms) {
		km_replay_ent *old = &rc->ring[rc->head];

		pp = &rc->buckets[km_replay_bucket(rc, old->nonce)];
		while (*pp != -1 && *pp != (int32_t)rc->head) {
			pp = &rc->ring[*pp].next;
		}
		if (*pp == (int32_t)rc->head) {
			*pp = old->next;
		}
		rc->head = (rc->head + 1) % rc->cap;
		rc->count--;
	}
	bkt = km_replay_bucket(rc, nonce);
	for (idx = (uint32_t)rc->buckets[bkt]; idx != (uint32_t)-1;
	     idx = (uint32_t)rc->ring[idx].next) {
		if (memcmp(rc->ring[idx].nonce, nonce, KM_ENV_NONCE_LEN)
		    == 0) {
			r = KM_ERR_STALE;
			goto out;
		}
	}
	if (rc->count == rc->cap) {
		r = KM_ERR_BUSY;
		goto out;
	}
	idx = (rc->head + rc->count) % rc->cap;
	memcpy(rc->ring[idx].nonce, nonce, KM_ENV_NONCE_LEN);
	rc->ring[idx].expiry = now_ms + keep_ms;
	rc->ring[idx].next = rc->buckets[bkt];
	rc->buckets[bkt] = (int32_t)idx;
	rc->count++;
	r = 0;
out:
	pthread_mutex_unlock(&rc->mu);
	return r;
}
