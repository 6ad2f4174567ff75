/*
 * bench-p11: end-to-end latency and throughput of any PKCS#11 module
 * (issue #8).  The module is dlopen()ed, so the same program measures
 * SoftHSMv2, p11-kit's forwarding client and keymesh-pkcs11.so through
 * exactly the same calls:
 *
 *   - C_Sign, CKM_SHA256_RSA_PKCS, with an RSA-2048 and an RSA-3072 key,
 *   - C_DeriveKey, CKM_ECDH1_DERIVE, with a P-256 key,
 *
 * each with 1, 2, 8 and 32 concurrent sessions: one thread per session,
 * each thread with its own session (the application logs in once, as the
 * standard says login state is per application).  Per point it reports the
 * median, p99, min and max latency and the throughput over the point.
 *
 * Start-up figures, measured once per process (-S): the RSS that loading
 * and initialising the module adds (VmRSS of /proc/self/status before
 * dlopen and after C_Initialize, and again after the first signature, since
 * a module may connect lazily), the time of C_Initialize, of the first
 * C_Sign after it and of the second one; and (-F) the time of one
 * C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal pass over all objects.
 *
 * Output: CSV lines on stdout (prefix "csv,"), a human table on stderr,
 * and optionally every single latency in microseconds to -s FILE (one
 * "system,op,conc,round,usec" line each) so run-bench.sh can pool rounds.
 *
 * A benchmark, not a test: it never decides pass or fail.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define MAX_CONC    64
#define MAX_SAMPLES 200000

typedef enum { OP_RSA2048, OP_RSA3072, OP_ECDH } bench_op;

static const char *const op_names[]
    = { "sign-rsa2048", "sign-rsa3072", "ecdh-p256" };

/* The P-256 base point, uncompressed: a valid peer public key whose
 * derivation anyone can check (the shared x is the key's own public x). */
static const CK_BYTE p256_g[65] = { 0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c,
	0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03,
	0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98,
	0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7,
	0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31,
	0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5 };

typedef struct {
	const char *module, *token, *pin, *system;
	const char *labels[3];
	int concs[8];
	size_t nconc;
	double seconds;   /* per point */
	unsigned min_ops; /* per thread and point */
	int round;
	int startup, find, nopoints;
	const char *samples;
	pid_t peers[16]; /* -P: processes whose CPU is accounted too */
	size_t npeers;
} bench_opts;

static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static bench_opts opts;

/* ---- small helpers ------------------------------------------------------ */

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

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			v = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t
pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0) {
		return 0;
	}
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i == 0) {
		i = 1;
	}
	if (i > n) {
		i = n;
	}
	return v[i - 1];
}

static void
die_rv(const char *what, CK_RV rv)
{
	fprintf(stderr, "bench-p11: %s: %s failed: CKR 0x%lx\n", opts.system,
	    what, (unsigned long)rv);
	exit(2);
}

/* ---- module set-up -------------------------------------------------- */

static void
load_module(void)
{
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
	void *h;

	h = dlopen(opts.module, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "bench-p11: %s\n", dlerror());
		exit(2);
	}
	*(void **)&get = dlsym(h, "C_GetFunctionList");
	if (get == NULL) {
		fprintf(stderr, "bench-p11: %s: no C_GetFunctionList\n",
		    opts.module);
		exit(2);
	}
	if (get(&p11) != CKR_OK) {
		die_rv("C_GetFunctionList", CKR_GENERAL_ERROR);
	}
}

static void
initialize(void)
{
	CK_C_INITIALIZE_ARGS ia;
	CK_RV rv;

	memset(&ia, 0, sizeof(ia));
	ia.flags = CKF_OS_LOCKING_OK;
	if ((rv = p11->C_Initialize(&ia)) != CKR_OK) {
		die_rv("C_Initialize", rv);
	}
}

/* A token label is blank-padded to 32 bytes. */
static int
label_is(const CK_UTF8CHAR *l, const char *want)
{
	size_t n = strlen(want), i;

	if (n > 32 || memcmp(l, want, n) != 0) {
		return 0;
	}
	for (i = n; i < 32; i++) {
		if (l[i] != ' ' && l[i] != '\0') {
			return 0;
		}
	}
	return 1;
}

