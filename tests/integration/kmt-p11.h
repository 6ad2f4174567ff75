/*
 * keymesh-pkcs11.so under test: loading it from the build tree, and the
 * small look-ups every module test repeats.
 */
#ifndef KM_TESTS_KMT_P11_H
#define KM_TESTS_KMT_P11_H

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

/**
 * kmt_p11_load: dlopen()s BUILDDIR/.libs/keymesh-pkcs11.so (@builddir NULL:
 * $KM_BUILDDIR, else ".") and takes its C_GetFunctionList list.
 *
 * Returns: the dl handle (for dlsym of the 3.0 entry points), or NULL
 * with the reason on stderr.
 */
void *kmt_p11_load(const char *builddir, CK_FUNCTION_LIST_PTR *p11);

/** kmt_p11_find1: the one object of @cls labelled @label, or
 * CK_INVALID_HANDLE (none, or more than one). */
CK_OBJECT_HANDLE kmt_p11_find1(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s,
    CK_OBJECT_CLASS cls, const char *label);

/** kmt_p11_pubkey: a key object's public half from CKA_PUBLIC_KEY_INFO,
 * for checking results with OpenSSL; NULL if it cannot be read. */
EVP_PKEY *kmt_p11_pubkey(
    CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h);

#endif
