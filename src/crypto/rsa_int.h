/*
 * Internal structures of the threshold RSA code (src/crypto/rsa_*.c only).
 */
#ifndef KM_CRYPTO_RSA_INT_H
#define KM_CRYPTO_RSA_INT_H

#include <pthread.h>

#include "crypto/rsa.h"

/*
 * L1 of Shoup's proof: the challenge is a full SHA-256 output, so the
 * prover's nonce r has share_bits + 2*L1 bits (Shoup uses |N| + 2*L1 with
 * shares below N; re-shared shares may be longer than N).
 */
#define KM_RSA_L1 256
/* Statistical hiding of the integer re-sharing: distance <= n * 2^-128. */
#define KM_RSA_SIGMA 128
/* Upper bound on share size, to refuse absurd encodings. */
#define KM_RSA_MAX_SHARE_BITS (4 * KM_RSA_MAX_BITS)
#define KM_RSA_MAX_SCALE_BITS 2048

struct km_rsa_pub {
	BIGNUM *n_mod;  /* N */
	BIGNUM *e;      /* public exponent */
	unsigned k;     /* threshold */
	unsigned n;     /* holders */
	BIGNUM *scale;  /* sigma: product of Deltas folded in by re-shares */
	int share_bits; /* public bound: every share is < 2^share_bits */
	BIGNUM *v;      /* NULL when there are no proofs */
	BIGNUM *vi[KM_RSA_MAX_HOLDERS + 1]; /* vi[1..n] */
	/* derived, read-only after km_rsa_pub_setup() */
	BIGNUM *delta;  /* n! */
	BIGNUM *eprime; /* 4 * Delta^2 * sigma */
	BIGNUM *a;      /* a * e' + b * e = 1, 0 < a < e */
	BIGNUM *b_abs;  /* |b|; b is negative */
	BN_MONT_CTX *mont;
	EVP_PKEY *pkey;
	uint8_t nhash[32]; /* SHA-256 of N, binds shares to the key */
	int bytes;         /* |N| in bytes */
};

struct km_rsa_share {
	unsigned index;
	BIGNUM *s; /* secure, BN_FLG_CONSTTIME */
};

struct km_rsa_partial {
	unsigned index;
	BIGNUM *xi;
	BIGNUM *c; /* NULL without proof */
	BIGNUM *z;
};

struct km_rsa_subdeal {
	unsigned from; /* old index */
	unsigned new_k, new_n;
	BIGNUM
	*sub[KM_RSA_MAX_HOLDERS + 1];       /* secret sub-shares, [1..new_n] */
	BIGNUM *commit[KM_RSA_MAX_HOLDERS]; /* v^b_l, [0..new_k-1]; or NULL */
	int coef_bits;
};

/* rsa_key.c */
km_rsa_pub *km_rsa_pub_alloc(void);
/* Fills the derived fields; call once all base fields are set. */
int km_rsa_pub_setup(km_rsa_pub *pub);
/* rsa_pad.c: the EVP_PKEY the legacy way, when an ENGINE owns RSA. */
int km_rsa_make_pkey_legacy(const BIGNUM *n, const BIGNUM *e,
    EVP_PKEY **out);
km_rsa_share *km_rsa_share_alloc(unsigned index);
/* n! for n <= 16 into @r. */
int km_rsa_factorial(BIGNUM *r, unsigned n);
/*
 * Shoup's integer Lagrange coefficient lambda^S_{0,j} = Delta * prod_{j'
 * in S, j' != j} j' / (j' - j), exact (may be negative).
 */
int km_rsa_lagrange(BIGNUM *r, const BIGNUM *delta, const unsigned *set,
    size_t len, unsigned j, BN_CTX *ctx);
/* r = a^p mod N for a public, possibly negative exponent. */
int km_rsa_exp_signed(BIGNUM *r, const BIGNUM *a, const BIGNUM *p,
    const km_rsa_pub *pub, BN_CTX *ctx);
/* shares[i] for i < n = f(i+1) into fresh share objects (rsa_deal.c). */
int km_rsa_is_safe_prime(const BIGNUM *p, BN_CTX *ctx, bool *safe);

/* rsa_combine.c */
/* r = t^-1 mod n (public values; Lehmer, checked, with a fallback). */
int km_rsa_mod_inverse(
    BIGNUM *r, const BIGNUM *t, const BIGNUM *n, BN_CTX *ctx);
/* Lehmer alone, unchecked (exposed for its unit test). */
int km_rsa_lehmer_inverse(
    BIGNUM *r, const BIGNUM *t, const BIGNUM *n, BN_CTX *ctx);
int km_rsa_combine_raw(const km_rsa_pub *pub, const BIGNUM *x,
    km_rsa_partial *const *parts, size_t k, BIGNUM *y, BN_CTX *ctx, bool *ok);

#endif /* KM_CRYPTO_RSA_INT_H */