static void
find_slot(void)
{
	CK_SLOT_ID ids[64];
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;

	if ((rv = p11->C_GetSlotList(CK_TRUE, ids, &n)) != CKR_OK) {
		die_rv("C_GetSlotList", rv);
	}
	for (i = 0; i < n; i++) {
		if (p11->C_GetTokenInfo(ids[i], &ti) != CKR_OK) {
			continue;
		}
		if (opts.token == NULL || label_is(ti.label, opts.token)) {
			slot = ids[i];
			return;
		}
	}
	fprintf(stderr, "bench-p11: %s: no token '%s' among %lu slots\n",
	    opts.system, opts.token != NULL ? opts.token : "(any)",
	    (unsigned long)n);
	exit(2);
}

static CK_SESSION_HANDLE
open_session(void)
{
	CK_SESSION_HANDLE s;
	CK_RV rv;

	rv = p11->C_OpenSession(
	    slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		die_rv("C_OpenSession", rv);
	}
	return s;
}

static void
login(CK_SESSION_HANDLE s)
{
	CK_RV rv;

	rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)opts.pin,
	    (CK_ULONG)strlen(opts.pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		die_rv("C_Login", rv);
	}
}

static CK_OBJECT_HANDLE
find_key(CK_SESSION_HANDLE s, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) },
	};
	CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	CK_RV rv;

	if ((rv = p11->C_FindObjectsInit(s, t, 2)) != CKR_OK) {
		die_rv("C_FindObjectsInit", rv);
	}
	rv = p11->C_FindObjects(s, &o, 1, &n);
	p11->C_FindObjectsFinal(s);
	if (rv != CKR_OK || n != 1) {
		fprintf(stderr, "bench-p11: %s: no private key '%s'\n",
		    opts.system, label);
		exit(2);
	}
	return o;
}

/* ---- the operations --------------------------------------------------- */

static CK_RV
do_sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_BYTE data[32] = "keymesh bench: sign these bytes";
	CK_BYTE sig[512];
	CK_ULONG len = sizeof(sig);
	CK_RV rv;

	if ((rv = p11->C_SignInit(s, &m, key)) != CKR_OK) {
		return rv;
	}
	return p11->C_Sign(s, data, sizeof(data), sig, &len);
}

static CK_RV
do_derive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
	CK_ECDH1_DERIVE_PARAMS dp
	    = { CKD_NULL, 0, NULL, sizeof(p256_g), (CK_BYTE_PTR)p256_g };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &dp, sizeof(dp) };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_ULONG vlen = 32;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &vlen, sizeof(vlen) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;
	CK_RV rv;

	rv = p11->C_DeriveKey(s, &m, key, t, sizeof(t) / sizeof(t[0]), &out);
	if (rv == CKR_OK) {
		/* Inside the timed section: an application that derives also
		 * drops the session key, and not destroying it would grow the
		 * module's object table through the whole run. */
		p11->C_DestroyObject(s, out);
	}
	return rv;
}

static CK_RV
do_op(bench_op op, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
	return op == OP_ECDH ? do_derive(s, key) : do_sign(s, key);
}

/* ---- one point: op x concurrency ---------------------------------------- */

typedef struct {
	bench_op op;
	CK_OBJECT_HANDLE key;
	pthread_barrier_t *ready, *start;
	uint64_t deadline; /* set by the main thread after the barrier */
	uint64_t *lat;
	size_t n, cap;
	CK_RV err;
	uint64_t t_end;
	uint64_t cpu_ns, switches; /* this thread's, over the timed loop */
	pid_t tid;
} worker;

/* ---- CPU accounting (-P) --------------------------------------------------
 *
 * Where the CPU of one operation goes: the timed threads' own CPU time and
 * context switches (CLOCK_THREAD_CPUTIME_ID, RUSAGE_THREAD), and, from
 * /proc/PID/task/TID/{schedstat,status,comm}, every other thread of this
 * process (the module's: nng's I/O and task threads, its view refresher)
 * and of the -P processes (the daemons), split into nng's threads and the
 * rest.  Read before the timed loop starts and after it ends; a thread
 * that exists at only one of the two readings is left out.
 */
