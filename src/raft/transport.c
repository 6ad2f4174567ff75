/*
 * keymesh's raft_uv_transport: TCP + TLS 1.3 + the mesh PKI.
 *
 * libraft's own TCP transport (raft_uv_tcp_init) is plain TCP: anyone who
 * reaches the port can claim any server id.  Here every connection is a
 * TLS 1.3 session in which both sides present a node certificate of the
 * mesh CA, not on the CRL, whose name is the one the member table gives
 * for the Raft id in play.  Only then does libraft see a byte.
 *
 * Shape of one connection (docs/raft.md has the picture):
 *
 *   peer <-TCP-> uv_tcp_t --memory BIOs--> SSL --> pump (uv_pipe_t)
 *                                                   | socketpair
 *                                      libraft <-- raft_end (uv_pipe_t)
 *
 * Everything runs on the loop thread, so no locks except for the counters
 * km_raft_info() reads from other threads.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "raft/transport.h"
#include "util/err.h"
#include "util/log.h"

#define RET_OSSL_OK 1

/*
 * The preamble a connecting node sends inside TLS, before any Raft byte:
 *   byte[8]  "KMRAFT\0\1"   magic and version
 *   uint64   Raft id of the sender
 *   string   its Raft address (uint32 length, at most KM_RAFT_ADDR_MAX)
 * It replaces libraft's plain-TCP handshake (protocol, id, address), which
 * this transport must otherwise provide itself.
 */
static const uint8_t km_rt_magic[8] = { 'K', 'M', 'R', 'A', 'F', 'T', 0, 1 };
#define KM_RT_PREAMBLE_MAX (8 + 8 + 4 + KM_RAFT_ADDR_MAX)
#define KM_RT_CHUNK        16384

typedef struct km_rt km_rt;
typedef struct km_rconn km_rconn;

enum {
	KM_RC_CONNECTING = 0, /* client: TCP connect in flight */
	KM_RC_HANDSHAKE,      /* TLS handshake */
	KM_RC_PREAMBLE,       /* server: waiting for the preamble */
	KM_RC_OPEN,           /* libraft has its stream */
	KM_RC_CLOSING,        /* handles closing */
};

struct km_rconn {
	km_rt *t;
	km_rconn *prev, *next; /* t->conns */
	int state;
	bool client;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t connect;
	uv_pipe_t pump;
	bool pump_init;
	uv_pipe_t *raft_end; /* raft_malloc'd; libraft's once handed over */
	int open_handles;
	SSL *ssl;
	BIO *net_in;  /* TCP bytes in, for OpenSSL */
	BIO *net_out; /* OpenSSL's bytes, for TCP */
	const km_raft_member *peer;
	char peer_cert_name[KM_NAME_MAX + 1];
	uint64_t peer_id;
	struct raft_uv_connect *req; /* client: until its callback fired */
	raft_uv_connect_cb cb;
	int status; /* RAFT_* handed to cb if the connection fails */
	uint8_t pre[KM_RT_PREAMBLE_MAX];
	size_t pre_len;
	uint8_t tcp_buf[KM_RT_CHUNK];
	uint8_t pump_buf[KM_RT_CHUNK];
	uint8_t tls_buf[KM_RT_CHUNK];
};

struct km_rt {
	uv_loop_t *loop;
	struct raft_uv_transport *rt;
	SSL_CTX *ctx;
	X509_STORE *store;
	km_raft_member *members;
	size_t n_members;
	uint64_t id;
	char address[KM_RAFT_ADDR_MAX + 1];
	unsigned handshake_ms;
	uv_tcp_t listener;
	bool listening;
	bool addr_in_use; /* the last listen failed: the port is taken */
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	bool closing;
	km_rconn *conns;
	pthread_mutex_t mu; /* guards stats */
	km_raft_tls_stats stats;
	uint64_t log_ns;     /* when a refusal was last logged */
	uint64_t suppressed; /* refusals not logged since */
	/* Peers refused for a while (km_raft_suspend_peer): a suspicion, not
	 * a revocation.  Loop thread only. */
	struct {
		char name[KM_NAME_MAX + 1]; /* "" = free slot */
		uint64_t until_ns;          /* km_mono_ns() */
	} suspended[KM_RAFT_SUSPEND_MAX];
};

/* A refused peer retries every few hundred ms: log one refusal in this. */
#define KM_RT_LOG_EVERY_NS (10ull * 1000000000ull)

