"""The command line: results on disk, and bad input as one line with exit status 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.tomlgen import to_toml
from virtsim.experiments.cli import main


def _write(tmp_path, small) -> str:
    path = tmp_path / "s.toml"
    path.write_text(to_toml(small))
    return str(path)


def test_run_writes_tidy_runs_summary_and_provenance(tmp_path, small, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", _write(tmp_path, small), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs.columns) == ["stack", "replication", "guest", "metric", "layer", "station", "value", "unit"]
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
    assert "pin: CPUs [99, 100] do not exist" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing half-done was written


def test_profiles_lists_parameters_with_sources(capsys) -> None:
    assert main(["profiles", "kvm"]) == 0
    out = capsys.readouterr().out
    assert "io_thread" in out and "felter-fio-randread-kvm" in out


# Found by a corpus of 540 generated bad inputs (each was a traceback, a hang or a silent
# acceptance before): every one now ends in one line naming the problem, exit status 2.
def _scenario_change(small, change) -> dict:
    change(small)
    return small


SCENARIO_CASES = {
    "a guest named host": (lambda s: s["guests"][0].update(name="host"), "may not be named 'host'"),
    "a huge batch": (lambda s: s["guests"][0]["workload"].update(arrivals={"kind": "batch", "count": 10**12}),
                     "count: Input should be less than or equal to 1000000"),
    "a batch after the run": (lambda s: s["guests"][0]["workload"].update(arrivals={"kind": "batch", "count": 5,
                                                                                     "at": "10s"}),
                              "its batch arrives at 10 s, not before run.duration"),
    "a batch inside the warm-up": (lambda s: s["guests"][0]["workload"].update(arrivals={"kind": "batch",
                                                                                          "count": 5}),
                                   "inside run.warmup"),
    "an I/O mix reversed": (lambda s: s["guests"][0]["workload"]["demands"][2].update(mix=[0.9, 0.1]),
                            "must satisfy 0 <= lo <= hi <= 1"),
    "a bad [sweep] on run": (lambda s: s.update(sweep={"bogus": 1}), "sweep.bogus: unknown key"),
    "a rate that brings no request": (lambda s: s["guests"][0]["workload"].update(
        arrivals={"kind": "open", "rate": "1/min"}), "nothing would be measured; raise the rate"),
    # Review 35 F7: overloaded so far that the queue would hold 100,000s of requests: refused
    # before running (20,000 such guests ran for over ten minutes); 400 requests/s of 1M cycles
    # on a 4-vCPU KVM guest is 33% of it, at 100,000/s 8,300%: ~50,000 queued in 0.5 s
    "a queue that only grows": (lambda s: s["guests"][0]["workload"].update(
        arrivals={"kind": "open", "rate": "100000/s"}), "requests would be queued by the end"),
    # Found only by running: 1 s requests in a 0.5 s run reported zero throughput and NaN latency.
    "requests longer than the run": (lambda s: s["guests"][1]["workload"].update(
        demands=[{"kind": "delay", "duration": "1s"}]), "no request that arrived in the measured window"),
}


@pytest.mark.parametrize("case", list(SCENARIO_CASES))
def test_generated_bad_scenarios_are_refused(case, tmp_path, small, capsys) -> None:
    change, needle = SCENARIO_CASES[case]
    path = _write(tmp_path, _scenario_change(small, change))
    assert main(["run", path, "--out", str(tmp_path / "o"), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_inputs_that_are_not_files_or_are_endless_are_refused(tmp_path, small, capsys) -> None:
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # reading it would block forever
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")  # RecursionError in tomllib
    for path, needle in ((fifo, "is not a regular file"), ("/dev/zero", "is not a regular file"),
                         (deep, "nested too deeply")):
        assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err
    nul = tmp_path / "p.csv"
    nul.write_bytes(b"id,source\nx\x00,y\n")
    assert main(["calibrate", "--published", str(nul), "--out", str(tmp_path / "c")]) == 2
    assert "holds a NUL byte" in capsys.readouterr().err


@pytest.mark.parametrize("out, needle", [
    ("/proc/virtsim-out", "cannot write there"),
    ("x" * 300, "cannot write there (File name too long)"),
])
def test_an_out_folder_that_cannot_be_made_is_refused_before_running(out, needle, tmp_path, small, capsys) -> None:
    target = out if out.startswith("/") else str(tmp_path / out)
    assert main(["run", _write(tmp_path, small), "--out", target, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["--workloads", "netperf-rr", "--stacks", "bare-metal"], "name at least one stack besides bare-metal"),
    (["--workloads", "netperf-rr,netperf-rr", "--stacks", "kvm"], "['netperf-rr'] listed more than once"),
    (["--workloads", "netperf-rr", "--stacks", "kvm,kvm"], "['kvm'] listed more than once"),
    (["--stacks", "docker{cpu_max=50ms/100ms/kvm"], "--stacks: 'docker{cpu_max=50ms/100ms/kvm': a brace or "
                                                    "bracket is never closed"),
    (["--stacks", "kvm{vcpu=2}"], "--stacks: 'kvm{vcpu=2}': profile 'kvm' has no parameter 'vcpu'"),
    (["--stacks", "kvm{vcpus=2},kvm{vcpus=2.0}"], "['kvm{vcpus=2}'] listed more than once"),
])
def test_overhead_arguments_are_checked(argv, needle, tmp_path, capsys) -> None:
    assert main(["overhead", "--out", str(tmp_path / "o"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_bare_metal_listed_after_another_stack_is_the_baseline_once(tmp_path) -> None:
    """Review 10 B3: ``--stacks kvm,bare-metal`` was refused as listing bare metal twice."""
    out = tmp_path / "o"
    assert main(["overhead", "--out", str(out), "--quiet", "--workers", "1", "--replications", "1",
                 "--workloads", "netperf-rr", "--stacks", "kvm,bare-metal"]) == 0
    table = pd.read_csv(out / "overhead.csv")
    assert sorted(set(table["stack"])) == ["bare-metal", "kvm"]


def test_an_overhead_stack_with_an_override_runs_under_its_label(tmp_path) -> None:
    """Issue 14: --stacks split at every "/" and ",", those inside an override's braces and a
    list's brackets too, so a stack with cpu_max or a cpuset was refused as "unknown profile
    'docker{cpu_max=50ms'". Read as its label writes it, it runs and is labelled so; the
    folder's inputs are the stacks' entries."""
    out = tmp_path / "o"
    stacks = "docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm,kvm"
    assert main(["overhead", "--out", str(out), "--quiet", "--workers", "1", "--replications", "1",
                 "--workloads", "netperf-rr", "--stacks", stacks]) == 0
    table = pd.read_csv(out / "overhead.csv")
    assert set(table["stack"]) == {"bare-metal", "docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm", "kvm"}
    inputs = json.loads((out / "manifest.json").read_text())["inputs"]
    assert inputs["stacks"] == [[{"profile": "docker", "cpu_max": "50ms/100ms", "cpuset": [0, 1]}, "kvm"], ["kvm"]]


def test_a_sweep_scheduler_that_is_not_an_address_is_refused(tmp_path, small, capsys) -> None:
    small["sweep"] = {"parameters": {"run.seed": [1, 2]}}
    assert main(["sweep", _write(tmp_path, small), "--out", str(tmp_path / "o"), "--quiet",
                 "--scheduler", "not a url"]) == 2
    err = capsys.readouterr().err
    assert "--scheduler not a url: cannot connect" in err and "Traceback" not in err


def test_a_report_reads_only_files_its_manifest_vouches_for_and_never_crashes(tmp_path, small, capsys) -> None:
    import hashlib

    out = tmp_path / "out"
    small["guests"] = small["guests"][:1]
    small["run"]["replications"] = 1
    assert main(["run", _write(tmp_path, small), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # an edited summary whose manifest was edited to match: refused, not a traceback
    (out / "summary.csv").write_text("a,b\n1,2\n")
    manifest["files"]["summary.csv"] = hashlib.sha256((out / "summary.csv").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(out)]) == 2
    assert "its files do not hold what `virtsim run` writes" in capsys.readouterr().err
    # a manifest that lists no files vouches for nothing
    manifest["files"] = {}
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(out)]) == 2
    assert "is not vouched for" in capsys.readouterr().err


def test_help_and_argument_errors_load_no_numerical_library() -> None:
    """`virtsim --help` and a mistyped argument answer at once: the parser loads neither pandas,
    numpy nor pydantic (a command imports what it uses once its arguments are good)."""
    import subprocess
    import sys

    from virtsim.experiments import registry, scenario

    run = next(c for c in registry.COMMANDS if c.name == "run")
    assert scenario.DEFAULT_SCENARIO in run.options[0].settings["help"]  # the help names the real default
    probe = ("import sys; from virtsim.experiments.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('pandas', 'numpy', 'pydantic') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("engine", ["kernel", "des"])
def test_a_run_that_would_fill_memory_with_records_stops_with_the_fix(tmp_path, capsys, monkeypatch, engine) -> None:
    """A closed loop of fast requests over a long run keeps every request's record: past the
    budget (8 GiB; 1 MiB here, to show it) the run stops with an error that says why and what to
    change, exit status 2, instead of being killed by the kernel's OOM killer without a word."""
    import virtsim.sim.engine as des
    import virtsim.sim.kernel as kernel

    monkeypatch.setattr(kernel, "MAX_RECORD_BYTES", 2**20)
    monkeypatch.setattr(des, "MAX_RECORD_BYTES", 2**20)
    path = tmp_path / "fast.toml"
    path.write_text(to_toml({"name": "fast", "run": {"duration": "10s", "warmup": "0s", "replications": 1,
                                                     "engine": engine},
                             "guests": [{"name": "g", "stack": ["bare-metal"], "workload": {
                                 "arrivals": {"kind": "closed", "clients": 4},
                                 "demands": [{"kind": "cpu", "cycles": "10k"}]}}]}))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "every request's record is kept" in err and "shorten run.duration" in err
    assert not (tmp_path / "out" / "runs.parquet").exists()


