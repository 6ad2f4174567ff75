/*
 * keymeshd's side of trust scoring, verdicts and quarantine
 * (docs/trust.md, "Posture policy", "Scoring", "Verdicts").
 *
 * Every daemon keeps, from the applied catalog, the posture policy
 * (KM_CAT_POSTURE_SET) and the last verdict about each node
 * (KM_CAT_TRUST_VERDICT), and shows the verdicts in its trust graph.
 *
 * The Raft leader (the coordinator) also scores: each beacon it accepts,
 * its own included, is checked against the policy and fed to the node's
 * score (src/trust/score.c); when the result differs from the published
 * verdict (another state, reason or score band), a worker thread signs a
 * TRUST_VERDICT entry with the leader's node certificate and proposes it
 * through Raft.  Evaluating on beacon arrival is what bounds the time to
 * quarantine: one beacon period, plus a Raft commit.
 *
 * A verdict is advisory: it only stops clients asking a node for partials
 * (the module leaves quarantined holders out of its plans), and the node
 * itself, on applying its own quarantine, refuses partial requests (defence
 * in depth) and says why in its log.  Removing a node takes members' votes
 * (KM_CAT_EVICT), never one verdict.
 *
 * Locks: st->catalog_lock (apply) may be held when this file's lock is
 * taken, never the other way round; the beacon graph's lock may be held
 * when it is taken (kmd_trust_overlay() and kmd_trust_max_age(), called
 * by daemon/beacon.c with the graph lock held), never the other way
 * round: nothing here takes the graph lock.  The order is catalog_lock,
 * then the graph lock, then this one.
 *
 * WARNING: kmd_trust_stop() frees this state; it must run after the
 * server and Raft have stopped (request handlers and the apply path call
 * kmd_trust_refuse_partial, kmd_trust_note, kmd_trust_overlay and
 * kmd_trust_applied).  XXX daemon/main.c stops it before them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "daemon/kmd.h"
#include "pki/pki.h"
#include "proto/proto.h"
#include "raft/raft.h"
#include "store/catalog.h"
#include "trust/graph.h"
#include "trust/policy.h"
#include "trust/score.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

/* how long a proposed verdict may take to be applied before it is
 * proposed again (a Raft commit takes milliseconds; a lost one is retried) */
#define KMD_TRUST_RESEND_MS 5000u

/* A published verdict, from the catalog. */
typedef struct kmd_pub {
	char node[KM_NAME_MAX + 1];
	km_trust_state state;
	uint32_t score;
	char reason[KM_TRUST_REASON_MAX + 1];
	char by[KM_NAME_MAX + 1];
} kmd_pub;

/* The coordinator's running score of a node, and a verdict to propose. */
typedef struct kmd_scored {
	char node[KM_NAME_MAX + 1];
	km_trust_score s;
	bool pending; /* @want waits for the proposer */
	km_trust_verdict want;
	km_trust_verdict sent; /* the last one proposed, and when */
	uint64_t sent_ms;
} kmd_scored;

struct kmd_trust {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	pthread_t thread;
	bool started;
	km_posture policy; /* empty: everything allowed */
	bool have_policy;
	kmd_pub pub[KM_TRUST_MAX_NODES];
	size_t npub;
	kmd_scored sc[KM_TRUST_MAX_NODES];
	size_t nsc;
	bool leading; /* the scores above are ours, as the leader */
	/* this node's own standing */
	bool quarantined;
	char reason[KM_TRUST_REASON_MAX + 1];
	char by[KM_NAME_MAX + 1];
	uint8_t *cert_der; /* our node certificate, to sign verdicts */
	size_t cert_len;
};

