"""Stations: the places where requests wait and are served.

A station takes a piece of *work* (seconds of service at one server at full speed) and returns a
SimPy event that fires when the work is done. Three disciplines cover the hardware:

- :class:`FifoStation`: ``servers`` identical servers and one first-come-first-served queue (a
  disk's internal channels, a NIC's transmit queue, a VMM's single I/O thread).
- :class:`DelayStation`: infinitely many servers, so only the work itself is spent (wire latency).
- :class:`SharedStation`: processor sharing of ``capacity`` servers among jobs in a hierarchy of
  groups with weights, caps and bandwidth quotas (CPU cores under the CFS scheduler and cgroups).

Stations are written with event callbacks rather than SimPy processes or resources: a visit costs
one completion event and one timeout, which keeps the engine close to a bare SimPy loop.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import simpy

__all__ = [
    "DEFAULT_WEIGHT",
    "DelayStation",
    "FifoStation",
    "GroupPath",
    "GroupSpec",
    "SharedStation",
    "Station",
    "water_fill",
]

GroupPath = tuple[str, ...]
DEFAULT_WEIGHT = 100.0  # cgroup v2 default cpu.weight; a job inside a group counts like this
_TOL = 1e-12  # seconds of work or quota below which a value is taken as zero


class Station:
    """Base of all stations: a name, and the work served so far (for utilization)."""

    def __init__(self, env: simpy.Environment, name: str) -> None:
        self.env = env
        self.name = name
        self.work_done_s = 0.0

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
        if servers < 1 or int(servers) != servers:
            raise ValueError(f"station {name!r}: servers must be a whole number >= 1, got {servers}")
        self._servers = int(servers)
        self._busy = 0
        self._queue: deque[tuple[simpy.Event, float]] = deque()

    @property
    def servers(self) -> float:
        return float(self._servers)

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        done = simpy.Event(self.env)
        if self._busy < self._servers:
            self._busy += 1
            self._start(done, work_s)
        else:
            self._queue.append((done, work_s))
        return done

    def _start(self, done: simpy.Event, work_s: float) -> None:
        self.work_done_s += work_s
        timer = self.env.timeout(work_s, value=done)
        timer.callbacks.append(self._finish)

    def _finish(self, timer: simpy.Event) -> None:
        timer.value.succeed()  # type: ignore[union-attr]  # the timeout's value is the visit's event
        if self._queue:
            self._start(*self._queue.popleft())
        else:
            self._busy -= 1


class DelayStation(Station):
    """Infinitely many servers: each visit takes exactly its work (a propagation delay)."""

    @property
    def servers(self) -> float:
        return math.inf

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        self.work_done_s += work_s
        return self.env.timeout(work_s)


@dataclass(frozen=True)
class GroupSpec:
    """Scheduling parameters of one group (a cgroup, a VM's vCPUs, a process group).

    ``weight`` is the relative share under contention (cgroup ``cpu.weight``; default 100).
    ``max_servers`` caps the servers the group may use at once (a VM's vCPU count, a cpuset size).
    ``quota_s`` per ``period_s`` is the bandwidth limit of cgroup ``cpu.max``: once the group has
    used ``quota_s`` of service in the current period it is throttled until the period ends.
    Periods start at time zero for every group.
    """

    weight: float = DEFAULT_WEIGHT
    max_servers: float = math.inf
    quota_s: float | None = None
    period_s: float = 0.1

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"group weight must be > 0, got {self.weight}")
        if not self.max_servers > 0:
            raise ValueError(f"group max_servers must be > 0, got {self.max_servers}")
        if self.quota_s is not None and not (self.quota_s > 0 and self.period_s > 0):
            raise ValueError("group quota_s and period_s must both be > 0")


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
    """The jobs of one group. They always share equally, so one virtual clock serves them all:
    ``vtime_s`` is the work each has received since the leaf was made, and a job is done when
    the clock passes its finish tag (work at arrival plus its own work)."""

    heap: list[tuple[float, int, simpy.Event]] = field(default_factory=list)
    background: int = 0
    vtime_s: float = 0.0
    rate: float = 0.0  # per job

    @property
    def count(self) -> int:
        return len(self.heap) + self.background


@dataclass(eq=False)
class _GroupState:
    spec: GroupSpec
    used_s: float = 0.0
    period_end_s: float = 0.0
    throttled: bool = False
    rate: float = 0.0


@dataclass(eq=False)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    leaf: _Leaf | None = None
    cap: float = 0.0


class SharedStation(Station):
    """Weighted processor sharing of ``capacity`` servers, one server at most per job.

    Groups form a tree by their paths (``("vm1",)`` contains ``("vm1", "ctr")``). At every change
    the capacity is split among the root's children by weight (:func:`water_fill`), each group's
    share among its own children the same way (its own jobs counting as one child of weight
    ``DEFAULT_WEIGHT`` per job), and a group's jobs share equally. A group that has used its quota
    in the current period gets nothing until the period ends (CFS bandwidth control as a fluid
    model). Background jobs never finish: they model host processes that always run.
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        capacity: float,
        groups: Mapping[GroupPath, GroupSpec] | None = None,
        background: Mapping[GroupPath, int] | None = None,
    ) -> None:
        super().__init__(env, name)
        if not capacity > 0:
            raise ValueError(f"station {name!r}: capacity must be > 0, got {capacity}")
        self.capacity = float(capacity)
        self._groups = {path: _GroupState(spec) for path, spec in (groups or {}).items()}
        self._quota_groups = [g for g in self._groups.values() if g.spec.quota_s is not None]
        self._leaves: dict[GroupPath, _Leaf] = {}
        self._seq = 0
        self._last_s = env.now
        self._version = 0
        for path, count in (background or {}).items():
            self._leaf(path).background += count
        if self._leaves:
            self._reschedule()

    @property
    def servers(self) -> float:
        return self.capacity

    def submit(self, work_s: float, group: GroupPath = ()) -> simpy.Event:
        self._advance()
        done = simpy.Event(self.env)
        leaf = self._leaf(group)
        self._seq += 1
        heapq.heappush(leaf.heap, (leaf.vtime_s + work_s, self._seq, done))
        self._reschedule()
        return done

    def settle(self) -> None:
        """Account the work done up to now (the engine calls it when a run ends)."""
        self._advance()

    def _leaf(self, path: GroupPath) -> _Leaf:
        leaf = self._leaves.get(path)
        if leaf is None:
            leaf = self._leaves[path] = _Leaf()
        return leaf

    # -- the fluid model -------------------------------------------------------------------

    def _advance(self) -> None:
        """Bring virtual clocks and quota use up to now, at the rates since the last change."""
        now = self.env.now
        dt = now - self._last_s
        if dt > 0:
            for leaf in self._leaves.values():
                if leaf.rate > 0:
                    leaf.vtime_s += leaf.rate * dt
                    self.work_done_s += leaf.rate * len(leaf.heap) * dt
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
        for leaf in self._leaves.values():
            slack = max(_TOL, leaf.rate * tick)
            while leaf.heap and leaf.heap[0][0] - leaf.vtime_s <= slack:
                heapq.heappop(leaf.heap)[2].succeed()

    def _allocate(self) -> None:
        root = _Node()
        for path, leaf in self._leaves.items():
            leaf.rate = 0.0
            if leaf.count:
                node = root
                for part in path:
                    node = node.children.setdefault(part, _Node())
                node.leaf = leaf
        self._set_caps(root, ())
        for g in self._quota_groups:
            g.rate = 0.0
        self._share(root, (), self.capacity)

    def _set_caps(self, node: _Node, path: GroupPath) -> float:
        cap = float(node.leaf.count) if node.leaf is not None else 0.0
        for name, child in node.children.items():
            cap += self._set_caps(child, (*path, name))
        state = self._groups.get(path) if path else None
        if state is not None:
            cap = 0.0 if state.throttled else min(cap, state.spec.max_servers)
        node.cap = cap
        return cap

    def _share(self, node: _Node, path: GroupPath, capacity: float) -> None:
        state = self._groups.get(path) if path else None
        if state is not None:
            state.rate = capacity
        names = list(node.children)
        weights = [self._weight((*path, n)) for n in names]
        caps = [node.children[n].cap for n in names]
        leaf = node.leaf
        if leaf is not None:  # a group's own jobs: one child, DEFAULT_WEIGHT and one server each
            weights.append(DEFAULT_WEIGHT * leaf.count)
            caps.append(float(leaf.count))
        rates = water_fill(capacity, weights, caps)
        for name, rate in zip(names, rates, strict=False):
            self._share(node.children[name], (*path, name), rate)
        if leaf is not None:
            leaf.rate = rates[-1] / leaf.count

    def _weight(self, path: GroupPath) -> float:
        state = self._groups.get(path)
        return state.spec.weight if state is not None else DEFAULT_WEIGHT

    def _reschedule(self) -> None:
        self._allocate()
        delay = math.inf
        for leaf in self._leaves.values():
            if leaf.rate > 0 and leaf.heap:
                delay = min(delay, (leaf.heap[0][0] - leaf.vtime_s) / leaf.rate)
        now = self.env.now
        for g in self._quota_groups:
            assert g.spec.quota_s is not None
            if g.rate > 0:
                delay = min(delay, (g.spec.quota_s - g.used_s) / g.rate, g.period_end_s - now)
            elif g.throttled:
                delay = min(delay, g.period_end_s - now)
        self._version += 1
        if delay < math.inf:
            timer = self.env.timeout(max(delay, 0.0), value=self._version)
            timer.callbacks.append(self._wake)

    def _wake(self, timer: simpy.Event) -> None:
        if timer.value != self._version:
            return  # superseded by a later change
        self._advance()
        self._reschedule()
