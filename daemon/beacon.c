/*
 * keymeshd's trust beacons (DESIGN.md §3, docs/trust.md).
 *
 * A thread makes, every beacon_interval_ms, a beacon about this node:
 * version, SHA-256 of its binary (/proc/self/exe) and of its config, the
 * backend token's identity and flags (C_GetTokenInfo), the kernel and the
 * secure-boot state where readable, uptime, load, requests in flight and
 * the request counters, and the round-trip time it measured to each peer.
 * It signs the beacon with the node's identity key and pushes it to every
 * connected peer in a beacon request (node-to-node only); that signed
 * request/reply exchange is also the RTT measurement reported in the next
 * beacon, so measuring costs no extra traffic.
 *
 * Each daemon verifies what it receives (certificate, signature, the
 * sender is the node named, freshness, replay) and keeps the latest
 * beacon per node in memory: the trust graph, answered to clients and
 * admins by the graph request.  Each accepted beacon also goes to the
 * coordinator's scoring (trust.c), and the graph reply carries the
 * published verdicts.  Every 30 s each peer also gets a bandwidth probe,
 * reported in the beacons' bw_kbps.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "daemon/evict.h"
#include "daemon/kmd.h"
#include "daemon/token.h"
#include "mesh/rpc.h"
#include "net/net.h"
#include "proto/proto.h"
#include "trust/beacon.h"
#include "trust/graph.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define KMD_BEACON_CALL_MAX_MS 1000
/* the bandwidth probe (docs/trust.md, "Bandwidth"): each peer every 30 s,
 * at most one peer per beacon round, never waiting long for it */
#define KMD_PROBE_EVERY_MS  30000u
#define KMD_PROBE_CALL_MAX_MS 1000

struct kmd_beacon {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* the graph */
	km_trust_graph graph;
	/* the beacon thread's own, unlocked */
	uint64_t seq;
	uint8_t *cert_der;
	size_t cert_len;
	uint8_t bin_sha256[32];
	uint8_t conf_sha256[32];
	char kernel[KM_BEACON_KERNEL_MAX + 1];
	uint32_t rtt_us[KMD_MAX_PEERS]; /* last measured, per cfg peer */
	uint32_t bw_kbps[KMD_MAX_PEERS]; /* last probe, per cfg peer; 0 none */
	uint64_t probe_at_ms[KMD_MAX_PEERS]; /* next probe (monotonic) */
	uint8_t *probe; /* KM_PROBE_BYTES of zeros */
};

static uint64_t
kmd_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* SHA-256 of a file, streamed (the binary may be a few megabytes). */
static int
kmd_sha256_file(const char *path, uint8_t out[32])
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t chunk[16384];
	unsigned int n = 0;
	ssize_t got;
	int fd = -1, r = KM_ERR_IO;

	memset(out, 0, 32);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL
	    || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	while ((got = read(fd, chunk, sizeof(chunk))) > 0) {
		if (EVP_DigestUpdate(ctx, chunk, (size_t)got) != 1) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	}
	if (got < 0) {
		goto out;
	}
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (fd >= 0) {
		close(fd);
	}
	return r;
}

/*
 * The UEFI SecureBoot variable, where the firmware exposes it and we may
 * read it: 4 bytes of attributes, then 1 (on) or 0 (off).
 */
static void
kmd_secure_boot(char *out, size_t outlen)
{
	static const char dir[] = "/sys/firmware/efi/efivars";
	char path[512];
	uint8_t v[5];
	struct dirent *e;
	DIR *d;
	int fd;

	snprintf(out, outlen, "unknown");
	if ((d = opendir(dir)) == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "SecureBoot-", 11) != 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			break;
		}
		if (read(fd, v, sizeof(v)) == (ssize_t)sizeof(v)) {
			snprintf(out, outlen, "%s",
			    v[4] == 1 ? "on"
			              : (v[4] == 0 ? "off" : "unknown"));
		}
		close(fd);
		break;
	}
	closedir(d);
}

/* Our own certificate in DER, for the signed beacon. */
static int
kmd_beacon_cert(kmd_state *st, struct kmd_beacon *kb)
{
	X509 *x = NULL;
	uint8_t *der = NULL;
	int n, r;

	if ((r = km_pki_load_cert(st->cfg.cert, &x)) != 0) {
		return r;
	}
	n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0) {
		return KM_ERR_CRYPTO;
	}
	if ((kb->cert_der = malloc((size_t)n)) == NULL) {
		OPENSSL_free(der);
		return KM_ERR_ALLOC;
	}
	memcpy(kb->cert_der, der, (size_t)n);
	kb->cert_len = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

