/*
 * bench-crypto-rsa: the cost of Shoup threshold RSA (V. Shoup, "Practical
 * Threshold Signatures", EUROCRYPT 2000) beside OpenSSL's own operations,
 * measured in the same run.
 *
 * For RSA-2048/3072/4096 (3-of-5): dealer key generation with safe primes
 * (median of several at 2048, with progress), a partial, a partial with its
 * proof, a proof check, combining k partials (with the e-th root check),
 * the final EVP verification, OpenSSL's plain CRT signature and one
 * BN_mod_exp_mont_consttime with an exponent of share size.  It prints the
 * ratios and whether the targets of issue #3 are met:
 *   - a partial within 1.1x of one BN_mod_exp_mont_consttime;
 *   - combining under 10% of one partial;
 *   - RSA-2048 dealer keygen median <= 10 s.
 *
 * Usage: bench-crypto-rsa [-g N2048] [-G NBIG] [-s]
 *   -g N   keygen runs at 2048 (default 5)
 *   -G N   keygen runs at 3072 and 4096 (default 1, or $KM_BENCH_KEYGEN_BIG;
 *          0 skips them)
 *   -s     short: fewer iterations of the fast operations
 */
#include "config.h"

#include <errno.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "crypto/rsa.h"
#include "util/err.h"
#include "util/secmem.h"


/* A whole number from the command line, or a one-line error and exit 2. */
static long
bench_arg(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		fprintf(stderr, "invalid number '%s' (use %ld..%ld)\n", s, min,
		    max);
		exit(2);
	}
	return v;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int
load_primes(int bits, BIGNUM **p, BIGNUM **q)
{
	char path[4096], line[2048];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/tests/data/rsa/safe-%d.txt",
	    KM_SRCDIR, bits);
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

typedef struct prog {
	double last;
	long cand[2];
} prog;

static int
on_progress(void *arg, int which, int stage, int count)
{
	prog *pr = arg;
	double t = now();

	if (stage == 0) {
		pr->cand[which & 1]++;
	}
	if (t - pr->last >= 2.0) {
		fprintf(stderr, "    ... searching: p %ld, q %ld candidates\n",
		    pr->cand[0], pr->cand[1]);
		pr->last = t;
	}
	return 0;
}

static double
bench_keygen(int bits, int runs)
{
	double t[32];
	int i;

	if (runs > 32) {
		runs = 32;
	}
	for (i = 0; i < runs; i++) {
		km_rsa_share *sh[KM_RSA_MAX_HOLDERS] = { NULL };
		km_rsa_pub *pub = NULL;
		prog pr = { now(), { 0, 0 } };
		double t0 = now();
		int r;

		r = km_rsa_keygen(bits, 3, 5, on_progress, &pr, &pub, sh);
		t[i] = now() - t0;
		if (r != 0) {
			fprintf(stderr, "keygen: %s\n", km_strerror(r));
			return -1;
		}
		printf("  keygen %d #%d: %.2f s (%ld + %ld candidates)\n",
		    bits, i + 1, t[i], pr.cand[0], pr.cand[1]);
		fflush(stdout);
		km_rsa_shares_free(sh, 5);
		km_rsa_pub_free(pub);
	}
	return median(t, runs);
}

/* The whole key, for OpenSSL's plain CRT signature. */
static EVP_PKEY *
whole_key(const BIGNUM *p, const BIGNUM *q)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *n = BN_new(), *e = BN_new(), *d = BN_new(), *p1 = BN_new(),
	       *q1 = BN_new(), *phi = BN_new(), *dp = BN_new(), *dq = BN_new(),
	       *qinv = BN_new();

	BN_mul(n, p, q, ctx);
	BN_set_word(e, KM_RSA_DEFAULT_E);
	BN_sub(p1, p, BN_value_one());
	BN_sub(q1, q, BN_value_one());
	BN_mul(phi, p1, q1, ctx);
	BN_mod_inverse(d, e, phi, ctx);
	BN_mod(dp, d, p1, ctx);
	BN_mod(dq, d, q1, ctx);
	BN_mod_inverse(qinv, q, p, ctx);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv);
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1
	    || EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	BN_free(p1);
	BN_free(q1);
	BN_clear_free(phi);
	BN_clear_free(dp);
	BN_clear_free(dq);
	BN_clear_free(qinv);
	BN_CTX_free(ctx);
	return pkey;
}

