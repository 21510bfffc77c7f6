"""Disk usage model: the seed document's example, hand-computed drivers, and allocation properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.disks.allocation import first_touch_order, touched_bitmap, unit_indices
from models.disks.chain import ChainUsage, build_chain_usage
from models.disks.formats import format_by_name
from models.disks.layers import DRIVERS, FileOps, ImageLayer, Op, writable_layer_usage
from models.disks.patterns import block_writes

GB = 10**9


def test_seed_example_linked_clones_versus_full_copies() -> None:
    """DockerInDeep.md: base 20 GB; VMs change 5, 10 and 7 GB."""
    usage = ChainUsage(20 * GB, ((5 * GB,), (10 * GB,), (7 * GB,)))
    assert usage.per_guest_view() == [25 * GB, 30 * GB, 27 * GB]
    assert usage.host_physical() == 42 * GB
    assert usage.full_clones() == 82 * GB


def test_seed_example_from_writes_through_an_ideal_byte_format() -> None:
    """The same numbers when the changes are fresh sequential writes in 1 MiB-unit VDI-like
    accounting without metadata: the chain arithmetic sees only the allocated bytes."""
    mib = 2**20
    fmt = format_by_name("vdi")
    virtual = 64 * 2**30
    fill = lambda n_mib, start=0: (np.arange(n_mib, dtype=np.int64) * mib + start, np.full(n_mib, mib))  # noqa: E731
    usage = build_chain_usage(fmt, virtual, fill(20_000), [[fill(5_000, 30 * 2**30)], [fill(10_000)], [fill(7_000)]])
    meta = fmt.metadata_bytes(virtual)
    assert usage.per_guest_view() == [meta * 2 + n * mib for n in (25_000, 30_000, 27_000)]
    assert usage.host_physical() == 4 * meta + 42_000 * mib


def test_a_partial_write_allocates_whole_units() -> None:
    for name, unit in [("qcow2", 64 * 1024), ("vhdx", 2 * 2**20), ("vdi", 2**20), ("vmdk", 64 * 1024)]:
        fmt = format_by_name(name)
        bitmap = touched_bitmap(np.array([123]), np.array([4096]), fmt.unit_bytes, fmt.n_units(2**30))
        assert bitmap.sum() == 1 and fmt.unit_bytes == unit
        assert fmt.file_bytes(bitmap, 2**30) - fmt.metadata_bytes(2**30) >= unit


def test_qcow2_grows_an_l2_table_per_512_mib_touched() -> None:
    fmt, virtual = format_by_name("qcow2"), 20 * 2**30
    one = touched_bitmap(np.array([0]), np.array([1]), fmt.unit_bytes, fmt.n_units(virtual))
    two = touched_bitmap(np.array([0, 512 * 2**20]), np.array([1, 1]), fmt.unit_bytes, fmt.n_units(virtual))
    # header, refcount table, refcount block, L1 = 4 clusters; then L2 + data per region
    assert fmt.file_bytes(one, virtual) == (4 + 1 + 1) * 65536
    assert fmt.file_bytes(two, virtual) == (4 + 2 + 2) * 65536


def test_qcow2_adds_refcount_blocks_as_the_file_passes_2_gib() -> None:
    """One 16-bit refcount block covers 32768 clusters (2 GiB of file); it must cover itself."""
    fmt, virtual = format_by_name("qcow2"), 64 * 2**30
    n_data = 32768  # 2 GiB of data: with metadata, past the first refcount block
    bitmap = np.zeros(fmt.n_units(virtual), dtype=bool)
    bitmap[:n_data] = True
    l2 = n_data // 8192
    assert fmt.file_bytes(bitmap, virtual) == (4 + l2 + n_data + 1) * 65536


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 200_000)), min_size=0, max_size=40),
       st.sampled_from([512, 4096, 65536]))
def test_touched_units_equal_a_naive_set(writes, unit) -> None:
    offsets = np.array([w[0] for w in writes], dtype=np.int64)
    sizes = np.array([w[1] for w in writes], dtype=np.int64)
    expected = {u for o, s in writes for u in range(o // unit, (o + s - 1) // unit + 1)}
    assert set(unit_indices(offsets, sizes, unit).tolist()) == expected
    bitmap = touched_bitmap(offsets, sizes, unit, 2 * 10**6 // unit + 10)
    assert set(np.flatnonzero(bitmap).tolist()) == expected
    if writes:
        growth = first_touch_order(offsets, sizes, unit)
        assert growth[-1] == len(expected) and np.all(np.diff(growth) >= 0)


def test_write_patterns_stay_inside_their_span() -> None:
    rng = np.random.default_rng(1)
    for kind in ("sequential", "random", "zipf", "log-append"):
        off, size = block_writes(kind, 1000, 4096, 2**30, rng, start_bytes=2**20)
        assert off.min() >= 2**20 and (off + size).max() <= 2**20 + 2**30
    zipf_off, _ = block_writes("zipf", 20_000, 4096, 2**30, rng)
    assert np.unique(zipf_off).size < 0.5 * 20_000  # hot slots repeat
    with pytest.raises(ValueError, match="do not fit"):
        block_writes("log-append", 10, 4096, 8192, rng)


IMAGE = [ImageLayer("sha256:a", np.array([10_000, 5_000, 200])), ImageLayer("sha256:b", np.array([300_000]))]
OPS = FileOps.of([
    (Op.WRITE, 0, 100, 10),  # 10 bytes into a 10 kB file
    (Op.APPEND, 1, 0, 100),  # 100 bytes onto a 5 kB file
    (Op.CHMOD, 2, 0, 0),
    (Op.DELETE, 3, 0, 0),  # deleting a lower file frees nothing
    (Op.CREATE, -1, 0, 7_000),  # new file index 4
    (Op.APPEND, 4, 0, 1_000),
])


def test_storage_drivers_on_a_hand_computed_case() -> None:
    """overlay2 copies up files 0, 1, 2 whole: 10000 + 5100 + 200, plus the new 8000 B file.
    Allocated in 4 KiB blocks: 12288 + 8192 + 4096 + 8192.
    btrfs: one 4 KiB block each for the write and the append, and the new file's two blocks.
    zfs: files 0 and 1 are smaller than a 128 KiB record, so each rewrites one block of its own
    size (12288 and 8192); the new file is one 8192 B block.
    devicemapper: one 64 KiB chunk each for the write and the append, the new file's chunk.
    """
    expected = {
        "overlay2": (23_300, 32_768),
        "vfs": (23_300, 32_768),  # the deleted 300 kB file was the only other lower file
        "btrfs": (23_300, 16_384),
        "zfs": (23_300, 12_288 + 8_192 + 8_192),
        "devicemapper": (23_300, 3 * 65_536),
    }
    for driver in DRIVERS:
        usage = writable_layer_usage(driver, IMAGE, OPS)
        assert (usage.apparent_bytes, usage.allocated_bytes) == expected[driver], driver


def test_a_4k_write_costs_the_whole_file_on_overlay2_but_one_block_on_btrfs() -> None:
    image = [ImageLayer("sha256:db", np.array([200 * 2**20]))]
    ops = FileOps.of([(Op.WRITE, 0, 4096 * 100, 4096)])
    assert writable_layer_usage("overlay2", image, ops).allocated_bytes == 200 * 2**20
    assert writable_layer_usage("btrfs", image, ops).allocated_bytes == 4096
    assert writable_layer_usage("zfs", image, ops).allocated_bytes == 128 * 1024
