/*
 * keymesh-pkcs11.so after fork(), against a live dev mesh (5 keymeshd,
 * threshold 3): a child that calls C_Initialize reaches the mesh through
 * the keymesh-p11-relay helper (net/relay.h) and can do everything the
 * parent can; a child that does not gets CKR_CRYPTOKI_NOT_INITIALIZED;
 * the parent goes on; a grandchild works; no helper outlives its process.
 * Also the relay's frame decoder, and bad frames sent to a live helper.
 *
 * Each child reports failures as bits of its exit status, so a failing
 * check names itself in the parent's assertion.
 *
 * Environment: KM_BUILDDIR, KEYMESH_RELAY (set by make check).  Exits 77
 * when SoftHSM is missing.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#include "kmt-mesh.h"
#include "kmt-p11.h"
#include "kmt.h"
#include "net/relay.h"
#include "pkcs11/p11-3.h"
#include "util/buf.h"
#include "util/err.h"

static kmt_mesh mesh;
static CK_FUNCTION_LIST_PTR p11;
static CK_RV (*get_interface)(
    CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
static void *dl;
static CK_SESSION_HANDLE sess;

/* ---- fixture ---- */

static int
setup(void)
{
	const char *b = getenv("KM_BUILDDIR");

	if (kmt_mesh_up(&mesh, 5, 3) != 0) {
		return -1;
	}
	if (kmt_run("'%s' key create --type rsa:2048 --label rsa >/dev/null "
	            "2>&1",
	        kmt_keymesh())
	        != 0
	    || kmt_run("'%s' key create --type ec:p256 --label ec >/dev/null "
	               "2>&1",
	           kmt_keymesh())
	        != 0) {
		return -1;
	}
	if ((dl = kmt_p11_load(b != NULL ? b : KM_BUILDDIR, &p11)) == NULL) {
		return -1;
	}
	get_interface = (CK_RV(*)(CK_UTF8CHAR_PTR, CK_VERSION_PTR,
	    CK_INTERFACE_PTR_PTR, CK_FLAGS))dlsym(dl, "C_GetInterface");
	if (get_interface == NULL) {
		return -1;
	}
	return 0;
}

static CK_RV
login(CK_SESSION_HANDLE *s)
{
	CK_RV rv;

	if ((rv = p11->C_OpenSession(
	         1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s))
	    != CKR_OK) {
		return rv;
	}
	return p11->C_Login(
	    *s, CKU_USER, (CK_UTF8CHAR_PTR)mesh.pin, strlen(mesh.pin));
}

static double now_ms(void);

/* The parent's own figures, beside the child's (test_child prints). */
static int
suite_login(void)
{
	double t0 = now_ms(), t1, t2;

	if (p11->C_Initialize(NULL) != CKR_OK) {
		return -1;
	}
	t1 = now_ms();
	if (login(&sess) != CKR_OK) {
		return -1;
	}
	t2 = now_ms();
	printf("\nparent: C_Initialize %.1f ms, login %.1f ms\n", t1 - t0,
	    t2 - t1);
	return 0;
}

static int
suite_fini(void)
{
	return p11->C_Finalize(NULL) == CKR_OK ? 0 : -1;
}

static CK_OBJECT_HANDLE
find1(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
	return kmt_p11_find1(p11, s, cls, label);
}

static EVP_PKEY *
pubkey(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
	return kmt_p11_pubkey(p11, s, h);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* C_Sign SHA256-RSA-PKCS, verified with OpenSSL; 0 when good. */
static int
sign_rsa(CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE priv = find1(s, CKO_PRIVATE_KEY, "rsa");
	EVP_PKEY *pk = pubkey(s, find1(s, CKO_PUBLIC_KEY, "rsa"));
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	uint8_t data[48], sig[512];
	CK_ULONG siglen = sizeof(sig);
	EVP_MD_CTX *md = NULL;
	int bad = 1;

	RAND_bytes(data, sizeof(data));
	if (priv == CK_INVALID_HANDLE || pk == NULL
	    || p11->C_SignInit(s, &m, priv) != CKR_OK
	    || p11->C_Sign(s, data, sizeof(data), sig, &siglen) != CKR_OK
	    || (md = EVP_MD_CTX_new()) == NULL) {
		goto out;
	}
	bad = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) != 1
	    || EVP_DigestVerify(md, sig, siglen, data, sizeof(data)) != 1;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return bad;
}

