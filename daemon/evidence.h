/*
 * Misbehaviour evidence and eviction inside keymeshd (issue #7 item 5,
 * DESIGN.md §1 promise 3 and §3): the seam between checking a client's
 * evidence of a bad partial (daemon/evidence.c) and acting on it by the
 * members' signed votes (daemon/evict.c).
 */
#ifndef KMD_EVIDENCE_H
#define KMD_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/kmd.h"

/* What a piece of evidence proves, once checked. */
typedef struct kmd_evidence_info {
	char accused[KM_NAME_MAX + 1]; /* the node that sent the bad partial */
	char key_id[KM_NAME_MAX + 1];
	uint32_t epoch;
	uint32_t index;   /* the share index whose partial failed */
	uint8_t hash[32]; /* SHA-256 of the evidence bytes */
	/* SHA-256 of the accused's certificate (DER), the one that signed
	 * the reply envelope the evidence carries (zeros: not known, e.g. a
	 * test build's hook evidence); the eviction votes and the EVICT entry
	 * name it (docs/eviction.md) */
	uint8_t cert_sha256[32];
	char what[160]; /* one line: which check failed */
} kmd_evidence_info;

/**
 * kmd_evidence_check:
 * Checks, on this node's own, that @ev proves its accused node returned a
 * wrong partial (daemon/evidence.c).
 *
 * Returns: 0 with @info filled when it does; a KM_ERR_* and one line in
 * @why when it does not.
 */
int kmd_evidence_check(kmd_state *st, const uint8_t *ev, size_t len,
    kmd_evidence_info *info, char *why, size_t whylen);

/**
 * kmd_evict_on_evidence:
 * Called on the coordinator (the Raft leader) with evidence it has
 * checked: gathers the members' signed votes and, with enough of them,
 * proposes the eviction (daemon/evict.c).
 *
 * Returns: 0 when the eviction is under way or already done, a KM_ERR_*
 * with one line in @why otherwise.
 */
int kmd_evict_on_evidence(kmd_state *st, const kmd_evidence_info *info,
    const uint8_t *ev, size_t len, char *why, size_t whylen);

/**
 * kmd_do_evidence:
 * The KM_MSG_EVIDENCE handler (daemon/evidence.c): checks the evidence in
 * the request, logs KMD-EVIDENCE once per evidence, and hands it to
 * kmd_evict_on_evidence() on the leader or forwards it there (one hop).
 * A refusal is a KM_ERR_* with one line in @msg; nothing changes.
 */
int kmd_do_evidence(kmd_state *st, const km_identity *peer, km_buf *in,
    km_buf *out, uint8_t digest[32], char *msg, size_t msglen);

/**
 * kmd_evidence_tick:
 * Called every 100 ms by the daemon's sync thread: acts on evidence held
 * against a former leader (daemon/evidence.c), once a new leader is known:
 * kmd_evict_on_evidence() here when this node leads, a forward to the new
 * leader otherwise; ends a suspicion when the node is evicted or its time
 * is up.
 */
void kmd_evidence_tick(kmd_state *st);

/**
 * kmd_evidence_cut_off:
 * True, with one line in @msg, when this node (with Raft) has known no
 * Raft leader for 5 s while its peers refuse its Raft handshakes: the
 * others have cut it off (an accused or evicted former leader), so its
 * catalog may be behind and it serves none; a client's view then asks
 * another node (daemon/service.c, catalog fetch).
 */
bool kmd_evidence_cut_off(kmd_state *st, char *msg, size_t msglen);

#endif
