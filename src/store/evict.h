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

/* The context string that starts every re-share ack statement. */
#define KM_RESHARE_ACK_CTX "keymesh-reshare-ack-v1"

/*
 * What a new holder signs once it has computed and stored its new
 * share(s) of a re-share: the new public data it computed itself
 * (docs/resharing.md, "Authority").  A node-signed RESHARE_BEGIN carries
 * one such ack from every new holder node, so no single node, and no
 * leader alone, can set a key's public data or verification keys.
 */
typedef struct km_reshare_ack {
	char key_id[KM_NAME_MAX + 1];
	uint32_t epoch;            /* the new epoch */
	uint8_t public_sha256[32]; /* SHA-256 of the new public data */
} km_reshare_ack;

/**
 * km_reshare_ack_encode:
 * "string ctx (KM_RESHARE_ACK_CTX), string key_id, uint32 epoch,
 * string public_sha256 (32 bytes)".
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_ALLOC.
 */
int km_reshare_ack_encode(const km_reshare_ack *a, km_buf *out);

/**
 * km_reshare_ack_decode: the strict inverse (no trailing bytes, the exact
 * context string, a valid key id, epoch > 0, a 32-byte hash).
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_TOO_LARGE.
 */
int km_reshare_ack_decode(const uint8_t *p, size_t len, km_reshare_ack *a);

/**
 * km_reshare_ack_sign:
 * @key, @cert_der, @cert_len: this node's identity key and certificate
 * @key_id, @epoch: the key and its new epoch
 * @pub, @publen: the new public data this node computed itself
 * @out: receives the ack as a km_catalog_vote (cert, statement,
 *       signature; km_evict_vote_clear)
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_reshare_ack_sign(EVP_PKEY *key, const uint8_t *cert_der,
    size_t cert_len, const char *key_id, uint32_t epoch, const uint8_t *pub,
    size_t publen, km_catalog_vote *out);

/**
 * km_reshare_acks_verify:
 * @x509: the mesh CA store
 * @replay: check chains without CRL and dates (a client's view replaying
 *          old entries) rather than fully (the daemons at apply)
 * @p: a RESHARE_BEGIN payload; its votes are the acks
 * @signers: receives the distinct signers, one per distinct new holder
 *           node (KM_CATALOG_VOTES_MAX entries; may be NULL)
 * @nsigners: receives their number (may be NULL)
 * @why, @whylen: one line when refused
 *
 * Every ack is signed by a valid node certificate of the mesh CA, names
 * @p's key, epoch and the SHA-256 of @p's public data; the signers are
 * distinct and are exactly @p's new holder nodes (each one, no other).
 * No catalog state: the caller checks the signers' standing.
 *
 * Returns: 0, or KM_ERR_AUTH / KM_ERR_VERIFY / KM_ERR_BAD_FORMAT / a
 * certificate error with @why.
 */
int km_reshare_acks_verify(X509_STORE *x509, bool replay,
    const km_catalog_payload *p, km_identity *signers, size_t *nsigners,
    char *why, size_t whylen);

/**
 * km_reshare_pub_same:
 * @key_type: the key's type (km_key_type)
 * @cur, @curlen: the key's current public data
 * @next, @nextlen: a re-share's new public data
 * @threshold, @n: the re-share's threshold and number of indices
 * @why, @whylen: one line when refused
 *
 * 0 when @next decodes strictly (crypto/rsa.h km_rsa_pub_decode,
 * crypto/shamir.h km_ec_pub_decode) to the same public key as @cur (RSA:
 * N and e; EC: the point Y) with @threshold and @n; a re-share never
 * changes the public key (DESIGN.md §3 "Re-sharing").
 *
 * Returns: 0, KM_ERR_AUTH, KM_ERR_NOT_SUPPORTED (a type that cannot be
 * re-shared), or a decode error with @why.
 */
int km_reshare_pub_same(uint32_t key_type, const uint8_t *cur, size_t curlen,
    const uint8_t *next, size_t nextlen, uint32_t threshold, size_t n,
    char *why, size_t whylen);

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
 *     proactive refresh while the posture policy has it on), whose new
 *     public data holds the key's current public key
 *     (km_reshare_pub_same) and which carries the acks of exactly its
 *     new holder nodes (km_reshare_acks_verify), none of them evicted
 *     and each a current member;
 *   - RESHARE_COMMIT of a pending epoch that is such a re-share (a
 *     refresh: with the policy's refresh still on) and was begun with
 *     acks (km_catalog_key next_acked);
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

/**
 * km_evict_verdict_signer:
 * @s: the store, at the state just before the verdict
 * @node: the name in the verdict's signing node certificate
 * @why, @whylen: one line when refused
 *
 * Whether a TRUST_VERDICT signed by @node may apply (docs/trust.md,
 * "Verdicts"): never from an evicted node; and, once the catalog names
 * any member node (km_catalog_mesh_nodes: the members table and the
 * holders of live keys), only from one of them.  A catalog that names
 * none (a mesh with no key yet) has no shares to protect: then any node
 * that is not evicted.  Catalog state only, so every replica decides
 * alike.  Who was leader is not in the catalog: the daemons only ever
 * propose verdicts as the leader (daemon/catalog.c), and refuse them
 * through catalog-append.
 *
 * Returns: 0; KM_ERR_REVOKED (evicted), KM_ERR_AUTH (not a member) or a
 * store error, with @why.
 */
int km_evict_verdict_signer(
    km_store *s, const char *node, char *why, size_t whylen);

#endif /* KM_STORE_EVICT_H */
