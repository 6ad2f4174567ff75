/*
 * The security officer through keymesh-pkcs11.so's function list, against
 * a live dev mesh (3 keymeshd, threshold 2; `keymesh dev up` sets both the
 * user PIN and the SO PIN): C_Login(CKU_SO) and the §5.6 session rules,
 * C_InitPIN and C_SetPIN as the SO, an SO session refused private-key
 * operations (sign, derive), C_InitPIN with nodes down, and pkcs11-tool
 * --init-pin --login-type so / --change-pin as a real consumer.
 *
 * Environment: KM_BUILDDIR (the build tree, set by make check).  Exits 77
 * when SoftHSM is missing.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "kmt-mesh.h"
#include "kmt-p11.h"
#include "kmt.h"

#define NEW_USER_PIN "24681357"
#define NEW_SO_PIN   "new-so-pin-1"

static kmt_mesh mesh;
static CK_FUNCTION_LIST_PTR p11;
static char module[4200];
static void *dl;

/* ---- fixture ---- */

static int
setup(void)
{
	const char *b = getenv("KM_BUILDDIR");

	if (kmt_mesh_up(&mesh, 3, 2) != 0) {
		return -1;
	}
	if (kmt_run("'%s' key create --type ec:p256 --label ec >/dev/null "
	            "2>&1",
	        kmt_keymesh())
	        != 0
	    || kmt_run("'%s' key create --type rsa:2048 --label rsa "
	               ">/dev/null 2>&1",
	           kmt_keymesh())
	        != 0) {
		return -1;
	}
	/* pkcs11-tool loads the same module */
	snprintf(module, sizeof(module), "%s/.libs/keymesh-pkcs11.so",
	    b != NULL ? b : ".");
	return (dl = kmt_p11_load(b, &p11)) != NULL ? 0 : -1;
}

static int
suite_init(void)
{
	return p11->C_Initialize(NULL) == CKR_OK ? 0 : -1;
}

static int
suite_fini(void)
{
	return p11->C_Finalize(NULL) == CKR_OK ? 0 : -1;
}

static CK_SESSION_HANDLE
open_rw(void)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;

	(void)p11->C_OpenSession(
	    1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
	return h;
}

