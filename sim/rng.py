"""Random streams keyed by what they are for, never by who draws them.

Every stream is derived from one root seed and a key (replication, then names such as the guest
and the stream's purpose) through :class:`numpy.random.SeedSequence`. The same key gives the same
numbers whatever the order of execution or the worker, which makes a sweep identical serially, on
a process pool and on Dask, and lets compared configurations share random numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, cast

import numpy as np

__all__ = ["IndexedStreams", "SegmentedGenerator", "SegmentedStreams", "key_int", "stream", "stream_seed"]


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


class SegmentedGenerator:
    """Several clients' generators drawn as one: a draw for ``sum(counts)`` rows takes each
    client's ``counts[c]`` numbers from its own generator, in order, so that a block of several
    clients' requests gets exactly the numbers each client would have drawn alone.

    A draw of one number (``size`` None or ``()``, as a layer makes for a demand whose amount is a
    scalar) takes one from each client's generator and repeats it over that client's rows: the
    result is per row where alone it was one number per block. Array parameters of the rows'
    length are cut the same way. Only the distributions the models draw are offered; any other
    size is refused (it would mix the clients' numbers).
    """

    def __init__(self, generators: list[np.random.Generator] | Callable[[], list[np.random.Generator]],
                 counts: list[int], bounds: np.ndarray | None = None) -> None:
        # ``generators`` may be a function that makes them: called on the first draw, since most
        # demands of a block draw nothing (an oltp block holds a hundred per client)
        if any(n < 0 for n in counts) or (not callable(generators) and len(generators) != len(counts)):
            raise ValueError("one non-negative count per generator")
        self._made: list[np.random.Generator] | None = None if callable(generators) else generators
        self._make = generators if callable(generators) else None
        self._counts = counts
        self._total = sum(counts)
        self._bounds = np.cumsum([0, *counts]) if bounds is None else bounds

    @property
    def _generators(self) -> list[np.random.Generator]:
        if self._made is None:
            assert self._make is not None
            self._made = self._make()
            if len(self._made) != len(self._counts):
                raise ValueError("one non-negative count per generator")
        return self._made

    def _draw(self, method: str, params: tuple[Any, ...], size: Any) -> np.ndarray:
        if size is None or size == ():
            ones = [getattr(g, method)(*params) for g in self._generators]
            return np.repeat(np.asarray(ones, dtype=float), self._counts)
        if (np.ndim(size) == 0 and size != self._total) or (np.ndim(size) == 1 and tuple(size) != (self._total,)):
            raise ValueError(f"a segmented draw takes one number per row ({self._total}) or one per "
                             f"client, not size {size!r}")
        parts = []
        for c, gen in enumerate(self._generators):
            lo, hi = self._bounds[c], self._bounds[c + 1]
            cut = tuple(p[lo:hi] if np.ndim(p) == 1 and len(p) == self._total else p for p in params)
            parts.append(getattr(gen, method)(*cut, hi - lo))
        return np.concatenate(parts) if parts else np.empty(0)

    def random(self, size: Any = None) -> np.ndarray:
        """Uniform on [0, 1), as :meth:`numpy.random.Generator.random`."""
        return self._draw("random", (), size)

    def standard_exponential(self, size: Any = None) -> np.ndarray:
        """As :meth:`numpy.random.Generator.standard_exponential`."""
        return self._draw("standard_exponential", (), size)

    def exponential(self, scale: Any = 1.0, size: Any = None) -> np.ndarray:
        """As :meth:`numpy.random.Generator.exponential`."""
        return self._draw("exponential", (scale,), size)

    def lognormal(self, mean: Any = 0.0, sigma: Any = 1.0, size: Any = None) -> np.ndarray:
        """As :meth:`numpy.random.Generator.lognormal`."""
        return self._draw("lognormal", (mean, sigma), size)

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> np.ndarray:
        """As :meth:`numpy.random.Generator.normal`."""
        return self._draw("normal", (loc, scale), size)

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> np.ndarray:
        """As :meth:`numpy.random.Generator.uniform`."""
        return self._draw("uniform", (low, high), size)


class SegmentedStreams(IndexedStreams):
    """Several clients' :class:`IndexedStreams` as one: stream ``i`` is a
    :class:`SegmentedGenerator` over each client's stream ``i`` (see there)."""

    def __init__(self, streams: list[IndexedStreams], counts: list[int]) -> None:
        self._streams = streams
        self._counts = counts
        self._bounds = np.cumsum([0, *counts])
        self._made = {}

    def at(self, index: int) -> np.random.Generator:
        """The segmented generator of ``index`` (the same object every time; the clients'
        generators are looked up on its first draw)."""
        rng = self._made.get(index)
        if rng is None:
            streams = self._streams
            rng = self._made[index] = cast(np.random.Generator, SegmentedGenerator(
                lambda: [s.at(index) for s in streams], self._counts, self._bounds))
        return rng
