/*
 * keymeshd's backend token: the PKCS#11 module (SoftHSMv2 by default, an
 * HSM in production) whose non-extractable AES-256 key wraps this node's
 * shares at rest.
 *
 * keymeshd is itself a PKCS#11 consumer here.  It loads the module by path,
 * logs in as the user, and on first start generates the wrapping key inside
 * the token (sensitive, never extractable); later starts find it by label.
 * A share is wrapped with AES-256-GCM (C_Encrypt, CKM_AES_GCM) under a
 * fresh 12-byte IV and additional data that names the share's context (key
 * id, epoch, share index, node), so a blob moved to another context does
 * not unwrap.  Unwrapped shares land in locked memory only.
 *
 * Thread safety: a kmd_token is shared by the worker threads.  It keeps a
 * pool of PKCS#11 sessions; each wrap/unwrap borrows one for its
 * C_*Init/C_* pair, so operations on different threads run in parallel.
 */
#ifndef KMD_TOKEN_H
#define KMD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct kmd_token kmd_token;

/* Default label of the wrapping key inside the token. */
#define KMD_WRAP_KEY_LABEL "keymesh-share-wrap"

/* Blob layout version (the first byte of every wrapped blob). */
#define KMD_WRAP_VERSION 1
#define KMD_WRAP_IV_LEN  12
#define KMD_WRAP_TAG_LEN 16
/* Largest share accepted for wrapping. */
#define KMD_WRAP_MAX (32u * 1024)

typedef struct kmd_token_config {
	const char *module;    /* module path; NULL: KM_SOFTHSM_MODULE */
	const char *label;     /* token label; NULL: use @slot */
	long slot;             /* slot id when @label is NULL */
	const char *pin;       /* user PIN (the caller wipes its copy) */
	const char *key_label; /* NULL: KMD_WRAP_KEY_LABEL */
	unsigned max_sessions; /* 0: 16 */
} kmd_token_config;

/* The context a wrapped share is bound to (the GCM additional data). */
typedef struct kmd_wrap_ctx {
	const char *key_id;
	uint32_t epoch;
	uint32_t index;
	const char *node;
} kmd_wrap_ctx;

/* The wrapping key's attributes as the token reports them. */
typedef struct kmd_wrap_key_info {
	bool token;
	bool private_;
	bool sensitive;
	bool extractable;
	bool never_extractable;
	bool always_sensitive;
	bool encrypt;
	bool decrypt;
	unsigned long value_len;
	unsigned long key_type; /* CKK_* */
} kmd_wrap_key_info;

/**
 * kmd_token_open:
 * @cfg: module, token and PIN
 * @out: receives the token handle
 * @why: receives a one-line reason on failure (may be NULL)
 * @whylen: size of @why
 *
 * Loads the module, initialises it with CKF_OS_LOCKING_OK, finds the token,
 * logs in as CKU_USER, and finds or creates the wrapping key.  An existing
 * key whose attributes are weaker than required (extractable, not
 * sensitive, not AES-256) is refused rather than used.
 *
 * Returns: 0; KM_ERR_PIN for a wrong or locked PIN; KM_ERR_NOT_FOUND when
 * the module or token is missing; KM_ERR_TOKEN for other token failures;
 * KM_ERR_INVALID_ARG, KM_ERR_ALLOC.  The daemon refuses to start on any of
 * these and prints @why.
 */
int kmd_token_open(
    const kmd_token_config *cfg, kmd_token **out, char *why, size_t whylen);

/**
 * kmd_token_close:
 * @t: a token or NULL
 *
 * Closes the sessions (which logs out) and finalises the module.
 */
void kmd_token_close(kmd_token *t);

/**
 * kmd_token_wrap:
 * @t: the token
 * @ctx: the share's context (bound as additional data)
 * @share: the share in clear (1..KMD_WRAP_MAX bytes)
 * @len: its length
 * @blob: receives a malloc'd blob: uint8 version, 12-byte IV, ciphertext,
 *        16-byte tag (free())
 * @bloblen: receives its length
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_TOO_LARGE, KM_ERR_TOKEN,
 * KM_ERR_ALLOC.
 */
int kmd_token_wrap(kmd_token *t, const kmd_wrap_ctx *ctx, const uint8_t *share,
    size_t len, uint8_t **blob, size_t *bloblen);

/**
 * kmd_token_unwrap:
 * @t: the token
 * @ctx: the context the blob must have been wrapped for
 * @blob: a blob from kmd_token_wrap
 * @bloblen: its length
 * @out: receives the share in a secure km_buf (km_buf_init_secure memory);
 *       the caller wipes it with km_buf_free() as soon as it is used
 *
 * Returns: 0; KM_ERR_VERIFY when the blob was tampered with, wrapped for
 * another context or under another token's key; KM_ERR_BAD_FORMAT,
 * KM_ERR_BAD_VERSION, KM_ERR_TOKEN, KM_ERR_ALLOC.
 */
int kmd_token_unwrap(kmd_token *t, const kmd_wrap_ctx *ctx,
    const uint8_t *blob, size_t bloblen, km_buf *out);

/**
 * kmd_token_key_info:
 * @t: the token
 * @info: receives the wrapping key's attributes, read back from the token
 */
int kmd_token_key_info(kmd_token *t, kmd_wrap_key_info *info);

/* The token's identity and status, as C_GetTokenInfo reports them. */
typedef struct kmd_token_ident {
	char manufacturer[33]; /* blank padding removed */
	char model[17];
	char serial[17];
	char firmware[16]; /* "major.minor" */
	uint32_t flags;	   /* CKF_*, low 32 bits */
} kmd_token_ident;

/**
 * kmd_token_ident_get:
 * @t: the token
 * @id: receives its identity; text is trimmed and anything but printable
 *      ASCII (and the quote and backslash) becomes '?', so it can go
 *      into a beacon as is
 *
 * Returns: 0 or KM_ERR_TOKEN.
 */
int kmd_token_ident_get(kmd_token *t, kmd_token_ident *id);

/**
 * kmd_token_created_key:
 * @t: the token
 *
 * Returns: true when kmd_token_open() generated the wrapping key (first
 * start), false when it found an existing one.
 */
bool kmd_token_created_key(const kmd_token *t);

#endif /* KMD_TOKEN_H */
