"""The disk-usage experiment: linked clones versus full copies, formats and storage drivers.

``virtsim disk [SPEC.toml] --out DIR`` writes ``DIR/disk.csv`` (tidy: experiment, system,
guests, measure, bytes) and four plots: the DockerInDeep guide's worked example (a base image and
three VMs' changes: ``guide_base``, ``guide_changes``), N guests from one image per format and
driver, growth of an overlay under each write pattern, and the write amplification of each
allocation unit. A spec file holds a ``[disk]`` table overriding any default below.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from virtsim.experiments.inputs import load_toml_model
from virtsim.experiments.outputs import atomic_write, write_json
from virtsim.experiments.registry import Experiment
from virtsim.experiments.report import Report, read_results_csv
from virtsim.models.disks.allocation import HostFile, sorted_distinct, touched_units
from virtsim.models.disks.chain import (
    COMMITTABLE,
    REBASABLE,
    Writes,
    build_chain_usage,
    committed,
    disjoint_chain_usage,
    emptied_bytes,
    empties_completely,
    rebased,
)
from virtsim.models.disks.formats import (
    FORMAT_NAMES,
    QCOW2_DEFAULT_CLUSTER,
    FormatName,
    ImageFormat,
    Qcow2,
    Vmdk,
    format_by_name,
    qcow2_max_virtual_bytes,
    size_text,
    unit_problem,
)
from virtsim.models.disks.layers import (
    DRIVERS,
    Driver,
    FileOps,
    HostFs,
    ImageLayer,
    Op,
    image_store_bytes,
    writable_layer_usage,
)
from virtsim.models.disks.operations import (
    DATA,
    DISCARD,
    ZERO,
    Ops,
    chain_usage_with_ops,
    clone_data_pieces,
    seen_by_image,
)
from virtsim.models.disks.patterns import PatternKind, block_writes
from virtsim.models.disks.qcow2_alloc import RESIZE
from virtsim.models.disks.resize import PREALLOCATIONS, Preallocation, raw_resized, resize_problem
from virtsim.models.quantities import Bytes
from virtsim.models.schema import StrictModel
from virtsim.sim.rng import stream

__all__ = ["EXPERIMENT", "DiskSpec", "command", "load_disk_spec", "report", "run_disk"]

COLUMNS = ["experiment", "system", "guests", "measure", "bytes"]


class PatternSpec(StrictModel):
    """Each guest's writes into its differencing disk: ``writes`` of ``size`` bytes placed by
    ``kind``. Of them, a ``zero_fraction`` write zeroes (WRITE ZEROES without unmap: mkfs, a
    zeroed file) and a ``discard_fraction`` are discards (TRIM: fstrim, deleted files), drawn at
    random; the rest write data. What each format makes of them: :mod:`models.disks.operations`
    (qcow2 frees only the clusters a discard covers whole: a 4 KiB TRIM in 64 KiB clusters
    frees nothing)."""

    kind: PatternKind = "random"
    writes: int = Field(50_000, ge=0, le=100_000_000)
    size_bytes: Bytes = Field(4096, alias="size", gt=0)
    zero_fraction: float = Field(0.0, ge=0.0, le=1.0)
    discard_fraction: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _fractions(self) -> PatternSpec:
        if self.zero_fraction + self.discard_fraction > 1.0:
            raise ValueError(f"zero_fraction + discard_fraction = {self.zero_fraction + self.discard_fraction:g}: "
                             "they are shares of the same writes, so at most 1")
        return self

    def kinds(self, rng: np.random.Generator) -> np.ndarray:
        """Each write's kind (DATA, ZERO, DISCARD of :mod:`operations`), drawn from ``rng``."""
        u = rng.random(self.writes)
        return np.where(u < self.discard_fraction, DISCARD,
                        np.where(u < self.discard_fraction + self.zero_fraction, ZERO, DATA)).astype(np.int64)


class ResizeSpec(StrictModel):
    """A resize of every guest's disk after ``after`` of its pattern's writes: ``qemu-img resize``
    (QMP ``block_resize`` on a running guest) to ``size`` bytes. A smaller size needs ``shrink``
    (``--shrink``: the data past the new end is dropped); a grow may preallocate the new area
    (``preallocation``: off, metadata for qcow2, falloc or full). qemu-img resize does not
    round a size: qcow2 takes only whole 512-byte sectors, raw keeps any length."""

    after_writes: int = Field(alias="after", ge=0, le=100_000_000)
    size_bytes: Bytes = Field(alias="size", gt=0)
    shrink: bool = False
    preallocation: Preallocation = "off"

    @field_validator("size_bytes")
    @classmethod
    def _whole_bytes(cls, size: float) -> float:
        if int(size) != size:
            raise ValueError(f"a disk is a whole number of bytes, got {size:g}")
        return size


RESIZABLE: tuple[FormatName, ...] = ("qcow2", "raw")
"""The formats whose resizes the model follows (VMDK, VDI and VHDX rows leave the part out)."""


class SnapshotSpec(StrictModel):
    """An external snapshot of every guest's disk: a new overlay on top of its differencing
    disk, receiving ``writes`` more writes of the pattern; then the snapshot committed back
    (``qemu-img commit``) or the whole chain flattened into it (``qemu-img rebase -b ""``).
    Counted for the formats QEMU chains (qcow2, VMDK); for qcow2 also an internal snapshot
    (``qemu-img snapshot -c``) followed by the same writes. 0 writes leaves the part out."""

    writes: int = Field(10_000, ge=0, le=100_000_000)


class LayerSpec(StrictModel):
    """One image layer: ``files`` files of ``mean_file_size`` bytes on average."""

    files: int = Field(ge=1, le=10_000_000)
    mean_file_bytes: Bytes = Field(alias="mean_file_size", gt=0, le=2**40)  # sizes are int64 sums


class ContainerOpsSpec(StrictModel):
    """What each container does to its image's files."""

    writes: int = Field(50, ge=0, le=1_000_000)  # 4 KiB writes into random existing files
    appends: int = Field(20, ge=0, le=1_000_000)  # 4 KiB appends to random existing files
    chmods: int = Field(5, ge=0, le=1_000_000)
    # files rewritten from scratch: opened with O_TRUNC and given 4 KiB anew (a config file, a
    # rotated log); overlayfs copies such a file up without its old data
    rewrites: int = Field(0, ge=0, le=1_000_000)
    deletes: int = Field(5, ge=0, le=1_000_000)
    creates: int = Field(30, ge=0, le=1_000_000)
    create_bytes: Bytes = Field(64 * 1024, alias="create_size", gt=0, le=2**40)  # 1 TiB: int64 sums stay exact
    # image directories renamed (mv): overlayfs without redirect_dir copies every file in them
    dir_renames: int = Field(0, ge=0, le=1_000_000)


