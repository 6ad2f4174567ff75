/*
 * Unit tests for src/net: the OpenSSL TLS 1.3 engine, the signed
 * envelopes and the req/rep server and client.  Loopback only; every
 * server listens on port 0 and reports the port it got.
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "kmt.h"
#include "net/envelope.h"
#include "net/net.h"
#include "net/tls.h"
#include "pki/pki.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define T_TIMEOUT     5000
/* generous: a loaded machine may not even try a handshake in 1.5 s */
#define T_REFUSE_WAIT 4000

static char ca_a[4096]; /* the mesh CA: n1, n2 (nodes), c1 (client) */
static char ca_b[4096]; /* another CA with the same names */
static km_net_creds *n1, *n2, *c1, *b_c1, *b_n1;

/* ---- fixtures and helpers ---------------------------------------------- */

static int
make_ca(char *dir, size_t len, const char *const *nodes,
    const char *const *clients)
{
	const char *tmp = kmt_tmpdir();
	size_t i;

	if (tmp == NULL || snprintf(dir, len, "%s", tmp) >= (int)len
	    || km_pki_ca_init(dir, 0) != 0) {
		return -1;
	}
	for (i = 0; nodes != NULL && nodes[i] != NULL; i++) {
		if (km_pki_cert_issue(dir, KM_ROLE_NODE, nodes[i], 0) != 0) {
			return -1;
		}
	}
	for (i = 0; clients != NULL && clients[i] != NULL; i++) {
		if (km_pki_cert_issue(dir, KM_ROLE_CLIENT, clients[i], 0)
		    != 0) {
			return -1;
		}
	}
	return 0;
}

static int
suite_init(void)
{
	static const char *const nodes[] = { "n1", "n2", NULL };
	static const char *const clients[] = { "c1", NULL };

	km_log_init("test-tls", KM_LOG_ERR);
	if (make_ca(ca_a, sizeof(ca_a), nodes, clients) != 0
	    || make_ca(ca_b, sizeof(ca_b), nodes, clients) != 0) {
		return -1;
	}
	if (km_net_creds_load(ca_a, "n1", &n1) != 0
	    || km_net_creds_load(ca_a, "n2", &n2) != 0
	    || km_net_creds_load(ca_a, "c1", &c1) != 0
	    || km_net_creds_load(ca_b, "c1", &b_c1) != 0
	    || km_net_creds_load(ca_b, "n1", &b_n1) != 0) {
		return -1;
	}
	return 0;
}

static int
suite_fini(void)
{
	km_net_creds_free(n1);
	km_net_creds_free(n2);
	km_net_creds_free(c1);
	km_net_creds_free(b_c1);
	km_net_creds_free(b_n1);
	return 0;
}

/* Echo: "NAME|ROLE|" followed by the request. */
static int
echo_handler(void *arg, const km_identity *peer, const uint8_t *req,
    size_t len, km_buf *reply)
{
	(void)arg;
	if (len >= 4 && memcmp(req, "FAIL", 4) == 0) {
		return KM_ERR_POLICY;
	}
	if (len >= 5 && memcmp(req, "SLEEP", 5) == 0) {
		usleep(400 * 1000);
	}
	km_buf_put_raw(reply, peer->name, strlen(peer->name));
	km_buf_put_raw(reply, "|", 1);
	km_buf_put_raw(
	    reply, km_role_name(peer->role), strlen(km_role_name(peer->role)));
	km_buf_put_raw(reply, "|", 1);
	km_buf_put_raw(reply, req, len);
	return 0;
}

static km_net_server *
start_server(km_net_creds *creds, const km_net_server_opts *o, int *port)
{
	km_net_server *s = NULL;

	if (km_net_server_start(
	        creds, "tls+tcp://127.0.0.1:0", o, echo_handler, NULL, &s)
	    != 0) {
		return NULL;
	}
	if (km_net_server_port(s, port) != 0 || *port <= 0) {
		km_net_server_stop(s);
		return NULL;
	}
	return s;
}

static km_net_client *
open_client(km_net_creds *creds, int port, const char *peer)
{
	km_net_client *c = NULL;
	char url[64];

	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	if (km_net_client_open(creds, url, peer, NULL, &c) != 0) {
		return NULL;
	}
	return c;
}

/* One call; returns its result and checks the echo when it succeeds. */
static int
echo_call_t(km_net_client *c, const char *msg, const char *who, int timeout_ms)
{
	km_buf reply;
	km_identity peer;
	char want[256];
	int r;

	km_buf_init(&reply);
	r = km_net_client_call(c, msg, strlen(msg), timeout_ms, &reply, &peer);
	if (r == 0) {
		snprintf(want, sizeof(want), "%s|%s", who, msg);
		if (reply.len != strlen(want)
		    || memcmp(reply.data, want, reply.len) != 0) {
			r = KM_ERR_INTERNAL;
		}
	}
	km_buf_free(&reply);
	return r;
}

static int
echo_call(km_net_client *c, const char *msg, const char *who)
{
	return echo_call_t(c, msg, who, T_TIMEOUT);
}

static char *
slurp(const char *dir, const char *what, const char *suffix)
{
	char path[4200];
	uint8_t *data = NULL;
	size_t len;

	if (km_pki_path(path, sizeof(path), dir, what, suffix) != 0
	    || km_read_file(path, &data, &len, 1u << 20) != 0) {
		return NULL;
	}
	return (char *)data;
}

/*
 * A plain OpenSSL client: connects, handshakes with at most @max_version,
 * and reads the server's 8-byte SP header, which nng sends only once the
 * TLS handshake (with our certificate) was accepted.
 * Returns 1 accepted, 0 refused, -1 harness failure.
 */
static int
raw_probe(int port, const char *dir, const char *name, int max_version)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	char path[4200], buf[8];
	int fd = -1, res = -1, n;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		goto out;
	}
	SSL_CTX_set_max_proto_version(ctx, max_version);
	if (km_pki_path(path, sizeof(path), dir, "ca.crt", NULL) != 0
	    || SSL_CTX_load_verify_locations(ctx, path, NULL) != 1) {
		goto out;
	}
	if (name != NULL) {
		if (km_pki_path(path, sizeof(path), dir, name, ".crt") != 0
		    || SSL_CTX_use_certificate_file(
		           ctx, path, SSL_FILETYPE_PEM)
		        != 1
		    || km_pki_path(path, sizeof(path), dir, name, ".key") != 0
		    || SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM)
		        != 1) {
			goto out;
		}
	}
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
	    || (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		goto out;
	}
	res = 0;
	if (SSL_connect(ssl) != 1) {
		goto out;
	}
	n = SSL_read(ssl, buf, sizeof(buf));
	if (n == 8 && memcmp(buf, "\0SP\0", 4) == 0) {
		res = 1;
	}
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0) {
		close(fd);
	}
	ERR_clear_error();
	return res;
}

/* ---- engine ------------------------------------------------------------ */

/*
 * In a fresh process (re-running this binary): nng 1.5.2 does not survive
 * nng_fini() followed by more sockets in the same process reliably (a
 * destroyed global lock), so the re-registration check runs on its own.
 */
static int
fini_child(void)
{
	if (km_net_init() != 0
	    || strcmp(km_net_engine_name(), KM_TLS_ENGINE_NAME) != 0) {
		return 1;
	}
	/* nng_fini() puts mbed TLS back on the next init ... */
	nng_fini();
	if (strcmp(nng_tls_engine_name(), KM_TLS_ENGINE_NAME) == 0) {
		return 2;
	}
	/* ... and km_net_init() puts ours back again */
	if (km_net_init() != 0
	    || strcmp(km_net_engine_name(), KM_TLS_ENGINE_NAME) != 0) {
		return 3;
	}
	return 0;
}

static void
test_engine_register(void)
{
	char self[4096];
	ssize_t n;

	CU_ASSERT(km_net_init() == 0);
	CU_ASSERT(km_net_init() == 0);
	CU_ASSERT_STRING_EQUAL(km_net_engine_name(), KM_TLS_ENGINE_NAME);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	CU_ASSERT_FATAL(n > 0);
	self[n] = '\0';
	CU_ASSERT(kmt_run("'%s' --fini-child", self) == 0);
}

