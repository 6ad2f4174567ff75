#include "config.h"

#include <stdio.h>
#include <string.h>

#include "proto/proto.h"
#include "util/err.h"
#include "util/util.h"

#define N KM_MSG_FROM_NODE
#define C KM_MSG_FROM_CLIENT
#define A KM_MSG_FROM_ADMIN

/* Every message, once (after p11-kit's p11_rpc_calls). */
static const km_msg_info km_msg_table[] = {
	{ KM_MSG_STATUS, "status", N | C | A, 4096, false, false },
	{ KM_MSG_LOGIN, "login", C | A, 4096, false, false },
	{ KM_MSG_LOGOUT, "logout", C | A, 4096, false, true },
	{ KM_MSG_SET_PIN, "set-pin", C, 4096, false, true },
	{ KM_MSG_INIT_PIN, "init-pin", A, 4096, false, false },
	{ KM_MSG_LOGIN_AS, "login-as", C | A, 4096, false, false },
	/* a client must show an SO ticket: checked by the handler, since
	 * the admin sends none */
	{ KM_MSG_INIT_PIN_AS, "init-pin-as", C | A, 4096, false, false },
	{ KM_MSG_RSA_PARTIAL, "rsa-partial", C, 8192, true, true },
	{ KM_MSG_ECDH_PARTIAL, "ecdh-partial", C, 4096, true, true },
	{ KM_MSG_KEY_CREATE, "key-create", A, 65536, true, false },
	{ KM_MSG_SHARE_PREPARE, "share-prepare", N | A, 262144, true, false },
	{ KM_MSG_SHARE_COMMIT, "share-commit", N | A, 4096, true, false },
	{ KM_MSG_SHARE_ABORT, "share-abort", N | A, 4096, true, false },
	{ KM_MSG_DKG_ROUND, "dkg-round", N, 262144, true, false },
	{ KM_MSG_RESHARE_STEP, "reshare-step", N | A, 262144, true, false },
	{ KM_MSG_KEY_DESTROY, "key-destroy", A, 4096, true, false },
	/* clients append object entries only (daemon/catalog.c) */
	{ KM_MSG_CATALOG_APPEND, "catalog-append", N | C | A, 262144, false,
	    false },
	{ KM_MSG_CATALOG_FETCH, "catalog-fetch", N | C | A, 4096, false,
	    false },
	/* a signed trust beacon (src/trust): the handler checks that it
	 * names its sender */
	{ KM_MSG_BEACON, "beacon", N, 32768, false, false },
	{ KM_MSG_GRAPH, "graph", C | A, 4096, false, false },
	/* a client reports a bad partial; a node forwards it to the leader
	 * (one evidence blob, trust/evidence.h KM_EVIDENCE_MAX) */
	{ KM_MSG_EVIDENCE, "evidence", N | C, 139264, false, false },
	/* a throughput measurement: string of KM_PROBE_BYTES, nothing else */
	{ KM_MSG_PROBE, "probe", N, KM_PROBE_BYTES + 1024, false, false },
	/* evict-vote: the coordinator asks a member to check evidence and
	 * sign an eviction vote (docs/eviction.md) */
	{ KM_MSG_EVICT_VOTE, "evict-vote", N, 65536, false, false },
};

#undef N
#undef C
#undef A

const km_msg_info *
km_msg_lookup(uint32_t type)
{
	size_t i;

	for (i = 0; i < KM_ARRAY_LEN(km_msg_table); i++) {
		if (km_msg_table[i].type == type) {
			return &km_msg_table[i];
		}
	}
	return NULL;
}

int
km_req_encode_hdr(km_buf *b, const km_req_hdr *h)
{
	const km_msg_info *info = km_msg_lookup(h->type);
	int r;

	if (info == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (h->key_id[0] != '\0' && !km_name_valid(h->key_id)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_buf_put_u8(b, KM_PROTO_VERSION)) != 0 ||
	    (r = km_buf_put_u32(b, h->type)) != 0 ||
	    (r = km_buf_put_cstring(b, h->key_id)) != 0 ||
	    (r = km_buf_put_u32(b, h->epoch)) != 0 ||
	    (r = km_buf_put_string(b, h->ticket,
		 h->has_ticket ? KM_PROTO_TICKET_LEN : 0)) != 0) {
		return r;
	}
	return 0;
}

