"""Reports: a self-contained HTML page and a Markdown file from any experiment's saved results.

``virtsim report DIR`` recognises what wrote ``DIR`` (a run or comparison, overhead, calibration,
density, disk usage, a sweep) and renders what was asked, the answer in one table, the plots, the
assumptions, and the profiles used with the source of every parameter. Built only from the saved
files, never from live objects. The HTML embeds its figures, so it can be mailed as one file; a
script in it records how many figures loaded (``data-figures-loaded`` on ``<body>``).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, StrictUndefined

from virtsim.experiments.grades import grades_table
from virtsim.experiments.outputs import ResultsError, atomic_write, read_manifest
from virtsim.experiments.plots import plot_attribution, plot_latency
from virtsim.experiments.scenario import label_profiles, stack_label
from virtsim.models.profiles import Profile, load_profiles

__all__ = ["Report", "build_report", "write_report", "write_run_report"]


@dataclass
class Report:
    """What a report says, independent of its format."""

    title: str
    question: str
    answer: pd.DataFrame
    figures: list[Path]
    assumptions: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    stacks: list[str] = field(default_factory=list)  # labels whose calibration grade the report shows
    sentences: list[str] = field(default_factory=list)  # the answer in words, above its table


def _stacks(labels: pd.Series) -> dict[str, list[str]]:
    """The ``stacks`` and ``profiles`` fields of a report whose table has these stack labels."""
    stacks = [str(s) for s in labels.unique()]
    return {"stacks": stacks, "profiles": sorted({p for s in stacks for p in label_profiles(s)})}


def _read_csv(path: Path) -> pd.DataFrame:
    """A results CSV, or a :class:`ResultsError` if it cannot be read."""
    try:
        return pd.read_csv(path)
    except Exception as exc:
        raise ResultsError(f"{path} cannot be read as CSV ({type(exc).__name__}); rerun the experiment") from None


def _existing(folder: Path, names: list[str]) -> list[Path]:
    """The files among ``names`` that exist in ``folder``."""
    return [folder / n for n in names if (folder / n).exists()]


def _engine_text(engine: object) -> str:
    """The engine that ran, per stack in words: "des" for all, or "des (kvm), vector (bare-metal)"."""
    if not isinstance(engine, dict):
        return str(engine)
    kinds = set(engine.values())
    if len(kinds) == 1:
        return f"{next(iter(kinds))} for every stack"
    return ", ".join(f"{e} ({', '.join(k for k, v in engine.items() if v == e)})" for e in sorted(kinds))


def _guest_entries(provenance: dict[str, object]) -> dict[str, list[str]] | None:
    """The guests of each ``[[guests]]`` entry of the scenario that ran (None if the provenance
    does not say)."""
    from pydantic import ValidationError

    from virtsim.experiments.scenario import GuestSpec

    try:
        guests = provenance["scenario"]["guests"]  # type: ignore[index]
        specs = [GuestSpec.model_validate(g) for g in guests]
    except (KeyError, TypeError, ValidationError):
        return None
    return {spec.name: spec.names() for spec in specs}


def _run_report(folder: Path) -> Report:
    """The report of a ``virtsim run`` folder (its latency and attribution plots are drawn into the folder)."""
    summary = _read_csv(folder / "summary.csv")
    try:
        prov = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        raise ResultsError(f"{folder / 'provenance.json'} is missing or not JSON; rerun `virtsim run`") from None
    entries = _guest_entries(prov)
    plot_latency(summary, folder / "latency.png", entries)
    plot_attribution(summary, folder / "attribution_mean.png", "time_mean_s", entries)
    plot_attribution(summary, folder / "attribution_tail.png", "tail_time_mean_s", entries)
    main = summary[(summary["layer"] == "all") & (summary["station"] == "all") & (summary["guest"] != "host")]
    rows = []
    for (variant, guest), g in main.groupby(["variant", "guest"], sort=False):
        m = g.set_index("metric")
        def ci(metric: str, scale: float = 1e6, m: pd.DataFrame = m) -> str:
            if metric not in m.index:
                return ""
            r = m.loc[metric]
            half = (r["ci_high"] - r["mean"]) * scale
            return f"{r['mean'] * scale:.1f} ± {half:.1f}" if half == half else f"{r['mean'] * scale:.1f}"
        rows.append({"stack": variant, "guest": guest, "throughput (req/s)": ci("throughput_rps", 1.0),
                     "mean latency (µs)": ci("latency_mean_s"), "p99 latency (µs)": ci("latency_p99_s")})
    scenario = prov["scenario"]
    run = scenario["run"]
    sentences = _overload_sentences(summary)
    stacks = [stack_label(s) for s in (scenario.get("compare") or {}).get("stacks", [])]
    stacks = stacks or [stack_label(g["stack"]) for g in scenario["guests"]]
    return Report(
        title=f"Run: {scenario['name']}",
        question=scenario.get("description") or "How does each stack perform on this workload?",
        answer=pd.DataFrame(rows),
        figures=_existing(folder, ["latency.png", "attribution_mean.png", "attribution_tail.png"]),
        assumptions=[f"{run['duration']} s simulated per replication, {run['warmup']} s warm-up discarded, "
                     f"{run['replications']} replications, seed {run['seed']}; ± is a 95% Student-t interval.",
                     f"Engine: {_engine_text(prov.get('engine'))}.", *_cores_note(scenario)],
        sentences=sentences,
        **_stacks(pd.Series(stacks)),
    )


def _overload_sentences(summary: pd.DataFrame) -> list[str]:
    """A warning per stack whose open-loop load reaches a resource's capacity: its queue grows for
    as long as the run lasts, so its latencies measure the run's length, not the stack."""
    offered = summary[summary["metric"] == "offered_utilization"]
    out = []
    for variant, part in offered.groupby("variant", sort=False):
        worst = part.iloc[int(part["mean"].to_numpy().argmax())]
        if float(worst["mean"]) >= 1.0:
            out.append(f"{variant} is overloaded: {worst['station']} is offered {100 * float(worst['mean']):.0f}% of "
                       "its capacity, so its queue grows for as long as the run lasts; its latencies depend on "
                       "the run's length, not on the stack (lower the rate or raise the limit).")
    return out


