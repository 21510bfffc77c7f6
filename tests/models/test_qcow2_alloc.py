"""The qcow2 allocator replay: sizes measured with qemu-img 7.2, its shortcuts against its own
one-request-at-a-time path, and the allocation units the formats accept.

The byte-for-byte comparisons with a real qemu-img run in test_disk_qemu.py; the sizes below
were measured there (qemu-io, one session unless said) so that they hold without QEMU.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtsim.models.disks import qcow2_alloc
from virtsim.models.disks.allocation import touched_units
from virtsim.models.disks.formats import format_by_name

KiB, MiB, GiB = 2**10, 2**20, 2**30


def _sequential(n: int, io: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n, dtype=np.int64) * io, np.full(n, io, dtype=np.int64)


@pytest.mark.parametrize("cluster, virtual, writes, reopen_every, qemu_bytes", [
    # the review's reproducer: 4096 sequential 4 KiB writes; the closed form said 17,370,624
    (512, 1 * GiB, _sequential(4096, 4 * KiB), None, 17_377_792),
    (512, 1 * GiB, _sequential(4096, 4 * KiB), 2000, 17_377_280),  # qemu-io -c, 2000 a line
    (1 * KiB, 20 * GiB, _sequential(1200, 64 * KiB), None, 80_737_280),
    (2 * KiB, 20 * GiB, _sequential(2400, 256 * KiB), None, 632_750_080),
    (4 * KiB, 20 * GiB, _sequential(4600, 1 * MiB), None, 4_836_290_560),  # a 4.5 GiB file
])
def test_sizes_past_the_first_refcount_table_are_qemus(cluster: int, virtual: int, writes, reopen_every: int | None,
                                                       qemu_bytes: int) -> None:
    fmt = format_by_name("qcow2", virtual, cluster)
    assert fmt.file_bytes_after(*writes, virtual, reopen_every=reopen_every) == qemu_bytes


@pytest.mark.parametrize("cluster, virtual, qemu_bytes", [
    (512, 1 * GiB, 264_704),  # 3 + 512 L1 clusters need two more refcount blocks
    (512, 20 * GiB, 5_264_896),
    (512, 128 * GiB, 33_691_648),  # the L1 table alone outgrows the first refcount table
    (64 * KiB, 20 * GiB, 196_928),  # 3 clusters and 320 bytes of L1
])
def test_an_empty_image_is_qemus(cluster: int, virtual: int, qemu_bytes: int) -> None:
    assert format_by_name("qcow2", virtual, cluster).empty_bytes(virtual) == qemu_bytes


def _stream(seed: int, kind: str, n: int, io: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """n writes inside ``span`` bytes: sequential, random aligned, random unaligned of any size,
    or a sequential pass then random rewrites and new writes."""
    rng = np.random.default_rng(seed)
    if kind == "sequential":
        return (np.arange(n, dtype=np.int64) * io) % (span - io), np.full(n, io, dtype=np.int64)
    if kind == "random":
        return rng.integers(0, span // io, n) * io, np.full(n, io, dtype=np.int64)
    if kind == "unaligned":
        return rng.integers(0, span - 2 * io, n), rng.integers(1, 2 * io, n)
    offsets = np.concatenate([np.arange(n // 2, dtype=np.int64) * io, rng.integers(0, span // io, n - n // 2) * io])
    return offsets, np.full(n, io, dtype=np.int64)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(["sequential", "random", "unaligned", "mixed"]),
       st.integers(200, 3000), st.sampled_from([4 * KiB, 64 * KiB, 256 * KiB]), st.sampled_from([512, 1024]),
       st.sampled_from([None, 7, 500]), st.sampled_from([1, 3, 4096]))
def test_the_vectorized_replay_equals_placing_each_request(seed: int, kind: str, n: int, io: int, cluster: int,
                                                           reopen_every: int | None, dense_ranges: int) -> None:
    """Dense stretches placed by cumulative sums (in steps of 1, 3 or 4096 ranges) land every
    request where QEMU's functions called one by one put it, past the first refcount table
    too (0.8 MB .. 0.8 GB of writes, against 8 MiB and 64 MiB of capacity)."""
    virtual = 1 * GiB
    req = qcow2_alloc.requests_from_writes(*_stream(seed, kind, n, io, virtual), cluster)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(qcow2_alloc, "_DENSE_RANGES", dense_ranges)
        fast = qcow2_alloc.file_bytes(req, cluster, virtual, reopen_every=reopen_every)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(qcow2_alloc._Allocator, "dense", lambda self, req, i, end, prefix: i)
        slow = qcow2_alloc.file_bytes(req, cluster, virtual, reopen_every=reopen_every)
    assert fast == slow


writes_strategy = st.lists(st.tuples(st.integers(0, 2**27), st.integers(1, 70_000)), min_size=1, max_size=400)


@settings(max_examples=40, deadline=None)
@given(writes_strategy, st.sampled_from([512, 4096, 65536]))
def test_below_the_first_table_capacity_the_closed_form_is_the_replay(writes, cluster: int) -> None:
    virtual = 2**28
    offsets = np.array([o for o, _ in writes], dtype=np.int64)
    sizes = np.array([s for _, s in writes], dtype=np.int64)
    fmt = format_by_name("qcow2", virtual, cluster)
    units = touched_units(offsets, sizes, cluster)
    replayed = qcow2_alloc.file_bytes(qcow2_alloc.requests_from_writes(offsets, sizes, cluster), cluster, virtual)
    if fmt._dense_clusters(units, virtual) <= fmt._table_capacity():
        assert fmt.file_bytes(units, virtual) == fmt.file_bytes_after(offsets, sizes, virtual) == replayed
    else:  # past it, the free clusters QEMU leaves only ever add to the dense count
        assert replayed >= fmt._dense_clusters(units, virtual) * cluster


def test_past_the_first_table_the_write_order_matters() -> None:
    """The same 32,768 clusters at 512 B: written in order, shuffled, and as a copy would."""
    virtual = 1 * GiB
    fmt = format_by_name("qcow2", virtual, 512)
    offsets, sizes = _sequential(4096, 4 * KiB)
    shuffled = np.random.default_rng(1).permutation(offsets)
    in_order = fmt.file_bytes_after(offsets, sizes, virtual)
    assert fmt.file_bytes_after(shuffled, sizes, virtual) != in_order
    units = touched_units(offsets, sizes, 512)
    dense = fmt._dense_clusters(units, virtual) * 512
    assert min(in_order, fmt.file_bytes_after(shuffled, sizes, virtual), fmt.file_bytes(units, virtual)) > dense


def test_a_large_small_cluster_stream_takes_few_steps_one_request_at_a_time(monkeypatch) -> None:
    """4 GiB written at 512 B clusters: 8.4 million clusters, 32,800 refcount blocks, nine table
    moves. Requests go through QEMU's functions one by one only around the moves."""
    calls = []
    exact = qcow2_alloc._Allocator.exact
    monkeypatch.setattr(qcow2_alloc._Allocator, "exact", lambda self, req, i: calls.append(i) or exact(self, req, i))
    fmt = format_by_name("qcow2", 100 * GiB, 512)
    size = fmt.file_bytes_after(*_sequential(4096, 1 * MiB), 100 * GiB)
    assert 4 * GiB < size < 4.2 * GiB
    assert len(calls) < 2000