int
km_req_decode_hdr(km_buf *b, km_req_hdr *h, const km_msg_info **info)
{
	const km_msg_info *mi;
	const uint8_t *p;
	size_t n;
	uint8_t version;
	int r;

	memset(h, 0, sizeof(*h));
	if (km_buf_remaining(b) > KM_PROTO_MAX_MSG) {
		return KM_ERR_TOO_LARGE;
	}
	if ((r = km_buf_get_u8(b, &version)) != 0) {
		return r;
	}
	if (version != KM_PROTO_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if ((r = km_buf_get_u32(b, &h->type)) != 0) {
		return r;
	}
	if ((mi = km_msg_lookup(h->type)) == NULL) {
		return KM_ERR_NOT_SUPPORTED;
	}
	if (b->len > mi->max_len) {
		return KM_ERR_TOO_LARGE;
	}
	if ((r = km_buf_get_string_ptr(b, &p, &n, KM_PROTO_KEY_ID_MAX)) != 0) {
		return r == KM_ERR_TOO_LARGE ? KM_ERR_BAD_FORMAT : r;
	}
	/* a NUL inside would make the key named differ from the bytes
	 * signed and audited (found by fuzz-proto) */
	if (n > 0 && memchr(p, '\0', n) != NULL) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(h->key_id, p, n);
	h->key_id[n] = '\0';
	if (n > 0 && !km_name_valid(h->key_id)) {
		return KM_ERR_BAD_FORMAT;
	}
	if (mi->needs_key && n == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((r = km_buf_get_u32(b, &h->epoch)) != 0 ||
	    (r = km_buf_get_string_ptr(b, &p, &n, KM_PROTO_TICKET_LEN)) != 0) {
		return r == KM_ERR_TOO_LARGE ? KM_ERR_BAD_FORMAT : r;
	}
	if (n != 0 && n != KM_PROTO_TICKET_LEN) {
		return KM_ERR_BAD_FORMAT;
	}
	h->has_ticket = (n == KM_PROTO_TICKET_LEN);
	if (h->has_ticket) {
		memcpy(h->ticket, p, n);
	}
	if (mi->needs_ticket && !h->has_ticket) {
		return KM_ERR_BAD_FORMAT;
	}
	*info = mi;
	return 0;
}

int
km_rep_encode_hdr(km_buf *b, uint32_t type, int status, const char *message)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	int r;

	/* one line, bounded: a message never carries more than that */
	snprintf(msg, sizeof(msg), "%s", message ? message : "");
	msg[strcspn(msg, "\r\n")] = '\0';
	if ((r = km_buf_put_u8(b, KM_PROTO_VERSION)) != 0 ||
	    (r = km_buf_put_u32(b, type)) != 0 ||
	    (r = km_buf_put_u32(b, (uint32_t)status)) != 0 ||
	    (r = km_buf_put_cstring(b, msg)) != 0) {
		return r;
	}
	return 0;
}

int
km_rep_decode_hdr(km_buf *b, km_rep_hdr *h)
{
	const uint8_t *p;
	uint8_t version;
	uint32_t status;
	size_t n;
	int r;

	memset(h, 0, sizeof(*h));
	if (km_buf_remaining(b) > KM_PROTO_MAX_MSG) {
		return KM_ERR_TOO_LARGE;
	}
	if ((r = km_buf_get_u8(b, &version)) != 0) {
		return r;
	}
	if (version != KM_PROTO_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if ((r = km_buf_get_u32(b, &h->type)) != 0 ||
	    (r = km_buf_get_u32(b, &status)) != 0 ||
	    (r = km_buf_get_string_ptr(b, &p, &n, KM_PROTO_MESSAGE_MAX)) !=
		0) {
		return r == KM_ERR_TOO_LARGE ? KM_ERR_BAD_FORMAT : r;
	}
	h->status = (int32_t)status;
	/* a status is 0 or one of ours; anything else is malformed */
	if (h->status > 0 || h->status < KM_ERR_LAST) {
		return KM_ERR_BAD_FORMAT;
	}
	/* one line, no NUL: a peer must not write lines into our logs */
	if (memchr(p, '\0', n) != NULL || memchr(p, '\n', n) != NULL ||
	    memchr(p, '\r', n) != NULL) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(h->message, p, n);
	h->message[n] = '\0';
	return 0;
}

int
km_proto_put_blobs(km_buf *b, const km_indexed_blob *v, size_t n)
{
	size_t i;
	int r;

	if (n > KM_PROTO_MAX_INDICES) {
		return KM_ERR_TOO_LARGE;
	}
	if ((r = km_buf_put_u32(b, (uint32_t)n)) != 0) {
		return r;
	}
	for (i = 0; i < n; i++) {
		if ((r = km_buf_put_u32(b, v[i].index)) != 0 ||
		    (r = km_buf_put_string(b, v[i].data, v[i].len)) != 0) {
			return r;
		}
	}
	return 0;
}

int
km_proto_get_blobs(km_buf *b, km_indexed_blob *v, size_t max, size_t *n,
    size_t maxlen)
{
	uint32_t count, i;
	int r;

	*n = 0;
	if ((r = km_buf_get_u32(b, &count)) != 0) {
		return r;
	}
	if (count > max || count > KM_PROTO_MAX_INDICES) {
		return KM_ERR_TOO_LARGE;
	}
	for (i = 0; i < count; i++) {
		if ((r = km_buf_get_u32(b, &v[i].index)) != 0 ||
		    (r = km_buf_get_string_ptr(b, &v[i].data, &v[i].len,
			 maxlen)) != 0) {
			return r;
		}
		if (v[i].index == 0) {
			return KM_ERR_BAD_FORMAT;
		}
	}
	*n = count;
	return 0;
}
