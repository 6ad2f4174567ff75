/*
 * Shamir secret sharing over the order q of an EC group, with Feldman
 * commitments and Lagrange interpolation at 0.
 *
 * Sources: A. Shamir, "How to Share a Secret", CACM 1979; P. Feldman, "A
 * Practical Scheme for Non-interactive Verifiable Secret Sharing", FOCS
 * 1987.  A degree-(k-1) polynomial f with f(0) = secret gives share f(i) to
 * index i in 1..n; Feldman commitments C_j = a_j*G let anyone check a share
 * s_i against s_i*G == sum_j C_j*i^j.
 *
 * The API works on indices, never on nodes: a node holding several indices
 * (weighted shares) holds one km_ec_share per index, and the daemon keeps
 * the node-to-indices map.
 */
#ifndef KM_CRYPTO_SHAMIR_H
#define KM_CRYPTO_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "crypto/ec_group.h"
#include "util/buf.h"

/* A polynomial over Z_q: k secret coefficients in secure memory. */
typedef struct km_shamir_poly {
	uint32_t k; /* threshold = number of coefficients */
	BIGNUM **a; /* a[0] is the secret */
} km_shamir_poly;

/* Feldman (or, in the DKG, Pedersen) commitments to k coefficients. */
typedef struct km_ec_commits {
	uint32_t k;
	EC_POINT **c;
} km_ec_commits;

/* One share: index i and x_i = f(i), in secure memory. */
typedef struct km_ec_share {
	uint32_t index;
	BIGNUM *x;
} km_ec_share;

/*
 * The public side of a sharing: threshold k, index count n, public key
 * Y = x*G and verification keys vk[i-1] = x_i*G for every index 1..n.
 */
typedef struct km_ec_pub {
	uint32_t k;
	uint32_t n;
	EC_POINT *y;
	EC_POINT **vk;
} km_ec_pub;

/**
 * km_shamir_poly_new:
 * @g: group
 * @k: threshold, 1 <= k <= KM_EC_MAX_INDEX
 * @secret: a[0], copied; NULL for a random secret (DKG, re-share dealing)
 * @out: receives the polynomial; free with km_shamir_poly_free()
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_ALLOC or KM_ERR_CRYPTO.
 */
int km_shamir_poly_new(const km_ec_group *g, uint32_t k, const BIGNUM *secret,
    km_shamir_poly **out);

/** km_shamir_poly_free: wipes and frees (NULL is fine). */
void km_shamir_poly_free(km_shamir_poly *p);

/**
 * km_shamir_poly_eval:
 * Sets @out (a secure BIGNUM the caller owns) to f(@x) mod q by Horner.
 * Returns: 0, KM_ERR_RANGE (x = 0 or over KM_EC_MAX_INDEX), KM_ERR_CRYPTO.
 */
int km_shamir_poly_eval(
    const km_ec_group *g, const km_shamir_poly *p, uint32_t x, BIGNUM *out);

/**
 * km_feldman_commit:
 * C_j = a_j*G for every coefficient (constant-time multiplication).
 * Returns: 0, KM_ERR_ALLOC or KM_ERR_CRYPTO.
 */
int km_feldman_commit(
    const km_ec_group *g, const km_shamir_poly *p, km_ec_commits **out);

/** km_ec_commits_new: @k points at infinity; km_ec_commits_free frees. */
int km_ec_commits_new(const km_ec_group *g, uint32_t k, km_ec_commits **out);
void km_ec_commits_free(km_ec_commits *c);

/**
 * km_feldman_eval:
 * @out = sum_j C_j * x^j, the public image f(x)*G of the committed
 * polynomial; for x = 0 that is C_0.
 * Returns: 0, KM_ERR_RANGE, KM_ERR_CRYPTO.
 */
int km_feldman_eval(
    const km_ec_group *g, const km_ec_commits *c, uint32_t x, EC_POINT *out);

/**
 * km_feldman_verify:
 * Checks @share against the commitments: x_i*G == sum_j C_j*i^j.
 * Returns: 0, KM_ERR_VERIFY when it does not hold, KM_ERR_RANGE, or
 * KM_ERR_CRYPTO.
 */
int km_feldman_verify(
    const km_ec_group *g, const km_ec_commits *c, const km_ec_share *share);

/**
 * km_shamir_lagrange0:
 * @g: group
 * @idx: the subset of indices, @m of them
 * @which: position in @idx of the index whose coefficient is wanted
 * @out: caller's BIGNUM, set to lambda = prod_{j != i} j / (j - i) mod q
 *
 * Refuses a zero index, an index over KM_EC_MAX_INDEX and duplicates.
 * Returns: 0, KM_ERR_RANGE, KM_ERR_INVALID_ARG or KM_ERR_CRYPTO.
 */
int km_shamir_lagrange0(const km_ec_group *g, const uint32_t *idx, size_t m,
    size_t which, BIGNUM *out);

