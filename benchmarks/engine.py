"""Stage visits per second: a plain SimPy M/M/1 loop against the same queue in virtsim's engine.

    python benchmarks/engine.py [--customers N]

Both run the same M/M/1 (arrival rate 0.9, service rate 1) for the same number of customers in
one process, one after the other, three times each; the best time of each is reported with the
ratio. Target (issue 2): virtsim at least half the speed of the plain loop (ratio >= 0.5).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

from virtsim.sim.control import RunControl
from virtsim.sim.engine import simulate
from virtsim.sim.routes import OpenArrivals, Slot, Source, StationSpec

LAM, MU = 0.9, 1.0


def plain_simpy(customers: int, seed: int) -> int:
    """The textbook SimPy M/M/1: a source process, one process per customer, a Resource."""
    rng = np.random.default_rng(seed)
    gaps, services = rng.exponential(1 / LAM, customers), rng.exponential(1 / MU, customers)
    env = simpy.Environment()
    server = simpy.Resource(env, 1)
    done = [0]

    def customer(service: float):
        with server.request() as req:
            yield req
            yield env.timeout(service)
        done[0] += 1

    def source():
        for i in range(customers):
            yield env.timeout(gaps[i])
            env.process(customer(services[i]))

    env.process(source())
    env.run()
    return done[0]


def virtsim_engine(customers: int, seed: int) -> int:
    """The same queue as a one-slot route through a FIFO station in virtsim's engine."""

    def factory(seq: np.random.SeedSequence):
        rng = np.random.default_rng(seq)
        return lambda n: rng.exponential(1 / MU, (n, 1))

    source = Source("q", (Slot("s", "app"),), OpenArrivals(LAM), factory)
    result = simulate([StationSpec("s", "fifo", 1)], [source], RunControl(customers / LAM, 0.0, 1, seed))
    return int(np.sum(~np.isnan(result.logs["q"].finish_s)))


def best_rate(fn, customers: int, repeats: int = 3) -> tuple[float, int]:
    best = float("inf")
    visits = 0
    for r in range(repeats):
        t0 = time.perf_counter()
        visits = fn(customers, r)
        best = min(best, time.perf_counter() - t0)
    return visits / best, visits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    args = parser.parse_args()
    plain, n_plain = best_rate(plain_simpy, args.customers)
    ours, n_ours = best_rate(virtsim_engine, args.customers)
    print(f"plain SimPy M/M/1 : {plain:12,.0f} stage visits/s ({n_plain:,} visits)")
    print(f"virtsim engine    : {ours:12,.0f} stage visits/s ({n_ours:,} visits)")
    print(f"ratio virtsim/plain: {ours / plain:.2f}  (target >= 0.50)")


if __name__ == "__main__":
    main()
