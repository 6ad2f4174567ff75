/*
 * Module life cycle, locking, the slot and its token, sessions and login.
 *
 * One slot per partition; the config names one partition, so the module
 * shows one slot (KM_P11_SLOT_ID).  Login is the mesh's: C_Login asks every
 * node for a ticket with the user PIN (each daemon checks the PIN itself,
 * DESIGN.md §1.4), and every partial request carries that node's ticket.
 * The PIN stays in locked memory while the user is logged in, so a node
 * that restarted (and forgot its tickets) can be logged in again without
 * asking the application.  The SO logs in the same way with the SO PIN;
 * the daemons' SO tickets serve C_InitPIN and C_SetPIN only.
 *
 * fork(): a child must call C_Initialize (until then every call gives
 * CKR_CRYPTOKI_NOT_INITIALIZED).  nng cannot start in a forked child, so
 * there the mesh is opened through a keymesh-p11-relay helper (net/relay.h,
 * km_p11_mesh_open); everything else is the same as in the parent.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "mesh/ops.h"
#include "mesh/rpc.h"
#include "net/relay.h"
#include "pkcs11/p11.h"
#include "util/err.h"
#include "util/log.h"
#include "util/secmem.h"
#include "util/util.h"

km_p11_state km_p11;


/* The application's mutex callbacks, when it gave them. */
static CK_CREATEMUTEX km_p11_app_create;
static CK_DESTROYMUTEX km_p11_app_destroy;
static CK_LOCKMUTEX km_p11_app_lock;
static CK_UNLOCKMUTEX km_p11_app_unlock;

/* The process that started the transport (nng cannot start again after
 * fork(), see km_p11_initialize_child). */
static pid_t km_p11_mesh_pid;

/* A forked child's transport helper, and the process that started it
 * (a relay inherited from an ancestor is not ours: abandoned). */
static km_net_relay *km_p11_relay;
static pid_t km_p11_relay_owner;

/* Serialises login, logout and PIN changes (network calls, no lock held). */
static pthread_mutex_t km_p11_login_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Until when the daemons refuse SO / user logins after too many wrong PINs
 * (their lock is self-clearing, KMD_PIN_LOCK_MS): the token info shows
 * CKF_SO_PIN_LOCKED / CKF_USER_PIN_LOCKED meanwhile.  Set by a login that
 * met the lock, cleared by one that succeeds; read and written
 * atomically (the token info reads them without the login lock).
 */
#define KM_P11_PIN_LOCK_MS 60000u
static uint64_t km_p11_pin_locked_until[2]; /* by KM_PROTO_USER_* */

struct km_p11_mutex {
	void *app;
	pthread_mutex_t m;
};

int
km_p11_mutex_new(km_p11_mutex **out)
{
	km_p11_mutex *m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		return KM_ERR_ALLOC;
	}
	if (km_p11_app_create != NULL) {
		if (km_p11_app_create(&m->app) != CKR_OK) {
			free(m);
			return KM_ERR_ALLOC;
		}
	} else if (pthread_mutex_init(&m->m, NULL) != 0) {
		free(m);
		return KM_ERR_ALLOC;
	}
	*out = m;
	return 0;
}

void
km_p11_mutex_free(km_p11_mutex *m)
{
	if (m == NULL) {
		return;
	}
	if (m->app != NULL) {
		(void)km_p11_app_destroy(m->app);
	} else {
		pthread_mutex_destroy(&m->m);
	}
	free(m);
}

void
km_p11_lock(km_p11_mutex *m)
{
	if (m->app != NULL) {
		(void)km_p11_app_lock(m->app);
	} else {
		pthread_mutex_lock(&m->m);
	}
}

void
km_p11_unlock(km_p11_mutex *m)
{
	if (m->app != NULL) {
		(void)km_p11_app_unlock(m->app);
	} else {
		pthread_mutex_unlock(&m->m);
	}
}

/* ---- argument checks ---- */

bool
km_p11_strict(void)
{
	const char *s = getenv("KM_STRICT");

	return s != NULL && strcmp(s, "1") == 0;
}

void
km_p11_precondition_failed(const char *cond, const char *func)
{
	km_debug(KM_DBG_P11, "%s: precondition failed: %s", func, cond);
	if (km_p11_strict()) {
		fprintf(stderr,
		    "keymesh-pkcs11: %s: precondition failed: %s\n", func,
		    cond);
		abort();
	}
}

/* ---- life cycle ---- */

CK_RV
km_p11_check_init(void)
{
	if (!km_p11.initialized || km_p11.pid != getpid()) {
		/* a forked child must call C_Initialize itself */
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	return CKR_OK;
}

static km_log_level
km_p11_log_level(void)
{
	const char *s = getenv("KEYMESH_LOG");

	if (s == NULL || *s == '\0') {
		/* silent, but for the one line on a quorum failure */
		return KM_LOG_ERR;
	}
	if (strcmp(s, "none") == 0) {
		return KM_LOG_NONE;
	}
	if (strcmp(s, "warn") == 0) {
		return KM_LOG_WARN;
	}
	if (strcmp(s, "info") == 0) {
		return KM_LOG_INFO;
	}
	if (strcmp(s, "debug") == 0) {
		return KM_LOG_DEBUG;
	}
	return KM_LOG_ERR;
}

/*
 * The token serial: stable for a mesh and partition, so it is derived from
 * the CA certificate file and the partition name.
 */
static void
km_p11_make_serial(const km_mesh_conf *conf, char serial[17])
{
	uint8_t *ca = NULL, md[32];
	size_t calen = 0;
	EVP_MD_CTX *ctx;

	memset(md, 0, sizeof(md));
	(void)km_read_file(conf->ca, &ca, &calen, 1u << 20);
	if ((ctx = EVP_MD_CTX_new()) != NULL) {
		if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1
		    || EVP_DigestUpdate(ctx, ca != NULL ? ca : md, calen) != 1
		    || EVP_DigestUpdate(
		           ctx, conf->partition, strlen(conf->partition) + 1)
		        != 1
		    || EVP_DigestFinal_ex(ctx, md, NULL) != 1) {
			memset(md, 0, sizeof(md));
		}
		EVP_MD_CTX_free(ctx);
	}
	free(ca);
	km_hex(md, 8, serial);
	serial[16] = '\0';
}

