"""A system: one host, its load generator, and the guests on it, turned into what the engines run.

:meth:`System.engine_inputs` lowers every guest's demands through its stack to the host and
returns the stations and the request sources (routes plus work samplers) for :mod:`sim`.

Where the application's work runs follows the workload's concurrency model: a pool of FIFO
threads (``threads``), a thread per group of clients (``clients_per_thread``: fio jobs), or a
thread per connection or request. The load generator's work runs on the client machine, in its
tool's threads (``client_threads``) or one thread per connection.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from virtsim.models.demands import APP, Demand, Stage
from virtsim.models.hardware.cpu import CPU_STATION
from virtsim.models.hardware.host import CLIENT, CLIENT_CPU_STATION, SOFTIRQ, HostSpec
from virtsim.models.virt.base import LayerContext
from virtsim.models.virt.hosted import HOST_GROUP
from virtsim.models.virt.hypervisor import DRIVER_DOMAIN
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import MemDemand, RequestWorkload, host_lock_station, lock_station
from virtsim.sim.rng import IndexedStreams, SegmentedGenerator, SegmentedStreams
from virtsim.sim.routes import (
    BatchSamplerFactory,
    ClosedArrivals,
    IdleCondition,
    SamplerFactory,
    Slot,
    Source,
    StationSpec,
)
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["PEER_THREADS", "RESERVED_GROUP_NAMES", "SERVER_THREADS", "Guest", "System", "UnusedOverrideWarning"]

SERVER_THREADS = "threads"
"""A guest server's thread pool: its group's last name and its label's kind (``threads:GUEST``)."""
PEER_THREADS = "peer"
"""The label kind of load-generator threads that run on the host itself (``peer:GUEST``)."""
RESERVED_GROUP_NAMES = frozenset({HOST_GROUP[0], SOFTIRQ, PEER_THREADS, DRIVER_DOMAIN})
"""Top-level groups of the host's and the client's CPUs that are not a guest's (the host's own
threads, the client's receive threads, host-side load generators, a driver domain): a guest of
such a name would share them (review 39 F3: a guest named softirq took the client's receive
queues, one named driver-domain Xen's dom0)."""

_CLIENT_KINDS = ("client_cpu", "client_send", "client_recv")


@dataclass(frozen=True)
class Guest:
    """A named guest: its stack of layers and the workload it serves."""

    name: str
    stack: Stack
    workload: RequestWorkload


class UnusedOverrideWarning(UserWarning):
    """A layer override that the host or the stack switches off where it runs (it changes nothing there)."""


