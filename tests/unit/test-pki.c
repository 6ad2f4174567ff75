/*
 * Unit tests for the mesh PKI (src/pki) and the `keymesh ca|cert` commands.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/pem.h>

#include "kmt.h"
#include "pki/pki.h"
#include "pki/seal.h"
#include "util/err.h"
#include "util/util.h"

static char *
slurp(const char *dir, const char *what, const char *suffix)
{
	char path[4096];
	uint8_t *data = NULL;
	size_t len;

	if (km_pki_path(path, sizeof(path), dir, what, suffix) != 0 ||
	    km_read_file(path, &data, &len, 1 << 20) != 0) {
		return NULL;
	}
	return (char *)data;
}

static X509 *
load_cert(const char *dir, const char *name)
{
	char *pem = slurp(dir, name, ".crt");
	X509 *x = NULL;
	BIO *bio;

	if (pem == NULL) {
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, -1)) != NULL) {
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	free(pem);
	return x;
}

static X509_STORE *
load_store(const char *dir)
{
	char *ca = slurp(dir, "ca.crt", NULL), *crl = slurp(dir, "crl.pem", NULL);
	X509_STORE *st = NULL;

	if (ca != NULL && crl != NULL) {
		(void)km_pki_store_load(ca, crl, &st);
	}
	free(ca);
	free(crl);
	return st;
}

static mode_t
file_mode(const char *dir, const char *what, const char *suffix)
{
	char path[4096];
	struct stat st;

	if (km_pki_path(path, sizeof(path), dir, what, suffix) != 0 ||
	    stat(path, &st) != 0) {
		return (mode_t)-1;
	}
	return st.st_mode & 0777;
}

static void
test_ca_init(void)
{
	const char *dir = kmt_tmpdir();
	char sub[4200];

	CU_ASSERT_FATAL(dir != NULL);
	CU_ASSERT(km_pki_ca_init(dir, 0) == 0);
	CU_ASSERT(file_mode(dir, "ca.key", NULL) == 0600);
	CU_ASSERT(file_mode(dir, "ca.crt", NULL) != (mode_t)-1);
	CU_ASSERT(file_mode(dir, "crl.pem", NULL) != (mode_t)-1);
	CU_ASSERT(km_pki_ca_init(dir, 0) == KM_ERR_EXISTS);
	snprintf(sub, sizeof(sub), "%s/missing", dir);
	CU_ASSERT(km_pki_ca_init(sub, 0) == KM_ERR_NOT_FOUND);
}

static void
test_issue_and_verify(void)
{
	const char *dir = kmt_tmpdir();
	X509_STORE *st;
	km_identity id;
	X509 *x;

	CU_ASSERT_FATAL(km_pki_ca_init(dir, 0) == 0);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_NODE, "node1", 0) == 0);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_CLIENT, "app", 0) == 0);
	CU_ASSERT(file_mode(dir, "node1", ".key") == 0600);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_NODE, "node1", 0) ==
	    KM_ERR_EXISTS);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_NODE, "bad name", 0) ==
	    KM_ERR_INVALID_ARG);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_NONE, "x", 0) ==
	    KM_ERR_INVALID_ARG);

	st = load_store(dir);
	x = load_cert(dir, "node1");
	CU_ASSERT_FATAL(st != NULL && x != NULL);
	CU_ASSERT(km_pki_verify(st, x, KM_ROLE_NODE, &id) == 0);
	CU_ASSERT(strcmp(id.name, "node1") == 0);
	CU_ASSERT(id.role == KM_ROLE_NODE);
	CU_ASSERT(strlen(id.serial) > 0);
	/* the right CA but the wrong role */
	CU_ASSERT(km_pki_verify(st, x, KM_ROLE_CLIENT, NULL) == KM_ERR_AUTH);
	X509_free(x);
	x = load_cert(dir, "app");
	CU_ASSERT(km_pki_verify(st, x, KM_ROLE_NONE, &id) == 0);
	CU_ASSERT(id.role == KM_ROLE_CLIENT && strcmp(id.name, "app") == 0);
	X509_free(x);
	X509_STORE_free(st);
}

