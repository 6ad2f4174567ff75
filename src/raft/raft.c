/*
 * km_raft: one libraft server on its own libuv loop and thread.
 *
 * libraft is single-threaded: every raft_* call must come from the loop.
 * Other threads talk to it through one uv_async_t: km_raft_propose() queues
 * a request under r->mu and wakes the loop, which calls raft_apply() and,
 * when the entry is applied (or refused), signals r->cond.  What other
 * threads may read about the server (leader, state, counters) is copied
 * into r->info under r->mu by the loop, every KM_RAFT_TICK_MS and after
 * each entry.
 *
 * Raft itself is Ongaro & Ousterhout, "In Search of an Understandable
 * Consensus Algorithm", USENIX ATC 2014: the leader is elected (§5.2),
 * appends and replicates (§5.3), and an entry is applied only once a
 * majority stored it; the snapshots of §7 keep the log bounded.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "pki/pki.h"
#include "raft/raft.h"
#include "raft/transport.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"

#define KM_RAFT_TICK_MS   25
#define KM_RAFT_ENTRY_MAX (1u << 20)
/* Snapshot: byte[8] marker and version, uint64 length, the application's
 * bytes, zeros up to a multiple of 8 (docs/raft.md). */
static const uint8_t km_raft_snap_magic[8]
    = { 'K', 'M', 'S', 'N', 'A', 'P', 0, 1 };
#define KM_RAFT_SNAP_HDR 16

/*
 * Each entry goes into the log framed (docs/raft.md):
 *   byte[4]  "KME" 1     format marker and version
 *   uint32   length of the application's bytes
 *   byte[]   the application's bytes
 *   byte[]   zeros up to a multiple of 8
 * libraft 0.15's disk format assumes 8-byte multiples: entries of other
 * lengths came back shifted after a restart (found by test-raft).
 */
static const uint8_t km_raft_entry_magic[4] = { 'K', 'M', 'E', 1 };
#define KM_RAFT_ENTRY_HDR 8

typedef struct km_raft_prop km_raft_prop;

static void km_raft_switch_store(km_raft *r, bool stopping);
static void km_raft_start_remove(km_raft *r, bool stopping);
static void km_raft_apply_suspend(km_raft *r, bool stopping);

struct km_raft_prop {
	struct raft_apply req;
	km_raft *r;
	km_raft_prop *next;
	uint8_t *data;
	size_t len;
	int refs; /* the caller's and the loop's, under r->mu */
	bool done;
	int rc;
};

struct km_raft {
	/* Copied configuration. */
	km_raft_config cfg;
	char *address, *state_dir, *ca_pem, *crl_pem, *cert_pem, *key_pem;
	km_raft_peer *peers;
	km_raft_member *members;
	size_t n_peers;

	pthread_t thread;
	pthread_mutex_t crl_mu; /* serialises km_raft_set_crl() */
	pthread_mutex_t mu;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */

	/* Under mu. */
	bool started;
	int start_rc;
	bool stopping;
	km_raft_prop *queue;
	km_raft_info info;
	X509_STORE *new_store; /* km_raft_set_crl() to the loop */
	int store_rc;
	bool store_done;
	/* km_raft_remove_voter() to the loop, one at a time (crl_mu) */
	uint64_t remove_id;   /* 0: none asked */
	bool remove_started;  /* raft_remove() accepted it */
	bool remove_done;
	int remove_rc;
	struct raft_change change;
	/* km_raft_suspend_peer() to the loop, one at a time (crl_mu) */
	char suspend_name[KM_NAME_MAX + 1]; /* "": none asked */
	uint64_t suspend_until_ns;          /* 0: lift */
	bool suspend_done;
	int suspend_rc;

	/* Loop thread only. */
	uv_loop_t loop;
	uv_async_t async;
	uv_timer_t tick;
	struct raft_uv_transport transport;
	bool transport_init;
	struct raft_io io;
	bool io_init;
	struct raft_fsm fsm;
	struct raft raft;
	bool raft_init;
	bool closing;
	uint64_t applied;
	uint64_t restores;
};

