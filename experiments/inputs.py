"""User input files: read, validated, and every problem one :class:`InputError` for the user.

A scenario, a density, plan or disk spec, a published-results CSV: each is read through
:func:`read_input_text` (refusing what is not a readable, reasonably sized UTF-8 file), TOML
through :func:`read_toml`, and validated into its model by :func:`load_toml_model`, whose errors
name each field by its path in the file (``guests[0].stack[1]``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from virtsim.models.schema import StrictModel

__all__ = ["MAX_INPUT_BYTES", "InputError", "format_validation_error", "load_toml_model", "read_input_text",
           "read_toml"]

M = TypeVar("M", bound=StrictModel)
MAX_INPUT_BYTES = 16 * 2**20
"""The largest input file read (bytes): no file virtsim reads or writes as input comes near it."""


class InputError(ValueError):
    """An input (a file, a command-line argument, a value given to the API) that cannot be read or
    is invalid; the message is meant for the user and names the problem and the fix."""


def format_validation_error(exc: ValidationError, sep: str = "\n") -> str:
    """One line per problem: ``field.path: message``, with list indices as ``[i]``."""
    lines = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling, or remove it)"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {msg}" if path else msg)
    return sep.join(lines)


def read_input_text(path: Path, what: str) -> str:
    """The UTF-8 text of an input file, or a :class:`InputError` that names the problem: missing,
    a folder, not a regular file (a FIFO or a device could block or never end), too large, not
    UTF-8, unreadable, or a path that cannot be one (a NUL byte)."""
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise InputError(f"{what} {path} is not a regular file; name a file")
        if path.is_file() and path.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(f"{what} {path} is larger than {MAX_INPUT_BYTES // 2**20} MiB; an input file "
                                "this big is not one virtsim wrote or reads")
        return path.read_text(encoding="utf-8")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder; name a file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except ValueError as exc:  # a NUL byte in the path
        raise InputError(f"{what} path {str(path)!r} is not a valid path ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file's content, unvalidated; a missing or unreadable file or bad TOML (with its
    line) is a :class:`InputError`."""
    path = Path(path)
    try:
        return tomllib.loads(read_input_text(path, what))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: tables or arrays nested too deeply to read") from None


def load_toml_model(path: str | Path, model: type[M], what: str, table: str | None = None) -> M:
    """Read a TOML file (or one ``[table]`` of it) and validate it as ``model``.

    Every failure is a :class:`InputError` meant for the user: a missing file, bad TOML (with
    its line), or one line per invalid field, named by its path in the file.
    """
    path = Path(path)
    data = read_toml(path, what)
    if table is not None:
        # A misspelt table ([densty]) must not leave the defaults to run in its place.
        others = sorted(set(data) - {table})
        if others:
            raise InputError(f"{path}: unknown top-level key or table {others[0]!r}; "
                                f"this {what} holds one [{table}] table")
        if table not in data:
            raise InputError(f"{path} has no [{table}] table; put the settings under [{table}]")
        data = data[table]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        prefix = f"{table}." if table else ""
        problems = "\n".join(prefix + line for line in format_validation_error(exc).splitlines())
        raise InputError(f"{path} is invalid:\n{problems}") from None
