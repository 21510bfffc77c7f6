"""A latency horizon: requests judged only if they had time to show a latency that long.

A run's latencies come from requests that finished by its end, so a request that arrives near
the end and would take long is never seen: a 1 s run cannot show a p99 above 1 s however slow
the requests are (review 35). With a horizon H, the requests judged are those that arrived at
least H before the end; one still unfinished counts with its wait so far (at least H)."""

from __future__ import annotations

import numpy as np
import pytest

from virtsim.sim.records import RequestLog, pooled_latencies, request_metrics


def _log(arrivals: list[float], finishes: list[float]) -> RequestLog:
    log = RequestLog.empty(("cpu",), ("app",))
    n = len(arrivals)
    log.arrival_s[:n], log.finish_s[:n] = arrivals, finishes
    log.stage_s[:n, 0] = np.nan_to_num(np.array(finishes) - np.array(arrivals))
    log.n = n
    return log


def _rows(log: RequestLog, **kw: float) -> dict[str, float]:
    return {m: v for m, layer, station, v in request_metrics(log, 1.0, 10.0, **kw) if layer == station == "all"}


# By hand, a 10 s run with a 1 s warm-up: requests of 0.1 s at 2, 3, ..., 8 s; slow ones of 4 s
# at 5.5 s (done at 9.5) and of 5 s at 6.5 s and 8.5 s (in flight at the end).
ARRIVALS = [2, 3, 4, 5, 5.5, 6, 6.5, 7, 8, 8.5]
FINISHES = [2.1, 3.1, 4.1, 5.1, 9.5, 6.1, np.nan, 7.1, 8.1, np.nan]


def test_without_a_horizon_only_finished_requests_count() -> None:
    rows = _rows(_log(ARRIVALS, FINISHES))
    assert (rows["completed"], rows["unfinished"]) == (8, 2)
    assert rows["latency_p99_s"] < 4.0  # the 5 s request at 6.5 s is never seen


def test_with_a_horizon_an_old_request_in_flight_counts_with_its_wait() -> None:
    """Horizon 2 s: the nine requests that arrived by 8 s are judged (8.5 s is too young). The
    one of 6.5 s is unfinished and counts as 3.5 s (its wait at 10 s); mean over the nine:
    (7 x 0.1 + 4 + 3.5) / 9 s, the largest 4 s."""
    rows = _rows(_log(ARRIVALS, FINISHES), horizon_s=2.0)
    assert (rows["completed"], rows["unfinished"]) == (8, 1)
    assert rows["latency_mean_s"] == pytest.approx((7 * 0.1 + 4 + 3.5) / 9)
    assert rows["latency_p99_s"] == pytest.approx(np.percentile([0.1] * 7 + [4, 3.5], 99))
    pooled = pooled_latencies([_log(ARRIVALS, FINISHES)], 1.0, 10.0, 2.0)
    assert sorted(pooled) == pytest.approx(sorted([0.1] * 7 + [4, 3.5]))