static CK_RV
km_p11_args(CK_C_INITIALIZE_ARGS *a)
{
	bool all, none;

	km_p11_app_create = NULL;
	km_p11_app_destroy = NULL;
	km_p11_app_lock = NULL;
	km_p11_app_unlock = NULL;
	if (a == NULL) {
		return CKR_OK;
	}
	if (a->pReserved != NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	all = a->CreateMutex != NULL && a->DestroyMutex != NULL
	    && a->LockMutex != NULL && a->UnlockMutex != NULL;
	none = a->CreateMutex == NULL && a->DestroyMutex == NULL
	    && a->LockMutex == NULL && a->UnlockMutex == NULL;
	if (!all && !none) {
		return CKR_ARGUMENTS_BAD;
	}
	/*
	 * CKF_LIBRARY_CANT_CREATE_OS_THREADS is accepted although the
	 * transport runs its own threads: p11-kit and GnuTLS always set it,
	 * and refusing would keep the module out of them.  The threads never
	 * call into the application.
	 */
	if (all && !(a->flags & CKF_OS_LOCKING_OK)) {
		/* only the application's primitives may be used */
		km_p11_app_create = a->CreateMutex;
		km_p11_app_destroy = a->DestroyMutex;
		km_p11_app_lock = a->LockMutex;
		km_p11_app_unlock = a->UnlockMutex;
	}
	return CKR_OK;
}

/*
 * Whether this process must reach the mesh through a relay helper: nng
 * 1.5 is not fork-safe.  Its pthread_atfork child handler marks the
 * library forked for good, so in any process forked (at any depth) from
 * one that started the transport, nng refuses to start again.
 */
static bool
km_p11_need_relay(void)
{
	return km_p11_mesh_pid != 0 && km_p11_mesh_pid != getpid();
}

/* Forget a relay inherited from an ancestor (its socket was closed in
 * the fork handler, its threads are not here; nothing to free safely). */
static void
km_p11_relay_abandon_inherited(void)
{
	if (km_p11_relay != NULL && km_p11_relay_owner != getpid()) {
		km_p11_relay = NULL;
		km_p11_relay_owner = 0;
	}
}

static void
km_p11_relay_stop(void)
{
	km_p11_relay_abandon_inherited();
	km_net_relay_stop(km_p11_relay);
	km_p11_relay = NULL;
	km_p11_relay_owner = 0;
}

/*
 * Opens the mesh for @role: directly in the process that may run nng,
 * through the relay helper in a forked child (started on first use; see
 * net/relay.h).  Everything above km_net_client (login, the view, the
 * quorum) is the same either way.
 */
static int
km_p11_mesh_open(km_role role, km_mesh **out, char *err, size_t errlen)
{
	int r;

	if (!km_p11.forked) {
		return km_mesh_open(&km_p11.conf, role, out, err, errlen);
	}
	km_p11_relay_abandon_inherited();
	if (km_p11_relay == NULL) {
		if ((r = km_net_relay_start(
		         NULL, km_p11.conf.path, &km_p11_relay, err, errlen))
		    != 0) {
			return r;
		}
		km_p11_relay_owner = getpid();
	}
	return km_mesh_open_relay(
	    &km_p11.conf, role, km_p11_relay, out, err, errlen);
}

/*
 * C_Initialize in a forked child of an initialised process (PKCS#11 2.40
 * §5.4: the child must call C_Initialize; until then every call gives
 * CKR_CRYPTOKI_NOT_INITIALIZED).  nng cannot start here, so the child
 * reaches the mesh through a relay helper (km_p11_mesh_open) and can do
 * everything the parent can.  It keeps the parent's objects (memory is
 * copied) but not its sessions or login.  The parent's connections are
 * abandoned, never closed: that would wait for nng threads that do not
 * exist here, and the parent still uses them.
 */
static CK_RV
km_p11_initialize_child(CK_VOID_PTR args)
{
	char err[300] = "";
	km_mesh *mesh = NULL;
	km_view *view = NULL;
	CK_RV rv;
	int r;

	if ((rv = km_p11_args(args)) != CKR_OK) {
		return rv;
	}
	km_log_init("keymesh-pkcs11", km_p11_log_level());
	/* locks may have been held by threads that are gone: make new ones */
	km_p11.lock = NULL;
	if (km_p11_mutex_new(&km_p11.lock) != 0) {
		return CKR_HOST_MEMORY;
	}
	pthread_mutex_init(&km_p11.stat_lock, NULL);
	pthread_mutex_init(&km_p11.view_lock, NULL);
	pthread_mutex_init(&km_p11_login_lock, NULL);
	km_p11_evidence_forget();
	/* the parent's sessions are not the child's (§5.4): forget them */
	km_p11.sessions = NULL;
	km_p11.nsessions = km_p11.sessions_cap = 0;
	km_p11_objects_drop_children();
	km_secret_wipe(km_p11.ticket, sizeof(km_p11.ticket));
	memset(km_p11.have_ticket, 0, sizeof(km_p11.have_ticket));
	km_p11.pin = NULL; /* the parent's copy: not ours to free */
	km_p11.logged_in = false;
	km_p11.so_logged_in = false; /* the parent's login, not ours */
	/* abandoned, see above (the view too: another thread may have been
	 * refreshing it at fork time, so it is not freed either) */
	km_p11.mesh = NULL;
	km_p11.admin = NULL;
	km_p11.view = NULL;
	memset(km_p11.stat, 0, sizeof(km_p11.stat));
	km_p11.forked = true;
	km_p11.pid = getpid();
	if ((r = km_p11_mesh_open(KM_ROLE_CLIENT, &mesh, err, sizeof(err)))
	        != 0
	    || (r = km_view_new(mesh, &view)) != 0) {
		km_log_error_r(r, "P11-RELAY",
		    "forked child: cannot reach the mesh: %s",
		    err[0] != '\0' ? err : km_strerror(r));
		km_mesh_close(mesh);
		km_p11_relay_stop();
		/* not initialised; the parent's state stays abandoned */
		km_p11.initialized = false;
		return CKR_DEVICE_ERROR;
	}
	km_p11.mesh = mesh;
	km_p11.view = view;
	km_p11.view_at_ms = 0;
	(void)km_p11_view_sync(true);
	/* the child's own trust-view thread (the parent's is not here) */
	(void)km_p11_refresh_start();
	return CKR_OK;
}

CK_RV
km_p11_initialize(CK_VOID_PTR args)
{
	char err[300];
	km_ec_group *g1 = NULL, *g2 = NULL;
	const km_identity *id;
	CK_RV rv;
	int r;

	if (km_p11.initialized && km_p11.pid == getpid()) {
		return CKR_CRYPTOKI_ALREADY_INITIALIZED;
	}
	if (km_p11.initialized) {
		return km_p11_initialize_child(args);
	}
	if ((rv = km_p11_args(args)) != CKR_OK) {
		return rv;
	}
	km_log_init("keymesh-pkcs11", km_p11_log_level());
	(void)km_secmem_init(KM_SECMEM_MODULE_SIZE);
	memset(&km_p11, 0, sizeof(km_p11));
	/* a process forked after its parent finalised: relay too */
	km_p11.forked = km_p11_need_relay();
	pthread_mutex_init(&km_p11.stat_lock, NULL);
	pthread_mutex_init(&km_p11.view_lock, NULL);
	pthread_mutex_init(&km_p11_login_lock, NULL);
	if (km_p11_mutex_new(&km_p11.lock) != 0) {
		return CKR_HOST_MEMORY;
	}
	rv = CKR_GENERAL_ERROR;
	if ((r = km_mesh_conf_load(
	         km_mesh_conf_path(NULL), &km_p11.conf, err, sizeof(err)))
	    != 0) {
		km_log_error_r(
		    r, "P11-CONFIG", "%s: %s", km_mesh_conf_path(NULL), err);
		goto out;
	}
	if (km_p11.conf.timeout_ms == 0) {
		km_p11.conf.timeout_ms = 2000;
	}
	if ((r = km_p11_mesh_open(
	         KM_ROLE_CLIENT, &km_p11.mesh, err, sizeof(err)))
	    != 0) {
		km_log_error_r(r, "P11-MESH", "cannot open the mesh: %s", err);
		goto out;
	}
	if ((r = km_view_new(km_p11.mesh, &km_p11.view)) != 0
	    || (r = km_ec_group_new(NID_X9_62_prime256v1, &g1)) != 0
	    || (r = km_ec_group_new(NID_secp384r1, &g2)) != 0) {
		rv = km_p11_ckr(r);
		goto out;
	}
	if (!km_p11.forked) {
		km_p11_mesh_pid = getpid();
	}
	km_p11.p256 = g1;
	km_p11.p384 = g2;
	g1 = g2 = NULL;
	id = km_mesh_identity(km_p11.mesh);
	snprintf(km_p11.client_name, sizeof(km_p11.client_name), "%s",
	    id != NULL ? id->name : "");
	snprintf(km_p11.token_label, sizeof(km_p11.token_label), "keymesh-%s",
	    km_p11.conf.partition);
	km_p11_make_serial(&km_p11.conf, km_p11.serial);
	km_p11.next_session = 1;
	km_p11.next_object = 1;
	km_p11.pid = getpid();
	km_p11.initialized = true;
	/* the first view: keys show up as objects (a failure is not fatal:
	 * the next C_FindObjectsInit tries again) */
	(void)km_p11_view_sync(true);
	/* the trust/load view, refreshed in the background (view.c); the
	 * quorum ranks by its own measurements without it */
	(void)km_p11_refresh_start();
	return CKR_OK;
out:
	km_ec_group_free(g1);
	km_ec_group_free(g2);
	km_view_free(km_p11.view);
	km_mesh_close(km_p11.mesh);
	km_p11_relay_stop();
	km_p11_mutex_free(km_p11.lock);
	memset(&km_p11, 0, sizeof(km_p11));
	return rv;
}

static void
km_p11_session_free(km_p11_session *s)
{
	km_p11_op_reset(&s->op);
	km_p11_mutex_free(s->lock);
	free(s);
}

CK_RV
km_p11_finalize(CK_VOID_PTR reserved)
{
	size_t i;

	return_val_if_fail(reserved == NULL, CKR_ARGUMENTS_BAD);
	if (km_p11_check_init() != CKR_OK) {
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	km_p11_lock(km_p11.lock);
	km_p11.initialized = false;
	km_p11_unlock(km_p11.lock);
	/* before the mesh closes: the reporter uses it (and before the
	 * sessions go, whose last one logs out) */
	km_p11_evidence_drain(KM_P11_EVIDENCE_DRAIN_MS);
	km_p11_evidence_stop();
	/* the refresher too: it syncs the catalog view into the object
	 * table freed below, and calls nodes */
	km_p11_refresh_stop();
	/* WARNING: the application must not call in from other threads
	 * while it finalises (PKCS#11 §5.4); sessions are freed here */
	for (i = 0; i < km_p11.nsessions; i++) {
		km_p11_session_free(km_p11.sessions[i]);
	}
	free(km_p11.sessions);
	km_p11_objects_free();
	if (km_p11.logged_in || km_p11.so_logged_in) {
		for (i = 0; i < km_mesh_count(km_p11.mesh); i++) {
			if (km_p11.have_ticket[i]) {
				(void)km_ops_logout(
				    km_mesh_client(km_p11.mesh, i),
				    km_p11.ticket[i], 500);
			}
		}
	}
	km_secure_strfree(km_p11.pin);
	km_secret_wipe(km_p11.ticket, sizeof(km_p11.ticket));
	km_view_free(km_p11.view);
	km_mesh_close(km_p11.admin);
	km_mesh_close(km_p11.mesh);
	/* a forked child's helper: it exits on end of stream, reaped by
	 * its pid only (the application's SIGCHLD handling is untouched) */
	km_p11_relay_stop();
	km_ec_group_free((km_ec_group *)km_p11.p256);
	km_ec_group_free((km_ec_group *)km_p11.p384);
	km_p11_mutex_free(km_p11.lock);
	pthread_mutex_destroy(&km_p11.stat_lock);
	pthread_mutex_destroy(&km_p11.view_lock);
	memset(&km_p11, 0, sizeof(km_p11));
	return CKR_OK;
}

/* Blank-padded copy for the fixed-size info fields. */
static void
km_p11_pad(CK_UTF8CHAR *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	memset(dst, ' ', len);
	memcpy(dst, src, n < len ? n : len);
}

CK_RV
km_p11_get_info(CK_INFO_PTR info)
{
	return_val_if_fail(info != NULL, CKR_ARGUMENTS_BAD);
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	km_p11_pad(info->manufacturerID, sizeof(info->manufacturerID),
	    KM_P11_MANUFACTURER);
	km_p11_pad(info->libraryDescription, sizeof(info->libraryDescription),
	    "keymesh threshold PKCS#11");
	info->libraryVersion.major = 0;
	info->libraryVersion.minor = 1;
	return CKR_OK;
}

CK_RV
km_p11_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	(void)present;
	return_val_if_fail(count != NULL, CKR_ARGUMENTS_BAD);
	if (list == NULL) {
		*count = 1;
		return CKR_OK;
	}
	if (*count < 1) {
		*count = 1;
		return CKR_BUFFER_TOO_SMALL;
	}
	list[0] = KM_P11_SLOT_ID;
	*count = 1;
	return CKR_OK;
}

CK_RV
km_p11_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	char desc[80];

	return_val_if_fail(info != NULL, CKR_ARGUMENTS_BAD);
	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	memset(info, 0, sizeof(*info));
	snprintf(desc, sizeof(desc), "keymesh partition %s (%zu nodes)",
	    km_p11.conf.partition, km_p11.conf.nnodes);
	km_p11_pad(info->slotDescription, sizeof(info->slotDescription), desc);
	km_p11_pad(info->manufacturerID, sizeof(info->manufacturerID),
	    KM_P11_MANUFACTURER);
	info->flags = CKF_TOKEN_PRESENT;
	info->hardwareVersion.major = 0;
	info->firmwareVersion.major = 0;
	info->firmwareVersion.minor = 1;
	return CKR_OK;
}

