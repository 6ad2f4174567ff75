/*
 * Evidence of a bad partial: the format and the check (see evidence.h and
 * docs/evidence.md).
 *
 * The check is deliberately conservative: anything that is not a complete,
 * self-consistent proof of a wrong partial is refused, with one line
 * saying why.  Only the specific "this proof does not hold" result of the
 * proof verifiers counts against a node; any other failure (an input the
 * arithmetic cannot handle, an allocation) proves nothing.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "crypto/ec_ecdh.h"
#include "crypto/ec_group.h"
#include "crypto/rsa.h"
#include "crypto/shamir.h"
#include "net/envelope.h"
#include "pki/pki.h"
#include "proto/proto.h"
#include "trust/evidence.h"
#include "util/err.h"

/* the SHA-256 of the request body that ends a partial reply (mesh/ops.h) */
#define KM_EV_REQ_DIGEST_LEN 32
/* the largest partial encoding a reply may carry (mesh/ops.c) */
#define KM_EV_PARTIAL_MAX 16384

static int km_ev_fail(char *why, size_t whylen, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
km_ev_fail(char *why, size_t whylen, int r, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return r;
}

int
km_evidence_encode(km_buf *out, const uint8_t *req_env, size_t req_len,
    const uint8_t *rep_env, size_t rep_len)
{
	int r;

	if (out == NULL || req_env == NULL || rep_env == NULL || req_len == 0
	    || rep_len == 0) {
		return KM_ERR_INVALID_ARG;
	}
	if (req_len > KM_EVIDENCE_ENV_MAX || rep_len > KM_EVIDENCE_ENV_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_reset(out);
	if ((r = km_buf_put_raw(out, KM_EVIDENCE_MAGIC, 4)) != 0
	    || (r = km_buf_put_u8(out, KM_EVIDENCE_VERSION)) != 0
	    || (r = km_buf_put_string(out, req_env, req_len)) != 0
	    || (r = km_buf_put_string(out, rep_env, rep_len)) != 0) {
		return r;
	}
	return 0;
}

int
km_evidence_parse(const uint8_t *ev, size_t len, const uint8_t **req_env,
    size_t *req_len, const uint8_t **rep_env, size_t *rep_len)
{
	km_buf b;
	uint8_t magic[4], version;

	if (ev == NULL && len > 0) {
		return KM_ERR_INVALID_ARG;
	}
	if (len > KM_EVIDENCE_MAX) {
		return KM_ERR_TOO_LARGE;
	}
	km_buf_init_view(&b, ev, len);
	if (km_buf_get_raw(&b, magic, sizeof(magic)) != 0
	    || memcmp(magic, KM_EVIDENCE_MAGIC, 4) != 0
	    || km_buf_get_u8(&b, &version) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (version != KM_EVIDENCE_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if (km_buf_get_string_ptr(&b, req_env, req_len, KM_EVIDENCE_ENV_MAX)
	        != 0
	    || km_buf_get_string_ptr(&b, rep_env, rep_len, KM_EVIDENCE_ENV_MAX)
	        != 0
	    || km_buf_remaining(&b) != 0 || *req_len == 0 || *rep_len == 0) {
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

/* The input of a partial request: what the node was asked to compute. */
typedef struct km_ev_req {
	km_req_hdr hdr;
	/* rsa-partial */
	const uint8_t *x;
	size_t xlen;
	uint8_t with_proof;
	/* ecdh-partial */
	const uint8_t *point;
	size_t pointlen;
} km_ev_req;

/* Decodes a request body as the daemon does (daemon/partial.c). */
static int
km_ev_req_decode(const uint8_t *body, size_t len, km_ev_req *q)
{
	const km_msg_info *info;
	uint32_t mech, kind, hash, mgf, salt;
	const uint8_t *aux;
	size_t auxlen;
	km_buf b;
	int r;

	memset(q, 0, sizeof(*q));
	km_buf_init_view(&b, body, len);
	if ((r = km_req_decode_hdr(&b, &q->hdr, &info)) != 0) {
		return r;
	}
	switch (q->hdr.type) {
	case KM_MSG_RSA_PARTIAL:
		if (km_buf_get_u32(&b, &mech) != 0
		    || km_buf_get_u32(&b, &kind) != 0
		    || km_buf_get_u32(&b, &hash) != 0
		    || km_buf_get_u32(&b, &mgf) != 0
		    || km_buf_get_u32(&b, &salt) != 0
		    || km_buf_get_string_ptr(&b, &aux, &auxlen, 1024) != 0
		    || km_buf_get_string_ptr(
		           &b, &q->x, &q->xlen, KM_RSA_MAX_BITS / 8)
		        != 0
		    || km_buf_get_u8(&b, &q->with_proof) != 0
		    || km_buf_remaining(&b) != 0 || q->with_proof > 1) {
			return KM_ERR_BAD_FORMAT;
		}
		return 0;
	case KM_MSG_ECDH_PARTIAL:
		if (km_buf_get_u32(&b, &mech) != 0
		    || km_buf_get_string_ptr(&b, &q->point, &q->pointlen, 512)
		        != 0
		    || km_buf_remaining(&b) != 0) {
			return KM_ERR_BAD_FORMAT;
		}
		return 0;
	default:
		return KM_ERR_NOT_SUPPORTED;
	}
}

/* The node that holds @index at the looked-up epoch, or NULL. */
static const char *
km_ev_holder(const km_evidence_key *k, uint32_t index)
{
	size_t i;

	for (i = 0; i < k->nholders && i < KM_EVIDENCE_MAX_HOLDERS; i++) {
		if (k->holders[i].index == index) {
			return k->holders[i].node;
		}
	}
	return NULL;
}

/*
 * Checks every RSA partial of the reply against x with Shoup's proof of
 * correctness (EUROCRYPT 2000, §2.3: log_v v_i = log_{x~} x_i^2 with
 * x~ = x^(4 Delta)).  *@failed gets the first index whose proof fails.
 */
static int
km_ev_check_rsa(const km_ev_req *q, const km_evidence_key *k,
    const km_indexed_blob *v, size_t n, uint32_t *failed, char *why,
    size_t whylen)
{
	km_rsa_pub *pub = NULL;
	km_rsa_partial *part = NULL;
	BIGNUM *x = NULL;
	size_t i;
	int r, vr;

	*failed = 0;
	if (!q->with_proof) {
		return km_ev_fail(why, whylen, KM_ERR_NOT_SUPPORTED,
		    "the request did not ask for proofs: an RSA partial "
		    "without its proof proves nothing");
	}
	if ((r = km_rsa_pub_decode(k->pub.data, k->pub.len, &pub)) != 0) {
		return km_ev_fail(why, whylen, r,
		    "key %s: its public data does not decode here",
		    q->hdr.key_id);
	}
	if (!km_rsa_pub_has_proofs(pub)) {
		r = km_ev_fail(why, whylen, KM_ERR_NOT_SUPPORTED,
		    "key %s has no verification keys (an imported key): its "
		    "partials carry no proof to check",
		    q->hdr.key_id);
		goto out;
	}
	if (q->xlen != (size_t)(km_rsa_pub_bits(pub) + 7) / 8
	    || (x = BN_bin2bn(q->x, (int)q->xlen, NULL)) == NULL
	    || BN_is_zero(x) || BN_cmp(x, km_rsa_pub_modulus(pub)) >= 0) {
		r = km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
		    "the request's input is not a value below the modulus");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = km_rsa_partial_decode(
		         pub, v[i].data, v[i].len, &part))
		    != 0) {
			r = km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
			    "the partial for index %u does not decode",
			    v[i].index);
			goto out;
		}
		if (km_rsa_partial_index(part) != v[i].index) {
			r = km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
			    "the partial listed for index %u names index %u",
			    v[i].index, km_rsa_partial_index(part));
			goto out;
		}
		if (!km_rsa_partial_has_proof(part)) {
			r = km_ev_fail(why, whylen, KM_ERR_NOT_SUPPORTED,
			    "the partial for index %u carries no proof",
			    v[i].index);
			goto out;
		}
		vr = km_rsa_partial_verify(pub, x, part);
		km_rsa_partial_free(part);
		part = NULL;
		if (vr == KM_ERR_VERIFY) {
			if (*failed == 0) {
				*failed = v[i].index;
			}
		} else if (vr != 0) {
			/* e.g. x shares a factor with N: nothing proven */
			r = km_ev_fail(why, whylen, vr,
			    "the proof for index %u cannot be checked: %s",
			    v[i].index, km_strerror(vr));
			goto out;
		}
	}
	r = 0;
out:
	km_rsa_partial_free(part);
	BN_free(x);
	km_rsa_pub_free(pub);
	return r;
}

/*
 * Checks every ECDH partial against the peer point with its Chaum-Pedersen
 * proof (CRYPTO '92: log_G Y_i = log_P Z_i, Fiat-Shamir).
 */
static int
km_ev_check_ecdh(const km_ev_req *q, const km_evidence_key *k,
    const km_indexed_blob *v, size_t n, uint32_t *failed, char *why,
    size_t whylen)
{
	km_ec_group *g = NULL;
	km_ec_pub *pub = NULL;
	km_ec_partial *part = NULL;
	EC_POINT *peer = NULL;
	size_t i;
	int r, vr, nid;

	*failed = 0;
	nid = k->key_type == KM_EVIDENCE_KEY_EC_P256 ? NID_X9_62_prime256v1
	                                             : NID_secp384r1;
	if ((r = km_ec_group_new(nid, &g)) != 0) {
		return km_ev_fail(
		    why, whylen, r, "no curve for key %s", q->hdr.key_id);
	}
	if ((r = km_ec_pub_decode(g, k->pub.data, k->pub.len, &pub)) != 0) {
		r = km_ev_fail(why, whylen, r,
		    "key %s: its public data does not decode here",
		    q->hdr.key_id);
		goto out;
	}
	if ((r = km_ec_point_from_octets(g, q->point, q->pointlen, &peer))
	    != 0) {
		r = km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
		    "the request's peer point is not a point of the key's "
		    "curve");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((r = km_ec_partial_decode(g, v[i].data, v[i].len, &part))
		    != 0) {
			r = km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
			    "the partial for index %u does not decode",
			    v[i].index);
			goto out;
		}
		if (part->index != v[i].index) {
			r = km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
			    "the partial listed for index %u names index %u",
			    v[i].index, part->index);
			goto out;
		}
		vr = km_ecdh_partial_verify(g, pub, peer, part);
		km_ec_partial_free(part);
		part = NULL;
		if (vr == KM_ERR_BAD_PARTIAL) {
			if (*failed == 0) {
				*failed = v[i].index;
			}
		} else if (vr != 0) {
			r = km_ev_fail(why, whylen, vr,
			    "the proof for index %u cannot be checked: %s",
			    v[i].index, km_strerror(vr));
			goto out;
		}
	}
	r = 0;
