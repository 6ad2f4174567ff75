/*
 * The audit log: one hash-chained record per request the daemon served or
 * refused.
 *
 * Each record holds its sequence number, time, client identity, key id,
 * operation (mechanism or request name), the SHA-256 of the request's input,
 * the outcome (0 or a KM_ERR_* code) and the previous record's hash.  Its
 * own hash is SHA-256 over a canonical encoding of all of those fields
 * (docs/storage.md), so changing, deleting or reordering any record breaks
 * the chain at that point; km_audit_verify() finds where.  The head (last
 * sequence number and hash) is kept beside the log and updated in the same
 * transaction, so dropping records from the end is found as well.
 *
 * WARNING: the chain proves the log has not been edited since it was
 * written, by anyone without the means to rewrite it whole.  Someone able
 * to recompute every hash (root on the node) can forge a consistent log;
 * publishing the head elsewhere (beacons, the catalog) closes that gap.
 */
#ifndef KM_STORE_AUDIT_H
#define KM_STORE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define KM_AUDIT_HASH_LEN  32
#define KM_AUDIT_FIELD_MAX 255 /* client, key id and operation lengths */

typedef struct km_audit_record {
	uint64_t seq;
	uint64_t time_ms;
	char client[KM_AUDIT_FIELD_MAX + 1];
	char key_id[KM_AUDIT_FIELD_MAX + 1];
	char operation[KM_AUDIT_FIELD_MAX + 1];
	uint8_t input_sha256[KM_AUDIT_HASH_LEN];
	int32_t outcome;
	uint8_t prev_hash[KM_AUDIT_HASH_LEN];
	uint8_t hash[KM_AUDIT_HASH_LEN];
} km_audit_record;

/**
 * km_audit_sha256:
 * @data, @len: a request's input (may be empty)
 * @out: receives its SHA-256
 */
int km_audit_sha256(
    const void *data, size_t len, uint8_t out[KM_AUDIT_HASH_LEN]);

/**
 * km_audit_append:
 * @s: the store
 * @time_ms: the request's time (0 for now)
 * @client: the client's identity ("" when unknown, e.g. a refused TLS peer)
 * @key_id: the key ("" when none)
 * @operation: the mechanism or request, e.g. "rsa-sign" or "CKM_RSA_PKCS"
 * @input_sha256: SHA-256 of the request's input (km_audit_sha256)
 * @outcome: 0 or the KM_ERR_* the request ended with
 * @seq: receives the record's sequence number (may be NULL)
 *
 * Appends one record in its own transaction.  Strings longer than
 * KM_AUDIT_FIELD_MAX or holding control characters are refused, so the log
 * cannot be used to inject lines into an operator's terminal.
 *
 * Returns: 0, KM_ERR_INVALID_ARG, KM_ERR_IO, KM_ERR_BUSY.
 */
int km_audit_append(km_store *s, uint64_t time_ms, const char *client,
    const char *key_id, const char *operation,
    const uint8_t input_sha256[KM_AUDIT_HASH_LEN], int outcome, uint64_t *seq);

/**
 * km_audit_record_hash:
 * @r: a record (every field but hash is used)
 * @out: receives SHA-256 of its canonical encoding
 */
int km_audit_record_hash(
    const km_audit_record *r, uint8_t out[KM_AUDIT_HASH_LEN]);

/**
 * km_audit_get:
 * @s: the store
 * @seq: a record's sequence number
 * @r: receives the record
 *
 * Returns: 0, KM_ERR_NOT_FOUND, KM_ERR_BAD_FORMAT, KM_ERR_IO.
 */
int km_audit_get(km_store *s, uint64_t seq, km_audit_record *r);

/**
 * km_audit_verify:
 * @s: the store
 * @bad_seq: receives the first sequence number at which the chain breaks
 *           (a modified, missing or misplaced record), 0 when it holds
 * @count: receives the number of records checked (may be NULL)
 *
 * Walks the whole log from the first record, recomputing each hash and
 * checking each link and the head.
 *
 * Returns: 0 when the chain holds, KM_ERR_VERIFY when it breaks at
 * *@bad_seq, KM_ERR_IO.
 */
int km_audit_verify(km_store *s, uint64_t *bad_seq, uint64_t *count);

#endif /* KM_STORE_AUDIT_H */
