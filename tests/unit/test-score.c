/*
 * Unit tests of the posture policy and verdict codecs (src/trust/policy.c)
 * and of trust scoring with hysteresis (src/trust/score.c): round trips,
 * every prefix and a trailing byte refused, bounds and duplicates, the
 * policy check and its reasons, quarantine at once on a posture failure
 * and release only after the streak, behaviour quarantine with separate
 * enter/leave thresholds, no oscillation of a flapping node, and the
 * band margin of re-publication.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmt.h"
#include "trust/policy.h"
#include "trust/score.h"
#include "util/err.h"
#include "util/util.h"

static void
beacon_of(km_beacon *bc, uint8_t binbyte, uint64_t seq)
{
	memset(bc, 0, sizeof(*bc));
	snprintf(bc->node, sizeof(bc->node), "node2");
	bc->seq = seq;
	snprintf(bc->version, sizeof(bc->version), "0.7.0");
	memset(bc->bin_sha256, binbyte, 32);
	snprintf(bc->token_model, sizeof(bc->token_model), "SoftHSM v2");
	snprintf(bc->secure_boot, sizeof(bc->secure_boot), "unknown");
}

static void
full_policy(km_posture *p)
{
	km_posture_init(p);
	p->nbinaries = 2;
	memset(p->binaries[0], 0xaa, 32);
	memset(p->binaries[1], 0xbb, 32);
	p->nversions = 1;
	snprintf(p->versions[0], sizeof(p->versions[0]), "0.7.0");
	p->nmodels = 1;
	snprintf(p->models[0], sizeof(p->models[0]), "SoftHSM v2");
	p->max_age_ms = 8000;
	p->refresh_s = 86400;
}

static void
test_posture_round_trip(void)
{
	km_posture p, q;
	km_buf b, c;
	size_t i;

	full_policy(&p);
	km_buf_init(&b);
	km_buf_init(&c);
	CU_ASSERT_EQUAL_FATAL(km_posture_encode(&p, &b), 0);
	CU_ASSERT_EQUAL_FATAL(km_posture_decode(b.data, b.len, &q), 0);
	CU_ASSERT_EQUAL(q.nbinaries, 2);
	CU_ASSERT(memcmp(q.binaries[1], p.binaries[1], 32) == 0);
	CU_ASSERT_STRING_EQUAL(q.versions[0], "0.7.0");
	CU_ASSERT_STRING_EQUAL(q.models[0], "SoftHSM v2");
	CU_ASSERT_EQUAL(q.max_age_ms, 8000);
	CU_ASSERT_EQUAL(q.refresh_s, 86400);
	CU_ASSERT(!q.secure_boot);
	CU_ASSERT_EQUAL(km_posture_encode(&q, &c), 0);
	CU_ASSERT(b.len == c.len && memcmp(b.data, c.data, b.len) == 0);
	/* every prefix and one trailing byte are refused */
	for (i = 0; i < b.len; i++) {
		CU_ASSERT_NOT_EQUAL(km_posture_decode(b.data, i, &q), 0);
	}
	km_buf_put_u8(&b, 0);
	CU_ASSERT_EQUAL(
	    km_posture_decode(b.data, b.len, &q), KM_ERR_BAD_FORMAT);
	/* the empty policy */
	km_posture_init(&p);
	km_buf_reset(&b);
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), 0);
	CU_ASSERT_EQUAL(b.len, 7 * 4);
	CU_ASSERT_EQUAL(km_posture_decode(b.data, b.len, &q), 0);
	/* another version */
	b.data[3] = 2;
	CU_ASSERT_EQUAL(
	    km_posture_decode(b.data, b.len, &q), KM_ERR_BAD_VERSION);
	km_buf_free(&b);
	km_buf_free(&c);
}

