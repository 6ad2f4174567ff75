/*
 * Unit tests for threshold ECDH (ec_ecdh.c), the GJKR distributed key
 * generation (ec_dkg.c) and Desmedt-Jajodia re-sharing (ec_reshare.c), on
 * P-256 and P-384, for 2-of-3, 3-of-5 and 5-of-9.  Results are compared
 * with OpenSSL's own EVP_PKEY_derive() and with the RFC 5903 section 8
 * known answers.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/ec_reshare.h"
#include "crypto/shamir.h"
#include "kmt.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

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
		if (groups[c] == NULL
		    && km_ec_group_new(curves[c], &groups[c]) != 0) {
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

/* ---- helpers: OpenSSL's own ECDH, for comparison ---- */

static uint8_t *
unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2, i;
	uint8_t *p = malloc(n);
	unsigned int v;

	CU_ASSERT_FATAL(p != NULL);
	for (i = 0; i < n; i++) {
		CU_ASSERT_FATAL(sscanf(hex + 2 * i, "%2x", &v) == 1);
		p[i] = (uint8_t)v;
	}
	*len = n;
	return p;
}

static EVP_PKEY *
pkey_from(const km_ec_group *g, const BIGNUM *priv, const uint8_t *pub,
    size_t publen)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;
	uint8_t enc[133];
	EC_POINT *y = NULL;

	CU_ASSERT_FATAL(bld != NULL && ctx != NULL);
	if (priv != NULL && pub == NULL) {
		y = EC_POINT_new(g->group);
		CU_ASSERT_FATAL(
		    EC_POINT_mul(g->group, y, priv, NULL, NULL, NULL) == 1);
		CU_ASSERT_FATAL(km_ec_point_to_octets(g, y, enc) == 0);
		pub = enc;
		publen = g->plen;
	}
	CU_ASSERT_FATAL(OSSL_PARAM_BLD_push_utf8_string(
	                    bld, OSSL_PKEY_PARAM_GROUP_NAME, g->name, 0)
	    == 1);
	CU_ASSERT_FATAL(OSSL_PARAM_BLD_push_octet_string(
	                    bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen)
	    == 1);
	if (priv != NULL) {
		CU_ASSERT_FATAL(
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv)
		    == 1);
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	CU_ASSERT_FATAL(params != NULL);
	CU_ASSERT_FATAL(EVP_PKEY_fromdata_init(ctx) == 1);
	CU_ASSERT_FATAL(
	    EVP_PKEY_fromdata(ctx, &pk,
	        priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params)
	    == 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	EC_POINT_free(y);
	return pk;
}

/* OpenSSL's plain ECDH with the whole key: the reference result. */
static size_t
ossl_derive(const km_ec_group *g, const BIGNUM *priv, const uint8_t *peer,
    size_t peerlen, uint8_t *out)
{
	EVP_PKEY *me = pkey_from(g, priv, NULL, 0);
	EVP_PKEY *them = pkey_from(g, NULL, peer, peerlen);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(me, NULL);
	size_t len = 66;

	CU_ASSERT_FATAL(ctx != NULL);
	CU_ASSERT_FATAL(EVP_PKEY_derive_init(ctx) == 1);
	CU_ASSERT_FATAL(EVP_PKEY_derive_set_peer(ctx, them) == 1);
	CU_ASSERT_FATAL(EVP_PKEY_derive(ctx, out, &len) == 1);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(me);
	EVP_PKEY_free(them);
	return len;
}

/* A fresh peer key pair from OpenSSL; its public point as octets. */
static void
random_peer(const km_ec_group *g, uint8_t *enc, EC_POINT **pt)
{
	EVP_PKEY *pk = EVP_EC_gen(g->name);
	size_t len = 0;

	CU_ASSERT_FATAL(pk != NULL);
	CU_ASSERT_FATAL(
	    EVP_PKEY_get_octet_string_param(
	        pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, enc, g->plen, &len)
	    == 1);
	CU_ASSERT_FATAL(len == g->plen);
	CU_ASSERT_FATAL(km_ec_point_from_octets(g, enc, len, pt) == 0);
	EVP_PKEY_free(pk);
}

/* Test-only reconstruction sum_i lambda_i x_i (the library has none). */
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

/* Partials for every share, each sent through its wire encoding. */
static km_ec_partial **
all_partials(const km_ec_group *g, const km_ec_pub *pub,
    km_ec_share *const *sh, size_t n, const EC_POINT *peer)
{
	km_ec_partial **p = calloc(n, sizeof(*p)), *tmp = NULL;
	size_t i;
	km_buf b;

	CU_ASSERT_FATAL(p != NULL);
	for (i = 0; i < n; i++) {
		CU_ASSERT_FATAL(
		    km_ecdh_partial(g, pub, sh[i], peer, &tmp) == 0);
		km_buf_init(&b);
		CU_ASSERT_FATAL(km_ec_partial_encode(g, tmp, &b) == 0);
		CU_ASSERT_FATAL(
		    km_ec_partial_decode(g, b.data, b.len, &p[i]) == 0);
		CU_ASSERT(km_ecdh_partial_verify(g, pub, peer, p[i]) == 0);
		km_buf_free(&b);
		km_ec_partial_free(tmp);
		tmp = NULL;
	}
	return p;
}

static void
partials_free(km_ec_partial **p, size_t n)
{
	size_t i;

	for (i = 0; p != NULL && i < n; i++) {
		km_ec_partial_free(p[i]);
	}
	free(p);
}

/* Combines the partials at positions @pick (m of them), expects @want. */
static void
expect_combine(const km_ec_group *g, const km_ec_pub *pub,
    const EC_POINT *peer, km_ec_partial **all, const size_t *pick, size_t m,
    const uint8_t *want)
{
	km_ec_partial *sel[KM_EC_MAX_INDEX];
	uint8_t out[66];
	size_t i, w = 0, nbad = 99;

	for (i = 0; i < m; i++) {
		sel[i] = all[pick[i]];
	}
	memset(out, 0, sizeof(out));
	CU_ASSERT(km_ecdh_combine(
	              g, pub, peer, sel, m, out, sizeof(out), &w, NULL, &nbad)
	    == 0);
	CU_ASSERT(w == g->flen);
	CU_ASSERT(nbad == 0);
	CU_ASSERT(memcmp(out, want, g->flen) == 0);
}

/* Every k-subset of n positions (lexicographic), calling back each. */
static size_t
for_each_subset(uint32_t k, uint32_t n,
    void (*fn)(const size_t *pick, size_t m, void *arg), void *arg)
{
	size_t pick[KM_EC_MAX_INDEX], i, count = 0;

	for (i = 0; i < k; i++) {
		pick[i] = i;
	}
	for (;;) {
		fn(pick, k, arg);
		count++;
		for (i = k; i-- > 0;) {
			if (pick[i] < n - k + i) {
				break;
			}
		}
		if (i == (size_t)-1) {
			return count;
		}
		pick[i]++;
		for (i = i + 1; i < k; i++) {
			pick[i] = pick[i - 1] + 1;
		}
	}
}

