/*
 * The state store: connection, schema migrations, statement cache and the
 * two-phase share install.
 *
 * Durability: WAL with synchronous=FULL fsyncs the WAL on every commit, so
 * a committed transaction survives a power cut as well as a kill -9; an
 * uncommitted one is rolled back by SQLite's recovery when the database is
 * next opened.  All multi-statement changes run inside BEGIN IMMEDIATE ...
 * COMMIT, so each API call is atomic (docs/storage.md).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store-int.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

/*
 * Migrations, applied in order, each in its own transaction together with
 * the row that records its version.  Never edit a released step: add one.
 */
static const char *const km_store_migrations[] = {
	/* 1: shares, catalog, audit */
	"CREATE TABLE shares ("
	"  key_id TEXT NOT NULL,"
	"  epoch INTEGER NOT NULL CHECK (epoch > 0),"
	"  share_index INTEGER NOT NULL CHECK (share_index > 0),"
	"  state INTEGER NOT NULL CHECK (state IN (1, 2)),"
	"  blob BLOB NOT NULL,"
	"  created_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (key_id, epoch, share_index)) WITHOUT ROWID;"
	"CREATE TABLE catalog_head ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  last_seq INTEGER NOT NULL,"
	"  head_hash BLOB NOT NULL);"
	"INSERT INTO catalog_head VALUES (1, 0, zeroblob(32));"
	"CREATE TABLE catalog_log ("
	"  seq INTEGER PRIMARY KEY,"
	"  type INTEGER NOT NULL,"
	"  payload BLOB NOT NULL,"
	"  signer BLOB NOT NULL,"
	"  signature BLOB NOT NULL,"
	"  result INTEGER NOT NULL);"
	"CREATE TABLE keys ("
	"  key_id TEXT PRIMARY KEY,"
	"  label TEXT NOT NULL,"
	"  key_type INTEGER NOT NULL,"
	"  bits INTEGER NOT NULL,"
	"  threshold INTEGER NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),"
	"  public_data BLOB NOT NULL,"
	"  policy BLOB NOT NULL,"
	"  next_epoch INTEGER NOT NULL DEFAULT 0,"
	"  next_threshold INTEGER NOT NULL DEFAULT 0,"
	"  next_public_data BLOB,"
	"  created_seq INTEGER NOT NULL,"
	"  updated_seq INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX keys_live_label ON keys(label) WHERE state != 4;"
	"CREATE TABLE key_holders ("
	"  key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,"
	"  epoch INTEGER NOT NULL,"
	"  share_index INTEGER NOT NULL,"
	"  node TEXT NOT NULL,"
	"  PRIMARY KEY (key_id, epoch, share_index)) WITHOUT ROWID;"
	"CREATE TABLE members ("
	"  node TEXT PRIMARY KEY,"
	"  role INTEGER NOT NULL,"
	"  cert BLOB NOT NULL,"
	"  added_seq INTEGER NOT NULL);"
	"CREATE TABLE policies ("
	"  scope TEXT PRIMARY KEY,"
	"  policy BLOB NOT NULL,"
	"  seq INTEGER NOT NULL);"
	"CREATE TABLE audit_log ("
	"  seq INTEGER PRIMARY KEY,"
	"  time_ms INTEGER NOT NULL,"
	"  client TEXT NOT NULL,"
	"  key_id TEXT NOT NULL,"
	"  operation TEXT NOT NULL,"
	"  input_sha256 BLOB NOT NULL,"
	"  outcome INTEGER NOT NULL,"
	"  prev_hash BLOB NOT NULL,"
	"  hash BLOB NOT NULL);"
	"CREATE TABLE audit_head ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  last_seq INTEGER NOT NULL,"
	"  head_hash BLOB NOT NULL);"
	"INSERT INTO audit_head VALUES (1, 0, zeroblob(32));",
	/* 2: objects (certificates, public keys, data) and keys' CKA_ID */
	"CREATE TABLE objects ("
	"  object_id TEXT PRIMARY KEY,"
	"  partition TEXT NOT NULL,"
	"  class INTEGER NOT NULL CHECK (class BETWEEN 1 AND 3),"
	"  cka_id BLOB NOT NULL,"
	"  label BLOB NOT NULL,"
	"  flags INTEGER NOT NULL,"
	"  value BLOB NOT NULL,"
	"  attrs BLOB NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state IN (1, 2)),"
	"  created_seq INTEGER NOT NULL,"
	"  updated_seq INTEGER NOT NULL);"
	"ALTER TABLE keys ADD COLUMN app_id BLOB;",
	/* 3: evicted nodes (EVICT entries, docs/eviction.md) */
	"CREATE TABLE evicted ("
	"  node TEXT PRIMARY KEY,"
	"  cert_sha256 BLOB NOT NULL,"
	"  evidence_sha256 BLOB NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  nvotes INTEGER NOT NULL,"
	"  seq INTEGER NOT NULL);",
	/* 4: whether a pending epoch's RESHARE_BEGIN carried every new
	 * holder's signed ack of its public data (docs/resharing.md,
	 * "Authority"): a node may commit only such an epoch */
	"ALTER TABLE keys ADD COLUMN next_acked INTEGER NOT NULL DEFAULT 0;",
};

