"""Statistics across replications: means with Student-t confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["summarize", "t_interval"]


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of independent replications.

    Returns (mean, low, high). With one value the interval is (nan, nan): a single replication
    says nothing about its own variability.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def summarize(runs: pd.DataFrame, by: Sequence[str], confidence: float = 0.95) -> pd.DataFrame:
    """One row per group of ``by``: mean, std, n, and the t confidence interval of ``value``."""
    rows = []
    for key, group in runs.groupby(list(by), sort=False, dropna=False):
        mean, low, high = t_interval(group["value"].to_numpy(), confidence)
        values = group["value"].to_numpy(dtype=float)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "mean": mean,
                "std": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                "n": int(values.size),
                "ci_low": low,
                "ci_high": high,
                "confidence": confidence,
            }
        )
    return pd.DataFrame(rows)
