/*
 * Objects and attributes.
 *
 * Two kinds of object live in one table:
 *   - the mesh's keys, from the client's signed view of the catalog
 *     (mesh/view.h): per key a private key object (its operations go to
 *     the holders) and a public key object, both with CKA_ID = the key id
 *     and CKA_LABEL = its label;
 *   - objects the application creates (certificates, public keys, data)
 *     and derived secrets.  XXX: the catalog has no entry type for
 *     certificates and public keys yet, so these stay in this process
 *     (token objects until C_Finalize, session objects until their
 *     session closes).
 * Every object is an attribute list; which attributes are sensitive is
 * decided by km_p11_attr_sensitive(), so C_GetAttributeValue follows
 * PKCS#11 2.40 §5.7 in one place.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "crypto/ec_group.h"
#include "mesh/admin.h"
#include "pkcs11/p11.h"
#include "store/catalog.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

/* ---- attributes ---- */

void
km_p11_attrs_free(km_p11_attr *attrs, size_t n)
{
	size_t i;

	for (i = 0; attrs != NULL && i < n; i++) {
		if (attrs[i].secret) {
			km_secret_free(attrs[i].value, attrs[i].len);
		} else {
			free(attrs[i].value);
		}
	}
	free(attrs);
}

CK_RV
km_p11_attr_set(km_p11_attr **attrs, size_t *n, CK_ATTRIBUTE_TYPE t,
    const void *v, CK_ULONG len, bool secret)
{
	km_p11_attr *a = NULL, *na;
	void *copy;
	size_t i;

	copy = secret ? km_secure_alloc(len ? len : 1) : malloc(len ? len : 1);
	if (copy == NULL) {
		return CKR_HOST_MEMORY;
	}
	if (len > 0) {
		memcpy(copy, v, len);
	}
	for (i = 0; i < *n; i++) {
		if ((*attrs)[i].type == t) {
			a = &(*attrs)[i];
			break;
		}
	}
	if (a == NULL) {
		if ((na = realloc(*attrs, (*n + 1) * sizeof(*na))) == NULL) {
			if (secret) {
				km_secret_free(copy, len ? len : 1);
			} else {
				free(copy);
			}
			return CKR_HOST_MEMORY;
		}
		*attrs = na;
		a = &na[(*n)++];
	} else if (a->secret) {
		km_secret_free(a->value, a->len);
	} else {
		free(a->value);
	}
	a->type = t;
	a->value = copy;
	a->len = len;
	a->secret = secret;
	return CKR_OK;
}

static CK_RV
km_p11_attr_bool_set(km_p11_attr **a, size_t *n, CK_ATTRIBUTE_TYPE t, bool v)
{
	CK_BBOOL b = v ? CK_TRUE : CK_FALSE;

	return km_p11_attr_set(a, n, t, &b, sizeof(b), false);
}

static CK_RV
km_p11_attr_ulong_set(
    km_p11_attr **a, size_t *n, CK_ATTRIBUTE_TYPE t, CK_ULONG v)
{
	return km_p11_attr_set(a, n, t, &v, sizeof(v), false);
}

const km_p11_attr *
km_p11_attr_get(const km_p11_object *o, CK_ATTRIBUTE_TYPE t)
{
	size_t i;

	for (i = 0; i < o->nattrs; i++) {
		if (o->attrs[i].type == t) {
			return &o->attrs[i];
		}
	}
	return NULL;
}

bool
km_p11_attr_bool(const km_p11_object *o, CK_ATTRIBUTE_TYPE t)
{
	const km_p11_attr *a = km_p11_attr_get(o, t);

	return a != NULL && a->len == sizeof(CK_BBOOL)
	    && *(CK_BBOOL *)a->value == CK_TRUE;
}

/* Whether reading @t from @o must give CKR_ATTRIBUTE_SENSITIVE. */
static bool
km_p11_attr_sensitive(const km_p11_object *o, CK_ATTRIBUTE_TYPE t)
{
	switch (o->cls) {
	case CKO_PRIVATE_KEY:
		return t == CKA_PRIVATE_EXPONENT || t == CKA_PRIME_1
		    || t == CKA_PRIME_2 || t == CKA_EXPONENT_1
		    || t == CKA_EXPONENT_2 || t == CKA_COEFFICIENT
		    || t == CKA_VALUE;
	case CKO_SECRET_KEY:
		return t == CKA_VALUE
		    && (km_p11_attr_bool(o, CKA_SENSITIVE)
		        || !km_p11_attr_bool(o, CKA_EXTRACTABLE));
	default:
		return false;
	}
}

/* ---- keys ---- */

void
km_p11_key_unref(km_p11_key *k)
{
	if (k == NULL) {
		return;
	}
	km_p11_lock(km_p11.lock);
	k->refs--;
	if (k->refs > 0) {
		km_p11_unlock(km_p11.lock);
		return;
	}
	km_p11_unlock(km_p11.lock);
	km_rsa_pub_free(k->rsa);
	km_ec_pub_free(k->ec);
	free(k->policy);
	free(k);
}

/* The DER OID of a curve (CKA_EC_PARAMS, namedCurve). */
static int
km_p11_ec_params(int nid, uint8_t *out, size_t max, size_t *len)
{
	ASN1_OBJECT *o = OBJ_nid2obj(nid);
	unsigned char *p = out;
	int n;

	if (o == NULL || (n = i2d_ASN1_OBJECT(o, NULL)) <= 0
	    || (size_t)n > max) {
		return KM_ERR_CRYPTO;
	}
	(void)i2d_ASN1_OBJECT(o, &p);
	*len = (size_t)n;
	return 0;
}

/* An EVP public key from a curve and SEC 1 octets. */
static int
km_p11_ec_pkey(
    const char *curve, const uint8_t *pt, size_t ptlen, EVP_PKEY **out)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL;
	int r = KM_ERR_CRYPTO;

	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)curve, 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, ptlen);
	params[2] = OSSL_PARAM_construct_end();
	*out = NULL;
	/*
	 * WARNING: "EC" by its OID, not by name.  In a process where an
	 * ENGINE supplies the EC methods (the OpenSSL pkcs11 engine loading
	 * keymesh's own module, made the default by openssl's -engine),
	 * EVP_PKEY_CTX_new_from_name("EC") maps the name to a NID and
	 * returns the ENGINE's legacy context, which cannot import from
	 * parameters; the OID (an alias of the provider's EC key manager
	 * that maps to no NID) always fetches the provider.  Without it
	 * every EC key, and every key listed after one, was missing from
	 * the token in such a process.  (RSA: km_rsa_make_pkey_legacy.)
	 */
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "1.2.840.10045.2.1", NULL))
	        != NULL
	    && EVP_PKEY_fromdata_init(ctx) == 1
	    && EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1) {
		r = 0;
	}
	EVP_PKEY_CTX_free(ctx);
	return r;
}

static int
km_p11_rsa_pkey(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
    EVP_PKEY **out)
{
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int r = KM_ERR_CRYPTO;

	*out = NULL;
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL
	    || (be = BN_bin2bn(e, (int)elen, NULL)) == NULL
	    || BN_num_bits(bn) < 512 || BN_is_zero(be)
	    || (b = OSSL_PARAM_BLD_new()) == NULL
	    || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) != 1
	    || OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) != 1
	    || (params = OSSL_PARAM_BLD_to_param(b)) == NULL
	    /* by its OID, for the reason in km_p11_ec_pkey() */
	    || (ctx = EVP_PKEY_CTX_new_from_name(
	            NULL, "1.2.840.113549.1.1.1", NULL))
	        == NULL
	    || EVP_PKEY_fromdata_init(ctx) != 1
	    || EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(bn);
	BN_free(be);
	return r;
}

static int
km_p11_curve_nid(const uint8_t *der, size_t len, int *nid)
{
	const unsigned char *p = der;
	ASN1_OBJECT *o;

	if ((o = d2i_ASN1_OBJECT(NULL, &p, (long)len)) == NULL) {
		return KM_ERR_BAD_FORMAT;
	}
	*nid = OBJ_obj2nid(o);
	ASN1_OBJECT_free(o);
	if (p != der + len) {
		return KM_ERR_BAD_FORMAT;
	}
	return (*nid == NID_X9_62_prime256v1 || *nid == NID_secp384r1)
	    ? 0
	    : KM_ERR_NOT_SUPPORTED;
}

/* Unwraps a DER OCTET STRING (short or long form) around a point. */
static bool
km_p11_unwrap_octets(
    const uint8_t *in, size_t len, const uint8_t **out, size_t *outlen)
{
	size_t hl, n;

	if (len < 2 || in[0] != 0x04) {
		return false;
	}
	if (in[1] < 0x80) {
		hl = 2;
		n = in[1];
	} else if (in[1] == 0x81 && len >= 3) {
		hl = 3;
		n = in[2];
	} else if (in[1] == 0x82 && len >= 4) {
		hl = 4;
		n = ((size_t)in[2] << 8) | in[3];
	} else {
		return false;
	}
	if (hl + n != len) {
		return false;
	}
	*out = in + hl;
	*outlen = n;
	return true;
}

/*
 * A point as PKCS#11 gives it (CKA_EC_POINT, or CKM_ECDH1_DERIVE's public
 * data): raw SEC 1 octets or the same in a DER OCTET STRING.  An
 * uncompressed raw point of 65 bytes starts with 0x04 too, so the raw
 * reading wins when the length fits a point of @plen bytes.
 */
const uint8_t *km_p11_point_octets(
    const uint8_t *in, size_t len, size_t plen, size_t *outlen);
const uint8_t *
km_p11_point_octets(const uint8_t *in, size_t len, size_t plen, size_t *outlen)
{
	const uint8_t *p;
	size_t n;

	if (len == plen && in[0] == 0x04) {
		*outlen = len;
		return in;
	}
	if (km_p11_unwrap_octets(in, len, &p, &n)) {
		*outlen = n;
		return p;
	}
	*outlen = len;
	return in;
}

