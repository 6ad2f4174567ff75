# OpenSSH 9.2: ssh-keygen -D prints the module's public keys (RSA and EC),
# and ssh -I logs in with the RSA module key (no ECDSA in the mesh until
# issue #5) to a throwaway sshd on a loopback port (its own
# config, host key and authorized_keys in the scratch directory; run as
# root with StrictModes off).  The PIN reaches ssh through SSH_ASKPASS.
# (No IdentitiesOnly=yes: OpenSSH 9.2 then drops the -I keys too.)
# Sourced by test-consumers.sh (lib.sh).

kmc_ssh_keygen_d() {
	local want
	ssh-keygen -D "$KMC_MODULE" >"$KMC_WORK/ssh-D.pub" || return 1
	cat "$KMC_WORK/ssh-D.pub"
	for want in "$KMC_RSA_PUB" "$KMC_EC_PUB"; do
		ssh-keygen -i -m PKCS8 -f "$want" >"$want.ssh" || return 1
		grep -q "$(cut -d' ' -f2 "$want.ssh")" "$KMC_WORK/ssh-D.pub" || {
			echo "missing: $(cat "$want.ssh")"
			return 1
		}
	done
}

# the sshd of the suite, authorising one module key
kmc_sshd_start() {
	local d=$KMC_WORK/sshd
	rm -rf "$d"
	mkdir -p "$d"
	# sshd's privilege separation needs it (it is normally made by the
	# openssh-server package's service)
	[ -d /run/sshd ] || mkdir -p -m 0755 /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" || return 1
	cp "$1" "$d/authorized_keys"
	KMC_SSH_PORT=$(kmc_port)
	cat >"$d/sshd_config" <<EOC
ListenAddress 127.0.0.1:$KMC_SSH_PORT
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $(id -un)
LogLevel VERBOSE
EOC
	kmc_bg KMC_SSHD "$d/sshd.log" /usr/sbin/sshd -D -e -f "$d/sshd_config"
	kmc_wait_port "$KMC_SSH_PORT" 10 "$KMC_SSHD"
}

kmc_ssh_login() {
	local d=$KMC_WORK/sshd out
	printf '#!/bin/sh\necho "%s"\n' "$KMC_PIN" >"$d/askpass"
	chmod 0700 "$d/askpass"
	out=$(SSH_ASKPASS=$d/askpass SSH_ASKPASS_REQUIRE=force DISPLAY=:0 \
		timeout 30 ssh -F /dev/null -I "$KMC_MODULE" \
		-o IdentityAgent=none \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile="$d/known_hosts" \
		-o PasswordAuthentication=no -o ConnectTimeout=10 \
		-p "$KMC_SSH_PORT" "$(id -un)@127.0.0.1" echo kmc-ssh-ok \
		</dev/null 2>&1)
	echo "$out"
	[ "$(echo "$out" | tail -n 1)" = kmc-ssh-ok ] || {
		grep -E 'Accepted|Failed|error' "$d/sshd.log" | tail -n 3
		return 1
	}
	grep -E 'Accepted publickey' "$d/sshd.log"
}

# kmc_ssh_check NAME PUB: log in with the key whose public key is PUB
kmc_ssh_check() {
	if ! kmc_sshd_start "$2.ssh"; then
		kmc_fail "$1" "sshd did not start: $(kmc_last "$KMC_WORK/sshd/sshd.log" 2)"
		kmc_stop_server "$KMC_SSHD"
		return
	fi
	kmc_check "$1" kmc_ssh_login
	kmc_stop_server "$KMC_SSHD"
}

# kmc_openssh full|quick
kmc_openssh() {
	kmc_check openssh-keygen-D kmc_ssh_keygen_d || return
	kmc_ssh_check openssh-login-rsa "$KMC_RSA_PUB"
}
