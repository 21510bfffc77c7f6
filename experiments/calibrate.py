"""Calibration: reproduce the published measurements and say how close each comes.

``virtsim calibrate --out DIR`` runs one small scenario per reproducible row of
``shared/calibration/published.csv`` on the host of its study, and writes ``DIR/calibration.csv``
(row, published, simulated, relative error; for rows with a native counterpart both ratios to
native and their difference in points) and ``DIR/calibration.png`` (simulated against published).
Rows the model does not reproduce are listed too, each with the reason.

The targets (:data:`TARGET_REL`): grade-A rows within 10% on absolute values and within 5 points
on ratios to bare metal; grade B within 20%, C within 25%. :data:`KNOWN_OUTSIDE` names the grade-A
rows that miss, and why; a test keeps it true.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from virtsim.experiments.grades import PACKAGED_FOUND, PACKAGED_PUBLISHED
from virtsim.experiments.outputs import ResultFolder, atomic_write
from virtsim.experiments.registry import Experiment
from virtsim.experiments.report import Report, read_results_csv, stacks_fields
from virtsim.experiments.scenario import parse_scenario, parse_stack
from virtsim.models.hardware.host import HOST_PRESETS
from virtsim.models.virt.stack import LayerEntry, Stack

__all__ = ["CASES", "EXPERIMENT", "KNOWN_OUTSIDE", "NOT_REPRODUCED", "PACKAGED_PUBLISHED", "TARGET_REL", "calibrate",
           "checked_published", "citing_parameters", "command", "find_published", "fitted_rows", "published_rows",
           "report", "write_calibration"]

RUN = {"linpack": ("4s", "0.5s"), "stream": ("1s", "0.1s"), "randomaccess": ("1s", "0.1s"),
       "stream-tcp": ("0.3s", "0.03s"), "netperf-rr": ("0.5s", "0.05s"), "fio": ("0.4s", "0.05s"),
       "kv-store": ("0.5s", "0.05s"), "nanobench": ("0.02s", "0.002s")}


@dataclass(frozen=True)
class Case:
    """One published row and the scenario that reproduces it (``stack``: built and checked when
    the case is declared, so a mistyped profile fails at import, not minutes into a run)."""

    row: str
    stack: Stack
    workload: dict[str, Any]
    metric: str
    host: str = "felter"
    native: str | None = None  # the row of the same measurement on bare metal
    scale: float = 1.0  # published value x scale = value in the metric's unit
    replications: int = 2
    note: str = ""
    added: bool = False  # the row is the cost added over bare metal: simulate both, subtract
    footprint: bool = False  # the row is the VM layer's memory overhead (MiB): computed, not simulated

    def scenario(self, seed: int) -> dict[str, Any]:
        """The scenario (a dict) that reproduces the row: its study's host, one guest ``g``, on the kernel engine."""
        duration, warmup = RUN[self.workload["kind"]]
        return {"name": self.row, "run": {"duration": duration, "warmup": warmup,
                                          "replications": self.replications, "seed": seed, "engine": "kernel"},
                "host": HOST_PRESETS[self.host],
                "guests": [{"name": "g", "stack": self.stack, "workload": self.workload}]}


def _family(native: str, workload: dict[str, Any], metric: str, rows: dict[str, Sequence[LayerEntry]],
            **kw: Any) -> list[Case]:
    """One case per row of ``rows`` (row -> its stack's layers); every row but ``native`` itself
    has ``native`` as its bare metal."""
    return [Case(row, parse_stack(stack), workload, metric, native=None if row == native else native, **kw)
            for row, stack in rows.items()]


BARE_METAL = parse_stack(["bare-metal"])


