/*
 * A driver for libFuzzer targets without libFuzzer (after p11-kit and
 * OpenSC): it feeds every file named on the command line, or every file in
 * the target's corpus directory $KM_SRCDIR/tests/fuzz/corpus/NAME when none
 * is named, to LLVMFuzzerTestOneInput.  `make check` runs it so the corpus
 * is replayed on every build; --enable-fuzzing builds the real fuzzers.
 */
#include "config.h"

#include <dirent.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
km_fuzz_file(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;

	if (km_read_file(path, &data, &len, 1u << 24) != 0) {
		fprintf(stderr, "fuzz: cannot read %s\n", path);
		return 1;
	}
	(void)LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

int
main(int argc, char **argv)
{
	char dir[4096], path[8192], *base, *name;
	const char *src = getenv("KM_SRCDIR");
	struct dirent *de;
	DIR *d;
	int i, n = 0, bad = 0;

	if (argc > 1) {
		for (i = 1; i < argc; i++) {
			bad |= km_fuzz_file(argv[i]);
		}
		return bad;
	}
	if ((base = strdup(argv[0])) == NULL) {
		return 2;
	}
	name = basename(base);
	if (strncmp(name, "fuzz-", 5) == 0) {
		name += 5;
	}
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s",
	    src ? src : KM_SRCDIR, name);
	free(base);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "fuzz: no corpus at %s\n", dir);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		bad |= km_fuzz_file(path);
		n++;
	}
	closedir(d);
	printf("fuzz: replayed %d inputs from %s\n", n, dir);
	return (n == 0) ? 1 : bad;
}
