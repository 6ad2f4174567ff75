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

# Build and test dependencies (Debian 12 package names).  The consumer
# suite (tests/integration/test-consumers.sh) needs opensc,
# libengine-pkcs11-openssl, gnutls-bin, p11-kit, default-jdk-headless,
# libnss3-tools, openssh-client/-server, iproute2 (ss) and xxd; `keymesh
# graph --format svg|png` and its test need graphviz (dot).
KM_DEPS="autoconf automake libtool pkg-config autoconf-archive make gcc \
libssl-dev openssl libnng-dev libp11-kit-dev p11-kit libsqlite3-dev \
libcunit1-dev softhsm2 opensc libengine-pkcs11-openssl gnutls-bin \
sqlite3 procps default-jdk-headless libnss3-tools openssh-client \
openssh-server gnuplot-nox libraft-dev libuv1-dev iproute2 xxd graphviz"

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

# demo step 5-7: a node turns faulty; the mesh catches, evicts and
# re-shares on its own while an application keeps signing.
demo_sign() {
	# $1: output name; verifies with the public key read in step 4
	printf 'message %s\n' "$1" > "$demo_dir/m$1.txt"
	pkcs11-tool --module "$KEYMESH_MODULE" --login --pin "$KEYMESH_PIN" \
		--sign --mechanism SHA256-RSA-PKCS --label demo-rsa \
		--input-file "$demo_dir/m$1.txt" --output-file "$demo_dir/m$1.sig" \
		>/dev/null 2>"$demo_dir/m$1.err" &&
		openssl dgst -sha256 -keyform DER -verify "$demo_dir/pub.der" \
			-signature "$demo_dir/m$1.sig" "$demo_dir/m$1.txt" >/dev/null 2>&1
}

demo_key_line() {
	"$km" key list 2>/dev/null | awk -v l="$1" '$1 == l { print $4, $5, $6 }'
}

demo_faulty() {
	coord=$("$km" status 2>/dev/null | sed -n 's/^coordinator: \(node[0-9]*\).*/\1/p')
	bad=node2
	[ "$coord" = node2 ] && bad=node3
	echo
	echo "== 5. $bad turns faulty: it answers every partial with a wrong value"
	echo "   (the test build's fault mode; the coordinator is ${coord:-none})"
	"$km" dev stop --dir "$demo_dir" --node "${bad#node}" >/dev/null
	KEYMESHD_TEST_FAULT=corrupt-partials \
		"$km" dev start --dir "$demo_dir" --node "${bad#node}" >/dev/null
	echo "   An application keeps signing; nobody else acts. What the mesh does,"
	echo "   as it happens (module lines from pkcs11-tool, daemon lines from"
	echo "   the node logs):"
	: > "$demo_dir/seen"
	t0=$(date +%s)
	i=0
	while [ $i -lt 60 ]; do
		i=$((i + 1))
		if demo_sign "$i"; then r="verified"; else r="FAILED"; fi
		echo "   signature $i: $r"
		grep -h 'P11-BAD-PARTIAL\|P11-EVIDENCE' "$demo_dir/m$i.err" 2>/dev/null |
			sed 's/^keymesh-pkcs11: [a-z]* \[\([A-Z0-9-]*\)\] [a-z_0-9]*: /module \1: /' | cut -c1-150 | sed 's/^/     /'
		for n in 1 2 3 4 5; do
			grep -h '\[KMD-EVIDENCE\]\|\[KMD-EVICT\|\[KMD-QUARANTINED\]' \
				"$demo_dir/node$n/keymeshd.log" 2>/dev/null |
				sed "s/^keymeshd: [a-z]* \[\([A-Z0-9-]*\)\] [a-z_0-9]*: /node$n \1: /"
		done | while IFS= read -r l; do
			grep -qxF "$l" "$demo_dir/seen" && continue
			printf '%s\n' "$l" >> "$demo_dir/seen"
			printf '     %s\n' "$(printf '%s' "$l" | cut -c1-150)"
		done
		if "$km" status 2>/dev/null | grep -qx "evicted: $bad" &&
			[ "$(demo_key_line demo-rsa)" = "3/4 2 active" ] &&
			[ "$(demo_key_line demo-ec)" = "3/4 2 active" ]; then
			break
		fi
		sleep 0.3
	done
	echo "   ($bad evicted and both keys re-shared $(($(date +%s) - t0)) s after it turned faulty)"
	echo
	echo "== 6. Signing carries on: the keys are at epoch 2, 3 of the 4 others"
	"$km" key list
	"$km" status | sed -n '/^evicted:/p;/^coordinator:/p'
	for j in 1 2 3; do
		if demo_sign "after$j"; then r="verified"; else r="FAILED"; fi
		echo "   signature after the eviction $j: $r"
	done
	echo
	echo "== 7. The trust graph ($demo_dir/trust-graph.png)"
	if "$km" graph --format png -o "$demo_dir/trust-graph.png"; then
		echo "   drawn: green up, orange quarantined, red evicted, grey unreachable;"
		echo "   edges carry the measured round trip and bandwidth"
	fi
}

