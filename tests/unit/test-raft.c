/*
 * Unit tests for src/raft: clusters of three and five km_raft servers on
 * 127.0.0.1, each on its own loop thread in this process (and one in a
 * forked child for the kill -9 case), talking TLS 1.3 with certificates of
 * a fresh mesh CA.
 *
 * The state machine under test is a hash chain: each applied entry makes
 * state = SHA-256(state || entry) and counts one.  Two nodes that applied
 * the same entries in the same order have the same (count, hash); a
 * snapshot is exactly that pair.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kmt.h"
#include "pki/pki.h"
#include "raft/raft.h"
#include "raft/transport.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define T_MAX          5
#define T_PATH         1024
#define T_PROPOSE_MS   5000
#define T_LEADER_MS    10000
#define T_FAILOVER_MS  5000 /* the issue's bound for a new coordinator */
#define T_CONVERGE_MS  10000
#define T_ELECTION_MS  700
#define T_HEARTBEAT_MS 70

static char ca_a[T_PATH]; /* n1..n5, r3 (revoked), c3 (client) */
static char ca_b[T_PATH]; /* another CA with its own n3 */

/* ---- the test state machine -------------------------------------------- */

typedef struct tnode {
	km_raft *r;
	uint64_t id;
	pthread_mutex_t mu;
	uint64_t count;
	uint8_t hash[32];
	uint64_t restores;
} tnode;

static int
t_apply(void *arg, const uint8_t *data, size_t len)
{
	tnode *n = arg;
	EVP_MD_CTX *md;
	unsigned int hl = 0;
	int rc = 0;

	/* An entry the "authority check" refuses: a no-op everywhere. */
	if (len >= 3 && memcmp(data, "BAD", 3) == 0) {
		return KM_ERR_AUTH;
	}
	if (getenv("KMT_RAFT_TRACE") != NULL) {
		fprintf(stderr, "apply n%llu %.*s\n",
		    (unsigned long long)n->id, (int)len, (const char *)data);
	}
	pthread_mutex_lock(&n->mu);
	if ((md = EVP_MD_CTX_new()) == NULL
	    || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
	    || EVP_DigestUpdate(md, n->hash, sizeof(n->hash)) != 1
	    || EVP_DigestUpdate(md, data, len) != 1
	    || EVP_DigestFinal_ex(md, n->hash, &hl) != 1) {
		rc = KM_ERR_CRYPTO;
	} else {
		n->count++;
	}
	EVP_MD_CTX_free(md);
	pthread_mutex_unlock(&n->mu);
	return rc;
}

static int
t_snapshot(void *arg, km_buf *out)
{
	tnode *n = arg;
	int rc;

	pthread_mutex_lock(&n->mu);
	rc = km_buf_put_u64(out, n->count)
	    || km_buf_put_raw(out, n->hash, sizeof(n->hash));
	pthread_mutex_unlock(&n->mu);
	return rc != 0 ? KM_ERR_ALLOC : 0;
}

static int
t_restore(void *arg, const uint8_t *data, size_t len)
{
	tnode *n = arg;
	uint64_t count;
	uint8_t hash[32];
	km_buf b;

	km_buf_init_view(&b, data, len);
	km_buf_get_u64(&b, &count);
	km_buf_get_raw(&b, hash, sizeof(hash));
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	pthread_mutex_lock(&n->mu);
	n->count = count;
	memcpy(n->hash, hash, sizeof(hash));
	n->restores++;
	pthread_mutex_unlock(&n->mu);
	return 0;
}

static void
t_state(tnode *n, uint64_t *count, uint8_t hash[32])
{
	pthread_mutex_lock(&n->mu);
	*count = n->count;
	memcpy(hash, n->hash, 32);
	pthread_mutex_unlock(&n->mu);
}

/* ---- cluster fixture --------------------------------------------------- */

typedef struct tcluster {
	size_t n;
	char base[T_PATH];
	km_raft_peer peers[T_MAX];
	tnode nodes[T_MAX];
	/* Per node: which CA directory and certificate name it uses. */
	const char *ca_dir[T_MAX];
	const char *cert_name[T_MAX];
	unsigned election_ms[T_MAX];
	unsigned threshold, trailing, segment;
	uint32_t outsider; /* nodes not expected to join (refused) */
	/* A node's own member table, when it differs from peers[]. */
	const km_raft_peer *peers_of[T_MAX];
} tcluster;

