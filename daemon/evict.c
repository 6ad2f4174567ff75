/* Eviction by the members' votes: see evidence.h.  XXX not built yet. */
#include "config.h"

#include <stdio.h>

#include "daemon/evidence.h"
#include "util/err.h"

int
kmd_evict_on_evidence(kmd_state *st, const kmd_evidence_info *info,
    const uint8_t *ev, size_t len, char *why, size_t whylen)
{
	(void)st;
	(void)info;
	(void)ev;
	(void)len;
	snprintf(why, whylen, "eviction is not built");
	return KM_ERR_NOT_SUPPORTED;
}