#define TIME_MEDIAN(out, iters, stmt)                                         \
	do {                                                                  \
		double _t[200];                                               \
		int _i, _n = (iters) > 200 ? 200 : (iters);                   \
		for (_i = 0; _i < _n; _i++) {                                 \
			double _t0 = now();                                   \
			stmt;                                                 \
			_t[_i] = now() - _t0;                                 \
		}                                                             \
		(out) = median(_t, _n);                                       \
	} while (0)

static int failures;

static void
target(const char *what, bool met)
{
	printf("  target %-44s %s\n", what, met ? "met" : "NOT MET");
	if (!met) {
		failures++;
	}
}

static int
bench_size(int bits, int kg_runs, bool shortrun)
{
	km_rsa_share *sh[KM_RSA_MAX_HOLDERS] = { NULL };
	km_rsa_partial *parts[3] = { NULL };
	km_rsa_pub *pub = NULL;
	BIGNUM *p = NULL, *q = NULL, *x = NULL, *y = NULL, *ex = NULL,
	       *res = NULL;
	BN_CTX *ctx = BN_CTX_new();
	BN_MONT_CTX *mont = BN_MONT_CTX_new();
	EVP_PKEY *whole = NULL;
	EVP_PKEY_CTX *sctx = NULL, *vctx = NULL;
	uint8_t dig[32], sig[1024], osig[1024];
	size_t siglen, osiglen;
	km_rsa_mech mech
	    = { .pad = KM_RSA_PAD_PKCS1, .hash = KM_RSA_HASH_SHA256 };
	double t_kg = 0, t_part, t_partp, t_pver, t_comb, t_ver, t_crt, t_exp,
	       t_signall;
	int it = shortrun ? 7 : (bits == 2048 ? 41 : bits == 3072 ? 21 : 11);
	int i, r = -1;
	uint32_t bad;

	printf("RSA-%d, 3-of-5\n", bits);
	if (kg_runs > 0) {
		t_kg = bench_keygen(bits, kg_runs);
		if (t_kg < 0) {
			goto out;
		}
		printf("  %-40s %10.3f s (median of %d)\n", "dealer keygen",
		    t_kg, kg_runs);
	}
	if (load_primes(bits, &p, &q) != 0
	    || km_rsa_deal_from_primes(p, q, NULL, 3, 5, &pub, sh) != 0
	    || (whole = whole_key(p, q)) == NULL) {
		fprintf(stderr, "cannot set up the RSA-%d fixture\n", bits);
		goto out;
	}
	memset(dig, 0x5a, sizeof(dig));
	if (km_rsa_sign_prepare(pub, &mech, dig, sizeof(dig), &x) != 0) {
		goto out;
	}
	/* the consttime reference: an exponent of share size, same N */
	ex = BN_secure_new();
	res = BN_new();
	if (ex == NULL || res == NULL || mont == NULL || ctx == NULL
	    || !BN_MONT_CTX_set(mont, km_rsa_pub_modulus(pub), ctx)
	    || !BN_rand(ex, km_rsa_share_bits(sh[0]), BN_RAND_TOP_ONE,
	        BN_RAND_BOTTOM_ANY)) {
		goto out;
	}
	BN_set_flags(ex, BN_FLG_CONSTTIME);
	for (i = 0; i < 3; i++) {
		km_rsa_partial_new(pub, sh[i], x, true, &parts[i]);
	}
	/*
	 * partial, reference exponentiation and combine interleaved, round
	 * by round, so that load from other processes hits all three alike
	 */
	{
		double tp[200], tx[200], tc[200], t0;
		int n = it * 2 > 200 ? 200 : it * 2;

		for (i = 0; i < n; i++) {
			km_rsa_partial *pp = NULL;

			t0 = now();
			km_rsa_partial_new(pub, sh[0], x, false, &pp);
			tp[i] = now() - t0;
			km_rsa_partial_free(pp);
			t0 = now();
			BN_mod_exp_mont_consttime(
			    res, x, ex, km_rsa_pub_modulus(pub), ctx, mont);
			tx[i] = now() - t0;
			t0 = now();
			BN_free(y);
			y = NULL;
			km_rsa_combine(pub, x, parts, 3, &y, &bad);
			tc[i] = now() - t0;
		}
		t_part = median(tp, n);
		t_exp = median(tx, n);
		t_comb = median(tc, n);
	}
	TIME_MEDIAN(t_partp, it, {
		km_rsa_partial *pp = NULL;
		km_rsa_partial_new(pub, sh[0], x, true, &pp);
		km_rsa_partial_free(pp);
	});
	TIME_MEDIAN(t_pver, it, km_rsa_partial_verify(pub, x, parts[0]));
	if (y == NULL) {
		fprintf(stderr, "combine failed\n");
		goto out;
	}
	TIME_MEDIAN(t_signall, it * 4, {
		siglen = sizeof(sig);
		r = km_rsa_sign_combine(pub, &mech, dig, sizeof(dig), x, parts,
		    3, sig, &siglen, &bad);
	});
	if (r != 0) {
		fprintf(stderr, "sign_combine: %s\n", km_strerror(r));
		goto out;
	}
	r = -1;
	/* the final EVP verification alone */
	vctx = EVP_PKEY_CTX_new_from_pkey(NULL, km_rsa_pub_pkey(pub), NULL);
	if (vctx == NULL || EVP_PKEY_verify_init(vctx) != 1
	    || EVP_PKEY_CTX_set_rsa_padding(vctx, RSA_PKCS1_PADDING) != 1
	    || EVP_PKEY_CTX_set_signature_md(vctx, EVP_sha256()) != 1) {
		goto out;
	}
	TIME_MEDIAN(t_ver, it * 4,
	    EVP_PKEY_verify(vctx, sig, siglen, dig, sizeof(dig)));
	/* OpenSSL's plain CRT signature with the whole key */
	sctx = EVP_PKEY_CTX_new_from_pkey(NULL, whole, NULL);
	if (sctx == NULL || EVP_PKEY_sign_init(sctx) != 1
	    || EVP_PKEY_CTX_set_rsa_padding(sctx, RSA_PKCS1_PADDING) != 1
	    || EVP_PKEY_CTX_set_signature_md(sctx, EVP_sha256()) != 1) {
		goto out;
	}
	TIME_MEDIAN(t_crt, it, {
		osiglen = sizeof(osig);
		EVP_PKEY_sign(sctx, osig, &osiglen, dig, sizeof(dig));
	});
	if (osiglen != siglen || memcmp(osig, sig, siglen) != 0) {
		fprintf(stderr, "threshold and plain signatures differ!\n");
		goto out;
	}
	printf(
	    "  %-40s %10.3f ms\n", "partial (x^(2 Delta s_i))", t_part * 1e3);
	printf("  %-40s %10.3f ms\n", "partial with proof", t_partp * 1e3);
	printf("  %-40s %10.3f ms\n", "proof check", t_pver * 1e3);
	printf("  %-40s %10.3f ms\n", "combine 3 (incl. y^e = x check)",
	    t_comb * 1e3);
	printf("  %-40s %10.3f ms\n", "combine + EVP verify (sign_combine)",
	    t_signall * 1e3);
	printf("  %-40s %10.3f ms\n", "EVP verify alone", t_ver * 1e3);
	printf("  %-40s %10.3f ms\n", "OpenSSL plain CRT sign", t_crt * 1e3);
	printf("  %-40s %10.3f ms   (%d-bit exponent)\n",
	    "BN_mod_exp_mont_consttime", t_exp * 1e3,
	    km_rsa_share_bits(sh[0]));
	printf("  ratio partial / consttime exp          %10.3f\n",
	    t_part / t_exp);
	printf("  ratio partial+proof / consttime exp    %10.3f\n",
	    t_partp / t_exp);
	printf("  ratio combine / partial                %10.3f\n",
	    t_comb / t_part);
	printf("  ratio partial / plain CRT sign         %10.3f\n",
	    t_part / t_crt);
	target(
	    "partial <= 1.1x consttime exponentiation", t_part <= 1.1 * t_exp);
	target("combine < 10% of a partial", t_comb < 0.1 * t_part);
	if (bits == 2048 && kg_runs > 0) {
		target("RSA-2048 dealer keygen median <= 10 s", t_kg <= 10.0);
	}
	r = 0;
out:
	for (i = 0; i < 3; i++) {
		km_rsa_partial_free(parts[i]);
	}
	km_rsa_shares_free(sh, 5);
	km_rsa_pub_free(pub);
	BN_free(p);
	BN_free(q);
	BN_free(x);
	BN_free(y);
	BN_clear_free(ex);
	BN_free(res);
	BN_MONT_CTX_free(mont);
	BN_CTX_free(ctx);
	EVP_PKEY_CTX_free(sctx);
	EVP_PKEY_CTX_free(vctx);
	EVP_PKEY_free(whole);
	printf("\n");
	return r;
}