/* ---- threshold ECDH ---- */

static const struct {
	int nid;
	const char *priv, *peer, *secret;
} rfc5903[] = {
	/* RFC 5903 section 8.1: i, g^r (x || y), g^ir x-coordinate */
	{ NID_X9_62_prime256v1,
	    "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
	    "04"
	    "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
	    "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
	    "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442D"
	    "E" },
	/* RFC 5903 section 8.2 */
	{ NID_secp384r1,
	    "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655"
	    "E35B538041E649EE3FAEF896783AB194",
	    "04"
	    "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D"
	    "0D1AC43A0336DEF96FDA41D0774A3571"
	    "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FF"
	    "F83FA40142209DFF5EAAD96DB9E6386C",
	    "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4"
	    "D603135569B9E9D09CF5D4A270F59746" },
};

static void
test_ecdh_kat_rfc5903(void)
{
	size_t v, c, f, i, plen, slen, dlen;

	for (v = 0; v < 2; v++) {
		const km_ec_group *g = NULL;
		uint8_t *peer_oct = unhex(rfc5903[v].peer, &plen);
		uint8_t *want = unhex(rfc5903[v].secret, &slen);
		uint8_t ref[66];
		BIGNUM *priv = NULL;
		EC_POINT *peer = NULL;

		for (c = 0; c < NCURVES; c++) {
			if (curves[c] == rfc5903[v].nid) {
				g = groups[c];
			}
		}
		CU_ASSERT_FATAL(g != NULL);
		CU_ASSERT_FATAL(BN_hex2bn(&priv, rfc5903[v].priv) > 0);
		/* OpenSSL agrees with the RFC ... */
		dlen = ossl_derive(g, priv, peer_oct, plen, ref);
		CU_ASSERT(dlen == slen && memcmp(ref, want, slen) == 0);
		CU_ASSERT_FATAL(
		    km_ec_point_from_octets(g, peer_oct, plen, &peer) == 0);
		/* ... and so does every threshold split of the key. */
		for (f = 0; f < NCONFIGS; f++) {
			uint32_t k = configs[f].k, n = configs[f].n;
			km_ec_share **sh = NULL;
			km_ec_pub *pub = NULL;
			km_ec_partial **parts;
			size_t first[KM_EC_MAX_INDEX], last[KM_EC_MAX_INDEX];

			CU_ASSERT_FATAL(
			    km_ec_dealer_split(g, priv, k, n, &sh, &pub) == 0);
			parts = all_partials(g, pub, sh, n, peer);
			for (i = 0; i < k; i++) {
				first[i] = i;
				last[i] = n - 1 - i;
			}
			expect_combine(g, pub, peer, parts, first, k, want);
			expect_combine(g, pub, peer, parts, last, k, want);
			partials_free(parts, n);
			km_ec_shares_free(sh, n);
			km_ec_pub_free(pub);
		}
		BN_clear_free(priv);
		EC_POINT_free(peer);
		free(peer_oct);
		free(want);
	}
}

/* Import: an OpenSSL key split 3-of-5 derives what OpenSSL derives. */
static void
test_ecdh_import_pkey(void)
{
	size_t c;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];
		EVP_PKEY *me = EVP_EC_gen(g->name);
		EVP_PKEY *them = EVP_EC_gen(g->name);
		EVP_PKEY *pubonly = NULL;
		EVP_PKEY *rsa = EVP_RSA_gen(1024);
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(me, NULL);
		uint8_t peer_oct[133], ref[66];
		km_ec_share **sh = NULL;
		km_ec_pub *pub = NULL;
		EC_POINT *peer = NULL;
		km_ec_partial **parts;
		size_t len = 0, pick[3] = { 4, 0, 2 };
		int nid = 0;

		CU_ASSERT_FATAL(me != NULL && them != NULL && ctx != NULL);
		CU_ASSERT(km_ec_pkey_nid(me, &nid) == 0 && nid == curves[c]);
		CU_ASSERT(km_ec_pkey_nid(rsa, &nid) == KM_ERR_INVALID_ARG);
		CU_ASSERT_FATAL(EVP_PKEY_get_octet_string_param(them,
		                    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
		                    peer_oct, sizeof(peer_oct), &len)
		    == 1);
		CU_ASSERT_FATAL(
		    km_ec_point_from_octets(g, peer_oct, len, &peer) == 0);
		CU_ASSERT_FATAL(EVP_PKEY_derive_init(ctx) == 1);
		CU_ASSERT_FATAL(EVP_PKEY_derive_set_peer(ctx, them) == 1);
		len = sizeof(ref);
		CU_ASSERT_FATAL(EVP_PKEY_derive(ctx, ref, &len) == 1);
		CU_ASSERT(len == g->flen);
		/* the wrong curve, and a public-only key, are refused */
		CU_ASSERT(km_ec_dealer_split_pkey(
		              groups[(c + 1) % NCURVES], me, 3, 5, &sh, &pub)
		    == KM_ERR_INVALID_ARG);
		CU_ASSERT(sh == NULL && pub == NULL);
		CU_ASSERT_FATAL(
		    km_ec_dealer_split_pkey(g, me, 3, 5, &sh, &pub) == 0);
		parts = all_partials(g, pub, sh, 5, peer);
		expect_combine(g, pub, peer, parts, pick, 3, ref);
		partials_free(parts, 5);
		km_ec_shares_free(sh, 5);
		km_ec_pub_free(pub);
		pubonly = pkey_from(g, NULL, peer_oct, g->plen);
		CU_ASSERT(km_ec_dealer_split_pkey(g, pubonly, 3, 5, &sh, &pub)
		    == KM_ERR_INVALID_ARG);
		EVP_PKEY_free(pubonly);
		EC_POINT_free(peer);
		EVP_PKEY_CTX_free(ctx);
		EVP_PKEY_free(me);
		EVP_PKEY_free(them);
		EVP_PKEY_free(rsa);
	}
}

struct subset_arg {
	const km_ec_group *g;
	const km_ec_pub *pub;
	const EC_POINT *peer;
	km_ec_partial **parts;
	const uint8_t *want;
};

static void
subset_cb(const size_t *pick, size_t m, void *arg)
{
	struct subset_arg *a = arg;

	expect_combine(a->g, a->pub, a->peer, a->parts, pick, m, a->want);
}

