/*
 * Unit tests for the daemon's PIN verifiers and login tickets
 * (daemon/pin.c) and for how the request service uses them
 * (daemon/service.c): the SO verifier beside the user's, the guessing
 * throttle per user type, tickets typed SO or user, and an SO ticket
 * refused for key operations.  No network and no token: the service is
 * called directly with a state store in a temporary directory.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/kmd.h"
#include "kmt.h"
#include "mesh/rpc.h"
#include "proto/proto.h"
#include "store/store.h"
#include "util/err.h"
#include "util/util.h"

#define PART     "default"
#define USER_PIN "123456"
#define SO_PIN   "so-secret-1"

static kmd_state st;
static km_identity client, other, admin;

/* Both suites' fixture (either may run alone): made once. */
static int
pin_init(void)
{
	static bool done;
	const char *d;
	char path[4200];

	if (done) {
		return 0;
	}
	if ((d = kmt_tmpdir()) == NULL) {
		return -1;
	}
	done = true;
	memset(&st, 0, sizeof(st));
	snprintf(st.cfg.state_dir, sizeof(st.cfg.state_dir), "%s", d);
	snprintf(st.cfg.name, sizeof(st.cfg.name), "node1");
	st.cfg.login_ticket_s = 600;
	pthread_mutex_init(&st.lock, NULL);
	snprintf(path, sizeof(path), "%s/state.db", d);
	if (km_store_open(path, &st.store) != 0) {
		return -1;
	}
	snprintf(client.name, sizeof(client.name), "client");
	client.role = KM_ROLE_CLIENT;
	memset(client.cert_sha256, 0x11, sizeof(client.cert_sha256));
	snprintf(other.name, sizeof(other.name), "other");
	other.role = KM_ROLE_CLIENT;
	memset(other.cert_sha256, 0x22, sizeof(other.cert_sha256));
	snprintf(admin.name, sizeof(admin.name), "admin");
	admin.role = KM_ROLE_ADMIN;
	memset(admin.cert_sha256, 0x33, sizeof(admin.cert_sha256));
	return 0;
}

static int
pin_cleanup(void)
{
	kmd_tickets_free(&st);
	km_store_close(st.store);
	pthread_mutex_destroy(&st.lock);
	return 0;
}

/* ---- pin.c ---- */

static void
test_so_verifier(void)
{
	char path[4200];
	struct stat sb;

	/* neither PIN set yet */
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, SO_PIN)
	    == KM_ERR_STATE);
	CU_ASSERT(kmd_pin_set(&st, PART, KM_PROTO_USER_USER, USER_PIN) == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, SO_PIN)
	    == KM_ERR_STATE);
	CU_ASSERT(kmd_pin_set(&st, PART, KM_PROTO_USER_SO, SO_PIN) == 0);
	/* each verifier takes its own PIN only */
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, SO_PIN) == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, USER_PIN) == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, USER_PIN)
	    == KM_ERR_PIN);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, SO_PIN)
	    == KM_ERR_PIN);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, "so-secret-2")
	    == KM_ERR_PIN);
	/* out-of-range PINs and user types */
	CU_ASSERT(
	    kmd_pin_check(&st, PART, KM_PROTO_USER_SO, "123") == KM_ERR_PIN);
	CU_ASSERT(kmd_pin_set(&st, PART, KM_PROTO_USER_SO, "123")
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(kmd_pin_set(&st, PART, 2, SO_PIN) == KM_ERR_INVALID_ARG);
	CU_ASSERT(kmd_pin_check(&st, PART, 7, SO_PIN) == KM_ERR_INVALID_ARG);
	CU_ASSERT(kmd_pin_set(&st, "../x", KM_PROTO_USER_SO, SO_PIN)
	    == KM_ERR_INVALID_ARG);
	/* the verifier file: its own name, owner-only, no PIN inside */
	snprintf(path, sizeof(path), "%s/sopin-" PART, st.cfg.state_dir);
	CU_ASSERT_FATAL(stat(path, &sb) == 0);
	CU_ASSERT((sb.st_mode & 0777) == 0600);
	CU_ASSERT(kmt_run("grep -q '%s' '%s'", SO_PIN, path) == 1);
	CU_ASSERT(kmt_run("grep -q '^scrypt 16384 8 1 ' '%s'", path) == 0);
}

