"""CPU: sockets of cores at a clock rate, shared by processor sharing under cgroup-like groups.

Besides its cores, a CPU has a ``wakeup`` delay: the time from an event (a packet, an I/O
completion) to a blocked thread running again on an idle core: the scheduler's wake-up path and
the core's exit from its idle state. It is paid only when the thread was asleep. With
``threads_per_core`` > 1 (SMT), a core's sibling threads add ``smt_yield`` of a core when both
are busy. ``vmexit_cycles`` is the hardware's VM exit and entry round trip (VT-x, SVM): it fell
from about 1,900 cycles (2005) to about 500 (2011 on), and every hypervisor's exit pays it.
``baseline_flops_per_cycle`` is what a core does with x86-64's baseline vector ISA (SSE2), all
a guest shown a generic CPU model can use. ``scheduler`` chooses fluid processor sharing or the
time slices of Linux CFS or Xen's credit scheduler (:mod:`virtsim.sim.slices`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator

from virtsim.models.quantities import Cycles, Hertz, Seconds
from virtsim.models.schema import StrictModel
from virtsim.sim.routes import StationSpec
from virtsim.sim.slices import cfs_slices, credit_slices
from virtsim.sim.stations import GroupPath, GroupSpec

__all__ = ["CPU_STATION", "CpuSpec"]

CPU_STATION = "cpu"


class CpuSpec(StrictModel):
    """Physical cores: ``sockets`` x ``cores_per_socket`` at ``freq_hz`` (``freq = "3.1GHz"``)."""

    sockets: int = Field(1, ge=1)
    cores_per_socket: int = Field(8, ge=1)
    freq_hz: Hertz = Field(3.0e9, alias="freq", gt=0)
    wakeup_s: Seconds = Field(2e-6, alias="wakeup")
    threads_per_core: int = Field(1, ge=1, le=8)
    smt_yield: float = Field(0.0, ge=0, le=1)
    vmexit_cycles: Cycles = Field(507.0)
    # VMCS shadowing (Intel since Haswell): a nested hypervisor's VMREAD/VMWRITE do not exit
    vmcs_shadowing: bool = True
    # APICv: posted interrupts and virtual EOI (Intel since Ivy Bridge-EP): interrupts to a running vCPU do not exit
    apicv: bool = True
    # nested paging (Intel EPT since Nehalem, 2008; AMD NPT since Barcelona, 2007): without it a
    # hypervisor shadows the guest's page tables
    nested_paging: bool = True
    # double-precision flops per cycle of a core with x86-64's baseline vector ISA (SSE2: a
    # two-wide add and a two-wide multiply each cycle): what code gets on a guest shown a generic
    # CPU model without the host's wider extensions (AVX)
    baseline_flops_per_cycle: float = Field(4.0, gt=0, le=1024)
    # how the host's scheduler shares cores among guests' threads when there are more of them
    # than hardware threads: "fluid" processor sharing (every runnable thread at once, each at a
    # fraction of a core), or time slices as Linux CFS ("cfs": KVM, containers, bare metal) or
    # Xen's credit scheduler ("credit") gives them (virtsim.sim.slices)
    scheduler: Literal["fluid", "cfs", "credit"] = "fluid"

    @field_validator("freq_hz")
    @classmethod
    def _a_cpus_clock(cls, freq: float) -> float:
        """Refuse a clock no CPU this models runs at: a number without a unit is hertz, so
        ``freq = 3`` meant 3 GHz but read 3 Hz (review 30)."""
        if not 1e8 <= freq <= 1e10:
            raise ValueError(f"{freq:g} Hz is not a CPU clock (0.1 .. 10 GHz); write it with a unit, like \"3.1GHz\"")
        return freq

    @property
    def cores(self) -> int:
        """Physical cores of the host: ``sockets x cores_per_socket``."""
        return self.sockets * self.cores_per_socket

    @property
    def capacity_cores(self) -> float:
        """Cores' worth of work with every hardware thread busy: each core, plus ``smt_yield`` of
        a core for each further thread (the CPU station's capacity)."""
        return self.cores * (1 + self.smt_yield * (self.threads_per_core - 1))

    def seconds(self, cycles: float) -> float:
        """Time one core takes for ``cycles`` cycles."""
        return cycles / self.freq_hz

    def station(self, groups: Mapping[GroupPath, GroupSpec], background: Mapping[GroupPath, int],
                name: str = CPU_STATION) -> StationSpec:
        """The cores as one weighted processor-sharing station (in time slices unless the
        scheduler is ``fluid``)."""
        slices = {"fluid": None, "cfs": cfs_slices(self.cores * self.threads_per_core),
                  "credit": credit_slices()}[self.scheduler]
        return StationSpec(name, "shared", float(self.cores), dict(groups), dict(background),
                           self.threads_per_core, self.smt_yield, slices=slices)
