/*
 * Re-sharing against a live 5-node dev mesh (3 of 5): RSA and EC keys go
 * 3-of-5 -> 2-of-4 (node5 dropped) -> 3-of-5; after each step any k new
 * partials combine to a result OpenSSL accepts under the same public key,
 * old-epoch partials mixed with new ones do not combine, the old shares
 * are gone (requests at the old epoch are refused) and node5's old partial
 * is useless.  kill -9 of a holder during a re-share leaves the key usable
 * under its old or its new epoch, the same on every node.  The CLI's error
 * cases give one clear line.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
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

#define N    5
#define K    3
#define TMO  5000
#define MAXP 8

static kmt_mesh mesh;
static km_mesh_conf conf;
static km_mesh *admin, *client;
static km_view *view;
static uint8_t tickets[N][KM_PROTO_TICKET_LEN];
static char rsa_id[KM_NAME_MAX + 1], ec_id[KM_NAME_MAX + 1];

static const char *const all5[]
    = { "node1", "node2", "node3", "node4", "node5" };
static const char *const first4[] = { "node1", "node2", "node3", "node4" };

static int
login_node(size_t i)
{
	char err[256];

	(void)km_net_client_wait_connected(km_mesh_client(client, i), TMO);
	(void)km_net_client_wait_connected(km_mesh_client(admin, i), TMO);
	if (km_ops_login(km_mesh_client(client, i), "default", mesh.pin, TMO,
	        tickets[i], err, sizeof(err))
	    != 0) {
		fprintf(stderr, "login node%zu: %s\n", i + 1, err);
		return 1;
	}
	return 0;
}

static int
suite_init(void)
{
	char err[512];
	size_t i;

	(void)km_secmem_init(1u << 22);
	if (kmt_mesh_up(&mesh, N, K) != 0
	    || km_mesh_conf_load(mesh.conf, &conf, err, sizeof(err)) != 0
	    || km_mesh_open(&conf, KM_ROLE_ADMIN, &admin, err, sizeof(err))
	        != 0
	    || km_mesh_open(&conf, KM_ROLE_CLIENT, &client, err, sizeof(err))
	        != 0) {
		fprintf(stderr, "mesh fixture: %s\n", err);
		return 1;
	}
	for (i = 0; i < N; i++) {
		if (login_node(i) != 0) {
			return 1;
		}
	}
	if (km_mesh_key_create(admin, KM_KEY_RSA, 2048, K, "rs-rsa", false,
	        NULL, NULL, rsa_id, err, sizeof(err))
	        != 0
	    || km_mesh_key_create(admin, KM_KEY_EC_P256, 256, K, "rs-ec",
	           false, NULL, NULL, ec_id, err, sizeof(err))
	        != 0) {
		fprintf(stderr, "key create: %s\n", err);
		return 1;
	}
	if (km_view_new(client, &view) != 0) {
		return 1;
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

/* The view's key, fresh (NULL when absent). */
static const km_view_key *
key_now(const char *id)
{
	(void)km_view_refresh(view, TMO, NULL);
	return km_view_find(view, id);
}

static int
reshare(const char *id, uint32_t k, const char *const *members, size_t nm,
    uint32_t *epoch)
{
	char err[512];
	int r;

	r = km_mesh_key_reshare(
	    admin, id, k, members, nm, NULL, NULL, epoch, err, sizeof(err));
	if (r != 0) {
		fprintf(stderr, "reshare %s: %s\n", id, err);
	}
	return r;
}

/* How many share rows of @id node @node keeps at @epoch (0 = any). */
static int
share_rows(int node, const char *id, uint32_t epoch)
{
	char cmd[8600], where[64] = "";
	FILE *f;
	int n = -1;

	if (epoch != 0) {
		snprintf(where, sizeof(where), " and epoch = %u", epoch);
	}
	snprintf(cmd, sizeof(cmd),
	    "sqlite3 %s/node%d/state/state.db \"select count(*) from shares "
	    "where key_id = '%s'%s\"",
	    mesh.dir, node, id, where);
	if ((f = popen(cmd, "r")) == NULL) {
		return -1;
	}
	if (fscanf(f, "%d", &n) != 1) {
		n = -1;
	}
	pclose(f);
	return n;
}

/* ---- RSA ------------------------------------------------------------ */

static const uint8_t msgtext[] = "keymesh re-shared signature";
static uint8_t digest[32];
static km_rsa_mech mech
    = { KM_RSA_PAD_PKCS1, KM_RSA_HASH_SHA256, 0, 0, NULL, 0 };

static km_rsa_pub *
rsa_pub_of(const km_view_key *k)
{
	km_rsa_pub *pub = NULL;

	if (k == NULL || k->state != KM_KEY_ACTIVE
	    || km_rsa_pub_decode(k->public_data, k->public_len, &pub) != 0) {
		return NULL;
	}
	return pub;
}

