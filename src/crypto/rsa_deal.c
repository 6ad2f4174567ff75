/*
 * Threshold RSA dealer: safe-prime key generation, dealing from given
 * primes, and import of an existing key.
 *
 * V. Shoup, "Practical Threshold Signatures", EUROCRYPT 2000, sec. 3 ("the
 * dealer"): N = pq with p = 2p'+1, q = 2q'+1, m = p'q', d = e^-1 mod m,
 * s_i = f(i) mod m for a random f of degree k-1 with f(0) = d, v a random
 * square mod N (a generator of Q_N with overwhelming probability) and
 * v_i = v^s_i.  Every secret lives in the secure heap and is wiped before
 * the dealer returns; only the shares leave.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/rsa_int.h"
#include "util/err.h"
#include "util/secmem.h"

int
km_rsa_is_safe_prime(const BIGNUM *p, BN_CTX *ctx, bool *safe)
{
	BIGNUM *h;
	int r = KM_ERR_CRYPTO, t;

	*safe = false;
	BN_CTX_start(ctx);
	if ((h = BN_CTX_get(ctx)) == NULL || BN_copy(h, p) == NULL
	    || !BN_rshift1(h, h)) {
		goto out;
	}
	/* p' = (p-1)/2 first: for an ordinary prime it fails at once */
	if ((t = BN_check_prime(h, ctx, NULL)) < 0) {
		goto out;
	}
	if (t == 1) {
		if ((t = BN_check_prime(p, ctx, NULL)) < 0) {
			goto out;
		}
		*safe = (t == 1);
	}
	r = 0;
out:
	BN_CTX_end(ctx);
	return r;
}

/*
 * The common dealer.  @safe selects Shoup's m = p'q' with verification
 * keys; otherwise d is shared modulo lambda(N) = lcm(p-1, q-1) and there
 * are no verification keys (see docs/crypto-rsa.md for why that is still
 * correct: x^lambda(N) = 1 for every unit x).
 */
