/*
 * Trust beacons: the strict codec, signing and verification.
 *
 * The byte format is in docs/PROTOCOL.md ("Trust beacons") and
 * docs/trust.md.  The decoder accepts exactly what the encoder writes: a
 * field out of bounds is refused on both sides, so a node cannot make a
 * beacon that its peers would decode differently.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "trust/beacon.h"
#include "util/err.h"
#include "util/util.h"

bool
km_beacon_text_valid(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		/* printable ASCII only: a peer must not write into logs,
		 * tables or DOT labels what it likes */
		if (i >= max || s[i] < 0x20 || s[i] > 0x7e || s[i] == '"'
		    || s[i] == '\\') {
			return false;
		}
	}
	return true;
}

static int
km_beacon_put_text(km_buf *b, const char *s, size_t max)
{
	if (!km_beacon_text_valid(s, max)) {
		return KM_ERR_INVALID_ARG;
	}
	return km_buf_put_cstring(b, s);
}

int
km_beacon_encode(km_buf *b, const km_beacon *bc)
{
	uint32_t i, j;
	int r;

	if (!km_name_valid(bc->node) || bc->npeers > KM_BEACON_MAX_PEERS) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < bc->npeers; i++) {
		if (!km_name_valid(bc->peers[i].name)
		    || strcmp(bc->peers[i].name, bc->node) == 0) {
			return KM_ERR_INVALID_ARG;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(bc->peers[i].name, bc->peers[j].name)
			    == 0) {
				return KM_ERR_INVALID_ARG;
			}
		}
	}
	if ((r = km_buf_put_u32(b, KM_BEACON_VERSION)) != 0
	    || (r = km_buf_put_cstring(b, bc->node)) != 0
	    || (r = km_buf_put_u64(b, bc->seq)) != 0
	    || (r = km_buf_put_u64(b, bc->time_ms)) != 0
	    || (r = km_buf_put_u32(b, bc->interval_ms)) != 0
	    || (r = km_beacon_put_text(b, bc->version, KM_BEACON_VERSION_MAX))
	        != 0
	    || (r = km_buf_put_string(b, bc->bin_sha256, 32)) != 0
	    || (r = km_buf_put_string(b, bc->conf_sha256, 32)) != 0
	    || (r = km_beacon_put_text(
	            b, bc->token_manuf, KM_BEACON_TOKEN_MANUF_MAX))
	        != 0
	    || (r = km_beacon_put_text(
	            b, bc->token_model, KM_BEACON_TOKEN_MODEL_MAX))
	        != 0
	    || (r = km_beacon_put_text(
	            b, bc->token_serial, KM_BEACON_TOKEN_SERIAL_MAX))
	        != 0
	    || (r = km_beacon_put_text(
	            b, bc->token_firmware, KM_BEACON_FIRMWARE_MAX))
	        != 0
	    || (r = km_buf_put_u32(b, bc->token_flags)) != 0
	    || (r = km_beacon_put_text(b, bc->kernel, KM_BEACON_KERNEL_MAX))
	        != 0
	    || (r = km_beacon_put_text(
	            b, bc->secure_boot, KM_BEACON_SECBOOT_MAX))
	        != 0
	    || (r = km_buf_put_u64(b, bc->uptime_ms)) != 0
	    || (r = km_buf_put_u32(b, bc->load_milli)) != 0
	    || (r = km_buf_put_u32(b, bc->queue_depth)) != 0
	    || (r = km_buf_put_u64(b, bc->requests)) != 0
	    || (r = km_buf_put_u64(b, bc->refused)) != 0
	    || (r = km_buf_put_u64(b, bc->errors)) != 0
	    || (r = km_buf_put_u32(b, bc->npeers)) != 0) {
		return r;
	}
	for (i = 0; i < bc->npeers; i++) {
		if ((r = km_buf_put_cstring(b, bc->peers[i].name)) != 0
		    || (r = km_buf_put_u32(b, bc->peers[i].rtt_us)) != 0
		    || (r = km_buf_put_u32(b, bc->peers[i].bw_kbps)) != 0) {
			return r;
		}
	}
	return 0;
}