out:
	km_ec_partial_free(part);
	EC_POINT_free(peer);
	km_ec_pub_free(pub);
	km_ec_group_free(g);
	return r;
}

/* Checks one envelope's certificate and signature; @what for messages. */
static int
km_ev_env_check(X509_STORE *store, const uint8_t *p, size_t len,
    uint8_t want_type, const char *what, km_env *e, km_identity *id, char *why,
    size_t whylen)
{
	int r;

	if ((r = km_env_parse(p, len, KM_EVIDENCE_ENV_MAX, e)) != 0) {
		return km_ev_fail(why, whylen, r,
		    "the %s envelope does not decode: %s", what,
		    km_strerror(r));
	}
	if (e->type != want_type) {
		return km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
		    "the %s envelope has type %u, not %u", what,
		    (unsigned)e->type, (unsigned)want_type);
	}
	r = km_pki_verify_signed(store, e->cert, e->cert_len, KM_ROLE_NONE,
	    e->signed_data, e->signed_len, e->sig, e->sig_len, id);
	if (r != 0) {
		return km_ev_fail(why, whylen, r,
		    "the %s envelope's certificate or signature does not "
		    "verify: %s",
		    what, km_strerror(r));
	}
	return 0;
}

int
km_evidence_verify(const uint8_t *ev, size_t len, X509_STORE *store,
    uint64_t now_ms, km_evidence_lookup_fn lookup, void *arg,
    km_evidence_result *res, char *why, size_t whylen)
{
	const uint8_t *reqp, *repp;
	size_t reql, repl, n, i;
	km_env qe, pe;
	km_identity qid, pid;
	km_ev_req q;
	km_rep_hdr rh;
	km_indexed_blob v[KM_PROTO_MAX_INDICES];
	uint8_t digest[KM_EV_REQ_DIGEST_LEN], want[KM_EV_REQ_DIGEST_LEN];
	km_evidence_key *key = NULL;
	const char *holder;
	uint32_t failed = 0;
	km_buf b;
	int r;

	if (why != NULL && whylen > 0) {
		why[0] = '\0';
	}
	if (store == NULL || lookup == NULL || res == NULL) {
		return km_ev_fail(
		    why, whylen, KM_ERR_INVALID_ARG, "invalid arguments");
	}
	memset(res, 0, sizeof(*res));
	if ((r = km_evidence_parse(ev, len, &reqp, &reql, &repp, &repl))
	    != 0) {
		return km_ev_fail(why, whylen, r, "not an evidence blob: %s",
		    km_strerror(r));
	}
	/* who asked (a client or an admin) and who answered (a node) */
	if ((r = km_ev_env_check(store, reqp, reql, KM_ENV_REQUEST, "request",
	         &qe, &qid, why, whylen))
	    != 0) {
		return r;
	}
	if (qid.role != KM_ROLE_CLIENT && qid.role != KM_ROLE_ADMIN) {
		return km_ev_fail(why, whylen, KM_ERR_AUTH,
		    "the request is signed by %s, a %s, not a client",
		    qid.name, km_role_name(qid.role));
	}
	if ((r = km_ev_env_check(store, repp, repl, KM_ENV_REPLY, "reply", &pe,
	         &pid, why, whylen))
	    != 0) {
		return r;
	}
	if (pid.role != KM_ROLE_NODE) {
		return km_ev_fail(why, whylen, KM_ERR_AUTH,
		    "the reply is signed by %s, a %s, not a node", pid.name,
		    km_role_name(pid.role) ? km_role_name(pid.role) : "peer");
	}
	if (memcmp(qe.nonce, pe.nonce, KM_ENV_NONCE_LEN) != 0) {
		return km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
		    "the reply's nonce is not the request's: not a pair");
	}
	if (qe.ts_ms > now_ms + KM_EVIDENCE_SKEW_MS
	    || pe.ts_ms > now_ms + KM_EVIDENCE_SKEW_MS) {
		return km_ev_fail(why, whylen, KM_ERR_STALE,
		    "the exchange is dated in the future");
	}
	if (now_ms > qe.ts_ms && now_ms - qe.ts_ms > KM_EVIDENCE_MAX_AGE_MS) {
		return km_ev_fail(why, whylen, KM_ERR_STALE,
		    "the exchange is more than %u hours old",
		    KM_EVIDENCE_MAX_AGE_MS / 3600000u);
	}
	/* what was asked */
	if ((r = km_ev_req_decode(qe.body, qe.body_len, &q)) != 0) {
		return km_ev_fail(why, whylen,
		    r == KM_ERR_NOT_SUPPORTED ? KM_ERR_BAD_FORMAT : r,
		    "the request is not a well-formed rsa-partial or "
		    "ecdh-partial request");
	}
	/* what was answered: a success of the same type, bound to it */
	km_buf_init_view(&b, pe.body, pe.body_len);
	if ((r = km_rep_decode_hdr(&b, &rh)) != 0) {
		return km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
		    "the reply body does not decode");
	}
	if (rh.type != q.hdr.type) {
		return km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
		    "the reply's type %u is not the request's %u", rh.type,
		    q.hdr.type);
	}
	if (rh.status != 0) {
		return km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
		    "the reply is a refusal, not a partial");
	}
	if (km_proto_get_blobs(
	        &b, v, KM_PROTO_MAX_INDICES, &n, KM_EV_PARTIAL_MAX)
	        != 0
	    || km_buf_get_raw(&b, digest, sizeof(digest)) != 0
	    || km_buf_remaining(&b) != 0 || n == 0) {
		return km_ev_fail(why, whylen, KM_ERR_BAD_FORMAT,
		    "the reply's partials do not decode");
	}
	if (EVP_Digest(qe.body, qe.body_len, want, NULL, EVP_sha256(), NULL)
	    != 1) {
		return km_ev_fail(
		    why, whylen, KM_ERR_CRYPTO, "SHA-256 failed");
	}
	if (memcmp(want, digest, sizeof(want)) != 0) {
		return km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
		    "the reply answers another request (its request digest "
		    "differs)");
	}
	/* the key at that epoch, and who held which index */
	if ((key = calloc(1, sizeof(*key))) == NULL) {
		return km_ev_fail(why, whylen, KM_ERR_ALLOC, "out of memory");
	}
	km_buf_init(&key->pub);
	if ((r = lookup(arg, q.hdr.key_id, q.hdr.epoch, key)) != 0) {
		r = km_ev_fail(why, whylen, r,
		    "key %s at epoch %u is not known here", q.hdr.key_id,
		    q.hdr.epoch);
		goto out;
	}
	if (key->nholders > KM_EVIDENCE_MAX_HOLDERS || km_buf_failed(&key->pub)
	    || key->pub.len == 0) {
		r = km_ev_fail(why, whylen, KM_ERR_INTERNAL,
		    "the lookup of key %s returned nothing usable",
		    q.hdr.key_id);
		goto out;
	}
	for (i = 0; i < n; i++) {
		holder = km_ev_holder(key, v[i].index);
		if (holder == NULL || strcmp(holder, pid.name) != 0) {
			r = km_ev_fail(why, whylen, KM_ERR_RANGE,
			    "%s does not hold index %u of key %s at epoch %u",
			    pid.name, v[i].index, q.hdr.key_id, q.hdr.epoch);
			goto out;
		}
	}
	if (q.hdr.type == KM_MSG_RSA_PARTIAL) {
		if (key->key_type != KM_EVIDENCE_KEY_RSA) {
			r = km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
			    "key %s is not an RSA key", q.hdr.key_id);
			goto out;
		}
		r = km_ev_check_rsa(&q, key, v, n, &failed, why, whylen);
	} else {
		if (key->key_type != KM_EVIDENCE_KEY_EC_P256
		    && key->key_type != KM_EVIDENCE_KEY_EC_P384) {
			r = km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
			    "key %s is not an EC key", q.hdr.key_id);
			goto out;
		}
		r = km_ev_check_ecdh(&q, key, v, n, &failed, why, whylen);
	}
	if (r != 0) {
		goto out;
	}
	if (failed == 0) {
		r = km_ev_fail(why, whylen, KM_ERR_INVALID_ARG,
		    "every partial's proof holds: %s answered correctly",
		    pid.name);
		goto out;
	}
	snprintf(res->accused, sizeof(res->accused), "%s", pid.name);
	snprintf(res->reporter, sizeof(res->reporter), "%s", qid.name);
	snprintf(res->key_id, sizeof(res->key_id), "%s", q.hdr.key_id);
	res->epoch = q.hdr.epoch;
	res->index = failed;
	res->msg_type = q.hdr.type;
	res->req_ts_ms = qe.ts_ms;
	if (EVP_Digest(ev, len, res->hash, NULL, EVP_sha256(), NULL) != 1) {
		r = km_ev_fail(why, whylen, KM_ERR_CRYPTO, "SHA-256 failed");
		goto out;
	}
	snprintf(res->what, sizeof(res->what), "%s for index %u",
	    q.hdr.type == KM_MSG_RSA_PARTIAL
	        ? "Shoup's proof of correctness fails"
	        : "the Chaum-Pedersen proof fails",
	    failed);
	r = 0;
