/*
 * Unit tests of src/trust: the beacon codec (round trip, bounds, strict
 * decoding), signing and verification (bad signature, wrong signer, other
 * CA, client certificate), freshness and replay in the trust graph, the
 * GRAPH reply codec and its DOT drawing.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "kmt.h"
#include "pki/pki.h"
#include "trust/beacon.h"
#include "trust/graph.h"
#include "util/err.h"
#include "util/util.h"

#define NOW 1800000000000ull

/* A CA with nodes n1, n2, a client and a second CA, made once. */
static char ca[4096], other[4096];
static X509_STORE *store;

typedef struct signer {
	EVP_PKEY *key;
	uint8_t *der;
	size_t derlen;
} signer;

static signer s_n1, s_n2, s_app, s_intruder;

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
suite_init(void)
{
	const char *d = kmt_tmpdir();
	char *cap, *crl;

	if (d == NULL) {
		return -1;
	}
	snprintf(ca, sizeof(ca), "%s/ca", d);
	snprintf(other, sizeof(other), "%s/other", d);
	if (kmt_run("mkdir %s %s", ca, other) != 0
	    || km_pki_ca_init(ca, 0) != 0 || km_pki_ca_init(other, 0) != 0
	    || km_pki_cert_issue(ca, KM_ROLE_NODE, "n1", 0) != 0
	    || km_pki_cert_issue(ca, KM_ROLE_NODE, "n2", 0) != 0
	    || km_pki_cert_issue(ca, KM_ROLE_CLIENT, "app", 0) != 0
	    || km_pki_cert_issue(other, KM_ROLE_NODE, "n1", 0) != 0) {
		return -1;
	}
	if (load_signer(ca, "n1", &s_n1) != 0
	    || load_signer(ca, "n2", &s_n2) != 0
	    || load_signer(ca, "app", &s_app) != 0
	    || load_signer(other, "n1", &s_intruder) != 0) {
		return -1;
	}
	cap = slurp(ca, "ca.crt");
	crl = slurp(ca, "crl.pem");
	if (cap == NULL || crl == NULL
	    || km_pki_store_load(cap, crl, &store) != 0) {
		return -1;
	}
	free(cap);
	free(crl);
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
	free_signer(&s_n1);
	free_signer(&s_n2);
	free_signer(&s_app);
	free_signer(&s_intruder);
	X509_STORE_free(store);
	return 0;
}

static void
make_beacon(km_beacon *b, const char *node, uint64_t seq, uint64_t t)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->node, sizeof(b->node), "%s", node);
	b->seq = seq;
	b->time_ms = t;
	b->interval_ms = 2000;
	snprintf(b->version, sizeof(b->version), "0.1.0");
	memset(b->bin_sha256, 0xab, 32);
	memset(b->conf_sha256, 0xcd, 32);
	snprintf(b->token_manuf, sizeof(b->token_manuf), "SoftHSM project");
	snprintf(b->token_model, sizeof(b->token_model), "SoftHSM v2");
	snprintf(b->token_serial, sizeof(b->token_serial), "0123456789abcdef");
	snprintf(b->token_firmware, sizeof(b->token_firmware), "2.6");
	b->token_flags = 0x40d;
	snprintf(b->kernel, sizeof(b->kernel), "Linux 6.1.0 x86_64");
	snprintf(b->secure_boot, sizeof(b->secure_boot), "unknown");
	b->uptime_ms = 12345;
	b->load_milli = 750;
	b->queue_depth = 3;
	b->requests = 100;
	b->refused = 2;
	b->errors = 1;
	b->npeers = 2;
	snprintf(b->peers[0].name, sizeof(b->peers[0].name), "n2");
	b->peers[0].rtt_us = 1234;
	snprintf(b->peers[1].name, sizeof(b->peers[1].name), "n3");
	b->peers[1].rtt_us = KM_BEACON_RTT_NONE;
}

