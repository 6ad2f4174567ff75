/*
 * keymesh-p11-relay: the transport helper of a forked PKCS#11 child
 * (net/relay.h, docs/pkcs11.md "Threads and fork").
 *
 *   keymesh-p11-relay CLIENT.CONF     (the socket to the module is fd 3)
 *
 * Started by the module with posix_spawn, never by hand.  It opens the
 * mesh from the client config (the client identity at once, the admin
 * identity on first use), makes each requested call with the ordinary
 * signed-envelope client and sends back the result.  It exits when the
 * socket closes (its process exited or finalised), on a bad frame, or when
 * its parent goes away.
 *
 * WARNING: request bodies carry login PINs and tickets.  They are never
 * logged, frame buffers are wiped after use, and the process is made
 * non-dumpable without core files.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh/client.h"
#include "net/net.h"
#include "net/relay.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"

#define KMR_FD 3
/* how often the connection state is looked at (and sent when changed) */
#define KMR_STATUS_MS 20

typedef struct kmr_call {
	km_net_call *call;
	uint32_t id;
	uint8_t chan, node;
	int result;
	struct kmr_call *next; /* free list or done queue */
} kmr_call;

static struct {
	km_mesh_conf conf;
	km_mesh *mesh[KM_RELAY_CHANNELS];
	bool admin_failed;
	pthread_mutex_t mu; /* the queues and counters below */
	pthread_cond_t cv;
	kmr_call *free_list[KM_RELAY_CHANNELS][KM_RELAY_NODES_MAX];
	kmr_call *done_head, *done_tail;
	unsigned inflight;
	bool quit;
	pthread_mutex_t wmu; /* one frame at a time on the socket */
	bool write_failed;
} kmr;

static km_log_level
kmr_log_level(void)
{
	const char *s = getenv("KEYMESH_LOG");

	if (s == NULL || *s == '\0') {
		return KM_LOG_ERR;
	}
	return strcmp(s, "none") == 0 ? KM_LOG_NONE
	    : strcmp(s, "warn") == 0  ? KM_LOG_WARN
	    : strcmp(s, "info") == 0  ? KM_LOG_INFO
	    : strcmp(s, "debug") == 0 ? KM_LOG_DEBUG
	                              : KM_LOG_ERR;
}

static int
kmr_send(const km_relay_frame *f)
{
	km_buf b;
	int r;

	km_buf_init_secure(&b);
	if ((r = km_relay_frame_encode(&b, f)) == 0) {
		pthread_mutex_lock(&kmr.wmu);
		r = kmr.write_failed ? KM_ERR_CONN
		                     : km_relay_send(KMR_FD, b.data, b.len);
		if (r != 0) {
			kmr.write_failed = true;
		}
		pthread_mutex_unlock(&kmr.wmu);
	}
	km_buf_free(&b);
	return r;
}

static int
kmr_reply_error(uint32_t id, int code)
{
	km_relay_frame f;

	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_REPLY;
	f.id = id;
	f.code = code;
	return kmr_send(&f);
}

/*
 * The mesh of a channel; the admin identity is opened on first use.  Only
 * the main thread opens; the writer reads the pointers under kmr.mu.
 */
static km_mesh *
kmr_mesh(unsigned chan)
{
	km_mesh *m = NULL;
	char err[300];
	int r;

	if (kmr.mesh[chan] != NULL || chan == 0 || kmr.admin_failed) {
		return kmr.mesh[chan];
	}
	if ((r = km_mesh_open(&kmr.conf, KM_ROLE_ADMIN, &m, err, sizeof(err)))
	    != 0) {
		km_log_error_r(
		    r, "RELAY-ADMIN", "cannot open the admin mesh: %s", err);
		kmr.admin_failed = true;
		return NULL;
	}
	pthread_mutex_lock(&kmr.mu);
	kmr.mesh[1] = m;
	pthread_mutex_unlock(&kmr.mu);
	return m;
}

/* nng thread: queue the finished call for the writer. */
static void
kmr_done(km_net_call *call, int r, void *arg)
{
	kmr_call *c = arg;

	(void)call;
	pthread_mutex_lock(&kmr.mu);
	c->result = r;
	c->next = NULL;
	if (kmr.done_tail != NULL) {
		kmr.done_tail->next = c;
	} else {
		kmr.done_head = c;
	}
	kmr.done_tail = c;
	pthread_cond_signal(&kmr.cv);
	pthread_mutex_unlock(&kmr.mu);
}

