#!/bin/bash
# Integration test of quorum selection (issue #7 item 4, docs/pkcs11.md
# "How holders are ranked") on a 5-node, 3-of-5 dev mesh.
#
# The client config used by the module reaches node1 and node2 through
# bench/slowproxy with 40 ms each way; node3..node5 directly.  One
# long-lived process (quorum-signer) signs through the module the whole
# time, verifying every signature.  Which holders served is read from the
# daemons' own audit logs (state.db, audit_log: one rsa-sign record per
# partial served), not from the module:
#   - after a warm-up, at most 10% of the partials come from node1/node2;
#   - once the delay is taken away (SIGUSR1 to the proxies, the TLS
#     connections stay up), node1 and node2 both serve again within
#     $comeback s.  The bound: the module's refresher probes one holder
#     it has stopped asking per view_refresh_ms (1 s here) and forgets
#     an estimate the probe shows to be stale, so this takes a few
#     seconds; the ageing of estimates (halved every 10 s) is the
#     backstop.  $comeback leaves room for a loaded machine.
# Also: a bad view_refresh_ms is refused with one line.
#
# Run by `make check` (KM_BUILDDIR from AM_TESTS_ENVIRONMENT), or by hand:
#   KM_BUILDDIR=$PWD $srcdir/tests/integration/test-quorum-select.sh
# Exits 77 (skipped) without SoftHSMv2 or sqlite3.  The trap stops every
# daemon, both proxies and the signer.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
proxy=$builddir/bench/slowproxy
signer=$builddir/tests/integration/quorum-signer
nodes=5
delay_ms=40
comeback=30

if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
	echo "SKIP: configure found no libsofthsm2.so"
	exit 77
fi
for p in softhsm2-util sqlite3 openssl; do
	if ! command -v $p >/dev/null 2>&1; then
		echo "SKIP: $p is not installed"
		exit 77
	fi
done
for f in "$keymesh" "$builddir/daemon/keymeshd" "$proxy" "$signer"; do
	if [ ! -x "$f" ]; then
		echo "FAIL: $f is not built"
		exit 1
	fi
done
unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN KEYMESH_SO_PIN
unset KEYMESH_LOG KM_DEBUG

dir=$(mktemp -d "${TMPDIR:-/tmp}/km-qsel.XXXXXX") || exit 1
mesh=$dir/mesh
. "$(dirname "$0")/tap.sh"

proxy_pids=
signer_pid=
cleanup() {
	local f p
	for p in $signer_pid $proxy_pids; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
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

fail_now() {
	not_ok "$@"
	echo "$passed passed, $failed failed"
	exit 1
}

# partials served so far by node $1, from its audit log
served() {
	sqlite3 -readonly "$mesh/node$1/state/state.db" \
		"SELECT count(*) FROM audit_log
		 WHERE operation LIKE 'rsa-sign%' AND outcome = 0" 2>/dev/null ||
		echo 0
}

# all nodes' counts, space-separated
snapshot() {
	local n out=
	for n in $(seq 1 $nodes); do
		out="$out $(served "$n")"
	done
	echo $out
}

# sign for $1 ms in the signer; sets $signed $bad $fails
sign_for() {
	local line
	echo "sign $1" >&"${SIGNER[1]}"
	if ! read -r -t $(($1 / 1000 + 30)) line <&"${SIGNER[0]}"; then
		fail_now "the signer answers" "no answer to 'sign $1'"
	fi
	set -- $line
	signed=${2:-0}
	bad=${4:-1}
	fails=${6:-1}
	total_bad=$((total_bad + bad))
	total_fails=$((total_fails + fails))
	total_signed=$((total_signed + signed))
}

total_bad=0
total_fails=0
total_signed=0

eval "$("$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 3 \
	2>"$dir/devup.err")"
if [ -z "${KEYMESH_CONF:-}" ]; then
	fail_now "dev up" "$(tail -n 3 "$dir/devup.err")"
fi
export KEYMESH_CONF KEYMESH_PIN
openssl genrsa -out "$dir/web.pem" 2048 2>/dev/null &&
	"$keymesh" key import --file "$dir/web.pem" --label web \
		>/dev/null 2>"$dir/import.err" ||
	fail_now "import an RSA key" "$(cat "$dir/import.err")"
rm -f "$dir/web.pem"

# The bad setting first: one line naming it, nothing started.
sed 's/^\[tls\]$/[client]\nview_refresh_ms = 50\n\n[tls]/' "$KEYMESH_CONF" \
	>"$mesh/bad.conf"
if KEYMESH_CONF=$mesh/bad.conf "$keymesh" status >"$dir/out" 2>"$dir/err"; then
	not_ok "view_refresh_ms = 50 is refused"