/* One write of copied bytes. */
typedef struct km_rwrite {
	uv_write_t req;
	km_rconn *c;
	uv_buf_t buf;
	uint8_t data[];
} km_rwrite;

static void km_rconn_close(km_rconn *c, int status);
static void km_rconn_drive(km_rconn *c);

/* ---- helpers ----------------------------------------------------------- */

int
km_raft_addr_parse(const char *address, struct sockaddr_storage *ss)
{
	char host[KM_RAFT_ADDR_MAX + 1];
	const char *colon, *h = address;
	size_t hlen;
	unsigned long port;
	char *end;

	if (address == NULL || strlen(address) > KM_RAFT_ADDR_MAX
	    || (colon = strrchr(address, ':')) == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	hlen = (size_t)(colon - address);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		return KM_ERR_INVALID_ARG;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port > 65535) {
		return KM_ERR_INVALID_ARG;
	}
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0
	    || uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) {
		return 0;
	}
	return KM_ERR_INVALID_ARG;
}

static const km_raft_member *
km_rt_member(const km_rt *t, uint64_t id)
{
	size_t i;

	for (i = 0; i < t->n_members; i++) {
		if (t->members[i].id == id) {
			return &t->members[i];
		}
	}
	return NULL;
}

static void
km_rt_refused(km_rconn *c, int r, const char *why)
{
	km_rt *t = c->t;

	uint64_t now = km_mono_ns();

	pthread_mutex_lock(&t->mu);
	t->stats.refused++;
	t->stats.last_refusal = r;
	pthread_mutex_unlock(&t->mu);
	if (t->log_ns == 0 || now - t->log_ns >= KM_RT_LOG_EVERY_NS) {
		km_log(KM_LOG_WARN, "KM-RAFT-REFUSE", __func__, r,
		    "%s peer %llu (%s): %s (%llu more refused since the "
		    "last report)",
		    c->client ? "outgoing" : "incoming",
		    (unsigned long long)c->peer_id,
		    c->peer_cert_name[0] != '\0' ? c->peer_cert_name : "?",
		    why, (unsigned long long)t->suppressed);
		t->log_ns = now;
		t->suppressed = 0;
	} else {
		t->suppressed++;
	}
	km_rconn_close(c, RAFT_NOCONNECTION);
}

void
km_raft_transport_stats(struct raft_uv_transport *rt, km_raft_tls_stats *st)
{
	km_rt *t = rt->impl;

	pthread_mutex_lock(&t->mu);
	*st = t->stats;
	pthread_mutex_unlock(&t->mu);
}

/* ---- closing ----------------------------------------------------------- */

static void
km_rconn_unlink(km_rconn *c)
{
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else if (c->t->conns == c) {
		c->t->conns = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	c->prev = c->next = NULL;
}

static void
km_rconn_handle_closed(uv_handle_t *h)
{
	km_rconn *c = h->data;
	raft_uv_connect_cb cb;

	if (--c->open_handles > 0) {
		return;
	}
	km_rconn_unlink(c);
	/* A failed or cancelled connect learns it only now, as with libraft's
	 * own transport: the request's memory is the caller's again after. */
	if ((cb = c->cb) != NULL) {
		c->cb = NULL;
		cb(c->req, NULL,
		    c->status != 0 ? c->status : RAFT_NOCONNECTION);
	}
	SSL_free(c->ssl); /* frees both BIOs */
	free(c);
}

static void
km_rt_raft_end_closed(uv_handle_t *h)
{
	raft_free(h);
}

static void
km_rconn_close(km_rconn *c, int status)
{
	if (c->state == KM_RC_CLOSING) {
		return;
	}
	c->state = KM_RC_CLOSING;
	c->status = status;
	uv_close((uv_handle_t *)&c->tcp, km_rconn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, km_rconn_handle_closed);
	if (c->pump_init) {
		uv_close((uv_handle_t *)&c->pump, km_rconn_handle_closed);
	}
	if (c->raft_end != NULL) {
		/* Not handed to libraft yet (it would be NULL then). */
		uv_close((uv_handle_t *)c->raft_end, km_rt_raft_end_closed);
		c->raft_end = NULL;
	}
}

/* ---- writes ------------------------------------------------------------ */

static void
km_rwrite_done(uv_write_t *req, int status)
{
	km_rwrite *w = req->data;
	km_rconn *c = w->c;

	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		km_rconn_close(c, RAFT_NOCONNECTION);
	}
}

