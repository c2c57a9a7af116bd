"""torch.ops.argent and argent.torch.ArgentRetrieval against `argent search` and a brute force.

Run by ctest (tests/CMakeLists.txt, torch_ops_python) with Debian's /usr/bin/python3 and the
operator library built against Debian's libtorch:
    ARGENT_BIN=build/launch/argent ARGENT_TORCH_OPS=build/torch_ops/libargent_torch_ops.so \
    ARGENT_TORCH_WORK=/tmp/w PYTHONPATH=python /usr/bin/python3 tests/python/torch_ops_test.py
It builds a small index with `argent synth` + `argent build-index`, and leaves the scripted
module and its inputs in ARGENT_TORCH_WORK for the C++ test (tests/torch_module_test.cc).
"""
import collections
import json
import os
import random
import subprocess
import sys
import unittest

import torch

import argent.torch as at

SEED = int(os.environ.get("ARGENT_TEST_SEED", "20261125"))
ARGENT = os.environ["ARGENT_BIN"]
WORK = os.environ["ARGENT_TORCH_WORK"]
N_ITEMS, DIM, N_QUERIES, NLIST, K, NPROBE = 6000, 30, 48, 32, 10, 4


def run(*args):
    return subprocess.run([ARGENT, *args], check=True, capture_output=True, text=True).stdout


def argent_search(extra, filt):
    out = run("search", "--index", f"{WORK}/index", "--queries", f"{WORK}/data/queries.npy",
              "--k", str(K), "--filter", filt, *extra)
    ids, scores = [], []
    for line in out.splitlines():
        r = json.loads(line.replace("-inf", "-Infinity"))
        ids.append(r["ids"])
        scores.append(r["scores"])
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(scores, dtype=torch.float32)


def load_npy(path):
    # .npy float32 [n, d] written by `argent synth`: header, then raw little-endian floats.
    with open(path, "rb") as f:
        data = f.read()
    header_len = int.from_bytes(data[8:10], "little")
    header = data[10:10 + header_len].decode()
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    return torch.frombuffer(bytearray(data[10 + header_len:]), dtype=torch.float32).reshape(shape)


def features_of(module):
    """Each row's exact feature set, read from the buffers (set-based reference evaluator)."""
    off, cnt = module.feature_offset.tolist(), module.feature_count.tolist()
    fid, val = module.feature_ids.tolist(), module.feature_values.tolist()
    return [set(zip(fid[o:o + c], val[o:o + c])) for o, c in zip(off, cnt)]


def evaluate(expr, feats):
    """A deliberately naive evaluator of the filter syntax (NOT > AND > OR), on a feature set."""
    tokens = expr.replace("(", " ( ").replace(")", " ) ").split()
    pos = [0]

    def peek():
        return tokens[pos[0]] if pos[0] < len(tokens) else None

    def take():
        pos[0] += 1
        return tokens[pos[0] - 1]

    def primary():
        t = take()
        if t == "(":
            v = or_expr()
            take()
            return v
        if t.upper() == "NOT":
            return not primary()
        f, v = t.split(":")
        return (int(f), int(v)) in feats

    def and_expr():
        v = primary()
        while peek() is not None and peek().upper() == "AND":
            take()
            v = primary() and v
        return v

    def or_expr():
        v = and_expr()
        while peek() is not None and peek().upper() == "OR":
            take()
            v = and_expr() or v
        return v

    return True if not tokens else or_expr()


