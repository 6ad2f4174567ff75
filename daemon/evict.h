/*
 * Eviction inside keymeshd (daemon/evict.c, docs/eviction.md): the vote
 * round, the effects of an applied EVICT, and the automatic re-share of
 * the evicted node's keys by the coordinator.  kmd_evict_on_evidence() is
 * declared in daemon/evidence.h, the seam with evidence checking.
 */
#ifndef KMD_EVICT_H
#define KMD_EVICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/kmd.h"
#include "store/catalog.h"

/* The evict-vote request (KM_MSG_EVICT_VOTE): evidence up to this. */
#define KMD_EVICT_EVIDENCE_MAX (60u * 1024)

/**
 * kmd_evict_precheck:
 * Before an entry is applied (catalog_lock held): true when it is a
 * node-signed entry that store/evict.h km_evict_authorise() allows from
 * the catalog as it stands.  Logs KMD-EVICT-REFUSE with the reason when a
 * node signed it and it is not allowed.
 */
bool kmd_evict_precheck(kmd_state *st, const km_catalog_entry *e);

/**
 * kmd_evict_applied:
 * After an entry was applied with effect: for EVICT, refreshes the
 * deny-list (pki.h km_pki_deny_set), marks the node evicted in the trust
 * graph, logs it (loudly when it is this node) and wakes the re-share.
 */
void kmd_evict_applied(kmd_state *st, const km_catalog_entry *e);

/**
 * kmd_evict_start:
 * At start, once the store is open: the deny-list from the catalog.
 */
int kmd_evict_start(kmd_state *st);

/**
 * kmd_evict_stop:
 * Waits until every vote-gathering thread has returned (they see
 * st->stopping and end within one vote round-trip each).  Call after
 * the server stops (no new evidence, so no new thread) and before Raft
 * stops, the peer connections close and the store closes: a thread uses
 * all three.
 */
void kmd_evict_stop(kmd_state *st);

/**
 * kmd_evict_tick:
 * Called often (the daemon's sync thread): on the Raft leader, re-shares
 * every key that still holds an index of an evicted node, one at a time,
 * and reports a key that cannot be (KMD-EVICT-BELOW-THRESHOLD).  A new
 * leader finds what an old one left half-done in the catalog.
 */
void kmd_evict_tick(kmd_state *st);

/** kmd_evict_is_self: whether the catalog evicted this very node. */
bool kmd_evict_is_self(kmd_state *st);

/** kmd_evict_below: the number of keys reported below their threshold. */
unsigned kmd_evict_below(kmd_state *st);

/** kmd_do_evict_vote: the KM_MSG_EVICT_VOTE handler (a member's side). */
int kmd_do_evict_vote(kmd_state *st, const km_identity *peer, km_buf *in,
    km_buf *out, char *msg, size_t msglen);

/** kmd_evict_own_cert: this node's certificate, DER (cached). */
int kmd_evict_own_cert(kmd_state *st, const uint8_t **der, size_t *len);

/* catalog.c: appends an entry signed by this node (Raft only). */
int kmd_catalog_append_own(kmd_state *st, const km_catalog_payload *p,
    int *result, char *msg, size_t msglen);

/* reshare.c: the re-share an eviction calls for, coordinated here;
 * @acks (KM_CATALOG_MAX_HOLDERS zeroed entries) receives the new holder
 * nodes' signed acks of @pub, for RESHARE_BEGIN. */
int kmd_reshare_evicted(kmd_state *st, const km_catalog_key *k,
    const km_catalog_holder *plan, size_t n, km_buf *pub,
    km_catalog_vote *acks, char *msg, size_t msglen);

/* beacon.c: the evicted verdict in the trust graph. */
void kmd_beacon_mark_evicted(
    kmd_state *st, const char *node, const char *reason);

#endif /* KMD_EVICT_H */