static void
test_posture_bounds(void)
{
	km_posture p;
	km_buf b;

	km_buf_init(&b);
	full_policy(&p);
	memset(p.binaries[1], 0xaa, 32); /* duplicate */
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), KM_ERR_INVALID_ARG);
	full_policy(&p);
	p.nversions = 2;
	snprintf(p.versions[1], sizeof(p.versions[1]), "0.7.0");
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), KM_ERR_INVALID_ARG);
	full_policy(&p);
	snprintf(p.models[0], sizeof(p.models[0]), "bad\"quote");
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), KM_ERR_INVALID_ARG);
	full_policy(&p);
	p.max_age_ms = 10; /* below the minimum */
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), KM_ERR_INVALID_ARG);
	full_policy(&p);
	p.refresh_s = KM_POSTURE_REFRESH_MAX_S + 1;
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), KM_ERR_INVALID_ARG);
	full_policy(&p);
	p.nbinaries = KM_POSTURE_MAX_BINARIES + 1;
	CU_ASSERT_EQUAL(km_posture_encode(&p, &b), KM_ERR_INVALID_ARG);
	CU_ASSERT_EQUAL(b.len, 0);
	/* a hash of 31 bytes, a count over the bound, secure boot 2 */
	{
		km_posture q;
		uint8_t h[31] = { 0 };

		km_buf_put_u32(&b, 1);
		km_buf_put_u32(&b, 1);
		km_buf_put_string(&b, h, sizeof(h));
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		CU_ASSERT_EQUAL(
		    km_posture_decode(b.data, b.len, &q), KM_ERR_BAD_FORMAT);
		km_buf_reset(&b);
		km_buf_put_u32(&b, 1);
		km_buf_put_u32(&b, 1000);
		CU_ASSERT_EQUAL(
		    km_posture_decode(b.data, b.len, &q), KM_ERR_BAD_FORMAT);
		km_buf_reset(&b);
		km_buf_put_u32(&b, 1);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 2);
		km_buf_put_u32(&b, 0);
		km_buf_put_u32(&b, 0);
		CU_ASSERT_EQUAL(
		    km_posture_decode(b.data, b.len, &q), KM_ERR_BAD_FORMAT);
	}
	km_buf_free(&b);
}