static kmd_pub *
kmd_trust_pub(struct kmd_trust *t, const char *node, bool add)
{
	size_t i;

	for (i = 0; i < t->npub; i++) {
		if (strcmp(t->pub[i].node, node) == 0) {
			return &t->pub[i];
		}
	}
	if (!add || t->npub == KM_TRUST_MAX_NODES) {
		return NULL;
	}
	memset(&t->pub[t->npub], 0, sizeof(t->pub[0]));
	snprintf(t->pub[t->npub].node, sizeof(t->pub[0].node), "%s", node);
	t->pub[t->npub].state = KM_TRUST_UP;
	t->pub[t->npub].score = KM_TRUST_SCORE_MAX;
	return &t->pub[t->npub++];
}

/* A verdict about @v->node took effect here (lock held). */
static void
kmd_trust_publish(
    kmd_state *st, struct kmd_trust *t, const km_trust_verdict *v)
{
	kmd_pub *p = kmd_trust_pub(t, v->node, true);

	if (p == NULL) {
		return;
	}
	p->state = v->state;
	p->score = v->score;
	snprintf(p->reason, sizeof(p->reason), "%s", v->reason);
	snprintf(p->by, sizeof(p->by), "%s", v->coordinator);
	if (strcmp(v->node, st->cfg.name) != 0) {
		return;
	}
	if (v->state == KM_TRUST_QUARANTINED
	    && (!t->quarantined || strcmp(t->reason, v->reason) != 0)) {
		km_log_warn("KMD-QUARANTINED",
		    "this node is quarantined by the coordinator %s: %s",
		    v->coordinator, v->reason);
	} else if (v->state != KM_TRUST_QUARANTINED && t->quarantined) {
		km_log_info("KMD-QUARANTINE-LIFTED",
		    "this node is no longer quarantined (coordinator %s, "
		    "score %u)",
		    v->coordinator, v->score);
	}
	t->quarantined = v->state == KM_TRUST_QUARANTINED;
	snprintf(t->reason, sizeof(t->reason), "%s", v->reason);
	snprintf(t->by, sizeof(t->by), "%s", v->coordinator);
}

static void *kmd_trust_thread(void *arg);

int
kmd_trust_init(kmd_state *st, char *err, size_t errlen)
{
	struct kmd_trust *t;
	uint8_t *data = NULL, *der = NULL;
	size_t len, i;
	X509 *x = NULL;
	int n, r;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory for trust verdicts");
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cv, NULL);
	km_posture_init(&t->policy);
	st->trust = t;
	/* what the catalog already says: the policy and each member's
	 * last verdict (this node's own included) */
	if ((r = km_catalog_posture_get(st->store, &data, &len)) == 0) {
		if (km_posture_decode(data, len, &t->policy) == 0) {
			t->have_policy = true;
		}
		free(data);
		data = NULL;
	}
	for (i = 0; i <= st->cfg.npeers; i++) {
		const char *name
		    = i == 0 ? st->cfg.name : st->cfg.peers[i - 1].name;
		km_trust_verdict v;

		if (km_catalog_verdict_get(st->store, name, &data, &len)
		    != 0) {
			continue;
		}
		if (km_trust_verdict_decode(data, len, &v) == 0) {
			kmd_trust_publish(st, t, &v);
		}
		free(data);
		data = NULL;
	}
	if ((r = km_pki_load_cert(st->cfg.cert, &x)) != 0) {
		snprintf(err, errlen, "cannot read the certificate %s: %s",
		    st->cfg.cert, km_strerror(r));
		return r;
	}
	n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0 || (t->cert_der = malloc((size_t)n)) == NULL) {
		OPENSSL_free(der);
		snprintf(err, errlen, "cannot encode the node certificate");
		return KM_ERR_CRYPTO;
	}
	memcpy(t->cert_der, der, (size_t)n);
	t->cert_len = (size_t)n;
	OPENSSL_free(der);
	if (pthread_create(&t->thread, NULL, kmd_trust_thread, st) != 0) {
		snprintf(err, errlen, "cannot start the verdict thread");
		return KM_ERR_ALLOC;
	}
	t->started = true;
	return 0;
}

