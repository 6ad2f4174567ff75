/*
 * Fuzz target: the config file reader (src/util/conf.h).  Config files are
 * input too: an operator's typo, a truncated file or a hostile file in a
 * shared directory must give a one-line error, never a crash.
 *
 * Input: the text of one file (bytes after a NUL are ignored, as
 * km_conf_load refuses a file with a NUL before it parses).
 * Invariant: what parses is a list of (section, key, value) that can be
 * written back as "[section]" and 'key = "value"' lines and parses again
 * to the same list; every line number is within the text.  The typed
 * getters run over every key so value parsing is fuzzed as well.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/buf.h"
#include "util/conf.h"

/* Writes @c back as text that must parse to the same items. */
static char *
fuzz_conf_write(const km_conf *c)
{
	const char *section = "";
	uint8_t *text = NULL;
	size_t i, len = 0;
	km_buf b;

	km_buf_init(&b);
	for (i = 0; i < c->count; i++) {
		const km_conf_item *it = &c->items[i];

		if (strcmp(it->section, section) != 0) {
			KM_FUZZ_ASSERT(km_buf_put_raw(&b, "[", 1) == 0
			    && km_buf_put_raw(
			           &b, it->section, strlen(it->section))
			        == 0
			    && km_buf_put_raw(&b, "]\n", 2) == 0);
			section = it->section;
		}
		KM_FUZZ_ASSERT(
		    km_buf_put_raw(&b, it->key, strlen(it->key)) == 0
		    && km_buf_put_raw(&b, " = \"", 4) == 0
		    && km_buf_put_raw(&b, it->value, strlen(it->value)) == 0
		    && km_buf_put_raw(&b, "\"\n", 2) == 0);
	}
	KM_FUZZ_ASSERT(km_buf_put_u8(&b, 0) == 0);
	KM_FUZZ_ASSERT(km_buf_steal(&b, &text, &len) == 0);
	return (char *)text;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_conf c, again;
	char err[256], path[4096], *text, *out;
	unsigned lines = 1;
	uint64_t u;
	bool v;
	size_t i;

	if ((text = malloc(size + 1)) == NULL) {
		return 0;
	}
	memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0; text[i] != '\0'; i++) {
		lines += text[i] == '\n';
	}
	if (km_conf_parse("/etc/keymesh/fuzz.conf", text, &c, err, sizeof(err))
	    != 0) {
		KM_FUZZ_ASSERT(c.items == NULL && c.count == 0);
		free(text);
		return 0;
	}
	KM_FUZZ_ACCEPTED("conf");
	for (i = 0; i < c.count; i++) {
		const km_conf_item *it = &c.items[i];

		KM_FUZZ_ASSERT(it->line >= 1 && it->line <= lines);
		KM_FUZZ_ASSERT(it->key[0] != '\0');
		KM_FUZZ_ASSERT(strchr(it->value, '\n') == NULL);
		(void)km_conf_get_uint(&c, it->section, it->key, 0, UINT64_MAX,
		    0, &u, err, sizeof(err));
		(void)km_conf_get_bool(
		    &c, it->section, it->key, false, &v, err, sizeof(err));
		(void)km_conf_resolve_path(&c, it->value, path, sizeof(path));
	}
	out = fuzz_conf_write(&c);
	KM_FUZZ_ASSERT(
	    km_conf_parse("rewritten", out, &again, err, sizeof(err)) == 0);
	KM_FUZZ_ASSERT(again.count == c.count);
	for (i = 0; i < c.count; i++) {
		KM_FUZZ_ASSERT(
		    strcmp(again.items[i].section, c.items[i].section) == 0);
		KM_FUZZ_ASSERT(
		    strcmp(again.items[i].key, c.items[i].key) == 0);
		KM_FUZZ_ASSERT(
		    strcmp(again.items[i].value, c.items[i].value) == 0);
	}
	km_conf_free(&again);
	km_conf_free(&c);
	free(out);
	free(text);
	return 0;
}
