/*
 * Seeds the fuzz corpora with real encodings made by the code itself, plus
 * a few truncated and garbage variants.  Run by hand (it is not part of
 * `make check`), then commit what it writes:
 *
 *   make tests/fuzz/gen-corpus && ./tests/fuzz/gen-corpus $srcdir/tests/fuzz
 *
 * (a second argument names one target to regenerate, e.g. "relay").
 * It writes DIR/corpus/{envelope,catalog,rsa,ec,conf,seal,relay}/ and
 * DIR/data/ca.crt, the TEST-ONLY mesh CA whose client signed the envelope
 * seeds (fuzz-envelope checks envelopes against it).  The leading selector
 * byte of each file is the one documented in the target's source.  The
 * proto corpus is hand-made and left alone.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "fuzz-seal.h"
#include "net/envelope.h"
#include "net/relay.h"
#include "pki/pki.h"
#include "pki/seal.h"
#include "proto/proto.h"
#include "store/catalog.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/util.h"

#define NO_SEL -1

static const char *outdir;
static int nwritten;

static void
die(const char *what, int r)
{
	fprintf(stderr, "gen-corpus: %s: %s\n", what, km_strerror(r));
	exit(1);
}

/* Writes @sel (unless NO_SEL) then @len bytes as corpus/@target/@name. */
static void
put(const char *target, const char *name, int sel, const void *data,
    size_t len)
{
	char path[4096];
	km_buf b;
	int r;

	snprintf(path, sizeof(path), "%s/corpus/%s", outdir, target);
	if ((r = km_mkdir_p(path, 0755)) != 0) {
		die(path, r);
	}
	snprintf(path, sizeof(path), "%s/corpus/%s/%s", outdir, target, name);
	km_buf_init(&b);
	if ((sel != NO_SEL && km_buf_put_u8(&b, (uint8_t)sel) != 0)
	    || km_buf_put_raw(&b, data, len) != 0) {
		die("buffer", KM_ERR_ALLOC);
	}
	if ((r = km_write_file_atomic(path, b.data, b.len, 0644)) != 0) {
		die(path, r);
	}
	km_buf_free(&b);
	nwritten++;
}

/* A valid seed, plus its first half (truncated) as NAME-trunc. */
static void
put2(const char *target, const char *name, int sel, const void *data,
    size_t len)
{
	char tname[256];

	put(target, name, sel, data, len);
	snprintf(tname, sizeof(tname), "%s-trunc", name);
	put(target, tname, sel, data, len / 2);
}

/* ---- envelopes ------------------------------------------------------- */