static uint64_t
t_ms(void)
{
	return km_mono_ns() / 1000000u;
}

static void
t_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static char *
t_read(const char *dir, const char *what, const char *suffix)
{
	char path[T_PATH];
	uint8_t *p = NULL;
	size_t len;

	if (km_pki_path(path, sizeof(path), dir, what, suffix) != 0
	    || km_read_file(path, &p, &len, 1u << 20) != 0) {
		return NULL;
	}
	return (char *)p;
}

/* Names default to n1..nN of CA A. */
static void
t_cluster_init(tcluster *cl, size_t n)
{
	static const char *const names[T_MAX]
	    = { "n1", "n2", "n3", "n4", "n5" };
	const char *tmp = kmt_tmpdir();
	size_t i;

	memset(cl, 0, sizeof(*cl));
	cl->n = n;
	snprintf(cl->base, sizeof(cl->base), "%s", tmp != NULL ? tmp : "");
	for (i = 0; i < n; i++) {
		cl->peers[i].id = i + 1;
		snprintf(cl->peers[i].name, sizeof(cl->peers[i].name), "%s",
		    names[i]);
		snprintf(cl->peers[i].address, sizeof(cl->peers[i].address),
		    "127.0.0.1:%d", kmt_free_port());
		cl->ca_dir[i] = ca_a;
		cl->cert_name[i] = names[i];
		cl->election_ms[i] = T_ELECTION_MS;
		cl->nodes[i].id = i + 1;
		pthread_mutex_init(&cl->nodes[i].mu, NULL);
	}
}

static int
t_node_config(tcluster *cl, size_t i, km_raft_config *c, char *dir,
    size_t dirlen, char **pems)
{
	const char *cad = cl->ca_dir[i];

	snprintf(dir, dirlen, "%s/node%zu", cl->base, i + 1);
	pems[0] = t_read(cad, "ca.crt", NULL);
	pems[1] = t_read(cad, "crl.pem", NULL);
	pems[2] = t_read(cad, cl->cert_name[i], ".crt");
	pems[3] = t_read(cad, cl->cert_name[i], ".key");
	if (pems[0] == NULL || pems[2] == NULL || pems[3] == NULL) {
		return -1;
	}
	memset(c, 0, sizeof(*c));
	c->id = i + 1;
	c->address = cl->peers[i].address;
	c->state_dir = dir;
	c->peers = cl->peers_of[i] != NULL ? cl->peers_of[i] : cl->peers;
	c->n_peers = cl->n;
	c->ca_pem = pems[0];
	c->crl_pem = pems[1];
	c->cert_pem = pems[2];
	c->key_pem = pems[3];
	c->apply = t_apply;
	c->snapshot = t_snapshot;
	c->restore = t_restore;
	c->arg = &cl->nodes[i];
	c->election_ms = cl->election_ms[i];
	c->heartbeat_ms = T_HEARTBEAT_MS;
	c->snapshot_threshold = cl->threshold;
	c->snapshot_trailing = cl->trailing;
	c->segment_size = cl->segment;
	c->connect_retry_ms = 100;
	c->install_snapshot_ms = 1500;
	return 0;
}

static int
t_node_start(tcluster *cl, size_t i)
{
	char dir[T_PATH], *pems[4] = { NULL, NULL, NULL, NULL };
	km_raft_config c;
	int rc = -1, k;

	/* A fresh process: the state is rebuilt from the snapshot and log. */
	pthread_mutex_lock(&cl->nodes[i].mu);
	cl->nodes[i].count = 0;
	memset(cl->nodes[i].hash, 0, sizeof(cl->nodes[i].hash));
	pthread_mutex_unlock(&cl->nodes[i].mu);
	if (t_node_config(cl, i, &c, dir, sizeof(dir), pems) == 0) {
		rc = km_raft_start(&c, &cl->nodes[i].r);
	}
	for (k = 0; k < 4; k++) {
		free(pems[k]);
	}
	return rc;
}

static void
t_node_stop(tcluster *cl, size_t i)
{
	km_raft_stop(cl->nodes[i].r);
	cl->nodes[i].r = NULL;
}

static int
t_cluster_start(tcluster *cl)
{
	size_t i;

	for (i = 0; i < cl->n; i++) {
		if (t_node_start(cl, i) != 0) {
			return -1;
		}
	}
	return 0;
}

