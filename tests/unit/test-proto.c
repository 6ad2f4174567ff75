/*
 * Unit tests for the protocol headers (src/proto).
 */
#include "config.h"

#include <string.h>

#include "kmt.h"
#include "proto/proto.h"
#include "util/err.h"

static void
test_req_roundtrip(void)
{
	const km_msg_info *info = NULL;
	km_req_hdr h, back;
	km_buf b, r;

	memset(&h, 0, sizeof(h));
	h.type = KM_MSG_RSA_PARTIAL;
	strcpy(h.key_id, "key-01");
	h.epoch = 7;
	h.has_ticket = true;
	memset(h.ticket, 0x5a, sizeof(h.ticket));
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_req_encode_hdr(&b, &h) == 0);
	CU_ASSERT(km_buf_put_u32(&b, 42) == 0);
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT_FATAL(km_req_decode_hdr(&r, &back, &info) == 0);
	CU_ASSERT(info != NULL && strcmp(info->name, "rsa-partial") == 0);
	CU_ASSERT(back.type == h.type && back.epoch == 7);
	CU_ASSERT(strcmp(back.key_id, "key-01") == 0);
	CU_ASSERT(back.has_ticket &&
	    memcmp(back.ticket, h.ticket, sizeof(h.ticket)) == 0);
	CU_ASSERT(km_buf_remaining(&r) == 4);
	km_buf_free(&b);
}

static int
decode(const km_req_hdr *h, size_t cut, uint8_t version)
{
	const km_msg_info *info;
	km_req_hdr back;
	km_buf b, r;
	int rv;

	km_buf_init(&b);
	if (km_req_encode_hdr(&b, h) != 0) {
		km_buf_free(&b);
		return 1000;
	}
	b.data[0] = version;
	km_buf_init_view(&r, b.data, b.len - cut);
	rv = km_req_decode_hdr(&r, &back, &info);
	km_buf_free(&b);
	return rv;
}

static void
test_req_refusals(void)
{
	km_req_hdr h;
	size_t cut;

	memset(&h, 0, sizeof(h));
	h.type = KM_MSG_STATUS;
	CU_ASSERT(decode(&h, 0, KM_PROTO_VERSION) == 0);
	CU_ASSERT(decode(&h, 0, 9) == KM_ERR_BAD_VERSION);
	for (cut = 1; cut < 13; cut++) {
		CU_ASSERT(decode(&h, cut, KM_PROTO_VERSION) ==
		    KM_ERR_BAD_FORMAT);
	}
	/* a partial needs a key and a ticket */
	h.type = KM_MSG_RSA_PARTIAL;
	CU_ASSERT(decode(&h, 0, KM_PROTO_VERSION) == KM_ERR_BAD_FORMAT);
	strcpy(h.key_id, "k");
	CU_ASSERT(decode(&h, 0, KM_PROTO_VERSION) == KM_ERR_BAD_FORMAT);
	h.has_ticket = true;
	CU_ASSERT(decode(&h, 0, KM_PROTO_VERSION) == 0);
	/* encoding refuses what decoding would */
	strcpy(h.key_id, "../x");
	CU_ASSERT(decode(&h, 0, KM_PROTO_VERSION) == 1000);
	h.type = 9999;
	CU_ASSERT(decode(&h, 0, KM_PROTO_VERSION) == 1000);
}

static void
test_req_unknown_type_and_oversize(void)
{
	static const uint8_t unknown[] = { 1, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0 };
	const km_msg_info *info;
	km_req_hdr h;
	km_buf b;
	uint8_t big[5000];

	km_buf_init_view(&b, unknown, sizeof(unknown));
	CU_ASSERT(km_req_decode_hdr(&b, &h, &info) == KM_ERR_NOT_SUPPORTED);
	/* a status request over its 4 KiB limit is refused before parsing */
	memset(big, 0, sizeof(big));
	memcpy(big, unknown, sizeof(unknown));
	big[4] = KM_MSG_STATUS;
	km_buf_init_view(&b, big, sizeof(big));
	CU_ASSERT(km_req_decode_hdr(&b, &h, &info) == KM_ERR_TOO_LARGE);
}

static void
test_rep_roundtrip_and_refusals(void)
{
	km_rep_hdr h;
	km_buf b, r;

	km_buf_init(&b);
	CU_ASSERT(km_rep_encode_hdr(&b, KM_MSG_LOGIN, KM_ERR_PIN,
		      "incorrect PIN\nsecond line") == 0);
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT_FATAL(km_rep_decode_hdr(&r, &h) == 0);
	CU_ASSERT(h.status == KM_ERR_PIN && h.type == KM_MSG_LOGIN);
	CU_ASSERT(strcmp(h.message, "incorrect PIN") == 0);
	/* a status that is not ours */
	b.data[5] = 0x7f;
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_rep_decode_hdr(&r, &h) == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
}

static void
test_blobs(void)
{
	km_indexed_blob in[2] = { { 1, (const uint8_t *)"ab", 2 },
		{ 3, (const uint8_t *)"xyz", 3 } };
	km_indexed_blob out[4];
	km_buf b, r;
	size_t n;

	km_buf_init(&b);
	CU_ASSERT(km_proto_put_blobs(&b, in, 2) == 0);
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_proto_get_blobs(&r, out, 4, &n, 16) == 0 && n == 2);
	CU_ASSERT(out[1].index == 3 && out[1].len == 3 &&
	    memcmp(out[1].data, "xyz", 3) == 0);
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_proto_get_blobs(&r, out, 1, &n, 16) == KM_ERR_TOO_LARGE);
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_proto_get_blobs(&r, out, 4, &n, 2) == KM_ERR_TOO_LARGE);
	b.data[7] = 0; /* index 0 */
	km_buf_init_view(&r, b.data, b.len);
	CU_ASSERT(km_proto_get_blobs(&r, out, 4, &n, 16) == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
}

static const kmt_test proto_tests[] = {
	{ "req_roundtrip", test_req_roundtrip },
	{ "req_refusals", test_req_refusals },
	{ "req_unknown_type_and_oversize", test_req_unknown_type_and_oversize },
	{ "rep_roundtrip_and_refusals", test_rep_roundtrip_and_refusals },
	{ "blobs", test_blobs },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "proto", NULL, NULL, proto_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