static void
test_so_throttle(void)
{
	int i;

	CU_ASSERT(kmd_pin_set(&st, "thr", KM_PROTO_USER_SO, SO_PIN) == 0);
	CU_ASSERT(kmd_pin_set(&st, "thr", KM_PROTO_USER_USER, USER_PIN) == 0);
	/* nine wrong, one right: the count starts again */
	for (i = 0; i < 9; i++) {
		CU_ASSERT(
		    kmd_pin_check(&st, "thr", KM_PROTO_USER_SO, "wrong-pin")
		    == KM_ERR_PIN);
	}
	CU_ASSERT(kmd_pin_locked_ms("thr", KM_PROTO_USER_SO) == 0);
	CU_ASSERT(kmd_pin_check(&st, "thr", KM_PROTO_USER_SO, SO_PIN) == 0);
	for (i = 0; i < 9; i++) {
		CU_ASSERT(
		    kmd_pin_check(&st, "thr", KM_PROTO_USER_SO, "wrong-pin")
		    == KM_ERR_PIN);
	}
	CU_ASSERT(kmd_pin_locked_ms("thr", KM_PROTO_USER_SO) == 0);
	/* the tenth in a row locks SO logins for about a minute ... */
	CU_ASSERT(kmd_pin_check(&st, "thr", KM_PROTO_USER_SO, "wrong-pin")
	    == KM_ERR_PIN);
	CU_ASSERT(kmd_pin_locked_ms("thr", KM_PROTO_USER_SO) > 50000);
	CU_ASSERT(kmd_pin_locked_ms("thr", KM_PROTO_USER_SO) <= 60000);
	/* ... and only those: the user's counter is its own */
	CU_ASSERT(kmd_pin_locked_ms("thr", KM_PROTO_USER_USER) == 0);
	CU_ASSERT(kmd_pin_locked_ms(PART, KM_PROTO_USER_SO) == 0);
}

static void
test_ticket_typed(void)
{
	uint8_t so[32], user[32];
	char part[KM_NAME_MAX + 1];
	uint64_t exp;
	uint32_t u = 99;

	CU_ASSERT_FATAL(
	    kmd_ticket_issue(&st, &client, PART, KM_PROTO_USER_SO, so, &exp)
	    == 0);
	CU_ASSERT_FATAL(kmd_ticket_issue(
	                    &st, &client, PART, KM_PROTO_USER_USER, user, &exp)
	    == 0);
	CU_ASSERT(
	    kmd_ticket_check(&st, &client, so, part, sizeof(part), &u) == 0);
	CU_ASSERT(u == KM_PROTO_USER_SO && strcmp(part, PART) == 0);
	CU_ASSERT(kmd_ticket_check(&st, &client, user, NULL, 0, &u) == 0);
	CU_ASSERT(u == KM_PROTO_USER_USER);
	/* bound to the client */
	CU_ASSERT(
	    kmd_ticket_check(&st, &other, so, NULL, 0, &u) == KM_ERR_AUTH);
	CU_ASSERT(kmd_ticket_revoke(&st, &client, so) == 0);
	CU_ASSERT(
	    kmd_ticket_check(&st, &client, so, NULL, 0, NULL) == KM_ERR_AUTH);
	CU_ASSERT(kmd_ticket_revoke(&st, &client, user) == 0);
}

/* ---- service.c ---- */

/*
 * Sends @req (built by the caller) through the service as @peer; returns
 * the reply status, with @rep positioned after the reply header.
 */
static int
call(const km_identity *peer, km_buf *req, km_buf *rep, char *msg,
    size_t msglen)
{
	km_rep_hdr h;

	km_buf_reset(rep);
	if (kmd_service_handle(&st, peer, req->data, req->len, rep) != 0
	    || km_rep_decode_hdr(rep, &h) != 0) {
		return -9999;
	}
	if (msg != NULL) {
		snprintf(msg, msglen, "%s", h.message);
	}
	return h.status;
}

/* login-as: 0 with the ticket, or the status */
static int
login_as(const km_identity *peer, uint32_t user, const char *pin,
    uint8_t ticket[32])
{
	km_buf req, rep;
	const uint8_t *p;
	size_t n;
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_LOGIN_AS, NULL, 0, NULL);
	r = r ? r : km_buf_put_u32(&req, user);
	r = r ? r : km_buf_put_cstring(&req, PART);
	r = r ? r : km_buf_put_cstring(&req, pin);
	if (r == 0 && (r = call(peer, &req, &rep, NULL, 0)) == 0) {
		if (km_buf_get_string_ptr(&rep, &p, &n, 32) != 0 || n != 32) {
			r = -9998;
		} else {
			memcpy(ticket, p, 32);
		}
	}
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

