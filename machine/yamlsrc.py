"""YAML at the boundary: safe parsing that remembers where each value came from.

`load_yaml` parses with PyYAML's safe composer and returns plain Python data
plus a table of source positions keyed by the path to each value, so that a
validator deep inside a profile or scenario can raise a `ConfigError` naming
the file, line and column of the offending value (STYLE.md point 10).
"""

from __future__ import annotations

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

    def __init__(self, message: str, mark: yaml.Mark) -> None:
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
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("YAML aliases are not supported", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
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


def load_yaml_file(path: str, what: str) -> Source:
    """Read and parse a small YAML file (a lab, a users file); ConfigError if it cannot be."""
    from pathlib import Path as FilePath

    try:
        text = FilePath(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the file: {e}", path) from None
    return load_yaml(text, path, what=what)
