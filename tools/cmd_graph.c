/*
 * keymesh graph --format dot|svg|png [-o FILE] [--conf FILE], and the
 * trust-graph table that keymesh status prints after its node lines.
 *
 * The graph comes from the first node that answers a graph request (each
 * daemon keeps the latest verified beacon of every node, docs/trust.md).
 * DOT is written by keymesh itself; svg and png by Graphviz's dot, run
 * with posix_spawn (never a shell) and fed the DOT on a pipe.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keymesh.h"
#include "mesh/client.h"
#include "mesh/rpc.h"
#include "proto/proto.h"
#include "trust/graph.h"
#include "util/err.h"
#include "util/util.h"

extern char **environ;

/* The graph as the first answering node sees it. */
static int
kmc_graph_fetch(km_mesh *m, long only, int timeout_ms, km_trust_view *v,
    char *err, size_t errlen)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1] = "";
	km_buf req, rep;
	size_t i;
	int r = KM_ERR_QUORUM;

	snprintf(err, errlen, "no node is reachable");
	km_buf_init(&req);
	km_buf_init(&rep);
	if ((r = km_rpc_request(&req, KM_MSG_GRAPH, NULL, 0, NULL)) != 0) {
		goto out;
	}
	r = KM_ERR_QUORUM;
	for (i = 0; i < km_mesh_count(m); i++) {
		if (only >= 0 && i != (size_t)only) {
			continue;
		}
		/* a node that is down would cost a whole timeout */
		if (!km_net_client_connected(km_mesh_client(m, i))) {
			snprintf(err, errlen, "%s: not connected",
			    km_mesh_name(m, i));
			continue;
		}
		r = km_rpc_call(km_mesh_client(m, i), &req, timeout_ms, &rep,
		    msg, sizeof(msg));
		if (r != 0) {
			snprintf(err, errlen, "%s: %s", km_mesh_name(m, i),
			    msg[0] ? msg : km_strerror(r));
			continue;
		}
		if ((r = km_trust_view_decode(&rep, v)) != 0) {
			snprintf(err, errlen, "%s sent a malformed graph: %s",
			    km_mesh_name(m, i), km_strerror(r));
			continue;
		}
		r = 0;
		break;
	}
out:
	km_buf_free(&rep);
	km_buf_free(&req);
	return r;
}

static void
kmc_graph_rtts(const km_trust_view_node *n, char *out, size_t outlen)
{
	size_t off = 0;
	uint32_t k;
	int w;

	out[0] = '\0';
	for (k = 0; n->have && k < n->beacon.npeers; k++) {
		const km_beacon_peer *p = &n->beacon.peers[k];

		if (p->rtt_us == KM_BEACON_RTT_NONE) {
			w = snprintf(out + off, outlen - off, "%s%s -",
			    off ? ", " : "", p->name);
		} else {
			w = snprintf(out + off, outlen - off, "%s%s %u.%02u",
			    off ? ", " : "", p->name, p->rtt_us / 1000,
			    (p->rtt_us % 1000) / 10);
		}
		if (w < 0 || (size_t)w >= outlen - off) {
			break;
		}
		off += (size_t)w;
	}
	if (off == 0) {
		snprintf(out, outlen, "-");
	}
}

