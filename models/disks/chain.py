"""Image chains: a base image shared by linked clones, each with its own differencing disk.

A guest sees its base plus its differencing disk(s); the host stores the base once plus every
differencing disk. A full clone is what ``qemu-img convert`` writes from a guest's chain: one
standalone image holding the *union* of the units allocated anywhere in the chain, so a unit
held by both the base and an overlay is stored once. The seed document's example: a 20 GB base
and three guests changing 5, 10 and 7 GB (new data, outside the base's) see 25, 30 and 27 GB
each, the host stores 42 GB, full clones would take 82 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from virtsim.models.disks.allocation import HostFile, check_inside, sorted_distinct, touched_units
from virtsim.models.disks.formats import ImageFormat, Raw

__all__ = ["ChainUsage", "build_chain_usage", "disjoint_chain_usage"]

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
    (the seed document's reading), so a full clone holds base + changes."""
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
