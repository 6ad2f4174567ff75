/*
 * bench-crypto-ec: the cost of the EC threshold primitives, printed beside
 * OpenSSL's own plain ECDH derive measured in the same run.
 *
 * For P-256 and P-384: OpenSSL EVP_PKEY_derive (whole key), one ECDH
 * partial with its DLEQ proof, one proof check, combining 3-of-5 partials
 * (which checks the 3 proofs), and a whole 3-of-5 DKG with all parties in
 * this process.  Each figure is the median of many timed runs.
 *
 * Usage: bench-crypto-ec [iterations]   (default 200; DKG runs 1/10 of it)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/shamir.h"
#include "util/err.h"
#include "util/secmem.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return (n % 2) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
die(const char *what, int r)
{
	fprintf(stderr, "bench-crypto-ec: %s: %s\n", what, km_strerror(r));
	exit(1);
}

/* One in-process 3-of-5 DKG; returns 0 or the first error. */
static int
dkg_once(const km_ec_group *g)
{
	static const uint32_t owner[5] = { 1, 2, 3, 4, 5 };
	km_ec_dkg_params prm = { 3, 5, 5, owner };
	km_ec_dkg *st[5] = { NULL };
	km_ec_msgs pool[4], out = { NULL, 0 };
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	size_t nsh, i, j;
	uint32_t p;
	int r = 0, round;

	memset(pool, 0, sizeof(pool));
	for (round = 0; round <= 4 && r == 0; round++) {
		for (p = 1; p <= 5 && r == 0; p++) {
			km_ec_dkg *d = st[p - 1];
			const km_ec_msgs *in
			    = round > 0 ? &pool[round - 1] : NULL;

			switch (round) {
			case 0:
				if ((r = km_ec_dkg_new(g, &prm, p, &st[p - 1]))
				    == 0) {
					r = km_ec_dkg_round1(st[p - 1], &out);
				}
				break;
			case 1:
				r = km_ec_dkg_round2(d, in->v, in->n, &out);
				break;
			case 2:
				r = km_ec_dkg_round3(d, in->v, in->n, &out);
				break;
			case 3:
				r = km_ec_dkg_round4(d, in->v, in->n, &out);
				break;
			default:
				r = km_ec_dkg_finish(
				    d, in->v, in->n, &sh, &nsh, &pub, NULL);
				km_ec_shares_free(sh, nsh);
				km_ec_pub_free(pub);
				sh = NULL;
				pub = NULL;
				break;
			}
			if (round < 4 && r == 0) {
				km_ec_msg *v = realloc(pool[round].v,
				    (pool[round].n + out.n) * sizeof(*v));

				if (v == NULL) {
					r = KM_ERR_ALLOC;
					break;
				}
				pool[round].v = v;
				for (j = 0; j < out.n; j++) {
					v[pool[round].n++] = out.v[j];
				}
				free(out.v);
				out.v = NULL;
				out.n = 0;
			}
		}
	}
	km_ec_msgs_free(&out);
	for (i = 0; i < 4; i++) {
		km_ec_msgs_free(&pool[i]);
	}
	for (i = 0; i < 5; i++) {
		km_ec_dkg_free(st[i]);
	}
	return r;
}

