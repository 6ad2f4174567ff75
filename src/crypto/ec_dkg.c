/*
 * Pedersen-VSS distributed key generation (Gennaro, Jarecki, Krawczyk,
 * Rabin, J. Cryptology 2007).  See ec_dkg.h for the rounds.
 *
 * Wire bodies (after the common header of ec_group.h):
 *   COMMIT     uint32 dealer, uint32 k, k points E_l
 *   SHARES     uint32 dealer, uint32 recipient, uint32 m,
 *              m x (uint32 index, scalar s, scalar s')
 *   COMPLAINTS uint32 complainer, uint32 m, m x uint32 dealer
 *   ANSWER     uint32 dealer, uint32 m, m x (uint32 index, scalar s,
 *              scalar s')
 *   FELDMAN    uint32 dealer, uint32 k, k points A_l
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_internal.h"
#include "util/err.h"
#include "util/secmem.h"

#define RET_OSSL_OK 1

enum {
	KM_DKG_NEW = 0,
	KM_DKG_DEALT,
	KM_DKG_VERIFIED,
	KM_DKG_ANSWERED,
	KM_DKG_QUALIFIED,
	KM_DKG_DONE,
};

struct km_ec_dkg {
	const km_ec_group *g;
	uint32_t k, n, np, self;
	uint32_t *owner; /* [n] */
	uint32_t nmine;  /* indices this party owns */
	int state;
	km_shamir_poly *f, *fp; /* this dealer's f (secret) and f' (blind) */
	km_ec_commits **e;      /* [np] Pedersen commitments, NULL if bad */
	BIGNUM **s, **sp;       /* [np * n] shares received, own indices */
	uint8_t *complain;      /* [np] this party complains against d */
	uint8_t *cmpl;          /* [np * np] complainer p against dealer d */
	uint8_t *qual;          /* [np] */
};

#define SLOT(d, j) ((size_t)((d)-1) * dk->n + ((j)-1))

