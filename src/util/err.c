#include "config.h"

#include "util/err.h"

const char *
km_strerror(int r)
{
	switch (r) {
	case KM_OK:
		return "success";
	case KM_ERR_INTERNAL:
		return "internal error";
	case KM_ERR_ALLOC:
		return "out of memory";
	case KM_ERR_INVALID_ARG:
		return "invalid argument";
	case KM_ERR_BAD_FORMAT:
		return "malformed data";
	case KM_ERR_TOO_LARGE:
		return "length over limit";
	case KM_ERR_CRYPTO:
		return "cryptographic library failure";
	case KM_ERR_VERIFY:
		return "verification failed";
	case KM_ERR_IO:
		return "I/O error";
	case KM_ERR_NOT_FOUND:
		return "not found";
	case KM_ERR_EXISTS:
		return "already exists";
	case KM_ERR_TIMEOUT:
		return "timed out";
	case KM_ERR_CONN:
		return "connection failed";
	case KM_ERR_TLS:
		return "TLS failure";
	case KM_ERR_AUTH:
		return "not authorised";
	case KM_ERR_REVOKED:
		return "certificate revoked";
	case KM_ERR_PIN:
		return "incorrect PIN";
	case KM_ERR_STALE:
		return "stale or replayed request";
	case KM_ERR_POLICY:
		return "refused by policy";
	case KM_ERR_QUORUM:
		return "quorum not reached";
	case KM_ERR_BAD_PARTIAL:
		return "bad partial result";
	case KM_ERR_NOT_SUPPORTED:
		return "not supported";
	case KM_ERR_BAD_VERSION:
		return "unsupported version";
	case KM_ERR_BUFFER_TOO_SMALL:
		return "buffer too small";
	case KM_ERR_BAD_PADDING:
		return "padding check failed";
	case KM_ERR_STATE:
		return "wrong state for operation";
	case KM_ERR_CONFIG:
		return "bad configuration";
	case KM_ERR_TOKEN:
		return "backend token failure";
	case KM_ERR_RANGE:
		return "value out of range";
	case KM_ERR_CLOSED:
		return "closed";
	case KM_ERR_BUSY:
		return "busy";
	case KM_ERR_NOT_LEADER:
		return "not the mesh leader";
	default:
		return "unknown error";
	}
}
