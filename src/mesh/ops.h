/*
 * Client operations against single nodes: login and partial requests.
 * The PKCS#11 module fans these out to a quorum (and combines); tests and
 * tools call them one node at a time.
 */
#ifndef KM_MESH_OPS_H
#define KM_MESH_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>

#include "mesh/client.h"
#include "proto/proto.h"
#include "util/buf.h"

#define KM_OPS_SIGN 1u	  /* rsa-partial kind: a signature */
#define KM_OPS_DECRYPT 2u /* rsa-partial kind: a decryption */

/**
 * km_ops_login:
 * @ticket: receives the node's login ticket (KM_PROTO_TICKET_LEN bytes)
 * Returns: 0, KM_ERR_PIN (wrong PIN), KM_ERR_STATE (PIN never set), or a
 * transport error; @msg gets the node's reason.
 */
int km_ops_login(km_net_client *c, const char *partition, const char *pin,
    int timeout_ms, uint8_t ticket[KM_PROTO_TICKET_LEN], char *msg,
    size_t msglen);

/**
 * km_ops_login_as:
 * @user: KM_PROTO_USER_USER (sent as a plain login) or KM_PROTO_USER_SO
 *   (login-as); the ticket the node returns is of that user type
 * Returns as km_ops_login.
 */
int km_ops_login_as(km_net_client *c, uint32_t user, const char *partition,
    const char *pin, int timeout_ms, uint8_t ticket[KM_PROTO_TICKET_LEN],
    char *msg, size_t msglen);

/**
 * km_ops_init_pin:
 * Sets the @user PIN of @partition on one node (init-pin-as).  A client
 * passes its SO @ticket and may set only the user PIN; the admin passes
 * NULL and may set either.
 */
int km_ops_init_pin(km_net_client *c,
    const uint8_t ticket[KM_PROTO_TICKET_LEN], uint32_t user,
    const char *partition, const char *pin, int timeout_ms, char *msg,
    size_t msglen);

int km_ops_logout(km_net_client *c, const uint8_t ticket[KM_PROTO_TICKET_LEN],
    int timeout_ms);

/**
 * km_ops_set_pin: change a PIN on one node, with a fresh ticket: the user
 * PIN with a user ticket, the SO PIN with an SO ticket.
 */
int km_ops_set_pin(km_net_client *c,
    const uint8_t ticket[KM_PROTO_TICKET_LEN], const char *old_pin,
    const char *new_pin, int timeout_ms, char *msg, size_t msglen);

/* What an rsa-partial request carries (see daemon/partial.c). */
typedef struct km_ops_rsa_req {
	const char *key_id;
	uint32_t epoch;
	uint32_t mech;	     /* CKM_* */
	uint32_t kind;	     /* KM_OPS_SIGN or KM_OPS_DECRYPT */
	uint32_t hash;	     /* KM_RSA_HASH_* of the digest (sign) */
	uint32_t mgf1_hash;  /* PSS */
	uint32_t salt_len;   /* PSS */
	const uint8_t *aux;  /* the digest or DigestInfo (sign) */
	size_t auxlen;
	const uint8_t *x;    /* the representative, |N| bytes */
	size_t xlen;
	bool with_proof;
} km_ops_rsa_req;

/**
 * km_ops_rsa_request / km_ops_ecdh_request:
 * Build the request body (to send with km_rpc_call or asynchronously).
 */
int km_ops_rsa_request(const km_ops_rsa_req *q,
    const uint8_t ticket[KM_PROTO_TICKET_LEN], km_buf *out);
int km_ops_ecdh_request(const char *key_id, uint32_t epoch, uint32_t mech,
    const uint8_t *point, size_t pointlen,
    const uint8_t ticket[KM_PROTO_TICKET_LEN], km_buf *out);

/**
 * km_ops_partials_parse:
 * @reply: a reply body positioned after its header (km_rpc_call, or
 *   km_rpc_reply_parse for asynchronous calls)
 * @v, @max, @n: the (index, partial encoding) pairs, pointing into @reply
 */
int km_ops_partials_parse(km_buf *reply, km_indexed_blob *v, size_t max,
    size_t *n);

/*
 * A partial reply ends with the SHA-256 of the request body it answers,
 * under the node's reply signature, so that a stored reply cannot be
 * paired with another request to frame the node (docs/evidence.md).
 */
#define KM_OPS_REQ_DIGEST_LEN 32

/**
 * km_ops_partials_parse_bound:
 * As km_ops_partials_parse(), and @req_sha256 (may be NULL) receives the
 * request digest the reply carries.
 */
int km_ops_partials_parse_bound(km_buf *reply, km_indexed_blob *v,
    size_t max, size_t *n, uint8_t req_sha256[KM_OPS_REQ_DIGEST_LEN]);

#endif /* KM_MESH_OPS_H */
