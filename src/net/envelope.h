/*
 * Signed message envelopes (DESIGN.md §5 option (a); the byte format is in
 * docs/transport.md).  Internal to src/net, but kept apart from the sockets
 * so the codec and the caches can be tested and fuzzed on their own.
 */
#ifndef KM_NET_ENVELOPE_H
#define KM_NET_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "util/buf.h"

#define KM_ENV_MAGIC     "KMEV"
#define KM_ENV_VERSION   1
#define KM_ENV_REQUEST   1
#define KM_ENV_REPLY     2
#define KM_ENV_ERROR     3
#define KM_ENV_NONCE_LEN 16
#define KM_ENV_CERT_MAX  4096 /* a mesh certificate is ~600 bytes */
#define KM_ENV_SIG_MAX   80   /* DER ECDSA-Sig-Value, P-256: <= 72 */
/* magic, version, type, cert, time, nonce, body, signature framing */
#define KM_ENV_OVERHEAD (4 + 1 + 1 + 4 + 8 + KM_ENV_NONCE_LEN + 4 + 4)

/* A parsed envelope: pointers into the message it came from. */
typedef struct km_env {
	uint8_t type;
	const uint8_t *cert;
	size_t cert_len;
	uint64_t ts_ms;
	uint8_t nonce[KM_ENV_NONCE_LEN];
	const uint8_t *body;
	size_t body_len;
	const uint8_t *sig;
	size_t sig_len;
	const uint8_t *signed_data; /* the bytes the signature covers */
	size_t signed_len;
} km_env;

/**
 * km_env_parse: decode strictly; the total length is checked against
 * @body_max + overhead before any field is read.
 *
 * Returns: 0, KM_ERR_TOO_LARGE, KM_ERR_BAD_VERSION or KM_ERR_BAD_FORMAT.
 */
int km_env_parse(const uint8_t *p, size_t len, size_t body_max, km_env *e);

/**
 * km_env_seal: append a signed envelope to @out (which is reset first).
 * @md: a reusable digest context (may be NULL: one is made per call)
 */
int km_env_seal(km_buf *out, EVP_MD_CTX *md, uint8_t type,
    const uint8_t *cert_der, size_t cert_len, uint64_t ts_ms,
    const uint8_t nonce[KM_ENV_NONCE_LEN], const void *body, size_t body_len,
    EVP_PKEY *key);

/** km_env_error_body: the body of an error envelope (code, reason). */
int km_env_error_body(km_buf *out, int code, const char *reason);
/** km_env_error_parse: decode it; *code is a negative KM_ERR_*. */
int km_env_error_parse(const uint8_t *p, size_t len, int *code);

/*
 * The certificate check behind every envelope.  Certificates already
 * verified against the current CA + CRL are cached by the SHA-256 of their
 * DER (direct-mapped, @cache_max slots); the cache is dropped whenever the
 * store's generation changes (a new CRL), so a revoked sender is refused
 * from its next message on.
 */
typedef struct km_verifier km_verifier;

int km_verifier_new(size_t cache_max, km_verifier **out);
void km_verifier_free(km_verifier *v);

/**
 * km_verifier_check:
 * @store, @gen: the current CA + CRL store and its generation
 * @e: a parsed envelope
 * @role: the role the sender must have (KM_ROLE_NONE: any)
 * @id: receives the sender's identity
 *
 * Checks the certificate (cached) and the signature.
 *
 * Returns: 0, KM_ERR_REVOKED, KM_ERR_AUTH, KM_ERR_BAD_FORMAT, KM_ERR_VERIFY.
 */
int km_verifier_check(km_verifier *v, X509_STORE *store, uint64_t gen,
    EVP_MD_CTX *md, const km_env *e, km_role role, km_identity *id);

/* Replay cache: every nonce seen in the last @keep_ms, up to @cap. */
typedef struct km_replay km_replay;

int km_replay_new(uint32_t cap, km_replay **out);
void km_replay_free(km_replay *rc);

/**
 * km_replay_add: remember @nonce until @now_ms + @keep_ms.
 *
 * Returns: 0 when new, KM_ERR_STALE when already seen, KM_ERR_BUSY when the
 * cache is full of unexpired nonces (refusing is safer than forgetting).
 */
int km_replay_add(km_replay *rc, const uint8_t nonce[KM_ENV_NONCE_LEN],
    uint64_t now_ms, uint64_t keep_ms);

#endif /* KM_NET_ENVELOPE_H */
