/*
 * Eviction: the vote statement and EVICT codecs, the vote quorum, and the
 * apply-time authority of node-signed entries (store/evict.h): an admin
 * evicts alone; a node needs k valid votes of distinct current members,
 * none the accused; a node may re-share only as an eviction says, or to
 * the same holders and threshold while the posture policy has proactive
 * refresh on.  Plus the PKI deny-list.
 *
 * A fresh CA issues node1..node6 (node6 revoked), an admin and a client;
 * a store holds one RSA key, 3 of 5 on node1..node5, whose public data
 * is real (a node's re-share must keep the public key: its public data is
 * decoded at apply), and every node-signed RESHARE_BEGIN carries the new
 * holders' signed acks of its public data.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "kmt.h"
#include "pki/pki.h"
#include "store/catalog.h"
#include "store/evict.h"
#include "store/store.h"
#include "trust/evidence.h"
#include "trust/policy.h"
#include "util/err.h"
#include "util/util.h"

static char *t_ca;
static X509_STORE *t_x509;
static km_store *t_store;

typedef struct t_id {
	uint8_t *der;
	size_t len;
	EVP_PKEY *key;
} t_id;
/* the keys behind k1 (RSA) and k2 (EC P-256), and another RSA key */
static EVP_PKEY *t_rsa, *t_rsa2;
static km_ec_group *t_g;
static BIGNUM *t_ec_x;

/* RSA public data of @pk shared @k of @n (no secret is kept). */
static int
t_rsa_pub(EVP_PKEY *pk, unsigned k, unsigned n, km_buf *out)
{
	km_rsa_share *sh[16];
	km_rsa_pub *pub = NULL;
	int r;

	memset(sh, 0, sizeof(sh));
	if ((r = km_rsa_import_pkey(pk, k, n, &pub, sh)) == 0) {
		r = km_rsa_pub_encode(pub, out);
	}
	km_rsa_shares_free(sh, n);
	km_rsa_pub_free(pub);
	return r;
}

/* EC public data of t_ec_x shared @k of @n (fresh verification keys). */
static int
t_ec_pub(uint32_t k, uint32_t n, km_buf *out)
{
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	int r;

	if ((r = km_ec_dealer_split(t_g, t_ec_x, k, n, &sh, &pub)) == 0) {
		r = km_ec_pub_encode(t_g, pub, out);
	}
	km_ec_shares_free(sh, n);
	km_ec_pub_free(pub);
	return r;
}

static int t_id_load(const char *name, t_id *id);
static void t_id_free(t_id *id);

/* Every distinct new holder node of @p (or only those in @only, when not
 * NULL) signs its ack of @pub, @publen for (@key_id, @epoch); @p->votes
 * receives them (km_catalog_votes_free). */
static void
t_acks(km_catalog_payload *p, const char *const *only, size_t nonly,
    const char *key_id, uint32_t epoch, const uint8_t *pub, size_t publen)
{
	const char *names[KM_CATALOG_MAX_HOLDERS];
	size_t i, j, n = 0;
	t_id id;

	if (only != NULL) {
		for (i = 0; i < nonly; i++) {
			names[n++] = only[i];
		}
	} else {
		for (i = 0; i < p->nholders; i++) {
			for (j = 0; j < n; j++) {
				if (strcmp(names[j], p->holders[i].node)
				    == 0) {
					break;
				}
			}
			if (j == n) {
				names[n++] = p->holders[i].node;
			}
		}
	}
	CU_ASSERT_FATAL(
	    (p->votes = calloc(n ? n : 1, sizeof(*p->votes))) != NULL);
	p->nvotes = n;
	for (i = 0; i < n; i++) {
		CU_ASSERT_FATAL(t_id_load(names[i], &id) == 0);
		CU_ASSERT_FATAL(km_reshare_ack_sign(id.key, id.der, id.len,
		                    key_id, epoch, pub, publen, &p->votes[i])
		    == 0);
		t_id_free(&id);
	}
}

static void
t_acks_free(km_catalog_payload *p)
{
	km_catalog_votes_free(p->votes, p->nvotes);
	p->votes = NULL;
	p->nvotes = 0;
}

