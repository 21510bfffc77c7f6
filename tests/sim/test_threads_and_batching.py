"""Threads on the shared CPU, costs paid only when something was idle, locks, affinity.

Hand timelines are derived in each docstring from the discipline's rules and asserted to the
float; the statistical tests compare with closed forms (Pollaczek-Khinchine for an event loop,
exact mean value analysis for closed networks) inside a 99% confidence interval whose width is
bounded too, so a test cannot pass by being vague.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.sim.helpers import const_work
from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.routes import ClosedArrivals, IdleCondition, OpenArrivals, Slot, Source, StationSpec, TraceArrivals
from virtsim.sim.stations import GroupSpec
from virtsim.sim.stats import t_interval

LONG = RunControl(duration_s=100.0)


def _run(stations, route, arrivals, *work, control=LONG):
    src = Source("q", tuple(route), arrivals, const_work(*work))
    return simulate(stations, [src], control), src


def _finishes(result) -> list[float]:
    return [round(float(t), 12) for t in result.logs["q"].finish_s]


def test_an_event_loop_serves_in_order_while_sharing_the_core() -> None:
    """One core. Event loop E (one thread) gets a and b (1 s each) at 0; group U gets u (1.5 s).

    E runs one job, U one: 1/2 each. a ends at 2 (u has 1 s done). b starts: both at 1/2 until
    u ends at 3 (b has 0.5 done); b alone finishes at 3.5. Processor sharing inside E would have
    ended a and b together.
    """
    cpu = StationSpec("cpu", "shared", 1, {("E",): GroupSpec(threads=1)})
    e = Source("e", (Slot("cpu", "app", ("E",)),), TraceArrivals((0.0, 0.0)), const_work(1.0))
    u = Source("u", (Slot("cpu", "app", ("U",)),), TraceArrivals((0.0,)), const_work(1.5))
    result = simulate([cpu], [e, u], LONG)
    assert list(result.logs["e"].finish_s) == pytest.approx([2.0, 3.5], abs=1e-9)
    assert list(result.logs["u"].finish_s) == pytest.approx([3.0], abs=1e-9)


def test_a_pool_of_two_threads_runs_two_jobs_at_a_time() -> None:
    """Four cores, pool of 2 threads, three 1 s jobs at 0: two end at 1, the third at 2."""
    cpu = StationSpec("cpu", "shared", 4, {("P",): GroupSpec(threads=2)})
    result, _ = _run([cpu], [Slot("cpu", "app", ("P",))], TraceArrivals((0.0, 0.0, 0.0)), 1.0)
    assert _finishes(result) == pytest.approx([1.0, 1.0, 2.0], abs=1e-9)


def test_a_notification_is_paid_only_when_the_back_end_is_idle() -> None:
    """Kick (0.1 s on the CPU) only if back end B is idle, then B serves 1 s. Arrivals 0, 0.5,
    0.6, 3.0, 5.0.

    r0: B idle -> kick 0-0.1, B 0.1-1.1. r1 (0.5) and r2 (0.6): B busy -> no kick; B serves them
    1.1-2.1 and 2.1-3.1. r3 (3.0): B still busy -> no kick; 3.1-4.1. r4 (5.0): B idle since 4.1
    -> kick 5.0-5.1, B 5.1-6.1. Two kicks for five requests: the cost falls as the ring fills.
    """
    stations = [StationSpec("cpu", "shared", 1), StationSpec("B", "fifo", 1)]
    route = [Slot("cpu", "vmm", ("g",), when_idle=IdleCondition("B")), Slot("B", "vmm")]
    result, _ = _run(stations, route, TraceArrivals((0.0, 0.5, 0.6, 3.0, 5.0)), 0.1, 1.0)
    assert _finishes(result) == pytest.approx([1.1, 2.1, 3.1, 4.1, 6.1], abs=1e-9)
    kicks = result.logs["q"].stage_s[:, 0] > 0
    assert kicks.tolist() == [True, False, False, False, True]


def test_a_wake_up_is_paid_only_after_the_poll_window() -> None:
    """As above with min_idle_s = 1 (a halt-poll window): at 5.0, B has been idle 0.9 s < 1 s,
    so no kick, and r4 ends at 6.0; a sixth request at 8.0 (idle 2 s) pays: ends at 9.1."""
    stations = [StationSpec("cpu", "shared", 1), StationSpec("B", "fifo", 1)]
    route = [Slot("cpu", "vmm", ("g",), when_idle=IdleCondition("B", min_idle_s=1.0)), Slot("B", "vmm")]
    result, _ = _run(stations, route, TraceArrivals((0.0, 0.5, 0.6, 3.0, 5.0, 8.0)), 0.1, 1.0)
    assert _finishes(result) == pytest.approx([1.1, 2.1, 3.1, 4.1, 6.0, 9.1], abs=1e-9)


def test_an_interrupt_wakes_a_vcpu_only_if_its_group_is_idle() -> None:
    """Wake-up delay 0.3 s only if group ('vm',) has no job; then 1 s of work in ('vm', 'app').

    r0 at 0: idle -> wake 0-0.3, work 0.3-1.3. r1 at 1.0: the VM is busy -> no wake; the VM's
    one vCPU runs both at 1/2 from 1.0: r0 has 0.3 left -> ends 1.6, when r1 has 0.3 done; r1
    then alone: 0.7 more -> 2.3. r2 at 5.0: idle -> 5.3, ends 6.3.
    """
    stations = [StationSpec("cpu", "shared", 1, {("vm",): GroupSpec(max_servers=1)}), StationSpec("w", "delay")]
    route = [Slot("w", "kvm", when_idle=IdleCondition("cpu", ("vm",))), Slot("cpu", "app", ("vm", "app"))]
    result, _ = _run(stations, route, TraceArrivals((0.0, 1.0, 5.0)), 0.3, 1.0)
    assert _finishes(result) == pytest.approx([1.6, 2.3, 6.3], abs=1e-9)


def test_a_lock_is_held_across_stages() -> None:
    """One token; acquire, 1 s at a delay (a blocking read), release. Two requests at 0: the
    second waits for the token: ends at 1 and 2. Without the lock both would end at 1."""
    stations = [StationSpec("L", "lock", 1), StationSpec("dev", "delay")]
    route = [Slot("L", "vmm", action="acquire"), Slot("dev", "vmm"), Slot("L", "vmm", action="release")]
    result, _ = _run(stations, route, TraceArrivals((0.0, 0.0)), 1.0, 1.0, 1.0)
    assert _finishes(result) == pytest.approx([1.0, 2.0], abs=1e-9)
    assert result.utilization["L"] == pytest.approx(2.0 / 100.0)


def test_groups_pinned_to_one_core_share_that_core() -> None:
    """Four cores. Containers a and b both pinned to core 0, one 1 s job each: 1/2 each, end at
    2. An unpinned job u runs on a free core at full speed: ends at 1. (Counting cores instead of
    binding them gave a and b a core each.)"""
    groups = {("a",): GroupSpec(cores=(0,)), ("b",): GroupSpec(cores=(0,))}
    cpu = StationSpec("cpu", "shared", 4, groups)
    sources = [Source(n, (Slot("cpu", "app", (n,)),), TraceArrivals((0.0,)), const_work(1.0)) for n in "abu"]
    result = simulate([cpu], sources, LONG)
    assert [float(result.logs[n].finish_s[0]) for n in "abu"] == pytest.approx([2.0, 2.0, 1.0], abs=1e-9)


def test_pinned_and_unpinned_work_split_the_cores() -> None:
    """Four cores; P pinned to {0, 1} with three 1 s jobs, U unpinned with four. P's domain has
    2 cores: 2/3 each, so they end at 1.5; U gets the other 2 cores: 1/2 each, 0.75 done by 1.5,
    then all 4 cores: the last 0.25 at full speed, ending at 1.75."""
    cpu = StationSpec("cpu", "shared", 4, {("P",): GroupSpec(cores=(0, 1))})
    p = Source("P", (Slot("cpu", "app", ("P",)),), TraceArrivals((0.0,) * 3), const_work(1.0))
    u = Source("U", (Slot("cpu", "app", ("U",)),), TraceArrivals((0.0,) * 4), const_work(1.0))
    result = simulate([cpu], [p, u], LONG)
    assert list(result.logs["P"].finish_s) == pytest.approx([1.5] * 3, abs=1e-9)
    assert list(result.logs["U"].finish_s) == pytest.approx([1.75] * 4, abs=1e-9)


def _both_engines(stations, sources):
    """Finish times per source on the DES, checked equal on the compiled kernel."""
    from virtsim.sim.kernel import simulate_kernel

    des, kernel = simulate(stations, sources, LONG), simulate_kernel(stations, sources, LONG)
    for name, log in des.logs.items():
        assert np.allclose(log.finish_s, kernel.logs[name].finish_s, rtol=0, atol=1e-9)
    return {name: list(log.finish_s) for name, log in des.logs.items()}


def _jobs(name: str, count: int) -> Source:
    """``count`` jobs of 1 s of one core, all at time 0, in group (``name``,)."""
    return Source(name, (Slot("cpu", "app", (name,)),), TraceArrivals((0.0,) * count), const_work(1.0))


def test_groups_whose_core_sets_chain_get_no_more_than_their_cores() -> None:
    """Review 26 #1. Four cores; x on {0,1}, y on {1,2}, z on {2,3} with a tenth of their weight;
    four 1 s jobs each. x and y may only use cores 0-2: 1.5 cores each (0.375 per job), and z
    keeps core 3: 1 core (0.25 per job). x and y end at 1 / 0.375 = 8/3 s, when z's jobs have
    2/3 done; then z has its two cores, 0.5 per job: the last 1/3 takes 2/3 s, ending at 10/3 s.
    (Water-filling the union of the chain's four cores gave x and y 3.81 cores, z 0.19.)"""
    groups = {("x",): GroupSpec(cores=(0, 1)), ("y",): GroupSpec(cores=(1, 2)),
              ("z",): GroupSpec(cores=(2, 3), weight=10)}
    finish = _both_engines([StationSpec("cpu", "shared", 4, groups)], [_jobs(n, 4) for n in "xyz"])
    assert finish["x"] == pytest.approx([8 / 3] * 4, abs=1e-9) and finish["y"] == pytest.approx([8 / 3] * 4, abs=1e-9)
    assert finish["z"] == pytest.approx([10 / 3] * 4, abs=1e-9)


def test_a_weight_counts_between_bound_and_free_groups() -> None:
    """Review 26 #3. 16 cores; x bound to cores 0-7 (weight 100, eight jobs), y free (weight
    1,500, sixteen jobs): 1 core against 15 (x's cores are y's too). y's jobs run at 15/16 and
    end at 16/15 s; x's have 16/15 / 8 done and then run a core each: they end at
    16/15 + (1 - 2/15) = 29/15 s. (Bound groups were served first: 8 cores each.)"""
    groups = {("x",): GroupSpec(cores=tuple(range(8))), ("y",): GroupSpec(weight=1500)}
    finish = _both_engines([StationSpec("cpu", "shared", 16, groups)], [_jobs("x", 8), _jobs("y", 16)])
    assert finish["y"] == pytest.approx([16 / 15] * 16, abs=1e-9)
    assert finish["x"] == pytest.approx([29 / 15] * 8, abs=1e-9)


def test_a_cpuset_of_every_core_is_no_restriction_under_smt() -> None:
    """Review 26 #2. Four cores of two threads (a sibling adds a quarter of a core): eight 1 s
    jobs get 4 + 0.25 x 4 = 5 cores, 0.625 each, and end at 1.6 s, bound to every core or not.
    (A cpuset's cores counted one hardware thread each: 4 cores, ending at 2 s.)"""
    for cores in (None, (0, 1, 2, 3)):
        cpu = StationSpec("cpu", "shared", 4, {("a",): GroupSpec(cores=cores)}, threads_per_server=2, smt_yield=0.25)
        assert _both_engines([cpu], [_jobs("a", 8)])["a"] == pytest.approx([1.6] * 8, abs=1e-9)


def test_a_core_the_cpu_does_not_have_is_refused_on_both_engines() -> None:
    """The kernel read core ids past the CPU's as no core at all; both engines refuse them."""
    from virtsim.sim.kernel import simulate_kernel

    cpu = StationSpec("cpu", "shared", 2, {("a",): GroupSpec(cores=(5,))})
    for engine in (simulate, simulate_kernel):
        with pytest.raises(ValueError, match=r"bound to core 5, but the station has cores 0\.\.1"):
            engine([cpu], [_jobs("a", 1)], LONG)


def test_affinity_shares_are_max_min_fair_and_feasible() -> None:
    """Random core sets, weights and caps: no set of groups gets more than its cores' union
    holds, none more than its cap, and every group short of its cap has a bottleneck: a full set
    in which no member has more per unit of weight than it (the max-min fair allocation)."""
    from itertools import combinations

    from virtsim.sim.affinity import affinity_shares

    rng = np.random.default_rng(7)
    for _ in range(60):
        n, cores = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        masks = rng.random((n, cores)) < 0.6
        masks[np.arange(n), rng.integers(0, cores, n)] = True  # every group has a core
        weights, caps = rng.choice([50.0, 100.0, 400.0], n), rng.choice([0.5, 1.0, 2.0, 8.0], n)
        x = affinity_shares(weights, caps, np.arange(n), masks, 1.0)
        assert np.all(x <= caps + 1e-9) and np.all(x >= 0)
        full = []
        for size in range(1, n + 1):
            for group in combinations(range(n), size):
                room = masks[list(group)].any(axis=0).sum()
                assert x[list(group)].sum() <= room + 1e-9
                if x[list(group)].sum() >= room - 1e-9:
                    full.append(set(group))
        level = x / weights
        for i in range(n):
            assert x[i] >= caps[i] - 1e-9 or any(i in g and level[i] >= max(level[j] for j in g) - 1e-9 for g in full)


def test_per_client_threads_and_labelled_utilization() -> None:
    """Two closed-loop clients, 1 s per request, on 4 cores, each request on its own client's
    one-thread group ('job', c): both run at once, 2 requests per second in all (20 done by
    10.5 s). With one shared thread they take turns (10 done). Each job thread is always busy."""
    groups = {("job", "0"): GroupSpec(threads=1, label="job0"), ("job", "1"): GroupSpec(threads=1, label="job1")}
    cpu = StationSpec("cpu", "shared", 4, groups)
    control = RunControl(duration_s=10.5)
    split = Source("q", (Slot("cpu", "app", ("job",), per_client=1),), ClosedArrivals(2), const_work(1.0))
    result = simulate([cpu], [split], control)
    assert np.sum(result.logs["q"].finish_s <= 10.5) == 20
    assert result.utilization["job0"] == pytest.approx(1.0) and result.utilization["job1"] == pytest.approx(1.0)
    one = StationSpec("cpu", "shared", 4, {("job",): GroupSpec(threads=1)})
    shared = Source("q", (Slot("cpu", "app", ("job",)),), ClosedArrivals(2), const_work(1.0))
    assert np.sum(simulate([one], [shared], control).logs["q"].finish_s <= 10.5) == 10


def _pass(route_work: tuple[float, ...], route: tuple[Slot, ...], *, x_busy: bool = False) -> dict[str, float]:
    """Two cores; event loop E (one thread). Request a at 0 takes ``route`` with ``route_work``;
    request b at 0.2 has 1 s on E. With ``x_busy``, group X has a 5 s job from 0 (so an idle
    condition on X does not hold). Finish times on both engines (checked equal)."""
    cpu = StationSpec("cpu", "shared", 2, {("E",): GroupSpec(threads=1)})
    sources = [Source("a", route, TraceArrivals((0.0,)), const_work(*route_work)),
               Source("b", (Slot("cpu", "app", ("E",)),), TraceArrivals((0.2,)), const_work(1.0))]
    if x_busy:
        sources.append(Source("x", (Slot("cpu", "app", ("X",)),), TraceArrivals((0.0,)), const_work(5.0)))
    done = _both_engines([cpu, StationSpec("d", "delay")], sources)
    return {"a": done["a"][0], "b": done["b"][0]}


E = Slot("cpu", "app", ("E",))


def test_a_request_s_consecutive_stages_on_one_thread_are_one_pass() -> None:
    """a: 1 s then 0.5 s on E (a packet's receive, then the bridge hook in the same softirq).
    b arrives at 0.2 and waits. a's thread runs on: a ends at 1.5, b runs 1.5-2.5. (As two turns
    in line, b would run 1-2 and a's second stage 2-2.5: a stage of any size, even a cycle, would
    wait behind every packet in line.)"""
    done = _pass((1.0, 0.5), (E, E))
    assert done["a"] == pytest.approx(1.5, abs=1e-9) and done["b"] == pytest.approx(2.5, abs=1e-9)


def test_a_zero_stage_between_keeps_the_pass_and_another_station_ends_it() -> None:
    """a: 1 s on E, nothing at the delay (skipped), 0.5 s on E: one pass, as above. With 0.3 s
    at the delay between them, a leaves E at 1 (b runs 1-2) and comes back at 1.3 behind b: 2-2.5."""
    route = (E, Slot("d", "app"), E)
    assert _pass((1.0, 0.0, 0.5), route) == pytest.approx({"a": 1.5, "b": 2.5}, abs=1e-9)
    assert _pass((1.0, 0.3, 0.5), route) == pytest.approx({"a": 2.5, "b": 2.0}, abs=1e-9)


def test_a_kept_thread_is_given_up_when_the_next_stage_does_not_run() -> None:
    """a: 1 s on E, then 0.5 s on E only if X is idle (an IPI only to a sleeping thread), then
    0.7 s at the delay. X is busy, so that stage is skipped and E goes to b at 1: b ends at 2,
    a at 1.7. If instead a third stage on E follows, the thread passes on to it: a 0.25 s stage
    after the skipped one runs 1-1.25, and b 1.25-2.25."""
    skipped = Slot("cpu", "app", ("E",), when_idle=IdleCondition("cpu", ("X",)))
    done = _pass((1.0, 0.5, 0.7), (E, skipped, Slot("d", "app")), x_busy=True)
    assert done["a"] == pytest.approx(1.7, abs=1e-9) and done["b"] == pytest.approx(2.0, abs=1e-9)
    done = _pass((1.0, 0.5, 0.25), (E, skipped, E), x_busy=True)
    assert done["a"] == pytest.approx(1.25, abs=1e-9) and done["b"] == pytest.approx(2.25, abs=1e-9)


def test_a_pass_runs_on_when_its_condition_holds() -> None:
    """As above with X idle: a runs 0-1, 1-1.5 on E and the delay to 2.2; b runs 1.5-2.5."""
    cond = Slot("cpu", "app", ("E",), when_idle=IdleCondition("cpu", ("X",)))
    done = _pass((1.0, 0.5, 0.7), (E, cond, Slot("d", "app")))
    assert done["a"] == pytest.approx(2.2, abs=1e-9) and done["b"] == pytest.approx(2.5, abs=1e-9)


def test_threads_on_the_stations_own_jobs_are_refused() -> None:
    """Group () is the station's own jobs; the DES served it as a pool and the kernel ignored it
    (review 40 F4): a pool of threads needs a group of its own."""
    with pytest.raises(ValueError, match="cannot be a pool of threads"):
        StationSpec("cpu", "shared", 1, {(): GroupSpec(threads=1)})


REPS = 20


def _interval(values: np.ndarray, expected: float, max_half_width: float) -> None:
    _mean, low, high = t_interval(values, 0.99)
    assert low <= expected <= high, f"expected {expected:.5g} outside 99% CI [{low:.5g}, {high:.5g}]"
    assert (high - low) / 2 <= max_half_width * expected, f"CI half-width {(high - low) / 2:.3g} too wide"


def _exp_or_const(kind: str, mean: float):
    def factory(seed):
        rng = np.random.default_rng(seed)
        if kind == "exp":
            return lambda n: rng.exponential(mean, (n, 1))
        if kind == "h2":  # hyperexponential: CV^2 = 3 with balanced means
            def draw(n):
                fast = rng.random(n) < 0.8535533905932737
                means = np.where(fast, mean / (2 * 0.8535533905932737), mean / (2 * (1 - 0.8535533905932737)))
                return rng.exponential(means)[:, None]
            return draw
        return lambda n: np.full((n, 1), mean)

    return factory


@pytest.mark.parametrize(("kind", "scv"), [("const", 0.0), ("exp", 1.0), ("h2", 3.0)])
def test_an_event_loop_is_an_mg1_fifo_queue(kind: str, scv: float) -> None:
    """An event loop (one thread) on an 8-core CPU with nothing else: Pollaczek-Khinchine,
    Wq = lambda E[S^2] / (2 (1 - rho)) with E[S^2] = (1 + scv) S^2, whatever the discipline of
    the cores below it."""
    lam, service = 0.6, 1.0
    rho = lam * service
    wq = lam * (1 + scv) * service**2 / (2 * (1 - rho))
    control = RunControl(duration_s=4000, warmup_s=400, seed=21)
    cpu = StationSpec("cpu", "shared", 8, {("redis",): GroupSpec(threads=1)})
    src = Source("q", (Slot("cpu", "app", ("redis",)),), OpenArrivals(lam), _exp_or_const(kind, service))
    waits = []
    for r in range(REPS):
        log = simulate([cpu], [src], control, r).logs["q"]
        keep = (log.arrival_s >= control.warmup_s) & ~np.isnan(log.finish_s)
        waits.append(float(np.mean(log.finish_s[keep] - log.arrival_s[keep])) - service)
    _interval(np.array(waits), wq, max_half_width=0.15)


def exact_mva(demands: list[float], servers: list[float], think_s: float, clients: int) -> float:
    """Throughput of a closed product-form network by exact MVA with load-dependent stations.

    Station k serves at min(j, servers[k]) times its single-server rate with j jobs present
    (one server: a FIFO or processor-sharing queue; several: a multi-core processor-sharing CPU;
    ``inf``: a delay). The think time is a delay. Marginal queue-length probabilities carry the
    load dependence (Reiser and Lavenberg 1980).
    """
    p = [np.zeros(clients + 1) for _ in demands]
    for k in range(len(demands)):
        p[k][0] = 1.0
    x = 0.0
    for n in range(1, clients + 1):
        residence = []
        for d, c, pk in zip(demands, servers, p, strict=True):
            if math.isinf(c):
                residence.append(d)
            else:
                residence.append(sum(j / min(j, c) * d * pk[j - 1] for j in range(1, n + 1)))
        x = n / (think_s + sum(residence))
        for k, (d, c) in enumerate(zip(demands, servers, strict=True)):
            if math.isinf(c):
                continue
            new = np.zeros(clients + 1)
            for j in range(1, n + 1):
                new[j] = x * d / min(j, c) * p[k][j - 1]
            new[0] = 1.0 - new[1 : n + 1].sum()
            p[k] = new
    return x


@pytest.mark.slow
@pytest.mark.parametrize("clients", [1, 4, 16, 64])
def test_a_closed_network_matches_exact_mva(clients: int) -> None:
    """N clients loop through a 2-core processor-sharing CPU (0.02 s), a FIFO disk (exp 0.015 s),
    a FIFO NIC (exp 0.005 s) and a wire delay (0.01 s), thinking 0.1 s: throughput from exact MVA,
    from light load (N = 1) past saturation of the disk (N = 64)."""
    demands, servers = [0.02, 0.015, 0.005, 0.01], [2.0, 1.0, 1.0, math.inf]
    think = 0.1
    expected = exact_mva(demands, servers, think, clients)

    def factory(seed):
        rng = np.random.default_rng(seed)
        return lambda n: rng.exponential(demands, (n, len(demands)))

    stations = [StationSpec("cpu", "shared", 2), StationSpec("disk", "fifo", 1), StationSpec("nic", "fifo", 1),
                StationSpec("wire", "delay")]
    route = tuple(Slot(s.name, "app") for s in stations)
    src = Source("q", route, ClosedArrivals(clients, think), factory)
    # 200 s runs: the half-width is 2.4% of the throughput at 1 client, 0.6% at 16 and 64
    control = RunControl(duration_s=200, warmup_s=20, seed=22)
    rates = []
    for r in range(10):
        log = simulate(stations, [src], control, r).logs["q"]
        done = (log.finish_s >= control.warmup_s) & ~np.isnan(log.finish_s)
        rates.append(done.sum() / control.window_s)
    _mean, low, high = t_interval(np.array(rates), 0.99)
    assert low <= expected <= high, f"MVA {expected:.4g} outside [{low:.4g}, {high:.4g}]"
    assert (high - low) / 2 <= 0.03 * expected


@pytest.mark.parametrize(("jobs", "finish"), [(2, 1.0), (3, 1 / 0.75), (4, 1.6), (6, 6 / 2.5)])
def test_sibling_hyperthreads_slow_each_other(jobs: int, finish: float) -> None:
    """2 cores of 2 threads, a sibling adding 1/4 of a core: n one-second jobs at 0 share
    min(n, 2) + 0.25 min(n - 2, 2) cores. 2 jobs: 1 s. 3: 2.25 cores, 0.75 each, 1.33 s.
    4: 2.5 cores, 0.625 each, 1.6 s. 6: still 2.5 cores (4 threads), 2.4 s."""
    cpu = StationSpec("cpu", "shared", 2, threads_per_server=2, smt_yield=0.25)
    result, _ = _run([cpu], [Slot("cpu", "app")], TraceArrivals((0.0,) * jobs), 1.0)
    assert _finishes(result) == pytest.approx([finish] * jobs, abs=1e-9)
