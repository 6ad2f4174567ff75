/*
 * Unit tests for src/trust/evidence.c: real evidence of a bad RSA or ECDH
 * partial is accepted, and every way a client could try to frame an
 * honest node is refused (docs/evidence.md §3).
 *
 * The exchanges are built exactly as the module and the daemon build
 * them: request bodies with km_ops_*_request, signed envelopes with
 * km_env_seal, reply bodies as daemon/service.c makes them (header, the
 * partials, the SHA-256 of the request body), with certificates from a
 * fresh mesh CA and an RSA key dealt from the committed safe primes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/rsa_int.h"
#include "crypto/shamir.h"
#include "kmt.h"
#include "mesh/ops.h"
#include "mesh/view.h"
#include "net/envelope.h"
#include "pki/pki.h"
#include "proto/proto.h"
#include "store/evict.h"
#include "trust/evidence.h"
#include "trust/policy.h"
#include "util/err.h"
#include "util/util.h"

typedef struct signer {
	EVP_PKEY *key;
	uint8_t *der;
	size_t derlen;
} signer;

static char ca[4096], other[4096];
static X509_STORE *store;
static signer s_n1, s_n2, s_app, s_intruder;

static km_rsa_pub *rsa_pub;
static km_rsa_share *rsa_shares[3];
static km_buf rsa_pub_enc;

static km_ec_group *ec_g;
static km_ec_pub *ec_pub;
static km_ec_share **ec_shares;
static km_buf ec_pub_enc;

/* ---- fixtures ---- */

static char *
slurp(const char *dir, const char *what)
{
	char path[4096];
	uint8_t *data = NULL;
	size_t len;

	if (km_pki_path(path, sizeof(path), dir, what, NULL) != 0
	    || km_read_file(path, &data, &len, 1 << 20) != 0) {
		return NULL;
	}
	return (char *)data;
}

static int
load_signer(const char *dir, const char *name, signer *s)
{
	char path[4096];
	X509 *x = NULL;
	uint8_t *der = NULL;
	int n;

	km_pki_path(path, sizeof(path), dir, name, ".key");
	if (km_pki_load_key(path, &s->key) != 0) {
		return -1;
	}
	km_pki_path(path, sizeof(path), dir, name, ".crt");
	if (km_pki_load_cert(path, &x) != 0) {
		return -1;
	}
	n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0) {
		return -1;
	}
	s->der = malloc((size_t)n);
	memcpy(s->der, der, (size_t)n);
	s->derlen = (size_t)n;
	OPENSSL_free(der);
	return 0;
}

static int
load_primes(BIGNUM **p, BIGNUM **q)
{
	char path[4096], line[2048];
	FILE *fp;

	snprintf(
	    path, sizeof(path), "%s/tests/data/rsa/safe-2048.txt", KM_SRCDIR);
	if ((fp = fopen(path, "r")) == NULL) {
		return -1;
	}
	*p = *q = NULL;
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "p=", 2) == 0) {
			BN_hex2bn(p, line + 2);
		} else if (strncmp(line, "q=", 2) == 0) {
			BN_hex2bn(q, line + 2);
		}
	}
	fclose(fp);
	return (*p != NULL && *q != NULL) ? 0 : -1;
}

static int
suite_init(void)
{
	const char *d = kmt_tmpdir();
	char *cap, *crl;
	BIGNUM *p = NULL, *q = NULL, *secret = NULL;
	int r;

	if (d == NULL) {
		return -1;
	}
	snprintf(ca, sizeof(ca), "%s/ca", d);
	snprintf(other, sizeof(other), "%s/other", d);
	if (kmt_run("mkdir %s %s", ca, other) != 0
	    || km_pki_ca_init(ca, 0) != 0 || km_pki_ca_init(other, 0) != 0
	    || km_pki_cert_issue(ca, KM_ROLE_NODE, "node1", 0) != 0
	    || km_pki_cert_issue(ca, KM_ROLE_NODE, "node2", 0) != 0
	    || km_pki_cert_issue(ca, KM_ROLE_CLIENT, "app", 0) != 0
	    || km_pki_cert_issue(other, KM_ROLE_NODE, "node1", 0) != 0) {
		return -1;
	}
	if (load_signer(ca, "node1", &s_n1) != 0
	    || load_signer(ca, "node2", &s_n2) != 0
	    || load_signer(ca, "app", &s_app) != 0
	    || load_signer(other, "node1", &s_intruder) != 0) {
		return -1;
	}
	cap = slurp(ca, "ca.crt");
	crl = slurp(ca, "crl.pem");
	r = (cap == NULL || crl == NULL
	        || km_pki_store_load(cap, crl, &store) != 0)
	    ? -1
	    : 0;
	free(cap);
	free(crl);
	if (r != 0) {
		return -1;
	}
	/* RSA 2-of-3 with verification keys (Shoup's dealer) */
	if (load_primes(&p, &q) != 0
	    || km_rsa_deal_from_primes(p, q, NULL, 2, 3, &rsa_pub, rsa_shares)
	        != 0) {
		return -1;
	}
	BN_free(p);
	BN_free(q);
	km_buf_init(&rsa_pub_enc);
	if (km_rsa_pub_encode(rsa_pub, &rsa_pub_enc) != 0) {
		return -1;
	}
	/* EC P-256 2-of-3 */
	if (km_ec_group_new(NID_X9_62_prime256v1, &ec_g) != 0
	    || (secret = BN_new()) == NULL
	    || BN_rand_range(secret, ec_g->order) != 1 || BN_is_zero(secret)
	    || km_ec_dealer_split(ec_g, secret, 2, 3, &ec_shares, &ec_pub)
	        != 0) {
		BN_clear_free(secret);
		return -1;
	}
	BN_clear_free(secret);
	km_buf_init(&ec_pub_enc);
	if (km_ec_pub_encode(ec_g, ec_pub, &ec_pub_enc) != 0) {
		return -1;
	}
	return 0;
}

