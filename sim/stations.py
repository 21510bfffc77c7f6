"""Stations: the places where requests wait and are served.

A station takes a piece of *work* (seconds of service at one server at full speed) and returns a
SimPy event that fires when the work is done. Four disciplines cover the hardware:

- :class:`FifoStation`: ``servers`` identical servers and one first-come-first-served queue (a
  disk's internal channels, a NIC's transmit queue, a VMM's single I/O thread).
- :class:`DelayStation`: infinitely many servers, so only the work itself is spent (wire latency).
- :class:`SharedStation`: processor sharing of ``capacity`` servers among jobs in a hierarchy of
  groups with weights, caps, bandwidth quotas and core affinity (CPU cores under the CFS scheduler
  and cgroups). A group may be served by a fixed number of threads in FIFO order: an event loop
  is one thread, a thread pool k, a VMM's I/O thread one; their jobs wait for a thread, and the
  threads themselves share the cores with everything else.
- :class:`LockStation`: ``servers`` tokens held across several stages (a thread blocked in a
  synchronous device access, a critical section): a request acquires one, visits other stations,
  and releases it.

Every station can say how long it has been idle (:meth:`Station.idle_for`): costs that a real
system pays only when something was asleep (a kick to an idle back end, an interrupt to a halted
vCPU, the wake-up of a blocked thread) are charged only then, so they fall away as load rises.

Stations are written with event callbacks rather than SimPy processes or resources: a visit costs
one completion event and one timeout, which keeps the engine close to a bare SimPy loop.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import simpy

from virtsim.sim.affinity import affinity_shares
from virtsim.sim.slices import Slicer, SliceSpec

__all__ = [
    "DEFAULT_WEIGHT",
    "DelayStation",
    "FifoStation",
    "GroupPath",
    "GroupSpec",
    "LockStation",
    "SharedStation",
    "Station",
    "StreamStation",
    "check_cores",
    "check_quota",
    "stream_leaf",
    "water_fill",
]

GroupPath = tuple[str, ...]


def stream_leaf(domain: str) -> str:
    """The last part of the group path of the streams a group runs in bandwidth domain
    ``domain``: ``@`` and its name, which no group is called (guest names and the layers'
    groups hold no ``@``), so a guest named ``membw`` is no bandwidth domain (review 33 F1)."""
    return f"@{domain}"

DEFAULT_WEIGHT = 100.0  # cgroup v2 default cpu.weight; a job inside a group counts like this
_TOL = 1e-12  # seconds of work or quota below which a value is taken as zero


class Station:
    """Base of all stations: a name, the work served so far (for utilization), and idleness."""

    def __init__(self, env: simpy.Environment, name: str) -> None:
        self.env = env
        self.name = name
        self.work_done_s = 0.0
        self._idle_since = -math.inf  # when the station last became idle (-inf: never busy)
        self._busy_now = 0

    def idle_for(self, group: GroupPath = ()) -> float:
        """Seconds the station (or, where it has groups, ``group``) has had nothing to do.

        ``-inf`` while it is busy, ``inf`` if it never was.
        """
        return -math.inf if self._busy_now else self.env.now - self._idle_since

    def _whole_servers(self, servers: float) -> int:
        """``servers`` as a count (``ValueError`` unless a whole number >= 1)."""
        if servers < 1 or int(servers) != servers:
            raise ValueError(f"station {self.name!r}: servers must be a whole number >= 1, got {servers}")
        return int(servers)

    def _note_busy(self, delta: int) -> None:
        """Count ``delta`` more (or fewer) visits in progress; idleness starts when the count reaches zero."""
        self._busy_now += delta
        if not self._busy_now:
            self._idle_since = self.env.now

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        """Serve ``work_s`` seconds of work for ``group``; the event fires when it is done."""
        raise NotImplementedError

    @property
    def servers(self) -> float:
        """How many servers' worth of capacity the station has (inf for a delay)."""
        raise NotImplementedError


class FifoStation(Station):
    """``servers`` servers and a single FIFO queue."""

    def __init__(self, env: simpy.Environment, name: str, servers: int = 1) -> None:
        super().__init__(env, name)
        self._servers = self._whole_servers(servers)
        self._busy = 0
        self._queue: deque[tuple[simpy.Event, float]] = deque()
        self._ends: dict[simpy.Event, float] = {}  # the visits in service and when each ends (s)

    @property
    def servers(self) -> float:
        """The number of servers."""
        return float(self._servers)

    def work_in_service_s(self) -> float:
        """Work of the visits in service that is still ahead of ``now`` (s).

        ``work_done_s`` counts a visit's whole work when it starts; a run that ends mid-service
        subtracts this so that utilization counts only the time actually served (never above 1).
        """
        now = self.env.now
        return sum(end - now for end in self._ends.values())

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        """Start ``work_s`` (s) on a free server, or queue it behind the others; ``group`` is ignored."""
        done = simpy.Event(self.env)
        self._note_busy(+1)
        if self._busy < self._servers:
            self._busy += 1
            self._start(done, work_s)
        else:
            self._queue.append((done, work_s))
        return done

    def _start(self, done: simpy.Event, work_s: float) -> None:
        """Put a visit in service: count its whole work as done and end it ``work_s`` seconds from now."""
        self.work_done_s += work_s
        timer = self.env.timeout(work_s, value=done)
        self._ends[timer] = self.env.now + work_s
        timer.callbacks.append(self._finish)

    def _finish(self, timer: simpy.Event) -> None:
        """End the visit whose timer fired, and give its server to the next visit in the queue."""
        del self._ends[timer]
        timer.value.succeed()  # type: ignore[union-attr]  # the timeout's value is the visit's event
        self._note_busy(-1)
        if self._queue:
            self._start(*self._queue.popleft())
        else:
            self._busy -= 1


