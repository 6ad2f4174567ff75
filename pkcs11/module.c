/*
 * The PKCS#11 shim: every C_* entry point is one line into a macro named
 * for what it guarantees (after tpm2-pkcs11), and the function lists are
 * built with designated initializers.  Only C_GetFunctionList,
 * C_GetInterfaceList and C_GetInterface are exported
 * (keymesh-pkcs11.map); the other C_* symbols are local to the module.
 */
#include "config.h"

#include <string.h>

#include "pkcs11/p11-3.h"
#include "pkcs11/p11.h"
#include "util/log.h"

static CK_RV
km_p11_trace(const char *fn, CK_RV rv)
{
	km_debug(KM_DBG_P11, "%s: rv 0x%lx", fn, (unsigned long)rv);
	return rv;
}

/* Checks the library is initialised (in this process), then calls. */
#define KM_P11_WITH_INIT(call)                                                \
	do {                                                                  \
		CK_RV rv_;                                                    \
		if ((rv_ = km_p11_check_init()) != CKR_OK) {                  \
			return km_p11_trace(__func__, rv_);                   \
		}                                                             \
		return km_p11_trace(__func__, (call));                        \
	} while (0)

/*
 * Checks init, looks the session up and holds its lock for the call (so
 * one session's slow mesh operation does not block the others), then
 * releases it.
 */
#define KM_P11_WITH_SESSION(h, fn, ...)                                       \
	do {                                                                  \
		km_p11_session *s_;                                           \
		CK_RV rv_;                                                    \
		if ((rv_ = km_p11_check_init()) != CKR_OK                     \
		    || (rv_ = km_p11_session_get((h), &s_)) != CKR_OK) {      \
			return km_p11_trace(__func__, rv_);                   \
		}                                                             \
		rv_ = fn(s_, ##__VA_ARGS__);                                  \
		km_p11_session_put(s_);                                       \
		return km_p11_trace(__func__, rv_);                           \
	} while (0)

/* As KM_P11_WITH_SESSION, and the user must be logged in. */
#define KM_P11_WITH_SESSION_LOGGED_IN(h, fn, ...)                             \
	do {                                                                  \
		km_p11_session *s_;                                           \
		CK_RV rv_;                                                    \
		if ((rv_ = km_p11_check_init()) != CKR_OK                     \
		    || (rv_ = km_p11_session_get((h), &s_)) != CKR_OK) {      \
			return km_p11_trace(__func__, rv_);                   \
		}                                                             \
		rv_ = km_p11_logged_in() ? fn(s_, ##__VA_ARGS__)              \
		                         : CKR_USER_NOT_LOGGED_IN;            \
		km_p11_session_put(s_);                                       \
		return km_p11_trace(__func__, rv_);                           \
	} while (0)

/* Not applicable to a threshold token: after the init check. */
#define KM_P11_NOT_SUPPORTED() KM_P11_WITH_INIT(CKR_FUNCTION_NOT_SUPPORTED)

/* Session functions not supported: the session must still be valid. */
static CK_RV
km_p11_unsupported(km_p11_session *s)
{
	(void)s;
	return CKR_FUNCTION_NOT_SUPPORTED;
}

/* ---- general ---- */

CK_RV
C_Initialize(CK_VOID_PTR args)
{
	return km_p11_trace(__func__, km_p11_initialize(args));
}

CK_RV
C_Finalize(CK_VOID_PTR reserved)
{
	return km_p11_trace(__func__, km_p11_finalize(reserved));
}

CK_RV
C_GetInfo(CK_INFO_PTR info)
{
	KM_P11_WITH_INIT(km_p11_get_info(info));
}

CK_RV
C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	KM_P11_WITH_INIT(km_p11_get_slot_list(present, list, count));
}

CK_RV
C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	KM_P11_WITH_INIT(km_p11_get_slot_info(slot, info));
}

CK_RV
C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	KM_P11_WITH_INIT(km_p11_get_token_info(slot, info));
}

CK_RV
C_GetMechanismList(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	KM_P11_WITH_INIT(km_p11_get_mechanism_list(slot, list, count));
}

CK_RV
C_GetMechanismInfo(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	KM_P11_WITH_INIT(km_p11_get_mechanism_info(slot, type, info));
}

CK_RV
C_InitToken(
    CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label)
{
	KM_P11_WITH_INIT(km_p11_init_token(slot, pin, len, label));
}

CK_RV
C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	KM_P11_WITH_INIT(km_p11_wait_for_slot_event(flags, slot, reserved));
}