static CK_RV
login(CK_SESSION_HANDLE s, CK_USER_TYPE type, const char *pin)
{
	return p11->C_Login(s, type, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_RV
init_pin(CK_SESSION_HANDLE s, const char *pin)
{
	return p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_RV
set_pin(CK_SESSION_HANDLE s, const char *old, const char *pin)
{
	return p11->C_SetPIN(s, (CK_UTF8CHAR_PTR)old, strlen(old),
	    (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_STATE
state(CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;

	return p11->C_GetSessionInfo(s, &si) == CKR_OK ? si.state : ~0ul;
}

/* As the SO, set the user PIN back to the dev mesh's. */
static void
restore_user_pin(CK_SESSION_HANDLE s)
{
	int i;

	/*
	 * After a restart the module reconnects with nng's back-off (up to
	 * 2 s), and a node not yet back keeps its old PIN: set it again
	 * until every node takes it and the user can log in.
	 */
	for (i = 0; i < 10; i++) {
		CU_ASSERT(login(s, CKU_SO, mesh.so_pin) == CKR_OK);
		CU_ASSERT(init_pin(s, mesh.pin) == CKR_OK);
		CU_ASSERT(p11->C_Logout(s) == CKR_OK);
		if (login(s, CKU_USER, mesh.pin) == CKR_OK) {
			CU_ASSERT(p11->C_Logout(s) == CKR_OK);
			break;
		}
		usleep(500000);
	}
	CU_ASSERT(i < 10);
}

/* ---- tests ---- */

static void
test_so_login(void)
{
	CK_SESSION_HANDLE rw = open_rw(), ro = CK_INVALID_HANDLE, ro2;
	CK_TOKEN_INFO ti;

	CU_ASSERT_FATAL(rw != CK_INVALID_HANDLE);
	CU_ASSERT_FATAL(
	    p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
	    == CKR_OK);
	/* §5.6: no SO login while a read-only session is open, whichever
	 * session asks, even with the right PIN */
	CU_ASSERT(
	    login(rw, CKU_SO, mesh.so_pin) == CKR_SESSION_READ_ONLY_EXISTS);
	CU_ASSERT(
	    login(ro, CKU_SO, mesh.so_pin) == CKR_SESSION_READ_ONLY_EXISTS);
	CU_ASSERT(p11->C_CloseSession(ro) == CKR_OK);
	/* wrong PINs: the SO's is not the user's */
	CU_ASSERT(login(rw, CKU_SO, "wrong-so-pin") == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_SO, mesh.pin) == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_SO, "1") == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_USER, mesh.so_pin) == CKR_PIN_INCORRECT);
	CU_ASSERT(state(rw) == CKS_RW_PUBLIC_SESSION);
	/* the SO logs in */
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	CU_ASSERT(state(rw) == CKS_RW_SO_FUNCTIONS);
	CU_ASSERT(
	    login(rw, CKU_SO, mesh.so_pin) == CKR_USER_ALREADY_LOGGED_IN);
	CU_ASSERT(login(rw, CKU_USER, mesh.pin)
	    == CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	CU_ASSERT(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro2)
	    == CKR_SESSION_READ_WRITE_SO_EXISTS);
	CU_ASSERT(p11->C_GetTokenInfo(1, &ti) == CKR_OK);
	CU_ASSERT((ti.flags & (CKF_SO_PIN_LOCKED | CKF_USER_PIN_LOCKED)) == 0);
	/* C_Logout releases the SO's tickets */
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(state(rw) == CKS_RW_PUBLIC_SESSION);
	CU_ASSERT(p11->C_Logout(rw) == CKR_USER_NOT_LOGGED_IN);
	/* and the other way round */
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin)
	    == CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	/* closing the last session logs the SO out too */
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(rw) == CKR_OK);
	CU_ASSERT_FATAL(
	    p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
	    == CKR_OK);
	CU_ASSERT(state(ro) == CKS_RO_PUBLIC_SESSION);
	CU_ASSERT(p11->C_CloseSession(ro) == CKR_OK);
}

static void
test_init_pin(void)
{
	CK_SESSION_HANDLE rw = open_rw();

	CU_ASSERT_FATAL(rw != CK_INVALID_HANDLE);
	/* only the SO: not a public session, not the user */
	CU_ASSERT(init_pin(rw, NEW_USER_PIN) == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	CU_ASSERT(init_pin(rw, NEW_USER_PIN) == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	CU_ASSERT(init_pin(rw, "12") == CKR_PIN_LEN_RANGE);
	CU_ASSERT(init_pin(rw, NEW_USER_PIN) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	/* the new user PIN works on the mesh, the old one no longer */
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_USER, NEW_USER_PIN) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	restore_user_pin(rw);
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(rw) == CKR_OK);
}

static void
test_set_so_pin(void)
{
	CK_SESSION_HANDLE rw = open_rw();

	CU_ASSERT_FATAL(rw != CK_INVALID_HANDLE);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	/* while the SO is logged in, C_SetPIN is the SO PIN's (§5.6) */
	CU_ASSERT(set_pin(rw, mesh.pin, NEW_SO_PIN) == CKR_PIN_INCORRECT);
	CU_ASSERT(set_pin(rw, mesh.so_pin, "12") == CKR_PIN_LEN_RANGE);
	CU_ASSERT(set_pin(rw, mesh.so_pin, NEW_SO_PIN) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_SO, NEW_SO_PIN) == CKR_OK);
	CU_ASSERT(set_pin(rw, NEW_SO_PIN, mesh.so_pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	/* the user PIN did not move */
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	/* in a public session C_SetPIN is the user's, as before */
	CU_ASSERT(set_pin(rw, mesh.so_pin, NEW_USER_PIN) == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(rw) == CKR_OK);
}

/* P-256's generator, uncompressed: a valid peer point for ECDH. */
static const uint8_t p256_g[65] = { 0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c,
	0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03,
	0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98,
	0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7,
	0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31,
	0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5 };

/* ECDH with the mesh key @base (the module's only EC private-key
 * operation: it has no ECDSA). */
static CK_RV
derive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE base)
{
	CK_ECDH1_DERIVE_PARAMS p
	    = { CKD_NULL, 0, NULL, sizeof(p256_g), (CK_BYTE_PTR)p256_g };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
	};
	CK_OBJECT_HANDLE h;
	CK_RV rv;

	rv = p11->C_DeriveKey(s, &m, base, t, 2, &h);
	if (rv == CKR_OK) {
		(void)p11->C_DestroyObject(s, h);
	}
	return rv;
}

/* The private key labelled @label, or CK_INVALID_HANDLE. */
static CK_OBJECT_HANDLE
find_priv(CK_SESSION_HANDLE s, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;

	if (p11->C_FindObjectsInit(s, t, 2) != CKR_OK) {
		return CK_INVALID_HANDLE;
	}
	if (p11->C_FindObjects(s, &h, 1, &n) != CKR_OK || n != 1) {
		h = CK_INVALID_HANDLE;
	}
	(void)p11->C_FindObjectsFinal(s);
	return h;
}

static CK_RV
sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key)
{
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_BYTE sig[512];
	CK_ULONG sl = sizeof(sig);
	CK_RV rv;

	if ((rv = p11->C_SignInit(s, &m, key)) != CKR_OK) {
		return rv;
	}
	return p11->C_Sign(s, (CK_BYTE_PTR) "hello", 5, sig, &sl);
}

