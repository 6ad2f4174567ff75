/*
 * Unit tests for src/store: the schema, the two-phase share install, the
 * catalog state machine, and crash safety under kill -9.
 *
 * Catalog entries are signed for real (Ed25519 through EVP) and checked by
 * a verify callback, as the daemon will do with the mesh PKI.  Tests edit
 * the database behind the store's back with a second SQLite connection.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "kmt.h"
#include "store/audit.h"
#include "store/catalog.h"
#include "trust/policy.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

static EVP_PKEY *admin_key; /* signs the good entries */
static EVP_PKEY *rogue_key; /* signs entries that must be refused */
static const char admin_id[] = "admin";

/* ---- helpers -------------------------------------------------------------
 */

static int
verify_cb(
    void *arg, const km_catalog_entry *e, const uint8_t *tbs, size_t tbs_len)
{
	EVP_MD_CTX *ctx;
	int ok;

	(void)arg;
	if (e->signer_len != strlen(admin_id)
	    || memcmp(e->signer, admin_id, e->signer_len) != 0) {
		return KM_ERR_AUTH;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, admin_key) == 1
	    && EVP_DigestVerify(ctx, e->sig, e->sig_len, tbs, tbs_len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : KM_ERR_VERIFY;
}

/* Signs @e (seq, type and payload set) with @key into @sig. */
static int
sign_entry(km_catalog_entry *e, EVP_PKEY *key, uint8_t sig[64])
{
	EVP_MD_CTX *ctx = NULL;
	size_t siglen = 64;
	km_buf tbs;
	int r = -1;

	km_buf_init(&tbs);
	if (km_catalog_entry_tbs(e, &tbs) != 0
	    || (ctx = EVP_MD_CTX_new()) == NULL) {
		goto out;
	}
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1
	    || EVP_DigestSign(ctx, sig, &siglen, tbs.data, tbs.len) != 1) {
		goto out;
	}
	e->sig = sig;
	e->sig_len = siglen;
	e->signer = (uint8_t *)admin_id;
	e->signer_len = strlen(admin_id);
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	km_buf_free(&tbs);
	return r;
}

/* Encodes @p, signs it as entry @seq (0: next) and applies it. */
static int
apply_at(km_store *s, uint64_t seq, const km_catalog_payload *p, int *result)
{
	km_catalog_entry e;
	uint8_t sig[64];
	uint64_t last;
	km_buf pb;
	int r;

	km_buf_init(&pb);
	if ((r = km_catalog_payload_encode(p, &pb)) != 0) {
		goto out;
	}
	if (seq == 0) {
		if ((r = km_catalog_last_seq(s, &last, NULL)) != 0) {
			goto out;
		}
		seq = last + 1;
	}
	memset(&e, 0, sizeof(e));
	e.seq = seq;
	e.type = p->type;
	e.payload = pb.data;
	e.payload_len = pb.len;
	if (sign_entry(&e, admin_key, sig) != 0) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = km_catalog_apply(s, &e, verify_cb, NULL, result);
out:
	km_buf_free(&pb);
	return r;
}

/* An empty policy: no restriction. */
static uint8_t empty_policy[8];

/* An empty attribute list (uint32 0), for objects in the crash test. */
static uint8_t kill9_attrs[4];

static void mk_object(km_catalog_payload *p, const char *id, uint32_t cls,
    const char *value, const char *app_id);

static void
mk_create(km_catalog_payload *p, const char *id, const char *label,
    km_catalog_holder *h, size_t nh, uint32_t threshold)
{
	memset(p, 0, sizeof(*p));
	p->type = KM_CAT_KEY_CREATE;
	snprintf(p->key_id, sizeof(p->key_id), "%s", id);
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->key_type = KM_KEY_EC_P256;
	p->bits = 256;
	p->threshold = threshold;
	p->epoch = 1;
	p->holders = h;
	p->nholders = nh;
	p->public_data = (uint8_t *)"\x04pubkey";
	p->public_len = 7;
	p->policy = empty_policy;
	p->policy_len = sizeof(empty_policy);
}

static void
mk_key_op(km_catalog_payload *p, uint32_t type, const char *id, uint32_t epoch)
{
	memset(p, 0, sizeof(*p));
	p->type = type;
	snprintf(p->key_id, sizeof(p->key_id), "%s", id);
	p->epoch = epoch;
}

static const char *
store_path(const char *dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, KM_STORE_FILE);
	return buf;
}

/* Runs SQL on a second connection, as an attacker or a test would. */
static int
raw_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* One integer from a query on a second connection (-1 on error). */
static long long
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK
	    && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK
	    && sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static km_store *
fresh_store(char *path, size_t len)
{
	const char *dir = kmt_tmpdir();
	km_store *s = NULL;

	if (dir == NULL || km_store_open_dir(dir, &s) != 0) {
		return NULL;
	}
	store_path(dir, path, len);
	return s;
}

static const uint8_t blob1[] = "wrapped-share-one";
static const uint8_t blob2[] = "wrapped-share-two";

/* ---- schema --------------------------------------------------------------
 */

static void
test_open_schema(void)
{
	char path[4200];
	struct stat st;
	km_store *s;
	int v = 0;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	CU_ASSERT(km_store_schema_version(s, &v) == 0);
	CU_ASSERT(v == KM_STORE_SCHEMA_VERSION);
	CU_ASSERT(km_store_integrity_check(s) == 0);
	km_store_close(s);
	CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* journal_mode is persistent: another connection sees WAL. */
	CU_ASSERT(raw_int(path,
	              "SELECT count(*) FROM pragma_journal_mode "
	              "WHERE journal_mode = 'wal'")
	    == 1);
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM schema_version")
	    == KM_STORE_SCHEMA_VERSION);
	/* Reopening migrates nothing. */
	CU_ASSERT_FATAL(km_store_open(path, &s) == 0);
	CU_ASSERT(km_store_schema_version(s, &v) == 0
	    && v == KM_STORE_SCHEMA_VERSION);
	km_store_close(s);
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM schema_version")
	    == KM_STORE_SCHEMA_VERSION);
	/* A store written by a newer keymesh is refused, not misread. */
	CU_ASSERT(
	    raw_sql(path, "INSERT INTO schema_version VALUES (99, 0)") == 0);
	s = NULL;
	CU_ASSERT(km_store_open(path, &s) == KM_ERR_BAD_VERSION);
	CU_ASSERT(s == NULL);
}

static void
test_open_garbage(void)
{
	const char *dir = kmt_tmpdir();
	char path[4200];
	km_store *s = NULL;

	CU_ASSERT_FATAL(dir != NULL);
	snprintf(path, sizeof(path), "%s/junk.db", dir);
	CU_ASSERT_FATAL(km_write_file_atomic(path,
	                    "this is not an SQLite database, not at all....."
	                    "................................................",
	                    96, 0600)
	    == 0);
	CU_ASSERT(km_store_open(path, &s) == KM_ERR_IO);
	CU_ASSERT(s == NULL);
	CU_ASSERT(
	    km_store_open("/nonexistent/dir/x.db", &s) == KM_ERR_NOT_FOUND);
	CU_ASSERT(km_store_open(NULL, &s) == KM_ERR_INVALID_ARG);
}

/* ---- shares --------------------------------------------------------------
 */

