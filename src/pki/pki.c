/*
 * The mesh PKI: CA creation, issuing, revocation and verification.
 *
 * Every certificate is ECDSA P-256 signed with SHA-256.  The identity a
 * certificate proves is its single "keymesh:ROLE:NAME" URI SAN; the DNS SAN
 * carries NAME too, so a TLS client can check the server's name with the
 * ordinary host check.  Files are written atomically; private keys are
 * created 0600 before a byte of them is written.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/pki.h"
#include "util/err.h"
#include "util/util.h"

#define RET_OSSL_OK 1

#define KM_PKI_CA_DAYS 3650
#define KM_PKI_CERT_DAYS 730
#define KM_PKI_MAX_FILE (1u << 20)
#define KM_PKI_URI_PREFIX "keymesh:"

/* One line of the index file. */
typedef struct km_pki_entry {
	char serial[41];
	km_role role;
	char name[KM_NAME_MAX + 1];
	char status; /* 'V' valid, 'R' revoked */
	long long not_after;
	long long revoked_at;
} km_pki_entry;

const char *
km_role_name(km_role role)
{
	switch (role) {
	case KM_ROLE_NODE:
		return "node";
	case KM_ROLE_CLIENT:
		return "client";
	case KM_ROLE_ADMIN:
		return "admin";
	default:
		return NULL;
	}
}

