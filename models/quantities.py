"""Pydantic field types that read a number with its unit and hold it in the base unit.

``Bytes`` accepts ``"4KiB"`` or ``4096`` and holds 4096.0; an unknown unit fails validation with
a message naming the accepted units. Used by profiles and by scenario files alike.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from virtsim.sim.units import parse_quantity

__all__ = ["BitsPerSecond", "Bytes", "BytesPerSecond", "Cycles", "Hertz", "PerSecond", "Seconds"]


def _unit(dimension: str) -> BeforeValidator:
    """A validator that parses a number with its unit into the base unit of ``dimension``."""
    return BeforeValidator(lambda v: parse_quantity(v, dimension))


def _physical(limit: float, written: str, why: str) -> AfterValidator:
    """Non-negative and at most ``limit``: beyond it a value is a typo, and its products with
    other quantities would overflow to infinity inside the model."""

    def check(v: float) -> float:
        if v < 0:
            raise ValueError(f"must be >= 0, got {v}")
        if v > limit:
            raise ValueError(f"{v:.4g} is beyond {written} ({why}); check the number and its unit")
        return v

    return AfterValidator(check)


Bytes = Annotated[float, _unit("bytes"), _physical(2.0**60, "1 EiB", "larger than any disk, memory or message")]
Seconds = Annotated[float, _unit("seconds"), _physical(1e6, "1e6 s", "11.6 days of simulated time")]
Hertz = Annotated[float, _unit("hertz"), _physical(1e11, "100 GHz", "no clock runs faster")]
BitsPerSecond = Annotated[float, _unit("bits_per_second"), _physical(1e13, "10 Tbit/s", "no link is faster")]
BytesPerSecond = Annotated[float, _unit("bytes_per_second"), _physical(1e13, "10 TB/s", "no memory or disk is faster")]
Cycles = Annotated[float, _unit("cycles"), _physical(1e15, "1e15 cycles", "days of one core's work per step")]
PerSecond = Annotated[float, _unit("per_second"), _physical(1e9, "1e9/s", "a billion events per second")]