static void
test_ecdh_random_every_subset(void)
{
	size_t c, f, count;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		for (f = 0; f < NCONFIGS; f++) {
			uint32_t k = configs[f].k, n = configs[f].n;
			uint8_t peer_oct[133], ref[66];
			km_ec_share **sh = NULL;
			km_ec_pub *pub = NULL;
			BIGNUM *secret = NULL;
			EC_POINT *peer = NULL;
			struct subset_arg a;

			CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
			CU_ASSERT_FATAL(
			    km_ec_dealer_split(g, secret, k, n, &sh, &pub)
			    == 0);
			random_peer(g, peer_oct, &peer);
			CU_ASSERT(
			    ossl_derive(g, secret, peer_oct, g->plen, ref)
			    == g->flen);
			a.g = g;
			a.pub = pub;
			a.peer = peer;
			a.parts = all_partials(g, pub, sh, n, peer);
			a.want = ref;
			/* every k-subset: 3, 10 and 126 of them */
			count = for_each_subset(k, n, subset_cb, &a);
			CU_ASSERT(count == (k == 2 ? 3 : k == 3 ? 10 : 126));
			partials_free(a.parts, n);
			km_ec_shares_free(sh, n);
			km_ec_pub_free(pub);
			BN_clear_free(secret);
			EC_POINT_free(peer);
		}
	}
}

static void
test_ecdh_tampered_partial_named(void)
{
	size_t c;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];
		uint8_t peer_oct[133], ref[66], out[66];
		km_ec_share **sh = NULL;
		km_ec_pub *pub = NULL;
		BIGNUM *secret = NULL;
		EC_POINT *peer = NULL, *other = NULL;
		km_ec_partial **parts, *sel[5];
		uint32_t bad[5];
		size_t nbad = 0, w = 0, i;

		CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
		CU_ASSERT_FATAL(
		    km_ec_dealer_split(g, secret, 3, 5, &sh, &pub) == 0);
		random_peer(g, peer_oct, &peer);
		CU_ASSERT(
		    ossl_derive(g, secret, peer_oct, g->plen, ref) == g->flen);
		parts = all_partials(g, pub, sh, 5, peer);

		/* Z_2 moved by G: the proof no longer holds */
		CU_ASSERT(EC_POINT_add(g->group, parts[1]->z, parts[1]->z,
		              EC_GROUP_get0_generator(g->group), NULL)
		    == 1);
		CU_ASSERT(km_ecdh_partial_verify(g, pub, peer, parts[1])
		    == KM_ERR_BAD_PARTIAL);
		/* s of index 4 changed */
		CU_ASSERT(BN_add_word(parts[3]->s, 1) == 1);
		CU_ASSERT(km_ecdh_partial_verify(g, pub, peer, parts[3])
		    == KM_ERR_BAD_PARTIAL);
		/* 3 good of 5: the result is right and both bad are named */
		for (i = 0; i < 5; i++) {
			sel[i] = parts[i];
		}
		memset(out, 0, sizeof(out));
		CU_ASSERT(km_ecdh_combine(g, pub, peer, sel, 5, out,
		              sizeof(out), &w, bad, &nbad)
		    == 0);
		CU_ASSERT(memcmp(out, ref, g->flen) == 0);
		CU_ASSERT(nbad == 2 && bad[0] == 2 && bad[1] == 4);
		/* only 2 good of 3: no result, the bad one named */
		sel[0] = parts[0];
		sel[1] = parts[1];
		sel[2] = parts[2];
		memset(out, 0, sizeof(out));
		CU_ASSERT(km_ecdh_combine(g, pub, peer, sel, 3, out,
		              sizeof(out), &w, bad, &nbad)
		    == KM_ERR_BAD_PARTIAL);
		CU_ASSERT(nbad == 1 && bad[0] == 2);
		for (i = 0; i < sizeof(out); i++) {
			CU_ASSERT(out[i] == 0);
		}
		/* an honest partial relabelled with another index */
		km_ec_partial_free(parts[1]);
		parts[1] = NULL;
		CU_ASSERT(
		    km_ecdh_partial(g, pub, sh[0], peer, &parts[1]) == 0);
		parts[1]->index = 2;
		CU_ASSERT(km_ecdh_partial_verify(g, pub, peer, parts[1])
		    == KM_ERR_BAD_PARTIAL);
		/* an honest partial checked against another peer point */
		random_peer(g, peer_oct, &other);
		CU_ASSERT(km_ecdh_partial_verify(g, pub, other, parts[0])
		    == KM_ERR_BAD_PARTIAL);
		/* the same partial twice counts once */
		sel[0] = parts[0];
		sel[1] = parts[0];
		sel[2] = parts[2];
		CU_ASSERT(km_ecdh_combine(g, pub, peer, sel, 3, out,
		              sizeof(out), &w, bad, &nbad)
		    == KM_ERR_BAD_PARTIAL);
		CU_ASSERT(nbad == 1 && bad[0] == 1);
		partials_free(parts, 5);
		km_ec_shares_free(sh, 5);
		km_ec_pub_free(pub);
		BN_clear_free(secret);
		EC_POINT_free(peer);
		EC_POINT_free(other);
	}
}

static void
test_ecdh_too_few(void)
{
	size_t c, f, i;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		for (f = 0; f < NCONFIGS; f++) {
			uint32_t k = configs[f].k, n = configs[f].n;
			uint8_t peer_oct[133], out[66];
			km_ec_share **sh = NULL;
			km_ec_pub *pub = NULL;
			BIGNUM *secret = NULL;
			EC_POINT *peer = NULL;
			km_ec_partial **parts;
			size_t w = 7, nbad = 7;

			CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
			CU_ASSERT_FATAL(
			    km_ec_dealer_split(g, secret, k, n, &sh, &pub)
			    == 0);
			random_peer(g, peer_oct, &peer);
			parts = all_partials(g, pub, sh, n, peer);
			memset(out, 0, sizeof(out));
			CU_ASSERT(km_ecdh_combine(g, pub, peer, parts, k - 1,
			              out, sizeof(out), &w, NULL, &nbad)
			    == KM_ERR_QUORUM);
			CU_ASSERT(w == 0 && nbad == 0);
			for (i = 0; i < sizeof(out); i++) {
				CU_ASSERT(out[i] == 0);
			}
			CU_ASSERT(km_ecdh_combine(g, pub, peer, parts, 0, out,
			              sizeof(out), &w, NULL, &nbad)
			    == KM_ERR_QUORUM);
			/* too small an output buffer */
			CU_ASSERT(km_ecdh_combine(g, pub, peer, parts, n, out,
			              g->flen - 1, &w, NULL, &nbad)
			    == KM_ERR_BUFFER_TOO_SMALL);
			partials_free(parts, n);
			km_ec_shares_free(sh, n);
			km_ec_pub_free(pub);
			BN_clear_free(secret);
			EC_POINT_free(peer);
		}
	}
}

