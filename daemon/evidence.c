/*
 * Evidence of a bad partial inside keymeshd (issue #7 item 5; the format
 * and the check are in src/trust/evidence.c, the reasoning in
 * docs/evidence.md).
 *
 * kmd_evidence_check() checks a blob on this node's own: the mesh CA and
 * CRL it loaded, and the key's public data and share map from its own
 * applied catalog.  No other node's word is taken.
 *
 * The evidence request (KM_MSG_EVIDENCE) from a client, or from a node
 * forwarding it:
 *   - refused evidence gets a one-line error reply, a KMD-EVIDENCE-REFUSED
 *     line and the usual audit record; nothing else changes;
 *   - accepted evidence is logged once per evidence hash (KMD-EVIDENCE,
 *     a warning), remembered in a small ring of hashes, and then:
 *     on the Raft leader (the coordinator) handed to
 *     kmd_evict_on_evidence(); elsewhere forwarded to the leader, one hop
 *     (a node's forward is never forwarded again), with this node's own
 *     certificate, as catalog appends are.
 * Either way the client hears that the evidence was accepted, with one
 * line on what was done with it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "daemon/evidence.h"
#include "daemon/kmd.h"
#include "mesh/rpc.h"
#include "net/envelope.h"
#include "proto/proto.h"
#include "raft/raft.h"
#include "store/catalog.h"
#include "store/store.h"
#include "trust/evidence.h"
#include "trust/score.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

/* Accepted evidence remembered, so a repeat is not logged or acted on. */
#define KMD_EVIDENCE_SEEN   256
#define KMD_EVIDENCE_FWD_MS 5000

static pthread_mutex_t kmd_ev_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t kmd_ev_seen[KMD_EVIDENCE_SEEN][32];
static size_t kmd_ev_nseen, kmd_ev_next;

/* True when @hash was seen; otherwise remembers it (oldest goes). */
static bool
kmd_evidence_seen(const uint8_t hash[32])
{
	size_t i;
	bool seen = false;

	pthread_mutex_lock(&kmd_ev_lock);
	for (i = 0; i < kmd_ev_nseen; i++) {
		if (memcmp(kmd_ev_seen[i], hash, 32) == 0) {
			seen = true;
			break;
		}
	}
	if (!seen) {
		memcpy(kmd_ev_seen[kmd_ev_next], hash, 32);
		kmd_ev_next = (kmd_ev_next + 1) % KMD_EVIDENCE_SEEN;
		if (kmd_ev_nseen < KMD_EVIDENCE_SEEN) {
			kmd_ev_nseen++;
		}
	}
	pthread_mutex_unlock(&kmd_ev_lock);
	return seen;
}

/* The key evidence is deduplicated and scored by: one per (accused,
 * reply envelope), which a client cannot vary by re-signing its request
 * (trust/evidence.h km_evidence_dedupe_key; review finding 4).  An
 * error counts as seen: nothing is noted or acted on twice. */
static int
kmd_evidence_dedupe(const uint8_t *ev, size_t len,
    const kmd_evidence_info *info, uint8_t key[32])
{
	return km_evidence_dedupe_key(ev, len, info->accused, key);
}

/* Forgets @hash again (its forward failed: a retry may get through). */
static void
kmd_evidence_unsee(const uint8_t hash[32])
{
	size_t i;

	pthread_mutex_lock(&kmd_ev_lock);
	for (i = 0; i < kmd_ev_nseen; i++) {
		if (memcmp(kmd_ev_seen[i], hash, 32) == 0) {
			memset(kmd_ev_seen[i], 0, 32);
		}
	}
	pthread_mutex_unlock(&kmd_ev_lock);
}

/*
 * The key at @epoch from this node's catalog.  Only the current epoch is
 * known: the catalog keeps one epoch's public data and share map, so
 * evidence from before a re-share proves nothing here (docs/evidence.md).
 */
