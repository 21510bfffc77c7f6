"""What the engine runs: stations, and sources of requests that follow routes through them.

This is the contract between the models (which know hardware and layers) and the engines (which
know only stations and work). A *route* is the ordered list of stage slots every request of a
source visits; a *work sampler* draws each request's work at each slot, in seconds. A slot whose
work is zero for a request is not visited by it at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from virtsim.sim.slices import SliceSpec
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = [
    "BatchArrivals",
    "BatchSampler",
    "BatchSamplerFactory",
    "ClosedArrivals",
    "IdleCondition",
    "NoProgressError",
    "OpenArrivals",
    "SamplerFactory",
    "Slot",
    "Source",
    "StationSpec",
    "TraceArrivals",
    "WorkSampler",
    "batch_sampler",
    "changeable_source",
    "check_clients",
    "check_network",
    "check_progress",
    "check_rate",
]

StationKind = Literal["fifo", "delay", "shared", "lock", "stream"]


@dataclass(frozen=True)
class StationSpec:
    """A station to build: its discipline, size and (for shared stations) groups.

    A ``stream`` station is a bandwidth domain (a memory controller, or all of them) whose
    ``servers`` full-speed streams share its bandwidth. A stream is CPU work: it runs on a core
    of the shared station ``cpu`` in its group's thread, so it holds that core (and counts
    against the group's vCPUs, cpuset and quota) for as long as it takes, and the domain
    slows every stream in it when together they ask for more than ``servers``: see
    :class:`~virtsim.sim.stations.StreamStation`.
    """

    name: str
    kind: StationKind
    servers: float = 1.0
    groups: Mapping[GroupPath, GroupSpec] = field(default_factory=dict)
    background: Mapping[GroupPath, int] = field(default_factory=dict)
    threads_per_server: int = 1  # shared stations: hardware threads per core (SMT)
    smt_yield: float = 0.0  # what a core's second thread adds when both run, as a fraction of a core
    cpu: str = ""  # a stream station: the shared station whose cores its streams run on
    slices: SliceSpec | None = None  # a shared station: time slices instead of fluid shares (sim.slices)

    @property
    def capacity(self) -> float:
        """Servers' worth of work it serves per second (``inf`` for a delay); a shared CPU with SMT
        counts a core's further threads as ``smt_yield`` of a core each."""
        if self.kind == "delay":
            return math.inf
        if self.kind == "shared":
            return self.servers * (1 + self.smt_yield * (self.threads_per_server - 1))
        return self.servers

    def __post_init__(self) -> None:
        if self.kind not in ("fifo", "delay", "shared", "lock", "stream"):
            raise ValueError(f"station {self.name!r}: unknown kind {self.kind!r}")
        if (self.kind == "stream") != bool(self.cpu):
            raise ValueError(f"station {self.name!r}: a stream station (and only one) names the cpu its streams run on")
        if self.kind == "stream" and not (self.servers > 0 and math.isfinite(self.servers)):
            raise ValueError(f"station {self.name!r}: a stream station needs a finite capacity > 0 (streams)")
        if self.kind in ("fifo", "lock") and (self.servers < 1 or self.servers != int(self.servers)):
            raise ValueError(f"station {self.name!r}: a {self.kind} needs a whole number of servers")
        if self.kind == "shared" and not self.servers > 0:
            raise ValueError(f"station {self.name!r}: a shared station needs capacity > 0")
        if self.threads_per_server < 1 or not 0 <= self.smt_yield <= 1:
            raise ValueError(f"station {self.name!r}: threads_per_server >= 1 and 0 <= smt_yield <= 1")
        root = (self.groups or {}).get(())
        if root is not None and root.threads is not None:  # review 40 F4: the kernel has no root leaf line
            raise ValueError(f"station {self.name!r}: the station's own jobs (group ()) cannot be a pool of "
                             "threads; give the threads a group of their own")


