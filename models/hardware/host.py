"""A host: CPU, memory, storage and network, the load generator beside it, and the lowering of
bottom demands to stages on their stations.

The host's kernel receives packets in softirq threads (one per receive queue, group
:data:`HOST_SOFTIRQ`), sends them in the sending thread, and wakes blocked threads after the
CPU's ``wakeup`` delay. A load generator (redis-benchmark, netperf, sysbench) runs on a second
machine, the *client*: its own cores (``client_cpu``, by default like the host's), its own NIC
queues and softirq, across the wire.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from virtsim.models.demands import Demand, Stage, stage
from virtsim.models.hardware.cpu import CPU_STATION, CpuSpec
from virtsim.models.hardware.memory import MemorySpec, membw_station
from virtsim.models.hardware.network import NIC_RX_STATION, NIC_TX_STATION, WIRE_STATION, NicSpec
from virtsim.models.hardware.storage import DISK_STATION, DISK_XFER_GROUP, DISK_XFER_STATION, StorageSpec
from virtsim.models.profiles import get_profile
from virtsim.models.schema import StrictModel
from virtsim.sim.routes import IdleCondition, StationSpec
from virtsim.sim.stations import DEFAULT_WEIGHT, GroupPath, GroupSpec

__all__ = ["CLIENT", "CLIENT_CPU_STATION", "CLIENT_PREFIX", "DELAY_STATION", "HOST_PRESETS", "HOST_SOFTIRQ",
           "SOFTIRQ", "SOFTIRQ_WEIGHT", "HostSpec", "hardware_from_profile"]

CLIENT = "client"
"""What every name of the load generator's machine starts with: its stations (``client.cpu``),
its softirq threads (``client softirq``) and the tools' threads (``client:GUEST``)."""
CLIENT_PREFIX = CLIENT + "."
CLIENT_CPU_STATION = CLIENT_PREFIX + CPU_STATION
DELAY_STATION = "delay"
SOFTIRQ = "softirq"
"""A kernel's receive threads: the host's (group and label), and each guest kernel's group."""
HOST_SOFTIRQ: GroupPath = (SOFTIRQ,)
"""The host kernel's receive threads on its CPU (and the client's on the client's CPU): a group
of their own, beside the guests."""
SOFTIRQ_WEIGHT = DEFAULT_WEIGHT
"""A kernel's receive threads' CPU weight: a task's. Linux runs pending NET_RX softirqs on the
way out of an interrupt, before returning to the task, on the core the interrupt landed on
(kernel/softirq.c ``__do_softirq``; ksoftirqd after 2 ms or ten rounds). As a priority (the most
``cpu.weight``, 10,000) on unbound threads the model let one burst of receive work take every
core at once, stalling the event loops it feeds: three kv-store guests on 4 cores lost 5% from
2 to 4 NIC queues and 10% at the default 8 (review 40 F1), against the 3% it won back when more
guest queues' vhost threads took the softirq's core (review 39 F5, open: it needs each queue's
softirq on its own core)."""

HOST_PRESETS: dict[str, dict[str, str]] = {
    # Felter et al. 2015 (IBM): 2 x Xeon E5-2665, 256 GB DDR3, a flash array, 10 GbE
    "felter": {"cpu": "xeon-e5-2665-2s", "memory": "ddr3-2s", "storage": "flash-array", "network": "10gbe"},
    # Agache et al. 2020 (Firecracker): an m5d.metal, 2 x Xeon Platinum 8175M, NVMe
    "agache": {"cpu": "xeon-8175m-2s", "memory": "ddr4-2s-skylake", "storage": "nvme-ssd", "network": "10gbe"},
    # Adams & Agesen 2006's Pentium 4 672; its nanobenchmarks touch no memory, disk or network profile
    "adams": {"cpu": "pentium4-672", "memory": "ddr4-small", "storage": "hdd", "network": "1gbe"},
    # a small 4-core server: the defaults of density and of the examples
    "small": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd", "network": "10gbe"},
}
"""Hosts of the studies the profiles are calibrated against, as a scenario's ``[host]`` table writes them."""


def hardware_from_profile(kind: str, value: Any) -> Any:
    """Expand ``"nvme-ssd"`` or ``{profile = "nvme-ssd", parallelism = 4}`` into parameters."""
    if isinstance(value, str):
        return dict(get_profile("virtsim.models.hardware", value, kind).params)
    if isinstance(value, dict) and "profile" in value:
        rest = {k: v for k, v in value.items() if k != "profile"}
        merged = {**get_profile("virtsim.models.hardware", str(value["profile"]), kind).params, **rest}
        if kind == "cpu" and "smt_yield" in rest and merged.get("threads_per_core", 1) == 1:
            # what a core's second thread adds: with one thread per core there is none to add
            raise ValueError(f"smt_yield would change nothing: {value['profile']!r} has one thread per core; "
                             "set threads_per_core = 2 (SMT on) or remove smt_yield")
        return merged
    return value