KVM16 = [{"profile": "kvm", "vcpus": 16}]
KVM8 = [{"profile": "kvm", "vcpus": 8}]
KVM1 = [{"profile": "kvm", "vcpus": 1}]
# The Firecracker paper's host kernel (4.14) polls a halted vCPU for 200 us: its setup, not a fit.
QEMU_2019 = [{"profile": "kvm", "halt_poll": "200us"}]
FIO_RAND = {"kind": "fio", "bs": "4KiB", "jobs": 8, "iodepth": 16}
# VMware's sample overhead memory table: guest memory (MiB) x vCPUs, each cell a found.csv row
_ESXI_OVERHEAD = [Case(f"vsphere65-ovh-{f'{mem // 1024}g' if mem >= 1024 else f'{mem}m'}-{vcpus}v",
                       parse_stack([{"profile": "esxi", "vcpus": vcpus, "guest_memory": f"{mem}MiB"}]), {},
                       "vmm_overhead_MiB", footprint=True)
                  for mem in (256, 1024, 4096, 16384) for vcpus in (1, 2, 4, 8)]
CASES: list[Case] = [
    *_ESXI_OVERHEAD,
    *_family("felter-linpack-native", {"kind": "linpack", "threads": 16}, "gflops", {
        "felter-linpack-native": ["bare-metal"], "felter-linpack-docker": ["docker"],
        "felter-linpack-kvm-tuned": KVM16,  # 32 vCPUs on 16 cores x 2 threads: 16 cores' worth
        # untuned: assumed QEMU's default CPU model (qemu64: no AVX), so HPL's BLAS takes its SSE2
        # code. The row's setup names only the flat topology and the floating vCPUs (their cost is
        # not modelled: the rest of the loss); the CPU model is an inference, not a stated setup.
        "felter-linpack-kvm-untuned": [{"profile": "kvm", "vcpus": 16, "cpu_model": "generic"}]}),
    *_family("felter-stream-triad-2s-native", {"kind": "stream", "threads": 16}, "bandwidth_GBps", {
        "felter-stream-triad-2s-native": ["bare-metal"], "felter-stream-triad-2s-docker": ["docker"],
        "felter-stream-triad-2s-kvm": KVM16}),
    # one socket: 8 threads with their memory bound to one node (numactl --cpunodebind/--membind)
    *_family("felter-stream-triad-1s-native", {"kind": "stream", "threads": 8, "numa_nodes": 1}, "bandwidth_GBps", {
        "felter-stream-triad-1s-native": ["bare-metal"], "felter-stream-triad-1s-docker": ["docker"],
        "felter-stream-triad-1s-kvm": KVM8}),
    *_family("felter-gups-1s-native", {"kind": "randomaccess", "threads": 8}, "gups", {
        "felter-gups-1s-native": ["bare-metal"], "felter-gups-1s-docker": ["docker"],
        "felter-gups-1s-kvm": KVM8}),
    *_family("felter-nuttcp-native", {"kind": "stream-tcp"}, "throughput_Mbps", {
        "felter-nuttcp-native": ["bare-metal"], "felter-nuttcp-docker-nat": ["docker-nat"],
        "felter-nuttcp-kvm": [{"profile": "kvm", "vcpus": 4}]}),
    *_family("felter-tcprr-native", {"kind": "netperf-rr"}, "round_trip_us", {
        "felter-tcprr-native": ["bare-metal"], "felter-tcprr-kvm": KVM1}),
    *_family("felter-udprr-native", {"kind": "netperf-rr"}, "round_trip_us", {
        "felter-udprr-native": ["bare-metal"], "felter-udprr-kvm": KVM1}),
    *_family("felter-fio-randread-native", {**FIO_RAND, "rw": "randread"}, "iops", {
        "felter-fio-randread-native": ["bare-metal"], "felter-fio-randread-docker": ["docker"],
        "felter-fio-randread-kvm": [{"profile": "kvm", "vcpus": 16}]}),
    *_family("felter-fio-randwrite-native", {**FIO_RAND, "rw": "randwrite"}, "iops", {
        "felter-fio-randwrite-native": ["bare-metal"], "felter-fio-randwrite-docker": ["docker"],
        "felter-fio-randwrite-kvm": [{"profile": "kvm", "vcpus": 16}]}),
    *_family("felter-fio-seqread-native", {"kind": "fio", "rw": "read", "bs": "1MiB", "iodepth": 2},
             "bandwidth_MBps", {"felter-fio-seqread-native": ["bare-metal"], "felter-fio-seqread-docker": ["docker"],
                                "felter-fio-seqread-kvm": KVM16}, scale=1.024),
    *_family("felter-fio-seqwrite-native", {"kind": "fio", "rw": "write", "bs": "1MiB", "iodepth": 16},
             "bandwidth_MBps", {"felter-fio-seqwrite-native": ["bare-metal"],
                                "felter-fio-seqwrite-docker": ["docker"], "felter-fio-seqwrite-kvm": KVM16},
             scale=1.024),
    *_family("felter-redis-get-1c-native", {"kind": "kv-store", "connections": 1}, "requests_per_s", {
        "felter-redis-get-1c-native": ["bare-metal"], "felter-redis-get-1c-docker-host": ["docker"],
        "felter-redis-get-1c-docker-nat": ["docker-nat"], "felter-redis-get-1c-kvm": KVM1}),
    *_family("fc-fio-randread-qd1-metal", {"kind": "fio", "rw": "randread", "bs": "4KiB"}, "latency_us", {
        "fc-fio-randread-qd1-metal": ["bare-metal"], "fc-fio-randread-qd1-firecracker": ["firecracker"],
        "fc-fio-randread-qd1-qemu": QEMU_2019}, host="agache"),
    *_family("fc-iperf-loopback", {"kind": "stream-tcp", "direction": "out", "peer": "host"}, "throughput_Mbps", {
        "fc-iperf-loopback": ["bare-metal"], "fc-iperf-firecracker": ["firecracker"], "fc-iperf-qemu": QEMU_2019},
             host="agache", scale=1000.0),
    *_family("fc-fio-randwrite-qd1-metal", {"kind": "fio", "rw": "randwrite", "bs": "4KiB"}, "latency_us", {
        "fc-fio-randwrite-qd1-metal": ["bare-metal"], "fc-fio-randwrite-qd1-firecracker": ["firecracker"],
        "fc-fio-randwrite-qd1-qemu": QEMU_2019}, host="agache"),
]