void
kmd_trust_halt(kmd_state *st)
{
	struct kmd_trust *t = st->trust;

	if (t == NULL) {
		return;
	}
	/* the caller has set st->stopping */
	pthread_mutex_lock(&t->lock);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->lock);
	if (t->started) {
		pthread_join(t->thread, NULL);
		t->started = false;
	}
}

void
kmd_trust_stop(kmd_state *st)
{
	struct kmd_trust *t = st->trust;

	if (t == NULL) {
		return;
	}
	kmd_trust_halt(st);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->lock);
	free(t->cert_der);
	free(t);
	st->trust = NULL;
}

void
kmd_trust_applied(
    kmd_state *st, uint32_t type, const uint8_t *payload, size_t len)
{
	struct kmd_trust *t = st->trust;
	km_trust_verdict v;
	km_posture p;

	if (t == NULL) {
		return;
	}
	if (type == KM_CAT_POSTURE_SET
	    && km_posture_decode(payload, len, &p) == 0) {
		pthread_mutex_lock(&t->lock);
		t->policy = p;
		t->have_policy = true;
		pthread_mutex_unlock(&t->lock);
		km_log_info("KMD-POSTURE",
		    "posture policy: %zu binaries, %zu versions, %zu token "
		    "models, secure boot %s, max beacon age %u ms, refresh "
		    "%u s",
		    p.nbinaries, p.nversions, p.nmodels,
		    p.secure_boot ? "required" : "any", p.max_age_ms,
		    p.refresh_s);
	} else if (type == KM_CAT_TRUST_VERDICT
	    && km_trust_verdict_decode(payload, len, &v) == 0) {
		pthread_mutex_lock(&t->lock);
		kmd_trust_publish(st, t, &v);
		pthread_mutex_unlock(&t->lock);
		km_log_info("KMD-TRUST-VERDICT",
		    "verdict of %s on %s: %s, score %u%s%s", v.coordinator,
		    v.node, km_trust_state_name(v.state), v.score,
		    v.reason[0] ? ": " : "", v.reason);
	}
}

int
kmd_trust_check_verdict(
    const km_identity *signer, const uint8_t *payload, size_t len)
{
	km_trust_verdict v;

	if (km_trust_verdict_decode(payload, len, &v) != 0) {
		return 0; /* malformed: consumed without effect by apply */
	}
	/* the signer speaks as itself, and does not lift its own
	 * quarantine (it may put itself into one) */
	if (strcmp(v.coordinator, signer->name) != 0
	    || (strcmp(v.node, signer->name) == 0
	        && v.state != KM_TRUST_QUARANTINED)) {
		return KM_ERR_AUTH;
	}
	return 0;
}

bool
kmd_trust_refuse_partial(kmd_state *st, char *msg, size_t msglen)
{
	struct kmd_trust *t = st->trust;
	bool q;

	if (t == NULL) {
		return false;
	}
	pthread_mutex_lock(&t->lock);
	q = t->quarantined;
	if (q) {
		snprintf(msg, msglen,
		    "%s is quarantined by the coordinator %s: %s",
		    st->cfg.name, t->by, t->reason);
	}
	pthread_mutex_unlock(&t->lock);
	return q;
}

uint32_t
kmd_trust_max_age(kmd_state *st)
{
	struct kmd_trust *t = st->trust;
	uint32_t age = st->cfg.beacon_max_age_ms;

	if (t != NULL) {
		pthread_mutex_lock(&t->lock);
		if (t->have_policy && t->policy.max_age_ms != 0) {
			age = t->policy.max_age_ms;
		}
		pthread_mutex_unlock(&t->lock);
	}
	return age;
}

void
kmd_trust_overlay(kmd_state *st, km_trust_graph *g)
{
	struct kmd_trust *t = st->trust;
	size_t i;

	if (t == NULL) {
		return;
	}
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < g->nnodes; i++) {
		km_trust_node *n = &g->nodes[i];
		const kmd_pub *p = kmd_trust_pub(t, n->name, false);

		/* an eviction (another verdict kind) is not undone here */
		if (n->verdict == KM_TRUST_EVICTED) {
			continue;
		}
		n->verdict = p != NULL ? p->state : KM_TRUST_UP;
		n->score = p != NULL ? p->score : KM_TRUST_SCORE_MAX;
		snprintf(n->reason, sizeof(n->reason), "%s",
		    p != NULL ? p->reason : "");
	}
	pthread_mutex_unlock(&t->lock);
}