/* This node's beacon now, with the RTTs of the last round. */
static void
kmd_beacon_make(kmd_state *st, struct kmd_beacon *kb, km_beacon *bc)
{
	kmd_token_ident ti;
	double load[1];
	uint64_t now = km_now_ms();
	unsigned i;

	memset(bc, 0, sizeof(*bc));
	snprintf(bc->node, sizeof(bc->node), "%s", st->cfg.name);
	/* strictly increasing, across restarts too: never below the clock
	 * in ms (docs/trust.md, replay) */
	kb->seq = kb->seq + 1 > now ? kb->seq + 1 : now;
	bc->seq = kb->seq;
	bc->time_ms = now;
	bc->interval_ms = st->cfg.beacon_interval_ms;
	snprintf(bc->version, sizeof(bc->version), "%s", KMD_VERSION);
	memcpy(bc->bin_sha256, kb->bin_sha256, 32);
	memcpy(bc->conf_sha256, kb->conf_sha256, 32);
	if (kmd_token_ident_get(st->token, &ti) == 0) {
		snprintf(bc->token_manuf, sizeof(bc->token_manuf), "%s",
		    ti.manufacturer);
		snprintf(
		    bc->token_model, sizeof(bc->token_model), "%s", ti.model);
		snprintf(bc->token_serial, sizeof(bc->token_serial), "%s",
		    ti.serial);
		snprintf(bc->token_firmware, sizeof(bc->token_firmware), "%s",
		    ti.firmware);
		bc->token_flags = ti.flags;
	} else {
		/* the beacon still goes out: a token that stopped answering
		 * is exactly what the mesh should hear about */
		snprintf(
		    bc->token_model, sizeof(bc->token_model), "unavailable");
	}
	snprintf(bc->kernel, sizeof(bc->kernel), "%s", kb->kernel);
	kmd_secure_boot(bc->secure_boot, sizeof(bc->secure_boot));
	bc->uptime_ms = now - st->started_ms;
	if (getloadavg(load, 1) == 1 && load[0] >= 0 && load[0] < 4e6) {
		bc->load_milli = (uint32_t)(load[0] * 1000.0);
	}
	pthread_mutex_lock(&st->lock);
	bc->queue_depth = (uint32_t)st->inflight;
	bc->requests = st->requests;
	bc->refused = st->refused;
	pthread_mutex_unlock(&st->lock);
	bc->errors
	    = st->server != NULL ? km_net_server_refused(st->server) : 0;
	for (i = 0; i < st->cfg.npeers && bc->npeers < KM_BEACON_MAX_PEERS;
	     i++) {
		km_beacon_peer *p;

		if (strcmp(st->cfg.peers[i].name, st->cfg.name) == 0) {
			continue;
		}
		p = &bc->peers[bc->npeers++];
		snprintf(
		    p->name, sizeof(p->name), "%s", st->cfg.peers[i].name);
		p->rtt_us = kb->rtt_us[i];
		p->bw_kbps = kb->bw_kbps[i];
	}
}

/*
 * The bandwidth probe: one peer whose turn has come gets KM_PROBE_BYTES in
 * a probe request and answers with the count.  Throughput is the bytes
 * over the whole exchange (request, signature checks, reply), in kbit/s:
 * a lower bound of the link's, enough to rank holders and to see a slow
 * link.  One probe per round at most, so a beacon is never late by more
 * than one call; a peer that is down keeps its last value until it is
 * probed again (0 when never measured).
 */
