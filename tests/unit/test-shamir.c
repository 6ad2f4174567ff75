/*
 * Unit tests for src/crypto/shamir.c and ec_group.c: Shamir sharing over
 * the group order, Feldman commitments, Lagrange coefficients, the Pedersen
 * generator H, and the strict share / public-key encodings.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/obj_mac.h>

#include "crypto/ec_group.h"
#include "crypto/shamir.h"
#include "kmt.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/secmem.h"

static const int curves[] = { NID_X9_62_prime256v1, NID_secp384r1 };
#define NCURVES (sizeof(curves) / sizeof(curves[0]))

static const struct {
	uint32_t k, n;
} configs[] = { { 2, 3 }, { 3, 5 }, { 5, 9 } };
#define NCONFIGS (sizeof(configs) / sizeof(configs[0]))

static km_ec_group *groups[NCURVES];

static int
suite_init(void)
{
	size_t c;

	(void)km_secmem_init(1u << 20);
	for (c = 0; c < NCURVES; c++) {
		if (km_ec_group_new(curves[c], &groups[c]) != 0) {
			return 1;
		}
	}
	return 0;
}

static int
suite_cleanup(void)
{
	size_t c;

	for (c = 0; c < NCURVES; c++) {
		km_ec_group_free(groups[c]);
		groups[c] = NULL;
	}
	return 0;
}

/* Test-only reconstruction: sum_i lambda_i x_i over the given shares. */
static BIGNUM *
recover(const km_ec_group *g, km_ec_share *const *sh, size_t m)
{
	uint32_t idx[KM_EC_MAX_INDEX];
	BIGNUM *acc = BN_secure_new(), *l = BN_new(), *t = BN_secure_new();
	BN_CTX *ctx = BN_CTX_new();
	size_t i;

	CU_ASSERT_FATAL(acc != NULL && l != NULL && t != NULL && ctx != NULL);
	for (i = 0; i < m; i++) {
		idx[i] = sh[i]->index;
	}
	BN_zero(acc);
	for (i = 0; i < m; i++) {
		CU_ASSERT_FATAL(km_shamir_lagrange0(g, idx, m, i, l) == 0);
		CU_ASSERT_FATAL(
		    BN_mod_mul(t, l, sh[i]->x, g->order, ctx) == 1);
		CU_ASSERT_FATAL(BN_mod_add(acc, acc, t, g->order, ctx) == 1);
	}
	BN_free(l);
	BN_clear_free(t);
	BN_CTX_free(ctx);
	return acc;
}

static void
test_group_h(void)
{
	km_ec_group *again = NULL;
	size_t c;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		CU_ASSERT(EC_POINT_is_on_curve(g->group, g->h, NULL) == 1);
		CU_ASSERT(!EC_POINT_is_at_infinity(g->group, g->h));
		CU_ASSERT(EC_POINT_cmp(g->group, g->h,
		              EC_GROUP_get0_generator(g->group), NULL)
		    != 0);
		/* deterministic: every party derives the same H */
		CU_ASSERT_FATAL(km_ec_group_new(curves[c], &again) == 0);
		CU_ASSERT(EC_POINT_cmp(g->group, g->h, again->h, NULL) == 0);
		km_ec_group_free(again);
		again = NULL;
	}
	CU_ASSERT(groups[0]->flen == 32 && groups[0]->plen == 65);
	CU_ASSERT(groups[1]->flen == 48 && groups[1]->plen == 97);
	/* H differs between curves (the name is in the hash input) */
	CU_ASSERT(km_ec_group_new(NID_undef, &again) == KM_ERR_NOT_SUPPORTED);
	CU_ASSERT(again == NULL);
}

