"""Network: a NIC's queues, the wire, and the kernel's work per message.

A message crosses the wire (``latency``, one way: propagation, switch, NIC and DMA), is
serialised by the NIC at ``bandwidth``, and costs kernel work per segment of up to ``segment``
bytes (TSO/GSO): ``tx_cycles`` in the sending thread (the send system call runs the TCP/IP
transmit path and the driver), ``rx_cycles`` in the receiving kernel's softirq (interrupt, NAPI
poll, IP and TCP), plus a copy of the payload at the core's memory bandwidth. The softirq work of
the host runs on ``queues`` receive queues (RSS spreads flows over cores), each a thread that
serves its packets in order. An idle queue holds the first packet of a burst for ``rx_coalesce``
(interrupt moderation): a delay paid only when NAPI was not already polling.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from virtsim.models.quantities import BitsPerSecond, Bytes, Cycles, Seconds
from virtsim.models.schema import StrictModel
from virtsim.sim.routes import StationSpec

__all__ = ["NIC_RX_STATION", "NIC_TX_STATION", "WIRE_STATION", "NicSpec"]

NIC_RX_STATION = "nic.rx"
NIC_TX_STATION = "nic.tx"
WIRE_STATION = "wire"


class NicSpec(StrictModel):
    """A network interface, the link beyond it, and the kernel's per-message work.

    ``bandwidth`` (bit/s), ``latency`` (s, one way), ``segment`` (bytes, TSO/GSO), ``tx_cycles``
    and ``rx_cycles`` (cycles per segment), ``rx_coalesce`` (s), ``queues`` (receive queues):
    see the module docstring.
    """

    bandwidth_bps: BitsPerSecond = Field(10e9, alias="bandwidth", gt=0)
    latency_s: Seconds = Field(10e-6, alias="latency")
    segment_bytes: Bytes = Field(65536, alias="segment", gt=0)
    tx_cycles: Cycles = 6000
    rx_cycles: Cycles = 6000
    rx_coalesce_s: Seconds = Field(0.0, alias="rx_coalesce")
    queues: int = Field(8, ge=1, le=4096)

    def serialise_s(self, size_bytes: np.ndarray) -> np.ndarray:
        """Time (s) for the NIC to put each message of ``size_bytes`` bytes on the link at its bandwidth."""
        return np.asarray(size_bytes) * 8.0 / self.bandwidth_bps

    def wire_s(self, size_bytes: np.ndarray) -> np.ndarray:
        """One-way wire latency (s) of each message; zero where there is no message (size 0)."""
        return np.where(np.asarray(size_bytes) > 0, self.latency_s, 0.0)

    def segments(self, size_bytes: np.ndarray) -> np.ndarray:
        """Segments (TSO/GSO, of up to ``segment_bytes``) of each message; zero for an empty one."""
        return np.ceil(np.asarray(size_bytes, dtype=float) / self.segment_bytes)

    def stations(self, prefix: str = "") -> list[StationSpec]:
        """The NIC's receive and transmit FIFO stations (names prefixed with ``prefix``) and the shared wire delay."""
        return [
            StationSpec(prefix + NIC_RX_STATION, "fifo", 1.0),
            StationSpec(prefix + NIC_TX_STATION, "fifo", 1.0),
            StationSpec(WIRE_STATION, "delay"),
        ]
