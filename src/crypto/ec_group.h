/*
 * keymesh EC groups: the curve context shared by Shamir/Feldman sharing,
 * the distributed key generation, threshold ECDH and re-sharing.
 *
 * A km_ec_group wraps an OpenSSL EC_GROUP (any prime-order curve with
 * cofactor 1: P-256, P-384, P-521, secp256k1) together with its order q,
 * the encoding lengths, and the second generator H used by Pedersen
 * commitments (derived nothing-up-my-sleeve, see km_ec_group_new()).
 *
 * Wire encodings (docs/crypto-ec.md): a point is a "string" holding the
 * SEC 1 uncompressed form 0x04 || X || Y (exact length, on the curve, never
 * the point at infinity); a scalar is a "string" of exactly slen bytes,
 * big-endian, in [0, q) (or [1, q) where zero is meaningless).
 */
#ifndef KM_CRYPTO_EC_GROUP_H
#define KM_CRYPTO_EC_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/ec.h>

#include "util/buf.h"

/* Version of every EC object and message format in this library. */
#define KM_EC_FORMAT_VERSION 1

/* Share indices are 1..KM_EC_MAX_INDEX (n <= 255, one byte per index). */
#define KM_EC_MAX_INDEX 255

/* Kinds of serialised objects, the second uint32 of every encoding. */
enum km_ec_kind {
	KM_EC_KIND_SHARE = 1,
	KM_EC_KIND_PUB = 2,
	KM_EC_KIND_PARTIAL = 3,
	KM_EC_KIND_DKG_COMMIT = 16,
	KM_EC_KIND_DKG_SHARES = 17,
	KM_EC_KIND_DKG_COMPLAINTS = 18,
	KM_EC_KIND_DKG_ANSWER = 19,
	KM_EC_KIND_DKG_FELDMAN = 20,
	KM_EC_KIND_RESHARE_COMMIT = 32,
	KM_EC_KIND_RESHARE_SUBSHARE = 33,
};

typedef struct km_ec_group {
	int nid;
	const char *name; /* OpenSSL short name, e.g. "prime256v1" */
	EC_GROUP *group;
	BIGNUM *order; /* q, prime */
	EC_POINT *h;   /* Pedersen's second generator, log_G(H) unknown */
	size_t flen;   /* bytes of a field element (x-coordinate) */
	size_t slen;   /* bytes of a scalar mod q */
	size_t plen;   /* bytes of an uncompressed point, 1 + 2 flen */
} km_ec_group;

/**
 * km_ec_group_new:
 * @nid: curve NID (NID_X9_62_prime256v1, NID_secp384r1, ...)
 * @out: receives the group
 *
 * Builds the curve context and derives H by try-and-increment:
 * for ctr = 0, 1, ...: X = expand(SHA-256, "keymesh/ec/pedersen-H/v1" ||
 * curve short name || ctr) to flen bytes; H is the point with x-coordinate
 * X and even y (SEC 1 compressed 0x02 || X), the first such X that is a
 * field element on the curve.  Nobody knows log_G(H).
 *
 * Returns: 0, KM_ERR_NOT_SUPPORTED (unknown curve, cofactor != 1, not a
 * prime field), KM_ERR_ALLOC or KM_ERR_CRYPTO.
 */
int km_ec_group_new(int nid, km_ec_group **out);

/** km_ec_group_free: frees @g (NULL is fine). */
void km_ec_group_free(km_ec_group *g);

/**
 * km_ec_point_put:
 * @g: group
 * @b: buffer to append to
 * @p: a point, not infinity
 *
 * Appends @p as a string of its uncompressed encoding.
 * Returns: 0, KM_ERR_INVALID_ARG (infinity), KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_point_put(const km_ec_group *g, km_buf *b, const EC_POINT *p);

/**
 * km_ec_point_get:
 * @g: group
 * @b: buffer to read from
 * @out: receives a new point
 *
 * Reads a string holding exactly an uncompressed point on the curve.
 * Returns: 0 or KM_ERR_BAD_FORMAT (b is marked failed).
 */
int km_ec_point_get(const km_ec_group *g, km_buf *b, EC_POINT **out);

/**
 * km_ec_point_from_octets:
 * @g: group
 * @p, @len: SEC 1 encoding, uncompressed (1 + 2 flen bytes) or compressed
 *     (1 + flen bytes)
 * @out: receives a new point
 *
 * For a peer's public point (CKA_EC_POINT contents, ECDH1 public data).
 * Refuses any other length, the hybrid form, the infinity encoding, a
 * point not on the curve.
 * Returns: 0, KM_ERR_BAD_FORMAT or KM_ERR_ALLOC.
 */
int km_ec_point_from_octets(
    const km_ec_group *g, const uint8_t *p, size_t len, EC_POINT **out);

/**
 * km_ec_point_to_octets:
 * @g: group
 * @p: point, not infinity
 * @out: buffer of at least g->plen bytes, receives the uncompressed form
 * Returns: 0, KM_ERR_INVALID_ARG or KM_ERR_CRYPTO.
 */
int km_ec_point_to_octets(
    const km_ec_group *g, const EC_POINT *p, uint8_t *out);

/**
 * km_ec_scalar_put:
 * Appends @s (0 <= s < q) as a string of exactly g->slen bytes; the
 * temporary copy is wiped.
 * Returns: 0, KM_ERR_INVALID_ARG (out of range) or a km_buf error.
 */
int km_ec_scalar_put(const km_ec_group *g, km_buf *b, const BIGNUM *s);

/**
 * km_ec_scalar_get:
 * @g: group
 * @b: buffer
 * @secure: allocate the result with BN_secure_new() and BN_FLG_CONSTTIME
 * @nonzero: refuse zero
 * @out: receives the scalar
 *
 * Reads a string of exactly g->slen bytes holding a value below q.
 * Returns: 0, KM_ERR_BAD_FORMAT (wrong length), KM_ERR_RANGE (>= q or a
 * refused zero) or KM_ERR_ALLOC; @b is marked failed on any error.
 */
int km_ec_scalar_get(
    const km_ec_group *g, km_buf *b, bool secure, bool nonzero, BIGNUM **out);

/**
 * km_ec_scalar_random:
 * Draws a uniform scalar in [1, q) into secure memory (BN_FLG_CONSTTIME).
 * Returns: 0, KM_ERR_ALLOC or KM_ERR_CRYPTO.
 */
int km_ec_scalar_random(const km_ec_group *g, BIGNUM **out);

/** km_ec_secure_bn: a fresh zero BIGNUM in secure memory, CONSTTIME. */
BIGNUM *km_ec_secure_bn(void);

/**
 * km_ec_hdr_put / km_ec_hdr_get:
 * The header of every EC encoding: uint32 version, uint32 kind, uint32
 * curve NID.  km_ec_hdr_get() returns KM_ERR_BAD_VERSION for an unknown
 * version and KM_ERR_BAD_FORMAT for a wrong kind or curve.
 */
int km_ec_hdr_put(const km_ec_group *g, km_buf *b, uint32_t kind);
int km_ec_hdr_get(const km_ec_group *g, km_buf *b, uint32_t kind);

#endif /* KM_CRYPTO_EC_GROUP_H */
