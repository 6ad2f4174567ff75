/*
 * bench-openssl-raw: the floors of issue #8, measured with OpenSSL alone
 * on this machine, so run-bench.sh can set every PKCS#11 row beside what
 * the hardware does with no module, no token and no network:
 *
 *   - RSA-2048/3072 CRT signature (EVP, PKCS#1 v1.5 with SHA-256);
 *   - one non-CRT exponentiation x^e mod n with a full-size secret exponent
 *     (BN_mod_exp_mont_consttime with a precomputed Montgomery context):
 *     what each holder computes for one Shoup partial (Shoup, "Practical
 *     Threshold Signatures", Eurocrypt 2000: x_i = x^(2*Delta*s_i), with s_i
 *     as long as n), so the floor of a threshold signature;
 *   - RSA-2048/3072 verification (public key, e = 65537);
 *   - ECDH P-256 derivation (EVP_PKEY_derive, one point multiplication);
 *   - one request/reply round trip over plain TCP on loopback, and over a
 *     TLS 1.3 connection (OpenSSL on both ends, established beforehand),
 *     request 256 bytes and reply 512 bytes, about one partial's size.
 *
 * Output: "csv,raw,NAME,n,p50_us,p99_us,min_us,max_us" lines on stdout and
 * a table on stderr.  Usage: bench-openssl-raw [-d SECONDS-PER-ROW]
 * A benchmark, not a test.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define REQ_LEN   256
#define REPLY_LEN 512
#define MAX_N     100000

static double row_seconds = 0.5;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
fail(const char *what)
{
	fprintf(stderr, "bench-openssl-raw: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

/* Runs fn(arg) repeatedly for row_seconds (at least 5 times), then prints
 * the distribution of single-call latencies. */
static void
measure(const char *name, int (*fn)(void *), void *arg)
{
	static uint64_t lat[MAX_N];
	uint64_t end, t0;
	size_t n = 0, i50, i99;

	if (fn(arg) != 0) {
		fail(name);
	}
	end = now_ns() + (uint64_t)(row_seconds * 1e9);
	do {
		t0 = now_ns();
		if (fn(arg) != 0) {
			fail(name);
		}
		lat[n++] = now_ns() - t0;
	} while (n < MAX_N && (n < 5 || now_ns() < end));
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	i50 = (n + 1) / 2 - 1;
	i99 = (size_t)(0.99 * (double)n + 0.999999) - 1;
	printf("csv,raw,%s,%zu,%.1f,%.1f,%.1f,%.1f\n", name, n,
	    (double)lat[i50] / 1e3, (double)lat[i99] / 1e3,
	    (double)lat[0] / 1e3, (double)lat[n - 1] / 1e3);
	fprintf(stderr, "%-24s %7zu %10.3f %10.3f %10.3f %10.3f\n", name, n,
	    (double)lat[i50] / 1e6, (double)lat[i99] / 1e6,
	    (double)lat[0] / 1e6, (double)lat[n - 1] / 1e6);
	fflush(stdout);
}

/* ---- RSA ------------------------------------------------------------- */

typedef struct {
	EVP_PKEY *pkey;
	unsigned char sig[512];
	size_t siglen;
	/* the non-CRT exponentiation */
	BIGNUM *n, *x, *e, *r;
	BN_CTX *ctx;
	BN_MONT_CTX *mont;
} rsa_case;

static const unsigned char msg[32] = "keymesh bench: sign these bytes";