/* ---- sessions and login ---- */

CK_RV
C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out)
{
	KM_P11_WITH_INIT(km_p11_open_session(slot, flags, app, notify, out));
}

CK_RV
C_CloseSession(CK_SESSION_HANDLE h)
{
	KM_P11_WITH_INIT(km_p11_close_session(h));
}

CK_RV
C_CloseAllSessions(CK_SLOT_ID slot)
{
	KM_P11_WITH_INIT(km_p11_close_all_sessions(slot));
}

CK_RV
C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
	KM_P11_WITH_SESSION(h, km_p11_get_session_info, info);
}

CK_RV
C_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG_PTR len)
{
	(void)state;
	(void)len;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG len,
    CK_OBJECT_HANDLE enc, CK_OBJECT_HANDLE auth)
{
	(void)state;
	(void)len;
	(void)enc;
	(void)auth;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_Login(
    CK_SESSION_HANDLE h, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_login, type, pin, len);
}

CK_RV
C_Logout(CK_SESSION_HANDLE h)
{
	KM_P11_WITH_SESSION(h, km_p11_logout);
}

CK_RV
C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_init_pin, pin, len);
}

CK_RV
C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
    CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len)
{
	KM_P11_WITH_SESSION(
	    h, km_p11_set_pin, old_pin, old_len, new_pin, new_len);
}

/* ---- objects ---- */

CK_RV
C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR out)
{
	KM_P11_WITH_SESSION(h, km_p11_create_object, t, n, out);
}

CK_RV
C_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	KM_P11_WITH_SESSION(h, km_p11_copy_object, o, t, n, out);
}

CK_RV
C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	KM_P11_WITH_SESSION(h, km_p11_destroy_object, o);
}

CK_RV
C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ULONG_PTR size)
{
	KM_P11_WITH_SESSION(h, km_p11_get_object_size, o, size);
}

CK_RV
C_GetAttributeValue(
    CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	KM_P11_WITH_SESSION(h, km_p11_get_attribute_value, o, t, n);
}

CK_RV
C_SetAttributeValue(
    CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	KM_P11_WITH_SESSION(h, km_p11_set_attribute_value, o, t, n);
}

CK_RV
C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	KM_P11_WITH_SESSION(h, km_p11_find_objects_init, t, n);
}

CK_RV
C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
    CK_ULONG_PTR count)
{
	KM_P11_WITH_SESSION(h, km_p11_find_objects, out, max, count);
}

CK_RV
C_FindObjectsFinal(CK_SESSION_HANDLE h)
{
	KM_P11_WITH_SESSION(h, km_p11_find_objects_final);
}

/* ---- encryption, decryption ---- */

CK_RV
C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	KM_P11_WITH_SESSION(h, km_p11_encrypt_init, m, key);
}

CK_RV
C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
    CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_encrypt, data, len, out, outlen);
}

CK_RV
C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_encrypt_update, data, len, out, outlen);
}

CK_RV
C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_encrypt_final, out, outlen);
}

CK_RV
C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	KM_P11_WITH_SESSION(h, km_p11_decrypt_init, m, key);
}

CK_RV
C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
    CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_decrypt, data, len, out, outlen);
}

CK_RV
C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_decrypt_update, data, len, out, outlen);
}

CK_RV
C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_decrypt_final, out, outlen);
}

/* ---- digests ---- */

CK_RV
C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m)
{
	KM_P11_WITH_SESSION(h, km_p11_digest_init, m);
}

CK_RV
C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
    CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_digest, data, len, out, outlen);
}

CK_RV
C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_digest_update, data, len);
}

CK_RV
C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
	KM_P11_WITH_SESSION(h, km_p11_digest_key, key);
}

CK_RV
C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	KM_P11_WITH_SESSION(h, km_p11_digest_final, out, outlen);
}

/* ---- signatures ---- */

CK_RV
C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	KM_P11_WITH_SESSION(h, km_p11_sign_init, m, key);
}

CK_RV
C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
    CK_ULONG_PTR siglen)
{
	KM_P11_WITH_SESSION(h, km_p11_sign, data, len, sig, siglen);
}

CK_RV
C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_sign_update, data, len);
}

CK_RV
C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	KM_P11_WITH_SESSION(h, km_p11_sign_final, sig, siglen);
}

CK_RV
C_SignRecoverInit(
    CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	(void)m;
	(void)key;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
    CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
	(void)data;
	(void)len;
	(void)sig;
	(void)siglen;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	KM_P11_WITH_SESSION(h, km_p11_verify_init, m, key);
}

