"""Two stacks that differ only by an override are two stacks in every experiment: in each table
with a stack column, in the report, and in the words of every figure (issue 14: density, plan
and report once labelled ``docker`` and ``docker`` with ``cpu_max`` alike). Density's own test
is ``test_density.py::test_stacks_that_differ_only_by_an_override_keep_their_labels_in_files_report_and_plot``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.text
import pandas as pd
import pytest

from tests.tomlgen import to_toml
from virtsim.experiments.cli import main

LIMITED = {"profile": "docker", "cpu_max": "0.5s/1s"}
LABELS = ["docker", "docker{cpu_max=500ms/1s}"]
SCENARIO = {"name": "pair", "run": {"duration": "0.2s", "warmup": "0.02s", "replications": 1, "seed": 3},
            "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"},
            "guests": [{"name": "web", "workload": {"arrivals": {"kind": "open", "rate": "200/s"},
                                                     "demands": [{"kind": "cpu", "cycles": "1M"}]}}],
            "compare": {"stacks": [["docker"], [LIMITED]]}}
PLAN = {"stacks": [["docker"], [LIMITED]],
        "host_types": [{"name": "small", "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"}}],
        "services": [{"name": "api", "guests": 20, "app_memory": "1GiB", "image": "1GiB", "diff": "1GiB",
                      "workload": {"arrivals": {"kind": "open", "rate": "100/s"},
                                   "demands": [{"kind": "cpu", "cycles": "6M"}]}}]}


def _argv(experiment: str, tmp_path: Path, out: Path) -> list[str]:
    """The command line of ``experiment`` run on the pair of stacks into ``out``."""
    if experiment == "overhead":
        return ["overhead", "--out", str(out), "--quiet", "--workers", "1", "--replications", "1",
                "--workloads", "netperf-rr", "--stacks", ",".join(["docker", "docker{cpu_max=500ms/1s}"])]
    path = tmp_path / f"{experiment}.toml"
    if experiment == "plan":
        path.write_text(to_toml(PLAN))
        return ["plan", str(path), "--out", str(out)]
    data = dict(SCENARIO)
    if experiment == "sweep":
        data["sweep"] = {"parameters": {"guests[0].workload.arrivals.rate": ["100/s", "200/s"]}}
    path.write_text(to_toml(data))
    return [experiment, str(path), "--out", str(out), "--quiet", "--workers", "1"]


def _tables(out: Path) -> list[pd.DataFrame]:
    """Every table of a results folder that has rows and a stack column (overhead's attribution
    is empty where no stack adds time over bare metal)."""
    frames = [pd.read_csv(p) for p in out.glob("*.csv")] + [pd.read_parquet(p) for p in out.glob("*.parquet")]
    return [f for f in frames if "stack" in f.columns and len(f)]


@pytest.mark.parametrize("experiment", ["run", "overhead", "plan", "sweep"])
def test_stacks_that_differ_only_by_an_override_stay_apart_in_tables_report_and_figures(
        experiment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from virtsim.experiments import figures

    words: list[str] = []
    check = figures.layout_problems

    def keep_words(fig, *args, **kwargs):  # every text on the figure, then checked as ever
        words.extend(t.get_text() for t in fig.findobj(matplotlib.text.Text))
        return check(fig, *args, **kwargs)

    # save_figure looks layout_problems up as it runs; the plotting modules hold save_figure
    # itself by name (imported by earlier tests), so patching that would miss their figures
    monkeypatch.setattr(figures, "layout_problems", keep_words)
    out = tmp_path / "out"
    assert main(_argv(experiment, tmp_path, out)) == 0
    tables = _tables(out)
    assert tables, "no table with a stack column"
    for table in tables:
        assert set(LABELS) <= set(table["stack"].astype(str)), sorted(set(table["stack"]))
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert all(label in report for label in LABELS)
    assert words and all(any(label in w for w in words) for label in LABELS), sorted(set(words))