def _power_of_two(value: float, rule: str) -> float:
    """``value`` if it is a whole power of two of at least 512 (bytes), else a ValueError: ``rule``."""
    if value < 512 or int(value) != value or int(value) & (int(value) - 1):
        raise ValueError(f"{rule}, got {value:g} B")
    return value


class HostFsSpec(StrictModel):
    """The host file system under container layers: on ext4, tmpfs and XFS without reflink
    overlayfs copies whole files up; on XFS with reflink (mkfs.xfs -m reflink=1) and btrfs it
    clones them (XFS copies the partial last block, btrfs shares it)."""

    kind: Literal["ext4", "tmpfs", "xfs", "xfs-reflink", "btrfs"] = "ext4"
    block_bytes: Bytes = Field(4096, alias="block", ge=512, le=65536)
    # overlayfs mounted with metacopy=on: a chmod copies up metadata and the size, no data
    metacopy: bool = False
    # overlayfs mounted with redirect_dir=on: renaming an image directory copies up the directory
    # alone; off (the kernel's default, and Docker's) mv copies every file in it across.
    # metacopy = true turns it on (the kernel refuses metacopy=on with redirect_dir=off)
    redirect_dir: bool = False

    @model_validator(mode="after")
    def _metacopy_needs_redirect_dir(self) -> HostFsSpec:
        if self.metacopy and "redirect_dir" in self.model_fields_set and not self.redirect_dir:
            raise ValueError("metacopy = true with redirect_dir = false: the kernel refuses to mount overlayfs "
                             "with metacopy=on,redirect_dir=off; leave redirect_dir out (metacopy turns it on)")
        return self

    @field_validator("block_bytes")
    @classmethod
    def _power_of_two(cls, block: float) -> float:
        return _power_of_two(block, "a file system block is a power of two (512 B .. 64 KiB)")

    @property
    def max_file_bytes(self) -> int:
        """The longest file it holds (bytes): ext4 addresses 2^32 - 1 blocks of a file (16 TiB
        less a block at 4 KiB: qemu-img resize past it fails "File too large"); the others 2^63 - 1."""
        return (2**32 - 1) * int(self.block_bytes) if self.kind == "ext4" else 2**63 - 1

    def image_file(self) -> HostFile:
        """How this file system allocates a disk image file: XFS honours the 1 MiB extent size
        hint QEMU sets on files it creates (``extent_size_hint``, ``block/file-posix.c``), so each
        write takes the whole MiB around it; the others ignore the hint."""
        xfs = self.kind in ("xfs", "xfs-reflink")
        return HostFile(int(self.block_bytes), extent_hint_bytes=2**20 if xfs else 0)

    def host_fs(self) -> HostFs:
        """The layers model's view of this file system (btrfs keeps files up to 2 KiB in its
        metadata, max_inline's default; ext4 puts a metacopy file's xattrs in a block of their own)."""
        return HostFs(int(self.block_bytes), reflink=self.kind in ("xfs-reflink", "btrfs"),
                      clone_shares_tail=self.kind == "btrfs", inline_bytes=2048 if self.kind == "btrfs" else 0,
                      metacopy_xattr_bytes=int(self.block_bytes) if self.kind == "ext4" else 0)


_MAX_WRITTEN_UNITS = 2**24
"""The most allocation units a disk spec may have written as a base image or as the guide's example."""
_SMALLEST_DEFAULT_UNIT = 65536
"""The smallest default allocation unit of the formats (qcow2 clusters, VMDK grains: 64 KiB)."""


