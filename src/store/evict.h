/*
 * Eviction of a member node (issue #7 items 1 and 5, docs/eviction.md):
 * the signed vote statement, the number of votes an automated eviction
 * needs, the authority check of node-signed catalog entries (EVICT with
 * votes, and the re-share entries an eviction allows), and the re-share
 * an eviction calls for.
 *
 * Everything here reads only the catalog and the entry, so every replica
 * decides alike; the one exception is the certificate check of each
 * signer (chain, dates and CRL against this node's CA store), which is
 * the same check and the same caveat as for admin entries
 * (docs/raft.md, "What remains" 3).
 */
#ifndef KM_STORE_EVICT_H
#define KM_STORE_EVICT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "store/catalog.h"
#include "store/store.h"
#include "util/buf.h"

/* The context string that starts every vote statement. */
#define KM_EVICT_VOTE_CTX "keymesh-evict-vote-v1"

/* What a member signs when it votes to evict a node. */
typedef struct km_evict_stmt {
	char accused[KM_NAME_MAX + 1];
	uint8_t cert_sha256[32];     /* the accused's certificate, or zeros */
	uint8_t evidence_sha256[32]; /* the evidence it checked itself */
	uint64_t time_ms;            /* when it voted (for the record) */
} km_evict_stmt;

/**
 * km_evict_stmt_encode:
 * "string ctx (KM_EVICT_VOTE_CTX), string accused, string cert_sha256
 * (32 bytes), string evidence_sha256 (32 bytes), uint64 time_ms".
 *
 * Returns: 0, KM_ERR_INVALID_ARG (bad name), KM_ERR_ALLOC.
 */
int km_evict_stmt_encode(const km_evict_stmt *v, km_buf *out);

/**
 * km_evict_stmt_decode: the strict inverse (no trailing bytes, the exact
 * context string, a valid name, 32-byte hashes).
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_TOO_LARGE.
 */
int km_evict_stmt_decode(const uint8_t *p, size_t len, km_evict_stmt *v);

/**
 * km_evict_vote_sign:
 * @key: this node's identity key
 * @cert_der, @cert_len: this node's certificate (DER)
 * @v: the statement
 * @out: receives the vote (km_catalog_votes_free or km_evict_vote_clear)
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_evict_vote_sign(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len,
    const km_evict_stmt *v, km_catalog_vote *out);

/** km_evict_vote_clear: frees one vote's buffers and zeroes it. */
void km_evict_vote_clear(km_catalog_vote *v);

/**
 * km_evict_quorum:
 * @s: the store
 * @k: receives the number of votes an automated eviction needs:
 *     the larger of the largest threshold of a live key and a majority
 *     of the current member nodes (km_catalog_mesh_nodes), at least 2
 * @members: receives the number of current member nodes (may be NULL)
 *
 * Catalog state only.
 */
int km_evict_quorum(km_store *s, uint32_t *k, uint32_t *members);

/**
 * km_evict_plan:
 * @k: a key (its current holders)
 * @evicted, @nev: the evicted nodes
 * @out: receives the new holders: the current ones without any index of
 *       an evicted node, in the old index order, numbered 1..n again
 *       (a node keeps as many indices as it had: weighted shares follow)
 * @nout: receives their number
 *
 * Returns: 0 when the key holds an index of an evicted node (a re-share
 * is due), KM_ERR_NOT_FOUND when it does not, KM_ERR_QUORUM when fewer
 * than its threshold would remain (*@nout says how many).
 */
int km_evict_plan(const km_catalog_key *k, const km_catalog_evicted *evicted,
    size_t nev, km_catalog_holder out[KM_CATALOG_MAX_HOLDERS], size_t *nout);

/**
 * km_evict_authorise:
 * @s: the store, at the state just before @e
 * @x509: the mesh CA store
 * @e: an entry signed by a node (its signer is a node certificate)
 * @signer: receives the signer's identity (may be NULL)
 * @why, @whylen: one line when refused
 *
 * The authority of an entry a node signed (docs/eviction.md):
 *   - EVICT with at least km_evict_quorum() valid votes of distinct
 *     current member nodes, none of them the accused and none the
 *     signer's stand-in: each vote's certificate is a valid node
 *     certificate of the mesh CA, its statement names the entry's node,
 *     certificate hash and one evidence hash, and its signature holds;
 *     the signer itself is a current member and not the accused;
 *   - RESHARE_BEGIN that re-shares a key exactly as km_evict_plan() says
 *     (same threshold, epoch + 1);
 *   - RESHARE_COMMIT / RESHARE_ABORT of a pending epoch that is exactly
 *     such a re-share.
 * Anything else a node signs is refused.
 *
 * Returns: 0 when authorised; KM_ERR_AUTH, KM_ERR_VERIFY, KM_ERR_REVOKED,
 * KM_ERR_BAD_FORMAT with @why otherwise.
 */
int km_evict_authorise(km_store *s, X509_STORE *x509,
    const km_catalog_entry *e, km_identity *signer, char *why, size_t whylen);

#endif /* KM_STORE_EVICT_H */
