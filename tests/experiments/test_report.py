"""Reports from saved results: every kind of folder renders, and the HTML shows in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.tomlgen import to_toml
from virtsim.experiments.cli import main
from virtsim.experiments.outputs import ResultsError
from virtsim.experiments.report import build_report, write_report


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    from tests.experiments.conftest import SMALL

    folder = tmp_path_factory.mktemp("run")
    scenario = folder / "s.toml"
    data = {**SMALL, "compare": {"stacks": [["bare-metal"], ["docker-nat", "kvm"]]}}
    data["guests"] = SMALL["guests"][:1]
    scenario.write_text(to_toml(data))
    assert main(["run", str(scenario), "--out", str(folder / "out"), "--quiet", "--workers", "1"]) == 0
    return folder / "out"


def test_a_run_report_has_the_answer_figures_and_sourced_profiles(run_folder) -> None:
    paths = write_report(run_folder)
    md = paths["report.md"].read_text()
    assert "## The answer" in md and "## Profiles used" in md
    assert "| stack | guest | throughput (req/s) |" in md and "| docker-nat/kvm | web |" in md  # a real table
    assert "published.csv felter-fio-randread-kvm" in md  # a kvm parameter's source
    assert "## How well each stack is calibrated" in md
    from virtsim.models.profiles import load_profiles

    layers = load_profiles("virtsim.models.virt")
    count = len(layers["docker-nat"].params) + len(layers["kvm"].params)
    assert f"| docker-nat/kvm | {count} |" in md  # every parameter of both layers, with their grade
    report = build_report(run_folder)
    assert len(report.figures) == 3 and all(f.exists() for f in report.figures)
    page = paths["report.html"].read_text()
    assert page.count("data:image/png;base64,") == 3  # self-contained


def test_a_disk_folder_gets_its_own_report(tmp_path) -> None:
    spec = tmp_path / "disk.toml"
    spec.write_text('[disk]\nguests = 2\nvirtual = "1GiB"\nbase_used = "64MiB"\ngrowth_writes = 300\n'
                    'pattern = { kind = "random", writes = 200 }\n')
    assert main(["disk", str(spec), "--out", str(tmp_path / "d")]) == 0
    report = build_report(tmp_path / "d")
    assert report.title == "Disk usage" and len(report.figures) == 4


def test_folders_without_results_get_a_clear_error(tmp_path, capsys) -> None:
    with pytest.raises(ResultsError, match=r"has no manifest\.json"):
        build_report(tmp_path)
    (tmp_path / "summary.csv").write_bytes(b"\x00\x01 not a csv")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "virtsim: error:" in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.real
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_html_report_renders_in_headless_chromium_with_every_figure_loaded(run_folder, tmp_path) -> None:
    html = write_report(run_folder)["report.html"]
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r'<body data-figures-total="(\d+)" data-figures-loaded="(\d+)"', dom)
    assert body is not None, "the page did not render"
    assert body.group(1) == body.group(2) == "3"
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1200,1600", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_a_run_into_a_folder_of_other_results_is_refused_before_it_runs(tmp_path, capsys) -> None:
    """Before: `run --out D` beside an old calibration.csv rendered the old calibration report."""
    spec = tmp_path / "disk.toml"
    spec.write_text('[disk]\nguests = 2\nvirtual = "1GiB"\nbase_used = "64MiB"\ngrowth_writes = 300\n'
                    'pattern = { kind = "random", writes = 200 }\n')
    assert main(["disk", str(spec), "--out", str(tmp_path / "d")]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir() if p.is_file()}
    assert main(["run", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert "holds results of `virtsim disk`" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir() if p.is_file()} == before
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "calibration.csv").write_text("row,published\nx,1\n")
    assert main(["disk", str(spec), "--out", str(tmp_path / "loose")]) == 2
    # it names what is there, and warns that --force deletes it (review 26: it advised --force)
    assert "not a virtsim result (calibration.csv); choose an empty or new folder (--force would delete" \
        in capsys.readouterr().err
    assert main(["disk", str(spec), "--out", str(tmp_path / "loose"), "--force"]) == 0
    assert not (tmp_path / "loose" / "calibration.csv").exists()  # --force cleared it
    assert build_report(tmp_path / "loose").title == "Disk usage"


def test_a_file_changed_after_its_run_is_never_reported(run_folder, tmp_path) -> None:
    """Before: a runs.parquet replaced by a killed run beside the old summary was rendered as one result."""
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder)
    summary = folder / "summary.csv"
    summary.write_text(summary.read_text().replace("0.", "9.", 1))
    with pytest.raises(ResultsError, match=r"summary\.csv is not the file its experiment wrote"):
        build_report(folder)
    (folder / "summary.csv").unlink()
    with pytest.raises(ResultsError, match=r"summary\.csv is missing"):
        build_report(folder)


def test_an_interrupted_run_leaves_the_old_results_whole(run_folder, tmp_path, monkeypatch) -> None:
    import virtsim.experiments.outputs as outputs

    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run were stopped while writing its files

    monkeypatch.setattr(outputs, "write_json", killed)
    from tests.experiments.conftest import SMALL

    scenario = tmp_path / "s.toml"
    data = {**SMALL, "compare": {"stacks": [["bare-metal"], ["docker-nat", "kvm"]]}}
    data["guests"] = SMALL["guests"][:1]
    scenario.write_text(to_toml(data))
    assert main(["run", str(scenario), "--out", str(folder), "--quiet", "--workers", "1"]) == 130
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def _disk_folder(tmp_path) -> Path:
    spec = tmp_path / "disk.toml"
    spec.write_text('[disk]\nguests = 2\nvirtual = "1GiB"\nbase_used = "64MiB"\ngrowth_writes = 300\n'
                    'pattern = { kind = "random", writes = 200 }\n')
    assert main(["disk", str(spec), "--out", str(tmp_path / "d")]) == 0
    return tmp_path / "d"


@pytest.mark.real
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_combined_report_answers_first_then_each_experiment_and_renders(run_folder, tmp_path) -> None:
    """`virtsim report A B --out R`: the answers of both, then each section with its figures
    (copied beside report.md, embedded in report.html: 3 of the run and 4 of the disk), and the
    page renders in headless Chromium with every figure loaded."""
    disk = _disk_folder(tmp_path)
    out = tmp_path / "both"
    assert main(["report", str(run_folder), str(disk), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    answers = md.split("## The answers")[1].split("## Run")[0]
    assert "**Run: small**" in answers and "**Disk usage**" in answers
    assert md.index("## The answers") < md.index("## Run: small") < md.index("## Disk usage")
    assert len(list(out.glob("*.png"))) == 7 and "(d-growth.png)" in md
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r'<body data-figures-total="(\d+)" data-figures-loaded="(\d+)"', dom)
    assert body is not None and body.group(1) == body.group(2) == "7"
    assert 'id="answers"' in dom


def test_several_folders_need_an_out_folder_that_is_not_a_result(run_folder, tmp_path, capsys) -> None:
    assert main(["report", str(run_folder), str(run_folder)]) == 2
    assert "name where it goes with --out DIR" in capsys.readouterr().err
    assert main(["report", str(run_folder), "--out", str(run_folder)]) == 2
    assert "holds an experiment's results" in capsys.readouterr().err
    assert main(["report", str(run_folder), str(run_folder) + "/", "--out", str(tmp_path / "twice")]) == 2
    assert "named more than once" in capsys.readouterr().err and not (tmp_path / "twice").exists()


def test_answer_sentences_name_the_worst_workload_and_the_densest_stack() -> None:
    """IOPS at half of bare metal's is a 2x loss; a round trip 1.5x as long a 1.5x loss: fio is
    kvm's worst workload and its median slowdown is 1.75x. Density sentences go densest first."""
    import pandas as pd

    from virtsim.experiments.density import _density_sentences
    from virtsim.experiments.overhead import _overhead_sentences

    table = pd.DataFrame({"stack": ["kvm", "kvm", "kvm"], "workload": ["fio", "rr", "rr"],
                          "metric": ["iops", "round_trip_us", "latency_p99_s"], "ratio": [0.5, 1.5, 9.0],
                          "lower_is_better": [False, True, True]})
    assert _overhead_sentences(table) == ["kvm: worst on fio (iops 0.5x bare metal's); median slowdown over the "
                                          "workloads 1.75x."]
    summary = pd.DataFrame({"stack": ["kvm", "docker"], "max_guests": [3, 9], "limiting_resource": ["memory", "CPU"],
                            "slo_p99_s": [0.01, 0.01]})
    assert _density_sentences(summary) == ["docker: 9 guests fit one host at p99 <= 10 ms; what runs out first: CPU.",
                                           "kvm: 3 guests fit one host at p99 <= 10 ms; what runs out first: memory."]


