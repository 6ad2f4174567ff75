/*
 * EC distributed key generation across daemons (GJKR, crypto/ec_dkg.h).
 *
 * The daemon the admin asked is the coordinator: it runs the rounds by
 * sending each party (itself included, by a direct call) a dkg-round
 * request with the messages addressed to it, and collects what each party
 * sends.  Broadcasts are relayed to everyone identically (the coordinator
 * is the broadcast channel GJKR assumes; a coordinator that equivocates
 * makes the parties' public keys differ, which the coordinator's final
 * comparison — and each holder's check of its share against the public
 * key at activation — catches).  Private messages (a dealer's shares for
 * one party) are sealed to the recipient's certificate key, so the
 * coordinator relays them unread.
 *
 * Rounds on the wire (request "uint32 round" then):
 *   0 hello:  uint32 key_type, k, n, nparties, nparties x string name,
 *             n x uint32 owner            -> reply: string cert (DER)
 *   1 deal:   nparties x string cert      -> reply: messages
 *   2..4:     messages addressed to it    -> reply: messages
 *   5 finish: messages                    -> reply: string public data
 *   9 abort:  (nothing)                   -> reply: (nothing)
 * messages = uint32 count, count x (uint32 from, uint32 to, string body);
 * a private body is sealed with AAD "keymesh-dkg|key|from|to".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_group.h"
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

#define KMD_DKG_TIMEOUT_MS 15000
#define KMD_DKG_MAX_PARTIES 32
#define KMD_DKG_MAX_MSGS 4096
#define KMD_DKG_BODY_MAX (64u * 1024)
#define KMD_DKG_ABORT 9u

#define kmd_fail(msg, msglen, r, ...) \
	(snprintf((msg), (msglen), __VA_ARGS__), (r))

/* One party's state for one key (a node may serve several DKGs). */
typedef struct kmd_dkg_session {
	char key_id[KM_NAME_MAX + 1];
	char coordinator[KM_NAME_MAX + 1];
	uint32_t key_type;
	uint32_t self; /* our party id */
	uint32_t nparties;
	uint32_t next_round;
	km_ec_group *g;
	km_ec_dkg *dkg;
	uint32_t owner[KM_CATALOG_MAX_HOLDERS];
	char names[KMD_DKG_MAX_PARTIES][KM_NAME_MAX + 1];
	EVP_PKEY *keys[KMD_DKG_MAX_PARTIES]; /* parties' public keys */
	struct kmd_dkg_session *next;
} kmd_dkg_session;

static void
kmd_dkg_session_free(kmd_dkg_session *s)
{
	uint32_t i;

	if (s == NULL) {
		return;
	}
	km_ec_dkg_free(s->dkg);
	km_ec_group_free(s->g);
	for (i = 0; i < KMD_DKG_MAX_PARTIES; i++) {
		EVP_PKEY_free(s->keys[i]);
	}
	free(s);
}

void
kmd_dkg_free_all(kmd_state *st)
{
	kmd_dkg_session *s, *n;

	for (s = st->dkg; s != NULL; s = n) {
		n = s->next;
		kmd_dkg_session_free(s);
	}
	st->dkg = NULL;
}

/* Caller holds st->dkg_lock. */
static kmd_dkg_session **
kmd_dkg_find(kmd_state *st, const char *key_id)
{
	kmd_dkg_session **pp;

	for (pp = &st->dkg; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->key_id, key_id) == 0) {
			return pp;
		}
	}
	return NULL;
}

static void
kmd_dkg_aad(char *aad, size_t len, const char *key_id, uint32_t from,
    uint32_t to)
{
	snprintf(aad, len, "keymesh-dkg|%s|%u|%u", key_id, from, to);
}

