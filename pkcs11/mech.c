/*
 * Mechanisms.  Private-key operations (sign, decrypt, derive) go to the
 * mesh through quorum.c; public-key operations (verify, encrypt), digests
 * and random numbers run here with OpenSSL.
 *
 * Padding follows PKCS#1 v2.2 (RFC 8017): the module builds the
 * representative, the holders each re-check it (daemon/partial.c) and
 * the combined result is verified before it is returned.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "mesh/admin.h"
#include "mesh/ops.h"
#include "pkcs11/p11.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

const uint8_t *km_p11_point_octets(
    const uint8_t *in, size_t len, size_t plen, size_t *outlen);

#define KM_P11_RSA_SIGN (CKF_HW | CKF_SIGN | CKF_VERIFY)
#define KM_P11_RSA_ALL                                                        \
	(CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT)
#define KM_P11_EC_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

static const struct km_p11_mech {
	CK_MECHANISM_TYPE type;
	CK_ULONG min, max;
	CK_FLAGS flags;
} km_p11_mechs[] = {
	{ CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096,
	    CKF_HW | CKF_GENERATE_KEY_PAIR },
	{ CKM_RSA_PKCS, 2048, 4096, KM_P11_RSA_ALL },
	{ CKM_RSA_X_509, 2048, 4096, KM_P11_RSA_ALL },
	{ CKM_RSA_PKCS_OAEP, 2048, 4096, CKF_HW | CKF_ENCRYPT | CKF_DECRYPT },
	{ CKM_RSA_PKCS_PSS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA1_RSA_PKCS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA224_RSA_PKCS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA256_RSA_PKCS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA384_RSA_PKCS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA512_RSA_PKCS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA1_RSA_PKCS_PSS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA224_RSA_PKCS_PSS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA256_RSA_PKCS_PSS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA384_RSA_PKCS_PSS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_SHA512_RSA_PKCS_PSS, 2048, 4096, KM_P11_RSA_SIGN },
	{ CKM_EC_KEY_PAIR_GEN, 256, 384,
	    CKF_HW | CKF_GENERATE_KEY_PAIR | KM_P11_EC_FLAGS },
	{ CKM_ECDH1_DERIVE, 256, 384, CKF_HW | CKF_DERIVE | KM_P11_EC_FLAGS },
	{ CKM_SHA_1, 0, 0, CKF_DIGEST },
	{ CKM_SHA224, 0, 0, CKF_DIGEST },
	{ CKM_SHA256, 0, 0, CKF_DIGEST },
	{ CKM_SHA384, 0, 0, CKF_DIGEST },
	{ CKM_SHA512, 0, 0, CKF_DIGEST },
};
#define KM_P11_NMECHS (sizeof(km_p11_mechs) / sizeof(km_p11_mechs[0]))

static const struct km_p11_mech *
km_p11_mech_find(CK_MECHANISM_TYPE t)
{
	size_t i;

	for (i = 0; i < KM_P11_NMECHS; i++) {
		if (km_p11_mechs[i].type == t) {
			return &km_p11_mechs[i];
		}
	}
	return NULL;
}

CK_RV
km_p11_get_mechanism_list(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	size_t i;

	return_val_if_fail(count != NULL, CKR_ARGUMENTS_BAD);
	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	if (list == NULL) {
		*count = KM_P11_NMECHS;
		return CKR_OK;
	}
	if (*count < KM_P11_NMECHS) {
		*count = KM_P11_NMECHS;
		return CKR_BUFFER_TOO_SMALL;
	}
	for (i = 0; i < KM_P11_NMECHS; i++) {
		list[i] = km_p11_mechs[i].type;
	}
	*count = KM_P11_NMECHS;
	return CKR_OK;
}

CK_RV
km_p11_get_mechanism_info(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	const struct km_p11_mech *m;

	return_val_if_fail(info != NULL, CKR_ARGUMENTS_BAD);
	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	if ((m = km_p11_mech_find(type)) == NULL) {
		return CKR_MECHANISM_INVALID;
	}
	info->ulMinKeySize = m->min;
	info->ulMaxKeySize = m->max;
	info->flags = m->flags;
	return CKR_OK;
}

/* ---- helpers ---- */

void
km_p11_op_reset(km_p11_op *op)
{
	if (op->key != NULL) {
		km_p11_key_unref(op->key);
	}
	EVP_PKEY_free(op->pkey);
	EVP_MD_CTX_free(op->md);
	km_buf_free(&op->data);
	free(op->label);
	free(op->found);
	memset(op, 0, sizeof(*op));
	km_buf_init(&op->data);
}

static void
km_p11_op_end(km_p11_session *s)
{
	km_p11_op_reset(&s->op);
	s->active = KM_P11_OP_NONE;
}

static int
km_p11_hash_of_ckm(CK_MECHANISM_TYPE t)
{
	switch (t) {
	case CKM_SHA_1:
	case CKM_SHA1_RSA_PKCS:
	case CKM_SHA1_RSA_PKCS_PSS:
	case CKG_MGF1_SHA1:
		return KM_RSA_HASH_SHA1;
	case CKM_SHA224:
	case CKM_SHA224_RSA_PKCS:
	case CKM_SHA224_RSA_PKCS_PSS:
	case CKG_MGF1_SHA224:
		return KM_RSA_HASH_SHA224;
	case CKM_SHA256:
	case CKM_SHA256_RSA_PKCS:
	case CKM_SHA256_RSA_PKCS_PSS:
	case CKG_MGF1_SHA256:
		return KM_RSA_HASH_SHA256;
	case CKM_SHA384:
	case CKM_SHA384_RSA_PKCS:
	case CKM_SHA384_RSA_PKCS_PSS:
	case CKG_MGF1_SHA384:
		return KM_RSA_HASH_SHA384;
	case CKM_SHA512:
	case CKM_SHA512_RSA_PKCS:
	case CKM_SHA512_RSA_PKCS_PSS:
	case CKG_MGF1_SHA512:
		return KM_RSA_HASH_SHA512;
	default:
		return KM_RSA_HASH_NONE;
	}
}

/* CKG_MGF1_* and CKM_SHA* share no values, so look at MGF separately. */
static int
km_p11_hash_of_mgf(CK_RSA_PKCS_MGF_TYPE g)
{
	switch (g) {
	case CKG_MGF1_SHA1:
		return KM_RSA_HASH_SHA1;
	case CKG_MGF1_SHA224:
		return KM_RSA_HASH_SHA224;
	case CKG_MGF1_SHA256:
		return KM_RSA_HASH_SHA256;
	case CKG_MGF1_SHA384:
		return KM_RSA_HASH_SHA384;
	case CKG_MGF1_SHA512:
		return KM_RSA_HASH_SHA512;
	default:
		return KM_RSA_HASH_NONE;
	}
}