/* Are we the Raft leader now? */
static bool
kmd_trust_leading(kmd_state *st)
{
	uint64_t id = 0;

	return st->raft != NULL && km_raft_leader(st->raft, &id, NULL, 0) == 0
	    && id == st->cfg.raft_id;
}

static kmd_scored *
kmd_trust_scored(struct kmd_trust *t, const char *node)
{
	const kmd_pub *p;
	kmd_scored *s;
	size_t i;

	for (i = 0; i < t->nsc; i++) {
		if (strcmp(t->sc[i].node, node) == 0) {
			return &t->sc[i];
		}
	}
	if (t->nsc == KM_TRUST_MAX_NODES) {
		return NULL;
	}
	s = &t->sc[t->nsc++];
	memset(s, 0, sizeof(*s));
	snprintf(s->node, sizeof(s->node), "%s", node);
	/* start from what is published: a new coordinator carries on
	 * where the last one stopped, a quarantine included */
	p = kmd_trust_pub(t, node, false);
	km_trust_score_init(&s->s, p ? p->state : KM_TRUST_UP,
	    p ? p->score : KM_TRUST_SCORE_MAX, p ? p->reason : "");
	return s;
}

/* Queues a verdict when the score says one is due (lock held). */
static void
kmd_trust_consider(kmd_state *st, struct kmd_trust *t, kmd_scored *s)
{
	const kmd_pub *p = kmd_trust_pub(t, s->node, false);
	km_trust_verdict *v = &s->want;

	if (!km_trust_score_due(&s->s, p ? p->state : KM_TRUST_UP,
	        p ? p->score : KM_TRUST_SCORE_MAX, p ? p->reason : "")) {
		s->pending = false;
		return;
	}
	/* a node may quarantine itself but not lift its own quarantine
	 * (kmd_trust_check_verdict): the next coordinator does that */
	if (!s->s.quarantined && strcmp(s->node, st->cfg.name) == 0) {
		s->pending = false;
		return;
	}
	memset(v, 0, sizeof(*v));
	snprintf(v->node, sizeof(v->node), "%s", s->node);
	snprintf(v->coordinator, sizeof(v->coordinator), "%s", st->cfg.name);
	v->state = s->s.quarantined ? KM_TRUST_QUARANTINED : KM_TRUST_UP;
	v->score = s->s.score;
	snprintf(v->reason, sizeof(v->reason), "%s",
	    s->s.quarantined ? s->s.reason : "");
	v->beacon_seq = s->s.beacon_seq;
	/* the same verdict proposed a moment ago is still on its way
	 * through the log: no second entry for it */
	if (s->sent_ms != 0 && km_now_ms() - s->sent_ms < KMD_TRUST_RESEND_MS
	    && s->sent.state == v->state && s->sent.score == v->score
	    && strcmp(s->sent.reason, v->reason) == 0) {
		return;
	}
	s->sent = *v;
	s->sent_ms = km_now_ms();
	s->pending = true;
	pthread_cond_broadcast(&t->cv);
}

