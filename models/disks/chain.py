"""Image chains: a base image shared by linked clones, each with its own differencing disk.

A guest sees its base plus its differencing disk(s); the host stores the base once plus every
differencing disk; full clones store the base and the changes once per guest. The seed
document's example: a 20 GB base and three guests changing 5, 10 and 7 GB see 25, 30 and 27 GB
each, the host stores 42 GB, full clones would take 82 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.disks.allocation import touched_bitmap
from models.disks.formats import ImageFormat

__all__ = ["ChainUsage", "build_chain_usage"]


@dataclass(frozen=True)
class ChainUsage:
    """Bytes of a base image and each guest's differencing disks (top of the chain last)."""

    base_bytes: int
    guest_bytes: tuple[tuple[int, ...], ...]  # per guest: its differencing disks, base first

    def per_guest_view(self) -> list[int]:
        """What each guest's disk costs if counted alone: base + its own differencing disks."""
        return [self.base_bytes + sum(diffs) for diffs in self.guest_bytes]

    def host_physical(self) -> int:
        """What the host stores: the base once, plus every differencing disk."""
        return self.base_bytes + sum(sum(diffs) for diffs in self.guest_bytes)

    def full_clones(self) -> int:
        """What full copies would store: base plus changes, once per guest."""
        return sum(self.per_guest_view())

    def saving(self) -> float:
        """Fraction of the full-clone bytes that linked clones save."""
        full = self.full_clones()
        return 1.0 - self.host_physical() / full if full else 0.0


def build_chain_usage(
    fmt: ImageFormat,
    virtual_bytes: int,
    base_writes: tuple[np.ndarray, np.ndarray],
    guest_writes: list[list[tuple[np.ndarray, np.ndarray]]],
) -> ChainUsage:
    """File sizes of a chain whose base and differencing disks received the given writes.

    Each write set is (offsets, sizes) in bytes. A differencing disk allocates a unit on any
    write to it, whatever its parents hold (copy-on-write of the whole unit).
    """
    n = fmt.n_units(virtual_bytes)
    base = fmt.file_bytes(touched_bitmap(*base_writes, fmt.unit_bytes, n), virtual_bytes)
    guests = tuple(
        tuple(fmt.file_bytes(touched_bitmap(*w, fmt.unit_bytes, n), virtual_bytes, differencing=True) for w in levels)
        for levels in guest_writes
    )
    return ChainUsage(base, guests)