CK_RV
km_p11_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	size_t i, rw = 0;

	return_val_if_fail(info != NULL, CKR_ARGUMENTS_BAD);
	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	memset(info, 0, sizeof(*info));
	km_p11_pad(info->label, sizeof(info->label), km_p11.token_label);
	km_p11_pad(info->manufacturerID, sizeof(info->manufacturerID),
	    KM_P11_MANUFACTURER);
	km_p11_pad(info->model, sizeof(info->model), "threshold mesh");
	km_p11_pad(
	    info->serialNumber, sizeof(info->serialNumber), km_p11.serial);
	info->flags = CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED
	    | CKF_TOKEN_INITIALIZED | CKF_RNG;
	if (__atomic_load_n(
	        &km_p11_pin_locked_until[KM_PROTO_USER_SO], __ATOMIC_RELAXED)
	    > km_now_ms()) {
		info->flags |= CKF_SO_PIN_LOCKED;
	}
	if (__atomic_load_n(
	        &km_p11_pin_locked_until[KM_PROTO_USER_USER], __ATOMIC_RELAXED)
	    > km_now_ms()) {
		info->flags |= CKF_USER_PIN_LOCKED;
	}
	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nsessions; i++) {
		if (km_p11.sessions[i]->flags & CKF_RW_SESSION) {
			rw++;
		}
	}
	info->ulSessionCount = km_p11.nsessions;
	info->ulRwSessionCount = rw;
	km_p11_unlock(km_p11.lock);
	info->ulMaxSessionCount = KM_P11_MAX_SESSIONS;
	info->ulMaxRwSessionCount = KM_P11_MAX_SESSIONS;
	info->ulMaxPinLen = KM_P11_PIN_MAX;
	info->ulMinPinLen = KM_P11_PIN_MIN;
	info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->hardwareVersion.major = 0;
	info->firmwareVersion.minor = 1;
	/* no clock on the token (CKF_CLOCK_ON_TOKEN is not set) */
	memset(info->utcTime, ' ', sizeof(info->utcTime));
	return CKR_OK;
}