def _nano(op: str, rows: dict[str, str]) -> list[Case]:
    """Adams & Agesen's nanobenchmark ``op`` on the P4 672: ``rows`` maps each row to its stack
    (native, binary translation, first-generation VT-x); published cycles, simulated ns."""
    native = rows.get("native")
    return [Case(row, parse_stack([stack]), {"kind": "nanobench", "op": op}, "ns_per_op", host="adams", scale=1 / 3.8,
                 native=None if row == native else native, replications=1)
            for row, stack in rows.items() if row != "native"]


AA06 = {"native": "bare-metal", "bt": "vmware-player-bt-2006", "hwvmm": "vmware-player-vtx-2006"}
CASES += [
    *_nano("pgfault", {"native": "aa06-nano-pgfault-native", "aa06-nano-pgfault-native": "bare-metal",
                       "aa06-nano-pgfault-bt": AA06["bt"], "aa06-nano-pgfault-hwvmm": AA06["hwvmm"]}),
    *_nano("divzero", {"native": "aa06-nano-divzero-native", "aa06-nano-divzero-native": "bare-metal",
                       "aa06-nano-divzero-bt": AA06["bt"], "aa06-nano-divzero-hwvmm": AA06["hwvmm"]}),
    *_nano("in-port80", {"native": "aa06-nano-in-port80-native", "aa06-nano-in-port80-native": "bare-metal",
                         "aa06-nano-in-port80-bt": AA06["bt"], "aa06-nano-in-port80-hwvmm": AA06["hwvmm"]}),
    *_nano("ptemod", {"aa06-nano-ptemod-bt": AA06["bt"], "aa06-nano-ptemod-hwvmm": AA06["hwvmm"]}),
    Case("aa06-nano-syscall-bt-added", parse_stack([AA06["bt"]]), {"kind": "nanobench", "op": "syscall"}, "ns_per_op",
         host="adams", scale=1 / 3.8, replications=1, added=True),
]

