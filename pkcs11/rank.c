/*
 * The holders' cost (rank.h, docs/pkcs11.md "How holders are ranked").
 *
 * Why these terms: the module wants the k holders that answer first.  Its
 * own round-trip measurement is the best predictor, since it includes the
 * network between this client and the node, which no beacon can know; the
 * other terms stand in where the measurement is old or missing, and they
 * are scaled to the delay they predict, so that one number (milliseconds)
 * compares them.  A queued request waits for the ones ahead of it (about
 * one partial each); a low trust score means a higher chance of a bad or
 * missing partial, which costs a spare and a hedge delay.
 */
#include "config.h"

#include <math.h>

#include "pkcs11/rank.h"

bool
km_p11_rank_excluded(const km_p11_rank_in *in)
{
	return in->have_view
	    && (in->state == KM_TRUST_QUARANTINED
	        || in->state == KM_TRUST_EVICTED);
}

/* The measured round trip, aged; 0 when never measured. */
static double
km_p11_rank_rtt(const km_p11_rank_in *in, uint64_t now_ms)
{
	uint64_t halves;
	double s;

	/*
	 * Never measured: 0, first in line, so its round trip gets known (a
	 * node that came back is tried at once, not left at a guess).
	 */
	if (!(in->rtt_ms > 0)) {
		return 0.0;
	}
	s = in->rtt_ms;
	/*
	 * An estimate ages: halved for every KM_P11_RTT_HALF_MS without a
	 * new measurement, so a node that was slow (and so is no longer
	 * asked) is tried again now and then, and the quorum comes back to
	 * it once it is fast again.
	 */
	if (now_ms > in->rtt_at_ms + KM_P11_RTT_HALF_MS) {
		halves = (now_ms - in->rtt_at_ms) / KM_P11_RTT_HALF_MS;
		s /= (double)(1u << (halves > 16 ? 16 : halves));
	}
	return s;
}

/* What the view's trust score and load predict, in ms. */
static double
km_p11_rank_view(const km_p11_rank_in *in)
{
	double c = 0, q, l;
	uint32_t score;

	if (!in->have_view) {
		return 0.0;
	}
	score
	    = in->score > KM_TRUST_SCORE_MAX ? KM_TRUST_SCORE_MAX : in->score;
	c += KM_P11_COST_TRUST_MS * (double)(KM_TRUST_SCORE_MAX - score)
	    / (double)KM_TRUST_SCORE_MAX;
	/* load and links only from a fresh beacon: an unreachable node's
	 * last one is old news */
	if (in->state != KM_TRUST_UP) {
		return c;
	}
	q = KM_P11_COST_QUEUE_MS * (double)in->queue_depth;
	c += q < KM_P11_COST_QUEUE_CAP_MS ? q : KM_P11_COST_QUEUE_CAP_MS;
	l = KM_P11_COST_LOAD_MS * (double)in->load_milli / 1000.0;
	c += l < KM_P11_COST_LOAD_CAP_MS ? l : KM_P11_COST_LOAD_CAP_MS;
	if (in->bw_kbps > 0) {
		/* bits / (kbit/s) = ms */
		l = KM_P11_COST_BW_BYTES * 8.0 / (double)in->bw_kbps;
		c += l < KM_P11_COST_BW_CAP_MS ? l : KM_P11_COST_BW_CAP_MS;
	}
	return c;
}

double
km_p11_rank_cost(const km_p11_rank_in *in, uint64_t now_ms)
{
	double c;

	if (km_p11_rank_excluded(in)) {
		return HUGE_VAL;
	}
	c = km_p11_rank_rtt(in, now_ms) + km_p11_rank_view(in);
	if (in->bad_until_ms > now_ms) {
		c += KM_P11_COST_BAD;
	}
	if (in->fails > 0
	    && now_ms <= in->last_fail_ms + KM_P11_FAIL_DECAY_MS) {
		c += KM_P11_COST_FAIL_MS * (double)in->fails;
	}
	if (!in->connected) {
		c += KM_P11_COST_UNCONNECTED;
	}
	return c;
}

size_t
km_p11_rank_order(const km_p11_rank_in *in, size_t n, uint64_t now_ms,
    size_t *order, size_t *excl, size_t *nexcl)
{
	double cost[64];
	size_t i, j, m = 0;

	*nexcl = 0;
	for (i = 0; i < n && i < 64; i++) {
		if (km_p11_rank_excluded(&in[i])) {
			excl[(*nexcl)++] = i;
			continue;
		}
		cost[i] = km_p11_rank_cost(&in[i], now_ms);
		/* insertion sort, stable: n is a key's holders, a few */
		for (j = m; j > 0 && cost[order[j - 1]] > cost[i]; j--) {
			order[j] = order[j - 1];
		}
		order[j] = i;
		m++;
	}
	return m;
}