/* One re-share of (pub, sh) to the same k-of-n, quorum 1..k. */
static int
reshare_once(km_rsa_pub **pub, km_rsa_share **sh, unsigned k, unsigned n)
{
	km_rsa_subdeal *deals[KM_RSA_MAX_HOLDERS] = { NULL };
	km_rsa_share *nsh[KM_RSA_MAX_HOLDERS] = { NULL };
	unsigned q[KM_RSA_MAX_HOLDERS], i;
	km_rsa_pub *np = NULL;
	int r = 0;

	for (i = 0; i < k; i++) {
		q[i] = i + 1;
	}
	for (i = 0; i < k && r == 0; i++) {
		r = km_rsa_reshare_deal(*pub, sh[i], q, k, k, n, &deals[i]);
	}
	if (r == 0) {
		r = km_rsa_reshare_pub(*pub, deals, k, k, n, &np);
	}
	for (i = 1; i <= n && r == 0; i++) {
		r = km_rsa_reshare_accept(np, deals, k, i, &nsh[i - 1]);
	}
	for (i = 0; i < k; i++) {
		km_rsa_subdeal_free(deals[i]);
	}
	if (r != 0) {
		km_rsa_shares_free(nsh, n);
		km_rsa_pub_free(np);
		return r;
	}
	km_rsa_shares_free(sh, n);
	km_rsa_pub_free(*pub);
	memcpy(sh, nsh, sizeof(nsh[0]) * n);
	*pub = np;
	return 0;
}

