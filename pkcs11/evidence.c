/*
 * Reporting evidence of a bad partial (issue #7 item 5; docs/evidence.md).
 *
 * When the hot path (quorum.c) catches a bad partial it calls
 * km_p11_evidence_caught() and goes on with the operation: reporting never
 * blocks the application.  The work is done by one background thread,
 * started on the first report (a process that never sees a bad partial
 * never has it), fed by a bounded queue (a full queue drops the report
 * with a log line), and joined at C_Finalize.
 *
 *   - ECDH partials always carry their Chaum-Pedersen proof, so the
 *     exchange that was caught is the evidence: the signed request and
 *     reply envelopes are copied from the call at once
 *     (km_net_call_envelopes) and sent from the thread.
 *   - RSA partials are asked for without Shoup's proof on the hot path
 *     (it would triple each holder's cost).  A wrong RSA partial caught by
 *     the combined result's check is therefore no evidence yet: the
 *     thread asks that holder once more for the same x WITH the proof and,
 *     if that proof fails, that exchange is the evidence.  A key without
 *     verification keys (an imported key) gets no evidence: the log says
 *     why.
 *
 * The blob (trust/evidence.h) goes to a connected node other than the
 * accused, as KM_MSG_EVIDENCE; daemons check it themselves and forward it
 * to the coordinator.  Each outcome is one log line, P11-EVIDENCE, at the
 * level of P11-BAD-PARTIAL (an error: a holder misbehaved).
 *
 * Fork: the thread lives in the process that started it.  A forked child
 * forgets the parent's (km_p11_evidence_forget); it reaches the mesh
 * through the relay helper, which keeps no envelopes, so a child reports
 * nothing and logs why.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/rsa.h"
#include "mesh/ops.h"
#include "mesh/rpc.h"
#include "net/net.h"
#include "pkcs11/p11.h"
#include "proto/proto.h"
#include "trust/evidence.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

#define KM_P11_EV_QUEUE 8 /* reports waiting; more are dropped */
/* a daemon may forward the evidence to the leader before it answers */
#define KM_P11_EV_SEND_MS 10000
/*
 * One report per holder and kind (RSA, ECDH) at a time, and none for
 * KM_P11_EV_QUIET_MS after it: a holder that stays faulty under load
 * would otherwise queue a report per operation (one is enough to prove
 * it), and a full queue logs at most once per period.
 */
#define KM_P11_EV_QUIET_MS 10000

typedef struct km_p11_ev_job {
	size_t node; /* the accused */
	int kind;    /* 0 RSA, 1 ECDH */
	char accused[KM_NAME_MAX + 1];
	char key_id[KM_NAME_MAX + 1];
	uint32_t index; /* 0: a suspect, not named by a check */
	km_buf blob;    /* ready evidence (ECDH) */
	km_buf req;     /* RSA: the hot-path request (secure: a ticket) */
	km_buf pub;     /* RSA: the key's public data */
} km_p11_ev_job;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pid_t owner; /* the process whose thread this is */
	bool running, stopping;
	bool busy; /* a report in hand */
	pthread_t thread;
	km_p11_ev_job *q[KM_P11_EV_QUEUE];
	size_t head, n;
	/* per holder and kind: UINT64_MAX while a report is queued or in
	 * hand, then the time until which no new one is made */
	uint64_t quiet_until[KM_MESH_MAX_NODES][2];
	uint64_t full_logged_ms; /* the last "queue full" line */
} km_p11_ev = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false,
	false, false, 0, { NULL }, 0, 0, { { 0 } }, 0 };

/* True (and the holder marked busy) when a report may be made now. */
static bool
km_p11_ev_claim(size_t node, int kind)
{
	bool ok;

	if (node >= KM_MESH_MAX_NODES) {
		return false;
	}
	pthread_mutex_lock(&km_p11_ev.mu);
	ok = km_p11_ev.quiet_until[node][kind] <= km_now_ms();
	if (ok) {
		km_p11_ev.quiet_until[node][kind] = UINT64_MAX;
	}
	pthread_mutex_unlock(&km_p11_ev.mu);
	return ok;
}

/* The report on @node is done (or dropped): quiet for a while. */
static void
km_p11_ev_release(size_t node, int kind)
{
	pthread_mutex_lock(&km_p11_ev.mu);
	km_p11_ev.quiet_until[node][kind] = km_now_ms() + KM_P11_EV_QUIET_MS;
	pthread_mutex_unlock(&km_p11_ev.mu);
}

