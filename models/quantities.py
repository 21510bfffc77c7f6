"""Pydantic field types that read a number with its unit and hold it in the base unit.

``Bytes`` accepts ``"4KiB"`` or ``4096`` and holds 4096.0; an unknown unit fails validation with
a message naming the accepted units. Used by profiles and by scenario files alike.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from sim.units import parse_quantity

__all__ = ["BitsPerSecond", "Bytes", "BytesPerSecond", "Cycles", "Hertz", "PerSecond", "Seconds"]


def _unit(dimension: str) -> BeforeValidator:
    return BeforeValidator(lambda v: parse_quantity(v, dimension))


def _non_negative(v: float) -> float:
    if v < 0:
        raise ValueError(f"must be >= 0, got {v}")
    return v


Bytes = Annotated[float, _unit("bytes"), AfterValidator(_non_negative)]
Seconds = Annotated[float, _unit("seconds"), AfterValidator(_non_negative)]
Hertz = Annotated[float, _unit("hertz"), AfterValidator(_non_negative)]
BitsPerSecond = Annotated[float, _unit("bits_per_second"), AfterValidator(_non_negative)]
BytesPerSecond = Annotated[float, _unit("bytes_per_second"), AfterValidator(_non_negative)]
Cycles = Annotated[float, _unit("cycles"), AfterValidator(_non_negative)]
PerSecond = Annotated[float, _unit("per_second"), AfterValidator(_non_negative)]
