"""Quantities with units, converted once at the edge.

A scenario writes ``"10Gbps"``, ``"4KiB"``, ``"2.5GHz"`` or ``"50ms"``; inside the simulator every
quantity is a float in one base unit per dimension, named in the field that holds it
(``size_bytes``, ``rate_bps``, ``freq_hz``, ``latency_s``, ``work_cycles``).
"""

from __future__ import annotations

import math
import re

__all__ = ["DIMENSIONS", "UnitError", "format_quantity", "parse_quantity", "quantity_text"]


class UnitError(ValueError):
    """A quantity whose number or unit cannot be read for the dimension asked for."""


_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BIN = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
_TIME = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}

# Each dimension: base unit name -> table of accepted suffixes and their factor to the base unit.
DIMENSIONS: dict[str, dict[str, float]] = {
    "bytes": {
        **{p + "B": f for p, f in _SI.items()},
        **{p + "B": f for p, f in _BIN.items()},
    },
    "seconds": dict(_TIME),
    "hertz": {p + "Hz": f for p, f in _SI.items()},
    "bits_per_second": {
        **{p + "bps": f for p, f in _SI.items()},
        **{p + "bit/s": f for p, f in _SI.items()},
        **{p + "B/s": 8 * f for p, f in _SI.items()},
        **{p + "B/s": 8 * f for p, f in _BIN.items()},
    },
    "bytes_per_second": {
        **{p + "B/s": f for p, f in _SI.items()},
        **{p + "B/s": f for p, f in _BIN.items()},
        **{p + "bps": f / 8 for p, f in _SI.items()},
    },
    "cycles": {p: f for p, f in _SI.items()} | {p + "cycles": f for p, f in _SI.items()},
    "per_second": {"/s": 1.0, "/ms": 1e3, "/min": 1 / 60.0, "rps": 1.0, "Hz": 1.0, "kHz": 1e3},
    "count": dict(_SI),
}

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def parse_quantity(value: str | float | int, dimension: str) -> float:
    """Convert ``value`` to the base unit of ``dimension`` (see :data:`DIMENSIONS`).

    A bare number is taken as already in the base unit. Raises :class:`UnitError` naming the
    accepted units when the suffix does not belong to the dimension (``"10ms"`` for bytes).
    """
    if dimension not in DIMENSIONS:
        raise UnitError(f"unknown dimension {dimension!r}; known: {sorted(DIMENSIONS)}")
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {dimension}, got a boolean")
    if isinstance(value, int | float):
        return _finite(float(value), value)
    match = _NUMBER.match(str(value))
    if match is None:
        raise UnitError(f"{value!r} is not a number followed by a unit (e.g. {_example(dimension)})")
    number, suffix = float(match.group(1)), match.group(2)
    table = DIMENSIONS[dimension]
    if suffix == "":
        return _finite(number, value)
    if suffix not in table:
        accepted = ", ".join(sorted(k for k in table if k))
        raise UnitError(f"{value!r}: unit {suffix!r} is not a unit of {dimension} (use one of: {accepted})")
    return _finite(number * table[suffix], value)


def _finite(number: float, written: object) -> float:
    """``number`` if it is finite; NaN or infinity (``nan``, ``inf``, ``"1e400GB"``) is an error."""
    if not math.isfinite(number):
        raise UnitError(f"{written!r} is not a finite number; write a finite value")
    return number


def _example(dimension: str) -> str:
    """A quantity written in a unit of ``dimension``, for error messages."""
    return {
        "bytes": '"4KiB"',
        "seconds": '"50ms"',
        "hertz": '"2.5GHz"',
        "bits_per_second": '"10Gbps"',
        "bytes_per_second": '"2GB/s"',
        "cycles": '"2M"',
        "per_second": '"100/s"',
        "count": '"10k"',
    }.get(dimension, "a number")


def format_quantity(value: float, dimension: str) -> str:
    """Render a base-unit value with a readable prefix (for tables and plots)."""
    if dimension == "bytes":
        for unit, factor in (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
            if abs(value) >= factor:
                return f"{value / factor:.3g} {unit}"
        return f"{value:.0f} B"
    if dimension == "seconds":
        for unit, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
            if abs(value) >= factor:
                return f"{value / factor:.3g} {unit}"
        return f"{value / 1e-9:.3g} ns"
    return f"{value:.4g}"


def quantity_text(value: float, dimension: str) -> str:
    """``value`` (base unit) as a number and a unit of the base unit's family, to 12 significant
    digits: of the units it is at least one of, the one that needs the fewest characters (a whole
    number, then the larger unit, on a tie): ``5e-05`` seconds is ``"50us"``, 0.1 s ``"100ms"``,
    536870912 bytes ``"512MiB"``, 1.5e9 bytes ``"1.5GB"``, 0 s ``"0s"``. One canonical text per
    value (for labels; it may differ from the value in the last of its 16 digits, so files keep
    the number itself)."""
    table = DIMENSIONS[dimension]
    base = next(suffix for suffix, factor in table.items() if factor == 1.0)
    digits = f"{value:.12g}"  # the value the text stands for: 12 significant digits of the base unit
    candidates = [(digits, -1.0, base)]
    for suffix, factor in table.items():
        if suffix.endswith(base) and suffix.isascii() and factor != 1.0 and factor <= abs(float(digits)):
            number = f"{float(digits) / factor:.12g}"
            # only a text that reads back as those digits: 12 digits of KiB are not 12 digits of
            # bytes, and a label read back must give the same label (issue 14)
            if f"{float(number) * factor:.12g}" == digits:
                candidates.append((number, -factor, suffix))
    number, _, suffix = min(candidates, key=lambda c: (len(c[0]), "." in c[0], c[1]))
    return number + suffix
