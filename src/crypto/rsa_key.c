/*
 * Threshold RSA key objects: public key data with its cached Montgomery
 * context, shares, partials, and their strict serialisation.
 *
 * Scheme: V. Shoup, "Practical Threshold Signatures", EUROCRYPT 2000.
 */
#include "config.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "crypto/rsa_int.h"
#include "util/err.h"
#include "util/secmem.h"

km_rsa_pub *
km_rsa_pub_alloc(void)
{
	km_rsa_pub *pub;

	if ((pub = OPENSSL_zalloc(sizeof(*pub))) == NULL) {
		return NULL;
	}
	return pub;
}

void
km_rsa_pub_free(km_rsa_pub *pub)
{
	unsigned i;

	if (pub == NULL) {
		return;
	}
	BN_free(pub->n_mod);
	BN_free(pub->e);
	BN_free(pub->scale);
	BN_free(pub->v);
	for (i = 0; i <= KM_RSA_MAX_HOLDERS; i++) {
		BN_free(pub->vi[i]);
	}
	BN_free(pub->delta);
	BN_free(pub->eprime);
	BN_free(pub->a);
	BN_free(pub->b_abs);
	BN_MONT_CTX_free(pub->mont);
	EVP_PKEY_free(pub->pkey);
	OPENSSL_free(pub);
}

km_rsa_share *
km_rsa_share_alloc(unsigned index)
{
	km_rsa_share *sh;

	if ((sh = km_secure_alloc(sizeof(*sh))) == NULL) {
		return NULL;
	}
	if ((sh->s = BN_secure_new()) == NULL) {
		km_secret_free(sh, sizeof(*sh));
		return NULL;
	}
	BN_set_flags(sh->s, BN_FLG_CONSTTIME);
	sh->index = index;
	return sh;
}

void
km_rsa_share_free(km_rsa_share *share)
{
	if (share == NULL) {
		return;
	}
	BN_clear_free(share->s);
	km_secret_free(share, sizeof(*share));
}

void
km_rsa_shares_free(km_rsa_share **shares, unsigned n)
{
	unsigned i;

	if (shares == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		km_rsa_share_free(shares[i]);
		shares[i] = NULL;
	}
}

void
km_rsa_partial_free(km_rsa_partial *part)
{
	if (part == NULL) {
		return;
	}
	BN_free(part->xi);
	BN_free(part->c);
	BN_free(part->z);
	OPENSSL_free(part);
}

/*
 * Whether e is a prime of at most 32 bits, by trial division.  Decoding
 * public key data must not draw randomness (BN_check_prime does): inside
 * an application that uses keymesh's own PKCS#11 module as its RAND source
 * (OpenSSL's pkcs11 engine does), that would call back into the module.
 * Public exponents above 2^32 are not used in practice and are refused.
 */
static bool
km_rsa_small_prime(const BIGNUM *e)
{
	BN_ULONG w;
	uint64_t d, v;

	if (BN_num_bits(e) > 32) {
		return false;
	}
	w = BN_get_word(e);
	v = (uint64_t)w;
	if (v < 2) {
		return false;
	}
	if (v < 4) {
		return true;
	}
	if (v % 2 == 0) {
		return false;
	}
	for (d = 3; d * d <= v; d += 2) {
		if (v % d == 0) {
			return false;
		}
	}
	return true;
}

int
km_rsa_pub_bits(const km_rsa_pub *pub)
{
	return BN_num_bits(pub->n_mod);
}

unsigned
km_rsa_pub_k(const km_rsa_pub *pub)
{
	return pub->k;
}

unsigned
km_rsa_pub_n(const km_rsa_pub *pub)
{
	return pub->n;
}

bool
km_rsa_pub_has_proofs(const km_rsa_pub *pub)
{
	return pub->v != NULL;
}

const BIGNUM *
km_rsa_pub_modulus(const km_rsa_pub *pub)
{
	return pub->n_mod;
}

EVP_PKEY *
km_rsa_pub_pkey(const km_rsa_pub *pub)
{
	return pub->pkey;
}

int
km_rsa_pub_scale_bits(const km_rsa_pub *pub)
{
	return BN_num_bits(pub->scale);
}

int
km_rsa_pub_share_bits(const km_rsa_pub *pub)
{
	return pub->share_bits;
}

