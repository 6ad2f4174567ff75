#!/bin/bash
# Integration test of the local dev mesh (keymesh dev up|stop|start|kill|down)
# against real keymeshd processes and SoftHSMv2 tokens.
#
# Run by `make check` with KM_BUILDDIR set (AM_TESTS_ENVIRONMENT), or by
# hand from a build directory:
#   KM_BUILDDIR=$PWD $srcdir/tests/integration/test-dev-mesh.sh
# Prints one line per check and "N passed, N failed"; exits 1 on any
# failure, 77 (skipped) when SoftHSMv2 is not installed.  Whatever happens,
# the trap stops every daemon it started.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
daemon=$builddir/daemon/keymeshd
nodes=5
threshold=3

if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
	echo "SKIP: configure found no libsofthsm2.so"
	exit 77
fi
if ! command -v softhsm2-util >/dev/null 2>&1; then
	echo "SKIP: softhsm2-util is not installed"
	exit 77
fi
for f in "$keymesh" "$daemon"; do
	if [ ! -x "$f" ]; then
		echo "FAIL: $f is not built"
		exit 1
	fi
done
# the CLI finds the daemon next to itself; do not let the caller's
# environment point elsewhere
unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN KEYMESH_SO_PIN

dir=$(mktemp -d "${TMPDIR:-/tmp}/km-devmesh.XXXXXX") || exit 1
mesh=$dir/mesh
out=$dir/out
err=$dir/err
. "$(dirname "$0")/tap.sh"

# ---- helpers

# the test's own output, for notes printed from inside redirected calls
exec 9>&1

# run keymesh; note any call that takes over a second
km() {
	local t0 t1 rc
	t0=$(date +%s%N)
	"$keymesh" "$@"
	rc=$?
	t1=$(date +%s%N)
	if [ $(((t1 - t0) / 1000000)) -gt 1000 ]; then
		echo "# keymesh $1 $2 took $(((t1 - t0) / 1000000)) ms" >&9
	fi
	return $rc
}




# pid of nodeI from its pid file, or empty
node_pid() {
	cat "$mesh/node$1/keymeshd.pid" 2>/dev/null
}

