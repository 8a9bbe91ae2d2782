"""A clock for tests of waiting code: time moves only when slept, and each sleep is recorded."""

from __future__ import annotations


class FakeClock:
    """Stands in for the :mod:`time` module where code takes a ``clock``."""

    EPOCH = 1_700_000_000.0  # wall time at the start, whole seconds (HTTP dates have no fraction)

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return 100.0 + self.elapsed

    def time(self) -> float:
        return self.EPOCH + self.elapsed

    def sleep(self, seconds: float, /) -> None:
        assert seconds >= 0, f"asked to sleep {seconds} s"
        self.sleeps.append(seconds)
        self.elapsed += seconds

    def advance(self, seconds: float) -> None:
        """Time that passes without a sleep (work, a slow request)."""
        self.elapsed += seconds
