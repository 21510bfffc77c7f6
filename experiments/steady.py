"""Runs long enough to judge a p99 in steady state, for density and plan.

A run starts from an empty host. At low load its queues fill within milliseconds, but near
saturation a queue takes long to reach its steady length: an M/M/1 queue relaxes in about
``E[S] / (1 - sqrt(rho))^2``, 2,500 service times at 96% busy. A run sized only to collect enough
requests then reads the p99 of a queue still filling, too low (review 28: 19 web guests on a
4-core host read 18 ms in 0.3 s and 35 ms in steady state, so the plan kept a 20 ms promise the
host breaks). So where the busiest station is at least ``NEAR_SATURATION`` busy, the run is
first made ``RELAXATIONS`` times the queues' relaxation time (:func:`relaxation_s`; its warm-up,
a tenth, is one relaxation time), then repeated twice as long until the pooled p99s of two
successive runs agree within ``CONVERGED`` or both lie clearly below their limit, at most
``MAX_DOUBLINGS`` times; the longest run is the answer, and a p99 that still moved is unsteady.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from virtsim.experiments.scenario import POOLED_GUEST
from virtsim.models.resources import is_host_resource
from virtsim.sim.routes import Source, StationSpec

__all__ = ["CLEAR_BELOW", "CONVERGED", "MAX_DOUBLINGS", "MAX_RELAXED_RUN_S", "MIN_RUN_S", "NEAR_SATURATION",
           "RELAXATIONS", "busiest_utilization", "pooled_p99s", "relaxation_s", "steady_runs", "work_scv"]

NEAR_SATURATION = 0.8  # utilization of the busiest station from which a run is checked for steadiness
CONVERGED = 0.1  # two runs' pooled p99s within 10% of each other count as steady
CLEAR_BELOW = 0.8  # or both below 80% of the pool's limit (its SLO): on the same side of it, clearly
MAX_DOUBLINGS = 3  # a run is at most 8 times its first length
MIN_RUN_S = 1.0  # no judged run is shorter (s): density's default duration


def busiest_utilization(runs: pd.DataFrame) -> float:
    """The highest utilization (0..1, mean over replications) of a host station in a runs table:
    the cores, memory bandwidth, disk, NIC and the threads' and locks' stations (not the wire,
    delays or the load generators)."""
    util = runs[(runs["guest"] == "host") & (runs["metric"] == "utilization")]
    util = util[util["station"].astype(str).map(is_host_resource)]
    return float(util.groupby("station")["value"].mean().max()) if len(util) else 0.0


def pooled_p99s(runs: pd.DataFrame) -> dict[str, float]:
    """The pooled p99 latency (s) of each pool in a runs table (``all-guests``, or ``entry:all``
    per guest entry), by pool."""
    rows = runs[(runs["metric"] == "latency_p99_s") & (runs["layer"] == "all") & (runs["station"] == "all")]
    pools = rows[(rows["guest"] == POOLED_GUEST) | rows["guest"].astype(str).str.endswith(":all")]
    return {str(g): float(v) for g, v in pools.groupby("guest")["value"].mean().items()}


def _moved(shorter: dict[str, float], longer: dict[str, float], pools: Collection[str] | None,
           limits: Mapping[str, float]) -> set[str]:
    """The pools (of ``pools``, or all) whose p99 moved by more than ``CONVERGED`` of the longer
    run's, but those whose two p99s are both below ``CLEAR_BELOW`` of their limit (the verdict
    does not hang on where between them the p99 settles: review 29 F3)."""
    judged = longer if pools is None else {p: longer[p] for p in pools if p in longer}
    moved = set()
    for pool, value in judged.items():
        before = shorter.get(pool, float("nan"))
        if abs(value - before) <= CONVERGED * value:
            continue
        if pool in limits and max(value, before) < CLEAR_BELOW * limits[pool]:
            continue
        moved.add(pool)
    return moved


RELAXATIONS = 10  # a judged run's warm-up (a tenth of it) lasts at least one relaxation time
MAX_RELAXED_RUN_S = 600.0  # a run the relaxation time asks to be longer than this is not made: unsteady


def relaxation_s(runs: pd.DataFrame, throughput_rps: float, scv: Mapping[str, float] | None = None) -> float:
    """The longest relaxation time (s) of the host's stations at the load in ``runs``: for each
    station at least ``NEAR_SATURATION`` busy (offered, for open loops; else measured), that of a
    queue as fast as the whole station (c servers as one of c times the speed, as in heavy
    traffic) in the heavy-traffic approximation, ``E[S] (1 + scv) / 2 / (1 - sqrt(rho))^2``, with
    ``E[S] = rho / throughput`` the time the station spends per request and ``scv`` the squared
    coefficient of variation of a request's work there (1, exponential, where not given: an
    M/M/1's relaxation). Review 29 F5: at 98.7% offered, runs of 2 and 4 s agreed on a p99 17%
    low; this asks for a 3.3 s warm-up, a 33 s run. Review 28 F12: lognormal work of sigma 2
    (scv 54) at 90% offered relaxes 27 times slower than exponential work."""
    rows = runs[(runs["guest"] == "host") & runs["metric"].isin(["offered_utilization", "utilization"])]
    loads = rows.groupby(["metric", "station"])["value"].mean()
    by_station = loads["offered_utilization"] if "offered_utilization" in loads.index.get_level_values(0) \
        else loads.get("utilization", pd.Series(dtype=float))
    worst = 0.0
    for station, rho in by_station.items():
        # at 1 (within rounding: a closed loop's bottleneck reads 0.9999999999995 in one run and
        # 1.0 in another) the queue is not relaxing towards a steady state this formula describes
        if ":" not in str(station) and NEAR_SATURATION <= rho < 1.0 - 1e-9 and throughput_rps > 0:
            spread = (1.0 + (scv or {}).get(str(station), 1.0)) / 2
            worst = max(worst, rho / throughput_rps * spread / (1.0 - math.sqrt(rho)) ** 2)
    return worst


def work_scv(source: Source, samples: int = 4096, seed: int = 0,
             stations: Sequence[StationSpec] = ()) -> dict[str, float]:
    """Per station, the squared coefficient of variation of the work a request of ``source``
    brings it (summed over its visits), from ``samples`` sampled requests. A memory stream is
    work at its CPU too (``stations`` say which CPU each bandwidth domain runs on), as the
    offered load counts it (review 33)."""
    from virtsim.sim.rng import stream_seed

    work = np.asarray(source.make_sampler(stream_seed(seed, 0, "scv", source.name))(samples))
    cpu_of = {s.name: s.cpu for s in stations if s.kind == "stream"}
    out = {}
    for station in {slot.station for slot in source.route} | {cpu_of[s.station] for s in source.route
                                                              if s.station in cpu_of}:
        cols = [k for k, slot in enumerate(source.route)
                if station in (slot.station, cpu_of.get(slot.station)) and not slot.action]
        total = work[:, cols].sum(axis=1) if cols else np.zeros(0)
        mean = float(total.mean()) if total.size else 0.0
        if mean > 0:
            out[station] = float(total.var() / mean**2)
    return out


def steady_runs(run: Callable[[float], pd.DataFrame], duration_s: float,
                first: pd.DataFrame | None = None, pools: Collection[str] | None = None,
                relaxation: Callable[[pd.DataFrame], float] | None = None,
                limits: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The runs table of ``run(d)`` (a run of ``d`` seconds with a tenth of it warm-up) for
    ``d = duration_s``, or, where the busiest station is at least ``NEAR_SATURATION`` busy, for
    the first of ``2d, 4d, ...`` (at most ``MAX_DOUBLINGS`` doublings) whose pooled p99s agree
    with the run half as long within ``CONVERGED``: those of ``pools`` only, if given (the pools
    a verdict rests on: a neighbour's wobbling p99 judges nothing; ``limits``, their SLOs, by
    which two p99s both clearly below agree: :func:`_moved`). A run is first made as long as
    ``RELAXATIONS`` times ``relaxation(runs)`` asks (its warm-up one relaxation time), or not at
    all past ``MAX_RELAXED_RUN_S`` (unsteady). ``first``: the run of
    ``duration_s``, if made. The table's ``attrs["unsteady"]`` holds the pools whose p99 still
    moved at the last doubling, and ``attrs["steady"]`` is whether there are none; density and
    plan count an unsteady p99 as a miss (a p99 not known is not kept)."""
    runs = run(duration_s) if first is None else first
    moved: set[str] = set()
    # first as long as the queues' relaxation asks (``relaxation``: its estimate from a run, from
    # the offered load, which a short run's measured utilization may read below NEAR_SATURATION)
    needed = RELAXATIONS * relaxation(runs) if relaxation is not None else 0.0
    if busiest_utilization(runs) >= NEAR_SATURATION or needed > 0:
        moved = set(pooled_p99s(runs) if pools is None else pools)  # none compared yet: none steady
        if needed > MAX_RELAXED_RUN_S:
            runs.attrs["unsteady"], runs.attrs["steady"] = sorted(moved), False
            return runs
        if needed > duration_s:
            duration_s = needed / 2  # doubled below
        for _ in range(MAX_DOUBLINGS):
            duration_s *= 2
            longer = run(duration_s)
            moved = _moved(pooled_p99s(runs), pooled_p99s(longer), pools, limits or {})
            runs = longer
            if not moved:
                break
    runs.attrs["unsteady"] = sorted(moved)
    runs.attrs["steady"] = not moved
    return runs
