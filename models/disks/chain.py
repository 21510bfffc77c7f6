"""Image chains: a base image shared by linked clones, each with its own differencing disk.

A guest sees its base plus its differencing disk(s); the host stores the base once plus every
differencing disk. A full clone is what ``qemu-img convert`` writes from a guest's chain: one
standalone image holding the *union* of the units allocated anywhere in the chain, so a unit
held by both the base and an overlay is stored once. The DockerInDeep guide's worked example: a
20 GB base and three guests changing 5, 10 and 7 GB (new data, outside the base's) see 25, 30
and 27 GB each, the host stores 42 GB, full clones would take 82 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from virtsim.models.disks.allocation import HostFile, check_inside, sorted_distinct, touched_units
from virtsim.models.disks.formats import ImageFormat, Qcow2, Raw, Vmdk

__all__ = ["COMMITTABLE", "MIRROR_GRANULE_BYTES", "REBASABLE", "REBASE_CHUNK_BYTES", "ChainUsage",
           "build_chain_usage", "committed", "disjoint_chain_usage", "emptied_bytes", "empties_completely", "rebased"]

Writes = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ChainUsage:
    """File sizes of a base image, each guest's differencing disks and each guest's full clone.

    ``guest_bytes[g]`` are guest g's differencing disks (bottom of its chain first);
    ``clone_bytes[g]`` is the size of one standalone image holding guest g's whole chain.
    """

    base_bytes: int
    guest_bytes: tuple[tuple[int, ...], ...]
    clone_bytes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.clone_bytes) != len(self.guest_bytes):
            raise ValueError("need one full-clone size per guest")

    def per_guest_view(self) -> list[int]:
        """What each guest's disk costs if counted alone: base + its own differencing disks."""
        return [self.base_bytes + sum(diffs) for diffs in self.guest_bytes]

    def private_bytes(self) -> int:
        """Bytes of every guest's differencing disks together (the base not included)."""
        return sum(sum(diffs) for diffs in self.guest_bytes)

    def linked_clones(self) -> int:
        """What the host stores with linked clones: the base once, plus every differencing disk."""
        return self.base_bytes + self.private_bytes()

    def full_clones(self) -> int:
        """What the host stores with full clones: one standalone image per guest."""
        return sum(self.clone_bytes)

    def saving(self) -> float:
        """Fraction of the full-clone bytes that linked clones save."""
        full = self.full_clones()
        return 1.0 - self.linked_clones() / full if full else 0.0


def disjoint_chain_usage(base_bytes: int, changes_bytes: list[int]) -> ChainUsage:
    """A chain counted in bytes, not units: each guest's changes are new data beside the base's
    (the guide's reading), so a full clone holds base + changes."""
    return ChainUsage(base_bytes, tuple((c,) for c in changes_bytes),
                      tuple(base_bytes + c for c in changes_bytes))


def build_chain_usage(fmt: ImageFormat, virtual_bytes: int, base_writes: Writes,
                      guest_writes: list[list[Writes]], *, host: HostFile | None = None) -> ChainUsage:
    """Sizes of a chain whose base and differencing disks received the given writes: file
    lengths (what ``ls`` shows), or with ``host`` what each file occupies on that host file
    system (``du``; sparse files count only what was written).

    Each write set is (offsets, sizes) in bytes, inside the virtual size. A differencing disk
    allocates a unit on any write to it, whatever its parents hold (copy-on-write of the whole
    unit). A raw image cannot have a backing file: every guest gets its own full copy.
    """
    for writes in [base_writes, *(w for levels in guest_writes for w in levels)]:
        check_inside(*writes, virtual_bytes)
    if host is not None:
        return _physical_chain_usage(fmt, virtual_bytes, base_writes, guest_writes, host)
    if isinstance(fmt, Raw):
        length = fmt.empty_bytes(virtual_bytes)  # whole sectors, as qemu-img makes it
        return ChainUsage(0, tuple((length,) for _ in guest_writes), tuple(length for _ in guest_writes))
    base = touched_units(*base_writes, fmt.unit_bytes)
    guests, clones = [], []
    for levels in guest_writes:
        # each disk as its writes made it (their order matters to a large qcow2 file), the
        # clone as qemu-img convert writes the union: in ascending order
        guests.append(tuple(fmt.file_bytes_after(*w, virtual_bytes, differencing=True) for w in levels))
        units = [touched_units(*w, fmt.unit_bytes) for w in levels]
        # a sort, not np.union1d: numpy 2.4's hashing np.unique took 5 s per guest here
        clones.append(fmt.file_bytes(sorted_distinct(np.concatenate([base, *units])), virtual_bytes))
    return ChainUsage(fmt.file_bytes_after(*base_writes, virtual_bytes), tuple(guests), tuple(clones))


