/*
 * Unit tests for src/util: wire buffers, names, files, secret memory.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kmt.h"
#include "util/buf.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

static void
test_buf_roundtrip(void)
{
	km_buf b, r;
	uint8_t u8;
	uint32_t u32;
	uint64_t u64;
	char *s = NULL;
	BIGNUM *bn = BN_new(), *back = NULL;

	CU_ASSERT_FATAL(bn != NULL);
	CU_ASSERT(BN_set_word(bn, 0x1234567890ULL) == 1);
	km_buf_init(&b);
	CU_ASSERT(km_buf_put_u8(&b, 7) == 0);
	CU_ASSERT(km_buf_put_u32(&b, 0xdeadbeef) == 0);
	CU_ASSERT(km_buf_put_u64(&b, 0x0102030405060708ULL) == 0);
	CU_ASSERT(km_buf_put_cstring(&b, "node1") == 0);
	CU_ASSERT(km_buf_put_bn(&b, bn) == 0);
	CU_ASSERT(!km_buf_failed(&b));

	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_buf_get_u8(&r, &u8) == 0 && u8 == 7);
	CU_ASSERT(km_buf_get_u32(&r, &u32) == 0 && u32 == 0xdeadbeef);
	CU_ASSERT(km_buf_get_u64(&r, &u64) == 0 &&
	    u64 == 0x0102030405060708ULL);
	CU_ASSERT(km_buf_get_cstring(&r, &s, 64) == 0);
	CU_ASSERT(s != NULL && strcmp(s, "node1") == 0);
	CU_ASSERT(km_buf_get_bn(&r, &back, 64, true) == 0);
	CU_ASSERT(back != NULL && BN_cmp(back, bn) == 0);
	CU_ASSERT(km_buf_remaining(&r) == 0);
	free(s);
	BN_free(bn);
	BN_clear_free(back);
	km_buf_free(&b);
}

static void
test_buf_get_u32_short(void)
{
	static const uint8_t three[3] = { 1, 2, 3 };
	km_buf r;
	uint32_t v = 99;
	uint8_t u8;

	km_buf_init_view(&r, three, sizeof(three));
	CU_ASSERT(km_buf_get_u32(&r, &v) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(v == 99);
	CU_ASSERT(km_buf_failed(&r));
	/* sticky: even a read that would fit now fails */
	CU_ASSERT(km_buf_get_u8(&r, &u8) != 0);
}

static void
test_buf_string_over_limit(void)
{
	km_buf b, r;
	const uint8_t *p;
	size_t n;
	char *s = NULL;

	km_buf_init(&b);
	CU_ASSERT(km_buf_put_cstring(&b, "0123456789") == 0);
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_buf_get_string_ptr(&r, &p, &n, 9) == KM_ERR_TOO_LARGE);
	/* a length field pointing past the end */
	b.data[3] = 200;
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_buf_get_cstring(&r, &s, 1000) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(s == NULL);
	/* an embedded NUL is refused in a C string */
	b.data[3] = 10;
	b.data[6] = '\0';
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_buf_get_cstring(&r, &s, 1000) == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
}

static void
test_buf_view_is_read_only(void)
{
	uint8_t x[4] = { 0 };
	km_buf r;

	km_buf_init_view(&r, x, sizeof(x));
	CU_ASSERT(km_buf_put_u8(&r, 1) != 0);
	CU_ASSERT(km_buf_failed(&r));
}

static void
test_buf_secure_grows(void)
{
	km_buf b;
	uint8_t chunk[100];
	int i;

	memset(chunk, 0xa5, sizeof(chunk));
	km_buf_init_secure(&b);
	for (i = 0; i < 50; i++) {
		CU_ASSERT(km_buf_put_raw(&b, chunk, sizeof(chunk)) == 0);
	}
	CU_ASSERT(b.len == 5000);
	CU_ASSERT(b.data[4999] == 0xa5);
	km_buf_free(&b);
	CU_ASSERT(b.data == NULL);
}