def test_every_registered_experiment_declares_itself_and_reports_its_folders() -> None:
    """Each command in the registry is one module's EXPERIMENT: its name, a question, a command
    and a report of the files it reads; `report` finds it by the manifest's name alone."""
    from virtsim.experiments.registry import COMMANDS, experiment

    assert [c.name for c in COMMANDS] == ["run", "sweep", "overhead", "calibrate", "density", "plan", "disk"]
    for command in COMMANDS:
        declared = command.load()
        assert declared.name == command.name and declared.question.endswith("?") and declared.reads
        assert set(declared.reads) <= set(declared.tables) and not set(declared.tables) & set(declared.figures)
        assert callable(declared.command) and callable(declared.report)
    assert experiment("nonsense") is None


def _one_guest(tmp_path, arrivals: dict, demands: list, warmup: str = "0.05s", duration: str = "0.3s") -> str:
    path = tmp_path / "one.toml"
    path.write_text(to_toml({"name": "one", "run": {"duration": duration, "warmup": warmup, "replications": 1,
                                                    "seed": 3},
                             "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd"},
                             "guests": [{"name": "web", "stack": ["bare-metal"],
                                         "workload": {"arrivals": arrivals, "demands": demands}}]}))
    return str(path)


def test_an_open_loop_to_which_nothing_came_is_refused_not_reported_as_zero(tmp_path, capsys) -> None:
    """Review 13: 4/s for a 0.25 s window expects one request; with this seed none comes, and the
    run reported 0 req/s and no latency with exit status 0."""
    path = _one_guest(tmp_path, {"kind": "open", "rate": "4/s"}, [{"kind": "cpu", "cycles": "1M"}])
    assert main(["run", path, "--out", str(tmp_path / "o"), "--quiet", "--workers", "1"]) == 2
    assert "none arrived" in capsys.readouterr().err