def _cores_note(scenario: dict) -> list[str]:
    """What the comparison did to keep every stack's machine the same size."""
    compare = scenario.get("compare") or {}
    if not compare:
        return []
    if compare.get("cores", "vm-sized-to-host") == "vm-sized-to-host":
        return ["Same CPUs for every stack: each compared VM has as many vCPUs as the host has hardware "
                "threads (cores x SMT threads; unless its stack sets vcpus), and a VM nested in it as many "
                "as it has, so bare metal and containers are not compared with a smaller machine."]
    return ["VMs keep their profiles' vCPU counts (compare.cores = \"as-written\"): bare metal and containers "
            "may use more cores than a VM."]


def _overhead_report(folder: Path) -> Report:
    """The report of a ``virtsim overhead`` folder: each workload's primary ratio to bare metal, per stack."""
    from virtsim.experiments.overhead import primary_rows

    table = _read_csv(folder / "overhead.csv")
    primary = primary_rows(table)
    answer = primary.pivot_table(index="workload", columns="stack", values="ratio", sort=False).round(3).reset_index()
    return Report("Overhead against bare metal",
                  "How much does each virtualization stack cost each workload, relative to bare metal?",
                  answer, _existing(folder, ["overhead.png", "latency_cdf.png"]),
                  ["Ratios of each workload's own metric (GFLOPS, IOPS, round trip, ...) to bare metal's; "
                   "for latency-like metrics above 1 is worse. A workload at a fixed request rate (web) is "
                   "measured by its mean latency: its throughput is the rate it is offered on every stack.",
                   "attribution.csv splits each stack's added mean and tail latency by layer and station.",
                   "Same CPUs for every stack: each VM has as many vCPUs as the host has hardware threads "
                   "(cores x SMT threads), a nested VM as many as the VM around it."],
                  sentences=_overhead_sentences(table), **_stacks(table["stack"]))