/* Outgoing messages: private bodies sealed to their recipient. */
static int
kmd_dkg_put_msgs(kmd_dkg_session *s, const km_ec_msgs *m, km_buf *out)
{
	char aad[128];
	size_t i;
	int r;

	if ((r = km_buf_put_u32(out, (uint32_t)m->n)) != 0) {
		return r;
	}
	for (i = 0; i < m->n; i++) {
		const km_ec_msg *x = &m->v[i];
		km_buf sealed;

		if ((r = km_buf_put_u32(out, x->from)) != 0 ||
		    (r = km_buf_put_u32(out, x->to)) != 0) {
			return r;
		}
		if (x->to == 0) {
			r = km_buf_put_string(out, x->body.data, x->body.len);
		} else {
			if (x->to > s->nparties || s->keys[x->to - 1] == NULL) {
				return KM_ERR_INTERNAL;
			}
			km_buf_init(&sealed);
			kmd_dkg_aad(aad, sizeof(aad), s->key_id, x->from,
			    x->to);
			r = km_seal(s->keys[x->to - 1], aad, strlen(aad),
			    x->body.data, x->body.len, &sealed);
			if (r == 0) {
				r = km_buf_put_string(out, sealed.data,
				    sealed.len);
			}
			km_buf_free(&sealed);
		}
		if (r != 0) {
			return r;
		}
	}
	return 0;
}

/* Incoming messages: private ones must be for us and are unsealed. */
static int
kmd_dkg_get_msgs(kmd_state *st, kmd_dkg_session *s, km_buf *in,
    km_ec_msgs *m)
{
	char aad[128];
	uint32_t count, i;
	int r;

	memset(m, 0, sizeof(*m));
	if (km_buf_get_u32(in, &count) != 0 || count > KMD_DKG_MAX_MSGS) {
		return KM_ERR_BAD_FORMAT;
	}
	if (count == 0) {
		return 0;
	}
	if ((m->v = calloc(count, sizeof(*m->v))) == NULL) {
		return KM_ERR_ALLOC;
	}
	for (i = 0; i < count; i++) {
		km_ec_msg *x = &m->v[i];
		const uint8_t *p;
		size_t len;

		m->n = i + 1;
		km_buf_init_secure(&x->body);
		if (km_buf_get_u32(in, &x->from) != 0 ||
		    km_buf_get_u32(in, &x->to) != 0 ||
		    km_buf_get_string_ptr(in, &p, &len, KMD_DKG_BODY_MAX) !=
			0 ||
		    x->from == 0 || x->from > s->nparties) {
			return KM_ERR_BAD_FORMAT;
		}
		if (x->to == 0) {
			r = km_buf_put_raw(&x->body, p, len);
		} else if (x->to != s->self) {
			return KM_ERR_BAD_FORMAT;
		} else {
			kmd_dkg_aad(aad, sizeof(aad), s->key_id, x->from,
			    x->to);
			r = km_unseal(st->idkey, aad, strlen(aad), p, len,
			    &x->body);
		}
		if (r != 0) {
			return r;
		}
	}
	return km_buf_remaining(in) == 0 ? 0 : KM_ERR_BAD_FORMAT;
}

