"""Argent's index as a PyTorch model (docs/torch.md).

``torch.ops.argent`` holds the engine's own kernels as PyTorch operators (torch_ops/, built by
the project's CMake as ``libargent_torch_ops.so``); :class:`ArgentRetrieval` is an ``nn.Module``
whose buffers are an index's tensors and whose ``forward(queries, filter_plan, k)`` quantizes
the queries, probes the IVF lists, runs the fused int8 scan with Bloom and exact filtering, and
scores the results with an optional OverArch reranker, all as operators of one TorchScript
graph::

    import torch, argent.torch as at
    model = at.ArgentRetrieval.from_index("idx", nprobe=32)
    ids, scores, task_scores = model(queries, model.compile_filter("1:3 OR 2:5"), 10)
    torch.jit.save(torch.jit.script(model), "retrieval.pt")   # search.module: retrieval.pt

The same file is what ``argent serve`` runs with ``search.module`` (each rank binds its own
partitions to the module's index buffers), and what C++ loads with ``torch::jit::load``.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

MODULE_FORMAT = 1  # shard/module_scanner.cc kModuleFormat

# ShardTensors (shard/shard_index.h), by name: the module's index buffers.
INDEX_BUFFERS = ("codes", "scales", "ids", "signatures", "row_partition", "feature_offset",
                 "feature_count", "feature_ids", "feature_values", "list_offsets", "list_sizes",
                 "list_capacity", "list_summaries")
CENTROID_BUFFERS = ("centroids", "centroid_codes", "centroid_scales")
SCALARS = ("dim", "d_pad", "normalize", "nlist", "partitions", "bloom_words", "bloom_hashes",
           "bloom_seed", "list_slack_ppm")

_loaded: List[str] = []


def library_path() -> str:
    """Where libargent_torch_ops.so is: $ARGENT_TORCH_OPS, else the repository's build/."""
    env = os.environ.get("ARGENT_TORCH_OPS")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "build", "torch_ops", "libargent_torch_ops.so")


def load_library(path: Optional[str] = None) -> str:
    """Registers torch.ops.argent (once per process). Returns the library's path."""
    path = os.path.abspath(path or library_path())
    if _loaded:
        return _loaded[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"argent.torch: operator library {path} not found; build it (cmake --build build "
            f"--target argent_torch_ops) or set ARGENT_TORCH_OPS")
    torch.ops.load_library(path)
    _loaded.append(path)
    return path


def plan_spans(n: int, plan_ops: torch.Tensor) -> torch.Tensor:
    """plan_spans int32 [n, 2] giving every query the whole plan ``plan_ops``."""
    return torch.tensor([[0, plan_ops.size(0)]], dtype=torch.int32,
                        device=plan_ops.device).expand(n, 2).contiguous()


