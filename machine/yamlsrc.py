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


def load_yaml(text: str, file: str = "<string>") -> Source:
    """Parse `text` safely; raise ConfigError with the position of a syntax error."""
    if not isinstance(text, str):
        raise ConfigError("expected YAML text", file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = e.problem or e.context or "invalid YAML"
        if mark is not None:
            raise ConfigError(
                f"invalid YAML: {what}", file, mark.line + 1, mark.column + 1
            ) from None
        raise ConfigError(f"invalid YAML: {what}", file) from None
    except yaml.YAMLError as e:  # pragma: no cover - PyYAML raises Marked errors in practice
        raise ConfigError(f"invalid YAML: {e}", file) from None
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
