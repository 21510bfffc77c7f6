"""A generic request workload: how requests arrive and what each one demands.

A request is an ordered list of demands (CPU cycles, memory traffic, an I/O, network messages
in and out), each a fixed amount (``dist = "const"``) or exponential with that mean
(``dist = "exp"``). Arrivals are open (Poisson at ``rate``) or closed (``clients`` that each wait
for their request, then think).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from models.demands import Demand
from models.quantities import Bytes, Cycles, PerSecond, Seconds
from models.schema import StrictModel
from sim.routes import BatchArrivals, ClosedArrivals, OpenArrivals

__all__ = ["ClosedSpec", "DemandSpec", "OpenSpec", "RequestWorkload"]


class OpenSpec(StrictModel):
    """Poisson arrivals at ``rate`` (``"200/s"``)."""

    kind: Literal["open"] = "open"
    rate_per_s: PerSecond = Field(alias="rate", gt=0)

    def arrivals(self) -> OpenArrivals:
        return OpenArrivals(self.rate_per_s)


class ClosedSpec(StrictModel):
    """``clients`` closed-loop clients with exponential think time of mean ``think``."""

    kind: Literal["closed"] = "closed"
    clients: int = Field(ge=1, le=100_000)  # each client is a process in the engine
    think_s: Seconds = Field(0.0, alias="think")

    def arrivals(self) -> ClosedArrivals:
        return ClosedArrivals(self.clients, self.think_s)


class BatchSpec(StrictModel):
    """``count`` requests all at once at time ``at`` (every guest booting together)."""

    kind: Literal["batch"] = "batch"
    count: int = Field(ge=1)
    at_s: Seconds = Field(0.0, alias="at")

    def arrivals(self) -> BatchArrivals:
        return BatchArrivals(self.count, self.at_s)


class _DemandBase(StrictModel):
    dist: Literal["const", "exp", "lognormal"] = "const"
    sigma: float = Field(0.25, gt=0, le=3)  # of the log, for dist = "lognormal"

    def draw(self, mean: float, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.dist == "exp":
            return rng.exponential(mean, n)
        if self.dist == "lognormal" and mean > 0:  # median-preserving: ``mean`` is the median (p50)
            return rng.lognormal(np.log(mean), self.sigma, n)
        return np.full(n, float(mean))


class CpuDemand(_DemandBase):
    kind: Literal["cpu"]
    cycles: Cycles


class MemDemand(_DemandBase):
    kind: Literal["mem"]
    size_bytes: Bytes = Field(alias="size")
    pattern: Literal["seq", "random"] = "seq"
    huge_pages: bool = False


class IoDemand(_DemandBase):
    """One I/O. With ``mix = [lo, hi]`` a request does it only if its mix draw u (one uniform per
    request, shared by all its demands) has lo <= u < hi: two I/O demands with [0, 0.7] and
    [0.7, 1] make a 70/30 read/write mix."""

    kind: Literal["io"]
    size_bytes: Bytes = Field(alias="size")
    op: Literal["read", "write"] = "read"
    pattern: Literal["seq", "random"] = "random"
    mix: tuple[float, float] = (0.0, 1.0)


class NetDemand(_DemandBase):
    kind: Literal["net_in", "net_out"]
    size_bytes: Bytes = Field(alias="size")


DemandSpec = Annotated[CpuDemand | MemDemand | IoDemand | NetDemand, Field(discriminator="kind")]


def _demand(spec: CpuDemand | MemDemand | IoDemand | NetDemand, amount: np.ndarray) -> Demand:
    if isinstance(spec, CpuDemand):
        return Demand("cpu", amount)
    if isinstance(spec, MemDemand):
        return Demand("mem", amount, pattern=spec.pattern, huge_pages=spec.huge_pages)
    if isinstance(spec, IoDemand):
        return Demand("io", amount, op=spec.op, pattern=spec.pattern)
    return Demand(spec.kind, amount)


class RequestWorkload(StrictModel):
    """How requests arrive and the demands each makes, in order.

    ``threads``: the server runs its requests on at most this many threads (a single-threaded
    event loop is 1, a thread pool its size): the guest's requests share at most ``threads``
    cores. ``None``: as many as there are requests.
    """

    kind: Literal["request"] = "request"
    arrivals: OpenSpec | ClosedSpec | BatchSpec = Field(discriminator="kind")
    demands: list[DemandSpec] = Field(min_length=1)
    threads: int | None = Field(None, ge=1)

    def request_workload(self) -> RequestWorkload:
        return self

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """Metrics in the units of the real tool (none for a generic workload)."""
        return []

    def sampler(self, seed: np.random.SeedSequence) -> Callable[[int], list[Demand]]:
        """Draws the demands of the next ``n`` requests; one sequential stream per demand."""
        demand_seed, mix_seed = seed.spawn(2)
        rngs = [np.random.default_rng(s) for s in demand_seed.spawn(len(self.demands))]
        mix_rng = np.random.default_rng(mix_seed)
        mixed = any(isinstance(s, IoDemand) and s.mix != (0.0, 1.0) for s in self.demands)

        def sample(n: int) -> list[Demand]:
            u = mix_rng.random(n) if mixed else None
            out = []
            for spec, rng in zip(self.demands, rngs, strict=True):
                mean = spec.cycles if isinstance(spec, CpuDemand) else spec.size_bytes
                amount = spec.draw(mean, rng, n)
                if u is not None and isinstance(spec, IoDemand) and spec.mix != (0.0, 1.0):
                    amount = amount * ((u >= spec.mix[0]) & (u < spec.mix[1]))
                out.append(_demand(spec, amount))
            return out

        return sample