static char *
t_slurp(const char *name)
{
	char path[4200];
	uint8_t *d = NULL;
	size_t len = 0;
	char *s;

	if (km_pki_path(path, sizeof(path), t_ca, name, NULL) != 0
	    || km_read_file(path, &d, &len, 1u << 20) != 0) {
		return NULL;
	}
	if ((s = realloc(d, len + 1)) == NULL) {
		free(d);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

static int
t_id_load(const char *name, t_id *id)
{
	char path[4200];
	X509 *x = NULL;
	uint8_t *d = NULL;
	int n;

	memset(id, 0, sizeof(*id));
	if (km_pki_path(path, sizeof(path), t_ca, name, ".crt") != 0
	    || km_pki_load_cert(path, &x) != 0) {
		return -1;
	}
	n = i2d_X509(x, &d);
	X509_free(x);
	if (n <= 0 || (id->der = malloc((size_t)n)) == NULL) {
		return -1;
	}
	memcpy(id->der, d, (size_t)n);
	OPENSSL_free(d);
	id->len = (size_t)n;
	if (km_pki_path(path, sizeof(path), t_ca, name, ".key") != 0
	    || km_pki_load_key(path, &id->key) != 0) {
		return -1;
	}
	return 0;
}

static void
t_id_free(t_id *id)
{
	free(id->der);
	EVP_PKEY_free(id->key);
	memset(id, 0, sizeof(*id));
}

/* The daemon's rule (daemon/catalog.c): an admin signs anything; a node
 * what km_evict_authorise allowed before the apply. */
typedef struct t_ctx {
	bool node_ok;
} t_ctx;

static int
t_verify(void *arg, const km_catalog_entry *e, const uint8_t *tbs, size_t len)
{
	t_ctx *c = arg;
	int r;

	r = km_pki_verify_signed(t_x509, e->signer, e->signer_len,
	    KM_ROLE_ADMIN, tbs, len, e->sig, e->sig_len, NULL);
	return (r == 0 || c->node_ok) ? 0 : r != 0 ? r : KM_ERR_AUTH;
}

/* Signs @p as @signer at the next seq and applies it; @why gets the
 * authority's reason.  Returns apply's code, *@result its outcome. */
static int
t_apply(const km_catalog_payload *p, const char *signer, int *result,
    char *why, size_t whylen)
{
	km_catalog_entry e;
	km_buf pl, tbs;
	t_id id;
	uint64_t last = 0;
	t_ctx c;
	int r;

	memset(&e, 0, sizeof(e));
	km_buf_init(&pl);
	km_buf_init(&tbs);
	*result = 0;
	why[0] = '\0';
	if ((r = t_id_load(signer, &id)) != 0) {
		return KM_ERR_INTERNAL;
	}
	if ((r = km_catalog_payload_encode(p, &pl)) != 0
	    || (r = km_catalog_last_seq(t_store, &last, NULL)) != 0) {
		goto out;
	}
	e.seq = last + 1;
	e.type = p->type;
	e.payload = pl.data;
	e.payload_len = pl.len;
	e.signer = id.der;
	e.signer_len = id.len;
	if ((r = km_catalog_entry_tbs(&e, &tbs)) != 0
	    || (r = km_pki_sign(id.key, tbs.data, tbs.len, &e.sig, &e.sig_len))
	        != 0) {
		goto out;
	}
	c.node_ok
	    = km_evict_authorise(t_store, t_x509, &e, NULL, why, whylen) == 0;
	r = km_catalog_apply(t_store, &e, t_verify, &c, result);
out:
	free(e.sig);
	km_buf_free(&pl);
	km_buf_free(&tbs);
	t_id_free(&id);
	return r;
}

static km_catalog_holder t_holders5[5] = {
	{ 1, "node1" },
	{ 2, "node2" },
	{ 3, "node3" },
	{ 4, "node4" },
	{ 5, "node5" },
};

static int
t_init(void)
{
	static const char *const nodes[]
	    = { "node1", "node2", "node3", "node4", "node5", "node6" };
	km_catalog_payload p;
	char *ca, *crl, sdir[4200];
	int r, result = 0;
	char why[256];
	km_buf pb;
	size_t i;

	if ((t_ca = strdup(kmt_tmpdir())) == NULL
	    || km_pki_ca_init(t_ca, 0) != 0) {
		return -1;
	}
	for (i = 0; i < KM_ARRAY_LEN(nodes); i++) {
		if (km_pki_cert_issue(t_ca, KM_ROLE_NODE, nodes[i], 0) != 0) {
			return -1;
		}
	}
	if (km_pki_cert_issue(t_ca, KM_ROLE_ADMIN, "adm", 0) != 0
	    || km_pki_cert_issue(t_ca, KM_ROLE_CLIENT, "app", 0) != 0
	    || km_pki_cert_revoke(t_ca, "node6") != 0) {
		return -1;
	}
	ca = t_slurp("ca.crt");
	crl = t_slurp("crl.pem");
	if (ca == NULL || crl == NULL
	    || km_pki_store_load(ca, crl, &t_x509) != 0) {
		return -1;
	}
	free(ca);
	free(crl);
	snprintf(sdir, sizeof(sdir), "%s/store", t_ca);
	if (km_store_open_dir(sdir, &t_store) != 0) {
		return -1;
	}
	if ((t_rsa = EVP_RSA_gen(2048)) == NULL
	    || (t_rsa2 = EVP_RSA_gen(2048)) == NULL
	    || km_ec_group_new(NID_X9_62_prime256v1, &t_g) != 0
	    || km_ec_scalar_random(t_g, &t_ec_x) != 0) {
		return -1;
	}
	/* the key: 3 of 5 on node1..node5, active at epoch 1 */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_CREATE;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	snprintf(p.label, sizeof(p.label), "web");
	p.key_type = KM_KEY_RSA;
	p.bits = 2048;
	p.threshold = 3;
	p.epoch = 1;
	p.nholders = 5;
	p.holders = t_holders5;
	km_buf_init(&pb);
	if (t_rsa_pub(t_rsa, 3, 5, &pb) != 0) {
		return -1;
	}
	p.public_data = pb.data;
	p.public_len = pb.len;
	p.policy = (uint8_t *)"\0\0\0\0\0\0\0\0";
	p.policy_len = 8;
	r = t_apply(&p, "adm", &result, why, sizeof(why));
	km_buf_free(&pb);
	if (r != 0 || result != 0) {
		return -1;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ACTIVATE;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = 1;
	if (t_apply(&p, "adm", &result, why, sizeof(why)) != 0
	    || result != 0) {
		return -1;
	}
	return 0;
}

static int
t_cleanup(void)
{
	km_store_close(t_store);
	X509_STORE_free(t_x509);
	free(t_ca);
	EVP_PKEY_free(t_rsa);
	EVP_PKEY_free(t_rsa2);
	BN_clear_free(t_ec_x);
	km_ec_group_free(t_g);
	return 0;
}

static void
t_stmt(km_evict_stmt *s, const char *accused, uint8_t cert, uint8_t ev)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->accused, sizeof(s->accused), "%s", accused);
	memset(s->cert_sha256, cert, 32);
	memset(s->evidence_sha256, ev, 32);
	s->time_ms = 1700000000000ull;
}

/* A vote by @voter on @accused (certificate hash byte @cert, evidence
 * hash byte @ev) into @v. */
static void
t_vote(const char *voter, const char *accused, uint8_t cert, uint8_t ev,
    km_catalog_vote *v)
{
	km_evict_stmt s;
	t_id id;

	CU_ASSERT_FATAL(t_id_load(voter, &id) == 0);
	t_stmt(&s, accused, cert, ev);
	CU_ASSERT_FATAL(
	    km_evict_vote_sign(id.key, id.der, id.len, &s, v) == 0);
	t_id_free(&id);
}

static void
t_evict_payload(km_catalog_payload *p, const char *node, uint8_t cert)
{
	memset(p, 0, sizeof(*p));
	p->type = KM_CAT_EVICT;
	snprintf(p->node, sizeof(p->node), "%s", node);
	memset(p->cert_sha256, cert, 32);
	snprintf(p->reason, sizeof(p->reason), "bad partial");
}

static uint64_t
t_seq(void)
{
	uint64_t s = 0;

	(void)km_catalog_last_seq(t_store, &s, NULL);
	return s;
}

/* ---- codecs ------------------------------------------------------------- */

static void
test_stmt_codec(void)
{
	km_evict_stmt s, d;
	km_buf b;

	t_stmt(&s, "node5", 0xaa, 0xbb);
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_evict_stmt_encode(&s, &b) == 0);
	CU_ASSERT(km_evict_stmt_decode(b.data, b.len, &d) == 0);
	CU_ASSERT(strcmp(d.accused, "node5") == 0);
	CU_ASSERT(memcmp(d.cert_sha256, s.cert_sha256, 32) == 0);
	CU_ASSERT(memcmp(d.evidence_sha256, s.evidence_sha256, 32) == 0);
	CU_ASSERT(d.time_ms == s.time_ms);
	/* truncated, trailing byte, another context string */
	CU_ASSERT(
	    km_evict_stmt_decode(b.data, b.len - 1, &d) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_buf_put_u8(&b, 0) == 0);
	CU_ASSERT(
	    km_evict_stmt_decode(b.data, b.len, &d) == KM_ERR_BAD_FORMAT);
	b.data[4 + 8] ^= 1; /* inside "keymesh-evict-vote-v1" */
	CU_ASSERT(
	    km_evict_stmt_decode(b.data, b.len - 1, &d) == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
	snprintf(s.accused, sizeof(s.accused), "bad name");
	km_buf_init(&b);
	CU_ASSERT(km_evict_stmt_encode(&s, &b) == KM_ERR_INVALID_ARG);
	km_buf_free(&b);
}

static void
test_evict_codec(void)
{
	km_catalog_payload p, d;
	km_catalog_vote v[2];
	km_buf b;

	memset(v, 0, sizeof(v));
	t_vote("node1", "node5", 0, 0x11, &v[0]);
	t_vote("node2", "node5", 0, 0x11, &v[1]);
	t_evict_payload(&p, "node5", 0);
	p.nvotes = 2;
	p.votes = v;
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_catalog_payload_encode(&p, &b) == 0);
	memset(&d, 0, sizeof(d));
	CU_ASSERT_FATAL(
	    km_catalog_payload_decode(KM_CAT_EVICT, b.data, b.len, &d) == 0);
	CU_ASSERT(strcmp(d.node, "node5") == 0);
	CU_ASSERT(strcmp(d.reason, "bad partial") == 0);
	CU_ASSERT(d.nvotes == 2);
	CU_ASSERT(d.votes[1].stmt_len == v[1].stmt_len
	    && memcmp(d.votes[1].stmt, v[1].stmt, v[1].stmt_len) == 0);
	km_catalog_payload_free(&d);
	CU_ASSERT(
	    km_catalog_payload_decode(KM_CAT_EVICT, b.data, b.len - 1, &d)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_buf_put_u8(&b, 0) == 0);
	CU_ASSERT(km_catalog_payload_decode(KM_CAT_EVICT, b.data, b.len, &d)
	    == KM_ERR_BAD_FORMAT);
	km_buf_free(&b);
	/* a reason is one printable line */
	snprintf(p.reason, sizeof(p.reason), "two\nlines");
	km_buf_init(&b);
	CU_ASSERT(km_catalog_payload_encode(&p, &b) == KM_ERR_INVALID_ARG);
	km_buf_free(&b);
	km_evict_vote_clear(&v[0]);
	km_evict_vote_clear(&v[1]);
}