static int
rsa_sign(void *arg)
{
	rsa_case *c = arg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	c->siglen = sizeof(c->sig);
	ok = md != NULL
	    && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, c->pkey) == 1
	    && EVP_DigestSign(md, c->sig, &c->siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

static int
rsa_verify(void *arg)
{
	rsa_case *c = arg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	ok = md != NULL
	    && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, c->pkey) == 1
	    && EVP_DigestVerify(md, c->sig, c->siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

static int
rsa_exp(void *arg)
{
	rsa_case *c = arg;
	int ok;

	ok = BN_mod_exp_mont_consttime(
	    c->r, c->x, c->e, c->n, c->ctx, c->mont);
	return ok == 1 ? 0 : -1;
}

static void
rsa_setup(rsa_case *c, int bits)
{
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);

	memset(c, 0, sizeof(*c));
	if (kc == NULL || EVP_PKEY_keygen_init(kc) != 1
	    || EVP_PKEY_CTX_set_rsa_keygen_bits(kc, bits) != 1
	    || EVP_PKEY_keygen(kc, &c->pkey) != 1) {
		fail("RSA key generation");
	}
	EVP_PKEY_CTX_free(kc);
	c->ctx = BN_CTX_new();
	c->x = BN_new();
	c->e = BN_new();
	c->r = BN_new();
	c->mont = BN_MONT_CTX_new();
	if (c->ctx == NULL || c->x == NULL || c->e == NULL || c->r == NULL
	    || c->mont == NULL
	    || EVP_PKEY_get_bn_param(c->pkey, OSSL_PKEY_PARAM_RSA_N, &c->n)
	        != 1) {
		fail("RSA set-up");
	}
	/* A Shoup exponent 2*Delta*s_i is a few bits longer than n (s_i is
	 * reduced mod p'q' ~ n/4, 2*Delta = 240 for five holders): a random
	 * exponent of n's length plus 6 bits, top bit set, models it. */
	if (BN_rand(c->e, bits + 6, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1
	    || BN_rand_range(c->x, c->n) != 1
	    || BN_MONT_CTX_set(c->mont, c->n, c->ctx) != 1) {
		fail("RSA exponent set-up");
	}
	BN_set_flags(c->e, BN_FLG_CONSTTIME);
}

static void
rsa_free(rsa_case *c)
{
	EVP_PKEY_free(c->pkey);
	BN_free(c->n);
	BN_free(c->x);
	BN_clear_free(c->e);
	BN_free(c->r);
	BN_CTX_free(c->ctx);
	BN_MONT_CTX_free(c->mont);
}

/* ---- ECDH ------------------------------------------------------------- */

typedef struct {
	EVP_PKEY *mine, *peer;
} ecdh_case;

static EVP_PKEY *
p256_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL) {
		fail("P-256 key generation");
	}
	return k;
}

static int
ecdh_derive(void *arg)
{
	ecdh_case *c = arg;
	EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(c->mine, NULL);
	unsigned char z[32];
	size_t zlen = sizeof(z);
	int ok;

	ok = dc != NULL && EVP_PKEY_derive_init(dc) == 1
	    && EVP_PKEY_derive_set_peer(dc, c->peer) == 1
	    && EVP_PKEY_derive(dc, z, &zlen) == 1;
	EVP_PKEY_CTX_free(dc);
	OPENSSL_cleanse(z, sizeof(z));
	return ok ? 0 : -1;
}

/* ---- loopback round trips ----------------------------------------------- */

typedef struct {
	int lfd, cfd, sfd;
	SSL_CTX *sctx, *cctx;
	SSL *s, *c;
	pthread_t th;
} link_case;

