/*
 * keymesh dev up | down | stop | start | kill: a local development mesh.
 *
 * A dev mesh is N keymeshd processes on loopback ports, each with its own
 * SoftHSM token directory, token PIN, state directory and log, all under
 * one directory:
 *
 *   DIR/devmesh               marks a dev mesh: node count and threshold
 *   DIR/ca/                   the mesh CA (see src/pki/pki.h) with node1..N,
 *                             "client" and "admin" identities
 *   DIR/nodeI/keymeshd.conf   the node's config (relative paths)
 *   DIR/nodeI/softhsm2.conf   its own SOFTHSM2_CONF, tokens in nodeI/tokens
 *   DIR/nodeI/token.pin       its token's user PIN (0600)
 *   DIR/nodeI/state/          its state store
 *   DIR/nodeI/keymeshd.log    its stdout and stderr, appended
 *   DIR/nodeI/keymeshd.pid    written by the daemon once it listens
 *   DIR/client.conf           the client config (src/mesh/client.h)
 *   DIR/user.pin              the partition's user PIN (0600)
 *   DIR/so.pin                the partition's SO PIN (0600)
 *
 * The launcher is the p11-kit test-server shape: fork/exec the daemon in
 * the foreground with a readiness pipe on fd 3, wait for its one line, and
 * stop it with SIGTERM, then SIGKILL.  The daemons run in their own
 * sessions so they outlive the CLI; later commands find them again through
 * their pid files, checked against /proc so a reused pid is never
 * signalled.
 *
 * `dev up` prints only shell lines on stdout, so that
 * eval "$(keymesh dev up ...)" prepares a shell; everything else goes to
 * stderr.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keymesh.h"
#include "pki/pki.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

#ifndef KM_PKCS11DIR
#define KM_PKCS11DIR "/usr/local/lib/pkcs11"
#endif
#ifndef KM_SBINDIR
#define KM_SBINDIR "/usr/local/sbin"
#endif

#define KMC_DEV_MAX_NODES 16
#define KMC_DEV_READY_MS 15000
#define KMC_DEV_STOP_MS 5000
#define KMC_DEV_KILL_MS 2000
#define KMC_DEV_MARKER "devmesh"
#define KMC_DEV_PATH 4096

/*
 * Listening ports are picked below the usual ephemeral range (32768-60999
 * on Linux), so that the local end of some outgoing connection cannot sit
 * on a stopped node's port when it is started again.
 */
#define KMC_DEV_PORT_LO 20000
#define KMC_DEV_PORT_HI 32000
/* dev up picks new ports this many times in all if one is taken meanwhile */
#define KMC_DEV_PORT_ATTEMPTS 3

typedef struct kmc_dev_node {
	int index; /* 1..N */
	char name[16];
	char dir[KMC_DEV_PATH];
	char conf[KMC_DEV_PATH];
	char pidfile[KMC_DEV_PATH];
	char log[KMC_DEV_PATH];
	int port;
	int raft_port; /* the catalog's Raft log ([raft] member) */
	pid_t pid;     /* a started or found daemon, or 0 */
	int ready_fd;  /* the readiness pipe while waiting, else -1 */
	char line[300]; /* what the daemon wrote on the pipe so far */
	size_t got;
	int state; /* 0 waiting, 1 ready, -1 failed */
	off_t log_off; /* the log's size when this start began */
	char why[600]; /* for a failure */
} kmc_dev_node;

/* Everything a dev command needs to know about a mesh directory. */
typedef struct kmc_dev {
	const char *cmd; /* "dev up", for messages */
	char dir[KMC_DEV_PATH];
	unsigned nnodes, threshold;
	kmc_dev_node nodes[KMC_DEV_MAX_NODES];
} kmc_dev;

static int __attribute__((format(printf, 3, 4)))
kmc_dev_path(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen) {
		return KM_ERR_TOO_LARGE;
	}
	return 0;
}

static uint64_t
kmc_dev_ms(void)
{
	return km_mono_ns() / 1000000u;
}

/* The directory of the running keymesh binary, for build-tree lookups. */
static int
kmc_dev_exe_dir(char *out, size_t outlen)
{
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", out, outlen - 1);
	if (n <= 0 || (size_t)n >= outlen - 1) {
		return KM_ERR_IO;
	}
	out[n] = '\0';
	if ((slash = strrchr(out, '/')) == NULL) {
		return KM_ERR_IO;
	}
	*slash = '\0';
	/* a libtool wrapper runs the real binary from tools/.libs */
	n = (ssize_t)strlen(out);
	if (n > 6 && strcmp(out + n - 6, "/.libs") == 0) {
		out[n - 6] = '\0';
	}
	return 0;
}

/* keymeshd: $KEYMESH_DAEMON, else the build tree's, else the installed. */
static int
kmc_dev_daemon_path(char *out, size_t outlen)
{
	const char *env = getenv("KEYMESH_DAEMON");
	char exe[KMC_DEV_PATH], cand[KMC_DEV_PATH];

	if (env != NULL && *env != '\0') {
		return kmc_dev_path(out, outlen, "%s", env);
	}
	if (kmc_dev_exe_dir(exe, sizeof(exe)) == 0 &&
	    kmc_dev_path(cand, sizeof(cand), "%s/../daemon/keymeshd", exe) ==
		0 &&
	    access(cand, X_OK) == 0 && realpath(cand, out) != NULL) {
		return 0;
	}
	return kmc_dev_path(out, outlen, "%s/keymeshd", KM_SBINDIR);
}

/* keymesh-pkcs11.so: the build tree's when there is one, else installed. */
static int
kmc_dev_module_path(char *out, size_t outlen)
{
	char exe[KMC_DEV_PATH], cand[KMC_DEV_PATH];

	/* libtool puts the module in the build tree's top .libs/ */
	if (kmc_dev_exe_dir(exe, sizeof(exe)) == 0 &&
	    kmc_dev_path(cand, sizeof(cand), "%s/../.libs/keymesh-pkcs11.so",
		exe) == 0 &&
	    access(cand, R_OK) == 0 && realpath(cand, out) != NULL) {
		return 0;
	}
	return kmc_dev_path(out, outlen, "%s/keymesh-pkcs11.so", KM_PKCS11DIR);
}

/* The keymeshd to run; 0, or 1 after one line. */
static int
kmc_dev_find_daemon(const char *cmd, char *out, size_t outlen)
{
	if (kmc_dev_daemon_path(out, outlen) != 0 || access(out, X_OK) != 0) {
		return kmc_fail(cmd, "cannot run keymeshd at %s (set "
				     "KEYMESH_DAEMON to its path)",
		    out);
	}
	return 0;
}

/* softhsm2-util from PATH (it lives beside the module's prefix). */
static int
kmc_dev_softhsm_util(char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	char *copy, *p, *save = NULL;
	int r = KM_ERR_NOT_FOUND;

	if (path == NULL || *path == '\0') {
		path = "/usr/local/bin:/usr/bin:/bin";
	}
	if ((copy = strdup(path)) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (p = strtok_r(copy, ":", &save); p != NULL;
	    p = strtok_r(NULL, ":", &save)) {
		if (kmc_dev_path(out, outlen, "%s/softhsm2-util", p) == 0 &&
		    access(out, X_OK) == 0) {
			r = 0;
			break;
		}
	}
	free(copy);
	return r;
}

/* Single-quote @s for a POSIX shell. */
static void
kmc_dev_shell_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s != '\0'; s++) {
		if (*s == '\'') {
			fputs("'\\''", f);
		} else {
			fputc(*s, f);
		}
	}
	fputc('\'', f);
}

