/*
 * Mesh operations shared by the admin CLI and the PKCS#11 module: status,
 * PIN initialisation, key creation (RSA dealer or EC DKG on a daemon, then
 * the two catalog entries that activate the key), import, destroy, and
 * signed catalog appends.
 */
#ifndef KM_MESH_ADMIN_H
#define KM_MESH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/client.h"
#include "store/catalog.h"

/* One node's answer to a status request. */
typedef struct km_node_status {
	bool up;
	char error[160]; /* why it is down */
	char name[KM_NAME_MAX + 1];
	char version[32];
	uint64_t uptime_ms;
	uint64_t catalog_seq;
	uint64_t shares;
	char keygen[160];
	/* the catalog's Raft log as this node sees it ("" from an older
	 * daemon): "leader", "follower", "candidate", "off", ... */
	char raft_role[16];
	char leader[KM_NAME_MAX + 1]; /* the coordinator, "" if unknown */
} km_node_status;

/* A key as a node reports it in its status. */
typedef struct km_key_info {
	char key_id[KM_NAME_MAX + 1];
	char label[KM_NAME_MAX + 1];
	uint32_t key_type, bits, threshold, nholders, epoch, state;
	uint32_t held; /* indices held by the reporting node */
} km_key_info;

/**
 * km_mesh_status:
 * @m: the mesh
 * @i: node index
 * @st: receives the node's status (st->up false with a reason)
 * @keys, @nkeys: if not NULL, receive the node's key list (free())
 */
int km_mesh_status(km_mesh *m, size_t i, int timeout_ms, km_node_status *st,
    km_key_info **keys, size_t *nkeys);

/** km_key_type_name: "rsa:2048", "ec:p256", ... */
const char *km_key_type_name(uint32_t key_type, uint32_t bits, char *buf,
    size_t len);

/**
 * km_key_type_parse: "rsa:2048|3072|4096", "ec:p256", "ec:p384".
 */
int km_key_type_parse(const char *s, uint32_t *key_type, uint32_t *bits);

/**
 * km_mesh_append:
 * Signs a payload as catalog entry (last seq + 1, asking every reachable
 * node for its last seq) with this process's identity and appends it to
 * every node.  Nodes that are down catch up later from their peers.
 * @applied: receives how many nodes applied it.
 * Returns 0 when at least one node applied it.
 */
int km_mesh_append(km_mesh *m, const km_catalog_payload *p, size_t *applied,
    char *err, size_t errlen);

/* Copies node @node's login ticket into @out; false when there is none. */
typedef bool (*km_mesh_ticket_fn)(void *arg, size_t node, uint8_t *out);

/**
 * km_mesh_append_as:
 * @m: the mesh, opened with the identity that signs the entry (an admin,
 *     or a client for OBJECT_PUT / OBJECT_DELETE)
 * @p: the payload
 * @ticket, @arg: the login ticket to show each node (NULL: none); a node
 *     sequencing a client's object entry requires it
 * @applied, @err, @errlen: as km_mesh_append
 * @result: receives the entry's outcome when it was applied (0, or the
 *     KM_ERR_* with which every node consumed it without effect, e.g.
 *     KM_ERR_STATE for an object deleted meanwhile); may be NULL
 *
 * km_mesh_append() is this with no tickets.  A node that refuses (no
 * ticket there, unreachable) catches up later from its peers.
 */
int km_mesh_append_as(km_mesh *m, const km_catalog_payload *p,
    km_mesh_ticket_fn ticket, void *arg, size_t *applied, int *result,
    char *err, size_t errlen);

/* Called while a key is being made: @what is the daemon's progress line. */
typedef void (*km_mesh_progress_fn)(void *arg, const char *what);

/**
 * km_mesh_key_create:
 * @m: the mesh (admin)
 * @key_type, @bits: KM_KEY_*, and the RSA size (ignored for EC)
 * @threshold: shares needed, 1..number of nodes
 * @label: the key's label (unique among live keys)
 * @allow_raw: RSA only: allow raw (X.509) signing and decryption
 * @progress, @arg: optional progress callback
 * @key_id: receives the new key's id (KM_NAME_MAX + 1 bytes)
 *
 * Holders are all nodes of the config, index i+1 on node i.  The first
 * node that answers deals (RSA) or coordinates the DKG (EC); then the key
 * is appended to the catalog and activated.
 */