static void
test_share_two_phase(void)
{
	char path[4200];
	km_store *s;
	km_share_info *info = NULL;
	km_share_state st;
	uint8_t *b = NULL;
	size_t n = 0, len = 0;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 1, blob1, sizeof(blob1), 1000)
	    == 0);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 3, blob2, sizeof(blob2), 1000)
	    == 0);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 3, blob2, sizeof(blob2), 0)
	    == KM_ERR_EXISTS);
	CU_ASSERT(km_store_share_list(s, "k1", &info, &n) == 0);
	CU_ASSERT_FATAL(n == 2 && info != NULL);
	CU_ASSERT(info[0].index == 1 && info[1].index == 3);
	CU_ASSERT(info[0].state == KM_SHARE_PREPARED
	    && info[1].state == KM_SHARE_PREPARED);
	CU_ASSERT(info[0].created_ms == 1000);
	free(info);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 0);

	/* Commit flips every share of the epoch at once. */
	CU_ASSERT(km_store_share_commit(s, "k1", 1) == 0);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 2);
	CU_ASSERT(km_store_share_get(s, "k1", 1, 3, &st, &b, &len) == 0);
	CU_ASSERT(st == KM_SHARE_COMMITTED && len == sizeof(blob2)
	    && memcmp(b, blob2, len) == 0);
	free(b);
	/* Retried commit is harmless; nothing to commit is an error. */
	CU_ASSERT(km_store_share_commit(s, "k1", 1) == 0);
	CU_ASSERT(km_store_share_commit(s, "k1", 7) == KM_ERR_NOT_FOUND);
	/* A committed epoch takes no more shares and is not aborted. */
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 2, blob1, sizeof(blob1), 0)
	    == KM_ERR_STATE);
	CU_ASSERT(km_store_share_abort(s, "k1", 1) == KM_ERR_STATE);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 2);

	/* A new epoch is prepared beside the old and can be aborted. */
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 2, 1, blob2, sizeof(blob2), 0)
	    == 0);
	CU_ASSERT(km_store_share_abort(s, "k1", 2) == 0);
	CU_ASSERT(km_store_share_get(s, "k1", 2, 1, &st, &b, &len)
	    == KM_ERR_NOT_FOUND);
	CU_ASSERT(km_store_share_abort(s, "k1", 2) == 0);
	/* Committing epoch 2 leaves epoch 1 in place: old shares go only
	 * when the catalog commits the re-share. */
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 2, 1, blob2, sizeof(blob2), 0)
	    == 0);
	CU_ASSERT(km_store_share_commit(s, "k1", 2) == 0);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 3);
	/* Never an epoch older than a committed one. */
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 9, blob1, sizeof(blob1), 0)
	    == KM_ERR_STATE);

	/* Bad arguments. */
	CU_ASSERT(km_store_share_prepare(s, "bad id", 1, 1, blob1, 3, 0)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_store_share_prepare(s, "k2", 0, 1, blob1, 3, 0)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_store_share_prepare(s, "k2", 1, 0, blob1, 3, 0)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_store_share_prepare(s, "k2", 1, 1, blob1, 0, 0)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_store_share_prepare(
	              s, "k2", 1, 1, blob1, KM_STORE_BLOB_MAX + 1, 0)
	    == KM_ERR_TOO_LARGE);
	CU_ASSERT(km_store_share_commit(s, NULL, 1) == KM_ERR_INVALID_ARG);
	km_store_close(s);
}

/*
 * Every API leaves the state intact when it fails: a trigger (added behind
 * the store's back) makes the last write of a call fail, and nothing of
 * the call remains.
 */
static void
test_failure_leaves_state(void)
{
	km_catalog_holder h[2] = { { 1, "node1" }, { 2, "boom" } };
	km_catalog_payload p;
	char path[4200];
	uint64_t seq = 0;
	km_catalog_key k;
	km_store *s;
	size_t n;
	int res;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 1, blob1, sizeof(blob1), 0)
	    == 0);
	CU_ASSERT_FATAL(raw_sql(path,
	                    "CREATE TRIGGER no_commit BEFORE UPDATE ON shares "
	                    "BEGIN SELECT RAISE(ABORT, 'injected'); END;"
	                    "CREATE TRIGGER no_boom BEFORE INSERT ON "
	                    "key_holders WHEN NEW.node = 'boom' "
	                    "BEGIN SELECT RAISE(ABORT, 'injected'); END;")
	    == 0);
	CU_ASSERT(km_store_share_commit(s, "k1", 1) != 0);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 0);

	/* The key row is inserted before the failing holder row: the whole
	 * entry is rolled back and not consumed. */
	mk_create(&p, "k1", "label1", h, 2, 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == KM_ERR_INTERNAL);
	CU_ASSERT(km_catalog_last_seq(s, &seq, NULL) == 0 && seq == 0);
	CU_ASSERT(km_catalog_key_get(s, "k1", &k) == KM_ERR_NOT_FOUND);
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM catalog_log") == 0);

	/* Once the fault is gone the same entry applies. */
	CU_ASSERT_FATAL(raw_sql(path,
	                    "DROP TRIGGER no_commit;"
	                    "DROP TRIGGER no_boom;")
	    == 0);
	CU_ASSERT(apply_at(s, 1, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_store_share_commit(s, "k1", 1) == 0);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 1);
	CU_ASSERT(km_store_integrity_check(s) == 0);
	km_store_close(s);
}

/* ---- catalog codecs ------------------------------------------------------
 */

static void
test_payload_codec(void)
{
	km_catalog_holder h[3]
	    = { { 1, "node1" }, { 2, "node2" }, { 5, "node1" } };
	km_catalog_payload p, d;
	km_buf b;
	size_t cut;

	mk_create(&p, "key-1", "my.key", h, 3, 2);
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_catalog_payload_encode(&p, &b) == 0);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_KEY_CREATE, b.data, b.len, &d)
	    == 0);
	CU_ASSERT(
	    strcmp(d.key_id, "key-1") == 0 && strcmp(d.label, "my.key") == 0);
	CU_ASSERT(d.key_type == KM_KEY_EC_P256 && d.bits == 256
	    && d.threshold == 2 && d.epoch == 1);
	CU_ASSERT(d.nholders == 3 && d.holders[2].index == 5
	    && strcmp(d.holders[2].node, "node1") == 0);
	CU_ASSERT(
	    d.public_len == 7 && memcmp(d.public_data, "\x04pubkey", 7) == 0);
	km_catalog_payload_free(&d);

	/* Every truncation and a trailing byte are refused. */
	for (cut = 0; cut < b.len; cut++) {
		CU_ASSERT(km_catalog_payload_decode(
		              KM_CAT_KEY_CREATE, b.data, cut, &d)
		    == KM_ERR_BAD_FORMAT);
	}
	CU_ASSERT(km_buf_put_u8(&b, 0) == 0);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_KEY_CREATE, b.data, b.len, &d)
	    == KM_ERR_BAD_FORMAT);
	/* The same bytes under another type or an unknown one. */
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_MEMBER_ADD, b.data, b.len - 1, &d)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_catalog_payload_decode(77, b.data, b.len - 1, &d)
	    == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);

	/* The encoder refuses what the decoder would. */
	km_buf_init(&b);
	h[2].index = 2; /* duplicate index */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	h[2].index = 0;
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	h[2].index = 5;
	p.threshold = 4; /* more than the holders */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	p.threshold = 2;
	p.bits = 2048; /* P-256 is 256 bits */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	p.bits = 256;
	snprintf(h[1].node, sizeof(h[1].node), "../etc");
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	snprintf(h[1].node, sizeof(h[1].node), "node2");
	p.policy_len = 3; /* not a policy */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	CU_ASSERT(b.len == 0);

	/* Hand-made bytes with a bad name in them. */
	km_buf_reset(&b);
	(void)km_buf_put_cstring(&b, "a b");
	(void)km_buf_put_u32(&b, 1);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_KEY_ACTIVATE, b.data, b.len, &d)
	    == KM_ERR_BAD_FORMAT);
	km_buf_reset(&b);
	(void)km_buf_put_cstring(&b, "k");
	(void)km_buf_put_u32(&b, 0); /* epoch 0 */
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_KEY_ACTIVATE, b.data, b.len, &d)
	    == KM_ERR_BAD_FORMAT);
	km_buf_reset(&b);
	(void)km_buf_put_cstring(&b, "k");
	(void)km_buf_put_u32(&b, 3);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_KEY_ACTIVATE, b.data, b.len, &d)
	    == 0);
	CU_ASSERT(strcmp(d.key_id, "k") == 0 && d.epoch == 3);
	km_catalog_payload_free(&d);
	/* A holder count far beyond the bytes present. */
	km_buf_reset(&b);
	(void)km_buf_put_cstring(&b, "k");
	(void)km_buf_put_u32(&b, 2);
	(void)km_buf_put_u32(&b, 1);
	(void)km_buf_put_u32(&b, 0xffffffffu);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_RESHARE_BEGIN, b.data, b.len, &d)
	    == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
}