enum {
	ACCT_SELF_NNG,
	ACCT_SELF_OTHER,
	ACCT_PEER_NNG,
	ACCT_PEER_OTHER,
	ACCT_N
};

typedef struct {
	pid_t pid, tid;
	int cls;
	uint64_t ns, sw;
} acct_row;

typedef struct {
	acct_row *r;
	size_t n, cap;
} acct_snap;

static uint64_t
thread_switches(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) != 0) {
		return 0;
	}
	return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

static uint64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One task's CPU (ns) and context switches; false if it is gone. */
static bool
acct_task(pid_t pid, const char *tid, uint64_t *ns, uint64_t *sw, bool *nng)
{
	char path[96], line[128];
	unsigned long long v, t = 0;
	FILE *f;
	bool ok = false;

	/* nanoseconds on a CPU; without schedstat (CONFIG_SCHED_INFO), the
	 * user and system clock ticks of stat */
	snprintf(
	    path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, tid);
	if ((f = fopen(path, "r")) != NULL) {
		ok = fscanf(f, "%llu", &v) == 1;
		fclose(f);
		*ns = v;
	} else {
		char buf[512], *p;
		unsigned long long ut, st;
		size_t n;

		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid,
		    tid);
		if ((f = fopen(path, "r")) == NULL) {
			return false;
		}
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		ok = (p = strrchr(buf, ')')) != NULL
		    && sscanf(p + 1,
		           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
		           "%llu %llu",
		           &ut, &st)
		        == 2;
		*ns = ok ? (ut + st)
		        * (1000000000ull
		            / (unsigned long long)sysconf(_SC_CLK_TCK))
		         : 0;
	}
	if (!ok) {
		return false;
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, tid);
	if ((f = fopen(path, "r")) == NULL) {
		return false;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1
		    || sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v)
		        == 1) {
			t += v;
		}
	}
	fclose(f);
	*sw = t;
	snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, tid);
	if ((f = fopen(path, "r")) == NULL) {
		return false;
	}
	*nng = fgets(line, sizeof(line), f) != NULL
	    && strncmp(line, "nng:", 4) == 0;
	fclose(f);
	return true;
}

static void
acct_read_pid(acct_snap *a, pid_t pid, bool self)
{
	char dir[48];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	if ((d = opendir(dir)) == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		acct_row row;
		bool nng;

		if (de->d_name[0] < '0' || de->d_name[0] > '9') {
			continue;
		}
		memset(&row, 0, sizeof(row));
		row.pid = pid;
		row.tid = (pid_t)strtol(de->d_name, NULL, 10);
		if (!acct_task(pid, de->d_name, &row.ns, &row.sw, &nng)) {
			continue;
		}
		row.cls = self ? (nng ? ACCT_SELF_NNG : ACCT_SELF_OTHER)
		               : (nng ? ACCT_PEER_NNG : ACCT_PEER_OTHER);
		if (a->n == a->cap) {
			size_t cap = a->cap ? 2 * a->cap : 256;
			acct_row *r = realloc(a->r, cap * sizeof(*r));

			if (r == NULL) {
				fprintf(stderr, "bench-p11: out of memory\n");
				exit(2);
			}
			a->r = r;
			a->cap = cap;
		}
		a->r[a->n++] = row;
	}
	closedir(d);
}

/* The parent process id of @pid, or -1. */
static pid_t
acct_ppid(const char *pid)
{
	char path[48], buf[512], *p;
	long ppid;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ppid ...": comm may hold anything but ')' last */
	if ((p = strrchr(buf, ')')) == NULL
	    || sscanf(p + 1, " %*c %ld", &ppid) != 1) {
		return -1;
	}
	return (pid_t)ppid;
}

/* This process, the -P processes and their children (p11-kit server
 * serves each client in a child it forks). */
static void
acct_read(acct_snap *a)
{
	struct dirent *de;
	DIR *d;
	size_t i;

	a->n = 0;
	acct_read_pid(a, getpid(), true);
	for (i = 0; i < opts.npeers; i++) {
		acct_read_pid(a, opts.peers[i], false);
	}
	if ((d = opendir("/proc")) == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		pid_t pp;

		if (de->d_name[0] < '1' || de->d_name[0] > '9'
		    || (pp = acct_ppid(de->d_name)) <= 0) {
			continue;
		}
		for (i = 0; i < opts.npeers && opts.peers[i] != pp; i++) {
		}
		if (i < opts.npeers) {
			acct_read_pid(
			    a, (pid_t)strtol(de->d_name, NULL, 10), false);
		}
	}
	closedir(d);
}