static void
test_posture_check(void)
{
	km_posture p;
	km_beacon bc;
	char why[KM_TRUST_REASON_MAX + 1];

	km_posture_init(&p);
	beacon_of(&bc, 0x3f, 1);
	CU_ASSERT(km_posture_check(&p, &bc, why, sizeof(why)));
	full_policy(&p);
	CU_ASSERT(!km_posture_check(&p, &bc, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(why,
	    "binary sha256 3f3f3f3f3f3f3f3f...: not in the posture policy");
	beacon_of(&bc, 0xbb, 1);
	CU_ASSERT(km_posture_check(&p, &bc, why, sizeof(why)));
	snprintf(bc.version, sizeof(bc.version), "0.6.9");
	CU_ASSERT(!km_posture_check(&p, &bc, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(
	    why, "version 0.6.9: not in the posture policy");
	beacon_of(&bc, 0xbb, 1);
	snprintf(bc.token_model, sizeof(bc.token_model), "Luna");
	CU_ASSERT(!km_posture_check(&p, &bc, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(
	    why, "token model Luna: not in the posture policy");
	beacon_of(&bc, 0xbb, 1);
	p.secure_boot = true;
	CU_ASSERT(!km_posture_check(&p, &bc, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(
	    why, "secure boot unknown: the posture policy requires it");
	snprintf(bc.secure_boot, sizeof(bc.secure_boot), "on");
	CU_ASSERT(km_posture_check(&p, &bc, why, sizeof(why)));
}

static void
test_verdict_codec(void)
{
	km_trust_verdict v, w;
	km_buf b, c;
	size_t i;

	memset(&v, 0, sizeof(v));
	snprintf(v.node, sizeof(v.node), "node2");
	snprintf(v.coordinator, sizeof(v.coordinator), "node3");
	v.state = KM_TRUST_QUARANTINED;
	v.score = 100;
	snprintf(v.reason, sizeof(v.reason), "version 1: not allowed");
	v.beacon_seq = 1234567;
	km_buf_init(&b);
	km_buf_init(&c);
	CU_ASSERT_EQUAL_FATAL(km_trust_verdict_encode(&v, &b), 0);
	CU_ASSERT_EQUAL_FATAL(km_trust_verdict_decode(b.data, b.len, &w), 0);
	CU_ASSERT_STRING_EQUAL(w.node, "node2");
	CU_ASSERT_STRING_EQUAL(w.coordinator, "node3");
	CU_ASSERT_EQUAL(w.state, KM_TRUST_QUARANTINED);
	CU_ASSERT_STRING_EQUAL(w.reason, v.reason);
	CU_ASSERT_EQUAL(w.beacon_seq, 1234567);
	CU_ASSERT_EQUAL(km_trust_verdict_encode(&w, &c), 0);
	CU_ASSERT(b.len == c.len && memcmp(b.data, c.data, b.len) == 0);
	for (i = 0; i < b.len; i++) {
		CU_ASSERT_NOT_EQUAL(km_trust_verdict_decode(b.data, i, &w), 0);
	}
	km_buf_put_u8(&b, 0);
	CU_ASSERT_NOT_EQUAL(km_trust_verdict_decode(b.data, b.len, &w), 0);
	/* quarantine without a reason, unreachable or evicted, score 101,
	 * a bad name: refused both ways */
	km_buf_reset(&b);
	w = v;
	w.reason[0] = '\0';
	CU_ASSERT_EQUAL(km_trust_verdict_encode(&w, &b), KM_ERR_INVALID_ARG);
	w = v;
	w.state = KM_TRUST_UNREACHABLE;
	CU_ASSERT_EQUAL(km_trust_verdict_encode(&w, &b), KM_ERR_INVALID_ARG);
	w.state = KM_TRUST_EVICTED;
	CU_ASSERT_EQUAL(km_trust_verdict_encode(&w, &b), KM_ERR_INVALID_ARG);
	w = v;
	w.score = 101;
	CU_ASSERT_EQUAL(km_trust_verdict_encode(&w, &b), KM_ERR_INVALID_ARG);
	w = v;
	snprintf(w.node, sizeof(w.node), "-x");
	CU_ASSERT_EQUAL(km_trust_verdict_encode(&w, &b), KM_ERR_INVALID_ARG);
	CU_ASSERT_EQUAL(b.len, 0);
	km_buf_put_cstring(&b, "node2");
	km_buf_put_cstring(&b, "node3");
	km_buf_put_u32(&b, KM_TRUST_EVICTED);
	km_buf_put_u32(&b, 0);
	km_buf_put_cstring(&b, "x");
	km_buf_put_u64(&b, 0);
	CU_ASSERT_EQUAL(
	    km_trust_verdict_decode(b.data, b.len, &w), KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
	km_buf_free(&c);
}

static void
test_score_posture_hysteresis(void)
{
	km_posture p;
	km_beacon good, bad;
	km_trust_score s;
	unsigned i;

	full_policy(&p);
	beacon_of(&good, 0xaa, 1);
	beacon_of(&bad, 0x11, 1);
	km_trust_score_init(&s, KM_TRUST_UP, KM_TRUST_SCORE_MAX, NULL);
	CU_ASSERT(!km_trust_score_beacon(&s, &p, &good));
	CU_ASSERT(!s.quarantined);
	/* one failing beacon: quarantined at once, with the rule */
	CU_ASSERT(km_trust_score_beacon(&s, &p, &bad));
	CU_ASSERT(s.quarantined);
	CU_ASSERT(
	    strstr(s.reason, "binary sha256 1111111111111111...") == s.reason);
	/* the score is about behaviour: posture does not lower it */
	CU_ASSERT_EQUAL(s.score, KM_TRUST_SCORE_MAX);
	/* released only after KM_TRUST_RELEASE_BEACONS good ones */
	for (i = 1; i < KM_TRUST_RELEASE_BEACONS; i++) {
		CU_ASSERT(!km_trust_score_beacon(&s, &p, &good));
		CU_ASSERT(s.quarantined);
	}
	CU_ASSERT(km_trust_score_beacon(&s, &p, &good));
	CU_ASSERT(!s.quarantined);
	CU_ASSERT_STRING_EQUAL(s.reason, "");
	/* flapping (bad, good, bad, good...): never released */
	CU_ASSERT(km_trust_score_beacon(&s, &p, &bad));
	for (i = 0; i < 20; i++) {
		CU_ASSERT(
		    !km_trust_score_beacon(&s, &p, (i % 2) ? &bad : &good));
		CU_ASSERT(s.quarantined);
	}
	/* a node published quarantined (a new coordinator) stays so until
	 * it earns its release */
	km_trust_score_init(&s, KM_TRUST_QUARANTINED, 90, "version x");
	CU_ASSERT(s.quarantined);
	CU_ASSERT(!km_trust_score_beacon(&s, &p, &good));
	CU_ASSERT(!km_trust_score_beacon(&s, &p, &good));
	CU_ASSERT(km_trust_score_beacon(&s, &p, &good));
	CU_ASSERT(!s.quarantined);
}

static void
test_score_behaviour(void)
{
	km_posture p;
	km_beacon bc;
	km_trust_score s;
	unsigned n = 0;

	km_posture_init(&p);
	beacon_of(&bc, 0xaa, 1);
	km_trust_score_init(&s, KM_TRUST_UP, KM_TRUST_SCORE_MAX, NULL);
	CU_ASSERT(!km_trust_score_note(&s, KM_TRUST_EV_BAD_PARTIAL));
	CU_ASSERT_EQUAL(s.score, 60);
	CU_ASSERT(!km_trust_score_note(&s, KM_TRUST_EV_TIMEOUT));
	CU_ASSERT_EQUAL(s.score, 55);
	CU_ASSERT(km_trust_score_note(&s, KM_TRUST_EV_BAD_PARTIAL));
	CU_ASSERT_EQUAL(s.score, 15);
	CU_ASSERT(s.quarantined);
	CU_ASSERT(strstr(s.reason, "trust score below 30") == s.reason);
	/* a valid partial buys nothing back */
	CU_ASSERT(!km_trust_score_note(&s, KM_TRUST_EV_GOOD_PARTIAL));
	CU_ASSERT_EQUAL(s.score, 15);
	/* clean beacons: +1 each; still quarantined between 30 and 59 */
	while (s.score < KM_TRUST_RELEASE_AT - 1) {
		bc.seq++;
		CU_ASSERT(!km_trust_score_beacon(&s, &p, &bc));
		n++;
	}
	CU_ASSERT(s.quarantined);
	CU_ASSERT_EQUAL(n, KM_TRUST_RELEASE_AT - 1 - 15);
	bc.seq++;
	CU_ASSERT(km_trust_score_beacon(&s, &p, &bc));
	CU_ASSERT(!s.quarantined);
	CU_ASSERT_EQUAL(s.score, KM_TRUST_RELEASE_AT);
	/* a growing error counter costs, a still one does not */
	bc.errors = 10;
	bc.seq++;
	(void)km_trust_score_beacon(&s, &p, &bc);
	CU_ASSERT_EQUAL(
	    s.score, KM_TRUST_RELEASE_AT - KM_TRUST_PENALTY_ERRORS);
	bc.seq++;
	(void)km_trust_score_beacon(&s, &p, &bc);
	CU_ASSERT_EQUAL(
	    s.score, KM_TRUST_RELEASE_AT - KM_TRUST_PENALTY_ERRORS + 1);
	/* a counter that went back (a restart) is no growth */
	bc.errors = 0;
	bc.seq++;
	(void)km_trust_score_beacon(&s, &p, &bc);
	CU_ASSERT_EQUAL(
	    s.score, KM_TRUST_RELEASE_AT - KM_TRUST_PENALTY_ERRORS + 2);
	/* the score never goes below 0 nor above the maximum */
	for (n = 0; n < 10; n++) {
		(void)km_trust_score_note(&s, KM_TRUST_EV_BAD_PARTIAL);
	}
	CU_ASSERT_EQUAL(s.score, 0);
	km_trust_score_init(&s, KM_TRUST_UP, 1000, NULL);
	CU_ASSERT_EQUAL(s.score, KM_TRUST_SCORE_MAX);
	(void)km_trust_score_beacon(&s, &p, &bc);
	CU_ASSERT_EQUAL(s.score, KM_TRUST_SCORE_MAX);
}

static void
test_score_due(void)
{
	km_trust_score s;

	km_trust_score_init(&s, KM_TRUST_UP, KM_TRUST_SCORE_MAX, NULL);
	CU_ASSERT(!km_trust_score_due(&s, KM_TRUST_UP, 100, ""));
	CU_ASSERT(km_trust_score_due(&s, KM_TRUST_QUARANTINED, 100, "x"));
	/* 100 -> 79: the band changed but not by the margin */
	s.score = 79;
	CU_ASSERT(!km_trust_score_due(&s, KM_TRUST_UP, 100, ""));
	s.score = 74;
	CU_ASSERT(km_trust_score_due(&s, KM_TRUST_UP, 100, ""));
	/* published 74, back up to 80..84: not yet; 85: yes */
	s.score = 82;
	CU_ASSERT(!km_trust_score_due(&s, KM_TRUST_UP, 74, ""));
	s.score = 85;
	CU_ASSERT(km_trust_score_due(&s, KM_TRUST_UP, 74, ""));
	/* another reason while quarantined */
	s.quarantined = true;
	snprintf(s.reason, sizeof(s.reason), "b");
	CU_ASSERT(km_trust_score_due(&s, KM_TRUST_QUARANTINED, 85, "a"));
	CU_ASSERT(!km_trust_score_due(&s, KM_TRUST_QUARANTINED, 85, "b"));
}

/* The DOT drawing: score and reason on a node, bandwidth on an edge. */
static void
test_dot_labels(void)
{
	km_trust_view *v = calloc(1, sizeof(*v));
	km_buf dot;

	CU_ASSERT_FATAL(v != NULL);
	snprintf(v->observer, sizeof(v->observer), "node1");
	v->nnodes = 2;
	snprintf(v->nodes[0].name, sizeof(v->nodes[0].name), "node1");
	v->nodes[0].state = KM_TRUST_UP;
	v->nodes[0].score = 100;
	v->nodes[0].have = true;
	beacon_of(&v->nodes[0].beacon, 0xaa, 1);
	snprintf(
	    v->nodes[0].beacon.node, sizeof(v->nodes[0].beacon.node), "node1");
	v->nodes[0].beacon.npeers = 1;
	snprintf(v->nodes[0].beacon.peers[0].name,
	    sizeof(v->nodes[0].beacon.peers[0].name), "node2");
	v->nodes[0].beacon.peers[0].rtt_us = 1234;
	v->nodes[0].beacon.peers[0].bw_kbps = 262144;
	snprintf(v->nodes[1].name, sizeof(v->nodes[1].name), "node2");
	v->nodes[1].state = KM_TRUST_QUARANTINED;
	v->nodes[1].score = 55;
	snprintf(v->nodes[1].reason, sizeof(v->nodes[1].reason),
	    "version 0.6.9: not in the posture policy");
	v->nodes[1].age_ms = KM_TRUST_AGE_NONE;
	km_buf_init(&dot);
	CU_ASSERT_FATAL(km_trust_view_dot(v, &dot) == 0);
	km_buf_put_u8(&dot, 0);
	CU_ASSERT(
	    strstr((char *)dot.data,
	        "\"node1\" -> \"node2\" [label=\"262 Mbit/s\\n1.23 ms\"]")
	    != NULL);
	CU_ASSERT(
	    strstr((char *)dot.data,
	        "\"node2\" [fillcolor=orange, label=\"node2\\nquarantined, "
	        "score 55")
	    != NULL);
	CU_ASSERT(strstr((char *)dot.data,
	              "\\nversion 0.6.9: not in the posture policy\"]")
	    != NULL);
	km_buf_free(&dot);
	v->nodes[0].beacon.peers[0].bw_kbps = 512;
	km_buf_init(&dot);
	CU_ASSERT_FATAL(km_trust_view_dot(v, &dot) == 0);
	km_buf_put_u8(&dot, 0);
	CU_ASSERT(strstr((char *)dot.data, "512 kbit/s\\n1.23 ms") != NULL);
	km_buf_free(&dot);
	free(v);
}

static const kmt_test score_tests[] = {
	{ "posture_round_trip", test_posture_round_trip },
	{ "posture_bounds", test_posture_bounds },
	{ "posture_check", test_posture_check },
	{ "verdict_codec", test_verdict_codec },
	{ "score_posture_hysteresis", test_score_posture_hysteresis },
	{ "score_behaviour", test_score_behaviour },
	{ "score_due", test_score_due },
	{ "dot_labels", test_dot_labels },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "score", NULL, NULL, score_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