CK_RV
km_p11_object_pkey(const km_p11_object *o, EVP_PKEY **out, CK_KEY_TYPE *kt)
{
	const km_p11_attr *a, *b;
	const uint8_t *pt;
	size_t ptlen;
	int nid;
	uint8_t oct[200];

	*out = NULL;
	if (o->key != NULL && o->key->rsa != NULL) {
		*out = km_rsa_pub_pkey(o->key->rsa);
		if (*out == NULL || EVP_PKEY_up_ref(*out) != 1) {
			*out = NULL;
			return CKR_GENERAL_ERROR;
		}
		*kt = CKK_RSA;
		return CKR_OK;
	}
	if (o->key != NULL && o->key->ec != NULL) {
		if (o->key->group->plen > sizeof(oct)
		    || km_ec_point_to_octets(o->key->group, o->key->ec->y, oct)
		        != 0
		    || km_p11_ec_pkey(
		           o->key->group->name, oct, o->key->group->plen, out)
		        != 0) {
			return CKR_GENERAL_ERROR;
		}
		*kt = CKK_EC;
		return CKR_OK;
	}
	if (o->cls != CKO_PUBLIC_KEY
	    || (a = km_p11_attr_get(o, CKA_KEY_TYPE)) == NULL) {
		return CKR_KEY_TYPE_INCONSISTENT;
	}
	*kt = *(CK_KEY_TYPE *)a->value;
	if (*kt == CKK_RSA) {
		a = km_p11_attr_get(o, CKA_MODULUS);
		b = km_p11_attr_get(o, CKA_PUBLIC_EXPONENT);
		if (a == NULL || b == NULL
		    || km_p11_rsa_pkey(a->value, a->len, b->value, b->len, out)
		        != 0) {
			return CKR_KEY_TYPE_INCONSISTENT;
		}
		return CKR_OK;
	}
	if (*kt == CKK_EC) {
		a = km_p11_attr_get(o, CKA_EC_PARAMS);
		b = km_p11_attr_get(o, CKA_EC_POINT);
		if (a == NULL || b == NULL
		    || km_p11_curve_nid(a->value, a->len, &nid) != 0
		    || b->len == 0) {
			return CKR_KEY_TYPE_INCONSISTENT;
		}
		pt = km_p11_point_octets(
		    b->value, b->len, nid == NID_secp384r1 ? 97 : 65, &ptlen);
		if (km_p11_ec_pkey(OBJ_nid2sn(nid), pt, ptlen, out) != 0) {
			return CKR_KEY_TYPE_INCONSISTENT;
		}
		return CKR_OK;
	}
	return CKR_KEY_TYPE_INCONSISTENT;
}

/* ---- the object table ---- */

static void
km_p11_object_free(km_p11_object *o)
{
	if (o == NULL) {
		return;
	}
	km_p11_attrs_free(o->attrs, o->nattrs);
	if (o->key != NULL) {
		/* under the module lock: the reference count is ours */
		if (--o->key->refs == 0) {
			km_rsa_pub_free(o->key->rsa);
			km_ec_pub_free(o->key->ec);
			free(o->key->policy);
			free(o->key);
		}
	}
	free(o);
}

/* Under the module lock. */
static CK_RV
km_p11_table_add(km_p11_object *o)
{
	km_p11_object **v;

	if (km_p11.nobjects == km_p11.objects_cap) {
		size_t cap = km_p11.objects_cap ? 2 * km_p11.objects_cap : 32;

		if ((v = realloc(km_p11.objects, cap * sizeof(*v))) == NULL) {
			return CKR_HOST_MEMORY;
		}
		km_p11.objects = v;
		km_p11.objects_cap = cap;
	}
	o->handle = km_p11.next_object++;
	km_p11.objects[km_p11.nobjects++] = o;
	return CKR_OK;
}

/* Under the module lock. */
static void
km_p11_table_remove(size_t i)
{
	km_p11_object *o = km_p11.objects[i];

	memmove(&km_p11.objects[i], &km_p11.objects[i + 1],
	    (km_p11.nobjects - i - 1) * sizeof(*km_p11.objects));
	km_p11.nobjects--;
	km_p11_object_free(o);
}

void
km_p11_objects_free(void)
{
	size_t i;

	for (i = 0; i < km_p11.nobjects; i++) {
		km_p11_object_free(km_p11.objects[i]);
	}
	free(km_p11.objects);
	km_p11.objects = NULL;
	km_p11.nobjects = km_p11.objects_cap = 0;
}

void
km_p11_objects_drop_children(void)
{
	size_t i = 0;

	/* session objects belonged to the parent's sessions */
	while (i < km_p11.nobjects) {
		if (km_p11.objects[i]->session != 0) {
			km_p11_table_remove(i);
		} else {
			i++;
		}
	}
}

void
km_p11_objects_drop_session(CK_SESSION_HANDLE h)
{
	size_t i = 0;

	while (i < km_p11.nobjects) {
		if (km_p11.objects[i]->session == h) {
			km_p11_table_remove(i);
		} else {
			i++;
		}
	}
}

km_p11_object *
km_p11_object_find(CK_OBJECT_HANDLE h)
{
	size_t i;

	for (i = 0; i < km_p11.nobjects; i++) {
		if (km_p11.objects[i]->handle == h) {
			return km_p11.objects[i];
		}
	}
	return NULL;
}

bool
km_p11_object_visible(const km_p11_object *o)
{
	return !o->is_private || km_p11.logged_in;
}

CK_RV
km_p11_object_add(CK_SESSION_HANDLE session, CK_OBJECT_CLASS cls,
    bool is_private, km_p11_attr *attrs, size_t nattrs, CK_OBJECT_HANDLE *out)
{
	km_p11_object *o;
	CK_RV rv;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		km_p11_attrs_free(attrs, nattrs);
		return CKR_HOST_MEMORY;
	}
	o->cls = cls;
	o->session = session;
	o->is_private = is_private;
	o->attrs = attrs;
	o->nattrs = nattrs;
	km_p11_lock(km_p11.lock);
	if ((rv = km_p11_table_add(o)) == CKR_OK) {
		*out = o->handle;
		o = NULL;
	}
	km_p11_unlock(km_p11.lock);
	km_p11_object_free(o);
	return rv;
}

/* ---- mesh keys from the view ---- */

static int
km_p11_key_from_view(const km_view_key *vk, km_p11_key **out)
{
	km_p11_key *k;
	km_catalog_policy pol;
	size_t i;
	long node;
	int r;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		return KM_ERR_ALLOC;
	}
	k->refs = 1;
	snprintf(k->key_id, sizeof(k->key_id), "%s", vk->key_id);
	snprintf(k->label, sizeof(k->label), "%s", vk->label);
	k->key_type = vk->key_type;
	k->bits = vk->bits;
	k->threshold = vk->threshold;
	k->epoch = vk->epoch;
	k->nholders = vk->nholders;
	k->updated_seq = vk->updated_seq;
	if (vk->has_app_id && vk->app_id_len <= sizeof(k->app_id)) {
		memcpy(k->app_id, vk->app_id, vk->app_id_len);
		k->app_id_len = vk->app_id_len;
	}
	for (i = 0; i < vk->nholders && i < KM_CATALOG_MAX_HOLDERS; i++) {
		k->index[i] = vk->holders[i].index;
		node = km_mesh_find(km_p11.mesh, vk->holders[i].node);
		k->node[i] = (int)node;
	}
	switch (vk->key_type) {
	case KM_KEY_RSA:
		r = km_rsa_pub_decode(
		    vk->public_data, vk->public_len, &k->rsa);
		break;
	case KM_KEY_EC_P256:
	case KM_KEY_EC_P384:
		k->group = vk->key_type == KM_KEY_EC_P256 ? km_p11.p256
		                                          : km_p11.p384;
		r = km_ec_pub_decode(
		    k->group, vk->public_data, vk->public_len, &k->ec);
		break;
	default:
		r = KM_ERR_NOT_SUPPORTED;
		break;
	}
	if (r != 0) {
		goto out;
	}
	if (vk->policy_len > 0) {
		memset(&pol, 0, sizeof(pol));
		if (km_catalog_policy_decode(vk->policy, vk->policy_len, &pol)
		    != 0) {
			r = KM_ERR_BAD_FORMAT;
			goto out;
		}
		/* what the daemons will allow this client: shown as
		 * CKA_ALLOWED_MECHANISMS and checked at *Init */
		k->has_policy = true;
		for (i = 0; i < pol.nmechs
		     && k->nallowed
		         < sizeof(k->allowed) / sizeof(k->allowed[0]);
		     i++) {
			if (km_catalog_policy_allows(
			        &pol, pol.mechs[i], km_p11.client_name)) {
				k->allowed[k->nallowed++] = pol.mechs[i];
			}
		}
		km_catalog_policy_free(&pol);
		if ((k->policy = malloc(vk->policy_len)) == NULL) {
			r = KM_ERR_ALLOC;
			goto out;
		}
		memcpy(k->policy, vk->policy, vk->policy_len);
		k->policy_len = vk->policy_len;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	if (k != NULL) {
		km_rsa_pub_free(k->rsa);
		km_ec_pub_free(k->ec);
		free(k->policy);
		free(k);
	}
	return r;
}

bool
km_p11_key_allows(const km_p11_key *k, CK_MECHANISM_TYPE mech)
{
	size_t i;

	if (!k->has_policy) {
		return true;
	}
	for (i = 0; i < k->nallowed; i++) {
		if (k->allowed[i] == mech) {
			return true;
		}
	}
	return false;
}

/* BIGNUM -> attribute (big-endian, minimal). */
static CK_RV
km_p11_attr_bn(
    km_p11_attr **a, size_t *n, CK_ATTRIBUTE_TYPE t, const BIGNUM *bn)
{
	uint8_t buf[KM_RSA_MAX_BITS / 8];
	int len = BN_num_bytes(bn);

	if (len <= 0 || (size_t)len > sizeof(buf)
	    || BN_bn2bin(bn, buf) != len) {
		return CKR_GENERAL_ERROR;
	}
	return km_p11_attr_set(a, n, t, buf, (CK_ULONG)len, false);
}

