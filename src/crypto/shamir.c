/*
 * Shamir sharing over Z_q with Feldman commitments (Shamir, CACM 1979;
 * Feldman, FOCS 1987).  See shamir.h.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/objects.h>

#include "crypto/shamir.h"
#include "util/err.h"
#include "util/secmem.h"

#define RET_OSSL_OK 1

int
km_shamir_poly_new(const km_ec_group *g, uint32_t k, const BIGNUM *secret,
    km_shamir_poly **out)
{
	km_shamir_poly *p = NULL;
	uint32_t j;
	int r;

	*out = NULL;
	if (k == 0 || k > KM_EC_MAX_INDEX) {
		return KM_ERR_INVALID_ARG;
	}
	if (secret != NULL
	    && (BN_is_negative(secret) || BN_cmp(secret, g->order) >= 0)) {
		return KM_ERR_RANGE;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL
	    || (p->a = calloc(k, sizeof(*p->a))) == NULL) {
		free(p);
		return KM_ERR_ALLOC;
	}
	p->k = k;
	for (j = 0; j < k; j++) {
		if (j == 0 && secret != NULL) {
			if ((p->a[0] = km_ec_secure_bn()) == NULL
			    || BN_copy(p->a[0], secret) == NULL) {
				r = KM_ERR_ALLOC;
				goto out;
			}
			continue;
		}
		if ((r = km_ec_scalar_random(g, &p->a[j])) != 0) {
			goto out;
		}
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	km_shamir_poly_free(p);
	return r;
}

void
km_shamir_poly_free(km_shamir_poly *p)
{
	uint32_t j;

	if (p == NULL) {
		return;
	}
	for (j = 0; p->a != NULL && j < p->k; j++) {
		BN_clear_free(p->a[j]);
	}
	free(p->a);
	free(p);
}

int
km_shamir_poly_eval(
    const km_ec_group *g, const km_shamir_poly *p, uint32_t x, BIGNUM *out)
{
	BN_CTX *ctx = NULL;
	BIGNUM *bx = NULL;
	uint32_t j;
	int r = KM_ERR_CRYPTO;

	if (x == 0 || x > KM_EC_MAX_INDEX) {
		return KM_ERR_RANGE;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL || (bx = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	BN_set_flags(out, BN_FLG_CONSTTIME);
	if (BN_set_word(bx, x) != RET_OSSL_OK
	    || BN_copy(out, p->a[p->k - 1]) == NULL) {
		goto out;
	}
	/* Horner: out = (...(a_{k-1} x + a_{k-2}) x + ...) x + a_0 */
	for (j = p->k - 1; j-- > 0;) {
		if (BN_mod_mul(out, out, bx, g->order, ctx) != RET_OSSL_OK
		    || BN_mod_add(out, out, p->a[j], g->order, ctx)
		        != RET_OSSL_OK) {
			goto out;
		}
	}
	r = 0;
out:
	BN_free(bx);
	BN_CTX_free(ctx);
	return r;
}

int
km_ec_commits_new(const km_ec_group *g, uint32_t k, km_ec_commits **out)
{
	km_ec_commits *c;
	uint32_t j;

	*out = NULL;
	if (k == 0 || k > KM_EC_MAX_INDEX) {
		return KM_ERR_INVALID_ARG;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL
	    || (c->c = calloc(k, sizeof(*c->c))) == NULL) {
		free(c);
		return KM_ERR_ALLOC;
	}
	c->k = k;
	for (j = 0; j < k; j++) {
		if ((c->c[j] = EC_POINT_new(g->group)) == NULL) {
			km_ec_commits_free(c);
			return KM_ERR_ALLOC;
		}
	}
	*out = c;
	return 0;
}

void
km_ec_commits_free(km_ec_commits *c)
{
	uint32_t j;

	if (c == NULL) {
		return;
	}
	for (j = 0; c->c != NULL && j < c->k; j++) {
		EC_POINT_free(c->c[j]);
	}
	free(c->c);
	free(c);
}

