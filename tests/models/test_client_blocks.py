"""Several closed clients' requests lowered as one block get the numbers each client draws alone."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from virtsim.experiments.inputs import read_toml
from virtsim.experiments.scenario import default_scenario, parse_scenario
from virtsim.models.virt.stack import layer_profiles
from virtsim.models.workloads.catalog import NAMED_WORKLOADS
from virtsim.sim.rng import stream_seed
from virtsim.sim.routes import batch_sampler

WORKLOADS = [get_args(w.model_fields["kind"].annotation)[0] for w in NAMED_WORKLOADS]


def _seeds(n: int) -> list[np.random.SeedSequence]:
    # fresh each time: a seed sequence's spawn() counts its children
    return [stream_seed(11, 0, "g", "work", c) for c in range(n)]


@pytest.mark.parametrize("profile", sorted(layer_profiles()))
def test_a_block_of_clients_gets_each_clients_own_numbers_on_every_profile_and_workload(profile) -> None:
    host = read_toml(default_scenario(), "scenario")["host"]
    for workload in WORKLOADS:
        scenario = parse_scenario({"name": "blocks", "host": host,
                                   "guests": [{"name": "g", "stack": [profile], "workload": {"kind": workload}}]})
        source = scenario.system().engine_inputs()[1][0]
        together = batch_sampler(source, _seeds(3))
        alone = [source.make_sampler(seed) for seed in _seeds(3)]
        for counts in ([4, 0, 7], [1, 3, 2]):  # in sequence: the second block continues the first
            for rows, sampler, n in zip(together(counts), alone, counts, strict=True):
                expected = sampler(n)
                assert rows.shape == (n, len(source.route))
                assert np.array_equal(rows, expected), (profile, workload, counts)


def test_a_source_without_its_own_block_sampler_calls_each_clients_sampler() -> None:
    scenario = parse_scenario({"name": "blocks", "host": read_toml(default_scenario(), "scenario")["host"],
                               "guests": [{"name": "g", "stack": ["kvm"], "workload": {"kind": "kv-store"}}]})
    source = scenario.system().engine_inputs()[1][0]
    plain = type(source)(source.name, source.route, source.arrivals, source.make_sampler, source.family)
    assert plain.make_samplers is None
    rows = batch_sampler(plain, _seeds(2))([2, 5])
    expected = batch_sampler(source, _seeds(2))([2, 5])
    assert all(np.array_equal(a, b) for a, b in zip(rows, expected, strict=True))
