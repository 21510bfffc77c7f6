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
    they keep 2. Beside 15 CPU requests/s of 100 ms (1.5 cores) on a 4-core host: 4.5 > 4 is
    refused, 3.5 is not; bound to the same two cores (cpusets), 2 + 1.5 > 2 is (review 32 F1)."""
    from virtsim.experiments.runner import CoreUse

    base = dict(stack="kvm", replication=0, layer="all")
    runs = pd.DataFrame([{**base, "guest": "s", "metric": "throughput_rps", "station": "all", "value": 100.0},
                         {**base, "guest": "s", "metric": "time_mean_s", "station": "membw", "value": 0.03},
                         {**base, "guest": "c", "metric": "throughput_rps", "station": "all", "value": 15.0},
                         {**base, "guest": "c", "metric": "time_mean_s", "station": "cpu", "value": 0.1}])
    excess = stream_core_excess(runs, 4.0, 4, {})
    assert excess[("kvm", 0)][:2] == (pytest.approx(3.0), pytest.approx(1.5))
    assert stream_core_excess(runs, 4.0, 4, {("kvm", "s"): CoreUse(stream_cap=2.0)}) == {}
    pair = frozenset({0, 1})
    shared = stream_core_excess(runs, 4.0, 4, {("kvm", "s"): CoreUse(2.0, pair), ("kvm", "c"): CoreUse(cores=pair)})
    assert "cores [0, 1]'s 2 cores' worth" in shared[("kvm", 0)][2]
    apart = {("kvm", "s"): CoreUse(2.0, pair), ("kvm", "c"): CoreUse(cores=frozenset({2, 3}))}
    assert stream_core_excess(runs, 4.0, 4, apart) == {}
    alone = runs[runs["guest"] == "s"]  # streams alone: the bandwidth bounds them
    assert stream_core_excess(alone, 4.0, 4, {}) == {}


def test_streams_and_cpu_work_bound_to_the_same_cores_are_refused() -> None:
    """Review 32 F1: 2 STREAM and 2 Linpack threads, both cpuset 0-1 on a 4-core host, got each
    their figure alone (20.1 GB/s, 35.6 GFLOPS); the host's 4 cores hid the overlap."""
    import virtsim

    both = _scenario([{"profile": "docker", "cpuset": [0, 1]}], [{"profile": "docker", "cpuset": [0, 1]}])
    for guest in both["guests"]:
        guest["workload"]["threads"] = 2
    with pytest.raises(ScenarioError, match=r"more than cores \[0, 1\]'s 2 cores' worth"):
        virtsim.run(both)


def test_streams_capped_by_the_vm_around_their_container_and_a_desktops_processes_are_not_refused() -> None:
    """Review 32 F4, F5: the check took a container's streams in a 1-vCPU VM for 4 cores (the
    container's own group has no cap, the VM's has 1), and a hosted hypervisor's always-running
    desktop processes for CPU work competing with the streams."""
    import virtsim

    nested = _scenario(["docker", {"profile": "kvm", "vcpus": 1}], ["bare-metal"])
    nested["guests"][1]["workload"]["threads"] = 3  # 1 + 3 cores on 4
    runs = virtsim.run(nested).runs
    assert float(runs.loc[(runs["guest"] == "s") & (runs["metric"] == "bandwidth_GBps"), "value"].iloc[0]) \
        == pytest.approx(10.0, rel=0.02)  # one stream at one core's 10 GB/s
    desktop = {**_scenario([{"profile": "virtualbox", "vcpus": 4}], ["bare-metal"])}
    desktop["guests"] = desktop["guests"][:1]  # streams alone, beside VirtualBox's desktop
    virtsim.run(desktop)
