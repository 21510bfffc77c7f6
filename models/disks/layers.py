"""Container storage: shared read-only image layers, one writable layer per container.

Image layers are shared by content digest across images and containers. A container's changes
are file operations on the merged view, as arrays: ``ops`` codes, the file each touches, and an
offset and size. What the writable layer then holds depends on the storage driver:

- ``overlay2``: a write, append, chmod or chown to a lower file first copies the *whole file* up
  (Linux ``Documentation/filesystems/overlayfs.rst``, "copy up"); a delete leaves a whiteout (a
  0/0 character device) that frees nothing below; new files live in the upper directory. Opening
  a lower file with ``O_TRUNC`` copies it up without its data (``ovl_open`` copies up with
  ``O_TRUNC``: size 0). With the ``metacopy=on`` mount option a chmod or chown copies up the
  metadata only: the upper file has the lower file's size but no data blocks, until a write.
- ``btrfs`` (4 KiB), ``zfs`` (128 KiB records) and ``devicemapper`` (64 KiB thin-pool chunks):
  block-level copy-on-write of the units a write touches; chmod/chown change metadata only.
  ZFS stores a file smaller than a record in one block rounded to 4 KiB (ashift 12).
- ``vfs``: no copy-on-write at all: every layer, of an image or a container, is a directory
  holding a full copy of its parent plus its own changes (moby ``daemon/graphdriver/vfs``:
  ``create`` ends in ``CopyDir(parentDir, dir)``), so an image of layers L0..Ln is stored as
  n+1 growing copies and each container holds the whole image. Its ``docker ps -s`` size is
  still only the changes: the driver is wrapped in the ``NaiveDiffDriver``, whose size is the
  diff against the parent.

The host file system under the writable layers (:class:`HostFs`) sets the block and whether it
can share extents (``reflink``: XFS with reflink, btrfs). There overlayfs copies a file up by
cloning it: only the blocks later written are new. On XFS the copy-up writes the file's partial
last block rather than sharing it; btrfs shares that too (both seen with ``filefrag`` on Linux
6.x, see the overlayfs tests).

Each driver reports the *apparent* size a user sees (``docker ps -s`` sums file sizes in the
writable layer) and the bytes actually *allocated* on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from virtsim.models.disks.allocation import FS_BLOCK, unit_indices

__all__ = ["DRIVERS", "TAR_HEADER_DEFLATED_BYTES", "Driver", "FileOps", "HostFs", "ImageLayer", "LayerUsage", "Op",
           "image_store_bytes", "writable_layer_usage"]

Driver = Literal["overlay2", "btrfs", "zfs", "devicemapper", "vfs"]
DRIVERS: tuple[Driver, ...] = ("overlay2", "btrfs", "zfs", "devicemapper", "vfs")
_UNIT = {"btrfs": 4096, "zfs": 128 * 1024, "devicemapper": 64 * 1024}


@dataclass(frozen=True)
class HostFs:
    """The file system holding the writable layers: its block and whether it shares extents."""

    block_bytes: int = FS_BLOCK
    reflink: bool = False
    clone_shares_tail: bool = False  # a clone shares a file's partial last block (btrfs), or copies it (XFS)
    inline_bytes: int = 0  # a file written from empty up to this size lives in metadata (btrfs max_inline)
    # A metacopy upper file's overlay xattrs (origin, metacopy) overflow a 256-byte ext4 inode into
    # an xattr block of their own (seen with stat on Linux 6.x); XFS, btrfs and tmpfs keep them inline.
    metacopy_xattr_bytes: int = 0

    def __post_init__(self) -> None:
        if self.block_bytes < 512 or self.block_bytes & (self.block_bytes - 1):
            raise ValueError(f"a file system block is a power of two of at least 512 B, got {self.block_bytes}")


TAR_HEADER_DEFLATED_BYTES = 72
"""What a tar header and a file's zero padding add to a gzip'd layer: 70-75 bytes per file,
measured with Python's tarfile and gzip at level 6 on 500 random and 500 text-like files."""