int
km_role_parse(const char *s, km_role *role)
{
	if (s == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (strcmp(s, "node") == 0) {
		*role = KM_ROLE_NODE;
	} else if (strcmp(s, "client") == 0) {
		*role = KM_ROLE_CLIENT;
	} else if (strcmp(s, "admin") == 0) {
		*role = KM_ROLE_ADMIN;
	} else {
		return KM_ERR_INVALID_ARG;
	}
	return 0;
}

int
km_pki_path(char *out, size_t outlen, const char *dir, const char *what,
    const char *suffix)
{
	int n;

	if (suffix == NULL) {
		n = snprintf(out, outlen, "%s/%s", dir, what);
	} else if (strcmp(suffix, ".key") == 0) {
		n = snprintf(out, outlen, "%s/private/%s.key", dir, what);
	} else {
		n = snprintf(out, outlen, "%s/certs/%s%s", dir, what, suffix);
	}
	return (n < 0 || (size_t)n >= outlen) ? KM_ERR_TOO_LARGE : 0;
}

static bool
km_pki_is_dir(const char *dir)
{
	struct stat st;

	return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
km_pki_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Serialise a PEM object through a memory BIO into a file. */
static int
km_pki_write_bio(BIO *bio, const char *path, mode_t mode, bool excl)
{
	char *data = NULL;
	long n;

	n = BIO_get_mem_data(bio, &data);
	if (n <= 0) {
		return KM_ERR_CRYPTO;
	}
	return excl ? km_write_file_excl(path, data, (size_t)n, mode) :
		      km_write_file_atomic(path, data, (size_t)n, mode);
}

static int
km_pki_write_key(EVP_PKEY *pkey, const char *path)
{
	BIO *bio;
	int r;

	if ((bio = BIO_new(BIO_s_secmem())) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) !=
	    RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = km_pki_write_bio(bio, path, 0600, true);
out:
	BIO_free(bio);
	return r;
}

static int
km_pki_write_cert(X509 *cert, const char *path)
{
	BIO *bio;
	int r;

	if ((bio = BIO_new(BIO_s_mem())) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (PEM_write_bio_X509(bio, cert) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = km_pki_write_bio(bio, path, 0644, false);
out:
	BIO_free(bio);
	return r;
}

static int
km_pki_read_pem(const char *path, BIO **out)
{
	uint8_t *data = NULL;
	size_t len = 0;
	BIO *bio;
	int r;

	if ((r = km_read_file(path, &data, &len, KM_PKI_MAX_FILE)) != 0) {
		return r;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL) {
		free(data);
		return KM_ERR_ALLOC;
	}
	/* The BIO does not own data: copy it into a BIO that does. */
	{
		BIO *own = BIO_new(BIO_s_secmem());
		if (own == NULL || BIO_write(own, data, (int)len) != (int)len) {
			BIO_free(own);
			BIO_free(bio);
			OPENSSL_cleanse(data, len);
			free(data);
			return KM_ERR_ALLOC;
		}
		BIO_free(bio);
		bio = own;
	}
	OPENSSL_cleanse(data, len);
	free(data);
	*out = bio;
	return 0;
}

static int
km_pki_load_ca(const char *dir, X509 **cert, EVP_PKEY **key)
{
	char path[4096];
	BIO *bio = NULL;
	int r;

	*cert = NULL;
	*key = NULL;
	if ((r = km_pki_path(path, sizeof(path), dir, "ca.crt", NULL)) != 0 ||
	    (r = km_pki_read_pem(path, &bio)) != 0) {
		goto out;
	}
	if ((*cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	BIO_free(bio);
	bio = NULL;
	if ((r = km_pki_path(path, sizeof(path), dir, "ca.key", NULL)) != 0 ||
	    (r = km_pki_read_pem(path, &bio)) != 0) {
		goto out;
	}
	if ((*key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	if (r != 0) {
		X509_free(*cert);
		EVP_PKEY_free(*key);
		*cert = NULL;
		*key = NULL;
	}
	return r;
}

static int
km_pki_random_serial(X509 *cert, char hex[41])
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	char *s = NULL;
	int r = KM_ERR_CRYPTO;

	if (RAND_bytes(raw, sizeof(raw)) != RET_OSSL_OK) {
		goto out;
	}
	raw[0] &= 0x7f; /* positive */
	raw[0] |= 0x40; /* fixed length */
	if ((bn = BN_bin2bn(raw, sizeof(raw), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL ||
	    (s = BN_bn2hex(bn)) == NULL) {
		goto out;
	}
	snprintf(hex, 41, "%s", s);
	for (char *p = hex; *p; p++) {
		if (*p >= 'A' && *p <= 'F') {
			*p = (char)(*p - 'A' + 'a');
		}
	}
	r = 0;
out:
	OPENSSL_free(s);
	BN_free(bn);
	return r;
}

static int
km_pki_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL) {
		return KM_ERR_CRYPTO;
	}
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == RET_OSSL_OK ? 0 : KM_ERR_CRYPTO;
}

static int
km_pki_set_name(X509_NAME *xn, const char *cn, const char *ou)
{
	if (X509_NAME_add_entry_by_txt(xn, "O", MBSTRING_ASC,
		(const unsigned char *)"keymesh", -1, -1, 0) != RET_OSSL_OK) {
		return KM_ERR_CRYPTO;
	}
	if (ou != NULL &&
	    X509_NAME_add_entry_by_txt(xn, "OU", MBSTRING_ASC,
		(const unsigned char *)ou, -1, -1, 0) != RET_OSSL_OK) {
		return KM_ERR_CRYPTO;
	}
	if (X509_NAME_add_entry_by_txt(xn, "CN", MBSTRING_ASC,
		(const unsigned char *)cn, -1, -1, 0) != RET_OSSL_OK) {
		return KM_ERR_CRYPTO;
	}
	return 0;
}

int
km_pki_ca_init(const char *dir, unsigned days)
{
	char path[4096], cn[64], serial[41];
	unsigned char rnd[4];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_NAME *xn;
	int r;

	if (dir == NULL || !km_pki_is_dir(dir)) {
		return KM_ERR_NOT_FOUND;
	}
	if (days == 0) {
		days = KM_PKI_CA_DAYS;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, "ca.crt", NULL)) != 0) {
		return r;
	}
	if (km_pki_exists(path)) {
		return KM_ERR_EXISTS;
	}
	if ((key = EVP_EC_gen("P-256")) == NULL ||
	    (cert = X509_new()) == NULL) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	snprintf(cn, sizeof(cn), "keymesh mesh CA %02x%02x%02x%02x", rnd[0],
	    rnd[1], rnd[2], rnd[3]);
	if (X509_set_version(cert, 2) != RET_OSSL_OK ||
	    (r = km_pki_random_serial(cert, serial)) != 0) {
		r = r ? r : KM_ERR_CRYPTO;
		goto out;
	}
	xn = X509_get_subject_name(cert);
	if ((r = km_pki_set_name(xn, cn, NULL)) != 0) {
		goto out;
	}
	if (X509_set_issuer_name(cert, xn) != RET_OSSL_OK ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) ==
		NULL ||
	    X509_set_pubkey(cert, key) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_pki_add_ext(cert, cert, NID_basic_constraints,
		 "critical,CA:TRUE,pathlen:0")) != 0 ||
	    (r = km_pki_add_ext(cert, cert, NID_key_usage,
		 "critical,keyCertSign,cRLSign")) != 0 ||
	    (r = km_pki_add_ext(cert, cert, NID_subject_key_identifier,
		 "hash")) != 0) {
		goto out;
	}
	if (X509_sign(cert, key, EVP_sha256()) <= 0) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	/* The key first, exclusively: a concurrent init loses here. */
	if ((r = km_pki_path(path, sizeof(path), dir, "ca.key", NULL)) != 0 ||
	    (r = km_pki_write_key(key, path)) != 0) {
		goto out;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, "certs", NULL)) != 0 ||
	    (mkdir(path, 0755) != 0 && errno != EEXIST) ||
	    (r = km_pki_path(path, sizeof(path), dir, "private", NULL)) != 0 ||
	    (mkdir(path, 0700) != 0 && errno != EEXIST)) {
		r = r ? r : KM_ERR_IO;
		goto out;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, "index", NULL)) != 0 ||
	    (r = km_write_file_atomic(path, "", 0, 0644)) != 0) {
		goto out;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, "ca.crt", NULL)) != 0 ||
	    (r = km_pki_write_cert(cert, path)) != 0) {
		goto out;
	}
	/* An empty CRL, so peers can check revocation from the start. */
	if ((r = km_pki_cert_revoke(dir, NULL)) != 0) {
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	return r;
}

