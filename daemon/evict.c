/*
 * Eviction by the members' votes, and what follows an eviction
 * (issue #7 item 5, DESIGN.md §1 promise 3 and §3, docs/eviction.md).
 *
 *   1. The coordinator (Raft leader), holding evidence it checked itself
 *      (daemon/evidence.c), signs its own vote and asks every other live
 *      member for one (KM_MSG_EVICT_VOTE).  Each member checks the
 *      evidence on its own and only then signs.  With k votes
 *      (store/evict.h km_evict_quorum) the coordinator proposes an EVICT
 *      entry signed as itself; every node checks the votes again at
 *      apply (km_evict_authorise), so the coordinator's word is worth
 *      nothing on its own.  An admin may evict without votes
 *      (`keymesh node evict`).
 *   2. Once an EVICT is applied, every node refuses the node's
 *      certificate (pki.h km_pki_deny_set: TLS, Raft, envelopes,
 *      beacons), marks it evicted in the trust graph, and the leader
 *      re-shares every key it held among the remaining holders under a
 *      new epoch (daemon/reshare.c kmd_reshare_evicted), appending
 *      RESHARE_BEGIN and RESHARE_COMMIT signed as itself.  The old
 *      shares go at the commit, on every node, as for any re-share.
 *   3. A leader that dies half-way leaves the catalog saying so (a key
 *      still holding an evicted node's index, or re-sharing to exactly
 *      the eviction's holders): the next leader finishes from there.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/rsa.h"
#include "daemon/evict.h"
#include "daemon/evidence.h"
#include "daemon/kmd.h"
#include "mesh/rpc.h"
#include "net/net.h"
#include "pki/pki.h"
#include "proto/proto.h"
#include "raft/raft.h"
#include "store/catalog.h"
#include "store/evict.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define KMD_EVICT_VOTE_MS   5000 /* one member's vote */
#define KMD_EVICT_TICK_MS   2000 /* the leader's pass over the keys */
#define KMD_EVICT_BELOW_MAX 64   /* keys reported below threshold */

static pthread_mutex_t kmd_evict_lock = PTHREAD_MUTEX_INITIALIZER;
/* vote-gathering threads running (detached; kmd_evict_stop waits for
 * them), under kmd_evict_lock */
static unsigned kmd_evict_nthreads;
static pthread_cond_t kmd_evict_cv = PTHREAD_COND_INITIALIZER;
static uint8_t *kmd_evict_cert; /* this node's certificate, DER */
static size_t kmd_evict_cert_len;
static char kmd_evict_running[KM_NAME_MAX + 1]; /* a vote under way */
/* keys reported below their threshold, as "key@epoch", once each */
static char kmd_evict_below_keys[KMD_EVICT_BELOW_MAX][2 * KM_NAME_MAX + 16];
static unsigned kmd_evict_nbelow;
static _Atomic uint64_t kmd_evict_raft_refresh_ms; /* 0: none due */
static _Atomic uint64_t kmd_evict_next_ms;
static _Atomic bool kmd_evict_self; /* this node is evicted */

/* After an EVICT: the followers apply it before the leader starts the
 * re-share (each party checks the eviction in its own catalog), and the
 * accused gets the entry before its Raft links are cut (so it knows). */
/*
 * Proactive refresh (docs/resharing.md, "Proactive refresh").  Catalog
 * entries carry no time, so the age of a key's epoch is this node's own:
 * the monotonic time at which it applied the entry that made the epoch
 * current (KEY_ACTIVATE, RESHARE_COMMIT), or, for an epoch it found
 * already current (a restart, a snapshot), the time it first saw it.
 * Every node keeps the table; only the leader acts on it, so a new
 * leader continues with its own times (at worst one interval late after
 * its own restart).  WARNING: the authority to refresh is never the
 * age: it is the policy and the holders (km_evict_reshare_allowed), so a
 * lying clock or leader can only rotate shares more often.
 */
#define KMD_REFRESH_MAX_KEYS 512
#define KMD_REFRESH_RETRY_MS 10000 /* after a failed refresh */
/* a pending refresh left alone this long: far above an admin's own
 * BEGIN -> COMMIT (which may wait seconds for a frozen node) */
#define KMD_REFRESH_GRACE_MS 30000

typedef struct kmd_refresh_slot {
	char key_id[KM_NAME_MAX + 1];
	uint32_t epoch;      /* the current epoch seen */
	uint64_t since_ms;   /* when it became current, here */
	uint64_t retry_ms;   /* no attempt before this */
	uint32_t pend_epoch; /* a pending epoch seen (0: none) */
	uint64_t pend_ms;    /* when it was first seen pending */
} kmd_refresh_slot;

static kmd_refresh_slot kmd_refresh_slots[KMD_REFRESH_MAX_KEYS];
static size_t kmd_refresh_nslots;
static uint32_t kmd_refresh_last_s; /* the interval last logged */

#define KMD_EVICT_SETTLE_MS 1500
#define KMD_EVICT_CUT_MS    3000

int
kmd_evict_own_cert(kmd_state *st, const uint8_t **der, size_t *len)
{
	X509 *x = NULL;
	uint8_t *d = NULL;
	int n, r = 0;

	pthread_mutex_lock(&kmd_evict_lock);
	if (kmd_evict_cert == NULL) {
		if ((r = km_pki_load_cert(st->cfg.cert, &x)) == 0) {
			if ((n = i2d_X509(x, &d)) <= 0) {
				r = KM_ERR_CRYPTO;
			} else if ((kmd_evict_cert = malloc((size_t)n))
			    == NULL) {
				r = KM_ERR_ALLOC;
			} else {
				memcpy(kmd_evict_cert, d, (size_t)n);
				kmd_evict_cert_len = (size_t)n;
			}
			OPENSSL_free(d);
			X509_free(x);
		}
	}
	*der = kmd_evict_cert;
	*len = kmd_evict_cert_len;
	pthread_mutex_unlock(&kmd_evict_lock);
	return r;
}

/* The catalog's evicted nodes become the process's deny-list. */
static int
kmd_evict_deny_refresh(
    kmd_state *st, km_catalog_evicted **evout, size_t *nevout)
{
	km_catalog_evicted *ev = NULL;
	const char **names = NULL;
	size_t nev = 0, i;
	int r;

	if ((r = km_catalog_evicted_list(st->store, &ev, &nev)) != 0) {
		return r;
	}
	if (nev > 0 && (names = calloc(nev, sizeof(*names))) == NULL) {
		free(ev);
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < nev; i++) {
		names[i] = ev[i].node;
	}
	r = km_pki_deny_set(names, nev);
	free(names);
	if (r == 0 && evout != NULL) {
		*evout = ev;
		*nevout = nev;
		ev = NULL;
	}
	free(ev);
	return r;
}

