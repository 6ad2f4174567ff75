/*
 * The daemon's side of the key catalog: entries arrive signed by an admin
 * (or, for objects, by an enrolled client), are applied strictly in order
 * by the store's state machine, and are served to peers that missed some
 * (catch-up after a restart).
 *
 * Authority comes from the signature checked when an entry is applied, not
 * from who delivered it: any peer may relay entries, and a relayed entry is
 * worth exactly its signature (DESIGN.md §3).  A later version feeds the
 * same entries through Raft.
 *
 * Who may sign what (docs/storage.md §5, "Authority"):
 *   - key, member and policy entries: an admin only;
 *   - EVICT: an admin, or a member node with k members' signed votes;
 *     RESHARE_BEGIN/COMMIT/ABORT: also a member node, but only for the
 *     re-share an applied eviction calls for (store/evict.h
 *     km_evict_authorise, docs/eviction.md);
 *   - OBJECT_PUT / OBJECT_DELETE (certificates, public keys, data): an
 *     admin, or any client certificate of the mesh CA that is not revoked.
 *     These are public data an application stores for every client of the
 *     partition; they grant no use of any key.  The node a client sends
 *     such an entry to (the one that sequences it) additionally requires
 *     that client's live login ticket for the object's partition, so only
 *     a user who knows the PIN adds or removes objects.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "daemon/evict.h"
#include "daemon/kmd.h"
#include "mesh/rpc.h"
#include "proto/proto.h"
#include "pki/pki.h"
#include "raft/raft.h"
#include "store/catalog.h"
#include "store/evict.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define KMD_FETCH_MAX 64
#define KMD_SYNC_TIMEOUT_MS 1000

/* What the apply path knows before km_catalog_apply() calls back: the
 * node-signed authority is checked first (it reads the catalog, which the
 * callback cannot: the store is locked then). */
typedef struct kmd_verify_ctx {
	kmd_state *st;
	bool node_ok;    /* km_evict_authorise() passed */
	bool verdict_ok; /* km_evict_verdict_signer() passed */
} kmd_verify_ctx;

/* A TRUST_VERDICT's signer, against the catalog before the apply (the
 * callback cannot read it): not evicted, a member (store/evict.h
 * km_evict_verdict_signer).  The signature itself: kmd_catalog_verify. */
static bool
kmd_catalog_verdict_precheck(kmd_state *st, const km_catalog_entry *e)
{
	const unsigned char *p = e->signer;
	km_identity id;
	X509 *x = NULL;
	char why[256];
	int r;

	if (e->type != KM_CAT_TRUST_VERDICT) {
		return false;
	}
	if (e->signer == NULL || e->signer_len == 0
	    || (x = d2i_X509(NULL, &p, (long)e->signer_len)) == NULL
	    || km_pki_identity(x, &id) != 0) {
		X509_free(x);
		return false;
	}
	X509_free(x);
	if ((r = km_evict_verdict_signer(st->store, id.name, why, sizeof(why)))
	    != 0) {
		km_log_warn_r(r, "KMD-VERDICT-REFUSE",
		    "catalog entry %llu refused: %s",
		    (unsigned long long)e->seq, why);
		return false;
	}
	return true;
}

/* An admin of this mesh signs every entry; a client only objects; a
 * member node only what km_evict_authorise() allowed. */
