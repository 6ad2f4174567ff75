/*
 * Unit tests for src/crypto/rsa*: Shoup threshold RSA (V. Shoup,
 * "Practical Threshold Signatures", EUROCRYPT 2000).
 *
 * Keys come from committed test-only fixtures (tests/data/rsa/): safe
 * primes for dealt keys and ordinary PEM/DER keys for the import path.
 * Every result is checked by OpenSSL itself: signatures with EVP and the
 * plain public key (and, being deterministic, PKCS#1 v1.5 signatures byte
 * for byte against OpenSSL's signature with the whole key), decryptions
 * against OpenSSL's decryption with the whole key.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "crypto/rsa.h"
#include "crypto/rsa_int.h"
#include "kmt.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

#define MAXH KM_RSA_MAX_HOLDERS

typedef struct fx {
	km_rsa_pub *pub;
	km_rsa_share *sh[MAXH];
	EVP_PKEY *whole; /* OpenSSL's key with the private half, for checks */
	unsigned k, n;
} fx;

/* Dealt from safe-prime fixtures. */
static fx d2048_23, d2048_35, d2048_59, d3072_35, d4096_35;
/* Imported from ordinary keys (no proofs). */
static fx i2048_35, i3072_35, i4096_35;

static const int all_hashes[] = { KM_RSA_HASH_SHA1, KM_RSA_HASH_SHA224,
	KM_RSA_HASH_SHA256, KM_RSA_HASH_SHA384, KM_RSA_HASH_SHA512 };

/* ---- helpers ---- */

static const EVP_MD *
md_of(int hash)
{
	switch (hash) {
	case KM_RSA_HASH_SHA1:
		return EVP_sha1();
	case KM_RSA_HASH_SHA224:
		return EVP_sha224();
	case KM_RSA_HASH_SHA256:
		return EVP_sha256();
	case KM_RSA_HASH_SHA384:
		return EVP_sha384();
	case KM_RSA_HASH_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

static void
fx_free(fx *f)
{
	km_rsa_shares_free(f->sh, MAXH);
	km_rsa_pub_free(f->pub);
	EVP_PKEY_free(f->whole);
	memset(f, 0, sizeof(*f));
}

static char *
data_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/tests/data/rsa/%s", KM_SRCDIR, name);
	return path;
}

static int
read_data(const char *name, uint8_t **out, size_t *len)
{
	return km_read_file(data_path(name), out, len, 1u << 20);
}

static int
load_primes(int bits, BIGNUM **p, BIGNUM **q)
{
	char name[64], line[2048];
	FILE *fp;

	snprintf(name, sizeof(name), "safe-%d.txt", bits);
	if ((fp = fopen(data_path(name), "r")) == NULL) {
		return -1;
	}
	*p = *q = NULL;
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "p=", 2) == 0) {
			BN_hex2bn(p, line + 2);
		} else if (strncmp(line, "q=", 2) == 0) {
			BN_hex2bn(q, line + 2);
		}
	}
	fclose(fp);
	return (*p != NULL && *q != NULL) ? 0 : -1;
}

/* The whole private key from p, q (d mod lambda(N)) for OpenSSL checks. */
static EVP_PKEY *
whole_from_primes(const BIGNUM *p, const BIGNUM *q)
{
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *n = BN_new(), *e = BN_new(), *d = BN_new(), *p1 = BN_new(),
	       *q1 = BN_new(), *l = BN_new(), *g = BN_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;

	BN_mul(n, p, q, ctx);
	BN_set_word(e, KM_RSA_DEFAULT_E);
	BN_sub(p1, p, BN_value_one());
	BN_sub(q1, q, BN_value_one());
	BN_gcd(g, p1, q1, ctx);
	BN_mul(l, p1, q1, ctx);
	BN_div(l, NULL, l, g, ctx);
	BN_mod_inverse(d, e, l, ctx);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d);
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1
	    || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	BN_free(p1);
	BN_free(q1);
	BN_free(l);
	BN_free(g);
	BN_CTX_free(ctx);
	return pkey;
}

static int
fx_deal(fx *f, int bits, unsigned k, unsigned n)
{
	BIGNUM *p = NULL, *q = NULL;
	int r;

	memset(f, 0, sizeof(*f));
	if (load_primes(bits, &p, &q) != 0) {
		return -1;
	}
	r = km_rsa_deal_from_primes(p, q, NULL, k, n, &f->pub, f->sh);
	if (r == 0) {
		f->whole = whole_from_primes(p, q);
		f->k = k;
		f->n = n;
	}
	BN_clear_free(p);
	BN_clear_free(q);
	return (r == 0 && f->whole != NULL) ? 0 : -1;
}

static EVP_PKEY *
load_pem(const char *name)
{
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio;
	EVP_PKEY *pkey = NULL;

	if (read_data(name, &data, &len) != 0) {
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(data, (int)len)) != NULL) {
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	free(data);
	return pkey;
}

static int
fx_import(fx *f, const char *name, unsigned k, unsigned n)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	memset(f, 0, sizeof(*f));
	if (read_data(name, &data, &len) != 0) {
		return -1;
	}
	r = km_rsa_import(data, len, k, n, &f->pub, f->sh);
	free(data);
	if (r != 0) {
		return -1;
	}
	f->whole = load_pem(name);
	f->k = k;
	f->n = n;
	return f->whole != NULL ? 0 : -1;
}

static void
free_parts(km_rsa_partial **parts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		km_rsa_partial_free(parts[i]);
		parts[i] = NULL;
	}
}

/* Partials of the shares with the given 1-based indices. */
static int
make_parts(const fx *f, const unsigned *set, size_t len, const BIGNUM *x,
    bool proof, km_rsa_partial **parts)
{
	size_t i;
	int r;

	for (i = 0; i < len; i++) {
		parts[i] = NULL;
	}
	for (i = 0; i < len; i++) {
		r = km_rsa_partial_new(
		    f->pub, f->sh[set[i] - 1], x, proof, &parts[i]);
		if (r != 0) {
			free_parts(parts, i);
			return r;
		}
	}
	return 0;
}

static int
threshold_sign(const fx *f, const unsigned *set, size_t len,
    const km_rsa_mech *mech, const uint8_t *in, size_t inlen, uint8_t *sig,
    size_t *siglen, bool proof)
{
	km_rsa_partial *parts[MAXH];
	BIGNUM *x = NULL;
	uint32_t bad = 0;
	int r;

	if ((r = km_rsa_sign_prepare(f->pub, mech, in, inlen, &x)) != 0) {
		return r;
	}
	if ((r = make_parts(f, set, len, x, proof, parts)) != 0) {
		BN_free(x);
		return r;
	}
	r = km_rsa_sign_combine(
	    f->pub, mech, in, inlen, x, parts, len, sig, siglen, &bad);
	if (r == 0 && bad != 0) {
		r = KM_ERR_INTERNAL; /* honest partials named bad */
	}
	free_parts(parts, len);
	BN_free(x);
	return r;
}

static int
threshold_decrypt(const fx *f, const unsigned *set, size_t len,
    const km_rsa_mech *mech, const uint8_t *c, size_t ctlen, uint8_t *out,
    size_t *outlen)
{
	km_rsa_partial *parts[MAXH];
	BIGNUM *x = NULL;
	uint32_t bad = 0;
	int r;

	if ((r = km_rsa_decrypt_prepare(f->pub, c, ctlen, &x)) != 0) {
		return r;
	}
	if ((r = make_parts(f, set, len, x, true, parts)) != 0) {
		BN_free(x);
		return r;
	}
	r = km_rsa_decrypt_combine(
	    f->pub, mech, x, parts, len, out, outlen, &bad);
	if (r == 0 && bad != 0) {
		r = KM_ERR_INTERNAL;
	}
	free_parts(parts, len);
	BN_free(x);
	return r;
}

/* OpenSSL's own verification of a message signature with the public key. */
static bool
ossl_verify(EVP_PKEY *pkey, const km_rsa_mech *mech, const uint8_t *msg,
    size_t msglen, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool ok = false;

	if (md == NULL
	    || EVP_DigestVerifyInit(md, &pctx, md_of(mech->hash), NULL, pkey)
	        != 1) {
		goto out;
	}
	if (mech->pad == KM_RSA_PAD_PSS) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
		        != 1
		    || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx,
		           md_of(
		               mech->mgf1_hash ? mech->mgf1_hash : mech->hash))
		        != 1
		    || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
		           mech->salt_len < 0 ? RSA_PSS_SALTLEN_DIGEST
		                              : mech->salt_len)
		        != 1) {
			goto out;
		}
	}
	ok = EVP_DigestVerify(md, sig, siglen, msg, msglen) == 1;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	return ok;
}

/* OpenSSL's own PKCS#1 v1.5 signature with the whole key. */
static int
ossl_sign(EVP_PKEY *pkey, int hash, const uint8_t *msg, size_t msglen,
    uint8_t *sig, size_t *siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int r = -1;

	if (md != NULL
	    && EVP_DigestSignInit(md, NULL, md_of(hash), NULL, pkey) == 1
	    && EVP_DigestSign(md, sig, siglen, msg, msglen) == 1) {
		r = 0;
	}
	EVP_MD_CTX_free(md);
	return r;
}

