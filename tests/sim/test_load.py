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
    serve 2.5 cores' work, but a 1-vCPU group can run one job at a time: 500/s x 2 ms is all of
    the one core it can have, and all of the group. A closed loop offers nothing (its rate follows
    the system)."""
    cpu = StationSpec("cpu", "shared", 2.0, {("vm",): GroupSpec(max_servers=1.0)}, threads_per_server=2,
                      smt_yield=0.25)
    disk = StationSpec("disk", "fifo", 1.0)
    sources = [Source("a", (Slot("disk", "io"),), OpenArrivals(100.0), _constant(0.005)),
               Source("b", (Slot("cpu", "app", ("vm",)),), OpenArrivals(500.0), _constant(0.002)),
               Source("c", (Slot("disk", "io"),), ClosedArrivals(4, 0.0), _constant(0.01))]
    loads = offered_load([cpu, disk], sources)
    assert loads["disk"] == pytest.approx(0.5)
    assert loads["cpu"] == pytest.approx(1.0)
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


def _servers(n: int, arrivals) -> tuple[StationSpec, list[Source]]:
    """``n`` single-threaded servers (event loops: one FIFO thread each) on 16 cores of 2 threads
    whose second thread adds 25% of a core, each request 1 ms of CPU."""
    cpu = StationSpec("cpu", "shared", 16.0, {(f"s{i}",): GroupSpec(threads=1) for i in range(n)},
                      threads_per_server=2, smt_yield=0.25)
    return cpu, [Source(f"s{i}", (Slot("cpu", "app", (f"s{i}",)),), arrivals, _constant(0.001)) for i in range(n)]


def test_an_smt_host_serves_only_the_threads_that_can_run() -> None:
    """Review 7 A2: 24 event loops can run 24 threads, so the host gives 16 + 0.25 x 8 = 18 cores
    (not 16 x 1.25 = 20): 790/s x 1 ms each is 24 x 0.79 / 18 = 1.053 of it, overloaded (it
    read 0.948 and passed). 22 of them: 22 x 0.79 / (16 + 0.25 x 6) = 0.993. With a thread per
    request (no bound) the whole 20 cores count."""
    for n, expected in ((24, 24 * 0.79 / 18), (22, 22 * 0.79 / 17.5)):
        cpu, sources = _servers(n, OpenArrivals(790.0))
        assert offered_load([cpu], sources)["cpu"] == pytest.approx(expected)
    unbounded = StationSpec("cpu", "shared", 16.0, threads_per_server=2, smt_yield=0.25)
    sources = [Source(f"s{i}", (Slot("cpu", "app"),), OpenArrivals(790.0), _constant(0.001)) for i in range(24)]
    assert offered_load([unbounded], sources)["cpu"] == pytest.approx(24 * 0.79 / 20)


def test_the_attainable_capacity_is_what_the_engine_serves() -> None:
    """24 event loops kept busy (one closed client each, no think time) on that host: the kernel
    serves 18 cores' worth, 0.75 of a core each, as attainable_capacity says (a different
    computation: the engine shares cores and SMT siblings request by request)."""
    from virtsim.sim.control import RunControl
    from virtsim.sim.kernel import simulate_kernel
    from virtsim.sim.load import attainable_capacity

    cpu, sources = _servers(24, ClosedArrivals(1, 0.0))
    result = simulate_kernel([cpu], sources, RunControl(duration_s=0.5, warmup_s=0.1, seed=1))
    served = sum(np.count_nonzero((log.finish_s[:log.n] >= 0.1) & (log.finish_s[:log.n] < 0.5))
                 for log in result.logs.values()) * 0.001 / 0.4
    assert attainable_capacity(cpu, 24) == 18.0
    assert served == pytest.approx(18.0, rel=0.01)


def test_groups_bound_to_the_same_cores_are_judged_against_those_cores() -> None:
    """Review 8 A1: ten containers on cpuset 0, each 100/s x 1 ms (0.1 core), offer core 0 all
    of it, 1.0: overloaded, though the 4-core host is a quarter busy (it read 0.25 and passed).
    Nine offer 0.9. Groups on overlapping core sets (0,1 and 1,2) are pooled over cores 0-2."""
    def host(cores: dict[str, tuple[int, ...]]) -> tuple[StationSpec, list[Source]]:
        cpu = StationSpec("cpu", "shared", 4.0, {(g,): GroupSpec(cores=c) for g, c in cores.items()})
        return cpu, [Source(g, (Slot("cpu", "app", (g,)),), OpenArrivals(100.0), _constant(0.001)) for g in cores]

    for n, expected in ((10, 1.0), (9, 0.9)):
        cpu, sources = host({f"c{i}": (0,) for i in range(n)})
        loads = offered_load([cpu], sources)
        assert loads["cpu:cores=0"] == pytest.approx(expected) and loads["cpu"] == pytest.approx(n * 0.1 / 4)
    cpu, sources = host({"a": (0, 1), "b": (1, 2), "c": (3,)})
    loads = offered_load([cpu], sources)
    assert loads["cpu:cores=0,1,2"] == pytest.approx(0.2 / 3) and loads["cpu:cores=3"] == pytest.approx(0.1)


def test_a_thread_limited_group_is_judged_against_its_threads() -> None:
    """Review 8 B2: an event loop (1 thread) offered 1.2 cores beside a light neighbour: the host
    is 1.3 / 4 busy, but the loop is 120% of its one thread; a pool of 2 threads offered 2.4
    cores likewise. A group whose load is partly its subgroups' is not capped by its own threads."""
    cpu = StationSpec("cpu", "shared", 4.0, {("hot",): GroupSpec(threads=1), ("pool",): GroupSpec(threads=2),
                                             ("vm",): GroupSpec(threads=1)})
    sources = [Source("hot", (Slot("cpu", "app", ("hot",)),), OpenArrivals(1200.0), _constant(0.001)),
               Source("pool", (Slot("cpu", "app", ("pool",)),), OpenArrivals(2400.0), _constant(0.001)),
               Source("vm", (Slot("cpu", "app", ("vm",)), Slot("cpu", "app", ("vm", "io"))), OpenArrivals(500.0),
                      _constant(0.001, 0.002))]
    loads = offered_load([cpu], sources)
    assert loads["cpu:hot"] == pytest.approx(1.2) and loads["cpu:pool"] == pytest.approx(1.2)
    assert "cpu:vm" not in loads


