"""The ``virtsim`` command line.

    virtsim run [SCENARIO.toml] --out DIR   run a scenario (default: the built-in stack comparison)
    virtsim sweep SCENARIO.toml --out DIR  run its [sweep] (--workers N, --scheduler ADDRESS)
    virtsim overhead --out DIR              workloads on each stack, ratios to bare metal
    virtsim calibrate --out DIR             reproduce the published measurements
    virtsim density [SPEC.toml] --out DIR   guests per host under an SLO, and what limits it
    virtsim disk [SPEC.toml] --out DIR      disk usage of image chains and container layers
    virtsim plan PLAN.toml --out DIR        hosts needed per stack for a mix of services
    virtsim report DIR [DIR ...] [--out R]  report.html + report.md of results folders (one combined)
    virtsim profiles [NAME]                 list layer and hardware profiles with their parameters

Bad input ends with one line naming the problem and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Only what the parser needs is imported here: `virtsim --help` and a mistyped argument answer at
# once, without loading pandas, numpy and pydantic (each command imports what it uses).
__all__ = ["main"]

DEFAULT_SCENARIO = "compare-stacks.toml"  # as virtsim.experiments.scenario.DEFAULT_SCENARIO (tested)


def _cmd_run(args: argparse.Namespace) -> int:
    from virtsim.experiments import api
    from virtsim.experiments.outputs import ResultFolder
    from virtsim.experiments.report import write_run_report
    from virtsim.experiments.scenario import default_scenario, load_scenario

    scenario = load_scenario(args.scenario or default_scenario())
    if scenario.sweep is not None:
        print("virtsim: note: this scenario declares a [sweep]; `virtsim run` runs its base point, "
              "`virtsim sweep` runs every point", file=sys.stderr)
    scenario = api.with_run_overrides(scenario, args.replications, args.seed)
    scenario.check_measurable()  # before the folder is touched
    folder = ResultFolder(Path(args.out), "run", scenario.model_dump(mode="json", by_alias=True), args.force)
    paths = api.run(scenario, progress=not args.quiet, workers=args.workers).publish(folder)
    report = write_run_report(folder.out)
    for name, path in {**paths, "report": report}.items():
        print(f"{name:>10}: {path}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from virtsim.experiments import api

    result = api.sweep(Path(args.scenario), Path(args.out), workers=args.workers, scheduler=args.scheduler,
                       progress=not args.quiet, force=args.force, announce=print)
    print(f"     sweep: {Path(str(result.out)) / 'sweep.parquet'}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from virtsim.experiments import api
    from virtsim.experiments.calibrate import checked_published, predicted_median_error
    from virtsim.experiments.outputs import ResultFolder

    published, rows = checked_published(Path(args.published) if args.published else None)
    folder = ResultFolder(Path(args.out), "calibrate", {"published": rows, "seed": args.seed}, args.force)
    result = api.calibrate(published, seed=args.seed, workers=args.workers)
    paths = result.publish(folder)
    table = result.calibration
    done = table.dropna(subset=["simulated"])
    held_out = done[done["basis"] == "predicted"]
    print(f"{len(done)} rows reproduced ({int(done['within_target'].sum())} within target), "
          f"{len(held_out)} of them predicted, not fitted ({int(held_out['within_target'].sum())} within target, "
          f"median error {100 * predicted_median_error(table):.1f}%, grade A "
          f"{100 * predicted_median_error(table, 'A'):.1f}%); "
          f"{len(table) - len(done)} rows not reproduced (reasons in the table)")
    print(f"calibration: {paths['calibration']}\n       plot: {paths['plot']}")
    return 0


def _cmd_overhead(args: argparse.Namespace) -> int:
    from virtsim.experiments import api
    from virtsim.experiments.outputs import ResultFolder

    stacks = [s.split("/") for s in args.stacks.split(",")] if args.stacks else None
    names = args.workloads.split(",") if args.workloads else None
    api.check_overhead_args(stacks, names)  # before the folder is touched
    inputs = {"stacks": stacks, "workloads": names, "replications": args.replications, "seed": args.seed}
    folder = ResultFolder(Path(args.out), "overhead", inputs, args.force)
    result = api.overhead(stacks, names, replications=args.replications, seed=args.seed, workers=args.workers,
                          progress=not args.quiet)
    for name, path in result.publish(folder).items():
        print(f"{name:>12}: {path}")
    return 0


def _cmd_density(args: argparse.Namespace) -> int:
    from virtsim.experiments import api
    from virtsim.experiments.density import load_density_spec
    from virtsim.experiments.outputs import ResultFolder

    spec = load_density_spec(args.spec)
    folder = ResultFolder(Path(args.out), "density", spec.model_dump(mode="json", by_alias=True), args.force)
    result = api.density(spec)
    for name, path in result.publish(folder).items():
        print(f"{name:>8}: {path}")
    print(result.summary[["stack", "max_guests", "limiting_resource"]].to_string(index=False))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from virtsim.experiments.outputs import ResultsError
    from virtsim.experiments.report import write_combined_report, write_report

    folders = [Path(f) for f in args.folder]
    if len(folders) > 1 and args.out is None:
        raise ResultsError("several folders make one combined report: name where it goes with --out DIR")
    written = (write_report(folders[0]) if args.out is None
               else write_combined_report(folders, Path(args.out)))
    for name, path in written.items():
        print(f"{name:>12}: {path}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from virtsim.experiments import api
    from virtsim.experiments.outputs import ResultFolder
    from virtsim.experiments.plan import load_plan

    spec = load_plan(args.plan)
    folder = ResultFolder(Path(args.out), "plan", spec.model_dump(mode="json", by_alias=True), args.force)
    result = api.plan(spec)
    for name, path in result.publish(folder).items():
        print(f"{name:>9}: {path}")
    shown = [c for c in ("host_type", "stack", "hosts", "guests_per_host_mean", "bottleneck", "fleet_startup_s",
                         "cheapest", "note") if c in result.fleet.columns]
    print(result.fleet[shown].astype(object).where(result.fleet[shown].notna(), "").to_string(index=False))
    return 0


def _cmd_disk(args: argparse.Namespace) -> int:
    from virtsim.experiments import api
    from virtsim.experiments.disk import load_disk_spec
    from virtsim.experiments.outputs import ResultFolder

    spec = load_disk_spec(args.spec)
    folder = ResultFolder(Path(args.out), "disk", spec.model_dump(mode="json", by_alias=True), args.force)
    for name, path in api.disk(spec).publish(folder).items():
        print(f"{name:>14}: {path}")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from virtsim.models.profiles import ProfileError, load_profiles

    for package, title in (("virtsim.models.virt", "layers"), ("virtsim.models.hardware", "hardware")):
        profiles = load_profiles(package)
        shown = [p for n, p in profiles.items() if args.name in (None, n)]
        if not shown:
            continue
        print(f"# {title}")
        for prof in shown:
            print(f"{prof.name} ({prof.kind}): {prof.description}")
            if title == "layers":
                from virtsim.experiments.grades import stack_grade

                g = stack_grade(prof.name)
                print(f"    # calibration: {g.sourced} of {g.parameters} parameters sourced, worst grade cited "
                      f"{g.worst_grade}{' - GUESSED' if g.guessed else ''}")
            for key, value in prof.params.items():
                print(f"    {key} = {value!r:<14} # {prof.sources.get(key, 'NO SOURCE')}")
    if args.name is not None and not any(
        args.name in load_profiles(p) for p in ("virtsim.models.virt", "virtsim.models.hardware")
    ):
        raise ProfileError(f"no profile named {args.name!r}; run `virtsim profiles` to list them")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="virtsim", description="Discrete-event simulator of virtualization.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write runs.parquet, summary.csv, provenance.json")
    run.add_argument("scenario", nargs="?", help=f"scenario TOML (default: built-in {DEFAULT_SCENARIO})")
    run.add_argument("--out", required=True, help="folder for the results (created if missing)")
    run.add_argument("--replications", type=_positive_int, help="override run.replications")
    run.add_argument("--seed", type=int, help="override run.seed")
    run.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1,
                     help="processes running replications in parallel (default: all cores)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--force", action="store_true", help="replace --out even if it holds other results")
    run.set_defaults(func=_cmd_run)
    sweep = sub.add_parser("sweep", help="run a scenario's [sweep] of parameters; resumes where it stopped")
    sweep.add_argument("scenario", help="scenario TOML with a [sweep] table")
    sweep.add_argument("--out", required=True, help="folder for points/ and sweep.parquet (rerun to resume)")
    sweep.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1,
                       help="local processes (default: all cores)")
    sweep.add_argument("--scheduler", help="address of a Dask scheduler (tcp://HOST:8786) to run the points on")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--force", action="store_true", help="clear --out first if it holds other results")
    sweep.set_defaults(func=_cmd_sweep)
    ovh = sub.add_parser("overhead", help="workloads on each stack as ratios to bare metal, with attribution")
    ovh.add_argument("--out", required=True, help="folder for overhead.csv, attribution.csv and plots")
    ovh.add_argument("--stacks", help='comma-separated stacks, layers joined by "/" (e.g. "kvm,docker,docker/kvm")')
    ovh.add_argument("--workloads", help="comma-separated workloads (default: all)")
    ovh.add_argument("--replications", type=_positive_int, default=2)
    ovh.add_argument("--seed", type=int, default=1)
    ovh.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    ovh.add_argument("--quiet", action="store_true", help="no progress bar")
    ovh.add_argument("--force", action="store_true", help="replace --out even if it holds other results")
    ovh.set_defaults(func=_cmd_overhead)
    cal = sub.add_parser("calibrate", help="reproduce the published measurements -> calibration.csv + plot")
    cal.add_argument("--out", required=True, help="folder for calibration.csv and calibration.png")
    cal.add_argument("--published",
                     help="path of published.csv (default: the copy shipped in experiments/calibration_data/)")
    cal.add_argument("--seed", type=int, default=1)
    cal.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    cal.add_argument("--force", action="store_true", help="replace --out even if it holds other results")
    cal.set_defaults(func=_cmd_calibrate)
    dens = sub.add_parser("density", help="guests per host under an SLO, per stack, and the limiting resource")
    dens.add_argument("spec", nargs="?", help="TOML file with a [density] table (default: built-in settings)")
    dens.add_argument("--out", required=True, help="folder for density.csv, density_summary.csv and the plot")
    dens.add_argument("--force", action="store_true", help="replace --out even if it holds other results")
    dens.set_defaults(func=_cmd_density)
    rep = sub.add_parser("report", help="render report.html and report.md from any experiment's results folder")
    rep.add_argument("folder", nargs="+",
                     help="folders written by run, overhead, calibrate, density, plan, disk or sweep")
    rep.add_argument("--out", help="with several folders (or to keep a report apart): where the combined "
                                   "report goes")
    rep.set_defaults(func=_cmd_report)
    pln = sub.add_parser("plan", help="capacity plan: hosts per stack for a mix of services and host types")
    pln.add_argument("plan", help="plan TOML: services, host_types, stacks, headroom")
    pln.add_argument("--out", required=True, help="folder for plan.csv, plan_services.csv and the plot")
    pln.add_argument("--force", action="store_true", help="replace --out even if it holds other results")
    pln.set_defaults(func=_cmd_plan)
    disk = sub.add_parser("disk", help="disk usage: linked vs full clones, formats, drivers -> disk.csv + plots")
    disk.add_argument("spec", nargs="?", help="TOML file with a [disk] table (default: built-in settings)")
    disk.add_argument("--out", required=True, help="folder for disk.csv and the plots")
    disk.add_argument("--force", action="store_true", help="replace --out even if it holds other results")
    disk.set_defaults(func=_cmd_disk)
    prof = sub.add_parser("profiles", help="list profiles with their parameters and sources")
    prof.add_argument("name", nargs="?", help="show only this profile")
    prof.set_defaults(func=_cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``virtsim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from virtsim.experiments.outputs import ResultsError
    from virtsim.experiments.scenario import ScenarioError, format_validation_error
    from virtsim.models.profiles import ProfileError
    from virtsim.sim.control import RunTooLarge
    from virtsim.sim.units import UnitError
    from virtsim.sim.vector import SimultaneousArrivals

    try:
        return int(args.func(args))
    except (ScenarioError, ProfileError, ResultsError, UnitError, SimultaneousArrivals, RunTooLarge) as exc:
        print(f"virtsim: error: {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"virtsim: error: {format_validation_error(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("virtsim: interrupted; files already written are complete", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`virtsim profiles | head`): stop quietly, and point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
