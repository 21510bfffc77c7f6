"""Per-request records and the metrics computed from them.

A :class:`RequestLog` holds, for every request of one source, its arrival and finish time and the
time it spent at each stage of its route (waiting plus service). Summing stage columns by station
or by layer attributes a request's latency, and the same sums over the slowest requests attribute
the tail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CDF_LEVELS", "METRIC_UNITS", "RequestLog", "latency_metrics", "pooled_latencies", "request_metrics",
           "window_latencies"]


@dataclass
class RequestLog:
    """Growable arrays of one source's requests (``n`` of them in use)."""

    stations: tuple[str, ...]
    layers: tuple[str, ...]
    arrival_s: np.ndarray
    finish_s: np.ndarray
    stage_s: np.ndarray  # shape (capacity, len(stations))
    n: int = 0
    shares: tuple[tuple[tuple[str, float], ...], ...] = ()  # per stage: other layers' fractions of its time
    # Told the log and the rows a growth would add before it allocates them (a budget may refuse by raising).
    on_grow: Callable[[RequestLog, int], None] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, stations: tuple[str, ...], layers: tuple[str, ...], capacity: int = 1024,
              shares: tuple[tuple[tuple[str, float], ...], ...] = ()) -> RequestLog:
        """A log with room for ``capacity`` requests (at least 16) and none in use."""
        capacity = max(int(capacity), 16)
        return cls(
            stations,
            layers,
            np.full(capacity, np.nan),
            np.full(capacity, np.nan),
            np.zeros((capacity, len(stations))),
            shares=shares,
        )

    def layer_weights(self) -> dict[str, np.ndarray]:
        """Per layer, the fraction of each stage's time that is the layer's (a stage is its own
        layer's, less the shares other layers added to it, such as a nested page walk's)."""
        out: dict[str, np.ndarray] = {}
        k = len(self.layers)
        for i, layer in enumerate(self.layers):
            out.setdefault(layer, np.zeros(k))[i] += 1.0
            for other, fraction in (self.shares[i] if i < len(self.shares) else ()):
                out[layer][i] -= fraction
                out.setdefault(other, np.zeros(k))[i] += fraction
        return out

    def add(self, arrival_s: float) -> int:
        """Append a request arriving at ``arrival_s``; returns its index."""
        if self.n == len(self.arrival_s):
            self._grow()
        i = self.n
        self.arrival_s[i] = arrival_s
        self.n += 1
        return i

    def _grow(self) -> None:
        """Double the room, keeping the requests in use (after :attr:`on_grow` has allowed it)."""
        extra = len(self.arrival_s)
        if self.on_grow is not None:
            self.on_grow(self, extra)
        self.arrival_s = np.concatenate([self.arrival_s, np.full(extra, np.nan)])
        self.finish_s = np.concatenate([self.finish_s, np.full(extra, np.nan)])
        self.stage_s = np.concatenate([self.stage_s, np.zeros((extra, self.stage_s.shape[1]))])

    @property
    def row_bytes(self) -> int:
        """Bytes one request's record takes: its arrival, finish and every stage's time."""
        return 8 * (2 + self.stage_s.shape[1])

    @property
    def capacity(self) -> int:
        """Requests the log has room for before it next grows."""
        return len(self.arrival_s)

    def trimmed(self) -> RequestLog:
        """A copy holding exactly the ``n`` requests in use."""
        n = self.n
        return RequestLog(
            self.stations, self.layers, self.arrival_s[:n].copy(), self.finish_s[:n].copy(),
            self.stage_s[:n].copy(), n, self.shares,
        )


METRIC_UNITS = {
    "offered_utilization": "fraction",
    "latency_p99_low_s": "s",
    "latency_p99_high_s": "s",
    "throughput_rps": "requests/s",
    "completed": "requests",
    "unfinished": "requests",
    "latency_mean_s": "s",
    "latency_p50_s": "s",
    "latency_p95_s": "s",
    "latency_p99_s": "s",
    "time_mean_s": "s",
    "tail_time_mean_s": "s",
    "latency_quantile_s": "s",
}
CDF_LEVELS = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 99, 99.5, 99.9)


