"""Storage devices: per-operation latency over internal channels, then a shared transfer.

A device is two FIFO stations in tandem: ``disk`` with ``parallelism`` servers that each take an
operation's access latency (random or sequential, read or write), then ``disk.xfer`` with one
server moving the bytes at ``bandwidth``. Access latencies vary: each is drawn from a lognormal
distribution with the profile's latency as its mean and ``latency_sigma`` as the spread of its
logarithm (0: every access takes exactly the mean), so a queue depth of one sees the device's
tail, and its saturated throughput (set by the mean) is unchanged.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from virtsim.models.quantities import Bytes, BytesPerSecond, Seconds
from virtsim.models.schema import StrictModel
from virtsim.sim.routes import StationSpec

__all__ = ["DISK_STATION", "DISK_XFER_STATION", "StorageSpec"]

DISK_STATION = "disk"
DISK_XFER_STATION = "disk.xfer"


class StorageSpec(StrictModel):
    """A block device.

    Access latencies (s): ``random_read_latency``, ``random_write_latency``, ``seq_latency``
    (means; ``latency_sigma`` the spread of their logarithm); ``parallelism``: operations served
    at once; ``bandwidth`` (bytes/s): the transfer rate; ``capacity`` (bytes): the disk's size.
    """

    random_read_latency_s: Seconds = Field(100e-6, alias="random_read_latency")
    random_write_latency_s: Seconds = Field(50e-6, alias="random_write_latency")
    seq_latency_s: Seconds = Field(20e-6, alias="seq_latency")
    parallelism: int = Field(8, ge=1)
    bandwidth_Bps: BytesPerSecond = Field(1e9, alias="bandwidth", gt=0)
    capacity_bytes: Bytes = Field(1.92e12, alias="capacity", gt=0)
    latency_sigma: float = Field(0.0, ge=0, le=2)

    def access_s(self, op: str, pattern: str, size_bytes: np.ndarray,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        """Access latency of each operation (zero where the request does no I/O), drawn with ``rng``."""
        if pattern == "seq":
            latency = self.seq_latency_s
        else:
            latency = self.random_write_latency_s if op == "write" else self.random_read_latency_s
        size = np.asarray(size_bytes)
        if self.latency_sigma > 0 and rng is not None:
            s = self.latency_sigma  # mean-preserving: exp(mu + s^2/2) = latency
            draws = rng.lognormal(np.log(latency) - s * s / 2, s, size.shape) if latency > 0 else 0.0
            return np.where(size > 0, draws, 0.0)
        return np.where(size > 0, latency, 0.0)

    def transfer_s(self, size_bytes: np.ndarray) -> np.ndarray:
        """Time (s) to move each request's ``size_bytes`` bytes at the device's bandwidth."""
        return np.asarray(size_bytes) / self.bandwidth_Bps

    def stations(self) -> list[StationSpec]:
        """The device's ``disk`` station (``parallelism`` FIFO servers) and its ``disk.xfer`` transfer station."""
        return [
            StationSpec(DISK_STATION, "fifo", float(self.parallelism)),
            StationSpec(DISK_XFER_STATION, "fifo", 1.0),
        ]