static void
free_signer(signer *s)
{
	EVP_PKEY_free(s->key);
	free(s->der);
}

static int
suite_cleanup(void)
{
	unsigned i;

	free_signer(&s_n1);
	free_signer(&s_n2);
	free_signer(&s_app);
	free_signer(&s_intruder);
	X509_STORE_free(store);
	km_rsa_shares_free(rsa_shares, 3);
	km_rsa_pub_free(rsa_pub);
	km_buf_free(&rsa_pub_enc);
	for (i = 0; ec_shares != NULL && i < 3; i++) {
		km_ec_share_free(ec_shares[i]);
	}
	free(ec_shares);
	km_ec_pub_free(ec_pub);
	km_ec_group_free(ec_g);
	km_buf_free(&ec_pub_enc);
	return 0;
}

/* The catalog: index i is on node i, key "rsa1" / "ec1" at epoch 1. */
static int
lookup(void *arg, const char *key_id, uint32_t epoch, km_evidence_key *k)
{
	uint32_t i;

	(void)arg;
	if (epoch != 1) {
		return KM_ERR_NOT_FOUND;
	}
	if (strcmp(key_id, "rsa1") == 0) {
		k->key_type = KM_EVIDENCE_KEY_RSA;
		km_buf_put_raw(&k->pub, rsa_pub_enc.data, rsa_pub_enc.len);
	} else if (strcmp(key_id, "ec1") == 0) {
		k->key_type = KM_EVIDENCE_KEY_EC_P256;
		km_buf_put_raw(&k->pub, ec_pub_enc.data, ec_pub_enc.len);
	} else {
		return KM_ERR_NOT_FOUND;
	}
	k->nholders = 3;
	for (i = 0; i < 3; i++) {
		k->holders[i].index = i + 1;
		snprintf(k->holders[i].node, sizeof(k->holders[i].node),
		    "node%u", i + 1);
	}
	return 0;
}

/* ---- building exchanges ---- */

static uint8_t ticket[KM_PROTO_TICKET_LEN];

/* An rsa-partial request body for x (|N| bytes). */
static void
rsa_request(const uint8_t *x, size_t xlen, bool with_proof, km_buf *out)
{
	km_ops_rsa_req q;

	memset(&q, 0, sizeof(q));
	q.key_id = "rsa1";
	q.epoch = 1;
	q.mech = 0x3; /* CKM_RSA_X_509 */
	q.kind = KM_OPS_SIGN;
	q.x = x;
	q.xlen = xlen;
	q.with_proof = with_proof;
	km_buf_reset(out);
	CU_ASSERT_FATAL(km_ops_rsa_request(&q, ticket, out) == 0);
}

/* A reply body: header, the partials of @idx, the request's digest. */
static void
reply_body(uint32_t type, const km_buf *parts, const uint32_t *idx, size_t n,
    const km_buf *req, km_buf *out)
{
	km_indexed_blob v[4];
	uint8_t d[32];
	size_t i;

	for (i = 0; i < n; i++) {
		v[i].index = idx[i];
		v[i].data = parts[i].data;
		v[i].len = parts[i].len;
	}
	km_buf_reset(out);
	CU_ASSERT_FATAL(
	    EVP_Digest(req->data, req->len, d, NULL, EVP_sha256(), NULL) == 1);
	CU_ASSERT_FATAL(km_rep_encode_hdr(out, type, 0, "") == 0
	    && km_proto_put_blobs(out, v, n) == 0
	    && km_buf_put_raw(out, d, sizeof(d)) == 0);
}

static void
seal(km_buf *out, uint8_t type, const signer *s, const uint8_t nonce[16],
    const km_buf *body)
{
	CU_ASSERT_FATAL(km_env_seal(out, NULL, type, s->der, s->derlen,
	                    km_now_ms(), nonce, body->data, body->len, s->key)
	    == 0);
}

/* x = a fixed pattern below N. */
static void
rsa_x(uint8_t *x, size_t len, uint8_t fill, BIGNUM **bn)
{
	memset(x, fill, len);
	x[0] = 0x1f;
	*bn = BN_bin2bn(x, (int)len, NULL);
	CU_ASSERT_FATAL(*bn != NULL);
}

/* A partial of index @index for x, honest or with x_i doubled. */
static void
rsa_partial(const BIGNUM *x, unsigned index, bool bad, bool proof, km_buf *out)
{
	km_rsa_partial *p = NULL;
	BN_CTX *ctx = BN_CTX_new();

	CU_ASSERT_FATAL(
	    km_rsa_partial_new(rsa_pub, rsa_shares[index - 1], x, proof, &p)
	    == 0);
	if (bad) {
		CU_ASSERT_FATAL(
		    BN_mod_add(p->xi, p->xi, p->xi, rsa_pub->n_mod, ctx) == 1);
	}
	km_buf_init(out);
	CU_ASSERT_FATAL(km_rsa_partial_encode(p, out) == 0);
	km_rsa_partial_free(p);
	BN_CTX_free(ctx);
}

