#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mesh/rpc.h"
#include "mesh/view.h"
#include "pki/pki.h"
#include "trust/policy.h"
#include "store/evict.h"
#include "util/err.h"

#define KM_VIEW_FETCH 64

#define KM_VIEW_SIGNERS 8

typedef struct km_view_signer {
	uint8_t *der;
	size_t len;
	bool replay; /* checked without CRL and dates (object entries) */
	km_identity id;
	EVP_PKEY *pub;
} km_view_signer;

struct km_view {
	uint32_t refresh_s; /* the posture policy's refresh interval */
	km_mesh *mesh;
	X509_STORE *store;
	uint64_t seq;
	km_view_key *keys; /* live and destroyed; destroyed have state 4 */
	size_t nkeys, cap;
	km_view_object *objs; /* live and deleted (tombstones) */
	size_t nobjs, objs_cap;
	size_t next_node; /* where the next refresh starts */
	/*
	 * Signers already checked (chain, role, CRL per the entry type):
	 * a catalog is signed by a handful of identities, so each
	 * certificate is parsed and checked once per view, not once per
	 * entry (a replay of 1,000 keys spent two thirds of its time
	 * there).  The X509 store never changes during a view's life, so
	 * a cached verdict stays true.
	 */
	km_view_signer signers[KM_VIEW_SIGNERS];
	size_t nsigners;
	/* the coordinator's verdicts (TRUST_VERDICT), the last per node:
	 * a quarantined node is not asked (docs/trust.md) */
	km_view_verdict verdicts[KM_MESH_MAX_NODES];
	size_t nverdicts;
	/* evicted nodes (EVICT entries), by name, in log order */
	char (*evicted)[KM_NAME_MAX + 1];
	size_t nevicted;
};

static int
km_view_read(const char *path, char **out)
{
	uint8_t *d = NULL;
	size_t len;
	int r;

	*out = NULL;
	if (path == NULL || path[0] == '\0') {
		return 0;
	}
	if ((r = km_read_file(path, &d, &len, 1u << 20)) != 0) {
		return r;
	}
	*out = (char *)d;
	return 0;
}

int
km_view_new(km_mesh *m, km_view **out)
{
	const km_mesh_conf *c = km_mesh_conf_of(m);
	char *ca = NULL, *crl = NULL;
	km_view *v;
	int r;

	if ((v = calloc(1, sizeof(*v))) == NULL) {
		return KM_ERR_ALLOC;
	}
	v->mesh = m;
	if ((r = km_view_read(c->ca, &ca)) != 0 ||
	    (r = km_view_read(c->crl, &crl)) != 0 ||
	    (r = km_pki_store_load(ca, crl, &v->store)) != 0) {
		free(ca);
		free(crl);
		free(v);
		return r;
	}
	free(ca);
	free(crl);
	*out = v;
	return 0;
}

static void
km_view_key_clear(km_view_key *k)
{
	free(k->public_data);
	free(k->policy);
	free(k->next_public_data);
	free(k->app_id);
	memset(k, 0, sizeof(*k));
}

static void
km_view_object_clear(km_view_object *o)
{
	free(o->app_id);
	free(o->label);
	free(o->value);
	free(o->attrs);
	o->app_id = o->label = o->value = o->attrs = NULL;
	o->app_id_len = o->label_len = o->value_len = o->attrs_len = 0;
}

void
km_view_free(km_view *v)
{
	size_t i;

	if (v == NULL) {
		return;
	}
	for (i = 0; i < v->nkeys; i++) {
		km_view_key_clear(&v->keys[i]);
	}
	free(v->keys);
	for (i = 0; i < v->nobjs; i++) {
		km_view_object_clear(&v->objs[i]);
	}
	free(v->objs);
	for (i = 0; i < v->nsigners; i++) {
		free(v->signers[i].der);
		EVP_PKEY_free(v->signers[i].pub);
	}
	X509_STORE_free(v->store);
	free(v->evicted);
	free(v);
}

static km_view_key *
km_view_lookup(km_view *v, const char *key_id)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++) {
		if (strcmp(v->keys[i].key_id, key_id) == 0) {
			return &v->keys[i];
		}
	}
	return NULL;
}

static int
km_view_dup(const uint8_t *p, size_t n, uint8_t **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	if (n == 0) {
		return 0;
	}
	if ((*out = malloc(n)) == NULL) {
		return KM_ERR_ALLOC;
	}
	memcpy(*out, p, n);
	*outlen = n;
	return 0;
}