/* The attribute lists of a mesh key's two objects. */
/*
 * The SubjectPublicKeyInfo (RFC 5480) of an EC public key, built with
 * OpenSSL's ASN.1 types rather than i2d_PUBKEY(): that goes through the
 * provider encoders, 0.75 M instructions a key, half of a 1,000-key view
 * sync (callgrind, docs/performance.md).  @der is OPENSSL_free'd.
 */
static int
km_p11_ec_spki(int nid, const uint8_t *pt, size_t ptlen, uint8_t **der)
{
	X509_PUBKEY *xp = NULL;
	unsigned char *copy = NULL;
	int len = -1;

	*der = NULL;
	if (ptlen == 0 || ptlen > INT32_MAX ||
	    (xp = X509_PUBKEY_new()) == NULL ||
	    (copy = OPENSSL_memdup(pt, ptlen)) == NULL) {
		goto out;
	}
	if (X509_PUBKEY_set0_param(xp, OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
		V_ASN1_OBJECT, OBJ_nid2obj(nid), copy, (int)ptlen) != 1) {
		goto out;
	}
	copy = NULL; /* owned by xp */
	len = i2d_X509_PUBKEY(xp, der);
out:
	OPENSSL_free(copy);
	X509_PUBKEY_free(xp);
	return len;
}

static CK_RV
km_p11_key_attrs(
    const km_p11_key *k, CK_OBJECT_CLASS cls, km_p11_attr **out, size_t *nout)
{
	km_p11_attr *a = NULL;
	size_t n = 0;
	bool priv = cls == CKO_PRIVATE_KEY, rsa = k->rsa != NULL;
	CK_KEY_TYPE kt = rsa ? CKK_RSA : CKK_EC;
	EVP_PKEY *pk = NULL;
	BIGNUM *e = NULL;
	uint8_t params[32], pt[200], der[1 + 3 + 200], *spki = NULL, *p;
	uint8_t *ecspki = NULL;
	size_t plen, dlen;
	int slen = 0;
	CK_RV rv = CKR_GENERAL_ERROR;

	rv = km_p11_attr_ulong_set(&a, &n, CKA_CLASS, cls);
	rv = rv ? rv : km_p11_attr_ulong_set(&a, &n, CKA_KEY_TYPE, kt);
	if (k->app_id_len > 0) {
		/* the application's CKA_ID (KEY_ATTRS in the catalog) */
		rv = rv ? rv
		        : km_p11_attr_set(&a, &n, CKA_ID, k->app_id,
		            (CK_ULONG)k->app_id_len, false);
	} else {
		rv = rv ? rv
		        : km_p11_attr_set(&a, &n, CKA_ID, k->key_id,
		            (CK_ULONG)strlen(k->key_id), false);
	}
	rv = rv ? rv
	        : km_p11_attr_set(&a, &n, CKA_LABEL, k->label,
	            (CK_ULONG)strlen(k->label), false);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_TOKEN, true);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_PRIVATE, priv);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_MODIFIABLE, false);
	/* a session copy refers to the same mesh key (C_CopyObject) */
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_COPYABLE, true);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_DESTROYABLE, priv);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_LOCAL, true);
	rv = rv ? rv
	        : km_p11_attr_ulong_set(&a, &n, CKA_KEY_GEN_MECHANISM,
	            rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN);
	rv = rv ? rv : km_p11_attr_set(&a, &n, CKA_START_DATE, "", 0, false);
	rv = rv ? rv : km_p11_attr_set(&a, &n, CKA_END_DATE, "", 0, false);
	rv = rv ? rv : km_p11_attr_set(&a, &n, CKA_SUBJECT, "", 0, false);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_DERIVE, priv && !rsa);
	if (priv) {
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_SENSITIVE, 1);
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_DECRYPT, rsa);
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_SIGN, rsa);
		rv = rv ? rv
		        : km_p11_attr_bool_set(&a, &n, CKA_SIGN_RECOVER, 0);
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_UNWRAP, 0);
		rv = rv ? rv
		        : km_p11_attr_bool_set(&a, &n, CKA_EXTRACTABLE, 0);
		rv = rv
		    ? rv
		    : km_p11_attr_bool_set(&a, &n, CKA_ALWAYS_SENSITIVE, 1);
		rv = rv
		    ? rv
		    : km_p11_attr_bool_set(&a, &n, CKA_NEVER_EXTRACTABLE, 1);
		rv = rv
		    ? rv
		    : km_p11_attr_bool_set(&a, &n, CKA_WRAP_WITH_TRUSTED, 0);
		rv = rv
		    ? rv
		    : km_p11_attr_bool_set(&a, &n, CKA_ALWAYS_AUTHENTICATE, 0);
		if (rv == CKR_OK && k->has_policy) {
			rv = km_p11_attr_set(&a, &n, CKA_ALLOWED_MECHANISMS,
			    k->allowed,
			    (CK_ULONG)(k->nallowed * sizeof(k->allowed[0])),
			    false);
		}
	} else {
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_ENCRYPT, rsa);
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_VERIFY, rsa);
		rv = rv ? rv
		        : km_p11_attr_bool_set(&a, &n, CKA_VERIFY_RECOVER, 0);
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_WRAP, 0);
		rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_TRUSTED, 0);
	}
	if (rv != CKR_OK) {
		goto out;
	}
	rv = CKR_GENERAL_ERROR;
	if (rsa) {
		pk = km_rsa_pub_pkey(k->rsa);
		if (pk == NULL
		    || EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e)
		        != 1
		    || km_p11_attr_bn(
		           &a, &n, CKA_MODULUS, km_rsa_pub_modulus(k->rsa))
		        != CKR_OK
		    || km_p11_attr_bn(&a, &n, CKA_PUBLIC_EXPONENT, e) != CKR_OK
		    || (!priv
		        && km_p11_attr_ulong_set(&a, &n, CKA_MODULUS_BITS,
		               (CK_ULONG)km_rsa_pub_bits(k->rsa))
		            != CKR_OK)) {
			goto out;
		}
		pk = NULL; /* borrowed */
		if ((pk = km_rsa_pub_pkey(k->rsa)) != NULL
		    && EVP_PKEY_up_ref(pk) != 1) {
			pk = NULL;
			goto out;
		}
	} else {
		if (km_p11_ec_params(
		        k->group->nid, params, sizeof(params), &plen)
		        != 0
		    || km_p11_attr_set(&a, &n, CKA_EC_PARAMS, params,
		           (CK_ULONG)plen, false)
		        != CKR_OK
		    || k->group->plen > sizeof(pt)
		    || km_ec_point_to_octets(k->group, k->ec->y, pt) != 0
		    || (slen = km_p11_ec_spki(
		            k->group->nid, pt, k->group->plen, &ecspki))
		        <= 0) {
			goto out;
		}
		if (!priv) {
			/* DER OCTET STRING of the uncompressed point */
			dlen = 0;
			der[dlen++] = 0x04;
			if (k->group->plen >= 0x80) {
				der[dlen++] = 0x81;
			}
			der[dlen++] = (uint8_t)k->group->plen;
			memcpy(der + dlen, pt, k->group->plen);
			dlen += k->group->plen;
			if (km_p11_attr_set(&a, &n, CKA_EC_POINT, der,
			        (CK_ULONG)dlen, false)
			    != CKR_OK) {
				goto out;
			}
		}
	}
	/* CKA_PUBLIC_KEY_INFO: the SubjectPublicKeyInfo (PKCS#11 2.40) */
	if (ecspki != NULL) {
		if (km_p11_attr_set(&a, &n, CKA_PUBLIC_KEY_INFO, ecspki,
		        (CK_ULONG)slen, false)
		    != CKR_OK) {
			goto out;
		}
	} else if ((slen = i2d_PUBKEY(pk, NULL)) > 0
	    && (spki = malloc((size_t)slen)) != NULL) {
		p = spki;
		(void)i2d_PUBKEY(pk, &p);
		if (km_p11_attr_set(&a, &n, CKA_PUBLIC_KEY_INFO, spki,
		        (CK_ULONG)slen, false)
		    != CKR_OK) {
			goto out;
		}
	}
	*out = a;
	*nout = n;
	a = NULL;
	rv = CKR_OK;
out:
	free(spki);
	OPENSSL_free(ecspki);
	EVP_PKEY_free(pk);
	BN_free(e);
	km_p11_attrs_free(a, n);
	return rv;
}

/* Under the module lock: (re)makes the objects of one mesh key. */
static CK_RV
km_p11_key_objects(km_p11_key *k)
{
	static const CK_OBJECT_CLASS cls[2]
	    = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
	km_p11_object *o;
	km_p11_attr *a;
	size_t i, j, n;
	CK_RV rv;

	for (j = 0; j < 2; j++) {
		o = NULL;
		for (i = 0; i < km_p11.nobjects; i++) {
			km_p11_object *x = km_p11.objects[i];

			if (x->from_mesh && x->cls == cls[j]
			    && strcmp(x->key->key_id, k->key_id) == 0) {
				o = x;
				break;
			}
		}
		if (o != NULL && o->key->epoch == k->epoch
		    && o->key->updated_seq == k->updated_seq
		    && strcmp(o->key->label, k->label) == 0) {
			o->seen = true;
			continue;
		}
		if ((rv = km_p11_key_attrs(k, cls[j], &a, &n)) != CKR_OK) {
			return rv;
		}
		if (o == NULL) {
			if ((o = calloc(1, sizeof(*o))) == NULL) {
				km_p11_attrs_free(a, n);
				return CKR_HOST_MEMORY;
			}
			o->cls = cls[j];
			o->from_mesh = true;
			o->is_private = cls[j] == CKO_PRIVATE_KEY;
			if ((rv = km_p11_table_add(o)) != CKR_OK) {
				km_p11_attrs_free(a, n);
				free(o);
				return rv;
			}
		} else {
			/* a new epoch or label: same handle, new data */
			km_p11_attrs_free(o->attrs, o->nattrs);
			if (--o->key->refs == 0) {
				km_rsa_pub_free(o->key->rsa);
				km_ec_pub_free(o->key->ec);
				free(o->key->policy);
				free(o->key);
			}
		}
		o->attrs = a;
		o->nattrs = n;
		o->key = k;
		k->refs++;
		o->seen = true;
	}
	return CKR_OK;
}