def _calibration_report(folder: Path) -> Report:
    """The report of a ``virtsim calibrate`` folder: the reproduced rows and their errors."""
    table = _read_csv(folder / "calibration.csv")
    done = table.dropna(subset=["simulated"])
    answer = done[["row", "stack", "published", "simulated", "rel_error", "ratio_error_points", "fitted",
                   "within_target"]].round(4)
    return Report("Calibration against published measurements",
                  "How close does the model come to the published measurements it can reproduce?",
                  answer, _existing(folder, ["calibration.png"]),
                  [f"{len(done)} rows reproduced, {int(done['within_target'].astype(bool).sum())} within target "
                   "(10% absolute, 5 points on ratios to native).",
                   "Rows marked fitted were used to fit a parameter; the others are predictions.",
                   f"{len(table) - len(done)} rows are not reproduced; calibration.csv gives each reason."],
                  **_stacks(done["stack"]))


def _seconds_text(seconds: float) -> str:
    """A duration in the unit that reads best: us, ms or s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _density_sentences(summary: pd.DataFrame) -> list[str]:
    """One sentence per stack, densest first: how many fit, under which SLO, what runs out."""
    out = []
    for _, r in summary.sort_values("max_guests", ascending=False).iterrows():
        known = "slo_p99_s" in r and pd.notna(r["slo_p99_s"])
        slo = f" at p99 <= {_seconds_text(float(r['slo_p99_s']))}" if known else ""
        n, limit = int(r["max_guests"]), str(r["limiting_resource"])
        if n == 0:
            out.append(f"{r['stack']}: not even one guest meets the SLO{slo} on this host (at one guest the "
                       f"busiest resource is {limit}: the SLO itself may be out of reach).")
        elif limit.startswith("search cap"):
            out.append(f"{r['stack']}: at least {n} guest{'s' if n != 1 else ''} fit one host{slo}: the search "
                       "stopped at max_guests before anything ran out; raise max_guests for the answer.")
        else:
            measured = ""
            if "p99_s" in r and pd.notna(r["p99_s"]):
                interval = (f", 95% interval {_seconds_text(float(r['p99_low_s']))} to "
                            f"{_seconds_text(float(r['p99_high_s']))}"
                            if pd.notna(r.get("p99_low_s")) and pd.notna(r.get("p99_high_s")) else "")
                measured = f" (p99 there {_seconds_text(float(r['p99_s']))}{interval})"
            out.append(f"{r['stack']}: {n} guest{'s' if n != 1 else ''} fit one host{slo}{measured}; "
                       f"what runs out first: {limit}.")
    return out


def _overhead_sentences(table: pd.DataFrame) -> list[str]:
    """Per stack, its worst workload: the largest loss against bare metal on a workload's own metric."""
    from virtsim.experiments.overhead import primary_rows

    primary = primary_rows(table)
    primary = primary[primary["stack"] != "bare-metal"]
    out = []
    for stack, part in primary.groupby("stack", sort=False):
        loss = part["ratio"].where(part["lower_is_better"].astype(bool), 1 / part["ratio"])  # > 1: slower
        worst = part.iloc[int(loss.to_numpy().argmax())]
        out.append(f"{stack}: worst on {worst['workload']} ({worst['metric']} {float(worst['ratio']):.3g}x bare "
                   f"metal's); median slowdown over the workloads {float(loss.median()):.3g}x.")
    return out


