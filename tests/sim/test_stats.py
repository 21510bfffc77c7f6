"""Summaries across replications agree with the Student-t interval computed group by group."""

from __future__ import annotations

import numpy as np
import pandas as pd

from virtsim.sim.stats import summarize, t_interval


def test_the_vectorized_summary_is_t_interval_per_group_in_first_appearance_order() -> None:
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 200), "b": rng.choice([1, 2], 200),
                         "value": rng.normal(size=200)})
    runs.loc[5, "value"] = np.nan  # a NaN makes its group's statistics NaN, as t_interval does
    runs = pd.concat([runs, pd.DataFrame({"a": ["solo"], "b": [9], "value": [3.0]})], ignore_index=True)
    summary = summarize(runs, ["a", "b"])
    first_seen = list(dict.fromkeys(zip(runs["a"], runs["b"], strict=True)))
    assert list(zip(summary["a"], summary["b"], strict=True)) == first_seen
    for _, row in summary.iterrows():
        values = runs[(runs["a"] == row["a"]) & (runs["b"] == row["b"])]["value"].to_numpy()
        mean, low, high = t_interval(values)
        assert np.allclose([row["mean"], row["ci_low"], row["ci_high"]], [mean, low, high], equal_nan=True)
        assert row["n"] == len(values)
        assert np.isclose(row["std"], values.std(ddof=1), equal_nan=True) if len(values) > 1 else np.isnan(row["std"])