/* OBJECT_PUT / OBJECT_DELETE, under the same rules as store/catalog.c:
 * a put creates or replaces a live object of the same class and
 * partition; a deleted id is never reused. */
static int
km_view_apply_object(km_view *v, const km_catalog_payload *p, uint64_t seq)
{
	km_view_object *o = NULL, *no, n;
	size_t i;
	int r;

	for (i = 0; i < v->nobjs; i++) {
		if (strcmp(v->objs[i].object_id, p->object_id) == 0) {
			o = &v->objs[i];
			break;
		}
	}
	if (p->type == KM_CAT_OBJECT_DELETE) {
		if (o != NULL && !o->deleted) {
			km_view_object_clear(o);
			o->deleted = true;
			o->updated_seq = seq;
		}
		return 0;
	}
	if (o != NULL &&
	    (o->deleted || o->obj_class != p->obj_class ||
		strcmp(o->partition, p->partition) != 0)) {
		return 0;
	}
	memset(&n, 0, sizeof(n));
	snprintf(n.object_id, sizeof(n.object_id), "%s", p->object_id);
	snprintf(n.partition, sizeof(n.partition), "%s", p->partition);
	n.obj_class = p->obj_class;
	n.flags = p->obj_flags;
	n.updated_seq = seq;
	if ((r = km_view_dup(p->app_id, p->app_id_len, &n.app_id,
		 &n.app_id_len)) != 0 ||
	    (r = km_view_dup(p->obj_label, p->obj_label_len, &n.label,
		 &n.label_len)) != 0 ||
	    (r = km_view_dup(p->value, p->value_len, &n.value,
		 &n.value_len)) != 0 ||
	    (r = km_view_dup(p->attrs, p->attrs_len, &n.attrs,
		 &n.attrs_len)) != 0) {
		km_view_object_clear(&n);
		return r;
	}
	if (o == NULL) {
		if (v->nobjs == v->objs_cap) {
			size_t ncap = v->objs_cap ? v->objs_cap * 2 : 16;

			if ((no = realloc(v->objs, ncap * sizeof(*no))) ==
			    NULL) {
				km_view_object_clear(&n);
				return KM_ERR_ALLOC;
			}
			v->objs = no;
			v->objs_cap = ncap;
		}
		o = &v->objs[v->nobjs++];
	} else {
		km_view_object_clear(o);
	}
	*o = n;
	return 0;
}

/* Keeps the last verdict per node; a full table drops the new node's
 * (it is then asked like any other: verdicts are advisory). */
static void
km_view_apply_verdict(km_view *v, const km_catalog_payload *p)
{
	km_trust_verdict tv;
	km_view_verdict *d = NULL;
	size_t i;

	if (km_trust_verdict_decode(p->trust, p->trust_len, &tv) != 0) {
		return;
	}
	for (i = 0; i < v->nverdicts; i++) {
		if (strcmp(v->verdicts[i].node, tv.node) == 0) {
			d = &v->verdicts[i];
		}
	}
	if (d == NULL) {
		if (v->nverdicts == KM_MESH_MAX_NODES) {
			return;
		}
		d = &v->verdicts[v->nverdicts++];
	}
	memcpy(d->node, tv.node, sizeof(d->node));
	d->quarantined = tv.state == KM_TRUST_QUARANTINED;
	d->score = tv.score;
	memcpy(d->reason, tv.reason, sizeof(d->reason));
}

const km_view_verdict *
km_view_verdict_find(const km_view *v, const char *node)
{
	size_t i;

	for (i = 0; v != NULL && i < v->nverdicts; i++) {
		if (strcmp(v->verdicts[i].node, node) == 0) {
			return &v->verdicts[i];
		}
	}
	return NULL;
}

/* What store/catalog.c km_cat_evict asks of an EVICT's votes, whoever
 * signed it, before it takes effect: every statement names this node and
 * certificate and one piece of evidence, never all zero (an admin's
 * mark).  An admin's EVICT without votes passes. */
static bool
km_view_evict_evidence(const km_catalog_payload *p)
{
	static const uint8_t zero[32];
	uint8_t evidence[32];
	km_evict_stmt vs;
	size_t i;

	for (i = 0; i < p->nvotes; i++) {
		if (km_evict_stmt_decode(
		        p->votes[i].stmt, p->votes[i].stmt_len, &vs)
		        != 0
		    || strcmp(vs.accused, p->node) != 0
		    || memcmp(vs.cert_sha256, p->cert_sha256, 32) != 0
		    || (i > 0 && memcmp(vs.evidence_sha256, evidence, 32) != 0)
		    || memcmp(vs.evidence_sha256, zero, 32) == 0) {
			return false;
		}
		memcpy(evidence, vs.evidence_sha256, 32);
	}
	return true;
}

