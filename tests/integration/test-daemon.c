/*
 * keymeshd against a live 5-node dev mesh (3 of 5): partial operations
 * from any 3 nodes combine to results OpenSSL accepts; each daemon
 * refuses what it must on its own; kill -9 during key creation leaves a
 * key active everywhere or nowhere; an imported key's secrets are found in
 * no state directory and no daemon's memory.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <p11-kit/pkcs11.h>

#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "kmt-mesh.h"
#include "kmt.h"
#include "mesh/admin.h"
#include "mesh/client.h"
#include "mesh/ops.h"
#include "mesh/rpc.h"
#include "mesh/view.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

#define N 5
#define K 3
#define TMO 5000

static kmt_mesh mesh;
static km_mesh_conf conf;
static km_mesh *admin, *client;
static km_view *view;
static uint8_t tickets[N][KM_PROTO_TICKET_LEN];
static char rsa_id[KM_NAME_MAX + 1], ec_id[KM_NAME_MAX + 1];

static int
suite_init(void)
{
	char err[512];
	size_t i;

	(void)km_secmem_init(1u << 22);
	if (kmt_mesh_up(&mesh, N, K) != 0 ||
	    km_mesh_conf_load(mesh.conf, &conf, err, sizeof(err)) != 0 ||
	    km_mesh_open(&conf, KM_ROLE_ADMIN, &admin, err, sizeof(err)) !=
		0 ||
	    km_mesh_open(&conf, KM_ROLE_CLIENT, &client, err, sizeof(err)) !=
		0) {
		fprintf(stderr, "mesh fixture: %s\n", err);
		return 1;
	}
	for (i = 0; i < N; i++) {
		(void)km_net_client_wait_connected(km_mesh_client(admin, i),
		    TMO);
		(void)km_net_client_wait_connected(km_mesh_client(client, i),
		    TMO);
	}
	if (km_mesh_key_create(admin, KM_KEY_RSA, 2048, K, "rsa-a", false,
		NULL, NULL, rsa_id, err, sizeof(err)) != 0 ||
	    km_mesh_key_create(admin, KM_KEY_EC_P256, 256, K, "ec-a", false,
		NULL, NULL, ec_id, err, sizeof(err)) != 0) {
		fprintf(stderr, "key create: %s\n", err);
		return 1;
	}
	if (km_view_new(client, &view) != 0 ||
	    km_view_refresh(view, TMO, NULL) != 0) {
		return 1;
	}
	for (i = 0; i < N; i++) {
		if (km_ops_login(km_mesh_client(client, i), "default",
			mesh.pin, TMO, tickets[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "login node%zu: %s\n", i + 1, err);
			return 1;
		}
	}
	return 0;
}

static int
suite_cleanup(void)
{
	km_view_free(view);
	km_mesh_close(admin);
	km_mesh_close(client);
	kmt_mesh_down(&mesh);
	return 0;
}

/* Asks node @i for its partials; decodes them into @parts. */
static int
rsa_partials(size_t i, const km_rsa_pub *pub, const km_ops_rsa_req *q,
    km_rsa_partial **parts, size_t *nparts, char *msg, size_t msglen)
{
	km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
	km_buf req, rep;
	size_t n = 0, j;
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_ops_rsa_request(q, tickets[i], &req);
	r = r ? r :
		km_rpc_call(km_mesh_client(client, i), &req, TMO, &rep, msg,
		    msglen);
	r = r ? r : km_ops_partials_parse(&rep, blobs, KM_PROTO_MAX_INDICES, &n);
	for (j = 0; r == 0 && j < n; j++) {
		r = km_rsa_partial_decode(pub, blobs[j].data, blobs[j].len,
		    &parts[(*nparts)++]);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

static km_rsa_pub *
rsa_pub(const char *id)
{
	const km_view_key *k;
	km_rsa_pub *pub = NULL;

	(void)km_view_refresh(view, TMO, NULL);
	k = km_view_find(view, id);
	if (k == NULL || k->state != KM_KEY_ACTIVE ||
	    km_rsa_pub_decode(k->public_data, k->public_len, &pub) != 0) {
		return NULL;
	}
	return pub;
}

/* A PKCS#1 v1.5 SHA-256 signature from every 3 of the 5 nodes. */
static void
check_rsa_key(const char *id)
{
	static const uint8_t msgtext[] = "keymesh threshold signature";
	km_rsa_mech mech = { KM_RSA_PAD_PKCS1, KM_RSA_HASH_SHA256, 0, 0, NULL,
		0 };
	km_rsa_partial *parts[N] = { 0 }, *sub[K];
	uint8_t digest[32], sig[512], xb[512];
	size_t nparts = 0, siglen, i, a, b, c, combos = 0;
	km_rsa_pub *pub = rsa_pub(id);
	km_ops_rsa_req q;
	EVP_PKEY_CTX *vctx;
	BIGNUM *x = NULL;
	uint32_t bad = 0;
	char msg[256];
	int xlen;

	CU_ASSERT_FATAL(pub != NULL);
	CU_ASSERT_FATAL(EVP_Digest(msgtext, sizeof(msgtext), digest, NULL,
			    EVP_sha256(), NULL) == 1);
	CU_ASSERT_FATAL(km_rsa_sign_prepare(pub, &mech, digest, 32, &x) == 0);
	xlen = (km_rsa_pub_bits(pub) + 7) / 8;
	CU_ASSERT_FATAL(BN_bn2binpad(x, xb, xlen) == xlen);
	memset(&q, 0, sizeof(q));
	q.key_id = id;
	q.epoch = 1;
	q.mech = CKM_SHA256_RSA_PKCS;
	q.kind = KM_OPS_SIGN;
	q.hash = KM_RSA_HASH_SHA256;
	q.aux = digest;
	q.auxlen = 32;
	q.x = xb;
	q.xlen = (size_t)xlen;
	q.with_proof = true;
	for (i = 0; i < N; i++) {
		int r = rsa_partials(i, pub, &q, parts, &nparts, msg,
		    sizeof(msg));
		if (r != 0) {
			fprintf(stderr, "node%zu: %s\n", i + 1, msg);
		}
		CU_ASSERT(r == 0);
	}
	CU_ASSERT_FATAL(nparts == N);
	for (a = 0; a < N; a++) {
		for (b = a + 1; b < N; b++) {
			for (c = b + 1; c < N; c++) {
				sub[0] = parts[a];
				sub[1] = parts[b];
				sub[2] = parts[c];
				siglen = sizeof(sig);
				CU_ASSERT(km_rsa_sign_combine(pub, &mech,
					      digest, 32, x, sub, K, sig,
					      &siglen, &bad) == 0);
				CU_ASSERT(bad == 0);
				/* and OpenSSL agrees, on its own */
				vctx = EVP_PKEY_CTX_new(km_rsa_pub_pkey(pub),
				    NULL);
				CU_ASSERT(vctx != NULL &&
				    EVP_PKEY_verify_init(vctx) == 1 &&
				    EVP_PKEY_CTX_set_rsa_padding(vctx,
					RSA_PKCS1_PADDING) == 1 &&
				    EVP_PKEY_CTX_set_signature_md(vctx,
					EVP_sha256()) == 1 &&
				    EVP_PKEY_verify(vctx, sig, siglen, digest,
					32) == 1);
				EVP_PKEY_CTX_free(vctx);
				combos++;
			}
		}
	}
	CU_ASSERT(combos == 10);
	/* two partials are not enough */
	siglen = sizeof(sig);
	CU_ASSERT(km_rsa_sign_combine(pub, &mech, digest, 32, x, parts, K - 1,
		      sig, &siglen, &bad) == KM_ERR_QUORUM);
	for (i = 0; i < nparts; i++) {
		km_rsa_partial_free(parts[i]);
	}
	BN_free(x);
	km_rsa_pub_free(pub);
}

static void
test_rsa_any_three(void)
{
	check_rsa_key(rsa_id);
}

static EVP_PKEY *
ec_pkey_from_point(const km_ec_group *g, const EC_POINT *p)
{
	uint8_t oct[133];
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *k = NULL;

	if (km_ec_point_to_octets(g, p, oct) != 0) {
		return NULL;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)g->name, 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, oct, g->plen);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		k = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static void
check_ec_key(const char *id)
{
	const km_view_key *k;
	km_ec_group *g = NULL;
	km_ec_pub *pub = NULL;
	km_ec_partial *parts[N] = { 0 }, *sub[K];
	EVP_PKEY *peer = NULL, *meshpub = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	EC_POINT *pp = NULL;
	uint8_t ppoct[133], want[66], got[66];
	size_t wantlen = sizeof(want), gotlen, nparts = 0, i, a, b, c;
	char msg[256];

	(void)km_view_refresh(view, TMO, NULL);
	k = km_view_find(view, id);
	CU_ASSERT_FATAL(k != NULL && k->state == KM_KEY_ACTIVE);
	CU_ASSERT_FATAL(km_ec_group_new(NID_X9_62_prime256v1, &g) == 0);
	CU_ASSERT_FATAL(km_ec_pub_decode(g, k->public_data, k->public_len,
			    &pub) == 0);
	/* OpenSSL's own derivation: the peer's private key, our public */
	peer = EVP_EC_gen("P-256");
	meshpub = ec_pkey_from_point(g, pub->y);
	CU_ASSERT_FATAL(peer != NULL && meshpub != NULL);
	dctx = EVP_PKEY_CTX_new(peer, NULL);
	CU_ASSERT_FATAL(dctx != NULL && EVP_PKEY_derive_init(dctx) == 1 &&
	    EVP_PKEY_derive_set_peer(dctx, meshpub) == 1 &&
	    EVP_PKEY_derive(dctx, want, &wantlen) == 1);
	{
		size_t n = 0;
		CU_ASSERT_FATAL(EVP_PKEY_get_octet_string_param(peer,
				    OSSL_PKEY_PARAM_PUB_KEY, ppoct,
				    sizeof(ppoct), &n) == 1 &&
		    n == g->plen);
	}
	CU_ASSERT_FATAL(km_ec_point_from_octets(g, ppoct, g->plen, &pp) == 0);
	for (i = 0; i < N; i++) {
		km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
		km_buf req, rep;
		size_t n = 0, j;
		int r;

		km_buf_init(&req);
		km_buf_init(&rep);
		r = km_ops_ecdh_request(id, 1, CKM_ECDH1_DERIVE, ppoct,
		    g->plen, tickets[i], &req);
		r = r ? r :
			km_rpc_call(km_mesh_client(client, i), &req, TMO, &rep,
			    msg, sizeof(msg));
		r = r ? r :
			km_ops_partials_parse(&rep, blobs,
			    KM_PROTO_MAX_INDICES, &n);
		for (j = 0; r == 0 && j < n; j++) {
			r = km_ec_partial_decode(g, blobs[j].data,
			    blobs[j].len, &parts[nparts++]);
		}
		if (r != 0) {
			fprintf(stderr, "node%zu: %s\n", i + 1, msg);
		}
		CU_ASSERT(r == 0);
		km_buf_free(&req);
		km_buf_free(&rep);
	}
	CU_ASSERT_FATAL(nparts == N);
	for (a = 0; a < N; a++) {
		for (b = a + 1; b < N; b++) {
			for (c = b + 1; c < N; c++) {
				sub[0] = parts[a];
				sub[1] = parts[b];
				sub[2] = parts[c];
				gotlen = 0;
				CU_ASSERT(km_ecdh_combine(g, pub, pp, sub, K,
					      got, sizeof(got), &gotlen, NULL,
					      NULL) == 0);
				CU_ASSERT(gotlen == wantlen &&
				    memcmp(got, want, wantlen) == 0);
			}
		}
	}
	CU_ASSERT(km_ecdh_combine(g, pub, pp, parts, K - 1, got, sizeof(got),
		      &gotlen, NULL, NULL) == KM_ERR_QUORUM);
	for (i = 0; i < nparts; i++) {
		km_ec_partial_free(parts[i]);
	}
	EC_POINT_free(pp);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(meshpub);
	km_ec_pub_free(pub);
	km_ec_group_free(g);
}

static void
test_ecdh_any_three(void)
{
	check_ec_key(ec_id);
}

/* Each daemon decides on its own, and says why in one line. */
static void
test_refusals(void)
{
	km_rsa_pub *pub = rsa_pub(rsa_id);
	km_rsa_partial *parts[KM_PROTO_MAX_INDICES];
	uint8_t ticket[KM_PROTO_TICKET_LEN], xb[256], digest[32];
	km_ops_rsa_req q;
	km_buf req, rep;
	size_t n = 0;
	char msg[256];

	CU_ASSERT_FATAL(pub != NULL);
	/* a wrong PIN */
	CU_ASSERT(km_ops_login(km_mesh_client(client, 0), "default", "000000",
		      TMO, ticket, msg, sizeof(msg)) == KM_ERR_PIN);
	CU_ASSERT(strstr(msg, "PIN") != NULL);
	/* an unknown ticket */
	memset(digest, 7, sizeof(digest));
	memset(xb, 0, sizeof(xb));
	xb[1] = 1;
	memset(&q, 0, sizeof(q));
	q.key_id = rsa_id;
	q.epoch = 1;
	q.mech = CKM_RSA_X_509;
	q.kind = KM_OPS_SIGN;
	q.x = xb;
	q.xlen = sizeof(xb);
	memcpy(ticket, tickets[0], sizeof(ticket));
	ticket[0] ^= 1;
	km_buf_init(&req);
	km_buf_init(&rep);
	CU_ASSERT(km_ops_rsa_request(&q, ticket, &req) == 0);
	CU_ASSERT(km_rpc_call(km_mesh_client(client, 0), &req, TMO, &rep, msg,
		      sizeof(msg)) == KM_ERR_AUTH);
	km_buf_free(&req);
	/* an SO ticket of this very client: PIN management only, refused
	 * before the key's policy is even looked at */
	CU_ASSERT_FATAL(km_ops_login_as(km_mesh_client(client, 0),
			    KM_PROTO_USER_SO, "default", mesh.so_pin, TMO,
			    ticket, msg, sizeof(msg)) == 0);
	km_buf_init(&req);
	CU_ASSERT(km_ops_rsa_request(&q, ticket, &req) == 0);
	CU_ASSERT(km_rpc_call(km_mesh_client(client, 0), &req, TMO, &rep, msg,
		      sizeof(msg)) == KM_ERR_AUTH);
	CU_ASSERT(strstr(msg, "not logged in as the user") != NULL);
	km_buf_free(&req);
	CU_ASSERT(km_ops_logout(km_mesh_client(client, 0), ticket, TMO) == 0);
	/* raw RSA is not in the default policy: no decryption oracle */
	CU_ASSERT(rsa_partials(0, pub, &q, parts, &n, msg, sizeof(msg)) ==
	    KM_ERR_POLICY);
	CU_ASSERT(strstr(msg, "policy") != NULL);
	/* a "signature" whose block is not the digest's encoding */
	q.mech = CKM_SHA256_RSA_PKCS;
	q.hash = KM_RSA_HASH_SHA256;
	q.aux = digest;
	q.auxlen = sizeof(digest);
	CU_ASSERT(rsa_partials(0, pub, &q, parts, &n, msg, sizeof(msg)) ==
	    KM_ERR_POLICY);
	/* decryption of anything is allowed, but not at a wrong epoch */
	q.kind = KM_OPS_DECRYPT;
	q.mech = CKM_RSA_PKCS;
	q.epoch = 2;
	CU_ASSERT(rsa_partials(0, pub, &q, parts, &n, msg, sizeof(msg)) ==
	    KM_ERR_STALE);
	/* an unknown key */
	q.key_id = "knosuchkey";
	q.epoch = 1;
	CU_ASSERT(rsa_partials(0, pub, &q, parts, &n, msg, sizeof(msg)) ==
	    KM_ERR_NOT_FOUND);
	CU_ASSERT(n == 0);
	/* a client may not set PINs */
	km_buf_init(&req);
	CU_ASSERT(km_rpc_request(&req, KM_MSG_INIT_PIN, NULL, 0, NULL) == 0);
	CU_ASSERT(km_buf_put_cstring(&req, "default") == 0);
	CU_ASSERT(km_buf_put_cstring(&req, "999999") == 0);
	CU_ASSERT(km_rpc_call(km_mesh_client(client, 0), &req, TMO, &rep, msg,
		      sizeof(msg)) == KM_ERR_AUTH);
	km_buf_free(&req);
	/* garbage after a valid header: an error reply, and still serving */
	km_buf_init(&req);
	CU_ASSERT(km_rpc_request(&req, KM_MSG_STATUS, NULL, 0, NULL) == 0);
	CU_ASSERT(km_buf_put_u32(&req, 0xdeadbeef) == 0);
	(void)km_rpc_call(km_mesh_client(client, 1), &req, TMO, &rep, msg,
	    sizeof(msg));
	km_buf_free(&req);
	km_buf_free(&rep);
	km_rsa_pub_free(pub);
	/* every refusal is in the audit log, whose chain verifies */
	CU_ASSERT(kmt_run("%s audit verify --state-dir %s/node1/state "
			  ">/dev/null",
		      kmt_keymesh(), mesh.dir) == 0);
	CU_ASSERT(kmt_run("test \"$(sqlite3 %s/node1/state/state.db "
			  "'select count(*) >= 5 from audit_log where outcome "
			  "!= 0')\" = 1",
		      mesh.dir) == 0);
}

/* ---- kill -9 during key creation --------------------------------- */

typedef struct create_job {
	int r;
	char id[KM_NAME_MAX + 1];
	char err[512];
	const char *label;
} create_job;

static void *
create_thread(void *arg)
{
	create_job *j = arg;

	j->r = km_mesh_key_create(admin, KM_KEY_RSA, 2048, K, j->label, false,
	    NULL, NULL, j->id, j->err, sizeof(j->err));
	return NULL;
}

static int
log_count(int node, const char *what)
{
	char path[4200];
	uint8_t *d = NULL;
	size_t len = 0;
	const char *p;
	int n = 0;

	snprintf(path, sizeof(path), "%s/node%d/keymeshd.log", mesh.dir, node);
	if (km_read_file(path, &d, &len, 1u << 26) != 0) {
		return 0;
	}
	for (p = (char *)d; (p = strstr(p, what)) != NULL; p++) {
		n++;
	}
	free(d);
	return n;
}

static bool
log_has(int node, const char *what)
{
	return kmt_run("grep -q '%s' %s/node%d/keymeshd.log", what, mesh.dir,
		       node) == 0;
}

/* Where each node stands on @label: 1 active with its share, 0 absent,
 * -1 anything else (half-made). */
static int
node_view_of(size_t i, const char *label)
{
	km_node_status st;
	km_key_info *keys = NULL;
	size_t n = 0, j;
	int res = 0;

	if (km_mesh_status(admin, i, TMO, &st, &keys, &n) != 0) {
		return -2;
	}
	for (j = 0; j < n; j++) {
		if (strcmp(keys[j].label, label) == 0) {
			res = (keys[j].state == KM_KEY_ACTIVE &&
				  keys[j].held == 1) ?
			    1 :
			    -1;
		}
	}
	free(keys);
	return res;
}

static int
mesh_agrees(const char *label)
{
	int v[N], i, tries;

	for (tries = 0; tries < 50; tries++) {
		bool same = true;
		for (i = 0; i < N; i++) {
			v[i] = node_view_of((size_t)i, label);
			same &= (v[i] == v[0]) && v[i] >= 0;
		}
		if (same) {
			return v[0];
		}
		usleep(200 * 1000);
	}
	return -1;
}

static void
test_kill9_during_create(void)
{
	create_job j1 = { 0 }, j2 = { 0 };
	pthread_t t;
	pid_t pid;
	int i, res, done0;

	/* 1: node5 dies while the dealer searches for primes: the key must
	 * be absent everywhere */
	j1.label = "crash-early";
	CU_ASSERT_FATAL(pthread_create(&t, NULL, create_thread, &j1) == 0);
	for (i = 0; i < 100 && !log_has(1, "KMD-DEAL-START"); i++) {
		usleep(50 * 1000);
	}
	pid = kmt_mesh_pid(&mesh, 5);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT(kill(pid, SIGKILL) == 0);
	pthread_join(t, NULL);
	CU_ASSERT(j1.r != 0);
	CU_ASSERT(kmt_mesh_start(&mesh, 5) == 0);
	CU_ASSERT(mesh_agrees("crash-early") == 0);

	/* 2: every holder has its share; node5 freezes before the
	 * activation reaches it and is then killed: once it restarts and
	 * catches up, the key is active everywhere */
	j2.label = "crash-late";
	pid = kmt_mesh_pid(&mesh, 5);
	CU_ASSERT_FATAL(pid > 0);
	done0 = log_count(1, "KMD-DEAL-DONE");
	CU_ASSERT_FATAL(pthread_create(&t, NULL, create_thread, &j2) == 0);
	/* a loaded machine may take a minute to find the primes */
	for (i = 0; i < 18000 && log_count(1, "KMD-DEAL-DONE") == done0;
	     i++) {
		usleep(10 * 1000);
	}
	CU_ASSERT(log_count(1, "KMD-DEAL-DONE") > done0);
	CU_ASSERT(kill(pid, SIGSTOP) == 0);
	pthread_join(t, NULL);
	CU_ASSERT(kill(pid, SIGKILL) == 0);
	if (j2.r != 0) {
		fprintf(stderr, "crash-late: %s\n", j2.err);
	}
	CU_ASSERT(j2.r == 0);
	CU_ASSERT(kmt_mesh_start(&mesh, 5) == 0);
	res = mesh_agrees("crash-late");
	/* whichever side of the commit point the kill fell on, never half */
	CU_ASSERT(res == (j2.r == 0 ? 1 : 0));
	if (res == 1) {
		/* and the restarted holder serves partials again */
		CU_ASSERT(km_ops_login(km_mesh_client(client, 4), "default",
			      mesh.pin, TMO, tickets[4], j2.err,
			      sizeof(j2.err)) == 0);
		check_rsa_key(j2.id);
	}
}

/* ---- secrets are nowhere ----------------------------------------- */

static bool
buf_has(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	return m > 0 && n >= m && memmem(hay, n, needle, m) != NULL;
}

/* Searches regular files under @dir; returns how many contain a needle. */
static int
scan_dir(const char *dir, uint8_t *const *needles, const size_t *lens,
    size_t nn)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int hits = 0;

	if (d == NULL) {
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		char path[8192];
		struct stat st;
		uint8_t *data = NULL;
		size_t len = 0, i;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0) {
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			hits += scan_dir(path, needles, lens, nn);
			continue;
		}
		if (!S_ISREG(st.st_mode) ||
		    km_read_file(path, &data, &len, 1u << 28) != 0) {
			continue;
		}
		for (i = 0; i < nn; i++) {
			if (buf_has(data, len, needles[i], lens[i])) {
				fprintf(stderr, "secret found in %s\n", path);
				hits++;
			}
		}
		free(data);
	}
	closedir(d);
	return hits;
}

