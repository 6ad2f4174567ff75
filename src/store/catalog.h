/*
 * The key catalog: a deterministic state machine over ordered, signed
 * entries.
 *
 * Every change to the mesh's keys, members and policies is an entry
 * (sequence number, type, payload, signer, signature).  km_catalog_apply()
 * takes entries strictly in sequence, has the caller check the signature,
 * and applies each one in the transaction that records its sequence number,
 * so the applied state always matches the last applied sequence number.
 * Apply reads no clock and draws no randomness: two stores fed the same
 * entries reach the same state, which is what lets a later replicated log
 * (Raft) feed the same entries to every node.
 *
 * Entry and payload encodings use the km_buf terms uint32, uint64 and
 * string (uint32 length, bytes); they are specified in docs/storage.md.
 * Decoding is strict: unknown types, bad lengths, trailing bytes, invalid
 * names or inconsistent holder maps are refused.
 */
#ifndef KM_STORE_CATALOG_H
#define KM_STORE_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/util.h"

/* Limits enforced by the decoders (PUBLIC: public key and verification
 * data of a key). */
#define KM_CATALOG_MAX_HOLDERS      64
#define KM_CATALOG_PUBLIC_MAX       (64u * 1024)
#define KM_CATALOG_POLICY_MAX       (16u * 1024)
#define KM_CATALOG_CERT_MAX         (16u * 1024)
#define KM_CATALOG_SIG_MAX          1024
#define KM_CATALOG_ENTRY_MAX        (256u * 1024)
#define KM_CATALOG_POLICY_MAX_ITEMS 64
/* Objects (OBJECT_PUT): the value, the encoded attribute list, CKA_ID and
 * CKA_LABEL (also the CKA_ID of KEY_ATTRS). */
#define KM_CATALOG_VALUE_MAX       (64u * 1024)
#define KM_CATALOG_ATTRS_MAX       (64u * 1024)
#define KM_CATALOG_ATTRS_MAX_ITEMS 64
#define KM_CATALOG_APP_ID_MAX      255
#define KM_CATALOG_OBJ_LABEL_MAX   255

typedef enum km_catalog_type {
	KM_CAT_KEY_CREATE = 1,     /* a key and its first sharing, pending */
	KM_CAT_KEY_ACTIVATE = 2,   /* every holder stored its share */
	KM_CAT_KEY_DESTROY = 3,    /* the key and all its shares go */
	KM_CAT_RESHARE_BEGIN = 4,  /* a new epoch's sharing is being dealt */
	KM_CAT_RESHARE_COMMIT = 5, /* the new epoch replaces the old */
	KM_CAT_RESHARE_ABORT = 6,  /* the new epoch is dropped */
	KM_CAT_MEMBER_ADD = 7,
	KM_CAT_MEMBER_REMOVE = 8,
	KM_CAT_POLICY_SET = 9,
	KM_CAT_OBJECT_PUT = 10,    /* a certificate, public key or data */
	KM_CAT_OBJECT_DELETE = 11, /* the object goes (a tombstone stays) */
	KM_CAT_KEY_ATTRS = 12,     /* a key's application CKA_ID */
	/* the posture policy, whole (an admin; src/trust/policy.h) */
	KM_CAT_POSTURE_SET = 13,
	/* the coordinator's verdict on one node (a member node) */
	KM_CAT_TRUST_VERDICT = 14,
	KM_CAT_EVICT = 15,         /* a node is evicted (docs/eviction.md) */
} km_catalog_type;

/* EVICT limits: reason text, votes per entry, one vote statement. */
#define KM_CATALOG_REASON_MAX   200
#define KM_CATALOG_VOTES_MAX    KM_CATALOG_MAX_HOLDERS
#define KM_CATALOG_VOTE_STMT_MAX 512

/* One member's signed eviction vote, as carried in an EVICT entry: the
 * voter's node certificate (DER), the statement it signed
 * (km_evict_stmt_encode, store/evict.h) and its ECDSA signature. */