static void
gen_envelope(void)
{
	char ca[] = "/tmp/km-gen-corpus.XXXXXX", path[4096], cmd[4200];
	uint8_t nonce[KM_ENV_NONCE_LEN], *pem = NULL, *der = NULL;
	size_t pemlen = 0;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	km_req_hdr hdr;
	km_buf body, env;
	int derlen, r;

	if (mkdtemp(ca) == NULL) {
		die("mkdtemp", KM_ERR_IO);
	}
	if ((r = km_pki_ca_init(ca, 0)) != 0
	    || (r = km_pki_cert_issue(ca, KM_ROLE_CLIENT, "fuzzclient", 0))
	        != 0) {
		die("CA", r);
	}
	km_pki_path(path, sizeof(path), ca, "fuzzclient", ".key");
	if ((r = km_pki_load_key(path, &key)) != 0) {
		die("client key", r);
	}
	km_pki_path(path, sizeof(path), ca, "fuzzclient", ".crt");
	if ((r = km_pki_load_cert(path, &cert)) != 0) {
		die("client cert", r);
	}
	if ((derlen = i2d_X509(cert, &der)) <= 0) {
		die("i2d_X509", KM_ERR_CRYPTO);
	}
	km_pki_path(path, sizeof(path), ca, "ca.crt", NULL);
	if ((r = km_read_file(path, &pem, &pemlen, 1u << 16)) != 0) {
		die("ca.crt", r);
	}
	snprintf(path, sizeof(path), "%s/data", outdir);
	km_mkdir_p(path, 0755);
	snprintf(path, sizeof(path), "%s/data/ca.crt", outdir);
	if ((r = km_write_file_atomic(path, pem, pemlen, 0644)) != 0) {
		die(path, r);
	}
	memset(nonce, 0x5a, sizeof(nonce));
	km_buf_init(&body);
	km_buf_init(&env);
	/* a status request body, as the admin CLI sends it */
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = KM_MSG_STATUS;
	if ((r = km_req_encode_hdr(&body, &hdr)) != 0) {
		die("request header", r);
	}
	if ((r = km_env_seal(&env, NULL, KM_ENV_REQUEST, der, (size_t)derlen,
	         1767225600000ull, nonce, body.data, body.len, key))
	    != 0) {
		die("seal", r);
	}
	put2("envelope", "request", NO_SEL, env.data, env.len);
	/* the same with a flipped body byte: parses, fails the signature */
	env.data[env.len - 80] ^= 1;
	put("envelope", "request-badsig", NO_SEL, env.data, env.len);
	if ((r = km_env_seal(&env, NULL, KM_ENV_REPLY, der, (size_t)derlen,
	         1767225600001ull, nonce, "\x01\0\0\0\x01\0\0\0\0\0\0\0\0", 13,
	         key))
	    != 0) {
		die("seal", r);
	}
	put("envelope", "reply", NO_SEL, env.data, env.len);
	km_env_error_body(&body, KM_ERR_AUTH, "client not allowed");
	put("envelope", "error-body", NO_SEL, body.data, body.len);
	if ((r = km_env_seal(&env, NULL, KM_ENV_ERROR, der, (size_t)derlen,
	         1767225600002ull, nonce, body.data, body.len, key))
	    != 0) {
		die("seal", r);
	}
	put("envelope", "error", NO_SEL, env.data, env.len);
	/* wrong version, wrong magic */
	env.data[4] = 2;
	put("envelope", "bad-version", NO_SEL, env.data, env.len);
	env.data[0] = 'X';
	put("envelope", "bad-magic", NO_SEL, env.data, env.len);
	put("envelope", "garbage", NO_SEL, "KMEV\x01\x01\xff\xff\xff\xff", 10);
	km_buf_free(&body);
	km_buf_free(&env);
	OPENSSL_free(der);
	free(pem);
	X509_free(cert);
	EVP_PKEY_free(key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ca);
	if (system(cmd) != 0) {
		fprintf(stderr, "gen-corpus: could not remove %s\n", ca);
	}
}

/* ---- catalog --------------------------------------------------------- */

static void
gen_catalog_one(km_catalog_payload *p, const char *name)
{
	km_catalog_entry e;
	char ename[128];
	uint8_t sig[72];
	km_buf pb, eb;
	int r;

	km_buf_init(&pb);
	km_buf_init(&eb);
	if ((r = km_catalog_payload_encode(p, &pb)) != 0) {
		die(name, r);
	}
	/* fuzz-catalog's selector: OBJECT_PUT (10) is 14, as 10 is the
	 * policy decoder's */
	put2("catalog", name, p->type == KM_CAT_OBJECT_PUT ? 14 : (int)p->type,
	    pb.data, pb.len);
	memset(&e, 0, sizeof(e));
	memset(sig, 0x30, sizeof(sig));
	e.seq = 7;
	e.type = p->type;
	e.payload = pb.data;
	e.payload_len = pb.len;
	e.signer = (uint8_t *)"admin";
	e.signer_len = 5;
	e.sig = sig;
	e.sig_len = sizeof(sig);
	if ((r = km_catalog_entry_encode(&e, &eb)) != 0) {
		die(name, r);
	}
	snprintf(ename, sizeof(ename), "entry-%s", name);
	put("catalog", ename, 0, eb.data, eb.len);
	km_buf_free(&pb);
	km_buf_free(&eb);
}