static const char *const km_store_sql[KM_STMT_COUNT] = {
	[KM_STMT_SHARE_INSERT] = "INSERT INTO shares (key_id, epoch,"
	                         " share_index, state, blob, created_ms)"
	                         " VALUES (?1, ?2, ?3, 1, ?4, ?5)",
	[KM_STMT_SHARE_EPOCH_STATE] = "SELECT MIN(state), MAX(state),"
	                              " COUNT(*) FROM shares"
	                              " WHERE key_id = ?1 AND epoch = ?2",
	[KM_STMT_SHARE_MAX_COMMITTED] = "SELECT COALESCE(MAX(epoch), 0)"
	                                " FROM shares WHERE key_id = ?1"
	                                " AND state = 2",
	[KM_STMT_SHARE_COMMIT] = "UPDATE shares SET state = 2"
	                         " WHERE key_id = ?1 AND epoch = ?2"
	                         " AND state = 1",
	[KM_STMT_SHARE_ABORT] = "DELETE FROM shares WHERE key_id = ?1"
	                        " AND epoch = ?2 AND state = 1",
	[KM_STMT_SHARE_GET]
	= "SELECT state, blob FROM shares WHERE key_id = ?1"
	  " AND epoch = ?2 AND share_index = ?3",
	[KM_STMT_SHARE_LIST] = "SELECT epoch, share_index, state, created_ms"
	                       " FROM shares WHERE key_id = ?1"
	                       " ORDER BY epoch, share_index",
	[KM_STMT_SHARE_COUNT] = "SELECT COUNT(*) FROM shares WHERE state = 2",
	[KM_STMT_SHARE_DELETE_OLDER] = "DELETE FROM shares WHERE key_id = ?1"
	                               " AND epoch < ?2",
	[KM_STMT_SHARE_DELETE_KEY] = "DELETE FROM shares WHERE key_id = ?1",
	[KM_STMT_SHARE_DELETE_EPOCH] = "DELETE FROM shares WHERE key_id = ?1"
	                               " AND epoch = ?2",
	[KM_STMT_CAT_HEAD_GET] = "SELECT last_seq, head_hash FROM catalog_head"
	                         " WHERE id = 1",
	[KM_STMT_CAT_HEAD_SET] = "UPDATE catalog_head SET last_seq = ?1,"
	                         " head_hash = ?2 WHERE id = 1",
	[KM_STMT_CAT_LOG_INSERT] = "INSERT INTO catalog_log (seq, type,"
	                           " payload, signer, signature, result)"
	                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[KM_STMT_CAT_LOG_GET] = "SELECT type, payload, signer, signature,"
	                        " result FROM catalog_log WHERE seq = ?1",
	[KM_STMT_CAT_KEY_GET]
	= "SELECT key_id, label, key_type, bits, threshold, epoch, state,"
	  " public_data, policy, next_epoch, next_threshold, created_seq,"
	  " updated_seq, app_id, next_acked FROM keys WHERE key_id = ?1",
	[KM_STMT_CAT_KEY_BY_LABEL] = "SELECT key_id FROM keys WHERE label = ?1"
	                             " AND state != 4",
	[KM_STMT_CAT_KEY_LIST] = "SELECT key_id FROM keys WHERE state != 4"
	                         " ORDER BY key_id",
	[KM_STMT_CAT_KEY_INSERT]
	= "INSERT INTO keys (key_id, label, key_type, bits, threshold,"
	  " epoch, state, public_data, policy, created_seq, updated_seq)"
	  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?9)",
	[KM_STMT_CAT_KEY_SET_STATE] = "UPDATE keys SET state = ?2,"
	                              " updated_seq = ?3 WHERE key_id = ?1",
	[KM_STMT_CAT_KEY_RESHARE_BEGIN]
	= "UPDATE keys SET state = 3, next_epoch = ?2, next_threshold = ?3,"
	  " next_public_data = ?4, updated_seq = ?5, next_acked = 0"
	  " WHERE key_id = ?1",
	[KM_STMT_CAT_KEY_SET_ACKED] = "UPDATE keys SET next_acked = 1"
	                              " WHERE key_id = ?1",
	[KM_STMT_CAT_KEY_RESHARE_COMMIT]
	= "UPDATE keys SET state = 2, epoch = next_epoch,"
	  " threshold = next_threshold, public_data = next_public_data,"
	  " next_epoch = 0, next_threshold = 0, next_public_data = NULL,"
	  " next_acked = 0, updated_seq = ?2 WHERE key_id = ?1",
	[KM_STMT_CAT_KEY_RESHARE_ABORT]
	= "UPDATE keys SET state = 2, next_epoch = 0, next_threshold = 0,"
	  " next_public_data = NULL, next_acked = 0, updated_seq = ?2"
	  " WHERE key_id = ?1",
	[KM_STMT_CAT_KEY_SET_POLICY] = "UPDATE keys SET policy = ?2,"
	                               " updated_seq = ?3 WHERE key_id = ?1",
	[KM_STMT_CAT_LABEL_LIVE] = "SELECT 1 FROM keys WHERE label = ?1"
	                           " AND state != 4",
	[KM_STMT_CAT_HOLDER_INSERT] = "INSERT INTO key_holders (key_id, epoch,"
	                              " share_index, node)"
	                              " VALUES (?1, ?2, ?3, ?4)",
	[KM_STMT_CAT_HOLDER_LIST] = "SELECT share_index, node FROM key_holders"
	                            " WHERE key_id = ?1 AND epoch = ?2"
	                            " ORDER BY share_index",
	[KM_STMT_CAT_HOLDER_DELETE_EPOCH] = "DELETE FROM key_holders"
	                                    " WHERE key_id = ?1"
	                                    " AND epoch = ?2",
	[KM_STMT_CAT_HOLDER_DELETE_OLDER] = "DELETE FROM key_holders"
	                                    " WHERE key_id = ?1"
	                                    " AND epoch < ?2",
	[KM_STMT_CAT_MEMBER_GET] = "SELECT role, cert FROM members"
	                           " WHERE node = ?1",
	[KM_STMT_CAT_MEMBER_INSERT] = "INSERT INTO members (node, role, cert,"
	                              " added_seq) VALUES (?1, ?2, ?3, ?4)",
	[KM_STMT_CAT_MEMBER_DELETE] = "DELETE FROM members WHERE node = ?1",
	[KM_STMT_CAT_POLICY_GET] = "SELECT policy FROM policies"
	                           " WHERE scope = ?1",
	[KM_STMT_CAT_POLICY_SET] = "INSERT OR REPLACE INTO policies (scope,"
	                           " policy, seq) VALUES (?1, ?2, ?3)",
	[KM_STMT_CAT_KEY_SET_APP_ID] = "UPDATE keys SET app_id = ?2,"
	                               " updated_seq = ?3 WHERE key_id = ?1",
	[KM_STMT_CAT_OBJECT_GET]
	= "SELECT object_id, partition, class, cka_id, label, flags, value,"
	  " attrs, state, created_seq, updated_seq FROM objects"
	  " WHERE object_id = ?1",
	[KM_STMT_CAT_OBJECT_LIST] = "SELECT object_id FROM objects"
	                            " WHERE state = 1 ORDER BY object_id",
	[KM_STMT_CAT_OBJECT_INSERT]
	= "INSERT INTO objects (object_id, partition, class, cka_id, label,"
	  " flags, value, attrs, state, created_seq, updated_seq)"
	  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9)",
	[KM_STMT_CAT_OBJECT_UPDATE]
	= "UPDATE objects SET cka_id = ?4, label = ?5, flags = ?6,"
	  " value = ?7, attrs = ?8, updated_seq = ?9 WHERE object_id = ?1"
	  " AND partition = ?2 AND class = ?3",
	[KM_STMT_CAT_OBJECT_DELETE]
	= "UPDATE objects SET state = 2, value = x'', attrs = x'',"
	  " updated_seq = ?2 WHERE object_id = ?1",
	[KM_STMT_CAT_EVICTED_GET]
	= "SELECT node, cert_sha256, evidence_sha256, reason, nvotes, seq"
	  " FROM evicted WHERE node = ?1",
	[KM_STMT_CAT_EVICTED_INSERT]
	= "INSERT INTO evicted (node, cert_sha256, evidence_sha256, reason,"
	  " nvotes, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[KM_STMT_CAT_EVICTED_LIST]
	= "SELECT node, cert_sha256, evidence_sha256, reason, nvotes, seq"
	  " FROM evicted ORDER BY node",
	[KM_STMT_CAT_MESH_NODES]
	= "SELECT node FROM members WHERE role = 1"
	  " UNION SELECT h.node FROM key_holders h JOIN keys k"
	  " ON h.key_id = k.key_id AND h.epoch = k.epoch WHERE k.state != 4"
	  " EXCEPT SELECT node FROM evicted ORDER BY 1",
	[KM_STMT_CAT_MAX_THRESHOLD] = "SELECT COALESCE(MAX(threshold), 0)"
	                              " FROM keys WHERE state != 4",
	[KM_STMT_AUDIT_HEAD_GET] = "SELECT last_seq, head_hash FROM audit_head"
	                           " WHERE id = 1",
	[KM_STMT_AUDIT_HEAD_SET] = "UPDATE audit_head SET last_seq = ?1,"
	                           " head_hash = ?2 WHERE id = 1",
	[KM_STMT_AUDIT_INSERT] = "INSERT INTO audit_log (seq, time_ms, client,"
	                         " key_id, operation, input_sha256, outcome,"
	                         " prev_hash, hash) VALUES (?1, ?2, ?3, ?4,"
	                         " ?5, ?6, ?7, ?8, ?9)",
	[KM_STMT_AUDIT_GET] = "SELECT seq, time_ms, client, key_id, operation,"
	                      " input_sha256, outcome, prev_hash, hash"
	                      " FROM audit_log WHERE seq = ?1",
	[KM_STMT_AUDIT_WALK] = "SELECT seq, time_ms, client, key_id,"
	                       " operation, input_sha256, outcome, prev_hash,"
	                       " hash FROM audit_log ORDER BY seq",
	[KM_STMT_BEGIN] = "BEGIN IMMEDIATE",
	[KM_STMT_COMMIT] = "COMMIT",
	[KM_STMT_ROLLBACK] = "ROLLBACK",
	[KM_STMT_SAVEPOINT] = "SAVEPOINT km_apply",
	[KM_STMT_ROLLBACK_TO] = "ROLLBACK TO km_apply",
	[KM_STMT_RELEASE] = "RELEASE km_apply",
};

