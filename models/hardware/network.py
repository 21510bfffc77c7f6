"""Network: a NIC's receive and transmit queues, the wire, and the kernel's per-packet work.

A message crosses the wire (``latency``, one way, including the remote peer's stack), is
serialised by the NIC at ``bandwidth``, and costs the host kernel ``packet_cycles`` per segment of
up to ``segment`` bytes (TSO/GSO) on the CPU of whoever it belongs to.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from models.quantities import BitsPerSecond, Bytes, Cycles, Seconds
from models.schema import StrictModel
from sim.routes import StationSpec

__all__ = ["NIC_RX_STATION", "NIC_TX_STATION", "WIRE_STATION", "NicSpec"]

NIC_RX_STATION = "nic.rx"
NIC_TX_STATION = "nic.tx"
WIRE_STATION = "wire"


class NicSpec(StrictModel):
    """A network interface and the link beyond it."""

    bandwidth_bps: BitsPerSecond = Field(10e9, alias="bandwidth", gt=0)
    latency_s: Seconds = Field(10e-6, alias="latency")
    segment_bytes: Bytes = Field(65536, alias="segment", gt=0)
    packet_cycles: Cycles = 10_000

    def serialise_s(self, size_bytes: np.ndarray) -> np.ndarray:
        return np.asarray(size_bytes) * 8.0 / self.bandwidth_bps

    def wire_s(self, size_bytes: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(size_bytes) > 0, self.latency_s, 0.0)

    def stations(self) -> list[StationSpec]:
        return [
            StationSpec(NIC_RX_STATION, "fifo", 1.0),
            StationSpec(NIC_TX_STATION, "fifo", 1.0),
            StationSpec(WIRE_STATION, "delay"),
        ]