/* Share size, scale and partial cost after 0..5 re-shares (RSA-2048). */
static int
bench_growth(void)
{
	static const unsigned kn[][2] = { { 2, 3 }, { 3, 5 }, { 5, 9 } };
	BIGNUM *p = NULL, *q = NULL, *x = NULL;
	size_t c;
	int step, r = -1;

	printf("Re-share growth, RSA-2048 (k-of-n -> k-of-n, quorum 1..k)\n");
	printf("  %-6s %-5s %11s %11s %10s %12s\n", "k-of-n", "step",
	    "share bits", "bound bits", "scale bits", "partial ms");
	if (load_primes(2048, &p, &q) != 0 || (x = BN_new()) == NULL
	    || !BN_set_word(x, 0x5a5a5a5a)) {
		goto out;
	}
	for (c = 0; c < 3; c++) {
		km_rsa_share *sh[KM_RSA_MAX_HOLDERS] = { NULL };
		km_rsa_pub *pub = NULL;
		unsigned k = kn[c][0], n = kn[c][1];

		if (km_rsa_deal_from_primes(p, q, NULL, k, n, &pub, sh) != 0) {
			goto out;
		}
		for (step = 0; step <= 5; step++) {
			double t;

			if (step > 0 && reshare_once(&pub, sh, k, n) != 0) {
				fprintf(stderr, "re-share failed\n");
				km_rsa_shares_free(sh, n);
				km_rsa_pub_free(pub);
				goto out;
			}
			TIME_MEDIAN(t, 9, {
				km_rsa_partial *pp = NULL;
				km_rsa_partial_new(pub, sh[0], x, false, &pp);
				km_rsa_partial_free(pp);
			});
			printf("  %u-of-%-2u %5d %11d %11d %10d %12.3f\n", k,
			    n, step, km_rsa_share_bits(sh[0]),
			    km_rsa_pub_share_bits(pub),
			    km_rsa_pub_scale_bits(pub), t * 1e3);
		}
		km_rsa_shares_free(sh, n);
		km_rsa_pub_free(pub);
	}
	r = 0;
out:
	BN_free(p);
	BN_free(q);
	BN_free(x);
	printf("\n");
	return r;
}

int
main(int argc, char **argv)
{
	int kg = 5, kgbig = 1, c;
	bool shortrun = false;
	const char *env = getenv("KM_BENCH_KEYGEN_BIG");

	/* `make bench` sets it to 0: a 4096-bit safe-prime search alone
	 * can take minutes, and the whole run must stay within 10 */
	if (env != NULL && *env != '\0') {
		kgbig = (int)bench_arg(env, 0, 1000);
	}

	while ((c = getopt(argc, argv, "g:G:s")) != -1) {
		switch (c) {
		case 'g':
			kg = (int)bench_arg(optarg, 0, 1000);
			break;
		case 'G':
			kgbig = (int)bench_arg(optarg, 0, 1000);
			break;
		case 's':
			shortrun = true;
			break;
		default:
			fprintf(
			    stderr, "usage: %s [-g N] [-G N] [-s]\n", argv[0]);
			return 2;
		}
	}
	(void)km_secmem_init(KM_SECMEM_DAEMON_SIZE);
	if (bench_size(2048, kg, shortrun) != 0
	    || bench_size(3072, kgbig, shortrun) != 0
	    || bench_size(4096, kgbig, shortrun) != 0 || bench_growth() != 0) {
		return 1;
	}
	printf("targets not met: %d\n", failures);
	return 0;
}