static void
test_split_recover_all_configs(void)
{
	size_t c, f;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		for (f = 0; f < NCONFIGS; f++) {
			uint32_t k = configs[f].k, n = configs[f].n, i;
			km_ec_share **sh = NULL;
			km_ec_pub *pub = NULL;
			BIGNUM *secret = NULL, *back;
			EC_POINT *y = EC_POINT_new(g->group);

			CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
			CU_ASSERT_FATAL(
			    km_ec_dealer_split(g, secret, k, n, &sh, &pub)
			    == 0);
			CU_ASSERT(pub->k == k && pub->n == n);
			CU_ASSERT(
			    EC_POINT_mul(g->group, y, secret, NULL, NULL, NULL)
			    == 1);
			CU_ASSERT(
			    EC_POINT_cmp(g->group, y, pub->y, NULL) == 0);
			for (i = 0; i < n; i++) {
				CU_ASSERT(sh[i]->index == i + 1);
				CU_ASSERT(
				    km_ec_share_check(g, pub, sh[i]) == 0);
			}
			/* the first k and the last k both give the secret */
			back = recover(g, sh, k);
			CU_ASSERT(BN_cmp(back, secret) == 0);
			BN_clear_free(back);
			back = recover(g, sh + (n - k), k);
			CU_ASSERT(BN_cmp(back, secret) == 0);
			BN_clear_free(back);
			/* k-1 shares interpolate to something else */
			if (k > 1) {
				back = recover(g, sh, k - 1);
				CU_ASSERT(BN_cmp(back, secret) != 0);
				BN_clear_free(back);
			}
			EC_POINT_free(y);
			BN_clear_free(secret);
			km_ec_shares_free(sh, n);
			km_ec_pub_free(pub);
		}
	}
}

static void
test_feldman_catches_bad_share(void)
{
	const km_ec_group *g = groups[0];
	km_shamir_poly *poly = NULL;
	km_ec_commits *c = NULL;
	km_ec_share *s = NULL;
	uint32_t i;

	CU_ASSERT_FATAL(km_shamir_poly_new(g, 3, NULL, &poly) == 0);
	CU_ASSERT_FATAL(km_feldman_commit(g, poly, &c) == 0);
	for (i = 1; i <= 5; i++) {
		CU_ASSERT_FATAL(km_ec_share_new(i, &s) == 0);
		CU_ASSERT(km_shamir_poly_eval(g, poly, i, s->x) == 0);
		CU_ASSERT(km_feldman_verify(g, c, s) == 0);
		/* one more than the right value */
		CU_ASSERT(BN_add_word(s->x, 1) == 1);
		CU_ASSERT(km_feldman_verify(g, c, s) == KM_ERR_VERIFY);
		CU_ASSERT(BN_sub_word(s->x, 1) == 1);
		/* the right value under the wrong index */
		s->index = i % 5 + 1;
		CU_ASSERT(km_feldman_verify(g, c, s) == KM_ERR_VERIFY);
		s->index = 0;
		CU_ASSERT(km_feldman_verify(g, c, s) == KM_ERR_RANGE);
		km_ec_share_free(s);
		s = NULL;
	}
	CU_ASSERT_FATAL(km_ec_share_new(1, &s) == 0);
	CU_ASSERT(km_shamir_poly_eval(g, poly, 0, s->x) == KM_ERR_RANGE);
	CU_ASSERT(km_shamir_poly_eval(g, poly, 256, s->x) == KM_ERR_RANGE);
	km_ec_share_free(s);
	km_ec_commits_free(c);
	km_shamir_poly_free(poly);
}

