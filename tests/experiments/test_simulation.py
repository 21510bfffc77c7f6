"""A scenario run step by step: the same as one run when nothing changes, and a controller that
raises a container's cpu.max mid-run gets the latency it asked for, on both engines alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import virtsim
from virtsim.experiments.runner import run_variant
from virtsim.experiments.scenario import default_scenario, load_scenario

QUOTA = default_scenario().parent / "cgroup-quota.toml"
CAPPED = "docker{cpu_max=30ms/100ms}"  # 0.3 of a core for 0.42 of demand: the backlog grows


def _short(path, duration: str = "6s"):
    data = load_scenario(path).model_dump(by_alias=True, mode="json")
    data["run"].update(duration=duration, warmup="0.5s", replications=1)
    if "compare" in data:
        data["compare"]["stacks"] = [["docker"], [{"profile": "docker", "cpu_max": "30ms/100ms"}]]
    return virtsim.scenario(data)


@pytest.mark.parametrize("engine", ["kernel", "des"])
def test_a_run_in_steps_with_no_change_equals_one_run(engine) -> None:
    scenario = _short(default_scenario(), "1s")
    label, stack = scenario.variants()[1]
    sim = virtsim.Simulation(scenario, stack=label, engine=engine)
    for until in np.linspace(0.1, 1.0, 10):
        sim.step(until)
    assert sim.now_s == pytest.approx(1.0)
    stepped = sim.runs()
    whole = pd.DataFrame(run_variant(scenario, label, stack, 0)[0])
    pd.testing.assert_frame_equal(stepped, whole)


def _controlled(engine: str) -> tuple[pd.DataFrame, list[float]]:
    """Every 0.5 s, raise api's cpu.max to a whole core once its p99 over the last 0.5 s passes 20 ms."""
    sim = virtsim.Simulation(_short(QUOTA), stack=CAPPED, engine=engine)
    raised_at: list[float] = []
    while sim.now_s < sim.duration_s:
        sim.step(by_s=0.5)
        seen = sim.observe(since_s=sim.now_s - 0.5)
        if not raised_at and seen.loc["api", "latency_p99_s"] > 0.020:
            sim.set_cpu_max("api", 0.100, 0.100)
            raised_at.append(sim.now_s)
    return sim.runs(), raised_at


def test_a_controller_raising_cpu_max_when_p99_is_high_brings_the_tail_down() -> None:
    sim = virtsim.Simulation(_short(QUOTA), stack=CAPPED)
    sim.step(3.0)
    before = sim.observe(since_s=0.5).loc["api", "latency_p99_s"]
    assert before > 0.5  # 0.3 of a core for 0.42 of demand: the queue grows by the second
    sim.set_cpu_max("api", 0.100, 0.100)
    sim.step(6.0)
    after = sim.observe(since_s=4.5).loc["api", "latency_p99_s"]
    assert after < 0.02, (before, after)  # a whole core at 42% load: the backlog drained, no throttling

    runs, raised_at = _controlled("kernel")
    assert raised_at and raised_at[0] <= 2.0
    des_runs, des_raised = _controlled("des")
    assert des_raised == raised_at
    pd.testing.assert_frame_equal(runs, des_runs, rtol=1e-9)


def test_after_a_cpu_max_change_the_offered_load_against_the_old_quota_is_not_reported() -> None:
    """Review 30 F3: lowered to 0.2 of a core for 0.42 of demand, the guest's runs still said it
    was offered 83% of its (starting) quota."""
    sim = virtsim.Simulation(_short(QUOTA), stack=CAPPED)
    sim.step(0.5)
    sim.set_cpu_max("api", 0.02, 0.1)
    sim.step(sim.duration_s)
    assert "offered_utilization" not in set(sim.runs()["metric"])
    unchanged = virtsim.Simulation(_short(QUOTA), stack=CAPPED)
    unchanged.step(unchanged.duration_s)
    assert "offered_utilization" in set(unchanged.runs()["metric"])
    with pytest.raises(ValueError, match="since_s must be a time"):
        unchanged.observe(since_s=float("nan"))
    assert unchanged.observe(since_s=float("-inf")).equals(unchanged.observe(since_s=0.0))
    with pytest.raises(ValueError, match=r"the period is 100000 s; the kernel takes 1 ms \.\. 1 s"):
        unchanged.set_cpu_max("api", 20000, 100000)  # review 32 F6: microseconds given as seconds


def test_changing_a_limit_the_guest_does_not_have_is_refused_with_the_fix() -> None:
    sim = virtsim.Simulation(_short(QUOTA), stack="docker")
    with pytest.raises(ValueError, match=r"no cpu.max to change.*cpu_max"):
        sim.set_cpu_max("api", 0.1)
    with pytest.raises(ValueError, match=r"either until_s or by_s"):
        sim.step()
    with pytest.raises(ValueError, match=r"is not one this scenario runs"):
        virtsim.Simulation(_short(QUOTA), stack="kvm")


