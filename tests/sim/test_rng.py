"""Random streams: keyed by what they are for, identical however they are drawn."""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.sim.rng import IndexedStreams, SegmentedGenerator, SegmentedStreams, key_int, stream


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


def _fresh(n: int) -> list[np.random.Generator]:
    return [stream(9, 0, "client", c) for c in range(n)]


def test_a_segmented_draw_gives_each_client_the_numbers_it_draws_alone() -> None:
    counts = [3, 0, 5]
    both = SegmentedGenerator(_fresh(3), counts)
    rows = np.concatenate([both.lognormal(-8.0, 0.3, 8), both.random((8,))])
    alone = _fresh(3)
    expected = np.concatenate([np.concatenate([g.lognormal(-8.0, 0.3, n) for g, n in zip(alone, counts, strict=True)]),
                               np.concatenate([g.random(n) for g, n in zip(alone, counts, strict=True)])])
    assert np.array_equal(rows, expected)


def test_a_segmented_draw_cuts_per_row_parameters_and_repeats_a_clients_single_number() -> None:
    both = SegmentedGenerator(_fresh(2), [2, 1])
    scale = np.array([1.0, 2.0, 30.0])
    alone = _fresh(2)
    assert np.array_equal(both.exponential(scale, 3),
                          np.concatenate([alone[0].exponential(scale[:2], 2), alone[1].exponential(scale[2:], 1)]))
    # one number per client (a layer's draw for a scalar amount) becomes one per row
    one_each = both.random()
    assert one_each.shape == (3,) and one_each[0] == one_each[1] != one_each[2]
    assert one_each[0] == alone[0].random() and one_each[2] == alone[1].random()


def test_a_segmented_draw_refuses_a_size_that_would_mix_the_clients() -> None:
    both = SegmentedGenerator(_fresh(2), [2, 1])
    with pytest.raises(ValueError, match="one number per row"):
        both.random(4)
    with pytest.raises(ValueError, match="one number per row"):
        both.random((3, 2))


def test_segmented_streams_give_each_index_its_own_segmented_generator() -> None:
    seeds = [np.random.SeedSequence(4, spawn_key=(c,)) for c in range(2)]
    blocks = SegmentedStreams([IndexedStreams(s) for s in seeds], [2, 2])
    assert blocks.at(3) is blocks.at(3)
    alone = [IndexedStreams(np.random.SeedSequence(4, spawn_key=(c,))) for c in range(2)]
    assert np.array_equal(blocks.at(3).random(4), np.concatenate([a.at(3).random(2) for a in alone]))
