#!/bin/bash
# Real applications end to end (issue #6): pkcs11-tool, OpenSSL through
# libp11's engine, Java SunPKCS11, NSS, GnuTLS p11tool, OpenSSH and p11-kit
# drive the PKCS#11 module unchanged, against a fresh 3-of-5 dev mesh, then
# again with 2 of 5 daemons stopped, and fail cleanly (and recover) with 3
# stopped.
#
#   test-consumers.sh              against keymesh-pkcs11.so on a dev mesh
#                                  (make check; KM_BUILDDIR = the build)
#   test-consumers.sh --softhsm    the same consumers against SoftHSMv2 in a
#                                  private token directory (make
#                                  check-consumers-softhsm): checks the
#                                  suite itself; no mesh, so no failure part
#
# KMC_ONLY="pkcs11-tool openssl ..." runs only the named consumers (and
# setup); KMC_KEEP=1 keeps the scratch directory.  Prints "PASS name" or
# "FAIL name: reason" per check and "N passed, N failed"; exits 1 on any
# failure.

set -u

here=$(cd "$(dirname "$0")" && pwd)
builddir=${KM_BUILDDIR:-$PWD}
target=keymesh
if [ "${1:-}" = "--softhsm" ]; then
	target=softhsm
fi
consumers="pkcs11-tool openssl java nss gnutls openssh p11-kit"
only=${KMC_ONLY:-$consumers failure}

KMC_SRC=$here/consumers
KMC_WORK=$(mktemp -d "${TMPDIR:-/tmp}/km-consumers.XXXXXX") || exit 1
export KMC_SRC KMC_WORK
# shellcheck source=consumers/lib.sh
. "$KMC_SRC/lib.sh"

mesh=$KMC_WORK/mesh
keymesh=$builddir/tools/keymesh
t_start=$(date +%s)