static int
km_rconn_write(km_rconn *c, uv_stream_t *s, const void *p, size_t len)
{
	km_rwrite *w;

	if ((w = malloc(sizeof(*w) + len)) == NULL) {
		return KM_ERR_ALLOC;
	}
	memcpy(w->data, p, len);
	w->c = c;
	w->req.data = w;
	w->buf = uv_buf_init((char *)w->data, (unsigned)len);
	if (uv_write(&w->req, s, &w->buf, 1, km_rwrite_done) != 0) {
		free(w);
		return KM_ERR_CONN;
	}
	return 0;
}

/* Send whatever OpenSSL queued for the peer. */
static int
km_rconn_flush(km_rconn *c)
{
	size_t pending;
	km_rwrite *w;
	int n;

	while (c->state != KM_RC_CLOSING
	    && (pending = BIO_ctrl_pending(c->net_out)) > 0) {
		if ((w = malloc(sizeof(*w) + pending)) == NULL) {
			return KM_ERR_ALLOC;
		}
		if ((n = BIO_read(c->net_out, w->data, (int)pending)) <= 0) {
			free(w);
			return KM_ERR_INTERNAL;
		}
		w->c = c;
		w->req.data = w;
		w->buf = uv_buf_init((char *)w->data, (unsigned)n);
		if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1,
		        km_rwrite_done)
		    != 0) {
			free(w);
			return KM_ERR_CONN;
		}
	}
	return 0;
}

/* ---- the plaintext side ------------------------------------------------ */

static void
km_rconn_pump_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	km_rconn *c = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)c->pump_buf, sizeof(c->pump_buf));
}

/* libraft wrote to its end: encrypt and send. */
static void
km_rconn_pump_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	km_rconn *c = s->data;

	if (nread == 0 || c->state == KM_RC_CLOSING) {
		return;
	}
	if (nread < 0) {
		/* libraft closed its stream: the connection is done. */
		km_rconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	ERR_clear_error();
	/* A memory BIO never pushes back, so SSL_write takes it all. */
	if (SSL_write(c->ssl, buf->base, (int)nread) != (int)nread
	    || km_rconn_flush(c) != 0) {
		km_rconn_close(c, RAFT_NOCONNECTION);
	}
}

/*
 * Authentication done (and, on the server, the preamble read): give libraft
 * its end of a fresh socketpair.
 */
