#include "config.h"

#include <stdio.h>
#include <string.h>

#include "mesh/ops.h"
#include "mesh/rpc.h"
#include "util/err.h"
#include "util/secmem.h"

/* login (user) or login-as (any user type): the request, then the reply */
int
km_ops_login_as(km_net_client *c, uint32_t user, const char *partition,
    const char *pin, int timeout_ms, uint8_t ticket[KM_PROTO_TICKET_LEN],
    char *msg, size_t msglen)
{
	km_buf req, rep;
	const uint8_t *p;
	size_t n;
	uint64_t expires;
	int r;

	km_buf_init_secure(&req);
	km_buf_init(&rep);
	/* a user login stays a plain login, which every daemon version
	 * serves; only the SO needs login-as */
	if (user == KM_PROTO_USER_USER) {
		r = km_rpc_request(&req, KM_MSG_LOGIN, NULL, 0, NULL);
	} else {
		r = km_rpc_request(&req, KM_MSG_LOGIN_AS, NULL, 0, NULL);
		r = r ? r : km_buf_put_u32(&req, user);
	}
	r = r ? r : km_buf_put_cstring(&req, partition);
	r = r ? r : km_buf_put_cstring(&req, pin);
	if (r == 0) {
		r = km_rpc_call(c, &req, timeout_ms, &rep, msg, msglen);
	}
	if (r == 0 &&
	    (km_buf_get_string_ptr(&rep, &p, &n, KM_PROTO_TICKET_LEN) != 0 ||
		n != KM_PROTO_TICKET_LEN ||
		km_buf_get_u64(&rep, &expires) != 0)) {
		snprintf(msg, msglen, "malformed login reply");
		r = KM_ERR_BAD_FORMAT;
	}
	if (r == 0) {
		memcpy(ticket, p, KM_PROTO_TICKET_LEN);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
km_ops_login(km_net_client *c, const char *partition, const char *pin,
    int timeout_ms, uint8_t ticket[KM_PROTO_TICKET_LEN], char *msg,
    size_t msglen)
{
	return km_ops_login_as(c, KM_PROTO_USER_USER, partition, pin,
	    timeout_ms, ticket, msg, msglen);
}

int
km_ops_init_pin(km_net_client *c, const uint8_t ticket[KM_PROTO_TICKET_LEN],
    uint32_t user, const char *partition, const char *pin, int timeout_ms,
    char *msg, size_t msglen)
{
	km_buf req, rep;
	int r;

	km_buf_init_secure(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_INIT_PIN_AS, NULL, 0, ticket);
	r = r ? r : km_buf_put_u32(&req, user);
	r = r ? r : km_buf_put_cstring(&req, partition);
	r = r ? r : km_buf_put_cstring(&req, pin);
	if (r == 0) {
		r = km_rpc_call(c, &req, timeout_ms, &rep, msg, msglen);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
km_ops_logout(km_net_client *c, const uint8_t ticket[KM_PROTO_TICKET_LEN],
    int timeout_ms)
{
	km_buf req, rep;
	char msg[128];
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_LOGOUT, NULL, 0, ticket);
	if (r == 0) {
		r = km_rpc_call(c, &req, timeout_ms, &rep, msg, sizeof(msg));
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
km_ops_set_pin(km_net_client *c, const uint8_t ticket[KM_PROTO_TICKET_LEN],
    const char *old_pin, const char *new_pin, int timeout_ms, char *msg,
    size_t msglen)
{
	km_buf req, rep;
	int r;

	km_buf_init_secure(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_SET_PIN, NULL, 0, ticket);
	r = r ? r : km_buf_put_cstring(&req, old_pin);
	r = r ? r : km_buf_put_cstring(&req, new_pin);
	if (r == 0) {
		r = km_rpc_call(c, &req, timeout_ms, &rep, msg, msglen);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
km_ops_rsa_request(const km_ops_rsa_req *q,
    const uint8_t ticket[KM_PROTO_TICKET_LEN], km_buf *out)
{
	int r;

	r = km_rpc_request(out, KM_MSG_RSA_PARTIAL, q->key_id, q->epoch,
	    ticket);
	r = r ? r : km_buf_put_u32(out, q->mech);
	r = r ? r : km_buf_put_u32(out, q->kind);
	r = r ? r : km_buf_put_u32(out, q->hash);
	r = r ? r : km_buf_put_u32(out, q->mgf1_hash);
	r = r ? r : km_buf_put_u32(out, q->salt_len);
	r = r ? r : km_buf_put_string(out, q->aux, q->aux ? q->auxlen : 0);
	r = r ? r : km_buf_put_string(out, q->x, q->xlen);
	r = r ? r : km_buf_put_u8(out, q->with_proof ? 1 : 0);
	return r;
}

int
km_ops_ecdh_request(const char *key_id, uint32_t epoch, uint32_t mech,
    const uint8_t *point, size_t pointlen,
    const uint8_t ticket[KM_PROTO_TICKET_LEN], km_buf *out)
{
	int r;

	r = km_rpc_request(out, KM_MSG_ECDH_PARTIAL, key_id, epoch, ticket);
	r = r ? r : km_buf_put_u32(out, mech);
	r = r ? r : km_buf_put_string(out, point, pointlen);
	return r;
}

int
km_ops_partials_parse_bound(km_buf *reply, km_indexed_blob *v, size_t max,
    size_t *n, uint8_t req_sha256[KM_OPS_REQ_DIGEST_LEN])
{
	uint8_t d[KM_OPS_REQ_DIGEST_LEN];
	int r;

	if ((r = km_proto_get_blobs(reply, v, max, n, 16384)) != 0) {
		return r;
	}
	/* the digest of the request answered (docs/evidence.md §2) */
	if (km_buf_get_raw(reply, d, sizeof(d)) != 0
	    || km_buf_remaining(reply) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (req_sha256 != NULL) {
		memcpy(req_sha256, d, sizeof(d));
	}
	return 0;
}

int
km_ops_partials_parse(km_buf *reply, km_indexed_blob *v, size_t max,
    size_t *n)
{
	return km_ops_partials_parse_bound(reply, v, max, n, NULL);
}
