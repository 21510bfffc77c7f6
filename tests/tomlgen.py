"""Write small nested dicts as TOML (inline tables) for tests; checked by reading them back."""

from __future__ import annotations

import json
import tomllib
from typing import Any


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return json.dumps(v)


def to_toml(data: dict[str, Any]) -> str:
    text = "\n".join(f"{_key(k)} = {_inline(v)}" for k, v in data.items())
    assert tomllib.loads(text) == data, "the test data cannot round-trip through TOML"
    return text
