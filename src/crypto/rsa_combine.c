/*
 * Threshold RSA combination (V. Shoup, "Practical Threshold Signatures",
 * EUROCRYPT 2000, sec. 3): from k partials x_i of a set S,
 *
 *   w = prod_{i in S} x_i^(2 lambda^S_{0,i}),   so  w^e = x^e'
 *
 * with integer coefficients lambda = Delta * Lagrange and e' = 4 Delta^2
 * (times the re-share scale sigma), and, with a e' + b e = 1,
 *
 *   y = w^a x^b,   y^e = x.
 *
 * The result is returned only when y^e = x holds.  When it does not, a bad
 * partial is named by its proof of correctness or, for keys without
 * verification keys, by a search over the k-subsets of the partials given.
 * Everything here is public: no constant-time arithmetic is needed.
 */
#include "config.h"

#include <string.h>

#include <openssl/err.h>

#include "crypto/rsa_int.h"
#include "util/err.h"

/* out = a x + b y for signed machine words a, b; tmp is scratch. */
static int
km_rsa_lin(BIGNUM *out, int64_t a, const BIGNUM *x, int64_t b, const BIGNUM *y,
    BIGNUM *tmp)
{
	if (BN_copy(out, x) == NULL
	    || !BN_mul_word(out, (BN_ULONG)(a < 0 ? -a : a))) {
		return 0;
	}
	if (a < 0) {
		BN_set_negative(out, !BN_is_negative(out));
	}
	if (BN_copy(tmp, y) == NULL
	    || !BN_mul_word(tmp, (BN_ULONG)(b < 0 ? -b : b))) {
		return 0;
	}
	if (b < 0) {
		BN_set_negative(tmp, !BN_is_negative(tmp));
	}
	return BN_add(out, out, tmp);
}

/*
 * Modular inverse by Lehmer's extended Euclid (D. Knuth, TAOCP vol. 2,
 * sec. 4.5.2, Algorithm L): each round runs Euclid on the leading 62 bits
 * in machine words and applies the resulting 2x2 matrix to the full
 * numbers, so a 2048-bit inverse costs about 70 cheap rounds instead of
 * OpenSSL's bit-by-bit binary algorithm (several times slower here).
 * Only public values are inverted (combining), so variable time is fine.
 * The result is checked (t * r = 1 mod N) and OpenSSL's BN_mod_inverse
 * is the fallback, so a flaw here could cost time, never correctness.
 */
int
km_rsa_lehmer_inverse(BIGNUM *r, const BIGNUM *t, const BIGNUM *n, BN_CTX *ctx)
{
	BIGNUM *r0, *r1, *s0, *s1, *u, *v, *q;
	int ret = KM_ERR_CRYPTO, guard = 0;

	BN_CTX_start(ctx);
	r0 = BN_CTX_get(ctx);
	r1 = BN_CTX_get(ctx);
	s0 = BN_CTX_get(ctx);
	s1 = BN_CTX_get(ctx);
	u = BN_CTX_get(ctx);
	v = BN_CTX_get(ctx);
	q = BN_CTX_get(ctx);
	if (q == NULL || BN_copy(r0, n) == NULL || !BN_nnmod(r1, t, n, ctx)
	    || !BN_one(s1)) {
		goto out;
	}
	BN_zero(s0);
	/* invariant: r_i = s_i t (mod n) */
	while (!BN_is_zero(r1)) {
		int64_t A = 1, B = 0, C = 0, D = 1, ah, bh, qq, tt;
		int shift = BN_num_bits(r0) - 62;

		if (++guard > 100000) {
			goto out;
		}
		if (shift > 0 && BN_num_bits(r1) > 64) {
			if (!BN_rshift(u, r0, shift)
			    || !BN_rshift(v, r1, shift)) {
				goto out;
			}
			ah = (int64_t)BN_get_word(u);
			bh = (int64_t)BN_get_word(v);
			for (;;) {
				if (bh + C == 0 || bh + D == 0) {
					break;
				}
				qq = (ah + A) / (bh + C);
				if (qq != (ah + B) / (bh + D)) {
					break;
				}
				tt = A - qq * C;
				A = C;
				C = tt;
				tt = B - qq * D;
				B = D;
				D = tt;
				tt = ah - qq * bh;
				ah = bh;
				bh = tt;
			}
		}
		if (B == 0) {
			/* one full-precision Euclid step */
			if (!BN_div(q, u, r0, r1, ctx)
			    || BN_copy(r0, r1) == NULL
			    || BN_copy(r1, u) == NULL || !BN_mul(v, q, s1, ctx)
			    || !BN_sub(u, s0, v) || BN_copy(s0, s1) == NULL
			    || BN_copy(s1, u) == NULL) {
				goto out;
			}
			continue;
		}
		/* (r0, r1) = (A r0 + B r1, C r0 + D r1), same for (s0, s1) */
		{
			BIGNUM *x0 = r0, *x1 = r1;
			int pass;

			for (pass = 0; pass < 2; pass++) {
				if (!km_rsa_lin(u, A, x0, B, x1, q)
				    || !km_rsa_lin(v, C, x0, D, x1, q)
				    || BN_copy(x0, u) == NULL
				    || BN_copy(x1, v) == NULL) {
					goto out;
				}
				x0 = s0;
				x1 = s1;
			}
		}
	}
	if (!BN_is_one(r0)) {
		ret = KM_ERR_VERIFY; /* not a unit */
		goto out;
	}
	if (!BN_nnmod(r, s0, n, ctx)) {
		goto out;
	}
	ret = 0;
out:
	BN_CTX_end(ctx);
	return ret;
}

