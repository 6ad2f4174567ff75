/*
 * The posture policy and trust verdicts: codecs and the policy check
 * (docs/trust.md, "Posture policy"; byte formats in docs/PROTOCOL.md).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "trust/policy.h"
#include "util/err.h"
#include "util/util.h"

void
km_posture_init(km_posture *p)
{
	memset(p, 0, sizeof(*p));
}

void
km_posture_hex(const uint8_t *h, size_t nbytes, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (outlen == 0) {
		return;
	}
	for (i = 0; i < nbytes && 2 * i + 2 < outlen; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[2 * i] = '\0';
}

/* A policy's fields in bounds and every list a set. */
static bool
km_posture_ok(const km_posture *p)
{
	size_t i, j;

	if (p->nbinaries > KM_POSTURE_MAX_BINARIES
	    || p->nversions > KM_POSTURE_MAX_VERSIONS
	    || p->nmodels > KM_POSTURE_MAX_MODELS) {
		return false;
	}
	if (p->max_age_ms != 0
	    && (p->max_age_ms < KM_POSTURE_AGE_MIN_MS
	        || p->max_age_ms > KM_POSTURE_AGE_MAX_MS)) {
		return false;
	}
	if (p->refresh_s != 0
	    && (p->refresh_s < KM_POSTURE_REFRESH_MIN_S
	        || p->refresh_s > KM_POSTURE_REFRESH_MAX_S)) {
		return false;
	}
	for (i = 0; i < p->nbinaries; i++) {
		for (j = 0; j < i; j++) {
			if (memcmp(p->binaries[i], p->binaries[j], 32) == 0) {
				return false;
			}
		}
	}
	for (i = 0; i < p->nversions; i++) {
		if (p->versions[i][0] == '\0'
		    || !km_beacon_text_valid(
		        p->versions[i], KM_BEACON_VERSION_MAX)) {
			return false;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(p->versions[i], p->versions[j]) == 0) {
				return false;
			}
		}
	}
	for (i = 0; i < p->nmodels; i++) {
		if (p->models[i][0] == '\0'
		    || !km_beacon_text_valid(
		        p->models[i], KM_BEACON_TOKEN_MODEL_MAX)) {
			return false;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(p->models[i], p->models[j]) == 0) {
				return false;
			}
		}
	}
	return true;
}

int
km_posture_encode(const km_posture *p, km_buf *out)
{
	size_t i;

	if (p == NULL || out == NULL || !km_posture_ok(p)) {
		return KM_ERR_INVALID_ARG;
	}
	(void)km_buf_put_u32(out, KM_POSTURE_VERSION);
	(void)km_buf_put_u32(out, (uint32_t)p->nbinaries);
	for (i = 0; i < p->nbinaries; i++) {
		(void)km_buf_put_string(out, p->binaries[i], 32);
	}
	(void)km_buf_put_u32(out, (uint32_t)p->nversions);
	for (i = 0; i < p->nversions; i++) {
		(void)km_buf_put_cstring(out, p->versions[i]);
	}
	(void)km_buf_put_u32(out, (uint32_t)p->nmodels);
	for (i = 0; i < p->nmodels; i++) {
		(void)km_buf_put_cstring(out, p->models[i]);
	}
	(void)km_buf_put_u32(out, p->secure_boot ? 1u : 0u);
	(void)km_buf_put_u32(out, p->max_age_ms);
	(void)km_buf_put_u32(out, p->refresh_s);
	return km_buf_failed(out) ? KM_ERR_ALLOC : 0;
}

