/*
 * quorum-signer: the long-lived PKCS#11 application of
 * test-quorum-select.sh.  One process, so the module's round-trip
 * estimates and its trust view live through the whole test.
 *
 * Usage: quorum-signer LABEL   (KEYMESH_CONF, KEYMESH_PIN, KM_BUILDDIR
 * from the environment)
 * Loads the build's keymesh-pkcs11.so, logs in, finds the RSA private key
 * LABEL and prints "ready".  Then reads commands on stdin, one a line:
 *   sign MS   signs distinct messages (CKM_SHA256_RSA_PKCS) for MS ms,
 *             verifies every signature with OpenSSL and prints
 *             "signed N bad B failed F" (bad: a signature that does not
 *             verify; failed: C_Sign did not return CKR_OK)
 *   quit      C_Finalize and exit 0
 * Any set-up failure: one line on stderr and exit 1.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "kmt-p11.h"

static CK_FUNCTION_LIST_PTR p11;

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
verify(EVP_PKEY *pub, const unsigned char *msg, size_t len,
    const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL
	    && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1
	    && EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

int
main(int argc, char **argv)
{
	CK_MECHANISM mech = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	const char *pin = getenv("KEYMESH_PIN");
	unsigned char msg[64], sig[1024];
	char line[128];
	unsigned long counter = 0, n, bad, failed;
	CK_ULONG siglen;
	EVP_PKEY *pub;
	double until;
	long ms;

	if (argc != 2 || pin == NULL) {
		fprintf(stderr, "usage: KEYMESH_PIN=.. quorum-signer LABEL\n");
		return 1;
	}
	if (kmt_p11_load(NULL, &p11) == NULL) {
		return 1;
	}
	if (p11->C_Initialize(NULL) != CKR_OK
	    || p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s)
	        != CKR_OK
	    || p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))
	        != CKR_OK) {
		fprintf(
		    stderr, "quorum-signer: cannot initialise and log in\n");
		return 1;
	}
	key = kmt_p11_find1(p11, s, CKO_PRIVATE_KEY, argv[1]);
	if (key == CK_INVALID_HANDLE
	    || (pub = kmt_p11_pubkey(p11, s, key)) == NULL) {
		fprintf(
		    stderr, "quorum-signer: no key labelled %s\n", argv[1]);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strncmp(line, "quit", 4) == 0) {
			break;
		}
		if (sscanf(line, "sign %ld", &ms) != 1 || ms <= 0
		    || ms > 600000) {
			printf("error: unknown command\n");
			fflush(stdout);
			continue;
		}
		n = bad = failed = 0;
		until = mono_ms() + (double)ms;
		while (mono_ms() < until) {
			memset(msg, 0, sizeof(msg));
			snprintf((char *)msg, sizeof(msg), "quorum-select %lu",
			    counter++);
			siglen = sizeof(sig);
			if (p11->C_SignInit(s, &mech, key) != CKR_OK
			    || p11->C_Sign(s, msg, sizeof(msg), sig, &siglen)
			        != CKR_OK) {
				failed++;
				continue;
			}
			n++;
			if (!verify(pub, msg, sizeof(msg), sig, siglen)) {
				bad++;
			}
		}
		printf("signed %lu bad %lu failed %lu\n", n, bad, failed);
		fflush(stdout);
	}
	EVP_PKEY_free(pub);
	(void)p11->C_Logout(s);
	(void)p11->C_Finalize(NULL);
	return 0;
}
