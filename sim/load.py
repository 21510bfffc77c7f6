"""Offered load: the work open-loop sources bring each station (and each capped group) per
second, against what it can serve. At 1 or more the station cannot keep up however long the
run: its queue grows without bound, which a short run that starts empty only shows as a high
but finite utilization (a run of 0.9 s at 101.7% offered measured 0.985).

The work per request is the sampler's mean over ``samples`` requests, so the figure carries the
sampling error of that mean (about 1/sqrt(samples) of the work's coefficient of variation). A
stage visited only when a station has been idle (``when_idle``) is counted as always visited:
an upper bound there. A lock (a synchronous VMM thread held through a device access) is busy
for the work its holders do while they hold it, their own queueing for that work aside: a lower
bound there. A memory stream is work at its bandwidth domain and, as its thread holds a core
while it streams, at the CPU it runs on, in its group (at full speed: a lower bound on the core
time where the domain's bandwidth slows it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from virtsim.sim.rng import stream_seed
from virtsim.sim.routes import ClosedArrivals, OpenArrivals, Slot, Source, StationSpec
from virtsim.sim.stations import GroupPath

__all__ = ["attainable_capacity", "closed_loop_requests", "group_runnable", "loaded_keys", "lock_hold_s",
           "offered_load", "overload_backlog"]


def offered_load(stations: Sequence[StationSpec], sources: Sequence[Source], samples: int = 20_000,
                 seed: int = 0, certain: bool = False) -> dict[str, float]:
    """Offered utilization (work per second / capacity) of each station, against what the threads
    that can run there can get (:func:`attainable_capacity`); of each group with a cap
    (``max_servers``, ``cpu.max``, or ``threads`` for a group whose load is all its own jobs) as
    ``"station:a/b"``; and of the cores groups are bound to (cpuset, pin) as
    ``"station:cores=0,1"``; of each lock, the work done while holding it; from the open-loop
    sources only.

    Sources of one ``family`` (the guests of one entry) draw alike: the first one's mean work per
    slot stands for the others'. Each other source is sampled on its own. ``certain``: leave out
    the stages paid only when a station was idle (a lower bound of the load, where the default
    counts them as always paid, an upper bound)."""
    specs = {s.name: s for s in stations}
    work, own, locks = _offered_work(sources, samples, seed, specs, certain)
    trees = _loaded_trees(stations, sources)
    out = {}
    for name, per_second in work.items():
        station, path = _station_and_path(name, specs)
        spec = specs[station]
        if not path:
            runnable = _runnable(spec, trees[station]) if station in trees else math.inf
            out[name] = per_second / attainable_capacity(spec, runnable)
            continue
        cap = _group_cap(spec, tuple(path.split("/")), own.get(name, 0.0) >= per_second)
        if math.isfinite(cap):
            out[name] = per_second / cap
    for station, tree in trees.items():
        out |= _confined_loads(specs[station], tree, work)
    for lock, per_second in locks.items():
        out[lock] = per_second / specs[lock].capacity
    return out


def loaded_keys(stations: Sequence[StationSpec], source: Source) -> set[str]:
    """The keys of :func:`offered_load` that ``source``'s requests load: each station its route
    visits, each group (and enclosing group) its work runs in there, the bound cores its
    top-level group shares, each lock it takes."""
    specs = {s.name: s for s in stations}
    keys: set[str] = set()
    for slot in source.route:
        keys.add(slot.station)
        group = tuple(slot.group)
        keys |= {f"{slot.station}:{'/'.join(group[:i])}" for i in range(1, len(group) + 1)}
        spec = specs.get(slot.station)
        if spec is not None and spec.kind == "shared" and group:
            for shared, paths in _bound_components(spec):
                if group[:1] in paths:
                    keys.add(f"{spec.name}:cores={','.join(map(str, sorted(shared)))}")
    return keys


def overload_backlog(stations: Sequence[StationSpec], sources: Sequence[Source], loads: dict[str, float],
                     duration_s: float) -> tuple[float, str]:
    """Requests an overloaded run leaves queued by ``duration_s`` (about): each open-loop source
    whose requests load a key of ``loads`` (:func:`offered_load`) offered ``rho`` >= 1 has
    ``rate (1 - 1 / rho) duration`` of its requests still waiting at the end; and the most
    overloaded key ("" if none)."""
    over = {k: v for k, v in loads.items() if v >= 1.0}
    if not over:
        return 0.0, ""
    backlog = 0.0
    for source in sources:
        if not isinstance(source.arrivals, OpenArrivals):
            continue
        rho = max((over[k] for k in loaded_keys(stations, source) if k in over), default=0.0)
        if rho >= 1.0:
            backlog += source.arrivals.rate_per_s * (1.0 - 1.0 / rho) * duration_s
    return backlog, max(over, key=lambda k: over[k])


def _station_and_path(key: str, specs: dict[str, StationSpec]) -> tuple[str, str]:
    """A work key split into its station and group path: ``"cpu:g/vcpu"`` is ("cpu", "g/vcpu"),
    ``"io.max:web"`` the station ``io.max:web`` itself (station names hold colons too: a
    throttle's, a bound memory controller's, a lock's), so the station is the name itself or the
    shortest prefix before a colon that names one."""
    if key in specs:
        return key, ""
    for i, char in enumerate(key):
        if char == ":" and key[:i] in specs:
            return key[:i], key[i + 1:]
    raise KeyError(f"work key {key!r} names no station")


def closed_loop_requests(stations: Sequence[StationSpec], sources: Sequence[Source], duration_s: float,
                         samples: int = 1024, seed: int = 0) -> dict[str, float]:
    """An upper bound on the requests each closed-loop source makes in ``duration_s`` seconds,
    from the asymptotic bounds of a closed network: its clients go no faster than one request
    per think time plus the request's mean work, and no station (or lock) serves more than its
    capacity: ``min(N / (Z + D), min_k c_k / D_k) x duration``, ``D_k`` a request's mean work at
    station ``k`` (its hold, at a lock), from ``samples`` sampled requests. Contention with
    other sources only lowers it; a stage visited only when a station was idle counts as always
    visited, which lowers the bound too (so it may fall short there)."""
    specs = {s.name: s for s in stations}
    out = {}
    for source in sources:
        arrivals = source.arrivals
        if not isinstance(arrivals, ClosedArrivals):
            continue
        mean = np.asarray(source.make_sampler(stream_seed(seed, 0, "request-bound", source.name))(samples),
                          dtype=float).mean(axis=0)
        demand: dict[str, float] = dict(lock_hold_s(source.route, mean))
        held: dict[str, float] = {}  # the cores streams hold while they stream: no time of its own
        for slot, work in zip(source.route, mean, strict=True):
            if not slot.action:
                demand[slot.station] = demand.get(slot.station, 0.0) + float(work)
                cpu = specs[slot.station].cpu
                if cpu:
                    held[cpu] = held.get(cpu, 0.0) + float(work)
        total = sum(w for name, w in demand.items() if specs[name].kind != "lock")
        for cpu, w in held.items():
            demand[cpu] = demand.get(cpu, 0.0) + w
        rate = arrivals.clients / (arrivals.think_s + total) if arrivals.think_s + total > 0 else math.inf
        for name, w in demand.items():
            if w > 0:
                rate = min(rate, specs[name].capacity / w)
        out[source.name] = rate * duration_s
    return out


def _offered_work(sources: Sequence[Source], samples: int, seed: int, specs: dict[str, StationSpec],
                  certain: bool = False) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Work offered per second by the open-loop sources: per station and per ``"station:a/b"``
    group (with the groups inside it), each group's own jobs' alone, and each lock's hold. A
    stream's counts at its domain and, as its group's own work (its threads stream; review 33
    F2), in its group at the CPU it runs on."""
    work: dict[str, float] = {}
    own: dict[str, float] = {}  # a group's own jobs' work, without its subgroups'
    locks: dict[str, float] = {}  # each lock's busy seconds per second (its names hold colons)
    means: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
    for source in sources:
        if not isinstance(source.arrivals, OpenArrivals):
            continue
        key = (source.family or f"source:{source.name}", source.stations)
        if key not in means:
            sample = source.make_sampler(stream_seed(seed, 0, "offered-load", source.name))(samples)
            means[key] = np.asarray(sample, dtype=float).mean(axis=0)
        rate = source.arrivals.rate_per_s
        for lock, seconds in lock_hold_s(source.route, means[key]).items():
            locks[lock] = locks.get(lock, 0.0) + rate * seconds
        for slot, mean in zip(source.route, means[key], strict=True):
            if slot.action or (certain and slot.when_idle is not None):  # a lock's action is no work
                continue
            offered = rate * float(mean)
            cpu = specs[slot.station].cpu  # a stream holds a core of its CPU: its work is that CPU's too
            for station in (slot.station, cpu) if cpu else (slot.station,):
                work[station] = work.get(station, 0.0) + offered
                for depth in range(1, len(slot.group) + 1):
                    name = f"{station}:{'/'.join(slot.group[:depth])}"
                    work[name] = work.get(name, 0.0) + offered
                if slot.group:  # the group's own jobs: ``name`` is the whole path
                    own[name] = own.get(name, 0.0) + offered
    return work, own, locks


def _group_cap(spec: StationSpec, path: GroupPath, all_own: bool) -> float:
    """The servers' worth group ``path`` of ``spec`` may use (``inf`` if uncapped or undeclared):
    ``max_servers``, its ``cpu.max`` quota, and its threads if its load is ``all_own`` jobs."""
    group = spec.groups.get(path)
    if group is None:
        return math.inf
    cap = group.max_servers
    if group.quota_s is not None:
        cap = min(cap, group.quota_s / group.period_s)
    if group.threads and all_own:  # all of it its own jobs: its threads serve them
        cap = min(cap, float(group.threads))
    return cap


def lock_hold_s(route: Sequence[Slot], work_s: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Seconds each lock of ``route`` is held per request: the work of the slots between its
    acquire and its release (``work_s`` per slot), the holder's queueing for that work aside."""
    held: list[str] = []
    out: dict[str, float] = {}
    for slot, w in zip(route, work_s, strict=True):
        if slot.action == "acquire":
            held.append(slot.station)
        elif slot.action == "release":
            held.remove(slot.station)
        else:
            for lock in held:
                out[lock] = out.get(lock, 0.0) + float(w)
    return out


def _confined_loads(spec: StationSpec, tree: _Tree, work: dict[str, float]) -> dict[str, float]:
    """Offered utilization of the cores that groups bound to cores (a cpuset, a pinned VM) share:
    the groups whose core sets overlap pooled, their work against what the union of their cores
    serves to the jobs the groups can run there (review 8 A1: ten containers on cpuset 0 were
    judged against the whole host). Each such set can carry no more, so 1 or more is overload
    (a set inside it can be overloaded below 1). Named ``"station:cores=0,1"``."""
    out = {}
    for shared, paths in _bound_components(spec):
        load = sum(work.get(f"{spec.name}:{p[0]}", 0.0) for p in paths)
        if load <= 0:
            continue
        runnable = sum(_bound(spec, p, tree[0], tree[1]) for p in paths if p in tree[0] or p in tree[1])
        others = max(0.0, work.get(spec.name, 0.0) - load)
        capacity = _bound_capacity(spec, len(shared), min(runnable, len(shared) * spec.threads_per_server), others)
        out[f"{spec.name}:cores={','.join(map(str, sorted(shared)))}"] = load / capacity
    return out


def _bound_components(spec: StationSpec) -> list[tuple[set[int], list[tuple[str, ...]]]]:
    """The top-level groups bound to cores, pooled where their core sets overlap (through a
    chain of overlaps): (the union of their cores, their paths)."""
    components: list[tuple[set[int], list[tuple[str, ...]]]] = []
    for path, g in spec.groups.items():
        if len(path) != 1 or not g.cores:
            continue
        cores = set(g.cores)
        merged = [c for c in components if c[0] & cores]
        rest = [c for c in components if not c[0] & cores]
        components = [*rest, (cores.union(*(c[0] for c in merged)), [path, *(p for c in merged for p in c[1])])]
    return components


def _bound_capacity(spec: StationSpec, cores: int, runnable: float, others: float) -> float:
    """Cores' worth ``cores`` bound cores serve their ``runnable`` jobs when saturated, as the
    engine serves them (SharedStation._effective): every job they can run runs, the other
    groups' jobs are their offered work (``others``, servers); while no more jobs run than the
    CPU has cores each core does one core's work, past that the SMT siblings' yield, counted for
    the whole CPU, is spread evenly over its cores, each job getting its share."""
    n_cores, threads = spec.servers, spec.threads_per_server
    running = min(runnable + others, n_cores * threads)
    whole = n_cores + spec.smt_yield * max(0.0, running - n_cores) if threads > 1 else n_cores
    per_job = whole / running if threads > 1 and running > n_cores else 1.0
    return min(cores * whole / n_cores, runnable * per_job)


def attainable_capacity(spec: StationSpec, runnable: float) -> float:
    """Servers' worth of work ``spec`` can serve per second when at most ``runnable`` jobs can run
    at once: a shared CPU with SMT gives a whole core to each of the first ``servers`` of them and
    ``smt_yield`` of a core to each further one, up to every hardware thread (24 single-threaded
    servers on 16 cores of 2 threads at a 25% yield: 16 + 0.25 x 8 = 18 cores, not 20)."""
    if spec.kind != "shared":
        return spec.capacity
    return _smt_capacity(spec.servers, spec.threads_per_server, spec.smt_yield, runnable)


def _smt_capacity(cores: float, threads_per_core: int, smt_yield: float, runnable: float) -> float:
    """Cores' worth ``cores`` cores of ``threads_per_core`` hardware threads serve to at most
    ``runnable`` jobs: a whole core each for the first ``cores``, ``smt_yield`` for each further."""
    running = min(runnable, cores * threads_per_core)
    return min(running, cores) + smt_yield * max(0.0, running - cores)


_Tree = tuple[set[tuple[str, ...]], dict[tuple[str, ...], set[tuple[str, ...]]]]


def _loaded_trees(stations: Sequence[StationSpec], sources: Sequence[Source]) -> dict[str, _Tree]:
    """Per shared station the groups the sources' slots use (open and closed; a closed loop's
    per-client groups one by one), and each group's loaded subgroups."""
    direct: dict[str, set[tuple[str, ...]]] = {}
    cpu_of = {s.name: s.cpu for s in stations if s.kind == "stream"}
    for source in sources:
        clients = source.arrivals.clients if isinstance(source.arrivals, ClosedArrivals) else 1
        for slot in source.route:
            if slot.action:
                continue
            # a stream is a job of its CPU, of its group's threads (as the engines cap it: within
            # the group's servers; review 33 F2, F3)
            paths = direct.setdefault(cpu_of.get(slot.station, slot.station), set())
            if slot.per_client and isinstance(source.arrivals, ClosedArrivals):
                paths.update((*slot.group, str(c // slot.per_client)) for c in range(clients))
            else:
                paths.add(slot.group)
    out: dict[str, _Tree] = {}
    for spec in stations:
        if spec.kind != "shared" or not direct.get(spec.name):
            continue
        children: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for path in direct[spec.name]:
            for depth in range(len(path)):
                children.setdefault(path[:depth], set()).add(path[:depth + 1])
        out[spec.name] = (direct[spec.name], children)
    return out


def group_runnable(stations: Sequence[StationSpec], sources: Sequence[Source], station: str,
                   group: tuple[str, ...]) -> float:
    """The most jobs ``group`` and its loaded subgroups can run at once on shared ``station``
    (its vCPUs, threads, cpuset; inf without a bound), as :func:`offered_load` counts them."""
    specs = {s.name: s for s in stations}
    tree = _loaded_trees(stations, sources).get(station)
    return 0.0 if tree is None else _bound(specs[station], group, tree[0], tree[1])


def _runnable(spec: StationSpec, tree: _Tree) -> float:
    """The most jobs ``spec`` can run at once: a group runs at most ``threads`` of its own jobs (an
    event loop 1, a pool k; every one without), and its subtree at most ``max_servers``;
    background jobs run too. inf when some loaded group has no bound."""
    return _bound(spec, (), tree[0], tree[1]) + sum(spec.background.values())


def _bound(spec: StationSpec, path: tuple[str, ...], direct: set[tuple[str, ...]],
           children: dict[tuple[str, ...], set[tuple[str, ...]]]) -> float:
    """The most jobs group ``path`` of ``spec`` and its loaded subgroups can run at once."""
    group = spec.groups.get(path)
    own = 0.0
    if path in direct:
        own = float(group.threads) if group is not None and group.threads else math.inf
    below = sum(_bound(spec, child, direct, children) for child in children.get(path, ()))
    cap = math.inf if group is None else group.max_servers
    if group is not None and group.cores:  # bound to cores: a job per hardware thread (below a VM, per vCPU)
        cap = min(cap, group.servers_on(spec.threads_per_server if len(path) == 1 else 1))
    return min(cap, own + below)
