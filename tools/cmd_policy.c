/*
 * keymesh policy show|set: the mesh's posture policy (docs/trust.md,
 * "Posture policy"), a KM_CAT_POSTURE_SET catalog entry signed by the
 * admin.  `set` replaces the whole policy: what it does not name is
 * allowed.  Every bad argument is refused with one line before the mesh is
 * asked, so nothing changes.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymesh.h"
#include "mesh/admin.h"
#include "mesh/client.h"
#include "mesh/rpc.h"
#include "proto/proto.h"
#include "store/catalog.h"
#include "trust/policy.h"
#include "util/err.h"
#include "util/util.h"

#define KMC_POLICY_FETCH 64

static int
kmc_policy_open(
    const char *cmd, const char *conf, km_mesh_conf *mc, km_mesh **m)
{
	char err[512];
	size_t i;

	if (km_mesh_conf_load(km_mesh_conf_path(conf), mc, err, sizeof(err))
	        != 0
	    || km_mesh_open(mc, KM_ROLE_ADMIN, m, err, sizeof(err)) != 0) {
		return kmc_fail(cmd, "%s", err);
	}
	for (i = 0; i < km_mesh_count(*m); i++) {
		(void)km_net_client_wait_connected(
		    km_mesh_client(*m, i), (int)mc->connect_ms);
	}
	return 0;
}

/*
 * @s as one safe line for an error message: at most 64 characters, each
 * one that is not printable ASCII shown as '?', so that a value with a
 * newline or a terminal escape cannot split or forge the one-line error.
 */
static const char *
kmc_policy_shown(const char *s, char out[68])
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < 64; i++) {
		out[i] = (s[i] >= 0x20 && s[i] <= 0x7e) ? s[i] : '?';
	}
	if (s[i] != '\0') {
		out[i++] = '.';
		out[i++] = '.';
		out[i++] = '.';
	}
	out[i] = '\0';
	return out;
}

