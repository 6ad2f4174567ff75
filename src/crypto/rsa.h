/*
 * Shoup threshold RSA for keymesh.
 *
 * Victor Shoup, "Practical Threshold Signatures", EUROCRYPT 2000, LNCS 1807,
 * pp. 207-220.  A k-of-n sharing (n <= 16) of the RSA exponent d: holder i
 * has s_i = f(i) for a random polynomial f of degree k-1 with f(0) = d over
 * Z_m (m = p'q' for safe primes p = 2p'+1, q = 2q'+1), computes the partial
 * x_i = x^(2*Delta*s_i) mod N (Delta = n!) with a proof that it used the same
 * s_i as its verification key v_i = v^s_i, and any k partials combine to
 * y = x^d without d ever existing again.  Re-sharing moves a sharing to new
 * holders over the integers (scaling the shared exponent; see docs).
 *
 * The library is pure: no network, no PKCS#11, only OpenSSL BIGNUM/EVP.
 * Its layering follows what a PKCS#11 module does:
 *   1. km_rsa_sign_prepare() / km_rsa_decrypt_prepare(): the input
 *      representative x (padding applied for signatures);
 *   2. km_rsa_partial_new() on each holder, with its share;
 *   3. km_rsa_sign_combine() / km_rsa_decrypt_combine(): combine, check
 *      y^e = x, verify the signature through EVP or remove the padding,
 *      naming bad partials.  A wrong signature or plaintext is never
 *      returned.
 *
 * A km_rsa_pub is read-only once made (it caches the Montgomery context of
 * N and the EVP public key), so any number of threads may use one at once.
 * Shares keep their secret in OpenSSL's secure heap (see util/secmem.h) and
 * are wiped when freed.
 */
#ifndef KM_CRYPTO_RSA_H
#define KM_CRYPTO_RSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/evp.h>

#include "util/buf.h"

#define KM_RSA_MAX_HOLDERS    16 /* n <= 16 keeps Delta = n! < 2^45 */
#define KM_RSA_MIN_BITS       2048
#define KM_RSA_MAX_BITS       8192
#define KM_RSA_DEFAULT_E      65537
#define KM_RSA_FORMAT_VERSION 1

typedef struct km_rsa_pub km_rsa_pub;         /* public key data */
typedef struct km_rsa_share km_rsa_share;     /* one holder's secret */
typedef struct km_rsa_partial km_rsa_partial; /* one partial result */
typedef struct km_rsa_subdeal km_rsa_subdeal; /* one re-share dealing */

/* Hashes for DigestInfo, PSS, OAEP and MGF1. */
enum {
	KM_RSA_HASH_NONE = 0,
	KM_RSA_HASH_SHA1,
	KM_RSA_HASH_SHA224,
	KM_RSA_HASH_SHA256,
	KM_RSA_HASH_SHA384,
	KM_RSA_HASH_SHA512,
};

/* Paddings (PKCS#1 v2.2, RFC 8017). */
enum {
	KM_RSA_PAD_RAW = 0, /* X.509: no padding, |N|-byte blocks */
	KM_RSA_PAD_PKCS1,   /* v1.5 type 1 (sign) / type 2 (decrypt) */
	KM_RSA_PAD_PSS,     /* sign only */
	KM_RSA_PAD_OAEP,    /* decrypt only */
};

/** km_rsa_hash_md: the EVP digest of a KM_RSA_HASH_* value, or NULL. */
const EVP_MD *km_rsa_hash_md(int hash);

/* Salt length for PSS meaning "the hash length". */
#define KM_RSA_PSS_SALT_HASHLEN (-1)

/**
 * km_rsa_mech:
 * @pad: KM_RSA_PAD_*
 * @hash: the digest algorithm.  PKCS#1 v1.5 signing: the input is that
 *   digest and the DigestInfo is built here; KM_RSA_HASH_NONE means the
 *   input is already a DigestInfo (CKM_RSA_PKCS).  PSS and OAEP need one.
 * @mgf1_hash: MGF1's digest for PSS/OAEP; KM_RSA_HASH_NONE = @hash
 * @salt_len: PSS salt length in bytes, or KM_RSA_PSS_SALT_HASHLEN
 * @label, @label_len: the OAEP label (may be NULL/0)
 */
typedef struct km_rsa_mech {
	int pad;
	int hash;
	int mgf1_hash;
	int salt_len;
	const uint8_t *label;
	size_t label_len;
} km_rsa_mech;

/**
 * km_rsa_progress_fn:
 * @arg: the caller's argument
 * @which: 0 while searching p, 1 while searching q (two threads)
 * @stage, @count: OpenSSL's BN_GENCB values: stage 0 when a candidate was
 *   made (count = candidates so far), 1 for each Miller-Rabin round passed,
 *   2 when a candidate passed one round of the safe-prime test
 *
 * Called from the prime-search threads, serialised by a lock.  Return 0 to
 * go on, non-zero to cancel the key generation (it then fails with
 * KM_ERR_CLOSED).
 */