static int
kmd_dkg_hello(kmd_state *st, const km_identity *from, const char *key_id,
    km_buf *in, km_buf *out)
{
	kmd_dkg_session *s = NULL, **pp;
	km_ec_dkg_params params;
	uint32_t k, n, np, i;
	uint8_t *der = NULL;
	X509 *cert = NULL;
	int r, len;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return KM_ERR_ALLOC;
	}
	snprintf(s->key_id, sizeof(s->key_id), "%s", key_id);
	snprintf(s->coordinator, sizeof(s->coordinator), "%s", from->name);
	if (km_buf_get_u32(in, &s->key_type) != 0 ||
	    km_buf_get_u32(in, &k) != 0 || km_buf_get_u32(in, &n) != 0 ||
	    km_buf_get_u32(in, &np) != 0 || np == 0 ||
	    np > KMD_DKG_MAX_PARTIES || n == 0 ||
	    n > KM_CATALOG_MAX_HOLDERS || k == 0 || k > n) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	s->nparties = np;
	for (i = 0; i < np; i++) {
		const uint8_t *p;
		size_t len2;
		if (km_buf_get_string_ptr(in, &p, &len2, KM_NAME_MAX) != 0) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		memcpy(s->names[i], p, len2);
		s->names[i][len2] = '\0';
		if (!km_name_valid(s->names[i])) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		if (strcmp(s->names[i], st->cfg.name) == 0) {
			s->self = i + 1;
		}
	}
	for (i = 0; i < n; i++) {
		if (km_buf_get_u32(in, &s->owner[i]) != 0 ||
		    s->owner[i] == 0 || s->owner[i] > np) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
	}
	if (km_buf_remaining(in) != 0 || s->self == 0 ||
	    (s->key_type != KM_KEY_EC_P256 && s->key_type != KM_KEY_EC_P384)) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if ((r = km_ec_group_new(s->key_type == KM_KEY_EC_P256 ?
			 NID_X9_62_prime256v1 :
			 NID_secp384r1,
		 &s->g)) != 0) {
		goto out;
	}
	memset(&params, 0, sizeof(params));
	params.k = k;
	params.n = n;
	params.nparties = np;
	params.owner = s->owner;
	if ((r = km_ec_dkg_new(s->g, &params, s->self, &s->dkg)) != 0) {
		goto out;
	}
	s->next_round = 1;
	/* our certificate, so the others can seal to us */
	if ((r = km_pki_load_cert(st->cfg.cert, &cert)) != 0 ||
	    (len = i2d_X509(cert, &der)) <= 0) {
		r = r ? r : KM_ERR_CRYPTO;
		goto out;
	}
	if ((r = km_buf_put_string(out, der, (size_t)len)) != 0) {
		goto out;
	}
	pthread_mutex_lock(&st->dkg_lock);
	if ((pp = kmd_dkg_find(st, key_id)) != NULL) {
		/* a new hello replaces a stale session */
		kmd_dkg_session *old = *pp;
		*pp = old->next;
		kmd_dkg_session_free(old);
	}
	s->next = st->dkg;
	st->dkg = s;
	s = NULL;
	pthread_mutex_unlock(&st->dkg_lock);
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(cert);
	kmd_dkg_session_free(s);
	return r;
}

