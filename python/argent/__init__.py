"""Argent's Python client (pure Python on pyzmq, protobuf and numpy).

    import argent
    with argent.Client("tcp://127.0.0.1:5555") as client:
        result = client.search(queries, k=10, filter="1:3")   # numpy ids [n, 10], scores [n, 10]

Submodules: argent.client (Client, SearchResult, ArgentError), argent.keys (CURVE key files).
"""

from .client import ArgentError, Client, SearchResult
from .keys import KeyFileError, read_key_file, read_key_pair, read_public_key, write_key_pair
from ._messages import pb

__version__ = "0.1.0"

__all__ = ["ArgentError", "Client", "SearchResult", "KeyFileError", "read_key_file",
           "read_key_pair", "read_public_key", "write_key_pair", "pb", "__version__"]
