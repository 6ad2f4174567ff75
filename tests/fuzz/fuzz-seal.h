/*
 * The fixed key of the km_unseal fuzz target, shared with the corpus
 * generator.  TEST-ONLY: this private key is public; never use it for
 * anything but fuzzing.
 */
#ifndef KM_TESTS_FUZZ_SEAL_H
#define KM_TESTS_FUZZ_SEAL_H

#define KM_FUZZ_SEAL_AAD "keymesh fuzz seal v1"

static const char km_fuzz_seal_key_pem[]
    = "-----BEGIN PRIVATE KEY-----\n"
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7Ta/XdGDux9q71bu\n"
      "jP1fwW7Utj9N01u26h+GJf02kqqhRANCAAT5n9C9Z0JhqW7M/okntvcgNyomchci\n"
      "tfPlgmJl3pGT/bDWg5audjr42ww4PFD5/JPynA9D9oHWp4h1soS8fs1G\n"
      "-----END PRIVATE KEY-----\n";

#endif /* KM_TESTS_FUZZ_SEAL_H */