/* Per class, what the threads found in both readings used in between;
 * threads in @skip (the timed workers, accounted on their own) left out. */
static void
acct_diff(const acct_snap *a, const acct_snap *b, const pid_t *skip,
    size_t nskip, uint64_t ns[ACCT_N], uint64_t sw[ACCT_N])
{
	size_t i, j, k;

	memset(ns, 0, sizeof(uint64_t) * ACCT_N);
	memset(sw, 0, sizeof(uint64_t) * ACCT_N);
	for (j = 0; j < b->n; j++) {
		for (k = 0; k < nskip && skip[k] != b->r[j].tid; k++) {
		}
		if (k < nskip) {
			continue;
		}
		for (i = 0; i < a->n; i++) {
			if (a->r[i].pid == b->r[j].pid
			    && a->r[i].tid == b->r[j].tid) {
				break;
			}
		}
		if (i == a->n || b->r[j].ns < a->r[i].ns
		    || b->r[j].sw < a->r[i].sw) {
			continue;
		}
		ns[b->r[j].cls] += b->r[j].ns - a->r[i].ns;
		sw[b->r[j].cls] += b->r[j].sw - a->r[i].sw;
	}
}

/*
 * The background: what the same threads use per second with no operation
 * running (the daemons' Raft heartbeats, beacons and probes, the module's
 * view refresher), measured once per process over two seconds and taken
 * off every point in proportion to its length, so that a point's figures
 * are what its operations cost.
 */
static double idle_ns[ACCT_N], idle_sw[ACCT_N];
static bool idle_done;

static void
acct_idle(void)
{
	acct_snap a = { 0 }, b = { 0 };
	uint64_t ns[ACCT_N], sw[ACCT_N], t0, t1;
	struct timespec two = { 2, 0 };
	double secs;
	size_t i;

	if (opts.npeers == 0 || idle_done) {
		return;
	}
	idle_done = true;
	acct_read(&a);
	t0 = now_ns();
	nanosleep(&two, NULL);
	acct_read(&b);
	t1 = now_ns();
	acct_diff(&a, &b, NULL, 0, ns, sw);
	secs = (double)(t1 - t0) / 1e9;
	for (i = 0; i < ACCT_N; i++) {
		idle_ns[i] = (double)ns[i] / secs;
		idle_sw[i] = (double)sw[i] / secs;
	}
	printf("csv,idle,%s,%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n",
	    opts.system, opts.round, idle_ns[ACCT_SELF_NNG] / 1e3,
	    idle_sw[ACCT_SELF_NNG], idle_ns[ACCT_SELF_OTHER] / 1e3,
	    idle_sw[ACCT_SELF_OTHER], idle_ns[ACCT_PEER_OTHER] / 1e3,
	    idle_sw[ACCT_PEER_OTHER], idle_ns[ACCT_PEER_NNG] / 1e3,
	    idle_sw[ACCT_PEER_NNG]);
	fprintf(stderr,
	    "%-14s background with no operation, per second: module nng "
	    "%.2f ms, module other %.2f ms, servers %.2f ms, servers' nng "
	    "%.2f ms\n",
	    opts.system, idle_ns[ACCT_SELF_NNG] / 1e6,
	    idle_ns[ACCT_SELF_OTHER] / 1e6, idle_ns[ACCT_PEER_OTHER] / 1e6,
	    idle_ns[ACCT_PEER_NNG] / 1e6);
	free(a.r);
	free(b.r);
}

/* A point's use less the background over @secs, never below zero. */
static void
acct_less_idle(uint64_t ns[ACCT_N], uint64_t sw[ACCT_N], double secs)
{
	size_t i;

	for (i = 0; i < ACCT_N; i++) {
		double n = (double)ns[i] - idle_ns[i] * secs;
		double w = (double)sw[i] - idle_sw[i] * secs;

		ns[i] = n > 0 ? (uint64_t)n : 0;
		sw[i] = w > 0 ? (uint64_t)w : 0;
	}
}

