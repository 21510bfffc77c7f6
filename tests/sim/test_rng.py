"""Random streams: keyed by what they are for, identical however they are drawn."""

from __future__ import annotations

import numpy as np

from virtsim.sim.rng import key_int, stream


def test_same_key_same_numbers_different_key_different_numbers() -> None:
    a = stream(42, 0, "web", "arrivals").random(5)
    assert np.array_equal(a, stream(42, 0, "web", "arrivals").random(5))
    assert not np.array_equal(a, stream(42, 1, "web", "arrivals").random(5))
    assert not np.array_equal(a, stream(42, 0, "web", "work").random(5))
    assert not np.array_equal(a, stream(43, 0, "web", "arrivals").random(5))


def test_key_parts_are_stable_across_processes() -> None:
    # blake2b of the UTF-8 name, not Python's salted hash(); this value must never change.
    assert key_int("web") == int.from_bytes(__import__("hashlib").blake2b(b"web", digest_size=8).digest(), "little")
    assert key_int(7) == 7


def test_drawing_in_blocks_equals_drawing_at_once() -> None:
    """The DES engine draws in blocks and the vector engine all at once: same numbers."""
    whole = stream(1, 0, "x").exponential(2.0, 4096)
    rng = stream(1, 0, "x")
    blocks = np.concatenate([rng.exponential(2.0, 1024) for _ in range(4)])
    assert np.array_equal(whole, blocks)
