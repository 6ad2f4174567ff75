/*
 * A client's signed view of the mesh's keys.
 *
 * The client fetches the catalog entries from any node and checks each
 * one's signature itself (the mesh CA and CRL from its config), then
 * replays them in order into an in-memory key and object table, exactly as
 * every daemon's state machine does.  No node can show a client a key or a
 * share map the admin did not sign; objects (certificates, public keys,
 * data) may also be signed by an enrolled client (docs/storage.md §5).
 */
#ifndef KM_MESH_VIEW_H
#define KM_MESH_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/client.h"
#include "store/catalog.h"
#include "trust/graph.h"

/* A live key as the view knows it. */
typedef struct km_view_key {
	char key_id[KM_NAME_MAX + 1];
	char label[KM_NAME_MAX + 1];
	uint32_t key_type; /* KM_KEY_RSA, KM_KEY_EC_P256, KM_KEY_EC_P384 */
	uint32_t bits;
	uint32_t threshold;
	uint32_t epoch;
	uint32_t state; /* KM_KEY_PENDING, KM_KEY_ACTIVE, KM_KEY_RESHARING */
	size_t nholders;
	km_catalog_holder holders[KM_CATALOG_MAX_HOLDERS];
	uint8_t *public_data; /* km_rsa_pub / km_ec_pub encoding */
	size_t public_len;
	uint8_t *policy;
	size_t policy_len;
	uint64_t updated_seq;
	/* While RESHARING: the pending epoch from RESHARE_BEGIN, which
	 * RESHARE_COMMIT makes current (RESHARE_ABORT drops it). */
	uint32_t next_epoch;
	uint32_t next_threshold;
	size_t next_nholders;
	km_catalog_holder next_holders[KM_CATALOG_MAX_HOLDERS];
	uint8_t *next_public_data;
	size_t next_public_len;
	/* its RESHARE_BEGIN carried the new holders' acks (checked) */
	bool next_acked;
	/* KEY_ATTRS: the application's CKA_ID, when one was set */
	bool has_app_id;
	uint8_t *app_id;
	size_t app_id_len;
} km_view_key;

/* A live object (OBJECT_PUT) as the view knows it. */
typedef struct km_view_object {
	char object_id[KM_NAME_MAX + 1];
	char partition[KM_NAME_MAX + 1];
	uint32_t obj_class; /* km_object_class */
	uint32_t flags;     /* KM_OBJ_FLAG_* */
	bool deleted;
	uint8_t *app_id;
	size_t app_id_len;
	uint8_t *label;
	size_t label_len;
	uint8_t *value;
	size_t value_len;
	uint8_t *attrs; /* km_catalog_attrs_encode() */
	size_t attrs_len;
	uint64_t updated_seq;
} km_view_object;

typedef struct km_view km_view;

/* The coordinator's last verdict about a node (KM_CAT_TRUST_VERDICT). */
typedef struct km_view_verdict {
	char node[KM_NAME_MAX + 1];
	bool quarantined; /* do not ask it for partials */
	uint32_t score;   /* 0..100 */
	char reason[KM_TRUST_REASON_MAX + 1];
} km_view_verdict;

/** km_view_verdict_find: the verdict about @node, or NULL (none: up). */
const km_view_verdict *km_view_verdict_find(
    const km_view *v, const char *node);

/**
 * km_view_verdict_allowed:
 * @signer: the verified signer of a TRUST_VERDICT entry
 * @payload, @len: the entry's payload (km_trust_verdict_encode)
 *
 * The daemons' rule (daemon/trust.c kmd_trust_check_verdict): a member
 * node signs, as the verdict's coordinator, and never lifts its own
 * quarantine.  A payload that does not decode is allowed (the daemons
 * consume it without effect).
 *
 * Returns: 0, KM_ERR_AUTH.
 */
int km_view_verdict_allowed(
    const km_identity *signer, const uint8_t *payload, size_t len);

/**
 * km_view_evict_consistent:
 * @p: a decoded EVICT payload
 * @signer: the name of the node that signed the entry
 *
 * What km_evict_authorise checks of a node-signed EVICT that a view can
 * check without the member table: at least two votes, every statement
 * decodes and names @p's node, certificate hash and one evidence hash,
 * and the accused did not sign.  (Vote signatures: the caller.)
 *
 * Returns: 0, KM_ERR_AUTH, KM_ERR_BAD_FORMAT.
 */
int km_view_evict_consistent(const km_catalog_payload *p, const char *signer);

/**
 * km_view_reshare_allowed:
 * @k: the key as the view holds it (NULL: unknown, refused)
 * @evicted, @nev: the evicted nodes
 * @p: a decoded RESHARE_BEGIN, RESHARE_COMMIT or RESHARE_ABORT payload
 *     signed by a node
 *
 * The daemons' rule (store/evict.h km_evict_authorise): a node may begin
 * only the re-share an eviction calls for (km_evict_plan: same threshold,
 * epoch + 1, the holders without the evicted ones), or, when none does, a
 * proactive refresh (the very same holders and threshold; whether the
 * posture policy has refresh on is the daemons' check only), and commit
 * or abort only a pending epoch that is exactly such a re-share.  The
 * public key and the new holders' acks: km_view_node_entry.
 *
 * Returns: 0, KM_ERR_AUTH, KM_ERR_ALLOC.
 */
int km_view_reshare_allowed(const km_view_key *k,
    const char (*evicted)[KM_NAME_MAX + 1], size_t nev,
    const km_catalog_payload *p);

/** km_view_new: an empty view checking signatures against @m's CA. */
int km_view_new(km_mesh *m, km_view **out);
void km_view_free(km_view *v);

/**
 * km_view_refresh:
 * Fetches entries after the last one applied from the first node that
 * answers (in config order, starting from a rotating position) and
 * applies them.  Entries whose signature fails are refused and the
 * refresh stops there (KM_ERR_VERIFY).
 * @changed: set true when any entry was applied (may be NULL).
 */
int km_view_refresh(km_view *v, int timeout_ms, bool *changed);

/** km_view_seq: the last applied catalog sequence number. */
uint64_t km_view_seq(const km_view *v);

/** km_view_count / km_view_at: the live keys (not destroyed). */
size_t km_view_count(const km_view *v);
const km_view_key *km_view_at(const km_view *v, size_t i);

/** km_view_find: by key id, or NULL. */
const km_view_key *km_view_find(const km_view *v, const char *key_id);
/** km_view_find_label: by label, or NULL. */
const km_view_key *km_view_find_label(const km_view *v, const char *label);

/** km_view_evicted: whether the catalog evicted @node (EVICT). */
bool km_view_evicted(const km_view *v, const char *node);
/** km_view_evicted_count / km_view_evicted_at: the evicted nodes. */
size_t km_view_evicted_count(const km_view *v);
const char *km_view_evicted_at(const km_view *v, size_t i);

/** km_view_object_count / km_view_object_at: the live objects. */
size_t km_view_object_count(const km_view *v);
const km_view_object *km_view_object_at(const km_view *v, size_t i);

#endif /* KM_MESH_VIEW_H */