def batch_plans(plans: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-query plans (one compile_filter result each, [0, 4] for none) as (plan_ops,
    plan_spans) for ArgentRetrieval.search."""
    spans, first = [], 0
    for p in plans:
        spans.append([first, p.size(0)])
        first += p.size(0)
    ops = torch.cat(list(plans), 0) if plans else torch.zeros(0, 4, dtype=torch.int64)
    return ops.contiguous(), torch.tensor(spans, dtype=torch.int32).reshape(-1, 2)


class ArgentRetrieval(torch.nn.Module):
    """An index as a module: buffers are the index's tensors, forward is the search.

    forward(queries float32 [n, dim], filter_plan int64 [n_ops, 4], k) ->
        (ids int64 [n, k], scores float32 [n, k], task_scores float32 [n, k, T])
    ids/scores: the best k items by int8 score (ties by id), every one satisfying the filter
    exactly, -1/-inf padding; identical to ``argent search`` on the same index. task_scores:
    sigmoid of each reranker task's logit for each result (T = 0 without a reranker; 0 for
    padding). ``nprobe >= nlist`` or ``exact`` scans every list.
    """

    module_format: int
    dim: int
    d_pad: int
    normalize: bool
    nlist: int
    partitions: int
    bloom_words: int
    bloom_hashes: int
    bloom_seed: int
    list_slack_ppm: int
    nprobe: int
    exact: bool
    has_reranker: bool
    activation: str
    retrieval_weight: float
    rerank_weights: List[torch.Tensor]
    rerank_biases: List[torch.Tensor]

    def __init__(self, index: Dict[str, torch.Tensor], nprobe: int = 32, exact: bool = False):
        super().__init__()
        self.module_format = MODULE_FORMAT
        for name in SCALARS:
            setattr(self, name, int(index[name]))
        self.normalize = bool(int(index["normalize"]))
        for name in INDEX_BUFFERS + CENTROID_BUFFERS:
            self.register_buffer(name, index[name])
        if nprobe < 1:
            raise ValueError(f"nprobe {nprobe} must be >= 1")
        self.nprobe = int(nprobe)
        self.exact = bool(exact)
        self.has_reranker = False
        self.activation = "relu"
        self.retrieval_weight = 0.0
        self.rerank_weights = []
        self.rerank_biases = []
        self.register_buffer("head_weight", torch.zeros(0, 0))
        self.register_buffer("head_bias", torch.zeros(0))
        self.register_buffer("task_weights", torch.zeros(0))

    @classmethod
    def from_index(cls, path: str, nprobe: int = 32, exact: bool = False,
                   list_slack: float = 0.1) -> "ArgentRetrieval":
        """The index directory ``path`` (every partition), as ``argent search`` opens it."""
        load_library()
        return cls(torch.ops.argent.load_index(path, list_slack), nprobe=nprobe, exact=exact)

    def attach_reranker(self, path: str) -> None:
        """Adds the OverArch + value model of a reranker file (python/argent_rerank_model.py)."""
        model = torch.jit.load(path, map_location="cpu")
        if int(model.dim) != self.dim:
            raise ValueError(f"{path}: reranker dim {int(model.dim)} != index dim {self.dim}")
        named = dict(model.named_parameters())
        named.update(dict(model.named_buffers()))
        self.rerank_weights = [named[f"overarch.layers.{i}.weight"].detach().float().contiguous()
                               for i in range(len(model.hidden))]
        self.rerank_biases = [named[f"overarch.layers.{i}.bias"].detach().float().contiguous()
                              for i in range(len(model.hidden))]
        self.head_weight = named["overarch.heads.weight"].detach().float().contiguous()
        self.head_bias = named["overarch.heads.bias"].detach().float().contiguous()
        self.task_weights = named["value.task_weights"].detach().float().contiguous()
        self.retrieval_weight = float(named["value.retrieval_weight"].reshape(-1)[0])
        self.activation = str(model.activation)
        self.has_reranker = True

    # ---- The graph ------------------------------------------------------------------------

    @torch.jit.export
    def compile_filter(self, expression: str) -> torch.Tensor:
        """A filter expression ("1:3 AND NOT 2:5") as a plan int64 [n_ops, 4]; "" -> [0, 4]."""
        return torch.ops.argent.compile_filter(expression, self.bloom_words, self.bloom_hashes,
                                               self.bloom_seed)

    @torch.jit.export
    def scan(self, query_codes: torch.Tensor, query_scales: torch.Tensor,
             query_bias: torch.Tensor, plan_ops: torch.Tensor, plan_spans: torch.Tensor,
             probes: Optional[torch.Tensor], k: int
             ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused scan over this module's index buffers: (scores, ids, rows) [n, k].
        probes int32 [n, nprobe] or None (every list). search.module calls this."""
        return torch.ops.argent.search(
            query_codes, query_scales, query_bias, plan_ops, plan_spans, probes, k,
            self.codes, self.scales, self.ids, self.signatures, self.list_offsets,
            self.list_sizes, self.list_summaries, self.feature_offset, self.feature_count,
            self.feature_ids, self.feature_values)

    @torch.jit.export
    def search(self, queries: torch.Tensor, plan_ops: torch.Tensor, plan_spans: torch.Tensor,
               k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantize, probe and scan with per-query plans: (scores, ids, rows) [n, k]."""
        codes, scales, bias = torch.ops.argent.quantize(queries.contiguous(), self.d_pad,
                                                        self.normalize)
        probes: Optional[torch.Tensor] = None
        if not self.exact and self.nprobe < self.nlist:
            probes = torch.ops.argent.probe(codes, scales, bias, plan_ops, plan_spans,
                                            self.centroid_codes, self.centroid_scales,
                                            self.list_sizes, self.list_summaries, self.nprobe)
        return self.scan(codes, scales, bias, plan_ops, plan_spans, probes, k)

    @torch.jit.export
    def verify(self, rows: torch.Tensor, plan_ops: torch.Tensor,
               plan_spans: torch.Tensor) -> torch.Tensor:
        """Exact filter check of result rows against the feature store: bool [n, k]."""
        return torch.ops.argent.verify_filter(rows, plan_ops, plan_spans, self.feature_offset,
                                              self.feature_count, self.feature_ids,
                                              self.feature_values)

    @torch.jit.export
    def task_scores(self, queries: torch.Tensor, scores: torch.Tensor,
                    rows: torch.Tensor) -> torch.Tensor:
        """The reranker's per-task probabilities of each result, [n, k, T]."""
        n, k = rows.size(0), rows.size(1)
        if not self.has_reranker:
            return torch.zeros(n, k, 0, dtype=torch.float32, device=rows.device)
        users = queries.float()
        if self.normalize:
            users = torch.nn.functional.normalize(users, dim=1)
        items = torch.ops.argent.gather_embeddings(self.codes, self.scales, rows, self.dim)
        users = users.unsqueeze(1).expand(n, k, self.dim).reshape(n * k, self.dim).contiguous()
        t = self.head_weight.size(0)
        weights = self.task_weights.unsqueeze(0).expand(n * k, t).contiguous()
        retrieval = torch.where(rows >= 0, scores, torch.zeros_like(scores)).reshape(n * k)
        probs, _ = torch.ops.argent.rerank(users, items.reshape(n * k, self.dim).contiguous(),
                                           weights, retrieval.contiguous(),
                                           self.retrieval_weight, self.rerank_weights,
                                           self.rerank_biases, self.head_weight, self.head_bias,
                                           self.activation)
        probs = probs.reshape(n, k, t)
        return torch.where((rows >= 0).unsqueeze(2), probs, torch.zeros_like(probs))

    def forward(self, queries: torch.Tensor, filter_plan: torch.Tensor,
                k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        spans = torch.tensor([[0, filter_plan.size(0)]], dtype=torch.int32,
                             device=filter_plan.device).expand(queries.size(0), 2).contiguous()
        scores, ids, rows = self.search(queries, filter_plan, spans, k)
        return ids, scores, self.task_scores(queries, scores, rows)

    # ---- Streaming updates (eager Python; the same path as the service) ------------------

    def index_tensors(self) -> Dict[str, torch.Tensor]:
        """The index as argent::load_index returns it (the module's own buffers)."""
        d = {name: getattr(self, name) for name in INDEX_BUFFERS + CENTROID_BUFFERS}
        for name in SCALARS:
            d[name] = torch.tensor(int(getattr(self, name)), dtype=torch.int64)
        return d

    def update(self, upsert_ids: Sequence[int] = (), embeddings: Optional[torch.Tensor] = None,
               features: Optional[Sequence[Dict[int, Sequence[int]]]] = None,
               delete_ids: Sequence[int] = ()) -> None:
        """Upserts items (ids, float32 [m, dim] embeddings, optional {feature: [values]} per item)
        then deletes ``delete_ids``, through the service's update path (prepare_upserts,
        ShardIndex::upsert/remove): rows are written into the buffers in place; a list that is
        full makes the shard reallocate, and the new tensors become the buffers."""
        ids = torch.tensor(list(upsert_ids), dtype=torch.int64)
        m = ids.numel()
        emb = (embeddings if embeddings is not None else torch.zeros(0, self.dim))
        emb = emb.to(torch.float32).reshape(m, self.dim).contiguous()
        offsets, fids, fvals = [0], [], []
        for i in range(m):
            pairs = sorted({(int(f), int(v)) for f, vs in (features[i] if features else {}).items()
                            for v in (vs if isinstance(vs, (list, tuple)) else [vs])})
            fids += [p[0] for p in pairs]
            fvals += [p[1] for p in pairs]
            offsets.append(len(fids))
        out = torch.ops.argent.apply_updates(
            self.index_tensors(), ids, emb, torch.tensor(offsets, dtype=torch.int64),
            torch.tensor(fids, dtype=torch.int32), torch.tensor(fvals, dtype=torch.int64),
            torch.tensor(list(delete_ids), dtype=torch.int64))
        for name in INDEX_BUFFERS:
            if out[name] is not getattr(self, name):
                setattr(self, name, out[name])
