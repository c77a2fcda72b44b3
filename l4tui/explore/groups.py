"""Independent groups of CPUs: the explorer explores each on its own (issue 15, point 5).

Two CPUs depend on each other when they touch one kernel word (a run's
`sharers`) or one sends the other an IPI (`links`); the groups are the
connected components of that relation (union-find). A scenario with a word
every CPU touches (a global lock, say) has one group, and the explorer runs
as it always did. With several, an order of two CPUs of different groups
changes nothing either sees, so:

- a preemption across groups is not run (it reorders nothing dependent;
  counted as pruned);
- a run's state at a branch point of group G is named by G's share only
  (explore/keys.py: G's memory words, CPUs, APICs, IPIs in flight, mailboxes and
  programs; plus the words no group owns yet, which belong to all), so a run
  preempted in G joins an earlier run as soon as G's share is one that run
  went on from in the timed order — the other groups' futures are the
  parent's, whatever G's timing (the partial-order reduction of Flanagan and
  Godefroid, for the coarse independence of whole groups).

The search learns the words as it goes, so groups are recomputed at each
level and merge when a run finds a word or an IPI between two of them; a
run that finds one itself (`Run.crossed`) names the rest of its states whole
and offers no state for joins (walk.py, search.py).
"""

from __future__ import annotations

from collections.abc import Iterable


def cpu_groups(ncpus: int, masks: Iterable[int]) -> tuple[int, ...]:
    """The groups (masks of 0-based CPUs) that `masks` of CPUs seen together connect.

    In the order of their lowest CPU; every CPU is in one group.
    """
    parent = list(range(ncpus))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for mask in set(masks):
        if not mask & (mask - 1):
            continue  # one CPU: links nothing
        first = (mask & -mask).bit_length() - 1
        rest = mask & (mask - 1)
        while rest:
            i = (rest & -rest).bit_length() - 1
            rest &= rest - 1
            if i < ncpus and first < ncpus:
                a, b = find(first), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    out: dict[int, int] = {}
    for i in range(ncpus):
        r = find(i)
        out[r] = out.get(r, 0) | 1 << i
    return tuple(out[r] for r in sorted(out))


def word_buckets(sharers: dict[int, int], groups: tuple[int, ...]) -> dict[int, int]:
    """Each kernel word seen -> the bucket of its group (1-based index into `groups`)."""
    index: dict[int, int] = {}
    for b, g in enumerate(groups, 1):
        rest = g
        while rest:
            index[(rest & -rest).bit_length() - 1] = b
            rest &= rest - 1
    return {a: index[(m & -m).bit_length() - 1] for a, m in sharers.items() if m}


def group_of(groups: tuple[int, ...], cpu_index: int) -> int:
    """The bucket (1-based) of the group of 0-based CPU `cpu_index`."""
    for b, g in enumerate(groups, 1):
        if g >> cpu_index & 1:
            return b
    raise ValueError(f"cpu index {cpu_index} is in no group")
