/*
 * keymeshd's request service: decode, authorise, dispatch, audit.
 *
 * Every request reaches kmd_service_handle() through the transport, which
 * has already checked the TLS connection, the sender's certificate (CA and
 * CRL), the envelope signature, its timestamp and its nonce.  Here the
 * daemon decides on its own, for each request (DESIGN.md §1.4):
 *   1. the header decodes strictly and the message type exists;
 *   2. the sender's role may send this type (km_msg_info.roles);
 *   3. a client operation carries a live user login ticket bound to this
 *      client (an SO ticket serves PIN management only);
 *   4. the key exists, is active in the requested epoch, and its policy
 *      allows the mechanism and the client.
 * A refusal gets an error reply with one clear line and an audit record,
 * never a partial.  Every request, served or refused, is audited.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "daemon/evidence.h"
#include "daemon/evict.h"
#include "daemon/kmd.h"
#include "proto/proto.h"
#include "store/audit.h"
#include "store/catalog.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

/* What a handler tells the dispatcher for the audit record and reply. */
typedef struct kmd_req {
	kmd_state *st;
	const km_identity *peer;
	const km_req_hdr *hdr;
	const km_msg_info *info;
	km_buf *in;	      /* positioned after the header */
	km_buf *out;	      /* the reply payload, after the header */
	char op[48];	      /* audit operation ("rsa-partial:CKM 0x1") */
	uint8_t digest[32];   /* SHA-256 of the operation's input */
	char msg[KM_PROTO_MESSAGE_MAX + 1]; /* error line for the client */
} kmd_req;

#define kmd_reject(q, r, ...) \
	(snprintf((q)->msg, sizeof((q)->msg), __VA_ARGS__), (r))

static uint32_t
kmd_role_bit(km_role role)
{
	switch (role) {
	case KM_ROLE_NODE:
		return KM_MSG_FROM_NODE;
	case KM_ROLE_CLIENT:
		return KM_MSG_FROM_CLIENT;
	case KM_ROLE_ADMIN:
		return KM_MSG_FROM_ADMIN;
	default:
		return 0;
	}
}

/* ---- status ------------------------------------------------------------ */

static int
kmd_do_status(kmd_req *q)
{
	kmd_state *st = q->st;
	km_catalog_key *keys = NULL;
	size_t nkeys = 0, nshares = 0, i;
	char leader[KM_NAME_MAX + 1];
	const char *role;
	uint64_t seq = 0;
	int r;

	if (km_buf_remaining(q->in) != 0) {
		return kmd_reject(q, KM_ERR_BAD_FORMAT,
		    "trailing bytes in status request");
	}
	if ((r = km_catalog_last_seq(st->store, &seq, NULL)) != 0 ||
	    (r = km_catalog_key_list(st->store, &keys, &nkeys)) != 0 ||
	    (r = km_store_share_count(st->store, &nshares)) != 0) {
		return kmd_reject(q, r, "cannot read the state store");
	}
	r = 0;
	r |= km_buf_put_cstring(q->out, st->cfg.name);
	r |= km_buf_put_cstring(q->out, KMD_VERSION);
	r |= km_buf_put_u64(q->out, km_now_ms() - st->started_ms);
	r |= km_buf_put_u64(q->out, seq);
	r |= km_buf_put_u64(q->out, (uint64_t)nshares);
	r |= km_buf_put_cstring(q->out, st->keygen_status);
	r |= km_buf_put_u32(q->out, (uint32_t)nkeys);
	for (i = 0; i < nkeys; i++) {
		uint32_t held = 0;
		size_t j;

		for (j = 0; j < keys[i].nholders; j++) {
			held += strcmp(keys[i].holders[j].node,
					st->cfg.name) == 0;
		}
		r |= km_buf_put_cstring(q->out, keys[i].key_id);
		r |= km_buf_put_cstring(q->out, keys[i].label);
		r |= km_buf_put_u32(q->out, keys[i].key_type);
		r |= km_buf_put_u32(q->out, keys[i].bits);
		r |= km_buf_put_u32(q->out, keys[i].threshold);
		r |= km_buf_put_u32(q->out, (uint32_t)keys[i].nholders);
		r |= km_buf_put_u32(q->out, keys[i].epoch);
		r |= km_buf_put_u32(q->out, (uint32_t)keys[i].state);
		r |= km_buf_put_u32(q->out, held);
	}
	km_catalog_key_list_free(keys, nkeys);
	/* the Raft role and leader come last: older clients stop before */
	role = kmd_raft_role(st, leader, sizeof(leader));
	r |= km_buf_put_cstring(q->out, role);
	r |= km_buf_put_cstring(q->out, leader);
	return r != 0 ? KM_ERR_ALLOC : 0;
}

