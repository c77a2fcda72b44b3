"""The explorer's independent CPU groups (issue 15, point 5): l4tui/explore/groups.py.

CPUs that share no kernel word and send each other no IPI are explored group
by group: a preemption across groups is not run, and a run preempted in one
group joins an earlier run once that group's share of the state is one the
earlier run went on from. The races are still found, with as few
preemptions, and the results do not depend on the pool.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.scenario import load_scenario, parse_scenario
from l4tui.explore import Explorer, run_schedule
from l4tui.explore.groups import cpu_groups, group_of, word_buckets
from machine.memory import MASK64, Memory, mix

# Uhlig's naive lost wake-up (scripts/races/uhlig-naive.yaml) on CPUs 1 and 2, and beside
# it two pairs of threads on CPUs 3 and 4 that each talk on their own CPU: three groups.
NAIVE_AND_PAIRS = """
name: uhlig-naive-and-pairs
seed: 1
machine: {profile: p3-dual-450, cpus: 4}
kernel: {xp_ipc: naive}
tasks:
  - name: t
    threads:
      - {name: snd, cpu: 1, program: [{send: {to: rcv, words: [42]}}]}
      - {name: rcv, cpu: 2, program: [{recv: {from: snd}}]}
  - name: u
    threads:
      - {name: a3, cpu: 3, program: [{send: {to: b3, words: [1]}}]}
      - {name: b3, cpu: 3, program: [{recv: {from: a3}}]}
      - {name: a4, cpu: 4, program: [{send: {to: b4, words: [2]}}]}
      - {name: b4, cpu: 4, program: [{recv: {from: a4}}]}
"""

# Two cross-processor conversations of the proxy design, one per pair of CPUs.
TWO_CONVERSATIONS = """
name: two-conversations
seed: 1
machine: {profile: p3-dual-450, cpus: 4}
kernel: {xp_ipc: proxy}
tasks:
  - name: p0
    threads:
      - {name: cli0, cpu: 1, program: [{call: {to: srv0}}]}
      - {name: srv0, cpu: 2, program: [{recv: {from: cli0}}, {send: {to: cli0}}]}
  - name: p1
    threads:
      - {name: cli1, cpu: 3, program: [{call: {to: srv1}}]}
      - {name: srv1, cpu: 4, program: [{recv: {from: cli1}}, {send: {to: cli1}}]}
"""


def _counts(report):
    return (report.schedules, report.states, report.pruned, report.exhausted)


# --- the groups ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(1, (1 << n) - 1)))
    )
)
def test_groups_partition_the_cpus_and_keep_each_mask_whole(case):
    n, masks = case
    groups = cpu_groups(n, masks)
    union = 0
    for g in groups:
        assert g and not union & g  # disjoint, none empty
        union |= g
    assert union == (1 << n) - 1
    for mask in masks:
        assert sum(1 for g in groups if g & mask) == 1  # a mask never spans two groups
    for i in range(n):
        assert groups[group_of(groups, i) - 1] >> i & 1


def test_groups_are_the_connected_components():
    assert cpu_groups(4, [0b11, 0b1100]) == (0b11, 0b1100)
    assert cpu_groups(4, [0b11, 0b1100, 0b110]) == (0b1111,)
    assert cpu_groups(3, [0b1, 0b100]) == (0b1, 0b10, 0b100)
    buckets = word_buckets({0x10: 0b1, 0x20: 0b1000, 0x30: 0b1100}, (0b11, 0b1100))
    assert buckets == {0x10: 1, 0x20: 2, 0x30: 2}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 31), st.integers(0, 3)), max_size=40),
    st.dictionaries(st.integers(0, 31), st.integers(1, 2)),
)
def test_memory_keeps_each_buckets_digest(writes, assigned):
    memory = Memory(1 << 20)
    memory.write(4, 7)  # written before tracking starts
    buckets = {4 * w: b for w, b in assigned.items()}
    memory.track(buckets, 2)
    for word, value in writes:
        memory.write(4 * word, value)
    parts = [0, 0, 0]
    for a, v in memory.words.items():
        b = buckets.get(a, 0)
        parts[b] = (parts[b] + mix(a, v)) & MASK64
    assert memory.parts == parts
    assert memory.digest == sum(parts) & MASK64


# --- the search ------------------------------------------------------------------------------


def test_the_naive_race_is_found_beside_independent_cpus_with_as_few_preemptions():
    alone = Explorer(load_scenario("scripts/races/uhlig-naive.yaml"), jobs=1).explore()
    scenario = parse_scenario(NAIVE_AND_PAIRS, "<naive-and-pairs>")
    explorer = Explorer(scenario, jobs=1)
    report = explorer.explore()
    assert len(explorer.groups) == 3 and explorer.groups[0] == 0b11
    assert report.failure is not None and report.failure.kind == "deadlock"
    assert alone.failure is not None
    assert len(report.failure.choices) == len(alone.failure.choices) == 1
    assert {report.failure.choices[0].cpu, report.failure.choices[0].over} == {1, 2}
    # The schedule replays the deadlock from the start, with nothing of the search's.
    again = run_schedule(scenario, None, report.failure.choices)
    assert (again.kind, again.message) == (report.failure.kind, report.failure.message)
    other = Explorer(scenario, jobs=2).explore()
    assert _counts(other) == _counts(report)
    assert other.failure is not None and other.failure.choices == report.failure.choices


def test_two_conversations_exhausted_alike_on_any_pool_with_no_preemption_across_groups():
    scenario = parse_scenario(TWO_CONVERSATIONS, "<two-conversations>")
    one = Explorer(scenario, preemptions=1, jobs=1)
    report = one.explore()
    assert one.groups == (0b11, 0b1100)
    assert report.exhausted and report.failure is None
    two = Explorer(scenario, preemptions=1, jobs=2).explore()
    assert _counts(two) == _counts(report)
    replayed = Explorer(scenario, preemptions=1, jobs=1, fork=False).explore()
    assert _counts(replayed) == _counts(report)