unsigned
km_rsa_share_index(const km_rsa_share *share)
{
	return share->index;
}

int
km_rsa_share_bits(const km_rsa_share *share)
{
	return BN_num_bits(share->s);
}

unsigned
km_rsa_partial_index(const km_rsa_partial *part)
{
	return part->index;
}

bool
km_rsa_partial_has_proof(const km_rsa_partial *part)
{
	return part->c != NULL;
}

int
km_rsa_factorial(BIGNUM *r, unsigned n)
{
	unsigned i;

	if (n > KM_RSA_MAX_HOLDERS || !BN_one(r)) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 2; i <= n; i++) {
		if (!BN_mul_word(r, i)) {
			return KM_ERR_CRYPTO;
		}
	}
	return 0;
}

int
km_rsa_lagrange(BIGNUM *r, const BIGNUM *delta, const unsigned *set,
    size_t len, unsigned j, BN_CTX *ctx)
{
	BIGNUM *num, *den, *rem;
	size_t t;
	int neg = 0, ret = KM_ERR_CRYPTO;

	BN_CTX_start(ctx);
	num = BN_CTX_get(ctx);
	den = BN_CTX_get(ctx);
	rem = BN_CTX_get(ctx);
	if (rem == NULL || BN_copy(num, delta) == NULL || !BN_one(den)) {
		goto out;
	}
	for (t = 0; t < len; t++) {
		if (set[t] == j) {
			continue;
		}
		if (!BN_mul_word(num, set[t])) {
			goto out;
		}
		if (set[t] > j) {
			if (!BN_mul_word(den, set[t] - j)) {
				goto out;
			}
		} else {
			if (!BN_mul_word(den, j - set[t])) {
				goto out;
			}
			neg ^= 1;
		}
	}
	if (!BN_div(r, rem, num, den, ctx)) {
		goto out;
	}
	/* Delta = n! makes every coefficient an integer (Shoup, sec. 3). */
	if (!BN_is_zero(rem)) {
		ret = KM_ERR_INTERNAL;
		goto out;
	}
	BN_set_negative(r, neg);
	ret = 0;
out:
	BN_CTX_end(ctx);
	return ret;
}

int
km_rsa_exp_signed(BIGNUM *r, const BIGNUM *a, const BIGNUM *p,
    const km_rsa_pub *pub, BN_CTX *ctx)
{
	BIGNUM *base, *ex;
	int ret = KM_ERR_CRYPTO;

	BN_CTX_start(ctx);
	base = BN_CTX_get(ctx);
	ex = BN_CTX_get(ctx);
	if (ex == NULL || BN_copy(ex, p) == NULL) {
		goto out;
	}
	if (BN_is_negative(p)) {
		BN_set_negative(ex, 0);
		if (BN_mod_inverse(base, a, pub->n_mod, ctx) == NULL) {
			/* not a unit: only a faulty value gets here */
			ERR_clear_error();
			ret = KM_ERR_VERIFY;
			goto out;
		}
	} else if (BN_copy(base, a) == NULL) {
		goto out;
	}
	if (!BN_mod_exp_mont(r, base, ex, pub->n_mod, ctx, pub->mont)) {
		goto out;
	}
	ret = 0;
out:
	BN_CTX_end(ctx);
	return ret;
}

static int
km_rsa_make_pkey(km_rsa_pub *pub)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r = KM_ERR_CRYPTO;

	if ((bld = OSSL_PARAM_BLD_new()) == NULL
	    || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, pub->n_mod)
	    || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, pub->e)
	    || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
		goto out;
	}
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL
	    || EVP_PKEY_fromdata_init(pctx) != 1
	    || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params)
	        != 1) {
		/* an ENGINE owns RSA in this process: the legacy way */
		ERR_clear_error();
		EVP_PKEY_free(pkey);
		pkey = NULL;
		if (km_rsa_make_pkey_legacy(pub->n_mod, pub->e, &pkey) != 0) {
			goto out;
		}
	}
	pub->pkey = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int