CK_RV
km_p11_wait_for_slot_event(
    CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	(void)flags;
	(void)slot;
	(void)reserved;
	/* the one slot's token never leaves */
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV
km_p11_init_token(
    CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label)
{
	(void)pin;
	(void)len;
	(void)label;
	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	/* a partition is made by the mesh admin (keymesh pin init) */
	return CKR_FUNCTION_NOT_SUPPORTED;
}

/* ---- sessions ---- */

bool
km_p11_logged_in(void)
{
	return km_p11.logged_in;
}

CK_STATE
km_p11_session_state(const km_p11_session *s)
{
	bool rw = (s->flags & CKF_RW_SESSION) != 0;

	if (km_p11.so_logged_in) {
		return CKS_RW_SO_FUNCTIONS; /* SO sessions are all R/W */
	}
	if (km_p11.logged_in) {
		return rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
	}
	return rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
}

CK_RV
km_p11_open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out)
{
	km_p11_session *s = NULL, **v;
	CK_RV rv;

	(void)app;
	(void)notify;
	return_val_if_fail(out != NULL, CKR_ARGUMENTS_BAD);
	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	if (!(flags & CKF_SERIAL_SESSION)) {
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return CKR_HOST_MEMORY;
	}
	if (km_p11_mutex_new(&s->lock) != 0) {
		free(s);
		return CKR_HOST_MEMORY;
	}
	km_buf_init(&s->op.data);
	s->flags = flags & (CKF_RW_SESSION | CKF_SERIAL_SESSION);
	km_p11_lock(km_p11.lock);
	if (km_p11.nsessions >= KM_P11_MAX_SESSIONS) {
		rv = CKR_SESSION_COUNT;
		goto out;
	}
	if (!(s->flags & CKF_RW_SESSION) && km_p11.so_logged_in) {
		rv = CKR_SESSION_READ_WRITE_SO_EXISTS; /* §5.6 */
		goto out;
	}
	if (km_p11.nsessions == km_p11.sessions_cap) {
		size_t cap
		    = km_p11.sessions_cap ? 2 * km_p11.sessions_cap : 16;

		if ((v = realloc(km_p11.sessions, cap * sizeof(*v))) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		km_p11.sessions = v;
		km_p11.sessions_cap = cap;
	}
	s->handle = km_p11.next_session++;
	km_p11.sessions[km_p11.nsessions++] = s;
	*out = s->handle;
	s = NULL;
	rv = CKR_OK;
out:
	km_p11_unlock(km_p11.lock);
	if (s != NULL) {
		km_p11_session_free(s);
	}
	return rv;
}

/* Under the module lock: take session @i out of the table. */
static km_p11_session *
km_p11_session_unlink(size_t i)
{
	km_p11_session *s = km_p11.sessions[i];

	km_p11.sessions[i] = km_p11.sessions[--km_p11.nsessions];
	s->closing = true;
	km_p11_objects_drop_session(s->handle);
	return s;
}

static void km_p11_logout_all_nodes(void);

/*
 * Under the module lock: whether @s can be freed now (no call is inside
 * it).  The caller frees it after unlocking, since freeing releases key
 * references under the same lock.
 */
static bool
km_p11_session_release(km_p11_session *s)
{
	return s->refs == 0;
}

CK_RV
km_p11_close_session(CK_SESSION_HANDLE h)
{
	km_p11_session *s = NULL;
	size_t i;
	bool last = false;
	CK_RV rv = CKR_SESSION_HANDLE_INVALID;

	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nsessions; i++) {
		if (km_p11.sessions[i]->handle == h) {
			s = km_p11_session_unlink(i);
			if (!km_p11_session_release(s)) {
				s = NULL; /* the last call frees it */
			}
			last = km_p11.nsessions == 0;
			rv = CKR_OK;
			break;
		}
	}
	km_p11_unlock(km_p11.lock);
	if (s != NULL) {
		km_p11_session_free(s);
	}
	if (last) {
		/* closing the last session logs the user out (§5.6) */
		km_p11_logout_all_nodes();
	}
	return rv;
}

CK_RV
km_p11_close_all_sessions(CK_SLOT_ID slot)
{
	km_p11_session *s;

	if (slot != KM_P11_SLOT_ID) {
		return CKR_SLOT_ID_INVALID;
	}
	for (;;) {
		km_p11_lock(km_p11.lock);
		if (km_p11.nsessions == 0) {
			km_p11_unlock(km_p11.lock);
			break;
		}
		s = km_p11_session_unlink(0);
		if (!km_p11_session_release(s)) {
			s = NULL;
		}
		km_p11_unlock(km_p11.lock);
		if (s != NULL) {
			km_p11_session_free(s);
		}
	}
	km_p11_logout_all_nodes();
	return CKR_OK;
}

CK_RV
km_p11_session_get(CK_SESSION_HANDLE h, km_p11_session **out)
{
	km_p11_session *s = NULL;
	size_t i;

	km_p11_lock(km_p11.lock);
	for (i = 0; i < km_p11.nsessions; i++) {
		if (km_p11.sessions[i]->handle == h) {
			s = km_p11.sessions[i];
			s->refs++;
			break;
		}
	}
	km_p11_unlock(km_p11.lock);
	if (s == NULL) {
		return CKR_SESSION_HANDLE_INVALID;
	}
	km_p11_lock(s->lock);
	if (s->closing) {
		km_p11_session_put(s);
		return CKR_SESSION_HANDLE_INVALID;
	}
	*out = s;
	return CKR_OK;
}

void
km_p11_session_put(km_p11_session *s)
{
	bool gone;

	km_p11_unlock(s->lock);
	km_p11_lock(km_p11.lock);
	s->refs--;
	gone = s->closing && km_p11_session_release(s);
	km_p11_unlock(km_p11.lock);
	if (gone) {
		km_p11_session_free(s);
	}
}

CK_RV
km_p11_get_session_info(km_p11_session *s, CK_SESSION_INFO_PTR info)
{
	return_val_if_fail(info != NULL, CKR_ARGUMENTS_BAD);
	memset(info, 0, sizeof(*info));
	info->slotID = KM_P11_SLOT_ID;
	km_p11_lock(km_p11.lock);
	info->state = km_p11_session_state(s);
	km_p11_unlock(km_p11.lock);
	info->flags = s->flags;
	info->ulDeviceError = 0;
	return CKR_OK;
}

/* ---- login ---- */

