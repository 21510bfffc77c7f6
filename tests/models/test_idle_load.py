"""Always-running host work (a desktop host's own processes under a type-2 VMM) keeps cores busy:
it slows the guests and shows in the CPU's utilization."""

from __future__ import annotations

import pytest

from virtsim.experiments.scenario import parse_scenario
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel

HOST = {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"}  # 4 cores, no SMT


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_a_host_background_core_counts_in_utilization(engine) -> None:
    """vmware-workstation's host runs one core of its own processes (host_background_cores = 1).
    With one request at the very end of a 1 s run, the 4-core host is busy 1/4 of the time."""
    scenario = parse_scenario({
        "name": "background", "host": HOST,
        "run": {"duration": "1s", "warmup": "0s", "replications": 1, "seed": 1},
        "guests": [{"name": "g", "stack": ["vmware-workstation"],
                    "workload": {"arrivals": {"kind": "batch", "count": 1, "at": "0.999s"},
                                 "demands": [{"kind": "cpu", "cycles": 1}]}}],
    })
    stations, sources = scenario.system().engine_inputs()
    utilization = engine(stations, sources, scenario.run.control(), 0).utilization["cpu"]
    assert utilization == pytest.approx(0.25, rel=1e-6)
