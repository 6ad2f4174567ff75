/*
 * The cost by which the module ranks a key's holders (docs/pkcs11.md,
 * "How holders are ranked").  A pure function of a few numbers, so it can
 * be tested on synthetic views (tests/unit/test-rank.c) and so that the hot
 * path only copies those numbers under its locks: no allocation, no
 * network.
 *
 * The cost is in milliseconds of expected waiting: the module's own
 * measured round trip to the node, aged, plus terms that turn the other
 * facts into the delay they predict (recent failures, a bad partial, no
 * connection, a low trust score, the node's reported queue and load, a
 * slow link).  Lower is better.  Quarantined and evicted nodes are not
 * ranked at all: km_p11_rank_excluded() says so and the quorum never asks
 * them.
 */
#ifndef KM_P11_RANK_H
#define KM_P11_RANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/graph.h"

/* ---- the constants of the cost (docs/pkcs11.md explains each) ---- */

/* an RTT estimate halves for every this many ms without a measurement */
#define KM_P11_RTT_HALF_MS 10000u
/* a failure counts while younger than this, KM_P11_COST_FAIL_MS each */
#define KM_P11_FAIL_DECAY_MS 30000u
#define KM_P11_COST_FAIL_MS  100.0
/* a node caught with a bad partial: after every other candidate */
#define KM_P11_COST_BAD 1e9
/* a node we have no connection to: after every connected one */
#define KM_P11_COST_UNCONNECTED 1e6
/* trust: this many ms at score 0, none at KM_TRUST_SCORE_MAX */
#define KM_P11_COST_TRUST_MS 50.0
/* reported queue depth: one RSA-2048 partial's service time per queued
 * request (about 2 ms here), capped */
#define KM_P11_COST_QUEUE_MS     2.0
#define KM_P11_COST_QUEUE_CAP_MS 64.0
/* reported 1-minute load average: 1 ms per unit, capped */
#define KM_P11_COST_LOAD_MS     1.0
#define KM_P11_COST_LOAD_CAP_MS 16.0
/* reported link bandwidth: the time to move a request and its reply
 * (about 2 KiB together for RSA-2048) at that rate, capped */
#define KM_P11_COST_BW_BYTES  2048.0
#define KM_P11_COST_BW_CAP_MS 50.0

/* What the ranking knows about one holder. */
typedef struct km_p11_rank_in {
	/* the module's own measurements (quorum.c) */
	double rtt_ms;      /* EWMA of round trips; 0: never measured */
	uint64_t rtt_at_ms; /* when it was last measured */
	uint32_t fails;     /* failures, the last at last_fail_ms */
	uint64_t last_fail_ms;
	uint64_t bad_until_ms; /* a bad partial: avoid until then */
	bool connected;        /* our own connection to it is up */
	/* the signed trust/load view (view.c); ignored when !have_view */
	bool have_view;       /* the view is fresh and lists the node */
	km_trust_state state; /* as the view says */
	uint32_t score;       /* 0..KM_TRUST_SCORE_MAX */
	uint32_t load_milli;  /* the node's beacon: load average x 1000 */
	uint32_t queue_depth; /* the node's beacon: requests in flight */
	uint32_t bw_kbps;     /* mean reported bandwidth of its links, 0:
	                         none reported */
} km_p11_rank_in;

/**
 * km_p11_rank_excluded:
 * True when the holder must not be asked at all: the (fresh) view says it
 * is quarantined or evicted.  A node the view calls unreachable is not
 * excluded: our own connection decides.
 */
bool km_p11_rank_excluded(const km_p11_rank_in *in);

/**
 * km_p11_rank_cost:
 * @in: what is known of the holder
 * @now_ms: the module's clock (km_now_ms)
 *
 * Returns: the holder's cost in milliseconds (lower is asked first); for
 * an excluded holder HUGE_VAL.
 */
double km_p11_rank_cost(const km_p11_rank_in *in, uint64_t now_ms);

/**
 * km_p11_rank_order:
 * @in: the key's holders, @n of them (at most 64)
 * @now_ms: the module's clock
 * @order: receives the indices (into @in) of the holders that may be
 *   asked, cheapest first; equal costs keep their order in @in
 * @excl: receives the indices of the excluded holders (quarantined,
 *   evicted); @nexcl their count
 *
 * What the quorum does with it: ask @order[0..] until the chosen holders
 * hold k share indices, spares in the same order; never @excl.
 *
 * Returns: the number of entries in @order.
 */
size_t km_p11_rank_order(const km_p11_rank_in *in, size_t n, uint64_t now_ms,
    size_t *order, size_t *excl, size_t *nexcl);

#endif /* KM_P11_RANK_H */
