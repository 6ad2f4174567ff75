/*
 * The transport relay (relay.h): the frame codec, the module side (spawn,
 * reader thread, relay-backed km_net_client) and the helpers the
 * keymesh-p11-relay program shares.
 *
 * WARNING: request bodies carry login PINs and tickets.  Frame buffers are
 * wiped (km_secret_wipe) once used, and nothing here logs a body.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/net-int.h"
#include "net/relay.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"

extern char **environ;

#ifndef KM_RELAY_PATH
#define KM_RELAY_PATH "/usr/libexec/keymesh/keymesh-p11-relay"
#endif

/* The helper must answer HELLO within this (it loads the config and the
 * client key, then starts dialing; it does not wait for connections). */
#define KM_RELAY_HELLO_MS 10000
/* A call the helper never answers fails this long after its timeout. */
#define KM_RELAY_GRACE_MS 2000u

/* ---- frames ------------------------------------------------------------ */

int
km_relay_frame_encode(km_buf *out, const km_relay_frame *f)
{
	size_t start = out->len, plen;
	uint8_t *p;
	int r;

	if (f->body_len > KM_NET_BODY_MAX
	    || (f->body == NULL && f->body_len > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_buf_put_u32(out, 0)) != 0
	    || (r = km_buf_put_u8(out, f->type)) != 0) {
		return r;
	}
	switch (f->type) {
	case KM_RELAY_REQUEST:
		if (f->channel >= KM_RELAY_CHANNELS
		    || f->node >= KM_RELAY_NODES_MAX || f->timeout_ms == 0
		    || f->timeout_ms > KM_RELAY_TIMEOUT_MAX_MS) {
			return KM_ERR_INVALID_ARG;
		}
		if ((r = km_buf_put_u32(out, f->id)) != 0
		    || (r = km_buf_put_u8(out, f->channel)) != 0
		    || (r = km_buf_put_u8(out, f->node)) != 0
		    || (r = km_buf_put_u32(out, f->timeout_ms)) != 0
		    || (r = km_buf_put_string(out, f->body, f->body_len))
		        != 0) {
			return r;
		}
		break;
	case KM_RELAY_REPLY:
		if (f->code > 0 || f->code < KM_ERR_LAST
		    || (f->peer[0] != '\0' && !km_name_valid(f->peer))) {
			return KM_ERR_INVALID_ARG;
		}
		if ((r = km_buf_put_u32(out, f->id)) != 0
		    || (r = km_buf_put_u32(out, (uint32_t)-f->code)) != 0
		    || (r = km_buf_put_cstring(out, f->peer)) != 0
		    || (r = km_buf_put_string(out, f->body, f->body_len))
		        != 0) {
			return r;
		}
		break;
	case KM_RELAY_STATUS:
		if ((r = km_buf_put_u32(out, f->connected[0])) != 0
		    || (r = km_buf_put_u32(out, f->connected[1])) != 0) {
			return r;
		}
		break;
	case KM_RELAY_HELLO:
		if (f->nodes == 0 || f->nodes > KM_RELAY_NODES_MAX) {
			return KM_ERR_INVALID_ARG;
		}
		if ((r = km_buf_put_u32(out, f->version)) != 0
		    || (r = km_buf_put_u32(out, f->nodes)) != 0) {
			return r;
		}
		break;
	default:
		return KM_ERR_INVALID_ARG;
	}
	plen = out->len - start - 4;
	if (plen > KM_RELAY_FRAME_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	p = out->data + start;
	p[0] = (uint8_t)(plen >> 24);
	p[1] = (uint8_t)(plen >> 16);
	p[2] = (uint8_t)(plen >> 8);
	p[3] = (uint8_t)plen;
	return 0;
}

int
km_relay_frame_decode(const uint8_t *p, size_t len, km_relay_frame *f)
{
	const uint8_t *peer = NULL;
	size_t peer_len = 0;
	uint32_t code;
	km_buf b;
	int r;

	memset(f, 0, sizeof(*f));
	if (len > KM_RELAY_FRAME_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_init_view(&b, p, len);
	if ((r = km_buf_get_u8(&b, &f->type)) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	switch (f->type) {
	case KM_RELAY_REQUEST:
		r = km_buf_get_u32(&b, &f->id)
		        || km_buf_get_u8(&b, &f->channel)
		        || km_buf_get_u8(&b, &f->node)
		        || km_buf_get_u32(&b, &f->timeout_ms)
		        || km_buf_get_string_ptr(
		            &b, &f->body, &f->body_len, KM_NET_BODY_MAX)
		    ? KM_ERR_BAD_FORMAT
		    : 0;
		if (r == 0
		    && (f->channel >= KM_RELAY_CHANNELS
		        || f->node >= KM_RELAY_NODES_MAX || f->timeout_ms == 0
		        || f->timeout_ms > KM_RELAY_TIMEOUT_MAX_MS)) {
			r = KM_ERR_BAD_FORMAT;
		}
		break;
	case KM_RELAY_REPLY:
		r = km_buf_get_u32(&b, &f->id) || km_buf_get_u32(&b, &code)
		        || km_buf_get_string_ptr(
		            &b, &peer, &peer_len, KM_NAME_MAX)
		        || km_buf_get_string_ptr(
		            &b, &f->body, &f->body_len, KM_NET_BODY_MAX)
		    ? KM_ERR_BAD_FORMAT
		    : 0;
		if (r == 0 && code > (uint32_t)-KM_ERR_LAST) {
			r = KM_ERR_BAD_FORMAT;
		}
		if (r == 0) {
			f->code = -(int)code;
			memcpy(f->peer, peer, peer_len);
			f->peer[peer_len] = '\0';
			/* a NUL inside would cut the name short (found by
			 * fuzz-relay): the whole string must be the name */
			if (peer_len > 0
			    && (strlen(f->peer) != peer_len
			        || !km_name_valid(f->peer))) {
				r = KM_ERR_BAD_FORMAT;
			}
		}
		break;
	case KM_RELAY_STATUS:
		r = km_buf_get_u32(&b, &f->connected[0])
		        || km_buf_get_u32(&b, &f->connected[1])
		    ? KM_ERR_BAD_FORMAT
		    : 0;
		break;
	case KM_RELAY_HELLO:
		r = km_buf_get_u32(&b, &f->version)
		        || km_buf_get_u32(&b, &f->nodes)
		    ? KM_ERR_BAD_FORMAT
		    : 0;
		if (r == 0 && f->version != KM_RELAY_VERSION) {
			r = KM_ERR_BAD_VERSION;
		}
		if (r == 0
		    && (f->nodes == 0 || f->nodes > KM_RELAY_NODES_MAX)) {
			r = KM_ERR_BAD_FORMAT;
		}
		break;
	default:
		r = KM_ERR_BAD_FORMAT;
		break;
	}
	if (r == 0 && km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT; /* trailing bytes */
	}
	if (r != 0) {
		memset(f, 0, sizeof(*f));
	}
	return r;
}

void
km_relay_rx_init(km_relay_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
}

void
km_relay_rx_free(km_relay_rx *rx)
{
	if (rx->buf != NULL) {
		km_secret_free(rx->buf, rx->cap);
	}
	memset(rx, 0, sizeof(*rx));
}

/* Drop the frame handed out last, wiping it. */
static void
km_relay_rx_consume(km_relay_rx *rx)
{
	if (rx->used == 0) {
		return;
	}
	km_secret_wipe(rx->buf, rx->used);
	memmove(rx->buf, rx->buf + rx->used, rx->len - rx->used);
	km_secret_wipe(rx->buf + rx->len - rx->used, rx->used);
	rx->len -= rx->used;
	rx->used = 0;
}

int
km_relay_rx_fill(km_relay_rx *rx, int fd)
{
	ssize_t n;
	size_t want;
	uint8_t *nb;

	km_relay_rx_consume(rx);
	if (rx->cap - rx->len < 16384 && rx->cap < KM_RELAY_FRAME_MAX + 4) {
		size_t cap = rx->cap == 0 ? 65536 : rx->cap * 2;

		if (cap > KM_RELAY_FRAME_MAX + 4) {
			cap = KM_RELAY_FRAME_MAX + 4;
		}
		/* a copy, not realloc: the old bytes are wiped */
		if ((nb = malloc(cap)) == NULL) {
			return KM_ERR_ALLOC;
		}
		if (rx->len > 0) {
			memcpy(nb, rx->buf, rx->len);
		}
		if (rx->buf != NULL) {
			km_secret_free(rx->buf, rx->cap);
		}
		rx->buf = nb;
		rx->cap = cap;
	}
	want = rx->cap - rx->len;
	if (want == 0) {
		/* cannot happen: a whole frame always fits */
		return KM_ERR_TOO_LARGE;
	}
	do {
		n = read(fd, rx->buf + rx->len, want);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : KM_ERR_IO;
	}
	if (n == 0) {
		return KM_ERR_CLOSED;
	}
	rx->len += (size_t)n;
	return 0;
}

int
km_relay_rx_next(km_relay_rx *rx, km_relay_frame *f)
{
	uint32_t plen;
	int r;

	km_relay_rx_consume(rx);
	if (rx->len < 4) {
		return KM_ERR_NOT_FOUND;
	}
	plen = (uint32_t)rx->buf[0] << 24 | (uint32_t)rx->buf[1] << 16
	    | (uint32_t)rx->buf[2] << 8 | rx->buf[3];
	if (plen == 0 || plen > KM_RELAY_FRAME_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	if (rx->len - 4 < plen) {
		return KM_ERR_NOT_FOUND;
	}
	if ((r = km_relay_frame_decode(rx->buf + 4, plen, f)) != 0) {
		return r;
	}
	rx->used = 4 + (size_t)plen;
	return 0;
}

int
km_relay_send(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return errno == EPIPE || errno == ECONNRESET
			        || errno == EBADF
			    ? KM_ERR_CONN
			    : KM_ERR_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- the module side --------------------------------------------------- */

struct km_net_relay {
	int fd;
	int wake; /* eventfd: cancelled calls to finish */
	pid_t pid;
	pid_t owner; /* the process that spawned the helper */
	uint32_t nodes;
	pthread_t reader;
	bool reader_started;
	km_relay_rx rx;      /* the reader's (bytes after HELLO stay here) */
	pthread_mutex_t wmu; /* one frame at a time on the socket */
	pthread_mutex_t mu;  /* everything below */
	pthread_cond_t cv;   /* status changes */
	bool dead;
	bool stopping;
	uint32_t next_id;
	uint32_t connected[KM_RELAY_CHANNELS];
	km_net_call *inflight;          /* started, waiting for a reply */
	km_net_call *cancelled;         /* to be finished by the reader */
	struct km_net_relay *next_live; /* km_relay_live list */
};

/* Relays of this process, for the fork handler. */
static pthread_mutex_t km_relay_live_mu = PTHREAD_MUTEX_INITIALIZER;
static km_net_relay *km_relay_live;
static pthread_once_t km_relay_atfork_once = PTHREAD_ONCE_INIT;

/*
 * In any child forked from a process with a relay: close its socket, so
 * that the helper still sees end-of-stream when its own process exits
 * (and an exec'd program never holds it; it is also SOCK_CLOEXEC).  The
 * child's module starts a new helper at its C_Initialize.  Only close()
 * here (async-signal-safe), never shutdown(): that would cut the parent.
 */
static void
km_relay_atfork_child(void)
{
	km_net_relay *r;

	for (r = km_relay_live; r != NULL; r = r->next_live) {
		if (r->fd >= 0) {
			(void)close(r->fd);
			r->fd = -1;
		}
		if (r->wake >= 0) {
			(void)close(r->wake);
			r->wake = -1;
		}
		r->dead = true;
		r->reader_started = false; /* the thread is not ours */
	}
	km_relay_live = NULL;
}

static void
km_relay_atfork_register(void)
{
	(void)pthread_atfork(NULL, NULL, km_relay_atfork_child);
}

const char *
km_net_relay_helper_path(void)
{
	const char *e = secure_getenv("KEYMESH_RELAY");

	return e != NULL && *e != '\0' ? e : KM_RELAY_PATH;
}

pid_t
km_net_relay_pid(const km_net_relay *r)
{
	return r->pid;
}

/* Under r->mu: unlink @call from the in-flight list. */
static bool
km_relay_unlink(km_net_relay *r, km_net_call *call)
{
	km_net_call **pp;

	for (pp = &r->inflight; *pp != NULL; pp = &(*pp)->relay_next) {
		if (*pp == call) {
			*pp = call->relay_next;
			call->relay_next = NULL;
			call->relay_id = 0;
			return true;
		}
	}
	return false;
}

/* Complete @call (already unlinked) with @res and, for a reply, @f. */
static void
km_relay_finish(km_net_call *call, int res, const km_relay_frame *f)
{
	pthread_mutex_lock(&call->mu);
	if (call->cancelled) {
		res = KM_ERR_CLOSED;
	} else if (f != NULL) {
		res = f->code;
		if (f->peer[0] != '\0') {
			snprintf(call->peer.name, sizeof(call->peer.name),
			    "%s", f->peer);
			call->peer.role = KM_ROLE_NODE;
		}
		km_buf_reset(&call->reply);
		if (res == 0
		    && km_buf_put_raw(&call->reply, f->body, f->body_len)
		        != 0) {
			res = KM_ERR_ALLOC;
		}
	}
	km_net_call_finish(call, res);
}

/* Fail every call, for good (the helper is gone). */
static void
km_relay_fail_all(km_net_relay *r, int res)
{
	km_net_call *list, *c;

	pthread_mutex_lock(&r->mu);
	r->dead = true;
	r->connected[0] = r->connected[1] = 0;
	list = r->inflight;
	r->inflight = NULL;
	for (c = list; c != NULL; c = c->relay_next) {
		c->relay_id = 0;
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	while ((c = list) != NULL) {
		list = c->relay_next;
		c->relay_next = NULL;
		km_relay_finish(c, res, NULL);
	}
}

/* Finish the cancelled calls and those the helper let pass their time. */
static void
km_relay_sweep(km_net_relay *r)
{
	km_net_call *done = NULL, **pp, *c;
	uint64_t now = km_mono_ns();

	pthread_mutex_lock(&r->mu);
	while ((c = r->cancelled) != NULL) {
		r->cancelled = c->relay_next;
		c->relay_next = done;
		done = c;
	}
	for (pp = &r->inflight; (c = *pp) != NULL;) {
		if (now > c->deadline_ns
		        + (uint64_t)KM_RELAY_GRACE_MS * 1000000u) {
			*pp = c->relay_next;
			c->relay_id = 0;
			c->relay_cancelled = false;
			c->relay_next = done;
			done = c;
		} else {
			pp = &c->relay_next;
		}
	}
	pthread_mutex_unlock(&r->mu);
	while ((c = done) != NULL) {
		done = c->relay_next;
		c->relay_next = NULL;
		if (c->relay_cancelled) {
			c->relay_cancelled = false;
			km_relay_finish(c, KM_ERR_CLOSED, NULL);
		} else {
			km_log_warn("KM-RELAY-LATE",
			    "the relay helper did not answer a call in time");
			km_relay_finish(c, KM_ERR_TIMEOUT, NULL);
		}
	}
}

/* One frame from the helper; an error ends the stream. */
static int
km_relay_handle(km_net_relay *r, const km_relay_frame *f)
{
	km_net_call *c;

	switch (f->type) {
	case KM_RELAY_REPLY:
		pthread_mutex_lock(&r->mu);
		for (c = r->inflight; c != NULL; c = c->relay_next) {
			if (c->relay_id == f->id) {
				break;
			}
		}
		if (c != NULL) {
			(void)km_relay_unlink(r, c);
		}
		pthread_mutex_unlock(&r->mu);
		/* no match: a call cancelled or timed out here; dropped */
		if (c != NULL) {
			km_relay_finish(c, 0, f);
		}
		break;
	case KM_RELAY_STATUS:
		pthread_mutex_lock(&r->mu);
		r->connected[0] = f->connected[0];
		r->connected[1] = f->connected[1];
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		break;
	default:
		/* REQUEST or a second HELLO: the helper is not sane */
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

static void *
km_relay_reader(void *arg)
{
	km_net_relay *r = arg;
	struct pollfd pfd[2];
	km_relay_rx *rx = &r->rx;
	km_relay_frame f;
	uint64_t v;
	int res = 0, n;

	/* frames that came with HELLO first */
	while ((res = km_relay_rx_next(rx, &f)) == 0
	    && (res = km_relay_handle(r, &f)) == 0) {
	}
	for (res = res == KM_ERR_NOT_FOUND ? 0 : res; res == 0;) {
		pfd[0].fd = r->fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = r->wake;
		pfd[1].events = POLLIN;
		n = poll(pfd, 2, 100);
		if (n < 0 && errno != EINTR) {
			res = KM_ERR_IO;
			break;
		}
		if (n > 0 && (pfd[1].revents & POLLIN)) {
			(void)!read(r->wake, &v, sizeof(v));
		}
		if (n > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			if ((res = km_relay_rx_fill(rx, r->fd)) != 0) {
				break;
			}
			while ((res = km_relay_rx_next(rx, &f)) == 0
			    && (res = km_relay_handle(r, &f)) == 0) {
			}
			if (res != KM_ERR_NOT_FOUND) {
				break;
			}
			res = 0;
		}
		km_relay_sweep(r);
		pthread_mutex_lock(&r->mu);
		n = r->stopping;
		pthread_mutex_unlock(&r->mu);
		if (n) {
			break;
		}
	}
	if (res != 0 && res != KM_ERR_CLOSED) {
		/* a bad frame or a read error: the stream is unusable */
		(void)shutdown(r->fd, SHUT_RDWR);
	} else if (res == KM_ERR_CLOSED) {
		pthread_mutex_lock(&r->mu);
		n = r->stopping;
		pthread_mutex_unlock(&r->mu);
		if (!n) {
			km_log_error("KM-RELAY-GONE",
			    "the relay helper (pid %ld) exited", (long)r->pid);
		}
	}
	if (res != 0 && res != KM_ERR_CLOSED) {
		km_log_error_r(res, "KM-RELAY-FRAME",
		    "bad frame from the relay helper, or a read error");
	}
	km_relay_rx_free(rx);
	km_relay_fail_all(r, KM_ERR_CONN);
	km_relay_sweep(r);
	return NULL;
}

/* Wait for the helper's HELLO (blocking, before the reader starts). */
static int
km_relay_hello(km_net_relay *r, char *err, size_t errlen)
{
	uint64_t deadline
	    = km_mono_ns() + (uint64_t)KM_RELAY_HELLO_MS * 1000000u;
	struct pollfd pfd;
	km_relay_rx *rx = &r->rx;
	km_relay_frame f;
	uint64_t now;
	int res, n;

	for (;;) {
		if ((res = km_relay_rx_next(rx, &f)) == 0) {
			if (f.type == KM_RELAY_HELLO) {
				r->nodes = f.nodes;
				break;
			}
			res = KM_ERR_BAD_FORMAT;
		}
		if (res != KM_ERR_NOT_FOUND) {
			snprintf(err, errlen,
			    "bad first frame from the relay "
			    "helper: %s",
			    km_strerror(res));
			break;
		}
		now = km_mono_ns();
		if (now >= deadline) {
			snprintf(err, errlen,
			    "the relay helper did not start "
			    "in %d ms",
			    KM_RELAY_HELLO_MS);
			res = KM_ERR_TIMEOUT;
			break;
		}
		pfd.fd = r->fd;
		pfd.events = POLLIN;
		n = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
		if (n < 0 && errno != EINTR) {
			res = KM_ERR_IO;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			break;
		}
		if (n > 0 && (res = km_relay_rx_fill(rx, r->fd)) != 0) {
			snprintf(err, errlen,
			    "the relay helper exited at "
			    "start (its log line says why)");
			res = KM_ERR_CONN;
			break;
		}
	}
	/* what came after HELLO stays in r->rx for the reader */
	return res;
}

/* Reap the helper: waitpid on its own pid, SIGKILL after @ms. */
static void
km_relay_reap(pid_t pid, int ms)
{
	struct timespec ts = { 0, 10 * 1000000L };
	int st, i;
	pid_t w;

	for (i = 0; i < ms / 10; i++) {
		w = waitpid(pid, &st, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR)) {
			/* reaped, or ECHILD: the application's SIGCHLD
			 * handler (or SIG_IGN) reaped it already */
			return;
		}
		nanosleep(&ts, NULL);
	}
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
}

int
km_net_relay_start(const char *helper, const char *conf_path,
    km_net_relay **out, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = false, attr_ok = false;
	km_net_relay *r = NULL;
	sigset_t none, all;
	char *argv[3];
	int sv[2] = { -1, -1 }, res, e;

	if (helper == NULL) {
		helper = km_net_relay_helper_path();
	}
	if (conf_path == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (access(helper, X_OK) != 0) {
		snprintf(err, errlen,
		    "no relay helper at %s (set "
		    "KEYMESH_RELAY?)",
		    helper);
		return KM_ERR_NOT_FOUND;
	}
	(void)pthread_once(&km_relay_atfork_once, km_relay_atfork_register);
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return KM_ERR_ALLOC;
	}
	r->fd = r->wake = -1;
	pthread_mutex_init(&r->wmu, NULL);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->next_id = 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0
	    || (r->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		res = KM_ERR_IO;
		goto out;
	}
	/*
	 * The helper gets its end as fd 3 (dup2 clears CLOEXEC) and nothing
	 * else of ours: every other descriptor we made is CLOEXEC, and the
	 * helper closes anything above 3 that the application leaked.
	 * Default signal dispositions and an empty mask: it must not inherit
	 * the application's SIG_IGN or blocked signals.
	 */
	sigemptyset(&none);
	sigfillset(&all);
	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		goto spawn_err;
	}
	fa_ok = true;
	if ((e = posix_spawnattr_init(&attr)) != 0) {
		goto spawn_err;
	}
	attr_ok = true;
	if ((e = posix_spawn_file_actions_adddup2(&fa, sv[1], 3)) != 0
	    || (e = posix_spawnattr_setsigmask(&attr, &none)) != 0
	    || (e = posix_spawnattr_setsigdefault(&attr, &all)) != 0
	    || (e = posix_spawnattr_setflags(
	            &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
	        != 0) {
		goto spawn_err;
	}
	argv[0] = (char *)"keymesh-p11-relay";
	argv[1] = (char *)conf_path;
	argv[2] = NULL;
	if ((e = posix_spawn(&r->pid, helper, &fa, &attr, argv, environ))
	    != 0) {
		goto spawn_err;
	}
	r->owner = getpid();
	(void)close(sv[1]);
	sv[1] = -1;
	r->fd = sv[0];
	sv[0] = -1;
	if ((res = km_relay_hello(r, err, errlen)) != 0) {
		goto out;
	}
	if (pthread_create(&r->reader, NULL, km_relay_reader, r) != 0) {
		snprintf(err, errlen, "cannot start the relay reader thread");
		res = KM_ERR_ALLOC;
		goto out;
	}
	r->reader_started = true;
	pthread_mutex_lock(&km_relay_live_mu);
	r->next_live = km_relay_live;
	km_relay_live = r;
	pthread_mutex_unlock(&km_relay_live_mu);
	km_debug(KM_DBG_NET, "relay helper %s started, pid %ld", helper,
	    (long)r->pid);
	*out = r;
	r = NULL;
	res = 0;
	goto out;
spawn_err:
	snprintf(err, errlen, "cannot spawn %s: %s", helper, strerror(e));
	res = KM_ERR_IO;
out:
	if (fa_ok) {
		posix_spawn_file_actions_destroy(&fa);
	}
	if (attr_ok) {
		posix_spawnattr_destroy(&attr);
	}
	if (sv[0] >= 0) {
		(void)close(sv[0]);
	}
	if (sv[1] >= 0) {
		(void)close(sv[1]);
	}
	if (r != NULL) {
		km_net_relay_stop(r);
	}
	return res;
}

void
km_net_relay_stop(km_net_relay *r)
{
	km_net_relay **pp;

	if (r == NULL) {
		return;
	}
	pthread_mutex_lock(&km_relay_live_mu);
	for (pp = &km_relay_live; *pp != NULL; pp = &(*pp)->next_live) {
		if (*pp == r) {
			*pp = r->next_live;
			break;
		}
	}
	pthread_mutex_unlock(&km_relay_live_mu);
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_mutex_unlock(&r->mu);
	/* end of stream for the helper: it exits */
	if (r->fd >= 0) {
		(void)shutdown(r->fd, SHUT_RDWR);
	}
	if (r->reader_started) {
		pthread_join(r->reader, NULL); /* it freed r->rx */
	} else {
		km_relay_rx_free(&r->rx);
	}
	if (r->fd >= 0) {
		(void)close(r->fd);
	}
	if (r->wake >= 0) {
		(void)close(r->wake);
	}
	if (r->pid > 0 && r->owner == getpid()) {
		km_relay_reap(r->pid, 2000);
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->wmu);
	free(r);
}

int
km_net_relay_client_open(km_net_relay *r, km_net_creds *creds,
    unsigned channel, unsigned node, const char *peer_name,
    km_net_client **out)
{
	km_net_client *c;

	if (r == NULL || out == NULL || channel >= KM_RELAY_CHANNELS
	    || node >= KM_RELAY_NODES_MAX || !km_name_valid(peer_name)) {
		return KM_ERR_INVALID_ARG;
	}
	if (node >= r->nodes) {
		/* the helper's config has fewer nodes: not the same file */
		return KM_ERR_CONFIG;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KM_ERR_ALLOC;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (creds != NULL) {
		km_net_creds_ref(creds);
	}
	c->creds = creds;
	snprintf(c->peer_name, sizeof(c->peer_name), "%s", peer_name);
	c->o.body_max = KM_NET_BODY_DEFAULT;
	c->o.peer_role = KM_ROLE_NODE;
	c->relay = r;
	c->relay_chan = (uint8_t)channel;
	c->relay_node = (uint8_t)node;
	*out = c;
	return 0;
}

void
km_net_relay_client_closed(km_net_client *c)
{
	(void)c; /* nothing per client: the relay outlives its clients */
}

bool
km_net_relay_connected(km_net_client *c)
{
	km_net_relay *r = c->relay;
	bool up;

	pthread_mutex_lock(&r->mu);
	up = !r->dead && (r->connected[c->relay_chan] >> c->relay_node) & 1u;
	pthread_mutex_unlock(&r->mu);
	return up;
}

int
km_net_relay_wait_connected(km_net_client *c, int timeout_ms)
{
	km_net_relay *r = c->relay;
	uint64_t deadline = km_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	struct timespec ts;
	bool up;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		up = (r->connected[c->relay_chan] >> c->relay_node) & 1u;
		if (up || r->dead || km_mono_ns() >= deadline) {
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	up = up && !r->dead;
	pthread_mutex_unlock(&r->mu);
	return up ? 0 : KM_ERR_CONN;
}

/*
 * Called by km_net_call_start() with call->mu held, for a client of a
 * relay: register the call, send the request frame, mark it in flight.
 */
int
km_net_relay_call_start(
    km_net_call *call, const void *req, size_t req_len, int timeout_ms)
{
	km_net_client *c = call->cl;
	km_net_relay *r = c->relay;
	km_relay_frame f;
	km_buf fr;
	uint32_t id;
	int res;

	if (req_len > KM_NET_BODY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	memset(&f, 0, sizeof(f));
	km_buf_init_secure(&fr);
	pthread_mutex_lock(&r->mu);
	if (r->dead) {
		pthread_mutex_unlock(&r->mu);
		res = KM_ERR_CONN;
		goto out;
	}
	if ((id = r->next_id++) == 0) {
		id = r->next_id++;
	}
	call->relay_id = id;
	call->relay_cancelled = false;
	call->deadline_ns = km_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	call->relay_next = r->inflight;
	r->inflight = call;
	pthread_mutex_unlock(&r->mu);
	f.type = KM_RELAY_REQUEST;
	f.id = id;
	f.channel = c->relay_chan;
	f.node = c->relay_node;
	f.timeout_ms = (uint32_t)timeout_ms > KM_RELAY_TIMEOUT_MAX_MS
	    ? KM_RELAY_TIMEOUT_MAX_MS
	    : (uint32_t)timeout_ms;
	f.body = req;
	f.body_len = req_len;
	if ((res = km_relay_frame_encode(&fr, &f)) == 0) {
		pthread_mutex_lock(&r->wmu);
		res = r->fd >= 0 ? km_relay_send(r->fd, fr.data, fr.len)
		                 : KM_ERR_CONN;
		pthread_mutex_unlock(&r->wmu);
	}
	if (res != 0) {
		pthread_mutex_lock(&r->mu);
		(void)km_relay_unlink(r, call);
		pthread_mutex_unlock(&r->mu);
		goto out;
	}
	memset(&call->peer, 0, sizeof(call->peer));
	km_buf_reset(&call->reply);
	call->cancelled = false;
	call->result = KM_ERR_STATE;
	call->seq++;
	call->state = KM_CALL_RECEIVING;
out:
	km_buf_free(&fr);
	return res;
}

/* Called by km_net_call_cancel() with call->mu held. */
void
km_net_relay_call_cancel(km_net_call *call)
{
	km_net_relay *r = call->cl->relay;
	uint64_t one = 1;

	pthread_mutex_lock(&r->mu);
	if (call->relay_id != 0 && km_relay_unlink(r, call)) {
		/* the reader finishes it (callbacks never run in the
		 * canceller's thread); a late reply is dropped */
		call->relay_cancelled = true;
		call->relay_next = r->cancelled;
		r->cancelled = call;
		if (r->wake >= 0) {
			(void)!write(r->wake, &one, sizeof(one));
		}
	}
	pthread_mutex_unlock(&r->mu);
}