def test_a_group_bound_to_a_core_gets_no_smt_sibling() -> None:
    """Review 9: on 2 cores of 2 threads (a second thread adds 25%), a group bound to core 0 is
    served at most one core's worth by the engine (a closed loop keeping it busy: 1.00 core), so
    1,100/s x 1 ms offers it 1.1 of it, overloaded; counting the sibling (1.25 cores) read 0.88."""
    from virtsim.sim.control import RunControl
    from virtsim.sim.kernel import simulate_kernel

    cpu = StationSpec("cpu", "shared", 2.0, {("p",): GroupSpec(cores=(0,))}, threads_per_server=2, smt_yield=0.25)
    opened = [Source("p", (Slot("cpu", "app", ("p",)),), OpenArrivals(1100.0), _constant(0.001))]
    assert offered_load([cpu], opened)["cpu:cores=0"] == pytest.approx(1.1)
    busy = [Source("p", (Slot("cpu", "app", ("p",)),), ClosedArrivals(8, 0.0), _constant(0.001))]
    log = simulate_kernel([cpu], busy, RunControl(duration_s=0.5, warmup_s=0.1, seed=2)).logs["p"]
    done = np.count_nonzero((log.finish_s[:log.n] >= 0.1) & (log.finish_s[:log.n] < 0.5))
    assert done * 0.001 / 0.4 == pytest.approx(1.0, rel=0.01)