CK_RV
C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
    CK_ULONG siglen)
{
	KM_P11_WITH_SESSION(h, km_p11_verify, data, len, sig, siglen);
}

CK_RV
C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_verify_update, data, len);
}

CK_RV
C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG siglen)
{
	KM_P11_WITH_SESSION(h, km_p11_verify_final, sig, siglen);
}

CK_RV
C_VerifyRecoverInit(
    CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	(void)m;
	(void)key;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG siglen,
    CK_BYTE_PTR data, CK_ULONG_PTR len)
{
	(void)sig;
	(void)siglen;
	(void)data;
	(void)len;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

/* ---- dual-function: not supported ---- */

CK_RV
C_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)in;
	(void)inlen;
	(void)out;
	(void)outlen;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

/* ---- keys ---- */

CK_RV
C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	(void)m;
	(void)t;
	(void)n;
	(void)out;
	/* no secret-key mechanisms: the mesh holds key pairs */
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pubt, CK_ULONG npub, CK_ATTRIBUTE_PTR privt,
    CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	KM_P11_WITH_SESSION_LOGGED_IN(h, km_p11_generate_key_pair, m, pubt,
	    npub, privt, npriv, pub, priv);
}

CK_RV
C_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping,
    CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
	(void)m;
	(void)wrapping;
	(void)key;
	(void)out;
	(void)outlen;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in, CK_ULONG inlen,
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	(void)m;
	(void)unwrapping;
	(void)in;
	(void)inlen;
	(void)t;
	(void)n;
	(void)out;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

CK_RV
C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base,
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	KM_P11_WITH_SESSION(h, km_p11_derive_key, m, base, t, n, out);
}

/* ---- random ---- */

CK_RV
C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_seed_random, seed, len);
}

CK_RV
C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
	KM_P11_WITH_SESSION(h, km_p11_generate_random, out, len);
}

/* ---- legacy parallel functions (PKCS#11 §5.17) ---- */

CK_RV
C_GetFunctionStatus(CK_SESSION_HANDLE h)
{
	(void)h;
	KM_P11_WITH_INIT(CKR_FUNCTION_NOT_PARALLEL);
}

CK_RV
C_CancelFunction(CK_SESSION_HANDLE h)
{
	(void)h;
	KM_P11_WITH_INIT(CKR_FUNCTION_NOT_PARALLEL);
}

/* ---- 3.0 additions ---- */

static CK_RV
km_p11_login_user(km_p11_session *s, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin,
    CK_ULONG len, CK_UTF8CHAR_PTR user, CK_ULONG ulen)
{
	(void)user;
	/* a partition has one user: any user name but none is refused */
	if (ulen > 0) {
		return CKR_ARGUMENTS_BAD;
	}
	return km_p11_login(s, type, pin, len);
}

static CK_RV
C_LoginUser(CK_SESSION_HANDLE h, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin,
    CK_ULONG len, CK_UTF8CHAR_PTR user, CK_ULONG ulen)
{
	KM_P11_WITH_SESSION(h, km_p11_login_user, type, pin, len, user, ulen);
}

static CK_RV
km_p11_session_cancel(km_p11_session *s, CK_FLAGS flags)
{
	(void)flags;
	km_p11_op_reset(&s->op);
	s->active = KM_P11_OP_NONE;
	return CKR_OK;
}

static CK_RV
C_SessionCancel(CK_SESSION_HANDLE h, CK_FLAGS flags)
{
	KM_P11_WITH_SESSION(h, km_p11_session_cancel, flags);
}