/* The SO is logged in (a forked child starts logged out, see
 * km_p11_initialize_child). */
static bool
km_p11_so_logged_in(void)
{
	return km_p11.so_logged_in;
}

typedef struct km_p11_login_job {
	size_t node;
	uint32_t user; /* KM_PROTO_USER_* */
	const char *pin;
	int r;
	char msg[160];
	uint8_t ticket[KM_PROTO_TICKET_LEN];
} km_p11_login_job;

static size_t km_p11_quorum_min(void);

/*
 * C_Login's fan-out: one asynchronous login call per node, all at once.
 * It returns when every node has answered, or, once a quorum has accepted
 * the PIN, when the nodes still silent have had no connection for
 * KM_P11_LOGIN_GRACE_MS: a daemon that is down would otherwise cost every
 * process the whole timeout_ms at C_Login (2 s for each new pkcs11-tool,
 * openssl, ssh ... with 2 of 5 daemons stopped).  Those nodes are logged
 * in on first use (km_p11_ticket), as nodes that were down always were.
 * A node that is connected is always waited for (up to timeout_ms), so
 * its answer, a wrong PIN included, counts; a wrong PIN decides as a
 * quorum does.  Otherwise it waits for every answer or timeout, as
 * before (3 of 5 down: CKR_DEVICE_ERROR after timeout_ms).
 */
#define KM_P11_LOGIN_GRACE_MS 200

typedef struct km_p11_login_fan {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	size_t finished;
} km_p11_login_fan;

typedef struct km_p11_login_slot {
	km_p11_login_fan *fan;
	km_net_call *call;
	km_buf req;
	bool finished;
	bool parsed;
	int r; /* the transport's result */
} km_p11_login_slot;

/* Runs on an nng thread: must not block (km_net_done). */
static void
km_p11_login_done(km_net_call *call, int r, void *arg)
{
	km_p11_login_slot *sl = arg;

	(void)call;
	pthread_mutex_lock(&sl->fan->lock);
	sl->r = r;
	sl->finished = true;
	sl->fan->finished++;
	pthread_cond_broadcast(&sl->fan->cv);
	pthread_mutex_unlock(&sl->fan->lock);
}

/* A finished call's reply into @j: its result and ticket (km_ops_login). */
static void
km_p11_login_result(km_p11_login_slot *sl, km_p11_login_job *j)
{
	const km_identity *peer;
	const uint8_t *body, *p;
	size_t len, n;
	uint64_t expires;
	km_buf view;

	if ((j->r = sl->r) == 0
	    && (j->r = km_net_call_reply(sl->call, &body, &len, &peer)) == 0
	    && (j->r = km_rpc_reply_parse(j->user == KM_PROTO_USER_USER
	                ? KM_MSG_LOGIN
	                : KM_MSG_LOGIN_AS,
	            body, len, &view, j->msg, sizeof(j->msg)))
	        == 0) {
		if (km_buf_get_string_ptr(&view, &p, &n, KM_PROTO_TICKET_LEN)
		        != 0
		    || n != KM_PROTO_TICKET_LEN
		    || km_buf_get_u64(&view, &expires) != 0) {
			snprintf(
			    j->msg, sizeof(j->msg), "malformed login reply");
			j->r = KM_ERR_BAD_FORMAT;
			return;
		}
		memcpy(j->ticket, p, KM_PROTO_TICKET_LEN);
		return;
	}
	if (j->msg[0] == '\0') {
		snprintf(j->msg, sizeof(j->msg), "%s", km_strerror(j->r));
	}
}

/* Under fan->lock: true when the silent nodes need not be waited for. */
static bool
km_p11_login_enough(km_p11_login_slot *sl, km_p11_login_job *jobs, size_t n,
    uint64_t *t_quorum)
{
	size_t i, ok = 0, bad = 0;
	uint64_t now;

	for (i = 0; i < n; i++) {
		if (sl[i].finished && !sl[i].parsed) {
			km_p11_login_result(&sl[i], &jobs[i]);
			sl[i].parsed = true;
		}
		ok += sl[i].parsed && jobs[i].r == 0;
		bad += sl[i].parsed && jobs[i].r == KM_ERR_PIN;
	}
	/*
	 * The SO waits for every node: the module keeps no SO PIN, so a node
	 * skipped here could not be logged in later, and C_InitPIN would
	 * leave it with the old user PIN.
	 */
	if (n > 0 && jobs[0].user != KM_PROTO_USER_USER) {
		return false;
	}
	/* decided: a quorum took the PIN, or a node refused it */
	if (ok < km_p11_quorum_min() && bad == 0) {
		return false;
	}
	now = km_mono_ns();
	if (*t_quorum == 0) {
		*t_quorum = now;
	}
	for (i = 0; i < n; i++) {
		if (!sl[i].finished
		    && km_net_client_connected(
		        km_mesh_client(km_p11.mesh, i))) {
			*t_quorum = now; /* a live node: wait for it */
		}
	}
	return now - *t_quorum >= (uint64_t)KM_P11_LOGIN_GRACE_MS * 1000000u;
}

/*
 * Log in on every node in parallel.  @jobs receives each node's result;
 * a node given up on (see above) gets KM_ERR_CONN.
 */
static void
km_p11_login_nodes(
    const char *pin, uint32_t user, km_p11_login_job *jobs, size_t n)
{
	km_p11_login_fan fan;
	km_p11_login_slot sl[KM_MESH_MAX_NODES];
	uint64_t t_quorum = 0;
	struct timespec ts;
	size_t i;
	int r;

	memset(&fan, 0, sizeof(fan));
	pthread_mutex_init(&fan.lock, NULL);
	pthread_cond_init(&fan.cv, NULL);
	memset(sl, 0, sizeof(sl));
	for (i = 0; i < n; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].node = i;
		jobs[i].user = user;
		jobs[i].pin = pin;
		sl[i].fan = &fan;
		km_buf_init_secure(&sl[i].req);
		/* as km_ops_login_as(): a user login stays a plain login,
		 * which every daemon version serves; the SO needs login-as */
		if (user == KM_PROTO_USER_USER) {
			r = km_rpc_request(
			    &sl[i].req, KM_MSG_LOGIN, NULL, 0, NULL);
		} else {
			r = km_rpc_request(
			    &sl[i].req, KM_MSG_LOGIN_AS, NULL, 0, NULL);
			r = r ? r : km_buf_put_u32(&sl[i].req, user);
		}
		r = r ? r
		      : km_buf_put_cstring(&sl[i].req, km_p11.conf.partition);
		r = r ? r : km_buf_put_cstring(&sl[i].req, pin);
		r = r ? r
		      : km_net_call_new(
		          km_mesh_client(km_p11.mesh, i), &sl[i].call);
		r = r ? r
		      : km_net_call_start(sl[i].call, sl[i].req.data,
		          sl[i].req.len, (int)km_p11.conf.timeout_ms,
		          km_p11_login_done, &sl[i]);
		if (r != 0) {
			pthread_mutex_lock(&fan.lock);
			sl[i].r = r;
			sl[i].finished = true;
			fan.finished++;
			pthread_mutex_unlock(&fan.lock);
		}
	}
	pthread_mutex_lock(&fan.lock);
	while (
	    fan.finished < n && !km_p11_login_enough(sl, jobs, n, &t_quorum)) {
		/* short waits: the condvar's clock is the wall clock */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&fan.cv, &fan.lock, &ts);
	}
	pthread_mutex_unlock(&fan.lock);
	/* the silent ones: cancelled, and their callbacks waited for (one
	 * that answered meanwhile keeps its answer) */
	for (i = 0; i < n; i++) {
		if (!sl[i].parsed && sl[i].call != NULL) {
			km_net_call_cancel(sl[i].call);
			(void)km_net_call_wait(sl[i].call);
		}
	}
	pthread_mutex_lock(&fan.lock);
	for (i = 0; i < n; i++) {
		if (sl[i].finished && !sl[i].parsed) {
			km_p11_login_result(&sl[i], &jobs[i]);
			sl[i].parsed = true;
			if (jobs[i].r == KM_ERR_CLOSED) {
				jobs[i].r = KM_ERR_CONN;
				snprintf(jobs[i].msg, sizeof(jobs[i].msg),
				    "not connected; logged in there on "
				    "first use");
			}
		}
	}
	pthread_mutex_unlock(&fan.lock);
	for (i = 0; i < n; i++) {
		km_net_call_free(sl[i].call);
		km_buf_free(&sl[i].req);
	}
	pthread_cond_destroy(&fan.cv);
	pthread_mutex_destroy(&fan.lock);
}