/* ---- login ------------------------------------------------------------- */

/*
 * login (user) and login-as (user type first): check the PIN against this
 * daemon's verifier for that user type and issue a ticket typed the same.
 */
static int
kmd_do_login(kmd_req *q, bool typed)
{
	char *partition = NULL, *pin = NULL;
	uint8_t ticket[KM_PROTO_TICKET_LEN];
	uint32_t user = KM_PROTO_USER_USER;
	uint64_t expires = 0, locked;
	int r;

	if ((typed && km_buf_get_u32(q->in, &user) != 0) ||
	    km_buf_get_cstring(q->in, &partition, KM_NAME_MAX) != 0 ||
	    km_buf_get_cstring(q->in, &pin, 256) != 0 ||
	    km_buf_remaining(q->in) != 0 || !km_name_valid(partition) ||
	    !kmd_user_valid(user)) {
		r = kmd_reject(q, KM_ERR_BAD_FORMAT, "malformed login request");
		goto out;
	}
	snprintf(q->op, sizeof(q->op), "%s:%s",
	    user == KM_PROTO_USER_SO ? "login-so" : "login", partition);
	if ((locked = kmd_pin_locked_ms(partition, user)) > 0) {
		r = kmd_reject(q, KM_ERR_BUSY,
		    "too many wrong PINs for partition %s: %s logins refused "
		    "for %llu s",
		    partition, kmd_user_name(user),
		    (unsigned long long)(locked / 1000 + 1));
		goto out;
	}
	if ((r = kmd_pin_check(q->st, partition, user, pin)) != 0) {
		if (r == KM_ERR_STATE) {
			r = kmd_reject(q, r,
			    "the %s PIN of partition %s is not initialised",
			    kmd_user_name(user), partition);
		} else if (r == KM_ERR_PIN) {
			r = kmd_reject(q, r, "incorrect PIN");
		} else {
			r = kmd_reject(q, r, "cannot check the PIN");
		}
		goto out;
	}
	if ((r = kmd_ticket_issue(q->st, q->peer, partition, user, ticket,
		 &expires)) != 0) {
		r = kmd_reject(q, r, "cannot issue a login ticket");
		goto out;
	}
	if (km_buf_put_string(q->out, ticket, sizeof(ticket)) != 0 ||
	    km_buf_put_u64(q->out, expires) != 0) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	r = 0;
out:
	km_secret_wipe(ticket, sizeof(ticket));
	if (pin != NULL) {
		km_secret_wipe(pin, strlen(pin));
	}
	free(pin);
	free(partition);
	return r;
}

static int
kmd_do_logout(kmd_req *q)
{
	if (kmd_ticket_revoke(q->st, q->peer, q->hdr->ticket) != 0) {
		return kmd_reject(q, KM_ERR_AUTH, "not logged in");
	}
	return 0;
}

/*
 * init-pin (the admin sets the user PIN) and init-pin-as (user type
 * first): the admin may set either PIN; a client may set only the user
 * PIN, and only with an SO ticket of the same partition (C_InitPIN).
 */
