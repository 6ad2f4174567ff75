/*
 * keymeshd: one share-holding security module of the mesh.
 *
 * Internal declarations shared by the daemon's files.
 */
#ifndef KM_DAEMON_KMD_H
#define KM_DAEMON_KMD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "raft/raft.h"
#include "util/buf.h"
#include "util/conf.h"
#include "util/log.h"

#define KMD_VERSION PACKAGE_VERSION
#define KMD_MAX_PEERS 32

typedef struct kmd_peer {
	char name[KM_NAME_MAX + 1];
	char url[256];
} kmd_peer;

/* The daemon's configuration, from keymeshd.conf. */
typedef struct kmd_config {
	char path[4096];
	char name[KM_NAME_MAX + 1];
	char listen[256];
	char state_dir[4096];
	unsigned workers;
	km_log_level log_level;

	char ca[4096];
	char crl[4096];
	char cert[4096];
	char key[4096];

	char token_module[4096];
	char token_label[64];
	char *token_pin; /* secure memory */
	char softhsm2_conf[4096];

	kmd_peer peers[KMD_MAX_PEERS];
	unsigned npeers;

	uint32_t request_window_ms;
	uint32_t login_ticket_s;

	uint32_t beacon_interval_ms; /* [node], trust beacons */
	uint32_t beacon_max_age_ms;  /* [policy] */
	uint32_t beacon_skew_ms;     /* [policy] */
	/* [raft]: the catalog on Raft (docs/raft.md); off when nraft == 0 */
	km_raft_peer raft[KMD_MAX_PEERS + 1]; /* every member, this node too */
	unsigned nraft;
	uint64_t raft_id; /* this node's member id */
	unsigned raft_election_ms, raft_heartbeat_ms;
	unsigned raft_snapshot_threshold, raft_snapshot_trailing;
} kmd_config;

/**
 * kmd_config_load:
 * @path: keymeshd.conf
 * @cfg: receives the configuration (free with kmd_config_free)
 * @err: receives one line naming what was wrong
 *
 * Returns: 0 or KM_ERR_CONFIG / KM_ERR_NOT_FOUND / KM_ERR_IO.
 */
int kmd_config_load(const char *path, kmd_config *cfg, char *err,
    size_t errlen);
void kmd_config_free(kmd_config *cfg);

typedef struct kmd_ticket kmd_ticket;
typedef struct kmd_keycache_entry kmd_keycache_entry;
struct km_store;
struct km_net_server;
struct km_net_creds;
struct km_net_client;
struct kmd_token;
struct kmd_beacon;
struct kmd_trust;

/* The running daemon. */
typedef struct kmd_state {
	kmd_config cfg;
	struct km_net_creds *creds;
	struct km_net_server *server;
	struct km_store *store;
	struct kmd_token *token;
	uint64_t started_ms;
	struct km_net_client *peer_clients[KMD_MAX_PEERS];
	X509_STORE *x509; /* CA + CRL, for catalog signatures */
	EVP_PKEY *idkey;  /* this node's identity key (unsealing) */
	volatile bool stopping;

	pthread_mutex_t lock; /* tickets, caches, counters */
	kmd_ticket *tickets;
	size_t nticket_slots, ticket_cap;
	uint64_t requests, refused;
	kmd_keycache_entry *keycache;
	char keygen_status[160]; /* dealer progress, for status */
	bool fault_corrupt;	  /* test builds: corrupt our partials */

	pthread_mutex_t catalog_lock; /* one catalog apply at a time */
	pthread_mutex_t dkg_lock;
	struct kmd_dkg_session *dkg; /* running DKG sessions */

	uint64_t inflight;	    /* requests being handled (lock) */
	struct kmd_beacon *beacon; /* beacon.c: the thread and the graph */
	struct km_raft *raft; /* the catalog's Raft log, or NULL (no [raft]) */
	struct kmd_trust *trust; /* trust.c: policy, verdicts, scores */
} kmd_state;

/* Operation kinds of an rsa-partial request. */
#define KMD_OP_SIGN 1u
#define KMD_OP_DECRYPT 2u

