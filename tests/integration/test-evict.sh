#!/bin/bash
# Integration test of eviction (issue #7 items 1 and 5, docs/eviction.md).
#
# On a 5-node 3-of-5 dev mesh (a test build: --enable-test-hooks):
#   - an RSA key (imported), an EC key (DKG) and a small EC key re-shared
#     to 3 of 3 on node3..node5; signing and ECDH through the PKCS#11
#     module verify with OpenSSL;
#   - the coordinator is made to accuse a node (KEYMESHD_TEST_ACCUSE_FILE,
#     with test evidence every member accepts: KEYMESHD_TEST_EVIDENCE):
#     it gathers the members' signed votes and commits an EVICT entry
#     with k of them; the members log their votes;
#   - the coordinator is killed with kill -9 as soon as it starts the
#     automatic re-share; the next coordinator finishes it: within the
#     bound every key the accused held is at a new epoch on the four
#     others, 3 of 4, without an admin; signing keeps working throughout
#     (under the old epoch, then the new one) and after;
#   - the small key, which would fall below its threshold, is reported
#     (KMD-EVICT-BELOW-THRESHOLD in the logs, BELOW-THRESHOLD in
#     `keymesh key list`) and stays as it was;
#   - the evicted node logs that it is evicted, and once it reconnects the
#     others refuse it in the TLS handshake (KM-TLS-EVICTED);
#   - `keymesh node evict` by an admin: one-line errors (unknown node,
#     already evicted, no name, a bad reason), then a second eviction
#     re-shares the keys again, to 3 of 3;
#   - `keymesh key create` / `key import` after the evictions deal to the
#     remaining nodes only (the client.conf still lists the evicted ones)
#     and say so; the new RSA key signs through the module;
#   - both evicted nodes leave the Raft voters: with them gone and one
#     more node killed, the two others still elect a coordinator.
#
# Run by `make check` with KM_BUILDDIR set, or by hand from a build
# directory:  KM_BUILDDIR=$PWD tests/integration/test-evict.sh
# Exits 77 (skipped) without SoftHSMv2 or pkcs11-tool, or in a build
# without test hooks.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
nodes=5

. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/mesh.sh"
kmt_mesh_require hooks

kmt_mesh_tmpdir evict