elif [ "$(wc -l <"$dir/err")" -eq 1 ] &&
	grep -q "view_refresh_ms must be 0 (off) or from 100" "$dir/err"; then
	ok "view_refresh_ms = 50 is refused with one line"
else
	not_ok "view_refresh_ms = 50 is refused with one line" "$(cat "$dir/err")"
fi
sed 's/^\[tls\]$/[client]\nview_refresh_ms = soon\n\n[tls]/' "$KEYMESH_CONF" \
	>"$mesh/bad.conf"
if ! KEYMESH_CONF=$mesh/bad.conf "$keymesh" status >"$dir/out" 2>"$dir/err" &&
	grep -q "view_refresh_ms must be a whole number" "$dir/err"; then
	ok "view_refresh_ms = soon is refused"
else
	not_ok "view_refresh_ms = soon is refused" "$(cat "$dir/err")"
fi

# node1 and node2 behind a proxy each, $delay_ms ms each way
cp "$KEYMESH_CONF" "$mesh/slow.conf"
for n in 1 2; do
	port=$(sed -n "s/^node = node$n tls+tcp:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p" \
		"$KEYMESH_CONF")
	"$proxy" -l 0 -t "$port" -d $delay_ms >"$dir/proxy$n.out" 2>&1 &
	proxy_pids="$proxy_pids $!"
	i=0
	while ! grep -q '^ready' "$dir/proxy$n.out" 2>/dev/null &&
		[ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	pport=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$dir/proxy$n.out")
	[ -n "$pport" ] || fail_now "slowproxy for node$n starts"
	sed -i "s|^node = node$n tls+tcp://127\.0\.0\.1:$port\$|node = node$n tls+tcp://127.0.0.1:$pport|" \
		"$mesh/slow.conf"
done
sed -i 's/^\[tls\]$/[client]\nview_refresh_ms = 1000\n\n[tls]/' \
	"$mesh/slow.conf"
check "the client config sends node1 and node2 through the proxies" \
	test "$(grep -c "127.0.0.1:$pport\$" "$mesh/slow.conf")" -eq 1

# the long-lived application
coproc SIGNER { KEYMESH_CONF=$mesh/slow.conf exec "$signer" web 2>"$dir/signer.err"; }
signer_pid=$SIGNER_PID
if ! read -r -t 30 line <&"${SIGNER[0]}" || [ "$line" != ready ]; then
	fail_now "the signer logs in and finds the key" "$(cat "$dir/signer.err")"
fi
ok "the signer logs in and finds the key"

# warm-up: every holder gets measured (unmeasured ones come first)
sign_for 4000
a=($(snapshot))
sign_for 8000
b=($(snapshot))
far=0
all=0
for n in $(seq 1 $nodes); do
	d=$((b[n - 1] - a[n - 1]))
	all=$((all + d))
	[ "$n" -le 2 ] && far=$((far + d))
done
echo "# with the delay, partials per node: $(for n in $(seq 1 $nodes); do
	printf 'node%s %s ' "$n" $((b[n - 1] - a[n - 1])); done)"
check "with the delay the mesh served partials ($all for $signed signatures)" \
	test "$all" -ge $((3 * signed)) -a "$signed" -gt 0
check "with the delay at most 10% of partials come from node1/node2 ($far of $all)" \
	test $((far * 10)) -le "$all"

# take the delay away, connections stay up
kill -USR1 $proxy_pids
start=$(date +%s)
base=($(snapshot))
back=
while [ $(($(date +%s) - start)) -lt $comeback ]; do
	sign_for 1000
	c=($(snapshot))
	if [ $((c[0] - base[0])) -gt 0 ] && [ $((c[1] - base[1])) -gt 0 ]; then
		back=$(($(date +%s) - start))
		break
	fi
done
echo "# after the delay was removed: node1 $((c[0] - base[0])), node2 $((c[1] - base[1])) partials"
check "node1 and node2 serve again within $comeback s of the delay going (${back:-never} s)" \
	test -n "$back"

# a little more, for the record only: among holders that are now equally
# near, which ones the quorum keeps is a matter of small differences
a=($(snapshot))
sign_for 2000
b=($(snapshot))
echo "# afterwards, partials per node: $(for n in $(seq 1 $nodes); do
	printf 'node%s %s ' "$n" $((b[n - 1] - a[n - 1])); done)"

check "every signature verified ($total_signed signed, $total_bad bad)" \
	test "$total_bad" -eq 0 -a "$total_signed" -gt 0
check "no signing call failed ($total_fails)" test "$total_fails" -eq 0

echo quit >&"${SIGNER[1]}"
wait "$signer_pid" 2>/dev/null
check "the signer finalises cleanly" test $? -eq 0
signer_pid=

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
