/*
 * keymesh status | pin init | key create|import|list|destroy|reshare |
 * audit verify
 *
 * Every command finds its mesh from --conf FILE, else $KEYMESH_CONF, else
 * the system client config, and speaks to the daemons as the admin
 * identity named there.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keymesh.h"
#include "mesh/admin.h"
#include "mesh/client.h"
#include "proto/proto.h"
#include "store/audit.h"
#include "store/store.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

static int
kmc_open(const char *cmd, const char *conf, km_role role, km_mesh_conf *mc,
    km_mesh **m)
{
	char err[512];
	const char *path = km_mesh_conf_path(conf);
	int r;

	if ((r = km_mesh_conf_load(path, mc, err, sizeof(err))) != 0) {
		return kmc_fail(cmd, "%s", err);
	}
	if ((r = km_mesh_open(mc, role, m, err, sizeof(err))) != 0) {
		return kmc_fail(cmd, "%s", err);
	}
	/* give the connections a moment to come up together */
	for (size_t i = 0; i < km_mesh_count(*m); i++) {
		(void)km_net_client_wait_connected(km_mesh_client(*m, i),
		    (int)mc->connect_ms);
	}
	return 0;
}

/*
 * The coordinator line: the Raft leader as the reachable nodes name it.
 * A node that leads names itself; followers name the leader they follow.
 * Nodes may briefly disagree during an election: then the name most of
 * them give, with the count.
 */
#define KMC_STATUS_MAX 64

typedef struct kmc_coord {
	char names[KMC_STATUS_MAX][KM_NAME_MAX + 1];
	unsigned votes[KMC_STATUS_MAX];
	size_t n, answered;
	bool raft;
} kmc_coord;

static void
kmc_status_vote(kmc_coord *co, const km_node_status *st)
{
	const char *name;
	size_t k;

	if (st->raft_role[0] == '\0' || strcmp(st->raft_role, "off") == 0) {
		return;
	}
	co->raft = true;
	co->answered++;
	name = strcmp(st->raft_role, "leader") == 0 ? st->name : st->leader;
	if (name[0] == '\0') {
		return;
	}
	for (k = 0; k < co->n; k++) {
		if (strcmp(co->names[k], name) == 0) {
			co->votes[k]++;
			return;
		}
	}
	if (co->n < KMC_STATUS_MAX) {
		snprintf(co->names[co->n], sizeof(co->names[co->n]), "%s",
		    name);
		co->votes[co->n++] = 1;
	}
}

static void
kmc_status_coordinator(const kmc_coord *co)
{
	size_t k, best = 0;

	if (!co->raft) {
		printf("coordinator: none (Raft is off: no [raft] section)\n");
		return;
	}
	if (co->n == 0) {
		printf("coordinator: none (election in progress)\n");
		return;
	}
	for (k = 1; k < co->n; k++) {
		if (co->votes[k] > co->votes[best]) {
			best = k;
		}
	}
	if (co->n == 1) {
		printf("coordinator: %s\n", co->names[best]);
	} else {
		printf("coordinator: %s (named by %u of %zu nodes)\n",
		    co->names[best], co->votes[best], co->answered);
	}
}