/* Per operation: CPU in microseconds and context switches, by class. */
static void
acct_print(bench_op op, int conc, size_t ops, uint64_t wns, uint64_t wsw,
    const uint64_t ns[ACCT_N], const uint64_t sw[ACCT_N])
{
	double d = ops > 0 ? (double)ops : 1;

	printf("csv,cpu,%s,%s,%d,%d,%zu,%.1f,%.2f,%.1f,%.2f,%.1f,%.2f,%.1f,"
	       "%.2f,%.1f,%.2f\n",
	    opts.system, op_names[op], conc, opts.round, ops,
	    (double)wns / 1e3 / d, (double)wsw / d,
	    (double)ns[ACCT_SELF_NNG] / 1e3 / d, (double)sw[ACCT_SELF_NNG] / d,
	    (double)ns[ACCT_SELF_OTHER] / 1e3 / d,
	    (double)sw[ACCT_SELF_OTHER] / d,
	    (double)ns[ACCT_PEER_OTHER] / 1e3 / d,
	    (double)sw[ACCT_PEER_OTHER] / d,
	    (double)ns[ACCT_PEER_NNG] / 1e3 / d,
	    (double)sw[ACCT_PEER_NNG] / d);
	fprintf(stderr,
	    "%-14s %-13s %4d  CPU per operation: caller %.2f ms (%.1f "
	    "switches), module nng %.2f ms (%.1f), module other %.2f ms, "
	    "servers %.2f ms (%.1f), servers' nng %.2f ms (%.1f)\n",
	    opts.system, op_names[op], conc, (double)wns / 1e6 / d,
	    (double)wsw / d, (double)ns[ACCT_SELF_NNG] / 1e6 / d,
	    (double)sw[ACCT_SELF_NNG] / d,
	    (double)ns[ACCT_SELF_OTHER] / 1e6 / d,
	    (double)ns[ACCT_PEER_OTHER] / 1e6 / d,
	    (double)sw[ACCT_PEER_OTHER] / d,
	    (double)ns[ACCT_PEER_NNG] / 1e6 / d,
	    (double)sw[ACCT_PEER_NNG] / d);
}

static volatile uint64_t point_deadline;

static void *
worker_main(void *arg)
{
	worker *w = arg;
	CK_SESSION_HANDLE s = open_session();
	CK_RV rv;

	/* One untimed operation: per-session set-up is not steady state. */
	if ((rv = do_op(w->op, s, w->key)) != CKR_OK) {
		w->err = rv;
	}
	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(w->ready);
	pthread_barrier_wait(w->start);
	w->cpu_ns = thread_cpu_ns();
	w->switches = thread_switches();
	while (w->err == CKR_OK && w->n < w->cap) {
		uint64_t t0 = now_ns(), t1;

		if ((rv = do_op(w->op, s, w->key)) != CKR_OK) {
			w->err = rv;
			break;
		}
		t1 = now_ns();
		w->lat[w->n++] = t1 - t0;
		if (t1 >= __atomic_load_n(&point_deadline, __ATOMIC_ACQUIRE)
		    && w->n >= opts.min_ops) {
			break;
		}
	}
	w->t_end = now_ns();
	w->cpu_ns = thread_cpu_ns() - w->cpu_ns;
	w->switches = thread_switches() - w->switches;
	p11->C_CloseSession(s);
	return NULL;
}