/* Round 1: learn and check every party's certificate, then deal. */
static int
kmd_dkg_certs(kmd_state *st, kmd_dkg_session *s, km_buf *in)
{
	uint32_t i;
	int r;

	for (i = 0; i < s->nparties; i++) {
		const uint8_t *p, *q;
		size_t len;
		km_identity id;
		X509 *cert;

		if (km_buf_get_string_ptr(in, &p, &len, 16384) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
		q = p;
		if ((cert = d2i_X509(NULL, &q, (long)len)) == NULL) {
			return KM_ERR_BAD_FORMAT;
		}
		r = km_pki_verify(st->x509, cert, KM_ROLE_NODE, &id);
		if (r == 0 && strcmp(id.name, s->names[i]) != 0) {
			r = KM_ERR_AUTH;
		}
		if (r == 0) {
			EVP_PKEY_free(s->keys[i]);
			s->keys[i] = X509_get_pubkey(cert);
			r = s->keys[i] ? 0 : KM_ERR_CRYPTO;
		}
		X509_free(cert);
		if (r != 0) {
			return r;
		}
	}
	return km_buf_remaining(in) == 0 ? 0 : KM_ERR_BAD_FORMAT;
}

/* One party step: what a dkg-round request does on its recipient. */
static int
kmd_dkg_step(kmd_state *st, const km_identity *from, const char *key_id,
    uint32_t round, km_buf *in, km_buf *out)
{
	kmd_dkg_session *s, **pp;
	km_ec_msgs inmsgs, outmsgs;
	km_ec_share **shares = NULL;
	size_t nshares = 0, i;
	km_ec_pub *pub = NULL;
	km_buf pubenc;
	uint32_t culprit = 0;
	int r;

	if (round == 0) {
		return kmd_dkg_hello(st, from, key_id, in, out);
	}
	memset(&inmsgs, 0, sizeof(inmsgs));
	memset(&outmsgs, 0, sizeof(outmsgs));
	km_buf_init(&pubenc);
	pthread_mutex_lock(&st->dkg_lock);
	pp = kmd_dkg_find(st, key_id);
	if (pp == NULL || strcmp((*pp)->coordinator, from->name) != 0) {
		pthread_mutex_unlock(&st->dkg_lock);
		return round == KMD_DKG_ABORT ? 0 : KM_ERR_STATE;
	}
	s = *pp;
	if (round == KMD_DKG_ABORT) {
		*pp = s->next;
		pthread_mutex_unlock(&st->dkg_lock);
		kmd_dkg_session_free(s);
		(void)km_store_share_abort(st->store, key_id, 1);
		return 0;
	}
	/* rounds run one after another for a session: hold it while busy */
	if (round != s->next_round) {
		pthread_mutex_unlock(&st->dkg_lock);
		return KM_ERR_STATE;
	}
	*pp = s->next; /* take it out while we work on it */
	pthread_mutex_unlock(&st->dkg_lock);

	switch (round) {
	case 1:
		r = kmd_dkg_certs(st, s, in);
		if (r == 0) {
			r = km_ec_dkg_round1(s->dkg, &outmsgs);
		}
		break;
	case 2:
	case 3:
	case 4:
		r = kmd_dkg_get_msgs(st, s, in, &inmsgs);
		if (r == 0) {
			r = (round == 2) ? km_ec_dkg_round2(s->dkg, inmsgs.v,
					       inmsgs.n, &outmsgs) :
			    (round == 3) ? km_ec_dkg_round3(s->dkg, inmsgs.v,
					       inmsgs.n, &outmsgs) :
					   km_ec_dkg_round4(s->dkg, inmsgs.v,
					       inmsgs.n, &outmsgs);
		}
		break;
	case 5:
		r = kmd_dkg_get_msgs(st, s, in, &inmsgs);
		if (r == 0) {
			r = km_ec_dkg_finish(s->dkg, inmsgs.v, inmsgs.n,
			    &shares, &nshares, &pub, &culprit);
		}
		for (i = 0; r == 0 && i < nshares; i++) {
			km_buf enc;
			km_buf_init_secure(&enc);
			r = km_ec_share_encode(s->g, shares[i], &enc);
			if (r == 0) {
				r = kmd_share_store(st, key_id, 1,
				    shares[i]->index, enc.data, enc.len);
			}
			km_buf_free(&enc);
		}
		if (r == 0) {
			r = km_ec_pub_encode(s->g, pub, &pubenc);
		}
		if (r == 0) {
			r = km_buf_put_string(out, pubenc.data, pubenc.len);
		}
		if (r != 0) {
			(void)km_store_share_abort(st->store, key_id, 1);
		}
		break;
	default:
		r = KM_ERR_BAD_FORMAT;
	}
	if (r == 0 && round < 5) {
		r = kmd_dkg_put_msgs(s, &outmsgs, out);
	}
	km_ec_msgs_free(&inmsgs);
	km_ec_msgs_free(&outmsgs);
	km_ec_shares_free(shares, nshares);
	km_ec_pub_free(pub);
	km_buf_free(&pubenc);
	if (r == 0 && round < 5) {
		s->next_round = round + 1;
		pthread_mutex_lock(&st->dkg_lock);
		s->next = st->dkg;
		st->dkg = s;
		pthread_mutex_unlock(&st->dkg_lock);
	} else {
		if (r != 0) {
			km_log_warn_r(r, "KMD-DKG-FAIL",
			    "DKG of %s failed in round %u%s", key_id, round,
			    culprit ? " (a dealer cheated)" : "");
		}
		kmd_dkg_session_free(s);
	}
	return r;
}

int
kmd_do_dkg_round(kmd_state *st, const km_identity *peer,
    const km_req_hdr *h, km_buf *in, km_buf *out, char *msg, size_t msglen)
{
	uint32_t round;
	int r;

	if (km_buf_get_u32(in, &round) != 0 ||
	    (round > 5 && round != KMD_DKG_ABORT) || h->epoch != 1) {
		return kmd_fail(msg, msglen, KM_ERR_BAD_FORMAT,
		    "malformed dkg-round request");
	}
	r = kmd_dkg_step(st, peer, h->key_id, round, in, out);
	if (r != 0) {
		return kmd_fail(msg, msglen, r, "DKG round %u of %s: %s",
		    round, h->key_id, km_strerror(r));
	}
	return 0;
}

/* ---- the coordinator ------------------------------------------------- */

typedef struct kmd_dkg_msgbox {
	uint32_t from, to;
	const uint8_t *body;
	size_t len;
} kmd_dkg_msgbox;

/* Sends one round to one party (directly when it is us). */
static int
kmd_dkg_call(kmd_state *st, const char *party, const char *key_id,
    const km_buf *payload, km_buf *reply, char *why, size_t whylen)
{
	km_identity me;
	km_buf req, view;
	struct km_net_client *c = NULL;
	unsigned i;
	uint32_t round;
	int r;

	if (strcmp(party, st->cfg.name) == 0) {
		memset(&me, 0, sizeof(me));
		snprintf(me.name, sizeof(me.name), "%s", st->cfg.name);
		me.role = KM_ROLE_NODE;
		km_buf_init_view(&view, payload->data, payload->len);
		if (km_buf_get_u32(&view, &round) != 0) {
			return KM_ERR_INTERNAL;
		}
		km_buf_reset(reply);
		r = kmd_dkg_step(st, &me, key_id, round, &view, reply);
		if (r != 0) {
			snprintf(why, whylen, "%s: %s", party, km_strerror(r));
		}
		reply->off = 0;
		return r;
	}
	for (i = 0; i < st->cfg.npeers; i++) {
		if (strcmp(st->cfg.peers[i].name, party) == 0) {
			c = st->peer_clients[i];
		}
	}
	if (c == NULL) {
		snprintf(why, whylen, "%s is not a peer of %s", party,
		    st->cfg.name);
		return KM_ERR_NOT_FOUND;
	}
	km_buf_init(&req);
	r = km_rpc_request(&req, KM_MSG_DKG_ROUND, key_id, 1, NULL);
	r = r ? r : km_buf_put_raw(&req, payload->data, payload->len);
	if (r == 0) {
		char m[256];
		r = km_rpc_call(c, &req, KMD_DKG_TIMEOUT_MS, reply, m,
		    sizeof(m));
		if (r != 0) {
			snprintf(why, whylen, "%s: %s", party, m);
		}
	}
	km_buf_free(&req);
	return r;
}

/* Parses every message of every reply into @box (pointing into them). */
static int
kmd_dkg_collect(km_buf *rep, size_t np, kmd_dkg_msgbox **box, size_t *nbox)
{
	kmd_dkg_msgbox *b = NULL, *nb;
	size_t n = 0, cap = 0, i;
	uint32_t count, j;

	for (i = 0; i < np; i++) {
		km_buf v;
		km_buf_init_view(&v, rep[i].data + rep[i].off,
		    rep[i].len - rep[i].off);
		if (km_buf_get_u32(&v, &count) != 0 ||
		    count > KMD_DKG_MAX_MSGS) {
			free(b);
			return KM_ERR_BAD_FORMAT;
		}
		for (j = 0; j < count; j++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				if ((nb = realloc(b, cap * sizeof(*b))) ==
				    NULL) {
					free(b);
					return KM_ERR_ALLOC;
				}
				b = nb;
			}
			if (km_buf_get_u32(&v, &b[n].from) != 0 ||
			    km_buf_get_u32(&v, &b[n].to) != 0 ||
			    km_buf_get_string_ptr(&v, &b[n].body, &b[n].len,
				KMD_DKG_BODY_MAX) != 0 ||
			    b[n].from != i + 1 || b[n].to > np) {
				/* a party speaks only for itself */
				free(b);
				return KM_ERR_BAD_FORMAT;
			}
			n++;
		}
	}
	free(*box);
	*box = b;
	*nbox = n;
	return 0;
}

