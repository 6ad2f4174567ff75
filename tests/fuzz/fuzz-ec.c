/*
 * Fuzz target: the EC threshold decoders (src/crypto/shamir.h, ec_ecdh.h,
 * ec_group.h) on P-256 and P-384: public sharing data (from the catalog),
 * shares (from the DKG and the store), ECDH partials with their proofs
 * (from every holder) and peer points (ECDH public data from applications).
 *
 * Input: a selector byte, then the encoding.
 *   bit 0 of the selector: the curve (0 P-256, 1 P-384);
 *   (selector >> 1) % 4: 0 km_ec_pub_decode, 1 km_ec_share_decode
 *   (max index 255), 2 km_ec_partial_decode, 3 km_ec_point_from_octets.
 *
 * Invariants: points are uncompressed and scalars fixed-length, so the
 * pub, share and partial encodings are canonical: what decodes encodes
 * back to the same bytes.  A decoded point is on the curve, not infinity,
 * and survives to_octets/from_octets; an uncompressed input is returned
 * unchanged.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/shamir.h"
#include "fuzz.h"
#include "util/buf.h"

static km_ec_group *fuzz_groups[2];

static void
fuzz_ec_init(void)
{
	if (fuzz_groups[0] != NULL) {
		return;
	}
	KM_FUZZ_ASSERT(
	    km_ec_group_new(NID_X9_62_prime256v1, &fuzz_groups[0]) == 0);
	KM_FUZZ_ASSERT(km_ec_group_new(NID_secp384r1, &fuzz_groups[1]) == 0);
}

static void
fuzz_point_ok(const km_ec_group *g, const EC_POINT *p)
{
	KM_FUZZ_ASSERT(p != NULL);
	KM_FUZZ_ASSERT(!EC_POINT_is_at_infinity(g->group, p));
	KM_FUZZ_ASSERT(EC_POINT_is_on_curve(g->group, p, NULL) == 1);
}

static void
fuzz_pub(const km_ec_group *g, const uint8_t *data, size_t size)
{
	km_ec_pub *p = NULL;
	km_buf b;
	uint32_t i;

	if (km_ec_pub_decode(g, data, size, &p) != 0) {
		KM_FUZZ_ASSERT(p == NULL);
		return;
	}
	KM_FUZZ_ACCEPTED("ec pub");
	KM_FUZZ_ASSERT(p->k >= 1 && p->k <= p->n && p->n <= KM_EC_MAX_INDEX);
	fuzz_point_ok(g, p->y);
	for (i = 0; i < p->n; i++) {
		fuzz_point_ok(g, p->vk[i]);
	}
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_ec_pub_encode(g, p, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	km_ec_pub_free(p);
}

static void
fuzz_share(const km_ec_group *g, const uint8_t *data, size_t size)
{
	km_ec_share *s = NULL;
	km_buf b;

	if (km_ec_share_decode(g, data, size, KM_EC_MAX_INDEX, &s) != 0) {
		KM_FUZZ_ASSERT(s == NULL);
		return;
	}
	KM_FUZZ_ACCEPTED("ec share");
	KM_FUZZ_ASSERT(s->index >= 1 && s->index <= KM_EC_MAX_INDEX);
	KM_FUZZ_ASSERT(!BN_is_zero(s->x) && BN_cmp(s->x, g->order) < 0);
	km_buf_init_secure(&b);
	KM_FUZZ_ASSERT(km_ec_share_encode(g, s, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	km_ec_share_free(s);
}

static void
fuzz_partial(const km_ec_group *g, const uint8_t *data, size_t size)
{
	km_ec_partial *p = NULL;
	km_buf b;

	if (km_ec_partial_decode(g, data, size, &p) != 0) {
		KM_FUZZ_ASSERT(p == NULL);
		return;
	}
	KM_FUZZ_ACCEPTED("ec partial");
	KM_FUZZ_ASSERT(p->index >= 1 && p->index <= KM_EC_MAX_INDEX);
	fuzz_point_ok(g, p->z);
	KM_FUZZ_ASSERT(BN_cmp(p->c, g->order) < 0);
	KM_FUZZ_ASSERT(BN_cmp(p->s, g->order) < 0);
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_ec_partial_encode(g, p, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	km_ec_partial_free(p);
}

static void
fuzz_point(const km_ec_group *g, const uint8_t *data, size_t size)
{
	EC_POINT *p = NULL, *q = NULL;
	uint8_t oct[1 + 2 * 66];

	if (km_ec_point_from_octets(g, data, size, &p) != 0) {
		KM_FUZZ_ASSERT(p == NULL);
		return;
	}
	KM_FUZZ_ACCEPTED("ec point");
	fuzz_point_ok(g, p);
	KM_FUZZ_ASSERT(g->plen <= sizeof(oct));
	KM_FUZZ_ASSERT(km_ec_point_to_octets(g, p, oct) == 0);
	if (size == g->plen) {
		KM_FUZZ_ASSERT(memcmp(oct, data, size) == 0);
	}
	KM_FUZZ_ASSERT(km_ec_point_from_octets(g, oct, g->plen, &q) == 0);
	KM_FUZZ_ASSERT(EC_POINT_cmp(g->group, p, q, NULL) == 0);
	EC_POINT_free(p);
	EC_POINT_free(q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const km_ec_group *g;
	unsigned sel;

	if (size < 1) {
		return 0;
	}
	fuzz_ec_init();
	g = fuzz_groups[data[0] & 1];
	sel = (data[0] >> 1) % 4;
	data++;
	size--;
	switch (sel) {
	case 0:
		fuzz_pub(g, data, size);
		break;
	case 1:
		fuzz_share(g, data, size);
		break;
	case 2:
		fuzz_partial(g, data, size);
		break;
	default:
		fuzz_point(g, data, size);
		break;
	}
	return 0;
}
