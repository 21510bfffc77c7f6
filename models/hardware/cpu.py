"""CPU: sockets of cores at a clock rate, shared by processor sharing under cgroup-like groups."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from models.quantities import Hertz
from models.schema import StrictModel
from sim.routes import StationSpec
from sim.stations import GroupPath, GroupSpec

__all__ = ["CPU_STATION", "CpuSpec"]

CPU_STATION = "cpu"


class CpuSpec(StrictModel):
    """Physical cores: ``sockets`` x ``cores_per_socket`` at ``freq_hz`` (``freq = "3.1GHz"``)."""

    sockets: int = Field(1, ge=1)
    cores_per_socket: int = Field(8, ge=1)
    freq_hz: Hertz = Field(3.0e9, alias="freq", gt=0)

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket

    def seconds(self, cycles: float) -> float:
        """Time one core takes for ``cycles`` cycles."""
        return cycles / self.freq_hz

    def station(self, groups: Mapping[GroupPath, GroupSpec], background: Mapping[GroupPath, int]) -> StationSpec:
        """The host's cores as one weighted processor-sharing station."""
        return StationSpec(CPU_STATION, "shared", float(self.cores), dict(groups), dict(background))