/*
 * The same transitions as the daemons' state machine (store/catalog.c),
 * restricted to what a client needs.  An entry that does not apply is
 * skipped, as the daemons consume it with no effect.
 */
static int
km_view_apply(km_view *v, const km_catalog_entry *e)
{
	km_catalog_payload p;
	km_view_key *k, *nk;
	size_t i;
	int r;

	memset(&p, 0, sizeof(p));
	if (km_catalog_payload_decode(e->type, e->payload, e->payload_len,
		&p) != 0) {
		return 0;
	}
	k = (p.key_id[0] != '\0') ? km_view_lookup(v, p.key_id) : NULL;
	r = 0;
	switch (e->type) {
	case KM_CAT_OBJECT_PUT:
	case KM_CAT_OBJECT_DELETE:
		r = km_view_apply_object(v, &p, e->seq);
		break;
	case KM_CAT_TRUST_VERDICT:
		km_view_apply_verdict(v, &p);
		break;
	case KM_CAT_POSTURE_SET: {
		km_posture pol;

		/* only the refresh interval matters here (a proactive
		 * refresh's node-signed entries, km_view_node_entry) */
		if (km_posture_decode(p.trust, p.trust_len, &pol) == 0) {
			v->refresh_s = pol.refresh_s;
		}
		break;
	}
	case KM_CAT_KEY_ATTRS:
		if (k != NULL && k->state != KM_KEY_DESTROYED) {
			free(k->app_id);
			k->app_id = NULL;
			k->app_id_len = 0;
			if ((r = km_view_dup(p.app_id, p.app_id_len,
				 &k->app_id, &k->app_id_len)) != 0) {
				k->has_app_id = false;
				break;
			}
			/* empty: CKA_ID is the key id again */
			k->has_app_id = k->app_id_len > 0;
			k->updated_seq = e->seq;
		}
		break;
	case KM_CAT_KEY_CREATE:
		if (k != NULL || p.nholders > KM_CATALOG_MAX_HOLDERS) {
			break;
		}
		for (i = 0; i < v->nkeys; i++) {
			if (v->keys[i].state != KM_KEY_DESTROYED &&
			    strcmp(v->keys[i].label, p.label) == 0) {
				break;
			}
		}
		if (i < v->nkeys) {
			break; /* label in use: the daemons refuse it too */
		}
		if (v->nkeys == v->cap) {
			size_t ncap = v->cap ? v->cap * 2 : 16;
			if ((nk = realloc(v->keys, ncap * sizeof(*nk))) ==
			    NULL) {
				r = KM_ERR_ALLOC;
				break;
			}
			v->keys = nk;
			v->cap = ncap;
		}
		k = &v->keys[v->nkeys];
		memset(k, 0, sizeof(*k));
		snprintf(k->key_id, sizeof(k->key_id), "%s", p.key_id);
		snprintf(k->label, sizeof(k->label), "%s", p.label);
		k->key_type = p.key_type;
		k->bits = p.bits;
		k->threshold = p.threshold;
		k->epoch = p.epoch;
		k->state = KM_KEY_PENDING;
		k->nholders = p.nholders;
		memcpy(k->holders, p.holders, p.nholders * sizeof(*p.holders));
		if ((r = km_view_dup(p.public_data, p.public_len,
			 &k->public_data, &k->public_len)) != 0 ||
		    (r = km_view_dup(p.policy, p.policy_len, &k->policy,
			 &k->policy_len)) != 0) {
			km_view_key_clear(k);
			break;
		}
		k->updated_seq = e->seq;
		v->nkeys++;
		break;
	case KM_CAT_KEY_ACTIVATE:
		if (k != NULL && k->state == KM_KEY_PENDING &&
		    k->epoch == p.epoch) {
			k->state = KM_KEY_ACTIVE;
			k->updated_seq = e->seq;
		}
		break;
	case KM_CAT_KEY_DESTROY:
		if (k != NULL) {
			k->state = KM_KEY_DESTROYED;
			k->updated_seq = e->seq;
		}
		break;
	case KM_CAT_RESHARE_BEGIN:
		/* the same conditions as the daemons' state machine */
		if (k != NULL && k->state == KM_KEY_ACTIVE &&
		    p.epoch > k->epoch &&
		    p.nholders <= KM_CATALOG_MAX_HOLDERS) {
			free(k->next_public_data);
			k->next_public_data = NULL;
			if ((r = km_view_dup(p.public_data, p.public_len,
				 &k->next_public_data,
				 &k->next_public_len)) != 0) {
				break;
			}
			k->next_epoch = p.epoch;
			k->next_acked = p.nvotes > 0;
			k->next_threshold = p.threshold;
			k->next_nholders = p.nholders;
			memcpy(k->next_holders, p.holders,
			    p.nholders * sizeof(*p.holders));
			k->state = KM_KEY_RESHARING;
			k->updated_seq = e->seq;
		}
		break;
	case KM_CAT_RESHARE_COMMIT:
		/* the pending epoch becomes current; the old shares are gone
		 * on every holder that applied it */
		if (k != NULL && k->state == KM_KEY_RESHARING &&
		    p.epoch == k->next_epoch) {
			free(k->public_data);
			k->public_data = k->next_public_data;
			k->public_len = k->next_public_len;
			k->next_public_data = NULL;
			k->next_public_len = 0;
			k->epoch = k->next_epoch;
			k->threshold = k->next_threshold;
			k->nholders = k->next_nholders;
			memcpy(k->holders, k->next_holders,
			    k->next_nholders * sizeof(*k->holders));
			k->next_epoch = 0;
			k->next_threshold = 0;
			k->next_nholders = 0;
			k->state = KM_KEY_ACTIVE;
			k->updated_seq = e->seq;
		}
		break;
	case KM_CAT_RESHARE_ABORT:
		if (k != NULL && k->state == KM_KEY_RESHARING &&
		    p.epoch == k->next_epoch) {
			free(k->next_public_data);
			k->next_public_data = NULL;
			k->next_public_len = 0;
			k->next_epoch = 0;
			k->next_threshold = 0;
			k->next_nholders = 0;
			k->state = KM_KEY_ACTIVE;
			k->updated_seq = e->seq;
		}
		break;
	case KM_CAT_EVICT:
		/* the daemons consume an EVICT whose votes name no evidence
		 * without effect (store/catalog.c km_cat_evict) */
		if (!km_view_evicted(v, p.node)
		    && km_view_evict_evidence(&p)) {
			char(*ne)[KM_NAME_MAX + 1] = realloc(
			    v->evicted, (v->nevicted + 1) * sizeof(*ne));

			if (ne == NULL) {
				r = KM_ERR_ALLOC;
				break;
			}
			v->evicted = ne;
			snprintf(v->evicted[v->nevicted++], KM_NAME_MAX + 1,
			    "%s", p.node);
		}
		break;
	default:
		break;
	}
	km_catalog_payload_free(&p);
	return r;
}

