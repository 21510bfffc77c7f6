"""Sweeps: clear errors before anything runs, same numbers everywhere, resume after SIGKILL."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from tests.tomlgen import to_toml
from virtsim.experiments.cli import main
from virtsim.experiments.scenario import ScenarioError
from virtsim.experiments.sweep import expand_sweep, parse_path, run_sweep

TINY = {
    "name": "tiny",
    "run": {"duration": "0.2s", "warmup": "0.02s", "replications": 1, "seed": 1},
    "host": {"cpu": "small-4c", "memory": "ddr4-small"},
    "guests": [{
        "name": "svc",
        "stack": ["docker"],
        "workload": {"arrivals": {"kind": "open", "rate": "200/s"},
                     "demands": [{"kind": "cpu", "cycles": "3M", "dist": "exp"}]},
    }],
}


def tiny(**sweep) -> dict:
    data = copy.deepcopy(TINY)
    data["sweep"] = sweep
    return data


def test_paths_are_parsed_with_indices() -> None:
    assert parse_path("guests[0].workload.arrivals.rate") == ["guests", 0, "workload", "arrivals", "rate"]
    with pytest.raises(ScenarioError, match="is not a path"):
        parse_path("guests[x].name")


def test_a_grid_expands_to_every_combination() -> None:
    points = expand_sweep(tiny(parameters={"run.seed": [1, 2, 3], "guests[0].stack": [["docker"], ["kvm"]]}))
    assert len(points) == 6
    assert points[4].scenario.run.seed == 3 and points[4].scenario.guests[0].stack.label == "docker"
    assert len({p.key for p in points}) == 6


@pytest.mark.parametrize("sweep, needle", [
    ({"parameters": {"guests[0].workload.arival.rate": [1]}}, "'arival' is not a key of guests[0].workload"),
    ({"parameters": {"guests[3].name": ["x"]}}, "has no item [3]"),
    ({"parameters": {}}, "sweep.parameters is empty"),
    ({"parameters": {"run.seed": []}}, "'run.seed' has an empty list"),
    ({"mode": "zip", "parameters": {"run.seed": [1, 2], "run.replications": [1]}}, "lists of one length"),
    ({"parameters": {"run.duration": ["1s", "ten seconds"]}}, "sweep point 1 (run.duration = 'ten seconds')"),
    ({"mode": "spiral", "parameters": {"run.seed": [1]}}, "sweep.mode: Input should be 'grid' or 'zip'"),
])
def test_bad_sweeps_are_refused_before_anything_runs(sweep, needle, tmp_path, capsys) -> None:
    path = tmp_path / "s.toml"
    path.write_text(to_toml(tiny(**sweep)))
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_same_seed_same_sweep_serially_on_a_pool_and_on_dask(tmp_path) -> None:
    from distributed import LocalCluster

    points = expand_sweep(tiny(parameters={"run.seed": [1, 2], "guests[0].workload.arrivals.rate": ["100/s", "300/s"]}))
    serial = pd.read_parquet(run_sweep(points, tmp_path / "serial", workers=1, progress=False))
    pool = pd.read_parquet(run_sweep(points, tmp_path / "pool", workers=2, progress=False))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = pd.read_parquet(run_sweep(points, tmp_path / "dask", scheduler=cluster.scheduler_address,
                                         progress=False))
    pd.testing.assert_frame_equal(serial, pool, check_exact=True)
    pd.testing.assert_frame_equal(serial, dask, check_exact=True)
    assert sorted(serial["point"].unique()) == [0, 1, 2, 3]


def test_the_shipped_sweep_expands() -> None:
    path = Path(__file__).resolve().parents[2] / "experiments" / "scenarios" / "sweep-load.toml"
    assert len(expand_sweep(tomllib.loads(path.read_text()), str(path))) == 10


def _points(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.parquet")}


def test_a_changed_base_scenario_recomputes_every_point(tmp_path) -> None:
    """Before: a point's key was its index and swept values, so a changed duration reused old points."""
    sweep = {"parameters": {"guests[0].workload.arrivals.rate": ["100/s", "300/s"]}}
    first = pd.read_parquet(run_sweep(expand_sweep(tiny(**sweep)), tmp_path, progress=False))
    changed = tiny(**sweep)
    changed["run"]["duration"] = "0.4s"
    second = pd.read_parquet(run_sweep(expand_sweep(changed), tmp_path, progress=False))
    fresh = pd.read_parquet(run_sweep(expand_sweep(changed), tmp_path / "fresh", progress=False))
    pd.testing.assert_frame_equal(second, fresh, check_exact=True)
    completed = lambda t: t.loc[t["metric"] == "completed", "value"].to_numpy()  # noqa: E731
    assert (completed(second) > 1.5 * completed(first)).all()  # twice the window, about twice the requests


