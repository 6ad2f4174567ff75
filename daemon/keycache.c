/*
 * Parsed public key data, cached per (key, epoch).
 *
 * Parsing an RSA public key with its verification keys and setting up its
 * Montgomery context costs more than a partial's bookkeeping, so each key's
 * public side is parsed once and kept.  Entries are read-only once made and
 * live until the daemon exits (a destroyed or re-shared key's old entry is
 * simply no longer looked up), so a pointer handed out stays valid without
 * reference counting.
 *
 * Also here: the mapping of PKCS#11 mechanism numbers to RSA paddings, and
 * the PSS encoding check (RFC 8017 §9.1.2) the daemon does before it signs.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <p11-kit/pkcs11.h>

#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "daemon/kmd.h"
#include "store/catalog.h"
#include "util/err.h"

struct kmd_keycache_entry {
	char key_id[KM_NAME_MAX + 1];
	uint32_t epoch;
	uint32_t key_type;
	km_rsa_pub *rsa;
	km_ec_group *group;
	km_ec_pub *ec;
	struct kmd_keycache_entry *next;
};

static int
kmd_keycache_find(kmd_state *st, const km_catalog_key *k,
    kmd_keycache_entry **out)
{
	kmd_keycache_entry *e, *ne = NULL;
	int r, nid;

	pthread_mutex_lock(&st->lock);
	for (e = st->keycache; e != NULL; e = e->next) {
		if (e->epoch == k->epoch && strcmp(e->key_id, k->key_id) == 0) {
			*out = e;
			pthread_mutex_unlock(&st->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&st->lock);

	/* parse outside the lock; a racing twin is harmless */
	if ((ne = calloc(1, sizeof(*ne))) == NULL) {
		return KM_ERR_ALLOC;
	}
	snprintf(ne->key_id, sizeof(ne->key_id), "%s", k->key_id);
	ne->epoch = k->epoch;
	ne->key_type = k->key_type;
	switch (k->key_type) {
	case KM_KEY_RSA:
		r = km_rsa_pub_decode(k->public_data, k->public_len, &ne->rsa);
		break;
	case KM_KEY_EC_P256:
	case KM_KEY_EC_P384:
		nid = (k->key_type == KM_KEY_EC_P256) ? NID_X9_62_prime256v1 :
							NID_secp384r1;
		r = km_ec_group_new(nid, &ne->group);
		if (r == 0) {
			r = km_ec_pub_decode(ne->group, k->public_data,
			    k->public_len, &ne->ec);
		}
		break;
	default:
		r = KM_ERR_NOT_SUPPORTED;
	}
	if (r != 0) {
		km_rsa_pub_free(ne->rsa);
		km_ec_pub_free(ne->ec);
		km_ec_group_free(ne->group);
		free(ne);
		return r;
	}
	pthread_mutex_lock(&st->lock);
	ne->next = st->keycache;
	st->keycache = ne;
	pthread_mutex_unlock(&st->lock);
	*out = ne;
	return 0;
}

int
kmd_key_rsa_pub(kmd_state *st, const km_catalog_key *k,
    const km_rsa_pub **pub)
{
	kmd_keycache_entry *e;
	int r;

	if ((r = kmd_keycache_find(st, k, &e)) != 0) {
		return r;
	}
	if (e->rsa == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	*pub = e->rsa;
	return 0;
}

int
kmd_key_ec_pub(kmd_state *st, const km_catalog_key *k,
    const km_ec_group **g, const km_ec_pub **pub)
{
	kmd_keycache_entry *e;
	int r;

	if ((r = kmd_keycache_find(st, k, &e)) != 0) {
		return r;
	}
	if (e->ec == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	*g = e->group;
	*pub = e->ec;
	return 0;
}

void
kmd_keycache_free(kmd_state *st)
{
	kmd_keycache_entry *e, *next;

	for (e = st->keycache; e != NULL; e = next) {
		next = e->next;
		km_rsa_pub_free(e->rsa);
		km_ec_pub_free(e->ec);
		km_ec_group_free(e->group);
		free(e);
	}
	st->keycache = NULL;
}

int
kmd_rsa_mech_from_ckm(uint32_t mech, uint32_t kind, km_rsa_mech *m)
{
	memset(m, 0, sizeof(*m));
	if (kind == KMD_OP_DECRYPT) {
		switch (mech) {
		case CKM_RSA_PKCS:
			m->pad = KM_RSA_PAD_PKCS1;
			return 0;
		case CKM_RSA_PKCS_OAEP:
			m->pad = KM_RSA_PAD_OAEP;
			return 0;
		case CKM_RSA_X_509:
			m->pad = KM_RSA_PAD_RAW;
			return 0;
		default:
			return KM_ERR_NOT_SUPPORTED;
		}
	}
	switch (mech) {
	case CKM_RSA_PKCS:
	case CKM_SHA1_RSA_PKCS:
	case CKM_SHA224_RSA_PKCS:
	case CKM_SHA256_RSA_PKCS:
	case CKM_SHA384_RSA_PKCS:
	case CKM_SHA512_RSA_PKCS:
		m->pad = KM_RSA_PAD_PKCS1;
		return 0;
	case CKM_RSA_PKCS_PSS:
	case CKM_SHA1_RSA_PKCS_PSS:
	case CKM_SHA224_RSA_PKCS_PSS:
	case CKM_SHA256_RSA_PKCS_PSS:
	case CKM_SHA384_RSA_PKCS_PSS:
	case CKM_SHA512_RSA_PKCS_PSS:
		m->pad = KM_RSA_PAD_PSS;
		return 0;
	case CKM_RSA_X_509:
		m->pad = KM_RSA_PAD_RAW;
		return 0;
	default:
		return KM_ERR_NOT_SUPPORTED;
	}
}

int
kmd_rsa_pss_check(const km_rsa_pub *pub, const km_rsa_mech *m,
    const uint8_t *mhash, size_t mhashlen, const BIGNUM *x)
{
	const EVP_MD *md = km_rsa_hash_md(m->hash);
	const EVP_MD *mgf =
	    km_rsa_hash_md(m->mgf1_hash ? m->mgf1_hash : m->hash);
	const RSA *rsa;
	uint8_t em[KM_RSA_MAX_BITS / 8];
	int n, ok;

	if (md == NULL || mgf == NULL ||
	    mhashlen != (size_t)EVP_MD_get_size(md)) {
		return KM_ERR_POLICY;
	}
	if ((rsa = EVP_PKEY_get0_RSA(km_rsa_pub_pkey(pub))) == NULL) {
		return KM_ERR_CRYPTO;
	}
	n = RSA_size(rsa);
	if (n <= 0 || (size_t)n > sizeof(em) || BN_bn2binpad(x, em, n) != n) {
		return KM_ERR_INVALID_ARG;
	}
	ok = RSA_verify_PKCS1_PSS_mgf1((RSA *)rsa, mhash, md, mgf, em,
	    m->salt_len);
	OPENSSL_cleanse(em, sizeof(em));
	return ok == 1 ? 0 : KM_ERR_POLICY;
}