static void
kmd_probe_round(kmd_state *st, struct kmd_beacon *kb)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	uint64_t now = kmd_mono_us() / 1000, t0, us;
	uint32_t got = 0;
	km_buf req, rep;
	unsigned i;
	int r, timeout;

	for (i = 0; i < st->cfg.npeers; i++) {
		if (kb->probe_at_ms[i] <= now) {
			break;
		}
	}
	if (i == st->cfg.npeers || kb->probe == NULL) {
		return;
	}
	kb->probe_at_ms[i] = now + KMD_PROBE_EVERY_MS;
	if (st->peer_clients[i] == NULL
	    || !km_net_client_connected(st->peer_clients[i])) {
		return;
	}
	km_buf_init(&req);
	km_buf_init(&rep);
	timeout = (int)(st->cfg.beacon_interval_ms / 2);
	if (timeout > KMD_PROBE_CALL_MAX_MS) {
		timeout = KMD_PROBE_CALL_MAX_MS;
	}
	if (km_rpc_request(&req, KM_MSG_PROBE, NULL, 0, NULL) != 0
	    || km_buf_put_string(&req, kb->probe, KM_PROBE_BYTES) != 0) {
		goto out;
	}
	t0 = kmd_mono_us();
	r = km_rpc_call(
	    st->peer_clients[i], &req, timeout, &rep, msg, sizeof(msg));
	us = kmd_mono_us() - t0;
	if (r != 0 || km_buf_get_u32(&rep, &got) != 0
	    || km_buf_remaining(&rep) != 0 || got != KM_PROBE_BYTES) {
		if (r != 0 && r != KM_ERR_TIMEOUT && r != KM_ERR_CONN) {
			km_log_warn_r(r, "KMD-PROBE", "%s refused our probe: %s",
			    st->cfg.peers[i].name, msg);
		}
		goto out;
	}
	/* bits per microsecond are Mbit/s: x 1000 for kbit/s */
	us = us > 0 ? us : 1;
	{
		uint64_t kbps = (uint64_t)KM_PROBE_BYTES * 8u * 1000u / us;
		kb->bw_kbps[i] = kbps == 0 ? 1
		    : (kbps > UINT32_MAX ? UINT32_MAX : (uint32_t)kbps);
	}
out:
	km_buf_free(&req);
	km_buf_free(&rep);
}

int
kmd_do_probe(kmd_state *st, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	const uint8_t *p;
	size_t n;

	(void)st;
	if (km_buf_get_string_ptr(in, &p, &n, KM_PROBE_BYTES) != 0
	    || km_buf_remaining(in) != 0 || n != KM_PROBE_BYTES) {
		snprintf(msg, msglen, "malformed probe request");
		return KM_ERR_BAD_FORMAT;
	}
	return km_buf_put_u32(out, (uint32_t)n);
}

/* One round: make, sign, keep our own, push to every connected peer. */
static void
kmd_beacon_round(kmd_state *st, struct kmd_beacon *kb)
{
	km_beacon bc;
	km_buf signed_bc, req, rep;
	char msg[KM_PROTO_MESSAGE_MAX + 1];
	int timeout, r;
	unsigned i;

	km_buf_init(&signed_bc);
	km_buf_init(&req);
	km_buf_init(&rep);
	kmd_beacon_make(st, kb, &bc);
	if ((r = km_beacon_sign(
	         st->idkey, kb->cert_der, kb->cert_len, &bc, &signed_bc))
	    != 0) {
		km_log_error_r(r, "KMD-BEACON-SIGN", "cannot sign the beacon");
		goto out;
	}
	pthread_mutex_lock(&kb->lock);
	kb->graph.max_age_ms = kmd_trust_max_age(st);
	r = km_trust_graph_update(&kb->graph, &bc, bc.time_ms);
	pthread_mutex_unlock(&kb->lock);
	if (r != 0) {
		km_log_warn_r(r, "KMD-BEACON-SELF", "own beacon %llu not kept",
		    (unsigned long long)bc.seq);
	} else {
		/* the coordinator judges itself too */
		kmd_trust_on_beacon(st, &bc);
	}
	if ((r = km_rpc_request(&req, KM_MSG_BEACON, NULL, 0, NULL)) != 0
	    || (r = km_buf_put_string(&req, signed_bc.data, signed_bc.len))
	        != 0) {
		goto out;
	}
	timeout = (int)(st->cfg.beacon_interval_ms / 2);
	if (timeout > KMD_BEACON_CALL_MAX_MS) {
		timeout = KMD_BEACON_CALL_MAX_MS;
	}
	for (i = 0; i < st->cfg.npeers && !st->stopping; i++) {
		km_net_client *c = st->peer_clients[i];
		uint64_t t0;

		kb->rtt_us[i] = KM_BEACON_RTT_NONE;
		/* a peer that is down costs nothing: no wait for it */
		if (c == NULL || !km_net_client_connected(c)) {
			continue;
		}
		t0 = kmd_mono_us();
		r = km_rpc_call(c, &req, timeout, &rep, msg, sizeof(msg));
		if (r == 0) {
			uint64_t d = kmd_mono_us() - t0;
			kb->rtt_us[i] = d < KM_BEACON_RTT_NONE
			    ? (uint32_t)d
			    : KM_BEACON_RTT_NONE - 1;
		} else if (r != KM_ERR_TIMEOUT && r != KM_ERR_CONN) {
			km_log_warn_r(r, "KMD-BEACON-PUSH",
			    "%s refused our beacon: %s", st->cfg.peers[i].name,
			    msg);
		}
	}
	kmd_probe_round(st, kb);
out:
	km_buf_free(&rep);
	km_buf_free(&req);
	km_buf_free(&signed_bc);
}

