# OpenSSL 3.0 through libp11's engine (libengine-pkcs11-openssl): pkeyutl
# sign, verify, decrypt and ECDH derive with pkcs11: URIs, every key
# loaded by URI, the OAEP path checked with pkcs11-spy, and a TLS 1.3
# s_server whose private key stays behind the module, reached by
# s_client.  (openssl req -x509 and x509 -new with a module key run in the
# suite's setup: they make the certificates.)  No ECDSA: the mesh makes
# no ECDSA signatures until threshold ECDSA lands (issue #5).  Sourced by
# test-consumers.sh (lib.sh).

# kmc_ossl_sign KEYLABEL PUB PKEYOPTS...: sign a SHA-256 digest through the
# engine, verify with OpenSSL from the public key
kmc_ossl_sign() {
	local label=$1 pub=$2 w=$KMC_WORK/ossl o
	local -a opts=()
	shift 2
	for o in "$@"; do
		opts+=(-pkeyopt "$o")
	done
	mkdir -p "$w"
	head -c 200 /dev/urandom | openssl dgst -sha256 -binary >"$w/hash"
	rm -f "$w/sig"
	ossl pkeyutl -engine pkcs11 -keyform engine -sign \
		-inkey "$(kmc_uri "$label" private)" "${opts[@]}" \
		-in "$w/hash" -out "$w/sig" || return 1
	openssl pkeyutl -verify -pubin -inkey "$pub" "${opts[@]}" \
		-in "$w/hash" -sigfile "$w/sig"
}

# verify through the engine with the module's public key object; a
# corrupted signature must be refused
# kmc_ossl_exits: twenty short-lived openssl processes (a public-key
# verify exits while the module's other connections are still shaking
# hands): each exits 0, none dies of a signal (the TLS engine once crashed
# at exit under OpenSSL's own cleanup, src/net/tls.c km_tls_atexit)
kmc_ossl_exits() {
	local w=$KMC_WORK/ossl i rc
	for i in $(seq 1 20); do
		ossl pkeyutl -engine pkcs11 -keyform engine -verify -pubin \
			-inkey "$(kmc_uri "$KMC_RSA" public)" -pkeyopt digest:sha256 \
			-in "$w/hash" -sigfile "$w/sig" >/dev/null 2>&1
		rc=$?
		if [ $rc -ne 0 ]; then
			echo "run $i of 20 exited with status $rc"
			return 1
		fi
	done
	return 0
}

kmc_ossl_verify() {
	local w=$KMC_WORK/ossl uri
	uri=$(kmc_uri "$KMC_RSA" public)
	mkdir -p "$w"
	head -c 200 /dev/urandom | openssl dgst -sha256 -binary >"$w/hash"
	ossl pkeyutl -engine pkcs11 -keyform engine -sign \
		-inkey "$(kmc_uri "$KMC_RSA" private)" -pkeyopt digest:sha256 \
		-in "$w/hash" -out "$w/sig" || return 1
	ossl pkeyutl -engine pkcs11 -keyform engine -verify -pubin \
		-inkey "$uri" -pkeyopt digest:sha256 -in "$w/hash" \
		-sigfile "$w/sig" || return 1
	# flip one bit of the signature
	printf '%s' "$(xxd -p -c 1000 "$w/sig" | sed 's/^\(..\)\(.\)/\1f/')" |
		xxd -r -p >"$w/sig.bad"
	if cmp -s "$w/sig" "$w/sig.bad"; then
		printf '%s' "$(xxd -p -c 1000 "$w/sig" | sed 's/^\(..\)\(.\)/\10/')" |
			xxd -r -p >"$w/sig.bad"
	fi
	if ossl pkeyutl -engine pkcs11 -keyform engine -verify -pubin \
		-inkey "$uri" -pkeyopt digest:sha256 -in "$w/hash" \
		-sigfile "$w/sig.bad"; then
		echo "a corrupted signature verified"
		return 1
	fi
	return 0
}

# kmc_ossl_decrypt PKEYOPTS...: encrypt with OpenSSL, decrypt via the engine
kmc_ossl_decrypt() {
	local w=$KMC_WORK/ossl o
	local -a opts=()
	for o in "$@"; do
		opts+=(-pkeyopt "$o")
	done
	mkdir -p "$w"
	head -c 32 /dev/urandom >"$w/plain"
	rm -f "$w/dec"
	openssl pkeyutl -encrypt -pubin -inkey "$KMC_RSA_PUB" "${opts[@]}" \
		-in "$w/plain" -out "$w/ct" || return 1
	ossl pkeyutl -engine pkcs11 -keyform engine -decrypt \
		-inkey "$(kmc_uri "$KMC_RSA" private)" "${opts[@]}" \
		-in "$w/ct" -out "$w/dec" || return 1
	cmp "$w/dec" "$w/plain"
}

# ECDH through the engine (C_DeriveKey with the mesh key): the same secret
# as an OpenSSL peer derives with the mesh public key
kmc_ossl_ecdh() {
	local w=$KMC_WORK/ossl
	mkdir -p "$w"
	rm -f "$w/z"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$w/peer.key" || return 1
	openssl pkey -in "$w/peer.key" -pubout -out "$w/peer.pub" || return 1
	ossl pkeyutl -derive -engine pkcs11 -keyform engine \
		-inkey "$(kmc_uri "$KMC_EC" private)" -peerkey "$w/peer.pub" \
		-out "$w/z" || return 1
	openssl pkeyutl -derive -inkey "$w/peer.key" -peerkey "$KMC_EC_PUB" \
		-out "$w/z.peer" || return 1
	cmp "$w/z" "$w/z.peer"
}