int
km_rsa_mod_inverse(BIGNUM *r, const BIGNUM *t, const BIGNUM *n, BN_CTX *ctx)
{
	BIGNUM *chk;
	int ret;

	BN_CTX_start(ctx);
	if ((chk = BN_CTX_get(ctx)) == NULL) {
		ret = KM_ERR_ALLOC;
		goto out;
	}
	ret = km_rsa_lehmer_inverse(r, t, n, ctx);
	if (ret == 0 && BN_mod_mul(chk, r, t, n, ctx) && BN_is_one(chk)) {
		goto out;
	}
	/* fallback: OpenSSL's own */
	ret = BN_mod_inverse(r, t, n, ctx) != NULL ? 0 : KM_ERR_VERIFY;
	ERR_clear_error();
out:
	BN_CTX_end(ctx);
	return ret;
}

int
km_rsa_combine_raw(const km_rsa_pub *pub, const BIGNUM *x,
    km_rsa_partial *const *parts, size_t k, BIGNUM *y, BN_CTX *ctx, bool *ok)
{
	unsigned set[KM_RSA_MAX_HOLDERS];
	BIGNUM *lam, *pos, *neg, *t, *xb, *acc;
	size_t i;
	int r = KM_ERR_CRYPTO;

	*ok = false;
	if (k > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < k; i++) {
		set[i] = parts[i]->index;
	}
	BN_CTX_start(ctx);
	lam = BN_CTX_get(ctx);
	pos = BN_CTX_get(ctx);
	neg = BN_CTX_get(ctx);
	t = BN_CTX_get(ctx);
	xb = BN_CTX_get(ctx);
	if (xb == NULL || !BN_one(pos) || !BN_one(neg)) {
		goto out;
	}
	/* positive and negative coefficients apart: one inversion in all */
	for (i = 0; i < k; i++) {
		if ((r = km_rsa_lagrange(lam, pub->delta, set, k, set[i], ctx))
		    != 0) {
			goto out;
		}
		r = KM_ERR_CRYPTO;
		acc = BN_is_negative(lam) ? neg : pos;
		BN_set_negative(lam, 0);
		if (!BN_lshift1(lam, lam)
		    || !BN_mod_exp_mont(
		        t, parts[i]->xi, lam, pub->n_mod, ctx, pub->mont)
		    || !BN_mod_mul(acc, acc, t, pub->n_mod, ctx)) {
			goto out;
		}
	}
	/*
	 * w = pos / neg and y = w^a x^b with b < 0, so
	 * y = pos^a / (neg^a x^|b|): one modular inversion in all, the
	 * dominant cost of combining, done by Lehmer's algorithm.
	 */
	if (!BN_mod_exp_mont(t, neg, pub->a, pub->n_mod, ctx, pub->mont)
	    || !BN_mod_exp_mont(xb, x, pub->b_abs, pub->n_mod, ctx, pub->mont)
	    || !BN_mod_mul(t, t, xb, pub->n_mod, ctx)
	    || !BN_mod_exp_mont(
	        neg, pos, pub->a, pub->n_mod, ctx, pub->mont)) {
		goto out;
	}
	if (km_rsa_mod_inverse(xb, t, pub->n_mod, ctx) != 0) {
		/* a non-unit partial: treat as a failed check */
		r = 0;
		goto out;
	}
	if (!BN_mod_mul(y, neg, xb, pub->n_mod, ctx)) {
		goto out;
	}
	/* the e-th root check */
	if (!BN_mod_exp_mont(t, y, pub->e, pub->n_mod, ctx, pub->mont)) {
		goto out;
	}
	*ok = BN_cmp(t, x) == 0;
	r = 0;
out:
	BN_CTX_end(ctx);
	return r;
}

/* Next k-subset of {0..m-1} in lexicographic order; false at the end. */
static bool
km_rsa_next_subset(size_t *c, size_t k, size_t m)
{
	size_t i = k;

	while (i-- > 0) {
		if (c[i] < m - k + i) {
			c[i]++;
			for (i++; i < k; i++) {
				c[i] = c[i - 1] + 1;
			}
			return true;
		}
	}
	return false;
}

