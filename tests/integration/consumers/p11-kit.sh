# p11-kit 0.24: the module visible in `p11-kit list-modules` through a
# module config file (conf/keymesh.module, see p11kit-env.sh), and the same
# operations through p11-kit-proxy.so, which speaks PKCS#11 2.40 only.
# Sourced by test-consumers.sh (lib.sh).

# shellcheck source=p11kit-env.sh
. "$KMC_SRC/p11kit-env.sh"

# the module's entry lists its token.  p11-kit loads a library once: if it
# is registered system-wide too (SoftHSM's softhsm2.module), the entry has
# that name, so match the entry by the library it loaded
kmc_p11kit_list() {
	local name path
	kmc_p11kit p11-kit list-modules >"$KMC_WORK/p11kit-list" || return 1
	name=$(awk -v tok="$KMC_TOKEN" '
		/^[^ ].*: / { mod = $0 }
		$1 == "token:" && substr($0, index($0, ":") + 2) == tok {
			print mod; exit }' "$KMC_WORK/p11kit-list")
	echo "entry: $name"
	path=${name#*: }
	[ -n "$name" ] &&
		[ "$(readlink -f "$path")" = "$(readlink -f "$KMC_MODULE")" ]
}

# pkcs11-tool through the proxy, choosing the token by label
kmc_proxy() {
	kmc_p11kit pkcs11-tool --module "$KMC_PROXY" --token-label "$KMC_TOKEN" \
		--login --pin "$KMC_PIN" "$@"
}

kmc_proxy_list() {
	kmc_proxy --list-objects >"$KMC_WORK/proxy-objects" || return 1
	cat "$KMC_WORK/proxy-objects"
	grep -q "label: *$KMC_RSA\$" "$KMC_WORK/proxy-objects" &&
		grep -q "label: *$KMC_EC\$" "$KMC_WORK/proxy-objects"
}

kmc_proxy_sign() {
	local w=$KMC_WORK/proxy
	mkdir -p "$w"
	head -c 1000 /dev/urandom >"$w/data"
	rm -f "$w/sig"
	kmc_proxy --sign -m SHA256-RSA-PKCS --id "$KMC_RSA_ID" \
		--input-file "$w/data" --output-file "$w/sig" || return 1
	openssl dgst -sha256 -verify "$KMC_RSA_PUB" -signature "$w/sig" "$w/data"
}

kmc_proxy_decrypt() {
	local w=$KMC_WORK/proxy
	mkdir -p "$w"
	head -c 32 /dev/urandom >"$w/plain"
	rm -f "$w/dec"
	openssl pkeyutl -encrypt -pubin -inkey "$KMC_RSA_PUB" \
		-pkeyopt rsa_padding_mode:pkcs1 -in "$w/plain" -out "$w/ct" ||
		return 1
	kmc_proxy --decrypt -m RSA-PKCS --id "$KMC_RSA_ID" \
		--input-file "$w/ct" --output-file "$w/dec" || return 1
	cmp "$w/dec" "$w/plain"
}

kmc_proxy_ecdh() {
	local w=$KMC_WORK/proxy
	mkdir -p "$w"
	rm -f "$w/z"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$w/peer.key" || return 1
	openssl pkey -in "$w/peer.key" -pubout -outform DER -out "$w/peer.der" ||
		return 1
	kmc_proxy --derive -m ECDH1-DERIVE --id "$KMC_EC_ID" \
		--input-file "$w/peer.der" --output-file "$w/z" || return 1
	openssl pkeyutl -derive -inkey "$w/peer.key" -peerkey "$KMC_EC_PUB" \
		-out "$w/z.peer" || return 1
	cmp "$w/z" "$w/z.peer"
}

# the libp11 engine through the proxy: a pkcs11: URI picks the token
kmc_proxy_engine() {
	kmc_write_engine_conf "$KMC_WORK/openssl-proxy.cnf" "$KMC_PROXY"
	KMC_OSSL_CNF=$KMC_WORK/openssl-proxy.cnf kmc_p11kit kmc_ossl_sign \
		"$KMC_RSA" "$KMC_RSA_PUB" digest:sha256 rsa_padding_mode:pss \
		rsa_pss_saltlen:32
}

# kmc_p11_kit full|quick
kmc_p11_kit() {
	kmc_check p11kit-module-config kmc_p11kit_setup || return
	kmc_check p11kit-list-modules kmc_p11kit_list
	kmc_check p11kit-proxy-list-objects kmc_proxy_list
	kmc_check p11kit-proxy-sign-rsa kmc_proxy_sign
	kmc_check p11kit-proxy-decrypt-rsa kmc_proxy_decrypt
	kmc_check p11kit-proxy-derive-ecdh kmc_proxy_ecdh
	if [ "$1" = full ] && declare -F kmc_ossl_sign >/dev/null; then
		kmc_check p11kit-proxy-openssl-engine kmc_proxy_engine
	fi
}
