"""Writing and reading result folders as one unit, with clear errors on corrupt files.

An experiment's folder is written whole: its files go into a fresh staging folder beside the
destination, a manifest (experiment, the hash of its inputs, the code's fingerprint, versions,
the engine that ran, and each file's SHA-256) is written last, and the staging folder then
replaces the destination. A run that is interrupted leaves the old folder as it was; a folder
never mixes files of two runs. Readers verify the manifest and refuse a folder that does not
match it, naming the file. A single file is written under a temporary name and renamed into
place, so it is never seen half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["MANIFEST", "RENAMED_COLUMNS", "ResultFolder", "ResultsError", "atomic_write", "current_columns",
           "read_manifest", "read_runs", "write_json"]

MANIFEST = "manifest.json"


class ResultsError(ValueError):
    """A results folder or file that cannot be read as what it claims to be."""


def _is_write_debris(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an :func:`atomic_write` that a kill cut short
    (``.NAME.XXXXXXXX.tmp``, a regular file): the random-kill sweep test left one as the only
    file of a folder, which the next run then refused as not a virtsim result."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file() and not path.is_symlink()


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
    """Write ``data`` as indented JSON with sorted keys to ``path``, atomically; returns ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


RENAMED_COLUMNS = {"variant": "stack"}
"""Columns earlier versions wrote under another name (runs, summaries and sweep points before
the compared stack's column was named ``stack`` everywhere), read under their current name."""