/*
 * One RSA exchange: the client asks node @index's holder for x with a
 * proof; @signer answers with the partial of @index (bad or not).
 */
static void
rsa_exchange(uint8_t fill, unsigned index, bool bad, bool proof,
    const signer *node, km_buf *req_env, km_buf *rep_env, km_buf *req_body)
{
	uint8_t x[256], nonce[16];
	BIGNUM *bn;
	km_buf part, rep;

	rsa_x(x, sizeof(x), fill, &bn);
	rsa_request(x, sizeof(x), proof, req_body);
	rsa_partial(bn, index, bad, proof, &part);
	km_buf_init(&rep);
	reply_body(KM_MSG_RSA_PARTIAL, &part, &index, 1, req_body, &rep);
	CU_ASSERT_FATAL(km_random(nonce, sizeof(nonce)) == 0);
	seal(req_env, KM_ENV_REQUEST, &s_app, nonce, req_body);
	seal(rep_env, KM_ENV_REPLY, node, nonce, &rep);
	km_buf_free(&part);
	km_buf_free(&rep);
	BN_free(bn);
}

static void
ec_point(uint8_t *out, size_t *len)
{
	BIGNUM *s = BN_new();
	EC_POINT *pt = EC_POINT_new(ec_g->group);

	CU_ASSERT_FATAL(s != NULL && pt != NULL);
	CU_ASSERT_FATAL(BN_rand_range(s, ec_g->order) == 1);
	CU_ASSERT_FATAL(
	    EC_POINT_mul(ec_g->group, pt, s, NULL, NULL, NULL) == 1);
	*len = EC_POINT_point2oct(
	    ec_g->group, pt, POINT_CONVERSION_UNCOMPRESSED, out, 133, NULL);
	CU_ASSERT_FATAL(*len > 0);
	EC_POINT_free(pt);
	BN_free(s);
}

static void
ec_exchange(unsigned index, bool bad, const signer *node, km_buf *req_env,
    km_buf *rep_env)
{
	uint8_t pt[133], nonce[16];
	size_t ptlen;
	EC_POINT *peer = NULL;
	km_ec_partial *p = NULL;
	km_buf req, part, rep;

	ec_point(pt, &ptlen);
	CU_ASSERT_FATAL(km_ec_point_from_octets(ec_g, pt, ptlen, &peer) == 0);
	CU_ASSERT_FATAL(
	    km_ecdh_partial(ec_g, ec_pub, ec_shares[index - 1], peer, &p)
	    == 0);
	if (bad) {
		/* what KEYMESHD_TEST_FAULT=corrupt-partials does */
		CU_ASSERT_FATAL(
		    EC_POINT_dbl(ec_g->group, p->z, p->z, NULL) == 1);
	}
	km_buf_init(&req);
	km_buf_init(&part);
	km_buf_init(&rep);
	CU_ASSERT_FATAL(km_ec_partial_encode(ec_g, p, &part) == 0);
	CU_ASSERT_FATAL(
	    km_ops_ecdh_request("ec1", 1, 0x1050, pt, ptlen, ticket, &req)
	    == 0);
	reply_body(KM_MSG_ECDH_PARTIAL, &part, &index, 1, &req, &rep);
	CU_ASSERT_FATAL(km_random(nonce, sizeof(nonce)) == 0);
	seal(req_env, KM_ENV_REQUEST, &s_app, nonce, &req);
	seal(rep_env, KM_ENV_REPLY, node, nonce, &rep);
	km_ec_partial_free(p);
	EC_POINT_free(peer);
	km_buf_free(&req);
	km_buf_free(&part);
	km_buf_free(&rep);
}

static int
check(const km_buf *req_env, const km_buf *rep_env, km_evidence_result *res,
    char *why, size_t whylen)
{
	km_buf ev;
	int r;

	km_buf_init(&ev);
	CU_ASSERT_FATAL(km_evidence_encode(&ev, req_env->data, req_env->len,
	                    rep_env->data, rep_env->len)
	    == 0);
	r = km_evidence_verify(ev.data, ev.len, store, km_now_ms(), lookup,
	    NULL, res, why, whylen);
	km_buf_free(&ev);
	return r;
}

#define EXCHANGE_BUFS                                                         \
	km_buf qe, pe, qb;                                                    \
	km_evidence_result res;                                               \
	char why[200];                                                        \
	km_buf_init(&qe);                                                     \
	km_buf_init(&pe);                                                     \
	km_buf_init(&qb)

#define EXCHANGE_FREE                                                         \
	km_buf_free(&qe);                                                     \
	km_buf_free(&pe);                                                     \
	km_buf_free(&qb)

/* ---- tests ---- */