bool
km_view_evicted(const km_view *v, const char *node)
{
	size_t i;

	for (i = 0; i < v->nevicted; i++) {
		if (strcmp(v->evicted[i], node) == 0) {
			return true;
		}
	}
	return false;
}

size_t
km_view_evicted_count(const km_view *v)
{
	return v->nevicted;
}

const char *
km_view_evicted_at(const km_view *v, size_t i)
{
	return i < v->nevicted ? v->evicted[i] : NULL;
}

/* A signer this view has checked the way @replay says, or NULL. */
static const km_view_signer *
km_view_signer_find(const km_view *v, const km_catalog_entry *e, bool replay)
{
	size_t i;

	for (i = 0; i < v->nsigners; i++) {
		const km_view_signer *s = &v->signers[i];

		if (s->replay == replay && s->len == e->signer_len &&
		    memcmp(s->der, e->signer, s->len) == 0) {
			return s;
		}
	}
	return NULL;
}

/* Remembers a signer whose certificate passed; a full cache or a failed
 * allocation only means the next entry checks it again. */
static void
km_view_signer_add(km_view *v, const km_catalog_entry *e, bool replay,
    const km_identity *id)
{
	km_view_signer *s;
	EVP_PKEY *pub = NULL;
	uint8_t *der;

	if (v->nsigners == KM_VIEW_SIGNERS ||
	    km_pki_cert_pubkey(e->signer, e->signer_len, &pub) != 0) {
		return;
	}
	if ((der = malloc(e->signer_len)) == NULL) {
		EVP_PKEY_free(pub);
		return;
	}
	memcpy(der, e->signer, e->signer_len);
	s = &v->signers[v->nsigners++];
	s->der = der;
	s->len = e->signer_len;
	s->replay = replay;
	s->id = *id;
	s->pub = pub;
}