def _physical_chain_usage(fmt: ImageFormat, virtual_bytes: int, base_writes: Writes,
                          guest_writes: list[list[Writes]], host: HostFile) -> ChainUsage:
    """:func:`build_chain_usage` in bytes occupied on the host (see there)."""
    clones = []
    for levels in guest_writes:
        chain = [base_writes, *levels]
        clones.append(fmt.clone_physical_bytes(np.concatenate([w[0] for w in chain]),
                                               np.concatenate([w[1] for w in chain]), virtual_bytes,
                                               host=host))
    if isinstance(fmt, Raw):  # each guest's disk is a full copy, sparse, holding what was written
        return ChainUsage(0, tuple((c,) for c in clones), tuple(clones))
    guests = [tuple(fmt.physical_bytes_after(*w, virtual_bytes, differencing=True, host=host)
                    for w in levels) for levels in guest_writes]
    base = fmt.physical_bytes_after(*base_writes, virtual_bytes, host=host)
    return ChainUsage(base, tuple(guests), tuple(clones))


COMMITTABLE = ("qcow2", "vmdk")
"""The formats QEMU keeps a backing file for, so chains of them can be committed (``qemu-img
create -b`` refuses VDI and VHDX; raw has no backing file)."""

REBASABLE = ("qcow2",)
"""The formats whose backing file QEMU can change (``qemu-img rebase`` of a VMDK fails: "Could not
change the backing file", review 11)."""

MIRROR_GRANULE_BYTES = 4096
"""``qemu-img commit`` runs QEMU's mirror job, which copies dirty granules of
``max(4096, cluster)`` bytes (``bdrv_get_default_bitmap_granularity``): a 512-byte write in a
512-byte-cluster overlay costs the backing image 8 clusters (review 11)."""


def _units_as_writes(units: np.ndarray, unit_bytes: int) -> Writes:
    return np.asarray(units, dtype=np.int64) * unit_bytes, np.full(len(units), unit_bytes, dtype=np.int64)


def _check_committable(fmt: ImageFormat, rebase: bool = False) -> None:
    if fmt.name not in COMMITTABLE:
        raise ValueError(f"{fmt.name} images take no backing file in QEMU, so a chain of them cannot be "
                         f"committed or rebased; chains are {' and '.join(COMMITTABLE)}")
    if rebase and fmt.name not in REBASABLE:
        raise ValueError(f"QEMU cannot change a {fmt.name} image's backing file (qemu-img rebase fails), so it "
                         f"cannot be rebased or flattened that way; qemu-img convert copies it whole (a full clone)")


def _append(fmt: ImageFormat, own: Writes, units: np.ndarray) -> Writes:
    """``own`` followed by each of ``units`` not already touched by it, written whole, ascending."""
    new = np.setdiff1d(np.asarray(units, dtype=np.int64), touched_units(*own, fmt.unit_bytes))
    offsets, sizes = _units_as_writes(new, fmt.unit_bytes)
    return np.concatenate([own[0], offsets]), np.concatenate([own[1], sizes])