static int
km_p11_hash_of_digest_ckm(CK_MECHANISM_TYPE t)
{
	switch (t) {
	case CKM_SHA_1:
		return KM_RSA_HASH_SHA1;
	case CKM_SHA224:
		return KM_RSA_HASH_SHA224;
	case CKM_SHA256:
		return KM_RSA_HASH_SHA256;
	case CKM_SHA384:
		return KM_RSA_HASH_SHA384;
	case CKM_SHA512:
		return KM_RSA_HASH_SHA512;
	default:
		return KM_RSA_HASH_NONE;
	}
}

static bool
km_p11_is_hash_sign(CK_MECHANISM_TYPE t)
{
	return t != CKM_RSA_PKCS && t != CKM_RSA_X_509
	    && t != CKM_RSA_PKCS_PSS;
}

static bool
km_p11_is_pss(CK_MECHANISM_TYPE t)
{
	return t == CKM_RSA_PKCS_PSS || t == CKM_SHA1_RSA_PKCS_PSS
	    || t == CKM_SHA224_RSA_PKCS_PSS || t == CKM_SHA256_RSA_PKCS_PSS
	    || t == CKM_SHA384_RSA_PKCS_PSS || t == CKM_SHA512_RSA_PKCS_PSS;
}

/*
 * Fills op->rsa from the mechanism and its parameters, and op->md_type
 * for the hash-and-sign mechanisms.
 */
static CK_RV
km_p11_rsa_params(km_p11_op *op, CK_MECHANISM_PTR m, bool sign)
{
	CK_RSA_PKCS_PSS_PARAMS *pss;
	CK_RSA_PKCS_OAEP_PARAMS *oaep;
	int h;

	memset(&op->rsa, 0, sizeof(op->rsa));
	switch (m->mechanism) {
	case CKM_RSA_PKCS:
		op->rsa.pad = KM_RSA_PAD_PKCS1;
		return CKR_OK;
	case CKM_RSA_X_509:
		op->rsa.pad = KM_RSA_PAD_RAW;
		return CKR_OK;
	case CKM_RSA_PKCS_OAEP:
		if (sign) {
			return CKR_MECHANISM_INVALID;
		}
		if (m->pParameter == NULL
		    || m->ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS)) {
			return CKR_MECHANISM_PARAM_INVALID;
		}
		oaep = m->pParameter;
		op->rsa.pad = KM_RSA_PAD_OAEP;
		op->rsa.hash = km_p11_hash_of_digest_ckm(oaep->hashAlg);
		op->rsa.mgf1_hash = km_p11_hash_of_mgf(oaep->mgf);
		if (op->rsa.hash == KM_RSA_HASH_NONE
		    || op->rsa.mgf1_hash == KM_RSA_HASH_NONE
		    || (oaep->source != 0
		        && oaep->source != CKZ_DATA_SPECIFIED)
		    || (oaep->pSourceData == NULL
		        && oaep->ulSourceDataLen > 0)) {
			return CKR_MECHANISM_PARAM_INVALID;
		}
		if (oaep->ulSourceDataLen > 0) {
			if ((op->label = malloc(oaep->ulSourceDataLen))
			    == NULL) {
				return CKR_HOST_MEMORY;
			}
			memcpy(op->label, oaep->pSourceData,
			    oaep->ulSourceDataLen);
			op->label_len = oaep->ulSourceDataLen;
		}
		op->rsa.label = op->label;
		op->rsa.label_len = op->label_len;
		return CKR_OK;
	default:
		break;
	}
	if (!sign) {
		return CKR_MECHANISM_INVALID;
	}
	if (km_p11_is_pss(m->mechanism)) {
		if (m->pParameter == NULL
		    || m->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS)) {
			return CKR_MECHANISM_PARAM_INVALID;
		}
		pss = m->pParameter;
		op->rsa.pad = KM_RSA_PAD_PSS;
		op->rsa.hash = km_p11_hash_of_digest_ckm(pss->hashAlg);
		op->rsa.mgf1_hash = km_p11_hash_of_mgf(pss->mgf);
		h = km_p11_hash_of_ckm(m->mechanism);
		if (op->rsa.hash == KM_RSA_HASH_NONE
		    || op->rsa.mgf1_hash == KM_RSA_HASH_NONE
		    || (m->mechanism != CKM_RSA_PKCS_PSS && h != op->rsa.hash)
		    || pss->sLen > 1024) {
			return CKR_MECHANISM_PARAM_INVALID;
		}
		op->rsa.salt_len = (int)pss->sLen;
	} else {
		op->rsa.pad = KM_RSA_PAD_PKCS1;
		op->rsa.hash = km_p11_hash_of_ckm(m->mechanism);
		if (op->rsa.hash == KM_RSA_HASH_NONE) {
			return CKR_MECHANISM_INVALID;
		}
	}
	if (km_p11_is_hash_sign(m->mechanism)) {
		op->md_type = km_rsa_hash_md(op->rsa.hash);
	}
	return CKR_OK;
}

/*
 * Looks up a key for an operation: @attr must be true on it.  On success
 * the op holds a reference to the mesh key (private operations) or a
 * public EVP key.
 */
