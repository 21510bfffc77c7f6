"""Demands: what a request asks of the level it runs at, for many requests at once.

A workload's request is an ordered list of demands; each demand holds one amount per request (a
numpy array), so a whole block of requests is lowered in one pass. Layers turn demands into the
demands of the level below (adding their own costs); the host turns the bottom demands into
stages on its stations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from sim.stations import GroupPath

__all__ = ["Demand", "DemandKind", "Stage", "segments"]

DemandKind = Literal["cpu", "mem", "io", "net_in", "net_out", "station"]
_UNITS = {
    "cpu": "cycles",
    "mem": "bytes",
    "io": "bytes",
    "net_in": "bytes",
    "net_out": "bytes",
    "station": "seconds",
}


@dataclass(frozen=True)
class Demand:
    """One demand of a block of requests.

    ``amount`` is per request in the kind's unit: cpu in cycles; mem, io, net_in and net_out in
    bytes (an io amount of zero means the request does no I/O); station in seconds of service at
    the named station. ``layer`` is who introduced the demand ("app" for the workload itself),
    ``group`` the scheduling group its CPU time is charged to.
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

    def __post_init__(self) -> None:
        if self.kind not in _UNITS:
            raise ValueError(f"unknown demand kind {self.kind!r}")
        if self.kind == "station" and not self.station:
            raise ValueError("a station demand names its station")

    @property
    def unit(self) -> str:
        return _UNITS[self.kind]

    def with_amount(self, amount: np.ndarray) -> Demand:
        return replace(self, amount=amount)


@dataclass(frozen=True)
class Stage:
    """A bottom-level stage: service seconds per request at one host station."""

    station: str
    work_s: np.ndarray
    layer: str
    group: GroupPath = ()


def segments(size_bytes: np.ndarray, segment_bytes: float) -> np.ndarray:
    """Segments needed to carry each message (zero for an empty message).

    With TCP segmentation and generic receive offload (on by default for virtio-net, veth and
    bridges), the stack, the VMM and the bridge handle a message in segments of up to 64 KiB,
    not in MTU-sized packets: per-packet costs are paid per segment.
    """
    return np.ceil(np.asarray(size_bytes, dtype=float) / segment_bytes)