int
kmd_evict_start(kmd_state *st)
{
	km_catalog_evicted *ev = NULL;
	size_t nev = 0, i;
	int r;

	if ((r = kmd_evict_deny_refresh(st, &ev, &nev)) != 0) {
		km_log_error_r(r, "KMD-EVICT-START",
		    "cannot load the evicted nodes from the catalog");
		return r;
	}
	for (i = 0; i < nev; i++) {
		if (strcmp(ev[i].node, st->cfg.name) == 0) {
			atomic_store(&kmd_evict_self, true);
			km_log_error("KMD-EVICTED",
			    "THIS NODE (%s) IS EVICTED from the mesh "
			    "(catalog entry %llu: %s): every member refuses "
			    "it",
			    st->cfg.name, (unsigned long long)ev[i].seq,
			    ev[i].reason);
		}
	}
	if (nev > 0) {
		km_log_info("KMD-EVICT-START",
		    "%zu evicted node(s) refused from the start", nev);
	}
	free(ev);
	return 0;
}

/* ---- apply-time authority and effects ---------------------------------- */

bool
kmd_evict_precheck(kmd_state *st, const km_catalog_entry *e)
{
	const unsigned char *p = e->signer;
	km_identity id;
	X509_STORE *store;
	X509 *x = NULL;
	char why[256];
	int r;

	if (e->type != KM_CAT_EVICT && e->type != KM_CAT_RESHARE_BEGIN
	    && e->type != KM_CAT_RESHARE_COMMIT
	    && e->type != KM_CAT_RESHARE_ABORT) {
		return false;
	}
	/* only node-signed entries: an admin's go the usual way */
	if (e->signer == NULL || e->signer_len == 0
	    || (x = d2i_X509(NULL, &p, (long)e->signer_len)) == NULL
	    || km_pki_identity(x, &id) != 0 || id.role != KM_ROLE_NODE) {
		X509_free(x);
		return false;
	}
	X509_free(x);
	pthread_mutex_lock(&st->lock);
	store = st->x509;
	X509_STORE_up_ref(store);
	pthread_mutex_unlock(&st->lock);
	r = km_evict_authorise(st->store, store, e, NULL, why, sizeof(why));
	X509_STORE_free(store);
	if (r != 0) {
		km_log_warn_r(r, "KMD-EVICT-REFUSE",
		    "catalog entry %llu (type %u) signed by node %s refused: "
		    "%s",
		    (unsigned long long)e->seq, e->type, id.name, why);
		return false;
	}
	return true;
}

/* The slot of @key_id, created when absent (NULL when the table is
 * full: that key is then refreshed by nobody's clock, see below).
 * Called with kmd_evict_lock held. */
static kmd_refresh_slot *
kmd_refresh_slot_get(const char *key_id, uint32_t epoch, uint64_t now)
{
	kmd_refresh_slot *sl;
	size_t i;

	for (i = 0; i < kmd_refresh_nslots; i++) {
		if (strcmp(kmd_refresh_slots[i].key_id, key_id) == 0) {
			return &kmd_refresh_slots[i];
		}
	}
	if (kmd_refresh_nslots == KMD_REFRESH_MAX_KEYS) {
		return NULL;
	}
	sl = &kmd_refresh_slots[kmd_refresh_nslots++];
	memset(sl, 0, sizeof(*sl));
	snprintf(sl->key_id, sizeof(sl->key_id), "%s", key_id);
	sl->epoch = epoch;
	sl->since_ms = now;
	return sl;
}

/* An entry that made a key's epoch current: its age starts now. */
static void
kmd_refresh_applied(const km_catalog_entry *e)
{
	km_catalog_payload p;
	kmd_refresh_slot *sl;
	uint64_t now = km_now_ms();

	memset(&p, 0, sizeof(p));
	if (km_catalog_payload_decode(e->type, e->payload, e->payload_len, &p)
	    != 0) {
		return;
	}
	pthread_mutex_lock(&kmd_evict_lock);
	if ((sl = kmd_refresh_slot_get(p.key_id, p.epoch, now)) != NULL) {
		sl->epoch = p.epoch;
		sl->since_ms = now;
		sl->retry_ms = 0;
		sl->pend_epoch = 0;
	}
	pthread_mutex_unlock(&kmd_evict_lock);
	km_catalog_payload_free(&p);
}

void
kmd_evict_applied(kmd_state *st, const km_catalog_entry *e)
{
	km_catalog_payload p;
	int r;

	if (e->type == KM_CAT_KEY_ACTIVATE
	    || e->type == KM_CAT_RESHARE_COMMIT) {
		kmd_refresh_applied(e);
		return;
	}
	if (e->type != KM_CAT_EVICT) {
		return;
	}
	memset(&p, 0, sizeof(p));
	if (km_catalog_payload_decode(e->type, e->payload, e->payload_len, &p)
	    != 0) {
		return;
	}
	if ((r = kmd_evict_deny_refresh(st, NULL, NULL)) != 0) {
		km_log_error_r(r, "KMD-EVICT-DENY",
		    "cannot refresh the deny-list after evicting %s", p.node);
	}
	{
		static const uint8_t zero[32];
		char hex[65];

		if (memcmp(p.cert_sha256, zero, 32) != 0) {
			km_hex(p.cert_sha256, 32, hex);
		} else {
			snprintf(hex, sizeof(hex), "not named");
		}
		km_log_info("KMD-EVICT",
		    "entry %llu committed: node %s evicted (%s%zu "
		    "vote(s); certificate sha256 %s): %s",
		    (unsigned long long)e->seq, p.node,
		    p.nvotes == 0 ? "an admin's decision, " : "", p.nvotes,
		    hex, p.reason);
	}
	if (strcmp(p.node, st->cfg.name) == 0) {
		atomic_store(&kmd_evict_self, true);
		km_log_error("KMD-EVICTED",
		    "THIS NODE (%s) IS EVICTED from the mesh (catalog entry "
		    "%llu: %s): every member refuses it from now on and its "
		    "shares are retired",
		    st->cfg.name, (unsigned long long)e->seq, p.reason);
	}
	kmd_beacon_mark_evicted(st, p.node, p.reason);
	atomic_store(
	    &kmd_evict_raft_refresh_ms, km_now_ms() + KMD_EVICT_CUT_MS);
	atomic_store(&kmd_evict_next_ms, km_now_ms() + KMD_EVICT_SETTLE_MS);
	km_catalog_payload_free(&p);
}

bool
kmd_evict_is_self(kmd_state *st)
{
	(void)st;
	return atomic_load(&kmd_evict_self);
}

