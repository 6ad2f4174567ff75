/*
 * Re-sharing a key across the daemons: same public key, a new epoch, new
 * shares on a new member set and threshold, without reconstructing the
 * key anywhere (DESIGN.md §3 "Re-sharing").
 *
 * The daemon the admin asks is the coordinator.  It picks k reachable old
 * holders (the dealing quorum) and drives stateless rounds of reshare-step
 * requests; it calls itself directly.  Every party re-checks, on its own,
 * that the key exists and is active at the stated epoch, that the new
 * epoch is the next one and that the quorum is made of the key's current
 * indices, before it touches a share.
 *
 *   RSA: integer re-sharing (Frankel, Gemmell, MacKenzie, Yung, FOCS 1997;
 *        Rabin, CRYPTO 1998), crypto/rsa.h km_rsa_reshare_*;
 *   EC:  Desmedt-Jajodia sum of sub-shares with Feldman commitments
 *        (Wong, Wang, Wing 2002), crypto/ec_reshare.h.
 *
 * A dealer's sub-share for new index j is sealed to the certificate key of
 * j's new owner (pki/seal.h), so the coordinator relays it unread; EC
 * commitments travel in clear (they are public).  New holders store their
 * new shares as *prepared* under the new epoch and answer with the new
 * public data; the coordinator checks that they all agree and returns it
 * to the admin, who then appends RESHARE_BEGIN and RESHARE_COMMIT.
 *
 * WARNING: a node may coordinate, but only an admin may decide a re-share:
 * otherwise one compromised node could have k dealers re-share the key to
 * new indices it holds all of.  So the admin first sends every daemon an
 * "authorise" round naming the key, the epochs, the new threshold and the
 * new holders, and a daemon deals or accepts shares only for exactly what
 * an admin authorised in the last KMD_RS_AUTH_TTL_MS, or for exactly the
 * re-share that an eviction applied in the catalog calls for (the key's
 * holders less the evicted node's indices, the same threshold:
 * store/evict.h km_evict_plan, docs/eviction.md), or for a proactive
 * refresh (the same holders and threshold while the posture policy has
 * refresh on: km_evict_reshare_allowed, docs/resharing.md).  Only
 * the commit makes the new shares usable, and it deletes the old ones in
 * the same transaction on every holder (store/catalog.h).  The protocol
 * and why the order is crash-safe: docs/resharing.md.
 *
 * Rounds on the wire (header: key id, current epoch; then uint32 round):
 *   0 start   (admin):  uint32 new_epoch, new_k, new_n,
 *                       new_n x (uint32 index, string node)
 *                       -> string new public data
 *   1 hello   (node):   params -> string certificate (DER)
 *   2 deal    (node):   params, uint32 np, np x (string node, string cert)
 *                       -> messages
 *   3 receive (node):   params, messages for this node
 *                       -> string new public data, string certificate
 *                       (DER), string ack statement, string signature:
 *                       this node's signed ack of the public data it
 *                       computed itself (store/evict.h km_reshare_ack),
 *                       which a node-signed RESHARE_BEGIN must carry
 *                       from every new holder node
 *   8 authorise (admin): as start -> (nothing); the admin sends it to
 *                       every node before it asks the coordinator
 *   9 abort   (node):   uint32 new_epoch -> (nothing)
 * params   = uint32 new_epoch, new_k, new_n, new_n x (uint32 index,
 *            string node), uint32 q, q x uint32 old index
 * messages = uint32 count, count x (uint32 from, uint32 to, string body):
 *            from an old index, to a new index (sealed with AAD
 *            "keymesh-reshare|key|new_epoch|from|to") or 0 (in clear).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/ec_group.h"
#include "crypto/ec_reshare.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "daemon/evict.h"
#include "daemon/kmd.h"
#include "mesh/rpc.h"
#include "net/net.h"
#include "pki/pki.h"
#include "pki/seal.h"
#include "proto/proto.h"
#include "store/catalog.h"
#include "store/evict.h"
#include "store/store.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

#define KMD_RS_TIMEOUT_MS 20000
#define KMD_RS_MAX        KM_CATALOG_MAX_HOLDERS
#define KMD_RS_MAX_MSGS   4096
#define KMD_RS_BODY_MAX   (64u * 1024)
#define KMD_RS_CERT_MAX   16384

#define KMD_RS_START       0u
#define KMD_RS_HELLO       1u
#define KMD_RS_DEAL        2u
#define KMD_RS_RECEIVE     3u
#define KMD_RS_AUTHORISE   8u
#define KMD_RS_ABORT       9u
#define KMD_RS_AUTH_TTL_MS (10u * 60 * 1000)
#define KMD_RS_AUTH_SLOTS  16

#define kmd_fail(msg, msglen, r, ...)                                         \
	(snprintf((msg), (msglen), __VA_ARGS__), (r))

/* What every party must agree on. */
typedef struct kmd_rs_params {
	uint32_t new_epoch, new_k, new_n;
	km_catalog_holder holders[KMD_RS_MAX]; /* new index i+1 at [i] */
	uint32_t q;
	uint32_t quorum[KMD_RS_MAX]; /* old indices that deal */
} kmd_rs_params;

/* One relayed message; body points into a reply or a request. */
typedef struct kmd_rs_msg {
	uint32_t from, to;
	const uint8_t *body;
	size_t len;
} kmd_rs_msg;

static int
kmd_rs_put_holders(km_buf *b, const kmd_rs_params *p)
{
	uint32_t i;
	int r;

	r = km_buf_put_u32(b, p->new_epoch);
	r = r ? r : km_buf_put_u32(b, p->new_k);
	r = r ? r : km_buf_put_u32(b, p->new_n);
	for (i = 0; r == 0 && i < p->new_n; i++) {
		r = km_buf_put_u32(b, p->holders[i].index);
		r = r ? r : km_buf_put_cstring(b, p->holders[i].node);
	}
	return r;
}

static int
kmd_rs_put_params(km_buf *b, const kmd_rs_params *p)
{
	uint32_t i;
	int r;

	r = kmd_rs_put_holders(b, p);
	r = r ? r : km_buf_put_u32(b, p->q);
	for (i = 0; r == 0 && i < p->q; i++) {
		r = km_buf_put_u32(b, p->quorum[i]);
	}
	return r;
}

