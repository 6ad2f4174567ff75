/*
 * Threshold RSA encodings: PKCS#1 v2.2 (RFC 8017) paddings around the
 * Shoup combination (V. Shoup, "Practical Threshold Signatures",
 * EUROCRYPT 2000).
 *
 * Signing: km_rsa_sign_prepare() pads (EMSA-PKCS1-v1_5 over a DigestInfo,
 * RFC 8017 sec. 9.2, or EMSA-PSS, sec. 9.1, with OpenSSL's own padding
 * functions), the holders exponentiate, and km_rsa_sign_combine() combines
 * and verifies the signature through EVP with the public key before it is
 * handed out.  Decryption: the representative is the ciphertext; after
 * combining and the check y^e = c, OpenSSL's own checks remove the PKCS#1
 * v1.5 (type 2) or OAEP padding.
 *
 * The padding functions used here are deprecated in OpenSSL 3.0 but are
 * the only way to pad without a private key object; this is the one file
 * that uses them.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "config.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "crypto/rsa_int.h"
#include "util/err.h"
#include "util/secmem.h"

/* DER prefixes of DigestInfo (RFC 8017 sec. 9.2, note 1). */
static const uint8_t km_di_sha1[] = { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b,
	0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14 };
static const uint8_t km_di_sha224[]
    = { 0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
	      0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c };
static const uint8_t km_di_sha256[]
    = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
	      0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
static const uint8_t km_di_sha384[]
    = { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
	      0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 };
static const uint8_t km_di_sha512[]
    = { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
	      0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 };

const EVP_MD *
km_rsa_hash_md(int hash)
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

static const uint8_t *
km_rsa_di_prefix(int hash, size_t *len)
{
	switch (hash) {
	case KM_RSA_HASH_SHA1:
		*len = sizeof(km_di_sha1);
		return km_di_sha1;
	case KM_RSA_HASH_SHA224:
		*len = sizeof(km_di_sha224);
		return km_di_sha224;
	case KM_RSA_HASH_SHA256:
		*len = sizeof(km_di_sha256);
		return km_di_sha256;
	case KM_RSA_HASH_SHA384:
		*len = sizeof(km_di_sha384);
		return km_di_sha384;
	case KM_RSA_HASH_SHA512:
		*len = sizeof(km_di_sha512);
		return km_di_sha512;
	default:
		*len = 0;
		return NULL;
	}
}

static const EVP_MD *
km_rsa_mgf1(const km_rsa_mech *mech)
{
	return km_rsa_hash_md(mech->mgf1_hash != KM_RSA_HASH_NONE ? mech->mgf1_hash
	                                                     : mech->hash);
}

/* A public-only RSA object for OpenSSL's padding functions. */
static RSA *
km_rsa_pub_rsa(const km_rsa_pub *pub)
{
	RSA *rsa;
	BIGNUM *n = NULL, *e = NULL;

	if ((rsa = RSA_new()) == NULL) {
		return NULL;
	}
	if ((n = BN_dup(pub->n_mod)) == NULL || (e = BN_dup(pub->e)) == NULL
	    || !RSA_set0_key(rsa, n, e, NULL)) {
		BN_free(n);
		BN_free(e);
		RSA_free(rsa);
		return NULL;
	}
	return rsa;
}