static void
test_entry_codec(void)
{
	km_catalog_entry e, d;
	uint8_t sig[64];
	km_buf b;
	size_t cut;

	memset(&e, 0, sizeof(e));
	e.seq = 42;
	e.type = KM_CAT_KEY_DESTROY;
	e.payload = (uint8_t *)"\0\0\0\x01k";
	e.payload_len = 5;
	CU_ASSERT_FATAL(sign_entry(&e, admin_key, sig) == 0);
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_catalog_entry_encode(&e, &b) == 0);
	CU_ASSERT(km_catalog_entry_decode(b.data, b.len, &d) == 0);
	CU_ASSERT(d.seq == 42 && d.type == KM_CAT_KEY_DESTROY);
	CU_ASSERT(d.payload_len == 5 && memcmp(d.payload, e.payload, 5) == 0);
	CU_ASSERT(d.sig_len == 64 && memcmp(d.sig, sig, 64) == 0);
	CU_ASSERT(d.signer_len == 5 && memcmp(d.signer, "admin", 5) == 0);
	km_catalog_entry_clear(&d);
	for (cut = 0; cut < b.len; cut++) {
		CU_ASSERT(km_catalog_entry_decode(b.data, cut, &d) != 0);
	}
	b.data[3] = 9; /* version */
	CU_ASSERT(
	    km_catalog_entry_decode(b.data, b.len, &d) == KM_ERR_BAD_VERSION);
	b.data[3] = 1;
	CU_ASSERT(km_buf_put_u8(&b, 0) == 0);
	CU_ASSERT(
	    km_catalog_entry_decode(b.data, b.len, &d) == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
}

static void
test_policy(void)
{
	uint32_t mechs[2] = { 0x1, 0x1041 };
	char *clients[1] = { "app1" };
	km_catalog_policy p = { 2, mechs, 1, clients }, d;
	km_buf b;

	km_buf_init(&b);
	CU_ASSERT_FATAL(km_catalog_policy_encode(&p, &b) == 0);
	CU_ASSERT_FATAL(km_catalog_policy_decode(b.data, b.len, &d) == 0);
	CU_ASSERT(d.nmechs == 2 && d.mechs[1] == 0x1041);
	CU_ASSERT(d.nclients == 1 && strcmp(d.clients[0], "app1") == 0);
	CU_ASSERT(km_catalog_policy_allows(&d, 0x1041, "app1"));
	CU_ASSERT(!km_catalog_policy_allows(&d, 0x1042, "app1"));
	CU_ASSERT(!km_catalog_policy_allows(&d, 0x1, "app2"));
	CU_ASSERT(!km_catalog_policy_allows(&d, 0x1, NULL));
	km_catalog_policy_free(&d);
	CU_ASSERT(km_catalog_policy_decode(b.data, b.len - 1, &d)
	    == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
	/* Empty lists: no restriction. */
	CU_ASSERT(km_catalog_policy_decode(empty_policy, 8, &d) == 0);
	CU_ASSERT(km_catalog_policy_allows(&d, 0x1234, "anyone"));
	km_catalog_policy_free(&d);
	clients[0] = "bad name";
	km_buf_init(&b);
	CU_ASSERT(km_catalog_policy_encode(&p, &b) == KM_ERR_INVALID_ARG);
	km_buf_free(&b);
}

/* ---- catalog apply -------------------------------------------------------
 */

/* POSTURE_SET and TRUST_VERDICT (docs/trust.md): strict payloads, the
 * last one kept, a malformed one consumed without effect. */
static void
test_apply_trust(void)
{
	char path[4096];
	km_store *s = fresh_store(path, sizeof(path));
	km_catalog_payload p, d;
	km_posture pol, got;
	km_trust_verdict v, gv;
	km_buf pb, vb;
	uint8_t *data = NULL;
	size_t len = 0;
	int res = -1;

	CU_ASSERT_FATAL(s != NULL);
	km_buf_init(&pb);
	km_buf_init(&vb);
	CU_ASSERT(km_catalog_posture_get(s, &data, &len) == KM_ERR_NOT_FOUND);
	km_posture_init(&pol);
	pol.nbinaries = 1;
	memset(pol.binaries[0], 0x6d, 32);
	pol.refresh_s = 3600;
	CU_ASSERT_FATAL(km_posture_encode(&pol, &pb) == 0);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_POSTURE_SET;
	p.trust = pb.data;
	p.trust_len = pb.len;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT_FATAL(km_catalog_posture_get(s, &data, &len) == 0);
	CU_ASSERT(km_posture_decode(data, len, &got) == 0);
	CU_ASSERT(got.nbinaries == 1 && got.refresh_s == 3600);
	free(data);
	/* a verdict: @node is the subject, checked against the payload */
	memset(&v, 0, sizeof(v));
	snprintf(v.node, sizeof(v.node), "node2");
	snprintf(v.coordinator, sizeof(v.coordinator), "node3");
	v.state = KM_TRUST_QUARANTINED;
	v.score = 100;
	snprintf(v.reason, sizeof(v.reason), "version x: not allowed");
	CU_ASSERT_FATAL(km_trust_verdict_encode(&v, &vb) == 0);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_TRUST_VERDICT;
	p.trust = vb.data;
	p.trust_len = vb.len;
	snprintf(p.node, sizeof(p.node), "node1");
	CU_ASSERT(apply_at(s, 0, &p, &res) == KM_ERR_INVALID_ARG);
	snprintf(p.node, sizeof(p.node), "node2");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT_FATAL(km_catalog_verdict_get(s, "node2", &data, &len) == 0);
	CU_ASSERT(km_trust_verdict_decode(data, len, &gv) == 0);
	CU_ASSERT(gv.state == KM_TRUST_QUARANTINED);
	free(data);
	CU_ASSERT(km_catalog_verdict_get(s, "node1", &data, &len)
	    == KM_ERR_NOT_FOUND);
	/* the payload codec: decodes back with its subject; a trailing byte
	 * or an empty payload is refused */
	CU_ASSERT(km_catalog_payload_decode(KM_CAT_TRUST_VERDICT, vb.data,
	              vb.len, &d)
	    == 0);
	CU_ASSERT_STRING_EQUAL(d.node, "node2");
	km_catalog_payload_free(&d);
	km_buf_put_u8(&vb, 0);
	CU_ASSERT(km_catalog_payload_decode(
	              KM_CAT_TRUST_VERDICT, vb.data, vb.len, &d)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_catalog_payload_decode(KM_CAT_POSTURE_SET, NULL, 0, &d)
	    == KM_ERR_BAD_FORMAT);
	/* up again: replaces the quarantine */
	v.state = KM_TRUST_UP;
	v.reason[0] = '\0';
	km_buf_reset(&vb);
	CU_ASSERT_FATAL(km_trust_verdict_encode(&v, &vb) == 0);
	p.trust = vb.data;
	p.trust_len = vb.len;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT_FATAL(km_catalog_verdict_get(s, "node2", &data, &len) == 0);
	CU_ASSERT(km_trust_verdict_decode(data, len, &gv) == 0
	    && gv.state == KM_TRUST_UP);
	free(data);
	km_buf_free(&pb);
	km_buf_free(&vb);
	km_store_close(s);
}

static void
test_apply_order_and_signature(void)
{
	km_catalog_holder h[2] = { { 1, "node1" }, { 2, "node2" } };
	km_catalog_payload p;
	km_catalog_entry e;
	km_buf pb;
	uint8_t sig[64];
	char path[4200];
	uint64_t seq;
	km_store *s;
	int res = 99;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	mk_create(&p, "k1", "one", h, 2, 2);
	/* A gap: seq 2 before 1. */
	CU_ASSERT(apply_at(s, 2, &p, &res) == KM_ERR_STALE);
	CU_ASSERT(apply_at(s, 1, &p, &res) == 0 && res == 0);
	/* A replay of seq 1. */
	CU_ASSERT(apply_at(s, 1, &p, &res) == KM_ERR_STALE);
	CU_ASSERT(km_catalog_last_seq(s, &seq, NULL) == 0 && seq == 1);

	/* Signed by someone else, or tampered after signing: refused and
	 * not consumed. */
	km_buf_init(&pb);
	mk_key_op(&p, KM_CAT_KEY_ACTIVATE, "k1", 1);
	CU_ASSERT_FATAL(km_catalog_payload_encode(&p, &pb) == 0);
	memset(&e, 0, sizeof(e));
	e.seq = 2;
	e.type = p.type;
	e.payload = pb.data;
	e.payload_len = pb.len;
	CU_ASSERT_FATAL(sign_entry(&e, rogue_key, sig) == 0);
	CU_ASSERT(
	    km_catalog_apply(s, &e, verify_cb, NULL, &res) == KM_ERR_VERIFY);
	CU_ASSERT_FATAL(sign_entry(&e, admin_key, sig) == 0);
	e.seq = 3; /* signature covers the position */
	CU_ASSERT(
	    km_catalog_apply(s, &e, verify_cb, NULL, &res) == KM_ERR_STALE);
	e.seq = 2;
	e.type = KM_CAT_RESHARE_COMMIT; /* ... and the type */
	CU_ASSERT(
	    km_catalog_apply(s, &e, verify_cb, NULL, &res) == KM_ERR_VERIFY);
	e.type = KM_CAT_KEY_ACTIVATE;
	pb.data[pb.len - 1] ^= 1; /* ... and the payload */
	CU_ASSERT(
	    km_catalog_apply(s, &e, verify_cb, NULL, &res) == KM_ERR_VERIFY);
	pb.data[pb.len - 1] ^= 1;
	e.signer = (uint8_t *)"mallory";
	e.signer_len = 7;
	CU_ASSERT(
	    km_catalog_apply(s, &e, verify_cb, NULL, &res) == KM_ERR_AUTH);
	CU_ASSERT(
	    km_catalog_apply(s, &e, NULL, NULL, &res) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_catalog_last_seq(s, &seq, NULL) == 0 && seq == 1);
	CU_ASSERT_FATAL(sign_entry(&e, admin_key, sig) == 0);
	CU_ASSERT(
	    km_catalog_apply(s, &e, verify_cb, NULL, &res) == 0 && res == 0);
	km_buf_free(&pb);

	/* Well signed but not applicable: consumed, no effect, the same
	 * outcome on every replica. */
	mk_key_op(&p, KM_CAT_KEY_ACTIVATE, "nokey", 1);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_NOT_FOUND);
	mk_key_op(&p, KM_CAT_KEY_ACTIVATE, "k1", 1);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);
	mk_create(&p, "k2", "one", h, 2, 2); /* label in use */
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_EXISTS);
	CU_ASSERT(km_catalog_last_seq(s, &seq, NULL) == 0 && seq == 5);
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM keys") == 1);
	CU_ASSERT(raw_int(path,
	              "SELECT result FROM catalog_log "
	              "WHERE seq = 3")
	    == KM_ERR_NOT_FOUND);
	km_store_close(s);
}