static void
kmc_dev_node_init(kmc_dev *d, unsigned i)
{
	kmc_dev_node *n = &d->nodes[i];
	char base[KMC_DEV_PATH];

	memset(n, 0, sizeof(*n));
	n->index = (int)i + 1;
	n->ready_fd = -1;
	snprintf(n->name, sizeof(n->name), "node%u", i + 1);
	/* d->dir is checked to leave room for these (a local copy, as the
	 * fields share one object with it) */
	snprintf(base, sizeof(base), "%.3900s/node%u", d->dir, i + 1);
	snprintf(n->dir, sizeof(n->dir), "%s", base);
	snprintf(n->conf, sizeof(n->conf), "%.3900s/keymeshd.conf", base);
	snprintf(n->pidfile, sizeof(n->pidfile), "%.3900s/keymeshd.pid",
	    base);
	snprintf(n->log, sizeof(n->log), "%.3900s/keymeshd.log", base);
}

/*
 * Is @pid a live keymeshd started with @conf?  A zombie counts as gone (its
 * parent may be an init that does not reap), and a pid reused by another
 * program is not ours.
 */
static bool
kmc_dev_pid_is_node(pid_t pid, const char *conf)
{
	char path[64], buf[8192], *p;
	int fd, status;
	ssize_t n;
	bool found = false;

	if (pid <= 0) {
		return false;
	}
	/* our own child (dev up, dev start): reap it if it has exited */
	if (waitpid(pid, &status, WNOHANG) == pid) {
		return false;
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return false;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return false;
	}
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')' */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == 'Z' ||
	    p[2] == 'X') {
		return false;
	}
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return false;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return false;
	}
	buf[n] = '\0';
	/* the arguments are NUL-separated; one of them is our config */
	for (p = buf; p < buf + n; p += strlen(p) + 1) {
		if (strcmp(p, conf) == 0) {
			found = true;
			break;
		}
	}
	return found;
}

/* The pid of a running node from its pid file, or 0 (a stale file is
 * removed). */
static pid_t
kmc_dev_node_running(kmc_dev_node *n)
{
	uint8_t *data = NULL;
	size_t len = 0;
	char *end;
	long v;
	pid_t pid = 0;

	if (km_read_file(n->pidfile, &data, &len, 64) != 0) {
		return 0;
	}
	v = strtol((char *)data, &end, 10);
	if (v > 0 && v <= INT_MAX && (*end == '\n' || *end == '\0') &&
	    kmc_dev_pid_is_node((pid_t)v, n->conf)) {
		pid = (pid_t)v;
	} else {
		(void)unlink(n->pidfile);
	}
	free(data);
	return pid;
}

/* A logged line ("keymeshd: info [ID] ...") rather than the daemon's
 * one-line reason for exiting ("keymeshd: what was wrong"). */
