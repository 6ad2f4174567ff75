/*
 * keymesh-pkcs11.so internals (km_p11_*).
 *
 * Layout:
 *   module.c   the C_* shim and the function lists (the only C_* names)
 *   ckr.c      the one KM_ERR_* -> CKR_* switch
 *   core.c     initialisation, locking, fork check, slot/token, sessions,
 *              login
 *   object.c   objects and attributes: keys from the mesh view, objects
 *              the application creates, find
 *   mech.c     mechanisms: sign, verify, encrypt, decrypt, digest, derive,
 *              key generation, random
 *   quorum.c   the hot path: rank holders, fan out, hedge, combine
 *
 * Locking: one module lock (the application's mutex callbacks when it gave
 * them, else pthreads) guards the session table, the object table and the
 * login state; each session has its own lock held for the length of one
 * call, so a slow mesh operation on one session never blocks another.  The
 * network fan-out runs with only the session lock held.
 */
#ifndef KM_P11_P11_H
#define KM_P11_P11_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "mesh/client.h"
#include "mesh/view.h"
#include "proto/proto.h"
#include "trust/graph.h"
#include "util/buf.h"

#define KM_P11_SLOT_ID      1
#define KM_P11_MAX_SESSIONS 4096
#define KM_P11_MANUFACTURER "keymesh"
#define KM_P11_PIN_MIN      4
/* how long a logout or C_Finalize waits for evidence still to report */
#define KM_P11_EVIDENCE_DRAIN_MS 3000u
#define KM_P11_PIN_MAX      255

/* ---- locks: the application's callbacks or pthreads ---- */

typedef struct km_p11_mutex km_p11_mutex;
int km_p11_mutex_new(km_p11_mutex **out);
void km_p11_mutex_free(km_p11_mutex *m);
void km_p11_lock(km_p11_mutex *m);
void km_p11_unlock(km_p11_mutex *m);

/* ---- keys and objects ---- */

/* A mesh key as the module uses it (shared, reference-counted). */
typedef struct km_p11_key {
	int refs; /* under the module lock */
	char key_id[KM_NAME_MAX + 1];
	char label[KM_NAME_MAX + 1];
	uint32_t key_type, bits, threshold, epoch;
	size_t nholders;
	uint32_t index[KM_CATALOG_MAX_HOLDERS]; /* share index */
	int node[KM_CATALOG_MAX_HOLDERS];       /* mesh node, -1 if unknown */
	km_rsa_pub *rsa;
	km_ec_pub *ec;
	const km_ec_group *group; /* module-owned, per curve */
	bool has_policy;
	size_t nallowed; /* the policy's mechanisms for this client */
	CK_MECHANISM_TYPE allowed[32];
	uint8_t *policy;
	size_t policy_len;
	/* the application's CKA_ID from the catalog (KEY_ATTRS); empty:
	 * CKA_ID is the key id */
	uint8_t app_id[KM_CATALOG_APP_ID_MAX];
	size_t app_id_len;
	uint64_t updated_seq; /* the view's, to notice changes */
} km_p11_key;

/* One attribute value, owned. */
typedef struct km_p11_attr {
	CK_ATTRIBUTE_TYPE type;
	void *value;
	CK_ULONG len;
	bool secret; /* value in secure memory */
} km_p11_attr;

typedef struct km_p11_object {
	CK_OBJECT_HANDLE handle;
	CK_OBJECT_CLASS cls;
	CK_SESSION_HANDLE session; /* 0 for token objects */
	bool from_mesh;            /* a key of the view */
	bool from_catalog;         /* an object of the view (OBJECT_PUT) */
	char object_id[KM_NAME_MAX + 1]; /* from_catalog */
	uint64_t object_seq;             /* from_catalog: its version */
	bool is_private;           /* CKA_PRIVATE */
	bool seen;                 /* marker during a view sync */
	km_p11_key *key;           /* mesh keys */
	km_p11_attr *attrs;
	size_t nattrs;
} km_p11_object;

/* ---- sessions ---- */

enum {
	KM_P11_OP_NONE = 0,
	KM_P11_OP_FIND,
	KM_P11_OP_SIGN,
	KM_P11_OP_VERIFY,
	KM_P11_OP_ENCRYPT,
	KM_P11_OP_DECRYPT,
	KM_P11_OP_DIGEST,
	KM_P11_OP_COUNT
};