static int
km_rconn_open(km_rconn *c)
{
	km_rt *t = c->t;
	uv_pipe_t *end = NULL;
	int sv[2] = { -1, -1 };
	raft_uv_connect_cb cb;
	int r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		return KM_ERR_IO;
	}
	if ((end = raft_malloc(sizeof(*end))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	if (uv_pipe_init(t->loop, &c->pump, 0) != 0) {
		raft_free(end);
		r = KM_ERR_IO;
		goto out;
	}
	c->pump.data = c;
	c->pump_init = true;
	c->open_handles++;
	if (uv_pipe_open(&c->pump, sv[0]) != 0) {
		raft_free(end);
		r = KM_ERR_IO;
		goto out;
	}
	sv[0] = -1;
	if (uv_pipe_init(t->loop, end, 0) != 0) {
		raft_free(end);
		r = KM_ERR_IO;
		goto out;
	}
	c->raft_end = end; /* closed with the connection until handed over */
	if (uv_pipe_open(end, sv[1]) != 0) {
		r = KM_ERR_IO;
		goto out;
	}
	sv[1] = -1;
	if (uv_read_start((uv_stream_t *)&c->pump, km_rconn_pump_alloc,
	        km_rconn_pump_read)
	    != 0) {
		r = KM_ERR_IO;
		goto out;
	}
	uv_timer_stop(&c->timer);
	c->state = KM_RC_OPEN;
	pthread_mutex_lock(&t->mu);
	t->stats.handshakes_ok++;
	pthread_mutex_unlock(&t->mu);

	c->raft_end = NULL; /* libraft's from here: it closes and frees it */
	if (c->client) {
		cb = c->cb;
		c->cb = NULL;
		cb(c->req, (uv_stream_t *)end, 0);
	} else {
		t->accept_cb(
		    t->rt, c->peer_id, c->peer->address, (uv_stream_t *)end);
	}
	r = 0;
out:
	if (sv[0] != -1) {
		close(sv[0]);
	}
	if (sv[1] != -1) {
		close(sv[1]);
	}
	return r;
}

/* ---- authentication ---------------------------------------------------- */

/* True while @name is suspended; an expired slot is freed here. */
static bool
km_rt_is_suspended(km_rt *t, const char *name)
{
	uint64_t now = km_mono_ns();
	size_t i;

	for (i = 0; i < KM_RAFT_SUSPEND_MAX; i++) {
		if (t->suspended[i].name[0] == '\0') {
			continue;
		}
		if (now >= t->suspended[i].until_ns) {
			t->suspended[i].name[0] = '\0';
			continue;
		}
		if (strcmp(t->suspended[i].name, name) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * The TLS handshake finished: check the peer beyond what OpenSSL did.  The
 * chain and CRL are checked again through km_pki_verify(), which also reads
 * the keymesh identity and insists on the node role (a client or admin
 * certificate of the same CA must not speak Raft).
 */
static int
km_rconn_verify_peer(km_rconn *c, const char **why)
{
	km_identity id;
	X509 *peer;
	int r;

	if (strcmp(SSL_get_version(c->ssl), "TLSv1.3") != 0) {
		*why = "not TLS 1.3";
		return KM_ERR_TLS;
	}
	if ((peer = SSL_get0_peer_certificate(c->ssl)) == NULL
	    || SSL_get_verify_result(c->ssl) != X509_V_OK) {
		*why = "no verified peer certificate";
		return KM_ERR_AUTH;
	}
	if ((r = km_pki_verify(c->t->store, peer, KM_ROLE_NODE, &id)) != 0) {
		*why = "not a valid node certificate of the mesh CA";
		return r;
	}
	snprintf(c->peer_cert_name, sizeof(c->peer_cert_name), "%s", id.name);
	if (c->client && strcmp(id.name, c->peer->name) != 0) {
		*why = "certificate name is not the member dialled";
		return KM_ERR_AUTH;
	}
	if (km_rt_is_suspended(c->t, id.name)) {
		*why = "suspended for a while: evidence against it "
		       "(km_raft_suspend_peer)";
		return KM_ERR_AUTH;
	}
	return 0;
}

static int
km_rconn_send_preamble(km_rconn *c)
{
	uint8_t p[KM_RT_PREAMBLE_MAX];
	size_t alen = strlen(c->t->address), i, off = 0;

	memcpy(p, km_rt_magic, sizeof(km_rt_magic));
	off += sizeof(km_rt_magic);
	for (i = 0; i < 8; i++) {
		p[off++] = (uint8_t)(c->t->id >> (56 - 8 * i));
	}
	for (i = 0; i < 4; i++) {
		p[off++] = (uint8_t)(alen >> (24 - 8 * i));
	}
	memcpy(p + off, c->t->address, alen);
	off += alen;
	ERR_clear_error();
	if (SSL_write(c->ssl, p, (int)off) != (int)off) {
		return KM_ERR_TLS;
	}
	return km_rconn_flush(c);
}

/* How long the preamble is, as far as its first 20 bytes tell. */
static int
km_rconn_preamble_len(const km_rconn *c, size_t *want, const char **why)
{
	uint32_t alen = 0;
	size_t i;

	*want = 8 + 8 + 4;
	if (c->pre_len < *want) {
		return 0;
	}
	for (i = 0; i < 4; i++) {
		alen = alen << 8 | c->pre[16 + i];
	}
	if (alen == 0 || alen > KM_RAFT_ADDR_MAX) {
		*why = "bad address length in preamble";
		return KM_ERR_BAD_FORMAT;
	}
	*want += alen;
	return 0;
}

/*
 * Take preamble bytes from @p; returns how many were used, or a negative
 * KM_ERR_* with *why set.  c->peer is set once the whole preamble is in.
 */
static int
km_rconn_take_preamble(
    km_rconn *c, const uint8_t *p, size_t len, const char **why)
{
	const km_raft_member *m;
	size_t want, used = 0, n, i;
	uint64_t id = 0;
	int r;

	for (;;) {
		if ((r = km_rconn_preamble_len(c, &want, why)) != 0) {
			return r;
		}
		if (c->pre_len >= want || used == len) {
			break;
		}
		n = want - c->pre_len;
		if (n > len - used) {
			n = len - used;
		}
		memcpy(c->pre + c->pre_len, p + used, n);
		c->pre_len += n;
		used += n;
	}
	if (c->pre_len < want) {
		return (int)used;
	}
	if (memcmp(c->pre, km_rt_magic, sizeof(km_rt_magic)) != 0) {
		*why = "bad preamble magic or version";
		return KM_ERR_BAD_VERSION;
	}
	for (i = 0; i < 8; i++) {
		id = id << 8 | c->pre[8 + i];
	}
	c->peer_id = id;
	if (id == 0 || id == c->t->id
	    || (m = km_rt_member(c->t, id)) == NULL) {
		*why = "unknown Raft id";
		return KM_ERR_AUTH;
	}
	if (strcmp(m->name, c->peer_cert_name) != 0) {
		*why = "certificate name is not the member of that Raft id";
		return KM_ERR_AUTH;
	}
	if (strlen(m->address) != want - 20
	    || memcmp(m->address, c->pre + 20, want - 20) != 0) {
		*why = "Raft address is not the member's";
		return KM_ERR_AUTH;
	}
	c->peer = m;
	return (int)used;
}

/* ---- the TLS side ------------------------------------------------------ */

static void
km_rconn_drive(km_rconn *c)
{
	const char *why = "TLS failure";
	long vr;
	int rc, e, r, used;

	if (c->state == KM_RC_HANDSHAKE) {
		ERR_clear_error();
		rc = SSL_do_handshake(c->ssl);
		if (rc != RET_OSSL_OK) {
			e = SSL_get_error(c->ssl, rc);
			/* An alert to send goes out either way. */
			(void)km_rconn_flush(c);
			if (e == SSL_ERROR_WANT_READ
			    || e == SSL_ERROR_WANT_WRITE) {
				return;
			}
			vr = SSL_get_verify_result(c->ssl);
			if (vr != X509_V_OK) {
				km_rt_refused(c,
				    vr == X509_V_ERR_CERT_REVOKED
				        ? KM_ERR_REVOKED
				        : KM_ERR_AUTH,
				    X509_verify_cert_error_string(vr));
			} else {
				km_rt_refused(
				    c, KM_ERR_TLS, "handshake failed");
			}
			return;
		}
		if (km_rconn_flush(c) != 0) {
			km_rconn_close(c, RAFT_NOCONNECTION);
			return;
		}
		if ((r = km_rconn_verify_peer(c, &why)) != 0) {
			km_rt_refused(c, r, why);
			return;
		}
		if (c->client) {
			if (km_rconn_send_preamble(c) != 0
			    || km_rconn_open(c) != 0) {
				km_rconn_close(c, RAFT_NOCONNECTION);
				return;
			}
		} else {
			c->state = KM_RC_PREAMBLE;
		}
	}
	while (c->state == KM_RC_PREAMBLE || c->state == KM_RC_OPEN) {
		ERR_clear_error();
		rc = SSL_read(c->ssl, c->tls_buf, sizeof(c->tls_buf));
		if (rc <= 0) {
			e = SSL_get_error(c->ssl, rc);
			if (e == SSL_ERROR_WANT_READ) {
				break;
			}
			/* close_notify, an alert (the peer refused us) or a
			 * record failure: either way the link is gone. */
			(void)km_rconn_flush(c);
			if (e == SSL_ERROR_SSL && c->state == KM_RC_OPEN
			    && c->client) {
				km_log(KM_LOG_DEBUG, "KM-RAFT-TLS-CLOSED",
				    __func__, KM_ERR_TLS,
				    "peer %llu closed with an alert",
				    (unsigned long long)c->peer_id);
			}
			km_rconn_close(c, RAFT_NOCONNECTION);
			return;
		}
		used = 0;
		if (c->state == KM_RC_PREAMBLE) {
			used = km_rconn_take_preamble(
			    c, c->tls_buf, (size_t)rc, &why);
			if (used < 0) {
				km_rt_refused(c, used, why);
				return;
			}
			if (c->peer == NULL) {
				continue;
			}
			if (c->t->closing || km_rconn_open(c) != 0) {
				km_rconn_close(c, RAFT_NOCONNECTION);
				return;
			}
		}
		if (rc > used
		    && km_rconn_write(c, (uv_stream_t *)&c->pump,
		           c->tls_buf + used, (size_t)(rc - used))
		        != 0) {
			km_rconn_close(c, RAFT_NOCONNECTION);
			return;
		}
	}
	if (km_rconn_flush(c) != 0) {
		km_rconn_close(c, RAFT_NOCONNECTION);
	}
}

static void
km_rconn_tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	km_rconn *c = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)c->tcp_buf, sizeof(c->tcp_buf));
}

static void
km_rconn_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	km_rconn *c = s->data;

	if (nread == 0 || c->state == KM_RC_CLOSING) {
		return;
	}
	if (nread < 0) {
		if (c->state == KM_RC_HANDSHAKE
		    || c->state == KM_RC_PREAMBLE) {
			/* The peer hung up mid-handshake: most often it
			 * refused our certificate. */
			km_rt_refused(c, KM_ERR_CONN,
			    "connection closed during the handshake");
			return;
		}
		km_rconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	if (BIO_write(c->net_in, buf->base, (int)nread) != (int)nread) {
		km_rconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	km_rconn_drive(c);
}

static void
km_rconn_timeout(uv_timer_t *timer)
{
	km_rconn *c = timer->data;

	if (c->state != KM_RC_OPEN) {
		km_log(KM_LOG_DEBUG, "KM-RAFT-TIMEOUT", __func__,
		    KM_ERR_TIMEOUT, "peer %llu not authenticated in time",
		    (unsigned long long)c->peer_id);
		km_rconn_close(c, RAFT_NOCONNECTION);
	}
}

/* A connection object with its TCP handle and timer initialised. */
static int
km_rconn_new(km_rt *t, bool client, km_rconn **out)
{
	km_rconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KM_ERR_ALLOC;
	}
	c->t = t;
	c->client = client;
	if ((c->ssl = SSL_new(t->ctx)) == NULL
	    || (c->net_in = BIO_new(BIO_s_mem())) == NULL
	    || (c->net_out = BIO_new(BIO_s_mem())) == NULL) {
		BIO_free(c->net_in);
		SSL_free(c->ssl);
		free(c);
		return KM_ERR_CRYPTO;
	}
	/* An empty memory BIO reads as "retry", not as end of file. */
	BIO_set_mem_eof_return(c->net_in, -1);
	SSL_set_bio(c->ssl, c->net_in, c->net_out);
	if (client) {
		SSL_set_connect_state(c->ssl);
	} else {
		SSL_set_accept_state(c->ssl);
	}
	uv_tcp_init(t->loop, &c->tcp);
	uv_timer_init(t->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = t->conns;
	if (t->conns != NULL) {
		t->conns->prev = c;
	}
	t->conns = c;
	uv_timer_start(&c->timer, km_rconn_timeout, t->handshake_ms, 0);
	*out = c;
	return 0;
}

/* ---- the raft_uv_transport methods ------------------------------------- */

static int
km_rt_init(struct raft_uv_transport *rt, raft_id id, const char *address)
{
	km_rt *t = rt->impl;

	if (strlen(address) > KM_RAFT_ADDR_MAX) {
		return RAFT_NAMETOOLONG;
	}
	t->id = id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	return 0;
}

static void
km_rt_incoming(uv_stream_t *server, int status)
{
	km_rt *t = server->data;
	km_rconn *c;

	if (status < 0 || t->closing || km_rconn_new(t, false, &c) != 0) {
		return;
	}
	c->state = KM_RC_HANDSHAKE;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0
	    || uv_read_start((uv_stream_t *)&c->tcp, km_rconn_tcp_alloc,
	           km_rconn_tcp_read)
	        != 0) {
		km_rconn_close(c, RAFT_NOCONNECTION);
	}
}

static int
km_rt_listen(struct raft_uv_transport *rt, raft_uv_accept_cb cb)
{
	km_rt *t = rt->impl;
	struct sockaddr_storage ss;
	int rv;

	if (km_raft_addr_parse(t->address, &ss) != 0) {
		snprintf(rt->errmsg, sizeof(rt->errmsg), "bad address %s",
		    t->address);
		return RAFT_INVALID;
	}
	t->accept_cb = cb;
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->listening = true;
	/* libuv may defer bind's EADDRINUSE to uv_listen */
	if ((rv = uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0)) != 0
	    || (rv = uv_listen(
	            (uv_stream_t *)&t->listener, 64, km_rt_incoming))
	        != 0) {
		t->addr_in_use = rv == UV_EADDRINUSE;
		snprintf(rt->errmsg, sizeof(rt->errmsg),
		    "cannot listen on %s: %s", t->address, uv_strerror(rv));
		return RAFT_IOERR;
	}
	t->addr_in_use = false;
	return 0;
}