static void
bench_curve(int nid, size_t iters)
{
	km_ec_group *g = NULL;
	km_ec_share **sh = NULL;
	km_ec_pub *pub = NULL;
	km_ec_partial *parts[5] = { NULL }, *p = NULL;
	EVP_PKEY *me = NULL, *peer_key = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	BIGNUM *secret = NULL;
	EC_POINT *peer = NULL;
	uint8_t enc[133], out[66], ref[66];
	double *t, ossl, part, check, comb, dkg;
	size_t i, len, w, dkg_iters = iters / 10 ? iters / 10 : 1;
	int r;

	if ((t = calloc(iters, sizeof(*t))) == NULL) {
		die("calloc", KM_ERR_ALLOC);
	}
	if ((r = km_ec_group_new(nid, &g)) != 0) {
		die("group", r);
	}
	/* OpenSSL's own: a whole key and a peer, EVP_PKEY_derive. */
	if ((me = EVP_EC_gen(g->name)) == NULL
	    || (peer_key = EVP_EC_gen(g->name)) == NULL
	    || (dctx = EVP_PKEY_CTX_new(me, NULL)) == NULL
	    || EVP_PKEY_derive_init(dctx) != 1
	    || EVP_PKEY_derive_set_peer(dctx, peer_key) != 1
	    || EVP_PKEY_get_octet_string_param(peer_key,
	           OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, enc, sizeof(enc), &len)
	        != 1
	    || EVP_PKEY_get_bn_param(me, OSSL_PKEY_PARAM_PRIV_KEY, &secret)
	        != 1) {
		die("OpenSSL key setup", KM_ERR_CRYPTO);
	}
	for (i = 0; i < iters; i++) {
		double t0 = now_us();

		w = sizeof(ref);
		if (EVP_PKEY_derive(dctx, ref, &w) != 1) {
			die("EVP_PKEY_derive", KM_ERR_CRYPTO);
		}
		t[i] = now_us() - t0;
	}
	ossl = median(t, iters);

	/* The same key split 3-of-5 (the bench's one whole-key moment). */
	if ((r = km_ec_dealer_split(g, secret, 3, 5, &sh, &pub)) != 0
	    || (r = km_ec_point_from_octets(g, enc, len, &peer)) != 0) {
		die("split", r);
	}
	BN_clear_free(secret);
	secret = NULL;
	for (i = 0; i < iters; i++) {
		double t0 = now_us();

		if ((r = km_ecdh_partial(g, pub, sh[i % 5], peer, &p)) != 0) {
			die("partial", r);
		}
		t[i] = now_us() - t0;
		km_ec_partial_free(p);
		p = NULL;
	}
	part = median(t, iters);
	for (i = 0; i < 5; i++) {
		if ((r = km_ecdh_partial(g, pub, sh[i], peer, &parts[i]))
		    != 0) {
			die("partial", r);
		}
	}
	for (i = 0; i < iters; i++) {
		double t0 = now_us();

		if ((r = km_ecdh_partial_verify(g, pub, peer, parts[i % 5]))
		    != 0) {
			die("verify", r);
		}
		t[i] = now_us() - t0;
	}
	check = median(t, iters);
	for (i = 0; i < iters; i++) {
		double t0 = now_us();

		if ((r = km_ecdh_combine(g, pub, peer, parts + (i % 3), 3, out,
		         sizeof(out), &w, NULL, NULL))
		    != 0) {
			die("combine", r);
		}
		t[i] = now_us() - t0;
		if (w != g->flen || memcmp(out, ref, w) != 0) {
			die("combine result differs from OpenSSL",
			    KM_ERR_VERIFY);
		}
	}
	comb = median(t, iters);
	for (i = 0; i < dkg_iters; i++) {
		double t0 = now_us();

		if ((r = dkg_once(g)) != 0) {
			die("dkg", r);
		}
		t[i] = now_us() - t0;
	}
	dkg = median(t, dkg_iters);

	printf("%-10s %-44s %10.1f us  %6.2fx\n", g->name,
	    "OpenSSL EVP_PKEY_derive (whole key)", ossl, 1.0);
	printf("%-10s %-44s %10.1f us  %6.2fx\n", g->name,
	    "ECDH partial x_i*P + DLEQ proof", part, part / ossl);
	printf("%-10s %-44s %10.1f us  %6.2fx\n", g->name, "DLEQ proof check",
	    check, check / ossl);
	printf("%-10s %-44s %10.1f us  %6.2fx\n", g->name,
	    "combine 3-of-5 (3 proof checks + Lagrange)", comb, comb / ossl);
	printf("%-10s %-44s %10.1f us  %6.2fx\n", g->name,
	    "DKG 3-of-5, 5 parties in-process (total)", dkg, dkg / ossl);
	for (i = 0; i < 5; i++) {
		km_ec_partial_free(parts[i]);
	}
	km_ec_shares_free(sh, 5);
	km_ec_pub_free(pub);
	EC_POINT_free(peer);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(me);
	EVP_PKEY_free(peer_key);
	km_ec_group_free(g);
	free(t);
}

int
main(int argc, char **argv)
{
	size_t iters = 200;

	if (argc > 1) {
		iters = (size_t)strtoul(argv[1], NULL, 10);
		if (iters < 1 || iters > 100000) {
			fprintf(
			    stderr, "usage: bench-crypto-ec [iterations]\n");
			return 2;
		}
	}
	(void)km_secmem_init(KM_SECMEM_DAEMON_SIZE);
	printf("bench-crypto-ec: medians of %zu runs (DKG: %zu)\n", iters,
	    iters / 10 ? iters / 10 : 1);
	printf("%-10s %-44s %13s  %7s\n", "curve", "operation", "median",
	    "vs ossl");
	bench_curve(NID_X9_62_prime256v1, iters);
	bench_curve(NID_secp384r1, iters);
	return 0;
}