/* libraft's codes, converted where they come back (STYLE.md). */
static int
km_raft_err(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_NOMEM:
		return KM_ERR_ALLOC;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
		return KM_ERR_NOT_LEADER;
	case RAFT_SHUTDOWN:
	case RAFT_CANCELED:
		return KM_ERR_CLOSED;
	case RAFT_NOCONNECTION:
		return KM_ERR_CONN;
	case RAFT_TOOBIG:
		return KM_ERR_TOO_LARGE;
	case RAFT_NOTFOUND:
		return KM_ERR_NOT_FOUND;
	case RAFT_BUSY:
	case RAFT_CANTCHANGE:
		return KM_ERR_BUSY;
	case RAFT_MALFORMED:
	case RAFT_CORRUPT:
		return KM_ERR_BAD_FORMAT;
	case RAFT_IOERR:
	case RAFT_NOSPACE:
	case RAFT_UNAUTHORIZED:
		return KM_ERR_IO;
	case RAFT_BADID:
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
	case RAFT_BADROLE:
	case RAFT_INVALID:
	case RAFT_NAMETOOLONG:
		return KM_ERR_INVALID_ARG;
	default:
		return KM_ERR_INTERNAL;
	}
}

static const km_raft_peer *
km_raft_peer_find(const km_raft *r, uint64_t id)
{
	size_t i;

	for (i = 0; i < r->n_peers; i++) {
		if (r->peers[i].id == id) {
			return &r->peers[i];
		}
	}
	return NULL;
}

/* ---- state for other threads (loop thread) ----------------------------- */

static void
km_raft_refresh(km_raft *r)
{
	const km_raft_peer *p;
	km_raft_tls_stats st;
	const char *addr = NULL;
	raft_id id = 0;
	int state;

	if (r->closing) {
		return;
	}
	raft_leader(&r->raft, &id, &addr);
	state = raft_state(&r->raft);
	km_raft_transport_stats(&r->transport, &st);
	pthread_mutex_lock(&r->mu);
	switch (state) {
	case RAFT_FOLLOWER:
		r->info.state = KM_RAFT_FOLLOWER;
		break;
	case RAFT_CANDIDATE:
		r->info.state = KM_RAFT_CANDIDATE;
		break;
	case RAFT_LEADER:
		r->info.state = KM_RAFT_LEADER;
		break;
	default:
		r->info.state = KM_RAFT_UNAVAILABLE;
		break;
	}
	r->info.leader_id = id;
	p = id != 0 ? km_raft_peer_find(r, id) : NULL;
	snprintf(r->info.leader_name, sizeof(r->info.leader_name), "%s",
	    p != NULL ? p->name : "");
	snprintf(r->info.leader_address, sizeof(r->info.leader_address), "%s",
	    addr != NULL ? addr : "");
	r->info.last_applied = raft_last_applied(&r->raft);
	r->info.applied = r->applied;
	r->info.restores = r->restores;
	r->info.tls_ok = st.handshakes_ok;
	r->info.tls_refused = st.refused;
	r->info.tls_last_refusal = st.last_refusal;
	pthread_mutex_unlock(&r->mu);
}

static void
km_raft_tick(uv_timer_t *t)
{
	km_raft_refresh(t->data);
}

/* ---- the state machine (loop thread) ----------------------------------- */

static int
km_raft_fsm_apply(
    struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	km_raft *r = fsm->data;
	const uint8_t *p = buf->base;
	uint32_t len = 0;
	size_t i;
	int rc;

	for (i = 0; i < 4 && buf->len >= KM_RAFT_ENTRY_HDR; i++) {
		len = len << 8 | p[4 + i];
	}
	if (buf->len < KM_RAFT_ENTRY_HDR
	    || memcmp(p, km_raft_entry_magic, sizeof(km_raft_entry_magic)) != 0
	    || len > buf->len - KM_RAFT_ENTRY_HDR) {
		/* Not ours: refused alike on every node. */
		km_log_error(
		    "KM-RAFT-ENTRY", "malformed entry of %zu bytes", buf->len);
		rc = KM_ERR_BAD_FORMAT;
	} else {
		rc = r->cfg.apply(r->cfg.arg, p + KM_RAFT_ENTRY_HDR, len);
	}
	/*
	 * WARNING: an application refusal is not a Raft failure.  Returning
	 * it to libraft would stop the log on this node only; the entry is
	 * committed everywhere, so every node refuses it alike and goes on.
	 */
	*result = (void *)(intptr_t)rc;
	r->applied++;
	km_raft_refresh(r);
	return 0;
}

