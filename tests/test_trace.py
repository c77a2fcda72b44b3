"""Trace export (DESIGN.md §1 "Trace export"): the writer's JSON against the trace-event format.

Each scenario runs to its end with a `TraceWriter` stepping along; the text
is parsed and checked against the rules the viewers rely on (ui.perfetto.dev,
chrome://tracing), then for what it must show: CPU tracks, the XP-IPC flows
(thesis §8.3.4, §8.3.5, §8.4), IPIs, shootdowns, page faults and counters.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from kernel.scenario import load_scenario, parse_scenario
from kernel.system import System
from l4tui.cli import main
from l4tui.executor import execute
from l4tui.session import Session
from l4tui.trace import FLUSH_EVENTS, TraceWriter

ROOT = Path(__file__).resolve().parent.parent
XP_IPC = ROOT / "scripts/demos/xp-ipc.yaml"
PINGPONG = ROOT / "scripts/xp-pingpong.yaml"
SHOOTDOWN = ROOT / "scripts/unmap-shootdown.yaml"
PAGER = ROOT / "scripts/pager-long-ipc.yaml"
PHASES = set("BEXiICMstf")


def run_traced(system: System, out: io.TextIOBase, max_steps: int | None = None) -> TraceWriter:
    """Run `system` to its end (or `max_steps`), a writer stepping after every op."""
    writer = TraceWriter(system, out)
    n = 0
    while max_steps is None or n < max_steps:
        op = system.advance()
        if op is None:
            break
        writer.step(op)
        n += 1
    writer.close()
    return writer


def trace_of(path: Path) -> tuple[System, str]:
    system = System(load_scenario(path))
    out = io.StringIO()
    run_traced(system, out)
    return system, out.getvalue()


def pingpong(calls: int) -> System:
    """xp-pingpong with `calls` round trips instead of 3: a long run."""
    text = PINGPONG.read_text().replace("repeat: 3", f"repeat: {calls}")
    assert f"repeat: {calls}" in text
    return System(parse_scenario(text, str(PINGPONG)))


def slices(events: list[dict[str, Any]]) -> dict[int, list[tuple[float, float]]]:
    """Per track, the (start, end) of every B/E and X slice."""
    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    open_: dict[int, list[float]] = defaultdict(list)
    for e in events:
        if e["ph"] == "B":
            open_[e["tid"]].append(e["ts"])
        elif e["ph"] == "E":
            out[e["tid"]].append((open_[e["tid"]].pop(), e["ts"]))
        elif e["ph"] == "X":
            out[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    return out


def validate(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Check `doc` against the trace-event format; returns its events."""
    assert isinstance(doc, dict)
    events = doc["traceEvents"]
    assert isinstance(events, list) and events
    for e in events:
        assert e["ph"] in PHASES, e
        for key in ("name", "pid", "tid"):
            assert key in e, e
        if e["ph"] != "M":
            assert isinstance(e["ts"], int | float) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert e["dur"] >= 0, e
        if e["ph"] == "C":
            assert e["args"] and all(isinstance(v, int | float) for v in e["args"].values()), e
        if e["ph"] in "iI":
            assert e.get("s", "t") in "gpt", e
    # B/E: balanced, properly nested (an E ends the innermost B), times never go back.
    stacks: dict[int, list[dict[str, Any]]] = defaultdict(list)
    last: dict[int, float] = {}
    for e in events:
        if e["ph"] not in "BE":
            continue
        tid = e["tid"]
        assert e["ts"] >= last.get(tid, 0), e
        last[tid] = e["ts"]
        if e["ph"] == "B":
            stacks[tid].append(e)
        else:
            assert stacks[tid], f"E without B: {e}"
            begin = stacks[tid].pop()
            assert begin["name"] == e["name"], (begin, e)
    assert not any(stacks.values()), "unclosed B"
    # All slices of a track: any two are disjoint or one holds the other.
    spans = slices(events)
    for tid, found in spans.items():
        ordered = sorted(found, key=lambda s: (s[0], -s[1]))
        open_ends: list[float] = []
        for start, end in ordered:
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            assert not open_ends or end <= open_ends[-1], f"partial overlap on {tid}"
            open_ends.append(end)
    # Flows: one s and one f per id, steps between, in time order, each in a slice.
    flows: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["ph"] in "stf":
            flows[(e["cat"], e["name"], e["id"])].append(e)
    for key, chain in flows.items():
        phs = "".join(e["ph"] for e in chain)
        assert phs[0] == "s" and phs[-1] == "f" and set(phs[1:-1]) <= {"t"}, (key, phs)
        assert phs.count("s") == 1 and phs.count("f") == 1, (key, phs)
        times = [e["ts"] for e in chain]
        assert times == sorted(times), (key, times)
        for e in chain:
            assert any(s <= e["ts"] <= t for s, t in spans[e["tid"]]), f"unbound flow {e}"
    return events


