"""Capacity planning: what one guest of a service needs from a host, and packing a fleet.

A guest's needs come from the model itself, not from a table: its requests are lowered through
its stack (sampled), and each host station's mean work per request times the request rate is the
guest's share of that station (divided by the station's servers). Host-side threads (a vhost or
VMM thread, the kernel's softirq) are CPU work, so they count against the host's cores; a group
of the guest's own with a cap (its vCPUs, a ``cpu.max``, pinned cores, a VMM thread, an event
loop) and a station of its own (an io.max throttle) cannot be shared either: each must stay below
the usable fraction of its cap on its own. A driver domain (Xen's dom0, Hyper-V's root) is one
more resource of a host, its vCPUs shared by every guest's back ends. Costs paid only
when something is idle are counted as if always paid (an upper bound on the work). Memory is the
footprint (private per guest, shared once per host per service); disk is the image: a base or
the image layers once per host, a differencing disk or writable layer per guest.

:func:`pack` spreads every service evenly over H hosts and checks all hosts at once (numpy),
starting from the resource lower bound on H and growing it until every host fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from virtsim.models.density.footprint import footprint
from virtsim.models.hardware.host import HostSpec
from virtsim.models.system import Guest, System
from virtsim.models.virt.hypervisor import DRIVER_DOMAIN
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import RequestWorkload
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["GuestNeeds", "Packing", "guest_needs", "pack"]

SHARED_STATIONS = ("cpu", "membw", "disk", "disk.xfer", "nic.rx", "nic.tx")
RESOURCES = (*SHARED_STATIONS, "memory", "disk_space", "driver_domain")


def _cap_cores(spec: GroupSpec) -> float | None:
    """The most cores a group's work can use (its vCPUs, threads, pinned cores, ``cpu.max``), or
    None if only the host limits it."""
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
    stations = {s.name: s for s in system.engine_inputs()[0]}
    groups = system.groups()
    by_station: dict[str, float] = {}
    cpu_work: dict[GroupPath, float] = {}  # the guest's CPU work per request, by group
    for slot, w in zip(route, work, strict=True):
        if slot.action:
            continue  # taking or giving a lock is no work
        by_station[slot.station] = by_station.get(slot.station, 0.0) + float(w)
        if slot.station == "cpu":
            cpu_work[slot.group] = cpu_work.get(slot.group, 0.0) + float(w)
    per_guest = np.zeros(len(RESOURCES))
    private: dict[str, float] = {}
    for path, group in groups.items():
        cores = _cap_cores(group)
        if cores is None:
            continue
        used = rate * sum(w for g, w in cpu_work.items() if g[:len(path)] == path) / cores
        if path == (DRIVER_DOMAIN,):  # one privileged VM's vCPUs serve every guest's back ends
            per_guest[RESOURCES.index("driver_domain")] += used
        elif path[0] == "g" or path[-1].endswith(":g"):  # the guest's own: vCPUs, cpu.max, threads
            name = group.label or "/".join(path)
            private[name] = max(private.get(name, 0.0), used)
    for name, w in by_station.items():
        spec = stations.get(name)
        if spec is None or spec.kind in ("delay", "lock") or name.startswith("client."):
            continue
        util = rate * w / spec.servers
        base = name.split(":", 1)[0]  # membw:bound-K, memory bound to K NUMA nodes, is memory bandwidth
        if base in SHARED_STATIONS:
            # the share of the station it uses: for bound memory, of its nodes' bandwidth, so bound
            # and interleaved services on one host are counted no lighter than they load the nodes
            per_guest[RESOURCES.index(base)] += util
        else:
            private[name] = util
    fp = footprint(stack, app_memory_bytes)
    per_guest[RESOURCES.index("cpu")] += fp.idle_cpu_cores / host.cpu.cores
    memory = host.memory.capacity_bytes - reserved_bytes
    per_guest[RESOURCES.index("memory")] = fp.private_bytes / memory
    per_guest[RESOURCES.index("disk_space")] = diff_bytes / host.storage.capacity_bytes
    per_host = np.zeros(len(RESOURCES))
    per_host[RESOURCES.index("memory")] = fp.shared_bytes / memory
    per_host[RESOURCES.index("disk_space")] = image_bytes / host.storage.capacity_bytes
    return GuestNeeds(per_guest, per_host, private)


@dataclass(frozen=True)
class Packing:
    """Hosts needed and the per-host load of each resource (fractions of usable capacity)."""

    hosts: int
    counts: np.ndarray  # (hosts, services) guests of each service on each host
    load: np.ndarray  # (hosts, resources) fraction of usable capacity

    def bottleneck(self) -> str:
        """The resource with the highest load on any host (one of ``RESOURCES``)."""
        return RESOURCES[int(np.argmax(self.load.max(axis=0)))]


def _spread(n: np.ndarray, hosts: int) -> np.ndarray:
    """Guests of each service spread evenly over hosts, the remainders staggered across hosts."""
    base = n // hosts
    extra = n % hosts
    offset = np.concatenate([[0], np.cumsum(extra)[:-1]]) % hosts
    h = np.arange(hosts)[:, None]
    gets_extra = ((h - offset[None, :]) % hosts) < extra[None, :]
    return base[None, :] + gets_extra.astype(np.int64)


def pack(counts: np.ndarray, per_guest: np.ndarray, per_host: np.ndarray, usable: float) -> Packing:
    """Fewest hosts (by this even spreading) holding ``counts`` guests within ``usable`` of each resource.

    ``per_guest`` and ``per_host`` are (services, resources) fractions of one host's capacity.
    """
    counts = np.asarray(counts, dtype=np.int64)

    def attempt(hosts: int) -> Packing:
        on_host = _spread(counts, hosts)
        return Packing(hosts, on_host, (on_host @ per_guest + (on_host > 0) @ per_host) / usable)

    def fits(p: Packing) -> bool:
        return float(p.load.max()) <= 1 + 1e-12

    lower = max(1, math.ceil(float((counts @ per_guest).max() / usable) - 1e-12))
    best = attempt(lower)
    if fits(best):
        return best
    lo, hi = lower, lower  # lo does not fit; grow hi until it does, then bisect
    while not fits(best):
        lo, hi = hi, max(hi + 1, math.ceil(hi * float(best.load.max())))
        best = attempt(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = attempt(mid)
        if fits(trial):
            hi, best = mid, trial
        else:
            lo = mid
    return best
