/*
 * Logging with stable message IDs (after nng) and debug categories (after
 * p11-kit).
 *
 * Every log line carries a stable ID such as "KMD-PEER-REJECT" so operators
 * can grep and alert on it, the function that logged it, and, where given,
 * the km_strerror() text of an error code.  Logs show codes, handles and
 * lengths, never buffers: no secret, PIN or share is ever passed to a log
 * call.
 *
 * Debug tracing (km_debug) is selected at run time with KM_DEBUG=wire,net,...
 * ("all" for everything) and compiles out without --enable-debug.
 */
#ifndef KM_UTIL_LOG_H
#define KM_UTIL_LOG_H

#include <stdarg.h>

typedef enum km_log_level {
	KM_LOG_NONE = 0,
	KM_LOG_ERR = 1,
	KM_LOG_WARN = 2,
	KM_LOG_INFO = 3,
	KM_LOG_DEBUG = 4,
} km_log_level;

/* Debug categories, for KM_DEBUG. */
#define KM_DBG_WIRE 0x01u
#define KM_DBG_NET 0x02u
#define KM_DBG_P11 0x04u
#define KM_DBG_CRYPTO 0x08u
#define KM_DBG_STORE 0x10u
#define KM_DBG_MESH 0x20u

/**
 * km_log_init:
 * @progname: prefix for each line ("keymeshd", "keymesh-pkcs11", ...)
 * @level: highest level written
 *
 * Reads KM_DEBUG for debug categories.  Callable more than once.
 */
void km_log_init(const char *progname, km_log_level level);
void km_log_set_level(km_log_level level);
km_log_level km_log_get_level(void);

/* A sink other than stderr (the daemon's log file, a test's capture). */
typedef void (*km_log_sink)(km_log_level level, const char *line, void *arg);
void km_log_set_sink(km_log_sink sink, void *arg);

void km_log(km_log_level level, const char *id, const char *func, int r,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define km_log_error(id, ...) km_log(KM_LOG_ERR, id, __func__, 0, __VA_ARGS__)
#define km_log_error_r(r, id, ...) \
	km_log(KM_LOG_ERR, id, __func__, r, __VA_ARGS__)
#define km_log_warn(id, ...) km_log(KM_LOG_WARN, id, __func__, 0, __VA_ARGS__)
#define km_log_warn_r(r, id, ...) \
	km_log(KM_LOG_WARN, id, __func__, r, __VA_ARGS__)
#define km_log_info(id, ...) km_log(KM_LOG_INFO, id, __func__, 0, __VA_ARGS__)

#ifdef KM_WITH_DEBUG
unsigned km_debug_mask(void);
void km_debug_msg(unsigned cat, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define km_debug(cat, ...)                                        \
	do {                                                      \
		if (km_debug_mask() & (cat)) {                    \
			km_debug_msg(cat, __func__, __VA_ARGS__); \
		}                                                 \
	} while (0)
#else
#define km_debug(cat, ...) \
	do {               \
	} while (0)
#endif

#endif /* KM_UTIL_LOG_H */