/* A bounded string into @dst (@max + 1 bytes), no NUL inside. */
static void
km_posture_get_text(km_buf *b, char *dst, size_t max)
{
	const uint8_t *p;
	size_t n;

	if (km_buf_get_string_ptr(b, &p, &n, max) != 0) {
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	if (strlen(dst) != n) {
		b->failed = true;
	}
}

/* A count, at most @max. */
static size_t
km_posture_get_count(km_buf *b, size_t max)
{
	uint32_t n = 0;

	if (km_buf_get_u32(b, &n) != 0) {
		return 0;
	}
	if (n > max) {
		b->failed = true;
		return 0;
	}
	return n;
}

int
km_posture_decode(const uint8_t *data, size_t len, km_posture *p)
{
	km_posture n;
	km_buf b;
	uint32_t version = 0, sb = 0;
	size_t i;

	if ((data == NULL && len > 0) || p == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_POSTURE_MAX_LEN) {
		return KM_ERR_TOO_LARGE;
	}
	km_posture_init(&n);
	km_buf_init_view(&b, data, len);
	if (km_buf_get_u32(&b, &version) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (version != KM_POSTURE_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	n.nbinaries = km_posture_get_count(&b, KM_POSTURE_MAX_BINARIES);
	for (i = 0; i < n.nbinaries && !km_buf_failed(&b); i++) {
		const uint8_t *h;
		size_t hl;

		if (km_buf_get_string_ptr(&b, &h, &hl, 32) == 0) {
			if (hl != 32) {
				b.failed = true;
			} else {
				memcpy(n.binaries[i], h, 32);
			}
		}
	}
	n.nversions = km_posture_get_count(&b, KM_POSTURE_MAX_VERSIONS);
	for (i = 0; i < n.nversions && !km_buf_failed(&b); i++) {
		km_posture_get_text(&b, n.versions[i], KM_BEACON_VERSION_MAX);
	}
	n.nmodels = km_posture_get_count(&b, KM_POSTURE_MAX_MODELS);
	for (i = 0; i < n.nmodels && !km_buf_failed(&b); i++) {
		km_posture_get_text(
		    &b, n.models[i], KM_BEACON_TOKEN_MODEL_MAX);
	}
	(void)km_buf_get_u32(&b, &sb);
	(void)km_buf_get_u32(&b, &n.max_age_ms);
	(void)km_buf_get_u32(&b, &n.refresh_s);
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0 || sb > 1) {
		return KM_ERR_BAD_FORMAT;
	}
	n.secure_boot = sb == 1;
	if (!km_posture_ok(&n)) {
		return KM_ERR_BAD_FORMAT;
	}
	*p = n;
	return 0;
}

bool
km_posture_check(
    const km_posture *p, const km_beacon *bc, char *why, size_t whylen)
{
	char hex[17];
	size_t i;
	bool found;

	if (whylen > 0) {
		why[0] = '\0';
	}
	if (p->nbinaries > 0) {
		for (i = 0, found = false; i < p->nbinaries && !found; i++) {
			found
			    = memcmp(p->binaries[i], bc->bin_sha256, 32) == 0;
		}
		if (!found) {
			/* 8 bytes name it well enough in one line */
			km_posture_hex(bc->bin_sha256, 8, hex, sizeof(hex));
			snprintf(why, whylen,
			    "binary sha256 %s...: not in the posture policy",
			    hex);
			return false;
		}
	}
	if (p->nversions > 0) {
		for (i = 0, found = false; i < p->nversions && !found; i++) {
			found = strcmp(p->versions[i], bc->version) == 0;
		}
		if (!found) {
			snprintf(why, whylen,
			    "version %s: not in the posture policy",
			    bc->version);
			return false;
		}
	}
	if (p->nmodels > 0) {
		for (i = 0, found = false; i < p->nmodels && !found; i++) {
			found = strcmp(p->models[i], bc->token_model) == 0;
		}
		if (!found) {
			snprintf(why, whylen,
			    "token model %s: not in the posture policy",
			    bc->token_model);
			return false;
		}
	}
	if (p->secure_boot && strcmp(bc->secure_boot, "on") != 0) {
		snprintf(why, whylen,
		    "secure boot %s: the posture policy requires it",
		    bc->secure_boot);
		return false;
	}
	return true;
}

/* ---- verdicts ---------------------------------------------------------- */

static bool
km_trust_verdict_ok(const km_trust_verdict *v)
{
	if (!km_name_valid(v->node) || !km_name_valid(v->coordinator)
	    || v->score > KM_TRUST_SCORE_MAX
	    || !km_beacon_text_valid(v->reason, KM_TRUST_REASON_MAX)) {
		return false;
	}
	switch (v->state) {
	case KM_TRUST_UP:
		return true;
	case KM_TRUST_QUARANTINED:
		return v->reason[0] != '\0';
	default:
		/* unreachable is observed, not decided; eviction takes
		 * members' votes (KM_CAT_EVICT), not one verdict */
		return false;
	}
}

int
km_trust_verdict_encode(const km_trust_verdict *v, km_buf *out)
{
	if (v == NULL || out == NULL || !km_trust_verdict_ok(v)) {
		return KM_ERR_INVALID_ARG;
	}
	(void)km_buf_put_cstring(out, v->node);
	(void)km_buf_put_cstring(out, v->coordinator);
	(void)km_buf_put_u32(out, (uint32_t)v->state);
	(void)km_buf_put_u32(out, v->score);
	(void)km_buf_put_cstring(out, v->reason);
	(void)km_buf_put_u64(out, v->beacon_seq);
	return km_buf_failed(out) ? KM_ERR_ALLOC : 0;
}

int
km_trust_verdict_decode(const uint8_t *data, size_t len, km_trust_verdict *v)
{
	km_trust_verdict n;
	uint32_t state = 0;
	km_buf b;

	if ((data == NULL && len > 0) || v == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&n, 0, sizeof(n));
	km_buf_init_view(&b, data, len);
	km_posture_get_text(&b, n.node, KM_NAME_MAX);
	km_posture_get_text(&b, n.coordinator, KM_NAME_MAX);
	(void)km_buf_get_u32(&b, &state);
	(void)km_buf_get_u32(&b, &n.score);
	km_posture_get_text(&b, n.reason, KM_TRUST_REASON_MAX);
	(void)km_buf_get_u64(&b, &n.beacon_seq);
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0 || state > 3) {
		return KM_ERR_BAD_FORMAT;
	}
	n.state = (km_trust_state)state;
	if (!km_trust_verdict_ok(&n)) {
		return KM_ERR_BAD_FORMAT;
	}
	*v = n;
	return 0;
}
