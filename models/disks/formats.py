"""Disk image formats: the allocation unit and the metadata each one keeps.

Every format allocates whole units: a write touching part of an unallocated unit allocates it
all (in a differencing image the rest is copied from the parent). The file then holds the
format's metadata plus one unit per touched unit, and for qcow2 the L2 tables and refcount
blocks that grow with it. Layouts follow the specifications and QEMU's implementation, which is
what ``qemu-img`` writes on this machine (the tests compare byte for byte):

- qcow2: QEMU ``docs/interop/qcow2.txt``. Cluster 0 header, 1 refcount table, 2 first refcount
  block, 3.. the L1 table (one 8-byte entry per L2 table, an L2 table maps cluster/8 clusters);
  the file ends after the L1 table until data is written, then grows a cluster at a time:
  an L2 table for each newly touched 512 MiB (at 64 KiB clusters) and each data cluster. A 16-bit
  refcount block covers cluster/2 clusters; more are added as the file grows. When the refcount
  table itself is full (a file of 8 MiB at 512 B clusters, 4 GiB at 4 KiB, 16 TiB at 64 KiB),
  QEMU moves it and the file keeps some free clusters: see :mod:`virtsim.models.disks.qcow2_alloc`.
  Clusters are 512 B .. 2 MiB; the L1 table is at most 32 MiB, which bounds the virtual size
  (128 GiB at 512 B clusters, 2 PiB at 64 KiB).
- VDI: VirtualBox VDI format (``vdi.c``): a 512-byte header, a block map of 4 bytes per block,
  then 1 MiB blocks in allocation order (QEMU neither writes nor opens other block sizes).
- VMDK monolithic sparse: VMware Virtual Disk Format 5.0: 64 KiB grains (``qemu-img`` has no
  option for another size), grain tables of 512 entries (32 MiB each) preallocated for the whole
  disk, twice (redundant copy), a grain directory each, after a header sector and a 20-sector
  descriptor, rounded up to a grain.
- VHDX: [MS-VHDX] v1.0: header, log, metadata and BAT regions (8 MiB as QEMU lays them out for
  a BAT up to 1 MiB), then payload blocks. Unless a block size is given, QEMU (``block/vhdx.c``)
  picks it by virtual size: 8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, then
  64 MiB (checked against ``qemu-img`` 7.2 here); a ``block_size`` outside 1 MiB .. 256 MiB is
  silently clamped into it, so the model refuses one. A differencing disk also keeps one 1 MiB
  sector bitmap block per chunk of 2^23 sectors it writes in.
- raw: a file as large as the disk (sparse on the host, but a full copy per guest).

Allocated units are passed as a sorted array of distinct unit indices
(:func:`virtsim.models.disks.allocation.touched_units`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from virtsim.models.disks import qcow2_alloc
from virtsim.models.disks.allocation import HostFile, touched_units, unit_indices

__all__ = [
    "FORMAT_NAMES",
    "QCOW2_DEFAULT_CLUSTER",
    "UNIT_RANGES",
    "FormatName",
    "ImageFormat",
    "format_by_name",
    "qcow2_max_virtual_bytes",
    "size_text",
    "unit_problem",
]

FormatName = Literal["qcow2", "vhdx", "vmdk", "vdi", "raw"]
FORMAT_NAMES: tuple[FormatName, ...] = get_args(FormatName)

KiB, MiB, GiB = 2**10, 2**20, 2**30
QCOW2_DEFAULT_CLUSTER = 64 * KiB  # qemu-img create's cluster_size


_HOST = HostFile()  # ext4, 4 KiB blocks


@dataclass(frozen=True)
class ImageFormat:
    """A disk image format: its name, allocation unit, and how metadata grows."""

    name: str
    unit_bytes: int

    def n_units(self, virtual_bytes: int) -> int:
        """Allocation units a disk of ``virtual_bytes`` spans (the last may be partial)."""
        return math.ceil(virtual_bytes / self.unit_bytes)

    def empty_bytes(self, virtual_bytes: int) -> int:
        """File size of a newly created image (nothing written)."""
        return self.metadata_bytes(virtual_bytes)

    def metadata_bytes(self, virtual_bytes: int) -> int:
        """Bytes of the format's own structures in an empty image of ``virtual_bytes`` (headers, tables)."""
        raise NotImplementedError

    def for_disk(self, virtual_bytes: int) -> ImageFormat:
        """This format with the allocation unit ``qemu-img create`` chooses for a disk of this size."""
        return self

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        """File size (apparent bytes) holding the allocated units (sorted distinct unit indices)."""
        n = int(np.asarray(units).size)
        if n == 0:
            return self.empty_bytes(virtual_bytes)
        return self.metadata_bytes(virtual_bytes) + n * self.unit_bytes

    def file_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                         differencing: bool = False) -> int:
        """File size after writes (byte offsets and sizes) made in this order. Only qcow2's
        depends on the order; the others hold the touched units whatever the order."""
        return self.file_bytes(touched_units(offsets, sizes, self.unit_bytes), virtual_bytes, differencing)

    def physical_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                             differencing: bool = False, *, host: HostFile = _HOST,
                             reopen_every: int | None = None) -> int:
        """Bytes the image occupies on the host file system ``host`` after these writes in this
        order: its extents (``du`` less the file system's own metadata, extent tree blocks).
        ``reopen_every``: the image is opened again after every that many writes (see
        :meth:`Qcow2.file_bytes_after`). A format that writes every byte of its file, as VDI
        does (its header, block map and whole blocks), occupies its length."""
        size = self.file_bytes_after(offsets, sizes, virtual_bytes, differencing)
        return host.occupied_bytes(np.array([0]), np.array([size]), size)

    def clone_physical_bytes(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, *,
                             host: HostFile = _HOST) -> int:
        """Bytes a standalone copy occupies on the host (``qemu-img convert`` of a chain of this
        format whose disks received these writes): the touched units written in ascending order.
        (From a source with larger units into units under 4 KiB, convert writes whole 4 KiB
        pieces, which this does not count.)"""
        size = self.file_bytes(touched_units(offsets, sizes, self.unit_bytes), virtual_bytes)
        return host.occupied_bytes(np.array([0]), np.array([size]), size)