/* A number in [lo, hi], all digits. */
static bool
kmc_policy_uint(
    const char *s, unsigned long lo, unsigned long hi, uint32_t *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9') {
		return false;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi) {
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* Parses `policy set` arguments into @p; 0, or 2 after one line. */
static int
kmc_policy_parse(
    const char *cmd, int argc, char **argv, km_posture *p, const char **conf)
{
	char shown[68];
	size_t j;
	int i;

	km_posture_init(p);
	*conf = NULL;
	for (i = 0; i < argc; i++) {
		const char *o = argv[i], *v;

		if (strncmp(o, "--", 2) != 0) {
			return kmc_usage(cmd, "unexpected argument '%s'",
			    kmc_policy_shown(o, shown));
		}
		if (strcmp(o, "--allow-binary") != 0
		    && strcmp(o, "--allow-version") != 0
		    && strcmp(o, "--allow-token-model") != 0
		    && strcmp(o, "--secure-boot") != 0
		    && strcmp(o, "--max-beacon-age") != 0
		    && strcmp(o, "--refresh-interval") != 0
		    && strcmp(o, "--conf") != 0) {
			return kmc_usage(cmd, "unknown option '%s'",
			    kmc_policy_shown(o, shown));
		}
		if (i + 1 >= argc) {
			return kmc_usage(cmd, "option %s needs a value",
			    kmc_policy_shown(o, shown));
		}
		v = argv[++i];
		if (strcmp(o, "--allow-binary") == 0) {
			uint8_t h[32];

			if (strlen(v) != 64) {
				return kmc_usage(cmd,
				    "--allow-binary needs a SHA-256 in 64 hex "
				    "digits, not '%s'",
				    kmc_policy_shown(v, shown));
			}
			if (km_unhex(v, h, sizeof(h)) != 0) {
				return kmc_usage(cmd,
				    "--allow-binary '%s' is not hex",
				    kmc_policy_shown(v, shown));
			}
			for (j = 0; j < p->nbinaries; j++) {
				if (memcmp(p->binaries[j], h, 32) == 0) {
					return kmc_usage(cmd,
					    "--allow-binary %s given twice",
					    kmc_policy_shown(v, shown));
				}
			}
			if (p->nbinaries == KM_POSTURE_MAX_BINARIES) {
				return kmc_usage(cmd,
				    "at most %u --allow-binary",
				    KM_POSTURE_MAX_BINARIES);
			}
			memcpy(p->binaries[p->nbinaries++], h, 32);
		} else if (strcmp(o, "--allow-version") == 0) {
			if (*v == '\0'
			    || !km_beacon_text_valid(
			        v, KM_BEACON_VERSION_MAX)) {
				return kmc_usage(cmd,
				    "--allow-version needs 1 to %u printable "
				    "characters without quotes",
				    KM_BEACON_VERSION_MAX);
			}
			for (j = 0; j < p->nversions; j++) {
				if (strcmp(p->versions[j], v) == 0) {
					return kmc_usage(cmd,
					    "--allow-version %s given twice",
					    kmc_policy_shown(v, shown));
				}
			}
			if (p->nversions == KM_POSTURE_MAX_VERSIONS) {
				return kmc_usage(cmd,
				    "at most %u --allow-version",
				    KM_POSTURE_MAX_VERSIONS);
			}
			snprintf(p->versions[p->nversions++],
			    sizeof(p->versions[0]), "%s", v);
		} else if (strcmp(o, "--allow-token-model") == 0) {
			if (*v == '\0'
			    || !km_beacon_text_valid(
			        v, KM_BEACON_TOKEN_MODEL_MAX)) {
				return kmc_usage(cmd,
				    "--allow-token-model needs 1 to %u "
				    "printable characters without quotes",
				    KM_BEACON_TOKEN_MODEL_MAX);
			}
			for (j = 0; j < p->nmodels; j++) {
				if (strcmp(p->models[j], v) == 0) {
					return kmc_usage(cmd,
					    "--allow-token-model %s given "
					    "twice",
					    kmc_policy_shown(v, shown));
				}
			}
			if (p->nmodels == KM_POSTURE_MAX_MODELS) {
				return kmc_usage(cmd,
				    "at most %u --allow-token-model",
				    KM_POSTURE_MAX_MODELS);
			}
			snprintf(p->models[p->nmodels++], sizeof(p->models[0]),
			    "%s", v);
		} else if (strcmp(o, "--secure-boot") == 0) {
			if (strcmp(v, "required") == 0) {
				p->secure_boot = true;
			} else if (strcmp(v, "any") == 0) {
				p->secure_boot = false;
			} else {
				return kmc_usage(cmd,
				    "--secure-boot is 'required' or 'any', "
				    "not '%s'",
				    kmc_policy_shown(v, shown));
			}
		} else if (strcmp(o, "--max-beacon-age") == 0) {
			if (!kmc_policy_uint(v, KM_POSTURE_AGE_MIN_MS,
			        KM_POSTURE_AGE_MAX_MS, &p->max_age_ms)) {
				return kmc_usage(cmd,
				    "--max-beacon-age is a number of ms from "
				    "%u to %u, not '%s'",
				    KM_POSTURE_AGE_MIN_MS,
				    KM_POSTURE_AGE_MAX_MS,
				    kmc_policy_shown(v, shown));
			}
		} else if (strcmp(o, "--refresh-interval") == 0) {
			if (!kmc_policy_uint(v, 0, KM_POSTURE_REFRESH_MAX_S,
			        &p->refresh_s)
			    || (p->refresh_s != 0
			        && p->refresh_s < KM_POSTURE_REFRESH_MIN_S)) {
				return kmc_usage(cmd,
				    "--refresh-interval is 0 (off) or %u to %u "
				    "seconds, not '%s'",
				    KM_POSTURE_REFRESH_MIN_S,
				    KM_POSTURE_REFRESH_MAX_S,
				    kmc_policy_shown(v, shown));
			}
		} else {
			*conf = v;
		}
	}
	return 0;
}

static int
kmc_policy_set(int argc, char **argv)
{
	const char *cmd = "policy set", *conf;
	km_catalog_payload pl;
	km_posture p;
	km_mesh_conf mc;
	km_mesh *m = NULL;
	km_buf enc;
	size_t applied = 0;
	char err[512];
	int r;

	if ((r = kmc_policy_parse(cmd, argc, argv, &p, &conf)) != 0) {
		return r;
	}
	km_buf_init(&enc);
	if (km_posture_encode(&p, &enc) != 0) {
		km_buf_free(&enc);
		return kmc_fail(cmd, "cannot encode the policy");
	}
	if ((r = kmc_policy_open(cmd, conf, &mc, &m)) != 0) {
		km_buf_free(&enc);
		return r;
	}
	memset(&pl, 0, sizeof(pl));
	pl.type = KM_CAT_POSTURE_SET;
	pl.trust = enc.data;
	pl.trust_len = enc.len;
	r = km_mesh_append(m, &pl, &applied, err, sizeof(err));
	km_mesh_close(m);
	km_buf_free(&enc);
	if (r != 0) {
		return kmc_fail(cmd, "posture policy not set: %s", err);
	}
	printf("posture policy set (%zu binaries, %zu versions, %zu token "
	       "models, secure boot %s, max beacon age %s, refresh %u s)\n",
	    p.nbinaries, p.nversions, p.nmodels,
	    p.secure_boot ? "required" : "any",
	    p.max_age_ms ? "set" : "default", p.refresh_s);
	return 0;
}

/*
 * The last POSTURE_SET of the catalog, read from the first node that
 * answers.  @found false: none (everything allowed).
 */
static int
kmc_policy_fetch(km_mesh *m, int timeout_ms, km_posture *p, bool *found,
    uint64_t *at, char *err, size_t errlen)
{
	char msg[KM_PROTO_MESSAGE_MAX + 1] = "";
	size_t i;
	int r = KM_ERR_QUORUM;

	*found = false;
	snprintf(err, errlen, "no node is reachable");
	for (i = 0; i < km_mesh_count(m) && r != 0; i++) {
		uint64_t from = 1, last = 0;

		if (!km_net_client_connected(km_mesh_client(m, i))) {
			continue;
		}
		for (;;) {
			km_buf req, rep;
			uint32_t n = 0, j;

			km_buf_init(&req);
			km_buf_init(&rep);
			r = km_rpc_request(
			    &req, KM_MSG_CATALOG_FETCH, NULL, 0, NULL);
			r = r ? r : km_buf_put_u64(&req, from);
			r = r ? r : km_buf_put_u32(&req, KMC_POLICY_FETCH);
			r = r ? r
			      : km_rpc_call(km_mesh_client(m, i), &req,
			          timeout_ms, &rep, msg, sizeof(msg));
			if (r == 0
			    && (km_buf_get_u64(&rep, &last) != 0
			        || km_buf_get_u32(&rep, &n) != 0
			        || n > KMC_POLICY_FETCH)) {
				r = KM_ERR_BAD_FORMAT;
			}
			for (j = 0; r == 0 && j < n; j++) {
				km_catalog_entry e;
				const uint8_t *d;
				size_t len;

				memset(&e, 0, sizeof(e));
				if (km_buf_get_string_ptr(
				        &rep, &d, &len, KM_CATALOG_ENTRY_MAX)
				        != 0
				    || km_catalog_entry_decode(d, len, &e)
				        != 0) {
					r = KM_ERR_BAD_FORMAT;
					break;
				}
				/* the entries asked for, in order: a reply
				 * that goes back (or skips) would loop or
				 * hide a later policy */
				if (e.seq != from || e.seq > last) {
					km_catalog_entry_clear(&e);
					r = KM_ERR_BAD_FORMAT;
					break;
				}
				/* what every node applied: the last valid
				 * one (an invalid one had no effect) */
				if (e.type == KM_CAT_POSTURE_SET
				    && km_posture_decode(
				           e.payload, e.payload_len, p)
				        == 0) {
					*found = true;
					*at = e.seq;
				}
				from = e.seq + 1;
				km_catalog_entry_clear(&e);
			}
			km_buf_free(&req);
			km_buf_free(&rep);
			if (r != 0) {
				snprintf(err, errlen, "%s: %s",
				    km_mesh_name(m, i),
				    msg[0] ? msg : km_strerror(r));
				break;
			}
			if (n == 0 || from > last) {
				break;
			}
		}
	}
	return r;
}

static int
kmc_policy_show(int argc, char **argv)
{
	static const char *const names[] = { "conf" };
	const char *cmd = "policy show", *v[1];
	char err[512], hex[65];
	km_mesh_conf mc;
	km_mesh *m = NULL;
	km_posture p;
	uint64_t at = 0;
	bool found = false;
	size_t i;
	int r;

	if ((r = kmc_opts(cmd, argc, argv, names, v, 1)) != 0) {
		return r;
	}
	if ((r = kmc_policy_open(cmd, v[0], &mc, &m)) != 0) {
		return r;
	}
	km_posture_init(&p);
	r = kmc_policy_fetch(
	    m, (int)mc.timeout_ms, &p, &found, &at, err, sizeof(err));
	km_mesh_close(m);
	if (r != 0) {
		return kmc_fail(cmd, "cannot read the catalog: %s", err);
	}
	if (!found) {
		printf("posture policy: none set (every node is allowed)\n");
		return 0;
	}
	printf(
	    "posture policy (catalog entry %llu)\n", (unsigned long long)at);
	printf("allowed binaries:    %s\n", p.nbinaries ? "(SHA-256)" : "any");
	for (i = 0; i < p.nbinaries; i++) {
		km_posture_hex(p.binaries[i], 32, hex, sizeof(hex));
		printf("  %s\n", hex);
	}
	printf("allowed versions:    ");
	for (i = 0; i < p.nversions; i++) {
		printf("%s%s", i ? ", " : "", p.versions[i]);
	}
	printf("%s\n", p.nversions ? "" : "any");
	printf("allowed token models: ");
	for (i = 0; i < p.nmodels; i++) {
		printf("%s%s", i ? ", " : "", p.models[i]);
	}
	printf("%s\n", p.nmodels ? "" : "any");
	printf(
	    "secure boot:         %s\n", p.secure_boot ? "required" : "any");
	if (p.max_age_ms != 0) {
		printf("max beacon age:      %u ms\n", p.max_age_ms);
	} else {
		printf("max beacon age:      each node's beacon_max_age_ms\n");
	}
	if (p.refresh_s != 0) {
		printf("proactive refresh:   every %u s\n", p.refresh_s);
	} else {
		printf("proactive refresh:   off\n");
	}
	return 0;
}

const kmc_command kmc_policy_commands[] = {
	{ "policy", "show", "[--conf FILE]",
	    "show the mesh's posture policy (catalog)", kmc_policy_show },
	{ "policy", "set",
	    "[--allow-binary SHA256]... [--allow-version V]... "
	    "[--allow-token-model M]... [--secure-boot required|any] "
	    "[--max-beacon-age MS] [--refresh-interval S] [--conf FILE]",
	    "replace the posture policy (unnamed rules allow anything); "
	    "nodes that fail it are quarantined",
	    kmc_policy_set },
	{ NULL, NULL, NULL, NULL, NULL },
};