static void
test_apply_key_lifecycle(void)
{
	km_catalog_holder h[3]
	    = { { 1, "node1" }, { 2, "node2" }, { 3, "node1" } };
	km_catalog_holder h2[2] = { { 1, "node2" }, { 2, "node1" } };
	km_catalog_payload p;
	km_catalog_key k, *list = NULL;
	km_share_info *info = NULL;
	uint8_t *pol = NULL;
	size_t n = 0, len;
	char path[4200];
	km_store *s;
	int res;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	mk_create(&p, "k1", "signing", h, 3, 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT_FATAL(km_catalog_key_get(s, "k1", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_PENDING && k.epoch == 1 && k.threshold == 2
	    && k.nholders == 3);
	CU_ASSERT(k.holders[2].index == 3
	    && strcmp(k.holders[2].node, "node1") == 0);
	km_catalog_key_free(&k);

	/* This node (node1) holds indices 1 and 3: phase one. */
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 1, blob1, sizeof(blob1), 0)
	    == 0);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 1, 3, blob2, sizeof(blob2), 0)
	    == 0);
	/* The mesh activates the key: the prepared shares commit with it. */
	mk_key_op(&p, KM_CAT_KEY_ACTIVATE, "k1", 1);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_catalog_key_get_by_label(s, "signing", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_ACTIVE && strcmp(k.key_id, "k1") == 0);
	km_catalog_key_free(&k);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 2);

	/* Re-share to epoch 2: node1 now holds index 2 only. */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = 2;
	p.threshold = 2;
	p.holders = h2;
	p.nholders = 2;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT_FATAL(km_catalog_key_get(s, "k1", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_RESHARING && k.epoch == 1
	    && k.next_epoch == 2 && k.next_nholders == 2 && k.nholders == 3);
	km_catalog_key_free(&k);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 2, 2, blob1, sizeof(blob1), 0)
	    == 0);
	/* Abort: epoch 2 vanishes, epoch 1 is untouched. */
	mk_key_op(&p, KM_CAT_RESHARE_ABORT, "k1", 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_store_share_list(s, "k1", &info, &n) == 0);
	CU_ASSERT(n == 2 && info[0].epoch == 1 && info[1].epoch == 1);
	free(info);
	CU_ASSERT_FATAL(km_catalog_key_get(s, "k1", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_ACTIVE && k.next_epoch == 0);
	km_catalog_key_free(&k);

	/* Again, and commit this time. */
	p.type = KM_CAT_RESHARE_BEGIN;
	p.epoch = 3;
	p.threshold = 2;
	p.holders = h2;
	p.nholders = 2;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(
	    km_store_share_prepare(s, "k1", 3, 2, blob1, sizeof(blob1), 0)
	    == 0);
	mk_key_op(&p, KM_CAT_RESHARE_COMMIT, "k1", 2); /* wrong epoch */
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 2);
	mk_key_op(&p, KM_CAT_RESHARE_COMMIT, "k1", 3);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_store_share_list(s, "k1", &info, &n) == 0);
	CU_ASSERT_FATAL(n == 1);
	CU_ASSERT(info[0].epoch == 3 && info[0].index == 2
	    && info[0].state == KM_SHARE_COMMITTED);
	free(info);
	CU_ASSERT_FATAL(km_catalog_key_get(s, "k1", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_ACTIVE && k.epoch == 3 && k.nholders == 2
	    && strcmp(k.holders[0].node, "node2") == 0);
	km_catalog_key_free(&k);

	/* Policies: per key and mesh-wide. */
	{
		uint32_t mechs[1] = { 0x1 };
		km_catalog_policy pol_in = { 1, mechs, 0, NULL };
		km_buf pb;

		km_buf_init(&pb);
		CU_ASSERT_FATAL(km_catalog_policy_encode(&pol_in, &pb) == 0);
		memset(&p, 0, sizeof(p));
		p.type = KM_CAT_POLICY_SET;
		snprintf(p.key_id, sizeof(p.key_id), "k1");
		p.policy = pb.data;
		p.policy_len = pb.len;
		CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
		p.key_id[0] = '\0';
		CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
		CU_ASSERT(km_catalog_policy_get(s, "k1", &pol, &len) == 0);
		CU_ASSERT(len == pb.len && memcmp(pol, pb.data, len) == 0);
		free(pol);
		CU_ASSERT(km_catalog_policy_get(s, "", &pol, &len) == 0);
		CU_ASSERT(len == pb.len && memcmp(pol, pb.data, len) == 0);
		free(pol);
		km_buf_free(&pb);
	}

	/* Members. */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_MEMBER_ADD;
	snprintf(p.node, sizeof(p.node), "node3");
	p.role = 1;
	p.cert = (uint8_t *)"\x30\x03\x02\x01\x01";
	p.cert_len = 5;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_EXISTS);
	{
		uint32_t role = 0;
		uint8_t *cert = NULL;
		size_t certlen = 0;

		CU_ASSERT(
		    km_catalog_member_get(s, "node3", &role, &cert, &certlen)
		    == 0);
		CU_ASSERT(role == 1 && certlen == 5);
		free(cert);
	}
	p.type = KM_CAT_MEMBER_REMOVE;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_catalog_member_get(s, "node3", NULL, NULL, NULL)
	    == KM_ERR_NOT_FOUND);

	/* A second key, then destroy the first: its shares go with it and
	 * its label is free again; its id is not. */
	mk_create(&p, "k2", "other", h, 3, 3);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_catalog_key_list(s, &list, &n) == 0 && n == 2);
	km_catalog_key_list_free(list, n);
	mk_key_op(&p, KM_CAT_KEY_DESTROY, "k1", 0);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);
	CU_ASSERT(km_store_share_list(s, "k1", &info, &n) == 0 && n == 0);
	free(info);
	CU_ASSERT(km_catalog_key_list(s, &list, &n) == 0 && n == 1);
	CU_ASSERT(n == 1 && strcmp(list[0].key_id, "k2") == 0);
	km_catalog_key_list_free(list, n);
	CU_ASSERT(km_catalog_key_get(s, "k1", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_DESTROYED);
	km_catalog_key_free(&k);
	CU_ASSERT(
	    km_catalog_key_get_by_label(s, "signing", &k) == KM_ERR_NOT_FOUND);
	mk_create(&p, "k3", "signing", h, 3, 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	mk_create(&p, "k1", "again", h, 3, 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_EXISTS);
	CU_ASSERT(km_store_integrity_check(s) == 0);
	km_store_close(s);
}

/* Feeds every entry of @a's log to a fresh store; returns it. */
static km_store *
replay_into_fresh(km_store *a, uint64_t last)
{
	km_catalog_entry e;
	char path[4200];
	km_store *b;
	uint64_t i;
	int res, want, r = 0;

	if ((b = fresh_store(path, sizeof(path))) == NULL) {
		return NULL;
	}
	for (i = 1; i <= last && r == 0; i++) {
		if ((r = km_catalog_entry_get(a, i, &e, &want)) != 0) {
			break;
		}
		r = km_catalog_apply(b, &e, verify_cb, NULL, &res);
		if (r == 0 && res != want) {
			r = KM_ERR_STATE;
		}
		km_catalog_entry_clear(&e);
	}
	if (r != 0) {
		km_store_close(b);
		return NULL;
	}
	return b;
}

/* Same keys, states, epochs and holders, and the same live objects, in
 * both catalogs. */
static bool
catalogs_equal(km_store *a, km_store *b)
{
	km_catalog_key *ka = NULL, *kb = NULL;
	km_catalog_object *oa = NULL, *ob = NULL;
	size_t na = 0, nb = 0, noa = 0, nob = 0, i, j;
	bool eq = false;

	if (km_catalog_object_list(a, &oa, &noa) != 0
	    || km_catalog_object_list(b, &ob, &nob) != 0 || noa != nob) {
		goto out;
	}
	for (i = 0; i < noa; i++) {
		if (strcmp(oa[i].object_id, ob[i].object_id) != 0
		    || oa[i].updated_seq != ob[i].updated_seq
		    || oa[i].value_len != ob[i].value_len
		    || memcmp(oa[i].value, ob[i].value, oa[i].value_len)
		        != 0) {
			goto out;
		}
	}
	if (km_catalog_key_list(a, &ka, &na) != 0
	    || km_catalog_key_list(b, &kb, &nb) != 0 || na != nb) {
		goto out;
	}
	for (i = 0; i < na; i++) {
		if (strcmp(ka[i].key_id, kb[i].key_id) != 0
		    || strcmp(ka[i].label, kb[i].label) != 0
		    || ka[i].state != kb[i].state || ka[i].epoch != kb[i].epoch
		    || ka[i].next_epoch != kb[i].next_epoch
		    || ka[i].threshold != kb[i].threshold
		    || ka[i].nholders != kb[i].nholders
		    || ka[i].updated_seq != kb[i].updated_seq) {
			goto out;
		}
		for (j = 0; j < ka[i].nholders; j++) {
			if (ka[i].holders[j].index != kb[i].holders[j].index
			    || strcmp(ka[i].holders[j].node,
			           kb[i].holders[j].node)
			        != 0) {
				goto out;
			}
		}
	}
	eq = true;
out:
	km_catalog_key_list_free(ka, na);
	km_catalog_key_list_free(kb, nb);
	km_catalog_object_list_free(oa, noa);
	km_catalog_object_list_free(ob, nob);
	return eq;
}

static void
test_apply_deterministic_replay(void)
{
	km_catalog_holder h[2] = { { 1, "node1" }, { 2, "node2" } };
	km_catalog_payload p;
	uint8_t ha[32], hb[32];
	uint64_t sa, sb;
	char path[4200], id[16], label[16];
	km_store *a, *b;
	int i, res;

	CU_ASSERT_FATAL((a = fresh_store(path, sizeof(path))) != NULL);
	for (i = 0; i < 6; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		snprintf(label, sizeof(label), "l%d", i % 4); /* clashes */
		mk_create(&p, id, label, h, 2, 1 + i % 2);
		CU_ASSERT(apply_at(a, 0, &p, &res) == 0);
		mk_key_op(&p, KM_CAT_KEY_ACTIVATE, id, 1);
		CU_ASSERT(apply_at(a, 0, &p, &res) == 0);
		if (i % 3 == 0) {
			mk_key_op(&p, KM_CAT_KEY_DESTROY, id, 0);
			CU_ASSERT(apply_at(a, 0, &p, &res) == 0);
		}
	}
	CU_ASSERT(km_catalog_last_seq(a, &sa, ha) == 0 && sa == 14);
	CU_ASSERT_FATAL((b = replay_into_fresh(a, sa)) != NULL);
	CU_ASSERT(km_catalog_last_seq(b, &sb, hb) == 0 && sb == sa);
	CU_ASSERT(memcmp(ha, hb, 32) == 0);
	CU_ASSERT(catalogs_equal(a, b));
	km_store_close(a);
	km_store_close(b);
}

/* ---- objects (OBJECT_PUT, OBJECT_DELETE, KEY_ATTRS) ---------------------
 */

static uint8_t obj_attrs[64];
static size_t obj_attrs_len;

static void
mk_object(km_catalog_payload *p, const char *id, uint32_t cls,
    const char *value, const char *app_id)
{
	memset(p, 0, sizeof(*p));
	p->type = KM_CAT_OBJECT_PUT;
	snprintf(p->object_id, sizeof(p->object_id), "%s", id);
	snprintf(p->partition, sizeof(p->partition), "default");
	p->obj_class = cls;
	p->app_id = (uint8_t *)app_id;
	p->app_id_len = strlen(app_id);
	p->obj_label = (uint8_t *)"my label";
	p->obj_label_len = 8;
	p->value = (uint8_t *)value;
	p->value_len = strlen(value);
	p->attrs = obj_attrs;
	p->attrs_len = obj_attrs_len;
}

static void
test_object_codec(void)
{
	const km_catalog_attr in[2] = {
		{ 0x100, (const uint8_t *)"\0\0\0\0\0\0\0\0", 8 },
		{ 0x102, (const uint8_t *)"id", 2 },
	};
	km_catalog_attr bad[2] = { in[1], in[0] }, *out = NULL;
	km_catalog_payload p, q;
	uint8_t big[300];
	size_t n = 0;
	km_buf b;

	/* attribute lists: canonical (sorted, unique) and strict */
	km_buf_init(&b);
	CU_ASSERT(km_catalog_attrs_encode(in, 2, &b) == 0);
	CU_ASSERT_FATAL(b.len <= sizeof(obj_attrs));
	memcpy(obj_attrs, b.data, b.len);
	obj_attrs_len = b.len;
	CU_ASSERT(km_catalog_attrs_decode(b.data, b.len, &out, &n) == 0
	    && n == 2 && out[1].type == 0x102 && out[1].len == 2
	    && memcmp(out[1].value, "id", 2) == 0);
	free(out);
	out = NULL;
	CU_ASSERT(km_catalog_attrs_decode(b.data, b.len - 1, &out, &n)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_catalog_attrs_encode(bad, 2, &b) == KM_ERR_INVALID_ARG);
	km_buf_reset(&b);
	/* unsorted on the wire: refused */
	(void)km_buf_put_u32(&b, 2);
	(void)km_buf_put_u32(&b, 5);
	(void)km_buf_put_string(&b, "a", 1);
	(void)km_buf_put_u32(&b, 5);
	(void)km_buf_put_string(&b, "b", 1);
	CU_ASSERT(km_catalog_attrs_decode(b.data, b.len, &out, &n)
	    == KM_ERR_BAD_FORMAT);
	km_buf_reset(&b);
	(void)km_buf_put_u32(&b, KM_CATALOG_ATTRS_MAX_ITEMS + 1);
	CU_ASSERT(km_catalog_attrs_decode(b.data, b.len, &out, &n)
	    == KM_ERR_BAD_FORMAT);
	km_buf_reset(&b);

	/* OBJECT_PUT round trip */
	mk_object(&p, "obj-1", KM_OBJ_CERTIFICATE, "DER", "\x01\x02");
	p.obj_flags = KM_OBJ_FLAG_PRIVATE;
	CU_ASSERT_FATAL(km_catalog_payload_encode(&p, &b) == 0);
	memset(&q, 0, sizeof(q));
	CU_ASSERT_FATAL(
	    km_catalog_payload_decode(KM_CAT_OBJECT_PUT, b.data, b.len, &q)
	    == 0);
	CU_ASSERT(strcmp(q.object_id, "obj-1") == 0
	    && strcmp(q.partition, "default") == 0
	    && q.obj_class == KM_OBJ_CERTIFICATE
	    && q.obj_flags == KM_OBJ_FLAG_PRIVATE && q.app_id_len == 2
	    && memcmp(q.app_id, "\x01\x02", 2) == 0 && q.obj_label_len == 8
	    && q.value_len == 3 && q.attrs_len == obj_attrs_len);
	km_catalog_payload_free(&q);
	/* trailing bytes, a cut, another type: refused */
	(void)km_buf_put_u32(&b, 0);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_OBJECT_PUT, b.data, b.len, &q)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_OBJECT_PUT, b.data, b.len - 8, &q)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_catalog_payload_decode(
	              KM_CAT_OBJECT_DELETE, b.data, b.len - 4, &q)
	    == KM_ERR_BAD_FORMAT);
	km_buf_reset(&b);

	/* the encoder refuses what the decoder would */
	mk_object(&p, "obj-1", 4, "DER", ""); /* no such class */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	mk_object(&p, "obj-1", KM_OBJ_CERTIFICATE, "", ""); /* empty cert */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	mk_object(&p, "obj-1", KM_OBJ_DATA, "", ""); /* empty data: fine */
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == 0);
	km_buf_reset(&b);
	mk_object(&p, "obj-1", KM_OBJ_DATA, "x", "");
	p.obj_flags = 0x80;
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	mk_object(&p, "bad id", KM_OBJ_DATA, "x", "");
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	memset(big, 'i', sizeof(big));
	mk_object(&p, "obj-1", KM_OBJ_DATA, "x", "");
	p.app_id = big;
	p.app_id_len = KM_CATALOG_APP_ID_MAX + 1;
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	mk_object(&p, "obj-1", KM_OBJ_DATA, "x", "");
	p.attrs = (uint8_t *)"junk";
	p.attrs_len = 4;
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);

	/* OBJECT_DELETE and KEY_ATTRS */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_OBJECT_DELETE;
	snprintf(p.object_id, sizeof(p.object_id), "obj-1");
	km_buf_reset(&b);
	CU_ASSERT_FATAL(km_catalog_payload_encode(&p, &b) == 0);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_OBJECT_DELETE, b.data, b.len, &q)
	        == 0
	    && strcmp(q.object_id, "obj-1") == 0);
	km_catalog_payload_free(&q);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ATTRS;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.app_id = (uint8_t *)"\xaa";
	p.app_id_len = 1;
	km_buf_reset(&b);
	CU_ASSERT_FATAL(km_catalog_payload_encode(&p, &b) == 0);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_KEY_ATTRS, b.data, b.len, &q) == 0
	    && q.app_id_len == 1 && q.app_id[0] == 0xaa);
	km_catalog_payload_free(&q);
	CU_ASSERT(km_catalog_type_is_object(KM_CAT_OBJECT_PUT)
	    && km_catalog_type_is_object(KM_CAT_OBJECT_DELETE)
	    && !km_catalog_type_is_object(KM_CAT_KEY_ATTRS)
	    && !km_catalog_type_is_object(KM_CAT_KEY_CREATE));
	km_buf_free(&b);
}