/* ---- objects in the catalog (OBJECT_PUT, OBJECT_DELETE) ---- */

/*
 * A token object (certificate, public key, data) is one OBJECT_PUT entry:
 * CKA_ID, CKA_LABEL, CKA_PRIVATE and the value (CKA_VALUE, or for a public
 * key its SubjectPublicKeyInfo) in their own fields, every other attribute
 * in the entry's attribute list.  CK_ULONG attributes are stored as 8-byte
 * big-endian numbers, so a module on another platform reads them back.
 */
static bool
km_p11_attr_is_ulong(CK_ATTRIBUTE_TYPE t)
{
	switch (t) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
	case CKA_CERTIFICATE_TYPE:
	case CKA_CERTIFICATE_CATEGORY:
	case CKA_JAVA_MIDP_SECURITY_DOMAIN:
	case CKA_NAME_HASH_ALGORITHM:
	case CKA_KEY_GEN_MECHANISM:
	case CKA_MODULUS_BITS:
	case CKA_VALUE_LEN:
	case CKA_VALUE_BITS:
	case CKA_PRIME_BITS:
	case CKA_SUB_PRIME_BITS:
	case CKA_MECHANISM_TYPE:
		return true;
	default:
		return false;
	}
}

static uint32_t
km_p11_obj_class(CK_OBJECT_CLASS cls)
{
	switch (cls) {
	case CKO_CERTIFICATE:
		return KM_OBJ_CERTIFICATE;
	case CKO_PUBLIC_KEY:
		return KM_OBJ_PUBLIC_KEY;
	case CKO_DATA:
		return KM_OBJ_DATA;
	default:
		return 0;
	}
}

/* The attribute a class keeps in the entry's value field. */
static CK_ATTRIBUTE_TYPE
km_p11_obj_value_type(CK_OBJECT_CLASS cls)
{
	return cls == CKO_PUBLIC_KEY ? CKA_PUBLIC_KEY_INFO : CKA_VALUE;
}

static bool
km_p11_obj_own_field(CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE t)
{
	return t == CKA_CLASS || t == CKA_TOKEN || t == CKA_PRIVATE
	    || t == CKA_ID || t == CKA_LABEL
	    || t == km_p11_obj_value_type(cls);
}

static int
km_p11_cat_attr_cmp(const void *a, const void *b)
{
	const km_catalog_attr *x = a, *y = b;

	return x->type < y->type ? -1 : x->type > y->type;
}

/*
 * The OBJECT_PUT payload of an object.  @p points into @a, @attrs and
 * @value, which must outlive it.
 */
