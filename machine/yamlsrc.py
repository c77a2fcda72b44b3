"""YAML at the boundary: safe parsing that remembers where each value came from.

`load_yaml` parses with PyYAML's safe composer and returns plain Python data
plus a table of source positions keyed by the path to each value, so that a
validator deep inside a profile or scenario can raise a `ConfigError` naming
the file, line and column of the offending value (STYLE.md point 10).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml

from machine.errors import ConfigError

Path = tuple[Any, ...]


@dataclass(slots=True)
class Source:
    """Parsed YAML data with a source position for each path.

    A position is ``(file, line, col)`` (1-based), so data merged from two
    files (a profile and a scenario's overrides) still points at the right one.
    """

    data: Any
    file: str
    positions: dict[Path, tuple[str, int, int]] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Any, file: str) -> Source:
        """Data made in code (not parsed): every path is attributed to `file`."""
        src = cls(data, file)

        def walk(value: Any, path: Path) -> None:
            src.positions[path] = (file, None, None)  # type: ignore[assignment]
            if isinstance(value, dict):
                for k, v in value.items():
                    src.positions[path + ("<key>", k)] = (file, None, None)  # type: ignore[assignment]
                    walk(v, path + (k,))
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(v, path + (i,))

        walk(data, ())
        return src

    def error(self, path: Path, message: str) -> ConfigError:
        """A ConfigError positioned at `path`, or at its nearest known parent."""
        p = tuple(path)
        while p not in self.positions and p:
            p = p[:-1]
        file, line, col = self.positions.get(p, (self.file, None, None))
        return ConfigError(message, file, line, col)

    def key_error(self, path: Path, key: Any, message: str) -> ConfigError:
        """A ConfigError positioned at the key `key` of the mapping at `path`."""
        pos = self.positions.get(tuple(path) + ("<key>", key))
        if pos is None:
            return self.error(path, message)
        return ConfigError(message, *pos)

    def sub(self, path: Path) -> Source:
        """The data at `path` as a Source of its own (positions re-rooted)."""
        n = len(path)
        data = self.data
        for part in path:
            data = data[part]
        positions = {p[n:]: v for p, v in self.positions.items() if p[:n] == tuple(path)}
        return Source(data, self.file, positions)


MAX_BYTES = 1_000_000  # the default size limit of a YAML input (1 MB)
MAX_DEPTH = 100  # deepest nesting of mappings and sequences accepted


class _Refused(Exception):
    """Valid YAML that `load_yaml` will not accept (an alias, too deep a nesting)."""

    def __init__(self, message: str, mark: Any) -> None:  # a yaml Mark (two classes), or None
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing aliases and bounding the nesting depth.

    An alias (``*name``) makes the composer hand back the anchored node again,
    so a few lines of anchors and aliases (the "billion laughs") expand into
    an exponentially large document when converted. Refusing every alias at
    composition time stops that before anything is expanded, and reports the
    alias's own position; anchors alone are harmless. The depth bound keeps
    both the composer and `_convert` (both recursive) far from Python's
    recursion limit.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("YAML aliases are not supported", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
            assert node is not None  # the event peeked above starts a node
            return node
        finally:
            self._depth -= 1


def _size_text(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000} MB"
    if n % 1000 == 0:
        return f"{n // 1000} kB"
    return f"{n} bytes"


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` of `text`."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_yaml(
    text: str,
    file: str = "<string>",
    max_bytes: int = MAX_BYTES,
    what: str = "YAML files",
) -> Source:
    """Parse `text` safely; raise ConfigError with the position of a syntax error.

    Refused as well, before any expansion: texts over `max_bytes` bytes (UTF-8)
    ("file is N bytes; `what` are limited to 1 MB"), YAML aliases, and nesting
    deeper than `MAX_DEPTH`.
    """
    if not isinstance(text, str):
        raise ConfigError("expected YAML text", file)
    # Every character is at least one byte: only encode when it could fit.
    size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ConfigError(
            f"file is {size} bytes; {what} are limited to {_size_text(max_bytes)}", file
        )
    try:
        node = yaml.compose(text, Loader=_Loader)
    except _Refused as e:
        if e.mark is None:  # pragma: no cover - PyYAML's events carry their marks
            raise ConfigError(e.message, file) from None
        raise ConfigError(e.message, file, e.mark.line + 1, e.mark.column + 1) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what_ = e.problem or e.context or "invalid YAML"
        if mark is not None:
            raise ConfigError(
                f"invalid YAML: {what_}", file, mark.line + 1, mark.column + 1
            ) from None
        raise ConfigError(f"invalid YAML: {what_}", file) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        line, col = _line_col(text, e.position)
        char = e.character if isinstance(e.character, int) else ord(e.character)
        raise ConfigError(
            f"invalid YAML: unacceptable character #x{char:04x}: {e.reason}", file, line, col
        ) from None
    except yaml.YAMLError as e:  # pragma: no cover - PyYAML raises Marked errors in practice
        raise ConfigError(f"invalid YAML: {' '.join(str(e).split())}", file) from None
    src = Source(None, file)
    if node is None:
        return src
    constructor = yaml.SafeLoader("")
    src.data = _convert(node, (), src, constructor)
    return src


def _convert(node: yaml.Node, path: Path, src: Source, ctor: yaml.SafeLoader) -> Any:
    src.positions[path] = (src.file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, path + ("<key>",), src, ctor)
            key_pos = (src.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key, str | int):
                raise ConfigError("mapping keys must be strings", *key_pos)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", *key_pos)
            # Errors about a value point at the value; errors about a key
            # (unknown field) look it up under ("<key>", key).
            src.positions[path + ("<key>", key)] = key_pos
            out[key] = _convert(value_node, path + (key,), src, ctor)
        src.positions.pop(path + ("<key>",), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), src, ctor) for i, item in enumerate(node.value)]
    try:
        return ctor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as e:
        raise src.error(path, f"invalid value: {e.problem}") from None
    except ValueError:  # an integer past Python's str-to-int digit limit (4,300 digits)
        raise src.error(path, "invalid value: a number too long to read") from None


def read_limited(
    path: str,
    max_bytes: int = MAX_BYTES,
    what: str = "files",
    noun: str = "the file",
    pipes: bool = False,
) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; ConfigError naming the file if it is
    anything else ("cannot read `noun`: ...", "file is N bytes; `what` are limited to 1 MB").

    The open does not block (a FIFO is refused, not waited on), and the read is bounded
    whatever the size says (/dev/zero, a file still growing). With `pipes`, a pipe or FIFO
    is read too, waiting for its writer as `cat` would (a console script given as
    `--script <(...)`); a device still is not."""
    try:
        flags = os.O_RDONLY | os.O_NOCTTY | (0 if pipes else os.O_NONBLOCK)
        fd = os.open(path, flags)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"cannot read {noun}: {why}", path) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"cannot read {noun}: it is a directory", path)
        piped = pipes and (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode))
        if not stat.S_ISREG(st.st_mode) and not piped:
            raise ConfigError(f"cannot read {noun}: not a regular file", path)
        if st.st_size > max_bytes:
            raise ConfigError(
                f"file is {st.st_size} bytes; {what} are limited to {_size_text(max_bytes)}", path
            )
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ConfigError(f"cannot read {noun}: {e.strerror or e}", path) from None
    finally:
        os.close(fd)
    if size > max_bytes:
        raise ConfigError(f"file is over {_size_text(max_bytes)}; {what} are limited to it", path)
    return b"".join(chunks)


def decode_text(raw: bytes, file: str, noun: str = "the file") -> str:
    """`raw` as UTF-8 text (a byte-order mark is dropped); ConfigError at the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        start = raw.rfind(b"\n", 0, e.start) + 1
        col = len(raw[start : e.start].decode("utf-8-sig", "replace")) + 1
        raise ConfigError(
            f"{noun} is not UTF-8 text: invalid byte 0x{raw[e.start]:02x}", file, line, col
        ) from None


def load_yaml_file(
    path: str, what: str, max_bytes: int = MAX_BYTES, noun: str = "the file"
) -> Source:
    """Read and parse a YAML file (a scenario, a profile, a lab, a users file).

    The one way YAML files are read: a regular file of at most `max_bytes`
    (1 MB), UTF-8, parsed by `load_yaml`; anything else is a ConfigError
    naming the file (and the line and column where known). `what` names such
    files in the plural ("lab files"), `noun` one of them ("scenario").
    """
    raw = read_limited(path, max_bytes, what, noun)
    return load_yaml(decode_text(raw, path, noun), path, max_bytes=max_bytes, what=what)
