/*
 * Partial operations: the reason keymeshd exists.
 *
 * For an RSA or ECDH request the daemon looks up the key in its applied
 * catalog, checks that the key is active in the requested epoch and that
 * its policy allows the mechanism and the client, unwraps each share it
 * holds for that epoch from the backend token into locked memory, computes
 * the partial (with its proof of correctness), wipes the share, and replies
 * with one partial per index it holds.  It never holds more than its own
 * shares, and never the key.
 *
 * An RSA partial is a raw exponentiation, the same for signing and for
 * decryption, so a client allowed only to sign must not be able to use it
 * as a decryption oracle: for a signature the daemon itself checks that
 * the representative x is the PKCS#1 v1.5 or PSS encoding of the digest
 * the client names (PKCS#1 v2.2, RFC 8017 §9), and raw (X.509) signing is
 * a policy decision like decryption.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "crypto/ec_ecdh.h"
#include "crypto/rsa.h"
#include "daemon/kmd.h"
#include "proto/proto.h"
#include "store/catalog.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

#define kmd_fail(msg, msglen, r, ...) \
	(snprintf((msg), (msglen), __VA_ARGS__), (r))

/*
 * Looks up @key_id for an operation by @peer: active, the right epoch and
 * type, and a policy that allows @mech.  On success *@k is filled (free it
 * with km_catalog_key_free()).
 */
static int
kmd_key_for_op(kmd_state *st, const km_identity *peer, const km_req_hdr *h,
    uint32_t type_want, uint32_t mech, km_catalog_key *k, char *msg,
    size_t msglen)
{
	km_catalog_policy pol;
	bool ok;
	int r;

	memset(k, 0, sizeof(*k));
	if ((r = km_catalog_key_get(st->store, h->key_id, k)) != 0) {
		return kmd_fail(msg, msglen, r == KM_ERR_NOT_FOUND ? r : r,
		    "no key %s on %s", h->key_id, st->cfg.name);
	}
	if (k->state != KM_KEY_ACTIVE && k->state != KM_KEY_RESHARING) {
		r = kmd_fail(msg, msglen, KM_ERR_STATE, "key %s is not active",
		    h->key_id);
		goto out;
	}
	if (k->epoch != h->epoch) {
		r = kmd_fail(msg, msglen, KM_ERR_STALE,
		    "key %s is at epoch %u, not %u", h->key_id, k->epoch,
		    h->epoch);
		goto out;
	}
	ok = (type_want == KM_KEY_RSA) ? (k->key_type == KM_KEY_RSA) :
					 (k->key_type == KM_KEY_EC_P256 ||
					     k->key_type == KM_KEY_EC_P384);
	if (!ok) {
		r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
		    "key %s has the wrong type for this operation", h->key_id);
		goto out;
	}
	memset(&pol, 0, sizeof(pol));
	if (k->policy_len > 0) {
		if ((r = km_catalog_policy_decode(k->policy, k->policy_len,
			 &pol)) != 0) {
			r = kmd_fail(msg, msglen, KM_ERR_POLICY,
			    "key %s has an unreadable policy", h->key_id);
			goto out;
		}
		ok = km_catalog_policy_allows(&pol, mech, peer->name);
		km_catalog_policy_free(&pol);
		if (!ok) {
			r = kmd_fail(msg, msglen, KM_ERR_POLICY,
			    "the policy of key %s does not allow mechanism "
			    "0x%lx for %s",
			    h->key_id, (unsigned long)mech, peer->name);
			goto out;
		}
	}
	r = 0;
out:
	if (r != 0) {
		km_catalog_key_free(k);
	}
	return r;
}

/* The share indices this node holds for a key's current epoch. */
static size_t
kmd_my_indices(const kmd_state *st, const km_catalog_key *k, uint32_t *idx,
    size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < k->nholders && n < max; i++) {
		if (strcmp(k->holders[i].node, st->cfg.name) == 0) {
			idx[n++] = k->holders[i].index;
		}
	}
	return n;
}

/* ---- RSA --------------------------------------------------------------- */

static int
kmd_rsa_hash(uint32_t v, int *out)
{
	if (v > KM_RSA_HASH_SHA512) {
		return KM_ERR_BAD_FORMAT;
	}
	*out = (int)v;
	return 0;
}

/*
 * For a signature, the representative must be the encoding of the digest
 * the client named; the daemon rebuilds or checks it itself.
 */
static int
kmd_rsa_check_sign_input(const km_rsa_pub *pub, uint32_t mech,
    const km_rsa_mech *m, const uint8_t *aux, size_t auxlen, const BIGNUM *x)
{
	BIGNUM *want = NULL;
	int r;

	switch (m->pad) {
	case KM_RSA_PAD_PKCS1:
		/* deterministic: rebuild and compare */
		if ((r = km_rsa_sign_prepare(pub, m, aux, auxlen, &want)) !=
		    0) {
			return r;
		}
		r = (BN_cmp(want, x) == 0) ? 0 : KM_ERR_POLICY;
		BN_free(want);
		return r;
	case KM_RSA_PAD_PSS:
		return kmd_rsa_pss_check(pub, m, aux, auxlen, x);
	default:
		/* raw: any x, allowed only by policy (mechanism X.509) */
		return (mech == CKM_RSA_X_509) ? 0 : KM_ERR_POLICY;
	}
}

