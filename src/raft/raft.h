/*
 * km_raft: a replicated, ordered log of opaque entries for the mesh
 * catalog, on libraft 0.15 (Ongaro & Ousterhout, "In Search of an
 * Understandable Consensus Algorithm", USENIX ATC 2014) with its libuv disk
 * backend and keymesh's TLS 1.3 transport (docs/raft.md).
 *
 * Each km_raft runs one Raft server on a libuv loop in its own thread.  The
 * application sees three callbacks, all called on that thread, in log order:
 * apply (a committed entry), snapshot (serialise the state) and restore
 * (replace the state by a snapshot).  The callbacks must be deterministic:
 * every node applies the same entries in the same order and must reach the
 * same state (the catalog's km_catalog_apply() is, by design).
 *
 * The functions below are thread-safe; none may be called from inside a
 * callback (they would wait on the thread that runs it).
 *
 * WARNING: the process must ignore SIGPIPE (keymeshd does): libuv writes
 * to the transport's socketpairs with write(2), and a peer that closed its
 * end raises SIGPIPE, not EPIPE, otherwise.
 */
#ifndef KM_RAFT_RAFT_H
#define KM_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/util.h"

#define KM_RAFT_ADDRESS_MAX 63

/* One voting member of the initial configuration. */
typedef struct km_raft_peer {
	uint64_t id;                /* Raft server id, > 0 */
	char name[KM_NAME_MAX + 1]; /* its node certificate's name */
	char address[KM_RAFT_ADDRESS_MAX + 1]; /* "127.0.0.1:7001" */
} km_raft_peer;

/**
 * km_raft_apply_fn:
 * @arg: km_raft_config.arg
 * @data, @len: the entry, as proposed (Raft's own entries, configuration
 * and barriers, are not passed on)
 *
 * Called once per committed entry, in log order, on every node.  This is
 * where an entry's authority is checked (DESIGN.md §3): the verdict must
 * depend only on the entry and the state, never on the clock or the node.
 *
 * Returns: 0, or a KM_ERR_* the proposer receives from km_raft_propose().
 * Either way the entry stays in the log: a refusal is a deterministic
 * no-op on every node, not a failure of the log.
 */
typedef int (*km_raft_apply_fn)(void *arg, const uint8_t *data, size_t len);

/** km_raft_snapshot_fn: append the whole state to @out (km_buf_put_*). */
typedef int (*km_raft_snapshot_fn)(void *arg, km_buf *out);

/** km_raft_restore_fn: replace the whole state by a snapshot's bytes. */
typedef int (*km_raft_restore_fn)(void *arg, const uint8_t *data, size_t len);

typedef struct km_raft_config {
	uint64_t id;           /* this server's Raft id */
	const char *address;   /* where it listens, "HOST:PORT" */
	const char *state_dir; /* libraft's segments, snapshots, metadata */
	const km_raft_peer *peers; /* the members, this server included */
	size_t n_peers;
	/* TLS: the mesh CA, its CRL (may be NULL), our node cert and key. */
	const char *ca_pem, *crl_pem, *cert_pem, *key_pem;
	km_raft_apply_fn apply;
	km_raft_snapshot_fn snapshot;
	km_raft_restore_fn restore;
	void *arg;
	/* Tuning; 0 takes the default in brackets. */
	unsigned election_ms;        /* [1000] */
	unsigned heartbeat_ms;       /* [100] */
	unsigned snapshot_threshold; /* entries between snapshots [1024] */
	unsigned snapshot_trailing;  /* entries kept behind one [128] */
	unsigned segment_size;       /* bytes per open segment [1 MiB] */
	unsigned connect_retry_ms;   /* [250] */
	/* A snapshot sent and not acknowledged in this time is sent again.
	 * libraft's own default, 30 s, is long: a follower that restarts
	 * while the leader compacts can wait that long (docs/raft.md). */
	unsigned install_snapshot_ms; /* [5000] */
} km_raft_config;

typedef struct km_raft km_raft;

/**
 * km_raft_start:
 * @cfg: the configuration (copied)
 * @out: receives the running server
 *
 * Creates @cfg->state_dir if needed.  A pristine directory is bootstrapped
 * with @cfg->peers as the voters (every member does the same, so they agree
 * on entry 1); a used one is loaded, snapshot first, and the server catches
 * up from the leader.
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_CONFIG (this id is not among the
 * peers), KM_ERR_BAD_FORMAT (PEM), KM_ERR_BUSY (another socket holds the
 * listen address), KM_ERR_IO (state directory, other listen failures),
 * KM_ERR_ALLOC.
 */
int km_raft_start(const km_raft_config *cfg, km_raft **out);

