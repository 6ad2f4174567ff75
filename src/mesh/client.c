#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mesh/client.h"
#include "net/relay.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/secmem.h"

struct km_mesh {
	km_mesh_conf conf;
	km_net_creds *creds;
	km_net_client *clients[KM_MESH_MAX_NODES];
	EVP_PKEY *key;
	uint8_t *der;
	size_t derlen;
	km_identity id; /* from our own certificate */
};

static const char *const km_mesh_keys_mesh[] = { "node", "threshold",
	"partition", NULL };
static const char *const km_mesh_keys_tls[] = { "ca", "crl", "cert", "key",
	NULL };
static const char *const km_mesh_keys_admin[] = { "cert", "key", "ca_dir",
	NULL };
static const char *const km_mesh_keys_client[] = { "timeout_ms",
	"hedge_ms", "connect_ms", "view_refresh_ms", NULL };
static const char *const km_mesh_keys_none[] = { NULL };

const char *
km_mesh_conf_path(const char *explicit_path)
{
	const char *e = getenv("KEYMESH_CONF");

	if (explicit_path != NULL && *explicit_path != '\0') {
		return explicit_path;
	}
	if (e != NULL && *e != '\0') {
		return e;
	}
	return KM_SYSCONFDIR "/keymesh/client.conf";
}

static int
km_mesh_path(const km_conf *c, const char *sec, const char *key, char *out,
    size_t outlen, char *err, size_t errlen)
{
	const char *v = km_conf_get(c, sec, key);

	out[0] = '\0';
	if (v == NULL || *v == '\0') {
		return 0;
	}
	if (km_conf_resolve_path(c, v, out, outlen) != 0) {
		snprintf(err, errlen, "%s: [%s] %s is too long", c->path, sec,
		    key);
		return KM_ERR_CONFIG;
	}
	return 0;
}