class DiskSpec(StrictModel):
    """Every knob of the disk experiment, with defaults."""

    # the guide's example was "the seed example" once: a word the random seed also goes by
    renamed_keys: ClassVar[Mapping[str, str]] = {"seed_base": "guide_base", "seed_changes": "guide_changes"}

    seed: int = Field(1, ge=0)
    guide_base_bytes: Bytes = Field(20e9, alias="guide_base")
    guide_changes_bytes: list[Bytes] = Field([5e9, 10e9, 7e9], alias="guide_changes", min_length=1, max_length=1000)
    guests: int = Field(10, ge=1, le=10_000)
    # the base is written in 1 MiB pieces; rounded up to whole 512-byte sectors, as qemu-img
    # create rounds it (review 34 F6)
    virtual_bytes: Bytes = Field(20 * 2**30, alias="virtual", ge=2**20)
    base_used_bytes: Bytes = Field(8 * 2**30, alias="base_used")
    formats: list[FormatName] = Field(default_factory=lambda: list(FORMAT_NAMES), min_length=1)
    # per format, an allocation unit other than qemu-img's default for the virtual size
    # (qcow2 cluster_size, VHDX block_size: Hyper-V makes differencing VHDX with 2 MiB blocks)
    units_bytes: dict[FormatName, Bytes] = Field(default_factory=dict, alias="units")
    pattern: PatternSpec = Field(default_factory=PatternSpec)
    image_layers: list[LayerSpec] = Field(
        default_factory=lambda: [
            LayerSpec(files=3000, mean_file_bytes=25_000),
            LayerSpec(files=2000, mean_file_bytes=60_000),
            LayerSpec(files=300, mean_file_bytes=40_000),
        ],
        min_length=1,
    )
    container_ops: ContainerOpsSpec = Field(default_factory=ContainerOpsSpec)
    drivers: list[Driver] = Field(default_factory=lambda: list(DRIVERS), min_length=1)
    host_fs: HostFsSpec = Field(default_factory=HostFsSpec)
    growth_writes: int = Field(200_000, ge=10, le=50_000_000)
    snapshot: SnapshotSpec = Field(default_factory=SnapshotSpec)
    # how much the disks' data deflates, unit by unit (zlib): a cluster or grain of c bytes to
    # c / deflate_ratio (1: random data, which QEMU then stores whole); given, image-chain rows
    # add full clones written compressed: qcow2 by qemu-img convert -c, VMDK as streamOptimized
    # (the form OVA appliances ship in). No default: it depends on the data (text and binaries
    # compress, media and encrypted data do not).
    deflate_ratio: float | None = Field(None, ge=1.0, le=1000.0)
    # QEMU's -drive discard=: "ignore" (QEMU's and libvirt's default) drops a guest's discards
    # at the drive; "unmap" passes them to the image, which frees space if its format can
    drive_discard: Literal["ignore", "unmap"] = "ignore"
    # resizes of every guest's disk among its pattern's writes, in order (qcow2 and raw; see
    # ResizeSpec): the "resize" rows give each disk's sizes after them
    resizes: list[ResizeSpec] = Field(default_factory=list, alias="resize", max_length=100)

    @field_validator("virtual_bytes")
    @classmethod
    def _whole_sectors(cls, virtual: float) -> float:
        return float(math.ceil(virtual / 512) * 512)

    @field_validator("units_bytes")
    @classmethod
    def _power_of_two(cls, units: dict[FormatName, float]) -> dict[FormatName, float]:
        for name, unit in units.items():
            _power_of_two(unit, f"units.{name}: an allocation unit is a power of two of at least 512 B")
            # then the sizes QEMU itself writes: qemu-img refuses a 64 MiB qcow2 cluster, and
            # would clamp a 512 MiB VHDX block to 256 MiB
            problem = unit_problem(name, int(unit))
            if problem:
                raise ValueError(f"units.{name}: {problem}")
        return units

    @model_validator(mode="after")
    def _names_and_units(self) -> DiskSpec:
        """Refuse a format or driver listed twice, a fractional write size, and allocation units
        qemu-img would refuse for the disk (raises ``ValueError``)."""
        virtual = self.virtual_bytes
        named: tuple[tuple[str, list[str]], ...] = (("formats", list(self.formats)), ("drivers", list(self.drivers)))
        for name, values in named:
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{name}: {repeated} listed more than once")
        if int(self.pattern.size_bytes) != self.pattern.size_bytes:
            raise ValueError(f"pattern.size: a write is a whole number of bytes, got {self.pattern.size_bytes:g}")
        for name, unit in self.units_bytes.items():
            if unit > min(virtual, 2**31):
                raise ValueError(f"units.{name}: {unit:.4g} B is larger than the disk or than 2 GiB")
        # the growth plot always uses qcow2, whose L1 table bounds the virtual size by cluster
        cluster = int(self.units_bytes.get("qcow2", QCOW2_DEFAULT_CLUSTER))
        if virtual > qcow2_max_virtual_bytes(cluster):
            raise ValueError(f"virtual: {virtual:.4g} B is past what qcow2 with {size_text(cluster)} clusters can "
                             f"address ({size_text(qcow2_max_virtual_bytes(cluster))}; qemu-img refuses it); lower "
                             "virtual or raise units.qcow2")
        longest = self.host_fs.max_file_bytes
        if "raw" in self.formats and -(-virtual // 512) * 512 > longest:  # a raw file is as long as its disk
            raise ValueError(f"virtual: a raw image of {virtual:.4g} B is longer than {self.host_fs.kind} holds with "
                             f"{size_text(int(self.host_fs.block_bytes))} blocks ({longest} bytes; qemu-img: "
                             "\"File too large\"); lower virtual, drop raw, or use another host_fs")
        return self

    @model_validator(mode="after")
    def _within_memory(self) -> DiskSpec:
        """Refuse write counts and written sizes that would not fit this machine's memory as arrays
        (raises ``ValueError`` naming the field and the bound)."""
        for what, writes in (("pattern.writes", self.pattern.writes), ("snapshot.writes", self.snapshot.writes)):
            if self.guests * writes > 50_000_000:
                raise ValueError(f"guests x {what} = {self.guests * writes:,} writes, more than 50,000,000 "
                                 "(about 1 GB of write arrays); lower one of them")
        # Written data are built unit by unit (clusters, grains; the guide's example as real qcow2
        # images): memory follows the units written, about 2.6 GB for 1 TiB of 64 KiB units (16.8
        # million; vmdk measured). Smaller units (units.qcow2 = "4KiB") count for more.
        # The guide's example is built with qcow2's default clusters whatever units says (review 28 F13).
        smallest = min([_SMALLEST_DEFAULT_UNIT, *self.units_bytes.values()])
        written = self.guide_base_bytes + sum(self.guide_changes_bytes)
        for name, value, unit in (("guide_base + guide_changes", written, _SMALLEST_DEFAULT_UNIT),
                                  ("base_used", self.base_used_bytes, smallest)):
            if value / unit > _MAX_WRITTEN_UNITS:
                raise ValueError(f"{name}: {value:.4g} B written in units of {size_text(int(unit))} is more than "
                                 f"{_MAX_WRITTEN_UNITS:,} units, what the experiment builds one by one within "
                                 "memory (1 TiB of 64 KiB units); scale the example down (the usage scales with it) "
                                 "or use larger units")
        return self

    @model_validator(mode="after")
    def _fits_the_disk(self) -> DiskSpec:
        """Refuse a base image, a write or a log larger than the disk (raises ``ValueError``)."""
        virtual = self.virtual_bytes
        if self.base_used_bytes > virtual:
            raise ValueError(f"base_used ({self.base_used_bytes:.4g} B) is larger than the disk (virtual = "
                             f"{virtual:.4g} B); a base image cannot hold more than its disk")
        if self.pattern.size_bytes > virtual:
            raise ValueError(f"pattern.size ({self.pattern.size_bytes:.4g} B) is larger than the disk (virtual = "
                             f"{virtual:.4g} B)")
        if self.pattern.kind == "log-append" and self.pattern.writes * self.pattern.size_bytes > virtual:
            raise ValueError(f"pattern: a log of {self.pattern.writes} appends of {self.pattern.size_bytes:.4g} B "
                             f"does not fit the disk (virtual = {virtual:.4g} B); lower pattern.writes")
        logged = (self.pattern.writes + self.snapshot.writes) * self.pattern.size_bytes
        if self.pattern.kind == "log-append" and logged > virtual:
            raise ValueError(f"snapshot.writes: the snapshot's {self.snapshot.writes} appends continue the log of "
                             f"pattern.writes = {self.pattern.writes}, and together they do not fit the disk "
                             f"(virtual = {virtual:.4g} B); lower snapshot.writes")
        if self.growth_writes * 4096 > virtual:
            raise ValueError(f"growth_writes: {self.growth_writes} writes of 4 KiB (the growth plot's log-append "
                             f"pattern) do not fit the disk (virtual = {virtual:.4g} B); lower growth_writes")
        return self

    @model_validator(mode="after")
    def _modelled_operations(self) -> DiskSpec:
        """Refuse zero writes and discards into raw images on XFS (raises ``ValueError``)."""
        cleared = self.pattern.zero_fraction or self.pattern.discard_fraction
        if cleared and "raw" in self.formats and self.host_fs.kind in ("xfs", "xfs-reflink"):
            raise ValueError("pattern.zero_fraction/discard_fraction with raw images on host_fs.kind = "
                             f"{self.host_fs.kind!r} are not modelled (QEMU's 1 MiB extent size hint: punches "
                             "free block by block, zero writes allocate unwritten extents elsewhere); drop raw "
                             "from formats or use another host_fs.kind")
        return self

    @model_validator(mode="after")
    def _resizes_qemu_takes(self) -> DiskSpec:
        """Refuse resizes out of order or past the pattern's writes, ones qemu-img resize refuses
        for a format listed, and what the model does not follow (raises ``ValueError`` naming
        ``resize[i]``)."""
        if not self.resizes:
            return self
        if not any(f in RESIZABLE for f in self.formats):
            raise ValueError(f"resize: none of formats {list(self.formats)} is resized by the model (it resizes "
                             f"{', '.join(RESIZABLE)}); add one, or drop the resizes")
        if self.pattern.kind == "log-append":
            raise ValueError("resize with pattern.kind = 'log-append' is not modelled (where the log would go on "
                             "after a shrink); use another pattern")
        if self.host_fs.kind in ("xfs", "xfs-reflink"):
            raise ValueError(f"resize on host_fs.kind = {self.host_fs.kind!r} is not modelled (QEMU's 1 MiB extent "
                             "size hint changes what punches and truncations free); use ext4, tmpfs or btrfs")
        size, after = int(self.virtual_bytes), 0
        for i, r in enumerate(self.resizes):
            where = f"resize[{i}]"
            if r.after_writes < after or r.after_writes > self.pattern.writes:
                raise ValueError(f"{where}.after = {r.after_writes}: resizes come in order of their place among the "
                                 f"pattern's writes, {after} .. pattern.writes = {self.pattern.writes}")
            new = int(r.size_bytes)
            for name in [f for f in self.formats if f in RESIZABLE]:
                problem = self._resize_problem(name, size, new, r)
                if problem is not None:
                    raise ValueError(f"{where} ({name}): {problem}")
            if self.pattern.size_bytes > new:
                raise ValueError(f"{where}: a disk of {new} bytes is smaller than a write (pattern.size)")
            self._check_resize_units(where, size, new, r)
            size, after = new, r.after_writes
        return self

    def _resize_problem(self, name: FormatName, size: int, new: int, r: ResizeSpec) -> str | None:
        """Why a resize of a ``name`` image from ``size`` to ``new`` bytes is refused (qemu-img's
        reason, or what the model does not follow), or None."""
        problem = resize_problem(name, size, new, r.shrink, r.preallocation)
        longest = self.host_fs.max_file_bytes
        if problem is None and (name == "raw" or r.preallocation in ("falloc", "full")) and new > longest:
            problem = (f"a file of {new} bytes is longer than {self.host_fs.kind} holds with "
                       f"{size_text(int(self.host_fs.block_bytes))} blocks ({longest} bytes; qemu-img: "
                       "\"File too large\")")
        if problem is not None or name != "qcow2":
            return problem
        cluster = self.image_format(name).unit_bytes
        if new > qcow2_max_virtual_bytes(cluster):
            return (f"{size_text(cluster)} clusters address at most "
                    f"{size_text(qcow2_max_virtual_bytes(cluster))} (qemu-img: \"too large\")")
        if r.preallocation != "off" and (size % cluster or new % cluster):
            return (f"growing from {size} to {new} bytes, not whole {size_text(cluster)} clusters, with "
                    f"preallocation={r.preallocation} is not modelled")
        return None

    def _check_resize_units(self, where: str, size: int, new: int, r: ResizeSpec) -> None:
        """Refuse a resize the model would follow unit by unit past memory: the blocks a raw
        resize allocates or frees, the clusters a qcow2 preallocation allocates (as base_used)."""
        for name, unit, counted in (
                ("raw", int(self.host_fs.block_bytes), "raw" in self.formats
                 and (new < size or r.preallocation in ("falloc", "full"))),
                ("qcow2", self.image_format("qcow2").unit_bytes if "qcow2" in self.formats else 1,
                 "qcow2" in self.formats and r.preallocation != "off")):
            if counted and abs(new - size) / unit > _MAX_WRITTEN_UNITS:
                raise ValueError(f"{where} ({name}): {abs(new - size):.4g} B resized in units of "
                                 f"{size_text(unit)} is more than {_MAX_WRITTEN_UNITS:,} units, what the model "
                                 "follows one by one within memory; resize by less")

    def image_format(self, name: FormatName) -> ImageFormat:
        """The format ``name`` for this spec's virtual size and allocation units."""
        unit = self.units_bytes.get(name)
        virtual = int(self.virtual_bytes)
        return format_by_name(name, virtual, None if unit is None else int(unit))


def load_disk_spec(path: str | Path | None) -> DiskSpec:
    """The defaults, or a TOML file's ``[disk]`` table validated against them."""
    return DiskSpec() if path is None else load_toml_model(path, DiskSpec, "disk spec", "disk")


def _rows(experiment: str, system: str, guests: int, measures: dict[str, float]) -> list[dict[str, Any]]:
    return [dict(experiment=experiment, system=system, guests=guests, measure=m, bytes=float(v))
            for m, v in measures.items()]


def guide_example(spec: DiskSpec) -> list[dict[str, Any]]:
    """The DockerInDeep guide's worked example (a base image and each guest's changes, bytes):
    each guest's view, and the host's totals as linked and as full clones, as the guide counts
    them (no format metadata)."""
    usage = disjoint_chain_usage(int(spec.guide_base_bytes), [int(c) for c in spec.guide_changes_bytes])
    rows = []
    for i, view in enumerate(usage.per_guest_view()):
        rows += _rows("guide-example", f"VM{i + 1}", 1, {"per_guest_view": view})
    rows += _rows("guide-example", "host", len(spec.guide_changes_bytes),
                  {"linked_clones_bytes_total": usage.linked_clones(),
                   "full_clones_bytes_total": usage.full_clones()})
    return rows


def guide_example_qcow2(spec: DiskSpec) -> list[dict[str, Any]]:
    """The guide's example as real qcow2 files (64 KiB clusters, L2 tables, refcount blocks, bytes
    on the host): the base image's data written from the start of the disk, each VM's changes
    written after it (new data, as the example reads), in pieces of 1 MiB or more."""
    base = int(spec.guide_base_bytes)
    changes = [int(c) for c in spec.guide_changes_bytes]
    virtual = -(-(base + max(changes)) // 2**30) * 2**30
    fmt = format_by_name("qcow2", virtual)
    piece = max(2**20, -(-(base + max(changes)) // 200_000) // 2**20 * 2**20)  # at most ~200,000 writes

    def written(start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.arange(start, start + length, piece, dtype=np.int64)
        return offsets, np.minimum(piece, start + length - offsets)

    usage = build_chain_usage(fmt, virtual, written(0, base), [[written(base, c)] for c in changes],
                              host=spec.host_fs.image_file())
    rows = []
    for i, view in enumerate(usage.per_guest_view()):
        rows += _rows("guide-example-qcow2", f"VM{i + 1}", 1, {"per_guest_view": view})
    rows += _rows("guide-example-qcow2", "host", len(changes),
                  {"linked_clones_bytes_total": usage.linked_clones(), "full_clones_bytes_total": usage.full_clones()})
    return rows


def _sharing_rows(experiment: str, system: str, guests: int, shared: float, private_total: float,
                  full_total: float, extra: dict[str, float]) -> list[dict[str, Any]]:
    """The measures every sharing scheme reports, each name saying whether it is a total or per guest."""
    return _rows(experiment, system, guests, {
        "shared_bytes": shared,
        "private_bytes_total": private_total,
        "private_bytes_per_guest": private_total / guests,
        "linked_clones_bytes_total": shared + private_total,
        "full_clones_bytes_total": full_total,
        **extra,
    })


def _base_writes(spec: DiskSpec) -> Writes:
    """The base image's data: ``base_used`` bytes from the start of the disk, in 1 MiB writes
    and a last shorter one (review 35 F5: the part past the last whole MiB was dropped, so
    512 KiB made a base with no data)."""
    used = int(spec.base_used_bytes)
    offsets = np.arange(0, used, 2**20, dtype=np.int64)
    return offsets, np.minimum(2**20, used - offsets)


def image_chains(spec: DiskSpec) -> list[dict[str, Any]]:
    """N guests from one base, per format: shared base, differencing disks, full clones."""
    virtual = int(spec.virtual_bytes)
    base = _base_writes(spec)
    guest_writes = [
        [block_writes(spec.pattern.kind, spec.pattern.writes, int(spec.pattern.size_bytes), virtual,
                      stream(spec.seed, 0, "guest", g))]
        for g in range(spec.guests)
    ]
    guest_ops = None
    if spec.pattern.zero_fraction or spec.pattern.discard_fraction:
        guest_ops = [[(*levels[0], spec.pattern.kinds(stream(spec.seed, 0, "kinds", g)))]
                     for g, levels in enumerate(guest_writes)]
    rows = []
    host = spec.host_fs.image_file()
    for name in spec.formats:
        fmt = spec.image_format(name)
        # on the host (du), as the layer stacks are counted; the file lengths (ls) beside them
        if guest_ops is None:
            usage = build_chain_usage(fmt, virtual, base, guest_writes, host=host)
            length = build_chain_usage(fmt, virtual, base, guest_writes)
        else:
            unmap = spec.drive_discard == "unmap"
            usage = chain_usage_with_ops(fmt, virtual, base, guest_ops, unmap=unmap, host=host)
            length = chain_usage_with_ops(fmt, virtual, base, guest_ops, unmap=unmap)
        extra = {
            **_written_totals(spec, guest_ops),
            "linked_clones_apparent_bytes_total": length.linked_clones(),
            "full_clones_apparent_bytes_total": length.full_clones(),
        }
        if spec.deflate_ratio is not None and isinstance(fmt, (Qcow2, Vmdk)):
            extra["full_clones_compressed_apparent_bytes_total"] = _compressed_clones(
                fmt, virtual, _clone_units(spec, fmt, base, guest_writes, guest_ops), spec.deflate_ratio)
        rows += _sharing_rows("image-chain", name, spec.guests, usage.base_bytes, usage.private_bytes(),
                              usage.full_clones(), extra)
    return rows


def _written_totals(spec: DiskSpec, guest_ops: list[list[Ops]] | None) -> dict[str, float]:
    """Bytes the guests wrote as data, and (if any) zeroed and discarded, all guests together."""
    size = spec.pattern.size_bytes
    if guest_ops is None:
        return {"written_bytes_total": spec.guests * spec.pattern.writes * size}
    kinds = np.concatenate([ops[2] for levels in guest_ops for ops in levels])
    return {"written_bytes_total": float(np.count_nonzero(kinds == DATA) * size),
            "zeroed_bytes_total": float(np.count_nonzero(kinds == ZERO) * size),
            "discarded_bytes_total": float(np.count_nonzero(kinds == DISCARD) * size)}


def _clone_units(spec: DiskSpec, fmt: ImageFormat, base: Writes, guest_writes: list[list[Writes]],
                 guest_ops: list[list[Ops]] | None) -> list[np.ndarray]:
    """Each guest's full clone's units holding data (ascending): the union of its chain's writes,
    less what zero writes and discards left reading as zeroes."""
    unit = fmt.unit_bytes
    if guest_ops is not None:
        unmap = spec.drive_discard == "unmap"
        return [touched_units(*clone_data_pieces(fmt, int(spec.virtual_bytes), base, levels, unmap), unit)
                for levels in guest_ops]
    base_units = touched_units(*base, unit)
    return [sorted_distinct(np.concatenate([base_units, *(touched_units(*w, unit) for w in levels)]))
            for levels in guest_writes]


def _compressed_clones(fmt: Qcow2 | Vmdk, virtual: int, clone_units: list[np.ndarray], ratio: float) -> float:
    """Bytes of every guest's full clone written compressed: its units holding data, each
    deflated to ``unit / ratio`` bytes (rounded up). qcow2 is ``qemu-img convert -c`` (raw
    deflate; a cluster that does not shrink is stored whole); VMDK is a streamOptimized copy
    (zlib: 6 bytes of header and checksum, and data that does not shrink is stored in blocks of
    16 KiB with 5 bytes each, as zlib's level 6 stores them)."""
    unit = fmt.unit_bytes
    if isinstance(fmt, Qcow2):
        deflated = math.ceil(unit / ratio) if ratio > 1 else unit + 1  # random data does not shrink: stored whole
    else:
        deflated = min(math.ceil(unit / ratio) + 6, unit + 6 + 5 * -(-unit // 16384))
    total = 0
    for units in clone_units:
        sizes = np.full(units.size, deflated, dtype=np.int64)
        total += (fmt.compressed_clone_bytes(units, sizes, virtual) if isinstance(fmt, Qcow2)
                  else fmt.stream_optimized_bytes(units, sizes, virtual))
    return float(total)


def snapshot_chains(spec: DiskSpec) -> list[dict[str, Any]]:
    """Each guest's disk with an external snapshot on top (:class:`SnapshotSpec`), per format QEMU
    chains: the file lengths of the guest's two overlays, after committing the snapshot into the
    disk below it, and after flattening the guest's whole chain into the snapshot."""
    if spec.snapshot.writes == 0:
        return []
    virtual = int(spec.virtual_bytes)
    base = _base_writes(spec)
    rows = []
    for name in [f for f in spec.formats if f in COMMITTABLE]:
        fmt = spec.image_format(name)
        before = after = flat = internal = 0.0
        # a qcow2 overlay QEMU cannot empty in one step has no modelled size after commit
        commits = name == "vmdk" or empties_completely(fmt, virtual)
        internal_ok = isinstance(fmt, Qcow2)  # an internal snapshot instead: qcow2 only
        for g in range(spec.guests):
            kind, size = spec.pattern.kind, int(spec.pattern.size_bytes)
            disk = block_writes(kind, spec.pattern.writes, size, virtual, stream(spec.seed, 0, "guest", g))
            log_end = spec.pattern.writes * size if kind == "log-append" else 0  # the log goes on
            snap = block_writes(kind, spec.snapshot.writes, size, virtual - log_end,
                                stream(spec.seed, 0, "snapshot", g), start_bytes=log_end)
            before += (fmt.file_bytes_after(*disk, virtual, differencing=True)
                       + fmt.file_bytes_after(*snap, virtual, differencing=True))
            if commits:
                after += (fmt.file_bytes_after(*committed(fmt, disk, snap), virtual, differencing=True)
                          + emptied_bytes(fmt, virtual, snap))
            if name in REBASABLE:
                flat += fmt.file_bytes_after(*rebased(fmt, snap, [base, disk], virtual), virtual)
            if internal_ok and isinstance(fmt, Qcow2):
                try:
                    internal += fmt.snapshot_file_bytes(disk, snap, virtual)
                except ValueError:  # past the first refcount table: not modelled
                    internal_ok = False
        rows += _rows("snapshot-chain", name, spec.guests, {
            "overlays_apparent_bytes_per_guest": before / spec.guests,
            **({"after_commit_apparent_bytes_per_guest": after / spec.guests} if commits else {}),
            **({"flattened_apparent_bytes_per_guest": flat / spec.guests} if name in REBASABLE else {}),
            **({"internal_snapshot_apparent_bytes_per_guest": internal / spec.guests} if internal_ok else {}),
            "snapshot_written_bytes_per_guest": spec.snapshot.writes * spec.pattern.size_bytes,
        })
    return rows


FILES_PER_DIRECTORY = 20
"""An image layer's files spread over directories of this many on average (assumption)."""


def _image(spec: DiskSpec) -> list[ImageLayer]:
    layers = []
    first_directory = 0
    for i, layer in enumerate(spec.image_layers):
        rng = stream(spec.seed, 0, "layer", i)
        sizes = np.maximum(1, rng.lognormal(np.log(layer.mean_file_bytes) - 0.5, 1.0, layer.files)).astype(np.int64)
        n_directories = max(1, layer.files // FILES_PER_DIRECTORY)
        directories = first_directory + rng.integers(0, n_directories, layer.files)
        first_directory += n_directories
        layers.append(ImageLayer(f"sha256:layer{i}", sizes, directories))
    return layers


def _directories(image: list[ImageLayer]) -> int:
    """How many directories the image's layers spread their files over."""
    return int(max(int(layer.directories.max()) for layer in image if layer.directories is not None)) + 1


def _container_ops(spec: DiskSpec, n_files: int, sizes: np.ndarray, guest: int, n_directories: int) -> FileOps:
    o, rng = spec.container_ops, stream(spec.seed, 0, "container", guest)
    rows: list[tuple[int, int, int, int]] = []
    for f in rng.integers(0, n_files, o.writes):
        rows.append((Op.WRITE, int(f), int(rng.integers(0, max(1, sizes[f] - 4096 + 1))), 4096))
    rows += [(Op.APPEND, int(f), 0, 4096) for f in rng.integers(0, n_files, o.appends)]
    rows += [(Op.CHMOD, int(f), 0, 0) for f in rng.integers(0, n_files, o.chmods)]
    deletes = [(Op.DELETE, int(f), 0, 0) for f in rng.choice(n_files, min(o.deletes, n_files), replace=False)]
    creates = [(Op.CREATE, -1, 0, int(o.create_bytes))] * o.creates
    if o.rewrites:  # drawn last: a spec without rewrites draws what it always did
        for f in rng.integers(0, n_files, o.rewrites):
            rows += [(Op.TRUNCATE, int(f), 0, 0), (Op.WRITE, int(f), 0, 4096)]
    if o.dir_renames:  # drawn after everything else, for the same reason
        rows += [(Op.RENAME_DIR, int(d), 0, 0) for d in rng.integers(0, n_directories, o.dir_renames)]
    return FileOps.of(rows + deletes + creates)


def layer_stacks(spec: DiskSpec) -> list[dict[str, Any]]:
    """N containers from one image, per storage driver: shared layers plus writable layers."""
    image = _image(spec)
    fs = spec.host_fs.host_fs()  # the image layers are files on the same file system as the writable ones
    sizes = np.concatenate([layer.file_bytes for layer in image])
    image_alloc = sum(layer.allocated_bytes(fs) for layer in image)
    shared_apparent = sum(layer.apparent_bytes() for layer in image)
    ops = [_container_ops(spec, len(sizes), sizes, g, _directories(image)) for g in range(spec.guests)]
    rows = []
    for driver in spec.drivers:
        usages = [writable_layer_usage(driver, image, o, fs, spec.host_fs.metacopy, spec.host_fs.redirect_dir)
                  for o in ops]
        private = sum(u.allocated_bytes for u in usages)
        # A full clone is a standalone copy of the image with the guest's changes: what a vfs
        # container layer already is; for the others, the image once per guest plus the changes.
        full = sum(u.allocated_bytes if u.holds_image else image_alloc + u.allocated_bytes for u in usages)
        rows += _sharing_rows("layer-stack", driver, spec.guests, image_store_bytes(driver, image, fs), private, full, {
                                  "docker_ps_size_bytes_per_guest": float(np.mean([u.apparent_bytes for u in usages])),
                                  "image_apparent_bytes": shared_apparent,
                                  "image_pull_tar_bytes": float(sum(layer.tar_bytes() for layer in image)),
                                  **({"image_pull_compressed_bytes": float(sum(
                                      layer.pull_bytes(spec.deflate_ratio) for layer in image))}
                                     if spec.deflate_ratio is not None else {}),
                              })
    return rows


def growth(spec: DiskSpec) -> list[dict[str, Any]]:
    """A qcow2 overlay's file size as writes accumulate, under each write pattern."""
    virtual = int(spec.virtual_bytes)
    fmt = spec.image_format("qcow2")
    n = spec.growth_writes
    checkpoints = np.unique(np.geomspace(1, n, 40).astype(np.int64)) - 1
    rows = []
    kinds: tuple[PatternKind, ...] = ("sequential", "random", "zipf", "log-append")
    for kind in kinds:
        offsets, sizes = block_writes(kind, n, 4096, virtual, stream(spec.seed, 0, "growth", kind))
        for k in checkpoints:
            size = fmt.file_bytes_after(offsets[: k + 1], sizes[: k + 1], virtual, differencing=True)
            rows += _rows("growth", kind, 1, {f"file_bytes@{int(k) + 1}": size})
    return rows


def amplification(spec: DiskSpec) -> list[dict[str, Any]]:
    """Bytes one 4 KiB write into fresh space adds on the host, per format and driver.

    For an image, the write lands in a differencing disk next to one already written (so in an
    L2 table, grain table or bitmap that exists): the growth of its physical size (a whole
    cluster, grain or VDI block; a VHDX only the 4 KiB and the 8 KiB logged BAT update) and of
    its length (``added_apparent_bytes``: a whole VHDX block). Measures are named ``added_*``: the
    growth, not the sizes (review 28 F17); a writable layer's is its whole size, as it starts empty."""
    rows = []
    virtual = int(spec.virtual_bytes)
    host = spec.host_fs.image_file()
    for name in spec.formats:
        fmt = spec.image_format(name)
        first = (np.array([2**20]), np.array([4096]))
        both = (np.array([2**20, 2**20 + max(fmt.unit_bytes, 4096)]), np.array([4096, 4096]))
        sizes = [(fmt.physical_bytes_after(*w, virtual, differencing=True, host=host),
                  fmt.file_bytes_after(*w, virtual, differencing=True)) for w in (first, both)]
        rows += _rows("amplification", name, 1, {"added_allocated_bytes": sizes[1][0] - sizes[0][0],
                                                 "added_apparent_bytes": sizes[1][1] - sizes[0][1],
                                                 "written_bytes": 4096})
    big_file = [ImageLayer("sha256:db", np.array([64 * 2**20]))]
    for driver in spec.drivers:
        if driver == "vfs":
            continue
        usage = writable_layer_usage(driver, big_file, FileOps.of([(Op.WRITE, 0, 4096 * 10, 4096)]),
                                     spec.host_fs.host_fs())
        rows += _rows("amplification", f"{driver} (64 MiB file)", 1,
                      {"added_allocated_bytes": usage.allocated_bytes, "written_bytes": 4096})  # from empty
    return rows


def resized_ops(spec: DiskSpec, guest: int) -> Ops:
    """Guest ``guest``'s operations on its disk with the spec's resizes among them (RESIZE: the
    new size as offset, the preallocation mode's index as size): each stretch of the pattern's
    writes between two resizes is drawn over the disk as it is then."""
    rng = stream(spec.seed, 0, "resize", guest)
    kinds = spec.pattern.kinds(stream(spec.seed, 0, "resize-kinds", guest))
    io = int(spec.pattern.size_bytes)
    size, done = int(spec.virtual_bytes), 0
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for r in [*spec.resizes, None]:
        upto = spec.pattern.writes if r is None else r.after_writes
        offsets, sizes = block_writes(spec.pattern.kind, upto - done, io, size, rng)
        parts.append((offsets, sizes, kinds[done:upto]))
        if r is not None:
            size = int(r.size_bytes)
            parts.append((np.array([size]), np.array([PREALLOCATIONS.index(r.preallocation)]), np.array([RESIZE])))
        done = upto
    offsets, sizes, kinds = (np.concatenate(column).astype(np.int64) for column in zip(*parts, strict=True))
    return offsets, sizes, kinds


def resized_disks(spec: DiskSpec) -> list[dict[str, Any]]:
    """Each guest's disk after its writes and the spec's resizes, per format that resizes
    (:data:`RESIZABLE`): its virtual size, its length and the bytes it occupies on the host.
    qcow2 is the guest's differencing disk over the base, its resizes online (the image stays
    open; a grow of a disk a shrink left shorter than the base zero-fills the new area, so that
    the base's data does not show through); raw is the guest's whole copy."""
    if not spec.resizes:
        return []
    virtual = int(spec.virtual_bytes)
    base = _base_writes(spec)
    host = spec.host_fs.image_file()
    unmap = spec.drive_discard == "unmap"
    rows = []
    for name in [f for f in spec.formats if f in RESIZABLE]:
        fmt = spec.image_format(name)
        apparent = allocated = 0.0
        for g in range(spec.guests):
            offsets, sizes, kinds = seen_by_image(fmt, resized_ops(spec, g), unmap)
            if isinstance(fmt, Qcow2):
                masks = dict(zero=kinds == ZERO, discard=kinds == DISCARD, grow=kinds == RESIZE,
                             backing_units=touched_units(*base, fmt.unit_bytes), backing_virtual_bytes=virtual)
                apparent += fmt.file_bytes_after(offsets, sizes, virtual, differencing=True, **masks)
                allocated += fmt.physical_bytes_after(offsets, sizes, virtual, differencing=True, host=host,
                                                      punch=unmap, **masks)
            else:
                ops = (np.concatenate([base[0], offsets]), np.concatenate([base[1], sizes]),
                       np.concatenate([np.full(base[0].size, DATA), kinds]))
                length, held = raw_resized(*ops, virtual, host)
                apparent += length
                allocated += held
        after = int(spec.resizes[-1].size_bytes)
        rows += _rows("resize", name, spec.guests, {
            # as qemu-img info reads it: a raw file's length in whole sectors (a qcow2 size is one)
            "virtual_bytes_after": float(-(-after // 512) * 512),
            "apparent_bytes_per_guest": apparent / spec.guests,
            "allocated_bytes_per_guest": allocated / spec.guests,
        })
    return rows


def run_disk(spec: DiskSpec) -> pd.DataFrame:
    """Every part of the disk experiment as one tidy table."""
    rows = (guide_example(spec) + guide_example_qcow2(spec) + image_chains(spec) + snapshot_chains(spec)
            + layer_stacks(spec) + growth(spec) + amplification(spec) + resized_disks(spec))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_disk_outputs(out_dir: Path, spec: DiskSpec, table: pd.DataFrame) -> dict[str, Path]:
    """Write ``table`` (disk.csv: bytes per measure), the spec (disk_spec.json) and the figures into
    ``out_dir``; the files written, by name."""
    from virtsim.experiments.disk_plots import plot_all

    out_dir = Path(out_dir)
    paths = {
        "disk": atomic_write(out_dir / "disk.csv", lambda t: table.to_csv(t, index=False)),
        "spec": write_json(out_dir / "disk_spec.json", spec.model_dump(mode="json", by_alias=True)),
    }
    paths.update(plot_all(table, out_dir))
    return paths


def command(args: argparse.Namespace) -> int:
    """``virtsim disk``: validate the spec, check the folder, compute the usage tables, publish."""
    from virtsim.experiments import api

    spec = load_disk_spec(args.spec)
    api.publish_checked("disk", spec, args.out, args.force, lambda: api.disk(spec), 14)
    return 0


def report(folder: Path) -> Report:
    """The report of a ``virtsim disk`` folder: bytes on the host (GB) per format and driver."""
    table = read_results_csv(folder / "disk.csv")
    part = table[table["experiment"].isin(["image-chain", "layer-stack"])]
    answer = part.pivot_table(index="system", columns="measure", values="bytes", sort=False)
    answer = (answer / 1e9).round(3).reset_index().rename(columns=lambda c: f"{c} (GB)" if c != "system" else c)
    return Report("Disk usage", "How much disk do N guests from one image take, per image format and storage driver?",
                  answer, assumptions=[
                   "Formats' layouts are checked byte for byte against qemu-img; overlay2 against a real overlayfs.",
                   "A full clone is one standalone image per guest holding its whole chain, as qemu-img "
                   "convert writes it (data in both the base and an overlay counted once).",
                   "Columns ending in _total are for all guests together; _per_guest for one guest.",
                   "Sizes are bytes on the host (what du counts, less the file system's own extent blocks), "
                   "on host_fs.block blocks: raw images, VHDX payload blocks and VMDK grain tables are sparse "
                   "and hold only what was written; the _apparent_ columns are the file lengths (what ls shows).",
                   "A full clone is as sparse as qemu-img convert writes it (4 KiB pieces of zeros left out).",
                   "A differencing VHDX counts each sector bitmap block it writes in whole (1 MiB per 4 GiB of the "
                   "disk written in): an upper bound, since QEMU cannot write one to check against.",
                   "Resize rows (with [[disk.resize]]; qcow2 overlays and raw copies): each guest's disk after "
                   "its writes and the spec's resizes (qemu-img resize, online), checked against qemu-io 7.2.",
                   "Snapshot chains (qcow2 and VMDK, the formats QEMU chains): file lengths after qemu-img "
                   "commit and rebase, checked against qemu-img 7.2 on random chains; every write is taken to "
                   "change the data it overwrites (rebase copies only what differs)."],
                  sentences=_snapshot_sentences(table))


def _snapshot_sentences(table: pd.DataFrame) -> list[str]:
    """The snapshot-chain part in words: per format, the overlays before and after a commit, and flattened."""
    part = table[table["experiment"] == "snapshot-chain"]
    out = []
    for system, rows in part.groupby("system", sort=False):
        m = rows.set_index("measure")["bytes"] / 1e9
        kept = " (VMDK cannot empty the snapshot: it keeps its size)" if system == "vmdk" else ""
        before, after = m["overlays_apparent_bytes_per_guest"], m.get("after_commit_apparent_bytes_per_guest")
        commit = ("committing the snapshot: not modelled for these clusters (QEMU discards them one by one)"
                  if after is None else f"committing the snapshot leaves {after:.3g} GB{kept}")
        flat = m.get("flattened_apparent_bytes_per_guest")
        flattened = ("" if flat is None else
                     f"; flattening the guest's chain into one image (qemu-img rebase -b \"\") {flat:.3g} GB")
        internal = m.get("internal_snapshot_apparent_bytes_per_guest")
        inside = "" if internal is None else f"; an internal snapshot instead, {internal:.3g} GB"
        out.append(f"{system}: a guest's disk with a snapshot on top takes {before:.3g} GB; {commit}"
                   f"{flattened}{inside} (file lengths, per guest).")
    return out


EXPERIMENT = Experiment("disk", "How much disk do N guests from one image take, per image format and storage "
                        "driver?", command, report, ("disk.csv",), tables=("disk.csv", "disk_spec.json"),
                        # seed_example.png: the first figure as a folder written before its rename names it
                        figures=("guide_example.png", "seed_example.png", "guests_by_format.png", "growth.png",
                                 "amplification.png"))
