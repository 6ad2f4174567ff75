/*
 * Sealing a message to one mesh member's certificate key, so that it can
 * travel through another member (a DKG coordinator) unread.
 *
 * ECIES over the recipient's P-256 identity key, built only from OpenSSL
 * primitives (SEC 1 v2 §5.1 shape, with HKDF and AES-GCM as the KDF and
 * the AEAD): an ephemeral P-256 key E; Z = ECDH(E, R);
 * K = HKDF-SHA256(salt = E_pub || R_pub, ikm = Z, info = "keymesh seal v1"),
 * 32 bytes; the box is AES-256-GCM under K with a zero nonce (K is used
 * once) and the caller's context as additional data.
 *   sealed = uint8 version(1) || E_pub (65 bytes, uncompressed) ||
 *            ciphertext || 16-byte tag
 */
#ifndef KM_PKI_SEAL_H
#define KM_PKI_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/buf.h"

#define KM_SEAL_OVERHEAD (1 + 65 + 16)

/**
 * km_seal:
 * @recipient: the recipient's public key (P-256)
 * @aad, @aadlen: context bound to the box (may be empty)
 * @msg, @len: the plaintext
 * @out: an initialised km_buf that receives the sealed box
 */
int km_seal(EVP_PKEY *recipient, const void *aad, size_t aadlen,
    const uint8_t *msg, size_t len, km_buf *out);

/**
 * km_unseal:
 * @self: our private key
 * @out: a km_buf_init_secure() buffer that receives the plaintext
 *
 * Returns: 0, KM_ERR_VERIFY (not for us, tampered, other context),
 * KM_ERR_BAD_FORMAT, KM_ERR_BAD_VERSION.
 */
int km_unseal(EVP_PKEY *self, const void *aad, size_t aadlen,
    const uint8_t *box, size_t len, km_buf *out);

#endif /* KM_PKI_SEAL_H */
