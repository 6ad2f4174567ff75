#!/bin/bash
# A suspicion of the leader ends by itself when no eviction follows
# (docs/eviction.md "When the leader is the accused"), on a 5-node dev mesh
# of a test build (--enable-test-hooks) with a 5-of-5 key:
#   - the coordinator turns faulty while leading (KEYMESHD_TEST_FAULT_FILE);
#     one signature through the module fails cleanly and the module reports
#     the evidence;
#   - the followers accept it and stop following the accused: a new leader
#     is elected among them, but evicting needs k = 5 votes (the largest
#     threshold) and only 4 members may vote, so no eviction follows;
#   - after KEYMESHD_TEST_SUSPECT_MS the followers log that the suspicion
#     expired, the node is not evicted, and all five nodes follow one
#     coordinator again (the old leader's Raft links are accepted again).
#
# Run by `make check` with KM_BUILDDIR set, or by hand from a build
# directory:  KM_BUILDDIR=$PWD tests/integration/test-leader-suspect.sh
# Exits 77 (skipped) without SoftHSMv2 or pkcs11-tool, or in a build
# without test hooks.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
nodes=5
suspect_ms=8000

. "$(dirname "$0")/tap.sh"
. "$(dirname "$0")/mesh.sh"
kmt_mesh_require hooks
# a follower refuses the accused leader this long (60 s in production)
export KEYMESHD_TEST_SUSPECT_MS=$suspect_ms

kmt_mesh_tmpdir leadersus
# every daemon watches this file; it turns faulty once the file names it
export KEYMESHD_TEST_FAULT_FILE=$dir/faulty

# ---- a 5-node mesh and a 5-of-5 key

eval "$("$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 5 \
	2>"$dir/devup.err")"
[ -n "${KEYMESH_CONF:-}" ] || fail_now "dev up" "$(tail -n 3 "$dir/devup.err")"
export KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN
until=$(($(now_ms) + 20000))
while [ "$(now_ms)" -lt $until ] && [ -z "$(coordinator)" ]; do
	sleep 0.2
done
coord=$(coordinator)
check "the mesh elects a coordinator ($coord)" test -n "$coord"
"$keymesh" key create --type rsa:2048 --label srsa >"$out" 2>&1
check "an RSA key, 5 of 5" eval "test \"\$(key_line srsa)\" = '5/5 1 active'"

# ---- the coordinator turns faulty; one signature

bad=$coord
echo "$bad" >"$KEYMESHD_TEST_FAULT_FILE"
head -c 100 /dev/urandom >"$dir/data"
t0=$(now_ms)
p11 --sign -m SHA256-RSA-PKCS --label srsa -i "$dir/data" -o "$dir/sig" \
	>"$out" 2>&1
check "signing with all five holders, one of them faulty, fails cleanly" \
	test ! -s "$dir/sig"

accused() {
	grep -l "KMD-EVIDENCE-LEADER.*the leader $bad is the accused" \
		"$mesh"/node*/keymeshd.log 2>/dev/null | wc -l
}
until=$((t0 + 15000))
while [ "$(now_ms)" -lt $until ] && [ "$(accused)" -lt 4 ]; do
	sleep 0.2
done
check "the four followers stop following the accused leader $bad" \
	test "$(accused)" -eq 4
until=$((t0 + 20000))
new=""
while [ "$(now_ms)" -lt $until ]; do
	new=$(coordinator)
	[ -n "$new" ] && [ "$new" != "$bad" ] && break
	sleep 0.2
done
check "a new coordinator is elected among them ($new)" \
	test -n "$new" -a "$new" != "$bad"

# ---- no eviction follows; the suspicion expires

expired() {
	grep -l "KMD-EVIDENCE-LEADER.*suspicion of $bad expired" \
		"$mesh"/node*/keymeshd.log 2>/dev/null | wc -l
}
until=$((t0 + suspect_ms + 20000))
while [ "$(now_ms)" -lt $until ] && [ "$(expired)" -lt 4 ]; do
	sleep 0.5
done
echo "# expired on $(expired) node(s) $(($(now_ms) - t0)) ms after the signature"
cat "$mesh"/node*/keymeshd.log >"$dir/all.log"
check "the new leader tried to evict and got too few votes" \
	grep -q "$bad is not evicted: [0-9]* vote(s) of the 5 needed" \
	"$dir/all.log"
check "the suspicion expires on the four followers" test "$(expired)" -eq 4
check "$bad is not evicted" \
	eval "! \"\$keymesh\" status 2>/dev/null | grep -qx 'evicted: $bad'"

# every node names one coordinator again, $bad as a follower: its Raft
# links are accepted again
back() {
	"$keymesh" status >"$dir/status" 2>/dev/null
	grep -q "^coordinator: node[0-9]*$" "$dir/status" &&
		awk -v n="$bad" '$1 == n && $2 == "up" && $4 == "follower" { f = 1 }
			END { exit !f }' "$dir/status"
}
until=$(($(now_ms) + 15000))
while [ "$(now_ms)" -lt $until ] && ! back; do
	sleep 0.5
done
check "$bad follows the coordinator again and all five nodes name it \
($(sed -n 's/^coordinator: //p' "$dir/status"))" back

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
