"""Small builders for engine tests: one-station sources with given service distributions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
