/*
 * keymesh's raft_uv_transport: Raft traffic over TCP with TLS 1.3 and
 * mutual authentication by the mesh PKI (internal to src/raft; the design
 * and the preamble format are in docs/raft.md).
 *
 * TLS ends inside the libuv loop, through OpenSSL memory BIOs on a
 * uv_tcp_t.  libraft is handed the other end of a socketpair as a plain
 * uv_stream_t, and the transport pumps bytes between the two.
 *
 * Every function runs on the loop's thread.
 */
#ifndef KM_RAFT_TRANSPORT_H
#define KM_RAFT_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "raft/raft.h"
#include "util/util.h"

#define KM_RAFT_ADDR_MAX KM_RAFT_ADDRESS_MAX

/* One member the transport accepts: Raft id, certificate name, address. */
typedef struct km_raft_member {
	uint64_t id;
	char name[KM_NAME_MAX + 1];
	char address[KM_RAFT_ADDR_MAX + 1];
} km_raft_member;

/* What the transport counted, for km_raft_info and the tests. */
typedef struct km_raft_tls_stats {
	uint64_t handshakes_ok; /* peers authenticated, both directions */
	uint64_t refused;       /* TLS or identity refusals */
	int last_refusal;       /* KM_ERR_* of the last refusal, or 0 */
} km_raft_tls_stats;

/**
 * km_raft_transport_init:
 * @t: the libraft transport to fill in (its impl is allocated here)
 * @loop: the loop it runs on
 * @ca_pem, @crl_pem: the mesh CA and its CRL (the CRL may be NULL)
 * @cert_pem, @key_pem: this node's certificate and key
 * @members, @n_members: who may connect and be connected to (copied)
 * @handshake_ms: a connection not authenticated in this time is dropped
 *
 * Returns: 0, KM_ERR_BAD_FORMAT (unparsable PEM), KM_ERR_CRYPTO,
 * KM_ERR_INVALID_ARG (key does not match certificate), KM_ERR_ALLOC.
 */
int km_raft_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
    const char *ca_pem, const char *crl_pem, const char *cert_pem,
    const char *key_pem, const km_raft_member *members, size_t n_members,
    unsigned handshake_ms);

/**
 * km_raft_transport_addr_in_use:
 * Did the last attempt to listen fail because another socket holds the
 * address?  (libraft reports any listen failure as RAFT_IOERR.)
 */
bool km_raft_transport_addr_in_use(struct raft_uv_transport *t);

/**
 * km_raft_transport_free:
 * Releases @t's impl.  Only once its close callback has fired and every
 * connection's handles are closed (the loop has nothing left to run).
 */
void km_raft_transport_free(struct raft_uv_transport *t);

/**
 * km_raft_transport_set_store:
 * @store: the CA store to verify peers with from now on (up-ref'd)
 *
 * Used when the CRL changes.  Every connection, open or not, is dropped:
 * libraft reconnects, and each link is authenticated again against @store.
 *
 * Returns: 0 or KM_ERR_CRYPTO.
 */
int km_raft_transport_set_store(
    struct raft_uv_transport *t, X509_STORE *store);

/**
 * km_raft_transport_suspend:
 * @name: a member's certificate name
 * @until_ns: km_mono_ns() time the suspension ends; 0 lifts it
 *
 * Refuses @name's Raft links, both ways, until @until_ns: the open ones
 * are closed now, a new one is refused once its handshake names it.  At
 * most KM_RAFT_SUSPEND_MAX names at a time (the one ending first makes
 * room).  Separate from the CRL and the deny-list: it ends by itself.
 */
void km_raft_transport_suspend(
    struct raft_uv_transport *t, const char *name, uint64_t until_ns);

/** km_raft_transport_stats: a copy of the counters. */
void km_raft_transport_stats(
    struct raft_uv_transport *t, km_raft_tls_stats *st);

/**
 * km_raft_addr_parse:
 * @address: "A.B.C.D:PORT" or "[IPV6]:PORT" (numeric only)
 * @ss: receives the socket address
 *
 * Returns: 0 or KM_ERR_INVALID_ARG.
 */
int km_raft_addr_parse(const char *address, struct sockaddr_storage *ss);

#endif /* KM_RAFT_TRANSPORT_H */
