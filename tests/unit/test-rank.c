/*
 * Unit tests of the module's holder ranking (pkcs11/rank.c, docs/pkcs11.md
 * "How holders are ranked") on synthetic views: quarantined and evicted
 * holders are excluded, an unreachable one is not; with equal round trips
 * the higher trust score or the lower load comes first; a much lower round
 * trip beats a small load difference; an unmeasured holder comes first;
 * estimates age; failures, a bad partial and no connection push a holder
 * back; a stale view counts for nothing; the order the quorum asks in
 * (km_p11_rank_order) leaves excluded holders out.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "kmt.h"
#include "pkcs11/rank.h"

#define NOW 1800000000000ull

/* A connected holder measured just now at @rtt ms, fully trusted, idle. */
static km_p11_rank_in
holder(double rtt)
{
	km_p11_rank_in in;

	memset(&in, 0, sizeof(in));
	in.rtt_ms = rtt;
	in.rtt_at_ms = NOW - 100;
	in.connected = true;
	in.have_view = true;
	in.state = KM_TRUST_UP;
	in.score = KM_TRUST_SCORE_MAX;
	return in;
}

static double
cost(const km_p11_rank_in *in)
{
	return km_p11_rank_cost(in, NOW);
}

static void
test_quarantined_excluded(void)
{
	km_p11_rank_in q = holder(1), e = holder(1), u = holder(1);

	q.state = KM_TRUST_QUARANTINED;
	e.state = KM_TRUST_EVICTED;
	u.state = KM_TRUST_UNREACHABLE;
	CU_ASSERT_TRUE(km_p11_rank_excluded(&q));
	CU_ASSERT_TRUE(km_p11_rank_excluded(&e));
	CU_ASSERT_TRUE(isinf(cost(&q)));
	CU_ASSERT_TRUE(isinf(cost(&e)));
	/* unreachable in the view, but our connection is up: asked */
	CU_ASSERT_FALSE(km_p11_rank_excluded(&u));
	CU_ASSERT_TRUE(isfinite(cost(&u)));
	/* a stale view (have_view false) excludes nobody */
	q.have_view = false;
	CU_ASSERT_FALSE(km_p11_rank_excluded(&q));
	CU_ASSERT_TRUE(isfinite(cost(&q)));
}

static void
test_equal_rtt_score(void)
{
	km_p11_rank_in a = holder(5), b = holder(5);

	b.score = 60;
	CU_ASSERT_TRUE(cost(&a) < cost(&b));
	/* the documented scale: 50 ms at score 0 */
	b.score = 0;
	CU_ASSERT_DOUBLE_EQUAL(
	    cost(&b) - cost(&a), KM_P11_COST_TRUST_MS, 1e-9);
	/* out-of-range scores count as the maximum */
	b.score = 1000;
	CU_ASSERT_DOUBLE_EQUAL(cost(&b), cost(&a), 1e-9);
}

static void
test_equal_rtt_load(void)
{
	km_p11_rank_in a = holder(5), b = holder(5), c = holder(5);

	b.load_milli = 1500;
	c.queue_depth = 3;
	CU_ASSERT_TRUE(cost(&a) < cost(&b));
	CU_ASSERT_TRUE(cost(&a) < cost(&c));
	CU_ASSERT_DOUBLE_EQUAL(
	    cost(&c) - cost(&a), 3 * KM_P11_COST_QUEUE_MS, 1e-9);
	/* capped: a huge reported queue does not hide the node for ever */
	c.queue_depth = 1000000;
	CU_ASSERT_DOUBLE_EQUAL(
	    cost(&c) - cost(&a), KM_P11_COST_QUEUE_CAP_MS, 1e-9);
	/* load from an unreachable node's old beacon is not counted */
	b.state = KM_TRUST_UNREACHABLE;
	CU_ASSERT_DOUBLE_EQUAL(cost(&b), cost(&a), 1e-9);
}

static void
test_equal_rtt_bandwidth(void)
{
	km_p11_rank_in a = holder(5), b = holder(5), c = holder(5);

	a.bw_kbps = 1000000; /* 1 Gbit/s: 0.016 ms for 2 KiB */
	b.bw_kbps = 1000;    /* 1 Mbit/s: 16 ms */
	CU_ASSERT_TRUE(cost(&a) < cost(&b));
	CU_ASSERT_DOUBLE_EQUAL(cost(&b) - cost(&c), 16.384, 1e-9);
	/* none reported: no term */
	CU_ASSERT_TRUE(cost(&c) < cost(&a));
}

static void
test_rtt_beats_small_load(void)
{
	/* 2 ms with some load and a short queue against 30 ms idle (the
	 * latency-proxy test's situation) */
	km_p11_rank_in near = holder(2), far = holder(30);

	near.load_milli = 2000;
	near.queue_depth = 2;
	near.score = 90;
	CU_ASSERT_TRUE(cost(&near) < cost(&far));
}

static void
test_unmeasured_first(void)
{
	km_p11_rank_in fresh = holder(0), fast = holder(1);

	CU_ASSERT_TRUE(cost(&fresh) < cost(&fast));
	CU_ASSERT_DOUBLE_EQUAL(cost(&fresh), 0.0, 1e-9);
}