def _density_report(folder: Path) -> Report:
    """The report of a ``virtsim density`` folder: the largest N per stack and what limits it."""
    summary = _read_csv(folder / "density_summary.csv")
    return Report("Density: guests per host",
                  "How many guests fit one host per stack under the SLO, and what runs out?", summary,
                  _existing(folder, ["density.png"]),
                  ["Largest N whose guests meet the p99 SLO and are served, with memory to spare and no OOM kill.",
                   "The p99 is over every guest's requests together (the guests are identical), from at least "
                   "slo_samples of them (2,000 by default); density.csv also gives the worst guest's own p99.",
                   "The SLO test compares that pooled p99 with the SLO. Its 95% interval is beside it, by "
                   "sectioning on the log scale: the requests in arrival order cut into 3 to 10 consecutive "
                   "sections (one per 4,000 requests), the p99 times exp(+-Student-t x the spread of the log "
                   "of the sections' p99s). A busy queue's latencies come in correlated runs, which sections "
                   "far apart in time mostly are not. Checked on M/M/1 latencies, it held the true p99 in 92% "
                   "of 2,000-request runs at 50% load but 81% at 80% load, where the p99 itself reads about "
                   "9% low: near saturation, read it as approximate and raise slo_samples. Where it straddles "
                   "the SLO, the answer N is within the noise of the run length; with fewer than 1,200 "
                   "requests there is no interval.",
                   "With open-loop guests, an N whose offered load (rate x work per request, from 20,000 sampled "
                   "requests, against capacity) reaches 100% of a resource or capped group fails, however the "
                   "short run looked (density.csv: offered_utilization).",
                   "density.csv holds every N the search evaluated."],
                  sentences=_density_sentences(summary), **_stacks(summary["stack"]))


def _disk_report(folder: Path) -> Report:
    """The report of a ``virtsim disk`` folder: bytes on the host (GB) per format and driver."""
    table = _read_csv(folder / "disk.csv")
    part = table[table["experiment"].isin(["image-chain", "layer-stack"])]
    answer = part.pivot_table(index="system", columns="measure", values="bytes", sort=False)
    answer = (answer / 1e9).round(3).reset_index().rename(columns=lambda c: f"{c} (GB)" if c != "system" else c)
    return Report("Disk usage", "How much disk do N guests from one image take, per image format and storage driver?",
                  answer, _existing(folder, ["seed_example.png", "guests_by_format.png", "growth.png",
                                             "amplification.png"]),
                  ["Formats' layouts are checked byte for byte against qemu-img; overlay2 against a real overlayfs.",
                   "A full clone is one standalone image per guest holding its whole chain, as qemu-img "
                   "convert writes it (data in both the base and an overlay counted once).",
                   "Columns ending in _total are for all guests together; _per_guest for one guest.",
                   "Sizes are bytes on the host (what du counts, less the file system's own extent blocks), "
                   "on host_fs.block blocks: raw images, VHDX payload blocks and VMDK grain tables are sparse "
                   "and hold only what was written; the _apparent_ columns are the file lengths (what ls shows).",
                   "A full clone is as sparse as qemu-img convert writes it (4 KiB pieces of zeros left out).",
                   "A differencing VHDX counts each sector bitmap block it writes in whole (1 MiB per 4 GiB of the "
                   "disk written in): an upper bound, since QEMU cannot write one to check against.",
                   "Snapshot chains (qcow2 and VMDK, the formats QEMU chains): file lengths after qemu-img "
                   "commit and rebase, checked against qemu-img 7.2 on random chains; every write is taken to "
                   "change the data it overwrites (rebase copies only what differs)."],
                  sentences=_snapshot_sentences(table))


def _snapshot_sentences(table: pd.DataFrame) -> list[str]:
    """The snapshot-chain part in words: per format, the overlays before and after a commit, and flattened."""
    part = table[table["experiment"] == "snapshot-chain"]
    out = []
    for system, rows in part.groupby("system", sort=False):
        m = rows.set_index("measure")["bytes"] / 1e9
        kept = " (VMDK cannot empty the snapshot: it keeps its size)" if system == "vmdk" else ""
        before, after = m["overlays_apparent_bytes_per_guest"], m.get("after_commit_apparent_bytes_per_guest")
        commit = ("committing the snapshot: not modelled for these clusters (QEMU discards them one by one)"
                  if after is None else f"committing the snapshot leaves {after:.3g} GB{kept}")
        flat = m.get("flattened_apparent_bytes_per_guest")
        flattened = ("" if flat is None else
                     f"; flattening the guest's chain into one image (qemu-img rebase -b \"\") {flat:.3g} GB")
        internal = m.get("internal_snapshot_apparent_bytes_per_guest")
        inside = "" if internal is None else f"; an internal snapshot instead, {internal:.3g} GB"
        out.append(f"{system}: a guest's disk with a snapshot on top takes {before:.3g} GB; {commit}"
                   f"{flattened}{inside} (file lengths, per guest).")
    return out


