/*
 * Trust scoring with hysteresis: the formula is in score.h and
 * docs/trust.md, "Scoring".
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "trust/score.h"

void
km_trust_score_init(km_trust_score *s, km_trust_state state, uint32_t score,
    const char *reason)
{
	memset(s, 0, sizeof(*s));
	s->score = score > KM_TRUST_SCORE_MAX ? KM_TRUST_SCORE_MAX : score;
	if (state == KM_TRUST_QUARANTINED) {
		s->quarantined = true;
		/* we do not know which rule put it there: treat it as a
		 * posture failure, so it needs the full streak to leave */
		s->posture_failed = true;
		s->behaviour_low = s->score < KM_TRUST_RELEASE_AT;
		snprintf(s->reason, sizeof(s->reason), "%s",
		    reason != NULL ? reason : "");
	}
}

static void
km_trust_score_sub(km_trust_score *s, uint32_t n)
{
	s->score = s->score > n ? s->score - n : 0;
}

/* The quarantine state from the score and the posture; true if changed. */
static bool
km_trust_score_settle(km_trust_score *s)
{
	bool was = s->quarantined;

	if (s->score < KM_TRUST_QUARANTINE_BELOW) {
		s->behaviour_low = true;
	} else if (s->score >= KM_TRUST_RELEASE_AT) {
		s->behaviour_low = false;
	}
	if (s->posture_failed) {
		s->quarantined = true; /* reason set by the beacon */
	} else if (s->behaviour_low) {
		if (!s->quarantined || s->reason[0] == '\0') {
			snprintf(s->reason, sizeof(s->reason),
			    "trust score below %u (bad partials, timeouts or "
			    "errors)",
			    KM_TRUST_QUARANTINE_BELOW);
		}
		s->quarantined = true;
	} else {
		s->quarantined = false;
		s->reason[0] = '\0';
	}
	return s->quarantined != was;
}

bool
km_trust_score_beacon(
    km_trust_score *s, const km_posture *policy, const km_beacon *bc)
{
	char why[KM_TRUST_REASON_MAX + 1];
	bool clean = true;

	s->beacon_seq = bc->seq;
	if (!km_posture_check(policy, bc, why, sizeof(why))) {
		/* quarantined at once, whatever the score */
		s->posture_failed = true;
		s->pass_streak = 0;
		snprintf(s->reason, sizeof(s->reason), "%s", why);
		clean = false;
	} else if (s->posture_failed) {
		/* hysteresis: several passing beacons in a row to leave */
		if (++s->pass_streak >= KM_TRUST_RELEASE_BEACONS) {
			s->posture_failed = false;
			s->reason[0] = '\0';
		}
		clean = false;
	}
	if (s->have_errors && bc->errors > s->errors) {
		km_trust_score_sub(s, KM_TRUST_PENALTY_ERRORS);
		clean = false;
	}
	/* a counter that went back is a restart, not good behaviour */
	s->errors = bc->errors;
	s->have_errors = true;
	if (clean && s->score < KM_TRUST_SCORE_MAX) {
		s->score += KM_TRUST_RECOVER;
	}
	return km_trust_score_settle(s);
}

bool
km_trust_score_note(km_trust_score *s, km_trust_event ev)
{
	switch (ev) {
	case KM_TRUST_EV_BAD_PARTIAL:
		km_trust_score_sub(s, KM_TRUST_PENALTY_BAD_PARTIAL);
		break;
	case KM_TRUST_EV_TIMEOUT:
		km_trust_score_sub(s, KM_TRUST_PENALTY_TIMEOUT);
		break;
	case KM_TRUST_EV_GOOD_PARTIAL:
	default:
		/* recovery comes with clean beacons only: one cheap valid
		 * partial must not buy back a bad one */
		break;
	}
	return km_trust_score_settle(s);
}

unsigned
km_trust_score_band(uint32_t score)
{
	return score >= 80 ? 2u : (score >= 50 ? 1u : 0u);
}

bool
km_trust_score_due(const km_trust_score *s, km_trust_state state,
    uint32_t score, const char *reason)
{
	km_trust_state want
	    = s->quarantined ? KM_TRUST_QUARANTINED : KM_TRUST_UP;
	unsigned have_band = km_trust_score_band(score);
	unsigned new_band = km_trust_score_band(s->score);
	uint32_t edge;

	if (want != state) {
		return true;
	}
	if (s->quarantined && strcmp(s->reason, reason) != 0) {
		return true;
	}
	if (new_band == have_band) {
		return false;
	}
	/* the edge crossed, and how far past it the score is now */
	edge = new_band > have_band ? (new_band == 2 ? 80u : 50u)
	                            : (have_band == 2 ? 80u : 50u);
	if (new_band > have_band) {
		return s->score >= edge + KM_TRUST_BAND_MARGIN;
	}
	return s->score + KM_TRUST_BAND_MARGIN < edge;
}