unsigned
kmd_evict_below(kmd_state *st)
{
	unsigned n;

	(void)st;
	pthread_mutex_lock(&kmd_evict_lock);
	n = kmd_evict_nbelow;
	pthread_mutex_unlock(&kmd_evict_lock);
	return n;
}

/* ---- the leader re-shares the evicted nodes' keys ---------------------- */

static bool
kmd_evict_leading(kmd_state *st)
{
	uint64_t id = 0;
	char name[KM_NAME_MAX + 1];

	return st->raft != NULL
	    && km_raft_leader(st->raft, &id, name, sizeof(name)) == 0
	    && id == st->cfg.raft_id;
}

/* Reports a key that cannot be re-shared without the evicted node(s),
 * loudly and once per key and epoch.  Every node does (it is catalog
 * state); the key stays as it was. */
static void
kmd_evict_report_below(kmd_state *st, const km_catalog_key *k, size_t left)
{
	char tag[sizeof(kmd_evict_below_keys[0])];
	unsigned i;
	bool seen = false;

	(void)st;
	snprintf(tag, sizeof(tag), "%s@%u", k->key_id, k->epoch);
	pthread_mutex_lock(&kmd_evict_lock);
	for (i = 0; i < kmd_evict_nbelow && !seen; i++) {
		seen = strcmp(kmd_evict_below_keys[i], tag) == 0;
	}
	if (!seen && kmd_evict_nbelow < KMD_EVICT_BELOW_MAX) {
		snprintf(kmd_evict_below_keys[kmd_evict_nbelow++],
		    sizeof(kmd_evict_below_keys[0]), "%s", tag);
	}
	pthread_mutex_unlock(&kmd_evict_lock);
	if (!seen) {
		km_log_error("KMD-EVICT-BELOW-THRESHOLD",
		    "key %s (%s): %zu holders left, threshold %u: it cannot "
		    "be re-shared without the evicted node and stays at "
		    "epoch %u; re-create or re-import it",
		    k->key_id, k->label, left, k->threshold, k->epoch);
	}
}

static int
kmd_evict_append(kmd_state *st, km_catalog_payload *p, const char *what)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	int r, result = 0;

	r = kmd_catalog_append_own(st, p, &result, msg, sizeof(msg));
	if (r == 0 && result != 0) {
		r = result;
		snprintf(msg, sizeof(msg), "consumed without effect (%s)",
		    km_strerror(result));
	}
	if (r != 0) {
		km_log_warn_r(r, "KMD-EVICT-APPEND",
		    "%s of key %s not "
		    "appended: %s",
		    what, p->key_id, msg);
	}
	return r;
}

/*
 * One key: re-share it to @plan (the eviction's, or the current holders
 * for a refresh) with the same threshold, then append RESHARE_BEGIN and
 * RESHARE_COMMIT signed as this node.  @msg says why on failure.
 */
