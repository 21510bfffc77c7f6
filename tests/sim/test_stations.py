"""Stations on small cases computed by hand, asserted to the float.

Each test states its timeline in the docstring, derived by hand from the discipline's rules.
"""

from __future__ import annotations

import math

import pytest
import simpy

from virtsim.sim.stations import FifoStation, GroupSpec, SharedStation, water_fill

from .helpers import finish_times


def test_fifo_serves_in_order_of_arrival() -> None:
    """One server, jobs (arrive, work) = (0, 1), (0.5, 1), (0.6, 0.2): finishes 1, 2, 2.2."""
    env = simpy.Environment()
    assert finish_times(env, FifoStation(env, "s"), [(0, 1, ()), (0.5, 1, ()), (0.6, 0.2, ())]) == pytest.approx(
        [1.0, 2.0, 2.2], abs=1e-12
    )


def test_fifo_two_servers() -> None:
    """Two servers, three jobs of work 1 at 0: two finish at 1, the third waits and finishes at 2."""
    env = simpy.Environment()
    assert finish_times(env, FifoStation(env, "s", 2), [(0, 1, ())] * 3) == pytest.approx([1, 1, 2], abs=1e-12)


def test_two_jobs_share_a_core_under_weights_two_to_one() -> None:
    """Groups A (weight 200) and B (weight 100), 2 s of work each, both at t = 0, one core.

    A runs at 2/3 and finishes at 2 / (2/3) = 3 s; B has had 1 s by then, runs alone at rate 1
    and finishes at 4 s.
    """
    env = simpy.Environment()
    cpu = SharedStation(env, "cpu", 1, {("A",): GroupSpec(weight=200), ("B",): GroupSpec(weight=100)})
    assert finish_times(env, cpu, [(0, 2, ("A",)), (0, 2, ("B",))]) == pytest.approx([3.0, 4.0], abs=1e-9)


def test_quota_of_50ms_per_100ms_throttles_a_cpu_bound_job() -> None:
    """cpu.max = 50 ms / 100 ms, 200 ms of work on an idle core.

    It runs 0-50 ms, is throttled until 100 ms, runs 100-150, 200-250, 300-350: done at 350 ms.
    """
    env = simpy.Environment()
    cpu = SharedStation(env, "cpu", 4, {("c",): GroupSpec(quota_s=0.05, period_s=0.1)})
    assert finish_times(env, cpu, [(0, 0.2, ("c",))]) == pytest.approx([0.35], abs=1e-9)


def test_quota_spans_cores_and_throttles_parallel_jobs_sooner() -> None:
    """cpu.max = 100 ms / 100 ms, two jobs of 100 ms on two cores: each runs at 1 core.

    Together they use the 100 ms quota by 50 ms, wait to 100 ms, and finish at 150 ms.
    """
    env = simpy.Environment()
    cpu = SharedStation(env, "cpu", 2, {("c",): GroupSpec(quota_s=0.1, period_s=0.1)})
    assert finish_times(env, cpu, [(0, 0.1, ("c",)), (0, 0.1, ("c",))]) == pytest.approx([0.15, 0.15], abs=1e-9)


def test_a_throttled_group_leaves_the_core_to_others() -> None:
    """One core. Group Q (cpu.max 20/100 ms) and an unlimited group U, 0.1 s of work each at 0.

    0-40 ms: both at 1/2; Q has used its 20 ms and is throttled; U has 80 ms left and runs alone
    until Q's quota returns at 100 ms (U: 20 ms left). 100-140 ms: both at 1/2, so U finishes at
    140 ms and Q has used exactly 20 ms again: throttled with 60 ms left. Q then runs 200-220,
    300-320 and 400-420 ms: done at 420 ms.
    """
    env = simpy.Environment()
    cpu = SharedStation(env, "cpu", 1, {("Q",): GroupSpec(quota_s=0.02, period_s=0.1)})
    assert finish_times(env, cpu, [(0, 0.1, ("Q",)), (0, 0.1, ("U",))]) == pytest.approx([0.42, 0.14], abs=1e-9)


def test_vcpu_cap_limits_a_group_to_its_cores() -> None:
    """A VM with 2 vCPUs (max_servers 2) on 4 idle cores, 4 jobs of 1 s: each gets 1/2, done at 2 s."""
    env = simpy.Environment()
    cpu = SharedStation(env, "cpu", 4, {("vm",): GroupSpec(max_servers=2)})
    assert finish_times(env, cpu, [(0, 1, ("vm",))] * 4) == pytest.approx([2.0] * 4, abs=1e-9)


def test_nested_groups_split_the_parent_share() -> None:
    """One core; VM (weight 100) holding containers a (weight 300) and b (weight 100), and a host
    process p at the root (weight 100). VM and p get 1/2 each; inside the VM a gets 3/8, b 1/8.

    Work: a 0.375, b 1, p 1. At 1 s a is done (b has 0.125, p 0.5). Then VM and p at 1/2: b has
    0.875 left -> 1.75 s more. p has 0.5 left -> done at 2 s; then b alone: at 2 s b has
    0.875 - 0.5 = 0.375 left, done at 2.375 s.
    """
    env = simpy.Environment()
    groups = {("vm",): GroupSpec(100), ("vm", "a"): GroupSpec(300), ("vm", "b"): GroupSpec(100)}
    cpu = SharedStation(env, "cpu", 1, groups)
    result = finish_times(env, cpu, [(0, 0.375, ("vm", "a")), (0, 1, ("vm", "b")), (0, 1, ("p",))])
    assert result == pytest.approx([1.0, 2.375, 2.0], abs=1e-9)


def test_background_jobs_take_their_share_forever() -> None:
    """One core, one host background job: a 1 s job gets 1/2 and finishes at 2 s."""
    env = simpy.Environment()
    cpu = SharedStation(env, "cpu", 1, background={("host",): 1})
    done = []

    def job():
        yield cpu.submit(1.0, ("g",))
        done.append(env.now)

    env.process(job())
    env.run(until=10)
    assert done == pytest.approx([2.0], abs=1e-9)


def test_water_fill_gives_unused_capacity_to_the_uncapped() -> None:
    # 4 servers, equal weights, one capped at 0.5: it gets 0.5, the other two share 3.5 (cap 2 each).
    assert water_fill(4, [1, 1, 1], [0.5, 2, 2]) == pytest.approx([0.5, 1.75, 1.75])
    # weights 3:1 on one server, no caps binding
    assert water_fill(1, [3, 1], [1, 1]) == pytest.approx([0.75, 0.25])


def test_long_runs_do_not_stall_on_clock_resolution() -> None:
    """Late in a long run, residues below the clock's resolution still complete (regression)."""
    env = simpy.Environment(initial_time=5e4)
    cpu = SharedStation(env, "cpu", 1)
    finish = finish_times(env, cpu, [(0, 0.3, ()), (0.1, 0.7, ()), (0.2, 0.1 + 1e-13, ())])
    assert all(math.isfinite(t) for t in finish)
    assert max(finish) == pytest.approx(5e4 + 1.1, abs=1e-6)


def test_bad_station_arguments_are_rejected() -> None:
    env = simpy.Environment()
    with pytest.raises(ValueError, match="servers"):
        FifoStation(env, "s", 0)
    with pytest.raises(ValueError, match="capacity"):
        SharedStation(env, "cpu", 0)
    with pytest.raises(ValueError, match="weight"):
        GroupSpec(weight=0)
