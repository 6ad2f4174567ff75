/*
 * PIN verifiers and login tickets.
 *
 * Each daemon keeps, per partition, its own salted scrypt verifiers of the
 * user PIN and of the security officer's (SO) PIN (RFC 7914; N=2^14, r=8,
 * p=1, 16-byte salt, 32-byte output) in its state directory, never the
 * PINs: STATE/pin-PARTITION and STATE/sopin-PARTITION.  A successful login
 * returns a random 32-byte ticket bound to the client's certificate, the
 * partition and the user type, so a PIN costs one scrypt per login, not
 * one per operation; a ticket shown by another client is refused, and an
 * SO ticket serves PIN management only, never a key operation.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "daemon/kmd.h"
#include "proto/proto.h"
#include "util/err.h"
#include "util/secmem.h"
#include "util/util.h"

#define RET_OSSL_OK 1

#define KMD_PIN_SALT 16
#define KMD_PIN_HASH 32
#define KMD_PIN_N 16384u
#define KMD_PIN_R 8u
#define KMD_PIN_P 1u
#define KMD_PIN_MIN 4
#define KMD_PIN_MAX 64
#define KMD_TICKETS_MAX 4096

static int kmd_pin_check_once(kmd_state *st, const char *partition,
    uint32_t user, const char *pin);

static int
kmd_pin_scrypt(const char *pin, const uint8_t salt[KMD_PIN_SALT],
    uint64_t n, uint32_t rr, uint32_t p, uint8_t out[KMD_PIN_HASH])
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[6], *q = params;
	int r = KM_ERR_CRYPTO;

	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL ||
	    (ctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		goto out;
	}
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	    (void *)pin, strlen(pin));
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)salt, KMD_PIN_SALT);
	*q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr);
	*q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	*q = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, KMD_PIN_HASH, params) != RET_OSSL_OK) {
		goto out;
	}
	r = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return r;
}

bool
kmd_user_valid(uint32_t user)
{
	return user == KM_PROTO_USER_SO || user == KM_PROTO_USER_USER;
}

const char *
kmd_user_name(uint32_t user)
{
	return user == KM_PROTO_USER_SO ? "SO" : "user";
}

static int
kmd_pin_path(const kmd_state *st, const char *partition, uint32_t user,
    char *out, size_t outlen)
{
	int n;

	if (!km_name_valid(partition) || !kmd_user_valid(user)) {
		return KM_ERR_INVALID_ARG;
	}
	/* "sopin-" cannot collide with "pin-" whatever the partition */
	n = snprintf(out, outlen, "%s/%s-%s", st->cfg.state_dir,
	    user == KM_PROTO_USER_SO ? "sopin" : "pin", partition);
	return (n < 0 || (size_t)n >= outlen) ? KM_ERR_TOO_LARGE : 0;
}

bool
kmd_pin_acceptable(const char *pin)
{
	size_t n = pin ? strlen(pin) : 0;

	return n >= KMD_PIN_MIN && n <= KMD_PIN_MAX;
}

int
kmd_pin_set(kmd_state *st, const char *partition, uint32_t user,
    const char *pin)
{
	uint8_t salt[KMD_PIN_SALT], hash[KMD_PIN_HASH];
	char path[4200], line[256], hs[2 * KMD_PIN_SALT + 1],
	    hh[2 * KMD_PIN_HASH + 1];
	int r;

	if (!kmd_pin_acceptable(pin)) {
		return KM_ERR_INVALID_ARG;
	}
	if ((r = kmd_pin_path(st, partition, user, path, sizeof(path))) != 0 ||
	    (r = km_random(salt, sizeof(salt))) != 0 ||
	    (r = kmd_pin_scrypt(pin, salt, KMD_PIN_N, KMD_PIN_R, KMD_PIN_P,
		 hash)) != 0) {
		goto out;
	}
	km_hex(salt, sizeof(salt), hs);
	km_hex(hash, sizeof(hash), hh);
	snprintf(line, sizeof(line), "scrypt %u %u %u %s %s\n", KMD_PIN_N,
	    KMD_PIN_R, KMD_PIN_P, hs, hh);
	r = km_write_file_atomic(path, line, strlen(line), 0600);
out:
	km_secret_wipe(hash, sizeof(hash));
	km_secret_wipe(hh, sizeof(hh));
	km_secret_wipe(line, sizeof(line));
	return r;
}

