"""Same scenario and seed, same numbers: twice in a row, and serially versus on a process pool."""

from __future__ import annotations

import pandas as pd

from virtsim.experiments.runner import run_scenario
from virtsim.experiments.scenario import parse_scenario


def test_same_seed_gives_identical_tables_twice_and_in_parallel(small) -> None:
    scenario = parse_scenario(small)
    first = run_scenario(scenario, progress=False).runs
    second = run_scenario(scenario, progress=False).runs
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    parallel = run_scenario(scenario, progress=False, workers=2).runs
    pd.testing.assert_frame_equal(first, parallel, check_exact=True)


def test_another_seed_gives_other_numbers(small) -> None:
    a = run_scenario(parse_scenario(small), progress=False).runs
    small["run"]["seed"] = 4
    b = run_scenario(parse_scenario(small), progress=False).runs
    assert not a["value"].equals(b["value"])


def test_compared_stacks_share_arrivals(small) -> None:
    """Common random numbers: every compared stack sees the same arrivals and demands."""
    small["compare"] = {"stacks": [["bare-metal"], ["docker"]]}
    small["guests"] = small["guests"][:1]
    runs = run_scenario(parse_scenario(small), progress=False).runs
    completed = runs[runs["metric"] == "completed"].pivot_table(index="replication", columns="stack", values="value")
    # Same arrivals: at light load both complete the same requests in the window.
    assert (completed["bare-metal"] == completed["docker"]).all()


def test_auto_engine_is_recorded_and_vector_refusal_is_explained(small) -> None:
    from virtsim.experiments.scenario import ScenarioError

    output = run_scenario(parse_scenario(small), progress=False)
    # Stack routes revisit the processor-sharing CPU, so auto runs the compiled kernel and says so.
    (label, _), = parse_scenario(small).variants()  # run as written: labelled by its guests' stacks
    assert output.provenance["engine"] == {label: "kernel"} and output.provenance["engine_requested"] == "auto"
    small["run"]["engine"] = "vector"
    try:
        parse_scenario(small)
    except ScenarioError as exc:
        assert "run.engine" in str(exc) and 'use "kernel", "des" or "auto"' in str(exc)
    else:
        raise AssertionError("a vector run of a processor-sharing scenario must be refused")
