/*
 * Eviction: vote statements, the vote quorum, the re-share plan and the
 * apply-time authority of node-signed entries (store/evict.h,
 * docs/eviction.md).
 *
 * WARNING: km_evict_authorise() is what stops a compromised coordinator
 * (the Raft leader, which orders every entry) from changing membership or
 * shares on its own: a node's signature alone is worth nothing here, only
 * k members' votes, or an eviction already in the catalog, are.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "store/evict.h"
#include "trust/policy.h"
#include "util/err.h"
#include "util/log.h"

#define km_evict_fail(why, whylen, r, ...)                                    \
	(snprintf((why), (whylen), __VA_ARGS__), (r))

int
km_evict_stmt_encode(const km_evict_stmt *v, km_buf *out)
{
	if (v == NULL || out == NULL || !km_name_valid(v->accused)) {
		return KM_ERR_INVALID_ARG;
	}
	(void)km_buf_put_cstring(out, KM_EVICT_VOTE_CTX);
	(void)km_buf_put_cstring(out, v->accused);
	(void)km_buf_put_string(out, v->cert_sha256, 32);
	(void)km_buf_put_string(out, v->evidence_sha256, 32);
	(void)km_buf_put_u64(out, v->time_ms);
	return km_buf_failed(out) ? KM_ERR_ALLOC : 0;
}

int
km_evict_stmt_decode(const uint8_t *p, size_t len, km_evict_stmt *v)
{
	const uint8_t *ctx, *name, *h1, *h2;
	size_t clen, nlen, l1, l2;
	km_evict_stmt n;
	km_buf b;

	if (p == NULL || v == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_CATALOG_VOTE_STMT_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	memset(&n, 0, sizeof(n));
	km_buf_init_view(&b, p, len);
	(void)km_buf_get_string_ptr(&b, &ctx, &clen, 64);
	(void)km_buf_get_string_ptr(&b, &name, &nlen, KM_NAME_MAX);
	(void)km_buf_get_string_ptr(&b, &h1, &l1, 32);
	(void)km_buf_get_string_ptr(&b, &h2, &l2, 32);
	(void)km_buf_get_u64(&b, &n.time_ms);
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0
	    || clen != strlen(KM_EVICT_VOTE_CTX)
	    || memcmp(ctx, KM_EVICT_VOTE_CTX, clen) != 0 || l1 != 32
	    || l2 != 32) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(n.accused, name, nlen);
	n.accused[nlen] = '\0';
	if (strlen(n.accused) != nlen || !km_name_valid(n.accused)) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(n.cert_sha256, h1, 32);
	memcpy(n.evidence_sha256, h2, 32);
	*v = n;
	return 0;
}

void
km_evict_vote_clear(km_catalog_vote *v)
{
	if (v == NULL) {
		return;
	}
	free(v->cert);
	free(v->stmt);
	free(v->sig);
	memset(v, 0, sizeof(*v));
}

int
km_evict_vote_sign(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len,
    const km_evict_stmt *v, km_catalog_vote *out)
{
	km_catalog_vote n;
	km_buf b;
	int r;

	if (key == NULL || cert_der == NULL || cert_len == 0
	    || cert_len > KM_CATALOG_CERT_MAX || v == NULL || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&n, 0, sizeof(n));
	km_buf_init(&b);
	if ((r = km_evict_stmt_encode(v, &b)) != 0) {
		goto out;
	}
	if ((r = km_pki_sign(key, b.data, b.len, &n.sig, &n.sig_len)) != 0) {
		goto out;
	}
	if ((n.cert = malloc(cert_len)) == NULL
	    || (r = km_buf_steal(&b, &n.stmt, &n.stmt_len)) != 0) {
		r = r != 0 ? r : KM_ERR_ALLOC;
		goto out;
	}
	memcpy(n.cert, cert_der, cert_len);
	n.cert_len = cert_len;
	*out = n;
	memset(&n, 0, sizeof(n));
	r = 0;
out:
	km_evict_vote_clear(&n);
	km_buf_free(&b);
	return r;
}

int
km_evict_quorum(km_store *s, uint32_t *k, uint32_t *members)
{
	km_catalog_node_name *names = NULL;
	uint32_t maxt = 0, q;
	size_t n = 0;
	int r;

	if (s == NULL || k == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_catalog_mesh_nodes(s, &names, &n, &maxt)) != 0) {
		return r;
	}
	free(names);
	/* t+1 members' votes (DESIGN.md §3): no fewer than any key needs to
	 * sign, so that as many members as could use a key must agree to
	 * take one of its holders away; and a majority of the members, so
	 * that a minority cannot evict the rest one by one.  Never one. */
	q = (uint32_t)(n / 2 + 1);
	if (maxt > q) {
		q = maxt;
	}
	if (q < 2) {
		q = 2;
	}
	*k = q;
	if (members != NULL) {
		*members = (uint32_t)n;
	}
	return 0;
}

