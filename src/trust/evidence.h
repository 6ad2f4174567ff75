/*
 * Evidence of a bad partial (issue #7 item 5, DESIGN.md §1 promise 3).
 *
 * A client that catches a wrong partial result keeps the two signed
 * transport envelopes of that exchange: its own request (signed with its
 * client certificate) and the node's reply (signed with the node's
 * certificate, echoing the request's nonce and, inside the reply body,
 * the SHA-256 of the request body).  Together they are non-repudiable:
 * the node said exactly this in answer to exactly that.  If the partial's
 * proof of correctness then fails against the key's public verification
 * data for that input, the node is proven faulty, and any member can check
 * it on its own, with nothing but the mesh CA and its catalog.
 *
 * The proofs: Shoup's proof of correctness for RSA partials (V. Shoup,
 * "Practical Threshold Signatures", EUROCRYPT 2000, §2.3; needs the key's
 * verification keys v, v_i) and the Chaum-Pedersen proof of equal discrete
 * logarithms for ECDH partials (D. Chaum and T. P. Pedersen, "Wallet
 * Databases with Observers", CRYPTO '92).  Both are sound: a node that
 * computed its partial honestly always passes (completeness), so a failing
 * proof is proof of a wrong partial, and a client cannot make an honest
 * node's proof fail (it can neither forge the node's signature nor, thanks
 * to the request digest, pair the node's reply with another request).
 *
 * Pure library code: no daemon state, no network.  The caller supplies the
 * CA store and a lookup of the key's public data and share map at an
 * epoch.  The format is in docs/PROTOCOL.md ("Evidence"), the reasoning
 * in docs/evidence.md.
 */
#ifndef KM_TRUST_EVIDENCE_H
#define KM_TRUST_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "util/buf.h"
#include "util/util.h"

#define KM_EVIDENCE_MAGIC   "KMED"
#define KM_EVIDENCE_VERSION 1
/* Each envelope; an RSA-8192 partial with its proof is about 2.5 KiB. */
#define KM_EVIDENCE_ENV_MAX 65536u
/* The whole blob: magic, version, two strings. */
#define KM_EVIDENCE_MAX (4u + 1u + 2u * (4u + KM_EVIDENCE_ENV_MAX))
/* Holders of one key at one epoch (share indices 1..255). */
#define KM_EVIDENCE_MAX_HOLDERS 255
/* Evidence whose request is older than this is not acted on. */
#define KM_EVIDENCE_MAX_AGE_MS (24u * 3600u * 1000u)
/* Tolerated clock skew for timestamps from the future. */
#define KM_EVIDENCE_SKEW_MS (5u * 60u * 1000u)

/* The catalog's key types (store/catalog.h KM_KEY_*). */
#define KM_EVIDENCE_KEY_RSA     1u
#define KM_EVIDENCE_KEY_EC_P256 2u
#define KM_EVIDENCE_KEY_EC_P384 3u

typedef struct km_evidence_holder {
	uint32_t index;
	char node[KM_NAME_MAX + 1];
} km_evidence_holder;

/* What the lookup tells about a key at an epoch. */
typedef struct km_evidence_key {
	uint32_t key_type; /* KM_EVIDENCE_KEY_* */
	km_buf pub;        /* public data: km_rsa_pub / km_ec_pub encoding */
	size_t nholders;
	km_evidence_holder holders[KM_EVIDENCE_MAX_HOLDERS];
} km_evidence_key;

/**
 * km_evidence_lookup_fn:
 * @arg: the caller's argument
 * @key_id: the key the request names
 * @epoch: the epoch the request names
 * @key: to fill: type, public data (append to @key->pub, initialised by
 *   the caller of the lookup) and the share map of that epoch
 *
 * Returns: 0, or KM_ERR_NOT_FOUND when the key or that epoch is unknown
 * (then the evidence proves nothing here).
 */
typedef int (*km_evidence_lookup_fn)(
    void *arg, const char *key_id, uint32_t epoch, km_evidence_key *key);

/* What checked evidence proves. */
typedef struct km_evidence_result {
	char accused[KM_NAME_MAX + 1];  /* the reply's signer (a node) */
	char reporter[KM_NAME_MAX + 1]; /* the request's signer */
	char key_id[KM_NAME_MAX + 1];
	uint32_t epoch;
	uint32_t index;     /* the first share index whose proof fails */
	uint32_t msg_type;  /* KM_MSG_RSA_PARTIAL or KM_MSG_ECDH_PARTIAL */
	uint64_t req_ts_ms; /* the request's timestamp */
	uint8_t hash[32];   /* SHA-256 of the whole evidence blob */
	char what[160];     /* one line: which check failed */
} km_evidence_result;

