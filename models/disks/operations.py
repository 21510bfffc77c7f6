"""A guest's operations on its disk beyond writes: zero writes and discards, as each format takes them.

A guest writes zeroes (``WRITE ZEROES`` without unmap: ``mkfs``, ``fallocate -z``, a zeroed
file) and discards (``TRIM``/``UNMAP``: ``fstrim``, a file system mounted with ``discard``).
What the image file makes of them depends on the format (checked with ``qemu-io`` 7.2 on seeded
traces, ``tests/models/test_disk_physical.py``):

- qcow2 marks zero-written clusters as zero clusters (no data cluster, their L2 table only) and
  frees discarded ones, reusing them for the next new cluster (:mod:`qcow2_alloc`);
- raw allocates zero-written blocks (``FALLOC_FL_ZERO_RANGE``) and punches discarded ones out;
- VMDK, VDI and VHDX have no zero write of their own: QEMU writes the zeroes as data, allocating
  grains and blocks; they ignore discards.

Discards reach the image only on a drive opened with ``discard=unmap``; QEMU's default,
``discard=ignore``, drops them at the drive, whatever the guest sends. A full clone (``qemu-img
convert``) skips whatever reads as zeroes, so it holds only the units with data left in them.
"""

from __future__ import annotations

import numpy as np

from virtsim.models.disks.allocation import HostFile, check_inside, surviving_units, touched_units
from virtsim.models.disks.chain import ChainUsage, Writes
from virtsim.models.disks.formats import ImageFormat, Qcow2, Raw
from virtsim.models.disks.qcow2_alloc import DATA, DISCARD, ZERO, discarded_clusters

__all__ = ["DATA", "DISCARD", "DISCARDING", "ZERO", "Ops", "chain_usage_with_ops", "clone_data_pieces",
           "piece_bytes", "seen_by_image"]

Ops = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Operations in order: byte offsets, byte sizes, and kinds (DATA, ZERO, DISCARD)."""

DISCARDING = ("qcow2", "raw")
"""The formats whose images free what a guest discards (QEMU 7.2: ``bdrv_co_pdiscard`` of the
qcow2 and file drivers; VMDK, VDI and VHDX have none)."""

CONVERT_PIECE_BYTES = 4096
"""``qemu-img convert``'s default ``-S 4k``: pieces of this size that read as zeroes are not copied."""


def seen_by_image(fmt: ImageFormat, ops: Ops, unmap: bool) -> Ops:
    """The operations that reach an image of format ``fmt``: discards only on a drive with
    ``unmap`` and a format that takes them; a zero write stays a zero write (each format's
    model makes of it what QEMU does)."""
    offsets, sizes, kinds = (np.asarray(a, dtype=np.int64) for a in ops)
    if unmap and fmt.name in DISCARDING:
        return offsets, sizes, kinds
    keep = kinds != DISCARD
    return offsets[keep], sizes[keep], kinds[keep]


def _content_clears(fmt: ImageFormat, ops: Ops, virtual_bytes: int) -> Ops:
    """``ops`` (as the image sees them) with each discard cut to what it leaves reading as zeroes:
    qcow2 frees only the clusters a discard covers whole (and the disk's partial last cluster,
    :func:`qcow2_alloc.discarded_clusters`) and ignores the rest of it; raw punches the bytes."""
    offsets, sizes, kinds = ops
    if not isinstance(fmt, Qcow2) or not np.any(kinds == DISCARD):
        return ops
    unit = fmt.unit_bytes
    starts, ends = offsets.copy(), offsets + sizes
    for i in np.flatnonzero(kinds == DISCARD):
        lo, hi = discarded_clusters(int(offsets[i]), int(sizes[i]), unit, virtual_bytes)
        starts[i], ends[i] = lo * unit, min(hi * unit, virtual_bytes)
    keep = ends > starts
    return starts[keep], (ends - starts)[keep], kinds[keep]


def piece_bytes(fmt: ImageFormat, host: HostFile | None = None) -> int:
    """The pieces ``qemu-img convert`` tells data from zeroes by: 4 KiB (its ``-S 4k``), or the
    source's own finer unit, which its block status reports (qcow2 clusters under 4 KiB; a raw
    file's blocks on a file system of blocks under 4 KiB; review 31)."""
    if isinstance(fmt, Qcow2):
        return min(CONVERT_PIECE_BYTES, fmt.unit_bytes)
    if isinstance(fmt, Raw) and host is not None:
        return min(CONVERT_PIECE_BYTES, host.block_bytes)
    return CONVERT_PIECE_BYTES


def _data_pieces(fmt: ImageFormat, chain: list[Ops], virtual_bytes: int, host: HostFile | None = None) -> Writes:
    """The pieces (:func:`piece_bytes`) holding data at the top of a chain (base first), as
    ``qemu-img convert`` copies them: every piece some write reached whose last operation did
    not zero or discard it whole."""
    offsets, sizes, kinds = (np.concatenate(parts) for parts in zip(
        *(_content_clears(fmt, ops, virtual_bytes) for ops in chain), strict=True))
    piece = piece_bytes(fmt, host)
    pieces = surviving_units(offsets, sizes, kinds != DATA, piece)
    starts = pieces * piece
    return starts, np.minimum(piece, virtual_bytes - starts)


