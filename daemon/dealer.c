/*
 * Key creation on the daemons.
 *
 * RSA (Shoup needs a trusted dealer): the daemon the admin asks generates
 * the safe primes and the shares in its locked memory, sends each holder
 * its shares over mutual TLS (share-prepare), and wipes everything; the
 * key exists in that one process for the seconds of the deal
 * (DESIGN.md §1.1).
 *
 * EC (no dealer): the daemon the admin asks coordinates a GJKR distributed
 * key generation (crypto/ec_dkg.h) among the holders; it only relays
 * messages, and the private ones are sealed to their recipient's
 * certificate key (pki/seal.h) so the coordinator cannot read them.  The
 * key never exists anywhere.
 *
 * Either way every holder stores its shares as prepared; the admin then
 * appends the key to the catalog, and its activation commits the shares on
 * every holder (two-phase install).  A holder that was down for the
 * activation commits when it catches up on the catalog.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "daemon/kmd.h"
#include "mesh/rpc.h"
#include "pki/pki.h"
#include "pki/seal.h"
#include "proto/proto.h"
#include "store/catalog.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

#define KMD_PEER_TIMEOUT_MS 15000
#define KMD_MAX_HOLDERS KM_CATALOG_MAX_HOLDERS
#define KMD_MAX_SHARE 16384

#define kmd_fail(msg, msglen, r, ...) \
	(snprintf((msg), (msglen), __VA_ARGS__), (r))

/* A key-create request, decoded. */
typedef struct kmd_create {
	char label[KM_NAME_MAX + 1];
	uint32_t key_type, bits, threshold;
	size_t nholders;
	km_catalog_holder holders[KMD_MAX_HOLDERS];
} kmd_create;

