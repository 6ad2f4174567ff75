/*
 * keymesh-pkcs11.so through its function list, against a live dev mesh
 * (keymesh dev up: 5 keymeshd, threshold 3, SoftHSM tokens).
 *
 * Every result of a private-key operation is checked with OpenSSL against
 * the key's public half (CKA_PUBLIC_KEY_INFO), never against the module
 * itself.  The last suites stop holders, restart one with corrupted
 * partials (KEYMESHD_TEST_FAULT, a --enable-test-hooks build) and check
 * that results stay correct and the faulty holder is named.
 *
 * Environment: KM_BUILDDIR (the build tree, set by make check);
 * KEYMESH_DAEMON may point at another keymeshd.  Exits 77 when SoftHSM or
 * the test hooks are missing.
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#include "kmt-p11.h"
#include "kmt.h"
#include "pkcs11/p11-3.h"

static CK_FUNCTION_LIST_PTR p11;
static CK_RV (*get_interface)(
    CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
static CK_RV (*get_interface_list)(CK_INTERFACE_PTR, CK_ULONG_PTR);
static char builddir[2048], mesh[2048], keymesh[2300], pin[64];
static void *dl;

/* ---- fixture ---- */

static int
read_pin(void)
{
	char path[2100];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/user.pin", mesh);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	n = fread(pin, 1, sizeof(pin) - 1, f);
	fclose(f);
	while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r')) {
		n--;
	}
	pin[n] = '\0';
	return n > 0 ? 0 : -1;
}

static void
mesh_down(void)
{
	if (mesh[0] != '\0') {
		(void)kmt_run(
		    "'%s' dev down --dir '%s' >/dev/null 2>&1", keymesh, mesh);
	}
}

static int
node_stop(int i)
{
	return kmt_run("'%s' dev stop --dir '%s' --node %d >/dev/null 2>&1",
	    keymesh, mesh, i);
}

static int
node_start(int i, const char *fault)
{
	return kmt_run("%s%s '%s' dev start --dir '%s' --node %d "
	               ">/dev/null 2>&1",
	    fault != NULL ? "KEYMESHD_TEST_FAULT=" : "",
	    fault != NULL ? fault : "", keymesh, mesh, i);
}

static int
setup_mesh(void)
{
	const char *b = getenv("KM_BUILDDIR");
	char conf[2100];

	snprintf(builddir, sizeof(builddir), "%s", b != NULL ? b : ".");
	snprintf(keymesh, sizeof(keymesh), "%s/tools/keymesh", builddir);
	snprintf(mesh, sizeof(mesh), "%s/mesh", kmt_tmpdir());
	if (kmt_run("'%s' dev up --dir '%s' --nodes 5 --threshold 3 "
	            ">/dev/null 2>&1",
	        keymesh, mesh)
	    != 0) {
		mesh[0] = '\0';
		return -1;
	}
	atexit(mesh_down);
	if (read_pin() != 0) {
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/client.conf", mesh);
	setenv("KEYMESH_CONF", conf, 1);
	/* raw RSA allowed on "rsa" (CKM_RSA_X_509 tests); "ec" for ECDH */
	if (kmt_run("'%s' key create --type rsa:2048 --label rsa "
	            "--allow-raw yes >/dev/null 2>&1",
	        keymesh)
	        != 0
	    || kmt_run("'%s' key create --type ec:p256 --label ec >/dev/null "
	               "2>&1",
	           keymesh)
	        != 0) {
		return -1;
	}
	if ((dl = kmt_p11_load(builddir, &p11)) == NULL) {
		return -1;
	}
	get_interface = (CK_RV(*)(CK_UTF8CHAR_PTR, CK_VERSION_PTR,
	    CK_INTERFACE_PTR_PTR, CK_FLAGS))dlsym(dl, "C_GetInterface");
	get_interface_list = (CK_RV(*)(CK_INTERFACE_PTR, CK_ULONG_PTR))dlsym(
	    dl, "C_GetInterfaceList");
	if (get_interface == NULL || get_interface_list == NULL) {
		return -1;
	}
	return 0;
}

/* Suites that need the module initialised, a session and a login. */
static CK_SESSION_HANDLE sess;

static int
suite_login(void)
{
	if (p11->C_Initialize(NULL) != CKR_OK
	    || p11->C_OpenSession(
	           1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess)
	        != CKR_OK
	    || p11->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))
	        != CKR_OK) {
		return -1;
	}
	return 0;
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

/* KM_STRICT=1 aborts on precondition failures: off while testing them. */
static void
lenient(bool on)
{
	setenv("KM_STRICT", on ? "0" : "1", 1);
}

static CK_OBJECT_HANDLE
find1(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
	return kmt_p11_find1(p11, s, cls, label);
}

/* The public key of a key object, from CKA_PUBLIC_KEY_INFO. */
static EVP_PKEY *
pubkey(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
	return kmt_p11_pubkey(p11, s, h);
}

/* Captures the module's stderr while @fn runs. */
static char captured[8192];

