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

Each experiment's command, its options and its report are declared by its own module and listed
in :mod:`virtsim.experiments.registry`. Bad input ends with one line naming the problem and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Only what the parser needs is imported here: `virtsim --help` and a mistyped argument answer at
# once, without loading pandas, numpy and pydantic (each command imports what it uses).
__all__ = ["main"]


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


def _experiment_command(name: str) -> Callable[[argparse.Namespace], int]:
    """Run the experiment ``name`` declares (its module imported only now)."""
    def run(args: argparse.Namespace) -> int:
        from virtsim.experiments.registry import experiment

        declared = experiment(name)
        assert declared is not None  # every listed command has a module
        return declared.command(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The command line: every registered experiment, then ``report`` and ``profiles``."""
    from virtsim.experiments.registry import COMMANDS

    parser = argparse.ArgumentParser(prog="virtsim", description="Discrete-event simulator of virtualization.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        one = sub.add_parser(command.name, help=command.help)
        for option in command.options:
            one.add_argument(*option.flags, **option.settings)
        one.set_defaults(func=_experiment_command(command.name))
    rep = sub.add_parser("report", help="render report.html and report.md from any experiment's results folder")
    rep.add_argument("folder", nargs="+", help=f"folders written by {', '.join(c.name for c in COMMANDS)}")
    rep.add_argument("--out", help="with several folders (or to keep a report apart): where the combined "
                                   "report goes")
    rep.set_defaults(func=_cmd_report)
    prof = sub.add_parser("profiles", help="list profiles with their parameters and sources")
    prof.add_argument("name", nargs="?", help="show only this profile")
    prof.set_defaults(func=_cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``virtsim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from virtsim.experiments.inputs import InputError, format_validation_error
    from virtsim.experiments.outputs import ResultsError
    from virtsim.models.profiles import ProfileError
    from virtsim.sim.control import RunTooLarge
    from virtsim.sim.units import UnitError
    from virtsim.sim.vector import SimultaneousArrivals

    try:
        return int(args.func(args))
    except (InputError, ProfileError, ResultsError, UnitError, SimultaneousArrivals, RunTooLarge) as exc:
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
