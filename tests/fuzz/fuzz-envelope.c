/*
 * Fuzz target: the signed envelope (src/net/envelope.h), the first decoder
 * a network peer's bytes reach, then the certificate and signature check
 * behind it, and the error-envelope body.
 *
 * Input: the raw bytes of one envelope, as they arrive in an nng message.
 * Invariants: a parsed envelope's fields are slices of the input in wire
 * order that re-encode to exactly the input (so no byte is skipped or read
 * twice, and what the signature covers is the prefix before it); an error
 * body decodes to a negative KM_ERR_* that survives a round trip.
 *
 * The check runs against an X509_STORE holding the test-only CA of
 * tests/fuzz/data/ (the corpus envelopes are signed by a client of that CA),
 * so the fuzzer can reach the DER certificate parser, the identity check and
 * the ECDSA verify with bytes of its own.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "fuzz.h"
#include "net/envelope.h"
#include "pki/pki.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/util.h"

#define FUZZ_BODY_MAX (64u << 10)

static X509_STORE *fuzz_store;
static km_verifier *fuzz_verifier;

/* Once per process: the CA store and a small verifier cache. */
static void
fuzz_env_init(void)
{
	const char *src = getenv("KM_SRCDIR");
	char path[4096];
	uint8_t *pem = NULL;
	size_t len = 0;
	char *text;

	if (fuzz_verifier != NULL) {
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
		/* no CA: every certificate fails the chain check */
		KM_FUZZ_ASSERT((fuzz_store = X509_STORE_new()) != NULL);
	}
	KM_FUZZ_ASSERT(km_verifier_new(16, &fuzz_verifier) == 0);
}

/* The envelope must be exactly its fields in wire order. */
static void
fuzz_env_check(const uint8_t *data, size_t size, const km_env *e)
{
	km_buf b;

	KM_FUZZ_ACCEPTED("envelope");
	KM_FUZZ_ASSERT(e->type >= KM_ENV_REQUEST && e->type <= KM_ENV_ERROR);
	KM_FUZZ_ASSERT(e->cert_len > 0 && e->cert_len <= KM_ENV_CERT_MAX);
	KM_FUZZ_ASSERT(e->sig_len > 0 && e->sig_len <= KM_ENV_SIG_MAX);
	KM_FUZZ_ASSERT(e->body_len <= FUZZ_BODY_MAX);
	KM_FUZZ_ASSERT(e->signed_data == data);
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_buf_put_raw(&b, KM_ENV_MAGIC, 4) == 0
	    && km_buf_put_u8(&b, KM_ENV_VERSION) == 0
	    && km_buf_put_u8(&b, e->type) == 0
	    && km_buf_put_string(&b, e->cert, e->cert_len) == 0
	    && km_buf_put_u64(&b, e->ts_ms) == 0
	    && km_buf_put_raw(&b, e->nonce, KM_ENV_NONCE_LEN) == 0
	    && km_buf_put_string(&b, e->body, e->body_len) == 0);
	KM_FUZZ_ASSERT(
	    km_fuzz_same(b.data, b.len, e->signed_data, e->signed_len));
	KM_FUZZ_ASSERT(km_buf_put_string(&b, e->sig, e->sig_len) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(b.data, b.len, data, size));
	km_buf_free(&b);
}

/* An error body: a negative code, stable through encode and decode. */
static void
fuzz_error_body(const uint8_t *data, size_t size)
{
	km_buf b;
	int code = 0, again = 0;

	if (km_env_error_parse(data, size, &code) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("error body");
	KM_FUZZ_ASSERT(code < 0 && code >= KM_ERR_LAST);
	km_buf_init(&b);
	KM_FUZZ_ASSERT(km_env_error_body(&b, code, "fuzz") == 0);
	KM_FUZZ_ASSERT(km_env_error_parse(b.data, b.len, &again) == 0);
	KM_FUZZ_ASSERT(again == code);
	km_buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_identity id;
	km_env e;

	fuzz_env_init();
	if (km_env_parse(data, size, FUZZ_BODY_MAX, &e) == 0) {
		fuzz_env_check(data, size, &e);
		/* what a server does next: certificate, then signature */
		if (km_verifier_check(fuzz_verifier, fuzz_store, 1, NULL, &e,
		        KM_ROLE_NONE, &id)
		    == 0) {
			KM_FUZZ_ACCEPTED("signature");
			KM_FUZZ_ASSERT(id.name[0] != '\0');
		}
		if (e.type == KM_ENV_ERROR) {
			fuzz_error_body(e.body, e.body_len);
		}
	}
	/* the same bytes as an error body, so that decoder is fuzzed too */
	fuzz_error_body(data, size);
	return 0;
}
