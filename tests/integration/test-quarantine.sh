#!/bin/bash
# Integration test of the posture policy, the coordinator's verdicts and
# quarantine (docs/trust.md) on a 5-node dev mesh:
#   - bad `keymesh policy set` input: one line each, nothing changes;
#   - a policy allowing only the SHA-256 of the built keymeshd: all five
#     stay up;
#   - one node (not the coordinator) restarted from a copy of keymeshd with
#     one byte appended (another SHA-256, the same behaviour) is shown
#     quarantined with the reason in `keymesh status` within two beacon
#     periods of its start (plus a stated slack), its own log says why,
#     signatures through the PKCS#11 module still verify and no partial
#     request reaches it, and it refuses one sent to it directly;
#   - restarted from the real binary, it leaves quarantine only after the
#     hysteresis (three passing beacons);
#   - a stopped node is shown unreachable, never quarantined;
#   - the bandwidth probe has measured the links (graph edge labels).
#
# Run by `make check` (KM_BUILDDIR from AM_TESTS_ENVIRONMENT), or by hand:
#   KM_BUILDDIR=$PWD $srcdir/tests/integration/test-quarantine.sh
# Exits 77 (skipped) without SoftHSMv2 or pkcs11-tool.  The trap stops every
# daemon.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
daemon=$builddir/daemon/keymeshd
send=$builddir/tests/fuzz/send-raw-request
nodes=5
period_ms=2000 # beacon_interval_ms of the dev mesh
# the bound of issue #7: two beacon periods from the node's first beacon;
# the slack covers the process start before that first beacon and one
# `keymesh status` call on a loaded machine
quarantine_bound_ms=$((2 * period_ms))
slack_ms=2500

if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
	echo "SKIP: configure found no libsofthsm2.so"
	exit 77
fi
for c in softhsm2-util pkcs11-tool openssl sha256sum; do
	if ! command -v $c >/dev/null 2>&1; then
		echo "SKIP: $c is not installed"
		exit 77
	fi
done
if [ ! -x "$keymesh" ] || [ ! -x "$daemon" ] || [ ! -x "$send" ]; then
	echo "FAIL: keymesh, keymeshd or send-raw-request is not built"
	exit 1
fi
unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN KEYMESH_SO_PIN

dir=$(mktemp -d "${TMPDIR:-/tmp}/km-quar.XXXXXX") || exit 1
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

now_ms() {
	date +%s%3N
}

# poll "what" for up to $1 seconds, once a second
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

# `keymesh status` into $out; then node $1's row in the graph table
status_row() {
	"$keymesh" status >"$out" 2>"$err"
	# the graph table comes after the node lines: its row is the last
	grep -E "^node$1 " "$out" | tail -1
}

state_is() {
	status_row "$1" | grep -qE "^node$1 +$2 "
}

all_up_unquarantined() {
	"$keymesh" status >"$out" 2>"$err" || return 1
	[ "$(grep -cE '^node[0-9]+ +up +100 ' "$out")" -eq $nodes ] &&
		! grep -q quarantined "$out"
}

p11() {
	pkcs11-tool --module "$KEYMESH_MODULE" --login --pin "$KEYMESH_PIN" "$@"
}

# ---- a 5-node mesh
if ! "$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 3 \
	>"$out" 2>"$err"; then
	not_ok "dev up of $nodes nodes" "$(tail -3 "$err")"
	echo "$passed passed, $failed failed"
	exit 1
fi
eval "$(cat "$out")"
export KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN

# ---- bad input: one line each, exit 2, no policy set
bad() {
	local what=$1 expect=$2
	shift 2
	"$keymesh" policy set "$@" >"$out" 2>"$err"
	rc=$?
	check "policy set $what: refused with one line" \
		eval "test $rc -eq 2 && test ! -s '$out' &&
		test \$(wc -l <'$err') -eq 1 && grep -q -- \"$expect\" '$err'"
}
bad "--allow-binary zz" "64 hex digits" --allow-binary zz
bad "--allow-binary (64 non-hex)" "is not hex" --allow-binary \
	"$(printf 'g%.0s' $(seq 64))"