static void
digest(int hash, const uint8_t *msg, size_t len, uint8_t *out, size_t *olen)
{
	unsigned n = 0;

	EVP_Digest(msg, len, out, &n, md_of(hash), NULL);
	*olen = n;
}

static EVP_PKEY_CTX *
ossl_crypt_ctx(EVP_PKEY *pkey, const km_rsa_mech *mech, bool enc)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int pad = mech->pad == KM_RSA_PAD_RAW ? RSA_NO_PADDING
	    : mech->pad == KM_RSA_PAD_PKCS1   ? RSA_PKCS1_PADDING
	                                      : RSA_PKCS1_OAEP_PADDING;

	if (pctx == NULL) {
		return NULL;
	}
	if ((enc ? EVP_PKEY_encrypt_init(pctx) : EVP_PKEY_decrypt_init(pctx))
	        != 1
	    || EVP_PKEY_CTX_set_rsa_padding(pctx, pad) != 1) {
		EVP_PKEY_CTX_free(pctx);
		return NULL;
	}
	if (mech->pad == KM_RSA_PAD_OAEP) {
		EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md_of(mech->hash));
		EVP_PKEY_CTX_set_rsa_mgf1_md(pctx,
		    md_of(mech->mgf1_hash ? mech->mgf1_hash : mech->hash));
		if (mech->label_len > 0) {
			EVP_PKEY_CTX_set0_rsa_oaep_label(pctx,
			    OPENSSL_memdup(mech->label, mech->label_len),
			    (int)mech->label_len);
		}
	}
	return pctx;
}

