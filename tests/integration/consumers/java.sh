# Java 17 SunPKCS11: java/sunpkcs11.cfg and java/KmConsumer.java (run from
# source, no build step): the KeyStore lists each key with its certificate,
# SHA256withRSA multi-part, RSASSA-PSS, RSA/ECB/PKCS1Padding decryption and
# SecureRandom from the token (no SHA256withECDSA: no ECDSA in the mesh
# until issue #5).  Sourced by test-consumers.sh (lib.sh).

# the checks the Java program must report, in order
KMC_JAVA_CHECKS="java-keystore-lists-keys java-sha256withrsa-multipart
java-rsassa-pss java-cipher-rsa-pkcs1-decrypt java-securerandom-from-token"

kmc_java_run() {
	java -Dkmc.module="$KMC_MODULE" "$KMC_SRC/java/KmConsumer.java" \
		"$KMC_SRC/java/sunpkcs11.cfg" "$KMC_PIN" "$KMC_RSA" "$KMC_EC"
}

# kmc_java full|quick (the same checks either way)
kmc_java() {
	local c line rc
	kmc_run kmc_java_run
	rc=$?
	for c in $KMC_JAVA_CHECKS; do
		line=$(grep -E "^(PASS|FAIL) $c( |:|\$)" "$KMC_WORK/out" | head -n 1)
		case $line in
		"PASS $c"*)
			kmc_pass "$c"
			;;
		"FAIL $c: "*)
			kmc_fail "$c" "${line#FAIL "$c": }"
			;;
		*)
			kmc_fail "$c" "not reached (java exit $rc): $(grep -m1 -E 'Exception|error' "$KMC_WORK/out" | cut -c1-200) $(kmc_last "$KMC_WORK/out")"
			;;
		esac
	done
}
