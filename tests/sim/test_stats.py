"""Summaries across replications agree with the Student-t interval computed group by group."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from virtsim.sim.stats import quantile_interval, summarize, t_interval


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


def test_the_p99_interval_covers_the_true_p99_95_percent_of_the_time() -> None:
    """Exponential samples (mean 1, p99 = ln 100): over 400 draws of 2,000, the 95% interval holds
    the true p99 in 95% of them (a binomial count: within 4 standard deviations, 0.044)."""
    rng = np.random.default_rng(8)
    true = math.log(100.0)
    hits = 0
    for _ in range(400):
        low, high = quantile_interval(rng.exponential(1.0, 2000), 0.99)
        hits += low <= true <= high
    assert abs(hits / 400 - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / 400)


def test_the_p99_interval_is_open_above_with_too_few_samples() -> None:
    """The largest sample bounds the p99 above with 97.5% only when 0.99^n < 2.5%: from n = 368."""
    assert math.isnan(quantile_interval(np.arange(367.0), 0.99)[1])
    assert quantile_interval(np.arange(368.0), 0.99)[1] == 367.0