static bool
km_evict_is_evicted(const char *node, const km_catalog_evicted *ev, size_t nev)
{
	size_t i;

	for (i = 0; i < nev; i++) {
		if (strcmp(ev[i].node, node) == 0) {
			return true;
		}
	}
	return false;
}

int
km_evict_plan(const km_catalog_key *k, const km_catalog_evicted *evicted,
    size_t nev, km_catalog_holder out[KM_CATALOG_MAX_HOLDERS], size_t *nout)
{
	size_t i, n = 0;
	bool dropped = false;

	if (k == NULL || out == NULL || nout == NULL
	    || (evicted == NULL && nev > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	/* the catalog lists holders by index already (HOLDER_LIST) */
	for (i = 0; i < k->nholders && i < KM_CATALOG_MAX_HOLDERS; i++) {
		if (km_evict_is_evicted(k->holders[i].node, evicted, nev)) {
			dropped = true;
			continue;
		}
		out[n].index = (uint32_t)(n + 1);
		snprintf(out[n].node, sizeof(out[n].node), "%s",
		    k->holders[i].node);
		n++;
	}
	*nout = n;
	if (!dropped) {
		return KM_ERR_NOT_FOUND;
	}
	return n < k->threshold || n == 0 ? KM_ERR_QUORUM : 0;
}

static bool
km_evict_holders_equal(const km_catalog_holder *a, size_t na,
    const km_catalog_holder *b, size_t nb)
{
	size_t i;

	if (na != nb) {
		return false;
	}
	for (i = 0; i < na; i++) {
		if (a[i].index != b[i].index
		    || strcmp(a[i].node, b[i].node) != 0) {
			return false;
		}
	}
	return true;
}

static bool
km_evict_is_member(
    const char *node, const km_catalog_node_name *names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(names[i].name, node) == 0) {
			return true;
		}
	}
	return false;
}

/* The votes of an EVICT entry: see km_evict_authorise. */
static int
km_evict_check_votes(km_store *s, X509_STORE *x509,
    const km_catalog_payload *p, const km_identity *signer, char *why,
    size_t whylen)
{
	km_catalog_node_name *names = NULL;
	char(*voters)[KM_NAME_MAX + 1] = NULL;
	uint8_t evidence[32];
	uint32_t k = 0, maxt = 0;
	size_t n = 0, i, j;
	km_evict_stmt vs;
	km_identity id;
	int r;

	if ((r = km_evict_quorum(s, &k, NULL)) != 0
	    || (r = km_catalog_mesh_nodes(s, &names, &n, &maxt)) != 0) {
		return km_evict_fail(
		    why, whylen, r, "cannot read the catalog");
	}
	if (strcmp(signer->name, p->node) == 0
	    || !km_evict_is_member(signer->name, names, n)) {
		r = km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "%s is not a member that may propose evicting %s",
		    signer->name, p->node);
		goto out;
	}
	if (p->nvotes < k) {
		r = km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "eviction of %s carries %zu vote(s); %u are needed",
		    p->node, p->nvotes, k);
		goto out;
	}
	if ((voters = calloc(p->nvotes, sizeof(*voters))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < p->nvotes; i++) {
		const km_catalog_vote *v = &p->votes[i];

		if ((r = km_evict_stmt_decode(v->stmt, v->stmt_len, &vs))
		    != 0) {
			r = km_evict_fail(why, whylen, KM_ERR_BAD_FORMAT,
			    "vote %zu: malformed statement", i + 1);
			goto out;
		}
		/* chain and role only: the voter's standing is the
		 * catalog's (a current member, not evicted, below), as of
		 * this entry, so that replaying the log later (a node
		 * catching up after a CRL change or a certificate's end)
		 * decides alike on every replica */
		if ((r = km_pki_verify_signed_replay(x509, v->cert,
		         v->cert_len, KM_ROLE_NODE, v->stmt, v->stmt_len,
		         v->sig, v->sig_len, &id))
		    != 0) {
			r = km_evict_fail(why, whylen, r,
			    "vote %zu: not signed by a valid node "
			    "certificate (%s)",
			    i + 1, km_strerror(r));
			goto out;
		}
		if (strcmp(id.name, p->node) == 0) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "vote %zu: the accused %s cannot vote", i + 1,
			    id.name);
			goto out;
		}
		if (!km_evict_is_member(id.name, names, n)) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "vote %zu: %s is not a current member", i + 1,
			    id.name);
			goto out;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(voters[j], id.name) == 0) {
				r = km_evict_fail(why, whylen, KM_ERR_AUTH,
				    "vote %zu: %s voted twice", i + 1,
				    id.name);
				goto out;
			}
		}
		snprintf(voters[i], sizeof(voters[i]), "%s", id.name);
		if (strcmp(vs.accused, p->node) != 0
		    || CRYPTO_memcmp(vs.cert_sha256, p->cert_sha256, 32) != 0
		    || (i > 0
		        && CRYPTO_memcmp(vs.evidence_sha256, evidence, 32)
		            != 0)) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "vote %zu (%s) is for another node, certificate "
			    "or evidence",
			    i + 1, id.name);
			goto out;
		}
		memcpy(evidence, vs.evidence_sha256, 32);
	}
	r = 0;
