# Failure underneath the consumers (issue #6 item 3), against the suite's
# dev mesh (3 of 5):
#   - 2 of 5 daemons stopped: every consumer passes its quick checks again;
#   - 3 stopped: one private-key operation per consumer (checked to work
#     with 2 down first) fails with an error message within KMC_FAIL_FAST
#     seconds (5), and a long-running openssl s_server started before keeps
#     running;
#   - the third daemon back: every consumer, and that same s_server, works
#     again within KMC_FAIL_FAST seconds of the daemon being ready.
# Sourced by test-consumers.sh after the consumers' own scripts (lib.sh).

KMC_FAIL_FAST=${KMC_FAIL_FAST:-5}

# one private-key operation per consumer, each checked end to end
kmc_op_pkcs11_tool() { kmc_p11_rsa_sign SHA256-RSA-PKCS; }
kmc_op_openssl() {
	kmc_ossl_sign "$KMC_RSA" "$KMC_RSA_PUB" digest:sha256 \
		rsa_padding_mode:pss rsa_pss_saltlen:32
}
kmc_op_s_server() {
	kill -0 "$KMC_SSERVER" || { echo "s_server has exited"; return 1; }
	kmc_ossl_client "$KMC_SPORT" "$KMC_RSA_CERT" RSA-PSS
}
kmc_op_java() {
	kmc_java_run_once
}
kmc_op_nss() { kmc_nss_csr "$KMC_RSA" "$KMC_RSA_ID" "$KMC_RSA_PUB"; }
kmc_op_gnutls() { kmc_gnutls_test_sign "$KMC_RSA"; }
kmc_op_openssh() { kmc_ssh_login; }
kmc_op_p11_kit() { kmc_proxy_sign; }

kmc_java_run_once() {
	java -Dkmc.module="$KMC_MODULE" "$KMC_SRC/java/KmConsumer.java" \
		"$KMC_SRC/java/sunpkcs11.cfg" "$KMC_PIN" "$KMC_RSA" "$KMC_EC" \
		sign-once
}

# kmc_ms: milliseconds since the epoch
kmc_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# kmc_op_elapsed T0: the operation's time in ms; Java reports its own
# (login + signing), without the JVM's start-up and compilation
kmc_op_elapsed() {
	local j
	j=$(sed -n 's/^SIGN-\(OK\|FAIL\) \([0-9]*\).*/\2/p' "$KMC_WORK/out" |
		head -n 1)
	if [ -n "$j" ]; then
		echo "$j"
	else
		echo $(($(kmc_ms) - $1))
	fi
}

# kmc_fails_fast NAME OP: OP must fail, with a message, in time
kmc_fails_fast() {
	local name=$1 op=$2 t0 rc ms
	t0=$(kmc_ms)
	KMC_TIMEOUT=$((KMC_FAIL_FAST * 6)) kmc_run "$op"
	rc=$?
	ms=$(kmc_op_elapsed "$t0")
	if [ $rc -eq 0 ]; then
		kmc_fail "$name" "succeeded with 3 of 5 daemons down (threshold 3 needs 3)"
	elif [ "$ms" -gt $((KMC_FAIL_FAST * 1000)) ]; then
		kmc_fail "$name" "failed only after $ms ms (limit ${KMC_FAIL_FAST}s): $(kmc_last "$KMC_WORK/out")"
	elif ! grep -q '[[:alpha:]]' "$KMC_WORK/out"; then
		kmc_fail "$name" "failed silently (exit $rc, no message)"
	else
		kmc_pass "$name"
		echo "#   $ms ms: $(grep -i -m1 'error\|fail\|CKR_\|denied\|refused' "$KMC_WORK/out" | cut -c1-200)"
	fi
}