static int
ossl_crypt(EVP_PKEY *pkey, const km_rsa_mech *mech, bool enc,
    const uint8_t *in, size_t inlen, uint8_t *out, size_t *outlen)
{
	EVP_PKEY_CTX *pctx = ossl_crypt_ctx(pkey, mech, enc);
	int r = -1;

	if (pctx != NULL
	    && (enc ? EVP_PKEY_encrypt(pctx, out, outlen, in, inlen)
	            : EVP_PKEY_decrypt(pctx, out, outlen, in, inlen))
	        == 1) {
		r = 0;
	}
	ERR_clear_error();
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/* Next k-subset of {1..n}, lexicographic. */
static bool
next_set(unsigned *c, unsigned k, unsigned n)
{
	unsigned i = k;

	while (i-- > 0) {
		if (c[i] < n - k + i + 1) {
			c[i]++;
			for (i++; i < k; i++) {
				c[i] = c[i - 1] + 1;
			}
			return true;
		}
	}
	return false;
}

static void
first_set(unsigned *c, unsigned k)
{
	unsigned i;

	for (i = 0; i < k; i++) {
		c[i] = i + 1;
	}
}

static const uint8_t msg[] = "keymesh threshold RSA test message";

/* One PKCS#1 v1.5 and one PSS signature per hash, checked by OpenSSL. */
static void
check_sign_mechs(const fx *f, const unsigned *set, bool all_hash)
{
	uint8_t dig[64], sig[1024], ref[1024];
	size_t dlen, siglen, reflen, h;
	km_rsa_mech mech;

	for (h = 0; h < sizeof(all_hashes) / sizeof(all_hashes[0]); h++) {
		int hash = all_hashes[h];

		if (!all_hash && hash != KM_RSA_HASH_SHA256) {
			continue;
		}
		digest(hash, msg, sizeof(msg), dig, &dlen);
		memset(&mech, 0, sizeof(mech));
		mech.pad = KM_RSA_PAD_PKCS1;
		mech.hash = hash;
		siglen = sizeof(sig);
		CU_ASSERT_FATAL(threshold_sign(f, set, f->k, &mech, dig, dlen,
		                    sig, &siglen, true)
		    == 0);
		CU_ASSERT(siglen == (size_t)EVP_PKEY_get_size(f->whole));
		CU_ASSERT(ossl_verify(km_rsa_pub_pkey(f->pub), &mech, msg,
		    sizeof(msg), sig, siglen));
		/* deterministic: equal to OpenSSL's with the whole key */
		reflen = sizeof(ref);
		CU_ASSERT_FATAL(
		    ossl_sign(f->whole, hash, msg, sizeof(msg), ref, &reflen)
		    == 0);
		CU_ASSERT(reflen == siglen && memcmp(ref, sig, siglen) == 0);

		/* PSS, salt = hash length and a caller-given 0 and 20 */
		mech.pad = KM_RSA_PAD_PSS;
		mech.salt_len = KM_RSA_PSS_SALT_HASHLEN;
		siglen = sizeof(sig);
		CU_ASSERT(threshold_sign(f, set, f->k, &mech, dig, dlen, sig,
		              &siglen, true)
		    == 0);
		CU_ASSERT(ossl_verify(
		    f->whole, &mech, msg, sizeof(msg), sig, siglen));
		if (all_hash) {
			mech.salt_len = h == 0 ? 0 : 20;
			mech.mgf1_hash = KM_RSA_HASH_SHA1;
			siglen = sizeof(sig);
			CU_ASSERT(threshold_sign(f, set, f->k, &mech, dig,
			              dlen, sig, &siglen, true)
			    == 0);
			CU_ASSERT(ossl_verify(
			    f->whole, &mech, msg, sizeof(msg), sig, siglen));
		}
	}
}

/* RAW signing: y^e = x through OpenSSL's public-key operation. */
static void
check_sign_raw(const fx *f, const unsigned *set)
{
	uint8_t in[1024], sig[1024], back[1024];
	size_t n = (size_t)EVP_PKEY_get_size(f->whole), siglen, blen;
	km_rsa_mech mech = { .pad = KM_RSA_PAD_RAW };

	CU_ASSERT_FATAL(RAND_bytes(in, (int)n) == 1);
	in[0] = 0x01; /* below N */
	siglen = sizeof(sig);
	CU_ASSERT_FATAL(
	    threshold_sign(f, set, f->k, &mech, in, n, sig, &siglen, true)
	    == 0);
	blen = sizeof(back);
	CU_ASSERT(
	    ossl_crypt(f->whole, &mech, true, sig, siglen, back, &blen) == 0);
	CU_ASSERT(blen == n && memcmp(back, in, n) == 0);
}

/* Each decryption mechanism against OpenSSL's decryption. */
static void
check_decrypt_mechs(const fx *f, const unsigned *set, bool all)
{
	static const uint8_t label[] = "km-label";
	uint8_t pt[64], ct[1024], out[1024], ref[1024];
	size_t ctlen, outlen, reflen, i, n;
	km_rsa_mech mechs[7];

	memset(mechs, 0, sizeof(mechs));
	mechs[0].pad = KM_RSA_PAD_PKCS1;
	mechs[1].pad = KM_RSA_PAD_OAEP;
	mechs[1].hash = KM_RSA_HASH_SHA1;
	mechs[2].pad = KM_RSA_PAD_OAEP;
	mechs[2].hash = KM_RSA_HASH_SHA256;
	mechs[2].label = label;
	mechs[2].label_len = sizeof(label) - 1;
	mechs[3].pad = KM_RSA_PAD_OAEP;
	mechs[3].hash = KM_RSA_HASH_SHA512;
	mechs[3].mgf1_hash = KM_RSA_HASH_SHA256;
	mechs[4].pad = KM_RSA_PAD_RAW;
	mechs[5].pad = KM_RSA_PAD_OAEP;
	mechs[5].hash = KM_RSA_HASH_SHA224;
	mechs[6].pad = KM_RSA_PAD_OAEP;
	mechs[6].hash = KM_RSA_HASH_SHA384;
	mechs[6].label = label;
	mechs[6].label_len = 3;
	n = (size_t)EVP_PKEY_get_size(f->whole);
	for (i = 0; i < (all ? 7u : 2u); i++) {
		size_t ptlen = sizeof(pt);

		CU_ASSERT_FATAL(RAND_bytes(pt, sizeof(pt)) == 1);
		ctlen = sizeof(ct);
		if (mechs[i].pad == KM_RSA_PAD_RAW) {
			uint8_t blk[1024];

			CU_ASSERT_FATAL(RAND_bytes(blk, (int)n) == 1);
			blk[0] = 0;
			CU_ASSERT_FATAL(ossl_crypt(f->whole, &mechs[i], true,
			                    blk, n, ct, &ctlen)
			    == 0);
			memcpy(pt, blk, sizeof(pt));
			ptlen = 0; /* compare with OpenSSL only */
		} else {
			CU_ASSERT_FATAL(ossl_crypt(f->whole, &mechs[i], true,
			                    pt, sizeof(pt), ct, &ctlen)
			    == 0);
		}
		outlen = sizeof(out);
		CU_ASSERT_FATAL(threshold_decrypt(f, set, f->k, &mechs[i], ct,
		                    ctlen, out, &outlen)
		    == 0);
		reflen = sizeof(ref);
		CU_ASSERT_FATAL(ossl_crypt(f->whole, &mechs[i], false, ct,
		                    ctlen, ref, &reflen)
		    == 0);
		CU_ASSERT(outlen == reflen && memcmp(out, ref, outlen) == 0);
		if (ptlen > 0) {
			CU_ASSERT(
			    outlen == ptlen && memcmp(out, pt, ptlen) == 0);
		}
	}
}

/* ---- known-answer tests ---- */

static void
kat_one(const fx *f, int bits, int hash, const char *hname)
{
	uint8_t *m = NULL, *ref = NULL, dig[64], sig[1024];
	size_t mlen = 0, reflen = 0, dlen, siglen;
	unsigned set[MAXH];
	char name[64];
	km_rsa_mech mech = { .pad = KM_RSA_PAD_PKCS1, .hash = hash };

	snprintf(name, sizeof(name), "kat-%d-%s.sig", bits, hname);
	CU_ASSERT_FATAL(read_data("kat-msg.txt", &m, &mlen) == 0);
	CU_ASSERT_FATAL(read_data(name, &ref, &reflen) == 0);
	digest(hash, m, mlen, dig, &dlen);
	first_set(set, f->k);
	do {
		siglen = sizeof(sig);
		CU_ASSERT(threshold_sign(f, set, f->k, &mech, dig, dlen, sig,
		              &siglen, false)
		    == 0);
		CU_ASSERT(siglen == reflen && memcmp(sig, ref, reflen) == 0);
	} while (bits == 2048 && next_set(set, f->k, f->n));
	free(m);
	free(ref);
}

static void
test_kat_2048(void)
{
	uint8_t *der = NULL;
	size_t len = 0;
	fx f;

	kat_one(&i2048_35, 2048, KM_RSA_HASH_SHA256, "sha256");
	kat_one(&i2048_35, 2048, KM_RSA_HASH_SHA1, "sha1");
	kat_one(&i2048_35, 2048, KM_RSA_HASH_SHA512, "sha512");
	/* the same key in DER gives the same signatures */
	memset(&f, 0, sizeof(f));
	CU_ASSERT_FATAL(read_data("import-2048.der", &der, &len) == 0);
	CU_ASSERT_FATAL(km_rsa_import(der, len, 2, 3, &f.pub, f.sh) == 0);
	f.whole = load_pem("import-2048.pem");
	f.k = 2;
	f.n = 3;
	CU_ASSERT(!km_rsa_pub_has_proofs(f.pub));
	kat_one(&f, 2048, KM_RSA_HASH_SHA256, "sha256");
	fx_free(&f);
	free(der);
}

static void
test_kat_3072_4096(void)
{
	kat_one(&i3072_35, 3072, KM_RSA_HASH_SHA256, "sha256");
	kat_one(&i4096_35, 4096, KM_RSA_HASH_SHA256, "sha256");
}

/* CKM_RSA_PKCS: the caller's own DigestInfo gives the same bytes. */
static void
test_pkcs1_digestinfo(void)
{
	static const uint8_t prefix[]
	    = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
		      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
	static const unsigned set[] = { 2, 3, 5 };
	uint8_t di[64], sig[512], sig2[512];
	size_t dlen, siglen = sizeof(sig), siglen2 = sizeof(sig2);
	km_rsa_mech none = { .pad = KM_RSA_PAD_PKCS1 },
	            sha
	    = { .pad = KM_RSA_PAD_PKCS1, .hash = KM_RSA_HASH_SHA256 };

	memcpy(di, prefix, sizeof(prefix));
	digest(
	    KM_RSA_HASH_SHA256, msg, sizeof(msg), di + sizeof(prefix), &dlen);
	CU_ASSERT(threshold_sign(&d2048_35, set, 3, &none, di,
	              sizeof(prefix) + dlen, sig, &siglen, true)
	    == 0);
	CU_ASSERT(threshold_sign(&d2048_35, set, 3, &sha, di + sizeof(prefix),
	              dlen, sig2, &siglen2, true)
	    == 0);
	CU_ASSERT(siglen == siglen2 && memcmp(sig, sig2, siglen) == 0);
	CU_ASSERT(
	    ossl_verify(d2048_35.whole, &sha, msg, sizeof(msg), sig, siglen));
}

/* ---- every k-subset of 3-of-5 ---- */

static void
test_subsets_2048_dealt(void)
{
	unsigned set[MAXH];
	int count = 0;

	CU_ASSERT(km_rsa_pub_has_proofs(d2048_35.pub));
	first_set(set, 3);
	do {
		check_sign_mechs(&d2048_35, set, false);
		check_sign_raw(&d2048_35, set);
		check_decrypt_mechs(&d2048_35, set, true);
		count++;
	} while (next_set(set, 3, 5));
	CU_ASSERT(count == 10);
	/* every hash and salt choice on one subset */
	first_set(set, 3);
	check_sign_mechs(&d2048_35, set, true);
}

static void
test_subsets_2048_imported(void)
{
	unsigned set[MAXH];
	int count = 0;

	first_set(set, 3);
	do {
		check_sign_mechs(&i2048_35, set, false);
		check_decrypt_mechs(&i2048_35, set, true);
		count++;
	} while (next_set(set, 3, 5));
	CU_ASSERT(count == 10);
	first_set(set, 3);
	check_sign_mechs(&i2048_35, set, true);
	check_sign_raw(&i2048_35, set);
}

static void
test_k_of_n_2048(void)
{
	unsigned set[MAXH];
	static const unsigned s59a[] = { 1, 2, 3, 4, 5 };
	static const unsigned s59b[] = { 9, 7, 5, 3, 1 };
	static const unsigned s59c[] = { 2, 4, 6, 8, 9 };

	first_set(set, 2);
	do {
		check_sign_mechs(&d2048_23, set, false);
		check_decrypt_mechs(&d2048_23, set, false);
	} while (next_set(set, 2, 3));
	check_sign_mechs(&d2048_59, s59a, false);
	check_sign_mechs(&d2048_59, s59b, false);
	check_decrypt_mechs(&d2048_59, s59c, true);
	check_sign_raw(&d2048_59, s59b);
}

static void
test_sizes_3072_4096(void)
{
	static const unsigned a[] = { 1, 2, 3 }, b[] = { 5, 2, 4 };

	check_sign_mechs(&d3072_35, a, false);
	check_decrypt_mechs(&d3072_35, b, false);
	check_sign_mechs(&d4096_35, b, false);
	check_decrypt_mechs(&d4096_35, a, false);
	check_sign_mechs(&i3072_35, b, false);
	check_decrypt_mechs(&i3072_35, a, true);
	check_sign_mechs(&i4096_35, a, false);
	check_decrypt_mechs(&i4096_35, b, false);
}

/* ---- robustness ---- */

static BIGNUM *
random_x(const fx *f)
{
	BIGNUM *x = BN_new();

	if (x != NULL && !BN_rand_range(x, km_rsa_pub_modulus(f->pub))) {
		BN_free(x);
		return NULL;
	}
	if (x != NULL && BN_is_zero(x)) {
		BN_one(x);
	}
	return x;
}

/*
 * A holder that lies: the partial as it would arrive off the wire with one
 * bit of x_i changed (the decoder still accepts it: it is in range).
 */
static int
tamper(const km_rsa_pub *pub, km_rsa_partial **part)
{
	km_rsa_partial *p = NULL;
	uint32_t xlen;
	km_buf b;
	int r;

	km_buf_init(&b);
	if ((r = km_rsa_partial_encode(*part, &b)) != 0) {
		goto out;
	}
	/* tag, version, index, then x_i as a string */
	xlen = ((uint32_t)b.data[12] << 24) | ((uint32_t)b.data[13] << 16)
	    | ((uint32_t)b.data[14] << 8) | b.data[15];
	b.data[16 + xlen - 1] ^= 0x02;
	if ((r = km_rsa_partial_decode(pub, b.data, b.len, &p)) != 0) {
		goto out;
	}
	km_rsa_partial_free(*part);
	*part = p;
out:
	km_buf_free(&b);
	return r;
}

static void
test_tamper_proof(void)
{
	static const unsigned set4[] = { 1, 2, 3, 4 };
	km_rsa_partial *parts[4];
	BIGNUM *x = random_x(&d2048_35), *y = NULL;
	const fx *f = &d2048_35;
	uint32_t bad = 0;

	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT_FATAL(make_parts(f, set4, 4, x, true, parts) == 0);
	CU_ASSERT(km_rsa_partial_verify(f->pub, x, parts[1]) == 0);
	CU_ASSERT(tamper(f->pub, &parts[1]) == 0);
	CU_ASSERT(km_rsa_partial_verify(f->pub, x, parts[1]) == KM_ERR_VERIFY);
	/* 4 partials, index 2 bad: a correct result and index 2 named */
	CU_ASSERT(km_rsa_combine(f->pub, x, parts, 4, &y, &bad) == 0);
	CU_ASSERT(bad == (1u << 2));
	CU_ASSERT(y != NULL);
	BN_free(y);
	y = NULL;
	/* exactly k with the bad one: no result, but it is still named */
	bad = 0;
	CU_ASSERT(km_rsa_combine(f->pub, x, parts, 3, &y, &bad)
	    == KM_ERR_BAD_PARTIAL);
	CU_ASSERT(bad == (1u << 2));
	CU_ASSERT(y == NULL);
	/* a proof for another input is refused too */
	BN_add_word(x, 1);
	CU_ASSERT(km_rsa_partial_verify(f->pub, x, parts[0]) == KM_ERR_VERIFY);
	free_parts(parts, 4);
	BN_free(x);
}

static void
test_tamper_subset(void)
{
	static const unsigned set5[] = { 4, 1, 2, 3, 5 };
	km_rsa_partial *parts[5];
	BIGNUM *x = random_x(&i2048_35), *y = NULL, *y2 = NULL;
	const fx *f = &i2048_35;
	uint32_t bad = 0;

	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT_FATAL(make_parts(f, set5, 5, x, true, parts) == 0);
	CU_ASSERT(!km_rsa_partial_has_proof(parts[0]));
	CU_ASSERT(km_rsa_combine(f->pub, x, parts, 5, &y2, &bad) == 0);
	CU_ASSERT(bad == 0);
	/* index 4 (first) bad: subset search finds and names it */
	CU_ASSERT(tamper(f->pub, &parts[0]) == 0);
	CU_ASSERT(km_rsa_combine(f->pub, x, parts, 5, &y, &bad) == 0);
	CU_ASSERT(bad == (1u << 4));
	CU_ASSERT(y != NULL && y2 != NULL && BN_cmp(y, y2) == 0);
	BN_free(y);
	y = NULL;
	/* two bad of five, three good left */
	CU_ASSERT(tamper(f->pub, &parts[3]) == 0);
	CU_ASSERT(km_rsa_combine(f->pub, x, parts, 5, &y, &bad) == 0);
	CU_ASSERT(bad == ((1u << 4) | (1u << 3)));
	CU_ASSERT(y != NULL && BN_cmp(y, y2) == 0);
	BN_free(y);
	y = NULL;
	/* k partials with a bad one: no result */
	CU_ASSERT(km_rsa_combine(f->pub, x, parts, 3, &y, &bad)
	    == KM_ERR_BAD_PARTIAL);
	CU_ASSERT(y == NULL);
	free_parts(parts, 5);
	BN_free(x);
	BN_free(y2);
}

static void
test_too_few(void)
{
	static const unsigned set[] = { 1, 2, 3, 4, 5 };
	km_rsa_partial *parts[5];
	const fx *fs[] = { &d2048_35, &i2048_35, &d2048_59 };
	uint8_t sig[512], dig[32];
	size_t siglen, i, dlen;
	km_rsa_mech mech
	    = { .pad = KM_RSA_PAD_PKCS1, .hash = KM_RSA_HASH_SHA256 };
	BIGNUM *x = NULL, *y = NULL;
	uint32_t bad;

	digest(KM_RSA_HASH_SHA256, msg, sizeof(msg), dig, &dlen);
	for (i = 0; i < 3; i++) {
		const fx *f = fs[i];

		CU_ASSERT_FATAL(
		    km_rsa_sign_prepare(f->pub, &mech, dig, dlen, &x) == 0);
		CU_ASSERT_FATAL(
		    make_parts(f, set, f->k - 1, x, true, parts) == 0);
		CU_ASSERT(km_rsa_combine(f->pub, x, parts, f->k - 1, &y, &bad)
		    == KM_ERR_QUORUM);
		CU_ASSERT(y == NULL);
		memset(sig, 0xee, sizeof(sig));
		siglen = sizeof(sig);
		CU_ASSERT(km_rsa_sign_combine(f->pub, &mech, dig, dlen, x,
		              parts, f->k - 1, sig, &siglen, &bad)
		    == KM_ERR_QUORUM);
		CU_ASSERT(sig[0] == 0xee && sig[100] == 0xee);
		/* with a duplicate standing in for the k-th */
		parts[f->k - 1] = parts[0];
		CU_ASSERT(km_rsa_combine(f->pub, x, parts, f->k, &y, &bad)
		    == KM_ERR_INVALID_ARG);
		free_parts(parts, f->k - 1);
		BN_free(x);
		x = NULL;
	}
}

/* Concurrent partials on one shared key object. */
typedef struct thr_arg {
	const fx *f;
	const BIGNUM *x;
	unsigned index;
	int rounds;
	int fails;
} thr_arg;

static void *
thr_partial(void *v)
{
	thr_arg *a = v;
	int i;

	for (i = 0; i < a->rounds; i++) {
		km_rsa_partial *p = NULL;

		if (km_rsa_partial_new(
		        a->f->pub, a->f->sh[a->index - 1], a->x, true, &p)
		        != 0
		    || km_rsa_partial_verify(a->f->pub, a->x, p) != 0) {
			a->fails++;
		}
		km_rsa_partial_free(p);
	}
	return NULL;
}

static void
test_threads(void)
{
	thr_arg a[3];
	pthread_t t[3];
	BIGNUM *x = random_x(&d2048_35);
	int i;

	CU_ASSERT_FATAL(x != NULL);
	memset(a, 0, sizeof(a));
	for (i = 0; i < 3; i++) {
		a[i].f = &d2048_35;
		a[i].x = x;
		a[i].index = (unsigned)i + 1;
		a[i].rounds = 4;
		CU_ASSERT_FATAL(
		    pthread_create(&t[i], NULL, thr_partial, &a[i]) == 0);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT(a[i].fails == 0);
	}
	BN_free(x);
}

/* ---- re-sharing ---- */

static int
do_reshare(const fx *old, const unsigned *quorum, size_t qlen, unsigned new_k,
    unsigned new_n, fx *nf)
{
	km_rsa_subdeal *deals[MAXH] = { NULL };
	size_t i;
	unsigned j;
	int r = 0;

	memset(nf, 0, sizeof(*nf));
	for (i = 0; i < qlen && r == 0; i++) {
		r = km_rsa_reshare_deal(old->pub, old->sh[quorum[i] - 1],
		    quorum, qlen, new_k, new_n, &deals[i]);
	}
	if (r == 0) {
		r = km_rsa_reshare_pub(
		    old->pub, deals, qlen, new_k, new_n, &nf->pub);
	}
	for (j = 1; j <= new_n && r == 0; j++) {
		r = km_rsa_reshare_accept(
		    nf->pub, deals, qlen, j, &nf->sh[j - 1]);
	}
	for (i = 0; i < qlen; i++) {
		km_rsa_subdeal_free(deals[i]);
	}
	if (r == 0) {
		nf->k = new_k;
		nf->n = new_n;
		nf->whole = old->whole;
		EVP_PKEY_up_ref(nf->whole);
	}
	return r;
}

/* Mixed old and new partials never give a result. */
static void
check_mix_fails(const fx *old, const fx *nf)
{
	km_rsa_partial *po[MAXH], *pn[MAXH], *mix[MAXH];
	unsigned set[MAXH];
	BIGNUM *x = random_x(nf), *y = NULL;
	uint32_t bad = 0;
	unsigned i;
	int r;

	CU_ASSERT_FATAL(x != NULL);
	first_set(set, old->n > nf->n ? old->n : nf->n);
	CU_ASSERT_FATAL(make_parts(old, set, old->n, x, true, po) == 0);
	CU_ASSERT_FATAL(make_parts(nf, set, nf->n, x, true, pn) == 0);
	/* the new ones alone work */
	CU_ASSERT(km_rsa_combine(nf->pub, x, pn, nf->k, &y, &bad) == 0);
	BN_free(y);
	y = NULL;
	/* new k-1 + one old, under either key: nothing */
	for (i = 0; i + 1 < nf->k; i++) {
		mix[i] = pn[i];
	}
	mix[nf->k - 1] = po[nf->k - 1];
	r = km_rsa_combine(nf->pub, x, mix, nf->k, &y, &bad);
	CU_ASSERT(r == KM_ERR_BAD_PARTIAL);
	CU_ASSERT(y == NULL);
	if (km_rsa_pub_has_proofs(nf->pub)) {
		CU_ASSERT(bad == (1u << nf->k));
	}
	mix[0] = po[0];
	for (i = 1; i < old->k; i++) {
		mix[i] = pn[i];
	}
	if (old->k <= nf->n) {
		CU_ASSERT(
		    km_rsa_combine(old->pub, x, mix, old->k, &y, &bad) != 0);
		CU_ASSERT(y == NULL);
	}
	/* an old share used with the new key data is useless */
	free_parts(mix, 1);
	CU_ASSERT(
	    km_rsa_partial_new(nf->pub, old->sh[0], x, false, &mix[0]) == 0);
	for (i = 1; i < nf->k; i++) {
		mix[i] = pn[i];
	}
	CU_ASSERT(km_rsa_combine(nf->pub, x, mix, nf->k, &y, &bad) != 0);
	CU_ASSERT(y == NULL);
	km_rsa_partial_free(mix[0]);
	po[0] = NULL;
	free_parts(po, old->n);
	free_parts(pn, nf->n);
	BN_free(x);
}

static void
test_reshare_dealt(void)
{
	static const unsigned q1[] = { 1, 3, 5 }, q2[] = { 2, 3 },
	                      q3[] = { 4, 1, 2 };
	unsigned set[MAXH];
	fx a, b, c;

	/* 3-of-5 -> 2-of-3 -> 3-of-4 -> ... every step keeps working */
	CU_ASSERT_FATAL(do_reshare(&d2048_35, q1, 3, 2, 3, &a) == 0);
	CU_ASSERT(km_rsa_pub_has_proofs(a.pub));
	first_set(set, 2);
	do {
		check_sign_mechs(&a, set, false);
	} while (next_set(set, 2, 3));
	check_decrypt_mechs(&a, q2, false);
	check_mix_fails(&d2048_35, &a);

	CU_ASSERT_FATAL(do_reshare(&a, q2, 2, 3, 5, &b) == 0);
	first_set(set, 3);
	do {
		check_sign_mechs(&b, set, false);
	} while (next_set(set, 3, 5));
	check_decrypt_mechs(&b, q3, true);
	check_mix_fails(&a, &b);
	CU_ASSERT(km_rsa_pub_scale_bits(b.pub) > km_rsa_pub_scale_bits(a.pub));
	CU_ASSERT(km_rsa_share_bits(b.sh[0]) > km_rsa_share_bits(a.sh[0]));
	CU_ASSERT(
	    km_rsa_share_bits(a.sh[0]) > km_rsa_share_bits(d2048_35.sh[0]));

	/* to 5-of-9 */
	CU_ASSERT_FATAL(do_reshare(&b, q3, 3, 5, 9, &c) == 0);
	check_sign_mechs(&c, (const unsigned[]) { 9, 1, 5, 6, 2 }, false);
	check_mix_fails(&b, &c);
	fx_free(&a);
	fx_free(&b);
	fx_free(&c);
}

static void
test_reshare_imported(void)
{
	static const unsigned q1[] = { 2, 4, 5 }, q2[] = { 1, 2, 3 };
	unsigned set[MAXH];
	fx a;

	CU_ASSERT_FATAL(do_reshare(&i2048_35, q1, 3, 3, 5, &a) == 0);
	CU_ASSERT(!km_rsa_pub_has_proofs(a.pub));
	first_set(set, 3);
	do {
		check_sign_mechs(&a, set, false);
	} while (next_set(set, 3, 5));
	check_decrypt_mechs(&a, q2, false);
	check_mix_fails(&i2048_35, &a);
	fx_free(&a);
}

static void
test_reshare_bad_dealing(void)
{
	static const unsigned q[] = { 1, 2, 3 };
	km_rsa_subdeal *deals[3] = { NULL };
	km_rsa_pub *np = NULL;
	km_rsa_share *s = NULL;
	unsigned i;

	for (i = 0; i < 3; i++) {
		CU_ASSERT_FATAL(
		    km_rsa_reshare_deal(d2048_35.pub, d2048_35.sh[q[i] - 1], q,
		        3, 2, 3, &deals[i])
		    == 0);
	}
	CU_ASSERT_FATAL(
	    km_rsa_reshare_pub(d2048_35.pub, deals, 3, 2, 3, &np) == 0);
	/* a dealing whose sub-share for holder 2 is off by one */
	CU_ASSERT(km_rsa_reshare_accept(np, deals, 3, 2, &s) == 0);
	km_rsa_share_free(s);
	s = NULL;
	{
		/* reach in through the only public handle: re-deal with
		 * another quorum gives commitments that do not match */
		km_rsa_subdeal *other = NULL;
		static const unsigned q2[] = { 1, 2, 4 };
		km_rsa_subdeal *mixed[3];
		km_rsa_pub *np2 = NULL;

		CU_ASSERT_FATAL(km_rsa_reshare_deal(d2048_35.pub,
		                    d2048_35.sh[3], q2, 3, 2, 3, &other)
		    == 0);
		mixed[0] = deals[0];
		mixed[1] = deals[1];
		mixed[2] = other;
		/* quorum {1,2,4} with dealings made for {1,2,3}: refused */
		CU_ASSERT(
		    km_rsa_reshare_pub(d2048_35.pub, mixed, 3, 2, 3, &np2)
		    != 0);
		CU_ASSERT(np2 == NULL);
		/* holder 2 checks its sub-shares against np's commitments */
		CU_ASSERT(km_rsa_reshare_accept(np, mixed, 3, 2, &s) != 0);
		CU_ASSERT(s == NULL);
		km_rsa_subdeal_free(other);
	}
	/* a quorum below k, a non-member dealer, bad new sizes */
	CU_ASSERT(km_rsa_reshare_deal(
	              d2048_35.pub, d2048_35.sh[0], q, 2, 2, 3, &deals[0])
	    == KM_ERR_QUORUM);
	CU_ASSERT(km_rsa_reshare_deal(
	              d2048_35.pub, d2048_35.sh[4], q, 3, 2, 3, &deals[0])
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_rsa_reshare_deal(
	              d2048_35.pub, d2048_35.sh[0], q, 3, 4, 3, &deals[0])
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_rsa_reshare_deal(
	              d2048_35.pub, d2048_35.sh[0], q, 3, 2, 17, &deals[0])
	    == KM_ERR_INVALID_ARG);
	for (i = 0; i < 3; i++) {
		km_rsa_subdeal_free(deals[i]);
	}
	km_rsa_pub_free(np);
}

/* Share growth: printed for docs/crypto-rsa.md, asserted to grow. */
static void
test_reshare_growth(void)
{
	static const unsigned q[] = { 1, 2, 3 };
	fx cur, next;
	int step, prev;
	unsigned set[] = { 1, 3, 5 };

	memset(&cur, 0, sizeof(cur));
	cur = d2048_35;
	prev = km_rsa_share_bits(cur.sh[0]);
	printf("\n    share bits (3-of-5 -> 3-of-5, RSA-2048): 0:%d", prev);
	for (step = 1; step <= 5; step++) {
		CU_ASSERT_FATAL(do_reshare(&cur, q, 3, 3, 5, &next) == 0);
		printf(" %d:%d", step, km_rsa_share_bits(next.sh[0]));
		CU_ASSERT(km_rsa_share_bits(next.sh[0]) > prev);
		CU_ASSERT(km_rsa_share_bits(next.sh[0])
		    <= km_rsa_pub_share_bits(next.pub));
		prev = km_rsa_share_bits(next.sh[0]);
		if (step > 1) {
			fx_free(&cur);
		}
		cur = next;
	}
	printf(" (scale %d bits)\n", km_rsa_pub_scale_bits(cur.pub));
	/* still signs after five re-shares */
	check_sign_mechs(&cur, set, false);
	fx_free(&cur);
}

/* Re-sharing through the wire encoding: each new holder gets only its own
 * sub-shares; the public parts give the new key data. */
static void
reshare_wire_one(
    const fx *old, const unsigned *q, size_t qlen, unsigned nk, unsigned nn)
{
	km_rsa_subdeal *deals[MAXH] = { NULL }, *pubpart[MAXH] = { NULL };
	km_rsa_subdeal *mine[MAXH] = { NULL };
	unsigned set[MAXH], j;
	size_t i, cut;
	km_buf b;
	fx nf;

	memset(&nf, 0, sizeof(nf));
	for (i = 0; i < qlen; i++) {
		CU_ASSERT_FATAL(
		    km_rsa_reshare_deal(old->pub, old->sh[q[i] - 1], q, qlen,
		        nk, nn, &deals[i])
		    == 0);
		km_buf_init(&b);
		CU_ASSERT_FATAL(km_rsa_subdeal_encode(deals[i], 0, &b) == 0);
		CU_ASSERT_FATAL(
		    km_rsa_subdeal_decode(old->pub, b.data, b.len, &pubpart[i])
		    == 0);
		CU_ASSERT(km_rsa_subdeal_index(pubpart[i]) == q[i]);
		/* every truncation is refused */
		for (cut = 0; cut < b.len; cut += 7) {
			km_rsa_subdeal *t = NULL;

			CU_ASSERT(
			    km_rsa_subdeal_decode(old->pub, b.data, cut, &t)
			    != 0);
			CU_ASSERT(t == NULL);
		}
		km_buf_free(&b);
	}
	CU_ASSERT_FATAL(
	    km_rsa_reshare_pub(old->pub, pubpart, qlen, nk, nn, &nf.pub) == 0);
	/* the public part alone gives no share */
	CU_ASSERT(km_rsa_reshare_accept(nf.pub, pubpart, qlen, 1, &nf.sh[0])
	    == KM_ERR_INVALID_ARG);
	for (j = 1; j <= nn; j++) {
		for (i = 0; i < qlen; i++) {
			km_buf_init_secure(&b);
			CU_ASSERT_FATAL(
			    km_rsa_subdeal_encode(deals[i], j, &b) == 0);
			CU_ASSERT_FATAL(km_rsa_subdeal_decode(
			                    old->pub, b.data, b.len, &mine[i])
			    == 0);
			km_buf_free(&b);
		}
		CU_ASSERT(
		    km_rsa_reshare_accept(nf.pub, mine, qlen, j, &nf.sh[j - 1])
		    == 0);
		if (j == 1 && km_rsa_pub_has_proofs(old->pub)) {
			/* a sub-share changed in transit fails Feldman's check
			 */
			km_rsa_subdeal *bad = NULL, *keep = mine[0];
			km_rsa_share *t = NULL;

			km_buf_init_secure(&b);
			CU_ASSERT_FATAL(
			    km_rsa_subdeal_encode(deals[0], j, &b) == 0);
			b.data[28 + 4 + 5] ^= 0x01;
			CU_ASSERT_FATAL(km_rsa_subdeal_decode(
			                    old->pub, b.data, b.len, &bad)
			    == 0);
			km_buf_free(&b);
			mine[0] = bad;
			CU_ASSERT(
			    km_rsa_reshare_accept(nf.pub, mine, qlen, j, &t)
			    == KM_ERR_VERIFY);
			CU_ASSERT(t == NULL);
			mine[0] = keep;
			km_rsa_subdeal_free(bad);
		}
		/* holder j's pieces do not make holder j+1's share */
		if (j < nn) {
			km_rsa_share *t = NULL;

			CU_ASSERT(km_rsa_reshare_accept(
			              nf.pub, mine, qlen, j + 1, &t)
			    != 0);
			CU_ASSERT(t == NULL);
		}
		for (i = 0; i < qlen; i++) {
			km_rsa_subdeal_free(mine[i]);
			mine[i] = NULL;
		}
	}
	nf.k = nk;
	nf.n = nn;
	nf.whole = old->whole;
	EVP_PKEY_up_ref(nf.whole);
	first_set(set, nk);
	check_sign_mechs(&nf, set, false);
	check_decrypt_mechs(&nf, set, false);
	for (i = 0; i < qlen; i++) {
		km_rsa_subdeal_free(deals[i]);
		km_rsa_subdeal_free(pubpart[i]);
	}
	fx_free(&nf);
}

static void
test_reshare_wire(void)
{
	static const unsigned q[] = { 5, 2, 4 };
	km_rsa_subdeal *sd = NULL;
	uint8_t junk[64];

	reshare_wire_one(&d2048_35, q, 3, 2, 4);
	reshare_wire_one(&i2048_35, q, 3, 3, 5);
	/* malformed dealings */
	memset(junk, 0, sizeof(junk));
	CU_ASSERT(km_rsa_subdeal_decode(d2048_35.pub, junk, sizeof(junk), &sd)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(sd == NULL);
}

/* ---- serialisation ---- */

static void
test_serialise_roundtrip(void)
{
	const fx *fs[] = { &d2048_35, &i2048_35 };
	unsigned i, j;

	for (i = 0; i < 2; i++) {
		const fx *f = fs[i];
		km_buf b, bs;
		fx g;
		BIGNUM *x = random_x(f);
		km_rsa_partial *p = NULL, *p2 = NULL, *pp[3];
		unsigned set[] = { 1, 2, 3 };
		uint32_t bad;
		BIGNUM *y = NULL;

		memset(&g, 0, sizeof(g));
		km_buf_init(&b);
		CU_ASSERT_FATAL(km_rsa_pub_encode(f->pub, &b) == 0);
		CU_ASSERT_FATAL(km_rsa_pub_decode(b.data, b.len, &g.pub) == 0);
		CU_ASSERT(BN_cmp(km_rsa_pub_modulus(g.pub),
		              km_rsa_pub_modulus(f->pub))
		    == 0);
		CU_ASSERT(km_rsa_pub_k(g.pub) == f->k
		    && km_rsa_pub_n(g.pub) == f->n);
		CU_ASSERT(km_rsa_pub_has_proofs(g.pub)
		    == km_rsa_pub_has_proofs(f->pub));
		km_buf_free(&b);
		for (j = 0; j < f->n; j++) {
			km_buf_init_secure(&bs);
			CU_ASSERT_FATAL(
			    km_rsa_share_encode(f->pub, f->sh[j], &bs) == 0);
			CU_ASSERT_FATAL(km_rsa_share_decode(
			                    g.pub, bs.data, bs.len, &g.sh[j])
			    == 0);
			CU_ASSERT(km_rsa_share_index(g.sh[j]) == j + 1);
			km_buf_free(&bs);
		}
		g.whole = f->whole;
		EVP_PKEY_up_ref(g.whole);
		g.k = f->k;
		g.n = f->n;
		check_sign_mechs(&g, set, false);
		/* partials round-trip and combine */
		CU_ASSERT_FATAL(x != NULL);
		for (j = 0; j < 3; j++) {
			CU_ASSERT_FATAL(
			    km_rsa_partial_new(g.pub, g.sh[j], x, true, &p)
			    == 0);
			km_buf_init(&b);
			CU_ASSERT(km_rsa_partial_encode(p, &b) == 0);
			CU_ASSERT_FATAL(
			    km_rsa_partial_decode(g.pub, b.data, b.len, &p2)
			    == 0);
			CU_ASSERT(km_rsa_partial_index(p2) == j + 1);
			CU_ASSERT(km_rsa_partial_has_proof(p2)
			    == km_rsa_pub_has_proofs(g.pub));
			if (km_rsa_pub_has_proofs(g.pub)) {
				CU_ASSERT(
				    km_rsa_partial_verify(g.pub, x, p2) == 0);
			}
			pp[j] = p2;
			p2 = NULL;
			km_rsa_partial_free(p);
			p = NULL;
			km_buf_free(&b);
		}
		CU_ASSERT(km_rsa_combine(g.pub, x, pp, 3, &y, &bad) == 0);
		BN_free(y);
		free_parts(pp, 3);
		BN_free(x);
		fx_free(&g);
	}
}

/* Every truncation and a sweep of single-byte corruptions. */
static void
fuzz_decoder(const uint8_t *data, size_t len, int which, const fx *f)
{
	uint8_t *c = OPENSSL_memdup(data, len);
	size_t i;
	int r;

	CU_ASSERT_FATAL(c != NULL);
	for (i = 0; i < len; i++) {
		km_rsa_pub *pub = NULL;
		km_rsa_share *sh = NULL;
		km_rsa_partial *p = NULL;

		switch (which) {
		case 0:
			r = km_rsa_pub_decode(data, i, &pub);
			break;
		case 1:
			r = km_rsa_share_decode(f->pub, data, i, &sh);
			break;
		default:
			r = km_rsa_partial_decode(f->pub, data, i, &p);
			break;
		}
		CU_ASSERT(r != 0);
		CU_ASSERT(pub == NULL && sh == NULL && p == NULL);
	}
	/* flip bytes in the headers and length fields (the first 48) */
	for (i = 0; i < len && i < 48; i++) {
		km_rsa_pub *pub = NULL;
		km_rsa_share *sh = NULL;
		km_rsa_partial *p = NULL;

		c[i] ^= 0x80;
		switch (which) {
		case 0:
			r = km_rsa_pub_decode(c, len, &pub);
			break;
		case 1:
			r = km_rsa_share_decode(f->pub, c, len, &sh);
			break;
		default:
			r = km_rsa_partial_decode(f->pub, c, len, &p);
			break;
		}
		/* either refused or, for a flip inside a value, decoded */
		if (r != 0) {
			CU_ASSERT(pub == NULL && sh == NULL && p == NULL);
		}
		km_rsa_pub_free(pub);
		km_rsa_share_free(sh);
		km_rsa_partial_free(p);
		c[i] ^= 0x80;
	}
	OPENSSL_free(c);
}

static void
put_pub_fields(km_buf *b, const BIGNUM *n, unsigned e, unsigned k, unsigned nn,
    unsigned scale, unsigned sbits, uint32_t version)
{
	BIGNUM *t = BN_new();

	km_buf_put_u32(b, 0x4b4d5250u);
	km_buf_put_u32(b, version);
	km_buf_put_bn(b, n);
	BN_set_word(t, e);
	km_buf_put_bn(b, t);
	km_buf_put_u32(b, k);
	km_buf_put_u32(b, nn);
	BN_set_word(t, scale);
	km_buf_put_bn(b, t);
	km_buf_put_u32(b, sbits);
	km_buf_put_u8(b, 0);
	BN_free(t);
}

static void
test_malformed(void)
{
	const fx *f = &d2048_35;
	const BIGNUM *n = km_rsa_pub_modulus(f->pub);
	km_buf b;
	km_rsa_pub *pub = NULL;
	km_rsa_share *sh = NULL;
	km_rsa_partial *p = NULL;
	BIGNUM *x = random_x(f);
	uint8_t junk[300];
	km_rsa_share *shs[MAXH] = { NULL };

	/* truncations and flips of each encoding */
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_rsa_pub_encode(f->pub, &b) == 0);
	fuzz_decoder(b.data, b.len, 0, f);
	/* a trailing byte */
	km_buf_put_u8(&b, 0);
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);

	km_buf_init_secure(&b);
	CU_ASSERT_FATAL(km_rsa_share_encode(f->pub, f->sh[1], &b) == 0);
	fuzz_decoder(b.data, b.len, 1, f);
	/* the share of another key */
	CU_ASSERT(km_rsa_share_decode(i2048_35.pub, b.data, b.len, &sh)
	    == KM_ERR_INVALID_ARG);
	/* index 0 and index 6 of a 3-of-5 */
	b.data[8 + 32 + 3] = 0;
	CU_ASSERT(
	    km_rsa_share_decode(f->pub, b.data, b.len, &sh) == KM_ERR_RANGE);
	b.data[8 + 32 + 3] = 6;
	CU_ASSERT(
	    km_rsa_share_decode(f->pub, b.data, b.len, &sh) == KM_ERR_RANGE);
	/* a wrong version */
	b.data[7] = 9;
	CU_ASSERT(km_rsa_share_decode(f->pub, b.data, b.len, &sh)
	    == KM_ERR_BAD_VERSION);
	CU_ASSERT(sh == NULL);
	km_buf_free(&b);

	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT_FATAL(
	    km_rsa_partial_new(f->pub, f->sh[0], x, true, &p) == 0);
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_rsa_partial_encode(p, &b) == 0);
	km_rsa_partial_free(p);
	p = NULL;
	fuzz_decoder(b.data, b.len, 2, f);
	km_buf_free(&b);
	/* x_i = N and x_i = 0 are out of range */
	{
		BIGNUM *z = BN_new();

		km_buf_init(&b);
		km_buf_put_u32(&b, 0x4b4d5258u);
		km_buf_put_u32(&b, 1);
		km_buf_put_u32(&b, 1);
		km_buf_put_bn(&b, n);
		km_buf_put_u8(&b, 0);
		CU_ASSERT(km_rsa_partial_decode(f->pub, b.data, b.len, &p)
		    == KM_ERR_RANGE);
		km_buf_free(&b);
		km_buf_init(&b);
		km_buf_put_u32(&b, 0x4b4d5258u);
		km_buf_put_u32(&b, 1);
		km_buf_put_u32(&b, 1);
		km_buf_put_bn(&b, z);
		km_buf_put_u8(&b, 0);
		CU_ASSERT(km_rsa_partial_decode(f->pub, b.data, b.len, &p)
		    == KM_ERR_RANGE);
		/* an index beyond n */
		km_buf_free(&b);
		km_buf_init(&b);
		km_buf_put_u32(&b, 0x4b4d5258u);
		km_buf_put_u32(&b, 1);
		km_buf_put_u32(&b, 7);
		km_buf_put_bn(&b, x);
		km_buf_put_u8(&b, 0);
		CU_ASSERT(km_rsa_partial_decode(f->pub, b.data, b.len, &p)
		    == KM_ERR_RANGE);
		CU_ASSERT(p == NULL);
		km_buf_free(&b);
		BN_free(z);
	}
	/* public key data with impossible fields */
	km_buf_init(&b);
	put_pub_fields(&b, n, 65537, 3, 5, 1, 2048, 1);
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == 0);
	km_rsa_pub_free(pub);
	pub = NULL;
	km_buf_reset(&b);
	put_pub_fields(&b, n, 65537, 6, 5, 1, 2048, 1); /* k > n */
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_RANGE);
	km_buf_reset(&b);
	put_pub_fields(&b, n, 65537, 3, 17, 1, 2048, 1); /* n > 16 */
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_RANGE);
	km_buf_reset(&b);
	put_pub_fields(&b, n, 3, 3, 5, 1, 2048, 1); /* e <= n */
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_RANGE);
	km_buf_reset(&b);
	put_pub_fields(&b, n, 65535, 3, 5, 1, 2048, 1); /* e not prime */
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_RANGE);
	km_buf_reset(&b);
	put_pub_fields(&b, n, 65537, 3, 5, 0, 2048, 1); /* scale 0 */
	CU_ASSERT(km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_RANGE);
	km_buf_reset(&b);
	put_pub_fields(&b, n, 65537, 3, 5, 1, 2048, 2); /* version 2 */
	CU_ASSERT(
	    km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_BAD_VERSION);
	CU_ASSERT(pub == NULL);
	km_buf_free(&b);
	/* a 1024-bit modulus is below the floor */
	{
		BIGNUM *small = BN_new();

		BN_rshift(small, n, 1024);
		BN_set_bit(small, 0);
		km_buf_init(&b);
		put_pub_fields(&b, small, 65537, 3, 5, 1, 2048, 1);
		CU_ASSERT(
		    km_rsa_pub_decode(b.data, b.len, &pub) == KM_ERR_RANGE);
		km_buf_free(&b);
		BN_free(small);
	}
	/* garbage everywhere */
	memset(junk, 0xff, sizeof(junk));
	CU_ASSERT(km_rsa_pub_decode(junk, sizeof(junk), &pub) != 0);
	CU_ASSERT(km_rsa_share_decode(f->pub, junk, sizeof(junk), &sh) != 0);
	CU_ASSERT(km_rsa_partial_decode(f->pub, junk, sizeof(junk), &p) != 0);
	CU_ASSERT(km_rsa_import(junk, sizeof(junk), 3, 5, &pub, shs)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(pub == NULL && sh == NULL && p == NULL);
	BN_free(x);
}

