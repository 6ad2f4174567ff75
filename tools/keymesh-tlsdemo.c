/*
 * keymesh-tlsdemo: the transport, shown end to end on one machine.
 *
 * Makes a fresh mesh CA, issues three node certificates, starts three
 * TLS 1.3 endpoints on free loopback ports, and has every node make a
 * verified round trip to the other two.  Then it revokes one node and
 * shows that the others refuse it.  Exits non-zero if anything is not as
 * expected.  `./quickstart.sh demo` runs it.
 *
 * Usage: keymesh-tlsdemo [--dir DIR] [--keep]
 *   --dir DIR   make the CA in DIR (new or empty) instead of a temp dir
 *   --keep      leave the temp dir in place
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "pki/pki.h"
#include "util/err.h"
#include "util/log.h"
#include "util/util.h"

#define NODES      3
#define TIMEOUT_MS 5000

static const char *const names[NODES] = { "node-a", "node-b", "node-c" };

typedef struct node {
	const char *name;
	km_net_creds *creds;
	km_net_server *server;
	char url[128];
	km_net_client *to[NODES]; /* clients to the other nodes */
} node;

/* Each node answers with who it is and whom it saw. */
static int
handler(void *arg, const km_identity *peer, const uint8_t *req, size_t len,
    km_buf *reply)
{
	const node *self = arg;
	char text[256];
	int n;

	(void)req;
	(void)len;
	n = snprintf(text, sizeof(text), "%s saw %s (%s)", self->name,
	    peer->name, km_role_name(peer->role));
	return km_buf_put_raw(reply, text, (size_t)n);
}

static void
usage(void)
{
	fprintf(stderr, "usage: keymesh-tlsdemo [--dir DIR] [--keep]\n");
	exit(2);
}

static int
fail(const char *what, int r)
{
	printf("FAILED: %s: %s\n", what, km_strerror(r));
	return 1;
}