class HostSpec(StrictModel):
    """One physical host (and its load generator). Each part is a profile name, a table, or a
    profile with overrides; ``client_cpu`` left out means a client machine like the host."""

    cpu: CpuSpec = Field(
        default_factory=lambda: CpuSpec.model_validate(hardware_from_profile("cpu", "xeon-e5-2665-2s"))
    )
    memory: MemorySpec = Field(
        default_factory=lambda: MemorySpec.model_validate(hardware_from_profile("memory", "ddr3-2s"))
    )
    storage: StorageSpec = Field(
        default_factory=lambda: StorageSpec.model_validate(hardware_from_profile("storage", "nvme-ssd"))
    )
    network: NicSpec = Field(
        default_factory=lambda: NicSpec.model_validate(hardware_from_profile("network", "10gbe"))
    )
    client_cpu: CpuSpec | None = None

    @field_validator("cpu", "memory", "storage", "network", mode="before")
    @classmethod
    def _expand_profile(cls, value: Any, info: Any) -> Any:
        """Expand a part given as a profile name, or a profile with overrides, into its parameters."""
        return hardware_from_profile(str(info.field_name), value)

    @field_validator("client_cpu", mode="before")
    @classmethod
    def _expand_client(cls, value: Any) -> Any:
        """As :meth:`_expand_profile` for the client CPU (left ``None``: a client like the host)."""
        return None if value is None else hardware_from_profile("cpu", value)

    @property
    def client(self) -> CpuSpec:
        """The load generator's CPU."""
        return self.client_cpu if self.client_cpu is not None else self.cpu

    def copy_s(self, size_bytes: np.ndarray) -> np.ndarray:
        """Core time to copy a payload (to or from user space, into a guest) at one core's bandwidth."""
        return np.asarray(size_bytes, dtype=float) / self.memory.core_bandwidth_Bps

    def lower(self, demand: Demand, rng: np.random.Generator | None = None) -> list[Stage]:
        """The stages a bottom-level demand costs on this host's stations (``rng`` draws device times)."""
        d, a = demand, np.asarray(demand.amount, dtype=float)
        common = dict(label=d.label, when_idle=d.when_idle, per_client=d.per_client)
        if d.kind == "cpu":
            return [stage(CPU_STATION, a / self.cpu.freq_hz, d.layer, d.group, **common)]  # type: ignore[arg-type]
        if d.kind == "kernel":  # the event's own cost, as on bare metal (layers above added theirs)
            return [stage(CPU_STATION, a * d.native_cycles / self.cpu.freq_hz, d.layer, d.group,
                          d.label or d.event, d.when_idle, d.per_client)]
        if d.kind == "client_cpu":
            station, cpu = (CPU_STATION, self.cpu) if d.local else (CLIENT_CPU_STATION, self.client)
            return [stage(station, a / cpu.freq_hz, d.layer, d.group, **common)]  # type: ignore[arg-type]
        if d.kind == "delay":
            return [stage(DELAY_STATION, a, d.layer, d.group, **common)]  # type: ignore[arg-type]
        if d.kind == "wake":
            # The thread of d.group blocked for this; it runs again after the CPU's wake-up, if it
            # slept (d.when_idle says when it sleeps; None: it always waited for this).
            work = np.where(a >= 0, a + self.cpu.wakeup_s, 0.0)
            return [stage(DELAY_STATION, work, d.layer, d.group, d.label or "wake", d.when_idle)]
        if d.kind == "mem":
            if d.pattern == "random":
                work = self.memory.random_access_s(a, d.walk_dims, d.huge_pages)
                shares = self.memory.walk_shares(d.walk_dims, d.huge_pages, d.walk_layers)
                return [stage(CPU_STATION, work, d.layer, d.group, shares=shares, **common)]  # type: ignore[arg-type]
            # a stream is work of the thread that streams: its client's thread too (review 33 F4)
            station = membw_station(d.numa_nodes or None, self.memory.nodes, d.numa_block)
            return [stage(station, self.memory.sequential_s(a), d.layer, d.group, **common)]  # type: ignore[arg-type]
        if d.kind == "io":
            return [
                stage(DISK_STATION, self.storage.access_s(d.op, d.pattern, a, rng), d.layer),
                stage(DISK_XFER_STATION, self.storage.transfer_s(a), d.layer, DISK_XFER_GROUP),
            ]
        if d.local:  # the peer is a process on this host: loopback or a tap, no NIC, no wire
            return self._local(d, a)
        if d.kind == "net_in":
            return self._receive(a, d.layer, "", self.cpu)
        if d.kind == "net_out":
            return [*self._send(a, d.layer, d.group, CPU_STATION, self.cpu),
                    stage(WIRE_STATION, self.network.wire_s(a), d.layer)]
        if d.kind == "client_send":
            return self._send(a, d.layer, d.group, CLIENT_CPU_STATION, self.client, CLIENT_PREFIX)
        if d.kind == "client_recv":
            stages = self._receive(a, d.layer, CLIENT_PREFIX, self.client, wire=False)
            wake = np.where(a > 0, self.client.wakeup_s, 0.0)
            return [*stages, stage(DELAY_STATION, wake, d.layer, d.group, "client wake", d.when_idle)]
        return [stage(d.station, a, d.layer, d.group, action=d.action, **common)]  # type: ignore[arg-type]

    def _local(self, d: Demand, a: np.ndarray) -> list[Stage]:
        """Messages between a guest and a process on the host itself (loopback, a tap). The kernel
        delivers a sent segment on the sender's own core (loopback_xmit and the tap hand it to that
        core's backlog, processed when the sender leaves the softirq-disabled section), so the
        sender does the transmit and the receive protocol work and copies the payload in; the
        receiving thread copies it out, after a wake-up if it slept."""
        nic, cpu = self.network, self.cpu
        segs = nic.segments(a)
        if d.kind in ("net_out", "client_send"):
            work = segs * (nic.tx_cycles + nic.rx_cycles) / cpu.freq_hz + self.copy_s(a)
            return [stage(CPU_STATION, work, d.layer, d.group, "tx" if d.kind == "net_out" else "peer tx")]
        if d.kind == "client_recv":
            wake = np.where(a > 0, cpu.wakeup_s, 0.0)
            return [stage(DELAY_STATION, wake, d.layer, d.group, "peer wake", d.when_idle),
                    stage(CPU_STATION, self.copy_s(a), d.layer, d.group, "peer rx")]
        return [stage(CPU_STATION, self.copy_s(a), d.layer, d.group, "rx")]  # net_in: the app copies it out

    def _send(self, a: np.ndarray, layer: str, group: GroupPath, cpu_station: str, cpu: CpuSpec,
              prefix: str = "") -> list[Stage]:
        """The transmit path: the sender's kernel work, then the NIC (the wire is the receiver's)."""
        nic = self.network
        work = (nic.segments(a) * nic.tx_cycles) / cpu.freq_hz + self.copy_s(a)
        return [stage(cpu_station, work, layer, group, "tx" if cpu_station == CPU_STATION else "client tx"),
                stage(prefix + NIC_TX_STATION, nic.serialise_s(a), layer)]

    def _receive(self, a: np.ndarray, layer: str, prefix: str, cpu: CpuSpec, wire: bool = True) -> list[Stage]:
        """The receive path: the wire, the NIC, interrupt moderation if the queue was idle, softirq."""
        nic = self.network
        station = prefix + CPU_STATION
        work = (nic.segments(a) * nic.rx_cycles) / cpu.freq_hz + self.copy_s(a)
        stages = [stage(WIRE_STATION, nic.wire_s(a), layer)] if wire else []
        return [
            *stages,
            stage(prefix + NIC_RX_STATION, nic.serialise_s(a), layer),
            stage(DELAY_STATION, np.where(a > 0, nic.rx_coalesce_s, 0.0), layer, label=prefix + "irq coalescing",
                  when_idle=IdleCondition(station, HOST_SOFTIRQ)),
            stage(station, work, layer, HOST_SOFTIRQ, prefix + SOFTIRQ),
        ]

    def groups(self) -> dict[GroupPath, GroupSpec]:
        """The host kernel's own groups on the CPU: the softirq threads of its receive queues."""
        queues = min(self.network.queues, self.cpu.cores)
        return {HOST_SOFTIRQ: GroupSpec(threads=queues, weight=SOFTIRQ_WEIGHT, label=SOFTIRQ)}

    def client_station(self, groups: dict[GroupPath, GroupSpec]) -> StationSpec:
        """The load generator's cores, with its softirq threads and the tools' threads (``groups``)."""
        queues = min(self.network.queues, self.client.cores)
        all_groups = {HOST_SOFTIRQ: GroupSpec(threads=queues, weight=SOFTIRQ_WEIGHT, label=f"{CLIENT} {SOFTIRQ}"),
                      **groups}
        return self.client.station(all_groups, {}, CLIENT_CPU_STATION)

    def stations(self) -> list[StationSpec]:
        """Every station of the host and its client except the two CPUs (which need the groups)."""
        return [*self.memory.stations(), *self.storage.stations(), *self.network.stations(),
                *self.network.stations(CLIENT_PREFIX), StationSpec(DELAY_STATION, "delay")]
