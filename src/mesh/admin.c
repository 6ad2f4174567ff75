#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <p11-kit/pkcs11.h>

#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "mesh/admin.h"
#include "mesh/ops.h"
#include "mesh/rpc.h"
#include "mesh/view.h"
#include "pki/pki.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

#define KM_ADMIN_TIMEOUT_MS 5000
/* A node with no connection gets this long to connect and answer, so a
 * node that is down does not cost every catalog append 5 s twice (the
 * entry still reaches it later, from its peers). */
#define KM_ADMIN_DOWN_TIMEOUT_MS 1500

static int
km_mesh_timeout(km_mesh *m, size_t i)
{
	return km_net_client_connected(km_mesh_client(m, i))
	    ? KM_ADMIN_TIMEOUT_MS
	    : KM_ADMIN_DOWN_TIMEOUT_MS;
}
#define KM_KEYGEN_TIMEOUT_MS (30 * 60 * 1000)
#define KM_RESHARE_TIMEOUT_MS (2 * 60 * 1000)

#define km_fail(err, errlen, r, ...) \
	(snprintf((err), (errlen), __VA_ARGS__), (r))

const char *
km_key_type_name(uint32_t key_type, uint32_t bits, char *buf, size_t len)
{
	switch (key_type) {
	case KM_KEY_RSA:
		snprintf(buf, len, "rsa:%u", bits);
		break;
	case KM_KEY_EC_P256:
		snprintf(buf, len, "ec:p256");
		break;
	case KM_KEY_EC_P384:
		snprintf(buf, len, "ec:p384");
		break;
	default:
		snprintf(buf, len, "type-%u", key_type);
	}
	return buf;
}

int
km_key_type_parse(const char *s, uint32_t *key_type, uint32_t *bits)
{
	if (strcmp(s, "rsa:2048") == 0) {
		*key_type = KM_KEY_RSA;
		*bits = 2048;
	} else if (strcmp(s, "rsa:3072") == 0) {
		*key_type = KM_KEY_RSA;
		*bits = 3072;
	} else if (strcmp(s, "rsa:4096") == 0) {
		*key_type = KM_KEY_RSA;
		*bits = 4096;
	} else if (strcmp(s, "ec:p256") == 0) {
		*key_type = KM_KEY_EC_P256;
		*bits = 256;
	} else if (strcmp(s, "ec:p384") == 0) {
		*key_type = KM_KEY_EC_P384;
		*bits = 384;
	} else {
		return KM_ERR_INVALID_ARG;
	}
	return 0;
}

