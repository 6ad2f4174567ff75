/*
 * The module's trust and load view, refreshed off the hot path (issue #7
 * item 4, docs/pkcs11.md "The trust and load view").
 *
 * A background thread, started at the end of C_Initialize and joined in
 * C_Finalize, asks one connected node for its trust graph (a GRAPH
 * request, KM_MSG_GRAPH: the reply is a signed envelope that the
 * transport verified against the mesh CA, decoded strictly by
 * km_trust_view_decode) every [client] view_refresh_ms.  It prefers the
 * coordinator (the Raft leader, learnt from a STATUS reply), since it
 * writes the verdicts, although every node's reply carries them (they are
 * replicated through the catalog).  From the graph it keeps a few numbers
 * per mesh node: state, trust score, beacon load, queue depth, mean link
 * bandwidth, and the verdict's reason.  The hot path (quorum.c) copies
 * those numbers under trust_lock; it never waits for the network.
 *
 * The same thread probes: each period it times one GRAPH round trip to a
 * holder that the quorum has stopped asking because its estimate was
 * high.  When the probe is far faster than the estimate, the estimate is
 * forgotten, so the holder is asked (and measured) at the next operation:
 * a node whose delay went away is back within a period or two instead of
 * waiting for its estimate to age.
 *
 * Fork: threads do not survive fork().  A child that calls C_Initialize
 * starts its own refresher, which reaches the mesh through the relay like
 * everything else in the child (core.c); the parent's thread state is
 * abandoned, never joined (it belongs to the parent).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mesh/admin.h"
#include "mesh/rpc.h"
#include "mesh/view.h"
#include "net/net.h"
#include "pkcs11/p11.h"
#include "pkcs11/rank.h"
#include "trust/graph.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

/* a GRAPH or STATUS call from the refresher never waits longer */
#define KM_P11_VIEW_CALL_MS 1000
/* the coordinator is asked for again after this many refreshes */
#define KM_P11_VIEW_LEADER_EVERY 15u
/* the view is used while younger than this many refresh periods (and
 * at least KM_P11_VIEW_MAX_AGE_MIN_MS) */
#define KM_P11_VIEW_MAX_PERIODS    5u
#define KM_P11_VIEW_MAX_AGE_MIN_MS 10000u
/* a probe resets an estimate above 2 x probe + this */
#define KM_P11_PROBE_SLACK_MS 10.0

typedef struct km_p11_refresher {
	pid_t owner; /* the process whose thread this is; 0: none */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop;
	uint32_t period_ms;
	long coord; /* mesh index of the coordinator, -1 unknown */
	uint32_t rounds;
	size_t next_probe; /* round-robin start among stale holders */
	bool failing;      /* the last refresh failed (log transitions) */
	uint32_t misses;   /* refreshes failed in a row */
	km_trust_view *tv; /* decode buffer, the thread's own */
} km_p11_refresher;

static km_p11_refresher km_p11_rf;

/* C_Finalize is waiting: make no further call (each may take 1 s). */
static bool
km_p11_rf_stopping(void)
{
	bool stop;

	pthread_mutex_lock(&km_p11_rf.lock);
	stop = km_p11_rf.stop;
	pthread_mutex_unlock(&km_p11_rf.lock);
	return stop;
}

static uint64_t
km_p11_mono_ms(void)
{
	return km_mono_ns() / 1000000u;
}

/*
 * One GRAPH call to node @i, decoded into @tv; @ms receives the round
 * trip in ms.
 */
