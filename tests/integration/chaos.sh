#!/bin/bash
# make chaos: concurrent signers through the PKCS#11 module while daemons
# die and come back underneath (issue #6, item 3).  Not part of make check.
#
#   KM_BUILDDIR=$PWD tests/integration/chaos.sh     (or: make chaos)
#
# A fresh 3-of-5 dev mesh and an RSA-2048 key made through pkcs11-tool;
# then, for CHAOS_SECONDS (300), CHAOS_SIGNERS (8) loops each run
# `pkcs11-tool --sign` one call after the other (a process per call: load,
# C_Initialize, login, sign) and verify every signature with OpenSSL from
# the public key, while a chaos loop every 1-4 s kills (SIGKILL), stops
# (SIGTERM) or restarts a random daemon, never leaving more than
# CHAOS_MAX_DOWN (2) down at once.  A call running past CHAOS_CALL_TIMEOUT
# (30 s) is killed and counted as hung.
#
# Prints the counts of operations, failures (the module returned an error;
# with at most 2 of 5 down there should be none, but a call caught by a
# daemon dying under it may fail: counted, shown, not fatal),
# wrong results (a signature that does not verify: must be 0) and hung
# calls (must be 0), and the most frequent failure messages.  Exits 1 if a
# result was wrong, a call hung, or no call succeeded at all.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
seconds=${CHAOS_SECONDS:-300}
signers=${CHAOS_SIGNERS:-8}
max_down=${CHAOS_MAX_DOWN:-2}
call_timeout=${CHAOS_CALL_TIMEOUT:-30}
nodes=5

work=$(mktemp -d "${TMPDIR:-/tmp}/km-chaos.XXXXXX") || exit 1
mesh=$work/mesh
pids=""

cleanup() {
	local p
	for p in $pids; do
		kill "$p" 2>/dev/null
	done
	for p in $pids; do
		wait "$p" 2>/dev/null
	done
	if [ -f "$mesh/devmesh" ]; then
		"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
	fi
	if [ -n "${CHAOS_KEEP:-}" ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() {
	echo "chaos: $*" >&2
	exit 1
}

[ -x "$keymesh" ] || die "$keymesh is not built"
unset KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN
eval "$("$keymesh" dev up --dir "$mesh" --nodes $nodes --threshold 3 \
	2>"$work/devup.err")"
[ -n "${KEYMESH_MODULE:-}" ] || die "dev up failed: $(tail -n 2 "$work/devup.err")"
if [ ! -f "$KEYMESH_MODULE" ]; then
	# dev up names pkcs11/.libs/; libtool builds a top-level
	# pkcs11_LTLIBRARIES in .libs/
	for m in "$builddir/pkcs11/.libs/keymesh-pkcs11.so" \
		"$builddir/.libs/keymesh-pkcs11.so"; do
		[ -f "$m" ] && KEYMESH_MODULE=$m && break
	done
fi
[ -f "$KEYMESH_MODULE" ] || die "the module $KEYMESH_MODULE is not built"
export KEYMESH_CONF KEYMESH_MODULE

p11() {
	pkcs11-tool --module "$KEYMESH_MODULE" --login --pin "$KEYMESH_PIN" "$@"
}

p11 --keypairgen --key-type rsa:2048 --id 63686173 --label chaos-rsa \
	>"$work/keygen.out" 2>&1 || die "keypairgen: $(tail -n 2 "$work/keygen.out")"
pkcs11-tool --module "$KEYMESH_MODULE" --read-object --type pubkey \
	--label chaos-rsa -o "$work/pub.der" >/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem" ||
	die "cannot read the public key"

end=$(($(date +%s) + seconds))

# signer I: one line per call in $work/signerI.log: ok, fail <msg>,
# wrong <mech>, hang
signer() {
	local i=$1 d=$work/s$1 mech rc n=0
	mkdir -p "$d"
	while [ "$(date +%s)" -lt "$end" ]; do
		n=$((n + 1))
		head -c $((RANDOM % 2000 + 1)) /dev/urandom >"$d/data"
		rm -f "$d/sig"
		if [ $((n % 2)) -eq 0 ]; then
			mech=SHA256-RSA-PKCS
		else
			mech=SHA256-RSA-PKCS-PSS
		fi
		timeout -k 2 "$call_timeout" pkcs11-tool \
			--module "$KEYMESH_MODULE" --login --pin "$KEYMESH_PIN" \
			--sign -m "$mech" --label chaos-rsa --input-file "$d/data" \
			--output-file "$d/sig" >"$d/out" 2>&1
		rc=$?
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			echo "hang $mech"
		elif [ $rc -ne 0 ]; then
			echo "fail $({ grep -i -m1 'error\|CKR_' "$d/out" ||
				tail -n 1 "$d/out"; } | cut -c1-160)"
		elif { [ $mech = SHA256-RSA-PKCS ] &&
			openssl dgst -sha256 -verify "$work/pub.pem" \
				-signature "$d/sig" "$d/data" >/dev/null 2>&1; } ||
			{ [ $mech = SHA256-RSA-PKCS-PSS ] &&
				openssl dgst -sha256 -verify "$work/pub.pem" \
					-sigopt rsa_padding_mode:pss \
					-sigopt rsa_pss_saltlen:auto \
					-signature "$d/sig" "$d/data" >/dev/null 2>&1; }; then
			echo ok
		else
			echo "wrong $mech"
			cp "$d/data" "$work/wrong-$i-$n.data"
			cp "$d/sig" "$work/wrong-$i-$n.sig" 2>/dev/null
		fi
	done >"$work/signer$i.log"
}