/* C_Decrypt OAEP (SHA-256) of what OpenSSL encrypted; 0 when good. */
static int
decrypt_oaep(CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE priv = find1(s, CKO_PRIVATE_KEY, "rsa");
	EVP_PKEY *pk = pubkey(s, find1(s, CKO_PUBLIC_KEY, "rsa"));
	CK_RSA_PKCS_OAEP_PARAMS o
	    = { CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0 };
	CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &o, sizeof(o) };
	uint8_t msg[32], ct[512], pt[512];
	size_t ctlen = sizeof(ct);
	CK_ULONG ptlen = sizeof(pt);
	EVP_PKEY_CTX *pc = NULL;
	int bad = 1;

	RAND_bytes(msg, sizeof(msg));
	if (priv == CK_INVALID_HANDLE || pk == NULL
	    || (pc = EVP_PKEY_CTX_new(pk, NULL)) == NULL
	    || EVP_PKEY_encrypt_init(pc) != 1
	    || EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1
	    || EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) != 1
	    || EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) != 1
	    || EVP_PKEY_encrypt(pc, ct, &ctlen, msg, sizeof(msg)) != 1) {
		goto out;
	}
	if (p11->C_DecryptInit(s, &m, priv) != CKR_OK
	    || p11->C_Decrypt(s, ct, (CK_ULONG)ctlen, pt, &ptlen) != CKR_OK) {
		goto out;
	}
	bad = ptlen != sizeof(msg) || memcmp(pt, msg, sizeof(msg)) != 0;
out:
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(pk);
	return bad;
}

/* ECDH with the mesh key "ec" against OpenSSL's; 0 when the same. */
static int
derive_ecdh(CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE priv = find1(s, CKO_PRIVATE_KEY, "ec");
	EVP_PKEY *mine = pubkey(s, find1(s, CKO_PUBLIC_KEY, "ec"));
	EVP_PKEY *peer = EVP_EC_gen("P-256");
	EVP_PKEY_CTX *pc = NULL;
	uint8_t pt[65], want[32], got[64];
	size_t ptlen = 0, wl = sizeof(want);
	CK_ECDH1_DERIVE_PARAMS p = { CKD_NULL, 0, NULL, 65, pt };
	CK_MECHANISM m = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_SENSITIVE, &no, 1 },
		{ CKA_EXTRACTABLE, &yes, 1 },
	};
	CK_ATTRIBUTE v = { CKA_VALUE, got, sizeof(got) };
	CK_OBJECT_HANDLE h;
	int bad = 1;

	if (priv == CK_INVALID_HANDLE || mine == NULL || peer == NULL
	    || EVP_PKEY_get_octet_string_param(
	           peer, "encoded-pub-key", pt, sizeof(pt), &ptlen)
	        != 1
	    || ptlen != 65 || (pc = EVP_PKEY_CTX_new(peer, NULL)) == NULL
	    || EVP_PKEY_derive_init(pc) != 1
	    || EVP_PKEY_derive_set_peer(pc, mine) != 1
	    || EVP_PKEY_derive(pc, want, &wl) != 1) {
		goto out;
	}
	if (p11->C_DeriveKey(s, &m, priv, t, 4, &h) != CKR_OK
	    || p11->C_GetAttributeValue(s, h, &v, 1) != CKR_OK) {
		goto out;
	}
	(void)p11->C_DestroyObject(s, h);
	bad = v.ulValueLen != wl || memcmp(got, want, wl) != 0;
out:
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(peer);
	return bad;
}

/*
 * Relay helpers of this test (argv[1] is our mesh's config), whose parent
 * is @ppid (0: any).  Returns how many there are; @first gets one's pid.
 */