def by_ph(events: list[dict[str, Any]], ph: str) -> list[dict[str, Any]]:
    return [e for e in events if e["ph"] == ph]


@pytest.mark.parametrize("path", [XP_IPC, PINGPONG, SHOOTDOWN, PAGER], ids=lambda p: p.stem)
def test_trace_is_valid_and_in_microseconds(path: Path) -> None:
    system, text = trace_of(path)
    assert system.ended == "end"
    events = validate(json.loads(text))
    m = system.machine
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names == {c.number: f"cpu{c.number}" for c in m.cpus}
    process = [e for e in events if e["name"] == "process_name"]
    assert process[0]["args"]["name"] == system.scenario.name
    assert by_ph(events, "C"), "no counter samples"
    assert {"bus transactions", "mesi transitions"} <= {e["name"] for e in by_ph(events, "C")}
    # Microseconds of the profile's clock: the last event is the run's last cycle.
    end_us = max(c.clock for c in m.cpus) / m.tpc / m.profile.clock.cpu_mhz
    last = max(e["ts"] for e in events if "ts" in e)
    assert last == pytest.approx(end_us, abs=0.01)
    assert by_ph(events, "B")[0]["ts"] < 1.0


def test_xp_ipc_flows_from_sender_to_proxy_to_receiver() -> None:
    _, text = trace_of(XP_IPC)
    events = validate(json.loads(text))
    chain = [e for e in events if e["name"] == "xp-ipc"]
    assert [e["ph"] for e in chain] == ["s", "t", "t", "f"]
    s, proxy_send, wake, f = chain
    assert s["tid"] == 1 and proxy_send["tid"] == 2 and f["tid"] == 2  # cli on 1, srv on 2
    assert s["ts"] < proxy_send["ts"] <= wake["ts"] <= f["ts"]

    def slice_at(e: dict[str, Any], name_prefix: str) -> bool:
        opened = [
            b
            for b in events
            if b["ph"] == "B" and b["tid"] == e["tid"] and b["ts"] <= e["ts"]
            if b["name"].startswith(name_prefix)
        ]
        return bool(opened)

    assert slice_at(s, "xp.send")
    assert slice_at(proxy_send, "proxy proxy2")
    assert slice_at(f, "kernel srv")
    reply = [e for e in events if e["name"] == "xp-reply"]
    assert [(e["ph"], e["tid"]) for e in reply] == [("s", 2), ("f", 1)]
    ipis = [e for e in by_ph(events, "i") if e["cat"] == "ipi"]
    assert ipis and ipis[0]["args"]["cpus"] == [2] and ipis[0]["args"]["vector"] == 0xF0
    cats = {e["cat"] for e in by_ph(events, "B")}
    assert {"user", "kernel", "proxy", "idle"} <= cats


def test_pingpong_has_a_flow_per_xp_ipc() -> None:
    system, text = trace_of(PINGPONG)
    events = validate(json.loads(text))
    starts = [e for e in events if e["name"] == "xp-ipc" and e["ph"] == "s"]
    assert len(starts) == system.kernel.counters.xp_ipc == 6  # 3 calls, 3 replies
    ends = {e["id"]: e for e in events if e["name"] == "xp-ipc" and e["ph"] == "f"}
    assert {(s["tid"], ends[s["id"]]["tid"]) for s in starts} == {(1, 2), (2, 1)}