def clone_data_pieces(fmt: ImageFormat, virtual_bytes: int, base_writes: Writes, levels: list[Ops],
                      unmap: bool, host: HostFile | None = None) -> Writes:
    """The pieces (offsets, sizes in bytes) a full clone of this chain holds: a base of data
    writes, then each level's operations as an image of ``fmt`` sees them (``unmap``: on a
    drive with ``discard=unmap``); ``host``: the file system a raw source lies on."""
    base_ops = (*base_writes, np.full(len(base_writes[0]), DATA, dtype=np.int64))
    return _data_pieces(fmt, [base_ops, *(seen_by_image(fmt, ops, unmap) for ops in levels)], virtual_bytes, host)


def _disk_bytes(fmt: ImageFormat, ops: Ops, virtual_bytes: int, below: np.ndarray, host: HostFile | None,
                unmap: bool) -> int:
    """One differencing disk's length (``host`` None) or bytes on ``host`` after ``ops`` (as the
    image sees them) over a chain holding data in units ``below``."""
    offsets, sizes, kinds = ops
    if isinstance(fmt, Qcow2):
        masks = dict(zero=kinds == ZERO, discard=kinds == DISCARD, backing_units=below)
        if host is None:
            return fmt.file_bytes_after(offsets, sizes, virtual_bytes, differencing=True, **masks)
        return fmt.physical_bytes_after(offsets, sizes, virtual_bytes, differencing=True, host=host, punch=unmap,
                                        **masks)
    if host is None:
        return fmt.file_bytes_after(offsets, sizes, virtual_bytes, differencing=True)
    return fmt.physical_bytes_after(offsets, sizes, virtual_bytes, differencing=True, host=host)


def _raw_bytes(fmt: Raw, chain: list[Ops], virtual_bytes: int, host: HostFile) -> int:
    """A raw copy's bytes on ``host``: the first 4 KiB ``qemu-img create`` writes, then every
    block an operation allocated (zero writes allocate) that no later discard punched out whole."""
    first = (np.array([0]), np.array([min(4096, virtual_bytes)]), np.array([DATA]))
    offsets, sizes, kinds = (np.concatenate(parts) for parts in zip(first, *chain, strict=True))
    blocks = surviving_units(offsets, sizes, kinds == DISCARD, host.block_bytes)
    starts = blocks * host.block_bytes
    return host.occupied_bytes(starts, np.minimum(starts + host.block_bytes, virtual_bytes),
                               fmt.empty_bytes(virtual_bytes))


def chain_usage_with_ops(fmt: ImageFormat, virtual_bytes: int, base_writes: Writes, guest_ops: list[list[Ops]], *,
                         unmap: bool = False, host: HostFile | None = None) -> ChainUsage:
    """:func:`chain.build_chain_usage` for guests whose operations include zero writes and
    discards (``guest_ops[g][level]``: offsets, sizes and kinds in bytes, in order; the base
    holds data only). ``unmap``: the drives pass discards to the images (``discard=unmap``).
    File lengths, or with ``host`` the bytes each file occupies there; full clones hold the
    pieces with data left (:func:`piece_bytes`)."""
    for ops in [base_writes, *(ops for levels in guest_ops for ops in levels)]:
        check_inside(ops[0], ops[1], virtual_bytes)
    cleared = any(np.any(ops[2] != DATA) for levels in guest_ops for ops in levels)
    if isinstance(fmt, Raw) and host is not None and host.extent_hint_bytes and cleared:
        raise ValueError("zero writes and discards on a raw image on XFS are not modelled: QEMU's 1 MiB extent "
                         "size hint allocates whole MiB, which punches then free block by block and zero "
                         "writes allocate as unwritten extents elsewhere (review 31); use another host_fs kind, "
                         "or no zero writes and discards")
    base_ops = (*base_writes, np.full(len(base_writes[0]), DATA, dtype=np.int64))
    guests: list[tuple[int, ...]] = []
    clones: list[int] = []
    for levels in guest_ops:
        seen = [seen_by_image(fmt, ops, unmap) for ops in levels]
        pieces = clone_data_pieces(fmt, virtual_bytes, base_writes, levels, unmap, host)
        if isinstance(fmt, Raw):  # no backing file: each guest's disk is a whole copy
            own = fmt.empty_bytes(virtual_bytes) if host is None else _raw_bytes(fmt, [base_ops, *seen],
                                                                                 virtual_bytes, host)
            guests.append((own,))
            clones.append(fmt.empty_bytes(virtual_bytes) if host is None
                          else fmt.clone_physical_bytes(*pieces, virtual_bytes, host=host))
            continue
        disks = []
        for i, ops in enumerate(seen):
            # the clusters the chain below holds data in (what zero writes and discards left reading
            # as zeroes is not backing data: review 31)
            below = touched_units(*clone_data_pieces(fmt, virtual_bytes, base_writes, levels[:i], unmap),
                                  fmt.unit_bytes)
            disks.append(_disk_bytes(fmt, ops, virtual_bytes, below, host, unmap))
        guests.append(tuple(disks))
        clones.append(fmt.file_bytes(touched_units(*pieces, fmt.unit_bytes), virtual_bytes) if host is None
                      else fmt.clone_physical_bytes(*pieces, virtual_bytes, host=host))
    if isinstance(fmt, Raw):
        return ChainUsage(0, tuple(guests), tuple(clones))
    base = (fmt.file_bytes_after(*base_writes, virtual_bytes) if host is None
            else fmt.physical_bytes_after(*base_writes, virtual_bytes, host=host))
    return ChainUsage(base, tuple(guests), tuple(clones))
