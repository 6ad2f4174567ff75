/*
 * Fuzz target: the request and reply header decoders and the indexed-blob
 * list decoder, fed the same bytes.  They must never crash, read out of
 * bounds or leak, and must accept exactly what re-encodes to itself.
 *
 * The reply decoder refuses a message with a line break or a NUL, so every
 * reply it accepts re-encodes to itself too.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/proto.h"
#include "util/buf.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const km_msg_info *info = NULL;
	km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
	km_req_hdr h;
	km_rep_hdr rh;
	km_buf b, out;
	size_t n;

	km_buf_init_view(&b, data, size);
	if (km_req_decode_hdr(&b, &h, &info) == 0) {
		/* what decodes must re-encode to the same prefix */
		km_buf_init(&out);
		KM_FUZZ_ACCEPTED("request header");
		KM_FUZZ_ASSERT(km_req_encode_hdr(&out, &h) == 0);
		KM_FUZZ_ASSERT(
		    out.len <= size && memcmp(out.data, data, out.len) == 0);
		km_buf_free(&out);
		(void)km_proto_get_blobs(
		    &b, blobs, KM_PROTO_MAX_INDICES, &n, 4096);
	}
	km_buf_init_view(&b, data, size);
	if (km_rep_decode_hdr(&b, &rh) == 0) {
		KM_FUZZ_ACCEPTED("reply header");
		KM_FUZZ_ASSERT(rh.status <= 0);
		KM_FUZZ_ASSERT(strpbrk(rh.message, "\r\n") == NULL);
		km_buf_init(&out);
		KM_FUZZ_ASSERT(km_rep_encode_hdr(&out, rh.type, rh.status,
				   rh.message) == 0);
		KM_FUZZ_ASSERT(
		    out.len <= size && memcmp(out.data, data, out.len) == 0);
		km_buf_free(&out);
		(void)km_proto_get_blobs(
		    &b, blobs, KM_PROTO_MAX_INDICES, &n, 4096);
	}
	return 0;
}