static size_t
km_p11_quorum_min(void)
{
	return km_p11.conf.threshold > 0 ? km_p11.conf.threshold : 1;
}

static void
km_p11_logout_tickets(km_p11_login_job *jobs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (jobs[i].r == 0) {
			(void)km_ops_logout(km_mesh_client(km_p11.mesh, i),
			    jobs[i].ticket, 500);
		}
		km_secret_wipe(jobs[i].ticket, sizeof(jobs[i].ticket));
	}
}

/* Appends "node (reason)" to @buf, for the log lines naming nodes. */
static void
km_p11_name_node(char *buf, size_t len, size_t *off, size_t node, int r)
{
	int n;

	if (*off >= len) {
		return;
	}
	n = snprintf(buf + *off, len - *off, "%s%s (%s)", *off > 0 ? ", " : "",
	    km_mesh_name(km_p11.mesh, node), km_strerror(r));
	*off = n < 0 ? len : *off + (size_t)n;
}

/*
 * Checks @pin of @user with the mesh.  Returns CKR_OK with @jobs holding
 * the tickets of the nodes that accepted it, or the error (tickets
 * released).  One node saying "wrong PIN" makes the PIN wrong; a node that
 * refuses logins after too many wrong PINs makes it CKR_PIN_LOCKED when
 * too few others accepted it.
 */
static CK_RV
km_p11_check_pin(
    const char *pin, uint32_t user, km_p11_login_job *jobs, size_t n)
{
	size_t i, ok = 0, bad = 0, unset = 0, locked = 0;
	char missing[400] = "";
	size_t off = 0;
	const char *who = user == KM_PROTO_USER_SO ? "SO" : "user";

	km_p11_login_nodes(pin, user, jobs, n);
	for (i = 0; i < n; i++) {
		if (jobs[i].r == 0) {
			ok++;
		} else if (jobs[i].r == KM_ERR_PIN) {
			bad++;
		} else if (jobs[i].r == KM_ERR_STATE) {
			unset++;
		} else {
			locked += jobs[i].r == KM_ERR_BUSY;
			km_p11_name_node(
			    missing, sizeof(missing), &off, i, jobs[i].r);
		}
	}
	if (bad > 0) {
		km_p11_logout_tickets(jobs, n);
		return CKR_PIN_INCORRECT;
	}
	if (ok < km_p11_quorum_min()) {
		km_p11_logout_tickets(jobs, n);
		if (unset > 0 && user == KM_PROTO_USER_SO) {
			km_log_error("P11-NO-SO-PIN",
			    "the SO PIN of partition %s is not set on %zu of "
			    "%zu nodes (the mesh admin sets it with keymesh "
			    "pin init --so)",
			    km_p11.conf.partition, unset, n);
			return CKR_PIN_INCORRECT;
		}
		if (unset > 0) {
			return CKR_USER_PIN_NOT_INITIALIZED;
		}
		if (locked > 0) {
			__atomic_store_n(&km_p11_pin_locked_until[user],
			    km_now_ms() + KM_P11_PIN_LOCK_MS,
			    __ATOMIC_RELAXED);
			km_log_error("P11-PIN-LOCKED",
			    "%s login: %zu node(s) refuse logins after too "
			    "many wrong PINs; missing: %s",
			    who, locked, missing);
			return CKR_PIN_LOCKED;
		}
		km_log_error("P11-QUORUM",
		    "%s login: %zu of %zu nodes answered, %zu needed; "
		    "missing: %s",
		    who, ok, n, km_p11_quorum_min(), missing);
		return CKR_DEVICE_ERROR;
	}
	__atomic_store_n(&km_p11_pin_locked_until[user], 0, __ATOMIC_RELAXED);
	if (ok < n) {
		km_log_warn("P11-LOGIN-PARTIAL",
		    "%s logged in on %zu of %zu nodes; missing: %s", who, ok,
		    n, missing);
	}
	return CKR_OK;
}

static bool
km_p11_pin_ok(CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	CK_ULONG i;

	for (i = 0; i < len; i++) {
		if (pin[i] == '\0') {
			return false;
		}
	}
	return true;
}

/* Under the module lock: a read-only session is open (§5.6, SO login). */
static bool
km_p11_ro_session_exists(void)
{
	size_t i;

	for (i = 0; i < km_p11.nsessions; i++) {
		if (!(km_p11.sessions[i]->flags & CKF_RW_SESSION)) {
			return true;
		}
	}
	return false;
}

/*
 * C_Login.  CKU_USER gets user tickets (which the partial requests carry)
 * and keeps the PIN in locked memory to log in again on a node that
 * restarts; CKU_SO gets SO tickets, which the daemons accept only for PIN
 * management (C_InitPIN, C_SetPIN), and keeps no PIN.  The checks and
 * their order are SoftHSM's (PKCS#11 2.40 §5.6): a read-only session
 * forbids an SO login, then one user type at a time.
 */
