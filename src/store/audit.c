/*
 * The hash-chained audit log.
 *
 * hash(n) = SHA-256(canonical(n)), where canonical(n) encodes every field
 * of record n and hash(n-1) (all zeros for n = 1): see docs/storage.md.
 * The sequence number is part of what is hashed, so a record moved to
 * another position fails even if its links were rewritten.
 */
#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "store/audit.h"
#include "store/store-int.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

static const char km_audit_ctx[] = "keymesh-audit-v1";

int
km_audit_sha256(const void *data, size_t len, uint8_t out[KM_AUDIT_HASH_LEN])
{
	unsigned int n = 0;

	if ((data == NULL && len > 0) || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (EVP_Digest(len > 0 ? data : (const void *)"", len, out, &n,
	        EVP_sha256(), NULL)
	        != 1
	    || n != KM_AUDIT_HASH_LEN) {
		return KM_ERR_CRYPTO;
	}
	return 0;
}

int
km_audit_record_hash(const km_audit_record *r, uint8_t out[KM_AUDIT_HASH_LEN])
{
	km_buf b;
	int rc;

	if (r == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_buf_init(&b);
	(void)km_buf_put_cstring(&b, km_audit_ctx);
	(void)km_buf_put_u64(&b, r->seq);
	(void)km_buf_put_u64(&b, r->time_ms);
	(void)km_buf_put_cstring(&b, r->client);
	(void)km_buf_put_cstring(&b, r->key_id);
	(void)km_buf_put_cstring(&b, r->operation);
	(void)km_buf_put_string(&b, r->input_sha256, KM_AUDIT_HASH_LEN);
	(void)km_buf_put_u32(&b, (uint32_t)r->outcome);
	(void)km_buf_put_string(&b, r->prev_hash, KM_AUDIT_HASH_LEN);
	if (km_buf_failed(&b)) {
		rc = KM_ERR_ALLOC;
	} else {
		rc = km_audit_sha256(b.data, b.len, out);
	}
	km_buf_free(&b);
	return rc;
}

/* Printable text only: no control characters reach an operator's
 * terminal through `keymesh audit`. */
static bool
km_audit_field_ok(const char *s)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) > KM_AUDIT_FIELD_MAX) {
		return false;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			return false;
		}
	}
	return true;
}

static int
km_audit_head_locked(km_store *s, uint64_t *seq, uint8_t head[32])
{
	sqlite3_stmt *st = NULL;
	const void *h;
	int r, rc;

	if ((r = km_store_stmt(s, KM_STMT_AUDIT_HEAD_GET, &st)) != 0) {
		return r;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "audit head");
		goto out;
	}
	*seq = (uint64_t)sqlite3_column_int64(st, 0);
	h = sqlite3_column_blob(st, 1);
	if (h == NULL || sqlite3_column_bytes(st, 1) != KM_AUDIT_HASH_LEN) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	memcpy(head, h, KM_AUDIT_HASH_LEN);
	r = 0;
out:
	(void)sqlite3_reset(st);
	return r;
}

int
km_audit_append(km_store *s, uint64_t time_ms, const char *client,
    const char *key_id, const char *operation,
    const uint8_t input_sha256[KM_AUDIT_HASH_LEN], int outcome, uint64_t *seq)
{
	km_audit_record rec;
	sqlite3_stmt *st = NULL;
	int r;

	if (s == NULL || !km_audit_field_ok(client)
	    || !km_audit_field_ok(key_id) || !km_audit_field_ok(operation)
	    || operation[0] == '\0' || input_sha256 == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&rec, 0, sizeof(rec));
	rec.time_ms = (time_ms != 0) ? time_ms : km_now_ms();
	/* The lengths were checked above: these copies cannot truncate. */
	memcpy(rec.client, client, strlen(client) + 1);
	memcpy(rec.key_id, key_id, strlen(key_id) + 1);
	memcpy(rec.operation, operation, strlen(operation) + 1);
	memcpy(rec.input_sha256, input_sha256, KM_AUDIT_HASH_LEN);
	rec.outcome = outcome;

	km_store_lock(s);
	if ((r = km_store_begin(s)) != 0) {
		goto unlock;
	}
	if ((r = km_audit_head_locked(s, &rec.seq, rec.prev_hash)) != 0) {
		goto out;
	}
	rec.seq++;
	if ((r = km_audit_record_hash(&rec, rec.hash)) != 0) {
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_AUDIT_INSERT, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)rec.seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)rec.time_ms);
	sqlite3_bind_text(st, 3, rec.client, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, rec.key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, rec.operation, -1, SQLITE_STATIC);
	sqlite3_bind_blob(
	    st, 6, rec.input_sha256, KM_AUDIT_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, rec.outcome);
	sqlite3_bind_blob(
	    st, 8, rec.prev_hash, KM_AUDIT_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 9, rec.hash, KM_AUDIT_HASH_LEN, SQLITE_STATIC);
	if ((r = km_store_exec_stmt(s, st, "audit insert")) != 0) {
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_AUDIT_HEAD_SET, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)rec.seq);
	sqlite3_bind_blob(st, 2, rec.hash, KM_AUDIT_HASH_LEN, SQLITE_STATIC);
	if ((r = km_store_exec_stmt(s, st, "audit head")) != 0) {
		goto out;
	}
	if ((r = km_store_commit(s)) != 0) {
		goto out;
	}
	if (seq != NULL) {
		*seq = rec.seq;
	}
	r = 0;