int
kmd_do_rsa_partial(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *op, size_t oplen,
    uint8_t digest[32], char *msg, size_t msglen)
{
	uint32_t mech = 0, kind = 0, hash = 0, mgf = 0, salt = 0,
		 idx[KM_PROTO_MAX_INDICES];
	const uint8_t *aux = NULL, *xb = NULL;
	size_t auxlen = 0, xlen = 0, nidx, i;
	uint8_t with_proof = 0;
	km_catalog_key k;
	const km_rsa_pub *pub = NULL;
	km_rsa_mech m;
	BIGNUM *x = NULL;
	km_buf parts[KM_PROTO_MAX_INDICES];
	km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
	size_t nparts = 0;
	int r;

	memset(&k, 0, sizeof(k));
	if (km_buf_get_u32(in, &mech) != 0 || km_buf_get_u32(in, &kind) != 0 ||
	    km_buf_get_u32(in, &hash) != 0 || km_buf_get_u32(in, &mgf) != 0 ||
	    km_buf_get_u32(in, &salt) != 0 ||
	    km_buf_get_string_ptr(in, &aux, &auxlen, 1024) != 0 ||
	    km_buf_get_string_ptr(in, &xb, &xlen, KM_RSA_MAX_BITS / 8) != 0 ||
	    km_buf_get_u8(in, &with_proof) != 0 ||
	    km_buf_remaining(in) != 0 ||
	    (kind != KMD_OP_SIGN && kind != KMD_OP_DECRYPT) ||
	    salt > 1024) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed rsa-partial request");
	}
	snprintf(op, oplen, "rsa-%s:0x%lx",
	    kind == KMD_OP_SIGN ? "sign" : "decrypt", (unsigned long)mech);
	(void)EVP_Digest(xb, xlen, digest, NULL, EVP_sha256(), NULL);
	memset(&m, 0, sizeof(m));
	if ((r = kmd_rsa_mech_from_ckm(mech, kind, &m)) != 0 ||
	    kmd_rsa_hash(hash, &m.hash) != 0 ||
	    kmd_rsa_hash(mgf, &m.mgf1_hash) != 0) {
		return kmd_fail(msg, msglen, KM_ERR_NOT_SUPPORTED,
		    "mechanism 0x%lx is not supported for %s",
		    (unsigned long)mech,
		    kind == KMD_OP_SIGN ? "signing" : "decryption");
	}
	if (m.pad == KM_RSA_PAD_PSS) {
		m.salt_len = (int)salt;
	}
	if ((r = kmd_key_for_op(st, peer, h, KM_KEY_RSA, mech, &k, msg,
		 msglen)) != 0) {
		return r;
	}
	if ((r = kmd_key_rsa_pub(st, &k, &pub)) != 0) {
		r = kmd_fail(msg, msglen, r, "key %s has bad public data",
		    h->key_id);
		goto out;
	}
	if (xlen != (size_t)(km_rsa_pub_bits(pub) + 7) / 8 ||
	    (x = BN_bin2bn(xb, (int)xlen, NULL)) == NULL ||
	    BN_is_zero(x) || BN_cmp(x, km_rsa_pub_modulus(pub)) >= 0) {
		r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "the input is not a %d-byte value below the modulus",
		    (km_rsa_pub_bits(pub) + 7) / 8);
		goto out;
	}
	if (kind == KMD_OP_SIGN &&
	    (r = kmd_rsa_check_sign_input(pub, mech, &m, aux, auxlen, x)) !=
		0) {
		r = kmd_fail(msg, msglen, r == KM_ERR_POLICY ? r : r,
		    "the input is not a valid signature encoding for "
		    "mechanism 0x%lx",
		    (unsigned long)mech);
		goto out;
	}
	nidx = kmd_my_indices(st, &k, idx, KM_PROTO_MAX_INDICES);
	if (nidx == 0) {
		r = kmd_fail(msg, msglen, KM_ERR_NOT_FOUND,
		    "%s holds no share of key %s", st->cfg.name, h->key_id);
		goto out;
	}
	for (i = 0; i < nidx; i++) {
		km_rsa_share *share = NULL;
		km_rsa_partial *part = NULL;
		km_buf sb;

		km_buf_init_secure(&sb);
		km_buf_init(&parts[nparts]);
		r = kmd_share_load(st, h->key_id, k.epoch, idx[i], &sb);
		if (r == 0) {
			r = km_rsa_share_decode(pub, sb.data, sb.len, &share);
		}
		km_buf_free(&sb);
		if (r == 0) {
			r = km_rsa_partial_new(pub, share, x, with_proof != 0,
			    &part);
		}
		km_rsa_share_free(share);
		if (r == 0 && kmd_fault_corrupt_partials(st)) {
			/* test builds only: a deliberately faulty node */
			r = kmd_fault_tamper_rsa(pub, part);
		}
		if (r == 0) {
			r = km_rsa_partial_encode(part, &parts[nparts]);
		}
		km_rsa_partial_free(part);
		if (r != 0) {
			km_buf_free(&parts[nparts]);
			km_log_error_r(r, "KMD-PARTIAL-FAIL",
			    "rsa partial of %s index %u", h->key_id, idx[i]);
			r = kmd_fail(msg, msglen, r,
			    "cannot compute the partial for index %u", idx[i]);
			goto out;
		}
		blobs[nparts].index = idx[i];
		blobs[nparts].data = parts[nparts].data;
		blobs[nparts].len = parts[nparts].len;
		nparts++;
	}
	r = km_proto_put_blobs(out, blobs, nparts);