case "${1:-}" in
demo)
	install_deps
	# the test hooks give step 5 its faulty node (a fault mode that a
	# production build does not have); the same build as `test`
	build --enable-strict --enable-test-hooks
	demo_dir="${KEYMESH_DEMO_DIR:-$top/demo-mesh}"
	km="$top/tools/keymesh"
	echo
	echo "== 1. Mutual TLS 1.3 between three mesh nodes"
	"$top/tools/keymesh-tlsdemo"
	echo
	echo "== 2. A 5-node mesh, any 3 of 5 can sign (in $demo_dir)"
	"$km" dev down --dir "$demo_dir" >/dev/null 2>&1 || true
	rm -rf "$demo_dir"
	eval "$("$km" dev up --dir "$demo_dir" --nodes 5 --threshold 3)"
	# the daemons elect a Raft leader (the coordinator) within a second
	i=0
	while [ $i -lt 25 ] && "$km" status 2>/dev/null | grep -q '^coordinator: none'; do
		sleep 0.2
		i=$((i + 1))
	done
	"$km" status
	echo
	echo "== 3. Keys that never exist whole: RSA by a dealer, EC by DKG"
	"$km" key create --type rsa:2048 --label demo-rsa
	"$km" key create --type ec:p256 --label demo-ec
	"$km" key list
	if [ -f "$KEYMESH_MODULE" ] && command -v pkcs11-tool >/dev/null; then
		echo
		echo "== 4. A threshold signature through the PKCS#11 module"
		printf 'hello from keymesh\n' > "$demo_dir/msg.txt"
		pkcs11-tool --module "$KEYMESH_MODULE" --login --pin "$KEYMESH_PIN" \
			--sign --mechanism SHA256-RSA-PKCS --label demo-rsa \
			--input-file "$demo_dir/msg.txt" \
			--output-file "$demo_dir/msg.sig" 2>&1 |
			{ grep -v '^Using' || true; }    # (set -e: all filtered)
		pkcs11-tool --module "$KEYMESH_MODULE" --read-object --type pubkey \
			--label demo-rsa --output-file "$demo_dir/pub.der" >/dev/null 2>&1
		openssl dgst -sha256 -keyform DER -verify "$demo_dir/pub.der" \
			-signature "$demo_dir/msg.sig" "$demo_dir/msg.txt"
		demo_faulty
	fi
	echo
	echo "The mesh is still running. To use it from your shell:"
	echo "  eval \"\$(./tools/keymesh dev env --dir $demo_dir)\""
	echo "To stop it:  ./tools/keymesh dev down --dir $demo_dir"
	;;
test)
	install_deps
	build --enable-strict --enable-test-hooks
	say "make check"
	if ! make -j"$(nproc)" check; then
		for f in $(find tests -name '*.trs' 2>/dev/null); do
			if grep -q ':test-result: \(FAIL\|ERROR\)' "$f"; then
				echo "==== ${f%.trs}.log"; tail -n 80 "${f%.trs}.log"
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
