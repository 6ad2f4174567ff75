#!/bin/bash
# Integration test of the proactive refresh (issue #7 item 5,
# docs/resharing.md "Proactive refresh").
#
# On a 5-node 3-of-5 dev mesh:
#   - an RSA key (imported) and an EC key (DKG); a signer loop signs with
#     the RSA key and derives with the EC key through the PKCS#11 module
#     and checks every result with OpenSSL, from start to end;
#   - a refresh interval below the minimum (4 s) is refused;
#   - `keymesh policy set --refresh-interval 5`: within the bound both keys
#     reach a higher epoch with the same threshold and the same five
#     holders (K/N 3/5, and every node prepared one new share of each key),
#     and the coordinator logs KMD-REFRESH started/done;
#   - kill -9 of the coordinator: the next one keeps refreshing (it logs a
#     failed refresh while the killed holder is down, then carries on once
#     it is back);
#   - `--refresh-interval 0`: refreshes stop (the epochs stay put for more
#     than two intervals);
#   - the signer never saw a failure or a wrong result.
#
# Run by `make check` with KM_BUILDDIR set, or by hand from a build
# directory:  KM_BUILDDIR=$PWD tests/integration/test-refresh.sh
# Exits 77 (skipped) without SoftHSMv2, pkcs11-tool or openssl.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
nodes=5

. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/mesh.sh"
kmt_mesh_require

kmt_mesh_tmpdir refresh

# the key id of key $1
key_id() {
	"$keymesh" key list 2>/dev/null | awk -v l="$1" '$1 == l { print $2 }'
}

# the epoch of key $1 when it is active 3 of 5 (nothing otherwise)
epoch_35() {
	key_line "$1" | awk '$1 == "3/5" && $3 == "active" { print $2 }'
}

# waits until key $1 is active 3 of 5 at an epoch above $2, at most $3 ms;
# prints the epoch
wait_epoch_above() {
	local until=$(($(now_ms) + $3)) e
	while [ "$(now_ms)" -lt $until ]; do
		e=$(epoch_35 "$1")
		if [ -n "$e" ] && [ "$e" -gt "$2" ]; then
			echo "$e"
			return 0
		fi
		sleep 0.3
	done
	return 1
}

# waits until key $1 is active 3 of 5 (no refresh under way); prints the
# epoch
wait_settled() {
	local until=$(($(now_ms) + $2)) e
	while [ "$(now_ms)" -lt $until ]; do
		e=$(epoch_35 "$1")
		if [ -n "$e" ]; then
			echo "$e"
			return 0
		fi
		sleep 0.3
	done
	return 1
}

sign_ok() {
	rm -f "$dir/sig"
	p11 --sign -m SHA256-RSA-PKCS --label rsa1 -i "$dir/data" \
		-o "$dir/sig" >"$dir/sign.out" 2>&1 &&
		openssl dgst -sha256 -verify "$dir/rsa1.pem" \
			-signature "$dir/sig" "$dir/data" >/dev/null 2>&1
}

ecdh_ok() {
	rm -f "$dir/z" "$dir/z.peer"
	p11 --derive -m ECDH1-DERIVE --id "$ec1_id" --input-file "$dir/peer.der" \
		--output-file "$dir/z" >"$dir/derive.out" 2>&1 &&
		openssl pkeyutl -derive -inkey "$dir/peer.key" \
			-peerkey "$dir/ec1.pem" -out "$dir/z.peer" 2>/dev/null &&
		cmp -s "$dir/z" "$dir/z.peer"
}

# how many nodes logged a prepared share of key $1 at epoch $2
prepared_on() {
	local n=0 i
	for i in $(seq 1 $nodes); do
		grep -q "KMD-RESHARE-PREPARED.*prepared 1 new share(s) of $1 epoch $2\$" \
			"$mesh/node$i/keymeshd.log" && n=$((n + 1))
	done
	echo $n
}

# ---- a 5-node mesh

eval "$("$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 3 \
	2>"$dir/devup.err")"
if [ -z "${KEYMESH_CONF:-}" ]; then
	not_ok "dev up" "$(tail -n 3 "$dir/devup.err")"
	echo "$passed passed, $failed failed"
	exit 1
fi
if [ ! -f "$KEYMESH_MODULE" ]; then
	for m in "$builddir/pkcs11/.libs/keymesh-pkcs11.so" \
		"$builddir/.libs/keymesh-pkcs11.so"; do
		[ -f "$m" ] && KEYMESH_MODULE=$m && break
	done
fi
export KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN
c1=$(wait_coordinator "" 20000)
check "the mesh elects a coordinator" test -n "$c1"

# ---- the keys

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	-out "$dir/rsa1.key" 2>/dev/null
"$keymesh" key import --file "$dir/rsa1.key" --label rsa1 >"$out" 2>&1
check "an RSA key is imported, 3 of 5" eval "test \"\$(key_line rsa1)\" = \
	'3/5 1 active'"
rm -f "$dir/rsa1.key"
"$keymesh" key create --type ec:p256 --label ec1 >"$out" 2>&1
check "an EC key is created by DKG, 3 of 5" eval "test \"\$(key_line ec1)\" = \
	'3/5 1 active'"
rsa_id=$(key_id rsa1)
ec_id=$(key_id ec1)

p11 --read-object --type pubkey --label rsa1 -o "$dir/rsa1.der" \
	>/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$dir/rsa1.der" \
		-out "$dir/rsa1.pem" 2>/dev/null
