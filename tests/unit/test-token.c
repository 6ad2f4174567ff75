/*
 * Unit tests for daemon/token.c against a real SoftHSMv2.
 *
 * Each test gets its own SOFTHSM2_CONF and token directory under
 * kmt_tmpdir(), with tokens made by softhsm2-util --init-token (OpenSSH
 * p11_setup style).  The binary exits 77 (skipped) when SoftHSM is absent.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "daemon/token.h"
#include "kmt.h"
#include "store/store.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

#define SO_PIN   "12345678"
#define USER_PIN "87654321"

static const char *module_path;
static char tokdir[4096];

/* A fresh SoftHSM configuration and token directory; the next
 * C_Initialize (the first kmd_token_open) reads it. */
static int
hsm_fresh(void)
{
	const char *dir = kmt_tmpdir();
	char conf[4200];
	FILE *f;

	if (dir == NULL) {
		return -1;
	}
	snprintf(tokdir, sizeof(tokdir), "%s/tokens", dir);
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	if (km_mkdir_p(tokdir, 0700) != 0 || (f = fopen(conf, "w")) == NULL) {
		return -1;
	}
	fprintf(f,
	    "directories.tokendir = %s\nobjectstore.backend = file\n"
	    "log.level = ERROR\nslots.removable = false\n",
	    tokdir);
	fclose(f);
	return setenv("SOFTHSM2_CONF", conf, 1);
}

static int
hsm_token(const char *label)
{
	return kmt_run("softhsm2-util --init-token --free --label '%s' "
	               "--so-pin %s --pin %s >/dev/null 2>&1",
	    label, SO_PIN, USER_PIN);
}

static int
tok_open(const char *label, const char *pin, kmd_token **t, char *why,
    size_t whylen)
{
	kmd_token_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.module = module_path;
	cfg.label = label;
	cfg.slot = -1;
	cfg.pin = pin;
	return kmd_token_open(&cfg, t, why, whylen);
}

static const kmd_wrap_ctx ctx1 = { "key-0001", 3, 2, "node1" };

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		p[i] = (uint8_t)(seed + i * 7);
	}
}

static void
test_key_created_then_found(void)
{
	kmd_token *t = NULL;
	kmd_wrap_key_info info;
	uint8_t share[300], *blob = NULL;
	size_t bloblen = 0;
	char why[256];
	km_buf out;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	CU_ASSERT(kmd_token_created_key(t));
	CU_ASSERT(kmd_token_key_info(t, &info) == 0);
	/* Read back from the token: what the daemon relies on. */
	CU_ASSERT(info.sensitive);
	CU_ASSERT(!info.extractable);
	CU_ASSERT(info.never_extractable);
	CU_ASSERT(info.always_sensitive);
	CU_ASSERT(info.token);
	CU_ASSERT(info.private_);
	CU_ASSERT(info.encrypt && info.decrypt);
	CU_ASSERT(info.value_len == 32);
	CU_ASSERT(info.key_type == CKK_AES);
	fill(share, sizeof(share), 1);
	CU_ASSERT(
	    kmd_token_wrap(t, &ctx1, share, sizeof(share), &blob, &bloblen)
	    == 0);
	kmd_token_close(t);
	t = NULL;

	/* Second start: the same key is found, not a new one made. */
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	CU_ASSERT(!kmd_token_created_key(t));
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, blob, bloblen, &out) == 0);
	CU_ASSERT(out.len == sizeof(share)
	    && memcmp(out.data, share, sizeof(share)) == 0);
	km_buf_free(&out);
	kmd_token_close(t);
	free(blob);
}

static void
test_wrap_roundtrip(void)
{
	kmd_token *t = NULL;
	uint8_t share[1024], *b1 = NULL, *b2 = NULL;
	size_t l1 = 0, l2 = 0, before;
	char why[256];
	km_buf out;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	fill(share, sizeof(share), 9);
	CU_ASSERT(
	    kmd_token_wrap(t, &ctx1, share, sizeof(share), &b1, &l1) == 0);
	CU_ASSERT(
	    kmd_token_wrap(t, &ctx1, share, sizeof(share), &b2, &l2) == 0);
	CU_ASSERT(
	    l1 == 1 + KMD_WRAP_IV_LEN + sizeof(share) + KMD_WRAP_TAG_LEN);
	CU_ASSERT(b1 != NULL && b1[0] == KMD_WRAP_VERSION);
	/* Fresh IV per blob: the same share wraps differently. */
	CU_ASSERT(l1 == l2 && memcmp(b1, b2, l1) != 0);
	CU_ASSERT(memcmp(b1 + 1, b2 + 1, KMD_WRAP_IV_LEN) != 0);
	/* The clear share appears nowhere in the blob. */
	CU_ASSERT(memmem(b1, l1, share, 16) == NULL);

	before = km_secmem_used();
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, b1, l1, &out) == 0);
	CU_ASSERT(out.secure);
	CU_ASSERT(km_secmem_used() > before || !km_secmem_locked());
	CU_ASSERT(out.len == sizeof(share)
	    && memcmp(out.data, share, sizeof(share)) == 0);
	km_buf_free(&out);
	CU_ASSERT(km_secmem_used() == before);
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, b2, l2, &out) == 0);
	CU_ASSERT(out.len == sizeof(share)
	    && memcmp(out.data, share, sizeof(share)) == 0);
	km_buf_free(&out);
	kmd_token_close(t);
	free(b1);
	free(b2);
}

