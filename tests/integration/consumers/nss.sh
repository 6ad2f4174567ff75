# NSS (libnss3-tools, the code paths Firefox uses): modutil -add, certutil
# -L -h all and -K, a CSR signed with the module's RSA key (verified by
# OpenSSL), and a TLS 1.3 selfserv whose key is in the module, reached by
# tstclnt (RSA-PSS) and by OpenSSL s_client (which names the signature
# scheme).  RSA only: no ECDSA in the mesh until issue #5.  Sourced by
# test-consumers.sh (lib.sh).

# a fresh NSS database with the module added
kmc_nss_db() {
	local db=$KMC_WORK/nss
	rm -rf "$db"
	mkdir -p "$db"
	printf '%s\n' "$KMC_PIN" >"$KMC_WORK/nss.pw"
	certutil -N -d "sql:$db" --empty-password || return 1
	modutil -dbdir "sql:$db" -add kmc -libfile "$KMC_MODULE" -force ||
		return 1
	modutil -dbdir "sql:$db" -list kmc
	modutil -dbdir "sql:$db" -list kmc | grep -q "Token Name: $KMC_TOKEN"
}

kmc_certutil() {
	certutil -d "sql:$KMC_WORK/nss" -f "$KMC_WORK/nss.pw" "$@"
}

kmc_nss_list_certs() {
	local l
	kmc_certutil -L -h all || return 1
	for l in "$KMC_RSA" "$KMC_EC"; do
		kmc_certutil -L -h all | grep -q "^$KMC_TOKEN:$l " ||
			{ echo "no certificate $KMC_TOKEN:$l"; return 1; }
		# and the certificate NSS reads is the one stored
		kmc_certutil -L -h "$KMC_TOKEN" -n "$KMC_TOKEN:$l" -a \
			>"$KMC_WORK/nss-$l.pem" || return 1
	done
	cmp <(openssl x509 -in "$KMC_WORK/nss-$KMC_RSA.pem" -outform DER) \
		"$KMC_RSA_CERT.der"
}

kmc_nss_list_keys() {
	local l
	kmc_certutil -K -h all || return 1
	for l in "$KMC_RSA" "$KMC_EC"; do
		kmc_certutil -K -h all | grep -q "^<.*[[:space:]]$l\$" ||
			{ echo "no key for $KMC_TOKEN:$l"; return 1; }
	done
}

# kmc_nss_csr LABEL ID PUB: a CSR signed with the module key (found by its
# CKA_ID); OpenSSL checks the self-signature and that the CSR carries the
# key's public key
kmc_nss_csr() {
	local label=$1 pub=$3 csr=$KMC_WORK/nss-$1.csr
	rm -f "$csr"
	head -c 64 /dev/urandom >"$KMC_WORK/nss.noise"
	kmc_certutil -R -h "$KMC_TOKEN" -k "$2" -a -z "$KMC_WORK/nss.noise" \
		-s "CN=$label-nss-csr" -o "$csr" -Z SHA256 || return 1
	openssl req -in "$csr" -noout -verify || return 1
	openssl req -in "$csr" -noout -pubkey | cmp - "$pub"
}

# kmc_nss_tls: TLS 1.3 with the RSA module key.  NSS signs the handshake
# with RSA-PSS (rsa_pss_rsae_sha256, CKM_RSA_PKCS_PSS); to set the key up,
# SSL_ConfigServerCert first copies it to a session object (C_CopyObject
# with CKA_TOKEN false, then with an empty template).
kmc_nss_tls() {
	local port pid rc=0 opt=-n label=$KMC_RSA cert=$KMC_RSA_CERT
	local scheme=rsa_pss_rsae_sha256 sigtype=RSA-PSS
	port=$(kmc_port)
	kmc_bg pid "$KMC_WORK/selfserv.log" selfserv -d "sql:$KMC_WORK/nss" \
		-f "$KMC_WORK/nss.pw" -p "$port" "$opt" "$KMC_TOKEN:$label" \
		-V tls1.3:tls1.3
	if ! kmc_wait_port "$port" 20 "$pid"; then
		echo "selfserv did not start: $(kmc_last "$KMC_WORK/selfserv.log" 3)"
		kmc_stop_server "$pid"
		return 1
	fi
	# (certutil -N on an existing database waits for its password)
	if [ ! -f "$KMC_WORK/nss-client/cert9.db" ]; then
		mkdir -p "$KMC_WORK/nss-client"
		certutil -N -d "sql:$KMC_WORK/nss-client" --empty-password
	fi
	echo "== tstclnt"
	# -O: validate synchronously, so -Q exits after the handshake; -o:
	# the self-signed certificate is checked by s_client below instead
	timeout 20 tstclnt -h 127.0.0.1 -p "$port" \
		-d "sql:$KMC_WORK/nss-client" -V tls1.3:tls1.3 -o -O -Q -v \
		-J "$scheme" </dev/null >"$KMC_WORK/tstclnt.out" 2>&1 || rc=1
	grep -E 'TLS 1.3|Signature Scheme|tstclnt: .*(error|ERROR)' \
		"$KMC_WORK/tstclnt.out"
	grep -q "Server Auth: .*TLS 1.3" "$KMC_WORK/tstclnt.out" &&
		grep -q "Signature Scheme: $scheme" "$KMC_WORK/tstclnt.out" ||
		rc=1
	echo "== s_client"
	timeout 20 openssl s_client -connect "127.0.0.1:$port" -tls1_3 \
		-CAfile "$cert" -verify_return_error \
		</dev/null >"$KMC_WORK/nss-s_client.out" 2>&1 || rc=1
	grep -E '^New,|Peer signature type|Verify return code' \
		"$KMC_WORK/nss-s_client.out"
	grep -q '^New, TLSv1.3' "$KMC_WORK/nss-s_client.out" &&
		grep -q "Peer signature type: $sigtype" "$KMC_WORK/nss-s_client.out" &&
		grep -q 'Verify return code: 0 (ok)' "$KMC_WORK/nss-s_client.out" ||
		rc=1
	kmc_stop_server "$pid"
	echo "== selfserv"
	cat "$KMC_WORK/selfserv.log"
	return $rc
}

# kmc_nss full|quick
kmc_nss() {
	kmc_check nss-modutil-add kmc_nss_db || return
	kmc_check nss-certutil-list-certs kmc_nss_list_certs
	kmc_check nss-certutil-list-keys kmc_nss_list_keys
	kmc_check nss-csr-rsa kmc_nss_csr "$KMC_RSA" "$KMC_RSA_ID" \
		"$KMC_RSA_PUB"
	kmc_check nss-tls13-rsa-pss kmc_nss_tls
}