TARGET_REL = {"A": 0.10, "B": 0.20, "C": 0.25}
"""Relative error within which a reproduced row counts as met, by the row's grade: 10% for grade
A (measured, primary); wider for a figure quoted in a paper's text (B) or read in a secondary
transcription (C), whose own uncertainty is larger. Ratios to native (grade A): within 5 points."""

KNOWN_OUTSIDE = {
    "felter-redis-get-1c-kvm": "predicted 17% fast: the model's KVM round trip (fitted to TCP_RR, with the halted "
                               "vCPU's wake-up) adds 30 us to Redis as to netperf, but Redis in KVM lost 46 us; the "
                               "rest is Redis-specific and not modelled (a candidate: its event loop arms and "
                               "cancels a timer around every epoll_wait, an exit each without APICv)",
    "fc-fio-randread-qd1-qemu": "the kvm profile's I/O thread is fitted to Felter's virtio-blk (aio=native on a raw "
                                "device); the Firecracker paper's QEMU served a file on the host through another "
                                "path, not modelled",
    "felter-linpack-kvm-untuned": "predicted 12% fast (ratio 0.50 against 0.448): a generic CPU model halves the "
                                  "vector width (SSE2 for AVX); the rest of the loss, from the flat topology and the "
                                  "floating vCPUs the row names (HPL's threads two to a core, migrated between "
                                  "sockets), is not modelled",
}

NOT_REPRODUCED = {
    "felter-gups-2s-native": "32 OpenMP threads over two sockets give 3.6x fewer updates than 16 on one: the "
                             "authors' gups.c opens a parallel region per 128 updates (2.80 us a region on one "
                             "socket, 10.15 us on two), so two centralized libgomp barriers a region, their "
                             "cache-line handoffs crossing QPI, set the rate, not DRAM; fork-join barriers are "
                             "not modelled, and the handoff latencies found (E5-2690: 32 ns within a socket, "
                             "114 ns across, grade C) explain 2.4-7.3 us of the 7.35 us a region adds "
                             "(research/gups_felter_setup.md, coherence_and_omp_barriers.md)",
    "felter-gups-2s-docker": "as felter-gups-2s-native",
    "felter-gups-2s-kvm": "as felter-gups-2s-native",
    "fc-ping-loopback": "ping's one echo a second lets cores fall into deep idle states; their exit latency "
                        "(tens of microseconds) is not modelled",
    "fc-ping-firecracker": "as fc-ping-loopback: deep idle states after a second of idleness are not modelled",
    "fc-ping-qemu": "as fc-ping-loopback: deep idle states after a second of idleness are not modelled",
}


# Rows fitted by constants in code (the rest are cited by profile parameters).
FITTED_IN_CODE = {"felter-linpack-native": "models/workloads/catalog.py Linpack.efficiency",
                  **{f"aa06-nano-{op}-native": "models/workloads/catalog.py NANO_NATIVE_CYCLES"
                     for op in ("pgfault", "divzero", "in-port80")},
                  "felter-redis-get-1c-native": "models/workloads/catalog.py KvStore.loop_wake"}


def citing_parameters() -> dict[str, list[str]]:
    """For each row a profile parameter cites, the parameters (``profile.param``) citing it."""
    from virtsim.models.profiles import cited_rows, load_profiles

    citing: dict[str, list[str]] = {}
    for package in ("virtsim.models.virt", "virtsim.models.hardware"):
        for profile in load_profiles(package).values():
            for param, source in profile.sources.items():
                for row in cited_rows(source):
                    citing.setdefault(row, []).append(f"{profile.name}.{param}")
    return citing


