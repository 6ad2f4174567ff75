#!/bin/bash
# Bad input against live daemons (issue #4 item 9): a 3-node dev mesh, then
# garbage at node1's TLS port at every layer, from raw TCP up to requests
# correctly signed by enrolled identities, and a check that the mesh still
# serves: every node answers, `keymesh status` shows all nodes up and a key
# can still be created.
#
# Layers, outermost first:
#   1. raw TCP: random bytes where a TLS ClientHello should be;
#   2. TLS: a TLS 1.2-only client (must be refused: the mesh is TLS 1.3
#      only), a TLS 1.3 client without a certificate;
#   3. SP (nng's framing) over a mutually authenticated TLS 1.3 connection
#      (the dev mesh's client certificate, with openssl s_client): random
#      bytes, an oversize frame header, a frame holding garbage instead of
#      an envelope;
#   4. signed envelopes with garbage bodies, sent by
#      tests/fuzz/send-raw-request as the client, the admin and a node:
#      every one must get an error reply (a verified error envelope or a
#      reply header with an error status).
#
# Run by `make check` (KM_BUILDDIR from AM_TESTS_ENVIRONMENT) or by hand
# from a build directory:
#   KM_BUILDDIR=$PWD $srcdir/tests/integration/test-bad-input.sh
# Prints one line per check and "N passed, N failed"; exits 1 on any
# failure, 77 (skipped) without SoftHSMv2 or openssl.  Known defects that
# are reported but not yet fixed are printed as "KNOWN" and counted apart.
# The trap stops every daemon it started.

set -u

builddir=${KM_BUILDDIR:-$PWD}
keymesh=$builddir/tools/keymesh
daemon=$builddir/daemon/keymeshd
send=$builddir/tests/fuzz/send-raw-request

if [ -n "${KM_SOFTHSM_MODULE+set}" ] && [ -z "$KM_SOFTHSM_MODULE" ]; then
	echo "SKIP: configure found no libsofthsm2.so"
	exit 77
fi
for p in softhsm2-util openssl timeout; do
	if ! command -v $p >/dev/null 2>&1; then
		echo "SKIP: $p is not installed"
		exit 77
	fi
done
for f in "$keymesh" "$daemon" "$send"; do
	if [ ! -x "$f" ]; then
		echo "FAIL: $f is not built"
		exit 1
	fi
done
unset KEYMESH_DAEMON KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN

dir=$(mktemp -d "${TMPDIR:-/tmp}/km-badinput.XXXXXX") || exit 1
mesh=$dir/mesh
out=$dir/out
passed=0
failed=0
known=0

