/*
 * Threshold RSA partial results and Shoup's proof of correctness.
 *
 * V. Shoup, "Practical Threshold Signatures", EUROCRYPT 2000, sec. 3:
 * holder i returns x_i = x^(2 Delta s_i) mod N and proves that
 * log_v(v_i) = log_{x~}(x_i^2) with x~ = x^(4 Delta): it picks r of
 * L(N) + 2 L1 bits, sends c = H(v, x~, v_i, x_i^2, v^r, x~^r) and
 * z = s_i c + r (Fiat-Shamir with SHA-256, L1 = 256 here).  The verifier
 * recomputes v^z v_i^-c and x~^z x_i^-2c and checks the hash.
 *
 * The secret exponent s_i (and the proof nonce r) go only through
 * BN_mod_exp_mont_consttime with BN_FLG_CONSTTIME set, and the Montgomery
 * context of N is the one cached in the key (read-only, shared by threads).
 * x^(2 Delta) is computed first with the public exponent 2 Delta, so the
 * secret exponentiation has an exponent of share size, not share size plus
 * the 45 bits of 2 Delta.
 */
#include "config.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto/rsa_int.h"
#include "util/err.h"
#include "util/secmem.h"

/* Domain separation for the Fiat-Shamir hash. */
static const char km_rsa_proof_tag[] = "keymesh shoup-rsa proof v1";

