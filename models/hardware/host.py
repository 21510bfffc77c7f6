"""A host: CPU, memory, storage and network, and the lowering of bottom demands to stages."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from models.demands import Demand, Stage, segments
from models.hardware.cpu import CPU_STATION, CpuSpec
from models.hardware.memory import MEMBW_STATION, MemorySpec
from models.hardware.network import NIC_RX_STATION, NIC_TX_STATION, WIRE_STATION, NicSpec
from models.hardware.storage import DISK_STATION, DISK_XFER_STATION, StorageSpec
from models.profiles import get_profile
from models.schema import StrictModel

__all__ = ["HostSpec", "hardware_from_profile"]


def hardware_from_profile(kind: str, value: Any) -> Any:
    """Expand ``"nvme-ssd"`` or ``{profile = "nvme-ssd", parallelism = 4}`` into parameters."""
    if isinstance(value, str):
        return dict(get_profile("models.hardware", value, kind).params)
    if isinstance(value, dict) and "profile" in value:
        rest = {k: v for k, v in value.items() if k != "profile"}
        return {**get_profile("models.hardware", str(value["profile"]), kind).params, **rest}
    return value


class HostSpec(StrictModel):
    """One physical host. Each part is a profile name, a table, or a profile with overrides."""

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

    @field_validator("cpu", "memory", "storage", "network", mode="before")
    @classmethod
    def _expand_profile(cls, value: Any, info: Any) -> Any:
        return hardware_from_profile(str(info.field_name), value)

    def lower(self, demand: Demand) -> list[Stage]:
        """The stages a bottom-level demand costs on this host's stations."""
        d, a = demand, np.asarray(demand.amount, dtype=float)
        if d.kind == "cpu":
            return [Stage(CPU_STATION, a / self.cpu.freq_hz, d.layer, d.group)]
        if d.kind == "mem":
            if d.pattern == "random":
                work = self.memory.random_access_s(a, d.walk_dims, d.huge_pages)
                return [Stage(CPU_STATION, work, d.layer, d.group)]
            return [Stage(MEMBW_STATION, self.memory.sequential_s(a), d.layer, d.group)]
        if d.kind == "io":
            return [
                Stage(DISK_STATION, self.storage.access_s(d.op, d.pattern, a), d.layer),
                Stage(DISK_XFER_STATION, self.storage.transfer_s(a), d.layer),
            ]
        if d.kind in ("net_in", "net_out"):
            stack = Stage(CPU_STATION, self.packet_cycles(a) / self.cpu.freq_hz, d.layer, d.group)
            if d.kind == "net_in":
                return [
                    Stage(WIRE_STATION, self.network.wire_s(a), d.layer),
                    Stage(NIC_RX_STATION, self.network.serialise_s(a), d.layer),
                    stack,
                ]
            return [
                stack,
                Stage(NIC_TX_STATION, self.network.serialise_s(a), d.layer),
                Stage(WIRE_STATION, self.network.wire_s(a), d.layer),
            ]
        return [Stage(d.station, a, d.layer, d.group)]

    def packet_cycles(self, size_bytes: np.ndarray) -> np.ndarray:
        """Kernel network-stack cycles to send or receive each message (per offload segment)."""
        return segments(size_bytes, self.network.segment_bytes) * self.network.packet_cycles
