/*
 * Threshold ECDH with Chaum-Pedersen proofs.
 *
 * Holder i returns the partial Z_i = x_i*P for a peer point P, with a
 * non-interactive proof that log_G(Y_i) = log_P(Z_i) (D. Chaum and T. P.
 * Pedersen, "Wallet Databases with Observers", CRYPTO 1992, made
 * non-interactive by Fiat-Shamir with SHA-256 over a domain-separated
 * transcript).  Any k verified partials combine by Lagrange interpolation in
 * the exponent to x*P (the threshold Diffie-Hellman of Desmedt and Frankel,
 * "Threshold cryptosystems", CRYPTO 1989); the output is the x-coordinate,
 * as PKCS#11 CKD_NULL and OpenSSL's ECDH derive return it.
 */
#ifndef KM_CRYPTO_EC_ECDH_H
#define KM_CRYPTO_EC_ECDH_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/ec_group.h"
#include "crypto/shamir.h"

/* A partial result: index i, Z_i = x_i*P and the proof (c, s). */
typedef struct km_ec_partial {
	uint32_t index;
	EC_POINT *z;
	BIGNUM *c; /* challenge */
	BIGNUM *s; /* response s = r + c*x_i mod q */
} km_ec_partial;

/**
 * km_ecdh_partial:
 * @g: group
 * @pub: the key's public side (Y and the verification keys)
 * @share: this holder's share (one index)
 * @peer: the peer's point, validated (km_ec_point_from_octets())
 * @out: receives the partial with its proof
 *
 * The proof nonce lives in secure memory and is wiped on every path.
 * Returns: 0, KM_ERR_RANGE (index not in @pub), KM_ERR_INVALID_ARG,
 * KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ecdh_partial(const km_ec_group *g, const km_ec_pub *pub,
    const km_ec_share *share, const EC_POINT *peer, km_ec_partial **out);

/**
 * km_ecdh_partial_verify:
 * Checks @part's proof against vk_i of @pub and @peer.
 * Returns: 0, KM_ERR_BAD_PARTIAL (proof fails), KM_ERR_RANGE (index not in
 * @pub), KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ecdh_partial_verify(const km_ec_group *g, const km_ec_pub *pub,
    const EC_POINT *peer, const km_ec_partial *part);

/**
 * km_ecdh_combine:
 * @g, @pub, @peer: as above
 * @parts, @nparts: the partials received (any order, any holders)
 * @out: receives the shared secret, the x-coordinate of x*P
 * @outlen: size of @out, at least g->flen
 * @written: receives g->flen on success
 * @bad: optional array of @nparts entries, receives the indices of
 *     partials whose proof failed (or duplicated an index)
 * @nbad: optional, receives how many were written to @bad
 *
 * Verifies every proof, drops and names the bad ones, and combines the
 * first k good partials.  Bad partials do not stop the combination when
 * k good ones remain: the result is still correct.
 *
 * Returns: 0; KM_ERR_QUORUM (fewer than k good partials and none bad),
 * KM_ERR_BAD_PARTIAL (fewer than k good partials, some bad: see @bad),
 * KM_ERR_BUFFER_TOO_SMALL, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ecdh_combine(const km_ec_group *g, const km_ec_pub *pub,
    const EC_POINT *peer, km_ec_partial *const *parts, size_t nparts,
    uint8_t *out, size_t outlen, size_t *written, uint32_t *bad, size_t *nbad);

/** km_ec_partial_free: frees (NULL is fine). */
void km_ec_partial_free(km_ec_partial *p);

/**
 * km_ec_partial_encode / km_ec_partial_decode:
 * header(KM_EC_KIND_PARTIAL) || uint32 index || point Z || scalar c ||
 * scalar s.  Decoding refuses index 0 or over 255, a bad point, scalars
 * of the wrong length or >= q, trailing bytes.
 */
int km_ec_partial_encode(
    const km_ec_group *g, const km_ec_partial *p, km_buf *b);
int km_ec_partial_decode(
    const km_ec_group *g, const uint8_t *p, size_t len, km_ec_partial **out);

#endif /* KM_CRYPTO_EC_ECDH_H */
