"""Files written whole or not at all: a session, a schedule, a trace.

A crash, a full disk or Ctrl-C half-way through never leaves half a file
where the old one was: the text goes to a hidden file beside the target,
which is renamed into place only when complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


MODE = 0o666 & ~_umask()  # what open() would have given a new file


@contextmanager
def atomic_text(path: str | Path) -> Iterator[TextIO]:
    """A text file to write `path` through; it replaces `path` only if the block ends well."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            yield f
        os.chmod(tmp, MODE)  # mkstemp makes it private; the file is the user's as usual
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