/*
 * Throttling: after KMD_PIN_TRIES consecutive wrong PINs for a partition
 * and user type, this daemon refuses logins of that type to it for
 * KMD_PIN_LOCK_MS (each daemon on its own, like a token's retry counter,
 * but self-clearing so a guessing attacker gets ~10 tries a minute and an
 * honest user is not locked out for good).  The SO and the user have
 * separate counters, as a token's SO and user PINs do: guessing one does
 * not lock the other out.
 */
#define KMD_PIN_TRIES 10
#define KMD_PIN_LOCK_MS 60000u
#define KMD_PIN_SLOTS 16

static struct {
	char partition[KM_NAME_MAX + 1];
	uint32_t user;
	unsigned failures;
	uint64_t locked_until;
} kmd_pin_fail[KMD_PIN_SLOTS];
static pthread_mutex_t kmd_pin_lock = PTHREAD_MUTEX_INITIALIZER;

static int
kmd_pin_slot(const char *partition, uint32_t user)
{
	int i, free_slot = -1;

	for (i = 0; i < KMD_PIN_SLOTS; i++) {
		if (kmd_pin_fail[i].user == user &&
		    strcmp(kmd_pin_fail[i].partition, partition) == 0) {
			return i;
		}
		if (free_slot < 0 && kmd_pin_fail[i].partition[0] == '\0') {
			free_slot = i;
		}
	}
	if (free_slot >= 0) {
		snprintf(kmd_pin_fail[free_slot].partition,
		    sizeof(kmd_pin_fail[free_slot].partition), "%s", partition);
		kmd_pin_fail[free_slot].user = user;
	}
	return free_slot;
}

uint64_t
kmd_pin_locked_ms(const char *partition, uint32_t user)
{
	uint64_t now = km_now_ms(), left = 0;
	int i;

	pthread_mutex_lock(&kmd_pin_lock);
	if ((i = kmd_pin_slot(partition, user)) >= 0 &&
	    kmd_pin_fail[i].locked_until > now) {
		left = kmd_pin_fail[i].locked_until - now;
	}
	pthread_mutex_unlock(&kmd_pin_lock);
	return left;
}

static void
kmd_pin_record(const char *partition, uint32_t user, bool ok)
{
	int i;

	pthread_mutex_lock(&kmd_pin_lock);
	if ((i = kmd_pin_slot(partition, user)) >= 0) {
		if (ok) {
			kmd_pin_fail[i].failures = 0;
		} else if (++kmd_pin_fail[i].failures >= KMD_PIN_TRIES) {
			kmd_pin_fail[i].failures = 0;
			kmd_pin_fail[i].locked_until = km_now_ms() +
			    KMD_PIN_LOCK_MS;
		}
	}
	pthread_mutex_unlock(&kmd_pin_lock);
}

int
kmd_pin_check(kmd_state *st, const char *partition, uint32_t user,
    const char *pin)
{
	int r = kmd_pin_check_once(st, partition, user, pin);

	if (r == 0 || r == KM_ERR_PIN) {
		kmd_pin_record(partition, user, r == 0);
	}
	return r;
}

static int
kmd_pin_check_once(kmd_state *st, const char *partition, uint32_t user,
    const char *pin)
{
	uint8_t salt[KMD_PIN_SALT], want[KMD_PIN_HASH], got[KMD_PIN_HASH];
	char path[4200], hs[80], hh[80];
	unsigned n, rr, p;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if ((r = kmd_pin_path(st, partition, user, path, sizeof(path))) != 0) {
		return r;
	}
	if ((r = km_read_file(path, &data, &len, 1024)) != 0) {
		/* no verifier: this PIN of the partition was never set */
		return r == KM_ERR_NOT_FOUND ? KM_ERR_STATE : r;
	}
	if (sscanf((char *)data, "scrypt %u %u %u %79s %79s", &n, &rr, &p, hs,
		hh) != 5 ||
	    n < 1024 || n > (1u << 20) || rr == 0 || rr > 32 || p == 0 ||
	    p > 16 || km_unhex(hs, salt, sizeof(salt)) != 0 ||
	    km_unhex(hh, want, sizeof(want)) != 0) {
		r = KM_ERR_BAD_FORMAT;
		goto out;
	}
	if (!kmd_pin_acceptable(pin)) {
		r = KM_ERR_PIN;
		goto out;
	}
	if ((r = kmd_pin_scrypt(pin, salt, n, rr, p, got)) != 0) {
		goto out;
	}
	r = CRYPTO_memcmp(got, want, sizeof(got)) == 0 ? 0 : KM_ERR_PIN;
out:
	km_secret_wipe(got, sizeof(got));
	km_secret_wipe(want, sizeof(want));
	free(data);
	return r;
}

/* ---- tickets ---------------------------------------------------------- */