void
kmd_trust_on_beacon(kmd_state *st, const km_beacon *bc)
{
	struct kmd_trust *t = st->trust;
	bool leading;
	kmd_scored *s;

	if (t == NULL) {
		return;
	}
	leading = kmd_trust_leading(st);
	pthread_mutex_lock(&t->lock);
	if (!leading) {
		/* scores are the coordinator's: a follower keeps none, and
		 * starts afresh from the published verdicts if it leads */
		t->leading = false;
		t->nsc = 0;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->leading = true;
	if ((s = kmd_trust_scored(t, bc->node)) != NULL) {
		(void)km_trust_score_beacon(&s->s, &t->policy, bc);
		kmd_trust_consider(st, t, s);
	}
	pthread_mutex_unlock(&t->lock);
}

int
kmd_trust_note(kmd_state *st, const char *node, int ev)
{
	struct kmd_trust *t = st->trust;
	kmd_scored *s;

	if (t == NULL || !km_name_valid(node)) {
		return KM_ERR_INVALID_ARG;
	}
	if (!kmd_trust_leading(st)) {
		return KM_ERR_NOT_LEADER;
	}
	pthread_mutex_lock(&t->lock);
	t->leading = true;
	if ((s = kmd_trust_scored(t, node)) == NULL) {
		pthread_mutex_unlock(&t->lock);
		return KM_ERR_TOO_LARGE;
	}
	(void)km_trust_score_note(&s->s, (km_trust_event)ev);
	kmd_trust_consider(st, t, s);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Signs @v as the next catalog entry and proposes it through Raft. */
static int
kmd_trust_propose(kmd_state *st, struct kmd_trust *t,
    const km_trust_verdict *v, char *msg, size_t msglen)
{
	km_catalog_entry e;
	km_buf payload, tbs, enc;
	uint64_t last = 0;
	int r, result = 0;

	memset(&e, 0, sizeof(e));
	km_buf_init(&payload);
	km_buf_init(&tbs);
	km_buf_init(&enc);
	snprintf(msg, msglen, "cannot sign the verdict");
	if ((r = km_trust_verdict_encode(v, &payload)) != 0
	    || (r = km_catalog_last_seq(st->store, &last, NULL)) != 0) {
		goto out;
	}
	e.seq = last + 1;
	e.type = KM_CAT_TRUST_VERDICT;
	e.payload = payload.data;
	e.payload_len = payload.len;
	e.signer = t->cert_der;
	e.signer_len = t->cert_len;
	if ((r = km_catalog_entry_tbs(&e, &tbs)) != 0
	    || (r = km_pki_sign(
	            st->idkey, tbs.data, tbs.len, &e.sig, &e.sig_len))
	        != 0
	    || (r = km_catalog_entry_encode(&e, &enc)) != 0) {
		goto out;
	}
	msg[0] = '\0';
	r = kmd_catalog_propose(st, enc.data, enc.len, &result, msg, msglen);
	if (r == 0 && result != 0) {
		snprintf(msg, msglen, "consumed without effect: %s",
		    km_strerror(result));
		r = result;
	}
out:
	free(e.sig);
	km_buf_free(&payload);
	km_buf_free(&tbs);
	km_buf_free(&enc);
	return r;
}

/* The proposer: one pending verdict at a time, off the beacon path. */
static void *
kmd_trust_thread(void *arg)
{
	kmd_state *st = arg;
	struct kmd_trust *t = st->trust;
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	km_trust_verdict v;
	size_t i;
	int r;

	pthread_mutex_lock(&t->lock);
	while (!st->stopping) {
		bool found = false;

		for (i = 0; i < t->nsc && !found; i++) {
			if (t->sc[i].pending) {
				v = t->sc[i].want;
				t->sc[i].pending = false;
				found = true;
			}
		}
		if (!found) {
			struct timespec ts;

			/* woken by a verdict or, at the latest, to notice
			 * that the daemon stops */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&t->cv, &t->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&t->lock);
		r = kmd_trust_propose(st, t, &v, msg, sizeof(msg));
		if (r == 0) {
			km_log_info("KMD-TRUST-PROPOSE",
			    "proposed verdict on %s: %s, score %u%s%s", v.node,
			    km_trust_state_name(v.state), v.score,
			    v.reason[0] ? ": " : "", v.reason);
		} else {
			/* the next beacon of that node proposes it again */
			km_log_warn_r(r, "KMD-TRUST-PROPOSE",
			    "verdict on %s not committed: %s", v.node, msg);
		}
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}
