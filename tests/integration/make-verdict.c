/*
 * make-verdict: writes a TRUST_VERDICT catalog entry signed by a node
 * identity of a dev mesh CA, as the body of a catalog-append request
 * ("string entry"), for test-verdict-authority.sh: what a compromised
 * member that does not lead would send the leader (review finding 2,
 * docs/trust.md "Verdicts").
 *
 *   make-verdict CADIR SIGNER SEQ NODE OUT
 *
 * The verdict puts NODE in quarantine, names SIGNER as the coordinator and
 * is sequenced at SEQ.  Exits 0, or 2 with one line on a usage or
 * signing error.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "store/catalog.h"
#include "trust/policy.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/util.h"

static int
mv_fail(const char *what)
{
	fprintf(stderr, "make-verdict: %s\n", what);
	return 2;
}

int
main(int argc, char **argv)
{
	char path[4200];
	km_trust_verdict v;
	km_catalog_entry e;
	km_buf pl, tbs, enc, out;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	uint8_t *der = NULL;
	FILE *f = NULL;
	int n, rc = 2;

	if (argc != 6 || !km_name_valid(argv[2]) || !km_name_valid(argv[4])
	    || strtoull(argv[3], NULL, 10) == 0) {
		return mv_fail(
		    "usage: make-verdict CADIR SIGNER SEQ NODE OUT");
	}
	km_buf_init(&pl);
	km_buf_init(&tbs);
	km_buf_init(&enc);
	km_buf_init(&out);
	memset(&e, 0, sizeof(e));
	if (km_pki_path(path, sizeof(path), argv[1], argv[2], ".crt") != 0
	    || km_pki_load_cert(path, &x) != 0 || (n = i2d_X509(x, &der)) <= 0
	    || km_pki_path(path, sizeof(path), argv[1], argv[2], ".key") != 0
	    || km_pki_load_key(path, &key) != 0) {
		rc = mv_fail("cannot load the signer's certificate and key");
		goto out;
	}
	memset(&v, 0, sizeof(v));
	snprintf(v.node, sizeof(v.node), "%s", argv[4]);
	snprintf(v.coordinator, sizeof(v.coordinator), "%s", argv[2]);
	v.state = KM_TRUST_QUARANTINED;
	v.score = 0;
	snprintf(v.reason, sizeof(v.reason), "forged by %s", argv[2]);
	e.seq = strtoull(argv[3], NULL, 10);
	e.type = KM_CAT_TRUST_VERDICT;
	e.signer = der;
	e.signer_len = (size_t)n;
	if (km_trust_verdict_encode(&v, &pl) != 0) {
		rc = mv_fail("cannot encode the verdict");
		goto out;
	}
	e.payload = pl.data;
	e.payload_len = pl.len;
	if (km_catalog_entry_tbs(&e, &tbs) != 0
	    || km_pki_sign(key, tbs.data, tbs.len, &e.sig, &e.sig_len) != 0
	    || km_catalog_entry_encode(&e, &enc) != 0
	    || km_buf_put_string(&out, enc.data, enc.len) != 0) {
		rc = mv_fail("cannot sign the entry");
		goto out;
	}
	if ((f = fopen(argv[5], "wb")) == NULL
	    || fwrite(out.data, 1, out.len, f) != out.len) {
		rc = mv_fail("cannot write the output file");
		goto out;
	}
	rc = 0;
out:
	if (f != NULL && fclose(f) != 0) {
		rc = mv_fail("cannot write the output file");
	}
	free(e.sig);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
	km_buf_free(&pl);
	km_buf_free(&tbs);
	km_buf_free(&enc);
	km_buf_free(&out);
	return rc;
}
