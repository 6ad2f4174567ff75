/*
 * Trust beacons (DESIGN.md §3, docs/trust.md): what every keymeshd says
 * about itself every beacon_interval_ms, signed with its identity key.
 *
 * A beacon body is encoded with km_buf (uint32/uint64/string, big-endian)
 * and travels inside a signed beacon: string body, string the signer's
 * certificate (DER), string its ECDSA-SHA256 signature over the body.  The
 * decoder is strict: every string has its own bound, must be printable
 * ASCII without NUL or line breaks, counts are bounded, and trailing bytes
 * are refused, so what decodes re-encodes to the same bytes.
 */
#ifndef KM_TRUST_BEACON_H
#define KM_TRUST_BEACON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "util/buf.h"
#include "util/util.h"

#define KM_BEACON_VERSION 1

/* Bounds of the text fields (without the NUL). */
#define KM_BEACON_VERSION_MAX      32
#define KM_BEACON_TOKEN_MANUF_MAX  32 /* CK_TOKEN_INFO manufacturerID */
#define KM_BEACON_TOKEN_MODEL_MAX  16
#define KM_BEACON_TOKEN_SERIAL_MAX 16
#define KM_BEACON_FIRMWARE_MAX     16 /* "major.minor" */
#define KM_BEACON_KERNEL_MAX       128
#define KM_BEACON_SECBOOT_MAX      16 /* "on", "off", "unknown" */
#define KM_BEACON_MAX_PEERS        64
#define KM_BEACON_CERT_MAX         4096
#define KM_BEACON_SIG_MAX          256
/* Largest beacon body and signed beacon: far above a 64-peer beacon. */
#define KM_BEACON_BODY_MAX 16384
#define KM_BEACON_SIGNED_MAX                                                  \
	(KM_BEACON_BODY_MAX + KM_BEACON_CERT_MAX + KM_BEACON_SIG_MAX + 12)

/* RTT not measured (peer not connected, or no answer). */
#define KM_BEACON_RTT_NONE UINT32_MAX

/* One measured link from the beacon's node to a peer. */
typedef struct km_beacon_peer {
	char name[KM_NAME_MAX + 1];
	uint32_t rtt_us;  /* KM_BEACON_RTT_NONE when unknown */
	uint32_t bw_kbps; /* 0: not measured */
} km_beacon_peer;

typedef struct km_beacon {
	char node[KM_NAME_MAX + 1];
	uint64_t seq;         /* strictly increasing per node */
	uint64_t time_ms;     /* sender's wall clock when made */
	uint32_t interval_ms; /* the sender's beacon period */
	char version[KM_BEACON_VERSION_MAX + 1];
	uint8_t bin_sha256[32];
	uint8_t conf_sha256[32];
	/* the backend token (C_GetTokenInfo) */
	char token_manuf[KM_BEACON_TOKEN_MANUF_MAX + 1];
	char token_model[KM_BEACON_TOKEN_MODEL_MAX + 1];
	char token_serial[KM_BEACON_TOKEN_SERIAL_MAX + 1];
	char token_firmware[KM_BEACON_FIRMWARE_MAX + 1];
	uint32_t token_flags; /* CKF_* of CK_TOKEN_INFO, low 32 bits */
	/* platform */
	char kernel[KM_BEACON_KERNEL_MAX + 1];
	char secure_boot[KM_BEACON_SECBOOT_MAX + 1];
	/* health */
	uint64_t uptime_ms;
	uint32_t load_milli;  /* 1-minute load average x 1000 */
	uint32_t queue_depth; /* requests in flight */
	uint64_t requests, refused, errors;
	/* links */
	uint32_t npeers;
	km_beacon_peer peers[KM_BEACON_MAX_PEERS];
} km_beacon;

/**
 * km_beacon_encode:
 * @b: an initialised buffer; the body is appended
 * @bc: the beacon
 *
 * Returns: 0, KM_ERR_INVALID_ARG (a field out of its bounds: the encoder
 * refuses what the decoder would), KM_ERR_ALLOC.
 */
int km_beacon_encode(km_buf *b, const km_beacon *bc);

/**
 * km_beacon_decode:
 * @data, @len: a whole beacon body, nothing after it
 * @bc: receives the beacon
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_BAD_VERSION, KM_ERR_TOO_LARGE.
 */
int km_beacon_decode(const uint8_t *data, size_t len, km_beacon *bc);

/**
 * km_beacon_sign:
 * @key: the node's identity key
 * @cert_der, @cert_len: its certificate (DER)
 * @bc: the beacon
 * @out: an initialised buffer; receives the signed beacon
 */
int km_beacon_sign(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len,
    const km_beacon *bc, km_buf *out);

/**
 * km_beacon_verify:
 * @store: the mesh CA and CRL (km_pki_store_load)
 * @data, @len: a signed beacon
 * @bc: receives the beacon
 * @signer: receives the signer's identity (may be NULL)
 *
 * Checks the signer's certificate (chain, dates, CRL, role node), the
 * signature over the body, the body's strict encoding, and that the
 * beacon names its signer.  Freshness and replay are the trust graph's
 * (km_trust_graph_update), since they need the last beacon seen.
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_VERIFY (bad signature),
 * KM_ERR_AUTH (wrong CA, role, or a beacon naming another node),
 * KM_ERR_REVOKED, KM_ERR_TOO_LARGE, KM_ERR_BAD_VERSION.
 */
int km_beacon_verify(X509_STORE *store, const uint8_t *data, size_t len,
    km_beacon *bc, km_identity *signer);

/**
 * km_beacon_check_fresh:
 * @bc: a verified beacon
 * @now_ms: the receiver's wall clock
 * @max_age_ms: the oldest acceptable beacon
 * @skew_ms: how far ahead of @now_ms the sender's clock may be
 *
 * Returns: 0 or KM_ERR_STALE.
 */
int km_beacon_check_fresh(const km_beacon *bc, uint64_t now_ms,
    uint32_t max_age_ms, uint32_t skew_ms);

/* km_beacon_text_valid: printable ASCII, no NUL or line break, <= max. */
bool km_beacon_text_valid(const char *s, size_t max);

#endif /* KM_TRUST_BEACON_H */