class DelayStation(Station):
    """Infinitely many servers: each visit takes exactly its work (a propagation delay).

    A delay holds no resource, so it is never busy (:meth:`idle_for` is always infinite).
    """

    def idle_for(self, group: GroupPath = ()) -> float:
        """Always ``inf``: a delay is never busy."""
        return math.inf

    @property
    def servers(self) -> float:
        """Always ``inf``: every visit is served at once."""
        return math.inf

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        """A timeout of ``work_s`` seconds, whatever else is in progress; ``group`` is ignored."""
        self.work_done_s += work_s
        return self.env.timeout(work_s)


class LockStation(Station):
    """``servers`` tokens, granted in FIFO order and held until released.

    A request that must keep a resource through several stages (a VMM thread blocked in a
    synchronous read, a critical section) acquires a token, visits those stages, then releases it.
    ``work_done_s`` counts the time tokens were held.
    """

    def __init__(self, env: simpy.Environment, name: str, servers: int = 1) -> None:
        super().__init__(env, name)
        self._servers = self._whole_servers(servers)
        self._held = 0
        self._waiting: deque[simpy.Event] = deque()
        self._since = env.now

    @property
    def servers(self) -> float:
        """The number of tokens."""
        return float(self._servers)

    def _account(self) -> None:
        """Add the token-holding time since the last change to ``work_done_s`` (s)."""
        self.work_done_s += self._held * (self.env.now - self._since)
        self._since = self.env.now

    def acquire(self) -> simpy.Event:
        """An event that fires when the caller holds a token."""
        granted = simpy.Event(self.env)
        self._note_busy(+1)
        if self._held < self._servers:
            self._account()
            self._held += 1
            granted.succeed()
        else:
            self._waiting.append(granted)
        return granted

    def release(self) -> None:
        """Give back a token; the first waiter, if any, gets it at once."""
        self._note_busy(-1)
        if self._waiting:
            self._waiting.popleft().succeed()
        else:
            self._account()
            self._held -= 1

    def settle(self) -> None:
        """Account the holding time up to now (the engine calls it when a run ends)."""
        self._account()


