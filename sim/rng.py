"""Random streams keyed by what they are for, never by who draws them.

Every stream is derived from one root seed and a key (replication, then names such as the guest
and the stream's purpose) through :class:`numpy.random.SeedSequence`. The same key gives the same
numbers whatever the order of execution or the worker, which makes a sweep identical serially, on
a process pool and on Dask, and lets compared configurations share random numbers.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import numpy as np

__all__ = ["IndexedStreams", "key_int", "stream", "stream_seed"]


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


class IndexedStreams:
    """One generator per index, each derived from ``seed`` and the index alone.

    A sampler that draws for several demands a block of requests at a time must give each demand
    its own stream: with one shared generator, the numbers a demand gets depend on how many
    requests each block holds, and engines that draw blocks of different sizes (the DES 1024 at a
    time, the compiled kernel in growing chunks) would then give different numbers for one seed.
    """

    def __init__(self, seed: np.random.SeedSequence) -> None:
        self._seed = seed
        self._made: dict[int, np.random.Generator] = {}

    def at(self, index: int) -> np.random.Generator:
        """The generator of ``index`` (the same object every time). It is built on its first draw:
        most demands draw nothing, and building a generator costs about 70 us, which a sampler
        of a 112-demand oltp transaction per client would pay 368 times."""
        rng = self._made.get(index)
        if rng is None:
            rng = self._made[index] = cast(np.random.Generator, _OnFirstDraw(self._seed, index))
        return rng


class _OnFirstDraw:
    """A generator made when one of its methods is first used (see :meth:`IndexedStreams.at`)."""

    def __init__(self, seed: np.random.SeedSequence, index: int) -> None:
        self._seed, self._index = seed, index
        self._rng: np.random.Generator | None = None

    def __getattr__(self, name: str) -> Any:
        if self._rng is None:
            child = np.random.SeedSequence(self._seed.entropy, spawn_key=(*self._seed.spawn_key, self._index),
                                           pool_size=self._seed.pool_size)
            self._rng = np.random.Generator(np.random.PCG64(child))
        return getattr(self._rng, name)