static int
km_raft_fsm_snapshot(
    struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	static const uint8_t zero[8];
	km_raft *r = fsm->data;
	struct raft_buffer *v = NULL;
	uint8_t *data = NULL;
	size_t len = 0, app, i;
	km_buf b;
	int rv = RAFT_NOMEM;

	/* Header: marker, then the application's length (filled below). */
	km_buf_init(&b);
	km_buf_put_raw(&b, km_raft_snap_magic, sizeof(km_raft_snap_magic));
	km_buf_put_u64(&b, 0);
	if (r->cfg.snapshot(r->cfg.arg, &b) != 0 || km_buf_failed(&b)) {
		km_log_error(
		    "KM-RAFT-SNAPSHOT", "application snapshot failed");
		rv = RAFT_IOERR;
		goto out;
	}
	app = b.len - KM_RAFT_SNAP_HDR;
	for (i = 0; i < 8; i++) {
		b.data[8 + i] = (uint8_t)((uint64_t)app >> (56 - 8 * i));
	}
	/* Padded to 8 bytes, as libraft's disk format wants. */
	if (km_buf_put_raw(&b, zero, (8 - b.len % 8) % 8) != 0
	    || (v = raft_malloc(sizeof(*v))) == NULL
	    || km_buf_steal(&b, &data, &len) != 0) {
		goto out;
	}
	v->base = data;
	v->len = len;
	data = NULL;
	*bufs = v;
	*n_bufs = 1;
	v = NULL;
	rv = 0;
out:
	raft_free(v);
	free(data);
	km_buf_free(&b);
	return rv;
}

/* libraft wrote (or failed to write) the snapshot: the buffers are ours. */
static int
km_raft_fsm_snapshot_finalize(
    struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	unsigned i;

	(void)fsm;
	for (i = 0; *bufs != NULL && i < *n_bufs; i++) {
		free((*bufs)[i].base);
	}
	raft_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int
km_raft_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	km_raft *r = fsm->data;
	const uint8_t *p = buf->base;
	uint64_t app = 0;
	size_t i;
	int rc;

	for (i = 0; i < 8 && buf->len >= KM_RAFT_SNAP_HDR; i++) {
		app = app << 8 | p[8 + i];
	}
	if (buf->len < KM_RAFT_SNAP_HDR
	    || memcmp(p, km_raft_snap_magic, sizeof(km_raft_snap_magic)) != 0
	    || app > buf->len - KM_RAFT_SNAP_HDR) {
		km_log_error("KM-RAFT-RESTORE", "snapshot of unknown format");
		return RAFT_MALFORMED;
	}
	if ((rc = r->cfg.restore(
	         r->cfg.arg, p + KM_RAFT_SNAP_HDR, (size_t)app))
	    != 0) {
		km_log_error_r(rc, "KM-RAFT-RESTORE", "restore refused");
		return RAFT_MALFORMED;
	}
	/* On success the buffer is the state machine's to free. */
	raft_free(buf->base);
	r->restores++;
	return 0;
}

/* ---- proposals --------------------------------------------------------- */

static void
km_raft_prop_unref_locked(km_raft_prop *p)
{
	if (--p->refs == 0) {
		free(p->data);
		free(p);
	}
}

static void
km_raft_prop_done(km_raft *r, km_raft_prop *p, int rc)
{
	pthread_mutex_lock(&r->mu);
	p->rc = rc;
	p->done = true;
	pthread_cond_broadcast(&r->cond);
	km_raft_prop_unref_locked(p);
	pthread_mutex_unlock(&r->mu);
}

static void
km_raft_applied(struct raft_apply *req, int status, void *result)
{
	km_raft_prop *p = req->data;

	km_raft_prop_done(p->r, p,
	    status == 0 ? (int)(intptr_t)result : km_raft_err(status));
}

