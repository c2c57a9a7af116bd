"""Argent's Python client (pure Python on protobuf, numpy and pyzmq, or, where pyzmq is missing,
libzmq itself through ctypes: argent._zmq).

    import argent
    with argent.Client("tcp://127.0.0.1:5555") as client:
        result = client.search(queries, k=10, filter="1:3")   # numpy ids [n, 10], scores [n, 10]

Submodules: argent.client (Client, SearchResult, ArgentError), argent.keys (CURVE key files),
argent.torch (the index as a PyTorch model; needs torch, not pyzmq).
"""

import importlib

__version__ = "0.1.0"

# The client's names load on first use (PEP 562), so that `import argent.torch` works where
# pyzmq and protobuf are not installed (a GPU box with only PyTorch).
_LAZY = {
    "ArgentError": ".client", "Client": ".client", "SearchResult": ".client",
    "KeyFileError": ".keys", "read_key_file": ".keys", "read_key_pair": ".keys",
    "read_public_key": ".keys", "write_key_pair": ".keys", "pb": "._messages",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'argent' has no attribute {name!r}")