static void
gen_catalog(void)
{
	km_catalog_holder h[3];
	km_catalog_payload p;
	km_catalog_policy pol;
	uint32_t mechs[2] = { 0x1, 0x1050 };
	char *clients[2] = { "app1", "app2" };
	km_buf polb, empty;
	uint8_t cert[16];
	int i, r;

	for (i = 0; i < 3; i++) {
		h[i].index = (uint32_t)i + 1;
		snprintf(h[i].node, sizeof(h[i].node), "node%d", i + 1);
	}
	memset(&pol, 0, sizeof(pol));
	pol.nmechs = 2;
	pol.mechs = mechs;
	pol.nclients = 2;
	pol.clients = clients;
	km_buf_init(&polb);
	km_buf_init(&empty);
	if ((r = km_catalog_policy_encode(&pol, &polb)) != 0) {
		die("policy", r);
	}
	memset(&pol, 0, sizeof(pol));
	if ((r = km_catalog_policy_encode(&pol, &empty)) != 0) {
		die("policy", r);
	}
	put2("catalog", "policy", 10, polb.data, polb.len);
	put("catalog", "policy-empty", 10, empty.data, empty.len);

	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_CREATE;
	snprintf(p.key_id, sizeof(p.key_id), "k0123456789abcdef");
	snprintf(p.label, sizeof(p.label), "web-tls");
	p.key_type = KM_KEY_EC_P256;
	p.bits = 256;
	p.threshold = 2;
	p.epoch = 1;
	p.holders = h;
	p.nholders = 3;
	p.public_data = (uint8_t *)"\x04public";
	p.public_len = 7;
	p.policy = polb.data;
	p.policy_len = polb.len;
	gen_catalog_one(&p, "key-create");

	memset(&p, 0, sizeof(p));
	snprintf(p.key_id, sizeof(p.key_id), "k0123456789abcdef");
	p.epoch = 1;
	p.type = KM_CAT_KEY_ACTIVATE;
	gen_catalog_one(&p, "key-activate");
	p.type = KM_CAT_KEY_DESTROY;
	gen_catalog_one(&p, "key-destroy");
	p.type = KM_CAT_RESHARE_COMMIT;
	p.epoch = 2;
	gen_catalog_one(&p, "reshare-commit");
	p.type = KM_CAT_RESHARE_ABORT;
	gen_catalog_one(&p, "reshare-abort");
	p.type = KM_CAT_RESHARE_BEGIN;
	p.threshold = 2;
	p.holders = h;
	p.nholders = 3;
	p.public_data = (uint8_t *)"\x04public2";
	p.public_len = 8;
	gen_catalog_one(&p, "reshare-begin");

	memset(&p, 0, sizeof(p));
	memset(cert, 0x30, sizeof(cert));
	p.type = KM_CAT_MEMBER_ADD;
	snprintf(p.node, sizeof(p.node), "node4");
	p.role = KM_ROLE_NODE;
	p.cert = cert;
	p.cert_len = sizeof(cert);
	gen_catalog_one(&p, "member-add");
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_MEMBER_REMOVE;
	snprintf(p.node, sizeof(p.node), "node4");
	gen_catalog_one(&p, "member-remove");
	/* an eviction with one vote (the bytes need not verify here) */
	{
		km_catalog_vote v = { cert, sizeof(cert),
			(uint8_t *)"statement", 9, (uint8_t *)"sig", 3 };

		memset(&p, 0, sizeof(p));
		p.type = KM_CAT_EVICT;
		snprintf(p.node, sizeof(p.node), "node5");
		snprintf(p.reason, sizeof(p.reason), "bad partial");
		p.nvotes = 1;
		p.votes = &v;
		gen_catalog_one(&p, "evict");
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_POLICY_SET;
	p.policy = empty.data;
	p.policy_len = empty.len;
	gen_catalog_one(&p, "policy-set");

	/* objects: a certificate with its attribute list, a delete, and a
	 * key's CKA_ID */
	{
		static const uint8_t ulong8[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
		const km_catalog_attr at[3] = {
			{ 0x0, ulong8, 8 },                  /* CKA_CLASS */
			{ 0x3, (const uint8_t *)"cert", 4 }, /* CKA_LABEL */
			{ 0x80, ulong8, 8 }, /* CKA_CERTIFICATE_TYPE */
		};
		km_buf ab;

		km_buf_init(&ab);
		if (km_catalog_attrs_encode(at, 3, &ab) != 0) {
			die("attrs", KM_ERR_ALLOC);
		}
		put2("catalog", "attrs", 13, ab.data, ab.len);
		memset(&p, 0, sizeof(p));
		p.type = KM_CAT_OBJECT_PUT;
		snprintf(p.object_id, sizeof(p.object_id), "obj-0123456789ab");
		snprintf(p.partition, sizeof(p.partition), "default");
		p.obj_class = KM_OBJ_CERTIFICATE;
		p.obj_flags = KM_OBJ_FLAG_PRIVATE;
		p.app_id = (uint8_t *)"\x01\x02";
		p.app_id_len = 2;
		p.obj_label = (uint8_t *)"cert";
		p.obj_label_len = 4;
		p.value = cert;
		p.value_len = sizeof(cert);
		p.attrs = ab.data;
		p.attrs_len = ab.len;
		gen_catalog_one(&p, "object-put");
		km_buf_free(&ab);
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_OBJECT_DELETE;
	snprintf(p.object_id, sizeof(p.object_id), "obj-0123456789ab");
	gen_catalog_one(&p, "object-delete");
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ATTRS;
	snprintf(p.key_id, sizeof(p.key_id), "k0123456789abcdef");
	p.app_id = (uint8_t *)"\x01";
	p.app_id_len = 1;
	gen_catalog_one(&p, "key-attrs");
	km_buf_free(&polb);
	km_buf_free(&empty);
}

/* ---- RSA ------------------------------------------------------------- */

static void
load_primes(const char *srcdir, BIGNUM **p, BIGNUM **q)
{
	char path[4096], line[2048];
	FILE *fp;

	snprintf(
	    path, sizeof(path), "%s/tests/data/rsa/safe-2048.txt", srcdir);
	if ((fp = fopen(path, "r")) == NULL) {
		die(path, KM_ERR_NOT_FOUND);
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "p=", 2) == 0) {
			BN_hex2bn(p, line + 2);
		} else if (strncmp(line, "q=", 2) == 0) {
			BN_hex2bn(q, line + 2);
		}
	}
	fclose(fp);
}

/* Seeds for one key; @odd selects the selector of that key (fuzz-rsa.c). */
static void
gen_rsa_key(const km_rsa_pub *pub, km_rsa_share **sh, int odd, const char *tag)
{
	km_rsa_partial *part = NULL;
	km_rsa_subdeal *sd = NULL;
	unsigned quorum[2] = { 1, 2 };
	char name[64];
	BIGNUM *x;
	km_buf b;
	int r;

	km_buf_init_secure(&b);
	if ((r = km_rsa_pub_encode(pub, &b)) != 0) {
		die("pub", r);
	}
	snprintf(name, sizeof(name), "pub-%s", tag);
	put2("rsa", name, 0, b.data, b.len);
	km_buf_reset(&b);
	if ((r = km_rsa_share_encode(pub, sh[1], &b)) != 0) {
		die("share", r);
	}
	snprintf(name, sizeof(name), "share-%s", tag);
	put2("rsa", name, odd ? 1 : 2, b.data, b.len);
	x = BN_new();
	BN_set_word(x, 0x10001);
	BN_lshift(x, x, 1500);
	if ((r = km_rsa_partial_new(pub, sh[0], x, true, &part)) != 0) {
		die("partial", r);
	}
	km_buf_reset(&b);
	if ((r = km_rsa_partial_encode(part, &b)) != 0) {
		die("partial", r);
	}
	snprintf(name, sizeof(name), "partial-%s", tag);
	put2("rsa", name, odd ? 3 : 4, b.data, b.len);
	if ((r = km_rsa_reshare_deal(pub, sh[0], quorum, 2, 2, 3, &sd)) != 0) {
		die("reshare deal", r);
	}
	km_buf_reset(&b);
	if ((r = km_rsa_subdeal_encode(sd, 2, &b)) != 0) {
		die("subdeal", r);
	}
	snprintf(name, sizeof(name), "subdeal-%s", tag);
	put2("rsa", name, odd ? 5 : 6, b.data, b.len);
	km_buf_reset(&b);
	if ((r = km_rsa_subdeal_encode(sd, 0, &b)) != 0) {
		die("subdeal", r);
	}
	snprintf(name, sizeof(name), "subdeal-public-%s", tag);
	put("rsa", name, odd ? 5 : 6, b.data, b.len);
	km_rsa_subdeal_free(sd);
	km_rsa_partial_free(part);
	BN_free(x);
	km_buf_free(&b);
}

static void
gen_rsa(const char *srcdir)
{
	km_rsa_share *sh[3] = { NULL };
	km_rsa_pub *pub = NULL;
	BIGNUM *p = NULL, *q = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	char path[4096];
	int r;

	load_primes(srcdir, &p, &q);
	if ((r = km_rsa_deal_from_primes(p, q, NULL, 2, 3, &pub, sh)) != 0) {
		die("deal", r);
	}
	gen_rsa_key(pub, sh, 1, "dealt");
	km_rsa_shares_free(sh, 3);
	km_rsa_pub_free(pub);
	pub = NULL;
	snprintf(
	    path, sizeof(path), "%s/tests/data/rsa/import-2048.der", srcdir);
	if ((r = km_read_file(path, &der, &len, 1u << 16)) != 0
	    || (r = km_rsa_import(der, len, 2, 3, &pub, sh)) != 0) {
		die("import", r);
	}
	gen_rsa_key(pub, sh, 0, "imported");
	km_rsa_shares_free(sh, 3);
	km_rsa_pub_free(pub);
	free(der); /* a public test fixture */
	BN_clear_free(p);
	BN_clear_free(q);
}

/* ---- EC -------------------------------------------------------------- */

static void
gen_ec_curve(int nid, int curve, const char *tag)
{
	km_ec_group *g = NULL;
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	km_ec_partial *part = NULL;
	BIGNUM *secret = NULL;
	uint8_t oct[1 + 2 * 66];
	size_t olen;
	char name[64];
	km_buf b;
	int r;

	if ((r = km_ec_group_new(nid, &g)) != 0
	    || (r = km_ec_scalar_random(g, &secret)) != 0
	    || (r = km_ec_dealer_split(g, secret, 2, 3, &sh, &pub)) != 0) {
		die(tag, r);
	}
	km_buf_init_secure(&b);
	if ((r = km_ec_pub_encode(g, pub, &b)) != 0) {
		die("ec pub", r);
	}
	snprintf(name, sizeof(name), "pub-%s", tag);
	put2("ec", name, curve | 0 << 1, b.data, b.len);
	km_buf_reset(&b);
	if ((r = km_ec_share_encode(g, sh[0], &b)) != 0) {
		die("ec share", r);
	}
	snprintf(name, sizeof(name), "share-%s", tag);
	put2("ec", name, curve | 1 << 1, b.data, b.len);
	if ((r = km_ecdh_partial(g, pub, sh[1], pub->vk[2], &part)) != 0) {
		die("ecdh partial", r);
	}
	km_buf_reset(&b);
	if ((r = km_ec_partial_encode(g, part, &b)) != 0) {
		die("ec partial", r);
	}
	snprintf(name, sizeof(name), "partial-%s", tag);
	put2("ec", name, curve | 2 << 1, b.data, b.len);
	if ((r = km_ec_point_to_octets(g, pub->y, oct)) != 0) {
		die("octets", r);
	}
	snprintf(name, sizeof(name), "point-%s", tag);
	put("ec", name, curve | 3 << 1, oct, g->plen);
	olen = EC_POINT_point2oct(g->group, pub->y,
	    POINT_CONVERSION_COMPRESSED, oct, sizeof(oct), NULL);
	snprintf(name, sizeof(name), "point-compressed-%s", tag);
	put("ec", name, curve | 3 << 1, oct, olen);
	km_ec_partial_free(part);
	km_ec_shares_free(sh, 3);
	km_ec_pub_free(pub);
	BN_clear_free(secret);
	km_ec_group_free(g);
	km_buf_free(&b);
}

static void
gen_ec(void)
{
	gen_ec_curve(NID_X9_62_prime256v1, 0, "p256");
	gen_ec_curve(NID_secp384r1, 1, "p384");
	put("ec", "point-infinity", 3 << 1, "\0", 1);
}

/* ---- config files ---------------------------------------------------- */

static void
gen_conf(const char *srcdir)
{
	static const char *const files[] = { "keymeshd.conf", "client.conf" };
	static const char quoted[] = "# quoting and comments\n"
	                             "[node]\n"
	                             "name = node1   # trailing comment\n"
	                             "pin = \"  12#34  \"\n"
	                             "empty = \"\"\n"
	                             "port = 7301\n"
	                             "[tls]\r\n"
	                             "verify = yes\r\n"
	                             "; another comment\n"
	                             "ca = ../ca/ca.crt\n";
	char path[4096];
	uint8_t *d = NULL;
	size_t i, len = 0;
	int r;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/conf/%s", srcdir, files[i]);
		if ((r = km_read_file(path, &d, &len, 1u << 20)) != 0) {
			die(path, r);
		}
		put("conf", files[i], NO_SEL, d, len);
		free(d);
		d = NULL;
	}
	put2("conf", "quoted", NO_SEL, quoted, strlen(quoted));
	put("conf", "bad-section", NO_SEL, "[node\nx = 1\n", 12);
	put("conf", "bad-line", NO_SEL, "[node]\njust words\n", 18);
	put("conf", "unterminated", NO_SEL, "a = \"open\n", 10);
}