int
km_store_sqlerr(km_store *s, int rc, const char *what)
{
	int r;

	if (rc == SQLITE_OK) {
		return 0;
	}
	switch (rc & 0xff) {
	case SQLITE_DONE:
	case SQLITE_ROW:
		/* Only called on failure: a missing or extra row is one. */
		r = KM_ERR_INTERNAL;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		r = KM_ERR_BUSY;
		break;
	case SQLITE_NOMEM:
		r = KM_ERR_ALLOC;
		break;
	case SQLITE_CONSTRAINT:
		/* Callers check their preconditions first: a constraint
		 * failing here means the schema and the code disagree. */
		r = KM_ERR_INTERNAL;
		break;
	case SQLITE_TOOBIG:
		r = KM_ERR_TOO_LARGE;
		break;
	default:
		r = KM_ERR_IO;
		break;
	}
	km_log_error_r(r, "KM-STORE-SQL", "%s: sqlite %d (%s)", what, rc,
	    s != NULL && s->db != NULL ? sqlite3_errmsg(s->db)
	                               : sqlite3_errstr(rc));
	return r;
}

void
km_store_lock(km_store *s)
{
	(void)pthread_mutex_lock(&s->mu);
}

void
km_store_unlock(km_store *s)
{
	(void)pthread_mutex_unlock(&s->mu);
}