static void
test_quorum(void)
{
	uint32_t k = 0, n = 0;

	CU_ASSERT_FATAL(km_evict_quorum(t_store, &k, &n) == 0);
	CU_ASSERT(n == 5); /* node1..node5 hold k1 */
	CU_ASSERT(k == 3); /* max(threshold 3, majority 3) */
}

/* Applies an EVICT of node5 with the votes given; expects a refusal
 * (not consumed: the seq stays) and @want in the reason. */
static void
t_refused(const char *signer, km_catalog_vote *v, size_t n, uint8_t cert,
    const char *want)
{
	km_catalog_payload p;
	uint64_t before = t_seq();
	char why[256];
	int result = 0, r;

	t_evict_payload(&p, "node5", cert);
	p.nvotes = n;
	p.votes = v;
	r = t_apply(&p, signer, &result, why, sizeof(why));
	CU_ASSERT(r != 0);
	CU_ASSERT(t_seq() == before);
	CU_ASSERT(km_catalog_evicted_get(t_store, "node5", NULL)
	    == KM_ERR_NOT_FOUND);
	if (strstr(why, want) == NULL) {
		fprintf(
		    stderr, "\n  refused for '%s', wanted '%s'\n", why, want);
		CU_FAIL("refusal reason");
	}
}

static void
test_refusals(void)
{
	km_catalog_vote v[4];
	size_t i;

	memset(v, 0, sizeof(v));
	/* a node's word alone */
	t_refused("node1", NULL, 0, 0, "0 vote(s); 3 are needed");
	/* k - 1 votes */
	t_vote("node1", "node5", 0, 0x11, &v[0]);
	t_vote("node2", "node5", 0, 0x11, &v[1]);
	t_refused("node1", v, 2, 0, "2 vote(s); 3 are needed");
	/* a duplicate voter */
	t_vote("node2", "node5", 0, 0x11, &v[2]);
	t_refused("node1", v, 3, 0, "voted twice");
	km_evict_vote_clear(&v[2]);
	/* the accused votes */
	t_vote("node5", "node5", 0, 0x11, &v[2]);
	t_refused("node1", v, 3, 0, "cannot vote");
	km_evict_vote_clear(&v[2]);
	/* a vote for another certificate hash, or other evidence */
	t_vote("node3", "node5", 0x77, 0x11, &v[2]);
	t_refused("node1", v, 3, 0, "another node, certificate");
	km_evict_vote_clear(&v[2]);
	t_vote("node3", "node5", 0, 0x22, &v[2]);
	t_refused("node1", v, 3, 0, "another node, certificate");
	km_evict_vote_clear(&v[2]);
	/* a vote for another node */
	t_vote("node3", "node4", 0, 0x11, &v[2]);
	t_refused("node1", v, 3, 0, "another node, certificate");
	km_evict_vote_clear(&v[2]);
	/* a client's vote, a revoked node's vote */
	t_vote("app", "node5", 0, 0x11, &v[2]);
	t_refused("node1", v, 3, 0, "not signed by a valid node");
	km_evict_vote_clear(&v[2]);
	/* node6's certificate is on the CRL and it is no member: its
	 * standing is the catalog's (apply must decide alike on every
	 * replica whatever CRL file each has), so it is refused as no
	 * member */
	t_vote("node6", "node5", 0, 0x11, &v[2]);
	t_refused("node1", v, 3, 0, "node6 is not a current member");
	km_evict_vote_clear(&v[2]);
	/* enough votes, but proposed by the accused, or a client */
	t_vote("node3", "node5", 0, 0x11, &v[2]);
	t_refused("node5", v, 3, 0, "not a member that may propose");
	t_refused("app", v, 3, 0, "not signed by a valid node");
	/* a vote whose signature does not cover its statement */
	v[1].stmt[v[1].stmt_len - 1] ^= 1;
	t_refused("node1", v, 3, 0, "not signed by a valid node");
	v[1].stmt[v[1].stmt_len - 1] ^= 1;
	for (i = 0; i < KM_ARRAY_LEN(v); i++) {
		km_evict_vote_clear(&v[i]);
	}
}

