"""Demands: what a request asks of the level it runs at, for many requests at once.

A workload's request is an ordered list of demands; each demand holds one amount per request (a
numpy array), so a whole block of requests is lowered in one pass. Layers turn demands into the
demands of the level below (adding their own costs); the host turns the bottom demands into
stages on its stations.

Every cost is either **work** on a named resource that can be busy (``cpu`` cycles in a group of
the host CPU: a vCPU, a VMM or vhost thread, the kernel's softirq threads; ``client_cpu`` on the
load generator; a device), or a **delay** that holds the request but no resource (``delay``, the
``wake`` of a blocked thread, the wire). A cost the real system pays only when something was idle
carries ``when_idle``: it is charged only then, so it is paid per batch as load rises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np

from virtsim.sim.routes import IdleCondition, Slot
from virtsim.sim.stations import GroupPath

__all__ = ["APP", "KERNEL_EVENTS", "Demand", "DemandKind", "KernelEvent", "Stage", "segments", "stage"]

DemandKind = Literal["cpu", "mem", "io", "net_in", "net_out", "station", "delay", "wake", "client_cpu",
                     "client_send", "client_recv", "kernel"]
KernelEvent = Literal["syscall", "page_fault", "exception", "pte_write", "context_switch", "port_io"]
"""Events of the kernel the application runs on that a virtualization layer may have to intercept:
a system call, a page fault, another exception (a divide error, a breakpoint), a write to a
page-table entry, a context switch (a write of the page-table base, CR3), an access to an I/O
port or device register."""
KERNEL_EVENTS: tuple[KernelEvent, ...] = ("syscall", "page_fault", "exception", "pte_write", "context_switch",
                                          "port_io")
_UNITS = {
    "cpu": "cycles",
    "mem": "bytes",
    "io": "bytes",
    "net_in": "bytes",
    "net_out": "bytes",
    "station": "seconds",
    "delay": "seconds",
    "wake": "seconds",
    "client_cpu": "cycles",
    "client_send": "bytes",
    "client_recv": "bytes",
    "kernel": "events",
}

APP: GroupPath = ("<app>",)
"""Stands for the application's own group in a workload's demands (its ``when_idle`` above all);
the stack puts the real group in when it lowers them."""


@dataclass(frozen=True)
class Demand:
    """One demand of a block of requests.

    ``amount`` is per request in the kind's unit: ``cpu`` and ``client_cpu`` in cycles; ``mem``,
    ``io``, ``net_in``, ``net_out``, ``client_send`` and ``client_recv`` in bytes (an amount of
    zero means the request does not make it); ``station`` in seconds of service at the named
    station; ``delay`` in seconds; ``wake`` in seconds beyond the CPU's own wake-up (the thread
    of ``group`` blocked for this and is woken if it sleeps); ``kernel`` in events of kind
    ``event``, each costing ``native_cycles`` of the thread's CPU on bare metal (what a
    virtualization layer adds to each, or replaces it with, is the layer's). A ``cpu`` demand
    with ``simd_flops_per_cycle`` is vector code of that width: a layer that hides the vector
    extensions from its guest (a generic CPU model) makes it take longer. ``layer`` is who introduced the
    demand ("app" for the workload itself), ``group`` the scheduling group its CPU time is
    charged to. ``label`` names where its time is attributed; ``when_idle``, ``per_client`` and
    ``action`` pass to the stage (see :class:`virtsim.sim.routes.Slot`).
    """

    kind: DemandKind
    amount: np.ndarray
    layer: str = "app"
    group: GroupPath = ()
    op: Literal["read", "write", ""] = ""  # io
    pattern: Literal["seq", "random", ""] = ""  # mem, io
    station: str = ""  # station
    walk_dims: int = 1  # mem: dimensions of the page walk (2 under nested paging)
    huge_pages: bool = False  # mem: 2 MiB pages instead of 4 KiB
    walk_layers: tuple[str, ...] = ()  # mem: the layers that added each dimension beyond the first
    numa_nodes: int = 0  # mem: NUMA nodes the memory is bound to (0: interleaved over all)
    numa_block: int = 0  # mem: which block of numa_nodes nodes (the guest's turn: see memory.membw_station)
    local: bool = False  # net_*, client_*: the peer is a process on the host itself (loopback, tap)
    label: str = ""
    when_idle: IdleCondition | None = None
    per_client: int = 0
    action: Literal["", "acquire", "release"] = ""
    event: KernelEvent | Literal[""] = ""  # kernel
    native_cycles: float = 0.0  # kernel: the CPU one event costs on bare metal
    # cpu: the cycles are those of vector code written for a SIMD unit doing this many
    # double-precision flops per cycle (AVX on Sandy Bridge: 8); 0: not bound by vector width
    simd_flops_per_cycle: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _UNITS:
            raise ValueError(f"unknown demand kind {self.kind!r}")
        if self.kind == "kernel" and self.event not in KERNEL_EVENTS:
            raise ValueError(f"a kernel demand names its event, one of {', '.join(KERNEL_EVENTS)}")
        if self.kind == "station" and not self.station:
            raise ValueError("a station demand names its station")

    @property
    def unit(self) -> str:
        """The unit of ``amount`` for this kind: ``"cycles"``, ``"bytes"``, ``"seconds"`` or ``"events"``."""
        return _UNITS[self.kind]

    def with_amount(self, amount: np.ndarray) -> Demand:
        """A copy of this demand with ``amount`` (per request, in the kind's unit) replaced."""
        # a field-by-field copy: ``replace`` would check the fields again (they are unchanged), at
        # ten times the cost, and a block of an oltp transaction's requests makes thousands
        new = object.__new__(Demand)
        new.__dict__.update(self.__dict__)
        new.__dict__["amount"] = amount
        return new


@dataclass(frozen=True)
class Stage(Slot):
    """A bottom-level stage: a route's slot (the host station, and how it is served) with its
    service seconds per request, ``work_s`` (built by :func:`stage`)."""

    work_s: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, kw_only=True)

    def slot(self) -> Slot:
        """The stage without its work: the route's slot."""
        return Slot(**{f.name: getattr(self, f.name) for f in fields(Slot)})


def stage(station: str, work_s: np.ndarray, layer: str, group: GroupPath = (), label: str = "",
          when_idle: IdleCondition | None = None, per_client: int = 0,
          action: Literal["", "acquire", "release"] = "", shares: tuple[tuple[str, float], ...] = ()) -> Stage:
    """The stage of ``work_s`` seconds per request at ``station`` (the rest as :class:`Slot`'s)."""
    return Stage(station, layer, group, label, when_idle, per_client, action, shares, work_s=work_s)


def segments(size_bytes: np.ndarray, segment_bytes: float) -> np.ndarray:
    """Segments needed to carry each message (zero for an empty message).

    With TCP segmentation and generic receive offload (on by default for virtio-net, veth and
    bridges), the stack, the VMM and the bridge handle a message in segments of up to 64 KiB,
    not in MTU-sized packets: per-packet costs are paid per segment.
    """
    return np.ceil(np.asarray(size_bytes, dtype=float) / segment_bytes)