def committed(fmt: ImageFormat, lower: Writes, upper: Writes) -> Writes:
    """The writes that leave an image as ``qemu-img commit`` of its overlay leaves it: ``lower``
    (the backing image's own writes, offsets and sizes in bytes), then every unit ``upper`` (the
    overlay's writes) allocated, copied whole. Sizes follow from :meth:`ImageFormat.file_bytes_after`
    and ``physical_bytes_after`` as for any writes. QEMU's mirror job copies several ranges at once,
    so the order of the new units in the file (``qemu-img map``) is not modelled; the file's
    length is exact while it stays within its first refcount table (checked against qemu-img 7.2
    for qcow2 chains of 512 B .. 64 KiB clusters and VMDK chains). Past it (past 4 GiB of file at
    4 KiB clusters, 8 MiB at 512 B) the length depends on the order of QEMU's requests: review 11
    measured the model 0.02% high there. Clusters under 4 KiB are copied in 4 KiB granules
    (:data:`MIRROR_GRANULE_BYTES`). Committing through several levels (``commit -b``): commit the
    levels' writes concatenated."""
    _check_committable(fmt)
    unit = fmt.unit_bytes
    if unit < MIRROR_GRANULE_BYTES:  # whole granules: every cluster of each dirty 4 KiB piece
        granules = touched_units(*upper, MIRROR_GRANULE_BYTES)
        per = MIRROR_GRANULE_BYTES // unit
        units = (granules[:, None] * per + np.arange(per)[None, :]).ravel()
    else:
        units = touched_units(*upper, unit)
    return _append(fmt, lower, units)