static CK_RV
km_p11_object_payload(const char *object_id, CK_OBJECT_CLASS cls, bool priv,
    const km_p11_attr *a, size_t na, km_catalog_payload *p, km_buf *attrs,
    km_buf *value)
{
	km_catalog_attr *ca = NULL;
	uint8_t(*ul)[8] = NULL;
	km_p11_object probe;
	EVP_PKEY *pk = NULL;
	CK_KEY_TYPE kt;
	uint8_t *der = NULL;
	size_t i, n = 0;
	CK_ULONG v;
	int r, j, len;
	CK_RV rv;

	memset(p, 0, sizeof(*p));
	p->type = KM_CAT_OBJECT_PUT;
	snprintf(p->object_id, sizeof(p->object_id), "%s", object_id);
	snprintf(
	    p->partition, sizeof(p->partition), "%s", km_p11.conf.partition);
	if ((p->obj_class = km_p11_obj_class(cls)) == 0) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	p->obj_flags = priv ? KM_OBJ_FLAG_PRIVATE : 0;
	if ((ca = calloc(na > 0 ? na : 1, sizeof(*ca))) == NULL
	    || (ul = calloc(na > 0 ? na : 1, sizeof(*ul))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (i = 0; i < na; i++) {
		if (a[i].type == CKA_ID) {
			p->app_id = a[i].value;
			p->app_id_len = a[i].len;
		} else if (a[i].type == CKA_LABEL) {
			p->obj_label = a[i].value;
			p->obj_label_len = a[i].len;
		} else if (a[i].type == CKA_VALUE && cls != CKO_PUBLIC_KEY) {
			if (km_buf_put_raw(value, a[i].value, a[i].len) != 0) {
				rv = CKR_HOST_MEMORY;
				goto out;
			}
		}
		if (km_p11_obj_own_field(cls, a[i].type)) {
			continue;
		}
		if (a[i].type > UINT32_MAX) {
			rv = CKR_ATTRIBUTE_TYPE_INVALID;
			goto out;
		}
		ca[n].type = (uint32_t)a[i].type;
		ca[n].value = a[i].value;
		ca[n].len = a[i].len;
		if (km_p11_attr_is_ulong(a[i].type)
		    && a[i].len == sizeof(CK_ULONG)) {
			memcpy(&v, a[i].value, sizeof(v));
			for (j = 7; j >= 0; j--) {
				ul[n][j] = (uint8_t)(v & 0xff);
				v = (CK_ULONG)((uint64_t)v >> 8);
			}
			ca[n].value = ul[n];
			ca[n].len = 8;
		}
		n++;
	}
	if (p->app_id_len > KM_CATALOG_APP_ID_MAX
	    || p->obj_label_len > KM_CATALOG_OBJ_LABEL_MAX) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if (n > KM_CATALOG_ATTRS_MAX_ITEMS) {
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	if (cls == CKO_PUBLIC_KEY) {
		/* the value is the key itself, as SubjectPublicKeyInfo */
		memset(&probe, 0, sizeof(probe));
		probe.cls = cls;
		probe.attrs = (km_p11_attr *)a;
		probe.nattrs = na;
		if (km_p11_object_pkey(&probe, &pk, &kt) != CKR_OK
		    || (len = i2d_PUBKEY(pk, &der)) <= 0
		    || km_buf_put_raw(value, der, (size_t)len) != 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
	}
	qsort(ca, n, sizeof(*ca), km_p11_cat_attr_cmp);
	if ((r = km_catalog_attrs_encode(ca, n, attrs)) != 0) {
		rv = r == KM_ERR_ALLOC ? CKR_HOST_MEMORY
		                       : CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if (value->len > KM_CATALOG_VALUE_MAX
	    || (cls == CKO_CERTIFICATE && value->len == 0)) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	p->value = value->data;
	p->value_len = value->len;
	p->attrs = attrs->data;
	p->attrs_len = attrs->len;
	rv = CKR_OK;
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	free(ca);
	free(ul);
	return rv;
}

/* Signs @p with this client's identity and appends it to the catalog,
 * showing each node this process's login ticket. */
static CK_RV
km_p11_catalog_append(const km_catalog_payload *p)
{
	char err[300] = "";
	size_t applied = 0, i;
	int r, res = 0;

	r = km_mesh_append_as(km_p11.mesh, p, km_p11_ticket_cb, NULL, &applied,
	    &res, err, sizeof(err));
	if (r == KM_ERR_AUTH && km_p11.logged_in) {
		/* the nodes forgot our tickets (restarted, expired): log in
		 * there again with the kept PIN (km_p11_ticket) and retry */
		for (i = 0; i < km_mesh_count(km_p11.mesh); i++) {
			km_p11_ticket_drop(i);
		}
		r = km_mesh_append_as(km_p11.mesh, p, km_p11_ticket_cb, NULL,
		    &applied, &res, err, sizeof(err));
	}
	if (r != 0) {
		km_log_warn_r(r, "P11-OBJECT", "object %s not stored: %s",
		    p->object_id, err);
		if (r == KM_ERR_AUTH) {
			return CKR_USER_NOT_LOGGED_IN;
		}
		/* a delete of an object another process deleted first */
		return r == KM_ERR_NOT_FOUND ? CKR_OBJECT_HANDLE_INVALID
		                             : CKR_DEVICE_ERROR;
	}
	if (res != 0) {
		/* sequenced, but consumed without effect everywhere: the
		 * object was deleted (or replaced by another kind) by another
		 * process meanwhile */
		km_log_warn_r(
		    res, "P11-OBJECT", "object %s: not changed", p->object_id);
		return res == KM_ERR_STATE || res == KM_ERR_NOT_FOUND
		    ? CKR_OBJECT_HANDLE_INVALID
		    : CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

/* Under the module lock: the handle of catalog object @id, or 0. */
static CK_OBJECT_HANDLE
km_p11_catalog_handle(const char *id, uint64_t after_seq)
{
	size_t i;

	for (i = 0; i < km_p11.nobjects; i++) {
		km_p11_object *o = km_p11.objects[i];

		if (o->from_catalog && strcmp(o->object_id, id) == 0
		    && o->object_seq > after_seq) {
			return o->handle;
		}
	}
	return CK_INVALID_HANDLE;
}

/*
 * Stores an object in the catalog: a new one (@object_id NULL) or a new
 * version of @object_id (seen at @old_seq).  On success the object is in
 * this process's view too, and *@out (if not NULL) is its handle.
 */
static CK_RV
km_p11_catalog_put(const char *object_id, uint64_t old_seq,
    CK_OBJECT_CLASS cls, bool priv, const km_p11_attr *a, size_t na,
    CK_OBJECT_HANDLE *out)
{
	char id[KM_NAME_MAX + 1];
	uint8_t rnd[8];
	km_catalog_payload p;
	km_buf attrs, value;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	int tries;
	CK_RV rv;

	km_buf_init(&attrs);
	km_buf_init(&value);
	if (object_id == NULL) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			rv = CKR_GENERAL_ERROR;
			goto out;
		}
		memcpy(id, "obj-", 4);
		km_hex(rnd, sizeof(rnd), id + 4);
		object_id = id;
	}
	if ((rv = km_p11_object_payload(
	         object_id, cls, priv, a, na, &p, &attrs, &value))
	        != CKR_OK
	    || (rv = km_p11_catalog_append(&p)) != CKR_OK) {
		goto out;
	}
	/* Every node that answered has applied it; a lagging one catches
	 * up from its peers within seconds, so look a few times. */
	for (tries = 0; tries < 20 && h == CK_INVALID_HANDLE; tries++) {
		if (tries > 0) {
			usleep(100 * 1000);
		}
		if ((rv = km_p11_view_sync(true)) != CKR_OK) {
			goto out;
		}
		km_p11_lock(km_p11.lock);
		h = km_p11_catalog_handle(object_id, old_seq);
		km_p11_unlock(km_p11.lock);
	}
	if (h == CK_INVALID_HANDLE) {
		km_log_warn("P11-OBJECT",
		    "object %s was stored but is not in the view yet",
		    object_id);
		rv = CKR_DEVICE_ERROR;
		goto out;
	}
	if (out != NULL) {
		*out = h;
	}
	rv = CKR_OK;
out:
	km_buf_free(&attrs);
	km_buf_free(&value);
	return rv;
}

/* The attribute list of an object of the view. */
static CK_RV
km_p11_view_object_attrs(const km_view_object *vo, CK_OBJECT_CLASS cls,
    km_p11_attr **out, size_t *nout)
{
	km_catalog_attr *ca = NULL;
	km_p11_attr *a = NULL;
	size_t n = 0, nca = 0, i, j;
	CK_ULONG v;
	CK_RV rv = CKR_OK;

	if (km_catalog_attrs_decode(vo->attrs, vo->attrs_len, &ca, &nca)
	    != 0) {
		return CKR_GENERAL_ERROR;
	}
	for (i = 0; i < nca && rv == CKR_OK; i++) {
		if (km_p11_obj_own_field(cls, ca[i].type)) {
			continue;
		}
		if (km_p11_attr_is_ulong(ca[i].type) && ca[i].len == 8) {
			for (v = 0, j = 0; j < 8; j++) {
				v = (CK_ULONG)(((uint64_t)v << 8)
				    | ca[i].value[j]);
			}
			rv = km_p11_attr_ulong_set(&a, &n, ca[i].type, v);
		} else {
			rv = km_p11_attr_set(&a, &n, ca[i].type, ca[i].value,
			    (CK_ULONG)ca[i].len, false);
		}
	}
	free(ca);
	rv = rv ? rv : km_p11_attr_ulong_set(&a, &n, CKA_CLASS, cls);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &n, CKA_TOKEN, true);
	rv = rv ? rv
	        : km_p11_attr_bool_set(
	            &a, &n, CKA_PRIVATE, vo->flags & KM_OBJ_FLAG_PRIVATE);
	rv = rv ? rv
	        : km_p11_attr_set(&a, &n, CKA_ID, vo->app_id,
	            (CK_ULONG)vo->app_id_len, false);
	rv = rv ? rv
	        : km_p11_attr_set(&a, &n, CKA_LABEL, vo->label,
	            (CK_ULONG)vo->label_len, false);
	rv = rv ? rv
	        : km_p11_attr_set(&a, &n, km_p11_obj_value_type(cls),
	            vo->value, (CK_ULONG)vo->value_len, false);
	if (rv != CKR_OK) {
		km_p11_attrs_free(a, n);
		return rv;
	}
	*out = a;
	*nout = n;
	return CKR_OK;
}

/* A catalog object copied out of the view for the object table. */
typedef struct km_p11_vobj {
	char object_id[KM_NAME_MAX + 1];
	uint64_t seq;
	CK_OBJECT_CLASS cls;
	bool priv;
	km_p11_attr *attrs;
	size_t nattrs;
} km_p11_vobj;

/* Under the view lock: this partition's objects. */
static CK_RV
km_p11_view_objects(km_p11_vobj **out, size_t *nout)
{
	static const CK_OBJECT_CLASS cls[]
	    = { 0, CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_DATA };
	size_t cnt = km_view_object_count(km_p11.view), i, n = 0;
	const km_view_object *vo;
	km_p11_vobj *v;

	*out = NULL;
	*nout = 0;
	if (cnt == 0) {
		return CKR_OK;
	}
	if ((v = calloc(cnt, sizeof(*v))) == NULL) {
		return CKR_HOST_MEMORY;
	}
	for (i = 0; i < cnt; i++) {
		vo = km_view_object_at(km_p11.view, i);
		if (strcmp(vo->partition, km_p11.conf.partition) != 0
		    || vo->obj_class < KM_OBJ_CERTIFICATE
		    || vo->obj_class > KM_OBJ_DATA) {
			continue;
		}
		v[n].cls = cls[vo->obj_class];
		if (km_p11_view_object_attrs(
		        vo, v[n].cls, &v[n].attrs, &v[n].nattrs)
		    != CKR_OK) {
			km_log_warn("P11-VIEW-OBJECT",
			    "object %s is not usable here", vo->object_id);
			continue;
		}
		snprintf(v[n].object_id, sizeof(v[n].object_id), "%s",
		    vo->object_id);
		v[n].seq = vo->updated_seq;
		v[n].priv = (vo->flags & KM_OBJ_FLAG_PRIVATE) != 0;
		n++;
	}
	*out = v;
	*nout = n;
	return CKR_OK;
}

/* Under the module lock: (re)makes the object of @vo; takes its attrs. */
static CK_RV
km_p11_catalog_object_sync(km_p11_vobj *vo)
{
	km_p11_object *o = NULL;
	size_t i;
	CK_RV rv;

	for (i = 0; i < km_p11.nobjects; i++) {
		if (km_p11.objects[i]->from_catalog
		    && strcmp(km_p11.objects[i]->object_id, vo->object_id)
		        == 0) {
			o = km_p11.objects[i];
			break;
		}
	}
	if (o != NULL && o->object_seq == vo->seq) {
		o->seen = true;
		return CKR_OK;
	}
	if (o == NULL) {
		if ((o = calloc(1, sizeof(*o))) == NULL) {
			return CKR_HOST_MEMORY;
		}
		o->from_catalog = true;
		snprintf(
		    o->object_id, sizeof(o->object_id), "%s", vo->object_id);
		if ((rv = km_p11_table_add(o)) != CKR_OK) {
			free(o);
			return rv;
		}
	} else {
		/* a new version: same handle, new data */
		km_p11_attrs_free(o->attrs, o->nattrs);
	}
	o->cls = vo->cls;
	o->is_private = vo->priv;
	o->object_seq = vo->seq;
	o->attrs = vo->attrs;
	o->nattrs = vo->nattrs;
	vo->attrs = NULL;
	vo->nattrs = 0;
	o->seen = true;
	return CKR_OK;
}

/* The coordinator's verdicts into the ranking statistics (view_lock
 * held): a quarantined node is left out of every plan (quorum.c). */
static void
km_p11_view_verdicts(void)
{
	const km_view_verdict *vd;
	size_t i;

	pthread_mutex_lock(&km_p11.stat_lock);
	for (i = 0; i < km_mesh_count(km_p11.mesh) && i < KM_MESH_MAX_NODES;
	     i++) {
		vd = km_view_verdict_find(
		    km_p11.view, km_mesh_name(km_p11.mesh, i));
		km_p11.stat[i].quarantined = vd != NULL && vd->quarantined;
	}
	pthread_mutex_unlock(&km_p11.stat_lock);
}

CK_RV
km_p11_view_sync(bool force)
{
	km_p11_key **keys = NULL;
	km_p11_vobj *objs = NULL;
	size_t i, n = 0, cnt, nobjs = 0;
	const km_view_key *vk;
	bool changed = false;
	uint64_t now = km_now_ms();
	int r;
	CK_RV rv = CKR_OK;

	pthread_mutex_lock(&km_p11.view_lock);
	if (!force && now - km_p11.view_at_ms < 1000) {
		pthread_mutex_unlock(&km_p11.view_lock);
		return CKR_OK;
	}
	r = km_view_refresh(km_p11.view,
	    (int)(km_p11.conf.timeout_ms < 1000 ? km_p11.conf.timeout_ms
	                                        : 1000),
	    &changed);
	if (r != 0) {
		/* not throttled: the next search tries again at once */
		km_log_warn_r(r, "P11-VIEW", "cannot refresh the key view");
	} else {
		km_p11.view_at_ms = km_now_ms();
	}
	if (!changed && km_p11.view_at_ms != 0 && !force) {
		pthread_mutex_unlock(&km_p11.view_lock);
		return CKR_OK;
	}
	km_p11_view_verdicts();
	cnt = km_view_count(km_p11.view);
	if (cnt > 0 && (keys = calloc(cnt, sizeof(*keys))) == NULL) {
		pthread_mutex_unlock(&km_p11.view_lock);
		return CKR_HOST_MEMORY;
	}
	for (i = 0; i < cnt; i++) {
		vk = km_view_at(km_p11.view, i);
		if (vk->state != KM_KEY_ACTIVE
		    && vk->state != KM_KEY_RESHARING) {
			continue;
		}
		if ((r = km_p11_key_from_view(vk, &keys[n])) != 0) {
			km_log_warn_r(r, "P11-VIEW-KEY",
			    "key %s is not usable here", vk->key_id);
			continue;
		}
		n++;
	}
	rv = km_p11_view_objects(&objs, &nobjs);
	pthread_mutex_unlock(&km_p11.view_lock);

	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nobjects; i++) {
		km_p11.objects[i]->seen = false;
	}
	for (i = 0; i < n && rv == CKR_OK; i++) {
		rv = km_p11_key_objects(keys[i]);
	}
	for (i = 0; i < nobjs && rv == CKR_OK; i++) {
		rv = km_p11_catalog_object_sync(&objs[i]);
	}
	/* keys and objects that left the view (destroyed, deleted) leave
	 * the table */
	i = 0;
	while (rv == CKR_OK && i < km_p11.nobjects) {
		if ((km_p11.objects[i]->from_mesh
		        || km_p11.objects[i]->from_catalog)
		    && !km_p11.objects[i]->seen) {
			km_p11_table_remove(i);
		} else {
			i++;
		}
	}
	for (i = 0; i < n; i++) {
		if (--keys[i]->refs == 0) {
			km_rsa_pub_free(keys[i]->rsa);
			km_ec_pub_free(keys[i]->ec);
			free(keys[i]->policy);
			free(keys[i]);
		}
	}
	km_p11_unlock(km_p11.lock);
	for (i = 0; i < nobjs; i++) {
		km_p11_attrs_free(objs[i].attrs, objs[i].nattrs);
	}
	free(objs);
	free(keys);
	return rv;
}

/* ---- C_GetAttributeValue and friends ---- */

CK_RV
km_p11_get_attribute_value(
    km_p11_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	km_p11_object *o;
	const km_p11_attr *a;
	CK_ULONG i;
	CK_RV rv = CKR_OK;

	(void)s;
	return_val_if_fail(t != NULL || n == 0, CKR_ARGUMENTS_BAD);
	km_p11_lock(km_p11.lock);
	if ((o = km_p11_object_find(h)) == NULL || !km_p11_object_visible(o)) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (km_p11_attr_sensitive(o, t[i].type)) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_SENSITIVE;
			continue;
		}
		if ((a = km_p11_attr_get(o, t[i].type)) == NULL) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_TYPE_INVALID;
			continue;
		}
		if (t[i].pValue == NULL) {
			t[i].ulValueLen = a->len;
		} else if (t[i].ulValueLen < a->len) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else {
			memcpy(t[i].pValue, a->value, a->len);
			t[i].ulValueLen = a->len;
		}
	}
out:
	km_p11_unlock(km_p11.lock);
	return rv;
}

