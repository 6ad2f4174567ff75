/*
 * keymesh's OpenSSL 3 TLS engine for nng 1.5.2 (internal to src/net).
 *
 * nng's own engine is mbed TLS 2.28, which has no TLS 1.3.  This engine is
 * registered with nng_tls_engine_register() and then backs every tls+tcp://
 * connection of the process.  Whatever a caller asks for, it speaks TLS 1.3
 * only and always requires and verifies the peer's certificate (mutual
 * authentication); a client also checks the server's DNS name.
 *
 * A config made through km_tls_config_new() carries a km_tls_hook: it
 * supplies the current verify store (CA + CRL, replaceable at run time) for
 * each new connection and receives a record of each handshake (version,
 * cipher, time, failure reason), which nng's public API cannot return.
 */
#ifndef KM_NET_TLS_H
#define KM_NET_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/x509.h>

#define KM_TLS_ENGINE_NAME "keymesh-openssl"

/* What the last handshake through one config did. */
typedef struct km_tls_info {
	char version[16];        /* "TLSv1.3" */
	char cipher[64];         /* "TLS_AES_256_GCM_SHA384" */
	char peer[64];           /* the peer certificate's CN */
	uint64_t handshake_ns;   /* first byte sent to handshake done */
	uint64_t handshakes_ok;  /* count through this config */
	uint64_t handshakes_bad; /* count of failed handshakes */
	int last_error;          /* KM_ERR_* of the last failure, or 0 */
	char last_reason[128];   /* its OpenSSL/verify reason */
} km_tls_info;

typedef struct km_tls_hook km_tls_hook;

/** km_tls_register: register the engine with nng (idempotent, locked). */
int km_tls_register(void);

/** km_tls_hook_new: a hook holding @store (up-ref'd; may be NULL). */
int km_tls_hook_new(X509_STORE *store, km_tls_hook **out);
void km_tls_hook_ref(km_tls_hook *h);
void km_tls_hook_unref(km_tls_hook *h);
/** km_tls_hook_set_store: new connections verify with @store (up-ref'd). */
void km_tls_hook_set_store(km_tls_hook *h, X509_STORE *store);
/** km_tls_hook_clear_error: forget the last refusal (a link is up). */
void km_tls_hook_clear_error(km_tls_hook *h);
/** km_tls_hook_info: a snapshot of the handshake record. */
void km_tls_hook_info(km_tls_hook *h, km_tls_info *info);

/**
 * km_tls_config_new:
 * @mode: NNG_TLS_MODE_CLIENT or NNG_TLS_MODE_SERVER
 * @hook: may be NULL (then the config's own CA/CRL are used)
 * @ca_pem, @crl_pem: CA certificate(s) and CRL (CRL may be NULL)
 * @cert_pem, @key_pem: own certificate and key
 * @server_name: for a client, the DNS name the server must carry
 * @out: receives the nng config (release with nng_tls_config_free)
 */
int km_tls_config_new(nng_tls_mode mode, km_tls_hook *hook, const char *ca_pem,
    const char *crl_pem, const char *cert_pem, const char *key_pem,
    const char *server_name, nng_tls_config **out);

/** km_tls_stats: process-wide handshake counters (successes, failures). */
void km_tls_stats(uint64_t *ok, uint64_t *bad);

/**
 * km_tls_set_coalesce: whether connections made from now on gather each SP
 * message into one TLS record (the default; KEYMESH_TLS_COALESCE=0 in the
 * environment turns it off).  Open connections keep their setting.
 * @on: true to gather, false to write each piece nng hands over at once
 */
void km_tls_set_coalesce(bool on);

/**
 * km_tls_coalesce_stats: process-wide count of SP messages sent as one
 * gathered unit, and of messages too large to gather (sent piece by
 * piece).  Either pointer may be NULL.
 */
void km_tls_coalesce_stats(uint64_t *gathered, uint64_t *direct);

/** km_net_err: map an nng error code to a KM_ERR_* code. */
int km_net_err(int nng_rv);

#endif /* KM_NET_TLS_H */