out:
	free(names);
	free(voters);
	return r;
}

int
km_evict_refresh_interval(km_store *s, uint32_t *secs)
{
	uint8_t *data = NULL;
	size_t len = 0;
	km_posture pol;
	int r;

	if (s == NULL || secs == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	*secs = 0;
	r = km_catalog_posture_get(s, &data, &len);
	if (r == KM_ERR_NOT_FOUND) {
		return 0; /* no policy: no refresh */
	}
	if (r != 0) {
		return r;
	}
	/* the catalog stores only what decoded at apply; a failure here
	 * is refused, never read as "on" */
	if ((r = km_posture_decode(data, len, &pol)) == 0) {
		*secs = pol.refresh_s;
	}
	free(data);
	return r;
}

int
km_evict_reshare_allowed(km_store *s, const km_catalog_key *k,
    uint32_t threshold, const km_catalog_holder *holders, size_t n,
    bool need_policy, bool *refresh, char *why, size_t whylen)
{
	km_catalog_holder plan[KM_CATALOG_MAX_HOLDERS];
	km_catalog_evicted *ev = NULL;
	uint32_t secs = 0;
	size_t nev = 0, np = 0;
	int r;

	if (s == NULL || k == NULL || (holders == NULL && n > 0)
	    || why == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	why[0] = '\0';
	if ((r = km_catalog_evicted_list(s, &ev, &nev)) != 0) {
		return km_evict_fail(
		    why, whylen, r, "cannot read the catalog");
	}
	r = km_evict_plan(k, ev, nev, plan, &np);
	free(ev);
	if (r == 0) {
		/* an eviction calls for a re-share: that plan and no other
		 * (a refresh must never hand an evicted node a new share) */
		if (threshold != k->threshold
		    || !km_evict_holders_equal(holders, n, plan, np)) {
			return km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "key %s: a node may re-share it only as its "
			    "eviction calls for",
			    k->key_id);
		}
		if (refresh != NULL) {
			*refresh = false;
		}
		return 0;
	}
	if (r == KM_ERR_QUORUM) {
		return km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "key %s holds an evicted node's index and too few "
		    "holders would remain without it",
		    k->key_id);
	}
	if (r != KM_ERR_NOT_FOUND) {
		return km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "key %s: cannot plan its re-share", k->key_id);
	}
	/* a proactive refresh: share rotation among the very same holders */
	if (threshold != k->threshold
	    || !km_evict_holders_equal(holders, n, k->holders, k->nholders)) {
		return km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "key %s: a node may re-share it only to its current "
		    "holders and threshold (a proactive refresh)",
		    k->key_id);
	}
	if (need_policy) {
		if ((r = km_evict_refresh_interval(s, &secs)) != 0) {
			return km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "cannot read the posture policy (%s)",
			    km_strerror(r));
		}
		if (secs == 0) {
			return km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "key %s: proactive refresh is off in the posture "
			    "policy and no eviction calls for a re-share",
			    k->key_id);
		}
	}
	if (refresh != NULL) {
		*refresh = true;
	}
	return 0;
}

