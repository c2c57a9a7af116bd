"""The `argent` Python package against a live cluster (run by python_client_test.sh with the
package installed from ./python into a venv): its searches, upserts and deletes must give the
same results as the C++ client (`argent query`), and CURVE keys must work end to end against a
CURVE server socket.

    check_client.py ARGENT_BIN ENDPOINT QUERIES_NPY ITEMS DIM RANKS
"""

import json
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np
import zmq

import argent
import argent_client
from argent import _zmq

argent_bin, endpoint, queries_path, n_items, dim, ranks = sys.argv[1:7]
n_items, dim, ranks = int(n_items), int(dim), int(ranks)
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what, flush=True)


# ARGENT_ZMQ=ctypes (python_client_ctypes_test): the client runs on the ctypes binding, and the
# test's own pyzmq sockets below talk to it.
print("python client: zmq backend", _zmq.BACKEND, flush=True)
if os.environ.get("ARGENT_ZMQ") == "ctypes":
    check(_zmq.BACKEND.startswith("ctypes"), f"ARGENT_ZMQ=ctypes, but the backend is {_zmq.BACKEND}")


def cxx_query(*args):
    """`argent query` results: list of (ids, scores) per query."""
    out = subprocess.run([argent_bin, "query", "--endpoint", endpoint, *args], check=True,
                         capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def same_as_cxx(result, lines, label):
    check(len(lines) == len(result.ids), f"{label}: {len(lines)} C++ lines, {len(result.ids)} rows")
    for q, line in enumerate(lines):
        n = int(result.counts[q])
        ids = result.ids[q, :n].tolist()
        # %.9g round-trips a float32 exactly.
        scores = result.scores[q, :n].tolist()
        want = [float(np.float32(s)) for s in line["scores"]]
        check(ids == line["ids"], f"{label}: query {q} ids {ids[:5]}... != C++ {line['ids'][:5]}...")
        check(scores == want, f"{label}: query {q} scores differ from the C++ client's")
        check(np.all(result.ids[q, n:] == -1), f"{label}: query {q} padding is not -1")


queries = np.load(queries_path)
with argent.Client(endpoint, timeout_s=60) as client:
    status = client.status()
    check(status["ranks"] == ranks, f"status ranks {status['ranks']} != {ranks}")
    check(status["items"] == n_items, f"status items {status['items']} != {n_items}")
    check(sum(len(s["partitions"]) for s in status["shards"]) == status["partitions"],
          "every partition is placed once")

    # Searches: batch, filtered, exact, concurrent, single.
    r = client.search(queries, k=10)
    check(r.ids.shape == (len(queries), 10) and r.ids.dtype == np.int64, f"ids shape {r.ids.shape}")
    check(r.scores.dtype == np.float32, "scores are float32")
    same_as_cxx(r, cxx_query("--queries", queries_path, "--k", "10"), "search k=10")
    flt = "1:3 OR (2:5 AND NOT 3:1)"
    rf = client.search(queries, k=20, filter=flt)
    same_as_cxx(rf, cxx_query("--queries", queries_path, "--k", "20", "--filter", flt), "filtered")
    re = client.search(queries, k=5, exact=True)
    same_as_cxx(re, cxx_query("--queries", queries_path, "--k", "5", "--exact"), "exact")
    rc = client.search_concurrent(queries, concurrency=3, k=20, filter=flt)
    check(np.array_equal(rc.ids, rf.ids) and np.array_equal(rc.scores, rf.scores),
          "search_concurrent equals search")
    one = client.search(queries[0], k=10)
    check(one.ids.ndim == 1 and np.array_equal(one.ids, r.ids[0]), "a 1-D query gives row 0")

    # Upserts, then deletes: visible at once (read-your-writes), and as the C++ client sees them.
    rng = np.random.default_rng(5)
    new_ids = np.arange(10**9, 10**9 + 20, dtype=np.int64)
    embeddings = rng.standard_normal((20, dim)).astype(np.float32)
    applied, sequence = client.upsert(new_ids, embeddings, [{7: [424242], 1: 3}] * 20, batch=8)
    check(applied == 20 and sequence > 0, f"upsert applied {applied}, sequence {sequence}")
    marked = client.search(queries[:3], k=30, exact=True, filter="7:424242")
    for q in range(3):
        check(sorted(marked.ids[q, :marked.counts[q]].tolist()) == new_ids.tolist(),
              f"query {q}: the 20 upserted items are exactly the filter's matches")
    same_as_cxx(client.search(queries, k=10), cxx_query("--queries", queries_path, "--k", "10"),
                "after upsert")
    deleted, _ = client.delete(new_ids[:5].tolist() + [10**12])
    check(deleted == 5, f"delete reported {deleted} present, expected 5")
    after = client.search(queries[:3], k=30, exact=True, filter="7:424242")
    for q in range(3):
        check(sorted(after.ids[q, :after.counts[q]].tolist()) == new_ids[5:].tolist(),
              f"query {q}: deleted items are gone")
    same_as_cxx(client.search(queries, k=10, filter="7:424242 OR 1:3"),
                cxx_query("--queries", queries_path, "--k", "10", "--filter", "7:424242 OR 1:3"),
                "after delete")
    check(client.stats().upserts >= 20, "stats count the upserts")

    # Bad input is an ArgentError naming the problem; the connection keeps working.
    try:
        client.search(np.zeros(dim + 1, np.float32), k=3)
        check(False, "a query of the wrong dimension raised nothing")
    except argent.ArgentError as e:
        check(e.code == "INVALID_ARGUMENT" and "dimension" in e.message, f"error: {e}")
    check(len(client.search(queries[0], k=3).ids) == 3, "the client works after an error")

# The older single-file client is a thin shim over the package; its search returns the raw
# SearchResponse as before.
with argent_client.Client(endpoint) as legacy:
    raw = legacy.search(queries[0].tolist(), k=10)
    check(list(raw.ids) == r.ids[0].tolist(), "argent_client.Client.search gives the same ids")

# CURVE: key files as `argent admin keygen` writes them, used against a CURVE server socket.
with tempfile.TemporaryDirectory() as keys:
    server_pub, server_sec = argent.write_key_pair(os.path.join(keys, "server.key"),
                                                   os.path.join(keys, "server.pub"))
    argent.write_key_pair(os.path.join(keys, "client.key"))
    check(argent.read_public_key(os.path.join(keys, "server.pub")) == server_pub, "public file")
    check(oct(os.stat(os.path.join(keys, "client.key")).st_mode & 0o777) == "0o600",
          "a key-pair file is private")
    with open(os.path.join(keys, "bad.key"), "w") as f:
        f.write("public-key = tooshort\n")
    try:
        argent.read_key_pair(os.path.join(keys, "bad.key"))
        check(False, "a short key was accepted")
    except argent.KeyFileError as e:
        check("bad.key:1" in str(e) and "40" in str(e), f"key error names file and line: {e}")

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.curve_server = True
    router.curve_secretkey = server_sec
    router.curve_publickey = server_pub
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve_one():
        frames = router.recv_multipart()
        request = argent.pb.Request.FromString(frames[-1])
        reply = argent.pb.Response()
        reply.health.request_id = request.health.request_id
        reply.health.ranks = 42
        router.send_multipart(frames[:-1] + [reply.SerializeToString()])

    server = threading.Thread(target=serve_one)
    server.start()
    with argent.Client(f"tcp://127.0.0.1:{port}", timeout_s=10,
                       client_keys=os.path.join(keys, "client.key"),
                       server_key=os.path.join(keys, "server.pub")) as secure:
        check(secure.health().ranks == 42, "a CURVE round trip")
    server.join()
    # A client with the wrong server key never completes the handshake.
    other_pub, _ = zmq.curve_keypair()
    with argent.Client(f"tcp://127.0.0.1:{port}", timeout_s=1,
                       client_keys=os.path.join(keys, "client.key"), server_key=other_pub) as bad:
        try:
            bad.health()
            check(False, "a client with the wrong server key got a reply")
        except TimeoutError:
            pass
    router.close()

print(f"python client: {len(failures)} failures", flush=True)
sys.exit(1 if failures else 0)