static void
t_cluster_stop(tcluster *cl)
{
	size_t i;

	for (i = 0; i < cl->n; i++) {
		t_node_stop(cl, i);
		pthread_mutex_destroy(&cl->nodes[i].mu);
	}
}

/* The index of a running leader all running nodes (but @skip) agree on. */
static int
t_wait_leader(tcluster *cl, unsigned ms, uint32_t skip)
{
	uint64_t end = t_ms() + ms;
	km_raft_info info;
	size_t i;
	int leader;
	bool agree;

	do {
		leader = -1;
		for (i = 0; i < cl->n; i++) {
			if (cl->nodes[i].r == NULL || (skip & (1u << i))) {
				continue;
			}
			km_raft_info_get(cl->nodes[i].r, &info);
			if (info.state == KM_RAFT_LEADER) {
				leader = (int)i;
			}
		}
		agree = leader >= 0;
		for (i = 0; agree && i < cl->n; i++) {
			if (cl->nodes[i].r == NULL || (skip & (1u << i))) {
				continue;
			}
			km_raft_info_get(cl->nodes[i].r, &info);
			agree = info.leader_id == (uint64_t)leader + 1;
		}
		if (agree) {
			return leader;
		}
		t_sleep_ms(20);
	} while (t_ms() < end);
	return -1;
}

/*
 * Propose @count entries "TAG-k" through whoever leads, following the
 * leader hint.  Returns the number committed; *unsure counts those whose
 * fate is unknown (leader lost or timed out mid-way).
 */
static int
t_propose_n(tcluster *cl, const char *tag, int count, int *unsure)
{
	char e[64];
	uint64_t hint;
	int k, ok = 0, leader, rc, tries;

	for (k = 0; k < count; k++) {
		snprintf(e, sizeof(e), "%s-%d", tag, k);
		for (tries = 0; tries < 20; tries++) {
			if ((leader
			        = t_wait_leader(cl, T_LEADER_MS, cl->outsider))
			    < 0) {
				return ok;
			}
			rc = km_raft_propose(cl->nodes[leader].r, e, strlen(e),
			    T_PROPOSE_MS, &hint);
			if (rc == 0) {
				ok++;
				break;
			}
			if (rc != KM_ERR_NOT_LEADER || hint != 0) {
				/* It may have been committed after all. */
				(*unsure)++;
				break;
			}
		}
	}
	return ok;
}

/* All running nodes (but @skip) have the same (count, hash), count >= min. */
static bool
t_converged(tcluster *cl, uint64_t min, uint32_t skip, unsigned ms)
{
	uint64_t end = t_ms() + ms, c0 = 0, c;
	uint8_t h0[32], h[32];
	bool first, same;
	size_t i;

	do {
		same = true;
		first = true;
		for (i = 0; i < cl->n && same; i++) {
			if (cl->nodes[i].r == NULL || (skip & (1u << i))) {
				continue;
			}
			t_state(&cl->nodes[i], &c, h);
			if (first) {
				c0 = c;
				memcpy(h0, h, 32);
				first = false;
			} else {
				same = c == c0 && memcmp(h, h0, 32) == 0;
			}
		}
		if (same && c0 >= min) {
			return true;
		}
		t_sleep_ms(25);
	} while (t_ms() < end);
	for (i = 0; i < cl->n; i++) {
		km_raft_info info;

		if (cl->nodes[i].r == NULL) {
			continue;
		}
		km_raft_info_get(cl->nodes[i].r, &info);
		t_state(&cl->nodes[i], &c, h);
		printf("\n    n%zu: count %llu hash %02x%02x state %d leader "
		       "%llu applied %llu restores %llu tls %llu/%llu ",
		    i + 1, (unsigned long long)c, h[0], h[1], info.state,
		    (unsigned long long)info.leader_id,
		    (unsigned long long)info.last_applied,
		    (unsigned long long)info.restores,
		    (unsigned long long)info.tls_ok,
		    (unsigned long long)info.tls_refused);
	}
	return false;
}

static uint64_t
t_count(tcluster *cl, size_t i)
{
	uint8_t h[32];
	uint64_t c;

	t_state(&cl->nodes[i], &c, h);
	return c;
}

/* ---- suite ------------------------------------------------------------- */