static void
test_engine_version_clamp(void)
{
	nng_tls_config *cfg = NULL;

	CU_ASSERT_FATAL(km_net_init() == 0);
	CU_ASSERT_FATAL(nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT) == 0);
	CU_ASSERT(nng_tls_config_version(cfg, NNG_TLS_1_0, NNG_TLS_1_2)
	    == NNG_ENOTSUP);
	CU_ASSERT(nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_3) == 0);
	/* accepted, but verification stays required (no_client_cert) */
	CU_ASSERT(nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE) == 0);
	CU_ASSERT(
	    nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED) == 0);
	CU_ASSERT(
	    nng_tls_config_ca_chain(cfg, "not a pem", NULL) == NNG_EINVAL);
	nng_tls_config_free(cfg);
}

/* ---- connections ------------------------------------------------------- */

static void
test_handshake_echo(void)
{
	km_net_server *s;
	km_net_client *c;
	km_net_tls_info info;
	km_buf reply;
	km_identity peer;
	int port = 0;

	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(km_net_client_wait_connected(c, T_TIMEOUT) == 0);
	CU_ASSERT(km_net_client_connected(c));
	CU_ASSERT(echo_call(c, "hello", "c1|client") == 0);

	km_buf_init(&reply);
	CU_ASSERT(
	    km_net_client_call(c, "x", 1, T_TIMEOUT, &reply, &peer) == 0);
	CU_ASSERT_STRING_EQUAL(peer.name, "n1");
	CU_ASSERT(peer.role == KM_ROLE_NODE);
	/* a handler's error comes back as an error envelope */
	CU_ASSERT(km_net_client_call(c, "FAIL", 4, T_TIMEOUT, &reply, &peer)
	    == KM_ERR_POLICY);
	CU_ASSERT_STRING_EQUAL(peer.name, "n1");
	km_buf_free(&reply);

	CU_ASSERT(km_net_client_tls_info(c, &info) == 0);
	CU_ASSERT_STRING_EQUAL(info.version, "TLSv1.3");
	CU_ASSERT(strncmp(info.cipher, "TLS_", 4) == 0);
	CU_ASSERT(info.handshake_us > 0);
	CU_ASSERT(km_net_server_refused(s) == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
}

static void
test_handshake_wrong_ca(void)
{
	km_net_server *s, *sb;
	km_net_client *c;
	uint64_t bad0, bad1;
	int port = 0, portb = 0, r;

	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	km_tls_stats(NULL, &bad0);
	/* a client of another CA is refused by the server */
	CU_ASSERT_FATAL((c = open_client(b_c1, port, "n1")) != NULL);
	r = km_net_client_wait_connected(c, T_REFUSE_WAIT);
	CU_ASSERT(r == KM_ERR_AUTH || r == KM_ERR_TLS);
	CU_ASSERT(echo_call_t(c, "x", "c1|client", 300) != 0);
	km_net_client_close(c);
	km_tls_stats(NULL, &bad1);
	CU_ASSERT(bad1 > bad0);

	/* a server of another CA is refused by our client */
	CU_ASSERT_FATAL((sb = start_server(b_n1, NULL, &portb)) != NULL);
	CU_ASSERT_FATAL((c = open_client(c1, portb, "n1")) != NULL);
	r = km_net_client_wait_connected(c, T_REFUSE_WAIT);
	CU_ASSERT(r == KM_ERR_AUTH);
	km_net_client_close(c);
	km_net_server_stop(sb);

	/* and the first server still serves its own mesh */
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "still", "c1|client") == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
}

static void
test_handshake_wrong_name(void)
{
	km_net_server *s;
	km_net_client *c;
	int port = 0;

	/* n2 answers where the client expects n1: the DNS SAN check fails */
	CU_ASSERT_FATAL((s = start_server(n2, NULL, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(
	    km_net_client_wait_connected(c, T_REFUSE_WAIT) == KM_ERR_AUTH);
	km_net_client_close(c);
	km_net_server_stop(s);
}

static void
test_handshake_revoked(void)
{
	static const char *const nodes[] = { "r-n1", NULL };
	static const char *const clients[] = { "r-c1", "r-c2", NULL };
	char dir[4096];
	km_net_creds *srv = NULL, *good = NULL, *bad = NULL, *tmp = NULL;
	int r;
	km_net_server *s;
	km_net_client *c;
	int port = 0;

	CU_ASSERT_FATAL(make_ca(dir, sizeof(dir), nodes, clients) == 0);
	/* the client's own credentials predate its revocation */
	CU_ASSERT_FATAL(km_net_creds_load(dir, "r-c2", &bad) == 0);
	CU_ASSERT_FATAL(km_pki_cert_revoke(dir, "r-c2") == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "r-n1", &srv) == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "r-c1", &good) == 0);
	/* loading it now fails: our own certificate is on the CRL */
	CU_ASSERT(km_net_creds_load(dir, "r-c2", &tmp) == KM_ERR_REVOKED);

	CU_ASSERT_FATAL((s = start_server(srv, NULL, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(bad, port, "r-n1")) != NULL);
	r = km_net_client_wait_connected(c, T_REFUSE_WAIT);
	CU_ASSERT(r == KM_ERR_REVOKED);
	CU_ASSERT(echo_call_t(c, "x", "r-c2|client", 300) == KM_ERR_REVOKED);
	km_net_client_close(c);

	CU_ASSERT_FATAL((c = open_client(good, port, "r-n1")) != NULL);
	CU_ASSERT(echo_call(c, "x", "r-c1|client") == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
	km_net_creds_free(srv);
	km_net_creds_free(good);
	km_net_creds_free(bad);
}

static void
test_revoked_live_envelope(void)
{
	static const char *const nodes[] = { "l-n1", NULL };
	static const char *const clients[] = { "l-c1", "l-c2", NULL };
	char dir[4096], *crl;
	km_net_creds *srv = NULL, *cl = NULL, *other = NULL;
	km_net_server *s;
	km_net_client *c, *c2;
	int port = 0;

	CU_ASSERT_FATAL(make_ca(dir, sizeof(dir), nodes, clients) == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "l-n1", &srv) == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "l-c1", &cl) == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "l-c2", &other) == 0);
	CU_ASSERT_FATAL((s = start_server(srv, NULL, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(cl, port, "l-n1")) != NULL);
	CU_ASSERT_FATAL((c2 = open_client(other, port, "l-n1")) != NULL);
	CU_ASSERT(echo_call(c, "before", "l-c1|client") == 0);
	CU_ASSERT(echo_call(c2, "before", "l-c2|client") == 0);

	/* revoke l-c1 and hand the new CRL to the running server */
	CU_ASSERT_FATAL(km_pki_cert_revoke(dir, "l-c1") == 0);
	CU_ASSERT_FATAL((crl = slurp(dir, "crl.pem", NULL)) != NULL);
	CU_ASSERT(km_net_creds_set_crl(srv, crl) == 0);
	CU_ASSERT(km_net_creds_set_crl(srv, "garbage") != 0);
	free(crl);

	/* same live TLS connection; the envelope check catches it */
	CU_ASSERT(km_net_client_connected(c));
	CU_ASSERT(echo_call(c, "after", "l-c1|client") == KM_ERR_REVOKED);
	CU_ASSERT(km_net_server_refused(s) == 1);
	CU_ASSERT(echo_call(c2, "after", "l-c2|client") == 0);
	km_net_client_close(c);
	km_net_client_close(c2);

	/* and a new connection is refused in the handshake */
	CU_ASSERT_FATAL((c = open_client(cl, port, "l-n1")) != NULL);
	CU_ASSERT(
	    km_net_client_wait_connected(c, T_REFUSE_WAIT) == KM_ERR_REVOKED);
	km_net_client_close(c);
	km_net_server_stop(s);
	km_net_creds_free(srv);
	km_net_creds_free(cl);
	km_net_creds_free(other);
}

static void
test_revoked_server_reply(void)
{
	static const char *const nodes[] = { "s-n1", NULL };
	static const char *const clients[] = { "s-c1", NULL };
	char dir[4096], *crl;
	km_net_creds *srv = NULL, *cl = NULL;
	km_net_server *s;
	km_net_client *c;
	int port = 0;

	CU_ASSERT_FATAL(make_ca(dir, sizeof(dir), nodes, clients) == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "s-n1", &srv) == 0);
	CU_ASSERT_FATAL(km_net_creds_load(dir, "s-c1", &cl) == 0);
	CU_ASSERT_FATAL((s = start_server(srv, NULL, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(cl, port, "s-n1")) != NULL);
	CU_ASSERT(echo_call(c, "before", "s-c1|client") == 0);
	/* the server node is revoked; only the client learns of it */
	CU_ASSERT_FATAL(km_pki_cert_revoke(dir, "s-n1") == 0);
	CU_ASSERT_FATAL((crl = slurp(dir, "crl.pem", NULL)) != NULL);
	CU_ASSERT(km_net_creds_set_crl(cl, crl) == 0);
	free(crl);
	/* the server still answers, but its signed reply is refused */
	CU_ASSERT(echo_call(c, "after", "s-c1|client") == KM_ERR_REVOKED);
	km_net_client_close(c);
	km_net_server_stop(s);
	km_net_creds_free(srv);
	km_net_creds_free(cl);
}

static void
test_server_role_policy(void)
{
	km_net_server_opts o = { .workers = 1, .peer_role = KM_ROLE_NODE };
	km_net_server *s;
	km_net_client *c;
	int port = 0;

	CU_ASSERT_FATAL((s = start_server(n1, &o, &port)) != NULL);
	/* a client certificate may connect, but a node-only server refuses
	 * its requests */
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "x", "c1|client") == KM_ERR_AUTH);
	km_net_client_close(c);
	/* another node is served */
	CU_ASSERT_FATAL((c = open_client(n2, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "x", "n2|node") == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
}

static void
test_no_client_cert(void)
{
	km_net_server *s;
	km_net_client *c;
	int port = 0;

	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	/* a TLS 1.3 client with a mesh certificate is let in ... */
	CU_ASSERT(raw_probe(port, ca_a, "c1", TLS1_3_VERSION) == 1);
	/* ... and without one it is not */
	CU_ASSERT(raw_probe(port, ca_a, NULL, TLS1_3_VERSION) == 0);
	if (kmt_have_program("openssl")) {
		CU_ASSERT(
		    kmt_run("openssl s_client -connect 127.0.0.1:%d "
		            "-tls1_3 -CAfile %s/ca.crt -verify_return_error "
		            "-ign_eof </dev/null 2>&1 | grep -q 'alert "
		            "certificate required'",
		        port, ca_a)
		    == 0);
	}
	/*
	 * Regression: a peer that handshakes and hangs up before nng's
	 * SP header once made the listener stop accepting (the engine
	 * reported NNG_ECLOSED); the listener must still serve.
	 */
	CU_ASSERT(raw_probe(port, ca_a, "c1", TLS1_3_VERSION) == 1);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "still here", "c1|client") == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
}

