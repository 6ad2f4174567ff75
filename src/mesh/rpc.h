/*
 * One request/reply exchange with a keymeshd: the header of src/proto, the
 * transport of src/net, and the reply's status turned into a KM_ERR_* code
 * with the daemon's own one-line reason.  Shared by the admin CLI, the
 * daemons (for peer requests) and the PKCS#11 module.
 */
#ifndef KM_MESH_RPC_H
#define KM_MESH_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "proto/proto.h"
#include "util/buf.h"

/**
 * km_rpc_request:
 * @out: an initialised km_buf that receives the request body
 * @type: KM_MSG_*
 * @key_id: the key, or NULL
 * @epoch: the key's epoch (0 when none)
 * @ticket: a login ticket (KM_PROTO_TICKET_LEN bytes) or NULL
 *
 * Writes the header; the caller appends the type-specific fields.
 */
int km_rpc_request(km_buf *out, uint32_t type, const char *key_id,
    uint32_t epoch, const uint8_t *ticket);

/**
 * km_rpc_call:
 * @c: a connected client
 * @req: a request made with km_rpc_request() and its fields
 * @timeout_ms: for the round trip
 * @reply: receives the reply; on success its read offset is at the
 *   type-specific fields
 * @msg: receives the daemon's reason on failure (may be NULL)
 * @msglen: size of @msg
 *
 * Returns: 0, the daemon's KM_ERR_* (with @msg), or a transport error
 * (KM_ERR_TIMEOUT, KM_ERR_CONN, ... with a generic @msg).
 */
int km_rpc_call(km_net_client *c, const km_buf *req, int timeout_ms,
    km_buf *reply, char *msg, size_t msglen);

/**
 * km_rpc_reply_parse:
 * For an asynchronous call: checks a reply body's header against @type and
 * positions @view after it.
 */
int km_rpc_reply_parse(uint32_t type, const uint8_t *body, size_t len,
    km_buf *view, char *msg, size_t msglen);

#endif /* KM_MESH_RPC_H */
