"""Memory: capacity, bandwidth, and the cost of random access with TLB misses.

Sequential traffic is a stream: CPU work of the thread that streams, at most ``core_bandwidth``
on a core of its own, in a bandwidth domain (a ``stream`` station) that slows its streams when
together they ask for more than its bandwidth. The streaming thread holds its core all along
(stalled on memory, it is running to the scheduler), so streams and CPU work share the cores and
a guest's vCPUs, cpuset and quota bound both together. With ``nodes`` NUMA nodes, each socket's
memory controller serves ``bandwidth / nodes``. A job's memory is interleaved over all nodes
(the default: page by page, so every stream draws on every controller at once, and the domain
has all nodes' bandwidth) or bound to k nodes (``numactl --membind``: a domain with k nodes'
bandwidth). Guests that bind k nodes are spread over the host's blocks of k nodes in turn (guest
i on block i mod nodes/k, as one binds each to its own socket; where k does not divide the
nodes, on the first k). Bound and interleaved traffic on one host would share controllers in a
way these domains do not model, so a scenario may not mix them (see ``experiments.scenario``).
Random accesses stall the core: each costs the DRAM ``latency`` plus, on a TLB miss, a page walk
of ``(levels + 1) ** dims - 1`` references (4 for a native 4-level walk, 24 for the
two-dimensional walk under nested paging).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from virtsim.models.hardware.cpu import CPU_STATION
from virtsim.models.quantities import Bytes, BytesPerSecond, Seconds
from virtsim.models.schema import StrictModel
from virtsim.sim.routes import StationSpec

__all__ = ["MEMBW_STATION", "MemorySpec", "membw_nodes", "membw_station", "numa_blocks", "walk_refs"]

MEMBW_STATION = "membw"


def numa_blocks(used: int, nodes: int) -> int:
    """How many disjoint blocks of ``used`` nodes the host's ``nodes`` hold for bound guests to
    spread over (1 where ``used`` does not divide ``nodes``: every such guest on the first ``used``)."""
    return nodes // used if nodes % used == 0 else 1


def membw_station(nodes_used: int | None, nodes: int, block: int = 0) -> str:
    """The bandwidth domain (stream station) of traffic over ``nodes_used`` of ``nodes`` NUMA nodes: ``membw``
    for all of them (interleaved), ``membw:nodes-A-B`` for memory bound to nodes A..B, the
    ``block``-th block of ``nodes_used`` nodes (taken modulo the blocks there are)."""
    used = nodes if nodes_used is None else nodes_used
    if not 1 <= used <= nodes:
        raise ValueError(f"memory bound to {used} NUMA nodes, but the host has {nodes}")
    if used == nodes:
        return MEMBW_STATION
    first = (block % numa_blocks(used, nodes)) * used
    return f"{MEMBW_STATION}:{_NODES}{first}-{first + used - 1}"


_NODES = "nodes-"


def membw_nodes(station: str) -> tuple[int, int] | None:
    """The first and last NUMA node of a bandwidth domain :func:`membw_station` named for memory
    bound to some nodes (``membw:nodes-2-3`` gives ``(2, 3)``); ``None`` for any other station,
    the interleaved ``membw`` among them."""
    prefix = f"{MEMBW_STATION}:{_NODES}"
    if not station.startswith(prefix):
        return None
    first, last = station.removeprefix(prefix).split("-")
    return int(first), int(last)


def walk_refs(levels: int, dims: int) -> int:
    """Memory references of a page walk through ``dims`` nested radix tables of ``levels``."""
    return (levels + 1) ** dims - 1


class MemorySpec(StrictModel):
    """Main memory of a host."""

    capacity_bytes: Bytes = Field(64 * 2**30, alias="capacity", gt=0)
    nodes: int = Field(1, ge=1, le=64)
    bandwidth_Bps: BytesPerSecond = Field(25e9, alias="bandwidth", gt=0)  # all nodes together
    core_bandwidth_Bps: BytesPerSecond = Field(10e9, alias="core_bandwidth", gt=0)
    latency_s: Seconds = Field(100e-9, alias="latency")
    walk_ref_s: Seconds = Field(1.5e-9, alias="walk_ref")
    page_walk_levels: int = Field(4, ge=2, le=5)
    tlb_miss_ratio_4k: float = Field(1.0, ge=0, le=1)
    tlb_miss_ratio_2m: float = Field(0.1, ge=0, le=1)
    access_bytes: Bytes = Field(8, gt=0)

    def random_access_s(self, size_bytes: np.ndarray, dims: int, huge_pages: bool) -> np.ndarray:
        """Core time for random accesses covering ``size_bytes`` (one access per ``access_bytes``)."""
        miss = self.tlb_miss_ratio_2m if huge_pages else self.tlb_miss_ratio_4k
        per_access = self.latency_s + miss * walk_refs(self.page_walk_levels, dims) * self.walk_ref_s
        return np.asarray(size_bytes) / self.access_bytes * per_access

    def walk_shares(self, dims: int, huge_pages: bool, layers: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
        """The fraction of a random access's time each layer's extra walk dimension adds: the
        layer that made a walk ``k`` dimensions deep owns the references from ``k - 1`` to ``k``."""
        miss = self.tlb_miss_ratio_2m if huge_pages else self.tlb_miss_ratio_4k
        total = self.latency_s + miss * walk_refs(self.page_walk_levels, dims) * self.walk_ref_s
        first = dims - len(layers)
        out = []
        for i, layer in enumerate(layers):
            added = walk_refs(self.page_walk_levels, first + i + 1) - walk_refs(self.page_walk_levels, first + i)
            out.append((layer, miss * added * self.walk_ref_s / total))
        return tuple(out)

    def sequential_s(self, size_bytes: np.ndarray) -> np.ndarray:
        """Time to stream ``size_bytes`` at one core's bandwidth (a stream's work, on a core of its own)."""
        return np.asarray(size_bytes) / self.core_bandwidth_Bps

    @property
    def streams(self) -> float:
        """How many full-speed streams all nodes' bandwidth holds."""
        return self.bandwidth_Bps / self.core_bandwidth_Bps

    def stations(self) -> list[StationSpec]:
        """The bandwidth domains (all nodes, and each block of 1..nodes-1 of them), each a
        stream station on the host's CPU whose capacity counts full-speed streams."""
        return [StationSpec(membw_station(k, self.nodes, b), "stream", self.streams * k / self.nodes, cpu=CPU_STATION)
                for k in range(1, self.nodes + 1) for b in range(numa_blocks(k, self.nodes))]