static void
test_ecdh_bad_inputs(void)
{
	const km_ec_group *g = groups[0];
	uint8_t peer_oct[133], tmp[300];
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	BIGNUM *secret = NULL;
	EC_POINT *peer = NULL, *inf = EC_POINT_new(g->group);
	km_ec_partial *p = NULL, *back = NULL;
	km_buf b;
	size_t i;

	CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
	CU_ASSERT_FATAL(km_ec_dealer_split(g, secret, 2, 3, &sh, &pub) == 0);
	random_peer(g, peer_oct, &peer);
	/* the point at infinity as peer */
	CU_ASSERT(EC_POINT_set_to_infinity(g->group, inf) == 1);
	CU_ASSERT(
	    km_ecdh_partial(g, pub, sh[0], inf, &p) == KM_ERR_INVALID_ARG);
	CU_ASSERT(p == NULL);
	/* a share whose index the key does not have */
	sh[0]->index = 4;
	CU_ASSERT(km_ecdh_partial(g, pub, sh[0], peer, &p) == KM_ERR_RANGE);
	sh[0]->index = 1;
	CU_ASSERT_FATAL(km_ecdh_partial(g, pub, sh[0], peer, &p) == 0);
	p->index = 9;
	CU_ASSERT(km_ecdh_partial_verify(g, pub, peer, p) == KM_ERR_RANGE);
	p->index = 1;

	/* malformed partial encodings are refused, never crash */
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_ec_partial_encode(g, p, &b) == 0);
	CU_ASSERT_FATAL(b.len <= sizeof(tmp));
	for (i = 0; i < b.len; i++) {
		CU_ASSERT(km_ec_partial_decode(g, b.data, i, &back) != 0);
		CU_ASSERT(back == NULL);
	}
	memcpy(tmp, b.data, b.len);
	memset(tmp + 12, 0, 4); /* index 0 */
	CU_ASSERT(km_ec_partial_decode(g, tmp, b.len, &back) == KM_ERR_RANGE);
	memcpy(tmp, b.data, b.len);
	tmp[20 + 64] ^= 1; /* Z off the curve */
	CU_ASSERT(
	    km_ec_partial_decode(g, tmp, b.len, &back) == KM_ERR_BAD_FORMAT);
	memcpy(tmp, b.data, b.len);
	memset(tmp + 20 + 65 + 4, 0xff, 32); /* c >= q */
	CU_ASSERT(km_ec_partial_decode(g, tmp, b.len, &back) == KM_ERR_RANGE);
	CU_ASSERT(km_ec_partial_decode(groups[1], b.data, b.len, &back)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(back == NULL);
	CU_ASSERT(km_ec_partial_decode(g, b.data, b.len, &back) == 0);
	km_ec_partial_free(back);
	km_buf_free(&b);
	km_ec_partial_free(p);
	km_ec_shares_free(sh, 3);
	km_ec_pub_free(pub);
	BN_clear_free(secret);
	EC_POINT_free(peer);
	EC_POINT_free(inf);
}

/* ---- DKG: all parties in-process, messages through one pool ---- */

typedef void (*dkg_tamper_fn)(
    int round, km_ec_msgs *pool, const km_ec_group *g);

static void
pool_move(km_ec_msgs *pool, km_ec_msgs *from)
{
	size_t i;

	pool->v = realloc(pool->v, (pool->n + from->n) * sizeof(*pool->v));
	CU_ASSERT_FATAL(pool->v != NULL);
	for (i = 0; i < from->n; i++) {
		pool->v[pool->n++] = from->v[i];
	}
	free(from->v);
	from->v = NULL;
	from->n = 0;
}

struct dkg_result {
	km_ec_share *by_index[KM_EC_MAX_INDEX]; /* shares by index - 1 */
	km_ec_pub *pub[KM_EC_MAX_INDEX];        /* per party */
	km_ec_dkg *st[KM_EC_MAX_INDEX];         /* per party */
	uint32_t np, n;
};

static void
dkg_result_free(struct dkg_result *res)
{
	uint32_t i;

	for (i = 0; i < res->n; i++) {
		km_ec_share_free(res->by_index[i]);
	}
	for (i = 0; i < res->np; i++) {
		km_ec_pub_free(res->pub[i]);
		km_ec_dkg_free(res->st[i]);
	}
	memset(res, 0, sizeof(*res));
}

/*
 * Runs the DKG rounds for @np parties; @tamper may change the pool after
 * each round.  Returns the first non-zero finish() result (0 if all
 * finished), with @culprit set from it.
 */
static int
run_dkg(const km_ec_group *g, uint32_t k, uint32_t n, uint32_t np,
    const uint32_t *owner, dkg_tamper_fn tamper, struct dkg_result *res,
    uint32_t *culprit)
{
	km_ec_dkg_params prm = { k, n, np, owner };
	km_ec_msgs pool[5], out = { NULL, 0 };
	km_ec_share **sh = NULL;
	size_t nsh = 0, i;
	uint32_t p;
	int r, rr = 0;

	memset(res, 0, sizeof(*res));
	memset(pool, 0, sizeof(pool));
	res->np = np;
	res->n = n;
	for (p = 1; p <= np; p++) {
		CU_ASSERT_FATAL(
		    km_ec_dkg_new(g, &prm, p, &res->st[p - 1]) == 0);
		CU_ASSERT_FATAL(km_ec_dkg_round1(res->st[p - 1], &out) == 0);
		pool_move(&pool[0], &out);
	}
	if (tamper) {
		tamper(1, &pool[0], g);
	}
	for (p = 1; p <= np; p++) {
		CU_ASSERT_FATAL(km_ec_dkg_round2(
		                    res->st[p - 1], pool[0].v, pool[0].n, &out)
		    == 0);
		pool_move(&pool[1], &out);
	}
	if (tamper) {
		tamper(2, &pool[1], g);
	}
	for (p = 1; p <= np; p++) {
		CU_ASSERT_FATAL(km_ec_dkg_round3(
		                    res->st[p - 1], pool[1].v, pool[1].n, &out)
		    == 0);
		pool_move(&pool[2], &out);
	}
	if (tamper) {
		tamper(3, &pool[2], g);
	}
	for (p = 1; p <= np; p++) {
		CU_ASSERT_FATAL(km_ec_dkg_round4(
		                    res->st[p - 1], pool[2].v, pool[2].n, &out)
		    == 0);
		pool_move(&pool[3], &out);
	}
	if (tamper) {
		tamper(4, &pool[3], g);
	}
	for (p = 1; p <= np; p++) {
		r = km_ec_dkg_finish(res->st[p - 1], pool[3].v, pool[3].n, &sh,
		    &nsh, &res->pub[p - 1], culprit);
		if (r != 0) {
			rr = rr ? rr : r;
			continue;
		}
		for (i = 0; i < nsh; i++) {
			CU_ASSERT_FATAL(owner[sh[i]->index - 1] == p);
			res->by_index[sh[i]->index - 1] = sh[i];
		}
		free(sh);
		sh = NULL;
	}
	for (i = 0; i < 4; i++) {
		km_ec_msgs_free(&pool[i]);
	}
	return rr;
}