class Op:
    """Operation codes of :class:`FileOps`."""

    CREATE, WRITE, APPEND, CHMOD, DELETE, TRUNCATE, RENAME_DIR = 0, 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class ImageLayer:
    """A read-only layer: its digest, the sizes of the files it adds (bytes) and, optionally, the
    directory each file is in (indices shared by all the image's layers; None: no directory is
    ever renamed, so which one does not matter)."""

    digest: str
    file_bytes: np.ndarray
    directories: np.ndarray | None = None

    def apparent_bytes(self) -> int:
        """Sum of the layer's file sizes (bytes)."""
        return int(np.sum(self.file_bytes))

    def tar_bytes(self) -> int:
        """Bytes of the layer as the tar stream a registry serves before compression: a 512-byte
        header per file, its data padded to 512 bytes, two zero blocks at the end (Go's
        ``archive/tar``, which Docker and BuildKit use, adds no record padding). Files only:
        directories and names past 100 bytes (a PAX header each) are not modelled."""
        return int(np.sum(512 + -(-self.file_bytes // 512) * 512)) + 1024

    def pull_bytes(self, deflate_ratio: float) -> int:
        """Bytes ``docker pull`` downloads for the layer (its gzip'd tar, the size in the image
        manifest) when the files' data deflates ``deflate_ratio``:1: the data deflated, each
        header and padding deflated to :data:`TAR_HEADER_DEFLATED_BYTES`, and gzip's 18 bytes
        of header and trailer. Within 2% of Python's tarfile and gzip (level 6, Go's default)
        for files of 25 kB on average, random or text-like (``tests/models/test_disks.py``); too
        high for layers of small files, whose headers deflate to 20-30 bytes among each other
        (review 31: +11% at 1 kB text files, +37% at 300 B): an upper bound there."""
        if deflate_ratio < 1:
            raise ValueError(f"data does not grow when deflated: deflate_ratio >= 1, got {deflate_ratio:g}")
        data = np.ceil(self.file_bytes / deflate_ratio)
        return int(np.sum(data)) + TAR_HEADER_DEFLATED_BYTES * int(self.file_bytes.size) + 18

    def allocated_bytes(self, fs: HostFs | None = None) -> int:
        """Bytes the layer's files take on the host file system ``fs`` (default: 4 KiB blocks),
        each rounded up to whole blocks; a file unpacked no larger than the file system keeps
        inline (btrfs ``max_inline``) takes no data block."""
        block, inline = (FS_BLOCK, 0) if fs is None else (fs.block_bytes, fs.inline_bytes)
        return int(np.sum(np.where(self.file_bytes <= inline, 0, _blocks(self.file_bytes, block))))


@dataclass(frozen=True)
class FileOps:
    """A container's file operations, in order.

    ``file`` indexes the image's merged files (all layers' files, lowest layer first) for
    WRITE/APPEND/CHMOD/DELETE of existing files; CREATE makes a new file whose index is
    ``n_image_files + k`` for the k-th CREATE, and later ops may name it. ``offset``/``size``:
    for CREATE the new file's size, for WRITE the range written, for APPEND the bytes added;
    TRUNCATE (an open with ``O_TRUNC``) empties the file, and what follows writes it anew.
    RENAME_DIR renames the image directory ``file`` (an index of :attr:`ImageLayer.directories`).
    """

    op: np.ndarray
    file: np.ndarray
    offset: np.ndarray
    size: np.ndarray

    @classmethod
    def of(cls, rows: list[tuple[int, int, int, int]]) -> FileOps:
        """Ops from ``(op, file, offset, size)`` rows."""
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


@dataclass(frozen=True)
class LayerUsage:
    """One writable layer: apparent bytes (what ``docker ps -s`` shows: the changes) and
    allocated bytes; ``holds_image`` when the layer is a full copy of the image (``vfs``)."""

    apparent_bytes: int
    allocated_bytes: int
    holds_image: bool = False


def image_store_bytes(driver: Driver, image: list[ImageLayer], fs: HostFs | None = None) -> int:
    """Bytes the image's read-only layers take on the host file system ``fs`` (default: 4 KiB
    blocks), stored once for every container: each layer once, except under ``vfs``, where layer
    i is a full copy of layers 0..i."""
    sizes = [layer.allocated_bytes(fs) for layer in image]
    if driver == "vfs":
        return int(sum((len(sizes) - i) * size for i, size in enumerate(sizes)))
    return int(sum(sizes))


def _blocks(size: np.ndarray, block: int) -> np.ndarray:
    """Each size (bytes) rounded up to a whole number of ``block``-byte blocks."""
    return -(-np.asarray(size, dtype=np.int64) // block) * block


def _file_sizes(image_files: np.ndarray, ops: FileOps) -> tuple[np.ndarray, np.ndarray]:
    """Every file's final size, and the size of its file just before each op (bytes).

    Ops act in order: a write extends a file to ``max(size, offset + size)``, an append adds to
    the size the file has *then*. With ``A`` a file's appends so far, the size before op j is
    ``A_before(j) + max(initial, max over earlier writes i of end_i - A_through(i))``, a grouped
    running maximum, so appends after an extending write land after it. A truncate starts the
    file over at size 0: the running sums and maxima are kept per (file, truncates so far).
    """
    creates = ops.op == Op.CREATE
    initial = np.concatenate([image_files, ops.size[creates]]).astype(np.int64)
    file = ops.file.copy()
    file[creates] = len(image_files) + np.arange(int(creates.sum()))
    added = np.where(ops.op == Op.APPEND, ops.size, 0)
    frame = pd.DataFrame({"file": file, "added": added, "cut": (ops.op == Op.TRUNCATE).astype(np.int64)})
    epoch = frame.groupby("file")["cut"].cumsum().to_numpy()  # truncates up to and with this op
    frame["epoch"] = epoch
    by_epoch = frame.groupby(["file", "epoch"])
    through = by_epoch["added"].cumsum().to_numpy()
    floor = np.iinfo(np.int64).min // 4
    frame["key"] = np.where(ops.op == Op.WRITE, ops.offset + ops.size - through, floor)
    start = np.where(epoch == 0, initial[file], 0)  # a truncated file starts over empty
    best = np.maximum(frame.groupby(["file", "epoch"])["key"].cummax().to_numpy(), start)
    before = through - added + best
    final = initial.copy()
    if len(file):
        last = frame.groupby("file").tail(1).index.to_numpy()  # each file's last op
        final[file[last]] = through[last] + best[last]
    return final, before


def _final_files(image_files: np.ndarray, ops: FileOps) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Final size of every file, its size before each op, and which lower files were touched or deleted."""
    n_lower = len(image_files)
    sizes, before = _file_sizes(image_files, ops)
    deleted = np.zeros(len(sizes), dtype=bool)
    deleted[ops.file[ops.op == Op.DELETE]] = True
    touched = np.zeros(n_lower, dtype=bool)
    lower_ops = (ops.file < n_lower) & np.isin(ops.op, [Op.WRITE, Op.APPEND, Op.CHMOD, Op.TRUNCATE])
    touched[ops.file[lower_ops]] = True
    return sizes, before, touched & ~deleted[:n_lower], deleted


def _lower_files_with(ops: FileOps, n_lower: int, kinds: list[int]) -> np.ndarray:
    """Which lower files some op of ``kinds`` touched."""
    out = np.zeros(n_lower, dtype=bool)
    out[ops.file[(ops.file < n_lower) & np.isin(ops.op, kinds)]] = True
    return out


def _first_is_chmod(ops: FileOps, n_lower: int) -> np.ndarray:
    """Which lower files were chmod-ed before anything wrote them (a metacopy copy-up came first)."""
    relevant = (ops.file >= 0) & (ops.file < n_lower) & np.isin(ops.op, [Op.WRITE, Op.APPEND, Op.CHMOD, Op.TRUNCATE])
    out = np.zeros(n_lower, dtype=bool)
    if relevant.any():
        rows = np.flatnonzero(relevant)
        files, first = np.unique(ops.file[rows], return_index=True)
        out[files] = ops.op[rows[first]] == Op.CHMOD
    return out


def _after_last_truncate(ops: FileOps) -> np.ndarray:
    """For each op: no TRUNCATE of its file comes later (what it wrote survives to the end)."""
    index = np.arange(len(ops.op))
    file = np.where(ops.file >= 0, ops.file, 0)  # a CREATE row names no file yet
    last = np.full(int(file.max(initial=0)) + 1, -1)
    cuts = ops.op == Op.TRUNCATE
    np.maximum.at(last, file[cuts], index[cuts])
    return (index >= last[file]) | (ops.file < 0)


def _touched_units(ops: FileOps, before: np.ndarray, live_lower: np.ndarray, unit: int) -> np.ndarray:
    """``file << 40 | unit`` of every unit that writes and appends touch in live lower files
    (a later truncate frees what came before it)."""
    n_lower = len(live_lower)
    in_lower = (ops.file < n_lower) & (ops.size > 0) & _after_last_truncate(ops)
    alive = np.zeros(len(ops.op), dtype=bool)
    alive[in_lower] = live_lower[ops.file[in_lower]]
    writes = alive & (ops.op == Op.WRITE)
    appends = alive & (ops.op == Op.APPEND)
    start = np.concatenate([ops.offset[writes], before[appends]])
    length = np.concatenate([ops.size[writes], ops.size[appends]])
    files = np.concatenate([ops.file[writes], ops.file[appends]])
    spans = (start + length - 1) // unit - start // unit + 1
    return np.unique(np.repeat(files, spans) * (1 << 40) + unit_indices(start, length, unit))


def _renamed_at(image: list[ImageLayer], ops: FileOps) -> np.ndarray:
    """For each lower file, the position in ``ops`` of the first RENAME_DIR of its directory
    (``len(ops)`` if its directory is never renamed)."""
    parts = [np.full(layer.file_bytes.size, -1, dtype=np.int64) if layer.directories is None
             else np.asarray(layer.directories, dtype=np.int64) for layer in image]
    directories = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    rows = np.flatnonzero(ops.op == Op.RENAME_DIR)
    at = np.full(directories.size, len(ops.op), dtype=np.int64)
    if rows.size == 0:
        return at
    if all(layer.directories is None for layer in image):
        raise ValueError("a RENAME_DIR op needs the image layers' directories (ImageLayer.directories)")
    renamed, first = np.unique(ops.file[rows], return_index=True)
    known = np.isin(directories, renamed) & (directories >= 0)
    at[known] = rows[first][np.searchsorted(renamed, directories[known])]
    return at


def _first_touch_at(ops: FileOps, n_lower: int) -> np.ndarray:
    """For each lower file, the position in ``ops`` of the first op that copies it up (a write,
    append, chmod or truncate; ``len(ops)`` if none does)."""
    at = np.full(n_lower, len(ops.op), dtype=np.int64)
    rows = np.flatnonzero((ops.file >= 0) & (ops.file < n_lower)
                          & np.isin(ops.op, [Op.WRITE, Op.APPEND, Op.CHMOD, Op.TRUNCATE]))
    np.minimum.at(at, ops.file[rows], rows)
    return at


def writable_layer_usage(driver: Driver, image: list[ImageLayer], ops: FileOps, fs: HostFs | None = None,
                         metacopy: bool = False, redirect_dir: bool = False) -> LayerUsage:
    """What one container's writable layer holds after ``ops`` on ``image`` under ``driver``, on
    the host file system ``fs`` (ext4-like by default: 4 KiB blocks, no shared extents).
    ``metacopy``: overlayfs mounted with ``metacopy=on`` (a chmod copies up no data).
    ``redirect_dir``: overlayfs mounted with ``redirect_dir=on`` (implied by ``metacopy``), so
    renaming a lower directory copies up the directory alone; without it (the kernel's and Docker's default) rename(2)
    fails with EXDEV and ``mv`` copies every file across, then deletes the originals: each file
    of a renamed lower directory ends up whole in the upper layer (on a reflink file system as
    a clone, which GNU ``mv`` 9 makes, sharing every block). The other drivers rename in metadata."""
    fs = fs or HostFs()
    block = fs.block_bytes
    lower = np.concatenate([layer.file_bytes for layer in image]) if image else np.zeros(0, np.int64)
    lower = lower.astype(np.int64)
    n_lower = len(lower)
    renamed_at = _renamed_at(image, ops)
    # a file mv copied across before overlayfs copied it up: a clone of the lower file, tail and all
    moved_first = renamed_at < _first_touch_at(ops, n_lower)
    renames = ops.op == Op.RENAME_DIR
    ops = FileOps(ops.op[~renames], ops.file[~renames], ops.offset[~renames], ops.size[~renames])
    sizes, before, copied, deleted = _final_files(lower, ops)
    moved = np.zeros(n_lower, dtype=bool)
    # metacopy=on turns redirect_dir on (the kernel refuses metacopy=on,redirect_dir=off; review 31)
    if driver == "overlay2" and not (redirect_dir or metacopy):
        moved = (renamed_at < len(renames)) & ~deleted[:n_lower]
        copied = copied | moved
    new_alive = ~deleted[n_lower:]
    new_sizes = sizes[n_lower:][new_alive]
    live_lower = ~deleted[:n_lower]
    # The lower files whose data the upper layer holds: written, appended or truncated, or (without
    # metacopy) only chmod-ed; with metacopy those hold metadata and the size, no blocks.
    meta_only = metacopy and driver == "overlay2"  # a mount option of overlayfs alone
    data_ops = [Op.WRITE, Op.APPEND, Op.TRUNCATE] if meta_only else [Op.WRITE, Op.APPEND, Op.CHMOD, Op.TRUNCATE]
    with_data = copied & _lower_files_with(ops, n_lower, data_ops)
    if not fs.reflink:  # copied across by mv: every file's data, written anew
        with_data |= moved
    truncated = _lower_files_with(ops, n_lower, [Op.TRUNCATE])
    # Written from empty and small enough, a file's data sits in the file system's metadata.
    inline_lower = truncated & (sizes[:n_lower] <= fs.inline_bytes)
    new_blocks = np.where(new_sizes <= fs.inline_bytes, 0, _blocks(new_sizes, block))
    if driver == "overlay2" and fs.reflink:
        # A clone of a small lower file (inline, as written from empty) is inline too, and stays
        # so while the file fits (btrfs; review 11: a 4-byte write into a 1,000-byte file takes
        # no block)
        inline_lower |= (lower <= fs.inline_bytes) & (sizes[:n_lower] <= fs.inline_bytes)
        touched = _touched_units(ops, before, live_lower, block)
        touched = touched[~inline_lower[touched >> 40]]
        if not fs.clone_shares_tail:  # the copy-up writes the partial last block: a clone's, not an
            # emptied file's, nor a metacopy's (its upper file already has the size, so the clone
            # may share the last block)
            tail = with_data & ~truncated & ~(moved & moved_first)
            if meta_only:
                tail &= ~_first_is_chmod(ops, n_lower)
            partial = np.flatnonzero(tail & (lower % block != 0))
            touched = np.union1d(touched, partial * (1 << 40) + lower[partial] // block)
        apparent = int(sizes[:n_lower][copied].sum() + new_sizes.sum())
        return LayerUsage(apparent, int(touched.size * block + new_blocks.sum()))
    if driver in ("overlay2", "vfs"):
        upper = np.concatenate([sizes[:n_lower][copied], new_sizes])
        stored = sizes[:n_lower][with_data & ~inline_lower]
        xattrs = int((copied & ~with_data).sum()) * fs.metacopy_xattr_bytes if meta_only else 0
        usage = LayerUsage(int(upper.sum()), int(_blocks(stored, block).sum() + new_blocks.sum()) + xattrs)
        if driver == "vfs":  # the container's own full copy of the image, less what it deleted;
            kept = lower[live_lower & ~copied]  # docker ps -s still shows only the changes
            usage = LayerUsage(usage.apparent_bytes, usage.allocated_bytes + int(_blocks(kept, block).sum()),
                               holds_image=True)
        return usage
    if driver not in _UNIT:
        raise ValueError(f"unknown storage driver {driver!r}; known: {', '.join(DRIVERS)}")
    unit = _UNIT[driver]
    # Block CoW: the (file, unit) pairs that writes and appends touch in live lower files.
    touched = _touched_units(ops, before, live_lower, unit)
    unit_cost = np.full(touched.size, unit, dtype=np.int64)
    if driver == "zfs":  # a file smaller than a record is one block of its own size
        small = sizes[touched >> 40] < unit
        unit_cost[small] = _blocks(sizes[touched >> 40][small], block)
    if driver == "zfs":
        new_alloc = np.where(new_sizes < unit, _blocks(new_sizes, block), _blocks(new_sizes, unit))
    else:
        new_alloc = _blocks(new_sizes, unit)
    changed_apparent = int(sizes[:n_lower][copied].sum() + new_sizes.sum())
    return LayerUsage(changed_apparent, int(unit_cost.sum() + new_alloc.sum()))
