/*
 * Fuzz target: the trust beacon and trust graph decoders (src/trust).
 *
 * Selector byte % 5:
 *   0  a beacon body (km_beacon_decode): strict, so what decodes encodes
 *      back to exactly the input; every text is printable and in bounds,
 *      peers are valid, distinct names other than the node;
 *   1  a signed beacon (km_beacon_verify) against the TEST-ONLY CA in
 *      tests/fuzz/data/ca.crt, so the framing, the DER certificate parser
 *      and the signature check see the fuzzer's bytes; whatever passes
 *      names its signer, and a refusal leaves the output zeroed;
 *   2  a GRAPH reply (km_trust_view_decode): names distinct, each beacon
 *      names its node, a never-heard node is not up and has no age; the
 *      DOT drawing of any accepted view ends with "}\n";
 *   3  a posture policy (km_posture_decode): what decodes encodes back to
 *      exactly the input, every list a set within its bound;
 *   4  a trust verdict (km_trust_verdict_decode): the same round trip,
 *      state up or quarantined, a quarantine with a reason.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pki/pki.h"
#include "trust/beacon.h"
#include "trust/graph.h"
#include "trust/policy.h"
#include "util/buf.h"
#include "util/util.h"

static X509_STORE *fuzz_store;

static void
fuzz_beacon_init(void)
{
	const char *src = getenv("KM_SRCDIR");
	char path[4096];
	uint8_t *pem = NULL;
	size_t len = 0;
	char *text;

	if (fuzz_store != NULL) {
		return;
	}
	snprintf(path, sizeof(path), "%s/tests/fuzz/data/ca.crt",
	    src != NULL ? src : KM_SRCDIR);
	if (km_read_file(path, &pem, &len, 1u << 16) == 0
	    && (text = malloc(len + 1)) != NULL) {
		memcpy(text, pem, len);
		text[len] = '\0';
		(void)km_pki_store_load(text, NULL, &fuzz_store);
		free(text);
	}
	free(pem);
	if (fuzz_store == NULL) {
		KM_FUZZ_ASSERT((fuzz_store = X509_STORE_new()) != NULL);
	}
}

static void
fuzz_beacon_check(const km_beacon *bc)
{
	uint32_t i, j;

	KM_FUZZ_ASSERT(km_name_valid(bc->node));
	KM_FUZZ_ASSERT(
	    km_beacon_text_valid(bc->version, KM_BEACON_VERSION_MAX));
	KM_FUZZ_ASSERT(km_beacon_text_valid(bc->kernel, KM_BEACON_KERNEL_MAX));
	KM_FUZZ_ASSERT(bc->npeers <= KM_BEACON_MAX_PEERS);
	for (i = 0; i < bc->npeers; i++) {
		KM_FUZZ_ASSERT(km_name_valid(bc->peers[i].name));
		KM_FUZZ_ASSERT(strcmp(bc->peers[i].name, bc->node) != 0);
		for (j = 0; j < i; j++) {
			KM_FUZZ_ASSERT(
			    strcmp(bc->peers[i].name, bc->peers[j].name) != 0);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static km_beacon bc;
	static km_trust_view view;
	static const km_beacon zero;
	km_identity id;
	km_buf b, out;
	size_t i;

	if (size < 1) {
		return 0;
	}
	switch (data[0] % 5) {
	case 0:
		if (km_beacon_decode(data + 1, size - 1, &bc) == 0) {
			KM_FUZZ_ACCEPTED("beacon body");
			fuzz_beacon_check(&bc);
			km_buf_init(&out);
			KM_FUZZ_ASSERT(km_beacon_encode(&out, &bc) == 0);
			KM_FUZZ_ASSERT(km_fuzz_same(
			    out.data, out.len, data + 1, size - 1));
			km_buf_free(&out);
		}
		break;
	case 1:
		fuzz_beacon_init();
		if (km_beacon_verify(fuzz_store, data + 1, size - 1, &bc, &id)
		    == 0) {
			KM_FUZZ_ACCEPTED("signed beacon");
			fuzz_beacon_check(&bc);
			KM_FUZZ_ASSERT(strcmp(id.name, bc.node) == 0);
		} else {
			KM_FUZZ_ASSERT(memcmp(&bc, &zero, sizeof(bc)) == 0);
		}
		break;
	case 3: {
		static km_posture pol;

		if (km_posture_decode(data + 1, size - 1, &pol) == 0) {
			KM_FUZZ_ACCEPTED("posture policy");
			KM_FUZZ_ASSERT(pol.nbinaries <= KM_POSTURE_MAX_BINARIES
			    && pol.nversions <= KM_POSTURE_MAX_VERSIONS
			    && pol.nmodels <= KM_POSTURE_MAX_MODELS);
			km_buf_init(&out);
			KM_FUZZ_ASSERT(km_posture_encode(&pol, &out) == 0);
			KM_FUZZ_ASSERT(km_fuzz_same(
			    out.data, out.len, data + 1, size - 1));
			km_buf_free(&out);
		}
		break;
	}
	case 4: {
		km_trust_verdict v;

		if (km_trust_verdict_decode(data + 1, size - 1, &v) == 0) {
			KM_FUZZ_ACCEPTED("trust verdict");
			KM_FUZZ_ASSERT(v.state == KM_TRUST_UP
			    || (v.state == KM_TRUST_QUARANTINED
			        && v.reason[0] != '\0'));
			KM_FUZZ_ASSERT(v.score <= KM_TRUST_SCORE_MAX);
			km_buf_init(&out);
			KM_FUZZ_ASSERT(km_trust_verdict_encode(&v, &out) == 0);
			KM_FUZZ_ASSERT(km_fuzz_same(
			    out.data, out.len, data + 1, size - 1));
			km_buf_free(&out);
		}
		break;
	}
	default:
		km_buf_init_view(&b, data + 1, size - 1);
		if (km_trust_view_decode(&b, &view) == 0) {
			KM_FUZZ_ACCEPTED("graph view");
			KM_FUZZ_ASSERT(view.nnodes <= KM_TRUST_MAX_NODES);
			for (i = 0; i < view.nnodes; i++) {
				const km_trust_view_node *n = &view.nodes[i];

				KM_FUZZ_ASSERT(km_name_valid(n->name));
				if (n->have) {
					fuzz_beacon_check(&n->beacon);
					KM_FUZZ_ASSERT(
					    strcmp(n->beacon.node, n->name)
					    == 0);
				} else {
					/* never up; a verdict may say
					 * quarantined or evicted */
					KM_FUZZ_ASSERT(
					    n->state != KM_TRUST_UP
					    && n->age_ms == KM_TRUST_AGE_NONE);
				}
			}
			km_buf_init(&out);
			KM_FUZZ_ASSERT(km_trust_view_dot(&view, &out) == 0);
			KM_FUZZ_ASSERT(out.len >= 2
			    && memcmp(out.data + out.len - 2, "}\n", 2) == 0);
			km_buf_free(&out);
		}
		break;
	}
	return 0;
}