/**
 * km_evidence_encode:
 * @out: receives the blob (reset first)
 * @req_env, @req_len: the signed request envelope, as sent
 * @rep_env, @rep_len: the signed reply envelope, as received
 *
 * Returns: 0, KM_ERR_TOO_LARGE (an envelope over KM_EVIDENCE_ENV_MAX),
 * KM_ERR_INVALID_ARG, KM_ERR_ALLOC.
 */
int km_evidence_encode(km_buf *out, const uint8_t *req_env, size_t req_len,
    const uint8_t *rep_env, size_t rep_len);

/**
 * km_evidence_parse:
 * The outer layer only, strictly (magic, version, bounded strings, no
 * trailing bytes); the envelopes point into @ev.
 *
 * Returns: 0, KM_ERR_TOO_LARGE, KM_ERR_BAD_VERSION, KM_ERR_BAD_FORMAT.
 */
int km_evidence_parse(const uint8_t *ev, size_t len, const uint8_t **req_env,
    size_t *req_len, const uint8_t **rep_env, size_t *rep_len);

/**
 * km_evidence_verify:
 * @ev, @len: the evidence blob
 * @store: the mesh CA store with the current CRL (km_pki_store_load)
 * @now_ms: the current time, milliseconds since the epoch
 * @lookup, @arg: the key's public data and share map at an epoch
 * @res: receives what the evidence proves (only on success)
 * @why, @whylen: receives one line saying why the evidence proves nothing
 *   (on failure; may be NULL)
 *
 * Checks, in this order: the blob decodes; the request envelope is a
 * request signed by a client or admin certificate of the mesh CA, the
 * reply envelope a reply signed by a node certificate (chains and CRL
 * through @store); the nonces are equal; the request is neither from the
 * future nor older than KM_EVIDENCE_MAX_AGE_MS; the request decodes as an
 * rsa-partial or ecdh-partial request (key id, epoch, input x or peer
 * point); the reply decodes strictly, is a success of the same type and
 * carries the SHA-256 of that request body; every share index in the
 * reply belongs to the accused node in the catalog at that epoch; then
 * each partial's proof is checked against the key's verification data for
 * that input, and at least one must FAIL.
 *
 * Returns: 0 when the evidence proves the accused node returned a wrong
 * partial; otherwise a KM_ERR_* with @why: KM_ERR_BAD_FORMAT /
 * KM_ERR_BAD_VERSION / KM_ERR_TOO_LARGE (garbage), KM_ERR_AUTH /
 * KM_ERR_REVOKED / KM_ERR_VERIFY (an envelope's certificate or signature),
 * KM_ERR_STALE (too old, or from the future), KM_ERR_NOT_FOUND (key or
 * epoch unknown here), KM_ERR_RANGE (an index the node does not hold),
 * KM_ERR_NOT_SUPPORTED (no proof to check: an RSA key without
 * verification keys, or a partial sent without its proof),
 * KM_ERR_INVALID_ARG (nothing wrong: every proof holds, or the pair does
 * not belong together), KM_ERR_ALLOC / KM_ERR_CRYPTO.
 */
int km_evidence_verify(const uint8_t *ev, size_t len, X509_STORE *store,
    uint64_t now_ms, km_evidence_lookup_fn lookup, void *arg,
    km_evidence_result *res, char *why, size_t whylen);

/* The context string of the dedupe key (km_evidence_dedupe_key). */
#define KM_EVIDENCE_DEDUPE_CTX "keymesh-evidence-dedupe-v1"

/**
 * km_evidence_dedupe_key:
 * @ev, @len: an evidence blob (km_evidence_parse must accept it)
 * @accused: the node it accuses (km_evidence_result.accused)
 * @out: receives SHA-256(string KM_EVIDENCE_DEDUPE_CTX || string accused
 *       || SHA-256(reply envelope))
 *
 * What one bad reply counts as: the reply envelope is the accused's,
 * signed by it, so the reporter cannot vary it; the request envelope and
 * the outer blob it can re-sign at will (a fresh signature, the same
 * bad reply).  Deduplicate and score evidence by this key, never by the
 * hash of the whole blob (docs/evidence.md).
 *
 * Returns: 0, a km_evidence_parse() error, KM_ERR_INVALID_ARG,
 * KM_ERR_CRYPTO.
 */
int km_evidence_dedupe_key(
    const uint8_t *ev, size_t len, const char *accused, uint8_t out[32]);

#endif /* KM_TRUST_EVIDENCE_H */