static void
test_tls12_refused(void)
{
	km_net_server *s;
	km_net_client *c;
	int port = 0;

	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	CU_ASSERT(raw_probe(port, ca_a, "c1", TLS1_2_VERSION) == 0);
	if (kmt_have_program("openssl")) {
		/* the brief's own check, with the stock client */
		CU_ASSERT(kmt_run("openssl s_client -connect 127.0.0.1:%d "
		                  "-tls1_2 -CAfile %s/ca.crt -cert "
		                  "%s/certs/c1.crt -key %s/private/c1.key "
		                  "</dev/null >/dev/null 2>&1",
		              port, ca_a, ca_a, ca_a)
		    != 0);
		CU_ASSERT(kmt_run("openssl s_client -connect 127.0.0.1:%d "
		                  "-tls1_3 -CAfile %s/ca.crt -cert "
		                  "%s/certs/c1.crt -key %s/private/c1.key "
		                  "-verify_return_error </dev/null 2>&1 | "
		                  "grep -q 'New, TLSv1.3, Cipher is'",
		              port, ca_a, ca_a, ca_a)
		    == 0);
	}
	/* the listener still serves */
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "after 1.2", "c1|client") == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
}

static void
test_garbage_stream(void)
{
	km_net_server *s;
	km_net_client *c;
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	uint8_t junk[4096], buf[256];
	int port = 0, fd, idle, i;
	ssize_t n;

	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* an idle connection that never says a word stays open meanwhile */
	idle = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT(connect(idle, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	for (i = 0; i < 3; i++) {
		CU_ASSERT(km_random(junk, sizeof(junk)) == 0);
		if (i == 1) {
			/* a TLS record header with a huge length */
			memcpy(junk, "\x16\x03\x01\xff\xff", 5);
		}
		fd = socket(AF_INET, SOCK_STREAM, 0);
		CU_ASSERT_FATAL(fd >= 0);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		CU_ASSERT(
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		/* the server drops us (EOF or reset), without a timeout */
		do {
			n = recv(fd, buf, sizeof(buf), 0);
		} while (n > 0);
		CU_ASSERT(n == 0
		    || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK));
		close(fd);
	}
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "after garbage", "c1|client") == 0);
	km_net_client_close(c);
	close(idle);
	km_net_server_stop(s);
}

/* ---- concurrency and async calls --------------------------------------- */

typedef struct {
	km_net_client *c;
	int id;
	int bad;
} worker_arg;

static void *
worker(void *arg)
{
	worker_arg *w = arg;
	char msg[64];
	int i;

	for (i = 0; i < 125; i++) {
		snprintf(msg, sizeof(msg), "req-%d-%d", w->id, i);
		if (echo_call(w->c, msg, "c1|client") != 0) {
			w->bad++;
		}
	}
	return NULL;
}

