#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "pki/seal.h"
#include "util/err.h"
#include "util/secmem.h"

#define RET_OSSL_OK 1
#define KM_SEAL_VERSION 1
#define KM_SEAL_PUB 65
#define KM_SEAL_TAG 16
#define KM_SEAL_INFO "keymesh seal v1"

static int
km_seal_pub_octets(EVP_PKEY *k, uint8_t out[KM_SEAL_PUB])
{
	size_t n = 0;

	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, out,
		KM_SEAL_PUB, &n) != RET_OSSL_OK ||
	    n != KM_SEAL_PUB || out[0] != 0x04) {
		return KM_ERR_INVALID_ARG;
	}
	return 0;
}

/* K = HKDF(salt = epub || rpub, ikm = ECDH(priv, peer)). */
static int
km_seal_key(EVP_PKEY *priv, EVP_PKEY *peer, const uint8_t epub[KM_SEAL_PUB],
    const uint8_t rpub[KM_SEAL_PUB], uint8_t key[32])
{
	EVP_PKEY_CTX *dctx = NULL;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	uint8_t z[66], salt[2 * KM_SEAL_PUB];
	size_t zlen = sizeof(z);
	OSSL_PARAM params[5], *p = params;
	int r = KM_ERR_CRYPTO;

	if ((dctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL ||
	    EVP_PKEY_derive_init(dctx) != RET_OSSL_OK ||
	    EVP_PKEY_derive_set_peer(dctx, peer) != RET_OSSL_OK ||
	    EVP_PKEY_derive(dctx, z, &zlen) != RET_OSSL_OK) {
		goto out;
	}
	memcpy(salt, epub, KM_SEAL_PUB);
	memcpy(salt + KM_SEAL_PUB, rpub, KM_SEAL_PUB);
	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		goto out;
	}
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, zlen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt,
	    sizeof(salt));
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (char *)KM_SEAL_INFO, strlen(KM_SEAL_INFO));
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, key, 32, params) != RET_OSSL_OK) {
		goto out;
	}
	r = 0;
out:
	OPENSSL_cleanse(z, sizeof(z));
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	EVP_PKEY_CTX_free(dctx);
	ERR_clear_error();
	return r;
}

static EVP_PKEY *
km_seal_pub_from_octets(const uint8_t pub[KM_SEAL_PUB])
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *k = NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	    (char *)"P-256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)pub, KM_SEAL_PUB);
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL) {
		return NULL;
	}
	if (EVP_PKEY_fromdata_init(ctx) != RET_OSSL_OK ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) !=
		RET_OSSL_OK) {
		k = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static int
km_seal_gcm(bool enc, const uint8_t key[32], const void *aad, size_t aadlen,
    const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[KM_SEAL_TAG])
{
	static const uint8_t iv[12] = { 0 };
	EVP_CIPHER_CTX *c;
	int n = 0, r = KM_ERR_CRYPTO;

	if (len > INT32_MAX || aadlen > INT32_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	if ((c = EVP_CIPHER_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv,
		enc ? 1 : 0) != RET_OSSL_OK ||
	    (aadlen > 0 &&
		EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) !=
		    RET_OSSL_OK) ||
	    (len > 0 &&
		EVP_CipherUpdate(c, out, &n, in, (int)len) != RET_OSSL_OK)) {
		goto out;
	}
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, KM_SEAL_TAG,
			tag) != RET_OSSL_OK) {
		goto out;
	}
	if (EVP_CipherFinal_ex(c, out + n, &n) != RET_OSSL_OK) {
		r = enc ? KM_ERR_CRYPTO : KM_ERR_VERIFY;
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, KM_SEAL_TAG,
		       tag) != RET_OSSL_OK) {
		goto out;
	}
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	ERR_clear_error();
	return r;
}

int
km_seal(EVP_PKEY *recipient, const void *aad, size_t aadlen,
    const uint8_t *msg, size_t len, km_buf *out)
{
	uint8_t epub[KM_SEAL_PUB], rpub[KM_SEAL_PUB], key[32],
	    tag[KM_SEAL_TAG];
	EVP_PKEY *eph = NULL;
	size_t start;
	int r;

	if ((r = km_seal_pub_octets(recipient, rpub)) != 0) {
		return r;
	}
	if ((eph = EVP_EC_gen("P-256")) == NULL) {
		return KM_ERR_CRYPTO;
	}
	if ((r = km_seal_pub_octets(eph, epub)) != 0 ||
	    (r = km_seal_key(eph, recipient, epub, rpub, key)) != 0) {
		goto out;
	}
	if ((r = km_buf_put_u8(out, KM_SEAL_VERSION)) != 0 ||
	    (r = km_buf_put_raw(out, epub, sizeof(epub))) != 0) {
		goto out;
	}
	start = out->len;
	/* reserve room for the ciphertext, then encrypt in place */
	if ((r = km_buf_put_raw(out, msg, len)) != 0) {
		goto out;
	}
	if ((r = km_seal_gcm(true, key, aad, aadlen, msg, len,
		 out->data + start, tag)) != 0 ||
	    (r = km_buf_put_raw(out, tag, sizeof(tag))) != 0) {
		goto out;
	}
	r = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	EVP_PKEY_free(eph);
	return r;
}

int
km_unseal(EVP_PKEY *self, const void *aad, size_t aadlen,
    const uint8_t *box, size_t len, km_buf *out)
{
	uint8_t rpub[KM_SEAL_PUB], key[32], tag[KM_SEAL_TAG];
	EVP_PKEY *eph = NULL;
	size_t clen, start;
	int r;

	if (len < KM_SEAL_OVERHEAD) {
		return KM_ERR_BAD_FORMAT;
	}
	if (box[0] != KM_SEAL_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	clen = len - KM_SEAL_OVERHEAD;
	if ((r = km_seal_pub_octets(self, rpub)) != 0) {
		return r;
	}
	if ((eph = km_seal_pub_from_octets(box + 1)) == NULL) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((r = km_seal_key(self, eph, box + 1, rpub, key)) != 0) {
		goto out;
	}
	memcpy(tag, box + len - KM_SEAL_TAG, KM_SEAL_TAG);
	start = out->len;
	if ((r = km_buf_put_raw(out, box + 1 + KM_SEAL_PUB, clen)) != 0) {
		goto out;
	}
	if ((r = km_seal_gcm(false, key, aad, aadlen, box + 1 + KM_SEAL_PUB,
		 clen, out->data + start, tag)) != 0) {
		km_secret_wipe(out->data + start, clen);
		out->len = start;
		goto out;
	}
	r = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	EVP_PKEY_free(eph);
	return r;
}
