"""Which allocation units a stream of writes touches, as numpy set arithmetic.

A write covering bytes [offset, offset + size) touches every unit from ``offset // unit`` to
``(offset + size - 1) // unit``. Most writes touch one unit, so they are indexed directly;
only the ones that span several are expanded. Allocated units are kept as a sorted array of
unit indices, so memory grows with what was written, not with the disk's virtual size (a 1 TiB
disk at 512-byte units would need a 2 GiB bitmap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FS_BLOCK", "HostFile", "check_inside", "first_touch_order", "host_blocks", "sorted_distinct",
           "surviving_units", "touched_units", "unit_indices"]


def unit_indices(offsets: np.ndarray, sizes: np.ndarray, unit_bytes: int) -> np.ndarray:
    """Every unit index touched, write by write, in write order (repeats kept)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if offsets.shape != sizes.shape:
        raise ValueError("offsets and sizes must have the same shape")
    if np.any(sizes <= 0) or np.any(offsets < 0):
        raise ValueError("writes need offsets >= 0 and sizes > 0")
    first = offsets // unit_bytes
    last = (offsets + sizes - 1) // unit_bytes
    spans = last - first + 1
    if np.all(spans == 1):
        return first
    # unit = first unit of its write + (position - position of the write's first unit), summed
    # in place: two arrays of the expanded length at a time, not four
    index = np.repeat(first - (np.cumsum(spans) - spans), spans)
    index += np.arange(index.size, dtype=np.int64)
    return index


def surviving_units(offsets: np.ndarray, sizes: np.ndarray, clears: np.ndarray, unit_bytes: int) -> np.ndarray:
    """The sorted indices of the units that hold data after these operations, made in this
    order: writes (``clears`` False) and operations that leave their bytes reading as zeroes
    or unallocated (``clears`` True: zero writes, discards, hole punches).

    A unit holds data if a write touched it after the last operation that covered it whole
    (a whole write counts). Where a clear covers only part of a unit, the unit keeps the data
    a write put there before, even if the clear covered exactly those bytes (review 31: 1 KiB
    written, then discarded, still counts its 4 KiB piece): an upper bound there, exact where
    every write and clear covers whole units."""
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    clears = np.asarray(clears, dtype=bool)
    if clears.shape != offsets.shape:
        raise ValueError("need one clears flag per operation")
    units = unit_indices(offsets, sizes, unit_bytes)
    if units.size == 0:
        return units
    spans = (offsets + sizes - 1) // unit_bytes - offsets // unit_bytes + 1
    op = np.repeat(np.arange(offsets.size, dtype=np.int64), spans)
    whole = (offsets[op] <= units * unit_bytes) & ((offsets + sizes)[op] >= (units + 1) * unit_bytes)
    order = np.lexsort((op, units))  # by unit, then by operation
    units, whole, written = units[order], whole[order], ~clears[op][order]
    starts = np.append(0, np.flatnonzero(units[1:] != units[:-1]) + 1)
    position = np.arange(units.size, dtype=np.int64)
    last_whole = np.maximum.reduceat(np.where(whole, position, -1), starts)
    last_write = np.maximum.reduceat(np.where(written, position, -1), starts)
    return units[starts][(last_write >= 0) & (last_write >= last_whole)]


def check_inside(offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int) -> None:
    """Refuse a write that ends past the disk's last byte, as QEMU does (even inside the last unit)."""
    ends = np.asarray(offsets, dtype=np.int64) + np.asarray(sizes, dtype=np.int64)
    if ends.size and int(ends.max()) > virtual_bytes:
        raise ValueError(f"a write ends at byte {int(ends.max())}, past the disk's virtual size of "
                         f"{virtual_bytes} bytes")


FS_BLOCK = 4096  # a host file system block (ext4, XFS and btrfs by default, tmpfs pages)
_BITMAP_UNITS = 1 << 25  # up to here a bitmap (32 MiB at most) is faster than sorting