# kmc_recovers NAME OP: OP works again within KMC_FAIL_FAST seconds of the
# first try (the consumers are tried one after the other from the moment
# the daemon is ready, the long-running s_server first)
kmc_recovers() {
	local name=$1 op=$2 t0 now
	t0=$(kmc_ms)
	while :; do
		KMC_TIMEOUT=$((KMC_FAIL_FAST * 6)) kmc_run "$op"
		if [ $? -eq 0 ]; then
			kmc_pass "$name"
			echo "#   working after $(($(kmc_ms) - t0)) ms (daemon back $(($(kmc_ms) - KMC_BACK)) ms ago)"
			return 0
		fi
		now=$(kmc_ms)
		if [ $((now - t0)) -gt $((KMC_FAIL_FAST * 1000)) ]; then
			kmc_fail "$name" "still failing after $((now - t0)) ms of retries (daemon back $((now - KMC_BACK)) ms ago): $(kmc_last "$KMC_WORK/out" 2)"
			return 1
		fi
		sleep 0.3
	done
}

# kmc_failure KEYMESH MESHDIR
kmc_failure() {
	local km=$1 mesh=$2 c ops=""

	for c in 4 5; do
		kmc_check "mesh-stop-node$c" "$km" dev stop --dir "$mesh" \
			--node "$c" || return
	done
	echo "# --- 2 of 5 daemons stopped: the consumers again (quick checks)"
	KMC_PREFIX=2down-
	for c in $consumers; do
		if wanted "$c"; then
			"kmc_${c//-/_}" quick
		fi
	done
	KMC_PREFIX=

	# long-running servers, started while 3 can still answer
	KMC_SSERVER=
	if wanted openssl; then
		if kmc_ossl_server "$KMC_RSA" "$KMC_RSA_CERT"; then
			# first: it must recover without a restart
			ops="s_server"
		else
			kmc_fail failure-s_server-start "$(kmc_last "$KMC_WORK/s_server-$KMC_RSA.log" 2)"
			kmc_stop_server "$KMC_SSERVER"
			KMC_SSERVER=
		fi
		ops="$ops openssl"
	fi
	wanted pkcs11-tool && ops="$ops pkcs11_tool"
	wanted java && ops="$ops java"
	wanted nss && ops="$ops nss"
	wanted gnutls && ops="$ops gnutls"
	if wanted openssh; then
		if kmc_sshd_start "$KMC_RSA_PUB.ssh"; then
			ops="$ops openssh"
		else
			kmc_fail failure-sshd-start "$(kmc_last "$KMC_WORK/sshd/sshd.log" 2)"
		fi
	fi
	wanted p11-kit && ops="$ops p11_kit"

	# an operation that fails already with 3 of 5 up proves nothing
	# about failing fast: keep only those that work now
	local good=""
	for c in $ops; do
		if kmc_check "2down-${c//_/-}-baseline" "kmc_op_$c"; then
			good="$good $c"
		fi
	done
	ops=$good

	kmc_check mesh-stop-node3 "$km" dev stop --dir "$mesh" --node 3 ||
		return
	echo "# --- 3 of 5 daemons stopped: each consumer fails, clearly and fast"
	for c in $ops; do
		kmc_fails_fast "3down-${c//_/-}-fails" "kmc_op_$c"
	done
	if [ -z "$KMC_SSERVER" ]; then
		: # did not start: failure-s_server-start
	elif kill -0 "$KMC_SSERVER" 2>/dev/null; then
		kmc_pass 3down-s_server-still-running
	else
		kmc_fail 3down-s_server-still-running "s_server exited: $(kmc_last "$KMC_WORK/s_server-$KMC_RSA.log" 2)"
	fi

	kmc_check mesh-start-node3 "$km" dev start --dir "$mesh" --node 3 ||
		return
	KMC_BACK=$(kmc_ms)
	echo "# --- node3 is back: each consumer works again, not restarted"
	for c in $ops; do
		kmc_recovers "back-${c//_/-}-works" "kmc_op_$c"
	done
	kmc_stop_servers
	kmc_check mesh-start-all "$km" dev start --dir "$mesh"
}