static int
kmd_catalog_verify(void *arg, const km_catalog_entry *e, const uint8_t *tbs,
    size_t tbs_len)
{
	kmd_verify_ctx *ctx = arg;
	kmd_state *st = ctx->st;
	X509_STORE *store;
	km_identity id;
	int r;

	pthread_mutex_lock(&st->lock);
	store = st->x509;
	X509_STORE_up_ref(store);
	pthread_mutex_unlock(&st->lock);
	memset(&id, 0, sizeof(id));
	if (e->type == KM_CAT_TRUST_VERDICT) {
		/* the coordinator's verdict, signed by a member node
		 * (docs/trust.md): chain and role only, like objects, so
		 * a node revoked since does not stall a replay */
		r = km_pki_verify_signed_replay(store, e->signer,
		    e->signer_len, KM_ROLE_NODE, tbs, tbs_len, e->sig,
		    e->sig_len, &id);
		X509_STORE_free(store);
		if (r == 0) {
			r = kmd_trust_check_verdict(&id, e->payload,
			    e->payload_len);
		}
		if (r == 0 && !ctx->verdict_ok) {
			r = KM_ERR_AUTH; /* evicted or not a member */
		}
		return r;
	}
	if (km_catalog_type_is_object(e->type)) {
		/* the signer's standing (CRL, dates) was checked by the node
		 * that sequenced the entry: a later revocation must not stall
		 * the log on it (km_pki_verify_signed_replay) */
		r = km_pki_verify_signed_replay(store, e->signer,
		    e->signer_len, KM_ROLE_NONE, tbs, tbs_len, e->sig,
		    e->sig_len, &id);
	} else {
		r = km_pki_verify_signed(store, e->signer, e->signer_len,
		    KM_ROLE_ADMIN, tbs, tbs_len, e->sig, e->sig_len, &id);
	}
	X509_STORE_free(store);
	if (r != 0 && ctx->node_ok) {
		return 0;
	}
	if (r != 0) {
		return r;
	}
	if (id.role == KM_ROLE_ADMIN ||
	    (id.role == KM_ROLE_CLIENT && km_catalog_type_is_object(e->type))) {
		return 0;
	}
	return KM_ERR_AUTH;
}

/*
 * A client appending an object entry: it must have signed the entry
 * itself, hold a live login ticket here, and act in that ticket's
 * partition.  (Admins and relaying nodes are not asked: their entries are
 * worth their signature alone.)
 */
static int
kmd_catalog_client_check(kmd_state *st, const km_identity *peer,
    const km_req_hdr *hdr, const uint8_t *data, size_t len, char *msg,
    size_t msglen)
{
	km_catalog_entry e;
	km_catalog_payload p;
	km_catalog_object o;
	char partition[KM_NAME_MAX + 1];
	uint8_t h[32];
	uint32_t user = 0;
	const char *obj_part;
	X509_STORE *store;
	km_buf tbs;
	int r;

	km_buf_init(&tbs);
	memset(&e, 0, sizeof(e));
	memset(&p, 0, sizeof(p));
	memset(&o, 0, sizeof(o));
	if ((r = km_catalog_entry_decode(data, len, &e)) != 0) {
		snprintf(msg, msglen, "malformed catalog entry");
		goto out;
	}
	if (!km_catalog_type_is_object(e.type)) {
		r = KM_ERR_AUTH;
		snprintf(msg, msglen,
		    "a client may append only object entries");
		goto out;
	}
	/* the full check, CRL and dates included, happens here, once:
	 * replicas replaying the entry later check only chain and role */
	pthread_mutex_lock(&st->lock);
	store = st->x509;
	X509_STORE_up_ref(store);
	pthread_mutex_unlock(&st->lock);
	if ((r = km_catalog_entry_tbs(&e, &tbs)) == 0) {
		r = km_pki_verify_signed(store, e.signer, e.signer_len,
		    KM_ROLE_CLIENT, tbs.data, tbs.len, e.sig, e.sig_len, NULL);
	}
	X509_STORE_free(store);
	if (r != 0) {
		snprintf(msg, msglen, "entry not signed by a valid client");
		goto out;
	}
	if (EVP_Digest(e.signer, e.signer_len, h, NULL, EVP_sha256(),
		NULL) != 1 ||
	    CRYPTO_memcmp(h, peer->cert_sha256, 32) != 0) {
		r = KM_ERR_AUTH;
		snprintf(msg, msglen,
		    "a client may append only entries it signed itself");
		goto out;
	}
	/* objects belong to the user: an SO ticket (PIN management only)
	 * does not do */
	if (!hdr->has_ticket ||
	    kmd_ticket_check(st, peer, hdr->ticket, partition,
		sizeof(partition), &user) != 0 ||
	    user != KM_PROTO_USER_USER) {
		r = KM_ERR_AUTH;
		snprintf(msg, msglen,
		    "not logged in as the user (no valid user login ticket)");
		goto out;
	}
	if ((r = km_catalog_payload_decode(e.type, e.payload, e.payload_len,
		 &p)) != 0) {
		snprintf(msg, msglen, "malformed object entry");
		goto out;
	}
	if (e.type == KM_CAT_OBJECT_PUT) {
		obj_part = p.partition;
	} else {
		if ((r = km_catalog_object_get(st->store, p.object_id, &o)) !=
		    0) {
			snprintf(msg, msglen, "no object %s", p.object_id);
			goto out;
		}
		obj_part = o.partition;
	}
	if (strcmp(obj_part, partition) != 0) {
		r = KM_ERR_AUTH;
		snprintf(msg, msglen,
		    "logged in to partition %s, not %s", partition, obj_part);
		goto out;
	}
	r = 0;
out:
	km_catalog_entry_clear(&e);
	km_catalog_payload_free(&p);
	km_catalog_object_free(&o);
	km_buf_free(&tbs);
	return r;
}