static int
kmd_evict_rs_run(kmd_state *st, const km_catalog_key *k,
    const km_catalog_holder *plan, size_t n, char *msg, size_t msglen)
{
	km_catalog_vote *acks = NULL;
	km_catalog_payload p;
	const uint8_t *pd;
	size_t pdlen, nacks = 0;
	km_buf pub;
	int r;

	km_buf_init(&pub);
	memset(&p, 0, sizeof(p));
	msg[0] = '\0';
	if ((acks = calloc(KM_CATALOG_MAX_HOLDERS, sizeof(*acks))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if ((r = kmd_reshare_evicted(st, k, plan, n, &pub, acks, msg, msglen))
	    != 0) {
		goto out;
	}
	/* one per distinct new holder node, packed from the front */
	while (nacks < KM_CATALOG_MAX_HOLDERS && acks[nacks].cert != NULL) {
		nacks++;
	}
	pub.off = 0;
	if ((r = km_buf_get_string_ptr(
	         &pub, &pd, &pdlen, KM_CATALOG_PUBLIC_MAX))
	    != 0) {
		snprintf(msg, msglen, "the new public data is malformed");
		goto out;
	}
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "%s", k->key_id);
	p.epoch = k->epoch + 1;
	p.threshold = k->threshold;
	p.nholders = n;
	p.holders = (km_catalog_holder *)plan;
	p.public_data = (uint8_t *)pd;
	p.public_len = pdlen;
	p.votes = acks;
	p.nvotes = nacks;
	if ((r = kmd_evict_append(st, &p, "RESHARE_BEGIN")) != 0) {
		/* the prepared shares are never used; the next attempt's
		 * hello drops them */
		snprintf(msg, msglen, "RESHARE_BEGIN not appended (%s)",
		    km_strerror(r));
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_COMMIT;
	snprintf(p.key_id, sizeof(p.key_id), "%s", k->key_id);
	p.epoch = k->epoch + 1;
	if ((r = kmd_evict_append(st, &p, "RESHARE_COMMIT")) != 0) {
		/* a pending epoch: the next pass commits or aborts it */
		snprintf(msg, msglen, "RESHARE_COMMIT not appended (%s)",
		    km_strerror(r));
	}
out:
	km_buf_free(&pub);
	km_catalog_votes_free(acks, KM_CATALOG_MAX_HOLDERS);
	return r;
}

/* One key: re-share it without the evicted nodes, then commit. */
static void
kmd_evict_reshare_key(kmd_state *st, const km_catalog_key *k,
    const km_catalog_holder *plan, size_t n)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	int r;

	km_log_info("KMD-EVICT-RESHARE",
	    "key %s (%s): re-sharing epoch %u -> %u without the evicted "
	    "node(s), %u of %zu",
	    k->key_id, k->label, k->epoch, k->epoch + 1, k->threshold, n);
	if ((r = kmd_evict_rs_run(st, k, plan, n, msg, sizeof(msg))) != 0) {
		km_log_warn_r(r, "KMD-EVICT-RESHARE-FAIL",
		    "key %s stays at epoch %u for now: %s", k->key_id,
		    k->epoch, msg);
		return;
	}
	km_log_info("KMD-EVICT-RESHARED",
	    "key %s (%s) is at epoch %u, %u of %zu, without the "
	    "evicted node(s); the old shares are deleted",
	    k->key_id, k->label, k->epoch + 1, k->threshold, n);
}

/* A pending epoch that is exactly the eviction's re-share: a previous
 * coordinator appended BEGIN (every new holder had prepared its share)
 * and died before COMMIT.  Finish it. */
static void
kmd_evict_finish_key(kmd_state *st, const km_catalog_key *k,
    const km_catalog_holder *plan, size_t n)
{
	km_catalog_payload p;
	size_t i;

	if (k->next_threshold != k->threshold || k->next_nholders != n) {
		return;
	}
	for (i = 0; i < n; i++) {
		if (k->next_holders[i].index != plan[i].index
		    || strcmp(k->next_holders[i].node, plan[i].node) != 0) {
			return;
		}
	}
	km_log_info("KMD-EVICT-RESHARE",
	    "key %s: committing epoch %u, begun for an eviction by a "
	    "previous coordinator",
	    k->key_id, k->next_epoch);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_COMMIT;
	snprintf(p.key_id, sizeof(p.key_id), "%s", k->key_id);
	p.epoch = k->next_epoch;
	if (kmd_evict_append(st, &p, "RESHARE_COMMIT") == 0) {
		km_log_info("KMD-EVICT-RESHARED",
		    "key %s (%s) is at epoch %u without the evicted node(s)",
		    k->key_id, k->label, k->next_epoch);
	}
}

static void kmd_evict_test_accuse(kmd_state *st);

/* The leader takes an evicted node out of the Raft configuration, so that
 * it no longer counts in the majority (raft.h km_raft_remove_voter).
 * Removed already: NOT_FOUND, silently. */
static void
kmd_evict_remove_voter(kmd_state *st, const char *node)
{
	unsigned i;
	int r;

	for (i = 0; i < st->cfg.nraft; i++) {
		if (strcmp(st->cfg.raft[i].name, node) != 0
		    || st->cfg.raft[i].id == st->cfg.raft_id) {
			continue;
		}
		r = km_raft_remove_voter(st->raft, st->cfg.raft[i].id, 3000);
		if (r == 0) {
			km_log_info("KMD-EVICT", "%s (Raft id %llu) removed "
			                         "from the Raft voters",
			    node, (unsigned long long)st->cfg.raft[i].id);
		} else if (r != KM_ERR_NOT_FOUND) {
			km_log_warn_r(r, "KMD-EVICT",
			    "%s not removed from the Raft voters yet", node);
		}
	}
}

/* Drops every Raft connection and checks each peer again: the deny-list
 * refuses the evicted node's (raft.h km_raft_set_crl). */
static void
kmd_evict_cut_raft(kmd_state *st)
{
	uint8_t *crl = NULL;
	size_t crllen = 0;
	char *pem;

	if (st->raft == NULL || st->cfg.crl[0] == '\0'
	    || km_read_file(st->cfg.crl, &crl, &crllen, 1u << 20) != 0) {
		return;
	}
	if ((pem = realloc(crl, crllen + 1)) == NULL) {
		free(crl);
		return;
	}
	pem[crllen] = '\0';
	if (km_raft_set_crl(st->raft, pem) == 0) {
		km_log_info("KMD-EVICT",
		    "Raft links re-checked: evicted "
		    "nodes are cut off");
	}
	free(pem);
}

/* ---- proactive refresh: the leader rotates every key's shares -------- */

/* Whether @k's pending epoch has its current holders and threshold (a
 * refresh begun and not committed). */
static bool
kmd_refresh_pending_same(const km_catalog_key *k)
{
	size_t i;

	if (k->state != KM_KEY_RESHARING || k->next_threshold != k->threshold
	    || k->next_nholders != k->nholders) {
		return false;
	}
	for (i = 0; i < k->nholders; i++) {
		if (k->next_holders[i].index != k->holders[i].index
		    || strcmp(k->next_holders[i].node, k->holders[i].node)
		        != 0) {
			return false;
		}
	}
	return true;
}

/* A refresh a previous leader began and did not commit (or one an admin
 * left half-done): commit it while the catalog allows a refresh (every
 * new holder prepared its share before BEGIN); abort it when a holder has
 * been evicted since (the eviction's re-share needs the key active).
 * With refresh off and no eviction it is left to the admin (`keymesh key
 * reshare` aborts an interrupted re-share first). */
static void
kmd_refresh_finish(kmd_state *st, const km_catalog_key *k)
{
	km_catalog_holder plan[KM_CATALOG_MAX_HOLDERS];
	km_catalog_evicted *ev = NULL;
	km_catalog_payload p;
	size_t nev = 0, np = 0;
	char why[256];
	bool commit, evicted;

	commit = km_evict_reshare_allowed(st->store, k, k->next_threshold,
	             k->next_holders, k->next_nholders, true, NULL, why,
	             sizeof(why))
	    == 0;
	if (km_catalog_evicted_list(st->store, &ev, &nev) != 0) {
		return;
	}
	evicted = km_evict_plan(k, ev, nev, plan, &np) != KM_ERR_NOT_FOUND;
	free(ev);
	if (!commit && !evicted) {
		return;
	}
	memset(&p, 0, sizeof(p));
	p.type = commit ? KM_CAT_RESHARE_COMMIT : KM_CAT_RESHARE_ABORT;
	snprintf(p.key_id, sizeof(p.key_id), "%s", k->key_id);
	p.epoch = k->next_epoch;
	if (kmd_evict_append(
	        st, &p, commit ? "RESHARE_COMMIT" : "RESHARE_ABORT")
	    != 0) {
		return;
	}
	if (commit) {
		km_log_info("KMD-REFRESH",
		    "done: key %s (%s) is at epoch %u (a refresh begun "
		    "earlier, committed now); the old shares are deleted",
		    k->key_id, k->label, k->next_epoch);
	} else {
		km_log_info("KMD-REFRESH",
		    "key %s (%s): pending epoch %u aborted (%s); it stays "
		    "at epoch %u",
		    k->key_id, k->label, k->next_epoch, why, k->epoch);
	}
}

/*
 * RSA shares grow with every re-share (docs/crypto-rsa.md, "Growth"; the
 * decoders refuse a scale above 2048 bits and shares above 4 x 8192 bits,
 * src/crypto/rsa_int.h).  A key this close to either bound is not
 * refreshed any more: the next re-shares would fail or leave it unusable.
 * The margins cover two re-shares of 16 holders (89 scale bits and about
 * 250 share bits each).
 */
#define KMD_REFRESH_RSA_SCALE_LIMIT (2048 - 256)
#define KMD_REFRESH_RSA_SHARE_LIMIT (4 * 8192 - 512)

static bool
kmd_refresh_rsa_grown(const km_catalog_key *k, int *scale, int *share)
{
	km_rsa_pub *pub = NULL;
	bool grown;

	*scale = *share = 0;
	if (k->key_type != KM_KEY_RSA) {
		return false;
	}
	if (km_rsa_pub_decode(k->public_data, k->public_len, &pub) != 0) {
		return true; /* not ours to re-share: say so, leave it */
	}
	*scale = km_rsa_pub_scale_bits(pub);
	*share = km_rsa_pub_share_bits(pub);
	grown = *scale > KMD_REFRESH_RSA_SCALE_LIMIT
	    || *share > KMD_REFRESH_RSA_SHARE_LIMIT;
	km_rsa_pub_free(pub);
	return grown;
}

/* Refreshes one key: the same holders, indices and threshold. */
static void
kmd_refresh_key(
    kmd_state *st, const km_catalog_key *k, uint64_t age_ms, uint32_t secs)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	kmd_refresh_slot *sl;
	int r;

	km_log_info("KMD-REFRESH",
	    "started: key %s (%s) epoch %u -> %u, the same %zu holders, "
	    "threshold %u (epoch %llu s old, interval %u s)",
	    k->key_id, k->label, k->epoch, k->epoch + 1, k->nholders,
	    k->threshold, (unsigned long long)(age_ms / 1000), secs);
	r = kmd_evict_rs_run(st, k, k->holders, k->nholders, msg, sizeof(msg));
	if (r == 0) {
		km_log_info("KMD-REFRESH",
		    "done: key %s (%s) is at epoch %u with the same holders "
		    "and threshold; the old shares are deleted",
		    k->key_id, k->label, k->epoch + 1);
		return;
	}
	km_log_warn_r(r, "KMD-REFRESH",
	    "failed: key %s (%s) stays at epoch %u: %s; next try in %d s",
	    k->key_id, k->label, k->epoch, msg[0] ? msg : km_strerror(r),
	    KMD_REFRESH_RETRY_MS / 1000);
	pthread_mutex_lock(&kmd_evict_lock);
	if ((sl = kmd_refresh_slot_get(k->key_id, k->epoch, km_now_ms()))
	    != NULL) {
		sl->retry_ms = km_now_ms() + KMD_REFRESH_RETRY_MS;
	}
	pthread_mutex_unlock(&kmd_evict_lock);
}

