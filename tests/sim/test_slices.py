"""Time slices: the host's cores go to threads in turns (CFS, Xen credit), not in fluid shares.

Hand-computed timelines on one core first (round robin, wake-up preemption, a request to a busy
descheduled vCPU), then what slices must keep from processor sharing (weighted shares, caps,
work conservation: M/M/1's mean response time with a confidence interval), then the compiled
kernel against the DES (also in the generated networks of test_kernel.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel
from virtsim.sim.routes import ClosedArrivals, OpenArrivals, Slot, Source, StationSpec, TraceArrivals
from virtsim.sim.slices import Slicer, SliceSpec, cfs_slices, credit_slices
from virtsim.sim.stations import GroupPath, GroupSpec, SharedStation
from virtsim.sim.stats import t_interval

from .helpers import const_work, exp_work, finish_times

ROUND_ROBIN = SliceSpec(latency_s=0.01, min_slice_s=0.01, wakeup_s=None, sleeper_credit_s=0.0)
CFS_1CPU = cfs_slices(1)  # 6 ms latency, 0.75 ms slices at least, 1 ms wake-up granularity


def _finish(jobs: list[tuple[float, GroupPath, float]], slices: SliceSpec | None, cores: float = 1.0,
            groups: dict[GroupPath, GroupSpec] | None = None) -> list[float]:
    """When each job (submitted at t to a group, with its work in seconds) is done."""
    env = simpy.Environment()
    station = SharedStation(env, "cpu", cores, groups or {}, slices=slices)
    return finish_times(env, station, [(t, work, group) for t, group, work in jobs])


def test_cfs_defaults_scale_with_the_cpus_as_the_kernel_does() -> None:
    """kernel/sched/fair.c: 6 ms, 0.75 ms and 1 ms times 1 + log2(cpus), cpus capped at 8."""
    assert (cfs_slices(1).latency_s, cfs_slices(1).min_slice_s, cfs_slices(1).wakeup_s) == \
        pytest.approx((0.006, 0.00075, 0.001))
    assert cfs_slices(8).latency_s == pytest.approx(0.024) and cfs_slices(64) == cfs_slices(8)
    assert cfs_slices(4).wakeup_s == pytest.approx(0.003)
    assert credit_slices().min_slice_s == pytest.approx(0.030)


def test_two_busy_threads_take_turns_of_a_slice_each() -> None:
    """Round robin with 10 ms slices: jobs of 25 ms in two groups, both at time 0. a runs 0-10,
    b 10-20, a 20-30, b 30-40, a 40-45 (done), b 45-50 (done). Processor sharing ends both at 50."""
    jobs = [(0.0, ("a",), 0.025), (0.0, ("b",), 0.025)]
    assert _finish(jobs, ROUND_ROBIN) == pytest.approx([0.045, 0.050])
    assert _finish(jobs, None) == pytest.approx([0.050, 0.050])


def test_a_woken_thread_preempts_a_busy_one_and_runs_at_full_speed() -> None:
    """A 1 ms request to an idle guest at 0.5 s while another guest computes: CFS places the
    woken thread half a latency (3 ms) behind, more than the 1 ms granularity, so it takes the
    core: done at 0.501 (processor sharing: 0.502). The busy one ends 1 ms later either way."""
    jobs = [(0.0, ("busy",), 1.0), (0.5, ("idle",), 0.001)]
    assert _finish(jobs, CFS_1CPU) == pytest.approx([1.001, 0.501])
    assert _finish(jobs, None) == pytest.approx([1.001, 0.502])


def test_credit_preempts_a_vcpu_only_once_it_has_run_its_rate_limit() -> None:
    """Xen credit, one core: a guest computes 1 s from 0; another's 1 ms request arrives at 0.5 s
    and is BOOSTed: the busy vCPU's slice began at 0.48 (slices of 30 ms from 0), it has run
    20 ms, more than the 1 ms rate limit, so the request runs at once: done at 0.501. A second
    request at 0.5015, when the busy vCPU got its core back 0.5 ms ago, waits for the rest of
    its 1 ms: it runs from 0.502 and is done at 0.503."""
    credit = credit_slices()
    assert credit.min_run_s == pytest.approx(0.001)
    jobs = [(0.0, ("busy",), 1.0), (0.5, ("idle",), 0.001)]
    assert _finish(jobs, credit) == pytest.approx([1.001, 0.501])
    jobs = [(0.0, ("busy",), 1.0), (0.5, ("idle",), 0.001), (0.5015, ("other",), 0.001)]
    assert _finish(jobs, credit) == pytest.approx([1.002, 0.501, 0.503])


def test_without_wake_up_preemption_a_request_queues_behind_the_turns_due_before_it() -> None:
    """Round robin, 10 ms turns, no wake-up preemption, no sleeper credit. Two busy guests (the
    second from 0.3 s) alternate turns: busy 0.50-0.51, busy2 0.51-0.52. A 1 ms request at
    0.505 is placed level with the least runnable virtual runtime (busy2's), behind it in turn
    order: it runs 0.52-0.521. Processor sharing: a third of the core, 3 ms."""
    jobs = [(0.0, ("busy",), 2.0), (0.3, ("busy2",), 2.0), (0.505, ("idle",), 0.001)]
    assert _finish(jobs, ROUND_ROBIN)[2] == pytest.approx(0.521)
    assert _finish(jobs, None)[2] == pytest.approx(0.505 + 0.003)


def test_a_request_to_a_busy_vcpu_waits_while_the_vcpu_is_descheduled() -> None:
    """Two 1-vCPU guests busy on one core, round robin of 10 ms turns: a runs 0-0.01, b
    0.01-0.02, ... so b runs 1.01-1.02. A 1 ms request reaching guest a at 1.011 waits for a's
    turn, then shares a's vCPU with the long job (half of it): done at 1.022. Processor sharing
    gives a half the core and the request half of that: 4 ms, done at 1.015."""
    vcpu = GroupSpec(max_servers=1)
    groups = {("a",): vcpu, ("b",): vcpu}
    jobs = [(0.0, ("a",), 5.0), (0.0, ("b",), 5.0), (1.011, ("a",), 0.001)]
    assert _finish(jobs, ROUND_ROBIN, groups=groups)[2] == pytest.approx(1.022, abs=1e-9)
    assert _finish(jobs, None, groups=groups)[2] == pytest.approx(1.015)


def test_weights_and_caps_give_the_shares_processor_sharing_gives() -> None:
    """Over many slices, two busy groups of weights 200 and 100 on one core split it 2:1; a
    2-vCPU guest with four jobs and a 1-vCPU guest with one, of equal weight, on two cores, get a
    core each (the 2-vCPU guest's threads weigh half each): the work each has done by 3 s."""
    jobs = [(0.0, ("heavy",), 10.0), (0.0, ("light",), 10.0)]
    env = simpy.Environment()
    groups = {("heavy",): GroupSpec(weight=200.0), ("light",): GroupSpec(weight=100.0)}
    station = SharedStation(env, "cpu", 1.0, groups, slices=CFS_1CPU)
    for _, group, work in jobs:
        station.submit(work, group)
    env.run(until=3.0)
    station.settle()
    assert station.group_work_s(("heavy",)) == pytest.approx(2.0, rel=0.01)
    assert station.group_work_s(("light",)) == pytest.approx(1.0, rel=0.02)

    env = simpy.Environment()
    groups = {("big",): GroupSpec(max_servers=2), ("small",): GroupSpec(max_servers=1)}
    station = SharedStation(env, "cpu", 2.0, groups, slices=cfs_slices(2))
    for _ in range(4):
        station.submit(10.0, ("big",))
    station.submit(10.0, ("small",))
    env.run(until=3.0)
    station.settle()
    assert station.group_work_s(("big",)) == pytest.approx(3.0, rel=0.02)
    assert station.group_work_s(("small",)) == pytest.approx(3.0, rel=0.02)


def test_slices_waste_no_core_time_so_mm1_keeps_its_mean_response_time() -> None:
    """Two guests' Poisson requests of exponential work on one core, CFS slices: the core works
    whenever a request waits and no scheduler here looks at the work left, so the number in the
    system is M/M/1's and the mean response time S / (1 - rho): 2.5 ms at rho 0.6, S = 1 ms,
    inside the 99% interval of 20 replications (the interval within 6% of it)."""
    cpu = StationSpec("cpu", "shared", 1.0, {("a",): GroupSpec(), ("b",): GroupSpec()}, slices=CFS_1CPU)
    sources = [Source(g, (Slot("cpu", "app", (g,)),), OpenArrivals(300.0), exp_work(1e-3)) for g in "ab"]
    control = RunControl(duration_s=40.0, warmup_s=4.0, seed=11)
    means = []
    for replication in range(20):
        result = simulate_kernel([cpu], sources, control, replication)  # the DES's numbers (below), faster
        times = []
        for g in "ab":
            log = result.logs[g]
            done = (log.arrival_s >= control.warmup_s) & ~np.isnan(log.finish_s)
            times.append((log.finish_s - log.arrival_s)[done])
        means.append(float(np.mean(np.concatenate(times))))
    _, low, high = t_interval(np.array(means), 0.99)
    expected = 1e-3 / (1 - 0.6)
    assert low <= expected <= high, (low, expected, high)
    assert (high - low) / 2 <= 0.06 * expected


@pytest.mark.parametrize("slices", [ROUND_ROBIN, CFS_1CPU, credit_slices()], ids=["round-robin", "cfs", "credit"])
def test_the_compiled_kernel_gives_the_same_timelines_request_by_request(slices) -> None:
    """The hand cases' jobs as traces on both engines (a busy guest, two 1-vCPU guests, a
    request at a given instant), and Poisson traffic of three groups of different weights and
    caps: every finish time agrees."""
    vcpu = GroupSpec(max_servers=1)
    cpu = StationSpec("cpu", "shared", 1.0, {("a",): vcpu, ("b",): vcpu, ("c",): GroupSpec(weight=300.0)},
                      slices=slices)
    sources = [Source("a", (Slot("cpu", "app", ("a",)),), TraceArrivals((0.0, 1.011, 1.5)), const_work(0.4)),
               Source("b", (Slot("cpu", "app", ("b",)),), TraceArrivals((0.0, 0.3)), const_work(0.9)),
               Source("c", (Slot("cpu", "app", ("c",)),), OpenArrivals(200.0), exp_work(1e-3))]
    control = RunControl(duration_s=3.0, seed=5)
    des, kernel = simulate([cpu], sources, control), simulate_kernel([cpu], sources, control)
    for name in "abc":
        n = des.logs[name].n
        assert kernel.logs[name].n == n
        np.testing.assert_array_equal(des.logs[name].finish_s[:n], kernel.logs[name].finish_s[:n])


def test_a_bound_groups_threads_take_turns_on_its_own_cores_only() -> None:
    """Two groups bound to core 0 of two cores, round robin: they take turns on core 0 (25 ms
    jobs end at 45 and 50 ms) while core 1 stays free for an unbound job, which runs at once."""
    groups = {("a",): GroupSpec(cores=(0,)), ("b",): GroupSpec(cores=(0,))}
    jobs = [(0.0, ("a",), 0.025), (0.0, ("b",), 0.025), (0.0, ("free",), 0.005)]
    assert _finish(jobs, ROUND_ROBIN, cores=2.0, groups=groups) == pytest.approx([0.045, 0.050, 0.005])


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_busy_smt_siblings_share_their_core_and_its_yield(engine) -> None:
    """Two CPU-bound jobs of 1 s in a group bound to core 0 of 2 cores x 2 threads (a second
    thread adds a quarter of a core): both run, on core 0's two threads, 0.625 of a core each,
    so both end at 1.6 s; core 1 stays idle. (Slices count a core's yield per core; a job alone
    on a core gets all of it.)"""
    cpu = StationSpec("cpu", "shared", 2.0, {("a",): GroupSpec(cores=(0,))}, threads_per_server=2,
                      smt_yield=0.25, slices=cfs_slices(4))
    source = Source("a", (Slot("cpu", "app", ("a",)),), TraceArrivals((0.0, 0.0)), const_work(1.0))
    log = engine([cpu], [source], RunControl(duration_s=3.0)).logs["a"]
    assert log.finish_s[:2] == pytest.approx([1.6, 1.6])


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_a_closed_loops_next_request_does_not_give_its_core_away(engine) -> None:
    """Review 36 F1: two groups of equal weight on one core, closed loops with no think time
    (2 clients of 0.1 ms, 1 of 1 ms). A request ends and the next begins at one instant: the
    thread never left the core, so it keeps its slot and slice. Each group gets half the core,
    as processor sharing gives it (the 1 ms group had 0.25% of it: each of its requests handed
    the core over for a fresh slice, and it waited a whole one for it back)."""
    cpu = StationSpec("cpu", "shared", 1.0, {("chatty",): GroupSpec(), ("batch",): GroupSpec()},
                      slices=CFS_1CPU)
    sources = [Source("chatty", (Slot("cpu", "app", ("chatty",)),), ClosedArrivals(2), exp_work(1e-4)),
               Source("batch", (Slot("cpu", "app", ("batch",)),), ClosedArrivals(1), exp_work(1e-3))]
    result = engine([cpu], sources, RunControl(duration_s=10.0, seed=1))
    done = {g: int(np.sum(~np.isnan(result.logs[g].finish_s[:result.logs[g].n]))) for g in ("chatty", "batch")}
    # the core each got: requests done times their mean work (about 50,000 and 5,000 of them)
    assert done["chatty"] * 1e-4 / 10.0 == pytest.approx(0.5, abs=0.03)
    assert done["batch"] * 1e-3 / 10.0 == pytest.approx(0.5, abs=0.03)


def test_a_woken_thread_preempts_on_the_core_it_last_ran_on() -> None:
    """CFS on 2 cores. X runs from 0 on core 0; W runs on core 1 from 0 to 1 ms and sleeps, so
    core 1 is its last; Y runs on core 1 from 2 ms. W wakes at 0.5 s: Linux enqueues it on its
    previous CPU and checks preemption against that CPU's task, so it preempts Y there (placed
    6 ms behind, more than the 2 ms granularity), though X is further ahead (X 0.494 s of
    virtual runtime, Y 0.492). Preempting the furthest ahead anywhere took X's core. (The
    compiled kernel's copy is checked against this one on generated networks.)"""
    slicer = Slicer(cfs_slices(2), slots=2, cores=2, bound={})
    slicer.demand(0.0, {"x": (1, 100.0)})
    slicer.demand(0.0, {"x": (1, 100.0), "w": (1, 100.0)})
    assert slicer.occupant == ["x", "w"]
    slicer.advance(0.001)
    slicer.demand(0.001, {"x": (1, 100.0)})
    slicer.advance(0.001)
    slicer.demand(0.002, {"x": (1, 100.0), "y": (1, 100.0)})
    assert slicer.occupant == ["x", "y"]
    slicer.advance(0.498)
    slicer.demand(0.5, {"x": (1, 100.0), "y": (1, 100.0), "w": (1, 100.0)})
    assert slicer.vruntime["x"] > slicer.vruntime["y"]
    assert slicer.occupant == ["x", "w"]


def test_a_thread_preempted_by_a_bound_one_moves_to_an_idle_core() -> None:
    """Review 36 F3, by hand: 2 cores. B (free) runs 1 s of work from 0 on core 0; A, bound to
    core 0, wakes at 0.5 s with 1 s of work and preempts it; B moves to the idle core 1 at once
    (Linux's idle balance): B ends at 1.0, A at 1.5."""
    groups = {("a",): GroupSpec(cores=(0,)), ("b",): GroupSpec()}
    assert _finish([(0.0, ("b",), 1.0), (0.5, ("a",), 1.0)], cfs_slices(2), cores=2.0, groups=groups) == \
        pytest.approx([1.0, 1.5])


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_a_group_bound_to_other_cores_does_not_push_a_cores_sleepers_back(engine) -> None:
    """Review 37 F1: 3 cores. ``batch`` (2 CPU-bound threads) runs on cores 0 and 2 only; core 1
    is shared by ``busy`` (CPU-bound) and ``interactive`` (1 ms of work, then about 10 ms asleep).
    CFS keeps a min_vruntime per core: ``interactive`` wakes half a latency behind ``busy``,
    preempts it and runs its 1 ms at once, every time: 1 ms per request, as without ``batch``.
    (With one min_vruntime for the host, ``batch``'s runtime, growing twice as fast on its two
    cores, placed every wake-up far ahead: 0.44 requests/s, a p50 of 1.7 s.)"""
    groups = {("batch",): GroupSpec(cores=(0, 2)), ("busy",): GroupSpec(cores=(1,)),
              ("interactive",): GroupSpec(cores=(1,))}
    cpu = StationSpec("cpu", "shared", 3.0, groups, slices=cfs_slices(3))

    def loop(name: str, clients: int, think: float, work: float) -> Source:
        return Source(name, (Slot("cpu", "app", (name,)),), ClosedArrivals(clients, think), const_work(work))

    sources = [loop("batch", 2, 0.0, 0.01), loop("busy", 1, 0.0, 0.01), loop("interactive", 1, 0.01, 0.001)]
    log = engine([cpu], sources, RunControl(duration_s=5.0, seed=3)).logs["interactive"]
    done = ~np.isnan(log.finish_s[:log.n])
    assert np.sum(done) > 0.9 * 5.0 / 0.011  # about one request per 11 ms
    assert np.allclose((log.finish_s[:log.n] - log.arrival_s[:log.n])[done], 0.001, atol=1e-9)


@pytest.mark.parametrize("engine", [simulate, simulate_kernel])
def test_no_two_threads_share_a_core_while_a_core_they_may_use_is_idle(engine) -> None:
    """Review 37 F2, by hand: 4 cores x 2 threads (a second thread adds a quarter of a core).
    ``a`` (free) starts 1 s of work at 0 on core 0; ``vm``, bound to core 0, starts 1 s at 0.1 s
    and takes core 0's second thread; ``a`` moves to an idle core at once (Linux's idle
    balance), so each has a core of its own: ``a`` ends at 1.0 s, ``vm`` at 1.1 s (sharing core
    0 at 0.625 each, they ended at 1.54 and 1.64)."""
    groups = {("a",): GroupSpec(), ("vm",): GroupSpec(cores=(0,))}
    cpu = StationSpec("cpu", "shared", 4.0, groups, threads_per_server=2, smt_yield=0.25, slices=cfs_slices(8))
    sources = [Source("a", (Slot("cpu", "app", ("a",)),), TraceArrivals((0.0,)), const_work(1.0)),
               Source("vm", (Slot("cpu", "app", ("vm",)),), TraceArrivals((0.1,)), const_work(1.0))]
    result = engine([cpu], sources, RunControl(duration_s=3.0))
    assert [result.logs[g].finish_s[0] for g in ("a", "vm")] == pytest.approx([1.0, 1.1])



def test_a_group_giving_up_a_core_gives_up_the_one_a_bound_group_waits_for() -> None:
    """Review 39 F2, step by step on the slicer (2 cores): ``free`` runs two threads on both
    cores while ``pinned``, bound to core 0, waits. One of ``free``'s threads blocks: it gives
    up core 0, which ``pinned`` may use, and keeps core 1. It gave up its highest slot, core 1,
    which ``pinned`` may not use: core 1 idled while ``pinned`` waited (in the reviewer's mix,
    392 of 13,016 scheduling events in 1 s left a core so)."""
    from virtsim.sim.slices import Slicer

    slicer = Slicer(cfs_slices(2), 2, 2, {"pinned": (0,)})
    slicer.demand(0.0, {"free": (2, 100.0)})
    assert slicer.occupant == ["free", "free"]
    slicer.demand(0.001, {"free": (2, 100.0), "pinned": (1, 100.0)})  # woken: it may preempt, or wait
    slicer.demand(0.002, {"free": (1, 100.0), "pinned": (1, 100.0)})
    assert slicer.occupant == ["pinned", "free"]
