/*
 * Re-sharing an EC key to a new member set and threshold without
 * reconstructing it, after Y. Desmedt and S. Jajodia, "Redistributing
 * Secret Shares to New Access Structures and Its Applications", Technical
 * Report ISSE-TR-97-01, George Mason University, 1997 (the sum-of-subshares
 * method; verifiable with Feldman commitments as in T. M. Wong, C. Wang and
 * J. M. Wing, "Verifiable Secret Redistribution", 2002).
 *
 * A quorum S of at least k old indices each deals lambda_i^S * x_i with a
 * fresh degree-(k'-1) polynomial g_i and Feldman commitments C_{i,l}.  Each
 * new index j receives s_{i,j} = g_i(j) from every i in S, checks it against
 * C_i, checks C_{i,0} == lambda_i * Y_i (the old verification key, so an
 * old holder cannot deal anything but its true share) and sets
 * x'_j = sum_i s_{i,j}.  The public key is unchanged:
 * sum_i C_{i,0} = sum_i lambda_i Y_i = Y, and the new verification keys
 * come from the summed commitments.  New shares lie on a fresh random
 * polynomial, so they do not combine with old ones.
 *
 * Messages: the old holder of index i sends one broadcast COMMIT (from = i,
 * to = 0) and one private SUBSHARE per new index (from = i, to = j); the
 * daemon maps indices to nodes.
 */
#ifndef KM_CRYPTO_EC_RESHARE_H
#define KM_CRYPTO_EC_RESHARE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_group.h"
#include "crypto/shamir.h"

/* What old and new holders must agree on before dealing. */
typedef struct km_ec_reshare_params {
	const km_ec_pub *old_pub; /* the current sharing's public side */
	const uint32_t *quorum;   /* old indices that deal, at least k */
	size_t nq;
	uint32_t new_k; /* new threshold */
	uint32_t new_n; /* new indices 1..new_n */
} km_ec_reshare_params;

/**
 * km_ec_reshare_deal:
 * @g: group
 * @rp: agreed parameters; @old_share's index must be in the quorum
 * @old_share: this old holder's share (one index; call once per index)
 * @out: receives the COMMIT broadcast and new_n SUBSHARE messages
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_RANGE (bad quorum or index),
 * KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_reshare_deal(const km_ec_group *g, const km_ec_reshare_params *rp,
    const km_ec_share *old_share, km_ec_msgs *out);

/**
 * km_ec_reshare_receive:
 * @g: group
 * @rp: agreed parameters
 * @new_index: the new index this call computes the share of
 * @in, @nmsg: the COMMIT broadcasts and the SUBSHAREs to @new_index
 * @share: receives the new share
 * @pub: receives the new public side (same Y, new verification keys)
 * @bad: optional, receives the old index of a dealer whose messages were
 *     missing, malformed or failed verification
 *
 * Returns: 0, KM_ERR_BAD_PARTIAL (see @bad; re-run with a quorum without
 * it), KM_ERR_VERIFY (the new public key differs from the old one),
 * KM_ERR_INVALID_ARG, KM_ERR_RANGE, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_reshare_receive(const km_ec_group *g, const km_ec_reshare_params *rp,
    uint32_t new_index, const km_ec_msg *in, size_t nmsg, km_ec_share **share,
    km_ec_pub **pub, uint32_t *bad);

#endif /* KM_CRYPTO_EC_RESHARE_H */
