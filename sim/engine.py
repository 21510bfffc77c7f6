"""The discrete-event engine: builds stations, runs sources through them with SimPy.

:func:`simulate` runs one replication. It knows nothing of hardware or layers: only stations,
routes of slots, and work in seconds (see :mod:`virtsim.sim.routes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from virtsim.sim.control import MAX_RECORD_BYTES, RunControl, RunTooLarge, SteppedRun
from virtsim.sim.records import RequestLog
from virtsim.sim.rng import stream, stream_seed
from virtsim.sim.routes import (
    BatchArrivals,
    ClosedArrivals,
    OpenArrivals,
    Source,
    StationSpec,
    TraceArrivals,
    WorkSampler,
    changeable_source,
    check_clients,
    check_network,
    check_rate,
)
from virtsim.sim.stations import DelayStation, FifoStation, LockStation, SharedStation, Station, StreamStation

__all__ = ["SAMPLE_BLOCK", "DesRun", "RunResult", "build_station", "build_stations", "simulate"]

SAMPLE_BLOCK = 1024
"""Requests a source samples at a time (the vector engine draws the same blocks)."""
# A closed client samples 16 requests first, then twice as many each time up to SAMPLE_BLOCK: a short
# run of many clients with long routes (oltp: 112 demands a transaction) would otherwise spend
# its time sampling requests it never makes. The samplers give the same numbers in any blocks.
_FIRST_BLOCK_CLOSED = 16


@dataclass
class RunResult:
    """What one replication produced: a log per source and each station's utilization."""

    logs: dict[str, RequestLog]
    utilization: dict[str, float]  # busy fraction of capacity over the whole run
    replication: int


def build_stations(env: simpy.Environment, specs: Sequence[StationSpec]) -> dict[str, Station]:
    """Instantiate the stations ``specs`` describe, by name in their order (a stream station
    after the CPU it runs on, whatever the order given)."""
    built = {spec.name: build_station(env, spec) for spec in specs if spec.kind != "stream"}
    for spec in specs:
        if spec.kind == "stream":
            cpu = built.get(spec.cpu)
            if not isinstance(cpu, SharedStation):
                raise ValueError(f"stream station {spec.name!r} runs on {spec.cpu!r}, which is no shared station here")
            built[spec.name] = StreamStation(env, spec.name, spec.servers, cpu)
    return {spec.name: built[spec.name] for spec in specs}


def build_station(env: simpy.Environment, spec: StationSpec) -> Station:
    """Instantiate the station a spec describes (a stream station needs its CPU: :func:`build_stations`)."""
    if spec.kind == "stream":
        raise ValueError(f"stream station {spec.name!r} is built with its CPU (build_stations)")
    if spec.kind == "fifo":
        return FifoStation(env, spec.name, int(spec.servers))
    if spec.kind == "delay":
        return DelayStation(env, spec.name)
    if spec.kind == "lock":
        return LockStation(env, spec.name, int(spec.servers))
    return SharedStation(env, spec.name, spec.servers, spec.groups, spec.background, spec.threads_per_server,
                         spec.smt_yield, spec.slices)


_SUBMIT, _ACQUIRE, _RELEASE = 0, 1, 2


