/*
 * A small, strict configuration file reader shared by keymeshd, the PKCS#11
 * module and the admin CLI.
 *
 * Format: one "key = value" per line; "[section]" lines start a section;
 * '#' starts a comment (not inside a value); blank lines are ignored;
 * values may be double-quoted to keep leading/trailing spaces or '#'.  A
 * line that is none of these is an error naming its file and line number.
 * Each caller checks the keys it knows and refuses the rest, so a typo in a
 * config is an error, not a silently ignored setting.
 */
#ifndef KM_UTIL_CONF_H
#define KM_UTIL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KM_CONF_MAX_FILE (1u << 20)

typedef struct km_conf_item {
	char *section; /* "" before the first [section] */
	char *key;
	char *value;
	unsigned line;
} km_conf_item;

typedef struct km_conf {
	char *path;
	km_conf_item *items;
	size_t count;
} km_conf;

/**
 * km_conf_load:
 * @path: the file
 * @conf: receives the items; free with km_conf_free()
 * @err: receives a one-line reason on failure ("FILE:LINE: ...")
 * @errlen: size of @err
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_IO, KM_ERR_TOO_LARGE or
 * KM_ERR_CONFIG (syntax; @err says where).
 */
int km_conf_load(const char *path, km_conf *conf, char *err, size_t errlen);

/** km_conf_parse: the same over text in memory (@path only names it). */
int km_conf_parse(const char *path, const char *text, km_conf *conf,
    char *err, size_t errlen);

void km_conf_free(km_conf *conf);

/* The last value of section/key, or NULL. */
const char *km_conf_get(const km_conf *conf, const char *section,
    const char *key);

/**
 * km_conf_check_keys:
 * Refuses any key of @section not listed in @known (NULL-terminated),
 * writing "FILE:LINE: unknown setting 'key' in [section]" to @err.
 */
int km_conf_check_keys(const km_conf *conf, const char *section,
    const char *const *known, char *err, size_t errlen);

/* Typed getters: absent keys give @def; bad values KM_ERR_CONFIG + @err. */
int km_conf_get_uint(const km_conf *conf, const char *section,
    const char *key, uint64_t min, uint64_t max, uint64_t def, uint64_t *out,
    char *err, size_t errlen);
int km_conf_get_bool(const km_conf *conf, const char *section,
    const char *key, bool def, bool *out, char *err, size_t errlen);

/**
 * km_conf_resolve_path:
 * Makes a relative path in a config file relative to the file's directory.
 * Writes into @out; returns 0 or KM_ERR_TOO_LARGE.
 */
int km_conf_resolve_path(const km_conf *conf, const char *value, char *out,
    size_t outlen);

#endif /* KM_UTIL_CONF_H */