@dataclass(frozen=True)
class System:
    """A host and its guests."""

    host: HostSpec
    guests: tuple[Guest, ...]
    _unseeded: dict[str, list] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = Counter(g.name for g in self.guests)
        dupes = sorted(n for n, k in names.items() if k > 1)
        if dupes:
            raise ValueError(f"guest names must be unique; repeated: {dupes}")
        taken = sorted(set(names) & RESERVED_GROUP_NAMES)
        if taken:
            raise ValueError(f"a guest may not be named {taken[0]!r}: the host's own threads are a group of that "
                             f"name (the names {sorted(RESERVED_GROUP_NAMES)} are taken); rename the guest")
        for guest in self.guests:
            # A layer's cores are those of the layer it runs on: the host's for the outermost,
            # a VM's vCPUs for what runs inside that VM (a container's cpuset names guest CPUs).
            cores, threads = self.host.cpu.cores, self.host.cpu.threads_per_core
            layers = guest.stack.layers
            # only an override can be switched off: a stack of plain profiles needs no contexts
            # (a density search builds systems of a thousand guests, again and again)
            contexts = guest.stack.contexts(guest.name, self.host) if any(x.overrides for x in layers) else None
            for i in reversed(range(len(layers))):
                layer = layers[i]
                try:
                    layer.check(cores, threads)
                except ValueError as exc:
                    raise ValueError(f"guest {guest.name!r}, layer {layer.name!r}: {exc}") from exc
                # What the host or the stack switches off is said, not refused: the same stack may
                # be compared on hosts where it counts (a plan's host types, a sweep over hosts)
                try:
                    if contexts is not None:
                        layer.refuse_unused(layer.unused_here(contexts[i], layers[:i]))
                except ValueError as exc:
                    warnings.warn(f"layer {layer.name!r} on this host: {exc}", UnusedOverrideWarning, stacklevel=1)
                vcpus = getattr(layer.params, "vcpus", None)
                cores, threads = (int(vcpus), 1) if vcpus else (cores, threads)
        self.groups()  # shared groups (a driver domain) must agree before anything runs

    # -- where a guest's work runs -------------------------------------------------------------

    def app_group(self, guest: Guest) -> tuple[GroupPath, int]:
        """The group of the application's own work and its ``per_client`` split."""
        base = guest.stack.app_base(guest.name)
        w = guest.workload
        if w.threads is not None:
            return (*base, SERVER_THREADS), 0
        if w.clients_per_thread is not None:
            return (*base, "job"), w.clients_per_thread
        return base, 0

    def app_wake(self, guest: Guest) -> IdleCondition | None:
        """When the application's thread must be woken for a message or an I/O: if its pool's or
        job's thread sleeps; always (``None``) for a thread per connection or request, which does
        nothing but wait for its own request's next step."""
        w = guest.workload
        if w.threads is None and w.clients_per_thread is None:
            return None
        group, split = self.app_group(guest)
        return IdleCondition(CPU_STATION, group, per_client=split)

    def client_group(self, guest: Guest) -> tuple[GroupPath, IdleCondition | None]:
        """The load generator's group for ``guest`` (on the client machine, or on the host's own
        cores for a peer on the host), and when its thread must be woken for a reply (its tool's
        threads sleep only when idle; a thread per connection always waits for its own reply)."""
        local = guest.workload.peer == "host"
        group = (PEER_THREADS, guest.name) if local else (guest.name,)
        station = CPU_STATION if local else CLIENT_CPU_STATION
        threads = guest.workload.client_threads
        return group, (IdleCondition(station, group) if threads is not None else None)

    @cached_property
    def _numa_turns(self) -> dict[str, int]:
        """Each guest that binds memory to NUMA nodes: its turn among those guests, by name (so a
        guest that binds none does not push two bound ones onto one block: review 29 F1)."""
        binding = [g for g in self.guests
                   if any(isinstance(d, MemDemand) and d.numa_nodes for d in g.workload.demands)]
        return {g.name: i for i, g in enumerate(binding)}

    def _bind(self, guest: Guest, demands: list[Demand]) -> list[Demand]:
        """Put the workload's demands in their groups: the server's or the load generator's."""
        app, app_split = self.app_group(guest)
        wake = self.app_wake(guest)
        client, client_wake = self.client_group(guest)
        local = guest.workload.peer == "host"
        out = []
        for d in demands:
            if d.kind == "mem" and d.numa_nodes:  # bound guests take the host's node blocks in turn
                d = replace(d, numa_block=self._numa_turns[guest.name])
            if d.kind == "station" and d.action:  # the server's own lock: each guest has its own
                out.append(replace(d, station=d.station.replace(lock_station("", ""), lock_station(guest.name, ""), 1)))
                continue
            if d.kind in _CLIENT_KINDS:
                out.append(replace(d, group=client, local=local,
                                   when_idle=client_wake if d.kind == "client_recv" else None))
                continue
            if local and d.kind in ("net_in", "net_out"):
                d = replace(d, local=True)
            cond = d.when_idle
            if d.kind == "wake":
                cond = wake
            elif cond is not None and cond.group == APP:
                cond = replace(cond, group=app, per_client=app_split)
            out.append(replace(d, group=app, per_client=app_split, when_idle=cond))
        return out

    def _contexts(self, guest: Guest, seed: np.random.SeedSequence | None = None) -> list:
        """The context of each of ``guest``'s layers, innermost first (``seed`` seeds their random
        streams). Without a seed they are built once per guest (the groups and background jobs
        read them; a density run asks for hundreds of guests' several times)."""
        if seed is None and guest.name in self._unseeded:
            return self._unseeded[guest.name]
        app, _ = self.app_group(guest)
        contexts = guest.stack.contexts(guest.name, self.host, seed, app, self.app_wake(guest))
        if seed is None:
            self._unseeded[guest.name] = contexts
        return contexts

    def _lower(self, guest: Guest, seed: np.random.SeedSequence, n: int) -> list[Stage]:
        """The stages of ``n`` of ``guest``'s requests: demands drawn, bound to groups, lowered by the stack."""
        workload_seed, layer_seed, host_seed = seed.spawn(3)
        demands = self._bind(guest, guest.workload.sampler(workload_seed)(n))
        return guest.stack.lower(demands, self._contexts(guest, layer_seed), self.host, IndexedStreams(host_seed))

    def routes(self, guest: Guest) -> tuple[tuple[Slot, ...], SamplerFactory, BatchSamplerFactory]:
        """The route of ``guest``'s requests, the factory of its work sampler, and the factory
        of a sampler that draws several clients' blocks in one lowering (the same numbers)."""
        probe = self._lower(guest, np.random.SeedSequence(0), 1)
        route = tuple(s.slot() for s in probe)

        def make_sampler(seed: np.random.SeedSequence) -> Callable[[int], np.ndarray]:
            batch = make_samplers([seed])
            return lambda n: batch([n])[0]

        def make_samplers(seeds: Sequence[np.random.SeedSequence]) -> Callable[[Sequence[int]], list[np.ndarray]]:
            # Each client keeps its own streams; a block of several clients' requests is lowered
            # once, its layers' and devices' draws cut per client (SegmentedStreams), so a client
            # gets the same numbers in a block with others as alone. The lowering's fixed cost
            # (a Python pass over every demand of every layer: about 12 ms for an oltp
            # transaction's 96 demands) is then paid once per block, not once per client.
            clients = []
            for seed in seeds:
                workload_seed, layer_seed, host_seed = seed.spawn(3)
                clients.append((guest.workload.sampler(workload_seed), self._contexts(guest, layer_seed),
                                IndexedStreams(host_seed)))

            def sample(counts: Sequence[int]) -> list[np.ndarray]:
                if len(counts) != len(clients) or any(n < 0 for n in counts):
                    raise ValueError(f"one count >= 0 per client ({len(clients)}), got {list(counts)}")
                busy = [(client, n) for client, n in zip(clients, counts, strict=True) if n > 0]
                rows = _lowered_rows(guest, busy, self) if busy else np.empty((0, len(route)))
                bounds = np.cumsum([0, *counts])
                return [rows[bounds[c]:bounds[c + 1]] for c in range(len(counts))]

            return sample

        return route, make_sampler, make_samplers

    # -- what the stations must know -----------------------------------------------------------

    def groups(self) -> dict[GroupPath, GroupSpec]:
        """Every group on the host CPU: the kernel's, each guest's layers and threads, the application's."""
        out: dict[GroupPath, GroupSpec] = dict(self.host.groups())
        for guest in self.guests:
            for layer, ctx in zip(guest.stack.layers, self._contexts(guest), strict=True):
                out[ctx.group] = layer.group_spec()
                for path, spec in layer.groups(ctx).items():
                    if out.setdefault(path, spec) != spec:  # a group guests share (a driver domain)
                        raise ValueError(f"guest {guest.name!r}, layer {layer.name!r}: the shared group "
                                         f"{'/'.join(path)} is set up differently by another guest "
                                         f"({out[path]} vs {spec}); give them the same settings")
            w = guest.workload
            app, _ = self.app_group(guest)
            if w.peer == "host" and w.client_threads is not None:
                group, _ = self.client_group(guest)
                out[group] = GroupSpec(threads=w.client_threads, label=f"{PEER_THREADS}:{guest.name}")
            if w.threads is not None:
                out[app] = GroupSpec(threads=w.threads, label=f"{SERVER_THREADS}:{guest.name}")
            elif w.clients_per_thread is not None:
                arrivals = w.arrivals.arrivals()
                clients = arrivals.clients if isinstance(arrivals, ClosedArrivals) else 1
                for j in range(math.ceil(clients / w.clients_per_thread)):
                    out[(*app, str(j))] = GroupSpec(threads=1)
        return out

    def client_groups(self) -> dict[GroupPath, GroupSpec]:
        """The load generators' threads on the client machine."""
        out = {}
        for guest in self.guests:
            if guest.workload.client_threads is not None and guest.workload.peer == "remote":
                group, _ = self.client_group(guest)
                out[group] = GroupSpec(threads=guest.workload.client_threads, label=f"{CLIENT}:{guest.name}")
        return out

    def background(self) -> dict[GroupPath, int]:
        """Always-running host jobs (the most any layer asks for, per group)."""
        out: dict[GroupPath, int] = {}
        for guest in self.guests:
            for layer, ctx in zip(guest.stack.layers, self._contexts(guest), strict=True):
                for group, n in layer.background(ctx).items():
                    out[group] = max(out.get(group, 0), n)
        return out

    def engine_inputs(self) -> tuple[list[StationSpec], list[Source]]:
        """Stations (only those some route visits, and the CPU) and one source per guest."""
        sources = []
        for guest in self.guests:
            route, make_sampler, make_samplers = self.routes(guest)
            family = f"{id(guest.stack)}:{guest.workload.model_dump_json()}"  # an entry's guests share a stack
            sources.append(Source(guest.name, route, guest.workload.arrivals.arrivals(), make_sampler, family,
                                  make_samplers))
        for guest, source in zip(self.guests, sources, strict=True):
            _warn_unused_by_workload(guest, source)
        used = {slot.station for source in sources for slot in source.route} | {CPU_STATION}
        used |= {slot.when_idle.station for source in sources for slot in source.route if slot.when_idle}
        candidates = [
            self.host.cpu.station(self.groups(), self.background()),
            self.host.client_station(self.client_groups()),
            *self.host.stations(),
        ]
        for guest in self.guests:
            for layer, ctx in zip(guest.stack.layers, self._contexts(guest), strict=True):
                candidates += layer.stations(ctx)
            candidates += [StationSpec(lock_station(guest.name, name), "lock", 1)
                           for name in guest.workload.lock_names()]
            candidates += [StationSpec(host_lock_station(name), "lock", 1)
                           for name in guest.workload.lock_names("host")]
        stations: dict[str, StationSpec] = {}
        for spec in candidates:
            if spec.name in used:
                stations.setdefault(spec.name, spec)
        missing = used - set(stations)
        if missing:
            raise ValueError(f"routes visit stations nobody declares: {sorted(missing)}")
        return list(stations.values()), sources