/* ---- the index ------------------------------------------------------- */

static int
km_pki_index_load(const char *dir, km_pki_entry **out, size_t *count)
{
	char path[4096], role[16];
	uint8_t *data = NULL;
	size_t len = 0, n = 0, cap = 0;
	km_pki_entry *v = NULL, *nv, e;
	char *line, *save = NULL;
	int r;

	*out = NULL;
	*count = 0;
	if ((r = km_pki_path(path, sizeof(path), dir, "index", NULL)) != 0 ||
	    (r = km_read_file(path, &data, &len, KM_PKI_MAX_FILE)) != 0) {
		return r;
	}
	for (line = strtok_r((char *)data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		memset(&e, 0, sizeof(e));
		if (sscanf(line, "%40s %15s %63s %c %lld %lld", e.serial, role,
			e.name, &e.status, &e.not_after, &e.revoked_at) != 6 ||
		    km_role_parse(role, &e.role) != 0 ||
		    !km_name_valid(e.name) ||
		    (e.status != 'V' && e.status != 'R')) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
				r = KM_ERR_ALLOC;
				goto out;
			}
			v = nv;
		}
		v[n++] = e;
	}
	*out = v;
	*count = n;
	v = NULL;
	r = 0;
out:
	free(v);
	free(data);
	return r;
}

static int
km_pki_index_save(const char *dir, const km_pki_entry *v, size_t n)
{
	char path[4096], line[256];
	size_t i, len = 0;
	char *buf;
	int r;

	if ((buf = malloc(n * sizeof(line) + 1)) == NULL) {
		return KM_ERR_ALLOC;
	}
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		int w = snprintf(line, sizeof(line), "%s %s %s %c %lld %lld\n",
		    v[i].serial, km_role_name(v[i].role), v[i].name,
		    v[i].status, v[i].not_after, v[i].revoked_at);
		memcpy(buf + len, line, (size_t)w);
		len += (size_t)w;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, "index", NULL)) == 0) {
		r = km_write_file_atomic(path, buf, len, 0644);
	}
	free(buf);
	return r;
}

