#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "kmt.h"

#define KMT_MAX_DIRS 64
static char *kmt_dirs[KMT_MAX_DIRS];
static int kmt_ndirs;

static void
kmt_cleanup_dirs(void)
{
	char cmd[4200];
	int i;

	if (getenv("KMT_KEEP") != NULL) {
		return;
	}
	for (i = 0; i < kmt_ndirs; i++) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", kmt_dirs[i]);
		if (system(cmd) != 0) {
			fprintf(stderr, "kmt: could not remove %s\n",
			    kmt_dirs[i]);
		}
		free(kmt_dirs[i]);
	}
	kmt_ndirs = 0;
}

const char *
kmt_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char tmpl[4096];
	char *d;

	if (base == NULL || *base == '\0') {
		base = "/tmp";
	}
	snprintf(tmpl, sizeof(tmpl), "%s/kmt.XXXXXX", base);
	if (mkdtemp(tmpl) == NULL) {
		return NULL;
	}
	if ((d = strdup(tmpl)) == NULL) {
		return NULL;
	}
	if (kmt_ndirs == 0) {
		atexit(kmt_cleanup_dirs);
	}
	if (kmt_ndirs < KMT_MAX_DIRS) {
		kmt_dirs[kmt_ndirs++] = d;
	}
	return d;
}

int
kmt_run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st)) {
		return -1;
	}
	return WEXITSTATUS(st);
}

bool
kmt_have_program(const char *prog)
{
	return kmt_run("command -v '%s' >/dev/null 2>&1", prog) == 0;
}

int
kmt_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
		port = ntohs(sa.sin_port);
	}
	close(fd);
	return port;
}

/* CUnit keeps test name pointers until the registry is cleaned up. */
#define KMT_MAX_NAMES 1024
static char *kmt_names[KMT_MAX_NAMES];
static int kmt_nnames;

static const char *
kmt_keep_name(const char *name)
{
	char *copy;

	if (kmt_nnames == KMT_MAX_NAMES || (copy = strdup(name)) == NULL) {
		return NULL;
	}
	kmt_names[kmt_nnames++] = copy;
	return copy;
}

static void
kmt_free_names(void)
{
	while (kmt_nnames > 0) {
		free(kmt_names[--kmt_nnames]);
	}
}

int
kmt_main(int argc, char **argv, const kmt_suite *suites)
{
	const char *filter = (argc > 1) ? argv[1] : getenv("KMT_FILTER");
	unsigned failures, run;
	char name[256];
	int s, t;

	setenv("KM_STRICT", "1", 0);
	if (CU_initialize_registry() != CUE_SUCCESS) {
		return 2;
	}
	for (s = 0; suites[s].name != NULL; s++) {
		CU_pSuite suite = CU_add_suite(suites[s].name, suites[s].init,
		    suites[s].cleanup);
		if (suite == NULL) {
			CU_cleanup_registry();
			return 2;
		}
		for (t = 0; suites[s].tests[t].name != NULL; t++) {
			snprintf(name, sizeof(name), "/%s/%s", suites[s].name,
			    suites[s].tests[t].name);
			if (filter != NULL && strstr(name, filter) == NULL) {
				continue;
			}
			/* CUnit keeps the pointer: give it a stable copy. */
			if (CU_add_test(suite, kmt_keep_name(name),
				suites[s].tests[t].fn) == NULL) {
				CU_cleanup_registry();
				return 2;
			}
		}
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures() +
	    CU_get_number_of_suites_failed() + CU_get_number_of_tests_failed();
	run = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	kmt_free_names();
	if (run == 0 && filter == NULL) {
		fprintf(stderr, "kmt: no test ran\n");
		return 1;
	}
	return failures != 0 ? 1 : 0;
}
