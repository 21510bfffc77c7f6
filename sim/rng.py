"""Random streams keyed by what they are for, never by who draws them.

Every stream is derived from one root seed and a key (replication, then names such as the guest
and the stream's purpose) through :class:`numpy.random.SeedSequence`. The same key gives the same
numbers whatever the order of execution or the worker, which makes a sweep identical serially, on
a process pool and on Dask, and lets compared configurations share random numbers.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["key_int", "stream", "stream_seed"]


def key_int(name: str | int) -> int:
    """A stable 64-bit integer for a key part (Python's ``hash`` changes between processes)."""
    if isinstance(name, int):
        if name < 0:
            raise ValueError(f"key parts must be non-negative, got {name}")
        return name
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def stream_seed(seed: int, replication: int, *names: str | int) -> np.random.SeedSequence:
    """The seed sequence of the stream keyed by (seed, replication, *names)."""
    if seed < 0 or replication < 0:
        raise ValueError("seed and replication must be non-negative")
    return np.random.SeedSequence(entropy=seed, spawn_key=(replication, *map(key_int, names)))


def stream(seed: int, replication: int, *names: str | int) -> np.random.Generator:
    """An independent generator for the key (seed, replication, *names)."""
    return np.random.Generator(np.random.PCG64(stream_seed(seed, replication, *names)))
