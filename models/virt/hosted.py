"""Type-2 hypervisors (VirtualBox, VMware Workstation): a VMM running as a host process.

Everything a type-1 layer adds, plus the host OS in between:

- the VM's vCPUs are threads in the host scheduler, competing with ``host_background_cores``
  always-running host processes at equal weight;
- guest disk I/O becomes file I/O on the host: ``host_io_cycles`` of host kernel work per I/O
  (file system, page cache) in the VMM's I/O thread, and a read finds its block in the host page
  cache with probability ``host_cache_hit_ratio`` (then the device is not touched);
- the default NAT network is a user-space TCP/IP stack in the VMM process: ``user_nat`` of
  work per segment in the VMM's NAT thread (one thread per VM on the host's cores; zero for a
  bridged adapter).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from virtsim.models.demands import Demand, segments
from virtsim.models.quantities import Cycles, Seconds
from virtsim.models.virt.base import LayerContext, LayerParams, cpu_demand
from virtsim.models.virt.hypervisor import Type1, Type1Params
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["HOST_GROUP", "USER_NAT", "Type2", "Type2Params"]

USER_NAT = "user-nat"
"""The VMM's user-space NAT thread (group name and label kind, ``user-nat:GUEST``)."""

HOST_GROUP: GroupPath = ("host",)


class Type2Params(Type1Params):
    """A type-1 parameter set plus the host OS's costs."""

    host_io_cycles: Cycles = 30_000
    host_cache_hit_ratio: float = Field(0.0, ge=0, le=1)
    host_background_cores: int = Field(0, ge=0, le=4096)
    user_nat_s: Seconds = Field(0.0, alias="user_nat")

    def unused(self) -> dict[str, str]:
        """The type-1 fields without effect, and the host file system's under passthrough."""
        out = super().unused()
        if self.io_path == "passthrough":
            out |= dict.fromkeys(("host_io_cycles", "host_cache_hit_ratio"),
                                 'io_path = "passthrough" gives the guest the device: no host file holds its disk')
        return out


class Type2(Type1):
    """A type-2 hypervisor's lowering (see the module docstring)."""

    kind: ClassVar[str] = "type2"
    params_model: ClassVar[type[LayerParams]] = Type2Params
    params: Type2Params

    def host_io(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Host file-system work per I/O in the VMM's I/O thread; a read hitting the page cache skips the device."""
        p = self.params
        does_io = (d.amount > 0).astype(float)
        host_path = cpu_demand(does_io * p.host_io_cycles, self.name, self._thread(ctx, "io"), "host fs")
        [d] = super().host_io(d, ctx)
        if d.op == "read" and p.host_cache_hit_ratio > 0:
            hit = ctx.rng.random(d.amount.shape) < p.host_cache_hit_ratio
            d = d.with_amount(d.amount * ~hit)
        return [host_path, d]

    def _nat(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """The user-space NAT's work for a message (``user_nat`` seconds per segment), if the VM uses it."""
        if self.params.user_nat_s <= 0:
            return []
        group = self._nat_group(ctx)
        work = segments(d.amount, ctx.segment_bytes) * self.params.user_nat_s * ctx.host.cpu.freq_hz
        return [cpu_demand(work, self.name, group, self._label(group))]

    def _nat_group(self, ctx: LayerContext) -> GroupPath:
        """The VMM's NAT thread on the host CPU."""
        return (*ctx.group, USER_NAT)

    def lower_net_in(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """As :meth:`Type1.lower_net_in`, with the user-space NAT's work after the host receive."""
        host_in, *rest = super().lower_net_in(d, ctx)
        return [host_in, *self._nat(d, ctx), *rest]

    def lower_net_out(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """As :meth:`Type1.lower_net_out`, with the user-space NAT's work before the host transmit."""
        *rest, host_out = super().lower_net_out(d, ctx)
        return [*rest, *self._nat(d, ctx), host_out]

    def groups(self, ctx: LayerContext) -> dict[GroupPath, GroupSpec]:
        """The type-1 groups plus, with user-space NAT, the VMM's NAT thread."""
        out = super().groups(ctx)
        if self.params.user_nat_s > 0:
            group = self._nat_group(ctx)
            out[group] = GroupSpec(threads=1, label=self._label(group))
        return out

    def background(self, ctx: LayerContext) -> dict[GroupPath, int]:
        """The type-1 background plus ``host_background_cores`` always-running host processes."""
        n = self.params.host_background_cores
        return {**super().background(ctx), **({HOST_GROUP: n} if n else {})}