static bool
kmc_dev_is_log_line(const char *line)
{
	static const char *const levels[] = { "error [", "warning [",
		"info [", "debug [" };
	const char *p = strchr(line, ':');
	size_t i;

	if (p == NULL || p[1] != ' ') {
		return true;
	}
	for (i = 0; i < KM_ARRAY_LEN(levels); i++) {
		if (strncmp(p + 2, levels[i], strlen(levels[i])) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * Why a node did not start, from what its log got since @from: the
 * daemon's own one-line reason when there is one (another thread may log
 * after it), else the last line.
 */
static void
kmc_dev_failure_line(const char *path, off_t from, char *out, size_t outlen)
{
	char buf[8192], *line, *save = NULL;
	const char *best = NULL, *last = NULL;
	ssize_t n;
	off_t size;
	int fd;

	snprintf(out, outlen, "it exited without a message (see %s)", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size - from > (off_t)sizeof(buf) - 1) {
		from = size - (off_t)sizeof(buf) + 1;
	}
	if (from < 0 || lseek(fd, from, SEEK_SET) < 0) {
		close(fd);
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		return;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\r\n", &save); line != NULL;
	    line = strtok_r(NULL, "\r\n", &save)) {
		if (*line == '\0') {
			continue;
		}
		last = line;
		if (!kmc_dev_is_log_line(line)) {
			best = line;
		}
	}
	if (best != NULL || last != NULL) {
		snprintf(out, outlen, "%s", best != NULL ? best : last);
	}
}

/*
 * Start one node exactly as dev up does: its own session, stdout and
 * stderr appended to its log, the readiness pipe on fd 3.
 */
static int
kmc_dev_spawn(kmc_dev_node *n, const char *daemon)
{
	int p[2] = { -1, -1 }, logfd = -1, nullfd = -1, r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0) {
		r = KM_ERR_IO;
		goto out;
	}
	if ((logfd = open(n->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		 0600)) < 0 ||
	    (nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(n->why, sizeof(n->why), "cannot open %s: %s", n->log,
		    strerror(errno));
		r = KM_ERR_IO;
		goto out;
	}
	n->log_off = lseek(logfd, 0, SEEK_END);
	if ((pid = fork()) < 0) {
		snprintf(n->why, sizeof(n->why), "cannot fork: %s",
		    strerror(errno));
		r = KM_ERR_IO;
		goto out;
	}
	if (pid == 0) {
		/* move the three above 3 first, so no dup2 clobbers another */
		int rfd = fcntl(p[1], F_DUPFD, 10);
		int lfd = fcntl(logfd, F_DUPFD, 10);
		int nfd = fcntl(nullfd, F_DUPFD, 10);

		if (rfd < 0 || lfd < 0 || nfd < 0 || setsid() < 0 ||
		    dup2(nfd, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0 ||
		    dup2(rfd, 3) < 0) {
			_exit(127);
		}
		closefrom(4);
		execl(daemon, daemon, "-c", n->conf, "-f", "--ready-fd", "3",
		    "--pidfile", n->pidfile, (char *)NULL);
		dprintf(2, "keymesh: cannot run %s: %s\n", daemon,
		    strerror(errno));
		_exit(127);
	}
	n->pid = pid;
	n->ready_fd = p[0];
	p[0] = -1;
	n->got = 0;
	n->line[0] = '\0';
	n->state = 0;
	r = 0;
out:
	if (p[0] >= 0) {
		close(p[0]);
	}
	if (p[1] >= 0) {
		close(p[1]);
	}
	if (logfd >= 0) {
		close(logfd);
	}
	if (nullfd >= 0) {
		close(nullfd);
	}
	return r;
}

/*
 * Wait until every spawned node (state 0) has written its readiness line,
 * or has failed (its pipe closed first), or @timeout_ms has passed.
 * Returns the number of nodes that failed.
 */
static unsigned
kmc_dev_wait_ready(kmc_dev_node **nodes, unsigned count, uint64_t timeout_ms)
{
	struct pollfd pfd[KMC_DEV_MAX_NODES];
	kmc_dev_node *which[KMC_DEV_MAX_NODES];
	uint64_t deadline = kmc_dev_ms() + timeout_ms;
	unsigned i, npfd, failed = 0;

	for (;;) {
		uint64_t now = kmc_dev_ms();
		int rc;

		npfd = 0;
		for (i = 0; i < count; i++) {
			if (nodes[i]->state == 0 && nodes[i]->ready_fd >= 0) {
				pfd[npfd].fd = nodes[i]->ready_fd;
				pfd[npfd].events = POLLIN;
				pfd[npfd].revents = 0;
				which[npfd++] = nodes[i];
			}
		}
		if (npfd == 0) {
			break;
		}
		if (now >= deadline) {
			for (i = 0; i < npfd; i++) {
				which[i]->state = -1;
				snprintf(which[i]->why, sizeof(which[i]->why),
				    "not ready after %u s",
				    (unsigned)(timeout_ms / 1000));
			}
			break;
		}
		rc = poll(pfd, npfd, (int)(deadline - now));
		if (rc < 0 && errno != EINTR) {
			for (i = 0; i < npfd; i++) {
				which[i]->state = -1;
				snprintf(which[i]->why, sizeof(which[i]->why),
				    "poll: %s", strerror(errno));
			}
			break;
		}
		for (i = 0; rc > 0 && i < npfd; i++) {
			kmc_dev_node *n = which[i];
			ssize_t got;
			char *nl;

			if (pfd[i].revents == 0) {
				continue;
			}
			got = read(n->ready_fd, n->line + n->got,
			    sizeof(n->line) - 1 - n->got);
			if (got < 0 && errno == EINTR) {
				continue;
			}
			if (got <= 0) {
				/* the daemon exited before it was ready */
				n->state = -1;
				kmc_dev_failure_line(n->log, n->log_off,
				    n->why, sizeof(n->why));
				continue;
			}
			n->got += (size_t)got;
			n->line[n->got] = '\0';
			if ((nl = strchr(n->line, '\n')) != NULL) {
				*nl = '\0';
				n->state = 1;
			} else if (n->got == sizeof(n->line) - 1) {
				n->state = -1;
				snprintf(n->why, sizeof(n->why),
				    "an over-long readiness line");
			}
		}
	}
	for (i = 0; i < count; i++) {
		if (nodes[i]->ready_fd >= 0) {
			close(nodes[i]->ready_fd);
			nodes[i]->ready_fd = -1;
		}
		if (nodes[i]->state != 1) {
			failed++;
		}
	}
	return failed;
}

/*
 * Stop daemons: @sig to each (SIGTERM or SIGKILL), wait for all of them
 * together, SIGKILL what is left after @grace_ms, and remove their pid
 * files.  Prints one line per node when @verbose.
 */
static void
kmc_dev_terminate(kmc_dev_node **nodes, unsigned count, int sig,
    uint64_t grace_ms, bool verbose)
{
	uint64_t start = kmc_dev_ms(), deadline = start + grace_ms;
	bool killed[KMC_DEV_MAX_NODES], gone[KMC_DEV_MAX_NODES];
	unsigned i, left;

	for (i = 0; i < count; i++) {
		killed[i] = sig == SIGKILL;
		gone[i] = nodes[i]->pid <= 0;
		if (!gone[i]) {
			(void)kill(nodes[i]->pid, sig);
		}
	}
	for (;;) {
		left = 0;
		for (i = 0; i < count; i++) {
			if (gone[i]) {
				continue;
			}
			if (!kmc_dev_pid_is_node(nodes[i]->pid,
				nodes[i]->conf)) {
				gone[i] = true;
				if (verbose) {
					fprintf(stderr,
					    "%s %s (pid %ld, %.1f s)\n",
					    nodes[i]->name,
					    killed[i] ? "killed" : "stopped",
					    (long)nodes[i]->pid,
					    (double)(kmc_dev_ms() - start) /
						1000.0);
				}
				continue;
			}
			left++;
			if (kmc_dev_ms() >= deadline && !killed[i]) {
				if (verbose) {
					fprintf(stderr,
					    "%s did not stop in %.0f s: "
					    "SIGKILL\n",
					    nodes[i]->name,
					    (double)grace_ms / 1000.0);
				}
				(void)kill(nodes[i]->pid, SIGKILL);
				killed[i] = true;
			}
		}
		if (left == 0 ||
		    kmc_dev_ms() >= deadline + KMC_DEV_KILL_MS) {
			break;
		}
		usleep(20 * 1000);
	}
	for (i = 0; i < count; i++) {
		if (gone[i]) {
			(void)unlink(nodes[i]->pidfile);
			nodes[i]->pid = 0;
		} else if (verbose) {
			fprintf(stderr, "%s (pid %ld) is still running\n",
			    nodes[i]->name, (long)nodes[i]->pid);
		}
	}
}

/* Reads DIR/devmesh; returns 0 or 1 after printing one line. */
static int
kmc_dev_open(kmc_dev *d, const char *cmd, const char *dir)
{
	char marker[KMC_DEV_PATH], err[512];
	struct stat st;
	km_conf c;
	uint64_t nodes = 0, threshold = 0;
	unsigned i;
	int r;

	memset(d, 0, sizeof(*d));
	d->cmd = cmd;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return kmc_fail(cmd, "no such directory: %s", dir);
	}
	if (realpath(dir, d->dir) == NULL) {
		return kmc_fail(cmd, "%s: %s", dir, strerror(errno));
	}
	if (strlen(d->dir) > KMC_DEV_PATH - 128) {
		return kmc_fail(cmd, "the path %s is too long", dir);
	}
	if (kmc_dev_path(marker, sizeof(marker), "%s/%s", d->dir,
		KMC_DEV_MARKER) != 0) {
		return kmc_fail(cmd, "the path %s is too long", dir);
	}
	if ((r = km_conf_load(marker, &c, err, sizeof(err))) != 0) {
		if (r == KM_ERR_NOT_FOUND) {
			return kmc_fail(cmd,
			    "%s is not a dev mesh (no %s file; make one with "
			    "keymesh dev up)",
			    dir, KMC_DEV_MARKER);
		}
		return kmc_fail(cmd, "%s", err);
	}
	if ((r = km_conf_get_uint(&c, "dev", "nodes", 1, KMC_DEV_MAX_NODES, 0,
		 &nodes, err, sizeof(err))) != 0 ||
	    (r = km_conf_get_uint(&c, "dev", "threshold", 1,
		 KMC_DEV_MAX_NODES, 0, &threshold, err, sizeof(err))) != 0) {
		km_conf_free(&c);
		return kmc_fail(cmd, "%s", err);
	}
	km_conf_free(&c);
	if (nodes == 0) {
		return kmc_fail(cmd, "%s: no node count", marker);
	}
	d->nnodes = (unsigned)nodes;
	d->threshold = (unsigned)threshold;
	for (i = 0; i < d->nnodes; i++) {
		kmc_dev_node_init(d, i);
	}
	return 0;
}

/* Parses --node I against the mesh; returns the node or NULL after a line
 * (with *rc set). */
static kmc_dev_node *
kmc_dev_pick(kmc_dev *d, const char *arg, int *rc)
{
	char *end;
	unsigned long v;

	if (arg == NULL) {
		*rc = kmc_usage(d->cmd, "--node is required");
		return NULL;
	}
	/* accept "2" and "node2" */
	if (strncmp(arg, "node", 4) == 0) {
		arg += 4;
	}
	v = strtoul(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || v < 1 || v > d->nnodes) {
		*rc = kmc_fail(d->cmd,
		    "bad node number '%s': this mesh has nodes 1..%u", arg,
		    d->nnodes);
		return NULL;
	}
	return &d->nodes[v - 1];
}

/*
 * The shell lines: KEYMESH_CONF, KEYMESH_MODULE, KEYMESH_PIN and, unless
 * @so_pin is NULL (a dev mesh made before SO PINs), KEYMESH_SO_PIN, with
 * absolute, single-quoted values.  Nothing else ever goes to stdout.
 */
static int
kmc_dev_print_env(const kmc_dev *d, const char *module, const char *pin,
    const char *so_pin)
{
	char conf[KMC_DEV_PATH];

	if (kmc_dev_path(conf, sizeof(conf), "%s/client.conf", d->dir) != 0) {
		return KM_ERR_TOO_LARGE;
	}
	fputs("export KEYMESH_CONF=", stdout);
	kmc_dev_shell_quote(stdout, conf);
	fputs("\nexport KEYMESH_MODULE=", stdout);
	kmc_dev_shell_quote(stdout, module);
	fputs("\nexport KEYMESH_PIN=", stdout);
	kmc_dev_shell_quote(stdout, pin);
	if (so_pin != NULL) {
		fputs("\nexport KEYMESH_SO_PIN=", stdout);
		kmc_dev_shell_quote(stdout, so_pin);
	}
	fputc('\n', stdout);
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : KM_ERR_IO;
}

/* ---- dev up ---- */

/* A PIN from @nbytes random bytes as hex, in secure memory. */
static char *
kmc_dev_hex_pin(size_t nbytes)
{
	uint8_t raw[32];
	char *pin;

	if (nbytes > sizeof(raw) ||
	    (pin = km_secure_alloc(2 * nbytes + 1)) == NULL) {
		return NULL;
	}
	if (km_random(raw, nbytes) != 0) {
		km_secret_free(pin, 2 * nbytes + 1);
		km_secret_wipe(raw, sizeof(raw));
		return NULL;
	}
	km_hex(raw, nbytes, pin);
	km_secret_wipe(raw, sizeof(raw));
	return pin;
}

/* A uniformly random 6-digit PIN (rejection sampling), in secure memory. */
static char *
kmc_dev_user_pin(void)
{
	uint32_t v = 0;
	char *pin;

	if ((pin = km_secure_alloc(8)) == NULL) {
		return NULL;
	}
	do {
		if (km_random(&v, sizeof(v)) != 0) {
			km_secret_free(pin, 8);
			return NULL;
		}
	} while (v >= 4294000000u); /* 4294 * 10^6: no modulo bias */
	snprintf(pin, 8, "%06u", v % 1000000u);
	km_secret_wipe(&v, sizeof(v));
	return pin;
}

/* A socket listening on 127.0.0.1:@port (close-on-exec); -1 when the port
 * is taken, -2 when no socket can be made. */
static int
kmc_dev_listen_fd(int port)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return -2;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 1) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 2N distinct free loopback ports (see KMC_DEV_PORT_LO): each node's
 * mesh port, then its Raft port. */
static int
kmc_dev_pick_ports(kmc_dev *d)
{
	int fds[2 * KMC_DEV_MAX_NODES];
	unsigned i, tries = 0, got = 0;
	int r = KM_ERR_BUSY;

	while (got < 2 * d->nnodes && tries < 4000) {
		uint16_t rnd;
		int fd, port;

		tries++;
		if (km_random(&rnd, sizeof(rnd)) != 0) {
			r = KM_ERR_CRYPTO;
			goto out;
		}
		port = KMC_DEV_PORT_LO +
		    rnd % (KMC_DEV_PORT_HI - KMC_DEV_PORT_LO);
		/* held open until all are chosen, so they are distinct */
		if ((fd = kmc_dev_listen_fd(port)) == -2) {
			r = KM_ERR_IO;
			goto out;
		}
		if (fd < 0) {
			continue;
		}
		fds[got] = fd;
		if (got < d->nnodes) {
			d->nodes[got].port = port;
		} else {
			d->nodes[got - d->nnodes].raft_port = port;
		}
		got++;
	}
	r = got == 2 * d->nnodes ? 0 : KM_ERR_BUSY;
out:
	for (i = 0; i < got; i++) {
		close(fds[i]);
	}
	return r;
}

static int
kmc_dev_write_text(const char *path, const char *text, mode_t mode)
{
	return km_write_file_excl(path, text, strlen(text), mode);
}

static int
kmc_dev_write_node_conf(kmc_dev *d, kmc_dev_node *n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	unsigned j;
	int r;

	if ((f = open_memstream(&buf, &len)) == NULL) {
		return KM_ERR_ALLOC;
	}
	fprintf(f,
	    "# keymeshd configuration for %s of the dev mesh in %s\n"
	    "# (made by keymesh dev up).  Relative paths are relative to\n"
	    "# this file.\n\n"
	    "[node]\n"
	    "name = %s\n"
	    "listen = tls+tcp://127.0.0.1:%d\n"
	    "state_dir = state\n"
	    "workers = 2\n"
	    "log_level = info\n\n"
	    "[tls]\n"
	    "ca = ../ca/ca.crt\n"
	    "crl = ../ca/crl.pem\n"
	    "cert = ../ca/certs/%s.crt\n"
	    "key = ../ca/private/%s.key\n\n"
	    "[token]\n"
	    "module = %s\n"
	    "label = keymesh-%s\n"
	    "pin_file = token.pin\n"
	    "softhsm2_conf = softhsm2.conf\n\n"
	    "[mesh]\n",
	    n->name, d->dir, n->name, n->port, n->name, n->name,
	    KM_SOFTHSM_MODULE, n->name);
	for (j = 0; j < d->nnodes; j++) {
		if (&d->nodes[j] != n) {
			fprintf(f, "peer = %s tls+tcp://127.0.0.1:%d\n",
			    d->nodes[j].name, d->nodes[j].port);
		}
	}
	/* the catalog on Raft: every node, the same ids everywhere */
	fprintf(f, "\n[raft]\n");
	for (j = 0; j < d->nnodes; j++) {
		fprintf(f, "member = %u %s 127.0.0.1:%d\n", j + 1,
		    d->nodes[j].name, d->nodes[j].raft_port);
	}
	if (fclose(f) != 0) {
		free(buf);
		return KM_ERR_IO;
	}
	r = km_write_file_atomic(n->conf, buf, len, 0600);
	free(buf);
	return r;
}

static int
kmc_dev_write_client_conf(kmc_dev *d)
{
	char path[KMC_DEV_PATH], *buf = NULL;
	size_t len = 0;
	FILE *f;
	unsigned j;
	int r;

	if ((r = kmc_dev_path(path, sizeof(path), "%s/client.conf",
		 d->dir)) != 0) {
		return r;
	}
	if ((f = open_memstream(&buf, &len)) == NULL) {
		return KM_ERR_ALLOC;
	}
	fprintf(f,
	    "# Client config for the dev mesh in %s (made by keymesh dev\n"
	    "# up), read by the PKCS#11 module and the admin CLI through\n"
	    "# KEYMESH_CONF.  Relative paths are relative to this file.\n\n"
	    "[mesh]\n",
	    d->dir);
	for (j = 0; j < d->nnodes; j++) {
		fprintf(f, "node = %s tls+tcp://127.0.0.1:%d\n",
		    d->nodes[j].name, d->nodes[j].port);
	}
	fprintf(f,
	    "threshold = %u\n\n"
	    "[tls]\n"
	    "ca = ca/ca.crt\n"
	    "crl = ca/crl.pem\n"
	    "cert = ca/certs/client.crt\n"
	    "key = ca/private/client.key\n\n"
	    "[admin]\n"
	    "cert = ca/certs/admin.crt\n"
	    "key = ca/private/admin.key\n"
	    "ca_dir = ca\n",
	    d->threshold);
	if (fclose(f) != 0) {
		free(buf);
		return KM_ERR_IO;
	}
	r = km_write_file_atomic(path, buf, len, 0644);
	free(buf);
	return r;
}

/*
 * Run a child to completion: @argv with @env_name=@env_value set, its
 * stdout sent to our stderr (our stdout carries only shell lines).
 * Returns its exit status, or -1 if it could not run.
 */
static int
kmc_dev_run(const char *prog, char *const argv[], const char *env_name,
    const char *env_value, bool quiet)
{
	pid_t pid;
	int status;

	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid == 0) {
		if (env_name != NULL && setenv(env_name, env_value, 1) != 0) {
			_exit(127);
		}
		if (quiet) {
			int fd = open("/dev/null", O_WRONLY);
			if (fd >= 0) {
				dup2(fd, 1);
				close(fd);
			}
		} else {
			dup2(2, 1);
		}
		execv(prog, argv);
		dprintf(2, "keymesh: cannot run %s: %s\n", prog,
		    strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	if (WIFEXITED(status)) {
		return WEXITSTATUS(status);
	}
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/*
 * Each node's SoftHSM token: own SOFTHSM2_CONF and token directory, random
 * SO and user PINs (the user PIN kept in token.pin for the daemon).  The
 * N softhsm2-util runs go in parallel.
 */
static int
kmc_dev_make_tokens(kmc_dev *d, const char *util)
{
	pid_t pids[KMC_DEV_MAX_NODES];
	unsigned i, started = 0;
	int r = 0, status;

	for (i = 0; i < d->nnodes; i++) {
		kmc_dev_node *n = &d->nodes[i];
		char path[KMC_DEV_PATH], tokens[KMC_DEV_PATH], conf[8192];
		char label[32];
		char *so = NULL, *pin = NULL;
		pid_t pid;

		if (kmc_dev_path(tokens, sizeof(tokens), "%s/tokens",
			n->dir) != 0 ||
		    kmc_dev_path(conf, sizeof(conf),
			"# SoftHSMv2 for %s of a keymesh dev mesh\n"
			"directories.tokendir = %s\n"
			"objectstore.backend = file\n"
			"log.level = ERROR\n"
			"slots.removable = false\n",
			n->name, tokens) != 0 ||
		    kmc_dev_path(path, sizeof(path), "%s/softhsm2.conf",
			n->dir) != 0) {
			r = kmc_fail(d->cmd, "the path %s is too long",
			    n->dir);
			goto out;
		}
		if (km_mkdir_p(tokens, 0700) != 0 ||
		    kmc_dev_write_text(path, conf, 0644) != 0) {
			r = kmc_fail(d->cmd, "cannot write %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if ((so = kmc_dev_hex_pin(8)) == NULL ||
		    (pin = kmc_dev_hex_pin(8)) == NULL) {
			km_secure_strfree(so);
			r = kmc_fail(d->cmd, "cannot make random PINs");
			goto out;
		}
		snprintf(label, sizeof(label), "keymesh-%s", n->name);
		(void)kmc_dev_path(tokens, sizeof(tokens), "%s/token.pin",
		    n->dir);
		if (km_write_file_excl(tokens, pin, strlen(pin), 0600) != 0) {
			km_secure_strfree(so);
			km_secure_strfree(pin);
			r = kmc_fail(d->cmd, "cannot write %s", tokens);
			goto out;
		}
		/*
		 * XXX: softhsm2-util takes the PINs only as arguments, so they
		 * are briefly visible in ps; acceptable for a dev mesh, whose
		 * token PIN sits in a file anyway.
		 */
		if ((pid = fork()) == 0) {
			int fd = open("/dev/null", O_WRONLY);
			if (fd >= 0) {
				dup2(fd, 1);
			}
			setenv("SOFTHSM2_CONF", path, 1);
			execl(util, util, "--init-token", "--free", "--label",
			    label, "--so-pin", so, "--pin", pin, (char *)NULL);
			dprintf(2, "keymesh: cannot run %s: %s\n", util,
			    strerror(errno));
			_exit(127);
		}
		km_secure_strfree(so);
		km_secure_strfree(pin);
		if (pid < 0) {
			r = kmc_fail(d->cmd, "cannot fork: %s",
			    strerror(errno));
			goto out;
		}
		pids[started++] = pid;
	}
out:
	for (i = 0; i < started; i++) {
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
		}
		if (r == 0 &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			r = kmc_fail(d->cmd,
			    "softhsm2-util --init-token failed for %s",
			    d->nodes[i].name);
		}
	}
	return r;
}

/* An empty directory (what mktemp -d gives) may become a mesh. */
static bool
kmc_dev_dir_empty(const char *dir)
{
	DIR *dp;
	struct dirent *e;
	bool empty = true;

	if ((dp = opendir(dir)) == NULL) {
		return false;
	}
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0) {
			empty = false;
			break;
		}
	}
	closedir(dp);
	return empty;
}

/* Refuse a directory with a mesh in it, or any other files. */
static int
kmc_dev_check_target(const char *cmd, const char *dir)
{
	char marker[KMC_DEV_PATH];
	struct stat st;
	kmc_dev *d;
	unsigned i;

	if (stat(dir, &st) != 0) {
		return errno == ENOENT ? 0 : kmc_fail(cmd, "%s: %s", dir,
						   strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		return kmc_fail(cmd, "%s exists and is not a directory", dir);
	}
	if (kmc_dev_path(marker, sizeof(marker), "%s/%s", dir,
		KMC_DEV_MARKER) != 0) {
		return kmc_fail(cmd, "the path %s is too long", dir);
	}
	if (stat(marker, &st) == 0) {
		int rc = 1;

		if ((d = calloc(1, sizeof(*d))) == NULL) {
			return kmc_fail(cmd, "out of memory");
		}
		/* kmc_dev_open prints its own line if the marker is bad */
		if (kmc_dev_open(d, cmd, dir) != 0) {
			goto out;
		}
		for (i = 0; i < d->nnodes; i++) {
			pid_t pid = kmc_dev_node_running(&d->nodes[i]);
			if (pid > 0) {
				rc = kmc_fail(cmd,
				    "%s already holds a running dev mesh "
				    "(%s is pid %ld); stop it with keymesh "
				    "dev down --dir %s",
				    dir, d->nodes[i].name, (long)pid, dir);
				goto out;
			}
		}
		rc = kmc_fail(cmd,
		    "%s already holds a stopped dev mesh; start it with "
		    "keymesh dev start --dir %s, or remove the directory",
		    dir, dir);
	out:
		free(d);
		return rc;
	}
	if (!kmc_dev_dir_empty(dir)) {
		return kmc_fail(cmd,
		    "%s is not empty; give a new or empty directory", dir);
	}
	return 0;
}

/* Starts @count nodes in parallel and waits for all; on any failure prints
 * one line per failed node, stops the rest and returns 1 -- or 2 when
 * @may_repick and every failure was a port taken ("address in use"), so
 * that dev up can try again on new ports. */
static int
kmc_dev_start_nodes(kmc_dev *d, kmc_dev_node **nodes, unsigned count,
    const char *daemon, bool may_repick)
{
	uint64_t t0 = kmc_dev_ms();
	unsigned i, failed, clashed = 0;

	for (i = 0; i < count; i++) {
		nodes[i]->why[0] = '\0';
		if (kmc_dev_spawn(nodes[i], daemon) != 0) {
			nodes[i]->state = -1;
		}
	}
	failed = kmc_dev_wait_ready(nodes, count, KMC_DEV_READY_MS);
	for (i = 0; i < count; i++) {
		if (nodes[i]->state != 1 &&
		    strstr(nodes[i]->why, "address in use") != NULL) {
			clashed++;
		}
	}
	/* every failure a port taken since it was picked: worth new ports */
	may_repick = may_repick && failed > 0 && clashed == failed;
	for (i = 0; i < count; i++) {
		kmc_dev_node *n = nodes[i];
		if (n->state == 1) {
			fprintf(stderr, "%s ready at %s (pid %ld, %.1f s)\n",
			    n->name, n->line, (long)n->pid,
			    (double)(kmc_dev_ms() - t0) / 1000.0);
		} else if (may_repick) {
			fprintf(stderr, "%s did not start: %s\n", n->name,
			    n->why);
		} else {
			(void)kmc_fail(d->cmd, "%s failed to start: %s",
			    n->name, n->why[0] ? n->why : "unknown error");
		}
	}
	if (failed == 0) {
		return 0;
	}
	/* all or nothing: stop what did start (and reap what did not) */
	kmc_dev_terminate(nodes, count, SIGTERM, KMC_DEV_STOP_MS, false);
	return may_repick ? 2 : 1;
}

/* Remove @path and everything under it (no symbolic link is followed). */
static int
kmc_dev_rm_tree(const char *path)
{
	char sub[KMC_DEV_PATH];
	struct dirent *e;
	struct stat sb;
	DIR *dir;
	int r = 0;

	if (lstat(path, &sb) != 0) {
		return errno == ENOENT ? 0 : -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		return unlink(path);
	}
	if ((dir = opendir(path)) == NULL) {
		return -1;
	}
	while (r == 0 && (e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0) {
			continue;
		}
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path,
			e->d_name) >= sizeof(sub)) {
			r = -1;
			break;
		}
		r = kmc_dev_rm_tree(sub);
	}
	closedir(dir);
	return r == 0 ? rmdir(path) : r;
}