static void
test_round_trip(void)
{
	km_beacon a, b;
	km_buf buf, again;

	make_beacon(&a, "n1", 7, NOW);
	km_buf_init(&buf);
	km_buf_init(&again);
	CU_ASSERT_FATAL(km_beacon_encode(&buf, &a) == 0);
	CU_ASSERT(km_beacon_decode(buf.data, buf.len, &b) == 0);
	CU_ASSERT(memcmp(&a, &b, sizeof(a)) == 0);
	CU_ASSERT(km_beacon_encode(&again, &b) == 0);
	CU_ASSERT(again.len == buf.len
	    && memcmp(again.data, buf.data, buf.len) == 0);
	km_buf_free(&buf);
	km_buf_free(&again);
}

/* Every prefix is refused, and so is one byte more. */
static void
test_truncated_trailing(void)
{
	km_beacon a, b;
	km_buf buf;
	size_t n;

	make_beacon(&a, "n1", 7, NOW);
	km_buf_init(&buf);
	CU_ASSERT_FATAL(km_beacon_encode(&buf, &a) == 0);
	for (n = 0; n < buf.len; n++) {
		CU_ASSERT(
		    km_beacon_decode(buf.data, n, &b) == KM_ERR_BAD_FORMAT);
	}
	CU_ASSERT(km_buf_put_u8(&buf, 0) == 0);
	CU_ASSERT(
	    km_beacon_decode(buf.data, buf.len, &b) == KM_ERR_BAD_FORMAT);
	km_buf_free(&buf);
}

/* Each text field over its bound is refused by encoder and decoder. */
static void
test_bounds(void)
{
	km_beacon a, b;
	km_buf buf;
	char big[300];
	struct {
		char *field;
		size_t max;
	} f[6];
	size_t i;

	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	make_beacon(&a, "n1", 7, NOW);
	f[0].field = a.version, f[0].max = KM_BEACON_VERSION_MAX;
	f[1].field = a.token_manuf, f[1].max = KM_BEACON_TOKEN_MANUF_MAX;
	f[2].field = a.token_model, f[2].max = KM_BEACON_TOKEN_MODEL_MAX;
	f[3].field = a.token_serial, f[3].max = KM_BEACON_TOKEN_SERIAL_MAX;
	f[4].field = a.kernel, f[4].max = KM_BEACON_KERNEL_MAX;
	f[5].field = a.secure_boot, f[5].max = KM_BEACON_SECBOOT_MAX;
	for (i = 0; i < KM_ARRAY_LEN(f); i++) {
		km_beacon c = a;
		char *fld = (char *)&c + (f[i].field - (char *)&a);
		km_buf raw;

		/* exactly at the bound: fine */
		memset(fld, 'y', f[i].max);
		fld[f[i].max] = '\0';
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == 0);
		CU_ASSERT(km_beacon_decode(buf.data, buf.len, &b) == 0);
		km_buf_free(&buf);
		/* a control character: refused */
		fld[0] = '\n';
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
		/* one over, written by hand past the encoder */
		km_buf_init(&raw);
		memset(fld, 'y', f[i].max);
		fld[f[i].max] = '\0';
		CU_ASSERT(km_beacon_encode(&raw, &c) == 0);
		{
			/* find the field's string and grow it by one */
			const char *needle = fld;
			size_t nl = strlen(needle), k;
			km_buf grown;

			km_buf_init(&grown);
			for (k = 4; k + nl <= raw.len; k++) {
				if (memcmp(raw.data + k, needle, nl) == 0) {
					break;
				}
			}
			CU_ASSERT_FATAL(k + nl <= raw.len);
			km_buf_put_raw(&grown, raw.data, k - 4);
			km_buf_put_u32(&grown, (uint32_t)nl + 1);
			km_buf_put_raw(&grown, raw.data + k, nl);
			km_buf_put_u8(&grown, 'y');
			km_buf_put_raw(
			    &grown, raw.data + k + nl, raw.len - k - nl);
			CU_ASSERT(km_beacon_decode(grown.data, grown.len, &b)
			    == KM_ERR_BAD_FORMAT);
			km_buf_free(&grown);
		}
		km_buf_free(&raw);
	}
	/* too many peers, a bad peer name, a duplicate, oneself */
	{
		km_beacon c = a;
		c.npeers = KM_BEACON_MAX_PEERS + 1;
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
		c = a;
		snprintf(c.peers[1].name, sizeof(c.peers[1].name), "n2");
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
		c = a;
		snprintf(c.peers[1].name, sizeof(c.peers[1].name), "n1");
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
		c = a;
		snprintf(c.peers[1].name, sizeof(c.peers[1].name), "a b");
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
		c = a;
		c.node[0] = '\0';
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
	}
	/* a count of peers larger than the limit, by hand */
	{
		km_beacon c = a;
		c.npeers = 0;
		km_buf_init(&buf);
		CU_ASSERT(km_beacon_encode(&buf, &c) == 0);
		buf.data[buf.len - 1] = 0xff; /* npeers = 255 */
		CU_ASSERT(km_beacon_decode(buf.data, buf.len, &b)
		    == KM_ERR_BAD_FORMAT);
		buf.data[buf.len - 1] = 0;
		buf.data[3] = 2; /* version 2 */
		CU_ASSERT(km_beacon_decode(buf.data, buf.len, &b)
		    == KM_ERR_BAD_VERSION);
		km_buf_free(&buf);
	}
	/* oversized */
	{
		uint8_t *huge = calloc(1, KM_BEACON_BODY_MAX + 1);
		CU_ASSERT(km_beacon_decode(huge, KM_BEACON_BODY_MAX + 1, &b)
		    == KM_ERR_TOO_LARGE);
		CU_ASSERT(km_beacon_verify(
		              store, huge, KM_BEACON_SIGNED_MAX + 1, &b, NULL)
		    == KM_ERR_TOO_LARGE);
		free(huge);
	}
}

