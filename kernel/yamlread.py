"""A positioned reader over a scenario's parsed YAML: typed gets, first error wins (DESIGN.md §2).

`machine.yamlsrc` parses safely and remembers where each value came from;
a `Reader` walks that data by path (``("tasks", 0, "threads", 1, "cpu")``)
and turns every bad value into one `ConfigError` positioned at the value —
or at the key, for an unknown key — whose message starts with the dotted
path (``tasks[0].threads[1].cpu: ...``). The op parser (`kernel.opparse`),
the expectations (`kernel.expectations`) and the scenario loader
(`kernel.scenario`) read through it, so all word their errors alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from machine.errors import ConfigError, suggest
from machine.yamlsrc import Path as DataPath
from machine.yamlsrc import Source

MAX_INT = 2**63 - 1  # cycles, counts and seeds must stay below this

Where = tuple[str, int | None, int | None]


class Reader:
    """Typed, positioned reads of one parsed YAML document (`src`)."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def fail(self, path: DataPath, message: str) -> ConfigError:
        where = dotted(path)
        return self.src.error(path, f"{where}: {message}" if where else message)

    def fail_key(self, path: DataPath, key: Any, message: str) -> ConfigError:
        where = dotted(path)
        return self.src.key_error(path, key, f"{where}: {message}" if where else message)

    def where(self, path: DataPath) -> Where:
        p = tuple(path)
        while p not in self.src.positions and p:
            p = p[:-1]
        return self.src.positions.get(p, (self.src.file, None, None))

    def get(self, path: DataPath) -> Any:
        data = self.src.data
        for part in path:
            data = data[part]
        return data

    def mapping(
        self,
        path: DataPath,
        allowed: tuple[str, ...],
        what: str,
        required: tuple[str, ...] = (),
    ) -> dict[Any, Any]:
        value = self.get(path)
        if not isinstance(value, dict):
            raise self.fail(path, f"{what} must be a mapping, not {kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail_key(
                    path,
                    key,
                    f"unknown field {key!r}{suggest(key, allowed)}; "
                    f"{what} fields are: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                raise self.fail(path, f"{what} needs `{key}`")
        return value

    def get_list(self, path: DataPath, what: str) -> list[Any]:
        value = self.get(path)
        if not isinstance(value, list):
            raise self.fail(path, f"{what} must be a list, not {kind(value)}")
        return value

    def get_int(self, path: DataPath, lo: int = 0, hi: int = MAX_INT, what: str = "") -> int:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer{what}, not {kind(value)} {show(value)}")
        if not lo <= value <= hi:
            if hi == MAX_INT:
                bound = f"at least {lo}" if value < lo else f"at most {hi} (2**63 - 1)"
                raise self.fail(path, f"must be {bound}, not {show(value)}")
            raise self.fail(path, f"must be between {lo} and {hi}, not {show(value)}")
        return value

    def get_bool(self, path: DataPath) -> bool:
        value = self.get(path)
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, not {kind(value)} {show(value)}")
        return value

    def get_str(self, path: DataPath, what: str = "a string") -> str:
        value = self.get(path)
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"expected {what}, not {kind(value)} {show(value)}")
        return value

    def choice(self, path: DataPath, choices: tuple[str, ...]) -> str:
        value = self.get(path)
        if not isinstance(value, str) or value not in choices:
            hint = suggest(value, choices) if isinstance(value, str) else ""
            raise self.fail(path, f"expected one of {', '.join(choices)}, not {show(value)}{hint}")
        return value

    def optional(
        self,
        data: dict[Any, Any],
        path: DataPath,
        key: str,
        read: Callable[..., Any],
        default: Any,
        *args: Any,
    ) -> Any:
        """`read(path + (key,), *args)` if `data` has `key`, else `default`."""
        return read(path + (key,), *args) if key in data else default


def dotted(path: DataPath) -> str:
    """A path as an error message names it: ``tasks[0].threads[1].cpu``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def kind(value: Any) -> str:
    """What a YAML value is, in words (``a string``, ``a mapping``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def show(value: Any) -> str:
    """A value as an error message quotes it, cut to 40 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit str limit
        return f"a number of about {value.bit_length() * 3 // 10:,} digits"
    return text if len(text) <= 40 else text[:37] + "..."


def yaml_text(value: Any) -> str:
    """A value as the check text shows it: YAML-like (true, null, [1, 2])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return str(value)
