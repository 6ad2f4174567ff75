/*
 * The trust graph: freshness and replay of beacons, the GRAPH reply codec
 * and its DOT drawing.  See graph.h and docs/trust.md.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trust/graph.h"
#include "util/err.h"
#include "util/util.h"

#define KM_TRUST_VIEW_VERSION 2 /* 2: score and reason per node */

void
km_trust_graph_init(km_trust_graph *g, uint32_t max_age_ms, uint32_t skew_ms)
{
	memset(g, 0, sizeof(*g));
	g->max_age_ms = max_age_ms;
	g->skew_ms = skew_ms;
}

static km_trust_node *
km_trust_graph_slot(km_trust_graph *g, const char *name)
{
	size_t i;

	for (i = 0; i < g->nnodes; i++) {
		if (strcmp(g->nodes[i].name, name) == 0) {
			return &g->nodes[i];
		}
	}
	return NULL;
}

const km_trust_node *
km_trust_graph_find(const km_trust_graph *g, const char *name)
{
	return km_trust_graph_slot((km_trust_graph *)g, name);
}

int
km_trust_graph_add_node(km_trust_graph *g, const char *name)
{
	km_trust_node *n;

	if (!km_name_valid(name)) {
		return KM_ERR_INVALID_ARG;
	}
	if (km_trust_graph_slot(g, name) != NULL) {
		return 0;
	}
	if (g->nnodes >= KM_TRUST_MAX_NODES) {
		return KM_ERR_TOO_LARGE;
	}
	n = &g->nodes[g->nnodes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->score = KM_TRUST_SCORE_MAX; /* nothing against it yet */
	return 0;
}

int
km_trust_graph_update(km_trust_graph *g, const km_beacon *bc, uint64_t now_ms)
{
	km_trust_node *n;
	int r;

	if ((r = km_beacon_check_fresh(bc, now_ms, g->max_age_ms, g->skew_ms))
	    != 0) {
		return r;
	}
	if ((n = km_trust_graph_slot(g, bc->node)) == NULL) {
		if ((r = km_trust_graph_add_node(g, bc->node)) != 0) {
			return r;
		}
		n = km_trust_graph_slot(g, bc->node);
	}
	/* replay: a beacon seen before (or an older one) changes nothing;
	 * the sequence survives restarts since a daemon starts it at its
	 * clock in ms (daemon/beacon.c) */
	if (n->have
	    && (bc->seq <= n->beacon.seq || bc->time_ms < n->beacon.time_ms)) {
		return KM_ERR_STALE;
	}
	n->beacon = *bc;
	n->have = true;
	n->received_ms = now_ms;
	return 0;
}

km_trust_state
km_trust_node_state(
    const km_trust_graph *g, const km_trust_node *n, uint64_t now_ms)
{
	if (n->verdict == KM_TRUST_QUARANTINED
	    || n->verdict == KM_TRUST_EVICTED) {
		return n->verdict;
	}
	if (!n->have || now_ms > n->received_ms + g->max_age_ms) {
		return KM_TRUST_UNREACHABLE;
	}
	return KM_TRUST_UP;
}

const char *
km_trust_state_name(km_trust_state s)
{
	switch (s) {
	case KM_TRUST_UP:
		return "up";
	case KM_TRUST_QUARANTINED:
		return "quarantined";
	case KM_TRUST_EVICTED:
		return "evicted";
	default:
		return "unreachable";
	}
}

const char *
km_trust_state_colour(km_trust_state s)
{
	switch (s) {
	case KM_TRUST_UP:
		return "green";
	case KM_TRUST_QUARANTINED:
		return "orange";
	case KM_TRUST_EVICTED:
		return "red";
	default:
		return "grey";
	}
}

int
km_trust_graph_encode(
    km_buf *b, const char *observer, const km_trust_graph *g, uint64_t now_ms)
{
	km_buf body;
	size_t i;
	int r = 0;

	km_buf_init(&body);
	if ((r = km_buf_put_u32(b, KM_TRUST_VIEW_VERSION)) != 0
	    || (r = km_buf_put_cstring(b, observer)) != 0
	    || (r = km_buf_put_u32(b, g->max_age_ms)) != 0
	    || (r = km_buf_put_u32(b, (uint32_t)g->nnodes)) != 0) {
		goto out;
	}
	for (i = 0; i < g->nnodes; i++) {
		const km_trust_node *n = &g->nodes[i];
		uint64_t age = KM_TRUST_AGE_NONE;

		km_buf_reset(&body);
		if (n->have) {
			age = now_ms > n->received_ms ? now_ms - n->received_ms
			                              : 0;
			if ((r = km_beacon_encode(&body, &n->beacon)) != 0) {
				goto out;
			}
		}
		if ((r = km_buf_put_cstring(b, n->name)) != 0
		    || (r = km_buf_put_u32(
		            b, (uint32_t)km_trust_node_state(g, n, now_ms)))
		        != 0
		    || (r = km_buf_put_u64(b, age)) != 0
		    || (r = km_buf_put_string(b, body.data, body.len)) != 0
		    || (r = km_buf_put_u32(b, n->score)) != 0
		    || (r = km_beacon_text_valid(n->reason, KM_TRUST_REASON_MAX)
		                ? km_buf_put_cstring(b, n->reason)
		                : KM_ERR_INVALID_ARG)
		        != 0) {
			goto out;
		}
	}
	r = 0;
out:
	km_buf_free(&body);
	return r;
}

static int
km_trust_get_name(km_buf *b, char *out)
{
	const uint8_t *p;
	size_t n;

	if (km_buf_get_string_ptr(b, &p, &n, KM_NAME_MAX) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	if (strlen(out) != n || !km_name_valid(out)) {
		return KM_ERR_BAD_FORMAT;
	}
	return 0;
}

int
km_trust_view_decode(km_buf *b, km_trust_view *v)
{
	uint32_t version, count, state, i;
	const uint8_t *p, *rp;
	size_t n, rn, j;
	int r;

	memset(v, 0, sizeof(*v));
	if (km_buf_get_u32(b, &version) != 0) {
		return KM_ERR_BAD_FORMAT;
	}
	if (version != KM_TRUST_VIEW_VERSION) {
		return KM_ERR_BAD_VERSION;
	}
	if (km_trust_get_name(b, v->observer) != 0
	    || km_buf_get_u32(b, &v->max_age_ms) != 0
	    || km_buf_get_u32(b, &count) != 0) {
		goto bad;
	}
	if (count > KM_TRUST_MAX_NODES) {
		goto bad;
	}
	for (i = 0; i < count; i++) {
		km_trust_view_node *vn = &v->nodes[i];

		if (km_trust_get_name(b, vn->name) != 0
		    || km_buf_get_u32(b, &state) != 0
		    || km_buf_get_u64(b, &vn->age_ms) != 0
		    || km_buf_get_string_ptr(b, &p, &n, KM_BEACON_BODY_MAX)
		        != 0) {
			goto bad;
		}
		if (state > KM_TRUST_EVICTED
		    || km_buf_get_u32(b, &vn->score) != 0
		    || vn->score > KM_TRUST_SCORE_MAX
		    || km_buf_get_string_ptr(b, &rp, &rn, KM_TRUST_REASON_MAX)
		        != 0) {
			goto bad;
		}
		memcpy(vn->reason, rp, rn);
		vn->reason[rn] = '\0';
		if (strlen(vn->reason) != rn
		    || !km_beacon_text_valid(vn->reason, KM_TRUST_REASON_MAX)) {
			goto bad;
		}
		vn->state = (km_trust_state)state;
		for (j = 0; j < i; j++) {
			if (strcmp(v->nodes[j].name, vn->name) == 0) {
				goto bad;
			}
		}
		if (n == 0) {
			/* never heard from: no age, never up */
			if (vn->age_ms != KM_TRUST_AGE_NONE
			    || vn->state == KM_TRUST_UP) {
				goto bad;
			}
			continue;
		}
		if ((r = km_beacon_decode(p, n, &vn->beacon)) != 0) {
			memset(v, 0, sizeof(*v));
			return r;
		}
		if (strcmp(vn->beacon.node, vn->name) != 0
		    || vn->age_ms == KM_TRUST_AGE_NONE) {
			goto bad;
		}
		vn->have = true;
	}
	v->nnodes = count;
	if (km_buf_remaining(b) != 0) {
		goto bad;
	}
	return 0;
bad:
	memset(v, 0, sizeof(*v));
	return KM_ERR_BAD_FORMAT;
}

const km_trust_view_node *
km_trust_view_find(const km_trust_view *v, const char *name)
{
	size_t i;

	for (i = 0; i < v->nnodes; i++) {
		if (strcmp(v->nodes[i].name, name) == 0) {
			return &v->nodes[i];
		}
	}
	return NULL;
}

static int km_trust_dotf(km_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
km_trust_dotf(km_buf *out, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		return KM_ERR_TOO_LARGE;
	}
	return km_buf_put_raw(out, line, (size_t)n);
}

int
km_trust_view_dot(const km_trust_view *v, km_buf *out)
{
	size_t i;
	uint32_t k;
	int r;

	/* names are km_name_valid() and texts km_beacon_text_valid(): no
	 * quote or backslash can reach a DOT string */
	if ((r = km_trust_dotf(out,
	         "digraph keymesh {\n"
	         "\tlabel=\"keymesh trust graph as seen by %s\";\n"
	         "\tnode [shape=box, style=filled, fontname=\"Helvetica\"];\n"
	         "\tedge [fontname=\"Helvetica\", fontsize=10];\n",
	         v->observer))
	    != 0) {
		return r;
	}
	for (i = 0; i < v->nnodes; i++) {
		const km_trust_view_node *n = &v->nodes[i];
		char age[32];

		if (n->have) {
			snprintf(age, sizeof(age), "%llu ms",
			    (unsigned long long)n->age_ms);
		} else {
			snprintf(age, sizeof(age), "never");
		}
		if ((r = km_trust_dotf(out,
		         "\t\"%s\" [fillcolor=%s, label=\"%s\\n%s, score "
		         "%u\\n%s %s\\nbeacon %s%s%s\"];\n",
		         n->name, km_trust_state_colour(n->state), n->name,
		         km_trust_state_name(n->state), n->score,
		         n->have ? n->beacon.version : "",
		         n->have ? n->beacon.token_model : "", age,
		         n->reason[0] ? "\\n" : "", n->reason))
		    != 0) {
			return r;
		}
	}
	for (i = 0; i < v->nnodes; i++) {
		const km_trust_view_node *n = &v->nodes[i];
		char bw[32];

		if (!n->have) {
			continue;
		}
		for (k = 0; k < n->beacon.npeers; k++) {
			const km_beacon_peer *p = &n->beacon.peers[k];

			if (p->rtt_us == KM_BEACON_RTT_NONE) {
				continue;
			}
			/* bandwidth first when measured, so the label
			 * still ends with the RTT */
			bw[0] = '\0';
			if (p->bw_kbps >= 1000) {
				snprintf(bw, sizeof(bw), "%u Mbit/s\\n",
				    p->bw_kbps / 1000);
			} else if (p->bw_kbps > 0) {
				snprintf(bw, sizeof(bw), "%u kbit/s\\n",
				    p->bw_kbps);
			}
			if ((r = km_trust_dotf(out,
			         "\t\"%s\" -> \"%s\" [label=\"%s%u.%02u "
			         "ms\"];\n",
			         n->name, p->name, bw, p->rtt_us / 1000,
			         (p->rtt_us % 1000) / 10))
			    != 0) {
				return r;
			}
		}
	}
	return km_trust_dotf(out, "}\n");
}
