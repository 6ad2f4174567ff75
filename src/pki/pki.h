/*
 * The mesh PKI: one mesh CA (ECDSA P-256) that certifies every node, client
 * and admin, and a CRL that revokes them.
 *
 * A CA directory holds:
 *   ca.crt            the CA certificate (PEM)
 *   ca.key            its private key (PEM, mode 0600)
 *   crl.pem           the current CRL, re-signed on every revocation
 *   index             one line per issued certificate:
 *                     "serial-hex role name status(V|R) not-after"
 *   certs/NAME.crt    issued certificates (PEM)
 *   private/NAME.key  their private keys (PEM, mode 0600, dir 0700)
 *
 * Identity: every issued certificate has subject CN=NAME, OU=ROLE and a
 * subjectAltName with DNS:NAME and URI:keymesh:ROLE:NAME.  The URI is the
 * authoritative identity; km_pki_identity() reads it.
 */
#ifndef KM_PKI_PKI_H
#define KM_PKI_PKI_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "util/util.h"

typedef enum km_role {
	KM_ROLE_NONE = 0,
	KM_ROLE_NODE = 1,   /* a keymeshd share holder */
	KM_ROLE_CLIENT = 2, /* an application through the PKCS#11 module */
	KM_ROLE_ADMIN = 3,  /* the operator's admin CLI */
} km_role;

/* A verified peer: who it is, in what role, and which certificate. */
typedef struct km_identity {
	char name[KM_NAME_MAX + 1];
	km_role role;
	uint8_t cert_sha256[32]; /* SHA-256 of the certificate's DER */
	char serial[41];	 /* certificate serial, lower-case hex */
} km_identity;

/* "node", "client", "admin"; NULL for KM_ROLE_NONE. */
const char *km_role_name(km_role role);
/* Parses a role name; KM_ERR_INVALID_ARG for anything else. */
int km_role_parse(const char *s, km_role *role);

/**
 * km_pki_ca_init:
 * @dir: an existing directory
 * @days: CA validity in days (0 for the default, 10 years)
 *
 * Creates the mesh CA, an empty CRL and the index.
 *
 * Returns: 0, KM_ERR_NOT_FOUND when @dir does not exist, KM_ERR_EXISTS when
 * a CA is already there, KM_ERR_IO or KM_ERR_CRYPTO.
 */
int km_pki_ca_init(const char *dir, unsigned days);

/**
 * km_pki_cert_issue:
 * @dir: a CA directory
 * @role: node, client or admin
 * @name: a name accepted by km_name_valid()
 * @days: validity in days (0 for the default, 2 years)
 *
 * Makes a fresh P-256 key and a certificate for it, signed by the CA.
 *
 * Returns: 0, KM_ERR_NOT_FOUND (no CA in @dir), KM_ERR_INVALID_ARG (bad
 * name or role), KM_ERR_EXISTS (the name was already issued), ...
 */
int km_pki_cert_issue(const char *dir, km_role role, const char *name,
    unsigned days);

/**
 * km_pki_cert_revoke:
 * @dir: a CA directory
 * @name: an issued name
 *
 * Marks the certificate revoked in the index and re-signs crl.pem.
 *
 * Returns: 0, KM_ERR_NOT_FOUND (no CA, or no such name), KM_ERR_EXISTS
 * (already revoked), ...
 */
int km_pki_cert_revoke(const char *dir, const char *name);

/**
 * km_pki_path:
 * Fills @out with the path of a CA directory's file: what is "ca.crt",
 * "ca.key", "crl.pem", or NAME with @suffix ".crt" / ".key" for issued
 * certificates and keys.
 */
int km_pki_path(char *out, size_t outlen, const char *dir, const char *what,
    const char *suffix);

/**
 * km_pki_identity:
 * @cert: a certificate (already verified against the CA and CRL)
 * @id: receives its identity
 *
 * Returns: 0, or KM_ERR_BAD_FORMAT when it carries no single well-formed
 * keymesh URI SAN.
 */
int km_pki_identity(X509 *cert, km_identity *id);

/**
 * km_pki_store_load:
 * @ca_pem, @crl_pem: PEM text (the CRL may be NULL: then no CRL is checked)
 * @store: receives an X509_STORE with the CA and, if given, the CRL and
 * X509_V_FLAG_CRL_CHECK set
 */
int km_pki_store_load(const char *ca_pem, const char *crl_pem,
    X509_STORE **store);

