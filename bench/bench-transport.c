/*
 * bench-transport: request/reply latency and throughput on loopback for
 *   - plain tcp:// (nng req/rep, no security: the floor),
 *   - tls+tcp:// through keymesh's OpenSSL TLS 1.3 engine,
 *   - tls+tcp:// plus keymesh's signed envelopes (km_net: what the daemon
 *     and the module actually use),
 * each TLS row twice: with the engine gathering every SP message into one
 * TLS record (the default) and with that turned off (each piece nng hands
 * over is its own record, as KEYMESH_TLS_COALESCE=0 does),
 * with 64-byte and 4-KiB messages, and the cost of a new connection with
 * our engine and with nng's own mbed TLS engine (measured in a child
 * process, since nng cannot go back to mbed once ours is registered).
 *
 * A benchmark, not a test: it prints a table and whether TLS stays within
 * 1.5x of plain tcp at the median.  Usage: bench-transport [-n ROUNDS]
 */
#include "config.h"

#include <errno.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include "net/net.h"
#include "net/tls.h"
#include "pki/pki.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define THREADS 8
#define DIALS   30
#define ROWS    5

static int rounds = 2000;
static char ca_dir[256];

typedef struct {
	char *ca, *crl, *srv_cert, *srv_key, *cli_cert, *cli_key;
} pems;


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

static char *
slurp(const char *what, const char *suffix)
{
	char path[512];
	uint8_t *data = NULL;
	size_t len;

	if (km_pki_path(path, sizeof(path), ca_dir, what, suffix) != 0
	    || km_read_file(path, &data, &len, 1u << 20) != 0) {
		fprintf(stderr, "bench: cannot read %s%s\n", what,
		    suffix != NULL ? suffix : "");
		exit(1);
	}
	return (char *)data;
}

static void
load_pems(pems *p)
{
	p->ca = slurp("ca.crt", NULL);
	p->crl = slurp("crl.pem", NULL);
	p->srv_cert = slurp("bench-srv", ".crt");
	p->srv_key = slurp("bench-srv", ".key");
	p->cli_cert = slurp("bench-cli", ".crt");
	p->cli_key = slurp("bench-cli", ".key");
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- a raw nng echo server (for the tcp and tls rows) ----------------- */

typedef struct {
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;
	pthread_t th;
} raw_worker;

static void *
raw_worker_main(void *arg)
{
	raw_worker *w = arg;

	for (;;) {
		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if (nng_aio_result(w->aio) != 0) {
			break;
		}
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if (nng_aio_result(w->aio) != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
		}
	}
	return NULL;
}

typedef struct {
	nng_socket sock;
	raw_worker w[4];
	int port;
} raw_server;

static int
raw_server_start(raw_server *s, nng_tls_config *tls)
{
	nng_listener l;
	int i;

	if (nng_rep0_open(&s->sock) != 0
	    || nng_listener_create(&l, s->sock,
	           tls != NULL ? "tls+tcp://127.0.0.1:0" : "tcp://127.0.0.1:0")
	        != 0
	    || (tls != NULL
	        && nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls) != 0)
	    || nng_listener_start(l, 0) != 0
	    || nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &s->port)
	        != 0) {
		return -1;
	}
	for (i = 0; i < 4; i++) {
		if (nng_ctx_open(&s->w[i].ctx, s->sock) != 0
		    || nng_aio_alloc(&s->w[i].aio, NULL, NULL) != 0
		    || pthread_create(
		           &s->w[i].th, NULL, raw_worker_main, &s->w[i])
		        != 0) {
			return -1;
		}
	}
	return 0;
}

static void
raw_server_stop(raw_server *s)
{
	int i;

	nng_close(s->sock);
	for (i = 0; i < 4; i++) {
		pthread_join(s->w[i].th, NULL);
		nng_aio_free(s->w[i].aio);
	}
}

/* ---- the client side of one measurement ------------------------------- */

typedef struct {
	/* raw: a req socket; km: a km_net client */
	nng_socket sock;
	km_net_client *km;
	size_t size;
	int n;
	uint64_t *lat; /* per-request nanoseconds, or NULL */
	int errors;
} job;

static int
one_request(
    job *j, nng_ctx ctx, nng_aio *aio, const uint8_t *payload, km_buf *reply)
{
	nng_msg *msg;

	if (j->km != NULL) {
		if (km_net_client_call(
		        j->km, payload, j->size, 5000, reply, NULL)
		        != 0
		    || reply->len != j->size) {
			return -1;
		}
		return 0;
	}
	if (nng_msg_alloc(&msg, j->size) != 0) {
		return -1;
	}
	memcpy(nng_msg_body(msg), payload, j->size);
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		nng_msg_free(msg);
		return -1;
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		return -1;
	}
	msg = nng_aio_get_msg(aio);
	if (nng_msg_len(msg) != j->size) {
		nng_msg_free(msg);
		return -1;
	}
	nng_msg_free(msg);
	return 0;
}