bool
km_raft_transport_addr_in_use(struct raft_uv_transport *rt)
{
	km_rt *t = rt->impl;

	return t != NULL && t->addr_in_use;
}

static void
km_rt_connected(uv_connect_t *req, int status)
{
	km_rconn *c = req->data;

	if (c->state == KM_RC_CLOSING) {
		return;
	}
	if (status != 0) {
		km_rconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	c->state = KM_RC_HANDSHAKE;
	if (uv_read_start(
	        (uv_stream_t *)&c->tcp, km_rconn_tcp_alloc, km_rconn_tcp_read)
	    != 0) {
		km_rconn_close(c, RAFT_NOCONNECTION);
		return;
	}
	km_rconn_drive(c);
}

static int
km_rt_connect(struct raft_uv_transport *rt, struct raft_uv_connect *req,
    raft_id id, const char *address, raft_uv_connect_cb cb)
{
	km_rt *t = rt->impl;
	const km_raft_member *m;
	struct sockaddr_storage ss;
	km_rconn *c;

	if (t->closing) {
		return RAFT_CANCELED;
	}
	/* Dial only members, at the address the member table gives. */
	if ((m = km_rt_member(t, id)) == NULL
	    || strcmp(m->address, address) != 0
	    || km_raft_addr_parse(address, &ss) != 0) {
		snprintf(rt->errmsg, sizeof(rt->errmsg),
		    "server %llu at %s is not a known member",
		    (unsigned long long)id, address);
		return RAFT_NOCONNECTION;
	}
	if (km_rconn_new(t, true, &c) != 0) {
		return RAFT_NOMEM;
	}
	c->peer = m;
	c->peer_id = id;
	c->req = req;
	c->cb = cb;
	c->connect.data = c;
	if (uv_tcp_connect(
	        &c->connect, &c->tcp, (struct sockaddr *)&ss, km_rt_connected)
	    != 0) {
		/* Fail at once, without the callback. */
		c->cb = NULL;
		km_rconn_close(c, RAFT_NOCONNECTION);
		return RAFT_NOCONNECTION;
	}
	return 0;
}

static void
km_rt_listener_closed(uv_handle_t *h)
{
	km_rt *t = h->data;

	if (t->close_cb != NULL) {
		t->close_cb(t->rt);
	}
}

static void
km_rt_close(struct raft_uv_transport *rt, raft_uv_transport_close_cb cb)
{
	km_rt *t = rt->impl;
	km_rconn *c, *next;

	t->closing = true;
	t->close_cb = cb;
	/* Cancel what has not reached libraft; open streams are libraft's
	 * to close, and their pumps follow when it does. */
	for (c = t->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state != KM_RC_OPEN) {
			km_rconn_close(c, RAFT_CANCELED);
		}
	}
	if (t->listening) {
		t->listening = false;
		uv_close((uv_handle_t *)&t->listener, km_rt_listener_closed);
	} else if (cb != NULL) {
		cb(rt);
	}
}

