/*
 * Distributed key generation for EC keys, after R. Gennaro, S. Jarecki,
 * H. Krawczyk and T. Rabin, "Secure Distributed Key Generation for
 * Discrete-Log Based Cryptosystems", J. Cryptology 20(1), 2007 (GJKR).
 *
 * The key x = sum of the qualified dealers' secrets never exists anywhere.
 * Each party deals once (a random degree-(k-1) polynomial pair f, f' with
 * Pedersen commitments E_l = a_l*G + b_l*H) to every share index 1..n; a
 * party may own several indices (weighted shares).  Rounds, each one a
 * function that consumes the messages a party received and produces those
 * it sends:
 *
 *   round1: deal     -> broadcast COMMIT (E_0..E_{k-1}),
 *                       private SHARES to every party (its indices' s, s')
 *   round2: verify   -> broadcast COMPLAINTS (dealers whose shares failed,
 *                       or who sent nothing)
 *   round3: answer   -> broadcast ANSWER (a dealer reveals the shares of
 *                       each party that complained against it)
 *   round4: qualify  -> QUAL = dealers with a valid COMMIT and a valid
 *                       answer to every complaint; broadcast FELDMAN
 *                       (A_l = a_l*G) if in QUAL
 *   finish: extract  -> Y = sum A_{d,0}; own shares x_j = sum s_{d,j};
 *                       verification keys for every index
 *
 * Each round's input is every message of the previous round addressed to
 * this party or broadcast, including this party's own broadcasts and the
 * SHARES message it sent itself; messages for others are ignored.
 * Broadcast messages must reach every party identically (reliable,
 * authenticated broadcast is the caller's job; GJKR assumes it).  A dealer
 * whose FELDMAN values contradict a share it dealt makes finish() fail with
 * KM_ERR_VERIFY naming it: GJKR's public reconstruction of that dealer's
 * secret is not implemented; the caller reruns the DKG without it.
 */
#ifndef KM_CRYPTO_EC_DKG_H
#define KM_CRYPTO_EC_DKG_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/ec_group.h"
#include "crypto/shamir.h"
#include "util/buf.h"

/*
 * A protocol message: sender, recipient (0 = broadcast), encoded body.
 * WARNING: @from must be the sender as authenticated by the transport
 * (the daemon's signed envelope), never a value taken from the message;
 * the bodies repeat it and a mismatch makes the message invalid.
 */
typedef struct km_ec_msg {
	uint32_t from;
	uint32_t to;
	km_buf body; /* secure buffer when the body carries secrets */
} km_ec_msg;

/* A list of messages a round produced; free with km_ec_msgs_free(). */
typedef struct km_ec_msgs {
	km_ec_msg *v;
	size_t n;
} km_ec_msgs;

/** km_ec_msgs_free: wipes and frees every body and the array. */
void km_ec_msgs_free(km_ec_msgs *m);

/* Parameters every party must agree on before round 1. */
typedef struct km_ec_dkg_params {
	uint32_t k;            /* threshold: k indices reconstruct */
	uint32_t n;            /* share indices 1..n */
	uint32_t nparties;     /* parties 1..nparties */
	const uint32_t *owner; /* owner[j-1] = party owning index j */
} km_ec_dkg_params;

typedef struct km_ec_dkg km_ec_dkg;

/**
 * km_ec_dkg_new:
 * @g: group (must outlive the state)
 * @params: agreed parameters; copied
 * @self: this party's id, 1..nparties
 * @out: receives the state; free with km_ec_dkg_free()
 *
 * Returns: 0, KM_ERR_INVALID_ARG (k > n, n > 255, an owner out of range,
 * a party owning no index), KM_ERR_ALLOC.
 */
int km_ec_dkg_new(const km_ec_group *g, const km_ec_dkg_params *params,
    uint32_t self, km_ec_dkg **out);

/** km_ec_dkg_free: wipes every secret and frees (NULL is fine). */
void km_ec_dkg_free(km_ec_dkg *d);

/**
 * km_ec_dkg_round1:
 * Draws this party's polynomials and appends to @out one broadcast COMMIT
 * and one private SHARES message per party (self included).
 * Returns: 0, KM_ERR_STATE, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_dkg_round1(km_ec_dkg *d, km_ec_msgs *out);

/**
 * km_ec_dkg_round2:
 * @in: every message received after round 1 (COMMIT broadcasts and SHARES
 *     addressed to this party; others are ignored)
 * Verifies each dealer's shares for this party's indices against its
 * Pedersen commitments and appends one COMPLAINTS broadcast (possibly
 * empty) to @out.
 * Returns: 0, KM_ERR_STATE, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_dkg_round2(
    km_ec_dkg *d, const km_ec_msg *in, size_t nmsg, km_ec_msgs *out);

/**
 * km_ec_dkg_round3:
 * @in: the COMPLAINTS broadcasts of all parties
 * Appends one ANSWER broadcast revealing the shares of every party that
 * complained against this dealer (empty if none).
 */
int km_ec_dkg_round3(
    km_ec_dkg *d, const km_ec_msg *in, size_t nmsg, km_ec_msgs *out);

/**
 * km_ec_dkg_round4:
 * @in: the ANSWER broadcasts
 * Fixes QUAL, adopts revealed shares for this party's own complaints, and
 * appends this dealer's FELDMAN broadcast if it is in QUAL.
 * Returns: 0, KM_ERR_QUORUM (no dealer qualified), KM_ERR_STATE,
 * KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_dkg_round4(
    km_ec_dkg *d, const km_ec_msg *in, size_t nmsg, km_ec_msgs *out);

/**
 * km_ec_dkg_finish:
 * @in: the FELDMAN broadcasts
 * @shares: receives an array of this party's shares, one per owned index
 * @nshares: receives its length
 * @pub: receives Y and every verification key
 * @culprit: optional, receives the party id of a dealer found cheating
 *     in this phase
 * Returns: 0, KM_ERR_QUORUM (a QUAL dealer sent no FELDMAN),
 * KM_ERR_VERIFY (a QUAL dealer's FELDMAN values contradict its shares),
 * KM_ERR_STATE, KM_ERR_ALLOC, KM_ERR_CRYPTO.
 */
int km_ec_dkg_finish(km_ec_dkg *d, const km_ec_msg *in, size_t nmsg,
    km_ec_share ***shares, size_t *nshares, km_ec_pub **pub,
    uint32_t *culprit);

/**
 * km_ec_dkg_qualified:
 * After round 4: true when @dealer is in QUAL.
 */
bool km_ec_dkg_qualified(const km_ec_dkg *d, uint32_t dealer);

/**
 * km_ec_dkg_complained:
 * After round 2: true when this party complained against @dealer.
 */
bool km_ec_dkg_complained(const km_ec_dkg *d, uint32_t dealer);

#endif /* KM_CRYPTO_EC_DKG_H */
