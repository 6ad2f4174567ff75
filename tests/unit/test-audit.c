/*
 * Unit tests for src/store/audit.c: the hash-chained audit log, and that
 * km_audit_verify() finds a record modified, deleted or reordered by
 * editing the database directly.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "kmt.h"
#include "store/audit.h"
#include "store/store.h"
#include "util/err.h"
#include "util/util.h"

/* Runs SQL on a second connection: the attacker's edit. */
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

/* A store with @n records; its path in @path. */
static km_store *
filled_store(char *path, size_t len, int n)
{
	const char *dir = kmt_tmpdir();
	uint8_t d[KM_AUDIT_HASH_LEN];
	char key[32], input[32];
	km_store *s = NULL;
	uint64_t seq;
	int i;

	if (dir == NULL || km_store_open_dir(dir, &s) != 0) {
		return NULL;
	}
	snprintf(path, len, "%s/%s", dir, KM_STORE_FILE);
	for (i = 1; i <= n; i++) {
		snprintf(key, sizeof(key), "key%d", i % 3);
		snprintf(input, sizeof(input), "input %d", i);
		if (km_audit_sha256(input, strlen(input), d) != 0
		    || km_audit_append(s, 1700000000000ULL + (uint64_t)i,
		           i % 2 ? "app1" : "app2", key, "rsa-sign", d,
		           i % 4 == 0 ? KM_ERR_POLICY : 0, &seq)
		        != 0
		    || seq != (uint64_t)i) {
			km_store_close(s);
			return NULL;
		}
	}
	return s;
}

static void
test_append_and_verify(void)
{
	uint8_t d[KM_AUDIT_HASH_LEN], h[KM_AUDIT_HASH_LEN];
	km_audit_record r1, r2;
	uint64_t bad = 99, count = 0;
	char path[4200];
	km_store *s;

	CU_ASSERT_FATAL((s = filled_store(path, sizeof(path), 10)) != NULL);
	CU_ASSERT(km_audit_verify(s, &bad, &count) == 0);
	CU_ASSERT(bad == 0 && count == 10);
	CU_ASSERT(km_audit_get(s, 4, &r1) == 0);
	CU_ASSERT(r1.seq == 4 && r1.time_ms == 1700000000004ULL);
	CU_ASSERT(strcmp(r1.client, "app2") == 0
	    && strcmp(r1.key_id, "key1") == 0
	    && strcmp(r1.operation, "rsa-sign") == 0);
	CU_ASSERT(r1.outcome == KM_ERR_POLICY);
	CU_ASSERT(km_audit_sha256("input 4", 7, d) == 0);
	CU_ASSERT(memcmp(r1.input_sha256, d, sizeof(d)) == 0);
	/* The chain: each record's prev is the previous record's hash, and
	 * its hash is recomputable from its fields. */
	CU_ASSERT(km_audit_get(s, 3, &r2) == 0);
	CU_ASSERT(memcmp(r1.prev_hash, r2.hash, sizeof(h)) == 0);
	CU_ASSERT(km_audit_record_hash(&r1, h) == 0);
	CU_ASSERT(memcmp(h, r1.hash, sizeof(h)) == 0);
	r1.outcome = 0;
	CU_ASSERT(km_audit_record_hash(&r1, h) == 0);
	CU_ASSERT(memcmp(h, r1.hash, sizeof(h)) != 0);
	CU_ASSERT(km_audit_get(s, 11, &r1) == KM_ERR_NOT_FOUND);
	km_store_close(s);
}

static void
test_empty_log_verifies(void)
{
	char path[4200];
	uint64_t bad = 5, count = 5;
	km_store *s;

	CU_ASSERT_FATAL((s = filled_store(path, sizeof(path), 0)) != NULL);
	CU_ASSERT(km_audit_verify(s, &bad, &count) == 0);
	CU_ASSERT(bad == 0 && count == 0);
	km_store_close(s);
}