static void
test_evict_by_votes(void)
{
	km_catalog_evicted ev;
	km_catalog_payload p;
	km_catalog_vote v[3];
	km_identity id;
	uint64_t before = t_seq();
	uint32_t k = 0, n = 0;
	char why[256];
	int result = -1;
	size_t i;

	memset(v, 0, sizeof(v));
	t_vote("node1", "node5", 0, 0x11, &v[0]);
	t_vote("node2", "node5", 0, 0x11, &v[1]);
	t_vote("node3", "node5", 0, 0x11, &v[2]);
	t_evict_payload(&p, "node5", 0);
	p.nvotes = 3;
	p.votes = v;
	CU_ASSERT(t_apply(&p, "node4", &result, why, sizeof(why)) == 0);
	CU_ASSERT(result == 0);
	CU_ASSERT(t_seq() == before + 1);
	CU_ASSERT_FATAL(km_catalog_evicted_get(t_store, "node5", &ev) == 0);
	CU_ASSERT(ev.nvotes == 3);
	CU_ASSERT(ev.evidence_sha256[0] == 0x11);
	CU_ASSERT(strcmp(ev.reason, "bad partial") == 0);
	/* the members are node1..node4 now; k stays 3 (the threshold) */
	CU_ASSERT(km_evict_quorum(t_store, &k, &n) == 0);
	CU_ASSERT(n == 4 && k == 3);
	/* an evicted node no longer votes or proposes */
	for (i = 0; i < 3; i++) {
		km_evict_vote_clear(&v[i]);
	}
	t_vote("node5", "node4", 0, 0x33, &v[0]);
	t_vote("node1", "node4", 0, 0x33, &v[1]);
	t_vote("node2", "node4", 0, 0x33, &v[2]);
	t_evict_payload(&p, "node4", 0);
	p.nvotes = 3;
	p.votes = v;
	before = t_seq();
	CU_ASSERT(t_apply(&p, "node1", &result, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "not a current member") != NULL);
	CU_ASSERT(t_apply(&p, "node5", &result, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "node5 is evicted") != NULL);
	CU_ASSERT(t_seq() == before);
	/* and the same eviction again is consumed with no effect */
	for (i = 0; i < 3; i++) {
		km_evict_vote_clear(&v[i]);
	}
	t_evict_payload(&p, "node5", 0);
	CU_ASSERT(t_apply(&p, "adm", &result, why, sizeof(why)) == 0);
	CU_ASSERT(result == KM_ERR_EXISTS);
	/* the deny-list refuses node5's certificate from then on */
	{
		t_id n5, n1;
		const char *deny[] = { "node5" };

		CU_ASSERT_FATAL(t_id_load("node5", &n5) == 0);
		CU_ASSERT_FATAL(t_id_load("node1", &n1) == 0);
		CU_ASSERT(
		    km_pki_verify_signed(t_x509, n5.der, n5.len, KM_ROLE_NODE,
		        "x", 1, (const uint8_t *)"s", 1, &id)
		    == KM_ERR_VERIFY); /* a valid cert, a bad signature */
		CU_ASSERT(km_pki_deny_set(deny, 1) == 0);
		CU_ASSERT(
		    km_pki_verify_signed(t_x509, n5.der, n5.len, KM_ROLE_NODE,
		        "x", 1, (const uint8_t *)"s", 1, &id)
		    == KM_ERR_REVOKED);
		CU_ASSERT(
		    km_pki_verify_signed(t_x509, n1.der, n1.len, KM_ROLE_NODE,
		        "x", 1, (const uint8_t *)"s", 1, &id)
		    == KM_ERR_VERIFY);
		CU_ASSERT(km_pki_denied(
		    &(km_identity) { .name = "node5", .role = KM_ROLE_NODE }));
		CU_ASSERT(!km_pki_denied(&(km_identity) {
		    .name = "node5", .role = KM_ROLE_CLIENT }));
		CU_ASSERT(km_pki_deny_set(NULL, 0) == 0);
		CU_ASSERT(!km_pki_denied(
		    &(km_identity) { .name = "node5", .role = KM_ROLE_NODE }));
		t_id_free(&n5);
		t_id_free(&n1);
	}
}

/* A stored share's state, 0 when there is none. */
static int
t_share_state(const char *key, uint32_t epoch, uint32_t index)
{
	km_share_state ss = 0;
	uint8_t *blob = NULL;
	size_t len = 0;

	if (km_store_share_get(t_store, key, epoch, index, &ss, &blob, &len)
	    != 0) {
		return 0;
	}
	free(blob);
	return (int)ss;
}

/* Applies @p as @signer; 0 when applied with outcome 0. */
static int
t_try(
    const km_catalog_payload *p, const char *signer, char *why, size_t whylen)
{
	int r, result = -1;

	r = t_apply(p, signer, &result, why, whylen);
	return r != 0 ? r : result;
}

