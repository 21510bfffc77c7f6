"""Named workloads with the parameters a user of the real tool sets, lowered to requests.

Each is a closed or open loop of requests whose demands are the mechanism of the benchmark:

- ``linpack``: ``threads`` workers, each request a block of ``block_flops`` floating-point work
  at ``flops_per_cycle`` x ``efficiency`` per core cycle. Reports GFLOPS.
- ``stream``: ``threads`` workers streaming ``block_bytes`` through memory. Reports GB/s.
- ``randomaccess``: ``threads`` workers doing ``block_updates`` random 8-byte updates (TLB-miss
  bound on 4 KiB pages). Reports GUPS.
- ``fio``: ``jobs`` x ``iodepth`` I/Os in flight (a closed loop with no think time), ``rw`` one of
  read, write, randread, randwrite, randrw (``rwmixread`` percent reads), block size ``bs``.
  Reports IOPS and MB/s.
- ``netperf-rr``: one transaction in flight of ``request``/``response`` bytes. Reports the
  round-trip time.
- ``stream-tcp``: bulk transfer of ``message`` bytes with ``window`` messages in flight (the TCP
  window). Reports Mbit/s.
- ``kv-store``: a Redis-like single-threaded server; ``connections`` closed-loop clients over the
  network, GET or SET of ``value`` bytes. Reports requests/s.
- ``oltp``: sysbench oltp_read_only with ``threads`` connections against a MySQL-like server
  (a thread per connection), 16 statements per transaction, each a round trip. Reports
  transactions/s.
- ``web``: an open-loop service, Poisson arrivals at ``rate``, each request network + CPU + disk.
- ``nanobench``: one kernel event in a loop (Adams & Agesen's FrobOS nanobenchmarks: a page
  fault, a divide error, a port read, a page-table write, a system call). Reports ns per event.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from virtsim.models.demands import KernelEvent
from virtsim.models.quantities import Bytes, Cycles, PerSecond, Seconds
from virtsim.models.schema import StrictModel
from virtsim.models.workloads.request import RequestWorkload

__all__ = ["KV_LOOP_WAKE_S", "NAMED_WORKLOADS", "NANO_EVENTS", "NANO_NATIVE_CYCLES", "WorkloadSpec"]

KV_LOOP_WAKE_S = 20.0e-6  # published.csv felter-redis-get-1c-native: see KvStore


class _Named(StrictModel):
    """Base of the named workloads: each lowers to a :class:`RequestWorkload` and reports its tool's metrics."""
    def request_workload(self) -> RequestWorkload:
        """The generic request workload this benchmark is (arrivals, demands, thread model)."""
        raise NotImplementedError

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """The tool's own metrics from a run's throughput (req/s) and mean latency (s), as (name, value, unit)."""
        raise NotImplementedError

    def _closed(self, clients: int, demands: list[dict[str, Any]], threads: int | None = None,
                think_s: float = 0.0, **model: int | str | None) -> RequestWorkload:
        """A closed-loop workload of ``clients`` clients with exponential think time of mean ``think_s`` (s)."""
        return RequestWorkload.model_validate(
            {"arrivals": {"kind": "closed", "clients": clients, "think": think_s}, "demands": demands,
             "threads": threads, **model}
        )

    def _open(self, rate_per_s: float, demands: list[dict[str, Any]], threads: int | None = None) -> RequestWorkload:
        """Poisson arrivals at ``rate_per_s`` (1/s) from many clients elsewhere: no load
        generator's thread limits them, and each still costs its client work on the client machine."""
        return RequestWorkload.model_validate(
            {"arrivals": {"kind": "open", "rate": rate_per_s}, "demands": demands, "threads": threads})


def _rate_or_clients(model: BaseModel, clients_field: str) -> None:
    """A named workload is driven either by a rate (open loop) or by its closed-loop clients."""
    # The clients' field is None unless written (its count then comes from the model), so a
    # dumped and reloaded model still tells "not given" from "given as the default" (review 35 F8)
    if getattr(model, "rate_per_s", None) is not None and getattr(model, clients_field) is not None:
        raise ValueError(f"give either rate (open-loop arrivals) or {clients_field} (closed-loop clients), not both")