static int
kmd_do_init_pin(kmd_req *q, bool typed)
{
	char *partition = NULL, *pin = NULL;
	char tpart[KM_NAME_MAX + 1];
	uint32_t user = KM_PROTO_USER_USER, tuser = 0;
	int r;

	if ((typed && km_buf_get_u32(q->in, &user) != 0) ||
	    km_buf_get_cstring(q->in, &partition, KM_NAME_MAX) != 0 ||
	    km_buf_get_cstring(q->in, &pin, 256) != 0 ||
	    km_buf_remaining(q->in) != 0 || !km_name_valid(partition) ||
	    !kmd_user_valid(user)) {
		r = kmd_reject(q, KM_ERR_BAD_FORMAT, "malformed init-pin");
		goto out;
	}
	snprintf(q->op, sizeof(q->op), "%s:%s",
	    user == KM_PROTO_USER_SO ? "init-so-pin" : "init-pin", partition);
	if (q->peer->role != KM_ROLE_ADMIN) {
		if (!q->hdr->has_ticket ||
		    kmd_ticket_check(q->st, q->peer, q->hdr->ticket, tpart,
			sizeof(tpart), &tuser) != 0 ||
		    tuser != KM_PROTO_USER_SO ||
		    strcmp(tpart, partition) != 0) {
			r = kmd_reject(q, KM_ERR_AUTH,
			    "not logged in as the SO of partition %s",
			    partition);
			goto out;
		}
		if (user != KM_PROTO_USER_USER) {
			r = kmd_reject(q, KM_ERR_AUTH,
			    "the SO changes its own PIN with set-pin");
			goto out;
		}
	}
	if (!kmd_pin_acceptable(pin)) {
		r = kmd_reject(q, KM_ERR_INVALID_ARG,
		    "a PIN must be 4 to 64 characters");
		goto out;
	}
	if ((r = kmd_pin_set(q->st, partition, user, pin)) != 0) {
		r = kmd_reject(q, r, "cannot store the PIN verifier");
		goto out;
	}
	km_log_info("KMD-PIN-INIT", "%s PIN of partition %s set by %s%s",
	    kmd_user_name(user), partition, q->peer->name,
	    q->peer->role == KM_ROLE_ADMIN ? " (admin)" : " (SO login)");
	r = 0;
out:
	if (pin != NULL) {
		km_secret_wipe(pin, strlen(pin));
	}
	free(pin);
	free(partition);
	return r;
}

/* set-pin: the ticket's user type says whose PIN changes (§5.6). */
static int
kmd_do_set_pin(kmd_req *q)
{
	char partition[KM_NAME_MAX + 1];
	char *old = NULL, *pin = NULL;
	uint32_t user = 0;
	int r;

	if (km_buf_get_cstring(q->in, &old, 256) != 0 ||
	    km_buf_get_cstring(q->in, &pin, 256) != 0 ||
	    km_buf_remaining(q->in) != 0) {
		r = kmd_reject(q, KM_ERR_BAD_FORMAT, "malformed set-pin");
		goto out;
	}
	if (kmd_ticket_check(q->st, q->peer, q->hdr->ticket, partition,
		sizeof(partition), &user) != 0) {
		r = kmd_reject(q, KM_ERR_AUTH, "not logged in");
		goto out;
	}
	snprintf(q->op, sizeof(q->op), "%s:%s",
	    user == KM_PROTO_USER_SO ? "set-so-pin" : "set-pin", partition);
	if ((r = kmd_pin_check(q->st, partition, user, old)) != 0) {
		r = kmd_reject(q, r == KM_ERR_PIN ? r : KM_ERR_STATE,
		    "incorrect PIN");
		goto out;
	}
	if (!kmd_pin_acceptable(pin)) {
		r = kmd_reject(q, KM_ERR_INVALID_ARG,
		    "a PIN must be 4 to 64 characters");
		goto out;
	}
	if ((r = kmd_pin_set(q->st, partition, user, pin)) != 0) {
		r = kmd_reject(q, r, "cannot store the PIN verifier");
		goto out;
	}
	r = 0;
out:
	if (old != NULL) {
		km_secret_wipe(old, strlen(old));
	}
	if (pin != NULL) {
		km_secret_wipe(pin, strlen(pin));
	}
	free(old);
	free(pin);
	return r;
}

/* ---- dispatch ---------------------------------------------------------- */

/* A partial request while quarantined (q->msg says why): refused, and
 * logged, since clients should not have asked (docs/trust.md). */
static int
kmd_quarantine_refuse(kmd_req *q)
{
	km_log_warn("KMD-QUARANTINE-REFUSE", "%s from %s refused: %s",
	    q->info->name, q->peer->name, q->msg);
	return KM_ERR_STATE;
}

