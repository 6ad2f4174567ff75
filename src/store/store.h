/*
 * The daemon's state store: one SQLite database in the state directory.
 *
 * It holds the node's wrapped shares (installed in two phases), the applied
 * key catalog (catalog.h) and the hash-chained audit log (audit.h).  The
 * database runs in WAL mode with synchronous=FULL and foreign keys on; every
 * write is one transaction, so a failed call, a crash or a kill -9 leaves
 * the state as it was before the call or as it is after it, never between.
 * docs/storage.md describes the schema and the crash-safety argument.
 *
 * A km_store is one connection guarded by a mutex: it may be shared by
 * threads, and its prepared statements are cached for its lifetime.  Do not
 * use one km_store across fork(); open a new one in the child.
 *
 * The store never sees a share in clear: blobs are wrapped by the backend
 * token (daemon/token.h) before they arrive here.
 */
#ifndef KM_STORE_STORE_H
#define KM_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct km_store km_store;

/* The schema version this code writes (see the migrations in store.c). */
#define KM_STORE_SCHEMA_VERSION 4

/* Largest wrapped share blob accepted. */
#define KM_STORE_BLOB_MAX (64u * 1024)

/* File name of the database inside a state directory. */
#define KM_STORE_FILE "state.db"

typedef enum km_share_state {
	KM_SHARE_PREPARED = 1,  /* written, not yet part of a usable key */
	KM_SHARE_COMMITTED = 2, /* installed: usable for partials */
} km_share_state;

/* A share's metadata (km_store_share_list). */
typedef struct km_share_info {
	uint32_t epoch;
	uint32_t index;
	km_share_state state;
	uint64_t created_ms;
} km_share_info;

/**
 * km_store_open:
 * @path: the database file; created (mode 0600) with its schema if absent
 * @out: receives the store
 *
 * Opens the database, sets WAL, synchronous=FULL, foreign keys and a busy
 * timeout, and runs any pending schema migrations, each in its own
 * transaction.
 *
 * Returns: 0, KM_ERR_IO (cannot open, not a database), KM_ERR_BAD_VERSION
 * (written by a newer keymesh), KM_ERR_ALLOC or KM_ERR_INVALID_ARG.
 */
int km_store_open(const char *path, km_store **out);

/**
 * km_store_open_dir:
 * @dir: the daemon's state directory, created 0700 if absent
 * @out: receives the store
 *
 * km_store_open() on @dir/state.db.
 */
int km_store_open_dir(const char *dir, km_store **out);

/** km_store_close: finalises the statements and closes; NULL is fine. */
void km_store_close(km_store *s);

/**
 * km_store_set_node:
 * @s: the store
 * @name: this node's name (the daemon's; a valid name)
 *
 * Tells the store whose shares it keeps.  The commit of a re-share
 * (RESHARE_COMMIT) then keeps, and logs loudly, the old epoch's shares
 * of a key when this node holds an index of the new epoch but has no
 * prepared share for it (docs/resharing.md, "Authority"): a commit must
 * never leave a holder with no share at all.  Without a name the commit
 * deletes the old shares as before.
 *
 * Returns: 0 or KM_ERR_INVALID_ARG.
 */
int km_store_set_node(km_store *s, const char *name);

/** km_store_schema_version: the schema version recorded in the database. */
int km_store_schema_version(km_store *s, int *version);

/**
 * km_store_integrity_check:
 * @s: the store
 *
 * Runs PRAGMA integrity_check and PRAGMA foreign_key_check.
 *
 * Returns: 0 when both are clean, KM_ERR_VERIFY when not, KM_ERR_IO.
 */
int km_store_integrity_check(km_store *s);

/**
 * km_store_share_prepare:
 * @s: the store
 * @key_id: the key (a valid name, util.h km_name_valid)
 * @epoch: the sharing's epoch, > 0
 * @index: the share index, > 0
 * @blob: the wrapped share (kmd_token_wrap), 1..KM_STORE_BLOB_MAX bytes
 * @len: its length
 * @now_ms: creation time to record (0 for now)
 *
 * Phase one of an install: stores the share as prepared.  A node holding
 * several indices prepares each of them, then commits them together.
 *
 * Returns: 0; KM_ERR_EXISTS when that index of that epoch is already
 * stored; KM_ERR_STATE when the key's shares of that epoch are already
 * committed, or when the key has a newer committed epoch; KM_ERR_INVALID_ARG,
 * KM_ERR_TOO_LARGE, KM_ERR_IO.
 */
int km_store_share_prepare(km_store *s, const char *key_id, uint32_t epoch,
    uint32_t index, const uint8_t *blob, size_t len, uint64_t now_ms);

/**
 * km_store_share_commit:
 * @s: the store
 * @key_id: the key
 * @epoch: the epoch whose prepared shares become committed
 *
 * Phase two: flips every prepared share of (@key_id, @epoch) to committed
 * in one transaction.  Shares of older epochs are kept: they are deleted
 * only when the catalog applies the re-share commit (catalog.h), so a
 * re-share that fails elsewhere leaves the old sharing usable.
 *
 * Returns: 0; KM_ERR_NOT_FOUND when nothing is prepared or committed for
 * that epoch; 0 as well when it was already committed (idempotent, so a
 * retried commit message is harmless); KM_ERR_IO.
 */
int km_store_share_commit(km_store *s, const char *key_id, uint32_t epoch);

/**
 * km_store_share_abort:
 * @s: the store
 * @key_id: the key
 * @epoch: the epoch whose prepared shares are dropped
 *
 * Returns: 0 (also when nothing was prepared); KM_ERR_STATE when the
 * shares of that epoch are committed (they are never dropped here);
 * KM_ERR_IO.
 */
int km_store_share_abort(km_store *s, const char *key_id, uint32_t epoch);

/**
 * km_store_share_get:
 * @s: the store
 * @key_id, @epoch, @index: which share
 * @state: receives its state (may be NULL)
 * @blob: receives a malloc'd copy of the wrapped blob (free())
 * @len: receives its length
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_store_share_get(km_store *s, const char *key_id, uint32_t epoch,
    uint32_t index, km_share_state *state, uint8_t **blob, size_t *len);

/**
 * km_store_share_list:
 * @s: the store
 * @key_id: the key
 * @out: receives a malloc'd array ordered by epoch then index (free())
 * @n: receives its length (0 with *out NULL when there is none)
 *
 * Returns: 0, KM_ERR_ALLOC, KM_ERR_IO.
 */
int km_store_share_list(
    km_store *s, const char *key_id, km_share_info **out, size_t *n);

/**
 * km_store_share_count:
 * @s: the store
 * @n: receives the number of committed shares held (for `status`)
 */
int km_store_share_count(km_store *s, size_t *n);

#endif /* KM_STORE_STORE_H */
