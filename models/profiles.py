"""Profiles: named parameter sets kept as TOML data, each number with its source.

A profile file holds one or more top-level tables, one per profile:

    [kvm]
    kind = "type1"
    description = "..."
    [kvm.params]
    notify_latency = "3.3us"
    [kvm.sources]
    notify_latency = "published.csv felter-tcprr-kvm, felter-tcprr-native (delay: ...)"

Every parameter names the rows of ``shared/calibration/published.csv`` it was fitted to, or says
``assumption: ...``. A user overrides parameters from a scenario file; overrides are validated by
the same model as the profile.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["FITTED_MARKERS", "Profile", "ProfileError", "cited_rows", "get_profile", "load_profiles"]

_CITATION = re.compile(r"(?:published|found)\.csv\s+([A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*)")
FITTED_MARKERS = ("fitted", "refined by", "remainder")
"""Words in a source note that say the number was fitted (it must then cite the rows it was fitted to)."""


def cited_rows(source: str) -> list[str]:
    """Row ids a source note cites: ``published.csv ID, ID (comment)`` gives [ID, ID]; every
    ``published.csv`` in the note counts, and every ``found.csv`` (the rows the project found
    itself, beside the team's file: ``experiments/calibration_data/found.csv``)."""
    return [part.strip() for match in _CITATION.finditer(source) for part in match.group(1).split(",")]


class ProfileError(ValueError):
    """A profile that does not exist or whose file is malformed."""


@dataclass(frozen=True)
class Profile:
    """One named parameter set (parameters in the units their model reads)."""

    name: str
    kind: str
    description: str
    params: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def unsourced(self) -> list[str]:
        """Parameters that name no source (should be none)."""
        return [k for k in self.params if not self.sources.get(k, "").strip()]

    def fitted_without_rows(self) -> list[str]:
        """Parameters whose note says they were fitted but cites no published.csv row (should be none)."""
        return [k for k, note in self.sources.items()
                if any(m in note.lower() for m in FITTED_MARKERS) and not cited_rows(note)]


@cache
def load_profiles(package: str) -> dict[str, Profile]:
    """All profiles in ``package``'s ``profiles/`` folder, by name."""
    profiles: dict[str, Profile] = {}
    folder = resources.files(package) / "profiles"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{package} profile file {entry.name}: {exc}") from exc
        for name, table in data.items():
            if name in profiles:
                raise ProfileError(f"profile {name!r} is defined twice ({entry.name})")
            profiles[name] = Profile(
                name=name,
                kind=str(table.get("kind", "")),
                description=str(table.get("description", "")),
                params=dict(table.get("params", {})),
                sources=dict(table.get("sources", {})),
            )
    return profiles


def get_profile(package: str, name: str, kind: str | None = None) -> Profile:
    """The profile ``name``; a clear error listing the known ones if it does not exist."""
    profiles = load_profiles(package)
    candidates = {n: p for n, p in profiles.items() if kind is None or p.kind == kind}
    if name not in candidates:
        what = f"{kind} profile" if kind else "profile"
        raise ProfileError(f"unknown {what} {name!r}; known: {', '.join(sorted(candidates))}")
    return candidates[name]