def touched_units(offsets: np.ndarray, sizes: np.ndarray, unit_bytes: int) -> np.ndarray:
    """The sorted, distinct indices of the units some write touched."""
    idx = unit_indices(offsets, sizes, unit_bytes)
    if idx.size == 0:
        return idx
    top = int(idx.max()) + 1
    if top > _BITMAP_UNITS:
        return sorted_distinct(idx)
    bitmap = np.zeros(top, dtype=bool)
    bitmap[idx] = True
    return np.flatnonzero(bitmap)


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending. Sorts rather than calling np.unique, which in numpy 2.4
    hashes integers and was 70 times slower here (1.3 s for 800,000 cluster indices)."""
    ordered = np.sort(values)
    if ordered.size:
        ordered = ordered[np.append(True, ordered[1:] != ordered[:-1])]
    return ordered


def first_touch_order(offsets: np.ndarray, sizes: np.ndarray, unit_bytes: int) -> np.ndarray:
    """For each write, how many units had been touched once it completed (for growth curves)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    first = np.asarray(offsets, dtype=np.int64) // unit_bytes
    spans = (np.asarray(offsets, dtype=np.int64) + sizes - 1) // unit_bytes - first + 1
    idx = unit_indices(offsets, sizes, unit_bytes)
    write_of_unit = np.repeat(np.arange(len(sizes)), spans)
    _, first_pos = np.unique(idx, return_index=True)
    new_per_write = np.bincount(write_of_unit[first_pos], minlength=len(sizes))
    return np.cumsum(new_per_write)


def host_blocks(starts: np.ndarray, ends: np.ndarray, block_bytes: int) -> int:
    """How many distinct host file system blocks of ``block_bytes`` the byte ranges
    [starts, ends) of one file cover (empty ranges cover none): what those ranges occupy on the
    host, ``du`` less the file system's own metadata (extent tree blocks)."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    keep = ends > starts
    first = starts[keep] // block_bytes
    last = (ends[keep] - 1) // block_bytes
    if first.size == 0:
        return 0
    order = np.argsort(first, kind="stable")
    first, last = first[order], last[order]
    reach = np.maximum.accumulate(last)  # the last block covered by any range so far
    new = np.ones(first.size, dtype=bool)
    new[1:] = first[1:] > reach[:-1]  # a range starting past everything before it opens a run
    run_first = first[new]
    run_last = reach[np.append(np.flatnonzero(new)[1:] - 1, first.size - 1)]
    return int(np.sum(run_last - run_first + 1))


@dataclass(frozen=True)
class HostFile:
    """How the host file system allocates a disk image file: its block (bytes), and the extent
    size hint QEMU gives every file it creates (``extent_size_hint``, 1 MiB unless set: XFS
    honours it, so a write allocates the whole hint-aligned extent around it, unwritten outside
    the bytes written; ext4, btrfs and tmpfs ignore it: 0)."""

    block_bytes: int = FS_BLOCK
    extent_hint_bytes: int = 0

    def __post_init__(self) -> None:
        for name, value in (("block_bytes", self.block_bytes), ("extent_hint_bytes", self.extent_hint_bytes)):
            if value < 0 or value & (value - 1) or (name == "block_bytes" and value < 512):
                raise ValueError(f"{name} is a power of two (the block at least 512 B), got {value}")

    def occupied_bytes(self, starts: np.ndarray, ends: np.ndarray, eof_bytes: int) -> int:
        """Bytes a file of ``eof_bytes`` whose byte ranges [starts, ends) were written occupies:
        the blocks (or hint extents) they touch, none past the end of the file (an extent the
        file ends inside is allocated up to the block the end falls in)."""
        granule = max(self.block_bytes, self.extent_hint_bytes)
        size = host_blocks(starts, ends, granule) * granule
        if granule > self.block_bytes and size:
            last = int(np.max(np.asarray(ends, dtype=np.int64)[np.asarray(ends) > np.asarray(starts)]))
            tail_end = -(-last // granule) * granule  # the end of the last extent touched
            eof = -(-eof_bytes // self.block_bytes) * self.block_bytes
            size -= max(0, tail_end - eof)
        return size