static void
test_wrong_context(void)
{
	kmd_token *t = NULL;
	uint8_t share[64], *blob = NULL;
	size_t bloblen = 0;
	kmd_wrap_ctx c;
	char why[256];
	km_buf out;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	fill(share, sizeof(share), 3);
	CU_ASSERT_FATAL(
	    kmd_token_wrap(t, &ctx1, share, sizeof(share), &blob, &bloblen)
	    == 0);
	/* Each field of the context is bound: change any one and the blob
	 * no longer unwraps. */
	c = ctx1;
	c.key_id = "key-0002";
	CU_ASSERT(
	    kmd_token_unwrap(t, &c, blob, bloblen, &out) == KM_ERR_VERIFY);
	c = ctx1;
	c.epoch = 4;
	CU_ASSERT(
	    kmd_token_unwrap(t, &c, blob, bloblen, &out) == KM_ERR_VERIFY);
	c = ctx1;
	c.index = 1;
	CU_ASSERT(
	    kmd_token_unwrap(t, &c, blob, bloblen, &out) == KM_ERR_VERIFY);
	c = ctx1;
	c.node = "node2";
	CU_ASSERT(
	    kmd_token_unwrap(t, &c, blob, bloblen, &out) == KM_ERR_VERIFY);
	/* And the right one still does. */
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, blob, bloblen, &out) == 0);
	km_buf_free(&out);
	kmd_token_close(t);
	free(blob);
}

static void
test_tampered_blob(void)
{
	kmd_token *t = NULL;
	uint8_t share[48], *blob = NULL;
	size_t bloblen = 0, pos[4];
	char why[256];
	km_buf out;
	int i;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	fill(share, sizeof(share), 5);
	CU_ASSERT_FATAL(
	    kmd_token_wrap(t, &ctx1, share, sizeof(share), &blob, &bloblen)
	    == 0);
	/* One bit flipped in the IV, the ciphertext, the tag. */
	pos[0] = 1;
	pos[1] = 1 + KMD_WRAP_IV_LEN;
	pos[2] = 1 + KMD_WRAP_IV_LEN + sizeof(share) - 1;
	pos[3] = bloblen - 1;
	for (i = 0; i < 4; i++) {
		blob[pos[i]] ^= 0x01;
		CU_ASSERT(kmd_token_unwrap(t, &ctx1, blob, bloblen, &out)
		    == KM_ERR_VERIFY);
		blob[pos[i]] ^= 0x01;
	}
	blob[0] = 2;
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, blob, bloblen, &out)
	    == KM_ERR_BAD_VERSION);
	blob[0] = KMD_WRAP_VERSION;
	/* Truncated: tag cut short, or nothing but a header. */
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, blob, bloblen - 1, &out)
	    == KM_ERR_VERIFY);
	CU_ASSERT(
	    kmd_token_unwrap(t, &ctx1, blob, 1 + KMD_WRAP_IV_LEN + 4, &out)
	    == KM_ERR_BAD_FORMAT);
	/* Intact, it still works: the failures did not spoil the token. */
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, blob, bloblen, &out) == 0);
	CU_ASSERT(out.len == sizeof(share));
	km_buf_free(&out);
	kmd_token_close(t);
	free(blob);
}

/*
 * The promise: a wrapped share copied out of the state directory
 * is useless without the token and its PIN.  The blob goes through a real
 * store, the database files are copied elsewhere, and the copy's blob is
 * tried against a second token (with its own wrapping key) and against
 * the right token with a wrong PIN.
 */