static int
kmd_evidence_lookup(
    void *arg, const char *key_id, uint32_t epoch, km_evidence_key *key)
{
	kmd_state *st = arg;
	km_catalog_key k;
	size_t i;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = km_catalog_key_get(st->store, key_id, &k)) != 0) {
		return KM_ERR_NOT_FOUND;
	}
	if (k.epoch != epoch || k.public_len == 0
	    || k.nholders > KM_EVIDENCE_MAX_HOLDERS) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	}
	key->key_type = k.key_type;
	key->nholders = k.nholders;
	for (i = 0; i < k.nholders; i++) {
		key->holders[i].index = k.holders[i].index;
		snprintf(key->holders[i].node, sizeof(key->holders[i].node),
		    "%s", k.holders[i].node);
	}
	r = km_buf_put_raw(&key->pub, k.public_data, k.public_len);
out:
	km_catalog_key_free(&k);
	return r;
}

int
kmd_evidence_check(kmd_state *st, const uint8_t *ev, size_t len,
    kmd_evidence_info *info, char *why, size_t whylen)
{
	km_evidence_result res;
	const uint8_t *req, *rep;
	size_t reqlen, replen;
	km_env env;
	int r;

	memset(info, 0, sizeof(*info));
	if (st->x509 == NULL) {
		snprintf(why, whylen, "no CA store loaded");
		return KM_ERR_STATE;
	}
	r = km_evidence_verify(ev, len, st->x509, km_now_ms(),
	    kmd_evidence_lookup, st, &res, why, whylen);
	if (r != 0) {
		return r;
	}
	snprintf(info->accused, sizeof(info->accused), "%s", res.accused);
	snprintf(info->key_id, sizeof(info->key_id), "%s", res.key_id);
	info->epoch = res.epoch;
	info->index = res.index;
	memcpy(info->hash, res.hash, sizeof(info->hash));
	snprintf(info->what, sizeof(info->what), "%s", res.what);
	/* the accused's certificate: the reply envelope's, which
	 * km_evidence_verify() has just checked (chain, CRL, signature) */
	if ((r = km_evidence_parse(ev, len, &req, &reqlen, &rep, &replen)) != 0
	    || (r = km_env_parse(rep, replen, KM_EVIDENCE_ENV_MAX, &env)) != 0
	    || env.cert_len == 0) {
		snprintf(
		    why, whylen, "the reply envelope cannot be read again");
		memset(info, 0, sizeof(*info));
		return r != 0 ? r : KM_ERR_BAD_FORMAT;
	}
	if (EVP_Digest(env.cert, env.cert_len, info->cert_sha256, NULL,
	        EVP_sha256(), NULL)
	    != 1) {
		snprintf(why, whylen, "cannot hash the accused's certificate");
		memset(info, 0, sizeof(*info));
		return KM_ERR_CRYPTO;
	}
	return 0;
}