/*
 * Applies one encoded entry; entries already applied are checked equal.
 * With @apply false nothing is applied: an entry not applied yet gives
 * KM_ERR_NOT_FOUND (the Raft path asks this before it proposes).
 */
static int
kmd_catalog_apply_bytes_x(kmd_state *st, const uint8_t *data, size_t len,
    bool apply, int *result)
{
	km_catalog_entry e, have;
	kmd_verify_ctx vctx;
	km_buf a, b;
	uint64_t last = 0;
	int r;

	memset(&e, 0, sizeof(e));
	memset(&have, 0, sizeof(have));
	*result = 0;
	if ((r = km_catalog_entry_decode(data, len, &e)) != 0) {
		return r;
	}
	pthread_mutex_lock(&st->catalog_lock);
	if ((r = km_catalog_last_seq(st->store, &last, NULL)) != 0) {
		goto out;
	}
	if (e.seq <= last) {
		/* a replay: fine only if it is the very same entry */
		km_buf_init(&a);
		km_buf_init(&b);
		r = km_catalog_entry_get(st->store, e.seq, &have, result);
		if (r == 0 && km_catalog_entry_encode(&e, &a) == 0 &&
		    km_catalog_entry_encode(&have, &b) == 0 &&
		    a.len == b.len && memcmp(a.data, b.data, a.len) == 0) {
			r = 0;
		} else {
			r = KM_ERR_STALE;
		}
		km_buf_free(&a);
		km_buf_free(&b);
		goto out;
	}
	if (!apply) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	}
	if (e.seq > last + 1) {
		r = KM_ERR_STALE; /* a gap: the caller syncs first */
		goto out;
	}
	vctx.st = st;
	vctx.node_ok = kmd_evict_precheck(st, &e);
	vctx.verdict_ok = kmd_catalog_verdict_precheck(st, &e);
	r = km_catalog_apply(st->store, &e, kmd_catalog_verify, &vctx, result);
	if (r == 0) {
		km_log_info("KMD-CATALOG-APPLY", "applied catalog entry %llu "
						 "(type %u, outcome %d)",
		    (unsigned long long)e.seq, e.type, *result);
		if (*result == 0 && (e.type == KM_CAT_POSTURE_SET ||
					e.type == KM_CAT_TRUST_VERDICT)) {
			kmd_trust_applied(st, e.type, e.payload,
			    e.payload_len);
		}
		if (*result == 0) {
			kmd_evict_applied(st, &e);
		}
	}
out:
	pthread_mutex_unlock(&st->catalog_lock);
	km_catalog_entry_clear(&e);
	km_catalog_entry_clear(&have);
	return r;
}

static int
kmd_catalog_apply_bytes(kmd_state *st, const uint8_t *data, size_t len,
    int *result)
{
	return kmd_catalog_apply_bytes_x(st, data, len, true, result);
}