/* New holders: indices exactly 1..new_n in order, valid node names. */
static int
kmd_rs_get_holders(km_buf *b, kmd_rs_params *p)
{
	const uint8_t *s;
	size_t n;
	uint32_t i;

	if (km_buf_get_u32(b, &p->new_epoch) != 0
	    || km_buf_get_u32(b, &p->new_k) != 0
	    || km_buf_get_u32(b, &p->new_n) != 0 || p->new_n == 0
	    || p->new_n > KMD_RS_MAX || p->new_k == 0 || p->new_k > p->new_n) {
		return KM_ERR_BAD_FORMAT;
	}
	for (i = 0; i < p->new_n; i++) {
		km_catalog_holder *h = &p->holders[i];
		if (km_buf_get_u32(b, &h->index) != 0
		    || km_buf_get_string_ptr(b, &s, &n, KM_NAME_MAX) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
		memcpy(h->node, s, n);
		h->node[n] = '\0';
		if (h->index != i + 1 || !km_name_valid(h->node)) {
			return KM_ERR_BAD_FORMAT;
		}
	}
	return 0;
}

static int
kmd_rs_get_params(km_buf *b, kmd_rs_params *p)
{
	uint32_t i;

	memset(p, 0, sizeof(*p));
	if (kmd_rs_get_holders(b, p) != 0 || km_buf_get_u32(b, &p->q) != 0
	    || p->q == 0 || p->q > KMD_RS_MAX) {
		return KM_ERR_BAD_FORMAT;
	}
	for (i = 0; i < p->q; i++) {
		if (km_buf_get_u32(b, &p->quorum[i]) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
	}
	return 0;
}

/*
 * Admin authorisations of re-shares: (key, epoch, SHA-256 of the new
 * sharing) with an expiry.  Process-wide: one daemon per process.
 */
typedef struct kmd_rs_auth {
	char key_id[KM_NAME_MAX + 1];
	uint32_t epoch;
	uint8_t digest[32];
	uint64_t expires_ms;
} kmd_rs_auth;

static pthread_mutex_t kmd_rs_auth_lock = PTHREAD_MUTEX_INITIALIZER;
static kmd_rs_auth kmd_rs_auths[KMD_RS_AUTH_SLOTS];

/* SHA-256 of what an admin decides: the new epoch, threshold, holders. */
static int
kmd_rs_digest(const kmd_rs_params *p, uint8_t digest[32])
{
	unsigned int n = 0;
	km_buf b;
	int r;

	km_buf_init(&b);
	r = km_buf_put_cstring(&b, "keymesh-reshare-auth");
	r = r ? r : kmd_rs_put_holders(&b, p);
	if (r == 0
	    && (EVP_Digest(b.data, b.len, digest, &n, EVP_sha256(), NULL) != 1
	        || n != 32)) {
		r = KM_ERR_CRYPTO;
	}
	km_buf_free(&b);
	return r;
}

static int
kmd_rs_auth_add(const km_req_hdr *h, const kmd_rs_params *p)
{
	uint8_t d[32];
	uint64_t now = km_now_ms();
	size_t i, slot = 0;
	int r;

	if ((r = kmd_rs_digest(p, d)) != 0) {
		return r;
	}
	pthread_mutex_lock(&kmd_rs_auth_lock);
	/* a free or expired slot, else the one expiring first */
	for (i = 0; i < KMD_RS_AUTH_SLOTS; i++) {
		if (kmd_rs_auths[i].expires_ms <= now
		    || (strcmp(kmd_rs_auths[i].key_id, h->key_id) == 0
		        && kmd_rs_auths[i].epoch == h->epoch)) {
			slot = i;
			break;
		}
		if (kmd_rs_auths[i].expires_ms
		    < kmd_rs_auths[slot].expires_ms) {
			slot = i;
		}
	}
	snprintf(kmd_rs_auths[slot].key_id, sizeof(kmd_rs_auths[slot].key_id),
	    "%s", h->key_id);
	kmd_rs_auths[slot].epoch = h->epoch;
	memcpy(kmd_rs_auths[slot].digest, d, sizeof(d));
	kmd_rs_auths[slot].expires_ms = now + KMD_RS_AUTH_TTL_MS;
	pthread_mutex_unlock(&kmd_rs_auth_lock);
	return 0;
}

static bool
kmd_rs_authorised(const km_req_hdr *h, const kmd_rs_params *p)
{
	uint8_t d[32];
	uint64_t now = km_now_ms();
	bool ok = false;
	size_t i;

	if (kmd_rs_digest(p, d) != 0) {
		return false;
	}
	pthread_mutex_lock(&kmd_rs_auth_lock);
	for (i = 0; i < KMD_RS_AUTH_SLOTS && !ok; i++) {
		ok = kmd_rs_auths[i].expires_ms > now
		    && kmd_rs_auths[i].epoch == h->epoch
		    && strcmp(kmd_rs_auths[i].key_id, h->key_id) == 0
		    && CRYPTO_memcmp(kmd_rs_auths[i].digest, d, 32) == 0;
	}
	pthread_mutex_unlock(&kmd_rs_auth_lock);
	return ok;
}

/* The node holding old index @idx of @k, or NULL. */
static const char *
kmd_rs_old_owner(const km_catalog_key *k, uint32_t idx)
{
	size_t i;

	for (i = 0; i < k->nholders; i++) {
		if (k->holders[i].index == idx) {
			return k->holders[i].node;
		}
	}
	return NULL;
}

/*
 * Authorised by the catalog without an admin: @p is exactly the re-share
 * an eviction calls for (km_evict_plan), or a proactive refresh to the
 * current holders and threshold while the posture policy has refresh on,
 * judged from this node's own catalog (store/evict.h
 * km_evict_reshare_allowed).
 */
static bool
kmd_rs_evict_authorised(
    kmd_state *st, const km_catalog_key *k, const kmd_rs_params *p)
{
	char why[256];

	return km_evict_reshare_allowed(st->store, k, p->new_k, p->holders,
	           p->new_n, true, NULL, why, sizeof(why))
	    == 0;
}

/* An evicted node never deals: its share is what the re-share retires. */
static bool
kmd_rs_evicted(kmd_state *st, const char *node)
{
	return node != NULL
	    && km_catalog_evicted_get(st->store, node, NULL) == 0;
}

/*
 * Every party's own check before it acts: the key exists, is active at
 * the header's epoch, the new epoch is the next one, the new sharing is
 * one this key type supports, and the quorum is k distinct current
 * indices.  On success *@k is filled (km_catalog_key_free).
 */
static int
kmd_rs_check(kmd_state *st, const km_req_hdr *h, const kmd_rs_params *p,
    bool check_quorum, km_catalog_key *k, char *msg, size_t msglen)
{
	uint32_t i, j;
	int r;

	memset(k, 0, sizeof(*k));
	if ((r = km_catalog_key_get(st->store, h->key_id, k)) != 0) {
		return kmd_fail(msg, msglen, r, "no key %s on %s", h->key_id,
		    st->cfg.name);
	}
	if (k->state != KM_KEY_ACTIVE) {
		r = kmd_fail(msg, msglen, KM_ERR_STATE,
		    "key %s is not active (state %u) on %s", h->key_id,
		    (unsigned)k->state, st->cfg.name);
		goto out;
	}
	if (k->epoch != h->epoch) {
		r = kmd_fail(msg, msglen, KM_ERR_STALE,
		    "key %s is at epoch %u on %s, not %u", h->key_id, k->epoch,
		    st->cfg.name, h->epoch);
		goto out;
	}
	if (p->new_epoch != k->epoch + 1) {
		r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
		    "the new epoch of key %s must be %u, not %u", h->key_id,
		    k->epoch + 1, p->new_epoch);
		goto out;
	}
	if (k->key_type == KM_KEY_RSA) {
		/* integer re-sharing needs k' >= 2 (docs/crypto-rsa.md) */
		if (p->new_n > KM_RSA_MAX_HOLDERS || p->new_k < 2) {
			r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
			    "an RSA key is re-shared to 2..%d shares with a "
			    "threshold of at least 2",
			    KM_RSA_MAX_HOLDERS);
			goto out;
		}
	} else if (k->key_type != KM_KEY_EC_P256
	    && k->key_type != KM_KEY_EC_P384) {
		r = kmd_fail(msg, msglen, KM_ERR_NOT_SUPPORTED,
		    "key %s has a type that cannot be re-shared", h->key_id);
		goto out;
	}
	if (check_quorum && !kmd_rs_authorised(h, p)
	    && !kmd_rs_evict_authorised(st, k, p)) {
		r = kmd_fail(msg, msglen, KM_ERR_AUTH,
		    "no admin authorised this re-share of %s on %s", h->key_id,
		    st->cfg.name);
		goto out;
	}
	if (check_quorum) {
		if (p->q != k->threshold) {
			r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
			    "a re-share of %s needs %u dealers, not %u",
			    h->key_id, k->threshold, p->q);
			goto out;
		}
		for (i = 0; i < p->q; i++) {
			for (j = 0; j < i; j++) {
				if (p->quorum[j] == p->quorum[i]) {
					break;
				}
			}
			if (j < i || kmd_rs_old_owner(k, p->quorum[i]) == NULL
			    || kmd_rs_evicted(
			        st, kmd_rs_old_owner(k, p->quorum[i]))) {
				r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
				    "bad dealing quorum for %s", h->key_id);
				goto out;
			}
		}
	}
	r = 0;