/*
 * The checks every successful DKG must pass: all parties agree on the
 * public side; the shares match their verification keys; k of them
 * reconstruct x with x*G = Y (test-only); threshold ECDH over two
 * different k-subsets equals OpenSSL's derive with x.
 */
static void
check_dkg_key(const km_ec_group *g, struct dkg_result *res, uint32_t k)
{
	uint8_t peer_oct[133], ref[66];
	km_buf b0, b;
	km_ec_partial **parts;
	EC_POINT *peer = NULL, *y = EC_POINT_new(g->group);
	BIGNUM *x;
	size_t first[KM_EC_MAX_INDEX], last[KM_EC_MAX_INDEX];
	uint32_t p, i;

	km_buf_init(&b0);
	CU_ASSERT_FATAL(km_ec_pub_encode(g, res->pub[0], &b0) == 0);
	for (p = 2; p <= res->np; p++) {
		km_buf_init(&b);
		CU_ASSERT_FATAL(km_ec_pub_encode(g, res->pub[p - 1], &b) == 0);
		CU_ASSERT(
		    b.len == b0.len && memcmp(b.data, b0.data, b.len) == 0);
		km_buf_free(&b);
	}
	km_buf_free(&b0);
	for (i = 0; i < res->n; i++) {
		CU_ASSERT_FATAL(res->by_index[i] != NULL);
		CU_ASSERT(
		    km_ec_share_check(g, res->pub[0], res->by_index[i]) == 0);
	}
	x = recover(g, res->by_index, k);
	CU_ASSERT(EC_POINT_mul(g->group, y, x, NULL, NULL, NULL) == 1);
	CU_ASSERT(EC_POINT_cmp(g->group, y, res->pub[0]->y, NULL) == 0);
	random_peer(g, peer_oct, &peer);
	CU_ASSERT(ossl_derive(g, x, peer_oct, g->plen, ref) == g->flen);
	parts = all_partials(g, res->pub[0], res->by_index, res->n, peer);
	for (i = 0; i < k; i++) {
		first[i] = i;
		last[i] = res->n - 1 - i;
	}
	expect_combine(g, res->pub[0], peer, parts, first, k, ref);
	expect_combine(g, res->pub[0], peer, parts, last, k, ref);
	partials_free(parts, res->n);
	BN_clear_free(x);
	EC_POINT_free(peer);
	EC_POINT_free(y);
}

static void
test_dkg_honest(void)
{
	uint32_t owner[KM_EC_MAX_INDEX], j, culprit = 99;
	struct dkg_result res;
	size_t c, f;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		for (f = 0; f < NCONFIGS; f++) {
			uint32_t k = configs[f].k, n = configs[f].n;

			for (j = 0; j < n; j++) {
				owner[j] = j + 1;
			}
			CU_ASSERT(
			    run_dkg(g, k, n, n, owner, NULL, &res, &culprit)
			    == 0);
			CU_ASSERT(culprit == 0);
			for (j = 1; j <= n; j++) {
				CU_ASSERT(km_ec_dkg_qualified(res.st[0], j));
				CU_ASSERT(!km_ec_dkg_complained(res.st[0], j));
			}
			check_dkg_key(g, &res, k);
			dkg_result_free(&res);
		}
	}
}

static void
test_dkg_weighted(void)
{
	/* 3 parties, 5 indices: party 1 holds 1 and 2, party 3 holds 4, 5 */
	static const uint32_t owner[] = { 1, 1, 2, 3, 3 };
	const km_ec_group *g = groups[0];
	km_ec_share *pick[3];
	struct dkg_result res;
	uint32_t culprit = 0;
	BIGNUM *x, *x2;

	CU_ASSERT_FATAL(run_dkg(g, 3, 5, 3, owner, NULL, &res, &culprit) == 0);
	check_dkg_key(g, &res, 3);
	/* party 1 alone has two indices: below the threshold */
	x = recover(g, res.by_index, 3);
	x2 = recover(g, res.by_index, 2);
	CU_ASSERT(BN_cmp(x, x2) != 0);
	BN_clear_free(x2);
	/* party 1 with party 2 reaches it */
	pick[0] = res.by_index[0];
	pick[1] = res.by_index[1];
	pick[2] = res.by_index[2];
	x2 = recover(g, pick, 3);
	CU_ASSERT(BN_cmp(x, x2) == 0);
	BN_clear_free(x2);
	BN_clear_free(x);
	dkg_result_free(&res);
	/* bad parameters */
	{
		static const uint32_t bad_owner[] = { 1, 1, 4, 3, 3 };
		static const uint32_t idle[] = { 1, 1, 3, 3, 3 };
		km_ec_dkg_params prm = { 3, 5, 3, bad_owner };
		km_ec_dkg *d = NULL;

		CU_ASSERT(km_ec_dkg_new(g, &prm, 1, &d) == KM_ERR_INVALID_ARG);
		prm.owner = idle; /* party 2 owns nothing */
		CU_ASSERT(km_ec_dkg_new(g, &prm, 1, &d) == KM_ERR_INVALID_ARG);
		prm.owner = owner;
		CU_ASSERT(km_ec_dkg_new(g, &prm, 4, &d) == KM_ERR_INVALID_ARG);
		prm.k = 6;
		CU_ASSERT(km_ec_dkg_new(g, &prm, 1, &d) == KM_ERR_INVALID_ARG);
		CU_ASSERT(d == NULL);
	}
}

/* Dealer 2's share for party 3 altered in transit (last scalar byte). */
static void
tamper_share_2_to_3(int round, km_ec_msgs *pool, const km_ec_group *g)
{
	size_t i;

	if (round != 1) {
		return;
	}
	for (i = 0; i < pool->n; i++) {
		if (pool->v[i].from == 2 && pool->v[i].to == 3) {
			pool->v[i]
			    .body.data[pool->v[i].body.len - 1 - g->slen - 4]
			    ^= 1;
		}
	}
}

/* As above, and dealer 2 does not answer the complaint. */
static void
tamper_share_no_answer(int round, km_ec_msgs *pool, const km_ec_group *g)
{
	size_t i;

	tamper_share_2_to_3(round, pool, g);
	if (round != 3) {
		return;
	}
	for (i = 0; i < pool->n; i++) {
		if (pool->v[i].from == 2) {
			pool->v[i].from = 0; /* dropped: nobody takes it */
		}
	}
}