/* Asks each peer in turn for the entries after ours, until none is new. */
int
kmd_catalog_sync(kmd_state *st)
{
	unsigned i;
	int applied = 0;

	for (i = 0; i < st->cfg.npeers; i++) {
		km_buf req, rep;
		uint64_t last = 0, their = 0;
		uint32_t n, j;
		char msg[256];
		int r, result;

		if (st->stopping) {
			break;
		}
		if (st->peer_clients[i] == NULL ||
		    !km_net_client_connected(st->peer_clients[i]) ||
		    km_catalog_last_seq(st->store, &last, NULL) != 0) {
			continue;
		}
		km_buf_init(&req);
		km_buf_init(&rep);
		if (km_rpc_request(&req, KM_MSG_CATALOG_FETCH, NULL, 0, NULL) !=
			0 ||
		    km_buf_put_u64(&req, last + 1) != 0 ||
		    km_buf_put_u32(&req, KMD_FETCH_MAX) != 0) {
			goto next;
		}
		if (km_rpc_call(st->peer_clients[i], &req, KMD_SYNC_TIMEOUT_MS,
			&rep, msg, sizeof(msg)) != 0) {
			goto next;
		}
		if (km_buf_get_u64(&rep, &their) != 0 ||
		    km_buf_get_u32(&rep, &n) != 0 || n > KMD_FETCH_MAX) {
			goto next;
		}
		for (j = 0; j < n; j++) {
			const uint8_t *p;
			size_t len;

			if (km_buf_get_string_ptr(&rep, &p, &len,
				KM_CATALOG_ENTRY_MAX) != 0) {
				break;
			}
			r = kmd_catalog_apply_bytes(st, p, len, &result);
			if (r != 0) {
				km_log_warn_r(r, "KMD-CATALOG-SYNC",
				    "entry from %s not applied",
				    st->cfg.peers[i].name);
				break;
			}
			applied++;
		}
	next:
		km_buf_free(&req);
		km_buf_free(&rep);
	}
	return applied;
}

/* ---- the catalog on Raft ------------------------------------------------ */

/*
 * With a [raft] section every catalog entry goes through the Raft log
 * (docs/raft.md, "keymeshd"): the node a client sends an entry to
 * proposes it if it leads, or forwards it to the leader over the mesh RPC
 * (a catalog-append from a node, which the leader does not forward again).
 * Every node applies the committed entries in log order, in
 * kmd_raft_apply(), with the checks of the sequencer days: the entry's own
 * seq must follow the last applied one and its signature must be an
 * admin's (or an enrolled client's, for objects).  A refusal there is a
 * no-op on every node alike, and the proposer gets it as its answer.
 */

#define KMD_RAFT_WAIT_MS 4000	 /* for a leader, below the admin's 5 s */
#define KMD_RAFT_PROPOSE_MS 3000 /* commit and apply on the leader */
#define KMD_RAFT_LOCAL_MS 2000	 /* a forwarded entry reaching us too */

static void
kmd_sleep_ms(unsigned ms)
{
	usleep(ms * 1000u);
}

static int
kmd_raft_apply(void *arg, const uint8_t *data, size_t len)
{
	kmd_state *st = arg;
	int r, result = 0;

	r = kmd_catalog_apply_bytes(st, data, len, &result);
	if (r != 0) {
		/* the same verdict on every node: the log goes on */
		km_log_info("KMD-RAFT-REFUSE", "committed catalog entry not "
					       "applied: %s",
		    km_strerror(r));
	}
	return r;
}

/*
 * The snapshot is the applied catalog log itself: every entry from seq 1,
 * each as signed (uint64 count, then count strings).  Restoring applies
 * the entries this node lacks, with the usual checks, and checks the
 * others equal.  Catalog entries are small (keys, members, objects), so
 * this stays far below the segment sizes; XXX a serialised SQLite state
 * would not grow with history.
 */
static int
kmd_raft_snapshot(void *arg, km_buf *out)
{
	kmd_state *st = arg;
	uint64_t last = 0, s;
	int r;

	pthread_mutex_lock(&st->catalog_lock);
	if ((r = km_catalog_last_seq(st->store, &last, NULL)) != 0 ||
	    (r = km_buf_put_u64(out, last)) != 0) {
		goto out;
	}
	for (s = 1; s <= last; s++) {
		km_catalog_entry e;
		km_buf enc;

		memset(&e, 0, sizeof(e));
		km_buf_init(&enc);
		r = km_catalog_entry_get(st->store, s, &e, NULL);
		if (r == 0) {
			r = km_catalog_entry_encode(&e, &enc);
		}
		if (r == 0) {
			r = km_buf_put_string(out, enc.data, enc.len);
		}
		km_catalog_entry_clear(&e);
		km_buf_free(&enc);
		if (r != 0) {
			goto out;
		}
	}
	r = 0;
out:
	pthread_mutex_unlock(&st->catalog_lock);
	if (r != 0) {
		km_log_warn_r(r, "KMD-RAFT-SNAPSHOT", "cannot take a catalog "
						      "snapshot");
	}
	return r;
}