static void
test_rsa_real(void)
{
	EXCHANGE_BUFS;
	int r;

	rsa_exchange(0x42, 1, true, true, &s_n1, &qe, &pe, &qb);
	r = check(&qe, &pe, &res, why, sizeof(why));
	if (r != 0) {
		fprintf(stderr, "refused: %s\n", why);
	}
	CU_ASSERT(r == 0);
	CU_ASSERT(strcmp(res.accused, "node1") == 0);
	CU_ASSERT(strcmp(res.reporter, "app") == 0);
	CU_ASSERT(strcmp(res.key_id, "rsa1") == 0);
	CU_ASSERT(res.epoch == 1 && res.index == 1);
	CU_ASSERT(res.msg_type == KM_MSG_RSA_PARTIAL);
	CU_ASSERT(strstr(res.what, "Shoup") != NULL);
	EXCHANGE_FREE;
}

static void
test_ecdh_real(void)
{
	EXCHANGE_BUFS;
	int r;

	ec_exchange(2, true, &s_n2, &qe, &pe);
	r = check(&qe, &pe, &res, why, sizeof(why));
	if (r != 0) {
		fprintf(stderr, "refused: %s\n", why);
	}
	CU_ASSERT(r == 0);
	CU_ASSERT(strcmp(res.accused, "node2") == 0);
	CU_ASSERT(strcmp(res.key_id, "ec1") == 0 && res.index == 2);
	CU_ASSERT(strstr(res.what, "Chaum-Pedersen") != NULL);
	EXCHANGE_FREE;
}

/* An honest partial with its proof is never evidence. */
static void
test_valid_partial(void)
{
	EXCHANGE_BUFS;

	rsa_exchange(0x43, 1, false, true, &s_n1, &qe, &pe, &qb);
	CU_ASSERT(
	    check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_INVALID_ARG);
	CU_ASSERT(strstr(why, "proof holds") != NULL);
	km_buf_reset(&qe);
	km_buf_reset(&pe);
	ec_exchange(1, false, &s_n1, &qe, &pe);
	CU_ASSERT(
	    check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_INVALID_ARG);
	EXCHANGE_FREE;
}

/*
 * The framing attempt the request digest stops: the client takes an
 * honest reply to x and pairs it with a request it signs itself, with the
 * same nonce but another x, so that the honest proof fails against it.
 */
static void
test_altered_x(void)
{
	EXCHANGE_BUFS;
	km_buf body2, forged;
	km_env e;
	uint8_t x2[256], nonce[16];
	BIGNUM *bn2;

	km_buf_init(&body2);
	km_buf_init(&forged);
	rsa_exchange(0x44, 1, false, true, &s_n1, &qe, &pe, &qb);
	CU_ASSERT_FATAL(km_env_parse(qe.data, qe.len, 65536, &e) == 0);
	memcpy(nonce, e.nonce, sizeof(nonce));
	rsa_x(x2, sizeof(x2), 0x45, &bn2);
	rsa_request(x2, sizeof(x2), true, &body2);
	seal(&forged, KM_ENV_REQUEST, &s_app, nonce, &body2);
	CU_ASSERT(
	    check(&forged, &pe, &res, why, sizeof(why)) == KM_ERR_INVALID_ARG);
	CU_ASSERT(strstr(why, "another request") != NULL);
	/* and x altered in place: the client's signature breaks */
	km_buf_reset(&forged);
	km_buf_put_raw(&forged, qe.data, qe.len);
	forged.data[forged.len - 100] ^= 1;
	CU_ASSERT(check(&forged, &pe, &res, why, sizeof(why)) != 0);
	BN_free(bn2);
	km_buf_free(&body2);
	km_buf_free(&forged);
	EXCHANGE_FREE;
}

/* A (bad) reply to one request paired with another request. */
static void
test_swapped_reply(void)
{
	EXCHANGE_BUFS;
	km_buf qe2, pe2, qb2;

	km_buf_init(&qe2);
	km_buf_init(&pe2);
	km_buf_init(&qb2);
	rsa_exchange(0x46, 1, true, true, &s_n1, &qe, &pe, &qb);
	rsa_exchange(0x47, 1, true, true, &s_n1, &qe2, &pe2, &qb2);
	CU_ASSERT(
	    check(&qe, &pe2, &res, why, sizeof(why)) == KM_ERR_INVALID_ARG);
	CU_ASSERT(strstr(why, "nonce") != NULL);
	CU_ASSERT(check(&qe2, &pe2, &res, why, sizeof(why)) == 0);
	km_buf_free(&qe2);
	km_buf_free(&pe2);
	km_buf_free(&qb2);
	EXCHANGE_FREE;
}

/* node2 signs a bad partial of index 1, which node1 holds: not node2's. */
static void
test_reply_other_node(void)
{
	EXCHANGE_BUFS;

	rsa_exchange(0x48, 1, true, true, &s_n2, &qe, &pe, &qb);
	CU_ASSERT(check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_RANGE);
	km_buf_reset(&qe);
	km_buf_reset(&pe);
	/* a node of another CA with node1's name */
	rsa_exchange(0x49, 1, true, true, &s_intruder, &qe, &pe, &qb);
	CU_ASSERT(check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_AUTH);
	EXCHANGE_FREE;
}

/* The client signs the "reply" itself. */
static void
test_client_signed_reply(void)
{
	EXCHANGE_BUFS;

	rsa_exchange(0x4a, 1, true, true, &s_app, &qe, &pe, &qb);
	CU_ASSERT(check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_AUTH);
	CU_ASSERT(strstr(why, "not a node") != NULL);
	/* a node's request cannot be a client's request either */
	km_buf_reset(&qe);
	km_buf_reset(&pe);
	ec_exchange(1, true, &s_n1, &qe, &pe);
	CU_ASSERT(check(&pe, &pe, &res, why, sizeof(why)) != 0);
	CU_ASSERT(check(&qe, &qe, &res, why, sizeof(why)) != 0);
	EXCHANGE_FREE;
}