class Linpack(_Named):
    """HPL-like dense linear algebra."""

    kind: Literal["linpack"]
    threads: int = Field(16, ge=1, le=100_000)  # each a closed client of the engine
    block_flops: float = Field(2e9, gt=0)
    flops_per_cycle: float = Field(8.0, gt=0)  # AVX double precision on Sandy Bridge
    efficiency: float = Field(0.733, gt=0, le=1)  # published.csv felter-linpack-native

    def request_workload(self) -> RequestWorkload:
        """``threads`` clients, each request ``block_flops / (flops_per_cycle x efficiency)`` CPU
        cycles of vector code ``flops_per_cycle`` wide (a guest shown a narrower SIMD unit takes longer)."""
        cycles = self.block_flops / (self.flops_per_cycle * self.efficiency)
        return self._closed(self.threads, [{"kind": "cpu", "cycles": cycles,
                                             "simd_flops_per_cycle": self.flops_per_cycle}])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``gflops``: floating-point operations per second, in GFLOPS (1e9/s)."""
        return [("gflops", throughput_rps * self.block_flops / 1e9, "GFLOPS")]


class Stream(_Named):
    """STREAM triad: sequential memory bandwidth. ``numa_nodes``: the run is bound to that many
    NUMA nodes (``numactl --membind``, Felter's "one socket" is 1); unset: interleaved over all."""

    kind: Literal["stream"]
    threads: int = Field(16, ge=1, le=100_000)  # each a closed client of the engine
    block_bytes: Bytes = Field(64 * 2**20, gt=0)
    numa_nodes: int | None = Field(None, ge=1, le=64)

    def request_workload(self) -> RequestWorkload:
        """``threads`` clients, each request a sequential memory transfer of ``block_bytes`` bytes."""
        demand: dict[str, Any] = {"kind": "mem", "size": self.block_bytes, "pattern": "seq"}
        if self.numa_nodes is not None:
            demand["numa_nodes"] = self.numa_nodes
        return self._closed(self.threads, [demand])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``bandwidth_GBps``: memory bandwidth in GB/s (1e9 bytes/s)."""
        return [("bandwidth_GBps", throughput_rps * self.block_bytes / 1e9, "GB/s")]


class RandomAccess(_Named):
    """HPCC RandomAccess (GUPS): random read-modify-write of 8-byte words."""

    kind: Literal["randomaccess"]
    threads: int = Field(8, ge=1, le=100_000)  # each a closed client of the engine
    block_updates: int = Field(100_000, ge=1)
    huge_pages: bool = False

    def request_workload(self) -> RequestWorkload:
        """``threads`` clients, each request ``block_updates`` random 8-byte memory accesses."""
        size = self.block_updates * 8
        return self._closed(self.threads, [{"kind": "mem", "size": size, "pattern": "random",
                                            "huge_pages": self.huge_pages}])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``gups``: giga-updates per second (1e9 updates/s)."""
        return [("gups", throughput_rps * self.block_updates / 1e9, "GUPS")]


LIBAIO_IO_CYCLES = 5_080.0
"""CPU per I/O of libaio (submission, interrupt, completion): 608K IOPS per core in Axboe's io_uring
comparison table (as quoted in GitHub WyattJia/WyattJia#61; grade C) is 1.64 us, 5,080 cycles at
3.1 GHz. Half is charged at submission, half at completion."""


class Fio(_Named):
    """fio with libaio: ``jobs`` threads, each keeping ``iodepth`` I/Os in flight.

    Each job is a thread of its own: it submits (``submit_cycles``), the I/O goes to the device,
    the job is woken if it slept waiting, and reaps the completion (``complete_cycles``). One job
    can therefore run out of CPU before the device saturates.
    """

    kind: Literal["fio"]
    rw: Literal["read", "write", "randread", "randwrite", "randrw"] = "randread"
    rwmixread: float = Field(70.0, ge=0, le=100)
    bs: Bytes = Field(4096, gt=0, le=2**30)
    jobs: int = Field(1, ge=1, le=4096)
    iodepth: int = Field(1, ge=1, le=65_536)
    submit_cycles: Cycles = LIBAIO_IO_CYCLES / 2
    complete_cycles: Cycles = LIBAIO_IO_CYCLES / 2

    def request_workload(self) -> RequestWorkload:
        """``jobs x iodepth`` clients (``iodepth`` per job thread): submit, the I/O, wake, complete."""
        pattern = "seq" if self.rw in ("read", "write") else "random"
        if self.rw == "randrw":
            cut = self.rwmixread / 100
            ios: list[dict[str, Any]] = [
                {"kind": "io", "op": "read", "size": self.bs, "pattern": pattern, "mix": (0.0, cut)},
                {"kind": "io", "op": "write", "size": self.bs, "pattern": pattern, "mix": (cut, 1.0)}]
        else:
            op = "write" if "write" in self.rw else "read"
            ios = [{"kind": "io", "op": op, "size": self.bs, "pattern": pattern}]
        demands: list[dict[str, Any]] = [{"kind": "cpu", "cycles": self.submit_cycles}, *ios, {"kind": "wake"},
                   {"kind": "cpu", "cycles": self.complete_cycles}]
        return self._closed(self.jobs * self.iodepth, demands, clients_per_thread=self.iodepth)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``iops`` (I/Os per second), ``bandwidth_MBps`` (MB/s, 1e6 bytes/s) and ``latency_us`` (mean, us)."""
        return [("iops", throughput_rps, "IOPS"), ("bandwidth_MBps", throughput_rps * self.bs / 1e6, "MB/s"),
                ("latency_us", latency_mean_s * 1e6, "us")]


class NetperfRR(_Named):
    """netperf TCP_RR / UDP_RR: one transaction in flight between netperf (on the client machine)
    and netserver (a thread per connection in the guest)."""

    kind: Literal["netperf-rr"]
    request: Bytes = Field(100, le=2**30)
    response: Bytes = Field(200, le=2**30)
    server_cycles: Cycles = 0

    def request_workload(self) -> RequestWorkload:
        """One client, one thread: a round trip of ``request`` and ``response`` bytes."""
        return self._closed(1, _round_trip(self.request, self.server_cycles, self.response), client_threads=1)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``round_trip_us``: the mean transaction time, in us."""
        return [("round_trip_us", latency_mean_s * 1e6, "us")]


WORK_SIGMA = 0.25
"""Spread (of the logarithm) of a server's and a client's CPU work per request in the round-trip
workloads (kv-store, netperf-rr, oltp): lognormal around the parameter as its mean. Assumption
(work): real requests vary (cache misses, branch history, the allocator); p99 / p50 = 1.8. With
every cost constant, a closed loop locks into one phase, and the costs paid only when a thread is
idle made throughput zigzag by 5% as an exit cost rose (review 28 F3)."""


def _varied(cycles: float) -> dict[str, Any]:
    """``cycles`` of work per request as a demand's amount: lognormal with mean ``cycles``
    (median ``cycles / exp(WORK_SIGMA^2 / 2)``, as a lognormal demand takes its median)."""
    return {"cycles": cycles / math.exp(WORK_SIGMA**2 / 2), "dist": "lognormal", "sigma": WORK_SIGMA}


def _round_trip(request: float, server_cycles: float, response: float, client_cycles: float = 0.0,
                wake_extra_s: float = 0.0) -> list[dict[str, Any]]:
    """One request-response exchange: the client's work and send, the server's receive, wake-up,
    work and send, and the client's receive; the work varies by ``WORK_SIGMA``."""
    out: list[dict[str, Any]] = []
    if client_cycles:
        out.append({"kind": "client_cpu", **_varied(client_cycles)})
    return [*out, {"kind": "client_send", "size": request}, {"kind": "net_in", "size": request},
            {"kind": "wake", "extra": wake_extra_s}, {"kind": "cpu", **_varied(server_cycles)},
            {"kind": "net_out", "size": response}, {"kind": "client_recv", "size": response}]


class StreamTcp(_Named):
    """nuttcp/iperf: one TCP stream between a sender and a receiver thread, ``window`` messages in
    flight. ``direction = "in"``: the peer sends into the guest; ``"out"``: the guest sends to the
    peer. ``peer``: on a second machine (``"remote"``) or on the host itself (``"host"``: loopback
    for bare metal, a tap for a VM)."""

    kind: Literal["stream-tcp"]
    message: Bytes = Field(65536, gt=0, le=2**30)
    window: int = Field(8, ge=1, le=65_536)
    direction: Literal["in", "out"] = "in"
    peer: Literal["remote", "host"] = "remote"

    def request_workload(self) -> RequestWorkload:
        """``window`` clients, one server and one peer thread, each request a ``message`` in ``direction``."""
        if self.direction == "in":
            demands: list[dict[str, Any]] = [{"kind": "client_send", "size": self.message},
                                             {"kind": "net_in", "size": self.message}, {"kind": "wake"}]
        else:
            demands = [{"kind": "net_out", "size": self.message}, {"kind": "client_recv", "size": self.message}]
        return self._closed(self.window, demands, threads=1, client_threads=1, peer=self.peer)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``throughput_Mbps``: payload throughput in Mbit/s (1e6 bit/s)."""
        return [("throughput_Mbps", throughput_rps * self.message * 8 / 1e6, "Mbit/s")]


class KvStore(_Named):
    """A Redis-like server: one event-loop thread, driven by redis-benchmark (one event-loop thread
    on the client machine) over ``connections`` connections, one request in flight on each.

    ``op_cycles``: the server's work per request beyond the kernel's network paths: redis.io's
    benchmark page (grade B) has 123,602 GETs/s without pipelining on a Xeon E5520 at 2.27 GHz
    with the client on the same box: 8.09 us, 18,360 cycles per request on the server's thread,
    which on loopback also runs one transmit and one receive path (2 x 6,330 cycles, the network
    profile's): 5,700 cycles. The same page's pipelined figure (707,464/s: 3,200 cycles) is the
    command alone; the rest is the event loop's system calls. ``client_cycles``: redis-benchmark's
    own work per request, taken equal to the server's (assumption: the same event loop and
    parsing; the page notes the client can be the bottleneck on one box). ``loop_wake``: fitted
    to published.csv felter-redis-get-1c-native (see the profile's derivation in calibrate).
    """

    kind: Literal["kv-store"]
    connections: int | None = Field(None, ge=1, le=100_000)  # closed-loop clients: 1 unless given (or rate)
    op: Literal["get", "set"] = "get"
    value: Bytes = Field(50, le=512 * 2**20)
    key_bytes: Bytes = Field(20, le=2**20)
    op_cycles: Cycles = 5_700
    client_cycles: Cycles = 5_700
    loop_wake_s: Seconds = Field(KV_LOOP_WAKE_S, alias="loop_wake")
    # Open loop instead: requests at this rate from many clients (a service in a capacity plan).
    rate_per_s: PerSecond | None = Field(None, alias="rate", gt=0, le=10_000_000)

    @model_validator(mode="after")
    def _one_driver(self) -> KvStore:
        """Refuse ``rate`` with ``connections`` set other than its default (raises ``ValueError``)."""
        _rate_or_clients(self, "connections")
        return self

    @property
    def clients(self) -> int:
        """The closed-loop connections: ``connections``, 1 if not given."""
        return 1 if self.connections is None else self.connections

    def request_workload(self) -> RequestWorkload:
        """GET or SET round trips on one event-loop thread: Poisson at ``rate`` (req/s) if given, else from
        ``connections`` closed-loop clients on one client thread."""
        header = 30 + self.key_bytes
        request = header + (self.value if self.op == "set" else 0)
        response = 10 + (self.value if self.op == "get" else 0)
        demands = _round_trip(request, self.op_cycles, response, self.client_cycles, self.loop_wake_s)
        if self.rate_per_s is not None:
            return self._open(self.rate_per_s, demands, threads=1)  # still one event-loop thread
        return self._closed(self.clients, demands, threads=1, client_threads=1)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``requests_per_s``: GETs or SETs per second."""
        return [("requests_per_s", throughput_rps, "req/s")]


class Oltp(_Named):
    """sysbench oltp_read_only against a MySQL-like server.

    ``threads`` sysbench threads, each one connection with one transaction in flight; MySQL runs
    a thread per connection (``innodb_thread_concurrency = 0``: no limit; or ``thread_pool`` if
    set). A transaction is 16 statements, each its own round trip: BEGIN, 10 point selects, 4
    range selects, COMMIT (sysbench's oltp_read_only.lua; grade B). Per-statement server work from
    dimitrik.free.fr's MySQL 5.7 read-only results (grade C; see the field notes). A buffer-pool
    miss reads a page. Each transaction also holds the server's global transaction mutex
    (``trx_sys``, one lock for all connections) for ``trx_lock_cycles`` plus
    ``trx_lock_cycles_per_connection`` per connection: two thirds of it when it starts, a third
    at COMMIT; tiny for 5.7 (the default), a cap on throughput for 5.5 at many connections.
    """

    kind: Literal["oltp"]
    threads: int | None = Field(None, ge=1, le=100_000)  # closed-loop clients: 32 unless given (or rate)
    thread_pool: int | None = Field(None, ge=1, le=100_000)
    point_selects: int = Field(10, ge=0, le=1000)
    range_selects: int = Field(4, ge=0, le=1000)
    # 1.6M point selects/s on 72 Haswell-EX cores at 2.5 GHz with the client on the same host: 45 us,
    # 112k cycles per query, less two transmit and two receive paths (25.3k) and the client's share
    # (assumption: as much as a redis-benchmark request, 5.7k): 81k cycles.
    point_select_cycles: Cycles = 81_000
    # 14k mixed read-only queries/s per core (the same author's 1M QPS OLTP_RO run) is 178k cycles
    # per query, 147k on the server: 16 x 147k = 10 x 81k + 2 x 10k + 4 x range -> 382k.
    range_select_cycles: Cycles = 382_000
    trx_cycles: Cycles = 10_000  # assumption: BEGIN or COMMIT of a read-only transaction
    client_cycles: Cycles = 5_700  # assumption: sysbench's work per statement, as redis-benchmark's
    # CPU work per transaction under the server's global transaction mutex: two thirds when the
    # transaction starts and opens its read view (BEGIN and its first read), a third at COMMIT.
    # MySQL 5.7 keeps one short trx_sys mutex hold per BEGIN...COMMIT transaction, about 0.3 us
    # (grade C: read from the 5.7 source, no measurement), 750 cycles at 2.5 GHz: the default,
    # as the statement costs are 5.7's. MySQL 5.5 held kernel_mutex three times per transaction:
    # at most 6.06 us on 2 x X5670 at 2.93 GHz, 17,800 cycles (Percona, V. Tkachenko, Dec 2011:
    # Percona Server 5.5.17, autocommit primary-key selects, a transaction each, peak 164,884/s
    # at 32 threads with kernel_mutex the hot mutex; grade B); 5.6 with sysbench's plain BEGIN
    # (trx_sys mutex) about 4 us (grade C). For a 5.5 server set 12900 and 116 per connection
    # (the line below: 5.68 us at 32 threads, within the 6.06 us bound).
    trx_lock_cycles: Cycles = 750
    # Further work under the mutex per connection open: before 5.7 a read view is made by
    # scanning every active transaction with the mutex held. Percona's run above fell to 68,369/s
    # at 256 threads and 22,167/s at 1,024: 1/throughput = 4.41 us + 0.0397 us x threads (a line
    # through 256..1,024 threads), 116 cycles per connection at 2.93 GHz (grade B, as above; the
    # fall includes waiters' spinning, which is not modelled, so this is an upper bound). 5.7
    # lists only read-write transactions there: none in a read-only run, 0 the default.
    trx_lock_cycles_per_connection: Cycles = 0
    buffer_miss_ratio: float = Field(0.0, ge=0, le=1)  # Felter's 2M rows fit the 3 GB buffer pool
    page: Bytes = Field(16384, le=2**30)
    # Open loop instead: transactions at this rate from many clients, a server thread each (or
    # the thread pool's); a capacity plan's service.
    rate_per_s: PerSecond | None = Field(None, alias="rate", gt=0, le=1_000_000)

    @model_validator(mode="after")
    def _one_driver(self) -> Oltp:
        """Refuse ``rate`` with ``threads`` set other than its default, and a per-connection lock cost
        with ``rate`` but no ``thread_pool`` to count the connections (raises ``ValueError``)."""
        _rate_or_clients(self, "threads")
        if self.rate_per_s is not None and self.thread_pool is None and self.trx_lock_cycles_per_connection > 0:
            raise ValueError("trx_lock_cycles_per_connection with rate needs thread_pool: the server's connections "
                             "(its pool's threads) are what the read view scans")
        return self

    @property
    def clients(self) -> int:
        """The closed-loop sysbench threads: ``threads``, 32 if not given."""
        return 32 if self.threads is None else self.threads

    def request_workload(self) -> RequestWorkload:
        """Transactions of round trips (one per statement; a page read on a buffer miss): Poisson at
        ``rate`` (transactions/s) if given, else from ``threads`` closed-loop clients."""
        statements = ([self.trx_cycles] + [self.point_select_cycles] * self.point_selects
                      + [self.range_select_cycles] * self.range_selects + [self.trx_cycles])
        connections = self.clients if self.rate_per_s is None else (self.thread_pool or 0)
        lock = self.trx_lock_cycles + self.trx_lock_cycles_per_connection * connections
        held = [2 / 3 * lock] + [0.0] * (len(statements) - 2) + [lock / 3]
        demands: list[dict[str, Any]] = []
        for cycles, locked in zip(statements, held, strict=True):
            big = cycles == self.range_select_cycles
            exchange = _round_trip(150, cycles, 2000 if big else 200, self.client_cycles)
            if locked > 0:  # after the statement's own work, before its reply
                at = next(i for i, d in enumerate(exchange) if d["kind"] == "cpu") + 1
                exchange[at:at] = [{"kind": "lock", "name": "trx_sys", "action": "acquire"},
                                   {"kind": "cpu", "cycles": locked},
                                   {"kind": "lock", "name": "trx_sys", "action": "release"}]
            if self.buffer_miss_ratio > 0:
                miss = {"kind": "io", "op": "read", "size": self.page, "mix": (0.0, self.buffer_miss_ratio)}
                exchange = [*exchange[:4], miss, {"kind": "wake"}, *exchange[4:]]
            demands += exchange
        if self.rate_per_s is not None:
            return self._open(self.rate_per_s, demands, threads=self.thread_pool)
        return self._closed(self.clients, demands, threads=self.thread_pool)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``tps``: transactions per second."""
        return [("tps", throughput_rps, "transactions/s")]


class Web(_Named):
    """An open-loop web service: Poisson requests of network, CPU and a disk read, a thread each."""

    kind: Literal["web"]
    rate_per_s: PerSecond = Field(1000, alias="rate", gt=0, le=10_000_000)
    request_cycles: Cycles = 1_500_000
    read: Bytes = Field(4096, le=2**30)
    response: Bytes = Field(2048, le=2**30)

    def request_workload(self) -> RequestWorkload:
        """Poisson arrivals at ``rate`` (req/s), a thread per request: receive, CPU (exponential), a disk read, send."""
        demands = [{"kind": "net_in", "size": 300}, {"kind": "wake"},
                   {"kind": "cpu", "cycles": self.request_cycles, "dist": "exp"},
                   {"kind": "io", "op": "read", "size": self.read}, {"kind": "wake"},
                   {"kind": "net_out", "size": self.response}]
        return RequestWorkload.model_validate({"arrivals": {"kind": "open", "rate": self.rate_per_s},
                                               "demands": demands})

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``requests_per_s``: requests per second."""
        return [("requests_per_s", throughput_rps, "req/s")]


NANO_EVENTS: dict[str, KernelEvent] = {"pgfault": "page_fault", "divzero": "exception", "in-port80": "port_io",
                                        "ptemod": "pte_write", "syscall": "syscall"}
NANO_NATIVE_CYCLES = {"pgfault": 1093.0, "divzero": 889.0, "in-port80": 3209.0, "ptemod": 1.0, "syscall": 300.0}
"""Each nanobenchmark's native cycles on Adams & Agesen's Pentium 4 672 (FrobOS): published.csv
aa06-nano-pgfault-native, aa06-nano-divzero-native, aa06-nano-in-port80-native (a read of port
0x80 waits on the legacy bus); a page-table write is one store (the paper: "a single store"; 1
cycle); a system call's native round trip is not in the rows (assumption: 300 cycles for
sysenter/sysexit and a null handler; only the cost virtualization adds to it is compared)."""


class Nanobench(_Named):
    """One kernel event in a tight loop, ``batch`` per request on one thread (FrobOS's
    nanobenchmarks, Adams & Agesen 2006): ``pgfault`` (a page fault the handler resolves),
    ``divzero`` (a divide error), ``in-port80`` (a read of I/O port 0x80), ``ptemod`` (a write
    to a page-table entry), ``syscall`` (a system call and return). ``native_cycles``: the
    event's cost on bare metal (default: :data:`NANO_NATIVE_CYCLES`, the Pentium 4 672's)."""

    kind: Literal["nanobench"]
    op: Literal["pgfault", "divzero", "in-port80", "ptemod", "syscall"] = "pgfault"
    native_cycles: Cycles | None = Field(None, gt=0)
    batch: int = Field(1000, ge=1, le=10**9)

    def request_workload(self) -> RequestWorkload:
        """One client on one thread, each request ``batch`` events of the kernel event ``op`` names."""
        native = self.native_cycles if self.native_cycles is not None else NANO_NATIVE_CYCLES[self.op]
        event = {"kind": "kernel", "event": NANO_EVENTS[self.op], "count": self.batch, "native_cycles": native}
        return self._closed(1, [event], threads=1)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        """``ns_per_op``: mean time per event, in ns."""
        return [("ns_per_op", latency_mean_s / self.batch * 1e9, "ns")]


NAMED_WORKLOADS = (Linpack, Stream, RandomAccess, Fio, NetperfRR, StreamTcp, KvStore, Oltp, Web, Nanobench)
WorkloadSpec = Annotated[
    RequestWorkload | Linpack | Stream | RandomAccess | Fio | NetperfRR | StreamTcp | KvStore | Oltp | Web
    | Nanobench,
    Field(discriminator="kind"),
]