static void
capture_begin(int *saved, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/stderr.XXXXXX", kmt_tmpdir());
	fd = mkstemp(path);
	fflush(stderr);
	*saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static void
capture_end(int saved, const char *path)
{
	FILE *f;
	size_t n = 0;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if ((f = fopen(path, "r")) != NULL) {
		n = fread(captured, 1, sizeof(captured) - 1, f);
		fclose(f);
	}
	captured[n] = '\0';
	unlink(path);
}

/* ---- interface ---- */

static void
test_function_list(void)
{
	CK_FUNCTION_LIST_PTR l = NULL;
	void **fp;
	size_t i, n;

	CU_ASSERT(p11->C_GetFunctionList(&l) == CKR_OK);
	CU_ASSERT_FATAL(l == p11);
	CU_ASSERT(l->version.major == 2 && l->version.minor == 40);
	/* every entry point is filled */
	fp = (void **)&l->C_Initialize;
	n = (sizeof(*l) - offsetof(CK_FUNCTION_LIST, C_Initialize))
	    / sizeof(void *);
	CU_ASSERT(n == 68);
	for (i = 0; i < n; i++) {
		CU_ASSERT(fp[i] != NULL);
	}
	lenient(true);
	CU_ASSERT(p11->C_GetFunctionList(NULL) == CKR_ARGUMENTS_BAD);
	lenient(false);
}

static void
test_interfaces(void)
{
	CK_INTERFACE list[4], *i = NULL;
	CK_ULONG n = 0;
	CK_VERSION v240 = { 2, 40 }, v30 = { 3, 0 }, v99 = { 9, 9 };
	CK_FUNCTION_LIST_3_0 *l3;

	CU_ASSERT(get_interface_list(NULL, &n) == CKR_OK && n == 2);
	n = 1;
	CU_ASSERT(
	    get_interface_list(list, &n) == CKR_BUFFER_TOO_SMALL && n == 2);
	n = 4;
	CU_ASSERT(get_interface_list(list, &n) == CKR_OK && n == 2);
	CU_ASSERT(strcmp((char *)list[0].pInterfaceName, "PKCS 11") == 0);
	CU_ASSERT(
	    get_interface((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &i, 0) == CKR_OK);
	CU_ASSERT_FATAL(i != NULL);
	l3 = i->pFunctionList;
	CU_ASSERT(l3->version.major == 3 && l3->version.minor == 0);
	CU_ASSERT(
	    l3->C_GetInterface != NULL && l3->C_MessageVerifyFinal != NULL);
	CU_ASSERT((void *)l3->C_Sign == (void *)p11->C_Sign);
	/* not fork-safe: NSS's request is refused, it then falls back */
	CU_ASSERT(get_interface((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &i,
	              CKF_INTERFACE_FORK_SAFE)
	    == CKR_ARGUMENTS_BAD);
	CU_ASSERT(get_interface(NULL, &v240, &i, 0) == CKR_OK
	    && i->pFunctionList == (void *)p11);
	CU_ASSERT(get_interface(NULL, &v30, &i, 0) == CKR_OK
	    && i->pFunctionList == (void *)l3);
	CU_ASSERT(get_interface(NULL, &v99, &i, 0) == CKR_ARGUMENTS_BAD);
	CU_ASSERT(get_interface((CK_UTF8CHAR_PTR) "Vendor X", NULL, &i, 0)
	    == CKR_ARGUMENTS_BAD);
	/* the 3.0-only functions answer through the list */
	CU_ASSERT(
	    l3->C_MessageSignInit(1, NULL, 0) == CKR_CRYPTOKI_NOT_INITIALIZED);
}

static int mutex_calls;

static CK_RV
mx_create(void **m)
{
	pthread_mutex_t *p = malloc(sizeof(*p));

	pthread_mutex_init(p, NULL);
	*m = p;
	__atomic_add_fetch(&mutex_calls, 1, __ATOMIC_SEQ_CST);
	return CKR_OK;
}

static CK_RV
mx_destroy(void *m)
{
	pthread_mutex_destroy(m);
	free(m);
	return CKR_OK;
}

static CK_RV
mx_lock(void *m)
{
	__atomic_add_fetch(&mutex_calls, 1, __ATOMIC_SEQ_CST);
	return pthread_mutex_lock(m) == 0 ? CKR_OK : CKR_GENERAL_ERROR;
}

static CK_RV
mx_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? CKR_OK : CKR_GENERAL_ERROR;
}

static void
test_initialize(void)
{
	CK_C_INITIALIZE_ARGS a;
	CK_SLOT_ID slots[2];
	CK_ULONG n = 2;
	CK_INFO info;
	int before;

	CU_ASSERT(p11->C_GetInfo(&info) == CKR_CRYPTOKI_NOT_INITIALIZED);
	CU_ASSERT(p11->C_GetSlotList(CK_TRUE, slots, &n)
	    == CKR_CRYPTOKI_NOT_INITIALIZED);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_CRYPTOKI_NOT_INITIALIZED);
	memset(&a, 0, sizeof(a));
	a.pReserved = &a;
	CU_ASSERT(p11->C_Initialize(&a) == CKR_ARGUMENTS_BAD);
	memset(&a, 0, sizeof(a));
	a.CreateMutex = mx_create;
	CU_ASSERT(p11->C_Initialize(&a) == CKR_ARGUMENTS_BAD);
	memset(&a, 0, sizeof(a));
	a.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
	/* what p11-kit and GnuTLS pass: accepted (see core.c) */
	CU_ASSERT(p11->C_Initialize(&a) == CKR_OK);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
	/* the application's mutexes are used when it gives them */
	memset(&a, 0, sizeof(a));
	a.CreateMutex = mx_create;
	a.DestroyMutex = mx_destroy;
	a.LockMutex = mx_lock;
	a.UnlockMutex = mx_unlock;
	CU_ASSERT_FATAL(p11->C_Initialize(&a) == CKR_OK);
	before = mutex_calls;
	CU_ASSERT(p11->C_Initialize(NULL) == CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CU_ASSERT(p11->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK);
	CU_ASSERT(mutex_calls > 0);
	(void)before;
	lenient(true);
	CU_ASSERT(p11->C_Finalize(&a) == CKR_ARGUMENTS_BAD);
	lenient(false);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
	/* with CKF_OS_LOCKING_OK the module's own locks are used */
	a.flags = CKF_OS_LOCKING_OK;
	before = mutex_calls;
	CU_ASSERT(p11->C_Initialize(&a) == CKR_OK);
	CU_ASSERT(p11->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK);
	CU_ASSERT(mutex_calls == before);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
}

/* ---- slot and token ---- */

static void
test_slot_token(void)
{
	CK_SLOT_ID slots[4];
	CK_ULONG n = 0;
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti, ti2;
	CK_INFO info;

	CU_ASSERT(p11->C_GetInfo(&info) == CKR_OK);
	CU_ASSERT(info.cryptokiVersion.major == 2);
	CU_ASSERT(memcmp(info.manufacturerID, "keymesh ", 8) == 0);
	CU_ASSERT(p11->C_GetSlotList(CK_TRUE, NULL, &n) == CKR_OK && n == 1);
	n = 0;
	CU_ASSERT(
	    p11->C_GetSlotList(CK_TRUE, slots, &n) == CKR_BUFFER_TOO_SMALL
	    && n == 1);
	n = 4;
	CU_ASSERT(p11->C_GetSlotList(CK_FALSE, slots, &n) == CKR_OK && n == 1);
	CU_ASSERT(p11->C_GetSlotInfo(slots[0], &si) == CKR_OK);
	CU_ASSERT(si.flags & CKF_TOKEN_PRESENT);
	CU_ASSERT(p11->C_GetSlotInfo(99, &si) == CKR_SLOT_ID_INVALID);
	CU_ASSERT(p11->C_GetTokenInfo(99, &ti) == CKR_SLOT_ID_INVALID);
	CU_ASSERT_FATAL(p11->C_GetTokenInfo(slots[0], &ti) == CKR_OK);
	CU_ASSERT(memcmp(ti.label, "keymesh-default ", 16) == 0);
	CU_ASSERT((ti.flags
	              & (CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED
	                  | CKF_TOKEN_INITIALIZED | CKF_RNG))
	    == (CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED
	        | CKF_TOKEN_INITIALIZED | CKF_RNG));
	/* the serial is stable: the same after re-initialising */
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
	CU_ASSERT(p11->C_Initialize(NULL) == CKR_OK);
	CU_ASSERT(p11->C_GetTokenInfo(slots[0], &ti2) == CKR_OK);
	CU_ASSERT(memcmp(ti.serialNumber, ti2.serialNumber, 16) == 0);
	CU_ASSERT(
	    p11->C_InitToken(slots[0], (CK_UTF8CHAR_PTR) "1234", 4, ti.label)
	    == CKR_FUNCTION_NOT_SUPPORTED);
	CU_ASSERT(p11->C_WaitForSlotEvent(0, slots, NULL)
	    == CKR_FUNCTION_NOT_SUPPORTED);
	lenient(true);
	CU_ASSERT(
	    p11->C_GetSlotList(CK_TRUE, slots, NULL) == CKR_ARGUMENTS_BAD);
	CU_ASSERT(p11->C_GetTokenInfo(slots[0], NULL) == CKR_ARGUMENTS_BAD);
	lenient(false);
}

static void
test_mechanisms(void)
{
	CK_MECHANISM_TYPE m[64];
	CK_ULONG n = 0, i;
	CK_MECHANISM_INFO mi;
	bool pss = false, oaep = false, ecdh = false, ecdsa = false;

	CU_ASSERT(p11->C_GetMechanismList(1, NULL, &n) == CKR_OK && n > 20);
	i = 2;
	CU_ASSERT(p11->C_GetMechanismList(1, m, &i) == CKR_BUFFER_TOO_SMALL
	    && i == n);
	i = 64;
	CU_ASSERT_FATAL(p11->C_GetMechanismList(1, m, &i) == CKR_OK);
	for (i = 0; i < n; i++) {
		CU_ASSERT(p11->C_GetMechanismInfo(1, m[i], &mi) == CKR_OK);
		pss |= m[i] == CKM_SHA512_RSA_PKCS_PSS;
		oaep |= m[i] == CKM_RSA_PKCS_OAEP;
		ecdh |= m[i] == CKM_ECDH1_DERIVE;
		ecdsa |= m[i] == CKM_ECDSA;
	}
	CU_ASSERT(pss && oaep && ecdh && !ecdsa);
	CU_ASSERT(p11->C_GetMechanismInfo(1, CKM_RSA_PKCS, &mi) == CKR_OK);
	CU_ASSERT(mi.ulMinKeySize == 2048 && mi.ulMaxKeySize == 4096);
	CU_ASSERT(
	    (mi.flags
	        & (CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT))
	    == (CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT));
	CU_ASSERT(p11->C_GetMechanismInfo(1, CKM_SHA256, &mi) == CKR_OK
	    && mi.flags == CKF_DIGEST);
	CU_ASSERT(p11->C_GetMechanismInfo(1, CKM_ECDSA, &mi)
	    == CKR_MECHANISM_INVALID);
	CU_ASSERT(p11->C_GetMechanismInfo(7, CKM_RSA_PKCS, &mi)
	    == CKR_SLOT_ID_INVALID);
}

/* ---- sessions and login ---- */

static void
test_sessions(void)
{
	CK_SESSION_HANDLE ro, rw, x;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;

	CU_ASSERT(p11->C_OpenSession(1, 0, NULL, NULL, &x)
	    == CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	CU_ASSERT(p11->C_OpenSession(9, CKF_SERIAL_SESSION, NULL, NULL, &x)
	    == CKR_SLOT_ID_INVALID);
	CU_ASSERT_FATAL(
	    p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
	    == CKR_OK);
	CU_ASSERT_FATAL(
	    p11->C_OpenSession(
	        1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw)
	    == CKR_OK);
	CU_ASSERT(p11->C_GetSessionInfo(ro, &si) == CKR_OK
	    && si.state == CKS_RO_PUBLIC_SESSION && si.slotID == 1);
	CU_ASSERT(p11->C_GetSessionInfo(rw, &si) == CKR_OK
	    && si.state == CKS_RW_PUBLIC_SESSION);
	CU_ASSERT(p11->C_GetTokenInfo(1, &ti) == CKR_OK
	    && ti.ulSessionCount == 2 && ti.ulRwSessionCount == 1);
	CU_ASSERT(
	    p11->C_GetSessionInfo(12345, &si) == CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT(p11->C_GetOperationState(ro, NULL, NULL)
	    == CKR_FUNCTION_NOT_SUPPORTED);
	CU_ASSERT(p11->C_CloseSession(ro) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(ro) == CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT(p11->C_CloseAllSessions(1) == CKR_OK);
	CU_ASSERT(
	    p11->C_GetSessionInfo(rw, &si) == CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT(p11->C_GetFunctionStatus(rw) == CKR_FUNCTION_NOT_PARALLEL);
}

static void
test_login(void)
{
	CK_SESSION_HANDLE ro, rw;
	CK_SESSION_INFO si;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t = { CKA_CLASS, &cls, sizeof(cls) };
	CK_OBJECT_HANDLE h[8];
	CK_ULONG n;
	const char *np = "99887766";
	size_t pl = strlen(pin);

	CU_ASSERT_FATAL(
	    p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
	    == CKR_OK);
	CU_ASSERT_FATAL(
	    p11->C_OpenSession(
	        1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw)
	    == CKR_OK);
	/* private keys are invisible before login */
	CU_ASSERT(p11->C_FindObjectsInit(ro, &t, 1) == CKR_OK);
	CU_ASSERT(p11->C_FindObjects(ro, h, 8, &n) == CKR_OK && n == 0);
	CU_ASSERT(p11->C_FindObjectsFinal(ro) == CKR_OK);
	CU_ASSERT(p11->C_Logout(ro) == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(p11->C_Login(ro, CKU_USER, (CK_UTF8CHAR_PTR) "000000", 6)
	    == CKR_PIN_INCORRECT);
	CU_ASSERT(p11->C_Login(ro, CKU_USER, (CK_UTF8CHAR_PTR) "1", 1)
	    == CKR_PIN_INCORRECT);
	/* an SO login needs every session R/W (§5.6; test-pkcs11-so) */
	CU_ASSERT(p11->C_Login(ro, CKU_SO, (CK_UTF8CHAR_PTR)pin, pl)
	    == CKR_SESSION_READ_ONLY_EXISTS);
	CU_ASSERT(p11->C_Login(ro, 77, (CK_UTF8CHAR_PTR)pin, pl)
	    == CKR_USER_TYPE_INVALID);
	CU_ASSERT(
	    p11->C_Login(ro, CKU_USER, (CK_UTF8CHAR_PTR)pin, pl) == CKR_OK);
	CU_ASSERT(p11->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)pin, pl)
	    == CKR_USER_ALREADY_LOGGED_IN);
	CU_ASSERT(p11->C_GetSessionInfo(ro, &si) == CKR_OK
	    && si.state == CKS_RO_USER_FUNCTIONS);
	CU_ASSERT(p11->C_GetSessionInfo(rw, &si) == CKR_OK
	    && si.state == CKS_RW_USER_FUNCTIONS);
	CU_ASSERT(p11->C_FindObjectsInit(ro, &t, 1) == CKR_OK);
	CU_ASSERT(p11->C_FindObjects(ro, h, 8, &n) == CKR_OK && n >= 2);
	CU_ASSERT(p11->C_FindObjectsFinal(ro) == CKR_OK);
	/* PIN change goes to every node; then back */
	CU_ASSERT(
	    p11->C_SetPIN(ro, (CK_UTF8CHAR_PTR)pin, pl, (CK_UTF8CHAR_PTR)np, 8)
	    == CKR_SESSION_READ_ONLY);
	CU_ASSERT(p11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "55555555", 8,
	              (CK_UTF8CHAR_PTR)np, 8)
	    == CKR_PIN_INCORRECT);
	CU_ASSERT(p11->C_SetPIN(
	              rw, (CK_UTF8CHAR_PTR)pin, pl, (CK_UTF8CHAR_PTR) "12", 2)
	    == CKR_PIN_LEN_RANGE);
	CU_ASSERT(
	    p11->C_SetPIN(rw, (CK_UTF8CHAR_PTR)pin, pl, (CK_UTF8CHAR_PTR)np, 8)
	    == CKR_OK);
	CU_ASSERT(p11->C_Logout(rw) == CKR_OK);
	CU_ASSERT(p11->C_GetSessionInfo(rw, &si) == CKR_OK
	    && si.state == CKS_RW_PUBLIC_SESSION);
	CU_ASSERT(p11->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)pin, pl)
	    == CKR_PIN_INCORRECT);
	CU_ASSERT(
	    p11->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)np, 8) == CKR_OK);
	CU_ASSERT(
	    p11->C_SetPIN(rw, (CK_UTF8CHAR_PTR)np, 8, (CK_UTF8CHAR_PTR)pin, pl)
	    == CKR_OK);
	/* C_InitPIN is the SO's (test-pkcs11-so) */
	CU_ASSERT(p11->C_InitPIN(rw, (CK_UTF8CHAR_PTR)pin, pl)
	    == CKR_USER_NOT_LOGGED_IN);
	/* closing the last session logs out */
	CU_ASSERT(p11->C_CloseAllSessions(1) == CKR_OK);
	CU_ASSERT_FATAL(
	    p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
	    == CKR_OK);
	CU_ASSERT(p11->C_GetSessionInfo(ro, &si) == CKR_OK
	    && si.state == CKS_RO_PUBLIC_SESSION);
	CU_ASSERT(
	    p11->C_Login(ro, CKU_USER, (CK_UTF8CHAR_PTR)pin, pl) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(ro) == CKR_OK);
}