int
km_store_stmt(km_store *s, km_stmt_id id, sqlite3_stmt **out)
{
	int rc;

	if (id >= KM_STMT_COUNT || km_store_sql[id] == NULL) {
		return KM_ERR_INTERNAL;
	}
	if (s->stmt[id] == NULL) {
		rc = sqlite3_prepare_v3(s->db, km_store_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			return km_store_sqlerr(s, rc, "prepare");
		}
	} else {
		(void)sqlite3_reset(s->stmt[id]);
		(void)sqlite3_clear_bindings(s->stmt[id]);
	}
	*out = s->stmt[id];
	return 0;
}

int
km_store_exec_stmt(km_store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int r = (rc == SQLITE_DONE) ? 0 : km_store_sqlerr(s, rc, what);

	(void)sqlite3_reset(st);
	return r;
}

int
km_store_run(km_store *s, km_stmt_id id, const char *what)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = km_store_stmt(s, id, &st)) != 0) {
		return r;
	}
	return km_store_exec_stmt(s, st, what);
}

int
km_store_begin(km_store *s)
{
	return km_store_run(s, KM_STMT_BEGIN, "begin");
}

int
km_store_commit(km_store *s)
{
	int r = km_store_run(s, KM_STMT_COMMIT, "commit");

	if (r != 0 && !sqlite3_get_autocommit(s->db)) {
		km_store_rollback(s);
	}
	return r;
}

