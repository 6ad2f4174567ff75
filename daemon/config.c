/*
 * keymeshd.conf: read, check every value, refuse unknown settings.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/kmd.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

static const char *const kmd_sections[] = { "", "node", "tls", "token",
	"mesh", "policy", "raft", NULL };
static const char *const kmd_keys_node[] = { "name", "listen", "state_dir",
	"workers", "log_level", "beacon_interval_ms", NULL };
static const char *const kmd_keys_tls[] = { "ca", "crl", "cert", "key",
	NULL };
static const char *const kmd_keys_token[] = { "module", "label", "pin",
	"pin_file", "softhsm2_conf", NULL };
static const char *const kmd_keys_mesh[] = { "peer", NULL };
static const char *const kmd_keys_policy[] = { "request_window_ms",
	"login_ticket_s", "beacon_max_age_ms", "beacon_skew_ms", NULL };
static const char *const kmd_keys_raft[] = { "member", "election_ms",
	"heartbeat_ms", "snapshot_threshold", "snapshot_trailing", NULL };
static const char *const kmd_keys_none[] = { NULL };

static int
kmd_conf_path(const km_conf *c, const char *section, const char *key,
    bool required, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *v = km_conf_get(c, section, key);

	out[0] = '\0';
	if (v == NULL || *v == '\0') {
		if (required) {
			snprintf(err, errlen, "%s: [%s] %s is required",
			    c->path, section, key);
			return KM_ERR_CONFIG;
		}
		return 0;
	}
	if (km_conf_resolve_path(c, v, out, outlen) != 0) {
		snprintf(err, errlen, "%s: [%s] %s is too long", c->path,
		    section, key);
		return KM_ERR_CONFIG;
	}
	return 0;
}

static int
kmd_conf_str(const km_conf *c, const char *section, const char *key,
    bool required, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *v = km_conf_get(c, section, key);

	out[0] = '\0';
	if (v == NULL || *v == '\0') {
		if (required) {
			snprintf(err, errlen, "%s: [%s] %s is required",
			    c->path, section, key);
			return KM_ERR_CONFIG;
		}
		return 0;
	}
	if (strlen(v) >= outlen) {
		snprintf(err, errlen, "%s: [%s] %s is too long", c->path,
		    section, key);
		return KM_ERR_CONFIG;
	}
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static int
kmd_conf_pin(const km_conf *c, kmd_config *cfg, char *err, size_t errlen)
{
	const char *pin = km_conf_get(c, "token", "pin");
	char path[4096];
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (km_conf_get(c, "token", "pin_file") != NULL) {
		if (pin != NULL) {
			snprintf(err, errlen,
			    "%s: [token] set pin or pin_file, not both",
			    c->path);
			return KM_ERR_CONFIG;
		}
		if ((r = kmd_conf_path(c, "token", "pin_file", true, path,
			 sizeof(path), err, errlen)) != 0) {
			return r;
		}
		if ((r = km_read_file(path, &data, &len, 256)) != 0) {
			snprintf(err, errlen, "%s: cannot read the token PIN "
					      "file %s: %s",
			    c->path, path, km_strerror(r));
			return KM_ERR_CONFIG;
		}
		while (len > 0 &&
		    (data[len - 1] == '\n' || data[len - 1] == '\r')) {
			data[--len] = '\0';
		}
		cfg->token_pin = km_secure_strdup((char *)data);
		km_secret_wipe(data, len);
		free(data);
	} else if (pin != NULL) {
		cfg->token_pin = km_secure_strdup(pin);
	} else {
		snprintf(err, errlen, "%s: [token] pin or pin_file is required",
		    c->path);
		return KM_ERR_CONFIG;
	}
	if (cfg->token_pin == NULL) {
		return KM_ERR_ALLOC;
	}
	if (cfg->token_pin[0] == '\0') {
		snprintf(err, errlen, "%s: the token PIN is empty", c->path);
		return KM_ERR_CONFIG;
	}
	return 0;
}

static int
kmd_conf_peers(const km_conf *c, kmd_config *cfg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < c->count; i++) {
		const km_conf_item *it = &c->items[i];
		char name[128], url[300];
		kmd_peer *p;

		if (strcmp(it->section, "mesh") != 0 ||
		    strcmp(it->key, "peer") != 0) {
			continue;
		}
		if (sscanf(it->value, "%127s %299s", name, url) != 2 ||
		    !km_name_valid(name) ||
		    strncmp(url, "tls+tcp://", 10) != 0 ||
		    strlen(url) >= sizeof(p->url)) {
			snprintf(err, errlen,
			    "%s:%u: peer must be 'NAME tls+tcp://HOST:PORT'",
			    c->path, it->line);
			return KM_ERR_CONFIG;
		}
		if (cfg->npeers == KMD_MAX_PEERS) {
			snprintf(err, errlen, "%s:%u: more than %d peers",
			    c->path, it->line, KMD_MAX_PEERS);
			return KM_ERR_CONFIG;
		}
		p = &cfg->peers[cfg->npeers++];
		snprintf(p->name, sizeof(p->name), "%s", name);
		snprintf(p->url, sizeof(p->url), "%s", url);
	}
	return 0;
}

/*
 * [raft] member = ID NAME HOST:PORT, one line per voting member, this node
 * included (its line gives its own Raft address).  Every node lists the
 * same members with the same ids: they bootstrap the same configuration.
 */