/* ---- objects ---- */

static void
test_object_attributes(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa"),
	                 pub = find1(sess, CKO_PUBLIC_KEY, "rsa"),
	                 ecpub = find1(sess, CKO_PUBLIC_KEY, "ec");
	CK_BBOOL sens = 0, extr = 1, asens = 0, nextr = 0, auth = 1, sign = 0,
	         tok = 0, prv = 0;
	CK_KEY_TYPE kt = 0;
	uint8_t mod[600], e[8], id1[64], id2[64], ecp[100], ecparams[20],
	    small[4];
	CK_ATTRIBUTE a[] = {
		{ CKA_SENSITIVE, &sens, 1 },
		{ CKA_EXTRACTABLE, &extr, 1 },
		{ CKA_ALWAYS_SENSITIVE, &asens, 1 },
		{ CKA_NEVER_EXTRACTABLE, &nextr, 1 },
		{ CKA_ALWAYS_AUTHENTICATE, &auth, 1 },
		{ CKA_SIGN, &sign, 1 },
		{ CKA_TOKEN, &tok, 1 },
		{ CKA_PRIVATE, &prv, 1 },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_MODULUS, mod, sizeof(mod) },
		{ CKA_ID, id1, sizeof(id1) },
	};
	CK_ATTRIBUTE b[] = {
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
		{ CKA_ID, id2, sizeof(id2) },
	};
	CK_ATTRIBUTE c[] = {
		{ CKA_PRIVATE_EXPONENT, mod, sizeof(mod) },
		{ CKA_LABEL, NULL, 0 },
		{ 0x8fff1234UL, mod, sizeof(mod) },
	};
	CK_ATTRIBUTE ec[] = {
		{ CKA_EC_POINT, ecp, sizeof(ecp) },
		{ CKA_EC_PARAMS, ecparams, sizeof(ecparams) },
	};
	CK_ATTRIBUTE sm = { CKA_MODULUS, small, sizeof(small) };
	EVP_PKEY *pk;
	BIGNUM *n = NULL, *bm;

	CU_ASSERT_FATAL(priv != CK_INVALID_HANDLE && pub != CK_INVALID_HANDLE
	    && ecpub != CK_INVALID_HANDLE);
	CU_ASSERT(p11->C_GetAttributeValue(sess, priv, a, 11) == CKR_OK);
	CU_ASSERT(sens && !extr && asens && nextr && !auth && sign && tok
	    && prv && kt == CKK_RSA);
	CU_ASSERT(a[9].ulValueLen == 256);
	CU_ASSERT(p11->C_GetAttributeValue(sess, pub, b, 2) == CKR_OK);
	CU_ASSERT(b[0].ulValueLen == 3 && e[0] == 1 && e[1] == 0 && e[2] == 1);
	/* private and public halves are linked by CKA_ID */
	CU_ASSERT(a[10].ulValueLen == b[1].ulValueLen
	    && memcmp(id1, id2, b[1].ulValueLen) == 0);
	/* the modulus is the one of the SubjectPublicKeyInfo */
	pk = pubkey(sess, pub);
	CU_ASSERT_FATAL(pk != NULL);
	CU_ASSERT(EVP_PKEY_get_bn_param(pk, "n", &n) == 1);
	bm = BN_bin2bn(mod, (int)a[9].ulValueLen, NULL);
	CU_ASSERT(n != NULL && bm != NULL && BN_cmp(n, bm) == 0);
	BN_free(n);
	BN_free(bm);
	EVP_PKEY_free(pk);
	/* sensitive, a length query and an unknown type at once */
	CU_ASSERT(p11->C_GetAttributeValue(sess, priv, c, 3)
	        == CKR_ATTRIBUTE_SENSITIVE
	    || p11->C_GetAttributeValue(sess, priv, c, 3)
	        == CKR_ATTRIBUTE_TYPE_INVALID);
	CU_ASSERT(c[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CU_ASSERT(c[1].ulValueLen == 3); /* "rsa" */
	CU_ASSERT(c[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CU_ASSERT(p11->C_GetAttributeValue(sess, priv, c, 1)
	    == CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT(p11->C_GetAttributeValue(sess, priv, &c[2], 1)
	    == CKR_ATTRIBUTE_TYPE_INVALID);
	CU_ASSERT(
	    p11->C_GetAttributeValue(sess, pub, &sm, 1) == CKR_BUFFER_TOO_SMALL
	    && sm.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CU_ASSERT(p11->C_GetAttributeValue(sess, 999999, &sm, 1)
	    == CKR_OBJECT_HANDLE_INVALID);
	/* EC public key: DER OID and DER OCTET STRING of the point */
	CU_ASSERT(p11->C_GetAttributeValue(sess, ecpub, ec, 2) == CKR_OK);
	CU_ASSERT(ec[0].ulValueLen == 67 && ecp[0] == 0x04 && ecp[1] == 65
	    && ecp[2] == 0x04);
	CU_ASSERT(ec[1].ulValueLen == 10 && ecparams[0] == 0x06);
	/* mesh objects cannot be changed, nor their public half destroyed,
	 * nor copied into a second token key (session copies: see
	 * test-pkcs11-objects) */
	CU_ASSERT(p11->C_SetAttributeValue(sess, pub, b, 1)
	    == CKR_ACTION_PROHIBITED);
	CU_ASSERT(p11->C_DestroyObject(sess, pub) == CKR_ACTION_PROHIBITED);
	{
		CK_BBOOL yes = CK_TRUE;
		CK_ATTRIBUTE tt = { CKA_TOKEN, &yes, sizeof(yes) };

		CU_ASSERT(p11->C_CopyObject(sess, pub, &tt, 1, &priv)
		    == CKR_ACTION_PROHIBITED);
	}
}

static void
test_find(void)
{
	CK_OBJECT_HANDLE h[16];
	CK_ULONG n = 0, total = 0;
	CK_KEY_TYPE ec = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t1 = { CKA_KEY_TYPE, &ec, sizeof(ec) };
	CK_ATTRIBUTE t2 = { CKA_DERIVE, &yes, 1 };
	CK_ATTRIBUTE t3 = { CKA_LABEL, (void *)"nope", 4 };

	CU_ASSERT(p11->C_FindObjects(sess, h, 16, &n)
	    == CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT(
	    p11->C_FindObjectsFinal(sess) == CKR_OPERATION_NOT_INITIALIZED);
	/* all objects, a few at a time */
	CU_ASSERT(p11->C_FindObjectsInit(sess, NULL, 0) == CKR_OK);
	CU_ASSERT(
	    p11->C_FindObjectsInit(sess, NULL, 0) == CKR_OPERATION_ACTIVE);
	do {
		CU_ASSERT(p11->C_FindObjects(sess, h, 3, &n) == CKR_OK);
		total += n;
	} while (n > 0);
	CU_ASSERT(p11->C_FindObjectsFinal(sess) == CKR_OK);
	CU_ASSERT(total >= 4);
	CU_ASSERT(p11->C_FindObjectsInit(sess, &t1, 1) == CKR_OK);
	CU_ASSERT(p11->C_FindObjects(sess, h, 16, &n) == CKR_OK && n >= 2);
	CU_ASSERT(p11->C_FindObjectsFinal(sess) == CKR_OK);
	CU_ASSERT(p11->C_FindObjectsInit(sess, &t2, 1) == CKR_OK);
	CU_ASSERT(p11->C_FindObjects(sess, h, 16, &n) == CKR_OK && n >= 1);
	CU_ASSERT(p11->C_FindObjectsFinal(sess) == CKR_OK);
	CU_ASSERT(p11->C_FindObjectsInit(sess, &t3, 1) == CKR_OK);
	CU_ASSERT(p11->C_FindObjects(sess, h, 16, &n) == CKR_OK && n == 0);
	CU_ASSERT(p11->C_FindObjectsFinal(sess) == CKR_OK);
}

static void
test_create_destroy(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	BIGNUM *n = NULL, *e = NULL;
	uint8_t nb[256], eb[4], cert[] = { 0x30, 0x03, 0x02, 0x01, 0x01 },
	                        sig[256], data[] = "abc";
	CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, certc = CKO_CERTIFICATE;
	CK_KEY_TYPE rsa = CKK_RSA;
	CK_CERTIFICATE_TYPE x509 = CKC_X_509;
	CK_BBOOL yes = CK_TRUE;
	CK_OBJECT_HANDLE hp, hc, h[4];
	CK_ULONG cnt;
	CK_SESSION_HANDLE ro;
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	int nl, el;

	CU_ASSERT_FATAL(k != NULL && md != NULL);
	CU_ASSERT(EVP_PKEY_get_bn_param(k, "n", &n) == 1
	    && EVP_PKEY_get_bn_param(k, "e", &e) == 1);
	nl = BN_bn2bin(n, nb);
	el = BN_bn2bin(e, eb);
	{
		CK_ATTRIBUTE pt[] = {
			{ CKA_CLASS, &pubc, sizeof(pubc) },
			{ CKA_KEY_TYPE, &rsa, sizeof(rsa) },
			{ CKA_MODULUS, nb, (CK_ULONG)nl },
			{ CKA_PUBLIC_EXPONENT, eb, (CK_ULONG)el },
			{ CKA_LABEL, (void *)"imported", 8 },
			{ CKA_ID, (void *)"\x42", 1 },
		};
		CK_ATTRIBUTE ct[] = {
			{ CKA_CLASS, &certc, sizeof(certc) },
			{ CKA_CERTIFICATE_TYPE, &x509, sizeof(x509) },
			{ CKA_VALUE, cert, sizeof(cert) },
			{ CKA_ID, (void *)"\x42", 1 },
			{ CKA_TOKEN, &yes, 1 },
		};
		CK_ATTRIBUTE idt = { CKA_ID, (void *)"\x42", 1 };

		CU_ASSERT(p11->C_CreateObject(sess, pt, 2, &hp)
		    == CKR_TEMPLATE_INCOMPLETE);
		CU_ASSERT_FATAL(
		    p11->C_CreateObject(sess, pt, 6, &hp) == CKR_OK);
		CU_ASSERT(
		    p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
		    == CKR_OK);
		CU_ASSERT(p11->C_CreateObject(ro, ct, 5, &hc)
		    == CKR_SESSION_READ_ONLY);
		CU_ASSERT(p11->C_CloseSession(ro) == CKR_OK);
		CU_ASSERT_FATAL(
		    p11->C_CreateObject(sess, ct, 5, &hc) == CKR_OK);
		/* both found by their CKA_ID */
		CU_ASSERT(p11->C_FindObjectsInit(sess, &idt, 1) == CKR_OK);
		CU_ASSERT(p11->C_FindObjects(sess, h, 4, &cnt) == CKR_OK
		    && cnt == 2);
		CU_ASSERT(p11->C_FindObjectsFinal(sess) == CKR_OK);
	}
	/* a signature by OpenSSL verifies with the created public key */
	CU_ASSERT(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1
	    && EVP_DigestSign(md, sig, &siglen, data, 3) == 1);
	CU_ASSERT(p11->C_VerifyInit(sess, &m, hp) == CKR_OK);
	CU_ASSERT(p11->C_Verify(sess, data, 3, sig, siglen) == CKR_OK);
	sig[10] ^= 1;
	CU_ASSERT(p11->C_VerifyInit(sess, &m, hp) == CKR_OK);
	CU_ASSERT(p11->C_Verify(sess, data, 3, sig, siglen)
	    == CKR_SIGNATURE_INVALID);
	CU_ASSERT(p11->C_DestroyObject(sess, hp) == CKR_OK);
	CU_ASSERT(p11->C_DestroyObject(sess, hc) == CKR_OK);
	CU_ASSERT(p11->C_DestroyObject(sess, hc) == CKR_OBJECT_HANDLE_INVALID);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(k);
	BN_free(n);
	BN_free(e);
}

/* ---- RSA: every mechanism, checked with OpenSSL ---- */

static const EVP_MD *
md_of(CK_MECHANISM_TYPE t)
{
	switch (t) {
	case CKM_SHA_1:
		return EVP_sha1();
	case CKM_SHA224:
		return EVP_sha224();
	case CKM_SHA256:
		return EVP_sha256();
	case CKM_SHA384:
		return EVP_sha384();
	default:
		return EVP_sha512();
	}
}

/* Verifies @sig over @data with OpenSSL for a hash-and-sign mechanism. */
static bool
ossl_verify(EVP_PKEY *pk, const EVP_MD *md, bool pss, const uint8_t *data,
    size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	bool ok;

	ok = c != NULL && EVP_DigestVerifyInit(c, &pc, md, NULL, pk) == 1;
	if (ok && pss) {
		ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING)
		        == 1
		    && EVP_PKEY_CTX_set_rsa_pss_saltlen(
		           pc, RSA_PSS_SALTLEN_DIGEST)
		        == 1;
	}
	ok = ok && EVP_DigestVerify(c, sig, siglen, data, len) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

static void
test_rsa_sign_hashed(void)
{
	static const struct {
		CK_MECHANISM_TYPE mech, hash;
		CK_RSA_PKCS_MGF_TYPE mgf;
		bool pss;
	} v[] = {
		{ CKM_SHA1_RSA_PKCS, CKM_SHA_1, 0, false },
		{ CKM_SHA224_RSA_PKCS, CKM_SHA224, 0, false },
		{ CKM_SHA256_RSA_PKCS, CKM_SHA256, 0, false },
		{ CKM_SHA384_RSA_PKCS, CKM_SHA384, 0, false },
		{ CKM_SHA512_RSA_PKCS, CKM_SHA512, 0, false },
		{ CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, CKG_MGF1_SHA1, true },
		{ CKM_SHA224_RSA_PKCS_PSS, CKM_SHA224, CKG_MGF1_SHA224, true },
		{ CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, true },
		{ CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, true },
		{ CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKG_MGF1_SHA512, true },
	};
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa"),
	                 pub = find1(sess, CKO_PUBLIC_KEY, "rsa");
	EVP_PKEY *pk = pubkey(sess, pub);
	uint8_t data[100], sig[512];
	CK_ULONG siglen;
	size_t i;

	CU_ASSERT_FATAL(pk != NULL);
	RAND_bytes(data, sizeof(data));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CK_RSA_PKCS_PSS_PARAMS pp = { v[i].hash, v[i].mgf,
			(CK_ULONG)EVP_MD_get_size(md_of(v[i].hash)) };
		CK_MECHANISM m = { v[i].mech, v[i].pss ? &pp : NULL,
			v[i].pss ? sizeof(pp) : 0 };

		CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_OK);
		siglen = sizeof(sig);
		CU_ASSERT(p11->C_Sign(sess, data, sizeof(data), sig, &siglen)
		    == CKR_OK);
		CU_ASSERT(siglen == 256);
		CU_ASSERT(ossl_verify(pk, md_of(v[i].hash), v[i].pss, data,
		    sizeof(data), sig, siglen));
		/* and the module's own local verify agrees */
		CU_ASSERT(p11->C_VerifyInit(sess, &m, pub) == CKR_OK);
		CU_ASSERT(p11->C_Verify(sess, data, sizeof(data), sig, siglen)
		    == CKR_OK);
		/* multi-part: hashed locally */
		CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_OK);
		CU_ASSERT(p11->C_SignUpdate(sess, data, 40) == CKR_OK);
		CU_ASSERT(p11->C_SignUpdate(sess, data + 40, 60) == CKR_OK);
		siglen = sizeof(sig);
		CU_ASSERT(p11->C_SignFinal(sess, sig, &siglen) == CKR_OK);
		CU_ASSERT(ossl_verify(pk, md_of(v[i].hash), v[i].pss, data,
		    sizeof(data), sig, siglen));
		CU_ASSERT(p11->C_VerifyInit(sess, &m, pub) == CKR_OK);
		CU_ASSERT(p11->C_VerifyUpdate(sess, data, 100) == CKR_OK);
		CU_ASSERT(p11->C_VerifyFinal(sess, sig, siglen) == CKR_OK);
	}
	EVP_PKEY_free(pk);
}

static void
test_rsa_sign_raw(void)
{
	/* DigestInfo prefix of SHA-256 (RFC 8017 §9.2 note 1) */
	static const uint8_t di[]
	    = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
		      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa"),
	                 pub = find1(sess, CKO_PUBLIC_KEY, "rsa");
	EVP_PKEY *pk = pubkey(sess, pub);
	EVP_PKEY_CTX *pc;
	uint8_t in[19 + 32], sig[256], rec[256], dg[32];
	CK_ULONG siglen;
	size_t reclen;
	CK_MECHANISM pkcs = { CKM_RSA_PKCS, NULL, 0 };
	CK_MECHANISM x509 = { CKM_RSA_X_509, NULL, 0 };
	CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
	CK_MECHANISM pss = { CKM_RSA_PKCS_PSS, &pp, sizeof(pp) };

	CU_ASSERT_FATAL(pk != NULL);
	RAND_bytes(dg, sizeof(dg));
	memcpy(in, di, sizeof(di));
	memcpy(in + sizeof(di), dg, 32);
	/* CKM_RSA_PKCS over a DigestInfo: OpenSSL verifies it as SHA-256 */
	CU_ASSERT(p11->C_SignInit(sess, &pkcs, priv) == CKR_OK);
	siglen = 0;
	CU_ASSERT(p11->C_Sign(sess, in, sizeof(in), NULL, &siglen) == CKR_OK
	    && siglen == 256);
	siglen = 10;
	CU_ASSERT(p11->C_Sign(sess, in, sizeof(in), sig, &siglen)
	        == CKR_BUFFER_TOO_SMALL
	    && siglen == 256);
	CU_ASSERT(p11->C_Sign(sess, in, sizeof(in), sig, &siglen) == CKR_OK);
	pc = EVP_PKEY_CTX_new(pk, NULL);
	CU_ASSERT(EVP_PKEY_verify_init(pc) == 1
	    && EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1
	    && EVP_PKEY_verify(pc, sig, siglen, dg, 32) == 1);
	EVP_PKEY_CTX_free(pc);
	/* CKM_RSA_PKCS_PSS over a digest */
	CU_ASSERT(p11->C_SignInit(sess, &pss, priv) == CKR_OK);
	siglen = sizeof(sig);
	CU_ASSERT(p11->C_Sign(sess, dg, 32, sig, &siglen) == CKR_OK);
	pc = EVP_PKEY_CTX_new(pk, NULL);
	CU_ASSERT(EVP_PKEY_verify_init(pc) == 1
	    && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1
	    && EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1
	    && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) == 1
	    && EVP_PKEY_verify(pc, sig, siglen, dg, 32) == 1);
	EVP_PKEY_CTX_free(pc);
	CU_ASSERT(p11->C_SignInit(sess, &pss, priv) == CKR_OK);
	siglen = sizeof(sig);
	CU_ASSERT(
	    p11->C_Sign(sess, dg, 20, sig, &siglen) == CKR_DATA_LEN_RANGE);
	/* raw: the e-th power of the signature is the zero-padded input */
	CU_ASSERT(p11->C_SignInit(sess, &x509, priv) == CKR_OK);
	siglen = sizeof(sig);
	CU_ASSERT(p11->C_Sign(sess, dg, 32, sig, &siglen) == CKR_OK);
	pc = EVP_PKEY_CTX_new(pk, NULL);
	reclen = sizeof(rec);
	CU_ASSERT(EVP_PKEY_verify_recover_init(pc) == 1
	    && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_NO_PADDING) == 1
	    && EVP_PKEY_verify_recover(pc, rec, &reclen, sig, siglen) == 1
	    && reclen == 256 && memcmp(rec + 224, dg, 32) == 0 && rec[0] == 0);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(pk);
}

static void
test_rsa_errors(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa"),
	                 pub = find1(sess, CKO_PUBLIC_KEY, "rsa"),
	                 ec = find1(sess, CKO_PRIVATE_KEY, "ec");
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_MECHANISM bogus = { CKM_MD5_RSA_PKCS, NULL, 0 };
	CK_MECHANISM pssnop = { CKM_SHA256_RSA_PKCS_PSS, NULL, 0 };
	CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA_1, CKG_MGF1_SHA1, 20 };
	CK_MECHANISM psswrong = { CKM_SHA256_RSA_PKCS_PSS, &pp, sizeof(pp) };
	uint8_t sig[256];
	CK_ULONG siglen = sizeof(sig);
	CK_SESSION_HANDLE s2;

	CU_ASSERT(p11->C_Sign(sess, sig, 1, sig, &siglen)
	    == CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT(p11->C_SignFinal(sess, sig, &siglen)
	    == CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT(
	    p11->C_SignInit(sess, &bogus, priv) == CKR_MECHANISM_INVALID);
	CU_ASSERT(p11->C_SignInit(sess, &pssnop, priv)
	    == CKR_MECHANISM_PARAM_INVALID);
	CU_ASSERT(p11->C_SignInit(sess, &psswrong, priv)
	    == CKR_MECHANISM_PARAM_INVALID);
	/* as SoftHSM: the key's CKA_SIGN is checked before its type */
	CU_ASSERT(
	    p11->C_SignInit(sess, &m, ec) == CKR_KEY_FUNCTION_NOT_PERMITTED);
	{
		/* an EC public key that may verify, for an RSA mechanism */
		uint8_t par[16], pt[80];
		CK_OBJECT_CLASS pc = CKO_PUBLIC_KEY;
		CK_KEY_TYPE kt = CKK_EC;
		CK_ATTRIBUTE g[] = {
			{ CKA_EC_PARAMS, par, sizeof(par) },
			{ CKA_EC_POINT, pt, sizeof(pt) },
		};
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &pc, sizeof(pc) },
			{ CKA_KEY_TYPE, &kt, sizeof(kt) },
			{ CKA_EC_PARAMS, par, 0 },
			{ CKA_EC_POINT, pt, 0 },
		};
		CK_OBJECT_HANDLE h;

		CU_ASSERT(p11->C_GetAttributeValue(
		              sess, find1(sess, CKO_PUBLIC_KEY, "ec"), g, 2)
		    == CKR_OK);
		t[2].ulValueLen = g[0].ulValueLen;
		t[3].ulValueLen = g[1].ulValueLen;
		CU_ASSERT(p11->C_CreateObject(sess, t, 4, &h) == CKR_OK);
		CU_ASSERT(p11->C_VerifyInit(sess, &m, h)
		    == CKR_KEY_TYPE_INCONSISTENT);
		CU_ASSERT(p11->C_DestroyObject(sess, h) == CKR_OK);
	}
	CU_ASSERT(
	    p11->C_SignInit(sess, &m, pub) == CKR_KEY_FUNCTION_NOT_PERMITTED);
	CU_ASSERT(p11->C_SignInit(sess, &m, 4242) == CKR_KEY_HANDLE_INVALID);
	CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_OK);
	CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_OPERATION_ACTIVE);
	CU_ASSERT(
	    p11->C_FindObjectsInit(sess, NULL, 0) == CKR_OPERATION_ACTIVE);
	lenient(true);
	CU_ASSERT(p11->C_Sign(sess, sig, 1, sig, NULL) == CKR_ARGUMENTS_BAD);
	CU_ASSERT(p11->C_SignInit(sess, NULL, priv) == CKR_ARGUMENTS_BAD);
	lenient(false);
	/* the failed C_Sign ended the operation */
	CU_ASSERT(p11->C_Sign(sess, sig, 1, sig, &siglen)
	    == CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT(p11->C_VerifyInit(sess, &m, pub) == CKR_OK);
	CU_ASSERT(
	    p11->C_Verify(sess, sig, 1, sig, 100) == CKR_SIGNATURE_LEN_RANGE);
	/* a private key needs a login: another application's view */
	CU_ASSERT(p11->C_Logout(sess) == CKR_OK);
	CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT(
	    p11->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))
	    == CKR_OK);
	CU_ASSERT(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s2)
	    == CKR_OK);
	CU_ASSERT(p11->C_SignInit(s2, &m, priv) == CKR_OK);
	CU_ASSERT(p11->C_CloseSession(s2) == CKR_OK);
}

