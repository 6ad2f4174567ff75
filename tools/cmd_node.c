/*
 * keymesh node evict NAME [--reason TEXT] [--conf FILE]: an admin's
 * eviction (docs/eviction.md), and the eviction lines of `keymesh status`
 * and `keymesh key list`.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymesh.h"
#include "mesh/admin.h"
#include "mesh/client.h"
#include "mesh/view.h"
#include "util/err.h"
#include "util/util.h"

static void
kmc_evict_warn(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "keymesh: node evict: warning: %s\n", line);
}

static int
kmc_node_evict(int argc, char **argv)
{
	static const char *const names[] = { "conf", "reason" };
	const char *v[2], *node;
	km_mesh_conf mc;
	km_mesh *m = NULL;
	char err[512];
	int r;

	if (argc < 1 || strncmp(argv[0], "--", 2) == 0) {
		return kmc_usage("node evict", "the node's NAME is required");
	}
	node = argv[0];
	if ((r = kmc_opts("node evict", argc - 1, argv + 1, names, v, 2))
	    != 0) {
		return r;
	}
	if (!km_name_valid(node)) {
		/* not echoed as given: a newline or an escape in it would
		 * split or forge the one-line error */
		return kmc_fail("node evict",
		    "the node name is not valid (letters, digits, '-', '_', "
		    "'.', at most %d)",
		    KM_NAME_MAX);
	}
	if ((r = km_mesh_conf_load(
	         km_mesh_conf_path(v[0]), &mc, err, sizeof(err)))
	        != 0
	    || (r = km_mesh_open(&mc, KM_ROLE_ADMIN, &m, err, sizeof(err)))
	        != 0) {
		return kmc_fail("node evict", "%s", err);
	}
	for (size_t i = 0; i < km_mesh_count(m); i++) {
		(void)km_net_client_wait_connected(
		    km_mesh_client(m, i), (int)mc.connect_ms);
	}
	r = km_mesh_node_evict(
	    m, node, v[1], kmc_evict_warn, NULL, err, sizeof(err));
	km_mesh_close(m);
	if (r != 0) {
		return kmc_fail("node evict", "%s", err);
	}
	printf("evicted node '%s': every member refuses it; the coordinator "
	       "re-shares its keys under new epochs\n",
	    node);
	return 0;
}

int
kmc_evict_report(struct km_mesh *m, int timeout_ms)
{
	km_view *v = NULL;
	size_t i, j;
	int r;

	if ((r = km_view_new(m, &v)) != 0
	    || (r = km_view_refresh(v, timeout_ms, NULL)) != 0) {
		km_view_free(v);
		return r;
	}
	for (i = 0; i < km_view_evicted_count(v); i++) {
		printf("evicted: %s\n", km_view_evicted_at(v, i));
	}
	for (i = 0; i < km_view_count(v); i++) {
		const km_view_key *k = km_view_at(v, i);
		size_t keep = 0, drop = 0;

		for (j = 0; j < k->nholders; j++) {
			if (km_view_evicted(v, k->holders[j].node)) {
				drop++;
			} else {
				keep++;
			}
		}
		if (drop == 0) {
			continue;
		}
		if (keep < k->threshold) {
			printf("BELOW-THRESHOLD: key %s (%s) at epoch %u: %zu "
			       "holders left, threshold %u\n",
			    k->label, k->key_id, k->epoch, keep, k->threshold);
		} else {
			printf("re-share pending: key %s (%s) at epoch %u "
			       "still holds %zu evicted index(es)\n",
			    k->label, k->key_id, k->epoch, drop);
		}
	}
	km_view_free(v);
	return 0;
}

const kmc_command kmc_node_commands[] = {
	{ "node", "evict", "NAME [--reason TEXT] [--conf FILE]",
	    "evict a node: it is refused from then on and its keys are "
	    "re-shared among the others",
	    kmc_node_evict },
	{ NULL, NULL, NULL, NULL, NULL },
};