CK_RV
km_p11_login(
    km_p11_session *s, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	km_p11_login_job jobs[KM_MESH_MAX_NODES];
	size_t i, n = km_mesh_count(km_p11.mesh);
	uint32_t user;
	char *p = NULL;
	bool ro;
	CK_RV rv;

	(void)s;
	if (type == CKU_CONTEXT_SPECIFIC) {
		/* no key has CKA_ALWAYS_AUTHENTICATE */
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (type != CKU_USER && type != CKU_SO) {
		return CKR_USER_TYPE_INVALID;
	}
	user = type == CKU_SO ? KM_PROTO_USER_SO : KM_PROTO_USER_USER;
	return_val_if_fail(pin != NULL || len == 0, CKR_ARGUMENTS_BAD);
	pthread_mutex_lock(&km_p11_login_lock);
	km_p11_lock(km_p11.lock);
	ro = km_p11_ro_session_exists();
	km_p11_unlock(km_p11.lock);
	if (type == CKU_SO && ro) {
		rv = CKR_SESSION_READ_ONLY_EXISTS;
		goto out;
	}
	if ((type == CKU_USER && km_p11.logged_in)
	    || (type == CKU_SO && km_p11_so_logged_in())) {
		rv = CKR_USER_ALREADY_LOGGED_IN;
		goto out;
	}
	if (km_p11.logged_in || km_p11_so_logged_in()) {
		rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
		goto out;
	}
	if (pin == NULL || len < KM_P11_PIN_MIN || len > KM_P11_PIN_MAX
	    || !km_p11_pin_ok(pin, len)) {
		rv = CKR_PIN_INCORRECT;
		goto out;
	}
	if ((p = km_secure_alloc(len + 1)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	memcpy(p, pin, len);
	if ((rv = km_p11_check_pin(p, user, jobs, n)) != CKR_OK) {
		goto out;
	}
	km_p11_lock(km_p11.lock);
	for (i = 0; i < n; i++) {
		km_p11.have_ticket[i] = jobs[i].r == 0;
		if (jobs[i].r == 0) {
			memcpy(km_p11.ticket[i], jobs[i].ticket,
			    KM_PROTO_TICKET_LEN);
		}
		km_secret_wipe(jobs[i].ticket, sizeof(jobs[i].ticket));
	}
	if (type == CKU_USER) {
		km_p11.pin = p;
		p = NULL;
		km_p11.logged_in = true;
	} else {
		/* WARNING: km_p11_ticket() hands tickets to key operations
		 * only while logged_in (the user) is set, never SO tickets */
		km_p11.so_logged_in = true;
	}
	km_p11_unlock(km_p11.lock);
	rv = CKR_OK;
out:
	pthread_mutex_unlock(&km_p11_login_lock);
	if (p != NULL) {
		km_secret_free(p, len + 1);
	}
	return rv;
}

/* Forget the login (user or SO) and release every node's ticket. */
static void
km_p11_logout_all_nodes(void)
{
	uint8_t t[KM_MESH_MAX_NODES][KM_PROTO_TICKET_LEN];
	bool have[KM_MESH_MAX_NODES];
	size_t i, n = km_mesh_count(km_p11.mesh);

	/* evidence of a bad partial still to report needs these tickets:
	 * it goes first, within a bound (DESIGN.md §1 promise 3) */
	km_p11_evidence_drain(KM_P11_EVIDENCE_DRAIN_MS);
	pthread_mutex_lock(&km_p11_login_lock);
	km_p11_lock(km_p11.lock);
	memcpy(t, km_p11.ticket, sizeof(t));
	memcpy(have, km_p11.have_ticket, sizeof(have));
	km_secret_wipe(km_p11.ticket, sizeof(km_p11.ticket));
	memset(km_p11.have_ticket, 0, sizeof(km_p11.have_ticket));
	km_secure_strfree(km_p11.pin);
	km_p11.pin = NULL;
	km_p11.logged_in = false;
	km_p11.so_logged_in = false;
	km_p11_unlock(km_p11.lock);
	for (i = 0; i < n; i++) {
		if (have[i]
		    && km_net_client_connected(
		        km_mesh_client(km_p11.mesh, i))) {
			(void)km_ops_logout(
			    km_mesh_client(km_p11.mesh, i), t[i], 500);
		}
	}
	km_secret_wipe(t, sizeof(t));
	pthread_mutex_unlock(&km_p11_login_lock);
}

CK_RV
km_p11_logout(km_p11_session *s)
{
	(void)s;
	if (!km_p11.logged_in && !km_p11_so_logged_in()) {
		return CKR_USER_NOT_LOGGED_IN;
	}
	km_p11_logout_all_nodes();
	return CKR_OK;
}

bool
km_p11_ticket(size_t node, uint8_t out[KM_PROTO_TICKET_LEN])
{
	bool have = false;
	char msg[160];
	uint8_t t[KM_PROTO_TICKET_LEN];
	km_net_client *c;

	if (node >= KM_MESH_MAX_NODES) {
		return false;
	}
	/* only the user's tickets serve key operations (an SO login sets
	 * so_logged_in, never logged_in) */
	km_p11_lock(km_p11.lock);
	if (km_p11.logged_in && km_p11.have_ticket[node]) {
		memcpy(out, km_p11.ticket[node], KM_PROTO_TICKET_LEN);
		have = true;
	}
	km_p11_unlock(km_p11.lock);
	if (have || !km_p11.logged_in) {
		return have;
	}
	/*
	 * Logged in, but not on this node (it was down at C_Login, or it
	 * restarted and forgot its tickets): if it is connected now, log in
	 * there with the PIN kept for that purpose.  A node that is not
	 * connected costs nothing.
	 */
	c = km_mesh_client(km_p11.mesh, node);
	if (!km_net_client_connected(c)) {
		return false;
	}
	pthread_mutex_lock(&km_p11_login_lock);
	if (km_p11.logged_in && km_p11.pin != NULL
	    && km_ops_login(c, km_p11.conf.partition, km_p11.pin,
	           (int)km_p11.conf.timeout_ms, t, msg, sizeof(msg))
	        == 0) {
		km_p11_lock(km_p11.lock);
		memcpy(km_p11.ticket[node], t, KM_PROTO_TICKET_LEN);
		km_p11.have_ticket[node] = true;
		km_p11_unlock(km_p11.lock);
		memcpy(out, t, KM_PROTO_TICKET_LEN);
		have = true;
	}
	km_secret_wipe(t, sizeof(t));
	pthread_mutex_unlock(&km_p11_login_lock);
	return have;
}

bool
km_p11_ticket_cb(void *arg, size_t node, uint8_t *out)
{
	(void)arg;
	return km_p11_ticket(node, out);
}

void
km_p11_ticket_drop(size_t node)
{
	if (node >= KM_MESH_MAX_NODES) {
		return;
	}
	km_p11_lock(km_p11.lock);
	km_p11.have_ticket[node] = false;
	km_secret_wipe(km_p11.ticket[node], KM_PROTO_TICKET_LEN);
	km_p11_unlock(km_p11.lock);
}

/*
 * C_SetPIN changes the PIN of whoever the session is (§5.6, as SoftHSM):
 * the SO's while the SO is logged in, else the user's (logged in or in a
 * public session).  Either way fresh tickets of that user type prove the
 * old PIN on each node, and each node changes the PIN its ticket names.
 */
CK_RV
km_p11_set_pin(km_p11_session *s, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
    CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len)
{
	km_p11_login_job jobs[KM_MESH_MAX_NODES];
	size_t i, n = km_mesh_count(km_p11.mesh), ok = 0;
	char *op = NULL, *np = NULL, msg[160];
	char missing[400] = "";
	size_t off = 0;
	bool pin_bad = false, so;
	uint32_t user;
	CK_RV rv;

	return_val_if_fail(old_pin != NULL, CKR_ARGUMENTS_BAD);
	return_val_if_fail(new_pin != NULL, CKR_ARGUMENTS_BAD);
	if (!(s->flags & CKF_RW_SESSION)) {
		return CKR_SESSION_READ_ONLY;
	}
	if (new_len < KM_P11_PIN_MIN || new_len > KM_P11_PIN_MAX
	    || !km_p11_pin_ok(new_pin, new_len)) {
		return CKR_PIN_LEN_RANGE;
	}
	if (old_len < KM_P11_PIN_MIN || old_len > KM_P11_PIN_MAX
	    || !km_p11_pin_ok(old_pin, old_len)) {
		return CKR_PIN_INCORRECT;
	}
	if ((op = km_secure_alloc(old_len + 1)) == NULL
	    || (np = km_secure_alloc(new_len + 1)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	memcpy(op, old_pin, old_len);
	memcpy(np, new_pin, new_len);
	pthread_mutex_lock(&km_p11_login_lock);
	so = km_p11_so_logged_in();
	user = so ? KM_PROTO_USER_SO : KM_PROTO_USER_USER;
	/* fresh tickets prove the old PIN on each node */
	if ((rv = km_p11_check_pin(op, user, jobs, n)) != CKR_OK) {
		pthread_mutex_unlock(&km_p11_login_lock);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (jobs[i].r != 0) {
			km_p11_name_node(
			    missing, sizeof(missing), &off, i, jobs[i].r);
			continue;
		}
		jobs[i].r = km_ops_set_pin(km_mesh_client(km_p11.mesh, i),
		    jobs[i].ticket, op, np, (int)km_p11.conf.timeout_ms, msg,
		    sizeof(msg));
		if (jobs[i].r == 0) {
			ok++;
		} else {
			pin_bad |= jobs[i].r == KM_ERR_PIN;
			km_log_warn("P11-SETPIN", "%s refused the new PIN: %s",
			    km_mesh_name(km_p11.mesh, i), msg);
			km_p11_name_node(
			    missing, sizeof(missing), &off, i, jobs[i].r);
			/* keep its ticket out of the logout below */
			(void)km_ops_logout(km_mesh_client(km_p11.mesh, i),
			    jobs[i].ticket, 500);
			jobs[i].r = KM_ERR_STATE;
		}
	}
	km_p11_logout_tickets(jobs, n);
	if (ok > 0 && !so && km_p11.logged_in) {
		km_p11_lock(km_p11.lock);
		km_secure_strfree(km_p11.pin);
		km_p11.pin = np;
		np = NULL;
		km_p11_unlock(km_p11.lock);
	}
	pthread_mutex_unlock(&km_p11_login_lock);
	if (ok < n) {
		km_log_warn("P11-SETPIN",
		    "the %s PIN changed on %zu of %zu nodes; not on: %s",
		    so ? "SO" : "user", ok, n, missing);
	}
	rv = ok >= km_p11_quorum_min() ? CKR_OK
	    : pin_bad                  ? CKR_PIN_INVALID
	                               : CKR_DEVICE_ERROR;
out:
	km_secure_strfree(op);
	km_secure_strfree(np);
	return rv;
}

/*
 * C_InitPIN: the SO sets the user PIN on every node it holds an SO ticket
 * for.  A node that was down (or refused) keeps its old user PIN and so
 * refuses the new one: the log line names it, and running C_InitPIN again
 * when it is back (or the admin's keymesh pin init) brings it in line.
 * Fewer than the threshold of nodes taking the PIN is CKR_DEVICE_ERROR.
 */
CK_RV
km_p11_init_pin(km_p11_session *s, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	uint8_t t[KM_MESH_MAX_NODES][KM_PROTO_TICKET_LEN];
	bool have[KM_MESH_MAX_NODES];
	size_t i, n = km_mesh_count(km_p11.mesh), ok = 0, off = 0;
	char *p = NULL, msg[160], missing[400] = "";
	bool bad_pin = false;
	CK_RV rv;
	int r;

	if (!(s->flags & CKF_RW_SESSION)) {
		return CKR_SESSION_READ_ONLY;
	}
	if (!km_p11_so_logged_in()) {
		return CKR_USER_NOT_LOGGED_IN;
	}
	return_val_if_fail(pin != NULL || len == 0, CKR_ARGUMENTS_BAD);
	if (pin == NULL || len < KM_P11_PIN_MIN || len > KM_P11_PIN_MAX
	    || !km_p11_pin_ok(pin, len)) {
		return CKR_PIN_LEN_RANGE;
	}
	if ((p = km_secure_alloc(len + 1)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	memcpy(p, pin, len);
	pthread_mutex_lock(&km_p11_login_lock);
	km_p11_lock(km_p11.lock);
	memcpy(t, km_p11.ticket, sizeof(t));
	memcpy(have, km_p11.have_ticket, sizeof(have));
	km_p11_unlock(km_p11.lock);
	for (i = 0; i < n; i++) {
		if (!have[i]) {
			km_p11_name_node(
			    missing, sizeof(missing), &off, i, KM_ERR_AUTH);
			continue;
		}
		r = km_ops_init_pin(km_mesh_client(km_p11.mesh, i), t[i],
		    KM_PROTO_USER_USER, km_p11.conf.partition, p,
		    (int)km_p11.conf.timeout_ms, msg, sizeof(msg));
		if (r == 0) {
			ok++;
			continue;
		}
		bad_pin |= r == KM_ERR_INVALID_ARG;
		km_log_warn("P11-INITPIN", "%s refused the user PIN: %s",
		    km_mesh_name(km_p11.mesh, i), msg);
		km_p11_name_node(missing, sizeof(missing), &off, i, r);
	}
	pthread_mutex_unlock(&km_p11_login_lock);
	km_secret_wipe(t, sizeof(t));
	if (ok < km_p11_quorum_min()) {
		km_log_error("P11-QUORUM",
		    "C_InitPIN: the user PIN was set on %zu of %zu nodes, "
		    "%zu needed; not on: %s",
		    ok, n, km_p11_quorum_min(), missing);
		rv = bad_pin && ok == 0 ? CKR_PIN_LEN_RANGE : CKR_DEVICE_ERROR;
	} else {
		if (ok < n) {
			km_log_warn("P11-INITPIN",
			    "the user PIN was set on %zu of %zu nodes; not "
			    "on: %s (they refuse the new PIN until C_InitPIN "
			    "is repeated or the admin runs keymesh pin init)",
			    ok, n, missing);
		}
		rv = CKR_OK;
	}
	km_secret_free(p, len + 1);
	return rv;
}

km_mesh *
km_p11_admin(void)
{
	char err[300];
	km_mesh *m = NULL;
	int r;

	km_p11_lock(km_p11.lock);
	m = km_p11.admin;
	km_p11_unlock(km_p11.lock);
	if (m != NULL) {
		return m;
	}
	if (km_p11.conf.admin_cert[0] == '\0') {
		km_log_warn("P11-NO-ADMIN",
		    "%s has no [admin] section: key generation and key "
		    "destruction need the mesh admin identity",
		    km_p11.conf.path);
		return NULL;
	}
	if ((r = km_p11_mesh_open(KM_ROLE_ADMIN, &m, err, sizeof(err))) != 0) {
		km_log_warn_r(
		    r, "P11-NO-ADMIN", "cannot open the admin mesh: %s", err);
		return NULL;
	}
	km_p11_lock(km_p11.lock);
	if (km_p11.admin == NULL) {
		km_p11.admin = m;
		m = NULL;
	}
	km_p11_unlock(km_p11.lock);
	km_mesh_close(m);
	return km_p11.admin;
}
