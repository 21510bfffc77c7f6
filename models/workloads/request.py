"""A generic request workload: how requests arrive and what each one demands.

A request is an ordered list of demands (CPU cycles, memory traffic, an I/O, network messages
in and out), each a fixed amount (``dist = "const"``) or exponential with that mean
(``dist = "exp"``). Arrivals are open (Poisson at ``rate``) or closed (``clients`` that each wait
for their request, then think).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from virtsim.models.demands import Demand, KernelEvent
from virtsim.models.quantities import Bytes, Cycles, PerSecond, Seconds
from virtsim.models.schema import StrictModel
from virtsim.sim.rng import IndexedStreams
from virtsim.sim.routes import BatchArrivals, ClosedArrivals, OpenArrivals

__all__ = ["HOST_LOCK", "LOCK", "ClosedSpec", "DemandSpec", "OpenSpec", "RequestWorkload", "host_lock_station",
           "lock_name", "lock_station"]


class OpenSpec(StrictModel):
    """Poisson arrivals at ``rate`` (``"200/s"``)."""

    kind: Literal["open"] = "open"
    rate_per_s: PerSecond = Field(alias="rate", gt=0)

    def arrivals(self) -> OpenArrivals:
        """The engine's :class:`~virtsim.sim.routes.OpenArrivals` at ``rate_per_s`` (req/s)."""
        return OpenArrivals(self.rate_per_s)


class ClosedSpec(StrictModel):
    """``clients`` closed-loop clients with exponential think time of mean ``think``."""

    kind: Literal["closed"] = "closed"
    clients: int = Field(ge=1, le=100_000)  # each client is a process in the engine
    think_s: Seconds = Field(0.0, alias="think")

    def arrivals(self) -> ClosedArrivals:
        """The engine's :class:`~virtsim.sim.routes.ClosedArrivals`: ``clients``, mean think time ``think_s`` (s)."""
        return ClosedArrivals(self.clients, self.think_s)


class BatchSpec(StrictModel):
    """``count`` requests all at once at time ``at`` (every guest booting together)."""

    kind: Literal["batch"] = "batch"
    count: int = Field(ge=1, le=1_000_000)  # each request is a record and a process in the engine
    at_s: Seconds = Field(0.0, alias="at")

    def arrivals(self) -> BatchArrivals:
        """The engine's :class:`~virtsim.sim.routes.BatchArrivals`: ``count`` requests at ``at_s`` (s)."""
        return BatchArrivals(self.count, self.at_s)