@dataclass(frozen=True)
class IdleCondition:
    """"Only if ``station`` (its ``group``, on a shared station) has been idle at least ``min_idle_s``."

    A slot with this condition is visited only when it holds at the moment the request reaches
    the slot: a notification is sent only to a back end that is not already busy (virtio's event
    index), an interrupt wakes a vCPU only if it halted, a blocked thread is woken only if it
    was blocked. Under load the condition fails more often, so the cost is paid per batch.
    """

    station: str
    group: GroupPath = ()
    min_idle_s: float = 0.0
    per_client: int = 0  # as Slot.per_client: client c tests (*group, str(c // per_client))

    def __post_init__(self) -> None:
        if not (self.min_idle_s >= 0 and math.isfinite(self.min_idle_s)):
            raise ValueError(f"min_idle_s must be finite and >= 0, got {self.min_idle_s}")
        if self.per_client < 0:
            raise ValueError(f"per_client must be >= 0, got {self.per_client}")


@dataclass(frozen=True)
class Slot:
    """One stage of a route: the station, the layer that added it, the scheduling group.

    ``label`` names the stage where time is attributed (default: the station; a VMM thread's
    work on the CPU is labelled by the thread). ``when_idle``: visited only if that condition
    holds when the request gets here. ``per_client``: closed loops only: client ``c`` uses group
    ``(*group, str(c // per_client))`` (each fio job is its own thread; clients per job =
    ``per_client``). On a lock station, ``action`` is ``"acquire"`` or ``"release"``.
    """

    station: str
    layer: str
    group: GroupPath = ()
    label: str = ""
    when_idle: IdleCondition | None = None
    per_client: int = 0
    action: Literal["", "acquire", "release"] = ""
    shares: tuple[tuple[str, float], ...] = ()  # other layers' fractions of this stage's time

    def __post_init__(self) -> None:
        if not all(0 <= f <= 1 for _, f in self.shares) or sum(f for _, f in self.shares) > 1 + 1e-12:
            raise ValueError(f"shares must be fractions summing to at most 1, got {self.shares}")
        if self.per_client < 0:
            raise ValueError(f"per_client must be >= 0, got {self.per_client}")

    @property
    def where(self) -> str:
        """The name time spent here is attributed to."""
        return self.label or self.station


@dataclass(frozen=True)
class OpenArrivals:
    """Poisson arrivals at ``rate_per_s``."""

    rate_per_s: float

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"arrival rate must be > 0, got {self.rate_per_s}")


MAX_RATE_PER_S = 10_000_000  # as a scenario's open-loop rate: every request is recorded


def check_rate(source: str, rate_per_s: float) -> float:
    """The mean gap (s) of arrivals at ``rate_per_s`` for a rate change of ``source``: inf for 0
    (no arrivals). A ValueError for a rate that is not a number, negative, NaN, infinite or past
    MAX_RATE_PER_S."""
    if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, int | float):
        raise ValueError(f"source {source!r}: a rate is a number of requests per second, got {rate_per_s!r}")
    if not (0 <= rate_per_s <= MAX_RATE_PER_S):
        raise ValueError(f"source {source!r}: a rate is a finite number of requests per second >= 0 (0 stops "
                         f"the arrivals) and at most {MAX_RATE_PER_S:,.0f} (the requests are kept in memory), "
                         f"got {rate_per_s}")
    return math.inf if rate_per_s == 0 else 1.0 / rate_per_s


def changeable_source(sources: Sequence[Source], name: str, kind: type[OpenArrivals] | type[ClosedArrivals]) -> int:
    """The index of source ``name`` in ``sources`` for a change mid-run of its rate (``kind``
    OpenArrivals) or its clients (ClosedArrivals); a ValueError naming the sources, or saying
    which change the source takes instead."""
    index = {src.name: i for i, src in enumerate(sources)}
    if name not in index:
        raise ValueError(f"no source {name!r}; the run's sources are {sorted(index)}")
    if not isinstance(sources[index[name]].arrivals, kind):
        raise ValueError(f"source {name!r} is not open-loop (a rate); only an open-loop source's rate can change"
                         if kind is OpenArrivals else
                         f"source {name!r} is not closed-loop (clients); only a closed-loop source's clients can "
                         "change (an open-loop source's rate can)")
    return index[name]