typedef struct km_catalog_vote {
	uint8_t *cert;
	size_t cert_len;
	uint8_t *stmt;
	size_t stmt_len;
	uint8_t *sig;
	size_t sig_len;
} km_catalog_vote;

/* An evicted node as the catalog holds it (km_catalog_evicted_list). */
typedef struct km_catalog_evicted {
	char node[KM_NAME_MAX + 1];
	uint8_t cert_sha256[32]; /* all zero: not named (admin eviction) */
	uint8_t evidence_sha256[32]; /* all zero: an admin's decision */
	char reason[KM_CATALOG_REASON_MAX + 1];
	uint32_t nvotes; /* 0: an admin's decision */
	uint64_t seq;    /* the EVICT entry */
} km_catalog_evicted;

/* What an object is (OBJECT_PUT). */
typedef enum km_object_class {
	KM_OBJ_CERTIFICATE = 1, /* value: the certificate DER */
	KM_OBJ_PUBLIC_KEY = 2,  /* value: the SubjectPublicKeyInfo DER */
	KM_OBJ_DATA = 3,        /* value: CKA_VALUE */
} km_object_class;

/* Object flags (OBJECT_PUT). */
#define KM_OBJ_FLAG_PRIVATE 0x1u /* CKA_PRIVATE: shown after login */
#define KM_OBJ_FLAGS_ALL    KM_OBJ_FLAG_PRIVATE

typedef enum km_object_state {
	KM_OBJ_LIVE = 1,
	KM_OBJ_DELETED = 2, /* tombstone: the id is never reused */
} km_object_state;

typedef enum km_key_type {
	KM_KEY_RSA = 1,
	KM_KEY_EC_P256 = 2,
	KM_KEY_EC_P384 = 3,
	KM_KEY_ED25519 = 4,
} km_key_type;

typedef enum km_key_state {
	KM_KEY_PENDING = 1,   /* created, shares being installed */
	KM_KEY_ACTIVE = 2,    /* usable */
	KM_KEY_RESHARING = 3, /* usable under its epoch; a new one pending */
	KM_KEY_DESTROYED = 4, /* tombstone; its label may be reused */
} km_key_state;

/* A holder: one share index held by one node (a node may hold several). */
typedef struct km_catalog_holder {
	uint32_t index;
	char node[KM_NAME_MAX + 1];
} km_catalog_holder;

/* A signed catalog entry.  The buffers are owned by whoever built it. */
typedef struct km_catalog_entry {
	uint64_t seq;
	uint32_t type; /* km_catalog_type */
	uint8_t *payload;
	size_t payload_len;
	uint8_t *signer; /* signer's certificate DER (or identity) */
	size_t signer_len;
	uint8_t *sig;
	size_t sig_len;
} km_catalog_entry;

/* Decoded payloads.  Strings are NUL-terminated copies; byte fields are
 * malloc'd; km_catalog_payload_free() releases them. */