CK_RV
km_p11_get_object_size(
    km_p11_session *s, CK_OBJECT_HANDLE h, CK_ULONG_PTR size)
{
	km_p11_object *o;
	CK_RV rv = CKR_OK;

	(void)s;
	return_val_if_fail(size != NULL, CKR_ARGUMENTS_BAD);
	km_p11_lock(km_p11.lock);
	if ((o = km_p11_object_find(h)) == NULL || !km_p11_object_visible(o)) {
		rv = CKR_OBJECT_HANDLE_INVALID;
	} else {
		*size = CK_UNAVAILABLE_INFORMATION;
	}
	km_p11_unlock(km_p11.lock);
	return rv;
}

static bool
km_p11_attr_readonly(CK_ATTRIBUTE_TYPE t)
{
	return t == CKA_CLASS || t == CKA_KEY_TYPE || t == CKA_TOKEN
	    || t == CKA_PRIVATE || t == CKA_MODULUS || t == CKA_EC_POINT
	    || t == CKA_EC_PARAMS || t == CKA_VALUE
	    || t == CKA_CERTIFICATE_TYPE || t == CKA_LOCAL
	    || t == CKA_ALWAYS_SENSITIVE || t == CKA_NEVER_EXTRACTABLE
	    || t == CKA_MODIFIABLE;
}

/* A template that sets CKA_ID only (the last one counts). */
static bool
km_p11_only_cka_id(CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if (t[i].type != CKA_ID) {
			return false;
		}
	}
	return n > 0;
}

/* KEY_ATTRS: a mesh key's CKA_ID (both halves) for every client. */
static CK_RV
km_p11_key_set_id(const char *key_id, const void *id, size_t len)
{
	km_catalog_payload p;
	char err[300] = "";
	size_t applied = 0;
	km_mesh *admin;
	int r, res = 0;

	if ((admin = km_p11_admin()) == NULL) {
		/* keys are the admin's; km_p11_admin() said why */
		return CKR_ACTION_PROHIBITED;
	}
	memset(&p, 0, sizeof(p));
	p.type = KM_CAT_KEY_ATTRS;
	snprintf(p.key_id, sizeof(p.key_id), "%s", key_id);
	p.app_id = (uint8_t *)id;
	p.app_id_len = len;
	if ((r = km_mesh_append_as(
	         admin, &p, NULL, NULL, &applied, &res, err, sizeof(err)))
	    != 0) {
		km_log_warn_r(r, "P11-KEY-ID", "key %s: %s", key_id, err);
		return CKR_DEVICE_ERROR;
	}
	if (res != 0) {
		/* destroyed by someone else meanwhile */
		return CKR_OBJECT_HANDLE_INVALID;
	}
	return km_p11_view_sync(true);
}

CK_RV
km_p11_set_attribute_value(
    km_p11_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	km_p11_object *o;
	km_p11_attr *na = NULL;
	size_t nna = 0;
	char object_id[KM_NAME_MAX + 1] = "", key_id[KM_NAME_MAX + 1] = "";
	uint64_t seq = 0;
	CK_OBJECT_CLASS cls = 0;
	bool priv = false;
	CK_ULONG i;
	CK_RV rv = CKR_OK;

	return_val_if_fail(t != NULL || n == 0, CKR_ARGUMENTS_BAD);
	km_p11_lock(km_p11.lock);
	if ((o = km_p11_object_find(h)) == NULL || !km_p11_object_visible(o)) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	if (o->session == 0 && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
		goto out;
	}
	if (o->from_mesh && km_p11_only_cka_id(t, n)) {
		/* a mesh key's CKA_ID (NSS sets it after key generation):
		 * a KEY_ATTRS entry, signed by the admin identity */
		if (!km_p11.logged_in) {
			rv = CKR_USER_NOT_LOGGED_IN;
		} else if (t[n - 1].ulValueLen > KM_CATALOG_APP_ID_MAX
		    || (t[n - 1].pValue == NULL && t[n - 1].ulValueLen > 0)) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
		} else {
			snprintf(key_id, sizeof(key_id), "%s", o->key->key_id);
		}
		goto out;
	}
	if (o->from_mesh || !km_p11_attr_bool(o, CKA_MODIFIABLE)) {
		rv = CKR_ACTION_PROHIBITED;
		goto out;
	}
	if (o->from_catalog && !km_p11.logged_in) {
		rv = CKR_USER_NOT_LOGGED_IN;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (km_p11_attr_readonly(t[i].type)
		    || (o->from_catalog && t[i].type == CKA_PUBLIC_KEY_INFO)) {
			rv = CKR_ATTRIBUTE_READ_ONLY;
			goto out;
		}
		if (t[i].pValue == NULL && t[i].ulValueLen > 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
	}
	if (o->from_catalog) {
		/* a new version of the catalog object, built from a copy:
		 * this one changes when the view brings the new version */
		for (i = 0; i < o->nattrs && rv == CKR_OK; i++) {
			rv = km_p11_attr_set(&na, &nna, o->attrs[i].type,
			    o->attrs[i].value, o->attrs[i].len, false);
		}
		for (i = 0; i < n && rv == CKR_OK; i++) {
			rv = km_p11_attr_set(&na, &nna, t[i].type, t[i].pValue,
			    t[i].ulValueLen, false);
		}
		snprintf(object_id, sizeof(object_id), "%s", o->object_id);
		seq = o->object_seq;
		cls = o->cls;
		priv = o->is_private;
		goto out;
	}
	for (i = 0; i < n && rv == CKR_OK; i++) {
		rv = km_p11_attr_set(&o->attrs, &o->nattrs, t[i].type,
		    t[i].pValue, t[i].ulValueLen, false);
	}
out:
	km_p11_unlock(km_p11.lock);
	if (rv == CKR_OK && object_id[0] != '\0') {
		rv = km_p11_catalog_put(
		    object_id, seq, cls, priv, na, nna, NULL);
	}
	if (rv == CKR_OK && key_id[0] != '\0') {
		rv = km_p11_key_set_id(
		    key_id, t[n - 1].pValue, t[n - 1].ulValueLen);
	}
	km_p11_attrs_free(na, nna);
	return rv;
}

/* ---- find ---- */

static bool
km_p11_matches(const km_p11_object *o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	const km_p11_attr *a;
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if (km_p11_attr_sensitive(o, t[i].type)) {
			return false;
		}
		if ((a = km_p11_attr_get(o, t[i].type)) == NULL
		    || a->len != t[i].ulValueLen
		    || (a->len > 0
		        && (t[i].pValue == NULL
		            || memcmp(a->value, t[i].pValue, a->len) != 0))) {
			return false;
		}
	}
	return true;
}

