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


@pytest.mark.parametrize("engine", ["des", "kernel"])
def test_a_guest_named_like_a_bandwidth_domain_is_no_stream(engine: str) -> None:
    """Review 33 F1: a Linpack guest named ``membw`` had its CPU work taken for memory streams
    (4 GB/s and 28.9 GFLOPS; as a VM the kernel gave it no core at all). Named so, it runs as
    any guest: 20 GB/s and half of Linpack's 4-core figure, as in the first test."""
    import virtsim

    data = _scenario(["bare-metal"], ["bare-metal"])
    data["run"]["engine"] = engine
    data["guests"][1]["name"] = "membw"
    runs = virtsim.run(data).runs
    assert _figure(runs, "s", "bandwidth_GBps") == pytest.approx(20.0, rel=0.02)
    alone = _alone(_scenario(["bare-metal"], ["bare-metal"]), "c")
    assert _figure(runs, "membw", "gflops") == pytest.approx(_figure(alone, "c", "gflops") / 2, rel=0.03)
    vm = _scenario(["bare-metal"], [{"profile": "kvm", "vcpus": 1}])
    vm["run"]["engine"] = engine
    vm["guests"][1]["name"] = "membw"
    vm["guests"][1]["workload"]["block_flops"] = 2e7  # short blocks: many finish in the window
    assert _figure(virtsim.run(vm).runs, "membw", "gflops") == pytest.approx(17.6, rel=0.03)  # one core's


def test_a_thread_serving_several_clients_streams_on_its_one_core() -> None:
    """Review 33 F4: 8 clients served by one thread (clients_per_thread = 8) streamed on 2 cores
    (20 GB/s) beside Linpack; the stream stage dropped the client's thread group. One thread
    streams one core's 10 GB/s and Linpack gets the other 3 cores, as with threads = 1."""
    import virtsim

    def run(extra: dict) -> pd.DataFrame:
        data = _scenario(["bare-metal"], ["bare-metal"])
        data["guests"][0]["workload"] = {"arrivals": {"kind": "closed", "clients": 8}, **extra,
                                         "demands": [{"kind": "mem", "size": "10MB", "pattern": "seq"}]}
        data["guests"][1]["workload"]["block_flops"] = 2e7
        return virtsim.run(data).runs

    for extra in ({"clients_per_thread": 8}, {"threads": 1}):
        runs = run(extra)
        assert _figure(runs, "s", "throughput_rps") * 10e6 / 1e9 == pytest.approx(10.0, rel=0.02), extra
        assert _figure(runs, "c", "gflops") == pytest.approx(3 * 17.6, rel=0.03), extra


def test_an_event_loop_that_streams_is_offered_its_one_threads_time_for_both() -> None:
    """Review 33 F2, F3: one thread doing 1 ms of CPU and a 1 MB stream (0.1 ms at 10 GB/s) per
    request serves at most 909/s: 950/s offers it 104.5%. The offered load left the stream out
    of the thread's work (cpu 0.26, no row for the thread), so no overload warning; and the
    planner took the thread for infinitely many runnable jobs."""
    import virtsim
    from virtsim.models.hardware.host import HostSpec
    from virtsim.models.system import Guest, System
    from virtsim.models.virt.stack import Stack
    from virtsim.models.workloads.request import RequestWorkload
    from virtsim.sim.load import group_runnable

    demands = [{"kind": "cpu", "cycles": "3M"}, {"kind": "mem", "size": "1MB", "pattern": "seq"}]
    workload = {"arrivals": {"kind": "open", "rate": "950/s"}, "threads": 1, "demands": demands}
    data = {"name": "pool", "host": HOST, "run": {"duration": "1s", "warmup": "0.1s", "replications": 1, "seed": 3},
            "guests": [{"name": "api", "stack": ["bare-metal"], "workload": workload}]}
    runs = virtsim.run(data).runs
    offered = runs[runs["metric"] == "offered_utilization"].set_index("station")["value"]
    assert offered["cpu:api/threads"] == pytest.approx(950 * 1.1e-3, rel=0.02)
    assert offered["cpu"] == pytest.approx(950 * 1.1e-3, rel=0.02)  # the one core the thread can hold
    system = System(HostSpec.model_validate(HOST), (Guest("g", Stack.of(["bare-metal"]),
                                                          RequestWorkload.model_validate(workload)),))
    assert group_runnable(*system.engine_inputs(), "cpu", ("g",)) == 1.0