static int
kmd_create_decode(km_buf *in, kmd_create *c)
{
	const uint8_t *p;
	size_t n;
	uint32_t nh, i;

	memset(c, 0, sizeof(*c));
	if (km_buf_get_string_ptr(in, &p, &n, KM_NAME_MAX) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(c->label, p, n);
	c->label[n] = '\0';
	if (km_buf_get_u32(in, &c->key_type) != 0 ||
	    km_buf_get_u32(in, &c->bits) != 0 ||
	    km_buf_get_u32(in, &c->threshold) != 0 ||
	    km_buf_get_u32(in, &nh) != 0 || nh == 0 || nh > KMD_MAX_HOLDERS) {
		return KM_ERR_BAD_FORMAT;
	}
	for (i = 0; i < nh; i++) {
		km_catalog_holder *h = &c->holders[i];
		if (km_buf_get_u32(in, &h->index) != 0 ||
		    km_buf_get_string_ptr(in, &p, &n, KM_NAME_MAX) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
		memcpy(h->node, p, n);
		h->node[n] = '\0';
		/* indices are exactly 1..n, in order */
		if (h->index != i + 1 || !km_name_valid(h->node)) {
			return KM_ERR_BAD_FORMAT;
		}
	}
	c->nholders = nh;
	if (km_buf_remaining(in) != 0 || !km_name_valid(c->label) ||
	    c->threshold == 0 || c->threshold > nh) {
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

/* The client of a peer by name, or NULL (NULL for ourselves too). */
static struct km_net_client *
kmd_peer_client(kmd_state *st, const char *name)
{
	unsigned i;

	for (i = 0; i < st->cfg.npeers; i++) {
		if (strcmp(st->cfg.peers[i].name, name) == 0) {
			return st->peer_clients[i];
		}
	}
	return NULL;
}

/* Distinct holder nodes in order of first appearance. */
static size_t
kmd_parties(const kmd_create *c, const char **names, uint32_t *owner)
{
	size_t i, j, np = 0;

	for (i = 0; i < c->nholders; i++) {
		for (j = 0; j < np; j++) {
			if (strcmp(names[j], c->holders[i].node) == 0) {
				break;
			}
		}
		if (j == np) {
			names[np++] = c->holders[i].node;
		}
		owner[i] = (uint32_t)(j + 1);
	}
	return np;
}

/* ---- share prepare / abort (every holder) ------------------------------ */

int
kmd_do_share_prepare(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	const uint8_t *pubdata, *sp;
	size_t publen, slen;
	uint32_t key_type, count, i, idx;
	km_rsa_pub *rpub = NULL;
	km_ec_group *g = NULL;
	km_ec_pub *epub = NULL;
	int r = 0;

	if (km_buf_get_u32(in, &key_type) != 0 ||
	    km_buf_get_string_ptr(in, &pubdata, &publen,
		KM_CATALOG_PUBLIC_MAX) != 0 ||
	    km_buf_get_u32(in, &count) != 0 || count == 0 ||
	    count > KM_PROTO_MAX_INDICES || h->epoch == 0) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed share-prepare request");
	}
	if (key_type == KM_KEY_RSA) {
		r = km_rsa_pub_decode(pubdata, publen, &rpub);
	} else if (key_type == KM_KEY_EC_P256 || key_type == KM_KEY_EC_P384) {
		r = km_ec_group_new(key_type == KM_KEY_EC_P256 ?
			NID_X9_62_prime256v1 :
			NID_secp384r1,
		    &g);
		if (r == 0) {
			r = km_ec_pub_decode(g, pubdata, publen, &epub);
		}
	} else {
		r = KM_ERR_NOT_SUPPORTED;
	}
	if (r != 0) {
		r = kmd_fail(msg, msglen, r, "bad public data for key %s",
		    h->key_id);
		goto out;
	}
	for (i = 0; i < count; i++) {
		if (km_buf_get_u32(in, &idx) != 0 ||
		    km_buf_get_string_ptr(in, &sp, &slen, KMD_MAX_SHARE) !=
			0) {
			r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
			    "malformed share-prepare request");
			goto out;
		}
		/* each share must belong to the key it comes with */
		if (rpub != NULL) {
			km_rsa_share *s = NULL;
			r = km_rsa_share_decode(rpub, sp, slen, &s);
			if (r == 0 && km_rsa_share_index(s) != idx) {
				r = KM_ERR_BAD_FORMAT;
			}
			km_rsa_share_free(s);
		} else {
			km_ec_share *s = NULL;
			r = km_ec_share_decode(g, sp, slen, epub->n, &s);
			if (r == 0 && s->index != idx) {
				r = KM_ERR_BAD_FORMAT;
			}
			if (r == 0) {
				r = km_ec_share_check(g, epub, s);
			}
			km_ec_share_free(s);
		}
		if (r != 0) {
			r = kmd_fail(msg, msglen, KM_ERR_VERIFY,
			    "share %u does not belong to key %s", idx,
			    h->key_id);
			goto out;
		}
		if ((r = kmd_share_store(st, h->key_id, h->epoch, idx, sp,
			 slen)) != 0) {
			r = kmd_fail(msg, msglen, r,
			    "cannot store share %u of key %s: %s", idx,
			    h->key_id, km_strerror(r));
			goto out;
		}
		/* XXX the share also sits in the transport's receive buffer,
		 * which is not locked memory; wipe our view of it at least */
		km_secret_wipe((uint8_t *)sp, slen);
	}
	if (km_buf_remaining(in) != 0) {
		r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "trailing bytes in share-prepare");
		goto out;
	}
	km_log_info("KMD-SHARE-PREPARED", "prepared %u share(s) of %s epoch "
					  "%u from %s",
	    count, h->key_id, h->epoch, peer->name);
	r = 0;
out:
	if (r != 0) {
		(void)km_store_share_abort(st->store, h->key_id, h->epoch);
	}
	km_rsa_pub_free(rpub);
	km_ec_pub_free(epub);
	km_ec_group_free(g);
	(void)out;
	return r;
}

int
kmd_do_share_abort(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	int r;

	(void)in;
	(void)out;
	r = km_store_share_abort(st->store, h->key_id, h->epoch);
	if (r != 0 && r != KM_ERR_NOT_FOUND) {
		return kmd_fail(msg, msglen, r, "cannot abort %s: %s",
		    h->key_id, km_strerror(r));
	}
	km_log_info("KMD-SHARE-ABORT", "dropped prepared shares of %s epoch "
				       "%u (asked by %s)",
	    h->key_id, h->epoch, peer->name);
	return 0;
}

/* Send shares to one holder node (or store them here). */
static int
kmd_send_shares(kmd_state *st, const char *key_id, uint32_t epoch,
    uint32_t key_type, const km_buf *pub, const char *node,
    const uint32_t *idx, km_buf *const *shares, size_t n, char *why,
    size_t whylen)
{
	km_buf req, rep;
	size_t i;
	int r;

	if (strcmp(node, st->cfg.name) == 0) {
		for (i = 0; i < n; i++) {
			r = kmd_share_store(st, key_id, epoch, idx[i],
			    shares[i]->data, shares[i]->len);
			if (r != 0) {
				snprintf(why, whylen, "%s: %s", node,
				    km_strerror(r));
				(void)km_store_share_abort(st->store, key_id,
				    epoch);
				return r;
			}
		}
		return 0;
	}
	if (kmd_peer_client(st, node) == NULL) {
		snprintf(why, whylen, "%s is not a peer of %s", node,
		    st->cfg.name);
		return KM_ERR_NOT_FOUND;
	}
	km_buf_init_secure(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_SHARE_PREPARE, key_id, epoch, NULL);
	r = r ? r : km_buf_put_u32(&req, key_type);
	r = r ? r : km_buf_put_string(&req, pub->data, pub->len);
	r = r ? r : km_buf_put_u32(&req, (uint32_t)n);
	for (i = 0; r == 0 && i < n; i++) {
		r = km_buf_put_u32(&req, idx[i]);
		r = r ? r :
			km_buf_put_string(&req, shares[i]->data,
			    shares[i]->len);
	}
	if (r == 0) {
		char m[256];
		r = km_rpc_call(kmd_peer_client(st, node), &req, KMD_PEER_TIMEOUT_MS,
		    &rep, m, sizeof(m));
		if (r != 0) {
			snprintf(why, whylen, "%s did not store its share: %s",
			    node, m);
		}
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

static void
kmd_abort_all(kmd_state *st, const char *key_id, uint32_t epoch,
    const kmd_create *c)
{
	const char *names[KMD_MAX_HOLDERS];
	uint32_t owner[KMD_MAX_HOLDERS];
	size_t np, i;

	np = kmd_parties(c, names, owner);
	for (i = 0; i < np; i++) {
		km_buf req, rep;
		char m[128];

		if (strcmp(names[i], st->cfg.name) == 0) {
			(void)km_store_share_abort(st->store, key_id, epoch);
			continue;
		}
		if (kmd_peer_client(st, names[i]) == NULL) {
			continue;
		}
		km_buf_init(&req);
		km_buf_init(&rep);
		if (km_rpc_request(&req, KM_MSG_SHARE_ABORT, key_id, epoch,
			NULL) == 0) {
			(void)km_rpc_call(kmd_peer_client(st, names[i]), &req, 3000,
			    &rep, m, sizeof(m));
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
}

/* ---- RSA dealer ------------------------------------------------------- */

typedef struct kmd_progress {
	kmd_state *st;
	const char *key_id;
	int bits;
	int count[2];
	int found;
} kmd_progress;

static int
kmd_rsa_progress(void *arg, int which, int stage, int count)
{
	kmd_progress *p = arg;

	if (which < 0 || which > 1) {
		return 0;
	}
	if (stage == 0) {
		p->count[which] = count;
	} else if (stage == 3) {
		p->found++;
	}
	pthread_mutex_lock(&p->st->lock);
	snprintf(p->st->keygen_status, sizeof(p->st->keygen_status),
	    "rsa-%d %s: safe-prime search, %d+%d candidates, %d of 2 found",
	    p->bits, p->key_id, p->count[0], p->count[1], p->found);
	pthread_mutex_unlock(&p->st->lock);
	return p->st->stopping ? 1 : 0;
}

static int
kmd_rsa_deal(kmd_state *st, const km_req_hdr *h, const kmd_create *c,
    km_buf *out, char *msg, size_t msglen)
{
	km_rsa_pub *pub = NULL;
	km_rsa_share *shares[KMD_MAX_HOLDERS];
	km_buf pubenc, enc[KMD_MAX_HOLDERS];
	const char *names[KMD_MAX_HOLDERS];
	uint32_t owner[KMD_MAX_HOLDERS];
	kmd_progress prog;
	size_t np, i, j;
	char why[300] = "";
	int r;

	memset(shares, 0, sizeof(shares));
	memset(&prog, 0, sizeof(prog));
	prog.st = st;
	prog.key_id = h->key_id;
	prog.bits = (int)c->bits;
	km_buf_init(&pubenc);
	for (i = 0; i < c->nholders; i++) {
		km_buf_init_secure(&enc[i]);
	}
	if (c->bits != 2048 && c->bits != 3072 && c->bits != 4096) {
		r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
		    "RSA keys are 2048, 3072 or 4096 bits, not %u", c->bits);
		goto out;
	}
	if (c->nholders > KM_RSA_MAX_HOLDERS) {
		r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
		    "an RSA key has at most %d shares", KM_RSA_MAX_HOLDERS);
		goto out;
	}
	km_log_info("KMD-DEAL-START", "dealing rsa-%u key %s, %u of %zu",
	    c->bits, h->key_id, c->threshold, c->nholders);
	kmd_fault_dealing(h->key_id);
	if ((r = km_rsa_keygen((int)c->bits, c->threshold,
		 (unsigned)c->nholders, kmd_rsa_progress, &prog, &pub,
		 shares)) != 0) {
		r = kmd_fail(msg, msglen, r, "RSA key generation failed: %s",
		    km_strerror(r));
		goto out;
	}
	if ((r = km_rsa_pub_encode(pub, &pubenc)) != 0) {
		goto out;
	}
	for (i = 0; i < c->nholders; i++) {
		if ((r = km_rsa_share_encode(pub, shares[i], &enc[i])) != 0) {
			goto out;
		}
	}
	/* the shares are encoded: drop the BIGNUM copies at once */
	km_rsa_shares_free(shares, (unsigned)c->nholders);
	np = kmd_parties(c, names, owner);
	for (j = 0; j < np; j++) {
		uint32_t idx[KMD_MAX_HOLDERS];
		km_buf *mine[KMD_MAX_HOLDERS];
		size_t n = 0;

		for (i = 0; i < c->nholders; i++) {
			if (owner[i] == j + 1) {
				idx[n] = c->holders[i].index;
				mine[n++] = &enc[i];
			}
		}
		r = kmd_send_shares(st, h->key_id, h->epoch, KM_KEY_RSA,
		    &pubenc, names[j], idx, mine, n, why, sizeof(why));
		/* a holder's shares are wiped here as soon as sent */
		for (i = 0; i < n; i++) {
			km_buf_free(mine[i]);
		}
		if (r != 0) {
			kmd_abort_all(st, h->key_id, h->epoch, c);
			r = kmd_fail(msg, msglen, r,
			    "key %s not created: %s; no holder keeps a share",
			    h->key_id, why);
			goto out;
		}
	}
	r = km_buf_put_string(out, pubenc.data, pubenc.len);
	km_log_info("KMD-DEAL-DONE", "dealt rsa-%u key %s to %zu node(s)",
	    c->bits, h->key_id, np);
out:
	pthread_mutex_lock(&st->lock);
	snprintf(st->keygen_status, sizeof(st->keygen_status), "idle");
	pthread_mutex_unlock(&st->lock);
	km_rsa_shares_free(shares, (unsigned)c->nholders);
	for (i = 0; i < c->nholders; i++) {
		km_buf_free(&enc[i]);
	}
	km_buf_free(&pubenc);
	km_rsa_pub_free(pub);
	return r;
}

int
kmd_do_key_create(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	kmd_create c;
	km_catalog_key existing;
	int r;

	if (kmd_create_decode(in, &c) != 0 || h->epoch != 1) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed key-create request");
	}
	memset(&existing, 0, sizeof(existing));
	if (km_catalog_key_get(st->store, h->key_id, &existing) == 0) {
		km_catalog_key_free(&existing);
		return kmd_fail(msg, msglen, KM_ERR_EXISTS,
		    "key id %s is already in the catalog", h->key_id);
	}
	km_log_info("KMD-KEY-CREATE", "%s asks for key %s (%s)", peer->name,
	    h->key_id, c.label);
	switch (c.key_type) {
	case KM_KEY_RSA:
		r = kmd_rsa_deal(st, h, &c, out, msg, msglen);
		break;
	case KM_KEY_EC_P256:
	case KM_KEY_EC_P384:
		r = kmd_dkg_coordinate(st, h, c.key_type, c.threshold,
		    c.nholders, c.holders, out, msg, msglen);
		break;
	default:
		r = kmd_fail(msg, msglen, KM_ERR_NOT_SUPPORTED,
		    "key type %u is not supported", c.key_type);
	}
	return r;
}
