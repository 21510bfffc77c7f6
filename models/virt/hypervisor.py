"""Type-1 hypervisors (KVM, ESXi, Xen, Hyper-V, Firecracker): a guest kernel on vCPUs.

What a type-1 layer adds to the demands of its guest:

- **vCPU scheduling**: the guest's CPU work runs in the VM's group on the host CPU, capped at
  ``vcpus`` cores (or the pinned cores) and weighted by vCPU count; steal time under
  overcommit emerges from the sharing.
- **Nested paging**: each TLB miss walks two dimensions of page tables (``walk_dims`` + 1).
- **Storage**: ``exits_per_io`` VM exits of ``exit_cycles`` each on the VM's CPU, then the
  VMM's device emulation as a serialised stage (``io_thread_read`` or ``io_thread_write`` seconds
  per I/O at one station per guest: QEMU's I/O thread), then the I/O itself on the host's device. ``emulated`` devices
  take ``emulated_exit_factor`` times the exits; ``passthrough`` skips the VMM stage and keeps
  only the completion interrupt's exit.
- **Network**: per message, exits on the VM's CPU and ``net_thread`` seconds per segment at the
  VMM's network stage (vhost or the VMM's device thread), beside the host's own NIC path.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Literal

from pydantic import Field

from models.demands import Demand, segments
from models.quantities import Bytes, Cycles, Seconds
from models.virt.base import Layer, LayerContext, LayerParams, cpu_demand, station_demand
from sim.routes import StationSpec
from sim.stations import DEFAULT_WEIGHT, GroupSpec

__all__ = ["Type1", "Type1Params"]


class Type1Params(LayerParams):
    """Parameters of a type-1 hypervisor and of the VM it runs."""

    vcpus: int = Field(2, ge=1)
    pin: list[int] | None = None
    exit_cycles: Cycles = 2528
    exits_per_io: float = Field(2.0, ge=0)
    exits_per_message: float = Field(2.0, ge=0)
    io_path: Literal["virtio", "emulated", "passthrough"] = "virtio"
    emulated_exit_factor: float = Field(10.0, ge=1)
    io_thread_read_s: Seconds = Field(20e-6, alias="io_thread_read")
    io_thread_write_s: Seconds = Field(20e-6, alias="io_thread_write")
    net_thread_s: Seconds = Field(10e-6, alias="net_thread")
    nested_paging: bool = True
    vmm_memory_bytes: Bytes = Field(0, alias="vmm_memory")
    guest_memory_bytes: Bytes = Field(2 * 2**30, alias="guest_memory")
    guest_os_memory_bytes: Bytes = Field(150 * 2**20, alias="guest_os_memory")
    ksm_sharing: float = Field(0.3, ge=0, le=1)
    balloon: bool = True  # a balloon driver returns memory the guest does not use to the host
    idle_cpu_cores: float = Field(0.005, ge=0)
    boot_s: Seconds = Field(1.0, alias="boot")  # from start to the guest's init (p50)


class Type1(Layer):
    """A type-1 hypervisor's lowering (see the module docstring)."""

    kind: ClassVar[str] = "type1"
    params_model: ClassVar[type[LayerParams]] = Type1Params
    params: Type1Params

    def lower(self, demands: list[Demand], ctx: LayerContext) -> list[Demand]:
        out: list[Demand] = []
        for d in demands:
            if d.kind == "mem" and self.params.nested_paging:
                out.append(replace(d, walk_dims=d.walk_dims + 1))
            elif d.kind == "io":
                out += self.lower_io(d, ctx)
            elif d.kind == "net_in":
                out += [d, *self.net_costs(d, ctx)[::-1]]
            elif d.kind == "net_out":
                out += [*self.net_costs(d, ctx), d]
            else:
                out.append(d)
        return out

    def lower_io(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Exits, then the VMM's serialised emulation, then the I/O itself."""
        p = self.params
        does_io = (d.amount > 0).astype(float)
        exits = p.exits_per_io
        if p.io_path == "emulated":
            exits *= p.emulated_exit_factor
        elif p.io_path == "passthrough":
            exits = min(exits, 1.0)  # only the completion interrupt still exits
        out = [cpu_demand(does_io * exits * p.exit_cycles, self.name, ctx.group)]
        if p.io_path != "passthrough":
            per_io = p.io_thread_write_s if d.op == "write" else p.io_thread_read_s
            out.append(station_demand(f"vmm-io:{ctx.guest}", does_io * per_io, self.name))
        return [*out, d]

    def net_costs(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Per message: exits on the VM's CPU, then the VMM's network stage per packet."""
        p = self.params
        pk = segments(d.amount, ctx.segment_bytes)
        exits = cpu_demand((pk > 0) * p.exits_per_message * p.exit_cycles, self.name, ctx.group)
        return [exits, station_demand(f"vmm-net:{ctx.guest}", pk * p.net_thread_s, self.name)]

    def group_spec(self) -> GroupSpec:
        cores = float(self.params.vcpus)
        if self.params.pin is not None:
            cores = min(cores, float(len(set(self.params.pin))))
        return GroupSpec(weight=DEFAULT_WEIGHT * self.params.vcpus, max_servers=cores)

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        return [StationSpec(f"vmm-io:{ctx.guest}", "fifo"), StationSpec(f"vmm-net:{ctx.guest}", "fifo")]

    def check(self, host_cores: int) -> None:
        pin = self.params.pin
        if pin is not None:
            bad = [c for c in pin if not 0 <= c < host_cores]
            if bad:
                raise ValueError(f"pin: cores {bad} do not exist (the host has cores 0..{host_cores - 1})")
            if len(pin) < self.params.vcpus:
                raise ValueError(
                    f"pin: {self.params.vcpus} vCPUs pinned to only {len(pin)} cores; "
                    "name one core per vCPU"
                )
        if self.params.vcpus > host_cores and pin is not None:
            raise ValueError(f"vcpus: {self.params.vcpus} pinned vCPUs exceed the host's {host_cores} cores")