/* Index 2 belongs to node2; node1 sending it is not evidence here. */
static void
test_wrong_index(void)
{
	EXCHANGE_BUFS;

	rsa_exchange(0x4b, 2, true, true, &s_n1, &qe, &pe, &qb);
	CU_ASSERT(check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_RANGE);
	km_buf_reset(&qe);
	km_buf_reset(&pe);
	ec_exchange(3, true, &s_n1, &qe, &pe);
	CU_ASSERT(check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_RANGE);
	EXCHANGE_FREE;
}

/* A hot-path RSA partial (no proof) proves nothing. */
static void
test_no_proof(void)
{
	EXCHANGE_BUFS;

	rsa_exchange(0x4c, 1, true, false, &s_n1, &qe, &pe, &qb);
	CU_ASSERT(
	    check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_NOT_SUPPORTED);
	EXCHANGE_FREE;
}

/* Unknown keys, old evidence, evidence from the future. */
static void
test_unknown_and_stale(void)
{
	EXCHANGE_BUFS;
	km_buf ev;

	km_buf_init(&ev);
	ec_exchange(1, true, &s_n1, &qe, &pe);
	CU_ASSERT_FATAL(
	    km_evidence_encode(&ev, qe.data, qe.len, pe.data, pe.len) == 0);
	CU_ASSERT(km_evidence_verify(ev.data, ev.len, store, km_now_ms(),
	              lookup, NULL, &res, why, sizeof(why))
	    == 0);
	CU_ASSERT(km_evidence_verify(ev.data, ev.len, store,
	              km_now_ms() + KM_EVIDENCE_MAX_AGE_MS + 60000, lookup,
	              NULL, &res, why, sizeof(why))
	    == KM_ERR_STALE);
	CU_ASSERT(
	    km_evidence_verify(ev.data, ev.len, store, km_now_ms() - 3600000,
	        lookup, NULL, &res, why, sizeof(why))
	    == KM_ERR_STALE);
	km_buf_free(&ev);
	EXCHANGE_FREE;
}

static int
lookup_none(void *arg, const char *key_id, uint32_t epoch, km_evidence_key *k)
{
	(void)arg;
	(void)key_id;
	(void)epoch;
	(void)k;
	return KM_ERR_NOT_FOUND;
}

static void
test_unknown_key(void)
{
	EXCHANGE_BUFS;
	km_buf ev;

	km_buf_init(&ev);
	ec_exchange(1, true, &s_n1, &qe, &pe);
	CU_ASSERT_FATAL(
	    km_evidence_encode(&ev, qe.data, qe.len, pe.data, pe.len) == 0);
	CU_ASSERT(km_evidence_verify(ev.data, ev.len, store, km_now_ms(),
	              lookup_none, NULL, &res, why, sizeof(why))
	    == KM_ERR_NOT_FOUND);
	km_buf_free(&ev);
	EXCHANGE_FREE;
}

/* A refusal, signed by the node, is not a partial. */
static void
test_refusal_reply(void)
{
	EXCHANGE_BUFS;
	km_buf rep;
	km_env e;
	uint8_t nonce[16];

	km_buf_init(&rep);
	rsa_exchange(0x4d, 1, true, true, &s_n1, &qe, &pe, &qb);
	CU_ASSERT_FATAL(km_env_parse(qe.data, qe.len, 65536, &e) == 0);
	memcpy(nonce, e.nonce, sizeof(nonce));
	CU_ASSERT_FATAL(
	    km_rep_encode_hdr(&rep, KM_MSG_RSA_PARTIAL, KM_ERR_POLICY, "no")
	    == 0);
	km_buf_reset(&pe);
	seal(&pe, KM_ENV_REPLY, &s_n1, nonce, &rep);
	CU_ASSERT(
	    check(&qe, &pe, &res, why, sizeof(why)) == KM_ERR_INVALID_ARG);
	km_buf_free(&rep);
	EXCHANGE_FREE;
}

