"""cgroup ``cpu.max`` charges run time on hardware threads, not work done (review 37 F3).

CFS bandwidth control charges each thread the wall-clock time it runs
(``account_cfs_rq_runtime(cfs_rq, delta_exec)``), whatever its SMT sibling does. On a core whose
two threads both run, each does ``(1 + smt_yield) / 2`` of a core's work but uses a whole
thread's time of the quota: a 2-CPU limit on four busy threads gives less than two cores of work.
"""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel
from virtsim.sim.routes import Slot, Source, StationSpec, TraceArrivals
from virtsim.sim.slices import cfs_slices
from virtsim.sim.stations import GroupSpec

from .helpers import const_work


def _finish(jobs: int, scheduler: str, engine) -> np.ndarray:
    """``jobs`` jobs of 0.2 s of work at 0 in a container with cpu.max 200ms/100ms, on 2 cores x 2
    threads of SMT yield 0.25; their finish times."""
    slices = cfs_slices(4) if scheduler == "cfs" else None
    cpu = StationSpec("cpu", "shared", 2.0, {("c",): GroupSpec(quota_s=0.2, period_s=0.1)}, threads_per_server=2,
                      smt_yield=0.25, slices=slices)
    source = Source("j", (Slot("cpu", "app", ("c",)),), TraceArrivals((0.0,) * jobs), const_work(0.2))
    return engine([cpu], [source], RunControl(duration_s=2.0)).logs["j"].finish_s


@pytest.mark.parametrize("engine", [simulate, simulate_kernel], ids=["des", "kernel"])
@pytest.mark.parametrize("scheduler", ["fluid", "cfs"])
def test_four_threads_on_two_smt_cores_use_a_2_cpu_quota_in_half_a_period(scheduler, engine) -> None:
    """By hand: the four run at once at 0.625 of a core each and use 4 ms of quota per ms, so the
    200 ms quota lasts 50 ms of each 100 ms period: 31.25 ms of work a period each. 0.2 s of work
    takes six whole periods (187.5 ms) and 12.5 ms more at 0.625, 20 ms into the seventh: 0.62 s.
    (Charged for work, as before, they got 2 cores of work: 80 ms a period, done at 0.38 s.)"""
    assert _finish(4, scheduler, engine) == pytest.approx([0.62] * 4, abs=1e-9)


@pytest.mark.parametrize("engine", [simulate, simulate_kernel], ids=["des", "kernel"])
@pytest.mark.parametrize("scheduler", ["fluid", "cfs"])
def test_two_threads_alone_on_their_cores_use_the_quota_as_work(scheduler, engine) -> None:
    """Two jobs, each alone on a core: a whole core of work per thread's run time, so the 2-CPU
    quota never binds: done at 0.2 s."""
    assert _finish(2, scheduler, engine) == pytest.approx([0.2] * 2, abs=1e-9)
