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

#include <stdbool.h>
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
 * km_evict_refresh_interval:
 * @s: the store
 * @secs: receives the posture policy's proactive-refresh interval in
 *        seconds; 0 when it is off or the catalog has no posture policy
 *
 * Returns: 0, or an error reading or decoding the policy (then *@secs
 * is 0).
 */
int km_evict_refresh_interval(km_store *s, uint32_t *secs);

/**
 * km_evict_reshare_allowed:
 * @s: the store, at the state to judge against
 * @k: the key, as it stands in @s
 * @threshold, @holders, @n: the proposed new sharing
 * @need_policy: whether a refresh needs the posture policy's refresh on
 *               (false only for aborting a pending refresh)
 * @refresh: receives true when allowed as a proactive refresh, false when
 *           as an eviction's re-share (may be NULL)
 * @why, @whylen: one line when refused
 *
 * The re-shares a node may carry out without an admin (catalog state
 * only, so every replica and every party decides alike):
 *   - when @k holds an index of an evicted node: exactly km_evict_plan();
 *   - otherwise, when the posture policy's refresh interval is non-zero:
 *     exactly @k's current holders (same nodes, same indices) and
 *     threshold, i.e. share rotation (docs/resharing.md, "Proactive
 *     refresh").  WARNING: this is what keeps a compromised leader from
 *     moving shares: it can only rotate them, as often as it likes.
 *
 * Returns: 0 when allowed; KM_ERR_AUTH (or a store error) with @why.
 */
int km_evict_reshare_allowed(km_store *s, const km_catalog_key *k,
    uint32_t threshold, const km_catalog_holder *holders, size_t n,
    bool need_policy, bool *refresh, char *why, size_t whylen);

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
 *   - RESHARE_BEGIN of epoch + 1 of an active key that
 *     km_evict_reshare_allowed() allows (an eviction's plan, or a
 *     proactive refresh while the posture policy has it on);
 *   - RESHARE_COMMIT of a pending epoch that is such a re-share (a
 *     refresh: with the policy's refresh still on);
 *   - RESHARE_ABORT of a pending epoch that is such a re-share, or that
 *     has the current holders and threshold whatever the policy and the
 *     evictions say now (aborting keeps the current epoch).
 * Anything else a node signs is refused.
 *
 * Returns: 0 when authorised; KM_ERR_AUTH, KM_ERR_VERIFY, KM_ERR_REVOKED,
 * KM_ERR_BAD_FORMAT with @why otherwise.
 */
int km_evict_authorise(km_store *s, X509_STORE *x509,
    const km_catalog_entry *e, km_identity *signer, char *why, size_t whylen);

#endif /* KM_STORE_EVICT_H */