static void
test_reshare_authority(void)
{
	static const char *const three[] = { "node1", "node2", "node3" };
	static const char *const twice[]
	    = { "node1", "node1", "node2", "node3" };
	static const char *const extra[]
	    = { "node1", "node2", "node3", "node4", "node5" };
	km_catalog_holder plan[KM_CATALOG_MAX_HOLDERS], bad[4];
	km_catalog_evicted *ev = NULL;
	km_catalog_payload p;
	km_catalog_key k;
	km_buf pub2, other, thr2;
	size_t nev = 0, np = 0;
	uint64_t before;
	char why[256];
	int result = -1;

	km_buf_init(&pub2);
	km_buf_init(&other);
	km_buf_init(&thr2);
	CU_ASSERT_FATAL(t_rsa_pub(t_rsa, 3, 4, &pub2) == 0);
	CU_ASSERT_FATAL(t_rsa_pub(t_rsa2, 3, 4, &other) == 0);
	CU_ASSERT_FATAL(t_rsa_pub(t_rsa, 2, 4, &thr2) == 0);
	/* node5 is evicted (test_evict_by_votes): k1's plan is node1..4 */
	memset(&k, 0, sizeof(k));
	CU_ASSERT_FATAL(km_catalog_key_get(t_store, "k1", &k) == 0);
	CU_ASSERT_FATAL(km_catalog_evicted_list(t_store, &ev, &nev) == 0);
	CU_ASSERT(nev == 1);
	CU_ASSERT(km_evict_plan(&k, ev, nev, plan, &np) == 0);
	CU_ASSERT(np == 4 && plan[3].index == 4
	    && strcmp(plan[3].node, "node4") == 0);
	/* a node may not begin another re-share */
	memcpy(bad, plan, sizeof(bad));
	snprintf(bad[3].node, sizeof(bad[3].node), "node1");
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = 2;
	p.threshold = 3;
	p.nholders = 4;
	p.holders = bad;
	p.public_data = pub2.data;
	p.public_len = pub2.len;
	before = t_seq();
	CU_ASSERT(t_apply(&p, "node1", &result, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "only as its eviction calls for") != NULL);
	p.holders = plan;
	p.threshold = 2;
	CU_ASSERT(t_apply(&p, "node1", &result, why, sizeof(why)) != 0);
	p.threshold = 3;
	CU_ASSERT(t_apply(&p, "node5", &result, why, sizeof(why)) != 0);
	/* the eviction's holders, but no acks: refused (issue #7, harden 1:
	 * one node alone must not set the public data) */
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "no new holder's ack") != NULL);
	/* a new holder missing */
	t_acks(&p, three, 3, "k1", 2, pub2.data, pub2.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "3 of its 4 new holder nodes") != NULL);
	t_acks_free(&p);
	/* one node acking twice in place of another */
	t_acks(&p, twice, 4, "k1", 2, pub2.data, pub2.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "acked twice") != NULL);
	t_acks_free(&p);
	/* an ack from a node that is not a new holder (the evicted one) */
	t_acks(&p, extra, 5, "k1", 2, pub2.data, pub2.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "node5 is not a new holder") != NULL);
	t_acks_free(&p);
	/* acks of other public data, another epoch, another key */
	t_acks(&p, NULL, 0, "k1", 2, other.data, other.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "another key, epoch or public data") != NULL);
	t_acks_free(&p);
	t_acks(&p, NULL, 0, "k1", 3, pub2.data, pub2.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	t_acks_free(&p);
	t_acks(&p, NULL, 0, "k2", 2, pub2.data, pub2.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	t_acks_free(&p);
	/* a tampered ack signature */
	t_acks(&p, NULL, 0, "k1", 2, pub2.data, pub2.len);
	p.votes[2].sig[p.votes[2].sig_len / 2] ^= 0x01;
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "not signed by a valid node") != NULL);
	t_acks_free(&p);
	/* every holder acked, but another key's public data, or this key
	 * with another threshold inside: refused (the public key a client
	 * verifies with never changes) */
	p.public_data = other.data;
	p.public_len = other.len;
	t_acks(&p, NULL, 0, "k1", 2, other.data, other.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "another public key") != NULL);
	t_acks_free(&p);
	p.public_data = thr2.data;
	p.public_len = thr2.len;
	t_acks(&p, NULL, 0, "k1", 2, thr2.data, thr2.len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	t_acks_free(&p);
	p.public_data = (uint8_t *)"garbage";
	p.public_len = 7;
	t_acks(&p, NULL, 0, "k1", 2, p.public_data, p.public_len);
	CU_ASSERT(t_try(&p, "node1", why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "does not decode") != NULL);
	t_acks_free(&p);
	p.public_data = pub2.data;
	p.public_len = pub2.len;
	CU_ASSERT(t_seq() == before);
	/* a node may not commit or abort what is not pending */
	{
		km_catalog_payload c;

		memset(&c, 0, sizeof(c));
		c.type = KM_CAT_RESHARE_COMMIT;
		snprintf(c.key_id, sizeof(c.key_id), "k1");
		c.epoch = 2;
		CU_ASSERT(
		    t_apply(&c, "node2", &result, why, sizeof(why)) != 0);
	}
	/* exactly the eviction's re-share, acked by node1..4: accepted */
	t_acks(&p, NULL, 0, "k1", 2, pub2.data, pub2.len);
	CU_ASSERT(p.nvotes == 4);
	CU_ASSERT(t_apply(&p, "node2", &result, why, sizeof(why)) == 0);
	CU_ASSERT(result == 0);
	t_acks_free(&p);
	km_catalog_key_free(&k);
	memset(&k, 0, sizeof(k));
	CU_ASSERT_FATAL(km_catalog_key_get(t_store, "k1", &k) == 0);
	CU_ASSERT(k.state == KM_KEY_RESHARING && k.next_acked);
	/* this store is node1's; it holds an old share of index 1 and no
	 * new one: the commit must keep the old (defence in depth) */
	CU_ASSERT_FATAL(km_store_set_node(t_store, "node1") == 0);
	CU_ASSERT(km_store_set_node(t_store, "bad name!") != 0);
	CU_ASSERT_FATAL(km_store_share_prepare(
	                    t_store, "k1", 1, 1, (const uint8_t *)"old", 3, 0)
	    == 0);
	CU_ASSERT_FATAL(km_store_share_commit(t_store, "k1", 1) == 0);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_COMMIT;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = 2;
	CU_ASSERT(t_apply(&p, "node3", &result, why, sizeof(why)) == 0);
	CU_ASSERT(result == 0);
	CU_ASSERT(t_share_state("k1", 1, 1) == KM_SHARE_COMMITTED);
	km_catalog_key_free(&k);
	memset(&k, 0, sizeof(k));
	CU_ASSERT_FATAL(km_catalog_key_get(t_store, "k1", &k) == 0);
	CU_ASSERT(k.epoch == 2 && k.state == KM_KEY_ACTIVE && k.nholders == 4
	    && k.threshold == 3 && !k.next_acked);
	CU_ASSERT(k.public_len == pub2.len
	    && memcmp(k.public_data, pub2.data, pub2.len) == 0);
	/* nothing left to re-share: a node's BEGIN is refused again */
	CU_ASSERT(km_evict_plan(&k, ev, nev, plan, &np) == KM_ERR_NOT_FOUND);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = 3;
	p.threshold = 3;
	p.nholders = 4;
	p.holders = k.holders;
	p.public_data = (uint8_t *)"pub3";
	p.public_len = 4;
	CU_ASSERT(t_apply(&p, "node1", &result, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "no eviction calls") != NULL);
	/* an admin evicts without votes */
	{
		km_catalog_payload e;

		t_evict_payload(&e, "node4", 0);
		CU_ASSERT(t_apply(&e, "adm", &result, why, sizeof(why)) == 0);
		CU_ASSERT(result == 0);
		CU_ASSERT(km_catalog_evicted_get(t_store, "node4", NULL) == 0);
	}
	free(ev);
	km_catalog_key_free(&k);
	km_buf_free(&pub2);
	km_buf_free(&other);
	km_buf_free(&thr2);
}

