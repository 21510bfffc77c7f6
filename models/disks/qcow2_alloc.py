"""Where QEMU puts qcow2 clusters: its allocator replayed one allocation request at a time.

While the refcount table has room, a qcow2 file is dense: every cluster below its end is used,
and its size is a count (header, refcount table and blocks, L1, L2 tables, data). Once the
clusters outgrow what the table can point to (``cluster/8`` refcount blocks of ``cluster/2``
clusters each: 8 MiB of file at 512 B clusters, 64 MiB at 1 KiB, 512 MiB at 2 KiB, 4 GiB at
4 KiB, 16 TiB at 64 KiB), QEMU builds a table 1.5 times larger, with the refcount blocks that
cover it, at the start of the *next* refcount block's range, and frees the old table
(``alloc_refcount_block`` and ``qcow2_refcount_area`` in ``block/qcow2-refcount.c``). That
leaves free clusters below the end of the file: the gap up to the new table and the old table.
Later requests fill them first-fit from QEMU's free-cluster cursor, but a request of n clusters
only takes n contiguous ones, and the cursor never moves back except when clusters are freed or
the image is opened again. The size then depends on the order and sizes of the requests, so
this module replays them:

- requests (:func:`requests_from_writes`): each write, for each run of clusters it allocates
  inside one L2 table, asks for a new L2 table first if that table has none yet
  (``get_cluster_table``), then for the run (``handle_alloc``); a run that follows another
  piece of the same write first tries to continue right after it (``qcow2_alloc_clusters_at``);
- the allocator (:class:`_Allocator`): ``alloc_clusters_noref``, ``update_refcount`` (with the
  undo and cursor reset when a refcount block had to be allocated), ``alloc_refcount_block``,
  ``qcow2_refcount_area`` and ``qcow2_refcount_metadata_size`` as in QEMU 7.2.

Free space is kept as a short list of holes below the end of the used area. While no hole lies
at or after the cursor, the file stays dense and requests are placed with cumulative sums and
searchsorted, a refcount block after each request that enters a new range (:meth:`_Allocator.
dense`); requests go through QEMU's functions one by one only around a table growth, while
holes are within reach, and at the odd request that enters two ranges. The replay is exact
(it agrees with ``qemu-img``/``qemu-io`` byte for byte, tests/models/test_qcow2_alloc.py) but
for one case it cannot know: a run that continues a write after an already allocated cluster
other than the latest one allocated is taken to start elsewhere (the cluster after it is
almost always used), which matters only if that cluster borders a free hole.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from virtsim.models.disks.allocation import unit_indices

__all__ = ["DATA", "DISCARD", "GROW", "RESIZE", "ZERO", "Requests", "cluster_map", "compressed_image_bytes",
           "discarded_clusters", "file_bytes",
           "replayed", "requests_from_units", "requests_from_writes", "requests_with_discards", "written_ranges"]

FRESH, AFTER_NEW, AFTER_OLD = 0, 1, 2  # how a data run is placed, see Requests.cont
_DENSE_RANGES = 4096  # at most this many new refcount block ranges per vectorized step


@dataclass(frozen=True)
class Requests:
    """Allocation requests in the order QEMU makes them; every count is in clusters.

    ``cont`` says where a data run is first tried: FRESH anywhere (first fit from the cursor);
    AFTER_NEW right after the previous run of the same write; AFTER_OLD right after the
    already allocated guest cluster ``anchor`` that the same write touched just before.
    """

    size: np.ndarray  # clusters asked for (1 for an L2 table)
    is_l2: np.ndarray  # an L2 table rather than a data run
    cont: np.ndarray  # FRESH, AFTER_NEW or AFTER_OLD
    anchor: np.ndarray  # guest cluster before the run when cont == AFTER_OLD, else -1
    guest: np.ndarray  # first guest cluster of a data run (-1 for an L2 table)
    write: np.ndarray  # index of the write that makes the request
    # a discard freeing guest cluster ``guest`` (size 1): its host cluster is freed, and QEMU
    # allocates the next new clusters there first (None: no discards)
    free: np.ndarray | None = None
    # a resize growing the disk: the entries of the L1 table it needs (0: no resize; None: none)
    l1: np.ndarray | None = None
    # the L2 table an L2 request allocates (-1 otherwise; None: not tracked)
    table: np.ndarray | None = None
    # a free made by a resize, whose cluster QEMU punches out of the host file whatever the
    # drive's discard setting (QCOW2_DISCARD_ALWAYS; None: none)
    always: np.ndarray | None = None
    # a shrink's last step: the L1 entries the smaller disk keeps (0: none; None: no shrink),
    # see :meth:`_Allocator.shrink`
    cut: np.ndarray | None = None
    # a data run a grow with preallocation=metadata allocates without writing (None: none)
    unwritten: np.ndarray | None = None
    # a grow with preallocation falloc or full: its ``size`` data clusters from guest cluster
    # ``guest`` (None: none), see :meth:`_Allocator.data_area`
    area: np.ndarray | None = None
    # a write into such a cluster (``guest``), which QEMU makes where it lies, of ``size`` bytes
    # from byte ``anchor`` of the cluster: only those bytes reach the file (None: none)
    filled: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.size.size)


def requests_from_writes(offsets: np.ndarray, sizes: np.ndarray, cluster_bytes: int,
                         zero: np.ndarray | None = None, backing_units: np.ndarray | None = None) -> Requests:
    """The allocation requests of writes (byte offsets and sizes) made in this order.

    ``zero``: which writes write zeroes (``qemu-io write -z``, a guest's WRITE ZEROES without
    unmap). QEMU marks the clusters they cover as zero clusters, which hold no data but need
    their L2 table; a cluster already allocated stays so. Only a cluster a zero write covers in
    part, and whose other bytes read as data from the backing file (``backing_units``, sorted
    guest clusters), is allocated: the block layer writes that part as zeroes, copying the rest.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    touched = unit_indices(offsets, sizes, cluster_bytes)  # write order, repeats kept
    spans = (offsets + sizes - 1) // cluster_bytes - offsets // cluster_bytes + 1
    write_starts = np.cumsum(spans) - spans  # position of each write's first touch
    l2_entries = cluster_bytes // 8
    zero_touch: np.ndarray | None = None
    if zero is not None and np.any(zero):
        write_of = np.repeat(np.arange(offsets.size), spans)
        zero_touch = np.asarray(zero, dtype=bool)[write_of]
        lo = np.maximum(offsets[write_of], touched * cluster_bytes)
        hi = np.minimum((offsets + sizes)[write_of], (touched + 1) * cluster_bytes)
        backed = np.zeros(touched.size, dtype=bool)
        if backing_units is not None and len(backing_units):
            backing = np.asarray(backing_units, dtype=np.int64)
            at = np.minimum(np.searchsorted(backing, touched), backing.size - 1)
            backed = backing[at] == touched
        new, first_in_table = _allocating_touches(touched, zero_touch, (hi - lo < cluster_bytes) & backed, l2_entries)
        del write_of, lo, hi, backed
    else:
        new, first_in_table = _first_touches(touched, l2_entries)
    del spans

    # A piece: consecutive touches of one write in one L2 table, all new or all old; a zero
    # write's pieces are one cluster each (its head and tail are separate writes in QEMU).
    cut = np.zeros(touched.size, dtype=bool)
    cut[write_starts] = True
    cut[1:] |= (touched[1:] // l2_entries != touched[:-1] // l2_entries)
    cut[1:] |= new[1:] != new[:-1]
    if zero_touch is not None:
        cut |= zero_touch
    start = np.flatnonzero(cut)
    del cut
    length = np.diff(np.append(start, touched.size))
    write = np.searchsorted(write_starts, start, side="right") - 1  # the write of each piece
    follows = np.zeros(start.size, dtype=bool)  # another piece of the same write came before
    follows[1:] = write[1:] == write[:-1]
    after_new = np.zeros(start.size, dtype=bool)
    after_new[1:] = new[start[:-1]]
    cont = np.where(follows, np.where(after_new, AFTER_NEW, AFTER_OLD), FRESH).astype(np.int8)
    if zero_touch is not None:
        cont[zero_touch[start]] = FRESH
    anchor = np.where(cont == AFTER_OLD, touched[np.maximum(start - 1, 0)], -1)

    runs = np.flatnonzero(new[start])  # only new pieces allocate
    s = start[runs]
    # Each run asks for its L2 table first when it is the table's first touch; a table first
    # touched by a zero write that allocates nothing gets its table alone (L2-only requests).
    alone = np.flatnonzero(first_in_table & ~new)
    position = np.concatenate([s, s, alone])
    order = np.lexsort((np.concatenate([np.zeros(s.size), np.ones(s.size), np.zeros(alone.size)]), position))
    keep = np.concatenate([first_in_table[s], np.ones(s.size, dtype=bool), np.ones(alone.size, dtype=bool)])[order]
    alone_write = np.searchsorted(write_starts, alone, side="right") - 1

    def pick(for_l2: np.ndarray | int, for_run: np.ndarray, for_alone: np.ndarray | int) -> np.ndarray:
        parts = [np.broadcast_to(for_l2, s.shape), for_run, np.broadcast_to(for_alone, alone.shape)]
        return np.concatenate(parts).astype(np.asarray(for_run).dtype)[order][keep]

    return Requests(
        size=pick(1, length[runs].astype(np.int64), 1),
        is_l2=pick(True, np.zeros(runs.size, dtype=bool), True),
        cont=pick(FRESH, cont[runs], FRESH),
        anchor=pick(-1, anchor[runs], -1),
        guest=pick(-1, touched[s], -1),
        write=pick(write[runs], write[runs], alone_write),
    )


def _allocating_touches(touched: np.ndarray, zero: np.ndarray, partial_backed: np.ndarray,
                        l2_entries: int) -> tuple[np.ndarray, np.ndarray]:
    """With zero writes: the touch that allocates each cluster (its first data write, or its first
    touch if that is a zero write in part over backing data; a zero write that covers it first,
    or finds it reading as zero, makes it a zero cluster instead), and each table's first touch."""
    order = np.argsort(touched, kind="stable")
    ordered = touched[order]
    group = np.ones(touched.size, dtype=bool)
    group[1:] = ordered[1:] != ordered[:-1]
    first_of_group = np.zeros(touched.size, dtype=bool)
    first_of_group[order[group]] = True
    candidate = ~zero | (first_of_group & partial_backed)
    position = np.where(candidate[order], order, touched.size)  # in cluster order, earliest first
    earliest = np.minimum.reduceat(position, np.flatnonzero(group))
    new = np.zeros(touched.size, dtype=bool)
    new[earliest[earliest < touched.size]] = True
    tables = ordered // l2_entries
    table_cut = np.flatnonzero(np.append(True, tables[1:] != tables[:-1]))
    first_in_table = np.zeros(touched.size, dtype=bool)
    first_in_table[np.minimum.reduceat(order, table_cut)] = True
    return new, first_in_table


def _first_touches(touched: np.ndarray, l2_entries: int) -> tuple[np.ndarray, np.ndarray]:
    """Which touches are a cluster's first (it is new then), and which are the first of an L2
    table (always also a cluster's first): one stable sort for both."""
    if touched.size > 1 and bool(np.all(touched[1:] > touched[:-1])):  # each cluster once, ascending
        tables = touched // l2_entries
        return np.ones(touched.size, dtype=bool), np.append(True, tables[1:] != tables[:-1])
    order = np.argsort(touched, kind="stable")
    ordered = touched[order]
    group = np.ones(touched.size, dtype=bool)  # first of its cluster in sorted order
    group[1:] = ordered[1:] != ordered[:-1]
    firsts = order[group]  # earliest touch of each cluster (stable sort), clusters ascending
    del order
    tables = ordered[group] // l2_entries
    del ordered, group
    new = np.zeros(touched.size, dtype=bool)
    new[firsts] = True
    table_cut = np.flatnonzero(np.append(True, tables[1:] != tables[:-1]))
    first_in_table = np.zeros(touched.size, dtype=bool)
    if firsts.size:
        first_in_table[np.minimum.reduceat(firsts, table_cut)] = True
    return new, first_in_table


DATA, ZERO, DISCARD, GROW = 0, 1, 2, 3  # what an operation of requests_with_discards does
RESIZE = GROW  # a resize to its offset: a grow or, to a smaller size, a shrink
MAX_L1_BYTES = 32 * 2**20  # QEMU's QCOW_MAX_L1_SIZE


def check_virtual_bytes(virtual_bytes: int) -> None:
    """Refuse a virtual size QEMU would not keep (raises ``ValueError``): ``qemu-img create``
    rounds a size up to whole 512-byte sectors, so an image of any other size does not exist."""
    if virtual_bytes <= 0 or virtual_bytes % 512:
        rounded = max(512, -(-virtual_bytes // 512) * 512)
        raise ValueError(f"a virtual size of {virtual_bytes} bytes: QEMU's disks are whole 512-byte sectors "
                         f"(qemu-img create makes {rounded} bytes of it); give {rounded}")


def l1_entries(virtual_bytes: int, cluster_bytes: int) -> int:
    """Entries of the L1 table of a disk of ``virtual_bytes``: one per L2 table's span (QEMU's
    ``size_to_l1``)."""
    return math.ceil(virtual_bytes / (cluster_bytes * (cluster_bytes // 8)))


def requests_with_discards(offsets: np.ndarray, sizes: np.ndarray, cluster_bytes: int, kinds: np.ndarray,
                           backing_units: np.ndarray | None = None, virtual_bytes: int | None = None,
                           backing_virtual_bytes: int | None = None) -> Requests:
    """The requests of writes, zero writes, discards and resizes (``kinds``: DATA, ZERO, DISCARD,
    RESIZE, alias GROW) made in this order, one operation at a time (for sequences with discards
    or resizes; else :func:`requests_from_writes` is the vectorized equivalent). A RESIZE's
    offset is the disk's new virtual size (bytes), a multiple of 512 (QEMU refuses others).
    Growing past what the L1 table maps moves the table (``qcow2_grow_l1_table``,
    :meth:`_Allocator.grow_l1`); shrinking discards the clusters past the new end, frees the
    L2 tables and refcount blocks left unused and truncates the file (:meth:`_OneByOne._shrink`,
    :meth:`_Allocator.shrink`; ``qemu-img resize`` asks for ``--shrink`` first, the model does
    not). A resize is an online one (QMP ``block_resize``, ``qemu-io truncate``): ``qemu-img
    resize`` between two sessions also reopens the image, which resets QEMU's free-cluster
    cursor (give the sessions as such). Every operation must lie inside the disk's size at its
    turn, as QEMU refuses it otherwise. Over a backing file a grow needs the backing file's
    virtual size (``backing_virtual_bytes``): where the backing file is longer than the disk
    was, QEMU zero-fills the new area (``bdrv_co_truncate``, :meth:`_OneByOne._zero_fill`).

    A discard frees the allocated clusters it covers whole (QEMU ignores the partial clusters
    at its ends, except the disk's partial last cluster when the discard reaches the end of a
    disk of ``virtual_bytes``) and leaves them reading as zeroes (no more backing data); a
    later write to such a cluster allocates it anew. ``backing_units`` given (even empty), the
    image has a backing file. A discard reaching the image (a drive with ``discard=unmap``) finds
    the L2 table of every whole cluster it covers and so allocates those missing
    (``get_cluster_table``), with a backing file or not."""
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    backing = set(np.asarray(backing_units, dtype=np.int64).tolist()) if backing_units is not None else set()
    image = _OneByOne(cluster_bytes, backing, virtual_bytes, backing_units is not None, backing_virtual_bytes)
    do: dict[int, Callable[[int, int, int], None]] = {DISCARD: image.discard, ZERO: image.zero, DATA: image.data,
                                                      RESIZE: image.resize}
    for op, (offset, size, kind) in enumerate(zip(offsets.tolist(), sizes.tolist(), np.asarray(kinds).tolist(),
                                                  strict=True)):
        do[kind](op, offset, size)
    rows = image.rows
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 11
    return Requests(size=np.array(columns[0], dtype=np.int64), is_l2=np.array(columns[1], dtype=bool),
                    cont=np.array(columns[2], dtype=np.int8), anchor=np.array(columns[3], dtype=np.int64),
                    guest=np.array(columns[4], dtype=np.int64), write=np.array(columns[5], dtype=np.int64),
                    free=np.array(columns[6], dtype=bool), l1=np.array(columns[7], dtype=np.int64),
                    table=np.array(columns[8], dtype=np.int64), always=np.array(columns[9], dtype=bool),
                    cut=np.array(columns[10], dtype=np.int64),
                    unwritten=np.isin(np.arange(len(rows)), sorted(image.unwritten)),
                    filled=np.isin(np.arange(len(rows)), sorted(image.filled)),
                    area=np.isin(np.arange(len(rows)), sorted(image.areas)))


def discarded_clusters(offset: int, size: int, cluster_bytes: int, virtual_bytes: int | None = None) -> tuple[int, int]:
    """The clusters [lo, hi) a qcow2 discard of [offset, offset + size) frees: those it covers
    whole, and the disk's partial last cluster if the discard runs to the end of a disk of
    ``virtual_bytes`` (``qcow2_co_pdiscard``'s one exception to whole clusters)."""
    lo = -(-offset // cluster_bytes)
    end = offset + size
    hi = end // cluster_bytes
    if virtual_bytes is not None and end == virtual_bytes and virtual_bytes % cluster_bytes \
            and offset <= hi * cluster_bytes:
        hi += 1
    return lo, max(lo, hi)


class _OneByOne:
    """The clusters of an image as :func:`requests_with_discards` makes its operations one at a
    time, and the requests (rows: size, l2, cont, anchor, guest, write, free, l1) they cause."""

    def __init__(self, cluster_bytes: int, backing: set[int], virtual_bytes: int | None = None,
                 has_backing: bool = False, backing_virtual_bytes: int | None = None) -> None:
        self.cluster = cluster_bytes
        self.l2_entries = cluster_bytes // 8
        self.backing = backing
        self.virtual_bytes = virtual_bytes
        self.has_backing = has_backing
        self.backing_virtual_bytes = backing_virtual_bytes
        self.allocated: set[int] = set()
        self.reads_zero: set[int] = set()  # zero clusters, and discarded ones: no backing data shows through
        self.tables: set[int] = set()
        # size, l2, cont, anchor, guest, write, free, l1, table, always, cut (Requests' columns)
        self.rows: list[tuple[int, bool, int, int, int, int, bool, int, int, bool, int]] = []
        self.unwritten: set[int] = set()  # rows of data runs allocated but not written
        self.filled: set[int] = set()  # rows writing into such clusters in place
        self.areas: set[int] = set()  # rows of a preallocated (falloc, full) grow's data clusters
        # guest clusters allocated unwritten, whose later writes reach the file byte by byte
        self.preallocated: set[int] = set()
        self.l1 = 0
        if virtual_bytes is not None:
            check_virtual_bytes(virtual_bytes)
            self.l1 = l1_entries(virtual_bytes, cluster_bytes)

    def _table(self, c: int, op: int) -> None:
        """Allocate the L2 table that maps cluster ``c``, if there is none yet."""
        if c // self.l2_entries not in self.tables:
            self.tables.add(c // self.l2_entries)
            self.rows.append((1, True, FRESH, -1, -1, op, False, 0, c // self.l2_entries, False, 0))

    def discard(self, op: int, offset: int, size: int) -> None:
        """Free the allocated clusters the discard covers whole; they read as zeroes from now on."""
        self._inside(op, offset, size)
        lo, hi = discarded_clusters(offset, size, self.cluster, self.virtual_bytes)
        for c in range(lo, hi):
            self._table(c, op)  # QEMU finds (and so allocates) its L2 table first: get_cluster_table
            if c in self.allocated:
                self.allocated.discard(c)
                self.preallocated.discard(c)
                self.rows.append((1, False, FRESH, -1, c, op, True, 0, -1, False, 0))
            self.reads_zero.add(c)

    def _inside(self, op: int, offset: int, size: int) -> None:
        """Refuse an operation past the disk's end at its turn (QEMU fails it: review 34 F3)."""
        if self.virtual_bytes is not None and offset + size > self.virtual_bytes:
            raise ValueError(f"operation {op} ends at byte {offset + size}, past the disk's virtual size of "
                             f"{self.virtual_bytes} bytes at that point (QEMU fails it); grow the disk first")

    def resize(self, op: int, virtual_bytes: int, preallocation: int) -> None:
        """A resize to ``virtual_bytes`` (QEMU's ``qcow2_co_truncate``): :meth:`_shrink` if smaller,
        else a new L1 table where the disk needs more entries than the table has, with
        ``preallocation`` 1 (``metadata``: 0 is ``off``) the new area's clusters allocated
        unwritten (:meth:`_preallocate`), with 2 or 3 (``falloc``, ``full``) allocated after new
        refcount structures (:meth:`_allocate_area`), and over a backing file longer than the
        disk was, the new area zero-filled (:meth:`_zero_fill`)."""
        if preallocation not in (0, 1, 2, 3):
            raise ValueError(f"a resize's size field is its preallocation mode (0 off, 1 metadata, 2 falloc, 3 full), "
                             f"got {preallocation}")
        if preallocation and virtual_bytes <= (self.virtual_bytes or 0):
            raise ValueError("a shrink takes no preallocation (\"Preallocation can't be used for shrinking an image\")")
        if self.virtual_bytes is None:
            raise ValueError("a resize needs the disk's virtual size at the start (virtual_bytes)")
        if virtual_bytes <= 0 or virtual_bytes % 512:
            raise ValueError(f"a resize to {virtual_bytes} bytes: QEMU takes only multiples of 512 (\"The new size "
                             "must be a multiple of 512\"; review 34 F2)")
        if virtual_bytes < self.virtual_bytes:
            self._shrink(op, virtual_bytes)
            return
        if self.has_backing and self.backing_virtual_bytes is None:
            raise ValueError("growing a qcow2 disk over a backing file needs the backing file's virtual size "
                             "(backing_virtual_bytes): where it is longer than the disk, QEMU zero-fills the new area")
        entries = l1_entries(virtual_bytes, self.cluster)
        if entries * 8 > MAX_L1_BYTES:
            raise ValueError(f"a qcow2 disk of {virtual_bytes} bytes in {self.cluster}-byte clusters needs an L1 "
                             f"table of {entries * 8} bytes, past QEMU's largest ({MAX_L1_BYTES}): qemu-img resize "
                             "refuses it (larger clusters map more per L1 entry)")
        old = self.virtual_bytes
        self.virtual_bytes = virtual_bytes
        if entries > self.l1:  # a table a shrink left longer than the disk needs is kept, not replaced
            self.l1 = entries
            self.rows.append((0, False, FRESH, -1, -1, op, False, entries, -1, False, 0))
        if preallocation == 1:
            self._preallocate(op, old, virtual_bytes)
        elif preallocation:
            self._allocate_area(op, old, virtual_bytes)
        if self.has_backing and self.backing_virtual_bytes is not None and self.backing_virtual_bytes > old:
            self._zero_fill(op, old, virtual_bytes)

    def _fill(self, op: int, offset: int, size: int, first: int, last: int, whole_too: bool = True) -> None:
        """Bytes written into preallocated clusters (a row each): QEMU writes only them, in place,
        neither copying nor zero-filling the rest of the cluster (checked with qemu-io 7.2).
        ``whole_too``: clusters the write covers whole count too (not for a zero write, which
        just marks them zero)."""
        if not self.preallocated:
            return
        c = self.cluster
        for x in sorted(self.preallocated.intersection(range(first, last + 1))):
            lo, hi = max(offset, x * c), min(offset + size, (x + 1) * c)
            if whole_too or hi - lo < c:
                self.filled.add(len(self.rows))
                self.rows.append((hi - lo, False, FRESH, lo - x * c, x, op, False, 0, -1, False, 0))

    def _allocate_area(self, op: int, old: int, new: int) -> None:
        """``preallocation=falloc`` or ``full``: the new area's data clusters in a row after new
        refcount structures (:meth:`_Allocator.data_area`), then each L2 table of the area found
        or allocated as its entries are written (``qcow2_alloc_cluster_link_l2``). A disk whose
        old size ends inside a cluster is not modelled."""
        c = self.cluster
        if old % c:
            raise ValueError(f"growing a qcow2 disk of {old} bytes, not whole {c}-byte clusters, with "
                             "preallocation=falloc or full is not modelled")
        first, n = old // c, -(-new // c) - old // c
        if n <= 0:
            return
        self.areas.add(len(self.rows))
        self.rows.append((n, False, FRESH, -1, first, op, False, 0, -1, False, 0))
        for t in range(first // self.l2_entries, (first + n - 1) // self.l2_entries + 1):
            self._table(max(first, t * self.l2_entries), op)
        self.allocated.update(range(first, first + n))

    def _preallocate(self, op: int, old: int, new: int) -> None:
        """``preallocation=metadata`` (``preallocate_co``): the new area's clusters allocated as a
        write of it would allocate them (an L2 table, then a run, table by table; at most 2 GiB
        a call), their L2 entries marked zero, and the file extended over them without writing
        them (sparse). A disk whose old size ends inside a cluster is not modelled (QEMU writes
        part of that cluster)."""
        c = self.cluster
        if old % c:
            raise ValueError(f"growing a qcow2 disk of {old} bytes, not whole {c}-byte clusters, with "
                             "preallocation=metadata is not modelled (QEMU copies part of its last cluster)")
        chunk = (2**31 - 1) // c * c  # QEMU_ALIGN_DOWN(INT_MAX, cluster_size) a call
        for start in range(old, new, chunk):
            first = len(self.rows)
            self.data(op, start, min(chunk, new - start))
            self.unwritten.update(i for i in range(first, len(self.rows)) if not self.rows[i][1])
        self.preallocated.update(range(old // c, -(-new // c)))

    def _zero_fill(self, op: int, old: int, new: int) -> None:
        """``bdrv_co_truncate`` over a backing file longer than the disk (``BDRV_REQ_ZERO_WRITE``):
        the new area must not show the backing file's data, so ``qcow2_co_truncate`` marks its
        whole clusters zero (``qcow2_subcluster_zeroize``, which finds, so allocates, the L2
        table of each; the disk's partial last cluster counts as whole) and writes the unaligned
        head, the rest of the old last cluster, as a data write of zeroes (allocating that
        cluster, the rest copied from the backing file, if the image did not hold it)."""
        c = self.cluster
        zero_start = -(-old // c) * c
        if new > zero_start:
            first, last = zero_start // c, -(-new // c)
            for t in range(first // self.l2_entries, (last - 1) // self.l2_entries + 1):
                self._table(max(first, t * self.l2_entries), op)
            self.reads_zero.update(b for b in self.backing if first <= b < last and b not in self.allocated)
        if zero_start > old:
            self.data(op, old, min(zero_start, new) - old)

    def _shrink(self, op: int, new: int) -> None:
        """A shrink to ``new`` bytes (``qemu-img resize --shrink``, ``qemu-io truncate``):
        ``qcow2_co_truncate`` discards every cluster from the first one wholly past the new end
        to the old end (``qcow2_cluster_discard``, full discard), L2 slice by slice: each table
        is found first, so allocated if missing (``get_cluster_table``: shrinking a large disk of
        small clusters writes an L2 table per 32 KiB of it at 512 B clusters), then its allocated
        clusters are freed (punched out of the host file whatever the drive's discard setting).
        The last step (row ``cut``, :meth:`_Allocator.shrink`) frees the L2 tables of the L1
        entries the smaller disk no longer has, the refcount blocks left counting nothing, and
        truncates the file after its last used cluster. The L1 table keeps its size."""
        c, old = self.cluster, self.virtual_bytes
        assert old is not None
        lo, hi = -(-new // c), -(-old // c)
        held = sorted(x for x in self.allocated if x >= lo)
        at = 0
        for t in range(lo // self.l2_entries, (hi - 1) // self.l2_entries + 1) if lo < hi else ():
            self._table(max(lo, t * self.l2_entries), op)
            while at < len(held) and held[at] // self.l2_entries == t:
                self.allocated.discard(held[at])
                self.preallocated.discard(held[at])
                self.rows.append((1, False, FRESH, -1, held[at], op, True, 0, -1, True, 0))
                at += 1
        self.reads_zero = {x for x in self.reads_zero if x < lo}  # unallocated past the end: read through
        keep = l1_entries(new, c)
        self.tables = {t for t in self.tables if t < keep}
        self.rows.append((0, False, FRESH, -1, -1, op, False, 0, -1, False, keep))
        self.virtual_bytes = new

    def zero(self, op: int, offset: int, size: int) -> None:
        """Zero clusters: no data, but a partly zeroed cluster with backing data is allocated,
        and a preallocated one gets the zeroes written as data (:meth:`_fill`)."""
        self._inside(op, offset, size)
        first, last = offset // self.cluster, (offset + size - 1) // self.cluster
        self._fill(op, offset, size, first, last, whole_too=False)
        for c in range(first, last + 1):
            self._table(c, op)
            whole = offset <= c * self.cluster and (c + 1) * self.cluster <= offset + size
            if c in self.allocated:
                continue
            if not whole and c in self.backing and c not in self.reads_zero:
                self.allocated.add(c)  # the part written as zeroes, the rest copied from the backing file
                self.rows.append((1, False, FRESH, -1, c, op, False, 0, -1, False, 0))
            else:
                self.reads_zero.add(c)

    def data(self, op: int, offset: int, size: int) -> None:
        """A data write: pieces of consecutive clusters in one table, all new or all allocated.
        A preallocated cluster it touches gets the bytes written where it lies (:meth:`_fill`)."""
        self._inside(op, offset, size)
        first, last = offset // self.cluster, (offset + size - 1) // self.cluster
        self._fill(op, offset, size, first, last)
        previous_new: bool | None = None
        c = first
        while c <= last:
            new = c not in self.allocated
            end = c
            while (end + 1 <= last and ((end + 1) not in self.allocated) == new
                   and (end + 1) // self.l2_entries == c // self.l2_entries):
                end += 1
            if new:
                self._table(c, op)
                cont = FRESH if previous_new is None else (AFTER_NEW if previous_new else AFTER_OLD)
                self.rows.append((end - c + 1, False, cont, c - 1 if cont == AFTER_OLD else -1, c, op, False, 0,
                                  -1, False, 0))
                self.allocated.update(range(c, end + 1))
            previous_new = new
            c = end + 1


def requests_from_units(units: np.ndarray, cluster_bytes: int) -> Requests:
    """The requests of writing allocated clusters in ascending order, one write per run of
    consecutive clusters (what ``qemu-img convert`` does, give or take its 2 MiB buffer)."""
    units = np.asarray(units, dtype=np.int64)
    if units.size == 0:
        return requests_from_writes(units, units, cluster_bytes)
    cut = np.flatnonzero(np.diff(units) != 1) + 1
    first = units[np.append(0, cut)]
    count = np.diff(np.append(np.append(0, cut), units.size))
    return requests_from_writes(first * cluster_bytes, count * cluster_bytes, cluster_bytes)


class _Again(Exception):
    """QEMU's -EAGAIN: metadata was allocated, the caller searches for free clusters again."""


def _refblock_count(clusters: int, per_block: int, per_table_cluster: int, generous: bool = True) -> int:
    """Refcount blocks needed to cover ``clusters`` plus the refcount metadata itself, with the
    table counted 1.5 times as large if ``generous`` (``qcow2_refcount_metadata_size``,
    generous_increase)."""
    table = blocks = n = 0
    while True:
        last = n
        blocks = -(-(clusters + table + blocks) // per_block)
        table = -(-blocks // per_table_cluster)
        n = clusters + blocks + table
        if n == last and generous:
            clusters += -(-table // 2)
            n, generous = 0, False
        elif n == last:
            return blocks


class _Allocator:
    """QEMU's view of which clusters of the file are used, and where the next ones go.

    Used clusters: everything below ``top`` except the ``holes`` ([start, end) pairs, sorted,
    all ending below ``top``). ``cursor`` is QEMU's free_cluster_index. ``ranges`` are the
    refcount table entries pointing to a refcount block. ``end_bytes`` is the file size.
    """

    def __init__(self, cluster_bytes: int, refcount_bits: int) -> None:
        self.cluster = cluster_bytes
        self.per_block = cluster_bytes * 8 // refcount_bits  # clusters one refcount block covers
        self.per_table_cluster = cluster_bytes // 8  # refcount blocks one table cluster points to
        self.holes: list[list[int]] = []
        self.top = 3  # qcow2_create2: header, refcount table, first refcount block
        self.cursor = 0
        self.ranges: set[int] = {0}
        self.table_entries = self.per_table_cluster
        self.table_at, self.table_clusters = 1, 1
        self.end_bytes = 3 * cluster_bytes
        self.last_host_end = self.last_guest_end = -1  # where the latest data run ended
        # Cluster runs [start, end) QEMU has written, for the physical size: clusters skipped
        # below a moved refcount table, or counted and uncounted again, are never written, so
        # they stay holes in the host file. The L1 table's bytes are kept apart (l1_written):
        # it is written up to its last entry, not to the end of its cluster.
        self.written_runs: list[tuple[int, int]] = [(0, 3)]
        self.l1_written = (0, 0)
        # each L1 table's bytes as written, and each write into a preallocated cluster, in order:
        # (written runs and punches before it, start, end)
        self.l1_events: list[tuple[int, int, int, int]] = []
        self.fills: list[tuple[int, int]] = []  # the latter alone
        self.l1_at, self.l1_entries = 0, 0  # the L1 table's first cluster and its entries
        self.old_l1_written: list[tuple[int, int]] = []  # bytes of tables a resize replaced (kept in the file)
        # With discards (exact replay only): each allocated guest cluster's host cluster, and each
        # host cluster a discard punched (discard=unmap): (written runs before it, the discard's
        # operation, the cluster, the file's length then), in order
        self.host_of: dict[int, int] | None = None
        self.punches: list[tuple[int, int, int, int]] = []
        # For shrinks (exact replay only): each L2 table's host cluster, each refcount block's
        # (by the range of clusters it counts), and a key for each punch QEMU makes on its own
        self.l2_at: dict[int, int] = {}
        self.refblock_at: dict[int, int] = {0: 2}
        self.batch = -1

    # -- free space ---------------------------------------------------------------------------

    def reachable_hole(self) -> bool:
        """Whether a hole lies at or after the cursor (else requests simply go at the top)."""
        return bool(self.holes) and self.holes[-1][1] > self.cursor

    def free_run(self, start: int, limit: int) -> int:
        """How many free clusters (at most ``limit``) follow ``start`` (qcow2_alloc_clusters_at)."""
        if start >= self.top:
            return limit
        at = bisect.bisect_right(self.holes, start, key=lambda h: h[0]) - 1  # last hole from before
        if at < 0 or self.holes[at][1] <= start:
            return 0
        return min(limit, self.holes[at][1] - start)

    def mark_used(self, a: int, b: int) -> None:
        """[a, b) becomes used; free clusters skipped between the top and ``a`` become a hole."""
        if a >= b:
            return
        if a >= self.top:  # the usual case: appending, no hole to cut
            if a > self.top:
                self.holes.append([self.top, a])
            self.top = b
            return
        self.top = max(self.top, b)
        kept: list[list[int]] = []
        for h0, h1 in self.holes:
            if h1 <= a or h0 >= b:
                kept.append([h0, h1])
                continue
            if h0 < a:
                kept.append([h0, a])
            if h1 > b:
                kept.append([b, h1])
        self.holes = kept

    def mark_free(self, a: int, b: int) -> None:
        """Refcounts of [a, b) (used clusters) drop to zero; QEMU moves its cursor back to them."""
        if a >= b:
            return
        self.cursor = min(self.cursor, a)
        if b >= self.top:  # freed at the top: the top comes down, over a hole just below too
            self.top = a
        else:
            at = bisect.bisect_left(self.holes, a, key=lambda h: h[0])
            self.holes.insert(at, [a, b])
            if at + 1 < len(self.holes) and self.holes[at + 1][0] == b:  # merge with the next
                self.holes[at][1] = self.holes.pop(at + 1)[1]
            if at > 0 and self.holes[at - 1][1] == a:  # and the previous
                self.holes[at - 1][1] = self.holes.pop(at)[1]
        while self.holes and self.holes[-1][1] >= self.top:
            self.top = min(self.top, self.holes.pop()[0])

    # -- QEMU's functions ---------------------------------------------------------------------

    def noref(self, n: int) -> int:
        """alloc_clusters_noref: the first n free clusters in a row from the cursor."""
        first = bisect.bisect_right(self.holes, self.cursor, key=lambda h: h[1])  # holes ending after it
        for h0, h1 in self.holes[first:]:
            start = max(h0, self.cursor)
            if h1 - start >= n:
                self.cursor = start + n
                return start
        start = max(self.cursor, self.top)
        self.cursor = start + n
        return start

    def update(self, start: int, n: int, held: int = 0) -> None:
        """update_refcount (+1) of [start, start + n), allocating refcount blocks on the way.
        ``held``: how many of the first clusters were in use before (a compressed cluster's
        bytes added to a partly filled one), which the undo after a new block leaves in use."""
        last = (start + n - 1) // self.per_block
        for r in range(start // self.per_block, last + 1):
            if r in self.ranges:
                continue
            first = max(start, r * self.per_block)
            self.mark_used(start, first)  # the clusters already counted when QEMU gets here
            try:
                self.alloc_refblock(first)
            except _Again:
                self.mark_free(start + held, first)  # undone (the held ones keep their count)
                self.cursor = min(self.cursor, start)  # and the cursor goes back to start
                raise
        self.mark_used(start, start + n)

    def alloc_refblock(self, cluster: int) -> None:
        """alloc_refcount_block for a range without one: always ends in _Again."""
        index = cluster // self.per_block
        block = self.noref(1)
        if block // self.per_block == index:
            self.mark_used(block, block + 1)  # the new block counts itself
        else:
            self.update(block, 1)  # counted by another block, which may need allocating too
        self.end_bytes = max(self.end_bytes, (block + 1) * self.cluster)
        self.written_runs.append((block, block + 1))
        self.refblock_at[index] = block
        if index < self.table_entries:
            self.ranges.add(index)
            raise _Again
        used = -(-max(cluster + 1, block + 1) // self.per_block)
        self.refcount_area(used * self.per_block, index, block)
        raise _Again

    def refcount_area(self, start: int, index: int | None, block: int, additional: int = 0) -> int:
        """qcow2_refcount_area: a 1.5x table and the blocks covering it at ``start`` (the next
        range boundary, past the end of the file), then the old table freed. With ``additional``
        clusters to cover past it (a preallocating grow, ``index`` None), the table is of the
        exact size. Returns the cluster after the new table."""
        exact = index is None
        total = _refblock_count(start + additional, self.per_block, self.per_table_cluster, not exact)
        entries = total if exact else total + -(-total // 2)
        entries = -(-entries // self.per_table_cluster) * self.per_table_cluster
        if index is not None:
            self.ranges.add(index)
        missing = [r for r in range(start // self.per_block, total) if r not in self.ranges]
        self.ranges.update(missing)
        self.refblock_at.update(zip(missing, range(start, start + len(missing)), strict=True))
        table_at = start + len(missing)
        end = table_at + entries // self.per_table_cluster
        self.mark_used(start, end)
        self.end_bytes = max(self.end_bytes, end * self.cluster)
        self.written_runs.append((start, end))
        old_at, old_clusters = self.table_at, self.table_clusters
        self.table_entries, self.table_at, self.table_clusters = entries, table_at, end - table_at
        self.mark_free(old_at, old_at + old_clusters)
        return end

    def data_area(self, guest: int, n: int) -> None:
        """A grow with preallocation falloc or full (``qcow2_co_truncate``): refcount structures
        for the file's used clusters, the ``n`` new data clusters and their L2 tables (counted
        generously: one more), built at the end of the used area (:meth:`refcount_area`, exact
        size), then the data clusters right after them, mapped to guest clusters from ``guest``
        and allocated in the file (fallocate or zeroes written: both occupy the host)."""
        tables = -(-n // (self.cluster // 8)) + 1
        at = self.refcount_area(self.top, None, 0, n + tables)
        self.mark_used(at, at + n)
        self.written(at, n)
        self.mapped(guest, at, n)

    def alloc(self, n: int) -> int:
        """qcow2_alloc_clusters: n clusters in a row, wherever they fit first (the caller
        accounts for writing them)."""
        while True:
            start = self.noref(n)
            try:
                self.update(start, n)
            except _Again:
                continue
            return start

    def alloc_at(self, start: int, n: int) -> int:
        """qcow2_alloc_clusters_at: as many of n clusters as are free from ``start`` (maybe 0)."""
        while True:
            got = self.free_run(start, n)
            if got == 0:
                return 0
            try:
                self.update(start, got)
            except _Again:
                continue
            return got

    # -- requests -----------------------------------------------------------------------------

    def anchor(self, cont: int, anchor: int) -> int | None:
        """The host cluster a continued run is tried at, or None to allocate it fresh.

        After an old cluster its host offset is known only if it was the latest one allocated;
        otherwise the cluster after it is taken as used (it almost always is)."""
        if cont == AFTER_NEW or (cont == AFTER_OLD and anchor + 1 == self.last_guest_end):
            return self.last_host_end
        if cont == AFTER_OLD and self.host_of is not None and anchor in self.host_of:
            return self.host_of[anchor] + 1  # with discards the map is kept: no need to guess
        return None

    def written(self, start: int, n: int, unwritten: bool = False) -> None:
        """Clusters [start, start + n) are written in full (a data run, an L2 table), or with
        ``unwritten`` only lie inside the file (preallocated)."""
        self.end_bytes = max(self.end_bytes, (start + n) * self.cluster)
        if not unwritten:
            self.written_runs.append((start, start + n))

    def data_run(self, n: int, guest: int, cont: int, anchor: int, unwritten: bool = False) -> None:
        """handle_alloc: a run of n new guest clusters; where a continuation stops short, the
        rest is a new request (qcow2_alloc_host_offset returns, the write loop calls again).
        ``unwritten``: preallocated, the file extended over the run but nothing written."""
        at = self.anchor(cont, anchor)
        got = 0
        if at is not None:
            got = self.alloc_at(at, n)
            if got:
                self.written(at, got, unwritten)
                self.last_host_end, self.last_guest_end = at + got, guest + got
                self.mapped(guest, at, got)
        if got < n:
            start = self.alloc(n - got)
            self.written(start, n - got, unwritten)
            self.last_host_end, self.last_guest_end = start + n - got, guest + n
            self.mapped(guest + got, start, n - got)

    def mapped(self, guest: int, host: int, n: int) -> None:
        """Guest clusters [guest, guest + n) now live at host clusters [host, host + n)."""
        if self.host_of is not None:
            self.host_of.update(zip(range(guest, guest + n), range(host, host + n), strict=True))

    def punch(self, host: int) -> None:
        """QEMU punches host cluster ``host`` out of the file at once, a punch of its own."""
        self.punches.append((len(self.written_runs), self.batch, host, self.end_bytes))
        self.batch -= 1

    def range_counts_nothing(self, r: int) -> bool:
        """Whether refcount block ``r`` counts no cluster but itself (``qcow2_shrink_reftable``)."""
        a, b = r * self.per_block, min((r + 1) * self.per_block, self.top)
        used = max(0, b - a) - sum(max(0, min(h1, b) - max(h0, a)) for h0, h1 in self.holes)
        return used - int(a <= self.refblock_at[r] < b) == 0

    def shrink(self, keep: int) -> None:
        """The end of a shrink to a disk of ``keep`` L1 entries (``qcow2_co_truncate``): the L1
        entries past it are zeroed and their L2 tables freed (``qcow2_shrink_l1_table``; the
        table keeps its size); every refcount block counting no cluster but itself is dropped
        from the refcount table and freed, all judged before any is freed
        (``qcow2_shrink_reftable``); the file is truncated after its last used cluster
        (``qcow2_get_last_cluster``) if that shortens it. Each freed cluster is punched out of
        the host file at once (QCOW2_DISCARD_ALWAYS)."""
        for t in sorted(t for t in self.l2_at if t >= keep):
            host = self.l2_at.pop(t)
            self.mark_free(host, host + 1)
            self.punch(host)
        for r in [r for r in sorted(self.ranges) if self.range_counts_nothing(r)]:
            block = self.refblock_at.pop(r)
            self.ranges.discard(r)
            self.mark_free(block, block + 1)
            self.punch(block)
        end = self.top * self.cluster
        if end < self.end_bytes:
            self.end_bytes = end
            self.punches.append((len(self.written_runs), self.batch, -1, end))  # -1: a truncation
            self.batch -= 1
            self.old_l1_written = [(a, min(b, end)) for a, b in self.old_l1_written]

    def discard(self, guest: int, punch: bool, op: int = -1) -> None:
        """A discard (operation ``op``) of allocated guest cluster ``guest``: its host cluster's
        refcount drops to 0 (QEMU's cursor moves back to it), and with ``punch`` the host file
        gets a hole there (see :func:`written_ranges`)."""
        assert self.host_of is not None
        host = self.host_of.pop(guest)
        self.mark_free(host, host + 1)
        if punch:
            self.punches.append((len(self.written_runs), op, host, self.end_bytes))

    def grow_l1(self, entries: int) -> None:
        """qcow2_grow_l1_table with the exact size a resize asks for: a table of ``entries``
        in new clusters (qcow2_alloc_clusters, the old one still counted), written up to its
        last entry, then the old table's clusters freed. QEMU does not discard freed metadata
        by default (``discard-other``), so the old table's bytes stay in the file."""
        if entries <= self.l1_entries:
            return
        at = self.alloc(math.ceil(entries * 8 / self.cluster))
        self.end_bytes = max(self.end_bytes, at * self.cluster + entries * 8)
        self.old_l1_written.append(self.l1_written)
        self.l1_written = (at * self.cluster, at * self.cluster + -(-entries * 8 // 512) * 512)
        self.l1_events.append((len(self.written_runs), len(self.punches), *self.l1_written))
        old_at, old_clusters = self.l1_at, math.ceil(self.l1_entries * 8 / self.cluster)
        self.l1_at, self.l1_entries = at, entries
        self.mark_free(old_at, old_at + old_clusters)

    def exact(self, req: Requests, i: int, punch: bool = False) -> None:
        """Place request i the slow way, cluster ranges and holes considered."""
        if req.filled is not None and req.filled[i]:
            assert self.host_of is not None
            at = self.host_of[int(req.guest[i])] * self.cluster + int(req.anchor[i])
            self.fills.append((at, at + int(req.size[i])))
            self.l1_events.append((len(self.written_runs), len(self.punches), at, at + int(req.size[i])))
        elif req.area is not None and req.area[i]:
            self.data_area(int(req.guest[i]), int(req.size[i]))
        elif req.cut is not None and req.cut[i]:
            self.shrink(int(req.cut[i]))
        elif req.l1 is not None and req.l1[i]:
            self.grow_l1(int(req.l1[i]))
        elif req.free is not None and req.free[i]:
            always = req.always is not None and bool(req.always[i])
            self.discard(int(req.guest[i]), punch or always, int(req.write[i]))
        elif req.is_l2[i]:
            at = self.alloc(1)
            self.written(at, 1)
            if req.table is not None and req.table[i] >= 0:
                self.l2_at[int(req.table[i])] = at
        else:
            self.data_run(int(req.size[i]), int(req.guest[i]), int(req.cont[i]), int(req.anchor[i]),
                          req.unwritten is not None and bool(req.unwritten[i]))

    def replay(self, req: Requests, session_starts: np.ndarray, punch: bool = False) -> None:
        """Place every request; the image is opened again (cursor 0) at ``session_starts``.
        With discards every request takes the exact path, which keeps the guest-to-host map
        (``punch``: discarded clusters become holes in the host file)."""
        n = len(req)
        if any(a is not None and bool(np.any(a)) for a in (req.free, req.l1, req.cut, req.unwritten, req.area)):
            self.host_of = {}
            reopened = {int(x) for x in session_starts}
            for i in range(n):
                if i in reopened and i > 0:
                    self.cursor = 0
                self.exact(req, i, punch)
            return
        prefix = np.concatenate([[0], np.cumsum(req.size)])
        index = np.arange(n)
        next_data = np.minimum.accumulate(np.where(req.is_l2, n, index)[::-1])[::-1] if n else index
        sessions = [int(s) for s in session_starts if 0 < s < n] + [n]
        i, s = 0, 0
        while i < n:
            if i == sessions[s]:
                self.cursor, s = 0, s + 1
                continue
            end = sessions[s]
            if not self.reachable_hole():
                j = int(next_data[i])
                if j < end and self.continues_into_hole(req, j):
                    end = j  # alloc_at may put that run in a hole below the cursor
                placed = self.dense(req, i, end, prefix)
                if placed > i:
                    i = placed
                    continue
            self.exact(req, i)
            i += 1

    def dense(self, req: Requests, i: int, end: int, prefix: np.ndarray) -> int:
        """Place requests i, i+1, ... (before ``end``) at the top while the file stays dense and
        return the index of the first one not placed.

        With no free cluster at or past the cursor, each request goes right at the top, and one
        that reaches the first cluster of a range without a refcount block gets the block right
        after it (or, continuing a run, the block at that cluster and the rest of the run after
        it): one cluster more either way. That holds while the table has room for the range,
        no request reaches two new ranges and the block falls in the range it covers; the first
        request where it does not is left to :meth:`exact`. The m-th new range starts at
        cluster ``(first + m) * per`` of the file, which is cluster ``(first + m) * per - at - m``
        of the requests laid end to end (m blocks came before it): a searchsorted finds the
        request that reaches it.
        """
        at, per = max(self.cursor, self.top), self.per_block
        if at % per and at // per not in self.ranges:
            return i
        first = -(-at // per)  # the first range starting at or after the top
        # At most _DENSE_RANGES ranges per call, and only the requests that may reach them, so
        # that a call costs the same however many requests are left.
        last = min(self.table_entries, first + _DENSE_RANGES)
        stop = first
        while stop < last and stop not in self.ranges:
            stop += 1  # new ranges in a row; the next one has a block already or is past the table
        reach = (stop + 1) * per - at  # clusters of requests that can lie below range stop + 1
        end = min(end, int(np.searchsorted(prefix, prefix[i] + reach, side="right")))
        laid = prefix[i : end + 1] - prefix[i]  # the requests laid end to end, from 0
        m = np.arange(stop - first, dtype=np.int64)
        boundary = (first + m) * per
        holder = np.searchsorted(laid, boundary - at - m, side="right") - 1  # request reaching it
        ok = holder < end - i
        ok &= at + laid[np.minimum(holder + 1, end - i)] + m < boundary + per  # block in its range
        ok[1:] &= holder[1:] > holder[:-1]  # one new range per request
        good = int(np.argmin(ok)) if not ok.all() else ok.size
        if good < ok.size:
            placed = min(int(holder[good]), end - i)
        else:  # every new range handled: up to the next boundary (hooked range or table's end)
            after = (first + good) * per - at - good
            placed = min(int(np.searchsorted(laid, after, side="right")) - 1, end - i)
        blocks = int(np.count_nonzero(holder[:good] < placed))
        if placed == 0:
            return i
        self.mark_used(at, at + int(laid[placed]) + blocks)
        self.written_runs.append((at, at + int(laid[placed]) + blocks))
        self.cursor = self.top
        self.end_bytes = max(self.end_bytes, self.top * self.cluster)
        self.ranges.update(range(first, first + blocks))
        data = np.flatnonzero(~req.is_l2[i : i + placed])
        if data.size:  # where the latest data run ended, for a run continuing it
            j = int(data[-1])
            before = int(np.count_nonzero(holder[:blocks] < j))
            self.last_host_end = at + int(laid[j + 1]) + before
            self.last_guest_end = int(req.guest[i + j] + req.size[i + j])
        return i + placed

    def continues_into_hole(self, req: Requests, i: int) -> bool:
        """Whether data run i would be tried first at a free cluster below the top."""
        if i >= len(req) or req.cont[i] == FRESH:
            return False
        at = self.anchor(int(req.cont[i]), int(req.anchor[i]))
        return at is not None and at < self.top and self.free_run(at, 1) > 0


def compressed_image_bytes(units: np.ndarray, compressed_bytes: np.ndarray, cluster_bytes: int,
                           virtual_bytes: int, refcount_bits: int = 16) -> int:
    """The length of the qcow2 image ``qemu-img convert -c`` writes (bytes): guest clusters
    ``units`` (ascending; the source's clusters that are not all zeroes, which convert skips)
    whose contents deflate to ``compressed_bytes`` each (QEMU's zlib settings: raw deflate, 4 KiB
    window, memLevel 9, the default level).

    In order, each cluster first gets its L2 table if the table is new, then: a cluster that
    does not deflate below its own size less one byte is written as a normal cluster (first fit
    from the cursor); the others are packed byte after byte (``qcow2_alloc_bytes``): into the
    rest of the cluster the previous one ended in, or a new cluster, continuing across the
    boundary only when the new cluster follows on. The file ends where the last bytes were
    written, rounded up to a 512-byte sector. Exact against qemu-img 7.2 (zlib) on seeded images
    of random, constant, text-like and half-empty clusters, 4-64 KiB clusters.
    """
    alloc = created(cluster_bytes, virtual_bytes, refcount_bits)
    units = np.asarray(units, dtype=np.int64)
    sizes = np.asarray(compressed_bytes, dtype=np.int64)
    if units.shape != sizes.shape or np.any(np.diff(units) <= 0) or np.any(sizes <= 0):
        raise ValueError("need ascending distinct units and a positive compressed size for each")
    l2_entries = cluster_bytes // 8
    tables: set[int] = set()
    free_byte = 0  # QEMU's free_byte_offset: where the next compressed bytes go (0: none open)
    for unit, size in zip(units.tolist(), sizes.tolist(), strict=True):
        if unit // l2_entries not in tables:
            tables.add(unit // l2_entries)
            alloc.written(alloc.alloc(1), 1)
        if size > cluster_bytes - 1:  # deflate could not shrink it: a normal cluster
            alloc.written(alloc.alloc(1), 1)
            continue
        offset = free_byte  # qcow2_alloc_bytes, in bytes
        free = cluster_bytes - offset % cluster_bytes
        while True:
            if not offset or free < size:
                new = alloc.noref(1) * cluster_bytes
                if not offset or -(-offset // cluster_bytes) * cluster_bytes != new:
                    offset, free = new, cluster_bytes
                else:
                    free += cluster_bytes
            first = offset // cluster_bytes
            try:
                alloc.update(first, (offset + size - 1) // cluster_bytes - first + 1,
                             held=1 if offset % cluster_bytes else 0)
            except _Again:  # a refcount block was made: start again in a fresh cluster
                offset = 0
                continue
            break
        alloc.end_bytes = max(alloc.end_bytes, offset + size)
        free_byte = 0 if (offset + size) % cluster_bytes == 0 else offset + size
    # convert ends with an empty compressed write, which aligns the file to a 512-byte sector
    return -(-alloc.end_bytes // 512) * 512


def created(cluster_bytes: int, virtual_bytes: int, refcount_bits: int = 16) -> _Allocator:
    """The allocator after ``qemu-img create``: header, refcount table and block, and the L1
    table (allocated by the resize to the virtual size, 8 bytes per L2 table)."""
    check_virtual_bytes(virtual_bytes)
    alloc = _Allocator(cluster_bytes, refcount_bits)
    entries = l1_entries(virtual_bytes, cluster_bytes)
    l1_bytes = 8 * entries
    at = alloc.alloc(math.ceil(l1_bytes / cluster_bytes))
    alloc.l1_at, alloc.l1_entries = at, entries
    # Only the L1 entries are written: the file ends inside the L1's last cluster unless
    # refcount blocks had to follow it.
    alloc.end_bytes = max(alloc.end_bytes, at * cluster_bytes + l1_bytes)
    alloc.l1_written = (at * cluster_bytes, at * cluster_bytes + -(-l1_bytes // 512) * 512)  # whole sectors
    alloc.l1_events.append((len(alloc.written_runs), len(alloc.punches), *alloc.l1_written))
    alloc.cursor = 0  # qemu-img closes the image; the writer opens it afresh
    return alloc


def file_bytes(req: Requests, cluster_bytes: int, virtual_bytes: int, refcount_bits: int = 16,
               reopen_every: int | None = None) -> int:
    """Size in bytes of a new qcow2 image after QEMU made these allocation requests.

    ``reopen_every``: the image is closed and opened again after every that many writes (as
    ``qemu-io`` does per command line), which lets QEMU reuse clusters freed below its cursor;
    None keeps it open throughout, as a running guest does.
    """
    return replayed(req, cluster_bytes, virtual_bytes, refcount_bits, reopen_every).end_bytes


def written_ranges(req: Requests, cluster_bytes: int, virtual_bytes: int, refcount_bits: int = 16,
                   reopen_every: int | None = None, punch: bool = False,
                   block_bytes: int = 4096) -> tuple[np.ndarray, np.ndarray, int]:
    """The byte ranges of the image of :func:`file_bytes` that QEMU wrote, and its length: every
    cluster it allocated in full (data clusters too: QEMU zero-fills the rest of a new cluster
    with ``fallocate``, which allocates), and the L1 table up to its last entry. Clusters it
    skipped below a moved refcount table stay holes, and with ``punch`` (a drive with
    ``discard=unmap``) so do the host file's blocks (of ``block_bytes``) a discard punched
    (:func:`_punched_blocks`) until they are written again."""
    alloc = replayed(req, cluster_bytes, virtual_bytes, refcount_bits, reopen_every, punch)
    runs = np.array(alloc.written_runs, dtype=np.int64).reshape(-1, 2) * cluster_bytes
    if alloc.punches:
        runs = _punched_blocks(alloc, block_bytes) * block_bytes
    tables = [] if alloc.punches else [alloc.l1_written, *alloc.old_l1_written, *alloc.fills]  # else in the runs
    starts = np.append(runs[:, 0], [a for a, _ in tables])
    ends = np.minimum(np.append(runs[:, 1], [b for _, b in tables]), alloc.end_bytes)
    return starts, ends, alloc.end_bytes


def _punched_blocks(alloc: _Allocator, block_bytes: int) -> np.ndarray:
    """Runs [start, end) of the host file's blocks held after the writes and punches of
    ``alloc``, in order. QEMU gathers the clusters one discard frees into contiguous regions
    and punches each region once the discard is done (``qcow2_process_discards``), or before
    it allocates a cluster on the way (an L2 table); the file system frees only the blocks a
    punch covers whole, up to the file's end then, and zeroes the partial blocks at its edges,
    which stay allocated (ext4's ``ext4_punch_hole``). So with clusters smaller than a block, a
    block is freed only by a batch of frees that frees all of it. A shrink's own frees (L2
    tables, refcount blocks) are punched one by one, and its truncation drops every block past
    the new end (a punch of host cluster -1 holding the new length)."""
    c = alloc.cluster
    reach = max([alloc.end_bytes, *(b * c for _, b in alloc.written_runs)])
    held = np.zeros(-(-reach // block_bytes) + 1, dtype=bool)
    done = 0
    tables = iter(alloc.l1_events)  # L1 tables written, in order with the runs (an old one may be punched later)
    table = next(tables, None)

    def write(upto: int, before: int) -> None:
        """Apply the runs before ``upto`` and the L1 tables written before punch ``before``."""
        nonlocal table
        for i in range(done, upto + 1):
            while table is not None and table[0] == i and (i < upto or table[1] <= before):
                held[table[2] // block_bytes:-(-table[3] // block_bytes)] = True
                table = next(tables, None)
            if i < upto:
                a, b = alloc.written_runs[i]
                held[a * c // block_bytes:-(-b * c // block_bytes)] = True

    # QEMU punches what it has queued before it allocates anything (alloc_clusters_noref: "We
    # can't allocate clusters if they may still be queued for discard"), so a discard that finds
    # L2 tables missing punches in several batches: the frees between two allocations
    first = 0  # index of the group's first punch
    for _, group in itertools.groupby(alloc.punches, key=lambda p: (p[1], p[0])):
        punches = list(group)
        last = max(p[0] for p in punches)
        write(last, first)
        done, first = last, first + len(punches)
        if punches[0][2] < 0:  # a truncation (alone in its group): the blocks past the new end go
            held[-(-punches[0][3] // block_bytes):] = False
            continue
        hosts = np.unique([p[2] for p in punches])
        breaks = np.flatnonzero(np.diff(hosts) != 1) + 1
        eof = punches[-1][3]
        for run in np.split(hosts, breaks):
            start, end = int(run[0]) * c, min((int(run[-1]) + 1) * c, eof)
            held[-(-start // block_bytes):end // block_bytes] = False
    write(len(alloc.written_runs), len(alloc.punches))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], held.astype(np.int8), [0]])))
    return edges.reshape(-1, 2)


def cluster_map(req: Requests, cluster_bytes: int, virtual_bytes: int, refcount_bits: int = 16,
                reopen_every: int | None = None) -> dict[int, int]:
    """Where each guest cluster the image holds data for lies in the file: guest cluster index
    to host cluster index (what ``qemu-img map`` reports, depth 0, data). Known for requests
    of :func:`requests_with_discards` that free or resize (replayed one by one); raises
    ``ValueError`` for others."""
    alloc = replayed(req, cluster_bytes, virtual_bytes, refcount_bits, reopen_every)
    if alloc.host_of is None:
        raise ValueError("the cluster map is kept only for operations with discards or resizes")
    return dict(alloc.host_of)


def replayed(req: Requests, cluster_bytes: int, virtual_bytes: int, refcount_bits: int = 16,
             reopen_every: int | None = None, punch: bool = False) -> _Allocator:
    """The allocator after ``qemu-img create`` and these requests (see :func:`file_bytes`)."""
    alloc = created(cluster_bytes, virtual_bytes, refcount_bits)
    starts = np.empty(0, dtype=np.int64)
    if reopen_every is not None:
        if reopen_every <= 0:
            raise ValueError(f"reopen_every must be a positive number of writes, got {reopen_every}")
        starts = np.searchsorted(req.write, np.arange(reopen_every, int(req.write.max(initial=0)) + 1,
                                                      reopen_every))
    alloc.replay(req, starts, punch)
    return alloc