def test_table_cells_read_as_people_read_numbers() -> None:
    from virtsim.experiments.report import _cell_text

    assert [_cell_text(v) for v in (0.3732408652222222, 1118174864.0, 40, 6.4e-05, float("nan"), "memory", True,
                                    46155.55, 1e20)] \
        == ["0.3732", "1,118,174,864", "40", "6.4e-05", "", "memory", "True", "46,156",
            "100,000,000,000,000,000,000"]


def test_density_sentences_at_the_edges_say_what_the_number_means() -> None:
    import pandas as pd

    from virtsim.experiments.density import _density_sentences

    summary = pd.DataFrame({"stack": ["docker", "kvm"], "max_guests": [0, 1], "slo_p99_s": [1e-6, 1.0],
                            "limiting_resource": ["CPU", "search cap (max_guests)"]})
    assert _density_sentences(summary) == [
        "kvm: at least 1 guest fit one host at p99 <= 1 s: the search stopped at max_guests before anything "
        "ran out; raise max_guests for the answer.",
        "docker: not even one guest meets the SLO at p99 <= 1 us on this host (at one guest the busiest resource "
        "is CPU: the SLO itself may be out of reach)."]


def test_the_engine_that_ran_reads_as_words() -> None:
    from virtsim.experiments.report import engine_text as _engine_text

    assert _engine_text({"bare-metal": "des", "kvm": "des"}) == "des for every stack"
    assert _engine_text({"bare-metal": "vector", "kvm": "des", "docker": "vector"}) == \
        "des (kvm), vector (bare-metal, docker)"