static int
km_p11_graph_call(size_t i, km_trust_view *tv, double *ms)
{
	km_net_client *c = km_mesh_client(km_p11.mesh, i);
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	km_buf req, rep;
	uint64_t t0;
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	if ((r = km_rpc_request(&req, KM_MSG_GRAPH, NULL, 0, NULL)) != 0) {
		goto out;
	}
	t0 = km_mono_ns();
	if ((r = km_rpc_call(
	         c, &req, KM_P11_VIEW_CALL_MS, &rep, msg, sizeof(msg)))
	    != 0) {
		km_debug(KM_DBG_P11, "graph from %s: %s",
		    km_mesh_name(km_p11.mesh, i), msg);
		goto out;
	}
	*ms = (double)(km_mono_ns() - t0) / 1e6;
	r = km_trust_view_decode(&rep, tv);
out:
	km_buf_free(&rep);
	km_buf_free(&req);
	return r;
}

/* The mean bandwidth of the links the view reports for @name, 0 if none. */
static uint32_t
km_p11_view_bw(const km_trust_view *tv, const km_trust_view_node *n)
{
	uint64_t sum = 0, count = 0;
	size_t i, k;

	for (i = 0; i < tv->nnodes; i++) {
		const km_trust_view_node *o = &tv->nodes[i];

		if (!o->have || o->state != KM_TRUST_UP) {
			continue;
		}
		for (k = 0; k < o->beacon.npeers; k++) {
			const km_beacon_peer *p = &o->beacon.peers[k];

			/* its own links out, and the others' links to it */
			if (p->bw_kbps == 0
			    || (o != n && strcmp(p->name, n->name) != 0)) {
				continue;
			}
			sum += p->bw_kbps;
			count++;
		}
	}
	return count > 0 ? (uint32_t)(sum / count) : 0;
}

/*
 * Who is quarantined or evicted, and the coordinator's score, come from
 * the client's own signed catalog view (src/mesh/view.c checks every
 * TRUST_VERDICT and EVICT entry's signatures and authority), never from
 * the one node that answered the graph: a compromised node must not be
 * able to make this client stop asking honest holders.  The graph gives
 * only what it observes itself (up or unreachable) and the beacons'
 * health (load, queue, bandwidth).
 */
static void
km_p11_view_verdicts(km_p11_node_view *nv, size_t n)
{
	const km_view_verdict *vd;
	const char *name;
	size_t i;

	pthread_mutex_lock(&km_p11.view_lock);
	for (i = 0; i < n && i < KM_MESH_MAX_NODES; i++) {
		name = km_mesh_name(km_p11.mesh, i);
		if (nv[i].state != KM_TRUST_UNREACHABLE) {
			nv[i].state = KM_TRUST_UP;
		}
		nv[i].score = KM_TRUST_SCORE_MAX;
		nv[i].reason[0] = '\0';
		if (km_p11.view == NULL) {
			continue;
		}
		if (km_view_evicted(km_p11.view, name)) {
			nv[i].have = true;
			nv[i].state = KM_TRUST_EVICTED;
			nv[i].score = 0;
			snprintf(nv[i].reason, sizeof(nv[i].reason),
			    "evicted (catalog)");
		} else if ((vd = km_view_verdict_find(km_p11.view, name))
		    != NULL) {
			nv[i].score = vd->score > KM_TRUST_SCORE_MAX
			    ? KM_TRUST_SCORE_MAX
			    : vd->score;
			if (vd->quarantined) {
				nv[i].have = true;
				nv[i].state = KM_TRUST_QUARANTINED;
				snprintf(nv[i].reason, sizeof(nv[i].reason),
				    "%s", vd->reason);
			}
		}
	}
	pthread_mutex_unlock(&km_p11.view_lock);
}

