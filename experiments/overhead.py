"""The overhead experiment: the same workloads on each stack, as ratios to bare metal.

``virtsim overhead --out DIR`` runs each workload once per stack (default: bare metal, kvm,
firecracker, virtualbox, docker, docker-nat, and docker-nat inside a kvm guest) on common random
numbers, and writes:

- ``overhead.csv``: stack, workload, metric, value with its 95% interval, the bare-metal value and
  the ratio (for latencies a ratio above 1 is worse, for throughputs below 1);
- ``attribution.csv``: per stack and workload, how much mean and tail (slowest 1%) latency each
  layer and station adds over bare metal;
- ``overhead.png`` (grouped bars of ratios) and ``latency_cdf.png`` (latency CDFs per workload).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import pandas as pd

from virtsim.experiments.outputs import ResultFolder, atomic_write
from virtsim.experiments.registry import Experiment
from virtsim.experiments.report import Report, read_results_csv, stacks_fields
from virtsim.experiments.runner import run_scenarios
from virtsim.experiments.scenario import ScenarioError, parse_scenario, stack_from_text, stacks_from_text
from virtsim.models.hardware.host import HOST_PRESETS
from virtsim.models.virt.stack import Stack

__all__ = ["DEFAULT_STACKS", "EXPERIMENT", "WORKLOADS", "command", "overhead", "report"]

DEFAULT_STACKS: list[Stack] = stacks_from_text("bare-metal,kvm,firecracker,virtualbox,docker,docker-nat,docker-nat/kvm")
BARE_METAL = stack_from_text("bare-metal")
HOST = HOST_PRESETS["felter"]  # the study most rows of published.csv come from

# workload name -> (workload table, primary metric, duration, warm-up)
WORKLOADS: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "linpack": ({"kind": "linpack", "threads": 2}, "gflops", "3s", "0.3s"),
    "randomaccess": ({"kind": "randomaccess", "threads": 2}, "gups", "0.5s", "0.05s"),
    "fio-randread": ({"kind": "fio", "rw": "randread", "bs": "4KiB", "jobs": 2, "iodepth": 8}, "iops", "0.3s", "0.03s"),
    "netperf-rr": ({"kind": "netperf-rr"}, "round_trip_us", "0.3s", "0.03s"),
    "stream-tcp": ({"kind": "stream-tcp"}, "throughput_Mbps", "0.2s", "0.02s"),
    "kv-store": ({"kind": "kv-store", "connections": 8}, "requests_per_s", "0.3s", "0.03s"),
    "oltp": ({"kind": "oltp", "threads": 16}, "tps", "0.3s", "0.03s"),
    # an open loop: its throughput is the offered 800/s on every stack, so its latency is the measure
    "web": ({"kind": "web", "rate": "800/s"}, "latency_mean_s", "1s", "0.1s"),
}
LOWER_IS_BETTER = {"round_trip_us"}


def _scenario(name: str, stacks: list[Stack], replications: int, seed: int) -> dict[str, Any]:
    """The comparison scenario (as a dict) of one workload over ``stacks``, on the overhead experiment's host."""
    workload, _, duration, warmup = WORKLOADS[name]
    return {"name": name, "run": {"duration": duration, "warmup": warmup, "replications": replications,
                                  "seed": seed, "engine": "kernel", "latency_cdf": True},
            "host": HOST, "guests": [{"name": "g", "stack": ["bare-metal"], "workload": copy.deepcopy(workload)}],
            "compare": {"stacks": stacks}}


