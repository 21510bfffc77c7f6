"""Resizing a disk image (``qemu-img resize``, QMP ``block_resize``): what it does to the file.

qcow2's shrink and grow (with any ``preallocation``) are replayed cluster by cluster
in :mod:`qcow2_alloc` (a RESIZE operation among the writes, its size field the index of its
preallocation mode in :data:`PREALLOCATIONS`). This module holds what the other format that resizes in place
does, raw, whose image is the disk itself (QEMU 7.2's ``raw_co_truncate`` in
``block/file-posix.c``; checked with ``qemu-img`` and ``qemu-io`` on seeded traces,
``tests/models/test_disk_resize.py``):

- a shrink truncates the file: the blocks wholly past the new end go, the block the end falls
  in stays (ext4 zeroes its tail);
- a grow extends the file: sparsely (``preallocation=off``), or allocating every new block:
  ``falloc`` (``fallocate``, unwritten extents, which ``du`` counts) or ``full`` (zeroes
  written). ``metadata`` is qcow2's alone: QEMU refuses it for raw.

A raw file keeps any length ``qemu-img resize`` gives it, 512-byte multiple or not (its virtual
size reads rounded up to whole sectors); ``qemu-img create`` rounds up to a sector.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from virtsim.models.disks.allocation import HostFile, surviving_units
from virtsim.models.disks.qcow2_alloc import DATA, DISCARD, RESIZE, ZERO

__all__ = ["PREALLOCATIONS", "Preallocation", "raw_resized", "resize_problem"]

Preallocation = Literal["off", "metadata", "falloc", "full"]
PREALLOCATIONS: tuple[Preallocation, ...] = get_args(Preallocation)
"""``qemu-img resize --preallocation``: in a RESIZE operation's size field, its index here."""


def resize_problem(fmt: str, old: int, new: int, shrink: bool, preallocation: Preallocation) -> str | None:
    """Why ``qemu-img resize [--shrink] --preallocation=P`` refuses to take a disk of ``fmt``
    from ``old`` to ``new`` bytes (its message, in words), or None if it does it."""
    if new <= 0:
        return f"a size of {new} bytes: a disk has at least one byte"
    if fmt == "qcow2" and new % 512:
        return (f"qcow2 takes only sizes in whole 512-byte sectors (\"The new size must be a multiple of 512\"), "
                f"got {new}")
    if fmt not in ("qcow2", "raw"):  # QEMU 7.2 resizes none of vmdk, vdi, vhdx (checked in the tests)
        return (f"qemu-img resize does not resize {fmt} images (\"Image format driver does not support resize\"); "
                "qcow2 and raw images are resized")
    if new < old and not shrink:
        return (f"{new} bytes is smaller than the disk's {old}: qemu-img resize refuses to shrink without --shrink "
                "(\"Use the --shrink option to perform a shrink operation\"), which drops the data past the new end")
    if new < old and preallocation != "off":
        return "a shrink takes no preallocation (\"Preallocation can't be used for shrinking an image\")"
    if fmt == "raw" and preallocation == "metadata":
        return "raw images have no metadata to preallocate (\"Unsupported preallocation mode 'metadata'\")"
    return None


def raw_resized(offsets: np.ndarray, sizes: np.ndarray, kinds: np.ndarray, virtual_bytes: int,
                host: HostFile) -> tuple[int, int]:
    """A raw disk image's length and the bytes it occupies on ``host`` (``du`` less the file
    system's own blocks) after these operations in order: data writes, zero writes (which
    allocate: ``FALLOC_FL_ZERO_RANGE``), discards reaching the file (punched, whole blocks
    only) and resizes (RESIZE: the offset is the new size in bytes, the size field the index of
    its preallocation mode in :data:`PREALLOCATIONS`). The image starts as ``qemu-img create``
    leaves a disk of ``virtual_bytes``: sparse but for its first 4 KiB. Raises ``ValueError``
    for an operation past the end at its turn, as QEMU fails it."""
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    kinds = np.asarray(kinds, dtype=np.int64)
    block = host.block_bytes
    size = -(-virtual_bytes // 512) * 512
    starts, lengths, clears = [0], [min(4096, size)], [False]  # allocate_first_block
    for op, (offset, length, kind) in enumerate(zip(offsets.tolist(), sizes.tolist(), kinds.tolist(), strict=True)):
        if kind == RESIZE:
            mode = PREALLOCATIONS[length]
            if mode == "metadata":
                raise ValueError(resize_problem("raw", size, offset, True, mode))
            if offset < size:  # truncated: every block wholly past the new end goes
                first = -(-offset // block) * block
                if first < size:
                    starts.append(first)
                    lengths.append(-(-size // block) * block - first)
                    clears.append(True)
            elif offset > size and mode != "off":
                starts.append(size)
                lengths.append(offset - size)
                clears.append(False)
            size = offset
            continue
        if kind not in (DATA, ZERO, DISCARD):
            raise ValueError(f"operation {op}: unknown kind {kind}")
        if offset + length > size:
            raise ValueError(f"operation {op} ends at byte {offset + length}, past the disk's size of {size} bytes "
                             "at that point (QEMU fails it)")
        starts.append(offset)
        lengths.append(length)
        clears.append(kind == DISCARD)
    held = surviving_units(np.array(starts), np.array(lengths), np.array(clears), block) * block
    return size, host.occupied_bytes(held, np.minimum(held + block, size), size)