# the node number whose config live process $1 runs (bash builtins only:
# the checks run often and the machine may be busy); fails for a zombie, a
# dead pid or anything else
pid_node() {
	local pid=$1 line state a
	local -a args
	[ -n "$pid" ] || return 1
	{ read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 1
	state=${line##*) }
	state=${state%% *}
	case $state in Z | X | "") return 1 ;; esac
	{ mapfile -d '' args <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
	for a in "${args[@]}"; do
		case $a in "$mesh"/node*/keymeshd.conf)
			a=${a#"$mesh"/node}
			echo "${a%/keymeshd.conf}"
			return 0
			;;
		esac
	done
	return 1
}

# is $1 a live (not zombie) keymeshd running the config of node $2?
is_alive() {
	local n
	n=$(pid_node "$1") && [ "$n" = "$2" ]
}

# every live keymeshd of this mesh (one grep over /proc for candidates)
mesh_daemons() {
	local f pid
	for f in $(grep -laF "$mesh/node" /proc/[0-9]*/cmdline 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if pid_node "$pid" >/dev/null; then
			echo "$pid"
		fi
	done
}

# the last keymesh call failed (rc) with one stderr line matching $1 and
# nothing on stdout
failed_with() {
	[ "$rc" -ne 0 ] && [ ! -s "$out" ] && [ "$(wc -l <"$err")" -eq 1 ] &&
		grep -q "$1" "$err"
}

node_url() {
	sed -n "s/^node = node$1 //p" "$mesh/client.conf"
}

cleanup() {
	local pid m
	for m in "$mesh" "$dir/clash"; do
		if [ -f "$m/devmesh" ]; then
			"$keymesh" dev down --dir "$m" >/dev/null 2>&1
		fi
	done
	# belt and braces: nothing this test started may outlive it
	for pid in $(mesh_daemons); do
		kill -KILL "$pid" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- bad arguments are refused before anything is made

km dev up --dir "$dir/bad" --nodes 0 --threshold 1 >"$out" 2>"$err"
rc=$?
check "dev up --nodes 0 is refused" \
	test $rc -ne 0 -a ! -s "$out" -a ! -e "$dir/bad"
km dev up --dir "$dir/bad" --nodes 3 --threshold 4 >"$out" 2>"$err"
rc=$?
check "dev up --threshold above --nodes is refused" \
	failed_with 'invalid --threshold'

# ---- a 5-node 3-of-5 mesh

t0=$(date +%s%N)
km dev up --dir "$mesh" --nodes $nodes --threshold $threshold \
	>"$out" 2>"$err"
rc=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
printf '# dev up of %d nodes (threshold %d) took %d.%03d s\n' \
	$nodes $threshold $((ms / 1000)) $((ms % 1000))
if [ $rc -eq 0 ]; then
	ok "dev up --nodes $nodes --threshold $threshold exits 0"
else
	not_ok "dev up --nodes $nodes --threshold $threshold exits 0" \
		"exit $rc" "$(tail -3 "$err")"
	echo "$passed passed, $failed failed"
	exit 1
fi

cp "$out" "$dir/up.out"

# stdout: exactly the four export lines, in order
lines=$(wc -l <"$out")
bad=$(grep -cv "^export KEYMESH_\(CONF\|MODULE\|PIN\|SO_PIN\)='[^']*'\$" "$out")
names=$(sed -e 's/=.*//' "$out" | tr '\n' ' ')
check "stdout of dev up is only the four export lines" \
	test "$lines" -eq 4 -a "$bad" -eq 0 -a \
	"$names" = "export KEYMESH_CONF export KEYMESH_MODULE export \
KEYMESH_PIN export KEYMESH_SO_PIN "

# eval prepares a shell
eval "$(cat "$out")"
check "eval sets KEYMESH_CONF to DIR/client.conf" \
	test "${KEYMESH_CONF:-}" = "$(cd "$mesh" && pwd -P)/client.conf" -a \
	-f "${KEYMESH_CONF:-/nonexistent}"
check "eval sets KEYMESH_MODULE to an absolute keymesh-pkcs11.so path" \
	eval 'case ${KEYMESH_MODULE:-} in
		/*/keymesh-pkcs11.so) true ;;
		*) false ;;
	esac'
check "eval sets KEYMESH_PIN to the 6-digit PIN kept in DIR/user.pin" \
	eval '[[ ${KEYMESH_PIN:-} =~ ^[0-9]{6}$ ]] &&
		[ "$KEYMESH_PIN" = "$(cat "$mesh/user.pin")" ]'
check "eval sets KEYMESH_SO_PIN to the SO PIN kept in DIR/so.pin" \
	eval '[[ ${KEYMESH_SO_PIN:-} =~ ^[0-9a-f]{16}$ ]] &&
		[ "$KEYMESH_SO_PIN" = "$(cat "$mesh/so.pin")" ]'
check "DIR/user.pin, DIR/so.pin and each token.pin are mode 0600" \
	test "$(stat -c %a "$mesh/user.pin" "$mesh/so.pin" "$mesh"/node*/token.pin |
		sort -u)" = 600

# the processes and their logs
up=0
for i in $(seq 1 $nodes); do
	if is_alive "$(node_pid "$i")" "$i"; then
		up=$((up + 1))
	fi
done
check "all $nodes keymeshd processes run" test $up -eq $nodes
check "the mesh has exactly $nodes daemons" \
	test "$(mesh_daemons | wc -l)" -eq $nodes
ready=0
for i in $(seq 1 $nodes); do
	if grep -q "KMD-READY.*node$i .*listening on $(node_url "$i")\$" \
		"$mesh/node$i/keymeshd.log"; then
		ready=$((ready + 1))
	fi
done
check "each node's log has its KMD-READY line with its URL" \
	test $ready -eq $nodes
check "each node has its own SoftHSM token directory" \
	test "$(ls -d "$mesh"/node*/tokens/*/ 2>/dev/null | wc -l)" -eq $nodes

km dev status --dir "$mesh" >"$out" 2>"$err"
rc=$?
check "dev status shows $nodes of $nodes nodes running" \
	eval "test $rc -eq 0 && grep -q '^$nodes of $nodes nodes running' '$out' &&
	      test \$(grep -c '^node[0-9]* *running' '$out') -eq $nodes"
km dev env --dir "$mesh" >"$out" 2>"$err"
rc=$?
check "dev env prints the same export lines as dev up" \
	eval "test $rc -eq 0 && cmp -s '$out' '$dir/up.out'"

# the admin CLI finds the mesh from KEYMESH_CONF alone
"$keymesh" status >"$out" 2>"$err"
rc=$?
check "keymesh status through KEYMESH_CONF sees node$nodes" \
	eval "test $rc -eq 0 && grep -q '^node$nodes ' '$out'"

# ---- a second dev up into the running mesh is refused

km dev up --dir "$mesh" --nodes 3 --threshold 2 >"$out" 2>"$err"
rc=$?
check "dev up into a running mesh is refused with one line" \
	failed_with 'running dev mesh'
check "... and leaves the mesh running" \
	test "$(mesh_daemons | wc -l)" -eq $nodes

# ---- stop and start node2

url2=$(node_url 2)
pid2=$(node_pid 2)
km dev stop --dir "$mesh" --node 2 >"$out" 2>"$err"
rc=$?
check "dev stop --node 2 exits 0 and says node2 stopped" \
	eval "test $rc -eq 0 && grep -q '^node2 stopped' '$err'"
check "node2's process is gone and its pid file removed" \
	eval "! is_alive '$pid2' 2 && test ! -e '$mesh/node2/keymeshd.pid'"
check "the other nodes still run" \
	test "$(mesh_daemons | wc -l)" -eq $((nodes - 1))
km dev status --dir "$mesh" >"$out" 2>"$err"
check "dev status shows node2 stopped" \
	eval "grep -q '^node2 *stopped' '$out' &&
	      grep -q '^$((nodes - 1)) of $nodes nodes running' '$out'"
km dev stop --dir "$mesh" --node 2 >"$out" 2>"$err"
rc=$?
check "dev stop of a stopped node fails with one line" \
	failed_with 'node2 is not running'

km dev start --dir "$mesh" --node 2 >"$out" 2>"$err"
rc=$?
check "dev start --node 2 exits 0" test $rc -eq 0
check "node2 is back at the same URL" \
	eval "test -n '$url2' && grep -q '^node2 ready at $url2 ' '$err' &&
	      grep 'KMD-READY' '$mesh/node2/keymeshd.log' | tail -1 |
	      grep -q 'listening on $url2\$'"
check "node2 runs again under a new pid" \
	eval "is_alive '$(node_pid 2)' 2 && test '$(node_pid 2)' != '$pid2'"
km dev start --dir "$mesh" --node 2 >"$out" 2>"$err"
rc=$?
check "dev start of a running node fails with one line" \
	failed_with 'node2 is already running'

# ---- bad node numbers and directories

km dev stop --dir "$mesh" --node 9 >"$out" 2>"$err"
rc=$?
check "dev stop --node 9 of a 5-node mesh fails with one line" \
	failed_with 'bad node number'
km dev down --dir "$dir" >"$out" 2>"$err"
rc=$?
check "dev down of a directory that is not a mesh fails with one line" \
	failed_with 'not a dev mesh'

# ---- kill -9 of node4, then start it again

pid4=$(node_pid 4)
km dev kill --dir "$mesh" --node 4 >"$out" 2>"$err"
rc=$?
check "dev kill --node 4 kills it" \
	eval "test $rc -eq 0 && ! is_alive '$pid4' 4 &&
	      test ! -e '$mesh/node4/keymeshd.pid'"
km dev start --dir "$mesh" --node 4 >"$out" 2>"$err"
rc=$?
check "node4 starts again after kill -9" \
	eval "test $rc -eq 0 && is_alive '$(node_pid 4)' 4"

# ---- a wrong token PIN: the node refuses to start and says why

km dev stop --dir "$mesh" --node 3 >/dev/null 2>&1
cp "$mesh/node3/token.pin" "$dir/pin3"
printf 'wrong-pin-0000\n' >"$mesh/node3/token.pin"
km dev start --dir "$mesh" --node 3 >"$out" 2>"$err"
rc=$?
check "dev start with a wrong token PIN fails" test $rc -ne 0
check "... with one line naming node3 and the PIN" \
	eval "failed_with 'node3' && grep -qi 'PIN' '$err'"
sed -e 's/^/       /' "$err"
check "... and no node3 process is left" \
	eval "! is_alive '$(node_pid 3)' 3 &&
	      test \$(mesh_daemons | wc -l) -eq $((nodes - 1))"
cp "$dir/pin3" "$mesh/node3/token.pin"
km dev start --dir "$mesh" --node 3 >"$out" 2>"$err"
rc=$?
check "with the PIN restored node3 starts again" \
	eval "test $rc -eq 0 && is_alive '$(node_pid 3)' 3"

# ---- down stops everything; start without --node brings it all back

urls=$(sed -n 's/^node = //p' "$mesh/client.conf")
km dev down --dir "$mesh" >"$out" 2>"$err"
rc=$?
check "dev down exits 0 with one line per node" \
	eval "test $rc -eq 0 &&
	      test \$(grep -c '^node[0-9]* \(stopped\|killed\) (pid' '$err') \
		  -eq $nodes"
# a daemon should stop on SIGTERM well within dev down's 5 s grace; when
# one did not, say so (it is the daemon's shutdown, not the launcher)
if grep -q 'did not stop' "$err"; then
	echo "# note: $(grep -c 'did not stop' "$err") node(s) needed" \
		"SIGKILL after 5 s of SIGTERM"
fi
check "no keymeshd of the mesh is left" test -z "$(mesh_daemons)"
check "no pid file is left" \
	eval "! ls '$mesh'/node*/keymeshd.pid >/dev/null 2>&1"
km dev up --dir "$mesh" --nodes 3 --threshold 2 >"$out" 2>"$err"
rc=$?
check "dev up into a stopped mesh is refused with one line" \
	failed_with 'stopped dev mesh'

km dev start --dir "$mesh" >"$out" 2>"$err"
rc=$?
check "dev start without --node starts all $nodes nodes" \
	eval "test $rc -eq 0 && test \$(mesh_daemons | wc -l) -eq $nodes"
again=0
for i in $(seq 1 $nodes); do
	if grep -q "^node$i ready at $(node_url "$i") " "$err"; then
		again=$((again + 1))
	fi
done
check "... each at the URL in client.conf" \
	test $again -eq $nodes -a \
	"$urls" = "$(sed -n 's/^node = //p' "$mesh/client.conf")"

km dev down --dir "$mesh" >"$out" 2>"$err"
rc=$?
check "dev down stops them all again" \
	eval "test $rc -eq 0 && test -z \"\$(mesh_daemons)\""

# ---- a port taken between its pick and its node's start

# Another program (another test's mesh, say) may bind a picked port before
# its node does; dev up then starts the whole mesh again on new ports.
# The test hook takes node1's mesh port and node3's Raft port first.
if grep -q '^#define KM_TEST_HOOKS 1' "$builddir/config.h" 2>/dev/null; then
	clash=$dir/clash
	KEYMESH_TEST_DEV_TAKE_PORTS=1 km dev up --dir "$clash" --nodes 3 \
		--threshold 2 >"$out" 2>"$err"
	rc=$?
	check "dev up with two ports taken meanwhile exits 0" test $rc -eq 0
	check "... says which node could not listen, and why" \
		eval "grep -q '^node1 did not start: .*cannot listen on .*: address in use' '$err' &&
		      grep -q '^node3 did not start: .*cannot start Raft .*: address in use' '$err'"
	check "... and starts again on new ports" \
		grep -q 'starting again on new ports (attempt 2 of 3)' "$err"
	# after the new start, each node ready once, at the URL client.conf
	# now gives it
	ready_at_conf() {
		local i u again
		again=$(sed -n '/starting again on new ports/,$p' "$err")
		for i in 1 2 3; do
			u=$(sed -n "s/^node = node$i //p" "$clash/client.conf")
			[ -n "$u" ] && grep -q "^node$i ready at $u " <<<"$again" ||
				return 1
		done
		test "$(grep -c '^node[1-3] ready at ' <<<"$again")" -eq 3
	}
	check "... where all three nodes run, each at its client.conf URL" \
		ready_at_conf
	KEYMESH_CONF=$clash/client.conf km status >"$out" 2>"$err"
	rc=$?
	check "... and form one mesh (keymesh status sees all three)" \
		eval "test $rc -eq 0 && grep -q node1 '$out' &&
		      grep -q node3 '$out'"
	km dev down --dir "$clash" >/dev/null 2>&1
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