/* Keeps the numbers of @tv, per mesh node, for the hot path. */
static void
km_p11_view_store(const km_trust_view *tv, size_t from)
{
	km_p11_node_view nv[KM_MESH_MAX_NODES];
	size_t i, n = km_mesh_count(km_p11.mesh);
	long j;

	memset(nv, 0, sizeof(nv));
	for (i = 0; i < tv->nnodes; i++) {
		const km_trust_view_node *t = &tv->nodes[i];

		j = km_mesh_find(km_p11.mesh, t->name);
		if (j < 0 || (size_t)j >= n) {
			continue; /* not in our config: we cannot ask it */
		}
		nv[j].have = true;
		nv[j].state = t->state;
		nv[j].score = t->score > KM_TRUST_SCORE_MAX
		    ? KM_TRUST_SCORE_MAX
		    : t->score;
		if (t->have) {
			nv[j].load_milli = t->beacon.load_milli;
			nv[j].queue_depth = t->beacon.queue_depth;
		}
		nv[j].bw_kbps = km_p11_view_bw(tv, t);
		snprintf(nv[j].reason, sizeof(nv[j].reason), "%s", t->reason);
	}
	km_p11_view_verdicts(nv, n);
	pthread_mutex_lock(&km_p11.trust_lock);
	memcpy(km_p11.trust, nv, sizeof(nv));
	km_p11.trust_at_ms = km_p11_mono_ms();
	snprintf(km_p11.trust_from, sizeof(km_p11.trust_from), "%s",
	    km_mesh_name(km_p11.mesh, from));
	pthread_mutex_unlock(&km_p11.trust_lock);
}

/*
 * A probe of node @i took @ms: when the quorum has passed it over for two
 * periods and its estimate is far above that, forget the estimate so the
 * next operation asks it (and measures it again).  A holder in use is
 * measured by the operations themselves.
 */
static void
km_p11_probe_result(size_t i, double ms)
{
	km_p11_node_stat *st = &km_p11.stat[i];
	uint64_t idle = 2u * (uint64_t)km_p11_rf.period_ms;

	pthread_mutex_lock(&km_p11.stat_lock);
	if (km_now_ms() >= st->rtt_at_ms + idle
	    && st->rtt_ms > 2.0 * ms + KM_P11_PROBE_SLACK_MS) {
		km_debug(KM_DBG_P11,
		    "probe of %s: %.1f ms against an estimate of %.1f ms: "
		    "measuring it again",
		    km_mesh_name(km_p11.mesh, i), ms, st->rtt_ms);
		st->rtt_ms = 0;
	}
	pthread_mutex_unlock(&km_p11.stat_lock);
}

/*
 * The holder to probe: connected, an estimate, but not measured for two
 * periods (the quorum passes it over), and not @skip; round robin.
 */
static long
km_p11_probe_pick(size_t skip)
{
	size_t n = km_mesh_count(km_p11.mesh), i, j;
	uint64_t now = km_now_ms(), idle = 2u * (uint64_t)km_p11_rf.period_ms;
	long pick = -1;

	pthread_mutex_lock(&km_p11.stat_lock);
	for (j = 0; j < n && pick < 0; j++) {
		i = (km_p11_rf.next_probe + j) % n;
		if (i == skip || !(km_p11.stat[i].rtt_ms > 0)
		    || now < km_p11.stat[i].rtt_at_ms + idle) {
			continue;
		}
		pick = (long)i;
	}
	pthread_mutex_unlock(&km_p11.stat_lock);
	if (pick >= 0) {
		km_p11_rf.next_probe = (size_t)pick + 1;
		if (!km_net_client_connected(
		        km_mesh_client(km_p11.mesh, (size_t)pick))) {
			pick = -1;
		}
	}
	return pick;
}

/* The coordinator, as the first connected node that knows it says. */
static void
km_p11_learn_coordinator(void)
{
	km_node_status st;
	size_t i, n = km_mesh_count(km_p11.mesh);

	for (i = 0; i < n && !km_p11_rf_stopping(); i++) {
		if (!km_net_client_connected(km_mesh_client(km_p11.mesh, i))) {
			continue;
		}
		if (km_mesh_status(
		        km_p11.mesh, i, KM_P11_VIEW_CALL_MS, &st, NULL, NULL)
		        != 0
		    || st.leader[0] == '\0') {
			continue;
		}
		km_p11_rf.coord = km_mesh_find(km_p11.mesh, st.leader);
		return;
	}
	km_p11_rf.coord = -1;
}