out:
	if (r != 0) {
		km_catalog_key_free(k);
	}
	return r;
}

static void
kmd_rs_aad(char *aad, size_t len, const char *key_id, uint32_t epoch,
    uint32_t from, uint32_t to)
{
	snprintf(
	    aad, len, "keymesh-reshare|%s|%u|%u|%u", key_id, epoch, from, to);
}

/* Decodes "uint32 count, count x (from, to, body)" into @v (pointers). */
static int
kmd_rs_get_msgs(km_buf *b, kmd_rs_msg **v, size_t *n)
{
	kmd_rs_msg *m = NULL;
	uint32_t count, i;

	*v = NULL;
	*n = 0;
	if (km_buf_get_u32(b, &count) != 0 || count > KMD_RS_MAX_MSGS) {
		return KM_ERR_BAD_FORMAT;
	}
	if (count > 0 && (m = calloc(count, sizeof(*m))) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < count; i++) {
		if (km_buf_get_u32(b, &m[i].from) != 0
		    || km_buf_get_u32(b, &m[i].to) != 0
		    || km_buf_get_string_ptr(
		           b, &m[i].body, &m[i].len, KMD_RS_BODY_MAX)
		        != 0) {
			free(m);
			return KM_ERR_BAD_FORMAT;
		}
	}
	*v = m;
	*n = count;
	return 0;
}

static bool
kmd_rs_in_quorum(const kmd_rs_params *p, uint32_t idx)
{
	uint32_t i;

	for (i = 0; i < p->q; i++) {
		if (p->quorum[i] == idx) {
			return true;
		}
	}
	return false;
}

/* ---- the parties --------------------------------------------------- */

/* Round 1: the checks, a clean slate for the new epoch, our cert. */
static int
kmd_rs_hello(kmd_state *st, const km_req_hdr *h, km_buf *in, km_buf *out,
    char *msg, size_t msglen)
{
	kmd_rs_params p;
	km_catalog_key k;
	uint8_t *der = NULL;
	X509 *cert = NULL;
	int r, len;

	if (kmd_rs_get_params(in, &p) != 0 || km_buf_remaining(in) != 0) {
		return kmd_fail(
		    msg, msglen, KM_ERR_BAD_FORMAT, "malformed reshare hello");
	}
	if ((r = kmd_rs_check(st, h, &p, true, &k, msg, msglen)) != 0) {
		return r;
	}
	km_catalog_key_free(&k);
	/* a failed earlier attempt may have left prepared shares of this
	 * epoch here; they would block the new ones (never committed ones:
	 * the store refuses to drop those) */
	(void)km_store_share_abort(st->store, h->key_id, p.new_epoch);
	if ((r = km_pki_load_cert(st->cfg.cert, &cert)) != 0
	    || (len = i2d_X509(cert, &der)) <= 0) {
		r = r ? r : KM_ERR_CRYPTO;
		r = kmd_fail(msg, msglen, r, "cannot read our certificate");
		goto out;
	}
	r = km_buf_put_string(out, der, (size_t)len);
out:
	OPENSSL_free(der);
	X509_free(cert);
	return r;
}

/* The certificate key of node @name in the list, verified, or NULL. */
static EVP_PKEY *
kmd_rs_cert_key(kmd_state *st, const char *name, const char **nodes,
    const uint8_t **certs, const size_t *lens, size_t np)
{
	km_identity id;
	EVP_PKEY *pk = NULL;
	const uint8_t *q;
	X509 *cert;
	size_t i;

	for (i = 0; i < np; i++) {
		if (strcmp(nodes[i], name) != 0) {
			continue;
		}
		q = certs[i];
		if ((cert = d2i_X509(NULL, &q, (long)lens[i])) == NULL) {
			return NULL;
		}
		/* the mesh CA must have issued it to that very node */
		if (km_pki_verify(st->x509, cert, KM_ROLE_NODE, &id) == 0
		    && strcmp(id.name, name) == 0) {
			pk = X509_get_pubkey(cert);
		}
		X509_free(cert);
		return pk;
	}
	return NULL;
}

static int
kmd_rs_put_sealed(km_buf *out, EVP_PKEY *to_key, const char *key_id,
    uint32_t epoch, uint32_t from, uint32_t to, const uint8_t *body,
    size_t len)
{
	char aad[160];
	km_buf sealed;
	int r;

	km_buf_init(&sealed);
	kmd_rs_aad(aad, sizeof(aad), key_id, epoch, from, to);
	r = km_seal(to_key, aad, strlen(aad), body, len, &sealed);
	r = r ? r : km_buf_put_u32(out, from);
	r = r ? r : km_buf_put_u32(out, to);
	r = r ? r : km_buf_put_string(out, sealed.data, sealed.len);
	km_buf_free(&sealed);
	return r;
}