def overhead(stacks: list[Stack] | None = None, workloads: list[str] | None = None, replications: int = 2,
             seed: int = 1, workers: int = 1, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run the experiment on ``stacks`` (default :data:`DEFAULT_STACKS`; bare metal is always
    run, first, as the baseline); returns the overhead, attribution and raw summary tables."""
    stacks = stacks or DEFAULT_STACKS
    names = workloads or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    # bare metal is the baseline, first, once, wherever the caller listed it (review 10 B3)
    stacks = [BARE_METAL, *(s for s in stacks if s != BARE_METAL)]
    scenarios = [parse_scenario(_scenario(name, stacks, replications, seed), name) for name in names]
    outputs = run_scenarios(scenarios, progress=progress, workers=workers, desc="overhead")
    summary = pd.concat([output.summary.assign(workload=name) for name, output in zip(names, outputs, strict=True)],
                        ignore_index=True)
    return {"overhead": _ratios(summary), "attribution": _attribution(summary), "summary": summary}


def _ratios(summary: pd.DataFrame) -> pd.DataFrame:
    """Each stack's primary metric, p50 and p99 latency of each workload, with their ratio to bare metal's."""
    rows = []
    for name, (_, primary, _, _) in WORKLOADS.items():
        part = summary[(summary["workload"] == name) & (summary["layer"] == "all") & (summary["station"] == "all")
                       & (summary["guest"] == "g")]
        for metric in (primary, "latency_p50_s", "latency_p99_s"):
            m = part[part["metric"] == metric].set_index("stack")
            if m.empty or "bare-metal" not in m.index:
                continue
            base = float(m["mean"].loc["bare-metal"])
            lower_is_better = metric in LOWER_IS_BETTER or metric.startswith("latency")
            for stack, r in m.iterrows():
                ratio = r["mean"] / base if base else float("nan")
                rows.append(dict(stack=stack, workload=name, metric=metric, value=r["mean"], ci_low=r["ci_low"],
                                 ci_high=r["ci_high"], bare_metal=base, ratio=ratio, lower_is_better=lower_is_better,
                                 primary=metric == primary))
    return pd.DataFrame(rows)


def primary_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each workload's own measure (``primary``; in a table written before that
    column, the non-latency rows)."""
    if "primary" in table.columns:
        return table[table["primary"].astype(bool)]
    return table[~table["metric"].str.startswith("latency")]


def _attribution(summary: pd.DataFrame) -> pd.DataFrame:
    """The mean and tail latency each stack adds over bare metal, by layer and by station (``added_us``, us)."""
    rows = []
    part = summary[summary["metric"].isin(["time_mean_s", "tail_time_mean_s"]) & (summary["guest"] == "g")]
    for (name, metric), group in part.groupby(["workload", "metric"], sort=False):
        for by in ("layer", "station"):
            g = group[group[by] != "all"]
            table = g.pivot_table(index="stack", columns=by, values="mean", aggfunc="sum", sort=False).fillna(0.0)
            if "bare-metal" not in table.index:
                continue
            added = table.sub(table.loc["bare-metal"], axis=1)
            for stack, values in added.iterrows():
                if stack == "bare-metal":
                    continue
                for where, value in values.items():
                    if abs(value) > 1e-12:
                        rows.append(dict(stack=stack, workload=name, what="mean" if metric == "time_mean_s" else "tail",
                                         by=by, where=where, added_us=value * 1e6))
    # the columns even when no stack adds anything, so the file reads back as an empty table
    return pd.DataFrame(rows, columns=["stack", "workload", "what", "by", "where", "added_us"])


def write_overhead(out_dir: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write the tables (``NAME.csv``), ``overhead.png`` and ``latency_cdf.png`` into ``out_dir``; returns the paths."""
    from virtsim.experiments.overhead_plots import plot_cdfs, plot_ratios

    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for name, df in tables.items():

        def write(tmp: Path, df: pd.DataFrame = df) -> None:
            df.to_csv(tmp, index=False)

        paths[name] = atomic_write(out_dir / f"{name}.csv", write)
    paths["ratios_plot"] = plot_ratios(tables["overhead"], out_dir / "overhead.png")
    paths["cdf_plot"] = plot_cdfs(tables["summary"], out_dir / "latency_cdf.png")
    return paths


def command(args: argparse.Namespace) -> int:
    """``virtsim overhead``: check the arguments and the folder, run every workload on every stack, publish."""
    from virtsim.experiments import api

    try:
        stacks = stacks_from_text(args.stacks) if args.stacks else None
    except ValueError as exc:
        raise ScenarioError(f"--stacks: {exc}") from None
    names = args.workloads.split(",") if args.workloads else None
    api.check_overhead_args(stacks, names)  # before the folder is touched
    inputs = api.overhead_inputs(stacks, names, args.replications, args.seed)
    folder = ResultFolder(Path(args.out), "overhead", inputs, args.force)
    result = api.overhead(stacks, names, replications=args.replications, seed=args.seed, workers=args.workers,
                          progress=not args.quiet)
    for name, path in result.publish(folder).items():
        print(f"{name:>12}: {path}")
    return 0


def report(folder: Path) -> Report:
    """The report of a ``virtsim overhead`` folder: each workload's primary ratio to bare metal, per stack."""
    table = read_results_csv(folder / "overhead.csv")
    primary = primary_rows(table)
    answer = primary.pivot_table(index="workload", columns="stack", values="ratio", sort=False).round(3).reset_index()
    return Report("Overhead against bare metal",
                  "How much does each virtualization stack cost each workload, relative to bare metal?",
                  answer, assumptions=[
                   "Ratios of each workload's own metric (GFLOPS, IOPS, round trip, ...) to bare metal's; "
                   "for latency-like metrics above 1 is worse. A workload at a fixed request rate (web) is "
                   "measured by its mean latency: its throughput is the rate it is offered on every stack.",
                   "attribution.csv splits each stack's added mean and tail latency by layer and station.",
                   "Same CPUs for every stack: each VM has as many vCPUs as the host has hardware threads "
                   "(cores x SMT threads), a nested VM as many as the VM around it, unless its stack sets "
                   "vcpus (its label then says so)."],
                  sentences=_overhead_sentences(table), **stacks_fields(table["stack"]))


def _overhead_sentences(table: pd.DataFrame) -> list[str]:
    """Per stack, its worst workload: the largest loss against bare metal on a workload's own metric."""
    primary = primary_rows(table)
    primary = primary[primary["stack"] != "bare-metal"]
    out = []
    for stack, part in primary.groupby("stack", sort=False):
        loss = part["ratio"].where(part["lower_is_better"].astype(bool), 1 / part["ratio"])  # > 1: slower
        worst = part.iloc[int(loss.to_numpy().argmax())]
        out.append(f"{stack}: worst on {worst['workload']} ({worst['metric']} {float(worst['ratio']):.3g}x bare "
                   f"metal's); median slowdown over the workloads {float(loss.median()):.3g}x.")
    return out


EXPERIMENT = Experiment("overhead", "How much does each virtualization stack cost each workload, relative to "
                        "bare metal?", command, report, ("overhead.csv",),
                        tables=("overhead.csv", "attribution.csv", "summary.csv"),
                        figures=("overhead.png", "latency_cdf.png"))