static int
count_relays(pid_t ppid, pid_t *first)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[300], buf[8192], comm[64];
	FILE *f;
	size_t n;
	long pid, pp, self;
	char state;
	int count = 0;

	if (d == NULL) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if ((pid = strtol(e->d_name, NULL, 10)) <= 0) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if ((f = fopen(path, "r")) == NULL) {
			continue;
		}
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* "PID (COMM) S PPID": the comm is cut to 15 bytes */
		if (sscanf(
		        buf, "%ld (%63[^)]) %c %ld", &self, comm, &state, &pp)
		        != 4
		    || strcmp(comm, "keymesh-p11-rel") != 0
		    || (ppid != 0 && pp != (long)ppid) || state == 'Z') {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		if ((f = fopen(path, "r")) == NULL) {
			continue;
		}
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* argv[0] NUL argv[1] */
		if (strlen(buf) + 1 < n
		    && strcmp(buf + strlen(buf) + 1, mesh.conf) == 0) {
			if (count++ == 0 && first != NULL) {
				*first = (pid_t)pid;
			}
		}
	}
	closedir(d);
	return count;
}

/* Wait (up to @ms) until no relay helper of ours is left. */
static int
relays_gone(int ms)
{
	int i, n = -1;

	for (i = 0; i < ms / 50; i++) {
		if ((n = count_relays(0, NULL)) == 0) {
			return 0;
		}
		usleep(50 * 1000);
	}
	return n;
}

static int
wait_child(pid_t pid)
{
	int st = 0;

	if (waitpid(pid, &st, 0) != pid) {
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- frames (no mesh needed) ---- */

static void
test_frame_codec(void)
{
	km_relay_frame f, g;
	km_buf b;
	uint8_t body[3] = { 1, 2, 3 };

	km_buf_init(&b);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_REQUEST;
	f.id = 7;
	f.channel = 1;
	f.node = 4;
	f.timeout_ms = 2000;
	f.body = body;
	f.body_len = 3;
	CU_ASSERT_FATAL(km_relay_frame_encode(&b, &f) == 0);
	CU_ASSERT(b.len == 4 + 1 + 4 + 1 + 1 + 4 + 4 + 3);
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g) == 0);
	CU_ASSERT(g.type == KM_RELAY_REQUEST && g.id == 7 && g.channel == 1
	    && g.node == 4 && g.timeout_ms == 2000 && g.body_len == 3
	    && memcmp(g.body, body, 3) == 0);
	/* trailing byte, short, unknown type */
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 3, &g)
	    == KM_ERR_BAD_FORMAT);
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 5, &g)
	    == KM_ERR_BAD_FORMAT);
	b.data[4] = 99;
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_FORMAT);
	b.data[4] = KM_RELAY_REQUEST;
	/* out-of-range fields: channel, node, timeout 0 */
	b.data[9] = 2;
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_FORMAT);
	b.data[9] = 1;
	b.data[10] = 32;
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_FORMAT);
	b.data[10] = 4;
	memset(b.data + 11, 0, 4);
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_FORMAT);
	/* a body length past the frame */
	b.data[11 + 3] = 1;
	b.data[15 + 3] = 200;
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_FORMAT);
	/* the encoder refuses what the decoder would */
	km_buf_reset(&b);
	f.channel = 2;
	CU_ASSERT(km_relay_frame_encode(&b, &f) == KM_ERR_INVALID_ARG);
	/* reply with an error code and a peer; an unknown code is refused */
	km_buf_reset(&b);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_REPLY;
	f.id = 9;
	f.code = KM_ERR_TIMEOUT;
	snprintf(f.peer, sizeof(f.peer), "node3");
	CU_ASSERT_FATAL(km_relay_frame_encode(&b, &f) == 0);
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g) == 0
	    && g.code == KM_ERR_TIMEOUT && strcmp(g.peer, "node3") == 0);
	b.data[4 + 1 + 4 + 3] = 200;
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_FORMAT);
	/* HELLO: the version is checked */
	km_buf_reset(&b);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_HELLO;
	f.version = 2;
	f.nodes = 5;
	CU_ASSERT_FATAL(km_relay_frame_encode(&b, &f) == 0);
	CU_ASSERT(km_relay_frame_decode(b.data + 4, b.len - 4, &g)
	    == KM_ERR_BAD_VERSION);
	km_buf_free(&b);
}

