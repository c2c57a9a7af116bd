#!/usr/bin/python3
"""Train, evaluate and export the reranker Argent's coordinator runs (rerank.model).

Run with Debian's python3-torch: /usr/bin/python3 python/train_reranker.py COMMAND ...

  synth      synthetic catalogue, users and an interaction log from a known latent model
             (python/argent_interactions.py), plus the held-out users and their true best items
  train      trains the OverArch (one BCE loss per task head) on an interaction log, fits the
             value model (least squares of the logged value on the task probabilities and the
             retrieval score), evaluates (per-task AUC on held-out users; recall@k of the true
             best items: blended ranking vs retrieval score alone), exports the TorchScript file
  recall     recall@k of `argent query` JSON lines (e.g. from a reranking cluster) vs the truth
  random     exports a model with random weights (tests, benchmarks, demos)
  reference  a random model plus random inputs and its outputs, float32 and float64, for the
             C++ equality test (tests/rerank_model_test.cc)

Example (the numbers in docs/benchmarks.md):
  /usr/bin/python3 python/train_reranker.py synth --out /tmp/rr
  /usr/bin/python3 python/train_reranker.py train --data /tmp/rr --out /tmp/rr/model.pt
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import argent_interactions as ai  # noqa: E402
import argent_rerank_model as arm  # noqa: E402


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def str_list(s):
    return [x for x in s.split(",") if x]


def float_list(s):
    return [float(x) for x in s.split(",") if x]


def auc(labels, scores):
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    s = np.asarray(scores)[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def cmd_synth(a):
    os.makedirs(a.out, exist_ok=True)
    tasks = str_list(a.tasks)
    items, ids, users, truth = ai.make_world(a.items, a.users, a.dim, len(tasks), a.seed)
    np.save(os.path.join(a.out, "items.npy"), items)
    np.save(os.path.join(a.out, "ids.npy"), ids)
    np.save(os.path.join(a.out, "users.npy"), users)
    np.savez(os.path.join(a.out, "truth.npz"), **truth)
    n_eval = a.eval_users
    eval_users = np.arange(a.users - n_eval, a.users, dtype=np.int64)
    np.save(os.path.join(a.out, "eval_users.npy"), eval_users)
    np.save(os.path.join(a.out, "queries.npy"), users[eval_users])  # for `argent query`
    best = np.argsort(-ai.true_value(users[eval_users], items, truth), axis=1)[:, :a.k]
    np.save(os.path.join(a.out, "true_best.npy"), ids[best])
    t = time.time()
    ai.simulate_log(os.path.join(a.out, "interactions.csv"), users, items, ids, truth, tasks,
                    a.per_user_retrieved, a.per_user_random, a.depth, a.seed + 1)
    print(f"synth: {a.items} items, {a.users} users ({n_eval} held out), dim {a.dim}, tasks "
          f"{tasks}; log of {a.users * (a.per_user_retrieved + a.per_user_random)} impressions "
          f"in {time.time() - t:.1f} s -> {a.out}")


def features(users, items, ids, log_users, log_items):
    row_of = {int(i): r for r, i in enumerate(ids)}
    rows = np.array([row_of[int(i)] for i in log_items], dtype=np.int64)
    return torch.from_numpy(users[log_users]), torch.from_numpy(items[rows])


def cmd_train(a):
    torch.manual_seed(a.seed)
    tasks = str_list(a.tasks)
    d = a.data
    users, ids = np.load(os.path.join(d, "users.npy")), np.load(os.path.join(d, "ids.npy"))
    items = ai.quantize(np.load(os.path.join(d, "items.npy")))  # what the index serves
    users = users / np.linalg.norm(users, axis=1, keepdims=True)
    log_users, log_items, labels, value = ai.read_log(a.log or os.path.join(d, "interactions.csv"),
                                                      tasks)
    eval_users = set(np.load(os.path.join(d, "eval_users.npy")).tolist())
    held = np.array([u in eval_users for u in log_users])
    u_all, i_all = features(users, items, ids, log_users, log_items)
    y_all = torch.from_numpy(labels)
    retrieval_all = (u_all * i_all).sum(1)
    tr = torch.from_numpy(~held)

    model = arm.Reranker(users.shape[1], int_list(a.hidden), tasks, a.activation,
                         [1.0] * len(tasks), 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    u_tr, i_tr, y_tr = u_all[tr], i_all[tr], y_all[tr]
    t0 = time.time()
    for epoch in range(a.epochs):
        perm = torch.randperm(len(u_tr))
        total = 0.0
        for s in range(0, len(perm), a.batch):
            b = perm[s:s + a.batch]
            logits = model.overarch(u_tr[b], i_tr[b])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y_tr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(b)
        print(f"epoch {epoch + 1}/{a.epochs}: train BCE {total / len(perm):.4f}")
    print(f"trained in {time.time() - t0:.1f} s")

    with torch.no_grad():
        probs = torch.sigmoid(model.overarch(u_all, i_all))
        if value is not None:
            # value ~ sum_t w_t p_t + w_r * retrieval + c; the constant does not change a ranking.
            x = torch.cat([probs[tr], retrieval_all[tr, None], torch.ones(int(tr.sum()), 1)], 1)
            sol = torch.linalg.lstsq(x.double(), torch.from_numpy(value)[tr, None].double())
            coef = sol.solution[:, 0].float()
            model.value.task_weights.copy_(coef[:len(tasks)])
            model.value.retrieval_weight.copy_(coef[len(tasks):len(tasks) + 1])
        elif a.task_weights:
            model.value.task_weights.copy_(torch.tensor(float_list(a.task_weights)))
    metrics = {"tasks": tasks,
               "value_task_weights": model.value.task_weights.tolist(),
               "value_retrieval_weight": float(model.value.retrieval_weight[0]),
               "auc": {t: auc(labels[held, j], probs[torch.from_numpy(held), j].numpy())
                       for j, t in enumerate(tasks)}}
    metrics.update(evaluate_recall(model, d, users, items, ids, a.depth, a.k))
    arm.save(model, a.out)
    print(json.dumps(metrics, indent=2))
    if a.metrics:
        with open(a.metrics, "w") as f:
            json.dump(metrics, f, indent=2)
    print(f"exported {a.out}")


def evaluate_recall(model, d, users, items, ids, depth, k):
    """recall@k of the true best items: retrieval order vs the reranked top-depth."""
    eval_users = np.load(os.path.join(d, "eval_users.npy"))
    best = np.load(os.path.join(d, "true_best.npy"))[:, :k]
    top = ai.top_by_score(users[eval_users], items, depth)
    hit_retrieval = hit_rerank = 0
    for q, u in enumerate(eval_users):
        cand = top[q]
        with torch.no_grad():
            user = torch.from_numpy(np.repeat(users[u:u + 1], depth, 0))
            item = torch.from_numpy(items[cand])
            _, value = model(user, item, (user * item).sum(1))
        reranked = cand[np.lexsort((ids[cand], -value.numpy()))[:k]]
        want = set(best[q].tolist())
        hit_retrieval += len(want & set(ids[cand[:k]].tolist()))
        hit_rerank += len(want & set(ids[reranked].tolist()))
    n = len(eval_users) * k
    print(f"recall@{k} of the true best ({len(eval_users)} held-out users, rerank depth {depth}): "
          f"retrieval {hit_retrieval / n:.4f}, reranked {hit_rerank / n:.4f}")
    return {f"recall_at_{k}_retrieval": hit_retrieval / n, f"recall_at_{k}_reranked": hit_rerank / n,
            "eval_users": int(len(eval_users)), "rerank_depth": depth}


def cmd_recall(a):
    best = np.load(os.path.join(a.data, "true_best.npy"))[:, :a.k]
    hits = lines = 0
    with open(a.results) as f:
        for line in f:
            r = json.loads(line)
            hits += len(set(best[r["query"]].tolist()) & set(r["ids"][:a.k]))
            lines += 1
    print(f"recall@{a.k} of the true best over {lines} queries: {hits / (lines * a.k):.4f}")


def random_model(a):
    torch.manual_seed(a.seed)
    tasks = str_list(a.tasks)
    g = torch.Generator().manual_seed(a.seed + 1)
    w = float_list(a.task_weights) if a.task_weights else \
        (torch.rand(len(tasks), generator=g) * 1.9 + 0.1).tolist()
    return arm.Reranker(a.dim, int_list(a.hidden), tasks, a.activation, w, a.retrieval_weight)


def cmd_random(a):
    arm.save(random_model(a), a.out)
    print(f"exported a random reranker to {a.out}")


def cmd_reference(a):
    os.makedirs(a.out, exist_ok=True)
    model = random_model(a)
    if a.bad_layer >= 0:  # a file whose tensors disagree with its own `hidden` (error tests)
        layers = model.overarch.layers
        layers[a.bad_layer] = torch.nn.Linear(layers[a.bad_layer].in_features,
                                              layers[a.bad_layer].out_features + 1)
    path = os.path.join(a.out, "model.pt")
    arm.save(model, path)
    if a.bad_layer >= 0:
        return
    scripted = arm.load(path)
    g = torch.Generator().manual_seed(a.seed + 2)
    n, m, t = a.queries, a.candidates, len(scripted.tasks)
    users = torch.randn(n, a.dim, generator=g)
    items = torch.randn(m, a.dim, generator=g)
    query_of = torch.randint(0, n, (m,), generator=g)
    retrieval = torch.rand(m, generator=g) * 2 - 1
    weights = torch.rand(n, t, generator=g) * 1.9 + 0.1
    with torch.no_grad():
        logits, values_model = scripted(users[query_of], items, retrieval)
        probs = torch.sigmoid(logits)
        # The module's own value formula with each query's weights.
        values = (probs * weights[query_of]).sum(dim=1) + scripted.value.retrieval_weight * retrieval
        logits64, values64 = arm.reference_float64(scripted, users[query_of], items, retrieval,
                                                   weights[query_of])
    out = {"users": users, "items": items, "query_of": query_of, "retrieval": retrieval,
           "weights": weights, "probs": probs, "values": values, "values_model": values_model,
           "probs64": torch.sigmoid(logits64), "values64": values64}
    for name, tensor in out.items():
        np.save(os.path.join(a.out, name + ".npy"), tensor.numpy())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth")
    s.add_argument("--out", required=True)
    s.add_argument("--items", type=int, default=50000)
    s.add_argument("--users", type=int, default=3000)
    s.add_argument("--eval-users", type=int, default=300)
    s.add_argument("--dim", type=int, default=32)
    s.add_argument("--tasks", default=",".join(ai.DEFAULT_TASKS))
    s.add_argument("--per-user-retrieved", type=int, default=60)
    s.add_argument("--per-user-random", type=int, default=20)
    s.add_argument("--depth", type=int, default=1000, help="retrieval depth impressions come from")
    s.add_argument("--k", type=int, default=10, help="true best items kept per held-out user")
    s.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("train")
    s.add_argument("--data", required=True, help="directory written by synth (or the same files)")
    s.add_argument("--log", help="interaction log (default: DATA/interactions.csv)")
    s.add_argument("--out", required=True, help="model file to write")
    s.add_argument("--tasks", default=",".join(ai.DEFAULT_TASKS))
    s.add_argument("--hidden", default="128,64")
    s.add_argument("--activation", default="relu", choices=arm.ACTIVATIONS)
    s.add_argument("--task-weights", help="value weights when the log has no value column")
    s.add_argument("--epochs", type=int, default=6)
    s.add_argument("--batch", type=int, default=1024)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--depth", type=int, default=1000, help="candidates reranked in evaluation")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--metrics", help="write the metrics as JSON")
    s.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("recall")
    s.add_argument("--data", required=True)
    s.add_argument("--results", required=True, help="argent query output (JSON lines)")
    s.add_argument("--k", type=int, default=10)
    for name in ("random", "reference"):
        s = sub.add_parser(name)
        s.add_argument("--out", required=True)
        s.add_argument("--dim", type=int, required=True)
        s.add_argument("--hidden", default="256,128")
        s.add_argument("--tasks", default=",".join(ai.DEFAULT_TASKS))
        s.add_argument("--activation", default="relu", choices=arm.ACTIVATIONS)
        s.add_argument("--task-weights", help="stored value weights (default: random in [0.1, 2])")
        s.add_argument("--retrieval-weight", type=float, default=0.25)
        s.add_argument("--seed", type=int, default=1)
        if name == "reference":
            s.add_argument("--queries", type=int, default=5)
            s.add_argument("--candidates", type=int, default=64)
            s.add_argument("--bad-layer", type=int, default=-1)
    a = p.parse_args()
    {"synth": cmd_synth, "train": cmd_train, "recall": cmd_recall, "random": cmd_random,
     "reference": cmd_reference}[a.command](a)


if __name__ == "__main__":
    main()
