"""Memory streams and CPU work past the host's cores: refused, not answered.

A streaming thread runs on a core, but the model serves a stream at the memory bandwidth station
alone, without taking the core from CPU work. Within the cores that costs nothing; past them it
gave both full speed (4 STREAM threads and 4 Linpack threads on a 4-core host: 20.1 GB/s and
71.1 GFLOPS, each its figure alone), a wrong answer with exit status 0.
"""

from __future__ import annotations

import pandas as pd
import pytest

from virtsim.experiments.runner import stream_core_excess
from virtsim.experiments.scenario import ScenarioError

HOST = {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"}  # 4 cores, 20 GB/s, 10 GB/s a core


def _scenario(stream_stack: list, compute_stack: list) -> dict:
    return {"name": "mix", "host": HOST,
            "run": {"duration": "1s", "warmup": "0.1s", "replications": 1, "seed": 3, "engine": "kernel"},
            "guests": [{"name": "s", "stack": stream_stack, "workload": {"kind": "stream", "threads": 4}},
                       {"name": "c", "stack": compute_stack, "workload": {"kind": "linpack", "threads": 4}}]}


def test_streams_and_cpu_work_sharing_the_cores_past_them_are_refused_naming_both() -> None:
    import virtsim

    with pytest.raises(ScenarioError, match=r"memory streams keep 4\.0 cores busy and CPU work 4\.0.*4 cores"):
        virtsim.run(_scenario(["bare-metal"], ["bare-metal"]))


def test_streams_bound_to_cores_of_their_own_are_answered() -> None:
    """cpuset 0-1 for the streams, 2-3 for Linpack: two streams fill the 20 GB/s (10 GB/s each),
    and Linpack gets half the cores, so half its 4-core figure."""
    import virtsim

    runs = virtsim.run(_scenario([{"profile": "docker", "cpuset": [0, 1]}],
                                 [{"profile": "docker", "cpuset": [2, 3]}])).runs
    whole = runs[(runs["layer"] == "all") & (runs["station"] == "all")].set_index(["guest", "metric"])["value"]
    alone = virtsim.run({**_scenario(["bare-metal"], ["bare-metal"]),
                         "guests": _scenario(["bare-metal"], ["bare-metal"])["guests"][1:]}).runs
    gflops_alone = float(alone.loc[(alone["metric"] == "gflops") & (alone["guest"] == "c"), "value"].iloc[0])
    assert whole[("s", "bandwidth_GBps")] == pytest.approx(20.0, rel=0.02)
    assert whole[("c", "gflops")] == pytest.approx(gflops_alone / 2, rel=0.02)


def test_the_cores_streams_hold_are_requests_at_the_bandwidth_station_at_once_capped_by_their_cores() -> None:
    """By hand: 100 streams/s of 30 ms each keep 3 cores busy (Little's law); capped at 2 cores
    they keep 2. With 1.5 cores of CPU work on a 4-core host: 4.5 > 4 is refused, 3.5 is not."""
    def runs(cpu_util: float) -> pd.DataFrame:
        base = dict(stack="kvm", replication=0, layer="all")
        return pd.DataFrame([{**base, "guest": "s", "metric": "throughput_rps", "station": "all", "value": 100.0},
                             {**base, "guest": "s", "metric": "time_mean_s", "station": "membw", "value": 0.03},
                             {**base, "guest": "host", "metric": "utilization", "station": "cpu",
                              "value": cpu_util}])

    assert stream_core_excess(runs(1.5 / 4), 4.0, {}) == {("kvm", 0): (pytest.approx(3.0), pytest.approx(1.5))}
    assert stream_core_excess(runs(1.5 / 4), 4.0, {("kvm", "s"): 2.0}) == {}
    assert stream_core_excess(runs(0.0), 4.0, {}) == {}  # streams alone: the bandwidth bounds them