static void
test_concurrent_1000(void)
{
	km_net_server_opts o = { .workers = 8 };
	km_net_server *s;
	km_net_client *c;
	pthread_t th[8];
	worker_arg wa[8];
	int port = 0, i, bad = 0;

	CU_ASSERT_FATAL((s = start_server(n1, &o, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	for (i = 0; i < 8; i++) {
		wa[i].c = c;
		wa[i].id = i;
		wa[i].bad = 0;
		CU_ASSERT_FATAL(
		    pthread_create(&th[i], NULL, worker, &wa[i]) == 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		bad += wa[i].bad;
	}
	CU_ASSERT(bad == 0);
	CU_ASSERT(km_net_server_refused(s) == 0);
	km_net_client_close(c);
	km_net_server_stop(s);
}

typedef struct {
	pthread_mutex_t mu;
	int calls;
	int last;
} done_rec;

static void
on_done(km_net_call *call, int r, void *arg)
{
	done_rec *d = arg;

	(void)call;
	pthread_mutex_lock(&d->mu);
	d->calls++;
	d->last = r;
	pthread_mutex_unlock(&d->mu);
}

static void
test_async_fanout_cancel(void)
{
	km_net_server_opts o = { .workers = 4 };
	km_net_server *s1, *s2;
	km_net_client *a, *b;
	km_net_call *ca = NULL, *cb = NULL;
	done_rec da = { PTHREAD_MUTEX_INITIALIZER, 0, 1 };
	done_rec db = { PTHREAD_MUTEX_INITIALIZER, 0, 1 };
	const uint8_t *body;
	const km_identity *peer;
	size_t len;
	int p1 = 0, p2 = 0;

	CU_ASSERT_FATAL((s1 = start_server(n1, &o, &p1)) != NULL);
	CU_ASSERT_FATAL((s2 = start_server(n2, &o, &p2)) != NULL);
	CU_ASSERT_FATAL((a = open_client(c1, p1, "n1")) != NULL);
	CU_ASSERT_FATAL((b = open_client(c1, p2, "n2")) != NULL);
	CU_ASSERT_FATAL(km_net_call_new(a, &ca) == 0);
	CU_ASSERT_FATAL(km_net_call_new(b, &cb) == 0);

	/* fan out to both; n2 is slow, so we take n1 and cancel n2 */
	CU_ASSERT(
	    km_net_call_start(ca, "fast", 4, T_TIMEOUT, on_done, &da) == 0);
	CU_ASSERT(
	    km_net_call_start(cb, "SLEEP", 5, T_TIMEOUT, on_done, &db) == 0);
	CU_ASSERT(km_net_call_start(cb, "x", 1, T_TIMEOUT, NULL, NULL)
	    == KM_ERR_BUSY);
	CU_ASSERT(km_net_call_wait(ca) == 0);
	CU_ASSERT(km_net_call_reply(ca, &body, &len, &peer) == 0);
	CU_ASSERT(len == strlen("c1|client|fast")
	    && memcmp(body, "c1|client|fast", len) == 0);
	CU_ASSERT_STRING_EQUAL(peer->name, "n1");
	km_net_call_cancel(cb);
	CU_ASSERT(km_net_call_wait(cb) == KM_ERR_CLOSED);
	CU_ASSERT(da.calls == 1 && da.last == 0);
	CU_ASSERT(db.calls == 1 && db.last == KM_ERR_CLOSED);

	/* the call slot is reusable after a cancel */
	CU_ASSERT(
	    km_net_call_start(cb, "again", 5, T_TIMEOUT, on_done, &db) == 0);
	CU_ASSERT(km_net_call_wait(cb) == 0);
	CU_ASSERT(db.calls == 2 && db.last == 0);

	/* a timeout is a timeout */
	CU_ASSERT(km_net_call_start(cb, "SLEEP", 5, 100, NULL, NULL) == 0);
	CU_ASSERT(km_net_call_wait(cb) == KM_ERR_TIMEOUT);

	km_net_call_free(ca);
	km_net_call_free(cb);
	km_net_client_close(a);
	km_net_client_close(b);
	km_net_server_stop(s1);
	km_net_server_stop(s2);
}

/*
 * The signed envelopes of a finished call (evidence, docs/evidence.md):
 * the request exactly as sent, the reply exactly as received, a pair by
 * nonce, each verifying against its signer; nothing before a call, in
 * flight or after a failure.
 */
static void
test_call_envelopes(void)
{
	km_net_server_opts o = { .workers = 2 };
	km_net_server *s;
	km_net_client *a;
	km_net_call *call = NULL;
	km_buf qe, pe;
	km_env q, p;
	km_verifier *v = NULL;
	km_identity id;
	X509_STORE *st = NULL;
	char *ca_pem = NULL;
	uint8_t *raw = NULL;
	size_t rawlen;
	char path[4200];
	int port = 0;

	km_buf_init(&qe);
	km_buf_init(&pe);
	CU_ASSERT_FATAL((s = start_server(n1, &o, &port)) != NULL);
	CU_ASSERT_FATAL((a = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT_FATAL(km_net_call_new(a, &call) == 0);
	CU_ASSERT(km_net_call_envelopes(call, &qe, &pe) == KM_ERR_STATE);
	CU_ASSERT(
	    km_net_call_start(call, "hello", 5, T_TIMEOUT, NULL, NULL) == 0);
	CU_ASSERT_FATAL(km_net_call_wait(call) == 0);
	CU_ASSERT_FATAL(km_net_call_envelopes(call, &qe, &pe) == 0);
	CU_ASSERT_FATAL(km_env_parse(qe.data, qe.len, 4096, &q) == 0);
	CU_ASSERT_FATAL(km_env_parse(pe.data, pe.len, 4096, &p) == 0);
	CU_ASSERT(q.type == KM_ENV_REQUEST && p.type == KM_ENV_REPLY);
	CU_ASSERT(memcmp(q.nonce, p.nonce, KM_ENV_NONCE_LEN) == 0);
	CU_ASSERT(q.body_len == 5 && memcmp(q.body, "hello", 5) == 0);
	CU_ASSERT(p.body_len == strlen("c1|client|hello")
	    && memcmp(p.body, "c1|client|hello", p.body_len) == 0);
	/* both still verify: the bytes are the signed ones */
	km_pki_path(path, sizeof(path), ca_a, "ca.crt", NULL);
	CU_ASSERT_FATAL(km_read_file(path, &raw, &rawlen, 1 << 16) == 0);
	CU_ASSERT_FATAL((ca_pem = calloc(1, rawlen + 1)) != NULL);
	memcpy(ca_pem, raw, rawlen);
	CU_ASSERT_FATAL(km_pki_store_load(ca_pem, NULL, &st) == 0);
	CU_ASSERT_FATAL(km_verifier_new(4, &v) == 0);
	CU_ASSERT(
	    km_verifier_check(v, st, 1, NULL, &q, KM_ROLE_CLIENT, &id) == 0
	    && strcmp(id.name, "c1") == 0);
	CU_ASSERT(km_verifier_check(v, st, 1, NULL, &p, KM_ROLE_NODE, &id) == 0
	    && strcmp(id.name, "n1") == 0);
	/* a failed call has none (the last success's are gone too) */
	CU_ASSERT(km_net_call_start(call, "SLEEP", 5, 100, NULL, NULL) == 0);
	CU_ASSERT(km_net_call_wait(call) == KM_ERR_TIMEOUT);
	CU_ASSERT(km_net_call_envelopes(call, &qe, &pe) == KM_ERR_STATE);
	km_verifier_free(v);
	X509_STORE_free(st);
	free(ca_pem);
	free(raw);
	km_buf_free(&qe);
	km_buf_free(&pe);
	km_net_call_free(call);
	km_net_client_close(a);
	km_net_server_stop(s);
}

static void
test_no_server(void)
{
	km_net_client *c;
	int port = kmt_free_port();

	CU_ASSERT_FATAL(port > 0);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call_t(c, "anyone?", "n1", 500) == KM_ERR_CONN);
	km_net_client_close(c);
}

/* ---- envelopes --------------------------------------------------------- */

/*
 * A raw req socket over keymesh TLS, to send envelopes the real client
 * would never make.
 */
typedef struct {
	nng_socket sock;
	X509 *cert;
	uint8_t *der;
	size_t der_len;
	EVP_PKEY *key;
} raw_client;

static int
raw_open(raw_client *rc, const char *dir, const char *name, int port,
    const char *peer)
{
	char *ca = slurp(dir, "ca.crt", NULL),
	     *crl = slurp(dir, "crl.pem", NULL);
	char *cert = slurp(dir, name, ".crt"), *key = slurp(dir, name, ".key");
	nng_tls_config *cfg = NULL;
	nng_dialer d;
	char url[64];
	BIO *bio = NULL;
	uint8_t *der = NULL;
	int n, r = -1;

	memset(rc, 0, sizeof(*rc));
	if (ca == NULL || cert == NULL || key == NULL
	    || km_tls_config_new(
	           NNG_TLS_MODE_CLIENT, NULL, ca, crl, cert, key, peer, &cfg)
	        != 0) {
		goto out;
	}
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	if (nng_req0_open(&rc->sock) != 0
	    || nng_dialer_create(&d, rc->sock, url) != 0
	    || nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg) != 0
	    || nng_dialer_start(d, 0) != 0
	    || nng_socket_set_ms(rc->sock, NNG_OPT_RECVTIMEO, T_TIMEOUT)
	        != 0) {
		goto out;
	}
	if ((bio = BIO_new_mem_buf(cert, -1)) == NULL
	    || (rc->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL
	    || (n = i2d_X509(rc->cert, &der)) <= 0) {
		goto out;
	}
	rc->der = der;
	rc->der_len = (size_t)n;
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(key, -1)) == NULL
	    || (rc->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL))
	        == NULL) {
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	if (cfg != NULL) {
		nng_tls_config_free(cfg);
	}
	free(ca);
	free(crl);
	free(cert);
	free(key);
	return r;
}

static void
raw_close(raw_client *rc)
{
	nng_close(rc->sock);
	X509_free(rc->cert);
	OPENSSL_free(rc->der);
	EVP_PKEY_free(rc->key);
}

/* Send @data, return the server's verdict: 0 for a reply, else the code
 * of its error envelope (KM_ERR_INTERNAL if the answer is unreadable). */
static int
raw_send(raw_client *rc, const uint8_t *data, size_t len)
{
	nng_msg *msg = NULL;
	km_env e;
	int code = KM_ERR_INTERNAL;

	if (nng_msg_alloc(&msg, len) != 0) {
		return KM_ERR_ALLOC;
	}
	memcpy(nng_msg_body(msg), data, len);
	if (nng_sendmsg(rc->sock, msg, 0) != 0) {
		nng_msg_free(msg);
		return KM_ERR_IO;
	}
	if (nng_recvmsg(rc->sock, &msg, 0) != 0) {
		return KM_ERR_TIMEOUT;
	}
	if (km_env_parse(nng_msg_body(msg), nng_msg_len(msg), 1u << 20, &e)
	    == 0) {
		if (e.type == KM_ENV_REPLY) {
			code = 0;
		} else if (e.type == KM_ENV_ERROR
		    && km_env_error_parse(e.body, e.body_len, &code) != 0) {
			code = KM_ERR_INTERNAL;
		}
	}
	nng_msg_free(msg);
	return code;
}

static int
raw_seal(raw_client *rc, km_buf *out, uint8_t type, uint64_t ts,
    const uint8_t *nonce, const char *body)
{
	return km_env_seal(out, NULL, type, rc->der, rc->der_len, ts, nonce,
	    body, strlen(body), rc->key);
}

/* Per-test fixture: a server with a 5 s window and a raw client. */
static km_net_server *env_srv;
static raw_client env_rc;
static km_buf env_buf;
static uint8_t env_nonce[KM_ENV_NONCE_LEN];

static int
env_open(void)
{
	km_net_server_opts o = { .workers = 2, .window_ms = 5000 };
	int port = 0;

	km_buf_init(&env_buf);
	if ((env_srv = start_server(n1, &o, &port)) == NULL) {
		return -1;
	}
	return raw_open(&env_rc, ca_a, "c1", port, "n1");
}

static void
env_close(void)
{
	km_buf_free(&env_buf);
	raw_close(&env_rc);
	km_net_server_stop(env_srv);
	env_srv = NULL;
}

/* Seal a request with a fresh nonce (kept in env_nonce) at time @ts. */
static int
env_request(uint64_t ts, const char *body)
{
	if (km_random(env_nonce, sizeof(env_nonce)) != 0) {
		return -1;
	}
	return raw_seal(
	    &env_rc, &env_buf, KM_ENV_REQUEST, ts, env_nonce, body);
}

static int
env_send(void)
{
	return raw_send(&env_rc, env_buf.data, env_buf.len);
}

static void
test_envelope_replay_refused(void)
{
	CU_ASSERT_FATAL(env_open() == 0);
	CU_ASSERT(env_request(km_now_ms(), "hi") == 0);
	CU_ASSERT(env_send() == 0);
	/* the very same envelope again, on the same connection */
	CU_ASSERT(env_send() == KM_ERR_STALE);
	/* the same nonce under a new signature and time is refused too */
	CU_ASSERT(raw_seal(&env_rc, &env_buf, KM_ENV_REQUEST, km_now_ms() + 1,
	              env_nonce, "hi again")
	    == 0);
	CU_ASSERT(env_send() == KM_ERR_STALE);
	CU_ASSERT(km_net_server_refused(env_srv) == 2);
	env_close();
}

static void
test_envelope_stale_timestamp(void)
{
	uint64_t now = km_now_ms();

	CU_ASSERT_FATAL(env_open() == 0);
	/* outside the 5 s window, both ways */
	CU_ASSERT(env_request(now - 60000, "old") == 0);
	CU_ASSERT(env_send() == KM_ERR_STALE);
	CU_ASSERT(env_request(now + 60000, "future") == 0);
	CU_ASSERT(env_send() == KM_ERR_STALE);
	/* inside it, fine */
	CU_ASSERT(env_request(now - 2000, "a bit late") == 0);
	CU_ASSERT(env_send() == 0);
	CU_ASSERT(km_net_server_refused(env_srv) == 2);
	env_close();
}

static void
test_envelope_tampered(void)
{
	km_env e;

	CU_ASSERT_FATAL(env_open() == 0);
	/* the body */
	CU_ASSERT(env_request(km_now_ms(), "pay 10") == 0);
	CU_ASSERT_FATAL(
	    km_env_parse(env_buf.data, env_buf.len, 1024, &e) == 0);
	((uint8_t *)e.body)[4] = '9'; /* "pay 90" */
	CU_ASSERT(env_send() == KM_ERR_VERIFY);
	/* the signature */
	CU_ASSERT(env_request(km_now_ms(), "sig") == 0);
	env_buf.data[env_buf.len - 5] ^= 0x01;
	CU_ASSERT(env_send() == KM_ERR_VERIFY);
	/* the timestamp (to dodge the window, say) */
	CU_ASSERT(env_request(km_now_ms(), "time") == 0);
	CU_ASSERT_FATAL(
	    km_env_parse(env_buf.data, env_buf.len, 1024, &e) == 0);
	/* the timestamp's last byte: magic, version, type, cert, ts */
	env_buf.data[4 + 1 + 1 + 4 + e.cert_len + 7] ^= 0x01;
	CU_ASSERT(env_send() == KM_ERR_VERIFY);
	/* the certificate: no longer the CA's signature, or unparsable */
	CU_ASSERT(env_request(km_now_ms(), "cert") == 0);
	env_buf.data[4 + 1 + 1 + 4 + 100] ^= 0x01;
	CU_ASSERT(env_send() != 0);
	CU_ASSERT(km_net_server_refused(env_srv) == 4);
	/* and an intact one still passes */
	CU_ASSERT(env_request(km_now_ms(), "ok") == 0);
	CU_ASSERT(env_send() == 0);
	env_close();
}

static void
test_envelope_malformed(void)
{
	CU_ASSERT_FATAL(env_open() == 0);
	/* a reply where a request belongs */
	CU_ASSERT(km_random(env_nonce, sizeof(env_nonce)) == 0);
	CU_ASSERT(raw_seal(&env_rc, &env_buf, KM_ENV_REPLY, km_now_ms(),
	              env_nonce, "r")
	    == 0);
	CU_ASSERT(env_send() == KM_ERR_BAD_FORMAT);
	/* a future version */
	CU_ASSERT(env_request(km_now_ms(), "v") == 0);
	env_buf.data[4] = 2;
	CU_ASSERT(env_send() == KM_ERR_BAD_VERSION);
	/* junk and nothing */
	CU_ASSERT(raw_send(&env_rc, (const uint8_t *)"KMEV", 4)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(
	    raw_send(&env_rc, (const uint8_t *)"", 0) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_net_server_refused(env_srv) == 4);
	env_close();
}

static void
test_envelope_oversize(void)
{
	km_net_server_opts o = { .workers = 1, .body_max = 4096 };
	km_net_server *s;
	km_net_client *c;
	km_buf reply;
	uint8_t *big;
	int port = 0;

	CU_ASSERT_FATAL((s = start_server(n1, &o, &port)) != NULL);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT_FATAL((big = calloc(1, 9000)) != NULL);
	km_buf_init(&reply);
	CU_ASSERT(
	    km_net_client_call(c, big, 4096, T_TIMEOUT, &reply, NULL) == 0);
	CU_ASSERT(km_net_client_call(c, big, 9000, T_TIMEOUT, &reply, NULL)
	    == KM_ERR_TOO_LARGE);
	CU_ASSERT(km_net_server_refused(s) == 1);
	/* and the client refuses to build an absurd one */
	CU_ASSERT(km_net_client_call(
	              c, big, KM_NET_BODY_MAX + 1, T_TIMEOUT, &reply, NULL)
	    == KM_ERR_TOO_LARGE);
	km_buf_free(&reply);
	free(big);
	km_net_client_close(c);
	km_net_server_stop(s);
}

/* A rogue server: TLS as n1, but its replies are signed by n2. */
typedef struct {
	nng_socket sock;
	raw_client signer;
	pthread_t th;
} rogue;

static void *
rogue_main(void *arg)
{
	rogue *r = arg;
	nng_msg *msg;
	km_env e;
	km_buf out;

	km_buf_init(&out);
	while (nng_recvmsg(r->sock, &msg, 0) == 0) {
		if (km_env_parse(nng_msg_body(msg), nng_msg_len(msg), 1024, &e)
		        == 0
		    && km_env_seal(&out, NULL, KM_ENV_REPLY, r->signer.der,
		           r->signer.der_len, km_now_ms(), e.nonce, "ok", 2,
		           r->signer.key)
		        == 0) {
			nng_msg_clear(msg);
			nng_msg_append(msg, out.data, out.len);
			if (nng_sendmsg(r->sock, msg, 0) == 0) {
				continue;
			}
		}
		nng_msg_free(msg);
	}
	km_buf_free(&out);
	return NULL;
}

static void
test_envelope_wrong_node(void)
{
	char *ca = slurp(ca_a, "ca.crt", NULL);
	char *crl = slurp(ca_a, "crl.pem", NULL);
	char *cert = slurp(ca_a, "n1", ".crt"),
	     *key = slurp(ca_a, "n1", ".key");
	nng_tls_config *cfg = NULL;
	nng_listener l;
	km_net_client *c;
	km_buf reply;
	rogue rg;
	int port = 0;

	CU_ASSERT_FATAL(ca != NULL && cert != NULL && key != NULL);
	memset(&rg, 0, sizeof(rg));
	CU_ASSERT_FATAL(km_tls_config_new(NNG_TLS_MODE_SERVER, NULL, ca, crl,
	                    cert, key, NULL, &cfg)
	    == 0);
	CU_ASSERT_FATAL(nng_rep0_open(&rg.sock) == 0);
	CU_ASSERT_FATAL(
	    nng_listener_create(&l, rg.sock, "tls+tcp://127.0.0.1:0") == 0);
	CU_ASSERT_FATAL(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg) == 0);
	CU_ASSERT_FATAL(nng_listener_start(l, 0) == 0);
	CU_ASSERT_FATAL(
	    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0);
	nng_tls_config_free(cfg);
	/* the signer: n2's certificate and key (no connection needed) */
	CU_ASSERT_FATAL(raw_open(&rg.signer, ca_a, "n2", port, "n1") == 0);
	CU_ASSERT_FATAL(pthread_create(&rg.th, NULL, rogue_main, &rg) == 0);

	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	km_buf_init(&reply);
	CU_ASSERT(km_net_client_call(c, "who?", 4, T_TIMEOUT, &reply, NULL)
	    == KM_ERR_AUTH);
	km_buf_free(&reply);
	km_net_client_close(c);

	nng_close(rg.sock);
	pthread_join(rg.th, NULL);
	raw_close(&rg.signer);
	free(ca);
	free(crl);
	free(cert);
	free(key);
}

static void
test_envelope_truncations(void)
{
	km_net_server *s;
	raw_client rc;
	km_buf b;
	km_env e;
	uint8_t nonce[KM_ENV_NONCE_LEN] = { 7 };
	size_t cut;
	int port = 0, bad = 0;

	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	CU_ASSERT_FATAL(raw_open(&rc, ca_a, "c1", port, "n1") == 0);
	km_buf_init(&b);
	CU_ASSERT_FATAL(
	    raw_seal(&rc, &b, KM_ENV_REQUEST, 1, nonce, "body") == 0);
	CU_ASSERT(km_env_parse(b.data, b.len, 1024, &e) == 0);
	CU_ASSERT(e.body_len == 4 && memcmp(e.body, "body", 4) == 0);
	CU_ASSERT(e.ts_ms == 1 && e.nonce[0] == 7);
	/* every truncation and one extra byte are refused, never read past */
	for (cut = 0; cut < b.len; cut++) {
		if (km_env_parse(b.data, cut, 1024, &e) == 0) {
			bad++;
		}
	}
	CU_ASSERT(bad == 0);
	CU_ASSERT(km_buf_put_u8(&b, 0) == 0);
	CU_ASSERT(km_env_parse(b.data, b.len, 1024, &e) == KM_ERR_BAD_FORMAT);
	/* a body over the limit is refused by length, before parsing */
	CU_ASSERT(km_env_parse(b.data, b.len, 2, &e) != 0);
	CU_ASSERT(km_env_parse(b.data, 100000, 2, &e) == KM_ERR_TOO_LARGE);
	/* random corruption: the decoder never reads outside the buffer */
	{
		uint8_t copy[2048], rnd[3];
		int i, inside = 0;

		CU_ASSERT_FATAL(b.len - 1 <= sizeof(copy));
		for (i = 0; i < 3000; i++) {
			memcpy(copy, b.data, b.len - 1);
			CU_ASSERT_FATAL(km_random(rnd, sizeof(rnd)) == 0);
			copy[(rnd[0] | rnd[1] << 8) % (b.len - 1)] = rnd[2];
			if (km_env_parse(copy, b.len - 1, 1024, &e) == 0) {
				inside += e.cert >= copy
				    && e.cert + e.cert_len <= copy + b.len - 1
				    && e.body + e.body_len <= copy + b.len - 1
				    && e.sig + e.sig_len == copy + b.len - 1;
				bad++;
			}
		}
		CU_ASSERT(inside == bad);
	}
	km_buf_free(&b);
	raw_close(&rc);
	km_net_server_stop(s);
}

static void
test_replay_cache(void)
{
	km_replay *rc = NULL;
	uint8_t n[KM_ENV_NONCE_LEN];
	int i;

	CU_ASSERT_FATAL(km_replay_new(4, &rc) == 0);
	for (i = 0; i < 4; i++) {
		memset(n, i, sizeof(n));
		CU_ASSERT(km_replay_add(rc, n, 1000, 100) == 0);
	}
	memset(n, 2, sizeof(n));
	CU_ASSERT(km_replay_add(rc, n, 1000, 100) == KM_ERR_STALE);
	memset(n, 9, sizeof(n));
	/* full of live nonces: refuse rather than forget one */
	CU_ASSERT(km_replay_add(rc, n, 1050, 100) == KM_ERR_BUSY);
	/* after the window they expire and room returns */
	CU_ASSERT(km_replay_add(rc, n, 1100, 100) == 0);
	memset(n, 2, sizeof(n));
	CU_ASSERT(km_replay_add(rc, n, 1100, 100) == 0);
	CU_ASSERT(km_replay_add(rc, n, 1101, 100) == KM_ERR_STALE);
	km_replay_free(rc);
	CU_ASSERT(km_replay_new(0, &rc) == KM_ERR_INVALID_ARG);
}

/* ---- gathering SP messages into TLS records ------------------------------
 */

/* Server and client configs for n1 and c1 of ca_a, made with our engine. */
static int
coal_configs(nng_tls_config **scfg, nng_tls_config **ccfg)
{
	char *ca = slurp(ca_a, "ca.crt", NULL),
	     *crl = slurp(ca_a, "crl.pem", NULL);
	char *scrt = slurp(ca_a, "n1", ".crt"),
	     *skey = slurp(ca_a, "n1", ".key");
	char *ccrt = slurp(ca_a, "c1", ".crt"),
	     *ckey = slurp(ca_a, "c1", ".key");
	int rv = -1;

	*scfg = *ccfg = NULL;
	if (ca != NULL && crl != NULL && scrt != NULL && skey != NULL
	    && ccrt != NULL && ckey != NULL
	    && km_tls_config_new(
	           NNG_TLS_MODE_SERVER, NULL, ca, crl, scrt, skey, NULL, scfg)
	        == 0
	    && km_tls_config_new(
	           NNG_TLS_MODE_CLIENT, NULL, ca, crl, ccrt, ckey, "n1", ccfg)
	        == 0) {
		rv = 0;
	}
	free(ca);
	free(crl);
	free(scrt);
	free(skey);
	free(ccrt);
	free(ckey);
	return rv;
}

/* A byte pattern that differs per thread, round and size. */
static void
coal_fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + (uint32_t)n + 1;
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

/* A raw rep echo server with its own contexts (one per worker). */
typedef struct {
	nng_socket sock;
	nng_ctx ctx[4];
	nng_aio *aio[4];
	pthread_t th[4];
	int nw;
} coal_server;

typedef struct {
	coal_server *s;
	int i;
} coal_worker_arg;

static coal_worker_arg coal_wargs[4];

static void *
coal_server_main(void *arg)
{
	coal_worker_arg *a = arg;
	nng_ctx ctx = a->s->ctx[a->i];
	nng_aio *aio = a->s->aio[a->i];

	for (;;) {
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			break;
		}
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			nng_msg_free(nng_aio_get_msg(aio));
		}
	}
	return NULL;
}

static int
coal_server_start(coal_server *s, nng_tls_config *cfg, const char *url)
{
	nng_listener l;
	int i;

	memset(s, 0, sizeof(*s));
	if (nng_rep0_open(&s->sock) != 0
	    || nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 1u << 20) != 0
	    || nng_listener_create(&l, s->sock, url) != 0
	    || nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg) != 0
	    || nng_listener_start(l, 0) != 0) {
		return -1;
	}
	for (i = 0; i < 4; i++) {
		coal_wargs[i].s = s;
		coal_wargs[i].i = i;
		if (nng_ctx_open(&s->ctx[i], s->sock) != 0
		    || nng_aio_alloc(&s->aio[i], NULL, NULL) != 0
		    || pthread_create(
		           &s->th[i], NULL, coal_server_main, &coal_wargs[i])
		        != 0) {
			return -1;
		}
		s->nw++;
	}
	return 0;
}