static void
test_name_valid(void)
{
	char longname[80];

	CU_ASSERT(km_name_valid("node1"));
	CU_ASSERT(km_name_valid("client.app-01_x"));
	CU_ASSERT(!km_name_valid(""));
	CU_ASSERT(!km_name_valid(NULL));
	CU_ASSERT(!km_name_valid("-node"));
	CU_ASSERT(!km_name_valid("../etc"));
	CU_ASSERT(!km_name_valid("a b"));
	CU_ASSERT(!km_name_valid("a/b"));
	memset(longname, 'a', sizeof(longname));
	longname[64] = '\0';
	CU_ASSERT(!km_name_valid(longname));
	longname[63] = '\0';
	CU_ASSERT(km_name_valid(longname));
}

static void
test_file_atomic_and_excl(void)
{
	const char *dir = kmt_tmpdir();
	char path[4200];
	uint8_t *data = NULL;
	size_t len = 0;
	struct stat st;

	CU_ASSERT_FATAL(dir != NULL);
	CU_ASSERT(km_path_join(path, sizeof(path), dir, "k") == 0);
	CU_ASSERT(km_write_file_excl(path, "abc", 3, 0600) == 0);
	CU_ASSERT(km_write_file_excl(path, "xyz", 3, 0600) == KM_ERR_EXISTS);
	CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CU_ASSERT(km_write_file_atomic(path, "hello", 5, 0640) == 0);
	CU_ASSERT(km_read_file(path, &data, &len, 100) == 0);
	CU_ASSERT(len == 5 && memcmp(data, "hello", 5) == 0);
	free(data);
	CU_ASSERT(km_read_file(path, &data, &len, 4) == KM_ERR_TOO_LARGE);
	CU_ASSERT(km_read_file("/nonexistent/x", &data, &len, 4) ==
	    KM_ERR_NOT_FOUND);
}

static void
test_hex_roundtrip(void)
{
	uint8_t in[4] = { 0x00, 0xab, 0x10, 0xff }, out[4];
	char hex[9];

	km_hex(in, 4, hex);
	CU_ASSERT(strcmp(hex, "00ab10ff") == 0);
	CU_ASSERT(km_unhex(hex, out, 4) == 0 && memcmp(in, out, 4) == 0);
	CU_ASSERT(km_unhex("00ab10f", out, 4) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_unhex("00ab10fg", out, 4) == KM_ERR_BAD_FORMAT);
}

static void
test_secmem_alloc_free(void)
{
	size_t before;
	char *pin;

	/* root has CAP_IPC_LOCK; others may get an unlocked arena */
	(void)km_secmem_init(1u << 16);
	before = km_secmem_used();
	pin = km_secure_strdup("123456");
	CU_ASSERT_FATAL(pin != NULL);
	CU_ASSERT(strcmp(pin, "123456") == 0);
	CU_ASSERT(km_secmem_used() > before);
	km_secure_strfree(pin);
	CU_ASSERT(km_secmem_used() == before);
}

static void
test_strerror_total(void)
{
	int r;

	for (r = 0; r >= KM_ERR_LAST; r--) {
		CU_ASSERT(strcmp(km_strerror(r), "unknown error") != 0);
	}
	CU_ASSERT(strcmp(km_strerror(-1000), "unknown error") == 0);
}