static CK_RV
km_p11_op_key(
    km_p11_op *op, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE attr, bool need_mesh)
{
	km_p11_object *o;
	CK_RV rv = CKR_OK;

	km_p11_lock(km_p11.lock);
	if ((o = km_p11_object_find(h)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	if (!km_p11_object_visible(o)) {
		rv = CKR_USER_NOT_LOGGED_IN;
		goto out;
	}
	if (o->cls != CKO_PRIVATE_KEY && o->cls != CKO_PUBLIC_KEY) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (!km_p11_attr_bool(o, attr)) {
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		goto out;
	}
	if (need_mesh) {
		if (o->key == NULL || o->cls != CKO_PRIVATE_KEY) {
			rv = CKR_KEY_TYPE_INCONSISTENT;
			goto out;
		}
		op->key = o->key;
		o->key->refs++;
		op->key_type = o->key->rsa != NULL ? CKK_RSA : CKK_EC;
		if (o->key->rsa != NULL) {
			op->modlen
			    = (size_t)(km_rsa_pub_bits(o->key->rsa) + 7) / 8;
		}
	} else {
		rv = km_p11_object_pkey(o, &op->pkey, &op->key_type);
		if (rv == CKR_OK && op->key_type == CKK_RSA) {
			op->modlen = (size_t)EVP_PKEY_get_size(op->pkey);
		}
	}
out:
	km_p11_unlock(km_p11.lock);
	return rv;
}

static bool
km_p11_mech_is_rsa(CK_MECHANISM_TYPE t)
{
	const struct km_p11_mech *m = km_p11_mech_find(t);

	return m != NULL && (m->flags & (CKF_SIGN | CKF_ENCRYPT))
	    && t != CKM_ECDH1_DERIVE;
}

static CK_RV
km_p11_crypt_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE h, int kind)
{
	const struct km_p11_mech *mi;
	bool sign = kind == KM_P11_OP_SIGN || kind == KM_P11_OP_VERIFY;
	bool priv = kind == KM_P11_OP_SIGN || kind == KM_P11_OP_DECRYPT;
	static const CK_ATTRIBUTE_TYPE need[KM_P11_OP_COUNT] = {
		[KM_P11_OP_SIGN] = CKA_SIGN,
		[KM_P11_OP_VERIFY] = CKA_VERIFY,
		[KM_P11_OP_ENCRYPT] = CKA_ENCRYPT,
		[KM_P11_OP_DECRYPT] = CKA_DECRYPT,
	};
	CK_FLAGS want;
	CK_RV rv;

	return_val_if_fail(m != NULL, CKR_ARGUMENTS_BAD);
	if (s->active != KM_P11_OP_NONE) {
		return CKR_OPERATION_ACTIVE;
	}
	want = kind == KM_P11_OP_SIGN   ? CKF_SIGN
	    : kind == KM_P11_OP_VERIFY  ? CKF_VERIFY
	    : kind == KM_P11_OP_ENCRYPT ? CKF_ENCRYPT
	                                : CKF_DECRYPT;
	if ((mi = km_p11_mech_find(m->mechanism)) == NULL
	    || !(mi->flags & want) || !km_p11_mech_is_rsa(m->mechanism)) {
		return CKR_MECHANISM_INVALID;
	}
	km_p11_op_reset(&s->op);
	if ((rv = km_p11_rsa_params(&s->op, m, sign)) != CKR_OK) {
		goto out;
	}
	if ((rv = km_p11_op_key(&s->op, h, need[kind], priv)) != CKR_OK) {
		goto out;
	}
	if (s->op.key_type != CKK_RSA) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (priv && !km_p11_key_allows(s->op.key, m->mechanism)) {
		/* as CKA_ALLOWED_MECHANISMS (SoftHSM, opencryptoki): the
		 * key's policy does not list it, the daemons would refuse */
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	if (s->op.md_type != NULL) {
		if ((s->op.md = EVP_MD_CTX_new()) == NULL
		    || EVP_DigestInit_ex(s->op.md, s->op.md_type, NULL) != 1) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
	}
	s->op.mech = m->mechanism;
	s->active = kind;
	return CKR_OK;
out:
	km_p11_op_reset(&s->op);
	return rv;
}

/*
 * The holders say the key moved to a new epoch (a re-share finished since
 * the view was read): refresh the view and take the key's new sharing.
 * The public key is the same, so the operation goes on unchanged.
 */
static bool
km_p11_key_refresh(km_p11_key **k)
{
	km_p11_key *nk = NULL;
	size_t i;

	if (km_p11_view_sync(true) != CKR_OK) {
		return false;
	}
	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nobjects; i++) {
		km_p11_object *o = km_p11.objects[i];

		if (o->from_mesh && o->cls == CKO_PRIVATE_KEY && o->key != *k
		    && strcmp(o->key->key_id, (*k)->key_id) == 0
		    && o->key->epoch != (*k)->epoch) {
			nk = o->key;
			nk->refs++;
			break;
		}
	}
	km_p11_unlock(km_p11.lock);
	if (nk == NULL) {
		km_log_error("P11-QUORUM",
		    "key %s: holders refused epoch %u as stale and the view "
		    "has no other",
		    (*k)->key_id, (*k)->epoch);
		return false;
	}
	km_p11_key_unref(*k);
	*k = nk;
	return true;
}

/* The input of a signature after local hashing: digest or data. */
static CK_RV
km_p11_sign_input(km_p11_session *s, const uint8_t *data, size_t len,
    uint8_t *md, size_t *mdlen, const uint8_t **in, size_t *inlen)
{
	unsigned int n = 0;

	if (s->op.md != NULL) {
		if ((data != NULL
		        && EVP_DigestUpdate(s->op.md, data, len) != 1)
		    || EVP_DigestFinal_ex(s->op.md, md, &n) != 1) {
			return CKR_GENERAL_ERROR;
		}
		*mdlen = n;
		*in = md;
		*inlen = n;
		return CKR_OK;
	}
	*in = data;
	*inlen = len;
	return CKR_OK;
}

/* Length checks for the unhashed mechanisms (as SoftHSM). */
static CK_RV
km_p11_sign_len(const km_p11_op *op, size_t len)
{
	const EVP_MD *md;

	switch (op->mech) {
	case CKM_RSA_PKCS:
		return len + 11 <= op->modlen ? CKR_OK : CKR_DATA_LEN_RANGE;
	case CKM_RSA_X_509:
		return len <= op->modlen ? CKR_OK : CKR_DATA_LEN_RANGE;
	case CKM_RSA_PKCS_PSS:
		md = km_rsa_hash_md(op->rsa.hash);
		return md != NULL && (int)len == EVP_MD_get_size(md)
		    ? CKR_OK
		    : CKR_DATA_LEN_RANGE;
	default:
		return CKR_OK;
	}
}

CK_RV
km_p11_sign_init(km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	return km_p11_crypt_init(s, m, key, KM_P11_OP_SIGN);
}

static CK_RV
km_p11_do_sign(km_p11_session *s, const uint8_t *data, size_t len,
    CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	uint8_t md[EVP_MAX_MD_SIZE], block[KM_RSA_MAX_BITS / 8];
	const uint8_t *in;
	size_t mdlen = 0, inlen, outlen;
	int r;
	CK_RV rv;

	if (sig == NULL) {
		*siglen = s->op.modlen;
		return CKR_OK;
	}
	if (*siglen < s->op.modlen) {
		*siglen = s->op.modlen;
		return CKR_BUFFER_TOO_SMALL;
	}
	if ((rv = km_p11_sign_input(s, data, len, md, &mdlen, &in, &inlen))
	    != CKR_OK) {
		goto out;
	}
	if ((rv = km_p11_sign_len(&s->op, inlen)) != CKR_OK) {
		goto out;
	}
	if (s->op.mech == CKM_RSA_X_509 && inlen < s->op.modlen) {
		/* raw RSA takes a |N|-byte block: left-pad with zeros */
		memset(block, 0, s->op.modlen - inlen);
		memcpy(block + s->op.modlen - inlen, in, inlen);
		in = block;
		inlen = s->op.modlen;
	}
	outlen = *siglen;
	r = km_p11_quorum_rsa(s->op.key, KM_OPS_SIGN, s->op.mech, &s->op.rsa,
	    in, inlen, sig, &outlen);
	if (r == KM_ERR_STALE && km_p11_key_refresh(&s->op.key)) {
		outlen = *siglen;
		r = km_p11_quorum_rsa(s->op.key, KM_OPS_SIGN, s->op.mech,
		    &s->op.rsa, in, inlen, sig, &outlen);
	}
	if (r == KM_ERR_RANGE || r == KM_ERR_INVALID_ARG) {
		rv = CKR_DATA_INVALID;
	} else {
		rv = km_p11_ckr(r);
	}
	if (rv == CKR_OK) {
		*siglen = outlen;
	}
out:
	OPENSSL_cleanse(md, sizeof(md));
	km_p11_op_end(s);
	return rv;
}

CK_RV
km_p11_sign(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
    CK_ULONG_PTR siglen)
{
	if (s->active != KM_P11_OP_SIGN) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((data == NULL && len > 0) || siglen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (s->op.multi) {
		/* C_Sign after C_SignUpdate is not allowed (§5.12) */
		km_p11_op_end(s);
		return CKR_OPERATION_ACTIVE;
	}
	return km_p11_do_sign(s, data, len, sig, siglen);
}

CK_RV
km_p11_sign_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len)
{
	if (s->active != KM_P11_OP_SIGN) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (data == NULL && len > 0) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	s->op.multi = true;
	if (s->op.md != NULL) {
		if (EVP_DigestUpdate(s->op.md, data, len) != 1) {
			km_p11_op_end(s);
			return CKR_GENERAL_ERROR;
		}
		return CKR_OK;
	}
	/* unhashed mechanisms collect at most a block */
	if (s->op.data.len + len > s->op.modlen) {
		km_p11_op_end(s);
		return CKR_DATA_LEN_RANGE;
	}
	if (km_buf_put_raw(&s->op.data, data, len) != 0) {
		km_p11_op_end(s);
		return CKR_HOST_MEMORY;
	}
	return CKR_OK;
}

CK_RV
km_p11_sign_final(km_p11_session *s, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	if (s->active != KM_P11_OP_SIGN) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (siglen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (s->op.md != NULL) {
		return km_p11_do_sign(s, NULL, 0, sig, siglen);
	}
	return km_p11_do_sign(s, s->op.data.data, s->op.data.len, sig, siglen);
}

/* ---- verify and encrypt: local ---- */

static CK_RV
km_p11_pkey_ctx(km_p11_op *op, bool verify, EVP_PKEY_CTX **out)
{
	EVP_PKEY_CTX *ctx;
	int pad, ok;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, op->pkey, NULL)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	ok = verify ? EVP_PKEY_verify_init(ctx) : EVP_PKEY_encrypt_init(ctx);
	switch (op->rsa.pad) {
	case KM_RSA_PAD_PKCS1:
		pad = RSA_PKCS1_PADDING;
		break;
	case KM_RSA_PAD_PSS:
		pad = RSA_PKCS1_PSS_PADDING;
		break;
	case KM_RSA_PAD_OAEP:
		pad = RSA_PKCS1_OAEP_PADDING;
		break;
	default:
		pad = RSA_NO_PADDING;
		break;
	}
	ok = ok == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, pad) == 1;
	if (ok && op->rsa.pad == KM_RSA_PAD_PKCS1 && verify
	    && op->rsa.hash != KM_RSA_HASH_NONE) {
		ok = EVP_PKEY_CTX_set_signature_md(
		         ctx, km_rsa_hash_md(op->rsa.hash))
		    == 1;
	}
	if (ok && op->rsa.pad == KM_RSA_PAD_PSS) {
		ok = EVP_PKEY_CTX_set_signature_md(
		         ctx, km_rsa_hash_md(op->rsa.hash))
		        == 1
		    && EVP_PKEY_CTX_set_rsa_mgf1_md(
		           ctx, km_rsa_hash_md(op->rsa.mgf1_hash))
		        == 1
		    && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, op->rsa.salt_len)
		        == 1;
	}
	if (ok && op->rsa.pad == KM_RSA_PAD_OAEP) {
		ok = EVP_PKEY_CTX_set_rsa_oaep_md(ctx, km_rsa_hash_md(op->rsa.hash))
		        == 1
		    && EVP_PKEY_CTX_set_rsa_mgf1_md(
		           ctx, km_rsa_hash_md(op->rsa.mgf1_hash))
		        == 1;
		if (ok && op->label_len > 0) {
			uint8_t *l = OPENSSL_memdup(op->label, op->label_len);

			ok = l != NULL
			    && EVP_PKEY_CTX_set0_rsa_oaep_label(
			           ctx, l, (int)op->label_len)
			        == 1;
			if (!ok) {
				OPENSSL_free(l);
			}
		}
	}
	if (!ok) {
		EVP_PKEY_CTX_free(ctx);
		return CKR_GENERAL_ERROR;
	}
	*out = ctx;
	return CKR_OK;
}

