/*
 * Helpers shared by the EC protocol files (ec_dkg.c, ec_reshare.c); not
 * for use outside src/crypto.
 */
#ifndef KM_CRYPTO_EC_INTERNAL_H
#define KM_CRYPTO_EC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/ec_dkg.h"
#include "crypto/ec_group.h"
#include "crypto/shamir.h"

/* Appends an empty message from @from to @to (0: broadcast); NULL on OOM. */
km_buf *km_ec_msgs_add(km_ec_msgs *m, uint32_t from, uint32_t to, bool secure);

/* The kind field of a message body's header, -1 when too short. */
int km_ec_msg_kind(const km_ec_msg *m);

/* uint32 k || k points; _get refuses a k other than @k. */
int km_ec_commits_put(const km_ec_group *g, km_buf *b, const km_ec_commits *c);
int km_ec_commits_get(
    const km_ec_group *g, km_buf *b, uint32_t k, km_ec_commits **out);

/* s*G + s'*H == sum_l E_l j^l: 0 or KM_ERR_VERIFY. */
int km_pedersen_verify(const km_ec_group *g, const km_ec_commits *e,
    uint32_t j, const BIGNUM *s, const BIGNUM *sp);

#endif /* KM_CRYPTO_EC_INTERNAL_H */