int
km_pki_cert_issue(const char *dir, km_role role, const char *name,
    unsigned days)
{
	char path[4096], san[256], serial[41];
	km_pki_entry *idx = NULL, *nidx, e;
	size_t n = 0, i;
	EVP_PKEY *cakey = NULL, *key = NULL;
	X509 *cacert = NULL, *cert = NULL;
	const char *rname = km_role_name(role);
	int r;

	if (dir == NULL || !km_pki_is_dir(dir)) {
		return KM_ERR_NOT_FOUND;
	}
	if (rname == NULL || !km_name_valid(name)) {
		return KM_ERR_INVALID_ARG;
	}
	if (days == 0) {
		days = KM_PKI_CERT_DAYS;
	}
	if ((r = km_pki_load_ca(dir, &cacert, &cakey)) != 0 ||
	    (r = km_pki_index_load(dir, &idx, &n)) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(idx[i].name, name) == 0) {
			r = KM_ERR_EXISTS;
			goto out;
		}
	}
	if ((key = EVP_EC_gen("P-256")) == NULL ||
	    (cert = X509_new()) == NULL ||
	    X509_set_version(cert, 2) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_pki_random_serial(cert, serial)) != 0 ||
	    (r = km_pki_set_name(X509_get_subject_name(cert), name, rname)) !=
		0) {
		goto out;
	}
	if (X509_set_issuer_name(cert, X509_get_subject_name(cacert)) !=
		RET_OSSL_OK ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) ==
		NULL ||
	    X509_set_pubkey(cert, key) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	snprintf(san, sizeof(san), "DNS:%s,URI:" KM_PKI_URI_PREFIX "%s:%s",
	    name, rname, name);
	if ((r = km_pki_add_ext(cert, cacert, NID_basic_constraints,
		 "critical,CA:FALSE")) != 0 ||
	    (r = km_pki_add_ext(cert, cacert, NID_key_usage,
		 "critical,digitalSignature")) != 0 ||
	    (r = km_pki_add_ext(cert, cacert, NID_ext_key_usage,
		 "serverAuth,clientAuth")) != 0 ||
	    (r = km_pki_add_ext(cert, cacert, NID_subject_key_identifier,
		 "hash")) != 0 ||
	    (r = km_pki_add_ext(cert, cacert, NID_authority_key_identifier,
		 "keyid")) != 0 ||
	    (r = km_pki_add_ext(cert, cacert, NID_subject_alt_name, san)) !=
		0) {
		goto out;
	}
	if (X509_sign(cert, cakey, EVP_sha256()) <= 0) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, name, ".key")) != 0) {
		goto out;
	}
	/* A key left by an interrupted earlier issue is replaced. */
	(void)unlink(path);
	if ((r = km_pki_write_key(key, path)) != 0) {
		goto out;
	}
	if ((r = km_pki_path(path, sizeof(path), dir, name, ".crt")) != 0 ||
	    (r = km_pki_write_cert(cert, path)) != 0) {
		goto out;
	}
	memset(&e, 0, sizeof(e));
	snprintf(e.serial, sizeof(e.serial), "%s", serial);
	e.role = role;
	snprintf(e.name, sizeof(e.name), "%s", name);
	e.status = 'V';
	e.not_after = (long long)time(NULL) + (long long)days * 86400;
	if ((nidx = realloc(idx, (n + 1) * sizeof(*idx))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	idx = nidx;
	idx[n++] = e;
	r = km_pki_index_save(dir, idx, n);
out:
	free(idx);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	X509_free(cacert);
	X509_free(cert);
	return r;
}

/* Re-sign crl.pem from the index.  @name NULL: no new revocation. */
int
km_pki_cert_revoke(const char *dir, const char *name)
{
	char path[4096];
	km_pki_entry *idx = NULL;
	size_t n = 0, i;
	EVP_PKEY *cakey = NULL;
	X509 *cacert = NULL;
	X509_CRL *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = NULL;
	BIO *bio = NULL;
	bool found = (name == NULL);
	int r;

	if (dir == NULL || !km_pki_is_dir(dir)) {
		return KM_ERR_NOT_FOUND;
	}
	if (name != NULL && !km_name_valid(name)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_pki_load_ca(dir, &cacert, &cakey)) != 0 ||
	    (r = km_pki_index_load(dir, &idx, &n)) != 0) {
		goto out;
	}
	for (i = 0; name != NULL && i < n; i++) {
		if (strcmp(idx[i].name, name) == 0) {
			if (idx[i].status == 'R') {
				r = KM_ERR_EXISTS;
				goto out;
			}
			idx[i].status = 'R';
			idx[i].revoked_at = (long long)time(NULL);
			found = true;
		}
	}
	if (!found) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	}
	if ((crl = X509_CRL_new()) == NULL ||
	    X509_CRL_set_version(crl, 1) != RET_OSSL_OK ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(cacert)) !=
		RET_OSSL_OK ||
	    (t = ASN1_TIME_new()) == NULL ||
	    X509_gmtime_adj(t, -60) == NULL ||
	    X509_CRL_set1_lastUpdate(crl, t) != RET_OSSL_OK ||
	    X509_CRL_set1_nextUpdate(crl, X509_get0_notAfter(cacert)) !=
		RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (idx[i].status != 'R') {
			continue;
		}
		if (BN_hex2bn(&bn, idx[i].serial) == 0 ||
		    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
		    (rev = X509_REVOKED_new()) == NULL ||
		    X509_REVOKED_set_serialNumber(rev, serial) !=
			RET_OSSL_OK ||
		    ASN1_TIME_set(t, (time_t)idx[i].revoked_at) == NULL ||
		    X509_REVOKED_set_revocationDate(rev, t) != RET_OSSL_OK ||
		    X509_CRL_add0_revoked(crl, rev) != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
		rev = NULL; /* owned by the CRL */
		ASN1_INTEGER_free(serial);
		serial = NULL;
	}
	if (X509_CRL_sort(crl) != RET_OSSL_OK ||
	    X509_CRL_sign(crl, cakey, EVP_sha256()) <= 0 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509_CRL(bio, crl) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	/* The CRL first: a crash before the index is rewritten leaves the
	 * name revoked, and revoking again rebuilds the same list. */
	if ((r = km_pki_path(path, sizeof(path), dir, "crl.pem", NULL)) != 0 ||
	    (r = km_pki_write_bio(bio, path, 0644, false)) != 0) {
		goto out;
	}
	r = (name != NULL) ? km_pki_index_save(dir, idx, n) : 0;
out:
	BIO_free(bio);
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	X509_REVOKED_free(rev);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	X509_free(cacert);
	EVP_PKEY_free(cakey);
	free(idx);
	return r;
}

