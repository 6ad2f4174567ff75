#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "util/err.h"
#include "util/secmem.h"

/*
 * CRYPTO_secure_malloc_init() returns 1 for a locked arena, 2 when the
 * arena exists but mlock() failed, 0 on failure.
 */
static int km_secmem_state = 0;

int
km_secmem_init(size_t size)
{
	int r;

	if (CRYPTO_secure_malloc_initialized()) {
		return (km_secmem_state == 2) ? KM_ERR_IO : 0;
	}
	r = CRYPTO_secure_malloc_init(size, 16);
	if (r == 0) {
		return KM_ERR_ALLOC;
	}
	km_secmem_state = r;
	return (r == 2) ? KM_ERR_IO : 0;
}

bool
km_secmem_locked(void)
{
	return CRYPTO_secure_malloc_initialized() && km_secmem_state == 1;
}

size_t
km_secmem_used(void)
{
	return CRYPTO_secure_used();
}

void *
km_secure_alloc(size_t len)
{
	if (len == 0) {
		len = 1;
	}
	return OPENSSL_secure_zalloc(len);
}

void
km_secret_free(void *p, size_t len)
{
	if (p == NULL) {
		return;
	}
	/* OPENSSL_secure_clear_free() cleanses, whichever heap p is on. */
	OPENSSL_secure_clear_free(p, len);
}

void
km_secret_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0) {
		OPENSSL_cleanse(p, len);
	}
}

char *
km_secure_strdup(const char *s)
{
	size_t n;
	char *p;

	if (s == NULL) {
		return NULL;
	}
	n = strlen(s) + 1;
	if ((p = km_secure_alloc(n)) == NULL) {
		return NULL;
	}
	memcpy(p, s, n);
	return p;
}

void
km_secure_strfree(char *s)
{
	if (s != NULL) {
		km_secret_free(s, strlen(s) + 1);
	}
}

int
km_secmem_harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0) {
		return KM_ERR_IO;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		return KM_ERR_IO;
	}
	return 0;
}
