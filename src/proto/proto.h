/*
 * The keymesh request/reply protocol between clients (the PKCS#11 module,
 * the admin CLI) and keymeshd, and between daemons.
 *
 * A message is the body of a signed transport envelope (src/net), which
 * already proves the sender's identity and carries a fresh nonce and a
 * timestamp.  The body starts with a fixed header, then type-specific
 * fields encoded with km_buf (big-endian uint32/uint64, length-prefixed
 * strings).  Every type is listed once in km_msg_table with the roles that
 * may send it and its size limit (after p11-kit's p11_rpc_calls), and the
 * header decoder refuses unknown versions and types, oversize messages and
 * malformed fields before any handler runs.  The format is specified in
 * docs/PROTOCOL.md.
 */
#ifndef KM_PROTO_PROTO_H
#define KM_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define KM_PROTO_VERSION 1

/* Limits checked before parsing. */
#define KM_PROTO_MAX_MSG (1u << 20)
#define KM_PROTO_KEY_ID_MAX 64
#define KM_PROTO_TICKET_LEN 32
#define KM_PROTO_MESSAGE_MAX 256

/*
 * User types of login-as and init-pin-as, and of a daemon's tickets: the
 * numbers of PKCS#11's CKU_SO and CKU_USER, so the module passes them
 * through.  Anything else is refused when decoded.
 */
#define KM_PROTO_USER_SO 0u
#define KM_PROTO_USER_USER 1u

typedef enum km_msg_type {
	KM_MSG_STATUS = 1,
	KM_MSG_LOGIN = 2,
	KM_MSG_LOGOUT = 3,
	KM_MSG_SET_PIN = 4,
	KM_MSG_INIT_PIN = 5,
	KM_MSG_LOGIN_AS = 6,
	KM_MSG_INIT_PIN_AS = 7,
	KM_MSG_RSA_PARTIAL = 10,
	KM_MSG_ECDH_PARTIAL = 11,
	KM_MSG_KEY_CREATE = 20,
	KM_MSG_SHARE_PREPARE = 21,
	KM_MSG_SHARE_COMMIT = 22,
	KM_MSG_SHARE_ABORT = 23,
	KM_MSG_DKG_ROUND = 24,
	KM_MSG_RESHARE_STEP = 25,
	KM_MSG_KEY_DESTROY = 26,
	KM_MSG_CATALOG_APPEND = 30,
	KM_MSG_CATALOG_FETCH = 31,
	KM_MSG_BEACON = 40,
	KM_MSG_GRAPH = 41,
	KM_MSG_EVIDENCE = 42, /* evidence of a bad partial (trust/evidence.h) */
	KM_MSG_PROBE = 44, /* bandwidth probe between nodes (docs/trust.md) */
	KM_MSG_EVICT_VOTE = 43, /* coordinator asks a member's eviction vote */
} km_msg_type;

/* The bandwidth probe's payload: this many bytes, answered by a count. */
#define KM_PROBE_BYTES (64u * 1024)

/* Role bits for km_msg_info.roles (see km_role in pki/pki.h). */
#define KM_MSG_FROM_NODE (1u << 1)
#define KM_MSG_FROM_CLIENT (1u << 2)
#define KM_MSG_FROM_ADMIN (1u << 3)

typedef struct km_msg_info {
	uint32_t type;
	const char *name;    /* "rsa-partial", for logs and audit */
	uint32_t roles;	     /* who may send it */
	uint32_t max_len;    /* largest acceptable body */
	bool needs_key;	     /* the header must name a key id */
	bool needs_ticket;   /* the header must carry a login ticket */
} km_msg_info;

/** km_msg_lookup: the table entry for @type, or NULL when unknown. */
const km_msg_info *km_msg_lookup(uint32_t type);

/* The request header. */
typedef struct km_req_hdr {
	uint32_t type;
	char key_id[KM_PROTO_KEY_ID_MAX + 1]; /* "" when none */
	uint32_t epoch;
	bool has_ticket;
	uint8_t ticket[KM_PROTO_TICKET_LEN];
} km_req_hdr;

/**
 * km_req_encode_hdr:
 * Appends the header to @b.  Returns 0 or a KM_ERR_* code (an unknown
 * type or a key id that is not a valid name gives KM_ERR_INVALID_ARG).
 */
int km_req_encode_hdr(km_buf *b, const km_req_hdr *h);

/**
 * km_req_decode_hdr:
 * @b: the whole request body; on success its read offset is at the
 * type-specific fields
 * @h: receives the header
 * @info: receives the table entry
 *
 * Returns: 0, KM_ERR_TOO_LARGE (over the type's limit), KM_ERR_BAD_VERSION,
 * KM_ERR_NOT_SUPPORTED (unknown type) or KM_ERR_BAD_FORMAT.
 */
int km_req_decode_hdr(km_buf *b, km_req_hdr *h, const km_msg_info **info);

/* The reply header: status (0 or KM_ERR_*) and a one-line message. */
typedef struct km_rep_hdr {
	uint32_t type;
	int32_t status;
	char message[KM_PROTO_MESSAGE_MAX + 1];
} km_rep_hdr;

int km_rep_encode_hdr(km_buf *b, uint32_t type, int status,
    const char *message);
int km_rep_decode_hdr(km_buf *b, km_rep_hdr *h);

/* A list of (share index, opaque blob) pairs, as in partial replies. */
typedef struct km_indexed_blob {
	uint32_t index;
	const uint8_t *data; /* points into the decoded buffer */
	size_t len;
} km_indexed_blob;

#define KM_PROTO_MAX_INDICES 64

int km_proto_put_blobs(km_buf *b, const km_indexed_blob *v, size_t n);
/* Refuses more than @max entries, index 0 and blobs over @maxlen. */
int km_proto_get_blobs(km_buf *b, km_indexed_blob *v, size_t max, size_t *n,
    size_t maxlen);

#endif /* KM_PROTO_PROTO_H */