# waits until key $1 shows "$2" (K/N EPOCH STATE), at most $3 ms
wait_key() {
	local until=$(($(now_ms) + $3))
	while [ "$(now_ms)" -lt $until ]; do
		[ "$(key_line "$1")" = "$2" ] && return 0
		sleep 0.5
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

# ---- a 5-node mesh, test hooks on

export KEYMESHD_TEST_EVIDENCE=1
export KEYMESHD_TEST_ACCUSE_FILE=$dir/accuse
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
"$keymesh" key create --type ec:p256 --label small >"$out" 2>&1 &&
	"$keymesh" key reshare --label small --threshold 3 \
		--members node3,node4,node5 >"$out" 2>&1
check "a small EC key is re-shared to 3 of 3 on node3..node5" \
	eval "test \"\$(key_line small)\" = '3/3 2 active'"

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

# ---- eviction by the members' votes, the coordinator killed mid-way

c1=$(coordinator)
acc=node5
[ "$c1" = node5 ] && acc=node4
echo "# coordinator $c1, accusing $acc"

# a signer through the whole eviction and fail-over
signer() {
	while [ ! -f "$dir/stop-signing" ]; do
		if sign_ok; then echo ok; else echo "FAIL $(head -c 200 \
			"$dir/sign.out" | tr '\n' ' ')"; fi
		sleep 0.2
	done
}
signer >"$dir/signs" 2>&1 &
signer_pid=$!

t0=$(now_ms)
echo "$acc" >"$dir/accuse"
# the coordinator starts the automatic re-share: kill it there
until=$(($(now_ms) + 30000))
while [ "$(now_ms)" -lt $until ] &&
	! grep -q 'KMD-EVICT-RESHARE' "$mesh/$c1/keymeshd.log"; do
	sleep 0.05
done
check "the coordinator commits the eviction with the members' votes" \
	grep -q "eviction of $acc committed with [0-9]* votes" \
	"$mesh/$c1/keymeshd.log"
nv=0
for i in $(seq 1 $nodes); do
	grep -q "KMD-EVICT-VOTE.*voted to evict $acc" \
		"$mesh/node$i/keymeshd.log" && nv=$((nv + 1))
done
check "... members checked the evidence and voted ($nv)" test $nv -ge 2
check "... the coordinator starts re-sharing on its own" \
	grep -q 'KMD-EVICT-RESHARE' "$mesh/$c1/keymeshd.log"
"$keymesh" dev kill --dir "$mesh" --node "$c1" >/dev/null 2>&1
c2=$(wait_coordinator "$c1" 20000)
check "kill -9 of the coordinator: another is elected ($c2)" test -n "$c2"
# the killed node holds new shares too: it must come back for the
# re-share to finish (every new holder stores its share)
"$keymesh" dev start --dir "$mesh" --node "$c1" >/dev/null 2>&1
check "the new coordinator finishes: rsa1 at epoch 2, 3 of 4" \
	wait_key rsa1 "3/4 2 active" 60000
check "... ec1 too" wait_key ec1 "3/4 2 active" 30000
echo "# re-shared $(($(now_ms) - t0)) ms after the accusation"
check "... and says so in its log" eval "grep -q 'KMD-EVICT-RESHARED' \
	'$mesh/$c2/keymeshd.log' || grep -q 'KMD-EVICT-RESHARED' \
	'$mesh/$c1/keymeshd.log'"
touch "$dir/stop-signing"
wait "$signer_pid"
signer_pid=""
check "signing never failed during the eviction and the fail-over \
($(grep -c '^ok' "$dir/signs") signatures)" \
	eval "test -s '$dir/signs' && ! grep -q '^FAIL' '$dir/signs'"
check "RSA signing verifies at the new epoch" sign_ok
check "ECDH equals OpenSSL's at the new epoch" ecdh_ok
"$keymesh" key list >"$out" 2>&1
check "key list shows the small key below its threshold, unchanged" \
	eval "grep -q '^BELOW-THRESHOLD: key small .* 2 holders left, \
threshold 3' '$out' && test \"\$(key_line small)\" = '3/3 2 active'"
check "... a coordinator logs KMD-EVICT-BELOW-THRESHOLD for it" \
	eval "cat '$mesh'/node*/keymeshd.log | grep -q \
	'KMD-EVICT-BELOW-THRESHOLD.*(small): 2 holders left, threshold 3'"
"$keymesh" status >"$out" 2>&1
check "status lists the evicted node" grep -qx "evicted: $acc" "$out"
check "the evicted node logs that it is evicted" \
	grep -q 'KMD-EVICTED.*IS EVICTED' "$mesh/$acc/keymeshd.log"

# ---- the evicted node is refused

"$keymesh" dev stop --dir "$mesh" --node "$acc" >/dev/null 2>&1
"$keymesh" dev start --dir "$mesh" --node "$acc" >/dev/null 2>&1
until=$(($(now_ms) + 20000))
refused=0
while [ "$(now_ms)" -lt $until ] && [ $refused -eq 0 ]; do
	for i in $(seq 1 $nodes); do
		[ "node$i" = "$acc" ] && continue
		grep -q 'KM-TLS-EVICTED\|KM-RAFT-REFUSE.*revoked' \
			"$mesh/node$i/keymeshd.log" && refused=1
	done
	sleep 0.5
done
check "once it reconnects, the others refuse it in the TLS handshake" \
	test $refused -eq 1
check "it refuses itself from the start after a restart" \
	grep -q 'KMD-EVICTED.*catalog entry' "$mesh/$acc/keymeshd.log"

# ---- keymesh node evict: errors, then an admin's eviction

"$keymesh" node evict "$acc" >"$out" 2>&1
rc=$?
check "node evict of an evicted node: one-line error" \
	eval "test $rc -ne 0 && grep -qx \"keymesh: node evict: node $acc is \
evicted already\" '$out'"
"$keymesh" node evict node9 >"$out" 2>&1
check "node evict of an unknown node: one-line error" \
	eval "grep -qx \"keymesh: node evict: 'node9' is not a node of this \
mesh\" '$out' && test \$(wc -l <'$out') -eq 1"
"$keymesh" node evict >"$out" 2>&1
check "node evict without a name: usage, exit 2" test $? -eq 2
"$keymesh" node evict node3 --reason "$(printf 'two\nlines')" >"$out" 2>&1
check "node evict with a two-line reason: refused" \
	grep -q 'the reason must be one line' "$out"

# a second eviction, by an admin: a node that neither leads nor was killed
c3=$(coordinator)
for n in node1 node2 node3 node4 node5; do
	[ "$n" = "$acc" ] || [ "$n" = "$c3" ] && continue
	acc2=$n
	break
done
"$keymesh" node evict "$acc2" --reason "test: an admin's decision" \
	>"$out" 2>&1
check "node evict $acc2 by an admin" grep -q "evicted node '$acc2'" "$out"
check "... rsa1 goes to 3 of 3 at epoch 3" wait_key rsa1 "3/3 3 active" 60000
check "... ec1 too" wait_key ec1 "3/3 3 active" 30000
check "RSA signing verifies at epoch 3" sign_ok
check "ECDH equals OpenSSL's at epoch 3" ecdh_ok

# ---- new keys leave the evicted nodes out (the client.conf still lists
# them)

"$keymesh" key create --type rsa:2048 --label after >"$out" \
	2>"$dir/create.err"
check "key create after two evictions: 3 of 3 on the others" \
	eval "test \"\$(key_line after)\" = '3/3 1 active'"
check "... it says it leaves the evicted nodes out" \
	eval "grep -q 'leaving out the evicted node(s) .*$acc' \
	'$dir/create.err' && grep -q 'leaving out the evicted node(s) \
.*$acc2' '$dir/create.err'"
p11 --read-object --type pubkey --label after -o "$dir/after.der" \
	>/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$dir/after.der" \
		-out "$dir/after.pem" 2>/dev/null
# pkcs11-tool --sign picks the private key by --id only (as --derive)
after_id=$(p11 --list-objects --type privkey 2>/dev/null |
	awk '$1 == "label:" { l = $2 } $1 == "ID:" && l == "after" { print $2; exit }')
after_ok() {
	rm -f "$dir/sig2"
	p11 --sign -m SHA256-RSA-PKCS --id "$after_id" -i "$dir/data" \
		-o "$dir/sig2" >"$dir/sign2.out" 2>&1 &&
		openssl dgst -sha256 -verify "$dir/after.pem" \
			-signature "$dir/sig2" "$dir/data" >/dev/null 2>&1
}
until=$(($(now_ms) + 15000))
while [ "$(now_ms)" -lt $until ] && ! after_ok; do
	sleep 0.5
done
check "... and it signs through the module (OpenSSL verifies)" after_ok
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$dir/imp.key" 2>/dev/null
"$keymesh" key import --file "$dir/imp.key" --label imported \
	--threshold 2 >"$out" 2>"$dir/import.err"
check "key import after two evictions: 2 of 3 on the others" \
	eval "test \"\$(key_line imported)\" = '2/3 1 active'"
check "... it says it leaves the evicted nodes out" \
	grep -q "key import: leaving out the evicted node(s)" "$dir/import.err"
"$keymesh" key create --type ec:p256 --label toobig --threshold 4 \
	>"$out" 2>&1
check "a threshold above the nodes left: a clear error" \
	eval "grep -q '^keymesh: key create: threshold 4 is not in 1..3 (the \
mesh.s nodes less the evicted' '$out' && test -z \"\$(key_line toobig)\""

# ---- the evicted nodes leave the Raft majority

c4=$(coordinator)
check "the coordinator removed both evicted nodes from the Raft voters" \
	eval "cat '$mesh'/node*/keymeshd.log | grep -q \
	'$acc (Raft id [0-9]*) removed from the Raft voters' && \
	cat '$mesh'/node*/keymeshd.log | grep -q \
	'$acc2 (Raft id [0-9]*) removed from the Raft voters'"
# 5 configured, 2 evicted: kill -9 one more and 2 of the 3 voters elect
"$keymesh" dev kill --dir "$mesh" --node "$c4" >/dev/null 2>&1
c5=$(wait_coordinator "$c4" 20000)
check "kill -9 of the coordinator with two nodes evicted: another is \
elected ($c5)" test -n "$c5"
"$keymesh" dev start --dir "$mesh" --node "$c4" >/dev/null 2>&1
until=$(($(now_ms) + 20000))
while [ "$(now_ms)" -lt $until ] && ! sign_ok; do
	sleep 0.5
done
check "... and once it is back, the 3-of-3 key signs again" sign_ok

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
