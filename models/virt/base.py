"""What every virtualization layer is: a validated parameter set and a lowering of demands.

A layer receives the demands of the level above it (the application's, or another layer's) and
returns the demands of the level below: the same demands, possibly changed (a nested page walk,
a read served by the host's page cache), plus the costs the layer itself adds, each tagged with
the layer's name so that a request's time can be attributed to it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from models.demands import Demand
from models.schema import StrictModel
from sim.routes import StationSpec
from sim.stations import GroupPath, GroupSpec

__all__ = ["Layer", "LayerContext", "LayerParams", "cpu_demand", "station_demand"]


class LayerParams(StrictModel):
    """Base of every layer's parameters: unknown keys are errors, values are read-only."""


@dataclass(frozen=True)
class LayerContext:
    """Where a layer lowers: for which guest, in which CPU group, with which network segment size."""

    guest: str
    group: GroupPath
    scope: str = ""  # "" on the host; the guest's name inside a VM (its own bridge, say)
    segment_bytes: float = 65536.0  # TSO/GSO segment: the unit of per-packet costs
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


class Layer(ABC):
    """A virtualization layer built from a profile (``name``) and validated parameters."""

    kind: ClassVar[str]
    params_model: ClassVar[type[LayerParams]]

    def __init__(self, name: str, params: LayerParams) -> None:
        self.name = name
        self.params = params

    @abstractmethod
    def lower(self, demands: list[Demand], ctx: LayerContext) -> list[Demand]:
        """The demands one level down: those given, changed as the layer changes them, plus its own."""

    def group_spec(self) -> GroupSpec:
        """How the host CPU schedules this layer's group (default: an ordinary process group)."""
        return GroupSpec()

    def stations(self, ctx: LayerContext) -> list[StationSpec]:
        """Stations the layer's demands visit beyond the host's own (a VMM thread, a bridge)."""
        return []

    def background(self) -> dict[GroupPath, int]:
        """Always-running jobs the layer puts on the host CPU, by group."""
        return {}

    def check(self, host_cores: int) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raise ValueError if the parameters cannot hold on a host of ``host_cores`` cores."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def cpu_demand(cycles: np.ndarray, layer: str, group: GroupPath) -> Demand:
    """CPU work a layer adds, charged to ``group``."""
    return Demand("cpu", np.asarray(cycles, dtype=float), layer, group)


def station_demand(station: str, seconds: np.ndarray, layer: str) -> Demand:
    """Service a layer adds at one of its own stations."""
    return Demand("station", np.asarray(seconds, dtype=float), layer, station=station)