out:
	for (i = 0; i < nparts; i++) {
		km_buf_free(&parts[i]);
	}
	BN_free(x);
	km_catalog_key_free(&k);
	return r;
}

/* ---- ECDH -------------------------------------------------------------- */

int
kmd_do_ecdh_partial(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *op, size_t oplen,
    uint8_t digest[32], char *msg, size_t msglen)
{
	uint32_t mech = 0, idx[KM_PROTO_MAX_INDICES];
	const uint8_t *pt = NULL;
	size_t ptlen = 0, nidx, i, nparts = 0;
	km_catalog_key k;
	const km_ec_group *g = NULL;
	const km_ec_pub *pub = NULL;
	EC_POINT *point = NULL;
	km_buf parts[KM_PROTO_MAX_INDICES];
	km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
	int r;

	memset(&k, 0, sizeof(k));
	if (km_buf_get_u32(in, &mech) != 0 ||
	    km_buf_get_string_ptr(in, &pt, &ptlen, 512) != 0 ||
	    km_buf_remaining(in) != 0) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed ecdh-partial request");
	}
	snprintf(op, oplen, "ecdh-derive:0x%lx", (unsigned long)mech);
	(void)EVP_Digest(pt, ptlen, digest, NULL, EVP_sha256(), NULL);
	if (mech != CKM_ECDH1_DERIVE) {
		return kmd_fail(msg, msglen, KM_ERR_NOT_SUPPORTED,
		    "mechanism 0x%lx is not supported for derivation",
		    (unsigned long)mech);
	}
	if ((r = kmd_key_for_op(st, peer, h, KM_KEY_EC_P256, mech, &k, msg,
		 msglen)) != 0) {
		return r;
	}
	if ((r = kmd_key_ec_pub(st, &k, &g, &pub)) != 0) {
		r = kmd_fail(msg, msglen, r, "key %s has bad public data",
		    h->key_id);
		goto out;
	}
	if ((r = km_ec_point_from_octets(g, pt, ptlen, &point)) != 0) {
		r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "the peer point is not a valid point of the key's curve");
		goto out;
	}
	nidx = kmd_my_indices(st, &k, idx, KM_PROTO_MAX_INDICES);
	if (nidx == 0) {
		r = kmd_fail(msg, msglen, KM_ERR_NOT_FOUND,
		    "%s holds no share of key %s", st->cfg.name, h->key_id);
		goto out;
	}
	for (i = 0; i < nidx; i++) {
		km_ec_share *share = NULL;
		km_ec_partial *part = NULL;
		km_buf sb;

		km_buf_init_secure(&sb);
		km_buf_init(&parts[nparts]);
		r = kmd_share_load(st, h->key_id, k.epoch, idx[i], &sb);
		if (r == 0) {
			r = km_ec_share_decode(g, sb.data, sb.len, pub->n,
			    &share);
		}
		km_buf_free(&sb);
		if (r == 0 && share->index != idx[i]) {
			r = KM_ERR_BAD_FORMAT;
		}
		if (r == 0) {
			r = km_ecdh_partial(g, pub, share, point, &part);
		}
		km_ec_share_free(share);
		if (r == 0 && kmd_fault_corrupt_partials(st)) {
			/* test builds only: a deliberately faulty node */
			r = EC_POINT_dbl(g->group, part->z, part->z,
				NULL) == 1 ?
			    0 :
			    KM_ERR_CRYPTO;
		}
		if (r == 0) {
			r = km_ec_partial_encode(g, part, &parts[nparts]);
		}
		km_ec_partial_free(part);
		if (r != 0) {
			km_buf_free(&parts[nparts]);
			km_log_error_r(r, "KMD-PARTIAL-FAIL",
			    "ecdh partial of %s index %u", h->key_id, idx[i]);
			r = kmd_fail(msg, msglen, r,
			    "cannot compute the partial for index %u", idx[i]);
			goto out;
		}
		blobs[nparts].index = idx[i];
		blobs[nparts].data = parts[nparts].data;
		blobs[nparts].len = parts[nparts].len;
		nparts++;
	}
	r = km_proto_put_blobs(out, blobs, nparts);
out:
	for (i = 0; i < nparts; i++) {
		km_buf_free(&parts[i]);
	}
	EC_POINT_free(point);
	km_catalog_key_free(&k);
	return r;
}