void
km_store_rollback(km_store *s)
{
	if (!sqlite3_get_autocommit(s->db)) {
		(void)km_store_run(s, KM_STMT_ROLLBACK, "rollback");
	}
}

static int
km_store_exec(km_store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : km_store_sqlerr(s, rc, what);
}

static int
km_store_version_locked(km_store *s, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(s->db,
	    "SELECT COALESCE(MAX(version), 0) FROM schema_version", -1, &st,
	    NULL);
	if (rc != SQLITE_OK) {
		return km_store_sqlerr(s, rc, "schema version");
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "schema version");
		goto out;
	}
	*version = sqlite3_column_int(st, 0);
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

static int
km_store_migrate(km_store *s)
{
	sqlite3_stmt *st = NULL;
	int version = 0, target = (int)KM_ARRAY_LEN(km_store_migrations);
	int r, rc;

	/* The version table itself is created outside any step. */
	if ((r = km_store_exec(s,
	         "CREATE TABLE IF NOT EXISTS schema_version ("
	         " version INTEGER PRIMARY KEY,"
	         " applied_ms INTEGER NOT NULL)",
	         "schema table"))
	    != 0) {
		return r;
	}
	for (;;) {
		if ((r = km_store_exec(s, "BEGIN IMMEDIATE", "begin")) != 0) {
			return r;
		}
		/* Read the version inside the transaction, so two processes
		 * opening a new store at once do not both migrate. */
		if ((r = km_store_version_locked(s, &version)) != 0) {
			goto fail;
		}
		if (version > target) {
			km_log_error("KM-STORE-VERSION",
			    "schema version %d is newer than this keymesh "
			    "(%d)",
			    version, target);
			r = KM_ERR_BAD_VERSION;
			goto fail;
		}
		if (version == target) {
			return km_store_exec(s, "COMMIT", "commit");
		}
		if ((r = km_store_exec(
		         s, km_store_migrations[version], "migration"))
		    != 0) {
			goto fail;
		}
		rc = sqlite3_prepare_v2(s->db,
		    "INSERT INTO schema_version VALUES (?1, ?2)", -1, &st,
		    NULL);
		if (rc != SQLITE_OK) {
			r = km_store_sqlerr(s, rc, "schema version");
			goto fail;
		}
		sqlite3_bind_int(st, 1, version + 1);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)km_now_ms());
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		st = NULL;
		if (rc != SQLITE_DONE) {
			r = km_store_sqlerr(s, rc, "schema version");
			goto fail;
		}
		if ((r = km_store_exec(s, "COMMIT", "commit")) != 0) {
			goto fail;
		}
		km_log_info(
		    "KM-STORE-MIGRATE", "schema migrated to %d", version + 1);
	}
