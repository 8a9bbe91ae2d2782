"""Progress bars: drawn for the CLI on a terminal or when asked, never in logs otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from flows import progress
from flows.cli import app
from flows.series.params import ModelGroup
from forecasting.forecaster import GlobalForecaster


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("flag", "tty", "expected"),
    [(None, False, False), (None, True, True), ("1", False, True), ("0", True, False)],
)
def test_bars_are_wanted_on_a_terminal_or_when_asked(
    flag: str | None, tty: bool, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if flag is None:
        monkeypatch.delenv("SEQCAST_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("SEQCAST_PROGRESS", flag)
    assert progress.wanted(_Stream(tty)) is expected


def test_without_a_session_nothing_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQCAST_PROGRESS", "1")
    assert progress.active() is None
    assert list(progress.track([1, 2], "x")) == [1, 2]  # what a Prefect worker sees
    spec = ModelGroup(name="g", series_kind="price").spec("gru")
    assert progress.epoch_progress("g gru", spec) == []


@pytest.mark.slow
def test_epoch_bars_follow_real_training(
    stocks: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_PROGRESS", "1")
    frame = stocks[stocks["series_id"].isin(["stock-AAPL", "stock-IBM"])]
    group = ModelGroup(
        name="prices", series_kind="price", window=20, horizon=5, season_length=5,
        hidden_size=8, num_layers=1, max_epochs=3, windows_per_epoch=256, batch_size=64,
        val_size=100, test_size=50,
    )  # fmt: skip
    spec = group.spec("gru")
    out = io.StringIO()
    with progress.session(Console(file=out, width=150)) as bars:
        assert bars is not None
        result = GlobalForecaster(spec).fit(
            frame, dict.fromkeys(frame["series_id"].unique(), "B"),
            progress.epoch_progress("prices gru", spec),
        )  # fmt: skip
        task = bars.tasks[0]
        assert task.completed == len(result.history) and task.total == 3
    last = result.history[-1]
    assert f"val {last['val_loss']:.4f}" in task.description
    assert "train prices gru" in out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("flag", ["1", "0"])
def test_cli_ingest_counts_rows_only_when_bars_are_wanted(
    flag: str, service_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEQCAST_PROGRESS", flag)
    path = tmp_path / "obs.csv"
    lines = [f"room-1,2024-01-01T{h:02d}:00:00+00:00,{20 + h / 10}" for h in range(24)]
    path.write_text("series_id,ts,value\n" + "\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["ingest", str(path), "--kind", "sensor", "--freq", "h"])
    assert result.exit_code == 0, result.output
    bar = f"ingest {path.name} rows"
    if flag == "1":
        assert bar in result.stderr and "24/24" in result.stderr
    else:
        assert bar not in result.output and bar not in result.stderr