def fitted_rows() -> set[str]:
    """Rows some parameter was fitted to: cited by a profile, or by a workload constant."""
    return set(FITTED_IN_CODE) | set(citing_parameters())



def find_published() -> Path:
    """The packaged ``published.csv`` (``--published PATH`` names another)."""
    if not PACKAGED_PUBLISHED.exists():
        raise FileNotFoundError(f"{PACKAGED_PUBLISHED} is missing from the installation; reinstall virtsim "
                                "or name the file with --published PATH")
    return PACKAGED_PUBLISHED


PUBLISHED_COLUMNS = ("id", "source", "platform", "workload", "config", "metric", "value", "unit", "grade")


def published_rows(path: Path) -> dict[str, dict[str, str]]:
    """The rows of published.csv by id, checked: the columns, a finite value per row, and every
    row the calibration reproduces present (but those of found.csv). A bad file is a
    :class:`ValueError` naming the problem."""
    rows, found = _table_rows(path), found_rows()
    absent = [c.row for c in CASES if c.row not in rows and c.row not in found]
    if absent:
        raise ValueError(f"{path} lacks rows the calibration reproduces: {absent}")
    return rows


def found_rows() -> dict[str, dict[str, str]]:
    """The rows of the packaged found.csv (measurements the project found itself), by id."""
    return _table_rows(PACKAGED_FOUND)


def _table_rows(path: Path) -> dict[str, dict[str, str]]:
    """The rows of a table in published.csv's columns by id, checked: the columns and a finite value per row."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in PUBLISHED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path} lacks the columns {missing}; is it published.csv?")
            rows = {}
            for line, row in enumerate(reader, start=2):
                try:
                    value = float(row["value"])
                except (TypeError, ValueError):
                    value = math.nan
                if not math.isfinite(value):
                    raise ValueError(f"{path} line {line}: value {row['value']!r} is not a finite number")
                rows[row["id"]] = row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path} cannot be read as published.csv ({exc})") from None
    return rows


def checked_published(path: Path | None, what: str = "--published") -> tuple[Path, dict[str, dict[str, str]]]:
    """The published.csv to use (``None``: the packaged one) and its rows, refused before any
    simulation if it is missing, not a regular file, not UTF-8 text or not published.csv
    (:class:`~virtsim.experiments.inputs.InputError`, naming the problem)."""
    from virtsim.experiments.inputs import InputError, read_input_text

    try:
        path = Path(path) if path is not None else find_published()
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    if "\x00" in read_input_text(path, what):  # missing, a FIFO, a folder, not UTF-8 ...
        raise InputError(f"{what} {path} holds a NUL byte; it is not a CSV file")
    try:
        return path, published_rows(path)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _vmm_overhead_mib(case: Case) -> float:
    """The memory overhead (MiB) of the case's VM layer, as the density footprint counts it."""
    from virtsim.models.virt.hypervisor import Type1

    (vm,) = [layer for layer in case.stack.layers if isinstance(layer, Type1)]
    return vm.params.vmm_overhead() / 2**20


def _simulate(case: Case, seed: int) -> float:
    """The case's simulated value of its metric (mean over replications); for an ``added`` row, less
    bare metal's; for a ``footprint`` row, the VM layer's memory overhead."""
    from virtsim.experiments.runner import run_scenario

    if case.footprint:
        return _vmm_overhead_mib(case)

    def run(case: Case) -> float:
        runs = run_scenario(parse_scenario(case.scenario(seed), case.row), progress=False).runs
        return float(runs.loc[runs["metric"] == case.metric, "value"].mean())

    if case.added:
        return run(case) - run(replace(case, stack=BARE_METAL))
    return run(case)


