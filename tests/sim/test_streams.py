"""Memory streams hold cores: a stream is CPU work of its thread, slowed by its bandwidth domain.

A thread streaming memory runs on a core; stalled on DRAM it is still running to the scheduler.
So a stream takes a core from CPU work as any thread does (CFS shares), counts against its
group's vCPUs, and its domain (the memory controllers) slows every stream in it alike once
together they ask for more than its bandwidth. Figures below are worked by hand from those
rules; the last test checks a closed form (processor sharing) with a confidence interval.
"""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel
from virtsim.sim.routes import ClosedArrivals, OpenArrivals, Slot, Source, StationSpec
from virtsim.sim.stations import GroupSpec
from virtsim.sim.stats import t_interval

from .helpers import const_work, exp_work

ENGINES = [simulate, simulate_kernel]
WORK_S = 1e-3  # one stream or one CPU job: 1 ms at a whole core
RUN = RunControl(duration_s=1.0, warmup_s=0.0, seed=1)


def _stations(cores: float, streams: float, groups: dict | None = None) -> list[StationSpec]:
    return [StationSpec("cpu", "shared", cores, groups or {}), StationSpec("membw", "stream", streams, cpu="cpu")]


def _closed(name: str, station: str, threads: int, group: tuple[str, ...]) -> Source:
    return Source(name, (Slot(station, "app", group),), ClosedArrivals(threads), const_work(WORK_S))


def _rates(result) -> dict[str, float]:
    """Requests finished per second of the 1 s run."""
    return {name: float(np.sum(~np.isnan(log.finish_s))) for name, log in result.logs.items()}


@pytest.mark.parametrize("engine", ENGINES)
def test_streams_and_cpu_work_on_too_few_cores_each_get_half_a_core(engine) -> None:
    """4 streaming and 4 computing threads on 4 cores: half a core each. The streams ask for
    4 x 0.5 = 2 full-speed streams, what the domain holds: 2,000 streams/s (not the 4,000 they
    would make with cores of their own) and 2,000 CPU jobs/s. All 4 cores are busy, and the
    domain's bandwidth is all used."""
    result = engine(_stations(4.0, 2.0), [_closed("s", "membw", 4, ("s",)), _closed("c", "cpu", 4, ("c",))], RUN)
    rates = _rates(result)
    assert rates["s"] == pytest.approx(2000, abs=4)
    assert rates["c"] == pytest.approx(2000, abs=4)
    assert result.utilization["cpu"] == pytest.approx(1.0, abs=1e-6)
    assert result.utilization["membw"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("engine", ENGINES)
def test_streams_slowed_by_the_bandwidth_keep_their_cores(engine) -> None:
    """2 streams and 6 CPU threads of one process on 4 cores: half a core each (as threads of
    two processes they would get a process's half of the cores each); the streams ask for 1 of the
    domain's 2.5 streams, so run at their half core: 1,000/s, and CPU work 3,000/s. Then 4
    streams alone on 4 cores in a domain of 1 stream: each holds a whole core but moves a
    quarter stream: 1,000/s, the cores all busy, the bandwidth all used."""
    mixed = engine(_stations(4.0, 2.5), [_closed("s", "membw", 2, ("p",)), _closed("c", "cpu", 6, ("p",))], RUN)
    assert _rates(mixed)["s"] == pytest.approx(1000, abs=4)
    assert _rates(mixed)["c"] == pytest.approx(3000, abs=6)  # the last round may end at 1 s
    assert mixed.utilization["membw"] == pytest.approx(1.0 / 2.5, abs=1e-3)
    alone = engine(_stations(4.0, 1.0), [_closed("s", "membw", 4, ("s",))], RUN)
    assert _rates(alone)["s"] == pytest.approx(1000, abs=4)
    assert alone.utilization["cpu"] == pytest.approx(1.0, abs=1e-6)
    assert alone.utilization["membw"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_vms_vcpus_bound_its_streams_and_its_cpu_work_together(engine) -> None:
    """A 1-vCPU VM with one streaming and one computing thread on an idle 4-core host: the two
    share its one vCPU (500/s each), though three cores sit idle and the domain holds 4 streams."""
    groups = {("vm",): GroupSpec(max_servers=1.0)}
    result = engine(_stations(4.0, 4.0, groups),
                    [_closed("s", "membw", 1, ("vm", "app")), _closed("c", "cpu", 1, ("vm", "app"))], RUN)
    assert _rates(result)["s"] == pytest.approx(500, abs=2)
    assert _rates(result)["c"] == pytest.approx(500, abs=2)
    assert result.utilization["cpu"] == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_streaming_thread_weighs_as_one_of_its_groups_threads(engine) -> None:
    """Group a runs 1 stream and 1 CPU thread, group b 2 CPU threads, on 2 cores with weights
    alike: each group gets a core, a's split between its two threads: 500 streams/s, 500 and
    1,000 CPU jobs/s (a stream does not weigh as a group of its own beside a's thread)."""
    result = engine(_stations(2.0, 4.0),
                    [_closed("s", "membw", 1, ("a",)), _closed("ca", "cpu", 1, ("a",)),
                     _closed("cb", "cpu", 2, ("b",))], RUN)
    rates = _rates(result)
    assert rates["s"] == pytest.approx(500, abs=2)
    assert rates["ca"] == pytest.approx(500, abs=2)
    assert rates["cb"] == pytest.approx(1000, abs=3)


def test_a_stream_station_needs_a_shared_cpu_to_run_on() -> None:
    with pytest.raises(ValueError, match="names the cpu"):
        StationSpec("membw", "stream", 2.0)
    with pytest.raises(ValueError, match="no shared station"):
        simulate([StationSpec("cpu", "fifo", 1), StationSpec("membw", "stream", 2.0, cpu="cpu")],
                 [_closed("s", "membw", 1, ())], RUN)


def test_streams_alone_on_ample_cores_share_the_bandwidth_as_processor_sharing() -> None:
    """Poisson streams of exponential work on 64 cores in a domain of one stream: n streams
    each move 1/n of a stream, processor sharing at one server, whose mean response time is
    S / (1 - rho) (M/M/1-PS). At rho = 0.6 and S = 1 ms: 2.5 ms, inside the 99% interval of 20
    replications, the interval within 5% of it."""
    rate, mean_s = 600.0, 1e-3
    src = Source("s", (Slot("membw", "app", ("s",)),), OpenArrivals(rate), exp_work(mean_s))
    control = RunControl(duration_s=40.0, warmup_s=4.0, seed=7)
    means = []
    for replication in range(20):
        log = simulate_kernel(_stations(64.0, 1.0), [src], control, replication).logs["s"]
        done = (log.arrival_s >= control.warmup_s) & ~np.isnan(log.finish_s)
        means.append(float(np.mean((log.finish_s - log.arrival_s)[done])))
    _, low, high = t_interval(np.array(means), 0.99)
    expected = mean_s / (1 - rate * mean_s)
    assert low <= expected <= high, (low, expected, high)
    assert (high - low) / 2 <= 0.05 * expected