bad "--max-beacon-age 5" "number of ms from 500" --max-beacon-age 5
bad "--max-beacon-age 12x" "number of ms from 500" --max-beacon-age 12x
bad "--refresh-interval -1" "0 (off) or 5 to" --refresh-interval -1
bad "--secure-boot maybe" "'required' or 'any'" --secure-boot maybe
bad "--frobnicate 1" "unknown option '--frobnicate'" --frobnicate 1
bad "--allow-version (no value)" "needs a value" --allow-version
bad "--allow-token-model with a quote" "printable" \
	--allow-token-model 'a"b'
"$keymesh" policy show >"$out" 2>"$err"
check "... and the catalog still has no posture policy" \
	grep -q '^posture policy: none set' "$out"

# ---- the policy: only the built keymeshd
sha=$(sha256sum "$daemon" | cut -d' ' -f1)
"$keymesh" policy set --allow-binary "$sha" --refresh-interval 86400 \
	>"$out" 2>"$err"
check "policy set --allow-binary <sha256 of keymeshd>" \
	grep -q '^posture policy set (1 binaries' "$out"
"$keymesh" policy show >"$out" 2>"$err"
check "policy show lists the binary and the refresh interval" \
	eval "grep -qx '  $sha' '$out' && grep -q 'every 86400 s' '$out'"
sleep $((3 * period_ms / 1000))
if poll 20 all_up_unquarantined; then
	ok "all $nodes nodes stay up, score 100, none quarantined"
else
	not_ok "all $nodes nodes stay up" "$(cat "$out")"
fi
coord=$(sed -n 's/^coordinator: \(node[0-9]*\).*/\1/p' "$out" | head -1)
check "keymesh status names the coordinator ($coord)" test -n "$coord"
q=""
for i in $(seq 1 $nodes); do
	if [ "node$i" != "$coord" ]; then
		q=$i
		break
	fi
done

# a key, made while all are up (every node holds a share)
p11 --keypairgen --key-type rsa:2048 --id 02 --label quar >"$out" 2>&1
check "pkcs11-tool --keypairgen rsa:2048" test $? -eq 0
pkcs11-tool --module "$KEYMESH_MODULE" --read-object --type pubkey --id 02 \
	-o "$dir/pub.der" >/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$dir/pub.der" \
		-out "$dir/pub.pem" 2>/dev/null
check "the public key reads back" test -s "$dir/pub.pem"
head -c 300 /dev/urandom >"$dir/data"

# ---- node$q from a binary the policy does not allow
cp "$daemon" "$dir/keymeshd-other" && printf '\n' >>"$dir/keymeshd-other"
other=$(sha256sum "$dir/keymeshd-other" | cut -d' ' -f1)
"$keymesh" dev stop --dir "$mesh" --node $q >/dev/null 2>&1
check "dev stop --node $q" test $? -eq 0
t0=$(now_ms)
KEYMESH_DAEMON=$dir/keymeshd-other \
	"$keymesh" dev start --dir "$mesh" --node $q >"$out" 2>&1
check "node$q restarted from a copy of keymeshd with one byte appended" \
	test $? -eq 0
# its first beacon goes out once it is ready: poll every 100 ms
tq=""
limit=$(($(now_ms) + 30000))
while [ "$(now_ms)" -lt $limit ]; do
	if state_is $q quarantined; then
		tq=$(now_ms)
		break
	fi
	sleep 0.1
done
row=$(status_row $q)
if [ -n "$tq" ]; then
	elapsed=$((tq - t0))
	echo "# quarantined after $elapsed ms (bound $quarantine_bound_ms ms +" \
		"$slack_ms ms slack)"
	check "node$q is quarantined within two beacon periods of its start" \
		test $elapsed -le $((quarantine_bound_ms + slack_ms))
else
	not_ok "node$q is shown quarantined in keymesh status" "$row"
fi
check "... with the reason in the status table" \
	eval "echo '$row' | grep -q 'binary sha256 ${other:0:16}\.\.\.: not in the posture policy'"
# (the restarted node may answer the status first, before it has heard
# every peer's beacon)
others_up() {
	"$keymesh" status >"$out" 2>"$err" &&
		[ "$(grep -cE '^node[0-9]+ +up +100 ' "$out")" -eq $((nodes - 1)) ]
}
check "... the $((nodes - 1)) others up, score 100" poll 15 others_up
qlog=$mesh/node$q/keymeshd.log
# (the others may show the verdict a moment before node$q applies it)
check "node$q's own log says why, naming the coordinator" \
	poll 10 grep -q "KMD-QUARANTINED.*this node is quarantined by the coordinator $coord: binary sha256 ${other:0:16}" "$qlog"