static void
run_point(bench_op op, CK_OBJECT_HANDLE key, int conc, FILE *sf)
{
	pthread_t th[MAX_CONC];
	worker w[MAX_CONC];
	pthread_barrier_t ready, bar;
	uint64_t *all, t0, t_last = 0;
	acct_snap before = { 0 }, after = { 0 };
	uint64_t ans[ACCT_N], asw[ACCT_N], wns = 0, wsw = 0;
	pid_t tids[MAX_CONC];
	size_t total = 0, cap, i, j;
	double secs, tput;

	cap = MAX_SAMPLES / (size_t)conc;
	pthread_barrier_init(&ready, NULL, (unsigned)conc + 1);
	pthread_barrier_init(&bar, NULL, (unsigned)conc + 1);
	__atomic_store_n(&point_deadline, UINT64_MAX, __ATOMIC_RELEASE);
	for (i = 0; i < (size_t)conc; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].op = op;
		w[i].key = key;
		w[i].ready = &ready;
		w[i].start = &bar;
		w[i].cap = cap;
		if ((w[i].lat = calloc(cap, sizeof(uint64_t))) == NULL) {
			fprintf(stderr, "bench-p11: out of memory\n");
			exit(2);
		}
		if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
			fprintf(stderr, "bench-p11: pthread_create failed\n");
			exit(2);
		}
	}
	/* every session has done its untimed operation */
	pthread_barrier_wait(&ready);
	if (opts.npeers > 0) {
		acct_read(&before);
	}
	pthread_barrier_wait(&bar);
	t0 = now_ns();
	__atomic_store_n(&point_deadline, t0 + (uint64_t)(opts.seconds * 1e9),
	    __ATOMIC_RELEASE);
	for (i = 0; i < (size_t)conc; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err != CKR_OK) {
			die_rv(op == OP_ECDH ? "C_DeriveKey" : "C_Sign",
			    w[i].err);
		}
		total += w[i].n;
		wns += w[i].cpu_ns;
		wsw += w[i].switches;
		tids[i] = w[i].tid;
		if (w[i].t_end > t_last) {
			t_last = w[i].t_end;
		}
	}
	pthread_barrier_destroy(&bar);
	pthread_barrier_destroy(&ready);
	if (opts.npeers > 0) {
		acct_read(&after);
		acct_diff(&before, &after, tids, (size_t)conc, ans, asw);
		acct_less_idle(ans, asw, (double)(now_ns() - t0) / 1e9);
		acct_print(op, conc, total, wns, wsw, ans, asw);
		free(before.r);
		free(after.r);
	}
	if ((all = calloc(total, sizeof(uint64_t))) == NULL) {
		fprintf(stderr, "bench-p11: out of memory\n");
		exit(2);
	}
	for (i = 0, total = 0; i < (size_t)conc; i++) {
		for (j = 0; j < w[i].n; j++) {
			all[total++] = w[i].lat[j];
			if (sf != NULL) {
				fprintf(sf, "%s,%s,%d,%d,%.1f\n", opts.system,
				    op_names[op], conc, opts.round,
				    (double)w[i].lat[j] / 1e3);
			}
		}
		free(w[i].lat);
	}
	qsort(all, total, sizeof(uint64_t), cmp_u64);
	secs = (double)(t_last - t0) / 1e9;
	tput = secs > 0 ? (double)total / secs : 0;
	printf("csv,lat,%s,%s,%d,%d,%zu,%.1f,%.1f,%.1f,%.1f,%.1f\n",
	    opts.system, op_names[op], conc, opts.round, total,
	    (double)pct(all, total, 50) / 1e3,
	    (double)pct(all, total, 99) / 1e3, (double)all[0] / 1e3,
	    (double)all[total - 1] / 1e3, tput);
	fprintf(stderr,
	    "%-14s %-13s %4d %7zu %10.3f %10.3f %10.3f %10.3f "
	    "%9.1f\n",
	    opts.system, op_names[op], conc, total,
	    (double)pct(all, total, 50) / 1e6,
	    (double)pct(all, total, 99) / 1e6, (double)all[0] / 1e6,
	    (double)all[total - 1] / 1e6, tput);
	fflush(stdout);
	free(all);
}

/* -P: a comma-separated list of process ids that must exist now. */
static void
parse_peers(const char *s)
{
	char *end, path[32];

	opts.npeers = 0;
	while (*s != '\0') {
		long v;

		errno = 0;
		v = strtol(s, &end, 10);
		if (end == s || errno != 0 || v < 1 || v > 4194304
		    || (*end != ',' && *end != '\0')) {
			fprintf(stderr,
			    "bench-p11: -P: '%s' is not a list of "
			    "process ids\n",
			    s);
			exit(2);
		}
		if (opts.npeers
		    == sizeof(opts.peers) / sizeof(opts.peers[0])) {
			fprintf(stderr,
			    "bench-p11: -P: more than %zu processes\n",
			    sizeof(opts.peers) / sizeof(opts.peers[0]));
			exit(2);
		}
		snprintf(path, sizeof(path), "/proc/%ld/task", v);
		if (access(path, R_OK) != 0) {
			fprintf(stderr, "bench-p11: -P: no process %ld\n", v);
			exit(2);
		}
		opts.peers[opts.npeers++] = (pid_t)v;
		s = *end == ',' ? end + 1 : end;
	}
}

