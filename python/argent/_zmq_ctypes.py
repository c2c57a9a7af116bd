"""A minimal ctypes binding to libzmq: the part of pyzmq the client uses, for machines that have
libzmq.so.5 but no pyzmq (a GPU box with only PyTorch). argent._zmq picks it; nothing else should
import it.

Covered: Context.instance(), Context.socket(DEALER), Socket.setsockopt(LINGER, int), the
curve_publickey / curve_secretkey / curve_serverkey attributes, connect, send(bytes),
poll(timeout_ms), recv() -> bytes, close; curve_keypair(); z85_encode / z85_decode; and, for
its test (tests/python/zmq_ctypes_test.py), bind and curve_server.

Like pyzmq: the shared context is per process (a child of fork() gets a fresh one, since the
parent's I/O threads do not exist there); a socket belongs to one thread at a time; every call
into libzmq releases the GIL (ctypes.CDLL), so a blocked poll or recv stalls only its thread.
"""

import ctypes
import ctypes.util
import errno
import os
import threading
import time

DEALER = 5
ROUTER = 6
LINGER = 17
CURVE_SERVER = 47
CURVE_PUBLICKEY = 48
CURVE_SECRETKEY = 49
CURVE_SERVERKEY = 50
POLLIN = 1

_CURVE_OPTIONS = {"curve_publickey": CURVE_PUBLICKEY, "curve_secretkey": CURVE_SECRETKEY,
                  "curve_serverkey": CURVE_SERVERKEY}


class ZMQError(RuntimeError):
    """A libzmq call that failed; `errno` is libzmq's error number."""

    def __init__(self, call, error):
        super().__init__(f"{call}: {_lib.zmq_strerror(error).decode()} (errno {error})")
        self.errno = error


def _load():
    """libzmq: $ARGENT_LIBZMQ, then the soname through the dynamic loader (honours
    LD_LIBRARY_PATH, which find_library's ldconfig lookup does not), then find_library."""
    # find_library runs ldconfig (or gcc): only when the loader found nothing.
    names = [lambda: os.environ.get("ARGENT_LIBZMQ"), lambda: "libzmq.so.5",
             lambda: ctypes.util.find_library("zmq")]
    tried = []
    for name in (n() for n in names):
        if not name or any(name in t for t in tried):
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            tried.append(str(e))
    raise ImportError("argent: no ZeroMQ binding: pyzmq did not import (or ARGENT_ZMQ=ctypes) "
                      "and libzmq could not be loaded (" + "; ".join(tried) + "). Install pyzmq "
                      "(python3-zmq), or libzmq5 and put it on LD_LIBRARY_PATH or set "
                      "ARGENT_LIBZMQ to its path.")


_lib = _load()


class _Msg(ctypes.Union):
    # zmq_msg_t: 64 opaque bytes, pointer-aligned.
    _fields_ = [("_", ctypes.c_ubyte * 64), ("_align", ctypes.c_void_p)]


class _PollItem(ctypes.Structure):
    # zmq_pollitem_t on POSIX: the fd is an int.
    _fields_ = [("socket", ctypes.c_void_p), ("fd", ctypes.c_int), ("events", ctypes.c_short),
                ("revents", ctypes.c_short)]


def _sig(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)


_vp, _int, _size, _cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
_sig("zmq_version", None, ctypes.POINTER(_int), ctypes.POINTER(_int), ctypes.POINTER(_int))
_sig("zmq_errno", _int)
_sig("zmq_strerror", _cp, _int)
_sig("zmq_ctx_new", _vp)
_sig("zmq_socket", _vp, _vp, _int)
_sig("zmq_close", _int, _vp)
_sig("zmq_setsockopt", _int, _vp, _int, _vp, _size)
_sig("zmq_connect", _int, _vp, _cp)
_sig("zmq_bind", _int, _vp, _cp)
_sig("zmq_send", _int, _vp, _cp, _size, _int)
_sig("zmq_poll", _int, ctypes.POINTER(_PollItem), _int, ctypes.c_long)
_sig("zmq_msg_init", _int, ctypes.POINTER(_Msg))
_sig("zmq_msg_recv", _int, ctypes.POINTER(_Msg), _vp, _int)
_sig("zmq_msg_data", _vp, ctypes.POINTER(_Msg))
_sig("zmq_msg_size", _size, ctypes.POINTER(_Msg))
_sig("zmq_msg_close", _int, ctypes.POINTER(_Msg))
_sig("zmq_curve_keypair", _int, _cp, _cp)
_sig("zmq_z85_encode", _vp, _cp, _cp, _size)
_sig("zmq_z85_decode", _vp, _cp, _cp)


def zmq_version():
    v = [_int(), _int(), _int()]
    _lib.zmq_version(*(ctypes.byref(x) for x in v))
    return ".".join(str(x.value) for x in v)


def _check(call, rc):
    if rc == -1:
        raise ZMQError(call, _lib.zmq_errno())
    return rc


def _retry(call, f, *args):
    """f(*args), again after EINTR (as pyzmq does): a signal is not an error, and returning to
    the interpreter between tries lets Python's own signal handlers run."""
    while True:
        rc = f(*args)
        if rc != -1:
            return rc
        error = _lib.zmq_errno()
        if error != errno.EINTR:
            raise ZMQError(call, error)