def test_an_overloaded_open_loop_is_reported_with_its_warning_not_refused(tmp_path, capsys) -> None:
    """Review 13: at ten times what its lock serves, no request that arrives after the warm-up
    finishes within the run; a longer run would only queue more, so the run is reported (its
    report warns of the overload) instead of refused with advice that cannot help."""
    locked = [{"kind": "lock", "name": "m", "action": "acquire"}, {"kind": "cpu", "cycles": "3M"},
              {"kind": "lock", "name": "m", "action": "release"}]
    path = _one_guest(tmp_path, {"kind": "open", "rate": "10000/s"}, locked, warmup="0.25s")
    assert main(["run", path, "--out", str(tmp_path / "o"), "--quiet", "--workers", "1"]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "overloaded" in report
    # review 26: and on the terminal, where a user who reads no report looks
    assert "virtsim: warning: bare-metal is overloaded: lock:web:m is offered 1000%" in capsys.readouterr().err


def test_stacks_that_differ_only_by_an_override_keep_their_labels_in_every_file(tmp_path, small, capsys) -> None:
    """Issue 14: one canonical label per stack, overrides included, in runs.parquet, summary.csv,
    provenance.json and the report; the same override in another spelling is the same stack."""
    small["run"] = {"duration": "0.2s", "warmup": "0.02s", "replications": 1, "seed": 3}
    small["guests"] = small["guests"][:1]
    limited = {"profile": "docker", "cpu_max": "0.05s/0.1s"}
    small["compare"] = {"stacks": [["docker"], [limited]]}
    out = tmp_path / "out"
    assert main(["run", _write(tmp_path, small), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    labels = ["docker", "docker{cpu_max=50ms/100ms}"]
    assert list(dict.fromkeys(pd.read_parquet(out / "runs.parquet")["stack"])) == labels
    assert list(dict.fromkeys(pd.read_csv(out / "summary.csv")["stack"])) == labels
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["scenario"]["compare"]["stacks"] == [["docker"], [{"profile": "docker", "cpu_max": "50ms/100ms"}]]
    report = (out / "report.md").read_text()
    assert all(f"| {label} " in report for label in labels)
    small["compare"] = {"stacks": [[{"profile": "docker", "cpu_max": "50000 100000"}], [limited]]}
    assert main(["run", _write(tmp_path, small), "--out", str(tmp_path / "again"), "--quiet"]) == 2
    assert "stacks ['docker{cpu_max=50ms/100ms}'] are listed more than once" in capsys.readouterr().err


def test_a_guest_whose_requests_outlast_the_run_is_refused_though_another_guest_is_overloaded(tmp_path,
                                                                                              capsys) -> None:
    """Review 35 F3: a guest offered 2.6% of the CPU whose 2 s requests cannot finish in a 1 s
    run passed as 0 requests/s because another guest of the stack (its cpu.max offered 100%)
    was overloaded; only a guest that loads the overloaded resource passes so."""
    scenario = {
        "name": "ov", "run": {"duration": "1s", "warmup": "0.1s", "replications": 1, "engine": "kernel"},
        "host": {"cpu": "small-4c", "memory": "ddr4-small", "storage": "nvme-ssd", "network": "10gbe"},
        "guests": [
            {"name": "busy", "stack": [{"profile": "docker", "cpu_max": "10ms/100ms"}],
             "workload": {"arrivals": {"kind": "open", "rate": "100/s"}, "demands": [{"kind": "cpu", "cycles": "3M"}]}},
            {"name": "slow", "stack": ["docker"],
             "workload": {"arrivals": {"kind": "open", "rate": "100/s"},
                          "demands": [{"kind": "cpu", "cycles": "100k"}, {"kind": "delay", "duration": "2s"}]}},
        ],
    }
    assert main(["run", _write(tmp_path, scenario), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "guest 'slow' (" in err and "no request that arrived in the measured window" in err
    del scenario["guests"][1]  # the overloaded guest alone still passes, with the overload warned about
    assert main(["run", _write(tmp_path, scenario), "--out", str(tmp_path / "o2"), "--quiet"]) == 0


def test_a_stable_run_is_not_refused_for_costs_paid_only_when_a_thread_idles() -> None:
    """Review 36 F4: a 1-vCPU KVM guest at 88,000 requests/s is stable (a 10 s run serves them
    all, 15 unfinished), but its offered load counts the wake-ups paid only when the vCPU was
    idle as always paid (110%), and the backlog check refused it. It judges the load certainly
    offered now."""
    from virtsim.experiments.runner import check_backlog
    from virtsim.experiments.scenario import parse_scenario

    scenario = parse_scenario({
        "name": "vcoff", "run": {"duration": "3s", "warmup": "0.1s", "replications": 1, "seed": 1},
        "host": {"cpu": "xeon-e5-2665-2s", "memory": "ddr3-2s", "storage": "nvme-ssd", "network": "10gbe"},
        "guests": [{"name": "g", "stack": [{"profile": "kvm", "vcpus": 1}], "workload": {
            "arrivals": {"kind": "open", "rate": "88000/s"},
            "demands": [{"kind": "net_in", "size": "300B"}, {"kind": "wake"}, {"kind": "cpu", "cycles": "20k"},
                        {"kind": "wake"}, {"kind": "net_out", "size": "300B"}]}}]})
    check_backlog(scenario)  # no refusal


def test_python_dash_m_virtsim_is_the_same_command_line() -> None:
    """``python -m virtsim`` runs the ``virtsim`` command line: the same help, the same exit
    status for a bad argument."""
    import subprocess
    import sys

    listing = subprocess.run([sys.executable, "-m", "virtsim", "--help"], capture_output=True, text=True)
    assert listing.returncode == 0 and "overhead" in listing.stdout and "density" in listing.stdout
    bad = subprocess.run([sys.executable, "-m", "virtsim", "overhead", "--replications", "0", "--out", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--replications" in bad.stderr


def test_a_folder_is_published_only_with_the_files_its_experiment_declares(tmp_path) -> None:
    """A writer that forgets a declared table, or writes a file no one declared, is a fault in
    virtsim: the folder is not published (nothing half-declared is ever read as a result)."""
    from virtsim.experiments.outputs import ResultFolder

    def publish(names: list[str]) -> None:
        folder = ResultFolder(tmp_path / "d", "density", {"x": 1}, force=True)
        with folder.publishing() as staging:
            for name in names:
                (staging / name).write_text("x")

    with pytest.raises(RuntimeError, match=r"missing \['density_summary.csv'\]"):
        publish(["density.csv", "density.png"])
    with pytest.raises(RuntimeError, match=r"undeclared \['notes.txt'\]"):
        publish(["density.csv", "density_summary.csv", "notes.txt"])
    assert not (tmp_path / "d").exists()
    publish(["density.csv", "density_summary.csv"])  # a figure may be left out
    assert (tmp_path / "d" / "manifest.json").exists()
