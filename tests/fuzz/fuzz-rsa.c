/*
 * Fuzz target: the threshold RSA decoders (src/crypto/rsa.h): public key
 * data (from the catalog), shares (from the dealer, then the store),
 * partial results (from every holder, to the PKCS#11 module) and re-share
 * dealings (from other holders).
 *
 * Input: a selector byte, then the encoding.
 *   selector % 7: 0 km_rsa_pub_decode;
 *                 1, 2 km_rsa_share_decode;
 *                 3, 4 km_rsa_partial_decode;
 *                 5, 6 km_rsa_subdeal_decode;
 *   the odd/even choice among 1..6 selects the key it is decoded against:
 *   odd, a Shoup key dealt from the safe primes of tests/data/rsa/ (with
 *   verification keys, so partials carry proofs and dealings commitments);
 *   even, tests/data/rsa/import-2048.der split by km_rsa_import (no
 *   verification keys).  Both are made once per process, 2-of-3.  Their
 *   public parameters (N, k, n, bounds) are fixed by the fixtures, so the
 *   committed corpus decodes against them although the shares are dealt
 *   afresh in every run.
 *
 * Invariant: integers on the wire need not be minimal (km_buf_get_bn takes
 * leading zeros), so the check is that re-encoding is stable: decode,
 * encode, decode again, encode again gives the same bytes both times.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>

#include "crypto/rsa.h"
#include "fuzz.h"
#include "util/buf.h"
#include "util/util.h"

#define FUZZ_K 2
#define FUZZ_N 3

static km_rsa_pub *fuzz_dealt;    /* with verification keys */
static km_rsa_pub *fuzz_imported; /* without */

static const char *
fuzz_data_path(const char *name)
{
	static char path[4096];
	const char *src = getenv("KM_SRCDIR");

	snprintf(path, sizeof(path), "%s/tests/data/rsa/%s",
	    src != NULL ? src : KM_SRCDIR, name);
	return path;
}

static void
fuzz_rsa_init(void)
{
	km_rsa_share *sh[FUZZ_N] = { NULL };
	BIGNUM *p = NULL, *q = NULL;
	char line[2048];
	uint8_t *der = NULL;
	size_t len = 0;
	FILE *fp;

	if (fuzz_dealt != NULL) {
		return;
	}
	fp = fopen(fuzz_data_path("safe-2048.txt"), "r");
	KM_FUZZ_ASSERT(fp != NULL);
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "p=", 2) == 0) {
			KM_FUZZ_ASSERT(BN_hex2bn(&p, line + 2) > 0);
		} else if (strncmp(line, "q=", 2) == 0) {
			KM_FUZZ_ASSERT(BN_hex2bn(&q, line + 2) > 0);
		}
	}
	fclose(fp);
	KM_FUZZ_ASSERT(p != NULL && q != NULL);
	KM_FUZZ_ASSERT(km_rsa_deal_from_primes(
	                   p, q, NULL, FUZZ_K, FUZZ_N, &fuzz_dealt, sh)
	    == 0);
	km_rsa_shares_free(sh, FUZZ_N);
	BN_clear_free(p);
	BN_clear_free(q);
	KM_FUZZ_ASSERT(km_read_file(fuzz_data_path("import-2048.der"), &der,
	                   &len, 1u << 16)
	    == 0);
	KM_FUZZ_ASSERT(
	    km_rsa_import(der, len, FUZZ_K, FUZZ_N, &fuzz_imported, sh) == 0);
	km_rsa_shares_free(sh, FUZZ_N);
	free(der); /* a public test fixture */
	KM_FUZZ_ASSERT(km_rsa_pub_has_proofs(fuzz_dealt));
	KM_FUZZ_ASSERT(!km_rsa_pub_has_proofs(fuzz_imported));
}

