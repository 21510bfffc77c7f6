"""Write patterns as arrays: (offsets, sizes) in bytes, generated all at once.

Block-level patterns for image chains; each takes a generator so that a pattern is the same for
the same key (see :mod:`virtsim.sim.rng`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["PatternKind", "block_writes"]

PatternKind = Literal["sequential", "random", "zipf", "log-append"]


def block_writes(
    kind: PatternKind,
    writes: int,
    io_bytes: int,
    span_bytes: int,
    rng: np.random.Generator,
    start_bytes: int = 0,
    zipf_exponent: float = 1.2,
) -> tuple[np.ndarray, np.ndarray]:
    """``writes`` writes of ``io_bytes`` inside [start, start + span).

    - ``sequential``: back to back from ``start``, wrapping at the end of the span;
    - ``random``: uniform over the span, aligned to ``io_bytes``;
    - ``zipf``: a few hot slots take most writes (rank r has weight r^-exponent), the slots
      scattered over the span by a fixed permutation;
    - ``log-append``: like sequential, but records are appended and never rewritten (a log that
      grows past the span raises an error rather than wrapping).
    """
    if writes < 0 or io_bytes <= 0 or span_bytes < io_bytes:
        raise ValueError("need writes >= 0, io_bytes > 0 and span_bytes >= io_bytes")
    slots = span_bytes // io_bytes
    n = np.arange(writes, dtype=np.int64)
    if kind == "sequential":
        index = n % slots
    elif kind == "log-append":
        if writes > slots:
            raise ValueError(f"log-append: {writes} records of {io_bytes} B do not fit in {span_bytes} B")
        index = n
    elif kind == "random":
        index = rng.integers(0, slots, writes)
    elif kind == "zipf":
        ranks = (rng.zipf(zipf_exponent, writes) - 1) % slots
        index = rng.permutation(slots)[ranks] if slots <= 50_000_000 else ranks
    else:
        raise ValueError(f"unknown write pattern {kind!r}; use sequential, random, zipf or log-append")
    return start_bytes + index * io_bytes, np.full(writes, io_bytes, dtype=np.int64)
