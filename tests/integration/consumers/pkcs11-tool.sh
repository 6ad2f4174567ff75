# pkcs11-tool (OpenSC 0.23): listing, every RSA signing mechanism the
# module offers (each signature checked by OpenSSL from the public key and
# by the module's own C_Verify; a mechanism the key's policy refuses must
# be refused, and is then checked with a key that allows it), PKCS#1 v1.5
# and OAEP decryption of OpenSSL ciphertexts, ECDH derivation against an
# OpenSSL peer, and pkcs11-tool's own --test.  (No ECDSA: the mesh does
# not offer it until threshold ECDSA lands, issue #5; the mechanism list
# is checked for that.)  Sourced by test-consumers.sh (lib.sh).

# kmc_p11_md MECH: the OpenSSL digest of a hash-and-sign mechanism
kmc_p11_md() {
	case $1 in
	MD5-*) echo md5 ;;
	SHA1-* | SHA-1-*) echo sha1 ;;
	SHA224-*) echo sha224 ;;
	SHA256-*) echo sha256 ;;
	SHA384-*) echo sha384 ;;
	SHA512-*) echo sha512 ;;
	SHA3-224-*) echo sha3-224 ;;
	SHA3-256-*) echo sha3-256 ;;
	SHA3-384-*) echo sha3-384 ;;
	SHA3-512-*) echo sha3-512 ;;
	*) return 1 ;;
	esac
}

# kmc_p11_rsa_sign MECH [ID PUB]: sign with MECH through the module (the
# key KMC_RSA_ID unless told), then verify the signature with OpenSSL
# (independent) and with the module (C_Verify)
kmc_p11_rsa_sign() {
	local m=$1 id=${2:-$KMC_RSA_ID} pub=${3:-$KMC_RSA_PUB}
	local w=$KMC_WORK/p11sign md pss=() in
	mkdir -p "$w"
	head -c 100 /dev/urandom >"$w/data"
	in=$w/data
	case $m in
	RSA-X-509)
		# a raw block below the modulus
		{ printf '\000'; head -c 255 /dev/urandom; } >"$w/in"
		in=$w/in
		;;
	RSA-PKCS)
		head -c 64 /dev/urandom >"$w/in"
		in=$w/in
		;;
	RSA-PKCS-PSS)
		openssl dgst -sha256 -binary "$w/data" >"$w/in"
		in=$w/in
		pss=(--hash-algorithm SHA256 --mgf MGF1-SHA256)
		;;
	*-RSA-PKCS-PSS)
		md=$(kmc_p11_md "$m") || {
			echo "the suite does not know mechanism $m"
			return 1
		}
		# pkcs11-tool takes the hash, MGF1 and salt length (the
		# hash's) from the mechanism
		;;
	*-RSA-PKCS)
		md=$(kmc_p11_md "$m") || {
			echo "the suite does not know mechanism $m"
			return 1
		}
		;;
	*)
		echo "the suite does not know mechanism $m"
		return 1
		;;
	esac
	rm -f "$w/sig"
	p11login --sign -m "$m" "${pss[@]}" --id "$id" \
		--input-file "$in" --output-file "$w/sig" || return 1
	echo "signed $(stat -c %s "$w/sig") bytes"
	case $m in
	RSA-X-509 | RSA-PKCS)
		local pad=pkcs1
		[ "$m" = RSA-X-509 ] && pad=none
		openssl pkeyutl -verifyrecover -pubin -inkey "$pub" \
			-pkeyopt "rsa_padding_mode:$pad" -in "$w/sig" \
			-out "$w/rec" || return 1
		cmp "$w/rec" "$in" || return 1
		;;
	RSA-PKCS-PSS)
		openssl pkeyutl -verify -pubin -inkey "$pub" -in "$in" \
			-sigfile "$w/sig" -pkeyopt rsa_padding_mode:pss \
			-pkeyopt digest:sha256 -pkeyopt rsa_pss_saltlen:auto ||
			return 1
		;;
	*-RSA-PKCS-PSS)
		openssl dgst "-$md" -verify "$pub" -sigopt \
			rsa_padding_mode:pss -sigopt rsa_pss_saltlen:auto \
			-signature "$w/sig" "$in" || return 1
		;;
	*)
		openssl dgst "-$md" -verify "$pub" -signature "$w/sig" \
			"$in" || return 1
		;;
	esac
	echo "OpenSSL verified it; now C_Verify"
	p11 --verify -m "$m" "${pss[@]}" --id "$id" \
		--input-file "$in" --signature-file "$w/sig"
}