static void
test_lagrange_refuses(void)
{
	const km_ec_group *g = groups[0];
	const uint32_t dup[] = { 1, 2, 2 };
	const uint32_t zero[] = { 0, 1, 2 };
	const uint32_t big[] = { 1, 2, 256 };
	const uint32_t ok[] = { 1, 3, 4 };
	BIGNUM *l = BN_new(), *sum = BN_new();
	BN_CTX *ctx = BN_CTX_new();
	size_t i;

	CU_ASSERT(km_shamir_lagrange0(g, dup, 3, 0, l) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_shamir_lagrange0(g, zero, 3, 1, l) == KM_ERR_RANGE);
	CU_ASSERT(km_shamir_lagrange0(g, big, 3, 0, l) == KM_ERR_RANGE);
	CU_ASSERT(km_shamir_lagrange0(g, ok, 3, 3, l) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_shamir_lagrange0(g, ok, 0, 0, l) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_shamir_check_indices(ok, 3, 3) == KM_ERR_RANGE);
	CU_ASSERT(km_shamir_check_indices(ok, 3, 4) == 0);
	/* the coefficients at 0 of any set sum to 1 (f = 1 interpolates) */
	BN_zero(sum);
	for (i = 0; i < 3; i++) {
		CU_ASSERT(km_shamir_lagrange0(g, ok, 3, i, l) == 0);
		CU_ASSERT(BN_mod_add(sum, sum, l, g->order, ctx) == 1);
	}
	CU_ASSERT(BN_is_one(sum));
	/* lambda for {1, 3}: lambda_1 = 3/2, times 2 is 3 */
	CU_ASSERT(km_shamir_lagrange0(g, ok, 2, 0, l) == 0);
	CU_ASSERT(BN_mod_lshift1(l, l, g->order, ctx) == 1);
	CU_ASSERT(BN_is_word(l, 3));
	BN_free(l);
	BN_free(sum);
	BN_CTX_free(ctx);
}

static void
test_weighted_indices(void)
{
	/*
	 * One node holding indices 1 and 2 of a 3-of-5 sharing needs one
	 * more index to reach the threshold: indices are the unit.
	 */
	const km_ec_group *g = groups[1];
	km_ec_share **sh = NULL, *pick[3];
	km_ec_pub *pub = NULL;
	BIGNUM *secret = NULL, *back;

	CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
	CU_ASSERT_FATAL(km_ec_dealer_split(g, secret, 3, 5, &sh, &pub) == 0);
	pick[0] = sh[0];
	pick[1] = sh[1]; /* node A: indices 1, 2 */
	back = recover(g, pick, 2);
	CU_ASSERT(BN_cmp(back, secret) != 0);
	BN_clear_free(back);
	pick[2] = sh[4]; /* node B: index 5 */
	back = recover(g, pick, 3);
	CU_ASSERT(BN_cmp(back, secret) == 0);
	BN_clear_free(back);
	BN_clear_free(secret);
	km_ec_shares_free(sh, 5);
	km_ec_pub_free(pub);
}

static void
test_split_refuses(void)
{
	const km_ec_group *g = groups[0];
	km_ec_share **sh = (km_ec_share **)1;
	km_ec_pub *pub = (km_ec_pub *)1;
	BIGNUM *x = BN_new();

	BN_zero(x);
	CU_ASSERT(km_ec_dealer_split(g, x, 2, 3, &sh, &pub) == KM_ERR_RANGE);
	CU_ASSERT(sh == NULL && pub == NULL);
	CU_ASSERT(BN_copy(x, g->order) != NULL);
	CU_ASSERT(km_ec_dealer_split(g, x, 2, 3, &sh, &pub) == KM_ERR_RANGE);
	BN_one(x);
	CU_ASSERT(
	    km_ec_dealer_split(g, x, 4, 3, &sh, &pub) == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    km_ec_dealer_split(g, x, 0, 3, &sh, &pub) == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    km_ec_dealer_split(g, x, 2, 256, &sh, &pub) == KM_ERR_INVALID_ARG);
	BN_free(x);
}