int
km_raft_transport_set_store(struct raft_uv_transport *rt, X509_STORE *store)
{
	km_rt *t = rt->impl;
	km_rconn *c, *next;

	if (SSL_CTX_set1_verify_cert_store(t->ctx, store) != RET_OSSL_OK
	    || X509_STORE_up_ref(store) != RET_OSSL_OK) {
		return KM_ERR_CRYPTO;
	}
	X509_STORE_free(t->store);
	t->store = store;
	/*
	 * A link authenticated under the old CRL may be to a peer revoked
	 * now.  Drop them all: libraft reconnects within its retry delay,
	 * and each new handshake sees the new CRL.
	 */
	for (c = t->conns; c != NULL; c = next) {
		next = c->next;
		km_rconn_close(c, RAFT_NOCONNECTION);
	}
	return 0;
}

void
km_raft_transport_suspend(
    struct raft_uv_transport *rt, const char *name, uint64_t until_ns)
{
	km_rt *t = rt->impl;
	km_rconn *c, *next;
	size_t i, slot = KM_RAFT_SUSPEND_MAX;

	for (i = 0; i < KM_RAFT_SUSPEND_MAX; i++) {
		if (strcmp(t->suspended[i].name, name) == 0) {
			slot = i;
			break;
		}
	}
	if (until_ns == 0) { /* lifted */
		if (slot < KM_RAFT_SUSPEND_MAX) {
			t->suspended[slot].name[0] = '\0';
		}
		return;
	}
	for (i = 0; slot == KM_RAFT_SUSPEND_MAX && i < KM_RAFT_SUSPEND_MAX;
	     i++) {
		if (t->suspended[i].name[0] == '\0') {
			slot = i;
		}
	}
	if (slot == KM_RAFT_SUSPEND_MAX) {
		/* full: the suspension that ends first makes room */
		slot = 0;
		for (i = 1; i < KM_RAFT_SUSPEND_MAX; i++) {
			if (t->suspended[i].until_ns
			    < t->suspended[slot].until_ns) {
				slot = i;
			}
		}
	}
	snprintf(t->suspended[slot].name, sizeof(t->suspended[slot].name),
	    "%s", name);
	t->suspended[slot].until_ns = until_ns;
	/* Links to it already open are cut now; a new one is refused after
	 * its handshake (km_rconn_verify_peer). */
	for (c = t->conns; c != NULL; c = next) {
		next = c->next;
		if ((c->peer != NULL && strcmp(c->peer->name, name) == 0)
		    || strcmp(c->peer_cert_name, name) == 0) {
			km_rconn_close(c, RAFT_NOCONNECTION);
		}
	}
}