/* Reads every readable mapping of @pid through /proc (as root). */
static int
scan_mem(pid_t pid, uint8_t *const *needles, const size_t *lens, size_t nn)
{
	bool quiet = (pid == getpid());
	char path[64], line[512];
	FILE *maps;
	int fd, hits = 0, regions = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((maps = fopen(path, "r")) == NULL) {
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if ((fd = open(path, O_RDONLY)) < 0) {
		fclose(maps);
		return -1;
	}
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi;
		char perms[8];
		uint8_t *buf;
		ssize_t got;
		size_t i;

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || hi - lo > (256ul << 20)) {
			continue;
		}
		if ((buf = malloc(hi - lo)) == NULL) {
			continue;
		}
		got = pread(fd, buf, hi - lo, (off_t)lo);
		if (got > 0) {
			regions++;
			for (i = 0; i < nn; i++) {
				if (buf_has(buf, (size_t)got, needles[i],
					lens[i])) {
					if (!quiet) {
						fprintf(stderr,
						    "secret found in pid %d "
						    "at %s",
						    (int)pid, line);
					}
					hits++;
				}
			}
		}
		free(buf);
	}
	close(fd);
	fclose(maps);
	return regions > 0 ? hits : -1;
}

static void
test_import_leaves_no_secret(void)
{
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	BIGNUM *d = NULL, *p = NULL, *q = NULL;
	uint8_t *needles[6];
	size_t lens[6], nn = 0, i;
	char id[KM_NAME_MAX + 1], err[512], path[4200];
	BIO *bio;
	char *pem = NULL;
	long pemlen;
	int node, hits;

	CU_ASSERT_FATAL(pk != NULL);
	CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_D, &d) ==
		1 &&
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) == 1 &&
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR2, &q) == 1);
	/* what to look for: d, p, q big-endian, and their hex */
	{
		BIGNUM *v[3] = { d, p, q };
		for (i = 0; i < 3; i++) {
			lens[nn] = (size_t)BN_num_bytes(v[i]);
			needles[nn] = malloc(lens[nn]);
			BN_bn2bin(v[i], needles[nn]);
			nn++;
			needles[nn] = (uint8_t *)BN_bn2hex(v[i]);
			lens[nn] = strlen((char *)needles[nn]);
			nn++;
		}
	}
	bio = BIO_new(BIO_s_mem());
	CU_ASSERT_FATAL(bio != NULL &&
	    PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1);
	pemlen = BIO_get_mem_data(bio, &pem);
	CU_ASSERT_FATAL(km_mesh_key_import(admin, (uint8_t *)pem,
			    (size_t)pemlen, K, "imported", false, id, err,
			    sizeof(err)) == 0);
	BIO_free(bio);
	/* the scanner finds what is there: our own copy of the key */
	CU_ASSERT(scan_mem(getpid(), needles, lens, nn) > 0);
	/* the imported key works */
	check_rsa_key(id);
	for (node = 1; node <= N; node++) {
		pid_t pid = kmt_mesh_pid(&mesh, node);

		snprintf(path, sizeof(path), "%s/node%d", mesh.dir, node);
		CU_ASSERT(scan_dir(path, needles, lens, nn) == 0);
		CU_ASSERT_FATAL(pid > 0);
		hits = scan_mem(pid, needles, lens, nn);
		CU_ASSERT(hits == 0);
	}
	for (i = 0; i < nn; i++) {
		if (i % 2) {
			OPENSSL_free(needles[i]);
		} else {
			free(needles[i]);
		}
	}
	BN_clear_free(d);
	BN_clear_free(p);
	BN_clear_free(q);
	EVP_PKEY_free(pk);
}