@dataclass(frozen=True)
class GroupSpec:
    """Scheduling parameters of one group (a cgroup, a VM's vCPUs, a process, a thread pool).

    ``weight`` is the relative share under contention (cgroup ``cpu.weight``; default 100).
    ``max_servers`` caps the servers the group may use at once (a VM's vCPU count, a cpuset size).
    ``quota_s`` per ``period_s`` is the bandwidth limit of cgroup ``cpu.max``: once the group's
    threads have run ``quota_s`` on hardware threads in the current period it is throttled until
    the period ends. Run time, not work: a thread whose SMT sibling is busy does less than a
    core's work but is charged its whole time, as CFS charges ``delta_exec``.
    Periods start at time zero for every group.
    ``threads``: the group's own jobs are served by this many threads in FIFO order (an event loop
    is 1, a thread pool k): at most ``threads`` of them run, the rest wait; ``None``: every job
    runs (a thread per request). ``cores``: the host cores a top-level group may run on (affinity:
    ``pin``, ``cpuset``); ``None``: any core. ``label``: report the group's utilization under
    this name (per thread for a FIFO group, per core of its cap otherwise).
    """

    weight: float = DEFAULT_WEIGHT
    max_servers: float = math.inf
    quota_s: float | None = None
    period_s: float = 0.1
    threads: int | None = None
    cores: tuple[int, ...] | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"group weight must be > 0, got {self.weight}")
        if not self.max_servers > 0:
            raise ValueError(f"group max_servers must be > 0, got {self.max_servers}")
        if self.quota_s is not None and not (self.quota_s > 0 and self.period_s > 0):
            raise ValueError("group quota_s and period_s must both be > 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"group threads must be >= 1, got {self.threads}")
        if self.cores is not None and (not self.cores or min(self.cores) < 0):
            raise ValueError(f"group cores must name at least one core >= 0, got {self.cores}")

    @property
    def servers(self) -> float:
        """The most servers the group's work can use: its threads, cores and cap."""
        return self.servers_on(1)

    def servers_on(self, threads_per_core: int) -> float:
        """The most servers (hardware threads) the group's work can use on cores of
        ``threads_per_core`` threads each: its threads, its cap, and every thread of its cores
        (a cpuset names cores; under SMT each holds ``threads_per_core`` running jobs)."""
        n = self.max_servers
        if self.threads is not None:
            n = min(n, float(self.threads))
        if self.cores is not None:
            n = min(n, float(len(set(self.cores)) * threads_per_core))
        return n


def check_quota(quota_s: float, period_s: float) -> None:
    """Refuse a ``cpu.max`` that is not a finite quota and period > 0 (seconds)."""
    if not (quota_s > 0 and period_s > 0 and math.isfinite(quota_s) and math.isfinite(period_s)):
        raise ValueError(f"cpu.max must be a finite quota and period > 0, got {quota_s}/{period_s}")


def water_fill(capacity: float, weights: list[float], caps: list[float]) -> list[float]:
    """Split ``capacity`` in proportion to ``weights``, no share above its cap (max-min fair).

    Capacity a capped member cannot use goes to the others, in proportion to their weights.
    """
    rates = [0.0] * len(weights)
    remaining_capacity, remaining_weight = capacity, sum(weights)
    for i in sorted(range(len(weights)), key=lambda i: caps[i] / weights[i]):
        fair = remaining_capacity * weights[i] / remaining_weight
        rates[i] = min(caps[i], fair)
        remaining_capacity -= rates[i]
        remaining_weight -= weights[i]
        if remaining_weight <= 0:
            break
    return rates


@dataclass(eq=False)
class _Leaf:
    """The jobs of one group. Running jobs always share equally, so one virtual clock serves them
    all: ``vtime_s`` is the work each has received since the leaf was made, and a job is done when
    the clock passes its finish tag (work when it started running plus its own work). A FIFO
    group runs at most ``threads`` jobs; the others wait in ``waiting`` in order of arrival. A
    job that keeps its thread (its request's next work is on the same thread, in the same pass)
    leaves it ``kept`` when it finishes, until that next work comes, at the same instant."""

    threads: int | None = None
    heap: list[tuple[float, int, simpy.Event, bool]] = field(default_factory=list)
    waiting: deque[tuple[float, int, simpy.Event, bool]] = field(default_factory=deque)
    background: int = 0
    kept: int = 0  # threads held between two stages of one request (running, with no job yet)
    vtime_s: float = 0.0
    rate: float = 0.0  # per running job: the cores' worth it holds
    domain: StreamStation | None = None  # a leaf of memory streams: the bandwidth domain they share
    progress: float = 0.0  # a stream leaf's work done per second per job (its rate, less what the domain lacks)

    @property
    def count(self) -> int:
        """Jobs running (waiting ones use no capacity; a kept thread runs on)."""
        return len(self.heap) + self.background + self.kept

    @property
    def empty(self) -> bool:
        return not (self.heap or self.waiting or self.background or self.kept)


@dataclass(eq=False)
class _GroupState:
    """A group's spec and its quota accounting: service used (s) in the period ending at ``period_end_s``."""
    spec: GroupSpec
    used_s: float = 0.0
    period_end_s: float = 0.0
    throttled: bool = False
    rate: float = 0.0


@dataclass(eq=False)
class _Node:
    """A group in the tree built at each allocation: its child groups, its own jobs, and its cap (servers)."""
    children: dict[str, _Node] = field(default_factory=dict)
    leaf: _Leaf | None = None
    cap: float = 0.0


class SharedStation(Station):
    """Weighted processor sharing of ``capacity`` servers, one server at most per job.

    Groups form a tree by their paths (``("vm1",)`` contains ``("vm1", "ctr")``). At every change
    the capacity is split among the root's children by weight (:func:`water_fill`), each group's
    share among its own children the same way (its own running jobs counting as one child of
    weight ``DEFAULT_WEIGHT`` per job), and a group's running jobs share equally. A group that
    has used its quota in the current period gets nothing until the period ends (CFS bandwidth
    control as a fluid model). Top-level groups with ``cores`` run only on those cores: the root's
    children then get the weighted max-min fair shares of :mod:`virtsim.sim.affinity` (no set of
    groups more than the cores of the union of their sets, a weight counting between bound and
    free groups alike; free groups may run on any core).
    Background jobs never finish: they model host processes that always run.

    With simultaneous multithreading (``threads_per_server`` > 1), jobs beyond one per core run on
    the cores' sibling threads: n running jobs on C cores of T threads get
    ``min(n, C) + smt_yield * min(n - C, C (T - 1))`` cores' worth, shared among them, so
    siblings slow each other when both are busy.

    With ``slices`` (:mod:`virtsim.sim.slices`), the top-level groups' threads take the cores in
    time slices instead (a whole core each while they run, busy SMT siblings sharing their core
    and its yield), and each group's running threads' cores are shared among its jobs as before.
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        capacity: float,
        groups: Mapping[GroupPath, GroupSpec] | None = None,
        background: Mapping[GroupPath, int] | None = None,
        threads_per_server: int = 1,
        smt_yield: float = 0.0,
        slices: SliceSpec | None = None,
    ) -> None:
        super().__init__(env, name)
        if not capacity > 0:
            raise ValueError(f"station {name!r}: capacity must be > 0, got {capacity}")
        self.capacity = float(capacity)
        self._threads = max(1, int(threads_per_server))
        self._smt_yield = float(smt_yield)
        self._groups = {path: _GroupState(spec) for path, spec in (groups or {}).items()}
        self._quota_paths = [(path, g) for path, g in self._groups.items() if g.spec.quota_s is not None]
        self._quota_groups = [g for _, g in self._quota_paths]
        self._pinned = {path[0]: spec.cores for path, spec in (groups or {}).items()
                        if len(path) == 1 and spec.cores is not None}
        check_cores(name, self.capacity, self._pinned)
        self._leaves: dict[GroupPath, _Leaf] = {}
        self._jobs: dict[GroupPath, int] = {}  # jobs (running or waiting) under each group path
        self._idle: dict[GroupPath, float] = {}  # when each group path last became idle
        self._work_by_leaf: dict[GroupPath, float] = {}
        # Running jobs under each group path, and how many capped groups run more jobs than their
        # cap: while none does (and nothing is throttled or pinned), every running job gets a
        # whole server and the water-filling can be skipped.
        self._running: dict[GroupPath, int] = {}
        # a top-level group's cores are host cores, with their SMT threads; below a VM, vCPUs
        self._servers = {path: state.spec.servers_on(self._threads if len(path) == 1 else 1)
                         for path, state in self._groups.items()}
        self._caps = {path: n for path, n in self._servers.items() if math.isfinite(n)}
        self._caps[()] = self.capacity
        self._over = 0
        self._domains: dict[str, StreamStation] = {}  # by the name its streams' leaves end in (stream_leaf)
        self._per_job = 1.0
        self._seq = 0
        self._last_s = env.now
        self._version = 0
        self._slicer = None if slices is None else self._make_slicer(slices)
        for path, count in (background or {}).items():
            self._leaf(path).background += count
            self._count(path, count)
            self._run(path, count)
        if self._leaves:
            self._reschedule()

    def _make_slicer(self, slices: SliceSpec) -> Slicer:
        """The time slicer of the station's hardware threads (``ValueError`` unless whole cores)."""
        if self.capacity != int(self.capacity):
            raise ValueError(f"station {self.name!r}: time slices need whole cores, got {self.capacity:g}")
        return Slicer(slices, int(self.capacity) * self._threads, int(self.capacity),
                      {n: tuple(c) for n, c in self._pinned.items() if c is not None})

    @property
    def servers(self) -> float:
        """The most work per second the station can do: its cores, plus what SMT siblings add."""
        return self.capacity * (1 + self._smt_yield * (self._threads - 1))

    def submit(self, work_s: float, group: GroupPath = (), *, keep: bool = False, kept: bool = False) -> simpy.Event:
        """Add a job of ``work_s`` seconds (at one full server) to ``group``; it waits while its threads are busy.

        In a group of threads (:meth:`has_threads`), ``keep``: the job's thread stays its
        request's when the job is done (``_Leaf.kept``), for the request's next job on it at the
        same instant, which says ``kept`` and takes it at once (or :meth:`unkeep` gives it up):
        one pass of a thread through a request's consecutive stages (a packet's receive work and
        the bridge or the IPI its softirq adds), not one turn in line each.
        """
        self._advance()
        done = simpy.Event(self.env)
        leaf = self._leaf(group)
        self._seq += 1
        if (keep or kept) and leaf.threads is None:
            raise ValueError(f"station {self.name!r}: group {group} has no threads to keep")
        if kept:
            if not leaf.kept:
                raise RuntimeError(f"station {self.name!r}: no thread kept in group {group}")
            leaf.kept -= 1  # the request's thread runs on: already counted as a job, and running
            heapq.heappush(leaf.heap, (leaf.vtime_s + work_s, self._seq, done, keep))
            self._reschedule()
            return done
        self._count(group, +1)
        if leaf.threads is None or len(leaf.heap) + leaf.kept < leaf.threads:
            heapq.heappush(leaf.heap, (leaf.vtime_s + work_s, self._seq, done, keep))
            self._run(group, +1)
        else:
            leaf.waiting.append((work_s, self._seq, done, keep))
        self._reschedule()
        return done

    def has_threads(self, group: GroupPath) -> bool:
        """Whether ``group`` runs its jobs on a fixed number of threads, in order of arrival."""
        state = self._groups.get(group)
        return state is not None and state.spec.threads is not None

    def unkeep(self, group: GroupPath) -> None:
        """Give up a thread of ``group`` kept for a request's next stage, which did not run (its
        idle condition did not hold): the next job in line takes it, as when a job finishes."""
        self._advance()
        leaf = self._leaf(group)
        if not leaf.kept:
            raise RuntimeError(f"station {self.name!r}: no thread kept in group {group}")
        leaf.kept -= 1
        self._count(group, -1)
        self._free_thread(group, leaf)
        self._reschedule()

    def _free_thread(self, path: GroupPath, leaf: _Leaf) -> None:
        """A thread of ``leaf`` is free: the next job in line takes it, else one job fewer runs."""
        if leaf.waiting:
            work, seq, done, keep = leaf.waiting.popleft()
            heapq.heappush(leaf.heap, (leaf.vtime_s + work, seq, done, keep))
        else:
            self._run(path, -1)

    def idle_for(self, group: GroupPath = ()) -> float:
        """Seconds since ``group`` (and every group inside it) last had a job; ``-inf`` while it has one."""
        if self._jobs.get(group, 0):
            return -math.inf
        return self.env.now - self._idle.get(group, -math.inf)

    def group_work_s(self, group: GroupPath) -> float:
        """Work served so far to ``group`` and the groups inside it, in seconds."""
        n = len(group)
        return sum(w for path, w in self._work_by_leaf.items() if path[:n] == group)

    def group_spec(self, group: GroupPath) -> GroupSpec | None:
        """The spec given for ``group`` when the station was made, or ``None`` if it has none."""
        state = self._groups.get(group)
        return state.spec if state is not None else None

    def labelled_groups(self) -> dict[str, GroupPath]:
        """Groups whose utilization is reported, by label."""
        return {state.spec.label: path for path, state in self._groups.items() if state.spec.label}

    def settle(self) -> None:
        """Account the work done up to now (the engine calls it when a run ends)."""
        self._advance()

    def set_quota(self, group: GroupPath, quota_s: float, period_s: float) -> None:
        """Change the ``cpu.max`` of a group that has one, from now on (a controller's action).

        Work is accounted up to now at the old limit. As a write to ``cpu.max`` does in Linux,
        the group's quota is then refilled and it is unthrottled at once; periods keep their
        boundaries (multiples of the period from time zero).
        """
        state = self._groups.get(group)
        if state is None or state.spec.quota_s is None:
            raise ValueError(f"station {self.name!r}: group {group} has no cpu.max to change "
                             "(give the guest a cpu_max when the run starts)")
        check_quota(quota_s, period_s)
        self._advance()
        state.spec = replace(state.spec, quota_s=float(quota_s), period_s=float(period_s))
        state.used_s = 0.0
        state.throttled = False
        self._reschedule()

    def add_domain(self, domain: StreamStation) -> None:
        """Run ``domain``'s streams on these cores: a stream of group ``g`` is a job of the leaf
        ``(*g, stream_leaf(domain.name))``, weighted as one of ``g``'s own jobs (:meth:`_weight`)."""
        tag = stream_leaf(domain.name)
        self._domains[tag] = domain
        for path, leaf in self._leaves.items():
            if path and path[-1] == tag:
                leaf.domain = domain

    def _run(self, path: GroupPath, delta: int) -> None:
        """Count ``delta`` more running jobs under every prefix of ``path``, tracking caps exceeded."""
        running, caps = self._running, self._caps
        for i in range(len(path) + 1):
            prefix = path[:i]
            before = running.get(prefix, 0)
            running[prefix] = before + delta
            cap = caps.get(prefix)
            if cap is not None:
                self._over += (before + delta > cap) - (before > cap)

    def _count(self, path: GroupPath, delta: int) -> None:
        """Count ``delta`` more jobs (running or waiting) under every prefix of ``path``; note when each idles."""
        now = self.env.now
        for i in range(len(path) + 1):
            prefix = path[:i]
            n = self._jobs.get(prefix, 0) + delta
            self._jobs[prefix] = n
            if n == 0:
                self._idle[prefix] = now

    def _leaf(self, path: GroupPath) -> _Leaf:
        """The leaf holding ``path``'s own jobs, made (with the group's thread count) if it has none."""
        leaf = self._leaves.get(path)
        if leaf is None:
            state = self._groups.get(path)
            leaf = self._leaves[path] = _Leaf(threads=state.spec.threads if state is not None else None,
                                              domain=self._domains.get(path[-1]) if path else None)
        return leaf

    # -- the fluid model -------------------------------------------------------------------

    def _advance(self) -> None:
        """Bring virtual clocks and quota use up to now, at the rates since the last change."""
        now = self.env.now
        dt = now - self._last_s
        if dt > 0:
            if self._slicer is not None:
                self._slicer.advance(dt)
            for path, leaf in self._leaves.items():
                if leaf.rate > 0 and leaf.count:
                    progress = leaf.rate if leaf.domain is None else leaf.progress
                    leaf.vtime_s += progress * dt
                    work = leaf.rate * leaf.count * dt  # background jobs keep cores busy too
                    self.work_done_s += work
                    self._work_by_leaf[path] = self._work_by_leaf.get(path, 0.0) + work
                    if leaf.domain is not None:  # the streams' bytes, in full-speed stream seconds
                        leaf.domain.work_done_s += progress * leaf.count * dt
            for g in self._quota_groups:
                g.used_s += g.rate * dt
        self._last_s = now
        # Late in a long run the clock cannot resolve a tiny residue: a timer for it would fire
        # at the same instant again and again. What is left within a few ticks counts as done.
        tick = 4 * math.ulp(max(now, 1.0))
        for g in self._quota_groups:
            if now >= g.period_end_s - tick:  # a new period: quota refilled
                g.period_end_s = (math.floor(now / g.spec.period_s + 1e-9) + 1) * g.spec.period_s
                g.used_s = 0.0
                g.throttled = False
            assert g.spec.quota_s is not None
            if g.used_s >= g.spec.quota_s - max(_TOL, g.rate * tick):
                g.throttled = True
        emptied = []
        for path, leaf in self._leaves.items():
            slack = max(_TOL, (leaf.rate if leaf.domain is None else leaf.progress) * tick)
            while leaf.heap and leaf.heap[0][0] - leaf.vtime_s <= slack:
                _, _, finished, keep = heapq.heappop(leaf.heap)
                finished.succeed()
                if keep:  # the request's next stage takes this thread at once
                    leaf.kept += 1
                    continue
                self._count(path, -1)
                self._free_thread(path, leaf)
            if leaf.empty:
                emptied.append(path)
        for path in emptied:  # idle leaves cost nothing in later allocations
            del self._leaves[path]

    def _effective(self) -> tuple[float, float]:
        """Cores' worth of capacity for the running jobs, and the most one job can get (SMT).

        Only jobs that can hold a hardware thread count: not those a group's cap holds back (the
        requests queued in a VM beyond its vCPUs, a cpuset's or a thread pool's surplus) nor a
        throttled group's. Counting every submitted job would slow every job on the host as if
        its sibling thread were busy while cores sit idle."""
        n = float(self._running.get((), 0))
        cores = self.capacity
        if self._threads == 1 or n <= cores:
            return cores, 1.0
        if self._over or any(g.throttled for g in self._quota_groups):  # some group holds jobs back
            n = self._runnable()
            if n <= cores:
                return cores, 1.0
        n = min(n, cores * self._threads)
        capacity = cores + self._smt_yield * (n - cores)
        return capacity, capacity / n

    def _allocate(self) -> None:
        """Set each leaf's per-job rate and each quota group's rate, then the streams' progress."""
        self._allocate_rates()
        if self._domains:
            self._stream_progress()

    def _stream_progress(self) -> None:
        """Each stream leaf's progress per job: its rate (the core time it gets) while its
        domain's streams together ask for no more than the domain's full-speed streams; past
        that, every stream of the domain slowed by the same factor, capacity over demand. A
        stream stalled on memory keeps its core: the CPU shares are not changed."""
        demand: dict[str, float] = {}
        for leaf in self._leaves.values():
            if leaf.domain is not None:
                name = leaf.domain.name
                demand[name] = demand.get(name, 0.0) + leaf.rate * leaf.count
        for leaf in self._leaves.values():
            if leaf.domain is not None:
                asked, capacity = demand[leaf.domain.name], leaf.domain.capacity
                leaf.progress = leaf.rate * (capacity / asked) if asked > capacity else leaf.rate

    def _allocate_rates(self) -> None:
        """Set each leaf's per-job rate and each quota group's rate; no water-filling when uncontended."""
        if self._slicer is not None:
            self._allocate_sliced(self._slicer)
            return
        capacity, per_job = self._effective()
        if per_job < 1.0:
            self._allocate_tree(capacity, per_job)
            for g in self._quota_groups:  # a hardware thread's run time is charged, not its work
                g.rate /= per_job
            return
        if not self._over and not self._pinned and not any(g.throttled for g in self._quota_groups):
            # Uncontended: every running job has a server of its own (the water-filling's answer).
            for leaf in self._leaves.values():
                leaf.rate = 1.0 if leaf.count else 0.0
            for path, g in self._quota_paths:
                g.rate = float(self._running.get(path, 0))
            return
        self._allocate_tree(capacity, 1.0)

    def _allocate_sliced(self, slicer: Slicer) -> None:
        """Time slices: each top-level group asks for as many threads as its jobs and caps can
        use, the slicer puts them on slots, and each group's running threads are shared among
        its jobs (water-filled down its subtree). Uncontended (no cap binds, nothing bound or
        throttled), a group asks for its running jobs, and if each then holds a core apiece
        every job runs at a whole core: the water-filling's answer, without the tree."""
        uncontended = not self._over and not self._pinned and not any(g.throttled for g in self._quota_groups)
        root = None if uncontended else self._caps_tree()
        asked = self._slice_asks(slicer.slots, root)
        now = self.env.now
        slicer.demand(now, asked)
        slicer.rotate(now, 4 * math.ulp(max(now, 1.0)))
        held = slicer.held(self._smt_yield)
        if uncontended and all(held.get(k, 0.0) == n for k, (n, _) in asked.items()):
            for leaf in self._leaves.values():
                leaf.rate = 1.0 if leaf.count else 0.0
            for path, g in self._quota_paths:
                g.rate = float(self._running.get(path, 0))
            return
        self._share_slices(root or self._caps_tree(), held, slicer.holding)

    def _slice_asks(self, slots: int, root: _Node | None) -> dict[str, tuple[int, float]]:
        """Each top-level group's (threads asked for, weight), at most ``slots``, ``""`` for the
        station's own jobs; from the caps of ``root`` (the tree of running groups), or with no
        tree (uncontended: no cap binds) from the running jobs themselves."""
        if root is None:
            wanted = {path[0]: (min(n, slots), self._weight(path, self._leaves.get(path)))
                      for path, n in self._running.items() if len(path) == 1 and n > 0}
            own = self._leaves.get(())
        else:
            wanted = {name: (min(math.ceil(child.cap - 1e-9), slots), self._weight((name,), child.leaf))
                      for name, child in root.children.items()}
            own = root.leaf
        if own is not None and own.count:
            wanted[""] = (min(own.count, slots), DEFAULT_WEIGHT * own.count)
        return {k: v for k, v in wanted.items() if v[0] > 0}

    def _share_slices(self, root: _Node, held: dict[str, float], holding: dict[str, int]) -> None:
        """Each top-level group's ``held`` cores shared down its subtree; a quota group charged
        the run time of its group's slots (``holding``), not their work."""
        for g in self._quota_groups:
            g.rate = 0.0
        for name, child in root.children.items():
            self._share(child, (name,), min(held.get(name, 0.0), child.cap))
        for path, g in self._quota_paths:
            if held.get(path[0], 0.0) > 0:
                g.rate *= holding[path[0]] / held[path[0]]
        if root.leaf is not None and root.leaf.count:
            root.leaf.rate = held.get("", 0.0) / root.leaf.count

    def _caps_tree(self) -> _Node:
        """The tree of groups holding running jobs, each node's cap set (a job a server)."""
        root = self._tree()
        self._per_job = 1.0
        self._set_caps(root, ())
        return root

    def _tree(self) -> _Node:
        """The groups that hold running jobs, as a tree of nodes (rates reset to zero)."""
        root = _Node()
        for path, leaf in self._leaves.items():
            leaf.rate = 0.0
            if leaf.count:
                node = root
                for part in path:
                    node = node.children.setdefault(part, _Node())
                node.leaf = leaf
        return root

    def _runnable(self) -> float:
        """How many jobs can run at once: each group's jobs up to its servers, none if throttled."""
        self._per_job = 1.0
        return self._set_caps(self._tree(), ())

    def _allocate_tree(self, capacity: float, per_job: float) -> None:
        """Water-fill ``capacity`` down the group tree, no running job above ``per_job`` of a core."""
        root = self._tree()
        self._per_job = per_job
        self._set_caps(root, ())
        for g in self._quota_groups:
            g.rate = 0.0
        self._share(root, (), capacity)

    def _set_caps(self, node: _Node, path: GroupPath) -> float:
        """Set and return the most servers ``node``'s subtree can use (its jobs, its caps; 0 if throttled)."""
        cap = float(node.leaf.count) * self._per_job if node.leaf is not None else 0.0
        for name, child in node.children.items():
            cap += self._set_caps(child, (*path, name))
        state = self._groups.get(path) if path else None
        if state is not None:
            # k servers are k hardware threads, each at most per_job of a core under SMT
            cap = 0.0 if state.throttled else min(cap, self._servers[path] * self._per_job)
        node.cap = cap
        return cap

    def _share(self, node: _Node, path: GroupPath, capacity: float) -> None:
        """Give ``capacity`` (servers) to the group at ``node``, split among its children and its own jobs."""
        state = self._groups.get(path) if path else None
        if state is not None:
            state.rate = capacity
        names = list(node.children)
        if not path and self._pinned and any(n in self._pinned for n in names):
            rates = self._share_pinned(node, names, capacity)
        else:
            weights = [self._weight((*path, n), node.children[n].leaf) for n in names]
            caps = [node.children[n].cap for n in names]
            leaf = node.leaf
            if leaf is not None:  # a group's own jobs: one child, DEFAULT_WEIGHT and one server each
                weights.append(DEFAULT_WEIGHT * leaf.count)
                caps.append(float(leaf.count) * self._per_job)
            rates = water_fill(capacity, weights, caps)
        for name, rate in zip(names, rates, strict=False):
            self._share(node.children[name], (*path, name), rate)
        if node.leaf is not None and node.leaf.count:
            node.leaf.rate = rates[-1] / node.leaf.count

    def _share_pinned(self, root: _Node, names: list[str], capacity: float) -> list[float]:
        """Rates of the root's children (and, last, its own jobs) when some are bound to cores:
        the weighted max-min fair shares of :mod:`virtsim.sim.affinity`, each core doing
        ``capacity / cores`` (under SMT, the siblings' yield spread over the cores)."""
        weights = [self._weight((n,), root.children[n].leaf) for n in names]
        caps = [root.children[n].cap for n in names]
        cls, masks = _core_classes_of([self._pinned.get(n) for n in names], int(self.capacity))
        if root.leaf is not None:  # the root's own jobs may run anywhere
            weights.append(DEFAULT_WEIGHT * root.leaf.count)
            caps.append(float(root.leaf.count) * self._per_job)
            cls.append(0)
        return list(affinity_shares(np.array(weights), np.array(caps), np.array(cls, np.int64), masks,
                                    capacity / int(self.capacity)))

    def _weight(self, path: GroupPath, leaf: _Leaf | None) -> float:
        """The ``cpu.weight`` of ``path`` (whose own jobs are ``leaf``): its spec's, or
        ``DEFAULT_WEIGHT`` for a group without one; a leaf of streams weighs as its jobs would as
        the parent group's own jobs (a thread streaming memory is one of the group's threads)."""
        if leaf is not None and leaf.count and leaf.domain is not None:
            return DEFAULT_WEIGHT * leaf.count
        state = self._groups.get(path)
        return state.spec.weight if state is not None else DEFAULT_WEIGHT

    def _reschedule(self) -> None:
        """New rates, and a timer at the next completion, quota exhaustion or period end (earlier timers go stale)."""
        self._allocate()
        delay = math.inf
        for leaf in self._leaves.values():
            if leaf.rate > 0 and leaf.heap:
                progress = leaf.rate if leaf.domain is None else leaf.progress
                delay = min(delay, (leaf.heap[0][0] - leaf.vtime_s) / progress)
        now = self.env.now
        for g in self._quota_groups:
            assert g.spec.quota_s is not None
            if g.rate > 0:
                delay = min(delay, (g.spec.quota_s - g.used_s) / g.rate, g.period_end_s - now)
            elif g.throttled:
                delay = min(delay, g.period_end_s - now)
        if self._slicer is not None:
            delay = min(delay, self._slicer.next_slice_end() - now)
        self._version += 1
        if delay < math.inf:
            timer = self.env.timeout(max(delay, 0.0), value=self._version)
            timer.callbacks.append(self._wake)

    def _wake(self, timer: simpy.Event) -> None:
        """A timer fired: advance and reschedule, unless a later change has made the timer stale."""
        if timer.value != self._version:
            return  # superseded by a later change
        self._advance()
        self._reschedule()


class StreamStation(Station):
    """A bandwidth domain (a NUMA node's memory controllers, or all of them) whose bandwidth
    holds ``capacity`` full-speed streams, its streams running on the cores of ``cpu``.

    A stream's work is the seconds it takes at one core's stream bandwidth. It is a job of the
    CPU in its group's thread (the leaf ``(*group, stream_leaf(name))``), so it holds a core and counts
    against its group's vCPUs, cpuset and quota, sharing them with the group's CPU work. Each
    stream progresses at the core share it gets while the domain's streams ask for no more than
    ``capacity`` streams; past that each is slowed by capacity over demand, keeping its core
    (a thread stalled on memory is running, to the scheduler). ``work_done_s`` counts the
    stream seconds served, so utilization is the share of the bandwidth used.

    Not modelled: a group's FIFO threads (an event loop, a pool) do not queue its streams. They
    share the group's servers with its CPU work, so the group does no more work than its threads
    can; but a stream can run beside the thread's CPU work where the real thread would do one,
    then the other.
    """

    def __init__(self, env: simpy.Environment, name: str, capacity: float, cpu: SharedStation) -> None:
        super().__init__(env, name)
        if not (capacity > 0 and math.isfinite(capacity)):
            raise ValueError(f"station {name!r}: a bandwidth domain holds a finite number > 0 of streams, "
                             f"got {capacity}")
        self.capacity = float(capacity)
        self.cpu = cpu
        cpu.add_domain(self)

    @property
    def servers(self) -> float:
        """Full-speed streams the domain's bandwidth holds."""
        return self.capacity

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        """Stream ``work_s`` seconds' worth (at one core's bandwidth) in ``group``'s thread on the CPU."""
        return self.cpu.submit(work_s, (*group, stream_leaf(self.name)))

    def idle_for(self, group: GroupPath = ()) -> float:
        """Seconds since ``group`` last streamed in this domain; ``-inf`` while it does."""
        return self.cpu.idle_for((*group, stream_leaf(self.name)))

    def settle(self) -> None:
        """Account the streams up to now (their CPU's accounting)."""
        self.cpu.settle()


def check_cores(station: str, capacity: float, pinned: Mapping[str, tuple[int, ...] | None]) -> None:
    """``ValueError`` unless every core a group is bound to is one of the station's whole cores."""
    cores = int(capacity)
    if pinned and cores != capacity:
        raise ValueError(f"station {station!r}: groups bound to cores need a whole number of cores, got {capacity}")
    for name, bound in pinned.items():
        if bound and max(bound) >= cores:
            raise ValueError(f"station {station!r}: group {name!r} is bound to core {max(bound)}, "
                             f"but the station has cores 0..{cores - 1}")


def _core_classes_of(bound: list[tuple[int, ...] | None], cores: int) -> tuple[list[int], np.ndarray]:
    """Each group's core class (0: every core, for a free group or one bound to all; then each
    new core set in the groups' order, as the kernel's ``_core_classes`` numbers them) and each
    class's cores as a boolean row."""
    rows = [frozenset(range(cores))]
    cls = []
    for b in bound:
        key = frozenset(range(cores)) if b is None else frozenset(b)
        if key not in rows:
            rows.append(key)
        cls.append(rows.index(key))
    masks = np.zeros((len(rows), cores), np.bool_)
    for j, row in enumerate(rows):
        masks[j, sorted(row)] = True
    return cls, masks