static void
coal_server_stop(coal_server *s)
{
	int i;

	nng_close(s->sock);
	for (i = 0; i < s->nw; i++) {
		pthread_join(s->th[i], NULL);
		nng_aio_free(s->aio[i]);
	}
}

/*
 * Body sizes around every boundary the engine has: empty, the 8-byte
 * length, one TLS record (16 KiB), the 64 KiB gathering limit (the frame
 * length is the body plus nng's 4-byte req/rep header, so 65532 is the
 * largest gathered body and 65533 the smallest written piece by piece).
 */
static const size_t coal_sizes[] = { 0, 1, 7, 8, 9, 4095, 4096, 16380, 16381,
	65531, 65532, 65533, 65535, 65536, 70000, 64 };
#define COAL_NSIZES  (sizeof(coal_sizes) / sizeof(coal_sizes[0]))
#define COAL_THREADS 8
#define COAL_ROUNDS  3

typedef struct {
	nng_socket sock;
	int id;
	int rounds;
	int bad;  /* wrong or failed echoes */
	int sent; /* round trips done */
	int big;  /* of which with a frame above the gathering limit */
} coal_client_arg;

static int
coal_round_trip(nng_ctx ctx, nng_aio *aio, size_t size, unsigned seed)
{
	nng_msg *msg = NULL;
	uint8_t *want = NULL;
	int rv = -1;

	if ((want = malloc(size + 1)) == NULL
	    || nng_msg_alloc(&msg, size) != 0) {
		goto out;
	}
	coal_fill(want, size, seed);
	if (size > 0) {
		memcpy(nng_msg_body(msg), want, size);
	}
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		goto out; /* msg is still ours */
	}
	msg = NULL;
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		goto out;
	}
	msg = nng_aio_get_msg(aio);
	if (nng_msg_len(msg) == size
	    && (size == 0 || memcmp(nng_msg_body(msg), want, size) == 0)) {
		rv = 0;
	}