/* Round 2: deal each of our quorum indices to every new index. */
static int
kmd_rs_deal(kmd_state *st, const km_req_hdr *h, km_buf *in, km_buf *out,
    char *msg, size_t msglen)
{
	kmd_rs_params p;
	km_catalog_key k;
	const char *nodes[KMD_RS_MAX];
	const uint8_t *certs[KMD_RS_MAX];
	size_t lens[KMD_RS_MAX], np = 0, nmsg = 0;
	EVP_PKEY *keys[KMD_RS_MAX];
	char names[KMD_RS_MAX][KM_NAME_MAX + 1];
	unsigned uq[KMD_RS_MAX];
	uint32_t count, i, j, mine = 0;
	km_rsa_pub *rpub = NULL;
	km_ec_group *g = NULL;
	km_ec_pub *epub = NULL;
	int r;

	memset(keys, 0, sizeof(keys));
	memset(&k, 0, sizeof(k));
	if (kmd_rs_get_params(in, &p) != 0 || km_buf_get_u32(in, &count) != 0
	    || count == 0 || count > KMD_RS_MAX) {
		return kmd_fail(
		    msg, msglen, KM_ERR_BAD_FORMAT, "malformed reshare deal");
	}
	for (i = 0; i < count; i++) {
		const uint8_t *s;
		size_t n;
		if (km_buf_get_string_ptr(in, &s, &n, KM_NAME_MAX) != 0
		    || km_buf_get_string_ptr(
		           in, &certs[i], &lens[i], KMD_RS_CERT_MAX)
		        != 0) {
			return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
			    "malformed reshare deal");
		}
		memcpy(names[i], s, n);
		names[i][n] = '\0';
		nodes[i] = names[i];
	}
	np = count;
	if (km_buf_remaining(in) != 0) {
		return kmd_fail(
		    msg, msglen, KM_ERR_BAD_FORMAT, "malformed reshare deal");
	}
	if ((r = kmd_rs_check(st, h, &p, true, &k, msg, msglen)) != 0) {
		return r;
	}
	/* the recipients' keys, checked against the mesh CA ourselves */
	for (j = 0; j < p.new_n; j++) {
		keys[j] = kmd_rs_cert_key(
		    st, p.holders[j].node, nodes, certs, lens, np);
		if (keys[j] == NULL) {
			r = kmd_fail(msg, msglen, KM_ERR_AUTH,
			    "no valid certificate for new holder %s",
			    p.holders[j].node);
			goto out;
		}
	}
	if (k.key_type == KM_KEY_RSA) {
		r = km_rsa_pub_decode(k.public_data, k.public_len, &rpub);
	} else {
		r = km_ec_group_new(k.key_type == KM_KEY_EC_P256
		        ? NID_X9_62_prime256v1
		        : NID_secp384r1,
		    &g);
		r = r
		    ? r
		    : km_ec_pub_decode(g, k.public_data, k.public_len, &epub);
	}
	if (r != 0) {
		r = kmd_fail(
		    msg, msglen, r, "bad public data of key %s", h->key_id);
		goto out;
	}
	for (i = 0; i < p.q; i++) {
		uq[i] = p.quorum[i];
	}
	/* count first, then the messages: the reply starts with it */
	for (i = 0; i < p.q; i++) {
		if (strcmp(kmd_rs_old_owner(&k, p.quorum[i]), st->cfg.name)
		    == 0) {
			mine++;
		}
	}
	if (mine == 0) {
		r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
		    "%s holds no index of the dealing quorum of %s",
		    st->cfg.name, h->key_id);
		goto out;
	}
	nmsg = (size_t)mine * (p.new_n + (rpub == NULL ? 1 : 0));
	if ((r = km_buf_put_u32(out, (uint32_t)nmsg)) != 0) {
		goto out;
	}
	for (i = 0; i < p.q; i++) {
		uint32_t idx = p.quorum[i];
		km_buf sb;

		if (strcmp(kmd_rs_old_owner(&k, idx), st->cfg.name) != 0) {
			continue;
		}
		km_buf_init_secure(&sb);
		if ((r = kmd_share_load(st, h->key_id, h->epoch, idx, &sb))
		    != 0) {
			km_buf_free(&sb);
			r = kmd_fail(msg, msglen, r,
			    "cannot load share %u of %s epoch %u: %s", idx,
			    h->key_id, h->epoch, km_strerror(r));
			goto out;
		}
		if (rpub != NULL) {
			km_rsa_share *share = NULL;
			km_rsa_subdeal *sd = NULL;

			r = km_rsa_share_decode(rpub, sb.data, sb.len, &share);
			r = r ? r
			      : km_rsa_reshare_deal(
			          rpub, share, uq, p.q, p.new_k, p.new_n, &sd);
			km_rsa_share_free(share);
			for (j = 1; r == 0 && j <= p.new_n; j++) {
				km_buf enc;
				km_buf_init_secure(&enc);
				r = km_rsa_subdeal_encode(sd, j, &enc);
				r = r ? r
				      : kmd_rs_put_sealed(out, keys[j - 1],
				          h->key_id, p.new_epoch, idx, j,
				          enc.data, enc.len);
				km_buf_free(&enc);
			}
			km_rsa_subdeal_free(sd);
		} else {
			km_ec_reshare_params rp;
			km_ec_share *share = NULL;
			km_ec_msgs m;
			size_t x;

			memset(&m, 0, sizeof(m));
			rp.old_pub = epub;
			rp.quorum = p.quorum;
			rp.nq = p.q;
			rp.new_k = p.new_k;
			rp.new_n = p.new_n;
			r = km_ec_share_decode(
			    g, sb.data, sb.len, epub->n, &share);
			r = r ? r : km_ec_reshare_deal(g, &rp, share, &m);
			km_ec_share_free(share);
			if (r == 0 && m.n != p.new_n + 1) {
				r = KM_ERR_INTERNAL;
			}
			for (x = 0; r == 0 && x < m.n; x++) {
				const km_ec_msg *e = &m.v[x];
				if (e->to == 0) {
					r = km_buf_put_u32(out, e->from);
					r = r ? r : km_buf_put_u32(out, 0);
					r = r ? r
					      : km_buf_put_string(out,
					          e->body.data, e->body.len);
				} else if (e->to > p.new_n) {
					r = KM_ERR_INTERNAL;
				} else {
					r = kmd_rs_put_sealed(out,
					    keys[e->to - 1], h->key_id,
					    p.new_epoch, e->from, e->to,
					    e->body.data, e->body.len);
				}
			}
			km_ec_msgs_free(&m);
		}
		km_buf_free(&sb);
		if (r != 0) {
			r = kmd_fail(msg, msglen, r,
			    "dealing share %u of %s failed: %s", idx,
			    h->key_id, km_strerror(r));
			goto out;
		}
	}
	km_log_info("KMD-RESHARE-DEALT",
	    "dealt %u share(s) of %s to %u new "
	    "index(es) for epoch %u",
	    mine, h->key_id, p.new_n, p.new_epoch);
	r = 0;
out:
	for (j = 0; j < KMD_RS_MAX; j++) {
		EVP_PKEY_free(keys[j]);
	}
	km_rsa_pub_free(rpub);
	km_ec_pub_free(epub);
	km_ec_group_free(g);
	km_catalog_key_free(&k);
	return r;
}

/* Round 3: unseal our sub-shares, compute and check our new shares,
 * store them prepared under the new epoch, answer the public data. */
