/*
 * Trust scoring with hysteresis (docs/trust.md, "Scoring"): what the
 * coordinator thinks of one node, from its posture (the policy check of
 * each beacon) and its behaviour (bad partials reported with evidence,
 * timeouts, the error counter of its beacons).  Pure: no clock, no I/O,
 * so the unit tests drive it beacon by beacon.
 *
 * The score starts at KM_TRUST_SCORE_MAX and
 *   - loses KM_TRUST_PENALTY_BAD_PARTIAL per bad partial noted,
 *     KM_TRUST_PENALTY_TIMEOUT per timeout noted, KM_TRUST_PENALTY_ERRORS
 *     per beacon whose error counter grew;
 *   - gains KM_TRUST_RECOVER per clean beacon (policy passed, counter
 *     still), up to the maximum.
 * A node is quarantined
 *   - at once when a beacon fails the posture policy (the reason names
 *     the rule), and released only after KM_TRUST_RELEASE_BEACONS
 *     consecutive beacons pass it;
 *   - when its score falls below KM_TRUST_QUARANTINE_BELOW, and released
 *     only once it is back at KM_TRUST_RELEASE_AT or above (and its
 *     posture passes).
 * Silence changes nothing here: a node whose beacons stop is unreachable
 * (the graph's business), never less trusted.
 */
#ifndef KM_TRUST_SCORE_H
#define KM_TRUST_SCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "trust/beacon.h"
#include "trust/graph.h"
#include "trust/policy.h"

#define KM_TRUST_PENALTY_BAD_PARTIAL 40u
#define KM_TRUST_PENALTY_TIMEOUT     5u
#define KM_TRUST_PENALTY_ERRORS      2u
#define KM_TRUST_RECOVER             1u
#define KM_TRUST_QUARANTINE_BELOW    30u
#define KM_TRUST_RELEASE_AT          60u
#define KM_TRUST_RELEASE_BEACONS     3u
/* a published score is re-published when the band changes and the score
 * is this far past the band's edge (bands: 0-49, 50-79, 80-100) */
#define KM_TRUST_BAND_MARGIN 5u

typedef enum km_trust_event {
	KM_TRUST_EV_BAD_PARTIAL = 1, /* evidence of a wrong partial */
	KM_TRUST_EV_TIMEOUT = 2,     /* asked and did not answer in time */
	KM_TRUST_EV_GOOD_PARTIAL = 3 /* a valid partial (no change today) */
} km_trust_event;

typedef struct km_trust_score {
	uint32_t score;       /* 0..KM_TRUST_SCORE_MAX */
	bool quarantined;     /* the state this node should be published in */
	bool posture_failed;  /* the last beacon failed the policy */
	bool behaviour_low;   /* quarantined for its score */
	uint32_t pass_streak; /* consecutive beacons passing the policy */
	bool have_errors;     /* @errors holds the last beacon's counter */
	uint64_t errors;
	uint64_t beacon_seq;                  /* the last beacon scored */
	char reason[KM_TRUST_REASON_MAX + 1]; /* why, while quarantined */
} km_trust_score;

/**
 * km_trust_score_init:
 * A node first seen, starting from its published verdict (@state, @score,
 * @reason, e.g. after a change of coordinator) or, with @state
 * KM_TRUST_UP and @score KM_TRUST_SCORE_MAX, from full trust.  A node
 * published quarantined stays so until it earns its release here.
 */
void km_trust_score_init(km_trust_score *s, km_trust_state state,
    uint32_t score, const char *reason);

/**
 * km_trust_score_beacon:
 * Scores one verified, fresh beacon of the node against @policy.
 * Returns: true when the node's quarantine state changed.
 */
bool km_trust_score_beacon(
    km_trust_score *s, const km_posture *policy, const km_beacon *bc);

/**
 * km_trust_score_note:
 * An observed behaviour (the evidence and eviction code calls this on the
 * coordinator once it has checked the evidence).
 * Returns: true when the node's quarantine state changed.
 */
bool km_trust_score_note(km_trust_score *s, km_trust_event ev);

/** km_trust_score_band: 0 (0-49), 1 (50-79) or 2 (80-100). */
unsigned km_trust_score_band(uint32_t score);

/**
 * km_trust_score_due:
 * Whether @s differs enough from the published verdict (@state, @score,
 * @reason) to publish a new one: another state, another reason while
 * quarantined, or another score band with KM_TRUST_BAND_MARGIN to spare.
 */
bool km_trust_score_due(const km_trust_score *s, km_trust_state state,
    uint32_t score, const char *reason);

#endif /* KM_TRUST_SCORE_H */