CK_RV
km_p11_find_objects_init(km_p11_session *s, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_OBJECT_HANDLE *v = NULL;
	size_t i, cnt = 0;
	CK_RV rv = CKR_OK;

	return_val_if_fail(t != NULL || n == 0, CKR_ARGUMENTS_BAD);
	if (s->active != KM_P11_OP_NONE) {
		return CKR_OPERATION_ACTIVE;
	}
	/* new or destroyed keys show up within a second */
	(void)km_p11_view_sync(false);
	km_p11_lock(km_p11.lock);
	if (km_p11.nobjects > 0
	    && (v = calloc(km_p11.nobjects, sizeof(*v))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (i = 0; i < km_p11.nobjects; i++) {
		km_p11_object *o = km_p11.objects[i];

		if (km_p11_object_visible(o) && km_p11_matches(o, t, n)) {
			v[cnt++] = o->handle;
		}
	}
	s->op.found = v;
	s->op.nfound = cnt;
	s->op.pos = 0;
	s->active = KM_P11_OP_FIND;
out:
	km_p11_unlock(km_p11.lock);
	return rv;
}

CK_RV
km_p11_find_objects(km_p11_session *s, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
    CK_ULONG_PTR count)
{
	CK_ULONG n = 0;

	return_val_if_fail(out != NULL || max == 0, CKR_ARGUMENTS_BAD);
	return_val_if_fail(count != NULL, CKR_ARGUMENTS_BAD);
	if (s->active != KM_P11_OP_FIND) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	while (n < max && s->op.pos < s->op.nfound) {
		out[n++] = s->op.found[s->op.pos++];
	}
	*count = n;
	return CKR_OK;
}

CK_RV
km_p11_find_objects_final(km_p11_session *s)
{
	if (s->active != KM_P11_OP_FIND) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	km_p11_op_reset(&s->op);
	s->active = KM_P11_OP_NONE;
	return CKR_OK;
}

/* ---- create, copy, destroy ---- */

static const CK_ATTRIBUTE *
km_p11_tmpl_get(CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if (t[i].type == type) {
			return &t[i];
		}
	}
	return NULL;
}

static CK_RV
km_p11_tmpl_bool(CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_ATTRIBUTE_TYPE type,
    bool def, bool *out)
{
	const CK_ATTRIBUTE *a = km_p11_tmpl_get(t, n, type);

	if (a == NULL) {
		*out = def;
		return CKR_OK;
	}
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL)) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	*out = *(CK_BBOOL *)a->pValue != CK_FALSE;
	return CKR_OK;
}

static CK_RV
km_p11_tmpl_ulong(
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
	const CK_ATTRIBUTE *a = km_p11_tmpl_get(t, n, type);

	if (a == NULL) {
		return CKR_TEMPLATE_INCOMPLETE;
	}
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG)) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	*out = *(CK_ULONG *)a->pValue;
	return CKR_OK;
}

/*
 * Builds an object's attributes from a template and defaults.  @defaults
 * are applied first; the template overrides them.
 */
static CK_RV
km_p11_build(CK_ATTRIBUTE_PTR t, CK_ULONG n, const CK_ATTRIBUTE *defaults,
    size_t ndef, km_p11_attr **out, size_t *nout)
{
	km_p11_attr *a = NULL;
	size_t na = 0, i;
	CK_RV rv = CKR_OK;

	for (i = 0; i < ndef && rv == CKR_OK; i++) {
		rv = km_p11_attr_set(&a, &na, defaults[i].type,
		    defaults[i].pValue, defaults[i].ulValueLen, false);
	}
	for (i = 0; i < n && rv == CKR_OK; i++) {
		if (t[i].pValue == NULL && t[i].ulValueLen > 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		}
		rv = km_p11_attr_set(&a, &na, t[i].type, t[i].pValue,
		    t[i].ulValueLen, t[i].type == CKA_VALUE);
	}
	if (rv != CKR_OK) {
		km_p11_attrs_free(a, na);
		return rv;
	}
	*out = a;
	*nout = na;
	return CKR_OK;
}