def test_shootdown_and_page_fault_instants() -> None:
    _, text = trace_of(SHOOTDOWN)
    events = validate(json.loads(text))
    shoot = [e for e in by_ph(events, "i") if e["cat"] == "shootdown"]
    assert {e["name"] for e in shoot} == {"tlb.shootdown", "tlb.shootdown.flush"}
    assert any(e["cat"] == "ipi" and e["args"]["vector"] == 0xF8 for e in by_ph(events, "i"))
    _, text = trace_of(PAGER)
    events = validate(json.loads(text))
    faults = [e for e in by_ph(events, "i") if e["cat"] == "fault"]
    assert any(e["name"] == "page fault" for e in faults)
    assert sum(e["name"] == "pf.ipc" for e in faults) >= 4


def test_same_run_same_bytes() -> None:
    assert trace_of(PINGPONG)[1] == trace_of(PINGPONG)[1]


@pytest.mark.parametrize("steps", [170, 250])
def test_unfinished_run_still_closes_valid(steps: int) -> None:
    """Stopped half-way through an XP-IPC: its flow and the open slices end at close()."""
    system = System(load_scenario(XP_IPC))
    out = io.StringIO()
    run_traced(system, out, max_steps=steps)
    assert system.ended is None
    events = validate(json.loads(out.getvalue()))
    end = max(e["ts"] for e in events if "ts" in e)
    (f,) = [e for e in events if e["name"] == "xp-ipc" and e["ph"] == "f"]
    assert f["ts"] == end


@pytest.mark.slow
def test_streams_without_holding_events(tmp_path: Path) -> None:
    """The writer writes as it goes and its own state does not grow with the run."""
    system = pingpong(200)
    path = tmp_path / "trace.json"
    with path.open("w") as out:
        writer = TraceWriter(system, out)

        def held() -> int:
            """Items in the writer's containers, bar its bounded write buffer."""
            state = {k: v for k, v in vars(writer).items() if k != "_buf"}
            held = sum(len(v) for v in state.values() if isinstance(v, dict | list | set))
            assert len(writer._buf) < FLUSH_EVENTS + 64
            return held + sum(len(t.stack) + len(t.saved) for t in writer._tracks)

        sizes = []
        written = []
        steps = 0
        while (op := system.advance()) is not None:
            writer.step(op)
            steps += 1
            if steps % 5000 == 0:
                out.flush()
                sizes.append(held())
                written.append(path.stat().st_size)
        writer.close()
    assert steps > 40_000
    assert written == sorted(written) and written[0] > 0 and written[-1] > 10 * written[0]
    assert max(sizes) <= sizes[0] + 16  # constant: no event is kept
    validate(json.loads(path.read_text()))


# --- the front ends: `run --trace`, `export perfetto` ---------------------------------------


def test_run_trace_and_console_export_write_the_same_valid_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = tmp_path / "run.json"
    assert main(["run", str(PINGPONG), "--trace", str(ran)]) == 0
    events = validate(json.loads(ran.read_text()))
    assert any(e["ph"] == "s" for e in events)
    capsys.readouterr()
    s = Session(load_scenario(PINGPONG))
    execute(s, "break xp.proxy.send")
    execute(s, "continue")
    half = tmp_path / "half.json"
    assert execute(s, f"export perfetto {half}").startswith(f"wrote {half}: ")
    validate(json.loads(half.read_text()))  # a run stopped half-way closes valid
    execute(s, "delete")
    execute(s, "continue")
    exported = tmp_path / "export.json"
    execute(s, f"export perfetto {exported}")
    assert exported.read_text() == ran.read_text()  # one run, one trace, whichever front end
    assert execute(s, "export perfetto") == "error: usage: export perfetto FILE"
    assert execute(s, f"export perfetto {tmp_path / 'no' / 'x.json'}").startswith("error: cannot")
    assert main(["run", str(PINGPONG), "--trace", str(tmp_path / "no" / "x.json")]) == 2
    assert "cannot write the trace" in capsys.readouterr().err