int
km_feldman_commit(
    const km_ec_group *g, const km_shamir_poly *p, km_ec_commits **out)
{
	km_ec_commits *c = NULL;
	BN_CTX *ctx = NULL;
	uint32_t j;
	int r;

	*out = NULL;
	if ((r = km_ec_commits_new(g, p->k, &c)) != 0) {
		return r;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (j = 0; j < p->k; j++) {
		if (EC_POINT_mul(g->group, c->c[j], p->a[j], NULL, NULL, ctx)
		    != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	BN_CTX_free(ctx);
	km_ec_commits_free(c);
	return r;
}

int
km_feldman_eval(
    const km_ec_group *g, const km_ec_commits *c, uint32_t x, EC_POINT *out)
{
	BN_CTX *ctx = NULL;
	BIGNUM *bx = NULL;
	uint32_t j;
	int r = KM_ERR_CRYPTO;

	if (x > KM_EC_MAX_INDEX) {
		return KM_ERR_RANGE;
	}
	if ((ctx = BN_CTX_new()) == NULL || (bx = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/* Horner in the exponent: all inputs are public. */
	if (EC_POINT_copy(out, c->c[c->k - 1]) != RET_OSSL_OK
	    || BN_set_word(bx, x) != RET_OSSL_OK) {
		goto out;
	}
	for (j = c->k - 1; j-- > 0;) {
		if (EC_POINT_mul(g->group, out, NULL, out, bx, ctx)
		        != RET_OSSL_OK
		    || EC_POINT_add(g->group, out, out, c->c[j], ctx)
		        != RET_OSSL_OK) {
			goto out;
		}
	}
	r = 0;
out:
	BN_free(bx);
	BN_CTX_free(ctx);
	return r;
}

int
km_feldman_verify(
    const km_ec_group *g, const km_ec_commits *c, const km_ec_share *share)
{
	EC_POINT *lhs = NULL, *rhs = NULL;
	BN_CTX *ctx = NULL;
	int r;

	if (share->index == 0 || share->index > KM_EC_MAX_INDEX) {
		return KM_ERR_RANGE;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL
	    || (lhs = EC_POINT_new(g->group)) == NULL
	    || (rhs = EC_POINT_new(g->group)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EC_POINT_mul(g->group, lhs, share->x, NULL, NULL, ctx)
	    != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_feldman_eval(g, c, share->index, rhs)) != 0) {
		goto out;
	}
	r = EC_POINT_cmp(g->group, lhs, rhs, ctx) == 0 ? 0 : KM_ERR_VERIFY;
out:
	EC_POINT_free(lhs);
	EC_POINT_free(rhs);
	BN_CTX_free(ctx);
	return r;
}

int
km_shamir_check_indices(const uint32_t *idx, size_t m, uint32_t n)
{
	uint8_t seen[KM_EC_MAX_INDEX + 1];
	size_t i;

	if (idx == NULL || m == 0 || n > KM_EC_MAX_INDEX) {
		return KM_ERR_INVALID_ARG;
	}
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < m; i++) {
		if (idx[i] == 0 || idx[i] > n) {
			return KM_ERR_RANGE;
		}
		if (seen[idx[i]]) {
			return KM_ERR_INVALID_ARG;
		}
		seen[idx[i]] = 1;
	}
	return 0;
}

int
km_shamir_lagrange0(const km_ec_group *g, const uint32_t *idx, size_t m,
    size_t which, BIGNUM *out)
{
	BN_CTX *ctx = NULL;
	BIGNUM *num = NULL, *den = NULL, *t = NULL;
	size_t j;
	int r;

	if (which >= m) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_shamir_check_indices(idx, m, KM_EC_MAX_INDEX)) != 0) {
		return r;
	}
	r = KM_ERR_CRYPTO;
	if ((ctx = BN_CTX_new()) == NULL || (num = BN_new()) == NULL
	    || (den = BN_new()) == NULL || (t = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/*
	 * lambda_i(0) = prod_{j != i} (0 - x_j) / (x_i - x_j)
	 *             = prod_{j != i} x_j / (x_j - x_i)   (mod q)
	 * Indices are public, so plain (non-constant-time) arithmetic.
	 */
	if (BN_one(num) != RET_OSSL_OK || BN_one(den) != RET_OSSL_OK) {
		goto out;
	}
	for (j = 0; j < m; j++) {
		if (j == which) {
			continue;
		}
		if (BN_set_word(t, idx[j]) != RET_OSSL_OK
		    || BN_mod_mul(num, num, t, g->order, ctx) != RET_OSSL_OK) {
			goto out;
		}
		if (idx[j] > idx[which]) {
			if (BN_set_word(t, idx[j] - idx[which])
			    != RET_OSSL_OK) {
				goto out;
			}
		} else {
			if (BN_set_word(t, idx[which] - idx[j]) != RET_OSSL_OK
			    || BN_sub(t, g->order, t) != RET_OSSL_OK) {
				goto out;
			}
		}
		if (BN_mod_mul(den, den, t, g->order, ctx) != RET_OSSL_OK) {
			goto out;
		}
	}
	if (BN_mod_inverse(den, den, g->order, ctx) == NULL
	    || BN_mod_mul(out, num, den, g->order, ctx) != RET_OSSL_OK) {
		goto out;
	}
	r = 0;
out:
	BN_free(num);
	BN_free(den);
	BN_free(t);
	BN_CTX_free(ctx);
	return r;
}

int
km_ec_share_new(uint32_t index, km_ec_share **out)
{
	km_ec_share *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return KM_ERR_ALLOC;
	}
	if ((s->x = km_ec_secure_bn()) == NULL) {
		free(s);
		return KM_ERR_ALLOC;
	}
	s->index = index;
	*out = s;
	return 0;
}

void
km_ec_share_free(km_ec_share *s)
{
	if (s == NULL) {
		return;
	}
	BN_clear_free(s->x);
	free(s);
}

void
km_ec_shares_free(km_ec_share **s, size_t n)
{
	size_t i;

	if (s == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		km_ec_share_free(s[i]);
	}
	free(s);
}

int
km_ec_pub_new(const km_ec_group *g, uint32_t k, uint32_t n, km_ec_pub **out)
{
	km_ec_pub *p;
	uint32_t i;

	*out = NULL;
	if (k == 0 || n == 0 || k > n || n > KM_EC_MAX_INDEX) {
		return KM_ERR_INVALID_ARG;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL
	    || (p->vk = calloc(n, sizeof(*p->vk))) == NULL) {
		free(p);
		return KM_ERR_ALLOC;
	}
	p->k = k;
	p->n = n;
	if ((p->y = EC_POINT_new(g->group)) == NULL) {
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((p->vk[i] = EC_POINT_new(g->group)) == NULL) {
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	km_ec_pub_free(p);
	return KM_ERR_ALLOC;
}

void
km_ec_pub_free(km_ec_pub *p)
{
	uint32_t i;

	if (p == NULL) {
		return;
	}
	EC_POINT_free(p->y);
	for (i = 0; p->vk != NULL && i < p->n; i++) {
		EC_POINT_free(p->vk[i]);
	}
	free(p->vk);
	free(p);
}

int
km_ec_pub_from_commits(
    const km_ec_group *g, const km_ec_commits *c, km_ec_pub *pub)
{
	uint32_t i;
	int r;

	if (EC_POINT_copy(pub->y, c->c[0]) != RET_OSSL_OK) {
		return KM_ERR_CRYPTO;
	}
	for (i = 1; i <= pub->n; i++) {
		if ((r = km_feldman_eval(g, c, i, pub->vk[i - 1])) != 0) {
			return r;
		}
	}
	return 0;
}

int
km_ec_dealer_split(const km_ec_group *g, const BIGNUM *secret, uint32_t k,
    uint32_t n, km_ec_share ***shares, km_ec_pub **pub)
{
	km_shamir_poly *poly = NULL;
	km_ec_commits *c = NULL;
	km_ec_share **sh = NULL;
	km_ec_pub *p = NULL;
	uint32_t i;
	int r;

	*shares = NULL;
	*pub = NULL;
	if (secret == NULL || k == 0 || k > n || n > KM_EC_MAX_INDEX) {
		return KM_ERR_INVALID_ARG;
	}
	if (BN_is_zero(secret) || BN_is_negative(secret)
	    || BN_cmp(secret, g->order) >= 0) {
		return KM_ERR_RANGE;
	}
	if ((r = km_shamir_poly_new(g, k, secret, &poly)) != 0
	    || (r = km_feldman_commit(g, poly, &c)) != 0
	    || (r = km_ec_pub_new(g, k, n, &p)) != 0
	    || (r = km_ec_pub_from_commits(g, c, p)) != 0) {
		goto out;
	}
	if ((sh = calloc(n, sizeof(*sh))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 1; i <= n; i++) {
		if ((r = km_ec_share_new(i, &sh[i - 1])) != 0
		    || (r = km_shamir_poly_eval(g, poly, i, sh[i - 1]->x))
		        != 0) {
			goto out;
		}
	}
	*shares = sh;
	sh = NULL;
	*pub = p;
	p = NULL;
	r = 0;
out:
	km_ec_shares_free(sh, n);
	km_ec_pub_free(p);
	km_ec_commits_free(c);
	km_shamir_poly_free(poly);
	return r;
}

int
km_ec_share_encode(const km_ec_group *g, const km_ec_share *s, km_buf *b)
{
	if (s == NULL || s->x == NULL || s->index == 0
	    || s->index > KM_EC_MAX_INDEX || BN_is_negative(s->x)
	    || BN_cmp(s->x, g->order) >= 0) {
		return KM_ERR_INVALID_ARG;
	}
	if (km_ec_hdr_put(g, b, KM_EC_KIND_SHARE) != 0
	    || km_buf_put_u32(b, s->index) != 0
	    || km_ec_scalar_put(g, b, s->x) != 0) {
		return km_buf_failed(b) ? KM_ERR_ALLOC : KM_ERR_INTERNAL;
	}
	return 0;
}

int
km_ec_share_decode(const km_ec_group *g, const uint8_t *p, size_t len,
    uint32_t max_index, km_ec_share **out)
{
	km_ec_share *s = NULL;
	km_buf b;
	uint32_t index = 0;
	int r;

	*out = NULL;
	km_buf_init_view(&b, p, len);
	if ((r = km_ec_hdr_get(g, &b, KM_EC_KIND_SHARE)) != 0) {
		return r;
	}
	if (km_buf_get_u32(&b, &index) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (index == 0 || index > max_index || index > KM_EC_MAX_INDEX) {
		return KM_ERR_RANGE;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return KM_ERR_ALLOC;
	}
	s->index = index;
	if ((r = km_ec_scalar_get(g, &b, true, true, &s->x)) != 0) {
		goto out;
	}
	if (km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	*out = s;
	s = NULL;
	r = 0;
out:
	km_ec_share_free(s);
	return r;
}

int
km_ec_pub_encode(const km_ec_group *g, const km_ec_pub *p, km_buf *b)
{
	uint32_t i;

	if (km_ec_hdr_put(g, b, KM_EC_KIND_PUB) != 0
	    || km_buf_put_u32(b, p->k) != 0 || km_buf_put_u32(b, p->n) != 0
	    || km_ec_point_put(g, b, p->y) != 0) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < p->n; i++) {
		if (km_ec_point_put(g, b, p->vk[i]) != 0) {
			return KM_ERR_ALLOC;
		}
	}
	return 0;
}

int
km_ec_pub_decode(
    const km_ec_group *g, const uint8_t *p, size_t len, km_ec_pub **out)
{
	km_ec_pub *pub = NULL;
	EC_POINT *pt = NULL;
	km_buf b;
	uint32_t k = 0, n = 0, i;
	int r;

	*out = NULL;
	km_buf_init_view(&b, p, len);
	if ((r = km_ec_hdr_get(g, &b, KM_EC_KIND_PUB)) != 0) {
		return r;
	}
	if (km_buf_get_u32(&b, &k) != 0 || km_buf_get_u32(&b, &n) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (k == 0 || n == 0 || k > n || n > KM_EC_MAX_INDEX) {
		return KM_ERR_RANGE;
	}
	if ((r = km_ec_pub_new(g, k, n, &pub)) != 0) {
		return r;
	}
	if ((r = km_ec_point_get(g, &b, &pt)) != 0) {
		goto out;
	}
	EC_POINT_free(pub->y);
	pub->y = pt;
	pt = NULL;
	for (i = 0; i < n; i++) {
		if ((r = km_ec_point_get(g, &b, &pt)) != 0) {
			goto out;
		}
		EC_POINT_free(pub->vk[i]);
		pub->vk[i] = pt;
		pt = NULL;
	}
	if (km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	*out = pub;
	pub = NULL;
	r = 0;
out:
	km_ec_pub_free(pub);
	return r;
}

int
km_ec_share_check(
    const km_ec_group *g, const km_ec_pub *pub, const km_ec_share *share)
{
	EC_POINT *pt = NULL;
	BN_CTX *ctx = NULL;
	int r;

	if (share->index == 0 || share->index > pub->n) {
		return KM_ERR_RANGE;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL
	    || (pt = EC_POINT_new(g->group)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EC_POINT_mul(g->group, pt, share->x, NULL, NULL, ctx)
	    != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = EC_POINT_cmp(g->group, pt, pub->vk[share->index - 1], ctx) == 0
	    ? 0
	    : KM_ERR_VERIFY;
out:
	EC_POINT_free(pt);
	BN_CTX_free(ctx);
	return r;
}

int
km_ec_pkey_nid(const EVP_PKEY *pk, int *nid)
{
	char name[80];
	size_t len = 0;

	*nid = NID_undef;
	if (pk == NULL || !EVP_PKEY_is_a(pk, "EC")) {
		return KM_ERR_INVALID_ARG;
	}
	if (EVP_PKEY_get_utf8_string_param(
	        pk, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &len)
	    != RET_OSSL_OK) {
		return KM_ERR_NOT_SUPPORTED;
	}
	if ((*nid = OBJ_sn2nid(name)) == NID_undef
	    && (*nid = EC_curve_nist2nid(name)) == NID_undef) {
		return KM_ERR_NOT_SUPPORTED;
	}
	return 0;
}

int
km_ec_dealer_split_pkey(const km_ec_group *g, const EVP_PKEY *pk, uint32_t k,
    uint32_t n, km_ec_share ***shares, km_ec_pub **pub)
{
	uint8_t enc[1 + 2 * 66];
	BIGNUM *raw = NULL, *priv = NULL;
	EC_POINT *y = NULL;
	km_ec_share **sh = NULL;
	km_ec_pub *p = NULL;
	size_t len = 0;
	int nid, r;

	*shares = NULL;
	*pub = NULL;
	if ((r = km_ec_pkey_nid(pk, &nid)) != 0) {
		return r;
	}
	if (nid != g->nid) {
		return KM_ERR_INVALID_ARG;
	}
	/* OpenSSL hands out an ordinary BIGNUM: copy it, then wipe it. */
	if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &raw)
	    != RET_OSSL_OK) {
		return KM_ERR_INVALID_ARG;
	}
	if ((priv = km_ec_secure_bn()) == NULL || BN_copy(priv, raw) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EVP_PKEY_get_octet_string_param(
	        pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, enc, sizeof(enc), &len)
	        != RET_OSSL_OK
	    || (r = km_ec_point_from_octets(g, enc, len, &y)) != 0) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = km_ec_dealer_split(g, priv, k, n, &sh, &p)) != 0) {
		goto out;
	}
	if (EC_POINT_cmp(g->group, p->y, y, NULL) != 0) {
		r = KM_ERR_VERIFY;
		goto out;
	}
	*shares = sh;
	sh = NULL;
	*pub = p;
	p = NULL;
	r = 0;
out:
	km_ec_shares_free(sh, n);
	km_ec_pub_free(p);
	EC_POINT_free(y);
	BN_clear_free(raw);
	BN_clear_free(priv);
	return r;
}