static int
kmc_dev_up(int argc, char **argv)
{
	static const char *const names[] = { "dir", "nodes", "threshold" };
	const char *cmd = "dev up";
	const char *v[3];
	kmc_dev *d = NULL;
	kmc_dev_node *all[KMC_DEV_MAX_NODES];
	char daemon[KMC_DEV_PATH], module[KMC_DEV_PATH], util[KMC_DEV_PATH];
	char path[KMC_DEV_PATH], cadir[KMC_DEV_PATH], marker[256];
	char *pin = NULL, *so_pin = NULL, *end;
	unsigned long nodes, threshold;
	uint64_t t0 = kmc_dev_ms();
	unsigned i, attempt;
	int taken[2] = { -1, -1 }; /* test hook only */
	bool started = false;
	int r, rc = 1;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 3)) != 0) {
		return r;
	}
	if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
		return kmc_usage(cmd, "--dir, --nodes and --threshold are "
				      "required");
	}
	nodes = strtoul(v[1], &end, 10);
	if (*v[1] == '\0' || *end != '\0' || nodes < 1 ||
	    nodes > KMC_DEV_MAX_NODES) {
		return kmc_fail(cmd, "invalid --nodes '%s': use 1..%d", v[1],
		    KMC_DEV_MAX_NODES);
	}
	threshold = strtoul(v[2], &end, 10);
	if (*v[2] == '\0' || *end != '\0' || threshold < 1 ||
	    threshold > nodes) {
		return kmc_fail(cmd, "invalid --threshold '%s': use 1..%lu",
		    v[2], nodes);
	}
	if ((r = kmc_dev_check_target(cmd, v[0])) != 0) {
		return r;
	}
	if (KM_SOFTHSM_MODULE[0] == '\0' ||
	    access(KM_SOFTHSM_MODULE, R_OK) != 0) {
		return kmc_fail(cmd,
		    "SoftHSMv2 is not installed (no libsofthsm2.so; "
		    "configure --with-softhsm)");
	}
	if (kmc_dev_softhsm_util(util, sizeof(util)) != 0) {
		return kmc_fail(cmd, "softhsm2-util is not in PATH");
	}
	if ((r = kmc_dev_find_daemon(cmd, daemon, sizeof(daemon))) != 0) {
		return r;
	}
	if (kmc_dev_module_path(module, sizeof(module)) != 0) {
		return kmc_fail(cmd, "the module path is too long");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return kmc_fail(cmd, "out of memory");
	}
	d->cmd = cmd;
	d->nnodes = (unsigned)nodes;
	d->threshold = (unsigned)threshold;
	if (km_mkdir_p(v[0], 0700) != 0 || realpath(v[0], d->dir) == NULL) {
		rc = kmc_fail(cmd, "cannot create %s: %s", v[0],
		    strerror(errno));
		goto out;
	}
	/* leave room for "/nodeNN/keymeshd.conf" and the like */
	if (strlen(d->dir) > KMC_DEV_PATH - 128) {
		rc = kmc_fail(cmd, "the path %s is too long", d->dir);
		goto out;
	}
	fprintf(stderr, "creating a %u-node dev mesh (threshold %u) in %s\n",
	    d->nnodes, d->threshold, d->dir);

	/* the marker first, so dev down works after a failure below */
	snprintf(path, sizeof(path), "%s/%s", d->dir, KMC_DEV_MARKER);
	snprintf(marker, sizeof(marker),
	    "# a keymesh dev mesh, made by keymesh dev up\n"
	    "[dev]\nnodes = %u\nthreshold = %u\n",
	    d->nnodes, d->threshold);
	if (kmc_dev_write_text(path, marker, 0644) != 0) {
		rc = kmc_fail(cmd, "cannot write %s", path);
		goto out;
	}

	/* the mesh CA and every identity, in process */
	snprintf(cadir, sizeof(cadir), "%s/ca", d->dir);
	if (km_mkdir_p(cadir, 0700) != 0) {
		rc = kmc_fail(cmd, "cannot create %s", cadir);
		goto out;
	}
	if ((r = km_pki_ca_init(cadir, 0)) != 0) {
		rc = kmc_fail(cmd, "cannot create the mesh CA in %s: %s",
		    cadir, km_strerror(r));
		goto out;
	}
	for (i = 0; i < d->nnodes; i++) {
		kmc_dev_node_init(d, i);
		all[i] = &d->nodes[i];
		if ((r = km_pki_cert_issue(cadir, KM_ROLE_NODE,
			 d->nodes[i].name, 0)) != 0) {
			rc = kmc_fail(cmd, "cannot issue %s's certificate: %s",
			    d->nodes[i].name, km_strerror(r));
			goto out;
		}
		if (km_mkdir_p(d->nodes[i].dir, 0700) != 0) {
			rc = kmc_fail(cmd, "cannot create %s",
			    d->nodes[i].dir);
			goto out;
		}
	}
	if ((r = km_pki_cert_issue(cadir, KM_ROLE_CLIENT, "client", 0)) !=
		0 ||
	    (r = km_pki_cert_issue(cadir, KM_ROLE_ADMIN, "admin", 0)) != 0) {
		rc = kmc_fail(cmd, "cannot issue the client and admin "
				   "certificates: %s",
		    km_strerror(r));
		goto out;
	}
	fprintf(stderr, "mesh CA and %u identities in %s (%.1f s)\n",
	    d->nnodes + 2, cadir, (double)(kmc_dev_ms() - t0) / 1000.0);

	if ((rc = kmc_dev_make_tokens(d, util)) != 0) {
		goto out;
	}
	fprintf(stderr, "%u SoftHSM tokens initialised (%.1f s)\n",
	    d->nnodes, (double)(kmc_dev_ms() - t0) / 1000.0);
	rc = 1;

	/*
	 * The ports are free when picked, but another program (another dev
	 * mesh, say) may bind one before its node does.  Then every node
	 * is stopped, the nodes' new state is removed (its Raft log names
	 * the old addresses) and the mesh starts again on new ports.
	 */
	for (attempt = 1;; attempt++) {
		if (kmc_dev_pick_ports(d) != 0) {
			rc = kmc_fail(cmd,
			    "cannot find %u free loopback ports",
			    2 * d->nnodes);
			goto out;
		}
		for (i = 0; i < d->nnodes; i++) {
			if (kmc_dev_write_node_conf(d, &d->nodes[i]) != 0) {
				rc = kmc_fail(cmd, "cannot write %s",
				    d->nodes[i].conf);
				goto out;
			}
		}
		if (kmc_dev_write_client_conf(d) != 0) {
			rc = kmc_fail(cmd, "cannot write %s/client.conf",
			    d->dir);
			goto out;
		}
#ifdef KM_TEST_HOOKS
		/* the clash above, on purpose: node1's mesh port and the last
		 * node's Raft port are taken before the first start */
		if (attempt == 1 &&
		    getenv("KEYMESH_TEST_DEV_TAKE_PORTS") != NULL) {
			taken[0] = kmc_dev_listen_fd(d->nodes[0].port);
			taken[1] = kmc_dev_listen_fd(
			    d->nodes[d->nnodes - 1].raft_port);
		}
#endif
		rc = kmc_dev_start_nodes(d, all, d->nnodes, daemon,
		    attempt < KMC_DEV_PORT_ATTEMPTS);
		for (i = 0; i < 2; i++) {
			if (taken[i] >= 0) {
				close(taken[i]);
				taken[i] = -1;
			}
		}
		if (rc != 2) {
			break;
		}
		for (i = 0; i < d->nnodes; i++) {
			snprintf(path, sizeof(path), "%.3900s/state",
			    d->nodes[i].dir);
			if (kmc_dev_rm_tree(path) != 0) {
				rc = kmc_fail(cmd, "cannot remove %s: %s",
				    path, strerror(errno));
				goto out;
			}
		}
		fprintf(stderr, "a port was taken after it was picked: "
				"starting again on new ports (attempt %u of "
				"%u)\n",
		    attempt + 1, KMC_DEV_PORT_ATTEMPTS);
	}
	if (rc != 0) {
		goto out;
	}
	started = true;
	rc = 1;

	/*
	 * The partition's user and SO PINs, set on every node by the admin
	 * command (keymesh pin init [--so], which reads KEYMESH_CONF), run as
	 * a child so that its output stays off our stdout.
	 */
	if ((pin = kmc_dev_user_pin()) == NULL ||
	    (so_pin = kmc_dev_hex_pin(8)) == NULL) {
		rc = kmc_fail(cmd, "cannot make random PINs");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/user.pin", d->dir);
	if (km_write_file_excl(path, pin, strlen(pin), 0600) != 0) {
		rc = kmc_fail(cmd, "cannot write %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/so.pin", d->dir);
	if (km_write_file_excl(path, so_pin, strlen(so_pin), 0600) != 0) {
		rc = kmc_fail(cmd, "cannot write %s", path);
		goto out;
	}
	{
		char exe[] = "/proc/self/exe", g[] = "pin", vb[] = "init";
		char opt[] = "--pin", so[] = "--so";
		char *args[] = { exe, g, vb, opt, pin, NULL };
		char *so_args[] = { exe, g, vb, so, opt, so_pin, NULL };

		snprintf(path, sizeof(path), "%s/client.conf", d->dir);
		r = kmc_dev_run("/proc/self/exe", args, "KEYMESH_CONF", path,
		    false);
		if (r == 0) {
			r = kmc_dev_run("/proc/self/exe", so_args,
			    "KEYMESH_CONF", path, false);
		}
		if (r != 0) {
			rc = kmc_fail(cmd,
			    "setting the PINs failed (keymesh pin init "
			    "exited %d); the mesh is stopped",
			    r);
			goto out;
		}
	}
	fprintf(stderr,
	    "user and SO PINs set on all %u nodes (in %s/user.pin and "
	    "so.pin)\n",
	    d->nnodes, d->dir);

	if (kmc_dev_print_env(d, module, pin, so_pin) != 0) {
		rc = kmc_fail(cmd, "cannot write to standard output");
		goto out;
	}
	fprintf(stderr, "dev mesh up: %u nodes, threshold %u, in %.1f s\n",
	    d->nnodes, d->threshold, (double)(kmc_dev_ms() - t0) / 1000.0);
	if (access(module, R_OK) != 0) {
		fprintf(stderr, "note: the PKCS#11 module %s is not there "
				"yet\n",
		    module);
	}
	started = false;
	rc = 0;
out:
	if (started) {
		kmc_dev_terminate(all, d->nnodes, SIGTERM, KMC_DEV_STOP_MS,
		    false);
	}
	km_secure_strfree(pin);
	km_secure_strfree(so_pin);
	free(d);
	return rc;
}

/* ---- dev stop | kill | start | down ---- */

/* dev start --dir DIR: start every stopped node, in parallel. */
static int
kmc_dev_start_all(kmc_dev *d)
{
	kmc_dev_node *todo[KMC_DEV_MAX_NODES];
	char daemon[KMC_DEV_PATH];
	unsigned i, count = 0;
	int rc;

	for (i = 0; i < d->nnodes; i++) {
		kmc_dev_node *n = &d->nodes[i];
		if ((n->pid = kmc_dev_node_running(n)) != 0) {
			fprintf(stderr, "%s is already running (pid %ld)\n",
			    n->name, (long)n->pid);
		} else {
			todo[count++] = n;
		}
	}
	if (count == 0) {
		return kmc_fail(d->cmd, "all %u nodes are already running",
		    d->nnodes);
	}
	if ((rc = kmc_dev_find_daemon(d->cmd, daemon, sizeof(daemon))) != 0) {
		return rc;
	}
	return kmc_dev_start_nodes(d, todo, count, daemon, false);
}

static int
kmc_dev_node_cmd(int argc, char **argv, const char *cmd, int sig)
{
	static const char *const names[] = { "dir", "node" };
	const char *v[2];
	kmc_dev *d;
	kmc_dev_node *n;
	int r, rc = 1;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 2)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage(cmd, "--dir is required");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return kmc_fail(cmd, "out of memory");
	}
	if ((rc = kmc_dev_open(d, cmd, v[0])) != 0) {
		goto out;
	}
	if (sig == 0 && v[1] == NULL) {
		/* dev start without --node: every stopped node */
		rc = kmc_dev_start_all(d);
		goto out;
	}
	if ((n = kmc_dev_pick(d, v[1], &rc)) == NULL) {
		goto out;
	}
	rc = 1;
	n->pid = kmc_dev_node_running(n);
	if (sig != 0) {
		/* stop or kill */
		if (n->pid == 0) {
			rc = kmc_fail(cmd, "%s is not running", n->name);
			goto out;
		}
		kmc_dev_terminate(&n, 1, sig, KMC_DEV_STOP_MS, true);
		rc = n->pid == 0 ? 0 : 1;
	} else {
		char daemon[KMC_DEV_PATH];

		if (n->pid != 0) {
			rc = kmc_fail(cmd, "%s is already running (pid %ld)",
			    n->name, (long)n->pid);
			goto out;
		}
		if ((rc = kmc_dev_find_daemon(cmd, daemon, sizeof(daemon))) !=
		    0) {
			goto out;
		}
		rc = kmc_dev_start_nodes(d, &n, 1, daemon, false);
	}