typedef struct km_p11_op {
	CK_MECHANISM_TYPE mech;
	km_p11_key *key; /* mesh private key (sign, decrypt) */
	EVP_PKEY *pkey;  /* public key (verify, encrypt) */
	CK_KEY_TYPE key_type;
	size_t modlen;  /* RSA modulus bytes */
	EVP_MD_CTX *md; /* hash-then-sign, digest */
	const EVP_MD *md_type;
	km_buf data;     /* single-part accumulation */
	bool multi;      /* Update was called */
	km_rsa_mech rsa; /* padding parameters */
	uint8_t *label;  /* OAEP label copy */
	size_t label_len;
	/* find */
	CK_OBJECT_HANDLE *found;
	size_t nfound, pos;
} km_p11_op;

typedef struct km_p11_session {
	CK_SESSION_HANDLE handle;
	CK_FLAGS flags;
	km_p11_mutex *lock;
	int refs; /* under the module lock */
	bool closing;
	int active; /* KM_P11_OP_*, one at a time */
	km_p11_op op;
} km_p11_session;

/* ---- per-node statistics for ranking (quorum.c) ---- */

typedef struct km_p11_node_stat {
	double rtt_ms;  /* EWMA of round trips (late ones as a lower bound) */
	uint64_t rtt_at_ms; /* when rtt_ms was last measured */
	uint32_t fails; /* recent failures, decays */
	uint64_t last_fail_ms;
	uint64_t bad_until_ms; /* returned a bad partial: avoid until then */
	uint64_t calls, bad;
} km_p11_node_stat;

/* ---- the trust and load view, per mesh node (view.c) ---- */

typedef struct km_p11_node_view {
	bool have;            /* the view lists the node */
	km_trust_state state; /* up, unreachable, quarantined, evicted */
	uint32_t score;       /* 0..KM_TRUST_SCORE_MAX */
	uint32_t load_milli, queue_depth; /* from its beacon */
	uint32_t bw_kbps;     /* mean reported link bandwidth, 0: none */
	char reason[KM_TRUST_REASON_MAX + 1];
} km_p11_node_view;

/* ---- the module ---- */

typedef struct km_p11_state {
	bool initialized;
	bool forked; /* a forked child: the mesh is reached via a relay */
	pid_t pid;
	km_p11_mutex *lock;
	km_mesh_conf conf;
	km_mesh *mesh;
	km_mesh *admin; /* opened on demand when [admin] exists */
	km_view *view;
	pthread_mutex_t view_lock;
	uint64_t view_at_ms;
	char token_label[33];
	char serial[17];
	char client_name[KM_NAME_MAX + 1];
	const km_ec_group *p256, *p384;
	/* login: the user (logged_in) or the SO (so_logged_in), one at a
	 * time; the tickets are of that user type */
	bool logged_in;
	bool so_logged_in;
	char *pin; /* secure memory while logged in */
	bool have_ticket[KM_MESH_MAX_NODES];
	uint8_t ticket[KM_MESH_MAX_NODES][KM_PROTO_TICKET_LEN];
	/* tables */
	km_p11_session **sessions;
	size_t nsessions, sessions_cap;
	CK_SESSION_HANDLE next_session;
	km_p11_object **objects;
	size_t nobjects, objects_cap;
	CK_OBJECT_HANDLE next_object;
	/* quorum */
	pthread_mutex_t stat_lock;
	km_p11_node_stat stat[KM_MESH_MAX_NODES];
	/* the trust and load view (view.c), by mesh node index */
	pthread_mutex_t trust_lock;
	km_p11_node_view trust[KM_MESH_MAX_NODES];
	uint64_t trust_at_ms; /* monotonic, when fetched; 0: never */
	char trust_from[KM_NAME_MAX + 1]; /* the node that answered */
} km_p11_state;

extern km_p11_state km_p11;

/* ---- ckr.c ---- */

/** km_p11_ckr: the CK_RV for a KM_ERR_* code. */
CK_RV km_p11_ckr(int r);

/* ---- core.c ---- */

bool km_p11_strict(void);
CK_RV km_p11_check_init(void);
CK_RV km_p11_initialize(CK_VOID_PTR args);
CK_RV km_p11_finalize(CK_VOID_PTR reserved);
CK_RV km_p11_get_info(CK_INFO_PTR info);
CK_RV km_p11_get_slot_list(
    CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count);
CK_RV km_p11_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info);
CK_RV km_p11_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info);
CK_RV km_p11_wait_for_slot_event(
    CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved);
CK_RV km_p11_init_token(
    CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label);
CK_RV km_p11_open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out);
CK_RV km_p11_close_session(CK_SESSION_HANDLE h);
CK_RV km_p11_close_all_sessions(CK_SLOT_ID slot);

/* session lookup for the shim: locks the session, or an error */
CK_RV km_p11_session_get(CK_SESSION_HANDLE h, km_p11_session **out);
void km_p11_session_put(km_p11_session *s);
bool km_p11_logged_in(void);
CK_STATE km_p11_session_state(const km_p11_session *s);