/* Node @i's partials at @epoch, decoded under @pub, appended to @parts. */
static int
rsa_partials(size_t i, const char *id, uint32_t epoch, const km_rsa_pub *pub,
    km_rsa_partial **parts, size_t *np, char *msg, size_t msglen)
{
	km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
	km_ops_rsa_req q;
	km_buf req, rep;
	uint8_t xb[512];
	BIGNUM *x = NULL;
	size_t n = 0, j;
	int r, xlen;

	msg[0] = '\0';
	if ((r = km_rsa_sign_prepare(pub, &mech, digest, 32, &x)) != 0) {
		return r;
	}
	xlen = (km_rsa_pub_bits(pub) + 7) / 8;
	(void)BN_bn2binpad(x, xb, xlen);
	BN_free(x);
	memset(&q, 0, sizeof(q));
	q.key_id = id;
	q.epoch = epoch;
	q.mech = CKM_SHA256_RSA_PKCS;
	q.kind = KM_OPS_SIGN;
	q.hash = KM_RSA_HASH_SHA256;
	q.aux = digest;
	q.auxlen = 32;
	q.x = xb;
	q.xlen = (size_t)xlen;
	q.with_proof = true;
	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_ops_rsa_request(&q, tickets[i], &req);
	r = r ? r
	      : km_rpc_call(
	          km_mesh_client(client, i), &req, TMO, &rep, msg, msglen);
	r = r ? r
	      : km_ops_partials_parse(&rep, blobs, KM_PROTO_MAX_INDICES, &n);
	for (j = 0; r == 0 && j < n && *np < MAXP; j++) {
		r = km_rsa_partial_decode(
		    pub, blobs[j].data, blobs[j].len, &parts[(*np)++]);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

/* 0 when @parts combine to a signature OpenSSL verifies under @pub. */
static int
rsa_combine_verify(const km_rsa_pub *pub, km_rsa_partial **parts, size_t n)
{
	uint8_t sig[512];
	size_t siglen = sizeof(sig);
	EVP_PKEY_CTX *vctx;
	BIGNUM *x = NULL;
	uint32_t bad = 0;
	int r;

	if ((r = km_rsa_sign_prepare(pub, &mech, digest, 32, &x)) != 0) {
		return r;
	}
	r = km_rsa_sign_combine(
	    pub, &mech, digest, 32, x, parts, n, sig, &siglen, &bad);
	BN_free(x);
	if (r != 0) {
		return r;
	}
	vctx = EVP_PKEY_CTX_new(km_rsa_pub_pkey(pub), NULL);
	r = (vctx != NULL && EVP_PKEY_verify_init(vctx) == 1
	        && EVP_PKEY_CTX_set_rsa_padding(vctx, RSA_PKCS1_PADDING) == 1
	        && EVP_PKEY_CTX_set_signature_md(vctx, EVP_sha256()) == 1
	        && EVP_PKEY_verify(vctx, sig, siglen, digest, 32) == 1)
	    ? 0
	    : KM_ERR_VERIFY;
	EVP_PKEY_CTX_free(vctx);
	return r;
}

/* Every @k-subset of @parts verifies; returns how many subsets. */
static int
rsa_all_subsets(
    const km_rsa_pub *pub, km_rsa_partial **parts, size_t n, unsigned k)
{
	km_rsa_partial *sub[MAXP];
	unsigned mask, combos = 0;
	size_t i, m;

	for (mask = 0; mask < (1u << n); mask++) {
		if ((unsigned)__builtin_popcount(mask) != k) {
			continue;
		}
		for (i = 0, m = 0; i < n; i++) {
			if (mask & (1u << i)) {
				sub[m++] = parts[i];
			}
		}
		CU_ASSERT(rsa_combine_verify(pub, sub, m) == 0);
		combos++;
	}
	return (int)combos;
}

static void
rsa_parts_free(km_rsa_partial **parts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		km_rsa_partial_free(parts[i]);
		parts[i] = NULL;
	}
}

/*
 * The key is at @epoch with threshold @k on @nodes: each gives its
 * partials, every k-subset verifies under the same public key as @orig.
 */
static km_rsa_pub *
rsa_check_epoch(const char *id, uint32_t epoch, uint32_t k,
    const char *const *nodes, size_t nn, const km_rsa_pub *orig,
    km_rsa_partial **parts, size_t *np)
{
	const km_view_key *vk = key_now(id);
	km_rsa_pub *pub;
	char msg[256];
	size_t i;
	long node;
	int r;

	CU_ASSERT_FATAL(vk != NULL);
	CU_ASSERT(vk->epoch == epoch);
	CU_ASSERT(vk->threshold == k);
	CU_ASSERT(vk->nholders == nn);
	pub = rsa_pub_of(vk);
	CU_ASSERT_FATAL(pub != NULL);
	/* same public key: OpenSSL compares N and e */
	CU_ASSERT(
	    EVP_PKEY_eq(km_rsa_pub_pkey(pub), km_rsa_pub_pkey(orig)) == 1);
	*np = 0;
	for (i = 0; i < nn; i++) {
		node = km_mesh_find(client, nodes[i]);
		CU_ASSERT_FATAL(node >= 0);
		r = rsa_partials(
		    (size_t)node, id, epoch, pub, parts, np, msg, sizeof(msg));
		if (r != 0) {
			fprintf(stderr, "%s: %s\n", nodes[i], msg);
		}
		CU_ASSERT(r == 0);
	}
	CU_ASSERT_FATAL(*np == nn);
	CU_ASSERT(rsa_all_subsets(pub, parts, *np, k) > 0);
	/* k-1 partials are not enough */
	{
		uint8_t sig[512];
		size_t siglen = sizeof(sig);
		BIGNUM *x = NULL;
		CU_ASSERT(
		    km_rsa_sign_prepare(pub, &mech, digest, 32, &x) == 0);
		CU_ASSERT(km_rsa_sign_combine(pub, &mech, digest, 32, x, parts,
		              k - 1, sig, &siglen, NULL)
		    == KM_ERR_QUORUM);
		BN_free(x);
	}
	return pub;
}

/* A node refuses to serve @id at @epoch. */
static void
rsa_refused(size_t node, const char *id, uint32_t epoch, const km_rsa_pub *pub,
    int want)
{
	km_rsa_partial *parts[MAXP];
	size_t n = 0;
	char msg[256];
	int r;

	r = rsa_partials(node, id, epoch, pub, parts, &n, msg, sizeof(msg));
	CU_ASSERT(r != 0);
	if (want != 0) {
		CU_ASSERT(r == want);
	}
	CU_ASSERT(msg[0] != '\0');
	CU_ASSERT(n == 0);
	rsa_parts_free(parts, n);
}

static void
test_rsa_reshare_cycle(void)
{
	km_rsa_partial *p1[MAXP], *p2[MAXP], *p3[MAXP], *mix[MAXP];
	km_rsa_pub *pub1, *pub2, *pub3;
	size_t n1 = 0, n2 = 0, n3 = 0, i;
	uint32_t epoch = 0;
	int node;

	CU_ASSERT_FATAL(EVP_Digest(msgtext, sizeof(msgtext), digest, NULL,
	                    EVP_sha256(), NULL)
	    == 1);
	pub1 = rsa_pub_of(key_now(rsa_id));
	CU_ASSERT_FATAL(pub1 != NULL);
	/* epoch 1: 3 of 5; keep every node's old partial for later */
	km_rsa_pub_free(rsa_check_epoch(rsa_id, 1, K, all5, N, pub1, p1, &n1));

	/* 3-of-5 -> 2-of-4 without node5 */
	CU_ASSERT_FATAL(reshare(rsa_id, 2, first4, 4, &epoch) == 0);
	CU_ASSERT(epoch == 2);
	pub2 = rsa_check_epoch(rsa_id, 2, 2, first4, 4, pub1, p2, &n2);
	/* the old shares are deleted everywhere, node5 keeps nothing */
	for (node = 1; node <= N; node++) {
		CU_ASSERT(share_rows(node, rsa_id, 1) == 0);
	}
	CU_ASSERT(share_rows(5, rsa_id, 0) == 0);
	CU_ASSERT(share_rows(1, rsa_id, 2) == 1);
	/* old epoch refused by every node, node5 serves nothing at all */
	rsa_refused(4, rsa_id, 1, pub1, KM_ERR_STALE);
	rsa_refused(0, rsa_id, 1, pub1, KM_ERR_STALE);
	rsa_refused(4, rsa_id, 2, pub2, 0);
	/* node5's old partial (p1[4]) with any new one: no signature, under
	 * either key data */
	for (i = 0; i < n2; i++) {
		mix[0] = p1[4];
		mix[1] = p2[i];
		CU_ASSERT(rsa_combine_verify(pub2, mix, 2) != 0);
	}
	/* two old partials and one new: not under the old data either */
	mix[0] = p1[4];
	mix[1] = p1[3];
	mix[2] = p2[0];
	CU_ASSERT(rsa_combine_verify(pub1, mix, 3) != 0);
	/* ...while the old partials alone did (they were a sharing) */
	CU_ASSERT(rsa_combine_verify(pub1, p1 + 2, 3) == 0);

	/* 2-of-4 -> 3-of-5, node5 back with a fresh share */
	CU_ASSERT_FATAL(reshare(rsa_id, 3, all5, N, &epoch) == 0);
	CU_ASSERT(epoch == 3);
	pub3 = rsa_check_epoch(rsa_id, 3, K, all5, N, pub1, p3, &n3);
	CU_ASSERT(rsa_all_subsets(pub3, p3, n3, K) == 10);
	for (node = 1; node <= N; node++) {
		CU_ASSERT(share_rows(node, rsa_id, 2) == 0);
		CU_ASSERT(share_rows(node, rsa_id, 3) == 1);
	}
	rsa_refused(1, rsa_id, 2, pub2, KM_ERR_STALE);
	/* epoch-2 partials mixed with epoch-3 ones fail */
	mix[0] = p2[0];
	mix[1] = p3[1];
	mix[2] = p3[2];
	CU_ASSERT(rsa_combine_verify(pub3, mix, 3) != 0);
	/* node5's epoch-1 partial with two current ones fails */
	mix[0] = p1[4];
	CU_ASSERT(rsa_combine_verify(pub3, mix, 3) != 0);
	rsa_parts_free(p1, n1);
	rsa_parts_free(p2, n2);
	rsa_parts_free(p3, n3);
	km_rsa_pub_free(pub1);
	km_rsa_pub_free(pub2);
	km_rsa_pub_free(pub3);
}

/* ---- EC -------------------------------------------------------------- */

typedef struct ec_ctx {
	km_ec_group *g;
	EC_POINT *pp; /* the peer's public point */
	uint8_t want[66];
	size_t wantlen;
} ec_ctx;

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
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
	    || EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		k = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static km_ec_pub *
ec_pub_of(const ec_ctx *c, const km_view_key *k)
{
	km_ec_pub *pub = NULL;

	if (k == NULL || k->state != KM_KEY_ACTIVE
	    || km_ec_pub_decode(c->g, k->public_data, k->public_len, &pub)
	        != 0) {
		return NULL;
	}
	return pub;
}

/* OpenSSL's own ECDH between a fresh peer key and the mesh key. */
static int
ec_ctx_init(ec_ctx *c, const km_ec_pub *pub)
{
	EVP_PKEY *peer = NULL, *meshpub = NULL;
	EVP_PKEY_CTX *d = NULL;
	uint8_t oct[133];
	size_t n = 0;
	int r = -1;

	peer = EVP_EC_gen("P-256");
	meshpub = ec_pkey_from_point(c->g, pub->y);
	c->wantlen = sizeof(c->want);
	if (peer != NULL && meshpub != NULL
	    && (d = EVP_PKEY_CTX_new(peer, NULL)) != NULL
	    && EVP_PKEY_derive_init(d) == 1
	    && EVP_PKEY_derive_set_peer(d, meshpub) == 1
	    && EVP_PKEY_derive(d, c->want, &c->wantlen) == 1
	    && EVP_PKEY_get_octet_string_param(
	           peer, OSSL_PKEY_PARAM_PUB_KEY, oct, sizeof(oct), &n)
	        == 1
	    && n == c->g->plen
	    && km_ec_point_from_octets(c->g, oct, n, &c->pp) == 0) {
		r = 0;
	}
	EVP_PKEY_CTX_free(d);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(meshpub);
	return r;
}

static int
ec_partials(const ec_ctx *c, size_t i, const char *id, uint32_t epoch,
    km_ec_partial **parts, size_t *np, char *msg, size_t msglen)
{
	km_indexed_blob blobs[KM_PROTO_MAX_INDICES];
	uint8_t oct[133];
	km_buf req, rep;
	size_t n = 0, j;
	int r;

	msg[0] = '\0';
	if ((r = km_ec_point_to_octets(c->g, c->pp, oct)) != 0) {
		return r;
	}
	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_ops_ecdh_request(
	    id, epoch, CKM_ECDH1_DERIVE, oct, c->g->plen, tickets[i], &req);
	r = r ? r
	      : km_rpc_call(
	          km_mesh_client(client, i), &req, TMO, &rep, msg, msglen);
	r = r ? r
	      : km_ops_partials_parse(&rep, blobs, KM_PROTO_MAX_INDICES, &n);
	for (j = 0; r == 0 && j < n && *np < MAXP; j++) {
		r = km_ec_partial_decode(
		    c->g, blobs[j].data, blobs[j].len, &parts[(*np)++]);
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

/* 0 when @parts combine, under @pub, to what OpenSSL derived. */
static int
ec_combine_ok(
    const ec_ctx *c, const km_ec_pub *pub, km_ec_partial **parts, size_t n)
{
	uint8_t got[66];
	size_t gotlen = 0;
	int r;

	r = km_ecdh_combine(
	    c->g, pub, c->pp, parts, n, got, sizeof(got), &gotlen, NULL, NULL);
	if (r != 0) {
		return r;
	}
	return (gotlen == c->wantlen && memcmp(got, c->want, gotlen) == 0)
	    ? 0
	    : KM_ERR_VERIFY;
}

static void
ec_parts_free(km_ec_partial **parts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		km_ec_partial_free(parts[i]);
		parts[i] = NULL;
	}
}

static km_ec_pub *
ec_check_epoch(const ec_ctx *c, const char *id, uint32_t epoch, uint32_t k,
    const char *const *nodes, size_t nn, size_t nidx, km_ec_partial **parts,
    size_t *np)
{
	const km_view_key *vk = key_now(id);
	km_ec_partial *sub[MAXP];
	km_ec_pub *pub;
	unsigned mask, combos = 0;
	char msg[256];
	size_t i, m;
	long node;
	int r;

	CU_ASSERT_FATAL(vk != NULL);
	CU_ASSERT(vk->epoch == epoch);
	CU_ASSERT(vk->threshold == k);
	CU_ASSERT(vk->nholders == nidx);
	pub = ec_pub_of(c, vk);
	CU_ASSERT_FATAL(pub != NULL);
	*np = 0;
	for (i = 0; i < nn; i++) {
		node = km_mesh_find(client, nodes[i]);
		CU_ASSERT_FATAL(node >= 0);
		r = ec_partials(
		    c, (size_t)node, id, epoch, parts, np, msg, sizeof(msg));
		if (r != 0) {
			fprintf(stderr, "%s: %s\n", nodes[i], msg);
		}
		CU_ASSERT(r == 0);
	}
	CU_ASSERT_FATAL(*np == nidx);
	for (mask = 0; mask < (1u << *np); mask++) {
		if ((unsigned)__builtin_popcount(mask) != k) {
			continue;
		}
		for (i = 0, m = 0; i < *np; i++) {
			if (mask & (1u << i)) {
				sub[m++] = parts[i];
			}
		}
		CU_ASSERT(ec_combine_ok(c, pub, sub, m) == 0);
		combos++;
	}
	CU_ASSERT(combos > 0);
	CU_ASSERT(ec_combine_ok(c, pub, parts, k - 1) != 0);
	return pub;
}

static void
ec_refused(
    const ec_ctx *c, size_t node, const char *id, uint32_t epoch, int want)
{
	km_ec_partial *parts[MAXP];
	size_t n = 0;
	char msg[256];
	int r;

	r = ec_partials(c, node, id, epoch, parts, &n, msg, sizeof(msg));
	CU_ASSERT(r != 0);
	if (want != 0) {
		CU_ASSERT(r == want);
	}
	CU_ASSERT(n == 0);
	ec_parts_free(parts, n);
}

static void
test_ec_reshare_cycle(void)
{
	km_ec_partial *p1[MAXP], *p2[MAXP], *p3[MAXP], *mix[MAXP];
	km_ec_pub *pub1, *pub2, *pub3;
	size_t n1 = 0, n2 = 0, n3 = 0, i;
	uint32_t epoch = 0;
	ec_ctx c;
	int node;

	memset(&c, 0, sizeof(c));
	CU_ASSERT_FATAL(km_ec_group_new(NID_X9_62_prime256v1, &c.g) == 0);
	pub1 = ec_pub_of(&c, key_now(ec_id));
	CU_ASSERT_FATAL(pub1 != NULL);
	CU_ASSERT_FATAL(ec_ctx_init(&c, pub1) == 0);
	km_ec_pub_free(pub1);
	pub1 = ec_check_epoch(&c, ec_id, 1, K, all5, N, N, p1, &n1);

	CU_ASSERT_FATAL(reshare(ec_id, 2, first4, 4, &epoch) == 0);
	CU_ASSERT(epoch == 2);
	pub2 = ec_check_epoch(&c, ec_id, 2, 2, first4, 4, 4, p2, &n2);
	/* the same public key Y */
	CU_ASSERT(EC_POINT_cmp(c.g->group, pub1->y, pub2->y, NULL) == 0);
	for (node = 1; node <= N; node++) {
		CU_ASSERT(share_rows(node, ec_id, 1) == 0);
	}
	CU_ASSERT(share_rows(5, ec_id, 0) == 0);
	ec_refused(&c, 4, ec_id, 1, KM_ERR_STALE);
	ec_refused(&c, 2, ec_id, 1, KM_ERR_STALE);
	ec_refused(&c, 4, ec_id, 2, 0);
	/* node5's old partial with a new one: not the shared secret */
	for (i = 0; i < n2; i++) {
		mix[0] = p1[4];
		mix[1] = p2[i];
		CU_ASSERT(ec_combine_ok(&c, pub2, mix, 2) != 0);
	}
	mix[0] = p1[4];
	mix[1] = p1[3];
	mix[2] = p2[0];
	CU_ASSERT(ec_combine_ok(&c, pub1, mix, 3) != 0);

	CU_ASSERT_FATAL(reshare(ec_id, 3, all5, N, &epoch) == 0);
	CU_ASSERT(epoch == 3);
	pub3 = ec_check_epoch(&c, ec_id, 3, K, all5, N, N, p3, &n3);
	CU_ASSERT(EC_POINT_cmp(c.g->group, pub1->y, pub3->y, NULL) == 0);
	for (node = 1; node <= N; node++) {
		CU_ASSERT(share_rows(node, ec_id, 2) == 0);
		CU_ASSERT(share_rows(node, ec_id, 3) == 1);
	}
	mix[0] = p2[0];
	mix[1] = p3[1];
	mix[2] = p3[2];
	CU_ASSERT(ec_combine_ok(&c, pub3, mix, 3) != 0);
	mix[0] = p1[4];
	CU_ASSERT(ec_combine_ok(&c, pub3, mix, 3) != 0);

	/* weighted: node1 holds two indices of a 3-of-4 sharing, so node1
	 * and one other node are enough */
	{
		static const char *const w[]
		    = { "node1", "node1", "node2", "node3" };
		static const char *const wn[] = { "node1", "node2", "node3" };
		km_ec_partial *pw[MAXP];
		km_ec_pub *pubw;
		size_t nw = 0;

		CU_ASSERT_FATAL(reshare(ec_id, 3, w, 4, &epoch) == 0);
		CU_ASSERT(epoch == 4);
		pubw = ec_check_epoch(&c, ec_id, 4, 3, wn, 3, 4, pw, &nw);
		CU_ASSERT(share_rows(1, ec_id, 4) == 2);
		CU_ASSERT(share_rows(4, ec_id, 0) == 0);
		/* node1's two partials plus node2's */
		CU_ASSERT(ec_combine_ok(&c, pubw, pw, 3) == 0);
		ec_parts_free(pw, nw);
		km_ec_pub_free(pubw);
		/* and back to one share each on all five */
		CU_ASSERT_FATAL(reshare(ec_id, 3, all5, N, &epoch) == 0);
		CU_ASSERT(epoch == 5);
		pubw = ec_check_epoch(&c, ec_id, 5, 3, all5, N, N, pw, &nw);
		ec_parts_free(pw, nw);
		km_ec_pub_free(pubw);
	}
	ec_parts_free(p1, n1);
	ec_parts_free(p2, n2);
	ec_parts_free(p3, n3);
	km_ec_pub_free(pub1);
	km_ec_pub_free(pub2);
	km_ec_pub_free(pub3);
	EC_POINT_free(c.pp);
	km_ec_group_free(c.g);
}

/* ---- kill -9 during a re-share ---------------------------------------- */

typedef struct rs_job {
	const char *id;
	uint32_t k;
	const char *const *members;
	size_t nm;
	int r;
	uint32_t epoch;
	char err[512];
} rs_job;

static void *
rs_thread(void *arg)
{
	rs_job *j = arg;

	j->r = km_mesh_key_reshare(admin, j->id, j->k, j->members, j->nm, NULL,
	    NULL, &j->epoch, j->err, sizeof(j->err));
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

/* The epoch every node reports for @id once they agree, or -1. */
static int
mesh_epoch(const char *id)
{
	int tries;

	for (tries = 0; tries < 60; tries++) {
		int e0 = -1;
		bool same = true;
		size_t i;

		for (i = 0; i < N && same; i++) {
			km_node_status st;
			km_key_info *keys = NULL;
			size_t n = 0, j;
			int e = -1;

			if (km_mesh_status(admin, i, TMO, &st, &keys, &n)
			    != 0) {
				same = false;
				break;
			}
			for (j = 0; j < n; j++) {
				if (strcmp(keys[j].key_id, id) == 0
				    && keys[j].state == KM_KEY_ACTIVE) {
					e = (int)keys[j].epoch;
				}
			}
			free(keys);
			if (i == 0) {
				e0 = e;
			}
			same = e >= 0 && e == e0;
		}
		if (same) {
			return e0;
		}
		usleep(250 * 1000);
	}
	return -1;
}

/* The RSA key works at whatever epoch the catalog says, on all 5. */
static void
rsa_usable_everywhere(const char *id, uint32_t k)
{
	const km_view_key *vk = key_now(id);
	km_rsa_partial *parts[MAXP];
	km_rsa_pub *pub;
	size_t n = 0;
	uint32_t epoch;

	CU_ASSERT_FATAL(vk != NULL);
	epoch = vk->epoch;
	pub = rsa_pub_of(vk);
	CU_ASSERT_FATAL(pub != NULL);
	km_rsa_pub_free(
	    rsa_check_epoch(id, epoch, k, all5, N, pub, parts, &n));
	CU_ASSERT(rsa_all_subsets(pub, parts, n, k) == 10);
	rsa_parts_free(parts, n);
	km_rsa_pub_free(pub);
}

static void
test_kill9_during_reshare(void)
{
	rs_job j1, j2, j3;
	pthread_t t;
	pid_t pid;
	int i, e0, e1, before;

	CU_ASSERT_FATAL(EVP_Digest(msgtext, sizeof(msgtext), digest, NULL,
	                    EVP_sha256(), NULL)
	    == 1);

	/* 1: node4, a new holder, dies as the re-share starts: whichever
	 * side of the commit the kill falls on, the key is usable and the
	 * same on every node once node4 is back */
	e0 = mesh_epoch(rsa_id);
	CU_ASSERT_FATAL(e0 > 0);
	memset(&j1, 0, sizeof(j1));
	j1.id = rsa_id;
	j1.k = K;
	j1.members = all5;
	j1.nm = N;
	before = log_count(1, "KMD-RESHARE-START");
	pid = kmt_mesh_pid(&mesh, 4);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, rs_thread, &j1) == 0);
	for (i = 0; i < 5000 && log_count(1, "KMD-RESHARE-START") == before;
	     i++) {
		usleep(1000);
	}
	CU_ASSERT(kill(pid, SIGKILL) == 0);
	pthread_join(t, NULL);
	CU_ASSERT(kmt_mesh_start(&mesh, 4) == 0);
	CU_ASSERT(login_node(3) == 0);
	e1 = mesh_epoch(rsa_id);
	fprintf(stderr, "  kill -9 at the start: %s\n",
	    j1.r == 0 ? "the commit came first (new epoch)"
	              : "the re-share failed (old epoch kept)");
	CU_ASSERT(e1 == (j1.r == 0 ? e0 + 1 : e0));
	if (j1.r != 0) {
		/* the re-share said why, and the old epoch stays */
		CU_ASSERT(strstr(j1.err, "not re-shared") != NULL
		    || strstr(j1.err, "node4") != NULL);
	}
	rsa_usable_everywhere(rsa_id, K);

	/* 2: node4 is down before the re-share: it fails cleanly (node4
	 * is a new holder) and the old epoch is untouched */
	e0 = mesh_epoch(rsa_id);
	CU_ASSERT(kmt_mesh_kill(&mesh, 4) == 0);
	memset(&j2, 0, sizeof(j2));
	j2.id = rsa_id;
	j2.k = K;
	j2.members = all5;
	j2.nm = N;
	rs_thread(&j2);
	CU_ASSERT(j2.r != 0);
	CU_ASSERT(strstr(j2.err, "node4") != NULL);
	CU_ASSERT(kmt_mesh_start(&mesh, 4) == 0);
	CU_ASSERT(login_node(3) == 0);
	CU_ASSERT(mesh_epoch(rsa_id) == e0);
	for (i = 1; i <= N; i++) {
		CU_ASSERT(share_rows(i, rsa_id, (uint32_t)e0 + 1) == 0);
	}
	rsa_usable_everywhere(rsa_id, K);

	/* 3: every new holder has prepared its share; node5 freezes before
	 * the commit reaches it and is then killed: once it restarts and
	 * catches up on the catalog, its new share is committed and its old
	 * one deleted */
	e0 = mesh_epoch(rsa_id);
	memset(&j3, 0, sizeof(j3));
	j3.id = rsa_id;
	j3.k = K;
	j3.members = all5;
	j3.nm = N;
	before = log_count(1, "KMD-RESHARE-DONE");
	pid = kmt_mesh_pid(&mesh, 5);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, rs_thread, &j3) == 0);
	for (i = 0; i < 10000 && log_count(1, "KMD-RESHARE-DONE") == before;
	     i++) {
		usleep(1000);
	}
	CU_ASSERT(kill(pid, SIGSTOP) == 0);
	pthread_join(t, NULL);
	CU_ASSERT(kill(pid, SIGKILL) == 0);
	if (j3.r != 0) {
		fprintf(stderr, "reshare with node5 frozen: %s\n", j3.err);
	}
	CU_ASSERT(j3.r == 0);
	CU_ASSERT(kmt_mesh_start(&mesh, 5) == 0);
	CU_ASSERT(login_node(4) == 0);
	e1 = mesh_epoch(rsa_id);
	fprintf(stderr,
	    "  frozen node5 caught up: epoch %d -> %d, %d "
	    "share(s) left on node5\n",
	    e0, e1, share_rows(5, rsa_id, 0));
	CU_ASSERT(e1 == (j3.r == 0 ? e0 + 1 : e0));
	/* node5 committed the new epoch and dropped the old */
	CU_ASSERT(share_rows(5, rsa_id, (uint32_t)e1) == 1);
	CU_ASSERT(share_rows(5, rsa_id, 0) == 1);
	rsa_usable_everywhere(rsa_id, K);
}