struct km_req_hdr;
struct km_rsa_pub;
struct km_rsa_mech;
struct km_ec_group;
struct km_ec_pub;
struct km_catalog_key;

/* service.c: the transport's handler for every request. */
int kmd_service_handle(void *arg, const km_identity *peer,
    const uint8_t *req, size_t req_len, km_buf *reply);

/* partial.c */
int kmd_do_rsa_partial(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *op,
    size_t oplen, uint8_t digest[32], char *msg, size_t msglen);
int kmd_do_ecdh_partial(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *op,
    size_t oplen, uint8_t digest[32], char *msg, size_t msglen);

/* keycache.c */
int kmd_key_rsa_pub(kmd_state *st, const struct km_catalog_key *k,
    const struct km_rsa_pub **pub);
int kmd_key_ec_pub(kmd_state *st, const struct km_catalog_key *k,
    const struct km_ec_group **g, const struct km_ec_pub **pub);
void kmd_keycache_free(kmd_state *st);
int kmd_rsa_mech_from_ckm(uint32_t mech, uint32_t kind,
    struct km_rsa_mech *m);
int kmd_rsa_pss_check(const struct km_rsa_pub *pub,
    const struct km_rsa_mech *m, const uint8_t *mhash, size_t mhashlen,
    const BIGNUM *x);

/* shares.c */
int kmd_share_store(kmd_state *st, const char *key_id, uint32_t epoch,
    uint32_t index, const uint8_t *share, size_t len);
int kmd_share_load(kmd_state *st, const char *key_id, uint32_t epoch,
    uint32_t index, km_buf *out);

/* catalog.c */
int kmd_catalog_sync(kmd_state *st);
int kmd_do_catalog_append(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *hdr,
    km_buf *in, km_buf *out, char *msg, size_t msglen);
int kmd_do_catalog_fetch(kmd_state *st, km_buf *in, km_buf *out,
    char *msg, size_t msglen);
/* The catalog on Raft: started from [raft], NULL-safe stop. */
int kmd_raft_start(kmd_state *st, const char *ca, const char *crl,
    const char *cert, const char *key, char *err, size_t errlen);
void kmd_raft_stop(kmd_state *st);
/* "leader", "follower", "candidate", "off" (no [raft]), "unavailable" */
const char *kmd_raft_role(kmd_state *st, char *leader, size_t leaderlen);

/* dealer.c: key creation */
int kmd_do_key_create(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *msg,
    size_t msglen);
int kmd_do_share_prepare(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *msg,
    size_t msglen);
int kmd_do_share_abort(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *msg,
    size_t msglen);
int kmd_do_dkg_round(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *msg,
    size_t msglen);

/* dkg.c: EC distributed key generation, coordinator and party */
struct km_catalog_holder;
int kmd_dkg_coordinate(kmd_state *st, const struct km_req_hdr *h,
    uint32_t key_type, uint32_t threshold, size_t nholders,
    const struct km_catalog_holder *holders, km_buf *out, char *msg,
    size_t msglen);
void kmd_dkg_free_all(kmd_state *st);

/* reshare.c: re-sharing a key to a new epoch (coordinator and party) */
int kmd_do_reshare_step(kmd_state *st, const km_identity *peer,
    const struct km_req_hdr *h, km_buf *in, km_buf *out, char *msg,
    size_t msglen);

/* beacon.c: trust beacons and the trust graph (docs/trust.md) */
int kmd_beacon_start(kmd_state *st, char *err, size_t errlen);
void kmd_beacon_stop(kmd_state *st);
int kmd_do_beacon(kmd_state *st, const km_identity *peer, km_buf *in,
    km_buf *out, char *msg, size_t msglen);
int kmd_do_graph(kmd_state *st, km_buf *in, km_buf *out, char *msg,
    size_t msglen);
int kmd_do_probe(kmd_state *st, km_buf *in, km_buf *out, char *msg,
    size_t msglen);

/*
 * trust.c: the posture policy, verdicts and quarantine (docs/trust.md).
 */
