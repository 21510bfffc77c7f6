"""Type-1 hypervisors (KVM, ESXi, Xen, Hyper-V, Firecracker): a guest kernel on vCPUs.

What a type-1 layer adds to the demands of its guest, each cost work on a named thread or a delay:

- **vCPUs**: the guest's work runs in the VM's ``vcpu`` group on the host CPU, capped at
  ``vcpus`` cores and bound to ``pin`` if given; steal time under overcommit emerges from the
  sharing. ``pin`` binds the whole VM process, as a cpuset or ``taskset`` of it does: its
  back-end threads in the VM's group (vhost, the I/O thread) run on the pinned cores too
  (libvirt's ``vcpupin`` with the emulator threads left to float is not modelled). The guest
  has its own kernel: its receive path (``rx_cycles`` per segment of the host's network profile)
  runs in the guest's softirq thread, its transmit path in the sender.
- **Exits**: each costs the CPU's hardware round trip (``vmexit_cycles`` of the host's CPU
  profile: VM exit and entry, by processor generation) plus ``exit_handler_cycles``, the
  hypervisor's own handling, on the vCPU. A
  notification to the device back end (``kick_exits``) is sent only if the back-end thread is
  idle (virtio's event index: a busy back end polls the ring), an interrupt (``inject_exits``:
  the injection and the EOI trap) only if the guest's receive path is idle (NAPI polls while
  busy), and an inter-vCPU wake-up IPI (``ipi_exits``, multi-vCPU guests) only if the
  application's thread sleeps. So per-request exits fall as load rises. With APICv (``apicv``,
  on a CPU that has it: Intel since Ivy Bridge-EP) interrupts are posted to the running vCPU
  and its EOI is virtualized: an interrupt costs no exit, and an IPI only the sender's (the ICR
  write; IPI virtualization came later, with Sapphire Rapids).
- **Notifications take time**: a kick or an interrupt that is sent also waits ``notify_latency``
  (ioeventfd and irqfd signalling, the other side noticing), a delay paid with the exits.
- **Halted vCPUs**: an interrupt to a VM whose vCPUs all halted waits ``vcpu_wakeup`` (HLT exit,
  the host scheduler, VM entry); with halt polling a vCPU idle for less than ``halt_poll``
  is still spinning and wakes at once.
- **Device back ends, where they run**: network in the host kernel's ``vhost`` thread
  (``net_backend = "vhost"``) or in the VMM process's thread (``"vmm"``: Firecracker), block
  in a dedicated I/O thread (``io_backend = "iothread"``: QEMU) or the VMM thread (``"vmm"``);
  or in a privileged **driver domain** that serves every guest's I/O: Xen's dom0 (``netback``,
  ``blkback``) or Hyper-V's root partition (``netvsp``, ``storvsp``). A driver domain is one
  group on the host CPU with its own ``driver_domain_vcpus`` (0: as many as the host has
  cores), scheduled beside the guests; each guest's back-end thread runs inside it, so all
  guests' back-end work shares those vCPUs.
  Each back-end thread is one FIFO thread on the host CPU that competes with the vCPUs for
  cores; it costs ``net_packet_cycles`` per segment and ``net_page_cycles`` per 4 KiB of payload
  (pinning and mapping guest pages) plus the copy, ``io_thread_read``/``_write`` per
  request plus ``io_segment`` per further ``io_segment_bytes``. A thread that sleeps is woken
  after the CPU's ``wakeup``. With ``io_sync`` the VMM thread is held through the device access
  (blocking system calls), so it serves one I/O at a time. ``emulated`` devices take
  ``emulated_exit_factor`` times the exits; ``passthrough`` skips the back end and keeps only the
  completion interrupt. The host bridge and tap cost ``bridge_cycles`` per segment.
- **Nested paging**: each TLB miss walks two dimensions of page tables (``walk_dims`` + 1).
- **The CPU model the guest sees** (``cpu_model``): ``"host"`` passes the host's CPUID through
  (QEMU's ``-cpu host``, libvirt's host-passthrough or host-model; what ESXi, Hyper-V and Xen
  show by default), ``"generic"`` shows a baseline x86-64 CPU (QEMU's ``qemu64``, the default
  when no model is named) without AVX. Vector code (a ``cpu`` demand with
  ``simd_flops_per_cycle``) then runs on the host CPU's ``baseline_flops_per_cycle`` (SSE2) and
  takes proportionally more cycles on the vCPU; the extra cycles are charged to this layer.
- **The guest kernel's own events** (``kernel`` demands: system calls, page faults, exceptions,
  page-table writes, context switches, port I/O), by the CPU virtualization mode:

  ===============  ===================  ==========================  ============================
  event            hardware, nested     hardware, shadow paging     binary translation
                   paging (EPT, NPT)    (VT-x or SVM without it)    (``binary_translation``)
  ===============  ===================  ==========================  ============================
  syscall          native               native                      ``bt_syscall_cycles``
  page_fault       native               exit, ``shadow_fault``      ``bt_fault_cycles``
  exception        native               native                      ``bt_fault_cycles``
  pte_write        native               exit, ``shadow_pte``        ``bt_pte_cycles``
  context_switch   native               exit (generic handler)      native
  port_io          exit, ``port_io``    exit, ``port_io``           ``bt_port_io_cycles``
  ===============  ===================  ==========================  ============================

  "native": the guest kernel handles it on its vCPU as on bare metal, no exit. Under shadow
  paging the hypervisor must see every guest page fault (hidden or true) and every write to a
  guest page table (it write-protects them) and every CR3 load, each an exit whose handler is
  the named one. Binary translation runs the guest kernel's code translated: faults and system
  calls go through the VMM's own handlers (no hardware exit), page-table writes in translated
  code become calls into the VMM. An exit costs the world switch (``vmexit_cycles``, nested
  through the hypervisors below) plus its handler; an emulated port access replaces the device
  access. Each event's native cost stays with the guest's thread.
- **A hypervisor inside another's VM** (KVM in KVM): its guest's exits trap to the host
  hypervisor (L0) first, which reflects each one into the guest hypervisor (L1) and, when L1
  resumes its guest, emulates that VM entry: each exit of the inner guest costs L1's handler
  plus two switches through L0 (each an exit of L1's guest, with L0's ``nested_transition_cycles``
  of emulation), plus, on a CPU without VMCS shadowing, one L0 exit per VMREAD/VMWRITE of L1's
  handler (``vmcs_accesses``). Deeper nesting multiplies again, as each switch is itself an exit
  of a nested guest. Memory is not walked in three dimensions: L0 merges L1's tables for its
  guest with its own into one shadow (KVM's shadow EPT, the Turtles paper's multi-dimensional
  paging), so the hardware walks two; only the outermost layer adds a dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from virtsim.models.demands import Demand, KernelEvent, segments
from virtsim.models.hardware.cpu import CPU_STATION
from virtsim.models.hardware.host import SOFTIRQ
from virtsim.models.quantities import Bytes, Cycles, Seconds
from virtsim.models.virt.base import (
    EnclosingHypervisor,
    Layer,
    LayerContext,
    LayerParams,
    cpu_demand,
    delay_demand,
    station_demand,
)
from virtsim.sim.routes import IdleCondition, Slot, StationSpec
from virtsim.sim.stations import DEFAULT_WEIGHT, GroupPath, GroupSpec

__all__ = ["BACKEND_THREADS", "DRIVER_DOMAIN", "DRIVER_DOMAIN_BACKENDS", "VCPUS", "VMM_LOCK", "Type1", "Type1Params"]

DRIVER_DOMAIN = "driver-domain"
"""The group of a privileged VM that runs device back ends for every guest (Xen dom0, Hyper-V's
root): beside the VMs at the level they run on (on the host, or inside a VM for a nested one)."""
DRIVER_DOMAIN_BACKENDS = frozenset({"netback", "blkback", "netvsp", "storvsp"})
"""Back ends that run in the driver domain, one thread per guest (label ``netback:GUEST``)."""
BACKEND_THREADS = {"vhost": "vhost", "iothread": "vmm-io", "vmm": "vmm"}
"""The host thread (group name and label kind) of each back end that runs beside the VM."""
GENERIC_CPU_LABEL = "generic CPU model"
"""The stage of the work a generic CPU model adds (vector code run on the baseline ISA)."""
VCPUS = "vcpus"
"""The label kind of a VM's vCPU group (``vcpus:GUEST``) and of a driver domain's."""
VMM_LOCK = "vmm-lock"
"""The kind of the lock station of a synchronous VMM thread (``vmm-lock:GUEST``)."""


class Type1Params(LayerParams):
    """Parameters of a type-1 hypervisor and of the VM it runs."""

    vcpus: int = Field(2, ge=1, le=4096)
    pin: list[int] | None = None
    exit_handler_cycles: Cycles = 1431
    kick_exits: float = Field(1.0, ge=0)
    inject_exits: float = Field(2.0, ge=0)
    ipi_exits: float = Field(2.0, ge=0)
    apicv: bool = True  # use APICv and posted interrupts where the CPU has them (KVM: enable_apicv)
    vcpu_wakeup_s: Seconds = Field(7e-6, alias="vcpu_wakeup")
    notify_latency_s: Seconds = Field(0.0, alias="notify_latency")
    halt_poll_s: Seconds = Field(0.0, alias="halt_poll")
    io_path: Literal["virtio", "emulated", "passthrough"] = "virtio"
    emulated_exit_factor: float = Field(10.0, ge=1)
    io_backend: Literal["iothread", "vmm", "blkback", "storvsp"] = "iothread"
    io_thread_read_s: Seconds = Field(20e-6, alias="io_thread_read")
    io_thread_write_s: Seconds = Field(20e-6, alias="io_thread_write")
    io_segment_s: Seconds = Field(0.5e-6, alias="io_segment")
    io_segment_bytes: Bytes = Field(128 * 1024, alias="io_segment_size", gt=0)
    io_sync: bool = False
    net_backend: Literal["vhost", "vmm", "netback", "netvsp"] = "vhost"
    driver_domain_vcpus: int = Field(0, ge=0, le=4096)
    net_packet_cycles: Cycles = 3_000
    net_page_cycles: Cycles = 1_000
    bridge_cycles: Cycles = 6000
    guest_net_queues: int = Field(1, ge=1, le=256)
    nested_paging: bool = True
    cpu_model: Literal["host", "generic"] = "host"
    # The guest kernel's events (see the module docstring): binary translation (then without
    # nested paging) or hardware assist; each handler's cycles, None for the generic one
    # (exit_handler_cycles) under hardware assist. Binary translation needs its four.
    binary_translation: bool = False
    shadow_fault_cycles: Cycles | None = None
    shadow_pte_cycles: Cycles | None = None
    port_io_cycles: Cycles | None = None
    bt_syscall_cycles: Cycles | None = None
    bt_fault_cycles: Cycles | None = None
    bt_pte_cycles: Cycles | None = None
    bt_port_io_cycles: Cycles | None = None
    # When this hypervisor hosts another (nested virtualization): its emulation work per switch
    # between the guest hypervisor and that one's guest; and, when this one runs nested, the
    # VMCS fields its exit handler reads and writes (each an exit without VMCS shadowing).
    nested_transition_cycles: Cycles = 1662
    vmcs_accesses: float = Field(12.0, ge=0, le=1000)
    vmm_memory_bytes: Bytes = Field(0, alias="vmm_memory")
    # what the VMM's memory grows by per vCPU (its thread, monitor and per-vCPU state) and per
    # byte of guest memory (the tables that map guest memory: the physical-to-machine map and the
    # like), beyond the fixed vmm_memory
    vmm_memory_per_vcpu_bytes: Bytes = Field(0, alias="vmm_memory_per_vcpu")
    vmm_memory_fraction: float = Field(0.0, ge=0, le=1)
    guest_memory_bytes: Bytes = Field(2 * 2**30, alias="guest_memory")
    guest_os_memory_bytes: Bytes = Field(150 * 2**20, alias="guest_os_memory")
    # Page sharing: which pages the hypervisor deduplicates by content ("off"; "within-guest",
    # ESXi's default since 2014, which saves nothing between guests and, with large pages backing
    # a guest, nothing until memory is overcommitted; "between-guests", KSM or ESX's old default),
    # and the share of the guest OS's memory identical among alike guests (what sharing can find).
    page_sharing: Literal["off", "within-guest", "between-guests"] = "between-guests"
    identical_fraction: float = Field(0.3, ge=0, le=1)
    balloon: bool = True  # a balloon driver returns memory the guest does not use to the host
    idle_cpu_cores: float = Field(0.005, ge=0)
    boot_s: Seconds = Field(1.0, alias="boot")  # from start to the guest's init (p50)


    def vmm_overhead(self, guest_memory_bytes: float | None = None) -> float:
        """The host memory the VMM takes beside the guest's own (bytes): ``vmm_memory`` plus
        ``vmm_memory_per_vcpu`` per vCPU plus ``vmm_memory_fraction`` of the guest's memory
        (``guest_memory_bytes``, by default ``guest_memory``)."""
        size = self.guest_memory_bytes if guest_memory_bytes is None else guest_memory_bytes
        return self.vmm_memory_bytes + self.vmm_memory_per_vcpu_bytes * self.vcpus + self.vmm_memory_fraction * size

    def unused(self) -> dict[str, str]:
        """Costs of mechanisms these values switch off: a driver domain no back end runs in,
        a back end's I/O work under passthrough, an emulated device's exits without one, the
        handlers of the CPU virtualization mode not in use, and what page sharing between guests
        finds when it is off. (What the host switches off: :meth:`Type1.unused_here`.)"""
        out: dict[str, str] = {}
        if not {self.net_backend, self.io_backend} & DRIVER_DOMAIN_BACKENDS:
            out["driver_domain_vcpus"] = ("no back end runs in a driver domain (net_backend = \"netback\" or "
                                          "\"netvsp\", io_backend = \"blkback\" or \"storvsp\" would)")
        if self.io_path == "passthrough":
            out |= dict.fromkeys(("io_thread_read_s", "io_thread_write_s", "io_segment_s", "io_segment_bytes"),
                                 'io_path = "passthrough" gives the guest the device: no back end works on its I/O')
        if self.io_path != "emulated":
            out["emulated_exit_factor"] = f'it counts an emulated device\'s exits, and io_path = "{self.io_path}"'
        if self.binary_translation:
            out |= dict.fromkeys(("shadow_fault_cycles", "shadow_pte_cycles", "port_io_cycles"),
                                 "binary translation handles these events (the bt_*_cycles)")
        else:
            out |= dict.fromkeys(_BT_COSTS, "only binary_translation = true translates the guest's kernel")
        if self.page_sharing != "between-guests":
            out["identical_fraction"] = (f'it is what sharing between guests finds, and page_sharing = '
                                         f'"{self.page_sharing}" (set "between-guests")')
        return out

    @model_validator(mode="after")
    def _translation_needs_its_costs(self) -> Type1Params:
        """Binary translation needs shadow paging and the cycles of each translated event (raises ``ValueError``)."""
        if not self.binary_translation:
            return self
        if self.nested_paging:
            raise ValueError("binary_translation = true runs the guest on shadow page tables; set "
                             "nested_paging = false (nested paging needs hardware assist)")
        missing = [f for f in _BT_COSTS if getattr(self, f) is None]
        if missing:
            raise ValueError(f"binary_translation = true needs the cost of each translated event: set "
                             f"{', '.join(missing)} (cycles)")
        return self


_BT_COSTS = ("bt_syscall_cycles", "bt_fault_cycles", "bt_pte_cycles", "bt_port_io_cycles")


class Type1(Layer):
    """A type-1 hypervisor's lowering (see the module docstring)."""

    kind: ClassVar[str] = "type1"
    params_model: ClassVar[type[LayerParams]] = Type1Params
    params: Type1Params

    # -- where things run --------------------------------------------------------------------

    def inner_group(self, group: GroupPath) -> GroupPath:
        """The VM's vCPU group, inside the layer's own: where its guest kernel and what runs on it are scheduled."""
        return (*group, "vcpu")

    def runs_kernel(self) -> bool:
        """Always ``True``: the VM runs a guest kernel."""
        return True

    def _softirq(self, ctx: LayerContext) -> GroupPath:
        """The guest kernel's receive thread(s)."""
        return (*self.inner_group(ctx.group), SOFTIRQ)

    def _thread(self, ctx: LayerContext, what: Literal["net", "io"]) -> GroupPath:
        """The host CPU group of the network or I/O back-end thread (inside the driver domain for Xen and Hyper-V)."""
        backend = self.params.net_backend if what == "net" else self.params.io_backend
        if backend in DRIVER_DOMAIN_BACKENDS:  # one back-end thread per guest, inside the driver domain
            return (*self._driver_domain(ctx), f"{backend}:{'/'.join(ctx.group)}")
        return (*ctx.group, BACKEND_THREADS[backend])

    def _driver_domain(self, ctx: LayerContext) -> GroupPath:
        """The driver domain's group (beside the guests' groups on the host CPU)."""
        return (*ctx.group[:-1], DRIVER_DOMAIN)

    def _label(self, group: GroupPath) -> str:
        """The name a back-end thread's utilization and time are reported under."""
        if len(group) >= 2 and group[-2] == DRIVER_DOMAIN:
            return group[-1]
        return f"{group[-1]}:{'/'.join(group[:-1])}"

    def _lock(self, ctx: LayerContext) -> str:
        """The name of the lock station that holds the VMM thread through a synchronous access."""
        return f"{VMM_LOCK}:{'/'.join(ctx.group)}"

    def _holds_lock(self, what: Literal["net", "io"]) -> bool:
        """Whether this back end's work must hold the VMM thread's lock (a synchronous VMM thread)."""
        p = self.params
        if not p.io_sync:
            return False
        return what == "io" or (p.net_backend == "vmm" and p.io_backend == "vmm")

    def _wake_thread(self, group: GroupPath, ctx: LayerContext, used: np.ndarray) -> Demand:
        """A back-end thread that sleeps is woken by the host scheduler first."""
        return delay_demand(used * ctx.host.cpu.wakeup_s, self.name, f"{self._label(group)} wake",
                            IdleCondition(CPU_STATION, group))

    def _backend(self, seconds: np.ndarray, ctx: LayerContext, what: Literal["net", "io"],
                 inner: list[Demand] | None = None) -> list[Demand]:
        """Wake the back-end thread if it sleeps, do its work (and, synchronously, ``inner``)."""
        group = self._thread(ctx, what)
        work = cpu_demand(seconds * ctx.host.cpu.freq_hz, self.name, group, self._label(group))
        used = (np.asarray(seconds) > 0).astype(float)
        out = [self._wake_thread(group, ctx, used)]
        if self._holds_lock(what):
            lock = self._lock(ctx)
            return [*out, station_demand(lock, used, self.name, "acquire"), work, *(inner or []),
                    station_demand(lock, used, self.name, "release")]
        return [*out, work, *(inner or [])]

    def unused_here(self, ctx: LayerContext, inner: Sequence[Layer] = ()) -> dict[str, str]:
        """What the host and the hypervisor below switch off: shadow paging's handlers under
        nested paging, injection exits (and IPI exits past the sender's) under posted
        interrupts, the VMCS accesses of a hypervisor that is not nested or whose CPU shadows
        the VMCS; and the emulation of nested switches with no hypervisor inside this one."""
        out: dict[str, str] = {}
        if not any(isinstance(layer, Type1) for layer in inner):
            out["nested_transition_cycles"] = "no hypervisor runs inside this one's VM (its guest's stack has none)"
        if self.nested_paging(ctx) and not self.params.binary_translation:
            out |= dict.fromkeys(("shadow_fault_cycles", "shadow_pte_cycles"),
                                 "the guest's memory is mapped by nested paging here, so no shadow page tables "
                                 "(set nested_paging = false, or use a host CPU without nested paging)")
        if self._apicv(ctx):
            out["inject_exits"] = ("interrupts are posted here (APICv on a CPU that has it), so none exits "
                                   "(set apicv = false)")
            if self.params.ipi_exits >= 1:  # only the sender's ICR write exits
                out["ipi_exits"] = ("with posted interrupts an IPI costs one exit, the sender's (set apicv = false, "
                                    "or fewer than 1)")
        if ctx.enclosing is None or ctx.host.cpu.vmcs_shadowing:
            out["vmcs_accesses"] = ("they exit only for a hypervisor nested in another on a CPU without VMCS "
                                    "shadowing")
        return out

    def _apicv(self, ctx: LayerContext) -> bool:
        """Whether interrupts are posted: APICv asked for and the CPU has it."""
        return self.params.apicv and ctx.host.cpu.apicv

    def nested_paging(self, ctx: LayerContext) -> bool:
        """Whether the guest's memory is mapped by nested paging (asked for, the CPU has it, and
        the hypervisor this one runs in, if any, uses it: it can offer only what it has) rather
        than shadow page tables."""
        offered = ctx.enclosing is None or ctx.enclosing.nested_paging
        return self.params.nested_paging and ctx.host.cpu.nested_paging and offered

    def inject_exits(self, ctx: LayerContext) -> float:
        """Exits per interrupt delivered to the guest: none when posted (APICv)."""
        return 0.0 if self._apicv(ctx) else self.params.inject_exits

    def ipi_exits(self, ctx: LayerContext) -> float:
        """Exits per IPI between the guest's vCPUs: with APICv only the sender's ICR write."""
        return min(self.params.ipi_exits, 1.0) if self._apicv(ctx) else self.params.ipi_exits

    def world_switch_cycles(self, ctx: LayerContext) -> float:
        """Cycles to get from this hypervisor's guest into this hypervisor and back, its own
        handling aside: the CPU's round trip; nested, two switches through the hypervisor
        below (each its guest's exit plus its emulation) and, without VMCS shadowing, an exit
        below per VMCS access of this one's handler."""
        below = ctx.enclosing
        if below is None:
            return ctx.host.cpu.vmexit_cycles
        vmcs = 0.0 if ctx.host.cpu.vmcs_shadowing else self.params.vmcs_accesses
        return 2 * (below.switch_cycles + below.transition_cycles) + vmcs * below.exit_cycles

    def exit_cycles(self, ctx: LayerContext) -> float:
        """One exit of this hypervisor's guest: the world switch plus this hypervisor's handling (cycles)."""
        return self.world_switch_cycles(ctx) + self.params.exit_handler_cycles

    def as_enclosing(self, ctx: LayerContext) -> EnclosingHypervisor:
        """What an exit through this hypervisor costs a hypervisor running in its VM."""
        return EnclosingHypervisor(self.world_switch_cycles(ctx), self.exit_cycles(ctx),
                                   self.params.nested_transition_cycles, self.nested_paging(ctx))

    def _exits(self, ctx: LayerContext, count: float, amount: np.ndarray, group: GroupPath, per_client: int = 0,
               when_idle: IdleCondition | None = None) -> Demand:
        """``count`` exits (cycles on ``group``) for each request whose ``amount`` is not zero."""
        cycles = (np.asarray(amount) > 0) * count * self.exit_cycles(ctx)
        return cpu_demand(cycles, self.name, group, "exits", when_idle, per_client)

    def _notify(self, ctx: LayerContext, count: float, amount: np.ndarray, group: GroupPath, per_client: int = 0,
                when_idle: IdleCondition | None = None) -> list[Demand]:
        """A notification (a kick or an interrupt): its exits on the vCPU and the delay until the
        other side reacts, both only when it is sent (``when_idle``)."""
        delay = (np.asarray(amount) > 0) * self.params.notify_latency_s
        return [self._exits(ctx, count, amount, group, per_client, when_idle),
                delay_demand(delay, self.name, "notify", when_idle)]

    def _net_work_s(self, amount: np.ndarray, ctx: LayerContext) -> np.ndarray:
        """The network back end's own work for each message: per segment and per page of payload."""
        p = self.params
        pages = np.ceil(np.asarray(amount, dtype=float) / 4096.0)
        return (segments(amount, ctx.segment_bytes) * p.net_packet_cycles + pages * p.net_page_cycles) \
            / ctx.host.cpu.freq_hz

    def _vcpu_wake(self, ctx: LayerContext, amount: np.ndarray) -> Demand:
        """An interrupt to a VM whose vCPUs halted (beyond the halt-poll window) waits for one to wake."""
        cond = IdleCondition(CPU_STATION, self.inner_group(ctx.group), self.params.halt_poll_s)
        return delay_demand((np.asarray(amount) > 0) * self.params.vcpu_wakeup_s, self.name, "vcpu wake", cond)

    def kernel_event_cost(self, event: KernelEvent, ctx: LayerContext) -> tuple[float, bool]:
        """What this hypervisor adds to one event of its guest's kernel (cycles on the vCPU) and
        whether the event's native cost stays (False: emulated instead of done)."""
        p = self.params
        if p.binary_translation:
            bt = {"syscall": p.bt_syscall_cycles, "page_fault": p.bt_fault_cycles, "exception": p.bt_fault_cycles,
                  "pte_write": p.bt_pte_cycles, "port_io": p.bt_port_io_cycles}
            return float(bt.get(event) or 0.0), event != "port_io"
        handlers: dict[str, float | None] = {"port_io": p.port_io_cycles}
        if not self.nested_paging(ctx):
            handlers |= {"page_fault": p.shadow_fault_cycles, "pte_write": p.shadow_pte_cycles,
                         "context_switch": None}
        if event not in handlers:
            return 0.0, True
        handler = handlers[event]
        handler_cycles = p.exit_handler_cycles if handler is None else handler
        return self.world_switch_cycles(ctx) + handler_cycles, event != "port_io"

    # -- lowering ------------------------------------------------------------------------------

    def lower_kernel(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """The guest kernel's event: its native cost on the vCPU (unless emulated instead) and
        what this hypervisor adds. Passed down as CPU work: the hypervisors below see this one's
        exits, not its guest's events."""
        assert d.event  # a kernel demand names its event (checked by Demand)
        added, native = self.kernel_event_cost(d.event, ctx)
        out = []
        if native and d.native_cycles > 0:
            out.append(replace(d, kind="cpu", amount=d.amount * d.native_cycles, event="", native_cycles=0.0,
                               label=d.label or d.event))
        if added > 0:
            label = "binary translation" if self.params.binary_translation else "exits"
            out.append(cpu_demand(d.amount * added, self.name, d.group, label, per_client=d.per_client))
        return out


    def unused_by(self, guest: str, route: Sequence[Slot]) -> dict[str, str]:
        """``cpu_model`` when no request of the workload runs vector code wider than the generic
        model shows (its extra work, :meth:`lower_cpu`'s stage, is never in the route)."""
        if any(slot.layer == self.name and slot.label == GENERIC_CPU_LABEL for slot in route):
            return {}
        return {"cpu_model": "the workload runs no vector code wider than the generic CPU model shows"}

    def lower_cpu(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Vector code wider than a generic CPU model shows runs on the baseline ISA: the
        demand's cycles as they are (narrowed, so a hypervisor below does not scale them again),
        plus ``width / baseline - 1`` times them, this layer's, on the same thread."""
        baseline = ctx.host.cpu.baseline_flops_per_cycle
        if self.params.cpu_model == "host" or d.simd_flops_per_cycle <= baseline:
            return [d]
        extra = d.amount * (d.simd_flops_per_cycle / baseline - 1.0)
        narrowed = replace(d, simd_flops_per_cycle=baseline)
        return [narrowed, cpu_demand(extra, self.name, d.group, GENERIC_CPU_LABEL, per_client=d.per_client)]

    def lower_mem(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Under nested paging (not itself nested), one more page-walk dimension; else unchanged."""
        if not self.nested_paging(ctx) or ctx.enclosing is not None:
            return [d]  # nested: the hypervisor below shadows both tables as one (see the module doc)
        return [replace(d, walk_dims=d.walk_dims + 1, walk_layers=(*d.walk_layers, self.name))]

    def lower_net_in(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """Host receive, bridge and tap, the back end, the interrupt, the guest's receive."""
        p, host = self.params, ctx.host
        seg = segments(d.amount, ctx.segment_bytes)
        guest_rx = self._softirq(ctx)
        out = [d, cpu_demand(seg * p.bridge_cycles, self.name, ctx.softirq, "bridge")]
        out += self._backend(self._net_work_s(d.amount, ctx) + host.copy_s(d.amount), ctx, "net")
        out += [*self._notify(ctx, self.inject_exits(ctx), d.amount, guest_rx,
                              when_idle=IdleCondition(CPU_STATION, guest_rx)),
                self._vcpu_wake(ctx, d.amount),
                cpu_demand(seg * host.network.rx_cycles + host.copy_s(d.amount) * host.cpu.freq_hz, self.name,
                           guest_rx, "guest softirq")]
        if p.vcpus > 1 and ctx.app:  # the softirq's vCPU wakes the application's thread on another
            out.append(self._exits(ctx, self.ipi_exits(ctx), d.amount, guest_rx, when_idle=ctx.app_idle()))
        return out

    def lower_net_out(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """The guest's transmit path, a kick if the back end sleeps, the back end, the host's transmit."""
        p, host = self.params, ctx.host
        seg = segments(d.amount, ctx.segment_bytes)
        backend = self._thread(ctx, "net")
        guest_tx = (seg * host.network.tx_cycles + host.copy_s(d.amount) * host.cpu.freq_hz)
        out = [cpu_demand(guest_tx, self.name, d.group, "guest tx", per_client=d.per_client),
               *self._notify(ctx, p.kick_exits, d.amount, d.group, d.per_client, IdleCondition(CPU_STATION, backend))]
        bridge = cpu_demand(seg * p.bridge_cycles, self.name, backend, "bridge")
        out += self._backend(self._net_work_s(d.amount, ctx), ctx, "net", [bridge])
        return [*out, replace(d, group=backend, per_client=0)]

    def lower_io(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """A kick if the back end sleeps, its work (holding it through the access if synchronous),
        the access, the completion interrupt."""
        p = self.params
        kicks = p.kick_exits * (p.emulated_exit_factor if p.io_path == "emulated" else 1.0)
        completion = [*self._notify(ctx, self.inject_exits(ctx), d.amount, self.inner_group(ctx.group)),
                      self._vcpu_wake(ctx, d.amount)]
        if p.io_path == "passthrough":
            return [d, *completion]
        backend = self._thread(ctx, "io")
        per_io = p.io_thread_write_s if d.op == "write" else p.io_thread_read_s
        extra = np.maximum(np.ceil(np.asarray(d.amount, dtype=float) / p.io_segment_bytes) - 1, 0)
        seconds = (d.amount > 0) * (per_io + extra * p.io_segment_s)
        out = self._notify(ctx, kicks, d.amount, d.group, d.per_client, IdleCondition(CPU_STATION, backend))
        if self._holds_lock("io"):
            out += self._backend(seconds, ctx, "io", self.host_io(d, ctx))
        else:
            out += [*self._backend(seconds, ctx, "io"), *self.host_io(d, ctx)]
        return [*out, *completion]

    def host_io(self, d: Demand, ctx: LayerContext) -> list[Demand]:
        """What the back end's I/O costs on the host below it: the access itself, issued by the
        back-end thread (so a layer below, a nested VM's host, charges its own costs of the I/O,
        its kick exits, to that thread and not to the application: review 39 F6)."""
        return [replace(d, group=self._thread(ctx, "io"), per_client=0)]

    # -- what the host must provide -----------------------------------------------------------

    def group_spec(self) -> GroupSpec:
        """The VM's group: weighted as ``vcpus`` processes (weight 100 each), bound to ``pin`` cores if given."""
        pin = tuple(sorted(set(self.params.pin))) if self.params.pin is not None else None
        return GroupSpec(weight=DEFAULT_WEIGHT * self.params.vcpus, cores=pin)

    def groups(self, ctx: LayerContext) -> dict[GroupPath, GroupSpec]:
        """The vCPU group (capped at ``vcpus``), the guest's softirq, the back-end threads and any driver domain."""
        p = self.params
        vcpu = self.inner_group(ctx.group)
        out = {vcpu: GroupSpec(max_servers=float(p.vcpus), label=f"{VCPUS}:{'/'.join(ctx.group)}"),
               self._softirq(ctx): GroupSpec(threads=p.guest_net_queues)}
        threads = (self._thread(ctx, "net"), self._thread(ctx, "io"))
        # multiqueue virtio-net: the kernel's back end runs one worker per queue pair (vhost-net
        # opens a device per pair; netback a kthread per queue); a VMM's own thread stays one
        per_queue = p.guest_net_queues if p.net_backend in ("vhost", "netback") else 1
        for group, n in zip(threads, (per_queue, 1), strict=True):
            out[group] = GroupSpec(threads=n, label=self._label(group))
        domain = self._driver_domain(ctx)
        if any(g[:-1] == domain for g in threads):
            vcpus = float(p.driver_domain_vcpus or ctx.host.cpu.cores)
            out[domain] = GroupSpec(weight=DEFAULT_WEIGHT * vcpus, max_servers=vcpus,
                                    label=f"{'/'.join(domain)}:{VCPUS}")
        return out

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        """The VMM thread's lock station when I/O is synchronous (``io_sync``); none otherwise."""
        return [StationSpec(self._lock(ctx), "lock", 1)] if self.params.io_sync else []

    def check(self, cores: int, threads_per_core: int = 1) -> None:
        """Raise ``ValueError`` if ``pin`` names cores outside ``0..cores-1``, or too few cores for
        ``vcpus`` (each core holds ``threads_per_core`` vCPUs: its hardware threads)."""
        pin = self.params.pin
        if pin is not None:
            bad = [c for c in pin if not 0 <= c < cores]
            if bad:
                raise ValueError(f"pin: CPUs {bad} do not exist where the VM runs (CPUs 0..{cores - 1}: the host's "
                                 "cores, or the outer VM's vCPUs)")
            if len(set(pin)) * threads_per_core < self.params.vcpus:
                held = len(set(pin)) * threads_per_core
                raise ValueError(
                    f"pin: {self.params.vcpus} vCPUs pinned to {len(set(pin))} distinct cores ({pin}), which hold "
                    f"{held} hardware threads; name more cores or set vcpus = {held} or fewer (a [compare] with "
                    'cores = "vm-sized-to-host" gives a VM without vcpus one per host thread)'
                )
        if self.params.vcpus > cores * threads_per_core and pin is not None:
            raise ValueError(f"vcpus: {self.params.vcpus} pinned vCPUs exceed the {cores * threads_per_core} "
                             "hardware threads the VM runs on")
