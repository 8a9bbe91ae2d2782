"""Progress bars for the command line: ingest rows, training epochs, forecast groups.

Bars exist only inside :func:`session`, which the ``seqcast`` CLI opens around each command;
a session draws on stderr when stderr is a terminal, or when ``SEQCAST_PROGRESS=1`` asks for it
(``SEQCAST_PROGRESS=0`` turns them off). Flows run by a Prefect worker, by tests or by any
other caller open no session, so their logs never fill with bar redraws.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:  # annotations only: the CLI opens a session before it loads any model code
    import pandas as pd

    from forecasting.forecaster import ForecasterSpec

T = TypeVar("T")
_lock = threading.Lock()
_active: Progress | None = None
_open_epochs: list[tuple[TaskID, int]] = []


def wanted(stream: object = None) -> bool:
    """Whether bars should be drawn: ``SEQCAST_PROGRESS`` if set, else "stderr is a TTY"."""
    flag = os.environ.get("SEQCAST_PROGRESS", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


@contextmanager
def session(console: Console | None = None) -> Iterator[Progress | None]:
    """Show bars for the work done inside, when :func:`wanted`; else do nothing."""
    global _active
    if not wanted() or _active is not None:
        yield _active
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        # Piped output (SEQCAST_PROGRESS=1 in CI logs) gets wide lines instead of 80 columns.
        console=console or Console(stderr=True, width=None if sys.stderr.isatty() else 160),
    )
    with progress:
        _active = progress
        try:
            yield progress
        finally:
            _finish_epochs()
            _active = None


def active() -> Progress | None:
    """The open session's bars, if any."""
    return _active


def _finish_epochs() -> None:
    """Early stopping ends training before max_epochs: close such bars at the epochs run."""
    with _lock:
        for task_id, _ in _open_epochs:
            if _active is not None:
                done = _active.tasks[task_id].completed if task_id in _active.task_ids else 0
                _active.update(task_id, total=done, completed=done)
        _open_epochs.clear()


class EpochBar:
    """Training callback: one bar per model, advanced each epoch with the validation loss."""

    def __init__(self, progress: Progress, label: str, max_epochs: int) -> None:
        self.progress, self.label = progress, label
        self.task = progress.add_task(f"train {label}", total=max_epochs)

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.progress.update(
            self.task,
            completed=epoch,
            description=(
                f"train {self.label} (train {metrics.get('train_loss', float('nan')):.4f}, "
                f"val {metrics.get('val_loss', float('nan')):.4f})"
            ),
        )


def epoch_progress(label: str, spec: ForecasterSpec) -> list[EpochBar]:
    """Callbacks for ``fit``: a bar when a session is open, none otherwise."""
    progress = _active
    if progress is None:
        return []
    _finish_epochs()  # the previous model's bar, if it stopped early
    bar = EpochBar(progress, label, spec.train.max_epochs)
    with _lock:
        _open_epochs.append((bar.task, spec.train.max_epochs))
    return [bar]


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items``, advancing a bar by one per item when a session is open."""
    progress = _active
    if progress is None:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    task = progress.add_task(description, total=total)
    for item in items:
        yield item
        progress.advance(task)
    progress.update(task, total=progress.tasks[task].completed)


def track_rows(chunks: Iterable[pd.DataFrame], description: str) -> Iterator[pd.DataFrame]:
    """Iterate chunks of a source, counting rows (the total is unknown while streaming)."""
    progress = _active
    if progress is None:
        yield from chunks
        return
    task = progress.add_task(f"{description} rows", total=None)
    rows = 0
    for chunk in chunks:
        yield chunk
        rows += len(chunk)
        progress.update(task, completed=rows)
    progress.update(task, total=rows, completed=rows)
