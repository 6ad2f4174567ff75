# Shared helpers of the consumer suite (sourced by test-consumers.sh and
# the per-consumer scripts in this directory).
#
# The suite talks to one PKCS#11 module through real applications.  What it
# needs comes from the environment set up by test-consumers.sh:
#   KMC_MODULE   the module under test (keymesh-pkcs11.so, or SoftHSMv2)
#   KMC_PIN      its user PIN
#   KMC_TOKEN    the token label (for pkcs11: URIs)
#   KMC_WORK     a private scratch directory (removed by the caller)
#   KMC_SRC      this directory (tests/integration/consumers)
#   KMC_RSA, KMC_EC          key labels; KMC_RSA_ID, KMC_EC_ID their CKA_IDs
#   KMC_RSA_CERT, KMC_EC_CERT  their self-signed certificates (PEM)
#   KMC_RSA_PUB, KMC_EC_PUB    their public keys (PEM)
#
# Each check is one named test: kmc_pass NAME / kmc_fail NAME REASON print
# "PASS name" or "FAIL name: reason" and count.  kmc_check NAME CMD... runs
# CMD with its output in $KMC_WORK/out and fails with the output's last line.

KMC_PASSED=${KMC_PASSED:-0}
KMC_FAILED=${KMC_FAILED:-0}
KMC_FAILS=${KMC_FAILS:-}
# per-call limit: no consumer call may hang the suite
KMC_TIMEOUT=${KMC_TIMEOUT:-60}
KMC_ENGINE=${KMC_ENGINE:-/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so}
KMC_SPY=${KMC_SPY:-/usr/lib/x86_64-linux-gnu/pkcs11-spy.so}
KMC_PROXY=${KMC_PROXY:-/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so}

# KMC_XFAIL: lines "name=reason" of checks the stand-in module (SoftHSMv2)
# cannot pass; set by test-consumers.sh --softhsm only, never for keymesh.
# Such a check that fails prints "XFAIL name: reason" and counts as neither
# passed nor failed; one that passes is a failure (the list is stale).
KMC_XFAIL=${KMC_XFAIL:-}
KMC_XFAILED=${KMC_XFAILED:-0}

kmc_xfail_reason() {
	local e
	while IFS= read -r e; do
		if [ -n "$e" ] && [ "${e%%=*}" = "$1" ]; then
			echo "${e#*=}"
			return 0
		fi
	done <<<"$KMC_XFAIL"
	return 1
}

# KMC_PREFIX names a rerun of checks (e.g. "2down-")
KMC_PREFIX=${KMC_PREFIX:-}

kmc_pass() {
	local why
	set -- "$KMC_PREFIX$1" "${@:2}"
	if why=$(kmc_xfail_reason "$1"); then
		KMC_FAILED=$((KMC_FAILED + 1))
		KMC_FAILS="$KMC_FAILS $1"
		echo "FAIL $1: passed, but is listed as expected to fail ($why)"
		return 0
	fi
	KMC_PASSED=$((KMC_PASSED + 1))
	echo "PASS $1"
}

kmc_fail() {
	local why
	set -- "$KMC_PREFIX$1" "${@:2}"
	if why=$(kmc_xfail_reason "$1"); then
		KMC_XFAILED=$((KMC_XFAILED + 1))
		echo "XFAIL $1: $why ($2)" | cut -c1-400
		return 0
	fi
	KMC_FAILED=$((KMC_FAILED + 1))
	KMC_FAILS="$KMC_FAILS $1"
	echo "FAIL $1: $2"
}

# the last non-empty line of a file, squeezed onto one line, for reasons
kmc_last() {
	tail -c 20000 "$1" 2>/dev/null | grep -v '^[[:space:]]*$' | tail -n "${2:-1}" |
		tr '\n' ' ' | cut -c1-300
}