static void
test_stolen_state_is_useless(void)
{
	kmd_token *a = NULL, *b = NULL, *c = NULL;
	km_store *s = NULL;
	uint8_t share[200], *blob = NULL, *stolen = NULL;
	size_t bloblen = 0, stolenlen = 0;
	char why[256], src[4200], dst[4200];
	const char *dir, *copy;
	km_buf out;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(hsm_token("tokB") == 0);
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &a, why, sizeof(why)) == 0);
	fill(share, sizeof(share), 11);
	CU_ASSERT_FATAL(
	    kmd_token_wrap(a, &ctx1, share, sizeof(share), &blob, &bloblen)
	    == 0);
	CU_ASSERT_FATAL((dir = kmt_tmpdir()) != NULL);
	CU_ASSERT_FATAL(km_store_open_dir(dir, &s) == 0);
	CU_ASSERT(km_store_share_prepare(
	              s, ctx1.key_id, ctx1.epoch, ctx1.index, blob, bloblen, 0)
	    == 0);
	CU_ASSERT(km_store_share_commit(s, ctx1.key_id, ctx1.epoch) == 0);
	km_store_close(s);
	s = NULL;

	/* The thief's copy of the state directory. */
	CU_ASSERT_FATAL((copy = kmt_tmpdir()) != NULL);
	CU_ASSERT(kmt_run("cp '%s'/state.db* '%s'/", dir, copy) == 0);
	snprintf(src, sizeof(src), "%s/state.db", copy);
	CU_ASSERT_FATAL(km_store_open(src, &s) == 0);
	CU_ASSERT(km_store_share_get(s, ctx1.key_id, ctx1.epoch, ctx1.index,
	              NULL, &stolen, &stolenlen)
	    == 0);
	km_store_close(s);
	CU_ASSERT_FATAL(stolen != NULL && stolenlen == bloblen);
	CU_ASSERT(memmem(stolen, stolenlen, share, 16) == NULL);

	/* Another token, with its own wrapping key: no. */
	CU_ASSERT_FATAL(tok_open("tokB", USER_PIN, &b, why, sizeof(why)) == 0);
	CU_ASSERT(kmd_token_created_key(b));
	CU_ASSERT(kmd_token_unwrap(b, &ctx1, stolen, stolenlen, &out)
	    == KM_ERR_VERIFY);
	kmd_token_close(b);
	kmd_token_close(a);

	/* The right token with a wrong PIN: no session, no unwrap. */
	why[0] = '\0';
	CU_ASSERT(
	    tok_open("tokA", "00000000", &c, why, sizeof(why)) == KM_ERR_PIN);
	CU_ASSERT(c == NULL);
	CU_ASSERT(strstr(why, "PIN") != NULL && strchr(why, '\n') == NULL);

	/* The right token with its PIN: yes (the copy itself is fine). */
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &c, why, sizeof(why)) == 0);
	CU_ASSERT(kmd_token_unwrap(c, &ctx1, stolen, stolenlen, &out) == 0);
	CU_ASSERT(out.len == sizeof(share)
	    && memcmp(out.data, share, sizeof(share)) == 0);
	km_buf_free(&out);
	kmd_token_close(c);
	(void)dst;
	free(blob);
	free(stolen);
}

static void
test_wrong_pin_and_missing(void)
{
	kmd_token *t = NULL;
	kmd_token_config cfg;
	char why[256];

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT(
	    tok_open("tokA", "wrong-pin", &t, why, sizeof(why)) == KM_ERR_PIN);
	CU_ASSERT(t == NULL);
	CU_ASSERT(strstr(why, "tokA") != NULL);
	CU_ASSERT(strstr(why, "wrong PIN") != NULL);
	CU_ASSERT(tok_open("nosuch", USER_PIN, &t, why, sizeof(why))
	    == KM_ERR_NOT_FOUND);
	CU_ASSERT(strstr(why, "nosuch") != NULL);

	memset(&cfg, 0, sizeof(cfg));
	cfg.module = "/nonexistent/libnothing.so";
	cfg.label = "tokA";
	cfg.pin = USER_PIN;
	CU_ASSERT(
	    kmd_token_open(&cfg, &t, why, sizeof(why)) == KM_ERR_NOT_FOUND);
	CU_ASSERT(strstr(why, "libnothing") != NULL);
	cfg.module = module_path;
	cfg.pin = NULL;
	CU_ASSERT(
	    kmd_token_open(&cfg, &t, why, sizeof(why)) == KM_ERR_INVALID_ARG);
	/* After all that, the right PIN works. */
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	kmd_token_close(t);
}

/* A key under the wrapping key's label that could leave the token (made
 * here with pkcs11-tool, extractable and not sensitive) is refused. */
static void
test_weak_key_refused(void)
{
	kmd_token *t = NULL;
	char why[256];

	if (!kmt_have_program("pkcs11-tool")) {
		CU_FAIL("pkcs11-tool (opensc) is required");
		return;
	}
	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(kmt_run("pkcs11-tool --module '%s' --token-label tokA "
	                        "--login --pin %s --keygen --key-type AES:32 "
	                        "--label %s --extractable >/dev/null 2>&1",
	                    module_path, USER_PIN, KMD_WRAP_KEY_LABEL)
	    == 0);
	why[0] = '\0';
	CU_ASSERT(
	    tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == KM_ERR_TOKEN);
	CU_ASSERT(t == NULL);
	CU_ASSERT(strstr(why, "refusing") != NULL);
}