@dataclass(frozen=True)
class Qcow2(ImageFormat):
    """qcow2 with ``unit_bytes`` clusters and 16-bit refcounts (QEMU's defaults).

    Up to the refcount table's first capacity (``cluster/8`` refcount blocks, so 16 TiB of file
    at 64 KiB clusters but only 8 MiB at 512 B) the file is dense and its size a closed-form
    count. Past it QEMU moves the table and leaves free clusters below the end of the file, so
    the size depends on the order of the writes: :mod:`virtsim.models.disks.qcow2_alloc`
    replays QEMU's allocator for those files.
    """

    refcount_bits: int = 16

    def l2_entries(self) -> int:
        """Entries of an L2 table (one cluster of 8-byte entries): the clusters one table maps."""
        return self.unit_bytes // 8

    def l1_bytes(self, virtual_bytes: int) -> int:
        """Bytes of the L1 table for a disk of ``virtual_bytes``: 8 per L2 table it needs."""
        return 8 * math.ceil(virtual_bytes / (self.unit_bytes * self.l2_entries()))

    def empty_bytes(self, virtual_bytes: int) -> int:
        """``qemu-img create``: header, refcount table and block, the L1 table (its entries
        only), and the refcount blocks a large L1 needs after it (small clusters)."""
        return qcow2_alloc.created(self.unit_bytes, virtual_bytes, self.refcount_bits).end_bytes

    def metadata_bytes(self, virtual_bytes: int) -> int:
        """The empty image in whole clusters."""
        return math.ceil(self.empty_bytes(virtual_bytes) / self.unit_bytes) * self.unit_bytes

    def _dense_clusters(self, units: np.ndarray, virtual_bytes: int) -> int:
        """Clusters of the file holding ``units`` if it has no free cluster below its end: the
        header, refcount table, L1, an L2 table per table touched, the data, and refcount blocks
        (each covers ``unit * 8 / refcount_bits`` clusters, itself included)."""
        tables = units // self.l2_entries()  # ascending, as the units are
        l2_tables = int(tables.size > 0) + int(np.count_nonzero(tables[1:] != tables[:-1]))
        clusters = 3 + math.ceil(self.l1_bytes(virtual_bytes) / self.unit_bytes) + l2_tables + units.size
        per_refblock = self.unit_bytes * 8 // self.refcount_bits
        extra_refblocks = 0  # the first block is in the header area; each covers itself too
        while math.ceil((clusters + extra_refblocks) / per_refblock) - 1 > extra_refblocks:
            extra_refblocks += 1
        return clusters + extra_refblocks

    def _table_capacity(self) -> int:
        """Clusters the first refcount table (one cluster) can have counted."""
        return (self.unit_bytes // 8) * (self.unit_bytes * 8 // self.refcount_bits)

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        """The image holding ``units`` written in ascending order, a run of consecutive clusters
        per write (as ``qemu-img convert`` writes a copy)."""
        data = np.asarray(units, dtype=np.int64)
        if data.size == 0:
            return self.empty_bytes(virtual_bytes)
        dense = self._dense_clusters(data, virtual_bytes)
        if dense <= self._table_capacity():
            return dense * self.unit_bytes
        requests = qcow2_alloc.requests_from_units(data, self.unit_bytes)
        return qcow2_alloc.file_bytes(requests, self.unit_bytes, virtual_bytes, self.refcount_bits)

    def file_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                         differencing: bool = False, *, reopen_every: int | None = None,
                         zero: np.ndarray | None = None, backing_units: np.ndarray | None = None,
                         discard: np.ndarray | None = None, grow: np.ndarray | None = None,
                         backing_virtual_bytes: int | None = None) -> int:
        """The image after these writes in this order. ``reopen_every``: the image is opened
        again after every that many writes (qemu-io command lines, guest reboots), which lets
        QEMU reuse clusters it freed; None keeps it open throughout. ``zero``, ``backing_units``:
        which writes write zeroes, and the guest clusters the backing file holds data in
        (:func:`qcow2_alloc.requests_from_writes`); zero clusters take no data cluster.
        ``discard``: which of the operations are discards (TRIM reaching the image), whose
        freed clusters QEMU fills first (:func:`qcow2_alloc.requests_with_discards`). ``grow``:
        which operations are online resizes (QMP ``block_resize``), each to its offset as the new
        virtual size (from ``virtual_bytes`` at the start); past what the L1 table maps, a new
        table; to a smaller size, a shrink (clusters past the new end freed, the file truncated
        after its last used cluster). A resize's size is its preallocation mode: 0 off, 1 metadata
        (the new area's clusters allocated, unwritten), 2 falloc or 3 full (new refcount
        structures, then the area's clusters allocated; :mod:`virtsim.models.disks.resize`).
        Over a backing file, give its size, ``backing_virtual_bytes``:
        a grow past the disk's size zero-fills the new area where the backing file is longer
        (:func:`qcow2_alloc.requests_with_discards`). ``virtual_bytes`` is whole 512-byte
        sectors, as QEMU makes every disk (raises ``ValueError`` otherwise)."""
        qcow2_alloc.check_virtual_bytes(virtual_bytes)
        if _any(discard) or _any(grow):
            requests = self._requests(offsets, sizes, zero, backing_units, discard, virtual_bytes, grow,
                                      backing_virtual_bytes)
            return qcow2_alloc.file_bytes(requests, self.unit_bytes, virtual_bytes, self.refcount_bits,
                                          reopen_every)
        if zero is not None and np.any(zero):
            requests = qcow2_alloc.requests_from_writes(offsets, sizes, self.unit_bytes, zero, backing_units)
            return qcow2_alloc.file_bytes(requests, self.unit_bytes, virtual_bytes, self.refcount_bits,
                                          reopen_every)
        data = touched_units(offsets, sizes, self.unit_bytes)
        if data.size == 0:
            return self.empty_bytes(virtual_bytes)
        dense = self._dense_clusters(data, virtual_bytes)
        if dense <= self._table_capacity():
            return dense * self.unit_bytes  # the order only matters once the table has moved
        requests = qcow2_alloc.requests_from_writes(offsets, sizes, self.unit_bytes)
        return qcow2_alloc.file_bytes(requests, self.unit_bytes, virtual_bytes, self.refcount_bits,
                                      reopen_every)

    def compressed_clone_bytes(self, units: np.ndarray, compressed_bytes: np.ndarray, virtual_bytes: int) -> int:
        """The length of the compressed copy ``qemu-img convert -c`` writes (bytes) of guest
        clusters ``units`` (ascending, those not all zeroes) whose contents deflate to
        ``compressed_bytes`` each (:func:`qcow2_alloc.compressed_image_bytes`)."""
        return qcow2_alloc.compressed_image_bytes(units, compressed_bytes, self.unit_bytes, virtual_bytes,
                                                  self.refcount_bits)

    def snapshot_file_bytes(self, before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                            virtual_bytes: int, name: str = "snap1", snapshot_id: str = "1") -> int:
        """The image's length after the writes ``before`` (offsets, sizes in bytes), an internal
        snapshot (``qemu-img snapshot -c name``), then the writes ``after``.

        The snapshot copies the L1 table and writes the snapshot table (a 64-byte entry with
        QEMU 7.2's 24 bytes of extra data, plus its id and name) in new clusters; the clusters it
        shares with the image then get a reference each. A later write to a shared cluster or L2
        table copies it (copy-on-write within the file), so every data cluster and L2 table
        written after the snapshot takes a new cluster, shared or not: the image grows as an
        overlay of the snapshot would, inside one file. Exact against qemu-img 7.2 on seeded
        random traces; a file past its first refcount table (where QEMU moves the table) is not
        modelled (:class:`ValueError`)."""
        c = self.unit_bytes
        pre = touched_units(*before, c)
        post = touched_units(*after, c)
        l1 = math.ceil(self.l1_bytes(virtual_bytes) / c)
        # QEMU keeps 127 bytes of an id and 255 of a name (char[128] and char[256]; review 12)
        table_bytes = 64 + min(len(snapshot_id.encode()), 127) + min(len(name.encode()), 255)
        tables = lambda units: int(np.unique(units // self.l2_entries()).size)  # noqa: E731
        # header, refcount table and block, L1, the L2 tables and data before; the L1 copy; the
        # snapshot table; the L2 tables and data written after (refcount blocks added below)
        clusters = 3 + l1 + tables(pre) + pre.size + l1
        tail = tables(post) + post.size
        total = clusters + math.ceil(table_bytes / c) + tail
        per_refblock = c * 8 // self.refcount_bits
        extra = 0  # refcount blocks beyond the first, each counting itself too
        while math.ceil((total + extra) / per_refblock) - 1 > extra:
            extra += 1
        if total + extra > self._table_capacity():
            raise ValueError(f"a qcow2 file of {total + extra} clusters of {c} B is past its first refcount table; "
                             "its size with an internal snapshot is not modelled")
        if tail == 0:  # the snapshot table is the file's last bytes
            return (clusters + extra) * c + table_bytes
        return (total + extra) * c

    def physical_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                             differencing: bool = False, *, host: HostFile = _HOST,
                             reopen_every: int | None = None, zero: np.ndarray | None = None,
                             backing_units: np.ndarray | None = None, discard: np.ndarray | None = None,
                             punch: bool = False, grow: np.ndarray | None = None,
                             backing_virtual_bytes: int | None = None) -> int:
        """Every host block holding a cluster QEMU wrote: header, refcount table and blocks, L2
        tables and data clusters in full (a new cluster's unwritten part is zero-filled with
        ``fallocate``, which allocates), the L1 table up to its last entry. Clusters skipped
        below a moved refcount table stay holes (:func:`qcow2_alloc.written_ranges`). ``zero``,
        ``backing_units``, ``discard``: as for :meth:`file_bytes_after`; ``punch``: the image
        passes discards on to its file, which frees their clusters' space (QEMU's default for a
        drive with ``discard=unmap``; ``pass-discard-request=off`` keeps the space). ``grow``: as
        for :meth:`file_bytes_after`; a replaced L1 table's bytes stay in the file."""
        qcow2_alloc.check_virtual_bytes(virtual_bytes)
        requests = self._requests(offsets, sizes, zero, backing_units, discard, virtual_bytes, grow,
                                  backing_virtual_bytes)
        return host.occupied_bytes(*qcow2_alloc.written_ranges(requests, self.unit_bytes, virtual_bytes,
                                                               self.refcount_bits, reopen_every, punch,
                                                               host.block_bytes))

    def cluster_map_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, *,
                          reopen_every: int | None = None, zero: np.ndarray | None = None,
                          backing_units: np.ndarray | None = None, discard: np.ndarray | None = None,
                          grow: np.ndarray | None = None, backing_virtual_bytes: int | None = None) -> dict[int, int]:
        """After these operations (as for :meth:`file_bytes_after`, some of them discards or
        resizes): each guest cluster the image holds data for, and the host cluster it lies in
        (``qemu-img map``'s depth-0 data extents, in clusters)."""
        qcow2_alloc.check_virtual_bytes(virtual_bytes)
        if not _any(discard) and not _any(grow):
            raise ValueError("the cluster map is modelled for operations with discards or resizes")
        requests = self._requests(offsets, sizes, zero, backing_units, discard, virtual_bytes, grow,
                                  backing_virtual_bytes)
        return qcow2_alloc.cluster_map(requests, self.unit_bytes, virtual_bytes, self.refcount_bits, reopen_every)

    def _requests(self, offsets: np.ndarray, sizes: np.ndarray, zero: np.ndarray | None,
                  backing_units: np.ndarray | None, discard: np.ndarray | None,
                  virtual_bytes: int | None = None, grow: np.ndarray | None = None,
                  backing_virtual_bytes: int | None = None) -> qcow2_alloc.Requests:
        """The allocation requests of these operations (vectorized unless some are discards or resizes)."""
        if not _any(discard) and not _any(grow):
            return qcow2_alloc.requests_from_writes(offsets, sizes, self.unit_bytes, zero, backing_units)
        n = len(offsets)
        flag = lambda a: np.zeros(n, dtype=bool) if a is None else np.asarray(a, dtype=bool)  # noqa: E731
        kinds = np.select([flag(grow), flag(discard), flag(zero)],
                          [qcow2_alloc.GROW, qcow2_alloc.DISCARD, qcow2_alloc.ZERO], qcow2_alloc.DATA)
        return qcow2_alloc.requests_with_discards(offsets, sizes, self.unit_bytes, kinds, backing_units, virtual_bytes,
                                                  backing_virtual_bytes)

    def clone_physical_bytes(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, *,
                             host: HostFile = _HOST) -> int:
        """The copy ``qemu-img convert`` writes: the touched clusters in ascending order."""
        requests = qcow2_alloc.requests_from_units(touched_units(offsets, sizes, self.unit_bytes), self.unit_bytes)
        return host.occupied_bytes(*qcow2_alloc.written_ranges(requests, self.unit_bytes, virtual_bytes,
                                                               self.refcount_bits))


