"""Containers (Docker, LXC): the host kernel itself, seen through namespaces and cgroups.

What a container layer adds:

- **cgroups**: its group on the host CPU has ``cpu_weight`` (``cpu.weight``), a bandwidth quota
  from ``cpu_max`` (``cpu.max``: ``"50ms/100ms"``, or the kernel's own ``"50000 100000"`` in
  microseconds, or ``"max"``), and runs only on the cores of ``cpuset`` (``cpuset.cpus``: bound
  to those cores, shared with whatever else is bound there); ``io_max_iops`` and ``io_max_bps``
  (``io.max``) pace its I/O through a throttle station with one server, whose service is the time
  one operation's budget takes to refill; ``memory_max`` (``memory.max``) is recorded for the
  density model.
- **network namespace**: ``host`` adds nothing; ``bridge`` adds the veth pair and the Linux
  bridge, ``nat`` conntrack and NAT on top: kernel *work* per segment (no queue of their own). A
  received packet's work runs in the softirq of the kernel the container runs on (spread over
  cores by the NIC's queues); a sent packet's in the sending thread (veth hands it to the backlog
  of the same core).
- **overlay file system**: ``overlay_io_cycles`` of kernel work per I/O (layer lookups).
- **start-up** (``boot``, :mod:`virtsim.models.density.startup`): ``start_lock`` of it is spent
  holding locks every start on the same kernel needs (creating and wiring the network namespace
  under ``rtnl_mutex``, RCU grace periods waited out under them, the runtime daemon's own), so
  starts at once go through it one at a time, holding no core.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from virtsim.models.demands import Demand, segments
from virtsim.models.quantities import Bytes, BytesPerSecond, Cycles, Seconds
from virtsim.models.virt.base import Layer, LayerContext, LayerParams, cpu_demand, station_demand
from virtsim.sim.routes import Slot, StationSpec
from virtsim.sim.stations import GroupSpec
from virtsim.sim.units import UnitError, parse_quantity, quantity_text

__all__ = ["IO_MAX", "IO_MAX_BPS", "Container", "ContainerParams", "io_max_stations", "parse_cpu_max"]

IO_MAX = "io.max"
"""The kind of a container's ``io.max`` operations throttle (``io.max:GUEST``)."""
IO_MAX_BPS = "io.max.bps"
"""The kind of a container's ``io.max`` bytes throttle (``io.max.bps:GUEST``)."""


def io_max_stations(guest: str) -> tuple[str, str]:
    """The names of ``guest``'s ``io.max`` throttle stations: operations, then bytes."""
    return f"{IO_MAX}:{guest}", f"{IO_MAX_BPS}:{guest}"



def parse_cpu_max(value: str | None) -> tuple[float, float] | None:
    """Read ``cpu.max`` as (quota_s, period_s); ``None`` or ``"max"`` means no limit. Numbers
    without a unit are microseconds, the kernel's (``"50000 100000"``, ``"50000/100000"``)."""
    if value is None or value.strip() in ("max", "max 100000", ""):
        return None
    text = value.strip()
    if "/" in text:
        # a bare number is in the kernel's unit, microseconds ("50000/100000" is half a core),
        # as in the space-separated form; with a unit, that unit
        quota, period = (int(part) / 1e6 if re.fullmatch(r"\d+", part.strip()) else
                         parse_quantity(part.strip(), "seconds") for part in text.split("/", 1))
    elif re.fullmatch(r"\d+\s+\d+", text):
        quota, period = (int(part) / 1e6 for part in text.split())  # microseconds, rounded as "50ms" is
    else:
        raise UnitError(f"cpu_max {value!r}: write QUOTA/PERIOD like \"50ms/100ms\", or \"max\"")
    if not (quota > 0 and period > 0):
        raise UnitError(f"cpu_max {value!r}: quota and period must be > 0")
    problem = cpu_max_problem(quota, period)
    if problem:
        raise UnitError(f"cpu_max {value!r}: {problem} (write it with a unit, like \"50ms/100ms\", or in "
                        "microseconds, \"50000 100000\")")
    return quota, period