/* Entries a member node may sign (store/evict.h): an EVICT with votes,
 * and the re-share entries an eviction calls for. */
static bool
km_view_node_type(uint32_t type)
{
	return type == KM_CAT_EVICT || type == KM_CAT_RESHARE_BEGIN
	    || type == KM_CAT_RESHARE_COMMIT || type == KM_CAT_RESHARE_ABORT;
}

int
km_view_verdict_allowed(
    const km_identity *signer, const uint8_t *payload, size_t len)
{
	km_trust_verdict tv;

	if (signer == NULL || signer->role != KM_ROLE_NODE) {
		return KM_ERR_AUTH;
	}
	/* malformed: the daemons consume it without effect, so must we
	 * (refusing it would stall the view at that entry) */
	if (km_trust_verdict_decode(payload, len, &tv) != 0) {
		return 0;
	}
	/* daemon/trust.c kmd_trust_check_verdict: the signer speaks as
	 * itself and never lifts its own quarantine */
	if (strcmp(tv.coordinator, signer->name) != 0
	    || (strcmp(tv.node, signer->name) == 0
	        && tv.state != KM_TRUST_QUARANTINED)) {
		return KM_ERR_AUTH;
	}
	return 0;
}

int
km_view_evict_consistent(const km_catalog_payload *p, const char *signer)
{
	uint8_t evidence[32];
	km_evict_stmt vs;
	size_t i;

	if (p == NULL || signer == NULL || p->type != KM_CAT_EVICT
	    || p->nvotes < 2 || strcmp(signer, p->node) == 0) {
		return KM_ERR_AUTH;
	}
	for (i = 0; i < p->nvotes; i++) {
		if (km_evict_stmt_decode(
		        p->votes[i].stmt, p->votes[i].stmt_len, &vs)
		    != 0) {
			return KM_ERR_BAD_FORMAT;
		}
		/* as km_evict_authorise: one node, one certificate, one
		 * piece of evidence for every vote */
		if (strcmp(vs.accused, p->node) != 0
		    || CRYPTO_memcmp(vs.cert_sha256, p->cert_sha256, 32) != 0
		    || (i > 0
		        && CRYPTO_memcmp(vs.evidence_sha256, evidence, 32)
		            != 0)) {
			return KM_ERR_AUTH;
		}
		memcpy(evidence, vs.evidence_sha256, 32);
	}
	return 0;
}

/* Holders sorted by index into @out (the daemons list them so). */
static void
km_view_holders_sorted(
    const km_catalog_holder *in, size_t n, km_catalog_holder *out)
{
	km_catalog_holder t;
	size_t i, j;

	memcpy(out, in, n * sizeof(*in));
	for (i = 1; i < n; i++) {
		t = out[i];
		for (j = i; j > 0 && out[j - 1].index > t.index; j--) {
			out[j] = out[j - 1];
		}
		out[j] = t;
	}
}