static int
kmd_conf_raft(const km_conf *c, kmd_config *cfg, char *err, size_t errlen)
{
	uint64_t u;
	size_t i, j;
	int r;

	for (i = 0; i < c->count; i++) {
		const km_conf_item *it = &c->items[i];
		char id[32], name[128], addr[128], *end;
		km_raft_peer *p;
		unsigned long long v;

		if (strcmp(it->section, "raft") != 0 ||
		    strcmp(it->key, "member") != 0) {
			continue;
		}
		if (sscanf(it->value, "%31s %127s %127s", id, name, addr) !=
			3 ||
		    !km_name_valid(name) ||
		    strlen(addr) > KM_RAFT_ADDRESS_MAX ||
		    strchr(addr, ':') == NULL) {
			snprintf(err, errlen, "%s:%u: member must be "
					      "'ID NAME HOST:PORT'",
			    c->path, it->line);
			return KM_ERR_CONFIG;
		}
		errno = 0;
		v = strtoull(id, &end, 10);
		if (id[0] < '1' || id[0] > '9' || *end != '\0' ||
		    errno != 0 || v > 1000000) {
			snprintf(err, errlen, "%s:%u: the Raft id '%s' must "
					      "be a number from 1 to 1000000",
			    c->path, it->line, id);
			return KM_ERR_CONFIG;
		}
		if (cfg->nraft == KMD_MAX_PEERS + 1) {
			snprintf(err, errlen, "%s:%u: more than %d members",
			    c->path, it->line, KMD_MAX_PEERS + 1);
			return KM_ERR_CONFIG;
		}
		for (j = 0; j < cfg->nraft; j++) {
			if (cfg->raft[j].id == v ||
			    strcmp(cfg->raft[j].name, name) == 0 ||
			    strcmp(cfg->raft[j].address, addr) == 0) {
				snprintf(err, errlen, "%s:%u: member %s "
						      "repeats an id, name or "
						      "address",
				    c->path, it->line, name);
				return KM_ERR_CONFIG;
			}
		}
		p = &cfg->raft[cfg->nraft++];
		p->id = v;
		snprintf(p->name, sizeof(p->name), "%s", name);
		snprintf(p->address, sizeof(p->address), "%s", addr);
		if (strcmp(name, cfg->name) == 0) {
			cfg->raft_id = v;
		}
	}
	if (cfg->nraft == 0) {
		if (km_conf_get(c, "raft", "election_ms") != NULL ||
		    km_conf_get(c, "raft", "heartbeat_ms") != NULL ||
		    km_conf_get(c, "raft", "snapshot_threshold") != NULL ||
		    km_conf_get(c, "raft", "snapshot_trailing") != NULL) {
			snprintf(err, errlen,
			    "%s: [raft] has settings but no member", c->path);
			return KM_ERR_CONFIG;
		}
		return 0;
	}
	if (cfg->raft_id == 0) {
		snprintf(err, errlen, "%s: [raft] has no member line for this "
				      "node (%s)",
		    c->path, cfg->name);
		return KM_ERR_CONFIG;
	}
	/* a member that is not a peer could not be forwarded to */
	for (j = 0; j < cfg->nraft; j++) {
		bool found = strcmp(cfg->raft[j].name, cfg->name) == 0;

		for (i = 0; i < cfg->npeers && !found; i++) {
			found = strcmp(cfg->peers[i].name, cfg->raft[j].name) ==
			    0;
		}
		if (!found) {
			snprintf(err, errlen, "%s: [raft] member %s is not a "
					      "[mesh] peer",
			    c->path, cfg->raft[j].name);
			return KM_ERR_CONFIG;
		}
	}
	if ((r = km_conf_get_uint(c, "raft", "election_ms", 200, 60000, 1000,
		 &u, err, errlen)) != 0) {
		return r;
	}
	cfg->raft_election_ms = (unsigned)u;
	if ((r = km_conf_get_uint(c, "raft", "heartbeat_ms", 10, 10000, 50,
		 &u, err, errlen)) != 0) {
		return r;
	}
	cfg->raft_heartbeat_ms = (unsigned)u;
	if (cfg->raft_heartbeat_ms * 2 > cfg->raft_election_ms) {
		snprintf(err, errlen, "%s: [raft] heartbeat_ms must be at most "
				      "half of election_ms",
		    c->path);
		return KM_ERR_CONFIG;
	}
	if ((r = km_conf_get_uint(c, "raft", "snapshot_threshold", 16,
		 1000000, 1024, &u, err, errlen)) != 0) {
		return r;
	}
	cfg->raft_snapshot_threshold = (unsigned)u;
	/* entries kept behind a snapshot: a follower further behind is sent
	 * the snapshot instead */
	if ((r = km_conf_get_uint(c, "raft", "snapshot_trailing", 1, 1000000,
		 128, &u, err, errlen)) != 0) {
		return r;
	}
	cfg->raft_snapshot_trailing = (unsigned)u;
	return 0;
}