static int
t_make_ca(char *dir, size_t len, bool main_ca)
{
	static const char *const nodes[]
	    = { "n1", "n2", "n3", "n4", "n5", "r3", NULL };
	const char *tmp = kmt_tmpdir();
	size_t i;

	if (tmp == NULL || snprintf(dir, len, "%s", tmp) >= (int)len
	    || km_pki_ca_init(dir, 0) != 0) {
		return -1;
	}
	if (!main_ca) {
		return km_pki_cert_issue(dir, KM_ROLE_NODE, "n3", 0);
	}
	for (i = 0; nodes[i] != NULL; i++) {
		if (km_pki_cert_issue(dir, KM_ROLE_NODE, nodes[i], 0) != 0) {
			return -1;
		}
	}
	if (km_pki_cert_issue(dir, KM_ROLE_CLIENT, "c3", 0) != 0
	    || km_pki_cert_revoke(dir, "r3") != 0) {
		return -1;
	}
	return 0;
}

static int
suite_init(void)
{
	/* KMT_RAFT_LOG=1 shows the transport's refusals and time-outs. */
	km_log_init("test-raft",
	    getenv("KMT_RAFT_LOG") != NULL ? KM_LOG_DEBUG : KM_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	if (t_make_ca(ca_a, sizeof(ca_a), true) != 0
	    || t_make_ca(ca_b, sizeof(ca_b), false) != 0) {
		return -1;
	}
	return 0;
}

static int
suite_fini(void)
{
	return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_addr_parse(void)
{
	struct sockaddr_storage ss;

	CU_ASSERT(km_raft_addr_parse("127.0.0.1:7001", &ss) == 0);
	CU_ASSERT(ss.ss_family == AF_INET);
	CU_ASSERT(km_raft_addr_parse("[::1]:7001", &ss) == 0);
	CU_ASSERT(ss.ss_family == AF_INET6);
	CU_ASSERT(km_raft_addr_parse("127.0.0.1", &ss) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_raft_addr_parse("127.0.0.1:", &ss) == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    km_raft_addr_parse("127.0.0.1:70000", &ss) == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    km_raft_addr_parse("127.0.0.1:7x", &ss) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_raft_addr_parse("host:7001", &ss) == KM_ERR_INVALID_ARG);
	CU_ASSERT(km_raft_addr_parse(":7001", &ss) == KM_ERR_INVALID_ARG);
}

/*
 * Three nodes: election, ordered replication from the leader, refusal on a
 * follower with the leader's id, a refused entry, fail-over within the
 * issue's 5 s, and a restarted node catching up from its log.
 */
static void
test_three_nodes(void)
{
	tcluster cl;
	km_raft_info info;
	char name[KM_NAME_MAX + 1];
	uint64_t hint = 0, id = 0, t0, took;
	int leader, next, unsure = 0, ok, rc;
	size_t i, f;

	t_cluster_init(&cl, 3);
	CU_ASSERT_FATAL(t_cluster_start(&cl) == 0);
	leader = t_wait_leader(&cl, T_LEADER_MS, 0);
	CU_ASSERT_FATAL(leader >= 0);

	/* Every node names the leader, by id and by certificate name. */
	for (i = 0; i < cl.n; i++) {
		CU_ASSERT(
		    km_raft_leader(cl.nodes[i].r, &id, name, sizeof(name))
		    == 0);
		CU_ASSERT(id == (uint64_t)leader + 1);
		CU_ASSERT(strcmp(name, cl.peers[leader].name) == 0);
	}

	ok = t_propose_n(&cl, "a", 20, &unsure);
	CU_ASSERT(ok == 20);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	/* A follower refuses and names the leader. */
	f = ((size_t)leader + 1) % cl.n;
	rc = km_raft_propose(cl.nodes[f].r, "x", 1, T_PROPOSE_MS, &hint);
	CU_ASSERT(rc == KM_ERR_NOT_LEADER);
	CU_ASSERT(hint == (uint64_t)leader + 1);

	/* An entry refused at apply is refused alike everywhere. */
	rc = km_raft_propose(
	    cl.nodes[leader].r, "BAD-1", 5, T_PROPOSE_MS, &hint);
	CU_ASSERT(rc == KM_ERR_AUTH);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	CU_ASSERT(t_count(&cl, (size_t)leader) == (uint64_t)ok + unsure);

	for (i = 0; i < cl.n; i++) {
		km_raft_info_get(cl.nodes[i].r, &info);
		CU_ASSERT(info.tls_ok > 0);
		CU_ASSERT(info.tls_refused == 0);
	}

	/* Stop the leader: a new one within the bound, and entries go on. */
	t0 = t_ms();
	t_node_stop(&cl, (size_t)leader);
	next = t_wait_leader(&cl, T_LEADER_MS, 0);
	took = t_ms() - t0;
	CU_ASSERT_FATAL(next >= 0);
	CU_ASSERT(next != leader);
	CU_ASSERT(took < T_FAILOVER_MS);
	printf("\n    fail-over to n%d in %llu ms ", next + 1,
	    (unsigned long long)took);
	ok += t_propose_n(&cl, "b", 10, &unsure);
	CU_ASSERT(ok == 30);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	/* The old leader comes back and catches up from its log. */
	CU_ASSERT_FATAL(t_node_start(&cl, (size_t)leader) == 0);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	CU_ASSERT(t_count(&cl, (size_t)leader) == (uint64_t)ok + unsure);
	t_cluster_stop(&cl);
}

static int
t_count_files(const char *dir, const char *prefix)
{
	struct dirent *d;
	DIR *dp;
	int n = 0;

	if ((dp = opendir(dir)) == NULL) {
		return -1;
	}
	while ((d = readdir(dp)) != NULL) {
		if (strncmp(d->d_name, prefix, strlen(prefix)) == 0) {
			n++;
		}
	}
	closedir(dp);
	return n;
}

/*
 * Snapshots: with a low threshold the leader compacts its log, so a node
 * that was away for longer than the trailing entries is sent a snapshot
 * (InstallSnapshot, §7) and restores it.
 */
static void
test_snapshot_catchup(void)
{
	tcluster cl;
	char dir[T_PATH];
	int leader, f, unsure = 0, ok;

	t_cluster_init(&cl, 3);
	cl.threshold = 16;
	cl.trailing = 4;
	cl.segment = 8192;
	CU_ASSERT_FATAL(t_cluster_start(&cl) == 0);
	leader = t_wait_leader(&cl, T_LEADER_MS, 0);
	CU_ASSERT_FATAL(leader >= 0);
	ok = t_propose_n(&cl, "s", 5, &unsure);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	f = (leader + 1) % 3;
	t_node_stop(&cl, (size_t)f);
	ok += t_propose_n(&cl, "t", 80, &unsure);
	CU_ASSERT(ok == 85);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	snprintf(dir, sizeof(dir), "%s/node%d", cl.base, leader + 1);
	CU_ASSERT(t_count_files(dir, "snapshot-") > 0);

	CU_ASSERT_FATAL(t_node_start(&cl, (size_t)f) == 0);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	pthread_mutex_lock(&cl.nodes[f].mu);
	CU_ASSERT(cl.nodes[f].restores >= 1);
	pthread_mutex_unlock(&cl.nodes[f].mu);

	/* Restarted from its own snapshot and log, the leader too agrees. */
	t_node_stop(&cl, (size_t)leader);
	CU_ASSERT_FATAL(t_node_start(&cl, (size_t)leader) == 0);
	ok += t_propose_n(&cl, "u", 3, &unsure);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	CU_ASSERT(t_count(&cl, (size_t)leader) == (uint64_t)ok + unsure);
	t_cluster_stop(&cl);
}

static void
test_five_nodes(void)
{
	tcluster cl;
	uint64_t t0, took;
	int leader, next, unsure = 0, ok;

	t_cluster_init(&cl, 5);
	CU_ASSERT_FATAL(t_cluster_start(&cl) == 0);
	leader = t_wait_leader(&cl, T_LEADER_MS, 0);
	CU_ASSERT_FATAL(leader >= 0);
	ok = t_propose_n(&cl, "f", 10, &unsure);
	CU_ASSERT(ok == 10);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	t0 = t_ms();
	t_node_stop(&cl, (size_t)leader);
	next = t_wait_leader(&cl, T_LEADER_MS, 0);
	took = t_ms() - t0;
	CU_ASSERT_FATAL(next >= 0);
	CU_ASSERT(took < T_FAILOVER_MS);
	printf("\n    fail-over to n%d in %llu ms ", next + 1,
	    (unsigned long long)took);
	ok += t_propose_n(&cl, "g", 10, &unsure);
	CU_ASSERT(ok == 20);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	CU_ASSERT(t_count(&cl, (size_t)next) == (uint64_t)ok + unsure);
	t_cluster_stop(&cl);
}

/*
 * Node 3 presents a certificate the others must refuse; n1 and n2 still
 * form a majority and go on, node 3 never sees an entry or a leader.
 * @believed is the name n1 and n2 have for Raft id 3 (node 3 itself has
 * @name).
 */
static void
t_refused_peer(const char *ca_dir, const char *name, const char *believed)
{
	km_raft_peer own[T_MAX];
	tcluster cl;
	km_raft_info info;
	int leader, unsure = 0, ok;
	size_t i;

	t_cluster_init(&cl, 3);
	cl.ca_dir[2] = ca_dir;
	cl.cert_name[2] = name;
	snprintf(cl.peers[2].name, sizeof(cl.peers[2].name), "%s", name);
	memcpy(own, cl.peers, sizeof(own));
	snprintf(cl.peers[2].name, sizeof(cl.peers[2].name), "%s", believed);
	cl.peers_of[2] = own;
	cl.outsider = 1u << 2;
	CU_ASSERT_FATAL(t_cluster_start(&cl) == 0);
	leader = t_wait_leader(&cl, T_LEADER_MS, 1u << 2);
	CU_ASSERT_FATAL(leader >= 0 && leader != 2);
	ok = t_propose_n(&cl, "r", 5, &unsure);
	CU_ASSERT(ok == 5);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 1u << 2, T_CONVERGE_MS));
	/* Give node 3 every chance to be let in. */
	t_sleep_ms(1000);
	km_raft_info_get(cl.nodes[2].r, &info);
	CU_ASSERT(info.leader_id == 0);
	CU_ASSERT(info.state != KM_RAFT_LEADER);
	CU_ASSERT(info.applied == 0);
	CU_ASSERT(t_count(&cl, 2) == 0);
	for (i = 0; i < 2; i++) {
		km_raft_info_get(cl.nodes[i].r, &info);
		CU_ASSERT(info.tls_refused > 0);
	}
	t_cluster_stop(&cl);
}