static void
test_sign_verify(void)
{
	km_beacon a, b;
	km_identity id;
	km_buf buf;

	make_beacon(&a, "n1", 7, NOW);
	km_buf_init(&buf);
	CU_ASSERT_FATAL(
	    km_beacon_sign(s_n1.key, s_n1.der, s_n1.derlen, &a, &buf) == 0);
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, &id) == 0);
	CU_ASSERT(strcmp(id.name, "n1") == 0 && id.role == KM_ROLE_NODE);
	CU_ASSERT(memcmp(&a, &b, sizeof(a)) == 0);
	/* trailing and truncated */
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len - 1, &b, NULL)
	    == KM_ERR_BAD_FORMAT);
	km_buf_put_u8(&buf, 0);
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, NULL)
	    == KM_ERR_BAD_FORMAT);
	/* a flipped byte in the body (the seq): bad signature */
	buf.len--;
	buf.data[4 + 4 + 4 + 2 + 7] ^= 1;
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, NULL)
	    == KM_ERR_VERIFY);
	CU_ASSERT(b.node[0] == '\0');
	km_buf_free(&buf);
}

static void
test_wrong_signer(void)
{
	km_beacon a, b;
	km_buf buf;

	/* n2 signing a beacon that names n1 */
	make_beacon(&a, "n1", 7, NOW);
	km_buf_init(&buf);
	CU_ASSERT_FATAL(
	    km_beacon_sign(s_n2.key, s_n2.der, s_n2.derlen, &a, &buf) == 0);
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, NULL)
	    == KM_ERR_AUTH);
	km_buf_free(&buf);
	/* n1's key under n2's certificate */
	km_buf_init(&buf);
	CU_ASSERT_FATAL(
	    km_beacon_sign(s_n1.key, s_n2.der, s_n2.derlen, &a, &buf) == 0);
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, NULL)
	    == KM_ERR_VERIFY);
	km_buf_free(&buf);
	/* a client is not a node */
	snprintf(a.node, sizeof(a.node), "app");
	km_buf_init(&buf);
	CU_ASSERT_FATAL(
	    km_beacon_sign(s_app.key, s_app.der, s_app.derlen, &a, &buf) == 0);
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, NULL)
	    == KM_ERR_AUTH);
	km_buf_free(&buf);
	/* an "n1" of another CA */
	snprintf(a.node, sizeof(a.node), "n1");
	km_buf_init(&buf);
	CU_ASSERT_FATAL(km_beacon_sign(s_intruder.key, s_intruder.der,
	                    s_intruder.derlen, &a, &buf)
	    == 0);
	CU_ASSERT(km_beacon_verify(store, buf.data, buf.len, &b, NULL)
	    == KM_ERR_AUTH);
	km_buf_free(&buf);
}