int
kmc_status_graph(km_mesh *m, int timeout_ms)
{
	km_trust_view *v;
	char err[512], rtts[1024], age[32], token[48], load[16];
	size_t i;
	int r;

	if ((v = calloc(1, sizeof(*v))) == NULL) {
		return KM_ERR_ALLOC;
	}
	printf("\n");
	if ((r = kmc_graph_fetch(m, -1, timeout_ms, v, err, sizeof(err)))
	    != 0) {
		printf("trust graph: unavailable (%s)\n", err);
		free(v);
		return r;
	}
	printf("trust graph as seen by %s (no beacon for %u ms: "
	       "unreachable; quarantine and score: the coordinator's "
	       "verdicts)\n",
	    v->observer, v->max_age_ms);
	printf("%-12s %-11s %-5s %-8s %-9s %-28s %-6s %-40s %s\n", "NODE",
	    "STATE", "SCORE", "BEACON", "VERSION", "TOKEN MODEL/SERIAL",
	    "LOAD", "RTT MS", "REASON");
	for (i = 0; i < v->nnodes; i++) {
		const km_trust_view_node *n = &v->nodes[i];

		if (n->have) {
			snprintf(age, sizeof(age), "%llu.%llus",
			    (unsigned long long)(n->age_ms / 1000),
			    (unsigned long long)(n->age_ms % 1000 / 100));
			snprintf(token, sizeof(token), "%s/%s",
			    n->beacon.token_model, n->beacon.token_serial);
			snprintf(load, sizeof(load), "%u.%02u",
			    n->beacon.load_milli / 1000,
			    (n->beacon.load_milli % 1000) / 10);
		} else {
			snprintf(age, sizeof(age), "never");
			snprintf(token, sizeof(token), "-");
			snprintf(load, sizeof(load), "-");
		}
		kmc_graph_rtts(n, rtts, sizeof(rtts));
		printf("%-12s %-11s %-5u %-8s %-9s %-28s %-6s %-40s %s\n",
		    n->name, km_trust_state_name(n->state), n->score, age,
		    n->have ? n->beacon.version : "-", token, load, rtts,
		    n->reason[0] ? n->reason : "-");
	}
	free(v);
	return 0;
}

/* Graphviz's dot on PATH, as an absolute path in @out. */
static bool
kmc_find_dot(char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	const char *p, *end;
	size_t n;

	if (path == NULL || *path == '\0') {
		path = "/usr/bin:/bin";
	}
	for (p = path; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (end == NULL) {
			end = p + strlen(p);
		}
		n = (size_t)(end - p);
		if (n == 0) {
			continue;
		}
		if ((size_t)snprintf(out, outlen, "%.*s/dot", (int)n, p)
		    >= outlen) {
			continue;
		}
		if (access(out, X_OK) == 0) {
			return true;
		}
	}
	return false;
}

static int
kmc_write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return KM_ERR_IO;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Runs dot -T@format with @dot on its stdin and @outfd as its stdout. */
static int
kmc_run_dot(const char *cmd, const char *dotpath, const char *format,
    const km_buf *dot, int outfd)
{
	posix_spawn_file_actions_t fa;
	char targ[16];
	char *argv[4];
	int p[2] = { -1, -1 }, status = 0, r;
	pid_t pid;
	struct sigaction sa, old;

	snprintf(targ, sizeof(targ), "-T%s", format);
	argv[0] = (char *)"dot";
	argv[1] = targ;
	argv[2] = NULL;
	if (pipe(p) != 0) {
		return kmc_fail(
		    cmd, "cannot make a pipe: %s", strerror(errno));
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], STDIN_FILENO);
	if (outfd != STDOUT_FILENO) {
		posix_spawn_file_actions_adddup2(&fa, outfd, STDOUT_FILENO);
	}
	posix_spawn_file_actions_addclose(&fa, p[1]);
	r = posix_spawn(&pid, dotpath, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[0]);
	if (r != 0) {
		close(p[1]);
		return kmc_fail(
		    cmd, "cannot run %s: %s", dotpath, strerror(r));
	}
	/* a dot that exits early must not kill us with SIGPIPE */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old);
	r = kmc_write_all(p[1], dot->data, dot->len);
	close(p[1]);
	sigaction(SIGPIPE, &old, NULL);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			return kmc_fail(
			    cmd, "cannot wait for dot: %s", strerror(errno));
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		return kmc_fail(cmd, "dot -T%s failed (exit status %d)",
		    format, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	if (r != 0) {
		return kmc_fail(cmd, "cannot feed the graph to dot");
	}
	return 0;
}

