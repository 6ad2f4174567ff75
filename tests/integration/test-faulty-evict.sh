#!/bin/bash
# The whole misbehaviour chain, hands-free (issue #7 item 6, second test;
# docs/evidence.md, docs/eviction.md), on a 5-node 3-of-5 dev mesh of a
# test build (--enable-test-hooks):
#   - an RSA key (dealer) and an EC key (DKG); one node that is not the
#     coordinator is restarted in the test fault mode corrupt-partials: it
#     answers every partial with a wrong value;
#   - one long-lived application (quorum-signer) signs through the PKCS#11
#     module the whole time and verifies every signature with OpenSSL;
#   - nobody else acts: the module catches the bad partial, reports the
#     evidence, the coordinator checks it and gathers the members' votes
#     (each member checks the evidence on its own), the EVICT entry
#     commits, and the coordinator re-shares both keys among the four
#     others; all of that within 30 s of the node turning faulty;
#   - no signature the application got is wrong, at any time;
#   - afterwards RSA signing and ECDH through the module verify at the new
#     epoch, and the node is listed as evicted.
#
# Run by `make check` with KM_BUILDDIR set, or by hand from a build
# directory:  KM_BUILDDIR=$PWD tests/integration/test-faulty-evict.sh
# Exits 77 (skipped) without SoftHSMv2 or pkcs11-tool, or in a build
# without test hooks.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
signer=$builddir/tests/integration/quorum-signer
nodes=5
bound_ms=30000

. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/mesh.sh"
kmt_mesh_require hooks
[ -x "$signer" ] || { echo "FAIL: $signer is not built"; exit 1; }

kmt_mesh_tmpdir faulty

# ---- a 5-node mesh and two keys

eval "$("$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 3 \
	2>"$dir/devup.err")"
[ -n "${KEYMESH_CONF:-}" ] || fail_now "dev up" "$(tail -n 3 "$dir/devup.err")"
export KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN
until=$(($(now_ms) + 20000))
while [ "$(now_ms)" -lt $until ] && [ -z "$(coordinator)" ]; do
	sleep 0.2
done
coord=$(coordinator)
check "the mesh elects a coordinator ($coord)" test -n "$coord"
"$keymesh" key create --type rsa:2048 --label frsa >"$out" 2>&1
check "an RSA key, 3 of 5" eval "test \"\$(key_line frsa)\" = '3/5 1 active'"
"$keymesh" key create --type ec:p256 --label fec >"$out" 2>&1
check "an EC key, 3 of 5" eval "test \"\$(key_line fec)\" = '3/5 1 active'"

# ---- one node turns faulty; nobody acts but the mesh

bad=node2
[ "$coord" = node2 ] && bad=node3
echo "# coordinator $coord; $bad turns faulty"
"$keymesh" dev stop --dir "$mesh" --node "${bad#node}" >/dev/null 2>&1
t0=$(now_ms)
KEYMESHD_TEST_FAULT=corrupt-partials "$keymesh" dev start --dir "$mesh" \
	--node "${bad#node}" >"$out" 2>&1
check "$bad restarts in the corrupt-partials fault mode" \
	grep -q 'test fault: this node returns corrupted partials' \
	"$mesh/$bad/keymeshd.log"

coproc SIGNER { exec "$signer" frsa 2>"$dir/signer.err"; }
signer_pid=$SIGNER_PID
if ! read -r -t 30 line <&"${SIGNER[0]}" || [ "$line" != ready ]; then
	fail_now "the application logs in" "$(cat "$dir/signer.err")"
fi
ok "the application logs in and finds the key"

total_signed=0
total_bad=0
total_fails=0
sign_for() {
	local line
	echo "sign $1" >&"${SIGNER[1]}"
	if ! read -r -t $(($1 / 1000 + 30)) line <&"${SIGNER[0]}"; then
		fail_now "the application answers" "no answer to 'sign $1'"
	fi
	set -- $line
	total_signed=$((total_signed + ${2:-0}))
	total_bad=$((total_bad + ${4:-1}))
	total_fails=$((total_fails + ${6:-1}))
}

