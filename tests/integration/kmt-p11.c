#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "kmt-p11.h"

void *
kmt_p11_load(const char *builddir, CK_FUNCTION_LIST_PTR *p11)
{
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	const char *b = builddir != NULL ? builddir : getenv("KM_BUILDDIR");
	char so[4200];
	void *dl;

	snprintf(
	    so, sizeof(so), "%s/.libs/keymesh-pkcs11.so", b != NULL ? b : ".");
	if ((dl = dlopen(so, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return NULL;
	}
	gfl = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(
	    dl, "C_GetFunctionList");
	if (gfl == NULL || gfl(p11) != CKR_OK) {
		fprintf(stderr, "%s: no usable C_GetFunctionList\n", so);
		dlclose(dl);
		return NULL;
	}
	return dl;
}

CK_OBJECT_HANDLE
kmt_p11_find1(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s,
    CK_OBJECT_CLASS cls, const char *label)
{
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

EVP_PKEY *
kmt_p11_pubkey(
    CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
	uint8_t buf[2048];
	const unsigned char *p = buf;
	CK_ATTRIBUTE a = { CKA_PUBLIC_KEY_INFO, buf, sizeof(buf) };

	if (p11->C_GetAttributeValue(s, h, &a, 1) != CKR_OK) {
		return NULL;
	}
	return d2i_PUBKEY(NULL, &p, (long)a.ulValueLen);
}