static void
km_raft_submit(km_raft *r, km_raft_prop *p)
{
	struct raft_buffer buf;
	uint8_t *q;
	size_t i;
	int rv;

	if (r->closing) {
		km_raft_prop_done(r, p, KM_ERR_CLOSED);
		return;
	}
	if (raft_state(&r->raft) != RAFT_LEADER) {
		km_raft_prop_done(r, p, KM_ERR_NOT_LEADER);
		return;
	}
	buf.len = (KM_RAFT_ENTRY_HDR + p->len + 7) & ~(size_t)7;
	if ((buf.base = raft_calloc(1, buf.len)) == NULL) {
		km_raft_prop_done(r, p, KM_ERR_ALLOC);
		return;
	}
	q = buf.base;
	memcpy(q, km_raft_entry_magic, sizeof(km_raft_entry_magic));
	for (i = 0; i < 4; i++) {
		q[4 + i] = (uint8_t)(p->len >> (24 - 8 * i));
	}
	memcpy(q + KM_RAFT_ENTRY_HDR, p->data, p->len);
	p->req.data = p;
	if ((rv = raft_apply(&r->raft, &p->req, &buf, 1, km_raft_applied))
	    != 0) {
		raft_free(buf.base);
		km_raft_prop_done(r, p, km_raft_err(rv));
	}
}

/* ---- loop life cycle --------------------------------------------------- */

static void
km_raft_closed(struct raft *raft)
{
	km_raft *r = raft->data;

	uv_close((uv_handle_t *)&r->tick, NULL);
	uv_close((uv_handle_t *)&r->async, NULL);
}

static void
km_raft_wake(uv_async_t *a)
{
	km_raft *r = a->data;
	km_raft_prop *q, *p, *rev = NULL;
	bool stopping;

	pthread_mutex_lock(&r->mu);
	q = r->queue;
	r->queue = NULL;
	stopping = r->stopping;
	pthread_mutex_unlock(&r->mu);
	/* The queue is last-in first; submit in the callers' order. */
	while (q != NULL) {
		p = q;
		q = q->next;
		p->next = rev;
		rev = p;
	}
	while ((p = rev) != NULL) {
		rev = p->next;
		if (stopping) {
			km_raft_prop_done(r, p, KM_ERR_CLOSED);
		} else {
			km_raft_submit(r, p);
		}
	}
	km_raft_switch_store(r, stopping);
	km_raft_start_remove(r, stopping);
	km_raft_apply_suspend(r, stopping);
	if (stopping && !r->closing) {
		km_raft_refresh(r);
		r->closing = true;
		raft_close(&r->raft, km_raft_closed);
	}
}