def test_a_run_whose_load_exceeds_a_cap_is_reported_as_overloaded(tmp_path) -> None:
    """Review 6 B2: 420/s x 1 ms on a container capped at 0.3 core (cpu.max 30ms/100ms) is
    offered 140% of its cap: its latencies grow with the run's length. The same load under a cap
    of 1.5 cores (28%) is not flagged."""
    scenario = {
        "name": "quota-sat", "run": {"duration": "1s", "warmup": "0.1s", "replications": 1, "seed": 5},
        "host": {"cpu": "small-4c", "memory": "ddr4-small"},
        "guests": [{"name": "api", "stack": ["docker"], "workload": {
            "arrivals": {"kind": "open", "rate": "420/s"},
            "demands": [{"kind": "cpu", "cycles": "3M", "dist": "exp"}]}}],
        "compare": {"stacks": [[{"profile": "docker", "cpu_max": "30ms/100ms"}],
                               [{"profile": "docker", "cpu_max": "150ms/100ms"}]]},
    }
    path = tmp_path / "s.toml"
    path.write_text(to_toml(scenario))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    sentences = build_report(tmp_path / "out").sentences
    assert len(sentences) == 1 and "overloaded" in sentences[0] and "cpu_max=30ms/100ms" in sentences[0]
    offered = float(re.search(r"offered (\d+)%", sentences[0]).group(1))  # type: ignore[union-attr]
    assert offered == pytest.approx(140, abs=5)


def test_the_attribution_plots_show_one_guests_latency_not_the_sum_over_guests(tmp_path) -> None:
    """Review 10 A4: three alike guests were drawn as one bar of their three latencies added up
    (1,776 us against 592 us each). A bar is now the guests' mean, and it adds up to their mean
    latency."""
    from virtsim.experiments.plots import attribution_table

    scenario = {
        "name": "attr-multi", "run": {"duration": "0.5s", "warmup": "0.05s", "replications": 1, "seed": 3},
        "host": {"cpu": "small-4c", "memory": "ddr4-small"},
        "guests": [{"name": "web", "count": 3, "stack": ["kvm"], "workload": {"kind": "web", "rate": "300/s"}}],
        "compare": {"stacks": [["bare-metal"], ["kvm"]]},
    }
    path = tmp_path / "s.toml"
    path.write_text(to_toml(scenario))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    guests = ["web-1", "web-2", "web-3"]
    table = attribution_table(summary[summary["metric"] == "time_mean_s"], guests, ["bare-metal", "kvm"])
    latency = summary[(summary["metric"] == "latency_mean_s") & summary["guest"].isin(guests)]
    per_variant = latency.groupby("stack")["mean"].mean()
    for variant in ("bare-metal", "kvm"):
        assert table.loc[variant].sum() == pytest.approx(per_variant[variant], rel=1e-9)
    assert (tmp_path / "out" / "attribution_mean.png").exists()


