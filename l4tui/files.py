"""The files the debugger writes and reads: whole or not at all, never a node that is not ours,
and — for a served student — never outside their own directory.

Writing (`atomic_text`): a crash, a full disk or Ctrl-C half-way through never leaves half a
file where the old one was — the text goes to a hidden file beside the target, renamed into
place only when complete. That holds for a regular file or a path not there yet. Anything
else (a device such as /dev/null, a FIFO, a terminal) is written in place: renaming over it
would replace the node with a regular file (issue 14: `--trace /dev/null` as root broke
every program that opened /dev/null after). A symlink is followed — its target is written,
the link stays a link; an existing file keeps its mode and owner (where the owner cannot be
given to a new file, or the file has other hard links, it is written in place); a file we
may not write stays as it is. A directory, an empty name or a name with a NUL is refused.

Reading (`load_json`): regular files only, opened without blocking (a FIFO never hangs the
reader), at most `MAX_BYTES`, nesting bounded — a saved session or a schedule is data of a
known small shape.

Confinement (`FileRoot`): the one rule for where console commands may read and write. Over
`l4tui serve` every student's monitor runs `l4tui lab ... --confine DIR`: each file command
resolves its name inside DIR (symlinks resolved) and refuses any that lands outside — by the
resolved path, never by looking at the text. The root is held per session here, not in the
session's attributes, so nothing that swaps a session's state (`load`, `layout`) drops it.
The check and the open are two steps: a symlink made in DIR between them could redirect a
write, but only by someone with a shell on the server — a served student has none, and no
console command makes links.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from machine.errors import ConfigError
from machine.yamlsrc import decode_text, read_limited

MAX_BYTES = 1_000_000  # a saved session or schedule: far more than any real one (1 MB)
MAX_DEPTH = 100  # deepest JSON nesting accepted (the saved formats nest four deep)


class FileError(ConfigError):
    """A file that cannot or must not be written or read; `message` is the reason alone."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


MODE = 0o666 & ~_umask()  # what open() would have given a new file


def check_name(path: str | os.PathLike[str]) -> str:
    """`path` as text; FileError for a name no file can have (empty, or with a NUL)."""
    name = os.fspath(path)
    if not isinstance(name, str):
        raise FileError("a file name must be text")
    if not name:
        raise FileError("an empty file name")
    if "\0" in name:
        raise FileError("a NUL character in the file name", repr(name)[1:-1])
    return name


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