int
km_rsa_sign_prepare(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const uint8_t *in, size_t inlen, BIGNUM **xp)
{
	uint8_t *em = NULL, *di = NULL;
	const uint8_t *prefix;
	const EVP_MD *md = NULL, *mgf1;
	size_t plen = 0, dilen = 0, emlen;
	BIGNUM *x = NULL;
	RSA *rsa = NULL;
	int r = KM_ERR_INVALID_ARG;

	if (pub == NULL || mech == NULL || in == NULL || xp == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	emlen = (size_t)pub->bytes;
	if (mech->hash != KM_RSA_HASH_NONE
	    && ((md = km_rsa_hash_md(mech->hash)) == NULL
	        || inlen != (size_t)EVP_MD_get_size(md))) {
		return KM_ERR_INVALID_ARG;
	}
	if ((em = OPENSSL_zalloc(emlen)) == NULL) {
		return KM_ERR_ALLOC;
	}
	switch (mech->pad) {
	case KM_RSA_PAD_RAW:
		/* X.509: the block itself, left-padded to |N| */
		if (inlen == 0 || inlen > emlen) {
			goto out;
		}
		memcpy(em + emlen - inlen, in, inlen);
		break;
	case KM_RSA_PAD_PKCS1:
		if (md != NULL) {
			prefix = km_rsa_di_prefix(mech->hash, &plen);
			dilen = plen + inlen;
			if ((di = OPENSSL_malloc(dilen)) == NULL) {
				r = KM_ERR_ALLOC;
				goto out;
			}
			memcpy(di, prefix, plen);
			memcpy(di + plen, in, inlen);
		} else {
			if ((di = OPENSSL_memdup(in, inlen)) == NULL) {
				r = KM_ERR_ALLOC;
				goto out;
			}
			dilen = inlen;
		}
		/* EMSA-PKCS1-v1_5: 00 01 FF..FF 00 || DigestInfo */
		if (dilen + 11 > emlen
		    || RSA_padding_add_PKCS1_type_1(
		           em, (int)emlen, di, (int)dilen)
		        != 1) {
			ERR_clear_error();
			r = KM_ERR_TOO_LARGE;
			goto out;
		}
		break;
	case KM_RSA_PAD_PSS:
		if (md == NULL || (mgf1 = km_rsa_mgf1(mech)) == NULL
		    || mech->salt_len < KM_RSA_PSS_SALT_HASHLEN) {
			goto out;
		}
		if ((rsa = km_rsa_pub_rsa(pub)) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		/* -1 is OpenSSL's RSA_PSS_SALTLEN_DIGEST too */
		if (RSA_padding_add_PKCS1_PSS_mgf1(rsa, em, in, md, mgf1,
		        mech->salt_len == KM_RSA_PSS_SALT_HASHLEN
		            ? RSA_PSS_SALTLEN_DIGEST
		            : mech->salt_len)
		    != 1) {
			ERR_clear_error();
			r = KM_ERR_TOO_LARGE;
			goto out;
		}
		break;
	default:
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	if ((x = BN_bin2bn(em, (int)emlen, NULL)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (BN_is_zero(x) || BN_cmp(x, pub->n_mod) >= 0) {
		r = KM_ERR_RANGE;
		goto out;
	}
	*xp = x;
	x = NULL;
	r = 0;
out:
	BN_free(x);
	RSA_free(rsa);
	OPENSSL_free(di);
	OPENSSL_free(em);
	return r;
}

/* The final check through EVP with the plain public key. */
static int
km_rsa_evp_verify(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const uint8_t *in, size_t inlen, const BIGNUM *x, const uint8_t *sig,
    size_t siglen)
{
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = km_rsa_hash_md(mech->hash);
	uint8_t *xb = NULL;
	int r = KM_ERR_CRYPTO, ok;

	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub->pkey, NULL)) == NULL
	    || EVP_PKEY_verify_init(pctx) != 1) {
		goto out;
	}
	switch (mech->pad) {
	case KM_RSA_PAD_RAW:
		if ((xb = OPENSSL_malloc(siglen)) == NULL
		    || BN_bn2binpad(x, xb, (int)siglen) != (int)siglen) {
			goto out;
		}
		in = xb;
		inlen = siglen;
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_NO_PADDING) != 1) {
			goto out;
		}
		break;
	case KM_RSA_PAD_PKCS1:
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1
		    || (md != NULL
		        && EVP_PKEY_CTX_set_signature_md(pctx, md) != 1)) {
			goto out;
		}
		break;
	case KM_RSA_PAD_PSS:
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
		        != 1
		    || EVP_PKEY_CTX_set_signature_md(pctx, md) != 1
		    || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, km_rsa_mgf1(mech))
		        != 1
		    || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
		           mech->salt_len == KM_RSA_PSS_SALT_HASHLEN
		               ? RSA_PSS_SALTLEN_DIGEST
		               : mech->salt_len)
		        != 1) {
			goto out;
		}
		break;
	default:
		r = KM_ERR_NOT_SUPPORTED;
		goto out;
	}
	ok = EVP_PKEY_verify(pctx, sig, siglen, in, inlen);
	r = ok == 1 ? 0 : KM_ERR_VERIFY;
out:
	ERR_clear_error();
	OPENSSL_free(xb);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