def _any(flags: np.ndarray | None) -> bool:
    """Whether any of ``flags`` (None: none) is set."""
    return flags is not None and bool(np.any(flags))


@dataclass(frozen=True)
class Vdi(ImageFormat):
    """VirtualBox VDI dynamic image, 1 MiB blocks."""

    def metadata_bytes(self, virtual_bytes: int) -> int:
        """The 512-byte header and the block map (4 bytes a block), in whole sectors."""
        block_map = 4 * self.n_units(virtual_bytes)
        return 512 + math.ceil(block_map / 512) * 512


@dataclass(frozen=True)
class Vmdk(ImageFormat):
    """VMDK monolithic sparse extent, 64 KiB grains, redundant grain tables preallocated."""

    GRAINS_PER_TABLE = 512
    GT_SECTORS = GRAINS_PER_TABLE * 4 // 512
    RGD_SECTOR = 1 + 20  # after the header sector and the 20-sector descriptor

    def _layout(self, virtual_bytes: int) -> tuple[int, int, int]:
        """Sectors: the grain directory's size, the primary directory's start, the first grain's."""
        tables = math.ceil(self.n_units(virtual_bytes) / self.GRAINS_PER_TABLE)
        gd_sectors = math.ceil(tables * 4 / 512)
        gd_sector = self.RGD_SECTOR + gd_sectors + self.GT_SECTORS * tables  # after rGD and the rGTs
        end = gd_sector + gd_sectors + self.GT_SECTORS * tables
        grain_sectors = self.unit_bytes // 512
        return gd_sectors, gd_sector, math.ceil(end / grain_sectors) * grain_sectors

    def metadata_bytes(self, virtual_bytes: int) -> int:
        """The header, grain directories and grain tables ahead of the first grain (bytes)."""
        return self._layout(virtual_bytes)[2] * 512

    def _metadata_ranges(self, units: np.ndarray, virtual_bytes: int) -> tuple[np.ndarray, np.ndarray]:
        """Byte ranges [starts, ends) of the metadata an image holding grains ``units`` has
        written: what ``qemu-img create`` writes (the header sector and the descriptor's text,
        taken as 1 KiB; both grain directories) and, per grain, its 4-byte entry in both grain
        tables (the tables are preallocated as holes). The first write rewrites the whole
        20-sector descriptor (a new CID)."""
        gd_sectors, gd_sector, _ = self._layout(virtual_bytes)
        table, entry = np.divmod(np.asarray(units, dtype=np.int64), self.GRAINS_PER_TABLE)
        rgt = (self.RGD_SECTOR + gd_sectors + table * self.GT_SECTORS) * 512 + entry * 4
        gt = (gd_sector + gd_sectors + table * self.GT_SECTORS) * 512 + entry * 4
        header_end = 1024 if np.asarray(units).size == 0 else self.RGD_SECTOR * 512
        starts = np.concatenate([[0, self.RGD_SECTOR * 512, gd_sector * 512], rgt, gt])
        ends = np.concatenate([[header_end, (self.RGD_SECTOR + gd_sectors) * 512, (gd_sector + gd_sectors) * 512],
                               rgt + 4, gt + 4])
        return starts, ends

    def _physical(self, units: np.ndarray, virtual_bytes: int, host: HostFile) -> int:
        """The metadata written (:meth:`_metadata_ranges`) plus every grain in full, the grains
        following the metadata."""
        starts, ends = self._metadata_ranges(units, virtual_bytes)
        grains_at = self.metadata_bytes(virtual_bytes)
        end = grains_at + np.asarray(units).size * self.unit_bytes
        return host.occupied_bytes(np.append(starts, grains_at), np.append(ends, end), end)

    STREAM_MARKER_BYTES = 12
    """A streamOptimized grain's marker before its deflated data: the guest sector (8 bytes) and
    the data's length (4)."""

    def stream_optimized_bytes(self, units: np.ndarray, compressed_bytes: np.ndarray, virtual_bytes: int, *,
                               host: HostFile | None = None) -> int:
        """The length (or with ``host``, the bytes occupied on it) of the streamOptimized VMDK
        ``qemu-img convert -O vmdk -o subformat=streamOptimized`` writes of a disk whose grains
        ``units`` (ascending, those not all zeroes) deflate to ``compressed_bytes`` each (zlib at
        its default level, ``compress()`` in ``block/vmdk.c``; a grain that does not shrink is
        stored deflated all the same, a little longer).

        QEMU lays the file out as a monolithicSparse one (header, descriptor, both directories,
        grain tables preallocated) and appends each grain as its marker and data, padded to a
        sector. Allocating a grain first reserves a whole grain's room, which the next grain's
        write reclaims: the file ends at the last grain's end or a grain past its start,
        whichever is later, and that tail is written (checked byte for byte and with ``du``
        against qemu-img 7.2 on seeded disks)."""
        units = np.asarray(units, dtype=np.int64)
        compressed = np.asarray(compressed_bytes, dtype=np.int64)
        if units.shape != compressed.shape or np.any(compressed <= 0):
            raise ValueError("need one positive deflated size per grain")
        grains_at = self.metadata_bytes(virtual_bytes)
        if units.size == 0:
            end = grains_at
        else:
            stored = -(-(self.STREAM_MARKER_BYTES + compressed) // 512) * 512
            last_start = grains_at + int(stored[:-1].sum())
            end = max(last_start + int(stored[-1]), last_start + self.unit_bytes)
        if host is None:
            return end
        starts, ends = self._metadata_ranges(units, virtual_bytes)
        return host.occupied_bytes(np.append(starts, grains_at), np.append(ends, end), end)

    def physical_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                             differencing: bool = False, *, host: HostFile = _HOST,
                             reopen_every: int | None = None) -> int:
        """Bytes the image occupies on ``host`` after the writes (``offsets``, ``sizes`` in bytes)."""
        return self._physical(touched_units(offsets, sizes, self.unit_bytes), virtual_bytes, host)

    def clone_physical_bytes(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, *,
                             host: HostFile = _HOST) -> int:
        """Bytes on ``host`` of a full copy holding the grains the writes touched."""
        return self._physical(touched_units(offsets, sizes, self.unit_bytes), virtual_bytes, host)