/* One refresh: the graph from the coordinator (else any node), a probe. */
static void
km_p11_refresh_once(void)
{
	size_t n = km_mesh_count(km_p11.mesh), i, from = n;
	long c, p;
	double ms = 0;
	int r = KM_ERR_QUORUM;

	/* the signed catalog first: verdicts and evictions come from it
	 * (km_p11_view_verdicts); at most once a second, as searches do */
	(void)km_p11_view_sync(false);
	c = km_p11_rf.coord;
	if (c < 0 || km_p11_rf.rounds % KM_P11_VIEW_LEADER_EVERY == 0
	    || !km_net_client_connected(
	        km_mesh_client(km_p11.mesh, (size_t)c))) {
		km_p11_learn_coordinator();
		c = km_p11_rf.coord;
	}
	km_p11_rf.rounds++;
	if (c >= 0
	    && km_net_client_connected(km_mesh_client(km_p11.mesh, (size_t)c))
	    && (r = km_p11_graph_call((size_t)c, km_p11_rf.tv, &ms)) == 0) {
		from = (size_t)c;
	} else {
		km_p11_rf.coord = -1; /* ask who it is next time */
	}
	for (i = 0; r != 0 && i < n && !km_p11_rf_stopping(); i++) {
		if ((long)i == c
		    || !km_net_client_connected(
		        km_mesh_client(km_p11.mesh, i))) {
			continue;
		}
		if ((r = km_p11_graph_call(i, km_p11_rf.tv, &ms)) == 0) {
			from = i;
		}
	}
	if (r == 0) {
		km_p11_view_store(km_p11_rf.tv, from);
		km_debug(KM_DBG_P11, "trust view from %s: %zu nodes, %.1f ms",
		    km_mesh_name(km_p11.mesh, from), km_p11_rf.tv->nnodes, ms);
		km_p11_probe_result(from, ms);
		if (km_p11_rf.failing) {
			km_log_info("P11-VIEW", "trust view from %s again",
			    km_mesh_name(km_p11.mesh, from));
		}
		km_p11_rf.failing = false;
		km_p11_rf.misses = 0;
	} else if (!km_p11_rf.failing && ++km_p11_rf.misses >= 3) {
		/* the view goes stale and stops counting; the quorum
		 * ranks by its own measurements meanwhile (three misses:
		 * not the connections still coming up at C_Initialize) */
		km_log_warn_r(
		    r, "P11-VIEW", "no node answered a trust graph request");
		km_p11_rf.failing = true;
	}
	if (!km_p11_rf_stopping() && (p = km_p11_probe_pick(from)) >= 0
	    && km_p11_graph_call((size_t)p, km_p11_rf.tv, &ms) == 0) {
		km_p11_probe_result((size_t)p, ms);
	}
}

