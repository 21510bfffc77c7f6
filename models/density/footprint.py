"""Footprints: what one guest costs the host in memory and idle CPU, whatever it serves.

Per guest, a stack costs:

- a VM layer: its VMM's own memory (``vmm_memory``, plus ``vmm_memory_per_vcpu`` per vCPU and
  ``vmm_memory_fraction`` of ``guest_memory`` where a profile's VMM grows so), the guest OS's working set
  (``guest_os_memory``) of which a fraction (``identical_fraction``) is identical among alike
  guests and kept once on the host where the hypervisor shares pages between guests
  (``page_sharing = "between-guests"``: KVM on a host running KSM, VMware Workstation; not ESXi
  since 2014, whose salting confines sharing to each guest, nor Hyper-V, stock Xen, Firecracker
  or VirtualBox with Linux guests; KVM's default follows the kernel's, KSM off), and
  ``idle_cpu_cores`` of timer ticks and housekeeping. With a balloon driver (``balloon``) the
  host backs only what the guest uses; without one, the guest's page cache fills the rest of
  its ``guest_memory`` in time, and the host backs all of it;
- a container layer: the runtime's memory (``runtime_memory``: shim, and the like);
- the application: its working set, private to each guest.

``host_memory(n)`` is what n identical guests use: n private parts plus one copy of the shared
part. A container whose ``memory_max`` is below its working set is killed by the OOM killer.
"""

from __future__ import annotations

from dataclasses import dataclass

from virtsim.models.virt.container import Container
from virtsim.models.virt.hypervisor import Type1
from virtsim.models.virt.stack import Stack

__all__ = ["Footprint", "footprint"]


@dataclass(frozen=True)
class Footprint:
    """Per-guest memory (private and shared among alike guests), idle CPU, and OOM risk
    (``oom_reason`` says which limit is below what it must hold)."""

    private_bytes: float
    shared_bytes: float
    idle_cpu_cores: float
    oom: bool = False
    oom_reason: str = ""

    def host_memory(self, guests: int) -> float:
        """Bytes ``guests`` identical guests use on the host."""
        return guests * self.private_bytes + (self.shared_bytes if guests > 0 else 0.0)


def footprint(stack: Stack, app_memory_bytes: float) -> Footprint:
    """The footprint of one guest running an application of ``app_memory_bytes`` working set.

    A VM must hold its guest OS and all that runs inside it: one whose ``guest_memory`` a scenario
    set below that is OOM (its kernel kills the application, as a container's ``memory_max``
    does); one left at its profile's size is sized up to hold it (a 2 GiB default does not make an
    8 GiB database impossible), and its VMM's overhead grows with that size.
    """
    private, shared, idle, reasons = float(app_memory_bytes), 0.0, 0.0, list[str]()
    for layer in stack.layers:  # the guest's own layer first: what is inside each VM is known there
        if isinstance(layer, Type1):
            p = layer.params
            inside = private + shared + p.guest_os_memory_bytes
            size = p.guest_memory_bytes
            if size < inside:
                if "guest_memory_bytes" in layer.overrides:
                    reasons.append(f"{layer.label}: guest_memory {size / 2**30:.3g} GiB is below the "
                                   f"{inside / 2**30:.3g} GiB its guest OS and application need")
                size = inside
            between = p.identical_fraction if p.page_sharing == "between-guests" else 0.0
            private += p.vmm_overhead(size) + p.guest_os_memory_bytes * (1 - between)
            shared += p.guest_os_memory_bytes * between
            idle += p.idle_cpu_cores
            if not p.balloon:  # the unused rest of the guest's memory fills with page cache
                private += max(0.0, size - inside)
        elif isinstance(layer, Container):
            private += layer.params.runtime_memory_bytes
            limit = layer.params.memory_max_bytes
            if limit is not None and limit < app_memory_bytes:
                reasons.append(f"{layer.label}: memory_max {limit / 2**30:.3g} GiB is below the application's "
                               f"{app_memory_bytes / 2**30:.3g} GiB")
    return Footprint(private, shared, idle, bool(reasons), "; ".join(reasons))