typedef int (*km_rsa_progress_fn)(void *arg, int which, int stage, int count);

/* ---- key generation and import (rsa_deal.c) ---- */

/**
 * km_rsa_keygen:
 * @bits: modulus size, 2048..8192 and even (2048, 3072, 4096 in use)
 * @k: threshold, 1 <= k <= n
 * @n: holders, 1 <= n <= KM_RSA_MAX_HOLDERS
 * @progress: optional progress callback (see km_rsa_progress_fn)
 * @arg: its argument
 * @pub: out, the public key data with verification keys
 * @shares: out, an array of @n share pointers, shares[i-1] for index i
 *
 * The dealer: searches the safe primes p and q in two threads, deals
 * Shoup's shares and wipes every secret before returning.
 *
 * Returns: 0 or a KM_ERR_* code (KM_ERR_CLOSED when cancelled).
 */
int km_rsa_keygen(int bits, unsigned k, unsigned n,
    km_rsa_progress_fn progress, void *arg, km_rsa_pub **pub,
    km_rsa_share **shares);

/**
 * km_rsa_deal_from_primes:
 * @p, @q: two distinct safe primes
 * @e: public exponent (NULL for 65537); prime and larger than @n
 * @k, @n, @pub, @shares: as km_rsa_keygen()
 *
 * Shoup's dealer for given safe primes (tests use committed fixtures).
 * Returns KM_ERR_INVALID_ARG when a prime is not safe.
 */
int km_rsa_deal_from_primes(const BIGNUM *p, const BIGNUM *q, const BIGNUM *e,
    unsigned k, unsigned n, km_rsa_pub **pub, km_rsa_share **shares);

/**
 * km_rsa_import:
 * @data, @len: an RSA private key, PEM or DER (PKCS#1 or PKCS#8)
 * @k, @n, @pub, @shares: as km_rsa_keygen()
 *
 * Splits an existing key.  With safe primes the sharing is Shoup's, with
 * proofs.  Otherwise d is shared modulo lambda(N): the shares are correct
 * but there are no verification keys, so bad partials are found only by
 * the final check and a subset search (see docs/crypto-rsa.md).
 */
int km_rsa_import(const uint8_t *data, size_t len, unsigned k, unsigned n,
    km_rsa_pub **pub, km_rsa_share **shares);

/** km_rsa_import_pkey: as km_rsa_import() from an EVP_PKEY. */
int km_rsa_import_pkey(const EVP_PKEY *pkey, unsigned k, unsigned n,
    km_rsa_pub **pub, km_rsa_share **shares);

/* ---- objects (rsa_key.c) ---- */

void km_rsa_pub_free(km_rsa_pub *pub);
void km_rsa_share_free(km_rsa_share *share);
void km_rsa_partial_free(km_rsa_partial *part);
/** km_rsa_shares_free: free @n shares of an array and NULL them. */
void km_rsa_shares_free(km_rsa_share **shares, unsigned n);

/** km_rsa_pub_bits: the modulus size in bits. */
int km_rsa_pub_bits(const km_rsa_pub *pub);
/** km_rsa_pub_k / _n: threshold and holder count. */
unsigned km_rsa_pub_k(const km_rsa_pub *pub);
unsigned km_rsa_pub_n(const km_rsa_pub *pub);
/** km_rsa_pub_has_proofs: true when verification keys exist. */
bool km_rsa_pub_has_proofs(const km_rsa_pub *pub);
/** km_rsa_pub_modulus: N (borrowed). */
const BIGNUM *km_rsa_pub_modulus(const km_rsa_pub *pub);
/** km_rsa_pub_pkey: the plain public key for EVP (borrowed). */
EVP_PKEY *km_rsa_pub_pkey(const km_rsa_pub *pub);
/** km_rsa_pub_scale_bits: bits of the accumulated re-share scale. */
int km_rsa_pub_scale_bits(const km_rsa_pub *pub);
/** km_rsa_pub_share_bits: the bound on share sizes, in bits. */
int km_rsa_pub_share_bits(const km_rsa_pub *pub);
/** km_rsa_share_index: the share's index, 1..n. */
unsigned km_rsa_share_index(const km_rsa_share *share);
/** km_rsa_share_bits: the size of this share's secret in bits. */
int km_rsa_share_bits(const km_rsa_share *share);
/** km_rsa_partial_index: the index of the share that made it. */
unsigned km_rsa_partial_index(const km_rsa_partial *part);
/** km_rsa_partial_has_proof: whether a proof of correctness is attached. */
bool km_rsa_partial_has_proof(const km_rsa_partial *part);