/* ---- re-share acks (docs/resharing.md, "Authority") ------------------ */

int
km_reshare_ack_encode(const km_reshare_ack *a, km_buf *out)
{
	if (a == NULL || out == NULL || !km_name_valid(a->key_id)
	    || a->epoch == 0) {
		return KM_ERR_INVALID_ARG;
	}
	(void)km_buf_put_cstring(out, KM_RESHARE_ACK_CTX);
	(void)km_buf_put_cstring(out, a->key_id);
	(void)km_buf_put_u32(out, a->epoch);
	(void)km_buf_put_string(out, a->public_sha256, 32);
	return km_buf_failed(out) ? KM_ERR_ALLOC : 0;
}

int
km_reshare_ack_decode(const uint8_t *p, size_t len, km_reshare_ack *a)
{
	const uint8_t *ctx, *name, *h;
	size_t clen, nlen, hlen;
	km_reshare_ack n;
	km_buf b;

	if (p == NULL || a == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_CATALOG_VOTE_STMT_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	memset(&n, 0, sizeof(n));
	km_buf_init_view(&b, p, len);
	(void)km_buf_get_string_ptr(&b, &ctx, &clen, 64);
	(void)km_buf_get_string_ptr(&b, &name, &nlen, KM_NAME_MAX);
	(void)km_buf_get_u32(&b, &n.epoch);
	(void)km_buf_get_string_ptr(&b, &h, &hlen, 32);
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0
	    || clen != strlen(KM_RESHARE_ACK_CTX)
	    || memcmp(ctx, KM_RESHARE_ACK_CTX, clen) != 0 || hlen != 32
	    || n.epoch == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(n.key_id, name, nlen);
	n.key_id[nlen] = '\0';
	if (strlen(n.key_id) != nlen || !km_name_valid(n.key_id)) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(n.public_sha256, h, 32);
	*a = n;
	return 0;
}

static int
km_reshare_pub_hash(const uint8_t *pub, size_t len, uint8_t out[32])
{
	/* EVP_Digest of zero bytes needs a non-NULL pointer */
	if (EVP_Digest(len > 0 ? pub : (const uint8_t *)"", len, out, NULL,
	        EVP_sha256(), NULL)
	    != 1) {
		return KM_ERR_CRYPTO;
	}
	return 0;
}

int
km_reshare_ack_sign(EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len,
    const char *key_id, uint32_t epoch, const uint8_t *pub, size_t publen,
    km_catalog_vote *out)
{
	km_reshare_ack a;
	km_catalog_vote n;
	km_buf b;
	int r;

	if (key == NULL || cert_der == NULL || cert_len == 0
	    || cert_len > KM_CATALOG_CERT_MAX || key_id == NULL
	    || (pub == NULL && publen > 0) || out == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&a, 0, sizeof(a));
	memset(&n, 0, sizeof(n));
	km_buf_init(&b);
	snprintf(a.key_id, sizeof(a.key_id), "%s", key_id);
	a.epoch = epoch;
	if ((r = km_reshare_pub_hash(pub, publen, a.public_sha256)) != 0
	    || (r = km_reshare_ack_encode(&a, &b)) != 0
	    || (r = km_pki_sign(key, b.data, b.len, &n.sig, &n.sig_len))
	        != 0) {
		goto out;
	}
	if ((n.cert = malloc(cert_len)) == NULL
	    || (r = km_buf_steal(&b, &n.stmt, &n.stmt_len)) != 0) {
		r = r != 0 ? r : KM_ERR_ALLOC;
		goto out;
	}
	memcpy(n.cert, cert_der, cert_len);
	n.cert_len = cert_len;
	*out = n;
	memset(&n, 0, sizeof(n));
	r = 0;
out:
	km_evict_vote_clear(&n);
	km_buf_free(&b);
	return r;
}

int
km_reshare_acks_verify(X509_STORE *x509, bool replay,
    const km_catalog_payload *p, km_identity *signers, size_t *nsigners,
    char *why, size_t whylen)
{
	km_identity ids[KM_CATALOG_VOTES_MAX];
	uint8_t want[32];
	km_reshare_ack a;
	size_t i, j, nnodes = 0;
	bool found;
	int r;

	if (x509 == NULL || p == NULL || why == NULL
	    || p->type != KM_CAT_RESHARE_BEGIN
	    || p->nvotes > KM_CATALOG_VOTES_MAX) {
		return KM_ERR_INVALID_ARG;
	}
	why[0] = '\0';
	if (p->nvotes == 0) {
		return km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "re-share of %s carries no new holder's ack", p->key_id);
	}
	if ((r = km_reshare_pub_hash(p->public_data, p->public_len, want))
	    != 0) {
		return r;
	}
	for (i = 0; i < p->nvotes; i++) {
		const km_catalog_vote *v = &p->votes[i];

		if (km_reshare_ack_decode(v->stmt, v->stmt_len, &a) != 0) {
			return km_evict_fail(why, whylen, KM_ERR_BAD_FORMAT,
			    "ack %zu: malformed statement", i + 1);
		}
		r = replay ? km_pki_verify_signed_replay(x509, v->cert,
		        v->cert_len, KM_ROLE_NODE, v->stmt, v->stmt_len,
		        v->sig, v->sig_len, &ids[i])
		           : km_pki_verify_signed(x509, v->cert, v->cert_len,
		               KM_ROLE_NODE, v->stmt, v->stmt_len, v->sig,
		               v->sig_len, &ids[i]);
		if (r != 0) {
			return km_evict_fail(why, whylen, r,
			    "ack %zu: not signed by a valid node certificate "
			    "(%s)",
			    i + 1, km_strerror(r));
		}
		if (strcmp(a.key_id, p->key_id) != 0 || a.epoch != p->epoch
		    || CRYPTO_memcmp(a.public_sha256, want, 32) != 0) {
			return km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "ack %zu (%s) is for another key, epoch or public "
			    "data",
			    i + 1, ids[i].name);
		}
		for (j = 0; j < i; j++) {
			if (strcmp(ids[j].name, ids[i].name) == 0) {
				return km_evict_fail(why, whylen, KM_ERR_AUTH,
				    "ack %zu: %s acked twice", i + 1,
				    ids[i].name);
			}
		}
		found = false;
		for (j = 0; j < p->nholders && !found; j++) {
			found = strcmp(p->holders[j].node, ids[i].name) == 0;
		}
		if (!found) {
			return km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "ack %zu: %s is not a new holder of %s", i + 1,
			    ids[i].name, p->key_id);
		}
	}
	/* every distinct new holder node acked (the acks are distinct and
	 * all of new holders, so equal counts mean the same sets) */
	for (i = 0; i < p->nholders; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(p->holders[j].node, p->holders[i].node)
			    == 0) {
				break;
			}
		}
		nnodes += j == i;
	}
	if (nnodes != p->nvotes) {
		return km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "re-share of %s: %zu of its %zu new holder nodes acked",
		    p->key_id, p->nvotes, nnodes);
	}
	if (signers != NULL) {
		memcpy(signers, ids, p->nvotes * sizeof(ids[0]));
	}
	if (nsigners != NULL) {
		*nsigners = p->nvotes;
	}
	return 0;
}