/* ---- set-up ------------------------------------------------------------ */

static int
km_rt_ctx_new(const char *ca_pem, const char *crl_pem, const char *cert_pem,
    const char *key_pem, SSL_CTX **ctxp, X509_STORE **storep)
{
	SSL_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	int r;

	if ((r = km_pki_store_load(ca_pem, crl_pem, &store)) != 0) {
		goto out;
	}
	r = KM_ERR_BAD_FORMAT;
	if ((bio = BIO_new_mem_buf(cert_pem, -1)) == NULL
	    || (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		goto out;
	}
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key_pem, -1)) == NULL
	    || (key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL))
	        == NULL) {
		goto out;
	}
	r = KM_ERR_CRYPTO;
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL
	    || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)
	        != RET_OSSL_OK
	    || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)
	        != RET_OSSL_OK
	    || SSL_CTX_set1_verify_cert_store(ctx, store) != RET_OSSL_OK
	    || SSL_CTX_use_certificate(ctx, cert) != RET_OSSL_OK
	    || SSL_CTX_use_PrivateKey(ctx, key) != RET_OSSL_OK) {
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != RET_OSSL_OK) {
		r = KM_ERR_INVALID_ARG;
		goto out;
	}
	SSL_CTX_set_verify(
	    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* No resumption: every connection shows its certificate afresh. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	(void)SSL_CTX_set_num_tickets(ctx, 0);
	*ctxp = ctx;
	ctx = NULL;
	*storep = store;
	store = NULL;
	r = 0;
out:
	BIO_free(bio);
	X509_free(cert);
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	X509_STORE_free(store);
	return r;
}