def _each_core_once(cores: list[int] | None, field: str) -> list[int] | None:
    """``cores`` as given, or ``ValueError`` naming a core listed twice in ``field``."""
    if cores is not None:
        twice = sorted({c for c in cores if cores.count(c) > 1})
        if twice:
            raise ValueError(f"{field} names core(s) {twice} more than once; list each core once")
    return cores


def cpu_max_problem(quota_s: float, period_s: float) -> str | None:
    """What the kernel would refuse in a ``cpu.max`` of ``quota_s`` per ``period_s`` seconds
    (kernel/sched/core.c: a period of 1 ms .. 1 s, a quota of at least 1 ms), or None. A slip of
    units (seconds for microseconds) lands far outside these bounds."""
    if not 1e-3 - 1e-12 <= period_s <= 1.0 + 1e-12:
        return f"the period is {period_s:g} s; the kernel takes 1 ms .. 1 s"
    if quota_s < 1e-3 - 1e-12:
        return f"the quota is {quota_s:g} s; the kernel takes at least 1 ms"
    return None


class ContainerParams(LayerParams):
    """Parameters of a container runtime and of one container's limits."""

    network: Literal["host", "bridge", "nat"] = "bridge"
    veth_cycles: Cycles = 3000
    bridge_cycles: Cycles = 6000
    nat_cycles: Cycles = 15000
    overlay_io_cycles: Cycles = 2000
    cpu_max: str | None = None
    cpu_weight: float = Field(100.0, ge=1, le=10_000)
    cpuset: list[int] | None = None
    memory_max_bytes: Bytes | None = Field(None, alias="memory_max")
    io_max_iops: float | None = Field(None, gt=0)
    io_max_bps: BytesPerSecond | None = Field(None, gt=0)
    runtime_memory_bytes: Bytes = Field(0, alias="runtime_memory")
    boot_s: Seconds = Field(1.0, alias="boot")  # from `run` to the process (p50)
    # of boot_s, the part a start spends holding locks its kernel's other starts need too (the
    # kernel's rtnl and namespace locks, the runtime daemon's own): starts at once take it in turn
    start_lock_s: Seconds = Field(0.0, alias="start_lock", ge=0)

    @model_validator(mode="after")
    def _lock_within_boot(self) -> ContainerParams:
        """Refuse a locked part longer than the whole start (raises ``ValueError``)."""
        if self.start_lock_s > self.boot_s:
            raise ValueError(f"start_lock ({self.start_lock_s:g} s) is part of boot ({self.boot_s:g} s) and cannot "
                             "be longer; lower start_lock")
        return self

    def unused(self) -> dict[str, str]:
        """The per-packet costs of a network path the container does not take (``network``)."""
        why = f'network = "{self.network}" '
        if self.network == "host":
            return dict.fromkeys(("veth_cycles", "bridge_cycles", "nat_cycles"), why + "shares the host's stack: "
                                 'no veth, bridge or NAT (set network = "bridge" or "nat")')
        if self.network == "bridge":
            return {"nat_cycles": why + 'has no NAT (set network = "nat")'}
        return {}

    @field_validator("cpuset")
    @classmethod
    def _cores_once(cls, value: list[int] | None) -> list[int] | None:
        """Refuse a core named twice (a cpuset is a set: ``[0, 0]`` is one core, and a label
        that says two would mislead)."""
        return _each_core_once(value, "cpuset")

    @field_validator("cpu_max")
    @classmethod
    def _check_cpu_max(cls, value: str | None) -> str | None:
        """``cpu_max`` in one canonical form, ``"50ms/100ms"`` (``"0.05s/0.1s"`` and the kernel's
        ``"50000 100000"`` too; no limit is ``None``), so equal limits compare and label alike;
        :class:`UnitError` if :func:`parse_cpu_max` cannot read it."""
        limit = parse_cpu_max(value)
        if limit is None:
            return None
        return "/".join(quantity_text(part, "seconds") for part in limit)


