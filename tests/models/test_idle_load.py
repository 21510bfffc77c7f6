"""An idle guest kernel's housekeeping is simulated load on the host's cores."""

from __future__ import annotations

import pytest

from virtsim.experiments.scenario import parse_scenario
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel

HOST = {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"}  # 4 cores, no SMT


def _scenario(guests: int, idle_cores: float, demands: list, arrivals: dict, duration: str) -> object:
    return parse_scenario({
        "name": "idle", "host": HOST,
        "run": {"duration": duration, "warmup": "0s", "replications": 1, "seed": 1},
        "guests": [{"name": "g", "count": guests,
                    "stack": [{"profile": "kvm", "vcpus": 1, "idle_cpu_cores": idle_cores}],
                    "workload": {"arrivals": arrivals, "demands": demands}}],
    })


def test_an_idle_guest_takes_its_idle_cores_on_both_engines() -> None:
    """With no request running, each guest's housekeeping takes idle_cpu_cores of the host's
    cores (a quota of 0.1 x 100 ms per 100 ms): its label's utilization, per host core, x 4 cores."""
    scenario = _scenario(3, 0.1, [{"kind": "cpu", "cycles": 1}], {"kind": "batch", "count": 1, "at": "0.999s"}, "1s")
    stations, sources = scenario.system().engine_inputs()  # type: ignore[attr-defined]
    for run in (simulate, simulate_kernel):
        utilization = run(stations, sources, scenario.run.control(), 0)  # type: ignore[attr-defined]
        for i in range(1, 4):
            assert utilization.utilization[f"idle:g-{i}"] * 4 == pytest.approx(0.1, rel=1e-6)
        assert utilization.utilization["cpu"] * 4 == pytest.approx(0.3, rel=1e-3)


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_housekeeping_competes_with_the_guests_for_host_cores(engine) -> None:
    """Four 1-vCPU guests, each with a CPU-bound client, on 4 cores: alone they get a core each.
    With a quarter core of housekeeping each, 4 + 4 x 0.25 = 5 cores are wanted of 4; processor
    sharing gives each housekeeping job all it wants (0.25 < a fair half core), leaving the four
    clients 3 cores: three quarters of their throughput."""
    def throughput(idle: float) -> float:
        scenario = _scenario(4, idle, [{"kind": "cpu", "cycles": 3e6}], {"kind": "closed", "clients": 1}, "2s")
        stations, sources = scenario.system().engine_inputs()  # type: ignore[attr-defined]
        logs = engine(stations, sources, scenario.run.control(), 0).logs  # type: ignore[attr-defined]
        return sum(float((log.finish_s == log.finish_s).sum()) for log in logs.values())

    assert throughput(0.25) / throughput(1e-9) == pytest.approx(0.75, rel=0.02)
