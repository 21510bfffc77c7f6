"""Memory streams and CPU work share the cores: a streaming thread holds its core.

Before streams held cores, 4 STREAM and 4 Linpack threads on a 4-core host got 20.1 GB/s and
71.1 GFLOPS, each its figure alone (a wrong answer with exit status 0; a stop-gap refused such
runs). Now each thread gets its CFS share of the cores, streams or not, and the figures follow
from the shares by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest

HOST = {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"}  # 4 cores, 20 GB/s, 10 GB/s a core


def _scenario(stream_stack: list, compute_stack: list, streams: int = 4, computing: int = 4,
              duration_s: float = 1.0) -> dict:
    return {"name": "mix", "host": HOST,
            "run": {"duration": duration_s, "warmup": duration_s / 10, "replications": 1, "seed": 3,
                    "engine": "kernel"},
            "guests": [{"name": "s", "stack": stream_stack, "workload": {"kind": "stream", "threads": streams}},
                       {"name": "c", "stack": compute_stack, "workload": {"kind": "linpack", "threads": computing}}]}


def _figure(runs: pd.DataFrame, guest: str, metric: str) -> float:
    return float(runs.loc[(runs["guest"] == guest) & (runs["metric"] == metric), "value"].iloc[0])


def _alone(data: dict, guest: str) -> pd.DataFrame:
    import virtsim

    return virtsim.run({**data, "guests": [g for g in data["guests"] if g["name"] == guest]}).runs


def test_streams_and_cpu_work_past_the_cores_each_get_their_share() -> None:
    """4 STREAM and 4 Linpack threads on 4 cores, two processes of equal weight: each gets 2
    cores. Two full-speed streams fill the 20 GB/s; Linpack gets half its 4-core figure."""
    import virtsim

    data = _scenario(["bare-metal"], ["bare-metal"])
    runs = virtsim.run(data).runs
    assert _figure(runs, "s", "bandwidth_GBps") == pytest.approx(20.0, rel=0.02)
    assert _figure(runs, "c", "gflops") == pytest.approx(_figure(_alone(data, "c"), "c", "gflops") / 2, rel=0.03)


def test_one_stream_beside_seven_linpack_threads_takes_one_core() -> None:
    """1 STREAM thread and 7 Linpack threads: the stream process can use one core (its one
    thread), so it holds one (10 GB/s, a core's bandwidth) and Linpack gets the other 3 of the
    4 it had alone: three quarters of its figure (a 10 s run: a Linpack block is 0.1 s)."""
    import virtsim

    data = _scenario(["bare-metal"], ["bare-metal"], streams=1, computing=7, duration_s=10.0)
    runs = virtsim.run(data).runs
    assert _figure(runs, "s", "bandwidth_GBps") == pytest.approx(10.0, rel=0.02)
    assert _figure(runs, "c", "gflops") == pytest.approx(0.75 * _figure(_alone(data, "c"), "c", "gflops"), rel=0.02)


def test_streams_bound_to_cores_of_their_own_keep_them() -> None:
    """cpuset 0-1 for the streams, 2-3 for Linpack: two streams fill the 20 GB/s (10 GB/s each),
    and Linpack gets half the cores, so half its 4-core figure."""
    import virtsim

    data = _scenario([{"profile": "docker", "cpuset": [0, 1]}], [{"profile": "docker", "cpuset": [2, 3]}])
    runs = virtsim.run(data).runs
    assert _figure(runs, "s", "bandwidth_GBps") == pytest.approx(20.0, rel=0.02)
    alone = _alone(_scenario(["bare-metal"], ["bare-metal"]), "c")
    assert _figure(runs, "c", "gflops") == pytest.approx(_figure(alone, "c", "gflops") / 2, rel=0.03)


def test_streams_and_cpu_work_bound_to_the_same_cores_share_them() -> None:
    """Review 32 F1: 2 STREAM and 2 Linpack threads, both cpuset 0-1 on a 4-core host, each got
    its figure alone. Now the two containers share cores 0-1: a core each, so one stream's
    10 GB/s and half of Linpack's figure on the two cores alone."""
    import virtsim

    both = _scenario([{"profile": "docker", "cpuset": [0, 1]}], [{"profile": "docker", "cpuset": [0, 1]}], 2, 2)
    runs = virtsim.run(both).runs
    assert _figure(runs, "s", "bandwidth_GBps") == pytest.approx(10.0, rel=0.02)
    assert _figure(runs, "c", "gflops") == pytest.approx(_figure(_alone(both, "c"), "c", "gflops") / 2, rel=0.03)


def test_a_container_in_a_one_vcpu_vm_streams_on_its_one_vcpu() -> None:
    """Review 32 F4: the container's own group has no cap, the VM's has 1 vCPU: four streaming
    threads in it move one core's 10 GB/s, beside 3 Linpack threads on the other cores."""
    import virtsim

    nested = _scenario(["docker", {"profile": "kvm", "vcpus": 1}], ["bare-metal"], streams=4, computing=3)
    runs = virtsim.run(nested).runs
    assert _figure(runs, "s", "bandwidth_GBps") == pytest.approx(10.0, rel=0.03)