static bool
km_view_holders_equal(const km_catalog_holder *a, size_t na,
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

int
km_view_reshare_allowed(const km_view_key *k,
    const char (*evicted)[KM_NAME_MAX + 1], size_t nev,
    const km_catalog_payload *p)
{
	km_catalog_holder *cur = NULL, *next = NULL, *plan = NULL;
	km_catalog_evicted *ev = NULL;
	km_catalog_key ck;
	size_t np = 0, i, n = KM_CATALOG_MAX_HOLDERS;
	int r = KM_ERR_AUTH;

	if (k == NULL || p == NULL || (evicted == NULL && nev > 0)
	    || k->nholders > n || k->next_nholders > n) {
		return KM_ERR_AUTH;
	}
	if ((cur = calloc(n, sizeof(*cur))) == NULL
	    || (next = calloc(n, sizeof(*next))) == NULL
	    || (plan = calloc(n, sizeof(*plan))) == NULL
	    || (nev > 0 && (ev = calloc(nev, sizeof(*ev))) == NULL)) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < nev; i++) {
		snprintf(ev[i].node, sizeof(ev[i].node), "%s", evicted[i]);
	}
	/* the plan the daemons compute (store/evict.c km_evict_plan, over
	 * the holders by index) */
	km_view_holders_sorted(k->holders, k->nholders, cur);
	memset(&ck, 0, sizeof(ck));
	ck.threshold = k->threshold;
	ck.nholders = k->nholders;
	ck.holders = cur;
	r = km_evict_plan(&ck, ev, nev, plan, &np);
	if (r == KM_ERR_NOT_FOUND) {
		/* no eviction calls for one: only a proactive refresh, the
		 * very same holders and threshold (store/evict.c
		 * km_evict_reshare_allowed); that the posture policy has
		 * refresh on is checked by the caller (km_view_node_entry),
		 * the acks and the public key by km_view_reshare_acked */
		memcpy(plan, cur, k->nholders * sizeof(*cur));
		np = k->nholders;
	} else if (r != 0) {
		r = KM_ERR_AUTH;
		goto out; /* too few holders would remain */
	}
	r = KM_ERR_AUTH;
	if (p->type == KM_CAT_RESHARE_BEGIN) {
		if (k->state != KM_KEY_ACTIVE || p->epoch != k->epoch + 1
		    || p->threshold != k->threshold || p->nholders > n) {
			goto out;
		}
		km_view_holders_sorted(p->holders, p->nholders, next);
		if (!km_view_holders_equal(next, p->nholders, plan, np)) {
			goto out;
		}
	} else if (p->type == KM_CAT_RESHARE_COMMIT
	    || p->type == KM_CAT_RESHARE_ABORT) {
		if (k->state != KM_KEY_RESHARING || p->epoch != k->next_epoch
		    || k->next_threshold != k->threshold) {
			goto out;
		}
		km_view_holders_sorted(
		    k->next_holders, k->next_nholders, next);
		/* an abort of a pending refresh (the current holders) is
		 * always the daemons' to accept: it keeps the epoch */
		if (!km_view_holders_equal(next, k->next_nholders, plan, np)
		    && (p->type != KM_CAT_RESHARE_ABORT
		        || !km_view_holders_equal(
		            next, k->next_nholders, cur, k->nholders))) {
			goto out;
		}
	} else {
		goto out;
	}
	r = 0;
out:
	free(cur);
	free(next);
	free(plan);
	free(ev);
	return r;
}

/*
 * The daemons' ack rule (store/evict.h km_evict_authorise) as far as the
 * view can go without the member table: a node-signed RESHARE_BEGIN holds
 * the key's current public key and carries a valid ack of its public data
 * from exactly every new holder node, none of them evicted; a node-signed
 * RESHARE_COMMIT only follows such a BEGIN.  @k was found by the caller's
 * km_view_reshare_allowed (not NULL).
 */
static int
km_view_reshare_acked(
    km_view *v, const km_view_key *k, const km_catalog_payload *p)
{
	km_identity ids[KM_CATALOG_VOTES_MAX];
	char why[256];
	size_t n = 0, i;
	int r;

	if (p->type == KM_CAT_RESHARE_COMMIT) {
		return k->next_acked ? 0 : KM_ERR_AUTH;
	}
	if (p->type != KM_CAT_RESHARE_BEGIN) {
		return 0;
	}
	if ((r = km_reshare_pub_same(k->key_type, k->public_data,
	         k->public_len, p->public_data, p->public_len, p->threshold,
	         p->nholders, why, sizeof(why)))
	        != 0
	    || (r = km_reshare_acks_verify(
	            v->store, true, p, ids, &n, why, sizeof(why)))
	        != 0) {
		return r;
	}
	for (i = 0; i < n; i++) {
		if (km_view_evicted(v, ids[i].name)) {
			return KM_ERR_REVOKED;
		}
	}
	return 0;
}

/* Whether key @k has an index on an evicted node. */
static bool
km_view_holds_evicted(const km_view *v, const km_view_key *k)
{
	size_t i;

	for (i = 0; k != NULL && i < k->nholders; i++) {
		if (km_view_evicted(v, k->holders[i].node)) {
			return true;
		}
	}
	return false;
}

/*
 * A node-signed entry in the view.  The daemons check its full authority
 * at apply (km_evict_authorise: k votes of current members, or exactly the
 * re-share an eviction calls for).  The view checks the same with what it
 * holds: the signer is not evicted; an EVICT carries at least two valid
 * votes of distinct nodes other than the accused, all for one node,
 * certificate and piece of evidence, and is not signed by the accused; a
 * re-share entry is exactly the one an applied eviction calls for
 * (km_view_reshare_allowed).  XXX the vote count against k, and the
 * members, are the daemons' check only (the view keeps no member table).
 * Whatever a view accepts, a client never returns a wrong result: every
 * combined result is verified with the public key.
 */