/* Dealer 4 answers the complaint with a wrong share. */
static void
tamper_bad_answer(int round, km_ec_msgs *pool, const km_ec_group *g)
{
	size_t i;

	if (round == 1) {
		for (i = 0; i < pool->n; i++) {
			if (pool->v[i].from == 4 && pool->v[i].to == 1) {
				pool->v[i].body.data[pool->v[i].body.len - 1]
				    ^= 1;
			}
		}
	}
	if (round == 3) {
		for (i = 0; i < pool->n; i++) {
			if (pool->v[i].from == 4) {
				pool->v[i].body.data[pool->v[i].body.len - 1]
				    ^= 1;
			}
		}
	}
}

/* Dealer 1's commitment broadcast is garbage. */
static void
tamper_commit(int round, km_ec_msgs *pool, const km_ec_group *g)
{
	size_t i;

	if (round != 1) {
		return;
	}
	for (i = 0; i < pool->n; i++) {
		if (pool->v[i].from == 1 && pool->v[i].to == 0) {
			pool->v[i].body.len -= 3;
		}
	}
}

/*
 * Dealer 2's FELDMAN values do not match what it dealt: it publishes
 * dealer 3's (valid points, wrong polynomial) under its own name.
 */
static void
tamper_feldman(int round, km_ec_msgs *pool, const km_ec_group *g)
{
	km_ec_msg *two = NULL, *three = NULL;
	size_t i;

	if (round != 4) {
		return;
	}
	for (i = 0; i < pool->n; i++) {
		if (pool->v[i].from == 2) {
			two = &pool->v[i];
		}
		if (pool->v[i].from == 3) {
			three = &pool->v[i];
		}
	}
	CU_ASSERT_FATAL(
	    two != NULL && three != NULL && two->body.len == three->body.len);
	memcpy(two->body.data, three->body.data, two->body.len);
	two->body.data[15] = 2;
}

static void
test_dkg_cheating_dealer(void)
{
	uint32_t owner[9], j, culprit = 0, p;
	struct dkg_result res;
	size_t c;

	for (j = 0; j < 9; j++) {
		owner[j] = j + 1;
	}
	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		/*
		 * A bad share, answered correctly by the dealer (the fault
		 * was in transit): party 3 complains, dealer 2 stays in QUAL
		 * and party 3 uses the revealed share.
		 */
		CU_ASSERT(run_dkg(g, 3, 5, 5, owner, tamper_share_2_to_3, &res,
		              &culprit)
		    == 0);
		CU_ASSERT(km_ec_dkg_complained(res.st[2], 2));
		CU_ASSERT(!km_ec_dkg_complained(res.st[0], 2));
		for (p = 1; p <= 5; p++) {
			CU_ASSERT(km_ec_dkg_qualified(res.st[p - 1], 2));
		}
		check_dkg_key(g, &res, 3);
		dkg_result_free(&res);

		/*
		 * A bad share and no answer: dealer 2 is disqualified by
		 * every party and the others still make a working key.
		 */
		CU_ASSERT(run_dkg(g, 3, 5, 5, owner, tamper_share_no_answer,
		              &res, &culprit)
		    == 0);
		CU_ASSERT(km_ec_dkg_complained(res.st[2], 2));
		for (p = 1; p <= 5; p++) {
			CU_ASSERT(!km_ec_dkg_qualified(res.st[p - 1], 2));
			CU_ASSERT(km_ec_dkg_qualified(res.st[p - 1], 1));
			CU_ASSERT(km_ec_dkg_qualified(res.st[p - 1], 3));
		}
		check_dkg_key(g, &res, 3);
		dkg_result_free(&res);

		/* A wrong answer to a complaint: disqualified. */
		CU_ASSERT(run_dkg(g, 2, 3, 3, owner, tamper_bad_answer, &res,
		              &culprit)
		    == 0);
		for (p = 1; p <= 3; p++) {
			CU_ASSERT(km_ec_dkg_qualified(res.st[p - 1], 1));
		}
		dkg_result_free(&res);
		CU_ASSERT(run_dkg(g, 3, 5, 5, owner, tamper_bad_answer, &res,
		              &culprit)
		    == 0);
		CU_ASSERT(km_ec_dkg_complained(res.st[0], 4));
		for (p = 1; p <= 5; p++) {
			CU_ASSERT(!km_ec_dkg_qualified(res.st[p - 1], 4));
		}
		check_dkg_key(g, &res, 3);
		dkg_result_free(&res);

		/* A malformed commitment: disqualified. */
		CU_ASSERT(
		    run_dkg(g, 2, 3, 3, owner, tamper_commit, &res, &culprit)
		    == 0);
		for (p = 1; p <= 3; p++) {
			CU_ASSERT(km_ec_dkg_complained(res.st[p - 1], 1));
			CU_ASSERT(!km_ec_dkg_qualified(res.st[p - 1], 1));
		}
		check_dkg_key(g, &res, 2);
		dkg_result_free(&res);

		/* Phase-2 cheating is caught and the dealer named. */
		culprit = 0;
		CU_ASSERT(
		    run_dkg(g, 3, 5, 5, owner, tamper_feldman, &res, &culprit)
		    == KM_ERR_VERIFY);
		CU_ASSERT(culprit == 2);
		dkg_result_free(&res);
	}
}

static void
test_dkg_wrong_state(void)
{
	static const uint32_t owner[] = { 1, 2, 3 };
	km_ec_dkg_params prm = { 2, 3, 3, owner };
	km_ec_msgs out = { NULL, 0 };
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	km_ec_dkg *d = NULL;
	size_t nsh;

	CU_ASSERT_FATAL(km_ec_dkg_new(groups[0], &prm, 1, &d) == 0);
	CU_ASSERT(km_ec_dkg_round2(d, NULL, 0, &out) == KM_ERR_STATE);
	CU_ASSERT(km_ec_dkg_finish(d, NULL, 0, &sh, &nsh, &pub, NULL)
	    == KM_ERR_STATE);
	CU_ASSERT(km_ec_dkg_round1(d, &out) == 0);
	CU_ASSERT(km_ec_dkg_round1(d, &out) == KM_ERR_STATE);
	/* garbage in round 2: every dealer is complained against */
	km_ec_msgs_free(&out);
	{
		km_ec_msg junk[2];
		uint8_t bytes[20];

		memset(bytes, 0xee, sizeof(bytes));
		km_buf_init_view(&junk[0].body, bytes, sizeof(bytes));
		junk[0].from = 2;
		junk[0].to = 0;
		km_buf_init_view(&junk[1].body, bytes, 3);
		junk[1].from = 3;
		junk[1].to = 1;
		CU_ASSERT(km_ec_dkg_round2(d, junk, 2, &out) == 0);
		CU_ASSERT(km_ec_dkg_complained(d, 1));
		CU_ASSERT(km_ec_dkg_complained(d, 2));
		CU_ASSERT(km_ec_dkg_complained(d, 3));
	}
	km_ec_msgs_free(&out);
	km_ec_dkg_free(d);
}

/* ---- re-sharing ---- */