out:
	free(d);
	return rc;
}

static int
kmc_dev_stop(int argc, char **argv)
{
	return kmc_dev_node_cmd(argc, argv, "dev stop", SIGTERM);
}

static int
kmc_dev_kill(int argc, char **argv)
{
	return kmc_dev_node_cmd(argc, argv, "dev kill", SIGKILL);
}

static int
kmc_dev_start(int argc, char **argv)
{
	return kmc_dev_node_cmd(argc, argv, "dev start", 0);
}

static int
kmc_dev_down(int argc, char **argv)
{
	static const char *const names[] = { "dir" };
	const char *cmd = "dev down";
	const char *v[1];
	kmc_dev *d;
	kmc_dev_node *run[KMC_DEV_MAX_NODES];
	unsigned i, count = 0;
	int r, rc;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage(cmd, "--dir is required");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return kmc_fail(cmd, "out of memory");
	}
	if ((rc = kmc_dev_open(d, cmd, v[0])) != 0) {
		goto out;
	}
	for (i = 0; i < d->nnodes; i++) {
		kmc_dev_node *n = &d->nodes[i];
		if ((n->pid = kmc_dev_node_running(n)) != 0) {
			run[count++] = n;
		} else {
			fprintf(stderr, "%s was not running\n", n->name);
		}
	}
	kmc_dev_terminate(run, count, SIGTERM, KMC_DEV_STOP_MS, true);
	rc = 0;
	for (i = 0; i < count; i++) {
		if (run[i]->pid != 0) {
			rc = 1;
		}
	}
	if (rc != 0) {
		(void)kmc_fail(cmd, "some nodes could not be stopped");
	}
