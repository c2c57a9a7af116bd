"""CURVE key files (ZeroMQ's CurveZMQ), shared with the server and `argent admin keygen`.

A key-pair file is text with two lines, each key 40 characters of Z85:

    public-key = <40-char Z85>
    secret-key = <40-char Z85>

A public-key file has only the `public-key` line. Blank lines and lines starting with `#` are
ignored. A client needs its own pair and the server's public key.
"""

import os

from . import _zmq

_KEY_LENGTH = 40


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and the problem."""


def read_key_file(path):
    """Returns {"public-key": bytes, "secret-key": bytes (only in a pair file)}."""
    keys = {}
    with open(path, "r", encoding="ascii") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or name not in ("public-key", "secret-key"):
                raise KeyFileError(f"{path}:{number}: expected 'public-key = KEY' or "
                                   f"'secret-key = KEY', got {line[:60]!r}")
            if len(value) != _KEY_LENGTH:
                raise KeyFileError(f"{path}:{number}: {name} has {len(value)} characters; "
                                   f"a Z85 CURVE key has {_KEY_LENGTH}")
            try:
                _zmq.z85_decode(value)
            except Exception as e:  # pyzmq's z85 raises ValueError/KeyError on bad characters
                raise KeyFileError(f"{path}:{number}: {name} is not Z85 ({e})") from None
            if name in keys:
                raise KeyFileError(f"{path}:{number}: {name} given twice")
            keys[name] = value.encode("ascii")
    if "public-key" not in keys:
        raise KeyFileError(f"{path}: no public-key line")
    return keys


def read_key_pair(path):
    """(public, secret) of a key-pair file."""
    keys = read_key_file(path)
    if "secret-key" not in keys:
        raise KeyFileError(f"{path}: no secret-key line (a key-pair file needs both keys)")
    return keys["public-key"], keys["secret-key"]


def read_public_key(path):
    return read_key_file(path)["public-key"]


def write_key_pair(path, public_path=None):
    """Generates a CURVE key pair; writes the pair file (mode 0600) and, when `public_path` is
    given, the public-key file. Returns (public, secret)."""
    public, secret = _zmq.curve_keypair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"public-key = {public.decode()}\nsecret-key = {secret.decode()}\n")
    if public_path:
        with open(public_path, "w", encoding="ascii") as f:
            f.write(f"public-key = {public.decode()}\n")
    return public, secret