static void *
kmd_beacon_thread(void *arg)
{
	kmd_state *st = arg;
	struct kmd_beacon *kb = st->beacon;
	uint64_t next = 0, now;

	while (!st->stopping) {
		now = kmd_mono_us() / 1000;
		if (now >= next) {
			next = now + st->cfg.beacon_interval_ms;
			kmd_beacon_round(st, kb);
		}
		usleep(50 * 1000);
	}
	return NULL;
}

int
kmd_beacon_start(kmd_state *st, char *err, size_t errlen)
{
	struct kmd_beacon *kb;
	struct utsname u;
	unsigned i;
	int r;

	if ((kb = calloc(1, sizeof(*kb))) == NULL) {
		snprintf(err, errlen, "out of memory for the trust graph");
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&kb->lock, NULL);
	st->beacon = kb;
	km_trust_graph_init(
	    &kb->graph, st->cfg.beacon_max_age_ms, st->cfg.beacon_skew_ms);
	/* every configured member is in the graph, heard from or not */
	if ((r = km_trust_graph_add_node(&kb->graph, st->cfg.name)) != 0) {
		snprintf(err, errlen, "cannot list node %s in the trust graph",
		    st->cfg.name);
		return r;
	}
	/* the first probes a few seconds after start, staggered */
	if ((kb->probe = calloc(1, KM_PROBE_BYTES)) == NULL) {
		snprintf(err, errlen, "out of memory for the bandwidth probe");
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < st->cfg.npeers; i++) {
		kb->probe_at_ms[i] = kmd_mono_us() / 1000
		    + (uint64_t)st->cfg.beacon_interval_ms * (i + 1);
	}
	for (i = 0; i < st->cfg.npeers; i++) {
		kb->rtt_us[i] = KM_BEACON_RTT_NONE;
		if ((r = km_trust_graph_add_node(
		         &kb->graph, st->cfg.peers[i].name))
		    != 0) {
			snprintf(err, errlen,
			    "cannot list peer %s in the trust graph",
			    st->cfg.peers[i].name);
			return r;
		}
	}
	if ((r = kmd_beacon_cert(st, kb)) != 0) {
		snprintf(err, errlen,
		    "cannot read the certificate %s for "
		    "beacons: %s",
		    st->cfg.cert, km_strerror(r));
		return r;
	}
	if (kmd_sha256_file("/proc/self/exe", kb->bin_sha256) != 0) {
		km_log_warn("KMD-BEACON-EXE",
		    "cannot hash /proc/self/exe; "
		    "beacons carry zeros");
	}
	if (kmd_sha256_file(st->cfg.path, kb->conf_sha256) != 0) {
		km_log_warn("KMD-BEACON-CONF",
		    "cannot hash %s; beacons carry "
		    "zeros",
		    st->cfg.path);
	}
	snprintf(kb->kernel, sizeof(kb->kernel), "unknown");
	if (uname(&u) == 0) {
		snprintf(kb->kernel, sizeof(kb->kernel), "%s %s %s", u.sysname,
		    u.release, u.machine);
		if (!km_beacon_text_valid(kb->kernel, KM_BEACON_KERNEL_MAX)) {
			snprintf(kb->kernel, sizeof(kb->kernel), "unknown");
		}
	}
	if (pthread_create(&kb->thread, NULL, kmd_beacon_thread, st) != 0) {
		snprintf(err, errlen, "cannot start the beacon thread");
		return KM_ERR_ALLOC;
	}
	kb->started = true;
	return 0;
}

void
kmd_beacon_stop(kmd_state *st)
{
	struct kmd_beacon *kb = st->beacon;

	if (kb == NULL) {
		return;
	}
	/* the caller has set st->stopping */
	if (kb->started) {
		pthread_join(kb->thread, NULL);
	}
	pthread_mutex_destroy(&kb->lock);
	free(kb->cert_der);
	free(kb->probe);
	free(kb);
	st->beacon = NULL;
}

