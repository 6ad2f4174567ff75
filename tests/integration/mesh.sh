# Helpers for the shell tests that run a dev mesh: sourced after tap.sh,
# with $keymesh set (the built admin CLI).
#
#   kmt_mesh_require [hooks] [PROGRAM...]
#       exit 77 (skipped) without SoftHSMv2, pkcs11-tool, openssl or the
#       PROGRAMs, or, with "hooks", in a build without --enable-test-hooks;
#       exit 1 when $keymesh is not built.  Clears the KEYMESH_* and
#       KEYMESHD_TEST_* variables a caller's shell may have set.
#   kmt_mesh_tmpdir NAME
#       sets $dir (a fresh directory), $mesh and $out, and a trap that on
#       exit stops $signer_pid (if set), brings the mesh down and removes
#       $dir (KM_TEST_KEEP=1 keeps both, for a look afterwards).
#   fail_now NAME WHY      not_ok, the closing count, exit 1
#   now_ms                 wall clock in ms
#   coordinator            the node `keymesh status` names, or nothing
#   wait_coordinator NOT MS  waits for a coordinator other than NOT
#   key_line LABEL         "K/N EPOCH STATE" of a key in `keymesh key list`
#   p11 ARGS...            pkcs11-tool through the module, logged in

kmt_mesh_require() {
	local hooks=0 c

	if [ "${1:-}" = hooks ]; then
		hooks=1
		shift
	fi
	if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
		echo "SKIP: configure found no libsofthsm2.so"
		exit 77
	fi
	for c in softhsm2-util pkcs11-tool openssl "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			echo "SKIP: $c is not installed"
			exit 77
		fi
	done
	[ -x "$keymesh" ] || { echo "FAIL: $keymesh is not built"; exit 1; }
	if [ $hooks -eq 1 ] &&
		! grep -q '^#define KM_TEST_HOOKS 1' "$builddir/config.h" 2>/dev/null; then
		echo "SKIP: not a --enable-test-hooks build"
		exit 77
	fi
	unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN
	unset KEYMESH_SO_PIN KEYMESHD_TEST_FAULT KEYMESHD_TEST_FAULT_FILE
	unset KEYMESHD_TEST_EVIDENCE KEYMESHD_TEST_ACCUSE_FILE
	unset KEYMESHD_TEST_SUSPECT_MS
}

kmt_mesh_cleanup() {
	if [ -n "${signer_pid:-}" ]; then
		kill "$signer_pid" 2>/dev/null
		wait "$signer_pid" 2>/dev/null
	fi
	if [ -n "${KM_TEST_KEEP:-}" ]; then
		echo "# kept $dir (the mesh still runs)"
		return
	fi
	if [ -f "$mesh/devmesh" ]; then
		"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
	fi
	rm -rf "$dir"
}

kmt_mesh_tmpdir() {
	dir=$(mktemp -d "${TMPDIR:-/tmp}/km-$1.XXXXXX") || exit 1
	mesh=$dir/mesh
	out=$dir/out
	signer_pid=""
	trap kmt_mesh_cleanup EXIT
	trap 'exit 1' INT TERM HUP
}

fail_now() {
	not_ok "$1" "$2"
	echo "$passed passed, $failed failed"
	exit 1
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

coordinator() {
	"$keymesh" status 2>/dev/null |
		sed -n 's/^coordinator: \(node[0-9]*\)\( .*\)\{0,1\}$/\1/p'
}

wait_coordinator() {
	local not=$1 until=$(($(now_ms) + $2)) c
	while [ "$(now_ms)" -lt $until ]; do
		c=$(coordinator)
		if [ -n "$c" ] && [ "$c" != "$not" ]; then
			echo "$c"
			return 0
		fi
		sleep 0.2
	done
	return 1
}

key_line() {
	"$keymesh" key list 2>/dev/null |
		awk -v l="$1" '$1 == l { print $4, $5, $6 }'
}

p11() {
	pkcs11-tool --module "$KEYMESH_MODULE" --login --pin "$KEYMESH_PIN" "$@"
}
