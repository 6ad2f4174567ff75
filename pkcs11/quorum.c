/*
 * The hot path: one private-key operation fanned out to a key's holders.
 *
 * DESIGN.md §3: rank the holders by recent failures and measured round
 * trip, send the request to the best ones that together hold k share
 * indices, in parallel over the persistent connections (asynchronous
 * km_net calls), and ask a spare only when a holder fails, returns a bad
 * partial, or is late (hedging: after the configured hedge_ms, or 4x the
 * slowest chosen holder's average round trip, at least 20 ms).  The first
 * k valid partials are combined and the result verified before it is
 * returned: Shoup's combination checks y^e = x and the signature with the
 * public key (km_rsa_sign_combine), and names bad partials by their
 * proofs; threshold ECDH checks every Chaum-Pedersen proof
 * (km_ecdh_combine).  A holder with a bad partial is named in the log and
 * avoided for a minute.  When fewer than k holders answer before the
 * timeout ([client] timeout_ms), the operation fails with KM_ERR_QUORUM
 * and one log line naming the missing holders.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/ec_ecdh.h"
#include "crypto/rsa.h"
#include "mesh/ops.h"
#include "mesh/rpc.h"
#include "pkcs11/p11.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

#define KM_P11_BAD_AVOID_MS  60000u
#define KM_P11_FAIL_DECAY_MS 30000u
#define KM_P11_HEDGE_MIN_MS  20u
#define KM_P11_RTT_HALF_MS   10000u

typedef struct km_p11_q km_p11_q;

typedef struct km_p11_slot {
	km_p11_q *q;
	size_t node;
	uint32_t idx[KM_PROTO_MAX_INDICES];
	size_t nidx;
	double score;
	km_net_call *call;
	km_buf req;
	int state; /* 0 idle, 1 in flight, 2 completed, 3 processed */
	int r;
	uint64_t start_ns;
	bool retried; /* asked again after a fresh login */
	char why[96];
} km_p11_slot;

struct km_p11_q {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	km_p11_slot slots[KM_MESH_MAX_NODES];
	size_t nslots;
	uint32_t type; /* KM_MSG_RSA_PARTIAL or KM_MSG_ECDH_PARTIAL */
};

/* ---- ranking ---- */

static double
km_p11_score(size_t node, uint64_t now)
{
	km_p11_node_stat *st = &km_p11.stat[node];
	/* never measured: first in line, so its round trip gets known
	 * (a node that came back is tried at once, not left at a guess) */
	double s = st->rtt_ms > 0 ? st->rtt_ms : 0.0;
	uint64_t halves;

	/*
	 * An estimate ages: halved for every KM_P11_RTT_HALF_MS without a
	 * new measurement, so a node that was slow (and so is no longer
	 * asked) is tried again now and then, and the quorum comes back to
	 * it once it is fast again.
	 */
	if (st->rtt_ms > 0 && now > st->rtt_at_ms + KM_P11_RTT_HALF_MS) {
		halves = (now - st->rtt_at_ms) / KM_P11_RTT_HALF_MS;
		s /= (double)(1u << (halves > 16 ? 16 : halves));
	}
	if (st->bad_until_ms > now) {
		s += 1e9;
	}
	if (st->fails > 0 && now - st->last_fail_ms > KM_P11_FAIL_DECAY_MS) {
		st->fails = 0;
	}
	s += 100.0 * st->fails;
	if (!km_net_client_connected(km_mesh_client(km_p11.mesh, node))) {
		s += 1e6;
	}
	return s;
}

static int
km_p11_slot_cmp(const void *a, const void *b)
{
	const km_p11_slot *x = a, *y = b;

	return x->score < y->score ? -1 : x->score > y->score ? 1 : 0;
}