int
km_reshare_pub_same(uint32_t key_type, const uint8_t *cur, size_t curlen,
    const uint8_t *next, size_t nextlen, uint32_t threshold, size_t n,
    char *why, size_t whylen)
{
	km_rsa_pub *ra = NULL, *rb = NULL;
	km_ec_group *g = NULL;
	km_ec_pub *ea = NULL, *eb = NULL;
	int r;

	if (cur == NULL || next == NULL || why == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	why[0] = '\0';
	if (key_type == KM_KEY_RSA) {
		if ((r = km_rsa_pub_decode(cur, curlen, &ra)) != 0
		    || (r = km_rsa_pub_decode(next, nextlen, &rb)) != 0) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "the new public data does not decode (%s)",
			    km_strerror(r));
			goto out;
		}
		/* N and e: the public key a client verifies with */
		if (EVP_PKEY_eq(km_rsa_pub_pkey(ra), km_rsa_pub_pkey(rb)) != 1
		    || km_rsa_pub_k(rb) != threshold
		    || km_rsa_pub_n(rb) != n) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "the new public data holds another public key, "
			    "threshold or holder count");
			goto out;
		}
	} else if (key_type == KM_KEY_EC_P256 || key_type == KM_KEY_EC_P384) {
		if ((r = km_ec_group_new(key_type == KM_KEY_EC_P256
		             ? NID_X9_62_prime256v1
		             : NID_secp384r1,
		         &g))
		    != 0) {
			goto out;
		}
		if ((r = km_ec_pub_decode(g, cur, curlen, &ea)) != 0
		    || (r = km_ec_pub_decode(g, next, nextlen, &eb)) != 0) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "the new public data does not decode (%s)",
			    km_strerror(r));
			goto out;
		}
		if (EC_POINT_cmp(g->group, ea->y, eb->y, NULL) != 0
		    || eb->k != threshold || eb->n != n) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "the new public data holds another public key, "
			    "threshold or holder count");
			goto out;
		}
	} else {
		r = km_evict_fail(why, whylen, KM_ERR_NOT_SUPPORTED,
		    "key type %u is not re-shared", key_type);
		goto out;
	}
	r = 0;
