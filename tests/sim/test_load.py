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


def test_guests_with_the_same_route_but_other_work_are_each_sampled() -> None:
    """Two guest entries visiting the same stations, 100/s of 1M and of 3M cycles on 4 cores at
    3 GHz: (100 x 1M + 100 x 3M) / 3 GHz / 4 = 1/30 of the CPU. Taking one guest's work for the
    other's (they share a route) gave 1/60; guests of one entry share a family and one sample."""
    from virtsim.experiments.scenario import parse_scenario

    def guest(name: str, cycles: str, count: int = 1) -> dict:
        return {"name": name, "count": count, "stack": ["bare-metal"], "workload": {
            "arrivals": {"kind": "open", "rate": "100/s"}, "demands": [{"kind": "cpu", "cycles": cycles}]}}

    scenario = parse_scenario({"name": "two", "host": {"cpu": "small-4c"},
                               "guests": [guest("a", "1M"), guest("b", "3M", count=3)]})
    stations, sources = scenario.system().engine_inputs()
    assert len({s.family for s in sources}) == 2
    loads = offered_load(stations, sources, samples=100)
    assert loads["cpu"] == pytest.approx((100 * 1e6 + 3 * 100 * 3e6) / 3e9 / 4)