/**
 * km_raft_propose:
 * @r: a running server
 * @data, @len: the entry (copied)
 * @timeout_ms: how long to wait for it to be committed and applied here
 * @leader_id: receives the known leader's id on KM_ERR_NOT_LEADER (0 when
 * none is known); may be NULL
 *
 * Appends an entry through this server, which must be the leader: there is
 * no forwarding here, the caller (keymeshd) sends the request to the
 * leader it is told about.  Returns once the entry is applied locally.
 *
 * Returns: 0, the apply callback's own KM_ERR_*, KM_ERR_NOT_LEADER (also
 * when leadership was lost before the entry committed: it may or may not be
 * in the log), KM_ERR_TIMEOUT (likewise undecided), KM_ERR_CLOSED,
 * KM_ERR_TOO_LARGE, KM_ERR_ALLOC.
 */
int km_raft_propose(km_raft *r, const void *data, size_t len,
    unsigned timeout_ms, uint64_t *leader_id);

/**
 * km_raft_set_crl:
 * @r: a running server
 * @crl_pem: the mesh CA's new CRL
 *
 * From now on peers are checked against @crl_pem.  Every Raft connection
 * is dropped and made again, so a peer revoked by this CRL is cut off at
 * once: it can no longer vote, lead or receive entries through this node.
 * Returns once the loop has switched.
 *
 * Returns: 0, KM_ERR_BAD_FORMAT (unparsable CRL), KM_ERR_CLOSED,
 * KM_ERR_CRYPTO, KM_ERR_ALLOC.
 */
int km_raft_set_crl(km_raft *r, const char *crl_pem);

/**
 * km_raft_remove_voter:
 * @r: a running server
 * @id: a member's Raft id, not this server's
 * @timeout_ms: how long to wait for the change to commit
 *
 * On the leader: removes @id from the Raft configuration (raft_remove), so
 * that it no longer counts in the majority.  For an evicted node
 * (docs/eviction.md): it is refused by the transport already, and would
 * otherwise keep a seat it can never fill.  The member table of the
 * transport is not changed.
 *
 * Returns: 0 once committed, KM_ERR_NOT_FOUND (not in the configuration,
 * e.g. removed already), KM_ERR_NOT_LEADER, KM_ERR_BUSY (another change
 * is under way), KM_ERR_TIMEOUT, KM_ERR_INVALID_ARG (this server),
 * KM_ERR_CLOSED.
 */
int km_raft_remove_voter(km_raft *r, uint64_t id, unsigned timeout_ms);

/* How many peers km_raft_suspend_peer() holds at a time. */
#define KM_RAFT_SUSPEND_MAX 8

/**
 * km_raft_suspend_peer:
 * @r: a running server
 * @name: a member's node name
 * @ms: how long to refuse it; 0 lifts a suspension
 *
 * Refuses @name's Raft connections, both ways, for @ms (its open links are
 * cut at once).  keymeshd does this to a leader it holds checked evidence
 * against (docs/eviction.md "When the leader is the accused"): once a
 * majority of the members do, the leader no longer reaches a majority,
 * steps down, and the others elect a new one.  Unlike the CRL and the
 * deny-list it is a suspicion and ends by itself.  Returns once the loop
 * has applied it.
 *
 * Returns: 0, KM_ERR_INVALID_ARG (not a valid name), KM_ERR_CLOSED.
 */
int km_raft_suspend_peer(km_raft *r, const char *name, unsigned ms);

/* What km_raft_info() reports. */
typedef struct km_raft_info {
	int state;          /* KM_RAFT_FOLLOWER, ... */
	uint64_t leader_id; /* 0: none known */
	char leader_name[KM_NAME_MAX + 1];
	char leader_address[KM_RAFT_ADDRESS_MAX + 1];
	uint64_t last_applied; /* Raft index */
	uint64_t applied;      /* entries applied by this process */
	uint64_t restores;     /* snapshots restored by this process */
	uint64_t tls_ok;       /* authenticated connections */
	uint64_t tls_refused;  /* refused peers (TLS or identity) */
	int tls_last_refusal;  /* KM_ERR_* of the last, or 0 */
} km_raft_info;

enum {
	KM_RAFT_UNAVAILABLE = 0,
	KM_RAFT_FOLLOWER = 1,
	KM_RAFT_CANDIDATE = 2,
	KM_RAFT_LEADER = 3,
};

/** km_raft_info: a snapshot of the server's state (refreshed every 25 ms
 * and after each entry). */
void km_raft_info_get(km_raft *r, km_raft_info *info);

/**
 * km_raft_leader:
 * @id: receives the leader's id, 0 when none is known
 * @name, @namelen: receive its node name ("" when none); may be NULL
 *
 * Returns: 0, or KM_ERR_NOT_FOUND when no leader is known.
 */
int km_raft_leader(km_raft *r, uint64_t *id, char *name, size_t namelen);

/**
 * km_raft_stop:
 * Closes the server (proposals in flight fail with KM_ERR_CLOSED), joins
 * its thread and frees @r.  The state directory is kept.  NULL is fine.
 */
void km_raft_stop(km_raft *r);

#endif /* KM_RAFT_RAFT_H */