static void
test_serial_roundtrip(void)
{
	size_t c;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];
		km_ec_share **sh = NULL, *back = NULL;
		km_ec_pub *pub = NULL, *pback = NULL;
		BIGNUM *secret = NULL;
		km_buf b, pb;
		uint32_t i;

		CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
		CU_ASSERT_FATAL(
		    km_ec_dealer_split(g, secret, 3, 5, &sh, &pub) == 0);
		for (i = 0; i < 5; i++) {
			km_buf_init_secure(&b);
			CU_ASSERT(km_ec_share_encode(g, sh[i], &b) == 0);
			CU_ASSERT(b.len == 12 + 4 + 4 + g->slen);
			CU_ASSERT(
			    km_ec_share_decode(g, b.data, b.len, 5, &back)
			    == 0);
			CU_ASSERT_FATAL(back != NULL);
			CU_ASSERT(back->index == sh[i]->index);
			CU_ASSERT(BN_cmp(back->x, sh[i]->x) == 0);
			CU_ASSERT(BN_get_flags(back->x, BN_FLG_SECURE) != 0);
			km_ec_share_free(back);
			back = NULL;
			km_buf_free(&b);
		}
		km_buf_init(&pb);
		CU_ASSERT(km_ec_pub_encode(g, pub, &pb) == 0);
		CU_ASSERT(km_ec_pub_decode(g, pb.data, pb.len, &pback) == 0);
		CU_ASSERT_FATAL(pback != NULL);
		CU_ASSERT(pback->k == 3 && pback->n == 5);
		CU_ASSERT(EC_POINT_cmp(g->group, pback->y, pub->y, NULL) == 0);
		for (i = 0; i < 5; i++) {
			CU_ASSERT(EC_POINT_cmp(
			              g->group, pback->vk[i], pub->vk[i], NULL)
			    == 0);
		}
		/* the other curve refuses this encoding */
		km_ec_pub_free(pback);
		pback = NULL;
		CU_ASSERT(km_ec_pub_decode(groups[(c + 1) % NCURVES], pb.data,
		              pb.len, &pback)
		    == KM_ERR_BAD_FORMAT);
		CU_ASSERT(pback == NULL);
		km_buf_free(&pb);
		BN_clear_free(secret);
		km_ec_shares_free(sh, 5);
		km_ec_pub_free(pub);
	}
}

/* Encodes share @s, lets @mutate change the bytes, expects @want. */
static void
expect_share_refused(const km_ec_group *g, const km_ec_share *s,
    void (*mutate)(uint8_t *p, size_t *len, const km_ec_group *g), int want)
{
	km_ec_share *back = (km_ec_share *)1;
	uint8_t tmp[256];
	size_t len;
	km_buf b;

	km_buf_init_secure(&b);
	CU_ASSERT_FATAL(km_ec_share_encode(g, s, &b) == 0);
	CU_ASSERT_FATAL(b.len + 16 <= sizeof(tmp));
	memcpy(tmp, b.data, b.len);
	len = b.len;
	mutate(tmp, &len, g);
	CU_ASSERT(km_ec_share_decode(g, tmp, len, 5, &back) == want);
	CU_ASSERT(back == NULL);
	km_secret_wipe(tmp, sizeof(tmp));
	km_buf_free(&b);
}

static void
mut_version(uint8_t *p, size_t *len, const km_ec_group *g)
{
	p[3] = 9;
}
static void
mut_kind(uint8_t *p, size_t *len, const km_ec_group *g)
{
	p[7] = KM_EC_KIND_PUB;
}
static void
mut_index0(uint8_t *p, size_t *len, const km_ec_group *g)
{
	memset(p + 12, 0, 4);
}
static void
mut_index6(uint8_t *p, size_t *len, const km_ec_group *g)
{
	memset(p + 12, 0, 4);
	p[15] = 6;
}
static void
mut_truncate(uint8_t *p, size_t *len, const km_ec_group *g)
{
	*len -= 1;
}
static void
mut_trailing(uint8_t *p, size_t *len, const km_ec_group *g)
{
	p[(*len)++] = 0;
}
static void
mut_short_scalar(uint8_t *p, size_t *len, const km_ec_group *g)
{
	/* a length field one short, the last byte dropped */
	p[19] -= 1;
	*len -= 1;
}
static void
mut_scalar_q(uint8_t *p, size_t *len, const km_ec_group *g)
{
	BN_bn2binpad(g->order, p + 20, (int)g->slen);
}
static void
mut_scalar_zero(uint8_t *p, size_t *len, const km_ec_group *g)
{
	memset(p + 20, 0, g->slen);
}
static void
mut_huge_len(uint8_t *p, size_t *len, const km_ec_group *g)
{
	p[16] = 0x7f;
}
static void
mut_empty(uint8_t *p, size_t *len, const km_ec_group *g)
{
	*len = 0;
}