def check_clients(source: str, clients: int, declared: int) -> int:
    """``clients`` for a change of closed-loop ``source``'s active clients: a whole number from 0
    (all stop) to the ``declared`` clients it started with (their threads, groups and random
    streams are made when the run starts); a ValueError otherwise."""
    if isinstance(clients, bool) or not isinstance(clients, int | np.integer) or not 0 <= clients <= declared:
        raise ValueError(f"source {source!r}: clients is a whole number from 0 (all stop) to {declared} (the "
                         f"clients the scenario gives it; declare more there to run more), got {clients!r}")
    return int(clients)


@dataclass(frozen=True)
class ClosedArrivals:
    """``clients`` clients, each issuing a request, waiting for it, thinking, and again.

    Think times are exponential with mean ``think_s`` (zero: the next request goes at once).
    """

    clients: int
    think_s: float = 0.0

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"clients must be >= 1, got {self.clients}")
        if self.think_s < 0:
            raise ValueError(f"think_s must be >= 0, got {self.think_s}")


@dataclass(frozen=True)
class BatchArrivals:
    """``count`` requests all at ``at_s`` (a boot storm: every guest starts at once)."""

    count: int
    at_s: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.at_s < 0:
            raise ValueError(f"a batch needs count >= 1 and at_s >= 0, got {self.count}, {self.at_s}")


@dataclass(frozen=True)
class TraceArrivals:
    """Requests at the given times, in seconds (a replayed trace, or a hand-made timeline)."""

    times_s: tuple[float, ...]

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, dtype=float)
        if t.size == 0 or not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) < 0):
            raise ValueError("a trace needs at least one finite time >= 0, in increasing order")


Arrivals = OpenArrivals | ClosedArrivals | BatchArrivals | TraceArrivals


WorkSampler = Callable[[int], np.ndarray]
"""Draws the work of the next ``n`` requests: an array of shape (n, len(route)), seconds, >= 0.

Draws must be sequential, so that two calls for n give the same numbers as one call for 2n: the
DES engine samples in blocks and the vector engine all at once.
"""

SamplerFactory = Callable[[np.random.SeedSequence], WorkSampler]
"""Makes a source's work sampler from the seed sequence of its stream (it may spawn children)."""

BatchSampler = Callable[[Sequence[int]], list[np.ndarray]]
"""Draws the next ``counts[c]`` requests' work for each of several clients in one call: element c
is what client c's own :data:`WorkSampler` would return for ``counts[c]`` (the same numbers)."""

BatchSamplerFactory = Callable[[Sequence[np.random.SeedSequence]], BatchSampler]
"""Makes one :data:`BatchSampler` for the clients whose streams' seed sequences are given."""


@dataclass(frozen=True)
class Source:
    """A stream of requests (one guest's workload) and the route they follow."""

    name: str
    route: tuple[Slot, ...]
    arrivals: Arrivals
    make_sampler: SamplerFactory
    # sources of one family draw their work alike (the guests of one entry: one stack, one
    # workload); "" for none: each source is its own
    family: str = ""
    # draws several closed clients' work in one call (same numbers as make_sampler's, per client);
    # None: :func:`batch_sampler` calls each client's own sampler
    make_samplers: BatchSamplerFactory | None = None

    @property
    def stations(self) -> tuple[str, ...]:
        """The station of each slot of the route, in order."""
        return tuple(slot.station for slot in self.route)

    @property
    def shares(self) -> tuple[tuple[tuple[str, float], ...], ...]:
        """Per slot, the fractions of its time that belong to other layers (see :attr:`Slot.shares`)."""
        return tuple(slot.shares for slot in self.route)

    @property
    def places(self) -> tuple[str, ...]:
        """Where each stage's time is attributed (:attr:`Slot.where`)."""
        return tuple(slot.where for slot in self.route)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layer each slot's time is charged to, in order."""
        return tuple(slot.layer for slot in self.route)