class Container(Layer):
    """A container's lowering (see the module docstring)."""

    kind: ClassVar[str] = "container"
    params_model: ClassVar[type[LayerParams]] = ContainerParams
    params: ContainerParams

    def packet_cycles(self) -> float:
        """Kernel work per segment of the container's network path (veth, bridge, NAT)."""
        p = self.params
        if p.network == "host":
            return 0.0
        return p.veth_cycles + p.bridge_cycles + (p.nat_cycles if p.network == "nat" else 0.0)

    def lower_net_in(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """A received message, then the namespace's kernel work per segment in the softirq (none with ``host``)."""
        per = self.packet_cycles()
        if not per:
            return [d]
        work = segments(d.amount, ctx.segment_bytes) * per
        return [d, cpu_demand(work, self.name, ctx.softirq, "bridge/nat")]

    def lower_net_out(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """The namespace's kernel work per segment in the sending thread (none with ``host``), then the message."""
        per = self.packet_cycles()
        if not per:
            return [d]
        return [cpu_demand(segments(d.amount, ctx.segment_bytes) * per, self.name, d.group, "bridge/nat",
                           per_client=d.per_client), d]

    def lower_io(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Overlay file system work per I/O, the ``io.max`` throttles (if set), then the I/O itself."""
        p = self.params
        does_io = (d.amount > 0).astype(float)
        out = [cpu_demand(does_io * p.overlay_io_cycles, self.name, d.group, per_client=d.per_client)]
        iops, bps = io_max_stations(ctx.guest)
        if p.io_max_iops is not None:
            out.append(station_demand(iops, does_io / p.io_max_iops, self.name))
        if p.io_max_bps is not None:
            out.append(station_demand(bps, d.amount / p.io_max_bps, self.name))
        return [*out, d]

    def group_spec(self) -> GroupSpec:
        """The container's cgroup: ``cpu_weight``, the ``cpu_max`` quota and period (s), and the ``cpuset`` cores."""
        p = self.params
        limit = parse_cpu_max(p.cpu_max)
        cores = tuple(sorted(set(p.cpuset))) if p.cpuset else None
        quota = {} if limit is None else {"quota_s": limit[0], "period_s": limit[1]}
        return GroupSpec(weight=p.cpu_weight, cores=cores, **quota)  # type: ignore[arg-type]

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        """The container's ``io.max`` throttle stations (operations and bytes), one FIFO server each."""
        return [StationSpec(name, "fifo") for name in io_max_stations(ctx.guest)]

    def unused_by(self, guest: str, route: Sequence[Slot]) -> dict[str, str]:
        """``io_max_iops`` and ``io_max_bps`` when the workload's requests do no disk I/O through
        this container (its throttles are never visited)."""
        if set(io_max_stations(guest)) & {slot.station for slot in route}:
            return {}
        why = "the workload does no disk I/O through this container"
        return {"io_max_iops": why, "io_max_bps": why}

    def check(self, cores: int, threads_per_core: int = 1) -> None:
        """Raise ``ValueError`` if the ``cpuset`` is empty or names a core outside ``0..cores-1``
        (a cpuset names cores; each brings its ``threads_per_core`` hardware threads)."""
        if self.params.cpuset is not None:
            bad = [c for c in self.params.cpuset if not 0 <= c < cores]
            if bad:
                raise ValueError(f"cpuset: CPUs {bad} do not exist where the container runs (CPUs 0..{cores - 1}: "
                                 "the host's cores, or the vCPUs of the VM it runs in)")
            if not self.params.cpuset:
                raise ValueError("cpuset: an empty cpuset can run nothing; name at least one core")