static void
test_share_decode_refuses(void)
{
	const km_ec_group *g = groups[0];
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	BIGNUM *secret = NULL;

	CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
	CU_ASSERT_FATAL(km_ec_dealer_split(g, secret, 3, 5, &sh, &pub) == 0);
	expect_share_refused(g, sh[2], mut_version, KM_ERR_BAD_VERSION);
	expect_share_refused(g, sh[2], mut_kind, KM_ERR_BAD_FORMAT);
	expect_share_refused(g, sh[2], mut_index0, KM_ERR_RANGE);
	expect_share_refused(g, sh[2], mut_index6, KM_ERR_RANGE);
	expect_share_refused(g, sh[2], mut_truncate, KM_ERR_BAD_FORMAT);
	expect_share_refused(g, sh[2], mut_trailing, KM_ERR_BAD_FORMAT);
	expect_share_refused(g, sh[2], mut_short_scalar, KM_ERR_BAD_FORMAT);
	expect_share_refused(g, sh[2], mut_scalar_q, KM_ERR_RANGE);
	expect_share_refused(g, sh[2], mut_scalar_zero, KM_ERR_RANGE);
	expect_share_refused(g, sh[2], mut_huge_len, KM_ERR_BAD_FORMAT);
	expect_share_refused(g, sh[2], mut_empty, KM_ERR_BAD_FORMAT);
	BN_clear_free(secret);
	km_ec_shares_free(sh, 5);
	km_ec_pub_free(pub);
}

static void
test_pub_decode_refuses(void)
{
	const km_ec_group *g = groups[0];
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL, *back = NULL;
	BIGNUM *secret = NULL;
	uint8_t *tmp;
	size_t i, len;
	km_buf b;

	CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
	CU_ASSERT_FATAL(km_ec_dealer_split(g, secret, 2, 3, &sh, &pub) == 0);
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_ec_pub_encode(g, pub, &b) == 0);
	len = b.len;
	tmp = malloc(len + 1);
	CU_ASSERT_FATAL(tmp != NULL);

	/* k > n */
	memcpy(tmp, b.data, len);
	tmp[15] = 4;
	CU_ASSERT(km_ec_pub_decode(g, tmp, len, &back) == KM_ERR_RANGE);
	/* k = 0 */
	memcpy(tmp, b.data, len);
	tmp[15] = 0;
	CU_ASSERT(km_ec_pub_decode(g, tmp, len, &back) == KM_ERR_RANGE);
	/* n over 255 */
	memcpy(tmp, b.data, len);
	tmp[18] = 1;
	CU_ASSERT(km_ec_pub_decode(g, tmp, len, &back) == KM_ERR_RANGE);
	/* Y off the curve: flip a bit of its y-coordinate */
	memcpy(tmp, b.data, len);
	tmp[24 + g->plen - 1] ^= 1;
	CU_ASSERT(km_ec_pub_decode(g, tmp, len, &back) == KM_ERR_BAD_FORMAT);
	/* Y in compressed form: refused on the wire */
	memcpy(tmp, b.data, len);
	tmp[24] = 0x02;
	CU_ASSERT(km_ec_pub_decode(g, tmp, len, &back) == KM_ERR_BAD_FORMAT);
	/* every truncation fails cleanly */
	for (i = 0; i < len; i++) {
		CU_ASSERT(km_ec_pub_decode(g, b.data, i, &back) != 0);
		CU_ASSERT(back == NULL);
	}
	/* trailing byte */
	memcpy(tmp, b.data, len);
	tmp[len] = 0;
	CU_ASSERT(
	    km_ec_pub_decode(g, tmp, len + 1, &back) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(back == NULL);
	/* and the original still decodes */
	CU_ASSERT(km_ec_pub_decode(g, b.data, len, &back) == 0);
	km_ec_pub_free(back);
	free(tmp);
	km_buf_free(&b);
	BN_clear_free(secret);
	km_ec_shares_free(sh, 3);
	km_ec_pub_free(pub);
}