typedef struct km_catalog_payload {
	uint32_t type;
	char key_id[KM_NAME_MAX + 1]; /* key entries, POLICY_SET ("" = mesh) */
	char label[KM_NAME_MAX + 1];  /* KEY_CREATE */
	uint32_t key_type;            /* KEY_CREATE */
	uint32_t bits;                /* KEY_CREATE */
	uint32_t threshold; /* CREATE, RESHARE_BEGIN: shares needed */
	uint32_t epoch;     /* CREATE, ACTIVATE, RESHARE_* */
	size_t nholders;    /* CREATE, RESHARE_BEGIN */
	km_catalog_holder *holders;
	uint8_t *public_data; /* CREATE, RESHARE_BEGIN: public key and */
	size_t public_len;    /* verification data, opaque here */
	uint8_t *policy;      /* CREATE, POLICY_SET (km_catalog_policy) */
	size_t policy_len;
	char node[KM_NAME_MAX + 1]; /* MEMBER_ADD, MEMBER_REMOVE */
	uint32_t role;              /* MEMBER_ADD: pki.h km_role */
	uint8_t *cert;              /* MEMBER_ADD: certificate DER */
	size_t cert_len;
	char object_id[KM_NAME_MAX + 1]; /* OBJECT_PUT, OBJECT_DELETE */
	char partition[KM_NAME_MAX + 1]; /* OBJECT_PUT */
	uint32_t obj_class;              /* OBJECT_PUT: km_object_class */
	uint32_t obj_flags;              /* OBJECT_PUT: KM_OBJ_FLAG_* */
	uint8_t *app_id;  /* OBJECT_PUT, KEY_ATTRS: CKA_ID (may be empty) */
	size_t app_id_len;
	uint8_t *obj_label; /* OBJECT_PUT: CKA_LABEL (may be empty) */
	size_t obj_label_len;
	uint8_t *value; /* OBJECT_PUT: see km_object_class */
	size_t value_len;
	uint8_t *attrs; /* OBJECT_PUT: km_catalog_attrs_encode() */
	size_t attrs_len;
	/* POSTURE_SET, TRUST_VERDICT: the whole payload, as encoded by
	 * km_posture_encode() / km_trust_verdict_encode(); for a verdict,
	 * @node is the node it is about */
	uint8_t *trust;
	size_t trust_len;
	/* EVICT: node is the accused; votes may be empty (admin).
	 * RESHARE_BEGIN: votes are the new holders' acks (store/evict.h
	 * km_reshare_ack), empty from an admin. */
	uint8_t cert_sha256[32];
	char reason[KM_CATALOG_REASON_MAX + 1];
	size_t nvotes;
	km_catalog_vote *votes;
} km_catalog_payload;

/* An object as the catalog holds it (km_catalog_object_get). */
typedef struct km_catalog_object {
	char object_id[KM_NAME_MAX + 1];
	char partition[KM_NAME_MAX + 1];
	uint32_t obj_class;
	uint32_t flags;
	km_object_state state;
	uint8_t *app_id;
	size_t app_id_len;
	uint8_t *label;
	size_t label_len;
	uint8_t *value;
	size_t value_len;
	uint8_t *attrs;
	size_t attrs_len;
	uint64_t created_seq;
	uint64_t updated_seq;
} km_catalog_object;

/* One attribute of an object's attribute list; @value points into the
 * buffer it was decoded from. */
typedef struct km_catalog_attr {
	uint32_t type; /* CKA_* */
	const uint8_t *value;
	size_t len;
} km_catalog_attr;

/* A key as the catalog holds it (km_catalog_key_get). */
typedef struct km_catalog_key {
	char key_id[KM_NAME_MAX + 1];
	char label[KM_NAME_MAX + 1];
	uint32_t key_type;
	uint32_t bits;
	uint32_t threshold;
	uint32_t epoch;
	km_key_state state;
	size_t nholders; /* holders of @epoch, by index */
	km_catalog_holder *holders;
	uint8_t *public_data;
	size_t public_len;
	uint8_t *policy;
	size_t policy_len;
	/* While RESHARING: the pending epoch. */
	uint32_t next_epoch;
	uint32_t next_threshold;
	/* its RESHARE_BEGIN carried every new holder's signed ack of the
	 * new public data (docs/resharing.md, "Authority") */
	bool next_acked;
	size_t next_nholders;
	km_catalog_holder *next_holders;
	uint64_t created_seq;
	uint64_t updated_seq;
	uint8_t *app_id; /* KEY_ATTRS: CKA_ID; NULL when never set */
	size_t app_id_len;
} km_catalog_key;

/* A key policy: empty lists mean "no restriction" on that axis. */
typedef struct km_catalog_policy {
	size_t nmechs;
	uint32_t *mechs; /* allowed mechanism numbers (CKM_* values) */
	size_t nclients;
	char **clients; /* allowed client identity names */
} km_catalog_policy;