def batch_sampler(source: Source, seeds: Sequence[np.random.SeedSequence]) -> BatchSampler:
    """One sampler for the clients of ``source`` whose stream seeds are ``seeds``: the source's own
    batch sampler, or one that calls each client's sampler in turn."""
    if source.make_samplers is not None:
        return source.make_samplers(seeds)
    samplers = [source.make_sampler(seed) for seed in seeds]
    return lambda counts: [sampler(n) for sampler, n in zip(samplers, counts, strict=True)]


def check_network(stations: Sequence[StationSpec], sources: Sequence[Source]) -> None:
    """Refuse what no engine can run: repeated names, unknown stations, lock slots misused."""
    names = [s.name for s in stations]
    if len(set(names)) != len(names):
        raise ValueError(f"station names must be unique, got {names}")
    source_names = [s.name for s in sources]
    if len(set(source_names)) != len(source_names):
        raise ValueError(f"source names must be unique, got {source_names}")
    kinds = {s.name: s.kind for s in stations}
    for spec in stations:
        if spec.kind == "stream" and kinds.get(spec.cpu) != "shared":
            raise ValueError(f"stream station {spec.name!r} runs on {spec.cpu!r}, which is no shared station here")
    for source in sources:
        used = {*source.stations, *(s.when_idle.station for s in source.route if s.when_idle is not None)}
        missing = sorted(used - set(kinds))
        if missing:
            raise ValueError(f"source {source.name!r} routes through unknown stations {missing}")
        for slot in source.route:
            if slot.action and kinds[slot.station] != "lock":
                raise ValueError(f"source {source.name!r}: {slot.action} at {slot.station!r}, which is not a lock")
            if not slot.action and kinds[slot.station] == "lock":
                raise ValueError(f"source {source.name!r}: work at lock {slot.station!r}; a lock slot must "
                                 "acquire or release")
    check_progress(sources)


class NoProgressError(ValueError):
    """A closed loop that would make requests without end at one instant; ``source`` names it."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source

    def __reduce__(self) -> tuple[type[NoProgressError], tuple[str, str]]:
        """Pickled with both arguments (a worker process's error reaches its parent whole)."""
        return NoProgressError, (self.source, str(self))


PROGRESS_SAMPLES = 1024  # requests sampled per closed loop with no think time, for check_progress


def check_progress(sources: Sequence[Source]) -> None:
    """Refuse a closed loop with no think time whose requests have no work: each finishes at the
    instant it starts and the client makes the next, so simulated time never moves and the run
    fills memory with requests (review 7 B1). Judged on PROGRESS_SAMPLES sampled requests, once
    per family of sources that draw alike."""
    from virtsim.sim.rng import stream_seed

    seen: set[str] = set()
    for source in sources:
        arrivals = source.arrivals
        if not isinstance(arrivals, ClosedArrivals) or arrivals.think_s > 0:
            continue
        family = source.family or f"source:{source.name}"
        if family in seen:
            continue
        seen.add(family)
        timed = [k for k, slot in enumerate(source.route) if not slot.action]  # taking a lock takes no time
        # 64 requests first: nearly every loop has work in them, and a sample's first requests are
        # the same however many are drawn, so only a loop without work in them is sampled in full
        if not any(np.any(np.asarray(source.make_sampler(stream_seed(0, 0, "progress", source.name))(n))[:, timed] > 0)
                   for n in (64, PROGRESS_SAMPLES)):
            raise NoProgressError(source.name, f"source {source.name!r}: a closed loop with no think time whose "
                                  f"requests have no work ({PROGRESS_SAMPLES:,} sampled) makes requests without end "
                                  "at one instant; give its clients a think time or its requests some work (cycles, "
                                  "bytes, a delay)")
