"""Run controls: how long to simulate, what to discard, how many replications, which seed."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_RECORD_BYTES", "RunControl", "RunTooLarge", "SteppedRun"]

MAX_RECORD_BYTES = 8 * 2**30
"""The most memory one run's request records and work rows may take (bytes): every request is
recorded (its arrival, finish and time at each stage), so a long run of a fast closed loop could
otherwise fill the machine and be killed without a word."""


class RunTooLarge(RuntimeError):
    """A run would keep more request records than :data:`MAX_RECORD_BYTES` allows."""

    @classmethod
    def at(cls, requests: int, now_s: float, duration_s: float, rows: int, per_request: int) -> RunTooLarge:
        """The error both engines raise: ``requests`` made by ``now_s`` of ``duration_s`` seconds, and
        ``rows`` records of ``per_request`` bytes each that would pass the budget."""
        return cls(f"the run has made {requests:,} requests by {now_s:.4g} s of {duration_s:g} s; every "
                   f"request's record is kept, and {rows:,} of them ({per_request:,} bytes each) would pass the "
                   f"{MAX_RECORD_BYTES / 2**30:g} GiB a run may use: shorten run.duration (a steady state takes "
                   "seconds) or lower the load (clients, rate)")


@dataclass(frozen=True)
class RunControl:
    """How one scenario is run.

    Requests that arrive before ``warmup_s`` are simulated but left out of every statistic; the
    run stops at ``duration_s`` of simulated time. Replication ``r`` draws every random number
    from streams keyed by ``(seed, r, ...)``.
    """

    duration_s: float
    warmup_s: float = 0.0
    replications: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError(
                f"warmup_s must be >= 0 and shorter than duration_s ({self.duration_s}), "
                f"got {self.warmup_s}"
            )
        if self.replications < 1:
            raise ValueError(f"replications must be >= 1, got {self.replications}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @property
    def window_s(self) -> float:
        """The measured part of the run, after warm-up."""
        return self.duration_s - self.warmup_s


class SteppedRun:
    """What both engines' runs share: :meth:`step` notes the work served when it passes the end
    of the warm-up (utilization leaves the warm-up out, as the latencies do). An engine's run
    gives ``control``, ``_advance`` (process the events before a time) and ``_served`` (work served
    so far per station and labelled group, s)."""

    control: RunControl
    _at_warmup: dict[str, float] | None = None

    def _advance(self, until_s: float) -> None:
        raise NotImplementedError

    def _served(self) -> dict[str, float]:
        raise NotImplementedError

    def step(self, until_s: float) -> None:
        """Run every event before ``until_s`` (s, at most the run's duration)."""
        until_s = min(float(until_s), self.control.duration_s)
        warmup = self.control.warmup_s
        if self._at_warmup is None and until_s >= warmup:
            self._advance(warmup)
            self._at_warmup = self._served()
        self._advance(until_s)