/* Groups the key's holders by node and ranks the nodes. */
static void
km_p11_plan(km_p11_q *q, const km_p11_key *key)
{
	size_t i, j;
	uint64_t now = km_now_ms();

	q->nslots = 0;
	for (i = 0; i < key->nholders; i++) {
		if (key->node[i] < 0) {
			continue;
		}
		/* quarantined by the coordinator: not asked at all (read
		 * unlocked: a verdict one view sync late is harmless, the
		 * node refuses partials itself) */
		if (km_p11.stat[key->node[i]].quarantined) {
			continue;
		}
		for (j = 0; j < q->nslots; j++) {
			if (q->slots[j].node == (size_t)key->node[i]) {
				break;
			}
		}
		if (j == q->nslots) {
			if (q->nslots == KM_MESH_MAX_NODES) {
				continue;
			}
			memset(&q->slots[j], 0, sizeof(q->slots[j]));
			q->slots[j].node = (size_t)key->node[i];
			q->nslots++;
		}
		if (q->slots[j].nidx < KM_PROTO_MAX_INDICES) {
			q->slots[j].idx[q->slots[j].nidx++] = key->index[i];
		}
	}
	pthread_mutex_lock(&km_p11.stat_lock);
	for (j = 0; j < q->nslots; j++) {
		q->slots[j].score = km_p11_score(q->slots[j].node, now);
	}
	pthread_mutex_unlock(&km_p11.stat_lock);
	qsort(q->slots, q->nslots, sizeof(q->slots[0]), km_p11_slot_cmp);
	for (j = 0; j < q->nslots; j++) {
		q->slots[j].q = q;
		km_buf_init(&q->slots[j].req);
	}
}

static void
km_p11_stat_ok(size_t node, uint64_t ns)
{
	km_p11_node_stat *st = &km_p11.stat[node];
	double ms = (double)ns / 1e6;

	pthread_mutex_lock(&km_p11.stat_lock);
	st->rtt_ms = st->rtt_ms > 0 ? 0.8 * st->rtt_ms + 0.2 * ms : ms;
	st->rtt_at_ms = km_now_ms();
	st->calls++;
	pthread_mutex_unlock(&km_p11.stat_lock);
}

/*
 * A holder still busy when the operation completed without it (a spare
 * answered first): its round trip is at least @ns.  Without this a slow
 * holder that is always cancelled would keep its old, fast estimate and
 * stay in every first choice (issue #8 item 4).
 */
static void
km_p11_stat_late(size_t node, uint64_t ns)
{
	km_p11_node_stat *st = &km_p11.stat[node];
	double ms = (double)ns / 1e6;

	pthread_mutex_lock(&km_p11.stat_lock);
	if (ms > st->rtt_ms) {
		st->rtt_ms = ms;
	}
	st->rtt_at_ms = km_now_ms();
	pthread_mutex_unlock(&km_p11.stat_lock);
}

static void
km_p11_stat_fail(size_t node, bool bad)
{
	km_p11_node_stat *st = &km_p11.stat[node];
	uint64_t now = km_now_ms();

	pthread_mutex_lock(&km_p11.stat_lock);
	st->fails++;
	st->last_fail_ms = now;
	if (bad) {
		st->bad++;
		st->bad_until_ms = now + KM_P11_BAD_AVOID_MS;
	}
	pthread_mutex_unlock(&km_p11.stat_lock);
}

/* ---- the calls ---- */

static void
km_p11_done(km_net_call *call, int r, void *arg)
{
	km_p11_slot *sl = arg;

	(void)call;
	pthread_mutex_lock(&sl->q->lock);
	sl->r = r;
	sl->state = 2;
	pthread_cond_broadcast(&sl->q->cv);
	pthread_mutex_unlock(&sl->q->lock);
}

/* Request builder: the body for one node, with its ticket. */
typedef int (*km_p11_build_fn)(void *arg, const uint8_t *ticket, km_buf *out);

