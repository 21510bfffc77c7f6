"""The compiled kernel is the DES, request by request: generated networks, every shipped scenario,
every profile, and a run taken in steps."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtsim.experiments.inputs import read_toml
from virtsim.experiments.scenario import default_scenario, load_scenario, parse_scenario
from virtsim.models.virt.stack import layer_profiles
from virtsim.models.workloads.catalog import NAMED_WORKLOADS
from virtsim.sim.control import RunControl
from virtsim.sim.engine import DesRun, RunResult, simulate
from virtsim.sim.kernel import KernelRun, simulate_kernel
from virtsim.sim.routes import (
    BatchArrivals,
    ClosedArrivals,
    IdleCondition,
    OpenArrivals,
    Slot,
    Source,
    StationSpec,
    TraceArrivals,
)
from virtsim.sim.slices import SliceSpec, cfs_slices, credit_slices
from virtsim.sim.stations import GroupSpec

from .helpers import work_factory

TOL_S = 1e-9
SCENARIOS = sorted(p for p in default_scenario().parent.glob("*.toml") if p.stem not in ("disk", "plan"))


def assert_same(des: RunResult, kernel: RunResult) -> None:
    """Same requests, arriving, finishing and spending time at each slot within TOL_S; same utilization."""
    assert des.logs.keys() == kernel.logs.keys()
    for name, a in des.logs.items():
        b = kernel.logs[name]
        assert a.n == b.n, name
        for x, y in ((a.arrival_s, b.arrival_s), (a.finish_s, b.finish_s), (a.stage_s, b.stage_s)):
            assert np.array_equal(np.isnan(x), np.isnan(y)), name
            ok = ~np.isnan(x)
            assert np.all(np.abs(x[ok] - y[ok]) <= TOL_S), (name, float(np.max(np.abs(x[ok] - y[ok]), initial=0)))
    assert des.utilization.keys() == kernel.utilization.keys()
    for key, value in des.utilization.items():
        assert math.isclose(value, kernel.utilization[key], rel_tol=1e-9, abs_tol=1e-12), key




@st.composite
def networks(draw):
    """A CPU with groups (weights, caps, quotas, thread pools, pinning, SMT, background jobs, fluid
    or in time slices) and a
    bandwidth domain whose streams run on it, FIFO, delay and lock stations, and open, closed,
    batch and trace sources with idle conditions."""
    cores = draw(st.integers(1, 4))
    paths = [("a",), ("b",), ("a", "x"), ("a", "y"), ("b", "x")]
    groups = {}
    for path in draw(st.lists(st.sampled_from(paths), unique=True, max_size=5)):
        quota = draw(st.sampled_from([None, None, 0.02, 0.05]))
        groups[path] = GroupSpec(
            weight=draw(st.sampled_from([50.0, 100.0, 300.0])),
            max_servers=draw(st.sampled_from([math.inf, 1.0, 2.0])),
            quota_s=quota, period_s=0.1,
            threads=draw(st.sampled_from([None, None, 1, 2])),
            # core sets that chain (0-1, 1-2) and nest: the affinity shares' hard cases; only cores the CPU has
            cores=draw(st.sampled_from([None, None, *(c for c in [(0,), (0, 1), (1, 2), (2,)] if max(c) < cores)]))
            if len(path) == 1 else None,
        )
    background = {("b",): 1} if draw(st.booleans()) and cores > 1 else {}
    tps = draw(st.sampled_from([1, 1, 2]))
    # time slices in a third of the networks: CFS's, Xen's, and round robin without wake-up preemption
    slices = draw(st.sampled_from([None, None, cfs_slices(cores * tps), credit_slices(),
                                   SliceSpec(0.01, 0.004, None, 0.0)]))
    stations = [StationSpec("cpu", "shared", float(cores), groups, background, tps, 0.3 if tps > 1 else 0.0,
                            slices=slices),
                StationSpec("disk", "fifo", float(draw(st.integers(1, 2)))),
                StationSpec("wire", "delay"),
                StationSpec("lock", "lock", float(draw(st.integers(1, 2)))),
                StationSpec("membw", "stream", draw(st.sampled_from([0.5, 1.0, 2.5])), cpu="cpu")]
    sources = []
    for j in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["open", "closed", "batch", "trace"]))
        route = []
        locked = kind != "trace" and draw(st.booleans())
        if locked:
            route.append(Slot("lock", "vmm", action="acquire"))
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.sampled_from(["cpu", "cpu", "disk", "wire", "membw"]))
            group = draw(st.sampled_from([(), *paths])) if where in ("cpu", "membw") else ()
            per_client = draw(st.sampled_from([0, 0, 1, 2])) if kind == "closed" and where == "cpu" else 0
            last = route[-1] if route else None
            if last is not None and last.station == "cpu" and draw(st.integers(0, 2)) == 0:
                # the same group again: stages of one pass of a thread (SharedStation.submit's keep)
                where, group, per_client = "cpu", last.group, last.per_client
            cond = None
            if draw(st.integers(0, 3)) == 0:
                cond = IdleCondition(draw(st.sampled_from(["cpu", "disk", "membw"])), group,
                                     draw(st.sampled_from([0.0, 0.01])))
            route.append(Slot(where, f"layer{len(route) % 2}", group, when_idle=cond, per_client=per_client))
        if locked:
            route.append(Slot("lock", "vmm", action="release"))
        if kind == "open":
            arrivals = OpenArrivals(draw(st.floats(1.0, 30.0)))
        elif kind == "closed":
            # A client without think time whose every slot can be skipped by a failed condition
            # would make requests at one instant forever (on both engines): it thinks then.
            conditioned = any(slot.when_idle is not None for slot in route)
            think = 0.05 if conditioned else draw(st.sampled_from([0.0, 0.05]))
            arrivals = ClosedArrivals(draw(st.integers(1, 5)), think)
        elif kind == "batch":
            arrivals = BatchArrivals(draw(st.integers(1, 20)), draw(st.sampled_from([0.0, 0.5])))
        else:
            arrivals = TraceArrivals(tuple(sorted(draw(st.lists(st.floats(0.0, 12.0), min_size=1, max_size=20)))))
        mean = draw(st.floats(0.005, 0.2))
        skip = draw(st.sampled_from([0.0, 0.3]))
        dist = draw(st.sampled_from(["exp", "const"]))
        # lock slots need positive work to act, as in the DES: a skipped acquire would unbalance the lock
        factory = work_factory(mean, len(route), 0.0 if locked else skip, dist)
        sources.append(Source(f"src{j}", tuple(route), arrivals, factory))
    return stations, sources, draw(st.integers(0, 2**31))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_the_kernel_and_the_des_agree_request_by_request_on_generated_networks(network) -> None:
    stations, sources, seed = network
    control = RunControl(duration_s=10.0, seed=seed)
    assert_same(simulate(stations, sources, control, 1), simulate_kernel(stations, sources, control, 1))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_runs_the_same_on_both_engines(path) -> None:
    scenario = load_scenario(path)
    control = RunControl(duration_s=min(scenario.run.duration_s, 0.5), warmup_s=0.0, seed=scenario.run.seed)
    for _, stack in scenario.variants():
        stations, sources = scenario.system(stack).engine_inputs()
        assert_same(simulate(stations, sources, control, 0), simulate_kernel(stations, sources, control, 0))


WORKLOADS = [get_args(w.model_fields["kind"].annotation)[0] for w in NAMED_WORKLOADS]
# oltp's 32 threads of 112-demand transactions would take most of this test's time; 4 threads
# take every path a transaction has
SMALLER = {"oltp": {"threads": 4}}


@pytest.mark.parametrize("profile", sorted(layer_profiles()))
def test_every_profile_runs_the_same_on_both_engines_with_every_named_workload(profile) -> None:
    stack = [profile]
    for workload in WORKLOADS:
        scenario = parse_scenario({
            "name": "both-engines", "host": read_toml(default_scenario(), "scenario")["host"],
            "run": {"duration": "0.01s", "warmup": "0s", "replications": 1, "seed": 3},
            "guests": [{"name": "g", "count": 2, "stack": stack,
                        "workload": {"kind": workload, **SMALLER.get(workload, {})}}],
        })
        stations, sources = scenario.system().engine_inputs()
        control = scenario.run.control()
        assert_same(simulate(stations, sources, control, 0), simulate_kernel(stations, sources, control, 0))


def test_a_run_taken_in_steps_equals_one_run() -> None:
    scenario = load_scenario(default_scenario())
    stations, sources = scenario.system(scenario.variants()[1][1]).engine_inputs()
    control = RunControl(duration_s=1.0, seed=7)
    run = KernelRun(stations, sources, control)
    for until in np.linspace(0.0, 1.0, 17)[1:]:
        run.step(until)
        assert run.now_s == pytest.approx(until)
    assert_same(simulate(stations, sources, control), run.result())


def test_many_contending_groups_share_alike_on_both_engines() -> None:
    """40 weighted, capped groups on 4 cores, some pinned: the kernel's merge sort and core
    domains (past the insertion sort's 16 members) split capacity as the DES does."""
    rng = np.random.default_rng(4)
    groups = {(f"g{i}",): GroupSpec(weight=float(rng.choice([50, 100, 200, 400])),
                                   max_servers=float(rng.choice([1, 2, math.inf])),
                                   cores=(i % 4,) if i % 5 == 0 else None) for i in range(40)}
    stations = [StationSpec("cpu", "shared", 4.0, groups)]
    sources = [Source(f"s{i}", (Slot("cpu", "app", (f"g{i}",)),), ClosedArrivals(2, 0.01),
                      work_factory(0.02, 1, 0.0, "exp")) for i in range(40)]
    control = RunControl(duration_s=5.0, seed=11)
    assert_same(simulate(stations, sources, control), simulate_kernel(stations, sources, control))


def test_steps_at_times_binary_cannot_hold_stop_exactly_there_on_both_engines() -> None:
    """Stepping to 0.7 then 2.9 (not exact in binary) must not take the trace arrival at 2.9, nor
    the batch due at the run's end: both engines stop before until_s and sit exactly on it."""
    stations = [StationSpec("disk", "fifo", 1.0)]
    sources = [Source("t", (Slot("disk", "io"),), TraceArrivals((0.7, 2.9, 2.9)), work_factory(0.01, 1, 0.0, "const")),
               Source("b", (Slot("disk", "io"),), BatchArrivals(5, 2.9), work_factory(0.01, 1, 0.0, "const"))]
    control = RunControl(duration_s=2.9)
    runs = [DesRun(stations, sources, control), KernelRun(stations, sources, control)]
    for run in runs:
        run.step(0.7)
        run.step(2.9)
        assert run.now_s == 2.9
    des, kernel = (run.result() for run in runs)
    assert des.logs["t"].n == kernel.logs["t"].n == 1 and des.logs["b"].n == kernel.logs["b"].n == 0
    assert_same(des, kernel)
    assert_same(simulate(stations, sources, RunControl(duration_s=5.0)),
                simulate_kernel(stations, sources, RunControl(duration_s=5.0)))  # equal trace times run


def test_raising_cpu_max_refills_and_unthrottles_at_once_on_both_engines() -> None:
    """10ms/100ms throttles a 30 ms job at 10 ms; raised to 100ms/100ms at 50 ms, it runs on at
    once (as a write to cpu.max does) and ends at 70 ms, not at the next period (120 ms)."""
    stations = [StationSpec("cpu", "shared", 1.0, {("c",): GroupSpec(quota_s=0.01, period_s=0.1)})]
    sources = [Source("j", (Slot("cpu", "app", ("c",)),), TraceArrivals((0.0,)), work_factory(0.03, 1, 0.0, "const"))]
    control = RunControl(duration_s=1.0)
    finish = []
    for run in (DesRun(stations, sources, control), KernelRun(stations, sources, control)):
        run.step(0.05)
        run.set_quota("cpu", ("c",), 0.1, 0.1)
        run.step(1.0)
        finish.append(run.result().logs["j"].finish_s[0])
    assert finish[0] == pytest.approx(0.07) and finish[1] == pytest.approx(0.07)


@pytest.mark.parametrize("stack", [["bare-metal"], ["vmware-workstation"]])
def test_requests_with_several_random_device_times_agree_on_both_engines(stack) -> None:
    """Each request: two reads whose sizes, presence and flash latencies are random, and on a
    type-2 VMM a random hit in the host's page cache. The DES samples requests 1024 at a time,
    the kernel in chunks of other sizes: every demand needs its own stream for the two to get
    the same numbers (one shared stream once gave 12 of 17 summary figures that differed)."""
    scenario = parse_scenario({
        "name": "random-devices",
        "host": {**read_toml(default_scenario(), "scenario")["host"], "storage": "nvme-ssd"},
        "run": {"duration": "0.6s", "warmup": "0s", "replications": 1, "seed": 11},
        "guests": [{"name": "g", "stack": stack, "workload": {
            "arrivals": {"kind": "closed", "clients": 2},
            "demands": [{"kind": "io", "op": "read", "size": "4KiB", "dist": "exp"},
                        {"kind": "cpu", "cycles": 20000},
                        {"kind": "io", "op": "read", "size": "4KiB", "probability": 0.5}]}}],
    })
    stations, sources = scenario.system().engine_inputs()
    control = scenario.run.control()
    des, kernel = simulate(stations, sources, control, 0), simulate_kernel(stations, sources, control, 0)
    assert des.logs["g"].n > 2048  # more than one DES block
    assert_same(des, kernel)


def _rate_run(run_class, changes: list[tuple[float, float]], end_s: float):
    """An open source (200/s to start) and a closed one on 2 cores and a disk, its rate changed
    at the given (time s, rate 1/s) steps."""
    stations = [StationSpec("cpu", "shared", 2.0), StationSpec("disk", "fifo", 1.0)]
    sources = [Source("o", (Slot("cpu", "app"), Slot("disk", "io")), OpenArrivals(200.0),
                      work_factory(0.003, 2, 0.2, "exp")),
               Source("c", (Slot("cpu", "app"),), ClosedArrivals(3, 0.01), work_factory(0.004, 1, 0.0, "exp"))]
    run = run_class(stations, sources, RunControl(duration_s=end_s, seed=21))
    for at, rate in changes:
        run.step(at)
        run.set_rate("o", rate)
    run.step(end_s)
    return run.result()


def test_rate_changes_mid_run_agree_request_by_request_on_both_engines() -> None:
    """Up, down to nothing, back, two changes at one instant, and a change after the last arrival
    would have come: the kernel and the DES move the pending arrival the same way."""
    changes = [(0.5, 400.0), (1.0, 0.0), (1.5, 100.0), (2.0, 0.0), (2.0, 300.0), (2.5, 50.0), (2.5, 50.0)]
    des, kernel = _rate_run(DesRun, changes, 3.0), _rate_run(KernelRun, changes, 3.0)
    assert_same(des, kernel)
    arrivals = des.logs["o"].arrival_s
    assert not np.any((arrivals > 1.0) & (arrivals < 1.5))  # stopped: nothing arrives
    assert np.any((arrivals > 1.0) & ~np.isnan(des.logs["o"].finish_s))  # those in flight finish


def test_an_open_source_follows_its_new_rate_within_poisson_bounds() -> None:
    """1,000/s for 10 s, nothing for 10 s, 3,000/s for 10 s: each window's arrivals are a Poisson
    count of rate x 10 s (4 standard deviations), and none in the stopped window."""
    kernel = _rate_run(KernelRun, [(0.0, 1000.0), (10.0, 0.0), (20.0, 3000.0)], 30.0)
    arrivals = kernel.logs["o"].arrival_s
    for lo, rate in ((0.0, 1000.0), (10.0, 0.0), (20.0, 3000.0)):
        n = np.count_nonzero((arrivals >= lo) & (arrivals < lo + 10.0))
        expected = rate * 10.0
        assert abs(n - expected) <= 4 * math.sqrt(expected), (lo, n, expected)


def _open_and_closed(run_class):
    """A run of an open source ``o`` and a closed source ``c`` of 3 clients, not yet stepped."""
    stations = [StationSpec("cpu", "shared", 1.0)]
    sources = [Source("o", (Slot("cpu", "app"),), OpenArrivals(10.0), work_factory(0.001, 1, 0.0, "exp")),
               Source("c", (Slot("cpu", "app"),), ClosedArrivals(3, 0.1), work_factory(0.001, 1, 0.0, "exp"))]
    return run_class(stations, sources, RunControl(duration_s=1.0))


@pytest.mark.parametrize("run_class", [DesRun, KernelRun])
def test_a_rate_change_is_refused_for_a_closed_source_or_a_bad_rate(run_class) -> None:
    run = _open_and_closed(run_class)
    with pytest.raises(ValueError, match="not open-loop"):
        run.set_rate("c", 5.0)
    with pytest.raises(ValueError, match="no source 'x'"):
        run.set_rate("x", 5.0)
    for bad in (-1.0, math.inf, math.nan, 1e300):
        with pytest.raises(ValueError, match=">= 0"):
            run.set_rate("o", bad)
    with pytest.raises(ValueError, match="a number of requests per second"):
        run.set_rate("o", "100")  # type: ignore[arg-type]


@pytest.mark.parametrize("run_class", [DesRun, KernelRun])
def test_a_rate_set_before_the_first_step_holds_from_the_start(run_class) -> None:
    """Changed at time 0, before any step (review 6 A1: the DES then stopped the source for good):
    2,000/s over 2 s is a Poisson count of 4,000; stopped before the start and restarted at 1 s
    at 500/s, 500."""
    for changes, expected in (([(0.0, 2000.0)], 4000), ([(0.0, 0.0), (1.0, 500.0)], 500)):
        stations = [StationSpec("cpu", "shared", 4.0)]
        sources = [Source("o", (Slot("cpu", "app"),), OpenArrivals(10.0), work_factory(0.0001, 1, 0.0, "exp"))]
        run = run_class(stations, sources, RunControl(duration_s=2.0, seed=5))
        for at, rate in changes:
            run.step(at)
            run.set_rate("o", rate)
        run.step(2.0)
        n = run.result().logs["o"].n
        assert abs(n - expected) <= 4 * math.sqrt(expected), (changes, n)
    des = _rate_run(DesRun, [(0.0, 300.0), (0.0, 0.0), (0.7, 250.0)], 1.5)
    assert_same(des, _rate_run(KernelRun, [(0.0, 300.0), (0.0, 0.0), (0.7, 250.0)], 1.5))


def _clients_run(run_class, changes: list[tuple[float, int]], end_s: float, think_s: float):
    """A closed source of 4 clients (think ``think_s``) on 2 cores and a disk beside an open one,
    its active clients changed at the given (time s, clients) steps; a trace source sends a disk
    request at each change's instant too (which of the two reaches the disk first is the order
    of events at one time, as SimPy has it)."""
    stations = [StationSpec("cpu", "shared", 2.0), StationSpec("disk", "fifo", 1.0)]
    sources = [Source("o", (Slot("cpu", "app"),), OpenArrivals(150.0), work_factory(0.002, 1, 0.0, "exp")),
               Source("t", (Slot("disk", "io"),), TraceArrivals(tuple(sorted({at for at, _ in changes}))),
                      work_factory(0.002, 1, 0.0, "exp")),
               Source("c", (Slot("disk", "io"), Slot("cpu", "app")), ClosedArrivals(4, think_s),
                      work_factory(0.002, 2, 0.3, "exp"))]
    run = run_class(stations, sources, RunControl(duration_s=end_s, seed=23))
    for at, clients in changes:
        run.step(at)
        run.set_clients("c", clients)
    run.step(end_s)
    return run.result()


@pytest.mark.parametrize("think_s", [0.01, 0.0])
def test_client_changes_mid_run_agree_request_by_request_on_both_engines(think_s) -> None:
    """Set before the start, down, to none, back to all, two changes at one instant both ways (up
    then down again: a woken client paused anew stays idle, review 9), a pause undone before the
    client stopped: the kernel and the DES stop and restart the same clients at the same events
    (with and without think times)."""
    changes = [(0.0, 3), (0.3, 1), (0.6, 0), (0.75, 4), (0.75, 0), (0.9, 4), (1.2, 2), (1.2, 3), (1.5, 1), (1.5, 4)]
    des, kernel = _clients_run(DesRun, changes, 2.0, think_s), _clients_run(KernelRun, changes, 2.0, think_s)
    assert_same(des, kernel)
    log = des.logs["c"]
    arrivals = log.arrival_s[:log.n]
    # with none active from 0.6 s, at most the one client then active makes the request it was
    # thinking towards; nothing else arrives until 0.9 s
    assert np.count_nonzero((arrivals > 0.6) & (arrivals < 0.9)) <= 1
    assert np.count_nonzero(arrivals >= 0.9) > 50


def test_a_closed_loop_follows_mean_value_analysis_before_and_after_its_clients_change() -> None:
    """4 clients then 1 on one FIFO server (exponential service 1 ms, think 4 ms): the throughput
    of each 20 s window is exact MVA's for its population (N = 1: 1 / (S + Z) = 200/s; N = 4 by
    hand: R = 1, 1.2, 1.4615, 1.8028 ms, X = 4 / 5.8028 ms = 689.3/s), within 4 Poisson standard
    deviations."""
    service, think = 0.001, 0.004
    stations = [StationSpec("disk", "fifo", 1.0)]
    sources = [Source("c", (Slot("disk", "io"),), ClosedArrivals(4, think), work_factory(service, 1, 0.0, "exp"))]
    run = KernelRun(stations, sources, RunControl(duration_s=40.0, seed=3))
    run.step(20.0)
    run.set_clients("c", 1)
    run.step(40.0)
    log = run.result().logs["c"]
    finish = log.finish_s[:log.n]

    def mva(n: int) -> float:
        queue = 0.0
        for k in range(1, n + 1):
            response = service * (1 + queue)
            throughput = k / (response + think)
            queue = throughput * response
        return throughput

    assert math.isclose(mva(1), 200.0) and 689.3 < mva(4) < 689.4
    for lo, n in ((0.5, 4), (20.5, 1)):  # a little after each change: the old population drains
        done = np.count_nonzero((finish >= lo) & (finish < lo + 19.5))
        expected = mva(n) * 19.5
        assert abs(done - expected) <= 4 * math.sqrt(expected), (n, done, expected)


@pytest.mark.parametrize("run_class", [DesRun, KernelRun])
def test_a_client_change_is_refused_for_an_open_source_or_a_bad_count(run_class) -> None:
    run = _open_and_closed(run_class)
    with pytest.raises(ValueError, match="not closed-loop"):
        run.set_clients("o", 1)
    with pytest.raises(ValueError, match="no source 'x'"):
        run.set_clients("x", 1)
    for bad in (-1, 4, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"from 0 .* to 3"):
            run.set_clients("c", bad)  # type: ignore[arg-type]


def test_utilization_leaves_the_warm_up_out_on_every_engine() -> None:
    """A disk busy from 0.05 s to 0.15 s and from 0.5 s to 0.6 s, warm-up 0.1 s, run 1 s: 0.05 s
    + 0.1 s of the 0.9 s after the warm-up, 1/6 (review 6 B1: the whole run's 0.2 was reported)."""
    from virtsim.sim.vector import simulate_vector

    stations = [StationSpec("disk", "fifo", 1.0)]
    sources = [Source("t", (Slot("disk", "io"),), TraceArrivals((0.05, 0.5)), work_factory(0.1, 1, 0.0, "const"))]
    control = RunControl(duration_s=1.0, warmup_s=0.1)
    for run in (simulate, simulate_kernel):
        assert run(stations, sources, control).utilization["disk"] == pytest.approx(0.15 / 0.9), run.__name__
    # the vector engine takes open arrivals: the same windowing, checked against the DES
    poisson = [Source("o", (Slot("disk", "io"),), OpenArrivals(6.0), work_factory(0.05, 1, 0.0, "exp"))]
    control = RunControl(duration_s=30.0, warmup_s=10.0, seed=4)
    vector, des = simulate_vector(stations, poisson, control), simulate(stations, poisson, control)
    assert vector.utilization["disk"] == pytest.approx(des.utilization["disk"], rel=1e-9)


def test_cpu_utilization_after_a_busy_warm_up_is_the_load_after_it() -> None:
    """3,000/s x 1 ms on 4 cores in the 1 s warm-up, then 400/s for 2 s: 400 x 1 ms / 4 = 0.1 of the
    CPU after the warm-up (a Poisson count: within 10%), on both engines alike."""
    stations = [StationSpec("cpu", "shared", 4.0)]
    sources = [Source("o", (Slot("cpu", "app"),), OpenArrivals(3000.0), work_factory(0.001, 1, 0.0, "exp"))]
    control = RunControl(duration_s=3.0, warmup_s=1.0, seed=2)
    results = []
    for run_class in (DesRun, KernelRun):
        run = run_class(stations, sources, control)
        run.step(1.0)
        run.set_rate("o", 400.0)
        run.step(3.0)
        results.append(run.result())
    assert results[0].utilization["cpu"] == pytest.approx(0.1, rel=0.1)
    assert_same(*results)
