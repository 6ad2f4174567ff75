#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/secmem.h"

void
km_buf_init(km_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
km_buf_init_secure(km_buf *b)
{
	memset(b, 0, sizeof(*b));
	b->secure = true;
}

void
km_buf_init_view(km_buf *b, const void *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->data = (uint8_t *)data;
	b->len = len;
}

void
km_buf_free(km_buf *b)
{
	if (b->cap > 0) {
		if (b->secure) {
			km_secret_free(b->data, b->cap);
		} else {
			free(b->data);
		}
	}
	b->data = NULL;
	b->len = b->cap = b->off = 0;
	b->failed = false;
}

void
km_buf_reset(km_buf *b)
{
	if (b->cap > 0) {
		km_secret_wipe(b->data, b->len);
		b->len = 0;
	}
	b->off = 0;
	b->failed = false;
}

int
km_buf_steal(km_buf *b, uint8_t **out, size_t *len)
{
	if (b->failed || b->cap == 0) {
		return KM_ERR_INVALID_ARG;
	}
	*out = b->data;
	*len = b->len;
	b->data = NULL;
	b->len = b->cap = b->off = 0;
	return 0;
}

static int
km_buf_reserve(km_buf *b, size_t more)
{
	size_t need, ncap;
	uint8_t *p;

	if (b->failed) {
		return KM_ERR_INVALID_ARG;
	}
	if (b->cap == 0 && b->data != NULL) {
		/* a read-only view */
		b->failed = true;
		return KM_ERR_INVALID_ARG;
	}
	if (more > KM_BUF_MAX || b->len > KM_BUF_MAX - more) {
		b->failed = true;
		return KM_ERR_TOO_LARGE;
	}
	need = b->len + more;
	if (need <= b->cap) {
		return 0;
	}
	ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		ncap *= 2;
	}
	if (b->secure) {
		/* Copy and wipe: realloc would leave the old bytes behind. */
		p = km_secure_alloc(ncap);
		if (p != NULL && b->len > 0) {
			memcpy(p, b->data, b->len);
		}
		if (p != NULL) {
			km_secret_free(b->data, b->cap);
		}
	} else {
		p = realloc(b->data, ncap);
	}
	if (p == NULL) {
		b->failed = true;
		return KM_ERR_ALLOC;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
km_buf_put_raw(km_buf *b, const void *p, size_t len)
{
	int r;

	if ((r = km_buf_reserve(b, len)) != 0) {
		return r;
	}
	if (len > 0) {
		memcpy(b->data + b->len, p, len);
	}
	b->len += len;
	return 0;
}

int
km_buf_put_u8(km_buf *b, uint8_t v)
{
	return km_buf_put_raw(b, &v, 1);
}

int
km_buf_put_u32(km_buf *b, uint32_t v)
{
	uint8_t x[4];

	x[0] = (uint8_t)(v >> 24);
	x[1] = (uint8_t)(v >> 16);
	x[2] = (uint8_t)(v >> 8);
	x[3] = (uint8_t)v;
	return km_buf_put_raw(b, x, sizeof(x));
}

int
km_buf_put_u64(km_buf *b, uint64_t v)
{
	int r;

	if ((r = km_buf_put_u32(b, (uint32_t)(v >> 32))) != 0) {
		return r;
	}
	return km_buf_put_u32(b, (uint32_t)v);
}

int
km_buf_put_string(km_buf *b, const void *p, size_t len)
{
	int r;

	if (len > UINT32_MAX) {
		b->failed = true;
		return KM_ERR_TOO_LARGE;
	}
	if ((r = km_buf_put_u32(b, (uint32_t)len)) != 0) {
		return r;
	}
	return km_buf_put_raw(b, p, len);
}

int
km_buf_put_cstring(km_buf *b, const char *s)
{
	return km_buf_put_string(b, s, s ? strlen(s) : 0);
}

int
km_buf_put_bn(km_buf *b, const BIGNUM *bn)
{
	int n, r;
	size_t start;

	if (bn == NULL || BN_is_negative(bn)) {
		b->failed = true;
		return KM_ERR_INVALID_ARG;
	}
	n = BN_num_bytes(bn);
	if ((r = km_buf_put_u32(b, (uint32_t)n)) != 0) {
		return r;
	}
	if ((r = km_buf_reserve(b, (size_t)n)) != 0) {
		return r;
	}
	start = b->len;
	if (n > 0 && BN_bn2binpad(bn, b->data + start, n) != n) {
		b->failed = true;
		return KM_ERR_CRYPTO;
	}
	b->len += (size_t)n;
	return 0;
}

int
km_buf_get_raw(km_buf *b, void *p, size_t len)
{
	if (b->failed || km_buf_remaining(b) < len) {
		b->failed = true;
		return KM_ERR_BAD_FORMAT;
	}
	if (len > 0) {
		memcpy(p, b->data + b->off, len);
	}
	b->off += len;
	return 0;
}

int
km_buf_get_u8(km_buf *b, uint8_t *v)
{
	return km_buf_get_raw(b, v, 1);
}

int
km_buf_get_u32(km_buf *b, uint32_t *v)
{
	uint8_t x[4];
	int r;

	if ((r = km_buf_get_raw(b, x, sizeof(x))) != 0) {
		return r;
	}
	*v = ((uint32_t)x[0] << 24) | ((uint32_t)x[1] << 16) |
	    ((uint32_t)x[2] << 8) | (uint32_t)x[3];
	return 0;
}

int
km_buf_get_u64(km_buf *b, uint64_t *v)
{
	uint32_t hi, lo;
	int r;

	if ((r = km_buf_get_u32(b, &hi)) != 0 ||
	    (r = km_buf_get_u32(b, &lo)) != 0) {
		return r;
	}
	*v = ((uint64_t)hi << 32) | lo;
	return 0;
}

int
km_buf_get_string_ptr(km_buf *b, const uint8_t **p, size_t *len, size_t max)
{
	uint32_t n;
	int r;

	if ((r = km_buf_get_u32(b, &n)) != 0) {
		return r;
	}
	if (n > max) {
		b->failed = true;
		return KM_ERR_TOO_LARGE;
	}
	if (km_buf_remaining(b) < n) {
		b->failed = true;
		return KM_ERR_BAD_FORMAT;
	}
	*p = b->data + b->off;
	*len = n;
	b->off += n;
	return 0;
}

int
km_buf_get_cstring(km_buf *b, char **s, size_t max)
{
	const uint8_t *p;
	size_t n;
	char *out;
	int r;

	if ((r = km_buf_get_string_ptr(b, &p, &n, max)) != 0) {
		return r;
	}
	if (n > 0 && memchr(p, '\0', n) != NULL) {
		b->failed = true;
		return KM_ERR_BAD_FORMAT;
	}
	if ((out = malloc(n + 1)) == NULL) {
		b->failed = true;
		return KM_ERR_ALLOC;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	*s = out;
	return 0;
}

int
km_buf_get_bn(km_buf *b, BIGNUM **bn, size_t maxbytes, bool secure)
{
	const uint8_t *p;
	size_t n;
	BIGNUM *x;
	int r;

	if ((r = km_buf_get_string_ptr(b, &p, &n, maxbytes)) != 0) {
		return r;
	}
	x = secure ? BN_secure_new() : BN_new();
	if (x == NULL) {
		b->failed = true;
		return KM_ERR_ALLOC;
	}
	if (secure) {
		BN_set_flags(x, BN_FLG_CONSTTIME);
	}
	if (BN_bin2bn(p, (int)n, x) == NULL) {
		BN_clear_free(x);
		b->failed = true;
		return KM_ERR_CRYPTO;
	}
	*bn = x;
	return 0;
}