out:
	km_rsa_pub_free(ra);
	km_rsa_pub_free(rb);
	km_ec_pub_free(ea);
	km_ec_pub_free(eb);
	km_ec_group_free(g);
	return r;
}

/* The acks of a node-signed RESHARE_BEGIN, against the catalog: every
 * signer is a current member and not evicted (km_reshare_acks_verify
 * checked the rest). */
static int
km_evict_check_acks(km_store *s, X509_STORE *x509, const km_catalog_payload *p,
    char *why, size_t whylen)
{
	km_identity ids[KM_CATALOG_VOTES_MAX];
	km_catalog_node_name *names = NULL;
	uint32_t maxt = 0;
	size_t nids = 0, n = 0, i;
	int r;

	if ((r = km_reshare_acks_verify(
	         x509, true, p, ids, &nids, why, whylen))
	    != 0) {
		return r;
	}
	if ((r = km_catalog_mesh_nodes(s, &names, &n, &maxt)) != 0) {
		return km_evict_fail(
		    why, whylen, r, "cannot read the catalog");
	}
	for (i = 0; i < nids; i++) {
		if (km_catalog_evicted_get(s, ids[i].name, NULL) == 0) {
			r = km_evict_fail(why, whylen, KM_ERR_REVOKED,
			    "ack %zu: %s is evicted", i + 1, ids[i].name);
			break;
		}
		if (!km_evict_is_member(ids[i].name, names, n)) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "ack %zu: %s is not a current member", i + 1,
			    ids[i].name);
			break;
		}
	}
	free(names);
	return r;
}

/* RESHARE_BEGIN / COMMIT / ABORT by a node: only an eviction's re-share
 * or a proactive refresh (km_evict_reshare_allowed).  An ABORT of a
 * pending epoch with the current holders and threshold needs neither the
 * policy nor the absence of an eviction: it can only keep the current
 * epoch. */
static int
km_evict_check_reshare(km_store *s, X509_STORE *x509,
    const km_catalog_payload *p, char *why, size_t whylen)
{
	km_catalog_key k;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = km_catalog_key_get(s, p->key_id, &k)) != 0) {
		return km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "no key %s to re-share", p->key_id);
	}
	if (p->type == KM_CAT_RESHARE_BEGIN) {
		if (k.state != KM_KEY_ACTIVE || p->epoch != k.epoch + 1) {
			r = km_evict_fail(why, whylen, KM_ERR_AUTH,
			    "key %s: a node may begin only epoch %u of an "
			    "active key",
			    p->key_id, k.epoch + 1);
			goto out;
		}
		r = km_evict_reshare_allowed(s, &k, p->threshold, p->holders,
		    p->nholders, true, NULL, why, whylen);
		/* WARNING: holders and threshold are not enough: the public
		 * data decides which partials verify.  It must hold the
		 * key's public key, and every new holder must have acked
		 * it as what it computed itself. */
		if (r == 0) {
			r = km_reshare_pub_same(k.key_type, k.public_data,
			    k.public_len, p->public_data, p->public_len,
			    p->threshold, p->nholders, why, whylen);
		}
		if (r == 0) {
			r = km_evict_check_acks(s, x509, p, why, whylen);
		}
	} else if (k.state != KM_KEY_RESHARING || p->epoch != k.next_epoch) {
		r = km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "key %s: epoch %u is not pending", p->key_id, p->epoch);
	} else if (p->type == KM_CAT_RESHARE_ABORT
	    && k.next_threshold == k.threshold
	    && km_evict_holders_equal(
	        k.next_holders, k.next_nholders, k.holders, k.nholders)) {
		/* a pending refresh may always be aborted: that only keeps
		 * the current epoch (and one begun before an eviction of
		 * one of its holders can be neither committed nor followed
		 * by the eviction's re-share otherwise) */
		r = 0;
	} else if (p->type == KM_CAT_RESHARE_COMMIT && !k.next_acked) {
		/* begun by an admin without acks: the admin commits it */
		r = km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "key %s: epoch %u was not begun with the new holders' "
		    "acks; a node may not commit it",
		    p->key_id, p->epoch);
	} else {
		r = km_evict_reshare_allowed(s, &k, k.next_threshold,
		    k.next_holders, k.next_nholders,
		    p->type == KM_CAT_RESHARE_COMMIT, NULL, why, whylen);
	}