static void
test_refuse_other_ca(void)
{
	t_refused_peer(ca_b, "n3", "n3");
}

static void
test_refuse_revoked(void)
{
	t_refused_peer(ca_a, "r3", "r3");
}

static void
test_refuse_client_cert(void)
{
	t_refused_peer(ca_a, "c3", "c3");
}

/* A valid node certificate, but not the one the others have for id 3. */
static void
test_refuse_wrong_name(void)
{
	t_refused_peer(ca_a, "n3", "n4");
}

/*
 * Revocation at run time: n3 is revoked and n1, n2 get the new CRL through
 * km_raft_set_crl().  Their links to n3 are dropped and refused from then
 * on; they go on committing, n3 applies nothing more.
 */
static void
test_revoke_at_run_time(void)
{
	char ca_c[T_PATH], *crl = NULL;
	tcluster cl;
	km_raft_info info;
	uint64_t before;
	int leader, unsure = 0, ok;
	size_t i;

	CU_ASSERT_FATAL(t_make_ca(ca_c, sizeof(ca_c), true) == 0);
	t_cluster_init(&cl, 3);
	for (i = 0; i < 3; i++) {
		cl.ca_dir[i] = ca_c;
	}
	CU_ASSERT_FATAL(t_cluster_start(&cl) == 0);
	CU_ASSERT_FATAL(t_wait_leader(&cl, T_LEADER_MS, 0) >= 0);
	ok = t_propose_n(&cl, "v", 5, &unsure);
	CU_ASSERT(ok == 5);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	CU_ASSERT_FATAL(km_pki_cert_revoke(ca_c, "n3") == 0);
	CU_ASSERT_FATAL((crl = t_read(ca_c, "crl.pem", NULL)) != NULL);
	CU_ASSERT(
	    km_raft_set_crl(cl.nodes[0].r, "not a CRL") == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_raft_set_crl(cl.nodes[0].r, crl) == 0);
	CU_ASSERT(km_raft_set_crl(cl.nodes[1].r, crl) == 0);
	free(crl);
	before = t_count(&cl, 2);

	cl.outsider = 1u << 2;
	leader = t_wait_leader(&cl, T_LEADER_MS, 1u << 2);
	CU_ASSERT_FATAL(leader == 0 || leader == 1);
	ok += t_propose_n(&cl, "w", 5, &unsure);
	CU_ASSERT(ok == 10);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 1u << 2, T_CONVERGE_MS));
	/* n1 and n2 each refuse n3 once it tries them: the leader when it
	 * dials n3, the follower when n3, cut off, asks for votes. */
	for (i = 0; i < 2; i++) {
		uint64_t end = t_ms() + T_LEADER_MS;

		do {
			km_raft_info_get(cl.nodes[i].r, &info);
			if (info.tls_refused > 0) {
				break;
			}
			t_sleep_ms(20);
		} while (t_ms() < end);
		CU_ASSERT(info.tls_refused > 0);
	}
	CU_ASSERT(t_count(&cl, 2) == before);
	CU_ASSERT(before <= 5 + (uint64_t)unsure);
	t_cluster_stop(&cl);
}

