"""Quantities written with their units: a quantity's canonical text reads back as itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from virtsim.sim.units import DIMENSIONS, parse_quantity, quantity_text


@settings(max_examples=500, deadline=None)
@given(dimension=st.sampled_from(sorted(DIMENSIONS)), value=st.floats(1e-9, 1e13))
def test_a_quantitys_text_reads_back_as_the_same_text(dimension: str, value: float) -> None:
    """12 digits of KiB are not 12 digits of bytes: 23018362.03733685 bytes were written
    21.9520206807MiB, which reads back as 22478.869177KiB, so a stack read from its label was
    another stack."""
    text = quantity_text(value, dimension)
    assert quantity_text(parse_quantity(text, dimension), dimension) == text


def test_common_quantities_keep_their_short_texts() -> None:
    """Only a unit whose text reads back as the same 12 digits is taken, compared as digits: 50us
    reads back as 4.9999999999999996e-05 s, not the float 5e-05, and must still be 50us."""
    assert [quantity_text(v, "seconds") for v in (5e-5, 0.1, 0.0, 7e-6)] == ["50us", "100ms", "0s", "7us"]
    assert [quantity_text(v, "bytes") for v in (2.0**29, 1.5e9, 128 * 1024)] == ["512MiB", "1.5GB", "128KiB"]
