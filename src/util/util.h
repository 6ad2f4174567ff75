/*
 * Small helpers shared by every part: files, time, names, hex.
 */
#ifndef KM_UTIL_UTIL_H
#define KM_UTIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Longest node, client, key or partition name. */
#define KM_NAME_MAX 63

/**
 * km_name_valid:
 * @name: a node, client, key label or partition name
 *
 * A name is 1..63 characters of [A-Za-z0-9._-], starting with a letter or
 * digit; it is safe in a file name, a certificate SAN and a URI.
 */
bool km_name_valid(const char *name);

/**
 * km_read_file:
 * @path: file to read
 * @out: receives malloc'd contents, NUL-terminated (not counted in @len)
 * @len: receives the length
 * @max: refuse files larger than this
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_TOO_LARGE or KM_ERR_IO.
 */
int km_read_file(const char *path, uint8_t **out, size_t *len, size_t max);

/**
 * km_write_file_atomic:
 * @path: destination
 * @data: bytes
 * @len: length
 * @mode: permissions, applied before any byte is written (0600 for keys)
 *
 * Writes to a temporary file beside @path, fsyncs, renames over @path and
 * fsyncs the directory, so a crash leaves the old file or the new one.
 */
int km_write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode);

/** km_write_file_excl: like km_write_file_atomic but fails with
 * KM_ERR_EXISTS when @path already exists. */
int km_write_file_excl(const char *path, const void *data, size_t len,
    mode_t mode);

/** km_mkdir_p: create @path and parents with @mode (existing is fine). */
int km_mkdir_p(const char *path, mode_t mode);

/** km_now_ms: wall-clock milliseconds since the epoch. */
uint64_t km_now_ms(void);

/** km_mono_ns: monotonic nanoseconds, for durations. */
uint64_t km_mono_ns(void);

/** km_random: cryptographically strong random bytes (RAND_bytes). */
int km_random(void *p, size_t len);

/** km_hex: lower-case hex of @len bytes into @out (2*len+1 bytes). */
void km_hex(const uint8_t *p, size_t len, char *out);

/** km_unhex: parse exactly @len bytes of hex; KM_ERR_BAD_FORMAT on error. */
int km_unhex(const char *s, uint8_t *out, size_t len);

/** km_path_join: snprintf-style "%s/%s" with truncation checked. */
int km_path_join(char *out, size_t outlen, const char *dir, const char *name);

#endif /* KM_UTIL_UTIL_H */