def brute_force(module, queries, expr, k):
    """Exact int8 search by a float64 matrix product of the codes: score = (dot * qs) * xs in
    float32, as kernels/layout.h combine_score; ties by id. Independent of the scan."""
    codes, qs, _ = torch.ops.argent.quantize(queries, module.d_pad, module.normalize)
    rows = torch.arange(module.ids.numel(), dtype=torch.int64).reshape(1, -1)
    ones = torch.ones_like(module.scales)
    item_codes = torch.ops.argent.gather_embeddings(module.codes, ones, rows, module.dim)[0]
    dots = (codes[:, :module.dim].double() @ item_codes.double().T).to(torch.int64)
    scores = (dots.float() * qs.unsqueeze(1)) * module.scales.unsqueeze(0)
    feats = features_of(module)
    ids = module.ids.tolist()
    eligible = [r for r in range(len(ids)) if ids[r] >= 0 and evaluate(expr, feats[r])]
    out_ids, out_scores = [], []
    for q in range(queries.size(0)):
        s = scores[q].tolist()
        best = sorted(eligible, key=lambda r: (-s[r], ids[r]))[:k]
        out_ids.append([ids[r] for r in best] + [-1] * (k - len(best)))
        out_scores.append([s[r] for r in best] + [float("-inf")] * (k - len(best)))
    return torch.tensor(out_ids), torch.tensor(out_scores, dtype=torch.float32)


class TorchOpsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        at.load_library()
        os.makedirs(WORK, exist_ok=True)
        run("synth", "--out", f"{WORK}/data", "--n", str(N_ITEMS), "--dim", str(DIM),
            "--queries", str(N_QUERIES), "--seed", str(SEED))
        run("build-index", "--out", f"{WORK}/index", "--embeddings", f"{WORK}/data/items.npy",
            "--ids", f"{WORK}/data/ids.npy", "--features", f"{WORK}/data/features.jsonl",
            "--nlist", str(NLIST), "--partitions", "3")
        cls.queries = load_npy(f"{WORK}/data/queries.npy")
        cls.ivf = at.ArgentRetrieval.from_index(f"{WORK}/index", nprobe=NPROBE)
        cls.exact = at.ArgentRetrieval.from_index(f"{WORK}/index", exact=True)
        # Filters from the data's own common terms: one broad with NOT, one selective (~1-5%).
        counts = collections.Counter(p for fs in features_of(cls.exact) for p in fs)
        (a, _), (b, _), (c, _) = counts.most_common(3)
        rare = [p for p, n in counts.items() if 30 <= n <= 300][:2]
        cls.filters = ["",
                       f"NOT {a[0]}:{a[1]} AND ({b[0]}:{b[1]} OR NOT {c[0]}:{c[1]})",
                       f"{rare[0][0]}:{rare[0][1]} OR {rare[1][0]}:{rare[1][1]}"]

    def test_same_ids_and_scores_as_argent_search(self):
        for module, extra in ((self.ivf, ["--nprobe", str(NPROBE)]), (self.exact, ["--exact"])):
            for f in self.filters:
                with self.subTest(mode=extra[0], filter=f):
                    want_ids, want_scores = argent_search(extra, f)
                    ids, scores, task_scores = module(self.queries, module.compile_filter(f), K)
                    self.assertTrue(torch.equal(ids, want_ids), f"seed {SEED}")
                    self.assertTrue(torch.equal(scores, want_scores), f"seed {SEED}")
                    self.assertEqual(tuple(task_scores.shape), (N_QUERIES, K, 0))

    def test_exact_search_equals_brute_force_and_obeys_filter(self):
        for f in self.filters:
            with self.subTest(filter=f):
                plan = self.exact.compile_filter(f)
                spans = at.plan_spans(N_QUERIES, plan)
                scores, ids, rows = self.exact.search(self.queries, plan, spans, K)
                want_ids, want_scores = brute_force(self.exact, self.queries, f, K)
                self.assertTrue(torch.equal(ids, want_ids), f"seed {SEED}")
                self.assertTrue(torch.equal(scores, want_scores), f"seed {SEED}")
                ok = self.exact.verify(rows, plan, spans)
                self.assertTrue(bool((ok == (rows >= 0)).all()))

    def test_verify_filter_equals_reference_evaluator(self):
        rng = random.Random(SEED)
        feats = features_of(self.exact)
        n_rows = self.exact.ids.numel()
        rows = torch.tensor([[rng.randrange(-1, n_rows) for _ in range(64)] for _ in range(8)])
        for f in self.filters:
            plan = self.exact.compile_filter(f)
            got = self.exact.verify(rows, plan, at.plan_spans(8, plan))
            want = [[r >= 0 and evaluate(f, feats[r]) for r in row] for row in rows.tolist()]
            self.assertEqual(got.tolist(), want, f"filter {f!r}, seed {SEED}")

    def test_per_query_filters(self):
        plans = [self.ivf.compile_filter(self.filters[q % 3]) for q in range(N_QUERIES)]
        ops, spans = at.batch_plans(plans)
        scores, ids, _ = self.ivf.search(self.queries, ops, spans, K)
        for j, f in enumerate(self.filters):
            want_ids, want_scores = argent_search(["--nprobe", str(NPROBE)], f)
            sel = list(range(j, N_QUERIES, 3))
            self.assertTrue(torch.equal(ids[sel], want_ids[sel]))
            self.assertTrue(torch.equal(scores[sel], want_scores[sel]))

    def test_kernels_ops(self):
        m = self.exact
        sigs = torch.ops.argent.bloom_signatures(m.feature_offset, m.feature_count, m.feature_ids,
                                                 m.feature_values, m.bloom_words,
                                                 m.bloom_hashes, m.bloom_seed)
        live = m.ids >= 0
        self.assertTrue(torch.equal(sigs[live], m.signatures[live]))
        # Merging the results split by id parity gives the results back.
        scores, ids, _ = m.search(self.queries, m.compile_filter(""),
                                  at.plan_spans(N_QUERIES, m.compile_filter("")), K)
        parts = []
        for parity in (0, 1):
            keep = (ids % 2) == parity
            s = torch.where(keep, scores, torch.full_like(scores, float("-inf")))
            i = torch.where(keep, ids, torch.full_like(ids, -1))
            _, order = torch.sort(-s, dim=1, stable=True)
            parts.append((torch.gather(s, 1, order), torch.gather(i, 1, order)))
        ms, mi, origin = torch.ops.argent.merge_topk([p[0] for p in parts], [p[1] for p in parts], K)
        self.assertTrue(torch.equal(ms, scores) and torch.equal(mi, ids))
        self.assertTrue(bool((origin >= 0).all()))

    def test_reranker_task_scores_match_python_model(self):
        sys.path.insert(0, os.path.join(os.path.dirname(at.__file__), ".."))
        import argent_rerank_model as rm
        torch.manual_seed(SEED)
        model = rm.Reranker(DIM, [16, 8], ["click", "like"], "gelu", [1.0, 2.0], 0.5)
        path = f"{WORK}/reranker.pt"
        rm.save(model, path)
        module = at.ArgentRetrieval.from_index(f"{WORK}/index", nprobe=NPROBE)
        module.attach_reranker(path)
        ids, scores, task = module(self.queries, module.compile_filter(""), K)
        _, _, rows = module.search(self.queries, module.compile_filter(""),
                                   at.plan_spans(N_QUERIES, module.compile_filter("")), K)
        users = torch.nn.functional.normalize(self.queries, dim=1)
        items = torch.ops.argent.gather_embeddings(module.codes, module.scales, rows, DIM)
        with torch.no_grad():
            logits = model.overarch(users.repeat_interleave(K, 0), items.reshape(-1, DIM))
        want = torch.sigmoid(logits).reshape(N_QUERIES, K, 2)
        # float32 rounding of the same operators in another order (LibTorch vs Python module).
        self.assertTrue(torch.allclose(task, want, rtol=0, atol=1e-5))

    def test_errors_name_the_argument(self):
        m = self.exact
        codes, qs, bias = torch.ops.argent.quantize(self.queries, m.d_pad, m.normalize)
        plan = m.compile_filter("")
        spans = at.plan_spans(N_QUERIES, plan)
        with self.assertRaisesRegex(RuntimeError, "argent::search: scales must be float32"):
            torch.ops.argent.search(codes, qs, bias, plan, spans, None, K, m.codes,
                                    m.scales.double(), m.ids, m.signatures, m.list_offsets,
                                    m.list_sizes, m.list_summaries, m.feature_offset,
                                    m.feature_count, m.feature_ids, m.feature_values)
        with self.assertRaisesRegex(RuntimeError, "query_codes has 7 columns"):
            m.scan(torch.zeros(N_QUERIES, 7, dtype=torch.int8), qs, bias, plan, spans, None, K)
        with self.assertRaisesRegex(RuntimeError, "probes\\[0, 0\\] = 999"):
            m.scan(codes, qs, bias, plan, spans,
                   torch.full((N_QUERIES, 2), 999, dtype=torch.int32), K)
        twice = torch.full((N_QUERIES, 3), -1, dtype=torch.int32)
        twice[1, 0] = twice[1, 2] = 0  # would scan list 0 twice for query 1: duplicate results
        with self.assertRaisesRegex(RuntimeError, "probes row 1 names list 0 twice"):
            m.scan(codes, qs, bias, plan, spans, twice, K)
        bad = m.compile_filter("1:1 AND 2:2").clone()
        bad[1, 0] = 2  # the second term becomes an AND with one operand
        with self.assertRaisesRegex(RuntimeError, "pops an empty stack"):
            m.scan(codes, qs, bias, bad, at.plan_spans(N_QUERIES, bad), None, K)
        with self.assertRaisesRegex(RuntimeError, "position"):
            m.compile_filter("(1:1 AND")
        with self.assertRaisesRegex(RuntimeError, "x holds a NaN"):
            torch.ops.argent.quantize(torch.full((1, DIM), float("nan")), m.d_pad, True)

    def test_updates_apply_in_place_through_the_shard_path(self):
        module = at.ArgentRetrieval.from_index(f"{WORK}/index", exact=True)
        rng = random.Random(SEED)
        gen = torch.Generator().manual_seed(SEED)
        old_ids = [i for i in module.ids.tolist() if i >= 0]
        replaced = rng.sample(old_ids, 20)
        new_ids = replaced + [10_000_000 + i for i in range(40)]
        emb = torch.randn(len(new_ids), DIM, generator=gen)
        emb[:8] = self.queries[:8]  # items equal to queries must come first for them
        feats = [{1: [rng.randrange(3)], 5: [7, 8]} for _ in new_ids]
        deleted = rng.sample(sorted(set(old_ids) - set(replaced)), 30)
        codes_before = module.codes.data_ptr()
        module.update(new_ids, emb, feats, delete_ids=deleted)
        ids = module.ids.tolist()
        self.assertEqual(len(set(i for i in ids if i >= 0)), len(old_ids) + 40 - 30)
        self.assertFalse(set(deleted) & set(ids))
        for f in ["", "1:0 OR 5:8"]:
            plan = module.compile_filter(f)
            scores, got, _ = module.search(self.queries, plan, at.plan_spans(N_QUERIES, plan), K)
            want, want_scores = brute_force(module, self.queries, f, K)
            self.assertTrue(torch.equal(got, want), f"filter {f!r} seed {SEED}")
            self.assertTrue(torch.equal(scores, want_scores))
        self.assertEqual(got[:8, 0].tolist(), new_ids[:8])
        # With list slack, 60 writes into 32 lists fit: the buffers were written in place.
        self.assertEqual(module.codes.data_ptr(), codes_before)

    def test_scripted_module_saves_loads_and_matches(self):
        for name, module in (("ivf", self.ivf), ("exact", self.exact)):
            scripted = torch.jit.script(module)
            path = f"{WORK}/retrieval_{name}.pt"
            torch.jit.save(scripted, path)
            loaded = torch.jit.load(path)
            for f in self.filters:
                plan = module.compile_filter(f)
                a = module(self.queries, plan, K)
                b = loaded(self.queries, loaded.compile_filter(f), K)
                self.assertTrue(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]))
        # Inputs for tests/torch_module_test.cc: the filters, one a line.
        with open(f"{WORK}/filters.txt", "w") as f:
            f.write("\n".join(self.filters[1:]) + "\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
