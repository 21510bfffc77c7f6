"""Request workloads: how a request's demands are drawn."""

from __future__ import annotations

import numpy as np

from virtsim.models.workloads.request import RequestWorkload

N = 200_000


def _io_counts(demands: list[dict]) -> np.ndarray:
    w = RequestWorkload.model_validate({"arrivals": {"kind": "open", "rate": "10/s"}, "demands": demands})
    drawn = w.sampler(np.random.SeedSequence(5))(N)
    return sum((d.amount > 0).astype(int) for d in drawn if d.kind == "io")


def test_independent_probabilities_give_a_binomial_number_of_ios() -> None:
    """8 pages, each missing with p = 0.3 on its own draw: Binomial(8, 0.3) I/Os per request,
    mean 2.4 and variance 1.68 (within 5 standard errors), not 0-or-8 as one shared draw gives."""
    page = {"kind": "io", "size": "4KiB", "probability": 0.3}
    k = _io_counts([{"kind": "cpu", "cycles": "1M"}, *[page] * 8])
    assert abs(k.mean() - 2.4) < 5 * np.sqrt(1.68 / N)
    assert abs(k.var() - 1.68) < 0.05
    none = 0.7**8  # no page misses
    assert abs(np.mean(k == 0) - none) < 5 * np.sqrt(none * (1 - none) / N)


def test_a_shared_mix_draw_makes_demands_exclusive() -> None:
    """mix windows share one uniform per request: a 30/70 split is one I/O per request, never two."""
    k = _io_counts([{"kind": "io", "size": "4KiB", "mix": [0.0, 0.3]},
                    {"kind": "io", "size": "4KiB", "op": "write", "mix": [0.3, 1.0]}])
    assert set(np.unique(k)) == {1}


def test_a_copy_with_other_demands_samples_its_own_demands() -> None:
    """Review 29 (latent): the per-demand plans were a cached property in the instance's dict,
    which model_copy carries: a copy with new demands sampled the old ones."""
    import numpy as np

    from virtsim.models.workloads.request import RequestWorkload

    w = RequestWorkload.model_validate({"arrivals": {"kind": "open", "rate": "10/s"},
                                        "demands": [{"kind": "cpu", "cycles": 100}]})
    assert w.sampler(np.random.SeedSequence(1))(2)[0].amount.tolist() == [100.0, 100.0]
    copy = w.model_copy(update={"demands": [w.demands[0].model_copy(update={"cycles": 7.0})]})
    assert copy.sampler(np.random.SeedSequence(1))(2)[0].amount.tolist() == [7.0, 7.0]
