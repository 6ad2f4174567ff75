#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/conf.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

static char *
km_conf_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t') {
		s++;
	}
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) {
		*--e = '\0';
	}
	return s;
}

static int
km_conf_add(km_conf *conf, const char *section, const char *key,
    const char *value, unsigned line)
{
	km_conf_item *n;

	n = realloc(conf->items, (conf->count + 1) * sizeof(*n));
	if (n == NULL) {
		return KM_ERR_ALLOC;
	}
	conf->items = n;
	n = &conf->items[conf->count];
	n->section = strdup(section);
	n->key = strdup(key);
	n->value = strdup(value);
	n->line = line;
	if (n->section == NULL || n->key == NULL || n->value == NULL) {
		free(n->section);
		free(n->key);
		free(n->value);
		return KM_ERR_ALLOC;
	}
	conf->count++;
	return 0;
}

int
km_conf_parse(const char *path, const char *text, km_conf *conf, char *err,
    size_t errlen)
{
	char *copy = NULL, *line, *next, *section;
	unsigned lineno = 0;
	int r;

	memset(conf, 0, sizeof(*conf));
	if ((conf->path = strdup(path ? path : "(config)")) == NULL ||
	    (copy = strdup(text)) == NULL ||
	    (section = strdup("")) == NULL) {
		free(copy);
		km_conf_free(conf);
		return KM_ERR_ALLOC;
	}
	for (line = copy; line != NULL; line = next) {
		char *eq, *key, *val, *hash;

		lineno++;
		if ((next = strchr(line, '\n')) != NULL) {
			*next++ = '\0';
		}
		line = km_conf_trim(line);
		if (*line == '\0' || *line == '#' || *line == ';') {
			continue;
		}
		if (*line == '[') {
			char *end = strchr(line, ']');
			if (end == NULL || km_conf_trim(end + 1)[0] != '\0') {
				snprintf(err, errlen,
				    "%s:%u: malformed section header",
				    conf->path, lineno);
				r = KM_ERR_CONFIG;
				goto out;
			}
			*end = '\0';
			free(section);
			if ((section = strdup(km_conf_trim(line + 1))) ==
			    NULL) {
				r = KM_ERR_ALLOC;
				goto out;
			}
			continue;
		}
		if ((eq = strchr(line, '=')) == NULL) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'",
			    conf->path, lineno);
			r = KM_ERR_CONFIG;
			goto out;
		}
		*eq = '\0';
		key = km_conf_trim(line);
		val = km_conf_trim(eq + 1);
		if (*key == '\0' || strpbrk(key, " \t\"") != NULL) {
			snprintf(err, errlen, "%s:%u: malformed key",
			    conf->path, lineno);
			r = KM_ERR_CONFIG;
			goto out;
		}
		if (*val == '"') {
			char *end = strrchr(val + 1, '"');
			if (end == NULL) {
				snprintf(err, errlen,
				    "%s:%u: unterminated quoted value",
				    conf->path, lineno);
				r = KM_ERR_CONFIG;
				goto out;
			}
			hash = km_conf_trim(end + 1);
			if (*hash != '\0' && *hash != '#') {
				snprintf(err, errlen,
				    "%s:%u: text after quoted value",
				    conf->path, lineno);
				r = KM_ERR_CONFIG;
				goto out;
			}
			*end = '\0';
			val++;
		} else if ((hash = strchr(val, '#')) != NULL) {
			*hash = '\0';
			val = km_conf_trim(val);
		}
		if ((r = km_conf_add(conf, section, key, val, lineno)) != 0) {
			goto out;
		}
	}
	r = 0;
out:
	free(section);
	/* the text may hold a PIN: wipe the copy */
	if (copy != NULL) {
		km_secret_wipe_str(copy, strlen(text));
	}
	free(copy);
	if (r != 0) {
		km_conf_free(conf);
	}
	return r;
}