static int
kmr_request(const km_relay_frame *f)
{
	kmr_call *c = NULL;
	km_mesh *m;
	int r;

	if ((m = kmr_mesh(f->channel)) == NULL) {
		return kmr_reply_error(f->id, KM_ERR_NOT_SUPPORTED);
	}
	if (f->node >= km_mesh_count(m)) {
		return kmr_reply_error(f->id, KM_ERR_RANGE);
	}
	pthread_mutex_lock(&kmr.mu);
	if (kmr.inflight >= KM_RELAY_INFLIGHT_MAX) {
		pthread_mutex_unlock(&kmr.mu);
		return kmr_reply_error(f->id, KM_ERR_BUSY);
	}
	if ((c = kmr.free_list[f->channel][f->node]) != NULL) {
		kmr.free_list[f->channel][f->node] = c->next;
	}
	kmr.inflight++;
	pthread_mutex_unlock(&kmr.mu);
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL
		    || (r = km_net_call_new(
		            km_mesh_client(m, f->node), &c->call))
		        != 0) {
			free(c);
			pthread_mutex_lock(&kmr.mu);
			kmr.inflight--;
			pthread_mutex_unlock(&kmr.mu);
			return kmr_reply_error(f->id, KM_ERR_ALLOC);
		}
		c->chan = f->channel;
		c->node = f->node;
	}
	c->id = f->id;
	if ((r = km_net_call_start(c->call, f->body, f->body_len,
	         (int)f->timeout_ms, kmr_done, c))
	    != 0) {
		/* not started: no callback comes */
		c->result = r;
		kmr_done(c->call, r, c);
	}
	return 0;
}

/* Writer thread: replies as calls finish, and the connection state. */
static void *
kmr_writer(void *arg)
{
	uint32_t sent[KM_RELAY_CHANNELS] = { 0, 0 }, now[KM_RELAY_CHANNELS];
	bool first = true;
	km_relay_frame f;
	const uint8_t *body;
	const km_identity *peer;
	struct timespec ts;
	km_mesh *m[KM_RELAY_CHANNELS];
	kmr_call *c;
	size_t i, ch;
	size_t len;
	int r;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&kmr.mu);
		while (kmr.done_head == NULL && !kmr.quit) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += KMR_STATUS_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&kmr.cv, &kmr.mu, &ts)
			    != 0) {
				break;
			}
		}
		if (kmr.quit) {
			pthread_mutex_unlock(&kmr.mu);
			break;
		}
		if ((c = kmr.done_head) != NULL) {
			if ((kmr.done_head = c->next) == NULL) {
				kmr.done_tail = NULL;
			}
		}
		pthread_mutex_unlock(&kmr.mu);
		if (c != NULL) {
			memset(&f, 0, sizeof(f));
			f.type = KM_RELAY_REPLY;
			f.id = c->id;
			r = c->result;
			if (r == 0
			    && (r = km_net_call_reply(
			            c->call, &body, &len, &peer))
			        == 0) {
				f.body = body;
				f.body_len = len;
				snprintf(
				    f.peer, sizeof(f.peer), "%s", peer->name);
			}
			f.code
			    = r < KM_ERR_LAST || r > 0 ? KM_ERR_INTERNAL : r;
			(void)kmr_send(&f);
			pthread_mutex_lock(&kmr.mu);
			c->next = kmr.free_list[c->chan][c->node];
			kmr.free_list[c->chan][c->node] = c;
			kmr.inflight--;
			pthread_mutex_unlock(&kmr.mu);
		}
		/* the connection state, when it changed */
		pthread_mutex_lock(&kmr.mu);
		for (ch = 0; ch < KM_RELAY_CHANNELS; ch++) {
			m[ch] = kmr.mesh[ch];
		}
		pthread_mutex_unlock(&kmr.mu);
		for (ch = 0; ch < KM_RELAY_CHANNELS; ch++) {
			now[ch] = 0;
			for (i = 0; m[ch] != NULL && i < km_mesh_count(m[ch]);
			     i++) {
				if (km_net_client_connected(
				        km_mesh_client(m[ch], i))) {
					now[ch] |= 1u << i;
				}
			}
		}
		if (first || now[0] != sent[0] || now[1] != sent[1]) {
			memset(&f, 0, sizeof(f));
			f.type = KM_RELAY_STATUS;
			f.connected[0] = now[0];
			f.connected[1] = now[1];
			if (kmr_send(&f) == 0) {
				sent[0] = now[0];
				sent[1] = now[1];
				first = false;
			}
		}
	}
	return NULL;
}

/*
 * Descriptors the application leaked into us (not CLOEXEC): close all but
 * stdin/stdout/stderr and the socket.
 */