@contextmanager
def atomic_text(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A text file to write `path` through; a regular file is replaced only if the block ends
    well. FileError (one line: the name and why) when it cannot be written."""
    name = check_name(path)
    if name.endswith(os.sep):
        raise FileError("is a directory", name)
    real = os.path.realpath(name)  # a symlink: write its target, the link stays
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise FileError(_reason(e), name) from None
    try:
        if st is None:
            with _replacing(real, name, None) as f:
                yield f
        elif stat.S_ISDIR(st.st_mode):
            raise FileError("is a directory", name)
        elif not stat.S_ISREG(st.st_mode):
            with _in_place(real, name, truncate=False) as f:  # a device, a FIFO: never renamed over
                yield f
        elif not os.access(real, os.W_OK):
            raise FileError("Permission denied", name)  # as open() would: a read-only file stays
        else:
            with _replacing(real, name, st) as f:
                yield f
    except OSError as e:
        raise FileError(_reason(e), name) from None


@contextmanager
def _in_place(real: str, name: str, truncate: bool) -> Iterator[TextIO]:
    # Non-blocking open: a FIFO with no reader fails at once (ENXIO) instead of waiting
    # forever; the writes then block as usual.
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | (os.O_TRUNC if truncate else 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise FileError("a FIFO or socket with no reader", name) from None
        raise
    os.set_blocking(fd, True)
    with os.fdopen(fd, "w") as f:
        yield f


@contextmanager
def _replacing(real: str, name: str, st: os.stat_result | None) -> Iterator[TextIO]:
    """Write beside `real` and rename into place; `st` is the file there now (None: none)."""
    target = Path(real)
    if st is not None and st.st_nlink > 1:  # renaming would split the file from its other names
        with _in_place(real, name, truncate=True) as f:
            yield f
        return
    try:
        # A short prefix: the temporary name must fit where the target's name just fits.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:64]}.", suffix=".tmp")
    except PermissionError:
        if st is None:
            raise
        # We may write the file but not its directory: in place is the only way.
        with _in_place(real, name, truncate=True) as f:
            yield f
        return
    try:
        if st is not None and not _same_owner(fd, st):
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            with _in_place(real, name, truncate=True) as f:  # the owner stays the owner
                yield f
            return
        with os.fdopen(fd, "w") as f:
            yield f
        # mkstemp makes it private; the file is as it was, or the user's as usual.
        os.chmod(tmp, MODE if st is None else stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _same_owner(fd: int, st: os.stat_result) -> bool:
    """Give the new file `st`'s owner and group; False if that cannot be done."""
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (st.st_uid, st.st_gid):
        return True
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except OSError:
        return False
    return True


# --- reading ------------------------------------------------------------------------------


def _depth(data: Any) -> int:
    """How deep lists and mappings nest in `data` (iteratively: no recursion to exhaust)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            todo += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            todo += [(v, depth + 1) for v in value]
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
    return deepest


def load_json(path: str | os.PathLike[str], noun: str, plural: str) -> Any:
    """The JSON in a regular file of at most `MAX_BYTES`, nested at most `MAX_DEPTH` deep;
    ConfigError `cannot read NOUN: why` naming the file (`plural`: "saved sessions are
    limited to 1 MB")."""
    name = check_name(path)
    text = decode_text(read_limited(name, MAX_BYTES, plural, noun), name, noun)
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"cannot read {noun}: {e}", name) from None
    except RecursionError:
        raise ConfigError(f"cannot read {noun}: nested too deeply", name) from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(f"cannot read {noun}: nested deeper than {MAX_DEPTH} levels", name)
    return data


# --- confinement --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRoot:
    """Where console commands may read and write files: anywhere (`root` None, the user's own
    l4tui) or only inside `root` (a served student's directory, `--confine DIR`)."""

    root: Path | None = None

    @classmethod
    def confined_to(cls, directory: str | os.PathLike[str]) -> FileRoot:
        """The root for `--confine DIR`: made (0700) if missing; FileError if not a directory."""
        name = check_name(directory)
        try:
            Path(name).mkdir(mode=0o700, parents=True, exist_ok=True)
            root = Path(name).resolve(strict=True)
        except (OSError, RuntimeError) as e:
            why = _reason(e) if isinstance(e, OSError) else str(e)
            raise FileError(f"cannot use it as the files directory: {why}", name) from None
        if not root.is_dir():
            raise FileError("cannot use it as the files directory: not a directory", name)
        return cls(root)

    @property
    def confined(self) -> bool:
        return self.root is not None

    def path(self, name: str) -> str:
        """Where file command argument `name` reads or writes; FileError if it may not."""
        name = check_name(name)
        if self.root is None:
            return name
        try:
            # resolve(): every symlink followed, `..` applied — the file actually reached.
            where = (self.root / name).resolve()
        except (OSError, RuntimeError) as e:
            why = _reason(e) if isinstance(e, OSError) else "a symlink loop"
            raise FileError(why, name) from None
        if not where.is_relative_to(self.root):
            raise FileError(f"outside your directory {self.root}", name)
        return str(where)


ANYWHERE = FileRoot()
_ROOTS: weakref.WeakKeyDictionary[Any, FileRoot] = weakref.WeakKeyDictionary()


def confine(session: Any, root: FileRoot) -> None:
    """From now on `session`'s file commands stay inside `root`. A confinement is never
    lifted or widened: a second one must lie inside the first."""
    old = _ROOTS.get(session, ANYWHERE)
    if old.root is not None and (root.root is None or not root.root.is_relative_to(old.root)):
        raise FileError(f"a session confined to {old.root} stays there")
    _ROOTS[session] = root


def root_of(session: Any) -> FileRoot:
    """Where `session`'s file commands may go (anywhere unless confined)."""
    return _ROOTS.get(session, ANYWHERE)


def root_path(session: Any, name: str) -> str:
    """`name` in `session`'s file root (for `Session.call`: where the session lives)."""
    return root_of(session).path(name)
