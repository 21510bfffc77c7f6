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
  refcount block covers cluster*4 clusters; more are added as the file grows.
- VDI: VirtualBox VDI format (``vdi.c``): a 512-byte header, a block map of 4 bytes per block,
  then 1 MiB blocks in allocation order.
- VMDK monolithic sparse: VMware Virtual Disk Format 5.0: 64 KiB grains, grain tables of 512
  entries (32 MiB each) preallocated for the whole disk, twice (redundant copy), a grain
  directory each, after a header sector and a 20-sector descriptor, rounded up to a grain.
- VHDX: [MS-VHDX] v1.0: header, log, metadata and BAT regions (8 MiB as QEMU lays them out for
  a BAT up to 1 MiB), then payload blocks. Unless a block size is given, QEMU (``block/vhdx.c``)
  picks it by virtual size: 8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, then
  64 MiB (checked against ``qemu-img`` 7.2 here). A differencing disk also keeps one 1 MiB
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

__all__ = ["FORMAT_NAMES", "FormatName", "ImageFormat", "format_by_name"]

FormatName = Literal["qcow2", "vhdx", "vmdk", "vdi", "raw"]
FORMAT_NAMES: tuple[FormatName, ...] = get_args(FormatName)

KiB, MiB, GiB = 2**10, 2**20, 2**30


@dataclass(frozen=True)
class ImageFormat:
    """A disk image format: its name, allocation unit, and how metadata grows."""

    name: str
    unit_bytes: int

    def n_units(self, virtual_bytes: int) -> int:
        return math.ceil(virtual_bytes / self.unit_bytes)

    def empty_bytes(self, virtual_bytes: int) -> int:
        """File size of a newly created image (nothing written)."""
        return self.metadata_bytes(virtual_bytes)

    def metadata_bytes(self, virtual_bytes: int) -> int:
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


@dataclass(frozen=True)
class Qcow2(ImageFormat):
    """qcow2 with ``unit_bytes`` clusters and 16-bit refcounts (QEMU's defaults)."""

    refcount_bits: int = 16

    def l2_entries(self) -> int:
        return self.unit_bytes // 8

    def l1_bytes(self, virtual_bytes: int) -> int:
        return 8 * math.ceil(virtual_bytes / (self.unit_bytes * self.l2_entries()))

    def empty_bytes(self, virtual_bytes: int) -> int:
        return 3 * self.unit_bytes + self.l1_bytes(virtual_bytes)

    def metadata_bytes(self, virtual_bytes: int) -> int:
        return (3 + math.ceil(self.l1_bytes(virtual_bytes) / self.unit_bytes)) * self.unit_bytes

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        data = np.asarray(units, dtype=np.int64)
        if data.size == 0:
            return self.empty_bytes(virtual_bytes)
        l2_tables = np.unique(data // self.l2_entries()).size
        clusters = self.metadata_bytes(virtual_bytes) // self.unit_bytes + l2_tables + data.size
        per_refblock = self.unit_bytes * 8 // self.refcount_bits
        extra_refblocks = 0  # the first block is in the header area; each covers itself too
        while math.ceil((clusters + extra_refblocks) / per_refblock) - 1 > extra_refblocks:
            extra_refblocks += 1
        return (clusters + extra_refblocks) * self.unit_bytes


@dataclass(frozen=True)
class Vdi(ImageFormat):
    """VirtualBox VDI dynamic image, 1 MiB blocks."""

    def metadata_bytes(self, virtual_bytes: int) -> int:
        block_map = 4 * self.n_units(virtual_bytes)
        return 512 + math.ceil(block_map / 512) * 512


@dataclass(frozen=True)
class Vmdk(ImageFormat):
    """VMDK monolithic sparse extent, 64 KiB grains, redundant grain tables preallocated."""

    def metadata_bytes(self, virtual_bytes: int) -> int:
        sector = 512
        grains_per_table = 512
        tables = math.ceil(self.n_units(virtual_bytes) / grains_per_table)
        gd_sectors = math.ceil(tables * 4 / sector)
        gt_sectors = grains_per_table * 4 // sector
        end = 1 + 20 + 2 * (gd_sectors + gt_sectors * tables)  # header, descriptor, (r)GD + GTs
        grain_sectors = self.unit_bytes // sector
        return math.ceil(end / grain_sectors) * grain_sectors * sector


@dataclass(frozen=True)
class Vhdx(ImageFormat):
    """VHDX dynamic or differencing disk; ``unit_bytes = 0`` means QEMU's default for the size."""

    def for_disk(self, virtual_bytes: int) -> ImageFormat:
        if self.unit_bytes:
            return self
        tiers = ((1 * GiB, 8 * MiB), (100 * GiB, 16 * MiB), (32 * 2**40, 32 * MiB))
        block = next((b for limit, b in tiers if virtual_bytes <= limit), 64 * MiB)
        return Vhdx(self.name, block)

    def metadata_bytes(self, virtual_bytes: int) -> int:
        blocks = self.n_units(virtual_bytes)
        chunk_blocks = (2**23 * 512) // self.unit_bytes
        bat_bytes = 8 * (blocks + math.ceil(blocks / chunk_blocks))
        return 7 * MiB + math.ceil(bat_bytes / MiB) * MiB

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        size = super().file_bytes(units, virtual_bytes, differencing)
        if differencing:
            chunk_blocks = (2**23 * 512) // self.unit_bytes
            chunks = np.unique(np.asarray(units, dtype=np.int64) // chunk_blocks).size
            size += chunks * MiB  # sector bitmap blocks of the chunks written
        return size


@dataclass(frozen=True)
class Raw(ImageFormat):
    """A raw image: no sharing, the whole virtual size per copy."""

    def metadata_bytes(self, virtual_bytes: int) -> int:
        return 0

    def empty_bytes(self, virtual_bytes: int) -> int:
        return virtual_bytes

    def file_bytes(self, units: np.ndarray, virtual_bytes: int, differencing: bool = False) -> int:
        return virtual_bytes


_DEFAULTS: dict[str, ImageFormat] = {
    "qcow2": Qcow2("qcow2", 64 * KiB),
    "vhdx": Vhdx("vhdx", 0),  # 0: the block size follows the virtual size, see Vhdx.for_disk
    "vmdk": Vmdk("vmdk", 64 * KiB),
    "vdi": Vdi("vdi", 1 * MiB),
    "raw": Raw("raw", 512),
}


def format_by_name(name: str, virtual_bytes: int, unit_bytes: int | None = None) -> ImageFormat:
    """The format ``name`` for a disk of ``virtual_bytes``: its tools' default allocation unit
    for that size, or ``unit_bytes`` (qcow2 ``cluster_size``, VHDX ``block_size``) if given."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown image format {name!r}; known: {', '.join(_DEFAULTS)}")
    if virtual_bytes <= 0:
        raise ValueError(f"{name}: the virtual size must be positive, got {virtual_bytes} bytes")
    fmt = _DEFAULTS[name]
    if unit_bytes is None:
        return fmt.for_disk(virtual_bytes)
    if unit_bytes <= 0 or unit_bytes & (unit_bytes - 1):
        raise ValueError(f"{name}: the allocation unit must be a power of two, got {unit_bytes}")
    return type(fmt)(fmt.name, unit_bytes)