static int
km_rsa_proof_hash(const km_rsa_pub *pub, unsigned index,
    const BIGNUM *const *vals, size_t nvals, BIGNUM *c)
{
	EVP_MD_CTX *md = NULL;
	uint8_t *buf = NULL, h[32], ib[4];
	unsigned hl = 0;
	size_t i;
	int r = KM_ERR_CRYPTO;

	if ((buf = OPENSSL_malloc((size_t)pub->bytes)) == NULL
	    || (md = EVP_MD_CTX_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	ib[0] = (uint8_t)(index >> 24);
	ib[1] = (uint8_t)(index >> 16);
	ib[2] = (uint8_t)(index >> 8);
	ib[3] = (uint8_t)index;
	if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL)
	    || !EVP_DigestUpdate(
	        md, km_rsa_proof_tag, sizeof(km_rsa_proof_tag))
	    || !EVP_DigestUpdate(md, pub->nhash, sizeof(pub->nhash))
	    || !EVP_DigestUpdate(md, ib, sizeof(ib))) {
		goto out;
	}
	for (i = 0; i < nvals; i++) {
		/* every value is below N: fixed |N|-byte encoding */
		if (BN_bn2binpad(vals[i], buf, pub->bytes) != pub->bytes
		    || !EVP_DigestUpdate(md, buf, (size_t)pub->bytes)) {
			goto out;
		}
	}
	if (!EVP_DigestFinal_ex(md, h, &hl)
	    || BN_bin2bn(h, (int)hl, c) == NULL) {
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(buf);
	return r;
}

int
km_rsa_partial_new(const km_rsa_pub *pub, const km_rsa_share *share,
    const BIGNUM *x, bool with_proof, km_rsa_partial **out)
{
	km_rsa_partial *p = NULL;
	BN_CTX *ctx = NULL;
	BIGNUM *x2d, *twod, *xt, *xi2, *rr, *vp, *xp, *sc;
	const BIGNUM *hv[6];
	int r = KM_ERR_CRYPTO;

	if (pub == NULL || share == NULL || x == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (share->index < 1 || share->index > pub->n || BN_is_zero(x)
	    || BN_is_negative(x) || BN_cmp(x, pub->n_mod) >= 0) {
		return KM_ERR_RANGE;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	x2d = BN_CTX_get(ctx);
	twod = BN_CTX_get(ctx);
	xt = BN_CTX_get(ctx);
	xi2 = BN_CTX_get(ctx);
	rr = BN_CTX_get(ctx);
	vp = BN_CTX_get(ctx);
	xp = BN_CTX_get(ctx);
	sc = BN_CTX_get(ctx);
	if (sc == NULL || (p = OPENSSL_zalloc(sizeof(*p))) == NULL
	    || (p->xi = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	p->index = share->index;
	/* x^(2 Delta): public base, public exponent */
	if (BN_copy(twod, pub->delta) == NULL || !BN_lshift1(twod, twod)
	    || !BN_mod_exp_mont(x2d, x, twod, pub->n_mod, ctx, pub->mont)) {
		goto out;
	}
	/* x_i = (x^(2 Delta))^s_i, constant time in s_i */
	if (!BN_mod_exp_mont_consttime(
	        p->xi, x2d, share->s, pub->n_mod, ctx, pub->mont)) {
		goto out;
	}
	if (with_proof && pub->v != NULL) {
		BN_set_flags(rr, BN_FLG_CONSTTIME);
		BN_set_flags(sc, BN_FLG_CONSTTIME);
		if ((p->c = BN_new()) == NULL || (p->z = BN_new()) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		/* x~ = x^(4 Delta) and x_i^2 */
		if (!BN_mod_sqr(xt, x2d, pub->n_mod, ctx)
		    || !BN_mod_sqr(xi2, p->xi, pub->n_mod, ctx)) {
			goto out;
		}
		if (!BN_priv_rand_ex(rr, pub->share_bits + 2 * KM_RSA_L1,
		        BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY, 0, ctx)) {
			goto out;
		}
		if (!BN_mod_exp_mont_consttime(
		        vp, pub->v, rr, pub->n_mod, ctx, pub->mont)
		    || !BN_mod_exp_mont_consttime(
		        xp, xt, rr, pub->n_mod, ctx, pub->mont)) {
			goto out;
		}
		hv[0] = pub->v;
		hv[1] = xt;
		hv[2] = pub->vi[share->index];
		hv[3] = xi2;
		hv[4] = vp;
		hv[5] = xp;
		if ((r = km_rsa_proof_hash(pub, share->index, hv, 6, p->c))
		    != 0) {
			goto out;
		}
		r = KM_ERR_CRYPTO;
		/* z = s_i c + r over the integers */
		if (!BN_mul(sc, share->s, p->c, ctx)
		    || !BN_add(p->z, sc, rr)) {
			goto out;
		}
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	km_rsa_partial_free(p);
	if (sc != NULL) {
		BN_clear(rr);
		BN_clear(sc);
	}
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}

/* r = a^z * (b^c)^-1 mod N, public values only */
static int
km_rsa_exp_quot(BIGNUM *r, const BIGNUM *a, const BIGNUM *z, const BIGNUM *b,
    const BIGNUM *c, const km_rsa_pub *pub, BN_CTX *ctx)
{
	BIGNUM *t1, *t2;
	int ret = KM_ERR_CRYPTO;

	BN_CTX_start(ctx);
	t1 = BN_CTX_get(ctx);
	t2 = BN_CTX_get(ctx);
	if (t2 == NULL
	    || !BN_mod_exp_mont(t1, a, z, pub->n_mod, ctx, pub->mont)
	    || !BN_mod_exp_mont(t2, b, c, pub->n_mod, ctx, pub->mont)) {
		goto out;
	}
	if (BN_mod_inverse(t2, t2, pub->n_mod, ctx) == NULL) {
		ERR_clear_error();
		ret = KM_ERR_VERIFY;
		goto out;
	}
	if (!BN_mod_mul(r, t1, t2, pub->n_mod, ctx)) {
		goto out;
	}
	ret = 0;
out:
	BN_CTX_end(ctx);
	return ret;
}

int
km_rsa_partial_verify(
    const km_rsa_pub *pub, const BIGNUM *x, const km_rsa_partial *part)
{
	BN_CTX *ctx = NULL;
	BIGNUM *twod, *x2d, *xt, *xi2, *vp, *xp, *c2;
	const BIGNUM *hv[6];
	int r = KM_ERR_CRYPTO;

	if (pub == NULL || x == NULL || part == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (pub->v == NULL || part->c == NULL || part->z == NULL) {
		return KM_ERR_NOT_SUPPORTED;
	}
	if (part->index < 1 || part->index > pub->n || BN_is_zero(part->xi)
	    || BN_is_negative(part->xi) || BN_cmp(part->xi, pub->n_mod) >= 0
	    || BN_is_negative(part->z) || BN_is_negative(part->c)
	    || BN_num_bits(part->c) > KM_RSA_L1
	    || BN_num_bits(part->z) > pub->share_bits + 2 * KM_RSA_L1 + 2) {
		return KM_ERR_VERIFY;
	}
	if ((ctx = BN_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	twod = BN_CTX_get(ctx);
	x2d = BN_CTX_get(ctx);
	xt = BN_CTX_get(ctx);
	xi2 = BN_CTX_get(ctx);
	vp = BN_CTX_get(ctx);
	xp = BN_CTX_get(ctx);
	c2 = BN_CTX_get(ctx);
	if (c2 == NULL || BN_copy(twod, pub->delta) == NULL
	    || !BN_lshift1(twod, twod)
	    || !BN_mod_exp_mont(x2d, x, twod, pub->n_mod, ctx, pub->mont)
	    || !BN_mod_sqr(xt, x2d, pub->n_mod, ctx)
	    || !BN_mod_sqr(xi2, part->xi, pub->n_mod, ctx)) {
		goto out;
	}
	/* v' = v^z v_i^-c,  x' = x~^z (x_i^2)^-c */
	if ((r = km_rsa_exp_quot(
	         vp, pub->v, part->z, pub->vi[part->index], part->c, pub, ctx))
	        != 0
	    || (r = km_rsa_exp_quot(xp, xt, part->z, xi2, part->c, pub, ctx))
	        != 0) {
		goto out;
	}
	hv[0] = pub->v;
	hv[1] = xt;
	hv[2] = pub->vi[part->index];
	hv[3] = xi2;
	hv[4] = vp;
	hv[5] = xp;
	if ((r = km_rsa_proof_hash(pub, part->index, hv, 6, c2)) != 0) {
		goto out;
	}
	r = BN_cmp(c2, part->c) == 0 ? 0 : KM_ERR_VERIFY;
out:
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}