fail:
	(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int
km_store_pragma_check(km_store *s, const char *sql, const char *expect)
{
	sqlite3_stmt *st = NULL;
	const char *v;
	int rc, r;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL))
	    != SQLITE_OK) {
		return km_store_sqlerr(s, rc, sql);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = expect == NULL ? 0 : KM_ERR_VERIFY;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, sql);
		goto out;
	}
	v = (const char *)sqlite3_column_text(st, 0);
	if (expect == NULL || v == NULL || strcmp(v, expect) != 0) {
		km_log_error(
		    "KM-STORE-CORRUPT", "%s: %s", sql, v != NULL ? v : "row");
		r = KM_ERR_VERIFY;
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

int
km_store_open(const char *path, km_store **out)
{
	km_store *s = NULL;
	int r, rc, fd;

	if (path == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	/* Create the file ourselves so it is 0600 from its first byte;
	 * SQLite gives its -wal and -shm files the same mode. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		km_log_error("KM-STORE-OPEN", "%s: %s", path, strerror(errno));
		return errno == ENOENT ? KM_ERR_NOT_FOUND : KM_ERR_IO;
	}
	close(fd);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return KM_ERR_ALLOC;
	}
	rc = sqlite3_open_v2(path, &s->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX
	        | SQLITE_OPEN_EXRESCODE,
	    NULL);
	if (rc != SQLITE_OK) {
		r = km_store_sqlerr(s, rc, "open");
		goto out;
	}
	(void)sqlite3_busy_timeout(s->db, 5000);
	/* journal_mode returns the mode it ended in: check it is WAL. */
	if ((r = km_store_pragma_check(s, "PRAGMA journal_mode=WAL", "wal"))
	    != 0) {
		r = (r == KM_ERR_VERIFY) ? KM_ERR_IO : r;
		goto out;
	}
	if ((r = km_store_exec(s,
	         "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
	         " PRAGMA secure_delete=ON; PRAGMA trusted_schema=OFF",
	         "pragmas"))
	    != 0) {
		goto out;
	}
	if ((r = km_store_migrate(s)) != 0) {
		goto out;
	}
	*out = s;
	s = NULL;
	r = 0;
out:
	km_store_close(s);
	return r;
}

int
km_store_open_dir(const char *dir, km_store **out)
{
	char path[4096];
	int r;

	if (dir == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_mkdir_p(dir, 0700)) != 0) {
		return r;
	}
	if ((r = km_path_join(path, sizeof(path), dir, KM_STORE_FILE)) != 0) {
		return r;
	}
	return km_store_open(path, out);
}

void
km_store_close(km_store *s)
{
	size_t i;

	if (s == NULL) {
		return;
	}
	for (i = 0; i < KM_STMT_COUNT; i++) {
		sqlite3_finalize(s->stmt[i]);
	}
	if (s->db != NULL) {
		sqlite3_close(s->db);
	}
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int
km_store_set_node(km_store *s, const char *name)
{
	if (s == NULL || name == NULL || !km_name_valid(name)) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	snprintf(s->node, sizeof(s->node), "%s", name);
	km_store_unlock(s);
	return 0;
}

int
km_store_schema_version(km_store *s, int *version)
{
	int r;

	if (s == NULL || version == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_store_version_locked(s, version);
	km_store_unlock(s);
	return r;
}

int
km_store_integrity_check(km_store *s)
{
	int r;

	if (s == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_pragma_check(s, "PRAGMA integrity_check", "ok"))
	    == 0) {
		/* foreign_key_check returns no row when all is well. */
		r = km_store_pragma_check(s, "PRAGMA foreign_key_check", NULL);
	}
	km_store_unlock(s);
	return r;
}

/* ---- shares: two-phase install ---------------------------------------- */

static bool
km_share_args_ok(const char *key_id, uint32_t epoch)
{
	return km_name_valid(key_id) && epoch > 0 && epoch <= INT32_MAX;
}

/* min/max state and count of (key, epoch)'s shares. */
static int
km_share_epoch_state(km_store *s, const char *key_id, uint32_t epoch, int *min,
    int *max, int *count)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = km_store_stmt(s, KM_STMT_SHARE_EPOCH_STATE, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "share state");
		goto out;
	}
	*min = sqlite3_column_int(st, 0);
	*max = sqlite3_column_int(st, 1);
	*count = sqlite3_column_int(st, 2);
	r = 0;
out:
	(void)sqlite3_reset(st);
	return r;
}