static void
test_rsa_decrypt(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa"),
	                 pub = find1(sess, CKO_PUBLIC_KEY, "rsa");
	EVP_PKEY *pk = pubkey(sess, pub);
	uint8_t msg[32], ct[256], pt[256], label[] = "lbl";
	size_t ctlen;
	CK_ULONG ptlen, ctl;
	EVP_PKEY_CTX *pc;
	CK_RSA_PKCS_OAEP_PARAMS o1 = { CKM_SHA_1, CKG_MGF1_SHA1, 0, NULL, 0 };
	CK_RSA_PKCS_OAEP_PARAMS o256
	    = { CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, label, 3 };
	CK_MECHANISM pkcs = { CKM_RSA_PKCS, NULL, 0 };
	CK_MECHANISM raw = { CKM_RSA_X_509, NULL, 0 };
	CK_MECHANISM oaep1 = { CKM_RSA_PKCS_OAEP, &o1, sizeof(o1) };
	CK_MECHANISM oaep256 = { CKM_RSA_PKCS_OAEP, &o256, sizeof(o256) };

	CU_ASSERT_FATAL(pk != NULL);
	RAND_bytes(msg, sizeof(msg));
	/* PKCS#1 v1.5 by OpenSSL */
	pc = EVP_PKEY_CTX_new(pk, NULL);
	ctlen = sizeof(ct);
	CU_ASSERT(EVP_PKEY_encrypt_init(pc) == 1
	    && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1
	    && EVP_PKEY_encrypt(pc, ct, &ctlen, msg, 32) == 1);
	EVP_PKEY_CTX_free(pc);
	CU_ASSERT(p11->C_DecryptInit(sess, &pkcs, priv) == CKR_OK);
	ptlen = 0;
	CU_ASSERT(p11->C_Decrypt(sess, ct, ctlen, NULL, &ptlen) == CKR_OK
	    && ptlen >= 32);
	ptlen = sizeof(pt);
	CU_ASSERT(p11->C_Decrypt(sess, ct, ctlen, pt, &ptlen) == CKR_OK);
	CU_ASSERT(ptlen == 32 && memcmp(pt, msg, 32) == 0);
	/* OAEP SHA-256 with a label, by OpenSSL */
	pc = EVP_PKEY_CTX_new(pk, NULL);
	ctlen = sizeof(ct);
	CU_ASSERT(EVP_PKEY_encrypt_init(pc) == 1
	    && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) == 1
	    && EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) == 1
	    && EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1
	    && EVP_PKEY_CTX_set0_rsa_oaep_label(
	           pc, OPENSSL_memdup(label, 3), 3)
	        == 1
	    && EVP_PKEY_encrypt(pc, ct, &ctlen, msg, 32) == 1);
	EVP_PKEY_CTX_free(pc);
	CU_ASSERT(p11->C_DecryptInit(sess, &oaep256, priv) == CKR_OK);
	ptlen = sizeof(pt);
	CU_ASSERT(p11->C_Decrypt(sess, ct, ctlen, pt, &ptlen) == CKR_OK);
	CU_ASSERT(ptlen == 32 && memcmp(pt, msg, 32) == 0);
	/* the wrong label is a padding failure */
	CU_ASSERT(p11->C_DecryptInit(sess, &oaep1, priv) == CKR_OK);
	ptlen = sizeof(pt);
	CU_ASSERT(p11->C_Decrypt(sess, ct, ctlen, pt, &ptlen)
	    == CKR_ENCRYPTED_DATA_INVALID);
	/* OAEP SHA-1 through the module's local C_Encrypt */
	CU_ASSERT(p11->C_EncryptInit(sess, &oaep1, pub) == CKR_OK);
	ctl = 0;
	CU_ASSERT(
	    p11->C_Encrypt(sess, msg, 32, NULL, &ctl) == CKR_OK && ctl == 256);
	CU_ASSERT(p11->C_Encrypt(sess, msg, 32, ct, &ctl) == CKR_OK);
	CU_ASSERT(p11->C_DecryptInit(sess, &oaep1, priv) == CKR_OK);
	ptlen = sizeof(pt);
	CU_ASSERT(p11->C_Decrypt(sess, ct, ctl, pt, &ptlen) == CKR_OK);
	CU_ASSERT(ptlen == 32 && memcmp(pt, msg, 32) == 0);
	/* raw */
	CU_ASSERT(p11->C_EncryptInit(sess, &raw, pub) == CKR_OK);
	ctl = sizeof(ct);
	CU_ASSERT(p11->C_Encrypt(sess, msg, 32, ct, &ctl) == CKR_OK);
	CU_ASSERT(p11->C_DecryptInit(sess, &raw, priv) == CKR_OK);
	ptlen = sizeof(pt);
	CU_ASSERT(p11->C_Decrypt(sess, ct, ctl, pt, &ptlen) == CKR_OK);
	CU_ASSERT(ptlen == 256 && memcmp(pt + 224, msg, 32) == 0);
	/* wrong sizes and garbage */
	CU_ASSERT(p11->C_DecryptInit(sess, &pkcs, priv) == CKR_OK);
	CU_ASSERT(p11->C_Decrypt(sess, ct, 100, pt, &ptlen)
	    == CKR_ENCRYPTED_DATA_LEN_RANGE);
	memset(ct, 0x11, sizeof(ct));
	CU_ASSERT(p11->C_DecryptInit(sess, &pkcs, priv) == CKR_OK);
	ptlen = sizeof(pt);
	CU_ASSERT(p11->C_Decrypt(sess, ct, 256, pt, &ptlen)
	    == CKR_ENCRYPTED_DATA_INVALID);
	CU_ASSERT(p11->C_Decrypt(sess, ct, 256, pt, &ptlen)
	    == CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT(p11->C_DecryptUpdate(sess, ct, 256, pt, &ptlen)
	    == CKR_OPERATION_NOT_INITIALIZED);
	EVP_PKEY_free(pk);
}