/* The ack statement's codec and signature. */
static void
test_ack_codec(void)
{
	km_reshare_ack a, d;
	km_catalog_vote v;
	km_buf b;
	t_id id;

	memset(&a, 0, sizeof(a));
	snprintf(a.key_id, sizeof(a.key_id), "k1");
	a.epoch = 7;
	memset(a.public_sha256, 0x5a, 32);
	km_buf_init(&b);
	CU_ASSERT_FATAL(km_reshare_ack_encode(&a, &b) == 0);
	CU_ASSERT(km_reshare_ack_decode(b.data, b.len, &d) == 0);
	CU_ASSERT(strcmp(d.key_id, "k1") == 0 && d.epoch == 7
	    && memcmp(d.public_sha256, a.public_sha256, 32) == 0);
	/* strict: short, trailing bytes, another context */
	CU_ASSERT(km_reshare_ack_decode(b.data, b.len - 1, &d) != 0);
	CU_ASSERT(km_buf_put_u8(&b, 0) == 0);
	CU_ASSERT(km_reshare_ack_decode(b.data, b.len, &d) != 0);
	b.data[6] ^= 0x20; /* inside "keymesh-reshare-ack-v1" */
	CU_ASSERT(km_reshare_ack_decode(b.data, b.len - 1, &d) != 0);
	km_buf_free(&b);
	a.epoch = 0;
	km_buf_init(&b);
	CU_ASSERT(km_reshare_ack_encode(&a, &b) == KM_ERR_INVALID_ARG);
	km_buf_free(&b);
	/* an eviction vote is no ack, and the other way round */
	CU_ASSERT_FATAL(t_id_load("node2", &id) == 0);
	memset(&v, 0, sizeof(v));
	CU_ASSERT_FATAL(
	    km_reshare_ack_sign(id.key, id.der, id.len, "k1", 7, NULL, 0, &v)
	    == 0);
	CU_ASSERT(km_reshare_ack_decode(v.stmt, v.stmt_len, &d) == 0);
	{
		km_evict_stmt es;

		CU_ASSERT(km_evict_stmt_decode(v.stmt, v.stmt_len, &es) != 0);
	}
	km_evict_vote_clear(&v);
	t_id_free(&id);
}

