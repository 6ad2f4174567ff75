#!/bin/bash
# Integration test of trust beacons and the trust graph (docs/trust.md) on
# a 5-node dev mesh: after a few beacon periods every node sees all five
# up with an RTT edge for every ordered pair; keymesh status shows the
# table; keymesh graph writes DOT that Graphviz parses and a real PNG, and
# refuses a bad --format, an unwritable -o and a missing dot with one
# line each; a stopped node turns unreachable within a few periods and up
# again once restarted.
#
# Run by `make check` (KM_BUILDDIR from AM_TESTS_ENVIRONMENT), or by hand:
#   KM_BUILDDIR=$PWD $srcdir/tests/integration/test-trust-graph.sh
# Exits 77 (skipped) without SoftHSMv2.  The trap stops every daemon.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
nodes=5
# generous deadlines: beacons come every 2 s and a node is unreachable
# after 4 periods without one, but the machine may be busy
deadline_up=40
deadline_down=40

if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
	echo "SKIP: configure found no libsofthsm2.so"
	exit 77
fi
if ! command -v softhsm2-util >/dev/null 2>&1; then
	echo "SKIP: softhsm2-util is not installed"
	exit 77
fi
if [ ! -x "$keymesh" ] || [ ! -x "$builddir/daemon/keymeshd" ]; then
	echo "FAIL: keymesh or keymeshd is not built"
	exit 1
fi
unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN KEYMESH_SO_PIN

dir=$(mktemp -d "${TMPDIR:-/tmp}/km-trust.XXXXXX") || exit 1
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

# node $1's graph as DOT, into $out
graph_of() {
	"$keymesh" graph --format dot --node "node$1" >"$out" 2>"$err"
}

# node $1 sees all nodes up and an RTT edge for every ordered pair
all_up_from() {
	graph_of "$1" || return 1
	[ "$(grep -c 'fillcolor=green' "$out")" -eq $nodes ] &&
		[ "$(grep -c ' -> .*ms"\]' "$out")" -eq $((nodes * (nodes - 1))) ]
}

# node $1 sees node $2 in state $3 (colour)
sees() {
	graph_of "$1" && grep -q "^	\"node$2\" \[fillcolor=$3," "$out"
}

# poll "what" for up to $1 seconds
poll() {
	local limit=$1 t=0
	shift
	while [ $t -lt "$limit" ]; do
		if "$@"; then
			echo "# after ${t}s: $*"
			return 0
		fi
		sleep 1
		t=$((t + 1))
	done
	return 1
}

# ---- a 5-node mesh
if ! "$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 3 \
	>"$out" 2>"$err"; then
	not_ok "dev up of $nodes nodes" "$(tail -3 "$err")"
	echo "$passed passed, $failed failed"
	exit 1
fi
eval "$(cat "$out")"
export KEYMESH_CONF

for i in $(seq 1 $nodes); do
	if poll $deadline_up all_up_from "$i"; then
		ok "node$i sees all $nodes nodes up with $((nodes * (nodes - 1))) RTT edges"
	else
		not_ok "node$i sees all $nodes nodes up with RTT edges" \
			"$(head -c 2000 "$out")" "$(cat "$err")"
	fi
done

# ---- keymesh status: the old lines, then the table
"$keymesh" status >"$out" 2>"$err"
rc=$?
check "keymesh status exits 0 and still says $nodes of $nodes nodes up" \
	eval "test $rc -eq 0 && grep -q '^$nodes of $nodes nodes up\$' '$out'"
check "... then shows the trust graph table" \
	grep -q '^trust graph as seen by node' "$out"
check "... with every node up, its token and RTTs to its peers" \
	test "$(grep -cE '^node[0-9]+ +up +[0-9]+ +[0-9]+\.[0-9]s +[^ ]+ +SoftHSM v2/' \
		"$out")" -eq $nodes
check "... each row with 4 measured peers" \
	test "$(grep -E '^node[0-9]+ +up ' "$out" |
		grep -cE '(node[0-9]+ [0-9]+\.[0-9]+(, | |$)){4}')" -eq $nodes

# ---- keymesh graph
"$keymesh" graph --format dot >"$dir/g.dot" 2>"$err"
rc=$?
check "graph --format dot writes DOT to standard output" \
	eval "test $rc -eq 0 && head -1 '$dir/g.dot' | grep -q '^digraph keymesh {'"
if command -v dot >/dev/null 2>&1; then
	check "... which Graphviz parses (dot -Tsvg)" \
		eval "dot -Tsvg '$dir/g.dot' >'$dir/g.svg' && grep -q '<svg' '$dir/g.svg'"
	"$keymesh" graph --format png -o "$dir/g.png" >"$out" 2>"$err"
	rc=$?
	check "graph --format png -o FILE writes a PNG and nothing on stdout" \
		eval "test $rc -eq 0 && test ! -s '$out' &&
		test \"\$(head -c 8 '$dir/g.png' | od -An -tx1 | tr -d ' \n')\" = 89504e470d0a1a0a"
	"$keymesh" graph --format svg >"$out" 2>"$err"
	rc=$?
	check "graph --format svg writes SVG to standard output" \
		eval "test $rc -eq 0 && grep -q '<svg' '$out'"
else
	not_ok "Graphviz dot is installed (quickstart.sh installs graphviz)"
fi
"$keymesh" graph --format gif >"$out" 2>"$err"
rc=$?
check "graph --format gif is refused with one line" \
	eval "test $rc -eq 2 && test ! -s '$out' && test \$(wc -l <'$err') -eq 1 &&
	grep -q \"unknown --format 'gif'\" '$err'"
"$keymesh" graph --format dot -o "$dir/no/such/dir/g.dot" >"$out" 2>"$err"
rc=$?
check "graph -o into a missing directory fails with one line" \
	eval "test $rc -eq 1 && test \$(wc -l <'$err') -eq 1 &&
	grep -q 'cannot write $dir/no/such/dir/g.dot' '$err'"
PATH=/nonexistent "$keymesh" graph --format png -o "$dir/x.png" \
	>"$out" 2>"$err"
rc=$?
check "graph --format png without dot on PATH fails with one line" \
	eval "test $rc -eq 1 && test \$(wc -l <'$err') -eq 1 &&
	grep -q \"Graphviz 'dot' is not on PATH\" '$err' && test ! -e '$dir/x.png'"

# ---- a silent node is unreachable, then up again
"$keymesh" dev stop --dir "$mesh" --node 3 >"$out" 2>"$err"
check "dev stop --node 3" test $? -eq 0
if poll $deadline_down sees 1 3 grey; then
	ok "node1 shows the stopped node3 unreachable"
else
	not_ok "node1 shows the stopped node3 unreachable" \
		"$(head -c 2000 "$out")"
fi
check "... and the others still up" \
	test "$(grep -c 'fillcolor=green' "$out")" -eq $((nodes - 1))
"$keymesh" status >"$out" 2>"$err"
check "keymesh status lists node3 unreachable in the graph table" \
	grep -qE '^node3 +unreachable ' "$out"
"$keymesh" dev start --dir "$mesh" --node 3 >"$out" 2>"$err"
check "dev start --node 3" test $? -eq 0
if poll $deadline_up sees 1 3 green; then
	ok "node1 shows node3 up again"
else
	not_ok "node1 shows node3 up again" "$(head -c 2000 "$out")"
fi
if poll $deadline_up all_up_from 3; then
	ok "the restarted node3 sees all $nodes nodes up with RTT edges"
else
	not_ok "the restarted node3 sees all $nodes nodes up" \
		"$(head -c 2000 "$out")"
fi

"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