/* An admin that died between RESHARE_BEGIN and RESHARE_COMMIT: the key is
 * served at its epoch meanwhile, and the next re-share aborts the
 * unfinished epoch and goes through. */
static void
test_interrupted_begin(void)
{
	const km_view_key *vk;
	km_catalog_payload p;
	km_rsa_partial *parts[MAXP];
	km_rsa_pub *pub = NULL;
	size_t applied = 0, n = 0, i;
	uint32_t e, epoch = 0;
	char err[512], msg[256];

	CU_ASSERT_FATAL(EVP_Digest(msgtext, sizeof(msgtext), digest, NULL,
	                    EVP_sha256(), NULL)
	    == 1);
	vk = key_now(rsa_id);
	CU_ASSERT_FATAL(vk != NULL && vk->state == KM_KEY_ACTIVE);
	e = vk->epoch;
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "%s", rsa_id);
	p.epoch = e + 1;
	p.threshold = vk->threshold;
	p.nholders = vk->nholders;
	p.holders = (km_catalog_holder *)vk->holders;
	p.public_data = vk->public_data;
	p.public_len = vk->public_len;
	CU_ASSERT_FATAL(
	    km_mesh_append(admin, &p, &applied, err, sizeof(err)) == 0);
	vk = key_now(rsa_id);
	CU_ASSERT(vk->state == KM_KEY_RESHARING);
	CU_ASSERT(vk->next_epoch == e + 1);
	/* still served at epoch e */
	CU_ASSERT_FATAL(
	    km_rsa_pub_decode(vk->public_data, vk->public_len, &pub) == 0);
	for (i = 0; i < K; i++) {
		CU_ASSERT(rsa_partials(
		              i, rsa_id, e, pub, parts, &n, msg, sizeof(msg))
		    == 0);
	}
	CU_ASSERT(n == K && rsa_combine_verify(pub, parts, n) == 0);
	rsa_parts_free(parts, n);
	km_rsa_pub_free(pub);
	/* the next re-share recovers */
	CU_ASSERT(reshare(rsa_id, 0, NULL, 0, &epoch) == 0);
	CU_ASSERT(epoch == e + 1);
	CU_ASSERT(mesh_epoch(rsa_id) == (int)e + 1);
	rsa_usable_everywhere(rsa_id, K);
}