int
km_mesh_conf_load(const char *path, km_mesh_conf *mc, char *err,
    size_t errlen)
{
	const char *v;
	km_conf c;
	uint64_t u;
	size_t i;
	int r;

	memset(mc, 0, sizeof(*mc));
	if ((r = km_conf_load(path, &c, err, errlen)) != 0) {
		return r;
	}
	snprintf(mc->path, sizeof(mc->path), "%s", path);
	for (i = 0; i < c.count; i++) {
		const char *s = c.items[i].section;
		if (strcmp(s, "") != 0 && strcmp(s, "mesh") != 0 &&
		    strcmp(s, "tls") != 0 && strcmp(s, "admin") != 0 &&
		    strcmp(s, "client") != 0) {
			snprintf(err, errlen, "%s:%u: unknown section [%s]",
			    path, c.items[i].line, s);
			r = KM_ERR_CONFIG;
			goto out;
		}
	}
	if ((r = km_conf_check_keys(&c, "", km_mesh_keys_none, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "mesh", km_mesh_keys_mesh, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "tls", km_mesh_keys_tls, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "admin", km_mesh_keys_admin, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "client", km_mesh_keys_client, err,
		 errlen)) != 0) {
		goto out;
	}
	for (i = 0; i < c.count; i++) {
		km_conf_item *it = &c.items[i];
		char name[128], url[300];

		if (strcmp(it->section, "mesh") != 0 ||
		    strcmp(it->key, "node") != 0) {
			continue;
		}
		if (sscanf(it->value, "%127s %299s", name, url) != 2 ||
		    !km_name_valid(name) ||
		    strncmp(url, "tls+tcp://", 10) != 0 ||
		    strlen(url) >= sizeof(mc->nodes[0].url)) {
			snprintf(err, errlen,
			    "%s:%u: node must be 'NAME tls+tcp://HOST:PORT'",
			    path, it->line);
			r = KM_ERR_CONFIG;
			goto out;
		}
		if (mc->nnodes == KM_MESH_MAX_NODES) {
			snprintf(err, errlen, "%s:%u: more than %d nodes", path,
			    it->line, KM_MESH_MAX_NODES);
			r = KM_ERR_CONFIG;
			goto out;
		}
		snprintf(mc->nodes[mc->nnodes].name, KM_NAME_MAX + 1, "%s",
		    name);
		snprintf(mc->nodes[mc->nnodes].url, 256, "%s", url);
		mc->nnodes++;
	}
	if (mc->nnodes == 0) {
		snprintf(err, errlen, "%s: [mesh] lists no node", path);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if ((r = km_conf_get_uint(&c, "mesh", "threshold", 1, mc->nnodes,
		 (mc->nnodes / 2) + 1, &u, err, errlen)) != 0) {
		goto out;
	}
	mc->threshold = (uint32_t)u;
	v = km_conf_get(&c, "mesh", "partition");
	snprintf(mc->partition, sizeof(mc->partition), "%s",
	    v ? v : "default");
	if (!km_name_valid(mc->partition)) {
		snprintf(err, errlen, "%s: [mesh] partition is not a valid "
				      "name",
		    path);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if ((r = km_mesh_path(&c, "tls", "ca", mc->ca, sizeof(mc->ca), err,
		 errlen)) != 0 ||
	    (r = km_mesh_path(&c, "tls", "crl", mc->crl, sizeof(mc->crl), err,
		 errlen)) != 0 ||
	    (r = km_mesh_path(&c, "tls", "cert", mc->cert, sizeof(mc->cert),
		 err, errlen)) != 0 ||
	    (r = km_mesh_path(&c, "tls", "key", mc->key, sizeof(mc->key), err,
		 errlen)) != 0 ||
	    (r = km_mesh_path(&c, "admin", "cert", mc->admin_cert,
		 sizeof(mc->admin_cert), err, errlen)) != 0 ||
	    (r = km_mesh_path(&c, "admin", "key", mc->admin_key,
		 sizeof(mc->admin_key), err, errlen)) != 0 ||
	    (r = km_mesh_path(&c, "admin", "ca_dir", mc->ca_dir,
		 sizeof(mc->ca_dir), err, errlen)) != 0) {
		goto out;
	}
	if (mc->ca[0] == '\0') {
		snprintf(err, errlen, "%s: [tls] ca is required", path);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if ((r = km_conf_get_uint(&c, "client", "timeout_ms", 100, 600000,
		 2000, &u, err, errlen)) != 0) {
		goto out;
	}
	mc->timeout_ms = (uint32_t)u;
	if ((r = km_conf_get_uint(&c, "client", "hedge_ms", 0, 60000, 0, &u,
		 err, errlen)) != 0) {
		goto out;
	}
	mc->hedge_ms = (uint32_t)u;
	if ((r = km_conf_get_uint(&c, "client", "connect_ms", 100, 600000,
		 2000, &u, err, errlen)) != 0) {
		goto out;
	}
	mc->connect_ms = (uint32_t)u;
	/* 0 turns the module's trust/load view off; else at least 100 ms
	 * (each refresh is one or two small requests) */
	if ((r = km_conf_get_uint(&c, "client", "view_refresh_ms", 0, 3600000,
		 2000, &u, err, errlen)) != 0) {
		goto out;
	}
	if (u > 0 && u < 100) {
		snprintf(err, errlen,
		    "%s: [client] view_refresh_ms must be 0 (off) or from "
		    "100 to 3600000, not '%llu'",
		    path, (unsigned long long)u);
		r = KM_ERR_CONFIG;
		goto out;
	}
	mc->view_refresh_ms = (uint32_t)u;
	r = 0;
out:
	km_conf_free(&c);
	return r;
}

static int
km_mesh_read(const char *path, const char *what, char **out, char *err,
    size_t errlen)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	if (path[0] == '\0') {
		snprintf(err, errlen, "the client config names no %s", what);
		return KM_ERR_CONFIG;
	}
	if ((r = km_read_file(path, &data, &len, 1u << 20)) != 0) {
		snprintf(err, errlen, "cannot read the %s %s: %s", what, path,
		    r == KM_ERR_NOT_FOUND ? "no such file" : km_strerror(r));
		return r;
	}
	*out = (char *)data;
	return 0;
}

/*
 * With @relay, the node clients go through the relay helper (channel 0
 * for the client identity, 1 for the admin identity) and nothing here
 * touches nng: no transport credentials are made (km_mesh_creds() is
 * NULL), only the identity key and certificate are loaded, for the
 * entries an admin signs itself.
 */
static int
km_mesh_open_any(const km_mesh_conf *conf, km_role role, km_net_relay *relay,
    km_mesh **out, char *err, size_t errlen)
{
	const char *certp = role == KM_ROLE_ADMIN ? conf->admin_cert :
						    conf->cert;
	const char *keyp = role == KM_ROLE_ADMIN ? conf->admin_key : conf->key;
	char *ca = NULL, *crl = NULL, *cert = NULL, *key = NULL;
	const km_identity *me;
	km_mesh *m;
	X509 *x = NULL;
	BIO *bio = NULL;
	unsigned char *der = NULL;
	int r, len;
	size_t i;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		return KM_ERR_ALLOC;
	}
	m->conf = *conf;
	if ((r = km_mesh_read(conf->ca, "CA certificate", &ca, err,
		 errlen)) != 0 ||
	    (conf->crl[0] != '\0' &&
		(r = km_mesh_read(conf->crl, "CRL", &crl, err, errlen)) !=
		    0) ||
	    (r = km_mesh_read(certp, role == KM_ROLE_ADMIN ?
			 "admin certificate" :
			 "client certificate",
		 &cert, err, errlen)) != 0 ||
	    (r = km_mesh_read(keyp, "private key", &key, err, errlen)) != 0) {
		goto out;
	}
	if (relay == NULL &&
	    (r = km_net_creds_new(ca, crl, cert, key, &m->creds)) != 0) {
		snprintf(err, errlen, "the identity %s is not usable: %s",
		    certp, km_strerror(r));
		goto out;
	}
	if ((bio = BIO_new_mem_buf(cert, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    (r = km_pki_identity(x, &m->id)) != 0) {
		snprintf(err, errlen, "cannot read the certificate %s", certp);
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	X509_free(x);
	x = NULL;
	BIO_free(bio);
	bio = NULL;
	me = m->creds != NULL ? km_net_creds_identity(m->creds) : &m->id;
	if (me->role != role) {
		snprintf(err, errlen, "%s is a %s certificate, not %s", certp,
		    km_role_name(me->role), km_role_name(role));
		r = KM_ERR_AUTH;
		goto out;
	}
	if ((bio = BIO_new_mem_buf(key, -1)) == NULL ||
	    (m->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) ==
		NULL) {
		snprintf(err, errlen, "cannot read the private key %s", keyp);
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	BIO_free(bio);
	if ((bio = BIO_new_mem_buf(cert, -1)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL ||
	    (len = i2d_X509(x, &der)) <= 0) {
		snprintf(err, errlen, "cannot read the certificate %s", certp);
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if ((m->der = malloc((size_t)len)) == NULL) {
		r = KM_ERR_ALLOC;
		goto out;
	}
	memcpy(m->der, der, (size_t)len);
	m->derlen = (size_t)len;
	for (i = 0; i < conf->nnodes; i++) {
		if (relay != NULL) {
			r = km_net_relay_client_open(relay, NULL,
			    role == KM_ROLE_ADMIN ? 1 : 0, (unsigned)i,
			    conf->nodes[i].name, &m->clients[i]);
		} else {
			r = km_net_client_open(m->creds, conf->nodes[i].url,
			    conf->nodes[i].name, NULL, &m->clients[i]);
		}
		if (r != 0) {
			snprintf(err, errlen, "cannot set up node %s at %s: %s",
			    conf->nodes[i].name, conf->nodes[i].url,
			    km_strerror(r));
			goto out;
		}
	}
	*out = m;
	m = NULL;
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(bio);
	free(ca);
	free(crl);
	free(cert);
	if (key != NULL) {
		km_secret_wipe(key, strlen(key));
	}
	free(key);
	km_mesh_close(m);
	return r;
}

int
km_mesh_open(const km_mesh_conf *conf, km_role role, km_mesh **out,
    char *err, size_t errlen)
{
	return km_mesh_open_any(conf, role, NULL, out, err, errlen);
}

int
km_mesh_open_relay(const km_mesh_conf *conf, km_role role,
    km_net_relay *relay, km_mesh **out, char *err, size_t errlen)
{
	if (relay == NULL) {
		return KM_ERR_INVALID_ARG;
	}
	return km_mesh_open_any(conf, role, relay, out, err, errlen);
}

const km_identity *
km_mesh_identity(const km_mesh *m)
{
	return &m->id;
}

void
km_mesh_close(km_mesh *m)
{
	size_t i;

	if (m == NULL) {
		return;
	}
	for (i = 0; i < m->conf.nnodes; i++) {
		km_net_client_close(m->clients[i]);
	}
	km_net_creds_free(m->creds);
	EVP_PKEY_free(m->key);
	free(m->der);
	free(m);
}

size_t
km_mesh_count(const km_mesh *m)
{
	return m->conf.nnodes;
}

const char *
km_mesh_name(const km_mesh *m, size_t i)
{
	return i < m->conf.nnodes ? m->conf.nodes[i].name : NULL;
}

km_net_client *
km_mesh_client(const km_mesh *m, size_t i)
{
	return i < m->conf.nnodes ? m->clients[i] : NULL;
}

long
km_mesh_find(const km_mesh *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->conf.nnodes; i++) {
		if (strcmp(m->conf.nodes[i].name, name) == 0) {
			return (long)i;
		}
	}
	return -1;
}

km_net_creds *
km_mesh_creds(const km_mesh *m)
{
	return m->creds;
}

EVP_PKEY *
km_mesh_key(const km_mesh *m)
{
	return m->key;
}

int
km_mesh_cert_der(const km_mesh *m, const uint8_t **der, size_t *len)
{
	*der = m->der;
	*len = m->derlen;
	return 0;
}

const km_mesh_conf *
km_mesh_conf_of(const km_mesh *m)
{
	return &m->conf;
}