static int
kmd_dispatch(kmd_req *q)
{
	switch (q->hdr->type) {
	case KM_MSG_STATUS:
		return kmd_do_status(q);
	case KM_MSG_LOGIN:
		return kmd_do_login(q, false);
	case KM_MSG_LOGIN_AS:
		return kmd_do_login(q, true);
	case KM_MSG_LOGOUT:
		return kmd_do_logout(q);
	case KM_MSG_INIT_PIN:
		return kmd_do_init_pin(q, false);
	case KM_MSG_INIT_PIN_AS:
		return kmd_do_init_pin(q, true);
	case KM_MSG_SET_PIN:
		return kmd_do_set_pin(q);
	case KM_MSG_RSA_PARTIAL:
		return kmd_do_rsa_partial(q->st, q->peer, q->hdr, q->in,
		    q->out, q->op, sizeof(q->op), q->digest, q->msg,
		    sizeof(q->msg));
	case KM_MSG_ECDH_PARTIAL:
		return kmd_do_ecdh_partial(q->st, q->peer, q->hdr, q->in,
		    q->out, q->op, sizeof(q->op), q->digest, q->msg,
		    sizeof(q->msg));
	case KM_MSG_SHARE_PREPARE:
		return kmd_do_share_prepare(q->st, q->peer, q->hdr, q->in,
		    q->out, q->msg, sizeof(q->msg));
	case KM_MSG_SHARE_ABORT:
		return kmd_do_share_abort(q->st, q->peer, q->hdr, q->in,
		    q->out, q->msg, sizeof(q->msg));
	case KM_MSG_KEY_CREATE:
		return kmd_do_key_create(q->st, q->peer, q->hdr, q->in,
		    q->out, q->msg, sizeof(q->msg));
	case KM_MSG_DKG_ROUND:
		return kmd_do_dkg_round(q->st, q->peer, q->hdr, q->in, q->out,
		    q->msg, sizeof(q->msg));
	case KM_MSG_RESHARE_STEP:
		return kmd_do_reshare_step(q->st, q->peer, q->hdr, q->in,
		    q->out, q->msg, sizeof(q->msg));
	case KM_MSG_CATALOG_APPEND:
		return kmd_do_catalog_append(q->st, q->peer, q->hdr, q->in,
		    q->out,
		    q->msg, sizeof(q->msg));
	case KM_MSG_CATALOG_FETCH:
		/* a node cut off from Raft may be behind (evidence.c) */
		if (kmd_evidence_cut_off(q->st, q->msg, sizeof(q->msg))) {
			return KM_ERR_STALE;
		}
		return kmd_do_catalog_fetch(q->st, q->in, q->out, q->msg,
		    sizeof(q->msg));
	case KM_MSG_BEACON:
		return kmd_do_beacon(q->st, q->peer, q->in, q->out, q->msg,
		    sizeof(q->msg));
	case KM_MSG_GRAPH:
		return kmd_do_graph(q->st, q->in, q->out, q->msg,
		    sizeof(q->msg));
	case KM_MSG_EVIDENCE:
		return kmd_do_evidence(q->st, q->peer, q->in, q->out, q->digest,
		    q->msg, sizeof(q->msg));
	case KM_MSG_PROBE:
		return kmd_do_probe(q->st, q->in, q->out, q->msg,
		    sizeof(q->msg));
	case KM_MSG_EVICT_VOTE:
		return kmd_do_evict_vote(q->st, q->peer, q->in, q->out, q->msg,
		    sizeof(q->msg));
	default:
		return kmd_reject(q, KM_ERR_NOT_SUPPORTED,
		    "request type %s is not served by this version",
		    q->info->name);
	}
}