/* ---- each daemon decides on its own ---------------------------------- */

static void
rs_req(km_buf *req, uint32_t round, const char *id, uint32_t epoch,
    uint32_t new_epoch, uint32_t k, const char *const *nodes, size_t n)
{
	size_t i;

	km_buf_reset(req);
	CU_ASSERT(
	    km_rpc_request(req, KM_MSG_RESHARE_STEP, id, epoch, NULL) == 0);
	CU_ASSERT(km_buf_put_u32(req, round) == 0);
	CU_ASSERT(km_buf_put_u32(req, new_epoch) == 0);
	CU_ASSERT(km_buf_put_u32(req, k) == 0);
	CU_ASSERT(km_buf_put_u32(req, (uint32_t)n) == 0);
	for (i = 0; i < n; i++) {
		CU_ASSERT(km_buf_put_u32(req, (uint32_t)(i + 1)) == 0);
		CU_ASSERT(km_buf_put_cstring(req, nodes[i]) == 0);
	}
}

static void
test_parties_check(void)
{
	static const char *const three[] = { "node2", "node3", "node4" };
	uint32_t e = key_now(ec_id)->epoch;
	km_buf req, rep;
	char msg[300];
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	/* an admin's start that no admin authorised on the parties: the
	 * dealers refuse, nothing changes */
	rs_req(&req, 0, ec_id, e, e + 1, 2, three, 3);
	r = km_rpc_call(
	    km_mesh_client(admin, 0), &req, 30000, &rep, msg, sizeof(msg));
	CU_ASSERT(r == KM_ERR_AUTH);
	CU_ASSERT(strstr(msg, "no admin authorised") != NULL);
	CU_ASSERT(strstr(msg, "not re-shared") != NULL);
	/* a client may not take part at all */
	r = km_rpc_call(
	    km_mesh_client(client, 1), &req, TMO, &rep, msg, sizeof(msg));
	CU_ASSERT(r == KM_ERR_AUTH);
	/* an admin may not play the coordinator's rounds */
	rs_req(&req, 2, ec_id, e, e + 1, 2, three, 3);
	r = km_rpc_call(
	    km_mesh_client(admin, 1), &req, TMO, &rep, msg, sizeof(msg));
	CU_ASSERT(r == KM_ERR_AUTH);
	CU_ASSERT(strstr(msg, "only from a node") != NULL);
	/* a stale epoch and a skipped one are refused */
	rs_req(&req, 8, ec_id, e - 1, e, 2, three, 3);
	r = km_rpc_call(
	    km_mesh_client(admin, 1), &req, TMO, &rep, msg, sizeof(msg));
	CU_ASSERT(r == KM_ERR_STALE);
	rs_req(&req, 8, ec_id, e, e + 2, 2, three, 3);
	r = km_rpc_call(
	    km_mesh_client(admin, 1), &req, TMO, &rep, msg, sizeof(msg));
	CU_ASSERT(r == KM_ERR_INVALID_ARG);
	/* an unknown key */
	rs_req(&req, 8, "knosuchkey", 1, 2, 2, three, 3);
	r = km_rpc_call(
	    km_mesh_client(admin, 1), &req, TMO, &rep, msg, sizeof(msg));
	CU_ASSERT(r == KM_ERR_NOT_FOUND);
	/* garbage after the round: an error reply, and still serving */
	km_buf_reset(&req);
	CU_ASSERT(
	    km_rpc_request(&req, KM_MSG_RESHARE_STEP, ec_id, e, NULL) == 0);
	CU_ASSERT(km_buf_put_u32(&req, 3) == 0);
	CU_ASSERT(km_buf_put_u32(&req, 0xffffffffu) == 0);
	r = km_rpc_call(
	    km_mesh_client(admin, 2), &req, TMO, &rep, msg, sizeof(msg));
	CU_ASSERT(r != 0);
	CU_ASSERT(key_now(ec_id)->epoch == e);
	CU_ASSERT(mesh_epoch(ec_id) == (int)e);
	km_buf_free(&req);
	km_buf_free(&rep);
}