static void
test_other_ca_refused(void)
{
	const char *a = kmt_tmpdir(), *b = kmt_tmpdir();
	X509_STORE *st;
	X509 *x;

	CU_ASSERT_FATAL(km_pki_ca_init(a, 0) == 0 && km_pki_ca_init(b, 0) == 0);
	CU_ASSERT(km_pki_cert_issue(b, KM_ROLE_NODE, "intruder", 0) == 0);
	st = load_store(a);
	x = load_cert(b, "intruder");
	CU_ASSERT_FATAL(st != NULL && x != NULL);
	CU_ASSERT(km_pki_verify(st, x, KM_ROLE_NONE, NULL) == KM_ERR_AUTH);
	X509_free(x);
	X509_STORE_free(st);
}

static void
test_revoke(void)
{
	const char *dir = kmt_tmpdir();
	X509_STORE *st;
	X509 *x, *y;

	CU_ASSERT_FATAL(km_pki_ca_init(dir, 0) == 0);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_NODE, "node1", 0) == 0);
	CU_ASSERT(km_pki_cert_issue(dir, KM_ROLE_NODE, "node2", 0) == 0);
	CU_ASSERT(km_pki_cert_revoke(dir, "node1") == 0);
	CU_ASSERT(km_pki_cert_revoke(dir, "node1") == KM_ERR_EXISTS);
	CU_ASSERT(km_pki_cert_revoke(dir, "ghost") == KM_ERR_NOT_FOUND);
	st = load_store(dir);
	x = load_cert(dir, "node1");
	y = load_cert(dir, "node2");
	CU_ASSERT_FATAL(st != NULL && x != NULL && y != NULL);
	CU_ASSERT(km_pki_verify(st, x, KM_ROLE_NODE, NULL) == KM_ERR_REVOKED);
	CU_ASSERT(km_pki_verify(st, y, KM_ROLE_NODE, NULL) == 0);
	X509_free(x);
	X509_free(y);
	X509_STORE_free(st);
}