static void
test_so_cannot_sign(void)
{
	CK_SESSION_HANDLE rw = open_rw();
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t = { CKA_CLASS, &cls, sizeof(cls) };
	CK_MECHANISM gen = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE h[4], rsa, ec, pub, prv;
	CK_ULONG n = 0;

	CU_ASSERT_FATAL(rw != CK_INVALID_HANDLE);
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	rsa = find_priv(rw, "rsa");
	ec = find_priv(rw, "ec");
	CU_ASSERT(rsa != CK_INVALID_HANDLE && ec != CK_INVALID_HANDLE);
	/* the user can use the keys (so the refusals below are the SO's) */
	CU_ASSERT(sign(rw, rsa) == CKR_OK);
	CU_ASSERT(derive(rw, ec) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	/* the SO sees no private object and cannot use one (SoftHSM gives
	 * CKR_USER_NOT_LOGGED_IN for a private object in an SO session) */
	n = 99;
	CU_ASSERT(p11->C_FindObjectsInit(rw, &t, 1) == CKR_OK);
	CU_ASSERT(p11->C_FindObjects(rw, h, 4, &n) == CKR_OK && n == 0);
	CU_ASSERT(p11->C_FindObjectsFinal(rw) == CKR_OK);
	CU_ASSERT(sign(rw, rsa) == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(derive(rw, ec) == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(
	    p11->C_GenerateKeyPair(rw, &gen, NULL, 0, NULL, 0, &pub, &prv)
	    == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	/* (the daemons refuse an SO ticket for partials on their own:
	 * tests/unit/test-pin, /service/so_no_partial) */
	CU_ASSERT(p11->C_CloseSession(rw) == CKR_OK);
}

static void
test_init_pin_nodes_down(void)
{
	CK_SESSION_HANDLE rw = open_rw();

	CU_ASSERT_FATAL(rw != CK_INVALID_HANDLE);
	/* one of three down: the threshold (2) takes the PIN */
	CU_ASSERT_FATAL(kmt_mesh_stop(&mesh, 3) == 0);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_OK);
	CU_ASSERT(init_pin(rw, NEW_USER_PIN) == CKR_OK);
	/* two of three down: below the threshold */
	CU_ASSERT_FATAL(kmt_mesh_stop(&mesh, 2) == 0);
	CU_ASSERT(init_pin(rw, mesh.pin) == CKR_DEVICE_ERROR);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT_FATAL(kmt_mesh_start(&mesh, 2) == 0);
	CU_ASSERT_FATAL(kmt_mesh_start(&mesh, 3) == 0);
	/*
	 * Node 3 missed the new PIN and refuses it, and node 1 took the
	 * failed retry: the nodes disagree, so no PIN logs in until the SO
	 * sets it again with every node up (docs/pkcs11.md).
	 */
	CU_ASSERT(login(rw, CKU_USER, NEW_USER_PIN) == CKR_PIN_INCORRECT);
	restore_user_pin(rw);
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(rw) == CKR_OK);
}

static void
test_pkcs11_tool(void)
{
	CK_SESSION_HANDLE rw;

	if (!kmt_have_program("pkcs11-tool")) {
		fprintf(stderr, "pkcs11-tool not installed: skipped\n");
		return;
	}
	/* pkcs11-tool --init-pin --login --login-type so ... */
	CU_ASSERT(kmt_run("pkcs11-tool --module '%s' --init-pin --login "
	                  "--login-type so --so-pin wrong-so-pin --new-pin "
	                  "%s >/dev/null 2>&1",
	              module, NEW_USER_PIN)
	    != 0);
	CU_ASSERT(kmt_run("pkcs11-tool --module '%s' --init-pin --login "
	                  "--login-type so --so-pin '%s' --new-pin %s "
	                  ">/dev/null 2>&1",
	              module, mesh.so_pin, NEW_USER_PIN)
	    == 0);
	rw = open_rw();
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_USER, NEW_USER_PIN) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	/* --change-pin as the SO changes the SO PIN */
	CU_ASSERT(kmt_run("pkcs11-tool --module '%s' --change-pin --login "
	                  "--login-type so --so-pin '%s' --new-pin %s "
	                  ">/dev/null 2>&1",
	              module, mesh.so_pin, NEW_SO_PIN)
	    == 0);
	CU_ASSERT(login(rw, CKU_SO, mesh.so_pin) == CKR_PIN_INCORRECT);
	CU_ASSERT(login(rw, CKU_SO, NEW_SO_PIN) == CKR_OK);
	CU_ASSERT(set_pin(rw, NEW_SO_PIN, mesh.so_pin) == CKR_OK);
	CU_ASSERT(init_pin(rw, mesh.pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(login(rw, CKU_USER, mesh.pin) == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(rw) == CKR_OK);
}

static const kmt_test so_tests[] = {
	{ "so_login", test_so_login },
	{ "init_pin", test_init_pin },
	{ "set_so_pin", test_set_so_pin },
	{ "so_cannot_sign", test_so_cannot_sign },
	{ "init_pin_nodes_down", test_init_pin_nodes_down },
	{ "pkcs11_tool", test_pkcs11_tool },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "p11-so", suite_init, suite_fini, so_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (!kmt_have_program("softhsm2-util")) {
		printf("SKIP: SoftHSMv2 is not installed\n");
		return 77;
	}
	unsetenv("KEYMESH_LOG");
	unsetenv("KM_DEBUG");
	setenv("KM_STRICT", "1", 1);
	if (setup() != 0) {
		fprintf(
		    stderr, "cannot set up the dev mesh in %s\n", mesh.dir);
		return 2;
	}
	return kmt_main(argc, argv, suites);
}
