"""The vector engine agrees with the DES engine request by request, on generated networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.routes import ClosedArrivals, OpenArrivals, Slot, Source, StationSpec
from virtsim.sim.vector import SimultaneousArrivals, fifo_departures, simulate_vector, vector_rejects

from .helpers import work_factory


@st.composite
def networks(draw):
    """Stations in a fixed order; each route an increasing subsequence, so the union is acyclic."""
    n_stations = draw(st.integers(1, 4))
    stations = []
    for i in range(n_stations):
        kind = draw(st.sampled_from(["fifo", "fifo", "delay"]))
        servers = draw(st.integers(1, 3)) if kind == "fifo" else 1
        stations.append(StationSpec(f"s{i}", kind, float(servers)))
    sources = []
    for j in range(draw(st.integers(1, 3))):
        picks = sorted(draw(st.sets(st.integers(0, n_stations - 1), min_size=1, max_size=n_stations)))
        route = tuple(Slot(f"s{i}", f"layer{i % 2}") for i in picks)
        rate = draw(st.floats(0.2, 3.0))
        mean = draw(st.floats(0.05, 0.6))
        skip = draw(st.sampled_from([0.0, 0.0, 0.3]))
        dist = draw(st.sampled_from(["exp", "const"]))
        sources.append(Source(f"src{j}", route, OpenArrivals(rate), work_factory(mean, len(route), skip, dist)))
    return stations, sources, draw(st.integers(0, 2**31))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_vector_and_des_agree_request_by_request(network) -> None:
    stations, sources, seed = network
    assert vector_rejects(stations, sources) is None
    control = RunControl(duration_s=150.0, warmup_s=0.0, seed=seed)
    des = simulate(stations, sources, control, replication=1)
    try:
        vec = simulate_vector(stations, sources, control, replication=1)
    except SimultaneousArrivals:
        assume(False)  # refused: simultaneous arrivals (deterministic work); see the test below
        return
    for name in des.logs:
        d, v = des.logs[name], vec.logs[name]
        assert d.n == v.n
        np.testing.assert_array_equal(d.arrival_s, v.arrival_s)
        np.testing.assert_array_equal(np.isnan(d.finish_s), np.isnan(v.finish_s))
        np.testing.assert_allclose(d.finish_s, v.finish_s, rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(d.stage_s, v.stage_s, rtol=1e-9, atol=1e-9)
    for station, value in des.utilization.items():
        assert vec.utilization[station] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_lindley_closed_form_on_a_hand_timeline() -> None:
    """Arrivals 0, 0.5, 3 with work 1, 1, 0.5: departures 1, 2 (waits 0.5), 3.5 (no wait)."""
    np.testing.assert_allclose(fifo_departures(np.array([0, 0.5, 3]), np.array([1, 1, 0.5]), 1), [1, 2, 3.5])
    # Two servers: three jobs of work 1 at 0 -> 1, 1, 2.
    np.testing.assert_allclose(fifo_departures(np.zeros(3), np.ones(3), 2), [1, 1, 2])


def test_what_the_vector_engine_refuses_and_why() -> None:
    route = (Slot("a", "app"), Slot("b", "app"))
    fifo = [StationSpec("a", "fifo"), StationSpec("b", "fifo")]
    work = work_factory(0.1, 2, 0, "exp")
    closed = Source("c", route, ClosedArrivals(2), work)
    assert "closed loop" in (vector_rejects(fifo, [closed]) or "")
    shared = [StationSpec("a", "shared", 1), StationSpec("b", "fifo")]
    assert "processor-sharing" in (vector_rejects(shared, [Source("o", route, OpenArrivals(1), work)]) or "")
    back = Source("back", (Slot("a", "app"), Slot("b", "app"), Slot("a", "app")), OpenArrivals(1),
                  work_factory(0.1, 3, 0, "exp"))
    assert "twice" in (vector_rejects(fifo, [back]) or "")
    forward, reverse = Source("f", route, OpenArrivals(1), work), Source("r", route[::-1], OpenArrivals(1), work)
    assert "cycle" in (vector_rejects(fifo, [forward, reverse]) or "")
    with pytest.raises(ValueError, match="cannot run"):
        simulate_vector(fifo, [closed], RunControl(1.0))


def test_simultaneous_arrivals_are_refused_not_guessed() -> None:
    """Constant work with skipped stages makes two requests reach a station at one instant; the
    DES orders them by its event queue, so the vector engine refuses rather than differ."""
    stations = [StationSpec(f"s{i}", "fifo") for i in range(3)]
    src = Source("q", tuple(Slot(f"s{i}", "app") for i in range(3)), OpenArrivals(1.0),
                 work_factory(0.5, 3, 0.3, "const"))
    with pytest.raises(SimultaneousArrivals, match="same instant"):
        simulate_vector(stations, [src], RunControl(duration_s=150.0, seed=0))


@settings(max_examples=40, deadline=None)
@given(networks())
def test_with_continuous_work_the_vector_engine_never_refuses(network) -> None:
    """Exponential work and Poisson arrivals: ties have probability zero, so every run is accepted."""
    stations, sources, seed = network
    continuous = [Source(s.name, s.route, s.arrivals, work_factory(0.3, len(s.route), 0.3, "exp")) for s in sources]
    simulate_vector(stations, continuous, RunControl(duration_s=150.0, seed=seed))


@pytest.mark.parametrize("arrivals", [ClosedArrivals(1), OpenArrivals(10.0)])
def test_a_run_that_ends_mid_service_counts_only_the_time_served(arrivals) -> None:
    """One server, 4 s of work per request, back to back from t ~ 0 on a 10 s run: the server is
    busy for at most the 10 s of the run, so utilization is at most 1 (a visit's whole work used
    to count when it started: [8, 12] made it 1.2). Closed: services [0,4], [4,8], [8,12] serve
    exactly 10 s. Open at 10/s: busy from the first arrival (a fraction of a second) to the end."""
    from virtsim.sim.kernel import simulate_kernel

    stations = [StationSpec("disk", "fifo", 1.0)]
    factory = lambda seed: (lambda n: np.full((n, 1), 4.0))  # noqa: E731
    sources = [Source("w", (Slot("disk", "app"),), arrivals, factory)]
    control = RunControl(duration_s=10.0, warmup_s=0.0, seed=7)
    engines = {"des": simulate(stations, sources, control), "kernel": simulate_kernel(stations, sources, control)}
    if isinstance(arrivals, OpenArrivals):
        engines["vector"] = simulate_vector(stations, sources, control)
    first = engines["des"].logs["w"].arrival_s[0]
    for name, result in engines.items():
        assert result.utilization["disk"] == pytest.approx(1.0 - first / 10.0, abs=1e-12), name


def test_the_vector_engine_writes_the_same_utilization_rows_as_the_others() -> None:
    """Open-loop disk reads visit no processor-sharing station; the CPU's row, its labelled groups'
    (softirq) are still reported, as the DES and kernel do; and a host's background core (a
    type-2 VMM's desktop) on a station no request visits: 1 of 4 cores busy, 0.25."""
    from virtsim.experiments.scenario import parse_scenario
    from virtsim.sim.kernel import simulate_kernel
    from virtsim.sim.stations import GroupSpec

    scenario = parse_scenario({
        "name": "vec", "host": {"cpu": "small-4c", "storage": "hdd"},
        "run": {"duration": "2s", "warmup": "0s", "replications": 1, "seed": 2},
        "guests": [{"name": "g", "stack": ["bare-metal"], "workload": {
            "arrivals": {"kind": "open", "rate": "20/s"},
            "demands": [{"kind": "io", "op": "read", "size": "4KiB", "pattern": "random"}]}}],
    })
    stations, sources = scenario.system().engine_inputs()
    busy = StationSpec("cpu2", "shared", 4.0, {("desk",): GroupSpec(label="desktop")}, {("desk",): 1})
    control = scenario.run.control()
    for specs in (stations, [*stations, busy]):
        assert vector_rejects(specs, sources) is None
        vec, des = simulate_vector(specs, sources, control), simulate(specs, sources, control)
        kernel = simulate_kernel(specs, sources, control)
        assert set(vec.utilization) == set(des.utilization) == set(kernel.utilization)
        for name, value in des.utilization.items():
            assert vec.utilization[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert vec.utilization["cpu2"] == pytest.approx(0.25) and vec.utilization["desktop"] == pytest.approx(0.25)