# kmc_ossl_every_key LABEL=PUB...: the engine loads each private key by
# URI, with the right public half.  (The engine makes itself OpenSSL's
# default for EC and RSA in its process; the module used to lose every
# key listed after the first EC key there.)
kmc_ossl_every_key() {
	local lp
	for lp in "$@"; do
		ossl pkey -engine pkcs11 -inform engine \
			-in "$(kmc_uri "${lp%%=*}" private)" -pubout |
			cmp - "${lp#*=}" || {
			echo "${lp%%=*}: not found, or not its public key"
			return 1
		}
		echo "${lp%%=*}: ok"
	done
}

# the engine must reach the module with CKM_RSA_PKCS_OAEP, never decrypt
# raw (CKM_RSA_X_509) and unpad itself
kmc_ossl_oaep_path() {
	local log=$KMC_WORK/ossl-spy.log
	rm -f "$log"
	kmc_spy "$log" kmc_ossl_decrypt rsa_padding_mode:oaep \
		rsa_oaep_md:sha256 rsa_mgf1_md:sha256 || return 1
	grep -A3 '^[0-9]*: C_DecryptInit' "$log" |
		grep 'pMechanism->type' | sed 's/^/spy: /'
	if grep -A3 '^[0-9]*: C_DecryptInit' "$log" |
		grep -q 'pMechanism->type = CKM_RSA_X_509'; then
		echo "the engine fell back to raw RSA (CKM_RSA_X_509)"
		return 1
	fi
	grep -A3 '^[0-9]*: C_DecryptInit' "$log" |
		grep -q 'pMechanism->type = CKM_RSA_PKCS_OAEP'
}

# kmc_ossl_tls LABEL CERT: TLS 1.3 handshake against a module-keyed
# s_server; sets KMC_SSERVER (pid) and KMC_SPORT, leaves it running
kmc_ossl_server() {
	local label=$1 cert=$2
	KMC_SPORT=$(kmc_port)
	kmc_bg KMC_SSERVER "$KMC_WORK/s_server-$label.log" env \
		OPENSSL_CONF="$KMC_WORK/openssl-engine.cnf" openssl s_server \
		-engine pkcs11 -keyform engine -key "$(kmc_uri "$label" private)" \
		-cert "$cert" -accept "127.0.0.1:$KMC_SPORT" -tls1_3 -www -quiet
	kmc_wait_port "$KMC_SPORT" 20 "$KMC_SSERVER"
}

# kmc_ossl_client PORT CERT SIGTYPE: a handshake that verifies the server's
# certificate, completes TLS 1.3 with SIGTYPE, and gets the status page
kmc_ossl_client() {
	local out=$KMC_WORK/s_client.out
	printf 'GET / HTTP/1.0\r\n\r\n' |
		timeout 20 openssl s_client -connect "127.0.0.1:$1" -tls1_3 \
			-CAfile "$2" -verify_return_error -ign_eof >"$out" 2>&1
	grep -E 'Protocol *:|^New,|Peer signature type|Verify return code' \
		"$out" | sort -u
	grep -q '^New, TLSv1.3' "$out" &&
		grep -q "Peer signature type: $3" "$out" &&
		grep -q 'Verify return code: 0 (ok)' "$out" &&
		grep -q 'Ciphers supported in s_server binary' "$out"
}

# kmc_openssl full|quick
kmc_openssl() {
	kmc_check openssl-pkeyutl-sign-rsa kmc_ossl_sign "$KMC_RSA" \
		"$KMC_RSA_PUB" digest:sha256
	kmc_check openssl-pkeyutl-sign-rsa-pss kmc_ossl_sign "$KMC_RSA" \
		"$KMC_RSA_PUB" digest:sha256 rsa_padding_mode:pss \
		rsa_pss_saltlen:32
	if [ "$1" = full ]; then
		kmc_check openssl-pkeyutl-verify-rsa kmc_ossl_verify
		kmc_check openssl-exits-cleanly kmc_ossl_exits
	fi
	kmc_check openssl-pkeyutl-decrypt-pkcs1 kmc_ossl_decrypt \
		rsa_padding_mode:pkcs1
	kmc_check openssl-pkeyutl-decrypt-oaep kmc_ossl_decrypt \
		rsa_padding_mode:oaep rsa_oaep_md:sha256 rsa_mgf1_md:sha256
	if [ "$1" = full ]; then
		kmc_check openssl-oaep-path-is-oaep kmc_ossl_oaep_path
		kmc_check openssl-engine-loads-every-key kmc_ossl_every_key \
			"$KMC_RSA=$KMC_RSA_PUB" "$KMC_EC=$KMC_EC_PUB" \
			"$KMC_RSA_RAW=$KMC_RSA_RAW_PUB"
	fi
	kmc_check openssl-pkeyutl-derive-ecdh kmc_ossl_ecdh

	if kmc_ossl_server "$KMC_RSA" "$KMC_RSA_CERT"; then
		kmc_check openssl-tls13-rsa-pss kmc_ossl_client "$KMC_SPORT" \
			"$KMC_RSA_CERT" RSA-PSS
	else
		kmc_fail openssl-tls13-rsa-pss "s_server did not start: $(kmc_last "$KMC_WORK/s_server-$KMC_RSA.log" 2)"
	fi
	kmc_stop_server "$KMC_SSERVER"
}