/* ---- sealed boxes ---------------------------------------------------- */

static void
gen_seal(void)
{
	static const size_t sizes[] = { 0, 32, 300 };
	uint8_t msg[300];
	EVP_PKEY *key;
	char name[64];
	km_buf b;
	size_t i;
	BIO *bio;
	int r;

	bio = BIO_new_mem_buf(km_fuzz_seal_key_pem, -1);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (key == NULL) {
		die("seal key", KM_ERR_CRYPTO);
	}
	memset(msg, 0x42, sizeof(msg));
	km_buf_init(&b);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		km_buf_reset(&b);
		if ((r = km_seal(key, KM_FUZZ_SEAL_AAD,
		         strlen(KM_FUZZ_SEAL_AAD), msg, sizes[i], &b))
		    != 0) {
			die("seal", r);
		}
		snprintf(name, sizeof(name), "box-%zu", sizes[i]);
		put2("seal", name, NO_SEL, b.data, b.len);
	}
	/* a tampered tag, and a box for another context */
	b.data[b.len - 1] ^= 1;
	put("seal", "box-tampered", NO_SEL, b.data, b.len);
	km_buf_reset(&b);
	if ((r = km_seal(key, "other", 5, msg, 16, &b)) != 0) {
		die("seal", r);
	}
	put("seal", "box-other-context", NO_SEL, b.data, b.len);
	km_buf_free(&b);
	EVP_PKEY_free(key);
}

