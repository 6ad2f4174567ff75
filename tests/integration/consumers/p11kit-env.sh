# The module registered with p11-kit for p11-kit, p11-kit-proxy.so and
# GnuTLS.  p11-kit ignores user configs (~/.config/pkcs11) in a program
# running as root, so the suite writes a module config into the system
# config directory /etc/pkcs11/modules for the length of the run (removed
# by the suite's exit trap): conf/keymesh.module (made from
# conf/keymesh.module.in; what `make install` puts into p11-kit's module
# directory), with the module under test's absolute path, and enable-in limited to the programs of this suite so no other
# program on the machine loads it meanwhile.
# Sourced by gnutls.sh and p11-kit.sh (lib.sh).

KMC_P11KIT_CONF=${KMC_P11KIT_CONF:-/etc/pkcs11/modules/kmc-test-$$.module}

kmc_p11kit_setup() {
	local src=$KMC_SRC/../../../conf/keymesh.module.in
	[ -f "$KMC_P11KIT_CONF" ] && return 0
	mkdir -p "$(dirname "$KMC_P11KIT_CONF")" || return 1
	{
		echo "# written by tests/integration/test-consumers.sh (pid $$)"
		if [ -f "$src" ]; then
			sed "s|^module:.*|module: $KMC_MODULE|" "$src"
		else
			echo "module: $KMC_MODULE"
		fi
		echo "enable-in: p11-kit, p11tool, pkcs11-tool, openssl, certtool"
	} >"$KMC_P11KIT_CONF" || return 1
	cat "$KMC_P11KIT_CONF"
	grep -q "^module: $KMC_MODULE\$" "$KMC_P11KIT_CONF"
}

kmc_p11kit_cleanup() {
	case $KMC_P11KIT_CONF in
	/etc/pkcs11/modules/kmc-test-*.module)
		rm -f "$KMC_P11KIT_CONF"
		# the directories too, if the suite made them (empty)
		rmdir /etc/pkcs11/modules /etc/pkcs11 2>/dev/null
		;;
	esac
	return 0
}

# kmc_p11kit CMD...: CMD as p11-kit sees it (kept as a hook)
kmc_p11kit() {
	"$@"
}
