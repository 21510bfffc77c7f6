"""Requests per second through the DES and the vector engine on the same two-station FIFO route.

    python benchmarks/vector.py [--requests N] [--max-scale 7]

Both engines run the same 200,000 requests (M/M/1 -> M/M/1, load 0.8 at each station) in one
process; the ratio is printed. Target (issue 5): the vector engine at least 100x faster. Then the
vector engine's time from 10^4 to 10^max-scale requests, to show it grows linearly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.routes import OpenArrivals, Slot, Source, StationSpec
from virtsim.sim.vector import simulate_vector

RATE, MEAN_WORK = 0.8, 1.0
STATIONS = [StationSpec("a", "fifo"), StationSpec("b", "fifo")]


def _source() -> Source:
    def factory(seed: np.random.SeedSequence):
        rng = np.random.default_rng(seed)
        return lambda n: rng.exponential(MEAN_WORK, (n, 2))

    return Source("q", (Slot("a", "app"), Slot("b", "app")), OpenArrivals(RATE), factory)


def timed(engine, requests: int) -> tuple[float, int]:
    control = RunControl(duration_s=requests / RATE, seed=1)
    t0 = time.perf_counter()
    result = engine(STATIONS, [_source()], control)
    return time.perf_counter() - t0, result.logs["q"].n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--max-scale", type=int, default=7)
    args = parser.parse_args()
    des_s, n_des = timed(simulate, args.requests)
    vec_s, n_vec = min(timed(simulate_vector, args.requests) for _ in range(3))
    print(f"DES engine    : {n_des / des_s:14,.0f} requests/s ({n_des:,} requests, {des_s:.2f} s)")
    print(f"vector engine : {n_vec / vec_s:14,.0f} requests/s ({n_vec:,} requests, {vec_s * 1e3:.1f} ms)")
    print(f"ratio vector/DES: {des_s / vec_s * n_vec / n_des:.0f}x  (target >= 100x)")
    print("vector engine scaling:")
    previous = None
    for scale in range(4, args.max_scale + 1):
        seconds, n = timed(simulate_vector, 10**scale)
        growth = f"  x{seconds / previous:.1f} for 10x requests" if previous else ""
        print(f"  {n:>12,} requests: {seconds:8.3f} s  ({n / seconds:12,.0f} requests/s){growth}")
        previous = seconds


if __name__ == "__main__":
    main()
