"""Pydantic field types that read a number with its unit and hold it in the base unit.

``Bytes`` accepts ``"4KiB"`` or ``4096`` and holds 4096.0; an unknown unit fails validation with
a message naming the accepted units. Used by profiles and by scenario files alike.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic.fields import FieldInfo

from virtsim.sim.units import parse_quantity, quantity_text

__all__ = ["BitsPerSecond", "Bytes", "BytesPerSecond", "Cycles", "Dimension", "Hertz", "PerSecond", "Seconds",
           "field_dimension", "value_text"]


@dataclass(frozen=True)
class Dimension:
    """Marks a quantity field's dimension (``"bytes"``, ``"seconds"``...): its value is written back with a unit."""

    name: str


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


Bytes = Annotated[float, Dimension("bytes"), _unit("bytes"),
                   _physical(2.0**60, "1 EiB", "larger than any disk, memory or message")]
Seconds = Annotated[float, Dimension("seconds"), _unit("seconds"),
                     _physical(1e6, "1e6 s", "11.6 days of simulated time")]
Hertz = Annotated[float, Dimension("hertz"), _unit("hertz"), _physical(1e11, "100 GHz", "no clock runs faster")]
BitsPerSecond = Annotated[float, Dimension("bits_per_second"), _unit("bits_per_second"),
                           _physical(1e13, "10 Tbit/s", "no link is faster")]
BytesPerSecond = Annotated[float, Dimension("bytes_per_second"), _unit("bytes_per_second"),
                            _physical(1e13, "10 TB/s", "no memory or disk is faster")]
Cycles = Annotated[float, Dimension("cycles"), _unit("cycles"),
                    _physical(1e15, "1e15 cycles", "days of one core's work per step")]
PerSecond = Annotated[float, Dimension("per_second"), _unit("per_second"),
                       _physical(1e9, "1e9/s", "a billion events per second")]


def _dimension(annotation: Any) -> str | None:
    """The dimension an annotation marks, looking inside ``X | None``."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Dimension):
            return meta.name
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((d for a in typing.get_args(annotation) if (d := _dimension(a)) is not None), None)
    return None


def field_dimension(field: FieldInfo) -> str | None:
    """The dimension of a quantity field (``Bytes``, ``Seconds``..., alone or ``| None``); ``None`` for others."""
    return next((m.name for m in field.metadata if isinstance(m, Dimension)), None) or _dimension(field.annotation)


def value_text(field: FieldInfo, value: Any) -> str:
    """A validated field value as one canonical piece of text: a quantity with its unit
    (:func:`~virtsim.sim.units.quantity_text`), ``true``/``false``,
    a list as ``[a,b]``, anything else as ``str``."""
    dimension = field_dimension(field)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, float) and dimension is not None:
        return quantity_text(value, dimension)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
