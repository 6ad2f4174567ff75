/*
 * The posture policy and the coordinator's trust verdicts (docs/trust.md,
 * "Posture policy", "Verdicts"): the payloads of the catalog entries
 * KM_CAT_POSTURE_SET (an admin's, replacing the whole policy) and
 * KM_CAT_TRUST_VERDICT (the Raft leader's, about one node).
 *
 * Both use the km_buf terms (uint32, uint64, string) and decode strictly:
 * bounded counts and lengths, printable text, no duplicates, a canonical
 * order, no trailing bytes; so what decodes re-encodes to the same bytes.
 * The encoders refuse what the decoders would.
 */
#ifndef KM_TRUST_POLICY_H
#define KM_TRUST_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/beacon.h"
#include "trust/graph.h"
#include "util/buf.h"

#define KM_POSTURE_VERSION 1

#define KM_POSTURE_MAX_BINARIES 32
#define KM_POSTURE_MAX_VERSIONS 32
#define KM_POSTURE_MAX_MODELS   32
/* the bounds of the maximum beacon age, when set (0: the daemon's own) */
#define KM_POSTURE_AGE_MIN_MS 500u
#define KM_POSTURE_AGE_MAX_MS 3600000u
/* the proactive-refresh interval: 0 (off), or from 5 s (a re-share takes
 * seconds; less would only keep every key re-sharing) up to a year */
#define KM_POSTURE_REFRESH_MIN_S 5u
#define KM_POSTURE_REFRESH_MAX_S 31536000u
/* the largest encoded policy: far above a full one */
#define KM_POSTURE_MAX_LEN 8192

typedef struct km_posture {
	size_t nbinaries; /* 0: any binary */
	uint8_t binaries[KM_POSTURE_MAX_BINARIES][32];
	size_t nversions; /* 0: any version */
	char versions[KM_POSTURE_MAX_VERSIONS][KM_BEACON_VERSION_MAX + 1];
	size_t nmodels; /* 0: any token model */
	char models[KM_POSTURE_MAX_MODELS][KM_BEACON_TOKEN_MODEL_MAX + 1];
	bool secure_boot;    /* true: a beacon must say "on" */
	uint32_t max_age_ms; /* 0: the daemons' beacon_max_age_ms */
	uint32_t refresh_s;  /* proactive refresh (daemon/evict.c); 0: off */
} km_posture;

/** km_posture_init: the empty policy, which allows everything. */
void km_posture_init(km_posture *p);

/**
 * km_posture_encode:
 * "uint32 version (1), uint32 n, n x string sha256 (32 bytes), uint32 n,
 * n x string version, uint32 n, n x string token model, uint32
 * secure_boot (0 any, 1 required), uint32 max_age_ms, uint32 refresh_s";
 * each list without duplicates (it is a set: order is kept as given).
 *
 * Returns: 0, KM_ERR_INVALID_ARG (out of bounds, duplicate, bad text),
 * KM_ERR_ALLOC.
 */
int km_posture_encode(const km_posture *p, km_buf *out);

/**
 * km_posture_decode:
 * @data, @len: a whole encoded policy, nothing after it
 * @p: receives it
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_BAD_VERSION, KM_ERR_TOO_LARGE.
 */
int km_posture_decode(const uint8_t *data, size_t len, km_posture *p);

/**
 * km_posture_check:
 * @p: the policy
 * @bc: a verified beacon
 * @why, @whylen: on failure, one printable line naming the rule, e.g.
 *   "binary sha256 3f2a9c81d0e4b5a6...: not in the posture policy"
 *
 * The rules in order: binary, version, token model, secure boot.  (The
 * maximum beacon age is enforced where beacons are received.)
 *
 * Returns: true when @bc passes every rule.
 */
bool km_posture_check(
    const km_posture *p, const km_beacon *bc, char *why, size_t whylen);

/* ---- verdicts ---------------------------------------------------------- */

/* A verdict: advisory, it can only stop clients asking a node. */
typedef struct km_trust_verdict {
	char node[KM_NAME_MAX + 1];        /* about whom */
	char coordinator[KM_NAME_MAX + 1]; /* who decided: the signer */
	km_trust_state state; /* KM_TRUST_UP or KM_TRUST_QUARANTINED */
	uint32_t score;       /* 0..KM_TRUST_SCORE_MAX */
	char reason[KM_TRUST_REASON_MAX + 1]; /* "" only when up */
	uint64_t beacon_seq; /* the beacon that decided it (0: none) */
} km_trust_verdict;

/**
 * km_trust_verdict_encode:
 * "string node, string coordinator, uint32 state, uint32 score, string
 * reason, uint64 beacon_seq".  A quarantine needs a reason.
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_ALLOC.
 */
int km_trust_verdict_encode(const km_trust_verdict *v, km_buf *out);

/** km_trust_verdict_decode: strict inverse (KM_ERR_BAD_FORMAT). */
int km_trust_verdict_decode(
    const uint8_t *data, size_t len, km_trust_verdict *v);

/* km_posture_hex: the first @nbytes of @h in lower-case hex. */
void km_posture_hex(const uint8_t *h, size_t nbytes, char *out, size_t outlen);

#endif /* KM_TRUST_POLICY_H */