CK_RV
km_p11_verify_init(km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	return km_p11_crypt_init(s, m, key, KM_P11_OP_VERIFY);
}

static CK_RV
km_p11_do_verify(km_p11_session *s, const uint8_t *data, size_t len,
    const uint8_t *sig, size_t siglen)
{
	uint8_t md[EVP_MAX_MD_SIZE], rec[KM_RSA_MAX_BITS / 8];
	const uint8_t *in;
	size_t mdlen = 0, inlen, reclen = sizeof(rec);
	EVP_PKEY_CTX *ctx = NULL;
	CK_RV rv;

	if (siglen != s->op.modlen) {
		rv = CKR_SIGNATURE_LEN_RANGE;
		goto out;
	}
	if ((rv = km_p11_sign_input(s, data, len, md, &mdlen, &in, &inlen))
	        != CKR_OK
	    || (rv = km_p11_sign_len(&s->op, inlen)) != CKR_OK) {
		goto out;
	}
	if (s->op.mech == CKM_RSA_X_509) {
		/* raw: recover and compare with the zero-padded input */
		if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, s->op.pkey, NULL))
		        == NULL
		    || EVP_PKEY_verify_recover_init(ctx) != 1
		    || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING)
		        != 1) {
			rv = CKR_GENERAL_ERROR;
			goto out;
		}
		if (EVP_PKEY_verify_recover(ctx, rec, &reclen, sig, siglen)
		        != 1
		    || reclen != s->op.modlen) {
			rv = CKR_SIGNATURE_INVALID;
			goto out;
		}
		rv = (inlen <= reclen
		         && memcmp(rec + reclen - inlen, in, inlen) == 0)
		    ? CKR_OK
		    : CKR_SIGNATURE_INVALID;
		for (size_t i = 0; rv == CKR_OK && i < reclen - inlen; i++) {
			if (rec[i] != 0) {
				rv = CKR_SIGNATURE_INVALID;
			}
		}
		goto out;
	}
	if ((rv = km_p11_pkey_ctx(&s->op, true, &ctx)) != CKR_OK) {
		goto out;
	}
	rv = EVP_PKEY_verify(ctx, sig, siglen, in, inlen) == 1
	    ? CKR_OK
	    : CKR_SIGNATURE_INVALID;
