/*
 * Bounds-checked byte buffers for the wire format and serialised shares.
 *
 * Encoding is big-endian: uint8, uint32, uint64, and "string" = uint32
 * length followed by that many bytes (OpenSSH PROTOCOL terms).  Every getter
 * checks the remaining length and, on any failure, sets a sticky flag so a
 * decoder can read a whole message and test km_buf_failed() once (p11-kit
 * p11_buffer_fail).  A buffer made with km_buf_init_secure() lives in the
 * locked arena and is wiped when it grows or is freed.
 */
#ifndef KM_UTIL_BUF_H
#define KM_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>

/* Hard ceiling for any single buffer: nothing keymesh sends is larger. */
#define KM_BUF_MAX (16u << 20)

typedef struct km_buf {
	uint8_t *data;
	size_t len;  /* bytes written */
	size_t cap;  /* bytes allocated (0 for a read-only view) */
	size_t off;  /* read offset */
	bool failed; /* sticky: any get/put failed */
	bool secure; /* allocated in the locked arena */
} km_buf;

void km_buf_init(km_buf *b);
void km_buf_init_secure(km_buf *b);
/* A read-only view of existing bytes; km_buf_free() on it is a no-op. */
void km_buf_init_view(km_buf *b, const void *data, size_t len);
void km_buf_free(km_buf *b);
void km_buf_reset(km_buf *b);

/* Detach the written bytes: *out owns them (free with free()/km_secret_free
 * according to b->secure); the buffer is left empty. */
int km_buf_steal(km_buf *b, uint8_t **out, size_t *len);

static inline bool
km_buf_failed(const km_buf *b)
{
	return b->failed;
}

static inline size_t
km_buf_remaining(const km_buf *b)
{
	return b->len - b->off;
}

/* Writers return 0 or KM_ERR_ALLOC/KM_ERR_TOO_LARGE and set b->failed. */
int km_buf_put_u8(km_buf *b, uint8_t v);
int km_buf_put_u32(km_buf *b, uint32_t v);
int km_buf_put_u64(km_buf *b, uint64_t v);
int km_buf_put_raw(km_buf *b, const void *p, size_t len);
int km_buf_put_string(km_buf *b, const void *p, size_t len);
int km_buf_put_cstring(km_buf *b, const char *s);
/* A non-negative BIGNUM as a string of its minimal big-endian bytes. */
int km_buf_put_bn(km_buf *b, const BIGNUM *bn);

/* Readers return 0 or KM_ERR_BAD_FORMAT/KM_ERR_TOO_LARGE and set failed. */
int km_buf_get_u8(km_buf *b, uint8_t *v);
int km_buf_get_u32(km_buf *b, uint32_t *v);
int km_buf_get_u64(km_buf *b, uint64_t *v);
int km_buf_get_raw(km_buf *b, void *p, size_t len);
/* Points into the buffer (no copy); refuses lengths over @max. */
int km_buf_get_string_ptr(km_buf *b, const uint8_t **p, size_t *len,
    size_t max);
/* A copy, NUL-terminated, refusing embedded NULs and lengths over @max. */
int km_buf_get_cstring(km_buf *b, char **s, size_t max);
/* Into a fresh BIGNUM (BN_secure_new when @secure); @maxbytes bounds it. */
int km_buf_get_bn(km_buf *b, BIGNUM **bn, size_t maxbytes, bool secure);

#endif /* KM_UTIL_BUF_H */