# kmc_run CMD...: run CMD (a program or one of the suite's functions) under
# the per-call timeout, output to $KMC_WORK/out
kmc_run() {
	# shellcheck disable=SC2046
	export -f $(compgen -A function)
	export ${!KMC_*}
	timeout -k 2 "$KMC_TIMEOUT" bash -c '"$@"' kmc "$@" \
		>"$KMC_WORK/out" 2>&1 </dev/null
}

# kmc_check NAME CMD...: one test that passes when CMD exits 0
kmc_check() {
	local name=$1 rc
	shift
	kmc_run "$@"
	rc=$?
	if [ $rc -eq 0 ]; then
		kmc_pass "$name"
		return 0
	fi
	if [ $rc -eq 124 ]; then
		kmc_fail "$name" "timed out after ${KMC_TIMEOUT}s: $(kmc_last "$KMC_WORK/out")"
	else
		kmc_fail "$name" "exit $rc: $(kmc_last "$KMC_WORK/out" 2)"
	fi
	return 1
}

# p11: pkcs11-tool on the module under test
p11() {
	pkcs11-tool --module "$KMC_MODULE" "$@"
}

p11login() {
	pkcs11-tool --module "$KMC_MODULE" --login --pin "$KMC_PIN" "$@"
}

# ossl: openssl with the libp11 engine configured for the module under
# test ($KMC_OSSL_CNF selects another engine config, e.g. through the spy)
ossl() {
	OPENSSL_CONF=${KMC_OSSL_CNF:-$KMC_WORK/openssl-engine.cnf} openssl "$@"
}

# kmc_write_engine_conf FILE MODULE: the engine's config: the module, the
# PIN, nothing else
kmc_write_engine_conf() {
	cat >"$1" <<EOF
openssl_conf = kmc_init
[kmc_init]
engines = kmc_engines
[kmc_engines]
pkcs11 = kmc_pkcs11
[kmc_pkcs11]
engine_id = pkcs11
dynamic_path = $KMC_ENGINE
MODULE_PATH = $2
PIN = $KMC_PIN
init = 0
EOF
}

# pkcs11: URI of a key or certificate by label
kmc_uri() {
	echo "pkcs11:token=$KMC_TOKEN;object=$1;type=$2"
}

# kmc_port: a free TCP port on loopback: below Linux's ephemeral range
# (32768-60999), where an outgoing connection's local port can take it
# between this check and the server's bind (selfserv: PR_Bind "address
# in use"), and with no socket on it in any state
kmc_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
}

# kmc_wait_port PORT [SECONDS [PID]]: until something listens on PORT
# (fails at once if process PID has exited)
kmc_wait_port() {
	local i n=$((${2:-10} * 10))
	for ((i = 0; i < n; i++)); do
		if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
			return 0
		fi
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

# kmc_spy LOG CMD...: run CMD (a shell function of this suite: p11,
# p11login, ossl) through pkcs11-spy logging to LOG, with the module under
# test behind the spy.
kmc_spy() {
	local log=$1
	shift
	# the spy gets the real module; CMD gets the spy in its place
	# shellcheck disable=SC2097,SC2098
	PKCS11SPY=$KMC_MODULE PKCS11SPY_OUTPUT=$log \
		KMC_OSSL_CNF=$KMC_WORK/openssl-spy.cnf KMC_MODULE=$KMC_SPY "$@"
}

# servers started by a check (s_server, selfserv, sshd): killed by the
# check itself, or by the suite's trap
KMC_SERVERS=""

# kmc_bg PIDVAR LOG CMD...: start CMD in the background, output to LOG
kmc_bg() {
	local var=$1 log=$2
	shift 2
	"$@" >"$log" 2>&1 &
	printf -v "$var" '%s' $!
	KMC_SERVERS="$KMC_SERVERS $!"
}

kmc_stop_server() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	KMC_SERVERS=${KMC_SERVERS// $1/}
}

kmc_stop_servers() {
	local p
	for p in $KMC_SERVERS; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	KMC_SERVERS=""
}