/* ---- serialisation (rsa_key.c), versioned, strict ---- */

/**
 * km_rsa_pub_encode / km_rsa_pub_decode:
 * The public key data (N, e, k, n, scale, share bound, v, v_i).  The
 * decoder checks every field (sizes, ranges, e prime and > n) and returns
 * KM_ERR_BAD_FORMAT, KM_ERR_BAD_VERSION, KM_ERR_RANGE or KM_ERR_TOO_LARGE
 * on anything wrong; it never reads past @len.
 */
int km_rsa_pub_encode(const km_rsa_pub *pub, km_buf *b);
int km_rsa_pub_decode(const uint8_t *data, size_t len, km_rsa_pub **pub);

/**
 * km_rsa_share_encode / km_rsa_share_decode:
 * A share, bound to its key by a SHA-256 of N.  Encode into a buffer made
 * with km_buf_init_secure().  The decoder refuses a share of another key,
 * an index outside 1..n or a value outside (0, 2^share_bits).
 */
int km_rsa_share_encode(
    const km_rsa_pub *pub, const km_rsa_share *share, km_buf *b);
int km_rsa_share_decode(const km_rsa_pub *pub, const uint8_t *data, size_t len,
    km_rsa_share **share);

/**
 * km_rsa_partial_encode / km_rsa_partial_decode:
 * A partial result with its optional proof (what a holder sends back).
 * The decoder refuses x_i outside [1, N-1], an index outside 1..n and
 * proofs of impossible size.
 */
int km_rsa_partial_encode(const km_rsa_partial *part, km_buf *b);
int km_rsa_partial_decode(const km_rsa_pub *pub, const uint8_t *data,
    size_t len, km_rsa_partial **part);

/* ---- partial and combine (rsa_partial.c, rsa_combine.c) ---- */

/**
 * km_rsa_partial_new:
 * @pub: the key
 * @share: this holder's share
 * @x: the input representative, 1 <= x < N
 * @with_proof: attach Shoup's proof of correctness (needs verification
 *   keys; ignored for keys without them)
 * @out: the partial
 *
 * x_i = x^(2*Delta*s_i) mod N, computed in constant time with the key's
 * cached Montgomery context.  Thread-safe for a shared @pub.
 */
int km_rsa_partial_new(const km_rsa_pub *pub, const km_rsa_share *share,
    const BIGNUM *x, bool with_proof, km_rsa_partial **out);

/**
 * km_rsa_partial_verify:
 * Checks a partial's proof against the key's verification key for its
 * index.  Returns 0, KM_ERR_VERIFY (wrong), or KM_ERR_NOT_SUPPORTED when
 * the key or the partial has no proof.
 */
int km_rsa_partial_verify(
    const km_rsa_pub *pub, const BIGNUM *x, const km_rsa_partial *part);

/**
 * km_rsa_combine:
 * @pub: the key
 * @x: the input representative
 * @parts, @count: partials from distinct holders, @count >= k
 * @y: out, x^d mod N, checked: y^e = x
 * @bad: out (may be NULL), a bit mask of the share indices (bit i for
 *   index i) whose partials were shown wrong, by their proofs or by the
 *   subset search
 *
 * Combines the first k partials; when the result fails the e-th root
 * check, it checks proofs (when present) or searches the k-subsets of all
 * @count partials for a correct result and names the bad ones.
 *
 * Returns: 0 with a correct @y (and maybe a non-zero @bad),
 * KM_ERR_QUORUM with fewer than k usable partials, KM_ERR_BAD_PARTIAL when
 * no correct result could be made, KM_ERR_INVALID_ARG for duplicates.
 */
int km_rsa_combine(const km_rsa_pub *pub, const BIGNUM *x,
    km_rsa_partial *const *parts, size_t count, BIGNUM **y, uint32_t *bad);

/* ---- encodings (rsa_pad.c) ---- */

/**
 * km_rsa_sign_prepare:
 * @pub, @mech: the key and mechanism (RAW, PKCS1 or PSS)
 * @in, @inlen: the digest (PKCS1 with a hash, PSS), a DigestInfo (PKCS1
 *   without a hash) or a block of at most |N| bytes, big-endian, below N
 *   (RAW)
 * @x: out, the padded representative to hand to the holders
 */
int km_rsa_sign_prepare(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const uint8_t *in, size_t inlen, BIGNUM **x);

/**
 * km_rsa_sign_combine:
 * @pub, @mech, @in, @inlen: as given to km_rsa_sign_prepare()
 * @x: the representative it made
 * @parts, @count, @bad: as km_rsa_combine()
 * @sig, @siglen: out; @sig NULL asks for the length; too small gives
 *   KM_ERR_BUFFER_TOO_SMALL with *@siglen set
 *
 * Combines and verifies the signature with the public key through EVP
 * before returning it.
 */
