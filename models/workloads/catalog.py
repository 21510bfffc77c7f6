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
- ``oltp``: a MySQL-like server with a pool of ``threads``, ``clients`` closed-loop clients each
  running read-only transactions. Reports transactions/s.
- ``web``: an open-loop service, Poisson arrivals at ``rate``, each request network + CPU + disk.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from models.quantities import Bytes, Cycles, PerSecond, Seconds
from models.schema import StrictModel
from models.workloads.request import RequestWorkload

__all__ = ["NAMED_WORKLOADS", "WorkloadSpec"]


class _Named(StrictModel):
    def request_workload(self) -> RequestWorkload:
        raise NotImplementedError

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        raise NotImplementedError

    def _closed(self, clients: int, demands: list[dict[str, Any]], threads: int | None = None,
                think_s: float = 0.0) -> RequestWorkload:
        return RequestWorkload.model_validate(
            {"arrivals": {"kind": "closed", "clients": clients, "think": think_s}, "demands": demands,
             "threads": threads}
        )


class Linpack(_Named):
    """HPL-like dense linear algebra."""

    kind: Literal["linpack"]
    threads: int = Field(16, ge=1)
    block_flops: float = Field(2e9, gt=0)
    flops_per_cycle: float = Field(8.0, gt=0)  # AVX double precision on Sandy Bridge
    efficiency: float = Field(0.733, gt=0, le=1)  # published.csv felter-linpack-native

    def request_workload(self) -> RequestWorkload:
        cycles = self.block_flops / (self.flops_per_cycle * self.efficiency)
        return self._closed(self.threads, [{"kind": "cpu", "cycles": cycles}])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("gflops", throughput_rps * self.block_flops / 1e9, "GFLOPS")]


class Stream(_Named):
    """STREAM triad: sequential memory bandwidth."""

    kind: Literal["stream"]
    threads: int = Field(16, ge=1)
    block_bytes: Bytes = Field(64 * 2**20, gt=0)

    def request_workload(self) -> RequestWorkload:
        return self._closed(self.threads, [{"kind": "mem", "size": self.block_bytes, "pattern": "seq"}])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("bandwidth_GBps", throughput_rps * self.block_bytes / 1e9, "GB/s")]


class RandomAccess(_Named):
    """HPCC RandomAccess (GUPS): random read-modify-write of 8-byte words."""

    kind: Literal["randomaccess"]
    threads: int = Field(8, ge=1)
    block_updates: int = Field(100_000, ge=1)
    huge_pages: bool = False

    def request_workload(self) -> RequestWorkload:
        size = self.block_updates * 8
        return self._closed(self.threads, [{"kind": "mem", "size": size, "pattern": "random",
                                            "huge_pages": self.huge_pages}])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("gups", throughput_rps * self.block_updates / 1e9, "GUPS")]


class Fio(_Named):
    """fio with libaio: jobs x iodepth I/Os in flight."""

    kind: Literal["fio"]
    rw: Literal["read", "write", "randread", "randwrite", "randrw"] = "randread"
    rwmixread: float = Field(70.0, ge=0, le=100)
    bs: Bytes = Field(4096, gt=0)
    jobs: int = Field(1, ge=1)
    iodepth: int = Field(1, ge=1)
    submit_cycles: Cycles = 4000  # assumption: io_submit + completion reaping per I/O

    def request_workload(self) -> RequestWorkload:
        pattern = "seq" if self.rw in ("read", "write") else "random"
        cpu = {"kind": "cpu", "cycles": self.submit_cycles}
        if self.rw == "randrw":
            cut = self.rwmixread / 100
            ios = [{"kind": "io", "op": "read", "size": self.bs, "pattern": pattern, "mix": (0.0, cut)},
                   {"kind": "io", "op": "write", "size": self.bs, "pattern": pattern, "mix": (cut, 1.0)}]
        else:
            op = "write" if "write" in self.rw else "read"
            ios = [{"kind": "io", "op": op, "size": self.bs, "pattern": pattern}]
        return self._closed(self.jobs * self.iodepth, [cpu, *ios])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("iops", throughput_rps, "IOPS"), ("bandwidth_MBps", throughput_rps * self.bs / 1e6, "MB/s"),
                ("latency_us", latency_mean_s * 1e6, "us")]