static int
km_view_node_entry(
    km_view *v, const km_catalog_entry *e, const km_identity *signer)
{
	km_catalog_payload p;
	km_identity id, prev[KM_CATALOG_VOTES_MAX];
	const km_view_key *k;
	size_t i, j;
	int r;

	if (km_view_evicted(v, signer->name)) {
		return KM_ERR_REVOKED;
	}
	memset(&p, 0, sizeof(p));
	if ((r = km_catalog_payload_decode(
	         e->type, e->payload, e->payload_len, &p))
	    != 0) {
		return r;
	}
	if (e->type != KM_CAT_EVICT) {
		k = km_view_lookup(v, p.key_id);
		r = km_view_reshare_allowed(k,
		    (const char(*)[KM_NAME_MAX + 1]) v->evicted, v->nevicted,
		    &p);
		if (r == 0 && p.type != KM_CAT_RESHARE_ABORT
		    && !km_view_holds_evicted(v, k) && v->refresh_s == 0) {
			/* a refresh (no eviction calls for this re-share)
			 * while the posture policy has refresh off */
			r = KM_ERR_AUTH;
		}
		if (r == 0) {
			r = km_view_reshare_acked(v, k, &p);
		}
		km_catalog_payload_free(&p);
		return r;
	}
	r = km_view_evict_consistent(&p, signer->name);
	for (i = 0; r == 0 && i < p.nvotes; i++) {
		r = km_pki_verify_signed_replay(v->store, p.votes[i].cert,
		    p.votes[i].cert_len, KM_ROLE_NODE, p.votes[i].stmt,
		    p.votes[i].stmt_len, p.votes[i].sig, p.votes[i].sig_len,
		    &id);
		if (r == 0 && strcmp(id.name, p.node) == 0) {
			r = KM_ERR_AUTH;
		}
		for (j = 0; r == 0 && j < i; j++) {
			if (strcmp(prev[j].name, id.name) == 0) {
				r = KM_ERR_AUTH;
			}
		}
		prev[i] = id;
	}
	km_catalog_payload_free(&p);
	return r;
}

static int
km_view_verify(km_view *v, const km_catalog_entry *e)
{
	/* as the daemons: object entries by chain and role only, so a
	 * client revoked since does not stall the view */
	bool replay = km_catalog_type_is_object(e->type) ||
	    e->type == KM_CAT_TRUST_VERDICT;
	const km_view_signer *known;
	km_identity id;
	km_buf tbs;
	int r;

	memset(&id, 0, sizeof(id));
	km_buf_init(&tbs);
	if ((r = km_catalog_entry_tbs(e, &tbs)) != 0) {
		goto out;
	}
	if ((known = km_view_signer_find(v, e, replay)) != NULL) {
		id = known->id;
		r = km_pki_verify_sig(
		    known->pub, tbs.data, tbs.len, e->sig, e->sig_len);
		goto out;
	}
	r = replay ? km_pki_verify_signed_replay(v->store, e->signer,
			 e->signer_len, KM_ROLE_NONE, tbs.data, tbs.len,
			 e->sig, e->sig_len, &id)
		   : km_pki_verify_signed(v->store, e->signer, e->signer_len,
			 km_view_node_type(e->type) ? KM_ROLE_NONE :
			 KM_ROLE_ADMIN, tbs.data, tbs.len, e->sig, e->sig_len,
			 &id);
	if (r == 0) {
		km_view_signer_add(v, e, replay, &id);
	}
out:
	km_buf_free(&tbs);
	/* the daemons' rule (daemon/catalog.c): admins sign anything but
	 * verdicts, enrolled clients only objects, member nodes verdicts
	 * (the coordinator's, advisory) and the entries an eviction makes
	 * (checked further by km_view_node_entry) */
	if (r == 0 && id.role == KM_ROLE_NODE && km_view_node_type(e->type)) {
		r = km_view_node_entry(v, e, &id);
	} else if (r == 0 && e->type == KM_CAT_TRUST_VERDICT
	    && id.role == KM_ROLE_NODE) {
		r = km_view_verdict_allowed(&id, e->payload, e->payload_len);
		/* the daemons refuse an evicted signer's verdict at apply
		 * (store/evict.h km_evict_verdict_signer) */
		if (r == 0 && km_view_evicted(v, id.name)) {
			r = KM_ERR_REVOKED;
		}
	} else if (r == 0 &&
	    !(id.role == KM_ROLE_ADMIN && e->type != KM_CAT_TRUST_VERDICT) &&
	    !(id.role == KM_ROLE_CLIENT &&
		km_catalog_type_is_object(e->type)) &&
	    !(id.role == KM_ROLE_NODE && e->type == KM_CAT_TRUST_VERDICT)) {
		r = KM_ERR_AUTH;
	}
	return r;
}

