"""Small builders for engine tests: one-station sources with given service distributions."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import simpy

from virtsim.sim.routes import ClosedArrivals, OpenArrivals, Slot, Source


def exp_work(mean_s: float, stages: int = 1) -> Callable[[np.random.SeedSequence], Callable[[int], np.ndarray]]:
    def factory(seed: np.random.SeedSequence) -> Callable[[int], np.ndarray]:
        rng = np.random.default_rng(seed)
        return lambda n: rng.exponential(mean_s, (n, stages))

    return factory


def const_work(*work_s: float) -> Callable[[np.random.SeedSequence], Callable[[int], np.ndarray]]:
    row = np.asarray(work_s, dtype=float)
    return lambda seed: (lambda n: np.tile(row, (n, 1)))


def source(name: str, stations: list[str], arrivals: OpenArrivals | ClosedArrivals, factory, group=()) -> Source:
    return Source(name, tuple(Slot(s, "app", group) for s in stations), arrivals, factory)


def finish_times(env: simpy.Environment, station, jobs: list[tuple[float, float, tuple]]) -> list[float]:
    """Submit (arrival_s, work_s, group) jobs; return each one's finish time."""
    done = [math.nan] * len(jobs)

    def job(i: int, arrival: float, work: float, group: tuple):
        yield env.timeout(arrival)
        yield station.submit(work, group)
        done[i] = env.now

    for i, (arrival, work, group) in enumerate(jobs):
        env.process(job(i, arrival, work, group))
    env.run()
    return done


def work_factory(mean_s: float, stages: int, skip: float, dist: str):
    """Work of ``stages`` stages per request, each ``mean_s`` (``dist`` "exp": exponential, else
    constant) and skipped (zero) with probability ``skip``."""
    def factory(seed: np.random.SeedSequence):
        # one generator per purpose, so draws are sequential (the WorkSampler contract): the DES
        # draws in blocks of 1,024, the kernel in chunks of other sizes
        work_rng, skip_rng = (np.random.default_rng(s) for s in seed.spawn(2))

        def sample(n: int) -> np.ndarray:
            work = work_rng.exponential(mean_s, (n, stages)) if dist == "exp" else np.full((n, stages), mean_s)
            return work * (skip_rng.random((n, stages)) >= skip)

        return sample

    return factory