static void *
job_main(void *arg)
{
	job *j = arg;
	nng_ctx ctx;
	nng_aio *aio = NULL;
	uint8_t *payload = calloc(1, j->size);
	km_buf reply;
	uint64_t t0;
	int i;

	km_buf_init(&reply);
	if (payload == NULL
	    || (j->km == NULL
	        && (nng_ctx_open(&ctx, j->sock) != 0
	            || nng_aio_alloc(&aio, NULL, NULL) != 0))) {
		j->errors = j->n;
		free(payload);
		return NULL;
	}
	if (aio != NULL) {
		nng_aio_set_timeout(aio, 5000);
	}
	for (i = 0; i < j->n; i++) {
		t0 = km_mono_ns();
		if (one_request(j, ctx, aio, payload, &reply) != 0) {
			j->errors++;
		}
		if (j->lat != NULL) {
			j->lat[i] = km_mono_ns() - t0;
		}
	}
	if (aio != NULL) {
		nng_aio_free(aio);
		nng_ctx_close(ctx);
	}
	km_buf_free(&reply);
	free(payload);
	return NULL;
}

typedef struct {
	double p50_us, p99_us, rps1, rps8;
	int errors;
} result;

/*
 * Latency of @nrows transports, measured in interleaved blocks (row 0, row
 * 1, ..., row 0 again) so that load from the rest of the machine falls on
 * every row alike and the ratios stay meaningful; then the throughput of
 * each with THREADS requests in flight.
 */
static void
measure_set(job *rows, int nrows, result *res)
{
	enum { BLOCKS = 10 };
	uint64_t *lat[ROWS], dt[ROWS] = { 0 }, t0;
	job jt[THREADS];
	pthread_t th[THREADS];
	int per = rounds / BLOCKS, b, r, i;

	for (r = 0; r < nrows; r++) {
		memset(&res[r], 0, sizeof(res[r]));
		rows[r].n = 50; /* warm-up: connection, caches */
		rows[r].lat = NULL;
		job_main(&rows[r]);
		rows[r].errors = 0;
		if ((lat[r] = calloc((size_t)(per * BLOCKS), sizeof(uint64_t)))
		    == NULL) {
			exit(1);
		}
	}
	for (b = 0; b < BLOCKS; b++) {
		for (r = 0; r < nrows; r++) {
			rows[r].n = per;
			rows[r].lat = lat[r] + (size_t)b * (size_t)per;
			t0 = km_mono_ns();
			job_main(&rows[r]);
			dt[r] += km_mono_ns() - t0;
		}
	}
	for (r = 0; r < nrows; r++) {
		int n = per * BLOCKS;

		qsort(lat[r], (size_t)n, sizeof(uint64_t), cmp_u64);
		res[r].p50_us = (double)lat[r][n / 2] / 1e3;
		res[r].p99_us = (double)lat[r][n * 99 / 100] / 1e3;
		res[r].rps1 = (double)n / ((double)dt[r] / 1e9);
		res[r].errors = rows[r].errors;
		free(lat[r]);

		t0 = km_mono_ns();
		for (i = 0; i < THREADS; i++) {
			jt[i] = rows[r];
			jt[i].n = rounds / THREADS * 2;
			jt[i].lat = NULL;
			jt[i].errors = 0;
			pthread_create(&th[i], NULL, job_main, &jt[i]);
		}
		for (i = 0; i < THREADS; i++) {
			pthread_join(th[i], NULL);
			res[r].errors += jt[i].errors;
		}
		res[r].rps8 = (double)(rounds / THREADS * 2 * THREADS)
		    / ((double)(km_mono_ns() - t0) / 1e9);
	}
}

static int
raw_client(nng_socket *sock, int port, nng_tls_config *tls)
{
	nng_dialer d;
	char url[64];

	snprintf(url, sizeof(url), "%s://127.0.0.1:%d",
	    tls != NULL ? "tls+tcp" : "tcp", port);
	if (nng_req0_open(sock) != 0 || nng_dialer_create(&d, *sock, url)
	    || (tls != NULL
	        && nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls) != 0)
	    || nng_dialer_start(d, 0) != 0) {
		return -1;
	}
	return 0;
}

