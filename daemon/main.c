/*
 * keymeshd: start-up, readiness, shutdown.
 *
 *   keymeshd -c keymeshd.conf [-f] [--ready-fd N] [--pidfile FILE]
 *
 * Start-up is all or nothing: the config, the TLS identity, the backend
 * token (login with its PIN, wrapping key found or created) and the state
 * store must all be good before the daemon listens; otherwise it exits 1
 * with one line naming what was wrong.  Once listening it writes its bound
 * URL and a newline to the readiness descriptor (--ready-fd, or the pipe
 * the daemonising parent waits on) so that launchers and tests know it is
 * up.  SIGTERM or SIGINT stops it cleanly: no new requests, running ones
 * finish, the store and token are closed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "daemon/evict.h"
#include "daemon/evidence.h"
#include "daemon/kmd.h"
#include "daemon/token.h"
#include "net/net.h"
#include "pki/pki.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

static void
kmd_usage(FILE *f)
{
	fprintf(f, "usage: keymeshd -c FILE [-f] [--ready-fd N] "
		   "[--pidfile FILE]\n"
		   "  -c, --config FILE   configuration (see keymeshd.conf)\n"
		   "  -f, --foreground    do not daemonise\n"
		   "      --ready-fd N    write the bound URL to fd N when "
		   "ready\n"
		   "      --pidfile FILE  write the process id\n");
}

static int
kmd_read_text(const char *path, char **out, const char *what, char *err,
    size_t errlen)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if ((r = km_read_file(path, &data, &len, 1u << 20)) != 0) {
		snprintf(err, errlen, "cannot read the %s %s: %s", what, path,
		    r == KM_ERR_NOT_FOUND ? "no such file" : km_strerror(r));
		return r;
	}
	*out = (char *)data;
	return 0;
}

/* The TLS identity, the CA store for catalog signatures, the peers. */
static int
kmd_open_identity(kmd_state *st, char *err, size_t errlen)
{
	char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
	const km_identity *me;
	unsigned i;
	int r;

	if ((r = kmd_read_text(st->cfg.ca, &ca, "CA certificate", err,
		 errlen)) != 0 ||
	    (st->cfg.crl[0] != '\0' &&
		(r = kmd_read_text(st->cfg.crl, &crl, "CRL", err, errlen)) !=
		    0) ||
	    (r = kmd_read_text(st->cfg.cert, &cert, "certificate", err,
		 errlen)) != 0 ||
	    (r = kmd_read_text(st->cfg.key, &key, "private key", err,
		 errlen)) != 0) {
		goto out;
	}
	if ((r = km_net_creds_new(ca, crl, cert, key, &st->creds)) != 0) {
		snprintf(err, errlen,
		    "the TLS identity in %s / %s is not usable: %s%s",
		    st->cfg.cert, st->cfg.key, km_strerror(r),
		    r == KM_ERR_REVOKED ? " (this node's certificate is "
					  "revoked)" :
					  "");
		goto out;
	}
	me = km_net_creds_identity(st->creds);
	if (me->role != KM_ROLE_NODE || strcmp(me->name, st->cfg.name) != 0) {
		snprintf(err, errlen,
		    "the certificate %s is for %s '%s', not node '%s'",
		    st->cfg.cert, km_role_name(me->role), me->name,
		    st->cfg.name);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if ((r = km_pki_store_load(ca, crl, &st->x509)) != 0) {
		snprintf(err, errlen, "cannot load the CA and CRL: %s",
		    km_strerror(r));
		goto out;
	}
	if ((r = km_pki_load_key(st->cfg.key, &st->idkey)) != 0) {
		snprintf(err, errlen, "cannot load the private key %s: %s",
		    st->cfg.key, km_strerror(r));
		goto out;
	}
	for (i = 0; i < st->cfg.npeers; i++) {
		if (strcmp(st->cfg.peers[i].name, st->cfg.name) == 0) {
			continue;
		}
		r = km_net_client_open(st->creds, st->cfg.peers[i].url,
		    st->cfg.peers[i].name, NULL, &st->peer_clients[i]);
		if (r != 0) {
			snprintf(err, errlen, "cannot set up peer %s at %s: %s",
			    st->cfg.peers[i].name, st->cfg.peers[i].url,
			    km_strerror(r));
			goto out;
		}
	}
	r = 0;
out:
	free(ca);
	free(crl);
	free(cert);
	if (key != NULL) {
		km_secret_wipe(key, strlen(key));
	}
	free(key);
	return r;
}

/* The catalog's Raft log ([raft]), with this node's TLS identity. */
static int
kmd_open_raft(kmd_state *st, char *err, size_t errlen)
{
	char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
	int r;

	if (st->cfg.nraft == 0) {
		km_log_info("KMD-RAFT-OFF", "no [raft] section: the catalog "
					    "is sequenced by its first node");
		return 0;
	}
	if ((r = kmd_read_text(st->cfg.ca, &ca, "CA certificate", err,
		 errlen)) != 0 ||
	    (st->cfg.crl[0] != '\0' &&
		(r = kmd_read_text(st->cfg.crl, &crl, "CRL", err, errlen)) !=
		    0) ||
	    (r = kmd_read_text(st->cfg.cert, &cert, "certificate", err,
		 errlen)) != 0 ||
	    (r = kmd_read_text(st->cfg.key, &key, "private key", err,
		 errlen)) != 0) {
		goto out;
	}
	r = kmd_raft_start(st, ca, crl, cert, key, err, errlen);
out:
	free(ca);
	free(crl);
	free(cert);
	if (key != NULL) {
		km_secret_wipe(key, strlen(key));
	}
	free(key);
	return r;
}

static int
kmd_open_token(kmd_state *st, char *err, size_t errlen)
{
	kmd_token_config tc;
	char why[256] = "";
	int r;

	if (st->cfg.softhsm2_conf[0] != '\0') {
		/* the backend module reads it when it initialises */
		setenv("SOFTHSM2_CONF", st->cfg.softhsm2_conf, 1);
	}
	memset(&tc, 0, sizeof(tc));
	tc.module = st->cfg.token_module;
	tc.label = st->cfg.token_label;
	tc.pin = st->cfg.token_pin;
	r = kmd_token_open(&tc, &st->token, why, sizeof(why));
	/* the PIN is needed only for the login */
	km_secure_strfree(st->cfg.token_pin);
	st->cfg.token_pin = NULL;
	if (r != 0) {
		snprintf(err, errlen, "backend token '%s' (%s): %s",
		    st->cfg.token_label, st->cfg.token_module,
		    why[0] ? why : km_strerror(r));
		return r;
	}
	if (kmd_token_created_key(st->token)) {
		km_log_info("KMD-TOKEN-KEY", "created the share-wrapping key "
					     "in token '%s'",
		    st->cfg.token_label);
	}
	return 0;
}

static volatile sig_atomic_t kmd_stop;

static void
kmd_on_signal(int sig)
{
	(void)sig;
	kmd_stop = 1;
}

static void *
kmd_sync_thread(void *arg)
{
	kmd_state *st = arg;
	unsigned ticks = 0;

	/* catch up at once after a restart, then every 2 s */
	while (!st->stopping) {
		if (ticks % 20 == 0) {
			(void)kmd_catalog_sync(st);
		}
		/* the leader re-shares evicted nodes' keys (evict.c) */
		kmd_evict_tick(st);
		/* evidence held against a former leader (evidence.c) */
		kmd_evidence_tick(st);
		ticks++;
		usleep(100 * 1000);
	}
	return NULL;
}

static int
kmd_write_ready(int fd, const char *url)
{
	char line[300];
	size_t n;

	n = (size_t)snprintf(line, sizeof(line), "%s\n", url);
	if (write(fd, line, n) != (ssize_t)n) {
		return KM_ERR_IO;
	}
	close(fd);
	return 0;
}

/* Daemonise: the parent waits for the child's readiness line, so a start
 * that fails is reported by the parent's exit status. */
static int
kmd_daemonise(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char buf[300];
	ssize_t n;

	if (pipe(p) != 0) {
		return -1;
	}
	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		n = read(p[0], buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			printf("%s", buf);
			_exit(0);
		}
		_exit(1);
	}
	close(p[0]);
	if (setsid() < 0) {
		return -1;
	}
	*ready_fd = p[1];
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *pidfile = NULL;
	bool foreground = false;
	int ready_fd = -1, c, r, i;
	km_net_server_opts so;
	char err[1024] = "", url[300];
	struct sigaction sa;
	pthread_t sync;
	bool sync_started = false;
	kmd_state *st;

	/*
	 * Every login runs scrypt with a 16 MiB work area.  glibc raises its
	 * mmap threshold after the first such block is freed, so later ones
	 * come from the heap of whichever worker thread logs in and stay
	 * resident: 16 MiB more RSS per worker arena (31 -> 64 MiB after a
	 * few logins).  A fixed threshold keeps large blocks in their own
	 * mappings, returned to the system when freed (OpenSSL wipes the
	 * work area first).
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	while ((c = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 0 ||
			    v > 65535) {
				fprintf(stderr,
				    "keymeshd: --ready-fd needs a descriptor "
				    "number\n");
				return 2;
			}
			ready_fd = (int)v;
			break;
		}
		case 'p':
			pidfile = optarg;
			break;
		case 'h':
			kmd_usage(stdout);
			return 0;
		default:
			kmd_usage(stderr);
			return 2;
		}
	}
	if (config == NULL || optind != argc) {
		kmd_usage(stderr);
		return 2;
	}

	km_log_init("keymeshd", KM_LOG_INFO);
	/* no core files, not dumpable, secrets in locked pages */
	if (km_secmem_harden_process() != 0) {
		fprintf(stderr, "keymeshd: cannot disable core dumps\n");
		return 1;
	}
	if ((r = km_secmem_init(KM_SECMEM_DAEMON_SIZE)) != 0) {
		if (r == KM_ERR_ALLOC) {
			fprintf(stderr, "keymeshd: cannot set up locked "
					"memory for secrets\n");
			return 1;
		}
		km_log_warn("KMD-MLOCK", "secret memory could not be locked "
					 "(raise RLIMIT_MEMLOCK); it is still "
					 "excluded from core dumps");
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		return 1;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->catalog_lock, NULL);
	st->started_ms = km_now_ms();
	snprintf(st->keygen_status, sizeof(st->keygen_status), "idle");

	if ((r = kmd_config_load(config, &st->cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "keymeshd: %s\n", err);
		return 1;
	}
	km_log_set_level(st->cfg.log_level);
	if (!foreground && kmd_daemonise(&ready_fd) != 0) {
		fprintf(stderr, "keymeshd: cannot daemonise: %s\n",
		    strerror(errno));
		return 1;
	}
	if ((r = km_mkdir_p(st->cfg.state_dir, 0700)) != 0) {
		snprintf(err, sizeof(err), "cannot create the state "
					   "directory %s",
		    st->cfg.state_dir);
		goto fail;
	}
	if ((r = kmd_open_identity(st, err, sizeof(err))) != 0 ||
	    (r = kmd_open_token(st, err, sizeof(err))) != 0) {
		goto fail;
	}
	if ((r = km_store_open_dir(st->cfg.state_dir, &st->store)) != 0) {
		snprintf(err, sizeof(err), "cannot open the state store in %s: "
					   "%s",
		    st->cfg.state_dir, km_strerror(r));
		goto fail;
	}
	/* whose shares: a re-share's commit keeps the old ones when this
	 * node got no new share (store.h km_store_set_node) */
	if ((r = km_store_set_node(st->store, st->cfg.name)) != 0) {
		snprintf(err, sizeof(err), "invalid node name");
		goto fail;
	}
	kmd_fault_init(st);
	if ((r = kmd_evict_start(st)) != 0) {
		snprintf(err, sizeof(err), "cannot read the evicted nodes: %s",
		    km_strerror(r));
		goto fail;
	}
	if ((r = kmd_trust_init(st, err, sizeof(err))) != 0) {
		goto fail;
	}
	if ((r = kmd_open_raft(st, err, sizeof(err))) != 0) {
		goto fail;
	}

	memset(&so, 0, sizeof(so));
	so.workers = st->cfg.workers ? st->cfg.workers :
				       (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (so.workers < 2) {
		so.workers = 2;
	}
	so.window_ms = st->cfg.request_window_ms;
	so.peer_role = KM_ROLE_NONE;
	if ((r = km_net_server_start(st->creds, st->cfg.listen, &so,
		 kmd_service_handle, st, &st->server)) != 0) {
		snprintf(err, sizeof(err), "cannot listen on %s: %s",
		    st->cfg.listen,
		    r == KM_ERR_BUSY ? "address in use" : km_strerror(r));
		goto fail;
	}
	if ((r = km_net_server_url(st->server, url, sizeof(url))) != 0) {
		snprintf(err, sizeof(err), "cannot read the bound address");
		goto fail;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kmd_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pthread_create(&sync, NULL, kmd_sync_thread, st) == 0) {
		sync_started = true;
	}
	if ((r = kmd_beacon_start(st, err, sizeof(err))) != 0) {
		st->stopping = true;
		if (sync_started) {
			pthread_join(sync, NULL);
		}
		kmd_beacon_stop(st);
		goto fail;
	}
	if (pidfile != NULL) {
		char pid[32];
		snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		(void)km_write_file_atomic(pidfile, pid, strlen(pid), 0644);
	}
	km_log_info("KMD-READY", "%s %s listening on %s", st->cfg.name,
	    KMD_VERSION, url);
	if (ready_fd >= 0 && kmd_write_ready(ready_fd, url) != 0) {
		km_log_warn("KMD-READY-FD", "cannot write to the readiness "
					    "descriptor");
	}
	if (!foreground) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			close(devnull);
		}
	}

	while (!kmd_stop) {
		pause();
	}

	km_log_info("KMD-STOP", "%s stopping", st->cfg.name);
	st->stopping = true;
	if (sync_started) {
		pthread_join(sync, NULL);
	}
	/* WARNING: the order matters (review finding 3).  The server first:
	 * its handlers use the beacon, trust and store, and start vote
	 * threads.  Then every thread that proposes into Raft or calls
	 * peers (vote rounds, the trust proposer), then Raft (its apply
	 * path uses the beacon and trust state), then the beacon (its
	 * thread calls peers), and only then what they all used. */
	km_net_server_stop(st->server);
	kmd_evict_stop(st);
	kmd_trust_halt(st);
	kmd_raft_stop(st);
	kmd_beacon_stop(st);
	kmd_trust_stop(st);
	for (i = 0; i < (int)st->cfg.npeers; i++) {
		km_net_client_close(st->peer_clients[i]);
	}
	km_store_close(st->store);
	kmd_token_close(st->token);
	kmd_keycache_free(st);
	kmd_tickets_free(st);
	km_net_creds_free(st->creds);
	X509_STORE_free(st->x509);
	EVP_PKEY_free(st->idkey);
	kmd_config_free(&st->cfg);
	if (pidfile != NULL) {
		unlink(pidfile);
	}
	free(st);
	return 0;

fail:
	/* one line naming what was wrong; the daemonising parent, if any,
	 * sees the pipe close and exits 1 too */
	fprintf(stderr, "keymeshd: %s\n", err);
	return 1;
}