/* After a dealer-generated key, the dealer's primes are nowhere either
 * (the test build writes them, once, to a file outside the mesh). */
static void
test_dealer_leaves_no_secret(void)
{
	char path[4200], id[KM_NAME_MAX + 1], err[512];
	uint8_t *data = NULL, *needles[4];
	size_t len = 0, lens[4], nn = 0, i;
	BIGNUM *v[2] = { NULL, NULL };
	char *line, *save = NULL;
	int node;

	snprintf(path, sizeof(path), "%s/dealer-primes", mesh.dir);
	CU_ASSERT_FATAL(km_mesh_key_create(admin, KM_KEY_RSA, 2048, K,
			    "dealt", false, NULL, NULL, id, err,
			    sizeof(err)) == 0);
	CU_ASSERT_FATAL(km_read_file(path, &data, &len, 1u << 16) == 0);
	for (line = strtok_r((char *)data, "\n", &save); line != NULL && nn < 2;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, id) == NULL) {
			continue;
		}
		char ph[1100], qh[1100];
		if (sscanf(line, "%*s %1099s %1099s", ph, qh) == 2 &&
		    BN_hex2bn(&v[0], ph) > 0 && BN_hex2bn(&v[1], qh) > 0) {
			for (i = 0; i < 2; i++) {
				lens[nn] = (size_t)BN_num_bytes(v[i]);
				needles[nn] = malloc(lens[nn]);
				BN_bn2bin(v[i], needles[nn]);
				nn++;
			}
		}
	}
	free(data);
	CU_ASSERT_FATAL(nn == 2);
	for (node = 1; node <= N; node++) {
		pid_t pid = kmt_mesh_pid(&mesh, node);
		snprintf(path, sizeof(path), "%s/node%d", mesh.dir, node);
		CU_ASSERT(scan_dir(path, needles, lens, nn) == 0);
		CU_ASSERT(pid > 0 && scan_mem(pid, needles, lens, nn) == 0);
	}
	for (i = 0; i < nn; i++) {
		free(needles[i]);
	}
	BN_clear_free(v[0]);
	BN_clear_free(v[1]);
}