p11 --read-object --type pubkey --label ec1 -o "$dir/ec1.der" \
	>/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$dir/ec1.der" \
		-out "$dir/ec1.pem" 2>/dev/null
# pkcs11-tool --derive picks the private key by --id only
ec1_id=$(p11 --list-objects --type privkey 2>/dev/null |
	awk '$1 == "label:" { l = $2 } $1 == "ID:" && l == "ec1" { print $2; exit }')
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$dir/peer.key" 2>/dev/null
openssl pkey -in "$dir/peer.key" -pubout -outform DER -out "$dir/peer.der"
head -c 256 /dev/urandom >"$dir/data"
check "RSA signing through the module verifies (epoch 1)" sign_ok
check "ECDH through the module equals OpenSSL's (epoch 1)" ecdh_ok

# ---- bounds of the interval

"$keymesh" policy set --refresh-interval 4 >"$out" 2>&1
rc=$?
check "a refresh interval of 4 s is refused with one line" \
	eval "test $rc -ne 0 && test \$(wc -l <'$out') -eq 1"
sleep 3
check "... and nothing was refreshed" \
	eval "test \"\$(key_line rsa1)\" = '3/5 1 active'"

# a signer and a deriver through every refresh
signer() {
	while [ ! -f "$dir/stop-signing" ]; do
		if sign_ok; then echo ok; else echo "FAIL sign $(head -c 200 \
			"$dir/sign.out" | tr '\n' ' ')"; fi
		if ecdh_ok; then echo ok; else echo "FAIL ecdh $(head -c 200 \
			"$dir/derive.out" | tr '\n' ' ')"; fi
		sleep 0.1
	done
}
signer >"$dir/signs" 2>&1 &
signer_pid=$!

# ---- refresh on

t0=$(now_ms)
"$keymesh" policy set --refresh-interval 5 >"$out" 2>&1
check "policy set --refresh-interval 5" test $? -eq 0
"$keymesh" policy show >"$out" 2>&1
check "... policy show says so" grep -q 'proactive refresh: *every 5 s' "$out"
e_rsa=$(wait_epoch_above rsa1 1 40000)
check "rsa1 is refreshed: epoch ${e_rsa:-?}, still 3 of 5" test -n "$e_rsa"
e_ec=$(wait_epoch_above ec1 1 30000)
check "ec1 is refreshed: epoch ${e_ec:-?}, still 3 of 5" test -n "$e_ec"
echo "# both keys refreshed $(($(now_ms) - t0)) ms after the policy"
check "... every node prepared one new share of rsa1 at epoch 2 (the \
same five holders)" eval "test \$(prepared_on '$rsa_id' 2) -eq $nodes"
check "... and of ec1" eval "test \$(prepared_on '$ec_id' 2) -eq $nodes"
c1=$(coordinator)
check "the coordinator logs KMD-REFRESH started and done" \
	eval "cat '$mesh'/node*/keymeshd.log | grep -q \
	'KMD-REFRESH.*started: key $rsa_id (rsa1) epoch 1 -> 2, the same 5 \
holders, threshold 3' && cat '$mesh'/node*/keymeshd.log | grep -q \
	'KMD-REFRESH.*done: key $ec_id (ec1) is at epoch 2 with the same'"
check "no node refused a refresh entry" \
	eval "! cat '$mesh'/node*/keymeshd.log | grep -q 'KMD-EVICT-REFUSE'"

# ---- a new coordinator continues

e_rsa=$(wait_settled rsa1 20000)
"$keymesh" dev kill --dir "$mesh" --node "$c1" >/dev/null 2>&1
c2=$(wait_coordinator "$c1" 20000)
check "kill -9 of the coordinator $c1: $c2 takes over" test -n "$c2"
sleep 3
"$keymesh" dev start --dir "$mesh" --node "$c1" >/dev/null 2>&1
e2=$(wait_epoch_above rsa1 "${e_rsa:-1}" 45000)
check "the new coordinator refreshes on: rsa1 at epoch ${e2:-?} (was \
${e_rsa:-?})" test -n "$e2"
check "... it logs its refreshes" \
	grep -q 'KMD-REFRESH.*done: key' "$mesh/$c2/keymeshd.log"

# ---- refresh off

"$keymesh" policy set --refresh-interval 0 >"$out" 2>&1
check "policy set --refresh-interval 0" test $? -eq 0
sleep 1
s_rsa=$(wait_settled rsa1 20000)
s_ec=$(wait_settled ec1 20000)
sleep 11
check "refresh off: rsa1 stays at epoch ${s_rsa:-?} for two intervals" \
	eval "test -n '$s_rsa' && test \"\$(epoch_35 rsa1)\" = '$s_rsa'"
check "... ec1 at epoch ${s_ec:-?}" \
	eval "test -n '$s_ec' && test \"\$(epoch_35 ec1)\" = '$s_ec'"

touch "$dir/stop-signing"
wait "$signer_pid"
signer_pid=""
check "signing and ECDH never failed through the refreshes \
($(grep -c '^ok' "$dir/signs") results)" \
	eval "test \$(grep -c '^ok' '$dir/signs') -gt 10 && \
	! grep -q '^FAIL' '$dir/signs'"
grep '^FAIL' "$dir/signs" | head -n 3 | sed 's/^/# /'
check "RSA signing verifies at the last epoch" sign_ok
check "ECDH equals OpenSSL's at the last epoch" ecdh_ok

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