int
km_rsa_sign_combine(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const uint8_t *in, size_t inlen, const BIGNUM *x,
    km_rsa_partial *const *parts, size_t count, uint8_t *sig, size_t *siglen,
    uint32_t *bad)
{
	BIGNUM *y = NULL;
	size_t need;
	int r;

	if (bad != NULL) {
		*bad = 0;
	}
	if (pub == NULL || mech == NULL || in == NULL || x == NULL
	    || siglen == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	need = (size_t)pub->bytes;
	if (sig == NULL) {
		*siglen = need;
		return 0;
	}
	if (*siglen < need) {
		*siglen = need;
		return KM_ERR_BUFFER_TOO_SMALL;
	}
	if ((r = km_rsa_combine(pub, x, parts, count, &y, bad)) != 0) {
		return r;
	}
	if (BN_bn2binpad(y, sig, (int)need) != (int)need) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	/* never hand out a signature the public key does not accept */
	if ((r = km_rsa_evp_verify(pub, mech, in, inlen, x, sig, need)) != 0) {
		OPENSSL_cleanse(sig, need);
		goto out;
	}
	*siglen = need;
	r = 0;
out:
	BN_free(y);
	return r;
}

int
km_rsa_decrypt_prepare(
    const km_rsa_pub *pub, const uint8_t *c, size_t ctlen, BIGNUM **xp)
{
	BIGNUM *x;

	if (pub == NULL || c == NULL || xp == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	/* RFC 8017 sec. 7.1.2 / 7.2.2: the ciphertext is exactly |N| bytes */
	if (ctlen != (size_t)pub->bytes) {
		return KM_ERR_INVALID_ARG;
	}
	if ((x = BN_bin2bn(c, (int)ctlen, NULL)) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (BN_is_zero(x) || BN_cmp(x, pub->n_mod) >= 0) {
		BN_free(x);
		return KM_ERR_RANGE;
	}
	*xp = x;
	return 0;
}

int
km_rsa_decrypt_combine(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const BIGNUM *x, km_rsa_partial *const *parts, size_t count, uint8_t *out,
    size_t *outlen, uint32_t *bad)
{
	BIGNUM *y = NULL;
	uint8_t *em = NULL, *pt = NULL;
	const EVP_MD *md = NULL, *mgf1 = NULL;
	size_t emlen;
	int r, n = -1;

	if (bad != NULL) {
		*bad = 0;
	}
	if (pub == NULL || mech == NULL || x == NULL || outlen == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	emlen = (size_t)pub->bytes;
	if (out == NULL) {
		/* an upper bound, as PKCS#11 length queries allow */
		*outlen = emlen;
		return 0;
	}
	if (mech->pad == KM_RSA_PAD_OAEP) {
		if ((md = km_rsa_hash_md(mech->hash)) == NULL
		    || (mgf1 = km_rsa_mgf1(mech)) == NULL
		    || mech->label_len > INT32_MAX
		    || (mech->label == NULL && mech->label_len != 0)) {
			return KM_ERR_INVALID_ARG;
		}
	} else if (mech->pad != KM_RSA_PAD_RAW
	    && mech->pad != KM_RSA_PAD_PKCS1) {
		return KM_ERR_NOT_SUPPORTED;
	}
	/* km_rsa_combine checks y^e = c before any padding is looked at */
	if ((r = km_rsa_combine(pub, x, parts, count, &y, bad)) != 0) {
		return r;
	}
	if ((em = km_secure_alloc(emlen)) == NULL
	    || (pt = km_secure_alloc(emlen)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (BN_bn2binpad(y, em, (int)emlen) != (int)emlen) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	switch (mech->pad) {
	case KM_RSA_PAD_RAW:
		memcpy(pt, em, emlen);
		n = (int)emlen;
		break;
	case KM_RSA_PAD_PKCS1:
		n = RSA_padding_check_PKCS1_type_2(
		    pt, (int)emlen, em, (int)emlen, (int)emlen);
		break;
	default:
		n = RSA_padding_check_PKCS1_OAEP_mgf1(pt, (int)emlen, em,
		    (int)emlen, (int)emlen, mech->label, (int)mech->label_len,
		    md, mgf1);
		break;
	}
	ERR_clear_error();
	if (n < 0) {
		r = KM_ERR_BAD_PADDING;
		goto out;
	}
	if ((size_t)n > *outlen) {
		*outlen = (size_t)n;
		r = KM_ERR_BUFFER_TOO_SMALL;
		goto out;
	}
	memcpy(out, pt, (size_t)n);
	*outlen = (size_t)n;
	r = 0;
out:
	BN_clear_free(y);
	km_secret_free(em, emlen);
	km_secret_free(pt, emlen);
	return r;
}

/*
 * The public key as an EVP_PKEY the old way.  Used only when the provider
 * way fails: in a process where an ENGINE supplies the RSA methods (the
 * OpenSSL pkcs11 engine loading keymesh's own module, for one),
 * EVP_PKEY_CTX_new_from_name("RSA") gives a legacy context that cannot
 * import from parameters.
 */
int
km_rsa_make_pkey_legacy(const BIGNUM *n, const BIGNUM *e, EVP_PKEY **out)
{
	RSA *rsa = NULL;
	BIGNUM *n2 = NULL, *e2 = NULL;
	EVP_PKEY *pk = NULL;

	if ((rsa = RSA_new()) == NULL || (n2 = BN_dup(n)) == NULL
	    || (e2 = BN_dup(e)) == NULL) {
		goto fail;
	}
	if (RSA_set0_key(rsa, n2, e2, NULL) != 1) {
		goto fail;
	}
	n2 = e2 = NULL;
	if ((pk = EVP_PKEY_new()) == NULL || EVP_PKEY_assign_RSA(pk, rsa) != 1) {
		goto fail;
	}
	*out = pk;
	return 0;
fail:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	RSA_free(rsa);
	BN_free(n2);
	BN_free(e2);
	return KM_ERR_CRYPTO;
}