/* Every truncation, a trailing byte, flipped bytes, garbage. */
static void
test_garbage(void)
{
	EXCHANGE_BUFS;
	km_buf ev;
	uint8_t junk[512];
	size_t i, accepted = 0;

	km_buf_init(&ev);
	ec_exchange(1, true, &s_n1, &qe, &pe);
	CU_ASSERT_FATAL(
	    km_evidence_encode(&ev, qe.data, qe.len, pe.data, pe.len) == 0);
	for (i = 0; i < ev.len; i++) {
		if (km_evidence_verify(ev.data, i, store, km_now_ms(), lookup,
		        NULL, &res, why, sizeof(why))
		    == 0) {
			accepted++;
		}
	}
	CU_ASSERT(accepted == 0);
	km_buf_put_u8(&ev, 0);
	CU_ASSERT(km_evidence_verify(ev.data, ev.len, store, km_now_ms(),
	              lookup, NULL, &res, why, sizeof(why))
	    == KM_ERR_BAD_FORMAT);
	ev.len--;
	/* one flipped bit anywhere in a signed envelope breaks it */
	for (i = 5; i < ev.len; i += 7) {
		ev.data[i] ^= 0x10;
		if (km_evidence_verify(ev.data, ev.len, store, km_now_ms(),
		        lookup, NULL, &res, why, sizeof(why))
		    == 0) {
			accepted++;
		}
		ev.data[i] ^= 0x10;
	}
	CU_ASSERT(accepted == 0);
	CU_ASSERT(km_evidence_verify(ev.data, ev.len, store, km_now_ms(),
	              lookup, NULL, &res, why, sizeof(why))
	    == 0);
	CU_ASSERT(km_random(junk, sizeof(junk)) == 0);
	CU_ASSERT(km_evidence_verify(junk, sizeof(junk), store, km_now_ms(),
	              lookup, NULL, &res, why, sizeof(why))
	    == KM_ERR_BAD_FORMAT);
	memcpy(junk, "KMED\x02", 5);
	CU_ASSERT(km_evidence_verify(junk, sizeof(junk), store, km_now_ms(),
	              lookup, NULL, &res, why, sizeof(why))
	    == KM_ERR_BAD_VERSION);
	CU_ASSERT(km_evidence_verify(NULL, 0, store, km_now_ms(), lookup, NULL,
	              &res, why, sizeof(why))
	    == KM_ERR_BAD_FORMAT);
	km_buf_free(&ev);
	EXCHANGE_FREE;
}

static const kmt_test evidence_tests[] = {
	{ "rsa_real", test_rsa_real },
	{ "ecdh_real", test_ecdh_real },
	{ "valid_partial", test_valid_partial },
	{ "altered_x", test_altered_x },
	{ "swapped_reply", test_swapped_reply },
	{ "reply_other_node", test_reply_other_node },
	{ "client_signed_reply", test_client_signed_reply },
	{ "wrong_index", test_wrong_index },
	{ "no_proof", test_no_proof },
	{ "unknown_and_stale", test_unknown_and_stale },
	{ "unknown_key", test_unknown_key },
	{ "refusal_reply", test_refusal_reply },
	{ "garbage", test_garbage },
	KMT_END,
};

/* ---- the client view's authority checks (src/mesh/view.c) ----
 *
 * A node serving the catalog to a client could hand it entries that the
 * daemons refuse at apply; the view must refuse the same ones: a node
 * lifting its own quarantine or speaking for another coordinator, an
 * EVICT whose votes disagree, a node-signed re-share other than the one
 * an eviction calls for. */

static km_identity
node_id(const char *name, km_role role)
{
	km_identity id;

	memset(&id, 0, sizeof(id));
	snprintf(id.name, sizeof(id.name), "%s", name);
	id.role = role;
	return id;
}

static void
verdict_bytes(
    const char *node, const char *coord, km_trust_state state, km_buf *out)
{
	km_trust_verdict v;

	memset(&v, 0, sizeof(v));
	snprintf(v.node, sizeof(v.node), "%s", node);
	snprintf(v.coordinator, sizeof(v.coordinator), "%s", coord);
	v.state = state;
	v.score = state == KM_TRUST_UP ? 90 : 10;
	if (state == KM_TRUST_QUARANTINED) {
		snprintf(v.reason, sizeof(v.reason), "score below 30");
	}
	km_buf_reset(out);
	CU_ASSERT_FATAL(km_trust_verdict_encode(&v, out) == 0);
}

static void
test_view_verdict(void)
{
	km_identity n1 = node_id("node1", KM_ROLE_NODE);
	km_identity n2 = node_id("node2", KM_ROLE_NODE);
	km_identity app = node_id("node2", KM_ROLE_CLIENT);
	km_buf b;

	km_buf_init(&b);
	/* the coordinator quarantines or releases another node */
	verdict_bytes("node1", "node2", KM_TRUST_QUARANTINED, &b);
	CU_ASSERT(km_view_verdict_allowed(&n2, b.data, b.len) == 0);
	verdict_bytes("node1", "node2", KM_TRUST_UP, &b);
	CU_ASSERT(km_view_verdict_allowed(&n2, b.data, b.len) == 0);
	/* a client, or a node speaking for another coordinator */
	CU_ASSERT(km_view_verdict_allowed(&app, b.data, b.len) == KM_ERR_AUTH);
	CU_ASSERT(km_view_verdict_allowed(&n1, b.data, b.len) == KM_ERR_AUTH);
	/* a node lifts its own quarantine: refused; it may impose one */
	verdict_bytes("node1", "node1", KM_TRUST_UP, &b);
	CU_ASSERT(km_view_verdict_allowed(&n1, b.data, b.len) == KM_ERR_AUTH);
	verdict_bytes("node1", "node1", KM_TRUST_QUARANTINED, &b);
	CU_ASSERT(km_view_verdict_allowed(&n1, b.data, b.len) == 0);
	/* garbage: consumed without effect by the daemons, so not refused */
	CU_ASSERT(km_view_verdict_allowed(&n1, (const uint8_t *)"xx", 2) == 0);
	km_buf_free(&b);
}

/* A vote with statement @accused/@cert/@evidence; cert and signature are
 * placeholders (km_view_evict_consistent does not check them). */