evicted_and_reshared() {
	"$keymesh" status 2>/dev/null | grep -qx "evicted: $bad" &&
		[ "$(key_line frsa)" = "3/4 2 active" ] &&
		[ "$(key_line fec)" = "3/4 2 active" ]
}

done_ms=""
until=$((t0 + bound_ms + 30000))
while [ "$(now_ms)" -lt $until ]; do
	sign_for 500
	if evicted_and_reshared; then
		done_ms=$(($(now_ms) - t0))
		break
	fi
done
sign_for 1000
echo "# evicted and re-shared ${done_ms:-never} ms after $bad turned faulty"
check "$bad is caught, evicted by the members' votes and both keys are \
re-shared to the four others, hands-free, within $((bound_ms / 1000)) s" \
	test -n "$done_ms" -a "${done_ms:-999999}" -le $bound_ms
check "the application never got a wrong signature ($total_signed signed, \
$total_bad bad)" test "$total_bad" -eq 0 -a "$total_signed" -gt 0
echo "# calls that failed cleanly (no result) meanwhile: $total_fails"
echo quit >&"${SIGNER[1]}"
wait "$signer_pid" 2>/dev/null
check "the application finalises cleanly" test $? -eq 0
signer_pid=""

# ---- how it happened, from the logs

cat "$mesh"/node*/keymeshd.log >"$dir/all.log"
check "a daemon accepted the module's evidence against $bad" \
	grep -q "KMD-EVIDENCE.*$bad returned a bad partial" "$dir/all.log"
nv=$(grep -c "KMD-EVICT-VOTE.*voted to evict $bad" "$dir/all.log")
check "members checked the evidence on their own and voted ($nv)" \
	test "$nv" -ge 2
check "the EVICT entry committed with the members' votes" \
	grep -q "eviction of $bad committed with [0-9]* votes" "$dir/all.log"
check "$bad learns that it is evicted" \
	grep -q 'KMD-EVICTED.*IS EVICTED' "$mesh/$bad/keymeshd.log"
# the EVICT entry names the very certificate that signed the bad reply
bad_sha=$(openssl x509 -in "$mesh/ca/certs/$bad.crt" -outform DER 2>/dev/null |
	openssl dgst -sha256 -r | cut -d' ' -f1)
check "the EVICT entry names $bad's certificate (sha256 ${bad_sha:0:16}...)" \
	grep -q "node $bad evicted (.*certificate sha256 $bad_sha)" \
	"$dir/all.log"

# ---- the keys at the new epoch, through the module

p11 --read-object --type pubkey --label frsa -o "$dir/rsa.der" >/dev/null 2>&1
openssl pkey -pubin -inform DER -in "$dir/rsa.der" -out "$dir/rsa.pem" \
	2>/dev/null
p11 --read-object --type pubkey --label fec -o "$dir/ec.der" >/dev/null 2>&1
openssl pkey -pubin -inform DER -in "$dir/ec.der" -out "$dir/ec.pem" \
	2>/dev/null
head -c 100 /dev/urandom >"$dir/data"
p11 --sign -m SHA256-RSA-PKCS --label frsa -i "$dir/data" -o "$dir/sig" \
	>"$out" 2>&1
check "RSA signing through the module verifies at epoch 2" \
	openssl dgst -sha256 -verify "$dir/rsa.pem" -signature "$dir/sig" \
	"$dir/data"
ec_id=$(p11 --list-objects --type privkey 2>/dev/null |
	awk '$1 == "label:" { l = $2 } $1 == "ID:" && l == "fec" { print $2; exit }')
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$dir/peer.key" 2>/dev/null
openssl pkey -in "$dir/peer.key" -pubout -outform DER -out "$dir/peer.der"
p11 --derive -m ECDH1-DERIVE --id "$ec_id" --input-file "$dir/peer.der" \
	--output-file "$dir/z" >"$out" 2>&1
openssl pkeyutl -derive -inkey "$dir/peer.key" -peerkey "$dir/ec.pem" \
	-out "$dir/z.peer" 2>/dev/null
check "ECDH through the module equals OpenSSL's at epoch 2" \
	cmp -s "$dir/z" "$dir/z.peer"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
