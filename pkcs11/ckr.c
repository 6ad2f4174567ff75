/*
 * The one mapping from keymesh's KM_ERR_* codes to PKCS#11 return values
 * (after OpenSC's sc_to_cryptoki_error).  Everything below the shim
 * speaks KM_ERR_*; only here does it become a CK_RV.
 */
#include "config.h"

#include "pkcs11/p11.h"
#include "util/err.h"

CK_RV
km_p11_ckr(int r)
{
	switch (r) {
	case 0:
		return CKR_OK;
	case KM_ERR_ALLOC:
		return CKR_HOST_MEMORY;
	case KM_ERR_INVALID_ARG:
		return CKR_ARGUMENTS_BAD;
	case KM_ERR_BAD_FORMAT:
	case KM_ERR_RANGE:
		/* input the mechanism cannot take (a point, a block) */
		return CKR_DATA_INVALID;
	case KM_ERR_TOO_LARGE:
		return CKR_DATA_LEN_RANGE;
	case KM_ERR_BUFFER_TOO_SMALL:
		return CKR_BUFFER_TOO_SMALL;
	case KM_ERR_BAD_PADDING:
		return CKR_ENCRYPTED_DATA_INVALID;
	case KM_ERR_PIN:
		return CKR_PIN_INCORRECT;
	case KM_ERR_AUTH:
		return CKR_USER_NOT_LOGGED_IN;
	case KM_ERR_POLICY:
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	case KM_ERR_NOT_SUPPORTED:
		return CKR_FUNCTION_NOT_SUPPORTED;
	case KM_ERR_NOT_FOUND:
		return CKR_KEY_HANDLE_INVALID;
	case KM_ERR_STATE:
		return CKR_USER_PIN_NOT_INITIALIZED;
	case KM_ERR_CONFIG:
		return CKR_GENERAL_ERROR;
	case KM_ERR_VERIFY:
		return CKR_SIGNATURE_INVALID;
	case KM_ERR_CLOSED:
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	case KM_ERR_QUORUM:
	case KM_ERR_BAD_PARTIAL:
	case KM_ERR_TIMEOUT:
	case KM_ERR_CONN:
	case KM_ERR_TLS:
	case KM_ERR_REVOKED:
	case KM_ERR_STALE:
	case KM_ERR_BAD_VERSION:
	case KM_ERR_TOKEN:
	case KM_ERR_IO:
	case KM_ERR_BUSY:
	case KM_ERR_NOT_LEADER:
	case KM_ERR_EXISTS:
		/* the mesh could not do it: the device failed */
		return CKR_DEVICE_ERROR;
	case KM_ERR_CRYPTO:
	case KM_ERR_INTERNAL:
	default:
		return CKR_GENERAL_ERROR;
	}
}