def _steps(stations: dict[str, Station], source: Source, client: int) -> list[tuple]:
    """Each slot as (what, station, group, condition) for one client of ``source``."""
    steps = []
    for slot in source.route:
        station = stations[slot.station]
        group = slot.group
        if slot.per_client:
            group = (*group, str(client // slot.per_client))
        cond = None
        if slot.when_idle is not None:
            c = slot.when_idle
            target = (*c.group, str(client // c.per_client)) if c.per_client else c.group
            cond = (stations[c.station].idle_for, target, c.min_idle_s)
        what = {"": _SUBMIT, "acquire": _ACQUIRE, "release": _RELEASE}[slot.action]
        steps.append((what, station, group, cond))
    return steps


def _keeps_thread(steps: Sequence[tuple], work: np.ndarray, k: int) -> bool:
    """Whether a request at step ``k`` (a submit to a group of threads of a shared station)
    keeps its thread for its next slot with work: a submit to the same station and group. Such
    stages run in one pass of one thread (a packet's receive and the bridge hook or the IPI its
    softirq sends), not one turn in the group's line each. If that slot's idle condition does
    not hold when it comes, the slot after it may take the thread on, else it is given up."""
    what, station, group, _ = steps[k]
    for j in range(k + 1, len(steps)):
        if float(work[j]) > 0.0:
            n_what, n_station, n_group, _ = steps[j]
            return n_what == what and n_station is station and n_group == group
    return False


def _each(draw: Callable[[], np.ndarray]) -> Iterator[Any]:
    """The items of ``draw()``, then of ``draw()`` again, and so on (gaps or work rows in blocks)."""
    while True:
        yield from draw()


@dataclass
class _OpenSchedule:
    """An open source's arrivals as :meth:`DesRun.set_rate` changes them (the kernel's K_SCALE,
    K_NEXT): unit exponential gaps times the mean gap (s; inf: stopped), the next arrival (s)."""

    units: Iterator[float]
    mean_gap_s: float
    next_s: float = math.inf
    process: simpy.Process | None = None
    started: bool = False  # the process has drawn its first gap (a change before only sets the mean)


@dataclass
class _ClientSwitch:
    """One closed client's on/off switch (the kernel's SM_PAUSE, SM_IDLE): ``paused`` stops it
    before its next think time; ``waiting`` is the event it then waits on until taken up again."""

    paused: bool = False
    waiting: simpy.Event | None = None


class _Run:
    """The SimPy environment and stations of one replication, and the processes that feed them."""
    def __init__(self, stations: Sequence[StationSpec], control: RunControl, replication: int) -> None:
        self.env = simpy.Environment()
        self.control = control
        self.replication = replication
        self.stations = build_stations(self.env, stations)
        self.open: dict[str, _OpenSchedule] = {}
        self.clients: dict[str, list[_ClientSwitch]] = {}
        self.logs: list[RequestLog] = []

    def _budget(self, log: RequestLog, extra_rows: int) -> None:
        """Refuse ``log``'s growth by ``extra_rows`` if every log's records would then pass
        :data:`MAX_RECORD_BYTES` (the kernel's budget, over the same records)."""
        held = sum(other.capacity * other.row_bytes for other in self.logs) + extra_rows * log.row_bytes
        if held > MAX_RECORD_BYTES:
            rows = sum(other.capacity for other in self.logs) + extra_rows
            raise RunTooLarge.at(sum(other.n for other in self.logs), float(self.env.now),
                                 self.control.duration_s, rows, held // rows)

    def start(self, source: Source) -> RequestLog:
        """Start the processes that make ``source``'s requests; returns the log they fill."""
        expected = _expected_requests(source, self.control.duration_s)
        log = RequestLog.empty(source.places, source.layers, expected, source.shares)
        log.on_grow = self._budget
        self.logs.append(log)
        submits = _steps(self.stations, source, 0)
        seed, rep = self.control.seed, self.replication
        if isinstance(source.arrivals, TraceArrivals):
            self.env.process(self._trace(source.arrivals, log, submits,
                                         source.make_sampler(stream_seed(seed, rep, source.name, "work"))))
        elif isinstance(source.arrivals, BatchArrivals):
            self.env.process(self._batch(source.arrivals, log, submits,
                                         source.make_sampler(stream_seed(seed, rep, source.name, "work"))))
        elif isinstance(source.arrivals, OpenArrivals):
            rng = stream(seed, rep, source.name, "arrivals")
            schedule = self.open[source.name] = _OpenSchedule(_each(lambda: rng.standard_exponential(SAMPLE_BLOCK)),
                                                              1.0 / source.arrivals.rate_per_s)
            schedule.process = self.env.process(
                self._open(schedule, log, submits, source.make_sampler(stream_seed(seed, rep, source.name, "work"))))
        else:
            per_client = any(slot.per_client or (slot.when_idle is not None and slot.when_idle.per_client)
                             for slot in source.route)
            switches = self.clients[source.name] = [_ClientSwitch() for _ in range(source.arrivals.clients)]
            for c in range(source.arrivals.clients):
                steps = _steps(self.stations, source, c) if per_client else submits
                self.env.process(
                    self._client(source.arrivals, switches[c], log, steps,
                                 stream(seed, rep, source.name, "think", c),
                                 source.make_sampler(stream_seed(seed, rep, source.name, "work", c)))
                )
        return log

    def _open(self, schedule: _OpenSchedule, log: RequestLog, submits: list, sample_work: WorkSampler) -> Generator:
        """Poisson arrivals, each served in a process of its own, until the run's end. A rate
        change interrupts the wait with the new time to the next arrival (inf: none)."""
        env, end = self.env, self.control.duration_s
        rows = _each(lambda: sample_work(SAMPLE_BLOCK))
        schedule.started = True
        delay = next(schedule.units) * schedule.mean_gap_s
        while True:
            schedule.next_s = env.now + delay
            try:
                yield env.timeout(delay) if delay < math.inf else env.event()  # stopped: until a change
            except simpy.Interrupt as change:
                delay = change.cause if change.cause is not None else math.inf  # set_rate always gives one
                continue
            if env.now >= end:
                return
            env.process(self._serve(log, log.add(env.now), next(rows), submits))
            delay = next(schedule.units) * schedule.mean_gap_s

    def _batch(self, arrivals: BatchArrivals, log: RequestLog, submits: list, sample_work: WorkSampler) -> Generator:
        """``count`` requests, all arriving at ``at_s`` (s)."""
        yield self.env.timeout(arrivals.at_s)
        work = sample_work(arrivals.count)
        for j in range(arrivals.count):
            self.env.process(self._serve(log, log.add(self.env.now), work[j], submits))

    def _trace(self, arrivals: TraceArrivals, log: RequestLog, submits: list, sample_work: WorkSampler) -> Generator:
        """One request at each trace time (s) before the run's end."""
        env, end = self.env, self.control.duration_s
        times = [t for t in arrivals.times_s if t < end]
        work = sample_work(len(times)) if times else None
        for j, t in enumerate(times):
            yield env.timeout(max(t - env.now, 0.0))  # equal times: the clock may round past t
            env.process(self._serve(log, log.add(env.now), work[j], submits))  # type: ignore[index]

    def _client(self, arrivals: ClosedArrivals, switch: _ClientSwitch, log: RequestLog, submits: list,
                think_rng: np.random.Generator, sample_work: WorkSampler) -> Generator:
        """One closed-loop client: think (exponential, mean ``think_s``), make a request, wait for
        it; until the end. Paused, it waits before its next think time until taken up again."""
        env, end = self.env, self.control.duration_s
        block = _FIRST_BLOCK_CLOSED
        while True:
            thinks = think_rng.exponential(arrivals.think_s, block) if arrivals.think_s > 0 else None
            work = sample_work(block)
            for j in range(block):
                while switch.paused:  # again after waking: paused anew at the same instant (review 9)
                    switch.waiting = env.event()
                    yield switch.waiting
                if thinks is not None:
                    yield env.timeout(thinks[j])
                if env.now >= end:
                    return
                yield from self._serve(log, log.add(env.now), work[j], submits)
            block = min(2 * block, SAMPLE_BLOCK)

    def _serve(self, log: RequestLog, i: int, work: np.ndarray, steps: list) -> Generator:
        """Take request ``i`` through its route, recording the time (s) spent at each slot and its finish time.

        A slot with no work, or whose idle condition does not hold, is skipped and records nothing.
        Consecutive work on one group of threads is one pass of a thread (:func:`_keeps_thread`).
        """
        env = self.env
        kept = False  # this request holds a thread of the group its next slot with work runs on
        for k, (what, station, group, cond) in enumerate(steps):
            w = float(work[k])
            if not w > 0.0:
                continue
            if cond is not None and cond[0](cond[1]) < cond[2]:
                if kept and not _keeps_thread(steps, work, k):  # no later stage of this pass either
                    station.unkeep(group)
                    kept = False
                continue
            t0 = env.now
            if what == _SUBMIT and isinstance(station, SharedStation):
                keep = station.has_threads(group) and _keeps_thread(steps, work, k)
                yield station.submit(w, group, keep=keep, kept=kept)
                kept = keep
            elif what == _SUBMIT:
                yield station.submit(w, group)
            elif what == _ACQUIRE:
                yield station.acquire()
            else:
                station.release()
            log.stage_s[i, k] = env.now - t0
        log.finish_s[i] = env.now


_PREALLOCATE_MAX = 1 << 16  # requests a log holds before it first grows: memory follows the requests made


def _expected_requests(source: Source, duration_s: float) -> int:
    """How many requests to preallocate for ``source`` in a run of ``duration_s`` seconds (the log grows past it)."""
    if isinstance(source.arrivals, OpenArrivals):
        return min(int(source.arrivals.rate_per_s * duration_s * 1.1) + 64, _PREALLOCATE_MAX)
    if isinstance(source.arrivals, BatchArrivals):
        return source.arrivals.count
    if isinstance(source.arrivals, TraceArrivals):
        return len(source.arrivals.times_s)
    return 1024


class DesRun(SteppedRun):
    """One replication on the DES, advanced with :meth:`step` (the kernel's :class:`KernelRun` twin).

    ``DesRun(stations, sources, control, replication).step(control.duration_s)`` followed by
    :meth:`result` is :func:`simulate`.
    """

    def __init__(self, stations: Sequence[StationSpec], sources: Sequence[Source], control: RunControl,
                 replication: int = 0) -> None:
        check_network(stations, sources)
        self.control = control
        self._run = _Run(stations, control, replication)
        self._sources = list(sources)
        self._logs = {source.name: self._run.start(source) for source in sources}
        self._at_warmup: dict[str, float] | None = None  # work served by the end of the warm-up

    @property
    def now_s(self) -> float:
        """Simulated time reached, in seconds."""
        return float(self._run.env.now)

    def _advance(self, until_s: float) -> None:
        """Process every event before ``until_s``; the clock is then exactly ``until_s`` (SimPy's
        ``run(until=)`` would stop at ``now + (until - now)``, which can round past it and take
        an event at ``until_s`` early)."""
        env = self._run.env
        while env.peek() < until_s:
            env.step()
        if until_s > env.now:
            env._now = until_s  # SimPy has no public way to move an idle clock

    def _served(self) -> dict[str, float]:
        """Work served so far (s), per station with a capacity and per labelled group."""
        run = self._run
        for station in run.stations.values():
            if isinstance(station, SharedStation | LockStation | StreamStation):
                station.settle()
        served = {name: station.work_done_s - (station.work_in_service_s() if isinstance(station, FifoStation) else 0.0)
                  for name, station in run.stations.items() if np.isfinite(station.servers)}
        for station in run.stations.values():
            if isinstance(station, SharedStation):
                for label, path in station.labelled_groups().items():
                    served[label] = station.group_work_s(path)
        return served

    def set_quota(self, station: str, group: tuple[str, ...], quota_s: float, period_s: float) -> None:
        """Change a group's ``cpu.max`` from now on (see :meth:`SharedStation.set_quota`)."""
        target = self._run.stations.get(station)
        if not isinstance(target, SharedStation):
            raise ValueError(f"station {station!r} is not a shared CPU; cpu.max belongs to a CPU's group")
        target.set_quota(group, quota_s, period_s)

    def set_rate(self, source: str, rate_per_s: float) -> None:
        """Open-loop ``source``'s arrival rate (1/s) from now on; 0 stops its arrivals (those in
        flight finish), a positive rate after 0 starts them again. The time left to the pending
        arrival is scaled by old / new rate (exponential gaps are memoryless); after a stop, a
        fresh gap from now. As the kernel's :meth:`~virtsim.sim.kernel.KernelRun.set_rate`."""
        changeable_source(self._sources, source, OpenArrivals)
        schedule = self._run.open[source]
        mean = check_rate(source, rate_per_s)
        now, old = self._run.env.now, schedule.mean_gap_s
        schedule.mean_gap_s = mean
        if not schedule.started:
            return  # its first gap, drawn when it starts, follows the new mean
        if mean == math.inf:
            delay = math.inf
        elif old == math.inf:
            delay = next(schedule.units) * mean
        else:
            delay = (schedule.next_s - now) / old * mean
        schedule.next_s = now + delay
        if schedule.process is not None and schedule.process.is_alive:
            schedule.process.interrupt(delay)

    def set_clients(self, source: str, clients: int) -> None:
        """Closed-loop ``source``'s active clients from now on: clients 0..clients-1 run, the rest
        stop after the request they are thinking towards or waiting for; a stopped client taken
        up again starts with a think time. As the kernel's
        :meth:`~virtsim.sim.kernel.KernelRun.set_clients`."""
        changeable_source(self._sources, source, ClosedArrivals)
        switches = self._run.clients[source]
        check_clients(source, clients, len(switches))
        for c, switch in enumerate(switches):
            switch.paused = c >= clients
            if not switch.paused and switch.waiting is not None:
                waiting, switch.waiting = switch.waiting, None
                waiting.succeed()

    def logs(self) -> dict[str, RequestLog]:
        """Each source's requests so far (unfinished ones have a NaN finish time)."""
        return {k: v.trimmed() for k, v in self._logs.items()}

    def result(self) -> RunResult:
        """Logs and utilization (after the last step)."""
        run = self._run
        window = self.control.duration_s - self.control.warmup_s
        served, before = self._served(), self._at_warmup or {}
        utilization = {name: (served[name] - before.get(name, 0.0)) / (station.servers * window)
                       for name, station in run.stations.items() if np.isfinite(station.servers)}
        for station in run.stations.values():
            if isinstance(station, SharedStation):
                for label, path in station.labelled_groups().items():
                    spec = station.group_spec(path)
                    servers = spec.servers if spec is not None and math.isfinite(spec.servers) else station.servers
                    utilization[label] = (served[label] - before.get(label, 0.0)) / (servers * window)
        return RunResult({k: v.trimmed() for k, v in self._logs.items()}, utilization, run.replication)


def simulate(stations: Sequence[StationSpec], sources: Sequence[Source], control: RunControl,
             replication: int = 0) -> RunResult:
    """Run one replication of ``sources`` through ``stations`` until ``control.duration_s``.

    Random numbers come from streams keyed by (seed, replication, source name, purpose), so the
    result depends on nothing but these arguments.
    """
    run = DesRun(stations, sources, control, replication)
    run.step(control.duration_s)
    return run.result()