/* One fetch from one node: applies what it returns. */
static int
km_view_fetch(km_view *v, size_t node, int timeout_ms, bool *more,
    size_t *applied)
{
	km_buf req, rep;
	uint64_t last = 0;
	uint32_t n, j;
	char msg[128];
	int r;

	*more = false;
	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_CATALOG_FETCH, NULL, 0, NULL);
	r = r ? r : km_buf_put_u64(&req, v->seq + 1);
	r = r ? r : km_buf_put_u32(&req, KM_VIEW_FETCH);
	if (r == 0) {
		r = km_rpc_call(km_mesh_client(v->mesh, node), &req, timeout_ms,
		    &rep, msg, sizeof(msg));
	}
	if (r == 0 && (km_buf_get_u64(&rep, &last) != 0 ||
			  km_buf_get_u32(&rep, &n) != 0 ||
			  n > KM_VIEW_FETCH)) {
		r = KM_ERR_BAD_FORMAT;
	}
	for (j = 0; r == 0 && j < n; j++) {
		km_catalog_entry e;
		const uint8_t *p;
		size_t len;

		memset(&e, 0, sizeof(e));
		if (km_buf_get_string_ptr(&rep, &p, &len,
			KM_CATALOG_ENTRY_MAX) != 0 ||
		    km_catalog_entry_decode(p, len, &e) != 0) {
			r = KM_ERR_BAD_FORMAT;
		} else if (e.seq != v->seq + 1) {
			r = KM_ERR_STALE;
		} else if ((r = km_view_verify(v, &e)) == 0 &&
		    (r = km_view_apply(v, &e)) == 0) {
			v->seq = e.seq;
			(*applied)++;
		}
		km_catalog_entry_clear(&e);
	}
	if (r == 0 && last > v->seq && n > 0) {
		*more = true;
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
km_view_refresh(km_view *v, int timeout_ms, bool *changed)
{
	size_t count = km_mesh_count(v->mesh), tried, node, applied = 0;
	bool more;
	int r = KM_ERR_QUORUM;

	for (tried = 0; tried < count; tried++) {
		node = (v->next_node + tried) % count;
		do {
			r = km_view_fetch(v, node, timeout_ms, &more,
			    &applied);
		} while (r == 0 && more);
		if (r == 0) {
			v->next_node = node;
			break;
		}
		if (r == KM_ERR_VERIFY || r == KM_ERR_AUTH ||
		    r == KM_ERR_REVOKED) {
			/* a node served an entry that is not the admin's:
			 * try another node */
			continue;
		}
	}
	if (changed != NULL) {
		*changed = applied > 0;
	}
	return r;
}

uint64_t
km_view_seq(const km_view *v)
{
	return v->seq;
}

size_t
km_view_count(const km_view *v)
{
	size_t i, n = 0;

	for (i = 0; i < v->nkeys; i++) {
		n += v->keys[i].state != KM_KEY_DESTROYED;
	}
	return n;
}

const km_view_key *
km_view_at(const km_view *v, size_t i)
{
	size_t j;

	for (j = 0; j < v->nkeys; j++) {
		if (v->keys[j].state == KM_KEY_DESTROYED) {
			continue;
		}
		if (i-- == 0) {
			return &v->keys[j];
		}
	}
	return NULL;
}

const km_view_key *
km_view_find(const km_view *v, const char *key_id)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++) {
		if (v->keys[i].state != KM_KEY_DESTROYED &&
		    strcmp(v->keys[i].key_id, key_id) == 0) {
			return &v->keys[i];
		}
	}
	return NULL;
}

const km_view_key *
km_view_find_label(const km_view *v, const char *label)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++) {
		if (v->keys[i].state != KM_KEY_DESTROYED &&
		    strcmp(v->keys[i].label, label) == 0) {
			return &v->keys[i];
		}
	}
	return NULL;
}

size_t
km_view_object_count(const km_view *v)
{
	size_t i, n = 0;

	for (i = 0; i < v->nobjs; i++) {
		n += !v->objs[i].deleted;
	}
	return n;
}

const km_view_object *
km_view_object_at(const km_view *v, size_t i)
{
	size_t j;

	for (j = 0; j < v->nobjs; j++) {
		if (v->objs[j].deleted) {
			continue;
		}
		if (i-- == 0) {
			return &v->objs[j];
		}
	}
	return NULL;
}