km_rsa_pub_setup(km_rsa_pub *pub)
{
	BN_CTX *ctx = NULL;
	BIGNUM *t, *rem;
	uint8_t *nb = NULL;
	int r = KM_ERR_CRYPTO;

	if (pub->n_mod == NULL || pub->e == NULL || pub->scale == NULL
	    || pub->k < 1 || pub->k > pub->n || pub->n > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	if ((ctx = BN_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	t = BN_CTX_get(ctx);
	rem = BN_CTX_get(ctx);
	if (rem == NULL || (pub->delta = BN_new()) == NULL
	    || (pub->eprime = BN_new()) == NULL || (pub->a = BN_new()) == NULL
	    || (pub->b_abs = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if ((r = km_rsa_factorial(pub->delta, pub->n)) != 0) {
		goto out;
	}
	r = KM_ERR_CRYPTO;
	/* e' = 4 Delta^2 sigma (Shoup sec. 3; sigma from re-sharing) */
	if (!BN_sqr(pub->eprime, pub->delta, ctx)
	    || !BN_mul(pub->eprime, pub->eprime, pub->scale, ctx)
	    || !BN_lshift(pub->eprime, pub->eprime, 2)) {
		goto out;
	}
	/* a e' + b e = 1 with 0 < a < e, so b = -(a e' - 1) / e */
	if (BN_mod_inverse(pub->a, pub->eprime, pub->e, ctx) == NULL) {
		ERR_clear_error();
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (!BN_mul(t, pub->a, pub->eprime, ctx) || !BN_sub_word(t, 1)
	    || !BN_div(pub->b_abs, rem, t, pub->e, ctx) || !BN_is_zero(rem)) {
		goto out;
	}
	if ((pub->mont = BN_MONT_CTX_new()) == NULL
	    || !BN_MONT_CTX_set(pub->mont, pub->n_mod, ctx)) {
		goto out;
	}
	if ((r = km_rsa_make_pkey(pub)) != 0) {
		goto out;
	}
	pub->bytes = BN_num_bytes(pub->n_mod);
	if ((nb = OPENSSL_malloc((size_t)pub->bytes)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	BN_bn2binpad(pub->n_mod, nb, pub->bytes);
	SHA256(nb, (size_t)pub->bytes, pub->nhash);
	r = 0;
out:
	OPENSSL_free(nb);
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}

/* ---- serialisation ---- */

#define KM_RSA_TAG_PUB     0x4b4d5250u /* "KMRP" */
#define KM_RSA_TAG_SHARE   0x4b4d5253u /* "KMRS" */
#define KM_RSA_TAG_PARTIAL 0x4b4d5258u /* "KMRX" */

static int
km_rsa_put_header(km_buf *b, uint32_t tag)
{
	int r;

	if ((r = km_buf_put_u32(b, tag)) != 0
	    || (r = km_buf_put_u32(b, KM_RSA_FORMAT_VERSION)) != 0) {
		return r;
	}
	return 0;
}

static int
km_rsa_get_header(km_buf *b, uint32_t tag)
{
	uint32_t t, v;

	if (km_buf_get_u32(b, &t) != 0 || km_buf_get_u32(b, &v) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (t != tag) {
		return KM_ERR_BAD_FORMAT;
	}
	if (v != KM_RSA_FORMAT_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	return 0;
}

/* Decoder result: the buffer's own code, else @r. */
static int
km_rsa_buf_code(int got, int r)
{
	return got != 0 ? got : r;
}

int
km_rsa_pub_encode(const km_rsa_pub *pub, km_buf *b)
{
	unsigned i;
	int r;

	if (pub == NULL || b == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_rsa_put_header(b, KM_RSA_TAG_PUB)) != 0
	    || (r = km_buf_put_bn(b, pub->n_mod)) != 0
	    || (r = km_buf_put_bn(b, pub->e)) != 0
	    || (r = km_buf_put_u32(b, pub->k)) != 0
	    || (r = km_buf_put_u32(b, pub->n)) != 0
	    || (r = km_buf_put_bn(b, pub->scale)) != 0
	    || (r = km_buf_put_u32(b, (uint32_t)pub->share_bits)) != 0
	    || (r = km_buf_put_u8(b, pub->v != NULL)) != 0) {
		return r;
	}
	if (pub->v != NULL) {
		if ((r = km_buf_put_bn(b, pub->v)) != 0) {
			return r;
		}
		for (i = 1; i <= pub->n; i++) {
			if ((r = km_buf_put_bn(b, pub->vi[i])) != 0) {
				return r;
			}
		}
	}
	return 0;
}

/* 1 <= x < N */
static bool
km_rsa_in_range(const BIGNUM *x, const BIGNUM *n)
{
	return !BN_is_zero(x) && !BN_is_negative(x) && BN_cmp(x, n) < 0;
}

int
km_rsa_pub_decode(const uint8_t *data, size_t len, km_rsa_pub **out)
{
	km_rsa_pub *pub = NULL;
	km_buf b;
	BN_CTX *ctx = NULL;
	uint32_t k, n, sbits;
	uint8_t hasv;
	size_t nmax = KM_RSA_MAX_BITS / 8;
	unsigned i;
	int bits, r, got = 0;

	if (data == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_buf_init_view(&b, data, len);
	if ((r = km_rsa_get_header(&b, KM_RSA_TAG_PUB)) != 0) {
		return r;
	}
	if ((pub = km_rsa_pub_alloc()) == NULL) {
		return KM_ERR_ALLOC;
	}
	r = KM_ERR_BAD_FORMAT;
	if ((got = km_buf_get_bn(&b, &pub->n_mod, nmax, false)) != 0
	    || (got = km_buf_get_bn(&b, &pub->e, 8, false)) != 0
	    || (got = km_buf_get_u32(&b, &k)) != 0
	    || (got = km_buf_get_u32(&b, &n)) != 0
	    || (got = km_buf_get_bn(
	            &b, &pub->scale, KM_RSA_MAX_SCALE_BITS / 8, false))
	        != 0
	    || (got = km_buf_get_u32(&b, &sbits)) != 0
	    || (got = km_buf_get_u8(&b, &hasv)) != 0) {
		r = km_rsa_buf_code(got, r);
		goto out;
	}
	bits = BN_num_bits(pub->n_mod);
	r = KM_ERR_RANGE;
	if (bits < KM_RSA_MIN_BITS || bits > KM_RSA_MAX_BITS
	    || !BN_is_odd(pub->n_mod)) {
		goto out;
	}
	if (n < 1 || n > KM_RSA_MAX_HOLDERS || k < 1 || k > n) {
		goto out;
	}
	if (BN_is_zero(pub->scale) || sbits < 1
	    || sbits > KM_RSA_MAX_SHARE_BITS || hasv > 1) {
		goto out;
	}
	if ((ctx = BN_CTX_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/* e must be a prime above n for the combination (Shoup sec. 3) */
	if (BN_cmp(pub->e, BN_value_one()) <= 0 || !BN_is_odd(pub->e)
	    || BN_cmp(pub->e, pub->n_mod) >= 0 || BN_num_bits(pub->e) < 2
	    || !km_rsa_small_prime(pub->e)
	    || (BN_num_bits(pub->e) <= 5 && BN_get_word(pub->e) <= n)) {
		goto out;
	}
	pub->k = k;
	pub->n = n;
	pub->share_bits = (int)sbits;
	if (hasv) {
		if ((got = km_buf_get_bn(&b, &pub->v, nmax, false)) != 0) {
			r = km_rsa_buf_code(got, KM_ERR_BAD_FORMAT);
			goto out;
		}
		if (!km_rsa_in_range(pub->v, pub->n_mod)
		    || BN_is_one(pub->v)) {
			goto out;
		}
		for (i = 1; i <= n; i++) {
			got = km_buf_get_bn(&b, &pub->vi[i], nmax, false);
			if (got != 0) {
				r = km_rsa_buf_code(got, KM_ERR_BAD_FORMAT);
				goto out;
			}
			if (!km_rsa_in_range(pub->vi[i], pub->n_mod)) {
				goto out;
			}
		}
	}
	if (km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if ((r = km_rsa_pub_setup(pub)) != 0) {
		goto out;
	}
	*out = pub;
	pub = NULL;
	r = 0;
out:
	BN_CTX_free(ctx);
	km_rsa_pub_free(pub);
	return r;
}

int
km_rsa_share_encode(
    const km_rsa_pub *pub, const km_rsa_share *share, km_buf *b)
{
	int r;

	if (pub == NULL || share == NULL || b == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_rsa_put_header(b, KM_RSA_TAG_SHARE)) != 0
	    || (r = km_buf_put_raw(b, pub->nhash, sizeof(pub->nhash))) != 0
	    || (r = km_buf_put_u32(b, share->index)) != 0
	    || (r = km_buf_put_bn(b, share->s)) != 0) {
		return r;
	}
	return 0;
}

int
km_rsa_share_decode(
    const km_rsa_pub *pub, const uint8_t *data, size_t len, km_rsa_share **out)
{
	km_rsa_share *sh = NULL;
	uint8_t h[32];
	uint32_t idx;
	BIGNUM *s = NULL;
	km_buf b;
	int r, got;

	if (pub == NULL || data == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_buf_init_view(&b, data, len);
	if ((r = km_rsa_get_header(&b, KM_RSA_TAG_SHARE)) != 0) {
		return r;
	}
	if ((got = km_buf_get_raw(&b, h, sizeof(h))) != 0
	    || (got = km_buf_get_u32(&b, &idx)) != 0
	    || (got = km_buf_get_bn(
	            &b, &s, ((size_t)pub->share_bits + 7) / 8, true))
	        != 0) {
		r = got;
		goto out;
	}
	if (km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (CRYPTO_memcmp(h, pub->nhash, sizeof(h)) != 0) {
		/* a share of another key */
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if (idx < 1 || idx > pub->n || BN_is_zero(s)
	    || BN_num_bits(s) > pub->share_bits) {
		r = KM_ERR_RANGE;
		goto out;
	}
	if ((sh = km_rsa_share_alloc(idx)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (BN_copy(sh->s, s) == NULL) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	*out = sh;
	sh = NULL;
	r = 0;
out:
	BN_clear_free(s);
	km_rsa_share_free(sh);
	return r;
}

int
km_rsa_partial_encode(const km_rsa_partial *part, km_buf *b)
{
	int r;

	if (part == NULL || b == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_rsa_put_header(b, KM_RSA_TAG_PARTIAL)) != 0
	    || (r = km_buf_put_u32(b, part->index)) != 0
	    || (r = km_buf_put_bn(b, part->xi)) != 0
	    || (r = km_buf_put_u8(b, part->c != NULL)) != 0) {
		return r;
	}
	if (part->c != NULL
	    && ((r = km_buf_put_bn(b, part->c)) != 0
	        || (r = km_buf_put_bn(b, part->z)) != 0)) {
		return r;
	}
	return 0;
}

int
km_rsa_partial_decode(const km_rsa_pub *pub, const uint8_t *data, size_t len,
    km_rsa_partial **out)
{
	km_rsa_partial *p = NULL;
	uint32_t idx;
	uint8_t hasproof;
	size_t zmax;
	km_buf b;
	int r, got;

	if (pub == NULL || data == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_buf_init_view(&b, data, len);
	if ((r = km_rsa_get_header(&b, KM_RSA_TAG_PARTIAL)) != 0) {
		return r;
	}
	if ((p = OPENSSL_zalloc(sizeof(*p))) == NULL) {
		return KM_ERR_ALLOC;
	}
	/* z = s c + r: at most share_bits + L1 + 1 vs share_bits + 2 L1 */
	zmax = ((size_t)pub->share_bits + 2 * KM_RSA_L1 + 8) / 8 + 1;
	if ((got = km_buf_get_u32(&b, &idx)) != 0
	    || (got = km_buf_get_bn(&b, &p->xi, (size_t)pub->bytes, false))
	        != 0
	    || (got = km_buf_get_u8(&b, &hasproof)) != 0) {
		r = got;
		goto out;
	}
	if (hasproof == 1
	    && ((got = km_buf_get_bn(&b, &p->c, KM_RSA_L1 / 8, false)) != 0
	        || (got = km_buf_get_bn(&b, &p->z, zmax, false)) != 0)) {
		r = got;
		goto out;
	}
	if (hasproof > 1 || km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (idx < 1 || idx > pub->n || !km_rsa_in_range(p->xi, pub->n_mod)) {
		r = KM_ERR_RANGE;
		goto out;
	}
	p->index = idx;
	*out = p;
	p = NULL;
	r = 0;
out:
	km_rsa_partial_free(p);
	return r;
}
