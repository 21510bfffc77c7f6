"""Time slices: a host scheduler that gives its cores to threads in turns, not in fluid shares.

Processor sharing runs every runnable thread at once, each at a fraction of a core. A real host
scheduler (Linux CFS for KVM and containers, Xen's credit scheduler) runs one thread per hardware
thread at full speed and switches among them. Throughput comes out the same; latency does not:

- a group that wakes (a VM whose vCPUs were all halted, a server whose threads were blocked) is
  placed ``sleeper_credit_s`` behind the runnable groups' least virtual runtime and, if that
  puts it more than ``wakeup_s`` behind a running group, takes that group's core at once (CFS's
  wake-up preemption; Xen's BOOST). A request to an idle guest is served at full speed, where
  processor sharing would slow it by the number of threads sharing its core;
- a group that stays runnable waits for its turn: the others run slices of
  ``max(latency_s x slots / runnable threads, min_slice_s)`` each (CFS's ``sched_slice``; Xen:
  a fixed 30 ms), so a request to a busy, descheduled vCPU waits up to a slice or more.

:class:`Slicer` schedules the top-level groups (a VM, a container, a process, the host's own
jobs) as CFS schedules a cgroup's group entity: each has one virtual runtime, which grows with
the cores its threads hold, in inverse proportion to its ``cpu.weight``, and may hold as many
hardware threads ("slots") as it has runnable threads. So a 4-vCPU VM and a 1-vCPU VM of equal
weight get equal shares when all their vCPUs are busy, as processor sharing gives them, and a
group's threads coming and going do not restart its account. Inside a group, the cores it holds
are shared by its jobs as before (:class:`~virtsim.sim.stations.SharedStation` water-fills them):
the slices are between groups, the guest's own scheduling stays fluid. Slot ``s`` is on core
``s % cores`` (the first ``cores`` slots are distinct cores, as Linux spreads threads before it
doubles them up on SMT siblings); a group bound to cores runs only on their slots. A core's busy
SMT siblings share what it does, one whole core plus ``smt_yield`` for each further sibling
(fluid sharing spreads that yield over every core instead, once the host has more running jobs
than cores).

Ties are broken by fixed rules (groups in order of name, lowest slot), so a run is reproducible.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

__all__ = ["SliceSpec", "Slicer", "cfs_slices", "credit_slices"]


@dataclass(frozen=True)
class SliceSpec:
    """A time-slicing scheduler's parameters (seconds).

    ``latency_s``: the period in which every runnable thread of a core runs once (CFS
    ``sched_latency``); ``min_slice_s``: the shortest slice (CFS ``sched_min_granularity``; Xen's
    fixed slice: both 30 ms); ``wakeup_s``: how far behind a running thread's virtual runtime a
    woken one must be to preempt it (CFS ``sched_wakeup_granularity``), ``None`` for no wake-up
    preemption (a woken thread waits for a slice to end); ``sleeper_credit_s``: how far behind
    the least runnable virtual runtime a woken thread is placed (CFS: ``sched_latency / 2``);
    ``min_run_s``: how long a thread runs before a woken one may preempt it (Xen's
    ``sched_ratelimit_us``; CFS: none): a preemption asked for sooner ends its slice then.
    """

    latency_s: float
    min_slice_s: float
    wakeup_s: float | None
    sleeper_credit_s: float
    min_run_s: float = 0.0

    def __post_init__(self) -> None:
        values = [self.latency_s, self.min_slice_s, self.sleeper_credit_s, self.min_run_s]
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
    wakes with credit left is BOOSTed ahead of the running ones, preempting one that has run at
    least 1 ms (``sched_ratelimit_us``, default 1000 since Xen 4.2: xen/common/schedule.c, "Default
    scheduling rate limit: 1ms"; csched_schedule continues a vCPU that has run less "with a
    shorter timeslice"), else when it has."""
    return SliceSpec(0.030, 0.030, 0.0, 0.030, min_run_s=0.001)