static int
km_p11_start(km_p11_q *q, km_p11_slot *sl, km_p11_build_fn build, void *arg,
    uint64_t deadline_ns)
{
	uint8_t ticket[KM_PROTO_TICKET_LEN];
	uint64_t now = km_mono_ns();
	int r, ms;

	if (!km_p11_ticket(sl->node, ticket)) {
		snprintf(sl->why, sizeof(sl->why), "not logged in there");
		sl->r = KM_ERR_AUTH;
		sl->state = 3;
		return KM_ERR_AUTH;
	}
	km_buf_reset(&sl->req);
	r = build(arg, ticket, &sl->req);
	km_secret_wipe(ticket, sizeof(ticket));
	if (r == 0 && sl->call == NULL) {
		r = km_net_call_new(
		    km_mesh_client(km_p11.mesh, sl->node), &sl->call);
	}
	ms = deadline_ns > now ? (int)((deadline_ns - now) / 1000000u) : 1;
	pthread_mutex_lock(&q->lock);
	sl->state = 1;
	sl->start_ns = now;
	pthread_mutex_unlock(&q->lock);
	if (r == 0) {
		r = km_net_call_start(sl->call, sl->req.data, sl->req.len,
		    ms > 0 ? ms : 1, km_p11_done, sl);
	}
	if (r != 0) {
		pthread_mutex_lock(&q->lock);
		sl->r = r;
		sl->state = 2;
		pthread_mutex_unlock(&q->lock);
	}
	return r;
}

/* Starts the next idle slot; false when none is left. */
static bool
km_p11_start_spare(
    km_p11_q *q, km_p11_build_fn build, void *arg, uint64_t deadline_ns)
{
	size_t i;

	for (i = 0; i < q->nslots; i++) {
		if (q->slots[i].state == 0) {
			if (km_p11_start(
			        q, &q->slots[i], build, arg, deadline_ns)
			    == KM_ERR_AUTH) {
				continue;
			}
			return true;
		}
	}
	return false;
}

static void
km_p11_q_cleanup(km_p11_q *q)
{
	size_t i;

	uint64_t now = km_mono_ns();
	int state;

	for (i = 0; i < q->nslots; i++) {
		if (q->slots[i].call != NULL) {
			pthread_mutex_lock(&q->lock);
			state = q->slots[i].state;
			pthread_mutex_unlock(&q->lock);
			if (state == 1) {
				km_p11_stat_late(q->slots[i].node,
				    now - q->slots[i].start_ns);
			}
			/* cancels a late one and waits for its callback */
			km_net_call_free(q->slots[i].call);
		}
		km_buf_free(&q->slots[i].req);
	}
}

/* One line naming the holders that did not give a usable answer. */
static void
km_p11_log_missing(
    km_p11_q *q, const km_p11_key *key, size_t have, size_t need)
{
	char line[800];
	size_t i, off = 0;

	line[0] = '\0';
	for (i = 0; i < q->nslots && off < sizeof(line); i++) {
		const km_p11_slot *sl = &q->slots[i];
		const char *why;

		if (sl->state == 3 && sl->r == 0 && sl->why[0] == '\0') {
			continue;
		}
		why = sl->why[0] != '\0' ? sl->why
		    : sl->state == 1     ? "no answer in time"
		    : sl->state == 0     ? "not asked (spare)"
		                         : km_strerror(sl->r);
		off += (size_t)snprintf(line + off, sizeof(line) - off,
		    "%s%s (%s)", off > 0 ? ", " : "",
		    km_mesh_name(km_p11.mesh, sl->node), why);
	}
	km_log_error("P11-QUORUM",
	    "key %s: %zu of %zu partials within %u ms; missing: %s",
	    key->key_id, have, need, km_p11.conf.timeout_ms,
	    line[0] != '\0' ? line : "none");
}

