"""Which allocation units a stream of writes touches, as numpy set arithmetic.

A write covering bytes [offset, offset + size) touches every unit from ``offset // unit`` to
``(offset + size - 1) // unit``. Most writes touch one unit, so they are indexed directly;
only the ones that span several are expanded. Allocated units are kept as a sorted array of
unit indices, so memory grows with what was written, not with the disk's virtual size (a 1 TiB
disk at 512-byte units would need a 2 GiB bitmap).
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_inside", "first_touch_order", "touched_units", "unit_indices"]


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
    starts = np.repeat(first, spans)
    within = np.arange(int(spans.sum()), dtype=np.int64) - np.repeat(np.cumsum(spans) - spans, spans)
    return starts + within


def check_inside(offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int) -> None:
    """Refuse a write that ends past the disk's last byte, as QEMU does (even inside the last unit)."""
    ends = np.asarray(offsets, dtype=np.int64) + np.asarray(sizes, dtype=np.int64)
    if ends.size and int(ends.max()) > virtual_bytes:
        raise ValueError(f"a write ends at byte {int(ends.max())}, past the disk's virtual size of "
                         f"{virtual_bytes} bytes")


_BITMAP_UNITS = 1 << 25  # up to here a bitmap (32 MiB at most) is faster than sorting


def touched_units(offsets: np.ndarray, sizes: np.ndarray, unit_bytes: int) -> np.ndarray:
    """The sorted, distinct indices of the units some write touched."""
    idx = unit_indices(offsets, sizes, unit_bytes)
    if idx.size == 0:
        return idx
    top = int(idx.max()) + 1
    if top > _BITMAP_UNITS:
        return np.unique(idx)
    bitmap = np.zeros(top, dtype=bool)
    bitmap[idx] = True
    return np.flatnonzero(bitmap)


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