cleanup() {
	"$keymesh" dev down --dir "$mesh" >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ok() {
	passed=$((passed + 1))
	echo "ok   - $1"
}

not_ok() {
	failed=$((failed + 1))
	echo "FAIL - $1"
	if [ -s "$out" ]; then
		sed 's/^/       /' "$out" | head -5
	fi
}

# ---- the mesh

if ! "$keymesh" dev up --dir "$mesh" --nodes 3 --threshold 2 \
	>"$dir/env" 2>"$out"; then
	not_ok "dev up --nodes 3 --threshold 2"
	echo "$passed passed, $failed failed"
	exit 1
fi
ok "dev up --nodes 3 --threshold 2"
. "$dir/env"
export KEYMESH_CONF KEYMESH_MODULE KEYMESH_PIN

ca=$mesh/ca
url_of() {
	sed -n "s/^node = $1 \\(tls+tcp:.*\\)\$/\\1/p" "$KEYMESH_CONF"
}
url=$(url_of node1)
hostport=${url#tls+tcp://}
host=${hostport%:*}
port=${hostport##*:}
if [ -z "$port" ]; then
	not_ok "node1's URL in $KEYMESH_CONF"
	echo "$passed passed, $failed failed"
	exit 1
fi

# send-raw-request to node1 as identity $1, then its arguments
send_as() {
	local who=$1
	shift
	timeout 30 "$send" -c "$ca" -n "$who" -u "$url" -p node1 -w 5000 "$@"
}

# node1 still answers a well-formed status request
alive() {
	if send_as client -T 1 >"$out" 2>&1; then
		ok "$1: node1 still serves"
	else
		not_ok "$1: node1 still serves"
	fi
}

# expect_error WHAT IDENTITY ARGS...: the request must be refused
expect_error() {
	local what=$1
	shift
	send_as "$@" >"$out" 2>&1
	if [ $? -eq 1 ]; then
		ok "$what: $(head -1 "$out")"
	else
		not_ok "$what: expected an error reply"
	fi
}

alive "before anything"
if "$keymesh" key create --type ec:p256 --label pre >"$out" 2>&1; then
	ok "key create before the bad input"
else
	not_ok "key create before the bad input"
fi
key=$("$keymesh" key list 2>/dev/null | awk '$1 == "pre" { print $2 }')
[ -n "$key" ] || key=knosuchkey

# ---- 1. raw TCP

for n in 1 5000 70000; do
	timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port &&
		head -c $n /dev/urandom >&3; sleep 0.2" 2>/dev/null
	alive "raw TCP, $n random bytes"
done
# a connection that sends nothing and goes away
timeout 10 bash -c "exec 3<>/dev/tcp/$host/$port; sleep 0.2" 2>/dev/null
alive "raw TCP, silent connection"

# ---- 2. TLS

s_client() {
	timeout 10 openssl s_client -connect "$host:$port" \
		-servername node1 -CAfile "$ca/ca.crt" "$@"
}

s_client -tls1_2 -cert "$ca/certs/client.crt" \
	-key "$ca/private/client.key" </dev/null >"$out" 2>&1
if grep -q "Cipher is (NONE)" "$out" &&
	! grep -q "^New, TLSv1.2" "$out"; then
	ok "a TLS 1.2-only client is refused"
else
	not_ok "a TLS 1.2-only client is refused"
fi
alive "TLS 1.2 client"

head -c 2000 /dev/urandom | s_client -quiet -tls1_3 >"$out" 2>&1
if [ ! -s "$out" ] || ! grep -q "SP" "$out"; then
	ok "a TLS 1.3 client without a certificate gets no SP data"
else
	not_ok "a TLS 1.3 client without a certificate gets no SP data"
fi
alive "TLS 1.3 client without a certificate"

# ---- 3. SP frames on an authenticated TLS connection

auth_send() {
	# stdin goes to node1 over mutual TLS 1.3 as the dev mesh's client
	s_client -quiet -tls1_3 -cert "$ca/certs/client.crt" \
		-key "$ca/private/client.key" >/dev/null 2>&1
}

head -c 5000 /dev/urandom | auth_send
alive "authenticated TLS, 5000 random bytes"
# SP header of a REQ peer (0x0030), then frames (uint64 length || body)
sp_hdr='\x00SP\x00\x00\x30\x00\x00'
{ printf "$sp_hdr"; printf '\x7f\xff\xff\xff\xff\xff\xff\xff';
	head -c 1000 /dev/urandom; } | auth_send
alive "authenticated TLS, SP frame of length 2^63-1"
{ printf "$sp_hdr"; printf '\x00\x00\x00\x00\x01\x00\x00\x00';
	head -c 65536 /dev/urandom; } | auth_send
alive "authenticated TLS, SP frame of 16 MiB, truncated"
{ printf "$sp_hdr"; printf '\x00\x00\x00\x00\x00\x00\x00\x24';
	printf '\x80\x00\x00\x01KMEV\x01\x01'; head -c 26 /dev/urandom;
	sleep 0.5; } | auth_send
alive "authenticated TLS, SP frame with a garbage envelope"
{ printf "$sp_hdr"; printf '\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00';
	sleep 0.5; } | auth_send
alive "authenticated TLS, SP frame too short for a request id"
{ printf '\x00SP\x01\x00\x30\x00\x00'; head -c 100 /dev/urandom; } |
	auth_send
alive "authenticated TLS, SP header of another version"

# ---- 4. signed envelopes with garbage bodies

expect_error "empty body" client
expect_error "one byte" client -x 01
expect_error "100 random bytes" client -r 100
expect_error "4096 random bytes" client -r 4096
expect_error "header of version 2" client -x 0200000001000000000000000000
expect_error "unknown message type" client -x 0100000063000000000000000000
expect_error "key id length 2^32-1" client -x 0100000001ffffffff
expect_error "truncated header" client -x 01000000
expect_error "login + garbage" client -T 2 -r 64
expect_error "set-pin + garbage" client -T 4 -r 64
expect_error "login-as + garbage" client -T 6 -r 64
# login-as: uint32 user, string "default", string "123456"
expect_error "login-as, user type 2" client -T 6 \
	-x 000000020000000764656661756c7400000006313233343536
expect_error "login-as, trailing byte" client -T 6 \
	-x 000000000000000764656661756c740000000631323334353600
expect_error "init-pin-as from a client without an SO ticket" client -T 7 \
	-x 000000010000000764656661756c7400000006313233343536
expect_error "init-pin-as + garbage as admin" admin -T 7 -r 64
expect_error "rsa-partial + garbage, real key" client -T 10 -k "$key" \
	-e 1 -r 300
expect_error "ecdh-partial + garbage, real key" client -T 11 -k "$key" \
	-e 1 -r 300
expect_error "ecdh-partial + bad point, real key" client -T 11 -k "$key" \
	-e 1 -x 00000041040000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
expect_error "ecdh-partial, header only" client -T 11 -k "$key" -e 1
expect_error "key-create from a client" client -T 20 -r 64
expect_error "key-create + garbage as admin" admin -T 20 -r 200
expect_error "key-destroy + garbage as admin" admin -T 26 -k "$key" \
	-e 1 -r 200
for t in 21 22 23 24 25 30 31; do
	expect_error "node message $t + garbage as node2" node2 -T $t \
		-k "$key" -e 1 -r 300
done
expect_error "body over the size limit (300000 bytes)" client -T 10 \
	-k "$key" -e 1 -r 300000
# Beyond the transport's frame limit the daemon's nng drops the
# connection instead of answering (the client sees "connection failed").
# The timeout is there because the client once hung in nng_close() after
# such a drop (reported; see docs/fuzzing.md): a hang is a failure.
for n in 2000000 8000000; do
	timeout 30 "$send" -c "$ca" -n client -u "$url" -p node1 -w 5000 \
		-T 20 -r $n >"$out" 2>&1
	rc=$?
	if [ $rc -eq 1 ] || [ $rc -eq 2 ]; then
		ok "body of $n bytes: refused ($(head -1 "$out"))"
	elif [ $rc -eq 124 ]; then
		not_ok "body of $n bytes: the client hung"
	else
		not_ok "body of $n bytes: refused"
	fi
done
alive "after the signed garbage"

# a status request with trailing bytes is refused like any other
send_as client -T 1 -x deadbeef >"$out" 2>&1
if [ $? -eq 1 ]; then
	ok "status + trailing garbage is refused"
else
	not_ok "status + trailing garbage is answered: $(head -1 "$out")"
fi

# ---- the mesh afterwards

for n in node1 node2 node3; do
	if timeout 30 "$send" -c "$ca" -n client -u "$(url_of $n)" -p $n \
		-w 5000 -T 1 >"$out" 2>&1; then
		ok "$n answers a status request"
	else
		not_ok "$n answers a status request"
	fi
done
"$keymesh" status >"$out" 2>&1
if grep -q "3 of 3 nodes up" "$out"; then
	ok "keymesh status: 3 of 3 nodes up"
else
	not_ok "keymesh status: 3 of 3 nodes up"
fi
if "$keymesh" key create --type ec:p256 --label x >"$out" 2>&1; then
	ok "key create --type ec:p256 --label x"
else
	not_ok "key create --type ec:p256 --label x"
fi
if "$keymesh" key list 2>/dev/null | awk '$1 == "x" && $6 == "active"' |
	grep -q .; then
	ok "key x is active"
else
	not_ok "key x is active"
fi

echo "$passed passed, $failed failed${known:+, $known known}"
[ $failed -eq 0 ]