static void
test_apply_objects(void)
{
	km_catalog_holder h[2] = { { 1, "node1" }, { 2, "node2" } };
	km_catalog_payload p;
	km_catalog_object o, *list = NULL;
	km_catalog_key k;
	uint8_t ha[32], hb[32];
	char path[4200];
	uint64_t sa, sb;
	size_t n = 0;
	km_store *s, *b;
	int res = 99;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	mk_object(&p, "obj-1", KM_OBJ_CERTIFICATE, "DER1", "\x01");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	mk_object(&p, "obj-2", KM_OBJ_PUBLIC_KEY, "SPKI", "\x01");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	memset(&o, 0, sizeof(o));
	CU_ASSERT_FATAL(km_catalog_object_get(s, "obj-1", &o) == 0);
	CU_ASSERT(o.state == KM_OBJ_LIVE && o.obj_class == KM_OBJ_CERTIFICATE
	    && o.value_len == 4 && memcmp(o.value, "DER1", 4) == 0
	    && o.app_id_len == 1 && o.label_len == 8 && o.created_seq == 1
	    && o.updated_seq == 1 && strcmp(o.partition, "default") == 0);
	km_catalog_object_free(&o);

	/* a new version of a live object: same id, class and partition */
	mk_object(&p, "obj-1", KM_OBJ_CERTIFICATE, "DER2", "\x02\x03");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_catalog_object_get(s, "obj-1", &o) == 0
	    && o.value_len == 4 && memcmp(o.value, "DER2", 4) == 0
	    && o.app_id_len == 2 && o.created_seq == 1 && o.updated_seq == 3);
	km_catalog_object_free(&o);
	mk_object(&p, "obj-1", KM_OBJ_DATA, "x", ""); /* another class */
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);
	mk_object(&p, "obj-1", KM_OBJ_CERTIFICATE, "DER", "");
	snprintf(p.partition, sizeof(p.partition), "other");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);

	/* delete: a tombstone, never reused; deleting twice or a missing
	 * object is consumed without effect */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_OBJECT_DELETE;
	snprintf(p.object_id, sizeof(p.object_id), "obj-1");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);
	snprintf(p.object_id, sizeof(p.object_id), "nothing");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_NOT_FOUND);
	CU_ASSERT(km_catalog_object_get(s, "obj-1", &o) == 0
	    && o.state == KM_OBJ_DELETED && o.value_len == 0);
	km_catalog_object_free(&o);
	mk_object(&p, "obj-1", KM_OBJ_CERTIFICATE, "DER3", "");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);
	CU_ASSERT(km_catalog_object_list(s, &list, &n) == 0 && n == 1
	    && strcmp(list[0].object_id, "obj-2") == 0);
	km_catalog_object_list_free(list, n);

	/* KEY_ATTRS: a key's CKA_ID; unknown or destroyed keys refused */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ATTRS;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.app_id = (uint8_t *)"\x42";
	p.app_id_len = 1;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_NOT_FOUND);
	mk_create(&p, "k1", "one", h, 2, 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	memset(&k, 0, sizeof(k));
	CU_ASSERT(km_catalog_key_get(s, "k1", &k) == 0 && k.app_id == NULL);
	km_catalog_key_free(&k);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ATTRS;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.app_id = (uint8_t *)"\x42";
	p.app_id_len = 1;
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	CU_ASSERT(km_catalog_key_get(s, "k1", &k) == 0 && k.app_id_len == 1
	    && k.app_id[0] == 0x42);
	km_catalog_key_free(&k);
	mk_key_op(&p, KM_CAT_KEY_DESTROY, "k1", 0);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ATTRS;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == KM_ERR_STATE);

	/* replicas agree */
	CU_ASSERT(km_catalog_last_seq(s, &sa, ha) == 0 && sa == 14);
	CU_ASSERT_FATAL((b = replay_into_fresh(s, sa)) != NULL);
	CU_ASSERT(km_catalog_last_seq(b, &sb, hb) == 0 && sb == sa);
	CU_ASSERT(memcmp(ha, hb, 32) == 0);
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM objects") == 2);
	km_store_close(b);
	km_store_close(s);
}

