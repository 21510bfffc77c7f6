"""The vector engine: every request's times through FIFO stations, computed with numpy.

It accepts open (Poisson) sources whose routes visit FIFO and delay stations only, each station
at most once per route, with the union of the routes acyclic (a feed-forward network). Stations
are then processed in topological order; at each one, all visits are merged in order of arrival
and served by the FIFO recursion:

- one server: Lindley's recursion in closed form, ``D = C + maximum.accumulate(A - (C - S))``
  with ``C = cumsum(S)``;
- ``c`` servers: a tight loop over a heap of the servers' free times (no exact vector form);
- a delay: ``D = A + S``.

A stage with zero work is not visited, as in the DES engine. Requests that reach a FIFO station
at the very same instant (possible with deterministic work) are refused with
:class:`SimultaneousArrivals`: their order is the event loop's, which only the DES knows.
Arrivals and work are drawn from the same keyed streams in the same blocks as :mod:`virtsim.sim.engine`,
so on the same seed both engines give the same requests, and the same times to rounding.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from virtsim.sim.control import RunControl
from virtsim.sim.engine import SAMPLE_BLOCK, RunResult
from virtsim.sim.records import RequestLog
from virtsim.sim.rng import stream, stream_seed
from virtsim.sim.routes import BatchArrivals, ClosedArrivals, OpenArrivals, Source, StationSpec

__all__ = ["SimultaneousArrivals", "fifo_departures", "simulate_vector", "vector_rejects"]


def vector_rejects(stations: Sequence[StationSpec], sources: Sequence[Source]) -> str | None:
    """Why the vector engine cannot run these (``None`` if it can)."""
    kinds = {s.name: s.kind for s in stations}
    for source in sources:
        if not isinstance(source.arrivals, OpenArrivals):
            what = {ClosedArrivals: "a closed loop", BatchArrivals: "a batch"}.get(type(source.arrivals), "a trace")
            return f"source {source.name!r} is {what} (the vector engine takes open arrivals only)"
        seen: set[str] = set()
        for slot in source.route:
            if slot.when_idle is not None:
                return f"source {source.name!r} has a cost paid only when a station is idle (the DES tracks that)"
            if slot.per_client or slot.action:
                return f"source {source.name!r} holds a lock or splits its clients (the DES runs those)"
            kind = kinds.get(slot.station)
            if kind is None:
                return f"source {source.name!r} visits unknown station {slot.station!r}"
            if kind in ("shared", "stream"):
                return (f"station {slot.station!r} is processor-sharing (a CPU, memory streams on its cores, or a "
                        "device's transfers with op_bandwidth; the vector engine serves FIFO and delay only)")
            if slot.station in seen and kind == "fifo":
                return f"source {source.name!r} visits FIFO station {slot.station!r} twice (a feedback loop)"
            seen.add(slot.station)
    if _topological_order(stations, sources) is None:
        return "the routes together form a cycle between FIFO stations"
    for spec in stations:
        if spec.kind == "shared" and not _plain_background(spec):
            return (f"station {spec.name!r} runs background jobs that contend or are capped "
                    "(the DES shares the processor among them)")
    return None


def _plain_background(spec: StationSpec) -> bool:
    """Whether a shared station's background jobs each run a whole core all the time: no more of
    them than cores, and no group along their paths caps, pins, pools or throttles them."""
    if sum(spec.background.values()) > spec.servers:
        return False
    for path in spec.background:
        for i in range(1, len(path) + 1):
            g = spec.groups.get(path[:i])
            if g is not None and (g.quota_s is not None or g.cores is not None or g.threads is not None
                                  or g.max_servers < spec.background[path]):
                return False
    return True


def _shared_utilization(spec: StationSpec) -> dict[str, float]:
    """Utilization of a shared station no request visits (the vector engine runs no processor
    sharing), as the DES reports it: its background jobs, a core each, over its servers; and each
    labelled group's share of them over the group's servers (or the station's)."""
    capacity = spec.capacity  # as the DES's station
    out = {spec.name: sum(spec.background.values()) / capacity}
    for path, g in spec.groups.items():
        if g.label:
            jobs = sum(n for p, n in spec.background.items() if p[:len(path)] == path)
            out[g.label] = jobs / (g.servers if math.isfinite(g.servers) else capacity)
    return out


def _topological_order(stations: Sequence[StationSpec], sources: Sequence[Source]) -> list[str] | None:
    """Stations ordered so every route goes forward; delay stations are per-visit, never a cycle."""
    fifo = {s.name for s in stations if s.kind == "fifo"}
    edges: dict[str, set[str]] = {name: set() for name in fifo}
    for source in sources:
        path = [slot.station for slot in source.route if slot.station in fifo]
        for a, b in pairwise(path):
            edges[a].add(b)
    indegree = {n: 0 for n in fifo}
    for targets in edges.values():
        for b in targets:
            indegree[b] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for b in sorted(edges[n]):
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    return order if len(order) == len(fifo) else None


class SimultaneousArrivals(ValueError):
    """Requests reach a FIFO station at the same instant: only the event loop knows their order."""


def _refuse_ties(sorted_arrival: np.ndarray, station: str) -> None:
    """The DES serves simultaneous arrivals in the order their events were scheduled, within the
    same instant; that order is the event loop's own, so the vector engine refuses such runs
    rather than guess (continuous work distributions make ties a probability-zero event)."""
    # Within rounding, not only equal: the engines add the same times in other orders (a FIFO's
    # cumulative sum, the DES's event by event), so a tie can come out a few ulps apart, in
    # opposite orders in the two (hypothesis found one: 0.6 s of constant work after a delay of
    # 0.6 s, and 0.6 s of queueing)
    ties = np.flatnonzero(np.isclose(sorted_arrival[1:], sorted_arrival[:-1], rtol=1e-11, atol=0.0))
    if ties.size:
        raise SimultaneousArrivals(
            f"{ties.size} pairs of requests reach FIFO station {station!r} at the same instant "
            f"(first at t = {sorted_arrival[ties[0]]:.9g} s), as deterministic work can make them; "
            "the vector engine cannot order them as the DES does: use engine = \"des\" or \"auto\""
        )


def fifo_departures(arrival_s: np.ndarray, work_s: np.ndarray, servers: int) -> np.ndarray:
    """Departure times of FIFO visits given in order of arrival."""
    if arrival_s.size == 0:
        return arrival_s.copy()
    if servers == 1:
        c = np.cumsum(work_s)
        return c + np.maximum.accumulate(arrival_s - (c - work_s))
    free = [0.0] * servers
    out = np.empty_like(arrival_s)
    for i, (a, w) in enumerate(zip(arrival_s.tolist(), work_s.tolist(), strict=True)):
        start = max(a, heapq.heappop(free))
        out[i] = start + w
        heapq.heappush(free, out[i])
    return out


def _draw(source: Source, control: RunControl, replication: int) -> tuple[np.ndarray, np.ndarray]:
    """The arrivals before the end and their work, drawn exactly as the DES engine draws them."""
    assert isinstance(source.arrivals, OpenArrivals)
    arrival_rng = stream(control.seed, replication, source.name, "arrivals")
    sample = source.make_sampler(stream_seed(control.seed, replication, source.name, "work"))
    gaps, works, total = [], [], 0.0
    mean_gap = 1.0 / source.arrivals.rate_per_s
    while total < control.duration_s:
        block = arrival_rng.exponential(mean_gap, SAMPLE_BLOCK)
        gaps.append(block)
        works.append(sample(SAMPLE_BLOCK))
        total += float(block.sum())
    arrivals = np.cumsum(np.concatenate(gaps))  # sequential sums, as the DES clock adds delays
    n = int(np.searchsorted(arrivals, control.duration_s, side="left"))
    return arrivals[:n], np.concatenate(works)[:n]


def simulate_vector(stations: Sequence[StationSpec], sources: Sequence[Source], control: RunControl,
                    replication: int = 0) -> RunResult:
    """One replication, as :func:`virtsim.sim.engine.simulate` would give it, without an event loop."""
    reason = vector_rejects(stations, sources)
    if reason is not None:
        raise ValueError(f"the vector engine cannot run this: {reason}")
    run = _VectorRun(stations, sources, control, replication)
    for src in sources:
        run.advance(src)
    for station in _topological_order(stations, sources) or []:
        run.serve(station)
    return run.result()


class _VectorRun:
    """The arrays of one vector replication: ``times[name][:, k]`` is when each request of source
    ``name`` reaches stage k (column K: when it finishes); routes are walked stage by stage, a
    FIFO stage waiting until its station's turn in topological order comes."""

    def __init__(self, stations: Sequence[StationSpec], sources: Sequence[Source], control: RunControl,
                 replication: int) -> None:
        self.specs = {s.name: s for s in stations}
        self.sources = list(sources)
        self.replication = replication
        self.end, self.warmup = control.duration_s, control.warmup_s
        self.drawn = {src.name: _draw(src, control, replication) for src in sources}
        self.times = {}
        for src in sources:
            arrival, _ = self.drawn[src.name]
            t = np.empty((arrival.size, len(src.route) + 1), order="F")  # columns are written whole
            t[:, 0] = arrival
            self.times[src.name] = t
        self.work_done = dict.fromkeys(self.specs, 0.0)
        self.next_stage = {src.name: 0 for src in sources}

    def advance(self, src: Source) -> None:
        """Walk ``src``'s route through delays and unvisited stages up to its next FIFO visit."""
        t, work = self.times[src.name], self.drawn[src.name][1]
        k = self.next_stage[src.name]
        while k < len(src.route):
            spec = self.specs[src.route[k].station]
            w = work[:, k]
            if spec.kind == "fifo" and np.any(w > 0):
                break
            t[:, k + 1] = t[:, k] + (w if spec.kind == "delay" else 0.0)
            self.work_done[spec.name] += float(w[(w > 0) & (t[:, k] < self.end)].sum())
            k += 1
        self.next_stage[src.name] = k

    def serve(self, station: str) -> None:
        """Serve every source's requests waiting at FIFO ``station`` together, in arrival order."""
        parts = []
        for src in self.sources:
            k = self.next_stage[src.name]
            if k >= len(src.route) or src.route[k].station != station:
                continue
            w = self.drawn[src.name][1][:, k]
            visiting = w > 0
            idx = slice(None) if visiting.all() else np.flatnonzero(visiting)
            parts.append((src, k, idx, self.times[src.name][idx, k], w[idx]))
        if not parts:
            return
        arrival = np.concatenate([p[3] for p in parts]) if len(parts) > 1 else parts[0][3]
        work = np.concatenate([p[4] for p in parts]) if len(parts) > 1 else parts[0][4]
        departure = self._departures(station, arrival, work)
        start = departure - work  # work served inside [warm-up, end) only, as the other engines
        served = np.minimum(departure, self.end) - np.maximum(start, self.warmup)
        self.work_done[station] += float(served[served > 0].sum())
        at = 0
        for src, k, idx, part_arrival, _ in parts:
            t = self.times[src.name]
            if not isinstance(idx, slice):
                t[:, k + 1] = t[:, k]  # skipped visits leave when they arrive
            t[idx, k + 1] = departure[at : at + part_arrival.size]
            at += part_arrival.size
            self.next_stage[src.name] = k + 1
            self.advance(src)

    def _departures(self, station: str, arrival: np.ndarray, work: np.ndarray) -> np.ndarray:
        """Departure times from FIFO ``station`` of visits arriving at ``arrival`` with ``work``."""
        servers = int(self.specs[station].servers)
        if arrival.size < 2 or bool(np.all(arrival[1:] > arrival[:-1])):  # already in order
            return fifo_departures(arrival, work, servers)
        sort = np.argsort(arrival, kind="stable")
        _refuse_ties(arrival[sort], station)
        departure = np.empty_like(arrival)
        departure[sort] = fifo_departures(arrival[sort], work[sort], servers)
        return departure

    def result(self) -> RunResult:
        """The logs (stages not over by the end unrecorded) and the utilization over the window."""
        logs = {}
        for src in self.sources:
            t = self.times[src.name]
            stage = np.diff(t, axis=1)
            stage[t[:, 1:] >= self.end] = 0.0  # stages not over by the end are not recorded
            finish = np.where(t[:, -1] < self.end, t[:, -1], np.nan)
            logs[src.name] = RequestLog(src.places, src.layers, t[:, 0].copy(), finish, stage, t.shape[0],
                                        src.shares)
        window = self.end - self.warmup
        utilization = {name: self.work_done[name] / (spec.servers * window) for name, spec in self.specs.items()
                       if spec.kind not in ("delay", "shared")}
        for spec in self.specs.values():
            if spec.kind == "shared":
                utilization.update(_shared_utilization(spec))
        return RunResult(logs, utilization, self.replication)