static int
kmd_rs_receive(kmd_state *st, const km_req_hdr *h, km_buf *in, km_buf *out,
    char *msg, size_t msglen)
{
	kmd_rs_params p;
	km_catalog_key k;
	kmd_rs_msg *raw = NULL;
	km_buf *plain = NULL;
	size_t nraw = 0, i, stored = 0;
	km_rsa_pub *rpub = NULL;
	km_ec_group *g = NULL;
	km_ec_pub *epub = NULL;
	km_catalog_vote ack;
	const uint8_t *der;
	size_t derlen;
	km_buf pub0;
	uint32_t j;
	char aad[160];
	int r;

	memset(&k, 0, sizeof(k));
	km_buf_init(&pub0);
	if (kmd_rs_get_params(in, &p) != 0
	    || kmd_rs_get_msgs(in, &raw, &nraw) != 0
	    || km_buf_remaining(in) != 0) {
		r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed reshare receive");
		goto out;
	}
	if ((r = kmd_rs_check(st, h, &p, true, &k, msg, msglen)) != 0) {
		goto out;
	}
	if (nraw > 0 && (plain = calloc(nraw, sizeof(*plain))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < nraw; i++) {
		km_buf_init_secure(&plain[i]);
	}
	/* every message must come from a dealer and be for us */
	for (i = 0; i < nraw; i++) {
		const kmd_rs_msg *m = &raw[i];
		if (!kmd_rs_in_quorum(&p, m->from) || m->to > p.new_n
		    || (m->to != 0
		        && strcmp(p.holders[m->to - 1].node, st->cfg.name)
		            != 0)) {
			r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
			    "reshare message %u->%u is not for %s", m->from,
			    m->to, st->cfg.name);
			goto out;
		}
		if (m->to == 0) {
			r = km_buf_put_raw(&plain[i], m->body, m->len);
		} else {
			kmd_rs_aad(aad, sizeof(aad), h->key_id, p.new_epoch,
			    m->from, m->to);
			r = km_unseal(st->idkey, aad, strlen(aad), m->body,
			    m->len, &plain[i]);
		}
		if (r != 0) {
			r = kmd_fail(msg, msglen, r,
			    "cannot open the sub-share from old index %u: %s",
			    m->from, km_strerror(r));
			goto out;
		}
	}
	if (k.key_type == KM_KEY_RSA) {
		r = km_rsa_pub_decode(k.public_data, k.public_len, &rpub);
	} else {
		r = km_ec_group_new(k.key_type == KM_KEY_EC_P256
		        ? NID_X9_62_prime256v1
		        : NID_secp384r1,
		    &g);
		r = r
		    ? r
		    : km_ec_pub_decode(g, k.public_data, k.public_len, &epub);
	}
	if (r != 0) {
		r = kmd_fail(
		    msg, msglen, r, "bad public data of key %s", h->key_id);
		goto out;
	}
	for (j = 1; j <= p.new_n; j++) {
		km_buf enc, pubenc;

		if (strcmp(p.holders[j - 1].node, st->cfg.name) != 0) {
			continue;
		}
		km_buf_init_secure(&enc);
		km_buf_init(&pubenc);
		if (rpub != NULL) {
			km_rsa_subdeal *deals[KMD_RS_MAX];
			km_rsa_pub *npub = NULL;
			km_rsa_share *share = NULL;
			uint32_t qi, bad = 0;
			size_t x;

			memset(deals, 0, sizeof(deals));
			r = 0;
			/* one dealing per dealer, in quorum order */
			for (qi = 0; r == 0 && qi < p.q; qi++) {
				for (x = 0; x < nraw; x++) {
					if (raw[x].from == p.quorum[qi]
					    && raw[x].to == j) {
						break;
					}
				}
				if (x == nraw) {
					r = KM_ERR_BAD_PARTIAL;
				} else {
					r = km_rsa_subdeal_decode(rpub,
					    plain[x].data, plain[x].len,
					    &deals[qi]);
				}
				if (r != 0
				    || km_rsa_subdeal_index(deals[qi])
				        != p.quorum[qi]) {
					bad = p.quorum[qi];
					r = r ? r : KM_ERR_BAD_PARTIAL;
				}
			}
			r = r ? r
			      : km_rsa_reshare_pub(
			          rpub, deals, p.q, p.new_k, p.new_n, &npub);
			r = r ? r
			      : km_rsa_reshare_accept(
			          npub, deals, p.q, j, &share);
			r = r ? r : km_rsa_share_encode(npub, share, &enc);
			r = r ? r : km_rsa_pub_encode(npub, &pubenc);
			if (r != 0 && bad != 0) {
				km_log_warn("KMD-RESHARE-BAD-DEALER",
				    "dealing from old index %u of %s is bad",
				    bad, h->key_id);
			}
			km_rsa_share_free(share);
			km_rsa_pub_free(npub);
			for (qi = 0; qi < p.q; qi++) {
				km_rsa_subdeal_free(deals[qi]);
			}
		} else {
			km_ec_reshare_params rp;
			km_ec_msg *sel = NULL;
			km_ec_share *share = NULL;
			km_ec_pub *npub = NULL;
			uint32_t bad = 0;
			size_t x, ns = 0;

			rp.old_pub = epub;
			rp.quorum = p.quorum;
			rp.nq = p.q;
			rp.new_k = p.new_k;
			rp.new_n = p.new_n;
			r = (sel = calloc(nraw ? nraw : 1, sizeof(*sel)))
			    ? 0
			    : KM_ERR_ALLOC;
			for (x = 0; r == 0 && x < nraw; x++) {
				if (raw[x].to == 0 || raw[x].to == j) {
					/* a borrowed view of the body */
					sel[ns].from = raw[x].from;
					sel[ns].to = raw[x].to;
					sel[ns].body = plain[x];
					sel[ns].body.off = 0;
					ns++;
				}
			}
			r = r ? r
			      : km_ec_reshare_receive(
			          g, &rp, j, sel, ns, &share, &npub, &bad);
			if (r != 0 && bad != 0) {
				km_log_warn("KMD-RESHARE-BAD-DEALER",
				    "dealing from old index %u of %s is bad",
				    bad, h->key_id);
			}
			r = r ? r : km_ec_share_encode(g, share, &enc);
			r = r ? r : km_ec_pub_encode(g, npub, &pubenc);
			free(sel);
			km_ec_share_free(share);
			km_ec_pub_free(npub);
		}
		if (r == 0 && stored > 0
		    && (pubenc.len != pub0.len
		        || memcmp(pubenc.data, pub0.data, pub0.len) != 0)) {
			r = KM_ERR_VERIFY;
		}
		if (r == 0 && stored == 0) {
			r = km_buf_put_raw(&pub0, pubenc.data, pubenc.len);
		}
		if (r == 0) {
			r = kmd_share_store(
			    st, h->key_id, p.new_epoch, j, enc.data, enc.len);
		}
		km_buf_free(&enc);
		km_buf_free(&pubenc);
		if (r != 0) {
			r = kmd_fail(msg, msglen, r,
			    "new share %u of %s not accepted on %s: %s", j,
			    h->key_id, st->cfg.name, km_strerror(r));
			goto out;
		}
		stored++;
	}
	if (stored == 0) {
		r = kmd_fail(msg, msglen, KM_ERR_INVALID_ARG,
		    "%s is not a new holder of %s", st->cfg.name, h->key_id);
		goto out;
	}
	/* our ack: only ever for the public data we computed above */
	memset(&ack, 0, sizeof(ack));
	if ((r = kmd_evict_own_cert(st, &der, &derlen)) != 0
	    || (r = km_reshare_ack_sign(st->idkey, der, derlen, h->key_id,
	            p.new_epoch, pub0.data, pub0.len, &ack))
	        != 0) {
		r = kmd_fail(msg, msglen, r, "cannot sign the re-share ack");
		goto out;
	}
	r = km_buf_put_string(out, pub0.data, pub0.len);
	r = r ? r : km_buf_put_string(out, ack.cert, ack.cert_len);
	r = r ? r : km_buf_put_string(out, ack.stmt, ack.stmt_len);
	r = r ? r : km_buf_put_string(out, ack.sig, ack.sig_len);
	km_evict_vote_clear(&ack);
	km_log_info("KMD-RESHARE-PREPARED",
	    "prepared %zu new share(s) of %s "
	    "epoch %u",
	    stored, h->key_id, p.new_epoch);
out:
	if (r != 0 && stored > 0) {
		(void)km_store_share_abort(st->store, h->key_id, p.new_epoch);
	}
	if (plain != NULL) {
		for (i = 0; i < nraw; i++) {
			km_buf_free(&plain[i]);
		}
		free(plain);
	}
	free(raw);
	km_rsa_pub_free(rpub);
	km_ec_pub_free(epub);
	km_ec_group_free(g);
	km_catalog_key_free(&k);
	km_buf_free(&pub0);
	return r;
}

