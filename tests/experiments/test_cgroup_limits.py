"""Container limits in action: the shipped cgroup scenarios show what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtsim.experiments.runner import run_scenario
from virtsim.experiments.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "experiments" / "scenarios"


def _means(name: str):
    runs = run_scenario(load_scenario(SCENARIOS / name), progress=False, workers=2).runs
    runs = runs[(runs["layer"] == "all") & (runs["station"] == "all")]
    return runs.groupby(["stack", "guest", "metric"])["value"].mean()


def test_a_cpu_max_quota_makes_the_p99_jump_but_not_the_median() -> None:
    m = _means("cgroup-quota.toml")
    free, limited = "docker", "docker{cpu_max=50ms/100ms}"
    # Same arrivals (common random numbers), same throughput: the quota is not exceeded on average.
    assert m[(limited, "api", "throughput_rps")] == pytest.approx(m[(free, "api", "throughput_rps")], rel=0.01)
    # The median barely moves, the p99 jumps several times: requests that arrive after the quota
    # is spent wait for the next 100 ms period.
    assert m[(limited, "api", "latency_p50_s")] < 1.2 * m[(free, "api", "latency_p50_s")]
    assert m[(limited, "api", "latency_p99_s")] > 3 * m[(free, "api", "latency_p99_s")]
    assert 0.01 < m[(limited, "api", "latency_p99_s")] < 0.1


def test_cpu_weight_splits_a_contended_core_two_to_one() -> None:
    m = _means("cgroup-weight.toml")
    label = "docker{cpu_weight=200} + docker{cpu_weight=100}"  # run as written: each guest's stack, in order
    heavy = m[(label, "heavy", "throughput_rps")]
    light = m[(label, "light", "throughput_rps")]
    assert heavy / light == pytest.approx(2.0, rel=0.05)
    # Together they keep the one core busy: 100 requests/s of 10 ms each.
    assert heavy + light == pytest.approx(100.0, rel=0.02)
