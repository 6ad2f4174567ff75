/*
 * keymesh EC group context, point and scalar encodings, and the Pedersen
 * generator H.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "crypto/ec_group.h"
#include "util/err.h"
#include "util/secmem.h"

#define RET_OSSL_OK 1

/* Domain separation for H; changing it changes every Pedersen commitment. */
#define KM_EC_H_DOMAIN "keymesh/ec/pedersen-H/v1"

BIGNUM *
km_ec_secure_bn(void)
{
	BIGNUM *x;

	if ((x = BN_secure_new()) != NULL) {
		BN_set_flags(x, BN_FLG_CONSTTIME);
	}
	return x;
}

/*
 * Expand SHA-256(domain || name || ctr || blk) for blk = 0, 1, ... into
 * @out (counter-mode, so P-384 and P-521 get enough bytes from SHA-256).
 */
static int
km_ec_h_expand(const char *name, uint32_t ctr, uint8_t *out, size_t len)
{
	uint8_t md[32], be[8];
	EVP_MD_CTX *mctx = NULL;
	size_t done = 0, n;
	uint32_t blk;
	int r = KM_ERR_CRYPTO;

	if ((mctx = EVP_MD_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (blk = 0; done < len; blk++) {
		be[0] = (uint8_t)(ctr >> 24);
		be[1] = (uint8_t)(ctr >> 16);
		be[2] = (uint8_t)(ctr >> 8);
		be[3] = (uint8_t)ctr;
		be[4] = (uint8_t)(blk >> 24);
		be[5] = (uint8_t)(blk >> 16);
		be[6] = (uint8_t)(blk >> 8);
		be[7] = (uint8_t)blk;
		if (EVP_DigestInit_ex(mctx, EVP_sha256(), NULL) != RET_OSSL_OK
		    || EVP_DigestUpdate(
		           mctx, KM_EC_H_DOMAIN, sizeof(KM_EC_H_DOMAIN) - 1)
		        != RET_OSSL_OK
		    || EVP_DigestUpdate(mctx, "/", 1) != RET_OSSL_OK
		    || EVP_DigestUpdate(mctx, name, strlen(name))
		        != RET_OSSL_OK
		    || EVP_DigestUpdate(mctx, be, sizeof(be)) != RET_OSSL_OK
		    || EVP_DigestFinal_ex(mctx, md, NULL) != RET_OSSL_OK) {
			goto out;
		}
		n = len - done < sizeof(md) ? len - done : sizeof(md);
		memcpy(out + done, md, n);
		done += n;
	}
	r = 0;
out:
	EVP_MD_CTX_free(mctx);
	return r;
}

/*
 * Try-and-increment hash to the curve (the simple, public-input method;
 * no secret goes in, so its variable running time does not matter).  The
 * result has an unknown discrete logarithm to base G, which the binding
 * property of Pedersen commitments (and so GJKR's DKG) relies on.
 */
static int
km_ec_derive_h(km_ec_group *g, BN_CTX *ctx)
{
	uint8_t enc[1 + 66 + 1];
	EC_POINT *h = NULL;
	uint32_t ctr;
	int r;

	if (g->flen + 1 > sizeof(enc)) {
		return KM_ERR_NOT_SUPPORTED;
	}
	if ((h = EC_POINT_new(g->group)) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (ctr = 0; ctr < 1000; ctr++) {
		enc[0] = 0x02;
		if ((r = km_ec_h_expand(g->name, ctr, enc + 1, g->flen))
		    != 0) {
			goto out;
		}
		/* oct2point refuses X >= p and X not on the curve. */
		ERR_set_mark();
		if (EC_POINT_oct2point(g->group, h, enc, 1 + g->flen, ctx)
		        == RET_OSSL_OK
		    && !EC_POINT_is_at_infinity(g->group, h)) {
			ERR_pop_to_mark();
			g->h = h;
			h = NULL;
			r = 0;
			goto out;
		}
		ERR_pop_to_mark();
	}
	r = KM_ERR_INTERNAL;
out:
	EC_POINT_free(h);
	return r;
}

int
km_ec_group_new(int nid, km_ec_group **out)
{
	km_ec_group *g = NULL;
	BN_CTX *ctx = NULL;
	BIGNUM *p = NULL;
	const BIGNUM *cof;
	int r;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		return KM_ERR_ALLOC;
	}
	g->nid = nid;
	if ((g->group = EC_GROUP_new_by_curve_name(nid)) == NULL) {
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	if ((g->name = OBJ_nid2sn(nid)) == NULL
	    || EC_GROUP_get_field_type(g->group) != NID_X9_62_prime_field) {
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	/*
	 * Cofactor 1 means every curve point is in the prime-order group, so
	 * "on the curve and not infinity" is the whole validation.
	 */
	cof = EC_GROUP_get0_cofactor(g->group);
	if (cof == NULL || !BN_is_one(cof)) {
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	if ((ctx = BN_CTX_new()) == NULL || (p = BN_new()) == NULL
	    || (g->order = BN_dup(EC_GROUP_get0_order(g->group))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EC_GROUP_get_curve(g->group, p, NULL, NULL, ctx) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	g->flen = (size_t)BN_num_bytes(p);
	g->slen = (size_t)BN_num_bytes(g->order);
	g->plen = 1 + 2 * g->flen;
	if ((r = km_ec_derive_h(g, ctx)) != 0) {
		goto out;
	}
	*out = g;
	g = NULL;
	r = 0;
out:
	BN_free(p);
	BN_CTX_free(ctx);
	km_ec_group_free(g);
	return r;
}

void
km_ec_group_free(km_ec_group *g)
{
	if (g == NULL) {
		return;
	}
	EC_POINT_free(g->h);
	BN_free(g->order);
	EC_GROUP_free(g->group);
	free(g);
}

int
km_ec_point_to_octets(const km_ec_group *g, const EC_POINT *p, uint8_t *out)
{
	if (p == NULL || EC_POINT_is_at_infinity(g->group, p)) {
		return KM_ERR_INVALID_ARG;
	}
	if (EC_POINT_point2oct(
	        g->group, p, POINT_CONVERSION_UNCOMPRESSED, out, g->plen, NULL)
	    != g->plen) {
		return KM_ERR_CRYPTO;
	}
	return 0;
}

int
km_ec_point_put(const km_ec_group *g, km_buf *b, const EC_POINT *p)
{
	uint8_t enc[1 + 2 * 66];
	int r;

	if (g->plen > sizeof(enc)) {
		b->failed = true;
		return KM_ERR_NOT_SUPPORTED;
	}
	if ((r = km_ec_point_to_octets(g, p, enc)) != 0) {
		b->failed = true;
		return r;
	}
	return km_buf_put_string(b, enc, g->plen);
}

int
km_ec_point_from_octets(
    const km_ec_group *g, const uint8_t *p, size_t len, EC_POINT **out)
{
	EC_POINT *pt = NULL;
	int r;

	*out = NULL;
	if (p == NULL) {
		return KM_ERR_BAD_FORMAT;
	}
	/* Only the two SEC 1 forms, each at its exact length. */
	if (!((len == g->plen && p[0] == 0x04)
	        || (len == 1 + g->flen && (p[0] == 0x02 || p[0] == 0x03)))) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((pt = EC_POINT_new(g->group)) == NULL) {
		return KM_ERR_ALLOC;
	}
	ERR_set_mark();
	if (EC_POINT_oct2point(g->group, pt, p, len, NULL) != RET_OSSL_OK
	    || EC_POINT_is_at_infinity(g->group, pt)
	    || EC_POINT_is_on_curve(g->group, pt, NULL) != RET_OSSL_OK) {
		ERR_pop_to_mark();
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	ERR_pop_to_mark();
	*out = pt;
	pt = NULL;
	r = 0;
out:
	EC_POINT_free(pt);
	return r;
}

int
km_ec_point_get(const km_ec_group *g, km_buf *b, EC_POINT **out)
{
	const uint8_t *p;
	size_t n;
	int r;

	*out = NULL;
	if ((r = km_buf_get_string_ptr(b, &p, &n, g->plen)) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	/* On the wire only the uncompressed form: one encoding per point. */
	if (n != g->plen || (r = km_ec_point_from_octets(g, p, n, out)) != 0) {
		b->failed = true;
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

int
km_ec_scalar_put(const km_ec_group *g, km_buf *b, const BIGNUM *s)
{
	uint8_t tmp[66];
	int r;

	if (s == NULL || BN_is_negative(s) || BN_cmp(s, g->order) >= 0
	    || g->slen > sizeof(tmp)) {
		b->failed = true;
		return KM_ERR_INVALID_ARG;
	}
	if (BN_bn2binpad(s, tmp, (int)g->slen) != (int)g->slen) {
		b->failed = true;
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = km_buf_put_string(b, tmp, g->slen);
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return r;
}

int
km_ec_scalar_get(
    const km_ec_group *g, km_buf *b, bool secure, bool nonzero, BIGNUM **out)
{
	const uint8_t *p;
	size_t n;
	BIGNUM *x = NULL;
	int r;

	*out = NULL;
	if (km_buf_get_string_ptr(b, &p, &n, g->slen) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (n != g->slen) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	x = secure ? km_ec_secure_bn() : BN_new();
	if (x == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (BN_bin2bn(p, (int)n, x) == NULL) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if (BN_cmp(x, g->order) >= 0 || (nonzero && BN_is_zero(x))) {
		r = KM_ERR_RANGE;
		goto out;
	}
	*out = x;
	x = NULL;
	r = 0;
out:
	BN_clear_free(x);
	if (r != 0) {
		b->failed = true;
	}
	return r;
}

int
km_ec_scalar_random(const km_ec_group *g, BIGNUM **out)
{
	BIGNUM *x = NULL;
	int r;

	*out = NULL;
	if ((x = km_ec_secure_bn()) == NULL) {
		return KM_ERR_ALLOC;
	}
	do {
		if (BN_priv_rand_range(x, g->order) != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	} while (BN_is_zero(x));
	*out = x;
	x = NULL;
	r = 0;
out:
	BN_clear_free(x);
	return r;
}

int
km_ec_hdr_put(const km_ec_group *g, km_buf *b, uint32_t kind)
{
	if (km_buf_put_u32(b, KM_EC_FORMAT_VERSION) != 0
	    || km_buf_put_u32(b, kind) != 0
	    || km_buf_put_u32(b, (uint32_t)g->nid) != 0) {
		return KM_ERR_ALLOC;
	}
	return 0;
}

int
km_ec_hdr_get(const km_ec_group *g, km_buf *b, uint32_t kind)
{
	uint32_t v = 0, k = 0, nid = 0;

	if (km_buf_get_u32(b, &v) != 0 || km_buf_get_u32(b, &k) != 0
	    || km_buf_get_u32(b, &nid) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (v != KM_EC_FORMAT_VERSION) {
		b->failed = true;
		return KM_ERR_BAD_VERSION;
	}
	if (k != kind || nid != (uint32_t)g->nid) {
		b->failed = true;
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}