/* The message-based functions (3.0 §5.19-5.22) are not offered. */
static CK_RV
C_MessageInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	(void)m;
	(void)k;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_MessageCrypt(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR ad,
    CK_ULONG adl, CK_BYTE_PTR in, CK_ULONG inl, CK_BYTE_PTR out,
    CK_ULONG_PTR outl)
{
	(void)p;
	(void)pl;
	(void)ad;
	(void)adl;
	(void)in;
	(void)inl;
	(void)out;
	(void)outl;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_MessageCryptBegin(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR ad, CK_ULONG adl)
{
	(void)p;
	(void)pl;
	(void)ad;
	(void)adl;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_MessageCryptNext(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR in, CK_ULONG inl, CK_BYTE_PTR out, CK_ULONG_PTR outl,
    CK_FLAGS f)
{
	(void)p;
	(void)pl;
	(void)in;
	(void)inl;
	(void)out;
	(void)outl;
	(void)f;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_MessageFinal(CK_SESSION_HANDLE h)
{
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_SignMessage(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR d,
    CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG_PTR sigl)
{
	(void)p;
	(void)pl;
	(void)d;
	(void)dl;
	(void)sig;
	(void)sigl;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_SignMessageBegin(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl)
{
	(void)p;
	(void)pl;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

static CK_RV
C_VerifyMessage(CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR d,
    CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG sigl)
{
	(void)p;
	(void)pl;
	(void)d;
	(void)dl;
	(void)sig;
	(void)sigl;
	KM_P11_WITH_SESSION(h, km_p11_unsupported);
}

/* ---- the function lists ---- */

/* clang-format off */
#define KM_P11_FUNCTIONS_2_40 \
	.C_Initialize = C_Initialize, \
	.C_Finalize = C_Finalize, \
	.C_GetInfo = C_GetInfo, \
	.C_GetFunctionList = C_GetFunctionList, \
	.C_GetSlotList = C_GetSlotList, \
	.C_GetSlotInfo = C_GetSlotInfo, \
	.C_GetTokenInfo = C_GetTokenInfo, \
	.C_GetMechanismList = C_GetMechanismList, \
	.C_GetMechanismInfo = C_GetMechanismInfo, \
	.C_InitToken = C_InitToken, \
	.C_InitPIN = C_InitPIN, \
	.C_SetPIN = C_SetPIN, \
	.C_OpenSession = C_OpenSession, \
	.C_CloseSession = C_CloseSession, \
	.C_CloseAllSessions = C_CloseAllSessions, \
	.C_GetSessionInfo = C_GetSessionInfo, \
	.C_GetOperationState = C_GetOperationState, \
	.C_SetOperationState = C_SetOperationState, \
	.C_Login = C_Login, \
	.C_Logout = C_Logout, \
	.C_CreateObject = C_CreateObject, \
	.C_CopyObject = C_CopyObject, \
	.C_DestroyObject = C_DestroyObject, \
	.C_GetObjectSize = C_GetObjectSize, \
	.C_GetAttributeValue = C_GetAttributeValue, \
	.C_SetAttributeValue = C_SetAttributeValue, \
	.C_FindObjectsInit = C_FindObjectsInit, \
	.C_FindObjects = C_FindObjects, \
	.C_FindObjectsFinal = C_FindObjectsFinal, \
	.C_EncryptInit = C_EncryptInit, \
	.C_Encrypt = C_Encrypt, \
	.C_EncryptUpdate = C_EncryptUpdate, \
	.C_EncryptFinal = C_EncryptFinal, \
	.C_DecryptInit = C_DecryptInit, \
	.C_Decrypt = C_Decrypt, \
	.C_DecryptUpdate = C_DecryptUpdate, \
	.C_DecryptFinal = C_DecryptFinal, \
	.C_DigestInit = C_DigestInit, \
	.C_Digest = C_Digest, \
	.C_DigestUpdate = C_DigestUpdate, \
	.C_DigestKey = C_DigestKey, \
	.C_DigestFinal = C_DigestFinal, \
	.C_SignInit = C_SignInit, \
	.C_Sign = C_Sign, \
	.C_SignUpdate = C_SignUpdate, \
	.C_SignFinal = C_SignFinal, \
	.C_SignRecoverInit = C_SignRecoverInit, \
	.C_SignRecover = C_SignRecover, \
	.C_VerifyInit = C_VerifyInit, \
	.C_Verify = C_Verify, \
	.C_VerifyUpdate = C_VerifyUpdate, \
	.C_VerifyFinal = C_VerifyFinal, \
	.C_VerifyRecoverInit = C_VerifyRecoverInit, \
	.C_VerifyRecover = C_VerifyRecover, \
	.C_DigestEncryptUpdate = C_DigestEncryptUpdate, \
	.C_DecryptDigestUpdate = C_DecryptDigestUpdate, \
	.C_SignEncryptUpdate = C_SignEncryptUpdate, \
	.C_DecryptVerifyUpdate = C_DecryptVerifyUpdate, \
	.C_GenerateKey = C_GenerateKey, \
	.C_GenerateKeyPair = C_GenerateKeyPair, \
	.C_WrapKey = C_WrapKey, \
	.C_UnwrapKey = C_UnwrapKey, \
	.C_DeriveKey = C_DeriveKey, \
	.C_SeedRandom = C_SeedRandom, \
	.C_GenerateRandom = C_GenerateRandom, \
	.C_GetFunctionStatus = C_GetFunctionStatus, \
	.C_CancelFunction = C_CancelFunction, \
	.C_WaitForSlotEvent = C_WaitForSlotEvent
/* clang-format on */

static CK_FUNCTION_LIST km_p11_list_2_40 = {
	.version = { 2, 40 },
	KM_P11_FUNCTIONS_2_40,
};

static CK_FUNCTION_LIST_3_0 km_p11_list_3_0 = {
	.version = { 3, 0 },
	KM_P11_FUNCTIONS_2_40,
	.C_GetInterfaceList = C_GetInterfaceList,
	.C_GetInterface = C_GetInterface,
	.C_LoginUser = C_LoginUser,
	.C_SessionCancel = C_SessionCancel,
	.C_MessageEncryptInit = C_MessageInit,
	.C_EncryptMessage = C_MessageCrypt,
	.C_EncryptMessageBegin = C_MessageCryptBegin,
	.C_EncryptMessageNext = C_MessageCryptNext,
	.C_MessageEncryptFinal = C_MessageFinal,
	.C_MessageDecryptInit = C_MessageInit,
	.C_DecryptMessage = C_MessageCrypt,
	.C_DecryptMessageBegin = C_MessageCryptBegin,
	.C_DecryptMessageNext = C_MessageCryptNext,
	.C_MessageDecryptFinal = C_MessageFinal,
	.C_MessageSignInit = C_MessageInit,
	.C_SignMessage = C_SignMessage,
	.C_SignMessageBegin = C_SignMessageBegin,
	.C_SignMessageNext = C_SignMessage,
	.C_MessageSignFinal = C_MessageFinal,
	.C_MessageVerifyInit = C_MessageInit,
	.C_VerifyMessage = C_VerifyMessage,
	.C_VerifyMessageBegin = C_SignMessageBegin,
	.C_VerifyMessageNext = C_VerifyMessage,
	.C_MessageVerifyFinal = C_MessageFinal,
};

static CK_CHAR km_p11_iface_name[] = "PKCS 11";

/*
 * Not CKF_INTERFACE_FORK_SAFE: after fork() the child must call
 * C_Initialize again (the transport's threads stay in the parent), so a
 * caller asking for fork-safe semantics (NSS does) is told no and falls
 * back to the plain interface.
 */
static CK_INTERFACE km_p11_ifaces[] = {
	{ km_p11_iface_name, &km_p11_list_3_0, 0 },
	{ km_p11_iface_name, &km_p11_list_2_40, 0 },
};
#define KM_P11_NIFACES (sizeof(km_p11_ifaces) / sizeof(km_p11_ifaces[0]))

/* The build hides symbols by default; these three are the module's ABI. */
#define KM_P11_EXPORT __attribute__((visibility("default")))

KM_P11_EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	return_val_if_fail(out != NULL, CKR_ARGUMENTS_BAD);
	*out = &km_p11_list_2_40;
	return CKR_OK;
}

KM_P11_EXPORT CK_RV
C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count)
{
	size_t i;

	return_val_if_fail(count != NULL, CKR_ARGUMENTS_BAD);
	if (list == NULL) {
		*count = KM_P11_NIFACES;
		return CKR_OK;
	}
	if (*count < KM_P11_NIFACES) {
		*count = KM_P11_NIFACES;
		return CKR_BUFFER_TOO_SMALL;
	}
	for (i = 0; i < KM_P11_NIFACES; i++) {
		list[i] = km_p11_ifaces[i];
	}
	*count = KM_P11_NIFACES;
	return CKR_OK;
}

KM_P11_EXPORT CK_RV
C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    CK_INTERFACE_PTR_PTR iface, CK_FLAGS flags)
{
	const CK_VERSION *v;
	size_t i;

	return_val_if_fail(iface != NULL, CKR_ARGUMENTS_BAD);
	for (i = 0; i < KM_P11_NIFACES; i++) {
		v = (const CK_VERSION *)km_p11_ifaces[i].pFunctionList;
		if (name != NULL
		    && strcmp((const char *)name,
		           (const char *)km_p11_ifaces[i].pInterfaceName)
		        != 0) {
			continue;
		}
		if (version != NULL
		    && (version->major != v->major
		        || version->minor != v->minor)) {
			continue;
		}
		if ((km_p11_ifaces[i].flags & flags) != flags) {
			continue;
		}
		*iface = &km_p11_ifaces[i];
		return CKR_OK;
	}
	return CKR_ARGUMENTS_BAD;
}