int
km_store_share_prepare(km_store *s, const char *key_id, uint32_t epoch,
    uint32_t index, const uint8_t *blob, size_t len, uint64_t now_ms)
{
	sqlite3_stmt *st = NULL;
	int64_t newest;
	int min = 0, max = 0, count = 0, r, rc;

	if (s == NULL || !km_share_args_ok(key_id, epoch) || index == 0
	    || index > INT32_MAX || blob == NULL || len == 0) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_STORE_BLOB_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	if (now_ms == 0) {
		now_ms = km_now_ms();
	}
	km_store_lock(s);
	if ((r = km_store_begin(s)) != 0) {
		goto unlock;
	}
	if ((r = km_share_epoch_state(s, key_id, epoch, &min, &max, &count))
	    != 0) {
		goto out;
	}
	/* WARNING: the invariant "a key's shares of one epoch are all
	 * prepared or all committed" depends on this check. */
	if (count > 0 && max == KM_SHARE_COMMITTED) {
		r = KM_ERR_STATE;
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_SHARE_MAX_COMMITTED, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "share newest");
		goto out;
	}
	newest = sqlite3_column_int64(st, 0);
	(void)sqlite3_reset(st);
	if (newest >= (int64_t)epoch) {
		/* Never install a sharing older than a committed one. */
		r = KM_ERR_STATE;
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_SHARE_GET, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	sqlite3_bind_int64(st, 3, index);
	rc = sqlite3_step(st);
	(void)sqlite3_reset(st);
	if (rc == SQLITE_ROW) {
		r = KM_ERR_EXISTS;
		goto out;
	} else if (rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, "share get");
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_SHARE_INSERT, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	sqlite3_bind_int64(st, 3, index);
	sqlite3_bind_blob(st, 4, blob, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)now_ms);
	if ((r = km_store_exec_stmt(s, st, "share insert")) != 0) {
		goto out;
	}
	r = km_store_commit(s);
out:
	if (r != 0) {
		km_store_rollback(s);
	}
unlock:
	km_store_unlock(s);
	return r;
}

int
km_store_share_commit_locked(km_store *s, const char *key_id, uint32_t epoch)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = km_store_stmt(s, KM_STMT_SHARE_COMMIT, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	return km_store_exec_stmt(s, st, "share commit");
}

int
km_store_share_commit(km_store *s, const char *key_id, uint32_t epoch)
{
	int min = 0, max = 0, count = 0, r;

	if (s == NULL || !km_share_args_ok(key_id, epoch)) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_begin(s)) != 0) {
		goto unlock;
	}
	if ((r = km_share_epoch_state(s, key_id, epoch, &min, &max, &count))
	    != 0) {
		goto out;
	}
	if (count == 0) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	}
	if ((r = km_store_share_commit_locked(s, key_id, epoch)) != 0) {
		goto out;
	}
	r = km_store_commit(s);
out:
	if (r != 0) {
		km_store_rollback(s);
	}