static int
kmd_rs_abort(
    kmd_state *st, const km_req_hdr *h, km_buf *in, char *msg, size_t msglen)
{
	km_catalog_key k;
	uint32_t epoch;
	int r;

	if (km_buf_get_u32(in, &epoch) != 0 || km_buf_remaining(in) != 0
	    || epoch == 0) {
		return kmd_fail(
		    msg, msglen, KM_ERR_BAD_FORMAT, "malformed reshare abort");
	}
	/* only ever a pending epoch: committed shares are not dropped */
	memset(&k, 0, sizeof(k));
	if (km_catalog_key_get(st->store, h->key_id, &k) == 0
	    && epoch <= k.epoch) {
		km_catalog_key_free(&k);
		return kmd_fail(msg, msglen, KM_ERR_STATE,
		    "epoch %u of %s is not pending", epoch, h->key_id);
	}
	km_catalog_key_free(&k);
	r = km_store_share_abort(st->store, h->key_id, epoch);
	if (r != 0 && r != KM_ERR_NOT_FOUND) {
		return kmd_fail(msg, msglen, r, "cannot drop epoch %u of %s",
		    epoch, h->key_id);
	}
	km_log_info("KMD-RESHARE-ABORT",
	    "dropped prepared shares of %s "
	    "epoch %u",
	    h->key_id, epoch);
	return 0;
}

/* Round 8, from an admin: remember what it decided. */
static int
kmd_rs_authorise(
    kmd_state *st, const km_req_hdr *h, km_buf *in, char *msg, size_t msglen)
{
	kmd_rs_params p;
	km_catalog_key k;
	int r;

	memset(&p, 0, sizeof(p));
	if (kmd_rs_get_holders(in, &p) != 0 || km_buf_remaining(in) != 0) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed reshare authorisation");
	}
	if ((r = kmd_rs_check(st, h, &p, false, &k, msg, msglen)) != 0) {
		return r;
	}
	km_catalog_key_free(&k);
	if ((r = kmd_rs_auth_add(h, &p)) != 0) {
		return kmd_fail(msg, msglen, r,
		    "cannot record the "
		    "authorisation");
	}
	km_log_info("KMD-RESHARE-AUTH",
	    "re-share of %s to epoch %u, %u of "
	    "%u, authorised by an admin",
	    h->key_id, p.new_epoch, p.new_k, p.new_n);
	return 0;
}

/* The ack after the public data in a receive reply: "string cert, string
 * statement, string signature", nothing after it.  Copied into @out when
 * not NULL (the apply path checks it: store/evict.h). */
static int
kmd_rs_get_ack(km_buf *v, km_catalog_vote *out)
{
	const uint8_t *c, *m, *g;
	size_t clen, mlen, glen;

	if (km_buf_get_string_ptr(v, &c, &clen, KM_CATALOG_CERT_MAX) != 0
	    || km_buf_get_string_ptr(v, &m, &mlen, KM_CATALOG_VOTE_STMT_MAX)
	        != 0
	    || km_buf_get_string_ptr(v, &g, &glen, KM_CATALOG_SIG_MAX) != 0
	    || km_buf_remaining(v) != 0 || clen == 0 || mlen == 0
	    || glen == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (out == NULL) {
		return 0;
	}
	km_evict_vote_clear(out);
	if ((out->cert = malloc(clen)) == NULL
	    || (out->stmt = malloc(mlen)) == NULL
	    || (out->sig = malloc(glen)) == NULL) {
		km_evict_vote_clear(out);
		return KM_ERR_ALLOC;
	}
	memcpy(out->cert, c, clen);
	memcpy(out->stmt, m, mlen);
	memcpy(out->sig, g, glen);
	out->cert_len = clen;
	out->stmt_len = mlen;
	out->sig_len = glen;
	return 0;
}

static int kmd_rs_coordinate(kmd_state *st, const km_req_hdr *h, km_buf *in,
    km_catalog_vote *acks, km_buf *out, char *msg, size_t msglen);

/* One step on this party; @peer's role decides what it may ask. */
static int
kmd_rs_step(kmd_state *st, const km_identity *peer, const km_req_hdr *h,
    uint32_t round, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	if (round == KMD_RS_START || round == KMD_RS_AUTHORISE) {
		if (peer->role != KM_ROLE_ADMIN) {
			return kmd_fail(msg, msglen, KM_ERR_AUTH,
			    "only an admin may decide a re-share");
		}
		return round == KMD_RS_START
		    ? kmd_rs_coordinate(st, h, in, NULL, out, msg, msglen)
		    : kmd_rs_authorise(st, h, in, msg, msglen);
	}
	/* the rounds come from the coordinator, a node of the mesh */
	if (peer->role != KM_ROLE_NODE) {
		return kmd_fail(msg, msglen, KM_ERR_AUTH,
		    "re-share round %u comes only from a node", round);
	}
	switch (round) {
	case KMD_RS_HELLO:
		return kmd_rs_hello(st, h, in, out, msg, msglen);
	case KMD_RS_DEAL:
		return kmd_rs_deal(st, h, in, out, msg, msglen);
	case KMD_RS_RECEIVE:
		return kmd_rs_receive(st, h, in, out, msg, msglen);
	case KMD_RS_ABORT:
		return kmd_rs_abort(st, h, in, msg, msglen);
	default:
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "unknown re-share round %u", round);
	}
}

int
kmd_do_reshare_step(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	uint32_t round;
	int r;

	if (km_buf_get_u32(in, &round) != 0 || h->epoch == 0) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed reshare-step request");
	}
	r = kmd_rs_step(st, peer, h, round, in, out, msg, msglen);
	if (r != 0 && msg[0] == '\0') {
		snprintf(msg, msglen, "re-share round %u of %s: %s", round,
		    h->key_id, km_strerror(r));
	}
	return r;
}

/* ---- the coordinator ------------------------------------------------ */

static struct km_net_client *
kmd_rs_peer(kmd_state *st, const char *name)
{
	unsigned i;

	for (i = 0; i < st->cfg.npeers; i++) {
		if (strcmp(st->cfg.peers[i].name, name) == 0) {
			return st->peer_clients[i];
		}
	}
	return NULL;
}