static void
test_fresh_replay(void)
{
	km_trust_graph *g = calloc(1, sizeof(*g));
	const km_trust_node *n;
	km_beacon a;

	km_trust_graph_init(g, 8000, 5000);
	CU_ASSERT(km_trust_graph_add_node(g, "n1") == 0);
	CU_ASSERT(km_trust_graph_add_node(g, "n1") == 0);
	CU_ASSERT(g->nnodes == 1);
	n = km_trust_graph_find(g, "n1");
	CU_ASSERT(km_trust_node_state(g, n, NOW) == KM_TRUST_UNREACHABLE);
	/* stale: older than the maximum age */
	make_beacon(&a, "n1", 10, NOW - 8001);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW) == KM_ERR_STALE);
	/* from too far ahead */
	make_beacon(&a, "n1", 10, NOW + 5001);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW) == KM_ERR_STALE);
	/* fresh, within the skew */
	make_beacon(&a, "n1", 10, NOW + 4000);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW) == 0);
	CU_ASSERT(km_trust_node_state(g, n, NOW) == KM_TRUST_UP);
	/* replayed: same sequence, lower sequence, time going back */
	CU_ASSERT(km_trust_graph_update(g, &a, NOW + 1) == KM_ERR_STALE);
	make_beacon(&a, "n1", 9, NOW + 4500);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW + 1) == KM_ERR_STALE);
	make_beacon(&a, "n1", 11, NOW + 3000);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW + 1) == KM_ERR_STALE);
	CU_ASSERT(n->beacon.seq == 10);
	make_beacon(&a, "n1", 11, NOW + 4500);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW + 500) == 0);
	CU_ASSERT(n->beacon.seq == 11);
	/* silent past the maximum age: unreachable, not untrusted */
	CU_ASSERT(km_trust_node_state(g, n, NOW + 500 + 8000) == KM_TRUST_UP);
	CU_ASSERT(km_trust_node_state(g, n, NOW + 500 + 8001)
	    == KM_TRUST_UNREACHABLE);
	free(g);
}