int
kmd_service_handle(void *arg, const km_identity *peer, const uint8_t *req,
    size_t req_len, km_buf *reply)
{
	kmd_state *st = arg;
	km_req_hdr hdr;
	km_buf in, payload;
	kmd_req q;
	uint32_t user = 0;
	int r, ra;

	memset(&q, 0, sizeof(q));
	q.st = st;
	q.peer = peer;
	q.hdr = &hdr;
	q.in = &in;
	q.out = &payload;
	km_buf_init(&payload);
	km_buf_init_view(&in, req, req_len);
	snprintf(q.op, sizeof(q.op), "unknown");
	pthread_mutex_lock(&st->lock);
	st->inflight++; /* the queue depth of our beacons */
	pthread_mutex_unlock(&st->lock);

	r = km_req_decode_hdr(&in, &hdr, &q.info);
	if (r != 0) {
		(void)kmd_reject(&q, r, "malformed request: %s",
		    km_strerror(r));
		km_log_warn_r(r, "KMD-REQ-MALFORMED",
		    "%zu-byte request from %s refused", req_len, peer->name);
		goto reply;
	}
	snprintf(q.op, sizeof(q.op), "%s", q.info->name);
	if ((q.info->roles & kmd_role_bit(peer->role)) == 0) {
		r = kmd_reject(&q, KM_ERR_AUTH,
		    "a %s may not send %s requests",
		    km_role_name(peer->role) ? km_role_name(peer->role) :
					       "peer",
		    q.info->name);
		km_log_warn("KMD-PEER-REJECT", "%s (%s) may not send %s",
		    peer->name, km_role_name(peer->role), q.info->name);
		goto reply;
	}
	/* a quarantined node serves no partial, to anyone: refused before
	 * the ticket is looked at (docs/trust.md, "Quarantine") */
	if ((hdr.type == KM_MSG_RSA_PARTIAL ||
		hdr.type == KM_MSG_ECDH_PARTIAL) &&
	    kmd_trust_refuse_partial(st, q.msg, sizeof(q.msg))) {
		r = kmd_quarantine_refuse(&q);
		goto reply;
	}
	/* an evicted node serves no catalog and takes part in nothing: its
	 * catalog is stale; partials (verified by every client) and logins
	 * only, for a key left below its threshold (docs/eviction.md) */
	if (kmd_evict_is_self(st) && hdr.type != KM_MSG_STATUS &&
	    hdr.type != KM_MSG_RSA_PARTIAL && hdr.type != KM_MSG_ECDH_PARTIAL &&
	    hdr.type != KM_MSG_LOGIN && hdr.type != KM_MSG_LOGIN_AS &&
	    hdr.type != KM_MSG_LOGOUT) {
		r = kmd_reject(&q, KM_ERR_REVOKED,
		    "%s is evicted from the mesh", st->cfg.name);
		goto reply;
	}
	/* a key operation needs a user ticket: an SO ticket only manages
	 * PINs (PKCS#11 §5.6: the SO has no access to private objects) */
	if (q.info->needs_ticket && hdr.type != KM_MSG_LOGOUT &&
	    hdr.type != KM_MSG_SET_PIN &&
	    (kmd_ticket_check(st, peer, hdr.ticket, NULL, 0, &user) != 0 ||
		user != KM_PROTO_USER_USER)) {
		r = kmd_reject(&q, KM_ERR_AUTH,
		    "not logged in as the user (no valid user login ticket)");
		goto reply;
	}
	r = kmd_dispatch(&q);
	if (r == 0 && (hdr.type == KM_MSG_RSA_PARTIAL ||
			  hdr.type == KM_MSG_ECDH_PARTIAL)) {
		/* bind the partials to this very request, under our reply
		 * signature: evidence against us must be the real pair
		 * (docs/evidence.md) */
		uint8_t rd[32];

		if (EVP_Digest(req, req_len, rd, NULL, EVP_sha256(), NULL) !=
			1 ||
		    km_buf_put_raw(&payload, rd, sizeof(rd)) != 0) {
			r = kmd_reject(&q, KM_ERR_CRYPTO,
			    "cannot bind the reply to the request");
		}
	}
	if (r != 0 && q.msg[0] == '\0') {
		snprintf(q.msg, sizeof(q.msg), "%s failed: %s", q.info->name,
		    km_strerror(r));
	}
reply:
	pthread_mutex_lock(&st->lock);
	st->requests++;
	st->refused += (r != 0);
	st->inflight--;
	pthread_mutex_unlock(&st->lock);
	/* audit every request, served or refused; status and catalog
	 * fetches are read-only polls and would drown the log, and so
	 * would served beacons (every peer, every beacon_interval_ms) and
	 * graph reads, which touch no key: a refused one is audited, it
	 * is evidence about its sender */
	if (hdr.type != KM_MSG_STATUS && hdr.type != KM_MSG_CATALOG_FETCH &&
	    ((hdr.type != KM_MSG_BEACON && hdr.type != KM_MSG_GRAPH &&
		 hdr.type != KM_MSG_PROBE) ||
		r != 0)) {
		ra = km_audit_append(st->store, 0, peer->name, hdr.key_id,
		    q.op, q.digest, r, NULL);
		if (ra != 0) {
			km_log_error_r(ra, "KMD-AUDIT-FAIL",
			    "cannot append the audit record");
			if (r == 0) {
				/* no audit, no service */
				r = KM_ERR_IO;
				snprintf(q.msg, sizeof(q.msg),
				    "audit log unavailable");
			}
		}
	}
	if (r != 0) {
		km_buf_reset(&payload);
	}
	if (km_rep_encode_hdr(reply, hdr.type, r, r ? q.msg : "") != 0 ||
	    (r == 0 && km_buf_put_raw(reply, payload.data, payload.len) !=
		    0)) {
		km_buf_free(&payload);
		return KM_ERR_ALLOC;
	}
	km_buf_free(&payload);
	return 0;
}
