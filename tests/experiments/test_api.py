"""The Python API: `import virtsim` runs every experiment the command line runs, with the same numbers."""

from __future__ import annotations

import pandas as pd
import pytest

import virtsim
from tests.tomlgen import to_toml
from virtsim.experiments.cli import main


def test_a_scenario_built_in_python_runs_and_gives_the_command_lines_numbers(tmp_path, small) -> None:
    """The same scenario, as a dict through the API and as a file through `virtsim run`: equal tables."""
    result = virtsim.run(small)
    assert list(result.runs.columns) == ["stack", "replication", "guest", "metric", "layer", "station", "value",
                                         "unit"]
    path = tmp_path / "s.toml"
    path.write_text(to_toml(small))
    assert main(["run", str(path), "--out", str(tmp_path / "cli"), "--quiet", "--workers", "1"]) == 0
    pd.testing.assert_frame_equal(result.runs, pd.read_parquet(tmp_path / "cli" / "runs.parquet"))
    # Overrides act as the command line's --seed does: another seed, other numbers.
    reseeded = virtsim.run(small, seed=small["run"]["seed"] + 1)
    assert not reseeded.runs["value"].equals(result.runs["value"])


def test_a_result_saves_the_folder_the_command_writes_and_reports_it(tmp_path, small) -> None:
    result = virtsim.run(virtsim.scenario(small))
    html = result.report(tmp_path / "r")
    assert html == tmp_path / "r" / "report.html" and html.stat().st_size > 0
    assert (tmp_path / "r" / "manifest.json").exists() and result.out == tmp_path / "r"
    # Saved under its inputs: a second save of the same result to the same folder is a no-op,
    # and another experiment's result is refused there, as the command line refuses it.
    assert result.save(tmp_path / "r") == tmp_path / "r"
    other = virtsim.disk({"guests": 2, "virtual": "1GiB", "base_used": "256MiB", "formats": ["qcow2"],
                          "drivers": ["overlay2"], "growth_writes": 1000,
                          "pattern": {"kind": "random", "writes": 100, "size": "4KiB"}})
    with pytest.raises(virtsim.ResultsError, match="holds"):
        other.save(tmp_path / "r")


def test_bad_input_names_the_field(small) -> None:
    bad = {**small, "run": {**small["run"], "duration": "-1s"}}
    with pytest.raises(virtsim.ScenarioError, match=r"run\.duration"):
        virtsim.run(bad)
    # a density spec is not a scenario: the same family of error, its own kind
    with pytest.raises(virtsim.InputError, match="expected a TOML file's path, a dict") as caught:
        virtsim.density(42)
    assert not isinstance(caught.value, virtsim.ScenarioError)


def test_a_table_that_is_not_there_says_which_are() -> None:
    result = virtsim.disk({"guests": 2, "virtual": "1GiB", "base_used": "256MiB", "formats": ["qcow2"],
                           "drivers": ["overlay2"], "growth_writes": 1000,
                           "pattern": {"kind": "random", "writes": 100, "size": "4KiB"}})
    assert isinstance(result.disk, pd.DataFrame) and len(result.disk)
    with pytest.raises(AttributeError, match=r"has no table 'runs'; it has \['disk'\]"):
        _ = result.runs
    assert "disk result" in repr(result)


def test_odd_inputs_get_the_command_lines_errors_not_tracebacks_or_hangs(tmp_path) -> None:
    import os

    with pytest.raises(virtsim.InputError, match=r"\[density\] must be a table"):
        virtsim.density({"density": 5})
    with pytest.raises(virtsim.ScenarioError, match="expected a scenario file's path or a dict"):
        virtsim.sweep(5, tmp_path / "s")  # type: ignore[arg-type]
    fifo = tmp_path / "published.csv"
    os.mkfifo(fifo)
    with pytest.raises(virtsim.InputError, match="not a regular file"):  # the command refuses it too
        virtsim.calibrate(fifo)
    # One stack and one workload may be named alone: "kvm", not the letters k, v and m.
    result = virtsim.overhead("kvm", "netperf-rr", replications=1)
    assert set(result.overhead["stack"]) == {"bare-metal", "kvm"}


def test_overhead_stacks_take_layers_written_as_tables() -> None:
    """A layer as every scenario writes one, {profile = "kvm", vcpus = 2}: accepted, and a bad one
    is a ScenarioError naming it (it was a TypeError with a traceback)."""
    from virtsim.experiments.api import overhead_stacks
    from virtsim.experiments.scenario import ScenarioError

    assert [s.label for s in overhead_stacks([[{"profile": "kvm", "vcpus": 2}]]) or []] == ["kvm{vcpus=2}"]
    with pytest.raises(ScenarioError, match=r"--stacks: profile 'kvm': vcpus"):
        overhead_stacks([[{"profile": "kvm", "vcpus": -1}]])
    with pytest.raises(ScenarioError, match=r"--stacks: 'docker\{cpu_max=50ms/100ms': a brace or bracket is never"):
        virtsim.overhead("docker{cpu_max=50ms/100ms", "netperf-rr")


def test_an_overhead_stack_written_as_text_keeps_its_override_and_records_its_entries(tmp_path) -> None:
    """Issue 14: "docker{cpu_max=50ms/100ms}/kvm" was split at every "/", the one inside the
    braces too ("unknown profile 'docker{cpu_max=50ms'"). Read as its label writes it, the same
    stack as a Stack or as its layers; the folder's inputs hold each stack's entries, as JSON."""
    import json

    from virtsim.experiments.api import overhead_inputs, overhead_stacks
    from virtsim.experiments.scenario import stack_from_text

    text = "docker{cpu_max=50ms/100ms}/kvm"
    result = virtsim.overhead([text, ["docker"]], "netperf-rr", replications=1)
    assert set(result.overhead["stack"]) == {"bare-metal", text, "docker"}
    entries = [[{"profile": "docker", "cpu_max": "50ms/100ms"}, "kvm"], ["docker"]]
    assert result.inputs["stacks"] == entries
    manifest = json.loads((result.save(tmp_path / "o") / "manifest.json").read_text())
    assert manifest["inputs"]["stacks"] == entries
    # the same stacks given as Stacks key the same folder
    assert overhead_inputs(overhead_stacks([stack_from_text(text), stack_from_text("docker")]), ["netperf-rr"], 1,
                           1) == result.inputs


def test_a_folders_manifest_records_the_inputs_its_results_answer(tmp_path) -> None:
    """Issue 14: the inputs themselves, not only their key: the disk spec as validated (sizes in
    bytes), and the key is the key of exactly those inputs."""
    import json

    from virtsim.experiments.identity import input_key

    spec = {"guests": 2, "virtual": "1GiB", "base_used": "256MiB", "formats": ["qcow2"], "drivers": ["overlay2"],
            "growth_writes": 1000, "pattern": {"kind": "random", "writes": 100, "size": "4KiB"}}
    virtsim.disk(spec).save(tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["inputs"]["virtual"] == 2**30 and manifest["inputs"]["guests"] == 2
    assert manifest["inputs_key"] == input_key({"experiment": "disk", "inputs": manifest["inputs"]})
