/*
 * A process's view of its mesh, from a client config (client.conf): the
 * nodes and their endpoints, the mesh CA and CRL, this process's identity
 * (a client certificate for applications, an admin certificate for the
 * admin CLI), timeouts.  Shared by the admin CLI and the PKCS#11 module.
 *
 * client.conf:
 *   [mesh]
 *   node = NAME tls+tcp://HOST:PORT      (one line per node, in order)
 *   threshold = K                        (default for new keys)
 *   partition = NAME                     (default "default")
 *   [tls]      ca = ..  crl = ..  cert = ..  key = ..   (the client)
 *   [admin]    cert = ..  key = ..  ca_dir = ..         (the operator)
 *   [client]   timeout_ms = 2000  hedge_ms = 0  connect_ms = 2000
 *              view_refresh_ms = 2000  (0: no trust/load view)
 * Relative paths are relative to the file.  Unknown settings are errors.
 */
#ifndef KM_MESH_CLIENT_H
#define KM_MESH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "pki/pki.h"
#include "util/util.h"

#define KM_MESH_MAX_NODES 32

typedef struct km_mesh_node_conf {
	char name[KM_NAME_MAX + 1];
	char url[256];
} km_mesh_node_conf;

typedef struct km_mesh_conf {
	char path[4096];
	km_mesh_node_conf nodes[KM_MESH_MAX_NODES];
	size_t nnodes;
	uint32_t threshold;
	char partition[KM_NAME_MAX + 1];
	char ca[4096], crl[4096], cert[4096], key[4096];
	char admin_cert[4096], admin_key[4096], ca_dir[4096];
	uint32_t timeout_ms, hedge_ms, connect_ms;
	uint32_t view_refresh_ms; /* 0: the module keeps no trust view */
} km_mesh_conf;

/**
 * km_mesh_conf_load:
 * @path: the client config
 * @conf: receives it
 * @err: receives one line naming what was wrong
 */
int km_mesh_conf_load(const char *path, km_mesh_conf *conf, char *err,
    size_t errlen);

/**
 * km_mesh_conf_path:
 * The config a process should use: @explicit if given, else $KEYMESH_CONF,
 * else the system default (sysconfdir/keymesh/client.conf).
 */
const char *km_mesh_conf_path(const char *explicit_path);

typedef struct km_mesh km_mesh;

/**
 * km_mesh_open:
 * @conf: a loaded config
 * @role: KM_ROLE_CLIENT (the [tls] identity) or KM_ROLE_ADMIN ([admin])
 * @out: receives the mesh: credentials and one client per node, dialing
 *   in the background
 * @err: one line naming what was wrong
 */
int km_mesh_open(const km_mesh_conf *conf, km_role role, km_mesh **out,
    char *err, size_t errlen);

/**
 * km_mesh_open_relay:
 * As km_mesh_open(), but every node client goes through @relay (a forked
 * child's transport, net/relay.h); km_mesh_creds() is then NULL.
 * Close the mesh before stopping the relay.
 */
struct km_net_relay;
int km_mesh_open_relay(const km_mesh_conf *conf, km_role role,
    struct km_net_relay *relay, km_mesh **out, char *err, size_t errlen);

void km_mesh_close(km_mesh *m);

/** km_mesh_identity: our own identity (from our certificate). */
const km_identity *km_mesh_identity(const km_mesh *m);

/** km_mesh_conf_of: the config the mesh was opened with. */
const km_mesh_conf *km_mesh_conf_of(const km_mesh *m);

size_t km_mesh_count(const km_mesh *m);
const char *km_mesh_name(const km_mesh *m, size_t i);
km_net_client *km_mesh_client(const km_mesh *m, size_t i);
/** km_mesh_find: the index of node @name, or -1. */
long km_mesh_find(const km_mesh *m, const char *name);
/* NULL for a mesh opened through a relay */
km_net_creds *km_mesh_creds(const km_mesh *m);
/** km_mesh_key: this process's identity key (for signing entries). */
EVP_PKEY *km_mesh_key(const km_mesh *m);
/** km_mesh_cert_der: this process's certificate, DER. */
int km_mesh_cert_der(const km_mesh *m, const uint8_t **der, size_t *len);

#endif /* KM_MESH_CLIENT_H */
