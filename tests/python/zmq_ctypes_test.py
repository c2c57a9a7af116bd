"""argent._zmq_ctypes, the ctypes binding to libzmq used where pyzmq is missing, on its own (no
cluster, no pyzmq): Z85 against the spec's test vector, CURVE key pairs, a DEALER round trip
in plain and CURVE security (and no reply with a wrong server key), poll's timeout, a child of
fork() with its own context, and argent._zmq's choice under ARGENT_ZMQ=ctypes.

    PYTHONPATH=python ARGENT_ZMQ=ctypes python3 tests/python/zmq_ctypes_test.py
"""

import os
import sys
import tempfile
import time

from argent import _zmq, _zmq_ctypes as z

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, flush=True)


# The Z85 spec's (rfc.zeromq.org/spec/32) test vector, and its error cases.
vector = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
check(z.z85_encode(vector) == b"HelloWorld", f"z85_encode: {z.z85_encode(vector)!r}")
check(z.z85_decode("HelloWorld") == vector, "z85_decode of the spec's vector")
for bad in ("Hello", "HelloWorl", "Hello\"orld", "Hello\0orld"):
    try:
        z.z85_decode(bad)
        check(len(bad) == 5, f"z85_decode({bad!r}) raised nothing")  # "Hello" is valid
    except ValueError:
        check(len(bad) != 5, f"z85_decode({bad!r}) refused a valid string")

public, secret = z.curve_keypair()
check(len(public) == 40 and len(secret) == 40 and public != secret, "a CURVE key pair")
check(len(z.z85_decode(public)) == 32, "a public key decodes to 32 bytes")

if os.environ.get("ARGENT_ZMQ") == "ctypes":
    check(_zmq.BACKEND.startswith("ctypes"), f"ARGENT_ZMQ=ctypes picked {_zmq.BACKEND}")
    check(_zmq.Context is z.Context, "argent._zmq exports the ctypes Context")

ctx = z.Context.instance()
check(z.Context.instance() is ctx, "one shared context per process")
with tempfile.TemporaryDirectory() as work:
    def pair(endpoint, server_secret=None, server_public=None, client_server_key=None):
        server, client = ctx.socket(z.DEALER), ctx.socket(z.DEALER)
        for s in (server, client):
            s.setsockopt(z.LINGER, 0)
        if server_secret:
            server.curve_server = True
            server.curve_secretkey = server_secret
            server.curve_publickey = server_public
            mine_public, mine_secret = z.curve_keypair()
            client.curve_publickey = mine_public
            client.curve_secretkey = mine_secret
            client.curve_serverkey = client_server_key
        server.bind(endpoint)
        client.connect(endpoint)
        return server, client

    # Plain: frames of any bytes (a NUL, 1 MiB) arrive whole, both ways.
    server, client = pair(f"ipc://{work}/plain")
    t0 = time.monotonic()
    check(client.poll(100) == 0, "poll with nothing to read returns 0")
    check(time.monotonic() - t0 >= 0.09, "poll waits its timeout")
    big = os.urandom(1 << 20)
    for frame in (b"", b"a\0b", big):
        client.send(frame)
        check(server.poll(5000) and server.recv() == frame, f"a {len(frame)}-byte frame")
    server.send(b"reply")
    check(client.poll(5000) == z.POLLIN and client.recv() == b"reply", "a reply")

    client.close()
    client.close()  # idempotent
    server.close()

    # fork(): the child gets a fresh context (the parent's I/O threads are not there) and
    # talks to the parent, on a socket of its own (a DEALER round-robins its replies).
    parent = ctx.socket(z.DEALER)
    parent.setsockopt(z.LINGER, 0)
    parent.bind(f"ipc://{work}/fork")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child_ctx = z.Context.instance()
            s = child_ctx.socket(z.DEALER)
            s.setsockopt(z.LINGER, 0)
            s.connect(f"ipc://{work}/fork")
            s.send(b"from the child")
            code = 0 if child_ctx is not ctx and s.poll(5000) and s.recv() == b"ack" else 1
            s.close()
        finally:
            os._exit(code)
    got = parent.poll(5000) and parent.recv() == b"from the child"
    check(got, "the child's message")
    if got:  # else the child is gone, and a DEALER with no peer blocks on send
        parent.send(b"ack")
    check(os.waitpid(pid, 0)[1] == 0, "the forked child used its own context")
    parent.close()

    # CURVE: the right server key gets through, a wrong one never completes the handshake.
    spub, ssec = z.curve_keypair()
    server, client = pair(f"ipc://{work}/curve", ssec, spub, spub)
    client.send(b"secret hello")
    check(server.poll(5000) and server.recv() == b"secret hello", "a CURVE round trip")
    other, _ = z.curve_keypair()
    server2, bad = pair(f"ipc://{work}/curve2", ssec, spub, other)
    bad.send(b"nobody hears this")
    check(server2.poll(500) == 0, "a wrong server key gets nothing through")
    for s in (server, client, server2, bad):
        s.close()

try:
    ctx.socket(z.DEALER).setsockopt(12345, 1)
    check(False, "an unknown option raised nothing")
except z.ZMQError as e:
    check(e.errno != 0 and "zmq_setsockopt" in str(e), f"ZMQError names the call: {e}")

print(f"zmq ctypes: {len(failures)} failures ({_zmq.BACKEND})", flush=True)
sys.exit(1 if failures else 0)
