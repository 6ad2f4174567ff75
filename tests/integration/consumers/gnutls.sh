# GnuTLS p11tool through p11-kit (the module registered as in
# p11kit-env.sh): tokens and objects listed by pkcs11: URI, and
# p11tool --test-sign with the RSA key (the EC key does ECDH only until
# threshold ECDSA lands, issue #5).  Sourced by test-consumers.sh (lib.sh).

# shellcheck source=p11kit-env.sh
. "$KMC_SRC/p11kit-env.sh"

kmc_gnutls_tokens() {
	kmc_p11kit p11tool --list-tokens || return 1
	kmc_p11kit p11tool --list-token-urls | grep -q "token=$KMC_TOKEN\(;\|\$\)"
}

kmc_gnutls_objects() {
	local uri="pkcs11:token=$KMC_TOKEN" o=$KMC_WORK/p11tool-objects
	GNUTLS_PIN=$KMC_PIN kmc_p11kit p11tool --login --list-all "$uri" >"$o" ||
		return 1
	cat "$o"
	local l t
	for l in "$KMC_RSA" "$KMC_EC"; do
		for t in private cert public; do
			grep -q "URL: pkcs11:.*object=$l;.*type=$t" "$o" || {
				echo "no $t object $l"
				return 1
			}
		done
	done
}

kmc_gnutls_test_sign() {
	GNUTLS_PIN=$KMC_PIN kmc_p11kit p11tool --login --test-sign \
		"pkcs11:token=$KMC_TOKEN;object=$1;type=private"
}

# kmc_gnutls full|quick
kmc_gnutls() {
	kmc_check gnutls-p11kit-config kmc_p11kit_setup || return
	kmc_check gnutls-list-tokens kmc_gnutls_tokens
	kmc_check gnutls-list-objects kmc_gnutls_objects
	kmc_check gnutls-test-sign-rsa kmc_gnutls_test_sign "$KMC_RSA"
}