/* Admins racing: every key lands, and every node has the same catalog. */
typedef struct ec_job {
	int r;
	char label[32], id[KM_NAME_MAX + 1], err[512];
} ec_job;

static void *
ec_create_thread(void *arg)
{
	ec_job *j = arg;

	j->r = km_mesh_key_create(admin, KM_KEY_EC_P256, 256, K, j->label,
	    false, NULL, NULL, j->id, j->err, sizeof(j->err));
	return NULL;
}

static void
test_concurrent_creates_agree(void)
{
	ec_job jobs[4];
	pthread_t t[4];
	km_node_status st;
	uint64_t seq0 = 0;
	int i;

	for (i = 0; i < 4; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		snprintf(jobs[i].label, sizeof(jobs[i].label), "race%d", i);
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, ec_create_thread,
				    &jobs[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		if (jobs[i].r != 0) {
			fprintf(stderr, "%s: %s\n", jobs[i].label, jobs[i].err);
		}
		CU_ASSERT(jobs[i].r == 0);
	}
	for (i = 0; i < 4; i++) {
		CU_ASSERT(mesh_agrees(jobs[i].label) == 1);
	}
	for (i = 0; i < N; i++) {
		CU_ASSERT_FATAL(km_mesh_status(admin, (size_t)i, TMO, &st, NULL,
				    NULL) == 0);
		if (i == 0) {
			seq0 = st.catalog_seq;
		}
		CU_ASSERT(st.catalog_seq == seq0);
	}
}

/* Guessing PINs: ten wrong ones lock the partition on that node for a
 * while, even against the right PIN.  Runs last: it locks node3. */
static void
test_pin_guessing_throttled(void)
{
	uint8_t t[KM_PROTO_TICKET_LEN];
	char msg[256];
	int i;

	for (i = 0; i < 10; i++) {
		CU_ASSERT(km_ops_login(km_mesh_client(client, 2), "default",
			      "0000", TMO, t, msg, sizeof(msg)) == KM_ERR_PIN);
	}
	CU_ASSERT(km_ops_login(km_mesh_client(client, 2), "default", mesh.pin,
		      TMO, t, msg, sizeof(msg)) == KM_ERR_BUSY);
	CU_ASSERT(strstr(msg, "too many wrong PINs") != NULL);
	/* other nodes decide on their own */
	CU_ASSERT(km_ops_login(km_mesh_client(client, 3), "default", mesh.pin,
		      TMO, t, msg, sizeof(msg)) == 0);
}

static const kmt_test daemon_tests[] = {
	{ "rsa_partials_any_three_verify", test_rsa_any_three },
	{ "ecdh_partials_any_three_match_openssl", test_ecdh_any_three },
	{ "refusals_are_clear_and_audited", test_refusals },
	{ "import_leaves_no_secret", test_import_leaves_no_secret },
	{ "dealer_leaves_no_secret", test_dealer_leaves_no_secret },
	{ "kill9_during_create", test_kill9_during_create },
	{ "concurrent_creates_agree", test_concurrent_creates_agree },
	{ "pin_guessing_throttled", test_pin_guessing_throttled },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "daemon", suite_init, suite_cleanup, daemon_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