/* ---- EC: key generation, ECDH ---- */

static EVP_PKEY *
peer_key(const char *curve)
{
	return EVP_EC_gen(curve);
}

/* ECDH through the module with @pt as public data; returns the secret. */
static CK_RV
derive(CK_OBJECT_HANDLE base, const uint8_t *pt, size_t ptlen, CK_BBOOL sens,
    CK_BBOOL extr, CK_ULONG vlen, uint8_t *out, CK_ULONG *outlen)
{
	CK_ECDH1_DERIVE_PARAMS p
	    = { CKD_NULL, 0, NULL, (CK_ULONG)ptlen, (CK_BYTE_PTR)pt };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_SENSITIVE, &sens, 1 },
		{ CKA_EXTRACTABLE, &extr, 1 },
		{ CKA_VALUE_LEN, &vlen, sizeof(vlen) },
	};
	CK_OBJECT_HANDLE h;
	CK_ATTRIBUTE v = { CKA_VALUE, out, *outlen };
	CK_RV rv;

	rv = p11->C_DeriveKey(sess, &m, base, t, vlen ? 5 : 4, &h);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = p11->C_GetAttributeValue(sess, h, &v, 1);
	*outlen = v.ulValueLen;
	(void)p11->C_DestroyObject(sess, h);
	return rv;
}