static int
read_full(int fd, SSL *ssl, unsigned char *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (ssl != NULL) {
			r = SSL_read(ssl, b + got, (int)(n - got));
		} else {
			r = read(fd, b + got, n - got);
		}
		if (r <= 0) {
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

static int
write_full(int fd, SSL *ssl, const unsigned char *b, size_t n)
{
	if (ssl != NULL) {
		return SSL_write(ssl, b, (int)n) == (int)n ? 0 : -1;
	}
	return write(fd, b, n) == (ssize_t)n ? 0 : -1;
}

static void *
echo_main(void *arg)
{
	link_case *l = arg;
	unsigned char req[REQ_LEN], rep[REPLY_LEN];

	memset(rep, 0x5a, sizeof(rep));
	if (l->s != NULL && SSL_accept(l->s) != 1) {
		return NULL;
	}
	while (read_full(l->sfd, l->s, req, sizeof(req)) == 0) {
		if (write_full(l->sfd, l->s, rep, sizeof(rep)) != 0) {
			break;
		}
	}
	return NULL;
}

static int
round_trip(void *arg)
{
	link_case *l = arg;
	unsigned char req[REQ_LEN], rep[REPLY_LEN];

	memset(req, 0xa5, sizeof(req));
	if (write_full(l->cfd, l->c, req, sizeof(req)) != 0) {
		return -1;
	}
	return read_full(l->cfd, l->c, rep, sizeof(rep));
}

static void
tcp_pair(link_case *l)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int one = 1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->lfd = socket(AF_INET, SOCK_STREAM, 0);
	l->cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (l->lfd < 0 || l->cfd < 0
	    || bind(l->lfd, (struct sockaddr *)&a, sizeof(a)) != 0
	    || listen(l->lfd, 1) != 0
	    || getsockname(l->lfd, (struct sockaddr *)&a, &al) != 0
	    || connect(l->cfd, (struct sockaddr *)&a, sizeof(a)) != 0
	    || (l->sfd = accept(l->lfd, NULL, NULL)) < 0) {
		fail("loopback TCP set-up");
	}
	/* As nng does: no Nagle delay on a request/reply link. */
	setsockopt(l->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(l->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A throw-away self-signed P-256 server certificate for the TLS row; the
 * client does not verify it (the cost measured is the record layer's). */
static void
tls_setup(link_case *l)
{
	EVP_PKEY *k = p256_key();
	X509 *x = X509_new();
	X509_NAME *nm;

	if (x == NULL || X509_set_version(x, 2) != 1
	    || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1
	    || X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL
	    || X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL
	    || (nm = X509_get_subject_name(x)) == NULL
	    || X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	           (const unsigned char *)"bench", -1, -1, 0)
	        != 1
	    || X509_set_issuer_name(x, nm) != 1 || X509_set_pubkey(x, k) != 1
	    || X509_sign(x, k, EVP_sha256()) == 0) {
		fail("TLS certificate");
	}
	l->sctx = SSL_CTX_new(TLS_server_method());
	l->cctx = SSL_CTX_new(TLS_client_method());
	if (l->sctx == NULL || l->cctx == NULL
	    || SSL_CTX_set_min_proto_version(l->sctx, TLS1_3_VERSION) != 1
	    || SSL_CTX_set_min_proto_version(l->cctx, TLS1_3_VERSION) != 1
	    || SSL_CTX_use_certificate(l->sctx, x) != 1
	    || SSL_CTX_use_PrivateKey(l->sctx, k) != 1
	    || (l->s = SSL_new(l->sctx)) == NULL
	    || (l->c = SSL_new(l->cctx)) == NULL
	    || SSL_set_fd(l->s, l->sfd) != 1
	    || SSL_set_fd(l->c, l->cfd) != 1) {
		fail("TLS set-up");
	}
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
link_run(const char *name, int tls)
{
	link_case l;

	memset(&l, 0, sizeof(l));
	tcp_pair(&l);
	if (tls) {
		tls_setup(&l);
	}
	if (pthread_create(&l.th, NULL, echo_main, &l) != 0) {
		fail("pthread_create");
	}
	if (tls && SSL_connect(l.c) != 1) {
		fail("TLS handshake");
	}
	measure(name, round_trip, &l);
	if (tls) {
		SSL_shutdown(l.c);
	}
	shutdown(l.cfd, SHUT_RDWR);
	pthread_join(l.th, NULL);
	SSL_free(l.s);
	SSL_free(l.c);
	SSL_CTX_free(l.sctx);
	SSL_CTX_free(l.cctx);
	close(l.cfd);
	close(l.sfd);
	close(l.lfd);
}

int
main(int argc, char **argv)
{
	rsa_case r;
	ecdh_case e;
	int c;

	while ((c = getopt(argc, argv, "d:")) != -1) {
		if (c != 'd' || (row_seconds = atof(optarg)) <= 0) {
			fprintf(stderr,
			    "usage: bench-openssl-raw [-d SECONDS-PER-ROW]\n");
			return 2;
		}
	}
	fprintf(stderr, "%-24s %7s %10s %10s %10s %10s\n", "openssl raw (ms)",
	    "n", "p50", "p99", "min", "max");
	rsa_setup(&r, 2048);
	measure("rsa2048-sign-crt", rsa_sign, &r);
	measure("rsa2048-exp-noncrt", rsa_exp, &r);
	measure("rsa2048-verify", rsa_verify, &r);
	rsa_free(&r);
	rsa_setup(&r, 3072);
	measure("rsa3072-sign-crt", rsa_sign, &r);
	measure("rsa3072-exp-noncrt", rsa_exp, &r);
	measure("rsa3072-verify", rsa_verify, &r);
	rsa_free(&r);
	e.mine = p256_key();
	e.peer = p256_key();
	measure("ecdh-p256", ecdh_derive, &e);
	EVP_PKEY_free(e.mine);
	EVP_PKEY_free(e.peer);
	link_run("tcp-rtt", 0);
	link_run("tls13-rtt", 1);
	return 0;
}
