#!/bin/bash
# The misbehaving node is the coordinator itself (docs/eviction.md "When
# the leader is the accused"; issue #7 items 1 and 5), on a 5-node 3-of-5
# dev mesh of a test build (--enable-test-hooks):
#   - node1 is made the coordinator (the others get a longer election
#     timeout): it is the node clients read the catalog from first;
#   - an RSA key (dealer) and an EC key (DKG); the coordinator (the
#     Raft leader) turns faulty WITHOUT a restart, so it stays leader: the
#     test hook KEYMESHD_TEST_FAULT_FILE (daemon/fault.c) makes it answer
#     every partial with a wrong value from the moment the file names it;
#   - one long-lived application (quorum-signer) signs through the PKCS#11
#     module the whole time and verifies every signature with OpenSSL;
#   - nobody else acts: the module catches the bad partial and reports the
#     evidence to another node; the followers check it, pass it on, stop
#     following the accused leader (KMD-EVIDENCE-LEADER), a new leader is
#     elected among them, gathers the members' votes, the EVICT entry
#     commits, and both keys are re-shared among the four others; all of
#     that within 30 s of the leader turning faulty;
#   - no signature the application got is wrong, at any time;
#   - afterwards RSA signing and ECDH through the module verify at the new
#     epoch.
#
# Run by `make check` with KM_BUILDDIR set, or by hand from a build
# directory:  KM_BUILDDIR=$PWD tests/integration/test-leader-evict.sh
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

kmt_mesh_tmpdir leaderev
# every daemon watches this file; it turns faulty once the file names it
export KEYMESHD_TEST_FAULT_FILE=$dir/faulty

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

# node1 shall lead: it is the first node of every client's configuration,
# the one whose catalog a client reads first, so its being cut off must
# not leave clients with its stale catalog.  The others get a longer
# election timeout and restart one by one; node1 wins the elections.
# (a follower rejects a vote while it heard from a leader within its own
# election timeout, so node1 wins once the others' 3 s have passed, long
# before their own timers, 3 to 6 s, run out)
for i in 1 2 3 4 5; do
	"$keymesh" dev stop --dir "$mesh" --node $i >/dev/null 2>&1
	if [ $i -eq 1 ]; then
		echo "election_ms = 500" >>"$mesh/node$i/keymeshd.conf"
	else
		echo "election_ms = 3000" >>"$mesh/node$i/keymeshd.conf"
	fi
	"$keymesh" dev start --dir "$mesh" --node $i >"$out" 2>&1 ||
		fail_now "node$i restarts" "$(tail -n 3 "$out")"
done
# (randomised timeouts: another node may still win an election now and
# then; restarting it, with its longer timeout, hands the role on again)
for attempt in 1 2 3 4 5; do
	until=$(($(now_ms) + 8000))
	while [ "$(now_ms)" -lt $until ] && [ "$(coordinator)" != node1 ]; do
		sleep 0.2
	done
	coord=$(coordinator)
	case "$coord" in
	node1 | "") break ;;
	esac
	echo "# $coord leads (attempt $attempt): restarting it"
	"$keymesh" dev stop --dir "$mesh" --node "${coord#node}" >/dev/null 2>&1
	"$keymesh" dev start --dir "$mesh" --node "${coord#node}" >"$out" 2>&1 ||
		fail_now "$coord restarts" "$(tail -n 3 "$out")"
done
coord=$(coordinator)
check "node1 leads ($coord)" test "$coord" = node1
"$keymesh" key create --type rsa:2048 --label lrsa >"$out" 2>&1
check "an RSA key, 3 of 5" eval "test \"\$(key_line lrsa)\" = '3/5 1 active'"
"$keymesh" key create --type ec:p256 --label lec >"$out" 2>&1
check "an EC key, 3 of 5" eval "test \"\$(key_line lec)\" = '3/5 1 active'"

# ---- the coordinator turns faulty and stays the coordinator