/* ---- start-up and find ------------------------------------------------ */

static void
run_startup(void)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	uint64_t t_start, t0, t_init, t_first, t_second, t_cold, t_login;
	long rss0, rss_init, rss_sign;
	const char *label = opts.labels[OP_RSA2048];

	rss0 = rss_kib();
	t_start = t0 = now_ns();
	load_module();
	initialize();
	t_init = now_ns() - t0;
	rss_init = rss_kib();
	find_slot();
	s = open_session();
	t0 = now_ns();
	login(s);
	t_login = now_ns() - t0;
	key = find_key(s, label);
	t0 = now_ns();
	if ((rv = do_sign(s, key)) != CKR_OK) {
		die_rv("first C_Sign", rv);
	}
	t_first = now_ns() - t0;
	t_cold = now_ns() - t_start;
	rss_sign = rss_kib();
	t0 = now_ns();
	if ((rv = do_sign(s, key)) != CKR_OK) {
		die_rv("second C_Sign", rv);
	}
	t_second = now_ns() - t0;
	printf("csv,startup,%s,%d,%.3f,%.3f,%.3f,%.3f,%ld,%ld,%.3f\n",
	    opts.system, opts.round, (double)t_init / 1e6,
	    (double)t_first / 1e6, (double)t_second / 1e6,
	    (double)t_cold / 1e6, rss_init - rss0, rss_sign - rss0,
	    (double)t_login / 1e6);
	fprintf(stderr,
	    "%s: load+C_Initialize %.3f ms, C_Login %.3f ms, first C_Sign "
	    "%.3f ms, second %.3f ms, dlopen to first signature %.3f ms "
	    "(%.3f ms less C_Login); RSS added %ld KiB after init, %ld KiB "
	    "after the first sign\n",
	    opts.system, (double)t_init / 1e6, (double)t_login / 1e6,
	    (double)t_first / 1e6, (double)t_second / 1e6,
	    (double)t_cold / 1e6, (double)(t_cold - t_login) / 1e6,
	    rss_init - rss0, rss_sign - rss0);
	p11->C_CloseSession(s);
}

static void
run_find(CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE h[256];
	CK_ULONG n, total = 0;
	uint64_t t0, t;
	CK_RV rv;

	t0 = now_ns();
	if ((rv = p11->C_FindObjectsInit(s, NULL, 0)) != CKR_OK) {
		die_rv("C_FindObjectsInit", rv);
	}
	do {
		n = 0;
		if ((rv = p11->C_FindObjects(s, h, 256, &n)) != CKR_OK) {
			die_rv("C_FindObjects", rv);
		}
		total += n;
	} while (n > 0);
	p11->C_FindObjectsFinal(s);
	t = now_ns() - t0;
	printf("csv,find,%s,%d,%lu,%.3f\n", opts.system, opts.round,
	    (unsigned long)total, (double)t / 1e6);
	fprintf(stderr, "%s: C_FindObjects over all %lu objects: %.3f ms\n",
	    opts.system, (unsigned long)total, (double)t / 1e6);
}

