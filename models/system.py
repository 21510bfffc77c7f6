"""A system: one host and the guests on it, turned into what the engines run.

:meth:`System.engine_inputs` lowers every guest's demands through its stack to the host and
returns the stations and the request sources (routes plus work samplers) for :mod:`sim`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.demands import Stage
from models.hardware.cpu import CPU_STATION
from models.hardware.host import HostSpec
from models.virt.stack import Stack
from models.workloads.request import RequestWorkload
from sim.routes import SamplerFactory, Slot, Source, StationSpec
from sim.stations import GroupPath, GroupSpec

__all__ = ["Guest", "System"]


@dataclass(frozen=True)
class Guest:
    """A named guest: its stack of layers and the workload it serves."""

    name: str
    stack: Stack
    workload: RequestWorkload


@dataclass(frozen=True)
class System:
    """A host and its guests."""

    host: HostSpec
    guests: tuple[Guest, ...]

    def __post_init__(self) -> None:
        names = [g.name for g in self.guests]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"guest names must be unique; repeated: {dupes}")
        for guest in self.guests:
            for layer in guest.stack.layers:
                try:
                    layer.check(self.host.cpu.cores)
                except ValueError as exc:
                    raise ValueError(f"guest {guest.name!r}, layer {layer.name!r}: {exc}") from exc

    def routes(self, guest: Guest) -> tuple[tuple[Slot, ...], SamplerFactory]:
        """The route of ``guest``'s requests and the factory of its work sampler."""
        probe = self._lower(guest, np.random.SeedSequence(0), 1)
        route = tuple(Slot(s.station, s.layer, s.group) for s in probe)

        def make_sampler(seed: np.random.SeedSequence) -> Callable[[int], np.ndarray]:
            workload_seed, layer_seed = seed.spawn(2)
            draw = guest.workload.sampler(workload_seed)
            contexts = guest.stack.contexts(guest.name, self.host, layer_seed)
            app = self.app_group(guest)

            def sample(n: int) -> np.ndarray:
                stages = guest.stack.lower(draw(n), contexts, self.host, app)
                return np.column_stack([np.broadcast_to(s.work_s, (n,)) for s in stages])

            return sample

        return route, make_sampler

    def _lower(self, guest: Guest, seed: np.random.SeedSequence, n: int) -> list[Stage]:
        workload_seed, layer_seed = seed.spawn(2)
        demands = guest.workload.sampler(workload_seed)(n)
        contexts = guest.stack.contexts(guest.name, self.host, layer_seed)
        return guest.stack.lower(demands, contexts, self.host, self.app_group(guest))

    def app_group(self, guest: Guest) -> GroupPath:
        """The group of the application's own work: the innermost layer's, or its thread pool's."""
        inner = guest.stack.contexts(guest.name, self.host)[0].group
        return (*inner, "threads") if guest.workload.threads is not None else inner

    def groups(self) -> dict[GroupPath, GroupSpec]:
        """Every guest's CPU groups, one per layer, nested from the host up."""
        out: dict[GroupPath, GroupSpec] = {}
        for guest in self.guests:
            for layer, ctx in zip(guest.stack.layers, guest.stack.contexts(guest.name, self.host), strict=True):
                out[ctx.group] = layer.group_spec()
            if guest.workload.threads is not None:
                out[self.app_group(guest)] = GroupSpec(max_servers=float(guest.workload.threads))
        return out

    def background(self) -> dict[GroupPath, int]:
        """Always-running host jobs (the most any layer asks for, per group)."""
        out: dict[GroupPath, int] = {}
        for guest in self.guests:
            for layer in guest.stack.layers:
                for group, n in layer.background().items():
                    out[group] = max(out.get(group, 0), n)
        return out

    def engine_inputs(self) -> tuple[list[StationSpec], list[Source]]:
        """Stations (only those some route visits, and the CPU) and one source per guest."""
        sources = []
        for guest in self.guests:
            route, make_sampler = self.routes(guest)
            sources.append(Source(guest.name, route, guest.workload.arrivals.arrivals(), make_sampler))
        used = {slot.station for source in sources for slot in source.route} | {CPU_STATION}
        candidates = [
            self.host.cpu.station(self.groups(), self.background()),
            self.host.memory.station(),
            *self.host.storage.stations(),
            *self.host.network.stations(),
        ]
        for guest in self.guests:
            for layer, ctx in zip(guest.stack.layers, guest.stack.contexts(guest.name, self.host), strict=True):
                candidates += layer.stations(ctx)
        stations: dict[str, StationSpec] = {}
        for spec in candidates:
            if spec.name in used:
                stations.setdefault(spec.name, spec)
        missing = used - set(stations)
        if missing:
            raise ValueError(f"routes visit stations nobody declares: {sorted(missing)}")
        return list(stations.values()), sources