def test_a_copied_or_damaged_point_file_is_computed_again(tmp_path) -> None:
    points = expand_sweep(tiny(parameters={"run.seed": [1, 2, 3]}))
    reference = pd.read_parquet(run_sweep(points, tmp_path / "ref", progress=False))
    out = tmp_path / "out"
    run_sweep(points, out, progress=False)
    files = sorted((out / "points").glob("*.parquet"))
    files[1].write_bytes(files[0].read_bytes())  # point 0's file copied over point 1's
    data = bytearray(files[2].read_bytes())
    rng = __import__("random").Random(5)
    for _ in range(8):  # flip bytes in the middle of the file (data pages)
        i = rng.randrange(len(data) // 4, 3 * len(data) // 4)
        data[i] ^= 0xFF
    files[2].write_bytes(bytes(data))
    before = _points(out)
    table = pd.read_parquet(run_sweep(points, out, progress=False))
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    after = _points(out)
    assert after[files[0].name] == before[files[0].name]  # the intact point was kept
    assert after[files[1].name] != before[files[1].name] and after[files[2].name] != before[files[2].name]


def test_a_huge_grid_is_refused_before_it_is_expanded(tmp_path, capsys) -> None:
    sweep = {"parameters": {"run.seed": list(range(1000)), "guests[0].count": list(range(1, 1001))}}
    path = tmp_path / "s.toml"
    path.write_text(to_toml(tiny(**sweep)))
    started = time.monotonic()
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "1,000,000 points" in capsys.readouterr().err and time.monotonic() - started < 20


def _children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (read from /proc, no procps needed)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            out.append(int(stat.parent.name))
    return out


def test_pool_workers_die_with_a_killed_sweep(tmp_path) -> None:
    scenario = tmp_path / "big.toml"
    scenario.write_text(to_toml(tiny(parameters={"run.seed": list(range(400))})))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "virtsim.experiments.cli", "sweep", str(scenario), "--out", str(out),
               "--workers", "2", "--quiet"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "points").glob("*.parquet"))) < 5:
        time.sleep(0.05)
    children = _children(proc.pid)
    assert children, "the sweep started no pool workers"
    os.kill(proc.pid, signal.SIGKILL)  # the parent only, as an OOM killer or `kill -9 PID` would
    proc.wait()
    deadline = time.monotonic() + 10
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
                 and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
        time.sleep(0.1)
    assert not alive, f"pool workers {alive} outlived their parent"


