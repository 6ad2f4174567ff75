/* Checking evidence of a bad partial: see evidence.h.  XXX not built yet. */
#include "config.h"

#include <stdio.h>

#include "daemon/evidence.h"
#include "util/err.h"

int
kmd_evidence_check(kmd_state *st, const uint8_t *ev, size_t len,
    kmd_evidence_info *info, char *why, size_t whylen)
{
	(void)st;
	(void)ev;
	(void)len;
	(void)info;
	snprintf(why, whylen, "evidence checking is not built");
	return KM_ERR_NOT_SUPPORTED;
}