out:
	nng_msg_free(msg);
	free(want);
	return rv;
}

static void *
coal_client_main(void *arg)
{
	coal_client_arg *a = arg;
	nng_ctx ctx;
	nng_aio *aio = NULL;
	size_t k, size;
	int r;

	if (nng_ctx_open(&ctx, a->sock) != 0
	    || nng_aio_alloc(&aio, NULL, NULL) != 0) {
		a->bad++;
		return NULL;
	}
	nng_aio_set_timeout(aio, 20000);
	for (r = 0; r < a->rounds; r++) {
		for (k = 0; k < COAL_NSIZES; k++) {
			/* each thread walks the sizes from its own offset */
			size = coal_sizes[(k + (size_t)a->id) % COAL_NSIZES];
			if (coal_round_trip(ctx, aio, size,
			        (unsigned)(a->id * 1000 + r * 100)
			            + (unsigned)k)
			    != 0) {
				a->bad++;
			}
			a->sent++;
			if (size + 4 > 64 * 1024) {
				a->big++;
			}
		}
	}
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return NULL;
}

/* COAL_THREADS threads echo every size @rounds times; returns bad count. */
static int
coal_run(nng_socket cli, int rounds, int *sent, int *big)
{
	pthread_t th[COAL_THREADS];
	coal_client_arg a[COAL_THREADS];
	int i, bad = 0;

	*sent = *big = 0;
	for (i = 0; i < COAL_THREADS; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].sock = cli;
		a[i].id = i;
		a[i].rounds = rounds;
		if (pthread_create(&th[i], NULL, coal_client_main, &a[i])
		    != 0) {
			return -1;
		}
	}
	for (i = 0; i < COAL_THREADS; i++) {
		pthread_join(th[i], NULL);
		bad += a[i].bad;
		*sent += a[i].sent;
		*big += a[i].big;
	}
	return bad;
}