static int
kmc_graph(int argc, char **argv)
{
	static const char *const names[]
	    = { "conf", "format", "output", "node" };
	const char *cmd = "graph";
	const char *v[4], *format, *output;
	long only = -1;
	char *args[16];
	char dotpath[4096], err[512];
	km_trust_view *view = NULL;
	km_mesh_conf mc;
	km_mesh *m = NULL;
	km_buf dot;
	int i, n = 0, fd = STDOUT_FILENO, r;
	size_t k;

	km_buf_init(&dot);
	/* -o FILE is --output FILE */
	for (i = 0; i < argc; i++) {
		if (n >= (int)KM_ARRAY_LEN(args)) {
			return kmc_usage(cmd, "too many arguments");
		}
		args[n++] = strcmp(argv[i], "-o") == 0 ? (char *)"--output"
		                                       : argv[i];
	}
	if ((r = kmc_opts(cmd, n, args, names, v, 4)) != 0) {
		return r;
	}
	format = v[1] != NULL ? v[1] : "dot";
	output = v[2];
	if (strcmp(format, "dot") != 0 && strcmp(format, "svg") != 0
	    && strcmp(format, "png") != 0) {
		return kmc_usage(
		    cmd, "unknown --format '%s': dot, svg or png", format);
	}
	if (output != NULL && *output == '\0') {
		return kmc_usage(cmd, "-o needs a file name");
	}
	/* what can fail locally fails before the mesh is asked */
	if (strcmp(format, "dot") != 0
	    && !kmc_find_dot(dotpath, sizeof(dotpath))) {
		return kmc_fail(cmd,
		    "Graphviz 'dot' is not on PATH: install graphviz for "
		    "--format %s, or use --format dot",
		    format);
	}
	if (output != NULL
	    && (fd = open(
	            output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644))
	        < 0) {
		return kmc_fail(
		    cmd, "cannot write %s: %s", output, strerror(errno));
	}
	if ((r = km_mesh_conf_load(
	         km_mesh_conf_path(v[0]), &mc, err, sizeof(err)))
	        != 0
	    || (r = km_mesh_open(&mc, KM_ROLE_ADMIN, &m, err, sizeof(err)))
	        != 0) {
		r = kmc_fail(cmd, "%s", err);
		goto out;
	}
	if (v[3] != NULL && (only = km_mesh_find(m, v[3])) < 0) {
		r = kmc_fail(cmd, "no node '%s' in %s", v[3], mc.path);
		goto out;
	}
	for (k = 0; k < km_mesh_count(m); k++) {
		if (only < 0 || k == (size_t)only) {
			(void)km_net_client_wait_connected(
			    km_mesh_client(m, k), (int)mc.connect_ms);
		}
	}
	if ((view = calloc(1, sizeof(*view))) == NULL) {
		r = kmc_fail(cmd, "out of memory");
		goto out;
	}
	if (kmc_graph_fetch(
	        m, only, (int)mc.timeout_ms, view, err, sizeof(err))
	    != 0) {
		r = kmc_fail(cmd, "cannot read the trust graph: %s", err);
		goto out;
	}
	if (km_trust_view_dot(view, &dot) != 0) {
		r = kmc_fail(cmd, "cannot draw the trust graph");
		goto out;
	}
	if (strcmp(format, "dot") == 0) {
		if (kmc_write_all(fd, dot.data, dot.len) != 0) {
			r = kmc_fail(cmd, "cannot write %s: %s",
			    output ? output : "standard output",
			    strerror(errno));
			goto out;
		}
		r = 0;
	} else {
		fflush(stdout);
		r = kmc_run_dot(cmd, dotpath, format, &dot, fd);
	}
out:
	if (output != NULL && fd >= 0) {
		if (close(fd) != 0 && r == 0) {
			r = kmc_fail(cmd, "cannot write %s: %s", output,
			    strerror(errno));
		}
		if (r != 0) {
			/* no half-written picture left behind */
			unlink(output);
		}
	}
	km_mesh_close(m);
	km_buf_free(&dot);
	free(view);
	return r;
}

const kmc_command kmc_graph_commands[] = {
	{ "graph", "",
	    "[--format dot|svg|png] [-o FILE] [--node NAME] [--conf FILE]",
	    "draw the trust graph as the first node that answers (or NAME) "
	    "sees it (Graphviz; standard output without -o)",
	    kmc_graph },
	{ NULL, NULL, NULL, NULL, NULL },
};