/* ---- main ------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench-p11 -m MODULE -p PIN [-t TOKEN] [-N SYSTEM]\n"
	    "         [-a RSA2048-LABEL] [-b RSA3072-LABEL] [-e P256-LABEL]\n"
	    "         [-c 1,2,8,32] [-d SECONDS-PER-POINT] [-k MIN-OPS]\n"
	    "         [-r ROUND] [-s SAMPLES-FILE] [-P PID,PID...] [-S] [-F]"
	    " [-x]\n"
	    "  -S  start-up figures (RSS, first C_Sign) with the -a key\n"
	    "  -F  one C_FindObjects pass over all objects\n"
	    "  -x  no latency points (with -S and/or -F)\n"
	    "  -P  per point, the CPU time and context switches per "
	    "operation\n"
	    "      of this process's threads and of these processes "
	    "(servers)\n"
	    "  an operation runs only if its key label is given\n");
	exit(2);
}

static void
parse_concs(const char *s)
{
	char *end;

	opts.nconc = 0;
	while (*s != '\0' && opts.nconc < 8) {
		long v = strtol(s, &end, 10);

		if (end == s || v < 1 || v > MAX_CONC) {
			usage();
		}
		opts.concs[opts.nconc++] = (int)v;
		s = *end == ',' ? end + 1 : end;
		if (*end != ',' && *end != '\0') {
			usage();
		}
	}
}

int
main(int argc, char **argv)
{
	static const int defconc[] = { 1, 2, 8, 32 };
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	FILE *sf = NULL;
	size_t i, o;
	CK_RV rv;
	int c;

	opts.system = "p11";
	opts.seconds = 0.5;
	opts.min_ops = 3;
	opts.nconc = 4;
	memcpy(opts.concs, defconc, sizeof(defconc));
	while (
	    (c = getopt(argc, argv, "m:t:p:N:a:b:e:c:d:k:r:s:P:SFx")) != -1) {
		switch (c) {
		case 'm':
			opts.module = optarg;
			break;
		case 't':
			opts.token = optarg;
			break;
		case 'p':
			opts.pin = optarg;
			break;
		case 'N':
			opts.system = optarg;
			break;
		case 'a':
			opts.labels[OP_RSA2048] = optarg;
			break;
		case 'b':
			opts.labels[OP_RSA3072] = optarg;
			break;
		case 'e':
			opts.labels[OP_ECDH] = optarg;
			break;
		case 'c':
			parse_concs(optarg);
			break;
		case 'd':
			opts.seconds = atof(optarg);
			break;
		case 'k':
			opts.min_ops
			    = (unsigned)bench_arg(optarg, 1, 100000000);
			break;
		case 'r':
			opts.round = (int)bench_arg(optarg, 0, 1000000);
			break;
		case 's':
			opts.samples = optarg;
			break;
		case 'S':
			opts.startup = 1;
			break;
		case 'F':
			opts.find = 1;
			break;
		case 'x':
			opts.nopoints = 1;
			break;
		case 'P':
			parse_peers(optarg);
			break;
		default:
			usage();
		}
	}
	if (opts.module == NULL || opts.pin == NULL || optind != argc
	    || (opts.startup && opts.labels[OP_RSA2048] == NULL)) {
		usage();
	}
	if (opts.samples != NULL && (sf = fopen(opts.samples, "a")) == NULL) {
		fprintf(stderr, "bench-p11: %s: %s\n", opts.samples,
		    strerror(errno));
		return 2;
	}
	if (opts.startup) {
		/* Load, initialise and sign first, before anything else. */
		run_startup();
	} else {
		load_module();
		initialize();
		find_slot();
	}
	/* The application's one login; every worker session inherits it. */
	s = open_session();
	login(s);
	if (opts.find) {
		run_find(s);
	}
	for (o = 0; o < 3; o++) {
		CK_OBJECT_HANDLE key;

		if (opts.labels[o] == NULL || opts.nopoints) {
			continue;
		}
		key = find_key(s, opts.labels[o]);
		/* A module that cannot do the operation at all (p11-kit 0.24's
		 * RPC does not carry CK_ECDH1_DERIVE_PARAMS) gets a row that
		 * says so rather than ending the run. */
		if ((rv = do_op((bench_op)o, s, key)) != CKR_OK) {
			printf("csv,unsupported,%s,%s,0x%lx\n", opts.system,
			    op_names[o], (unsigned long)rv);
			fprintf(stderr, "%-14s %-13s unsupported: CKR 0x%lx\n",
			    opts.system, op_names[o], (unsigned long)rv);
			continue;
		}
		acct_idle();
		for (i = 0; i < opts.nconc; i++) {
			run_point((bench_op)o, key, opts.concs[i], sf);
		}
	}
	if (sf != NULL) {
		fclose(sf);
	}
	p11->C_CloseSession(s);
	p11->C_Finalize(NULL);
	return 0;
}
