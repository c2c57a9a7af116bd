"""The reranker Argent's coordinator runs: an OverArch MLP with T task heads and a value model.

This module is the single definition of the model's structure and of its file (docs/formats.md,
"Reranker model file"). The C++ side (coordinator/rerank_model.cc) loads the TorchScript file
this module saves, reads the attributes and the named tensors below, checks them against the
`rerank:` config and evaluates the same arithmetic with LibTorch:

    x      = [user ; item ; user * item]                      [m, 3d]
    h      = act(W_l h + b_l) for each hidden layer l         [m, hidden[-1]]
    logits = W_heads h + b_heads                              [m, T]   one row of W_heads per task
    value  = sum_t w_t * sigmoid(logits_t) + w_r * retrieval  [m]

Tensors (names are what C++ reads):  overarch.layers.{l}.weight [hidden[l], in], .bias
[hidden[l]];  overarch.heads.weight [T, hidden[-1]], .bias [T];  value.task_weights [T];
value.retrieval_weight [1].  Attributes: format_version (1), dim, hidden, tasks, activation.

Uses Debian's python3-torch (/usr/bin/python3).
"""

from typing import List, Tuple

import torch
from torch import nn

FORMAT_VERSION = 1
ACTIVATIONS = ("relu", "gelu", "tanh", "silu")


class OverArch(nn.Module):
    activation: str

    def __init__(self, dim: int, hidden: List[int], n_tasks: int, activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation '{activation}' is not one of {ACTIVATIONS}")
        layers = []
        width = 3 * dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            width = h
        self.layers = nn.ModuleList(layers)
        self.heads = nn.Linear(width, n_tasks)
        self.activation = activation

    def act(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return torch.relu(x)
        if self.activation == "gelu":
            return torch.nn.functional.gelu(x)
        if self.activation == "tanh":
            return torch.tanh(x)
        return torch.nn.functional.silu(x)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        h = torch.cat([user, item, user * item], dim=1)
        for layer in self.layers:
            h = self.act(layer(h))
        return self.heads(h)


class ValueModel(nn.Module):
    """Blends task probabilities (and the retrieval score) into one ranking value."""

    def __init__(self, task_weights: List[float], retrieval_weight: float):
        super().__init__()
        self.register_buffer("task_weights", torch.tensor(task_weights, dtype=torch.float32))
        self.register_buffer("retrieval_weight",
                             torch.tensor([retrieval_weight], dtype=torch.float32))

    def forward(self, logits: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(logits) * self.task_weights).sum(dim=1) + \
            self.retrieval_weight * retrieval


class Reranker(nn.Module):
    format_version: int
    dim: int
    hidden: List[int]
    tasks: List[str]
    activation: str

    def __init__(self, dim: int, hidden: List[int], tasks: List[str], activation: str,
                 task_weights: List[float], retrieval_weight: float):
        super().__init__()
        if len(task_weights) != len(tasks):
            raise ValueError(f"{len(task_weights)} task weights for {len(tasks)} tasks")
        self.format_version = FORMAT_VERSION
        self.dim = dim
        self.hidden = list(hidden)
        self.tasks = list(tasks)
        self.activation = activation
        self.overarch = OverArch(dim, hidden, len(tasks), activation)
        self.value = ValueModel(task_weights, retrieval_weight)

    def forward(self, user: torch.Tensor, item: torch.Tensor,
                retrieval: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """user, item [m, dim]; retrieval [m] -> (logits [m, T], value [m])."""
        logits = self.overarch(user, item)
        return logits, self.value(logits, retrieval)


def save(model: Reranker, path: str) -> None:
    """Writes the TorchScript file the coordinator loads (rerank.model)."""
    torch.jit.save(torch.jit.script(model.eval()), path)


def load(path: str):
    return torch.jit.load(path)


def reference_float64(model, user, item, retrieval, task_weights=None, retrieval_weight=None):
    """An independent float64 evaluation of a (scripted or eager) model's tensors, written out
    from the formula above rather than through the module's forward."""
    params = {k: v.detach().double() for k, v in model.named_parameters()}
    buffers = {k: v.detach().double() for k, v in model.named_buffers()}
    u, i = user.double(), item.double()
    h = torch.cat([u, i, u * i], dim=1)
    act = {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh,
           "silu": torch.nn.functional.silu}[model.activation]
    for l in range(len(model.hidden)):
        h = act(h @ params[f"overarch.layers.{l}.weight"].T + params[f"overarch.layers.{l}.bias"])
    logits = h @ params["overarch.heads.weight"].T + params["overarch.heads.bias"]
    w = buffers["value.task_weights"] if task_weights is None else task_weights.double()
    wr = buffers["value.retrieval_weight"][0] if retrieval_weight is None else retrieval_weight
    value = (torch.sigmoid(logits) * w).sum(dim=-1) + wr * retrieval.double()
    return logits, value