/* A store made by the previous schema (version 1) is migrated in place,
 * keeping its catalog. */
static void
test_migrate_v1(void)
{
	km_catalog_holder h[2] = { { 1, "node1" }, { 2, "node2" } };
	km_catalog_payload p;
	km_catalog_key k;
	char path[4200];
	km_store *s;
	int v = 0, res;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	mk_create(&p, "k1", "one", h, 2, 2);
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	km_store_close(s);
	/* back to version 1 by hand */
	CU_ASSERT_FATAL(raw_sql(path,
	                    "DROP TABLE evicted;"
	                    "DROP TABLE objects;"
	                    "ALTER TABLE keys DROP COLUMN next_acked;"
	                    "ALTER TABLE keys DROP COLUMN app_id;"
	                    "DELETE FROM schema_version WHERE version >= 2")
	    == 0);
	CU_ASSERT(
	    raw_int(path, "SELECT MAX(version) FROM schema_version") == 1);
	CU_ASSERT_FATAL(km_store_open(path, &s) == 0);
	CU_ASSERT(km_store_schema_version(s, &v) == 0
	    && v == KM_STORE_SCHEMA_VERSION);
	/* version 3: the evicted nodes' table, empty */
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM evicted") == 0);
	memset(&k, 0, sizeof(k));
	CU_ASSERT(km_catalog_key_get(s, "k1", &k) == 0 && k.app_id == NULL
	    && strcmp(k.label, "one") == 0);
	km_catalog_key_free(&k);
	mk_object(&p, "obj-1", KM_OBJ_DATA, "x", "");
	CU_ASSERT(apply_at(s, 0, &p, &res) == 0 && res == 0);
	km_store_close(s);
}