/*
 * Every node notes the epochs it sees; the leader, while the posture
 * policy's refresh interval is non-zero, refreshes the key whose epoch is
 * oldest once it is older than the interval: one key per pass, on the
 * sync thread (never a client's request path).
 */
static void
kmd_refresh_pass(
    kmd_state *st, const km_catalog_key *keys, size_t nkeys, bool leading)
{
	kmd_refresh_slot *sl;
	const km_catalog_key *due = NULL, *finish = NULL;
	uint64_t now = km_now_ms(), age = 0, oldest = 0;
	uint32_t secs = 0;
	char why[256];
	int scale, share;
	size_t i;

	if (km_evict_refresh_interval(st->store, &secs) != 0) {
		secs = 0;
	}
	pthread_mutex_lock(&kmd_evict_lock);
	if (secs != kmd_refresh_last_s) {
		kmd_refresh_last_s = secs;
		if (secs != 0) {
			km_log_info("KMD-REFRESH",
			    "proactive refresh on: the leader rotates every "
			    "key's shares every %u s",
			    secs);
		} else {
			km_log_info("KMD-REFRESH", "proactive refresh off");
		}
	}
	for (i = 0; i < nkeys; i++) {
		const km_catalog_key *k = &keys[i];

		if ((sl = kmd_refresh_slot_get(k->key_id, k->epoch, now))
		    == NULL) {
			continue;
		}
		if (sl->epoch != k->epoch) {
			/* made current by an entry this node did not apply
			 * live (a snapshot): its age starts now */
			sl->epoch = k->epoch;
			sl->since_ms = now;
			sl->retry_ms = 0;
		}
		if (k->state == KM_KEY_RESHARING) {
			if (sl->pend_epoch != k->next_epoch) {
				sl->pend_epoch = k->next_epoch;
				sl->pend_ms = now;
			}
			if (finish == NULL && kmd_refresh_pending_same(k)
			    && now - sl->pend_ms >= KMD_REFRESH_GRACE_MS
			    && now >= sl->retry_ms) {
				finish = k;
				sl->retry_ms = now + KMD_REFRESH_RETRY_MS;
			}
			continue;
		}
		sl->pend_epoch = 0;
		if (secs == 0 || k->state != KM_KEY_ACTIVE
		    || now < sl->retry_ms
		    || now - sl->since_ms < (uint64_t)secs * 1000) {
			continue;
		}
		if (due == NULL || sl->since_ms < oldest) {
			due = k;
			oldest = sl->since_ms;
			age = now - sl->since_ms;
		}
	}
	pthread_mutex_unlock(&kmd_evict_lock);
	if (!leading || st->stopping) {
		return;
	}
	if (finish != NULL) {
		kmd_refresh_finish(st, finish);
		return;
	}
	if (due == NULL) {
		return;
	}
	/* the same rule every node applies to the entries (a key holding
	 * an evicted node's index is the eviction's to re-share) */
	if (km_evict_reshare_allowed(st->store, due, due->threshold,
	        due->holders, due->nholders, true, NULL, why, sizeof(why))
	    != 0) {
		pthread_mutex_lock(&kmd_evict_lock);
		if ((sl = kmd_refresh_slot_get(due->key_id, due->epoch, now))
		    != NULL) {
			sl->retry_ms = now + KMD_REFRESH_RETRY_MS;
		}
		pthread_mutex_unlock(&kmd_evict_lock);
		return;
	}
	if (kmd_refresh_rsa_grown(due, &scale, &share)) {
		km_log_warn("KMD-REFRESH",
		    "failed: key %s (%s) is not refreshed any more at epoch "
		    "%u: its RSA shares have grown through re-shares (scale "
		    "%d bits, shares %d bits; docs/crypto-rsa.md, Growth); "
		    "re-import or re-create it",
		    due->key_id, due->label, due->epoch, scale, share);
		pthread_mutex_lock(&kmd_evict_lock);
		if ((sl = kmd_refresh_slot_get(due->key_id, due->epoch, now))
		    != NULL) {
			sl->retry_ms = UINT64_MAX; /* until its next epoch */
		}
		pthread_mutex_unlock(&kmd_evict_lock);
		return;
	}
	kmd_refresh_key(st, due, age, secs);
}

