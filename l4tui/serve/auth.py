"""Who may log in to `l4tui serve`: per-user public keys, or a users file of salted hashes.

Keys: a directory with one authorized_keys file per user, named after the
user (`keys/alice`). Passwords: a YAML file `{users: {alice: "scrypt$…"}}`
whose entries `hash_password` makes (`l4tui passwd USER --users FILE`).
Nothing else authenticates; a user in neither refuses.

A name is checked whole (`USER.fullmatch`: a `$` would let "alice\n" through).
A password for a user who does not exist is checked against `unknown_hash()`
all the same, so a refusal costs one scrypt either way and its time does not
say whether the name exists (issue 14).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

from machine.yamlsrc import load_yaml_file

USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # always with fullmatch
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~50 ms a check, so guessing is slow


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=_N, r=_R, p=_P, dklen=32
    )
    return _encode(salt, digest)


def unknown_hash() -> str:
    """A stored hash no password matches: what a user who does not exist is checked against."""
    return _encode(os.urandom(16), os.urandom(32))


def _encode(salt: bytes, digest: bytes) -> str:
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def _decode(stored: str) -> tuple[bytes, bytes] | None:
    """A stored hash's salt and digest; None if it is not one."""
    try:
        kind, salt, digest = stored.split("$")
        if kind != "scrypt":
            return None
        return base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
    except ValueError:  # binascii.Error too
        return None


def check_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from; the same work for any `stored`."""
    decoded = _decode(stored)
    salt, want = decoded if decoded and decoded[0] and decoded[1] else (b"-" * 16, b"")
    got = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=_N, r=_R, p=_P, dklen=32
    )
    return bool(want) and hmac.compare_digest(got, want)


def load_users(path: str) -> dict[str, str]:
    """The users file: user -> salted hash; ConfigError with the position of a bad entry."""
    src = load_yaml_file(path, "users files")
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise src.error((), 'a users file is {users: {NAME: "scrypt$..."}}')
    users = {}
    for name, stored in data["users"].items():
        if not isinstance(name, str) or not USER.fullmatch(name):
            raise src.key_error(("users",), name, f"not a user name: {name!r}")
        if not isinstance(stored, str) or _decode(stored) is None:
            raise src.error(("users", name), "a password entry is a scrypt$ hash (l4tui passwd)")
        users[name] = stored
    return users


def authorized_keys(directory: str, user: str) -> str | None:
    """The path of `user`'s authorized_keys file in `directory`, if there is one."""
    if not USER.fullmatch(user):
        return None
    path = Path(directory) / user
    return str(path) if path.is_file() else None


def reason(e: Exception) -> str:
    """Why a file or key could not be used, as a log or error line says it."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