static int
kmc_status(int argc, char **argv)
{
	static const char *const names[] = { "conf" };
	const char *v[1];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	kmc_coord co;
	size_t i, up = 0;
	int r;

	if ((r = kmc_opts("status", argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if ((r = kmc_open("status", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		return r;
	}
	memset(&co, 0, sizeof(co));
	printf("%-12s %-5s %-9s %-9s %-8s %-7s %s\n", "NODE", "STATE",
	    "VERSION", "ROLE", "SHARES", "CATALOG", "UPTIME");
	for (i = 0; i < km_mesh_count(m); i++) {
		km_node_status st;

		if (km_mesh_status(m, i, (int)mc.timeout_ms, &st, NULL,
			NULL) == 0) {
			up++;
			printf("%-12s %-5s %-9s %-9s %-8llu %-7llu %llus%s%s\n",
			    km_mesh_name(m, i), "up", st.version,
			    st.raft_role[0] ? st.raft_role : "-",
			    (unsigned long long)st.shares,
			    (unsigned long long)st.catalog_seq,
			    (unsigned long long)(st.uptime_ms / 1000),
			    strcmp(st.keygen, "idle") ? "  " : "",
			    strcmp(st.keygen, "idle") ? st.keygen : "");
			kmc_status_vote(&co, &st);
		} else {
			printf("%-12s %-5s (%s)\n", km_mesh_name(m, i), "down",
			    st.error);
		}
	}
	kmc_status_coordinator(&co);
	printf("%zu of %zu nodes up\n", up, km_mesh_count(m));
	if (up > 0) {
		(void)kmc_evict_report(m, (int)mc.timeout_ms);
	}
	if (up > 0) {
		/* additive: the node lines above stay as they were */
		(void)kmc_status_graph(m, (int)mc.timeout_ms);
	}
	km_mesh_close(m);
	return up > 0 ? 0 : 1;
}

static int
kmc_pin_init(int argc, char **argv)
{
	static const char *const names[] = { "conf", "pin", "partition" };
	const char *v[3];
	char *rest[64];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	char err[1024];
	size_t failed = 0;
	uint32_t user = KM_PROTO_USER_USER;
	int i, nrest = 0, r;

	/* --so takes no value: take it out before the valued options */
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--so") == 0) {
			user = KM_PROTO_USER_SO;
		} else if (nrest < (int)KM_ARRAY_LEN(rest)) {
			rest[nrest++] = argv[i];
		} else {
			return kmc_usage("pin init", "too many arguments");
		}
	}
	if ((r = kmc_opts("pin init", nrest, rest, names, v, 3)) != 0) {
		return r;
	}
	if (v[1] == NULL) {
		return kmc_usage("pin init", "--pin is required");
	}
	if (strlen(v[1]) < 4 || strlen(v[1]) > 64) {
		return kmc_fail("pin init", "a PIN must be 4 to 64 characters");
	}
	if ((r = kmc_open("pin init", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		return r;
	}
	r = km_mesh_pin_init(m, v[2] ? v[2] : mc.partition, user, v[1],
	    &failed, err, sizeof(err));
	if (r != 0) {
		r = kmc_fail("pin init", "%zu node(s) did not take the PIN: %s",
		    failed, err);
	} else {
		fprintf(stderr, "%s PIN of partition %s set on %zu node(s)\n",
		    user == KM_PROTO_USER_SO ? "SO" : "user",
		    v[2] ? v[2] : mc.partition, km_mesh_count(m));
	}
	km_mesh_close(m);
	return r;
}

static void
kmc_progress(void *arg, const char *what)
{
	(void)arg;
	fprintf(stderr, "  %s\n", what);
}

static int
kmc_parse_threshold(const char *cmd, const char *s, const km_mesh_conf *mc,
    uint32_t *k)
{
	char *end;
	unsigned long v;

	if (s == NULL) {
		*k = mc->threshold;
		return 0;
	}
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v == 0 || v > mc->nnodes) {
		return kmc_fail(cmd, "invalid --threshold '%s': use 1..%zu", s,
		    mc->nnodes);
	}
	*k = (uint32_t)v;
	return 0;
}

/* The new key's share count as the catalog has it (evicted nodes are
 * left out of a new key), else @fallback. */
static uint32_t
kmc_holders_of(km_mesh *m, const char *key_id, size_t fallback)
{
	km_key_info info;
	char err[256];

	if (km_mesh_key_find(m, key_id, &info, err, sizeof(err)) == 0) {
		return info.nholders;
	}
	return (uint32_t)fallback;
}

static int
kmc_key_create(int argc, char **argv)
{
	static const char *const names[] = { "conf", "type", "threshold",
		"label", "allow-raw" };
	const char *v[5];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	uint32_t type, bits, k;
	char err[512], key_id[KM_NAME_MAX + 1], tn[32];
	bool raw = false;
	int r;

	if ((r = kmc_opts("key create", argc, argv, names, v, 5)) != 0) {
		return r;
	}
	if (v[1] == NULL || v[3] == NULL) {
		return kmc_usage("key create", "--type and --label are "
					       "required");
	}
	if (km_key_type_parse(v[1], &type, &bits) != 0) {
		return kmc_fail("key create", "invalid --type '%s': use "
					      "rsa:2048, rsa:3072, rsa:4096, "
					      "ec:p256 or ec:p384",
		    v[1]);
	}
	if (!km_name_valid(v[3])) {
		return kmc_fail("key create", "invalid label '%s'", v[3]);
	}
	if (v[4] != NULL) {
		if (strcmp(v[4], "yes") != 0 && strcmp(v[4], "no") != 0) {
			return kmc_fail("key create",
			    "--allow-raw takes yes or no");
		}
		raw = strcmp(v[4], "yes") == 0;
	}
	if ((r = kmc_open("key create", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		return r;
	}
	if ((r = kmc_parse_threshold("key create", v[2], &mc, &k)) != 0) {
		km_mesh_close(m);
		return r;
	}
	fprintf(stderr, "creating %s key '%s', threshold %u...\n", v[1], v[3],
	    k);
	r = km_mesh_key_create(m, type, bits, k, v[3], raw, kmc_progress, NULL,
	    key_id, err, sizeof(err));
	if (r != 0) {
		km_mesh_close(m);
		return kmc_fail("key create", "%s", err);
	}
	printf("created %s key '%s' (id %s), %u of %u\n",
	    km_key_type_name(type, bits, tn, sizeof(tn)), v[3], key_id, k,
	    kmc_holders_of(m, key_id, mc.nnodes));
	km_mesh_close(m);
	return 0;
}

static int
kmc_key_import(int argc, char **argv)
{
	static const char *const names[] = { "conf", "file", "threshold",
		"label", "allow-raw" };
	const char *v[5];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	uint32_t k;
	char err[512], key_id[KM_NAME_MAX + 1];
	bool raw = false;
	int r;

	if ((r = kmc_opts("key import", argc, argv, names, v, 5)) != 0) {
		return r;
	}
	if (v[1] == NULL || v[3] == NULL) {
		return kmc_usage("key import", "--file and --label are "
					       "required");
	}
	if (!km_name_valid(v[3])) {
		return kmc_fail("key import", "invalid label '%s'", v[3]);
	}
	raw = v[4] != NULL && strcmp(v[4], "yes") == 0;
	if ((r = km_read_file(v[1], &data, &len, 1u << 20)) != 0) {
		return kmc_fail("key import", "cannot read %s: %s", v[1],
		    r == KM_ERR_NOT_FOUND ? "no such file" : km_strerror(r));
	}
	if ((r = kmc_open("key import", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		goto out;
	}
	if ((r = kmc_parse_threshold("key import", v[2], &mc, &k)) != 0) {
		goto out;
	}
	r = km_mesh_key_import(m, data, len, k, v[3], raw, key_id, err,
	    sizeof(err));
	if (r != 0) {
		r = kmc_fail("key import", "%s", err);
		goto out;
	}
	printf("imported key '%s' (id %s), %u of %u; the key file is "
	       "still on disk: delete it\n",
	    v[3], key_id, k, kmc_holders_of(m, key_id, mc.nnodes));
	r = 0;
out:
	if (data != NULL) {
		km_secret_wipe(data, len);
	}
	free(data);
	km_mesh_close(m);
	return r;
}

static const char *
kmc_state_name(uint32_t s)
{
	switch (s) {
	case KM_KEY_PENDING:
		return "pending";
	case KM_KEY_ACTIVE:
		return "active";
	case KM_KEY_RESHARING:
		return "resharing";
	case KM_KEY_DESTROYED:
		return "destroyed";
	default:
		return "?";
	}
}

static int
kmc_key_list(int argc, char **argv)
{
	static const char *const names[] = { "conf" };
	const char *v[1];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	km_node_status st;
	km_key_info *keys = NULL;
	size_t nkeys = 0, i, j;
	char tn[32];
	int r;

	if ((r = kmc_opts("key list", argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if ((r = kmc_open("key list", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		return r;
	}
	/* the freshest catalog: a node that is down a while, or evicted
	 * and cut off, answers with an older one */
	{
		uint64_t best = 0;
		bool any = false;

		for (i = 0; i < km_mesh_count(m); i++) {
			km_key_info *k = NULL;
			size_t nk = 0;

			if (km_mesh_status(m, i, (int)mc.timeout_ms, &st, &k,
			        &nk) != 0) {
				continue;
			}
			if (!any || st.catalog_seq > best) {
				free(keys);
				keys = k;
				nkeys = nk;
				best = st.catalog_seq;
				any = true;
			} else {
				free(k);
			}
		}
		i = any ? 0 : km_mesh_count(m);
	}
	if (i == km_mesh_count(m)) {
		km_mesh_close(m);
		return kmc_fail("key list", "no node is reachable");
	}
	printf("%-20s %-18s %-9s %-6s %-6s %s\n", "LABEL", "ID", "TYPE",
	    "K/N", "EPOCH", "STATE");
	for (j = 0; j < nkeys; j++) {
		char kn[16];
		if (keys[j].state == KM_KEY_DESTROYED) {
			continue;
		}
		snprintf(kn, sizeof(kn), "%u/%u", keys[j].threshold,
		    keys[j].nholders);
		printf("%-20s %-18s %-9s %-6s %-6u %s\n", keys[j].label,
		    keys[j].key_id,
		    km_key_type_name(keys[j].key_type, keys[j].bits, tn,
			sizeof(tn)),
		    kn, keys[j].epoch, kmc_state_name(keys[j].state));
	}
	free(keys);
	(void)kmc_evict_report(m, (int)mc.timeout_ms);
	km_mesh_close(m);
	return 0;
}

static int
kmc_key_destroy(int argc, char **argv)
{
	static const char *const names[] = { "conf", "label" };
	const char *v[2];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	char err[512];
	int r;

	if ((r = kmc_opts("key destroy", argc, argv, names, v, 2)) != 0) {
		return r;
	}
	if (v[1] == NULL) {
		return kmc_usage("key destroy", "--label is required");
	}
	if ((r = kmc_open("key destroy", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		return r;
	}
	r = km_mesh_key_destroy(m, v[1], err, sizeof(err));
	km_mesh_close(m);
	if (r != 0) {
		return kmc_fail("key destroy", "%s", err);
	}
	printf("destroyed key '%s'; every holder deletes its shares\n", v[1]);
	return 0;
}

static int
kmc_audit_verify(int argc, char **argv)
{
	static const char *const names[] = { "state-dir" };
	const char *v[1];
	char path[4200];
	struct stat sb;
	km_store *s = NULL;
	uint64_t bad = 0, count = 0;
	int r;

	if ((r = kmc_opts("audit verify", argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if (v[0] == NULL) {
		return kmc_usage("audit verify", "--state-dir is required");
	}
	snprintf(path, sizeof(path), "%s/%s", v[0], KM_STORE_FILE);
	if (stat(path, &sb) != 0) {
		return kmc_fail("audit verify", "no keymeshd state in %s",
		    v[0]);
	}
	if ((r = km_store_open(path, &s)) != 0) {
		return kmc_fail("audit verify", "cannot open %s: %s", path,
		    km_strerror(r));
	}
	r = km_audit_verify(s, &bad, &count);
	km_store_close(s);
	if (r == KM_ERR_VERIFY) {
		return kmc_fail("audit verify",
		    "audit chain of %s is broken at record %llu (modified, "
		    "deleted or reordered)",
		    v[0], (unsigned long long)bad);
	}
	if (r != 0) {
		return kmc_fail("audit verify", "cannot verify %s: %s", v[0],
		    km_strerror(r));
	}
	printf("audit log of %s: %llu records, chain intact\n", v[0],
	    (unsigned long long)count);
	return 0;
}

static int
kmc_key_reshare(int argc, char **argv)
{
	static const char *const names[] = { "conf", "label", "threshold",
		"members" };
	const char *v[4];
	const char *members[KM_CATALOG_MAX_HOLDERS];
	char list[KM_CATALOG_MAX_HOLDERS * (KM_NAME_MAX + 1)];
	char err[512], *tok, *save = NULL, *end;
	km_mesh_conf mc;
	km_mesh *m = NULL;
	size_t nm = 0;
	uint32_t k = 0, epoch = 0;
	unsigned long t;
	int r;

	if ((r = kmc_opts("key reshare", argc, argv, names, v, 4)) != 0) {
		return r;
	}
	if (v[1] == NULL) {
		return kmc_usage("key reshare", "--label is required");
	}
	if (v[2] != NULL) {
		t = strtoul(v[2], &end, 10);
		if (*v[2] == '\0' || *end != '\0' || t == 0 ||
		    t > KM_CATALOG_MAX_HOLDERS) {
			return kmc_fail("key reshare",
			    "invalid --threshold '%s'", v[2]);
		}
		k = (uint32_t)t;
	}
	if (v[3] != NULL) {
		if (strlen(v[3]) >= sizeof(list)) {
			return kmc_fail("key reshare",
			    "--members is too long");
		}
		snprintf(list, sizeof(list), "%s", v[3]);
		for (tok = strtok_r(list, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			if (nm == KM_CATALOG_MAX_HOLDERS ||
			    !km_name_valid(tok)) {
				return kmc_fail("key reshare",
				    "invalid --members '%s': use "
				    "node1,node2,... (a node named twice "
				    "holds two shares)",
				    v[3]);
			}
			members[nm++] = tok;
		}
		if (nm == 0) {
			return kmc_fail("key reshare", "--members is empty");
		}
	}
	if ((r = kmc_open("key reshare", v[0], KM_ROLE_ADMIN, &mc, &m)) != 0) {
		return r;
	}
	/* no banner: an error before the coordinator starts is one line */
	r = km_mesh_key_reshare(m, v[1], k, nm ? members : NULL, nm,
	    kmc_progress, NULL, &epoch, err, sizeof(err));
	km_mesh_close(m);
	if (r != 0) {
		return kmc_fail("key reshare", "%s", err);
	}
	printf("re-shared key '%s': epoch %u is current; the old shares are "
	       "deleted\n",
	    v[1], epoch);
	return 0;
}

const kmc_command kmc_key_commands[] = {
	{ "status", "", "[--conf FILE]",
	    "show each node: up or down, version, shares held",
	    kmc_status },
	{ "pin", "init", "[--so] --pin PIN [--partition P] [--conf FILE]",
	    "set the user PIN (or with --so the SO PIN) of a partition on "
	    "every node",
	    kmc_pin_init },
	{ "key", "create",
	    "--type rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384 --label L "
	    "[--threshold K] [--allow-raw yes|no] [--conf FILE]",
	    "create a key in the mesh (RSA dealer or EC DKG)",
	    kmc_key_create },
	{ "key", "import",
	    "--file KEY.pem --label L [--threshold K] [--allow-raw yes|no] "
	    "[--conf FILE]",
	    "split an existing RSA or EC key into the mesh", kmc_key_import },
	{ "key", "list", "[--conf FILE]", "list the mesh's keys",
	    kmc_key_list },
	{ "key", "destroy", "--label L|ID [--conf FILE]",
	    "destroy a key and every share of it", kmc_key_destroy },
	{ "key", "reshare",
	    "--label L|ID [--threshold K] [--members node1,node2,...] "
	    "[--conf FILE]",
	    "re-share a key: same public key, new shares, old ones deleted",
	    kmc_key_reshare },
	{ "audit", "verify", "--state-dir DIR",
	    "check the hash chain of a node's audit log", kmc_audit_verify },
	{ NULL, NULL, NULL, NULL, NULL },
};