out:
	if (key != NULL) {
		km_buf_free(&key->pub);
		free(key);
	}
	return r;
}

int
km_evidence_dedupe_key(
    const uint8_t *ev, size_t len, const char *accused, uint8_t out[32])
{
	const uint8_t *req, *rep;
	size_t reqlen, replen;
	uint8_t rh[32];
	km_buf b;
	int r;

	if (ev == NULL || accused == NULL || out == NULL
	    || !km_name_valid(accused)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = km_evidence_parse(ev, len, &req, &reqlen, &rep, &replen))
	    != 0) {
		return r;
	}
	if (EVP_Digest(rep, replen, rh, NULL, EVP_sha256(), NULL) != 1) {
		return KM_ERR_CRYPTO;
	}
	km_buf_init(&b);
	(void)km_buf_put_cstring(&b, KM_EVIDENCE_DEDUPE_CTX);
	(void)km_buf_put_cstring(&b, accused);
	(void)km_buf_put_string(&b, rh, sizeof(rh));
	r = km_buf_failed(&b) ? KM_ERR_ALLOC : 0;
	if (r == 0
	    && EVP_Digest(b.data, b.len, out, NULL, EVP_sha256(), NULL) != 1) {
		r = KM_ERR_CRYPTO;
	}
	km_buf_free(&b);
	return r;
}