static void
test_bad_fields_refused(void)
{
	uint8_t d[KM_AUDIT_HASH_LEN] = { 0 };
	char longs[300];
	char path[4200];
	uint64_t bad = 1;
	km_store *s;

	CU_ASSERT_FATAL((s = filled_store(path, sizeof(path), 1)) != NULL);
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	CU_ASSERT(
	    km_audit_append(s, 0, "evil\n[fake] ok", "k", "op", d, 0, NULL)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_audit_append(s, 0, "c", "k\x1b[2J", "op", d, 0, NULL)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_audit_append(s, 0, longs, "k", "op", d, 0, NULL)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_audit_append(s, 0, "c", "k", "", d, 0, NULL)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_audit_append(s, 0, NULL, "k", "op", d, 0, NULL)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_audit_append(s, 0, "c", "k", "op", NULL, 0, NULL)
	    == KM_ERR_INVALID_ARG);
	/* "" client and key are allowed (a refused, unknown peer). */
	CU_ASSERT(
	    km_audit_append(s, 0, "", "", "tls-refused", d, KM_ERR_AUTH, NULL)
	    == 0);
	CU_ASSERT(km_audit_verify(s, &bad, NULL) == 0 && bad == 0);
	km_store_close(s);
}

/* Each tamper on a fresh 8-record log, and the seq verify must name. */
static void
tamper_case(const char *sql, uint64_t expect_bad)
{
	char path[4200];
	uint64_t bad = 0;
	km_store *s;

	CU_ASSERT_FATAL((s = filled_store(path, sizeof(path), 8)) != NULL);
	CU_ASSERT(km_audit_verify(s, &bad, NULL) == 0 && bad == 0);
	CU_ASSERT_FATAL(raw_sql(path, sql) == 0);
	CU_ASSERT(km_audit_verify(s, &bad, NULL) == KM_ERR_VERIFY);
	CU_ASSERT(bad == expect_bad);
	if (bad != expect_bad) {
		fprintf(stderr, "\n  %s: bad_seq %llu, wanted %llu\n", sql,
		    (unsigned long long)bad, (unsigned long long)expect_bad);
	}
	km_store_close(s);
}

static void
test_modified(void)
{
	tamper_case("UPDATE audit_log SET outcome = 0 WHERE seq = 4", 4);
	tamper_case("UPDATE audit_log SET client = 'app9' WHERE seq = 5", 5);
	tamper_case("UPDATE audit_log SET time_ms = time_ms + 1 "
	            "WHERE seq = 1",
	    1);
	tamper_case("UPDATE audit_log SET input_sha256 = zeroblob(32) "
	            "WHERE seq = 8",
	    8);
	/* Hash recomputed by a forger who cannot fix the next link. */
	tamper_case(
	    "UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 3", 3);
}

static void
test_deleted(void)
{
	tamper_case("DELETE FROM audit_log WHERE seq = 3", 3);
	tamper_case("DELETE FROM audit_log WHERE seq = 1", 1);
	/* The last one: the head kept beside the log notices. */
	tamper_case("DELETE FROM audit_log WHERE seq = 8", 8);
	tamper_case("DELETE FROM audit_log WHERE seq >= 6", 6);
}

static void
test_reordered(void)
{
	/* Swap records 3 and 4 by renumbering them. */
	tamper_case("UPDATE audit_log SET seq = -4 WHERE seq = 4;"
	            "UPDATE audit_log SET seq = 4 WHERE seq = 3;"
	            "UPDATE audit_log SET seq = 3 WHERE seq = -4;",
	    3);
	/* Move record 2 to the end, renumbered. */
	tamper_case("UPDATE audit_log SET seq = 9 WHERE seq = 2", 2);
}

static const kmt_test audit_tests[] = {
	{ "append_and_verify", test_append_and_verify },
	{ "empty_log_verifies", test_empty_log_verifies },
	{ "bad_fields_refused", test_bad_fields_refused },
	{ "modified", test_modified },
	{ "deleted", test_deleted },
	{ "reordered", test_reordered },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "audit", NULL, NULL, audit_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