static void
km_raft_remove_done(struct raft_change *req, int status)
{
	km_raft *r = req->data;

	pthread_mutex_lock(&r->mu);
	r->remove_rc = km_raft_err(status);
	r->remove_done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* A removal from km_raft_remove_voter(): ask libraft, on the loop. */
static void
km_raft_start_remove(km_raft *r, bool stopping)
{
	uint64_t id;
	unsigned i;
	bool found = false;
	int rc;

	pthread_mutex_lock(&r->mu);
	id = r->remove_started || r->remove_done ? 0 : r->remove_id;
	pthread_mutex_unlock(&r->mu);
	if (id == 0) {
		return;
	}
	for (i = 0; i < r->raft.configuration.n; i++) {
		found = found || r->raft.configuration.servers[i].id == id;
	}
	if (stopping || r->closing) {
		rc = KM_ERR_CLOSED;
	} else if (raft_state(&r->raft) != RAFT_LEADER) {
		rc = KM_ERR_NOT_LEADER;
	} else if (!found) {
		rc = KM_ERR_NOT_FOUND;
	} else {
		r->change.data = r;
		rc = km_raft_err(
		    raft_remove(&r->raft, &r->change, id, km_raft_remove_done));
		if (rc == 0) {
			pthread_mutex_lock(&r->mu);
			r->remove_started = true;
			pthread_mutex_unlock(&r->mu);
			return;
		}
	}
	pthread_mutex_lock(&r->mu);
	r->remove_rc = rc;
	r->remove_done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* A suspension from km_raft_suspend_peer(): hand it to the transport. */
static void
km_raft_apply_suspend(km_raft *r, bool stopping)
{
	char name[KM_NAME_MAX + 1];
	uint64_t until;

	pthread_mutex_lock(&r->mu);
	snprintf(name, sizeof(name), "%s", r->suspend_name);
	until = r->suspend_until_ns;
	r->suspend_name[0] = '\0';
	pthread_mutex_unlock(&r->mu);
	if (name[0] == '\0') {
		return;
	}
	if (!stopping && !r->closing) {
		km_raft_transport_suspend(&r->transport, name, until);
	}
	pthread_mutex_lock(&r->mu);
	r->suspend_rc = stopping || r->closing ? KM_ERR_CLOSED : 0;
	r->suspend_done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* A CRL from km_raft_set_crl(): hand its store to the transport. */
static void
km_raft_switch_store(km_raft *r, bool stopping)
{
	X509_STORE *store;
	int rc;

	pthread_mutex_lock(&r->mu);
	store = r->new_store;
	r->new_store = NULL;
	pthread_mutex_unlock(&r->mu);
	if (store == NULL) {
		return;
	}
	rc = stopping || r->closing
	    ? KM_ERR_CLOSED
	    : km_raft_transport_set_store(&r->transport, store);
	X509_STORE_free(store);
	pthread_mutex_lock(&r->mu);
	r->store_rc = rc;
	r->store_done = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

static void
km_raft_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h)) {
		uv_close(h, NULL);
	}
}

/* After raft_close (or a failed start): drain the loop and release it. */
static void
km_raft_teardown(km_raft *r)
{
	uv_run(&r->loop, UV_RUN_DEFAULT);
	/* Nothing should be left; close whatever is, so the loop can go. */
	uv_walk(&r->loop, km_raft_walk_close, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	if (r->io_init) {
		raft_uv_close(&r->io);
		r->io_init = false;
	}
	if (r->transport_init) {
		km_raft_transport_free(&r->transport);
		r->transport_init = false;
	}
	if (uv_loop_close(&r->loop) != 0) {
		km_log_warn("KM-RAFT-LOOP", "loop closed with handles left");
	}
}

static int
km_raft_bootstrap(km_raft *r)
{
	struct raft_configuration conf;
	size_t i;
	int rv = 0;

	raft_configuration_init(&conf);
	for (i = 0; i < r->n_peers && rv == 0; i++) {
		rv = raft_configuration_add(
		    &conf, r->peers[i].id, r->peers[i].address, RAFT_VOTER);
	}
	if (rv == 0) {
		rv = raft_bootstrap(&r->raft, &conf);
		/* A used state directory: load it instead (raft_start). */
		if (rv == RAFT_CANTBOOTSTRAP) {
			rv = 0;
		}
	}
	raft_configuration_close(&conf);
	return km_raft_err(rv);
}

static int
km_raft_setup(km_raft *r)
{
	const km_raft_config *c = &r->cfg;
	int rv, r2;

	if (uv_loop_init(&r->loop) != 0) {
		return KM_ERR_INTERNAL;
	}
	uv_async_init(&r->loop, &r->async, km_raft_wake);
	r->async.data = r;
	uv_timer_init(&r->loop, &r->tick);
	r->tick.data = r;
	if ((r2 = km_raft_transport_init(&r->transport, &r->loop, r->ca_pem,
	         r->crl_pem, r->cert_pem, r->key_pem, r->members, r->n_peers,
	         0))
	    != 0) {
		goto fail;
	}
	r->transport_init = true;
	if ((rv = raft_uv_init(&r->io, &r->loop, r->state_dir, &r->transport))
	    != 0) {
		km_log_error("KM-RAFT-IO", "raft_uv_init %s: %s", r->state_dir,
		    r->io.errmsg);
		r2 = km_raft_err(rv) == KM_ERR_NOT_FOUND ? KM_ERR_IO
		                                         : km_raft_err(rv);
		goto fail;
	}
	r->io_init = true;
	raft_uv_set_segment_size(
	    &r->io, c->segment_size != 0 ? c->segment_size : 1u << 20);
	raft_uv_set_connect_retry_delay(
	    &r->io, c->connect_retry_ms != 0 ? c->connect_retry_ms : 250);

	r->fsm.version = 2;
	r->fsm.data = r;
	r->fsm.apply = km_raft_fsm_apply;
	r->fsm.snapshot = km_raft_fsm_snapshot;
	r->fsm.restore = km_raft_fsm_restore;
	r->fsm.snapshot_finalize = km_raft_fsm_snapshot_finalize;
	if ((rv = raft_init(&r->raft, &r->io, &r->fsm, c->id, r->address))
	    != 0) {
		km_log_error("KM-RAFT-INIT", "raft_init: %s", r->raft.errmsg);
		r2 = km_raft_err(rv);
		goto fail;
	}
	r->raft.data = r;
	r->raft_init = true;
	raft_set_election_timeout(
	    &r->raft, c->election_ms != 0 ? c->election_ms : 1000);
	raft_set_heartbeat_timeout(
	    &r->raft, c->heartbeat_ms != 0 ? c->heartbeat_ms : 100);
	raft_set_snapshot_threshold(&r->raft,
	    c->snapshot_threshold != 0 ? c->snapshot_threshold : 1024);
	raft_set_snapshot_trailing(
	    &r->raft, c->snapshot_trailing != 0 ? c->snapshot_trailing : 128);
	raft_set_install_snapshot_timeout(&r->raft,
	    c->install_snapshot_ms != 0 ? c->install_snapshot_ms : 5000);
	/* Pre-vote (Ongaro's thesis §9.6): a node back from a partition
	 * does not unseat a working leader. */
	raft_set_pre_vote(&r->raft, true);
	if ((r2 = km_raft_bootstrap(r)) != 0) {
		km_log_error_r(
		    r2, "KM-RAFT-BOOTSTRAP", "%s", raft_errmsg(&r->raft));
		goto fail;
	}
	if ((rv = raft_start(&r->raft)) != 0) {
		km_log_error(
		    "KM-RAFT-START", "raft_start: %s", raft_errmsg(&r->raft));
		r2 = km_raft_transport_addr_in_use(&r->transport)
		    ? KM_ERR_BUSY
		    : km_raft_err(rv);
		goto fail;
	}
	uv_timer_start(
	    &r->tick, km_raft_tick, KM_RAFT_TICK_MS, KM_RAFT_TICK_MS);
	km_raft_refresh(r);
	return 0;
fail:
	if (r->raft_init) {
		r->closing = true;
		raft_close(&r->raft, km_raft_closed);
	} else {
		uv_close((uv_handle_t *)&r->tick, NULL);
		uv_close((uv_handle_t *)&r->async, NULL);
	}
	km_raft_teardown(r);
	return r2;
}

static void *
km_raft_main(void *arg)
{
	km_raft *r = arg;
	int rc;

	rc = km_raft_setup(r);
	pthread_mutex_lock(&r->mu);
	r->started = true;
	r->start_rc = rc;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	if (rc != 0) {
		return NULL;
	}
	km_raft_teardown(r);
	return NULL;
}

/* ---- public ------------------------------------------------------------ */

static void
km_raft_free(km_raft *r)
{
	if (r == NULL) {
		return;
	}
	free(r->address);
	free(r->state_dir);
	free(r->ca_pem);
	free(r->crl_pem);
	free(r->cert_pem);
	km_secure_strfree(r->key_pem); /* a secret: locked, wiped */
	free(r->peers);
	free(r->members);
	X509_STORE_free(r->new_store);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->crl_mu);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static int
km_raft_dup(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL) {
		return 0;
	}
	return (*out = strdup(s)) == NULL ? KM_ERR_ALLOC : 0;
}

static int
km_raft_check(const km_raft_config *cfg)
{
	struct sockaddr_storage ss;
	size_t i, j;
	bool self = false;

	if (cfg->id == 0 || cfg->address == NULL || cfg->state_dir == NULL
	    || cfg->peers == NULL || cfg->n_peers == 0 || cfg->ca_pem == NULL
	    || cfg->cert_pem == NULL || cfg->key_pem == NULL
	    || cfg->apply == NULL || cfg->snapshot == NULL
	    || cfg->restore == NULL
	    || km_raft_addr_parse(cfg->address, &ss) != 0) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < cfg->n_peers; i++) {
		const km_raft_peer *p = &cfg->peers[i];

		if (p->id == 0 || !km_name_valid(p->name)
		    || km_raft_addr_parse(p->address, &ss) != 0) {
			return KM_ERR_CONFIG;
		}
		for (j = 0; j < i; j++) {
			if (cfg->peers[j].id == p->id
			    || strcmp(cfg->peers[j].name, p->name) == 0) {
				return KM_ERR_CONFIG;
			}
		}
		if (p->id == cfg->id) {
			if (strcmp(p->address, cfg->address) != 0) {
				return KM_ERR_CONFIG;
			}
			self = true;
		}
	}
	return self ? 0 : KM_ERR_CONFIG;
}

