"""The ``run`` experiment: one scenario (a stack or a comparison of stacks) run and summarised.

``virtsim run [SCENARIO.toml] --out DIR`` writes runs.parquet (every replication, guest, metric,
layer and station), summary.csv (means with 95% intervals), provenance.json and a report. The
scenario, the run and the tables live in :mod:`~virtsim.experiments.scenario`,
:mod:`~virtsim.experiments.runner` and :mod:`~virtsim.experiments.outputs`; this module is the
experiment's command and its report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from virtsim.experiments.outputs import ResultFolder, ResultsError, atomic_write, write_json
from virtsim.experiments.plots import plot_attribution, plot_latency
from virtsim.experiments.registry import Experiment
from virtsim.experiments.report import (
    Report,
    engine_text,
    read_results_csv,
    stacks_fields,
    write_run_report,
)
from virtsim.experiments.scenario import stack_label

if TYPE_CHECKING:
    from virtsim.experiments.runner import RunOutput

__all__ = ["EXPERIMENT", "command", "report"]


def command(args: argparse.Namespace) -> int:
    """``virtsim run``: validate, check the folder, run, publish, report; prints where each file went."""
    from virtsim.experiments import api
    from virtsim.experiments.scenario import default_scenario, load_scenario

    scenario = load_scenario(args.scenario or default_scenario())
    if scenario.sweep is not None:
        print("virtsim: note: this scenario declares a [sweep]; `virtsim run` runs its base point, "
              "`virtsim sweep` runs every point", file=sys.stderr)
    scenario = api.with_run_overrides(scenario, args.replications, args.seed)
    scenario.check_measurable()  # before the folder is touched
    folder = ResultFolder(Path(args.out), "run", scenario.model_dump(mode="json", by_alias=True), args.force)
    result = api.run(scenario, progress=not args.quiet, workers=args.workers)
    paths = result.publish(folder)
    written = write_run_report(folder.out)
    shown = {**paths, "report": written}
    width = max(map(len, shown))
    for name, path in shown.items():
        print(f"{name:>{width}}: {path}")
    for sentence in _overload_sentences(result.summary):  # the report says so too; the terminal should
        print(f"virtsim: warning: {sentence}", file=sys.stderr)
    return 0


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


def _entry_stacks(provenance: dict[str, object]) -> dict[str, str] | None:
    """Each ``[[guests]]`` entry's own stack label, for a scenario run as written (None with a
    ``[compare]`` table, where the compared stacks label the runs, or if the provenance does
    not say)."""
    from pydantic import ValidationError

    from virtsim.experiments.scenario import GuestSpec

    scenario = provenance.get("scenario")
    if not isinstance(scenario, dict) or scenario.get("compare"):
        return None
    try:
        specs = [GuestSpec.model_validate(g) for g in scenario["guests"]]
        return {spec.name: spec.build_stack().label for spec in specs}
    except (KeyError, TypeError, AttributeError, ValidationError, ValueError):
        return None


def write_run_output(out_dir: Path, output: RunOutput) -> dict[str, Path]:
    """Write ``runs.parquet``, ``summary.csv``, ``provenance.json`` and the latency and
    attribution figures into ``out_dir``; the files written, by name."""
    out_dir = Path(out_dir)
    prov = output.provenance
    entries, own = _guest_entries(prov), _entry_stacks(prov)
    return {
        "runs": atomic_write(out_dir / "runs.parquet", lambda t: output.runs.to_parquet(t, index=False)),
        "summary": atomic_write(out_dir / "summary.csv", lambda t: output.summary.to_csv(t, index=False)),
        "provenance": write_json(out_dir / "provenance.json", prov),
        "latency": plot_latency(output.summary, out_dir / "latency.png", entries, own),
        "attribution_mean": plot_attribution(output.summary, out_dir / "attribution_mean.png", "time_mean_s",
                                             entries, own),
        "attribution_tail": plot_attribution(output.summary, out_dir / "attribution_tail.png", "tail_time_mean_s",
                                             entries, own),
    }


def report(folder: Path) -> Report:
    """The report of a ``virtsim run`` folder: its throughput and latency table, and the figures
    its run drew."""
    summary = read_results_csv(folder / "summary.csv")
    try:
        prov = json.loads((folder / "provenance.json").read_text())
    except (OSError, ValueError):
        raise ResultsError(f"{folder / 'provenance.json'} is missing or not JSON; rerun `virtsim run`") from None
    entries, own = _guest_entries(prov), _entry_stacks(prov)
    entry_of = {g: name for name, guests in (entries or {}).items() for g in guests}
    main = summary[(summary["layer"] == "all") & (summary["station"] == "all") & (summary["guest"] != "host")]
    rows = []
    for (variant, guest), g in main.groupby(["stack", "guest"], sort=False):
        m = g.set_index("metric")
        def ci(metric: str, scale: float = 1e6, m: pd.DataFrame = m) -> str:
            if metric not in m.index:
                return ""
            r = m.loc[metric]
            half = (r["ci_high"] - r["mean"]) * scale
            return f"{r['mean'] * scale:.1f} ± {half:.1f}" if half == half else f"{r['mean'] * scale:.1f}"
        stack = (own or {}).get(entry_of.get(str(guest), ""), variant)  # as written: the guest's own stack
        rows.append({"stack": stack, "guest": guest, "throughput (req/s)": ci("throughput_rps", 1.0),
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
        assumptions=[f"{run['duration']} s simulated per replication, {run['warmup']} s warm-up discarded, "
                     f"{run['replications']} replications, seed {run['seed']}; ± is a 95% Student-t interval.",
                     f"Engine: {engine_text(prov.get('engine'))}.", *_cores_note(scenario)],
        sentences=sentences,
        **stacks_fields(pd.Series(stacks)),
    )


def _overload_sentences(summary: pd.DataFrame) -> list[str]:
    """A warning per stack whose open-loop load reaches a resource's capacity: its queue grows for
    as long as the run lasts, so its latencies measure the run's length, not the stack."""
    offered = summary[summary["metric"] == "offered_utilization"]
    out = []
    for variant, part in offered.groupby("stack", sort=False):
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


EXPERIMENT = Experiment("run", "How does each stack perform on this scenario's workload?", command, report,
                        ("summary.csv", "provenance.json"), tables=("runs.parquet", "summary.csv", "provenance.json"),
                        figures=("latency.png", "attribution_mean.png", "attribution_tail.png"))