out:
	km_catalog_key_free(&k);
	return r;
}

int
km_evict_authorise(km_store *s, X509_STORE *x509, const km_catalog_entry *e,
    km_identity *signer, char *why, size_t whylen)
{
	km_catalog_payload p;
	km_identity id;
	km_buf tbs;
	int r;

	if (s == NULL || x509 == NULL || e == NULL || why == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	why[0] = '\0';
	memset(&p, 0, sizeof(p));
	km_buf_init(&tbs);
	if (e->type != KM_CAT_EVICT && e->type != KM_CAT_RESHARE_BEGIN
	    && e->type != KM_CAT_RESHARE_COMMIT
	    && e->type != KM_CAT_RESHARE_ABORT) {
		r = km_evict_fail(why, whylen, KM_ERR_AUTH,
		    "a node may not sign a catalog entry of type %u", e->type);
		goto out;
	}
	if ((r = km_catalog_entry_tbs(e, &tbs)) != 0) {
		goto out;
	}
	/* chain and role only, the standing from the catalog (evicted
	 * below; a member for EVICT): deterministic on replay, as votes */
	if ((r = km_pki_verify_signed_replay(x509, e->signer, e->signer_len,
	         KM_ROLE_NODE, tbs.data, tbs.len, e->sig, e->sig_len, &id))
	    != 0) {
		r = km_evict_fail(why, whylen, r,
		    "entry not signed by a valid node certificate (%s)",
		    km_strerror(r));
		goto out;
	}
	if ((r = km_catalog_evicted_get(s, id.name, NULL)) == 0) {
		r = km_evict_fail(
		    why, whylen, KM_ERR_REVOKED, "%s is evicted", id.name);
		goto out;
	}
	if ((r = km_catalog_payload_decode(
	         e->type, e->payload, e->payload_len, &p))
	    != 0) {
		r = km_evict_fail(why, whylen, r, "malformed payload");
		goto out;
	}
	r = e->type == KM_CAT_EVICT
	    ? km_evict_check_votes(s, x509, &p, &id, why, whylen)
	    : km_evict_check_reshare(s, x509, &p, why, whylen);
	if (r == 0 && signer != NULL) {
		*signer = id;
	}
out:
	km_catalog_payload_free(&p);
	km_buf_free(&tbs);
	return r;
}

int
km_evict_verdict_signer(
    km_store *s, const char *node, char *why, size_t whylen)
{
	km_catalog_node_name *names = NULL;
	uint32_t maxt = 0;
	size_t n = 0;
	int r;

	if (s == NULL || node == NULL || why == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	why[0] = '\0';
	if ((r = km_catalog_evicted_get(s, node, NULL)) == 0) {
		return km_evict_fail(why, whylen, KM_ERR_REVOKED,
		    "verdict signed by %s, which is evicted", node);
	}
	if (r != KM_ERR_NOT_FOUND) {
		return km_evict_fail(
		    why, whylen, r, "cannot read the catalog");
	}
	if ((r = km_catalog_mesh_nodes(s, &names, &n, &maxt)) != 0) {
		return km_evict_fail(
		    why, whylen, r, "cannot read the catalog");
	}
	r = n == 0 || km_evict_is_member(node, names, n)
	    ? 0
	    : km_evict_fail(why, whylen, KM_ERR_AUTH,
	        "verdict signed by %s, which is not a member node", node);
	free(names);
	return r;
}