static int
kmd_raft_restore(void *arg, const uint8_t *data, size_t len)
{
	kmd_state *st = arg;
	km_buf in;
	uint64_t n = 0, i = 0;
	int r = 0, result;

	km_buf_init_view(&in, data, len);
	if (km_buf_get_u64(&in, &n) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const uint8_t *p;
		size_t plen;

		if (km_buf_get_string_ptr(&in, &p, &plen,
			KM_CATALOG_ENTRY_MAX) != 0) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		if ((r = kmd_catalog_apply_bytes(st, p, plen, &result)) != 0) {
			goto out;
		}
	}
	r = km_buf_remaining(&in) == 0 ? 0 : KM_ERR_BAD_FORMAT;
out:
	if (r != 0) {
		km_log_warn_r(r, "KMD-RAFT-RESTORE", "catalog snapshot not "
						     "restored (entry %llu)",
		    (unsigned long long)i + 1);
	} else {
		km_log_info("KMD-RAFT-RESTORE", "catalog snapshot of %llu "
						"entries restored",
		    (unsigned long long)n);
	}
	return r;
}

int
kmd_raft_start(kmd_state *st, const char *ca, const char *crl,
    const char *cert, const char *key, char *err, size_t errlen)
{
	km_raft_config c;
	char dir[4200];
	const char *addr = NULL;
	unsigned i;
	int r;

	if (st->cfg.nraft == 0) {
		return 0;
	}
	for (i = 0; i < st->cfg.nraft; i++) {
		if (st->cfg.raft[i].id == st->cfg.raft_id) {
			addr = st->cfg.raft[i].address;
		}
	}
	snprintf(dir, sizeof(dir), "%s/raft", st->cfg.state_dir);
	memset(&c, 0, sizeof(c));
	c.id = st->cfg.raft_id;
	c.address = addr;
	c.state_dir = dir;
	c.peers = st->cfg.raft;
	c.n_peers = st->cfg.nraft;
	c.ca_pem = ca;
	c.crl_pem = crl;
	c.cert_pem = cert;
	c.key_pem = key;
	c.apply = kmd_raft_apply;
	c.snapshot = kmd_raft_snapshot;
	c.restore = kmd_raft_restore;
	c.arg = st;
	c.election_ms = st->cfg.raft_election_ms;
	c.heartbeat_ms = st->cfg.raft_heartbeat_ms;
	c.snapshot_threshold = st->cfg.raft_snapshot_threshold;
	c.snapshot_trailing = st->cfg.raft_snapshot_trailing;
	if ((r = km_raft_start(&c, &st->raft)) != 0) {
		snprintf(err, errlen, "cannot start Raft (id %llu at %s, "
				      "state in %s): %s",
		    (unsigned long long)c.id, addr ? addr : "?", dir,
		    r == KM_ERR_BUSY ? "address in use" : km_strerror(r));
		return r;
	}
	km_log_info("KMD-RAFT-START", "catalog on Raft: id %llu at %s, %u "
				      "members",
	    (unsigned long long)c.id, addr, st->cfg.nraft);
	return 0;
}

void
kmd_raft_stop(kmd_state *st)
{
	km_raft_stop(st->raft);
	st->raft = NULL;
}

const char *
kmd_raft_role(kmd_state *st, char *leader, size_t leaderlen)
{
	km_raft_info info;

	leader[0] = '\0';
	if (st->raft == NULL) {
		return "off";
	}
	km_raft_info_get(st->raft, &info);
	if (info.leader_id != 0) {
		snprintf(leader, leaderlen, "%s", info.leader_name);
	}
	switch (info.state) {
	case KM_RAFT_LEADER:
		return "leader";
	case KM_RAFT_FOLLOWER:
		return "follower";
	case KM_RAFT_CANDIDATE:
		return "candidate";
	default:
		return "unavailable";
	}
}

/* The outcome this node recorded for an applied entry. */
static int
kmd_catalog_outcome(kmd_state *st, const uint8_t *data, size_t len,
    int *result)
{
	return kmd_catalog_apply_bytes_x(st, data, len, false, result);
}

