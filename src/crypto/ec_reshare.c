/*
 * Desmedt-Jajodia re-sharing with Feldman commitments.  See ec_reshare.h.
 *
 * Wire bodies (after the common header of ec_group.h):
 *   RESHARE_COMMIT    uint32 old index, uint32 k', k' points C_l
 *   RESHARE_SUBSHARE  uint32 old index, uint32 new index, scalar s
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/ec_internal.h"
#include "crypto/ec_reshare.h"
#include "util/err.h"
#include "util/secmem.h"

#define RET_OSSL_OK 1

static int
km_reshare_check(const km_ec_reshare_params *rp)
{
	int r;

	if (rp == NULL || rp->old_pub == NULL || rp->quorum == NULL
	    || rp->new_k == 0 || rp->new_k > rp->new_n
	    || rp->new_n > KM_EC_MAX_INDEX) {
		return KM_ERR_INVALID_ARG;
	}
	if (rp->nq < rp->old_pub->k) {
		return KM_ERR_QUORUM;
	}
	if ((r = km_shamir_check_indices(rp->quorum, rp->nq, rp->old_pub->n))
	    != 0) {
		return r;
	}
	return 0;
}

static int
km_reshare_pos(const km_ec_reshare_params *rp, uint32_t index, size_t *pos)
{
	size_t i;

	for (i = 0; i < rp->nq; i++) {
		if (rp->quorum[i] == index) {
			*pos = i;
			return 0;
		}
	}
	return KM_ERR_RANGE;
}

int
km_ec_reshare_deal(const km_ec_group *g, const km_ec_reshare_params *rp,
    const km_ec_share *old_share, km_ec_msgs *out)
{
	km_shamir_poly *poly = NULL;
	km_ec_commits *c = NULL;
	BIGNUM *lambda = NULL, *w = NULL, *s = NULL;
	BN_CTX *ctx = NULL;
	km_buf *b;
	uint32_t j;
	size_t pos;
	int r;

	if (old_share == NULL || old_share->x == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_reshare_check(rp)) != 0
	    || (r = km_reshare_pos(rp, old_share->index, &pos)) != 0) {
		return r;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL || (lambda = BN_new()) == NULL
	    || (w = km_ec_secure_bn()) == NULL
	    || (s = km_ec_secure_bn()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/* w = lambda_i^S * x_i: this holder's additive part of x. */
	if ((r = km_shamir_lagrange0(g, rp->quorum, rp->nq, pos, lambda))
	    != 0) {
		goto out;
	}
	if (BN_mod_mul(w, lambda, old_share->x, g->order, ctx)
	    != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_shamir_poly_new(g, rp->new_k, w, &poly)) != 0
	    || (r = km_feldman_commit(g, poly, &c)) != 0) {
		goto out;
	}
	r = KM_ERR_ALLOC;
	if ((b = km_ec_msgs_add(out, old_share->index, 0, false)) == NULL
	    || km_ec_hdr_put(g, b, KM_EC_KIND_RESHARE_COMMIT) != 0
	    || km_buf_put_u32(b, old_share->index) != 0
	    || km_ec_commits_put(g, b, c) != 0) {
		goto out;
	}
	for (j = 1; j <= rp->new_n; j++) {
		if ((r = km_shamir_poly_eval(g, poly, j, s)) != 0) {
			goto out;
		}
		r = KM_ERR_ALLOC;
		if ((b = km_ec_msgs_add(out, old_share->index, j, true))
		        == NULL
		    || km_ec_hdr_put(g, b, KM_EC_KIND_RESHARE_SUBSHARE) != 0
		    || km_buf_put_u32(b, old_share->index) != 0
		    || km_buf_put_u32(b, j) != 0
		    || km_ec_scalar_put(g, b, s) != 0) {
			goto out;
		}
	}
	r = 0;
out:
	km_shamir_poly_free(poly);
	km_ec_commits_free(c);
	BN_free(lambda);
	BN_clear_free(w);
	BN_clear_free(s);
	BN_CTX_free(ctx);
	return r;
}