# kmc_p11_decrypt NAME OPENSSL-PKEYOPTS PKCS11-TOOL-ARGS: encrypt with
# OpenSSL to the public key, decrypt through the module, compare
kmc_p11_decrypt() {
	local w=$KMC_WORK/p11dec opts=$1 args=$2 o
	local -a popts=()
	mkdir -p "$w"
	head -c 48 /dev/urandom >"$w/plain"
	for o in $opts; do
		popts+=(-pkeyopt "$o")
	done
	rm -f "$w/dec"
	openssl pkeyutl -encrypt -pubin -inkey "$KMC_RSA_PUB" "${popts[@]}" \
		-in "$w/plain" -out "$w/ct" || return 1
	# shellcheck disable=SC2086
	p11login --decrypt $args --id "$KMC_RSA_ID" --input-file "$w/ct" \
		--output-file "$w/dec" || return 1
	cmp "$w/dec" "$w/plain"
}

# ECDH: the module derives with the mesh key and an OpenSSL peer's public
# key; the peer derives with its private key and the mesh public key
kmc_p11_ecdh() {
	local w=$KMC_WORK/p11dh
	mkdir -p "$w"
	rm -f "$w/z"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$w/peer.key" || return 1
	openssl pkey -in "$w/peer.key" -pubout -outform DER -out "$w/peer.der" ||
		return 1
	p11login --derive -m ECDH1-DERIVE --id "$KMC_EC_ID" \
		--input-file "$w/peer.der" --output-file "$w/z" || return 1
	openssl pkeyutl -derive -inkey "$w/peer.key" -peerkey "$KMC_EC_PUB" \
		-out "$w/z.peer" || return 1
	echo "module: $(stat -c %s "$w/z") bytes, OpenSSL: $(stat -c %s "$w/z.peer") bytes"
	cmp "$w/z" "$w/z.peer"
}

# the RSA mechanisms the module offers for signing, by pkcs11-tool name
kmc_p11_rsa_sign_mechs() {
	p11 --list-mechanisms 2>/dev/null |
		awk -F, '/^  [^ ]*RSA[^ ]*,/ && /sign/ && !/KEY-PAIR-GEN/ {
			print $1 }' | sed 's/^ *//'
}

# kmc_p11_allowed LABEL: the key's CKA_ALLOWED_MECHANISMS, comma-separated
# pkcs11-tool names; "*" when the key has none (every mechanism allowed)
kmc_p11_allowed() {
	p11login --list-objects --type privkey 2>/dev/null |
		awk -v l="$1" '/^Private Key Object/ { if (m) exit; m = 0 }
			$1 == "label:" { m = ($2 == l) }
			m && /^ *Allowed mechanisms:/ {
				sub(/^ *Allowed mechanisms: */, ""); print; found = 1
				exit }
			END { if (!found) print "*" }'
}

# kmc_p11_mech_allowed MECH ALLOWED
kmc_p11_mech_allowed() {
	case ",$2," in
	",*," | *",$1,"*) return 0 ;;
	esac
	return 1
}

# kmc_p11_sign_refused MECH: C_SignInit with a mechanism outside the key's
# CKA_ALLOWED_MECHANISMS must be refused (CKR_MECHANISM_INVALID)
kmc_p11_sign_refused() {
	local w=$KMC_WORK/p11sign out
	mkdir -p "$w"
	{ printf '\000'; head -c 255 /dev/urandom; } >"$w/in"
	if out=$(p11login --sign -m "$1" --id "$KMC_RSA_ID" \
		--input-file "$w/in" --output-file "$w/sig" 2>&1); then
		echo "the key signed with $1, which its policy does not allow"
		return 1
	fi
	echo "$out"
	echo "$out" | grep -q 'C_SignInit failed: rv = CKR_MECHANISM_INVALID' ||
		{ echo "refused, but not by C_SignInit with CKR_MECHANISM_INVALID"; return 1; }
}

# the mechanism list of the mesh: every mechanism the daemons perform is
# flagged CKF_HW (digests run in the module), and no ECDSA or EdDSA is
# offered until the mesh can do it (issue #5)
kmc_p11_mechs_mesh() {
	local bad
	bad=$(awk -F, '/^  [^ ]/ && !/, digest *$/ && !/, hw,/ { print $1 }' \
		"$1")
	if [ -n "$bad" ]; then
		echo "not flagged hw:" $bad
		return 1
	fi
	bad=$(grep -E '^  (ECDSA(-SHA[0-9]+)?|EDDSA|EC-EDWARDS-KEY-PAIR-GEN),' \
		"$1" | cut -d, -f1)
	if [ -n "$bad" ]; then
		echo "offered although the mesh cannot do it yet (issue #5):" $bad
		return 1
	fi
}