static void
test_point_octets(void)
{
	const km_ec_group *g = groups[0];
	uint8_t enc[65], comp[33];
	EC_POINT *p = NULL;
	const EC_POINT *gen = EC_GROUP_get0_generator(g->group);

	CU_ASSERT_FATAL(km_ec_point_to_octets(g, gen, enc) == 0);
	CU_ASSERT(km_ec_point_from_octets(g, enc, 65, &p) == 0);
	CU_ASSERT(p != NULL && EC_POINT_cmp(g->group, p, gen, NULL) == 0);
	EC_POINT_free(p);
	CU_ASSERT(EC_POINT_point2oct(g->group, gen,
	              POINT_CONVERSION_COMPRESSED, comp, 33, NULL)
	    == 33);
	CU_ASSERT(km_ec_point_from_octets(g, comp, 33, &p) == 0);
	CU_ASSERT(p != NULL && EC_POINT_cmp(g->group, p, gen, NULL) == 0);
	EC_POINT_free(p);
	p = NULL;
	/* wrong lengths, infinity, hybrid form, off the curve */
	CU_ASSERT(
	    km_ec_point_from_octets(g, enc, 64, &p) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(
	    km_ec_point_from_octets(g, enc, 66, &p) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(
	    km_ec_point_from_octets(g, comp, 32, &p) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_ec_point_from_octets(g, (const uint8_t *)"\0", 1, &p)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(
	    km_ec_point_from_octets(g, NULL, 0, &p) == KM_ERR_BAD_FORMAT);
	enc[0] = 0x06;
	CU_ASSERT(
	    km_ec_point_from_octets(g, enc, 65, &p) == KM_ERR_BAD_FORMAT);
	enc[0] = 0x04;
	enc[64] ^= 1;
	CU_ASSERT(
	    km_ec_point_from_octets(g, enc, 65, &p) == KM_ERR_BAD_FORMAT);
	/* x = p (not a field element) in compressed form */
	memset(comp + 1, 0xff, 32);
	CU_ASSERT(
	    km_ec_point_from_octets(g, comp, 33, &p) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(p == NULL);
	/* a P-384 point is the wrong length for P-256 */
	{
		uint8_t e384[97];

		CU_ASSERT(km_ec_point_to_octets(groups[1],
		              EC_GROUP_get0_generator(groups[1]->group), e384)
		    == 0);
		CU_ASSERT(km_ec_point_from_octets(g, e384, 97, &p)
		    == KM_ERR_BAD_FORMAT);
	}
}

static void
test_secure_memory_returned(void)
{
	const km_ec_group *g = groups[1];
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	BIGNUM *secret = NULL;
	size_t before;

	if (!CRYPTO_secure_malloc_initialized()) {
		CU_FAIL("secure heap not initialised");
		return;
	}
	/* drawing the secret also set up OpenSSL's DRBG (kept in the arena) */
	CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
	before = km_secmem_used();
	CU_ASSERT_FATAL(km_ec_dealer_split(g, secret, 5, 9, &sh, &pub) == 0);
	CU_ASSERT(km_secmem_used() > before); /* shares are in the arena */
	CU_ASSERT(BN_get_flags(sh[0]->x, BN_FLG_SECURE) != 0);
	km_ec_shares_free(sh, 9);
	km_ec_pub_free(pub);
	CU_ASSERT(km_secmem_used() == before); /* and all given back */
	BN_clear_free(secret);
}

static const kmt_test shamir_tests[] = {
	{ "group_h", test_group_h },
	{ "split_recover_all_configs", test_split_recover_all_configs },
	{ "feldman_catches_bad_share", test_feldman_catches_bad_share },
	{ "lagrange_refuses", test_lagrange_refuses },
	{ "weighted_indices", test_weighted_indices },
	{ "split_refuses", test_split_refuses },
	{ "secure_memory_returned", test_secure_memory_returned },
	KMT_END,
};

static const kmt_test serial_tests[] = {
	{ "roundtrip", test_serial_roundtrip },
	{ "share_decode_refuses", test_share_decode_refuses },
	{ "pub_decode_refuses", test_pub_decode_refuses },
	{ "point_octets", test_point_octets },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "shamir", suite_init, suite_cleanup, shamir_tests },
	{ "ec-serial", suite_init, suite_cleanup, serial_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
