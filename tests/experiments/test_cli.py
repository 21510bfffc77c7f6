"""The command line: results on disk, and bad input as one line with exit status 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments.cli import main
from tests.tomlgen import to_toml


def _write(tmp_path, small) -> str:
    path = tmp_path / "s.toml"
    path.write_text(to_toml(small))
    return str(path)


def test_run_writes_tidy_runs_summary_and_provenance(tmp_path, small, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", _write(tmp_path, small), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs.columns) == ["variant", "replication", "guest", "metric", "layer", "station", "value", "unit"]
    assert set(runs["replication"]) == {0, 1}
    assert {"web", "batch-1", "batch-2", "host"} == set(runs["guest"])
    summary = pd.read_csv(out / "summary.csv")
    assert {"mean", "ci_low", "ci_high", "n"} <= set(summary.columns)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 3 and prov["scenario"]["name"] == "small" and "numpy" in prov["versions"]
    assert (out / "report.md").exists() and (out / "latency.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "missing.toml", "--out", "x"], "does not exist"),
        (["profiles", "nope"], "no profile named 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, needle, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.startswith("virtsim: error:")


def test_invalid_scenario_file_reports_the_field(tmp_path, small, capsys) -> None:
    small["guests"][0]["stack"] = [{"profile": "kvm", "pin": [99, 100]}]
    assert main(["run", _write(tmp_path, small), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pin: cores [99, 100] do not exist" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing half-done was written


def test_profiles_lists_parameters_with_sources(capsys) -> None:
    assert main(["profiles", "kvm"]) == 0
    out = capsys.readouterr().out
    assert "io_thread" in out and "felter-fio-randread-kvm" in out