/* An admin's POSTURE_SET with only @refresh_s set. */
static int
t_set_refresh(uint32_t refresh_s)
{
	km_catalog_payload p;
	km_posture pol;
	km_buf pb;
	char why[256];
	int r, result = -1;

	km_buf_init(&pb);
	km_posture_init(&pol);
	pol.refresh_s = refresh_s;
	if ((r = km_posture_encode(&pol, &pb)) != 0) {
		return r;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_POSTURE_SET;
	p.trust = pb.data;
	p.trust_len = pb.len;
	r = t_apply(&p, "adm", &result, why, sizeof(why));
	km_buf_free(&pb);
	return r != 0 ? r : result;
}

/* A node-signed RESHARE_BEGIN of k2 at @epoch. */
static int
t_refresh_begin(const char *signer, uint32_t epoch, uint32_t threshold,
    km_catalog_holder *h, size_t n, char *why, size_t whylen)
{
	km_catalog_payload p;
	km_buf pub;
	int r, result = -1;

	/* k2's public key, fresh verification keys, acked by every new
	 * holder: what the daemons' refresh appends */
	km_buf_init(&pub);
	CU_ASSERT_FATAL(t_ec_pub(threshold, (uint32_t)n, &pub) == 0);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k2");
	p.epoch = epoch;
	p.threshold = threshold;
	p.nholders = n;
	p.holders = h;
	p.public_data = pub.data;
	p.public_len = pub.len;
	t_acks(&p, NULL, 0, "k2", epoch, pub.data, pub.len);
	r = t_apply(&p, signer, &result, why, whylen);
	t_acks_free(&p);
	km_buf_free(&pub);
	return r != 0 ? r : result;
}

static int
t_refresh_end(const char *signer, uint32_t type, uint32_t epoch, char *why,
    size_t whylen)
{
	km_catalog_payload p;
	int r, result = -1;

	memset(&p, 0, sizeof(p));
	p.type = type;
	snprintf(p.key_id, sizeof(p.key_id), "k2");
	p.epoch = epoch;
	r = t_apply(&p, signer, &result, why, whylen);
	return r != 0 ? r : result;
}

static km_catalog_key
t_key(const char *id)
{
	km_catalog_key k;

	memset(&k, 0, sizeof(k));
	CU_ASSERT_FATAL(km_catalog_key_get(t_store, id, &k) == 0);
	return k;
}

/*
 * Proactive refresh (docs/resharing.md): a node's re-share of a key to
 * its very holders and threshold is accepted only while the posture
 * policy's refresh interval is non-zero; other holders or thresholds are
 * refused either way; an ABORT of a pending refresh always passes.  Runs
 * after test_reshare_authority (node4 and node5 evicted; k1 holds node4).
 */
static void
test_refresh_authority(void)
{
	km_catalog_holder h3[3] = {
		{ 1, "node1" },
		{ 2, "node2" },
		{ 3, "node3" },
	};
	km_catalog_holder other[3], swapped[3];
	km_catalog_payload p;
	km_catalog_key k;
	km_posture pol;
	km_buf pb;
	uint32_t secs = 99;
	char why[256];
	int result = -1;

	/* the codec's bounds: 0 (off) or 5 s .. a year */
	km_buf_init(&pb);
	km_posture_init(&pol);
	pol.refresh_s = KM_POSTURE_REFRESH_MIN_S - 1;
	CU_ASSERT(km_posture_encode(&pol, &pb) == KM_ERR_INVALID_ARG);
	km_buf_free(&pb);
	km_buf_init(&pb);
	pol.refresh_s = KM_POSTURE_REFRESH_MIN_S;
	CU_ASSERT_FATAL(km_posture_encode(&pol, &pb) == 0);
	pb.data[pb.len - 1] = KM_POSTURE_REFRESH_MIN_S - 1; /* uint32 BE */
	CU_ASSERT(
	    km_posture_decode(pb.data, pb.len, &pol) == KM_ERR_BAD_FORMAT);
	km_buf_free(&pb);
	/* no posture policy: off */
	CU_ASSERT(km_evict_refresh_interval(t_store, &secs) == 0 && secs == 0);

	/* k2: 2 of 3 on node1..node3, active at epoch 1 */
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_CREATE;
	snprintf(p.key_id, sizeof(p.key_id), "k2");
	snprintf(p.label, sizeof(p.label), "ec");
	p.key_type = KM_KEY_EC_P256;
	p.bits = 256;
	p.threshold = 2;
	p.epoch = 1;
	p.nholders = 3;
	p.holders = h3;
	km_buf_init(&pb);
	CU_ASSERT_FATAL(t_ec_pub(2, 3, &pb) == 0);
	p.public_data = pb.data;
	p.public_len = pb.len;
	p.policy = (uint8_t *)"\0\0\0\0\0\0\0\0";
	p.policy_len = 8;
	CU_ASSERT_FATAL(
	    t_apply(&p, "adm", &result, why, sizeof(why)) == 0 && result == 0);
	km_buf_free(&pb);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ACTIVATE;
	snprintf(p.key_id, sizeof(p.key_id), "k2");
	p.epoch = 1;
	CU_ASSERT_FATAL(
	    t_apply(&p, "adm", &result, why, sizeof(why)) == 0 && result == 0);

	/* refresh off: the same holders are refused */
	CU_ASSERT(
	    t_refresh_begin("node1", 2, 2, h3, 3, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "proactive refresh is off") != NULL);

	/* refresh on */
	CU_ASSERT_FATAL(t_set_refresh(5) == 0);
	CU_ASSERT(km_evict_refresh_interval(t_store, &secs) == 0 && secs == 5);
	/* other holders, swapped indices, another threshold, a skipped
	 * epoch, an evicted signer: refused */
	memcpy(other, h3, sizeof(other));
	snprintf(other[2].node, sizeof(other[2].node), "node1");
	CU_ASSERT(
	    t_refresh_begin("node1", 2, 2, other, 3, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "current holders and threshold") != NULL);
	memcpy(swapped, h3, sizeof(swapped));
	snprintf(swapped[0].node, sizeof(swapped[0].node), "node2");
	snprintf(swapped[1].node, sizeof(swapped[1].node), "node1");
	CU_ASSERT(
	    t_refresh_begin("node1", 2, 2, swapped, 3, why, sizeof(why)) != 0);
	CU_ASSERT(
	    t_refresh_begin("node1", 2, 2, h3, 2, why, sizeof(why)) != 0);
	CU_ASSERT(
	    t_refresh_begin("node1", 2, 3, h3, 3, why, sizeof(why)) != 0);
	CU_ASSERT(
	    t_refresh_begin("node1", 2, 1, h3, 3, why, sizeof(why)) != 0);
	CU_ASSERT(
	    t_refresh_begin("node1", 3, 2, h3, 3, why, sizeof(why)) != 0);
	CU_ASSERT(
	    t_refresh_begin("node5", 2, 2, h3, 3, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "node5 is evicted") != NULL);
	k = t_key("k2");
	CU_ASSERT(k.epoch == 1 && k.state == KM_KEY_ACTIVE);
	km_catalog_key_free(&k);

	/* exactly the same holders and threshold: begun and committed; this
	 * store is node2's now, with its old share and its prepared new
	 * one: the commit drops the old */
	CU_ASSERT_FATAL(km_store_set_node(t_store, "node2") == 0);
	CU_ASSERT_FATAL(km_store_share_prepare(
	                    t_store, "k2", 1, 2, (const uint8_t *)"old", 3, 0)
	    == 0);
	CU_ASSERT_FATAL(km_store_share_commit(t_store, "k2", 1) == 0);
	CU_ASSERT(
	    t_refresh_begin("node2", 2, 2, h3, 3, why, sizeof(why)) == 0);
	CU_ASSERT_FATAL(km_store_share_prepare(
	                    t_store, "k2", 2, 2, (const uint8_t *)"new", 3, 0)
	    == 0);
	CU_ASSERT(
	    t_refresh_end("node3", KM_CAT_RESHARE_COMMIT, 2, why, sizeof(why))
	    == 0);
	CU_ASSERT(t_share_state("k2", 1, 2) == 0); /* gone */
	CU_ASSERT(t_share_state("k2", 2, 2) == KM_SHARE_COMMITTED);
	k = t_key("k2");
	CU_ASSERT(k.epoch == 2 && k.state == KM_KEY_ACTIVE && k.threshold == 2
	    && k.nholders == 3 && strcmp(k.holders[2].node, "node3") == 0);
	km_catalog_key_free(&k);

	/* begun, then refresh turned off: no commit, but an abort */
	CU_ASSERT(
	    t_refresh_begin("node1", 3, 2, h3, 3, why, sizeof(why)) == 0);
	CU_ASSERT_FATAL(t_set_refresh(0) == 0);
	CU_ASSERT(
	    t_refresh_end("node1", KM_CAT_RESHARE_COMMIT, 3, why, sizeof(why))
	    != 0);
	CU_ASSERT(strstr(why, "proactive refresh is off") != NULL);
	CU_ASSERT(
	    t_refresh_end("node1", KM_CAT_RESHARE_ABORT, 3, why, sizeof(why))
	    == 0);
	k = t_key("k2");
	CU_ASSERT(k.epoch == 2 && k.state == KM_KEY_ACTIVE);
	km_catalog_key_free(&k);
	/* and no new one */
	CU_ASSERT(
	    t_refresh_begin("node1", 3, 2, h3, 3, why, sizeof(why)) != 0);

	/* an admin begins a refresh without acks (its own public data):
	 * with refresh on a node may abort it, never commit it */
	CU_ASSERT_FATAL(t_set_refresh(3600) == 0);
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k2");
	p.epoch = 3;
	p.threshold = 2;
	p.nholders = 3;
	p.holders = h3;
	p.public_data = (uint8_t *)"admin's";
	p.public_len = 7;
	CU_ASSERT(t_try(&p, "adm", why, sizeof(why)) == 0);
	k = t_key("k2");
	CU_ASSERT(k.state == KM_KEY_RESHARING && !k.next_acked);
	km_catalog_key_free(&k);
	CU_ASSERT(
	    t_refresh_end("node1", KM_CAT_RESHARE_COMMIT, 3, why, sizeof(why))
	    != 0);
	CU_ASSERT(strstr(why, "not begun with the new holders' acks") != NULL);
	CU_ASSERT(
	    t_refresh_end("node1", KM_CAT_RESHARE_ABORT, 3, why, sizeof(why))
	    == 0);
	k = t_key("k2");
	CU_ASSERT(k.epoch == 2 && k.state == KM_KEY_ACTIVE);
	km_catalog_key_free(&k);

	/* refresh on: a key holding an evicted node's index (k1 holds
	 * node4's) is only the eviction's to re-share, never refreshed */
	k = t_key("k1");
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_RESHARE_BEGIN;
	snprintf(p.key_id, sizeof(p.key_id), "k1");
	p.epoch = k.epoch + 1;
	p.threshold = k.threshold;
	p.nholders = k.nholders;
	p.holders = k.holders;
	p.public_data = (uint8_t *)"pubX";
	p.public_len = 4;
	CU_ASSERT(t_apply(&p, "node1", &result, why, sizeof(why)) != 0);
	CU_ASSERT(strstr(why, "only as its eviction calls for") != NULL);
	km_catalog_key_free(&k);
	CU_ASSERT_FATAL(t_set_refresh(0) == 0);
}

/* Who may sign a TRUST_VERDICT (review finding 2): never an evicted
 * node, only a member once the catalog names members.  Runs after
 * test_refresh_authority (node4, node5 evicted; node1..3 hold keys). */
static void
test_verdict_signer(void)
{
	char why[256], sdir[4200];
	km_store *empty = NULL;

	CU_ASSERT(
	    km_evict_verdict_signer(t_store, "node1", why, sizeof(why)) == 0);
	CU_ASSERT(km_evict_verdict_signer(t_store, "node5", why, sizeof(why))
	    == KM_ERR_REVOKED);
	CU_ASSERT(strstr(why, "evicted") != NULL);
	CU_ASSERT(km_evict_verdict_signer(t_store, "node4", why, sizeof(why))
	    == KM_ERR_REVOKED);
	/* a valid node certificate of the CA, but no member */
	CU_ASSERT(km_evict_verdict_signer(t_store, "node6", why, sizeof(why))
	    == KM_ERR_AUTH);
	CU_ASSERT(strstr(why, "not a member") != NULL);
	/* a catalog naming no member yet: any node not evicted */
	snprintf(sdir, sizeof(sdir), "%s/empty", t_ca);
	CU_ASSERT_FATAL(km_store_open_dir(sdir, &empty) == 0);
	CU_ASSERT(
	    km_evict_verdict_signer(empty, "node6", why, sizeof(why)) == 0);
	km_store_close(empty);
}

/* Evidence is counted once per (accused, reply envelope) (review finding
 * 4): a reporter re-signing its request makes a new blob with a new hash,
 * never a new key. */
static void
test_dedupe_key(void)
{
	static const uint8_t req1[] = "request envelope, signed once";
	static const uint8_t req2[] = "request envelope, signed again";
	static const uint8_t rep1[] = "the accused's bad reply";
	static const uint8_t rep2[] = "another bad reply";
	uint8_t k1[32], k2[32], k3[32], k4[32], h1[32], h2[32];
	km_buf b1, b2, b3;

	km_buf_init(&b1);
	km_buf_init(&b2);
	km_buf_init(&b3);
	CU_ASSERT_FATAL(
	    km_evidence_encode(&b1, req1, sizeof(req1), rep1, sizeof(rep1))
	    == 0);
	CU_ASSERT_FATAL(
	    km_evidence_encode(&b2, req2, sizeof(req2), rep1, sizeof(rep1))
	    == 0);
	CU_ASSERT_FATAL(
	    km_evidence_encode(&b3, req1, sizeof(req1), rep2, sizeof(rep2))
	    == 0);
	CU_ASSERT(km_evidence_dedupe_key(b1.data, b1.len, "node3", k1) == 0);
	CU_ASSERT(km_evidence_dedupe_key(b2.data, b2.len, "node3", k2) == 0);
	CU_ASSERT(km_evidence_dedupe_key(b3.data, b3.len, "node3", k3) == 0);
	CU_ASSERT(km_evidence_dedupe_key(b1.data, b1.len, "node4", k4) == 0);
	/* the whole blobs differ, the key does not */
	CU_ASSERT(EVP_Digest(b1.data, b1.len, h1, NULL, EVP_sha256(), NULL));
	CU_ASSERT(EVP_Digest(b2.data, b2.len, h2, NULL, EVP_sha256(), NULL));
	CU_ASSERT(memcmp(h1, h2, 32) != 0);
	CU_ASSERT(memcmp(k1, k2, 32) == 0);
	/* another reply, or another accused: another key */
	CU_ASSERT(memcmp(k1, k3, 32) != 0);
	CU_ASSERT(memcmp(k1, k4, 32) != 0);
	/* bad input */
	CU_ASSERT(
	    km_evidence_dedupe_key(b1.data, b1.len - 1, "node3", k1) != 0);
	CU_ASSERT(km_evidence_dedupe_key(b1.data, b1.len, "bad name!", k1)
	    == KM_ERR_INVALID_ARG);
	km_buf_free(&b1);
	km_buf_free(&b2);
	km_buf_free(&b3);
}

static void
test_plan(void)
{
	km_catalog_holder h[5] = {
		{ 1, "node1" },
		{ 2, "node1" },
		{ 3, "node2" },
		{ 4, "node3" },
		{ 5, "node3" },
	};
	km_catalog_holder out[KM_CATALOG_MAX_HOLDERS];
	km_catalog_evicted ev[1];
	km_catalog_key k;
	size_t n = 0;

	memset(&k, 0, sizeof(k));
	memset(ev, 0, sizeof(ev));
	k.threshold = 3;
	k.nholders = 5;
	k.holders = h;
	/* weighted: node1 keeps both its indices, renumbered */
	snprintf(ev[0].node, sizeof(ev[0].node), "node2");
	CU_ASSERT(km_evict_plan(&k, ev, 1, out, &n) == 0);
	CU_ASSERT(n == 4);
	CU_ASSERT(out[0].index == 1 && strcmp(out[0].node, "node1") == 0);
	CU_ASSERT(out[1].index == 2 && strcmp(out[1].node, "node1") == 0);
	CU_ASSERT(out[2].index == 3 && strcmp(out[2].node, "node3") == 0);
	CU_ASSERT(out[3].index == 4 && strcmp(out[3].node, "node3") == 0);
	/* node3 had two of five: three remain, the threshold */
	snprintf(ev[0].node, sizeof(ev[0].node), "node3");
	CU_ASSERT(km_evict_plan(&k, ev, 1, out, &n) == 0 && n == 3);
	/* node1 and its two: below the threshold */
	k.threshold = 4;
	snprintf(ev[0].node, sizeof(ev[0].node), "node1");
	CU_ASSERT(km_evict_plan(&k, ev, 1, out, &n) == KM_ERR_QUORUM);
	CU_ASSERT(n == 3);
	snprintf(ev[0].node, sizeof(ev[0].node), "node9");
	CU_ASSERT(km_evict_plan(&k, ev, 1, out, &n) == KM_ERR_NOT_FOUND);
}

static const kmt_test t_tests[] = {
	{ "stmt_codec", test_stmt_codec },
	{ "evict_codec", test_evict_codec },
	{ "quorum", test_quorum },
	{ "refusals", test_refusals },
	{ "evict_by_votes", test_evict_by_votes },
	{ "ack_codec", test_ack_codec },
	{ "reshare_authority", test_reshare_authority },
	{ "refresh_authority", test_refresh_authority },
	{ "verdict_signer", test_verdict_signer },
	{ "dedupe_key", test_dedupe_key },
	{ "plan", test_plan },
	KMT_END,
};

static const kmt_suite t_suites[] = {
	{ "evict", t_init, t_cleanup, t_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, t_suites);
}