/**
 * km_catalog_verify_fn:
 * @arg: the caller's argument
 * @entry: the entry; its signer and sig fields are what to check
 * @tbs: the bytes the signature covers (km_catalog_entry_tbs)
 * @tbs_len: their length
 *
 * Checks that @entry->sig is a valid signature over @tbs by @entry->signer
 * and that this signer may issue an entry of this type.  The PKI lives
 * outside this library; the store only calls back.
 *
 * Returns: 0 when valid, otherwise a negative KM_ERR_* (KM_ERR_VERIFY).
 */
typedef int (*km_catalog_verify_fn)(void *arg, const km_catalog_entry *entry,
    const uint8_t *tbs, size_t tbs_len);

/**
 * km_catalog_entry_tbs:
 * @e: the entry (seq, type and payload are used)
 * @out: an initialised km_buf that receives the bytes to be signed
 *
 * The signature covers a context string, the sequence number, the type and
 * the payload, so an entry cannot be replayed at another position or
 * retyped.
 */
int km_catalog_entry_tbs(const km_catalog_entry *e, km_buf *out);

/** km_catalog_entry_encode: the whole entry, for a log or the wire. */
int km_catalog_entry_encode(const km_catalog_entry *e, km_buf *out);

/**
 * km_catalog_entry_decode:
 * @data, @len: an encoded entry
 * @e: receives the entry with malloc'd fields (km_catalog_entry_clear)
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_BAD_VERSION, KM_ERR_TOO_LARGE.
 */
int km_catalog_entry_decode(
    const uint8_t *data, size_t len, km_catalog_entry *e);

/** km_catalog_entry_clear: frees an entry's buffers and zeroes it. */
void km_catalog_entry_clear(km_catalog_entry *e);

/**
 * km_catalog_payload_encode:
 * @p: a payload; p->type selects the fields that are encoded
 * @out: an initialised km_buf
 *
 * Validates what it encodes as strictly as the decoder does.
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_ALLOC, KM_ERR_TOO_LARGE.
 */
int km_catalog_payload_encode(const km_catalog_payload *p, km_buf *out);

/**
 * km_catalog_payload_decode:
 * @type: the entry type
 * @data, @len: the payload bytes
 * @p: receives the decoded payload (km_catalog_payload_free)
 *
 * Returns: 0, KM_ERR_BAD_FORMAT (unknown type, bad lengths, trailing
 * bytes, invalid names, duplicate or zero indices, threshold out of range),
 * KM_ERR_TOO_LARGE, KM_ERR_ALLOC.
 */
int km_catalog_payload_decode(
    uint32_t type, const uint8_t *data, size_t len, km_catalog_payload *p);

/** km_catalog_payload_free: frees the payload's buffers and zeroes it. */
void km_catalog_payload_free(km_catalog_payload *p);

/**
 * km_catalog_apply:
 * @s: the store
 * @e: the next entry
 * @verify: signature check (required)
 * @arg: its argument
 * @result: receives the entry's deterministic outcome (may be NULL)
 *
 * Refuses, without changing anything, an entry whose sequence number is
 * not the last applied + 1 (a gap or a replay: KM_ERR_STALE), whose
 * signature @verify rejects, or that could not be applied for a reason
 * that is local to this node (I/O, memory).  Otherwise the entry is
 * consumed: in one transaction its effect is applied, the entry is kept in
 * the catalog log with its outcome, and the last applied sequence number
 * advances.  An entry that is well signed but not applicable (a malformed
 * payload, a key that does not exist, a wrong state) is consumed with no
 * effect and *@result set to the reason; every replica rejects it the same
 * way, so the replicas stay in step.
 *
 * Applying also keeps this node's shares in line with the catalog, in the
 * same transaction: KEY_ACTIVATE and RESHARE_COMMIT commit the prepared
 * shares of the epoch that becomes current; RESHARE_COMMIT deletes the
 * shares of older epochs; RESHARE_ABORT deletes the pending epoch's
 * prepared shares; KEY_DESTROY deletes all of the key's shares.
 *
 * Returns: 0 when consumed (then see *@result), KM_ERR_STALE, KM_ERR_VERIFY
 * (or what @verify returned), KM_ERR_INVALID_ARG, KM_ERR_IO, KM_ERR_ALLOC.
 */