def empties_completely(fmt: ImageFormat, virtual_bytes: int) -> bool:
    """Whether ``qemu-img commit`` empties an overlay of this format and size in one step (qcow2
    whose L1 table fits beside one refcount block: ``make_completely_empty``; then
    :func:`emptied_bytes` knows its size). Otherwise QEMU discards the overlay's clusters one by
    one, which leaves a file whose length is not modelled (seen to grow: 0.6 MB to 34 MB for a
    2 GiB overlay of 512 B clusters)."""
    if not isinstance(fmt, Qcow2):
        return False
    l1_clusters = -(-fmt.l1_bytes(virtual_bytes) // fmt.unit_bytes)
    return 3 + l1_clusters <= fmt.unit_bytes * 8 // fmt.refcount_bits


def emptied_bytes(fmt: ImageFormat, virtual_bytes: int, upper: Writes) -> int:
    """The overlay's file length after ``qemu-img commit`` (bytes): a qcow2 overlay is emptied
    (``make_completely_empty``: header, refcount table, one refcount block and the L1 table, in
    whole clusters; unless ``-d``), a VMDK one keeps what it holds (the format cannot be
    emptied). A qcow2 overlay :func:`empties_completely` refuses is a :class:`ValueError`."""
    _check_committable(fmt)
    if isinstance(fmt, Qcow2):
        if not empties_completely(fmt, virtual_bytes):
            raise ValueError(f"an emptied qcow2 overlay of {virtual_bytes} bytes in {fmt.unit_bytes}-byte clusters "
                             "has an L1 table too large for one refcount block; its size after commit is not "
                             "modelled (use larger clusters, or commit -d)")
        return (3 + -(-fmt.l1_bytes(virtual_bytes) // fmt.unit_bytes)) * fmt.unit_bytes
    assert isinstance(fmt, Vmdk)
    return fmt.file_bytes_after(*upper, virtual_bytes, differencing=True)


REBASE_CHUNK_BYTES = 2 * 2**20
"""``qemu-img rebase`` compares the old and new backing files at most this much at a time
(``IO_BUF_SIZE``), over runs of the overlay's unallocated clusters."""


def _merged(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals [starts, ends) as sorted disjoint intervals (touching ones joined)."""
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.concatenate([[True], starts[1:] > reach[:-1]])
    return starts[new], np.maximum.reduceat(ends, np.flatnonzero(new))


def _rebase_runs(fmt: ImageFormat, upper: Writes, dropped: list[Writes], virtual_bytes: int) -> Writes:
    """The writes ``qemu-img rebase`` makes into the overlay, in order (``img_rebase``): over each
    run of clusters the overlay has not allocated, in pieces of at most
    :data:`REBASE_CHUNK_BYTES` from the run's start, one write per run of 512-byte sectors where
    the old chain differs from the new one (here: the sectors the dropped levels wrote)."""
    unit = fmt.unit_bytes
    offsets = np.concatenate([np.asarray(w[0], dtype=np.int64) for w in dropped]) if dropped else np.zeros(0, np.int64)
    sizes = np.concatenate([np.asarray(w[1], dtype=np.int64) for w in dropped]) if dropped else np.zeros(0, np.int64)
    some = sizes > 0
    d0, d1 = _merged(offsets[some] // 512 * 512, -(-(offsets[some] + sizes[some]) // 512) * 512)
    own = touched_units(*upper, unit)
    if own.size:  # the overlay's allocated runs, and the unallocated runs between them
        breaks = np.flatnonzero(np.diff(own) > 1)
        a0 = own[np.concatenate([[0], breaks + 1])] * unit
        a1 = (own[np.concatenate([breaks, [own.size - 1]])] + 1) * unit
    else:
        a0 = a1 = np.zeros(0, np.int64)
    u0 = np.concatenate([[0], a1])
    u1 = np.concatenate([a0, [virtual_bytes]])
    keep = u1 > u0
    u0, u1 = u0[keep], u1[keep]
    out_offsets: list[int] = []
    out_sizes: list[int] = []
    j = 0
    for start, end in zip(d0.tolist(), d1.tolist(), strict=True):  # each differing run, clipped to
        while j < len(u0) and u1[j] <= start:  # the unallocated runs it meets, cut at chunk ends
            j += 1
        k = j
        while k < len(u0) and u0[k] < end:
            lo, hi = max(start, int(u0[k])), min(end, int(u1[k]))
            base = int(u0[k])
            while lo < hi:
                cut = min(hi, base + ((lo - base) // REBASE_CHUNK_BYTES + 1) * REBASE_CHUNK_BYTES)
                out_offsets.append(lo)
                out_sizes.append(cut - lo)
                lo = cut
            k += 1
    return (np.concatenate([np.asarray(upper[0], dtype=np.int64), np.array(out_offsets, dtype=np.int64)]),
            np.concatenate([np.asarray(upper[1], dtype=np.int64), np.array(out_sizes, dtype=np.int64)]))


def rebased(fmt: ImageFormat, upper: Writes, dropped: list[Writes], virtual_bytes: int | None = None) -> Writes:
    """The overlay's writes after ``qemu-img rebase`` (safe mode) onto a backing chain without
    the levels ``dropped`` (their writes; all levels below it for ``rebase -b ""``, a flatten):
    where the old chain reads differently from the new one, QEMU copies the old data into the
    overlay, allocating the overlay's units. Every write is taken to change what it overwrites
    (QEMU compares contents: a level that wrote the same bytes as below costs nothing there).
    With ``virtual_bytes``, the copies are QEMU's own writes (:func:`_rebase_runs`: runs of
    differing sectors, at most 2 MiB at a time), which matter past the first refcount table,
    where the length depends on the requests' sizes and order; without, each unit is copied
    whole and alone (the same length while the file stays within that table). Exact against
    qemu-img 7.2 for qcow2 chains with distinct data per level within that table and, with QEMU's
    writes, past it at 512 B clusters; review 11's 4.7 GB file at 4 KiB clusters is still 54
    clusters (0.005%) short with them, for a reason not found. qcow2 only (:data:`REBASABLE`)."""
    _check_committable(fmt, rebase=True)
    if virtual_bytes is not None:
        return _rebase_runs(fmt, upper, dropped, virtual_bytes)
    units = [touched_units(*w, fmt.unit_bytes) for w in dropped]
    return _append(fmt, upper, sorted_distinct(np.concatenate(units)) if units else np.zeros(0, np.int64))
