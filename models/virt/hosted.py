"""Type-2 hypervisors (VirtualBox, VMware Workstation): a VMM running as a host process.

Everything a type-1 layer adds, plus the host OS in between:

- the VM's vCPUs are threads in the host scheduler, competing with ``host_background_cores``
  always-running host processes at equal weight;
- guest disk I/O becomes file I/O on the host: ``host_io_cycles`` of host kernel work per I/O
  (file system, page cache), and a read finds its block in the host page cache with probability
  ``host_cache_hit_ratio`` (then the device is not touched);
- the default NAT network is a user-space stage in the VMM process: ``user_nat`` seconds per
  packet at one station per guest (zero for a bridged adapter).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from models.demands import Demand, segments
from models.quantities import Cycles, Seconds
from models.virt.base import LayerContext, LayerParams, cpu_demand, station_demand
from models.virt.hypervisor import Type1, Type1Params
from sim.routes import StationSpec
from sim.stations import GroupPath

__all__ = ["HOST_GROUP", "Type2", "Type2Params"]

HOST_GROUP: GroupPath = ("host",)


class Type2Params(Type1Params):
    """A type-1 parameter set plus the host OS's costs."""

    host_io_cycles: Cycles = 30_000
    host_cache_hit_ratio: float = Field(0.0, ge=0, le=1)
    host_background_cores: int = Field(0, ge=0)
    user_nat_s: Seconds = Field(0.0, alias="user_nat")


class Type2(Type1):
    """A type-2 hypervisor's lowering (see the module docstring)."""

    kind: ClassVar[str] = "type2"
    params_model: ClassVar[type[LayerParams]] = Type2Params
    params: Type2Params

    def lower_io(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        *vmm, io = super().lower_io(d, ctx)
        p = self.params
        does_io = (io.amount > 0).astype(float)
        host_path = cpu_demand(does_io * p.host_io_cycles, self.name, ctx.group)
        if io.op == "read" and p.host_cache_hit_ratio > 0:
            hit = ctx.rng.random(io.amount.shape) < p.host_cache_hit_ratio
            io = io.with_amount(io.amount * ~hit)
        return [*vmm, host_path, io]

    def net_costs(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        costs = super().net_costs(d, ctx)
        if self.params.user_nat_s > 0:
            pk = segments(d.amount, ctx.segment_bytes)
            costs.append(station_demand(f"user-nat:{ctx.guest}", pk * self.params.user_nat_s, self.name))
        return costs

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        return [*super().stations(ctx), StationSpec(f"user-nat:{ctx.guest}", "fifo")]

    def background(self) -> dict[GroupPath, int]:
        n = self.params.host_background_cores
        return {HOST_GROUP: n} if n else {}