int km_catalog_apply(km_store *s, const km_catalog_entry *e,
    km_catalog_verify_fn verify, void *arg, int *result);

/**
 * km_catalog_last_seq:
 * @s: the store
 * @seq: receives the last applied sequence number (0 when none)
 * @head: if not NULL, receives the 32-byte SHA-256 chain over every
 *        applied entry, equal on replicas that applied the same entries
 */
int km_catalog_last_seq(km_store *s, uint64_t *seq, uint8_t head[32]);

/**
 * km_catalog_entry_get:
 * @s: the store
 * @seq: an applied entry's sequence number
 * @e: receives a copy (km_catalog_entry_clear)
 * @result: receives its recorded outcome (may be NULL)
 *
 * For replaying the applied log to another replica.
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_entry_get(
    km_store *s, uint64_t seq, km_catalog_entry *e, int *result);

/**
 * km_catalog_key_get:
 * @s: the store
 * @key_id: the key's id
 * @k: receives the key (km_catalog_key_free); destroyed keys are returned
 *     too, with state KM_KEY_DESTROYED
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_key_get(km_store *s, const char *key_id, km_catalog_key *k);

/** km_catalog_key_get_by_label: as km_catalog_key_get, for a live key. */
int km_catalog_key_get_by_label(
    km_store *s, const char *label, km_catalog_key *k);

/**
 * km_catalog_key_list:
 * @s: the store
 * @keys: receives a malloc'd array of keys that are not destroyed, by id
 *        (km_catalog_key_list_free)
 * @n: receives its length
 */
int km_catalog_key_list(km_store *s, km_catalog_key **keys, size_t *n);

void km_catalog_key_free(km_catalog_key *k);
void km_catalog_key_list_free(km_catalog_key *keys, size_t n);

/**
 * km_catalog_member_get:
 * @s: the store
 * @node: the member's name
 * @role: receives its role (may be NULL)
 * @cert, @cert_len: receive a malloc'd copy of its certificate (may be NULL)
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_member_get(km_store *s, const char *node, uint32_t *role,
    uint8_t **cert, size_t *cert_len);

/**
 * km_catalog_policy_get:
 * @s: the store
 * @key_id: a key id, or "" for the mesh default policy
 * @policy, @len: receive a malloc'd copy of the encoded policy
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_policy_get(
    km_store *s, const char *key_id, uint8_t **policy, size_t *len);

/**
 * km_catalog_posture_get:
 * @s: the store
 * @data, @len: receive a malloc'd copy of the posture policy of the last
 *     applied POSTURE_SET (km_posture_decode)
 *
 * Returns: 0, KM_ERR_NOT_FOUND (never set: everything is allowed),
 * KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_posture_get(km_store *s, uint8_t **data, size_t *len);

/**
 * km_catalog_verdict_get:
 * @s: the store
 * @node: a node's name
 * @data, @len: receive a malloc'd copy of the last verdict applied about
 *     @node (km_trust_verdict_decode)
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_verdict_get(
    km_store *s, const char *node, uint8_t **data, size_t *len);

/** km_catalog_policy_encode: "uint32 n, uint32 mech*, uint32 m, string
 * client*"; refuses invalid names and over KM_CATALOG_POLICY_MAX_ITEMS. */
int km_catalog_policy_encode(const km_catalog_policy *p, km_buf *out);

/** km_catalog_policy_decode: strict inverse (km_catalog_policy_free). */
int km_catalog_policy_decode(
    const uint8_t *data, size_t len, km_catalog_policy *p);

void km_catalog_policy_free(km_catalog_policy *p);

/**
 * km_catalog_policy_allows:
 * @p: a decoded policy
 * @mech: the requested mechanism
 * @client: the requesting client's name
 *
 * Returns: true when both the mechanism and the client are allowed.
 */
