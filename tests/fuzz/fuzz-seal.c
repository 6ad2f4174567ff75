/*
 * Fuzz target: km_unseal (src/pki/seal.h), which opens the sealed boxes a
 * DKG coordinator relays between members: the bytes come from another
 * machine.
 *
 * Input: one sealed box.  It is opened with a fixed, TEST-ONLY P-256 key
 * (below; the corpus generator seals to the same key) and a fixed context.
 * Invariant: a box that opens yields exactly its ciphertext length of
 * plaintext; a box that does not open leaves the output buffer empty.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fuzz.h"
#include "fuzz-seal.h"
#include "pki/seal.h"
#include "util/buf.h"

static EVP_PKEY *fuzz_key;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_buf out;
	BIO *bio;
	int r;

	if (fuzz_key == NULL) {
		KM_FUZZ_ASSERT(
		    (bio = BIO_new_mem_buf(km_fuzz_seal_key_pem, -1)) != NULL);
		fuzz_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
		KM_FUZZ_ASSERT(fuzz_key != NULL);
	}
	km_buf_init_secure(&out);
	r = km_unseal(fuzz_key, KM_FUZZ_SEAL_AAD, strlen(KM_FUZZ_SEAL_AAD),
	    data, size, &out);
	if (r == 0) {
		KM_FUZZ_ACCEPTED("sealed box");
		KM_FUZZ_ASSERT(size >= KM_SEAL_OVERHEAD);
		KM_FUZZ_ASSERT(out.len == size - KM_SEAL_OVERHEAD);
	} else {
		KM_FUZZ_ASSERT(out.len == 0);
	}
	km_buf_free(&out);
	return 0;
}