static int
init_pin_as(const km_identity *peer, const uint8_t *ticket, uint32_t user,
    const char *pin)
{
	km_buf req, rep;
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_INIT_PIN_AS, NULL, 0, ticket);
	r = r ? r : km_buf_put_u32(&req, user);
	r = r ? r : km_buf_put_cstring(&req, PART);
	r = r ? r : km_buf_put_cstring(&req, pin);
	r = r ? r : call(peer, &req, &rep, NULL, 0);
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

static int
set_pin(const uint8_t *ticket, const char *old, const char *pin)
{
	km_buf req, rep;
	int r;

	km_buf_init(&req);
	km_buf_init(&rep);
	r = km_rpc_request(&req, KM_MSG_SET_PIN, NULL, 0, ticket);
	r = r ? r : km_buf_put_cstring(&req, old);
	r = r ? r : km_buf_put_cstring(&req, pin);
	r = r ? r : call(&client, &req, &rep, NULL, 0);
	km_buf_free(&req);
	km_buf_free(&rep);
	return r;
}

static void
test_service_so_login(void)
{
	uint8_t t[32];
	km_buf req, rep;
	char msg[300];

	CU_ASSERT(kmd_pin_set(&st, PART, KM_PROTO_USER_SO, SO_PIN) == 0);
	CU_ASSERT(kmd_pin_set(&st, PART, KM_PROTO_USER_USER, USER_PIN) == 0);
	CU_ASSERT(
	    login_as(&client, KM_PROTO_USER_SO, "wrong-pin", t) == KM_ERR_PIN);
	CU_ASSERT(
	    login_as(&client, KM_PROTO_USER_SO, USER_PIN, t) == KM_ERR_PIN);
	CU_ASSERT(
	    login_as(&client, KM_PROTO_USER_USER, SO_PIN, t) == KM_ERR_PIN);
	CU_ASSERT(login_as(&client, 2, SO_PIN, t) == KM_ERR_BAD_FORMAT);
	CU_ASSERT_FATAL(login_as(&client, KM_PROTO_USER_SO, SO_PIN, t) == 0);
	/* strict decoding: a trailing byte is refused */
	km_buf_init(&req);
	km_buf_init(&rep);
	CU_ASSERT(km_rpc_request(&req, KM_MSG_LOGIN_AS, NULL, 0, NULL) == 0);
	CU_ASSERT(km_buf_put_u32(&req, KM_PROTO_USER_SO) == 0);
	CU_ASSERT(km_buf_put_cstring(&req, PART) == 0);
	CU_ASSERT(km_buf_put_cstring(&req, SO_PIN) == 0);
	CU_ASSERT(km_buf_put_u8(&req, 0) == 0);
	CU_ASSERT(
	    call(&client, &req, &rep, msg, sizeof(msg)) == KM_ERR_BAD_FORMAT);
	CU_ASSERT(strstr(msg, "malformed login") != NULL);
	/* a node may not log in */
	km_buf_free(&req);
	km_buf_free(&rep);
	{
		km_identity node = client;

		node.role = KM_ROLE_NODE;
		CU_ASSERT(login_as(&node, KM_PROTO_USER_SO, SO_PIN, t)
		    == KM_ERR_AUTH);
	}
}

static void
test_service_so_no_partial(void)
{
	uint8_t so[32], user[32];
	km_buf req, rep;
	char msg[300];
	int r;

	CU_ASSERT_FATAL(login_as(&client, KM_PROTO_USER_SO, SO_PIN, so) == 0);
	km_buf_init(&req);
	km_buf_init(&rep);
	/* an rsa-partial with an SO ticket: refused before the key is
	 * even looked up */
	CU_ASSERT(km_rpc_request(&req, KM_MSG_RSA_PARTIAL, "k1", 1, so) == 0);
	CU_ASSERT(km_buf_put_u32(&req, 1) == 0);
	CU_ASSERT(call(&client, &req, &rep, msg, sizeof(msg)) == KM_ERR_AUTH);
	CU_ASSERT(strstr(msg, "not logged in as the user") != NULL);
	km_buf_reset(&req);
	CU_ASSERT(km_rpc_request(&req, KM_MSG_ECDH_PARTIAL, "k1", 1, so) == 0);
	CU_ASSERT(call(&client, &req, &rep, msg, sizeof(msg)) == KM_ERR_AUTH);
	/* a user ticket passes that check (and fails later: no such key) */
	CU_ASSERT_FATAL(
	    login_as(&client, KM_PROTO_USER_USER, USER_PIN, user) == 0);
	km_buf_reset(&req);
	CU_ASSERT(
	    km_rpc_request(&req, KM_MSG_RSA_PARTIAL, "k1", 1, user) == 0);
	CU_ASSERT(km_buf_put_u32(&req, 1) == 0);
	r = call(&client, &req, &rep, msg, sizeof(msg));
	CU_ASSERT(r != 0 && r != KM_ERR_AUTH);
	km_buf_free(&req);
	km_buf_free(&rep);
}