bool km_catalog_policy_allows(
    const km_catalog_policy *p, uint32_t mech, const char *client);

/**
 * km_catalog_attrs_encode:
 * @a: attributes, types strictly increasing (so the encoding is canonical)
 * @n: how many, at most KM_CATALOG_ATTRS_MAX_ITEMS
 * @out: an initialised km_buf
 *
 * "uint32 n, n x (uint32 type, string value)", at most
 * KM_CATALOG_ATTRS_MAX bytes in all.
 *
 * Returns: 0, KM_ERR_INVALID_ARG (unsorted, duplicate, too many),
 * KM_ERR_TOO_LARGE, KM_ERR_ALLOC.
 */
int km_catalog_attrs_encode(const km_catalog_attr *a, size_t n, km_buf *out);

/**
 * km_catalog_attrs_decode:
 * @data, @len: an encoded attribute list
 * @a: receives a malloc'd array (free()) pointing into @data
 * @n: receives its length
 *
 * Returns: 0, KM_ERR_BAD_FORMAT (unsorted or duplicate types, bad
 * lengths, trailing bytes, too many), KM_ERR_TOO_LARGE, KM_ERR_ALLOC.
 */
int km_catalog_attrs_decode(
    const uint8_t *data, size_t len, km_catalog_attr **a, size_t *n);

/**
 * km_catalog_object_get:
 * @s: the store
 * @object_id: the object's id
 * @o: receives the object (km_catalog_object_free); deleted objects are
 *     returned too, with state KM_OBJ_DELETED and no value
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_object_get(
    km_store *s, const char *object_id, km_catalog_object *o);

/**
 * km_catalog_object_list:
 * @s: the store
 * @objs: receives a malloc'd array of the live objects, by id
 *        (km_catalog_object_list_free)
 * @n: receives its length
 */
int km_catalog_object_list(km_store *s, km_catalog_object **objs, size_t *n);

void km_catalog_object_free(km_catalog_object *o);
void km_catalog_object_list_free(km_catalog_object *objs, size_t n);

/**
 * km_catalog_evicted_list:
 * @s: the store
 * @v: receives a malloc'd array (free()) of the evicted nodes, by name
 * @n: receives its length (0 with *@v NULL when none)
 *
 * Returns: 0, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_catalog_evicted_list(km_store *s, km_catalog_evicted **v, size_t *n);

/**
 * km_catalog_evicted_get:
 * @s: the store
 * @node: a node name
 * @out: receives its eviction record (may be NULL)
 *
 * Returns: 0 when @node is evicted, KM_ERR_NOT_FOUND when not, KM_ERR_IO.
 */
int km_catalog_evicted_get(
    km_store *s, const char *node, km_catalog_evicted *out);

/** km_catalog_votes_free: frees @n votes and the array. */
void km_catalog_votes_free(km_catalog_vote *v, size_t n);

typedef struct km_catalog_node_name {
	char name[KM_NAME_MAX + 1];
} km_catalog_node_name;

/**
 * km_catalog_mesh_nodes:
 * @s: the store
 * @names: receives a malloc'd array (free()) of the mesh's current member
 *         nodes, by name: the members table's nodes and every node that
 *         holds an index of a key that is not destroyed (at its current
 *         epoch), less the evicted ones
 * @n: receives its length
 * @max_threshold: receives the largest threshold of a key that is not
 *                 destroyed (0 when none)
 *
 * Catalog state only, so every replica computes the same (store/evict.h
 * km_evict_quorum).
 */
int km_catalog_mesh_nodes(km_store *s, km_catalog_node_name **names,
    size_t *n, uint32_t *max_threshold);

/** km_catalog_type_is_object: OBJECT_PUT and OBJECT_DELETE, the entry
 * types an enrolled client may sign (docs/storage.md §5). */
bool km_catalog_type_is_object(uint32_t type);

#endif /* KM_STORE_CATALOG_H */
