#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "util/err.h"
#include "util/util.h"

bool
km_name_valid(const char *name)
{
	size_t i, n;

	if (name == NULL) {
		return false;
	}
	n = strlen(name);
	if (n == 0 || n > KM_NAME_MAX) {
		return false;
	}
	for (i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');
		if (i == 0 && !alnum) {
			return false;
		}
		if (!alnum && c != '.' && c != '_' && c != '-') {
			return false;
		}
	}
	return true;
}

int
km_read_file(const char *path, uint8_t **out, size_t *len, size_t max)
{
	struct stat st;
	uint8_t *p = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return (errno == ENOENT) ? KM_ERR_NOT_FOUND : KM_ERR_IO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = KM_ERR_IO;
		goto out;
	}
	if ((size_t)st.st_size > max) {
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, p + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			r = KM_ERR_IO;
			goto out;
		}
		got += (size_t)n;
	}
	p[got] = '\0';
	*out = p;
	*len = got;
	p = NULL;
	r = 0;
out:
	free(p);
	close(fd);
	return r;
}

static int
km_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return KM_ERR_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
km_fsync_dir(const char *path)
{
	char *copy, *dir;
	int fd, r = 0;

	if ((copy = strdup(path)) == NULL) {
		return KM_ERR_ALLOC;
	}
	dir = dirname(copy);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) != 0) {
			r = KM_ERR_IO;
		}
		close(fd);
	}
	free(copy);
	return r;
}

int
km_write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode)
{
	char tmp[4096];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		return KM_ERR_TOO_LARGE;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd < 0) {
		return KM_ERR_IO;
	}
	if (fchmod(fd, mode) != 0 || (r = km_write_all(fd, data, len)) != 0 ||
	    fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return KM_ERR_IO;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return KM_ERR_IO;
	}
	return km_fsync_dir(path);
}

int
km_write_file_excl(const char *path, const void *data, size_t len,
    mode_t mode)
{
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd < 0) {
		return (errno == EEXIST) ? KM_ERR_EXISTS : KM_ERR_IO;
	}
	if (fchmod(fd, mode) != 0 || (r = km_write_all(fd, data, len)) != 0 ||
	    fsync(fd) != 0) {
		close(fd);
		unlink(path);
		return KM_ERR_IO;
	}
	if (close(fd) != 0) {
		unlink(path);
		return KM_ERR_IO;
	}
	return km_fsync_dir(path);
}

int
km_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t i, n;

	n = strlen(path);
	if (n == 0 || n >= sizeof(buf)) {
		return KM_ERR_INVALID_ARG;
	}
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, mode) != 0 && errno != EEXIST) {
				return KM_ERR_IO;
			}
			buf[i] = c;
		}
	}
	return 0;
}

uint64_t
km_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
km_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
km_random(void *p, size_t len)
{
	if (len > (size_t)INT32_MAX) {
		return KM_ERR_INVALID_ARG;
	}
	return (RAND_bytes(p, (int)len) == 1) ? 0 : KM_ERR_CRYPTO;
}

void
km_hex(const uint8_t *p, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int
km_hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int
km_unhex(const char *s, uint8_t *out, size_t len)
{
	size_t i;
	int hi, lo;

	if (s == NULL || strlen(s) != 2 * len) {
		return KM_ERR_BAD_FORMAT;
	}
	for (i = 0; i < len; i++) {
		hi = km_hexval(s[2 * i]);
		lo = km_hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			return KM_ERR_BAD_FORMAT;
		}
		out[i] = (uint8_t)((hi << 4) | lo);
	}
	return 0;
}

int
km_path_join(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= outlen) ? KM_ERR_TOO_LARGE : 0;
}