class Socket:
    """One libzmq socket. Not thread-safe (libzmq's sockets are not); close() is idempotent."""

    def __init__(self, handle):
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_pid", os.getpid())

    @property
    def closed(self):
        return self._handle is None

    def _h(self):
        if self._handle is None:
            raise ZMQError("socket", errno.ENOTSOCK)
        return self._handle

    def setsockopt(self, option, value):
        if isinstance(value, int):
            buf = _int(value)
            _check("zmq_setsockopt", _lib.zmq_setsockopt(self._h(), option, ctypes.byref(buf),
                                                          ctypes.sizeof(buf)))
            return
        if isinstance(value, str):
            value = value.encode("ascii")
        value = bytes(value)
        _check("zmq_setsockopt", _lib.zmq_setsockopt(self._h(), option, value, len(value)))

    def __setattr__(self, name, value):
        # pyzmq's attribute form of the CURVE options: socket.curve_publickey = key.
        if name in _CURVE_OPTIONS:
            self.setsockopt(_CURVE_OPTIONS[name], value)
        elif name == "curve_server":
            self.setsockopt(CURVE_SERVER, int(value))
        else:
            raise AttributeError(f"argent._zmq_ctypes.Socket has no option {name!r}")

    def connect(self, endpoint):
        _check("zmq_connect", _lib.zmq_connect(self._h(), endpoint.encode()))

    def bind(self, endpoint):
        _check("zmq_bind", _lib.zmq_bind(self._h(), endpoint.encode()))

    def send(self, data):
        """Sends one frame (copied by libzmq); blocks while the queue is full, as pyzmq does."""
        data = bytes(data)
        _retry("zmq_send", _lib.zmq_send, self._h(), data, len(data), 0)

    def poll(self, timeout=None):
        """POLLIN when a message can be received within `timeout` ms (None: wait forever),
        else 0."""
        item = _PollItem(self._h(), 0, POLLIN, 0)
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1e3
        while True:
            left = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1e3))
            rc = _lib.zmq_poll(ctypes.byref(item), 1, left)
            if rc >= 0:
                return item.revents & POLLIN
            error = _lib.zmq_errno()
            if error != errno.EINTR:
                raise ZMQError("zmq_poll", error)

    def recv(self):
        """The next frame as bytes; blocks until one arrives."""
        msg = _Msg()
        _lib.zmq_msg_init(ctypes.byref(msg))
        try:
            _retry("zmq_msg_recv", _lib.zmq_msg_recv, ctypes.byref(msg), self._h(), 0)
            return ctypes.string_at(_lib.zmq_msg_data(ctypes.byref(msg)),
                                    _lib.zmq_msg_size(ctypes.byref(msg)))
        finally:
            _lib.zmq_msg_close(ctypes.byref(msg))

    def close(self):
        if self._handle is not None:
            _lib.zmq_close(self._handle)
            object.__setattr__(self, "_handle", None)

    def __del__(self):
        # A socket inherited through fork() belongs to the parent's context: leave it alone.
        try:
            if self._handle is not None and self._pid == os.getpid():
                self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass


class Context:
    """A libzmq context. It is never terminated: its sockets set LINGER 0 and the process's exit
    ends its I/O threads, as with pyzmq's global instance."""

    _instance = None
    _instance_pid = None
    _lock = threading.Lock()

    def __init__(self):
        self._handle = _lib.zmq_ctx_new()
        if not self._handle:
            raise ZMQError("zmq_ctx_new", _lib.zmq_errno())

    @classmethod
    def instance(cls):
        """The process's shared context (a new one after fork())."""
        with cls._lock:
            if cls._instance is None or cls._instance_pid != os.getpid():
                cls._instance, cls._instance_pid = cls(), os.getpid()
            return cls._instance

    def socket(self, socket_type):
        handle = _lib.zmq_socket(self._handle, socket_type)
        if not handle:
            raise ZMQError("zmq_socket", _lib.zmq_errno())
        return Socket(handle)


def curve_keypair():
    """A new CURVE key pair as (public, secret), each 40 bytes of Z85."""
    public, secret = ctypes.create_string_buffer(41), ctypes.create_string_buffer(41)
    _check("zmq_curve_keypair", _lib.zmq_curve_keypair(public, secret))
    return public.value, secret.value


def z85_encode(data):
    """Z85 text (bytes) of `data`, whose length must be a multiple of 4."""
    data = bytes(data)
    if len(data) % 4:
        raise ValueError(f"z85: {len(data)} bytes is not a multiple of 4")
    out = ctypes.create_string_buffer(len(data) * 5 // 4 + 1)
    if not _lib.zmq_z85_encode(out, data, len(data)):
        raise ValueError("z85: cannot encode")
    return out.raw[:-1]


def z85_decode(text):
    """The bytes of Z85 `text` (str or bytes, a multiple of 5 characters); ValueError when it
    is not Z85."""
    if isinstance(text, str):
        text = text.encode("ascii")
    text = bytes(text)
    if len(text) % 5:
        raise ValueError(f"z85: {len(text)} characters is not a multiple of 5")
    if not text:
        return b""  # libzmq refuses an empty string; pyzmq decodes it to b""
    out = ctypes.create_string_buffer(len(text) * 4 // 5)
    # libzmq reads up to a NUL, so one inside would decode a shorter string.
    if b"\0" in text or not _lib.zmq_z85_decode(out, text):
        raise ValueError("z85: a character outside the Z85 alphabet")
    return out.raw