int
km_mesh_status(km_mesh *m, size_t i, int timeout_ms, km_node_status *st,
    km_key_info **keys, size_t *nkeys)
{
	km_buf req, rep;
	km_key_info *v = NULL;
	uint32_t n = 0, j;
	char *s = NULL;
	int r;

	memset(st, 0, sizeof(*st));
	if (keys != NULL) {
		*keys = NULL;
		*nkeys = 0;
	}
	snprintf(st->name, sizeof(st->name), "%s", km_mesh_name(m, i));
	km_buf_init(&req);
	km_buf_init(&rep);
	if ((r = km_rpc_request(&req, KM_MSG_STATUS, NULL, 0, NULL)) != 0) {
		goto out;
	}
	r = km_rpc_call(km_mesh_client(m, i), &req, timeout_ms, &rep,
	    st->error, sizeof(st->error));
	if (r != 0) {
		goto out;
	}
#define GETS(dst)                                               \
	do {                                                    \
		if (km_buf_get_cstring(&rep, &s, 200) != 0) {   \
			r = KM_ERR_BAD_FORMAT;                  \
			goto out;                               \
		}                                               \
		snprintf((dst), sizeof(dst), "%s", s);          \
		free(s);                                        \
		s = NULL;                                       \
	} while (0)
	GETS(st->name);
	GETS(st->version);
	if (km_buf_get_u64(&rep, &st->uptime_ms) != 0 ||
	    km_buf_get_u64(&rep, &st->catalog_seq) != 0 ||
	    km_buf_get_u64(&rep, &st->shares) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	GETS(st->keygen);
	if (km_buf_get_u32(&rep, &n) != 0 || n > 100000) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	for (j = 0; j < n; j++) {
		GETS(v[j].key_id);
		GETS(v[j].label);
		if (km_buf_get_u32(&rep, &v[j].key_type) != 0 ||
		    km_buf_get_u32(&rep, &v[j].bits) != 0 ||
		    km_buf_get_u32(&rep, &v[j].threshold) != 0 ||
		    km_buf_get_u32(&rep, &v[j].nholders) != 0 ||
		    km_buf_get_u32(&rep, &v[j].epoch) != 0 ||
		    km_buf_get_u32(&rep, &v[j].state) != 0 ||
		    km_buf_get_u32(&rep, &v[j].held) != 0) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
	}
	if (km_buf_remaining(&rep) > 0) {
		GETS(st->raft_role);
		GETS(st->leader);
	}
#undef GETS
	st->up = true;
	if (keys != NULL) {
		*keys = v;
		*nkeys = n;
		v = NULL;
	}
	r = 0;
out:
	if (r == KM_ERR_BAD_FORMAT) {
		snprintf(st->error, sizeof(st->error), "malformed status reply");
	}
	free(s);
	free(v);
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

/* The highest catalog seq any reachable node has applied. */
static int
km_mesh_last_seq(km_mesh *m, uint64_t *last, size_t *reachable)
{
	size_t i;

	*last = 0;
	*reachable = 0;
	for (i = 0; i < km_mesh_count(m); i++) {
		km_buf req, rep;
		uint64_t s = 0;
		uint32_t n;
		char msg[128];

		km_buf_init(&req);
		km_buf_init(&rep);
		if (km_rpc_request(&req, KM_MSG_CATALOG_FETCH, NULL, 0, NULL) ==
			0 &&
		    km_buf_put_u64(&req, UINT64_MAX) == 0 &&
		    km_buf_put_u32(&req, 0) == 0 &&
		    km_rpc_call(km_mesh_client(m, i), &req,
			km_mesh_timeout(m, i), &rep, msg, sizeof(msg)) == 0 &&
		    km_buf_get_u64(&rep, &s) == 0 &&
		    km_buf_get_u32(&rep, &n) == 0) {
			(*reachable)++;
			if (s > *last) {
				*last = s;
			}
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
	return *reachable > 0 ? 0 : KM_ERR_QUORUM;
}

/* A node's answer that is about the entry or its signer, not the race. */
static bool
km_mesh_append_refusal(int r)
{
	return r == KM_ERR_AUTH || r == KM_ERR_VERIFY || r == KM_ERR_REVOKED ||
	    r == KM_ERR_NOT_FOUND || r == KM_ERR_BAD_FORMAT ||
	    r == KM_ERR_INVALID_ARG;
}

int
km_mesh_append(km_mesh *m, const km_catalog_payload *p, size_t *applied,
    char *err, size_t errlen)
{
	return km_mesh_append_as(m, p, NULL, NULL, applied, NULL, err, errlen);
}

int
km_mesh_append_as(km_mesh *m, const km_catalog_payload *p,
    km_mesh_ticket_fn ticket, void *targ, size_t *applied, int *result,
    char *err, size_t errlen)
{
	km_catalog_entry e;
	km_buf payload, tbs, enc;
	const uint8_t *der;
	size_t derlen, reachable = 0, i;
	uint64_t last = 0;
	int r, attempt;

	*applied = 0;
	if (result != NULL) {
		*result = 0;
	}
	km_buf_init(&payload);
	km_buf_init(&tbs);
	km_buf_init(&enc);
	memset(&e, 0, sizeof(e));
	if ((r = km_catalog_payload_encode(p, &payload)) != 0) {
		r = km_fail(err, errlen, r, "invalid catalog entry: %s",
		    km_strerror(r));
		goto out;
	}
	/*
	 * One sequencer: the entry goes first to the first node that
	 * answers, which applies entries one at a time; only an entry it
	 * accepted goes to the others.  Two admins racing for the same
	 * seq therefore cannot leave two nodes with different entries at
	 * that seq: the loser is refused by the sequencer, re-reads the
	 * last seq and signs again.  With the catalog on Raft ([raft] in
	 * keymeshd.conf, docs/raft.md) any node takes the entry and routes
	 * it to the Raft leader; the first node to answer yes had it
	 * committed, and the log orders racing admins the same way
	 * everywhere.  (XXX without [raft], a partition that hides the
	 * sequencer from only one of two racing admins could still fork
	 * the log.)
	 */
	for (attempt = 0; attempt < 20; attempt++) {
		size_t seqr = SIZE_MAX, answered = 0, leaderless = 0;
		int rs = KM_ERR_QUORUM, refused = 0;

		if ((r = km_mesh_last_seq(m, &last, &reachable)) != 0) {
			r = km_fail(err, errlen, r, "no node is reachable");
			goto out;
		}
		km_mesh_cert_der(m, &der, &derlen);
		free(e.sig);
		memset(&e, 0, sizeof(e));
		e.seq = last + 1;
		e.type = p->type;
		e.payload = payload.data;
		e.payload_len = payload.len;
		e.signer = (uint8_t *)der;
		e.signer_len = derlen;
		km_buf_reset(&tbs);
		km_buf_reset(&enc);
		if ((r = km_catalog_entry_tbs(&e, &tbs)) != 0 ||
		    (r = km_pki_sign(km_mesh_key(m), tbs.data, tbs.len, &e.sig,
			 &e.sig_len)) != 0 ||
		    (r = km_catalog_entry_encode(&e, &enc)) != 0) {
			r = km_fail(err, errlen, r, "cannot sign the entry: %s",
			    km_strerror(r));
			goto out;
		}
		*applied = 0;
		for (i = 0; i < km_mesh_count(m); i++) {
			km_buf req, rep;
			char msg[256] = "";
			uint8_t tk[KM_PROTO_TICKET_LEN];
			bool have = ticket != NULL && ticket(targ, i, tk);
			uint32_t outcome = 0;

			km_buf_init(&req);
			km_buf_init(&rep);
			rs = km_rpc_request(&req, KM_MSG_CATALOG_APPEND, NULL, 0,
			    have ? tk : NULL);
			km_secret_wipe(tk, sizeof(tk));
			rs = rs ? rs : km_buf_put_string(&req, enc.data, enc.len);
			rs = rs ? rs :
				  km_rpc_call(km_mesh_client(m, i), &req,
				      km_mesh_timeout(m, i), &rep, msg,
				      sizeof(msg));
			if (rs == 0 && seqr == SIZE_MAX && result != NULL &&
			    km_buf_get_u32(&rep, &outcome) == 0) {
				/* the sequencer's outcome: every node
				 * applies the entry the same way */
				*result = (int)(int32_t)outcome;
			}
			km_buf_free(&req);
			km_buf_free(&rep);
			if (rs == 0) {
				(*applied)++;
			} else {
				snprintf(err, errlen, "%s: %s",
				    km_mesh_name(m, i), msg);
				if (km_mesh_append_refusal(rs)) {
					refused = rs;
				}
			}
			if (rs != KM_ERR_TIMEOUT && rs != KM_ERR_CONN) {
				answered++;
				/* a node on Raft that found no leader */
				leaderless += rs == KM_ERR_QUORUM;
			}
			if (seqr == SIZE_MAX) {
				if (rs == 0) {
					seqr = i; /* the sequencer took it */
				} else if (rs == KM_ERR_STALE) {
					break; /* lost the race: sign again */
				}
				/* unreachable: the next node sequences */
			}
		}
		if (*applied > 0 && seqr != SIZE_MAX) {
			r = 0;
			goto out;
		}
		if (seqr == SIZE_MAX && answered > 0 && leaderless == answered) {
			/* the catalog is on Raft and has no leader: a
			 * majority of its members is down; signing again
			 * does not bring them back */
			r = KM_ERR_QUORUM;
			goto out;
		}
		if (seqr == SIZE_MAX && refused != 0 && rs != KM_ERR_STALE) {
			/* every node that answered said no: signing again
			 * will not change its mind */
			r = refused;
			goto out;
		}
		/* a short random pause, so racing admins do not collide again */
		{
			uint8_t b = 0;
			(void)km_random(&b, 1);
			usleep(1000u * (5u + b % 50u));
		}
	}
	r = KM_ERR_QUORUM;
out:
	/* e.payload and e.signer are borrowed */
	free(e.sig);
	km_buf_free(&payload);
	km_buf_free(&tbs);
	km_buf_free(&enc);
	return r;
}

static int
km_mesh_default_policy(uint32_t key_type, bool allow_raw, km_buf *out)
{
	static const uint32_t rsa[] = { CKM_RSA_PKCS, CKM_RSA_PKCS_PSS,
		CKM_RSA_PKCS_OAEP, CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS,
		CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
		CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224_RSA_PKCS_PSS,
		CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS,
		CKM_SHA512_RSA_PKCS_PSS, CKM_RSA_X_509 };
	static const uint32_t ec[] = { CKM_ECDH1_DERIVE };
	uint32_t mechs[32];
	km_catalog_policy p;
	size_t n, i;

	memset(&p, 0, sizeof(p));
	if (key_type == KM_KEY_RSA) {
		/* raw RSA is a decryption oracle: off unless asked for */
		n = KM_ARRAY_LEN(rsa) - (allow_raw ? 0 : 1);
		for (i = 0; i < n; i++) {
			mechs[i] = rsa[i];
		}
	} else {
		n = KM_ARRAY_LEN(ec);
		for (i = 0; i < n; i++) {
			mechs[i] = ec[i];
		}
	}
	p.nmechs = n;
	p.mechs = mechs;
	return km_catalog_policy_encode(&p, out);
}

/*
 * The nodes a new key is dealt to: those of the admin's configuration that
 * the catalog has not evicted (an evicted node refuses everything but
 * partials, and every member refuses it: docs/eviction.md).  @live
 * receives their indices in the configuration, in order; @left names the
 * evicted ones for the caller's warning ("" when none).
 */
static int
km_mesh_members(km_mesh *m, size_t live[KM_MESH_MAX_NODES], size_t *nlive,
    char *left, size_t leftlen, char *err, size_t errlen)
{
	km_view *v = NULL;
	size_t i, off = 0;
	int r;

	*nlive = 0;
	left[0] = '\0';
	if ((r = km_view_new(m, &v)) != 0
	    || (r = km_view_refresh(v, KM_ADMIN_TIMEOUT_MS, NULL)) != 0) {
		r = km_fail(err, errlen, r,
		    "cannot read the catalog (to leave evicted nodes out): %s",
		    km_strerror(r));
		goto out;
	}
	for (i = 0; i < km_mesh_count(m) && i < KM_MESH_MAX_NODES; i++) {
		if (!km_view_evicted(v, km_mesh_name(m, i))) {
			live[(*nlive)++] = i;
		} else if (off < leftlen) {
			off += (size_t)snprintf(left + off, leftlen - off,
			    "%s%s", off ? ", " : "", km_mesh_name(m, i));
		}
	}
	r = 0;
out:
	km_view_free(v);
	return r;
}

/* The two entries that make a key real: create (pending), activate; the
 * holders are @live (indices into the configuration), numbered 1..n. */
static int
km_mesh_register(km_mesh *m, const size_t *live, size_t nlive,
    const char *key_id, const char *label, uint32_t key_type, uint32_t bits,
    uint32_t threshold, bool allow_raw, const uint8_t *pub, size_t publen,
    char *err, size_t errlen)
{
	km_catalog_holder holders[KM_MESH_MAX_NODES];
	km_catalog_payload p;
	km_buf policy;
	size_t i, applied = 0;
	int r;

	km_buf_init(&policy);
	if ((r = km_mesh_default_policy(key_type, allow_raw, &policy)) != 0) {
		goto out;
	}
	memset(&p, 0, sizeof(p));
	for (i = 0; i < nlive; i++) {
		holders[i].index = (uint32_t)(i + 1);
		snprintf(holders[i].node, sizeof(holders[i].node), "%s",
		    km_mesh_name(m, live[i]));
	}
	p.type = KM_CAT_KEY_CREATE;
	snprintf(p.key_id, sizeof(p.key_id), "%s", key_id);
	snprintf(p.label, sizeof(p.label), "%s", label);
	p.key_type = key_type;
	p.bits = bits;
	p.threshold = threshold;
	p.epoch = 1;
	p.nholders = nlive;
	p.holders = holders;
	p.public_data = (uint8_t *)pub;
	p.public_len = publen;
	p.policy = policy.data;
	p.policy_len = policy.len;
	if ((r = km_mesh_append(m, &p, &applied, err, errlen)) != 0) {
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ACTIVATE;
	snprintf(p.key_id, sizeof(p.key_id), "%s", key_id);
	p.epoch = 1;
	r = km_mesh_append(m, &p, &applied, err, errlen);
out:
	km_buf_free(&policy);
	return r;
}

static int
km_mesh_new_key_id(char *key_id)
{
	uint8_t rnd[8];
	char hex[17];
	int r;

	if ((r = km_random(rnd, sizeof(rnd))) != 0) {
		return r;
	}
	km_hex(rnd, sizeof(rnd), hex);
	snprintf(key_id, KM_NAME_MAX + 1, "k%s", hex);
	return 0;
}

int
km_mesh_key_find(km_mesh *m, const char *label_or_id, km_key_info *key,
    char *err, size_t errlen)
{
	km_node_status st;
	km_key_info *keys = NULL;
	size_t nkeys = 0, i, j;

	for (i = 0; i < km_mesh_count(m); i++) {
		if (km_mesh_status(m, i, KM_ADMIN_TIMEOUT_MS, &st, &keys,
			&nkeys) != 0) {
			continue;
		}
		for (j = 0; j < nkeys; j++) {
			if (keys[j].state == KM_KEY_DESTROYED) {
				continue;
			}
			if (strcmp(keys[j].label, label_or_id) == 0 ||
			    strcmp(keys[j].key_id, label_or_id) == 0) {
				*key = keys[j];
				free(keys);
				return 0;
			}
		}
		free(keys);
		return km_fail(err, errlen, KM_ERR_NOT_FOUND,
		    "no key '%s' in the catalog", label_or_id);
	}
	return km_fail(err, errlen, KM_ERR_QUORUM, "no node is reachable");
}

typedef struct km_call_flag {
	volatile int done;
} km_call_flag;

static void
km_call_done(km_net_call *call, int r, void *arg)
{
	km_call_flag *f = arg;

	(void)call;
	(void)r;
	__atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
}

int
km_mesh_key_create(km_mesh *m, uint32_t key_type, uint32_t bits,
    uint32_t threshold, const char *label, bool allow_raw,
    km_mesh_progress_fn progress, void *arg, char *key_id, char *err,
    size_t errlen)
{
	km_key_info existing;
	km_node_status st;
	km_net_call *call = NULL;
	km_call_flag flag = { 0 };
	km_buf req, view;
	const uint8_t *body, *pub;
	size_t live[KM_MESH_MAX_NODES], nlive = 0;
	size_t len, publen, i, dealer = SIZE_MAX;
	char last[160] = "", e2[256], left[256];
	int r;

	km_buf_init(&req);
	if (!km_name_valid(label)) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "invalid label '%s'", label);
	}
	if (threshold == 0 || threshold > km_mesh_count(m)) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "threshold %u is not in 1..%zu (the mesh's node count)",
		    threshold, km_mesh_count(m));
	}
	if (km_mesh_key_find(m, label, &existing, e2, sizeof(e2)) == 0) {
		return km_fail(err, errlen, KM_ERR_EXISTS,
		    "a key labelled '%s' already exists (%s)", label,
		    existing.key_id);
	}
	if ((r = km_mesh_members(
	         m, live, &nlive, left, sizeof(left), err, errlen))
	    != 0) {
		return r;
	}
	if (threshold > nlive) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "threshold %u is not in 1..%zu (the mesh's nodes less the "
		    "evicted %s)",
		    threshold, nlive, left);
	}
	if (left[0] != '\0' && progress != NULL) {
		snprintf(e2, sizeof(e2),
		    "leaving out the evicted node(s) %s: %zu holders", left,
		    nlive);
		progress(arg, e2);
	}
	for (i = 0; i < nlive && dealer == SIZE_MAX; i++) {
		if (km_mesh_status(
		        m, live[i], KM_ADMIN_TIMEOUT_MS, &st, NULL, NULL)
		    == 0) {
			dealer = live[i];
		}
	}
	if (dealer == SIZE_MAX) {
		return km_fail(err, errlen, KM_ERR_QUORUM,
		    "no node is reachable");
	}
	if ((r = km_mesh_new_key_id(key_id)) != 0
	    || (r = km_rpc_request(&req, KM_MSG_KEY_CREATE, key_id, 1, NULL))
	        != 0
	    || (r = km_buf_put_cstring(&req, label)) != 0
	    || (r = km_buf_put_u32(&req, key_type)) != 0
	    || (r = km_buf_put_u32(&req, bits)) != 0
	    || (r = km_buf_put_u32(&req, threshold)) != 0
	    || (r = km_buf_put_u32(&req, (uint32_t)nlive)) != 0) {
		goto out;
	}
	for (i = 0; i < nlive; i++) {
		if ((r = km_buf_put_u32(&req, (uint32_t)(i + 1))) != 0
		    || (r = km_buf_put_cstring(&req, km_mesh_name(m, live[i])))
		        != 0) {
			goto out;
		}
	}
	if ((r = km_net_call_new(km_mesh_client(m, dealer), &call)) != 0 ||
	    (r = km_net_call_start(call, req.data, req.len,
		 KM_KEYGEN_TIMEOUT_MS, km_call_done, &flag)) != 0) {
		r = km_fail(err, errlen, r, "cannot reach %s: %s",
		    km_mesh_name(m, dealer), km_strerror(r));
		goto out;
	}
	/* show the dealer's progress while it works */
	while (!__atomic_load_n(&flag.done, __ATOMIC_ACQUIRE)) {
		usleep(200 * 1000);
		if (progress != NULL &&
		    km_mesh_status(m, dealer, 2000, &st, NULL, NULL) == 0 &&
		    strcmp(st.keygen, last) != 0 &&
		    strcmp(st.keygen, "idle") != 0) {
			snprintf(last, sizeof(last), "%s", st.keygen);
			progress(arg, last);
		}
	}
	if ((r = km_net_call_wait(call)) != 0) {
		r = km_fail(err, errlen, r, "%s: %s", km_mesh_name(m, dealer),
		    km_strerror(r));
		goto out;
	}
	if ((r = km_net_call_reply(call, &body, &len, NULL)) != 0 ||
	    (r = km_rpc_reply_parse(KM_MSG_KEY_CREATE, body, len, &view, err,
		 errlen)) != 0) {
		goto out;
	}
	if ((r = km_buf_get_string_ptr(&view, &pub, &publen,
		 KM_CATALOG_PUBLIC_MAX)) != 0) {
		r = km_fail(err, errlen, r, "malformed key-create reply");
		goto out;
	}
	if (progress != NULL) {
		progress(arg, "shares stored on every holder; activating");
	}
	r = km_mesh_register(m, live, nlive, key_id, label, key_type, bits,
	    threshold, allow_raw, pub, publen, err, errlen);