# the chaos loop: a random daemon killed, stopped or started every 1-4 s
chaos() {
	local node action down running
	while [ "$(date +%s)" -lt "$end" ]; do
		sleep $((RANDOM % 4 + 1))
		down=""
		running=""
		for node in $(seq 1 $nodes); do
			if [ -f "$mesh/node$node/keymeshd.pid" ]; then
				running="$running $node"
			else
				down="$down $node"
			fi
		done
		set -- $down
		local ndown=$#
		if [ "$ndown" -ge "$max_down" ] ||
			{ [ "$ndown" -gt 0 ] && [ $((RANDOM % 2)) -eq 0 ]; }; then
			set -- $down
			node=$(eval "echo \${$((RANDOM % $# + 1))}")
			action=start
		else
			set -- $running
			node=$(eval "echo \${$((RANDOM % $# + 1))}")
			if [ $((RANDOM % 2)) -eq 0 ]; then
				action="kill"
			else
				action=stop
			fi
		fi
		if "$keymesh" dev "$action" --dir "$mesh" --node "$node" \
			>/dev/null 2>>"$work/chaos.err"; then
			echo "$(date +%T) $action node$node"
		else
			echo "$(date +%T) $action node$node FAILED: $(tail -n 1 "$work/chaos.err")"
		fi
	done >"$work/chaos.log"
}

echo "chaos: ${seconds}s, $signers signers, at most $max_down of $nodes daemons down, module $KEYMESH_MODULE"
for i in $(seq 1 "$signers"); do
	signer "$i" &
	pids="$pids $!"
done
chaos &
pids="$pids $!"
for p in $pids; do
	wait "$p"
done
pids=""

cat "$work"/signer*.log >"$work/all.log"
ops=$(wc -l <"$work/all.log")
ok=$(grep -c '^ok$' "$work/all.log")
failures=$(grep -c '^fail' "$work/all.log")
wrong=$(grep -c '^wrong' "$work/all.log")
hung=$(grep -c '^hang' "$work/all.log")
events=$(wc -l <"$work/chaos.log")
kills=$(grep -c ' kill node' "$work/chaos.log")
stops=$(grep -c ' stop node' "$work/chaos.log")
starts=$(grep -c ' start node' "$work/chaos.log")

echo "chaos events: $events ($kills killed, $stops stopped, $starts started)"
if grep -q FAILED "$work/chaos.log"; then
	grep FAILED "$work/chaos.log" | head -n 3 | sed 's/^/  /'
fi
echo "operations: $ops, ok: $ok, failures: $failures, wrong results: $wrong, hung calls: $hung"
if [ "$failures" -gt 0 ]; then
	echo "most frequent failures:"
	grep '^fail' "$work/all.log" | sort | uniq -c | sort -rn | head -n 5 |
		sed 's/^/  /'
fi
if [ "$wrong" -ne 0 ] || [ "$hung" -ne 0 ] || [ "$ok" -eq 0 ]; then
	CHAOS_KEEP=1
	echo "chaos: FAILED"
	exit 1
fi
echo "chaos: OK"
exit 0
