"""Time slices: a host scheduler that gives its cores to threads in turns, not in fluid shares.

Processor sharing runs every runnable thread at once, each at a fraction of a core. A real host
scheduler (Linux CFS for KVM and containers, Xen's credit scheduler) runs one thread per hardware
thread at full speed and switches among them. Throughput comes out the same; latency does not:

- a thread that wakes (a vCPU that was halted, a server thread that was blocked) is placed
  ``sleeper_credit_s`` behind the runnable threads' least virtual runtime and, if that puts it
  more than ``wakeup_s`` behind a running thread, takes that thread's core at once (CFS's wake-up
  preemption; Xen's BOOST). A request to an idle guest is served at full speed, where processor
  sharing would slow it by the number of threads sharing its core;
- a thread that stays runnable waits for its turn: the others run slices of
  ``max(latency_s x slots / runnable, min_slice_s)`` each (CFS's ``sched_slice``; Xen: a fixed
  30 ms), so a request to a busy, descheduled vCPU waits up to a slice or more.

:class:`Slicer` keeps the threads ("entities") of each top-level group (a VM's vCPU threads, a
container's or process's threads, the host's own jobs) and the hardware threads ("slots") they
run on. Each entity has a virtual runtime that grows while it runs, in inverse proportion to its
weight: a group's ``cpu.weight`` split evenly over its runnable entities (so a 4-vCPU VM and a
1-vCPU VM of equal weight get equal shares when all their vCPUs are busy, as processor sharing
gives them). Inside a group, its running entities' cores are shared by its jobs as before
(:class:`~virtsim.sim.stations.SharedStation` water-fills them): the slices are between groups'
threads, the guest's own scheduling stays fluid. Slot ``s`` is on core ``s % cores`` (the first
``cores`` slots are distinct cores, as Linux spreads threads before it doubles them up on SMT
siblings); a group bound to cores runs only on their slots. A core's busy SMT siblings share
what it does, one whole core plus ``smt_yield`` for each further sibling (fluid sharing spreads
that yield over every core instead, once the host has more running jobs than cores).

Ties are broken by fixed rules (lowest entity index, lowest slot), so a run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SliceSpec", "Slicer", "cfs_slices", "credit_slices"]

_SLEEP, _WAIT, _RUN = 0, 1, 2


@dataclass(frozen=True)
class SliceSpec:
    """A time-slicing scheduler's parameters (seconds).

    ``latency_s``: the period in which every runnable thread of a core runs once (CFS
    ``sched_latency``); ``min_slice_s``: the shortest slice (CFS ``sched_min_granularity``; Xen's
    fixed slice: both 30 ms); ``wakeup_s``: how far behind a running thread's virtual runtime a
    woken one must be to preempt it (CFS ``sched_wakeup_granularity``), ``None`` for no wake-up
    preemption (a woken thread waits for a slice to end); ``sleeper_credit_s``: how far behind
    the least runnable virtual runtime a woken thread is placed (CFS: ``sched_latency / 2``).
    """

    latency_s: float
    min_slice_s: float
    wakeup_s: float | None
    sleeper_credit_s: float

    def __post_init__(self) -> None:
        values = [self.latency_s, self.min_slice_s, self.sleeper_credit_s]
        if self.wakeup_s is not None:
            values.append(self.wakeup_s)
        if not all(math.isfinite(v) and v >= 0 for v in values) or not self.min_slice_s > 0:
            raise ValueError("time slices: latency, wakeup and sleeper credit must be >= 0 and the "
                             f"shortest slice > 0 (seconds), got {self}")

    def slice_s(self, slots: int, runnable: int) -> float:
        """The slice a thread gets when ``runnable`` threads share ``slots`` hardware threads."""
        return max(self.latency_s * slots / max(runnable, 1), self.min_slice_s)


def cfs_slices(cpus: int) -> SliceSpec:
    """Linux CFS's defaults on ``cpus`` CPUs (kernel/sched/fair.c before EEVDF): 6 ms latency,
    0.75 ms granularity and 1 ms wake-up granularity, each times ``1 + log2(min(cpus, 8))``
    (``SCHED_TUNABLESCALING_LOG``); a woken thread placed half a latency behind."""
    factor = 1 + math.floor(math.log2(max(1, min(cpus, 8))))
    return SliceSpec(0.006 * factor, 0.00075 * factor, 0.001 * factor, 0.003 * factor)


def credit_slices() -> SliceSpec:
    """Xen's credit scheduler: a fixed 30 ms slice (``sched_credit_tslice_ms``), and a vCPU that
    wakes with credit left is BOOSTed ahead of the running ones (preempting at once)."""
    return SliceSpec(0.030, 0.030, 0.0, 0.030)


class Slicer:
    """Entities of groups on ``slots`` hardware threads (see the module docstring).

    The station calls :meth:`advance` as time passes, :meth:`demand` with each group's runnable
    thread count and weight (in a fixed order) after every change, :meth:`rotate` when a slice
    may have ended, and reads :meth:`running` and :meth:`next_slice_end`.
    """

    def __init__(self, spec: SliceSpec, slots: int, cores: int, bound: dict[str, tuple[int, ...]]) -> None:
        if slots < 1:
            raise ValueError("time slices need at least one hardware thread")
        self.spec = spec
        self.slots = slots
        self._cores = cores
        self._bound = bound  # group -> the cores it may run on
        self._eligible: dict[str, list[int]] = {}
        self.occupant = [-1] * slots  # entity on each slot
        self.slice_end = [math.inf] * slots
        # entities: group, state, slot, virtual runtime (s), weight
        self.group: list[str] = []
        self.state: list[int] = []
        self.slot: list[int] = []
        self.vruntime: list[float] = []
        self.weight: list[float] = []
        self._of: dict[str, list[int]] = {}  # each group's entities, in order of creation
        self._min_v = 0.0

    # -- queries --------------------------------------------------------------------------------

    def held(self, smt_yield: float) -> dict[str, float]:
        """Cores' worth each group's running entities hold: a whole core for an entity alone on
        its core, ``(1 + smt_yield (k - 1)) / k`` each for k busy siblings of one core."""
        busy = [0] * self._cores
        for s, e in enumerate(self.occupant):
            if e >= 0:
                busy[s % self._cores] += 1
        out: dict[str, float] = {}
        for s, e in enumerate(self.occupant):
            if e >= 0:
                k = busy[s % self._cores]
                out[self.group[e]] = out.get(self.group[e], 0.0) + (1 + smt_yield * (k - 1)) / k
        return out

    def next_slice_end(self) -> float:
        """When the next slice ends that another entity waits for (``inf`` if none waits)."""
        if not any(s == _WAIT for s in self.state):
            return math.inf
        return min((self.slice_end[s] for s in range(self.slots)
                    if self.occupant[s] >= 0 and self._someone_waits_for(s)), default=math.inf)

    # -- time -----------------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Running entities' virtual runtimes after ``dt`` seconds (each slowed by its weight)."""
        if dt <= 0:
            return
        for e in self.occupant:
            if e >= 0:
                self.vruntime[e] += dt * 100.0 / self.weight[e]

    def demand(self, now: float, groups: dict[str, tuple[int, float]]) -> None:
        """Make each group's runnable entities ``n`` of ``groups[name] = (n, weight)``, each
        weighing ``weight / n``; a group left out has none. Groups go in order of name: first
        every group's surplus goes to sleep (freeing slots), then the new ones wake."""
        names = sorted(set(groups) | set(self._of))
        for name in names:
            mine = self._of.setdefault(name, [])
            n, weight = groups.get(name, (0, 100.0))
            awake = [e for e in mine if self.state[e] != _SLEEP]
            for _ in range(len(awake) - n):
                self._sleep(self._to_sleep(mine), now)
            for e in mine:
                if self.state[e] != _SLEEP:
                    self.weight[e] = weight / n
        for name in names:
            n, weight = groups.get(name, (0, 100.0))
            n_awake = sum(self.state[e] != _SLEEP for e in self._of[name])
            for _ in range(n - n_awake):
                self._wake(name, weight / n, now)

    def rotate(self, now: float, tick: float) -> None:
        """Slots whose slice has ended hand over to the entity with the least virtual runtime
        that may run there (which may be the same one, for a new slice)."""
        for s in range(self.slots):
            e = self.occupant[s]
            if e >= 0 and self.slice_end[s] <= now + tick and self._someone_waits_for(s):
                self._stop(e)
                self._fill(s, now)

    # -- transitions ----------------------------------------------------------------------------

    def _slots_of(self, group: str) -> list[int]:
        slots = self._eligible.get(group)
        if slots is None:
            cores = self._bound.get(group)
            slots = list(range(self.slots)) if cores is None else \
                [s for s in range(self.slots) if s % self._cores in cores]
            self._eligible[group] = slots
        return slots

    def _someone_waits_for(self, slot: int) -> bool:
        return any(self.state[e] == _WAIT and slot in self._slots_of(self.group[e])
                   for e in range(len(self.state)))

    def _least_runnable_v(self) -> float:
        """CFS's ``min_vruntime``: the least runnable virtual runtime, never moving back."""
        runnable = [self.vruntime[e] for e in range(len(self.state)) if self.state[e] != _SLEEP]
        if runnable:
            self._min_v = max(self._min_v, min(runnable))
        return self._min_v

    def _wake(self, group: str, weight: float, now: float) -> None:
        """An entity of ``group`` becomes runnable: a sleeping one (first made first), else a new
        one, which is a thread that slept since the run began (a guest's vCPU thread, a server's
        worker): both are placed as sleepers."""
        floor = self._least_runnable_v()
        sleeping = [e for e in self._of[group] if self.state[e] == _SLEEP]
        if sleeping:
            e = sleeping[0]
        else:
            e = len(self.state)
            self.group.append(group)
            self.state.append(_SLEEP)
            self.slot.append(-1)
            self.vruntime.append(-math.inf)
            self.weight.append(weight)
            self._of[group].append(e)
        self.vruntime[e] = max(self.vruntime[e], floor - self.spec.sleeper_credit_s)
        self.weight[e] = weight
        self.state[e] = _WAIT
        slots = self._slots_of(group)
        idle = [s for s in slots if self.occupant[s] < 0]
        if idle:
            self._start(e, idle[0], now)
            return
        if self.spec.wakeup_s is None:
            return
        victim = max(slots, key=lambda s: (self.vruntime[self.occupant[s]], s))
        if self.vruntime[self.occupant[victim]] - self.vruntime[e] > self.spec.wakeup_s:
            self._stop(self.occupant[victim])
            self._start(e, victim, now)

    def _to_sleep(self, mine: list[int]) -> int:
        """Which of a group's entities sleeps when it needs one fewer: a waiting one (its jobs
        move to the running ones), the furthest ahead in virtual runtime; else a running one."""
        waiting = [e for e in mine if self.state[e] == _WAIT]
        pool = waiting or [e for e in mine if self.state[e] == _RUN]
        return max(pool, key=lambda e: (self.vruntime[e], e))

    def _sleep(self, e: int, now: float) -> None:
        slot = self.slot[e]
        if self.state[e] == _RUN:
            self._stop(e)
        self.state[e] = _SLEEP
        if slot >= 0:
            self._fill(slot, now)

    def _stop(self, e: int) -> None:
        """Take ``e`` off its slot (it stays runnable)."""
        s = self.slot[e]
        self.occupant[s] = -1
        self.slice_end[s] = math.inf
        self.slot[e] = -1
        self.state[e] = _WAIT

    def _start(self, e: int, s: int, now: float) -> None:
        runnable = sum(st != _SLEEP for st in self.state)
        self.occupant[s] = e
        self.slot[e] = s
        self.state[e] = _RUN
        self.slice_end[s] = now + self.spec.slice_s(self.slots, runnable)

    def _fill(self, s: int, now: float) -> None:
        """Give a free slot to the waiting entity with the least virtual runtime that may run there."""
        best = -1
        for e in range(len(self.state)):
            if self.state[e] == _WAIT and s in self._slots_of(self.group[e]) and \
                    (best < 0 or self.vruntime[e] < self.vruntime[best]):
                best = e
        if best >= 0:
            self._start(best, s, now)