def _sweep_report(folder: Path) -> Report:
    """The report of a sweep folder: the primary metric (or throughput) and p99 latency per point, over replications."""
    try:
        table = pd.read_parquet(folder / "sweep.parquet")
    except Exception as exc:
        raise ResultsError(f"{folder / 'sweep.parquet'} cannot be read ({type(exc).__name__})") from None
    params = [c for c in table.columns if c not in
              ("point", "variant", "replication", "guest", "metric", "layer", "station", "value", "unit")]
    try:
        from virtsim.experiments.sweep_plots import series_label, sweep_curves

        x, series, curves = sweep_curves(table)
    except ValueError:
        main = table[(table["layer"] == "all") & (table["station"] == "all") & (table["guest"] != "host")]
        apart = [c for c in ("variant", "guest") if main[c].nunique() > 1]  # never averaged together
        answer = main[main["metric"].isin(["throughput_rps", "latency_p99_s"])].pivot_table(
            index=["point", *params, *apart], columns="metric", values="value", aggfunc="mean").reset_index()
    else:
        from virtsim.experiments.sweep import read_parameter_units

        answer = curves.pivot_table(index=[*series, x], columns="metric", values="mean", sort=False).reset_index()
        for column in series:
            answer[column] = answer[column].map(series_label)
        unit = read_parameter_units(folder).get(x)
        answer = answer.round(6).rename(columns={x: f"{x} ({unit})"} if unit else {})
    return Report("Sweep", f"How do the results change over {', '.join(params)}?", answer,
                  _existing(folder, ["sweep.png"]), ["Means over replications; sweep.parquet holds every row."])


def _blank_missing(table: pd.DataFrame) -> pd.DataFrame:
    """Empty cells, not ``nan``, where a text column has no value (no note, no promise bound)."""
    out = table.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]) or out[column].isna().all():
            out[column] = out[column].astype(object).where(out[column].notna(), "")
    return out


def _plan_sentences(fleet: pd.DataFrame, services: pd.DataFrame) -> list[str]:
    """The plan's answer in words: the cheapest option, what binds it, and each promise's p99."""
    if "cheapest" in fleet.columns:
        cheapest = fleet["cheapest"].astype(bool)
    else:  # a folder written before options were marked: the feasible rows of least cost
        cost = fleet["cost"] if "cost" in fleet.columns else pd.Series(float("nan"), index=fleet.index)
        cheapest = cost.notna() & (cost == cost.min())
    if not cheapest.any():
        return ["No option keeps every service on a host and every p99 promise: see the notes per row."]
    out = []
    for _, best in fleet[cheapest].iterrows():
        bound = str(best.get("slo_bound", "") or "")
        binds = (f"the p99 promise of {bound} (hosts at most {100 * float(best['utilization_cap']):.0f}% used)"
                 if bound and bound != "nan" and "utilization_cap" in best else f"{best['bottleneck']}")
        out.append(f"Cheapest: {int(best['hosts'])} {best['host_type']} hosts with {best['stack']} "
                   f"(cost {float(best['cost']):.4g}); what binds it: {binds}.")
        if "p99_s" in services.columns:
            kept = services[(services["stack"] == best["stack"]) & (services["host_type"] == best["host_type"])
                            & services["p99_s"].notna()]
            out += [f"{r['service']}: p99 {1e3 * float(r['p99_s']):.3g} ms on its worst simulated host "
                    f"(promise {1e3 * float(r['p99_promise_s']):.3g} ms, {int(r['p99_requests'])} requests)"
                    for _, r in kept.iterrows()]
    return out