int km_mesh_key_create(km_mesh *m, uint32_t key_type, uint32_t bits,
    uint32_t threshold, const char *label, bool allow_raw,
    km_mesh_progress_fn progress, void *arg, char *key_id, char *err,
    size_t errlen);

/**
 * km_mesh_key_import:
 * @data, @len: a PEM or DER private key (RSA, EC P-256/P-384)
 * The admin process deals the shares itself (the one place a whole key is
 * in memory, locked, for the seconds of the split), sends each node its
 * shares, wipes everything, then appends and activates the key.
 */
int km_mesh_key_import(km_mesh *m, const uint8_t *data, size_t len,
    uint32_t threshold, const char *label, bool allow_raw, char *key_id,
    char *err, size_t errlen);

/** km_mesh_key_find: looks a live key up by label or id on any node. */
int km_mesh_key_find(km_mesh *m, const char *label_or_id, km_key_info *key,
    char *err, size_t errlen);

/** km_mesh_key_destroy: appends a destroy entry for the key. */
int km_mesh_key_destroy(km_mesh *m, const char *label_or_id, char *err,
    size_t errlen);

/**
 * km_mesh_key_reshare:
 * @m: the mesh (admin)
 * @label_or_id: the key
 * @new_threshold: shares needed after the re-share; 0 keeps the current one
 * @members, @nmembers: the new holders, new index i+1 on @members[i]; a
 *   node named several times holds several indices (weighted shares);
 *   NULL keeps the current holders (one re-dealt index each as now)
 * @progress, @arg: optional progress callback
 * @new_epoch: receives the epoch now current (may be NULL)
 *
 * Same public key, new shares, old ones deleted (docs/resharing.md): a
 * daemon coordinates the re-share among k reachable old holders; once
 * every new holder has its new shares prepared, the admin appends
 * RESHARE_BEGIN and RESHARE_COMMIT.  A failure before the commit leaves
 * the key usable under its current epoch.  A key left RESHARING by an
 * interrupted earlier call is first aborted (RESHARE_ABORT).
 *
 * Returns: 0, KM_ERR_NOT_FOUND (no such key), KM_ERR_INVALID_ARG (bad
 * threshold or members), KM_ERR_STATE, KM_ERR_QUORUM, or what the
 * coordinator reported; @err holds one line.
 */
/* A warning line from km_mesh_node_evict (a key below its threshold). */
typedef void (*km_mesh_evict_warn_fn)(void *arg, const char *line);

/**
 * km_mesh_node_evict:
 * @m: the mesh (admin identity)
 * @node: a node of this mesh
 * @reason: one printable line (may be NULL)
 * @warn: called for each key that cannot be re-shared without @node
 *
 * Appends an admin-signed EVICT (docs/eviction.md): every node refuses
 * @node from then on and the coordinator re-shares its keys.  Refuses an
 * unknown node, one already evicted, and an eviction that would leave
 * fewer than two members.
 *
 * Returns: 0, or a KM_ERR_* with one line in @err.
 */
int km_mesh_node_evict(km_mesh *m, const char *node, const char *reason,
    km_mesh_evict_warn_fn warn, void *arg, char *err, size_t errlen);

int km_mesh_key_reshare(km_mesh *m, const char *label_or_id,
    uint32_t new_threshold, const char *const *members, size_t nmembers,
    km_mesh_progress_fn progress, void *arg, uint32_t *new_epoch, char *err,
    size_t errlen);

/**
 * km_mesh_pin_init:
 * Sets the @user PIN (KM_PROTO_USER_USER or KM_PROTO_USER_SO) of
 * @partition on every node (admin).  @failed receives how many nodes
 * refused or were unreachable; their names go to @err.
 */
int km_mesh_pin_init(km_mesh *m, const char *partition, uint32_t user,
    const char *pin, size_t *failed, char *err, size_t errlen);

#endif /* KM_MESH_ADMIN_H */