/* Sends one round to one party (directly when it is us). */
static int
kmd_rs_call(kmd_state *st, const char *party, const km_req_hdr *h,
    const km_buf *payload, km_buf *reply, char *why, size_t whylen)
{
	struct km_net_client *c;
	km_identity me;
	km_buf req, view;
	uint32_t round;
	char m[KM_PROTO_MESSAGE_MAX + 1] = "";
	int r;

	km_buf_reset(reply);
	if (strcmp(party, st->cfg.name) == 0) {
		memset(&me, 0, sizeof(me));
		snprintf(me.name, sizeof(me.name), "%s", st->cfg.name);
		me.role = KM_ROLE_NODE;
		km_buf_init_view(&view, payload->data, payload->len);
		if (km_buf_get_u32(&view, &round) != 0) {
			return KM_ERR_INTERNAL;
		}
		r = kmd_rs_step(st, &me, h, round, &view, reply, m, sizeof(m));
		if (r != 0) {
			snprintf(why, whylen, "%s", m[0] ? m : km_strerror(r));
		}
		reply->off = 0;
		return r;
	}
	if ((c = kmd_rs_peer(st, party)) == NULL) {
		snprintf(why, whylen, "%s is not a peer of %s", party,
		    st->cfg.name);
		return KM_ERR_NOT_FOUND;
	}
	if (!km_net_client_connected(c)
	    && km_net_client_wait_connected(c, 2000) != 0) {
		/* fail fast: a party that is down cannot take part */
		snprintf(why, whylen, "%s is not reachable", party);
		return KM_ERR_QUORUM;
	}
	km_buf_init(&req);
	r = km_rpc_request(
	    &req, KM_MSG_RESHARE_STEP, h->key_id, h->epoch, NULL);
	r = r ? r : km_buf_put_raw(&req, payload->data, payload->len);
	if (r == 0) {
		r = km_rpc_call(
		    c, &req, KMD_RS_TIMEOUT_MS, reply, m, sizeof(m));
		if (r != 0) {
			snprintf(why, whylen, "%s: %s", party, m);
		}
	}
	km_buf_free(&req);
	return r;
}

static bool
kmd_rs_alive(kmd_state *st, const char *node)
{
	struct km_net_client *c;

	if (strcmp(node, st->cfg.name) == 0) {
		return true;
	}
	c = kmd_rs_peer(st, node);
	return c != NULL && km_net_client_connected(c);
}

static void
kmd_rs_status(kmd_state *st, const char *key_id, const char *what)
{
	pthread_mutex_lock(&st->lock);
	snprintf(st->keygen_status, sizeof(st->keygen_status),
	    "reshare %s: %s", key_id, what);
	pthread_mutex_unlock(&st->lock);
}

static size_t
kmd_rs_add_name(const char **names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(names[i], name) == 0) {
			return n;
		}
	}
	names[n] = name;
	return n + 1;
}

