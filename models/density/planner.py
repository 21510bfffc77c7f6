"""Capacity planning: what one guest of a service needs from a host, and packing a fleet.

A guest's needs come from the model itself, not from a table: its requests are lowered through
its stack (sampled), and each host station's mean work per request times the request rate is the
guest's share of that station (divided by the station's servers). Host-side threads (a vhost or
VMM thread, the kernel's softirq) are CPU work, so they count against the host's cores; a group
of the guest's own with a cap (its vCPUs, a ``cpu.max``, pinned cores, a VMM thread, an event
loop) and a station of its own (an io.max throttle) cannot be shared either: each must stay below
the usable fraction of its cap on its own, as must its own lock (a synchronous VMM thread, busy
for the work done while holding it). A driver domain (Xen's dom0, Hyper-V's root) is one more
resource of a host, its vCPUs shared by every guest's back ends, and so are the host kernel's
receive (softirq) threads, one per NIC queue, which run every guest's bridge, NAT and receive
work. Costs paid only
when something is idle are counted as if always paid (an upper bound on the work). Memory is the
footprint (private per guest, shared once per host per service); disk is the image: a base or
the image layers once per host, a differencing disk or writable layer per guest.

:func:`pack` spreads every service evenly over H hosts, choosing which hosts take the
remainders so that every host fits, starting from the resource lower bound on H and growing it
until one does.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from virtsim.models.density.footprint import footprint
from virtsim.models.hardware.cpu import CPU_STATION
from virtsim.models.hardware.host import HOST_SOFTIRQ, HostSpec
from virtsim.models.hardware.memory import MEMBW_STATION, membw_nodes, numa_blocks
from virtsim.models.hardware.network import NIC_RX_STATION, NIC_TX_STATION
from virtsim.models.hardware.storage import DISK_STATION, DISK_XFER_STATION
from virtsim.models.resources import is_host_resource, station_kind
from virtsim.models.system import Guest, System
from virtsim.models.virt.hypervisor import DRIVER_DOMAIN
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import RequestWorkload, host_lock_station
from virtsim.sim.load import attainable_capacity, group_runnable, lock_hold_s
from virtsim.sim.routes import StationSpec
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["GuestNeeds", "Packing", "guest_needs", "pack"]

SHARED_STATIONS = (CPU_STATION, MEMBW_STATION, DISK_STATION, DISK_XFER_STATION, NIC_RX_STATION, NIC_TX_STATION)
RESOURCES = (*SHARED_STATIONS, "memory", "disk_space", "driver_domain", "host_softirq", "cpu_threads")
"""What a host has that guests use up, as fractions of it. ``cpu`` is the CPU's work against its
capacity with every hardware thread busy; ``cpu_threads`` the same work against what the threads
the guests can run at once attain (an SMT core's second thread adds only ``smt_yield``): see
:func:`_smt_need`."""


def _cap_cores(spec: GroupSpec) -> float | None:
    """The most cores a group's work can use (its vCPUs, threads, pinned cores, ``cpu.max``), or
    None if only the host limits it. Each of its hardware threads counts as a whole core, as
    when alone on its core: on a packed SMT host a thread whose sibling is busy does
    ``(1 + smt_yield) / 2`` of that, and ``cpu.max`` charges its whole run time (the engines
    model both; a plan's promise check sees them, its analytic caps do not: an optimistic bound)."""
    cores = spec.servers
    if spec.quota_s is not None:
        cores = min(cores, spec.quota_s / spec.period_s)
    return cores if math.isfinite(cores) else None


@dataclass(frozen=True)
class GuestNeeds:
    """One guest's needs as fractions of a host's capacity (per resource in :data:`RESOURCES`)."""

    per_guest: np.ndarray  # fraction of each resource per guest
    per_host: np.ndarray  # fraction taken once on any host holding one or more of these guests
    private_stations: dict[str, float]  # utilization of the guest's own stations


def guest_needs(host: HostSpec, stack: Stack, workload: RequestWorkload, app_memory_bytes: float,
                image_bytes: float, diff_bytes: float, reserved_bytes: float, samples: int = 4096,
                seed: int = 0) -> GuestNeeds:
    """The needs of one guest of ``workload`` on ``stack`` on ``host`` (open-loop workloads only)."""
    if workload.arrivals.kind != "open":
        raise ValueError("planning needs an open-loop workload (a request rate per guest)")
    rate = workload.arrivals.rate_per_s
    system = System(host, (Guest("g", stack, workload),))
    route, make_sampler, _ = system.routes(system.guests[0])
    work = make_sampler(np.random.SeedSequence(seed))(samples).mean(axis=0)
    engine_stations, sources = system.engine_inputs()
    stations = {s.name: s for s in engine_stations}
    groups = system.groups()
    by_station, cpu_work = _work_per_request(route, work)
    per_guest = np.zeros(len(RESOURCES))
    private: dict[str, float] = {}
    _cpu_needs(groups, cpu_work, rate, per_guest, private)
    for name, seconds in lock_hold_s(route, work).items():  # its own lock (a VMM thread): busy while held
        if name.startswith(host_lock_station("")):
            raise ValueError(f"the workload takes the host-wide lock {name.split(':', 1)[1]!r} (scope = \"host\"), "
                             "which every guest on a host shares: the planner does not count it; simulate the "
                             "packing with virtsim density instead, or make the lock the server's own")
        private[name] = rate * seconds / stations[name].capacity
    rounding = _station_needs(stations, by_station, rate, per_guest, private, host.memory.nodes)
    fp = footprint(stack, app_memory_bytes)
    per_guest[RESOURCES.index("cpu")] += fp.idle_cpu_cores / attainable_capacity(stations["cpu"], math.inf)
    runnable = group_runnable(engine_stations, sources, "cpu", ("g",))
    per_guest[RESOURCES.index("cpu_threads")] = _smt_need(
        per_guest[RESOURCES.index("cpu")] * attainable_capacity(stations["cpu"], math.inf), runnable, stations["cpu"])
    memory = host.memory.capacity_bytes - reserved_bytes
    per_guest[RESOURCES.index("memory")] = fp.private_bytes / memory
    per_guest[RESOURCES.index("disk_space")] = diff_bytes / host.storage.capacity_bytes
    per_host = np.zeros(len(RESOURCES))
    per_host[RESOURCES.index("membw")] = rounding
    per_host[RESOURCES.index("memory")] = fp.shared_bytes / memory
    per_host[RESOURCES.index("disk_space")] = image_bytes / host.storage.capacity_bytes
    return GuestNeeds(per_guest, per_host, private)


def _work_per_request(route: tuple, work: np.ndarray) -> tuple[dict[str, float], dict[GroupPath, float]]:
    """Mean work (s) a request does per station, and on the CPU per group (locks' slots are no
    work; streaming memory counts as core time too)."""
    by_station: dict[str, float] = {}
    cpu_work: dict[GroupPath, float] = {}
    for slot, w in zip(route, work, strict=True):
        if slot.action:
            continue  # taking or giving back a lock is no work
        by_station[slot.station] = by_station.get(slot.station, 0.0) + float(w)
        streams = slot.station.split(":", 1)[0] == MEMBW_STATION
        if streams:
            # a thread streams memory on a core and holds it all the while: its stream's time (at
            # full speed, a lower bound where the bandwidth slows it) is core time too (review 28 F7)
            by_station["cpu"] = by_station.get("cpu", 0.0) + float(w)
        if slot.station == "cpu" or streams:
            cpu_work[slot.group] = cpu_work.get(slot.group, 0.0) + float(w)
    return by_station, cpu_work


def _cpu_needs(groups: dict[GroupPath, GroupSpec], cpu_work: dict[GroupPath, float], rate: float,
               per_guest: np.ndarray, private: dict[str, float]) -> None:
    """Add the capped CPU groups' loads: shared ones (a driver domain, the host's softirq threads)
    to ``per_guest``, the guest's own (vCPUs, cpu.max, threads) to ``private``."""
    for path, group in groups.items():
        cores = _cap_cores(group)
        if cores is None:
            continue
        used = rate * sum(w for g, w in cpu_work.items() if g[:len(path)] == path) / cores
        if path == (DRIVER_DOMAIN,):  # one privileged VM's vCPUs serve every guest's back ends
            per_guest[RESOURCES.index("driver_domain")] += used
        elif path == HOST_SOFTIRQ:  # the host kernel's receive threads (one per NIC queue), shared
            per_guest[RESOURCES.index("host_softirq")] += used
        elif path[0] == "g" or path[-1].endswith(":g"):  # the guest's own: vCPUs, cpu.max, threads
            name = group.label or "/".join(path)
            private[name] = max(private.get(name, 0.0), used)


def _smt_need(work_cores: float, runnable: float, cpu: StationSpec) -> float:
    """A guest's share of the SMT constraint on a packed host (review 29 F4). A host whose guests
    can run R jobs at once attains ``min(R, C) + y (min(R, C t) - C)`` cores' worth (C cores of t
    threads, each second thread adding y): with R >= C, work W fits if ``W - y R <= C (1 - y)``,
    linear in the guests (each adds its work and its R, at most C t); below C cores each guest's
    own cap already holds it. So a guest needs ``(w - y r) / (C (1 - y))`` (negative: its threads
    add more than its work takes). Nothing without SMT, or at y = 1 (no limit but the threads)."""
    cores, threads, y = cpu.servers, cpu.threads_per_server, cpu.smt_yield
    if threads == 1 or y >= 1:
        return 0.0
    return (work_cores - y * min(runnable, cores * threads)) / (cores * (1 - y))


def _station_needs(stations: dict[str, StationSpec], by_station: dict[str, float], rate: float,
                   per_guest: np.ndarray, private: dict[str, float], numa_nodes: int = 1) -> float:
    """Add each station's load: host-wide ones to ``per_guest``, the guest's own to ``private``.

    Memory bound to k of the host's nodes: the engine puts bound guests on its B = nodes / k
    blocks of nodes in turn, so n guests load the busiest block ceil(n / B) times one guest's
    share u of a block's bandwidth, at most n u / B + u (B - 1) / B: u / B per guest, and the
    rest (returned) once per host that holds such guests (a bound, exact for n = 1 mod B;
    review 35 F4: every guest was counted against the whole host, twice the hosts on 2 nodes)."""
    rounding = 0.0
    for name, w in by_station.items():
        spec = stations.get(name)
        if spec is None or spec.kind in ("delay", "lock") or not is_host_resource(name):
            continue
        # a host full of guests runs every hardware thread: the CPU serves its SMT siblings' yield too
        util = rate * w / attainable_capacity(spec, math.inf)
        base = station_kind(name)  # membw:nodes-A-B, memory bound to nodes A..B, is memory bandwidth
        if (bound := membw_nodes(name)) is not None:
            first, last = bound
            blocks = numa_blocks(last - first + 1, numa_nodes)
            per_guest[RESOURCES.index(base)] += util / blocks
            rounding += util * (blocks - 1) / blocks
        elif base in SHARED_STATIONS:
            per_guest[RESOURCES.index(base)] += util
        else:
            private[name] = util
    return rounding


@dataclass(frozen=True)
class Packing:
    """Hosts needed and the per-host load of each resource (fractions of usable capacity)."""

    hosts: int
    counts: np.ndarray  # (hosts, services) guests of each service on each host
    load: np.ndarray  # (hosts, resources) fraction of usable capacity

    def bottleneck(self) -> str:
        """The resource with the highest load on any host (one of ``RESOURCES``)."""
        return RESOURCES[int(np.argmax(self.load.max(axis=0)))]


_LINEAR_TRIES = 64
"""Host counts :func:`pack` tries one by one from its bound (and below the count it finds), before
it searches by doubling and halving; a quarter of them from a bound of 1,000 hosts."""

_EXHAUSTIVE_PLACEMENTS = 20_000
"""Placements of the remainders :func:`pack` tries one by one when its greedy placement does not
fit (more than this: the greedy answer stands, a heuristic)."""


def _load(on_host: np.ndarray, per_guest: np.ndarray, per_host: np.ndarray) -> np.ndarray:
    """(hosts, resources) load of a placement (unscaled fractions of a host's capacity)."""
    return on_host @ per_guest + (on_host > 0) @ per_host


def _even_placements(counts: np.ndarray, per_guest: np.ndarray, per_host: np.ndarray, usable: float,
                     hosts: int) -> np.ndarray | None:
    """Guests of every service spread evenly over ``hosts`` (each host ``n // hosts`` or one more),
    the hosts that take one more chosen so that every host fits within ``usable``: greedily (the
    biggest services' remainders first, each on the host it loads least), else, for small cases,
    by trying every choice. None if none is found."""
    base = np.broadcast_to(counts // hosts, (hosts, counts.size)).copy()
    extra = counts % hosts
    order = [int(s) for s in np.argsort(-(per_guest + per_host).max(axis=1), kind="stable") if extra[s]]
    on_host = base.copy()
    load = _load(on_host, per_guest, per_host)
    for s in order:
        # One of the remainder on each of the extra[s] hosts it loads least: as placing them one
        # at a time would (a host takes at most one, and a guest placed does not change the
        # others' peaks), in one step (review 12: one at a time made 100,000 guests take minutes)
        trial = load + per_guest[s] + ((on_host[:, s] == 0)[:, None] * per_host[s])
        peak = trial.max(axis=1)
        chosen = np.argsort(peak, kind="stable")[:int(extra[s])]
        on_host[chosen, s] += 1
        load[chosen] = trial[chosen]
    if float(load.max()) <= usable * (1 + 1e-12):
        return on_host
    # how many placements there are, on the log scale (math.comb of 12,000 hosts took 80 ms)
    log_ways = sum(math.lgamma(hosts + 1) - math.lgamma(e + 1) - math.lgamma(hosts - e + 1) for e in extra.tolist())
    if log_ways > math.log(_EXHAUSTIVE_PLACEMENTS):
        return None
    for choice in itertools.product(*(itertools.combinations(range(hosts), int(e)) for e in extra)):
        on_host = base.copy()
        for s, picked in enumerate(choice):
            on_host[list(picked), s] += 1
        if float(_load(on_host, per_guest, per_host).max()) <= usable * (1 + 1e-12):
            return on_host
    return None


def _fewest_by_totals(counts: np.ndarray, per_guest: np.ndarray, per_host: np.ndarray, usable: float) -> int:
    """The fewest hosts H whose capacity holds the fleet's total load, per resource: every guest's
    share, and each service's once-per-host share on the min(n, H) hosts an even spread puts it
    on. No even spread fits on fewer (a bound the search starts from; review 12: starting from
    the guests' shares alone, 100,000 guests needed a thousand tries)."""
    guests = counts @ per_guest

    def holds(hosts: int) -> bool:
        return bool(np.all(guests + np.minimum(counts, hosts) @ per_host <= hosts * usable * (1 + 1e-12)))

    lo = max(1, math.ceil(float(guests.max() / usable) - 1e-12))
    if holds(lo):
        return lo
    hi = lo
    while not holds(hi):  # the total is monotone in H: grow, then bisect
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi


def pack(counts: np.ndarray, per_guest: np.ndarray, per_host: np.ndarray, usable: float) -> Packing:
    """Fewest hosts holding ``counts`` guests within ``usable`` of each resource, every service
    spread evenly (each host ``n // H`` of a service or one more).

    ``per_guest`` and ``per_host`` are (services, resources) fractions of one host's capacity.
    Whether H hosts suffice depends on which hosts take the remainders and is not monotone in H
    (review 10: a staggered placement failed on 6 hosts where 5 fitted), so H is tried upward from
    a bound on the totals (:func:`_fewest_by_totals`) one by one for :data:`_LINEAR_TRIES` counts
    (16 from 1,000 hosts),
    then by doubling and halving. With every placement tried (small cases) and the answer within
    those first counts, it never falls when a service gains a guest: the placement for the larger
    count less that guest is an even placement for the smaller one, and fits. Far above the bound
    (large fleets) the answer is within the last counts tried one by one, not proven fewest.
    """
    counts = np.asarray(counts, dtype=np.int64)
    lower = _fewest_by_totals(counts, per_guest, per_host, usable)
    most = max(1, int(counts.sum()))  # a guest per host: fits, as each fits a host alone

    def placed(hosts: int) -> Packing | None:
        on_host = _even_placements(counts, per_guest, per_host, usable, hosts)
        return None if on_host is None else Packing(hosts, on_host, _load(on_host, per_guest, per_host) / usable)

    # Every count from the bound while few; past that, steps that double, then the gap between
    # the last count that failed and the first that fitted searched by halves and, below the
    # count found, the last _LINEAR_TRIES counts one by one (fitting is not monotone in H, so a
    # fleet far above the bound may be a few hosts from the fewest; review 12: trying every count
    # made 100,000 guests on 10,000 hosts take more than ten minutes).
    tries = _LINEAR_TRIES if lower < 1000 else _LINEAR_TRIES // 4  # a large fleet: each try costs more
    for hosts in range(lower, min(lower + tries, most + 1)):
        found = placed(hosts)
        if found is not None:
            return found
    failed, step = lower + tries - 1, 1
    while True:
        hosts = min(failed + step, most)
        found = placed(hosts)
        if found is not None or hosts == most:
            break
        failed, step = hosts, 2 * step
    if found is None:
        raise ValueError("some guest does not fit a host even alone (per_guest + per_host above usable)")
    while hosts - failed > 1:
        mid = (failed + hosts) // 2
        trial = placed(mid)
        failed, hosts, found = (failed, mid, trial) if trial is not None else (mid, hosts, found)
    for below in range(max(lower + tries, hosts - tries), hosts):
        trial = placed(below)
        if trial is not None:
            return trial
    return found