def current_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the columns of :data:`RENAMED_COLUMNS` under their current names."""
    old = {a: b for a, b in RENAMED_COLUMNS.items() if a in table.columns and b not in table.columns}
    return table.rename(columns=old) if old else table


def read_runs(out_dir: Path) -> pd.DataFrame:
    """The tidy runs table of a results folder, checked to have the expected columns."""
    path = Path(out_dir) / "runs.parquet"
    if not path.exists():
        raise ResultsError(f"{path} does not exist: run `virtsim run SCENARIO --out {out_dir}` first")
    try:
        runs = current_columns(pd.read_parquet(path))
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise ResultsError(
            f"{path} is not a readable Parquet file ({type(exc).__name__}); rerun the experiment"
        ) from None
    from virtsim.experiments.runner import COLUMNS  # here: the runner loads the engines (numba)

    missing = [c for c in COLUMNS if c not in runs.columns]
    if missing:
        raise ResultsError(f"{path} lacks columns {missing}; it was not written by `virtsim run`")
    return runs


def _sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    """The installed versions of virtsim and the packages its numbers depend on."""
    out = {}
    for package in ("virtsim", "simpy", "numpy", "pandas", "pydantic", "scipy", "numba"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _check_declared(experiment: str, files: Iterable[str]) -> None:
    """Raise ``RuntimeError`` (a fault in virtsim, not in the input) unless a folder of a
    registered experiment holds exactly the files its ``EXPERIMENT`` declares: every table, and
    no file but its tables and figures."""
    from virtsim.experiments.registry import experiment as registered

    declared = registered(experiment)
    if declared is None:  # a folder of no registered experiment (a test's, a tool's own)
        return
    names = set(files)
    missing = [name for name in declared.tables if name not in names]
    unknown = sorted(names - set(declared.tables) - set(declared.figures))
    if missing or unknown:
        raise RuntimeError(f"`virtsim {experiment}` wrote a folder other than it declares (missing {missing}, "
                           f"undeclared {unknown}): a fault in virtsim; please report it")


class ResultFolder:
    """An experiment's output folder, checked before anything runs and published as one unit.

    ``ResultFolder(out, "run", inputs)`` refuses at once an ``out`` that is a file, that cannot be
    written, or that holds results of another experiment or of other inputs (unless ``force``,
    which replaces it). :meth:`publishing` yields a staging folder to write into and, when the
    block ends without an error, writes the manifest and swaps the staging folder into place.
    """

    def __init__(self, out: Path, experiment: str, inputs: Any, force: bool = False,
                 resumable: str | None = None) -> None:
        from virtsim.experiments.identity import code_fingerprint, input_key

        self.out = Path(out)
        self.experiment = experiment
        self.inputs = inputs  # recorded in the manifest: what the results answer, not only its key
        self.inputs_key = input_key({"experiment": experiment, "inputs": inputs})
        self.code = code_fingerprint()
        # A resumable experiment (a sweep) keys its own parts; an unfinished folder of it holds
        # ``resumable`` (its progress file) and no manifest yet, and other inputs may reuse it.
        self.resumable = resumable
        if force and self.out.is_dir() and resumable is not None:
            shutil.rmtree(self.out)
        self._check(force)

    def _check(self, force: bool) -> None:
        """:meth:`_check_folder`, with an operating-system error turned into a :class:`ResultsError`."""
        try:
            self._check_folder(force)
        except OSError as exc:  # a name too long, a path through a file, /proc ...
            raise ResultsError(f"--out {self.out}: cannot write there ({exc.strerror or exc}); choose another "
                               "folder") from None

    def _check_writable(self) -> None:
        """Raise :class:`ResultsError` unless ``out`` is (or can become) a folder this process
        can write to, tried for real before anything runs; clear the debris of atomic writes a
        kill cut short (never a result)."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise ResultsError(f"--out {out} is a file; name a folder")
        parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ResultsError(f"--out {out}: {parent} is not writable; choose a folder you can write to")
        # a real try, before anything runs: /proc, a name too long, a full or read-only disk
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent)).rmdir()
        if out.is_dir():
            for debris in out.iterdir():
                if _is_write_debris(debris):
                    debris.unlink(missing_ok=True)

    def _check_folder(self, force: bool) -> None:
        """Raise :class:`ResultsError` unless ``out`` can be written and holds nothing this run may not replace."""
        out = self.out
        self._check_writable()
        if not out.exists() or force or not any(out.iterdir()):
            return
        if self.resumable is not None and (out / self.resumable).exists() and not (out / MANIFEST).exists():
            return  # an unfinished run of the same resumable experiment
        try:
            manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            held = (str(manifest["experiment"]), str(manifest["inputs_key"]))
        except (OSError, ValueError, KeyError, TypeError):
            shown = sorted(p.name for p in out.iterdir())
            listed = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
            raise ResultsError(f"--out {out} holds files that are not a virtsim result ({listed}); choose an empty "
                               "or new folder (--force would delete those files)") from None
        if held[0] != self.experiment:
            raise ResultsError(f"--out {out} holds results of `virtsim {held[0]}`; choose another folder, or pass "
                               "--force (force=True from Python) to replace them")
        if held[1] != self.inputs_key and self.resumable is None:
            raise ResultsError(f"--out {out} holds `virtsim {held[0]}` results of other inputs; choose another "
                               "folder, or pass --force (force=True from Python) to replace them")

    @contextmanager
    def publishing(self, engine: Any = None) -> Iterator[Path]:
        """A staging folder to write every file into; published with its manifest when the block ends."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent))
        try:
            yield staging
            self._write_manifest(staging, engine)
            self._swap(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def seal(self, names: list[str], engine: Any = None) -> Path:
        """Publish a resumable experiment in place: a manifest over the files ``names`` in ``out``."""
        self._write_manifest(self.out, engine, names)
        return self.out / MANIFEST

    def unseal(self) -> None:
        """Before a resumable experiment writes again: its old manifest no longer holds."""
        (self.out / MANIFEST).unlink(missing_ok=True)

    def _write_manifest(self, folder: Path, engine: Any, names: list[str] | None = None) -> None:
        """Write ``folder``'s manifest: experiment, its inputs and their key, code, engine, versions
        and each file's SHA-256."""
        paths = [folder / n for n in names] if names is not None else sorted(folder.rglob("*"))
        files = {str(p.relative_to(folder)): _sha256(p) for p in paths if p.is_file()}
        _check_declared(self.experiment, files)
        manifest = {"experiment": self.experiment, "inputs": self.inputs, "inputs_key": self.inputs_key,
                    "code": self.code,
                    "engine": engine, "versions": _versions(),
                    "created_utc": datetime.now(UTC).isoformat(timespec="seconds"), "files": files}
        write_json(folder / MANIFEST, manifest)

    def _swap(self, staging: Path) -> None:
        """Move ``staging`` into place as ``out`` (the old folder, if any, is moved aside first, then removed)."""
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700; results are ordinary folders
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / "x")
        os.replace(staging, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a published result folder, after checking every file it lists.

    Raises :class:`ResultsError` naming the first file that is missing or whose content is not
    the content that was published (a stale or damaged result is never read).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"{folder} is not a folder of results")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = dict(manifest["files"])
        str(manifest["experiment"])
    except FileNotFoundError:
        raise ResultsError(f"{folder} has no {MANIFEST}: it was not written (or not finished) by virtsim; "
                           "rerun the experiment") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ResultsError(f"{folder / MANIFEST} is damaged; rerun the experiment") from None
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            raise ResultsError(f"{path} is missing from the results it belongs to; rerun the experiment")
        if _sha256(path) != digest:
            raise ResultsError(f"{path} is not the file its experiment wrote (changed or damaged since); "
                               "rerun the experiment")
    return manifest