cleanup() {
	# consumers' servers first (they hold sessions), then the mesh
	kmc_stop_servers 2>/dev/null
	declare -F kmc_p11kit_cleanup >/dev/null && kmc_p11kit_cleanup
	if [ "$target" = keymesh ] && [ -f "$mesh/devmesh" ]; then
		"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
	fi
	if [ -n "${KMC_KEEP:-}" ]; then
		echo "# kept $KMC_WORK"
	else
		rm -rf "$KMC_WORK"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

finish() {
	local x=""
	[ "$KMC_XFAILED" -ne 0 ] && x=" ($KMC_XFAILED expected failures of SoftHSMv2)"
	echo "$KMC_PASSED passed, $KMC_FAILED failed$x ($(($(date +%s) - t_start)) s)"
	if [ "$KMC_FAILED" -ne 0 ]; then
		echo "# failed:$KMC_FAILS"
		exit 1
	fi
	exit 0
}

wanted() {
	case " $only " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

# ---- the module under test

unset KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN
if [ "$target" = softhsm ]; then
	KMC_MODULE=${KM_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
	KMC_PIN=246810
	mkdir -p "$KMC_WORK/softhsm/tokens"
	cat >"$KMC_WORK/softhsm/softhsm2.conf" <<EOF
directories.tokendir = $KMC_WORK/softhsm/tokens
objectstore.backend = file
log.level = ERROR
EOF
	export SOFTHSM2_CONF=$KMC_WORK/softhsm/softhsm2.conf
	# what SoftHSM 2.6 cannot do (check=reason, one a line)
	KMC_XFAIL="
p11tool-decrypt-OAEP-default=SoftHSM 2.6 does OAEP with SHA-1 only
p11tool-test-login=pkcs11-tool --test decrypts OAEP with SHA-256
nss-tls13-rsa-pss=SoftHSM 2.6 refuses C_CopyObject with an empty template, which NSS SSL_ConfigServerCert sends for RSA keys
openssl-oaep-path-is-oaep=SoftHSM 2.6 refuses OAEP-SHA256, so libp11 falls back to raw RSA
"
	kmc_check setup-softhsm-token softhsm2-util --init-token --free \
		--label kmc-softhsm --so-pin 13579135 --pin "$KMC_PIN" || finish
else
	if [ ! -x "$keymesh" ]; then
		kmc_fail setup-dev-mesh "$keymesh is not built"
		finish
	fi
	if kmc_run "$keymesh" dev up --dir "$mesh" --nodes 5 --threshold 3; then
		# stdout and stderr share $KMC_WORK/out: keep the export lines
		eval "$(grep '^export KEYMESH_' "$KMC_WORK/out")"
	fi
	if [ -z "${KEYMESH_MODULE:-}" ]; then
		kmc_fail setup-dev-mesh "$(kmc_last "$KMC_WORK/out" 2)"
		finish
	fi
	kmc_pass setup-dev-mesh
	if [ ! -f "$KEYMESH_MODULE" ]; then
		# dev up names the build's pkcs11/.libs/keymesh-pkcs11.so;
		# libtool puts a top-level pkcs11_LTLIBRARIES in .libs/
		for m in "$builddir/pkcs11/.libs/keymesh-pkcs11.so" \
			"$builddir/.libs/keymesh-pkcs11.so"; do
			if [ -f "$m" ]; then
				echo "# note: dev up printed KEYMESH_MODULE=$KEYMESH_MODULE, which does not exist; using $m"
				KEYMESH_MODULE=$m
				break
			fi
		done
	fi
	if [ ! -f "$KEYMESH_MODULE" ]; then
		kmc_fail setup-module "$KEYMESH_MODULE is not built"
		finish
	fi
	KMC_MODULE=$KEYMESH_MODULE
	KMC_PIN=$KEYMESH_PIN
	export KEYMESH_CONF
fi
KMC_TARGET=$target
export KMC_MODULE KMC_PIN KMC_TARGET

# the token: the first slot with a token present
kmc_run p11 --list-token-slots
KMC_TOKEN=$(sed -n 's/^ *token label *: *//p' "$KMC_WORK/out" | head -n 1 |
	sed 's/ *$//')
if [ -z "$KMC_TOKEN" ]; then
	kmc_fail setup-token "no token: $(kmc_last "$KMC_WORK/out" 3)"
	finish
fi
kmc_pass setup-token
export KMC_TOKEN
echo "# module $KMC_MODULE, token '$KMC_TOKEN'"

kmc_write_engine_conf "$KMC_WORK/openssl-engine.cnf" "$KMC_MODULE"
kmc_write_engine_conf "$KMC_WORK/openssl-spy.cnf" "$KMC_SPY"

# ---- the two keys, their public keys and self-signed certificates

KMC_RSA=kmc-rsa
KMC_RSA_ID=6b6d0001
KMC_EC=kmc-ec
KMC_EC_ID=6b6d0002
KMC_RSA_PUB=$KMC_WORK/rsa.pub.pem
KMC_EC_PUB=$KMC_WORK/ec.pub.pem
KMC_RSA_CERT=$KMC_WORK/rsa.crt
KMC_EC_CERT=$KMC_WORK/ec.crt
export KMC_RSA KMC_RSA_ID KMC_EC KMC_EC_ID KMC_RSA_PUB KMC_EC_PUB \
	KMC_RSA_CERT KMC_EC_CERT

# kmc_pubkey LABEL PEM: the public key object, as PEM
kmc_pubkey() {
	p11 --read-object --type pubkey --label "$1" -o "$2.der" &&
		openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
}

# The certificates.  The RSA key's is self-signed by the mesh through the
# engine (openssl req -x509; the openssl-req-x509 check), and is also a
# small CA: the mesh cannot make ECDSA signatures yet (threshold ECDSA
# comes later, issue #5), so the EC key, used for ECDH only, gets a
# certificate for its public key issued by the RSA mesh key (openssl x509
# -new -force_pubkey -CAkeyform engine; the openssl-x509-issue check).
# Should either fail, a certificate for the same public key from a
# throwaway issuer takes its place so the other consumers still get one.
# Each is then stored with its key's CKA_ID and label.

# kmc_cert_fallback LABEL PUB CERT
kmc_cert_fallback() {
	echo "# $1: certificate from a throwaway issuer instead"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$KMC_WORK/issuer.key" -subj "/CN=$1" \
		-out "$KMC_WORK/issuer.csr" 2>/dev/null &&
		openssl x509 -req -in "$KMC_WORK/issuer.csr" \
			-signkey "$KMC_WORK/issuer.key" -force_pubkey "$2" \
			-days 30 -out "$3" 2>/dev/null
}

# kmc_cert_store LABEL ID CERT
kmc_cert_store() {
	openssl x509 -in "$3" -outform DER -out "$3.der" &&
		kmc_check "setup-store-cert-$1" p11login --write-object \
			"$3.der" --type cert --id "$2" --label "$1" &&
		kmc_check "setup-cert-readback-$1" kmc_cert_readback "$1" \
			"$2" "$3.der"
}

# kmc_cert_verifies CERT ISSUER PUB: ISSUER's signature on CERT is good
# and CERT carries the public key PUB
kmc_cert_verifies() {
	openssl verify -CAfile "$2" -check_ss_sig "$1" &&
		openssl x509 -in "$1" -noout -pubkey | cmp - "$3"
}

# kmc_make_rsa_cert LABEL ID PUB CERT: self-signed by the mesh key
kmc_make_rsa_cert() {
	local label=$1 id=$2 pub=$3 cert=$4
	if kmc_check "openssl-req-x509-$label" ossl req -x509 -new \
		-engine pkcs11 -keyform engine -key "$(kmc_uri "$label" private)" \
		-subj "/CN=$label" -days 30 -sha256 -out "$cert" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
		-addext "extendedKeyUsage=serverAuth,clientAuth" &&
		kmc_check "openssl-req-x509-$label-verifies" kmc_cert_verifies \
			"$cert" "$cert" "$pub"; then
		:
	else
		kmc_cert_fallback "$label" "$pub" "$cert"
	fi
	kmc_cert_store "$label" "$id" "$cert"
}

# kmc_make_ec_cert LABEL ID PUB CERT ISSUER-LABEL ISSUER-CERT: issued by
# the RSA mesh key for the EC key's public key
kmc_make_ec_cert() {
	local label=$1 id=$2 pub=$3 cert=$4
	printf '%s\n' "keyUsage=critical,keyAgreement" \
		"subjectAltName=DNS:localhost,IP:127.0.0.1" >"$KMC_WORK/ec.ext"
	if kmc_check "openssl-x509-issue-$label" ossl x509 -new \
		-subj "/CN=$label" -force_pubkey "$pub" -engine pkcs11 \
		-CA "$6" -CAkeyform engine -CAkey "$(kmc_uri "$5" private)" \
		-days 30 -sha256 -extfile "$KMC_WORK/ec.ext" -out "$cert" &&
		kmc_check "openssl-x509-issue-$label-verifies" \
			kmc_cert_verifies "$cert" "$6" "$pub"; then
		:
	else
		kmc_cert_fallback "$label" "$pub" "$cert"
	fi
	kmc_cert_store "$label" "$id" "$cert"
}

# a stored certificate is there for the next process, with its CKA_ID
kmc_cert_readback() {
	rm -f "$KMC_WORK/readback.der"
	p11 --read-object --type cert --id "$2" -o "$KMC_WORK/readback.der" ||
		{ echo "no certificate with CKA_ID $2 in a new session"; return 1; }
	cmp "$KMC_WORK/readback.der" "$3"
}

# kmc_key_id LABEL: the CKA_ID (hex) of the private key labelled LABEL
kmc_key_id() {
	p11login --list-objects --type privkey 2>/dev/null |
		awk -v l="$1" '/^Private Key Object/ { m = 0 }
			$1 == "label:" && $2 == l { m = 1 }
			m && $1 == "ID:" { print $2; exit }'
}

# kmc_check_id NAME LABEL VAR: the key got the CKA_ID in $VAR asked for;
# if not, say so and set VAR to the one it got (so the consumers still run)
kmc_check_id() {
	local got want=${!3}
	got=$(kmc_key_id "$2")
	if [ "$got" = "$want" ]; then
		kmc_pass "$1"
	elif [ -n "$got" ]; then
		kmc_fail "$1" "C_GenerateKeyPair ignored CKA_ID $want of the template: the key has CKA_ID $got (the suite goes on with it)"
		printf -v "$3" '%s' "$got"
	else
		kmc_fail "$1" "no private key labelled $2 after C_GenerateKeyPair"
	fi
}

KMC_TIMEOUT=300 kmc_check setup-keypairgen-rsa p11login --keypairgen \
	--key-type rsa:2048 --id "$KMC_RSA_ID" --label "$KMC_RSA" || finish
KMC_TIMEOUT=120 kmc_check setup-keypairgen-ec p11login --keypairgen \
	--key-type EC:prime256v1 --id "$KMC_EC_ID" --label "$KMC_EC" || finish
kmc_check_id setup-key-id-rsa "$KMC_RSA" KMC_RSA_ID
kmc_check_id setup-key-id-ec "$KMC_EC" KMC_EC_ID
kmc_check setup-pubkey-rsa kmc_pubkey "$KMC_RSA" "$KMC_RSA_PUB" || finish
kmc_check setup-pubkey-ec kmc_pubkey "$KMC_EC" "$KMC_EC_PUB" || finish

# Raw RSA (CKM_RSA_X_509) is off by a mesh key's policy unless the key is
# made with --allow-raw yes (a raw RSA partial is a decryption oracle), so
# the RSA-X-509 signing check uses a second RSA key made that way (no
# certificate): imported, which spares a second safe-prime search and
# takes the imported-key path (non-safe primes) through the mesh too.
# SoftHSM's key allows every mechanism.
# kmc_import_raw_key KEYMESH
kmc_import_raw_key() {
	local key=$KMC_WORK/rsa-raw.key r
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$key" 2>/dev/null || return 1
	"$1" key import --file "$key" --label "$KMC_RSA_RAW" \
		--allow-raw yes
	r=$?
	rm -f "$key"
	return $r
}
KMC_RSA_RAW=$KMC_RSA
KMC_RSA_RAW_ID=$KMC_RSA_ID
KMC_RSA_RAW_PUB=$KMC_RSA_PUB
if [ "$target" = keymesh ]; then
	KMC_RSA_RAW=kmc-rsa-raw
	KMC_RSA_RAW_PUB=$KMC_WORK/rsa-raw.pub.pem
	KMC_RSA_RAW_ID=
	kmc_check setup-key-import-rsa-allow-raw kmc_import_raw_key \
		"$keymesh" &&
		KMC_RSA_RAW_ID=$(kmc_key_id "$KMC_RSA_RAW") &&
		kmc_check setup-pubkey-rsa-allow-raw kmc_pubkey "$KMC_RSA_RAW" \
			"$KMC_RSA_RAW_PUB"
fi
export KMC_RSA_RAW KMC_RSA_RAW_ID KMC_RSA_RAW_PUB
kmc_make_rsa_cert "$KMC_RSA" "$KMC_RSA_ID" "$KMC_RSA_PUB" "$KMC_RSA_CERT"
kmc_make_ec_cert "$KMC_EC" "$KMC_EC_ID" "$KMC_EC_PUB" "$KMC_EC_CERT" \
	"$KMC_RSA" "$KMC_RSA_CERT"

# ---- the consumers

for c in $consumers; do
	if wanted "$c"; then
		# shellcheck disable=SC1090
		. "$KMC_SRC/$c.sh"
		"kmc_${c//-/_}" full
	fi
done

# ---- failure underneath (the mesh only)

if [ "$target" = keymesh ] && wanted failure; then
	# shellcheck source=consumers/failure.sh
	. "$KMC_SRC/failure.sh"
	kmc_failure "$keymesh" "$mesh"
fi

finish
