"""Docstring coverage of the public API (``sim``, ``models``, ``experiments``) stays at the project's bar.

The settings are pyproject.toml's ``[tool.interrogate]``, so this test and a bare ``interrogate``
run at the root measure the same thing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from interrogate import coverage  # a dev extra (pip install -e '.[dev]'): missing, the test fails
from interrogate.config import InterrogateConfig

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "models", "experiments")


def _config() -> InterrogateConfig:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["interrogate"]
    options = {key.replace("-", "_"): value for key, value in table.items() if key != "exclude"}
    return InterrogateConfig(**options)


def test_public_api_is_documented() -> None:
    config = _config()
    assert config.ignore_semiprivate and config.ignore_private and config.fail_under >= 90
    results = coverage.InterrogateCoverage(paths=[str(ROOT / p) for p in PACKAGES], conf=config).get_coverage()
    missed = [f"{Path(f.filename).relative_to(ROOT)}:{n.lineno} {n.name}"
              for f in results.file_results for n in f.nodes if not n.covered]
    assert results.perc_covered >= config.fail_under, (
        f"docstring coverage {results.perc_covered:.1f}% is below {config.fail_under}%; undocumented:\n"
        + "\n".join(missed))