static void
test_bad_args(void)
{
	kmd_token *t = NULL;
	uint8_t share[16] = { 1 }, *blob = NULL, *big = NULL;
	size_t bloblen = 0;
	kmd_wrap_ctx c;
	char why[256];
	km_buf out;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	CU_ASSERT_FATAL(tok_open("tokA", USER_PIN, &t, why, sizeof(why)) == 0);
	c = ctx1;
	c.key_id = "bad id";
	CU_ASSERT(kmd_token_wrap(t, &c, share, sizeof(share), &blob, &bloblen)
	    == KM_ERR_INVALID_ARG);
	c = ctx1;
	c.epoch = 0;
	CU_ASSERT(kmd_token_wrap(t, &c, share, sizeof(share), &blob, &bloblen)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(kmd_token_wrap(t, &ctx1, share, 0, &blob, &bloblen)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    kmd_token_wrap(t, NULL, share, sizeof(share), &blob, &bloblen)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT_FATAL((big = calloc(1, KMD_WRAP_MAX + 1)) != NULL);
	CU_ASSERT(
	    kmd_token_wrap(t, &ctx1, big, KMD_WRAP_MAX + 1, &blob, &bloblen)
	    == KM_ERR_TOO_LARGE);
	CU_ASSERT(kmd_token_unwrap(t, &ctx1, big, KMD_WRAP_MAX + 100, &out)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(
	    kmd_token_unwrap(t, &ctx1, NULL, 10, &out) == KM_ERR_INVALID_ARG);
	CU_ASSERT(blob == NULL);
	free(big);
	kmd_token_close(t);
}

typedef struct thr_arg {
	kmd_token *t;
	int id;
	int failures;
} thr_arg;

static void *
thr_main(void *p)
{
	thr_arg *a = p;
	uint8_t share[128], *blob = NULL;
	size_t bloblen;
	kmd_wrap_ctx c = ctx1;
	km_buf out;
	int i;

	c.index = (uint32_t)a->id + 1;
	for (i = 0; i < 40; i++) {
		fill(share, sizeof(share), (uint8_t)(a->id * 31 + i));
		if (kmd_token_wrap(
		        a->t, &c, share, sizeof(share), &blob, &bloblen)
		    != 0) {
			a->failures++;
			continue;
		}
		if (kmd_token_unwrap(a->t, &c, blob, bloblen, &out) != 0
		    || out.len != sizeof(share)
		    || memcmp(out.data, share, sizeof(share)) != 0) {
			a->failures++;
		}
		km_buf_free(&out);
		free(blob);
		blob = NULL;
	}
	return NULL;
}

static void
test_threads(void)
{
	kmd_token *t = NULL;
	kmd_token_config cfg;
	pthread_t th[4];
	thr_arg args[4];
	char why[256];
	int i;

	CU_ASSERT_FATAL(hsm_fresh() == 0);
	CU_ASSERT_FATAL(hsm_token("tokA") == 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.module = module_path;
	cfg.label = "tokA";
	cfg.pin = USER_PIN;
	cfg.max_sessions = 2; /* fewer sessions than threads: they wait */
	CU_ASSERT_FATAL(kmd_token_open(&cfg, &t, why, sizeof(why)) == 0);
	for (i = 0; i < 4; i++) {
		args[i].t = t;
		args[i].id = i;
		args[i].failures = 0;
		CU_ASSERT_FATAL(
		    pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT(args[i].failures == 0);
	}
	kmd_token_close(t);
}

static const kmt_test token_tests[] = {
	{ "key_created_then_found", test_key_created_then_found },
	{ "wrap_roundtrip", test_wrap_roundtrip },
	{ "wrong_context", test_wrong_context },
	{ "tampered_blob", test_tampered_blob },
	{ "stolen_state_is_useless", test_stolen_state_is_useless },
	{ "wrong_pin_and_missing", test_wrong_pin_and_missing },
	{ "weak_key_refused", test_weak_key_refused },
	{ "bad_args", test_bad_args },
	{ "threads", test_threads },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "token", NULL, NULL, token_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	module_path = getenv("KM_SOFTHSM_MODULE");
	if (module_path == NULL || *module_path == '\0') {
		module_path = KM_SOFTHSM_MODULE;
	}
	if (module_path == NULL || access(module_path, R_OK) != 0
	    || !kmt_have_program("softhsm2-util")) {
		fprintf(stderr, "SoftHSMv2 not found: skipping\n");
		return 77;
	}
	(void)km_secmem_init(1u << 20);
	return kmt_main(argc, argv, suites);
}