def calibrate(published: Path, seed: int = 1, workers: int = 1) -> pd.DataFrame:
    """The calibration table: one row per published row and per found row (reproduced or not, with the reason)."""
    found = found_rows()
    rows = published_rows(published) | found
    if workers > 1:
        from virtsim.sim.kernel import compile_kernel

        compile_kernel()  # workers then load the compiled loop from the cache
        with ProcessPoolExecutor(workers) as pool:
            simulated = list(pool.map(_simulate, CASES, [seed] * len(CASES)))
    else:
        simulated = [_simulate(c, seed) for c in CASES]
    by_row = dict(zip([c.row for c in CASES], simulated, strict=True))
    fitted = fitted_rows()
    out = []
    for case in CASES:
        row = rows[case.row]
        pub = float(row["value"]) * case.scale
        sim = by_row[case.row]
        entry: dict[str, Any] = dict(
            row=case.row, table="found" if case.row in found else "published", platform=row["platform"],
            grade=row["grade"], metric=case.metric,
            stack=case.stack.label,
            published=pub, simulated=sim, rel_error=(sim - pub) / pub,
            published_ratio=float("nan"), simulated_ratio=float("nan"), ratio_error_points=float("nan"),
            fitted=case.row in fitted, basis="fitted" if case.row in fitted else "predicted",
            note=KNOWN_OUTSIDE.get(case.row, ""),
        )
        if case.native is not None:
            native_pub = float(rows[case.native]["value"]) * case.scale
            entry["published_ratio"] = pub / native_pub
            entry["simulated_ratio"] = sim / by_row[case.native]
            entry["ratio_error_points"] = 100 * (entry["simulated_ratio"] - entry["published_ratio"])
        ratio_ok = case.native is None or row["grade"] != "A" or abs(entry["ratio_error_points"]) <= 5
        entry["within_target"] = bool(abs(entry["rel_error"]) <= TARGET_REL.get(row["grade"], 0.10) and ratio_ok)
        out.append(entry)
    reproduced = {c.row for c in CASES}
    citing = citing_parameters()
    for row_id, row in rows.items():
        if row_id not in reproduced:
            reason = NOT_REPRODUCED.get(row_id, _default_reason(row, citing.get(row_id, [])))
            out.append(dict(row=row_id, table="found" if row_id in found else "published", platform=row["platform"],
                            grade=row["grade"], metric=row["metric"], published=float(row["value"]),
                            note=f"not reproduced: {reason}"))
    return pd.DataFrame(out)


def predicted_median_error(table: pd.DataFrame, grade: str | None = None, source: str | None = None) -> float:
    """Median absolute relative error of the reproduced rows no parameter was fitted to (of one
    ``grade`` only, and of one ``source`` table, "published" or "found", if given)."""
    done = table.dropna(subset=["simulated"])
    if source is not None:
        done = done[done["table"] == source]
    predicted = done[(done["basis"] == "predicted") & ((done["grade"] == grade) if grade else True)]
    return float(predicted["rel_error"].abs().median()) if len(predicted) else float("nan")


def _default_reason(row: dict[str, str], parameters: list[str]) -> str:
    """Why a row is not simulated. A row some parameter cites is an input, not an output: say which."""
    if parameters:
        return f"an input, not an output: cited by {', '.join(sorted(parameters))}"
    if row["metric"] in ("memory-overhead", "boot-time"):
        return (f"a footprint or start-up figure of a configuration no profile models ({row['platform']}: "
                f"{row['config']})")
    if row["grade"] != "A":
        return f"grade {row['grade']} (not a target), and no profile or workload uses it yet"
    return "no workload reproduces it yet"