int
main(int argc, char **argv)
{
	char tmpl[] = "/tmp/keymesh-demo-XXXXXX", cmd[512];
	const char *dir = NULL;
	node nodes[NODES];
	km_net_tls_info info;
	km_identity peer;
	km_buf reply;
	uint8_t *crl = NULL;
	size_t crllen;
	char path[4096];
	bool keep = false, made_tmp = false;
	int i, j, r, bad = 0, trips = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = true;
		} else {
			usage();
		}
	}
	/* Refusals are logged as warnings; the demo prints its own lines. */
	km_log_init("keymesh-tlsdemo", KM_LOG_ERR);
	memset(nodes, 0, sizeof(nodes));
	km_buf_init(&reply);

	if (dir == NULL) {
		if ((dir = mkdtemp(tmpl)) == NULL) {
			return fail("mkdtemp", KM_ERR_IO);
		}
		made_tmp = true;
	} else if ((r = km_mkdir_p(dir, 0700)) != 0) {
		return fail(dir, r);
	}

	printf("keymesh transport demo\n\n");
	printf("1. A mesh CA and three node certificates\n");
	if ((r = km_pki_ca_init(dir, 0)) != 0) {
		return fail("creating the CA (use a new or empty --dir)", r);
	}
	printf("   CA directory: %s\n", dir);
	for (i = 0; i < NODES; i++) {
		if ((r = km_pki_cert_issue(dir, KM_ROLE_NODE, names[i], 0))
		    != 0) {
			return fail("issuing a node certificate", r);
		}
		printf(
		    "   issued %-7s role node, P-256 key, signed by the CA\n",
		    names[i]);
	}

	printf("\n2. Three endpoints (TLS 1.3 only, client certificate "
	       "required)\n");
	printf("   TLS engine in nng: %s\n", km_net_engine_name());
	for (i = 0; i < NODES; i++) {
		node *n = &nodes[i];
		km_net_server_opts o
		    = { .workers = 2, .peer_role = KM_ROLE_NODE };

		n->name = names[i];
		if ((r = km_net_creds_load(dir, n->name, &n->creds)) != 0
		    || (r = km_net_server_start(n->creds,
		            "tls+tcp://127.0.0.1:0", &o, handler, n,
		            &n->server))
		        != 0
		    || (r = km_net_server_url(
		            n->server, n->url, sizeof(n->url)))
		        != 0) {
			return fail("starting an endpoint", r);
		}
		printf("   %-7s listening on %s\n", n->name, n->url);
	}

	printf("\n3. Every node calls the other two; each request and reply "
	       "is a signed envelope,\n   checked against the CA and CRL, "
	       "and each handler sees the caller's identity\n");
	for (i = 0; i < NODES; i++) {
		for (j = 0; j < NODES; j++) {
			node *from = &nodes[i], *to = &nodes[j];
			char want[128];
			uint64_t t0;
			double ms, first;

			if (i == j) {
				continue;
			}
			if ((r = km_net_client_open(from->creds, to->url,
			         to->name, NULL, &from->to[j]))
			        != 0
			    || (r = km_net_client_wait_connected(
			            from->to[j], TIMEOUT_MS))
			        != 0) {
				printf("   %s -> %s  connection FAILED: %s\n",
				    from->name, to->name, km_strerror(r));
				bad++;
				continue;
			}
			/* the first call also fills the peer's certificate
			 * cache; the second shows the steady state */
			t0 = km_mono_ns();
			r = km_net_client_call(from->to[j], "hello", 5,
			    TIMEOUT_MS, &reply, &peer);
			first = (double)(km_mono_ns() - t0) / 1e6;
			t0 = km_mono_ns();
			if (r == 0) {
				r = km_net_client_call(from->to[j], "hello", 5,
				    TIMEOUT_MS, &reply, &peer);
			}
			ms = (double)(km_mono_ns() - t0) / 1e6;
			km_net_client_tls_info(from->to[j], &info);
			snprintf(want, sizeof(want), "%s saw %s (node)",
			    to->name, from->name);
			if (r != 0 || strcmp(peer.name, to->name) != 0
			    || peer.role != KM_ROLE_NODE
			    || reply.len != strlen(want)
			    || memcmp(reply.data, want, reply.len) != 0
			    || strcmp(info.version, "TLSv1.3") != 0) {
				printf("   %s -> %s  FAILED: %s\n", from->name,
				    to->name, km_strerror(r));
				bad++;
				continue;
			}
			trips++;
			printf("   %s -> %s  %s %s  verified peer %s (%s)  "
			       "handshake %.1f ms  round trip %.2f ms (first "
			       "%.2f)\n",
			    from->name, to->name, info.version, info.cipher,
			    peer.name, km_role_name(peer.role),
			    (double)info.handshake_us / 1e3, ms, first);
		}
	}

	printf("\n4. Revoke %s; %s and %s load the new CRL\n", names[2],
	    names[0], names[1]);
	if ((r = km_pki_cert_revoke(dir, names[2])) != 0
	    || (r = km_pki_path(path, sizeof(path), dir, "crl.pem", NULL)) != 0
	    || (r = km_read_file(path, &crl, &crllen, 1u << 20)) != 0
	    || (r = km_net_creds_set_crl(nodes[0].creds, (char *)crl)) != 0
	    || (r = km_net_creds_set_crl(nodes[1].creds, (char *)crl)) != 0) {
		return fail("revoking", r);
	}
	free(crl);
	{
		km_net_client *fresh = NULL;
		int r_env, r_new;

		/* on the connection that is still open: the envelope check */
		r_env = km_net_client_call(
		    nodes[2].to[0], "hello", 5, TIMEOUT_MS, &reply, NULL);
		/* on a new connection: the TLS handshake */
		if ((r = km_net_client_open(
		         nodes[2].creds, nodes[0].url, names[0], NULL, &fresh))
		    != 0) {
			return fail("dialing", r);
		}
		r_new = km_net_client_wait_connected(fresh, 1500);
		km_net_client_close(fresh);
		if (r_env == KM_ERR_REVOKED && r_new == KM_ERR_REVOKED) {
			printf("   %s -> %s  refused: certificate revoked (on "
			       "the open connection and in a new handshake)\n",
			    names[2], names[0]);
		} else {
			printf("   %s -> %s  NOT refused as expected: open "
			       "connection: %s; new handshake: %s\n",
			    names[2], names[0], km_strerror(r_env),
			    km_strerror(r_new));
			bad++;
		}
		/* the others still talk to each other */
		if ((r = km_net_client_call(nodes[0].to[1], "hello", 5,
		         TIMEOUT_MS, &reply, &peer))
		    != 0) {
			printf(
			    "   %s -> %s  FAILED after the revocation: %s\n",
			    names[0], names[1], km_strerror(r));
			bad++;
		} else {
			printf(
			    "   %s -> %s  still fine\n", names[0], names[1]);
		}
	}

	for (i = 0; i < NODES; i++) {
		for (j = 0; j < NODES; j++) {
			km_net_client_close(nodes[i].to[j]);
		}
	}
	for (i = 0; i < NODES; i++) {
		km_net_server_stop(nodes[i].server);
		km_net_creds_free(nodes[i].creds);
	}
	km_buf_free(&reply);
	if (made_tmp && !keep) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", dir);
		}
	}
	printf("\n%s: %d of %d round trips verified, revoked node %s\n",
	    bad == 0 ? "OK" : "FAILED", trips, NODES * (NODES - 1),
	    bad == 0 ? "refused" : "check above");
	return bad == 0 ? 0 : 1;
}