static void
km_p11_ev_job_free(km_p11_ev_job *j)
{
	if (j == NULL) {
		return;
	}
	km_buf_free(&j->blob);
	km_buf_free(&j->req);
	km_buf_free(&j->pub);
	free(j);
}

/* Sends @blob to the first connected node that is not the accused. */
static void
km_p11_ev_send(const km_p11_ev_job *j, const km_buf *blob)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1], note[KM_PROTO_MESSAGE_MAX + 1];
	km_buf req, rep;
	char *n = NULL;
	size_t i;
	int r = KM_ERR_CONN;

	msg[0] = '\0';
	/* the evidence holds our request envelope, login ticket included:
	 * every copy in locked memory, wiped when freed */
	km_buf_init_secure(&req);
	km_buf_init(&rep);
	if ((r = km_rpc_request(&req, KM_MSG_EVIDENCE, NULL, 0, NULL)) != 0
	    || (r = km_buf_put_string(&req, blob->data, blob->len)) != 0) {
		goto out;
	}
	r = KM_ERR_CONN;
	for (i = 0; i < km_mesh_count(km_p11.mesh); i++) {
		km_net_client *c = km_mesh_client(km_p11.mesh, i);

		if (i == j->node || !km_net_client_connected(c)) {
			continue;
		}
		km_buf_reset(&rep);
		r = km_rpc_call(
		    c, &req, KM_P11_EV_SEND_MS, &rep, msg, sizeof(msg));
		if (r != 0) {
			km_log_warn_r(r, "P11-EVIDENCE",
			    "%s did not take the evidence against %s: %s",
			    km_mesh_name(km_p11.mesh, i), j->accused, msg);
			if (r == KM_ERR_CONN || r == KM_ERR_TIMEOUT
			    || r == KM_ERR_CLOSED) {
				continue; /* another node may */
			}
			break; /* refused: another node would say the same */
		}
		/* reply: accused, key, index, one line */
		note[0] = '\0';
		if (km_buf_get_cstring(&rep, &n, KM_NAME_MAX) == 0) {
			free(n);
			n = NULL;
			if (km_buf_get_cstring(&rep, &n, KM_NAME_MAX) == 0) {
				free(n);
				n = NULL;
			}
			(void)km_buf_get_u32(&rep, &(uint32_t) { 0 });
			if (km_buf_get_cstring(&rep, &n, 200) == 0) {
				snprintf(note, sizeof(note), "%s", n);
				free(n);
				n = NULL;
			}
		}
		km_log_error("P11-EVIDENCE",
		    "sent evidence against %s to %s (%s, key %s, index "
		    "%u)%s%s",
		    j->accused, km_mesh_name(km_p11.mesh, i),
		    j->req.len > 0 ? "rsa-partial" : "ecdh-partial", j->key_id,
		    j->index, note[0] ? ": " : "", note);
		goto out;
	}
out:
	if (r != 0) {
		km_log_error_r(r, "P11-EVIDENCE",
		    "could not send the evidence against %s: %s", j->accused,
		    msg[0] ? msg : "no other node connected");
	}
	km_buf_free(&req);
	km_buf_free(&rep);
}

