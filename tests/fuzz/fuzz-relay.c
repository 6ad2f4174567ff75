/*
 * Fuzz target: the relay frames between a forked PKCS#11 child and its
 * keymesh-p11-relay helper (src/net/relay.h), through the stream reader
 * both ends use (km_relay_rx_next) and the frame decoder behind it.
 *
 * Input: bytes as they would arrive on the socket, any number of frames.
 * Invariants: every frame the reader accepts is a slice of the input in
 * order (uint32 length, then that many bytes) whose decoded fields are in
 * range and re-encode to exactly those bytes; the reader stops at the
 * first bad frame or when the bytes run out, never reading past them.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/relay.h"
#include "util/buf.h"
#include "util/err.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_relay_rx rx;
	km_relay_frame f;
	size_t off = 0, flen;
	km_buf b;
	int r;

	if (size == 0 || size > KM_RELAY_FRAME_MAX + 4) {
		return 0;
	}
	km_relay_rx_init(&rx);
	if ((rx.buf = malloc(size)) == NULL) {
		return 0;
	}
	memcpy(rx.buf, data, size);
	rx.len = rx.cap = size;
	km_buf_init(&b);
	while ((r = km_relay_rx_next(&rx, &f)) == 0) {
		KM_FUZZ_ACCEPTED("relay frame");
		KM_FUZZ_ASSERT(
		    f.type >= KM_RELAY_REQUEST && f.type <= KM_RELAY_HELLO);
		KM_FUZZ_ASSERT(f.body_len <= KM_NET_BODY_MAX);
		if (f.type == KM_RELAY_REQUEST) {
			KM_FUZZ_ASSERT(f.channel < KM_RELAY_CHANNELS
			    && f.node < KM_RELAY_NODES_MAX && f.timeout_ms > 0
			    && f.timeout_ms <= KM_RELAY_TIMEOUT_MAX_MS);
		}
		if (f.type == KM_RELAY_REPLY) {
			KM_FUZZ_ASSERT(f.code <= 0 && f.code >= KM_ERR_LAST);
		}
		km_buf_reset(&b);
		KM_FUZZ_ASSERT(km_relay_frame_encode(&b, &f) == 0);
		flen = b.len;
		KM_FUZZ_ASSERT(off + flen <= size);
		KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data + off, flen));
		off += flen;
	}
	KM_FUZZ_ASSERT(r == KM_ERR_NOT_FOUND || r == KM_ERR_BAD_FORMAT
	    || r == KM_ERR_TOO_LARGE || r == KM_ERR_BAD_VERSION);
	km_buf_free(&b);
	km_relay_rx_free(&rx);
	return 0;
}