int
km_raft_transport_init(struct raft_uv_transport *rt, uv_loop_t *loop,
    const char *ca_pem, const char *crl_pem, const char *cert_pem,
    const char *key_pem, const km_raft_member *members, size_t n_members,
    unsigned handshake_ms)
{
	km_rt *t;
	int r;

	if (rt == NULL || loop == NULL || ca_pem == NULL || cert_pem == NULL
	    || key_pem == NULL || members == NULL || n_members == 0) {
		return KM_ERR_INVALID_ARG;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL
	    || (t->members = calloc(n_members, sizeof(*t->members))) == NULL) {
		free(t);
		return KM_ERR_ALLOC;
	}
	memcpy(t->members, members, n_members * sizeof(*members));
	t->n_members = n_members;
	if ((r = km_rt_ctx_new(
	         ca_pem, crl_pem, cert_pem, key_pem, &t->ctx, &t->store))
	    != 0) {
		free(t->members);
		free(t);
		return r;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->loop = loop;
	t->rt = rt;
	t->handshake_ms = handshake_ms != 0 ? handshake_ms : 5000;
	memset(rt, 0, sizeof(*rt));
	rt->impl = t;
	rt->init = km_rt_init;
	rt->listen = km_rt_listen;
	rt->connect = km_rt_connect;
	rt->close = km_rt_close;
	return 0;
}

void
km_raft_transport_free(struct raft_uv_transport *rt)
{
	km_rt *t;

	if (rt == NULL || (t = rt->impl) == NULL) {
		return;
	}
	SSL_CTX_free(t->ctx);
	X509_STORE_free(t->store);
	pthread_mutex_destroy(&t->mu);
	free(t->members);
	free(t);
	rt->impl = NULL;
}