static void
test_identity_needs_uri(void)
{
	const char *dir = kmt_tmpdir();
	km_identity id;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	/* a certificate without the keymesh URI SAN has no identity */
	CU_ASSERT_FATAL(dir != NULL && k != NULL && x != NULL);
	CU_ASSERT(X509_set_pubkey(x, k) == 1);
	CU_ASSERT(km_pki_identity(x, &id) == KM_ERR_BAD_FORMAT);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
test_store_load_garbage(void)
{
	X509_STORE *st = NULL;

	CU_ASSERT(km_pki_store_load("not a pem", NULL, &st) ==
	    KM_ERR_BAD_FORMAT);
	CU_ASSERT(st == NULL);
	CU_ASSERT(km_pki_store_load(NULL, NULL, &st) == KM_ERR_INVALID_ARG);
}

/* The admin CLI: one clear line and a non-zero exit on every error. */
static const char *
keymesh_bin(void)
{
	static char path[4096];
	const char *b = getenv("KM_BUILDDIR");

	snprintf(path, sizeof(path), "%s/tools/keymesh", b ? b : KM_BUILDDIR);
	return path;
}

static int
cli_lines(const char *out)
{
	char *data = NULL;
	uint8_t *raw = NULL;
	size_t len = 0, i;
	int n = 0;

	if (km_read_file(out, &raw, &len, 1 << 16) != 0) {
		return -1;
	}
	data = (char *)raw;
	for (i = 0; i < len; i++) {
		n += data[i] == '\n';
	}
	free(data);
	return n;
}

static void
test_cli(void)
{
	const char *dir = kmt_tmpdir(), *km = keymesh_bin();
	char err[4200];

	CU_ASSERT_FATAL(dir != NULL);
	snprintf(err, sizeof(err), "%s/err", dir);
	CU_ASSERT(kmt_run("%s ca init --dir %s/ca 2>%s", km, dir, err) == 1);
	CU_ASSERT(cli_lines(err) == 1);
	CU_ASSERT(kmt_run("grep -q 'does not exist' %s", err) == 0);
	CU_ASSERT(kmt_run("mkdir %s/ca && %s ca init --dir %s/ca", dir, km,
		      dir) == 0);
	CU_ASSERT(kmt_run("%s ca init --dir %s/ca 2>%s", km, dir, err) == 1);
	CU_ASSERT(cli_lines(err) == 1);
	CU_ASSERT(kmt_run("grep -q 'already' %s", err) == 0);
	CU_ASSERT(kmt_run("%s cert issue --dir %s/ca --kind node --name node1",
		      km, dir) == 0);
	CU_ASSERT(kmt_run("openssl x509 -in %s/ca/certs/node1.crt -noout -ext "
			  "subjectAltName | grep -q 'URI:keymesh:node:node1'",
		      dir) == 0);
	CU_ASSERT(kmt_run("openssl verify -CAfile %s/ca/ca.crt "
			  "%s/ca/certs/node1.crt >/dev/null",
		      dir, dir) == 0);
	CU_ASSERT(kmt_run("%s cert issue --dir %s/ca --kind node --name 'a/b' "
			  "2>%s",
		      km, dir, err) == 1);
	CU_ASSERT(cli_lines(err) == 1);
	CU_ASSERT(kmt_run("grep -q 'invalid name' %s", err) == 0);
	CU_ASSERT(kmt_run("%s cert issue --dir %s/ca --kind wizard --name w "
			  "2>%s",
		      km, dir, err) == 1);
	CU_ASSERT(cli_lines(err) == 1);
	CU_ASSERT(kmt_run("%s cert revoke --dir %s/ca --name node1", km, dir) ==
	    0);
	CU_ASSERT(kmt_run("openssl verify -crl_check -CRLfile %s/ca/crl.pem "
			  "-CAfile %s/ca/ca.crt %s/ca/certs/node1.crt "
			  ">/dev/null 2>&1",
		      dir, dir, dir) != 0);
	CU_ASSERT(kmt_run("%s cert revoke --dir %s/ca --name nobody 2>%s", km,
		      dir, err) == 1);
	CU_ASSERT(cli_lines(err) == 1);
	CU_ASSERT(kmt_run("%s frobnicate 2>/dev/null", km) == 2);
	/* the enrolment shorthands */
	CU_ASSERT(kmt_run("mkdir %s/m && %s mesh init --dir %s/m >/dev/null",
		      dir, km, dir) == 0);
	CU_ASSERT(kmt_run("openssl x509 -in %s/m/certs/admin.crt -noout -ext "
			  "subjectAltName | grep -q 'URI:keymesh:admin:admin'",
		      dir) == 0);
	CU_ASSERT(kmt_run("%s node enroll --dir %s/m --name n1 >/dev/null && "
			  "%s client enroll --dir %s/m --name app >/dev/null",
		      km, dir, km, dir) == 0);
	CU_ASSERT(kmt_run("openssl x509 -in %s/m/certs/app.crt -noout -ext "
			  "subjectAltName | grep -q 'URI:keymesh:client:app'",
		      dir) == 0);
	CU_ASSERT(kmt_run("%s node enroll --dir %s/m --name n1 2>%s", km, dir,
		      err) == 1);
	CU_ASSERT(cli_lines(err) == 1);
}

static void
test_seal(void)
{
	static const uint8_t msg[] = "a DKG share for one party only";
	EVP_PKEY *a = EVP_EC_gen("P-256"), *b = EVP_EC_gen("P-256");
	km_buf box, out;

	CU_ASSERT_FATAL(a != NULL && b != NULL);
	km_buf_init(&box);
	km_buf_init_secure(&out);
	CU_ASSERT_FATAL(km_seal(a, "ctx", 3, msg, sizeof(msg), &box) == 0);
	CU_ASSERT(box.len == sizeof(msg) + KM_SEAL_OVERHEAD);
	CU_ASSERT(memmem(box.data, box.len, "one party", 9) == NULL);
	CU_ASSERT(km_unseal(a, "ctx", 3, box.data, box.len, &out) == 0);
	CU_ASSERT(out.len == sizeof(msg) &&
	    memcmp(out.data, msg, sizeof(msg)) == 0);
	km_buf_reset(&out);
	/* not for b; not in another context; not tampered */
	CU_ASSERT(km_unseal(b, "ctx", 3, box.data, box.len, &out) ==
	    KM_ERR_VERIFY);
	CU_ASSERT(km_unseal(a, "cty", 3, box.data, box.len, &out) ==
	    KM_ERR_VERIFY);
	box.data[box.len - 20] ^= 1;
	CU_ASSERT(km_unseal(a, "ctx", 3, box.data, box.len, &out) ==
	    KM_ERR_VERIFY);
	CU_ASSERT(out.len == 0);
	CU_ASSERT(km_unseal(a, "ctx", 3, box.data, 10, &out) ==
	    KM_ERR_BAD_FORMAT);
	box.data[0] = 9;
	CU_ASSERT(km_unseal(a, "ctx", 3, box.data, box.len, &out) ==
	    KM_ERR_BAD_VERSION);
	km_buf_free(&box);
	km_buf_free(&out);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

static void
test_sign_verify_signed(void)
{
	const char *dir = kmt_tmpdir();
	char path[4200];
	X509_STORE *st;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	uint8_t *der = NULL, *sig = NULL;
	size_t siglen = 0;
	km_identity id;
	int derlen;

	CU_ASSERT_FATAL(km_pki_ca_init(dir, 0) == 0);
	CU_ASSERT_FATAL(km_pki_cert_issue(dir, KM_ROLE_ADMIN, "op", 0) == 0);
	CU_ASSERT_FATAL(km_pki_cert_issue(dir, KM_ROLE_NODE, "n1", 0) == 0);
	km_pki_path(path, sizeof(path), dir, "op", ".key");
	CU_ASSERT_FATAL(km_pki_load_key(path, &key) == 0);
	km_pki_path(path, sizeof(path), dir, "op", ".crt");
	CU_ASSERT_FATAL(km_pki_load_cert(path, &x) == 0);
	derlen = i2d_X509(x, &der);
	CU_ASSERT_FATAL(derlen > 0);
	st = load_store(dir);
	CU_ASSERT(km_pki_sign(key, "entry", 5, &sig, &siglen) == 0);
	CU_ASSERT(km_pki_verify_signed(st, der, (size_t)derlen, KM_ROLE_ADMIN,
		      "entry", 5, sig, siglen, &id) == 0);
	CU_ASSERT(strcmp(id.name, "op") == 0);
	CU_ASSERT(km_pki_verify_signed(st, der, (size_t)derlen, KM_ROLE_ADMIN,
		      "entrz", 5, sig, siglen, NULL) == KM_ERR_VERIFY);
	CU_ASSERT(km_pki_verify_signed(st, der, (size_t)derlen, KM_ROLE_NODE,
		      "entry", 5, sig, siglen, NULL) == KM_ERR_AUTH);
	CU_ASSERT(km_pki_verify_signed(st, der, (size_t)derlen - 1,
		      KM_ROLE_ADMIN, "entry", 5, sig, siglen, NULL) ==
	    KM_ERR_BAD_FORMAT);
	/* the signature alone, with the key of a certificate checked once */
	{
		EVP_PKEY *pub = NULL;

		CU_ASSERT_FATAL(km_pki_cert_pubkey(der, (size_t)derlen, &pub)
		    == 0);
		CU_ASSERT(km_pki_verify_sig(pub, "entry", 5, sig, siglen) == 0);
		CU_ASSERT(km_pki_verify_sig(pub, "entrz", 5, sig, siglen)
		    == KM_ERR_VERIFY);
		CU_ASSERT(km_pki_verify_sig(pub, "entry", 5, sig, siglen - 1)
		    == KM_ERR_VERIFY);
		CU_ASSERT(km_pki_verify_sig(pub, "entry", 5, NULL, 0)
		    == KM_ERR_INVALID_ARG);
		CU_ASSERT(km_pki_cert_pubkey(der, (size_t)derlen - 1, &pub)
		    == KM_ERR_BAD_FORMAT);
		EVP_PKEY_free(pub);
	}
	X509_STORE_free(st);
	/* once revoked, its signatures count for nothing */
	CU_ASSERT(km_pki_cert_revoke(dir, "op") == 0);
	st = load_store(dir);
	CU_ASSERT(km_pki_verify_signed(st, der, (size_t)derlen, KM_ROLE_ADMIN,
		      "entry", 5, sig, siglen, NULL) == KM_ERR_REVOKED);
	X509_STORE_free(st);
	free(sig);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
}

static const kmt_test pki_tests[] = {
	{ "seal", test_seal },
	{ "sign_verify_signed", test_sign_verify_signed },
	{ "ca_init", test_ca_init },
	{ "issue_and_verify", test_issue_and_verify },
	{ "other_ca_refused", test_other_ca_refused },
	{ "revoke", test_revoke },
	{ "identity_needs_uri", test_identity_needs_uri },
	{ "store_load_garbage", test_store_load_garbage },
	KMT_END,
};

static const kmt_test cli_tests[] = {
	{ "ca_cert_commands", test_cli },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "pki", NULL, NULL, pki_tests },
	{ "cli", NULL, NULL, cli_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
