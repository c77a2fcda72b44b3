"""Hardware profiles: the parameters of a simulated SMP machine (thesis §3).

A profile is a YAML file of *hardware* parameters — clocks, cache geometry,
latencies, bus, snoop and write-back costs, APIC timing, privilege-change
costs. `p3-dual-450` is the thesis machine (§3.2); the thesis's tables are
what comes out of running its measurement loops on it, not inputs.

`load_profile` validates a profile (and a scenario's overrides, such as
``cpus: 4``) into frozen dataclasses, raising `ConfigError` with the file,
line and column of the first bad value. Every value has a range a real x86
machine could have (`RANGES`; every cost 0..`MAX_CYCLES` cycles), so no
profile can make the model overflow, hang or allocate gigabytes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from machine.errors import ConfigError, suggest
from machine.yamlsrc import Source, load_yaml_file

PROFILE_DIR = Path(__file__).with_name("profiles")
MAX_CPUS = 16


@dataclass(frozen=True, slots=True)
class Clock:
    cpu_mhz: int
    bus_mhz: int
    apic_bus_mhz: int


@dataclass(frozen=True, slots=True)
class MemoryParams:
    size_mb: int


@dataclass(frozen=True, slots=True)
class CacheLevel:
    size_kb: int
    ways: int
    latency: float  # CPU cycles for a hit at this level


@dataclass(frozen=True, slots=True)
class CacheParams:
    line_size: int
    l1: CacheLevel
    l2: CacheLevel


@dataclass(frozen=True, slots=True)
class BusParams:
    """Memory-bus transaction costs, in bus cycles (§3.2.2)."""

    arbitration: float
    read_line: float
    write_line: float
    invalidate: float
    snoop_shared: float
    snoop_invalidate: float


@dataclass(frozen=True, slots=True)
class CpuParams:
    """Instruction costs in CPU cycles."""

    locked: float
    cli: float
    sti: float
    rdtsc: float
    cr3_load: float
    invlpg: float


@dataclass(frozen=True, slots=True)
class TlbParams:
    entries: int


@dataclass(frozen=True, slots=True)
class KernelParams:
    """Privilege-change costs in CPU cycles (§3.3.1).

    `entry` and `exit` cross between user mode and the kernel: a system call,
    an interrupt or fault taken in user mode, and the iret back. An interrupt
    taken in the kernel — a halted idle loop, a kernel path with interrupts
    enabled — changes no privilege level (no stack switch, no SS:ESP pushed or
    popped), and costs `entry_from_kernel` and `exit_to_kernel`; a profile
    that leaves them out pays the user-mode figures.
    """

    entry: float
    exit: float
    entry_from_kernel: float | None = None
    exit_to_kernel: float | None = None

    @property
    def kernel_entry(self) -> float:
        """What an interrupt taken in the kernel costs to enter: its own figure, or `entry`."""
        return self.entry if self.entry_from_kernel is None else self.entry_from_kernel

    @property
    def kernel_exit(self) -> float:
        """What the iret back into the kernel costs: its own figure, or `exit`."""
        return self.exit if self.exit_to_kernel is None else self.exit_to_kernel


@dataclass(frozen=True, slots=True)
class ApicParams:
    """Local APIC and APIC-bus timing (§3.3, §3.3.1)."""

    slots: int
    icr_write: float
    state_machine: float  # APIC bus cycles
    fixed_message: float  # APIC bus cycles
    lowest_priority_message: float  # APIC bus cycles
    register_read: float
    eoi: float


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated machine profile."""

    name: str
    description: str
    cpus: int
    clock: Clock
    memory: MemoryParams
    cache: CacheParams
    bus: BusParams
    cpu: CpuParams
    tlb: TlbParams
    kernel: KernelParams
    apic: ApicParams

    @property
    def ticks_per_cycle(self) -> int:
        """Engine time resolution: ticks per CPU cycle.

        The tick is the period of the least common multiple of 8× the CPU
        clock, the memory-bus clock and the APIC-bus clock, so that bus and
        APIC cycles are whole numbers of ticks (4.5 CPU cycles per bus cycle
        on the thesis machine) and CPU costs resolve to 1/8 cycle.
        """
        c = self.clock
        tick_mhz = math.lcm(8 * c.cpu_mhz, c.bus_mhz, c.apic_bus_mhz)
        return tick_mhz // c.cpu_mhz

    @property
    def bus_ratio(self) -> float:
        """CPU cycles per memory-bus cycle."""
        return self.clock.cpu_mhz / self.clock.bus_mhz

    @property
    def apic_ratio(self) -> float:
        """CPU cycles per APIC-bus cycle."""
        return self.clock.cpu_mhz / self.clock.apic_bus_mhz


