/*
 * send-raw-request: sign an arbitrary request body with a client identity
 * and send it to one keymeshd, for test-bad-input.sh.  The envelope is
 * valid (certificate, signature, nonce, time), so the body reaches the
 * daemon's request decoder: this is how a malicious but enrolled client
 * looks to the daemon.
 *
 *   send-raw-request -c CADIR -n NAME -u URL -p PEER [-w MS]
 *       [-T TYPE [-k KEYID] [-e EPOCH] [-t]] [-x HEX] [-r NRANDOM] [-f FILE]
 *
 * -t puts a login ticket of 32 zero bytes in the header (not a valid one:
 * for requests refused before the ticket is checked, e.g. by a
 * quarantined node, test-quarantine.sh).
 *
 * The body is, in this order: a well-formed request header of message type
 * TYPE (-T), the bytes of HEX (-x), NRANDOM random bytes (-r) and the
 * contents of FILE (-f).  With none of them the body is empty.
 *
 * Prints one line and exits 0 when the daemon replied with status 0, 1
 * when it refused the request (a verified error envelope, or a reply whose
 * header carries an error status; the line names the code), 2 when no
 * verified answer came (timeout, connection or handshake failure) or on a
 * usage error, 3 when the reply itself was malformed.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "pki/pki.h"
#include "proto/proto.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/util.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: send-raw-request -c CADIR -n NAME -u URL -p PEER [-w MS]\n"
	    "    [-T TYPE [-k KEYID] [-e EPOCH] [-t]] [-x HEX] [-r N] "
	    "[-f FILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *ca = NULL, *name = NULL, *url = NULL, *peer = NULL;
	const char *hex = NULL, *file = NULL, *key_id = "";
	unsigned long type = 0, epoch = 0, nrandom = 0;
	km_net_creds *creds = NULL;
	km_net_client *cl = NULL;
	km_identity who;
	km_req_hdr h;
	km_rep_hdr rh;
	km_buf body, reply, view;
	uint8_t *d = NULL;
	size_t len = 0;
	int c, r, timeout = 5000, rc = 2;
	bool ticket = false;

	while ((c = getopt(argc, argv, "c:n:u:p:w:T:k:e:x:r:f:t")) != -1) {
		switch (c) {
		case 't':
			ticket = true;
			break;
		case 'c':
			ca = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'p':
			peer = optarg;
			break;
		case 'w':
			timeout = atoi(optarg);
			break;
		case 'T':
			type = strtoul(optarg, NULL, 0);
			break;
		case 'k':
			key_id = optarg;
			break;
		case 'e':
			epoch = strtoul(optarg, NULL, 0);
			break;
		case 'x':
			hex = optarg;
			break;
		case 'r':
			nrandom = strtoul(optarg, NULL, 0);
			break;
		case 'f':
			file = optarg;
			break;
		default:
			usage();
		}
	}
	if (ca == NULL || name == NULL || url == NULL || peer == NULL
	    || nrandom > KM_NET_BODY_MAX * 2) {
		usage();
	}
	km_buf_init(&body);
	km_buf_init(&reply);
	if (type != 0) {
		memset(&h, 0, sizeof(h));
		h.type = (uint32_t)type;
		h.epoch = (uint32_t)epoch;
		snprintf(h.key_id, sizeof(h.key_id), "%s", key_id);
		h.has_ticket = ticket;
		if ((r = km_req_encode_hdr(&body, &h)) != 0) {
			fprintf(stderr, "send-raw-request: header: %s\n",
			    km_strerror(r));
			goto out;
		}
	}
	if (hex != NULL) {
		len = strlen(hex) / 2;
		if ((d = malloc(len + 1)) == NULL || km_unhex(hex, d, len) != 0
		    || km_buf_put_raw(&body, d, len) != 0) {
			fprintf(stderr, "send-raw-request: bad hex\n");
			goto out;
		}
		free(d);
		d = NULL;
	}
	if (nrandom > 0) {
		if ((d = malloc(nrandom)) == NULL || km_random(d, nrandom) != 0
		    || km_buf_put_raw(&body, d, nrandom) != 0) {
			fprintf(stderr, "send-raw-request: random\n");
			goto out;
		}
		free(d);
		d = NULL;
	}
	if (file != NULL) {
		if ((r = km_read_file(file, &d, &len, KM_NET_BODY_MAX * 2))
		        != 0
		    || km_buf_put_raw(&body, d, len) != 0) {
			fprintf(stderr, "send-raw-request: %s: cannot read\n",
			    file);
			goto out;
		}
		free(d);
		d = NULL;
	}
	if ((r = km_net_creds_load(ca, name, &creds)) != 0
	    || (r = km_net_client_open(creds, url, peer, NULL, &cl)) != 0) {
		fprintf(stderr, "send-raw-request: %s\n", km_strerror(r));
		goto out;
	}
	memset(&who, 0, sizeof(who));
	r = km_net_client_call(cl, body.data, body.len, timeout, &reply, &who);
	if (r == 0) {
		/* a reply envelope: its body says whether the request failed
		 */
		km_buf_init_view(&view, reply.data, reply.len);
		if ((r = km_rep_decode_hdr(&view, &rh)) != 0) {
			printf("malformed reply (%s) from %s\n",
			    km_strerror(r), who.name);
			rc = 3;
		} else if (rh.status != 0) {
			printf("error reply %d (%s: %s) from %s\n", rh.status,
			    km_strerror(rh.status), rh.message, who.name);
			rc = 1;
		} else {
			printf(
			    "reply %zu bytes from %s\n", reply.len, who.name);
			rc = 0;
		}
	} else if (who.name[0] != '\0') {
		printf("error %d (%s) from %s\n", r, km_strerror(r), who.name);
		rc = 1;
	} else {
		printf("no answer: %d (%s)\n", r, km_strerror(r));
	}
out:
	/* the verdict is out before the close, which may still block */
	fflush(stdout);
	free(d);
	if (cl != NULL) {
		km_net_client_close(cl);
	}
	km_net_creds_free(creds);
	km_buf_free(&body);
	km_buf_free(&reply);
	return rc;
}