out:
	EVP_PKEY_CTX_free(ctx);
	km_p11_op_end(s);
	return rv;
}

CK_RV
km_p11_verify(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR sig, CK_ULONG siglen)
{
	if (s->active != KM_P11_OP_VERIFY) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((data == NULL && len > 0) || sig == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (s->op.multi) {
		km_p11_op_end(s);
		return CKR_OPERATION_ACTIVE;
	}
	return km_p11_do_verify(s, data, len, sig, siglen);
}

CK_RV
km_p11_verify_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len)
{
	if (s->active != KM_P11_OP_VERIFY) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (data == NULL && len > 0) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	s->op.multi = true;
	if (s->op.md != NULL) {
		return EVP_DigestUpdate(s->op.md, data, len) == 1
		    ? CKR_OK
		    : CKR_GENERAL_ERROR;
	}
	if (s->op.data.len + len > s->op.modlen) {
		km_p11_op_end(s);
		return CKR_DATA_LEN_RANGE;
	}
	return km_buf_put_raw(&s->op.data, data, len) == 0 ? CKR_OK
	                                                   : CKR_HOST_MEMORY;
}

CK_RV
km_p11_verify_final(km_p11_session *s, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	if (s->active != KM_P11_OP_VERIFY) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (sig == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (s->op.md != NULL) {
		return km_p11_do_verify(s, NULL, 0, sig, siglen);
	}
	return km_p11_do_verify(
	    s, s->op.data.data, s->op.data.len, sig, siglen);
}

CK_RV
km_p11_encrypt_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	return km_p11_crypt_init(s, m, key, KM_P11_OP_ENCRYPT);
}

CK_RV
km_p11_encrypt(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	uint8_t block[KM_RSA_MAX_BITS / 8];
	const uint8_t *in = data;
	size_t n;
	EVP_PKEY_CTX *ctx = NULL;
	CK_RV rv;

	if (s->active != KM_P11_OP_ENCRYPT) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((data == NULL && len > 0) || outlen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (out == NULL) {
		*outlen = s->op.modlen;
		return CKR_OK;
	}
	if (*outlen < s->op.modlen) {
		*outlen = s->op.modlen;
		return CKR_BUFFER_TOO_SMALL;
	}
	if (s->op.mech == CKM_RSA_X_509) {
		if (len > s->op.modlen) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		memset(block, 0, s->op.modlen - len);
		memcpy(block + s->op.modlen - len, data, len);
		in = block;
		len = s->op.modlen;
	}
	if ((rv = km_p11_pkey_ctx(&s->op, false, &ctx)) != CKR_OK) {
		goto out;
	}
	n = *outlen;
	if (EVP_PKEY_encrypt(ctx, out, &n, in, len) != 1) {
		rv = s->op.mech == CKM_RSA_X_509 ? CKR_DATA_INVALID
		                                 : CKR_DATA_LEN_RANGE;
		goto out;
	}
	*outlen = n;
	rv = CKR_OK;
out:
	EVP_PKEY_CTX_free(ctx);
	km_p11_op_end(s);
	return rv;
}

CK_RV
km_p11_encrypt_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)data;
	(void)len;
	(void)out;
	(void)outlen;
	if (s->active != KM_P11_OP_ENCRYPT) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	/* RSA encryption is single-part (as SoftHSM) */
	km_p11_op_end(s);
	return CKR_MECHANISM_INVALID;
}

CK_RV
km_p11_encrypt_final(km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)out;
	(void)outlen;
	if (s->active != KM_P11_OP_ENCRYPT) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	km_p11_op_end(s);
	return CKR_MECHANISM_INVALID;
}

/* ---- decrypt: the mesh ---- */

CK_RV
km_p11_decrypt_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	return km_p11_crypt_init(s, m, key, KM_P11_OP_DECRYPT);
}

CK_RV
km_p11_decrypt(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	uint8_t *pt = NULL;
	size_t ptlen;
	int r;
	CK_RV rv;

	if (s->active != KM_P11_OP_DECRYPT) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((data == NULL && len > 0) || outlen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (len != s->op.modlen) {
		km_p11_op_end(s);
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	}
	if (out == NULL) {
		/* an upper bound, as SoftHSM gives */
		*outlen = s->op.modlen;
		return CKR_OK;
	}
	/* the plaintext is formed here only, in locked memory */
	if ((pt = km_secure_alloc(s->op.modlen)) == NULL) {
		km_p11_op_end(s);
		return CKR_HOST_MEMORY;
	}
	ptlen = s->op.modlen;
	r = km_p11_quorum_rsa(s->op.key, KM_OPS_DECRYPT, s->op.mech,
	    &s->op.rsa, data, len, pt, &ptlen);
	if (r == KM_ERR_STALE && km_p11_key_refresh(&s->op.key)) {
		ptlen = s->op.modlen;
		r = km_p11_quorum_rsa(s->op.key, KM_OPS_DECRYPT, s->op.mech,
		    &s->op.rsa, data, len, pt, &ptlen);
	}
	if (r == KM_ERR_BAD_PADDING || r == KM_ERR_RANGE
	    || r == KM_ERR_BAD_FORMAT) {
		rv = CKR_ENCRYPTED_DATA_INVALID;
	} else {
		rv = km_p11_ckr(r);
	}
	if (rv == CKR_OK && *outlen < ptlen) {
		/* keep the operation: the caller asks again */
		*outlen = ptlen;
		km_secret_free(pt, s->op.modlen);
		return CKR_BUFFER_TOO_SMALL;
	}
	if (rv == CKR_OK) {
		memcpy(out, pt, ptlen);
		*outlen = ptlen;
	}
	km_secret_free(pt, s->op.modlen);
	km_p11_op_end(s);
	return rv;
}

/*
 * Multi-part decryption of one RSA block (pkcs11-tool uses it): the parts
 * are gathered until C_DecryptFinal, which decrypts the whole block as
 * C_Decrypt does.  Update outputs nothing.
 */
CK_RV
km_p11_decrypt_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)out;
	if (s->active != KM_P11_OP_DECRYPT) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((data == NULL && len > 0) || outlen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (len > s->op.modlen || s->op.data.len + len > s->op.modlen) {
		km_p11_op_end(s);
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	}
	if (len > 0 && km_buf_put_raw(&s->op.data, data, len) != 0) {
		km_p11_op_end(s);
		return CKR_HOST_MEMORY;
	}
	s->op.multi = true;
	*outlen = 0;
	return CKR_OK;
}

