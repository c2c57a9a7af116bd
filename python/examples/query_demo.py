#!/usr/bin/python3
"""Sends a few random queries to a running Argent server and prints the results and its stats.

    PYTHONPATH=python /usr/bin/python3 python/examples/query_demo.py --endpoint tcp://127.0.0.1:5555
"""

import argparse
import random

from argent_client import Client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    parser.add_argument("--queries", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--filter", default="1:3 OR 2:5")
    args = parser.parse_args()

    with Client(args.endpoint) as client:
        health = client.health()
        print(f"server: {health.ranks} ranks, {health.items} items, dim {health.dim}, "
              f"{health.backend} collectives")
        rng = random.Random(7)
        for q in range(args.queries):
            embedding = [rng.gauss(0.0, 1.0) for _ in range(health.dim)]
            for flt in ("", args.filter):
                r = client.search(embedding, k=args.k, filter=flt)
                label = f"filter {flt!r}" if flt else "no filter"
                print(f"query {q} ({label}): ids {list(r.ids)} "
                      f"scores {[round(s, 4) for s in r.scores]} ({r.server_ms:.2f} ms)")
        stats = client.stats()
        print(f"stats: {stats.requests} requests, p50 {stats.p50_ms:.2f} ms, "
              f"p99 {stats.p99_ms:.2f} ms, items per rank {[s.items for s in stats.shards]}")


if __name__ == "__main__":
    main()