/**
 * km_shamir_check_indices:
 * 0 when @idx holds @m distinct indices in 1..@n, else KM_ERR_RANGE
 * (zero/out of range) or KM_ERR_INVALID_ARG (duplicate, m = 0).
 */
int km_shamir_check_indices(const uint32_t *idx, size_t m, uint32_t n);

/** km_ec_share_new: a share with a fresh secure zero x. */
int km_ec_share_new(uint32_t index, km_ec_share **out);
/** km_ec_share_free: wipes and frees (NULL is fine). */
void km_ec_share_free(km_ec_share *s);
/** km_ec_shares_free: frees an array of @n shares and the array. */
void km_ec_shares_free(km_ec_share **s, size_t n);

/** km_ec_pub_new: k, n set, all points allocated (at infinity). */
int km_ec_pub_new(
    const km_ec_group *g, uint32_t k, uint32_t n, km_ec_pub **out);
void km_ec_pub_free(km_ec_pub *p);

/**
 * km_ec_pub_from_commits:
 * Fills @pub->y = C_0 and vk_i = sum_j C_j*i^j for i in 1..pub->n.
 */
int km_ec_pub_from_commits(
    const km_ec_group *g, const km_ec_commits *c, km_ec_pub *pub);

/**
 * km_ec_dealer_split:
 * @g: group
 * @secret: an existing private scalar, 0 < secret < q
 * @k, @n: threshold and number of indices (1 <= k <= n <= 255)
 * @shares: receives an array of @n shares, index i at [i-1]
 * @pub: receives the public key and verification keys
 *
 * WARNING: this is the one place where a whole EC private key exists: an
 * imported key (or a known-answer test vector) is split here and the
 * caller must wipe its copy at once.  Keys made by keymesh come from the
 * DKG (ec_dkg.h) and never exist whole.
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_RANGE, KM_ERR_ALLOC,
 * KM_ERR_CRYPTO.
 */
int km_ec_dealer_split(const km_ec_group *g, const BIGNUM *secret, uint32_t k,
    uint32_t n, km_ec_share ***shares, km_ec_pub **pub);

/**
 * km_ec_pkey_nid:
 * @pk: an EC key (EVP_PKEY of type EC)
 * @nid: receives its curve NID, for km_ec_group_new()
 * Returns: 0, KM_ERR_INVALID_ARG (not an EC key) or KM_ERR_NOT_SUPPORTED.
 */
int km_ec_pkey_nid(const EVP_PKEY *pk, int *nid);

/**
 * km_ec_dealer_split_pkey:
 * @g: the key's group (see km_ec_pkey_nid())
 * @pk: an EC private key, e.g. read from PEM/DER for an import
 * @k, @n, @shares, @pub: as km_ec_dealer_split()
 *
 * WARNING: as km_ec_dealer_split(), this handles a whole private key; the
 * scalar is copied into secure memory and OpenSSL's copy wiped, but @pk
 * itself stays the caller's to free (EVP_PKEY_free() wipes it).  The
 * resulting public key is checked against @pk's.
 *
 * Returns: 0, KM_ERR_INVALID_ARG (no private part, wrong curve),
 * KM_ERR_VERIFY (public key mismatch) or a km_ec_dealer_split() error.
 */
int km_ec_dealer_split_pkey(const km_ec_group *g, const EVP_PKEY *pk,
    uint32_t k, uint32_t n, km_ec_share ***shares, km_ec_pub **pub);

/**
 * km_ec_share_encode / km_ec_share_decode:
 * header(KM_EC_KIND_SHARE) || uint32 index || scalar x.  Decoding refuses
 * a bad header, index 0 or over @max_index (the key's n), a scalar of the
 * wrong length, zero or >= q, and trailing bytes.  The encoding is secret:
 * give km_ec_share_encode() a km_buf_init_secure() buffer.
 */
int km_ec_share_encode(const km_ec_group *g, const km_ec_share *s, km_buf *b);
int km_ec_share_decode(const km_ec_group *g, const uint8_t *p, size_t len,
    uint32_t max_index, km_ec_share **out);

/**
 * km_ec_pub_encode / km_ec_pub_decode:
 * header(KM_EC_KIND_PUB) || uint32 k || uint32 n || point Y || n points
 * vk_1..vk_n.  Decoding refuses k = 0, k > n, n > 255, points not on the
 * curve, trailing bytes.
 */
int km_ec_pub_encode(const km_ec_group *g, const km_ec_pub *p, km_buf *b);
int km_ec_pub_decode(
    const km_ec_group *g, const uint8_t *p, size_t len, km_ec_pub **out);

/**
 * km_ec_share_check:
 * 0 when share->x * G equals pub's vk for its index (a stored share still
 * belongs to this key), else KM_ERR_VERIFY or KM_ERR_RANGE.
 */
int km_ec_share_check(
    const km_ec_group *g, const km_ec_pub *pub, const km_ec_share *share);

#endif /* KM_CRYPTO_SHAMIR_H */
