/*
 * Locked, non-dumpable memory for secrets.
 *
 * keymesh keeps shares, PINs and intermediate secrets in OpenSSL's secure
 * heap: one mmap'd arena, mlock'ed, excluded from core dumps
 * (MADV_DONTDUMP) and guarded by inaccessible pages.  BIGNUMs holding
 * secrets are made with BN_secure_new()/BN_CTX_secure_new(), which draw
 * from the same arena once km_secmem_init() has run.  Everything is wiped
 * (OPENSSL_cleanse) before it is returned to the arena.
 *
 * WARNING: never wipe a secret with memset(); the compiler may drop it.
 */
#ifndef KM_UTIL_SECMEM_H
#define KM_UTIL_SECMEM_H

#include <stddef.h>
#include <stdbool.h>

/* Default arena sizes (power of two, as OpenSSL requires). */
#define KM_SECMEM_MODULE_SIZE (1u << 20)
#define KM_SECMEM_DAEMON_SIZE (8u << 20)

/**
 * km_secmem_init:
 * @size: arena size in bytes, a power of two
 *
 * Sets up the locked arena once per process; later calls are no-ops.
 *
 * Returns: 0 when the arena exists and is locked, KM_ERR_ALLOC when it
 * could not be made, KM_ERR_IO when it exists but mlock() failed (the
 * memory is still excluded from dumps, not locked).
 */
int km_secmem_init(size_t size);

/** km_secmem_locked: true when the arena is set up and mlock'ed. */
bool km_secmem_locked(void);

/** km_secmem_used: bytes of the arena in use (for leak checks in tests). */
size_t km_secmem_used(void);

/**
 * km_secure_alloc:
 * @len: bytes
 *
 * Zeroed memory from the locked arena (or, before km_secmem_init(), from the
 * ordinary heap, still wiped on free).  Release with km_secret_free().
 */
void *km_secure_alloc(size_t len);

/**
 * km_secret_free:
 * @p: memory from km_secure_alloc() or NULL
 * @len: its length
 *
 * Wipes and releases, like OpenSSH's freezero().
 */
void km_secret_free(void *p, size_t len);

/** km_secret_wipe: wipe @len bytes at @p in a way the compiler keeps. */
void km_secret_wipe(void *p, size_t len);

/** km_secret_wipe_str: wipe @len bytes of a string held in ordinary memory. */
#define km_secret_wipe_str(s, len) km_secret_wipe((s), (len))

/** km_secure_strdup: copy a NUL-terminated secret (a PIN) into the arena. */
char *km_secure_strdup(const char *s);

/** km_secure_strfree: wipe and free a string from km_secure_strdup(). */
void km_secure_strfree(char *s);

/**
 * km_secmem_harden_process:
 *
 * For the daemon and the admin CLI: no core files (RLIMIT_CORE 0) and not
 * dumpable (PR_SET_DUMPABLE 0), after ssh-agent.  Not for the PKCS#11
 * module, which must not change its host application's process.
 *
 * Returns: 0 or KM_ERR_IO.
 */
int km_secmem_harden_process(void);

#endif /* KM_UTIL_SECMEM_H */