int
kmd_config_load(const char *path, kmd_config *cfg, char *err, size_t errlen)
{
	km_conf c;
	uint64_t u;
	char level[16];
	size_t i;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if ((r = km_conf_load(path, &c, err, errlen)) != 0) {
		return r;
	}
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	for (i = 0; i < c.count; i++) {
		bool known = false;
		for (size_t j = 0; kmd_sections[j] != NULL; j++) {
			known |= strcmp(c.items[i].section, kmd_sections[j]) ==
			    0;
		}
		if (!known) {
			snprintf(err, errlen, "%s:%u: unknown section [%s]",
			    path, c.items[i].line, c.items[i].section);
			r = KM_ERR_CONFIG;
			goto out;
		}
	}
	if ((r = km_conf_check_keys(&c, "", kmd_keys_none, err, errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "node", kmd_keys_node, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "tls", kmd_keys_tls, err, errlen)) !=
		0 ||
	    (r = km_conf_check_keys(&c, "token", kmd_keys_token, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "mesh", kmd_keys_mesh, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "policy", kmd_keys_policy, err,
		 errlen)) != 0 ||
	    (r = km_conf_check_keys(&c, "raft", kmd_keys_raft, err,
		 errlen)) != 0) {
		goto out;
	}
	if ((r = kmd_conf_str(&c, "node", "name", true, cfg->name,
		 sizeof(cfg->name), err, errlen)) != 0 ||
	    (r = kmd_conf_str(&c, "node", "listen", true, cfg->listen,
		 sizeof(cfg->listen), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "node", "state_dir", true, cfg->state_dir,
		 sizeof(cfg->state_dir), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "tls", "ca", true, cfg->ca,
		 sizeof(cfg->ca), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "tls", "crl", false, cfg->crl,
		 sizeof(cfg->crl), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "tls", "cert", true, cfg->cert,
		 sizeof(cfg->cert), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "tls", "key", true, cfg->key,
		 sizeof(cfg->key), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "token", "module", false,
		 cfg->token_module, sizeof(cfg->token_module), err,
		 errlen)) != 0 ||
	    (r = kmd_conf_str(&c, "token", "label", true, cfg->token_label,
		 sizeof(cfg->token_label), err, errlen)) != 0 ||
	    (r = kmd_conf_path(&c, "token", "softhsm2_conf", false,
		 cfg->softhsm2_conf, sizeof(cfg->softhsm2_conf), err,
		 errlen)) != 0) {
		goto out;
	}
	if (!km_name_valid(cfg->name)) {
		snprintf(err, errlen, "%s: [node] name '%s' is not a valid name",
		    path, cfg->name);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if (strncmp(cfg->listen, "tls+tcp://", 10) != 0) {
		snprintf(err, errlen,
		    "%s: [node] listen must be tls+tcp://HOST:PORT", path);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if (cfg->token_module[0] == '\0') {
		snprintf(cfg->token_module, sizeof(cfg->token_module), "%s",
		    KM_SOFTHSM_MODULE);
	}
	if ((r = km_conf_get_uint(&c, "node", "workers", 0, 256, 0, &u, err,
		 errlen)) != 0) {
		goto out;
	}
	cfg->workers = (unsigned)u;
	if ((r = kmd_conf_str(&c, "node", "log_level", false, level,
		 sizeof(level), err, errlen)) != 0) {
		goto out;
	}
	if (level[0] == '\0' || strcmp(level, "info") == 0) {
		cfg->log_level = KM_LOG_INFO;
	} else if (strcmp(level, "error") == 0) {
		cfg->log_level = KM_LOG_ERR;
	} else if (strcmp(level, "warning") == 0) {
		cfg->log_level = KM_LOG_WARN;
	} else if (strcmp(level, "debug") == 0) {
		cfg->log_level = KM_LOG_DEBUG;
	} else {
		snprintf(err, errlen, "%s: [node] log_level must be error, "
				      "warning, info or debug",
		    path);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if ((r = km_conf_get_uint(&c, "policy", "request_window_ms", 1000,
		 600000, 30000, &u, err, errlen)) != 0) {
		goto out;
	}
	cfg->request_window_ms = (uint32_t)u;
	if ((r = km_conf_get_uint(&c, "policy", "login_ticket_s", 10, 604800,
		 28800, &u, err, errlen)) != 0) {
		goto out;
	}
	cfg->login_ticket_s = (uint32_t)u;
	/* trust beacons (docs/trust.md): the period, and how old a beacon
	 * may be (0: four periods) before it is refused and its node shown
	 * unreachable */
	if ((r = km_conf_get_uint(&c, "node", "beacon_interval_ms", 100,
		 600000, 2000, &u, err, errlen)) != 0) {
		goto out;
	}
	cfg->beacon_interval_ms = (uint32_t)u;
	if ((r = km_conf_get_uint(&c, "policy", "beacon_max_age_ms", 0,
		 3600000, 0, &u, err, errlen)) != 0) {
		goto out;
	}
	cfg->beacon_max_age_ms = u != 0 ? (uint32_t)u :
					  4 * cfg->beacon_interval_ms;
	if (cfg->beacon_max_age_ms < cfg->beacon_interval_ms) {
		snprintf(err, errlen,
		    "%s: beacon_max_age_ms (%u) is shorter than "
		    "beacon_interval_ms (%u): every node would look "
		    "unreachable",
		    path, cfg->beacon_max_age_ms, cfg->beacon_interval_ms);
		r = KM_ERR_CONFIG;
		goto out;
	}
	if ((r = km_conf_get_uint(&c, "policy", "beacon_skew_ms", 0, 600000,
		 5000, &u, err, errlen)) != 0) {
		goto out;
	}
	cfg->beacon_skew_ms = (uint32_t)u;
	if ((r = kmd_conf_peers(&c, cfg, err, errlen)) != 0 ||
	    (r = kmd_conf_raft(&c, cfg, err, errlen)) != 0 ||
	    (r = kmd_conf_pin(&c, cfg, err, errlen)) != 0) {
		goto out;
	}
	r = 0;
out:
	km_conf_free(&c);
	if (r != 0) {
		kmd_config_free(cfg);
	}
	return r;
}

void
kmd_config_free(kmd_config *cfg)
{
	km_secure_strfree(cfg->token_pin);
	cfg->token_pin = NULL;
}