def _plan_report(folder: Path) -> Report:
    """The report of a ``virtsim plan`` folder: hosts per stack and host type, and the cheapest option."""
    fleet = _read_csv(folder / "plan.csv")
    services = _read_csv(folder / "plan_services.csv")
    cols = [c for c in ("host_type", "stack", "hosts", "cost", "cheapest", "guests_per_host_mean", "bottleneck",
                        "slo_bound", "utilization_cap", "peak_utilization", "fleet_startup_s", "note")
            if c in fleet.columns]
    return Report("Capacity plan", "How many hosts of each type does each stack need for this mix of services?",
                  _blank_missing(fleet[cols].round(3)), _existing(folder, ["plan.png"]),
                  ["Hosts are packed under a utilization cap (1 - headroom) on every host resource and every "
                   "guest's own stations; where a service promises a p99, one host of each mix of guests holding "
                   "it is simulated (the worst p99 kept) and the cap lowered until every promise holds. "
                   "plan_services.csv gives each service's needs."],
                  sentences=_plan_sentences(fleet, services), **_stacks(fleet["stack"]))


BUILDERS: dict[str, Callable[[Path], Report]] = {
    "calibrate": _calibration_report,
    "overhead": _overhead_report,
    "density": _density_report,
    "disk": _disk_report,
    "sweep": _sweep_report,
    "run": _run_report,
    "plan": _plan_report,
}


READS = {"run": ["summary.csv", "provenance.json"], "overhead": ["overhead.csv"],
         "calibrate": ["calibration.csv"], "density": ["density_summary.csv"], "disk": ["disk.csv"],
         "sweep": ["sweep.parquet"], "plan": ["plan.csv", "plan_services.csv"]}
"""The files each report reads: they must be among those its manifest vouches for."""