# --- validation -------------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "clock": Clock,
    "memory": MemoryParams,
    "cache": CacheParams,
    "bus": BusParams,
    "cpu": CpuParams,
    "tlb": TlbParams,
    "kernel": KernelParams,
    "apic": ApicParams,
}
_INT_FIELDS = {
    "cpus",
    "cpu_mhz",
    "bus_mhz",
    "apic_bus_mhz",
    "size_mb",
    "size_kb",
    "ways",
    "line_size",
    "entries",
    "slots",
}

MAX_CYCLES = 1_000_000  # the largest cost a profile may give (CPU, bus or APIC-bus cycles)
# A cache hit takes at least a cycle, so every memory access moves the clock: a
# loop of accesses (or a kernel path, which always touches memory) cannot spin
# at one instant, which no `--until-cycle` would ever end.
MIN_LATENCY = 1
# The ranges of whole-number fields: generous for a real x86 machine (the
# fastest runs at about 6 GHz, on a bus and APIC bus slower than its core; its
# caches are at most a few tens of MB with 64-byte lines and at most 32 ways;
# its TLBs hold a few thousand entries), and tight enough that the model stays
# small and fast: sizes and counts only ever set how much the model *may* use
# (caches are lazy, memory sparse), and every cost is at most `MAX_CYCLES`.
RANGES: dict[str, tuple[int, int]] = {
    "cpus": (1, MAX_CPUS),
    "cpu_mhz": (1, 10_000),
    "bus_mhz": (1, 10_000),
    "apic_bus_mhz": (1, 10_000),
    "size_mb": (1, 512),  # the kernel maps all physical memory in its 512 MB window
    "size_kb": (1, 65_536),  # 64 MB
    "ways": (1, 256),
    "line_size": (4, 4096),
    "entries": (1, 65_536),
    "slots": (1, 8),
}


def _number(src: Source, path: tuple[Any, ...], value: Any, name: str) -> float | int:
    """A field's value, in its range (`RANGES`; costs 0..`MAX_CYCLES`) or a ConfigError."""
    field_name, name = name, ".".join(map(str, path))  # messages name cache.l2.latency
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise src.error(path, f"{name} must be a number, not {value!r}")
    if field_name in _INT_FIELDS:
        if isinstance(value, float) and not value.is_integer():
            raise src.error(path, f"{name} must be a whole number, not {value!r}")
        lo, hi = RANGES[field_name]
        if value < lo:
            raise src.error(path, f"{name} must be at least {lo}, not {value!r}")
        if value > hi:
            raise src.error(path, f"{name} must be at most {hi}, not {value!r}")
        return int(value)
    lo = MIN_LATENCY if field_name == "latency" else 0
    if not lo <= value <= MAX_CYCLES:  # also NaN, which compares false
        raise src.error(
            path, f"{name} must be a number of cycles from {lo} to {MAX_CYCLES}, not {value!r}"
        )
    return value