/* Forwards @ev to the leader @name as this node; one line in @note. */
static int
kmd_evidence_forward(kmd_state *st, const char *name, const uint8_t *ev,
    size_t len, char *note, size_t notelen)
{
	struct km_net_client *c = NULL;
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	km_buf req, rep;
	unsigned i;
	int r;

	for (i = 0; i < st->cfg.npeers; i++) {
		if (strcmp(st->cfg.peers[i].name, name) == 0) {
			c = st->peer_clients[i];
		}
	}
	if (c == NULL || !km_net_client_connected(c)) {
		snprintf(note, notelen,
		    "noted by %s; the leader %s is not connected",
		    st->cfg.name, name);
		return KM_ERR_CONN;
	}
	km_buf_init(&req);
	km_buf_init(&rep);
	msg[0] = '\0';
	if ((r = km_rpc_request(&req, KM_MSG_EVIDENCE, NULL, 0, NULL)) == 0
	    && (r = km_buf_put_string(&req, ev, len)) == 0) {
		r = km_rpc_call(
		    c, &req, KMD_EVIDENCE_FWD_MS, &rep, msg, sizeof(msg));
	}
	if (r == 0) {
		snprintf(note, notelen,
		    "noted by %s, forwarded to the leader "
		    "%s",
		    st->cfg.name, name);
	} else {
		snprintf(note, notelen,
		    "noted by %s; the leader %s did not take it: %s",
		    st->cfg.name, name, msg[0] ? msg : km_strerror(r));
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
kmd_do_evidence(kmd_state *st, const km_identity *peer, km_buf *in,
    km_buf *out, uint8_t digest[32], char *msg, size_t msglen)
{
	kmd_evidence_info info;
	const uint8_t *ev = NULL;
	uint8_t dkey[32];
	size_t len = 0;
	char why[200], note[200], leader[KM_NAME_MAX + 1];
	const char *role;
	int r, er;

	if (km_buf_get_string_ptr(in, &ev, &len, KM_EVIDENCE_MAX) != 0
	    || km_buf_remaining(in) != 0) {
		snprintf(msg, msglen, "malformed evidence request");
		return KM_ERR_BAD_FORMAT;
	}
	(void)EVP_Digest(ev, len, digest, NULL, EVP_sha256(), NULL);
	why[0] = '\0';
	if ((r = kmd_evidence_check(st, ev, len, &info, why, sizeof(why)))
	    != 0) {
		km_log_warn("KMD-EVIDENCE-REFUSED",
		    "evidence from %s proves nothing: %s", peer->name, why);
		snprintf(msg, msglen, "evidence refused: %s", why);
		return r;
	}
	if (kmd_evidence_dedupe(ev, len, &info, dkey) != 0
	    || kmd_evidence_seen(dkey)) {
		snprintf(
		    note, sizeof(note), "already noted by %s", st->cfg.name);
		goto reply;
	}
	km_log_warn("KMD-EVIDENCE",
	    "%s returned a bad partial: key %s epoch %u index %u, %s "
	    "(reported by %s)",
	    info.accused, info.key_id, info.epoch, info.index, info.what,
	    peer->name);
	role = kmd_raft_role(st, leader, sizeof(leader));
	if (st->raft == NULL || strcmp(role, "leader") == 0) {
		/* the coordinator (or a mesh without Raft): the node's trust
		 * score drops at once (a verdict may quarantine it before the
		 * votes are in), then the eviction by votes */
		(void)kmd_trust_note(st, info.accused, KM_TRUST_EV_BAD_PARTIAL);
		er = kmd_evict_on_evidence(
		    st, &info, ev, len, why, sizeof(why));
		if (er == 0) {
			snprintf(note, sizeof(note),
			    "accepted by the coordinator %s: eviction under "
			    "way",
			    st->cfg.name);
		} else {
			/* KM_ERR_NOT_SUPPORTED: eviction not built; noted */
			snprintf(note, sizeof(note),
			    "accepted by the coordinator %s, not acted on: %s",
			    st->cfg.name, why);
			km_log_warn_r(er, "KMD-EVIDENCE-NOT-ACTED",
			    "evidence against %s noted, not acted on: %s",
			    info.accused, why);
		}
	} else if (peer->role == KM_ROLE_NODE) {
		/* forwarded to us, but we do not lead (any more): one hop */
		snprintf(note, sizeof(note),
		    "noted by %s, not the leader (%s is)", st->cfg.name,
		    leader[0] ? leader : "none known");
	} else if (leader[0] == '\0') {
		snprintf(note, sizeof(note),
		    "noted by %s; no Raft leader is known", st->cfg.name);
	} else if (strcmp(leader, info.accused) == 0) {
		/* the coordinator is the accused: it would judge itself */
		snprintf(note, sizeof(note),
		    "noted by %s; not forwarded: the leader %s is the accused",
		    st->cfg.name, leader);
		km_log_warn("KMD-EVIDENCE-LEADER",
		    "evidence against the leader %s is not forwarded to it",
		    leader);
	} else if (kmd_evidence_forward(
	               st, leader, ev, len, note, sizeof(note))
	    != 0) {
		kmd_evidence_unsee(dkey);
	}
reply:
	if (km_buf_put_cstring(out, info.accused) != 0
	    || km_buf_put_cstring(out, info.key_id) != 0
	    || km_buf_put_u32(out, info.index) != 0
	    || km_buf_put_cstring(out, note) != 0) {
		snprintf(msg, msglen, "out of memory");
		return KM_ERR_ALLOC;
	}
	return 0;
}
