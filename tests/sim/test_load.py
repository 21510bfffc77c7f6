"""Offered load against hand computation: rate x work per request / capacity."""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.sim.load import offered_load
from virtsim.sim.routes import ClosedArrivals, OpenArrivals, Slot, Source, StationSpec
from virtsim.sim.stations import GroupSpec


def _constant(*work_s: float):
    def factory(seed: np.random.SeedSequence):
        return lambda n: np.tile(np.array(work_s, dtype=float), (n, 1))
    return factory


def test_offered_load_is_rate_times_work_over_capacity() -> None:
    """A disk at 100/s x 5 ms is half busy; 2 cores with SMT (2 threads, a second thread adds 25%)
    serve 2.5 cores' work: 500/s x 2 ms is 0.4 of it, and all of the 1-vCPU group it runs in.
    A closed loop offers nothing (its rate follows the system)."""
    cpu = StationSpec("cpu", "shared", 2.0, {("vm",): GroupSpec(max_servers=1.0)}, threads_per_server=2,
                      smt_yield=0.25)
    disk = StationSpec("disk", "fifo", 1.0)
    sources = [Source("a", (Slot("disk", "io"),), OpenArrivals(100.0), _constant(0.005)),
               Source("b", (Slot("cpu", "app", ("vm",)),), OpenArrivals(500.0), _constant(0.002)),
               Source("c", (Slot("disk", "io"),), ClosedArrivals(4, 0.0), _constant(0.01))]
    loads = offered_load([cpu, disk], sources)
    assert loads["disk"] == pytest.approx(0.5)
    assert loads["cpu"] == pytest.approx(0.4)
    assert loads["cpu:vm"] == pytest.approx(1.0)
