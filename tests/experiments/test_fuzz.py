"""Fuzzing the command line in-process: every mutated input ends in a clean error or a valid result.

Hypothesis takes a shipped example file (a scenario, a sweep, a plan, a disk or density spec),
picks one of its keys or tables anywhere in the tree, and breaks it: a wrong type, a non-finite,
negative, zero or huge number, a quantity with a bad unit, unicode, an empty string, the key
removed, renamed or joined by an unknown one; or it flips bytes in the file's text. The CLI's
``main`` then runs on it. What is allowed: exit status 2 with one ``virtsim: error:`` line and no
traceback, or exit status 0 with a sealed result folder. What fails the test: any exception out
of ``main``, a traceback on stderr, another exit status, or a run longer than its alarm (a hang).

To keep the suite fast, the parts of each file the mutation does not touch are shrunk first
(short runs, one replication, few guests and points), and examples per command are bounded:
``VIRTSIM_FUZZ_EXAMPLES=100`` runs a larger corpus on demand, and ``VIRTSIM_FUZZ_LOG=FILE``
appends each case's outcome (command, exit status, first line of stderr) to FILE as JSON lines.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import signal
import tempfile
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tomlgen import to_toml
from virtsim.experiments.cli import main
from virtsim.experiments.figures import FigureLayoutWarning

SCENARIOS = Path(__file__).resolve().parents[2] / "experiments" / "scenarios"
ALARM_S = 60

BAD_VALUES: list[Any] = [
    math.nan, math.inf, -math.inf, -1, 0, -1e-9, 10**18, 1e308, "1e400GB", "-5ms", "20 parsecs", "nan/s",
    "", "\u2603\u00e9\u0000", "x" * 300, True, [], [1, "a"], {}, {"bogus": 1}, "abc",
    "kv-store", "oltp", "fio", "closed",  # valid names in the wrong place (a plan took kv-store, then crashed)
]


def _shrunk_run(data: dict[str, Any]) -> None:
    run = data.setdefault("run", {})
    run.update(duration="0.05s", warmup="0.005s", replications=1)
    if "compare" in data:
        data["compare"]["stacks"] = data["compare"]["stacks"][:2]


def _shrunk_sweep(data: dict[str, Any]) -> None:
    _shrunk_run(data)
    params = data["sweep"]["parameters"]
    for name in params:
        params[name] = params[name][:1]


def _shrunk_disk(data: dict[str, Any]) -> None:
    data["disk"].update(guests=2, virtual="1GiB", base_used="64MiB", growth_writes=300,
                        pattern={"kind": "zipf", "writes": 200, "size": "4KiB"},
                        image_layers=[{"files": 50, "mean_file_size": "20kB"}],
                        resize=[{"after": 50, "size": "512MiB", "shrink": True},
                                {"after": 150, "size": "2GiB", "preallocation": "off"}])


def _shrunk_plan(data: dict[str, Any]) -> None:
    data["slo_samples"] = 100  # a short simulation of each plan's busiest host
    data["stacks"] = data["stacks"][::2]  # a VM and a container on one host type: fewer simulations
    data["host_types"] = data["host_types"][:1]
    for service in data["services"]:
        service["guests"] = min(int(service["guests"]), 5)


DENSITY = {"density": {"host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd",
                                "network": "10gbe"},
                       "stacks": [["docker"]], "workload": {"kind": "web", "rate": "20/s"},
                       "max_guests": 3, "duration": "0.05s", "app_memory": "256MiB"}}

BASES: dict[str, tuple[str, dict[str, Any]]] = {
    "run": ("run", {"file": "cgroup-quota.toml", "shrink": _shrunk_run}),
    "compare": ("run", {"file": "compare-stacks.toml", "shrink": _shrunk_run}),
    "sweep": ("sweep", {"file": "sweep-load.toml", "shrink": _shrunk_sweep}),
    "disk": ("disk", {"file": "disk.toml", "shrink": _shrunk_disk}),
    "plan": ("plan", {"file": "plan.toml", "shrink": _shrunk_plan}),
    "density": ("density", {"data": DENSITY}),
}


def _base(name: str) -> tuple[str, dict[str, Any]]:
    command, how = BASES[name]
    if "data" in how:
        return command, copy.deepcopy(how["data"])
    data = tomllib.loads((SCENARIOS / how["file"]).read_text(encoding="utf-8"))
    how["shrink"](data)
    return command, data


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and list index in the tree, tables and leaves alike."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


def _mutate(data: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> None:
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "set":
        parent[key] = value
    elif how == "delete":
        del parent[key]
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{key}x"] = parent.pop(key)
    elif how == "unknown" and isinstance(parent, dict):
        parent["bogus_key"] = 1


class Hang(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no answer within {ALARM_S} s")


def _run_cli(command: str, text: bytes, what: str = "as shipped") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "input.toml", Path(tmp) / "out"
        path.write_bytes(text)
        argv = [command, str(path), "--out", str(out)]
        if command in ("run", "sweep"):
            argv += ["--quiet", "--workers", "1"]
        err = io.StringIO()
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(ALARM_S)
        try:
            # Mutated inputs (long odd names) may well crowd a figure: that is not what this checks.
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore", FigureLayoutWarning)
                status = main(argv)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        message = err.getvalue()
        if os.environ.get("VIRTSIM_FUZZ_LOG"):
            with open(os.environ["VIRTSIM_FUZZ_LOG"], "a", encoding="utf-8") as log:
                log.write(json.dumps({"command": command, "what": what, "status": status, "stderr": message[:300],
                                      "input": text.decode("utf-8", "replace")[:3000]}) + "\n")
        assert "Traceback" not in message, message
        assert status in (0, 2), (status, message)
        if status == 2:
            assert message.startswith("virtsim: error: "), message
        else:
            assert (out / "manifest.json").is_file(), "exit status 0 without a sealed result folder"


@st.composite
def mutated_files(draw: st.DrawFn, base: str) -> tuple[str, bytes, str]:
    command, data = _base(base)
    path = draw(st.sampled_from(_paths(data)))
    how = draw(st.sampled_from(["set", "set", "set", "delete", "rename", "unknown"]))
    value = draw(st.sampled_from(BAD_VALUES)) if how == "set" else None
    _mutate(data, path, how, value)
    return command, to_toml(data, check=False).encode("utf-8"), f"{base}: {how} {'.'.join(map(str, path))} {value!r}"


@st.composite
def damaged_bytes(draw: st.DrawFn, base: str) -> tuple[str, bytes, str]:
    command, data = _base(base)
    text = bytearray(to_toml(data, check=False).encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text) - 1))
        text[at] = draw(st.sampled_from([0xFF, 0xC3, 0x00, ord("="), ord("["), ord('"'), ord("9")]))
    return command, bytes(text), f"{base}: bytes changed"


EXAMPLES = int(os.environ.get("VIRTSIM_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("base", list(BASES))
@FUZZ
@given(data=st.data())
def test_a_mutated_input_gets_a_clean_error_or_a_valid_result(base: str, data: st.DataObject) -> None:
    _run_cli(*data.draw(mutated_files(base)))


@pytest.mark.parametrize("base", ["run", "sweep", "disk", "plan"])
@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_damaged_bytes_get_a_clean_error_or_a_valid_result(base: str, data: st.DataObject) -> None:
    _run_cli(*data.draw(damaged_bytes(base)))


def test_the_shrunk_bases_are_valid_inputs() -> None:
    """The fuzz would prove little if the unmutated inputs were already refused."""
    for base in BASES:
        command, data = _base(base)
        _run_cli(command, to_toml(data, check=False).encode("utf-8"))