/* Runs a re-share from @old (k-of-n shares by index) over @quorum. */
static int
run_reshare(const km_ec_group *g, const km_ec_pub *old_pub,
    km_ec_share *const *old, const uint32_t *quorum, size_t nq, uint32_t nk,
    uint32_t nn, km_ec_share **out, km_ec_pub **out_pub, uint32_t *bad,
    void (*tamper)(km_ec_msgs *pool))
{
	km_ec_reshare_params rp = { old_pub, quorum, nq, nk, nn };
	km_ec_msgs pool = { NULL, 0 }, m = { NULL, 0 };
	km_ec_pub *pub = NULL;
	uint32_t j;
	size_t i;
	int r = 0;

	for (i = 0; i < nq; i++) {
		CU_ASSERT_FATAL(
		    km_ec_reshare_deal(g, &rp, old[quorum[i] - 1], &m) == 0);
		pool_move(&pool, &m);
	}
	if (tamper != NULL) {
		tamper(&pool);
	}
	for (j = 1; j <= nn; j++) {
		r = km_ec_reshare_receive(
		    g, &rp, j, pool.v, pool.n, &out[j - 1], &pub, bad);
		if (r != 0) {
			break;
		}
		if (j == 1) {
			*out_pub = pub;
		} else {
			/* every new holder computes the same public side */
			for (i = 0; i < nn; i++) {
				CU_ASSERT(EC_POINT_cmp(g->group, pub->vk[i],
				              (*out_pub)->vk[i], NULL)
				    == 0);
			}
			km_ec_pub_free(pub);
		}
		pub = NULL;
	}
	km_ec_msgs_free(&pool);
	return r;
}

static void
test_reshare(void)
{
	static const struct {
		uint32_t k, n, nk, nn;
	} plans[] = { { 3, 5, 2, 3 }, { 3, 5, 3, 5 }, { 2, 3, 5, 9 },
		{ 5, 9, 3, 5 } };
	size_t c, f, i;

	for (c = 0; c < NCURVES; c++) {
		const km_ec_group *g = groups[c];

		for (f = 0; f < sizeof(plans) / sizeof(plans[0]); f++) {
			uint32_t k = plans[f].k, n = plans[f].n;
			uint32_t nk = plans[f].nk, nn = plans[f].nn;
			uint32_t quorum[KM_EC_MAX_INDEX], bad = 0;
			km_ec_share **old = NULL, *neu[KM_EC_MAX_INDEX];
			km_ec_share *mix[KM_EC_MAX_INDEX];
			km_ec_pub *old_pub = NULL, *new_pub = NULL;
			km_ec_partial **po, **pn, *sel[KM_EC_MAX_INDEX];
			uint8_t peer_oct[133], ref[66], out[66];
			size_t pick[KM_EC_MAX_INDEX], w, nbad;
			uint32_t badl[KM_EC_MAX_INDEX];
			BIGNUM *secret = NULL, *back;
			EC_POINT *peer = NULL;

			memset(neu, 0, sizeof(neu));
			CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
			CU_ASSERT_FATAL(
			    km_ec_dealer_split(g, secret, k, n, &old, &old_pub)
			    == 0);
			/* the last k old indices re-deal */
			for (i = 0; i < k; i++) {
				quorum[i] = n - i;
			}
			CU_ASSERT_FATAL(run_reshare(g, old_pub, old, quorum, k,
			                    nk, nn, neu, &new_pub, &bad, NULL)
			    == 0);
			CU_ASSERT(EC_POINT_cmp(
			              g->group, new_pub->y, old_pub->y, NULL)
			    == 0);
			CU_ASSERT(new_pub->k == nk && new_pub->n == nn);
			/* the new shares hold the same secret */
			back = recover(g, neu, nk);
			CU_ASSERT(BN_cmp(back, secret) == 0);
			BN_clear_free(back);
			back = recover(g, neu + (nn - nk), nk);
			CU_ASSERT(BN_cmp(back, secret) == 0);
			BN_clear_free(back);
			/* and the threshold ECDH with them is right */
			random_peer(g, peer_oct, &peer);
			CU_ASSERT(
			    ossl_derive(g, secret, peer_oct, g->plen, ref)
			    == g->flen);
			pn = all_partials(g, new_pub, neu, nn, peer);
			po = all_partials(g, old_pub, old, n, peer);
			for (i = 0; i < nk; i++) {
				pick[i] = nn - 1 - i;
			}
			expect_combine(g, new_pub, peer, pn, pick, nk, ref);
			/*
			 * Mixing fails: old index 1 among new indices
			 * 2..k' is refused (its proof is against the old
			 * key's verification key) and named...
			 */
			for (i = 1; i < nk; i++) {
				sel[i] = pn[i];
				mix[i] = neu[i];
			}
			sel[0] = po[0];
			mix[0] = old[0];
			CU_ASSERT(km_ecdh_combine(g, new_pub, peer, sel, nk,
			              out, sizeof(out), &w, badl, &nbad)
			    == KM_ERR_BAD_PARTIAL);
			CU_ASSERT(nbad == 1 && badl[0] == 1);
			/* ... and the raw mix of old and new shares does
			 * not interpolate to the secret. */
			back = recover(g, mix, nk);
			CU_ASSERT(BN_cmp(back, secret) != 0);
			BN_clear_free(back);
			if (k <= nk) {
				for (i = 0; i + 1 < k; i++) {
					mix[i] = old[i];
				}
				mix[k - 1] = neu[k - 1];
				back = recover(g, mix, k);
				CU_ASSERT(BN_cmp(back, secret) != 0);
				BN_clear_free(back);
			}
			partials_free(pn, nn);
			partials_free(po, n);
			for (i = 0; i < nn; i++) {
				km_ec_share_free(neu[i]);
			}
			km_ec_pub_free(new_pub);
			km_ec_shares_free(old, n);
			km_ec_pub_free(old_pub);
			BN_clear_free(secret);
			EC_POINT_free(peer);
		}
	}
}

static void
tamper_subshare(km_ec_msgs *pool)
{
	size_t i;

	for (i = 0; i < pool->n; i++) {
		if (pool->v[i].from == 3 && pool->v[i].to == 1) {
			pool->v[i].body.data[pool->v[i].body.len - 1] ^= 1;
		}
	}
}

