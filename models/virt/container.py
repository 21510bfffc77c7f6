"""Containers (Docker, LXC): the host kernel itself, seen through namespaces and cgroups.

What a container layer adds:

- **cgroups**: its group on the host CPU has ``cpu_weight`` (``cpu.weight``), a bandwidth quota
  from ``cpu_max`` (``cpu.max``: ``"50ms/100ms"``, or the kernel's own ``"50000 100000"`` in
  microseconds, or ``"max"``), and at most ``len(cpuset)`` cores (``cpuset.cpus``);
  ``io_max_iops`` and ``io_max_bps`` (``io.max``) pace its I/O through a throttle station with
  one server, whose service is the time one operation's budget takes to refill;
  ``memory_max`` (``memory.max``) is recorded for the density model.
- **network namespace**: ``host`` adds nothing; ``bridge`` adds the veth pair's kernel work on
  the container's CPU and a shared ``bridge`` stage per packet; ``nat`` adds conntrack/NAT per
  packet at a shared ``nat`` stage on top of that.
- **overlay file system**: ``overlay_io_cycles`` of kernel work per I/O (layer lookups).
"""

from __future__ import annotations

import math
import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from models.demands import Demand, segments
from models.quantities import Bytes, BytesPerSecond, Cycles, Seconds
from models.virt.base import Layer, LayerContext, LayerParams, cpu_demand, station_demand
from sim.routes import StationSpec
from sim.stations import GroupSpec
from sim.units import UnitError, parse_quantity

__all__ = ["BRIDGE_STATION", "NAT_STATION", "Container", "ContainerParams", "parse_cpu_max"]

BRIDGE_STATION = "bridge"
NAT_STATION = "nat"


def parse_cpu_max(value: str | None) -> tuple[float, float] | None:
    """Read ``cpu.max`` as (quota_s, period_s); ``None`` or ``"max"`` means no limit."""
    if value is None or value.strip() in ("max", "max 100000", ""):
        return None
    text = value.strip()
    if "/" in text:
        quota, period = (parse_quantity(part.strip(), "seconds") for part in text.split("/", 1))
    elif re.fullmatch(r"\d+\s+\d+", text):
        quota, period = (int(part) * 1e-6 for part in text.split())
    else:
        raise UnitError(f"cpu_max {value!r}: write QUOTA/PERIOD like \"50ms/100ms\", or \"max\"")
    if not (quota > 0 and period > 0):
        raise UnitError(f"cpu_max {value!r}: quota and period must be > 0")
    return quota, period


class ContainerParams(LayerParams):
    """Parameters of a container runtime and of one container's limits."""

    network: Literal["host", "bridge", "nat"] = "bridge"
    veth_packet_cycles: Cycles = 3000
    bridge_packet_s: Seconds = Field(2e-6, alias="bridge_packet")
    nat_packet_s: Seconds = Field(5e-6, alias="nat_packet")
    overlay_io_cycles: Cycles = 2000
    cpu_max: str | None = None
    cpu_weight: float = Field(100.0, ge=1, le=10_000)
    cpuset: list[int] | None = None
    memory_max_bytes: Bytes | None = Field(None, alias="memory_max")
    io_max_iops: float | None = Field(None, gt=0)
    io_max_bps: BytesPerSecond | None = Field(None, gt=0)
    runtime_memory_bytes: Bytes = Field(0, alias="runtime_memory")
    boot_s: Seconds = Field(1.0, alias="boot")  # from `run` to the process (p50)

    @field_validator("cpu_max")
    @classmethod
    def _check_cpu_max(cls, value: str | None) -> str | None:
        parse_cpu_max(value)
        return value


class Container(Layer):
    """A container's lowering (see the module docstring)."""

    kind: ClassVar[str] = "container"
    params_model: ClassVar[type[LayerParams]] = ContainerParams
    params: ContainerParams

    def lower(self, demands: list[Demand], ctx: LayerContext) -> list[Demand]:
        out: list[Demand] = []
        for d in demands:
            if d.kind == "io":
                out += [*self.io_costs(d, ctx), d]
            elif d.kind == "net_in":
                out += [d, *self.net_costs(d, ctx)[::-1]]
            elif d.kind == "net_out":
                out += [*self.net_costs(d, ctx), d]
            else:
                out.append(d)
        return out

    def io_costs(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        p = self.params
        does_io = (d.amount > 0).astype(float)
        out = [cpu_demand(does_io * p.overlay_io_cycles, self.name, ctx.group)]
        if p.io_max_iops is not None:
            out.append(station_demand(f"io.max:{ctx.guest}", does_io / p.io_max_iops, self.name))
        if p.io_max_bps is not None:
            out.append(station_demand(f"io.max.bps:{ctx.guest}", d.amount / p.io_max_bps, self.name))
        return out

    def net_costs(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        p = self.params
        if p.network == "host":
            return []
        pk = segments(d.amount, ctx.segment_bytes)
        out = [
            cpu_demand(pk * p.veth_packet_cycles, self.name, ctx.group),
            station_demand(_scoped(BRIDGE_STATION, ctx), pk * p.bridge_packet_s, self.name),
        ]
        if p.network == "nat":
            out.append(station_demand(_scoped(NAT_STATION, ctx), pk * p.nat_packet_s, self.name))
        return out

    def group_spec(self) -> GroupSpec:
        p = self.params
        limit = parse_cpu_max(p.cpu_max)
        cores = float(len(set(p.cpuset))) if p.cpuset else math.inf
        if limit is None:
            return GroupSpec(weight=p.cpu_weight, max_servers=cores)
        return GroupSpec(weight=p.cpu_weight, max_servers=cores, quota_s=limit[0], period_s=limit[1])

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        return [
            StationSpec(_scoped(BRIDGE_STATION, ctx), "fifo"),
            StationSpec(_scoped(NAT_STATION, ctx), "fifo"),
            StationSpec(f"io.max:{ctx.guest}", "fifo"),
            StationSpec(f"io.max.bps:{ctx.guest}", "fifo"),
        ]

    def check(self, host_cores: int) -> None:
        if self.params.cpuset is not None:
            bad = [c for c in self.params.cpuset if not 0 <= c < host_cores]
            if bad:
                raise ValueError(f"cpuset: cores {bad} do not exist (cores 0..{host_cores - 1})")
            if not self.params.cpuset:
                raise ValueError("cpuset: an empty cpuset can run nothing; name at least one core")




def _scoped(station: str, ctx: LayerContext) -> str:
    """The host's bridge is shared by its containers; a VM's containers use the VM's own."""
    return f"{station}:{ctx.scope}" if ctx.scope else station
