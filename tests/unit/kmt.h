/*
 * kmt: the keymesh CUnit harness (after nng's nuts and p11-kit's test.h).
 *
 * A test binary lists its suites as kmt_suite tables and calls kmt_main().
 * Each test is reported as "/suite/test".  kmt_main() returns non-zero when
 * any assertion failed, so `make check` fails with it.
 */
#ifndef KM_TESTS_KMT_H
#define KM_TESTS_KMT_H

#include <stdbool.h>
#include <stddef.h>

#include <CUnit/CUnit.h>

typedef struct kmt_test {
	const char *name;
	void (*fn)(void);
} kmt_test;

typedef struct kmt_suite {
	const char *name;
	int (*init)(void);
	int (*cleanup)(void);
	const kmt_test *tests; /* terminated by { NULL, NULL } */
} kmt_suite;

#define KMT_END \
	{           \
		NULL, NULL \
	}

/**
 * kmt_main:
 * @argc, @argv: the test binary's; an optional argument selects tests whose
 * "/suite/test" name contains it
 * @suites: terminated by an entry with a NULL name
 *
 * Returns: 0 when every test passed, 1 otherwise (2 on harness failure).
 */
int kmt_main(int argc, char **argv, const kmt_suite *suites);

/**
 * kmt_tmpdir:
 *
 * A fresh directory under $TMPDIR (mkdtemp), removed with its contents when
 * the process exits unless KMT_KEEP is set.  The string is static per call.
 */
const char *kmt_tmpdir(void);

/** kmt_run: run a shell command, return its exit status (-1 on failure). */
int kmt_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** kmt_have_program: true when @prog is found on PATH. */
bool kmt_have_program(const char *prog);

/** kmt_free_port: a currently free TCP port on 127.0.0.1. */
int kmt_free_port(void);

#endif /* KM_TESTS_KMT_H */