static int
coal_client_open(nng_socket *cli, nng_tls_config *cfg, int port)
{
	nng_dialer d;
	char url[64];

	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	if (nng_req0_open(cli) != 0
	    || nng_socket_set_size(*cli, NNG_OPT_RECVMAXSZ, 1u << 20) != 0
	    || nng_dialer_create(&d, *cli, url) != 0
	    || nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg) != 0
	    || nng_dialer_start(d, 0) != 0) {
		return -1;
	}
	return 0;
}

/*
 * Messages of every size around the engine's boundaries, both directions,
 * from 8 threads on one connection at once, all echoed intact; with
 * gathering on (the counters show it happened, and which frames were too
 * large for it) and then off.
 */
static void
test_coalesce_sizes(void)
{
	nng_tls_config *scfg, *ccfg;
	coal_server s;
	nng_socket cli;
	uint64_t g0, d0, g1, d1;
	int port, sent = 0, big = 0, pass;

	CU_ASSERT_FATAL(km_net_init() == 0);
	CU_ASSERT_FATAL(coal_configs(&scfg, &ccfg) == 0);
	for (pass = 0; pass < 2; pass++) {
		km_tls_set_coalesce(pass == 0);
		port = kmt_free_port();
		{
			char url[64];

			snprintf(
			    url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
			CU_ASSERT_FATAL(coal_server_start(&s, scfg, url) == 0);
		}
		CU_ASSERT_FATAL(coal_client_open(&cli, ccfg, port) == 0);
		km_tls_coalesce_stats(&g0, &d0);
		CU_ASSERT(
		    coal_run(cli, pass == 0 ? COAL_ROUNDS : 1, &sent, &big)
		    == 0);
		km_tls_coalesce_stats(&g1, &d1);
		CU_ASSERT(sent
		    == COAL_THREADS * (int)COAL_NSIZES
		        * (pass == 0 ? COAL_ROUNDS : 1));
		CU_ASSERT(big > 0);
		if (pass == 0) {
			/* a request and a reply per round trip */
			CU_ASSERT(g1 - g0 >= 2 * (uint64_t)(sent - big));
			CU_ASSERT(d1 - d0 >= 2 * (uint64_t)big);
		} else {
			CU_ASSERT(g1 == g0);
			CU_ASSERT(d1 == d0);
		}
		nng_close(cli);
		coal_server_stop(&s);
	}
	km_tls_set_coalesce(true);
	nng_tls_config_free(scfg);
	nng_tls_config_free(ccfg);
}

/*
 * Exact frame lengths, including the empty frame (length 0, which has no
 * piece after the length): pair0 carries no header of its own.
 */
static void
test_coalesce_pair_frames(void)
{
	static const size_t sizes[] = { 0, 1, 0, 8, 65536, 0, 65537, 3, 0 };
	nng_tls_config *scfg, *ccfg;
	nng_socket srv, cli;
	nng_listener l;
	nng_dialer d;
	nng_msg *m;
	uint8_t *want;
	char url[64];
	size_t i, n;
	int port, dir, bad = 0;

	CU_ASSERT_FATAL(km_net_init() == 0);
	CU_ASSERT_FATAL(coal_configs(&scfg, &ccfg) == 0);
	CU_ASSERT_FATAL((want = malloc(65537)) != NULL);
	port = kmt_free_port();
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	CU_ASSERT_FATAL(nng_pair0_open(&srv) == 0);
	CU_ASSERT_FATAL(nng_pair0_open(&cli) == 0);
	CU_ASSERT_FATAL(nng_socket_set_ms(srv, NNG_OPT_RECVTIMEO, 10000) == 0);
	CU_ASSERT_FATAL(nng_socket_set_ms(cli, NNG_OPT_RECVTIMEO, 10000) == 0);
	CU_ASSERT_FATAL(nng_listener_create(&l, srv, url) == 0);
	CU_ASSERT_FATAL(
	    nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, scfg) == 0);
	CU_ASSERT_FATAL(nng_listener_start(l, 0) == 0);
	CU_ASSERT_FATAL(nng_dialer_create(&d, cli, url) == 0);
	CU_ASSERT_FATAL(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, ccfg) == 0);
	CU_ASSERT_FATAL(nng_dialer_start(d, 0) == 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* client to server, then server to client */
		for (dir = 0; dir < 2; dir++) {
			n = sizes[i];
			coal_fill(want, n, (unsigned)(i * 2 + (size_t)dir));
			if (nng_msg_alloc(&m, n) != 0) {
				bad++;
				continue;
			}
			if (n > 0) {
				memcpy(nng_msg_body(m), want, n);
			}
			if (nng_sendmsg(dir == 0 ? cli : srv, m, 0) != 0) {
				nng_msg_free(m);
				bad++;
				continue;
			}
			if (nng_recvmsg(dir == 0 ? srv : cli, &m, 0) != 0) {
				bad++;
				continue;
			}
			if (nng_msg_len(m) != n
			    || (n > 0
			        && memcmp(nng_msg_body(m), want, n) != 0)) {
				bad++;
			}
			nng_msg_free(m);
		}
	}
	CU_ASSERT(bad == 0);
	nng_close(cli);
	nng_close(srv);
	free(want);
	nng_tls_config_free(scfg);
	nng_tls_config_free(ccfg);
}

