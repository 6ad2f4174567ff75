/*
 * keymesh error codes.
 *
 * Core and daemon functions return int: 0 on success, otherwise one of the
 * negative KM_ERR_* values below (after OpenSSH's ssherr.h).  OpenSSL's 1/0
 * and nng's positive codes are converted where they are called and never
 * returned upward.  The one mapping to CK_RV lives in pkcs11/ckr.c.
 */
#ifndef KM_UTIL_ERR_H
#define KM_UTIL_ERR_H

#define KM_OK 0
#define KM_ERR_INTERNAL -1	   /* a bug: an invariant did not hold */
#define KM_ERR_ALLOC -2		   /* out of memory (or locked memory) */
#define KM_ERR_INVALID_ARG -3	   /* caller passed something unusable */
#define KM_ERR_BAD_FORMAT -4	   /* malformed encoding or message */
#define KM_ERR_TOO_LARGE -5	   /* a length over its limit */
#define KM_ERR_CRYPTO -6	   /* OpenSSL reported a failure */
#define KM_ERR_VERIFY -7	   /* signature, proof or check failed */
#define KM_ERR_IO -8		   /* file or system call failed */
#define KM_ERR_NOT_FOUND -9	   /* no such object, key, file or peer */
#define KM_ERR_EXISTS -10	   /* it already exists */
#define KM_ERR_TIMEOUT -11	   /* no answer in time */
#define KM_ERR_CONN -12		   /* connection refused, reset or closed */
#define KM_ERR_TLS -13		   /* TLS handshake or record failure */
#define KM_ERR_AUTH -14		   /* peer or client not authorised */
#define KM_ERR_REVOKED -15	   /* certificate revoked */
#define KM_ERR_PIN -16		   /* wrong PIN */
#define KM_ERR_STALE -17	   /* stale or replayed request */
#define KM_ERR_POLICY -18	   /* refused by key or mesh policy */
#define KM_ERR_QUORUM -19	   /* too few holders answered */
#define KM_ERR_BAD_PARTIAL -20	   /* a partial result was wrong */
#define KM_ERR_NOT_SUPPORTED -21   /* not implemented or not allowed here */
#define KM_ERR_BAD_VERSION -22	   /* unknown protocol or format version */
#define KM_ERR_BUFFER_TOO_SMALL -23 /* output buffer too small */
#define KM_ERR_BAD_PADDING -24	   /* padding check failed after combine */
#define KM_ERR_STATE -25	   /* wrong state for this operation */
#define KM_ERR_CONFIG -26	   /* bad configuration */
#define KM_ERR_TOKEN -27	   /* backend PKCS#11 token failure */
#define KM_ERR_RANGE -28	   /* value out of range (index, size) */
#define KM_ERR_CLOSED -29	   /* object closed or shutting down */
#define KM_ERR_BUSY -30		   /* resource busy, try again */
#define KM_ERR_NOT_LEADER -31	   /* not the Raft leader: ask the leader */
#define KM_ERR_LAST -31

/**
 * km_strerror:
 * @r: a KM_ERR_* code (or 0)
 *
 * Returns: a static, human-readable description; never NULL.
 */
const char *km_strerror(int r);

#endif /* KM_UTIL_ERR_H */