int
km_conf_load(const char *path, km_conf *conf, char *err, size_t errlen)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	memset(conf, 0, sizeof(*conf));
	r = km_read_file(path, &data, &len, KM_CONF_MAX_FILE);
	if (r != 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    r == KM_ERR_NOT_FOUND ? "no such file" : km_strerror(r));
		return r;
	}
	if (memchr(data, '\0', len) != NULL) {
		snprintf(err, errlen, "%s: not a text file", path);
		free(data);
		return KM_ERR_CONFIG;
	}
	r = km_conf_parse(path, (const char *)data, conf, err, errlen);
	km_secret_wipe_str((char *)data, len);
	free(data);
	return r;
}

void
km_conf_free(km_conf *conf)
{
	size_t i;

	for (i = 0; i < conf->count; i++) {
		free(conf->items[i].section);
		free(conf->items[i].key);
		if (conf->items[i].value != NULL) {
			km_secret_wipe_str(conf->items[i].value,
			    strlen(conf->items[i].value));
		}
		free(conf->items[i].value);
	}
	free(conf->items);
	free(conf->path);
	memset(conf, 0, sizeof(*conf));
}

const char *
km_conf_get(const km_conf *conf, const char *section, const char *key)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < conf->count; i++) {
		if (strcmp(conf->items[i].section, section) == 0 &&
		    strcmp(conf->items[i].key, key) == 0) {
			v = conf->items[i].value;
		}
	}
	return v;
}

int
km_conf_check_keys(const km_conf *conf, const char *section,
    const char *const *known, char *err, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < conf->count; i++) {
		bool ok = false;

		if (strcmp(conf->items[i].section, section) != 0) {
			continue;
		}
		for (j = 0; known[j] != NULL; j++) {
			if (strcmp(known[j], conf->items[i].key) == 0) {
				ok = true;
				break;
			}
		}
		if (!ok) {
			snprintf(err, errlen,
			    "%s:%u: unknown setting '%s'%s%s%s", conf->path,
			    conf->items[i].line, conf->items[i].key,
			    *section ? " in [" : "", section,
			    *section ? "]" : "");
			return KM_ERR_CONFIG;
		}
	}
	return 0;
}

static unsigned
km_conf_line(const km_conf *conf, const char *section, const char *key)
{
	unsigned line = 0;
	size_t i;

	for (i = 0; i < conf->count; i++) {
		if (strcmp(conf->items[i].section, section) == 0 &&
		    strcmp(conf->items[i].key, key) == 0) {
			line = conf->items[i].line;
		}
	}
	return line;
}

int
km_conf_get_uint(const km_conf *conf, const char *section, const char *key,
    uint64_t min, uint64_t max, uint64_t def, uint64_t *out, char *err,
    size_t errlen)
{
	const char *v = km_conf_get(conf, section, key);
	unsigned long long x;
	char *end;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	errno = 0;
	x = strtoull(v, &end, 10);
	if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 ||
	    x < min || x > max) {
		snprintf(err, errlen,
		    "%s:%u: %s must be a whole number from %llu to %llu, not "
		    "'%s'",
		    conf->path, km_conf_line(conf, section, key), key,
		    (unsigned long long)min, (unsigned long long)max, v);
		return KM_ERR_CONFIG;
	}
	*out = x;
	return 0;
}

int
km_conf_get_bool(const km_conf *conf, const char *section, const char *key,
    bool def, bool *out, char *err, size_t errlen)
{
	const char *v = km_conf_get(conf, section, key);

	if (v == NULL) {
		*out = def;
	} else if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "1") == 0) {
		*out = true;
	} else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
	    strcmp(v, "0") == 0) {
		*out = false;
	} else {
		snprintf(err, errlen, "%s:%u: %s must be yes or no, not '%s'",
		    conf->path, km_conf_line(conf, section, key), key, v);
		return KM_ERR_CONFIG;
	}
	return 0;
}

int
km_conf_resolve_path(const km_conf *conf, const char *value, char *out,
    size_t outlen)
{
	const char *slash;
	int n;

	if (value[0] == '/' || conf->path == NULL ||
	    (slash = strrchr(conf->path, '/')) == NULL) {
		n = snprintf(out, outlen, "%s", value);
	} else {
		n = snprintf(out, outlen, "%.*s/%s",
		    (int)(slash - conf->path), conf->path, value);
	}
	return (n < 0 || (size_t)n >= outlen) ? KM_ERR_TOO_LARGE : 0;
}
