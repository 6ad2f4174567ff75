/*
 * Fuzz target: the key catalog decoders (src/store/catalog.h).  Catalog
 * entries come from the coordinator, from other replicas while catching up
 * and from the store's own log, so they are input like any other.
 *
 * Input: a selector byte, then the bytes of one message.
 *   selector % 16 == 0 or 15: a whole entry (km_catalog_entry_decode);
 *                       its payload is then decoded with its own type
 *   1 .. 9, 11, 12:     a payload of that km_catalog_type
 *   10:                 a key policy (km_catalog_policy_decode)
 *   13:                 an object's attribute list
 *                       (km_catalog_attrs_decode)
 *   14:                 an OBJECT_PUT payload (type 10, whose number the
 *                       policy selector already had)
 * A payload that carries a policy or an attribute list has it decoded as
 * well.  (The selectors below 11 are those of the older % 11 scheme, so
 * the existing corpus keeps its meaning.)
 *
 * Invariant: every decoder is strict (no trailing bytes, canonical
 * integers), so whatever decodes must encode back to exactly its input.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "store/catalog.h"
#include "util/buf.h"

#define FUZZ_SEL_ENTRY      0
#define FUZZ_SEL_POLICY     10
#define FUZZ_SEL_ATTRS      13
#define FUZZ_SEL_OBJECT_PUT 14
#define FUZZ_SEL_ENTRY2     15
#define FUZZ_SEL_COUNT      16

static void
fuzz_attrs(const uint8_t *data, size_t size)
{
	km_catalog_attr *a = NULL;
	size_t n = 0, i;
	km_buf b;

	if (km_catalog_attrs_decode(data, size, &a, &n) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("attrs");
	KM_FUZZ_ASSERT(n <= KM_CATALOG_ATTRS_MAX_ITEMS);
	for (i = 1; i < n; i++) {
		KM_FUZZ_ASSERT(a[i].type > a[i - 1].type);
	}
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_catalog_attrs_encode(a, n, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	free(a);
}

static void
fuzz_policy(const uint8_t *data, size_t size)
{
	km_catalog_policy p;
	km_buf b;
	size_t i;

	if (km_catalog_policy_decode(data, size, &p) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("policy");
	KM_FUZZ_ASSERT(p.nmechs <= KM_CATALOG_POLICY_MAX_ITEMS);
	KM_FUZZ_ASSERT(p.nclients <= KM_CATALOG_POLICY_MAX_ITEMS);
	for (i = 0; i < p.nclients; i++) {
		KM_FUZZ_ASSERT(km_name_valid(p.clients[i]));
	}
	/* exercised by every request's authorisation */
	(void)km_catalog_policy_allows(&p, 0x1, "client");
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_catalog_policy_encode(&p, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	km_catalog_policy_free(&p);
}

static void
fuzz_payload(uint32_t type, const uint8_t *data, size_t size)
{
	km_catalog_payload p;
	km_buf b;
	size_t i;

	if (km_catalog_payload_decode(type, data, size, &p) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("payload");
	KM_FUZZ_ASSERT(p.type == type);
	KM_FUZZ_ASSERT(p.nholders <= KM_CATALOG_MAX_HOLDERS);
	for (i = 0; i < p.nholders; i++) {
		KM_FUZZ_ASSERT(p.holders[i].index != 0);
		KM_FUZZ_ASSERT(km_name_valid(p.holders[i].node));
	}
	if (p.nholders > 0) {
		KM_FUZZ_ASSERT(p.threshold >= 1 && p.threshold <= p.nholders);
	}
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_catalog_payload_encode(&p, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	if (p.policy != NULL) {
		fuzz_policy(p.policy, p.policy_len);
	}
	if (p.attrs != NULL) {
		fuzz_attrs(p.attrs, p.attrs_len);
	}
	km_catalog_payload_free(&p);
}

static void
fuzz_entry(const uint8_t *data, size_t size)
{
	km_catalog_entry e;
	km_buf b;

	if (km_catalog_entry_decode(data, size, &e) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("entry");
	KM_FUZZ_ASSERT(e.seq != 0);
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_catalog_entry_encode(&e, &b) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_reset(&b);
	/* the signed bytes must be computable for any decoded entry */
	KM_FUZZ_ASSERT(km_catalog_entry_tbs(&e, &b) == 0);
	km_buf_free(&b);
	fuzz_payload(e.type, e.payload, e.payload_len);
	km_catalog_entry_clear(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel;

	if (size < 1) {
		return 0;
	}
	sel = data[0] % FUZZ_SEL_COUNT;
	data++;
	size--;
	if (sel == FUZZ_SEL_ENTRY || sel == FUZZ_SEL_ENTRY2) {
		fuzz_entry(data, size);
	} else if (sel == FUZZ_SEL_POLICY) {
		fuzz_policy(data, size);
	} else if (sel == FUZZ_SEL_ATTRS) {
		fuzz_attrs(data, size);
	} else if (sel == FUZZ_SEL_OBJECT_PUT) {
		fuzz_payload(KM_CAT_OBJECT_PUT, data, size);
	} else {
		fuzz_payload(sel, data, size);
	}
	return 0;
}