void
kmd_evict_tick(kmd_state *st)
{
	km_catalog_holder plan[KM_CATALOG_MAX_HOLDERS];
	km_catalog_evicted *ev = NULL;
	km_catalog_key *keys = NULL;
	size_t nev = 0, nkeys = 0, np, i;
	uint64_t now = km_now_ms(), cut;
	bool leading, busy = false;
	int r;

	cut = atomic_load(&kmd_evict_raft_refresh_ms);
	if (cut != 0 && now >= cut
	    && atomic_compare_exchange_strong(
	        &kmd_evict_raft_refresh_ms, &cut, 0)) {
		kmd_evict_cut_raft(st);
	}
	if (now < atomic_load(&kmd_evict_next_ms)) {
		return;
	}
	atomic_store(&kmd_evict_next_ms, now + KMD_EVICT_TICK_MS);
	kmd_evict_test_accuse(st);
	leading = kmd_evict_leading(st);
	if (km_catalog_evicted_list(st->store, &ev, &nev) != 0
	    || km_catalog_key_list(st->store, &keys, &nkeys) != 0) {
		goto out;
	}
	for (i = 0; i < nev; i++) {
		/* the graph is rebuilt at start; keep the verdict there */
		kmd_beacon_mark_evicted(st, ev[i].node, ev[i].reason);
		if (leading) {
			kmd_evict_remove_voter(st, ev[i].node);
		}
	}
	for (i = 0; i < nkeys && nev > 0 && !st->stopping; i++) {
		r = km_evict_plan(&keys[i], ev, nev, plan, &np);
		if (r == KM_ERR_NOT_FOUND || r == KM_ERR_INVALID_ARG) {
			continue;
		}
		if (r == KM_ERR_QUORUM) {
			kmd_evict_report_below(st, &keys[i], np);
			continue;
		}
		if (!leading) {
			continue;
		}
		if (keys[i].state == KM_KEY_ACTIVE) {
			kmd_evict_reshare_key(st, &keys[i], plan, np);
			busy = true;
		} else if (keys[i].state == KM_KEY_RESHARING) {
			/* not busy: a pending epoch that is not the plan (a
			 * refresh begun before the eviction) is the refresh
			 * pass's to abort */
			kmd_evict_finish_key(st, &keys[i], plan, np);
		}
	}
	/* evictions first: a refresh waits for a pass with nothing else to
	 * do (the key list above may be stale after a re-share) */
	if (!busy && !st->stopping) {
		/* an evicted node refreshes nothing (its entries would be
		 * refused anyway) */
		kmd_refresh_pass(
		    st, keys, nkeys, leading && !atomic_load(&kmd_evict_self));
	}
out:
	km_catalog_key_list_free(keys, nkeys);
	free(ev);
}

/* ---- the vote round ------------------------------------------------------
 */

/*
 * WARNING: test builds only (--enable-test-hooks).  With
 * KEYMESHD_TEST_EVIDENCE=1 a blob "keymesh-test-evidence:NODE" counts as
 * checked evidence against NODE, so the vote round can be tested before
 * daemon/evidence.c checks real evidence.  A production build has no such
 * path: every vote rests on kmd_evidence_check().
 */
static int
kmd_evict_evidence_check(kmd_state *st, const uint8_t *ev, size_t len,
    kmd_evidence_info *info, char *why, size_t whylen)
{
#ifdef KM_TEST_HOOKS
	static const char pre[] = "keymesh-test-evidence:";
	const char *on = getenv("KEYMESHD_TEST_EVIDENCE");

	if (on != NULL && strcmp(on, "1") == 0 && len > strlen(pre)
	    && len - strlen(pre) <= KM_NAME_MAX
	    && memcmp(ev, pre, strlen(pre)) == 0) {
		memset(info, 0, sizeof(*info));
		memcpy(info->accused, ev + strlen(pre), len - strlen(pre));
		if (!km_name_valid(info->accused)) {
			snprintf(why, whylen, "bad test evidence");
			return KM_ERR_BAD_FORMAT;
		}
		(void)EVP_Digest(
		    ev, len, info->hash, NULL, EVP_sha256(), NULL);
		snprintf(info->what, sizeof(info->what),
		    "test evidence (a test build's hook)");
		return 0;
	}
#endif
	return kmd_evidence_check(st, ev, len, info, why, whylen);
}

/* A statement and vote of this node about @accused. */
static int
kmd_evict_own_vote(kmd_state *st, const char *accused,
    const uint8_t cert_sha256[32], const uint8_t evidence[32],
    km_catalog_vote *out)
{
	km_evict_stmt vs;
	const uint8_t *der;
	size_t derlen;
	int r;

	if ((r = kmd_evict_own_cert(st, &der, &derlen)) != 0) {
		return r;
	}
	memset(&vs, 0, sizeof(vs));
	snprintf(vs.accused, sizeof(vs.accused), "%s", accused);
	memcpy(vs.cert_sha256, cert_sha256, 32);
	memcpy(vs.evidence_sha256, evidence, 32);
	vs.time_ms = km_now_ms();
	return km_evict_vote_sign(st->idkey, der, derlen, &vs, out);
}

/*
 * evict-vote request body: string accused, string cert_sha256 (32 bytes),
 * string evidence.  Reply: string voter certificate (DER), string
 * statement, string signature (a km_catalog_vote).
 */