/* A bounded printable string into @out (@max + 1 bytes). */
static int
km_beacon_get_text(km_buf *b, char *out, size_t max)
{
	const uint8_t *p;
	size_t n;

	if (km_buf_get_string_ptr(b, &p, &n, max) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	/* an embedded NUL would shorten the text: refuse it too */
	if (strlen(out) != n || !km_beacon_text_valid(out, max)) {
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

static int
km_beacon_get_name(km_buf *b, char *out)
{
	if (km_beacon_get_text(b, out, KM_NAME_MAX) != 0
	    || !km_name_valid(out)) {
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

static int
km_beacon_get_hash(km_buf *b, uint8_t out[32])
{
	const uint8_t *p;
	size_t n;

	if (km_buf_get_string_ptr(b, &p, &n, 32) != 0 || n != 32) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(out, p, 32);
	return 0;
}

int
km_beacon_decode(const uint8_t *data, size_t len, km_beacon *bc)
{
	km_buf b;
	uint32_t version, i, j;

	memset(bc, 0, sizeof(*bc));
	if (len > KM_BEACON_BODY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_init_view(&b, data, len);
	if (km_buf_get_u32(&b, &version) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (version != KM_BEACON_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if (km_beacon_get_name(&b, bc->node) != 0
	    || km_buf_get_u64(&b, &bc->seq) != 0
	    || km_buf_get_u64(&b, &bc->time_ms) != 0
	    || km_buf_get_u32(&b, &bc->interval_ms) != 0
	    || km_beacon_get_text(&b, bc->version, KM_BEACON_VERSION_MAX) != 0
	    || km_beacon_get_hash(&b, bc->bin_sha256) != 0
	    || km_beacon_get_hash(&b, bc->conf_sha256) != 0
	    || km_beacon_get_text(
	           &b, bc->token_manuf, KM_BEACON_TOKEN_MANUF_MAX)
	        != 0
	    || km_beacon_get_text(
	           &b, bc->token_model, KM_BEACON_TOKEN_MODEL_MAX)
	        != 0
	    || km_beacon_get_text(
	           &b, bc->token_serial, KM_BEACON_TOKEN_SERIAL_MAX)
	        != 0
	    || km_beacon_get_text(
	           &b, bc->token_firmware, KM_BEACON_FIRMWARE_MAX)
	        != 0
	    || km_buf_get_u32(&b, &bc->token_flags) != 0
	    || km_beacon_get_text(&b, bc->kernel, KM_BEACON_KERNEL_MAX) != 0
	    || km_beacon_get_text(&b, bc->secure_boot, KM_BEACON_SECBOOT_MAX)
	        != 0
	    || km_buf_get_u64(&b, &bc->uptime_ms) != 0
	    || km_buf_get_u32(&b, &bc->load_milli) != 0
	    || km_buf_get_u32(&b, &bc->queue_depth) != 0
	    || km_buf_get_u64(&b, &bc->requests) != 0
	    || km_buf_get_u64(&b, &bc->refused) != 0
	    || km_buf_get_u64(&b, &bc->errors) != 0
	    || km_buf_get_u32(&b, &bc->npeers) != 0) {
		goto bad;
	}
	if (bc->npeers > KM_BEACON_MAX_PEERS) {
		goto bad;
	}
	for (i = 0; i < bc->npeers; i++) {
		km_beacon_peer *p = &bc->peers[i];

		if (km_beacon_get_name(&b, p->name) != 0
		    || km_buf_get_u32(&b, &p->rtt_us) != 0
		    || km_buf_get_u32(&b, &p->bw_kbps) != 0
		    || strcmp(p->name, bc->node) == 0) {
			goto bad;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(p->name, bc->peers[j].name) == 0) {
				goto bad;
			}
		}
	}
	if (km_buf_remaining(&b) != 0) {
		goto bad;
	}
	return 0;
bad:
	memset(bc, 0, sizeof(*bc));
	return KM_ERR_BAD_FORMAT;
}

int
km_beacon_sign(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len,
    const km_beacon *bc, km_buf *out)
{
	km_buf body;
	uint8_t *sig = NULL;
	size_t siglen = 0;
	int r;

	km_buf_init(&body);
	if (cert_len == 0 || cert_len > KM_BEACON_CERT_MAX) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = km_beacon_encode(&body, bc)) != 0) {
		goto out;
	}
	if (body.len > KM_BEACON_BODY_MAX) {
		r = KM_ERR_TOO_LARGE;
		goto out;
	}
	if ((r = km_pki_sign(key, body.data, body.len, &sig, &siglen)) != 0) {
		goto out;
	}
	if ((r = km_buf_put_string(out, body.data, body.len)) != 0
	    || (r = km_buf_put_string(out, cert_der, cert_len)) != 0
	    || (r = km_buf_put_string(out, sig, siglen)) != 0) {
		goto out;
	}
	r = 0;
out:
	free(sig);
	km_buf_free(&body);
	return r;
}

int
km_beacon_verify(X509_STORE *store, const uint8_t *data, size_t len,
    km_beacon *bc, km_identity *signer)
{
	const uint8_t *body, *cert, *sig;
	size_t blen, clen, slen;
	km_identity id;
	km_buf b;
	int r;

	memset(bc, 0, sizeof(*bc));
	if (len > KM_BEACON_SIGNED_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_init_view(&b, data, len);
	if (km_buf_get_string_ptr(&b, &body, &blen, KM_BEACON_BODY_MAX) != 0
	    || km_buf_get_string_ptr(&b, &cert, &clen, KM_BEACON_CERT_MAX) != 0
	    || km_buf_get_string_ptr(&b, &sig, &slen, KM_BEACON_SIG_MAX) != 0
	    || km_buf_remaining(&b) != 0 || clen == 0 || slen == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	/* decode before the costly checks: malformed input is refused
	 * cheaply, and nothing below trusts its contents until verified */
	if ((r = km_beacon_decode(body, blen, bc)) != 0) {
		return r;
	}
	if ((r = km_pki_verify_signed(
	         store, cert, clen, KM_ROLE_NODE, body, blen, sig, slen, &id))
	    != 0) {
		goto out;
	}
	/* a node speaks only for itself */
	if (strcmp(id.name, bc->node) != 0) {
		r = KM_ERR_AUTH;
		goto out;
	}
	if (signer != NULL) {
		*signer = id;
	}
	r = 0;
out:
	if (r != 0) {
		memset(bc, 0, sizeof(*bc));
	}
	return r;
}

int
km_beacon_check_fresh(const km_beacon *bc, uint64_t now_ms,
    uint32_t max_age_ms, uint32_t skew_ms)
{
	if (bc->time_ms > now_ms + skew_ms) {
		return KM_ERR_STALE; /* from the future: a clock off, or a
		                         beacon kept for later */
	}
	if (bc->time_ms + max_age_ms < now_ms) {
		return KM_ERR_STALE;
	}
	return 0;
}
