#!/usr/bin/env python3
# Writes the seeds of the fuzz-beacon target (tests/fuzz/fuzz-beacon.c)
# into tests/fuzz/corpus/beacon/, in the byte format of docs/PROTOCOL.md
# ("Trust beacons").  Run by hand from the source tree:
#   python3 tests/fuzz/gen-beacon-corpus.py
# The first byte of each seed is the target's selector (0 body, 1 signed
# beacon, 2 graph reply, 3 posture policy, 4 trust verdict).
import base64, os, struct, sys

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus", "beacon")

def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)
def string(b):
    if isinstance(b, str): b = b.encode()
    return u32(len(b)) + b

def body(node="node1", peers=(("node2", 1234), ("node3", 0xffffffff)),
         seq=1765000000000, version=1):
    b = u32(version) + string(node) + u64(seq) + u64(seq) + u32(2000)
    b += string("0.1.0") + string(b"\xab" * 32) + string(b"\xcd" * 32)
    b += string("SoftHSM project") + string("SoftHSM v2")
    b += string("6a4f1c2b8e9d0f17") + string("2.6") + u32(0x40d)
    b += string("Linux 6.1.0-18-amd64 x86_64") + string("unknown")
    b += u64(123456) + u32(520) + u32(1) + u64(900) + u64(3) + u64(0)
    b += u32(len(peers))
    for name, rtt in peers:
        b += string(name) + u32(rtt) + u32(0)
    return b

def cert_der():
    pem = open(os.path.join(here, "data", "ca.crt")).read()
    lines = [l for l in pem.splitlines() if l and not l.startswith("-----")]
    return base64.b64decode("".join(lines))

def view(nodes):
    v = u32(2) + string("node1") + u32(8000) + u32(len(nodes))
    for name, state, age, bd in nodes:
        reason = "binary not in the posture policy" if state == 2 else ""
        v += string(name) + u32(state) + u64(age) + string(bd)
        v += u32(100 if state == 1 else 40) + string(reason)
    return v

def posture(bins=(b"\x6d" * 32,), versions=("0.1.0",), models=("SoftHSM v2",),
            secure=0, age=8000, refresh=86400, version=1):
    p = u32(version) + u32(len(bins))
    for h in bins:
        p += string(h)
    p += u32(len(versions))
    for v in versions:
        p += string(v)
    p += u32(len(models))
    for m in models:
        p += string(m)
    return p + u32(secure) + u32(age) + u32(refresh)

def verdict(node="node2", coord="node3", state=2, score=100,
            reason="binary sha256 04a6a3771679ac52...: not in the posture policy",
            seq=1765000000123):
    return (string(node) + string(coord) + u32(state) + u32(score) +
            string(reason) + u64(seq))

seeds = {
    "body-valid": b"\x00" + body(),
    "body-no-peers": b"\x00" + body(peers=()),
    "body-truncated": b"\x00" + body()[:-7],
    "body-trailing": b"\x00" + body() + b"\x00",
    "body-bad-version": b"\x00" + body(version=2),
    "body-self-peer": b"\x00" + body(peers=(("node1", 5),)),
    "body-dup-peer": b"\x00" + body(peers=(("node2", 5), ("node2", 6))),
    "signed-ca-cert": b"\x01" + string(body()) + string(cert_der()) +
        string(b"\x30\x06\x02\x01\x01\x02\x01\x01"),
    "signed-empty-cert": b"\x01" + string(body()) + string(b"") +
        string(b"\x30\x00"),
    "view-valid": b"\x02" + view([
        ("node1", 1, 120, body()),
        ("node2", 1, 1800, body(node="node2",
                               peers=(("node1", 980), ("node3", 1010)))),
        ("node3", 0, 0xffffffffffffffff, b""),
        ("node4", 2, 300, body(node="node4", peers=(("node1", 700),)))]),
    "view-mismatch": b"\x02" + view([("node2", 1, 5, body())]),
    "view-never-up": b"\x02" + view([("node3", 1, 0xffffffffffffffff, b"")]),
    "posture-valid": b"\x03" + posture(),
    "posture-empty": b"\x03" + posture(bins=(), versions=(), models=(),
                                      age=0, refresh=0),
    "posture-dup-binary": b"\x03" + posture(bins=(b"\x01" * 32,) * 2),
    "posture-short-hash": b"\x03" + posture(bins=(b"\x01" * 31,)),
    "posture-trailing": b"\x03" + posture() + b"\x00",
    "posture-age-low": b"\x03" + posture(age=10),
    "verdict-quarantined": b"\x04" + verdict(),
    "verdict-up": b"\x04" + verdict(state=1, score=85, reason=""),
    "verdict-no-reason": b"\x04" + verdict(reason=""),
    "verdict-evicted": b"\x04" + verdict(state=3),
    "empty": b"",
}
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), out), file=sys.stderr)