class _DemandBase(StrictModel):
    """Base of the demand specs: how a demand's amount varies between requests.

    ``dist``: ``"const"`` (every request the mean), ``"exp"`` (exponential with that mean) or
    ``"lognormal"`` (with that median and ``sigma`` the spread of its logarithm).
    """
    dist: Literal["const", "exp", "lognormal"] = "const"
    sigma: float = Field(0.25, gt=0, le=3)  # of the log, for dist = "lognormal"

    @model_validator(mode="after")
    def _sigma_for_lognormal(self) -> Self:
        """Refuse a ``sigma`` other than the default unless ``dist = "lognormal"``, which alone
        reads it (review 35 F8: it was accepted and ignored); the default passes, so a dumped
        demand reads back."""
        if self.dist != "lognormal" and self.sigma != type(self).model_fields["sigma"].default:
            raise ValueError(f"sigma is the spread of dist = \"lognormal\"; with dist = {self.dist!r} it means "
                             "nothing: remove it, or set dist = \"lognormal\"")
        return self

    def draw(self, mean: float, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` amounts for a demand of mean ``mean`` (its median for ``"lognormal"``), in the demand's unit."""
        if self.dist == "exp":
            return rng.exponential(mean, n)
        if self.dist == "lognormal" and mean > 0:  # median-preserving: ``mean`` is the median (p50)
            return rng.lognormal(np.log(mean), self.sigma, n)
        return np.full(n, float(mean))


class CpuDemand(_DemandBase):
    """CPU work of the server's thread: ``cycles`` (cycles) per request. ``simd_flops_per_cycle``:
    the work is vector code written for a SIMD unit of that many double-precision flops per
    cycle (AVX on Sandy Bridge: 8), so it slows down where a guest is shown fewer (0: not
    vector-bound, the default)."""
    kind: Literal["cpu"]
    cycles: Cycles
    simd_flops_per_cycle: float = Field(0.0, ge=0, le=1024)


class MemDemand(_DemandBase):
    """Memory traffic: ``seq`` streams (on a core, in a bandwidth domain), ``random`` stalls the core.
    ``size`` (bytes): the traffic per request; ``huge_pages``: 2 MiB pages instead of 4 KiB.
    ``numa_nodes``: the memory is bound to that many NUMA nodes (``numactl --membind``); unset,
    it is interleaved over all of the host's nodes."""

    kind: Literal["mem"]
    size_bytes: Bytes = Field(alias="size")
    pattern: Literal["seq", "random"] = "seq"
    huge_pages: bool = False
    numa_nodes: int | None = Field(None, ge=1, le=64)

    @model_validator(mode="after")
    def _huge_pages_for_random(self) -> MemDemand:
        """Refuse ``huge_pages`` on a ``seq`` stream: pages change the TLB misses of random
        access only, and it was accepted and ignored (review 35 F8)."""
        if self.huge_pages and self.pattern == "seq":
            raise ValueError("huge_pages changes only random access (its TLB misses), not a seq stream: remove it, "
                             "or use pattern = \"random\"")
        return self


class IoDemand(_DemandBase):
    """One I/O of ``size`` bytes: ``op`` a read or a write, ``pattern`` seq or random (which of the
    device's access latencies it takes). With ``mix = [lo, hi]`` a request does it only if its mix
    draw u (one uniform per request, shared by all its demands) has lo <= u < hi: two I/O demands
    with [0, 0.7] and [0.7, 1] make a 70/30 read/write mix. With ``probability`` p a request does
    it with chance p drawn on its own, independently of every other demand (a page that misses the
    cache): k such demands give a binomial number of I/Os per request."""

    kind: Literal["io"]
    size_bytes: Bytes = Field(alias="size")
    op: Literal["read", "write"] = "read"
    pattern: Literal["seq", "random"] = "random"
    mix: tuple[float, float] = (0.0, 1.0)
    probability: float = Field(1.0, ge=0, le=1)

    @field_validator("mix")
    @classmethod
    def _mix_in_order(cls, mix: tuple[float, float]) -> tuple[float, float]:
        """Refuse a ``mix`` unless 0 <= lo <= hi <= 1."""
        lo, hi = mix
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"mix = [{lo:g}, {hi:g}] must satisfy 0 <= lo <= hi <= 1 (the share of requests "
                             "whose draw falls in [lo, hi) make this I/O)")
        return mix


class NetDemand(_DemandBase):
    """A message of ``size`` bytes into the server (``net_in``) or out of it (``net_out``), over the wire."""

    kind: Literal["net_in", "net_out"]
    size_bytes: Bytes = Field(alias="size")


class WakeDemand(_DemandBase):
    """The server's thread blocked for what came before (a message, an I/O): if it slept, it runs
    again after the CPU's wake-up delay plus ``extra``; if it was busy, at once."""

    kind: Literal["wake"]
    extra_s: Seconds = Field(0.0, alias="extra")


class DelayDemand(_DemandBase):
    """A wait of ``duration`` (s) that holds no resource (a call to a service outside the model)."""

    kind: Literal["delay"]
    duration_s: Seconds = Field(alias="duration")


class ClientCpuDemand(_DemandBase):
    """Work of the load generator (on the client machine) for this request: ``cycles`` (cycles)."""

    kind: Literal["client_cpu"]
    cycles: Cycles


class ClientNetDemand(_DemandBase):
    """The load generator sends a message of ``size`` bytes (``client_send``) or receives one (``client_recv``)."""

    kind: Literal["client_send", "client_recv"]
    size_bytes: Bytes = Field(alias="size")


class KernelDemand(_DemandBase):
    """``count`` events of the kernel the application runs on (system calls, page faults, page-table
    writes, ...), each ``native_cycles`` of the thread's CPU on bare metal. A virtualization layer
    adds its own cost to each event it must intercept (or, for an emulated device's ``port_io``,
    replaces the device access with its emulation)."""

    kind: Literal["kernel"]
    event: KernelEvent
    count: float = Field(1.0, ge=0, le=1e12)
    native_cycles: Cycles = 0.0


class LockDemand(_DemandBase):
    """The server's global lock ``name`` (a mutex of the whole server, such as InnoDB's
    ``trx_sys`` mutex): ``acquire`` waits until no other request of this guest holds it, in
    the order they came; the demands up to the ``release`` are done holding it (a critical
    section: its CPU work is slowed like any other when the cores are shared, so a holder
    that must wait for a core keeps the others waiting). A waiter sleeps: it costs no CPU.

    ``scope = "host"``: a lock of the physical host's kernel or of a host-wide daemon
    (``rtnl_mutex``, a container runtime's own), one for every guest on the host that takes a
    host lock of that name, not one per guest, whatever stack the guest runs in (a lock of a
    VM's own kernel is that guest's: the default scope)."""

    kind: Literal["lock"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    action: Literal["acquire", "release"]
    scope: Literal["server", "host"] = "server"

    @model_validator(mode="before")
    @classmethod
    def _no_amount(cls, data: Any) -> Any:
        """Refuse a ``dist`` or ``sigma`` other than the defaults: a lock has no amount to vary
        (the defaults pass, so a dumped scenario reads back)."""
        if isinstance(data, dict) and (data.get("dist", "const") != "const" or data.get("sigma", 0.25) != 0.25):
            raise ValueError("a lock demand has no amount: dist and sigma mean nothing for it; remove them "
                             "(vary the work inside the lock instead)")
        return data


AnyDemand = (CpuDemand | MemDemand | IoDemand | NetDemand | WakeDemand | DelayDemand | ClientCpuDemand
             | ClientNetDemand | KernelDemand | LockDemand)
DemandSpec = Annotated[AnyDemand, Field(discriminator="kind")]


def _mean(spec: AnyDemand) -> float:
    """A demand spec's mean amount in its unit: cycles, seconds, events or bytes."""
    if isinstance(spec, CpuDemand | ClientCpuDemand):
        return spec.cycles
    if isinstance(spec, WakeDemand):
        return spec.extra_s
    if isinstance(spec, DelayDemand):
        return spec.duration_s
    if isinstance(spec, KernelDemand):
        return spec.count
    if isinstance(spec, LockDemand):
        return 1.0  # every request takes the lock
    return spec.size_bytes


def _demand(spec: AnyDemand, amount: np.ndarray) -> Demand:
    """The :class:`~virtsim.models.demands.Demand` a spec makes, with ``amount`` per request."""
    if isinstance(spec, MemDemand):
        return Demand("mem", amount, pattern=spec.pattern, huge_pages=spec.huge_pages,
                      numa_nodes=spec.numa_nodes or 0)
    if isinstance(spec, IoDemand):
        return Demand("io", amount, op=spec.op, pattern=spec.pattern)
    if isinstance(spec, WakeDemand):
        return Demand("wake", amount, when_idle=None)
    if isinstance(spec, KernelDemand):
        return Demand("kernel", amount, event=spec.event, native_cycles=spec.native_cycles)
    if isinstance(spec, LockDemand):
        station = lock_station("", spec.name) if spec.scope == "server" else host_lock_station(spec.name)
        return Demand("station", np.ones_like(amount), station=station, action=spec.action)
    if isinstance(spec, CpuDemand):
        return Demand("cpu", amount, simd_flops_per_cycle=spec.simd_flops_per_cycle)
    return Demand(spec.kind, amount)


LOCK = "lock"
"""The kind of a guest's server lock station (``lock:GUEST:NAME``)."""
HOST_LOCK = "hostlock"
"""The kind of a host-wide lock station (``hostlock:NAME``)."""


def lock_station(guest: str, name: str) -> str:
    """The station of ``guest``'s server lock ``name`` (each guest runs its own server)."""
    return f"{LOCK}:{guest}:{name}"


def host_lock_station(name: str) -> str:
    """The station of the host-wide lock ``name`` (one for all the host's guests)."""
    return f"{HOST_LOCK}:{name}"


def lock_name(station: str) -> str | None:
    """The lock's own name in a station :func:`lock_station` or :func:`host_lock_station` named
    (``lock:g-1:trx_sys`` gives ``trx_sys``); ``None`` for any other station."""
    kind, _, rest = station.partition(":")
    if kind not in (LOCK, HOST_LOCK) or not rest:
        return None
    return rest.rsplit(":", 1)[-1]


class RequestWorkload(StrictModel):
    """How requests arrive and the demands each makes, in order, and who serves them.

    The server's concurrency model: ``threads = k`` runs requests on a pool of k threads in
    FIFO order (an event loop is 1); ``clients_per_thread = m`` gives each m closed-loop clients
    a thread of their own (a fio job and its iodepth); neither: a thread per connection (closed
    loop) or per request (open loop). ``client_threads``: the load generator's threads (1 for
    redis-benchmark or netperf; unset: one per connection, as sysbench).
    """

    kind: Literal["request"] = "request"
    arrivals: OpenSpec | ClosedSpec | BatchSpec = Field(discriminator="kind")
    demands: list[DemandSpec] = Field(min_length=1, max_length=10_000)
    threads: int | None = Field(None, ge=1, le=100_000)
    clients_per_thread: int | None = Field(None, ge=1, le=100_000)
    client_threads: int | None = Field(None, ge=1, le=100_000)
    peer: Literal["remote", "host"] = "remote"

    @model_validator(mode="after")
    def _one_thread_model(self) -> RequestWorkload:
        """Refuse ``threads`` and ``clients_per_thread`` together, and ``clients_per_thread``
        without closed-loop clients to group (raises ``ValueError``)."""
        if self.threads is not None and self.clients_per_thread is not None:
            raise ValueError("give threads (a shared pool) or clients_per_thread (a thread per group of "
                             "clients), not both")
        if self.clients_per_thread is not None and not isinstance(self.arrivals, ClosedSpec):
            # review 39 F4: accepted, it made the server one FIFO thread whatever its value
            raise ValueError(f"clients_per_thread groups closed-loop clients, and arrivals.kind = "
                             f"{self.arrivals.kind!r} has none; give threads = N for a pool serving these "
                             "requests, or use closed arrivals")
        return self

    @model_validator(mode="after")
    def _locks_paired(self) -> RequestWorkload:
        """Refuse a lock released without being held, taken twice, or still held at the end (raises ``ValueError``)."""
        held: set[str] = set()
        for i, d in enumerate(self.demands):
            if not isinstance(d, LockDemand):
                continue
            if d.action == "acquire" and d.name in held:
                raise ValueError(f"demands[{i}]: lock {d.name!r} is acquired again while held (release it first)")
            if d.action == "release" and d.name not in held:
                raise ValueError(f"demands[{i}]: lock {d.name!r} is released but not held (acquire it first)")
            (held.add if d.action == "acquire" else held.discard)(d.name)
        if held:
            raise ValueError(f"lock {sorted(held)[0]!r} is still held when the request ends: release it")
        return self

    def lock_names(self, scope: Literal["server", "host"] = "server") -> list[str]:
        """The locks of ``scope`` the requests take (the server's own, or host-wide), in order of
        first use."""
        return list(dict.fromkeys(d.name for d in self.demands if isinstance(d, LockDemand) and d.scope == scope))

    def request_workload(self) -> RequestWorkload:
        """Itself: a generic workload is already a request workload."""
        return self

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """Metrics in the units of the real tool (none for a generic workload)."""
        return []

    @property
    def _demand_plans(self) -> list[tuple[AnyDemand, float, tuple[float, float] | None, float, Demand]]:
        """Per demand, worked out once for every sampler: its spec, mean, mix window (an I/O's, if
        not the whole range), probability, and the demand it makes (a block only puts its amounts
        in): an oltp transaction has a hundred demands, and every closed client has a sampler.
        Kept with the demands list it was made from, so a copy with other demands (``model_copy``
        carries the instance's dict) works them out again (review 29)."""
        kept = self.__dict__.get("_plans")
        if kept is not None and kept[0] is self.demands:
            return kept[1]
        plans = []
        for spec in self.demands:
            mix = spec.mix if isinstance(spec, IoDemand) and spec.mix != (0.0, 1.0) else None
            probability = spec.probability if isinstance(spec, IoDemand) else 1.0
            mean = _mean(spec)
            plans.append((spec, mean, mix, probability, _demand(spec, np.full(1, float(mean)))))
        self.__dict__["_plans"] = (self.demands, plans)  # beside the fields: a frozen model's cache
        return plans

    def sampler(self, seed: np.random.SeedSequence) -> Callable[[int], list[Demand]]:
        """Draws the demands of the next ``n`` requests; one sequential stream per demand."""
        demand_seed, mix_seed = seed.spawn(2)
        # Two streams per demand, its amount's and its probability's: one stream drawn for both
        # would hand out numbers that depend on how many requests a block holds. They are
        # demand_seed's children 0..n-1 and n..2n-1 (as two spawn(n) calls number them), each made
        # on its first draw: a constant amount or a certain demand draws nothing, and making 224
        # generators for an oltp transaction cost every closed client 14 ms.
        streams = IndexedStreams(demand_seed)
        n_demands = len(self.demands)
        rngs = [streams.at(i) for i in range(n_demands)]
        coins = [streams.at(n_demands + i) for i in range(n_demands)]
        mix_rng = np.random.default_rng(mix_seed)
        plans = self._demand_plans
        mixed = any(plan[2] is not None for plan in plans)

        # read-only amounts of the constant demands for blocks of the last block's size, by mean:
        # blocks of one size repeat (a closed client's), and only the last size is kept
        constant: dict[float, np.ndarray] = {}

        def sample(n: int) -> list[Demand]:
            u = mix_rng.random(n) if mixed else None
            out = []
            if constant and len(next(iter(constant.values()))) != n:
                constant.clear()
            for (spec, mean, mix, probability, template), rng, coin in zip(plans, rngs, coins, strict=True):
                if spec.dist == "const":  # the same n numbers each time: made once, shared read-only
                    amount = constant.get(mean)
                    if amount is None:
                        amount = constant[mean] = np.full(n, float(mean))
                        amount.flags.writeable = False
                else:
                    amount = spec.draw(mean, rng, n)
                if u is not None and mix is not None:
                    amount = amount * ((u >= mix[0]) & (u < mix[1]))
                if probability < 1.0:
                    amount = amount * (coin.random(n) < probability)
                out.append(template.with_amount(amount))
            return out

        return sample
