# The module registered with p11-kit for p11-kit, p11-kit-proxy.so and
# GnuTLS.  p11-kit ignores user configs (~/.config/pkcs11) in a program
# running as root, so the suite writes a module config into the system
# config directory /etc/pkcs11/modules for the length of the run (removed
# by the suite's exit trap): conf/keymesh.module (made from
# conf/keymesh.module.in; what `make install` puts into p11-kit's module
# directory), with the module under test's absolute path.
#
# The config is system-wide, and another run of this suite on the machine
# registers its module (its own build, same token label) beside it.  So
# the suite runs its p11-kit programs under names of their own
# (p11tool-kmcPID..., through wrappers in $KMC_WORK/p11kit-bin that set
# argv[0]) and enables the module in those names only (enable-in): no
# other program loads this run's module, and this run's programs load no
# other run's.
# Sourced by gnutls.sh and p11-kit.sh (lib.sh).

KMC_P11KIT_CONF=${KMC_P11KIT_CONF:-/etc/pkcs11/modules/kmc-test-$$.module}
KMC_P11KIT_TAG=${KMC_P11KIT_TAG:-kmc$$}
KMC_P11KIT_BIN=${KMC_P11KIT_BIN:-$KMC_WORK/p11kit-bin}
KMC_P11KIT_PROGS="p11-kit p11tool pkcs11-tool openssl certtool"

# the wrappers: NAME runs the real NAME as NAME-TAG
kmc_p11kit_wrappers() {
	local p real names=""
	mkdir -p "$KMC_P11KIT_BIN" || return 1
	for p in $KMC_P11KIT_PROGS; do
		real=$(PATH=${PATH//$KMC_P11KIT_BIN:/} command -v "$p") || {
			echo "$p not found"
			return 1
		}
		printf '#!/bin/bash\nexec -a %s %s "$@"\n' \
			"$p-$KMC_P11KIT_TAG" "$real" >"$KMC_P11KIT_BIN/$p" &&
			chmod 0755 "$KMC_P11KIT_BIN/$p" || return 1
		names="$names${names:+, }$p-$KMC_P11KIT_TAG"
	done
	echo "$names"
}

kmc_p11kit_setup() {
	local src=$KMC_SRC/../../../conf/keymesh.module.in names
	[ -f "$KMC_P11KIT_CONF" ] && return 0
	names=$(kmc_p11kit_wrappers) || { echo "$names"; return 1; }
	mkdir -p "$(dirname "$KMC_P11KIT_CONF")" || return 1
	{
		echo "# written by tests/integration/test-consumers.sh (pid $$)"
		if [ -f "$src" ]; then
			sed "s|^module:.*|module: $KMC_MODULE|" "$src"
		else
			echo "module: $KMC_MODULE"
		fi
		echo "enable-in: $names"
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

# kmc_p11kit CMD...: CMD (a program or a function of the suite) with the
# p11-kit programs under this run's names
kmc_p11kit() {
	PATH=$KMC_P11KIT_BIN:$PATH "$@"
}