/* x of an rsa-partial request body, and the offset of its proof flag. */
static int
km_p11_ev_rsa_x(
    const km_buf *req, const uint8_t **x, size_t *xlen, size_t *flag_off)
{
	const km_msg_info *info;
	km_req_hdr h;
	uint32_t u;
	const uint8_t *aux;
	size_t auxlen;
	uint8_t flag;
	km_buf b;
	int i;

	km_buf_init_view(&b, req->data, req->len);
	if (km_req_decode_hdr(&b, &h, &info) != 0
	    || h.type != KM_MSG_RSA_PARTIAL) {
		km_secret_wipe(&h, sizeof(h));
		return KM_ERR_BAD_FORMAT;
	}
	km_secret_wipe(&h, sizeof(h));
	for (i = 0; i < 5; i++) {
		if (km_buf_get_u32(&b, &u) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
	}
	if (km_buf_get_string_ptr(&b, &aux, &auxlen, 1024) != 0
	    || km_buf_get_string_ptr(&b, x, xlen, KM_RSA_MAX_BITS / 8) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	*flag_off = b.off;
	if (km_buf_get_u8(&b, &flag) != 0 || km_buf_remaining(&b) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

/*
 * RSA: ask the holder again for the same x with Shoup's proof; if a proof
 * fails, the exchange becomes the evidence in @blob.  Returns 0 with
 * @blob filled, or a KM_ERR_* with @why.
 */
static int
km_p11_ev_recheck(km_p11_ev_job *j, km_buf *blob, char *why, size_t whylen)
{
	km_net_call *call = NULL;
	km_rsa_pub *pub = NULL;
	km_rsa_partial *part = NULL;
	km_indexed_blob v[KM_PROTO_MAX_INDICES];
	const uint8_t *x, *body;
	size_t xlen, flag_off, blen, n, i;
	km_buf view, qe, pe;
	BIGNUM *bx = NULL;
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	uint32_t failed = 0;
	int r, vr;

	km_buf_init_secure(&qe); /* a ticket in it */
	km_buf_init(&pe);
	if ((r = km_p11_ev_rsa_x(&j->req, &x, &xlen, &flag_off)) != 0
	    || (r = km_rsa_pub_decode(j->pub.data, j->pub.len, &pub)) != 0
	    || (bx = BN_bin2bn(x, (int)xlen, NULL)) == NULL) {
		snprintf(why, whylen, "cannot rebuild the request");
		r = r != 0 ? r : KM_ERR_ALLOC;
		goto out;
	}
	j->req.data[flag_off] = 1; /* with_proof */
	if ((r = km_net_call_new(km_mesh_client(km_p11.mesh, j->node), &call))
	        != 0
	    || (r = km_net_call_start(call, j->req.data, j->req.len,
	            (int)km_p11.conf.timeout_ms * 2, NULL, NULL))
	        != 0
	    || (r = km_net_call_wait(call)) != 0
	    || (r = km_net_call_reply(call, &body, &blen, NULL)) != 0) {
		snprintf(why, whylen,
		    "asking it again with the proof failed: "
		    "%s",
		    km_strerror(r));
		goto out;
	}
	if ((r = km_rpc_reply_parse(
	         KM_MSG_RSA_PARTIAL, body, blen, &view, msg, sizeof(msg)))
	        != 0
	    || (r = km_ops_partials_parse(&view, v, KM_PROTO_MAX_INDICES, &n))
	        != 0) {
		snprintf(why, whylen,
		    "asked again with the proof, it refused: "
		    "%s",
		    r != 0 && msg[0] ? msg : km_strerror(r));
		goto out;
	}
	for (i = 0; i < n && failed == 0; i++) {
		if (km_rsa_partial_decode(pub, v[i].data, v[i].len, &part)
		    != 0) {
			continue;
		}
		vr = km_rsa_partial_verify(pub, bx, part);
		if (vr == KM_ERR_VERIFY) {
			failed = v[i].index;
		}
		km_rsa_partial_free(part);
		part = NULL;
	}
	if (failed == 0) {
		snprintf(why, whylen,
		    "asked again with the proof, its partial is correct");
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	j->index = failed;
	if ((r = km_net_call_envelopes(call, &qe, &pe)) != 0
	    || (r = km_evidence_encode(blob, qe.data, qe.len, pe.data, pe.len))
	        != 0) {
		snprintf(why, whylen, "cannot keep the exchange: %s",
		    km_strerror(r));
		goto out;
	}
	r = 0;
out:
	km_net_call_free(call);
	BN_free(bx);
	km_rsa_pub_free(pub);
	km_buf_free(&qe);
	km_buf_free(&pe);
	return r;
}

static void
km_p11_ev_process(km_p11_ev_job *j)
{
	char why[200];
	km_buf blob;
	int r;

	if (j->blob.len > 0) {
		km_p11_ev_send(j, &j->blob);
		return;
	}
	km_buf_init_secure(&blob);
	why[0] = '\0';
	r = km_p11_ev_recheck(j, &blob, why, sizeof(why));
	if (r == 0) {
		km_p11_ev_send(j, &blob);
	} else if (j->index != 0 || r != KM_ERR_INVALID_ARG) {
		/* a suspect whose proof holds is simply not the bad one */
		km_log_error_r(r, "P11-EVIDENCE",
		    "no evidence against %s (key %s): %s", j->accused,
		    j->key_id, why);
	}
	km_buf_free(&blob);
}

static void *
km_p11_ev_main(void *arg)
{
	km_p11_ev_job *j;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&km_p11_ev.mu);
		while (km_p11_ev.n == 0 && !km_p11_ev.stopping) {
			pthread_cond_wait(&km_p11_ev.cv, &km_p11_ev.mu);
		}
		if (km_p11_ev.stopping) {
			pthread_mutex_unlock(&km_p11_ev.mu);
			return NULL;
		}
		j = km_p11_ev.q[km_p11_ev.head];
		km_p11_ev.q[km_p11_ev.head] = NULL;
		km_p11_ev.head = (km_p11_ev.head + 1) % KM_P11_EV_QUEUE;
		km_p11_ev.n--;
		km_p11_ev.busy = true;
		pthread_mutex_unlock(&km_p11_ev.mu);
		/* an application may exit without C_Finalize: no OpenSSL
		 * or nng call once exit() has begun (net.h) */
		if (!km_net_work_enter()) {
			km_p11_ev_job_free(j);
			return NULL;
		}
		km_p11_ev_process(j);
		km_net_work_leave();
		km_p11_ev_release(j->node, j->kind);
		km_p11_ev_job_free(j);
		pthread_mutex_lock(&km_p11_ev.mu);
		km_p11_ev.busy = false;
		pthread_cond_broadcast(&km_p11_ev.cv);
		pthread_mutex_unlock(&km_p11_ev.mu);
	}
}

/* Queues @j (taking it) or drops it with a log line. */
static void
km_p11_ev_enqueue(km_p11_ev_job *j)
{
	const char *drop = NULL;

	pthread_mutex_lock(&km_p11_ev.mu);
	if (km_p11_ev.stopping) {
		drop = "the module is finalising";
	} else if (km_p11_ev.n == KM_P11_EV_QUEUE) {
		drop = "the report queue is full";
		if (km_now_ms()
		    < km_p11_ev.full_logged_ms + KM_P11_EV_QUIET_MS) {
			drop = ""; /* said already, moments ago */
		} else {
			km_p11_ev.full_logged_ms = km_now_ms();
		}
	} else if (!km_p11_ev.running) {
		if (pthread_create(
		        &km_p11_ev.thread, NULL, km_p11_ev_main, NULL)
		    != 0) {
			drop = "no reporter thread";
		} else {
			km_p11_ev.running = true;
			km_p11_ev.owner = getpid();
		}
	}
	if (drop == NULL) {
		km_p11_ev.q[(km_p11_ev.head + km_p11_ev.n) % KM_P11_EV_QUEUE]
		    = j;
		km_p11_ev.n++;
		pthread_cond_signal(&km_p11_ev.cv);
		j = NULL;
	}
	pthread_mutex_unlock(&km_p11_ev.mu);
	if (drop != NULL) {
		if (drop[0] != '\0') {
			km_log_error("P11-EVIDENCE",
			    "dropped the report against %s (key %s): %s",
			    j->accused, j->key_id, drop);
		}
		km_p11_ev_release(j->node, j->kind);
		km_p11_ev_job_free(j);
	}
}

void
km_p11_evidence_caught(const km_p11_key *key, uint32_t type, size_t node,
    uint32_t index, km_net_call *call, const km_buf *req)
{
	km_p11_ev_job *j;
	km_buf qe, pe;
	int r;

	if (!km_p11_ev_claim(node, type == KM_MSG_ECDH_PARTIAL)) {
		/* one is under way, or was made moments ago */
		return;
	}
	if (km_p11.forked) {
		km_log_error("P11-EVIDENCE",
		    "no evidence against %s (key %s): a forked child reaches "
		    "the mesh through the relay helper, which keeps no "
		    "envelopes",
		    km_mesh_name(km_p11.mesh, node), key->key_id);
		km_p11_ev_release(node, type == KM_MSG_ECDH_PARTIAL);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		km_p11_ev_release(node, type == KM_MSG_ECDH_PARTIAL);
		return;
	}
	j->node = node;
	j->kind = type == KM_MSG_ECDH_PARTIAL;
	j->index = index;
	snprintf(j->accused, sizeof(j->accused), "%s",
	    km_mesh_name(km_p11.mesh, node));
	snprintf(j->key_id, sizeof(j->key_id), "%s", key->key_id);
	km_buf_init_secure(&j->blob); /* our request envelope: a ticket */
	km_buf_init_secure(&j->req);
	km_buf_init(&j->pub);
	if (type == KM_MSG_ECDH_PARTIAL) {
		/* the proof is in the reply already: the exchange is it */
		km_buf_init_secure(&qe);
		km_buf_init(&pe);
		r = km_net_call_envelopes(call, &qe, &pe);
		if (r == 0) {
			r = km_evidence_encode(
			    &j->blob, qe.data, qe.len, pe.data, pe.len);
		}
		km_buf_free(&qe);
		km_buf_free(&pe);
		if (r != 0) {
			km_log_error_r(r, "P11-EVIDENCE",
			    "no evidence against %s (key %s): the exchange "
			    "was not kept",
			    j->accused, j->key_id);
			km_p11_ev_release(node, j->kind);
			km_p11_ev_job_free(j);
			return;
		}
	} else {
		if (key->rsa == NULL || !km_rsa_pub_has_proofs(key->rsa)) {
			if (index != 0) {
				km_log_error("P11-EVIDENCE",
				    "no evidence against %s: key %s has no "
				    "verification keys (an imported key), so "
				    "its partials carry no proof to show",
				    j->accused, j->key_id);
			}
			km_p11_ev_release(node, j->kind);
			km_p11_ev_job_free(j);
			return;
		}
		if (km_buf_put_raw(&j->req, req->data, req->len) != 0
		    || km_rsa_pub_encode(key->rsa, &j->pub) != 0) {
			km_p11_ev_release(node, j->kind);
			km_p11_ev_job_free(j);
			return;
		}
	}
	km_p11_ev_enqueue(j);
}

void
km_p11_evidence_stop(void)
{
	size_t dropped = 0;
	bool join;

	pthread_mutex_lock(&km_p11_ev.mu);
	join = km_p11_ev.running && km_p11_ev.owner == getpid();
	km_p11_ev.stopping = true;
	pthread_cond_broadcast(&km_p11_ev.cv);
	pthread_mutex_unlock(&km_p11_ev.mu);
	if (join) {
		/* the thread finishes the report in hand (bounded by the
		 * call timeouts) and leaves the rest */
		pthread_join(km_p11_ev.thread, NULL);
	}
	pthread_mutex_lock(&km_p11_ev.mu);
	while (km_p11_ev.n > 0) {
		km_p11_ev_job_free(km_p11_ev.q[km_p11_ev.head]);
		km_p11_ev.q[km_p11_ev.head] = NULL;
		km_p11_ev.head = (km_p11_ev.head + 1) % KM_P11_EV_QUEUE;
		km_p11_ev.n--;
		dropped++;
	}
	km_p11_ev.running = false;
	km_p11_ev.stopping = false;
	km_p11_ev.busy = false;
	km_p11_ev.head = 0;
	memset(km_p11_ev.quiet_until, 0, sizeof(km_p11_ev.quiet_until));
	km_p11_ev.full_logged_ms = 0;
	pthread_mutex_unlock(&km_p11_ev.mu);
	if (dropped > 0) {
		km_log_error("P11-EVIDENCE",
		    "%zu evidence report(s) dropped at C_Finalize", dropped);
	}
}

void
km_p11_evidence_drain(unsigned ms)
{
	struct timespec ts;
	uint64_t ns;

	clock_gettime(CLOCK_REALTIME, &ts);
	ns = (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000u;
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	pthread_mutex_lock(&km_p11_ev.mu);
	while (km_p11_ev.running && km_p11_ev.owner == getpid()
	    && !km_p11_ev.stopping
	    && (km_p11_ev.n > 0 || km_p11_ev.busy)) {
		if (pthread_cond_timedwait(&km_p11_ev.cv, &km_p11_ev.mu, &ts)
		    == ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&km_p11_ev.mu);
}

void
km_p11_evidence_forget(void)
{
	/* the parent's thread, lock and queue are not ours: start afresh
	 * (the queued jobs are the parent's memory, abandoned) */
	pthread_mutex_init(&km_p11_ev.mu, NULL);
	pthread_cond_init(&km_p11_ev.cv, NULL);
	km_p11_ev.owner = 0;
	km_p11_ev.running = false;
	km_p11_ev.stopping = false;
	km_p11_ev.head = 0;
	km_p11_ev.n = 0;
	memset(km_p11_ev.q, 0, sizeof(km_p11_ev.q));
	memset(km_p11_ev.quiet_until, 0, sizeof(km_p11_ev.quiet_until));
	km_p11_ev.full_logged_ms = 0;
}
