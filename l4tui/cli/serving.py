"""`l4tui serve`, `l4tui passwd` and `l4tui lab-status`: a lab over SSH and its users.

The SSH library (asyncssh, and cryptography under it) is an extra
(``pip install 'l4tui[serve]'``): `need_asyncssh` says what to install
when it is missing, and `serve_lab` imports the server only once every
argument has been checked, so a bad argument is said first, and fast.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import logging
import math
import os
import sys
from pathlib import Path

import yaml

from l4tui.files import atomic_text
from l4tui.lab import load_lab
from l4tui.labstatus import grade, render
from l4tui.serve.address import parse_address
from l4tui.serve.auth import USER, hash_password, load_users
from machine.errors import ConfigError


def need_asyncssh(what: str) -> None:
    """ConfigError saying what to install, if the `serve` extra is not installed."""
    try:
        importlib.import_module("l4tui.serve")  # first: it quiets what asyncssh's import says
        importlib.import_module("asyncssh")
    except ImportError:
        raise ConfigError(
            f"{what} needs asyncssh, which the plain install leaves out: "
            "pip install 'l4tui[serve]' (in a checkout: pip install -e '.[serve]')"
        ) from None


def serve_lab(args: argparse.Namespace) -> int:
    host, port = parse_address(args.ssh)
    for name, ok, must in (
        ("max_sessions", args.max_sessions >= 1, "be at least 1"),
        ("per_user", args.per_user >= 1, "be at least 1"),
        ("idle_timeout", math.isfinite(args.idle_timeout) and args.idle_timeout > 0, "be > 0"),
        ("login_timeout", math.isfinite(args.login_timeout) and args.login_timeout > 0, "be > 0"),
        ("warm", args.warm >= 0, "be 0 or more"),
        ("warm", args.warm <= args.max_sessions, "be at most --max-sessions"),
    ):
        if not ok:
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} must {must}, not {getattr(args, name):g}")
    if not args.authorized_keys and not args.users:
        raise ConfigError("nobody could log in: give --authorized-keys DIR or --users FILE")
    if args.authorized_keys and not Path(args.authorized_keys).is_dir():
        raise ConfigError("not a directory of authorized_keys files", args.authorized_keys)
    lab = load_lab(args.lab)  # a bad lab is found before anyone connects
    users = load_users(args.users) if args.users else None
    state = Path(args.state_dir)
    # Only now the SSH library (asyncssh, cryptography): every bad argument is said before.
    need_asyncssh("l4tui serve")
    from l4tui.serve.server import LabServer, Limits, serve  # lazy: see above

    limits = Limits(
        max_sessions=args.max_sessions,
        per_user=args.per_user,
        idle_timeout=args.idle_timeout,
        login_timeout=args.login_timeout,
    )
    server = LabServer(str(Path(lab.file).resolve()), state, users, args.authorized_keys, limits)
    server.warm = args.warm
    server.mouse = not args.no_mouse
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # our own line per event is enough
    key = Path(args.host_key) if args.host_key else state / "host_ed25519"
    return asyncio.run(serve(server, host, port, key))


def passwd(args: argparse.Namespace) -> int:
    if not USER.fullmatch(args.user):
        raise ConfigError(f"not a user name: {args.user!r} (lower case, digits, - and _)")
    path = Path(args.users)
    if not path.parent.is_dir():  # said before the password is typed in vain
        raise ConfigError("no such directory for the users file", str(path.parent))
    users = load_users(args.users) if os.path.lexists(path) else {}
    try:
        if sys.stdin.isatty():
            password = getpass.getpass(f"password for {args.user}: ")
        else:  # from a pipe (a script): its first line, no prompt
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            password = line.removesuffix("\n")
    except EOFError:
        raise ConfigError("no password given (end of input); the users file is unchanged") from None
    except KeyboardInterrupt:
        print(file=sys.stderr)  # off the prompt's line
        raise ConfigError("interrupted; the users file is unchanged") from None
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters")
    users[args.user] = hash_password(password)
    made = False
    if not os.path.lexists(path):
        # A new users file is private from its first byte (it holds password hashes): made
        # 0600 here, the atomic writer then keeps that mode.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            raise ConfigError(f"cannot make the users file: {e.strerror}", args.users) from None
        made = True
    try:
        # Whole or not at all: a full disk leaves the old file as it was.
        with atomic_text(path) as out:
            out.write(yaml.safe_dump({"users": users}))
    except ConfigError as e:
        if made:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the users file: {e.message}", args.users) from None
    except OSError as e:
        if made:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the users file: {e.strerror}", args.users) from None
    print(f"{args.user} stored in {args.users}")
    return 0


def lab_status(args: argparse.Namespace) -> int:
    root = Path(args.state_dir)
    if not root.is_dir():
        raise ConfigError("no such state directory", args.state_dir)
    rows = grade(root)
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0