/**
 * km_pki_verify:
 * @store: from km_pki_store_load()
 * @cert: the peer's leaf certificate
 * @role: the role it must have, or KM_ROLE_NONE for any
 * @id: receives the identity (may be NULL)
 *
 * Checks the chain, the validity dates, the CRL and the role.
 *
 * Returns: 0, KM_ERR_REVOKED, KM_ERR_AUTH (wrong CA, expired, wrong role),
 * KM_ERR_BAD_FORMAT (no keymesh identity).
 */
int km_pki_verify(X509_STORE *store, X509 *cert, km_role role,
    km_identity *id);

/**
 * km_pki_load_key:
 * @path: a PEM private key file
 * @out: receives the key
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_BAD_FORMAT, KM_ERR_IO.
 */
int km_pki_load_key(const char *path, EVP_PKEY **out);

/** km_pki_load_cert: a PEM certificate file. */
int km_pki_load_cert(const char *path, X509 **out);

/**
 * km_pki_sign:
 * @key: an identity key (P-256)
 * @data, @len: the bytes to sign
 * @sig, @siglen: receive a malloc'd DER ECDSA-SHA256 signature
 */
int km_pki_sign(EVP_PKEY *key, const void *data, size_t len, uint8_t **sig,
    size_t *siglen);

/**
 * km_pki_verify_signed:
 * @store: the CA store (km_pki_store_load)
 * @cert_der, @cert_len: the signer's certificate, DER
 * @role: the role the signer must have (KM_ROLE_NONE: any)
 * @data, @len: the signed bytes
 * @sig, @siglen: the signature
 * @id: receives the signer's identity (may be NULL)
 *
 * Checks the certificate (chain, CRL, role) and then the signature.
 *
 * Returns: 0, KM_ERR_VERIFY (bad signature), KM_ERR_AUTH, KM_ERR_REVOKED,
 * KM_ERR_BAD_FORMAT.
 */
int km_pki_verify_signed(X509_STORE *store, const uint8_t *cert_der,
    size_t cert_len, km_role role, const void *data, size_t len,
    const uint8_t *sig, size_t siglen, km_identity *id);

/**
 * km_pki_verify_sig:
 * @pub: a public key whose certificate the caller has already checked
 *
 * Only the ECDSA/SHA-256 signature of km_pki_sign(): for callers that
 * verify many signatures by one signer (a catalog replay) and check its
 * certificate once.
 *
 * Returns: 0, KM_ERR_VERIFY, KM_ERR_ALLOC, KM_ERR_INVALID_ARG.
 */
int km_pki_verify_sig(EVP_PKEY *pub, const void *data, size_t len,
    const uint8_t *sig, size_t siglen);

/**
 * km_pki_cert_pubkey:
 * @cert_der: a DER certificate
 * @out: receives its public key (EVP_PKEY_free() it)
 *
 * Returns: 0, KM_ERR_BAD_FORMAT.
 */
int km_pki_cert_pubkey(
    const uint8_t *cert_der, size_t cert_len, EVP_PKEY **out);

/**
 * km_pki_verify_signed_replay:
 * As km_pki_verify_signed(), but neither the CRL nor the validity dates
 * are consulted: the chain to the mesh CA, the role and the signature are.
 *
 * For catalog entries whose signer's standing was checked when the entry
 * was sequenced (client-signed objects, daemon/catalog.c): replaying the
 * log later, after the signer was revoked or its certificate expired,
 * must give the same result, or every replica and every client view would
 * stall on that entry for good.
 */
int km_pki_verify_signed_replay(X509_STORE *store, const uint8_t *cert_der,
    size_t cert_len, km_role role, const void *data, size_t len,
    const uint8_t *sig, size_t siglen, km_identity *id);

/**
 * km_pki_deny_set:
 * @names: node names to refuse (evicted by the catalog), or NULL
 * @n: how many
 *
 * Replaces the process's deny-list.  From then on km_pki_verify() and
 * km_pki_verify_signed() (not the _replay variant) refuse a node
 * certificate whose identity name is on it with KM_ERR_REVOKED, and so
 * does every TLS handshake of src/net/tls.c and src/raft/transport.c,
 * and every request envelope: the one place an evicted node is refused
 * (docs/eviction.md).  The daemon sets it from the catalog at start and
 * after each EVICT it applies.  Process-wide, like the TLS engine.
 *
 * Returns: 0, KM_ERR_INVALID_ARG (a bad name), KM_ERR_ALLOC.
 */
int km_pki_deny_set(const char *const *names, size_t n);

/**
 * km_pki_denied:
 * @id: a verified identity
 *
 * Returns: true when @id is a node on the deny-list.
 */
bool km_pki_denied(const km_identity *id);

/** km_pki_denied_cert: as km_pki_denied, from a certificate. */
bool km_pki_denied_cert(X509 *cert);

#endif /* KM_PKI_PKI_H */