/* ---- the CLI ----------------------------------------------------------- */

/* Runs keymesh with @args; 0 when it failed with one line on stderr
 * containing @want and nothing on stdout. */
static int
cli_fails(const char *args, const char *want)
{
	char out[4200], errf[4200];
	uint8_t *d = NULL;
	size_t len = 0, lines = 0, i;
	int rc, ok;

	snprintf(out, sizeof(out), "%s/cli.out", mesh.dir);
	snprintf(errf, sizeof(errf), "%s/cli.err", mesh.dir);
	rc = kmt_run("%s key reshare --conf %s %s >%s 2>%s", kmt_keymesh(),
	    mesh.conf, args, out, errf);
	if (rc == 0) {
		return -1;
	}
	if (km_read_file(errf, &d, &len, 1u << 16) != 0) {
		return -1;
	}
	for (i = 0; i < len; i++) {
		lines += d[i] == '\n';
	}
	d = realloc(d, len + 1);
	d[len] = '\0';
	ok = lines == 1 && strstr((char *)d, want) != NULL;
	if (!ok) {
		fprintf(stderr, "keymesh key reshare %s: %s", args, (char *)d);
	}
	free(d);
	return ok ? 0 : -1;
}

static void
test_cli_errors(void)
{
	uint32_t e0 = key_now(ec_id)->epoch;

	CU_ASSERT(
	    cli_fails("--label no-such-key", "no key 'no-such-key'") == 0);
	CU_ASSERT(
	    cli_fails("--label rs-ec --threshold 9", "threshold 9") == 0);
	CU_ASSERT(cli_fails("--label rs-ec --members node1,node2 "
	                    "--threshold 3",
	              "threshold 3")
	    == 0);
	CU_ASSERT(cli_fails("--label rs-ec --members node1,node9",
	              "'node9' is not a node")
	    == 0);
	CU_ASSERT(cli_fails("--label rs-rsa --threshold 1",
	              "threshold of at least 2")
	    == 0);
	CU_ASSERT(cli_fails("--threshold 2", "--label") == 0);
	CU_ASSERT(
	    cli_fails("--label rs-ec --threshold x", "--threshold") == 0);
	/* nothing changed */
	CU_ASSERT(key_now(ec_id)->epoch == e0);
	/* and the CLI's success path */
	CU_ASSERT(kmt_run("%s key reshare --conf %s --label rs-ec "
	                  ">%s/cli.out 2>/dev/null && grep -q 'epoch %u is "
	                  "current' %s/cli.out",
	              kmt_keymesh(), mesh.conf, mesh.dir, e0 + 1, mesh.dir)
	    == 0);
	CU_ASSERT(key_now(ec_id)->epoch == e0 + 1);
}

