"""Offered load: the work open-loop sources bring each station (and each capped group) per
second, against what it can serve. At 1 or more the station cannot keep up however long the
run: its queue grows without bound, which a short run that starts empty only shows as a high
but finite utilization (a run of 0.9 s at 101.7% offered measured 0.985).

The work per request is the sampler's mean over ``samples`` requests, so the figure carries the
sampling error of that mean (about 1/sqrt(samples) of the work's coefficient of variation). A
stage visited only when a station has been idle (``when_idle``) is counted as always visited:
an upper bound there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from virtsim.sim.rng import stream_seed
from virtsim.sim.routes import OpenArrivals, Source, StationSpec

__all__ = ["offered_load"]


def offered_load(stations: Sequence[StationSpec], sources: Sequence[Source], samples: int = 20_000,
                 seed: int = 0) -> dict[str, float]:
    """Offered utilization (work per second / capacity) of each station, and of each group with
    a cap (``max_servers`` or ``cpu.max``) as ``"station:a/b"``, from the open-loop sources only.

    Sources of one ``family`` (the guests of one entry) draw alike: the first one's mean work per
    slot stands for the others'. Each other source is sampled on its own."""
    specs = {s.name: s for s in stations}
    work: dict[str, float] = {}
    means: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
    for source in sources:
        if not isinstance(source.arrivals, OpenArrivals):
            continue
        key = (source.family or f"source:{source.name}", source.stations)
        if key not in means:
            sample = source.make_sampler(stream_seed(seed, 0, "offered-load", source.name))(samples)
            means[key] = np.asarray(sample, dtype=float).mean(axis=0)
        rate = source.arrivals.rate_per_s
        for slot, mean in zip(source.route, means[key], strict=True):
            if slot.action:  # lock acquire/release: no work
                continue
            work[slot.station] = work.get(slot.station, 0.0) + rate * float(mean)
            for depth in range(1, len(slot.group) + 1):
                name = f"{slot.station}:{'/'.join(slot.group[:depth])}"
                work[name] = work.get(name, 0.0) + rate * float(mean)
    out = {}
    for name, per_second in work.items():
        station, _, path = name.partition(":")
        spec = specs[station]
        if not path:
            out[name] = per_second / spec.capacity
            continue
        group = spec.groups.get(tuple(path.split("/")))
        if group is None:
            continue
        cap = group.max_servers
        if group.quota_s is not None:
            cap = min(cap, group.quota_s / group.period_s)
        if math.isfinite(cap):
            out[name] = per_second / cap
    return out