static int
kmd_rs_coordinate(kmd_state *st, const km_req_hdr *h, km_buf *in,
    km_catalog_vote *acks, km_buf *out, char *msg, size_t msglen)
{
	kmd_rs_params p;
	km_catalog_key k;
	const char *parties[2 * KMD_RS_MAX], *dealers[KMD_RS_MAX],
	    *holders[KMD_RS_MAX];
	km_buf hello[2 * KMD_RS_MAX], rep[KMD_RS_MAX], payload;
	kmd_rs_msg *box = NULL;
	size_t nbox = 0, cap = 0, np = 0, nd = 0, nh = 0, i, x;
	const uint8_t *pub0 = NULL;
	size_t pub0len = 0;
	char why[KM_PROTO_MESSAGE_MAX + 1] = "";
	int r;

	memset(&p, 0, sizeof(p));
	memset(&k, 0, sizeof(k));
	km_buf_init(&payload);
	for (i = 0; i < 2 * KMD_RS_MAX; i++) {
		km_buf_init(&hello[i]);
	}
	for (i = 0; i < KMD_RS_MAX; i++) {
		km_buf_init(&rep[i]);
	}
	if (kmd_rs_get_holders(in, &p) != 0 || km_buf_remaining(in) != 0) {
		r = kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed reshare request");
		goto done;
	}
	if ((r = kmd_rs_check(st, h, &p, false, &k, msg, msglen)) != 0) {
		goto done;
	}
	/* the dealing quorum: k old indices on nodes we can reach now, a
	 * node with several indices dealing for each (weighted shares) */
	for (i = 0; i < k.nholders && p.q < k.threshold; i++) {
		if (kmd_rs_alive(st, k.holders[i].node)
		    && !kmd_rs_evicted(st, k.holders[i].node)) {
			p.quorum[p.q++] = k.holders[i].index;
		}
	}
	if (p.q < k.threshold) {
		r = kmd_fail(msg, msglen, KM_ERR_QUORUM,
		    "only %u of the %u old shares of %s needed are on "
		    "reachable nodes",
		    p.q, k.threshold, h->key_id);
		goto done;
	}
	for (i = 0; i < p.q; i++) {
		nd = kmd_rs_add_name(
		    dealers, nd, kmd_rs_old_owner(&k, p.quorum[i]));
	}
	for (i = 0; i < p.new_n; i++) {
		nh = kmd_rs_add_name(holders, nh, p.holders[i].node);
	}
	for (i = 0; i < nd; i++) {
		np = kmd_rs_add_name(parties, np, dealers[i]);
	}
	for (i = 0; i < nh; i++) {
		np = kmd_rs_add_name(parties, np, holders[i]);
	}
	km_log_info("KMD-RESHARE-START",
	    "re-share of %s epoch %u -> %u: %u "
	    "of %u, %zu dealer node(s), %zu new "
	    "holder node(s)",
	    h->key_id, h->epoch, p.new_epoch, p.new_k, p.new_n, nd, nh);

	/* round 1: every party checks on its own, and sends its cert */
	kmd_rs_status(st, h->key_id, "hello");
	r = km_buf_put_u32(&payload, KMD_RS_HELLO);
	r = r ? r : kmd_rs_put_params(&payload, &p);
	for (i = 0; r == 0 && i < np; i++) {
		r = kmd_rs_call(
		    st, parties[i], h, &payload, &hello[i], why, sizeof(why));
	}
	if (r != 0) {
		goto fail;
	}
	/* round 2: the dealers deal, sealed to the new holders */
	kmd_rs_status(st, h->key_id, "dealing");
	km_buf_reset(&payload);
	r = km_buf_put_u32(&payload, KMD_RS_DEAL);
	r = r ? r : kmd_rs_put_params(&payload, &p);
	r = r ? r : km_buf_put_u32(&payload, (uint32_t)nh);
	for (i = 0; r == 0 && i < nh; i++) {
		const uint8_t *c;
		size_t clen;
		km_buf v;

		for (x = 0; strcmp(parties[x], holders[i]) != 0; x++) {
		}
		km_buf_init_view(&v, hello[x].data + hello[x].off,
		    hello[x].len - hello[x].off);
		r = km_buf_get_string_ptr(&v, &c, &clen, KMD_RS_CERT_MAX);
		r = r ? r : km_buf_put_cstring(&payload, holders[i]);
		r = r ? r : km_buf_put_string(&payload, c, clen);
	}
	for (i = 0; r == 0 && i < nd; i++) {
		kmd_rs_msg *m = NULL, *nb;
		size_t n = 0, y;
		km_buf v;

		r = kmd_rs_call(
		    st, dealers[i], h, &payload, &rep[i], why, sizeof(why));
		if (r != 0) {
			break;
		}
		km_buf_init_view(
		    &v, rep[i].data + rep[i].off, rep[i].len - rep[i].off);
		if ((r = kmd_rs_get_msgs(&v, &m, &n)) != 0
		    || km_buf_remaining(&v) != 0) {
			free(m);
			r = KM_ERR_BAD_FORMAT;
			snprintf(why, sizeof(why), "%s: malformed dealing",
			    dealers[i]);
			break;
		}
		for (y = 0; y < n; y++) {
			const char *o = kmd_rs_old_owner(&k, m[y].from);
			/* a dealer speaks only for its own quorum indices */
			if (!kmd_rs_in_quorum(&p, m[y].from) || o == NULL
			    || strcmp(o, dealers[i]) != 0
			    || m[y].to > p.new_n) {
				r = KM_ERR_BAD_FORMAT;
				snprintf(why, sizeof(why),
				    "%s: dealt for index %u", dealers[i],
				    m[y].from);
				break;
			}
		}
		if (r == 0 && nbox + n > cap) {
			cap = (nbox + n) * 2;
			if ((nb = realloc(box, cap * sizeof(*box))) == NULL) {
				r = KM_ERR_ALLOC;
			} else {
				box = nb;
			}
		}
		if (r == 0 && n > 0) {
			memcpy(box + nbox, m, n * sizeof(*m));
			nbox += n;
		}
		free(m);
	}
	if (r != 0) {
		goto fail;
	}
	/* round 3: each new holder gets the broadcasts and its sub-shares */
	kmd_rs_status(st, h->key_id, "new holders verify and store");
	for (i = 0; i < nh; i++) {
		km_buf reply, v;
		const uint8_t *pd;
		size_t cnt = 0, pdlen;

		km_buf_reset(&payload);
		for (x = 0; x < nbox; x++) {
			cnt += box[x].to == 0
			    || strcmp(
			           p.holders[box[x].to - 1].node, holders[i])
			        == 0;
		}
		r = km_buf_put_u32(&payload, KMD_RS_RECEIVE);
		r = r ? r : kmd_rs_put_params(&payload, &p);
		r = r ? r : km_buf_put_u32(&payload, (uint32_t)cnt);
		for (x = 0; r == 0 && x < nbox; x++) {
			if (box[x].to != 0
			    && strcmp(
			           p.holders[box[x].to - 1].node, holders[i])
			        != 0) {
				continue;
			}
			r = km_buf_put_u32(&payload, box[x].from);
			r = r ? r : km_buf_put_u32(&payload, box[x].to);
			r = r ? r
			      : km_buf_put_string(
			          &payload, box[x].body, box[x].len);
		}
		km_buf_init(&reply);
		r = r ? r
		      : kmd_rs_call(st, holders[i], h, &payload, &reply, why,
		          sizeof(why));
		if (r == 0) {
			km_buf_init_view(
			    &v, reply.data + reply.off, reply.len - reply.off);
			if (km_buf_get_string_ptr(
			        &v, &pd, &pdlen, KM_CATALOG_PUBLIC_MAX)
			        != 0
			    || kmd_rs_get_ack(
			           &v, acks != NULL ? &acks[i] : NULL)
			        != 0) {
				r = KM_ERR_BAD_FORMAT;
				snprintf(why, sizeof(why),
				    "%s: malformed reply", holders[i]);
			} else if (i == 0) {
				r = km_buf_put_string(out, pd, pdlen);
			} else if (pdlen != pub0len
			    || memcmp(pd, pub0, pdlen) != 0) {
				r = KM_ERR_VERIFY;
				snprintf(why, sizeof(why),
				    "%s and %s reached different public data",
				    holders[0], holders[i]);
			}
		}
		km_buf_free(&reply);
		if (r != 0) {
			goto fail;
		}
		if (i == 0) {
			/* our own copy in @out: "string pub" */
			pub0 = out->data + out->len - pdlen;
			pub0len = pdlen;
		}
	}
	km_log_info("KMD-RESHARE-DONE",
	    "re-share of %s to epoch %u prepared "
	    "on %zu node(s)",
	    h->key_id, p.new_epoch, nh);
	r = 0;
	goto done;

fail:
	km_log_warn_r(
	    r, "KMD-RESHARE-FAIL", "re-share of %s: %s", h->key_id, why);
	km_buf_reset(out);
	km_buf_reset(&payload);
	if (km_buf_put_u32(&payload, KMD_RS_ABORT) == 0
	    && km_buf_put_u32(&payload, p.new_epoch) == 0) {
		for (i = 0; i < np; i++) {
			char w2[KM_PROTO_MESSAGE_MAX + 1];
			km_buf tmp;
			km_buf_init(&tmp);
			(void)kmd_rs_call(
			    st, parties[i], h, &payload, &tmp, w2, sizeof(w2));
			km_buf_free(&tmp);
		}
	}
	snprintf(msg, msglen, "key %s not re-shared (epoch %u stays): %s",
	    h->key_id, h->epoch, why[0] ? why : km_strerror(r));
done:
	pthread_mutex_lock(&st->lock);
	snprintf(st->keygen_status, sizeof(st->keygen_status), "idle");
	pthread_mutex_unlock(&st->lock);
	free(box);
	km_buf_free(&payload);
	for (i = 0; i < 2 * KMD_RS_MAX; i++) {
		km_buf_free(&hello[i]);
	}
	for (i = 0; i < KMD_RS_MAX; i++) {
		km_buf_free(&rep[i]);
	}
	km_catalog_key_free(&k);
	return r;
}

/*
 * The re-share an eviction calls for, or a proactive refresh, coordinated
 * by this node (the Raft leader, daemon/evict.c) without an admin: every
 * party checks on its own that it is exactly km_evict_plan()'s, or the
 * current holders and threshold with refresh on (kmd_rs_evict_authorised).
 * @pub receives "string new public data" for RESHARE_BEGIN, @acks (an
 * array of KM_CATALOG_MAX_HOLDERS, zeroed by the caller, which frees it
 * with km_catalog_votes_free whatever the outcome) every new holder
 * node's signed ack of it, in the order of their first index.
 */
int
kmd_reshare_evicted(kmd_state *st, const km_catalog_key *k,
    const km_catalog_holder *plan, size_t n, km_buf *pub,
    km_catalog_vote *acks, char *msg, size_t msglen)
{
	kmd_rs_params p;
	km_req_hdr h;
	km_buf in;
	int r;

	if (n == 0 || n > KMD_RS_MAX) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&p, 0, sizeof(p));
	memset(&h, 0, sizeof(h));
	snprintf(h.key_id, sizeof(h.key_id), "%s", k->key_id);
	h.epoch = k->epoch;
	p.new_epoch = k->epoch + 1;
	p.new_k = k->threshold;
	p.new_n = (uint32_t)n;
	memcpy(p.holders, plan, n * sizeof(*plan));
	km_buf_init(&in);
	if ((r = kmd_rs_put_holders(&in, &p)) == 0) {
		in.off = 0;
		r = kmd_rs_coordinate(st, &h, &in, acks, pub, msg, msglen);
	}
	km_buf_free(&in);
	return r;
}