def _warn_unused_by_workload(guest: Guest, source: Source) -> None:
    """Warn (:class:`UnusedOverrideWarning`) of each layer override the guest's workload leaves
    without effect (``io_max`` for a workload without disk I/O, a generic CPU model for one
    without vector code): said, not refused, as the same stack runs other workloads where it
    counts (``virtsim overhead`` runs all of them). The message names the stack, not the
    guest: once for a host of alike guests."""
    for layer in guest.stack.layers:
        if not layer.overrides:
            continue
        try:
            layer.refuse_unused(layer.unused_by(guest.name, source.route))
        except ValueError as exc:
            warnings.warn(f"stack {guest.stack.label!r} with this workload: {exc}", UnusedOverrideWarning,
                          stacklevel=1)


_Client = tuple[Callable[[int], list[Demand]], list[LayerContext], IndexedStreams]
"""A closed client's samplers: its workload's demand sampler, its layers' contexts, its host streams."""


def _lowered_rows(guest: Guest, clients: list[tuple[_Client, int]], system: System) -> np.ndarray:
    """The work rows (seconds per stage) of ``n`` requests of each client, in client order: each
    client's demands drawn from its own workload streams, then lowered together with every
    layer's and the host's draws cut per client."""
    counts = [n for _, n in clients]
    drawn = [draw(n) for (draw, _, _), n in clients]
    demands = [first if len(drawn) == 1 else first.with_amount(np.concatenate([d[i].amount for d in drawn]))
               for i, first in enumerate(drawn[0])]
    if len(clients) == 1:
        (_, contexts, host_streams), _ = clients[0]
    else:
        per_layer = zip(*(c for (_, c, _), _ in clients), strict=True)
        contexts = [replace(ctxs[0], rng=SegmentedGenerator([c.rng for c in ctxs], counts),
                            streams=SegmentedStreams([c.streams for c in ctxs], counts))
                    for ctxs in per_layer]
        host_streams = SegmentedStreams([s for (_, _, s), _ in clients], counts)
    stages = guest.stack.lower(system._bind(guest, demands), contexts, system.host, host_streams)
    out = np.empty((sum(counts), len(stages)))
    for k, stage in enumerate(stages):  # a scalar fills its column (an oltp route has 480)
        out[:, k] = stage.work_s
    return out