/* The stream reader: split frames, a zero or huge length. */
static void
test_frame_reader(void)
{
	km_relay_rx rx;
	km_relay_frame f;
	km_buf b;
	int sv[2];
	static const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	km_buf_init(&b);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_STATUS;
	f.connected[0] = 0x1f;
	CU_ASSERT(km_relay_frame_encode(&b, &f) == 0);
	CU_ASSERT(km_relay_frame_encode(&b, &f) == 0);
	km_relay_rx_init(&rx);
	/* one byte short of two frames: one frame, then "need more" */
	CU_ASSERT(km_relay_send(sv[0], b.data, b.len - 1) == 0);
	CU_ASSERT(km_relay_rx_fill(&rx, sv[1]) == 0);
	CU_ASSERT(km_relay_rx_next(&rx, &f) == 0 && f.connected[0] == 0x1f);
	CU_ASSERT(km_relay_rx_next(&rx, &f) == KM_ERR_NOT_FOUND);
	CU_ASSERT(km_relay_send(sv[0], b.data + b.len - 1, 1) == 0);
	CU_ASSERT(km_relay_rx_fill(&rx, sv[1]) == 0);
	CU_ASSERT(km_relay_rx_next(&rx, &f) == 0);
	CU_ASSERT(km_relay_rx_next(&rx, &f) == KM_ERR_NOT_FOUND);
	/* a length over the limit is refused before any payload */
	CU_ASSERT(km_relay_send(sv[0], huge, 4) == 0);
	CU_ASSERT(km_relay_rx_fill(&rx, sv[1]) == 0);
	CU_ASSERT(km_relay_rx_next(&rx, &f) == KM_ERR_TOO_LARGE);
	close(sv[0]);
	km_relay_rx_free(&rx);
	km_relay_rx_init(&rx);
	CU_ASSERT(km_relay_rx_fill(&rx, sv[1]) == KM_ERR_CLOSED);
	km_relay_rx_free(&rx);
	close(sv[1]);
	/* writing to a closed peer is an error, not SIGPIPE */
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	close(sv[1]);
	CU_ASSERT(km_relay_send(sv[0], b.data, b.len) == KM_ERR_CONN);
	close(sv[0]);
	km_buf_free(&b);
}

/*
 * A live helper, spawned by hand: it says HELLO, answers a request for a
 * node it does not have with an error reply, and exits with status 1 on a
 * bad frame (and 0 on end of stream).
 */