void
km_ec_msgs_free(km_ec_msgs *m)
{
	size_t i;

	if (m == NULL) {
		return;
	}
	for (i = 0; i < m->n; i++) {
		km_buf_free(&m->v[i].body);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

km_buf *
km_ec_msgs_add(km_ec_msgs *m, uint32_t from, uint32_t to, bool secure)
{
	km_ec_msg *v;

	if ((v = realloc(m->v, (m->n + 1) * sizeof(*v))) == NULL) {
		return NULL;
	}
	m->v = v;
	v = &m->v[m->n++];
	v->from = from;
	v->to = to;
	if (secure) {
		km_buf_init_secure(&v->body);
	} else {
		km_buf_init(&v->body);
	}
	return &v->body;
}

int
km_ec_msg_kind(const km_ec_msg *m)
{
	const uint8_t *p = m->body.data;

	if (m->body.len < 12) {
		return -1;
	}
	return (int)(((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16)
	    | ((uint32_t)p[6] << 8) | (uint32_t)p[7]);
}

int
km_ec_commits_put(const km_ec_group *g, km_buf *b, const km_ec_commits *c)
{
	uint32_t l;

	if (km_buf_put_u32(b, c->k) != 0) {
		return KM_ERR_ALLOC;
	}
	for (l = 0; l < c->k; l++) {
		if (km_ec_point_put(g, b, c->c[l]) != 0) {
			return KM_ERR_ALLOC;
		}
	}
	return 0;
}

int
km_ec_commits_get(
    const km_ec_group *g, km_buf *b, uint32_t k, km_ec_commits **out)
{
	km_ec_commits *c = NULL;
	uint32_t kk = 0, l;
	int r;

	*out = NULL;
	if (km_buf_get_u32(b, &kk) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (kk != k) {
		b->failed = true;
		return KM_ERR_BAD_FORMAT;
	}
	if ((r = km_ec_commits_new(g, k, &c)) != 0) {
		return r;
	}
	for (l = 0; l < k; l++) {
		EC_POINT_free(c->c[l]);
		c->c[l] = NULL;
		if ((r = km_ec_point_get(g, b, &c->c[l])) != 0) {
			goto out;
		}
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	km_ec_commits_free(c);
	return r;
}

/*
 * Pedersen check: s*G + s'*H == sum_l E_l j^l.  s*G and s'*H are two
 * separate single-scalar multiplications: OpenSSL's combined form is not
 * constant time.
 */
int
km_pedersen_verify(const km_ec_group *g, const km_ec_commits *e, uint32_t j,
    const BIGNUM *s, const BIGNUM *sp)
{
	EC_POINT *l = NULL, *t = NULL, *rhs = NULL;
	BN_CTX *ctx = NULL;
	int r;

	if ((ctx = BN_CTX_secure_new()) == NULL
	    || (l = EC_POINT_new(g->group)) == NULL
	    || (t = EC_POINT_new(g->group)) == NULL
	    || (rhs = EC_POINT_new(g->group)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EC_POINT_mul(g->group, l, s, NULL, NULL, ctx) != RET_OSSL_OK
	    || EC_POINT_mul(g->group, t, NULL, g->h, sp, ctx) != RET_OSSL_OK
	    || EC_POINT_add(g->group, l, l, t, ctx) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_feldman_eval(g, e, j, rhs)) != 0) {
		goto out;
	}
	r = EC_POINT_cmp(g->group, l, rhs, ctx) == 0 ? 0 : KM_ERR_VERIFY;
out:
	EC_POINT_clear_free(l);
	EC_POINT_clear_free(t);
	EC_POINT_free(rhs);
	BN_CTX_free(ctx);
	return r;
}

int
km_ec_dkg_new(const km_ec_group *g, const km_ec_dkg_params *params,
    uint32_t self, km_ec_dkg **out)
{
	km_ec_dkg *dk = NULL;
	uint8_t has[KM_EC_MAX_INDEX + 1];
	uint32_t j, p;
	int r = KM_ERR_ALLOC;

	*out = NULL;
	if (params == NULL || params->owner == NULL || params->k == 0
	    || params->k > params->n || params->n > KM_EC_MAX_INDEX
	    || params->nparties == 0 || params->nparties > params->n
	    || self == 0 || self > params->nparties) {
		return KM_ERR_INVALID_ARG;
	}
	memset(has, 0, sizeof(has));
	for (j = 0; j < params->n; j++) {
		if (params->owner[j] == 0
		    || params->owner[j] > params->nparties) {
			return KM_ERR_INVALID_ARG;
		}
		has[params->owner[j]] = 1;
	}
	for (p = 1; p <= params->nparties; p++) {
		if (!has[p]) {
			return KM_ERR_INVALID_ARG;
		}
	}
	if ((dk = calloc(1, sizeof(*dk))) == NULL) {
		return KM_ERR_ALLOC;
	}
	dk->g = g;
	dk->k = params->k;
	dk->n = params->n;
	dk->np = params->nparties;
	dk->self = self;
	if ((dk->owner = calloc(dk->n, sizeof(*dk->owner))) == NULL
	    || (dk->e = calloc(dk->np, sizeof(*dk->e))) == NULL
	    || (dk->s = calloc((size_t)dk->np * dk->n, sizeof(*dk->s))) == NULL
	    || (dk->sp = calloc((size_t)dk->np * dk->n, sizeof(*dk->sp)))
	        == NULL
	    || (dk->complain = calloc(dk->np, 1)) == NULL
	    || (dk->cmpl = calloc((size_t)dk->np * dk->np, 1)) == NULL
	    || (dk->qual = calloc(dk->np, 1)) == NULL) {
		goto out;
	}
	memcpy(dk->owner, params->owner, dk->n * sizeof(*dk->owner));
	for (j = 0; j < dk->n; j++) {
		if (dk->owner[j] == self) {
			dk->nmine++;
		}
	}
	*out = dk;
	dk = NULL;
	r = 0;
out:
	km_ec_dkg_free(dk);
	return r;
}

static void
km_dkg_clear_shares(km_ec_dkg *dk, uint32_t d)
{
	uint32_t j;

	for (j = 1; j <= dk->n; j++) {
		BN_clear_free(dk->s[SLOT(d, j)]);
		BN_clear_free(dk->sp[SLOT(d, j)]);
		dk->s[SLOT(d, j)] = dk->sp[SLOT(d, j)] = NULL;
	}
}

void
km_ec_dkg_free(km_ec_dkg *dk)
{
	uint32_t d;

	if (dk == NULL) {
		return;
	}
	for (d = 1; dk->e != NULL && d <= dk->np; d++) {
		km_ec_commits_free(dk->e[d - 1]);
	}
	for (d = 1; dk->s != NULL && dk->sp != NULL && d <= dk->np; d++) {
		km_dkg_clear_shares(dk, d);
	}
	km_shamir_poly_free(dk->f);
	km_shamir_poly_free(dk->fp);
	free(dk->owner);
	free(dk->e);
	free(dk->s);
	free(dk->sp);
	free(dk->complain);
	free(dk->cmpl);
	free(dk->qual);
	free(dk);
}

bool
km_ec_dkg_qualified(const km_ec_dkg *dk, uint32_t dealer)
{
	return dk->state >= KM_DKG_QUALIFIED && dealer >= 1 && dealer <= dk->np
	    && dk->qual[dealer - 1];
}

bool
km_ec_dkg_complained(const km_ec_dkg *dk, uint32_t dealer)
{
	return dk->state >= KM_DKG_VERIFIED && dealer >= 1 && dealer <= dk->np
	    && dk->complain[dealer - 1];
}

/* Appends (index, f(j), f'(j)) for every index owned by party @p. */
static int
km_dkg_put_shares_of(km_ec_dkg *dk, km_buf *b, uint32_t p)
{
	BIGNUM *s = NULL, *sp = NULL;
	uint32_t j;
	int r;

	if ((s = km_ec_secure_bn()) == NULL
	    || (sp = km_ec_secure_bn()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (j = 1; j <= dk->n; j++) {
		if (dk->owner[j - 1] != p) {
			continue;
		}
		if ((r = km_shamir_poly_eval(dk->g, dk->f, j, s)) != 0
		    || (r = km_shamir_poly_eval(dk->g, dk->fp, j, sp)) != 0) {
			goto out;
		}
		if (km_buf_put_u32(b, j) != 0
		    || km_ec_scalar_put(dk->g, b, s) != 0
		    || km_ec_scalar_put(dk->g, b, sp) != 0) {
			r = KM_ERR_ALLOC;
			goto out;
		}
	}
	r = 0;
out:
	BN_clear_free(s);
	BN_clear_free(sp);
	return r;
}

static uint32_t
km_dkg_count_owned(const km_ec_dkg *dk, uint32_t p)
{
	uint32_t j, m = 0;

	for (j = 0; j < dk->n; j++) {
		if (dk->owner[j] == p) {
			m++;
		}
	}
	return m;
}

int
km_ec_dkg_round1(km_ec_dkg *dk, km_ec_msgs *out)
{
	km_ec_commits *e = NULL, *cf = NULL;
	BN_CTX *ctx = NULL;
	km_buf *b;
	uint32_t l, p;
	int r;

	if (dk->state != KM_DKG_NEW) {
		return KM_ERR_STATE;
	}
	if ((r = km_shamir_poly_new(dk->g, dk->k, NULL, &dk->f)) != 0
	    || (r = km_shamir_poly_new(dk->g, dk->k, NULL, &dk->fp)) != 0
	    || (r = km_feldman_commit(dk->g, dk->f, &cf)) != 0
	    || (r = km_ec_commits_new(dk->g, dk->k, &e)) != 0) {
		goto out;
	}
	if ((ctx = BN_CTX_secure_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	/* E_l = a_l*G + b_l*H */
	for (l = 0; l < dk->k; l++) {
		if (EC_POINT_mul(dk->g->group, e->c[l], NULL, dk->g->h,
		        dk->fp->a[l], ctx)
		        != RET_OSSL_OK
		    || EC_POINT_add(
		           dk->g->group, e->c[l], e->c[l], cf->c[l], ctx)
		        != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	}
	r = KM_ERR_ALLOC;
	if ((b = km_ec_msgs_add(out, dk->self, 0, false)) == NULL
	    || km_ec_hdr_put(dk->g, b, KM_EC_KIND_DKG_COMMIT) != 0
	    || km_buf_put_u32(b, dk->self) != 0
	    || km_ec_commits_put(dk->g, b, e) != 0) {
		goto out;
	}
	for (p = 1; p <= dk->np; p++) {
		if ((b = km_ec_msgs_add(out, dk->self, p, true)) == NULL
		    || km_ec_hdr_put(dk->g, b, KM_EC_KIND_DKG_SHARES) != 0
		    || km_buf_put_u32(b, dk->self) != 0
		    || km_buf_put_u32(b, p) != 0
		    || km_buf_put_u32(b, km_dkg_count_owned(dk, p)) != 0) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		if ((r = km_dkg_put_shares_of(dk, b, p)) != 0) {
			goto out;
		}
	}
	dk->state = KM_DKG_DEALT;
	r = 0;
out:
	km_ec_commits_free(e);
	km_ec_commits_free(cf);
	BN_CTX_free(ctx);
	return r;
}

/*
 * Reads m x (index, s, s') where every index must be owned by @p and
 * appear once; stores into the slots of dealer @d.  On error the dealer's
 * slots are cleared.
 */
static int
km_dkg_get_shares(km_ec_dkg *dk, km_buf *b, uint32_t d, uint32_t p, uint32_t m,
    bool only_mine)
{
	uint32_t i, j = 0;
	BIGNUM *s = NULL, *sp = NULL;
	int r;

	if (m != km_dkg_count_owned(dk, p)) {
		return KM_ERR_BAD_FORMAT;
	}
	for (i = 0; i < m; i++) {
		if (km_buf_get_u32(b, &j) != 0 || j == 0 || j > dk->n
		    || dk->owner[j - 1] != p) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		if ((r = km_ec_scalar_get(dk->g, b, true, false, &s)) != 0
		    || (r = km_ec_scalar_get(dk->g, b, true, false, &sp))
		        != 0) {
			goto out;
		}
		if (only_mine && p != dk->self) {
			BN_clear_free(s);
			BN_clear_free(sp);
			s = sp = NULL;
			continue;
		}
		if (dk->s[SLOT(d, j)] != NULL) {
			r = KM_ERR_BAD_FORMAT; /* index repeated */
			goto out;
		}
		dk->s[SLOT(d, j)] = s;
		dk->sp[SLOT(d, j)] = sp;
		s = sp = NULL;
	}
	r = 0;
out:
	BN_clear_free(s);
	BN_clear_free(sp);
	return r;
}

int
km_ec_dkg_round2(
    km_ec_dkg *dk, const km_ec_msg *in, size_t nmsg, km_ec_msgs *out)
{
	uint8_t *got = NULL;
	km_buf v, *b;
	uint32_t d, dealer, rcpt, m, j, nc = 0;
	size_t i;
	int r;

	if (dk->state != KM_DKG_DEALT) {
		return KM_ERR_STATE;
	}
	if ((got = calloc(dk->np, 1)) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < nmsg; i++) {
		d = in[i].from;
		if (d == 0 || d > dk->np) {
			continue;
		}
		km_buf_init_view(&v, in[i].body.data, in[i].body.len);
		switch (km_ec_msg_kind(&in[i])) {
		case KM_EC_KIND_DKG_COMMIT:
			if (in[i].to != 0 || dk->e[d - 1] != NULL) {
				continue; /* first broadcast wins */
			}
			if (km_ec_hdr_get(dk->g, &v, KM_EC_KIND_DKG_COMMIT)
			        != 0
			    || km_buf_get_u32(&v, &dealer) != 0 || dealer != d
			    || km_ec_commits_get(
			           dk->g, &v, dk->k, &dk->e[d - 1])
			        != 0
			    || km_buf_remaining(&v) != 0) {
				km_ec_commits_free(dk->e[d - 1]);
				dk->e[d - 1] = NULL;
			}
			break;
		case KM_EC_KIND_DKG_SHARES:
			if (in[i].to != dk->self || got[d - 1]) {
				continue;
			}
			got[d - 1] = 1;
			if (km_ec_hdr_get(dk->g, &v, KM_EC_KIND_DKG_SHARES)
			        != 0
			    || km_buf_get_u32(&v, &dealer) != 0 || dealer != d
			    || km_buf_get_u32(&v, &rcpt) != 0
			    || rcpt != dk->self || km_buf_get_u32(&v, &m) != 0
			    || km_dkg_get_shares(dk, &v, d, dk->self, m, false)
			        != 0
			    || km_buf_remaining(&v) != 0) {
				km_dkg_clear_shares(dk, d);
			}
			break;
		default:
			break;
		}
	}
	/* Complain against a dealer with no valid commitment or share. */
	for (d = 1; d <= dk->np; d++) {
		if (dk->e[d - 1] == NULL) {
			dk->complain[d - 1] = 1;
			continue;
		}
		for (j = 1; j <= dk->n; j++) {
			if (dk->owner[j - 1] != dk->self) {
				continue;
			}
			if (dk->s[SLOT(d, j)] == NULL) {
				dk->complain[d - 1] = 1;
				break;
			}
			r = km_pedersen_verify(dk->g, dk->e[d - 1], j,
			    dk->s[SLOT(d, j)], dk->sp[SLOT(d, j)]);
			if (r == KM_ERR_VERIFY) {
				dk->complain[d - 1] = 1;
				break;
			}
			if (r != 0) {
				goto out;
			}
		}
		if (dk->complain[d - 1]) {
			km_dkg_clear_shares(dk, d);
		}
	}
	for (d = 1; d <= dk->np; d++) {
		nc += dk->complain[d - 1];
	}
	r = KM_ERR_ALLOC;
	if ((b = km_ec_msgs_add(out, dk->self, 0, false)) == NULL
	    || km_ec_hdr_put(dk->g, b, KM_EC_KIND_DKG_COMPLAINTS) != 0
	    || km_buf_put_u32(b, dk->self) != 0
	    || km_buf_put_u32(b, nc) != 0) {
		goto out;
	}
	for (d = 1; d <= dk->np; d++) {
		if (dk->complain[d - 1] && km_buf_put_u32(b, d) != 0) {
			goto out;
		}
	}
	dk->state = KM_DKG_VERIFIED;
	r = 0;
out:
	free(got);
	return r;
}

int
km_ec_dkg_round3(
    km_ec_dkg *dk, const km_ec_msg *in, size_t nmsg, km_ec_msgs *out)
{
	uint8_t *got = NULL;
	km_buf v, *b;
	uint32_t p, who, m, i2, d, nshares = 0;
	size_t i;
	int r;

	if (dk->state != KM_DKG_VERIFIED) {
		return KM_ERR_STATE;
	}
	if ((got = calloc(dk->np, 1)) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < nmsg; i++) {
		p = in[i].from;
		if (p == 0 || p > dk->np || in[i].to != 0 || got[p - 1]
		    || km_ec_msg_kind(&in[i]) != KM_EC_KIND_DKG_COMPLAINTS) {
			continue;
		}
		got[p - 1] = 1;
		km_buf_init_view(&v, in[i].body.data, in[i].body.len);
		if (km_ec_hdr_get(dk->g, &v, KM_EC_KIND_DKG_COMPLAINTS) != 0
		    || km_buf_get_u32(&v, &who) != 0 || who != p
		    || km_buf_get_u32(&v, &m) != 0 || m > dk->np) {
			continue; /* a malformed complaint counts as none */
		}
		for (i2 = 0; i2 < m; i2++) {
			if (km_buf_get_u32(&v, &d) != 0 || d == 0
			    || d > dk->np) {
				break;
			}
			dk->cmpl[(size_t)(p - 1) * dk->np + (d - 1)] = 1;
		}
	}
	/* Answer: reveal the shares of every complainer against us. */
	for (p = 1; p <= dk->np; p++) {
		if (dk->cmpl[(size_t)(p - 1) * dk->np + (dk->self - 1)]) {
			nshares += km_dkg_count_owned(dk, p);
		}
	}
	r = KM_ERR_ALLOC;
	if ((b = km_ec_msgs_add(out, dk->self, 0, false)) == NULL
	    || km_ec_hdr_put(dk->g, b, KM_EC_KIND_DKG_ANSWER) != 0
	    || km_buf_put_u32(b, dk->self) != 0
	    || km_buf_put_u32(b, nshares) != 0) {
		goto out;
	}
	for (p = 1; p <= dk->np; p++) {
		if (dk->cmpl[(size_t)(p - 1) * dk->np + (dk->self - 1)]
		    && (r = km_dkg_put_shares_of(dk, b, p)) != 0) {
			goto out;
		}
	}
	dk->state = KM_DKG_ANSWERED;
	r = 0;
out:
	free(got);
	return r;
}

/*
 * Checks dealer @d's ANSWER: it must reveal, for every complainer, shares
 * that satisfy the dealer's Pedersen commitments.  Revealed shares for this
 * party's own indices replace the ones it complained about.
 */
static int
km_dkg_check_answer(km_ec_dkg *dk, uint32_t d, km_buf *v)
{
	BIGNUM *s = NULL, *sp = NULL;
	uint8_t need[KM_EC_MAX_INDEX + 1], seen[KM_EC_MAX_INDEX + 1];
	uint32_t p, j = 0, m = 0, i, nneed = 0;
	int r;

	memset(need, 0, sizeof(need));
	memset(seen, 0, sizeof(seen));
	for (p = 1; p <= dk->np; p++) {
		if (!dk->cmpl[(size_t)(p - 1) * dk->np + (d - 1)]) {
			continue;
		}
		for (j = 1; j <= dk->n; j++) {
			if (dk->owner[j - 1] == p) {
				need[j] = 1;
				nneed++;
			}
		}
	}
	if (km_ec_hdr_get(dk->g, v, KM_EC_KIND_DKG_ANSWER) != 0
	    || km_buf_get_u32(v, &p) != 0 || p != d
	    || km_buf_get_u32(v, &m) != 0 || m != nneed) {
		return KM_ERR_VERIFY;
	}
	for (i = 0; i < m; i++) {
		if (km_buf_get_u32(v, &j) != 0 || j == 0 || j > dk->n
		    || !need[j] || seen[j]) {
			r = KM_ERR_VERIFY;
			goto out;
		}
		seen[j] = 1;
		if (km_ec_scalar_get(dk->g, v, true, false, &s) != 0
		    || km_ec_scalar_get(dk->g, v, true, false, &sp) != 0) {
			r = KM_ERR_VERIFY;
			goto out;
		}
		r = km_pedersen_verify(dk->g, dk->e[d - 1], j, s, sp);
		if (r != 0) {
			goto out;
		}
		if (dk->owner[j - 1] == dk->self) {
			BN_clear_free(dk->s[SLOT(d, j)]);
			BN_clear_free(dk->sp[SLOT(d, j)]);
			dk->s[SLOT(d, j)] = s;
			dk->sp[SLOT(d, j)] = sp;
		} else {
			BN_clear_free(s);
			BN_clear_free(sp);
		}
		s = sp = NULL;
	}
	r = km_buf_remaining(v) == 0 ? 0 : KM_ERR_VERIFY;
out:
	BN_clear_free(s);
	BN_clear_free(sp);
	return r;
}

int
km_ec_dkg_round4(
    km_ec_dkg *dk, const km_ec_msg *in, size_t nmsg, km_ec_msgs *out)
{
	const km_ec_msg **answers = NULL;
	km_ec_commits *a = NULL;
	uint32_t d, p, nq = 0;
	bool any;
	km_buf v, *b;
	size_t i;
	int r;

	if (dk->state != KM_DKG_ANSWERED) {
		return KM_ERR_STATE;
	}
	if ((answers = calloc(dk->np, sizeof(*answers))) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < nmsg; i++) {
		d = in[i].from;
		if (d == 0 || d > dk->np || in[i].to != 0
		    || answers[d - 1] != NULL
		    || km_ec_msg_kind(&in[i]) != KM_EC_KIND_DKG_ANSWER) {
			continue;
		}
		answers[d - 1] = &in[i];
	}
	/*
	 * QUAL (GJKR step 1(d)): a dealer is disqualified when its commitment
	 * is missing or malformed, or when it failed to answer a complaint
	 * with shares that satisfy its commitment.  Only broadcast data is
	 * used, so every honest party computes the same QUAL.
	 */
	for (d = 1; d <= dk->np; d++) {
		dk->qual[d - 1] = dk->e[d - 1] != NULL;
		if (!dk->qual[d - 1]) {
			continue;
		}
		any = false;
		for (p = 1; p <= dk->np; p++) {
			any = any
			    || dk->cmpl[(size_t)(p - 1) * dk->np + d - 1];
		}
		if (!any) {
			continue;
		}
		if (answers[d - 1] == NULL) {
			dk->qual[d - 1] = 0;
			continue;
		}
		km_buf_init_view(
		    &v, answers[d - 1]->body.data, answers[d - 1]->body.len);
		r = km_dkg_check_answer(dk, d, &v);
		if (r == KM_ERR_VERIFY) {
			dk->qual[d - 1] = 0;
		} else if (r != 0) {
			goto out;
		}
	}
	for (d = 1; d <= dk->np; d++) {
		if (!dk->qual[d - 1]) {
			km_dkg_clear_shares(dk, d);
		}
		nq += dk->qual[d - 1];
	}
	if (nq == 0) {
		r = KM_ERR_QUORUM;
		goto out;
	}
	/* Phase 2 (GJKR step 4): A_l = a_l*G, published only now. */
	if (dk->qual[dk->self - 1]) {
		if ((r = km_feldman_commit(dk->g, dk->f, &a)) != 0) {
			goto out;
		}
		r = KM_ERR_ALLOC;
		if ((b = km_ec_msgs_add(out, dk->self, 0, false)) == NULL
		    || km_ec_hdr_put(dk->g, b, KM_EC_KIND_DKG_FELDMAN) != 0
		    || km_buf_put_u32(b, dk->self) != 0
		    || km_ec_commits_put(dk->g, b, a) != 0) {
			goto out;
		}
	}
	dk->state = KM_DKG_QUALIFIED;
	r = 0;
out:
	km_ec_commits_free(a);
	free(answers);
	return r;
}

int
km_ec_dkg_finish(km_ec_dkg *dk, const km_ec_msg *in, size_t nmsg,
    km_ec_share ***shares, size_t *nshares, km_ec_pub **pub, uint32_t *culprit)
{
	km_ec_commits **a = NULL, *sum = NULL;
	km_ec_share **sh = NULL, tmp;
	km_ec_pub *pb = NULL;
	BN_CTX *ctx = NULL;
	uint32_t d, dealer, j, l;
	size_t i, m = 0;
	km_buf v;
	int r;

	*shares = NULL;
	*nshares = 0;
	*pub = NULL;
	if (culprit != NULL) {
		*culprit = 0;
	}
	if (dk->state != KM_DKG_QUALIFIED) {
		return KM_ERR_STATE;
	}
	if ((a = calloc(dk->np, sizeof(*a))) == NULL
	    || (ctx = BN_CTX_secure_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < nmsg; i++) {
		d = in[i].from;
		if (d == 0 || d > dk->np || in[i].to != 0 || !dk->qual[d - 1]
		    || a[d - 1] != NULL
		    || km_ec_msg_kind(&in[i]) != KM_EC_KIND_DKG_FELDMAN) {
			continue;
		}
		km_buf_init_view(&v, in[i].body.data, in[i].body.len);
		if (km_ec_hdr_get(dk->g, &v, KM_EC_KIND_DKG_FELDMAN) != 0
		    || km_buf_get_u32(&v, &dealer) != 0 || dealer != d
		    || km_ec_commits_get(dk->g, &v, dk->k, &a[d - 1]) != 0
		    || km_buf_remaining(&v) != 0) {
			km_ec_commits_free(a[d - 1]);
			a[d - 1] = NULL;
		}
	}
	/* Every QUAL dealer's A_l must match the shares it dealt us. */
	for (d = 1; d <= dk->np; d++) {
		if (!dk->qual[d - 1]) {
			continue;
		}
		if (a[d - 1] == NULL) {
			if (culprit != NULL) {
				*culprit = d;
			}
			r = KM_ERR_QUORUM;
			goto out;
		}
		for (j = 1; j <= dk->n; j++) {
			if (dk->owner[j - 1] != dk->self) {
				continue;
			}
			tmp.index = j;
			tmp.x = dk->s[SLOT(d, j)];
			if (tmp.x == NULL) {
				r = KM_ERR_INTERNAL;
				goto out;
			}
			r = km_feldman_verify(dk->g, a[d - 1], &tmp);
			if (r == KM_ERR_VERIFY && culprit != NULL) {
				*culprit = d;
			}
			if (r != 0) {
				goto out;
			}
		}
	}
	/* C_l = sum over QUAL of A_{d,l}; Y = C_0, vk_j = sum_l C_l j^l. */
	if ((r = km_ec_commits_new(dk->g, dk->k, &sum)) != 0) {
		goto out;
	}
	for (l = 0; l < dk->k; l++) {
		if (EC_POINT_set_to_infinity(dk->g->group, sum->c[l])
		    != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
		for (d = 1; d <= dk->np; d++) {
			if (dk->qual[d - 1]
			    && EC_POINT_add(dk->g->group, sum->c[l], sum->c[l],
			           a[d - 1]->c[l], ctx)
			        != RET_OSSL_OK) {
				r = KM_ERR_CRYPTO;
				goto out;
			}
		}
	}
	if ((r = km_ec_pub_new(dk->g, dk->k, dk->n, &pb)) != 0
	    || (r = km_ec_pub_from_commits(dk->g, sum, pb)) != 0) {
		goto out;
	}
	if (EC_POINT_is_at_infinity(dk->g->group, pb->y)) {
		r = KM_ERR_CRYPTO; /* probability 1/q, or all dealers colluded
		                    */
		goto out;
	}
	if ((sh = calloc(dk->nmine, sizeof(*sh))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (j = 1; j <= dk->n; j++) {
		if (dk->owner[j - 1] != dk->self) {
			continue;
		}
		if ((r = km_ec_share_new(j, &sh[m])) != 0) {
			goto out;
		}
		m++;
		for (d = 1; d <= dk->np; d++) {
			if (dk->qual[d - 1]
			    && BN_mod_add(sh[m - 1]->x, sh[m - 1]->x,
			           dk->s[SLOT(d, j)], dk->g->order, ctx)
			        != RET_OSSL_OK) {
				r = KM_ERR_CRYPTO;
				goto out;
			}
		}
		/* Self-check: our share must match its verification key. */
		if ((r = km_ec_share_check(dk->g, pb, sh[m - 1])) != 0) {
			r = KM_ERR_INTERNAL;
			goto out;
		}
	}
	*shares = sh;
	sh = NULL;
	*nshares = m;
	*pub = pb;
	pb = NULL;
	dk->state = KM_DKG_DONE;
	/* The polynomials are no longer needed: wipe them now. */
	km_shamir_poly_free(dk->f);
	km_shamir_poly_free(dk->fp);
	dk->f = dk->fp = NULL;
	r = 0;
out:
	for (d = 1; a != NULL && d <= dk->np; d++) {
		km_ec_commits_free(a[d - 1]);
	}
	free(a);
	km_ec_commits_free(sum);
	km_ec_shares_free(sh, m);
	km_ec_pub_free(pb);
	BN_CTX_free(ctx);
	return r;
}