int
km_rsa_combine(const km_rsa_pub *pub, const BIGNUM *x,
    km_rsa_partial *const *parts, size_t count, BIGNUM **yp, uint32_t *badp)
{
	km_rsa_partial *cand[KM_RSA_MAX_HOLDERS], *sub[KM_RSA_MAX_HOLDERS];
	size_t pick[KM_RSA_MAX_HOLDERS];
	uint32_t seen = 0, bad = 0, good = 0;
	size_t i, j, nc = 0, k;
	BN_CTX *ctx = NULL;
	BIGNUM *y = NULL;
	bool ok = false, proofs;
	int r;

	if (badp != NULL) {
		*badp = 0;
	}
	if (pub == NULL || x == NULL || yp == NULL
	    || (parts == NULL && count > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	if (BN_is_zero(x) || BN_is_negative(x) || BN_cmp(x, pub->n_mod) >= 0) {
		return KM_ERR_RANGE;
	}
	k = pub->k;
	if (count < k) {
		return KM_ERR_QUORUM;
	}
	if (count > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < count; i++) {
		if (parts[i] == NULL || parts[i]->index < 1
		    || parts[i]->index > pub->n) {
			return KM_ERR_RANGE;
		}
		if (seen & (1u << parts[i]->index)) {
			return KM_ERR_INVALID_ARG;
		}
		seen |= 1u << parts[i]->index;
		/* a value outside [1, N-1] is wrong on its face */
		if (BN_is_zero(parts[i]->xi) || BN_is_negative(parts[i]->xi)
		    || BN_cmp(parts[i]->xi, pub->n_mod) >= 0) {
			bad |= 1u << parts[i]->index;
		} else {
			cand[nc++] = parts[i];
		}
	}
	if ((ctx = BN_CTX_new()) == NULL || (y = BN_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/* fast path: the first k, no proof checks */
	if (nc >= k) {
		if ((r = km_rsa_combine_raw(pub, x, cand, k, y, ctx, &ok))
		    != 0) {
			goto out;
		}
		if (ok) {
			goto done;
		}
	}
	/* Something is wrong: proofs name the culprits where they exist. */
	proofs = pub->v != NULL;
	for (i = 0; i < nc && proofs; i++) {
		if (cand[i]->c == NULL) {
			proofs = false;
		}
	}
	if (proofs) {
		for (i = 0, j = 0; i < nc; i++) {
			r = km_rsa_partial_verify(pub, x, cand[i]);
			if (r == KM_ERR_VERIFY) {
				bad |= 1u << cand[i]->index;
			} else if (r != 0) {
				goto out;
			} else {
				cand[j++] = cand[i];
			}
		}
		nc = j;
		if (nc < k) {
			r = bad ? KM_ERR_BAD_PARTIAL : KM_ERR_QUORUM;
			goto out;
		}
		if ((r = km_rsa_combine_raw(pub, x, cand, k, y, ctx, &ok))
		    != 0) {
			goto out;
		}
		if (ok) {
			goto done;
		}
		/* all proofs good yet a wrong result: the key data is bad */
		r = KM_ERR_BAD_PARTIAL;
		goto out;
	}
	/* No proofs: search the k-subsets (robustness by trial, sec. 5). */
	if (nc <= k) {
		r = KM_ERR_BAD_PARTIAL;
		goto out;
	}
	for (i = 0; i < k; i++) {
		pick[i] = i;
	}
	while (km_rsa_next_subset(pick, k, nc)) {
		for (i = 0; i < k; i++) {
			sub[i] = cand[pick[i]];
		}
		if ((r = km_rsa_combine_raw(pub, x, sub, k, y, ctx, &ok))
		    != 0) {
			goto out;
		}
		if (ok) {
			break;
		}
	}
	if (!ok) {
		r = KM_ERR_BAD_PARTIAL;
		goto out;
	}
	/*
	 * sub[] is a good set.  Each other partial is tried in place of
	 * sub[0]: the result is right iff that partial is.
	 */
	for (i = 0; i < k; i++) {
		good |= 1u << sub[i]->index;
	}
	for (i = 0; i < nc; i++) {
		km_rsa_partial *keep = sub[0];
		BIGNUM *t;
		bool tok = false;

		if (good & (1u << cand[i]->index)) {
			continue;
		}
		if ((t = BN_new()) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		sub[0] = cand[i];
		r = km_rsa_combine_raw(pub, x, sub, k, t, ctx, &tok);
		sub[0] = keep;
		BN_free(t);
		if (r != 0) {
			goto out;
		}
		if (!tok) {
			bad |= 1u << cand[i]->index;
		}
	}
done:
	*yp = y;
	y = NULL;
	r = 0;
out:
	if (badp != NULL) {
		*badp = bad;
	}
	BN_free(y);
	BN_CTX_free(ctx);
	return r;
}