out:
	if (r != 0) {
		km_store_rollback(s);
	}
unlock:
	km_store_unlock(s);
	return r;
}

/* Copies a text column into a fixed field; refuses what is too long. */
static int
km_audit_col_text(sqlite3_stmt *st, int col, char *dst)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL || n < 0 || n > KM_AUDIT_FIELD_MAX) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
	return 0;
}

static int
km_audit_col_hash(sqlite3_stmt *st, int col, uint8_t *dst)
{
	const void *p = sqlite3_column_blob(st, col);

	if (p == NULL || sqlite3_column_bytes(st, col) != KM_AUDIT_HASH_LEN) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(dst, p, KM_AUDIT_HASH_LEN);
	return 0;
}

static int
km_audit_row(sqlite3_stmt *st, km_audit_record *rec)
{
	int r;

	memset(rec, 0, sizeof(*rec));
	rec->seq = (uint64_t)sqlite3_column_int64(st, 0);
	rec->time_ms = (uint64_t)sqlite3_column_int64(st, 1);
	rec->outcome = sqlite3_column_int(st, 6);
	if ((r = km_audit_col_text(st, 2, rec->client)) != 0
	    || (r = km_audit_col_text(st, 3, rec->key_id)) != 0
	    || (r = km_audit_col_text(st, 4, rec->operation)) != 0
	    || (r = km_audit_col_hash(st, 5, rec->input_sha256)) != 0
	    || (r = km_audit_col_hash(st, 7, rec->prev_hash)) != 0
	    || (r = km_audit_col_hash(st, 8, rec->hash)) != 0) {
		return r;
	}
	return 0;
}

int
km_audit_get(km_store *s, uint64_t seq, km_audit_record *rec)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (s == NULL || rec == NULL || seq == 0 || seq > INT64_MAX) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_AUDIT_GET, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "audit get");
		goto out;
	}
	r = km_audit_row(st, rec);
out:
	(void)sqlite3_reset(st);
	km_store_unlock(s);
	return r;
}

int
km_audit_verify(km_store *s, uint64_t *bad_seq, uint64_t *count)
{
	km_audit_record rec;
	sqlite3_stmt *st = NULL;
	uint8_t prev[KM_AUDIT_HASH_LEN], calc[KM_AUDIT_HASH_LEN];
	uint8_t head[KM_AUDIT_HASH_LEN];
	uint64_t expect = 1, head_seq = 0, bad = 0;
	int r, rc;

	if (s == NULL || bad_seq == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	memset(prev, 0, sizeof(prev));
	/* XXX: the walk holds the connection for its whole length; when logs
	 * grow large, verify on a second, read-only connection (WAL lets it
	 * read beside the writer). */
	km_store_lock(s);
	/* One read transaction: the walk and the head are one snapshot. */
	if ((r = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL))
	    != SQLITE_OK) {
		r = km_store_sqlerr(s, r, "audit verify");
		goto unlock;
	}
	if ((r = km_audit_head_locked(s, &head_seq, head)) != 0) {
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_AUDIT_WALK, &st)) != 0) {
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (km_audit_row(st, &rec) != 0) {
			bad = expect; /* a field was mangled past parsing */
			break;
		}
		if (rec.seq != expect) {
			/* A gap is a deleted record; a smaller number cannot
			 * happen with ORDER BY, so this is a deletion. */
			bad = expect;
			break;
		}
		if (CRYPTO_memcmp(rec.prev_hash, prev, sizeof(prev)) != 0) {
			bad = rec.seq;
			break;
		}
		if ((r = km_audit_record_hash(&rec, calc)) != 0) {
			goto out;
		}
		if (CRYPTO_memcmp(calc, rec.hash, sizeof(calc)) != 0) {
			bad = rec.seq;
			break;
		}
		memcpy(prev, rec.hash, sizeof(prev));
		expect++;
	}
	if (bad == 0 && rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, "audit walk");
		goto out;
	}
	if (bad == 0 && head_seq != expect - 1) {
		/* Records missing at the end (or the head was edited). */
		bad = (head_seq > expect - 1) ? expect : head_seq + 1;
	} else if (bad == 0 && CRYPTO_memcmp(head, prev, sizeof(prev)) != 0) {
		bad = head_seq;
	}
	if (count != NULL) {
		*count = expect - 1;
	}
	*bad_seq = bad;
	if (bad != 0) {
		km_log_error("KM-AUDIT-BROKEN",
		    "audit chain breaks at record %llu",
		    (unsigned long long)bad);
		r = KM_ERR_VERIFY;
		goto out;
	}
	r = 0;
out:
	(void)sqlite3_reset(st);
	(void)sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
unlock:
	km_store_unlock(s);
	return r;
}