class Slicer:
    """Top-level groups on ``slots`` hardware threads (see the module docstring).

    The station calls :meth:`advance` as time passes, :meth:`demand` with each group's runnable
    thread count and weight after every change, :meth:`rotate` when a slice may have ended, and
    reads :meth:`held` and :meth:`next_slice_end`.
    """

    def __init__(self, spec: SliceSpec, slots: int, cores: int, bound: dict[str, tuple[int, ...]]) -> None:
        if slots < 1:
            raise ValueError("time slices need at least one hardware thread")
        self.spec = spec
        self.slots = slots
        self._cores = cores
        self._bound = bound  # group -> the cores it may run on
        self._eligible: dict[str, list[int]] = {}
        self.occupant: list[str | None] = [None] * slots  # the group on each slot
        self.slice_end = [math.inf] * slots
        self.slice_start = [0.0] * slots  # when each slot's occupant began running there
        self.wanted: dict[str, int] = {}  # runnable threads of each group (0: asleep)
        self.holding: dict[str, int] = {}  # slots each group holds
        self.vruntime: dict[str, float] = {}  # s, at DEFAULT_WEIGHT
        self.weight: dict[str, float] = {}
        self._names: list[str] = []  # every group seen, in order of name
        self._slept_at: dict[str, float] = {}  # when each group's last thread went to sleep
        # each slot's last release by a group whose threads fell: (when, group, its slice's end
        # and start)
        self._released: list[tuple[float, str, float, float] | None] = [None] * slots
        # the slot each group last gave up when its threads fell: where a woken thread of it is
        # queued (its previous CPU), so the only slot its wake-up may preempt
        self._home: dict[str, int] = {}
        self._min_v = [0.0] * cores  # each core's min_vruntime (CFS keeps one per run queue)

    # -- queries --------------------------------------------------------------------------------

    def held(self, smt_yield: float) -> dict[str, float]:
        """Cores' worth each group holds: a whole core for a slot alone on its core,
        ``(1 + smt_yield (k - 1)) / k`` each for k busy siblings of one core."""
        busy = [0] * self._cores
        for s, g in enumerate(self.occupant):
            if g is not None:
                busy[s % self._cores] += 1
        out: dict[str, float] = {}
        for s, g in enumerate(self.occupant):
            if g is not None:
                k = busy[s % self._cores]
                out[g] = out.get(g, 0.0) + (1 + smt_yield * (k - 1)) / k
        return out

    def next_slice_end(self) -> float:
        """When the next slice ends that a waiting group may take (``inf`` if none waits)."""
        return min((self.slice_end[s] for s in range(self.slots)
                    if self.occupant[s] is not None and self._waiting_for(s) is not None), default=math.inf)

    # -- time -----------------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Each group's virtual runtime after ``dt`` seconds: its slots' time over its weight."""
        if dt <= 0:
            return
        for g, n in self.holding.items():
            if n:
                self.vruntime[g] += dt * 100.0 * n / self.weight[g]

    def demand(self, now: float, groups: dict[str, tuple[int, float]]) -> None:
        """Make each group's runnable threads ``n`` of ``groups[name] = (n, weight)``; a group
        left out has none. A group waking from sleep (no thread runnable before) is placed as a
        sleeper (CFS's ``place_entity``). Then, in order of name, every group holding more slots
        than it has threads gives up the surplus (:meth:`_surplus`; each goes to the waiting
        group furthest behind), and every group with threads waiting takes free slots
        it may use; one whose threads just woke may preempt too (CFS's wake-up preemption)."""
        names = sorted(set(groups) | {g for g, n in self.wanted.items() if n})
        woken = self._woken(now, names, groups)
        for name in names:
            n, weight = groups.get(name, (0, self.weight.get(name, 100.0)))
            before = self.wanted.get(name, 0)
            if before and not n:
                self._slept_at[name] = now
            if name not in self.holding:
                self.holding[name] = 0
                bisect.insort(self._names, name)
            self.wanted[name] = n
            self.weight[name] = weight
        for name in names:
            for _ in range(self.holding[name] - self.wanted[name]):
                slot = self._surplus(name)
                self._released[slot] = (now, name, self.slice_end[slot], self.slice_start[slot])
                self._home[name] = slot
                self._free(slot)
                self._fill(slot, now)
        for name in names:
            for _ in range(self.wanted[name] - self.holding[name]):
                if not (self._reclaim(name, now) or self._take(name, now, name in woken)):
                    break
        self._settle(now)

    def rotate(self, now: float, tick: float) -> None:
        """Slots whose slice has ended go to the waiting group with the least virtual runtime
        that may run there (the same group again, for a new slice, if it is that one)."""
        for s in range(self.slots):
            g = self.occupant[s]
            if g is not None and self.slice_end[s] <= now + tick and self._waiting_for(s) is not None:
                self._free(s)
                self._fill(s, now)
        self._settle(now)

    def _settle(self, now: float) -> None:
        """No slot idle while a group that may use it waits: one displaced by a bound group's
        preemption or a slice's end takes an idle core elsewhere (Linux's idle balance; review 36);
        and no two threads share a core while a core they may use has nothing running: the
        highest such slot's thread moves there with its slice (review 37 F2)."""
        for s in range(self.slots):
            if self.occupant[s] is None:
                self._fill(s, now)
        if self.slots == self._cores:
            return
        for s in range(self.slots - 1, -1, -1):
            g = self.occupant[s]
            if g is None or not self._busy_siblings(s):
                continue
            to = next((c for c in self._cores_of(g) if self.occupant[c] is None and not self._busy_siblings(c)), None)
            if to is not None:
                end, start = self.slice_end[s], self.slice_start[s]
                self._free(s)
                self._start(g, to, now)
                self.slice_end[to], self.slice_start[to] = end, start

    def _surplus(self, group: str) -> int:
        """The slot ``group`` gives up when it runs fewer threads: its highest that a waiting
        group may run on, else its highest. A group bound to one core then gets it, where the
        shrinking group keeps a core the bound one may not use (review 39 F2: an unbound thread
        kept core 0 while a group bound to core 0 waited and core 1 idled; Linux's idle balance
        would have pulled it to core 1)."""
        held = [s for s in range(self.slots) if self.occupant[s] == group]
        if len(held) == 1:  # no choice: no pass over the groups (a density host has a thousand)
            return held[0]
        return max((s for s in held if self._waiting_for(s) is not None), default=held[-1])

    def _busy_siblings(self, s: int) -> int:
        """How many other slots of ``s``'s core are taken."""
        core = range(s % self._cores, self.slots, self._cores)
        return sum(1 for x in core if x != s and self.occupant[x] is not None)

    # -- transitions ----------------------------------------------------------------------------

    def _slots_of(self, group: str) -> list[int]:
        slots = self._eligible.get(group)
        if slots is None:
            cores = self._bound.get(group)
            slots = list(range(self.slots)) if cores is None else \
                [s for s in range(self.slots) if s % self._cores in cores]
            self._eligible[group] = slots
        return slots

    def _waiting_for(self, slot: int) -> str | None:
        """The waiting group (fewer slots than threads) with the least virtual runtime that may
        run on ``slot`` (the first in order of name of equals), or ``None``."""
        best = None
        for g in self._names:
            if self.holding[g] < self.wanted[g] and slot in self._slots_of(g) and \
                    (best is None or self.vruntime[g] < self.vruntime[best]):
                best = g
        return best

    def _woken(self, now: float, names: list[str], groups: dict[str, tuple[int, float]]) -> set[str]:
        """The groups of ``names`` whose runnable threads rise (to ``groups``' counts); each of
        them that slept is placed as a sleeper against its cores' floors. A thread that blocks
        and is runnable again at the same instant (a closed loop's next request) did not sleep:
        no sleeper placement, no wake-up preemption."""
        woken = {name for name in names if groups.get(name, (0, 0.0))[0] > self.wanted.get(name, 0)
                 and not (self.wanted.get(name, 0) == 0 and self._slept_at.get(name) == now)}
        sleepers = [name for name in names if name in woken and not self.wanted.get(name, 0)]
        if sleepers:
            self._raise_floors()
        for name in sleepers:
            floor = min(self._min_v[c] for c in self._cores_of(name))
            self.vruntime[name] = max(self.vruntime.get(name, -math.inf), floor - self.spec.sleeper_credit_s)
        return woken

    def _cores_of(self, group: str) -> tuple[int, ...] | range:
        """The cores ``group`` may run on (every core unless bound)."""
        cores = self._bound.get(group)
        return range(self._cores) if cores is None else tuple(sorted(cores))

    def _raise_floors(self) -> None:
        """Each core's ``min_vruntime`` (CFS's, one per run queue): the least virtual runtime of
        the runnable groups that may run there, never moving back. Per core, so a group bound
        elsewhere (whose runtime grows apace on its own cores) does not push a core's sleepers
        ahead of the groups they share it with (review 37 F1). A woken group is placed against
        the least of its cores' floors."""
        runnable = [g for g in self._names if self.wanted[g] and g in self.vruntime]
        if not self._bound:  # every group may run everywhere: one least runtime for every core
            if runnable:
                least = min(self.vruntime[g] for g in runnable)
                self._min_v = [max(v, least) for v in self._min_v]
            return
        for c in range(self._cores):
            here = [self.vruntime[g] for g in runnable if c in self._cores_of(g)]
            if here:
                self._min_v[c] = max(self._min_v[c], min(here))

    def _take(self, group: str, now: float, woken: bool) -> bool:
        """One more slot for ``group``: a free one it may use, else, if its threads just woke,
        the slot it last gave up (the woken thread's previous CPU: Linux enqueues it there and
        checks preemption against that CPU's task; Xen tickles the vCPU's processor), or, if
        it has given up none, the slot of the group furthest ahead; taken if its occupant is
        more than ``wakeup_s`` ahead (and has run ``min_run_s``). Whether it got one."""
        slots = self._slots_of(group)
        idle = [s for s in slots if self.occupant[s] is None]
        if idle:  # a slot on a core with nothing running first (Linux's select_idle_core)
            alone = [s for s in idle if not self._busy_siblings(s)]
            self._start(group, (alone or idle)[0], now)
            return True
        if not woken or self.spec.wakeup_s is None:
            return False
        victim, ahead = -1, ""
        home = self._home.get(group)
        if home is not None and home in slots:
            slots = [home]
        for s in slots:  # the last of equals
            g = self.occupant[s]
            if g is not None and (victim < 0 or self.vruntime[g] >= self.vruntime[ahead]):
                victim, ahead = s, g
        if ahead != group and self.vruntime[ahead] - self.vruntime[group] > self.spec.wakeup_s:
            earliest = self.slice_start[victim] + self.spec.min_run_s
            if now < earliest:  # rate-limited: the victim's slice ends when it has run its minimum
                self.slice_end[victim] = min(self.slice_end[victim], earliest)
                return False
            self._free(victim)
            self._start(group, victim, now)
            return True
        return False

    def _reclaim(self, group: str, now: float) -> bool:
        """Take back a slot ``group`` gave up at this same instant (its thread blocked and is
        runnable again at once, so it never left the core: a closed loop's next request), with
        its slice as it was, from whichever group it went to (which waits again). Whether it did."""
        for s in range(self.slots):
            released = self._released[s]
            if released is not None and released[0] == now and released[1] == group:
                self._released[s] = None
                if self.occupant[s] is not None:
                    self._free(s)
                self._start(group, s, now)
                self.slice_end[s], self.slice_start[s] = released[2], released[3]
                return True
        return False

    def _free(self, s: int) -> None:
        g = self.occupant[s]
        assert g is not None
        self.holding[g] -= 1
        self.occupant[s] = None
        self.slice_end[s] = math.inf

    def _start(self, group: str, s: int, now: float) -> None:
        runnable = sum(self.wanted.values())
        self.occupant[s] = group
        self.holding[group] += 1
        self.slice_end[s] = now + self.spec.slice_s(self.slots, runnable)
        self.slice_start[s] = now

    def _fill(self, s: int, now: float) -> None:
        """Give a free slot to the waiting group with the least virtual runtime that may run there."""
        g = self._waiting_for(s)
        if g is not None:
            self._start(g, s, now)