CK_RV km_p11_get_session_info(km_p11_session *s, CK_SESSION_INFO_PTR info);
CK_RV km_p11_login(
    km_p11_session *s, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin, CK_ULONG len);
CK_RV km_p11_logout(km_p11_session *s);
CK_RV km_p11_set_pin(km_p11_session *s, CK_UTF8CHAR_PTR old_pin,
    CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len);
CK_RV km_p11_init_pin(km_p11_session *s, CK_UTF8CHAR_PTR pin, CK_ULONG len);
/* a node's ticket, copied out under the lock; false if none */
bool km_p11_ticket(size_t node, uint8_t out[KM_PROTO_TICKET_LEN]);
/* the node answered "not logged in": forget its ticket */
void km_p11_ticket_drop(size_t node);
/* the admin mesh, or NULL with a log line */
km_mesh *km_p11_admin(void);
/* km_mesh_ticket_fn for catalog appends: this node's ticket, if any */
bool km_p11_ticket_cb(void *arg, size_t node, uint8_t *out);

/* ---- object.c ---- */

CK_RV km_p11_view_sync(bool force);
void km_p11_objects_free(void);
void km_p11_objects_drop_session(CK_SESSION_HANDLE h);
void km_p11_objects_drop_children(void);
void km_p11_key_unref(km_p11_key *k);
void km_p11_op_reset(km_p11_op *op);
/* under the module lock */
km_p11_object *km_p11_object_find(CK_OBJECT_HANDLE h);
bool km_p11_object_visible(const km_p11_object *o);
const km_p11_attr *km_p11_attr_get(
    const km_p11_object *o, CK_ATTRIBUTE_TYPE t);
bool km_p11_attr_bool(const km_p11_object *o, CK_ATTRIBUTE_TYPE t);
/* the key's policy lets this client use @mech (no policy: any) */
bool km_p11_key_allows(const km_p11_key *k, CK_MECHANISM_TYPE mech);
/* the key's policy lets this client use @mech (no policy: any) */
bool km_p11_key_allows(const km_p11_key *k, CK_MECHANISM_TYPE mech);
CK_RV km_p11_object_add(CK_SESSION_HANDLE session, CK_OBJECT_CLASS cls,
    bool is_private, km_p11_attr *attrs, size_t nattrs, CK_OBJECT_HANDLE *out);
CK_RV km_p11_attr_set(km_p11_attr **attrs, size_t *n, CK_ATTRIBUTE_TYPE t,
    const void *v, CK_ULONG len, bool secret);
void km_p11_attrs_free(km_p11_attr *attrs, size_t n);
/* a public EVP_PKEY of a key object (public or private) */
CK_RV km_p11_object_pkey(
    const km_p11_object *o, EVP_PKEY **out, CK_KEY_TYPE *kt);

CK_RV km_p11_create_object(km_p11_session *s, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out);
CK_RV km_p11_destroy_object(km_p11_session *s, CK_OBJECT_HANDLE h);
CK_RV km_p11_get_object_size(
    km_p11_session *s, CK_OBJECT_HANDLE h, CK_ULONG_PTR size);
CK_RV km_p11_get_attribute_value(
    km_p11_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n);
CK_RV km_p11_set_attribute_value(
    km_p11_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n);
CK_RV km_p11_find_objects_init(
    km_p11_session *s, CK_ATTRIBUTE_PTR t, CK_ULONG n);
CK_RV km_p11_find_objects(km_p11_session *s, CK_OBJECT_HANDLE_PTR out,
    CK_ULONG max, CK_ULONG_PTR count);
CK_RV km_p11_find_objects_final(km_p11_session *s);
CK_RV km_p11_copy_object(km_p11_session *s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR out);

/* ---- mech.c ---- */

CK_RV km_p11_get_mechanism_list(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count);
CK_RV km_p11_get_mechanism_info(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info);
CK_RV km_p11_sign_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key);
CK_RV km_p11_sign(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR sig, CK_ULONG_PTR siglen);
CK_RV km_p11_sign_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len);
CK_RV km_p11_sign_final(
    km_p11_session *s, CK_BYTE_PTR sig, CK_ULONG_PTR siglen);