def _build(cls: type, src: Source, path: tuple[Any, ...]) -> Any:
    data = _get(src.data, path)
    if not isinstance(data, dict):
        raise src.error(path, f"{'.'.join(map(str, path)) or 'profile'} must be a mapping")
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise src.key_error(path, key, f"unknown field {key!r}{suggest(str(key), names)}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        where = ".".join(map(str, path + (f.name,)))
        if f.name not in data and f.default is None:
            values[f.name] = None  # optional: its meaning says what stands in
            continue
        if f.name not in data:
            at = src.key_error(path[:-1], path[-1], "") if path else src.error(path, "")
            raise type(at)(f"missing field {where!r}", at.file, at.line, at.col)
        sub = path + (f.name,)
        if f.name in ("l1", "l2"):
            values[f.name] = _build(CacheLevel, src, sub)
        elif f.name in _SECTIONS and cls is Profile:
            values[f.name] = _build(_SECTIONS[f.name], src, sub)
        elif f.name in ("name", "description"):
            if not isinstance(data[f.name], str) or not data[f.name]:
                raise src.error(sub, f"{f.name} must be a non-empty string")
            values[f.name] = data[f.name]
        else:
            values[f.name] = _number(src, sub, data[f.name], f.name)
    return cls(**values)


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _check(profile: Profile, src: Source) -> None:
    line = profile.cache.line_size
    if line & (line - 1) or line < 4:
        raise src.error(
            ("cache", "line_size"), f"line_size must be a power of two >= 4, not {line}"
        )
    for level in ("l1", "l2"):
        lv = getattr(profile.cache, level)
        if lv.ways & (lv.ways - 1):
            raise src.error(("cache", level, "ways"), f"ways must be a power of two, not {lv.ways}")
        lines = lv.size_kb * 1024 // line
        if lv.ways > lines:
            raise src.error(
                ("cache", level, "ways"),
                f"{level} has {lines} lines of {line} bytes: it cannot have {lv.ways} ways",
            )
        sets, rem = divmod(lines, lv.ways)
        if rem or sets < 1 or sets & (sets - 1):
            raise src.error(
                ("cache", level, "size_kb"),
                f"{level} of {lv.size_kb} KB with {lv.ways} ways of {line}-byte lines "
                "does not give a power-of-two number of sets",
            )
    l1, l2 = profile.cache.l1, profile.cache.l2
    if l2.size_kb < l1.size_kb:
        raise src.error(
            ("cache", "l2", "size_kb"), "l2 must be at least as large as l1 (inclusive)"
        )


def _merge(base: Source, over: Source, at: tuple[Any, ...] = ()) -> None:
    """Merge `over` into `base` in place, keeping the override's positions."""
    target = _get(base.data, at) if at else base.data
    for key, value in over.data.items():
        opath = (key,)
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(base, over.sub(opath), at + opath)
            continue
        target[key] = value
        for p, pos in over.positions.items():
            if p[:1] == opath:
                base.positions[at + p] = pos
        if ("<key>", key) in over.positions:
            base.positions[at + ("<key>", key)] = over.positions[("<key>", key)]


def profile_names() -> list[str]:
    """Names of the profiles shipped with l4tui."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(
    name_or_path: str,
    overrides: dict[str, Any] | Source | None = None,
) -> Profile:
    """Load a shipped profile by name, or a profile file by path, then apply overrides.

    `overrides` is a mapping (``{"cpus": 4}``) or a `Source` whose data is such a
    mapping — a scenario passes the ``machine:`` section of its own file, so an
    error in an override points into the scenario.
    """
    path = Path(name_or_path)
    if name_or_path in profile_names():
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    elif not path.suffix or not os.path.exists(path):  # False for a name the OS refuses
        hint = suggest(name_or_path, profile_names())
        known = ", ".join(profile_names())
        raise ConfigError(f"no profile {name_or_path!r}{hint}; shipped profiles: {known}")
    src = load_yaml_file(str(path), "profiles", noun="profile")
    if not isinstance(src.data, dict):
        raise src.error((), "a profile must be a mapping of fields")
    if overrides is not None:
        over = (
            overrides
            if isinstance(overrides, Source)
            else Source.from_data(overrides, "<overrides>")
        )
        if not isinstance(over.data, dict):
            raise over.error((), "machine overrides must be a mapping")
        _merge(src, over)
    profile: Profile = _build(Profile, src, ())
    _check(profile, src)
    return profile