static int
km_rsa_deal(const BIGNUM *p, const BIGNUM *q, const BIGNUM *e, bool safe,
    unsigned k, unsigned n, km_rsa_pub **pubp, km_rsa_share **shares)
{
	km_rsa_pub *pub = NULL;
	km_rsa_share *sh[KM_RSA_MAX_HOLDERS] = { NULL };
	BIGNUM *coef[KM_RSA_MAX_HOLDERS] = { NULL };
	BN_CTX *ctx = NULL;
	BIGNUM *m, *d, *p1, *q1, *g, *t;
	unsigned i, l;
	int r = KM_ERR_CRYPTO;

	if (k < 1 || k > n || n < 1 || n > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	m = BN_CTX_get(ctx);
	d = BN_CTX_get(ctx);
	p1 = BN_CTX_get(ctx);
	q1 = BN_CTX_get(ctx);
	g = BN_CTX_get(ctx);
	t = BN_CTX_get(ctx);
	if (t == NULL || (pub = km_rsa_pub_alloc()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	BN_set_flags(m, BN_FLG_CONSTTIME);
	BN_set_flags(d, BN_FLG_CONSTTIME);
	if ((pub->n_mod = BN_new()) == NULL || (pub->e = BN_dup(e)) == NULL
	    || (pub->scale = BN_new()) == NULL || !BN_one(pub->scale)
	    || !BN_mul(pub->n_mod, p, q, ctx)) {
		goto out;
	}
	if (BN_num_bits(pub->n_mod) < KM_RSA_MIN_BITS
	    || BN_num_bits(pub->n_mod) > KM_RSA_MAX_BITS
	    || BN_cmp(p, q) == 0) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	pub->k = k;
	pub->n = n;
	pub->share_bits = BN_num_bits(pub->n_mod);
	if (BN_copy(p1, p) == NULL || !BN_sub_word(p1, 1)
	    || BN_copy(q1, q) == NULL || !BN_sub_word(q1, 1)) {
		goto out;
	}
	if (safe) {
		/* m = p'q' = (p-1)(q-1)/4 */
		if (!BN_mul(m, p1, q1, ctx) || !BN_rshift(m, m, 2)) {
			goto out;
		}
	} else {
		/* m = lambda(N) = (p-1)(q-1) / gcd(p-1, q-1) */
		if (!BN_gcd(g, p1, q1, ctx) || !BN_mul(t, p1, q1, ctx)
		    || !BN_div(m, NULL, t, g, ctx)) {
			goto out;
		}
	}
	if (BN_mod_inverse(d, e, m, ctx) == NULL) {
		ERR_clear_error();
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	/* f(X) = d + a_1 X + ... + a_{k-1} X^{k-1} over Z_m */
	for (l = 1; l < k; l++) {
		if ((coef[l] = BN_secure_new()) == NULL
		    || !BN_priv_rand_range_ex(coef[l], m, 0, ctx)) {
			goto out;
		}
		BN_set_flags(coef[l], BN_FLG_CONSTTIME);
	}
	for (i = 1; i <= n; i++) {
		if ((sh[i - 1] = km_rsa_share_alloc(i)) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		/* Horner: s = (..(a_{k-1} i + a_{k-2}) i + ..) i + d */
		BN_zero(sh[i - 1]->s);
		for (l = k; l-- > 0;) {
			if (!BN_mul_word(sh[i - 1]->s, i)
			    || !BN_add(sh[i - 1]->s, sh[i - 1]->s,
			        l == 0 ? d : coef[l])
			    || !BN_nnmod(sh[i - 1]->s, sh[i - 1]->s, m, ctx)) {
				goto out;
			}
		}
	}
	if ((r = km_rsa_pub_setup(pub)) != 0) {
		goto out;
	}
	r = KM_ERR_CRYPTO;
	if (safe) {
		/* v: a random square, a generator of Q_N w.h.p. (Shoup) */
		if ((pub->v = BN_new()) == NULL) {
			goto out;
		}
		do {
			if (!BN_rand_range(t, pub->n_mod)
			    || !BN_mod_sqr(pub->v, t, pub->n_mod, ctx)
			    || !BN_gcd(g, pub->v, pub->n_mod, ctx)) {
				goto out;
			}
		} while (BN_cmp(pub->v, BN_value_one()) <= 0 || !BN_is_one(g));
		for (i = 1; i <= n; i++) {
			if ((pub->vi[i] = BN_new()) == NULL
			    || !BN_mod_exp_mont_consttime(pub->vi[i], pub->v,
			        sh[i - 1]->s, pub->n_mod, ctx, pub->mont)) {
				goto out;
			}
		}
	}
	for (i = 0; i < n; i++) {
		shares[i] = sh[i];
		sh[i] = NULL;
	}
	*pubp = pub;
	pub = NULL;
	r = 0;
out:
	for (l = 0; l < KM_RSA_MAX_HOLDERS; l++) {
		BN_clear_free(coef[l]);
		km_rsa_share_free(sh[l]);
	}
	km_rsa_pub_free(pub);
	/* m, d, p-1, q-1 are the secret; the secure context wipes on free */
	if (t != NULL) {
		BN_clear(m);
		BN_clear(d);
		BN_clear(p1);
		BN_clear(q1);
		BN_clear(g);
		BN_clear(t);
	}
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}

int
km_rsa_deal_from_primes(const BIGNUM *p, const BIGNUM *q, const BIGNUM *e,
    unsigned k, unsigned n, km_rsa_pub **pub, km_rsa_share **shares)
{
	BN_CTX *ctx = NULL;
	BIGNUM *e65537 = NULL;
	bool sp = false, sq = false;
	int r;

	if (p == NULL || q == NULL || pub == NULL || shares == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((ctx = BN_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (e == NULL) {
		if ((e65537 = BN_new()) == NULL
		    || !BN_set_word(e65537, KM_RSA_DEFAULT_E)) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		e = e65537;
	}
	if (BN_get_word(e) <= n || BN_check_prime(e, ctx, NULL) != 1) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = km_rsa_is_safe_prime(p, ctx, &sp)) != 0
	    || (r = km_rsa_is_safe_prime(q, ctx, &sq)) != 0) {
		goto out;
	}
	if (!sp || !sq) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	r = km_rsa_deal(p, q, e, true, k, n, pub, shares);
out:
	BN_free(e65537);
	BN_CTX_free(ctx);
	return r;
}

/* ---- key generation: two safe-prime searches in parallel ---- */

typedef struct km_rsa_search {
	pthread_mutex_t lock;
	km_rsa_progress_fn progress;
	void *arg;
	atomic_int cancel; /* one thread failed or the caller said stop */
} km_rsa_search;

typedef struct km_rsa_prime_job {
	km_rsa_search *search;
	int which;
	int bits;
	BIGNUM *prime; /* secure */
	int r;
} km_rsa_prime_job;

static int
km_rsa_gencb(int stage, int count, BN_GENCB *cb)
{
	km_rsa_prime_job *job = BN_GENCB_get_arg(cb);
	km_rsa_search *s = job->search;
	int stop = 0;

	if (atomic_load(&s->cancel)) {
		return 0;
	}
	if (s->progress != NULL) {
		pthread_mutex_lock(&s->lock);
		stop = s->progress(s->arg, job->which, stage, count);
		pthread_mutex_unlock(&s->lock);
	}
	if (stop) {
		atomic_store(&s->cancel, 1);
		return 0;
	}
	return 1;
}

static void *
km_rsa_prime_thread(void *varg)
{
	km_rsa_prime_job *job = varg;
	BN_GENCB *cb = NULL;
	BN_CTX *ctx = NULL;

	job->r = KM_ERR_ALLOC;
	if ((cb = BN_GENCB_new()) == NULL
	    || (ctx = BN_CTX_secure_new()) == NULL) {
		goto out;
	}
	BN_GENCB_set(cb, km_rsa_gencb, job);
	/* safe = 1: p = 2p'+1 with p' prime (OpenSSL sieves both) */
	if (!BN_generate_prime_ex2(
	        job->prime, job->bits, 1, NULL, NULL, cb, ctx)) {
		ERR_clear_error();
		job->r = atomic_load(&job->search->cancel) ? KM_ERR_CLOSED
		                                           : KM_ERR_CRYPTO;
		atomic_store(&job->search->cancel, 1);
		goto out;
	}
	job->r = 0;
out:
	BN_CTX_free(ctx);
	BN_GENCB_free(cb);
	return NULL;
}

#ifdef KM_TEST_HOOKS
void (*km_rsa_test_prime_hook)(const BIGNUM *p, const BIGNUM *q);
#endif

int
km_rsa_keygen(int bits, unsigned k, unsigned n, km_rsa_progress_fn progress,
    void *arg, km_rsa_pub **pub, km_rsa_share **shares)
{
	km_rsa_search s;
	km_rsa_prime_job job[2];
	pthread_t tid;
	BIGNUM *e = NULL;
	bool started = false;
	int r = KM_ERR_ALLOC, i;

	if (bits < KM_RSA_MIN_BITS || bits > KM_RSA_MAX_BITS || bits % 2
	    || k < 1 || k > n || n > KM_RSA_MAX_HOLDERS || pub == NULL
	    || shares == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&s, 0, sizeof(s));
	memset(job, 0, sizeof(job));
	pthread_mutex_init(&s.lock, NULL);
	s.progress = progress;
	s.arg = arg;
	atomic_init(&s.cancel, 0);
	for (i = 0; i < 2; i++) {
		job[i].search = &s;
		job[i].which = i;
		job[i].bits = bits / 2;
		if ((job[i].prime = BN_secure_new()) == NULL) {
			goto out;
		}
	}
	/* q in a second thread, p in this one: both cores search */
	if (pthread_create(&tid, NULL, km_rsa_prime_thread, &job[1]) != 0) {
		r = KM_ERR_INTERNAL;
		goto out;
	}
	started = true;
	km_rsa_prime_thread(&job[0]);
	pthread_join(tid, NULL);
	started = false;
	if ((r = job[0].r) != 0 || (r = job[1].r) != 0) {
		if (job[0].r == KM_ERR_CLOSED || job[1].r == KM_ERR_CLOSED) {
			r = KM_ERR_CLOSED;
		}
		goto out;
	}
	if (BN_cmp(job[0].prime, job[1].prime) == 0) {
		/* 2^-500: not worth a retry path */
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((e = BN_new()) == NULL || !BN_set_word(e, KM_RSA_DEFAULT_E)) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	r = km_rsa_deal(
	    job[0].prime, job[1].prime, e, true, k, n, pub, shares);
#ifdef KM_TEST_HOOKS
	if (r == 0 && km_rsa_test_prime_hook != NULL) {
		km_rsa_test_prime_hook(job[0].prime, job[1].prime);
	}
#endif
out:
	if (started) {
		pthread_join(tid, NULL);
	}
	for (i = 0; i < 2; i++) {
		BN_clear_free(job[i].prime);
	}
	BN_free(e);
	pthread_mutex_destroy(&s.lock);
	return r;
}

/* ---- import ---- */

int
km_rsa_import_pkey(const EVP_PKEY *pkey, unsigned k, unsigned n,
    km_rsa_pub **pub, km_rsa_share **shares)
{
	BIGNUM *nn = NULL, *e = NULL, *p = NULL, *q = NULL, *f3 = NULL;
	BIGNUM *ps = NULL, *qs = NULL, *t = NULL;
	BN_CTX *ctx = NULL;
	bool sp = false, sq = false;
	int r = KM_ERR_INVALID_ARG;

	if (pkey == NULL || pub == NULL || shares == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		return KM_ERR_NOT_SUPPORTED;
	}
	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &nn)
	    || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e)
	    || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, &p)
	    || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, &q)) {
		ERR_clear_error();
		goto out;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR3, &f3)) {
		r = KM_ERR_NOT_SUPPORTED; /* multi-prime RSA */
		goto out;
	}
	ERR_clear_error();
	if ((ctx = BN_CTX_secure_new()) == NULL
	    || (ps = BN_secure_new()) == NULL || (qs = BN_secure_new()) == NULL
	    || (t = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/* the primes move to the secure heap at once */
	if (BN_copy(ps, p) == NULL || BN_copy(qs, q) == NULL
	    || !BN_mul(t, ps, qs, ctx)) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	BN_clear_free(p);
	BN_clear_free(q);
	p = q = NULL;
	if (BN_cmp(t, nn) != 0) {
		goto out;
	}
	if (BN_num_bits(e) > 32 || BN_get_word(e) <= n
	    || BN_check_prime(e, ctx, NULL) != 1) {
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	if ((r = km_rsa_is_safe_prime(ps, ctx, &sp)) != 0
	    || (sp && (r = km_rsa_is_safe_prime(qs, ctx, &sq)) != 0)) {
		goto out;
	}
	r = km_rsa_deal(ps, qs, e, sp && sq, k, n, pub, shares);
out:
	BN_free(nn);
	BN_free(e);
	BN_clear_free(p);
	BN_clear_free(q);
	BN_clear_free(f3);
	BN_clear_free(ps);
	BN_clear_free(qs);
	BN_free(t);
	BN_CTX_free(ctx);
	return r;
}

int
km_rsa_import(const uint8_t *data, size_t len, unsigned k, unsigned n,
    km_rsa_pub **pub, km_rsa_share **shares)
{
	OSSL_DECODER_CTX *dctx = NULL;
	EVP_PKEY *pkey = NULL;
	const unsigned char *pp = data;
	size_t left = len;
	int r;

	if (data == NULL || len == 0 || len > (1u << 20)) {
		return KM_ERR_INVALID_ARG;
	}
	/* PEM or DER, PKCS#1 or PKCS#8: the decoder finds out */
	dctx = OSSL_DECODER_CTX_new_for_pkey(
	    &pkey, NULL, NULL, "RSA", EVP_PKEY_KEYPAIR, NULL, NULL);
	if (dctx == NULL) {
		return KM_ERR_CRYPTO;
	}
	if (!OSSL_DECODER_from_data(dctx, &pp, &left) || pkey == NULL) {
		ERR_clear_error();
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	r = km_rsa_import_pkey(pkey, k, n, pub, shares);
out:
	EVP_PKEY_free(pkey);
	OSSL_DECODER_CTX_free(dctx);
	return r;
}
