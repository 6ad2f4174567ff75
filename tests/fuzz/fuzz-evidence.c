/*
 * Fuzz target: evidence of a bad partial (src/trust/evidence.h), the bytes
 * any enrolled client can send a daemon in an evidence request, checked
 * there before anything is logged or acted on.
 *
 * Input: one evidence blob.  Invariants: a blob the outer decoder accepts
 * re-encodes to exactly the input; evidence that verifies names a node
 * that holds the accused index in the catalog, an index that is non-zero,
 * and a hash of the input.
 *
 * The check runs against the TEST-ONLY CA of tests/fuzz/data/evidence-ca.crt
 * and a catalog with two keys, "rsa1" (tests/fuzz/data/evidence-rsa.pub)
 * and "ec1" (evidence-ec.pub), each at epoch 1 with index i on node i; the
 * seeds (corpus/evidence/, made by `test-evidence --gen-corpus`) are
 * exchanges signed by that CA's client and nodes.  "Now" is taken from the
 * request envelope's own timestamp, so stored seeds stay fresh and reach
 * the request and reply decoders and the proofs.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "fuzz.h"
#include "net/envelope.h"
#include "pki/pki.h"
#include "trust/evidence.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/util.h"

static X509_STORE *fuzz_store;
static km_buf fuzz_rsa, fuzz_ec;
static int fuzz_ready;

static void
fuzz_read(const char *name, km_buf *b)
{
	const char *src = getenv("KM_SRCDIR");
	char path[4096];
	uint8_t *data = NULL;
	size_t len = 0;

	km_buf_init(b);
	snprintf(path, sizeof(path), "%s/tests/fuzz/data/%s",
	    src != NULL ? src : KM_SRCDIR, name);
	if (km_read_file(path, &data, &len, 1u << 16) == 0) {
		(void)km_buf_put_raw(b, data, len);
	}
	free(data);
}

static void
fuzz_ev_init(void)
{
	km_buf ca;
	char *text;

	if (fuzz_ready) {
		return;
	}
	fuzz_ready = 1;
	fuzz_read("evidence-ca.crt", &ca);
	fuzz_read("evidence-rsa.pub", &fuzz_rsa);
	fuzz_read("evidence-ec.pub", &fuzz_ec);
	if (ca.len > 0 && (text = malloc(ca.len + 1)) != NULL) {
		memcpy(text, ca.data, ca.len);
		text[ca.len] = '\0';
		(void)km_pki_store_load(text, NULL, &fuzz_store);
		free(text);
	}
	km_buf_free(&ca);
	if (fuzz_store == NULL) {
		/* no CA: every certificate fails the chain check */
		KM_FUZZ_ASSERT((fuzz_store = X509_STORE_new()) != NULL);
	}
}

static int
fuzz_lookup(void *arg, const char *key_id, uint32_t epoch, km_evidence_key *k)
{
	const km_buf *pub;
	uint32_t i;

	(void)arg;
	if (epoch != 1) {
		return KM_ERR_NOT_FOUND;
	}
	if (strcmp(key_id, "rsa1") == 0) {
		k->key_type = KM_EVIDENCE_KEY_RSA;
		pub = &fuzz_rsa;
	} else if (strcmp(key_id, "ec1") == 0) {
		k->key_type = KM_EVIDENCE_KEY_EC_P256;
		pub = &fuzz_ec;
	} else {
		return KM_ERR_NOT_FOUND;
	}
	if (pub->len == 0) {
		return KM_ERR_NOT_FOUND;
	}
	KM_FUZZ_ASSERT(km_buf_put_raw(&k->pub, pub->data, pub->len) == 0);
	k->nholders = 3;
	for (i = 0; i < 3; i++) {
		k->holders[i].index = i + 1;
		snprintf(k->holders[i].node, sizeof(k->holders[i].node),
		    "node%u", i + 1);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *q, *p;
	size_t ql, pl;
	uint64_t now = 0;
	km_evidence_result res;
	km_env e;
	km_buf b;
	char why[200], want[KM_NAME_MAX + 8];

	fuzz_ev_init();
	if (km_evidence_parse(data, size, &q, &ql, &p, &pl) != 0) {
		/* the full check must refuse it the same way */
		KM_FUZZ_ASSERT(km_evidence_verify(data, size, fuzz_store, 0,
		                   fuzz_lookup, NULL, &res, why, sizeof(why))
		    != 0);
		return 0;
	}
	KM_FUZZ_ACCEPTED("evidence blob");
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_evidence_encode(&b, q, ql, p, pl) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
	if (km_env_parse(q, ql, KM_EVIDENCE_ENV_MAX, &e) == 0) {
		now = e.ts_ms;
	}
	if (km_evidence_verify(data, size, fuzz_store, now, fuzz_lookup, NULL,
	        &res, why, sizeof(why))
	    == 0) {
		KM_FUZZ_ACCEPTED("evidence");
		KM_FUZZ_ASSERT(res.index >= 1 && res.index <= 3);
		KM_FUZZ_ASSERT(res.accused[0] != '\0');
		/* the seeds' node N holds index N */
		snprintf(want, sizeof(want), "node%u", (unsigned)res.index);
		KM_FUZZ_ASSERT(strcmp(res.accused, want) == 0);
		KM_FUZZ_ASSERT(res.what[0] != '\0');
	} else {
		/* a refusal always says why, on one line */
		KM_FUZZ_ASSERT(why[0] != '\0' && strchr(why, '\n') == NULL);
	}
	return 0;
}