CK_RV km_p11_verify_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key);
CK_RV km_p11_verify(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR sig, CK_ULONG siglen);
CK_RV km_p11_verify_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len);
CK_RV km_p11_verify_final(km_p11_session *s, CK_BYTE_PTR sig, CK_ULONG siglen);
CK_RV km_p11_encrypt_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key);
CK_RV km_p11_encrypt(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_encrypt_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_encrypt_final(
    km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_decrypt_init(
    km_p11_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key);
CK_RV km_p11_decrypt(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_decrypt_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_decrypt_final(
    km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_digest_init(km_p11_session *s, CK_MECHANISM_PTR m);
CK_RV km_p11_digest(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_digest_update(km_p11_session *s, CK_BYTE_PTR data, CK_ULONG len);
CK_RV km_p11_digest_key(km_p11_session *s, CK_OBJECT_HANDLE key);
CK_RV km_p11_digest_final(
    km_p11_session *s, CK_BYTE_PTR out, CK_ULONG_PTR outlen);
CK_RV km_p11_derive_key(km_p11_session *s, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out);
CK_RV km_p11_generate_key_pair(km_p11_session *s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pubt, CK_ULONG npub, CK_ATTRIBUTE_PTR privt,
    CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv);
CK_RV km_p11_generate_random(km_p11_session *s, CK_BYTE_PTR out, CK_ULONG len);
CK_RV km_p11_seed_random(km_p11_session *s, CK_BYTE_PTR seed, CK_ULONG len);

/* ---- quorum.c ---- */

/**
 * km_p11_quorum_rsa:
 * Fans an RSA partial request out to the key's best holders, combines and
 * verifies.  @sig: signature (kind sign) or plaintext (kind decrypt).
 * Returns a KM_ERR_* code (KM_ERR_QUORUM with a log line naming the
 * missing holders).
 */
int km_p11_quorum_rsa(km_p11_key *key, uint32_t kind, CK_MECHANISM_TYPE mech,
    const km_rsa_mech *m, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen);

/** km_p11_quorum_ecdh: the CKD_NULL shared secret for a peer point. */
int km_p11_quorum_ecdh(km_p11_key *key, const uint8_t *point, size_t pointlen,
    uint8_t *out, size_t outlen, size_t *written);

/* ---- view.c ---- */

struct km_p11_rank_in;

/**
 * km_p11_refresh_start:
 * Starts the trust-view refresher thread (every [client] view_refresh_ms;
 * 0: none).  Called at the end of C_Initialize, also in a forked child
 * (which gets its own thread, reaching the mesh through its relay).
 * A failure is not fatal: the quorum then ranks by its own measurements.
 */
int km_p11_refresh_start(void);

/** km_p11_refresh_stop: stops and joins this process's refresher (before
 * the mesh is closed); does nothing for a parent's inherited one. */
void km_p11_refresh_stop(void);

/**
 * km_p11_view_fill:
 * For the hot path: copies the view's numbers for mesh nodes @nodes[0..n)
 * into @in (have_view false when the view is stale or lacks the node).
 * Takes trust_lock once; no allocation, no network.
 */
void km_p11_view_fill(
    const size_t *nodes, size_t n, struct km_p11_rank_in *in);

/** km_p11_view_reason: "quarantined: WHY (view from NODE)" for a log. */
void km_p11_view_reason(size_t node, char *out, size_t outlen);

/* ---- argument checks (p11-kit) ---- */

#define return_val_if_fail(cond, val)                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			km_p11_precondition_failed(#cond, __func__);          \
			return (val);                                         \
		}                                                             \
	} while (0)

void km_p11_precondition_failed(const char *cond, const char *func);

/* ---- evidence.c: reporting bad partials (docs/evidence.md) ---- */

/**
 * km_p11_evidence_caught:
 * @key: the key of the operation
 * @type: KM_MSG_ECDH_PARTIAL or KM_MSG_RSA_PARTIAL
 * @node: the holder whose partial was bad (or, @index 0, a suspect: an
 *   RSA combination failed its check and named nobody)
 * @index: the share index a check named, or 0
 * @call: the holder's completed call (its envelopes are the ECDH
 *   evidence)
 * @req: the request body sent to it (RSA: asked again with the proof)
 *
 * Hands the report to the background reporter and returns at once.
 */
void km_p11_evidence_caught(const km_p11_key *key, uint32_t type,
    size_t node, uint32_t index, km_net_call *call, const km_buf *req);
/** km_p11_evidence_stop: C_Finalize: join the reporter, drop the rest. */
void km_p11_evidence_stop(void);
/**
 * km_p11_evidence_drain: before a logout or C_Finalize: waits up to @ms
 * for the reports queued or in hand (they need this login's tickets: an
 * application that signs and exits at once would otherwise drop them).
 */
void km_p11_evidence_drain(unsigned ms);
/** km_p11_evidence_forget: a forked child drops the parent's reporter. */
void km_p11_evidence_forget(void);

#endif /* KM_P11_P11_H */