# kmc_pkcs11_tool full|quick
kmc_pkcs11_tool() {
	local m mechs allowed

	kmc_run p11 --list-slots
	if grep -q "token label *: *$KMC_TOKEN" "$KMC_WORK/out"; then
		kmc_pass p11tool-list-slots
	else
		kmc_fail p11tool-list-slots "token '$KMC_TOKEN' not listed: $(kmc_last "$KMC_WORK/out" 2)"
	fi

	kmc_run p11login --list-objects
	if [ "$(grep -c "label: *\($KMC_RSA\|$KMC_EC\)\$" "$KMC_WORK/out")" -ge 6 ] &&
		[ "$(grep -c '^Private Key Object' "$KMC_WORK/out")" -ge 2 ] &&
		[ "$(grep -c '^Certificate Object' "$KMC_WORK/out")" -ge 2 ]; then
		kmc_pass p11tool-list-objects
	else
		kmc_fail p11tool-list-objects "want 2 private keys, 2 public keys and 2 certificates labelled $KMC_RSA/$KMC_EC: $(kmc_last "$KMC_WORK/out" 3)"
	fi

	if [ "$1" = full ]; then
		kmc_run p11 --list-mechanisms
		cp "$KMC_WORK/out" "$KMC_WORK/p11-mechanisms"
		mechs=$(kmc_p11_rsa_sign_mechs)
		if [ -n "$mechs" ] && grep -q '^  RSA-PKCS-OAEP,.*decrypt' "$KMC_WORK/out" &&
			grep -q '^  ECDH1-DERIVE,.*derive' "$KMC_WORK/out"; then
			kmc_pass p11tool-list-mechanisms
		else
			kmc_fail p11tool-list-mechanisms "no RSA signing, OAEP decrypt or ECDH derive listed: $(kmc_last "$KMC_WORK/out" 3)"
		fi
		echo "# RSA signing mechanisms offered:" $mechs
		if [ "$KMC_TARGET" = keymesh ]; then
			kmc_check p11tool-mechanisms-hw-no-ecdsa \
				kmc_p11_mechs_mesh "$KMC_WORK/p11-mechanisms"
		fi
	else
		mechs="SHA256-RSA-PKCS RSA-PKCS-PSS"
	fi
	allowed=$(kmc_p11_allowed "$KMC_RSA")
	if [ "$1" = full ]; then
		echo "# $KMC_RSA allows: $allowed"
		if [ "$KMC_TARGET" = keymesh ]; then
			# raw RSA is off by a mesh key's default policy
			if kmc_p11_mech_allowed RSA-X-509 "$allowed"; then
				kmc_fail p11tool-default-policy-no-raw-rsa "$KMC_RSA allows RSA-X-509: $allowed"
			else
				kmc_pass p11tool-default-policy-no-raw-rsa
			fi
		fi
	fi
	for m in $mechs; do
		if kmc_p11_mech_allowed "$m" "$allowed"; then
			kmc_check "p11tool-sign-$m" kmc_p11_rsa_sign "$m"
			continue
		fi
		# refused by this key's policy, done with a key allowing it
		kmc_check "p11tool-sign-$m-refused-by-policy" \
			kmc_p11_sign_refused "$m"
		if [ -z "$KMC_RSA_RAW_ID" ]; then
			kmc_fail "p11tool-sign-$m" "no key allowing $m (setup failed)"
		elif kmc_p11_mech_allowed "$m" "$(kmc_p11_allowed "$KMC_RSA_RAW")"; then
			kmc_check "p11tool-sign-$m" kmc_p11_rsa_sign "$m" \
				"$KMC_RSA_RAW_ID" "$KMC_RSA_RAW_PUB"
		else
			kmc_fail "p11tool-sign-$m" "$KMC_RSA_RAW does not allow $m either"
		fi
	done

	kmc_check p11tool-decrypt-RSA-PKCS kmc_p11_decrypt \
		rsa_padding_mode:pkcs1 "-m RSA-PKCS"
	# pkcs11-tool's own OAEP parameters, what it sends when given nothing
	# else: SHA-256, MGF1-SHA256, source 0 (not CKZ_DATA_SPECIFIED), no
	# label; and it decrypts OAEP multi-part (C_DecryptUpdate/Final)
	kmc_check p11tool-decrypt-OAEP-default kmc_p11_decrypt \
		"rsa_padding_mode:oaep rsa_oaep_md:sha256 rsa_mgf1_md:sha256" \
		"-m RSA-PKCS-OAEP"
	if [ "$1" = full ]; then
		kmc_check p11tool-decrypt-OAEP-SHA1 kmc_p11_decrypt \
			"rsa_padding_mode:oaep rsa_oaep_md:sha1 rsa_mgf1_md:sha1" \
			"-m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1"
	fi
	kmc_check p11tool-derive-ECDH kmc_p11_ecdh

	if [ "$1" = full ]; then
		# its exit status is its error count; it prints "No errors"
		# after each part that passed
		KMC_TIMEOUT=300 kmc_run p11login --test
		if [ $? -eq 0 ] && grep -q 'No errors' "$KMC_WORK/out" &&
			! grep -i 'error\|fail' "$KMC_WORK/out" |
			grep -qv 'No errors'; then
			kmc_pass p11tool-test-login
		else
			kmc_fail p11tool-test-login "$(grep -i 'error\|fail' "$KMC_WORK/out" | grep -v 'No errors' | head -n 3 | tr '\n' ' ' | cut -c1-300) $(kmc_last "$KMC_WORK/out")"
		fi
	fi
}
