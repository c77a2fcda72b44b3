"""The race explorer: systematic interleavings of a scenario, as CHESS does for threads (issue 8).

The thesis's SMP kernel is correct only if every interleaving of the CPUs'
accesses to shared state is: Uhlig's lost wake-up (§8.3.3) needs one
particular order of two CPUs' reads and writes of each other's TCBs, the
`ex_regs` abort of a cross-processor IPC (§8.4.3) and a migration racing an
IPC (§8.5) others. The timed engine runs one order; this module runs many.

**Schedules.** The baseline is the timed order (`l4tui run`). A *preemption*
is a deviation from it at a *choice point*: a micro-op about to touch state
another CPU touches too — a TCB field of a thread on another CPU, a mailbox or
flag word (§8.3.4), a lock (any atomic op), the APIC (an IPI), or any kernel
word that two CPUs were seen to access in an earlier run. There another CPU
goes ahead instead: it runs alone until it blocks, halts or spins on a word
a held CPU would change (or for at most `SEGMENT` micro-ops), then the timed
order resumes; a later preemption may
cut that run short in turn. A schedule is the list of those deviations,
each named by the micro-op count at which it happens, so a schedule replays
exactly. Exploring is breadth-first by the number of preemptions (bounded by
`--preemptions`, default 2), so the first failure found is one with the fewest.

**State hashing.** At each branch point the explorer names the kernel-visible
state — memory (by a digest each write keeps up to date), each CPU's mode,
phase and pending op, the APIC slots, the mailboxes' contents, the programs'
counters; not clocks or caches — and a preemption (that state, that CPU to
go ahead) already scheduled with at least as many preemptions left is not
run again, nor anything that would follow it (walk.py). A run that, going
on in the timed order, reaches a state where an ancestor's run or an earlier
sibling's went on in the timed order too ends there (`joined`): what
follows was run already, with at least as many preemptions left. A branch
point at a kernel word not yet known to be shared gets no name (it is rare
that one becomes shared, and naming costs more than stepping), and the
kernel invariants are checked once per state.

**Independent groups** (issue 15, point 5; groups.py). CPUs that share no
kernel word and send each other no IPI (after the root run: the words each
CPU was seen to touch) are explored group by group: a preemption of one
group's CPU by another group's reorders nothing either depends on and is not
run (counted as pruned), a state is named by its group's share (memory
keeps a digest per group), and a run preempted in group G names only G's
branch points and joins an earlier run as soon as G's share is one that run
went on from in the timed order. Each group has its own root: the scenario
run with that group's CPUs stepping first (in the order of their clocks, at
most `FOCUS_WINDOW` cycles ahead of the others), stopped once the group is
quiescent; its schedules step their group first too (`Choice.focus`), so a
schedule runs its own group's micro-ops and joins before the other groups
have run at all. So independent conversations on more CPUs cost about the
sum of their own searches, not their product (a 4-CPU proxy scenario with
two conversations, bound 2: 17,457 schedules before, 791 now), and a
schedule on 8 CPUs about what it costs on 2. With one group (a global
lock, a shared mapping database, ...) nothing changes. Schedules with
preemptions in two groups are not run: a failure that needs two groups'
timings at once would need a word or an IPI between them, which would make
them one group.

**Suffixes only, on all cores** (issue 15). Python generators cannot be
copied, so a worker replays a parent schedule's path once, unchecked, and
forks a process at each child's branch point: the fork is the checkpoint
(units.py). On the 2-core host of issue 15 a fork and its copy-on-write
faults cost as much as replaying 1,500 micro-ops, so nearer branch points
replay the path instead (the same runs). Levels go to a pool of worker
processes (`--jobs`, pool.py) or a Dask cluster (`--cluster`,
l4tui/cluster.py); the search takes their runs in the level's order, so
results do not depend on either (search.py). `--progress` shows it working
and Ctrl-C stops it with the result so far (progress.py).

**Failures** (DESIGN.md §2 `explore --json`): `deadlock` (a cycle in the
wait-for graph), `invariant` (a kernel invariant broken at a kernel exit, or
a thread left locked, or the machine stopped by an impossible operation),
`lost_message` (a send reported delivered that its receiver never
received), `expect` (a scenario expectation that fails at the end). A
Python exception raised by the kernel is an `invariant` failure too ("the
kernel raised ..."), with its schedule.

The failing run's inputs are exactly a debugger session's input log
(`None` a timed step, `N` a step of CPU N, `["idle", N]`), so the schedule
file it writes loads into the debugger (`load schedule FILE`, `l4tui open
FILE --schedule S`) with a stop at each deviation.
"""

from l4tui.explore.files import (
    SCHEDULE_VERSION,
    format_report,
    read_schedule,
    schedule_data,
    write_schedule,
)
from l4tui.explore.keys import state_key
from l4tui.explore.pool import InlinePool, Pool, ProcessPool, default_jobs, make_pool
from l4tui.explore.progress import JsonProgress, ProgressBar
from l4tui.explore.search import Explorer, Report, split_level
from l4tui.explore.units import FORK_AFTER, Job, Unit, WorkerError, make_job, run_unit
from l4tui.explore.verdicts import judge, lost_messages
from l4tui.explore.walk import (
    RUN_LIMIT,
    SEGMENT,
    SPIN,
    Choice,
    Run,
    Shown,
    run_schedule,
)

__all__ = [
    "FORK_AFTER",
    "RUN_LIMIT",
    "SCHEDULE_VERSION",
    "SEGMENT",
    "SPIN",
    "Choice",
    "Explorer",
    "InlinePool",
    "Job",
    "JsonProgress",
    "Pool",
    "ProcessPool",
    "ProgressBar",
    "Report",
    "Run",
    "Shown",
    "Unit",
    "WorkerError",
    "default_jobs",
    "format_report",
    "judge",
    "lost_messages",
    "make_job",
    "make_pool",
    "read_schedule",
    "run_schedule",
    "run_unit",
    "schedule_data",
    "state_key",
    "split_level",
    "write_schedule",
]