static void
test_reshare_cheater_named(void)
{
	const km_ec_group *g = groups[1];
	const uint32_t quorum[] = { 1, 3, 5 }, short_q[] = { 1, 3 };
	km_ec_share **old = NULL, *neu[5], *saved;
	km_ec_pub *old_pub = NULL, *new_pub = NULL;
	BIGNUM *secret = NULL;
	uint32_t bad = 0;
	km_ec_msgs m = { NULL, 0 };
	km_ec_reshare_params rp;
	size_t i;

	memset(neu, 0, sizeof(neu));
	CU_ASSERT_FATAL(km_ec_scalar_random(g, &secret) == 0);
	CU_ASSERT_FATAL(
	    km_ec_dealer_split(g, secret, 3, 5, &old, &old_pub) == 0);
	/* a sub-share altered in transit: the new holder names dealer 3 */
	CU_ASSERT(run_reshare(g, old_pub, old, quorum, 3, 3, 5, neu, &new_pub,
	              &bad, tamper_subshare)
	    == KM_ERR_BAD_PARTIAL);
	CU_ASSERT(bad == 3);
	for (i = 0; i < 5; i++) {
		km_ec_share_free(neu[i]);
		neu[i] = NULL;
	}
	/* old holder 5 deals a value that is not its share */
	saved = old[4];
	CU_ASSERT_FATAL(km_ec_share_new(5, &old[4]) == 0);
	CU_ASSERT(BN_rand_range(old[4]->x, g->order) == 1);
	bad = 0;
	CU_ASSERT(run_reshare(g, old_pub, old, quorum, 3, 2, 3, neu, &new_pub,
	              &bad, NULL)
	    == KM_ERR_BAD_PARTIAL);
	CU_ASSERT(bad == 5);
	km_ec_share_free(old[4]);
	old[4] = saved;
	for (i = 0; i < 5; i++) {
		km_ec_share_free(neu[i]);
	}
	/* a quorum below the old threshold, or a dealer outside it */
	rp.old_pub = old_pub;
	rp.quorum = short_q;
	rp.nq = 2;
	rp.new_k = 2;
	rp.new_n = 3;
	CU_ASSERT(km_ec_reshare_deal(g, &rp, old[0], &m) == KM_ERR_QUORUM);
	rp.quorum = quorum;
	rp.nq = 3;
	CU_ASSERT(km_ec_reshare_deal(g, &rp, old[1], &m) == KM_ERR_RANGE);
	rp.new_k = 4;
	CU_ASSERT(
	    km_ec_reshare_deal(g, &rp, old[0], &m) == KM_ERR_INVALID_ARG);
	CU_ASSERT(m.n == 0);
	km_ec_shares_free(old, 5);
	km_ec_pub_free(old_pub);
	BN_clear_free(secret);
}

static void
test_reshare_after_dkg(void)
{
	/* A DKG key re-shared from 3-of-5 to 2-of-3 among new members. */
	const km_ec_group *g = groups[0];
	const uint32_t quorum[] = { 2, 4, 5 };
	uint32_t owner[5] = { 1, 2, 3, 4, 5 }, bad = 0, culprit = 0;
	km_ec_share *neu[3];
	km_ec_pub *new_pub = NULL;
	struct dkg_result res;
	BIGNUM *x, *x2;

	memset(neu, 0, sizeof(neu));
	CU_ASSERT_FATAL(run_dkg(g, 3, 5, 5, owner, NULL, &res, &culprit) == 0);
	CU_ASSERT_FATAL(run_reshare(g, res.pub[0], res.by_index, quorum, 3, 2,
	                    3, neu, &new_pub, &bad, NULL)
	    == 0);
	x = recover(g, res.by_index, 3);
	x2 = recover(g, neu, 2);
	CU_ASSERT(BN_cmp(x, x2) == 0);
	BN_clear_free(x);
	BN_clear_free(x2);
	km_ec_share_free(neu[0]);
	km_ec_share_free(neu[1]);
	km_ec_share_free(neu[2]);
	km_ec_pub_free(new_pub);
	dkg_result_free(&res);
}

/*
 * Every secret the protocols allocate comes from the locked arena and goes
 * back to it: after a DKG, ECDH and a re-share, the arena use is where it
 * started.
 */
static void
test_secmem_balanced(void)
{
	const km_ec_group *g = groups[1];
	static const uint32_t owner[] = { 1, 2, 2, 3, 3 };
	const uint32_t quorum[] = { 1, 3, 5 };
	uint8_t peer_oct[133], out[66];
	km_ec_share *neu[3] = { NULL, NULL, NULL };
	km_ec_pub *new_pub = NULL;
	km_ec_partial **parts;
	struct dkg_result res;
	EC_POINT *peer = NULL;
	uint32_t culprit = 0, bad = 0;
	size_t before, w, i;

	if (!CRYPTO_secure_malloc_initialized()) {
		CU_FAIL("secure heap not initialised");
		return;
	}
	/* OpenSSL's DRBG keeps its state in the arena from first use on. */
	{
		BIGNUM *warm = NULL;

		CU_ASSERT_FATAL(km_ec_scalar_random(g, &warm) == 0);
		BN_clear_free(warm);
	}
	before = km_secmem_used();
	CU_ASSERT_FATAL(
	    run_dkg(g, 3, 5, 3, owner, tamper_share_2_to_3, &res, &culprit)
	    == 0);
	CU_ASSERT(km_secmem_used() > before);
	random_peer(g, peer_oct, &peer);
	parts = all_partials(g, res.pub[0], res.by_index, 5, peer);
	CU_ASSERT(km_ecdh_combine(g, res.pub[0], peer, parts, 5, out,
	              sizeof(out), &w, NULL, NULL)
	    == 0);
	CU_ASSERT(run_reshare(g, res.pub[0], res.by_index, quorum, 3, 2, 3,
	              neu, &new_pub, &bad, NULL)
	    == 0);
	partials_free(parts, 5);
	for (i = 0; i < 3; i++) {
		km_ec_share_free(neu[i]);
	}
	km_ec_pub_free(new_pub);
	dkg_result_free(&res);
	EC_POINT_free(peer);
	CU_ASSERT(km_secmem_used() == before);
}

static const kmt_test ecdh_tests[] = {
	{ "kat_rfc5903", test_ecdh_kat_rfc5903 },
	{ "import_pkey", test_ecdh_import_pkey },
	{ "random_every_subset", test_ecdh_random_every_subset },
	{ "tampered_partial_named", test_ecdh_tampered_partial_named },
	{ "too_few_partials", test_ecdh_too_few },
	{ "bad_inputs", test_ecdh_bad_inputs },
	KMT_END,
};

static const kmt_test dkg_tests[] = {
	{ "honest", test_dkg_honest },
	{ "weighted", test_dkg_weighted },
	{ "cheating_dealer", test_dkg_cheating_dealer },
	{ "wrong_state", test_dkg_wrong_state },
	KMT_END,
};

static const kmt_test reshare_tests[] = {
	{ "old_new_mix_fails", test_reshare },
	{ "cheater_named", test_reshare_cheater_named },
	{ "after_dkg", test_reshare_after_dkg },
	{ "secmem_balanced", test_secmem_balanced },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "ecdh", suite_init, suite_cleanup, ecdh_tests },
	{ "dkg", suite_init, suite_cleanup, dkg_tests },
	{ "reshare", suite_init, suite_cleanup, reshare_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
