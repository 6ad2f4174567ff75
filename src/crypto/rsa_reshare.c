/*
 * Re-sharing a Shoup threshold RSA key over the integers, without
 * reconstructing d.
 *
 * Invariant of a sharing (V. Shoup, "Practical Threshold Signatures",
 * EUROCRYPT 2000, sec. 3, extended with a public scale sigma): for every set
 * S of k holders, sum_{i in S} lambda^S_{0,i} s_i = Delta sigma d (mod m).
 *
 * A quorum S of old holders re-deals: holder i picks an integer polynomial
 *   g_i(X) = Delta' lambda_i s_i + b_1 X + ... + b_{k'-1} X^{k'-1}
 * (Delta' = n'!) with each b_l uniform in [2^c, 2^(c+1)); new holder j gets
 * s'_j = sum_i g_i(j).  Integer Lagrange interpolation gives
 *   sum_{j in S'} lambda'_j s'_j = Delta' * Delta' * sum_i lambda_i s_i
 *                               = Delta' (Delta' Delta sigma) d  (mod m),
 * so the new sigma' = Delta' Delta sigma, and combining uses
 * e' = 4 Delta'^2 sigma'.  This is the integer secret sharing of Frankel,
 * Gemmell, MacKenzie and Yung ("Optimal-resilience proactive public-key
 * cryptosystems", FOCS 1997) and Rabin ("A simplified approach to threshold
 * and proactive RSA", CRYPTO 1998): the factor Delta' on the constant term
 * makes a change of the secret by 1 expressible as an integer change of the
 * other coefficients of at most Delta' 2^k' (the polynomial
 * Delta' prod_{j in T} (1 - X/j) vanishes on any k'-1 points T), so with
 * c = bits(lambda_i s_i) + 1 + bits(Delta') + k' + 128 any k'-1 sub-shares
 * are within statistical distance k' 2^-128 of independent of the secret.
 * Taking b_l >= 2^c > |g_i(0)| keeps every sub-share, and so every share,
 * positive.
 *
 * Verification keys: the dealer commits C_0 = v^(Delta' lambda_i s_i),
 * which anyone recomputes as v_i^(Delta' lambda_i), and C_l = v^(b_l), in
 * the group of squares Q_N (Feldman-style).  Then v'_j = prod_i prod_l
 * C_{i,l}^(j^l) = v^(s'_j), so Shoup's proofs keep working, and a new
 * holder checks each sub-share against its dealer's commitments.
 *
 * Cost: every re-share lengthens shares by about c - share_bits bits (see
 * docs/crypto-rsa.md for measured figures).
 */
#include "config.h"

#include <string.h>

#include <openssl/err.h>

#include "crypto/rsa_int.h"
#include "util/err.h"
#include "util/secmem.h"

static int
km_rsa_bits_of(unsigned v)
{
	int b = 0;

	while (v) {
		b++;
		v >>= 1;
	}
	return b;
}

/* The coefficient size c for a dealer with coefficient @lam. */
static int
km_rsa_coef_bits(const km_rsa_pub *pub, const BIGNUM *lam, const BIGNUM *dnew,
    unsigned new_k)
{
	return BN_num_bits(lam) + pub->share_bits + 1 + BN_num_bits(dnew)
	    + (int)new_k + KM_RSA_SIGMA;
}

static int
km_rsa_check_quorum(const km_rsa_pub *pub, const unsigned *quorum, size_t qlen)
{
	uint32_t seen = 0;
	size_t i;

	if (qlen < pub->k || qlen > pub->n) {
		return KM_ERR_QUORUM;
	}
	for (i = 0; i < qlen; i++) {
		if (quorum[i] < 1 || quorum[i] > pub->n) {
			return KM_ERR_RANGE;
		}
		if (seen & (1u << quorum[i])) {
			return KM_ERR_INVALID_ARG;
		}
		seen |= 1u << quorum[i];
	}
	return 0;
}

void
km_rsa_subdeal_free(km_rsa_subdeal *sd)
{
	unsigned i;

	if (sd == NULL) {
		return;
	}
	for (i = 0; i <= KM_RSA_MAX_HOLDERS; i++) {
		BN_clear_free(sd->sub[i]);
	}
	for (i = 0; i < KM_RSA_MAX_HOLDERS; i++) {
		BN_free(sd->commit[i]);
	}
	km_secret_free(sd, sizeof(*sd));
}