static void
kmr_close_fds(void)
{
	long max, fd;

	if (close_range(KMR_FD + 1, ~0u, 0) == 0) {
		return;
	}
	/* an older kernel: one by one, up to the limit */
	if ((max = sysconf(_SC_OPEN_MAX)) < 0 || max > (1L << 20)) {
		max = 1L << 20;
	}
	for (fd = KMR_FD + 1; fd < max; fd++) {
		(void)close((int)fd);
	}
}

int
main(int argc, char **argv)
{
	char err[300];
	km_relay_frame f;
	km_relay_rx rx;
	struct pollfd pfd;
	pthread_t writer;
	bool writer_started = false;
	pid_t parent = getppid();
	int r = 0, rc = 1;

	km_log_init("keymesh-p11-relay", kmr_log_level());
	if (argc != 2) {
		fprintf(stderr,
		    "keymesh-p11-relay: started by "
		    "keymesh-pkcs11.so, not by hand\n");
		return 2;
	}
	kmr_close_fds();
	/* stdin/stdout/stderr that the application had closed: /dev/null,
	 * so no file or socket opened here becomes fd 2 (the log) */
	while (fcntl(0, F_GETFD) < 0 || fcntl(1, F_GETFD) < 0
	    || fcntl(2, F_GETFD) < 0) {
		if (open("/dev/null", O_RDWR) < 0) {
			break;
		}
	}
	(void)signal(SIGPIPE, SIG_IGN);
	/* PINs pass through here: no core files, not dumpable */
	(void)km_secmem_harden_process();
	(void)km_secmem_init(KM_SECMEM_MODULE_SIZE);
	pthread_mutex_init(&kmr.mu, NULL);
	pthread_cond_init(&kmr.cv, NULL);
	pthread_mutex_init(&kmr.wmu, NULL);
	km_relay_rx_init(&rx);
	if ((r = km_mesh_conf_load(argv[1], &kmr.conf, err, sizeof(err)))
	    != 0) {
		km_log_error_r(r, "RELAY-CONFIG", "%s: %s", argv[1], err);
		goto out;
	}
	if ((r = km_mesh_open(
	         &kmr.conf, KM_ROLE_CLIENT, &kmr.mesh[0], err, sizeof(err)))
	    != 0) {
		km_log_error_r(
		    r, "RELAY-MESH", "cannot open the mesh: %s", err);
		goto out;
	}
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_HELLO;
	f.version = KM_RELAY_VERSION;
	f.nodes = (uint32_t)km_mesh_count(kmr.mesh[0]);
	if ((r = kmr_send(&f)) != 0) {
		goto out;
	}
	if (pthread_create(&writer, NULL, kmr_writer, NULL) != 0) {
		km_log_error("RELAY-THREAD", "cannot start the writer thread");
		goto out;
	}
	writer_started = true;
	for (;;) {
		pfd.fd = KMR_FD;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 500) < 0 && errno != EINTR) {
			r = KM_ERR_IO;
			break;
		}
		if (getppid() != parent) {
			/* our process is gone (and the socket not yet) */
			r = KM_ERR_CLOSED;
			break;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
			continue;
		}
		if ((r = km_relay_rx_fill(&rx, KMR_FD)) != 0) {
			break;
		}
		while ((r = km_relay_rx_next(&rx, &f)) == 0) {
			if (f.type != KM_RELAY_REQUEST) {
				r = KM_ERR_BAD_FORMAT;
				break;
			}
			if ((r = kmr_request(&f)) != 0) {
				break;
			}
		}
		if (r == KM_ERR_CONN || r == KM_ERR_IO) {
			/* a reply could not be written: the module is gone */
			break;
		}
		if (r != KM_ERR_NOT_FOUND) {
			km_log_error_r(r, "RELAY-FRAME",
			    "bad frame from the module; closing");
			break;
		}
	}
	/* end of stream is the normal way out */
	rc = r == KM_ERR_CLOSED || r == KM_ERR_CONN || r == KM_ERR_IO ? 0 : 1;
out:
	if (writer_started) {
		pthread_mutex_lock(&kmr.mu);
		kmr.quit = true;
		pthread_cond_broadcast(&kmr.cv);
		pthread_mutex_unlock(&kmr.mu);
		pthread_join(writer, NULL);
	}
	km_relay_rx_free(&rx);
	(void)close(KMR_FD);
	/*
	 * Exit without closing the mesh: its calls may still be in flight
	 * and nothing is kept on disk; the kernel closes the connections.
	 */
	_exit(rc);
}
