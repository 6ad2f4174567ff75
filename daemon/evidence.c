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

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- evidence against the leader (docs/eviction.md) -------------------
 *
 * The leader cannot judge itself.  A follower that accepts evidence
 * against the current leader:
 *   1. holds it (below), and refuses the leader's Raft links for
 *      KMD_EVIDENCE_SUSPECT_MS (km_raft_suspend_peer): a suspicion, not
 *      the deny-list; it ends by itself;
 *   2. passes it on, when a client sent it, to every other connected
 *      member but the accused, one hop, as itself; each checks it on its
 *      own and does the same (without passing it on again);
 *   3. acts on it once a new leader is known: as the leader it calls
 *      kmd_evict_on_evidence() (again every KMD_EVIDENCE_RETRY_MS while
 *      the accused is not evicted), otherwise it forwards it to the new
 *      leader once.
 * Once a majority of the members hold it, the accused reaches no majority,
 * steps down after an election timeout (libraft, Raft §6.2), and the
 * others elect a leader among themselves.
 */
#define KMD_EVIDENCE_HOLD       4
#define KMD_EVIDENCE_SUSPECT_MS 60000
#define KMD_EVIDENCE_RETRY_MS   5000

typedef struct kmd_ev_held {
	bool used;
	kmd_evidence_info info;
	uint8_t *ev;
	size_t len;
	unsigned ms;       /* the suspicion's length */
	uint64_t until_ms; /* km_now_ms() when the suspicion ends */
	uint64_t next_ms;  /* not acted on again before */
	bool forwarded;    /* handed to a new leader that is not us */
	bool acted;        /* kmd_evict_on_evidence() called here */
} kmd_ev_held;

static kmd_ev_held kmd_ev_held_list[KMD_EVIDENCE_HOLD]; /* kmd_ev_lock */

static void
kmd_ev_held_free(kmd_ev_held *h)
{
	free(h->ev);
	memset(h, 0, sizeof(*h));
}

/*
 * Holds @ev against @info->accused for @ms.  Returns 0 when held now,
 * KM_ERR_EXISTS when evidence against that node is held already (the
 * suspicion is not made longer: one suspicion at a time per node),
 * KM_ERR_ALLOC.
 */
static int
kmd_evidence_hold(
    const kmd_evidence_info *info, const uint8_t *ev, size_t len, unsigned ms)
{
	kmd_ev_held *h = NULL;
	uint8_t *copy;
	size_t i;

	if ((copy = malloc(len)) == NULL) {
		return KM_ERR_ALLOC;
	}
	memcpy(copy, ev, len);
	pthread_mutex_lock(&kmd_ev_lock);
	for (i = 0; i < KMD_EVIDENCE_HOLD; i++) {
		if (kmd_ev_held_list[i].used
		    && strcmp(kmd_ev_held_list[i].info.accused, info->accused)
		        == 0) {
			pthread_mutex_unlock(&kmd_ev_lock);
			free(copy);
			return KM_ERR_EXISTS;
		}
	}
	for (i = 0; i < KMD_EVIDENCE_HOLD; i++) {
		if (!kmd_ev_held_list[i].used) {
			h = &kmd_ev_held_list[i];
			break;
		}
		if (h == NULL || kmd_ev_held_list[i].until_ms < h->until_ms) {
			h = &kmd_ev_held_list[i];
		}
	}
	kmd_ev_held_free(h); /* full: the one ending first makes room */
	h->used = true;
	h->info = *info;
	h->ev = copy;
	h->len = len;
	h->ms = ms;
	h->until_ms = km_now_ms() + ms;
	pthread_mutex_unlock(&kmd_ev_lock);
	return 0;
}

/* Passes @ev on to every other connected member but the accused, one hop,
 * as this node.  Returns how many took it. */