static void
test_service_init_pin(void)
{
	uint8_t so[32], user[32];

	CU_ASSERT_FATAL(login_as(&client, KM_PROTO_USER_SO, SO_PIN, so) == 0);
	CU_ASSERT_FATAL(
	    login_as(&client, KM_PROTO_USER_USER, USER_PIN, user) == 0);
	/* a client without a ticket, with a user ticket, or with another
	 * client's SO ticket may not set a PIN */
	CU_ASSERT(init_pin_as(&client, NULL, KM_PROTO_USER_USER, "654321")
	    == KM_ERR_AUTH);
	CU_ASSERT(init_pin_as(&client, user, KM_PROTO_USER_USER, "654321")
	    == KM_ERR_AUTH);
	CU_ASSERT(init_pin_as(&other, so, KM_PROTO_USER_USER, "654321")
	    == KM_ERR_AUTH);
	/* nor the SO PIN, even as the SO */
	CU_ASSERT(init_pin_as(&client, so, KM_PROTO_USER_SO, "654321")
	    == KM_ERR_AUTH);
	CU_ASSERT(init_pin_as(&client, so, KM_PROTO_USER_USER, "12")
	    == KM_ERR_INVALID_ARG);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, USER_PIN) == 0);
	/* the SO sets the user PIN */
	CU_ASSERT(init_pin_as(&client, so, KM_PROTO_USER_USER, "654321") == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, "654321") == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, USER_PIN)
	    == KM_ERR_PIN);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, SO_PIN) == 0);
	/* the admin sets either, without a ticket */
	CU_ASSERT(
	    init_pin_as(&admin, NULL, KM_PROTO_USER_USER, USER_PIN) == 0);
	CU_ASSERT(
	    init_pin_as(&admin, NULL, KM_PROTO_USER_SO, "so-2-pin") == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_SO, "so-2-pin") == 0);
	CU_ASSERT(init_pin_as(&admin, NULL, KM_PROTO_USER_SO, SO_PIN) == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, USER_PIN) == 0);
}

static void
test_service_set_pin(void)
{
	uint8_t so[32], user[32];

	CU_ASSERT_FATAL(login_as(&client, KM_PROTO_USER_SO, SO_PIN, so) == 0);
	CU_ASSERT_FATAL(
	    login_as(&client, KM_PROTO_USER_USER, USER_PIN, user) == 0);
	/* an SO ticket changes the SO PIN, checked against the SO's */
	CU_ASSERT(set_pin(so, USER_PIN, "new-so-pin") == KM_ERR_PIN);
	CU_ASSERT(set_pin(so, SO_PIN, "new-so-pin") == 0);
	CU_ASSERT(
	    kmd_pin_check(&st, PART, KM_PROTO_USER_SO, "new-so-pin") == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, USER_PIN) == 0);
	/* a user ticket the user PIN */
	CU_ASSERT(set_pin(user, "new-so-pin", "777777") == KM_ERR_PIN);
	CU_ASSERT(set_pin(user, USER_PIN, "777777") == 0);
	CU_ASSERT(kmd_pin_check(&st, PART, KM_PROTO_USER_USER, "777777") == 0);
	CU_ASSERT(
	    kmd_pin_check(&st, PART, KM_PROTO_USER_SO, "new-so-pin") == 0);
}

static const kmt_test pin_tests[] = {
	{ "so_verifier", test_so_verifier },
	{ "so_throttle", test_so_throttle },
	{ "ticket_typed", test_ticket_typed },
	KMT_END,
};

static const kmt_test service_tests[] = {
	{ "so_login", test_service_so_login },
	{ "so_no_partial", test_service_so_no_partial },
	{ "init_pin", test_service_init_pin },
	{ "set_pin", test_service_set_pin },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "pin", pin_init, NULL, pin_tests },
	{ "service", pin_init, pin_cleanup, service_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	return kmt_main(argc, argv, suites);
}
