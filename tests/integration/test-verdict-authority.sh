#!/bin/sh
# Integration test of who may sign a trust verdict (review finding 2,
# docs/trust.md "Verdicts") on a 3-node dev mesh:
#   - a member that does not lead signs a TRUST_VERDICT quarantining
#     another node, at the catalog's next seq, and sends it to the leader
#     through catalog-append: refused with one line, logged
#     (KMD-VERDICT-REFUSE), and nobody is quarantined;
#   - the same entry sent to a follower is refused as well.
# Before the fix the leader sequenced it and the node was quarantined.
#
#   KM_BUILDDIR=$PWD $srcdir/tests/integration/test-verdict-authority.sh
#
# Exits 77 (skipped) without SoftHSMv2.  The trap stops every daemon.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
send=$builddir/tests/fuzz/send-raw-request
mkv=$builddir/tests/integration/make-verdict
nodes=3

if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
	echo "SKIP: configure found no libsofthsm2.so"
	exit 77
fi
if ! command -v softhsm2-util >/dev/null 2>&1; then
	echo "SKIP: softhsm2-util is not installed"
	exit 77
fi
if [ ! -x "$keymesh" ] || [ ! -x "$send" ] || [ ! -x "$mkv" ]; then
	echo "FAIL: keymesh, send-raw-request or make-verdict is not built"
	exit 1
fi
unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN KEYMESH_SO_PIN

dir=$(mktemp -d "${TMPDIR:-/tmp}/km-verdict.XXXXXX") || exit 1
mesh=$dir/mesh
out=$dir/out
err=$dir/err
. "$(dirname "$0")/tap.sh"

cleanup() {
	local f
	if [ -f "$mesh/devmesh" ]; then
		"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
	fi
	for f in "$mesh"/node*/keymeshd.pid; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

poll() {
	local limit=$1 t=0
	shift
	while [ $t -lt "$limit" ]; do
		if "$@"; then
			return 0
		fi
		sleep 1
		t=$((t + 1))
	done
	return 1
}

have_coord() {
	"$keymesh" status >"$out" 2>"$err" &&
		grep -q '^coordinator: node[0-9]' "$out"
}

# node $1's catalog seq from `keymesh status` (its node line)
seq_of() {
	"$keymesh" status 2>/dev/null |
		awk -v n="$1" '$1 == n && $2 == "up" { print $6; exit }'
}

url_of() {
	sed -n "s/^node = $1 \\(tls+tcp:.*\\)\$/\\1/p" "$KEYMESH_CONF"
}

if ! "$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 2 \
	>"$out" 2>"$err"; then
	not_ok "dev up of $nodes nodes" "$(tail -3 "$err")"
	echo "$passed passed, $failed failed"
	exit 1
fi
eval "$(cat "$out")"
export KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN

if poll 30 have_coord; then
	ok "the mesh elects a coordinator"
else
	not_ok "the mesh elects a coordinator" "$(cat "$out" "$err")"
fi
coord=$(sed -n 's/^coordinator: \(node[0-9]*\).*/\1/p' "$out" | head -1)
signer=""
victim=""
for i in $(seq 1 $nodes); do
	if [ "node$i" = "$coord" ]; then
		continue
	fi
	if [ -z "$signer" ]; then
		signer=node$i
	else
		victim=node$i
	fi
done
clog=$mesh/$coord/keymeshd.log
[ -f "$clog" ] || clog=$(ls "$mesh/$coord"/*.log 2>/dev/null | head -1)

# the forged verdict, at the leader's next seq, sent to the leader
seq=$(seq_of "$coord")
"$mkv" "$mesh/ca" "$signer" $((seq + 1)) "$victim" "$dir/verdict" \
	>"$out" 2>&1
check "$signer signs a verdict quarantining $victim (seq $((seq + 1)))" \
	test -s "$dir/verdict"
timeout 30 "$send" -c "$mesh/ca" -n "$signer" -u "$(url_of "$coord")" \
	-p "$coord" -w 10000 -T 30 -f "$dir/verdict" >"$out" 2>&1
rc=$?
check "the leader $coord refuses it through catalog-append, one line" \
	eval "test $rc -eq 1 && test \$(wc -l <'$out') -eq 1 &&
	grep -q 'proposed only by the leader itself' '$out'"
check "... and logs KMD-VERDICT-REFUSE naming $signer" \
	grep -q "KMD-VERDICT-REFUSE.*from $signer" "$clog"
# a follower refuses it too (it would forward it to the leader)
timeout 30 "$send" -c "$mesh/ca" -n "$signer" -u "$(url_of "$victim")" \
	-p "$victim" -w 10000 -T 30 -f "$dir/verdict" >"$out" 2>&1
rc=$?
check "the follower $victim refuses it as well" \
	eval "test $rc -eq 1 && grep -q 'proposed only by the leader' '$out'"
sleep 3
"$keymesh" status >"$out" 2>"$err"
check "no node is quarantined" eval "! grep -q quarantined '$out'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