static unsigned
kmd_evidence_pass_on(kmd_state *st, const kmd_evidence_info *info,
    const uint8_t *ev, size_t len)
{
	unsigned i, n = 0;

	for (i = 0; i < st->cfg.npeers && !st->stopping; i++) {
		const char *name = st->cfg.peers[i].name;
		struct km_net_client *c = st->peer_clients[i];
		char msg[KM_PROTO_MESSAGE_MAX + 1] = "";
		km_buf req, rep;
		int r;

		if (strcmp(name, st->cfg.name) == 0
		    || strcmp(name, info->accused) == 0 || c == NULL
		    || !km_net_client_connected(c)) {
			continue;
		}
		km_buf_init(&req);
		km_buf_init(&rep);
		r = km_rpc_request(&req, KM_MSG_EVIDENCE, NULL, 0, NULL);
		r = r ? r : km_buf_put_string(&req, ev, len);
		r = r ? r
		      : km_rpc_call(c, &req, KMD_EVIDENCE_FWD_MS, &rep, msg,
		          sizeof(msg));
		if (r == 0) {
			n++;
		} else {
			km_log_warn_r(r, "KMD-EVIDENCE-LEADER",
			    "%s did not take the evidence against the leader "
			    "%s: %s",
			    name, info->accused,
			    msg[0] ? msg : km_strerror(r));
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
	return n;
}

/* The leader is the accused: hold, stop following it, pass it on. */
static void
kmd_evidence_leader_accused(kmd_state *st, const km_identity *peer,
    const kmd_evidence_info *info, const uint8_t *ev, size_t len, char *note,
    size_t notelen)
{
	unsigned ms = kmd_fault_suspect_ms(KMD_EVIDENCE_SUSPECT_MS), n = 0;
	int r;

	r = kmd_evidence_hold(info, ev, len, ms);
	if (r == 0) {
		int sr = km_raft_suspend_peer(st->raft, info->accused, ms);

		km_log_warn_r(sr, "KMD-EVIDENCE-LEADER",
		    "the leader %s is the accused: %s refuses its Raft links "
		    "for %u s%s; the next leader acts on the evidence",
		    info->accused, st->cfg.name, ms / 1000,
		    sr == 0 ? "" : " (could not: see the error)");
	} else if (r != KM_ERR_EXISTS) {
		km_log_warn_r(r, "KMD-EVIDENCE-LEADER",
		    "cannot hold the evidence against the leader %s",
		    info->accused);
	}
	if (peer->role != KM_ROLE_NODE) {
		n = kmd_evidence_pass_on(st, info, ev, len);
		km_log_warn("KMD-EVIDENCE-LEADER",
		    "evidence against the leader %s passed on to %u "
		    "member(s)",
		    info->accused, n);
	}
	snprintf(note, notelen,
	    "noted by %s; the leader %s is the accused: %s stops following "
	    "it%s",
	    st->cfg.name, info->accused, st->cfg.name,
	    peer->role != KM_ROLE_NODE ? " and passed the evidence on" : "");
}

/*
 * A node cut off by the others (an accused former leader they suspend, or
 * an evicted one that never received its EVICT) knows no Raft leader, and
 * its peers hang up on its Raft handshakes.  Its catalog may be behind, so
 * it serves none (kmd_evidence_cut_off).  A node that merely lost the
 * majority (most members down) sees failed connects, not refusals, and
 * goes on serving the catalog it has.  Both times are km_now_ms(), 0 when
 * not yet seen; kmd_evidence_tick keeps them.
 */
#define KMD_EVIDENCE_CUTOFF_MS 5000
static _Atomic uint64_t kmd_ev_leader_seen_ms; /* a leader was known */
static _Atomic uint64_t kmd_ev_refused_ms;     /* a Raft refusal grew */
static uint64_t kmd_ev_refused_count;          /* sync thread only */

bool
kmd_evidence_cut_off(kmd_state *st, char *msg, size_t msglen)
{
	uint64_t seen = atomic_load(&kmd_ev_leader_seen_ms);
	uint64_t refused = atomic_load(&kmd_ev_refused_ms), now = km_now_ms();

	if (st->raft == NULL || seen == 0
	    || now - seen <= KMD_EVIDENCE_CUTOFF_MS || refused == 0
	    || now - refused > KMD_EVIDENCE_CUTOFF_MS) {
		return false;
	}
	snprintf(msg, msglen,
	    "%s has known no Raft leader for %llu s and its peers refuse it: "
	    "its catalog may be behind; ask another node",
	    st->cfg.name, (unsigned long long)((now - seen) / 1000));
	return true;
}

/* Keeps the times kmd_evidence_cut_off() looks at (sync thread). */
static void
kmd_evidence_watch_raft(kmd_state *st)
{
	km_raft_info info;
	uint64_t now = km_now_ms();

	if (st->raft == NULL) {
		return;
	}
	km_raft_info_get(st->raft, &info);
	if (info.state == KM_RAFT_LEADER || info.leader_id != 0
	    || atomic_load(&kmd_ev_leader_seen_ms) == 0) {
		atomic_store(&kmd_ev_leader_seen_ms, now);
	}
	if (info.tls_refused != kmd_ev_refused_count) {
		kmd_ev_refused_count = info.tls_refused;
		atomic_store(&kmd_ev_refused_ms, now);
	}
	/* say so once each time it starts and ends */
	{
		static bool was;
		char why[200];
		bool is = kmd_evidence_cut_off(st, why, sizeof(why));

		if (is && !was) {
			km_log_warn("KMD-CUT-OFF",
			    "%s: this node serves no catalog until it knows "
			    "a leader again",
			    why);
		} else if (!is && was) {
			km_log_info("KMD-CUT-OFF",
			    "%s serves its catalog again", st->cfg.name);
		}
		was = is;
	}
}

/* Slot @i still holds the evidence @hash (kmd_ev_lock held). */
static bool
kmd_ev_held_same(size_t i, const uint8_t hash[32])
{
	return kmd_ev_held_list[i].used
	    && memcmp(kmd_ev_held_list[i].info.hash, hash, 32) == 0;
}

void
kmd_evidence_tick(kmd_state *st)
{
	char leader[KM_NAME_MAX + 1], why[200], note[200];
	kmd_ev_held h;
	const char *role;
	uint64_t now;
	size_t i;
	int r;

	kmd_evidence_watch_raft(st);
	for (i = 0; i < KMD_EVIDENCE_HOLD && !st->stopping; i++) {
		uint8_t *mine = NULL;

		/* a copy: a handler may replace the slot meanwhile */
		pthread_mutex_lock(&kmd_ev_lock);
		h = kmd_ev_held_list[i];
		if (h.used && (mine = malloc(h.len)) != NULL) {
			memcpy(mine, h.ev, h.len);
		}
		pthread_mutex_unlock(&kmd_ev_lock);
		h.ev = mine;
		now = km_now_ms();
		if (!h.used || mine == NULL) {
			continue;
		}
		if (km_catalog_evicted_get(st->store, h.info.accused, NULL)
		    == 0) {
			km_log_info("KMD-EVIDENCE-LEADER",
			    "%s is evicted: the suspicion ends, the deny-list "
			    "refuses it from now on",
			    h.info.accused);
			goto drop;
		}
		if (now >= h.until_ms) {
			km_log_warn("KMD-EVIDENCE-LEADER",
			    "suspicion of %s expired: no eviction followed in "
			    "%u s; its Raft links are accepted again",
			    h.info.accused, h.ms / 1000);
			goto drop;
		}
		if (now < h.next_ms) {
			free(mine);
			continue;
		}
		role = kmd_raft_role(st, leader, sizeof(leader));
		if (strcmp(role, "leader") == 0) {
			if (!h.acted) {
				km_log_warn("KMD-EVIDENCE-LEADER",
				    "%s leads now: acting on the evidence "
				    "against the former leader %s",
				    st->cfg.name, h.info.accused);
				(void)kmd_trust_note(st, h.info.accused,
				    KM_TRUST_EV_BAD_PARTIAL);
			}
			r = kmd_evict_on_evidence(
			    st, &h.info, h.ev, h.len, why, sizeof(why));
			if (r != 0) {
				km_log_warn_r(r, "KMD-EVIDENCE-NOT-ACTED",
				    "evidence against %s not acted on: %s",
				    h.info.accused, why);
			}
			h.acted = true;
			h.next_ms = now + KMD_EVIDENCE_RETRY_MS;
		} else if (leader[0] != '\0' && !h.forwarded
		    && strcmp(leader, h.info.accused) != 0
		    && strcmp(leader, st->cfg.name) != 0) {
			r = kmd_evidence_forward(
			    st, leader, h.ev, h.len, note, sizeof(note));
			km_log(r == 0 ? KM_LOG_INFO : KM_LOG_WARN,
			    "KMD-EVIDENCE-LEADER", __func__, r,
			    "evidence against the former leader %s: %s",
			    h.info.accused, note);
			h.forwarded = r == 0;
			h.next_ms = now + KMD_EVIDENCE_RETRY_MS;
		} else {
			free(mine);
			continue;
		}
		pthread_mutex_lock(&kmd_ev_lock);
		if (kmd_ev_held_same(i, h.info.hash)) {
			kmd_ev_held_list[i].acted = h.acted;
			kmd_ev_held_list[i].forwarded = h.forwarded;
			kmd_ev_held_list[i].next_ms = h.next_ms;
		}
		pthread_mutex_unlock(&kmd_ev_lock);
		free(mine);
		continue;
	drop:
		if (st->raft != NULL) {
			(void)km_raft_suspend_peer(
			    st->raft, h.info.accused, 0);
		}
		pthread_mutex_lock(&kmd_ev_lock);
		if (kmd_ev_held_same(i, h.info.hash)) {
			kmd_ev_held_free(&kmd_ev_held_list[i]);
		}
		pthread_mutex_unlock(&kmd_ev_lock);
		free(mine);
	}
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
	} else if (leader[0] != '\0' && strcmp(leader, info.accused) == 0
	    && strcmp(info.accused, st->cfg.name) != 0) {
		/* the coordinator is the accused: it would judge itself.  Stop
		 * following it and tell the others (one hop); the next leader
		 * acts on it (docs/eviction.md "When the leader is the
		 * accused") */
		kmd_evidence_leader_accused(
		    st, peer, &info, ev, len, note, sizeof(note));
	} else if (peer->role == KM_ROLE_NODE) {
		/* forwarded to us, but we do not lead (any more): one hop */
		snprintf(note, sizeof(note),
		    "noted by %s, not the leader (%s is)", st->cfg.name,
		    leader[0] ? leader : "none known");
	} else if (leader[0] == '\0') {
		snprintf(note, sizeof(note),
		    "noted by %s; no Raft leader is known", st->cfg.name);
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