static pid_t
spawn_helper(int *fd)
{
	const char *helper = km_net_relay_helper_path();
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		return -1;
	}
	if ((pid = fork()) == 0) {
		dup2(sv[1], 3);
		execl(helper, "keymesh-p11-relay", mesh.conf, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* Read frames until one of @type comes (5 s). */
static int
read_frame(km_relay_rx *rx, int fd, uint8_t type, km_relay_frame *f)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int i, r;

	for (i = 0; i < 100; i++) {
		while ((r = km_relay_rx_next(rx, f)) == 0) {
			if (f->type == type) {
				return 0;
			}
		}
		if (r != KM_ERR_NOT_FOUND) {
			return r;
		}
		if (poll(&p, 1, 50) > 0
		    && (r = km_relay_rx_fill(rx, fd)) != 0) {
			return r;
		}
	}
	return KM_ERR_TIMEOUT;
}

static void
test_helper_bad_frames(void)
{
	static const uint8_t zero_len[4] = { 0, 0, 0, 0 };
	static const uint8_t bad_type[6] = { 0, 0, 0, 2, 42, 0 };
	km_relay_frame f;
	km_relay_rx rx;
	km_buf b;
	int fd;
	pid_t pid;

	/* a valid request for node 31: an error reply, the helper goes on */
	CU_ASSERT_FATAL((pid = spawn_helper(&fd)) > 0);
	km_relay_rx_init(&rx);
	CU_ASSERT(
	    read_frame(&rx, fd, KM_RELAY_HELLO, &f) == 0 && f.nodes == 5);
	km_buf_init(&b);
	memset(&f, 0, sizeof(f));
	f.type = KM_RELAY_REQUEST;
	f.id = 5;
	f.node = 31;
	f.timeout_ms = 1000;
	CU_ASSERT(km_relay_frame_encode(&b, &f) == 0);
	CU_ASSERT(km_relay_send(fd, b.data, b.len) == 0);
	CU_ASSERT(read_frame(&rx, fd, KM_RELAY_REPLY, &f) == 0 && f.id == 5
	    && f.code == KM_ERR_RANGE);
	/* end of stream: a clean exit */
	close(fd);
	CU_ASSERT(wait_child(pid) == 0);
	km_relay_rx_free(&rx);
	/* a zero length, an unknown type: the helper closes, status 1 */
	CU_ASSERT_FATAL((pid = spawn_helper(&fd)) > 0);
	km_relay_rx_init(&rx);
	CU_ASSERT(read_frame(&rx, fd, KM_RELAY_HELLO, &f) == 0);
	CU_ASSERT(km_relay_send(fd, zero_len, 4) == 0);
	CU_ASSERT(read_frame(&rx, fd, KM_RELAY_REPLY, &f) == KM_ERR_CLOSED);
	CU_ASSERT(wait_child(pid) == 1);
	close(fd);
	km_relay_rx_free(&rx);
	CU_ASSERT_FATAL((pid = spawn_helper(&fd)) > 0);
	km_relay_rx_init(&rx);
	CU_ASSERT(read_frame(&rx, fd, KM_RELAY_HELLO, &f) == 0);
	CU_ASSERT(km_relay_send(fd, bad_type, sizeof(bad_type)) == 0);
	CU_ASSERT(read_frame(&rx, fd, KM_RELAY_REPLY, &f) == KM_ERR_CLOSED);
	CU_ASSERT(wait_child(pid) == 1);
	close(fd);
	km_relay_rx_free(&rx);
	km_buf_free(&b);
}

/* ---- fork ---- */

static void
test_interface_not_fork_safe(void)
{
	CK_INTERFACE_PTR i = NULL;

	/* a child must call C_Initialize again: not CKF_INTERFACE_FORK_SAFE */
	CU_ASSERT(get_interface((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &i,
	              CKF_INTERFACE_FORK_SAFE)
	    == CKR_ARGUMENTS_BAD);
	CU_ASSERT(get_interface(NULL, NULL, &i, CKF_INTERFACE_FORK_SAFE)
	    == CKR_ARGUMENTS_BAD);
	CU_ASSERT(get_interface(NULL, NULL, &i, 0) == CKR_OK && i != NULL
	    && !(i->flags & CKF_INTERFACE_FORK_SAFE));
}

static void
test_parent_signs(void)
{
	double t0 = now_ms();

	CU_ASSERT(sign_rsa(sess) == 0);
	printf("parent: first verified signature %.1f ms\n", now_ms() - t0);
	/* the parent uses nng in-process: no helper */
	CU_ASSERT(count_relays(getpid(), NULL) == 0);
}

/* The child's part of test_child: everything through the relay. */
static int
child_work(bool timing)
{
	CK_SESSION_HANDLE s;
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	pid_t relay = 0;
	double t0, ti, tc, tl, t1;
	int code = 0;

	if (p11->C_GetSlotList(CK_TRUE, &slot, &n)
	    != CKR_CRYPTOKI_NOT_INITIALIZED) {
		code |= 1;
	}
	t0 = now_ms();
	if (p11->C_Initialize(NULL) != CKR_OK) {
		return 2;
	}
	ti = now_ms();
	if (count_relays(getpid(), &relay) != 1) {
		code |= 4;
	}
	tc = now_ms();
	if (login(&s) != CKR_OK) {
		code |= 8;
	}
	tl = now_ms();
	if (find1(s, CKO_PRIVATE_KEY, "rsa") == CK_INVALID_HANDLE) {
		code |= 16;
	}
	if (sign_rsa(s) != 0) {
		code |= 32;
	}
	t1 = now_ms();
	if (timing) {
		printf("child: C_Initialize %.1f ms, login %.1f ms, first "
		       "verified signature %.1f ms (total %.1f ms)\n",
		    ti - t0, tl - tc, t1 - tl, t1 - t0 - (tc - ti));
		t0 = now_ms();
		(void)sign_rsa(s);
		printf("child: next signature %.1f ms\n", now_ms() - t0);
		fflush(stdout);
	}
	if (decrypt_oaep(s) != 0) {
		code |= 64;
	}
	if (derive_ecdh(s) != 0) {
		code |= 128;
	}
	if (p11->C_Finalize(NULL) != CKR_OK) {
		code |= 2;
	}
	/* C_Finalize reaped its helper (by its pid) */
	if (relay > 0 && kill(relay, 0) == 0) {
		code |= 4;
	}
	return code;
}

static void
test_child(void)
{
	pid_t pid;

	fflush(stdout);
	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		_exit(child_work(true));
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	/* the parent goes on */
	CU_ASSERT(sign_rsa(sess) == 0);
	CU_ASSERT(relays_gone(3000) == 0);
}

static void
test_child_no_init(void)
{
	CK_OBJECT_HANDLE priv = find1(sess, CKO_PRIVATE_KEY, "rsa");
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	pid_t pid;

	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		CK_SESSION_HANDLE s;
		CK_TOKEN_INFO ti;
		int code = 0;

		if (p11->C_SignInit(sess, &m, priv)
		    != CKR_CRYPTOKI_NOT_INITIALIZED) {
			code |= 1;
		}
		if (p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s)
		    != CKR_CRYPTOKI_NOT_INITIALIZED) {
			code |= 2;
		}
		if (p11->C_GetTokenInfo(1, &ti)
		    != CKR_CRYPTOKI_NOT_INITIALIZED) {
			code |= 4;
		}
		if (p11->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) {
			code |= 8;
		}
		/* and no helper was started */
		if (count_relays(getpid(), NULL) != 0) {
			code |= 16;
		}
		_exit(code);
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	CU_ASSERT(sign_rsa(sess) == 0);
}

static void
test_grandchild(void)
{
	pid_t pid;

	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		CK_SESSION_HANDLE s;
		pid_t g, relay = 0;
		int code = 0, st;

		if (p11->C_Initialize(NULL) != CKR_OK || login(&s) != CKR_OK
		    || sign_rsa(s) != 0) {
			_exit(1);
		}
		(void)count_relays(getpid(), &relay);
		if ((g = fork()) == 0) {
			/* a new relay for the grandchild */
			int gc = 0;

			if (p11->C_Initialize(NULL) != CKR_OK) {
				_exit(1);
			}
			if (count_relays(getpid(), NULL) != 1) {
				gc |= 2;
			}
			if (login(&s) != CKR_OK || sign_rsa(s) != 0) {
				gc |= 4;
			}
			if (derive_ecdh(s) != 0) {
				gc |= 8;
			}
			if (p11->C_Finalize(NULL) != CKR_OK) {
				gc |= 16;
			}
			_exit(gc);
		}
		st = wait_child(g);
		code |= st != 0 ? 2 : 0;
		/* the child's own relay is untouched by the grandchild */
		if (relay == 0 || kill(relay, 0) != 0 || sign_rsa(s) != 0) {
			code |= 4;
		}
		if (p11->C_Finalize(NULL) != CKR_OK) {
			code |= 8;
		}
		_exit(code | (st != 0 ? (st & 0x1f) << 3 : 0));
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	CU_ASSERT(relays_gone(3000) == 0);
	CU_ASSERT(sign_rsa(sess) == 0);
}

/* A child that exits without C_Finalize: its helper sees end of stream. */
static void
test_child_exit_without_finalize(void)
{
	pid_t pid;

	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		CK_SESSION_HANDLE s;

		_exit(p11->C_Initialize(NULL) != CKR_OK || login(&s) != CKR_OK
		    || sign_rsa(s) != 0);
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	CU_ASSERT(relays_gone(3000) == 0);
}

/* No helper: C_Initialize fails clearly, and works once it is there. */
static void
test_child_no_helper(void)
{
	const char *good = getenv("KEYMESH_RELAY");
	pid_t pid;

	CU_ASSERT_FATAL(good != NULL);
	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		char keep[4096];
		CK_SESSION_HANDLE s;
		int code = 0;

		snprintf(keep, sizeof(keep), "%s", good);
		setenv("KEYMESH_RELAY", "/nonexistent/keymesh-p11-relay", 1);
		setenv("KEYMESH_LOG", "none", 1);
		if (p11->C_Initialize(NULL) != CKR_DEVICE_ERROR) {
			code |= 1;
		}
		setenv("KEYMESH_RELAY", keep, 1);
		if (p11->C_Initialize(NULL) != CKR_OK || login(&s) != CKR_OK
		    || sign_rsa(s) != 0) {
			code |= 2;
		}
		if (p11->C_Finalize(NULL) != CKR_OK) {
			code |= 4;
		}
		_exit(code);
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	CU_ASSERT(relays_gone(3000) == 0);
}

/* Key generation (EC, DKG) and destruction through the admin identity. */
static void
test_child_keygen(void)
{
	pid_t pid;

	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
			0xce, 0x3d, 0x03, 0x01, 0x07 };
		CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
		CK_BBOOL yes = CK_TRUE;
		CK_ATTRIBUTE pubt[] = {
			{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		};
		CK_ATTRIBUTE privt[] = {
			{ CKA_LABEL, (void *)"fork-ec", 7 },
			{ CKA_DERIVE, &yes, 1 },
		};
		CK_OBJECT_HANDLE pub, priv;
		CK_SESSION_HANDLE s;
		int code = 0;

		if (p11->C_Initialize(NULL) != CKR_OK || login(&s) != CKR_OK) {
			_exit(1);
		}
		if (p11->C_GenerateKeyPair(
		        s, &m, pubt, 1, privt, 2, &pub, &priv)
		    != CKR_OK) {
			code |= 2;
		} else {
			if (find1(s, CKO_PRIVATE_KEY, "fork-ec") != priv) {
				code |= 4;
			}
			if (p11->C_DestroyObject(s, priv) != CKR_OK) {
				code |= 8;
			}
		}
		if (p11->C_Finalize(NULL) != CKR_OK) {
			code |= 16;
		}
		_exit(code);
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	CU_ASSERT(relays_gone(3000) == 0);
}

/*
 * After the parent finalised: nng stays started in the parent, so a child
 * that initialises from scratch goes through a relay as well.
 */
static void
test_child_after_parent_finalize(void)
{
	pid_t pid;

	CU_ASSERT_FATAL((pid = fork()) >= 0);
	if (pid == 0) {
		CK_SESSION_HANDLE s;
		int code = 0;

		if (p11->C_Initialize(NULL) != CKR_OK) {
			_exit(1);
		}
		if (count_relays(getpid(), NULL) != 1) {
			code |= 2;
		}
		if (login(&s) != CKR_OK || sign_rsa(s) != 0) {
			code |= 4;
		}
		if (p11->C_Finalize(NULL) != CKR_OK) {
			code |= 8;
		}
		_exit(code);
	}
	CU_ASSERT_EQUAL(wait_child(pid), 0);
	CU_ASSERT(relays_gone(3000) == 0);
	/* and the parent itself initialises again, in-process */
	CU_ASSERT_FATAL(p11->C_Initialize(NULL) == CKR_OK);
	CU_ASSERT(login(&sess) == CKR_OK);
	CU_ASSERT(sign_rsa(sess) == 0);
	CU_ASSERT(count_relays(getpid(), NULL) == 0);
	CU_ASSERT(p11->C_Finalize(NULL) == CKR_OK);
}

/* ---- suites ---- */

static const kmt_test frame_tests[] = {
	{ "codec", test_frame_codec },
	{ "reader", test_frame_reader },
	{ "helper_bad_frames", test_helper_bad_frames },
	KMT_END,
};

static const kmt_test fork_tests[] = {
	{ "interface_not_fork_safe", test_interface_not_fork_safe },
	{ "parent_signs", test_parent_signs },
	{ "child", test_child },
	{ "child_no_init", test_child_no_init },
	{ "grandchild", test_grandchild },
	{ "child_exit_without_finalize", test_child_exit_without_finalize },
	{ "child_keygen", test_child_keygen },
	{ "child_no_helper", test_child_no_helper },
	KMT_END,
};

static const kmt_test after_tests[] = {
	{ "child_after_parent_finalize", test_child_after_parent_finalize },
	KMT_END,
};

static const kmt_suite suites[] = {
	{ "relay-frames", NULL, NULL, frame_tests },
	{ "p11-fork", suite_login, suite_fini, fork_tests },
	{ "p11-fork-after", NULL, NULL, after_tests },
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