/* ---- crash safety --------------------------------------------------------
 */

#define SELF "node1"

/*
 * The child: an endless stream of the daemon's writes, each of them one
 * transaction: create a key, prepare this node's shares, commit them,
 * activate the key, audit; re-share an older key (commit or abort) and
 * destroy some.  On start it finishes what a kill left open, as the
 * daemon's recovery would: pending re-shares are aborted and keys never
 * activated are destroyed.
 */
static void
crash_child(const char *path, int ready_fd)
{
	km_catalog_holder h[3] = { { 1, SELF }, { 2, "node2" }, { 3, SELF } };
	km_catalog_holder h2[2] = { { 1, "node2" }, { 2, SELF } };
	km_catalog_key *list = NULL;
	km_catalog_payload p;
	uint8_t digest[32], blob[96];
	char id[32], label[40];
	km_store *s = NULL;
	uint64_t last;
	size_t n = 0, i;
	int res, iter = 0;

	km_log_set_level(KM_LOG_NONE);
	if (km_store_open(path, &s) != 0) {
		_exit(3);
	}
	if (km_catalog_key_list(s, &list, &n) != 0) {
		_exit(4);
	}
	for (i = 0; i < n; i++) {
		if (list[i].state == KM_KEY_RESHARING) {
			mk_key_op(&p, KM_CAT_RESHARE_ABORT, list[i].key_id,
			    list[i].next_epoch);
		} else if (list[i].state == KM_KEY_PENDING) {
			mk_key_op(&p, KM_CAT_KEY_DESTROY, list[i].key_id, 0);
		} else {
			continue;
		}
		if (apply_at(s, 0, &p, &res) != 0 || res != 0) {
			_exit(5);
		}
	}
	km_catalog_key_list_free(list, n);
	memset(blob, 0xb5, sizeof(blob));
	for (;;) {
		if (km_catalog_last_seq(s, &last, NULL) != 0) {
			_exit(6);
		}
		snprintf(
		    id, sizeof(id), "k%llu", (unsigned long long)last + 1);
		snprintf(label, sizeof(label), "label-%s", id);
		mk_create(&p, id, label, h, 3, 2);
		if (apply_at(s, 0, &p, &res) != 0 || res != 0
		    || km_store_share_prepare(
		           s, id, 1, 1, blob, sizeof(blob), 0)
		        != 0
		    || km_store_share_prepare(
		           s, id, 1, 3, blob, sizeof(blob), 0)
		        != 0) {
			_exit(7);
		}
		/* Half the time the holder commits locally first; the rest
		 * the activation commits the prepared shares. */
		if (iter % 2 == 0 && km_store_share_commit(s, id, 1) != 0) {
			_exit(8);
		}
		mk_key_op(&p, KM_CAT_KEY_ACTIVATE, id, 1);
		if (apply_at(s, 0, &p, &res) != 0 || res != 0) {
			_exit(9);
		}
		if (km_audit_sha256(id, strlen(id), digest) != 0
		    || km_audit_append(
		           s, 0, "client1", id, "ecdh", digest, 0, NULL)
		        != 0) {
			_exit(10);
		}
		/* An object stored beside the key, the key's CKA_ID, and
		 * every third object deleted again. */
		{
			char oid[KM_NAME_MAX + 1];

			snprintf(oid, sizeof(oid), "obj-%s", id);
			mk_object(&p, oid, KM_OBJ_CERTIFICATE, "DER", "\x01");
			p.attrs = kill9_attrs;
			p.attrs_len = sizeof(kill9_attrs);
			if (apply_at(s, 0, &p, &res) != 0 || res != 0) {
				_exit(15);
			}
			memset(&p, 0, sizeof(p));
			p.type = KM_CAT_KEY_ATTRS;
			snprintf(p.key_id, sizeof(p.key_id), "%s", id);
			p.app_id = (uint8_t *)"\x02";
			p.app_id_len = 1;
			if (apply_at(s, 0, &p, &res) != 0 || res != 0) {
				_exit(16);
			}
			if (iter % 3 == 2) {
				memset(&p, 0, sizeof(p));
				p.type = KM_CAT_OBJECT_DELETE;
				snprintf(p.object_id, sizeof(p.object_id),
				    "%s", oid);
				if (apply_at(s, 0, &p, &res) != 0
				    || res != 0) {
					_exit(17);
				}
			}
		}
		/* Re-share the key made in this iteration. */
		memset(&p, 0, sizeof(p));
		p.type = KM_CAT_RESHARE_BEGIN;
		snprintf(p.key_id, sizeof(p.key_id), "%s", id);
		p.epoch = 2;
		p.threshold = 2;
		p.holders = h2;
		p.nholders = 2;
		if (apply_at(s, 0, &p, &res) != 0 || res != 0
		    || km_store_share_prepare(
		           s, id, 2, 2, blob, sizeof(blob), 0)
		        != 0) {
			_exit(11);
		}
		mk_key_op(&p,
		    iter % 4 == 3 ? KM_CAT_RESHARE_ABORT
		                  : KM_CAT_RESHARE_COMMIT,
		    id, 2);
		if (apply_at(s, 0, &p, &res) != 0 || res != 0) {
			_exit(12);
		}
		if (iter % 5 == 4) {
			mk_key_op(&p, KM_CAT_KEY_DESTROY, id, 0);
			if (apply_at(s, 0, &p, &res) != 0 || res != 0) {
				_exit(13);
			}
		}
		if (iter++ == 0 && ready_fd >= 0) {
			/* One full round is on disk: the parent may kill. */
			if (write(ready_fd, "r", 1) != 1) {
				_exit(14);
			}
			close(ready_fd);
		}
	}
}