int
kmd_do_evict_vote(kmd_state *st, const km_identity *peer, km_buf *in,
    km_buf *out, char *msg, size_t msglen)
{
	const uint8_t *name, *hash, *ev;
	size_t nlen, hlen, evlen;
	char accused[KM_NAME_MAX + 1];
	kmd_evidence_info info;
	km_catalog_vote v;
	char why[256] = "";
	int r;

	memset(&v, 0, sizeof(v));
	if (km_buf_get_string_ptr(in, &name, &nlen, KM_NAME_MAX) != 0
	    || km_buf_get_string_ptr(in, &hash, &hlen, 32) != 0
	    || km_buf_get_string_ptr(in, &ev, &evlen, KMD_EVICT_EVIDENCE_MAX)
	        != 0
	    || km_buf_remaining(in) != 0 || hlen != 32 || evlen == 0) {
		snprintf(msg, msglen, "malformed evict-vote request");
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(accused, name, nlen);
	accused[nlen] = '\0';
	if (strlen(accused) != nlen || !km_name_valid(accused)) {
		snprintf(msg, msglen, "malformed evict-vote request");
		return KM_ERR_BAD_FORMAT;
	}
	if (strcmp(accused, st->cfg.name) == 0
	    || strcmp(accused, peer->name) == 0) {
		snprintf(msg, msglen, "%s does not vote on evicting %s",
		    st->cfg.name, accused);
		return KM_ERR_AUTH;
	}
	if (km_catalog_evicted_get(st->store, accused, NULL) == 0) {
		snprintf(msg, msglen, "%s is evicted already", accused);
		return KM_ERR_EXISTS;
	}
	/* the member's own check: never on the coordinator's word */
	if ((r = kmd_evict_evidence_check(
	         st, ev, evlen, &info, why, sizeof(why)))
	        != 0
	    || strcmp(info.accused, accused) != 0) {
		r = r != 0 ? r : KM_ERR_VERIFY;
		km_log_warn_r(r, "KMD-EVICT-VOTE",
		    "no vote to evict %s (asked by %s): the evidence does "
		    "not hold here: %s",
		    accused, peer->name, why[0] ? why : "it accuses another");
		snprintf(msg, msglen,
		    "evidence against %s does not hold on "
		    "%s: %s",
		    accused, st->cfg.name, why[0] ? why : "another node");
		return r;
	}
	/* the certificate it votes against is the one it found in the
	 * evidence itself, never the coordinator's word */
	if (CRYPTO_memcmp(hash, info.cert_sha256, 32) != 0) {
		km_log_warn("KMD-EVICT-VOTE",
		    "no vote to evict %s (asked by %s): the certificate "
		    "named is not the one that signed the bad reply",
		    accused, peer->name);
		snprintf(msg, msglen,
		    "the certificate named is not %s's in the evidence",
		    accused);
		return KM_ERR_VERIFY;
	}
	if ((r = kmd_evict_own_vote(
	         st, accused, info.cert_sha256, info.hash, &v))
	    != 0) {
		snprintf(msg, msglen, "cannot sign the vote");
		return r;
	}
	r = km_buf_put_string(out, v.cert, v.cert_len);
	r = r ? r : km_buf_put_string(out, v.stmt, v.stmt_len);
	r = r ? r : km_buf_put_string(out, v.sig, v.sig_len);
	km_evict_vote_clear(&v);
	km_log_info("KMD-EVICT-VOTE", "voted to evict %s (asked by %s): %s",
	    accused, peer->name, info.what);
	return r;
}

/* A member's reply, checked before it is counted: a valid node
 * certificate of that very member, signing the statement we asked. */
static int
kmd_evict_check_reply(kmd_state *st, const char *member, km_buf *rep,
    const char *accused, const uint8_t cert_sha256[32],
    const uint8_t evidence[32], km_catalog_vote *out)
{
	const uint8_t *c, *s, *g;
	size_t cl, sl, gl;
	km_evict_stmt vs;
	km_identity id;
	X509_STORE *store;
	int r;

	if (km_buf_get_string_ptr(rep, &c, &cl, KM_CATALOG_CERT_MAX) != 0
	    || km_buf_get_string_ptr(rep, &s, &sl, KM_CATALOG_VOTE_STMT_MAX)
	        != 0
	    || km_buf_get_string_ptr(rep, &g, &gl, KM_CATALOG_SIG_MAX) != 0
	    || km_buf_remaining(rep) != 0 || cl == 0 || sl == 0 || gl == 0
	    || km_evict_stmt_decode(s, sl, &vs) != 0
	    || strcmp(vs.accused, accused) != 0
	    || CRYPTO_memcmp(vs.cert_sha256, cert_sha256, 32) != 0
	    || CRYPTO_memcmp(vs.evidence_sha256, evidence, 32) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	pthread_mutex_lock(&st->lock);
	store = st->x509;
	X509_STORE_up_ref(store);
	pthread_mutex_unlock(&st->lock);
	r = km_pki_verify_signed(
	    store, c, cl, KM_ROLE_NODE, s, sl, g, gl, &id);
	X509_STORE_free(store);
	if (r != 0 || strcmp(id.name, member) != 0) {
		return r != 0 ? r : KM_ERR_AUTH;
	}
	memset(out, 0, sizeof(*out));
	if ((out->cert = malloc(cl)) == NULL
	    || (out->stmt = malloc(sl)) == NULL
	    || (out->sig = malloc(gl)) == NULL) {
		km_evict_vote_clear(out);
		return KM_ERR_ALLOC;
	}
	memcpy(out->cert, c, cl);
	memcpy(out->stmt, s, sl);
	memcpy(out->sig, g, gl);
	out->cert_len = cl;
	out->stmt_len = sl;
	out->sig_len = gl;
	return 0;
}

typedef struct kmd_evict_job {
	kmd_state *st;
	kmd_evidence_info info;
	uint8_t *ev;
	size_t len;
} kmd_evict_job;

/* A one-line, printable reason from the evidence's description. */
static void
kmd_evict_reason(char *dst, size_t dstlen, const char *what)
{
	size_t i, n = 0;

	for (i = 0;
	     what[i] != '\0' && n + 1 < dstlen && n < KM_CATALOG_REASON_MAX;
	     i++) {
		dst[n++]
		    = (what[i] >= 0x20 && what[i] <= 0x7e) ? what[i] : ' ';
	}
	dst[n] = '\0';
}

static void
kmd_evict_gather(kmd_evict_job *job)
{
	kmd_state *st = job->st;
	const uint8_t *certh = job->info.cert_sha256;
	const char *accused = job->info.accused;
	km_catalog_vote *votes = NULL;
	km_catalog_payload p;
	size_t nv = 0, i;
	uint32_t k = 0;
	int r;

	memset(&p, 0, sizeof(p));
	if ((votes = calloc(st->cfg.npeers + 1, sizeof(*votes))) == NULL) {
		goto out;
	}
	if ((r = kmd_evict_own_vote(
	         st, accused, certh, job->info.hash, &votes[nv]))
	    != 0) {
		km_log_warn_r(r, "KMD-EVICT", "cannot sign our own vote");
		goto out;
	}
	nv++;
	for (i = 0; i < st->cfg.npeers && !st->stopping; i++) {
		const char *member = st->cfg.peers[i].name;
		char m[KM_PROTO_MESSAGE_MAX + 1] = "";
		km_buf req, rep;

		if (strcmp(member, accused) == 0
		    || km_catalog_evicted_get(st->store, member, NULL) == 0
		    || st->peer_clients[i] == NULL
		    || !km_net_client_connected(st->peer_clients[i])) {
			continue;
		}
		km_log_info("KMD-EVICT", "vote asked of %s: evict %s", member,
		    accused);
		km_buf_init(&req);
		km_buf_init(&rep);
		r = km_rpc_request(&req, KM_MSG_EVICT_VOTE, NULL, 0, NULL);
		r = r ? r : km_buf_put_cstring(&req, accused);
		r = r ? r : km_buf_put_string(&req, certh, 32);
		r = r ? r : km_buf_put_string(&req, job->ev, job->len);
		r = r ? r
		      : km_rpc_call(st->peer_clients[i], &req,
		          KMD_EVICT_VOTE_MS, &rep, m, sizeof(m));
		if (r == 0) {
			r = kmd_evict_check_reply(st, member, &rep, accused,
			    certh, job->info.hash, &votes[nv]);
			if (r == 0) {
				nv++;
			}
		}
		if (r != 0) {
			km_log_warn_r(r, "KMD-EVICT", "no vote from %s: %s",
			    member, m[0] ? m : "its reply does not hold");
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
	if ((r = km_evict_quorum(st->store, &k, NULL)) != 0) {
		goto out;
	}
	km_log_info("KMD-EVICT", "votes got to evict %s: %zu, %u needed",
	    accused, nv, k);
	if (nv < k) {
		km_log_warn("KMD-EVICT",
		    "%s is not evicted: %zu vote(s) of "
		    "the %u needed",
		    accused, nv, k);
		goto out;
	}
	if (st->stopping) {
		goto out; /* the daemon is stopping: no entry now */
	}
	p.type = KM_CAT_EVICT;
	snprintf(p.node, sizeof(p.node), "%s", accused);
	memcpy(p.cert_sha256, certh, 32);
	kmd_evict_reason(p.reason, sizeof(p.reason), job->info.what);
	p.nvotes = nv;
	p.votes = votes;
	{
		char msg[KM_PROTO_MESSAGE_MAX + 1] = "";
		int result = 0;

		r = kmd_catalog_append_own(st, &p, &result, msg, sizeof(msg));
		if (r == 0 && result == 0) {
			km_log_info("KMD-EVICT",
			    "eviction of %s committed "
			    "with %zu votes",
			    accused, nv);
		} else {
			km_log_warn_r(r != 0 ? r : result, "KMD-EVICT",
			    "eviction of %s not committed: %s", accused,
			    msg[0] ? msg : km_strerror(result));
		}
	}
out:
	km_catalog_votes_free(votes, nv);
	pthread_mutex_lock(&kmd_evict_lock);
	kmd_evict_running[0] = '\0';
	pthread_mutex_unlock(&kmd_evict_lock);
}

static void *
kmd_evict_thread(void *arg)
{
	kmd_evict_job *job = arg;

	kmd_evict_gather(job);
	free(job->ev);
	free(job);
	pthread_mutex_lock(&kmd_evict_lock);
	kmd_evict_nthreads--;
	pthread_cond_broadcast(&kmd_evict_cv);
	pthread_mutex_unlock(&kmd_evict_lock);
	return NULL;
}

void
kmd_evict_stop(kmd_state *st)
{
	struct timespec ts;
	bool said = false;

	(void)st; /* the caller has set st->stopping */
	pthread_mutex_lock(&kmd_evict_lock);
	while (kmd_evict_nthreads > 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if (pthread_cond_timedwait(&kmd_evict_cv, &kmd_evict_lock, &ts)
		        != 0
		    && !said) {
			km_log_info("KMD-EVICT",
			    "waiting for %u vote round(s) to end",
			    kmd_evict_nthreads);
			said = true;
		}
	}
	pthread_mutex_unlock(&kmd_evict_lock);
}

int
kmd_evict_on_evidence(kmd_state *st, const kmd_evidence_info *info,
    const uint8_t *ev, size_t len, char *why, size_t whylen)
{
	kmd_evict_job *job = NULL;
	pthread_t t;

	if (info == NULL || ev == NULL || len == 0
	    || len > KMD_EVICT_EVIDENCE_MAX || !km_name_valid(info->accused)) {
		snprintf(why, whylen, "no usable evidence");
		return KM_ERR_INVALID_ARG;
	}
	if (strcmp(info->accused, st->cfg.name) == 0) {
		snprintf(why, whylen,
		    "%s does not gather votes against "
		    "itself",
		    st->cfg.name);
		return KM_ERR_AUTH;
	}
	if (km_catalog_evicted_get(st->store, info->accused, NULL) == 0) {
		snprintf(why, whylen, "%s is evicted already", info->accused);
		return 0;
	}
	pthread_mutex_lock(&kmd_evict_lock);
	if (kmd_evict_running[0] != '\0') {
		bool same = strcmp(kmd_evict_running, info->accused) == 0;

		pthread_mutex_unlock(&kmd_evict_lock);
		snprintf(why, whylen, "a vote on %s is under way",
		    same ? info->accused : "another node");
		return same ? 0 : KM_ERR_BUSY;
	}
	snprintf(
	    kmd_evict_running, sizeof(kmd_evict_running), "%s", info->accused);
	pthread_mutex_unlock(&kmd_evict_lock);
	if ((job = calloc(1, sizeof(*job))) == NULL
	    || (job->ev = malloc(len)) == NULL) {
		goto fail;
	}
	job->st = st;
	job->info = *info;
	memcpy(job->ev, ev, len);
	job->len = len;
	pthread_mutex_lock(&kmd_evict_lock);
	kmd_evict_nthreads++;
	pthread_mutex_unlock(&kmd_evict_lock);
	if (pthread_create(&t, NULL, kmd_evict_thread, job) != 0) {
		pthread_mutex_lock(&kmd_evict_lock);
		kmd_evict_nthreads--;
		pthread_mutex_unlock(&kmd_evict_lock);
		goto fail;
	}
	(void)pthread_detach(t);
	km_log_info("KMD-EVICT", "gathering votes to evict %s: %s",
	    info->accused, info->what);
	return 0;
fail:
	if (job != NULL) {
		free(job->ev);
	}
	free(job);
	pthread_mutex_lock(&kmd_evict_lock);
	kmd_evict_running[0] = '\0';
	pthread_mutex_unlock(&kmd_evict_lock);
	snprintf(why, whylen, "out of memory");
	return KM_ERR_ALLOC;
}

/*
 * WARNING: test builds only.  KEYMESHD_TEST_ACCUSE_FILE names a file; once
 * it exists and holds a node name, the Raft leader starts a vote round
 * against that node with test evidence (see kmd_evict_evidence_check),
 * once, as if a client had reported a bad partial.
 */
static void
kmd_evict_test_accuse(kmd_state *st)
{
#ifdef KM_TEST_HOOKS
	static bool done;
	const char *path = getenv("KEYMESHD_TEST_ACCUSE_FILE");
	kmd_evidence_info info;
	char blob[128], why[160];
	uint8_t *d = NULL;
	size_t len = 0, n;
	int r;

	if (done || path == NULL || !kmd_evict_leading(st)
	    || km_read_file(path, &d, &len, KM_NAME_MAX + 2) != 0) {
		return;
	}
	for (n = 0; n < len && d[n] != '\n'; n++) {
	}
	snprintf(blob, sizeof(blob), "keymesh-test-evidence:%.*s", (int)n,
	    (const char *)d);
	free(d);
	if (kmd_evict_evidence_check(st, (const uint8_t *)blob, strlen(blob),
	        &info, why, sizeof(why))
	    != 0) {
		return;
	}
	done = true;
	r = kmd_evict_on_evidence(
	    st, &info, (const uint8_t *)blob, strlen(blob), why, sizeof(why));
	km_log_info("KMD-EVICT", "test hook: accusing %s: %s", info.accused,
	    r == 0 ? "vote round started" : why);
#else
	(void)st;
#endif
}
