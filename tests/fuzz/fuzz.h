/*
 * Helpers shared by the fuzz targets (tests/fuzz/fuzz-*.c).
 *
 * Every target is one LLVMFuzzerTestOneInput() that the libFuzzer runtime
 * (--enable-fuzzing) or tests/fuzz/main.c (make check, corpus replay)
 * calls.  A target never judges whether an input is acceptable: it checks
 * invariants of what a decoder accepted (it re-encodes to the same bytes,
 * its fields are in range) and calls abort() when one is broken, so the
 * fuzzer records the input as a crash.
 */
#ifndef KM_TESTS_FUZZ_H
#define KM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* WARNING: an invariant, not an error path: abort so the fuzzer sees it. */
#define KM_FUZZ_ASSERT(cond)                                                  \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr,                                       \
			    "fuzz: invariant failed: %s (%s:%d)\n", #cond,    \
			    __FILE__, __LINE__);                              \
			abort();                                              \
		}                                                             \
	} while (0)

/*
 * Notes that a decoder accepted the input.  Silent unless built with
 * -DKM_FUZZ_TRACE, which shows which seeds of a corpus reach past the
 * decoder (a seed that decodes nowhere adds little).
 */
#ifdef KM_FUZZ_TRACE
#define KM_FUZZ_ACCEPTED(what) fprintf(stderr, "fuzz: accepted %s\n", what)
#else
#define KM_FUZZ_ACCEPTED(what)                                                \
	do {                                                                  \
	} while (0)
#endif

/* True when @a (@alen bytes) and @b (@blen bytes) are the same bytes. */
static inline int
km_fuzz_same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

#endif /* KM_TESTS_FUZZ_H */