static void
print_row(const char *name, size_t size, const result *r)
{
	printf("%-26s %6zu %9.1f %9.1f %10.0f %10.0f %6d\n", name, size,
	    r->p50_us, r->p99_us, r->rps1, r->rps8, r->errors);
}

static int
echo(void *arg, const km_identity *peer, const uint8_t *req, size_t len,
    km_buf *reply)
{
	(void)arg;
	(void)peer;
	return km_buf_put_raw(reply, req, len);
}

/* ---- new-connection cost ---------------------------------------------- */

/* Server and client configs through nng's public calls only, which every
 * engine implements: used for both ours and nng's mbed engine. */
static int
std_configs(const pems *p, nng_tls_config **scfg, nng_tls_config **ccfg)
{
	if (nng_tls_config_alloc(scfg, NNG_TLS_MODE_SERVER) != 0
	    || nng_tls_config_alloc(ccfg, NNG_TLS_MODE_CLIENT) != 0
	    || nng_tls_config_auth_mode(*scfg, NNG_TLS_AUTH_MODE_REQUIRED) != 0
	    || nng_tls_config_auth_mode(*ccfg, NNG_TLS_AUTH_MODE_REQUIRED) != 0
	    || nng_tls_config_ca_chain(*scfg, p->ca, p->crl) != 0
	    || nng_tls_config_ca_chain(*ccfg, p->ca, p->crl) != 0
	    || nng_tls_config_own_cert(*scfg, p->srv_cert, p->srv_key, NULL)
	        != 0
	    || nng_tls_config_own_cert(*ccfg, p->cli_cert, p->cli_key, NULL)
	        != 0
	    || nng_tls_config_server_name(*ccfg, "bench-srv") != 0) {
		return -1;
	}
	return 0;
}

/*
 * Dial @n fresh connections one after another with the engine in place
 * (the standard nng_tls_config calls, which both engines implement) and
 * return the median and p90 time to a usable pipe (TCP + TLS + SP header).
 */
static int
measure_dials(
    const pems *p, int n, double *p50_ms, double *p90_ms, const char **version)
{
	nng_tls_config *scfg = NULL, *ccfg = NULL;
	nng_socket srv, cli;
	nng_listener l;
	nng_dialer d;
	uint64_t *t;
	char url[64];
	int port, i;

	if ((t = calloc((size_t)n, sizeof(*t))) == NULL
	    || std_configs(p, &scfg, &ccfg) != 0) {
		return -1;
	}
	if (nng_rep0_open(&srv) != 0
	    || nng_listener_create(&l, srv, "tls+tcp://127.0.0.1:0") != 0
	    || nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, scfg) != 0
	    || nng_listener_start(l, 0) != 0
	    || nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) != 0
	    || nng_req0_open(&cli) != 0) {
		return -1;
	}
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	for (i = 0; i < n; i++) {
		uint64_t t0 = km_mono_ns();

		if (nng_dialer_create(&d, cli, url) != 0
		    || nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, ccfg) != 0
		    || nng_dialer_start(d, 0) != 0) {
			return -1;
		}
		t[i] = km_mono_ns() - t0;
		nng_dialer_close(d);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_u64);
	*p50_ms = (double)t[n / 2] / 1e6;
	*p90_ms = (double)t[n * 9 / 10] / 1e6;
	*version = nng_tls_engine_name();
	nng_close(cli);
	nng_close(srv);
	nng_tls_config_free(scfg);
	nng_tls_config_free(ccfg);
	free(t);
	return 0;
}