def test_a_lock_held_longer_than_the_requests_allow_is_reported_as_overloaded(tmp_path) -> None:
    """Review 10 A3: a Firecracker VMM thread holds its lock through each synchronous I/O; 14,000
    4 KiB reads/s offer it about 145% of its time, and the run's report said nothing."""
    scenario = {
        "name": "fc-lock", "run": {"duration": "0.2s", "warmup": "0.02s", "replications": 1, "seed": 1},
        "host": {"cpu": "xeon-8175m-2s", "memory": "ddr4-2s-skylake", "storage": "nvme-ssd", "network": "25gbe"},
        "guests": [{"name": "store", "stack": ["firecracker"], "workload": {
            "arrivals": {"kind": "open", "rate": "14000/s"},
            "demands": [{"kind": "io", "op": "read", "size": "4KiB", "pattern": "random"}]}}],
    }
    path = tmp_path / "s.toml"
    path.write_text(to_toml(scenario))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    sentences = build_report(tmp_path / "out").sentences
    assert any("vmm-lock:store" in s and "overloaded" in s for s in sentences), sentences
    utilization = pd.read_csv(tmp_path / "out" / "summary.csv").query("metric == 'utilization'")
    assert float(utilization[utilization["station"] == "vmm-lock:store"]["mean"].iloc[0]) > 0.99


def test_a_results_csv_from_an_earlier_version_names_the_stack_column_as_now(tmp_path) -> None:
    from virtsim.experiments.report import read_results_csv

    (tmp_path / "summary.csv").write_text("variant,guest,metric,mean\nkvm,web,throughput_rps,10\n")
    assert list(read_results_csv(tmp_path / "summary.csv").columns) == ["stack", "guest", "metric", "mean"]


def test_a_run_as_written_reports_each_guests_own_stack(small, tmp_path) -> None:
    """Review 32 F8: without [compare] the run is labelled by all its guests' stacks, and every
    guest's row and plot panel showed that whole label; each shows its own stack now."""
    import virtsim
    from virtsim.experiments.plots import _ticks

    small.pop("compare", None)
    small["guests"][0]["stack"] = [{"profile": "docker", "cpu_max": "50ms/100ms"}]
    small["guests"][1]["stack"] = ["docker", "kvm"]
    virtsim.run(small).report(tmp_path / "r")
    table = (tmp_path / "r" / "report.md").read_text()
    names = [small["guests"][0]["name"], small["guests"][1]["name"]]
    assert f"| docker{{cpu_max=50ms/100ms}} | {names[0]} |" in table and f"| docker/kvm | {names[1]}-1 |" in table
    both = "docker{cpu_max=50ms/100ms} + docker/kvm"
    assert _ticks([both], names[1], {names[0]: "docker{cpu_max=50ms/100ms}", names[1]: "docker/kvm"}) == ["docker/kvm"]


def test_a_reports_profiles_are_read_from_labels_as_a_stacks_text_is_read() -> None:
    """Issue 14: labels split by the one reader of a stack's text ("/" inside braces and "," inside
    brackets no boundary, a scenario's " + " between stacks); a label whose braces do not pair up
    is a ResultsError naming it, not profiles guessed from it ("docker{cpu_max=50ms" was read as
    docker)."""
    from virtsim.experiments.report import stacks_fields

    fields = stacks_fields(pd.Series(["docker{cpu_max=50ms/100ms,cpuset=[0,1]}/kvm", "lxc + xen", "kvm"]))
    assert fields["profiles"] == ["docker", "kvm", "lxc", "xen"]
    with pytest.raises(ResultsError, match=r"stack label .* \('docker\{cpu_max=50ms/100ms/kvm': a brace or bracket"):
        stacks_fields(pd.Series(["docker{cpu_max=50ms/100ms/kvm"]))