static void
test_ecdh(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "ec"),
	                 pub = find1(sess, CKO_PUBLIC_KEY, "ec"),
	                 rsa = find1(sess, CKO_PRIVATE_KEY, "rsa");
	EVP_PKEY *mine = pubkey(sess, pub), *peer = peer_key("P-256");
	EVP_PKEY_CTX *pc;
	uint8_t pt[65], der[67], want[32], got[64], bad[65];
	size_t ptlen = 0, wl = sizeof(want);
	CK_ULONG gl;
	CK_ECDH1_DERIVE_PARAMS kdf = { CKD_SHA256_KDF, 0, NULL, 65, pt };
	CK_MECHANISM mk = { CKM_ECDH1_DERIVE, &kdf, sizeof(kdf) };
	CK_OBJECT_HANDLE h;

	CU_ASSERT_FATAL(mine != NULL && peer != NULL);
	CU_ASSERT(EVP_PKEY_get_octet_string_param(
	              peer, "encoded-pub-key", pt, sizeof(pt), &ptlen)
	        == 1
	    && ptlen == 65);
	pc = EVP_PKEY_CTX_new(peer, NULL);
	CU_ASSERT(EVP_PKEY_derive_init(pc) == 1
	    && EVP_PKEY_derive_set_peer(pc, mine) == 1
	    && EVP_PKEY_derive(pc, want, &wl) == 1 && wl == 32);
	EVP_PKEY_CTX_free(pc);
	/* raw point, extractable */
	gl = sizeof(got);
	CU_ASSERT(
	    derive(priv, pt, 65, CK_FALSE, CK_TRUE, 0, got, &gl) == CKR_OK);
	CU_ASSERT(gl == 32 && memcmp(got, want, 32) == 0);
	/* DER-wrapped point */
	der[0] = 0x04;
	der[1] = 65;
	memcpy(der + 2, pt, 65);
	gl = sizeof(got);
	CU_ASSERT(
	    derive(priv, der, 67, CK_FALSE, CK_TRUE, 0, got, &gl) == CKR_OK);
	CU_ASSERT(gl == 32 && memcmp(got, want, 32) == 0);
	/* shorter: the trailing bytes, as SoftHSM */
	gl = sizeof(got);
	CU_ASSERT(
	    derive(priv, pt, 65, CK_FALSE, CK_TRUE, 16, got, &gl) == CKR_OK);
	CU_ASSERT(gl == 16 && memcmp(got, want + 16, 16) == 0);
	/* sensitive: not readable */
	gl = sizeof(got);
	CU_ASSERT(derive(priv, pt, 65, CK_TRUE, CK_TRUE, 0, got, &gl)
	    == CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT(gl == CK_UNAVAILABLE_INFORMATION);
	gl = sizeof(got);
	CU_ASSERT(derive(priv, pt, 65, CK_FALSE, CK_FALSE, 0, got, &gl)
	    == CKR_ATTRIBUTE_SENSITIVE);
	/* errors */
	CU_ASSERT(p11->C_DeriveKey(sess, &mk, priv, NULL, 0, &h)
	    == CKR_MECHANISM_PARAM_INVALID);
	memcpy(bad, pt, 65);
	bad[64] ^= 1; /* off the curve */
	gl = sizeof(got);
	CU_ASSERT(derive(priv, bad, 65, CK_FALSE, CK_TRUE, 0, got, &gl)
	    == CKR_MECHANISM_PARAM_INVALID);
	gl = sizeof(got);
	CU_ASSERT(derive(rsa, pt, 65, CK_FALSE, CK_TRUE, 0, got, &gl)
	    == CKR_KEY_FUNCTION_NOT_PERMITTED);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(peer);
}

static void
test_keygen(void)
{
	static const uint8_t p256[]
	    = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const uint8_t brainpool[] = { 0x06, 0x09, 0x2b, 0x24, 0x03,
		0x03, 0x02, 0x08, 0x01, 0x01, 0x07 };
	CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_MECHANISM mr = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_MECHANISM x509 = { CKM_RSA_X_509, NULL, 0 };
	CK_BBOOL yes = CK_TRUE;
	CK_ULONG bits = 2048, badbits = 1024;
	CK_ATTRIBUTE pubt[] = {
		{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		{ CKA_TOKEN, &yes, 1 },
	};
	CK_ATTRIBUTE badt[] = {
		{ CKA_EC_PARAMS, (void *)brainpool, sizeof(brainpool) },
	};
	CK_ATTRIBUTE privt[] = {
		{ CKA_LABEL, (void *)"gen-ec", 6 },
		{ CKA_ID, (void *)"\xa1\xb2", 2 },
		{ CKA_DERIVE, &yes, 1 },
	};
	CK_ATTRIBUTE rpub[] = { { CKA_MODULUS_BITS, &bits, sizeof(bits) } };
	CK_ATTRIBUTE rbad[]
	    = { { CKA_MODULUS_BITS, &badbits, sizeof(badbits) } };
	CK_ATTRIBUTE rpriv[] = { { CKA_LABEL, (void *)"gen-rsa", 7 } };
	CK_OBJECT_HANDLE pub, priv;
	uint8_t id[8], pt[65], got[64];
	CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };
	CK_SESSION_HANDLE ro;
	EVP_PKEY *peer = peer_key("P-256"), *mine;
	EVP_PKEY_CTX *pc;
	uint8_t want[32];
	size_t ptlen = 0, wl = 32;
	CK_ULONG gl = sizeof(got);

	CU_ASSERT(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro)
	    == CKR_OK);
	CU_ASSERT(
	    p11->C_GenerateKeyPair(ro, &m, pubt, 2, privt, 3, &pub, &priv)
	    == CKR_SESSION_READ_ONLY);
	CU_ASSERT(p11->C_CloseSession(ro) == CKR_OK);
	CU_ASSERT(
	    p11->C_GenerateKeyPair(sess, &m, badt, 1, privt, 3, &pub, &priv)
	    == CKR_CURVE_NOT_SUPPORTED);
	CU_ASSERT(
	    p11->C_GenerateKeyPair(sess, &m, NULL, 0, privt, 3, &pub, &priv)
	    == CKR_TEMPLATE_INCOMPLETE);
	CU_ASSERT(
	    p11->C_GenerateKeyPair(sess, &mr, rbad, 1, rpriv, 1, &pub, &priv)
	    == CKR_KEY_SIZE_RANGE);
	CU_ASSERT_FATAL(
	    p11->C_GenerateKeyPair(sess, &m, pubt, 2, privt, 3, &pub, &priv)
	    == CKR_OK);
	/* the template's CKA_ID on both halves */
	CU_ASSERT(p11->C_GetAttributeValue(sess, priv, &a, 1) == CKR_OK
	    && a.ulValueLen == 2 && memcmp(id, "\xa1\xb2", 2) == 0);
	a.ulValueLen = sizeof(id);
	CU_ASSERT(p11->C_GetAttributeValue(sess, pub, &a, 1) == CKR_OK
	    && a.ulValueLen == 2);
	CU_ASSERT(find1(sess, CKO_PRIVATE_KEY, "gen-ec") == priv);
	/* and it works: ECDH checked with OpenSSL */
	mine = pubkey(sess, pub);
	CU_ASSERT_FATAL(mine != NULL && peer != NULL);
	CU_ASSERT(EVP_PKEY_get_octet_string_param(
	              peer, "encoded-pub-key", pt, sizeof(pt), &ptlen)
	    == 1);
	pc = EVP_PKEY_CTX_new(peer, NULL);
	CU_ASSERT(EVP_PKEY_derive_init(pc) == 1
	    && EVP_PKEY_derive_set_peer(pc, mine) == 1
	    && EVP_PKEY_derive(pc, want, &wl) == 1);
	EVP_PKEY_CTX_free(pc);
	CU_ASSERT(
	    derive(priv, pt, 65, CK_FALSE, CK_TRUE, 0, got, &gl) == CKR_OK);
	CU_ASSERT(gl == 32 && memcmp(got, want, 32) == 0);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(peer);
	/* RSA in the mesh; its policy keeps raw RSA off */
	CU_ASSERT_FATAL(
	    p11->C_GenerateKeyPair(sess, &mr, rpub, 1, rpriv, 1, &pub, &priv)
	    == CKR_OK);
	CU_ASSERT(p11->C_SignInit(sess, &x509, priv) == CKR_MECHANISM_INVALID);
	{
		CK_MECHANISM_TYPE al[32];
		CK_ATTRIBUTE aa = { CKA_ALLOWED_MECHANISMS, al, sizeof(al) };
		size_t k, cnt;
		bool raw = false, pss = false;

		CU_ASSERT(
		    p11->C_GetAttributeValue(sess, priv, &aa, 1) == CKR_OK);
		cnt = aa.ulValueLen / sizeof(al[0]);
		for (k = 0; k < cnt; k++) {
			raw |= al[k] == CKM_RSA_X_509;
			pss |= al[k] == CKM_SHA256_RSA_PKCS_PSS;
		}
		CU_ASSERT(cnt > 5 && pss && !raw);
	}
	/* destroying the private key destroys the mesh key (admin) */
	CU_ASSERT(p11->C_DestroyObject(sess, priv) == CKR_OK);
	CU_ASSERT(find1(sess, CKO_PUBLIC_KEY, "gen-rsa") == CK_INVALID_HANDLE);
}

/* ---- digests and random ---- */