def test_the_cpu_max_to_change_is_the_named_guests_own_and_only_one() -> None:
    data = _short(QUOTA).model_dump(by_alias=True, mode="json")
    data.pop("compare")
    data["guests"][0]["stack"] = [{"profile": "docker", "cpu_max": "50ms/100ms"}]
    data["guests"].append({**data["guests"][0], "name": "docker", "stack": ["docker"]})
    sim = virtsim.Simulation(virtsim.scenario(data))
    with pytest.raises(ValueError, match=r"guest 'docker' has no cpu.max"):
        sim.set_cpu_max("docker", 0.3)  # a guest named like a layer does not reach api's container
    with pytest.raises(ValueError, match=r"no guest 'ap'"):
        sim.set_cpu_max("ap", 0.3)
    sim.set_cpu_max("api", 0.3)
    with pytest.raises(ValueError, match=r"step to the end first"):
        sim.runs()  # rates per second of the whole run would be wrong mid-run


def _shed(engine: str) -> list[pd.DataFrame]:
    """api at 420/s on 0.3 of a core (0.42 of demand): its load is removed at 2 s, and half of
    it (210/s, 0.21 of a core) comes back at 3 s. What observe() shows at 2 s, 3 s and the end."""
    sim = virtsim.Simulation(_short(QUOTA), stack=CAPPED, engine=engine)
    sim.step(2.0)
    seen = [sim.observe()]
    sim.set_rate("api", 0)
    sim.step(3.0)
    seen.append(sim.observe())
    sim.set_rate("api", 210)
    sim.step(sim.duration_s)
    return [*seen, sim.observe(since_s=4.5)]


def test_a_guest_whose_load_is_removed_then_halved_drains_its_backlog() -> None:
    at2, at3, end = _shed("kernel")
    assert at3.loc["api", "arrived"] == at2.loc["api", "arrived"]  # no new request while removed
    assert at3.loc["api", "finished"] > at2.loc["api", "finished"]  # the backlog drains meanwhile
    # 210/s for 3 s: a Poisson count within 4 standard deviations; 0.21 of a core under a 0.3 cap
    assert abs(end.loc["api", "arrived"] - at3.loc["api", "arrived"] - 630) <= 4 * 630**0.5
    assert end.loc["api", "latency_p99_s"] < 0.1
    for ours, des in zip((at2, at3, end), _shed("des"), strict=True):
        pd.testing.assert_frame_equal(ours, des, rtol=1e-9)
    with pytest.raises(ValueError, match="no guest 'web'"):
        virtsim.Simulation(_short(QUOTA), stack=CAPPED).set_rate("web", 10)


def _kv_store(connections: int) -> virtsim.Scenario:
    """One kv-store guest (a Redis-like event loop) on docker, ``connections`` closed-loop clients."""
    return virtsim.scenario({"name": "kv", "run": {"duration": "0.4s", "warmup": "0s", "replications": 1},
                             "guests": [{"name": "kv", "stack": ["docker"],
                                         "workload": {"kind": "kv-store", "connections": connections}}]})


@pytest.mark.parametrize("engine", ["kernel", "des"])
def test_a_guests_connections_change_mid_run_and_its_throughput_with_them(engine) -> None:
    """8 connections, then 1, then none, then 8 again (0.1 s each): one connection makes fewer
    requests than eight (the server is not saturated at one), none makes none, and the count is
    bounded by what the scenario declared. Both engines give the same requests."""
    counts = []
    for eng in (engine, "kernel"):
        sim = virtsim.Simulation(_kv_store(8), engine=eng)
        seen = []
        for until, connections in ((0.1, 1), (0.2, 0), (0.3, 8), (0.4, None)):
            sim.step(until)
            seen.append(int(sim.observe().loc["kv", "arrived"]))
            if connections is not None:
                sim.set_clients("kv", connections)
        counts.append(seen)
    per_window = np.diff([0, *counts[0]])
    assert per_window[1] < per_window[0] / 2  # 1 connection against 8
    assert per_window[2] <= 1  # none: at most the one request the last was thinking towards
    assert per_window[3] > 2 * per_window[1]  # 8 again
    assert counts[0] == counts[1]
    with pytest.raises(ValueError, match=r"from 0 .* to 8"):
        virtsim.Simulation(_kv_store(8), engine=engine).set_clients("kv", 9)


def test_many_small_steps_reach_the_end_despite_rounding() -> None:
    """Review 8 C1: 5,800 steps of 5 ms from 1 s summed to 29.999999999998316 s, and runs()
    refused a run at its end. A step within a few ulps of the end is the end."""
    data = _kv_store(1).model_dump(by_alias=True, mode="json")
    data["run"]["duration"] = "1s"
    sim = virtsim.Simulation(virtsim.scenario(data))
    while sim.now_s < sim.duration_s - 1e-6:
        sim.step(by_s=0.1)  # ten of them sum to 0.9999999999999999
    assert sim.now_s == sim.duration_s
    assert len(sim.runs()) > 0


