/*
 * The trust graph (DESIGN.md §3, docs/trust.md): the latest verified beacon
 * of every node, as one daemon sees it.  Nodes carry their posture and
 * health from their beacon, the age of that beacon and a state; edges are
 * the round-trip times each node measured to its peers.
 *
 * A node whose beacons stopped arriving is KM_TRUST_UNREACHABLE, not
 * untrusted: silence is not evidence of misbehaviour.  Trust scoring
 * (posture policy, behaviour, hysteresis) is issue #7 items 3-5 and will
 * add states here; km_trust_state_colour() is the hook for drawing them.
 *
 * Not thread-safe: the daemon holds its own lock around a graph.
 */
#ifndef KM_TRUST_GRAPH_H
#define KM_TRUST_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trust/beacon.h"
#include "util/buf.h"

#define KM_TRUST_MAX_NODES 32
#define KM_TRUST_AGE_NONE  UINT64_MAX /* never heard from */

typedef enum km_trust_state {
	KM_TRUST_UNREACHABLE = 0, /* no fresh beacon */
	KM_TRUST_UP = 1,          /* a fresh, verified beacon */
	KM_TRUST_QUARANTINED = 2, /* fails the posture policy: not asked */
	KM_TRUST_EVICTED = 3,     /* removed from the mesh, cert revoked */
} km_trust_state;

#define KM_TRUST_SCORE_MAX  100u /* fully trusted */
#define KM_TRUST_REASON_MAX 160  /* one line, printable */

typedef struct km_trust_node {
	char name[KM_NAME_MAX + 1];
	bool have;            /* a beacon was accepted */
	uint64_t received_ms; /* our clock when it was */
	km_beacon beacon;
	/* the verdict (scoring, quarantine, eviction): set by the daemon,
	 * sent in the GRAPH reply; KM_TRUST_UP/UNREACHABLE come from the
	 * beacon's age unless the verdict says quarantined or evicted */
	km_trust_state verdict;          /* UP: no verdict against it */
	uint32_t score;                  /* 0..KM_TRUST_SCORE_MAX */
	char reason[KM_TRUST_REASON_MAX + 1]; /* why, "" when none */
} km_trust_node;

typedef struct km_trust_graph {
	uint32_t max_age_ms; /* older beacons are refused; silent this
	                        long, a node is unreachable */
	uint32_t skew_ms;    /* how far ahead a sender's clock may be */
	size_t nnodes;
	km_trust_node nodes[KM_TRUST_MAX_NODES];
} km_trust_graph;

/** km_trust_graph_init: an empty graph with these freshness bounds. */
void km_trust_graph_init(
    km_trust_graph *g, uint32_t max_age_ms, uint32_t skew_ms);

/**
 * km_trust_graph_add_node:
 * Lists a node known from the configuration, so that it shows as
 * unreachable before its first beacon.  Idempotent.
 *
 * Returns: 0, KM_ERR_INVALID_ARG (bad name), KM_ERR_TOO_LARGE (full).
 */
int km_trust_graph_add_node(km_trust_graph *g, const char *name);

/**
 * km_trust_graph_update:
 * @g: the graph
 * @bc: a beacon already verified with km_beacon_verify()
 * @now_ms: our wall clock
 *
 * Checks freshness (max age and skew) and replay (the sequence number
 * must grow and the time must not go back), then keeps @bc as the node's
 * latest beacon.  A refused beacon leaves the graph as it was.
 *
 * Returns: 0, KM_ERR_STALE (stale or replayed), KM_ERR_TOO_LARGE (a new
 * node and no room).
 */
int km_trust_graph_update(
    km_trust_graph *g, const km_beacon *bc, uint64_t now_ms);

/** km_trust_graph_find: the node named @name, or NULL. */
const km_trust_node *km_trust_graph_find(
    const km_trust_graph *g, const char *name);

/**
 * km_trust_node_state: the node's state at @now_ms: its verdict when that
 * is quarantined or evicted, else up or unreachable by its beacon's age.
 */
km_trust_state km_trust_node_state(
    const km_trust_graph *g, const km_trust_node *n, uint64_t now_ms);

/* "up", "unreachable", "quarantined", "evicted". */
const char *km_trust_state_name(km_trust_state s);

/*
 * The graph as sent in a GRAPH reply (docs/PROTOCOL.md): per node its
 * name, state, beacon age, latest beacon body, trust score and the reason
 * for its verdict.
 */
typedef struct km_trust_view_node {
	char name[KM_NAME_MAX + 1];
	km_trust_state state;
	uint32_t score;                       /* 0..KM_TRUST_SCORE_MAX */
	char reason[KM_TRUST_REASON_MAX + 1]; /* "" when none */
	uint64_t age_ms; /* KM_TRUST_AGE_NONE when never heard from */
	bool have;
	km_beacon beacon;
} km_trust_view_node;

typedef struct km_trust_view {
	char observer[KM_NAME_MAX + 1]; /* the daemon that answered */
	uint32_t max_age_ms;
	size_t nnodes;
	km_trust_view_node nodes[KM_TRUST_MAX_NODES];
} km_trust_view;

/** km_trust_graph_encode: the GRAPH reply fields for @g at @now_ms. */
int km_trust_graph_encode(
    km_buf *b, const char *observer, const km_trust_graph *g, uint64_t now_ms);

/**
 * km_trust_view_decode:
 * @b: positioned at the GRAPH reply fields; must end with them
 * @v: receives the view
 *
 * Strict like km_beacon_decode(): bounded counts, valid names, no
 * duplicate node, a beacon that names its node, no trailing bytes.
 *
 * Returns: 0, KM_ERR_BAD_FORMAT, KM_ERR_BAD_VERSION, KM_ERR_TOO_LARGE.
 */
int km_trust_view_decode(km_buf *b, km_trust_view *v);

/** km_trust_view_find: the node named @name, or NULL. */
const km_trust_view_node *km_trust_view_find(
    const km_trust_view *v, const char *name);

/*
 * km_trust_state_colour: the Graphviz colour of a state (green up, grey
 * unreachable, orange quarantined, red evicted).
 */
const char *km_trust_state_colour(km_trust_state s);

/**
 * km_trust_view_dot:
 * Appends the view as a Graphviz DOT digraph to @out: one node per member
 * coloured by state, one edge per measured link labelled with its RTT in
 * ms.  Every label is built from validated printable text.
 */
int km_trust_view_dot(const km_trust_view *v, km_buf *out);

#endif /* KM_TRUST_GRAPH_H */