CK_RV
km_p11_decrypt_final(km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	uint8_t block[KM_RSA_MAX_BITS / 8];
	size_t n;

	if (s->active != KM_P11_OP_DECRYPT) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (outlen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	n = s->op.data.len;
	if (n > sizeof(block)) {
		km_p11_op_end(s);
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	}
	/* a copy: km_p11_decrypt ends the operation, freeing op.data */
	if (n > 0) {
		memcpy(block, s->op.data.data, n);
	}
	return km_p11_decrypt(s, block, (CK_ULONG)n, out, outlen);
}

/* ---- digest ---- */

CK_RV
km_p11_digest_init(km_p11_session *s, CK_MECHANISM_PTR m)
{
	const EVP_MD *md;

	return_val_if_fail(m != NULL, CKR_ARGUMENTS_BAD);
	if (s->active != KM_P11_OP_NONE) {
		return CKR_OPERATION_ACTIVE;
	}
	if ((md = km_rsa_hash_md(km_p11_hash_of_digest_ckm(m->mechanism)))
	    == NULL) {
		return CKR_MECHANISM_INVALID;
	}
	km_p11_op_reset(&s->op);
	if ((s->op.md = EVP_MD_CTX_new()) == NULL
	    || EVP_DigestInit_ex(s->op.md, md, NULL) != 1) {
		km_p11_op_reset(&s->op);
		return CKR_HOST_MEMORY;
	}
	s->op.md_type = md;
	s->op.mech = m->mechanism;
	s->active = KM_P11_OP_DIGEST;
	return CKR_OK;
}

static CK_RV
km_p11_digest_out(km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	size_t n = (size_t)EVP_MD_get_size(s->op.md_type);
	unsigned int got;
	CK_RV rv;

	if (out == NULL) {
		*outlen = n;
		return CKR_OK;
	}
	if (*outlen < n) {
		*outlen = n;
		return CKR_BUFFER_TOO_SMALL;
	}
	rv = EVP_DigestFinal_ex(s->op.md, out, &got) == 1 ? CKR_OK
	                                                  : CKR_GENERAL_ERROR;
	*outlen = got;
	km_p11_op_end(s);
	return rv;
}

CK_RV
km_p11_digest(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	EVP_MD_CTX *copy;

	if (s->active != KM_P11_OP_DIGEST) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((data == NULL && len > 0) || outlen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	if (s->op.multi) {
		km_p11_op_end(s);
		return CKR_OPERATION_ACTIVE;
	}
	if (out == NULL
	    || *outlen < (CK_ULONG)EVP_MD_get_size(s->op.md_type)) {
		return km_p11_digest_out(s, out, outlen);
	}
	/* hash on a copy so a failure leaves nothing half-updated */
	if ((copy = EVP_MD_CTX_new()) == NULL
	    || EVP_MD_CTX_copy_ex(copy, s->op.md) != 1
	    || EVP_DigestUpdate(copy, data, len) != 1) {
		EVP_MD_CTX_free(copy);
		km_p11_op_end(s);
		return CKR_GENERAL_ERROR;
	}
	EVP_MD_CTX_free(s->op.md);
	s->op.md = copy;
	return km_p11_digest_out(s, out, outlen);
}

CK_RV
km_p11_digest_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len)
{
	if (s->active != KM_P11_OP_DIGEST) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (data == NULL && len > 0) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	s->op.multi = true;
	if (EVP_DigestUpdate(s->op.md, data, len) != 1) {
		km_p11_op_end(s);
		return CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

CK_RV
km_p11_digest_key(km_p11_session *s, CK_OBJECT_HANDLE key)
{
	(void)key;
	if (s->active != KM_P11_OP_DIGEST) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	/* no key value leaves the mesh */
	return CKR_KEY_INDIGESTIBLE;
}

CK_RV
km_p11_digest_final(km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	if (s->active != KM_P11_OP_DIGEST) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (outlen == NULL) {
		km_p11_op_end(s);
		return CKR_ARGUMENTS_BAD;
	}
	return km_p11_digest_out(s, out, outlen);
}

/* ---- derive ---- */

static CK_RV
km_p11_tbool(CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, bool def,
    bool *out)
{
	CK_ULONG i;

	*out = def;
	for (i = 0; i < n; i++) {
		if (t[i].type == type) {
			if (t[i].pValue == NULL
			    || t[i].ulValueLen != sizeof(CK_BBOOL)) {
				return CKR_ATTRIBUTE_VALUE_INVALID;
			}
			*out = *(CK_BBOOL *)t[i].pValue != CK_FALSE;
		}
	}
	return CKR_OK;
}

static CK_RV
km_p11_tulong(CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *out, bool *found)
{
	CK_ULONG i;

	*found = false;
	for (i = 0; i < n; i++) {
		if (t[i].type == type) {
			if (t[i].pValue == NULL
			    || t[i].ulValueLen != sizeof(CK_ULONG)) {
				return CKR_ATTRIBUTE_VALUE_INVALID;
			}
			*out = *(CK_ULONG *)t[i].pValue;
			*found = true;
		}
	}
	return CKR_OK;
}

CK_RV
km_p11_derive_key(km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base,
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	CK_ECDH1_DERIVE_PARAMS *p;
	km_p11_op op;
	uint8_t *secret = NULL;
	size_t slen = 0, got = 0, plen, ptlen;
	const uint8_t *pt;
	km_p11_attr *a = NULL;
	size_t na = 0;
	CK_ULONG cls = CKO_SECRET_KEY, kt = CKK_GENERIC_SECRET, vlen = 0;
	CK_ULONG unavail = CK_UNAVAILABLE_INFORMATION;
	bool has_cls, has_kt, has_len, sens, extr, token, priv;
	CK_ULONG i;
	int r;
	CK_RV rv;

	return_val_if_fail(m != NULL, CKR_ARGUMENTS_BAD);
	return_val_if_fail(out != NULL, CKR_ARGUMENTS_BAD);
	return_val_if_fail(t != NULL || n == 0, CKR_ARGUMENTS_BAD);
	if (s->active != KM_P11_OP_NONE) {
		return CKR_OPERATION_ACTIVE;
	}
	if (m->mechanism != CKM_ECDH1_DERIVE) {
		return CKR_MECHANISM_INVALID;
	}
	if (m->pParameter == NULL
	    || m->ulParameterLen != sizeof(CK_ECDH1_DERIVE_PARAMS)) {
		return CKR_MECHANISM_PARAM_INVALID;
	}
	p = m->pParameter;
	if (p->kdf != CKD_NULL || p->ulSharedDataLen != 0
	    || p->pPublicData == NULL || p->ulPublicDataLen == 0) {
		return CKR_MECHANISM_PARAM_INVALID;
	}
	if ((rv = km_p11_tulong(t, n, CKA_CLASS, &cls, &has_cls)) != CKR_OK
	    || (rv = km_p11_tulong(t, n, CKA_KEY_TYPE, &kt, &has_kt)) != CKR_OK
	    || (rv = km_p11_tulong(t, n, CKA_VALUE_LEN, &vlen, &has_len))
	        != CKR_OK
	    || (rv = km_p11_tbool(t, n, CKA_SENSITIVE, false, &sens)) != CKR_OK
	    || (rv = km_p11_tbool(t, n, CKA_EXTRACTABLE, false, &extr))
	        != CKR_OK
	    || (rv = km_p11_tbool(t, n, CKA_TOKEN, false, &token)) != CKR_OK
	    || (rv = km_p11_tbool(t, n, CKA_PRIVATE, true, &priv)) != CKR_OK) {
		return rv;
	}
	if (cls != CKO_SECRET_KEY) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if (kt != CKK_GENERIC_SECRET && kt != CKK_AES) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if (token && !(s->flags & CKF_RW_SESSION)) {
		return CKR_SESSION_READ_ONLY;
	}
	memset(&op, 0, sizeof(op));
	km_buf_init(&op.data);
	if ((rv = km_p11_op_key(&op, base, CKA_DERIVE, true)) != CKR_OK) {
		goto out;
	}
	if (op.key_type != CKK_EC) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (!km_p11_key_allows(op.key, CKM_ECDH1_DERIVE)) {
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	slen = op.key->group->flen;
	if (!has_len) {
		vlen = kt == CKK_AES ? (slen >= 32 ? 32 : slen) : slen;
	}
	if (vlen == 0 || vlen > slen
	    || (kt == CKK_AES && vlen != 16 && vlen != 24 && vlen != 32)) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	/* the public data: raw SEC 1 octets or a DER OCTET STRING */
	plen = op.key->group->plen;
	pt = km_p11_point_octets(
	    p->pPublicData, p->ulPublicDataLen, plen, &ptlen);
	if ((secret = km_secure_alloc(slen)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	r = km_p11_quorum_ecdh(op.key, pt, ptlen, secret, slen, &got);
	if (r == KM_ERR_STALE && km_p11_key_refresh(&op.key)) {
		r = km_p11_quorum_ecdh(op.key, pt, ptlen, secret, slen, &got);
	}
	if (r == KM_ERR_BAD_FORMAT || r == KM_ERR_INVALID_ARG) {
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto out;
	}
	if ((rv = km_p11_ckr(r)) != CKR_OK) {
		goto out;
	}
	/* as SoftHSM: a shorter key keeps the trailing bytes */
	rv = km_p11_attr_set(
	    &a, &na, CKA_VALUE, secret + got - vlen, vlen, true);
	for (i = 0; i < n && rv == CKR_OK; i++) {
		if (t[i].type == CKA_VALUE) {
			rv = CKR_ATTRIBUTE_READ_ONLY;
		} else if (t[i].pValue == NULL && t[i].ulValueLen > 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
		} else {
			rv = km_p11_attr_set(&a, &na, t[i].type, t[i].pValue,
			    t[i].ulValueLen, false);
		}
	}
	if (rv == CKR_OK) {
		rv = km_p11_attr_set(
		    &a, &na, CKA_CLASS, &cls, sizeof(cls), false);
	}
	if (rv == CKR_OK) {
		rv = km_p11_attr_set(
		    &a, &na, CKA_KEY_TYPE, &kt, sizeof(kt), false);
	}
	if (rv == CKR_OK) {
		rv = km_p11_attr_set(
		    &a, &na, CKA_VALUE_LEN, &vlen, sizeof(vlen), false);
	}
	{
		CK_BBOOL b;
		CK_ULONG mech = CKM_ECDH1_DERIVE;

		b = sens ? CK_TRUE : CK_FALSE;
		rv = rv
		    ? rv
		    : km_p11_attr_set(&a, &na, CKA_SENSITIVE, &b, 1, false);
		rv = rv ? rv
		        : km_p11_attr_set(
		            &a, &na, CKA_ALWAYS_SENSITIVE, &b, 1, false);
		b = extr ? CK_TRUE : CK_FALSE;
		rv = rv
		    ? rv
		    : km_p11_attr_set(&a, &na, CKA_EXTRACTABLE, &b, 1, false);
		b = extr ? CK_FALSE : CK_TRUE;
		rv = rv ? rv
		        : km_p11_attr_set(
		            &a, &na, CKA_NEVER_EXTRACTABLE, &b, 1, false);
		b = token ? CK_TRUE : CK_FALSE;
		rv = rv ? rv
		        : km_p11_attr_set(&a, &na, CKA_TOKEN, &b, 1, false);
		b = priv ? CK_TRUE : CK_FALSE;
		rv = rv ? rv
		        : km_p11_attr_set(&a, &na, CKA_PRIVATE, &b, 1, false);
		b = CK_FALSE;
		rv = rv ? rv
		        : km_p11_attr_set(&a, &na, CKA_LOCAL, &b, 1, false);
		b = CK_TRUE;
		rv = rv
		    ? rv
		    : km_p11_attr_set(&a, &na, CKA_MODIFIABLE, &b, 1, false);
		rv = rv ? rv
		        : km_p11_attr_set(&a, &na, CKA_KEY_GEN_MECHANISM,
		            &unavail, sizeof(unavail), false);
		(void)mech;
	}
	if (rv != CKR_OK) {
		goto out;
	}
	rv = km_p11_object_add(
	    token ? 0 : s->handle, CKO_SECRET_KEY, priv, a, na, out);
	a = NULL;
	na = 0;
out:
	km_p11_attrs_free(a, na);
	if (secret != NULL) {
		km_secret_free(secret, slen);
	}
	km_p11_op_reset(&op);
	km_buf_free(&op.data);
	return rv;
}

/* ---- key generation: in the mesh ---- */

CK_RV
km_p11_generate_key_pair(km_p11_session *s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pubt, CK_ULONG npub, CK_ATTRIBUTE_PTR privt,
    CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	static const uint8_t p256[]
	    = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const uint8_t p384[]
	    = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
	uint32_t key_type = 0, bits = 0;
	char label[KM_NAME_MAX + 1], key_id[KM_NAME_MAX + 1], err[300];
	const CK_ATTRIBUTE *idattr = NULL;
	uint8_t rnd[6];
	km_catalog_payload kp;
	size_t applied = 0;
	km_mesh *admin;
	size_t i;
	CK_ULONG j;
	bool found;
	int r;
	CK_RV rv;

	return_val_if_fail(m != NULL, CKR_ARGUMENTS_BAD);
	return_val_if_fail(pub != NULL && priv != NULL, CKR_ARGUMENTS_BAD);
	return_val_if_fail(pubt != NULL || npub == 0, CKR_ARGUMENTS_BAD);
	return_val_if_fail(privt != NULL || npriv == 0, CKR_ARGUMENTS_BAD);
	label[0] = '\0';
	if (m->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN) {
		CK_ULONG mb = 0;

		key_type = KM_KEY_RSA;
		if ((rv = km_p11_tulong(
		         pubt, npub, CKA_MODULUS_BITS, &mb, &found))
		    != CKR_OK) {
			return rv;
		}
		if (!found) {
			return CKR_TEMPLATE_INCOMPLETE;
		}
		if (mb != 2048 && mb != 3072 && mb != 4096) {
			return CKR_KEY_SIZE_RANGE;
		}
		bits = (uint32_t)mb;
		for (j = 0; j < npub; j++) {
			static const uint8_t f4[] = { 0x01, 0x00, 0x01 };
			const uint8_t *e = pubt[j].pValue;
			CK_ULONG el = pubt[j].ulValueLen;

			if (pubt[j].type != CKA_PUBLIC_EXPONENT) {
				continue;
			}
			while (e != NULL && el > 0 && *e == 0) {
				e++;
				el--;
			}
			if (e == NULL || el != 3 || memcmp(e, f4, 3) != 0) {
				/* the dealer makes e = 65537 keys */
				return CKR_ATTRIBUTE_VALUE_INVALID;
			}
		}
	} else if (m->mechanism == CKM_EC_KEY_PAIR_GEN) {
		for (j = 0; j < npub; j++) {
			if (pubt[j].type != CKA_EC_PARAMS) {
				continue;
			}
			if (pubt[j].pValue != NULL
			    && pubt[j].ulValueLen == sizeof(p256)
			    && memcmp(pubt[j].pValue, p256, sizeof(p256))
			        == 0) {
				key_type = KM_KEY_EC_P256;
				bits = 256;
			} else if (pubt[j].pValue != NULL
			    && pubt[j].ulValueLen == sizeof(p384)
			    && memcmp(pubt[j].pValue, p384, sizeof(p384))
			        == 0) {
				key_type = KM_KEY_EC_P384;
				bits = 384;
			} else {
				return CKR_CURVE_NOT_SUPPORTED;
			}
		}
		if (key_type == 0) {
			return CKR_TEMPLATE_INCOMPLETE;
		}
	} else {
		return CKR_MECHANISM_INVALID;
	}
	if (s->active != KM_P11_OP_NONE) {
		return CKR_OPERATION_ACTIVE;
	}
	if (!(s->flags & CKF_RW_SESSION)) {
		return CKR_SESSION_READ_ONLY;
	}
	if (!km_p11.logged_in) {
		return CKR_USER_NOT_LOGGED_IN;
	}
	for (j = 0; j < npriv + npub; j++) {
		const CK_ATTRIBUTE *a
		    = j < npriv ? &privt[j] : &pubt[j - npriv];

		if (a->type == CKA_LABEL && label[0] == '\0'
		    && a->pValue != NULL && a->ulValueLen > 0) {
			if (a->ulValueLen > KM_NAME_MAX) {
				return CKR_ATTRIBUTE_VALUE_INVALID;
			}
			memcpy(label, a->pValue, a->ulValueLen);
			label[a->ulValueLen] = '\0';
		}
		if (a->type == CKA_ID && idattr == NULL && a->ulValueLen > 0
		    && a->pValue != NULL) {
			if (a->ulValueLen > KM_CATALOG_APP_ID_MAX) {
				return CKR_ATTRIBUTE_VALUE_INVALID;
			}
			idattr = a;
		}
	}
	if (label[0] == '\0') {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			return CKR_GENERAL_ERROR;
		}
		memcpy(label, "key-", 4);
		km_hex(rnd, sizeof(rnd), label + 4);
	}
	if ((admin = km_p11_admin()) == NULL) {
		/* logged in km_p11_admin() */
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	r = km_mesh_key_create(admin, key_type, bits,
	    km_p11.conf.threshold > 0 ? km_p11.conf.threshold : 1, label,
	    false, NULL, NULL, key_id, err, sizeof(err));
	if (r != 0) {
		km_log_warn_r(r, "P11-KEYGEN", "key %s: %s", label, err);
		return r == KM_ERR_EXISTS ? CKR_ATTRIBUTE_VALUE_INVALID
		                          : km_p11_ckr(r);
	}
	if (idattr != NULL) {
		/* the template's CKA_ID goes into the catalog (KEY_ATTRS,
		 * signed by the admin like the key), so every client sees
		 * it */
		memset(&kp, 0, sizeof(kp));
		kp.type = KM_CAT_KEY_ATTRS;
		snprintf(kp.key_id, sizeof(kp.key_id), "%s", key_id);
		kp.app_id = idattr->pValue;
		kp.app_id_len = idattr->ulValueLen;
		if ((r = km_mesh_append(admin, &kp, &applied, err,
		         sizeof(err)))
		    != 0) {
			/* the key exists, with its key id as CKA_ID */
			km_log_warn_r(r, "P11-KEYGEN",
			    "key %s: cannot record its CKA_ID: %s", key_id,
			    err);
			return km_p11_ckr(r);
		}
	}
	if ((rv = km_p11_view_sync(true)) != CKR_OK) {
		return rv;
	}
	*pub = *priv = CK_INVALID_HANDLE;
	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nobjects; i++) {
		km_p11_object *o = km_p11.objects[i];

		if (o->from_mesh && strcmp(o->key->key_id, key_id) == 0) {
			if (o->cls == CKO_PRIVATE_KEY) {
				*priv = o->handle;
			} else {
				*pub = o->handle;
			}
		}
	}
	km_p11_unlock(km_p11.lock);
	if (*pub == CK_INVALID_HANDLE || *priv == CK_INVALID_HANDLE) {
		km_log_warn("P11-KEYGEN",
		    "key %s was created but is not in the view yet", key_id);
		return CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

/* ---- random ---- */

CK_RV
km_p11_generate_random(km_p11_session *s, CK_BYTE_PTR out, CK_ULONG len)
{
	(void)s;
	return_val_if_fail(out != NULL || len == 0, CKR_ARGUMENTS_BAD);
	if (len == 0) {
		return CKR_OK;
	}
	return RAND_bytes(out, (int)len) == 1 ? CKR_OK : CKR_GENERAL_ERROR;
}

CK_RV
km_p11_seed_random(km_p11_session *s, CK_BYTE_PTR seed, CK_ULONG len)
{
	(void)s;
	return_val_if_fail(seed != NULL || len == 0, CKR_ARGUMENTS_BAD);
	/* mixed in, never relied on (OpenSSL seeds itself) */
	RAND_add(seed, (int)len, 0.0);
	return CKR_OK;
}