struct kmd_ticket {
	uint8_t hash[32]; /* SHA-256 of the ticket: the ticket is not kept */
	uint8_t client[32]; /* SHA-256 of the client certificate */
	char partition[KM_NAME_MAX + 1];
	uint32_t user; /* KM_PROTO_USER_*: an SO ticket serves no key */
	uint64_t expires_ms;
};

int
kmd_ticket_issue(kmd_state *st, const km_identity *client,
    const char *partition, uint32_t user, uint8_t ticket[32],
    uint64_t *expires_ms)
{
	uint8_t h[32];
	uint64_t now = km_now_ms();
	size_t i, slot = SIZE_MAX;
	int r;

	if ((r = km_random(ticket, 32)) != 0) {
		return r;
	}
	if (EVP_Digest(ticket, 32, h, NULL, EVP_sha256(), NULL) !=
	    RET_OSSL_OK) {
		return KM_ERR_CRYPTO;
	}
	pthread_mutex_lock(&st->lock);
	for (i = 0; i < st->nticket_slots; i++) {
		if (st->tickets[i].expires_ms <= now) {
			slot = i;
			break;
		}
	}
	if (slot == SIZE_MAX) {
		if (st->nticket_slots == KMD_TICKETS_MAX) {
			pthread_mutex_unlock(&st->lock);
			return KM_ERR_BUSY;
		}
		if (st->nticket_slots == st->ticket_cap) {
			size_t ncap = st->ticket_cap ? st->ticket_cap * 2 : 64;
			kmd_ticket *nt = realloc(st->tickets,
			    ncap * sizeof(*nt));
			if (nt == NULL) {
				pthread_mutex_unlock(&st->lock);
				return KM_ERR_ALLOC;
			}
			st->tickets = nt;
			st->ticket_cap = ncap;
		}
		slot = st->nticket_slots++;
	}
	memcpy(st->tickets[slot].hash, h, 32);
	memcpy(st->tickets[slot].client, client->cert_sha256, 32);
	snprintf(st->tickets[slot].partition,
	    sizeof(st->tickets[slot].partition), "%s", partition);
	st->tickets[slot].user = user;
	st->tickets[slot].expires_ms = now +
	    (uint64_t)st->cfg.login_ticket_s * 1000u;
	*expires_ms = st->tickets[slot].expires_ms;
	pthread_mutex_unlock(&st->lock);
	return 0;
}

/* Finds a live ticket of @client; returns its slot or -1. */
static long
kmd_ticket_find_locked(kmd_state *st, const km_identity *client,
    const uint8_t ticket[32])
{
	uint8_t h[32];
	uint64_t now = km_now_ms();
	size_t i;

	if (EVP_Digest(ticket, 32, h, NULL, EVP_sha256(), NULL) !=
	    RET_OSSL_OK) {
		return -1;
	}
	for (i = 0; i < st->nticket_slots; i++) {
		if (st->tickets[i].expires_ms > now &&
		    CRYPTO_memcmp(st->tickets[i].hash, h, 32) == 0 &&
		    CRYPTO_memcmp(st->tickets[i].client, client->cert_sha256,
			32) == 0) {
			return (long)i;
		}
	}
	return -1;
}

int
kmd_ticket_check(kmd_state *st, const km_identity *client,
    const uint8_t ticket[32], char *partition, size_t partlen,
    uint32_t *user)
{
	long i;

	pthread_mutex_lock(&st->lock);
	i = kmd_ticket_find_locked(st, client, ticket);
	if (i >= 0 && partition != NULL) {
		snprintf(partition, partlen, "%s", st->tickets[i].partition);
	}
	if (i >= 0 && user != NULL) {
		*user = st->tickets[i].user;
	}
	pthread_mutex_unlock(&st->lock);
	return i >= 0 ? 0 : KM_ERR_AUTH;
}

int
kmd_ticket_revoke(kmd_state *st, const km_identity *client,
    const uint8_t ticket[32])
{
	long i;

	pthread_mutex_lock(&st->lock);
	i = kmd_ticket_find_locked(st, client, ticket);
	if (i >= 0) {
		OPENSSL_cleanse(&st->tickets[i], sizeof(st->tickets[i]));
	}
	pthread_mutex_unlock(&st->lock);
	return i >= 0 ? 0 : KM_ERR_AUTH;
}

void
kmd_tickets_free(kmd_state *st)
{
	if (st->tickets != NULL) {
		OPENSSL_cleanse(st->tickets,
		    st->ticket_cap * sizeof(*st->tickets));
	}
	free(st->tickets);
	st->tickets = NULL;
	st->nticket_slots = st->ticket_cap = 0;
}
