"""NUMA nodes: each socket's memory controller, memory bound to some nodes or interleaved over all.

Hand-computed: a host with 2 nodes of 10 GB/s each (20 GB/s in all) and 5 GB/s per stream. One
STREAM thread reaches 5 GB/s wherever its memory lies; eight threads reach 10 GB/s with their
memory bound to one node and 20 GB/s interleaved over both (every stream draws on both
controllers at once, page by page).
"""

from __future__ import annotations

import pytest

from virtsim.experiments.runner import run_scenario
from virtsim.experiments.scenario import ScenarioError, parse_scenario

HOST = {"cpu": "xeon-e5-2665-2s", "storage": "nvme-ssd", "network": "10gbe",
        "memory": {"profile": "ddr3-2s", "bandwidth": "20GB/s", "core_bandwidth": "5GB/s"}}


def _stream(threads: int, numa_nodes: int | None, host: dict | None = None) -> dict:
    workload: dict = {"kind": "stream", "threads": threads, "block_bytes": "8MiB"}
    if numa_nodes is not None:
        workload["numa_nodes"] = numa_nodes
    return {"name": "numa", "run": {"duration": "0.4s", "warmup": "0.05s", "replications": 1, "seed": 1,
                                    "engine": "des"},
            "host": host or HOST, "guests": [{"name": "s", "workload": workload}]}


def _bandwidth(data: dict) -> float:
    runs = run_scenario(parse_scenario(data), progress=False).runs
    return float(runs.loc[runs["metric"] == "bandwidth_GBps", "value"].mean())


@pytest.mark.parametrize(("threads", "numa_nodes", "expected_GBps"), [
    (1, 1, 5.0), (1, None, 5.0),  # one stream: its core's bandwidth
    (8, 1, 10.0),  # bound to one node: that controller's 10 GB/s
    (8, None, 20.0),  # interleaved: both controllers
    (8, 2, 20.0),  # bound to both nodes is interleaving over all
])
def test_stream_bandwidth_by_memory_placement(threads: int, numa_nodes: int | None, expected_GBps: float) -> None:
    assert _bandwidth(_stream(threads, numa_nodes)) == pytest.approx(expected_GBps, rel=0.03)


def test_binding_to_more_nodes_than_the_host_has_is_refused() -> None:
    with pytest.raises(ScenarioError, match="binds memory to 3 NUMA nodes, but the host's memory has 2"):
        parse_scenario(_stream(8, 3))


def test_bound_and_interleaved_traffic_on_one_host_is_refused_not_guessed() -> None:
    data = _stream(4, 1)
    data["guests"].append({"name": "t", "workload": {"kind": "stream", "threads": 4}})
    with pytest.raises(ScenarioError, match=r"memory traffic bound to \[1, 2\] NUMA nodes on one host"):
        parse_scenario(data)


def test_a_one_node_host_keeps_one_station_named_membw() -> None:
    system = parse_scenario(_stream(2, None, {**HOST, "memory": "ddr4-small"})).system()
    names = {s.name for s in system.engine_inputs()[0]}
    assert "membw" in names and not any(n.startswith("membw:") for n in names)


@pytest.mark.parametrize(("stack", "streams"), [
    ([{"profile": "kvm", "vcpus": 1}], 1), ([{"profile": "docker", "cpuset": [0]}], 1),
    ([{"profile": "kvm", "vcpus": 3}], 3), (["bare-metal"], 4),  # 4 streams fill the host's 20 GB/s
])
def test_a_guest_streams_no_more_than_the_cores_it_may_use(stack: list, streams: float) -> None:
    """Review 28 F7: a thread streams memory only while it runs on a core; a 1-vCPU VM (or a
    container on one core) ran 8 STREAM threads at the whole host's 20 GB/s. Hand-computed:
    5 GB/s per stream, at most the guest's cores of them, at most 20 GB/s."""
    data = _stream(8, None)
    data["guests"][0]["stack"] = stack
    assert _bandwidth(data) == pytest.approx(min(5.0 * streams, 20.0), rel=0.02)


@pytest.mark.parametrize("quota_ms", [100, 50])
def test_streams_stalled_on_memory_burn_a_cpu_max_quota(quota_ms: int) -> None:
    """A container with cpu.max of one CPU (or half) and 8 STREAM threads on an idle 32-thread
    host does not stream like one core (5 GB/s): each period its 8 threads run at once, together
    asking 40 GB/s of the 20 GB/s, until they have used the quota, stalls and all: q / 8 of each
    100 ms period at 20 GB/s, then throttled. The 0.35 s window holds the bursts at 0.1, 0.2 and
    0.3 s (the one at 0 is in the warm-up): 3 x 20 GB/s x q/8 / 0.35 s, 2.14 GB/s at 100 ms
    (2.5 GB/s over whole periods: half of one core's 5 GB/s)."""
    data = _stream(8, None)
    data["guests"][0]["stack"] = [{"profile": "docker", "cpu_max": f"{quota_ms}ms/100ms"}]
    data["guests"][0]["workload"]["block_bytes"] = "1MiB"  # many blocks a burst: the window's edges count little
    assert _bandwidth(data) == pytest.approx(3 * 20.0 * quota_ms / 1e3 / 8 / 0.35, rel=0.03)


def test_guests_bound_to_one_node_each_are_spread_over_the_nodes() -> None:
    """Review 28 F18: every guest bound to one node took the same node, so two such guests got
    half a node each. As one binds each to its own socket, guest i takes node i mod 2: two guests
    each stream a whole node's 10 GB/s; a third shares node 0 with the first."""
    def per_guest(count: int) -> dict[str, float]:
        data = _stream(8, 1)
        data["guests"][0]["count"] = count
        runs = run_scenario(parse_scenario(data), progress=False).runs
        rows = runs[(runs["metric"] == "bandwidth_GBps") & (runs["layer"] == "all") & (runs["station"] == "all")]
        return rows.groupby("guest")["value"].mean().to_dict()

    assert per_guest(2) == pytest.approx({"s-1": 10.0, "s-2": 10.0}, rel=0.02)
    assert per_guest(3) == pytest.approx({"s-1": 5.0, "s-2": 10.0, "s-3": 5.0}, rel=0.02)


def test_a_guest_that_binds_no_memory_does_not_shift_the_bound_ones() -> None:
    """Review 29 F1: the turn was the guest's place among all guests, so a guest between two bound
    ones put both on node 0 (half a node each). Only the guests that bind memory take turns."""
    data = _stream(8, 1)
    bound = data["guests"][0]
    data["guests"] = [dict(bound, name="a"), {"name": "b", "stack": ["bare-metal"], "workload": {
        "arrivals": {"kind": "open", "rate": "10/s"}, "demands": [{"kind": "cpu", "cycles": 1000}]}},
        dict(bound, name="c")]
    runs = run_scenario(parse_scenario(data), progress=False).runs
    rows = runs[(runs["metric"] == "bandwidth_GBps") & (runs["layer"] == "all") & (runs["station"] == "all")]
    assert rows.groupby("guest")["value"].mean().to_dict() == pytest.approx({"a": 10.0, "c": 10.0}, rel=0.02)