def _replicas() -> virtsim.Scenario:
    """Up to four replicas of a web service (open loop, 200/s each) and one closed-loop client."""
    return virtsim.scenario({"name": "scale", "run": {"duration": "0.6s", "warmup": "0s", "replications": 1},
                             "guests": [{"name": "web", "count": 4, "stack": ["docker"],
                                         "workload": {"kind": "web", "rate": "200/s"}},
                                        {"name": "kv", "stack": ["docker"],
                                         "workload": {"kind": "kv-store", "connections": 2}}]})


def _scale(engine: str) -> list[pd.DataFrame]:
    sim = virtsim.Simulation(_replicas(), engine=engine, inactive=["web-3", "web-4", "kv"])
    seen = []
    for until, action in ((0.2, lambda: sim.add_guest("web")), (0.4, lambda: sim.add_guest("kv")),
                          (0.5, lambda: sim.remove_guest("web-1")), (0.6, None)):
        sim.step(until)
        seen.append(sim.observe())
        if action is not None:
            action()
    return seen


@pytest.mark.parametrize("engine", ["kernel", "des"])
def test_an_autoscaler_adds_and_removes_declared_replicas(engine) -> None:
    """Four replicas declared, two active: none of the inactive ones makes a request until it is
    added (the first inactive of the entry: web-3), a closed-loop guest added starts its clients,
    a removed one stops; both engines give the same requests."""
    seen = _scale(engine)
    arrived = [frame["arrived"] for frame in seen]
    assert arrived[0]["web-3"] == arrived[0]["web-4"] == arrived[0]["kv"] == 0
    assert arrived[1]["web-3"] > 0 and arrived[1]["web-4"] == 0  # added at 0.2 s: 200/s for 0.2 s
    assert abs(arrived[1]["web-3"] - 40) <= 4 * 40**0.5
    assert arrived[1]["kv"] == 0 < arrived[2]["kv"]  # its connections start at 0.4 s
    assert arrived[3]["web-1"] - arrived[2]["web-1"] == 0  # removed at 0.5 s
    assert arrived[3]["web-2"] > arrived[2]["web-2"]
    for ours, other in zip(seen, _scale("des" if engine == "kernel" else "kernel"), strict=True):
        pd.testing.assert_frame_equal(ours, other, rtol=1e-9)


def test_only_declared_inactive_guests_can_be_added() -> None:
    sim = virtsim.Simulation(_replicas(), inactive=["web-4"])
    assert sim.guests == ["web-1", "web-2", "web-3", "kv"]
    with pytest.raises(ValueError, match=r"'db'.*not in the scenario"):
        sim.add_guest("db")
    with pytest.raises(ValueError, match=r"'web-1'.*running already"):
        sim.add_guest("web-1")
    assert sim.add_guest("web") == "web-4"
    with pytest.raises(ValueError, match="no inactive guest 'web'"):
        sim.add_guest("web")
    with pytest.raises(ValueError, match="no guest 'db'"):
        sim.remove_guest("db")


def test_connections_of_an_oltp_server_whose_lock_scans_them_cannot_change_mid_run() -> None:
    """Review 26 #4: the per-connection read-view scan is drawn into every transaction when the
    run starts; set_clients to 2 of 64 connections kept 64 connections' lock hold (485 tps
    instead of about 9,300). Refused, naming the parameter and the fix; a plain oltp may change."""
    def sim(per_connection: str):
        return virtsim.Simulation(virtsim.scenario({
            "name": "oc", "run": {"duration": "0.2s", "warmup": "0.02s", "replications": 1},
            "guests": [{"name": "db", "workload": {"kind": "oltp", "threads": 64,
                                                   "trx_lock_cycles_per_connection": per_connection}}]}))

    with pytest.raises(ValueError, match=r"trx_lock_cycles_per_connection.*its own scenario"):
        sim("100k").set_clients("db", 2)
    sim("0").set_clients("db", 2)


def test_a_simulation_takes_a_scenario_as_a_dict_like_the_other_api_functions() -> None:
    """Review 26: Simulation(dict) was a TypeError from pathlib."""
    data = {"name": "d", "run": {"duration": "0.1s", "warmup": "0.01s", "replications": 1},
            "guests": [{"name": "web", "workload": {"kind": "web", "rate": "100/s"}}]}
    assert virtsim.Simulation(data).guests == ["web"]
    with pytest.raises(virtsim.ScenarioError, match="expected a Scenario, a scenario file's path or a dict, got int"):
        virtsim.Simulation(5)  # type: ignore[arg-type]


def test_a_scenario_without_compare_can_still_be_named_as_written() -> None:
    """Review 32 F9: runs without [compare] were labelled "as-written"; the name still selects them."""
    sim = virtsim.Simulation(QUOTA.parent / "cgroup-weight.toml", stack="as-written")
    assert sim.label == "docker{cpu_weight=200} + docker{cpu_weight=100}"