static void *
km_p11_refresh_main(void *arg)
{
	struct timespec ts;
	uint64_t ns;

	(void)arg;
	pthread_mutex_lock(&km_p11_rf.lock);
	while (!km_p11_rf.stop) {
		pthread_mutex_unlock(&km_p11_rf.lock);
		/* an application may exit without C_Finalize: no OpenSSL
		 * or nng call once exit() has begun (net.h) */
		if (!km_net_work_enter()) {
			return NULL;
		}
		km_p11_refresh_once();
		km_net_work_leave();
		pthread_mutex_lock(&km_p11_rf.lock);
		if (km_p11_rf.stop) {
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = (uint64_t)ts.tv_nsec
		    + (uint64_t)km_p11_rf.period_ms * 1000000u;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		while (!km_p11_rf.stop
		    && pthread_cond_timedwait(
		           &km_p11_rf.cv, &km_p11_rf.lock, &ts)
		        != ETIMEDOUT) {
		}
	}
	pthread_mutex_unlock(&km_p11_rf.lock);
	return NULL;
}

int
km_p11_refresh_start(void)
{
	int e;

	/* a forked child: the parent's thread is not here, its lock state
	 * is not ours (see the top of this file) */
	memset(&km_p11_rf, 0, sizeof(km_p11_rf));
	pthread_mutex_init(&km_p11.trust_lock, NULL);
	memset(km_p11.trust, 0, sizeof(km_p11.trust));
	km_p11.trust_at_ms = 0;
	km_p11.trust_from[0] = '\0';
	if (km_p11.conf.view_refresh_ms == 0) {
		return 0; /* off: ranking by own measurements only */
	}
	if ((km_p11_rf.tv = calloc(1, sizeof(*km_p11_rf.tv))) == NULL) {
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&km_p11_rf.lock, NULL);
	pthread_cond_init(&km_p11_rf.cv, NULL);
	km_p11_rf.period_ms = km_p11.conf.view_refresh_ms;
	km_p11_rf.coord = -1;
	if ((e = pthread_create(
	         &km_p11_rf.thread, NULL, km_p11_refresh_main, NULL))
	    != 0) {
		km_log_warn("P11-VIEW", "cannot start the view refresher: %s",
		    strerror(e));
		pthread_cond_destroy(&km_p11_rf.cv);
		pthread_mutex_destroy(&km_p11_rf.lock);
		free(km_p11_rf.tv);
		km_p11_rf.tv = NULL;
		return KM_ERR_INTERNAL;
	}
	km_p11_rf.owner = getpid();
	return 0;
}

void
km_p11_refresh_stop(void)
{
	if (km_p11_rf.owner == getpid()) {
		pthread_mutex_lock(&km_p11_rf.lock);
		km_p11_rf.stop = true;
		pthread_cond_broadcast(&km_p11_rf.cv);
		pthread_mutex_unlock(&km_p11_rf.lock);
		/* at most one call in flight: KM_P11_VIEW_CALL_MS */
		pthread_join(km_p11_rf.thread, NULL);
		pthread_cond_destroy(&km_p11_rf.cv);
		pthread_mutex_destroy(&km_p11_rf.lock);
		free(km_p11_rf.tv);
	}
	/* else nothing of ours (not started, or the parent's) */
	memset(&km_p11_rf, 0, sizeof(km_p11_rf));
	pthread_mutex_destroy(&km_p11.trust_lock);
}

void
km_p11_view_fill(const size_t *nodes, size_t n, km_p11_rank_in *in)
{
	uint64_t now = km_p11_mono_ms(), max_age;
	bool fresh;
	size_t i;

	max_age
	    = (uint64_t)KM_P11_VIEW_MAX_PERIODS * km_p11.conf.view_refresh_ms;
	if (max_age < KM_P11_VIEW_MAX_AGE_MIN_MS) {
		max_age = KM_P11_VIEW_MAX_AGE_MIN_MS;
	}
	pthread_mutex_lock(&km_p11.trust_lock);
	fresh = km_p11.trust_at_ms != 0 && now <= km_p11.trust_at_ms + max_age;
	for (i = 0; i < n; i++) {
		const km_p11_node_view *v = &km_p11.trust[nodes[i]];

		in[i].have_view = fresh && v->have;
		in[i].state = v->state;
		in[i].score = v->score;
		in[i].load_milli = v->load_milli;
		in[i].queue_depth = v->queue_depth;
		in[i].bw_kbps = v->bw_kbps;
	}
	pthread_mutex_unlock(&km_p11.trust_lock);
}

void
km_p11_view_reason(size_t node, char *out, size_t outlen)
{
	pthread_mutex_lock(&km_p11.trust_lock);
	snprintf(out, outlen, "%s%s%s (view from %s)",
	    km_trust_state_name(km_p11.trust[node].state),
	    km_p11.trust[node].reason[0] != '\0' ? ": " : "",
	    km_p11.trust[node].reason, km_p11.trust_from);
	pthread_mutex_unlock(&km_p11.trust_lock);
}
