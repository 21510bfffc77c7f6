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
           "field_dimension", "value_from_text", "value_text"]


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


_SCALARS = (int, float, bool, str)


def _shape(annotation: Any) -> str | None:
    """How :func:`value_text` writes a field of this annotation: ``"scalar"`` (a number, with
    or without unit, true/false, a name), ``"list"`` (a list of scalars), or ``None`` for a kind
    it cannot write so that it reads back (a table, a list of lists). ``None`` in a union is
    left aside (it is written ``None``)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        shapes = {_shape(a) for a in args}
        return shapes.pop() if len(shapes) == 1 else None
    if typing.get_origin(annotation) is Annotated:
        return _shape(args[0])
    if typing.get_origin(annotation) is typing.Literal or annotation in _SCALARS:
        return "scalar"
    if typing.get_origin(annotation) in (list, tuple) and all(_shape(a) == "scalar" for a in args if a is not ...):
        return "list"
    return None


def value_from_text(key: str, field: FieldInfo, text: str) -> Any:
    """What :func:`value_text` wrote for ``field``, as input its validator reads to the same
    value: ``None`` for ``None`` (in a field that may be none), the items of ``[a,b]`` as
    texts, any other text as it is (the field reads numbers, units and true/false from text).
    ``ValueError`` naming ``key`` for a list not written ``[...]`` and for a field of a kind no
    text reads back (a table, a list of lists)."""
    annotation = field.annotation
    if text == "None" and type(None) in typing.get_args(annotation):
        return None
    shape = _shape(annotation)
    if shape is None:
        raise ValueError(f"{key}: a value of this kind cannot be written in a stack's text; write the stack as a "
                         "list of layers in a scenario file instead")
    if shape == "scalar":
        return text
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{key}: a list is written in brackets, like {key}=[0,1]; got {text!r}")
    inner = text[1:-1].strip()
    return [item.strip() for item in inner.split(",")] if inner else []

