"""Write small nested dicts as TOML (inline tables) for tests; checked by reading them back."""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _inline(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):  # TOML spells these nan, inf, -inf
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return json.dumps(v)


def to_toml(data: dict[str, Any], check: bool = True) -> str:
    """TOML for ``data``; with ``check``, read back to prove it says the same (NaN never equals itself,
    so data holding one is written with ``check=False``)."""
    text = "\n".join(f"{_key(k)} = {_inline(v)}" for k, v in data.items())
    if check:
        assert tomllib.loads(text) == data, "the test data cannot round-trip through TOML"
    return text + "\n"