"$keymesh" graph --format dot >"$dir/g.dot" 2>"$err"
check "keymesh graph colours node$q orange with its reason" \
	grep -q "^	\"node$q\" \[fillcolor=orange,.*not in the posture policy" \
		"$dir/g.dot"

# signatures carry on, and no partial request reaches node$q
refused_before=$(grep -c KMD-QUARANTINE-REFUSE "$qlog")
okays=0
for i in 1 2 3; do
	rm -f "$dir/sig"
	if p11 --sign -m SHA256-RSA-PKCS --id 02 -i "$dir/data" \
		-o "$dir/sig" >"$err" 2>&1 &&
		openssl dgst -sha256 -verify "$dir/pub.pem" \
			-signature "$dir/sig" "$dir/data" >/dev/null 2>&1; then
		okays=$((okays + 1))
	fi
done
check "3 of 3 signatures through the module verify" test $okays -eq 3
check "... and none asked node$q (no partial request refused there)" \
	test "$(grep -c KMD-QUARANTINE-REFUSE "$qlog")" -eq "$refused_before"

# a partial sent to it directly is refused, naming the reason
url=$(sed -n "s/^node = node$q \\(tls+tcp:.*\\)\$/\\1/p" "$KEYMESH_CONF")
timeout 30 "$send" -c "$mesh/ca" -n client -u "$url" -p node$q -w 5000 \
	-T 10 -k anykey -e 1 -t >"$out" 2>&1
rc=$?
check "node$q refuses an rsa-partial request with one line naming why" \
	eval "test $rc -eq 1 && test \$(wc -l <'$out') -eq 1 &&
	grep -q 'quarantined by the coordinator $coord: binary sha256' '$out'"
check "... and logs it" \
	test "$(grep -c KMD-QUARANTINE-REFUSE "$qlog")" -eq $((refused_before + 1))

# ---- back to the real binary: released after the hysteresis
"$keymesh" dev stop --dir "$mesh" --node $q >/dev/null 2>&1
t0=$(now_ms)
"$keymesh" dev start --dir "$mesh" --node $q >"$out" 2>&1
check "node$q restarted from the real keymeshd" test $? -eq 0
tu=""
limit=$(($(now_ms) + 40000))
while [ "$(now_ms)" -lt $limit ]; do
	if state_is $q up; then
		tu=$(now_ms)
		break
	fi
	sleep 0.2
done
if [ -n "$tu" ]; then
	elapsed=$((tu - t0))
	echo "# released after $elapsed ms"
	# three passing beacons: the third is two periods after the first
	check "node$q leaves quarantine, only after the hysteresis (>= 3 beacons)" \
		test $elapsed -ge $((2 * period_ms - 500))
else
	not_ok "node$q leaves quarantine" "$(status_row $q)"
fi
check "... and its log says so" grep -q "KMD-QUARANTINE-LIFTED" "$qlog"

# ---- silence is not distrust
s=""
for i in $(seq 1 $nodes); do
	if [ "node$i" != "$coord" ] && [ $i -ne $q ]; then
		s=$i
		break
	fi
done
"$keymesh" dev stop --dir "$mesh" --node $s >/dev/null 2>&1
check "dev stop --node $s" test $? -eq 0
seen_q=0
got=0
for t in $(seq 1 40); do
	row=$(status_row $s)
	case "$row" in
	*quarantined*) seen_q=1 ;;
	*unreachable*)
		got=1
		break
		;;
	esac
	sleep 1
done
check "the stopped node$s is shown unreachable" test $got -eq 1
check "... and never quarantined" test $seen_q -eq 0
check "... its score untouched (100)" \
	eval "echo '$row' | grep -qE '^node$s +unreachable +100 '"

# ---- bandwidth: the probe has measured links by now
"$keymesh" graph --format dot >"$dir/g.dot" 2>"$err"
check "graph edge labels carry a measured bandwidth" \
	grep -qE ' -> .*label="[0-9]+ (M|k)bit/s' "$dir/g.dot"

"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