static void
test_ageing(void)
{
	km_p11_rank_in slow = holder(80), fast = holder(4);

	CU_ASSERT_TRUE(cost(&fast) < cost(&slow));
	/* 45 s without a measurement: 80 / 2^4 = 5 ms */
	slow.rtt_at_ms = NOW - 45000;
	CU_ASSERT_DOUBLE_EQUAL(cost(&slow), 5.0, 1e-9);
	slow.rtt_at_ms = NOW - 55000; /* 2.5 ms */
	CU_ASSERT_TRUE(cost(&slow) < cost(&fast));
	/* bounded: never below 80 / 2^16, and no shift overflow */
	slow.rtt_at_ms = 0;
	CU_ASSERT_DOUBLE_EQUAL(cost(&slow), 80.0 / 65536.0, 1e-12);
}

static void
test_failures(void)
{
	km_p11_rank_in ok = holder(40), failed = holder(1), bad = holder(1),
	               off = holder(1);

	failed.fails = 1;
	failed.last_fail_ms = NOW - 1000;
	CU_ASSERT_TRUE(cost(&ok) < cost(&failed));
	/* a failure older than KM_P11_FAIL_DECAY_MS no longer counts */
	failed.last_fail_ms = NOW - KM_P11_FAIL_DECAY_MS - 1;
	CU_ASSERT_TRUE(cost(&failed) < cost(&ok));
	/* a bad partial: after anyone merely unconnected */
	bad.bad_until_ms = NOW + 1000;
	off.connected = false;
	CU_ASSERT_TRUE(cost(&ok) < cost(&off));
	CU_ASSERT_TRUE(cost(&off) < cost(&bad));
	bad.bad_until_ms = NOW - 1;
	CU_ASSERT_TRUE(cost(&bad) < cost(&ok));
}

static void
test_stale_view_ignored(void)
{
	km_p11_rank_in a = holder(5), b = holder(5);

	b.score = 0;
	b.queue_depth = 10;
	b.load_milli = 9000;
	b.bw_kbps = 10;
	b.have_view = false;
	CU_ASSERT_DOUBLE_EQUAL(cost(&b), cost(&a), 1e-9);
}

static void
test_order_excludes(void)
{
	km_p11_rank_in in[5];
	size_t order[5], excl[5], nexcl, m;

	in[0] = holder(0.5); /* cheapest, but quarantined */
	in[0].state = KM_TRUST_QUARANTINED;
	in[1] = holder(1);
	in[1].state = KM_TRUST_EVICTED;
	in[2] = holder(3); /* the view lost its beacons; we did not */
	in[2].state = KM_TRUST_UNREACHABLE;
	in[3] = holder(2);
	in[4] = holder(50);
	m = km_p11_rank_order(in, 5, NOW, order, excl, &nexcl);
	CU_ASSERT_EQUAL(m, 3);
	CU_ASSERT_EQUAL(order[0], 3);
	CU_ASSERT_EQUAL(order[1], 2);
	CU_ASSERT_EQUAL(order[2], 4);
	CU_ASSERT_EQUAL(nexcl, 2);
	CU_ASSERT_EQUAL(excl[0], 0);
	CU_ASSERT_EQUAL(excl[1], 1);
	/* 3-of-5 with three excluded: fewer than k holders left */
	in[4].state = KM_TRUST_QUARANTINED;
	m = km_p11_rank_order(in, 5, NOW, order, excl, &nexcl);
	CU_ASSERT_EQUAL(m, 2);
	CU_ASSERT_EQUAL(nexcl, 3);
}

static void
test_order_proxy(void)
{
	/* the latency-proxy test: node1/node2 measured at 85 ms through
	 * the proxy, node3..node5 at about 3 ms */
	km_p11_rank_in in[5];
	size_t order[5], excl[5], nexcl, m, i;

	in[0] = holder(85);
	in[1] = holder(84);
	in[2] = holder(3.1);
	in[3] = holder(2.9);
	in[4] = holder(3.0);
	in[2].queue_depth = 1; /* a little busier: still far better */
	m = km_p11_rank_order(in, 5, NOW, order, excl, &nexcl);
	CU_ASSERT_EQUAL(m, 5);
	CU_ASSERT_EQUAL(nexcl, 0);
	for (i = 0; i < 3; i++) {
		CU_ASSERT_TRUE(order[i] >= 2);
	}
	CU_ASSERT_EQUAL(order[3], 1);
	CU_ASSERT_EQUAL(order[4], 0);
	/* a probe showed the delay gone: their estimates are forgotten,
	 * so they are asked (and measured) first */
	in[0].rtt_ms = 0;
	in[1].rtt_ms = 0;
	m = km_p11_rank_order(in, 5, NOW, order, excl, &nexcl);
	CU_ASSERT_EQUAL(order[0], 0);
	CU_ASSERT_EQUAL(order[1], 1);
}

static void
test_order_stable(void)
{
	km_p11_rank_in in[4];
	size_t order[4], excl[4], nexcl, i;

	for (i = 0; i < 4; i++) {
		in[i] = holder(5);
	}
	CU_ASSERT_EQUAL(km_p11_rank_order(in, 4, NOW, order, excl, &nexcl), 4);
	for (i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(order[i], i);
	}
}

static const kmt_test rank_tests[] = {
	{ "quarantined_excluded", test_quarantined_excluded },
	{ "equal_rtt_score", test_equal_rtt_score },
	{ "equal_rtt_load", test_equal_rtt_load },
	{ "equal_rtt_bandwidth", test_equal_rtt_bandwidth },
	{ "rtt_beats_small_load", test_rtt_beats_small_load },
	{ "unmeasured_first", test_unmeasured_first },
	{ "ageing", test_ageing },
	{ "failures", test_failures },
	{ "stale_view_ignored", test_stale_view_ignored },
	{ "order_excludes", test_order_excludes },
	{ "order_proxy", test_order_proxy },
	{ "order_stable", test_order_stable },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "rank", NULL, NULL, rank_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