@pytest.mark.parametrize("name, unit, message", [
    ("qcow2", 256, "a qcow2 cluster is 512 B .. 2 MiB"),
    ("qcow2", 4 * MiB, "a qcow2 cluster is 512 B .. 2 MiB"),
    ("qcow2", 64 * MiB, "a qcow2 cluster is 512 B .. 2 MiB"),
    ("qcow2", 3 * KiB, "the allocation unit must be a power of two"),
    ("vhdx", 512 * KiB, "a vhdx block is 1 MiB .. 256 MiB"),
    ("vhdx", 512 * MiB, "a vhdx block is 1 MiB .. 256 MiB"),
    ("vmdk", 4 * KiB, "QEMU writes vmdk grains of 64 KiB only"),
    ("vdi", 2 * MiB, "QEMU writes vdi blocks of 1 MiB only"),
    ("raw", 4 * KiB, "a raw image has no allocation unit"),
])
def test_allocation_units_qemu_would_not_write_are_refused(name: str, unit: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{name}: {message}")):
        format_by_name(name, 1 * GiB, unit)


@pytest.mark.parametrize("name, unit", [("qcow2", 512), ("qcow2", 2 * MiB), ("vhdx", 1 * MiB), ("vhdx", 256 * MiB),
                                        ("vmdk", 64 * KiB), ("vdi", 1 * MiB)])
def test_the_limits_themselves_are_accepted(name: str, unit: int) -> None:
    assert format_by_name(name, 1 * GiB, unit).unit_bytes == unit


def test_a_qcow2_disk_is_bounded_by_its_32_mib_l1_table() -> None:
    assert format_by_name("qcow2", 128 * GiB, 512).unit_bytes == 512
    with pytest.raises(ValueError, match="addresses at most 128 GiB"):
        format_by_name("qcow2", 128 * GiB + 512, 512)
    with pytest.raises(ValueError, match="addresses at most 2 PiB"):
        format_by_name("qcow2", 3 * 2**50)