static uint64_t
km_p11_hedge_ns(const km_p11_q *q)
{
	double worst = 0;
	size_t i;
	uint64_t ms;

	if (km_p11.conf.hedge_ms > 0) {
		return (uint64_t)km_p11.conf.hedge_ms * 1000000u;
	}
	pthread_mutex_lock(&km_p11.stat_lock);
	for (i = 0; i < q->nslots; i++) {
		if (km_p11.stat[q->slots[i].node].rtt_ms > worst) {
			worst = km_p11.stat[q->slots[i].node].rtt_ms;
		}
	}
	pthread_mutex_unlock(&km_p11.stat_lock);
	ms = (uint64_t)(4 * worst);
	return (ms < KM_P11_HEDGE_MIN_MS ? KM_P11_HEDGE_MIN_MS : ms)
	    * 1000000u;
}

static void
km_p11_abstime(uint64_t mono_ns, struct timespec *ts)
{
	struct timespec now;
	uint64_t cur = km_mono_ns(), wait = mono_ns > cur ? mono_ns - cur : 0;

	clock_gettime(CLOCK_REALTIME, &now);
	ts->tv_sec = now.tv_sec + (time_t)(wait / 1000000000u);
	ts->tv_nsec = now.tv_nsec + (long)(wait % 1000000000u);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/*
 * The operation-specific part: take a node's reply (partials), and try
 * to combine what has been collected.
 */
typedef struct km_p11_ops {
	km_p11_build_fn build;
	/* 0, or an error that marks the node failed (bad reply) */
	int (*take)(void *arg, km_p11_slot *sl, km_buf *reply);
	/* usable partials collected so far */
	size_t (*count)(void *arg);
	/*
	 * 0 done; KM_ERR_BAD_PARTIAL with @bad (share index bit mask or
	 * list) filled: drop those and go on; another error: stop.
	 */
	int (*combine)(void *arg, uint64_t *badmask);
	void (*drop)(void *arg, uint32_t index);
} km_p11_ops;

static const char *
km_p11_node_of_index(km_p11_q *q, uint32_t index, size_t *node)
{
	size_t i, j;

	for (i = 0; i < q->nslots; i++) {
		for (j = 0; j < q->slots[i].nidx; j++) {
			if (q->slots[i].idx[j] == index) {
				*node = q->slots[i].node;
				return km_mesh_name(
				    km_p11.mesh, q->slots[i].node);
			}
		}
	}
	return NULL;
}

static int
km_p11_run(
    km_p11_q *q, const km_p11_key *key, const km_p11_ops *ops, void *arg)
{
	uint64_t deadline, hedge_at, hedge;
	size_t need = key->threshold, i, busy, have, node, planned;
	uint64_t badmask;
	struct timespec ts;
	km_buf reply;
	const uint8_t *body;
	size_t blen;
	char msg[KM_PROTO_MESSAGE_MAX];
	const char *name;
	int r, result = KM_ERR_QUORUM;
	bool progress, stale = false;

	deadline = km_mono_ns() + (uint64_t)km_p11.conf.timeout_ms * 1000000u;
	hedge = km_p11_hedge_ns(q);
	hedge_at = km_mono_ns() + hedge;
	/* the best holders that together hold k indices */
	planned = 0;
	for (i = 0; i < q->nslots && planned < need; i++) {
		if (km_p11_start(q, &q->slots[i], ops->build, arg, deadline)
		    == 0) {
			planned += q->slots[i].nidx;
		}
	}
	for (;;) {
		/* take what completed */
		progress = false;
		for (i = 0; i < q->nslots; i++) {
			km_p11_slot *sl = &q->slots[i];

			pthread_mutex_lock(&q->lock);
			r = sl->state == 2 ? sl->r : 1;
			if (sl->state == 2) {
				sl->state = 3;
			}
			pthread_mutex_unlock(&q->lock);
			if (r == 1) {
				continue;
			}
			progress = true;
			if (r == 0
			    && km_net_call_reply(sl->call, &body, &blen, NULL)
			        == 0
			    && (r = km_rpc_reply_parse(q->type, body, blen,
			            &reply, msg, sizeof(msg)))
			        == 0) {
				r = ops->take(arg, sl, &reply);
				if (r != 0) {
					snprintf(sl->why, sizeof(sl->why),
					    "malformed partials: %s",
					    km_strerror(r));
				}
			} else if (r != 0 && sl->why[0] == '\0') {
				snprintf(sl->why, sizeof(sl->why), "%s",
				    km_strerror(r));
			} else if (r != 0) {
				/* keep the first reason */
			} else {
				snprintf(sl->why, sizeof(sl->why), "%s", msg);
				r = KM_ERR_BAD_FORMAT;
			}
			sl->r = r;
			if (r == 0) {
				km_p11_stat_ok(
				    sl->node, km_mono_ns() - sl->start_ns);
			} else {
				if (r == KM_ERR_AUTH && !sl->retried) {
					/*
					 * Its ticket is gone (the node
					 * restarted): drop it and let the
					 * slot be asked again; starting it
					 * logs in there first.
					 */
					km_p11_ticket_drop(sl->node);
					pthread_mutex_lock(&q->lock);
					sl->state = 0;
					sl->retried = true;
					sl->why[0] = '\0';
					pthread_mutex_unlock(&q->lock);
				}
				if (r == KM_ERR_POLICY || r == KM_ERR_PIN) {
					/* every holder would say the same */
					result = r;
				}
				/* a new epoch (or a skewed clock): asks
				 * the caller to refresh the view if the
				 * quorum fails */
				stale |= r == KM_ERR_STALE;
				km_p11_stat_fail(sl->node, false);
			}
		}
		have = ops->count(arg);
		if (progress && have >= need) {
			badmask = 0;
			r = ops->combine(arg, &badmask);
			for (i = 0; i < 64; i++) {
				if (!(badmask & ((uint64_t)1 << i))) {
					continue;
				}
				ops->drop(arg, (uint32_t)i);
				name = km_p11_node_of_index(
				    q, (uint32_t)i, &node);
				if (name != NULL) {
					km_p11_stat_fail(node, true);
				}
				km_log_error("P11-BAD-PARTIAL",
				    "key %s: holder %s returned a bad partial "
				    "for share index %u; avoiding it",
				    key->key_id, name != NULL ? name : "?",
				    (unsigned)i);
			}
			if (r == 0) {
				result = 0;
				break;
			}
			if (badmask == 0
			    && (r == KM_ERR_QUORUM
			        || r == KM_ERR_BAD_PARTIAL)) {
				/* a bad partial that no proof names: only
				 * more partials (a subset search) help */
				need = have + 1;
			} else if (badmask == 0) {
				result = r;
				break;
			}
			have = ops->count(arg);
		}
		if (result == KM_ERR_POLICY || result == KM_ERR_PIN) {
			break;
		}
		/* enough in flight? otherwise ask spares */
		busy = 0;
		pthread_mutex_lock(&q->lock);
		for (i = 0; i < q->nslots; i++) {
			if (q->slots[i].state == 1 || q->slots[i].state == 2) {
				busy += q->slots[i].nidx;
			}
		}
		pthread_mutex_unlock(&q->lock);
		while (have + busy < need
		    && km_p11_start_spare(q, ops->build, arg, deadline)) {
			busy = need; /* re-counted next round */
		}
		if (have + busy < need && busy == 0) {
			break; /* nobody left to ask */
		}
		if (km_mono_ns() >= deadline) {
			break;
		}
		if (km_mono_ns() >= hedge_at) {
			/* late holders: one more spare per hedge period */
			(void)km_p11_start_spare(q, ops->build, arg, deadline);
			hedge_at += hedge;
		}
		pthread_mutex_lock(&q->lock);
		for (i = 0; i < q->nslots; i++) {
			if (q->slots[i].state == 2) {
				break;
			}
		}
		if (i == q->nslots) {
			km_p11_abstime(
			    hedge_at < deadline ? hedge_at : deadline, &ts);
			(void)pthread_cond_timedwait(&q->cv, &q->lock, &ts);
		}
		pthread_mutex_unlock(&q->lock);
	}
	if (result == KM_ERR_QUORUM && stale) {
		return KM_ERR_STALE;
	}
	if (result == KM_ERR_QUORUM) {
		km_p11_log_missing(q, key, ops->count(arg), need);
	}
	return result;
}

/* ---- RSA ---- */

typedef struct km_p11_rsa_job {
	const km_p11_key *key;
	km_ops_rsa_req req;
	uint8_t xbuf[KM_RSA_MAX_BITS / 8];
	BIGNUM *x;
	const km_rsa_mech *m;
	const uint8_t *in;
	size_t inlen;
	uint32_t kind;
	km_rsa_partial *parts[KM_RSA_MAX_HOLDERS + 1];
	size_t nparts;
	uint8_t *out;
	size_t *outlen;
} km_p11_rsa_job;

static int
km_p11_rsa_build(void *arg, const uint8_t *ticket, km_buf *out)
{
	km_p11_rsa_job *j = arg;

	return km_ops_rsa_request(&j->req, ticket, out);
}

static int
km_p11_rsa_take(void *arg, km_p11_slot *sl, km_buf *reply)
{
	km_p11_rsa_job *j = arg;
	km_indexed_blob v[KM_PROTO_MAX_INDICES];
	km_rsa_partial *p = NULL;
	size_t n, i, k;
	bool ours;
	int r;

	if ((r = km_ops_partials_parse(reply, v, KM_PROTO_MAX_INDICES, &n))
	    != 0) {
		return r;
	}
	for (i = 0; i < n; i++) {
		ours = false;
		for (k = 0; k < sl->nidx; k++) {
			ours |= sl->idx[k] == v[i].index;
		}
		if (!ours) {
			return KM_ERR_BAD_PARTIAL;
		}
		if ((r = km_rsa_partial_decode(
		         j->key->rsa, v[i].data, v[i].len, &p))
		    != 0) {
			return r;
		}
		if (km_rsa_partial_index(p) != v[i].index
		    || j->nparts >= KM_RSA_MAX_HOLDERS) {
			km_rsa_partial_free(p);
			return KM_ERR_BAD_PARTIAL;
		}
		for (k = 0; k < j->nparts; k++) {
			if (km_rsa_partial_index(j->parts[k]) == v[i].index) {
				break;
			}
		}
		if (k < j->nparts) {
			km_rsa_partial_free(p); /* a duplicate */
			continue;
		}
		j->parts[j->nparts++] = p;
	}
	return 0;
}

static size_t
km_p11_rsa_count(void *arg)
{
	return ((km_p11_rsa_job *)arg)->nparts;
}

static int
km_p11_rsa_combine(void *arg, uint64_t *badmask)
{
	km_p11_rsa_job *j = arg;
	uint32_t bad = 0;
	int r;

	if (j->kind == KM_OPS_SIGN) {
		r = km_rsa_sign_combine(j->key->rsa, j->m, j->in, j->inlen,
		    j->x, j->parts, j->nparts, j->out, j->outlen, &bad);
	} else {
		r = km_rsa_decrypt_combine(j->key->rsa, j->m, j->x, j->parts,
		    j->nparts, j->out, j->outlen, &bad);
	}
	*badmask = bad;
	if (r != 0 && bad == 0
	    && (r == KM_ERR_QUORUM || r == KM_ERR_BAD_PARTIAL)) {
		/* not enough good ones yet: wait for more */
		*badmask = 0;
	}
	return r;
}

static void
km_p11_rsa_drop(void *arg, uint32_t index)
{
	km_p11_rsa_job *j = arg;
	size_t i;

	for (i = 0; i < j->nparts; i++) {
		if (km_rsa_partial_index(j->parts[i]) == index) {
			km_rsa_partial_free(j->parts[i]);
			j->parts[i] = j->parts[--j->nparts];
			return;
		}
	}
}

int
km_p11_quorum_rsa(km_p11_key *key, uint32_t kind, CK_MECHANISM_TYPE mech,
    const km_rsa_mech *m, const uint8_t *in, size_t inlen, uint8_t *out,
    size_t *outlen)
{
	static const km_p11_ops ops = { km_p11_rsa_build, km_p11_rsa_take,
		km_p11_rsa_count, km_p11_rsa_combine, km_p11_rsa_drop };
	km_p11_q q;
	km_p11_rsa_job j;
	size_t modlen = (size_t)(km_rsa_pub_bits(key->rsa) + 7) / 8, i;
	int r;

	memset(&j, 0, sizeof(j));
	memset(&q, 0, sizeof(q));
	j.key = key;
	j.m = m;
	j.in = in;
	j.inlen = inlen;
	j.kind = kind;
	j.out = out;
	j.outlen = outlen;
	r = kind == KM_OPS_SIGN
	    ? km_rsa_sign_prepare(key->rsa, m, in, inlen, &j.x)
	    : km_rsa_decrypt_prepare(key->rsa, in, inlen, &j.x);
	if (r != 0) {
		return r;
	}
	if (BN_bn2binpad(j.x, j.xbuf, (int)modlen) != (int)modlen) {
		BN_free(j.x);
		return KM_ERR_INTERNAL;
	}
	j.req.key_id = key->key_id;
	j.req.epoch = key->epoch;
	j.req.mech = (uint32_t)mech;
	j.req.kind = kind;
	j.req.hash = (uint32_t)m->hash;
	j.req.mgf1_hash = (uint32_t)m->mgf1_hash;
	j.req.salt_len = m->pad == KM_RSA_PAD_PSS ? (uint32_t)m->salt_len : 0;
	j.req.aux = kind == KM_OPS_SIGN ? in : NULL;
	j.req.auxlen = kind == KM_OPS_SIGN ? inlen : 0;
	j.req.x = j.xbuf;
	j.req.xlen = modlen;
	/*
	 * Optimistic: no proofs on the hot path (they cost each holder more
	 * than the partial itself; measured 3x the latency).  The combined
	 * result is checked anyway (y^e = x, then the signature or the
	 * padding); when it fails, a spare is asked and Shoup's combiner
	 * searches the k-subsets of the k+1 partials for the correct one,
	 * which also names the bad holder.
	 */
	j.req.with_proof = false;
	pthread_mutex_init(&q.lock, NULL);
	pthread_cond_init(&q.cv, NULL);
	q.type = KM_MSG_RSA_PARTIAL;
	km_p11_plan(&q, key);
	r = km_p11_run(&q, key, &ops, &j);
	km_p11_q_cleanup(&q);
	pthread_cond_destroy(&q.cv);
	pthread_mutex_destroy(&q.lock);
	for (i = 0; i < j.nparts; i++) {
		km_rsa_partial_free(j.parts[i]);
	}
	/* for a decryption x is the ciphertext, for a signature public */
	BN_free(j.x);
	return r;
}

/* ---- ECDH ---- */

typedef struct km_p11_ecdh_job {
	const km_p11_key *key;
	const uint8_t *point;
	size_t pointlen;
	EC_POINT *peer;
	km_ec_partial *parts[KM_EC_MAX_INDEX];
	size_t nparts;
	uint8_t *out;
	size_t outlen, *written;
} km_p11_ecdh_job;

static int
km_p11_ecdh_build(void *arg, const uint8_t *ticket, km_buf *out)
{
	km_p11_ecdh_job *j = arg;

	return km_ops_ecdh_request(j->key->key_id, j->key->epoch,
	    CKM_ECDH1_DERIVE, j->point, j->pointlen, ticket, out);
}

static int
km_p11_ecdh_take(void *arg, km_p11_slot *sl, km_buf *reply)
{
	km_p11_ecdh_job *j = arg;
	km_indexed_blob v[KM_PROTO_MAX_INDICES];
	km_ec_partial *p = NULL;
	size_t n, i, k;
	bool ours;
	int r;

	if ((r = km_ops_partials_parse(reply, v, KM_PROTO_MAX_INDICES, &n))
	    != 0) {
		return r;
	}
	for (i = 0; i < n; i++) {
		ours = false;
		for (k = 0; k < sl->nidx; k++) {
			ours |= sl->idx[k] == v[i].index;
		}
		if (!ours) {
			return KM_ERR_BAD_PARTIAL;
		}
		if ((r = km_ec_partial_decode(
		         j->key->group, v[i].data, v[i].len, &p))
		    != 0) {
			return r;
		}
		if (p->index != v[i].index || j->nparts >= KM_EC_MAX_INDEX) {
			km_ec_partial_free(p);
			return KM_ERR_BAD_PARTIAL;
		}
		for (k = 0; k < j->nparts; k++) {
			if (j->parts[k]->index == p->index) {
				break;
			}
		}
		if (k < j->nparts) {
			km_ec_partial_free(p);
			continue;
		}
		j->parts[j->nparts++] = p;
	}
	return 0;
}

static size_t
km_p11_ecdh_count(void *arg)
{
	return ((km_p11_ecdh_job *)arg)->nparts;
}

static int
km_p11_ecdh_combine(void *arg, uint64_t *badmask)
{
	km_p11_ecdh_job *j = arg;
	uint32_t bad[KM_EC_MAX_INDEX];
	size_t nbad = 0, i;
	int r;

	r = km_ecdh_combine(j->key->group, j->key->ec, j->peer, j->parts,
	    j->nparts, j->out, j->outlen, j->written, bad, &nbad);
	*badmask = 0;
	for (i = 0; i < nbad; i++) {
		if (bad[i] < 64) {
			*badmask |= (uint64_t)1 << bad[i];
		}
	}
	return r;
}

static void
km_p11_ecdh_drop(void *arg, uint32_t index)
{
	km_p11_ecdh_job *j = arg;
	size_t i;

	for (i = 0; i < j->nparts; i++) {
		if (j->parts[i]->index == index) {
			km_ec_partial_free(j->parts[i]);
			j->parts[i] = j->parts[--j->nparts];
			return;
		}
	}
}

int
km_p11_quorum_ecdh(km_p11_key *key, const uint8_t *point, size_t pointlen,
    uint8_t *out, size_t outlen, size_t *written)
{
	static const km_p11_ops ops = { km_p11_ecdh_build, km_p11_ecdh_take,
		km_p11_ecdh_count, km_p11_ecdh_combine, km_p11_ecdh_drop };
	km_p11_q q;
	km_p11_ecdh_job j;
	size_t i;
	int r;

	memset(&j, 0, sizeof(j));
	memset(&q, 0, sizeof(q));
	if ((r = km_ec_point_from_octets(key->group, point, pointlen, &j.peer))
	    != 0) {
		return r;
	}
	j.key = key;
	j.point = point;
	j.pointlen = pointlen;
	j.out = out;
	j.outlen = outlen;
	j.written = written;
	pthread_mutex_init(&q.lock, NULL);
	pthread_cond_init(&q.cv, NULL);
	q.type = KM_MSG_ECDH_PARTIAL;
	km_p11_plan(&q, key);
	r = km_p11_run(&q, key, &ops, &j);
	km_p11_q_cleanup(&q);
	pthread_cond_destroy(&q.cv);
	pthread_mutex_destroy(&q.lock);
	for (i = 0; i < j.nparts; i++) {
		km_ec_partial_free(j.parts[i]);
	}
	EC_POINT_free(j.peer);
	return r;
}