def _processes_naming(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (pool workers are forks of the CLI)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


KILLS = int(os.environ.get("VIRTSIM_KILLS", "6"))
"""Times the kill-and-resume test kills the sweep (six keep the suite fast; ``VIRTSIM_KILLS=10`` or
more on demand)."""


def test_a_sweep_killed_at_random_moments_ends_equal_to_an_uninterrupted_run(tmp_path) -> None:
    """SIGKILL to the sweep's own process only, at seeded random moments (while importing, while
    points run, while gathering), :data:`KILLS` times: its pool workers must die with it, no
    finished point is run again, and the resumed sweep's table equals one run without
    interruption, value for value."""
    import random

    spec = tiny(parameters={"run.seed": list(range(60))})
    reference = pd.read_parquet(run_sweep(expand_sweep(spec), tmp_path / "reference", progress=False))
    scenario = tmp_path / "s.toml"
    scenario.write_text(to_toml(spec))
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "virtsim.experiments.cli", "sweep", str(scenario), "--out", str(out),
               "--workers", "2", "--quiet"]
    rng = random.Random(2026)
    kept: dict[str, int] = {}
    published = False
    killed = 0  # kills that hit a running sweep (a late one finds it finished)
    for _ in range(KILLS):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 4.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        deadline = time.monotonic() + 10
        while _processes_naming(str(out)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _processes_naming(str(out)), "a worker outlived its killed sweep"
        now = _points(out) if (out / "points").exists() else {}
        assert all(now.get(name) == mtime for name, mtime in kept.items()), "a finished point was run again"
        kept = now
        assert (out / "sweep.parquet").exists() or not published, "a published table was lost to a rerun"
        published = (out / "manifest.json").exists()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"), reference, check_exact=True)
    print(f"{killed} of {KILLS} kills hit a running sweep")  # shown with -s


def test_compared_stacks_are_separate_curves_and_quantities_are_numbers(tmp_path) -> None:
    """A sweep of clients over bare metal and a container capped at 0.1 core (cpu.max 10ms/100ms):
    1 ms requests give bare metal 1000/s per client (4 cores) and the container 100/s at any
    count. The curves keep the stacks apart (their mean, 550/s, was once reported as the answer).
    A rate written with a unit, mixed with a bare number, is a numeric column."""
    from virtsim.experiments.sweep_plots import sweep_curves

    data = {
        "name": "sweep-compare", "run": {"duration": "1s", "warmup": "0.2s", "replications": 2, "seed": 3},
        "host": {"cpu": "small-4c"},
        "guests": [{"name": "app", "stack": ["bare-metal"], "workload": {
            "arrivals": {"kind": "closed", "clients": 1}, "demands": [{"kind": "cpu", "cycles": "3M"}]}}],
        "compare": {"stacks": [["bare-metal"], [{"profile": "docker", "cpu_max": "10ms/100ms"}]]},
        "sweep": {"parameters": {"guests[0].workload.arrivals.clients": [1, 4]}},
    }
    table = pd.read_parquet(run_sweep(expand_sweep(data), tmp_path / "a", progress=False))
    x, series, curves = sweep_curves(table)
    assert x.endswith("clients") and series == ["stack"]
    rps = curves[curves["metric"] == "throughput_rps"].set_index(["stack", x])["mean"]
    assert rps[("bare-metal", 1)] == pytest.approx(1000, rel=0.02)
    assert rps[("bare-metal", 4)] == pytest.approx(4000, rel=0.02)
    capped = next(v for v in rps.index.get_level_values("stack") if v != "bare-metal")
    assert rps[(capped, 1)] == pytest.approx(100, rel=0.05) and rps[(capped, 4)] == pytest.approx(100, rel=0.05)

    mixed = tiny(parameters={"guests[0].workload.arrivals.rate": ["100/s", 300]})
    rates = pd.read_parquet(run_sweep(expand_sweep(mixed), tmp_path / "b", progress=False))
    column = rates["guests[0].workload.arrivals.rate"]
    assert pd.api.types.is_numeric_dtype(column) and sorted(column.unique()) == [100.0, 300.0]
    # and its axis and report column say the unit the numbers are in
    from virtsim.experiments.report import build_report
    from virtsim.experiments.sweep import read_parameter_units
    from virtsim.experiments.sweep_plots import axis_label

    units = read_parameter_units(tmp_path / "b")
    assert units == {"guests[0].workload.arrivals.rate": "1/s"}
    assert axis_label("guests[0].workload.arrivals.rate", units) == "rate (1/s)"
    assert "guests[0].workload.arrivals.rate (1/s)" in build_report(tmp_path / "b").answer.columns


def test_a_swept_bandwidth_is_held_in_its_fields_own_unit(tmp_path) -> None:
    """Review 7 A3: a disk's bandwidth swept as 550000000 (bare: B/s, the field's unit) and
    "1.1GB/s" was held as 5.5e8 and 8.8e9 (the suffix read as bits per second first) though the
    simulation used 1.1e9. The column holds what the scenario holds, and its unit is B/s."""
    from virtsim.experiments.sweep import read_parameter_units

    data = {
        "name": "sweep-bw", "run": {"duration": "0.2s", "warmup": "0.02s", "replications": 1, "seed": 1},
        "host": {"cpu": "small-4c", "storage": {"profile": "sata-ssd"}},
        "guests": [{"name": "db", "stack": ["bare-metal"], "workload": {
            "arrivals": {"kind": "open", "rate": "2000/s"},
            "demands": [{"kind": "io", "op": "read", "size": "64KiB", "pattern": "seq"}]}}],
        "sweep": {"parameters": {"host.storage.bandwidth": [550000000, "1.1GB/s"]}},
    }
    table = pd.read_parquet(run_sweep(expand_sweep(data), tmp_path / "bw", progress=False))
    assert sorted(table["host.storage.bandwidth"].unique()) == [5.5e8, 1.1e9]
    assert read_parameter_units(tmp_path / "bw") == {"host.storage.bandwidth": "B/s"}


def test_the_primary_curve_is_a_workloads_own_metric_never_one_the_simulator_writes() -> None:
    """Review 10 B1: with run.pooled_latency, a generic workload's sweep drew the pooled p99's lower
    bound (latency_p99_low_s, NaN in short runs) as its primary curve instead of throughput."""
    from virtsim.experiments.sweep_plots import sweep_curves
    from virtsim.sim.records import METRIC_UNITS

    def table(metrics: list[str]) -> pd.DataFrame:
        return pd.DataFrame([{"point": p, "stack": "as-written", "replication": 0, "guest": "web", "metric": m,
                              "layer": "all", "station": "all", "value": 1.0, "unit": "x", "rate": rate}
                             for p, rate in enumerate((1000.0, 1500.0)) for m in metrics])

    written = sorted(METRIC_UNITS)  # every metric the simulator writes, the pooled interval among them
    assert "latency_p99_low_s" in written
    _, _, curves = sweep_curves(table(written))
    assert set(curves["metric"]) == {"throughput_rps", "latency_p99_s"}
    _, _, curves = sweep_curves(table([*written, "tps"]))  # a named workload's own measure comes first
    assert set(curves["metric"]) == {"tps", "latency_p99_s"}


def test_guests_of_different_workloads_each_get_their_own_metrics_curve() -> None:
    """STREAM beside Linpack: the sweep draws both bandwidth and GFLOPS (the first guest's own
    metric alone hid what the streams cost Linpack)."""
    from virtsim.experiments.sweep_plots import sweep_curves

    rows = [{"point": p, "stack": "bare-metal", "replication": 0, "guest": guest, "metric": metric, "layer": "all",
             "station": "all", "value": value * threads, "unit": "x", "threads": threads}
            for p, threads in enumerate((1, 2)) for guest, metric, value in
            (("stream", "bandwidth_GBps", 6.0), ("linpack", "gflops", 10.0), ("stream", "latency_p99_s", 0.01))]
    _, series, curves = sweep_curves(pd.DataFrame(rows))
    assert set(curves["metric"]) == {"bandwidth_GBps", "gflops", "latency_p99_s"}
    assert series == ["guest"]
    gflops = curves[curves["metric"] == "gflops"]
    assert list(gflops["guest"]) == ["linpack", "linpack"] and list(gflops["mean"]) == [10.0, 20.0]


def test_a_sweep_killed_before_its_first_point_is_resumed_not_refused(tmp_path, monkeypatch) -> None:
    """The random-kill test, on a loaded machine, hit the moment after the points folder was made
    and before the index that marks an unfinished sweep: the next run refused the folder as not
    a virtsim result. The index is written first now; a kill right after it leaves a folder the
    next run resumes."""
    import virtsim.experiments.sweep as sweep_module

    points = expand_sweep(tiny(parameters={"run.seed": [1, 2]}))
    out = tmp_path / "out"
    real_write = sweep_module.write_json

    def killed_at_the_index(path, data):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # as SIGKILL would stop it there: nothing after runs

    monkeypatch.setattr(sweep_module, "write_json", killed_at_the_index)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(points, out, progress=False)
    monkeypatch.setattr(sweep_module, "write_json", real_write)
    assert (pd.read_parquet(run_sweep(points, out, progress=False))["point"].nunique()) == 2


def test_a_sweep_killed_while_writing_its_index_is_resumed_not_refused(tmp_path) -> None:
    """The random-kill test again: a kill inside the index's atomic write left only its
    temporary file (.sweep_points.json.XXXX.tmp), which the next run refused as not a virtsim
    result. Such debris is no result: it is cleared and the sweep runs."""
    points = expand_sweep(tiny(parameters={"run.seed": [1, 2]}))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".sweep_points.json.abcd1234.tmp").write_text("{")
    assert pd.read_parquet(run_sweep(points, out, progress=False))["point"].nunique() == 2
    assert not list(out.glob(".*.tmp"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.tmp").write_text("a user's file")  # not hidden: not debris, refused
    with pytest.raises(Exception, match="not a virtsim result"):
        run_sweep(points, tmp_path / "mine", progress=False)


def test_a_point_written_before_the_stack_column_was_renamed_is_read_with_the_current_name(tmp_path) -> None:
    """Earlier versions named the compared stack's column ``variant`` in runs, summaries and
    sweep points: a point file from one (its own key and checksum) is reused, its column named
    ``stack``, so a resumed sweep's table has one column for it, not two half-empty ones."""
    from virtsim.experiments.sweep import _read_point, _write_point

    point = expand_sweep(tiny(parameters={"run.seed": [1]}))[0]
    old = pd.DataFrame([{"point": 0, "variant": "as-written", "replication": 0, "guest": "web",
                         "metric": "completed", "layer": "all", "station": "all", "value": 3.0, "unit": "1"}])
    path = tmp_path / "p.parquet"
    _write_point(path, point, old)
    read = _read_point(path, point)
    assert read is not None and "variant" not in read.columns and list(read["stack"]) == ["as-written"]


def test_sweeping_a_guests_stack_under_a_compare_table_is_refused() -> None:
    """Review 30 F2: [compare] runs every guest on each compared stack, so a swept guest stack
    never ran, yet each point carried its label (two identical points, one labelled with a
    cpu.max that would have overloaded it)."""
    data = tiny(parameters={"guests[0].stack": [["kvm"], ["docker"]]})
    data["compare"] = {"stacks": [["kvm"], ["docker"]]}
    with pytest.raises(ScenarioError, match=r"guests\[0\]\.stack.*\[compare\] table replaces"):
        expand_sweep(data)


def test_a_sweep_folder_from_before_the_stack_column_was_renamed_is_reported(tmp_path) -> None:
    """Review 31: an old sweep folder (its table's column named ``variant``, its manifest intact)
    failed to report with "KeyError: 'stack'"."""
    import hashlib
    import json

    points = expand_sweep(tiny(parameters={"run.seed": [1, 2]}))
    out = tmp_path / "old"
    path = run_sweep(points, out, progress=False)
    pd.read_parquet(path).rename(columns={"stack": "variant"}).to_parquet(path, index=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["sweep.parquet"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(out)]) == 0


def test_a_stack_that_changes_only_from_point_to_point_is_no_series_of_its_own() -> None:
    """Review 32 F7: sweeping a guest's vCPUs without [compare] labels each point with its own
    stack, and the plot drew four one-point series instead of one curve."""
    from virtsim.experiments.sweep_plots import sweep_curves

    rows = [{"point": p, "stack": f"kvm{{vcpus={p + 1}}}", "replication": 0, "guest": "web", "metric": m,
             "layer": "all", "station": "all", "value": 1.0, "unit": "x", "vcpus": p + 1}
            for p in range(4) for m in ("throughput_rps", "latency_p99_s")]
    _, series, curves = sweep_curves(pd.DataFrame(rows))
    assert series == [] and len(curves) == 8
    compared = [{**r, "stack": s} for r in rows for s in ("kvm", "docker")]  # two stacks at every point
    assert sweep_curves(pd.DataFrame(compared))[1] == ["stack"]
