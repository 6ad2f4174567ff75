/*
 * keymesh ca init | cert issue | cert revoke
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "keymesh.h"
#include "pki/pki.h"
#include "util/err.h"
#include "util/util.h"

static int
kmc_ca_init(int argc, char **argv)
{
	static const char *const names[] = { "dir" };
	const char *v[1];
	int r;

	if ((r = kmc_opts("ca init", argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage("ca init", "--dir is required");
	}
	switch ((r = km_pki_ca_init(v[0], 0))) {
	case 0:
		printf("mesh CA created in %s (ca.crt, ca.key mode 0600, "
		       "crl.pem)\n",
		    v[0]);
		return 0;
	case KM_ERR_NOT_FOUND:
		return kmc_fail("ca init", "directory %s does not exist", v[0]);
	case KM_ERR_EXISTS:
		return kmc_fail("ca init", "a mesh CA already exists in %s",
		    v[0]);
	default:
		return kmc_fail("ca init", "cannot create the CA in %s: %s",
		    v[0], km_strerror(r));
	}
}

static int
kmc_cert_issue(int argc, char **argv)
{
	static const char *const names[] = { "dir", "kind", "name", "days" };
	const char *v[4];
	km_role role;
	unsigned days = 0;
	int r;

	if ((r = kmc_opts("cert issue", argc, argv, names, v, 4)) != 0) {
		return r;
	}
	if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
		return kmc_usage("cert issue", "--dir, --kind and --name are "
					       "required");
	}
	if (km_role_parse(v[1], &role) != 0) {
		return kmc_fail("cert issue",
		    "invalid kind '%s': use node, client or admin", v[1]);
	}
	if (!km_name_valid(v[2])) {
		return kmc_fail("cert issue",
		    "invalid name '%s': use 1-63 of A-Z a-z 0-9 . _ - "
		    "starting with a letter or digit",
		    v[2]);
	}
	if (v[3] != NULL) {
		char *end;
		unsigned long d = strtoul(v[3], &end, 10);
		if (*v[3] == '\0' || *end != '\0' || d == 0 || d > 36500) {
			return kmc_fail("cert issue",
			    "invalid --days '%s': use 1..36500", v[3]);
		}
		days = (unsigned)d;
	}
	switch ((r = km_pki_cert_issue(v[0], role, v[2], days))) {
	case 0:
		printf("issued %s certificate for %s: %s/certs/%s.crt, key "
		       "%s/private/%s.key\n",
		    v[1], v[2], v[0], v[2], v[0], v[2]);
		return 0;
	case KM_ERR_NOT_FOUND:
		return kmc_fail("cert issue", "no mesh CA in %s (run keymesh "
					      "ca init first)",
		    v[0]);
	case KM_ERR_EXISTS:
		return kmc_fail("cert issue",
		    "a certificate named %s was already issued", v[2]);
	default:
		return kmc_fail("cert issue", "cannot issue %s: %s", v[2],
		    km_strerror(r));
	}
}

static int
kmc_cert_revoke(int argc, char **argv)
{
	static const char *const names[] = { "dir", "name" };
	const char *v[2];
	int r;

	if ((r = kmc_opts("cert revoke", argc, argv, names, v, 2)) != 0) {
		return r;
	}
	if (v[0] == NULL || v[1] == NULL) {
		return kmc_usage("cert revoke", "--dir and --name are required");
	}
	if (!km_name_valid(v[1])) {
		return kmc_fail("cert revoke", "invalid name '%s'", v[1]);
	}
	switch ((r = km_pki_cert_revoke(v[0], v[1]))) {
	case 0:
		printf("revoked %s; %s/crl.pem updated\n", v[1], v[0]);
		return 0;
	case KM_ERR_NOT_FOUND: {
		char path[4096];
		struct stat st;
		if (km_pki_path(path, sizeof(path), v[0], "ca.crt", NULL) !=
			0 ||
		    stat(path, &st) != 0) {
			return kmc_fail("cert revoke", "no mesh CA in %s", v[0]);
		}
		return kmc_fail("cert revoke", "no certificate named %s in %s",
		    v[1], v[0]);
	}
	case KM_ERR_EXISTS:
		return kmc_fail("cert revoke", "%s is already revoked", v[1]);
	default:
		return kmc_fail("cert revoke", "cannot revoke %s: %s", v[1],
		    km_strerror(r));
	}
}

/* keymesh mesh init: the CA plus the operator's admin identity. */
static int
kmc_mesh_init(int argc, char **argv)
{
	static const char *const names[] = { "dir", "admin" };
	const char *v[2];
	const char *admin;
	int r;

	if ((r = kmc_opts("mesh init", argc, argv, names, v, 2)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage("mesh init", "--dir is required");
	}
	admin = v[1] ? v[1] : "admin";
	if (!km_name_valid(admin)) {
		return kmc_fail("mesh init", "invalid admin name '%s'", admin);
	}
	switch ((r = km_pki_ca_init(v[0], 0))) {
	case 0:
		break;
	case KM_ERR_NOT_FOUND:
		return kmc_fail("mesh init", "directory %s does not exist",
		    v[0]);
	case KM_ERR_EXISTS:
		return kmc_fail("mesh init", "a mesh CA already exists in %s",
		    v[0]);
	default:
		return kmc_fail("mesh init", "cannot create the CA in %s: %s",
		    v[0], km_strerror(r));
	}
	if ((r = km_pki_cert_issue(v[0], KM_ROLE_ADMIN, admin, 0)) != 0) {
		return kmc_fail("mesh init", "cannot issue the admin identity: "
					     "%s",
		    km_strerror(r));
	}
	printf("mesh created in %s: CA and admin identity '%s'\n", v[0],
	    admin);
	return 0;
}

/* keymesh node|client enroll: cert issue with the kind implied. */
static int
kmc_enroll(const char *cmd, const char *kind, int argc, char **argv)
{
	static const char *const names[] = { "dir", "name", "days" };
	const char *v[3];
	char *args[8];
	int r, n = 0;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 3)) != 0) {
		return r;
	}
	if (v[0] == NULL || v[1] == NULL) {
		return kmc_usage(cmd, "--dir and --name are required");
	}
	args[n++] = (char *)"--dir";
	args[n++] = (char *)v[0];
	args[n++] = (char *)"--kind";
	args[n++] = (char *)kind;
	args[n++] = (char *)"--name";
	args[n++] = (char *)v[1];
	if (v[2] != NULL) {
		args[n++] = (char *)"--days";
		args[n++] = (char *)v[2];
	}
	return kmc_cert_issue(n, args);
}