/*
 * kill -9 of a follower: node 3 runs in a forked child, is killed while
 * entries are being committed, and restarts (here) from what it had made
 * durable.  No committed entry may be missing anywhere, even once the old
 * leader is gone and node 3's log counts for the majority.
 */
static void
test_kill9_follower(void)
{
	tcluster cl;
	pid_t pid;
	int st, leader, next, unsure = 0, ok;

	t_cluster_init(&cl, 3);
	/* Node 3 should stay a follower: it would lead from the child. */
	cl.election_ms[2] = 4 * T_ELECTION_MS;
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		if (t_node_start(&cl, 2) != 0) {
			_exit(1);
		}
		for (;;) {
			pause();
		}
	}
	CU_ASSERT_FATAL(t_node_start(&cl, 0) == 0);
	CU_ASSERT_FATAL(t_node_start(&cl, 1) == 0);
	leader = t_wait_leader(&cl, T_LEADER_MS, 1u << 2);
	CU_ASSERT(leader == 0 || leader == 1);
	ok = t_propose_n(&cl, "k", 15, &unsure);
	kill(pid, SIGKILL);
	ok += t_propose_n(&cl, "l", 5, &unsure);
	CU_ASSERT(waitpid(pid, &st, 0) == pid);
	CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CU_ASSERT(ok == 20);

	/* Node 3 restarts from its state directory and catches up. */
	CU_ASSERT_FATAL(t_node_start(&cl, 2) == 0);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));

	/* Without the old leader, node 3 is half of the majority. */
	leader = t_wait_leader(&cl, T_LEADER_MS, 0);
	CU_ASSERT_FATAL(leader >= 0);
	t_node_stop(&cl, (size_t)leader);
	next = t_wait_leader(&cl, T_LEADER_MS, 0);
	CU_ASSERT_FATAL(next >= 0);
	ok += t_propose_n(&cl, "m", 3, &unsure);
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	CU_ASSERT(t_count(&cl, (size_t)next) == (uint64_t)ok + unsure);
	t_cluster_stop(&cl);
}