static void
test_bad_args(void)
{
	const fx *f = &d2048_35;
	km_rsa_share *sh[MAXH] = { NULL };
	km_rsa_pub *pub = NULL;
	km_rsa_partial *p = NULL;
	BIGNUM *x = BN_new(), *bp = NULL, *bq = NULL, *y = NULL;
	uint8_t buf[1024], dig[64];
	size_t len, dlen;
	km_rsa_mech mech
	    = { .pad = KM_RSA_PAD_PKCS1, .hash = KM_RSA_HASH_SHA256 };
	EVP_PKEY *ec = NULL;

	/* x out of range */
	BN_zero(x);
	CU_ASSERT(
	    km_rsa_partial_new(f->pub, f->sh[0], x, true, &p) == KM_ERR_RANGE);
	BN_copy(x, km_rsa_pub_modulus(f->pub));
	CU_ASSERT(
	    km_rsa_partial_new(f->pub, f->sh[0], x, true, &p) == KM_ERR_RANGE);
	CU_ASSERT(
	    km_rsa_combine(f->pub, x, NULL, 0, &y, NULL) == KM_ERR_RANGE);
	/* a share of another sharing (index 9 of 5-of-9) */
	BN_one(x);
	CU_ASSERT(km_rsa_partial_new(f->pub, d2048_59.sh[8], x, true, &p)
	    == KM_ERR_RANGE);
	CU_ASSERT(p == NULL);
	/* wrong digest length, unknown hash, PSS without a hash */
	CU_ASSERT(km_rsa_sign_prepare(f->pub, &mech, dig, 20, &y)
	    == KM_ERR_INVALID_ARG);
	mech.hash = 99;
	CU_ASSERT(km_rsa_sign_prepare(f->pub, &mech, dig, 32, &y)
	    == KM_ERR_INVALID_ARG);
	mech.pad = KM_RSA_PAD_PSS;
	mech.hash = KM_RSA_HASH_NONE;
	CU_ASSERT(km_rsa_sign_prepare(f->pub, &mech, dig, 32, &y)
	    == KM_ERR_INVALID_ARG);
	/* PSS salt too long for the modulus */
	mech.hash = KM_RSA_HASH_SHA512;
	mech.salt_len = 200;
	digest(KM_RSA_HASH_SHA512, msg, sizeof(msg), dig, &dlen);
	CU_ASSERT(km_rsa_sign_prepare(f->pub, &mech, dig, dlen, &y)
	    == KM_ERR_TOO_LARGE);
	/* a DigestInfo too long for v1.5 */
	mech.pad = KM_RSA_PAD_PKCS1;
	mech.hash = KM_RSA_HASH_NONE;
	memset(buf, 1, sizeof(buf));
	CU_ASSERT(km_rsa_sign_prepare(f->pub, &mech, buf, 250, &y)
	    == KM_ERR_TOO_LARGE);
	/* raw: a block not below N */
	mech.pad = KM_RSA_PAD_RAW;
	memset(buf, 0xff, 256);
	CU_ASSERT(
	    km_rsa_sign_prepare(f->pub, &mech, buf, 256, &y) == KM_ERR_RANGE);
	CU_ASSERT(km_rsa_sign_prepare(f->pub, &mech, buf, 257, &y)
	    == KM_ERR_INVALID_ARG);
	/* decrypt: wrong length, c >= N */
	CU_ASSERT(km_rsa_decrypt_prepare(f->pub, buf, 255, &y)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    km_rsa_decrypt_prepare(f->pub, buf, 256, &y) == KM_ERR_RANGE);
	CU_ASSERT(y == NULL);
	/* a too-small output buffer, then the length query */
	{
		static const unsigned set[] = { 1, 2, 3 };

		mech.pad = KM_RSA_PAD_PKCS1;
		mech.hash = KM_RSA_HASH_SHA256;
		digest(KM_RSA_HASH_SHA256, msg, sizeof(msg), dig, &dlen);
		len = 100;
		CU_ASSERT(threshold_sign(
		              f, set, 3, &mech, dig, dlen, buf, &len, false)
		    == KM_ERR_BUFFER_TOO_SMALL);
		CU_ASSERT(len == 256);
		len = 0;
		CU_ASSERT(km_rsa_sign_combine(f->pub, &mech, dig, dlen, x,
		              NULL, 0, NULL, &len, NULL)
		    == 0);
		CU_ASSERT(len == 256);
	}
	/* a v1.5 decryption of a block that is not type 2 padded */
	{
		static const unsigned set[] = { 3, 4, 5 };
		uint8_t blk[256], ct[256], out[256];
		size_t ctlen = sizeof(ct), outlen = sizeof(out);
		km_rsa_mech raw = { .pad = KM_RSA_PAD_RAW },
		            v15 = { .pad = KM_RSA_PAD_PKCS1 },
		            oaep
		    = { .pad = KM_RSA_PAD_OAEP, .hash = KM_RSA_HASH_SHA256 };

		RAND_bytes(blk, sizeof(blk));
		blk[0] = 0;
		blk[1] = 0x17;
		CU_ASSERT_FATAL(ossl_crypt(f->whole, &raw, true, blk,
		                    sizeof(blk), ct, &ctlen)
		    == 0);
		CU_ASSERT(
		    threshold_decrypt(f, set, 3, &v15, ct, ctlen, out, &outlen)
		    == KM_ERR_BAD_PADDING);
		outlen = sizeof(out);
		CU_ASSERT(threshold_decrypt(
		              f, set, 3, &oaep, ct, ctlen, out, &outlen)
		    == KM_ERR_BAD_PADDING);
		/* PSS is no decryption mechanism */
		mech.pad = KM_RSA_PAD_PSS;
		outlen = sizeof(out);
		CU_ASSERT(threshold_decrypt(
		              f, set, 3, &mech, ct, ctlen, out, &outlen)
		    == KM_ERR_NOT_SUPPORTED);
	}
	/* dealer arguments */
	CU_ASSERT_FATAL(load_primes(2048, &bp, &bq) == 0);
	CU_ASSERT(km_rsa_deal_from_primes(bp, bq, NULL, 4, 3, &pub, sh)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_rsa_deal_from_primes(bp, bq, NULL, 3, 17, &pub, sh)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_rsa_deal_from_primes(bp, bp, NULL, 2, 3, &pub, sh)
	    == KM_ERR_INVALID_ARG);
	/* p + 2 is no safe prime (not even a prime) */
	BN_add_word(bq, 2);
	CU_ASSERT(km_rsa_deal_from_primes(bp, bq, NULL, 2, 3, &pub, sh)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_rsa_keygen(1024, 2, 3, NULL, NULL, &pub, sh)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(pub == NULL && sh[0] == NULL);
	/* an EC key cannot be imported as RSA */
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	CU_ASSERT_FATAL(ec != NULL);
	CU_ASSERT(
	    km_rsa_import_pkey(ec, 2, 3, &pub, sh) == KM_ERR_NOT_SUPPORTED);
	EVP_PKEY_free(ec);
	BN_free(bp);
	BN_free(bq);
	BN_free(x);
}

/* ---- live key generation ---- */

typedef struct prog {
	int calls[2];
	int stop_after;
} prog;

static int
on_progress(void *arg, int which, int stage, int count)
{
	prog *pr = arg;

	pr->calls[which & 1]++;
	return pr->stop_after > 0
	    && pr->calls[0] + pr->calls[1] >= pr->stop_after;
}

static void
test_keygen_live(void)
{
	km_rsa_share *sh[MAXH] = { NULL };
	km_rsa_pub *pub = NULL;
	prog pr = { { 0, 0 }, 0 };
	fx f;
	unsigned set[] = { 1, 3 };

	CU_ASSERT_FATAL(
	    km_rsa_keygen(2048, 2, 3, on_progress, &pr, &pub, sh) == 0);
	CU_ASSERT(pr.calls[0] > 0 && pr.calls[1] > 0);
	CU_ASSERT(km_rsa_pub_bits(pub) == 2048);
	CU_ASSERT(km_rsa_pub_has_proofs(pub));
	memset(&f, 0, sizeof(f));
	f.pub = pub;
	memcpy(f.sh, sh, sizeof(sh));
	f.whole = EVP_PKEY_dup(km_rsa_pub_pkey(pub));
	f.k = 2;
	f.n = 3;
	{
		uint8_t dig[32], sig[256];
		size_t dlen, siglen = sizeof(sig);
		km_rsa_mech mech = { .pad = KM_RSA_PAD_PSS,
			.hash = KM_RSA_HASH_SHA256,
			.salt_len = KM_RSA_PSS_SALT_HASHLEN };

		digest(KM_RSA_HASH_SHA256, msg, sizeof(msg), dig, &dlen);
		CU_ASSERT(threshold_sign(
		              &f, set, 2, &mech, dig, dlen, sig, &siglen, true)
		    == 0);
		CU_ASSERT(ossl_verify(km_rsa_pub_pkey(pub), &mech, msg,
		    sizeof(msg), sig, siglen));
	}
	fx_free(&f);
	/* cancelled from the progress callback */
	pr.calls[0] = pr.calls[1] = 0;
	pr.stop_after = 5;
	pub = NULL;
	CU_ASSERT(km_rsa_keygen(2048, 2, 3, on_progress, &pr, &pub, sh)
	    == KM_ERR_CLOSED);
	CU_ASSERT(pub == NULL);
}

static void
test_secmem_returned(void)
{
	size_t before = km_secmem_used();
	fx f;
	unsigned set[] = { 2, 4 };

	CU_ASSERT_FATAL(fx_deal(&f, 2048, 2, 5) == 0);
	CU_ASSERT(km_secmem_used() > before);
	check_sign_mechs(&f, set, false);
	fx_free(&f);
	/* every share, nonce and temporary went back (wiped) */
	CU_ASSERT(km_secmem_used() == before);
}

/* ---- Lehmer inversion (combine's one inversion) ---- */

static void
test_lehmer_inverse(void)
{
	const BIGNUM *mods[] = { km_rsa_pub_modulus(d2048_35.pub),
		km_rsa_pub_modulus(d2048_23.pub),
		km_rsa_pub_modulus(i2048_35.pub) };
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *t = BN_new(), *a = BN_new(), *b = BN_new(), *g = BN_new();
	int i, m, units = 0;

	CU_ASSERT_FATAL(ctx != NULL && t != NULL && a != NULL && b != NULL);
	for (m = 0; m < 3; m++) {
		for (i = 0; i < 200; i++) {
			/* random sizes, so short and long quotients occur */
			BN_rand(t, 1 + (i * 37) % BN_num_bits(mods[m]),
			    BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
			if (BN_is_zero(t)) {
				continue;
			}
			CU_ASSERT(
			    km_rsa_lehmer_inverse(a, t, mods[m], ctx) == 0);
			CU_ASSERT(BN_mod_inverse(b, t, mods[m], ctx) != NULL);
			CU_ASSERT(BN_cmp(a, b) == 0);
			CU_ASSERT(km_rsa_mod_inverse(a, t, mods[m], ctx) == 0);
			CU_ASSERT(BN_cmp(a, b) == 0);
			units++;
		}
	}
	CU_ASSERT(units > 500);
	/* a non-unit: a multiple of a factor has no inverse */
	BN_set_word(t, 6);
	BN_set_word(g, 35);
	CU_ASSERT(km_rsa_lehmer_inverse(a, t, g, ctx) == 0);
	CU_ASSERT(BN_get_word(a) == 6);
	BN_set_word(t, 14);
	CU_ASSERT(km_rsa_lehmer_inverse(a, t, g, ctx) == KM_ERR_VERIFY);
	CU_ASSERT(km_rsa_mod_inverse(a, t, g, ctx) == KM_ERR_VERIFY);
	BN_free(t);
	BN_free(a);
	BN_free(b);
	BN_free(g);
	BN_CTX_free(ctx);
}

/* ---- suites ---- */

static int
init_fixtures(void)
{
	if (fx_deal(&d2048_23, 2048, 2, 3) != 0
	    || fx_deal(&d2048_35, 2048, 3, 5) != 0
	    || fx_deal(&d2048_59, 2048, 5, 9) != 0
	    || fx_import(&i2048_35, "import-2048.pem", 3, 5) != 0) {
		return 1;
	}
	return 0;
}

static int
cleanup_fixtures(void)
{
	fx_free(&d2048_23);
	fx_free(&d2048_35);
	fx_free(&d2048_59);
	fx_free(&i2048_35);
	return 0;
}

static int
init_big(void)
{
	if (fx_deal(&d3072_35, 3072, 3, 5) != 0
	    || fx_deal(&d4096_35, 4096, 3, 5) != 0
	    || fx_import(&i3072_35, "import-3072.pem", 3, 5) != 0
	    || fx_import(&i4096_35, "import-4096.pem", 3, 5) != 0) {
		return 1;
	}
	return 0;
}

static int
cleanup_big(void)
{
	fx_free(&d3072_35);
	fx_free(&d4096_35);
	fx_free(&i3072_35);
	fx_free(&i4096_35);
	return 0;
}

static const kmt_test rsa2048_tests[] = {
	{ "kat_pkcs1", test_kat_2048 },
	{ "pkcs1_digestinfo", test_pkcs1_digestinfo },
	{ "subsets_dealt", test_subsets_2048_dealt },
	{ "subsets_imported", test_subsets_2048_imported },
	{ "k_of_n", test_k_of_n_2048 },
	{ "tamper_proof", test_tamper_proof },
	{ "tamper_subset", test_tamper_subset },
	{ "too_few", test_too_few },
	{ "threads", test_threads },
	{ "reshare_dealt", test_reshare_dealt },
	{ "reshare_imported", test_reshare_imported },
	{ "reshare_bad_dealing", test_reshare_bad_dealing },
	{ "reshare_growth", test_reshare_growth },
	{ "reshare_wire", test_reshare_wire },
	{ "serialise_roundtrip", test_serialise_roundtrip },
	{ "malformed", test_malformed },
	{ "bad_args", test_bad_args },
	{ "lehmer_inverse", test_lehmer_inverse },
	KMT_END,
};

static const kmt_test big_tests[] = {
	{ "kat_pkcs1", test_kat_3072_4096 },
	{ "sign_decrypt", test_sizes_3072_4096 },
	KMT_END,
};

static const kmt_test live_tests[] = {
	{ "secmem_returned", test_secmem_returned },
	{ "keygen_2048", test_keygen_live },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "rsa2048", init_fixtures, cleanup_fixtures, rsa2048_tests },
	{ "rsa3072_4096", init_big, cleanup_big, big_tests },
	{ "rsa_live", NULL, NULL, live_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	/* shares and nonces in the locked arena, as in the daemon */
	(void)km_secmem_init(KM_SECMEM_DAEMON_SIZE);
	return kmt_main(argc, argv, suites);
}
