"""Synthetic users, items and interaction logs drawn from a known latent model, and the log format.

Interaction log (docs/formats.md, "Interaction log"): a CSV file with a header line
`user,item,<task 1>,...,<task T>,value`. `user` is a row of users.npy ([U, d] float32 user
embeddings), `item` an item id of ids.npy (its embedding is the same row of items.npy), each task
column is a 0/1 label (clicked, liked, shared, watched past half) and `value` the reward the
impression earned (what the value model learns to predict). Extra columns are ignored.

The latent model: every (user u, item v) pair, both unit vectors, has per-task logits

    z_t = c_t + alpha_t * 8 (u . v) + 8 (u * m_t) . v + gamma_t * 3 tanh(4 a_t . v)

(a retrieval-like affinity, a diagonal bilinear term and a per-task item quality that retrieval
does not see), labels ~ Bernoulli(sigmoid(z_t)), and a true value sum_t w*_t sigmoid(z_t).
"""

import csv

import numpy as np

DEFAULT_TASKS = ("click", "like", "share", "watch")


def quantize(x):
    """Argent's index embeddings: L2-normalize, symmetric int8 per row, dequantize
    (docs/formats.md, "Quantization")."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    x = x.astype(np.float32)
    peak = np.abs(x).max(axis=1, keepdims=True)
    scale = (peak / np.float32(127)).astype(np.float32)
    inv = np.where(peak > 0, np.float32(127) / np.maximum(peak, 1e-30), 0).astype(np.float32)
    codes = np.clip(np.rint(x * inv), -127, 127)
    return (codes * scale).astype(np.float32)


def make_world(n_items, n_users, dim, n_tasks, seed, clusters=200):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    items = centers[rng.integers(0, clusters, n_items)] + 0.6 * rng.normal(size=(n_items, dim))
    users = centers[rng.integers(0, clusters, n_users)] + 0.8 * rng.normal(size=(n_users, dim))
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    a = rng.normal(size=(n_tasks, dim))
    truth = {
        "c": np.array([-1.0, -2.0, -3.0, -0.5] * n_tasks)[:n_tasks],
        "alpha": rng.uniform(0.5, 1.0, n_tasks),
        "m": rng.normal(size=(n_tasks, dim)),
        "gamma": rng.uniform(0.5, 1.5, n_tasks),
        "a": a / np.linalg.norm(a, axis=1, keepdims=True),
        "w": np.array([1.0, 2.0, 4.0, 1.0] * n_tasks)[:n_tasks],
    }
    ids = rng.permutation(np.arange(10 * n_items, dtype=np.int64))[:n_items]
    return items.astype(np.float32), ids, users.astype(np.float32), truth


def true_logits(users, items, truth):
    """[n_users, n_items, T] latent logits, in float64."""
    u, v = users.astype(np.float64), items.astype(np.float64)
    quality = np.tanh(4 * v @ truth["a"].T)  # [n_items, T]
    out = []
    for t in range(len(truth["c"])):
        z = truth["c"][t] + truth["alpha"][t] * 8 * (u @ v.T) + 8 * ((u * truth["m"][t]) @ v.T) \
            + truth["gamma"][t] * 3 * quality[:, t][None, :]
        out.append(z)
    return np.stack(out, axis=-1)


def true_value(users, items, truth):
    return (1 / (1 + np.exp(-true_logits(users, items, truth))) * truth["w"]).sum(axis=-1)


def top_by_score(users, items_dequantized, depth, chunk=256):
    """Each user's `depth` best item rows by inner product (the retrieval stage), best first."""
    out = np.empty((len(users), depth), dtype=np.int64)
    for s in range(0, len(users), chunk):
        scores = users[s:s + chunk] @ items_dequantized.T
        part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        out[s:s + chunk] = np.take_along_axis(part, order, 1)
    return out


def simulate_log(path, users, items, ids, truth, tasks, per_user_retrieved, per_user_random,
                 depth, seed):
    """Impressions as a recommender shows them: some of each user's retrieval top-depth plus
    some random items; labels and value drawn from the latent model."""
    rng = np.random.default_rng(seed)
    retrieved = top_by_score(users, quantize(items), depth)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item"] + list(tasks) + ["value"])
        for u in range(len(users)):
            rows = np.concatenate([
                rng.choice(retrieved[u], per_user_retrieved, replace=False),
                rng.integers(0, len(items), per_user_random)])
            p = 1 / (1 + np.exp(-true_logits(users[u:u + 1], items[rows], truth)[0]))
            labels = (rng.random(p.shape) < p).astype(np.int64)
            value = labels @ truth["w"]
            for j, r in enumerate(rows):
                w.writerow([u, int(ids[r])] + [int(x) for x in labels[j]] + [f"{value[j]:g}"])


def read_log(path, tasks):
    """-> users [n] int64, items [n] int64 ids, labels [n, T] float32, value [n] float32 or None."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        missing = [c for c in ["user", "item"] + list(tasks) if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {missing}; has {header}")
        rows = np.array(list(reader), dtype=object)
    col = {name: i for i, name in enumerate(header)}
    users = rows[:, col["user"]].astype(np.int64)
    items = rows[:, col["item"]].astype(np.int64)
    labels = np.stack([rows[:, col[t]].astype(np.float32) for t in tasks], axis=1)
    if labels.size and not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"{path}: task labels must be 0 or 1")
    value = rows[:, col["value"]].astype(np.float32) if "value" in col else None
    return users, items, labels, value