int
kmd_do_beacon(kmd_state *st, const km_identity *peer, km_buf *in, km_buf *out,
    char *msg, size_t msglen)
{
	struct kmd_beacon *kb = st->beacon;
	const uint8_t *p;
	km_beacon bc;
	size_t n;
	int r;

	(void)out;
	if (km_buf_get_string_ptr(in, &p, &n, KM_BEACON_SIGNED_MAX) != 0
	    || km_buf_remaining(in) != 0) {
		snprintf(msg, msglen, "malformed beacon request");
		return KM_ERR_BAD_FORMAT;
	}
	if (kb == NULL) {
		snprintf(msg, msglen, "beacons are not running here");
		return KM_ERR_STATE;
	}
	if ((r = km_beacon_verify(st->x509, p, n, &bc, NULL)) != 0) {
		snprintf(msg, msglen, "beacon from %s refused: %s", peer->name,
		    km_strerror(r));
		km_log_warn_r(r, "KMD-BEACON-REJECT",
		    "%zu-byte beacon from %s refused", n, peer->name);
		return r;
	}
	/* the sender must be the node the beacon names: no relaying */
	if (strcmp(bc.node, peer->name) != 0) {
		snprintf(msg, msglen, "beacon of %s sent by %s refused",
		    bc.node, peer->name);
		km_log_warn("KMD-BEACON-REJECT",
		    "beacon of %s sent by %s refused", bc.node, peer->name);
		return KM_ERR_AUTH;
	}
	pthread_mutex_lock(&kb->lock);
	kb->graph.max_age_ms = kmd_trust_max_age(st);
	r = km_trust_graph_update(&kb->graph, &bc, km_now_ms());
	pthread_mutex_unlock(&kb->lock);
	if (r == 0) {
		/* on the coordinator: scored on arrival, so a failed policy
		 * turns into a verdict within one period */
		kmd_trust_on_beacon(st, &bc);
	}
	if (r != 0) {
		snprintf(msg, msglen, "beacon %llu of %s refused: %s",
		    (unsigned long long)bc.seq, bc.node,
		    r == KM_ERR_STALE ? "stale or replayed" : km_strerror(r));
		km_log_warn_r(r, "KMD-BEACON-STALE",
		    "beacon %llu of %s refused", (unsigned long long)bc.seq,
		    bc.node);
		return r;
	}
	return 0;
}

int
kmd_do_graph(kmd_state *st, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	struct kmd_beacon *kb = st->beacon;
	int r;

	if (km_buf_remaining(in) != 0) {
		snprintf(msg, msglen, "trailing bytes in graph request");
		return KM_ERR_BAD_FORMAT;
	}
	if (kb == NULL) {
		snprintf(msg, msglen, "beacons are not running here");
		return KM_ERR_STATE;
	}
	pthread_mutex_lock(&kb->lock);
	kb->graph.max_age_ms = kmd_trust_max_age(st);
	kmd_trust_overlay(st, &kb->graph);
	r = km_trust_graph_encode(out, st->cfg.name, &kb->graph, km_now_ms());
	pthread_mutex_unlock(&kb->lock);
	if (r != 0) {
		snprintf(msg, msglen, "cannot encode the trust graph");
	}
	return r;
}

/*
 * An evicted node's verdict in the graph (daemon/evict.c calls this after
 * each EVICT it applies, and again on every pass, since the graph is made
 * at start): evicted, score 0, with the catalog's reason.  Idempotent.
 */
void
kmd_beacon_mark_evicted(kmd_state *st, const char *node, const char *reason)
{
	struct kmd_beacon *kb = st->beacon;
	size_t i;

	if (kb == NULL) {
		return;
	}
	pthread_mutex_lock(&kb->lock);
	for (i = 0; i < kb->graph.nnodes; i++) {
		km_trust_node *n = &kb->graph.nodes[i];

		if (strcmp(n->name, node) == 0) {
			n->verdict = KM_TRUST_EVICTED;
			n->score = 0;
			snprintf(n->reason, sizeof(n->reason), "evicted: %s",
			    reason[0] != '\0' ? reason : "by the catalog");
		}
	}
	pthread_mutex_unlock(&kb->lock);
}
