"""The one place that picks the client's ZeroMQ binding: pyzmq when it imports, else
argent._zmq_ctypes (ctypes on libzmq.so.5), e.g. on a GPU box that has PyTorch but no pyzmq.

ARGENT_ZMQ=ctypes forces the ctypes binding (its tests); ARGENT_ZMQ=pyzmq forbids the fallback.
BACKEND names the binding in use and libzmq's version, for logs.
"""

import os

_choice = os.environ.get("ARGENT_ZMQ", "")
if _choice not in ("", "pyzmq", "ctypes"):
    raise ImportError(f"argent: ARGENT_ZMQ={_choice!r}; expected pyzmq, ctypes or unset")

_pyzmq = None
if _choice != "ctypes":
    try:
        import zmq as _pyzmq
        from zmq.utils import z85 as _z85
    except ImportError:
        if _choice == "pyzmq":
            raise
        _pyzmq = None

if _pyzmq is not None:
    Context, DEALER, LINGER = _pyzmq.Context, _pyzmq.DEALER, _pyzmq.LINGER
    ZMQError, curve_keypair = _pyzmq.ZMQError, _pyzmq.curve_keypair
    z85_encode, z85_decode = _z85.encode, _z85.decode
    BACKEND = f"pyzmq {_pyzmq.pyzmq_version()} (libzmq {_pyzmq.zmq_version()})"
else:
    from . import _zmq_ctypes as _c  # ImportError naming both when libzmq is missing too

    Context, DEALER, LINGER = _c.Context, _c.DEALER, _c.LINGER
    ZMQError, curve_keypair = _c.ZMQError, _c.curve_keypair
    z85_encode, z85_decode = _c.z85_encode, _c.z85_decode
    BACKEND = f"ctypes (libzmq {_c.zmq_version()})"