def _judged(log: RequestLog, warmup_s: float, end_s: float, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Which requests are measured, and their latencies (s): without a horizon, those that
    arrived after ``warmup_s`` and finished by the end; with ``horizon_s`` > 0, every request
    that arrived in [``warmup_s``, ``end_s - horizon_s``], one still unfinished at ``end_s``
    counted with the time it has waited (at least ``horizon_s``: a lower bound of its latency)."""
    n = log.n
    arrival, finish = log.arrival_s[:n], log.finish_s[:n]
    done = ~np.isnan(finish)
    if horizon_s <= 0:
        measured = done & (arrival >= warmup_s)
        return measured, finish[measured] - arrival[measured]
    measured = (arrival >= warmup_s) & (arrival <= end_s - horizon_s)
    return measured, np.where(done, finish, end_s)[measured] - arrival[measured]


def window_latencies(log: RequestLog, warmup_s: float, end_s: float = math.inf, horizon_s: float = 0.0) -> np.ndarray:
    """Latencies (s) of the measured requests (see ``horizon_s`` in :func:`request_metrics`)."""
    return _judged(log, warmup_s, end_s, horizon_s)[1]


def pooled_latencies(logs: list[RequestLog], warmup_s: float, end_s: float = math.inf,
                     horizon_s: float = 0.0) -> np.ndarray:
    """The latencies (s) :func:`window_latencies` gives for each of ``logs``, together, in the order
    the requests arrived (ties in the order of ``logs``): the time order sectioning needs."""
    arrivals, latencies = [], []
    for log in logs:
        measured, latency = _judged(log, warmup_s, end_s, horizon_s)
        arrivals.append(log.arrival_s[:log.n][measured])
        latencies.append(latency)
    if not latencies:
        return np.empty(0)
    order = np.argsort(np.concatenate(arrivals), kind="stable")
    return np.concatenate(latencies)[order]


def latency_metrics(latency: np.ndarray) -> list[tuple[str, str, str, float]]:
    """Mean, p50, p95 and p99 of a set of latencies, as metric rows (none for an empty set)."""
    if latency.size == 0:
        return []
    p50, p95, p99 = np.percentile(latency, [50, 95, 99])
    return [("latency_mean_s", "all", "all", float(latency.mean())), ("latency_p50_s", "all", "all", float(p50)),
            ("latency_p95_s", "all", "all", float(p95)), ("latency_p99_s", "all", "all", float(p99))]


def request_metrics(log: RequestLog, warmup_s: float, duration_s: float,
                    cdf: bool = False, horizon_s: float = 0.0) -> list[tuple[str, str, str, float]]:
    """Metrics of one source in one replication, as (metric, layer, station, value) rows.

    Throughput counts requests finished inside the window [warmup_s, duration_s) over its
    length. Latencies are over requests that arrived inside the window and finished by the end.
    ``time_mean_s`` rows split the mean latency by layer and by station; ``tail_time_mean_s`` rows
    split the latency of the requests at or above the p99 the same way. With ``cdf``, rows
    ``latency_quantile_s`` give the latency at each level of :data:`CDF_LEVELS` (the level, in
    percent, in the ``station`` column).

    ``horizon_s`` > 0 (a latency a promise is judged by): latencies, ``completed`` and
    ``unfinished`` are over the requests that arrived in the window at least ``horizon_s`` before
    the end, and one of them still unfinished counts in the latencies with the time it has waited
    (at least ``horizon_s``). Requests that arrive just before the end and would take long are
    otherwise never seen: a 1 s run's p99 cannot exceed 1 s however long the requests take
    (review 35). A quantile up to ``horizon_s`` is then exact, one above it a lower bound.
    """
    n = log.n
    arrival, finish, stage = log.arrival_s[:n], log.finish_s[:n], log.stage_s[:n]
    done = ~np.isnan(finish)
    in_window = (arrival >= warmup_s) & (arrival <= duration_s - horizon_s if horizon_s > 0 else True)
    measured = done & in_window
    finished_in_window = done & (finish >= warmup_s) & (finish < duration_s)
    rows: list[tuple[str, str, str, float]] = [
        ("throughput_rps", "all", "all", float(finished_in_window.sum()) / (duration_s - warmup_s)),
        ("completed", "all", "all", float(measured.sum())),
        ("unfinished", "all", "all", float((in_window & ~done).sum())),
    ]
    latency = window_latencies(log, warmup_s, duration_s, horizon_s)
    if latency.size == 0:
        return rows
    summary = latency_metrics(latency)
    rows += summary
    p99 = next(value for metric, _, _, value in summary if metric == "latency_p99_s")
    if cdf:
        for level, value in zip(CDF_LEVELS, np.percentile(latency, CDF_LEVELS), strict=True):
            rows.append(("latency_quantile_s", "all", f"{level:g}", float(value)))
    finished = finish[measured] - arrival[measured]  # stage times are known for finished requests only
    if finished.size == 0:
        return rows
    stages = stage[measured]
    tail = stages[finished >= min(p99, float(finished.max()))]
    for metric, block in (("time_mean_s", stages), ("tail_time_mean_s", tail)):
        per_slot = block.mean(axis=0)
        for layer, weights in log.layer_weights().items():
            rows.append((metric, layer, "all", float(per_slot @ weights)))
        for station in dict.fromkeys(log.stations):
            cols = [k for k, name in enumerate(log.stations) if name == station]
            rows.append((metric, "all", station, float(per_slot[cols].sum())))
    return rows