static void
test_conf_parse(void)
{
	static const char text[] = "# a comment\n"
				   "name = node1\n"
				   "[token]\n"
				   "pin = \" 12 # 34 \"  # trailing\n"
				   "label = km-node1 # comment\n"
				   "slots = 42\n"
				   "strict = yes\n";
	static const char *const known[] = { "pin", "label", "slots", "strict",
		NULL };
	char err[256];
	km_conf c;
	uint64_t u;
	bool b;

	CU_ASSERT_FATAL(km_conf_parse("/etc/x.conf", text, &c, err,
			    sizeof(err)) == 0);
	CU_ASSERT(strcmp(km_conf_get(&c, "", "name"), "node1") == 0);
	CU_ASSERT(strcmp(km_conf_get(&c, "token", "pin"), " 12 # 34 ") == 0);
	CU_ASSERT(strcmp(km_conf_get(&c, "token", "label"), "km-node1") == 0);
	CU_ASSERT(km_conf_get(&c, "token", "name") == NULL);
	CU_ASSERT(km_conf_check_keys(&c, "token", known, err, sizeof(err)) ==
	    0);
	CU_ASSERT(km_conf_get_uint(&c, "token", "slots", 1, 100, 7, &u, err,
		      sizeof(err)) == 0 &&
	    u == 42);
	CU_ASSERT(km_conf_get_uint(&c, "token", "absent", 1, 100, 7, &u, err,
		      sizeof(err)) == 0 &&
	    u == 7);
	CU_ASSERT(km_conf_get_uint(&c, "token", "slots", 1, 10, 7, &u, err,
		      sizeof(err)) == KM_ERR_CONFIG);
	CU_ASSERT(strstr(err, "x.conf:6") != NULL);
	CU_ASSERT(km_conf_get_bool(&c, "token", "strict", false, &b, err,
		      sizeof(err)) == 0 &&
	    b);
	CU_ASSERT(km_conf_get_bool(&c, "token", "label", false, &b, err,
		      sizeof(err)) == KM_ERR_CONFIG);
	km_conf_free(&c);
}

static void
test_conf_errors(void)
{
	static const char *const known[] = { "a", NULL };
	char err[256];
	km_conf c;

	CU_ASSERT(km_conf_parse("f", "just words\n", &c, err, sizeof(err)) ==
	    KM_ERR_CONFIG);
	CU_ASSERT(strstr(err, "f:1:") != NULL);
	CU_ASSERT(km_conf_parse("f", "a=1\n[x\n", &c, err, sizeof(err)) ==
	    KM_ERR_CONFIG);
	CU_ASSERT(strstr(err, "f:2:") != NULL);
	CU_ASSERT(km_conf_parse("f", "v = \"open\n", &c, err, sizeof(err)) ==
	    KM_ERR_CONFIG);
	CU_ASSERT(km_conf_parse("f", "a = 1\nb = 2\n", &c, err,
			    sizeof(err)) == 0);
	CU_ASSERT(km_conf_check_keys(&c, "", known, err, sizeof(err)) ==
	    KM_ERR_CONFIG);
	CU_ASSERT(strstr(err, "unknown setting 'b'") != NULL);
	km_conf_free(&c);
	CU_ASSERT(km_conf_load("/nonexistent.conf", &c, err, sizeof(err)) ==
	    KM_ERR_NOT_FOUND);
}

static void
test_conf_resolve_path(void)
{
	char err[64], out[256];
	km_conf c;

	CU_ASSERT_FATAL(km_conf_parse("/etc/km/d.conf", "a=1\n", &c, err,
			    sizeof(err)) == 0);
	CU_ASSERT(km_conf_resolve_path(&c, "ca.crt", out, sizeof(out)) == 0);
	CU_ASSERT(strcmp(out, "/etc/km/ca.crt") == 0);
	CU_ASSERT(km_conf_resolve_path(&c, "/x/y", out, sizeof(out)) == 0);
	CU_ASSERT(strcmp(out, "/x/y") == 0);
	km_conf_free(&c);
}

static const kmt_test conf_tests[] = {
	{ "parse", test_conf_parse },
	{ "errors", test_conf_errors },
	{ "resolve_path", test_conf_resolve_path },
	KMT_END,
};

static const kmt_test buf_tests[] = {
	{ "roundtrip", test_buf_roundtrip },
	{ "get_u32_short", test_buf_get_u32_short },
	{ "string_over_limit", test_buf_string_over_limit },
	{ "view_is_read_only", test_buf_view_is_read_only },
	{ "secure_grows", test_buf_secure_grows },
	KMT_END,
};

static const kmt_test misc_tests[] = {
	{ "name_valid", test_name_valid },
	{ "file_atomic_and_excl", test_file_atomic_and_excl },
	{ "hex_roundtrip", test_hex_roundtrip },
	{ "secmem_alloc_free", test_secmem_alloc_free },
	{ "strerror_total", test_strerror_total },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "wire", NULL, NULL, buf_tests },
	{ "util", NULL, NULL, misc_tests },
	{ "conf", NULL, NULL, conf_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