/* ---- identity and verification --------------------------------------- */

int
km_pki_identity(X509 *cert, km_identity *id)
{
	GENERAL_NAMES *names = NULL;
	const ASN1_INTEGER *sn;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	unsigned int mdlen = 0;
	int i, found = 0, r = KM_ERR_BAD_FORMAT;

	memset(id, 0, sizeof(*id));
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (names == NULL) {
		goto out;
	}
	for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *s;
		char uri[160], *role, *name;
		int len;

		if (gn->type != GEN_URI) {
			continue;
		}
		s = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		if (len <= (int)strlen(KM_PKI_URI_PREFIX) ||
		    len >= (int)sizeof(uri) ||
		    memchr(s, '\0', (size_t)len) != NULL ||
		    strncmp((const char *)s, KM_PKI_URI_PREFIX,
			strlen(KM_PKI_URI_PREFIX)) != 0) {
			continue;
		}
		memcpy(uri, s, (size_t)len);
		uri[len] = '\0';
		role = uri + strlen(KM_PKI_URI_PREFIX);
		if ((name = strchr(role, ':')) == NULL) {
			goto out;
		}
		*name++ = '\0';
		if (km_role_parse(role, &id->role) != 0 ||
		    !km_name_valid(name)) {
			goto out;
		}
		snprintf(id->name, sizeof(id->name), "%s", name);
		found++;
	}
	if (found != 1) {
		goto out;
	}
	if (X509_digest(cert, EVP_sha256(), id->cert_sha256, &mdlen) !=
		RET_OSSL_OK ||
	    mdlen != sizeof(id->cert_sha256)) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	sn = X509_get0_serialNumber(cert);
	if ((bn = ASN1_INTEGER_to_BN(sn, NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	snprintf(id->serial, sizeof(id->serial), "%s", hex);
	for (char *p = id->serial; *p; p++) {
		if (*p >= 'A' && *p <= 'F') {
			*p = (char)(*p - 'A' + 'a');
		}
	}
	r = 0;
out:
	if (r != 0) {
		memset(id, 0, sizeof(*id));
	}
	OPENSSL_free(hex);
	BN_free(bn);
	GENERAL_NAMES_free(names);
	return r;
}

int
km_pki_store_load(const char *ca_pem, const char *crl_pem, X509_STORE **out)
{
	X509_STORE *store = NULL;
	X509 *cert = NULL;
	X509_CRL *crl = NULL;
	BIO *bio = NULL;
	int r, ncerts = 0;

	if (ca_pem == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((store = X509_STORE_new()) == NULL ||
	    (bio = BIO_new_mem_buf(ca_pem, -1)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, cert) != RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
		X509_free(cert);
		cert = NULL;
		ncerts++;
	}
	if (ncerts == 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	BIO_free(bio);
	bio = NULL;
	if (crl_pem != NULL) {
		if ((bio = BIO_new_mem_buf(crl_pem, -1)) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		if ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) ==
		    NULL) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		if (X509_STORE_add_crl(store, crl) != RET_OSSL_OK ||
		    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK) !=
			RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	}
	*out = store;
	store = NULL;
	r = 0;
out:
	ERR_clear_error();
	X509_CRL_free(crl);
	X509_free(cert);
	BIO_free(bio);
	X509_STORE_free(store);
	return r;
}

/* ---- the deny-list of evicted nodes ------------------------------------ */

static pthread_mutex_t km_pki_deny_lock = PTHREAD_MUTEX_INITIALIZER;
static char (*km_pki_deny_names)[KM_NAME_MAX + 1];
static size_t km_pki_deny_n;

int
km_pki_deny_set(const char *const *names, size_t n)
{
	char (*v)[KM_NAME_MAX + 1] = NULL, (*old)[KM_NAME_MAX + 1];
	size_t i;

	if (names == NULL && n > 0) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < n; i++) {
		if (!km_name_valid(names[i])) {
			return KM_ERR_INVALID_ARG;
		}
	}
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < n; i++) {
		snprintf(v[i], sizeof(v[i]), "%s", names[i]);
	}
	pthread_mutex_lock(&km_pki_deny_lock);
	old = km_pki_deny_names;
	km_pki_deny_names = v;
	km_pki_deny_n = n;
	pthread_mutex_unlock(&km_pki_deny_lock);
	free(old);
	return 0;
}

bool
km_pki_denied(const km_identity *id)
{
	bool denied = false;
	size_t i;

	if (id == NULL || id->role != KM_ROLE_NODE) {
		return false;
	}
	pthread_mutex_lock(&km_pki_deny_lock);
	for (i = 0; i < km_pki_deny_n && !denied; i++) {
		denied = strcmp(km_pki_deny_names[i], id->name) == 0;
	}
	pthread_mutex_unlock(&km_pki_deny_lock);
	return denied;
}

bool
km_pki_denied_cert(X509 *cert)
{
	km_identity id;

	if (cert == NULL || km_pki_identity(cert, &id) != 0) {
		return false;
	}
	return km_pki_denied(&id);
}

static int
km_pki_verify_flags(X509_STORE *store, X509 *cert, km_role role,
    km_identity *id, bool replay)
{
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *vp;
	km_identity tmp;
	int r, err;

	if (store == NULL || cert == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (X509_STORE_CTX_init(ctx, store, cert, NULL) != RET_OSSL_OK) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	if (replay) {
		/* chain and role only (km_pki_verify_signed_replay) */
		vp = X509_STORE_CTX_get0_param(ctx);
		if (X509_VERIFY_PARAM_clear_flags(vp,
			X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) !=
			RET_OSSL_OK ||
		    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_NO_CHECK_TIME) !=
			RET_OSSL_OK) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
	}
	if (X509_verify_cert(ctx) != RET_OSSL_OK) {
		err = X509_STORE_CTX_get_error(ctx);
		r = (err == X509_V_ERR_CERT_REVOKED) ? KM_ERR_REVOKED :
						       KM_ERR_AUTH;
		goto out;
	}
	if ((r = km_pki_identity(cert, &tmp)) != 0) {
		goto out;
	}
	if (role != KM_ROLE_NONE && tmp.role != role) {
		r = KM_ERR_AUTH;
		goto out;
	}
	if (!replay && km_pki_denied(&tmp)) {
		/* evicted by the catalog (km_pki_deny_set) */
		r = KM_ERR_REVOKED;
		goto out;
	}
	if (id != NULL) {
		*id = tmp;
	}
	r = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	return r;
}

int
km_pki_verify(X509_STORE *store, X509 *cert, km_role role, km_identity *id)
{
	return km_pki_verify_flags(store, cert, role, id, false);
}

int
km_pki_load_key(const char *path, EVP_PKEY **out)
{
	BIO *bio = NULL;
	int r;

	if ((r = km_pki_read_pem(path, &bio)) != 0) {
		return r;
	}
	*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return *out != NULL ? 0 : KM_ERR_BAD_FORMAT;
}

int
km_pki_load_cert(const char *path, X509 **out)
{
	BIO *bio = NULL;
	int r;

	if ((r = km_pki_read_pem(path, &bio)) != 0) {
		return r;
	}
	*out = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return *out != NULL ? 0 : KM_ERR_BAD_FORMAT;
}

int
km_pki_sign(EVP_PKEY *key, const void *data, size_t len, uint8_t **sig,
    size_t *siglen)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t *s = NULL;
	size_t n = 0;
	int r = KM_ERR_CRYPTO;

	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) !=
		RET_OSSL_OK ||
	    EVP_DigestSign(ctx, NULL, &n, data, len) != RET_OSSL_OK) {
		goto out;
	}
	if ((s = malloc(n)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EVP_DigestSign(ctx, s, &n, data, len) != RET_OSSL_OK) {
		goto out;
	}
	*sig = s;
	*siglen = n;
	s = NULL;
	r = 0;
out:
	free(s);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

static int
km_pki_verify_signed_flags(X509_STORE *store, const uint8_t *cert_der,
    size_t cert_len, km_role role, const void *data, size_t len,
    const uint8_t *sig, size_t siglen, km_identity *id, bool replay)
{
	const unsigned char *p = cert_der;
	EVP_MD_CTX *ctx = NULL;
	X509 *cert = NULL;
	int r;

	if (cert_der == NULL || cert_len == 0 || cert_len > KM_PKI_MAX_FILE ||
	    sig == NULL || siglen == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((cert = d2i_X509(NULL, &p, (long)cert_len)) == NULL ||
	    p != cert_der + cert_len) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if ((r = km_pki_verify_flags(store, cert, role, id, replay)) != 0) {
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
		X509_get0_pubkey(cert)) != RET_OSSL_OK ||
	    EVP_DigestVerify(ctx, sig, siglen, data, len) != RET_OSSL_OK) {
		r = KM_ERR_VERIFY;
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	X509_free(cert);
	return r;
}

int
km_pki_verify_sig(EVP_PKEY *pub, const void *data, size_t len,
    const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = NULL;
	int r;

	if (pub == NULL || sig == NULL || siglen == 0 ||
	    (data == NULL && len > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		return KM_ERR_ALLOC;
	}
	r = (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) ==
		    RET_OSSL_OK &&
		EVP_DigestVerify(ctx, sig, siglen, data, len) == RET_OSSL_OK) ?
	    0 :
	    KM_ERR_VERIFY;
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return r;
}

int
km_pki_cert_pubkey(const uint8_t *cert_der, size_t cert_len, EVP_PKEY **out)
{
	const unsigned char *p = cert_der;
	X509 *cert;
	EVP_PKEY *k;

	if (cert_der == NULL || cert_len == 0 || cert_len > KM_PKI_MAX_FILE ||
	    (cert = d2i_X509(NULL, &p, (long)cert_len)) == NULL) {
		ERR_clear_error();
		return KM_ERR_BAD_FORMAT;
	}
	k = p == cert_der + cert_len ? X509_get_pubkey(cert) : NULL;
	X509_free(cert);
	ERR_clear_error();
	if (k == NULL) {
		return KM_ERR_BAD_FORMAT;
	}
	*out = k;
	return 0;
}

int
km_pki_verify_signed(X509_STORE *store, const uint8_t *cert_der,
    size_t cert_len, km_role role, const void *data, size_t len,
    const uint8_t *sig, size_t siglen, km_identity *id)
{
	return km_pki_verify_signed_flags(store, cert_der, cert_len, role,
	    data, len, sig, siglen, id, false);
}

int
km_pki_verify_signed_replay(X509_STORE *store, const uint8_t *cert_der,
    size_t cert_len, km_role role, const void *data, size_t len,
    const uint8_t *sig, size_t siglen, km_identity *id)
{
	return km_pki_verify_signed_flags(store, cert_der, cert_len, role,
	    data, len, sig, siglen, id, true);
}