out:
	free(d);
	return rc;
}

/* dev env --dir DIR: the export lines of dev up again, for a new shell. */
static int
kmc_dev_env(int argc, char **argv)
{
	static const char *const names[] = { "dir" };
	const char *cmd = "dev env";
	const char *v[1];
	char module[KMC_DEV_PATH], path[KMC_DEV_PATH];
	uint8_t *pin = NULL, *so_pin = NULL;
	size_t len = 0, so_len = 0;
	kmc_dev *d;
	int r, rc;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage(cmd, "--dir is required");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return kmc_fail(cmd, "out of memory");
	}
	if ((rc = kmc_dev_open(d, cmd, v[0])) != 0) {
		goto out;
	}
	rc = 1;
	snprintf(path, sizeof(path), "%s/user.pin", d->dir);
	if (km_read_file(path, &pin, &len, 64) != 0 || len == 0) {
		rc = kmc_fail(cmd, "cannot read %s (did dev up finish?)",
		    path);
		goto out;
	}
	while (len > 0 && (pin[len - 1] == '\n' || pin[len - 1] == '\r')) {
		pin[--len] = '\0';
	}
	/* a dev mesh made before SO PINs has no so.pin: no line for it */
	snprintf(path, sizeof(path), "%s/so.pin", d->dir);
	if ((r = km_read_file(path, &so_pin, &so_len, 64)) != 0 &&
	    r != KM_ERR_NOT_FOUND) {
		rc = kmc_fail(cmd, "cannot read %s", path);
		goto out;
	}
	while (so_len > 0 &&
	    (so_pin[so_len - 1] == '\n' || so_pin[so_len - 1] == '\r')) {
		so_pin[--so_len] = '\0';
	}
	if (kmc_dev_module_path(module, sizeof(module)) != 0 ||
	    kmc_dev_print_env(d, module, (const char *)pin,
		(const char *)so_pin) != 0) {
		rc = kmc_fail(cmd, "cannot write to standard output");
		goto out;
	}
	rc = 0;
