/*
 * Shares at rest: wrapped by the backend token, stored in the state store.
 *
 * A share is wrapped (AES-256-GCM inside the token) with additional data
 * naming its key, epoch, index and this node before it reaches SQLite, and
 * unwrapped into locked memory only for the one operation that uses it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/kmd.h"
#include "daemon/token.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"

int
kmd_share_store(kmd_state *st, const char *key_id, uint32_t epoch,
    uint32_t index, const uint8_t *share, size_t len)
{
	kmd_wrap_ctx ctx = { key_id, epoch, index, st->cfg.name };
	uint8_t *blob = NULL;
	size_t bloblen = 0;
	int r;

	if ((r = kmd_token_wrap(st->token, &ctx, share, len, &blob,
		 &bloblen)) != 0) {
		km_log_error_r(r, "KMD-WRAP-FAIL", "cannot wrap %s/%u/%u",
		    key_id, epoch, index);
		return r;
	}
	r = km_store_share_prepare(st->store, key_id, epoch, index, blob,
	    bloblen, 0);
	free(blob);
	return r;
}

int
kmd_share_load(kmd_state *st, const char *key_id, uint32_t epoch,
    uint32_t index, km_buf *out)
{
	kmd_wrap_ctx ctx = { key_id, epoch, index, st->cfg.name };
	km_share_state state;
	uint8_t *blob = NULL;
	size_t bloblen = 0;
	int r;

	if ((r = km_store_share_get(st->store, key_id, epoch, index, &state,
		 &blob, &bloblen)) != 0) {
		return r;
	}
	if (state != KM_SHARE_COMMITTED) {
		free(blob);
		return KM_ERR_STATE;
	}
	r = kmd_token_unwrap(st->token, &ctx, blob, bloblen, out);
	free(blob);
	if (r != 0) {
		km_log_error_r(r, "KMD-UNWRAP-FAIL", "cannot unwrap %s/%u/%u",
		    key_id, epoch, index);
	}
	return r;
}