class NetperfRR(_Named):
    """netperf TCP_RR / UDP_RR: one transaction in flight."""

    kind: Literal["netperf-rr"]
    request: Bytes = 100
    response: Bytes = 200
    server_cycles: Cycles = 0

    def request_workload(self) -> RequestWorkload:
        demands = [{"kind": "net_in", "size": self.request}, {"kind": "cpu", "cycles": self.server_cycles},
                   {"kind": "net_out", "size": self.response}]
        return self._closed(1, demands)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("round_trip_us", latency_mean_s * 1e6, "us")]


class StreamTcp(_Named):
    """nuttcp/iperf: bulk transfer into the guest."""

    kind: Literal["stream-tcp"]
    message: Bytes = 65536
    window: int = Field(8, ge=1)

    def request_workload(self) -> RequestWorkload:
        return self._closed(self.window, [{"kind": "net_in", "size": self.message}])

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("throughput_Mbps", throughput_rps * self.message * 8 / 1e6, "Mbit/s")]


class KvStore(_Named):
    """A Redis-like single-threaded key-value server."""

    kind: Literal["kv-store"]
    connections: int = Field(1, ge=1)
    op: Literal["get", "set"] = "get"
    value: Bytes = 50
    key_bytes: Bytes = 20
    # Fitted to published.csv felter-redis-get-1c-native: 1/16421 s per request at one connection,
    # less the model's own network round trip (37.77 us on the 10gbe profile) = 23.13 us at 3.1 GHz.
    op_cycles: Cycles = 71_700

    def request_workload(self) -> RequestWorkload:
        header = 30 + self.key_bytes
        request = header + (self.value if self.op == "set" else 0)
        response = 10 + (self.value if self.op == "get" else 0)
        demands: list[dict[str, Any]] = [
            {"kind": "net_in", "size": request}, {"kind": "cpu", "cycles": self.op_cycles},
            {"kind": "net_out", "size": response}]
        return self._closed(self.connections, demands, threads=1)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("requests_per_s", throughput_rps, "req/s")]


class Oltp(_Named):
    """A MySQL-like read-only OLTP server (sysbench oltp_read_only)."""

    kind: Literal["oltp"]
    threads: int = Field(32, ge=1)  # the server's thread pool
    clients: int = Field(32, ge=1)
    transaction_cycles: Cycles = 2_000_000  # assumption: 14 point/range queries
    buffer_miss_ratio: float = Field(0.05, ge=0, le=1)  # assumption: warm buffer pool
    page: Bytes = 16384

    def request_workload(self) -> RequestWorkload:
        demands: list[dict[str, Any]] = [
                   {"kind": "net_in", "size": 600}, {"kind": "cpu", "cycles": self.transaction_cycles, "dist": "exp"},
                   {"kind": "mem", "size": 64 * 1024, "pattern": "random"},
                   {"kind": "io", "op": "read", "size": self.page, "mix": (0.0, self.buffer_miss_ratio)},
                   {"kind": "net_out", "size": 4000}]
        return self._closed(self.clients, demands, threads=self.threads)

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("tps", throughput_rps, "transactions/s")]


class Web(_Named):
    """An open-loop web service: Poisson requests of network, CPU and a disk read."""

    kind: Literal["web"]
    rate_per_s: PerSecond = Field(1000, alias="rate", gt=0)
    request_cycles: Cycles = 1_500_000
    read: Bytes = 4096
    response: Bytes = 2048
    think_s: Seconds = 0.0

    def request_workload(self) -> RequestWorkload:
        demands = [{"kind": "net_in", "size": 300}, {"kind": "cpu", "cycles": self.request_cycles, "dist": "exp"},
                   {"kind": "io", "op": "read", "size": self.read}, {"kind": "net_out", "size": self.response}]
        return RequestWorkload.model_validate({"arrivals": {"kind": "open", "rate": self.rate_per_s},
                                               "demands": demands})

    def derived_metrics(self, throughput_rps: float, latency_mean_s: float) -> list[tuple[str, float, str]]:
        return [("requests_per_s", throughput_rps, "req/s")]


NAMED_WORKLOADS = (Linpack, Stream, RandomAccess, Fio, NetperfRR, StreamTcp, KvStore, Oltp, Web)
WorkloadSpec = Annotated[
    RequestWorkload | Linpack | Stream | RandomAccess | Fio | NetperfRR | StreamTcp | KvStore | Oltp | Web,
    Field(discriminator="kind"),
]