static void
test_graph_codec_dot(void)
{
	km_trust_graph *g = calloc(1, sizeof(*g));
	km_trust_view *v = calloc(1, sizeof(*v));
	const km_trust_view_node *vn;
	km_beacon a;
	km_buf buf, dot;
	size_t n;

	km_trust_graph_init(g, 8000, 5000);
	CU_ASSERT(km_trust_graph_add_node(g, "n3") == 0);
	make_beacon(&a, "n1", 1, NOW);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW) == 0);
	make_beacon(&a, "n2", 1, NOW);
	snprintf(a.peers[0].name, sizeof(a.peers[0].name), "n1");
	CU_ASSERT(km_trust_graph_update(g, &a, NOW) == 0);
	/* a verdict outranks a fresh beacon, and travels with its reason */
	make_beacon(&a, "n4", 1, NOW);
	CU_ASSERT(km_trust_graph_update(g, &a, NOW) == 0);
	{
		km_trust_node *q = (km_trust_node *)km_trust_graph_find(g, "n4");

		CU_ASSERT_FATAL(q != NULL);
		CU_ASSERT(q->score == KM_TRUST_SCORE_MAX);
		q->verdict = KM_TRUST_QUARANTINED;
		q->score = 20;
		snprintf(q->reason, sizeof(q->reason), "binary not allowed");
		CU_ASSERT(km_trust_node_state(g, q, NOW) == KM_TRUST_QUARANTINED);
		/* a reason the decoder would refuse is not encoded */
		snprintf(q->reason, sizeof(q->reason), "bad\nline");
		km_buf_init(&buf);
		CU_ASSERT(km_trust_graph_encode(&buf, "n1", g, NOW)
		    == KM_ERR_INVALID_ARG);
		km_buf_free(&buf);
		snprintf(q->reason, sizeof(q->reason), "binary not allowed");
	}
	km_buf_init(&buf);
	CU_ASSERT_FATAL(km_trust_graph_encode(&buf, "n1", g, NOW + 100) == 0);
	CU_ASSERT(km_trust_view_decode(&buf, v) == 0);
	CU_ASSERT(v->nnodes == 4 && strcmp(v->observer, "n1") == 0);
	vn = km_trust_view_find(v, "n4");
	CU_ASSERT(vn != NULL && vn->state == KM_TRUST_QUARANTINED
	    && vn->score == 20 && strcmp(vn->reason, "binary not allowed") == 0);
	vn = km_trust_view_find(v, "n3");
	CU_ASSERT(vn != NULL && !vn->have && vn->state == KM_TRUST_UNREACHABLE
	    && vn->age_ms == KM_TRUST_AGE_NONE);
	vn = km_trust_view_find(v, "n2");
	CU_ASSERT(vn != NULL && vn->have && vn->state == KM_TRUST_UP
	    && vn->age_ms == 100 && vn->beacon.peers[0].rtt_us == 1234);
	/* strict: every prefix refused, trailing bytes refused */
	for (n = 0; n < buf.len; n++) {
		km_buf view;
		km_buf_init_view(&view, buf.data, n);
		CU_ASSERT(km_trust_view_decode(&view, v) != 0);
	}
	km_buf_put_u8(&buf, 0);
	buf.off = 0;
	CU_ASSERT(km_trust_view_decode(&buf, v) == KM_ERR_BAD_FORMAT);
	buf.len--;
	buf.off = 0;
	CU_ASSERT(km_trust_view_decode(&buf, v) == 0);
	km_buf_init(&dot);
	CU_ASSERT(km_trust_view_dot(v, &dot) == 0);
	km_buf_put_u8(&dot, 0);
	CU_ASSERT(strstr((char *)dot.data, "digraph keymesh {") != NULL);
	CU_ASSERT(
	    strstr((char *)dot.data, "\"n2\" -> \"n1\" [label=\"1.23 ms\"]")
	    != NULL);
	CU_ASSERT(strstr((char *)dot.data, "\"n3\" [fillcolor=grey") != NULL);
	CU_ASSERT(strstr((char *)dot.data, "\"n1\" [fillcolor=green") != NULL);
	CU_ASSERT(strstr((char *)dot.data, "\"n4\" [fillcolor=orange") != NULL);
	/* n3 is never measured: no edge to it */
	CU_ASSERT(strstr((char *)dot.data, "-> \"n3\"") == NULL);
	km_buf_free(&dot);
	km_buf_free(&buf);
	free(v);
	free(g);
}

static const kmt_test beacon_tests[] = {
	{ "round_trip", test_round_trip },
	{ "truncated_trailing", test_truncated_trailing },
	{ "bounds", test_bounds },
	{ "sign_verify", test_sign_verify },
	{ "wrong_signer", test_wrong_signer },
	{ "fresh_replay", test_fresh_replay },
	{ "graph_codec_dot", test_graph_codec_dot },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "beacon", suite_init, suite_cleanup, beacon_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
