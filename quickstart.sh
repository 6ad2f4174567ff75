#!/bin/sh
# keymesh quick start.
#
#   ./quickstart.sh demo   install what is missing, build, run the demo
#   ./quickstart.sh test   install what is missing, build with -Werror and
#                          run the whole test suite (make check)
#
# Works on a fresh Debian 12 machine as root.  Installing is idempotent and
# silent when everything is already there.
set -eu

cd "$(dirname "$0")"
top=$(pwd)

# Build and test dependencies (Debian 12 package names).
KM_DEPS="autoconf automake libtool pkg-config autoconf-archive make gcc \
libssl-dev openssl libnng-dev libp11-kit-dev p11-kit libsqlite3-dev \
libcunit1-dev softhsm2 opensc libengine-pkcs11-openssl gnutls-bin \
sqlite3 procps"

say() { printf '%s\n' "quickstart: $*" >&2; }
die() { printf '%s\n' "quickstart: error: $*" >&2; exit 1; }

install_deps() {
	missing=""
	for p in $KM_DEPS; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$st" = "installed" ] || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages:$missing (run as root, or install them)"
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || die "apt-get update failed"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null \
		|| die "apt-get install failed for:$missing"
}

# configure only when the options changed; build incrementally otherwise.
build() {
	opts="$*"
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
		say "autoreconf"
		autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; die "autoreconf failed"; }
	fi
	if [ ! -f Makefile ] || [ "$(cat .quickstart-opts 2>/dev/null)" != "$opts" ]; then
		say "configure $opts"
		# shellcheck disable=SC2086
		./configure -q $opts >/dev/null || die "configure failed (see config.log)"
		printf '%s' "$opts" > .quickstart-opts
	fi
	say "make"
	make -s -j"$(nproc)" >/dev/null || { make -j1; die "build failed"; }
}

case "${1:-}" in
demo)
	install_deps
	build --enable-strict
	exec "$top/tools/keymesh-tlsdemo" "$@"
	;;
test)
	install_deps
	build --enable-strict --enable-test-hooks
	say "make check"
	if ! make -j"$(nproc)" check; then
		for f in $(find tests -name '*.log' -newer .quickstart-opts 2>/dev/null); do
			if grep -q '^FAIL\|^ERROR' "${f%.log}.trs" 2>/dev/null; then
				echo "==== $f"; tail -n 60 "$f"
			fi
		done
		die "tests failed"
	fi
	;;
*)
	echo "usage: $0 demo|test" >&2
	exit 2
	;;
esac