/*
 * A suspicion (km_raft_suspend_peer, docs/eviction.md "When the leader is
 * the accused"): one follower refusing the leader changes nothing for the
 * others; both followers refusing it depose it (it reaches no majority and
 * steps down) and a new leader is elected among them; once the suspension
 * runs out the old leader is accepted again and catches up.
 */
static void
test_suspend_leader(void)
{
	tcluster cl;
	km_raft_info info;
	char name[8];
	int leader, next, unsure = 0, ok;
	size_t f1, f2;
	uint64_t end, old_count;

	t_cluster_init(&cl, 3);
	CU_ASSERT_FATAL(t_cluster_start(&cl) == 0);
	leader = t_wait_leader(&cl, T_LEADER_MS, 0);
	CU_ASSERT_FATAL(leader >= 0);
	ok = t_propose_n(&cl, "s", 3, &unsure);
	f1 = (size_t)(leader + 1) % 3;
	f2 = (size_t)(leader + 2) % 3;
	snprintf(name, sizeof(name), "n%d", leader + 1);
	CU_ASSERT(km_raft_suspend_peer(cl.nodes[f1].r, "no name!", 1000)
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(
	    km_raft_suspend_peer(NULL, name, 1000) == KM_ERR_INVALID_ARG);

	/* One follower alone: the leader keeps its majority. */
	CU_ASSERT(km_raft_suspend_peer(cl.nodes[f1].r, name, 3000) == 0);
	cl.outsider = 1u << f1;
	t_sleep_ms(3 * T_ELECTION_MS);
	km_raft_info_get(cl.nodes[leader].r, &info);
	CU_ASSERT(info.state == KM_RAFT_LEADER);
	km_raft_info_get(cl.nodes[f1].r, &info);
	CU_ASSERT(info.tls_refused > 0);
	ok += t_propose_n(&cl, "t", 3, &unsure);
	CU_ASSERT(ok == 6);
	/* lifted early: f1 follows the leader again */
	CU_ASSERT(km_raft_suspend_peer(cl.nodes[f1].r, name, 0) == 0);
	cl.outsider = 0;
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS));
	CU_ASSERT(t_wait_leader(&cl, T_LEADER_MS, 0) == leader);

	/* Both followers: the leader is deposed within the fail-over bound. */
	CU_ASSERT(km_raft_suspend_peer(cl.nodes[f1].r, name, 6000) == 0);
	CU_ASSERT(km_raft_suspend_peer(cl.nodes[f2].r, name, 6000) == 0);
	cl.outsider = 1u << leader;
	next = t_wait_leader(&cl, T_FAILOVER_MS, 1u << leader);
	CU_ASSERT_FATAL(next == (int)f1 || next == (int)f2);
	end = t_ms() + T_FAILOVER_MS;
	do {
		km_raft_info_get(cl.nodes[leader].r, &info);
		if (info.state != KM_RAFT_LEADER) {
			break;
		}
		t_sleep_ms(20);
	} while (t_ms() < end);
	CU_ASSERT(info.state != KM_RAFT_LEADER);
	ok += t_propose_n(&cl, "u", 3, &unsure);
	CU_ASSERT(ok == 9);
	old_count = t_count(&cl, (size_t)leader);
	CU_ASSERT(old_count < (uint64_t)ok);

	/* The suspicion runs out by itself: the old leader catches up. */
	cl.outsider = 0;
	CU_ASSERT(t_converged(&cl, (uint64_t)ok, 0, T_CONVERGE_MS + 6000));
	CU_ASSERT(t_wait_leader(&cl, T_LEADER_MS, 0) >= 0);
	t_cluster_stop(&cl);
}

