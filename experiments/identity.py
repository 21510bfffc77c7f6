"""What makes a result the result of something: the fingerprint of the code and of an input.

A sweep point, a result folder and a cached run are identified by the hash of their fully
resolved, validated input (every default filled in) together with the hash of the code that
computes them, so a changed scenario, a changed default or a changed model never reuses an old
result.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CODE_PACKAGES", "code_fingerprint", "content_key", "input_key"]

CODE_PACKAGES = ("virtsim.sim", "virtsim.models", "virtsim.experiments")


@cache
def code_fingerprint() -> str:
    """SHA-256 (hex, 16 digits) over the source and profile files of the simulator's packages."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        root = resources.files(package)
        stack = [root]
        files = []
        while stack:
            folder = stack.pop()
            for entry in folder.iterdir():
                if entry.is_dir():
                    if entry.name != "__pycache__":
                        stack.append(entry)
                elif entry.name.endswith((".py", ".toml")):
                    files.append(entry)
        for entry in sorted(files, key=lambda e: str(e)):
            digest.update(f"{package.removeprefix('virtsim.')}/{os.path.relpath(str(entry), str(root))}".encode())
            digest.update(entry.read_bytes())
    return digest.hexdigest()[:16]


def input_key(data: Any) -> str:
    """SHA-256 (hex, 16 digits) of ``data`` as canonical JSON: the identity of an input alone."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_key(data: Any) -> str:
    """The key of a result computed from ``data``: its input key salted with the code fingerprint."""
    return input_key({"code": code_fingerprint(), "input": data})