static void
test_digest_random(void)
{
	static const CK_MECHANISM_TYPE d[]
	    = { CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512 };
	uint8_t data[300], out[64], want[64], r1[32], r2[32];
	unsigned int wl;
	CK_ULONG ol;
	size_t i;

	RAND_bytes(data, sizeof(data));
	for (i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		CK_MECHANISM m = { d[i], NULL, 0 };

		CU_ASSERT(EVP_Digest(
		              data, sizeof(data), want, &wl, md_of(d[i]), NULL)
		    == 1);
		CU_ASSERT(p11->C_DigestInit(sess, &m) == CKR_OK);
		ol = 0;
		CU_ASSERT(p11->C_Digest(sess, data, sizeof(data), NULL, &ol)
		        == CKR_OK
		    && ol == wl);
		ol = 4;
		CU_ASSERT(p11->C_Digest(sess, data, sizeof(data), out, &ol)
		        == CKR_BUFFER_TOO_SMALL
		    && ol == wl);
		CU_ASSERT(p11->C_Digest(sess, data, sizeof(data), out, &ol)
		    == CKR_OK);
		CU_ASSERT(ol == wl && memcmp(out, want, wl) == 0);
		CU_ASSERT(p11->C_DigestInit(sess, &m) == CKR_OK);
		CU_ASSERT(p11->C_DigestUpdate(sess, data, 100) == CKR_OK);
		CU_ASSERT(
		    p11->C_DigestUpdate(sess, data + 100, 200) == CKR_OK);
		ol = sizeof(out);
		CU_ASSERT(p11->C_DigestFinal(sess, out, &ol) == CKR_OK);
		CU_ASSERT(ol == wl && memcmp(out, want, wl) == 0);
	}
	{
		CK_MECHANISM md5 = { CKM_MD5, NULL, 0 };

		CU_ASSERT(
		    p11->C_DigestInit(sess, &md5) == CKR_MECHANISM_INVALID);
	}
	CU_ASSERT(p11->C_DigestFinal(sess, out, &ol)
	    == CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT(p11->C_GenerateRandom(sess, r1, sizeof(r1)) == CKR_OK);
	CU_ASSERT(p11->C_GenerateRandom(sess, r2, sizeof(r2)) == CKR_OK);
	CU_ASSERT(memcmp(r1, r2, sizeof(r1)) != 0);
	CU_ASSERT(p11->C_SeedRandom(sess, r1, sizeof(r1)) == CKR_OK);
	CU_ASSERT(p11->C_GenerateKey(sess, NULL, NULL, 0, NULL)
	    == CKR_FUNCTION_NOT_SUPPORTED);
	CU_ASSERT(p11->C_WrapKey(sess, NULL, 0, 0, NULL, NULL)
	    == CKR_FUNCTION_NOT_SUPPORTED);
	CU_ASSERT(p11->C_SignRecoverInit(sess, NULL, 0)
	    == CKR_FUNCTION_NOT_SUPPORTED);
}

/* ---- threads ---- */

#define NTHREADS 8
#define NSIGS    6

typedef struct worker {
	CK_OBJECT_HANDLE priv;
	EVP_PKEY *pk;
	int ok;
	double ms;
} worker;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *
worker_main(void *arg)
{
	worker *w = arg;
	CK_SESSION_HANDLE s;
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	uint8_t data[64], sig[256];
	CK_ULONG siglen;
	double t0;
	int i;

	if (p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s)
	    != CKR_OK) {
		return NULL;
	}
	t0 = now_ms();
	for (i = 0; i < NSIGS; i++) {
		RAND_bytes(data, sizeof(data));
		siglen = sizeof(sig);
		if (p11->C_SignInit(s, &m, w->priv) == CKR_OK
		    && p11->C_Sign(s, data, sizeof(data), sig, &siglen)
		        == CKR_OK
		    && ossl_verify(w->pk, EVP_sha256(), false, data,
		        sizeof(data), sig, siglen)) {
			w->ok++;
		}
	}
	w->ms = now_ms() - t0;
	(void)p11->C_CloseSession(s);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t th[NTHREADS];
	worker w[NTHREADS];
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa");
	EVP_PKEY *pk = pubkey(sess, find1(sess, CKO_PUBLIC_KEY, "rsa"));
	int i, ok = 0;
	double t0 = now_ms(), total;

	CU_ASSERT_FATAL(pk != NULL);
	for (i = 0; i < NTHREADS; i++) {
		w[i].priv = priv;
		w[i].pk = pk;
		w[i].ok = 0;
		w[i].ms = 0;
		CU_ASSERT_FATAL(
		    pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		ok += w[i].ok;
	}
	total = now_ms() - t0;
	CU_ASSERT(ok == NTHREADS * NSIGS);
	printf("\n    %d threads x %d C_Sign (RSA-2048, 3 of 5): %.0f ms, "
	       "%.1f signatures/s\n",
	    NTHREADS, NSIGS, total, NTHREADS * NSIGS * 1000.0 / total);
	EVP_PKEY_free(pk);
}

static void
test_latency(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa");
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	uint8_t data[32] = { 1 }, sig[256];
	CK_ULONG siglen;
	double t0, best = 1e9, sum = 0, t;
	int i, ok = 0;

	for (i = 0; i < 20; i++) {
		siglen = sizeof(sig);
		t0 = now_ms();
		if (p11->C_SignInit(sess, &m, priv) == CKR_OK
		    && p11->C_Sign(sess, data, sizeof(data), sig, &siglen)
		        == CKR_OK) {
			ok++;
		}
		t = now_ms() - t0;
		sum += t;
		best = t < best ? t : best;
	}
	CU_ASSERT(ok == 20);
	/* reported, not asserted: speed belongs to bench/ */
	printf("\n    C_Sign latency (RSA-2048, 3 of 5, loopback): mean %.2f "
	       "ms, best %.2f ms\n",
	    sum / 20, best);
}

/* ---- fork ---- */

static void
test_fork(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa");
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	uint8_t data[8] = { 0 }, sig[256];
	CK_ULONG siglen = sizeof(sig);
	pid_t pid;
	int st = 0;

	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		CK_SLOT_ID slot;
		CK_ULONG n = 1, cnt = 0;
		CK_SESSION_HANDLE s;
		CK_TOKEN_INFO ti;
		CK_OBJECT_HANDLE h[8];
		int code = 0;

		/* the parent's initialisation is not the child's */
		if (p11->C_GetSlotList(CK_TRUE, &slot, &n)
		    != CKR_CRYPTOKI_NOT_INITIALIZED) {
			code |= 1;
		}
		if (p11->C_SignInit(sess, &m, priv)
		    != CKR_CRYPTOKI_NOT_INITIALIZED) {
			code |= 2;
		}
		if (p11->C_Initialize(NULL) != CKR_OK
		    || p11->C_GetTokenInfo(1, &ti) != CKR_OK) {
			code |= 4;
		}
		if (p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s)
		        != CKR_OK
		    || p11->C_FindObjectsInit(s, NULL, 0) != CKR_OK
		    || p11->C_FindObjects(s, h, 8, &cnt) != CKR_OK
		    || cnt < 2) {
			code |= 8;
		}
		(void)p11->C_FindObjectsFinal(s);
		/* the child reaches the mesh through its relay helper
		 * (tests/integration/test-pkcs11-fork has the rest) */
		if (p11->C_Login(
		        s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))
		    != CKR_OK) {
			code |= 16;
		}
		if (p11->C_Finalize(NULL) != CKR_OK) {
			code |= 32;
		}
		_exit(code);
	}
	CU_ASSERT(waitpid(pid, &st, 0) == pid);
	CU_ASSERT(WIFEXITED(st));
	CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
	/* the parent goes on */
	CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_OK);
	CU_ASSERT(p11->C_Sign(sess, data, 8, sig, &siglen) == CKR_OK);
}

/* ---- holders down, a faulty holder ---- */

/* Sign, decrypt and derive once each, checked with OpenSSL. */
static int
all_ops(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa"),
	                 ecpriv = find1(sess, CKO_PRIVATE_KEY, "ec");
	EVP_PKEY *pk = pubkey(sess, find1(sess, CKO_PUBLIC_KEY, "rsa"));
	EVP_PKEY *ecpk = pubkey(sess, find1(sess, CKO_PUBLIC_KEY, "ec"));
	EVP_PKEY *peer = peer_key("P-256");
	EVP_PKEY_CTX *pc;
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_MECHANISM pkcs = { CKM_RSA_PKCS, NULL, 0 };
	uint8_t data[48], sig[256], ct[256], pt[256], ecpt[65], want[32],
	    got[64];
	CK_ULONG siglen = sizeof(sig), ptlen = sizeof(pt), gl = sizeof(got);
	size_t ctlen = sizeof(ct), el = 0, wl = 32;
	int good = 0;

	if (pk == NULL || ecpk == NULL || peer == NULL) {
		goto out;
	}
	RAND_bytes(data, sizeof(data));
	if (p11->C_SignInit(sess, &m, priv) == CKR_OK
	    && p11->C_Sign(sess, data, sizeof(data), sig, &siglen) == CKR_OK
	    && ossl_verify(
	        pk, EVP_sha256(), false, data, sizeof(data), sig, siglen)) {
		good++;
	}
	pc = EVP_PKEY_CTX_new(pk, NULL);
	if (EVP_PKEY_encrypt_init(pc) == 1
	    && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1
	    && EVP_PKEY_encrypt(pc, ct, &ctlen, data, 32) == 1
	    && p11->C_DecryptInit(sess, &pkcs, priv) == CKR_OK
	    && p11->C_Decrypt(sess, ct, ctlen, pt, &ptlen) == CKR_OK
	    && ptlen == 32 && memcmp(pt, data, 32) == 0) {
		good++;
	}
	EVP_PKEY_CTX_free(pc);
	pc = EVP_PKEY_CTX_new(peer, NULL);
	if (EVP_PKEY_get_octet_string_param(
	        peer, "encoded-pub-key", ecpt, sizeof(ecpt), &el)
	        == 1
	    && EVP_PKEY_derive_init(pc) == 1
	    && EVP_PKEY_derive_set_peer(pc, ecpk) == 1
	    && EVP_PKEY_derive(pc, want, &wl) == 1
	    && derive(ecpriv, ecpt, el, CK_FALSE, CK_TRUE, 0, got, &gl)
	        == CKR_OK
	    && gl == 32 && memcmp(got, want, 32) == 0) {
		good++;
	}
	EVP_PKEY_CTX_free(pc);
out:
	EVP_PKEY_free(pk);
	EVP_PKEY_free(ecpk);
	EVP_PKEY_free(peer);
	return good;
}

static void
test_two_down(void)
{
	CU_ASSERT_FATAL(node_stop(4) == 0 && node_stop(5) == 0);
	CU_ASSERT(all_ops() == 3);
	CU_ASSERT(all_ops() == 3);
}