bad=$coord
coproc SIGNER { exec "$signer" lrsa 2>"$dir/signer.err"; }
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
sign_for 500

echo "# the coordinator $bad turns faulty"
t0=$(now_ms)
echo "$bad" >"$KEYMESHD_TEST_FAULT_FILE"

evicted_and_reshared() {
	local c
	c=$(coordinator)
	[ -n "$c" ] && [ "$c" != "$bad" ] &&
		"$keymesh" status 2>/dev/null | grep -qx "evicted: $bad" &&
		[ "$(key_line lrsa)" = "3/4 2 active" ] &&
		[ "$(key_line lec)" = "3/4 2 active" ]
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
new=$(coordinator)
echo "# evicted and re-shared ${done_ms:-never} ms after $bad turned faulty; coordinator now $new"
check "$bad turned faulty while leading" \
	grep -q 'test fault: this node returns corrupted partials from now on' \
	"$mesh/$bad/keymeshd.log"
check "a new coordinator ($new) is elected, $bad is evicted by the members' \
votes and both keys are re-shared to the four others, hands-free, within \
$((bound_ms / 1000)) s" \
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
check "a follower accepted the module's evidence against the leader $bad" \
	grep -q "KMD-EVIDENCE.*$bad returned a bad partial" "$dir/all.log"
ns=$(grep -l "KMD-EVIDENCE-LEADER.*the leader $bad is the accused" \
	"$mesh"/node*/keymeshd.log | wc -l)
check "followers stopped following the accused leader ($ns of 4; a \
majority needs 3)" test "$ns" -ge 3
check "the evidence was passed on to the other members" \
	grep -q "KMD-EVIDENCE-LEADER.*evidence against the leader $bad passed on to [1-9]" \
	"$dir/all.log"
check "the new leader acted on the evidence it held" \
	grep -q "leads now: acting on the evidence against the former leader $bad" \
	"$dir/all.log"
nv=$(grep -c "KMD-EVICT-VOTE.*voted to evict $bad" "$dir/all.log")
check "members checked the evidence on their own and voted ($nv)" \
	test "$nv" -ge 2
check "the EVICT entry committed with the members' votes" \
	grep -q "eviction of $bad committed with [0-9]* votes" "$dir/all.log"
check "$bad never voted nor gathered votes against itself" \
	eval "! grep -q 'gathering votes to evict $bad' '$mesh/$bad/keymeshd.log'"
check "$bad, cut off, stopped serving its stale catalog to clients" \
	grep -q "KMD-CUT-OFF.*serves no catalog" "$mesh/$bad/keymeshd.log"
check "the suspicion ended with the eviction" \
	grep -q "KMD-EVIDENCE-LEADER.*$bad is evicted: the suspicion ends" \
	"$dir/all.log"

# ---- the keys at the new epoch, through the module

p11 --read-object --type pubkey --label lrsa -o "$dir/rsa.der" >/dev/null 2>&1
openssl pkey -pubin -inform DER -in "$dir/rsa.der" -out "$dir/rsa.pem" \
	2>/dev/null
p11 --read-object --type pubkey --label lec -o "$dir/ec.der" >/dev/null 2>&1
openssl pkey -pubin -inform DER -in "$dir/ec.der" -out "$dir/ec.pem" \
	2>/dev/null
head -c 100 /dev/urandom >"$dir/data"
p11 --sign -m SHA256-RSA-PKCS --label lrsa -i "$dir/data" -o "$dir/sig" \
	>"$out" 2>&1
check "RSA signing through the module verifies at epoch 2" \
	openssl dgst -sha256 -verify "$dir/rsa.pem" -signature "$dir/sig" \
	"$dir/data"
ec_id=$(p11 --list-objects --type privkey 2>/dev/null |
	awk '$1 == "label:" { l = $2 } $1 == "ID:" && l == "lec" { print $2; exit }')
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