out:
	km_net_call_free(call);
	km_buf_free(&req);
	return r;
}

/* Sends one node its shares (admin as dealer, for imports). */
static int
km_mesh_send_share(km_mesh *m, size_t node, const char *key_id,
    uint32_t key_type, const km_buf *pub, uint32_t index, const km_buf *share,
    char *err, size_t errlen)
{
	km_buf req, rep;
	char msg[256];
	int r;

	km_buf_init_secure(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_SHARE_PREPARE, key_id, 1, NULL);
	r = r ? r : km_buf_put_u32(&req, key_type);
	r = r ? r : km_buf_put_string(&req, pub->data, pub->len);
	r = r ? r : km_buf_put_u32(&req, 1);
	r = r ? r : km_buf_put_u32(&req, index);
	r = r ? r : km_buf_put_string(&req, share->data, share->len);
	if (r == 0) {
		r = km_rpc_call(km_mesh_client(m, node), &req,
		    KM_ADMIN_TIMEOUT_MS, &rep, msg, sizeof(msg));
		if (r != 0) {
			snprintf(err, errlen, "%s did not store its share: %s",
			    km_mesh_name(m, node), msg);
		}
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

static void
km_mesh_abort_shares(km_mesh *m, const char *key_id)
{
	size_t i;

	for (i = 0; i < km_mesh_count(m); i++) {
		km_buf req, rep;
		char msg[64];

		km_buf_init(&req);
		km_buf_init(&rep);
		if (km_rpc_request(&req, KM_MSG_SHARE_ABORT, key_id, 1, NULL) ==
		    0) {
			(void)km_rpc_call(km_mesh_client(m, i), &req, 3000,
			    &rep, msg, sizeof(msg));
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
}

int
km_mesh_key_import(km_mesh *m, const uint8_t *data, size_t len,
    uint32_t threshold, const char *label, bool allow_raw, char *key_id,
    char *err, size_t errlen)
{
	size_t live[KM_MESH_MAX_NODES], n = 0, i;
	km_rsa_pub *rpub = NULL;
	km_rsa_share *rshares[KM_MESH_MAX_NODES];
	km_ec_group *g = NULL;
	km_ec_pub *epub = NULL;
	km_ec_share **eshares = NULL;
	km_buf pubenc, share;
	km_key_info existing;
	EVP_PKEY *pkey = NULL;
	BIGNUM *priv = NULL;
	BIO *bio = NULL;
	uint32_t key_type = 0, bits = 0;
	char e2[256], left[256];
	int r;

	memset(rshares, 0, sizeof(rshares));
	km_buf_init(&pubenc);
	km_buf_init_secure(&share);
	if (!km_name_valid(label)) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "invalid label '%s'", label);
	}
	if (threshold == 0 || threshold > km_mesh_count(m)) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "threshold %u is not in 1..%zu", threshold,
		    km_mesh_count(m));
	}
	if (km_mesh_key_find(m, label, &existing, e2, sizeof(e2)) == 0) {
		return km_fail(err, errlen, KM_ERR_EXISTS,
		    "a key labelled '%s' already exists", label);
	}
	if ((r = km_mesh_members(m, live, &n, left, sizeof(left), err, errlen))
	    != 0) {
		return r;
	}
	if (threshold > n) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "threshold %u is not in 1..%zu (the mesh's nodes less the "
		    "evicted %s)",
		    threshold, n, left);
	}
	if (left[0] != '\0') {
		/* XXX: km_mesh_key_import has no progress callback; this is
		 * the CLI's only caller */
		fprintf(stderr,
		    "keymesh: key import: leaving out the evicted node(s) "
		    "%s: %zu holders\n",
		    left, n);
	}
	/* PEM or DER, RSA or EC: let OpenSSL's decoders tell */
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
		return KM_ERR_ALLOC;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (pkey == NULL) {
		const unsigned char *p = data;
		pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
	}
	BIO_free(bio);
	if (pkey == NULL) {
		return km_fail(err, errlen, KM_ERR_BAD_FORMAT,
		    "not a PEM or DER private key");
	}
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		key_type = KM_KEY_RSA;
		bits = (uint32_t)EVP_PKEY_get_bits(pkey);
		if (bits != 2048 && bits != 3072 && bits != 4096) {
			r = km_fail(err, errlen, KM_ERR_NOT_SUPPORTED,
			    "RSA keys of %u bits are not supported "
			    "(2048, 3072, 4096)",
			    bits);
			goto out;
		}
		if ((r = km_rsa_import_pkey(pkey, threshold, (unsigned)n,
			 &rpub, rshares)) != 0 ||
		    (r = km_rsa_pub_encode(rpub, &pubenc)) != 0) {
			r = km_fail(err, errlen, r, "cannot split the key: %s",
			    km_strerror(r));
			goto out;
		}
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		char curve[64];
		size_t cl = 0;
		int nid;

		if (EVP_PKEY_get_utf8_string_param(pkey, "group", curve,
			sizeof(curve), &cl) != 1) {
			r = km_fail(err, errlen, KM_ERR_BAD_FORMAT,
			    "EC key without a named curve");
			goto out;
		}
		if (strcmp(curve, "prime256v1") == 0 ||
		    strcmp(curve, "P-256") == 0) {
			key_type = KM_KEY_EC_P256;
			bits = 256;
			nid = NID_X9_62_prime256v1;
		} else if (strcmp(curve, "secp384r1") == 0 ||
		    strcmp(curve, "P-384") == 0) {
			key_type = KM_KEY_EC_P384;
			bits = 384;
			nid = NID_secp384r1;
		} else {
			r = km_fail(err, errlen, KM_ERR_NOT_SUPPORTED,
			    "curve %s is not supported (P-256, P-384)", curve);
			goto out;
		}
		if (EVP_PKEY_get_bn_param(pkey, "priv", &priv) != 1) {
			r = km_fail(err, errlen, KM_ERR_CRYPTO,
			    "cannot read the EC private key");
			goto out;
		}
		if ((r = km_ec_group_new(nid, &g)) != 0 ||
		    (r = km_ec_dealer_split(g, priv, threshold, (uint32_t)n,
			 &eshares, &epub)) != 0 ||
		    (r = km_ec_pub_encode(g, epub, &pubenc)) != 0) {
			r = km_fail(err, errlen, r, "cannot split the key: %s",
			    km_strerror(r));
			goto out;
		}
	} else {
		r = km_fail(err, errlen, KM_ERR_NOT_SUPPORTED,
		    "only RSA and EC keys can be imported");
		goto out;
	}
	/* the whole key is no longer needed: only shares from here on */
	EVP_PKEY_free(pkey);
	pkey = NULL;
	BN_clear_free(priv);
	priv = NULL;
	if ((r = km_mesh_new_key_id(key_id)) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		km_buf_reset(&share);
		r = (key_type == KM_KEY_RSA) ?
		    km_rsa_share_encode(rpub, rshares[i], &share) :
		    km_ec_share_encode(g, eshares[i], &share);
		if (r == 0) {
			r = km_mesh_send_share(m, live[i], key_id, key_type,
			    &pubenc, (uint32_t)(i + 1), &share, err, errlen);
		}
		if (r != 0) {
			km_mesh_abort_shares(m, key_id);
			goto out;
		}
	}
	r = km_mesh_register(m, live, n, key_id, label, key_type, bits,
	    threshold, allow_raw, pubenc.data, pubenc.len, err, errlen);