static void
vote_set(
    km_catalog_vote *v, const char *accused, uint8_t cert, uint8_t evidence)
{
	km_evict_stmt st;
	km_buf b;

	memset(&st, 0, sizeof(st));
	snprintf(st.accused, sizeof(st.accused), "%s", accused);
	memset(st.cert_sha256, cert, 32);
	memset(st.evidence_sha256, evidence, 32);
	st.time_ms = 1;
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_evict_stmt_encode(&st, &b) == 0);
	km_evict_vote_clear(v);
	CU_ASSERT_FATAL(km_buf_steal(&b, &v->stmt, &v->stmt_len) == 0);
	v->cert = calloc(1, 1);
	v->cert_len = 1;
	v->sig = calloc(1, 1);
	v->sig_len = 1;
	km_buf_free(&b);
}

static void
test_view_evict(void)
{
	km_catalog_payload p;
	size_t i;

	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_EVICT;
	snprintf(p.node, sizeof(p.node), "node3");
	memset(p.cert_sha256, 0, 32);
	p.nvotes = 3;
	p.votes = calloc(3, sizeof(*p.votes));
	CU_ASSERT_FATAL(p.votes != NULL);
	for (i = 0; i < 3; i++) {
		vote_set(&p.votes[i], "node3", 0, 7);
	}
	CU_ASSERT(km_view_evict_consistent(&p, "node1") == 0);
	/* the accused proposes its own eviction */
	CU_ASSERT(km_view_evict_consistent(&p, "node3") == KM_ERR_AUTH);
	/* one vote on other evidence, another certificate, another node */
	vote_set(&p.votes[2], "node3", 0, 8);
	CU_ASSERT(km_view_evict_consistent(&p, "node1") == KM_ERR_AUTH);
	vote_set(&p.votes[2], "node3", 1, 7);
	CU_ASSERT(km_view_evict_consistent(&p, "node1") == KM_ERR_AUTH);
	vote_set(&p.votes[2], "node2", 0, 7);
	CU_ASSERT(km_view_evict_consistent(&p, "node1") == KM_ERR_AUTH);
	/* a malformed statement */
	vote_set(&p.votes[2], "node3", 0, 7);
	p.votes[2].stmt[0] ^= 1;
	CU_ASSERT(km_view_evict_consistent(&p, "node1") != 0);
	/* fewer than two votes */
	vote_set(&p.votes[2], "node3", 0, 7);
	p.nvotes = 1;
	CU_ASSERT(km_view_evict_consistent(&p, "node1") == KM_ERR_AUTH);
	p.nvotes = 3;
	km_catalog_payload_free(&p);
}

static void
holder_set(km_catalog_holder *h, uint32_t index, const char *node)
{
	h->index = index;
	snprintf(h->node, sizeof(h->node), "%s", node);
}

static void
test_view_reshare(void)
{
	static const char ev[2][KM_NAME_MAX + 1] = { "node3", "node9" };
	km_view_key *k;
	km_catalog_payload p;
	km_catalog_holder h[4];

	CU_ASSERT_FATAL((k = calloc(1, sizeof(*k))) != NULL);
	snprintf(k->key_id, sizeof(k->key_id), "k1");
	k->threshold = 2;
	k->epoch = 1;
	k->state = KM_KEY_ACTIVE;
	k->nholders = 3;
	/* listed out of index order: the daemons read them by index */
	holder_set(&k->holders[0], 2, "node2");
	holder_set(&k->holders[1], 1, "node1");
	holder_set(&k->holders[2], 3, "node3");

	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = 2;
	p.threshold = 2;
	p.nholders = 2;
	p.holders = h;
	holder_set(&h[0], 1, "node1");
	holder_set(&h[1], 2, "node2");
	/* exactly the eviction's plan */
	CU_ASSERT(km_view_reshare_allowed(k, ev, 1, &p) == 0);
	/* no eviction calls for it */
	CU_ASSERT(km_view_reshare_allowed(k, NULL, 0, &p) == KM_ERR_AUTH);
	CU_ASSERT(km_view_reshare_allowed(NULL, ev, 1, &p) == KM_ERR_AUTH);
	/* another epoch, threshold, or holder set */
	p.epoch = 3;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 1, &p) == KM_ERR_AUTH);
	p.epoch = 2;
	p.threshold = 1;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 1, &p) == KM_ERR_AUTH);
	p.threshold = 2;
	holder_set(&h[2], 3, "node4");
	p.nholders = 3;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 1, &p) == KM_ERR_AUTH);
	p.nholders = 2;
	holder_set(&h[1], 2, "node4");
	CU_ASSERT(km_view_reshare_allowed(k, ev, 1, &p) == KM_ERR_AUTH);
	holder_set(&h[1], 2, "node2");

	/* commit / abort: only a pending epoch that is the plan */
	p.type = KM_CAT_RESHARE_COMMIT;
	p.nholders = 0;
	p.holders = NULL;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 1, &p) == KM_ERR_AUTH);
	k->state = KM_KEY_RESHARING;
	k->next_epoch = 2;
	k->next_threshold = 2;
	k->next_nholders = 2;
	holder_set(&k->next_holders[0], 2, "node2");
	holder_set(&k->next_holders[1], 1, "node1");
	CU_ASSERT(km_view_reshare_allowed(k, ev, 2, &p) == 0);
	p.type = KM_CAT_RESHARE_ABORT;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 2, &p) == 0);
	p.epoch = 5;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 2, &p) == KM_ERR_AUTH);
	p.epoch = 2;
	holder_set(&k->next_holders[1], 1, "node5");
	CU_ASSERT(km_view_reshare_allowed(k, ev, 2, &p) == KM_ERR_AUTH);
	holder_set(&k->next_holders[1], 1, "node1");
	k->next_threshold = 1;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 2, &p) == KM_ERR_AUTH);
	/* a type a node never signs */
	p.type = KM_CAT_KEY_DESTROY;
	k->next_threshold = 2;
	CU_ASSERT(km_view_reshare_allowed(k, ev, 2, &p) == KM_ERR_AUTH);
	free(k);
}

