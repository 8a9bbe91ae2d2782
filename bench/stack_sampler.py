"""A tiny wall-clock stack sampler (stdlib only) that attributes time to parts of the stack.

A daemon thread reads the main thread's stack every ``interval`` seconds
(``sys._current_frames``) and hands it, outermost frame first, to a classifier that returns a
(category, detail) pair; the time since the previous sample is added to both. Unlike cProfile
it adds no per-call cost, so Python-heavy libraries (Prefect, pandas) are not over-weighted,
and the full stack lets a sample under ``mlflow.pytorch.log_model -> torch.export`` count as
MLflow, not torch.

The sampler never lets the garbage collector run in its own thread (it pauses ``gc`` while
it takes a sample): a collection triggered from another thread in the middle of
``torch.export`` makes the export fail ("found a fake tensor in the exported program
constant's list" in our runs), which MLflow's pt2 model logging runs.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import FrameType

# (module name, function name) of each frame, outermost first.
Stack = list[tuple[str, str]]
Classifier = Callable[[Stack], tuple[str, str]]


def stack_of(frame: FrameType | None) -> Stack:
    out: Stack = []
    while frame is not None:
        out.append((str(frame.f_globals.get("__name__", "?")), frame.f_code.co_name))
        frame = frame.f_back
    out.reverse()
    return out


class StackSampler:
    """``with StackSampler(classify) as s: work()`` then ``s.categories`` / ``s.details``
    (seconds per category / per (category, detail)) and ``s.leaves`` (seconds per innermost
    function)."""

    def __init__(self, classify: Classifier, interval: float = 0.005) -> None:
        self.classify, self.interval = classify, interval
        self.categories: Counter[str] = Counter()
        self.details: Counter[tuple[str, str]] = Counter()
        self.leaves: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._target = threading.main_thread().ident

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.interval):
            enabled = gc.isenabled()
            gc.disable()
            try:
                last = self._sample(last)
            finally:
                if enabled:
                    gc.enable()

    def _sample(self, last: float) -> float:
        frame = sys._current_frames().get(self._target or 0)
        now = time.perf_counter()
        dt = now - last
        if frame is None:
            return now
        stack = stack_of(frame)
        del frame
        category, detail = self.classify(stack)
        self.categories[category] += dt
        self.details[(category, detail)] += dt
        self.leaves[f"{stack[-1][0]}.{stack[-1][1]}"] += dt
        self.samples += 1
        return now

    def __enter__(self) -> StackSampler:
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> float:
        return sum(self.categories.values())