out:
	if (pin != NULL) {
		km_secret_wipe(pin, len);
		free(pin);
	}
	if (so_pin != NULL) {
		km_secret_wipe(so_pin, so_len);
		free(so_pin);
	}
	free(d);
	return rc;
}

/* dev status --dir DIR: one line per node, running or stopped. */
static int
kmc_dev_status(int argc, char **argv)
{
	static const char *const names[] = { "dir" };
	const char *cmd = "dev status";
	const char *v[1];
	kmc_dev *d;
	unsigned i, running = 0;
	int r, rc;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage(cmd, "--dir is required");
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return kmc_fail(cmd, "out of memory");
	}
	if ((rc = kmc_dev_open(d, cmd, v[0])) != 0) {
		goto out;
	}
	for (i = 0; i < d->nnodes; i++) {
		kmc_dev_node *n = &d->nodes[i];
		char err[256];
		const char *url = NULL;
		km_conf c;
		bool have = km_conf_load(n->conf, &c, err, sizeof(err)) == 0;

		if (have) {
			url = km_conf_get(&c, "node", "listen");
		}
		n->pid = kmc_dev_node_running(n);
		if (n->pid != 0) {
			running++;
			printf("%-8s running  pid %-8ld %s\n", n->name,
			    (long)n->pid, url != NULL ? url : "?");
		} else {
			printf("%-8s stopped               %s\n", n->name,
			    url != NULL ? url : "?");
		}
		if (have) {
			km_conf_free(&c);
		}
	}
	printf("%u of %u nodes running, threshold %u, in %s\n", running,
	    d->nnodes, d->threshold, d->dir);
	rc = 0;
out:
	free(d);
	return rc;
}

const kmc_command kmc_dev_commands[] = {
	{ "dev", "up", "--dir DIR --nodes N --threshold K",
	    "create and start a local N-node mesh; prints export lines for "
	    "eval",
	    kmc_dev_up },
	{ "dev", "down", "--dir DIR", "stop every node of a dev mesh",
	    kmc_dev_down },
	{ "dev", "stop", "--dir DIR --node I",
	    "stop nodeI (SIGTERM, SIGKILL after 5 s)", kmc_dev_stop },
	{ "dev", "start", "--dir DIR [--node I]",
	    "start nodeI (or every stopped node) and wait until ready",
	    kmc_dev_start },
	{ "dev", "kill", "--dir DIR --node I",
	    "kill nodeI with SIGKILL (crash tests)", kmc_dev_kill },
	{ "dev", "status", "--dir DIR",
	    "show which nodes of a dev mesh run, with pid and URL",
	    kmc_dev_status },
	{ "dev", "env", "--dir DIR",
	    "print the export lines of dev up again (for eval)",
	    kmc_dev_env },
	{ NULL, NULL, NULL, NULL, NULL },
};
