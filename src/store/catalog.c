/*
 * The key catalog state machine: entry and payload codecs, strict
 * decoding, and km_catalog_apply().
 *
 * Determinism is the whole point here: apply reads only the entry and the
 * store, never the clock, the random generator or anything local to the
 * node, so replicas fed the same entries hold the same catalog (and the
 * same head hash, which makes a divergence visible).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "store/catalog.h"
#include "store/evict.h"
#include "store/store-int.h"
#include "trust/policy.h"
#include "util/err.h"
#include "util/log.h"

#define KM_CATALOG_FORMAT 1
static const char km_catalog_tbs_ctx[] = "keymesh-catalog-entry-v1";

/*
 * The posture policy and the verdicts live in the policies table under
 * scopes no key id can take (names start with a letter): "@posture" and
 * "@verdict:NODE", the last one applied of each.
 */
#define KM_CAT_SCOPE_POSTURE "@posture"
#define KM_CAT_SCOPE_VERDICT "@verdict:"

/* ---- entries ----------------------------------------------------------- */

int
km_catalog_entry_tbs(const km_catalog_entry *e, km_buf *out)
{
	if (e == NULL || out == NULL
	    || (e->payload == NULL && e->payload_len > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	if (km_buf_put_cstring(out, km_catalog_tbs_ctx) != 0
	    || km_buf_put_u64(out, e->seq) != 0
	    || km_buf_put_u32(out, e->type) != 0
	    || km_buf_put_string(out, e->payload, e->payload_len) != 0) {
		return KM_ERR_ALLOC;
	}
	return 0;
}

int
km_catalog_entry_encode(const km_catalog_entry *e, km_buf *out)
{
	if (e == NULL || out == NULL
	    || (e->payload == NULL && e->payload_len > 0)
	    || (e->signer == NULL && e->signer_len > 0)
	    || (e->sig == NULL && e->sig_len > 0)) {
		return KM_ERR_INVALID_ARG;
	}
	if (km_buf_put_u32(out, KM_CATALOG_FORMAT) != 0
	    || km_buf_put_u64(out, e->seq) != 0
	    || km_buf_put_u32(out, e->type) != 0
	    || km_buf_put_string(out, e->payload, e->payload_len) != 0
	    || km_buf_put_string(out, e->signer, e->signer_len) != 0
	    || km_buf_put_string(out, e->sig, e->sig_len) != 0) {
		return KM_ERR_ALLOC;
	}
	return 0;
}

static int
km_dup_bytes(const uint8_t *p, size_t len, uint8_t **out)
{
	/* Always allocate, so an empty field is still a non-NULL pointer. */
	if ((*out = malloc(len > 0 ? len : 1)) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (len > 0) {
		memcpy(*out, p, len);
	}
	return 0;
}

void
km_catalog_entry_clear(km_catalog_entry *e)
{
	if (e == NULL) {
		return;
	}
	free(e->payload);
	free(e->signer);
	free(e->sig);
	memset(e, 0, sizeof(*e));
}

int
km_catalog_entry_decode(const uint8_t *data, size_t len, km_catalog_entry *e)
{
	km_catalog_entry n;
	const uint8_t *pl, *sg, *sig;
	size_t pllen, sglen, siglen;
	uint32_t version;
	km_buf b;
	int r;

	if (data == NULL || e == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_CATALOG_ENTRY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	memset(&n, 0, sizeof(n));
	km_buf_init_view(&b, data, len);
	if (km_buf_get_u32(&b, &version) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (version != KM_CATALOG_FORMAT) {
		return KM_ERR_BAD_VERSION;
	}
	(void)km_buf_get_u64(&b, &n.seq);
	(void)km_buf_get_u32(&b, &n.type);
	(void)km_buf_get_string_ptr(&b, &pl, &pllen, KM_CATALOG_ENTRY_MAX);
	(void)km_buf_get_string_ptr(&b, &sg, &sglen, KM_CATALOG_CERT_MAX);
	(void)km_buf_get_string_ptr(&b, &sig, &siglen, KM_CATALOG_SIG_MAX);
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0 || n.seq == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((r = km_dup_bytes(pl, pllen, &n.payload)) != 0
	    || (r = km_dup_bytes(sg, sglen, &n.signer)) != 0
	    || (r = km_dup_bytes(sig, siglen, &n.sig)) != 0) {
		km_catalog_entry_clear(&n);
		return r;
	}
	n.payload_len = pllen;
	n.signer_len = sglen;
	n.sig_len = siglen;
	*e = n;
	return 0;
}

/* ---- policies ---------------------------------------------------------- */

void
km_catalog_policy_free(km_catalog_policy *p)
{
	size_t i;

	if (p == NULL) {
		return;
	}
	for (i = 0; i < p->nclients; i++) {
		free(p->clients[i]);
	}
	free(p->clients);
	free(p->mechs);
	memset(p, 0, sizeof(*p));
}

int
km_catalog_policy_encode(const km_catalog_policy *p, km_buf *out)
{
	size_t i;

	if (p == NULL || out == NULL || p->nmechs > KM_CATALOG_POLICY_MAX_ITEMS
	    || p->nclients > KM_CATALOG_POLICY_MAX_ITEMS
	    || (p->nmechs > 0 && p->mechs == NULL)
	    || (p->nclients > 0 && p->clients == NULL)) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < p->nclients; i++) {
		if (!km_name_valid(p->clients[i])) {
			return KM_ERR_INVALID_ARG;
		}
	}
	(void)km_buf_put_u32(out, (uint32_t)p->nmechs);
	for (i = 0; i < p->nmechs; i++) {
		(void)km_buf_put_u32(out, p->mechs[i]);
	}
	(void)km_buf_put_u32(out, (uint32_t)p->nclients);
	for (i = 0; i < p->nclients; i++) {
		(void)km_buf_put_cstring(out, p->clients[i]);
	}
	return km_buf_failed(out) ? KM_ERR_ALLOC : 0;
}

int
km_catalog_policy_decode(const uint8_t *data, size_t len, km_catalog_policy *p)
{
	km_catalog_policy n;
	uint32_t cnt;
	km_buf b;
	size_t i;
	int r;

	if ((data == NULL && len > 0) || p == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_CATALOG_POLICY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	memset(&n, 0, sizeof(n));
	km_buf_init_view(&b, data, len);
	if (km_buf_get_u32(&b, &cnt) != 0
	    || cnt > KM_CATALOG_POLICY_MAX_ITEMS) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (cnt > 0 && (n.mechs = calloc(cnt, sizeof(*n.mechs))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	n.nmechs = cnt;
	for (i = 0; i < n.nmechs; i++) {
		(void)km_buf_get_u32(&b, &n.mechs[i]);
	}
	if (km_buf_get_u32(&b, &cnt) != 0
	    || cnt > KM_CATALOG_POLICY_MAX_ITEMS) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (cnt > 0 && (n.clients = calloc(cnt, sizeof(*n.clients))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		if (km_buf_get_cstring(&b, &n.clients[i], KM_NAME_MAX) != 0) {
			break;
		}
		n.nclients = i + 1;
		if (!km_name_valid(n.clients[i])) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
	}
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	*p = n;
	memset(&n, 0, sizeof(n));
	r = 0;
out:
	km_catalog_policy_free(&n);
	return r;
}

bool
km_catalog_policy_allows(
    const km_catalog_policy *p, uint32_t mech, const char *client)
{
	bool mech_ok = (p->nmechs == 0), client_ok = (p->nclients == 0);
	size_t i;

	for (i = 0; i < p->nmechs && !mech_ok; i++) {
		mech_ok = (p->mechs[i] == mech);
	}
	for (i = 0; i < p->nclients && !client_ok && client != NULL; i++) {
		client_ok = (strcmp(p->clients[i], client) == 0);
	}
	return mech_ok && client_ok;
}

/* ---- payloads ---------------------------------------------------------- */

void
km_catalog_payload_free(km_catalog_payload *p)
{
	if (p == NULL) {
		return;
	}
	free(p->holders);
	free(p->public_data);
	free(p->policy);
	free(p->cert);
	free(p->app_id);
	free(p->obj_label);
	free(p->value);
	free(p->attrs);
	free(p->trust);
	km_catalog_votes_free(p->votes, p->nvotes);
	memset(p, 0, sizeof(*p));
}

/* ---- attribute lists (OBJECT_PUT) ----------------------------------------
 */

bool
km_catalog_type_is_object(uint32_t type)
{
	return type == KM_CAT_OBJECT_PUT || type == KM_CAT_OBJECT_DELETE;
}

int
km_catalog_attrs_encode(const km_catalog_attr *a, size_t n, km_buf *out)
{
	size_t i, start;

	if ((a == NULL && n > 0) || out == NULL
	    || n > KM_CATALOG_ATTRS_MAX_ITEMS) {
		return KM_ERR_INVALID_ARG;
	}
	for (i = 0; i < n; i++) {
		if ((i > 0 && a[i].type <= a[i - 1].type)
		    || (a[i].value == NULL && a[i].len > 0)) {
			return KM_ERR_INVALID_ARG;
		}
	}
	start = out->len;
	(void)km_buf_put_u32(out, (uint32_t)n);
	for (i = 0; i < n; i++) {
		(void)km_buf_put_u32(out, a[i].type);
		(void)km_buf_put_string(out, a[i].value, a[i].len);
	}
	if (km_buf_failed(out)) {
		return KM_ERR_ALLOC;
	}
	return out->len - start > KM_CATALOG_ATTRS_MAX ? KM_ERR_TOO_LARGE : 0;
}

int
km_catalog_attrs_decode(
    const uint8_t *data, size_t len, km_catalog_attr **out, size_t *nout)
{
	km_catalog_attr *a = NULL;
	uint32_t n, i;
	km_buf b;
	int r;

	if ((data == NULL && len > 0) || out == NULL || nout == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_CATALOG_ATTRS_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_init_view(&b, data, len);
	if (km_buf_get_u32(&b, &n) != 0 || n > KM_CATALOG_ATTRS_MAX_ITEMS) {
		return KM_ERR_BAD_FORMAT;
	}
	if ((a = calloc(n > 0 ? n : 1, sizeof(*a))) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < n && !km_buf_failed(&b); i++) {
		(void)km_buf_get_u32(&b, &a[i].type);
		(void)km_buf_get_string_ptr(
		    &b, &a[i].value, &a[i].len, KM_CATALOG_ATTRS_MAX);
		/* strictly increasing: canonical, no duplicates */
		if (i > 0 && a[i].type <= a[i - 1].type) {
			b.failed = true;
		}
	}
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	*out = a;
	*nout = n;
	a = NULL;
	r = 0;
out:
	free(a);
	return r;
}

static bool
km_attrs_bytes_ok(const uint8_t *p, size_t len)
{
	km_catalog_attr *a = NULL;
	size_t n = 0;

	if (km_catalog_attrs_decode(p, len, &a, &n) != 0) {
		return false;
	}
	free(a);
	return true;
}

static bool
km_epoch_ok(uint32_t epoch)
{
	return epoch > 0 && epoch <= INT32_MAX;
}

static bool
km_key_type_ok(uint32_t type, uint32_t bits)
{
	switch (type) {
	case KM_KEY_RSA:
		return bits == 2048 || bits == 3072 || bits == 4096;
	case KM_KEY_EC_P256:
		return bits == 256;
	case KM_KEY_EC_P384:
		return bits == 384;
	case KM_KEY_ED25519:
		return bits == 256;
	default:
		return false;
	}
}

/* Holder maps: 1..64 holders, indices non-zero and unique, valid names,
 * and a threshold a quorum of them can meet. */
static bool
km_holders_ok(const km_catalog_holder *h, size_t n, uint32_t threshold)
{
	size_t i, j;

	if (n == 0 || n > KM_CATALOG_MAX_HOLDERS || threshold == 0
	    || threshold > n) {
		return false;
	}
	for (i = 0; i < n; i++) {
		if (h[i].index == 0 || h[i].index > 0xffff
		    || !km_name_valid(h[i].node)) {
			return false;
		}
		for (j = 0; j < i; j++) {
			if (h[j].index == h[i].index) {
				return false;
			}
		}
	}
	return true;
}

static bool
km_policy_bytes_ok(const uint8_t *p, size_t len)
{
	km_catalog_policy pol;

	if (km_catalog_policy_decode(p, len, &pol) != 0) {
		return false;
	}
	km_catalog_policy_free(&pol);
	return true;
}

/* POSTURE_SET and TRUST_VERDICT: the trust codec's strict decoding; a
 * verdict's @node must be the node it names. */
static bool
km_trust_payload_ok(const km_catalog_payload *p)
{
	km_posture pol;
	km_trust_verdict v;

	if (p->trust == NULL || p->trust_len == 0) {
		return false;
	}
	if (p->type == KM_CAT_POSTURE_SET) {
		return km_posture_decode(p->trust, p->trust_len, &pol) == 0;
	}
	return km_trust_verdict_decode(p->trust, p->trust_len, &v) == 0
	    && strcmp(v.node, p->node) == 0;
}

/* ---- EVICT (docs/eviction.md) ------------------------------------------ */

void
km_catalog_votes_free(km_catalog_vote *v, size_t n)
{
	size_t i;

	if (v == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		free(v[i].cert);
		free(v[i].stmt);
		free(v[i].sig);
	}
	free(v);
}

/* A one-line reason: printable ASCII only, so it is safe in a log line
 * and a status table. */
static bool
km_cat_reason_ok(const char *r)
{
	size_t i, n = strlen(r);

	if (n > KM_CATALOG_REASON_MAX) {
		return false;
	}
	for (i = 0; i < n; i++) {
		if (r[i] < 0x20 || r[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

static bool km_cat_votes_ok(const km_catalog_payload *p);

static bool
km_cat_evict_ok(const km_catalog_payload *p)
{
	if (!km_name_valid(p->node) || !km_cat_reason_ok(p->reason)) {
		return false;
	}
	return km_cat_votes_ok(p);
}

/* The signed votes of an EVICT, or the signed acks of a RESHARE_BEGIN:
 * bounded count, every field present and bounded. */
static bool
km_cat_votes_ok(const km_catalog_payload *p)
{
	size_t i;

	if (p->nvotes > KM_CATALOG_VOTES_MAX
	    || (p->nvotes > 0 && p->votes == NULL)) {
		return false;
	}
	for (i = 0; i < p->nvotes; i++) {
		const km_catalog_vote *v = &p->votes[i];

		if (v->cert == NULL || v->cert_len == 0
		    || v->cert_len > KM_CATALOG_CERT_MAX || v->stmt == NULL
		    || v->stmt_len == 0
		    || v->stmt_len > KM_CATALOG_VOTE_STMT_MAX || v->sig == NULL
		    || v->sig_len == 0 || v->sig_len > KM_CATALOG_SIG_MAX) {
			return false;
		}
	}
	return true;
}

/* string node, string cert_sha256 (32 bytes), string reason,
 * uint32 n, n x (string cert, string statement, string signature) */
static void km_cat_votes_put(km_buf *b, const km_catalog_payload *p);

static void
km_cat_evict_put(km_buf *b, const km_catalog_payload *p)
{
	(void)km_buf_put_cstring(b, p->node);
	(void)km_buf_put_string(b, p->cert_sha256, 32);
	(void)km_buf_put_cstring(b, p->reason);
	km_cat_votes_put(b, p);
}

/* uint32 n, n x (string cert, string statement, string signature) */
static void
km_cat_votes_put(km_buf *b, const km_catalog_payload *p)
{
	size_t i;

	(void)km_buf_put_u32(b, (uint32_t)p->nvotes);
	for (i = 0; i < p->nvotes; i++) {
		(void)km_buf_put_string(
		    b, p->votes[i].cert, p->votes[i].cert_len);
		(void)km_buf_put_string(
		    b, p->votes[i].stmt, p->votes[i].stmt_len);
		(void)km_buf_put_string(
		    b, p->votes[i].sig, p->votes[i].sig_len);
	}
}

static void km_get_bytes(km_buf *b, uint8_t **dst, size_t *len, size_t max);

static void km_cat_votes_get(km_buf *b, km_catalog_payload *p);

/* After the node name (read by the caller). */
static void
km_cat_evict_get(km_buf *b, km_catalog_payload *p)
{
	const uint8_t *h, *r;
	size_t hlen, rlen;

	if (km_buf_get_string_ptr(b, &h, &hlen, 32) != 0 || hlen != 32
	    || km_buf_get_string_ptr(b, &r, &rlen, KM_CATALOG_REASON_MAX)
	        != 0) {
		b->failed = true;
		return;
	}
	memcpy(p->cert_sha256, h, 32);
	memcpy(p->reason, r, rlen);
	p->reason[rlen] = '\0';
	if (strlen(p->reason) != rlen) {
		b->failed = true;
		return;
	}
	km_cat_votes_get(b, p);
}

/* km_cat_votes_put's inverse, bounded. */
static void
km_cat_votes_get(km_buf *b, km_catalog_payload *p)
{
	uint32_t n, i;

	if (km_buf_get_u32(b, &n) != 0 || n > KM_CATALOG_VOTES_MAX) {
		b->failed = true;
		return;
	}
	if (n == 0) {
		return;
	}
	if ((p->votes = calloc(n, sizeof(*p->votes))) == NULL) {
		b->failed = true;
		return;
	}
	p->nvotes = n;
	for (i = 0; i < n && !km_buf_failed(b); i++) {
		km_get_bytes(b, &p->votes[i].cert, &p->votes[i].cert_len,
		    KM_CATALOG_CERT_MAX);
		km_get_bytes(b, &p->votes[i].stmt, &p->votes[i].stmt_len,
		    KM_CATALOG_VOTE_STMT_MAX);
		km_get_bytes(b, &p->votes[i].sig, &p->votes[i].sig_len,
		    KM_CATALOG_SIG_MAX);
	}
}

/* Checks a payload's fields for its type: shared by encoder and decoder,
 * so nothing is encoded that the decoder would refuse. */
static bool
km_payload_ok(const km_catalog_payload *p)
{
	switch (p->type) {
	case KM_CAT_KEY_CREATE:
		return km_name_valid(p->key_id) && km_name_valid(p->label)
		    && km_key_type_ok(p->key_type, p->bits)
		    && km_epoch_ok(p->epoch)
		    && km_holders_ok(p->holders, p->nholders, p->threshold)
		    && p->public_len <= KM_CATALOG_PUBLIC_MAX
		    && km_policy_bytes_ok(p->policy, p->policy_len);
	case KM_CAT_KEY_ACTIVATE:
	case KM_CAT_RESHARE_COMMIT:
	case KM_CAT_RESHARE_ABORT:
		return km_name_valid(p->key_id) && km_epoch_ok(p->epoch);
	case KM_CAT_KEY_DESTROY:
		return km_name_valid(p->key_id);
	case KM_CAT_RESHARE_BEGIN:
		return km_name_valid(p->key_id) && km_epoch_ok(p->epoch)
		    && km_holders_ok(p->holders, p->nholders, p->threshold)
		    && p->public_len <= KM_CATALOG_PUBLIC_MAX
		    && km_cat_votes_ok(p);
	case KM_CAT_MEMBER_ADD:
		return km_name_valid(p->node) && p->role >= 1 && p->role <= 3
		    && p->cert_len > 0 && p->cert_len <= KM_CATALOG_CERT_MAX;
	case KM_CAT_MEMBER_REMOVE:
		return km_name_valid(p->node);
	case KM_CAT_POLICY_SET:
		return (p->key_id[0] == '\0' || km_name_valid(p->key_id))
		    && km_policy_bytes_ok(p->policy, p->policy_len);
	case KM_CAT_OBJECT_PUT:
		return km_name_valid(p->object_id)
		    && km_name_valid(p->partition)
		    && p->obj_class >= KM_OBJ_CERTIFICATE
		    && p->obj_class <= KM_OBJ_DATA
		    && (p->obj_flags & ~KM_OBJ_FLAGS_ALL) == 0
		    && p->app_id_len <= KM_CATALOG_APP_ID_MAX
		    && p->obj_label_len <= KM_CATALOG_OBJ_LABEL_MAX
		    && p->value_len <= KM_CATALOG_VALUE_MAX
		    /* a certificate or a public key is never empty */
		    && (p->obj_class == KM_OBJ_DATA || p->value_len > 0)
		    && km_attrs_bytes_ok(p->attrs, p->attrs_len);
	case KM_CAT_OBJECT_DELETE:
		return km_name_valid(p->object_id);
	case KM_CAT_KEY_ATTRS:
		return km_name_valid(p->key_id)
		    && p->app_id_len <= KM_CATALOG_APP_ID_MAX;
	case KM_CAT_POSTURE_SET:
	case KM_CAT_TRUST_VERDICT:
		return km_trust_payload_ok(p);
	case KM_CAT_EVICT:
		return km_cat_evict_ok(p);
	default:
		return false;
	}
}

static void
km_put_holders(km_buf *b, const km_catalog_payload *p)
{
	size_t i;

	(void)km_buf_put_u32(b, (uint32_t)p->nholders);
	for (i = 0; i < p->nholders; i++) {
		(void)km_buf_put_u32(b, p->holders[i].index);
		(void)km_buf_put_cstring(b, p->holders[i].node);
	}
}

int
km_catalog_payload_encode(const km_catalog_payload *p, km_buf *out)
{
	if (p == NULL || out == NULL || !km_payload_ok(p)) {
		return KM_ERR_INVALID_ARG;
	}
	switch (p->type) {
	case KM_CAT_KEY_CREATE:
		(void)km_buf_put_cstring(out, p->key_id);
		(void)km_buf_put_cstring(out, p->label);
		(void)km_buf_put_u32(out, p->key_type);
		(void)km_buf_put_u32(out, p->bits);
		(void)km_buf_put_u32(out, p->threshold);
		(void)km_buf_put_u32(out, p->epoch);
		km_put_holders(out, p);
		(void)km_buf_put_string(out, p->public_data, p->public_len);
		(void)km_buf_put_string(out, p->policy, p->policy_len);
		break;
	case KM_CAT_KEY_ACTIVATE:
	case KM_CAT_RESHARE_COMMIT:
	case KM_CAT_RESHARE_ABORT:
		(void)km_buf_put_cstring(out, p->key_id);
		(void)km_buf_put_u32(out, p->epoch);
		break;
	case KM_CAT_KEY_DESTROY:
		(void)km_buf_put_cstring(out, p->key_id);
		break;
	case KM_CAT_RESHARE_BEGIN:
		(void)km_buf_put_cstring(out, p->key_id);
		(void)km_buf_put_u32(out, p->epoch);
		(void)km_buf_put_u32(out, p->threshold);
		km_put_holders(out, p);
		(void)km_buf_put_string(out, p->public_data, p->public_len);
		/* the new holders' acks (votes field): absent when there
		 * are none (an admin's), so that entries from before the
		 * field encode as they did */
		if (p->nvotes > 0) {
			km_cat_votes_put(out, p);
		}
		break;
	case KM_CAT_MEMBER_ADD:
		(void)km_buf_put_cstring(out, p->node);
		(void)km_buf_put_u32(out, p->role);
		(void)km_buf_put_string(out, p->cert, p->cert_len);
		break;
	case KM_CAT_MEMBER_REMOVE:
		(void)km_buf_put_cstring(out, p->node);
		break;
	case KM_CAT_POLICY_SET:
		(void)km_buf_put_cstring(out, p->key_id);
		(void)km_buf_put_string(out, p->policy, p->policy_len);
		break;
	case KM_CAT_OBJECT_PUT:
		(void)km_buf_put_cstring(out, p->object_id);
		(void)km_buf_put_cstring(out, p->partition);
		(void)km_buf_put_u32(out, p->obj_class);
		(void)km_buf_put_u32(out, p->obj_flags);
		(void)km_buf_put_string(out, p->app_id, p->app_id_len);
		(void)km_buf_put_string(out, p->obj_label, p->obj_label_len);
		(void)km_buf_put_string(out, p->value, p->value_len);
		(void)km_buf_put_string(out, p->attrs, p->attrs_len);
		break;
	case KM_CAT_OBJECT_DELETE:
		(void)km_buf_put_cstring(out, p->object_id);
		break;
	case KM_CAT_KEY_ATTRS:
		(void)km_buf_put_cstring(out, p->key_id);
		(void)km_buf_put_string(out, p->app_id, p->app_id_len);
		break;
	case KM_CAT_POSTURE_SET:
	case KM_CAT_TRUST_VERDICT:
		(void)km_buf_put_raw(out, p->trust, p->trust_len);
		break;
	case KM_CAT_EVICT:
		km_cat_evict_put(out, p);
		break;
	default:
		return KM_ERR_INVALID_ARG;
	}
	return km_buf_failed(out) ? KM_ERR_ALLOC : 0;
}

/* A name field into a fixed array; "" only where @empty_ok. */
static void
km_get_name(km_buf *b, char *dst, bool empty_ok)
{
	const uint8_t *p;
	size_t n;

	if (km_buf_get_string_ptr(b, &p, &n, KM_NAME_MAX) != 0) {
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	if (strlen(dst) != n || (n == 0 && !empty_ok)
	    || (n > 0 && !km_name_valid(dst))) {
		b->failed = true;
	}
}

static void
km_get_bytes(km_buf *b, uint8_t **dst, size_t *len, size_t max)
{
	const uint8_t *p;
	size_t n;

	if (km_buf_get_string_ptr(b, &p, &n, max) != 0) {
		return;
	}
	if (km_dup_bytes(p, n, dst) != 0) {
		b->failed = true;
		return;
	}
	*len = n;
}

static void
km_get_holders(km_buf *b, km_catalog_payload *p)
{
	uint32_t n, i;

	if (km_buf_get_u32(b, &n) != 0) {
		return;
	}
	if (n == 0 || n > KM_CATALOG_MAX_HOLDERS) {
		b->failed = true;
		return;
	}
	if ((p->holders = calloc(n, sizeof(*p->holders))) == NULL) {
		b->failed = true;
		return;
	}
	p->nholders = n;
	for (i = 0; i < n && !km_buf_failed(b); i++) {
		(void)km_buf_get_u32(b, &p->holders[i].index);
		km_get_name(b, p->holders[i].node, false);
	}
}

/* POSTURE_SET, TRUST_VERDICT: copies the rest of @b into @n->trust and,
 * for a verdict, its subject into @n->node. */
static int
km_catalog_trust_take(km_buf *b, km_catalog_payload *n)
{
	km_trust_verdict v;
	size_t len = km_buf_remaining(b);

	if (len == 0 || len > KM_POSTURE_MAX_LEN) {
		return len == 0 ? KM_ERR_BAD_FORMAT : KM_ERR_TOO_LARGE;
	}
	if (km_dup_bytes(b->data + b->off, len, &n->trust) != 0) {
		return KM_ERR_ALLOC;
	}
	n->trust_len = len;
	b->off += len;
	if (n->type == KM_CAT_TRUST_VERDICT) {
		if (km_trust_verdict_decode(n->trust, len, &v) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
		memcpy(n->node, v.node, sizeof(n->node));
	}
	return 0;
}

int
km_catalog_payload_decode(
    uint32_t type, const uint8_t *data, size_t len, km_catalog_payload *p)
{
	km_catalog_payload n;
	km_buf b;
	int r;

	if ((data == NULL && len > 0) || p == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_CATALOG_ENTRY_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	memset(&n, 0, sizeof(n));
	n.type = type;
	km_buf_init_view(&b, data, len);
	switch (type) {
	case KM_CAT_KEY_CREATE:
		km_get_name(&b, n.key_id, false);
		km_get_name(&b, n.label, false);
		(void)km_buf_get_u32(&b, &n.key_type);
		(void)km_buf_get_u32(&b, &n.bits);
		(void)km_buf_get_u32(&b, &n.threshold);
		(void)km_buf_get_u32(&b, &n.epoch);
		km_get_holders(&b, &n);
		km_get_bytes(
		    &b, &n.public_data, &n.public_len, KM_CATALOG_PUBLIC_MAX);
		km_get_bytes(
		    &b, &n.policy, &n.policy_len, KM_CATALOG_POLICY_MAX);
		break;
	case KM_CAT_KEY_ACTIVATE:
	case KM_CAT_RESHARE_COMMIT:
	case KM_CAT_RESHARE_ABORT:
		km_get_name(&b, n.key_id, false);
		(void)km_buf_get_u32(&b, &n.epoch);
		break;
	case KM_CAT_KEY_DESTROY:
		km_get_name(&b, n.key_id, false);
		break;
	case KM_CAT_RESHARE_BEGIN:
		km_get_name(&b, n.key_id, false);
		(void)km_buf_get_u32(&b, &n.epoch);
		(void)km_buf_get_u32(&b, &n.threshold);
		km_get_holders(&b, &n);
		km_get_bytes(
		    &b, &n.public_data, &n.public_len, KM_CATALOG_PUBLIC_MAX);
		/* one encoding only: no field, or at least one ack */
		if (!km_buf_failed(&b) && km_buf_remaining(&b) > 0) {
			km_cat_votes_get(&b, &n);
			if (n.nvotes == 0) {
				b.failed = true;
			}
		}
		break;
	case KM_CAT_MEMBER_ADD:
		km_get_name(&b, n.node, false);
		(void)km_buf_get_u32(&b, &n.role);
		km_get_bytes(&b, &n.cert, &n.cert_len, KM_CATALOG_CERT_MAX);
		break;
	case KM_CAT_MEMBER_REMOVE:
		km_get_name(&b, n.node, false);
		break;
	case KM_CAT_POLICY_SET:
		km_get_name(&b, n.key_id, true);
		km_get_bytes(
		    &b, &n.policy, &n.policy_len, KM_CATALOG_POLICY_MAX);
		break;
	case KM_CAT_OBJECT_PUT:
		km_get_name(&b, n.object_id, false);
		km_get_name(&b, n.partition, false);
		(void)km_buf_get_u32(&b, &n.obj_class);
		(void)km_buf_get_u32(&b, &n.obj_flags);
		km_get_bytes(
		    &b, &n.app_id, &n.app_id_len, KM_CATALOG_APP_ID_MAX);
		km_get_bytes(&b, &n.obj_label, &n.obj_label_len,
		    KM_CATALOG_OBJ_LABEL_MAX);
		km_get_bytes(&b, &n.value, &n.value_len, KM_CATALOG_VALUE_MAX);
		km_get_bytes(&b, &n.attrs, &n.attrs_len, KM_CATALOG_ATTRS_MAX);
		break;
	case KM_CAT_OBJECT_DELETE:
		km_get_name(&b, n.object_id, false);
		break;
	case KM_CAT_KEY_ATTRS:
		km_get_name(&b, n.key_id, false);
		km_get_bytes(
		    &b, &n.app_id, &n.app_id_len, KM_CATALOG_APP_ID_MAX);
		break;
	case KM_CAT_POSTURE_SET:
	case KM_CAT_TRUST_VERDICT:
		/* the whole payload is the trust codec's */
		r = km_catalog_trust_take(&b, &n);
		if (r != 0) {
			goto out;
		}
		break;
	case KM_CAT_EVICT:
		km_get_name(&b, n.node, false);
		km_cat_evict_get(&b, &n);
		break;
	default:
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (km_buf_failed(&b) || km_buf_remaining(&b) != 0
	    || !km_payload_ok(&n)) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	*p = n;
	memset(&n, 0, sizeof(n));
	r = 0;
out:
	km_catalog_payload_free(&n);
	return r;
}

/* ---- reading the catalog ----------------------------------------------- */

static int
km_cat_head_locked(km_store *s, uint64_t *seq, uint8_t head[32])
{
	sqlite3_stmt *st = NULL;
	const void *h;
	int r, rc;

	if ((r = km_store_stmt(s, KM_STMT_CAT_HEAD_GET, &st)) != 0) {
		return r;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "catalog head");
		goto out;
	}
	*seq = (uint64_t)sqlite3_column_int64(st, 0);
	h = sqlite3_column_blob(st, 1);
	if (h == NULL || sqlite3_column_bytes(st, 1) != 32) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (head != NULL) {
		memcpy(head, h, 32);
	}
	r = 0;
out:
	(void)sqlite3_reset(st);
	return r;
}

int
km_catalog_last_seq(km_store *s, uint64_t *seq, uint8_t head[32])
{
	int r;

	if (s == NULL || seq == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_cat_head_locked(s, seq, head);
	km_store_unlock(s);
	return r;
}

static int
km_col_name(sqlite3_stmt *st, int col, char *dst)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (t == NULL || n < 0 || n > KM_NAME_MAX) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(dst, t, (size_t)n);
	dst[n] = '\0';
	return 0;
}

static int
km_col_bytes(sqlite3_stmt *st, int col, uint8_t **dst, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (n < 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (km_dup_bytes(p, (size_t)n, dst) != 0) {
		return KM_ERR_ALLOC;
	}
	*len = (size_t)n;
	return 0;
}

static int
km_cat_holders_locked(km_store *s, const char *key_id, uint32_t epoch,
    km_catalog_holder **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	km_catalog_holder *v = NULL, *nv;
	size_t cnt = 0;
	int r, rc;

	if ((r = km_store_stmt(s, KM_STMT_CAT_HOLDER_LIST, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, epoch);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		v = nv;
		v[cnt].index = (uint32_t)sqlite3_column_int64(st, 0);
		if ((r = km_col_name(st, 1, v[cnt].node)) != 0) {
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, "holder list");
		goto out;
	}
	*out = v;
	v = NULL;
	*n = cnt;
	r = 0;
out:
	(void)sqlite3_reset(st);
	free(v);
	return r;
}

void
km_catalog_key_free(km_catalog_key *k)
{
	if (k == NULL) {
		return;
	}
	free(k->holders);
	free(k->next_holders);
	free(k->public_data);
	free(k->policy);
	free(k->app_id);
	memset(k, 0, sizeof(*k));
}

void
km_catalog_key_list_free(km_catalog_key *keys, size_t n)
{
	size_t i;

	if (keys == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		km_catalog_key_free(&keys[i]);
	}
	free(keys);
}

static int
km_cat_key_locked(km_store *s, const char *key_id, km_catalog_key *out)
{
	sqlite3_stmt *st = NULL;
	km_catalog_key k;
	int r, rc;

	memset(&k, 0, sizeof(k));
	if ((r = km_store_stmt(s, KM_STMT_CAT_KEY_GET, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key_id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "key get");
		goto out;
	}
	if ((r = km_col_name(st, 0, k.key_id)) != 0
	    || (r = km_col_name(st, 1, k.label)) != 0
	    || (r = km_col_bytes(st, 7, &k.public_data, &k.public_len)) != 0
	    || (r = km_col_bytes(st, 8, &k.policy, &k.policy_len)) != 0) {
		goto out;
	}
	k.key_type = (uint32_t)sqlite3_column_int64(st, 2);
	k.bits = (uint32_t)sqlite3_column_int64(st, 3);
	k.threshold = (uint32_t)sqlite3_column_int64(st, 4);
	k.epoch = (uint32_t)sqlite3_column_int64(st, 5);
	k.state = (km_key_state)sqlite3_column_int(st, 6);
	k.next_epoch = (uint32_t)sqlite3_column_int64(st, 9);
	k.next_threshold = (uint32_t)sqlite3_column_int64(st, 10);
	k.created_seq = (uint64_t)sqlite3_column_int64(st, 11);
	k.updated_seq = (uint64_t)sqlite3_column_int64(st, 12);
	if (sqlite3_column_type(st, 13) != SQLITE_NULL
	    && (r = km_col_bytes(st, 13, &k.app_id, &k.app_id_len)) != 0) {
		goto out;
	}
	k.next_acked = sqlite3_column_int64(st, 14) != 0;
	(void)sqlite3_reset(st);
	st = NULL;
	if ((r = km_cat_holders_locked(
	         s, k.key_id, k.epoch, &k.holders, &k.nholders))
	    != 0) {
		goto out;
	}
	if (k.state == KM_KEY_RESHARING
	    && (r = km_cat_holders_locked(s, k.key_id, k.next_epoch,
	            &k.next_holders, &k.next_nholders))
	        != 0) {
		goto out;
	}
	*out = k;
	memset(&k, 0, sizeof(k));
	r = 0;
out:
	(void)sqlite3_reset(st);
	km_catalog_key_free(&k);
	return r;
}

int
km_catalog_key_get(km_store *s, const char *key_id, km_catalog_key *k)
{
	int r;

	if (s == NULL || !km_name_valid(key_id) || k == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_cat_key_locked(s, key_id, k);
	km_store_unlock(s);
	return r;
}

int
km_catalog_key_get_by_label(km_store *s, const char *label, km_catalog_key *k)
{
	sqlite3_stmt *st = NULL;
	char id[KM_NAME_MAX + 1];
	int r, rc;

	if (s == NULL || !km_name_valid(label) || k == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_CAT_KEY_BY_LABEL, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_text(st, 1, label, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "key by label");
		goto out;
	}
	if ((r = km_col_name(st, 0, id)) != 0) {
		goto out;
	}
	(void)sqlite3_reset(st);
	st = NULL;
	r = km_cat_key_locked(s, id, k);
out:
	(void)sqlite3_reset(st);
	km_store_unlock(s);
	return r;
}

/*
 * The names a listing statement returns (column 0), under the store lock.
 * @ids is malloc'd (NULL when there are none).
 */
static int
km_cat_list_ids_locked(km_store *s, int stmt, const char *what,
    char (**ids)[KM_NAME_MAX + 1], size_t *cnt)
{
	sqlite3_stmt *st = NULL;
	char(*v)[KM_NAME_MAX + 1] = NULL, (*nv)[KM_NAME_MAX + 1];
	size_t n = 0;
	int r, rc;

	if ((r = km_store_stmt(s, stmt, &st)) != 0) {
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		v = nv;
		if ((r = km_col_name(st, 0, v[n])) != 0) {
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, what);
		goto out;
	}
	*ids = v;
	v = NULL;
	*cnt = n;
	r = 0;
out:
	(void)sqlite3_reset(st);
	free(v);
	return r;
}

int
km_catalog_key_list(km_store *s, km_catalog_key **keys, size_t *n)
{
	char(*ids)[KM_NAME_MAX + 1] = NULL;
	km_catalog_key *v = NULL;
	size_t cnt = 0, i, done = 0;
	int r;

	if (s == NULL || keys == NULL || n == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_cat_list_ids_locked(
	         s, KM_STMT_CAT_KEY_LIST, "key list", &ids, &cnt))
	    != 0) {
		goto out;
	}
	if (cnt > 0 && (v = calloc(cnt, sizeof(*v))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		if ((r = km_cat_key_locked(s, ids[i], &v[i])) != 0) {
			goto out;
		}
		done++;
	}
	*keys = v;
	v = NULL;
	*n = cnt;
	r = 0;
out:
	km_store_unlock(s);
	km_catalog_key_list_free(v, done);
	free(ids);
	return r;
}

int
km_catalog_entry_get(
    km_store *s, uint64_t seq, km_catalog_entry *e, int *result)
{
	sqlite3_stmt *st = NULL;
	km_catalog_entry n;
	int r, rc;

	if (s == NULL || e == NULL || seq == 0 || seq > INT64_MAX) {
		return KM_ERR_INVALID_ARG;
	}
	memset(&n, 0, sizeof(n));
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_CAT_LOG_GET, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "catalog log get");
		goto out;
	}
	n.seq = seq;
	n.type = (uint32_t)sqlite3_column_int64(st, 0);
	if ((r = km_col_bytes(st, 1, &n.payload, &n.payload_len)) != 0
	    || (r = km_col_bytes(st, 2, &n.signer, &n.signer_len)) != 0
	    || (r = km_col_bytes(st, 3, &n.sig, &n.sig_len)) != 0) {
		goto out;
	}
	if (result != NULL) {
		*result = sqlite3_column_int(st, 4);
	}
	*e = n;
	memset(&n, 0, sizeof(n));
	r = 0;
out:
	(void)sqlite3_reset(st);
	km_store_unlock(s);
	km_catalog_entry_clear(&n);
	return r;
}

static int
km_cat_blob_get_locked(km_store *s, km_stmt_id id, const char *name, int col,
    uint32_t *role, uint8_t **out, size_t *len)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = km_store_stmt(s, id, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "catalog get");
		goto out;
	}
	if (role != NULL) {
		*role = (uint32_t)sqlite3_column_int64(st, 0);
	}
	r = (out != NULL) ? km_col_bytes(st, col, out, len) : 0;
out:
	(void)sqlite3_reset(st);
	return r;
}

int
km_catalog_member_get(km_store *s, const char *node, uint32_t *role,
    uint8_t **cert, size_t *cert_len)
{
	int r;

	if (s == NULL || !km_name_valid(node)
	    || (cert != NULL && cert_len == NULL)) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_cat_blob_get_locked(
	    s, KM_STMT_CAT_MEMBER_GET, node, 1, role, cert, cert_len);
	km_store_unlock(s);
	return r;
}

int
km_catalog_policy_get(
    km_store *s, const char *key_id, uint8_t **policy, size_t *len)
{
	km_catalog_key k;
	int r;

	if (s == NULL || key_id == NULL || policy == NULL || len == NULL
	    || (key_id[0] != '\0' && !km_name_valid(key_id))) {
		return KM_ERR_INVALID_ARG;
	}
	if (key_id[0] == '\0') {
		km_store_lock(s);
		r = km_cat_blob_get_locked(
		    s, KM_STMT_CAT_POLICY_GET, key_id, 0, NULL, policy, len);
		km_store_unlock(s);
		return r;
	}
	memset(&k, 0, sizeof(k));
	if ((r = km_catalog_key_get(s, key_id, &k)) != 0) {
		return r;
	}
	if (k.state == KM_KEY_DESTROYED) {
		r = KM_ERR_NOT_FOUND;
	} else {
		*policy = k.policy;
		*len = k.policy_len;
		k.policy = NULL;
	}
	km_catalog_key_free(&k);
	return r;
}

int
km_catalog_posture_get(km_store *s, uint8_t **data, size_t *len)
{
	int r;

	if (s == NULL || data == NULL || len == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_cat_blob_get_locked(s, KM_STMT_CAT_POLICY_GET,
	    KM_CAT_SCOPE_POSTURE, 0, NULL, data, len);
	km_store_unlock(s);
	return r;
}

int
km_catalog_verdict_get(
    km_store *s, const char *node, uint8_t **data, size_t *len)
{
	char scope[sizeof(KM_CAT_SCOPE_VERDICT) + KM_NAME_MAX + 1];
	int r;

	if (s == NULL || !km_name_valid(node) || data == NULL || len == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	snprintf(scope, sizeof(scope), "%s%s", KM_CAT_SCOPE_VERDICT, node);
	km_store_lock(s);
	r = km_cat_blob_get_locked(
	    s, KM_STMT_CAT_POLICY_GET, scope, 0, NULL, data, len);
	km_store_unlock(s);
	return r;
}

/* ---- objects ------------------------------------------------------------ */

void
km_catalog_object_free(km_catalog_object *o)
{
	if (o == NULL) {
		return;
	}
	free(o->app_id);
	free(o->label);
	free(o->value);
	free(o->attrs);
	memset(o, 0, sizeof(*o));
}

void
km_catalog_object_list_free(km_catalog_object *objs, size_t n)
{
	size_t i;

	for (i = 0; objs != NULL && i < n; i++) {
		km_catalog_object_free(&objs[i]);
	}
	free(objs);
}

static int
km_cat_object_locked(km_store *s, const char *id, km_catalog_object *out)
{
	sqlite3_stmt *st = NULL;
	km_catalog_object o;
	int r, rc;

	memset(&o, 0, sizeof(o));
	if ((r = km_store_stmt(s, KM_STMT_CAT_OBJECT_GET, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
		goto out;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "object get");
		goto out;
	}
	if ((r = km_col_name(st, 0, o.object_id)) != 0
	    || (r = km_col_name(st, 1, o.partition)) != 0
	    || (r = km_col_bytes(st, 3, &o.app_id, &o.app_id_len)) != 0
	    || (r = km_col_bytes(st, 4, &o.label, &o.label_len)) != 0
	    || (r = km_col_bytes(st, 6, &o.value, &o.value_len)) != 0
	    || (r = km_col_bytes(st, 7, &o.attrs, &o.attrs_len)) != 0) {
		goto out;
	}
	o.obj_class = (uint32_t)sqlite3_column_int64(st, 2);
	o.flags = (uint32_t)sqlite3_column_int64(st, 5);
	o.state = (km_object_state)sqlite3_column_int(st, 8);
	o.created_seq = (uint64_t)sqlite3_column_int64(st, 9);
	o.updated_seq = (uint64_t)sqlite3_column_int64(st, 10);
	*out = o;
	memset(&o, 0, sizeof(o));
	r = 0;
out:
	(void)sqlite3_reset(st);
	km_catalog_object_free(&o);
	return r;
}

int
km_catalog_object_get(km_store *s, const char *object_id, km_catalog_object *o)
{
	int r;

	if (s == NULL || !km_name_valid(object_id) || o == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_cat_object_locked(s, object_id, o);
	km_store_unlock(s);
	return r;
}

int
km_catalog_object_list(km_store *s, km_catalog_object **objs, size_t *n)
{
	char(*ids)[KM_NAME_MAX + 1] = NULL;
	km_catalog_object *v = NULL;
	size_t cnt = 0, i, done = 0;
	int r;

	if (s == NULL || objs == NULL || n == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_cat_list_ids_locked(
	         s, KM_STMT_CAT_OBJECT_LIST, "object list", &ids, &cnt))
	    != 0) {
		goto out;
	}
	if (cnt > 0 && (v = calloc(cnt, sizeof(*v))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		if ((r = km_cat_object_locked(s, ids[i], &v[i])) != 0) {
			goto out;
		}
		done++;
	}
	*objs = v;
	v = NULL;
	*n = cnt;
	r = 0;
out:
	km_store_unlock(s);
	km_catalog_object_list_free(v, done);
	free(ids);
	return r;
}

/* OBJECT_PUT: a new object, or a new version of a live one (same
 * partition and class: an object never changes what it is). */
static int
km_cat_object_put(km_store *s, const km_catalog_payload *p, uint64_t seq)
{
	static const uint8_t empty[1];
	sqlite3_stmt *st = NULL;
	km_catalog_object o;
	bool exists;
	int r;

	memset(&o, 0, sizeof(o));
	r = km_cat_object_locked(s, p->object_id, &o);
	if (r != 0 && r != KM_ERR_NOT_FOUND) {
		return r;
	}
	exists = (r == 0);
	if (exists
	    && (o.state != KM_OBJ_LIVE || o.obj_class != p->obj_class
	        || strcmp(o.partition, p->partition) != 0)) {
		/* deleted ids are never reused */
		km_catalog_object_free(&o);
		return KM_ERR_STATE;
	}
	km_catalog_object_free(&o);
	if ((r = km_store_stmt(s,
	         exists ? KM_STMT_CAT_OBJECT_UPDATE
	                : KM_STMT_CAT_OBJECT_INSERT,
	         &st))
	    != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, p->object_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->partition, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, p->obj_class);
	sqlite3_bind_blob(st, 4, p->app_id ? p->app_id : empty,
	    (int)p->app_id_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, p->obj_label ? p->obj_label : empty,
	    (int)p->obj_label_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, p->obj_flags);
	sqlite3_bind_blob(st, 7, p->value ? p->value : empty,
	    (int)p->value_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, p->attrs ? p->attrs : empty,
	    (int)p->attrs_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)seq);
	return km_store_exec_stmt(
	    s, st, exists ? "object update" : "object insert");
}

static int
km_cat_object_delete(km_store *s, const km_catalog_payload *p, uint64_t seq)
{
	sqlite3_stmt *st = NULL;
	km_catalog_object o;
	int r;

	memset(&o, 0, sizeof(o));
	if ((r = km_cat_object_locked(s, p->object_id, &o)) != 0) {
		return r;
	}
	r = o.state == KM_OBJ_LIVE ? 0 : KM_ERR_STATE;
	km_catalog_object_free(&o);
	if (r != 0) {
		return r;
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_OBJECT_DELETE, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, p->object_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	return km_store_exec_stmt(s, st, "object delete");
}

/* ---- evicted nodes ------------------------------------------------------ */

static int
km_cat_evicted_row(sqlite3_stmt *st, km_catalog_evicted *e)
{
	const void *h1 = sqlite3_column_blob(st, 1);
	const void *h2 = sqlite3_column_blob(st, 2);
	const unsigned char *rs = sqlite3_column_text(st, 3);
	int rn = sqlite3_column_bytes(st, 3);

	memset(e, 0, sizeof(*e));
	if (km_col_name(st, 0, e->node) != 0 || h1 == NULL || h2 == NULL
	    || sqlite3_column_bytes(st, 1) != 32
	    || sqlite3_column_bytes(st, 2) != 32 || rs == NULL || rn < 0
	    || rn > KM_CATALOG_REASON_MAX) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(e->cert_sha256, h1, 32);
	memcpy(e->evidence_sha256, h2, 32);
	memcpy(e->reason, rs, (size_t)rn);
	e->reason[rn] = '\0';
	e->nvotes = (uint32_t)sqlite3_column_int64(st, 4);
	e->seq = (uint64_t)sqlite3_column_int64(st, 5);
	return 0;
}

static int
km_cat_evicted_get_locked(
    km_store *s, const char *node, km_catalog_evicted *out)
{
	sqlite3_stmt *st = NULL;
	km_catalog_evicted e;
	int r, rc;

	if ((r = km_store_stmt(s, KM_STMT_CAT_EVICTED_GET, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KM_ERR_NOT_FOUND;
	} else if (rc != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "evicted get");
	} else if ((r = km_cat_evicted_row(st, &e)) == 0 && out != NULL) {
		*out = e;
	}
	(void)sqlite3_reset(st);
	return r;
}

int
km_catalog_evicted_get(km_store *s, const char *node, km_catalog_evicted *out)
{
	int r;

	if (s == NULL || node == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	r = km_cat_evicted_get_locked(s, node, out);
	km_store_unlock(s);
	return r;
}

int
km_catalog_evicted_list(km_store *s, km_catalog_evicted **out, size_t *nout)
{
	sqlite3_stmt *st = NULL;
	km_catalog_evicted *v = NULL, *nv;
	size_t n = 0;
	int r, rc;

	if (s == NULL || out == NULL || nout == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_CAT_EVICTED_LIST, &st)) != 0) {
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		v = nv;
		if ((r = km_cat_evicted_row(st, &v[n])) != 0) {
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, "evicted list");
		goto out;
	}
	*out = v;
	*nout = n;
	v = NULL;
	r = 0;
out:
	if (st != NULL) {
		(void)sqlite3_reset(st);
	}
	km_store_unlock(s);
	free(v);
	return r;
}

static int km_cat_reshare_drop_old(
    km_store *s, const km_catalog_key *k, uint32_t epoch);
static int km_cat_bind_exec(km_store *s, km_stmt_id id, const char *what,
    const char *key, int64_t a, int64_t b, const uint8_t *blob, size_t bloblen,
    int64_t c);

/*
 * EVICT: the node joins the evicted table (for good: names are not
 * reused) and leaves the members table.  Its keys are untouched here:
 * their re-share is separate entries (docs/eviction.md).  The votes'
 * signatures and their number were checked by the caller's verify
 * callback (store/evict.h km_evict_authorise); here only what is
 * deterministic from the entry itself: every vote statement names this
 * node and certificate, and one evidence hash.
 */
static int
km_cat_evict(km_store *s, const km_catalog_payload *p, uint64_t seq)
{
	static const uint8_t zero[32];
	sqlite3_stmt *st = NULL;
	uint8_t evidence[32];
	km_evict_stmt vs;
	size_t i;
	int r;

	memset(evidence, 0, sizeof(evidence));
	for (i = 0; i < p->nvotes; i++) {
		if (km_evict_stmt_decode(
		        p->votes[i].stmt, p->votes[i].stmt_len, &vs)
		        != 0
		    || strcmp(vs.accused, p->node) != 0
		    || memcmp(vs.cert_sha256, p->cert_sha256, 32) != 0
		    || (i > 0 && memcmp(vs.evidence_sha256, evidence, 32) != 0)
		    || memcmp(vs.evidence_sha256, zero, 32) == 0) {
			return KM_ERR_BAD_FORMAT;
		}
		memcpy(evidence, vs.evidence_sha256, 32);
	}
	r = km_cat_evicted_get_locked(s, p->node, NULL);
	if (r == 0) {
		return KM_ERR_EXISTS;
	} else if (r != KM_ERR_NOT_FOUND) {
		return r;
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_EVICTED_INSERT, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, p->node, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, p->cert_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, evidence, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, p->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)p->nvotes);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)seq);
	if ((r = km_store_exec_stmt(s, st, "evicted insert")) != 0) {
		return r;
	}
	return km_cat_bind_exec(s, KM_STMT_CAT_MEMBER_DELETE, "member delete",
	    p->node, 0, 0, NULL, 0, 0);
}

int
km_catalog_mesh_nodes(km_store *s, km_catalog_node_name **out, size_t *nout,
    uint32_t *max_threshold)
{
	sqlite3_stmt *st = NULL;
	km_catalog_node_name *v = NULL, *nv;
	size_t n = 0;
	int r, rc;

	if (s == NULL || out == NULL || nout == NULL
	    || max_threshold == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_stmt(s, KM_STMT_CAT_MESH_NODES, &st)) != 0) {
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		v = nv;
		if ((r = km_col_name(st, 0, v[n].name)) != 0) {
			goto out;
		}
		n++;
	}
	(void)sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		r = km_store_sqlerr(s, rc, "mesh nodes");
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_MAX_THRESHOLD, &st)) != 0) {
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = km_store_sqlerr(s, rc, "max threshold");
		goto out;
	}
	*max_threshold = (uint32_t)sqlite3_column_int64(st, 0);
	*out = v;
	*nout = n;
	v = NULL;
	r = 0;
out:
	if (st != NULL) {
		(void)sqlite3_reset(st);
	}
	km_store_unlock(s);
	free(v);
	return r;
}

/* ---- apply -------------------------------------------------------------- */

/* Outcomes that every replica reaches the same way from the same entries:
 * the entry is consumed with no effect.  Anything else (I/O, memory, a
 * bug) is this node's problem and the entry is not consumed. */
static bool
km_cat_deterministic(int r)
{
	switch (r) {
	case KM_ERR_BAD_FORMAT:
	case KM_ERR_NOT_FOUND:
	case KM_ERR_EXISTS:
	case KM_ERR_STATE:
	case KM_ERR_RANGE:
		return true;
	default:
		return false;
	}
}

/* State and epochs of a key, for the preconditions of each entry. */
static int
km_cat_key_state(km_store *s, const char *key_id, km_catalog_key *k)
{
	return km_cat_key_locked(s, key_id, k);
}

static int
km_cat_insert_holders(km_store *s, const km_catalog_payload *p)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int r;

	for (i = 0; i < p->nholders; i++) {
		if ((r = km_store_stmt(s, KM_STMT_CAT_HOLDER_INSERT, &st))
		    != 0) {
			return r;
		}
		sqlite3_bind_text(st, 1, p->key_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, p->epoch);
		sqlite3_bind_int64(st, 3, p->holders[i].index);
		sqlite3_bind_text(
		    st, 4, p->holders[i].node, -1, SQLITE_STATIC);
		if ((r = km_store_exec_stmt(s, st, "holder insert")) != 0) {
			return r;
		}
	}
	return 0;
}

static int
km_cat_bind_exec(km_store *s, km_stmt_id id, const char *what, const char *key,
    int64_t a, int64_t b, const uint8_t *blob, size_t bloblen, int64_t c)
{
	sqlite3_stmt *st = NULL;
	int r;

	/* Small binder for the UPDATEs below: ?1 key, then ints/blob in
	 * the positions each statement's SQL names. */
	if ((r = km_store_stmt(s, id, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	switch (id) {
	case KM_STMT_CAT_KEY_SET_STATE:
		sqlite3_bind_int64(st, 2, a);
		sqlite3_bind_int64(st, 3, b);
		break;
	case KM_STMT_CAT_KEY_RESHARE_BEGIN:
		sqlite3_bind_int64(st, 2, a);
		sqlite3_bind_int64(st, 3, b);
		sqlite3_bind_blob(st, 4,
		    blob != NULL ? blob : (const void *)"", (int)bloblen,
		    SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, c);
		break;
	case KM_STMT_CAT_KEY_RESHARE_COMMIT:
	case KM_STMT_CAT_KEY_RESHARE_ABORT:
		sqlite3_bind_int64(st, 2, a);
		break;
	case KM_STMT_CAT_KEY_SET_ACKED:
		break;
	case KM_STMT_CAT_KEY_SET_POLICY:
		sqlite3_bind_blob(st, 2, blob, (int)bloblen, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, a);
		break;
	case KM_STMT_CAT_HOLDER_DELETE_EPOCH:
	case KM_STMT_CAT_HOLDER_DELETE_OLDER:
		sqlite3_bind_int64(st, 2, a);
		break;
	case KM_STMT_CAT_MEMBER_DELETE:
		break;
	default:
		return KM_ERR_INTERNAL;
	}
	return km_store_exec_stmt(s, st, what);
}

static int
km_cat_key_create(km_store *s, const km_catalog_payload *p, uint64_t seq)
{
	sqlite3_stmt *st = NULL;
	km_catalog_key k;
	int r, rc;

	memset(&k, 0, sizeof(k));
	r = km_cat_key_state(s, p->key_id, &k);
	km_catalog_key_free(&k);
	if (r == 0) {
		/* Key ids are never reused, not even after a destroy. */
		return KM_ERR_EXISTS;
	} else if (r != KM_ERR_NOT_FOUND) {
		return r;
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_LABEL_LIVE, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, p->label, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	(void)sqlite3_reset(st);
	if (rc == SQLITE_ROW) {
		return KM_ERR_EXISTS;
	} else if (rc != SQLITE_DONE) {
		return km_store_sqlerr(s, rc, "label");
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_KEY_INSERT, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, p->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->label, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, p->key_type);
	sqlite3_bind_int64(st, 4, p->bits);
	sqlite3_bind_int64(st, 5, p->threshold);
	sqlite3_bind_int64(st, 6, p->epoch);
	sqlite3_bind_blob(st, 7,
	    p->public_data != NULL ? (const void *)p->public_data
	                           : (const void *)"",
	    (int)p->public_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, p->policy, (int)p->policy_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)seq);
	if ((r = km_store_exec_stmt(s, st, "key insert")) != 0) {
		return r;
	}
	return km_cat_insert_holders(s, p);
}


static int
km_cat_trust_set(km_store *s, const km_catalog_payload *p, int64_t sq)
{
	char scope[sizeof(KM_CAT_SCOPE_VERDICT) + KM_NAME_MAX + 1];
	sqlite3_stmt *st = NULL;
	int r;

	if (p->type == KM_CAT_POSTURE_SET) {
		snprintf(scope, sizeof(scope), "%s", KM_CAT_SCOPE_POSTURE);
	} else {
		snprintf(scope, sizeof(scope), "%s%s", KM_CAT_SCOPE_VERDICT,
		    p->node);
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_POLICY_SET, &st)) != 0) {
		return r;
	}
	sqlite3_bind_text(st, 1, scope, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 2, p->trust, (int)p->trust_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, sq);
	return km_store_exec_stmt(s, st, "trust set");
}

static int
km_cat_apply_payload(km_store *s, const km_catalog_payload *p, uint64_t seq)
{
	km_catalog_key k;
	int64_t sq = (int64_t)seq;
	int r;

	if (p->type == KM_CAT_KEY_CREATE) {
		return km_cat_key_create(s, p, seq);
	}
	if (p->type == KM_CAT_OBJECT_PUT) {
		return km_cat_object_put(s, p, seq);
	}
	if (p->type == KM_CAT_OBJECT_DELETE) {
		return km_cat_object_delete(s, p, seq);
	}
	if (p->type == KM_CAT_EVICT) {
		return km_cat_evict(s, p, seq);
	}
	if (p->type == KM_CAT_MEMBER_ADD) {
		sqlite3_stmt *st = NULL;

		r = km_cat_blob_get_locked(
		    s, KM_STMT_CAT_MEMBER_GET, p->node, 1, NULL, NULL, NULL);
		if (r == 0) {
			return KM_ERR_EXISTS;
		} else if (r != KM_ERR_NOT_FOUND) {
			return r;
		}
		if ((r = km_store_stmt(s, KM_STMT_CAT_MEMBER_INSERT, &st))
		    != 0) {
			return r;
		}
		sqlite3_bind_text(st, 1, p->node, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, p->role);
		sqlite3_bind_blob(
		    st, 3, p->cert, (int)p->cert_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, sq);
		return km_store_exec_stmt(s, st, "member insert");
	}
	if (p->type == KM_CAT_MEMBER_REMOVE) {
		r = km_cat_blob_get_locked(
		    s, KM_STMT_CAT_MEMBER_GET, p->node, 1, NULL, NULL, NULL);
		if (r != 0) {
			return r;
		}
		return km_cat_bind_exec(s, KM_STMT_CAT_MEMBER_DELETE,
		    "member delete", p->node, 0, 0, NULL, 0, 0);
	}
	if (p->type == KM_CAT_POLICY_SET && p->key_id[0] == '\0') {
		sqlite3_stmt *st = NULL;

		if ((r = km_store_stmt(s, KM_STMT_CAT_POLICY_SET, &st)) != 0) {
			return r;
		}
		sqlite3_bind_text(st, 1, "", -1, SQLITE_STATIC);
		sqlite3_bind_blob(
		    st, 2, p->policy, (int)p->policy_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, sq);
		return km_store_exec_stmt(s, st, "policy set");
	}

	if (p->type == KM_CAT_POSTURE_SET || p->type == KM_CAT_TRUST_VERDICT) {
		return km_cat_trust_set(s, p, sq);
	}

	/* The rest act on an existing key. */
	memset(&k, 0, sizeof(k));
	if ((r = km_cat_key_state(s, p->key_id, &k)) != 0) {
		return r;
	}
	if (k.state == KM_KEY_DESTROYED) {
		r = KM_ERR_STATE;
		goto out;
	}
	switch (p->type) {
	case KM_CAT_KEY_ACTIVATE:
		if (k.state != KM_KEY_PENDING || p->epoch != k.epoch) {
			r = KM_ERR_STATE;
			goto out;
		}
		/* The mesh decided every holder stored its share: this
		 * node's prepared shares of the epoch are committed too. */
		if ((r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_SET_STATE,
		         "key activate", p->key_id, KM_KEY_ACTIVE, sq, NULL, 0,
		         0))
		        != 0
		    || (r = km_store_share_commit_locked(
		            s, p->key_id, p->epoch))
		        != 0) {
			goto out;
		}
		break;
	case KM_CAT_KEY_DESTROY:
		/* Clear any pending epoch first: that statement also
		 * resets the state, which the next one then overrides. */
		if ((r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_RESHARE_ABORT,
		         "key destroy", p->key_id, sq, 0, NULL, 0, 0))
		        != 0
		    || (r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_SET_STATE,
		            "key destroy", p->key_id, KM_KEY_DESTROYED, sq,
		            NULL, 0, 0))
		        != 0
		    || (r = km_cat_bind_exec(s,
		            KM_STMT_CAT_HOLDER_DELETE_OLDER, "key destroy",
		            p->key_id, INT64_MAX, 0, NULL, 0, 0))
		        != 0
		    || (r = km_store_share_delete_key_locked(s, p->key_id))
		        != 0) {
			goto out;
		}
		break;
	case KM_CAT_RESHARE_BEGIN:
		if (k.state != KM_KEY_ACTIVE || p->epoch <= k.epoch) {
			r = KM_ERR_STATE;
			goto out;
		}
		if ((r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_RESHARE_BEGIN,
		         "reshare begin", p->key_id, p->epoch, p->threshold,
		         p->public_data, p->public_len, sq))
		        != 0
		    || (r = km_cat_insert_holders(s, p)) != 0) {
			goto out;
		}
		/* the acks were checked at authorisation (a node's entry:
		 * store/evict.h km_evict_authorise); only an epoch begun
		 * with them may be committed by a node */
		if (p->nvotes > 0
		    && (r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_SET_ACKED,
		            "reshare begin", p->key_id, 0, 0, NULL, 0, 0))
		        != 0) {
			goto out;
		}
		break;
	case KM_CAT_RESHARE_COMMIT:
		if (k.state != KM_KEY_RESHARING || p->epoch != k.next_epoch) {
			r = KM_ERR_STATE;
			goto out;
		}
		/* WARNING: the old epoch's shares go only here, in the
		 * transaction that makes the new epoch current. */
		if ((r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_RESHARE_COMMIT,
		         "reshare commit", p->key_id, sq, 0, NULL, 0, 0))
		        != 0
		    || (r = km_cat_bind_exec(s,
		            KM_STMT_CAT_HOLDER_DELETE_OLDER, "reshare commit",
		            p->key_id, p->epoch, 0, NULL, 0, 0))
		        != 0
		    || (r = km_store_share_commit_locked(
		            s, p->key_id, p->epoch))
		        != 0) {
			goto out;
		}
		if ((r = km_cat_reshare_drop_old(s, &k, p->epoch)) != 0) {
			goto out;
		}
		break;
	case KM_CAT_RESHARE_ABORT:
		if (k.state != KM_KEY_RESHARING || p->epoch != k.next_epoch) {
			r = KM_ERR_STATE;
			goto out;
		}
		if ((r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_RESHARE_ABORT,
		         "reshare abort", p->key_id, sq, 0, NULL, 0, 0))
		        != 0
		    || (r = km_cat_bind_exec(s,
		            KM_STMT_CAT_HOLDER_DELETE_EPOCH, "reshare abort",
		            p->key_id, p->epoch, 0, NULL, 0, 0))
		        != 0
		    || (r = km_store_share_delete_epoch_locked(
		            s, p->key_id, p->epoch))
		        != 0) {
			goto out;
		}
		break;
	case KM_CAT_KEY_ATTRS: {
		static const uint8_t empty[1];
		sqlite3_stmt *st = NULL;

		if ((r = km_store_stmt(s, KM_STMT_CAT_KEY_SET_APP_ID, &st))
		    != 0) {
			goto out;
		}
		sqlite3_bind_text(st, 1, p->key_id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, p->app_id ? p->app_id : empty,
		    (int)p->app_id_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, sq);
		if ((r = km_store_exec_stmt(s, st, "key attrs")) != 0) {
			goto out;
		}
		break;
	}
	case KM_CAT_POLICY_SET:
		if ((r = km_cat_bind_exec(s, KM_STMT_CAT_KEY_SET_POLICY,
		         "policy set", p->key_id, sq, 0, p->policy,
		         p->policy_len, 0))
		    != 0) {
			goto out;
		}
		break;
	default:
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	r = 0;
out:
	km_catalog_key_free(&k);
	return r;
}

/*
 * The commit of a re-share deletes this node's shares of the older
 * epochs, unless this node holds an index of the new epoch (@k's pending
 * holders) and has no share stored for it: then the commit would leave
 * it with nothing (a coordinator that committed without this node's
 * share, or a bug).  Defence in depth behind the acks (docs/resharing.md,
 * "Authority"): the old shares stay, and it says so loudly.  The catalog
 * itself moves on alike on every replica; only local shares differ.
 */
static int
km_cat_reshare_drop_old(km_store *s, const km_catalog_key *k, uint32_t epoch)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int r, rc;

	for (i = 0; s->node[0] != '\0' && i < k->next_nholders; i++) {
		if (strcmp(k->next_holders[i].node, s->node) != 0) {
			continue;
		}
		if ((r = km_store_stmt(s, KM_STMT_SHARE_GET, &st)) != 0) {
			return r;
		}
		sqlite3_bind_text(st, 1, k->key_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, epoch);
		sqlite3_bind_int64(st, 3, k->next_holders[i].index);
		rc = sqlite3_step(st);
		(void)sqlite3_reset(st);
		if (rc == SQLITE_ROW) {
			continue;
		}
		if (rc != SQLITE_DONE) {
			return km_store_sqlerr(s, rc, "share get");
		}
		km_log_error("KM-STORE-RESHARE-NO-SHARE",
		    "key %s epoch %u committed, but this node (%s) has no "
		    "share for its index %u: the older epochs' shares are "
		    "KEPT; an admin must check this key",
		    k->key_id, epoch, s->node, k->next_holders[i].index);
		return 0;
	}
	return km_store_share_delete_older_locked(s, k->key_id, epoch);
}

/* head' = SHA-256(head || encoded entry || uint32 result) */
static int
km_cat_next_head(const uint8_t head[32], const km_catalog_entry *e, int result,
    uint8_t out[32])
{
	km_buf b;
	unsigned int n = 0;
	int r;

	km_buf_init(&b);
	if ((r = km_buf_put_raw(&b, head, 32)) != 0
	    || (r = km_catalog_entry_encode(e, &b)) != 0
	    || (r = km_buf_put_u32(&b, (uint32_t)result)) != 0) {
		goto out;
	}
	if (EVP_Digest(b.data, b.len, out, &n, EVP_sha256(), NULL) != 1
	    || n != 32) {
		r = KM_ERR_CRYPTO;
		goto out;
	}
	r = 0;
out:
	km_buf_free(&b);
	return r;
}

int
km_catalog_apply(km_store *s, const km_catalog_entry *e,
    km_catalog_verify_fn verify, void *arg, int *result)
{
	km_catalog_payload p;
	sqlite3_stmt *st = NULL;
	uint8_t head[32], next[32];
	uint64_t last = 0;
	km_buf tbs;
	int r, res;

	memset(&p, 0, sizeof(p));
	km_buf_init(&tbs);
	if (s == NULL || e == NULL || verify == NULL || e->seq == 0
	    || e->seq > INT64_MAX || (e->payload == NULL && e->payload_len)
	    || (e->signer == NULL && e->signer_len)
	    || (e->sig == NULL && e->sig_len)
	    || e->payload_len > KM_CATALOG_ENTRY_MAX
	    || e->signer_len > KM_CATALOG_CERT_MAX
	    || e->sig_len > KM_CATALOG_SIG_MAX) {
		return KM_ERR_INVALID_ARG;
	}
	km_store_lock(s);
	if ((r = km_store_begin(s)) != 0) {
		goto unlock;
	}
	if ((r = km_cat_head_locked(s, &last, head)) != 0) {
		goto out;
	}
	if (e->seq != last + 1) {
		km_log_warn("KM-CATALOG-SEQ",
		    "entry %llu refused: last applied is %llu",
		    (unsigned long long)e->seq, (unsigned long long)last);
		r = KM_ERR_STALE;
		goto out;
	}
	if ((r = km_catalog_entry_tbs(e, &tbs)) != 0) {
		goto out;
	}
	if ((r = verify(arg, e, tbs.data, tbs.len)) != 0) {
		km_log_warn_r(r, "KM-CATALOG-SIG",
		    "entry %llu type %u refused", (unsigned long long)e->seq,
		    e->type);
		r = (r > 0) ? KM_ERR_VERIFY : r;
		goto out;
	}
	if ((r = km_store_run(s, KM_STMT_SAVEPOINT, "savepoint")) != 0) {
		goto out;
	}
	res = km_catalog_payload_decode(
	    e->type, e->payload, e->payload_len, &p);
	if (res == 0) {
		res = km_cat_apply_payload(s, &p, e->seq);
	}
	if (res != 0 && !km_cat_deterministic(res)) {
		r = res;
		goto out;
	}
	if (res != 0) {
		/* Undo whatever part of the entry ran; keep the txn. */
		if ((r = km_store_run(s, KM_STMT_ROLLBACK_TO, "rollback to"))
		    != 0) {
			goto out;
		}
		km_log_warn_r(res, "KM-CATALOG-REJECT",
		    "entry %llu type %u consumed without effect",
		    (unsigned long long)e->seq, e->type);
	}
	if ((r = km_store_run(s, KM_STMT_RELEASE, "release")) != 0) {
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_LOG_INSERT, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)e->seq);
	sqlite3_bind_int64(st, 2, e->type);
	sqlite3_bind_blob(st, 3, e->payload != NULL ? e->payload : tbs.data,
	    (int)e->payload_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, e->signer != NULL ? e->signer : tbs.data,
	    (int)e->signer_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, e->sig != NULL ? e->sig : tbs.data,
	    (int)e->sig_len, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, res);
	if ((r = km_store_exec_stmt(s, st, "catalog log")) != 0) {
		goto out;
	}
	if ((r = km_cat_next_head(head, e, res, next)) != 0) {
		goto out;
	}
	if ((r = km_store_stmt(s, KM_STMT_CAT_HEAD_SET, &st)) != 0) {
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)e->seq);
	sqlite3_bind_blob(st, 2, next, 32, SQLITE_STATIC);
	if ((r = km_store_exec_stmt(s, st, "catalog head")) != 0) {
		goto out;
	}
	if ((r = km_store_commit(s)) != 0) {
		goto out;
	}
	if (result != NULL) {
		*result = res;
	}
	r = 0;
out:
	if (r != 0) {
		km_store_rollback(s);
	}
unlock:
	km_store_unlock(s);
	km_catalog_payload_free(&p);
	km_buf_free(&tbs);
	return r;
}