/* Sends an entry to the leader @name; its KM_ERR_* or a transport error. */
static int
kmd_raft_forward(kmd_state *st, const char *name, const uint8_t *data,
    size_t len, char *msg, size_t msglen)
{
	struct km_net_client *c = NULL;
	km_buf req, rep;
	unsigned i;
	int r;

	for (i = 0; i < st->cfg.npeers; i++) {
		if (strcmp(st->cfg.peers[i].name, name) == 0) {
			c = st->peer_clients[i];
		}
	}
	if (c == NULL || !km_net_client_connected(c)) {
		snprintf(msg, msglen, "the leader %s is not connected", name);
		return KM_ERR_CONN;
	}
	km_buf_init(&req);
	km_buf_init(&rep);
	if ((r = km_rpc_request(&req, KM_MSG_CATALOG_APPEND, NULL, 0, NULL)) ==
		0 &&
	    (r = km_buf_put_string(&req, data, len)) == 0) {
		r = km_rpc_call(c, &req, KMD_RAFT_PROPOSE_MS + 1000, &rep, msg,
		    msglen);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

/*
 * Puts an entry into the Raft log: proposes it here if this node leads,
 * else forwards it to the leader (unless it came from a node: one hop).
 * Waits for an election when no leader is known.  On success the entry
 * is applied here too, so the caller's next request finds it.
 */
static int
kmd_raft_append(kmd_state *st, const km_identity *peer, const uint8_t *data,
    size_t len, int *result, char *msg, size_t msglen)
{
	uint64_t deadline = km_now_ms() + KMD_RAFT_WAIT_MS, id, hint;
	char leader[KM_NAME_MAX + 1];
	int r = KM_ERR_QUORUM;

	/* what the client hears when no leader turns up: it stops there
	 * (src/mesh/admin.c), asking again would not help */
	snprintf(msg, msglen, "no Raft leader (are most members down?)");
	while (!st->stopping && km_now_ms() < deadline) {
		if (km_raft_leader(st->raft, &id, leader, sizeof(leader)) !=
			0) {
			kmd_sleep_ms(50);
			continue;
		}
		if (id == st->cfg.raft_id) {
			r = km_raft_propose(st->raft, data, len,
			    KMD_RAFT_PROPOSE_MS, &hint);
			if (r == KM_ERR_NOT_LEADER) {
				kmd_sleep_ms(50);
				continue;
			}
			if (r == KM_ERR_TIMEOUT) {
				snprintf(msg, msglen, "not committed in time");
			}
			break;
		}
		if (peer->role == KM_ROLE_NODE) {
			/* forwarded to us, but we do not lead (any more) */
			snprintf(msg, msglen, "not the Raft leader (%s is)",
			    leader);
			return KM_ERR_NOT_LEADER;
		}
		r = kmd_raft_forward(st, leader, data, len, msg, msglen);
		if (r == KM_ERR_NOT_LEADER || r == KM_ERR_CONN ||
		    r == KM_ERR_TIMEOUT || r == KM_ERR_CLOSED) {
			kmd_sleep_ms(100);
			r = KM_ERR_QUORUM;
			snprintf(msg, msglen, "no Raft leader answers (%s "
					      "was the last named)",
			    leader);
			continue;
		}
		break;
	}
	if (r != 0) {
		return r;
	}
	/* committed: apply it here now if it is our next, else wait for
	 * the log to bring it (the same entry either way) */
	r = kmd_catalog_apply_bytes(st, data, len, result);
	deadline = km_now_ms() + KMD_RAFT_LOCAL_MS;
	while (r == KM_ERR_STALE && km_now_ms() < deadline) {
		kmd_sleep_ms(20);
		r = kmd_catalog_outcome(st, data, len, result);
		if (r == KM_ERR_NOT_FOUND) {
			r = kmd_catalog_apply_bytes(st, data, len, result);
		}
	}
	if (r == KM_ERR_STALE) {
		/* committed in the log, not yet here: still a success */
		km_log_warn("KMD-RAFT-LAG", "a committed catalog entry is not "
					    "applied here yet");
		*result = 0;
		r = 0;
	}
	return r;
}

int
kmd_catalog_propose(kmd_state *st, const uint8_t *data, size_t len,
    int *result, char *msg, size_t msglen)
{
	km_identity self;

	*result = 0;
	if (st->raft == NULL) {
		snprintf(msg, msglen, "the catalog is not on Raft");
		return KM_ERR_NOT_SUPPORTED;
	}
	/* as a node: proposed here if we lead, never forwarded */
	memset(&self, 0, sizeof(self));
	snprintf(self.name, sizeof(self.name), "%s", st->cfg.name);
	self.role = KM_ROLE_NODE;
	return kmd_raft_append(st, &self, data, len, result, msg, msglen);
}

/* KM_ERR_AUTH when @p is a TRUST_VERDICT entry (its type is read from
 * the strict decoder; a malformed entry is left to the usual path). */
static int
kmd_catalog_refuse_verdict(const uint8_t *p, size_t len)
{
	km_catalog_entry e;
	uint32_t type;

	memset(&e, 0, sizeof(e));
	if (km_catalog_entry_decode(p, len, &e) != 0) {
		return 0;
	}
	type = e.type;
	km_catalog_entry_clear(&e);
	return type == KM_CAT_TRUST_VERDICT ? KM_ERR_AUTH : 0;
}

int
kmd_do_catalog_append(kmd_state *st, const km_identity *peer,
    const km_req_hdr *hdr, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	const uint8_t *p;
	size_t len;
	int r, result = 0;

	if (km_buf_get_string_ptr(in, &p, &len, KM_CATALOG_ENTRY_MAX) != 0 ||
	    km_buf_remaining(in) != 0) {
		snprintf(msg, msglen, "malformed catalog-append request");
		return KM_ERR_BAD_FORMAT;
	}
	/* WARNING: a verdict is the leader's own (kmd_catalog_propose,
	 * never forwarded): one relayed here from any peer, signed by any
	 * node certificate, would let one node quarantine the others */
	if ((r = kmd_catalog_refuse_verdict(p, len)) != 0) {
		snprintf(msg, msglen,
		    "a trust verdict is proposed only by the leader itself, "
		    "never appended");
		km_log_warn("KMD-VERDICT-REFUSE",
		    "TRUST_VERDICT from %s through catalog-append refused",
		    peer->name);
		return r;
	}
	if (peer->role == KM_ROLE_CLIENT &&
	    (r = kmd_catalog_client_check(st, peer, hdr, p, len, msg,
		 msglen)) != 0) {
		km_log_warn_r(r, "KMD-CATALOG-CLIENT",
		    "object entry from %s refused: %s", peer->name, msg);
		return r;
	}
	if (st->raft != NULL) {
		/* applied already (the client sends to every node)? */
		r = kmd_catalog_outcome(st, p, len, &result);
		if (r == KM_ERR_NOT_FOUND) {
			r = kmd_raft_append(st, peer, p, len, &result, msg,
			    msglen);
		}
		if (r == KM_ERR_NOT_LEADER || r == KM_ERR_TIMEOUT ||
		    r == KM_ERR_CONN || r == KM_ERR_QUORUM) {
			return r; /* msg says why */
		}
	} else {
		r = kmd_catalog_apply_bytes(st, p, len, &result);
		if (r == KM_ERR_STALE) {
			/* maybe we missed entries: catch up, then try again */
			(void)kmd_catalog_sync(st);
			r = kmd_catalog_apply_bytes(st, p, len, &result);
		}
	}
	if (r != 0) {
		snprintf(msg, msglen, "catalog entry not applied: %s",
		    r == KM_ERR_STALE ?
			"out of sequence" :
			(r == KM_ERR_AUTH || r == KM_ERR_VERIFY ||
			    r == KM_ERR_REVOKED) ?
			"not signed by an identity that may sign it" :
			km_strerror(r));
		return r;
	}
	return km_buf_put_u32(out, (uint32_t)result);
}

int
kmd_do_catalog_fetch(kmd_state *st, km_buf *in, km_buf *out, char *msg,
    size_t msglen)
{
	uint64_t from = 0, last = 0, s;
	uint32_t max = 0, n = 0;
	km_buf entries;
	int r;

	if (km_buf_get_u64(in, &from) != 0 || km_buf_get_u32(in, &max) != 0 ||
	    km_buf_remaining(in) != 0 || from == 0) {
		snprintf(msg, msglen, "malformed catalog-fetch request");
		return KM_ERR_BAD_FORMAT;
	}
	if (max > KMD_FETCH_MAX) {
		max = KMD_FETCH_MAX;
	}
	if ((r = km_catalog_last_seq(st->store, &last, NULL)) != 0) {
		return r;
	}
	km_buf_init(&entries);
	for (s = from; s <= last && n < max; s++, n++) {
		km_catalog_entry e;
		km_buf enc;

		memset(&e, 0, sizeof(e));
		km_buf_init(&enc);
		r = km_catalog_entry_get(st->store, s, &e, NULL);
		if (r == 0) {
			r = km_catalog_entry_encode(&e, &enc);
		}
		if (r == 0) {
			r = km_buf_put_string(&entries, enc.data, enc.len);
		}
		km_catalog_entry_clear(&e);
		km_buf_free(&enc);
		if (r != 0) {
			km_buf_free(&entries);
			return r;
		}
	}
	r = 0;
	r |= km_buf_put_u64(out, last);
	r |= km_buf_put_u32(out, n);
	r |= km_buf_put_raw(out, entries.data, entries.len);
	km_buf_free(&entries);
	return r != 0 ? KM_ERR_ALLOC : 0;
}

/*
 * An entry this node signs itself (an eviction by votes, or the re-share
 * an eviction calls for): signed with the node's identity key at the next
 * seq and put into the Raft log like any other append; a lost race for
 * the seq signs again.  Worth only what km_evict_authorise() grants it at
 * apply, on every node.
 */
int
kmd_catalog_append_own(kmd_state *st, const km_catalog_payload *p,
    int *result, char *msg, size_t msglen)
{
	km_catalog_entry e;
	km_identity me;
	km_buf payload, tbs, enc;
	const uint8_t *der;
	size_t derlen;
	uint64_t last = 0;
	int r = KM_ERR_STALE, attempt;

	*result = 0;
	msg[0] = '\0';
	if (st->raft == NULL) {
		snprintf(msg, msglen, "the catalog is not on Raft here");
		return KM_ERR_NOT_SUPPORTED;
	}
	if ((r = kmd_evict_own_cert(st, &der, &derlen)) != 0) {
		snprintf(msg, msglen, "cannot read this node's certificate");
		return r;
	}
	memset(&me, 0, sizeof(me));
	snprintf(me.name, sizeof(me.name), "%s", st->cfg.name);
	me.role = KM_ROLE_NONE; /* our own: forward it to the leader */
	km_buf_init(&payload);
	km_buf_init(&tbs);
	km_buf_init(&enc);
	if ((r = km_catalog_payload_encode(p, &payload)) != 0) {
		snprintf(msg, msglen, "invalid catalog entry");
		goto out;
	}
	for (attempt = 0; attempt < 8 && !st->stopping; attempt++) {
		memset(&e, 0, sizeof(e));
		km_buf_reset(&tbs);
		km_buf_reset(&enc);
		if ((r = km_catalog_last_seq(st->store, &last, NULL)) != 0) {
			goto out;
		}
		e.seq = last + 1;
		e.type = p->type;
		e.payload = payload.data;
		e.payload_len = payload.len;
		e.signer = (uint8_t *)der;
		e.signer_len = derlen;
		if ((r = km_catalog_entry_tbs(&e, &tbs)) != 0
		    || (r = km_pki_sign(st->idkey, tbs.data, tbs.len, &e.sig,
		            &e.sig_len))
		        != 0) {
			goto out;
		}
		r = km_catalog_entry_encode(&e, &enc);
		free(e.sig);
		if (r != 0) {
			goto out;
		}
		r = kmd_raft_append(
		    st, &me, enc.data, enc.len, result, msg, msglen);
		if (r != KM_ERR_STALE) {
			break;
		}
		/* someone else took that seq: catch up and sign again */
		kmd_sleep_ms(100 + 100 * (unsigned)attempt);
	}
out:
	km_buf_free(&payload);
	km_buf_free(&tbs);
	km_buf_free(&enc);
	if (r != 0 && msg[0] == '\0') {
		snprintf(msg, msglen, "%s", km_strerror(r));
	}
	return r;
}