def test_bound_cores_are_judged_as_the_engine_serves_them_at_saturation() -> None:
    """Review 27 #1. Two containers on core 0 of 4 (no SMT), 0.3 core each: 0.6, not 1.2 (the
    capacity shrank with the jobs that could run). On 4 cores of 2 threads, A bound to core 0
    offered 1.1 cores beside a light free group: the host runs fewer jobs than it has cores, so
    the engine gives A one core, not 1.25: 1.1, overloaded (it read 0.88 and A's backlog grew)."""
    two = StationSpec("cpu", "shared", 4.0, {("a",): GroupSpec(cores=(0,)), ("b",): GroupSpec(cores=(0,))})
    light = [Source(g, (Slot("cpu", "app", (g,)),), OpenArrivals(300.0), _constant(0.001)) for g in "ab"]
    assert offered_load([two], light)["cpu:cores=0"] == pytest.approx(0.6)
    smt = StationSpec("cpu", "shared", 4.0, {("A",): GroupSpec(cores=(0,))}, threads_per_server=2, smt_yield=0.25)
    mixed = [Source("A", (Slot("cpu", "app", ("A",)),), OpenArrivals(11.0), _constant(0.1)),
             Source("u", (Slot("cpu", "app", ("u",)),), OpenArrivals(1.0), _constant(0.1))]
    assert offered_load([smt], mixed)["cpu:cores=0"] == pytest.approx(1.1)


def test_a_cpuset_inside_a_vm_names_vcpus_of_one_thread() -> None:
    """Review 27 #2: a container's cpuset [0] inside a 4-vCPU VM on a host of 2 threads per
    core was capped at 2 servers (the host's threads): 2 cores' throughput from one vCPU."""
    from virtsim.sim.control import RunControl
    from virtsim.sim.kernel import simulate_kernel

    groups = {("vm",): GroupSpec(max_servers=4), ("vm", "ctr"): GroupSpec(cores=(0,))}
    cpu = StationSpec("cpu", "shared", 16.0, groups, threads_per_server=2, smt_yield=0.25)
    busy = [Source("g", (Slot("cpu", "app", ("vm", "ctr")),), ClosedArrivals(4, 0.0), _constant(0.01))]
    log = simulate_kernel([cpu], busy, RunControl(duration_s=1.0, warmup_s=0.2, seed=2)).logs["g"]
    done = np.count_nonzero((log.finish_s[:log.n] >= 0.2) & (log.finish_s[:log.n] < 1.0))
    assert done * 0.01 / 0.8 == pytest.approx(1.0, rel=0.02)  # one vCPU's worth
    opened = [Source("g", (Slot("cpu", "app", ("vm", "ctr")),), OpenArrivals(150.0), _constant(0.01))]
    assert offered_load([cpu], opened)["cpu"] == pytest.approx(1.5)


@pytest.mark.parametrize(("layer", "demand", "station", "expected"), [
    # 200 I/Os a second through a 1,000 IOPS throttle: 20% of it
    ({"profile": "docker", "io_max_iops": 1000}, {"kind": "io", "size": "4KiB"}, "io.max:g", 0.2),
    # 100 x 64 MiB a second bound to one of ddr3-2s's two 22.8 GB/s controllers (45.6 GB/s in all)
    ("bare-metal", {"kind": "mem", "size": "64MiB", "pattern": "seq", "numa_nodes": 1}, "membw:nodes-0-0",
     100 * 64 * 2**20 / 22.8e9),
])
def test_stations_whose_names_hold_a_colon_are_offered_their_load(layer, demand, station, expected) -> None:
    """Review 28 F11: a work key "station:group" was split at its first colon, so an open loop
    through a throttle (io.max:GUEST) or bound memory (membw:nodes-A-B) crashed every run."""
    from virtsim.experiments.scenario import parse_scenario
    from virtsim.sim.load import offered_load

    rate = 200 if demand["kind"] == "io" else 100
    sc = parse_scenario({"name": "x", "host": {"cpu": "xeon-e5-2665-2s", "memory": "ddr3-2s"},
                         "guests": [{"name": "g", "stack": [layer], "workload": {
                             "arrivals": {"kind": "open", "rate": f"{rate}/s"}, "demands": [demand]}}]})
    stations, sources = sc.system().engine_inputs()
    assert offered_load(stations, sources)[station] == pytest.approx(expected, rel=0.01)
