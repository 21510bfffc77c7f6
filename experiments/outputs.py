"""Writing and reading result folders, atomically, with clear errors on corrupt files.

A file is written under a temporary name in the same folder and renamed into place, so a run
that is interrupted never leaves a half-written file that looks like a result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.runner import COLUMNS, RunOutput

__all__ = ["ResultsError", "atomic_write", "read_runs", "write_run_output"]


class ResultsError(ValueError):
    """A results folder or file that cannot be read as what it claims to be."""


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json(path: Path, data: Any) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_run_output(out_dir: Path, output: RunOutput) -> dict[str, Path]:
    """Write ``runs.parquet``, ``summary.csv`` and ``provenance.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "runs": atomic_write(out_dir / "runs.parquet", lambda t: output.runs.to_parquet(t, index=False)),
        "summary": atomic_write(out_dir / "summary.csv", lambda t: output.summary.to_csv(t, index=False)),
        "provenance": write_json(out_dir / "provenance.json", output.provenance),
    }


def read_runs(out_dir: Path) -> pd.DataFrame:
    """The tidy runs table of a results folder, checked to have the expected columns."""
    path = Path(out_dir) / "runs.parquet"
    if not path.exists():
        raise ResultsError(f"{path} does not exist: run `virtsim run SCENARIO --out {out_dir}` first")
    try:
        runs = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise ResultsError(
            f"{path} is not a readable Parquet file ({type(exc).__name__}); rerun the experiment"
        ) from None
    missing = [c for c in COLUMNS if c not in runs.columns]
    if missing:
        raise ResultsError(f"{path} lacks columns {missing}; it was not written by `virtsim run`")
    return runs