static void
test_three_down(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa");
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	uint8_t data[8] = { 1 }, sig[256];
	CK_ULONG siglen = sizeof(sig);
	char path[2200];
	int saved, i;
	double t0, el;
	CK_RV rv;

	CU_ASSERT_FATAL(node_stop(3) == 0);
	CU_ASSERT(p11->C_SignInit(sess, &m, priv) == CKR_OK);
	capture_begin(&saved, path, sizeof(path));
	t0 = now_ms();
	rv = p11->C_Sign(sess, data, sizeof(data), sig, &siglen);
	el = now_ms() - t0;
	capture_end(saved, path);
	CU_ASSERT(rv == CKR_DEVICE_ERROR);
	/* bounded by [client] timeout_ms (2 s); generous slack for a busy
	 * machine, this is not a speed check */
	CU_ASSERT(el < 2000 + 3000);
	printf("\n    3 of 5 down: CKR_DEVICE_ERROR after %.0f ms; log: %s",
	    el, captured);
	CU_ASSERT(strstr(captured, "P11-QUORUM") != NULL);
	CU_ASSERT(strstr(captured, "node3") != NULL
	    && strstr(captured, "node4") != NULL
	    && strstr(captured, "node5") != NULL);
	CU_ASSERT(strchr(captured, '\n') == strrchr(captured, '\n'));
	/* back to five: the module logs in again where it has to */
	CU_ASSERT(node_start(3, NULL) == 0 && node_start(4, NULL) == 0
	    && node_start(5, NULL) == 0);
	/* the connections come back within nng's reconnect interval */
	for (i = 0; i < 10 && all_ops() != 3; i++) {
		usleep(500000);
	}
	CU_ASSERT(i < 10);
}

static int
count_str(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* Waits (up to @ms) until the capture file holds @n lines with @what. */
static void
wait_captured(const char *path, const char *what, int n, int ms)
{
	char buf[8192];
	FILE *f;
	size_t len;
	int waited;

	for (waited = 0; waited < ms; waited += 200) {
		fflush(stderr);
		len = 0;
		if ((f = fopen(path, "r")) != NULL) {
			len = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
		}
		buf[len] = '\0';
		if (count_str(buf, what) >= n) {
			return;
		}
		usleep(200000);
	}
}

/* How many lines of the daemons' logs (nodes 2-5) contain @what. */
static int
daemon_log_count(const char *what)
{
	char cmd[2600], line[64];
	FILE *p;
	int n = 0;

	snprintf(cmd, sizeof(cmd),
	    "cat '%s'/node[2-5]/keymeshd.log 2>/dev/null | grep -c '%s'", mesh,
	    what);
	if ((p = popen(cmd, "r")) != NULL) {
		if (fgets(line, sizeof(line), p) != NULL) {
			char *end = NULL;
			long v = strtol(line, &end, 10);

			/* grep -c prints one count; anything else reads -1 */
			n = end != line && (*end == '\n' || *end == '\0')
			        && v >= 0 && v <= INT_MAX
			    ? (int)v
			    : -1;
		}
		pclose(p);
	}
	return n;
}

/*
 * A client's forged evidence (well framed, but its envelopes are junk)
 * sent to node2: refused with one line, node2 still serves.
 */
static void
check_forged_evidence(void)
{
	char out[2200], cmd[8192], line[512] = "";
	FILE *f;
	int rc;

	snprintf(out, sizeof(out), "%s/forged.out", kmt_tmpdir());
	/* string(KMED 01 string(4 junk) string(4 junk)) */
	snprintf(cmd, sizeof(cmd),
	    "url=$(sed -n 's/^node = node2 \\(tls+tcp:.*\\)$/\\1/p' "
	    "'%s/client.conf'); '%s/tests/fuzz/send-raw-request' -c '%s/ca' "
	    "-n client -u \"$url\" -p node2 -w 5000 -T 42 "
	    "-x 000000154b4d45440100000004deadbeef00000004deadbeef "
	    ">'%s' 2>&1",
	    mesh, builddir, mesh, out);
	rc = kmt_run("%s", cmd);
	if ((f = fopen(out, "r")) != NULL) {
		if (fgets(line, sizeof(line), f) == NULL) {
			line[0] = '\0';
		}
		fclose(f);
	}
	printf("\n    forged evidence: %s", line);
	CU_ASSERT(rc == 1);
	CU_ASSERT(strstr(line, "evidence refused") != NULL);
	CU_ASSERT(daemon_log_count("KMD-EVIDENCE-REFUSED") >= 1);
}

static void
test_faulty_holder(void)
{
	char path[2200];
	int saved, i, good = 0;

	/* node1 answers with corrupted partials from now on */
	CU_ASSERT_FATAL(node_stop(1) == 0);
	CU_ASSERT_FATAL(node_start(1, "corrupt-partials") == 0);
	/*
	 * First exactly three up, so node1 has to be asked and waited for
	 * (and no eviction can complete: k = 3 votes of members other than
	 * node1 are not to be had, so node1 stays a holder).  Every
	 * operation fails cleanly rather than return a wrong signature,
	 * plaintext or secret.  The ECDH proofs name node1; an RSA signature
	 * that fails its check with only k partials cannot say whose was bad
	 * (it asks for one more), so RSA only reports the missing quorum.
	 */
	CU_ASSERT_FATAL(node_stop(4) == 0 && node_stop(5) == 0);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
	CU_ASSERT_FATAL(suite_login() == 0);
	capture_begin(&saved, path, sizeof(path));
	good = all_ops();
	/*
	 * The bad partials are reported in the background: the ECDH
	 * exchange as it is (its proof failed), each RSA holder asked again
	 * with Shoup's proof, node1's failing (docs/evidence.md); one
	 * report per holder and kind at a time, so the decryption right
	 * after the signature may add none.
	 */
	wait_captured(path, "P11-EVIDENCE sent evidence against node1", 2,
	    30000);
	capture_end(saved, path);
	CU_ASSERT(good == 0);
	printf("\n    faulty holder, three up: %s", captured);
	CU_ASSERT(count_str(captured, "sent evidence against node1") >= 2);
	CU_ASSERT(strstr(captured, "evidence against node1 to node")
	        != NULL);
	CU_ASSERT(strstr(captured, "(ecdh-partial") != NULL);
	CU_ASSERT(strstr(captured, "(rsa-partial") != NULL);
	CU_ASSERT(strstr(captured, "against node2") == NULL
	    && strstr(captured, "against node3") == NULL);
	/* the daemons checked it on their own */
	CU_ASSERT(daemon_log_count("KMD-EVIDENCE.*node1 returned a bad "
	                           "partial.*Shoup")
	    >= 1);
	CU_ASSERT(daemon_log_count("KMD-EVIDENCE.*node1 returned a bad "
	                           "partial.*Chaum-Pedersen")
	    >= 1);
	check_forged_evidence();
	CU_ASSERT(count_str(captured, "P11-BAD-PARTIAL") >= 1);
	CU_ASSERT(count_str(captured, "P11-BAD-PARTIAL")
	    == count_str(captured, "holder node1 returned a bad partial"));
	CU_ASSERT(count_str(captured, "P11-QUORUM") >= 2);
	CU_ASSERT(strstr(captured, "holder node2") == NULL
	    && strstr(captured, "holder node3") == NULL);
	/*
	 * Then five up: every result is right, whether node1 is asked,
	 * avoided (its score fell with the evidence, so the coordinator
	 * may have quarantined it) or evicted meanwhile (the votes can be
	 * had now), and no other holder is blamed.
	 */
	CU_ASSERT(node_start(4, NULL) == 0 && node_start(5, NULL) == 0);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
	CU_ASSERT_FATAL(suite_login() == 0);
	capture_begin(&saved, path, sizeof(path));
	for (i = 0; i < 3; i++) {
		good += all_ops();
	}
	capture_end(saved, path);
	CU_ASSERT(good == 9);
	printf("\n    faulty holder, five up: %s", captured);
	CU_ASSERT(strstr(captured, "holder node2") == NULL
	    && strstr(captured, "against node2") == NULL);
	CU_ASSERT(node_stop(1) == 0 && node_start(1, NULL) == 0);
}

/* ---- suites ---- */

static const kmt_test iface_tests[] = {
	{ "function_list", test_function_list },
	{ "interfaces", test_interfaces },
	{ "initialize", test_initialize },
	KMT_END,
};

static const kmt_test token_tests[] = {
	{ "slot_token", test_slot_token },
	{ "mechanisms", test_mechanisms },
	{ "sessions", test_sessions },
	{ "login", test_login },
	KMT_END,
};

static const kmt_test object_tests[] = {
	{ "attributes", test_object_attributes },
	{ "find", test_find },
	{ "create_destroy", test_create_destroy },
	KMT_END,
};

static const kmt_test mech_tests[] = {
	{ "rsa_sign_hashed", test_rsa_sign_hashed },
	{ "rsa_sign_raw", test_rsa_sign_raw },
	{ "rsa_errors", test_rsa_errors },
	{ "rsa_decrypt", test_rsa_decrypt },
	{ "ecdh", test_ecdh },
	{ "keygen", test_keygen },
	{ "digest_random", test_digest_random },
	KMT_END,
};

static const kmt_test load_tests[] = {
	{ "latency", test_latency },
	{ "threads", test_threads },
	{ "fork", test_fork },
	KMT_END,
};

static const kmt_test fault_tests[] = {
	{ "two_down", test_two_down },
	{ "three_down", test_three_down },
	{ "faulty_holder", test_faulty_holder },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "p11-iface", NULL, NULL, iface_tests },
	{ "p11-token", suite_init, suite_fini, token_tests },
	{ "p11-object", suite_login, suite_fini, object_tests },
	{ "p11-mech", suite_login, suite_fini, mech_tests },
	{ "p11-load", suite_login, suite_fini, load_tests },
	{ "p11-fault", suite_login, suite_fini, fault_tests },
	{ NULL, NULL, NULL, NULL },
};

int
main(int argc, char **argv)
{
	if (!kmt_have_program("softhsm2-util")) {
		printf("SKIP: SoftHSMv2 is not installed\n");
		return 77;
	}
#ifndef KM_TEST_HOOKS
	printf("SKIP: needs a build with --enable-test-hooks\n");
	return 77;
#endif
	/* the module's config comes from the dev mesh, nothing else */
	unsetenv("KEYMESH_LOG");
	unsetenv("KM_DEBUG");
	setenv("KM_STRICT", "1", 1);
	if (setup_mesh() != 0) {
		fprintf(stderr, "cannot set up the dev mesh in %s\n", mesh);
		return 2;
	}
	return kmt_main(argc, argv, suites);
}