int km_rsa_sign_combine(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const uint8_t *in, size_t inlen, const BIGNUM *x,
    km_rsa_partial *const *parts, size_t count, uint8_t *sig, size_t *siglen,
    uint32_t *bad);

/**
 * km_rsa_decrypt_prepare:
 * @c, @ctlen: the ciphertext, exactly |N| bytes, below N
 * @x: out, the representative
 */
int km_rsa_decrypt_prepare(
    const km_rsa_pub *pub, const uint8_t *c, size_t ctlen, BIGNUM **x);

/**
 * km_rsa_decrypt_combine:
 * Combines, checks y^e = c, then removes the padding of @mech (RAW, PKCS1
 * or OAEP) with OpenSSL's checks.  @out/@outlen as for signing; a padding
 * failure is KM_ERR_BAD_PADDING.
 */
int km_rsa_decrypt_combine(const km_rsa_pub *pub, const km_rsa_mech *mech,
    const BIGNUM *x, km_rsa_partial *const *parts, size_t count, uint8_t *out,
    size_t *outlen, uint32_t *bad);

/* ---- re-sharing over the integers (rsa_reshare.c) ---- */

/**
 * km_rsa_reshare_deal:
 * @pub: the current key
 * @share: this old holder's share
 * @quorum, @qlen: the k distinct old indices taking part (incl. this one)
 * @new_k, @new_n: the new threshold and holder count
 * @out: the dealing: one sub-share per new holder and, for keys with
 *   verification keys, Feldman-style commitments in the squares mod N
 *
 * Deals Delta'*lambda_i*s_i (Delta' = new_n!) with a random integer
 * polynomial whose coefficients hide it statistically (2^-128).
 */
int km_rsa_reshare_deal(const km_rsa_pub *pub, const km_rsa_share *share,
    const unsigned *quorum, size_t qlen, unsigned new_k, unsigned new_n,
    km_rsa_subdeal **out);

/** km_rsa_subdeal_free: wipes and frees a dealing. */
void km_rsa_subdeal_free(km_rsa_subdeal *sd);

/**
 * km_rsa_subdeal_index: the old index of the holder that made it.
 */
unsigned km_rsa_subdeal_index(const km_rsa_subdeal *sd);

/**
 * km_rsa_reshare_pub:
 * @pub: the current key
 * @deals, @qlen: one dealing per quorum member, in quorum order
 * @new_k, @new_n: as dealt
 * @out: the new public key data (scale factor updated; new verification
 *   keys from the commitments).  Checks each dealing's commitment to its
 *   constant term against the old verification key (KM_ERR_BAD_PARTIAL).
 */
int km_rsa_reshare_pub(const km_rsa_pub *pub, km_rsa_subdeal *const *deals,
    size_t qlen, unsigned new_k, unsigned new_n, km_rsa_pub **out);

/**
 * km_rsa_reshare_accept:
 * @newpub: from km_rsa_reshare_pub()
 * @deals, @qlen: the dealings (a real holder gets only its sub-shares)
 * @j: the new index, 1..new_n
 * @out: the new share, the sum of the sub-shares for @j, each checked
 *   against its dealer's commitments (KM_ERR_VERIFY names none: use
 *   km_rsa_subdeal_index on the failing one)
 */
int km_rsa_reshare_accept(const km_rsa_pub *newpub,
    km_rsa_subdeal *const *deals, size_t qlen, unsigned j, km_rsa_share **out);

/**
 * km_rsa_subdeal_encode:
 * @sd: a dealing
 * @j: the new holder it is for (1..new_n): its sub-share and the
 *   commitments; or 0 for the public part only (for km_rsa_reshare_pub)
 * @b: out; use km_buf_init_secure() when @j > 0 (a secret goes in)
 */
int km_rsa_subdeal_encode(const km_rsa_subdeal *sd, unsigned j, km_buf *b);

/**
 * km_rsa_subdeal_decode:
 * @pub: the current (old) key
 * A dealing as sent to one new holder, strictly checked (indices, sizes,
 * commitments in [1, N-1] and present exactly for keys with verification
 * keys).  Feed the dealings a holder received to km_rsa_reshare_pub() and
 * km_rsa_reshare_accept().
 */
int km_rsa_subdeal_decode(const km_rsa_pub *pub, const uint8_t *data,
    size_t len, km_rsa_subdeal **out);

#ifdef KM_TEST_HOOKS
/*
 * Test builds only (--enable-test-hooks): called with the dealer's primes
 * after a successful km_rsa_keygen(), so a test can search every process
 * and file for them afterwards.  Never compiled into a production build.
 */
extern void (*km_rsa_test_prime_hook)(const BIGNUM *p, const BIGNUM *q);
#endif

#endif /* KM_CRYPTO_RSA_H */