static void
test_bad_config(void)
{
	km_raft_peer peer = { 1, "n1", "127.0.0.1:1" };
	km_raft_config c;
	km_raft *r = NULL;

	memset(&c, 0, sizeof(c));
	CU_ASSERT(km_raft_start(&c, &r) == KM_ERR_INVALID_ARG);
	c.id = 2;
	c.address = "127.0.0.1:1";
	c.state_dir = "/nonexistent";
	c.peers = &peer;
	c.n_peers = 1;
	c.ca_pem = c.cert_pem = c.key_pem = "x";
	c.apply = t_apply;
	c.snapshot = t_snapshot;
	c.restore = t_restore;
	/* id 2 is not among the peers */
	CU_ASSERT(km_raft_start(&c, &r) == KM_ERR_CONFIG);
	c.address = "localhost:1";
	CU_ASSERT(km_raft_start(&c, &r) == KM_ERR_INVALID_ARG);
	CU_ASSERT(r == NULL);
	CU_ASSERT(
	    strcmp(km_strerror(KM_ERR_NOT_LEADER), "unknown error") != 0);
}

static const kmt_test raft_tests[] = {
	{ "addr_parse", test_addr_parse },
	{ "bad_config", test_bad_config },
	{ "three_nodes", test_three_nodes },
	{ "snapshot_catchup", test_snapshot_catchup },
	{ "five_nodes", test_five_nodes },
	{ "refuse_other_ca", test_refuse_other_ca },
	{ "refuse_revoked", test_refuse_revoked },
	{ "refuse_client_cert", test_refuse_client_cert },
	{ "refuse_wrong_name", test_refuse_wrong_name },
	{ "revoke_at_run_time", test_revoke_at_run_time },
	{ "kill9_follower", test_kill9_follower },
	{ "suspend_leader", test_suspend_leader },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "raft", suite_init, suite_fini, raft_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