/*
 * A TLS peer that speaks SP by hand: handshake as c1, exchange the SP
 * headers as a req socket, then send @len bytes of @frame and close the
 * connection.  Returns 0 when all of that went through.
 */
static int
raw_sp_partial(int port, const uint8_t *frame, size_t len, bool shutdown)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	struct sockaddr_in sa;
	struct timeval tv = { 5, 0 };
	static const uint8_t hello[8] = { 0, 'S', 'P', 0, 0, 0x30, 0, 0 };
	char path[4200];
	uint8_t buf[8];
	int fd = -1, res = -1;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL
	    || km_pki_path(path, sizeof(path), ca_a, "ca.crt", NULL) != 0
	    || SSL_CTX_load_verify_locations(ctx, path, NULL) != 1
	    || km_pki_path(path, sizeof(path), ca_a, "c1", ".crt") != 0
	    || SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM) != 1
	    || km_pki_path(path, sizeof(path), ca_a, "c1", ".key") != 0
	    || SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1) {
		goto out;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
	    || (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1
	    || SSL_connect(ssl) != 1
	    || SSL_write(ssl, hello, sizeof(hello)) != (int)sizeof(hello)
	    || SSL_read(ssl, buf, sizeof(buf)) != (int)sizeof(buf)
	    || memcmp(buf, "\0SP\0", 4) != 0) {
		goto out;
	}
	if (len > 0 && SSL_write(ssl, frame, (int)len) != (int)len) {
		goto out;
	}
	if (shutdown) {
		(void)SSL_shutdown(ssl);
	}
	res = 0;
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0) {
		close(fd);
	}
	ERR_clear_error();
	return res;
}

/* Peers that hang up in the middle of a frame; the listener serves on. */
static void
test_coalesce_peer_leaves_midframe(void)
{
	km_net_server *s;
	km_net_client *c;
	uint8_t frame[64];
	int port = 0;

	memset(frame, 0x5a, sizeof(frame));
	/* a length of 1000, then 12 of those bytes */
	memset(frame, 0, 8);
	frame[6] = 0x03;
	frame[7] = 0xe8;
	CU_ASSERT_FATAL((s = start_server(n1, NULL, &port)) != NULL);
	CU_ASSERT(raw_sp_partial(port, frame, 20, false) == 0);
	CU_ASSERT(raw_sp_partial(port, frame, 20, true) == 0);
	/* half a length */
	CU_ASSERT(raw_sp_partial(port, frame, 3, false) == 0);
	/* right after the headers */
	CU_ASSERT(raw_sp_partial(port, frame, 0, true) == 0);
	CU_ASSERT_FATAL((c = open_client(c1, port, "n1")) != NULL);
	CU_ASSERT(echo_call(c, "after a torn frame", "c1|client") == 0);
	km_net_client_close(c);
	CU_ASSERT(km_net_server_refused(s) == 0);
	km_net_server_stop(s);
}

static const kmt_test tls_tests[] = {
	{ "engine_register", test_engine_register },
	{ "engine_version_clamp", test_engine_version_clamp },
	{ "handshake_echo", test_handshake_echo },
	{ "handshake_wrong_ca", test_handshake_wrong_ca },
	{ "handshake_wrong_name", test_handshake_wrong_name },
	{ "handshake_revoked", test_handshake_revoked },
	{ "revoked_live_envelope", test_revoked_live_envelope },
	{ "revoked_server_reply", test_revoked_server_reply },
	{ "server_role_policy", test_server_role_policy },
	{ "handshake_no_client_cert", test_no_client_cert },
	{ "handshake_tls12_refused", test_tls12_refused },
	{ "garbage_stream", test_garbage_stream },
	{ "concurrent_1000", test_concurrent_1000 },
	{ "async_fanout_cancel", test_async_fanout_cancel },
	{ "call_envelopes", test_call_envelopes },
	{ "no_server", test_no_server },
	{ "coalesce_sizes", test_coalesce_sizes },
	{ "coalesce_pair_frames", test_coalesce_pair_frames },
	{ "coalesce_peer_leaves_midframe",
	    test_coalesce_peer_leaves_midframe },
	KMT_END,
};

static const kmt_test envelope_tests[] = {
	{ "replay_refused", test_envelope_replay_refused },
	{ "stale_timestamp", test_envelope_stale_timestamp },
	{ "tampered", test_envelope_tampered },
	{ "malformed", test_envelope_malformed },
	{ "oversize_refused", test_envelope_oversize },
	{ "wrong_node_reply", test_envelope_wrong_node },
	{ "truncations", test_envelope_truncations },
	{ "replay_cache", test_replay_cache },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "tls", suite_init, suite_fini, tls_tests },
	{ "envelope", suite_init, suite_fini, envelope_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--fini-child") == 0) {
		return fini_child();
	}
	return kmt_main(argc, argv, suites);
}
