#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/err.h"
#include "util/log.h"

static char km_log_prog[32] = "keymesh";
static km_log_level km_log_lvl = KM_LOG_WARN;
static km_log_sink km_log_out = NULL;
static void *km_log_arg = NULL;
static unsigned km_log_dbg = 0;
static pthread_mutex_t km_log_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned
km_log_parse_debug(const char *s)
{
	static const struct {
		const char *name;
		unsigned bit;
	} cats[] = {
		{ "wire", KM_DBG_WIRE },
		{ "net", KM_DBG_NET },
		{ "p11", KM_DBG_P11 },
		{ "crypto", KM_DBG_CRYPTO },
		{ "store", KM_DBG_STORE },
		{ "mesh", KM_DBG_MESH },
	};
	unsigned mask = 0;
	size_t i, n;

	while (s != NULL && *s != '\0') {
		n = strcspn(s, ",: ");
		if (n == 3 && strncmp(s, "all", 3) == 0) {
			mask = ~0u;
		}
		for (i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
			if (strlen(cats[i].name) == n &&
			    strncmp(s, cats[i].name, n) == 0) {
				mask |= cats[i].bit;
			}
		}
		s += n;
		s += strspn(s, ",: ");
	}
	return mask;
}

void
km_log_init(const char *progname, km_log_level level)
{
	pthread_mutex_lock(&km_log_lock);
	if (progname != NULL) {
		snprintf(km_log_prog, sizeof(km_log_prog), "%s", progname);
	}
	km_log_lvl = level;
	km_log_dbg = km_log_parse_debug(getenv("KM_DEBUG"));
	pthread_mutex_unlock(&km_log_lock);
}

void
km_log_set_level(km_log_level level)
{
	km_log_lvl = level;
}

km_log_level
km_log_get_level(void)
{
	return km_log_lvl;
}

void
km_log_set_sink(km_log_sink sink, void *arg)
{
	pthread_mutex_lock(&km_log_lock);
	km_log_out = sink;
	km_log_arg = arg;
	pthread_mutex_unlock(&km_log_lock);
}

static const char *
km_log_level_name(km_log_level level)
{
	switch (level) {
	case KM_LOG_ERR:
		return "error";
	case KM_LOG_WARN:
		return "warning";
	case KM_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

static void
km_log_emit(km_log_level level, const char *line)
{
	pthread_mutex_lock(&km_log_lock);
	if (km_log_out != NULL) {
		km_log_out(level, line, km_log_arg);
	} else {
		fprintf(stderr, "%s\n", line);
	}
	pthread_mutex_unlock(&km_log_lock);
}

void
km_log(km_log_level level, const char *id, const char *func, int r,
    const char *fmt, ...)
{
	char msg[1024], line[1280];
	va_list ap;

	if (level > km_log_lvl || level == KM_LOG_NONE) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r != 0) {
		snprintf(line, sizeof(line), "%s: %s [%s] %s: %s: %s",
		    km_log_prog, km_log_level_name(level), id, func, msg,
		    km_strerror(r));
	} else {
		snprintf(line, sizeof(line), "%s: %s [%s] %s: %s",
		    km_log_prog, km_log_level_name(level), id, func, msg);
	}
	km_log_emit(level, line);
}

#ifdef KM_WITH_DEBUG
unsigned
km_debug_mask(void)
{
	return km_log_dbg;
}

void
km_debug_msg(unsigned cat, const char *func, const char *fmt, ...)
{
	char msg[1024], line[1280];
	va_list ap;

	(void)cat;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: debug %s: %s", km_log_prog, func,
	    msg);
	km_log_emit(KM_LOG_DEBUG, line);
}
#endif