int
km_raft_start(const km_raft_config *cfg, km_raft **out)
{
	pthread_condattr_t ca;
	km_raft *r = NULL;
	size_t i;
	int rc;

	if (cfg == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	*out = NULL;
	if ((rc = km_raft_check(cfg)) != 0) {
		return rc;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->crl_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->cfg = *cfg;
	r->n_peers = cfg->n_peers;
	if ((rc = km_raft_dup(cfg->address, &r->address)) != 0
	    || (rc = km_raft_dup(cfg->state_dir, &r->state_dir)) != 0
	    || (rc = km_raft_dup(cfg->ca_pem, &r->ca_pem)) != 0
	    || (rc = km_raft_dup(cfg->crl_pem, &r->crl_pem)) != 0
	    || (rc = km_raft_dup(cfg->cert_pem, &r->cert_pem)) != 0
	    || (r->key_pem = km_secure_strdup(cfg->key_pem)) == NULL) {
		rc = rc != 0 ? rc : KM_ERR_ALLOC;
		goto out;
	}
	r->cfg.address = r->cfg.state_dir = NULL;
	r->cfg.ca_pem = r->cfg.crl_pem = r->cfg.cert_pem = NULL;
	r->cfg.key_pem = NULL;
	r->cfg.peers = NULL;
	if ((r->peers = calloc(r->n_peers, sizeof(*r->peers))) == NULL
	    || (r->members = calloc(r->n_peers, sizeof(*r->members)))
	        == NULL) {
		rc = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < r->n_peers; i++) {
		r->peers[i] = cfg->peers[i];
		r->members[i].id = cfg->peers[i].id;
		snprintf(r->members[i].name, sizeof(r->members[i].name), "%s",
		    cfg->peers[i].name);
		snprintf(r->members[i].address, sizeof(r->members[i].address),
		    "%s", cfg->peers[i].address);
	}
	if ((rc = km_mkdir_p(r->state_dir, 0700)) != 0) {
		goto out;
	}
	if (pthread_create(&r->thread, NULL, km_raft_main, r) != 0) {
		rc = KM_ERR_ALLOC;
		goto out;
	}
	pthread_mutex_lock(&r->mu);
	while (!r->started) {
		pthread_cond_wait(&r->cond, &r->mu);
	}
	rc = r->start_rc;
	pthread_mutex_unlock(&r->mu);
	if (rc != 0) {
		pthread_join(r->thread, NULL);
		goto out;
	}
	*out = r;
	r = NULL;
out:
	km_raft_free(r);
	return rc;
}

int
km_raft_propose(km_raft *r, const void *data, size_t len, unsigned timeout_ms,
    uint64_t *leader_id)
{
	struct timespec deadline;
	km_raft_prop *p;
	int rc;

	if (leader_id != NULL) {
		*leader_id = 0;
	}
	if (r == NULL || (data == NULL && len > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_RAFT_ENTRY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL
	    || (len > 0 && (p->data = malloc(len)) == NULL)) {
		free(p);
		return KM_ERR_ALLOC;
	}
	if (len > 0) {
		memcpy(p->data, data, len);
	}
	p->len = len;
	p->r = r;
	p->refs = 2;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		pthread_mutex_unlock(&r->mu);
		free(p->data);
		free(p);
		return KM_ERR_CLOSED;
	}
	p->next = r->queue;
	r->queue = p;
	/* Under mu: the handle is closed only after stopping is set. */
	uv_async_send(&r->async);
	while (!p->done) {
		if (pthread_cond_timedwait(&r->cond, &r->mu, &deadline)
		    == ETIMEDOUT) {
			break;
		}
	}
	rc = p->done ? p->rc : KM_ERR_TIMEOUT;
	if (rc == KM_ERR_NOT_LEADER && leader_id != NULL) {
		*leader_id = r->info.leader_id;
	}
	km_raft_prop_unref_locked(p);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
km_raft_set_crl(km_raft *r, const char *crl_pem)
{
	X509_STORE *store = NULL;
	int rc;

	if (r == NULL || crl_pem == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	/* r->ca_pem does not change after start: safe from any thread. */
	if ((rc = km_pki_store_load(r->ca_pem, crl_pem, &store)) != 0) {
		return rc;
	}
	pthread_mutex_lock(&r->crl_mu); /* one switch at a time */
	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		pthread_mutex_unlock(&r->mu);
		pthread_mutex_unlock(&r->crl_mu);
		X509_STORE_free(store);
		return KM_ERR_CLOSED;
	}
	r->new_store = store;
	r->store_done = false;
	uv_async_send(&r->async);
	while (!r->store_done) {
		pthread_cond_wait(&r->cond, &r->mu);
	}
	rc = r->store_rc;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&r->crl_mu);
	return rc;
}

int
km_raft_remove_voter(km_raft *r, uint64_t id, unsigned timeout_ms)
{
	struct timespec deadline;
	int rc;

	if (r == NULL || id == 0 || id == r->cfg.id) {
		return KM_ERR_INVALID_ARG;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->crl_mu); /* one change at a time */
	pthread_mutex_lock(&r->mu);
	if (r->stopping
	    || (r->remove_id != 0 && !r->remove_done)) {
		/* stopping, or an earlier change still in flight: its
		 * callback will land in r->change */
		rc = r->stopping ? KM_ERR_CLOSED : KM_ERR_BUSY;
		pthread_mutex_unlock(&r->mu);
		pthread_mutex_unlock(&r->crl_mu);
		return rc;
	}
	r->remove_id = id;
	r->remove_started = false;
	r->remove_done = false;
	uv_async_send(&r->async);
	while (!r->remove_done) {
		if (pthread_cond_timedwait(&r->cond, &r->mu, &deadline)
		    == ETIMEDOUT) {
			break;
		}
	}
	rc = r->remove_done ? r->remove_rc : KM_ERR_TIMEOUT;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&r->crl_mu);
	return rc;
}

int
km_raft_suspend_peer(km_raft *r, const char *name, unsigned ms)
{
	int rc;

	if (r == NULL || name == NULL || !km_name_valid(name)) {
		return KM_ERR_INVALID_ARG;
	}
	pthread_mutex_lock(&r->crl_mu); /* one change at a time */
	pthread_mutex_lock(&r->mu);
	if (r->stopping) {
		pthread_mutex_unlock(&r->mu);
		pthread_mutex_unlock(&r->crl_mu);
		return KM_ERR_CLOSED;
	}
	snprintf(r->suspend_name, sizeof(r->suspend_name), "%s", name);
	r->suspend_until_ns
	    = ms == 0 ? 0 : km_mono_ns() + (uint64_t)ms * 1000000ull;
	r->suspend_done = false;
	uv_async_send(&r->async);
	while (!r->suspend_done) {
		pthread_cond_wait(&r->cond, &r->mu);
	}
	rc = r->suspend_rc;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&r->crl_mu);
	return rc;
}

void
km_raft_info_get(km_raft *r, km_raft_info *info)
{
	pthread_mutex_lock(&r->mu);
	*info = r->info;
	pthread_mutex_unlock(&r->mu);
}

int
km_raft_leader(km_raft *r, uint64_t *id, char *name, size_t namelen)
{
	km_raft_info info;

	km_raft_info_get(r, &info);
	if (id != NULL) {
		*id = info.leader_id;
	}
	if (name != NULL && namelen > 0) {
		snprintf(name, namelen, "%s", info.leader_name);
	}
	return info.leader_id != 0 ? 0 : KM_ERR_NOT_FOUND;
}

void
km_raft_stop(km_raft *r)
{
	if (r == NULL) {
		return;
	}
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	uv_async_send(&r->async);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	km_raft_free(r);
}