int
km_ec_reshare_receive(const km_ec_group *g, const km_ec_reshare_params *rp,
    uint32_t new_index, const km_ec_msg *in, size_t nmsg, km_ec_share **share,
    km_ec_pub **pub, uint32_t *bad)
{
	km_ec_commits **c = NULL, *sum = NULL;
	BIGNUM **sub = NULL, *lambda = NULL;
	km_ec_share *sh = NULL, tmp;
	km_ec_pub *pb = NULL;
	EC_POINT *t = NULL;
	BN_CTX *ctx = NULL;
	uint32_t from, idx, to, l;
	size_t i, pos = 0;
	km_buf v;
	int r;

	*share = NULL;
	*pub = NULL;
	if (bad != NULL) {
		*bad = 0;
	}
	if ((r = km_reshare_check(rp)) != 0) {
		return r;
	}
	if (new_index == 0 || new_index > rp->new_n) {
		return KM_ERR_RANGE;
	}
	if ((c = calloc(rp->nq, sizeof(*c))) == NULL
	    || (sub = calloc(rp->nq, sizeof(*sub))) == NULL
	    || (ctx = BN_CTX_secure_new()) == NULL
	    || (lambda = BN_new()) == NULL
	    || (t = EC_POINT_new(g->group)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < nmsg; i++) {
		from = in[i].from;
		if (km_reshare_pos(rp, from, &pos) != 0) {
			continue;
		}
		km_buf_init_view(&v, in[i].body.data, in[i].body.len);
		switch (km_ec_msg_kind(&in[i])) {
		case KM_EC_KIND_RESHARE_COMMIT:
			if (in[i].to != 0 || c[pos] != NULL) {
				continue;
			}
			if (km_ec_hdr_get(g, &v, KM_EC_KIND_RESHARE_COMMIT)
			        != 0
			    || km_buf_get_u32(&v, &idx) != 0 || idx != from
			    || km_ec_commits_get(g, &v, rp->new_k, &c[pos])
			        != 0
			    || km_buf_remaining(&v) != 0) {
				km_ec_commits_free(c[pos]);
				c[pos] = NULL;
			}
			break;
		case KM_EC_KIND_RESHARE_SUBSHARE:
			if (in[i].to != new_index || sub[pos] != NULL) {
				continue;
			}
			if (km_ec_hdr_get(g, &v, KM_EC_KIND_RESHARE_SUBSHARE)
			        != 0
			    || km_buf_get_u32(&v, &idx) != 0 || idx != from
			    || km_buf_get_u32(&v, &to) != 0 || to != new_index
			    || km_ec_scalar_get(g, &v, true, false, &sub[pos])
			        != 0
			    || km_buf_remaining(&v) != 0) {
				BN_clear_free(sub[pos]);
				sub[pos] = NULL;
			}
			break;
		default:
			break;
		}
	}
	for (i = 0; i < rp->nq; i++) {
		r = KM_ERR_BAD_PARTIAL;
		if (c[i] == NULL || sub[i] == NULL) {
			goto blame;
		}
		/* C_{i,0} must be lambda_i * Y_i: the dealer's true share. */
		if (km_shamir_lagrange0(g, rp->quorum, rp->nq, i, lambda) != 0
		    || EC_POINT_mul(g->group, t, NULL,
		           rp->old_pub->vk[rp->quorum[i] - 1], lambda, ctx)
		        != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
		if (EC_POINT_cmp(g->group, t, c[i]->c[0], ctx) != 0) {
			goto blame;
		}
		tmp.index = new_index;
		tmp.x = sub[i];
		r = km_feldman_verify(g, c[i], &tmp);
		if (r == KM_ERR_VERIFY) {
			r = KM_ERR_BAD_PARTIAL;
			goto blame;
		}
		if (r != 0) {
			goto out;
		}
		continue;
	blame:
		if (bad != NULL) {
			*bad = rp->quorum[i];
		}
		goto out;
	}
	/* New commitments: the sum of every dealer's; Y must not move. */
	if ((r = km_ec_commits_new(g, rp->new_k, &sum)) != 0) {
		goto out;
	}
	for (l = 0; l < rp->new_k; l++) {
		if (EC_POINT_set_to_infinity(g->group, sum->c[l])
		    != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
		for (i = 0; i < rp->nq; i++) {
			if (EC_POINT_add(g->group, sum->c[l], sum->c[l],
			        c[i]->c[l], ctx)
			    != RET_OSSL_OK) {
				r = KM_ERR_CRYPTO;
				goto out;
			}
		}
	}
	if ((r = km_ec_pub_new(g, rp->new_k, rp->new_n, &pb)) != 0
	    || (r = km_ec_pub_from_commits(g, sum, pb)) != 0) {
		goto out;
	}
	if (EC_POINT_cmp(g->group, pb->y, rp->old_pub->y, ctx) != 0) {
		r = KM_ERR_VERIFY;
		goto out;
	}
	if ((r = km_ec_share_new(new_index, &sh)) != 0) {
		goto out;
	}
	for (i = 0; i < rp->nq; i++) {
		if (BN_mod_add(sh->x, sh->x, sub[i], g->order, ctx)
		    != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	}
	if ((r = km_ec_share_check(g, pb, sh)) != 0) {
		r = KM_ERR_INTERNAL;
		goto out;
	}
	*share = sh;
	sh = NULL;
	*pub = pb;
	pb = NULL;
	r = 0;
out:
	for (i = 0; c != NULL && i < rp->nq; i++) {
		km_ec_commits_free(c[i]);
	}
	for (i = 0; sub != NULL && i < rp->nq; i++) {
		BN_clear_free(sub[i]);
	}
	free(c);
	free(sub);
	km_ec_commits_free(sum);
	km_ec_share_free(sh);
	km_ec_pub_free(pb);
	BN_free(lambda);
	EC_POINT_free(t);
	BN_CTX_free(ctx);
	return r;
}