unsigned
km_rsa_subdeal_index(const km_rsa_subdeal *sd)
{
	return sd->from;
}

int
km_rsa_reshare_deal(const km_rsa_pub *pub, const km_rsa_share *share,
    const unsigned *quorum, size_t qlen, unsigned new_k, unsigned new_n,
    km_rsa_subdeal **out)
{
	km_rsa_subdeal *sd = NULL;
	BIGNUM *coef[KM_RSA_MAX_HOLDERS] = { NULL };
	BN_CTX *ctx = NULL;
	BIGNUM *lam, *dnew, *c0, *t;
	unsigned j, l;
	size_t i;
	bool member = false;
	int r;

	if (pub == NULL || share == NULL || quorum == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	/* new_k >= 2: b_1 is what keeps the shares positive */
	if (new_k < 2 || new_k > new_n || new_n > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_rsa_check_quorum(pub, quorum, qlen)) != 0) {
		return r;
	}
	for (i = 0; i < qlen; i++) {
		member |= quorum[i] == share->index;
	}
	if (!member) {
		return KM_ERR_INVALID_ARG;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	lam = BN_CTX_get(ctx);
	dnew = BN_CTX_get(ctx);
	c0 = BN_CTX_get(ctx);
	t = BN_CTX_get(ctx);
	if (t == NULL || (sd = km_secure_alloc(sizeof(*sd))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	BN_set_flags(c0, BN_FLG_CONSTTIME);
	sd->from = share->index;
	sd->new_k = new_k;
	sd->new_n = new_n;
	if ((r = km_rsa_factorial(dnew, new_n)) != 0
	    || (r = km_rsa_lagrange(
	            lam, pub->delta, quorum, qlen, share->index, ctx))
	        != 0) {
		goto out;
	}
	r = KM_ERR_CRYPTO;
	sd->coef_bits = km_rsa_coef_bits(pub, lam, dnew, new_k);
	/* g(0) = Delta' lambda_i s_i (signed) */
	if (!BN_mul(c0, lam, share->s, ctx) || !BN_mul(c0, c0, dnew, ctx)) {
		goto out;
	}
	for (l = 1; l < new_k; l++) {
		/* uniform in [2^c, 2^(c+1)) */
		if ((coef[l] = BN_secure_new()) == NULL
		    || !BN_priv_rand_ex(coef[l], sd->coef_bits + 1,
		        BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY, 0, ctx)) {
			goto out;
		}
		BN_set_flags(coef[l], BN_FLG_CONSTTIME);
	}
	for (j = 1; j <= new_n; j++) {
		BIGNUM *s;

		if ((s = sd->sub[j] = BN_secure_new()) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		BN_set_flags(s, BN_FLG_CONSTTIME);
		BN_zero(s);
		for (l = new_k; l-- > 0;) {
			if (!BN_mul_word(s, j)
			    || !BN_add(s, s, l == 0 ? c0 : coef[l])) {
				goto out;
			}
		}
		if (BN_is_negative(s) || BN_is_zero(s)) {
			r = KM_ERR_INTERNAL;
			goto out;
		}
	}
	if (pub->v != NULL) {
		/* C_0 = v_i^(Delta' lambda_i): public, checkable by all */
		if (!BN_mul(t, lam, dnew, ctx)
		    || (sd->commit[0] = BN_new()) == NULL
		    || (r = km_rsa_exp_signed(
		            sd->commit[0], pub->vi[share->index], t, pub, ctx))
		        != 0) {
			r = r ? r : KM_ERR_CRYPTO;
			goto out;
		}
		r = KM_ERR_CRYPTO;
		for (l = 1; l < new_k; l++) {
			if ((sd->commit[l] = BN_new()) == NULL
			    || !BN_mod_exp_mont_consttime(sd->commit[l],
			        pub->v, coef[l], pub->n_mod, ctx, pub->mont)) {
				goto out;
			}
		}
	}
	*out = sd;
	sd = NULL;
	r = 0;
out:
	for (l = 0; l < KM_RSA_MAX_HOLDERS; l++) {
		BN_clear_free(coef[l]);
	}
	km_rsa_subdeal_free(sd);
	if (t != NULL) {
		BN_clear(c0);
	}
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}

/* r = prod_l C_l^(j^l) mod N */
static int
km_rsa_commit_eval(const km_rsa_pub *pub, const km_rsa_subdeal *sd, unsigned j,
    BIGNUM *r, BN_CTX *ctx)
{
	BIGNUM *jl, *t;
	unsigned l;
	int ret = KM_ERR_CRYPTO;

	BN_CTX_start(ctx);
	jl = BN_CTX_get(ctx);
	t = BN_CTX_get(ctx);
	if (t == NULL || !BN_one(jl) || !BN_one(r)) {
		goto out;
	}
	for (l = 0; l < sd->new_k; l++) {
		if (sd->commit[l] == NULL) {
			ret = KM_ERR_BAD_FORMAT;
			goto out;
		}
		if (!BN_mod_exp_mont(
		        t, sd->commit[l], jl, pub->n_mod, ctx, pub->mont)
		    || !BN_mod_mul(r, r, t, pub->n_mod, ctx)
		    || !BN_mul_word(jl, j)) {
			goto out;
		}
	}
	ret = 0;
out:
	BN_CTX_end(ctx);
	return ret;
}

int
km_rsa_reshare_pub(const km_rsa_pub *pub, km_rsa_subdeal *const *deals,
    size_t qlen, unsigned new_k, unsigned new_n, km_rsa_pub **out)
{
	unsigned quorum[KM_RSA_MAX_HOLDERS];
	km_rsa_pub *np = NULL;
	BN_CTX *ctx = NULL;
	BIGNUM *lam, *dnew, *t, *u;
	int maxc = 0, c, r;
	unsigned j;
	size_t i;

	if (pub == NULL || deals == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (new_k < 2 || new_k > new_n || new_n > KM_RSA_MAX_HOLDERS
	    || qlen > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < qlen; i++) {
		if (deals[i] == NULL || deals[i]->new_k != new_k
		    || deals[i]->new_n != new_n) {
			return KM_ERR_INVALID_ARG;
		}
		quorum[i] = deals[i]->from;
	}
	if ((r = km_rsa_check_quorum(pub, quorum, qlen)) != 0) {
		return r;
	}
	if ((ctx = BN_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	lam = BN_CTX_get(ctx);
	dnew = BN_CTX_get(ctx);
	t = BN_CTX_get(ctx);
	u = BN_CTX_get(ctx);
	if (u == NULL || (np = km_rsa_pub_alloc()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if ((r = km_rsa_factorial(dnew, new_n)) != 0) {
		goto out;
	}
	r = KM_ERR_CRYPTO;
	if ((np->n_mod = BN_dup(pub->n_mod)) == NULL
	    || (np->e = BN_dup(pub->e)) == NULL
	    || (np->scale = BN_new()) == NULL
	    || !BN_mul(np->scale, pub->scale, pub->delta, ctx)
	    || !BN_mul(np->scale, np->scale, dnew, ctx)) {
		goto out;
	}
	if (BN_num_bits(np->scale) > KM_RSA_MAX_SCALE_BITS) {
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	for (i = 0; i < qlen; i++) {
		if ((r = km_rsa_lagrange(
		         lam, pub->delta, quorum, qlen, quorum[i], ctx))
		    != 0) {
			goto out;
		}
		c = km_rsa_coef_bits(pub, lam, dnew, new_k);
		if (c != deals[i]->coef_bits) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		maxc = c > maxc ? c : maxc;
		if (pub->v == NULL) {
			continue;
		}
		/* the dealer committed to the right constant term */
		r = KM_ERR_BAD_PARTIAL;
		if (deals[i]->commit[0] == NULL || !BN_mul(t, lam, dnew, ctx)
		    || km_rsa_exp_signed(u, pub->vi[quorum[i]], t, pub, ctx)
		        != 0
		    || BN_cmp(u, deals[i]->commit[0]) != 0) {
			goto out;
		}
	}
	/* s'_j < qlen * k' * 2^(c+1) * n'^(k'-1) */
	c = maxc + 1 + km_rsa_bits_of((unsigned)qlen) + km_rsa_bits_of(new_k)
	    + (int)(new_k - 1) * km_rsa_bits_of(new_n);
	if (c > KM_RSA_MAX_SHARE_BITS) {
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	np->share_bits = c;
	np->k = new_k;
	np->n = new_n;
	if ((r = km_rsa_pub_setup(np)) != 0) {
		goto out;
	}
	if (pub->v != NULL) {
		r = KM_ERR_CRYPTO;
		if ((np->v = BN_dup(pub->v)) == NULL) {
			goto out;
		}
		for (j = 1; j <= new_n; j++) {
			if ((np->vi[j] = BN_new()) == NULL
			    || !BN_one(np->vi[j])) {
				goto out;
			}
			for (i = 0; i < qlen; i++) {
				if ((r = km_rsa_commit_eval(
				         pub, deals[i], j, t, ctx))
				    != 0) {
					goto out;
				}
				r = KM_ERR_CRYPTO;
				if (!BN_mod_mul(np->vi[j], np->vi[j], t,
				        np->n_mod, ctx)) {
					goto out;
				}
			}
		}
	}
	*out = np;
	np = NULL;
	r = 0;
out:
	km_rsa_pub_free(np);
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}

int
km_rsa_reshare_accept(const km_rsa_pub *newpub, km_rsa_subdeal *const *deals,
    size_t qlen, unsigned j, km_rsa_share **out)
{
	km_rsa_share *sh = NULL;
	BN_CTX *ctx = NULL;
	BIGNUM *a, *b;
	size_t i;
	int r;

	if (newpub == NULL || deals == NULL || out == NULL
	    || qlen > KM_RSA_MAX_HOLDERS) {
		return KM_ERR_INVALID_ARG;
	}
	if (j < 1 || j > newpub->n) {
		return KM_ERR_RANGE;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	BN_CTX_start(ctx);
	a = BN_CTX_get(ctx);
	b = BN_CTX_get(ctx);
	if (b == NULL || (sh = km_rsa_share_alloc(j)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	r = KM_ERR_CRYPTO;
	BN_zero(sh->s);
	for (i = 0; i < qlen; i++) {
		if (deals[i] == NULL || deals[i]->new_n != newpub->n
		    || deals[i]->new_k != newpub->k
		    || deals[i]->sub[j] == NULL) {
			r = KM_ERR_INVALID_ARG;
			goto out;
		}
		if (newpub->v != NULL) {
			/* v^sub = prod_l C_l^(j^l): Feldman's check */
			if (!BN_mod_exp_mont_consttime(a, newpub->v,
			        deals[i]->sub[j], newpub->n_mod, ctx,
			        newpub->mont)) {
				goto out;
			}
			if ((r = km_rsa_commit_eval(
			         newpub, deals[i], j, b, ctx))
			    != 0) {
				goto out;
			}
			if (BN_cmp(a, b) != 0) {
				r = KM_ERR_VERIFY;
				goto out;
			}
			r = KM_ERR_CRYPTO;
		}
		if (!BN_add(sh->s, sh->s, deals[i]->sub[j])) {
			goto out;
		}
	}
	if (BN_is_zero(sh->s) || BN_num_bits(sh->s) > newpub->share_bits) {
		r = KM_ERR_RANGE;
		goto out;
	}
	if (newpub->v != NULL
	    && (newpub->vi[j] == NULL
	        || !BN_mod_exp_mont_consttime(
	            a, newpub->v, sh->s, newpub->n_mod, ctx, newpub->mont)
	        || BN_cmp(a, newpub->vi[j]) != 0)) {
		r = KM_ERR_VERIFY;
		goto out;
	}
	*out = sh;
	sh = NULL;
	r = 0;
out:
	km_rsa_share_free(sh);
	BN_CTX_end(ctx);
	BN_CTX_free(ctx);
	return r;
}

/* ---- transport of dealings ---- */

#define KM_RSA_TAG_DEAL 0x4b4d5244u /* "KMRD" */

int
km_rsa_subdeal_encode(const km_rsa_subdeal *sd, unsigned j, km_buf *b)
{
	unsigned l;
	int r;

	if (sd == NULL || b == NULL || j > sd->new_n) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_buf_put_u32(b, KM_RSA_TAG_DEAL)) != 0
	    || (r = km_buf_put_u32(b, KM_RSA_FORMAT_VERSION)) != 0
	    || (r = km_buf_put_u32(b, sd->from)) != 0
	    || (r = km_buf_put_u32(b, sd->new_k)) != 0
	    || (r = km_buf_put_u32(b, sd->new_n)) != 0
	    || (r = km_buf_put_u32(b, (uint32_t)sd->coef_bits)) != 0
	    || (r = km_buf_put_u32(b, j)) != 0) {
		return r;
	}
	if (j > 0 && (r = km_buf_put_bn(b, sd->sub[j])) != 0) {
		return r;
	}
	if ((r = km_buf_put_u8(b, sd->commit[0] != NULL)) != 0) {
		return r;
	}
	for (l = 0; sd->commit[0] != NULL && l < sd->new_k; l++) {
		if ((r = km_buf_put_bn(b, sd->commit[l])) != 0) {
			return r;
		}
	}
	return 0;
}

int
km_rsa_subdeal_decode(const km_rsa_pub *pub, const uint8_t *data, size_t len,
    km_rsa_subdeal **out)
{
	km_rsa_subdeal *sd = NULL;
	uint32_t tag, ver, from, nk, nn, cb, j;
	uint8_t hasc;
	size_t submax;
	unsigned l;
	km_buf b;
	int r = KM_ERR_BAD_FORMAT, got;

	if (pub == NULL || data == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_buf_init_view(&b, data, len);
	if ((got = km_buf_get_u32(&b, &tag)) != 0
	    || (got = km_buf_get_u32(&b, &ver)) != 0
	    || (got = km_buf_get_u32(&b, &from)) != 0
	    || (got = km_buf_get_u32(&b, &nk)) != 0
	    || (got = km_buf_get_u32(&b, &nn)) != 0
	    || (got = km_buf_get_u32(&b, &cb)) != 0
	    || (got = km_buf_get_u32(&b, &j)) != 0) {
		return got;
	}
	if (tag != KM_RSA_TAG_DEAL) {
		return KM_ERR_BAD_FORMAT;
	}
	if (ver != KM_RSA_FORMAT_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if (from < 1 || from > pub->n || nk < 2 || nk > nn
	    || nn > KM_RSA_MAX_HOLDERS || j > nn || cb < 1
	    || cb > KM_RSA_MAX_SHARE_BITS) {
		return KM_ERR_RANGE;
	}
	if ((sd = km_secure_alloc(sizeof(*sd))) == NULL) {
		return KM_ERR_ALLOC;
	}
	sd->from = from;
	sd->new_k = nk;
	sd->new_n = nn;
	sd->coef_bits = (int)cb;
	/* g(j) < k' 2^(c+1) n'^(k'-1) */
	submax = ((size_t)cb + 1 + 5 + (nk - 1) * 5 + 7) / 8 + 1;
	if (j > 0) {
		if ((got = km_buf_get_bn(&b, &sd->sub[j], submax, true))
		    != 0) {
			r = got;
			goto out;
		}
		if (BN_is_zero(sd->sub[j])) {
			r = KM_ERR_RANGE;
			goto out;
		}
	}
	if ((got = km_buf_get_u8(&b, &hasc)) != 0) {
		r = got;
		goto out;
	}
	if (hasc > 1 || (hasc == 1) != (pub->v != NULL)) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	for (l = 0; hasc && l < nk; l++) {
		got = km_buf_get_bn(
		    &b, &sd->commit[l], (size_t)pub->bytes, false);
		if (got != 0) {
			r = got;
			goto out;
		}
		if (BN_is_zero(sd->commit[l])
		    || BN_cmp(sd->commit[l], pub->n_mod) >= 0) {
			r = KM_ERR_RANGE;
			goto out;
		}
	}
	if (km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	*out = sd;
	sd = NULL;
	r = 0;
out:
	km_rsa_subdeal_free(sd);
	return r;
}