@dataclass(frozen=True)
class Vhdx(ImageFormat):
    """VHDX dynamic or differencing disk; ``unit_bytes = 0`` means QEMU's default for the size."""

    def for_disk(self, virtual_bytes: int) -> ImageFormat:
        """This format with QEMU's default block size for a disk of ``virtual_bytes`` (8 MiB up
        to 1 GiB, 16 MiB to 100 GiB, 32 MiB beyond) unless a block size was given."""
        if self.unit_bytes:
            return self
        tiers = ((1 * GiB, 8 * MiB), (100 * GiB, 16 * MiB), (32 * 2**40, 32 * MiB))
        block = next((b for limit, b in tiers if virtual_bytes <= limit), 64 * MiB)
        return Vhdx(self.name, block)

    LOG_BYTES = 1 * MiB  # qemu-img's default log_size
    LOG_ENTRY_BYTES = 8 * KiB  # a descriptor sector and one 4 KiB BAT page, per block allocated

    def _bat_bytes(self, virtual_bytes: int) -> int:
        """The BAT region: 8 bytes per block and per chunk's bitmap entry, in whole MiB."""
        blocks = self.n_units(virtual_bytes)
        chunk_blocks = (2**23 * 512) // self.unit_bytes
        return math.ceil(8 * (blocks + math.ceil(blocks / chunk_blocks)) / MiB) * MiB

    def metadata_bytes(self, virtual_bytes: int) -> int:
        """Header section and log (1 MiB each), the BAT, the metadata region and 4 MiB spare (bytes)."""
        return 2 * MiB + self._bat_bytes(virtual_bytes) + 5 * MiB

    def _created(self, virtual_bytes: int) -> tuple[list[int], list[int]]:
        """Byte ranges ``qemu-img create`` writes (``block/vhdx.c``): the file identifier, two
        headers (80 bytes of their 4 KiB: ``sizeof(VHDXHeader)``), two 64 KiB region tables, the
        whole BAT (every entry PAYLOAD_BLOCK_ZERO), the metadata table (64 KiB) and its five items
        (40 bytes). The log is left a hole."""
        bat = self._bat_bytes(virtual_bytes)
        meta = 2 * MiB + bat
        return ([0, 64 * KiB, 128 * KiB, 192 * KiB, 2 * MiB, meta, meta + 64 * KiB],
                [512, 64 * KiB + 80, 128 * KiB + 80, 320 * KiB, 2 * MiB + bat, meta + 64 * KiB,
                 meta + 64 * KiB + 40])

    def _physical(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, differencing: bool,
                  host: HostFile, first_touch: bool, reopen_every: int | None) -> int:
        """Created ranges, the log, and each write's bytes where its block lies in the file.

        A new block goes at the end of the file, which QEMU extends without writing (payload
        blocks stay sparse); blocks lie in the order first touched (``first_touch``) or in
        ascending order (a copy). Each allocation logs a BAT update (8 KiB) into the 1 MiB
        circular log, which restarts at its head whenever the image is opened.
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        sizes = np.asarray(sizes, dtype=np.int64)
        unit = self.unit_bytes
        block = unit_indices(offsets, sizes, unit)  # one piece per write and block, in write order
        spans = (offsets + sizes - 1) // unit - offsets // unit + 1
        write = np.repeat(np.arange(offsets.size), spans)
        piece_start = np.maximum(offsets[write], block * unit)
        piece_end = np.minimum((offsets + sizes)[write], (block + 1) * unit)
        blocks, first = np.unique(block, return_index=True)
        rank = np.argsort(np.argsort(first, kind="stable")) if first_touch else np.arange(blocks.size)
        at = self.metadata_bytes(virtual_bytes) + rank[np.searchsorted(blocks, block)] * unit
        session = write[first] // reopen_every if reopen_every else np.zeros(first.size, dtype=np.int64)
        per_session = int(np.bincount(session).max()) if session.size else 0
        log = min(self.LOG_BYTES, self.LOG_ENTRY_BYTES * per_session)
        created_starts, created_ends = self._created(virtual_bytes)
        starts = np.concatenate([created_starts, [1 * MiB], at + piece_start - block * unit])
        ends = np.concatenate([created_ends, [1 * MiB + log], at + piece_end - block * unit])
        size = host.occupied_bytes(starts, ends, self.metadata_bytes(virtual_bytes) + blocks.size * unit)
        if differencing:  # sector bitmap blocks counted whole: an upper bound (QEMU cannot write them)
            chunk_blocks = (2**23 * 512) // unit
            size += np.unique(blocks // chunk_blocks).size * MiB
        return size

    def physical_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                             differencing: bool = False, *, host: HostFile = _HOST,
                             reopen_every: int | None = None) -> int:
        """Bytes the image occupies on ``host`` after the writes (``offsets``, ``sizes`` in bytes)."""
        return self._physical(offsets, sizes, virtual_bytes, differencing, host, True, reopen_every)

    def clone_physical_bytes(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, *,
                             host: HostFile = _HOST) -> int:
        """``qemu-img convert`` copies the blocks in ascending order and skips 4 KiB pieces
        that read as zeros (its default ``-S 4k``), so every written 4 KiB piece is copied."""
        return self._physical(*sparse_pieces(offsets, sizes), virtual_bytes, False, host, False, None)

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        """The file's length with ``units`` allocated (bytes); a differencing image's
        sector bitmaps take a block per chunk of payload blocks."""
        size = super().file_bytes(units, virtual_bytes, differencing)
        if differencing:
            chunk_blocks = (2**23 * 512) // self.unit_bytes
            chunks = np.unique(np.asarray(units, dtype=np.int64) // chunk_blocks).size
            size += chunks * MiB  # sector bitmap blocks of the chunks written
        return size


@dataclass(frozen=True)
class Raw(ImageFormat):
    """A raw image: no sharing, the whole virtual size per copy (as its length; on the host only
    what was written)."""

    def metadata_bytes(self, virtual_bytes: int) -> int:
        """None: a raw image is the disk's bytes alone."""
        return 0

    def empty_bytes(self, virtual_bytes: int) -> int:
        """The file's length: the virtual size in whole sectors (bytes)."""
        return -(-virtual_bytes // 512) * 512  # qemu-img rounds the size up to whole sectors

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        """The file's length, whatever was written: a raw file is as long as the disk (bytes)."""
        return self.empty_bytes(virtual_bytes)

    def physical_bytes_after(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int,
                             differencing: bool = False, *, host: HostFile = _HOST,
                             reopen_every: int | None = None) -> int:
        """The blocks written, and the first 4 KiB, which ``qemu-img create`` writes so that
        later probes find the file's alignment (``allocate_first_block`` in ``file-posix.c``)."""
        offsets = np.asarray(offsets, dtype=np.int64)
        starts = np.append(offsets, 0)
        ends = np.append(offsets + np.asarray(sizes, dtype=np.int64), min(4096, virtual_bytes))
        return host.occupied_bytes(starts, ends, self.empty_bytes(virtual_bytes))

    def clone_physical_bytes(self, offsets: np.ndarray, sizes: np.ndarray, virtual_bytes: int, *,
                             host: HostFile = _HOST) -> int:
        """A copy holds what the guest's own disk holds: the blocks written (``qemu-img convert``
        copies a raw file's data extents, as the host reports them, block by block)."""
        return self.physical_bytes_after(offsets, sizes, virtual_bytes, host=host)


_DEFAULTS: dict[str, ImageFormat] = {
    "qcow2": Qcow2("qcow2", QCOW2_DEFAULT_CLUSTER),
    "vhdx": Vhdx("vhdx", 0),  # 0: the block size follows the virtual size, see Vhdx.for_disk
    "vmdk": Vmdk("vmdk", 64 * KiB),
    "vdi": Vdi("vdi", 1 * MiB),
    "raw": Raw("raw", 512),
}


# The allocation units QEMU 7.2 writes, per format (bytes, powers of two): qemu-img refuses a
# qcow2 cluster_size outside these; VHDX clamps block_size into them without a word (the model
# would describe a file QEMU does not write); VMDK and VDI have a single size; raw has none.
UNIT_RANGES: dict[str, tuple[int, int] | None] = {
    "qcow2": (512, 2 * MiB),
    "vhdx": (1 * MiB, 256 * MiB),
    "vmdk": (64 * KiB, 64 * KiB),
    "vdi": (1 * MiB, 1 * MiB),
    "raw": None,
}
_UNIT_NOUNS = {"qcow2": "cluster", "vhdx": "block", "vmdk": "grain", "vdi": "block"}
_OUTSIDE = {"qcow2": "qemu-img refuses others", "vhdx": "QEMU silently clamps others into it"}
QCOW2_MAX_L1_BYTES = 32 * MiB  # QCOW_MAX_L1_SIZE: "The image size is too large for file format 'qcow2'"


CONVERT_SPARSE_BYTES = 4 * KiB  # qemu-img convert -S: pieces of zeros it leaves unwritten


def sparse_pieces(offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The writes widened to whole ``qemu-img convert -S`` pieces: what a copy holds as data
    when every written byte is non-zero and the rest of the disk reads as zeros."""
    offsets = np.asarray(offsets, dtype=np.int64)
    ends = offsets + np.asarray(sizes, dtype=np.int64)
    piece = CONVERT_SPARSE_BYTES
    start = offsets // piece * piece
    return start, -(-ends // piece) * piece - start


def size_text(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it: 512 B, 64 KiB, 2 MiB."""
    for factor, name in ((2**50, "PiB"), (2**40, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {name}"
    return f"{n} B"


def unit_problem(name: str, unit_bytes: int) -> str | None:
    """Why QEMU would not make a ``name`` image with this allocation unit, or None if it would."""
    if name not in UNIT_RANGES:
        return None  # format_by_name reports the unknown format
    allowed = UNIT_RANGES[name]
    if allowed is None:
        return f"a {name} image has no allocation unit to choose"
    if unit_bytes <= 0 or unit_bytes & (unit_bytes - 1):
        return f"the allocation unit must be a power of two, got {unit_bytes}"
    low, high = allowed
    if low <= unit_bytes <= high:
        return None
    got = size_text(unit_bytes)
    if low == high:
        return f"QEMU writes {name} {_UNIT_NOUNS[name]}s of {size_text(low)} only, got {got}"
    return f"a {name} {_UNIT_NOUNS[name]} is {size_text(low)} .. {size_text(high)} ({_OUTSIDE[name]}), got {got}"


def qcow2_max_virtual_bytes(cluster_bytes: int) -> int:
    """The largest virtual size qemu-img creates with these clusters: the L1 table (8 bytes per
    L2 table of cluster/8 entries) may not exceed 32 MiB."""
    return QCOW2_MAX_L1_BYTES // 8 * cluster_bytes * (cluster_bytes // 8)


def format_by_name(name: str, virtual_bytes: int, unit_bytes: int | None = None) -> ImageFormat:
    """The format ``name`` for a disk of ``virtual_bytes``: its tools' default allocation unit
    for that size, or ``unit_bytes`` (qcow2 ``cluster_size``, VHDX ``block_size``) if given.
    Raises ValueError for what ``qemu-img`` would refuse or silently change (see UNIT_RANGES)."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown image format {name!r}; known: {', '.join(_DEFAULTS)}")
    try:
        qcow2_alloc.check_virtual_bytes(virtual_bytes)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    fmt = _DEFAULTS[name]
    if unit_bytes is not None:
        problem = unit_problem(name, unit_bytes)
        if problem:
            raise ValueError(f"{name}: {problem}")
        fmt = type(fmt)(fmt.name, unit_bytes)
    fmt = fmt.for_disk(virtual_bytes)
    if isinstance(fmt, Qcow2) and virtual_bytes > qcow2_max_virtual_bytes(fmt.unit_bytes):
        raise ValueError(f"qcow2: a {size_text(fmt.unit_bytes)} cluster addresses at most "
                         f"{size_text(qcow2_max_virtual_bytes(fmt.unit_bytes))} (qemu-img: \"image size is too "
                         f"large\"), got a virtual size of {virtual_bytes} bytes")
    return fmt