/* Child mode: nng's own engine, untouched by keymesh. */
static int
mbed_child(const char *dir)
{
	nng_tls_config *scfg = NULL, *ccfg = NULL;
	raw_server rs;
	nng_socket cs;
	result r64, r4k;
	pems p;
	double p50, p90;
	const char *eng;

	snprintf(ca_dir, sizeof(ca_dir), "%s", dir);
	load_pems(&p);
	if (measure_dials(&p, DIALS, &p50, &p90, &eng) != 0
	    || std_configs(&p, &scfg, &ccfg) != 0
	    || raw_server_start(&rs, scfg) != 0
	    || raw_client(&cs, rs.port, ccfg) != 0) {
		return 1;
	}
	{
		job j = { cs, NULL, 64, 0, NULL, 0 };

		measure_set(&j, 1, &r64);
		j.size = 4096;
		measure_set(&j, 1, &r4k);
	}
	printf("%s %.3f %.3f %.1f %.1f %.1f %.1f\n", eng, p50, p90, r64.p50_us,
	    r64.p99_us, r4k.p50_us, r4k.p99_us);
	return 0;
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = { 64, 4096 };
	char tmpl[] = "/tmp/keymesh-bench-XXXXXX", cmd[1024], line[256];
	char self[512];
	pems p;
	km_net_creds *srv_creds = NULL, *cli_creds = NULL;
	nng_tls_config *stls = NULL, *ctls = NULL;
	raw_server rs, rt;
	km_net_server *ks = NULL;
	km_net_client *kc = NULL, *kcu = NULL;
	km_net_tls_info info;
	nng_socket cs, ct, ctu;
	raw_server rtu;
	result tcp[2], tls[2], env[2], tlsu[2], envu[2];
	uint64_t gath0, gath1;
	double our50 = 0, our90 = 0, mb50 = -1, mb90 = -1;
	double mbl[4] = { -1, -1, -1, -1 };
	const char *eng = "";
	char mbname[64] = "mbed";
	FILE *f;
	ssize_t n;
	size_t i;
	int opt, port, met = 1;

	if (argc == 3 && strcmp(argv[1], "--mbed-child") == 0) {
		return mbed_child(argv[2]);
	}
	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n') {
			rounds = (int)bench_arg(optarg, 1, 1000000);
		}
	}
	if (rounds < 100) {
		rounds = 100;
	}
	km_log_init("bench-transport", KM_LOG_ERR);
	if (mkdtemp(tmpl) == NULL) {
		return 1;
	}
	snprintf(ca_dir, sizeof(ca_dir), "%s", tmpl);
	if (km_pki_ca_init(ca_dir, 0) != 0
	    || km_pki_cert_issue(ca_dir, KM_ROLE_NODE, "bench-srv", 0) != 0
	    || km_pki_cert_issue(ca_dir, KM_ROLE_CLIENT, "bench-cli", 0)
	        != 0) {
		fprintf(stderr, "bench: cannot make the CA\n");
		return 1;
	}
	load_pems(&p);

	/* nng's mbed engine, in a child that never registers ours */
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		snprintf(
		    cmd, sizeof(cmd), "'%s' --mbed-child '%s'", self, ca_dir);
		if ((f = popen(cmd, "r")) != NULL) {
			if (fgets(line, sizeof(line), f) != NULL) {
				sscanf(line, "%63s %lf %lf %lf %lf %lf %lf",
				    mbname, &mb50, &mb90, &mbl[0], &mbl[1],
				    &mbl[2], &mbl[3]);
			}
			pclose(f);
		}
	}

	if (km_net_init() != 0
	    || km_tls_config_new(NNG_TLS_MODE_SERVER, NULL, p.ca, p.crl,
	           p.srv_cert, p.srv_key, NULL, &stls)
	        != 0
	    || km_tls_config_new(NNG_TLS_MODE_CLIENT, NULL, p.ca, p.crl,
	           p.cli_cert, p.cli_key, "bench-srv", &ctls)
	        != 0) {
		fprintf(stderr, "bench: TLS setup failed\n");
		return 1;
	}
	if (measure_dials(&p, DIALS, &our50, &our90, &eng) != 0) {
		fprintf(stderr, "bench: dial measurement failed\n");
		return 1;
	}

	if (km_net_creds_load(ca_dir, "bench-srv", &srv_creds) != 0
	    || km_net_creds_load(ca_dir, "bench-cli", &cli_creds) != 0
	    || km_net_server_start(
	           srv_creds, "tls+tcp://127.0.0.1:0", NULL, echo, NULL, &ks)
	        != 0
	    || km_net_server_port(ks, &port) != 0) {
		fprintf(stderr, "bench: km_net server failed\n");
		return 1;
	}
	snprintf(line, sizeof(line), "tls+tcp://127.0.0.1:%d", port);
	if (km_net_client_open(cli_creds, line, "bench-srv", NULL, &kc) != 0
	    || km_net_client_wait_connected(kc, 5000) != 0) {
		fprintf(stderr, "bench: km_net client failed\n");
		return 1;
	}
	/*
	 * The uncoalesced links: both ends of a connection take the setting
	 * in force when it is made, and keep it.
	 */
	km_tls_set_coalesce(false);
	if (km_net_client_open(cli_creds, line, "bench-srv", NULL, &kcu) != 0
	    || km_net_client_wait_connected(kcu, 5000) != 0
	    || raw_server_start(&rtu, stls) != 0
	    || raw_client(&ctu, rtu.port, ctls) != 0) {
		fprintf(stderr, "bench: uncoalesced links failed\n");
		return 1;
	}
	km_tls_set_coalesce(true);

	printf("keymesh transport benchmark: loopback, %d sequential round "
	       "trips per row, interleaved\nin blocks across the rows (p50, "
	       "p99, rps@1), then %d threads at once (rps@%d)\n%s\n\n",
	    rounds, THREADS, THREADS, nng_tls_engine_description());
	printf("%-26s %6s %9s %9s %10s %10s %6s\n", "transport", "bytes",
	    "p50 us", "p99 us", "rps@1", "rps@8", "errors");
	if (raw_server_start(&rs, NULL) != 0
	    || raw_client(&cs, rs.port, NULL) != 0
	    || raw_server_start(&rt, stls) != 0
	    || raw_client(&ct, rt.port, ctls) != 0) {
		fprintf(stderr, "bench: raw servers failed\n");
		return 1;
	}
	km_tls_coalesce_stats(&gath0, NULL);
	for (i = 0; i < 2; i++) {
		job rows[ROWS] = {
			{ cs, NULL, sizes[i], 0, NULL, 0 },
			{ ct, NULL, sizes[i], 0, NULL, 0 },
			{ ct, kc, sizes[i], 0, NULL, 0 },
			{ ctu, NULL, sizes[i], 0, NULL, 0 },
			{ ctu, kcu, sizes[i], 0, NULL, 0 },
		};
		result res[ROWS];

		measure_set(rows, ROWS, res);
		tcp[i] = res[0];
		tls[i] = res[1];
		env[i] = res[2];
		tlsu[i] = res[3];
		envu[i] = res[4];
		print_row("tcp:// (no security)", sizes[i], &tcp[i]);
		print_row("tls+tcp:// TLS 1.3", sizes[i], &tls[i]);
		print_row("TLS 1.3 + signed envelope", sizes[i], &env[i]);
		print_row("  TLS 1.3, uncoalesced", sizes[i], &tlsu[i]);
		print_row("  TLS + env, uncoalesced", sizes[i], &envu[i]);
		if (mbl[2 * i] >= 0) {
			printf("%-26s %6zu %9.1f %9.1f   (nng's own engine, "
			       "separate run)\n",
			    "mbed TLS 1.2 (reference)", sizes[i], mbl[2 * i],
			    mbl[2 * i + 1]);
		}
	}
	km_tls_coalesce_stats(&gath1, NULL);
	nng_close(cs);
	nng_close(ct);
	nng_close(ctu);
	raw_server_stop(&rs);
	raw_server_stop(&rt);
	raw_server_stop(&rtu);
	km_net_client_tls_info(kc, &info);
	printf("\nnegotiated: %s %s\n", info.version, info.cipher);
	printf(
	    "\nnew connection (TCP + TLS handshake + SP header), %d dials:\n",
	    DIALS);
	printf("  %-16s p50 %7.2f ms  p90 %7.2f ms  (TLS 1.3, OpenSSL)\n", eng,
	    our50, our90);
	if (mb50 >= 0) {
		printf("  %-16s p50 %7.2f ms  p90 %7.2f ms  (TLS 1.2, mbed "
		       "TLS: nng's own engine)\n",
		    mbname, mb50, mb90);
	} else {
		printf("  %-16s (could not be measured)\n", mbname);
	}

	printf("\nSP messages gathered into one TLS record: %llu\n",
	    (unsigned long long)(gath1 - gath0));
	printf("\ntarget: TLS p50 within 1.5x of plain tcp p50\n");
	for (i = 0; i < 2; i++) {
		double ratio = tls[i].p50_us / tcp[i].p50_us;

		printf("  %4zu bytes: %.2fx  %s   (uncoalesced %.2fx)\n",
		    sizes[i], ratio, ratio <= 1.5 ? "met" : "NOT met",
		    tlsu[i].p50_us / tcp[i].p50_us);
		if (ratio > 1.5) {
			met = 0;
		}
	}
	printf("  (with signed envelopes: %.2fx / %.2fx, uncoalesced %.2fx / "
	       "%.2fx;\n   the envelope adds an ECDSA sign + verify on each "
	       "side)\n",
	    env[0].p50_us / tcp[0].p50_us, env[1].p50_us / tcp[1].p50_us,
	    envu[0].p50_us / tcp[0].p50_us, envu[1].p50_us / tcp[1].p50_us);
	printf("overall: %s\n", met ? "met" : "not met");

	km_net_client_close(kc);
	km_net_client_close(kcu);
	km_net_server_stop(ks);
	km_net_creds_free(srv_creds);
	km_net_creds_free(cli_creds);
	nng_tls_config_free(stls);
	nng_tls_config_free(ctls);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ca_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench: could not remove %s\n", ca_dir);
	}
	return 0;
}
