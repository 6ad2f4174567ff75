/*
 * Private to src/store: the connection, its statement cache and the
 * transaction helpers shared by store.c, catalog.c and audit.c.
 */
#ifndef KM_STORE_STORE_INT_H
#define KM_STORE_STORE_INT_H

#include <pthread.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/store.h"
#include "util/util.h"

/* Every statement the store runs, prepared once per connection. */
typedef enum km_stmt_id {
	KM_STMT_SHARE_INSERT,
	KM_STMT_SHARE_EPOCH_STATE,
	KM_STMT_SHARE_MAX_COMMITTED,
	KM_STMT_SHARE_COMMIT,
	KM_STMT_SHARE_ABORT,
	KM_STMT_SHARE_GET,
	KM_STMT_SHARE_LIST,
	KM_STMT_SHARE_COUNT,
	KM_STMT_SHARE_DELETE_OLDER,
	KM_STMT_SHARE_DELETE_KEY,
	KM_STMT_SHARE_DELETE_EPOCH,
	KM_STMT_CAT_HEAD_GET,
	KM_STMT_CAT_HEAD_SET,
	KM_STMT_CAT_LOG_INSERT,
	KM_STMT_CAT_LOG_GET,
	KM_STMT_CAT_KEY_GET,
	KM_STMT_CAT_KEY_BY_LABEL,
	KM_STMT_CAT_KEY_LIST,
	KM_STMT_CAT_KEY_INSERT,
	KM_STMT_CAT_KEY_SET_STATE,
	KM_STMT_CAT_KEY_RESHARE_BEGIN,
	KM_STMT_CAT_KEY_RESHARE_COMMIT,
	KM_STMT_CAT_KEY_RESHARE_ABORT,
	KM_STMT_CAT_KEY_SET_ACKED,
	KM_STMT_CAT_KEY_SET_POLICY,
	KM_STMT_CAT_LABEL_LIVE,
	KM_STMT_CAT_HOLDER_INSERT,
	KM_STMT_CAT_HOLDER_LIST,
	KM_STMT_CAT_HOLDER_DELETE_EPOCH,
	KM_STMT_CAT_HOLDER_DELETE_OLDER,
	KM_STMT_CAT_MEMBER_GET,
	KM_STMT_CAT_MEMBER_INSERT,
	KM_STMT_CAT_MEMBER_DELETE,
	KM_STMT_CAT_POLICY_GET,
	KM_STMT_CAT_POLICY_SET,
	KM_STMT_CAT_KEY_SET_APP_ID,
	KM_STMT_CAT_OBJECT_GET,
	KM_STMT_CAT_OBJECT_LIST,
	KM_STMT_CAT_OBJECT_INSERT,
	KM_STMT_CAT_OBJECT_UPDATE,
	KM_STMT_CAT_OBJECT_DELETE,
	KM_STMT_CAT_EVICTED_GET,
	KM_STMT_CAT_EVICTED_INSERT,
	KM_STMT_CAT_EVICTED_LIST,
	KM_STMT_CAT_MESH_NODES,
	KM_STMT_CAT_MAX_THRESHOLD,
	KM_STMT_AUDIT_HEAD_GET,
	KM_STMT_AUDIT_HEAD_SET,
	KM_STMT_AUDIT_INSERT,
	KM_STMT_AUDIT_GET,
	KM_STMT_AUDIT_WALK,
	KM_STMT_BEGIN,
	KM_STMT_COMMIT,
	KM_STMT_ROLLBACK,
	KM_STMT_SAVEPOINT,
	KM_STMT_ROLLBACK_TO,
	KM_STMT_RELEASE,
	KM_STMT_COUNT
} km_stmt_id;

struct km_store {
	sqlite3 *db;
	pthread_mutex_t mu; /* one caller at a time on the connection */
	sqlite3_stmt *stmt[KM_STMT_COUNT];
	/* this node's name (km_store_set_node), "" when not told: the
	 * commit of a re-share keeps the old shares when this node holds
	 * an index of the new epoch without a prepared share for it */
	char node[KM_NAME_MAX + 1];
};

/* SQLite result code to KM_ERR_* (BUSY/LOCKED -> KM_ERR_BUSY). */
int km_store_sqlerr(km_store *s, int rc, const char *what);

/* The cached statement @id, reset and with bindings cleared. */
int km_store_stmt(km_store *s, km_stmt_id id, sqlite3_stmt **out);

/* Steps a statement that returns no row (SQLITE_DONE expected). */
int km_store_exec_stmt(km_store *s, sqlite3_stmt *st, const char *what);

/* Runs a cached statement that takes no parameters and returns no row. */
int km_store_run(km_store *s, km_stmt_id id, const char *what);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (rollback never fails upward). */
int km_store_begin(km_store *s);
int km_store_commit(km_store *s);
void km_store_rollback(km_store *s);

/* Lock and unlock the connection. */
void km_store_lock(km_store *s);
void km_store_unlock(km_store *s);

/* Internal share operations used by the catalog inside its transaction
 * (the caller holds the lock and an open transaction). */
int km_store_share_commit_locked(
    km_store *s, const char *key_id, uint32_t epoch);
int km_store_share_delete_older_locked(
    km_store *s, const char *key_id, uint32_t epoch);
int km_store_share_abort_locked(
    km_store *s, const char *key_id, uint32_t epoch);
int km_store_share_delete_key_locked(km_store *s, const char *key_id);
int km_store_share_delete_epoch_locked(
    km_store *s, const char *key_id, uint32_t epoch);

#endif /* KM_STORE_STORE_INT_H */