out:
	km_buf_free(&share);
	km_buf_free(&pubenc);
	km_rsa_shares_free(rshares, (unsigned)n);
	km_rsa_pub_free(rpub);
	if (eshares != NULL) {
		km_ec_shares_free(eshares, n);
	}
	km_ec_pub_free(epub);
	km_ec_group_free(g);
	BN_clear_free(priv);
	EVP_PKEY_free(pkey);
	return r;
}

int
km_mesh_key_destroy(km_mesh *m, const char *label_or_id, char *err,
    size_t errlen)
{
	km_catalog_payload p;
	km_key_info key;
	size_t applied = 0;
	int r;

	if ((r = km_mesh_key_find(m, label_or_id, &key, err, errlen)) != 0) {
		return r;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_DESTROY;
	snprintf(p.key_id, sizeof(p.key_id), "%s", key.key_id);
	return km_mesh_append(m, &p, &applied, err, errlen);
}

/* Drops the prepared shares of @epoch on every node that answers. */
static void
km_mesh_abort_epoch(km_mesh *m, const char *key_id, uint32_t epoch)
{
	size_t i;

	for (i = 0; i < km_mesh_count(m); i++) {
		km_buf req, rep;
		char msg[128];

		km_buf_init(&req);
		km_buf_init(&rep);
		if (km_rpc_request(&req, KM_MSG_SHARE_ABORT, key_id, epoch,
			NULL) == 0) {
			(void)km_rpc_call(km_mesh_client(m, i), &req,
			    KM_ADMIN_TIMEOUT_MS, &rep, msg, sizeof(msg));
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
}

static int
km_mesh_reshare_entry(km_mesh *m, uint32_t type, const char *key_id,
    uint32_t epoch, uint32_t threshold, const km_catalog_holder *holders,
    size_t nholders, const uint8_t *pub, size_t publen, char *err,
    size_t errlen)
{
	km_catalog_payload p;
	size_t applied = 0;

	memset(&p, 0, sizeof(p));
	p.type = type;
	snprintf(p.key_id, sizeof(p.key_id), "%s", key_id);
	p.epoch = epoch;
	p.threshold = threshold;
	p.nholders = nholders;
	p.holders = (km_catalog_holder *)holders;
	p.public_data = (uint8_t *)pub;
	p.public_len = publen;
	return km_mesh_append(m, &p, &applied, err, errlen);
}

/* A reshare-step request: round 0 (start) or 8 (authorise). */
static int
km_mesh_reshare_req(km_buf *req, uint32_t round, const char *key_id,
    uint32_t epoch, uint32_t threshold, const km_catalog_holder *holders,
    size_t n)
{
	size_t i;
	int r;

	km_buf_reset(req);
	r = km_rpc_request(req, KM_MSG_RESHARE_STEP, key_id, epoch, NULL);
	r = r ? r : km_buf_put_u32(req, round);
	r = r ? r : km_buf_put_u32(req, epoch + 1);
	r = r ? r : km_buf_put_u32(req, threshold);
	r = r ? r : km_buf_put_u32(req, (uint32_t)n);
	for (i = 0; r == 0 && i < n; i++) {
		r = km_buf_put_u32(req, holders[i].index);
		r = r ? r : km_buf_put_cstring(req, holders[i].node);
	}
	return r;
}

/* The catalog's view of a key, fresh, by label or id. */
static int
km_mesh_view_key(km_view *v, const char *label_or_id, const km_view_key **k,
    char *err, size_t errlen)
{
	int r;

	if ((r = km_view_refresh(v, KM_ADMIN_TIMEOUT_MS, NULL)) != 0) {
		return km_fail(err, errlen, r, "cannot read the catalog: %s",
		    km_strerror(r));
	}
	*k = km_view_find(v, label_or_id);
	if (*k == NULL || (*k)->state == KM_KEY_DESTROYED) {
		*k = km_view_find_label(v, label_or_id);
	}
	if (*k == NULL || (*k)->state == KM_KEY_DESTROYED) {
		return km_fail(err, errlen, KM_ERR_NOT_FOUND,
		    "no key '%s' in the catalog", label_or_id);
	}
	return 0;
}

int
km_mesh_key_reshare(km_mesh *m, const char *label_or_id,
    uint32_t new_threshold, const char *const *members, size_t nmembers,
    km_mesh_progress_fn progress, void *arg, uint32_t *new_epoch, char *err,
    size_t errlen)
{
	km_catalog_holder holders[KM_CATALOG_MAX_HOLDERS];
	char key_id[KM_NAME_MAX + 1], line[300];
	const km_view_key *k = NULL;
	km_node_status st;
	km_view *v = NULL;
	km_buf req, rep;
	const uint8_t *pub;
	size_t n = 0, i, j, publen, coord = SIZE_MAX;
	uint32_t epoch, key_type, threshold;
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	if ((r = km_view_new(m, &v)) != 0) {
		r = km_fail(err, errlen, r, "cannot read the catalog: %s",
		    km_strerror(r));
		goto out;
	}
	if ((r = km_mesh_view_key(v, label_or_id, &k, err, errlen)) != 0) {
		goto out;
	}
	if (k->state == KM_KEY_RESHARING) {
		/* an earlier re-share stopped between BEGIN and COMMIT: its
		 * epoch never became current; drop it, then start afresh */
		snprintf(line, sizeof(line),
		    "aborting the interrupted re-share to epoch %u",
		    k->next_epoch);
		if (progress != NULL) {
			progress(arg, line);
		}
		if ((r = km_mesh_reshare_entry(m, KM_CAT_RESHARE_ABORT,
			 k->key_id, k->next_epoch, 0, NULL, 0, NULL, 0, err,
			 errlen)) != 0 ||
		    (r = km_mesh_view_key(v, label_or_id, &k, err, errlen)) !=
			0) {
			goto out;
		}
	}
	if (k->state != KM_KEY_ACTIVE) {
		r = km_fail(err, errlen, KM_ERR_STATE,
		    "key '%s' is not active (state %u)", label_or_id,
		    k->state);
		goto out;
	}
	snprintf(key_id, sizeof(key_id), "%s", k->key_id);
	epoch = k->epoch;
	key_type = k->key_type;
	if (members == NULL) {
		/* the same holders, each index re-dealt where it is now */
		for (i = 1; i <= KM_CATALOG_MAX_HOLDERS && n < k->nholders;
		     i++) {
			for (j = 0; j < k->nholders; j++) {
				if (k->holders[j].index == i) {
					holders[n] = k->holders[j];
					holders[n].index = (uint32_t)(n + 1);
					n++;
				}
			}
		}
	} else {
		if (nmembers == 0 || nmembers > KM_CATALOG_MAX_HOLDERS) {
			r = km_fail(err, errlen, KM_ERR_INVALID_ARG,
			    "a key has 1..%d holders, not %zu",
			    KM_CATALOG_MAX_HOLDERS, nmembers);
			goto out;
		}
		for (i = 0; i < nmembers; i++) {
			if (members[i] == NULL ||
			    km_mesh_find(m, members[i]) < 0) {
				r = km_fail(err, errlen, KM_ERR_INVALID_ARG,
				    "'%s' is not a node of this mesh",
				    members[i] ? members[i] : "");
				goto out;
			}
			holders[n].index = (uint32_t)(n + 1);
			snprintf(holders[n].node, sizeof(holders[n].node),
			    "%s", members[i]);
			n++;
		}
	}
	threshold = new_threshold ? new_threshold : k->threshold;
	if (threshold == 0 || threshold > n) {
		r = km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "threshold %u is not in 1..%zu (the new holder count)",
		    threshold, n);
		goto out;
	}
	if (key_type == KM_KEY_RSA &&
	    (threshold < 2 || n > KM_RSA_MAX_HOLDERS)) {
		r = km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "an RSA key is re-shared to at most %d holders with a "
		    "threshold of at least 2",
		    KM_RSA_MAX_HOLDERS);
		goto out;
	}
	for (i = 0; i < km_mesh_count(m) && coord == SIZE_MAX; i++) {
		if (km_mesh_status(m, i, KM_ADMIN_TIMEOUT_MS, &st, NULL,
			NULL) == 0) {
			coord = i;
		}
	}
	if (coord == SIZE_MAX) {
		r = km_fail(err, errlen, KM_ERR_QUORUM,
		    "no node is reachable");
		goto out;
	}
	if (progress != NULL) {
		snprintf(line, sizeof(line),
		    "%s coordinates: epoch %u -> %u, %u of %zu",
		    km_mesh_name(m, coord), epoch, epoch + 1, threshold, n);
		progress(arg, line);
	}
	/* 1: every daemon learns what the admin decided; a daemon deals or
	 * takes a share only for exactly that (a coordinator cannot change
	 * it).  Nodes that are down will not take part anyway. */
	for (i = 0, j = 0; i < km_mesh_count(m); i++) {
		if ((r = km_mesh_reshare_req(&req, 8, key_id, epoch, threshold,
			 holders, n)) != 0) {
			goto out;
		}
		/* a node that refuses (down, or its catalog lags) and is
		 * needed makes the coordinator's hello fail, with its
		 * reason */
		if (km_rpc_call(km_mesh_client(m, i), &req,
			KM_ADMIN_TIMEOUT_MS, &rep, line, sizeof(line)) == 0) {
			j++;
		}
	}
	if (j == 0) {
		r = km_fail(err, errlen, KM_ERR_QUORUM,
		    "no node accepted the re-share: %s", line);
		goto out;
	}
	/* 2: the daemons re-share; every new holder prepares its shares */
	if ((r = km_mesh_reshare_req(&req, 0, key_id, epoch, threshold,
		 holders, n)) != 0) {
		goto out;
	}
	if ((r = km_rpc_call(km_mesh_client(m, coord), &req,
		 KM_RESHARE_TIMEOUT_MS, &rep, line, sizeof(line))) != 0) {
		r = km_fail(err, errlen, r, "%s", line);
		goto out;
	}
	if ((r = km_buf_get_string_ptr(&rep, &pub, &publen,
		 KM_CATALOG_PUBLIC_MAX)) != 0 ||
	    km_buf_remaining(&rep) != 0) {
		km_mesh_abort_epoch(m, key_id, epoch + 1);
		r = km_fail(err, errlen, KM_ERR_BAD_FORMAT,
		    "malformed re-share reply from %s",
		    km_mesh_name(m, coord));
		goto out;
	}
	if (progress != NULL) {
		progress(arg, "new shares prepared on every new holder; "
			      "committing");
	}
	/* 3: the catalog.  Until COMMIT the old epoch is the current one
	 * everywhere; COMMIT makes the new one current and deletes the old
	 * shares on each holder in one transaction. */
	if ((r = km_mesh_reshare_entry(m, KM_CAT_RESHARE_BEGIN, key_id,
		 epoch + 1, threshold, holders, n, pub, publen, err,
		 errlen)) != 0) {
		km_mesh_abort_epoch(m, key_id, epoch + 1);
		goto out;
	}
	if ((r = km_mesh_reshare_entry(m, KM_CAT_RESHARE_COMMIT, key_id,
		 epoch + 1, 0, NULL, 0, NULL, 0, err, errlen)) != 0) {
		char e2[256];
		(void)km_mesh_reshare_entry(m, KM_CAT_RESHARE_ABORT, key_id,
		    epoch + 1, 0, NULL, 0, NULL, 0, e2, sizeof(e2));
		goto out;
	}
	if (new_epoch != NULL) {
		*new_epoch = epoch + 1;
	}
	r = 0;
out:
	km_view_free(v);
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

int
km_mesh_pin_init(km_mesh *m, const char *partition, uint32_t user,
    const char *pin, size_t *failed, char *err, size_t errlen)
{
	size_t i;

	*failed = 0;
	err[0] = '\0';
	for (i = 0; i < km_mesh_count(m); i++) {
		km_buf req, rep;
		char msg[256];
		int r;

		km_buf_init_secure(&req);
		km_buf_init(&rep);
		if (user == KM_PROTO_USER_USER) {
			/* init-pin: served by every daemon version */
			r = km_rpc_request(&req, KM_MSG_INIT_PIN, NULL, 0,
			    NULL);
			r = r ? r : km_buf_put_cstring(&req, partition);
			r = r ? r : km_buf_put_cstring(&req, pin);
			if (r == 0) {
				r = km_rpc_call(km_mesh_client(m, i), &req,
				    KM_ADMIN_TIMEOUT_MS, &rep, msg,
				    sizeof(msg));
			}
		} else {
			r = km_ops_init_pin(km_mesh_client(m, i), NULL, user,
			    partition, pin, KM_ADMIN_TIMEOUT_MS, msg,
			    sizeof(msg));
		}
		if (r != 0) {
			size_t l = strlen(err);
			(*failed)++;
			snprintf(err + l, errlen - l, "%s%s: %s",
			    l ? "; " : "", km_mesh_name(m, i), msg);
		}
		km_buf_free(&req);
		km_buf_free(&rep);
	}
	return *failed == 0 ? 0 : KM_ERR_QUORUM;
}

/* ---- eviction by an admin (docs/eviction.md) ---------------------------- */

int
km_mesh_node_evict(km_mesh *m, const char *node, const char *reason,
    km_mesh_evict_warn_fn warn, void *arg, char *err, size_t errlen)
{
	km_catalog_payload p;
	km_view *v = NULL;
	size_t applied = 0, i, j, left = 0;
	bool known = false;
	char line[300];
	int r;

	if (!km_name_valid(node)) {
		return km_fail(err, errlen, KM_ERR_INVALID_ARG,
		    "'%s' is not a valid node name", node);
	}
	if (reason == NULL) {
		reason = "";
	}
	for (i = 0; reason[i] != '\0'; i++) {
		if (reason[i] < 0x20 || reason[i] > 0x7e
		    || i >= KM_CATALOG_REASON_MAX) {
			return km_fail(err, errlen, KM_ERR_INVALID_ARG,
			    "the reason must be one line of at most %d "
			    "printable characters",
			    KM_CATALOG_REASON_MAX);
		}
	}
	for (i = 0; i < km_mesh_count(m); i++) {
		known = known || strcmp(km_mesh_name(m, i), node) == 0;
	}
	if (!known) {
		return km_fail(err, errlen, KM_ERR_NOT_FOUND,
		    "'%s' is not a node of this mesh", node);
	}
	if ((r = km_view_new(m, &v)) != 0
	    || (r = km_view_refresh(v, KM_ADMIN_TIMEOUT_MS, NULL)) != 0) {
		r = km_fail(err, errlen, r, "cannot read the catalog: %s",
		    km_strerror(r));
		goto out;
	}
	if (km_view_evicted(v, node)) {
		r = km_fail(err, errlen, KM_ERR_EXISTS,
		    "node %s is evicted already", node);
		goto out;
	}
	for (i = 0; i < km_mesh_count(m); i++) {
		left += strcmp(km_mesh_name(m, i), node) != 0
		    && !km_view_evicted(v, km_mesh_name(m, i));
	}
	if (left < 2) {
		r = km_fail(err, errlen, KM_ERR_STATE,
		    "evicting %s would leave %zu member(s); a mesh needs at "
		    "least 2",
		    node, left);
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_EVICT;
	snprintf(p.node, sizeof(p.node), "%s", node);
	snprintf(p.reason, sizeof(p.reason), "%s",
	    reason[0] != '\0' ? reason : "an admin's decision");
	if ((r = km_mesh_append(m, &p, &applied, err, errlen)) != 0) {
		goto out;
	}
	/* what the coordinator will not be able to re-share */
	for (i = 0; warn != NULL && i < km_view_count(v); i++) {
		const km_view_key *k = km_view_at(v, i);
		size_t keep = 0, drop = 0;

		for (j = 0; j < k->nholders; j++) {
			if (strcmp(k->holders[j].node, node) == 0
			    || km_view_evicted(v, k->holders[j].node)) {
				drop++;
			} else {
				keep++;
			}
		}
		if (drop > 0 && keep < k->threshold) {
			snprintf(line, sizeof(line),
			    "key %s (%s) cannot be re-shared without %s: %zu "
			    "holders left, threshold %u; it stays at epoch %u",
			    k->label, k->key_id, node, keep, k->threshold,
			    k->epoch);
			warn(arg, line);
		}
	}
	r = 0;
out:
	km_view_free(v);
	return r;
}