CK_RV
km_p11_create_object(km_p11_session *s, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out)
{
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	static const CK_ULONG zero = 0;
	static const CK_ULONG unavail = CK_UNAVAILABLE_INFORMATION;
	const CK_ATTRIBUTE defaults[] = {
		{ CKA_TOKEN, (void *)&no, sizeof(no) },
		{ CKA_MODIFIABLE, (void *)&yes, sizeof(yes) },
		{ CKA_COPYABLE, (void *)&yes, sizeof(yes) },
		{ CKA_DESTROYABLE, (void *)&yes, sizeof(yes) },
		{ CKA_LABEL, (void *)"", 0 },
	};
	const CK_ATTRIBUTE cert_defaults[] = {
		{ CKA_ID, (void *)"", 0 },
		{ CKA_TRUSTED, (void *)&no, sizeof(no) },
		{ CKA_CERTIFICATE_CATEGORY, (void *)&zero, sizeof(zero) },
		{ CKA_SUBJECT, (void *)"", 0 },
		{ CKA_ISSUER, (void *)"", 0 },
		{ CKA_SERIAL_NUMBER, (void *)"", 0 },
	};
	const CK_ATTRIBUTE pub_defaults[] = {
		{ CKA_ID, (void *)"", 0 },
		{ CKA_LOCAL, (void *)&no, sizeof(no) },
		{ CKA_KEY_GEN_MECHANISM, (void *)&unavail, sizeof(unavail) },
		{ CKA_ENCRYPT, (void *)&yes, sizeof(yes) },
		{ CKA_VERIFY, (void *)&yes, sizeof(yes) },
		{ CKA_VERIFY_RECOVER, (void *)&no, sizeof(no) },
		{ CKA_WRAP, (void *)&no, sizeof(no) },
		{ CKA_DERIVE, (void *)&no, sizeof(no) },
		{ CKA_TRUSTED, (void *)&no, sizeof(no) },
		{ CKA_SUBJECT, (void *)"", 0 },
	};
	CK_OBJECT_CLASS cls;
	CK_ULONG sub;
	km_p11_attr *a = NULL;
	size_t na = 0, i;
	bool token, priv;
	km_p11_object probe;
	EVP_PKEY *pk = NULL;
	uint8_t *der = NULL;
	CK_KEY_TYPE kt;
	int len;
	CK_RV rv;

	return_val_if_fail(t != NULL || n == 0, CKR_ARGUMENTS_BAD);
	return_val_if_fail(out != NULL, CKR_ARGUMENTS_BAD);
	if ((rv = km_p11_tmpl_ulong(t, n, CKA_CLASS, &cls)) != CKR_OK) {
		return rv;
	}
	if ((rv = km_p11_tmpl_bool(t, n, CKA_TOKEN, false, &token)) != CKR_OK
	    || (rv = km_p11_tmpl_bool(
	            t, n, CKA_PRIVATE, cls == CKO_SECRET_KEY, &priv))
	        != CKR_OK) {
		return rv;
	}
	if (token && !(s->flags & CKF_RW_SESSION)) {
		return CKR_SESSION_READ_ONLY;
	}
	/* a token object goes to the catalog, which takes it only from a
	 * logged-in user (the nodes want the login ticket) */
	if ((priv || token) && !km_p11.logged_in) {
		return CKR_USER_NOT_LOGGED_IN;
	}
	rv = km_p11_build(
	    t, n, defaults, sizeof(defaults) / sizeof(*defaults), &a, &na);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = km_p11_attr_bool_set(&a, &na, CKA_PRIVATE, priv);
	if (rv != CKR_OK) {
		goto out;
	}
	switch (cls) {
	case CKO_CERTIFICATE:
		if ((rv = km_p11_tmpl_ulong(t, n, CKA_CERTIFICATE_TYPE, &sub))
		    != CKR_OK) {
			goto out;
		}
		if (sub != CKC_X_509) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		if (km_p11_tmpl_get(t, n, CKA_VALUE) == NULL) {
			rv = CKR_TEMPLATE_INCOMPLETE;
			goto out;
		}
		for (i = 0; i < sizeof(cert_defaults) / sizeof(*cert_defaults);
		     i++) {
			if (km_p11_tmpl_get(t, n, cert_defaults[i].type)
			        == NULL
			    && (rv = km_p11_attr_set(&a, &na,
			            cert_defaults[i].type,
			            cert_defaults[i].pValue,
			            cert_defaults[i].ulValueLen, false))
			        != CKR_OK) {
				goto out;
			}
		}
		break;
	case CKO_PUBLIC_KEY:
		if ((rv = km_p11_tmpl_ulong(t, n, CKA_KEY_TYPE, &sub))
		    != CKR_OK) {
			goto out;
		}
		for (i = 0; i < sizeof(pub_defaults) / sizeof(*pub_defaults);
		     i++) {
			if (km_p11_tmpl_get(t, n, pub_defaults[i].type) == NULL
			    && (rv = km_p11_attr_set(&a, &na,
			            pub_defaults[i].type,
			            pub_defaults[i].pValue,
			            pub_defaults[i].ulValueLen, false))
			        != CKR_OK) {
				goto out;
			}
		}
		/* the key must be usable: parse it now */
		memset(&probe, 0, sizeof(probe));
		probe.cls = cls;
		probe.attrs = a;
		probe.nattrs = na;
		if (sub != CKK_RSA && sub != CKK_EC) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		if ((sub == CKK_RSA
		        && (km_p11_tmpl_get(t, n, CKA_MODULUS) == NULL
		            || km_p11_tmpl_get(t, n, CKA_PUBLIC_EXPONENT)
		                == NULL))
		    || (sub == CKK_EC
		        && (km_p11_tmpl_get(t, n, CKA_EC_PARAMS) == NULL
		            || km_p11_tmpl_get(t, n, CKA_EC_POINT) == NULL))) {
			rv = CKR_TEMPLATE_INCOMPLETE;
			goto out;
		}
		if (km_p11_object_pkey(&probe, &pk, &kt) != CKR_OK) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		/* what SoftHSM derives too: pkcs11-tool shows the size from
		 * CKA_MODULUS_BITS; CKA_PUBLIC_KEY_INFO for GnuTLS, NSS */
		if (sub == CKK_RSA
		    && km_p11_tmpl_get(t, n, CKA_MODULUS_BITS) == NULL
		    && (rv = km_p11_attr_ulong_set(&a, &na, CKA_MODULUS_BITS,
		            (CK_ULONG)EVP_PKEY_get_bits(pk)))
		        != CKR_OK) {
			goto out;
		}
		if ((len = i2d_PUBKEY(pk, &der)) <= 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		rv = km_p11_attr_set(
		    &a, &na, CKA_PUBLIC_KEY_INFO, der, (CK_ULONG)len, false);
		OPENSSL_free(der);
		der = NULL;
		if (rv != CKR_OK) {
			goto out;
		}
		break;
	case CKO_DATA:
		break;
	default:
		/* private and secret keys come from the mesh (keymesh key
		 * import) or from C_DeriveKey */
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	if (token) {
		/* every process of every client sees it from the view */
		rv = km_p11_catalog_put(NULL, 0, cls, priv, a, na, out);
		goto out;
	}
	rv = km_p11_object_add(s->handle, cls, priv, a, na, out);
	a = NULL;
	na = 0;
out:
	EVP_PKEY_free(pk);
	km_p11_attrs_free(a, na);
	return rv;
}

/* May a copy of a mesh key take this template attribute?  Only names,
 * dates and CKA_TOKEN = FALSE change; anything else must keep its value,
 * so a copy is never weaker than the key (CKA_SENSITIVE stays TRUE,
 * CKA_EXTRACTABLE FALSE). */
static CK_RV
km_p11_key_copy_attr(const km_p11_attr *a, size_t na, const CK_ATTRIBUTE *t)
{
	km_p11_object tmp;
	const km_p11_attr *have;

	if (t->type == CKA_LABEL || t->type == CKA_ID
	    || t->type == CKA_START_DATE || t->type == CKA_END_DATE) {
		return CKR_OK;
	}
	if (t->type == CKA_TOKEN) {
		if (t->pValue == NULL || t->ulValueLen != sizeof(CK_BBOOL)) {
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
		/* the key itself lives in the mesh; a second token key
		 * with the same shares is not something to make here */
		return *(CK_BBOOL *)t->pValue ? CKR_ACTION_PROHIBITED : CKR_OK;
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.attrs = (km_p11_attr *)a;
	tmp.nattrs = na;
	if ((have = km_p11_attr_get(&tmp, t->type)) == NULL
	    || have->len != t->ulValueLen
	    || (t->ulValueLen > 0
	        && (t->pValue == NULL
	            || memcmp(have->value, t->pValue, t->ulValueLen) != 0))) {
		return CKR_ATTRIBUTE_READ_ONLY;
	}
	return CKR_OK;
}

/* A session object that refers to the same mesh key as the original. */
static CK_RV
km_p11_copy_mesh_key(km_p11_session *s, CK_OBJECT_CLASS cls, bool priv,
    km_p11_key *key, km_p11_attr *a, size_t na, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out)
{
	km_p11_object *o = NULL;
	CK_ULONG i;
	CK_RV rv = CKR_OK;

	for (i = 0; i < n && rv == CKR_OK; i++) {
		rv = km_p11_key_copy_attr(a, na, &t[i]);
	}
	for (i = 0; i < n && rv == CKR_OK; i++) {
		if (t[i].type == CKA_LABEL || t[i].type == CKA_ID
		    || t[i].type == CKA_START_DATE
		    || t[i].type == CKA_END_DATE) {
			if (t[i].pValue == NULL && t[i].ulValueLen > 0) {
				rv = CKR_ATTRIBUTE_VALUE_INVALID;
			} else {
				rv = km_p11_attr_set(&a, &na, t[i].type,
				    t[i].pValue, t[i].ulValueLen, false);
			}
		}
	}
	rv = rv ? rv : km_p11_attr_bool_set(&a, &na, CKA_TOKEN, false);
	rv = rv ? rv : km_p11_attr_bool_set(&a, &na, CKA_DESTROYABLE, true);
	if (rv == CKR_OK && (o = calloc(1, sizeof(*o))) == NULL) {
		rv = CKR_HOST_MEMORY;
	}
	if (rv != CKR_OK) {
		km_p11_attrs_free(a, na);
		km_p11_key_unref(key);
		return rv;
	}
	o->cls = cls;
	o->session = s->handle;
	o->is_private = priv;
	o->attrs = a;
	o->nattrs = na;
	o->key = key; /* the caller's reference */
	km_p11_lock(km_p11.lock);
	if ((rv = km_p11_table_add(o)) == CKR_OK) {
		*out = o->handle;
		o = NULL;
	}
	km_p11_object_free(o);
	km_p11_unlock(km_p11.lock);
	return rv;
}

CK_RV
km_p11_copy_object(km_p11_session *s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR t,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	km_p11_object *o;
	km_p11_key *key = NULL;
	km_p11_attr *a = NULL;
	size_t na = 0, i;
	CK_OBJECT_CLASS cls = 0;
	bool token = false, priv = false;
	CK_RV rv = CKR_OK;

	return_val_if_fail(t != NULL || n == 0, CKR_ARGUMENTS_BAD);
	return_val_if_fail(out != NULL, CKR_ARGUMENTS_BAD);
	km_p11_lock(km_p11.lock);
	if ((o = km_p11_object_find(h)) == NULL || !km_p11_object_visible(o)) {
		rv = CKR_OBJECT_HANDLE_INVALID;
	} else if (!km_p11_attr_bool(o, CKA_COPYABLE)) {
		rv = CKR_ACTION_PROHIBITED;
	} else {
		cls = o->cls;
		priv = o->is_private;
		token = o->session == 0;
		if (o->key != NULL) {
			/* a mesh key or a copy of one */
			key = o->key;
			key->refs++;
		}
		for (i = 0; i < o->nattrs && rv == CKR_OK; i++) {
			rv = km_p11_attr_set(&a, &na, o->attrs[i].type,
			    o->attrs[i].value, o->attrs[i].len,
			    o->attrs[i].secret);
		}
	}
	km_p11_unlock(km_p11.lock);
	if (key != NULL && rv == CKR_OK) {
		return km_p11_copy_mesh_key(
		    s, cls, priv, key, a, na, t, n, out);
	} else if (key != NULL) {
		km_p11_key_unref(key);
	}
	for (i = 0; i < n && rv == CKR_OK; i++) {
		if (t[i].type == CKA_CLASS || t[i].type == CKA_KEY_TYPE
		    || t[i].type == CKA_VALUE) {
			rv = CKR_ATTRIBUTE_READ_ONLY;
		} else if (t[i].pValue == NULL && t[i].ulValueLen > 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
		} else {
			rv = km_p11_attr_set(&a, &na, t[i].type, t[i].pValue,
			    t[i].ulValueLen, false);
		}
	}
	if (rv == CKR_OK) {
		(void)km_p11_tmpl_bool(t, n, CKA_TOKEN, token, &token);
		(void)km_p11_tmpl_bool(t, n, CKA_PRIVATE, priv, &priv);
		if (token && !(s->flags & CKF_RW_SESSION)) {
			rv = CKR_SESSION_READ_ONLY;
		} else if (token && km_p11_obj_class(cls) == 0) {
			/* secret keys stay out of the (public) catalog */
			rv = CKR_ACTION_PROHIBITED;
		} else if ((token || priv) && !km_p11.logged_in) {
			rv = CKR_USER_NOT_LOGGED_IN;
		}
	}
	if (rv == CKR_OK) {
		rv = km_p11_attr_bool_set(&a, &na, CKA_TOKEN, token);
	}
	if (rv == CKR_OK) {
		rv = km_p11_attr_bool_set(&a, &na, CKA_PRIVATE, priv);
	}
	if (rv == CKR_OK && token) {
		/* a token copy is a new catalog object */
		rv = km_p11_catalog_put(NULL, 0, cls, priv, a, na, out);
	} else if (rv == CKR_OK) {
		rv = km_p11_object_add(s->handle, cls, priv, a, na, out);
		a = NULL;
		na = 0;
	}
	km_p11_attrs_free(a, na);
	return rv;
}

CK_RV
km_p11_destroy_object(km_p11_session *s, CK_OBJECT_HANDLE h)
{
	km_p11_object *o;
	char key_id[KM_NAME_MAX + 1], object_id[KM_NAME_MAX + 1], err[300];
	km_catalog_payload p;
	km_mesh *admin;
	size_t i;
	int r;
	CK_RV rv = CKR_OK;

	key_id[0] = '\0';
	object_id[0] = '\0';
	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nobjects; i++) {
		if (km_p11.objects[i]->handle == h) {
			break;
		}
	}
	if (i == km_p11.nobjects
	    || !km_p11_object_visible(km_p11.objects[i])) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	o = km_p11.objects[i];
	if (o->session == 0 && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
		goto out;
	}
	if (o->from_mesh) {
		if (o->cls != CKO_PRIVATE_KEY) {
			/* the public half lives as long as the key */
			rv = CKR_ACTION_PROHIBITED;
			goto out;
		}
		snprintf(key_id, sizeof(key_id), "%s", o->key->key_id);
		goto out;
	}
	if (o->from_catalog) {
		if (!km_p11.logged_in) {
			rv = CKR_USER_NOT_LOGGED_IN;
		} else if (!km_p11_attr_bool(o, CKA_DESTROYABLE)) {
			rv = CKR_ACTION_PROHIBITED;
		} else {
			snprintf(
			    object_id, sizeof(object_id), "%s", o->object_id);
		}
		goto out;
	}
	km_p11_table_remove(i);
out:
	km_p11_unlock(km_p11.lock);
	if (rv == CKR_OK && object_id[0] != '\0') {
		/* a catalog object: gone for every client */
		memset(&p, 0, sizeof(p));
		p.type = KM_CAT_OBJECT_DELETE;
		snprintf(p.object_id, sizeof(p.object_id), "%s", object_id);
		if ((rv = km_p11_catalog_append(&p)) != CKR_OK) {
			return rv;
		}
		return km_p11_view_sync(true);
	}
	if (rv != CKR_OK || key_id[0] == '\0') {
		return rv;
	}
	/* a mesh key: destroying it is the admin's act in the catalog */
	if ((admin = km_p11_admin()) == NULL) {
		return CKR_ACTION_PROHIBITED;
	}
	if ((r = km_mesh_key_destroy(admin, key_id, err, sizeof(err))) != 0) {
		km_log_warn_r(r, "P11-DESTROY", "key %s: %s", key_id, err);
		return km_p11_ckr(r);
	}
	return km_p11_view_sync(true);
}