/*
 * The invariants after a crash, each checked with SQL on the raw
 * database and through the API:
 *  - the shares of one (key, epoch) are all prepared or all committed;
 *  - no share belongs to a key the catalog does not know or destroyed;
 *  - an active key has exactly this node's indices of its epoch, all
 *    committed, and nothing of other epochs; a re-sharing key may in
 *    addition have prepared shares of its pending epoch only;
 *  - a pending key has shares of its epoch only.
 */
static void
check_store(const char *path, bool replay)
{
	km_catalog_key *list = NULL;
	km_share_info *info = NULL;
	km_store *s = NULL, *r = NULL;
	uint8_t ha[32], hb[32];
	uint64_t last = 0, bad = 1, lb = 0;
	size_t n = 0, ni, i, j, mine;

	CU_ASSERT(raw_int(path,
	              "SELECT count(*) FROM ("
	              "SELECT key_id, epoch FROM shares "
	              "GROUP BY key_id, epoch "
	              "HAVING COUNT(DISTINCT state) > 1)")
	    == 0);
	CU_ASSERT(raw_int(path,
	              "SELECT count(*) FROM shares WHERE key_id "
	              "NOT IN (SELECT key_id FROM keys "
	              "WHERE state != 4)")
	    == 0);
	CU_ASSERT_FATAL(km_store_open(path, &s) == 0);
	CU_ASSERT(km_store_integrity_check(s) == 0);
	CU_ASSERT(km_audit_verify(s, &bad, NULL) == 0 && bad == 0);
	CU_ASSERT(km_catalog_last_seq(s, &last, ha) == 0);
	CU_ASSERT(raw_int(path, "SELECT count(*) FROM catalog_log")
	    == (long long)last);
	CU_ASSERT(raw_int(path,
	              "SELECT COALESCE(MAX(seq), 0) FROM "
	              "catalog_log")
	    == (long long)last);
	/* Applied seq matches the contents: replaying the log elsewhere
	 * gives the same catalog and the same head (every few rounds: each
	 * replayed entry costs an fsync). */
	if (replay) {
		CU_ASSERT_FATAL((r = replay_into_fresh(s, last)) != NULL);
		CU_ASSERT(km_catalog_last_seq(r, &lb, hb) == 0 && lb == last);
		CU_ASSERT(memcmp(ha, hb, 32) == 0);
		CU_ASSERT(catalogs_equal(s, r));
		km_store_close(r);
	}

	CU_ASSERT(km_catalog_key_list(s, &list, &n) == 0);
	for (i = 0; i < n; i++) {
		const km_catalog_key *k = &list[i];

		CU_ASSERT(km_store_share_list(s, k->key_id, &info, &ni) == 0);
		for (mine = 0, j = 0; j < k->nholders; j++) {
			mine += strcmp(k->holders[j].node, SELF) == 0;
		}
		if (k->state == KM_KEY_ACTIVE) {
			CU_ASSERT(ni == mine);
		}
		for (j = 0; j < ni; j++) {
			if (info[j].epoch == k->epoch) {
				CU_ASSERT(k->state == KM_KEY_PENDING
				    || info[j].state == KM_SHARE_COMMITTED);
			} else {
				CU_ASSERT(k->state == KM_KEY_RESHARING
				    && info[j].epoch == k->next_epoch
				    && info[j].state == KM_SHARE_PREPARED);
			}
		}
		free(info);
		info = NULL;
	}
	km_catalog_key_list_free(list, n);
	km_store_close(s);
}

static void
test_kill9(void)
{
	const char *dir = kmt_tmpdir();
	char path[4200], c;
	uint64_t before = 0, after = 0;
	km_store *s = NULL;
	int round, fds[2], st;
	pid_t pid;

	CU_ASSERT_FATAL(dir != NULL);
	store_path(dir, path, sizeof(path));
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	for (round = 0; round < 12; round++) {
		CU_ASSERT_FATAL(pipe(fds) == 0);
		fflush(NULL);
		pid = fork();
		CU_ASSERT_FATAL(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			crash_child(path, fds[1]);
			_exit(2);
		}
		close(fds[1]);
		/* Wait for one complete iteration, then a random moment. */
		CU_ASSERT(read(fds[0], &c, 1) == 1);
		close(fds[0]);
		usleep((useconds_t)(1000 * (2 + rand() % 120)));
		CU_ASSERT(kill(pid, SIGKILL) == 0);
		CU_ASSERT(waitpid(pid, &st, 0) == pid);
		CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		check_store(path, round % 4 == 3);
		CU_ASSERT_FATAL(km_store_open(path, &s) == 0);
		CU_ASSERT(km_catalog_last_seq(s, &after, NULL) == 0);
		km_store_close(s);
		s = NULL;
		/* Progress per round, for whoever reads the log. */
		fprintf(stderr, "[round %d: catalog seq %llu] ", round,
		    (unsigned long long)after);
	}
	CU_ASSERT_FATAL(km_store_open(path, &s) == 0);
	CU_ASSERT(km_catalog_last_seq(s, &after, NULL) == 0);
	CU_ASSERT(after > before);
	km_store_close(s);
}

/* ---- threads -------------------------------------------------------------
 */

typedef struct thr_arg {
	km_store *s;
	int id;
	int failures;
} thr_arg;

static void *
thr_main(void *p)
{
	thr_arg *a = p;
	uint8_t d[32] = { 0 };
	char id[16];
	int i;

	for (i = 0; i < 25; i++) {
		snprintf(id, sizeof(id), "t%d-%d", a->id, i);
		if (km_audit_append(a->s, 0, "c", id, "op", d, 0, NULL) != 0
		    || km_store_share_prepare(
		           a->s, id, 1, 1, blob1, sizeof(blob1), 0)
		        != 0
		    || km_store_share_commit(a->s, id, 1) != 0) {
			a->failures++;
		}
	}
	return NULL;
}

static void
test_threads(void)
{
	char path[4200];
	pthread_t th[4];
	thr_arg args[4];
	uint64_t bad = 1, count = 0;
	km_store *s;
	size_t n = 0;
	int i;

	CU_ASSERT_FATAL((s = fresh_store(path, sizeof(path))) != NULL);
	for (i = 0; i < 4; i++) {
		args[i].s = s;
		args[i].id = i;
		args[i].failures = 0;
		CU_ASSERT_FATAL(
		    pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT(args[i].failures == 0);
	}
	CU_ASSERT(km_audit_verify(s, &bad, &count) == 0 && bad == 0);
	CU_ASSERT(count == 100);
	CU_ASSERT(km_store_share_count(s, &n) == 0 && n == 100);
	km_store_close(s);
}

static const kmt_test store_tests[] = {
	{ "open_schema", test_open_schema },
	{ "apply_trust", test_apply_trust },
	{ "open_garbage", test_open_garbage },
	{ "share_two_phase", test_share_two_phase },
	{ "failure_leaves_state", test_failure_leaves_state },
	{ "threads", test_threads },
	{ "kill9", test_kill9 },
	KMT_END,
};

static const kmt_test catalog_tests[] = {
	{ "payload_codec", test_payload_codec },
	{ "entry_codec", test_entry_codec },
	{ "policy", test_policy },
	{ "apply_order_and_signature", test_apply_order_and_signature },
	{ "apply_key_lifecycle", test_apply_key_lifecycle },
	{ "apply_deterministic_replay", test_apply_deterministic_replay },
	{ "object_codec", test_object_codec },
	{ "apply_objects", test_apply_objects },
	{ "migrate_v1", test_migrate_v1 },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "store", NULL, NULL, store_tests },
	{ "catalog", NULL, NULL, catalog_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	int r;

	admin_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	rogue_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (admin_key == NULL || rogue_key == NULL) {
		return 2;
	}
	r = kmt_main(argc, argv, suites);
	EVP_PKEY_free(admin_key);
	EVP_PKEY_free(rogue_key);
	return r;
}