/* ---- relay frames ---------------------------------------------------- */

static void
gen_relay(void)
{
	static const uint8_t body[] = "a request body";
	km_relay_frame f;
	km_buf b, all;
	int r;

	km_buf_init(&b);
	km_buf_init(&all);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_HELLO;
	f.version = KM_RELAY_VERSION;
	f.nodes = 5;
	if ((r = km_relay_frame_encode(&b, &f)) != 0) {
		die("relay", r);
	}
	put("relay", "hello", NO_SEL, b.data, b.len);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_STATUS;
	f.connected[0] = 0x1f;
	if ((r = km_relay_frame_encode(&b, &f)) != 0) {
		die("relay", r);
	}
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_REQUEST;
	f.id = 1;
	f.channel = 1;
	f.node = 3;
	f.timeout_ms = 2000;
	f.body = body;
	f.body_len = sizeof(body) - 1;
	km_buf_reset(&all);
	if ((r = km_relay_frame_encode(&all, &f)) != 0) {
		die("relay", r);
	}
	put2("relay", "request", NO_SEL, all.data, all.len);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_REPLY;
	f.id = 1;
	snprintf(f.peer, sizeof(f.peer), "node4");
	f.body = body;
	f.body_len = sizeof(body) - 1;
	if ((r = km_relay_frame_encode(&b, &f)) != 0) {
		die("relay", r);
	}
	f.code = KM_ERR_TIMEOUT;
	f.body_len = 0;
	if ((r = km_relay_frame_encode(&b, &f)) != 0) {
		die("relay", r);
	}
	/* a stream: hello, status, two replies */
	put("relay", "stream", NO_SEL, b.data, b.len);
	/* a huge length, and a bad type */
	put("relay", "huge-length", NO_SEL, "\xff\xff\xff\xff\x01", 5);
	put("relay", "bad-type", NO_SEL, "\0\0\0\x02\x2a\0", 6);
	km_buf_free(&b);
	km_buf_free(&all);
}

int
main(int argc, char **argv)
{
	const char *src = getenv("KM_SRCDIR");

	if (argc != 2 && argc != 3) {
		fprintf(
		    stderr, "usage: gen-corpus SRCDIR/tests/fuzz [TARGET]\n");
		return 2;
	}
	outdir = argv[1];
	if (src == NULL) {
		src = KM_SRCDIR;
	}
	if (argc == 3) {
		if (strcmp(argv[2], "relay") != 0) {
			fprintf(stderr, "gen-corpus: only \"relay\" alone\n");
			return 2;
		}
		gen_relay();
		printf("gen-corpus: wrote %d files under %s/corpus\n",
		    nwritten, outdir);
		return 0;
	}
	gen_relay();
	gen_envelope();
	gen_catalog();
	gen_rsa(src);
	gen_ec();
	gen_conf(src);
	gen_seal();
	printf(
	    "gen-corpus: wrote %d files under %s/corpus\n", nwritten, outdir);
	return 0;
}
