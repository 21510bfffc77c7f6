"""Runs long enough to judge a p99 in steady state, for density and plan.

A run starts from an empty host. At low load its queues fill within milliseconds, but near
saturation a queue takes long to reach its steady length: an M/M/1 queue relaxes in about
``E[S] / (1 - sqrt(rho))^2``, 2,500 service times at 96% busy. A run sized only to collect enough
requests then reads the p99 of a queue still filling, too low (review 28: 19 web guests on a
4-core host read 18 ms in 0.3 s and 35 ms in steady state, so the plan kept a 20 ms promise the
host breaks). So where the busiest station is at least ``NEAR_SATURATION`` busy, the run is
repeated twice as long (warm-up a tenth of it) until the pooled p99s of two successive runs agree
within ``CONVERGED``, at most ``MAX_DOUBLINGS`` times; the longest run is the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import pandas as pd

from virtsim.experiments.scenario import POOLED_GUEST

__all__ = ["CONVERGED", "MAX_DOUBLINGS", "MIN_RUN_S", "NEAR_SATURATION", "busiest_utilization", "pooled_p99s",
           "steady_runs"]

NEAR_SATURATION = 0.8  # utilization of the busiest station from which a run is checked for steadiness
CONVERGED = 0.1  # two runs' pooled p99s within 10% of each other count as steady
MAX_DOUBLINGS = 3  # a run is at most 8 times its first length
MIN_RUN_S = 1.0  # no judged run is shorter (s): density's default duration
_NOT_STATIONS = ("wire", "delay", "client")  # time on these is not a host resource being busy


def busiest_utilization(runs: pd.DataFrame) -> float:
    """The highest utilization (0..1, mean over replications) of a host station in a runs table:
    the cores, memory bandwidth, disk, NIC and the threads' and locks' stations (not the wire,
    delays or the load generators)."""
    util = runs[(runs["guest"] == "host") & (runs["metric"] == "utilization")]
    util = util[~util["station"].astype(str).str.startswith(_NOT_STATIONS)]
    return float(util.groupby("station")["value"].mean().max()) if len(util) else 0.0


def pooled_p99s(runs: pd.DataFrame) -> dict[str, float]:
    """The pooled p99 latency (s) of each pool in a runs table (``all-guests``, or ``entry:all``
    per guest entry), by pool."""
    rows = runs[(runs["metric"] == "latency_p99_s") & (runs["layer"] == "all") & (runs["station"] == "all")]
    pools = rows[(rows["guest"] == POOLED_GUEST) | rows["guest"].astype(str).str.endswith(":all")]
    return {str(g): float(v) for g, v in pools.groupby("guest")["value"].mean().items()}


def _moved(shorter: dict[str, float], longer: dict[str, float], pools: Collection[str] | None) -> set[str]:
    """The pools (of ``pools``, or all) whose p99 moved by more than ``CONVERGED`` of the longer run's."""
    judged = longer if pools is None else {p: longer[p] for p in pools if p in longer}
    return {p for p, v in judged.items() if not abs(v - shorter.get(p, float("nan"))) <= CONVERGED * v}


def steady_runs(run: Callable[[float], pd.DataFrame], duration_s: float,
                first: pd.DataFrame | None = None, pools: Collection[str] | None = None) -> pd.DataFrame:
    """The runs table of ``run(d)`` (a run of ``d`` seconds with a tenth of it warm-up) for
    ``d = duration_s``, or, where the busiest station is at least ``NEAR_SATURATION`` busy, for
    the first of ``2d, 4d, ...`` (at most ``MAX_DOUBLINGS`` doublings) whose pooled p99s agree
    with the run half as long within ``CONVERGED``: those of ``pools`` only, if given (the pools
    a verdict rests on: a neighbour's wobbling p99 judges nothing). ``first``: the run of
    ``duration_s``, if made. The table's ``attrs["unsteady"]`` holds the pools whose p99 still
    moved at the last doubling, and ``attrs["steady"]`` is whether there are none; density and
    plan count an unsteady p99 as a miss (a p99 not known is not kept)."""
    runs = run(duration_s) if first is None else first
    moved: set[str] = set()
    if busiest_utilization(runs) >= NEAR_SATURATION:
        moved = {"(not yet compared)"}
        for _ in range(MAX_DOUBLINGS):
            duration_s *= 2
            longer = run(duration_s)
            moved = _moved(pooled_p99s(runs), pooled_p99s(longer), pools)
            runs = longer
            if not moved:
                break
    runs.attrs["unsteady"] = sorted(moved)
    runs.attrs["steady"] = not moved
    return runs