static void
fuzz_pub(const uint8_t *data, size_t size)
{
	km_rsa_pub *a = NULL, *b = NULL;
	km_buf e1, e2;

	if (km_rsa_pub_decode(data, size, &a) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("rsa pub");
	KM_FUZZ_ASSERT(km_rsa_pub_k(a) >= 1
	    && km_rsa_pub_k(a) <= km_rsa_pub_n(a)
	    && km_rsa_pub_n(a) <= KM_RSA_MAX_HOLDERS);
	KM_FUZZ_ASSERT(km_rsa_pub_bits(a) <= KM_RSA_MAX_BITS);
	km_buf_init(&e1);
	km_buf_init(&e2);
	KM_FUZZ_ASSERT(km_rsa_pub_encode(a, &e1) == 0);
	KM_FUZZ_ASSERT(km_rsa_pub_decode(e1.data, e1.len, &b) == 0);
	KM_FUZZ_ASSERT(km_rsa_pub_encode(b, &e2) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(e1.data, e1.len, e2.data, e2.len));
	km_buf_free(&e1);
	km_buf_free(&e2);
	km_rsa_pub_free(a);
	km_rsa_pub_free(b);
}

static void
fuzz_share(const km_rsa_pub *pub, const uint8_t *data, size_t size)
{
	km_rsa_share *a = NULL, *b = NULL;
	km_buf e1, e2;

	if (km_rsa_share_decode(pub, data, size, &a) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("rsa share");
	KM_FUZZ_ASSERT(km_rsa_share_index(a) >= 1
	    && km_rsa_share_index(a) <= km_rsa_pub_n(pub));
	KM_FUZZ_ASSERT(km_rsa_share_bits(a) <= km_rsa_pub_share_bits(pub));
	km_buf_init_secure(&e1);
	km_buf_init_secure(&e2);
	KM_FUZZ_ASSERT(km_rsa_share_encode(pub, a, &e1) == 0);
	KM_FUZZ_ASSERT(km_rsa_share_decode(pub, e1.data, e1.len, &b) == 0);
	KM_FUZZ_ASSERT(km_rsa_share_encode(pub, b, &e2) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(e1.data, e1.len, e2.data, e2.len));
	km_buf_free(&e1);
	km_buf_free(&e2);
	km_rsa_share_free(a);
	km_rsa_share_free(b);
}

static void
fuzz_partial(const km_rsa_pub *pub, const uint8_t *data, size_t size)
{
	km_rsa_partial *a = NULL, *b = NULL;
	km_buf e1, e2;

	if (km_rsa_partial_decode(pub, data, size, &a) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("rsa partial");
	KM_FUZZ_ASSERT(km_rsa_partial_index(a) >= 1
	    && km_rsa_partial_index(a) <= km_rsa_pub_n(pub));
	km_buf_init(&e1);
	km_buf_init(&e2);
	KM_FUZZ_ASSERT(km_rsa_partial_encode(a, &e1) == 0);
	KM_FUZZ_ASSERT(km_rsa_partial_decode(pub, e1.data, e1.len, &b) == 0);
	KM_FUZZ_ASSERT(km_rsa_partial_encode(b, &e2) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(e1.data, e1.len, e2.data, e2.len));
	km_buf_free(&e1);
	km_buf_free(&e2);
	km_rsa_partial_free(a);
	km_rsa_partial_free(b);
}

static void
fuzz_subdeal(const km_rsa_pub *pub, const uint8_t *data, size_t size)
{
	km_rsa_subdeal *a = NULL, *b = NULL;
	km_buf e1, e2;
	uint32_t j;

	if (km_rsa_subdeal_decode(pub, data, size, &a) != 0) {
		return;
	}
	KM_FUZZ_ACCEPTED("rsa subdeal");
	KM_FUZZ_ASSERT(km_rsa_subdeal_index(a) >= 1
	    && km_rsa_subdeal_index(a) <= km_rsa_pub_n(pub));
	/* the new holder it was encoded for: the 7th uint32 (rsa.h) */
	KM_FUZZ_ASSERT(size >= 28);
	j = (uint32_t)data[24] << 24 | (uint32_t)data[25] << 16
	    | (uint32_t)data[26] << 8 | data[27];
	km_buf_init_secure(&e1);
	km_buf_init_secure(&e2);
	KM_FUZZ_ASSERT(km_rsa_subdeal_encode(a, j, &e1) == 0);
	KM_FUZZ_ASSERT(km_rsa_subdeal_decode(pub, e1.data, e1.len, &b) == 0);
	KM_FUZZ_ASSERT(km_rsa_subdeal_encode(b, j, &e2) == 0);
	KM_FUZZ_ASSERT(km_fuzz_same(e1.data, e1.len, e2.data, e2.len));
	km_buf_free(&e1);
	km_buf_free(&e2);
	km_rsa_subdeal_free(a);
	km_rsa_subdeal_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const km_rsa_pub *pub;
	unsigned sel;

	if (size < 1) {
		return 0;
	}
	fuzz_rsa_init();
	sel = data[0] % 7;
	pub = (sel % 2 == 1) ? fuzz_dealt : fuzz_imported;
	data++;
	size--;
	switch (sel) {
	case 0:
		fuzz_pub(data, size);
		break;
	case 1:
	case 2:
		fuzz_share(pub, data, size);
		break;
	case 3:
	case 4:
		fuzz_partial(pub, data, size);
		break;
	default:
		fuzz_subdeal(pub, data, size);
		break;
	}
	return 0;
}