static int
kmd_dkg_payload(uint32_t round, size_t party, const kmd_dkg_msgbox *box,
    size_t nbox, km_buf *p)
{
	size_t j, cnt = 0;
	int r;

	km_buf_reset(p);
	for (j = 0; j < nbox; j++) {
		cnt += (box[j].to == 0 || box[j].to == party);
	}
	r = km_buf_put_u32(p, round);
	r = r ? r : km_buf_put_u32(p, (uint32_t)cnt);
	for (j = 0; r == 0 && j < nbox; j++) {
		if (box[j].to != 0 && box[j].to != party) {
			continue;
		}
		r = km_buf_put_u32(p, box[j].from);
		r = r ? r : km_buf_put_u32(p, box[j].to);
		r = r ? r : km_buf_put_string(p, box[j].body, box[j].len);
	}
	return r;
}

int
kmd_dkg_coordinate(kmd_state *st, const km_req_hdr *h, uint32_t key_type,
    uint32_t threshold, size_t nholders, const km_catalog_holder *holders,
    km_buf *out, char *msg, size_t msglen)
{
	const char *names[KMD_DKG_MAX_PARTIES];
	uint32_t owner[KM_CATALOG_MAX_HOLDERS];
	km_buf hello[KMD_DKG_MAX_PARTIES], rep[KMD_DKG_MAX_PARTIES],
	    nrep[KMD_DKG_MAX_PARTIES], payload;
	kmd_dkg_msgbox *box = NULL;
	const uint8_t *pub0 = NULL;
	size_t np = 0, nbox = 0, pub0len = 0, i, j;
	uint32_t round;
	char why[300] = "";
	int r = 0;

	for (i = 0; i < nholders; i++) {
		for (j = 0; j < np; j++) {
			if (strcmp(names[j], holders[i].node) == 0) {
				break;
			}
		}
		if (j == np) {
			if (np == KMD_DKG_MAX_PARTIES) {
				return kmd_fail(msg, msglen,
				    KM_ERR_INVALID_ARG, "too many holders");
			}
			names[np++] = holders[i].node;
		}
		owner[i] = (uint32_t)(j + 1);
	}
	for (i = 0; i < np; i++) {
		km_buf_init(&hello[i]);
		km_buf_init(&rep[i]);
		km_buf_init(&nrep[i]);
	}
	km_buf_init(&payload);
	km_log_info("KMD-DKG-START", "DKG of %s: %u of %zu among %zu node(s)",
	    h->key_id, threshold, nholders, np);

	/* round 0: hello, each party answers with its certificate */
	r = km_buf_put_u32(&payload, 0);
	r = r ? r : km_buf_put_u32(&payload, key_type);
	r = r ? r : km_buf_put_u32(&payload, threshold);
	r = r ? r : km_buf_put_u32(&payload, (uint32_t)nholders);
	r = r ? r : km_buf_put_u32(&payload, (uint32_t)np);
	for (j = 0; r == 0 && j < np; j++) {
		r = km_buf_put_cstring(&payload, names[j]);
	}
	for (j = 0; r == 0 && j < nholders; j++) {
		r = km_buf_put_u32(&payload, owner[j]);
	}
	for (i = 0; r == 0 && i < np; i++) {
		r = kmd_dkg_call(st, names[i], h->key_id, &payload, &hello[i],
		    why, sizeof(why));
	}
	if (r != 0) {
		goto fail;
	}
	/* round 1: every certificate to everyone; each party deals */
	km_buf_reset(&payload);
	r = km_buf_put_u32(&payload, 1);
	for (j = 0; r == 0 && j < np; j++) {
		const uint8_t *p;
		size_t len;
		km_buf v;

		km_buf_init_view(&v, hello[j].data + hello[j].off,
		    hello[j].len - hello[j].off);
		r = km_buf_get_string_ptr(&v, &p, &len, 16384);
		r = r ? r : km_buf_put_string(&payload, p, len);
	}
	for (i = 0; r == 0 && i < np; i++) {
		r = kmd_dkg_call(st, names[i], h->key_id, &payload, &rep[i],
		    why, sizeof(why));
	}
	if (r != 0 || (r = kmd_dkg_collect(rep, np, &box, &nbox)) != 0) {
		goto fail;
	}
	/* rounds 2..5: relay; round 5 answers with the public key */
	for (round = 2; round <= 5; round++) {
		pthread_mutex_lock(&st->lock);
		snprintf(st->keygen_status, sizeof(st->keygen_status),
		    "ec %s: DKG round %u of 5", h->key_id, round);
		pthread_mutex_unlock(&st->lock);
		for (i = 0; i < np; i++) {
			if ((r = kmd_dkg_payload(round, i + 1, box, nbox,
				 &payload)) != 0 ||
			    (r = kmd_dkg_call(st, names[i], h->key_id,
				 &payload, &nrep[i], why, sizeof(why))) != 0) {
				goto fail;
			}
		}
		for (i = 0; i < np; i++) {
			km_buf t = rep[i];
			rep[i] = nrep[i];
			nrep[i] = t;
			km_buf_reset(&nrep[i]);
		}
		if (round < 5 &&
		    (r = kmd_dkg_collect(rep, np, &box, &nbox)) != 0) {
			snprintf(why, sizeof(why), "malformed round %u reply",
			    round);
			goto fail;
		}
	}
	/* every party must have reached the same public key */
	for (i = 0; i < np; i++) {
		const uint8_t *p;
		size_t len;
		km_buf v;

		km_buf_init_view(&v, rep[i].data + rep[i].off,
		    rep[i].len - rep[i].off);
		if (km_buf_get_string_ptr(&v, &p, &len,
			KM_CATALOG_PUBLIC_MAX) != 0) {
			r = KM_ERR_BAD_FORMAT;
			goto fail;
		}
		if (i == 0) {
			pub0 = p;
			pub0len = len;
		} else if (len != pub0len || memcmp(p, pub0, len) != 0) {
			snprintf(why, sizeof(why),
			    "%s and %s reached different public keys",
			    names[0], names[i]);
			r = KM_ERR_VERIFY;
			goto fail;
		}
	}
	r = km_buf_put_string(out, pub0, pub0len);
	km_log_info("KMD-DKG-DONE", "DKG of %s done among %zu node(s)",
	    h->key_id, np);
	goto done;

fail:
	km_log_warn_r(r, "KMD-DKG-FAIL", "DKG of %s: %s", h->key_id, why);
	km_buf_reset(&payload);
	(void)km_buf_put_u32(&payload, KMD_DKG_ABORT);
	for (i = 0; i < np; i++) {
		char w2[64];
		km_buf tmp;
		km_buf_init(&tmp);
		(void)kmd_dkg_call(st, names[i], h->key_id, &payload, &tmp,
		    w2, sizeof(w2));
		km_buf_free(&tmp);
	}
	snprintf(msg, msglen, "key %s not created: DKG failed: %s",
	    h->key_id, why[0] ? why : km_strerror(r));
done:
	pthread_mutex_lock(&st->lock);
	snprintf(st->keygen_status, sizeof(st->keygen_status), "idle");
	pthread_mutex_unlock(&st->lock);
	free(box);
	km_buf_free(&payload);
	for (i = 0; i < np; i++) {
		km_buf_free(&hello[i]);
		km_buf_free(&rep[i]);
		km_buf_free(&nrep[i]);
	}
	return r;
}