struct km_beacon;
struct km_trust_graph;
/* Loads the policy and verdicts from the store and starts the proposer
 * thread; after the store is open, before Raft starts. */
int kmd_trust_init(kmd_state *st, char *err, size_t errlen);
/* Joins the proposer thread (it proposes into Raft: before Raft stops);
 * kmd_trust_stop then frees the state (after Raft stops: its apply path
 * calls kmd_trust_applied). */
void kmd_trust_halt(kmd_state *st);
void kmd_trust_stop(kmd_state *st);
/* A POSTURE_SET or TRUST_VERDICT entry was applied (catalog.c). */
void kmd_trust_applied(kmd_state *st, uint32_t type, const uint8_t *payload,
    size_t len);
/* The apply-time rule for a verdict's signer (catalog.c): 0 or
 * KM_ERR_AUTH. */
int kmd_trust_check_verdict(const km_identity *signer,
    const uint8_t *payload, size_t len);
/* A fresh, verified beacon was accepted (beacon.c): the coordinator
 * scores it and proposes a verdict when one is due. */
void kmd_trust_on_beacon(kmd_state *st, const struct km_beacon *bc);
/**
 * kmd_trust_note:
 * @node: the node observed
 * @ev: a km_trust_event (KM_TRUST_EV_BAD_PARTIAL, ..._TIMEOUT)
 *
 * For the evidence and eviction code, on the coordinator, once it has
 * checked the evidence: lowers @node's score, which may quarantine it.
 * Returns: 0, KM_ERR_NOT_LEADER (ask the leader), KM_ERR_INVALID_ARG.
 */
int kmd_trust_note(kmd_state *st, const char *node, int ev);
/* true (and @msg says why) when this node is quarantined. */
bool kmd_trust_refuse_partial(kmd_state *st, char *msg, size_t msglen);
/* The maximum beacon age: the posture policy's, else the config's. */
uint32_t kmd_trust_max_age(kmd_state *st);
/* Copies the published verdicts into @g (its lock held). */
void kmd_trust_overlay(kmd_state *st, struct km_trust_graph *g);
/* catalog.c: a node's own entry (a verdict) into the Raft log. */
int kmd_catalog_propose(kmd_state *st, const uint8_t *data, size_t len,
    int *result, char *msg, size_t msglen);

/* fault.c: fault injection, compiled in only with --enable-test-hooks */
void kmd_fault_init(kmd_state *st);
void kmd_fault_dealing(const char *key_id);
bool kmd_fault_corrupt_partials(kmd_state *st);
unsigned kmd_fault_suspect_ms(unsigned dflt);
struct km_rsa_partial;
int kmd_fault_tamper_rsa(const struct km_rsa_pub *pub,
    struct km_rsa_partial *part);

/*
 * PINs (pin.c): verifiers per partition and user type (@user is
 * KM_PROTO_USER_SO or KM_PROTO_USER_USER), login tickets per client.
 */
bool kmd_user_valid(uint32_t user);
const char *kmd_user_name(uint32_t user);
bool kmd_pin_acceptable(const char *pin);
int kmd_pin_set(kmd_state *st, const char *partition, uint32_t user,
    const char *pin);
/* Returns 0, KM_ERR_PIN (wrong) or KM_ERR_STATE (never set). */
int kmd_pin_check(kmd_state *st, const char *partition, uint32_t user,
    const char *pin);
/* kmd_pin_locked_ms: how long @user's logins to @partition stay refused. */
uint64_t kmd_pin_locked_ms(const char *partition, uint32_t user);
int kmd_ticket_issue(kmd_state *st, const km_identity *client,
    const char *partition, uint32_t user, uint8_t ticket[32],
    uint64_t *expires_ms);
/* @partition and @user (either may be NULL) receive the ticket's. */
int kmd_ticket_check(kmd_state *st, const km_identity *client,
    const uint8_t ticket[32], char *partition, size_t partlen,
    uint32_t *user);
int kmd_ticket_revoke(kmd_state *st, const km_identity *client,
    const uint8_t ticket[32]);
void kmd_tickets_free(kmd_state *st);

#endif /* KM_DAEMON_KMD_H */