unlock:
	km_store_unlock(s);
	return r;
}

int
km_store_share_abort_locked(km_store *s, const char *key_id, uint32_t epoch)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = km_store_stmt(s, KM_STMT_SHARE_ABORT, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	return km_store_exec_stmt(s, st, "share abort");
}

int
km_store_share_abort(km_store *s, const char *key_id, uint32_t epoch)
{
	int min = 0, max = 0, count = 0, r;

	if (s == NULL || !km_share_args_ok(key_id, epoch)) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_begin(s)) != 0) {
		goto unlock;
	}
	if ((r = km_share_epoch_state(s, key_id, epoch, &min, &max, &count))
	    != 0) {
		goto out;
	}
	if (count > 0 && max == KM_SHARE_COMMITTED) {
		r = KM_ERR_STATE;
		goto out;
	}
	if ((r = km_store_share_abort_locked(s, key_id, epoch)) != 0) {
		goto out;
	}
	r = km_store_commit(s);
out:
	if (r != 0) {
		km_store_rollback(s);
	}
unlock:
	km_store_unlock(s);
	return r;
}

int
km_store_share_delete_older_locked(
    km_store *s, const char *key_id, uint32_t epoch)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = km_store_stmt(s, KM_STMT_SHARE_DELETE_OLDER, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	return km_store_exec_stmt(s, st, "share delete older");
}

int
km_store_share_delete_key_locked(km_store *s, const char *key_id)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = km_store_stmt(s, KM_STMT_SHARE_DELETE_KEY, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	return km_store_exec_stmt(s, st, "share delete key");
}

int
km_store_share_delete_epoch_locked(
    km_store *s, const char *key_id, uint32_t epoch)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = km_store_stmt(s, KM_STMT_SHARE_DELETE_EPOCH, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	return km_store_exec_stmt(s, st, "share delete epoch");
}

int
km_store_share_get(km_store *s, const char *key_id, uint32_t epoch,
    uint32_t index, km_share_state *state, uint8_t **blob, size_t *len)
{
	sqlite3_stmt *st = NULL;
	const void *p;
	uint8_t *copy = NULL;
	int n, r, rc;

	if (s == NULL || !km_share_args_ok(key_id, epoch) || index == 0
	    || blob == NULL || len == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_SHARE_GET, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	sqlite3_bind_int64(st, 3, index);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "share get");
		goto out;
	}
	p = sqlite3_column_blob(st, 1);
	n = sqlite3_column_bytes(st, 1);
	if (p == NULL || n <= 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if ((copy = malloc((size_t)n)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	memcpy(copy, p, (size_t)n);
	if (state != NULL) {
		*state = (km_share_state)sqlite3_column_int(st, 0);
	}
	*blob = copy;
	copy = NULL;
	*len = (size_t)n;
	r = 0;
out:
	(void)sqlite3_reset(st);
	km_store_unlock(s);
	free(copy);
	return r;
}

int
km_store_share_list(
    km_store *s, const char *key_id, km_share_info **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	km_share_info *v = NULL, *nv;
	size_t cnt = 0;
	int r, rc;

	if (s == NULL || !km_name_valid(key_id) || out == NULL || n == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_SHARE_LIST, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		v = nv;
		v[cnt].epoch = (uint32_t)sqlite3_column_int64(st, 0);
		v[cnt].index = (uint32_t)sqlite3_column_int64(st, 1);
		v[cnt].state = (km_share_state)sqlite3_column_int(st, 2);
		v[cnt].created_ms = (uint64_t)sqlite3_column_int64(st, 3);
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, "share list");
		goto out;
	}
	*out = v;
	v = NULL;
	*n = cnt;
	r = 0;
out:
	(void)sqlite3_reset(st);
	km_store_unlock(s);
	free(v);
	return r;
}

int
km_store_share_count(km_store *s, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (s == NULL || n == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_SHARE_COUNT, &st)) != 0) {
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "share count");
		goto out;
	}
	*n = (size_t)sqlite3_column_int64(st, 0);
	r = 0;
out:
	(void)sqlite3_reset(st);
	km_store_unlock(s);
	return r;
}
