"""Storage devices: per-operation latency over internal channels, then a shared transfer.

A device is two stations in tandem: ``disk`` with ``parallelism`` FIFO servers that each take an
operation's access latency (random or sequential, read or write), then ``disk.xfer``, which moves
the bytes at ``bandwidth``. Access latencies vary: each is drawn from a lognormal distribution
with the profile's latency as its mean and ``latency_sigma`` as the spread of its logarithm (0:
every access takes exactly the mean), so a queue depth of one sees the device's tail, and its
saturated throughput (set by the mean) is unchanged.

One operation alone need not reach the whole bandwidth: its data come from the few flash dies
and channels its pages sit on, and it waits for each of them in turn. With ``op_bandwidth``
(bytes/s) an operation's data move at that rate at most: the device moves the data of
``ceil(bandwidth / op_bandwidth)`` operations at once, in the order they came, sharing
``bandwidth`` equally (``bandwidth / op_bandwidth`` servers of ``op_bandwidth`` each), and the
others wait. A single stream at queue depth 1 gets ``size / (latency + size / op_bandwidth)``,
and it takes that many operations in flight to fill the device. Unset, one operation moves at
the full ``bandwidth`` and transfers are served one at a time in order.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field, model_validator

from virtsim.models.quantities import Bytes, BytesPerSecond, Seconds
from virtsim.models.schema import StrictModel
from virtsim.sim.routes import StationSpec
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["DISK_STATION", "DISK_XFER_GROUP", "DISK_XFER_STATION", "StorageSpec"]

DISK_STATION = "disk"
DISK_XFER_STATION = "disk.xfer"
_MAX_TRANSFERS = 1024
"""The most operations a device moves data for at once (``bandwidth / op_bandwidth``, rounded up)."""
DISK_XFER_GROUP: GroupPath = ("transfers",)
"""The group of ``disk.xfer`` that holds the transfers in progress (with ``op_bandwidth``)."""


class StorageSpec(StrictModel):
    """A block device.

    Access latencies (s): ``random_read_latency``, ``random_write_latency``, ``seq_latency``
    (means; ``latency_sigma`` the spread of their logarithm); ``parallelism``: operations served
    at once; ``bandwidth`` (bytes/s): the transfer rate; ``op_bandwidth`` (bytes/s): the fastest
    one operation's data move (unset or above ``bandwidth``: ``bandwidth``; at least ``bandwidth /
    1024``); ``capacity`` (bytes): the disk's size.
    """

    random_read_latency_s: Seconds = Field(100e-6, alias="random_read_latency")
    random_write_latency_s: Seconds = Field(50e-6, alias="random_write_latency")
    seq_latency_s: Seconds = Field(20e-6, alias="seq_latency")
    parallelism: int = Field(8, ge=1)
    bandwidth_Bps: BytesPerSecond = Field(1e9, alias="bandwidth", gt=0)
    capacity_bytes: Bytes = Field(1.92e12, alias="capacity", gt=0)
    latency_sigma: float = Field(0.0, ge=0, le=2)
    op_bandwidth_Bps: BytesPerSecond | None = Field(None, alias="op_bandwidth", gt=0)

    @model_validator(mode="after")
    def _transfers_bounded(self) -> StorageSpec:
        """Refuse an ``op_bandwidth`` below ``bandwidth / 1024`` (raises ``ValueError``): the
        device would move more than 1,024 operations' data at once, each a simulated thread."""
        if self.op_bandwidth_Bps is not None and self.op_bandwidth_Bps * _MAX_TRANSFERS < self.bandwidth_Bps:
            raise ValueError(f"op_bandwidth ({self.op_bandwidth_Bps:.4g} B/s) is below bandwidth / "
                             f"{_MAX_TRANSFERS} ({self.bandwidth_Bps / _MAX_TRANSFERS:.4g} B/s): a device moves "
                             f"at most {_MAX_TRANSFERS} operations' data at once here; raise op_bandwidth")
        return self

    @property
    def op_rate_Bps(self) -> float:
        """The rate (bytes/s) one operation's data move at: ``op_bandwidth``, at most ``bandwidth``
        (a device made slower than one operation's rate is the bound itself)."""
        return min(self.op_bandwidth_Bps or self.bandwidth_Bps, self.bandwidth_Bps)

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
        """Work (s at one ``disk.xfer`` server) to move each request's ``size_bytes`` bytes: at
        ``op_bandwidth`` if set (one server of the shared transfer), else at ``bandwidth``."""
        return np.asarray(size_bytes) / self.op_rate_Bps

    def alone_s(self, size_bytes: float, op: str = "read", pattern: str = "seq") -> float:
        """Mean time (s) of one operation of ``size_bytes`` on an idle device: its access latency and
        its transfer at the rate one operation gets (``op_bandwidth``, else ``bandwidth``)."""
        if size_bytes <= 0:
            return 0.0
        size = np.asarray(size_bytes)
        return float(self.access_s(op, pattern, size)) + float(self.transfer_s(size))

    def stations(self) -> list[StationSpec]:
        """The device's ``disk`` station (``parallelism`` FIFO servers) and its ``disk.xfer`` transfer
        station: one FIFO server, or with ``op_bandwidth`` a shared one of ``bandwidth / op_bandwidth`` servers
        whose transfers run that many, rounded up, at a time."""
        if self.op_rate_Bps >= self.bandwidth_Bps:
            xfer = StationSpec(DISK_XFER_STATION, "fifo", 1.0)
        else:
            servers = self.bandwidth_Bps / self.op_rate_Bps
            groups = {DISK_XFER_GROUP: GroupSpec(threads=math.ceil(servers - 1e-9))}
            xfer = StationSpec(DISK_XFER_STATION, "shared", servers, groups)
        return [StationSpec(DISK_STATION, "fifo", float(self.parallelism)), xfer]