/* ---- eviction (docs/eviction.md) -------------------------------------- */

/*
 * An admin evicts node5 (keymesh node evict): the coordinator re-shares
 * the RSA key without it, on its own, under a new epoch.  Node5's share
 * of the old epoch (its partial) combined with any k-1 current partials
 * gives no valid signature, under the new key data or the old.  Last in
 * the suite: the mesh has lost node5 afterwards.
 */
static void
test_evict_old_share_useless(void)
{
	km_rsa_partial *p_old[MAXP], *p_new[MAXP], *mix[MAXP];
	km_rsa_pub *pub0, *pub_old, *pub_new;
	size_t n_old = 0, n_new = 0, i, j, tried = 0;
	uint32_t e0 = 0;
	uint64_t until;
	char err[512], msg[256];
	long n5;
	int node;

	km_ec_partial *q_old[MAXP], *q_new[MAXP], *qmix[MAXP];
	km_ec_pub *qpub_old, *qpub_new;
	size_t nq_old = 0, nq_new = 0, qtried = 0;
	uint32_t qe0 = 0;
	ec_ctx c;

	/* a known start: 3 of 5 on every node, both keys */
	CU_ASSERT_FATAL(reshare(rsa_id, K, all5, N, &e0) == 0);
	pub0 = rsa_pub_of(key_now(rsa_id));
	CU_ASSERT_FATAL(pub0 != NULL);
	pub_old = rsa_check_epoch(rsa_id, e0, K, all5, N, pub0, p_old, &n_old);
	CU_ASSERT_FATAL(n_old == N);
	CU_ASSERT_FATAL(reshare(ec_id, K, all5, N, &qe0) == 0);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_FATAL(km_ec_group_new(NID_X9_62_prime256v1, &c.g) == 0);
	qpub_old = ec_pub_of(&c, key_now(ec_id));
	CU_ASSERT_FATAL(qpub_old != NULL);
	CU_ASSERT_FATAL(ec_ctx_init(&c, qpub_old) == 0);
	km_ec_pub_free(qpub_old);
	qpub_old = ec_check_epoch(&c, ec_id, qe0, K, all5, N, N, q_old, &nq_old);
	CU_ASSERT_FATAL(nq_old == N);
	CU_ASSERT(km_mesh_node_evict(admin, "node5", "test-reshare", NULL,
	              NULL, err, sizeof(err))
	    == 0);
	/* the coordinator re-shares it, no admin asked */
	until = km_now_ms() + 60000;
	while (km_now_ms() < until && key_now(rsa_id) != NULL
	    && key_now(rsa_id)->epoch == e0) {
		usleep(250 * 1000);
	}
	pub_new = rsa_check_epoch(
	    rsa_id, e0 + 1, K, first4, 4, pub0, p_new, &n_new);
	CU_ASSERT_FATAL(n_new == 4);
	/* node5's old partial (p_old[4]) with any k-1 = 2 current ones */
	for (i = 0; i < n_new; i++) {
		for (j = i + 1; j < n_new; j++) {
			mix[0] = p_old[4];
			mix[1] = p_new[i];
			mix[2] = p_new[j];
			CU_ASSERT(rsa_combine_verify(pub_new, mix, 3) != 0);
			CU_ASSERT(rsa_combine_verify(pub_old, mix, 3) != 0);
			tried++;
		}
	}
	CU_ASSERT(tried == 6);
	/* the same for the EC key (re-shared by the same coordinator) */
	until = km_now_ms() + 60000;
	while (km_now_ms() < until && key_now(ec_id) != NULL
	    && key_now(ec_id)->epoch == qe0) {
		usleep(250 * 1000);
	}
	qpub_new = ec_check_epoch(
	    &c, ec_id, qe0 + 1, K, first4, 4, 4, q_new, &nq_new);
	CU_ASSERT_FATAL(nq_new == 4);
	for (i = 0; i < nq_new; i++) {
		for (j = i + 1; j < nq_new; j++) {
			qmix[0] = q_old[4];
			qmix[1] = q_new[i];
			qmix[2] = q_new[j];
			CU_ASSERT(ec_combine_ok(&c, qpub_new, qmix, 3) != 0);
			CU_ASSERT(ec_combine_ok(&c, qpub_old, qmix, 3) != 0);
			qtried++;
		}
	}
	CU_ASSERT(qtried == 6);
	/* the old shares are gone from the holders */
	for (node = 1; node <= 4; node++) {
		CU_ASSERT(share_rows(node, rsa_id, e0) == 0);
		CU_ASSERT(share_rows(node, ec_id, qe0) == 0);
	}
	/* node5 serves no current partial */
	n5 = km_mesh_find(client, "node5");
	CU_ASSERT_FATAL(n5 >= 0);
	{
		km_rsa_partial *none[MAXP];
		size_t nn = 0;

		CU_ASSERT(rsa_partials((size_t)n5, rsa_id, e0 + 1, pub_new,
		              none, &nn, msg, sizeof(msg))
		    != 0);
		rsa_parts_free(none, nn);
	}
	/* and a second eviction of it is refused in one line */
	CU_ASSERT(km_mesh_node_evict(
	              admin, "node5", NULL, NULL, NULL, err, sizeof(err))
	    == KM_ERR_EXISTS);
	CU_ASSERT(strstr(err, "evicted already") != NULL);
	rsa_parts_free(p_old, n_old);
	rsa_parts_free(p_new, n_new);
	km_rsa_pub_free(pub0);
	km_rsa_pub_free(pub_old);
	km_rsa_pub_free(pub_new);
	ec_parts_free(q_old, nq_old);
	ec_parts_free(q_new, nq_new);
	km_ec_pub_free(qpub_old);
	km_ec_pub_free(qpub_new);
	EC_POINT_free(c.pp);
	km_ec_group_free(c.g);
}

static const kmt_test reshare_tests[] = {
	{ "rsa_3of5_2of4_3of5", test_rsa_reshare_cycle },
	{ "ec_3of5_2of4_3of5_weighted", test_ec_reshare_cycle },
	{ "parties_check_on_their_own", test_parties_check },
	{ "interrupted_begin_then_reshare", test_interrupted_begin },
	{ "cli_errors_one_line", test_cli_errors },
	{ "kill9_during_reshare", test_kill9_during_reshare },
	{ "evict_old_share_useless", test_evict_old_share_useless },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "reshare", suite_init, suite_cleanup, reshare_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