static const kmt_test view_tests[] = {
	{ "verdict", test_view_verdict },
	{ "evict", test_view_evict },
	{ "reshare", test_view_reshare },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "evidence", suite_init, suite_cleanup, evidence_tests },
	{ "view_authority", NULL, NULL, view_tests },
	{ NULL, NULL, NULL, NULL },
};

/* ---- the fuzz seed corpus (tests/fuzz/fuzz-evidence.c) ---- */

static int
gen_write(const char *dir, const char *name, const km_buf *b)
{
	char path[8192];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return km_write_file_atomic(path, b->data, b->len, 0644);
}

static int
gen_pair(const char *dir, const char *name, const km_buf *qe, const km_buf *pe)
{
	km_buf ev;
	int r;

	km_buf_init(&ev);
	r = km_evidence_encode(&ev, qe->data, qe->len, pe->data, pe->len);
	if (r == 0) {
		r = gen_write(dir, name, &ev);
	}
	km_buf_free(&ev);
	return r;
}

/*
 * test-evidence --gen-corpus SRCDIR/tests/fuzz: writes data/evidence-ca.crt
 * (a TEST-ONLY CA whose key is thrown away), the two keys' public data and
 * corpus/evidence/ (run by hand, commit the output).
 */
static const char *gen_out;

static void
gen_corpus(void)
{
	const char *out = gen_out;
	char data[4096], corpus[4096];
	km_buf qe, pe, qb, qe2, pe2, cab;
	uint8_t *ca_pem = NULL;
	size_t ca_len = 0;
	char path[4200];
	int r = 0;

	snprintf(data, sizeof(data), "%s/data", out);
	snprintf(corpus, sizeof(corpus), "%s/corpus/evidence", out);
	CU_ASSERT_FATAL(kmt_run("mkdir -p '%s' '%s'", data, corpus) == 0);
	km_pki_path(path, sizeof(path), ca, "ca.crt", NULL);
	km_buf_init(&cab);
	CU_ASSERT_FATAL(km_read_file(path, &ca_pem, &ca_len, 1 << 16) == 0
	    && km_buf_put_raw(&cab, ca_pem, ca_len) == 0
	    && gen_write(data, "evidence-ca.crt", &cab) == 0
	    && gen_write(data, "evidence-rsa.pub", &rsa_pub_enc) == 0
	    && gen_write(data, "evidence-ec.pub", &ec_pub_enc) == 0);
	free(ca_pem);
	km_buf_init(&qe);
	km_buf_init(&pe);
	km_buf_init(&qb);
	km_buf_init(&qe2);
	km_buf_init(&pe2);
#define GEN(name) r |= gen_pair(corpus, name, &qe, &pe)
	rsa_exchange(0x50, 1, true, true, &s_n1, &qe, &pe, &qb);
	GEN("rsa-bad");
	rsa_exchange(0x51, 1, false, true, &s_n1, &qe, &pe, &qb);
	GEN("rsa-valid");
	rsa_exchange(0x52, 1, true, false, &s_n1, &qe, &pe, &qb);
	GEN("rsa-no-proof");
	rsa_exchange(0x53, 2, true, true, &s_n1, &qe, &pe, &qb);
	GEN("rsa-wrong-index");
	rsa_exchange(0x54, 1, true, true, &s_app, &qe, &pe, &qb);
	GEN("rsa-client-reply");
	ec_exchange(1, true, &s_n1, &qe, &pe);
	GEN("ecdh-bad");
	ec_exchange(3, true, &s_n1, &qe2, &pe2);
	r |= gen_pair(corpus, "ecdh-swapped", &qe, &pe2);
	ec_exchange(2, false, &s_n2, &qe, &pe);
	GEN("ecdh-valid");
#undef GEN
	km_buf_reset(&qb);
	km_buf_put_raw(&qb, "KMED\x02", 5);
	r |= gen_write(corpus, "bad-version", &qb);
	km_buf_reset(&qb);
	r |= gen_write(corpus, "empty", &qb);
	km_buf_free(&qe);
	km_buf_free(&pe);
	km_buf_free(&qb);
	km_buf_free(&qe2);
	km_buf_free(&pe2);
	km_buf_free(&cab);
	CU_ASSERT(r == 0);
}

static const kmt_test gen_tests[] = {
	{ "gen_corpus", gen_corpus },
	KMT_END,
};

static const kmt_suite gen_suites[] = {
	{ "evidence", suite_init, suite_cleanup, gen_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--gen-corpus") == 0) {
		gen_out = argv[2];
		return kmt_main(1, argv, gen_suites);
	}
	return kmt_main(argc, argv, suites);
}