def plot_calibration(table: pd.DataFrame, path: Path) -> Path:
    """Scatter simulated against published values (log-log, ±10% band), naming rows outside target; returns ``path``."""
    import numpy as np

    from virtsim.experiments.figures import legend, new_axes, save_figure

    done = table.dropna(subset=["simulated"])
    fig, ax = new_axes((6.5, 6))
    for ok, color, label in ((True, "#2f855a", "within target"), (False, "#c53030", "outside target")):
        part = done[done["within_target"] == ok]
        ax.scatter(part["published"], part["simulated"], c=color, label=label, s=28)
    # Only the rows outside their target are named (the table names every row): dozens of
    # labels at the points would be printed over each other.
    missed = done[~done["within_target"].astype(bool)].sort_values("published")
    for i, (_, r) in enumerate(missed.iterrows()):
        ax.annotate(r["row"], (r["published"], r["simulated"]), xytext=(6, -10 - 9 * (i % 3)),
                    textcoords="offset points", fontsize=6, color="#c53030")
    lo, hi = done[["published", "simulated"]].min().min() * 0.5, done[["published", "simulated"]].max().max() * 2
    x = np.geomspace(lo, hi, 50)
    ax.plot(x, x, "k-", lw=0.8)
    ax.fill_between(x, x * 0.9, x * 1.1, color="grey", alpha=0.2, label="±10%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("published (row's unit)")
    ax.set_ylabel("simulated")
    ax.set_title("Calibration: simulated against published")
    legend(ax)
    fig.tight_layout()
    return save_figure(fig, path)


def write_calibration(out_dir: Path, table: pd.DataFrame) -> dict[str, Path]:
    """Write the calibration table (calibration.csv) and its figure (calibration.png) into
    ``out_dir``; the files written, by name."""
    return {"calibration": atomic_write(out_dir / "calibration.csv", lambda t: table.to_csv(t, index=False)),
            "plot": plot_calibration(table, out_dir / "calibration.png")}


def command(args: argparse.Namespace) -> int:
    """``virtsim calibrate``: check published.csv and the folder, reproduce every row it can, publish, summarise."""
    from virtsim.experiments import api

    published, rows = checked_published(Path(args.published) if args.published else None)
    folder = ResultFolder(Path(args.out), "calibrate", {"published": rows, "seed": args.seed}, args.force)
    result = api.calibrate(published, seed=args.seed, workers=args.workers)
    paths = result.publish(folder)
    table = result.calibration
    done = table.dropna(subset=["simulated"])
    held_out = done[done["basis"] == "predicted"]
    print(f"{len(done)} rows reproduced ({int(done['within_target'].sum())} within target), "
          f"{len(held_out)} of them predicted, not fitted ({int(held_out['within_target'].sum())} within target, "
          f"median error {100 * predicted_median_error(table):.1f}%, over the team's published.csv "
          f"{100 * predicted_median_error(table, source='published'):.1f}%, its grade A "
          f"{100 * predicted_median_error(table, 'A', 'published'):.1f}%); "
          f"{len(table) - len(done)} rows not reproduced (reasons in the table)")
    print(f"calibration: {paths['calibration']}\n       plot: {paths['plot']}")
    return 0


def report(folder: Path) -> Report:
    """The report of a ``virtsim calibrate`` folder: the reproduced rows and their errors."""
    table = read_results_csv(folder / "calibration.csv")
    done = table.dropna(subset=["simulated"])
    answer = done[["row", "stack", "published", "simulated", "rel_error", "ratio_error_points", "fitted",
                   "within_target"]].round(4)
    return Report("Calibration against published measurements",
                  "How close does the model come to the published measurements it can reproduce?",
                  answer, assumptions=[
                   f"{len(done)} rows reproduced, {int(done['within_target'].astype(bool).sum())} within target "
                   "(10% absolute, 5 points on ratios to native).",
                   "Rows marked fitted were used to fit a parameter; the others are predictions.",
                   f"{len(table) - len(done)} rows are not reproduced; calibration.csv gives each reason."],
                  **stacks_fields(done["stack"]))


EXPERIMENT = Experiment("calibrate", "How close does the model come to the published measurements it can "
                        "reproduce?", command, report, ("calibration.csv",), tables=("calibration.csv",),
                        figures=("calibration.png",))
