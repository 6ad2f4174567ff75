/*
 * Fault injection for tests.  Compiled in only with --enable-test-hooks
 * (KM_TEST_HOOKS); a production build has no way to turn a node faulty.
 *
 * KEYMESHD_TEST_FAULT=corrupt-partials makes this daemon return corrupted
 * partial results, so tests can check that clients catch and name it.
 *
 * KEYMESHD_TEST_FAULT_FILE=PATH turns a running daemon faulty the same way
 * once PATH exists and holds its node name (one line), without a restart:
 * so the Raft leader can turn faulty and stay leader
 * (tests/integration/test-leader-evict.sh).
 *
 * KEYMESHD_TEST_SUSPECT_MS=N (1000..600000) shortens or lengthens how long
 * a follower refuses a leader it holds evidence against (daemon/evidence.c,
 * 60 s otherwise).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/kmd.h"
#include "util/err.h"
#include "util/log.h"

#ifdef KM_TEST_HOOKS
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "crypto/rsa.h"

static char kmd_prime_path[4096];
static __thread const char *kmd_prime_key;

/* Appends "key_id p q" (hex) so the leak test knows what to look for. */
static void
kmd_fault_prime_hook(const BIGNUM *p, const BIGNUM *q)
{
	char *ph = BN_bn2hex(p), *qh = BN_bn2hex(q), line[2400];
	int fd, n;

	if (ph != NULL && qh != NULL) {
		n = snprintf(line, sizeof(line), "%s %s %s\n",
		    kmd_prime_key ? kmd_prime_key : "-", ph, qh);
		fd = open(kmd_prime_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			if (write(fd, line, (size_t)n) != n) {
				km_log_warn("KMD-TEST-PRIMES", "short write");
			}
			close(fd);
		}
		OPENSSL_cleanse(line, sizeof(line));
	}
	if (ph != NULL) {
		OPENSSL_clear_free(ph, strlen(ph));
	}
	if (qh != NULL) {
		OPENSSL_clear_free(qh, strlen(qh));
	}
}
#endif

void
kmd_fault_dealing(const char *key_id)
{
#ifdef KM_TEST_HOOKS
	kmd_prime_key = key_id;
#else
	(void)key_id;
#endif
}

void
kmd_fault_init(kmd_state *st)
{
#ifdef KM_TEST_HOOKS
	const char *f = getenv("KEYMESHD_TEST_FAULT");
	const char *pp = getenv("KEYMESHD_TEST_DEALER_PRIMES");

	if (pp != NULL && *pp != '\0') {
		snprintf(kmd_prime_path, sizeof(kmd_prime_path), "%s", pp);
		km_rsa_test_prime_hook = kmd_fault_prime_hook;
		km_log_warn("KMD-TEST-PRIMES",
		    "test build: dealer primes are written to %s", pp);
	}

	if (f != NULL && strcmp(f, "corrupt-partials") == 0) {
		st->fault_corrupt = true;
		km_log_warn("KMD-TEST-FAULT",
		    "test fault: this node returns corrupted partials");
	}
#else
	(void)st;
#endif
}

#ifdef KM_TEST_HOOKS
/* True once KEYMESHD_TEST_FAULT_FILE holds this node's name. */
static bool
kmd_fault_file_names_us(kmd_state *st)
{
	const char *path = getenv("KEYMESHD_TEST_FAULT_FILE");
	char line[KM_NAME_MAX + 2];
	size_t n = 0;
	FILE *f;

	if (path == NULL || *path == '\0' || (f = fopen(path, "r")) == NULL) {
		return false;
	}
	if (fgets(line, sizeof(line), f) != NULL) {
		n = strcspn(line, "\r\n");
		line[n] = '\0';
	}
	fclose(f);
	return n > 0 && strcmp(line, st->cfg.name) == 0;
}
#endif

bool
kmd_fault_corrupt_partials(kmd_state *st)
{
#ifdef KM_TEST_HOOKS
	if (__atomic_load_n(&st->fault_corrupt, __ATOMIC_RELAXED)) {
		return true;
	}
	if (kmd_fault_file_names_us(st)) {
		__atomic_store_n(&st->fault_corrupt, true, __ATOMIC_RELAXED);
		km_log_warn("KMD-TEST-FAULT",
		    "test fault: this node returns corrupted partials from "
		    "now on (%s)",
		    getenv("KEYMESHD_TEST_FAULT_FILE"));
		return true;
	}
	return false;
#else
	(void)st;
	return false;
#endif
}

unsigned
kmd_fault_suspect_ms(unsigned dflt)
{
#ifdef KM_TEST_HOOKS
	const char *v = getenv("KEYMESHD_TEST_SUSPECT_MS");
	unsigned long n;
	char *end = NULL;

	if (v != NULL && *v != '\0') {
		n = strtoul(v, &end, 10);
		if (*end == '\0' && n >= 1000 && n <= 600000) {
			return (unsigned)n;
		}
	}
#endif
	return dflt;
}

#ifdef KM_TEST_HOOKS
/* Test builds only: reach into the partial to corrupt its value (x_i
 * doubled mod N), exactly what a faulty or malicious holder could send. */
#include "crypto/rsa_int.h"
#endif

int
kmd_fault_tamper_rsa(const struct km_rsa_pub *pub, struct km_rsa_partial *part)
{
#ifdef KM_TEST_HOOKS
	BN_CTX *ctx = BN_CTX_new();
	int ok;

	if (ctx == NULL) {
		return KM_ERR_ALLOC;
	}
	ok = BN_mod_add(part->xi, part->xi, part->xi, pub->n_mod, ctx);
	BN_CTX_free(ctx);
	return ok == 1 ? 0 : KM_ERR_CRYPTO;
#else
	(void)pub;
	(void)part;
	return KM_ERR_NOT_SUPPORTED;
#endif
}
