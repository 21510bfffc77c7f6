"""The engine against queueing theory: each closed form inside a 99% confidence interval.

Each test runs independent replications (streams keyed by replication), takes one estimate per
replication, and checks the theoretical value lies in the Student-t 99% interval of the
estimates, and that the interval is narrow: its half-width at most 5% of the value. The closed
forms are computed here from their textbook formulas, not by the engine. The runs are on the
compiled kernel, long enough for that width (the DES engine gives the same requests, checked
request by request in test_kernel; here it runs each closed form once more, shorter, at 15%).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.sim.helpers import const_work, exp_work, source
from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.kernel import simulate_kernel
from virtsim.sim.routes import ClosedArrivals, OpenArrivals, StationSpec
from virtsim.sim.stats import t_interval

REPS = 20


LONGER = 8  # the kernel's runs are this many times the DES's: its interval narrows by sqrt(8)
WIDTH = {"kernel": 0.05, "des": 0.15}  # the largest 99% half-width, as a share of the closed form


@pytest.fixture(params=["kernel", "des"])
def engine(request) -> str:
    """Each closed form on both engines: the kernel long (a 5% interval), the DES shorter (15%)."""
    return request.param


def _replicate(stations, src, control, estimate, engine: str) -> np.ndarray:
    """One estimate per replication; on the kernel, ``LONGER`` times ``control``'s duration and warm-up."""
    run = simulate
    if engine == "kernel":
        run = simulate_kernel
        control = RunControl(duration_s=control.duration_s * LONGER, warmup_s=control.warmup_s * LONGER,
                             seed=control.seed)
    return np.array([estimate(run(stations, [src], control, r), control) for r in range(REPS)])


def _mean_sojourn(result, control) -> float:
    log = result.logs["q"]
    keep = (log.arrival_s >= control.warmup_s) & ~np.isnan(log.finish_s)
    return float(np.mean(log.finish_s[keep] - log.arrival_s[keep]))


def _assert_in_ci(values: np.ndarray, expected: float, engine: str) -> None:
    """The closed form inside the replications' 99% interval, and the interval narrow enough to
    mean something: its half-width at most ``WIDTH[engine]`` of the closed form (a wide interval
    holds a wrong answer too)."""
    max_half_width = WIDTH[engine]
    mean, low, high = t_interval(values, 0.99)
    assert low <= expected <= high, f"expected {expected:.5g} outside 99% CI [{low:.5g}, {high:.5g}] (mean {mean:.5g})"
    half = (high - low) / 2
    assert half <= max_half_width * expected, f"99% CI half-width {half:.3g} is {100 * half / expected:.1f}% of " \
                                              f"{expected:.5g}, more than {100 * max_half_width:g}%"


def erlang_c(c: int, offered: float) -> float:
    """Probability an arrival waits in M/M/c with offered load a = lambda/mu (Erlang C)."""
    top = offered**c / math.factorial(c) * c / (c - offered)
    return top / (sum(offered**k / math.factorial(k) for k in range(c)) + top)


def test_mm1_fifo_waiting_time(engine: str) -> None:
    lam, mu = 0.7, 1.0
    control = RunControl(duration_s=3000, warmup_s=300, seed=11)
    src = source("q", ["s"], OpenArrivals(lam), exp_work(1 / mu))

    # The waiting time in queue is checked through the sojourn: W = Wq + 1/mu, Wq = rho/(mu - lam).
    rho = lam / mu
    sojourn = _replicate([StationSpec("s", "fifo", 1)], src, control, _mean_sojourn, engine)
    _assert_in_ci(sojourn - 1 / mu, rho / (mu - lam), engine)


