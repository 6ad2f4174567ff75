# tests/integration/tap.sh: the pass/fail bookkeeping the shell tests
# share.  Source it; each test prints its closing 'N passed, N failed'
# line from $passed and $failed and exits non-zero when $failed > 0.
passed=0
failed=0

# ok DESCRIPTION
ok() {
	passed=$((passed + 1))
	echo "ok   - $1"
}

# not_ok DESCRIPTION [DETAIL LINE...]
not_ok() {
	failed=$((failed + 1))
	echo "FAIL - $1"
	shift
	for line in "$@"; do
		echo "       $line"
	done
}

# check DESCRIPTION COMMAND...: ok when COMMAND succeeds
check() {
	local what=$1
	shift
	if "$@"; then
		ok "$what"
	else
		not_ok "$what"
	fi
}
