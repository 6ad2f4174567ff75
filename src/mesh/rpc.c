#include "config.h"

#include <stdio.h>
#include <string.h>

#include "mesh/rpc.h"
#include "util/err.h"

int
km_rpc_request(km_buf *out, uint32_t type, const char *key_id,
    uint32_t epoch, const uint8_t *ticket)
{
	km_req_hdr h;

	memset(&h, 0, sizeof(h));
	h.type = type;
	if (key_id != NULL) {
		if (strlen(key_id) > KM_PROTO_KEY_ID_MAX) {
			return KM_ERR_INVALID_ARG;
		}
		snprintf(h.key_id, sizeof(h.key_id), "%s", key_id);
	}
	h.epoch = epoch;
	if (ticket != NULL) {
		h.has_ticket = true;
		memcpy(h.ticket, ticket, KM_PROTO_TICKET_LEN);
	}
	return km_req_encode_hdr(out, &h);
}

int
km_rpc_reply_parse(uint32_t type, const uint8_t *body, size_t len,
    km_buf *view, char *msg, size_t msglen)
{
	km_rep_hdr h;
	int r;

	km_buf_init_view(view, body, len);
	if ((r = km_rep_decode_hdr(view, &h)) != 0) {
		if (msg != NULL) {
			snprintf(msg, msglen, "malformed reply: %s",
			    km_strerror(r));
		}
		return r;
	}
	if (h.type != type) {
		if (msg != NULL) {
			snprintf(msg, msglen, "reply to the wrong request");
		}
		return KM_ERR_BAD_FORMAT;
	}
	if (h.status != 0) {
		if (msg != NULL) {
			snprintf(msg, msglen, "%s",
			    h.message[0] ? h.message : km_strerror(h.status));
		}
		return h.status;
	}
	return 0;
}

int
km_rpc_call(km_net_client *c, const km_buf *req, int timeout_ms,
    km_buf *reply, char *msg, size_t msglen)
{
	km_req_hdr h;
	km_buf view;
	const km_msg_info *info;
	int r;

	if (msg != NULL && msglen > 0) {
		msg[0] = '\0';
	}
	km_buf_init_view(&view, req->data, req->len);
	if ((r = km_req_decode_hdr(&view, &h, &info)) != 0) {
		return r;
	}
	km_buf_reset(reply);
	if ((r = km_net_client_call(c, req->data, req->len, timeout_ms, reply,
		 NULL)) != 0) {
		if (msg != NULL) {
			snprintf(msg, msglen, "%s", km_strerror(r));
		}
		return r;
	}
	if ((r = km_rpc_reply_parse(h.type, reply->data, reply->len, &view,
		 msg, msglen)) != 0) {
		return r;
	}
	/* hand back the reply positioned after its header */
	reply->off = view.off;
	return 0;
}