def test_mmc_erlang_c_with_eight_servers(engine: str) -> None:
    c, lam, mu = 8, 6.0, 1.0
    control = RunControl(duration_s=3000, warmup_s=300, seed=12)  # Wq is small beside the sojourn: noisy
    src = source("q", ["s"], OpenArrivals(lam), exp_work(1 / mu))
    wq = erlang_c(c, lam / mu) / (c * mu - lam)
    sojourn = _replicate([StationSpec("s", "fifo", c)], src, control, _mean_sojourn, engine)
    _assert_in_ci(sojourn - 1 / mu, wq, engine)


def test_mm1_processor_sharing_sojourn(engine: str) -> None:
    lam, mu = 0.6, 1.0
    control = RunControl(duration_s=3000, warmup_s=300, seed=13)
    src = source("q", ["s"], OpenArrivals(lam), exp_work(1 / mu))
    sojourn = _replicate([StationSpec("s", "shared", 1)], src, control, _mean_sojourn, engine)
    _assert_in_ci(sojourn, 1 / (mu - lam), engine)


def test_md1_processor_sharing_is_insensitive_to_service_distribution(engine: str) -> None:
    """M/D/1-PS has mean sojourn S/(1 - rho), unlike M/D/1-FIFO's S + rho S / (2 (1 - rho))."""
    lam, service = 0.6, 1.0
    rho = lam * service
    control = RunControl(duration_s=3000, warmup_s=300, seed=14)
    src = source("q", ["s"], OpenArrivals(lam), const_work(service))
    ps = _replicate([StationSpec("s", "shared", 1)], src, control, _mean_sojourn, engine)
    _assert_in_ci(ps, service / (1 - rho), engine)
    fifo = _replicate([StationSpec("s", "fifo", 1)], src, control, _mean_sojourn, engine)
    _assert_in_ci(fifo, service + rho * service / (2 * (1 - rho)), engine)


def mva_single_server(clients: int, service_s: float, think_s: float) -> tuple[float, float]:
    """Exact mean value analysis of a closed loop: one FIFO server and a think (delay) stage."""
    r = 0.0
    x = 0.0
    for n in range(1, clients + 1):
        r = service_s * (1 + x * r)  # arrival theorem: queue seen = mean queue with n - 1
        x = n / (r + think_s)
    return x, r


def test_littles_law_on_a_closed_loop(engine: str) -> None:
    clients, service, think = 5, 0.2, 0.5
    control = RunControl(duration_s=2000, warmup_s=200, seed=15)
    src = source("q", ["s"], ClosedArrivals(clients, think), exp_work(service))

    def population(result, control) -> float:
        log = result.logs["q"]
        done = ~np.isnan(log.finish_s)
        window = (log.finish_s >= control.warmup_s) & done
        throughput = window.sum() / control.window_s
        response = float(np.mean((log.finish_s - log.arrival_s)[window]))
        return throughput * (response + think)  # Little: N = X (R + Z)

    _assert_in_ci(_replicate([StationSpec("s", "fifo", 1)], src, control, population, engine), clients, engine)

    def throughput(result, control) -> float:
        log = result.logs["q"]
        return float(((log.finish_s >= control.warmup_s) & ~np.isnan(log.finish_s)).sum() / control.window_s)

    x_mva, _ = mva_single_server(clients, service, think)
    _assert_in_ci(_replicate([StationSpec("s", "fifo", 1)], src, control, throughput, engine), x_mva, engine)


@pytest.mark.parametrize("stations", [1, 2])
def test_tandem_fifo_sojourn_adds_per_station(stations: int, engine: str) -> None:
    """Jackson tandem: each M/M/1 station adds 1/(mu - lam) to the mean sojourn."""
    lam, mu = 0.5, 1.0
    control = RunControl(duration_s=2000, warmup_s=200, seed=16)
    names = [f"s{i}" for i in range(stations)]
    src = source("q", names, OpenArrivals(lam), exp_work(1 / mu, stations))
    specs = [StationSpec(n, "fifo", 1) for n in names]
    _assert_in_ci(_replicate(specs, src, control, _mean_sojourn, engine), stations / (mu - lam), engine)
