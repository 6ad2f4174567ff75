/*
 * keymesh: the admin CLI.
 *
 *   keymesh GROUP VERB [--option value ...]
 *
 * Every error is one line on stderr, "keymesh: GROUP VERB: what was wrong",
 * with exit status 1; a usage error exits 2.
 */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymesh.h"
#include "util/log.h"
#include "util/secmem.h"

static const kmc_command *const kmc_tables[] = {
	kmc_pki_commands,
	kmc_key_commands,
	kmc_dev_commands,
	kmc_graph_commands,
	kmc_policy_commands,
	kmc_node_commands,
	NULL,
};

int
kmc_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "keymesh: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int
kmc_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "keymesh: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see keymesh help)\n", stderr);
	return 2;
}

int
kmc_opts(const char *cmd, int argc, char **argv, const char *const *names,
    const char **values, int count)
{
	int i, j;

	for (j = 0; j < count; j++) {
		values[j] = NULL;
	}
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		bool found = false;

		if (strncmp(a, "--", 2) != 0) {
			return kmc_usage(cmd, "unexpected argument '%s'", a);
		}
		for (j = 0; j < count; j++) {
			if (strcmp(a + 2, names[j]) == 0) {
				if (i + 1 >= argc) {
					return kmc_usage(cmd,
					    "option %s needs a value", a);
				}
				values[j] = argv[++i];
				found = true;
				break;
			}
		}
		if (!found) {
			return kmc_usage(cmd, "unknown option '%s'", a);
		}
	}
	return 0;
}

static void
kmc_help(FILE *f)
{
	int t, c;

	fprintf(f, "usage: keymesh GROUP VERB [options]\n\n");
	for (t = 0; kmc_tables[t] != NULL; t++) {
		for (c = 0; kmc_tables[t][c].group != NULL; c++) {
			const kmc_command *k = &kmc_tables[t][c];
			fprintf(f, "  keymesh %s %s %s\n      %s\n", k->group,
			    k->verb, k->usage, k->help);
		}
	}
}

int
main(int argc, char **argv)
{
	char cmd[64];
	int t, c;

	km_log_init("keymesh", KM_LOG_WARN);
	(void)km_secmem_init(KM_SECMEM_MODULE_SIZE);
	(void)km_secmem_harden_process();

	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		kmc_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (t = 0; kmc_tables[t] != NULL; t++) {
		for (c = 0; kmc_tables[t][c].group != NULL; c++) {
			const kmc_command *k = &kmc_tables[t][c];
			if (strcmp(argv[1], k->group) != 0) {
				continue;
			}
			if (k->verb[0] == '\0') {
				return k->fn(argc - 2, argv + 2);
			}
			if (argc < 3 || strcmp(argv[2], k->verb) != 0) {
				continue;
			}
			return k->fn(argc - 3, argv + 3);
		}
	}
	snprintf(cmd, sizeof(cmd), "%s%s%s", argv[1], argc > 2 ? " " : "",
	    argc > 2 ? argv[2] : "");
	return kmc_usage(cmd, "unknown command");
}