static int
kmc_node_enroll(int argc, char **argv)
{
	return kmc_enroll("node enroll", "node", argc, argv);
}

static int
kmc_client_enroll(int argc, char **argv)
{
	return kmc_enroll("client enroll", "client", argc, argv);
}

const kmc_command kmc_pki_commands[] = {
	{ "mesh", "init", "--dir DIR [--admin NAME]",
	    "create a mesh: its CA and the operator's admin identity",
	    kmc_mesh_init },
	{ "node", "enroll", "--dir DIR --name NAME [--days N]",
	    "issue a node identity (same as cert issue --kind node)",
	    kmc_node_enroll },
	{ "client", "enroll", "--dir DIR --name NAME [--days N]",
	    "issue a client identity (same as cert issue --kind client)",
	    kmc_client_enroll },
	{ "ca", "init", "--dir DIR", "create the mesh CA in an existing DIR",
	    kmc_ca_init },
	{ "cert", "issue", "--dir DIR --kind node|client|admin --name NAME "
			   "[--days N]",
	    "issue a certificate and key for NAME", kmc_cert_issue },
	{ "cert", "revoke", "--dir DIR --name NAME",
	    "revoke NAME's certificate and re-sign the CRL", kmc_cert_revoke },
	{ NULL, NULL, NULL, NULL, NULL },
};