def build_report(folder: Path) -> Report:
    """The report of the experiment that wrote ``folder``, named by its verified manifest.

    Every file the report reads must be listed (and verified) in the manifest; content that is
    not what the experiment writes (a file edited and its manifest with it) is a
    :class:`ResultsError`, never a traceback.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    experiment = str(manifest["experiment"])
    if experiment not in BUILDERS:
        raise ResultsError(f"{folder} holds results of `virtsim {experiment}`, which has no report")
    unlisted = [name for name in READS[experiment] if name not in manifest["files"]]
    if unlisted:
        raise ResultsError(f"{folder / unlisted[0]} is not vouched for by {folder / 'manifest.json'}; "
                           "rerun the experiment")
    try:
        return BUILDERS[experiment](folder)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ResultsError(f"{folder}: its files do not hold what `virtsim {experiment}` writes "
                           f"({type(exc).__name__}: {exc}); rerun the experiment") from None


def _profile_rows(names: list[str]) -> list[Profile]:
    """The layer and hardware profiles of these names (unknown names are left out)."""
    every = {**load_profiles("virtsim.models.virt"), **load_profiles("virtsim.models.hardware")}
    return [every[n] for n in names if n in every]


# Shared by the single and the combined report (rendered unescaped: they are our own markup).
_CSS = """<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1a202c; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #cbd5e0; padding: 0.3em 0.6em; text-align: right; }
th { background: #edf2f7; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #e2e8f0; margin: 0.5em 0; }
.src { color: #4a5568; font-size: 0.85em; text-align: left; }
</style>"""
_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-figures-loaded", String(ok));
});
</script>"""
_GRADES_NOTE = ("Share of the stack's parameters taken from a measurement or a documented setup (the rest are "
                "assumptions), and the worst grade of the published rows they cite (A best); below half sourced "
                "is marked GUESSED: read those numbers as estimates.")


def _render(template: str, html_page: bool, **values: object) -> str:
    """A report template rendered (escaped for HTML) with the shared style, script and notes."""
    from markupsafe import Markup

    env = Environment(undefined=StrictUndefined, autoescape=html_page)
    return env.from_string(template).render(css=Markup(_CSS), script=Markup(_SCRIPT), grades_note=_GRADES_NOTE,
                                            **values)


def _write_texts(folder: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Each text atomically into ``folder``, by file name."""
    out = {}
    for name, text in texts.items():
        def write(tmp: Path, text: str = text) -> None:
            tmp.write_text(text, encoding="utf-8")

        out[name] = atomic_write(folder / name, write)
    return out


_MD = """# {{ r.title }}

**Question.** {{ r.question }}

## The answer

{% for a in r.sentences %}- {{ a }}
{% endfor %}
{{ answer_md }}

{% for f in r.figures %}![{{ f.stem }}]({{ f.name }})

{% endfor %}
## Assumptions

{% for a in r.assumptions %}- {{ a }}
{% endfor %}
{% if grades_md %}## How well each stack is calibrated

{{ grades_note }}

{{ grades_md }}
{% endif %}
{% if profiles %}## Profiles used

{% for p in profiles %}### {{ p.name }} ({{ p.kind }})

{{ p.description }}

| parameter | value | source |
|---|---|---|
{% for k, v in p.params.items() %}| {{ k }} | {{ v }} | {{ p.sources.get(k, "") }} |
{% endfor %}
{% endfor %}{% endif %}"""

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ r.title }}</title>
{{ css }}</head>
<body data-figures-total="{{ figures|length }}" data-figures-loaded="0">
<h1>{{ r.title }}</h1>
<p><strong>Question.</strong> {{ r.question }}</p>
<h2>The answer</h2>
{% if r.sentences %}<ul>{% for a in r.sentences %}<li>{{ a }}</li>{% endfor %}</ul>{% endif %}
{{ answer_html }}
{% for name, data in figures %}<figure><img alt="{{ name }}" src="data:image/png;base64,{{ data }}"></figure>
{% endfor %}
<h2>Assumptions</h2><ul>{% for a in r.assumptions %}<li>{{ a }}</li>{% endfor %}</ul>
{% if grades_html %}<h2>How well each stack is calibrated</h2>
<p>{{ grades_note }}</p>
{{ grades_html }}{% endif %}
{% if profiles %}<h2>Profiles used</h2>
{% for p in profiles %}<h3>{{ p.name }} ({{ p.kind }})</h3><p>{{ p.description }}</p>
<table><tr><th>parameter</th><th>value</th><th>source</th></tr>
{% for k, v in p.params.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td>
<td class="src">{{ p.sources.get(k, "") }}</td></tr>{% endfor %}</table>{% endfor %}{% endif %}
{{ script }}
</body></html>
"""


def write_report(folder: Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``; returns their paths."""
    folder = Path(folder)
    report = build_report(folder)
    profiles = _profile_rows(report.profiles)
    grades = grades_table(report.stacks) if report.stacks else None
    md = _render(_MD, False, r=report, answer_md=_md_table(report.answer), profiles=profiles,
                 grades_md=_md_table(grades) if grades is not None else "")
    figures = [(f.stem, base64.b64encode(f.read_bytes()).decode("ascii")) for f in report.figures]
    page = _render(_HTML, True, r=report, answer_html=_html_table(report.answer), figures=figures, profiles=profiles,
                   grades_html=_html_table(grades) if grades is not None else "")
    return _write_texts(folder, {"report.md": md, "report.html": page})


_COMBINED_MD = """# {{ title }}

## The answers

{% for r, name in sections %}**{{ r.title }}** ({{ name }}): {{ r.question }}

{% for a in r.sentences %}- {{ a }}
{% else %}- See the table in its section below.
{% endfor %}
{% endfor %}
{% for r, name, table, figures in details %}## {{ r.title }} ({{ name }})

**Question.** {{ r.question }}

{{ table }}

{% for f in figures %}![{{ f }}]({{ f }})

{% endfor %}{% for a in r.assumptions %}- {{ a }}
{% endfor %}
{% endfor %}{% if grades_md %}## How well each stack is calibrated

{{ grades_note }}

{{ grades_md }}
{% endif %}"""

_COMBINED_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
{{ css }}</head>
<body data-figures-total="{{ figure_count }}" data-figures-loaded="0">
<h1>{{ title }}</h1>
<h2 id="answers">The answers</h2>
{% for r, name in sections %}<p><strong>{{ r.title }}</strong> ({{ name }}): {{ r.question }}</p>
<ul>{% for a in r.sentences %}<li>{{ a }}</li>{% else %}<li>See the table in its section below.</li>{% endfor %}</ul>
{% endfor %}
{% for r, name, table, figures in details %}<h2>{{ r.title }} ({{ name }})</h2>
<p><strong>Question.</strong> {{ r.question }}</p>
{{ table }}
{% for alt, data in figures %}<figure><img alt="{{ alt }}" src="data:image/png;base64,{{ data }}"></figure>
{% endfor %}<ul>{% for a in r.assumptions %}<li>{{ a }}</li>{% endfor %}</ul>
{% endfor %}
{% if grades_html %}<h2>How well each stack is calibrated</h2>
<p>{{ grades_note }}</p>
{{ grades_html }}{% endif %}
{{ script }}
</body></html>
"""


def write_combined_report(folders: list[Path], out: Path) -> dict[str, Path]:
    """One report of several results folders in ``out``: an answer section with each
    experiment's sentences first, then each one's table, figures and assumptions, and the
    calibration grade of every stack any of them ran. Figures are copied beside report.md
    (named after their folder) and embedded in report.html. ``out`` must not be a results folder."""
    import shutil

    out = Path(out)
    if (out / "manifest.json").exists():
        raise ResultsError(f"--out {out} holds an experiment's results; write the combined report elsewhere")
    reports = [(build_report(Path(f)), Path(f)) for f in folders]
    names = [f.name or str(f) for _, f in reports]
    if len(set(names)) < len(names):
        names = [str(f) for _, f in reports]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    details_md, details_html, count = [], [], 0
    for (r, _), name in zip(reports, names, strict=True):
        copied = []
        for fig in r.figures:
            target = out / f"{name.replace('/', '_')}-{fig.name}"
            shutil.copyfile(fig, target)
            copied.append(target.name)
        details_md.append((r, name, _md_table(r.answer), copied))
        details_html.append((r, name, _html_table(r.answer),
                             [(f.stem, base64.b64encode(f.read_bytes()).decode("ascii")) for f in r.figures]))
        count += len(r.figures)
    stacks = list(dict.fromkeys(s for r, _ in reports for s in r.stacks))
    grades = grades_table(stacks) if stacks else None
    title = "virtsim report: " + "; ".join(r.title for r, _ in reports)
    sections = [(r, name) for (r, _), name in zip(reports, names, strict=True)]
    md = _render(_COMBINED_MD, False, title=title, sections=sections, details=details_md,
                 grades_md=_md_table(grades) if grades is not None else "")
    page = _render(_COMBINED_HTML, True, title=title, sections=sections, details=details_html, figure_count=count,
                   grades_html=_html_table(grades) if grades is not None else "")
    return _write_texts(out, {"report.md": md, "report.html": page})


def _cell_text(value: object) -> str:
    """A table cell as people read it: whole numbers with thousands separators, others to four
    significant digits (no 16-digit seconds), missing values empty."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:  # 46,156, not 4.616e+04
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3g}"


def _md_table(df: pd.DataFrame) -> str:
    """A Markdown (pipe) table; cells with a pipe have it escaped."""
    def cell(v: object) -> str:
        return _cell_text(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> object:
    """An HTML table of ``df`` (cells escaped, as :func:`_cell_text` writes them), marked safe for the template."""
    from markupsafe import Markup

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell_text(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    # in a box that scrolls sideways: a wide table (a plan's 12 columns) stays inside the page
    return Markup(f"<div class=\"wide\"><table><tr>{head}</tr>{body}</table></div>")


def write_run_report(folder: Path) -> Path:
    """The report of a ``virtsim run`` folder (Markdown path; the HTML is written beside it)."""
    return write_report(folder)["report.md"]
