"""The forecast's bounded read: the newest points each series' model needs, bounded per series
in SQL, giving exactly the forecasts that a read of the whole history gives."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import torch
from sqlalchemy import Engine

from db.ingest import ingest_observations
from db.observations import SeriesSpec
from flows.series.data import read_group, read_recent_group, recent_cut
from flows.series.forecast import history_needed
from flows.series.params import ModelGroup
from forecasting.forecaster import ForecasterSpec, GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig

GROUP = ModelGroup(name="glucose", series_kind="sensor")


@pytest.fixture(scope="module")
def forecaster(glucose: pd.DataFrame) -> Iterator[GlobalForecaster]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = GlobalForecaster(
        ForecasterSpec(
            model=RecurrentForecasterConfig(cell="gru", window=24, horizon=4, hidden_size=8),
            train=TrainConfig(max_epochs=1, windows_per_epoch=256),
            panel=PanelConfig(test_size=40, val_size=300, max_fill=3),
            season_length=288,
            calendar=("hour",),
        )
    )
    model.fit(glucose.iloc[:3000], {"cgm-glucose": "5min"})
    yield model
    torch.set_num_threads(threads)


def _bounded(frame: pd.DataFrame, points: int) -> pd.DataFrame:
    """What :func:`read_recent_group` reads, taken from a frame in memory."""
    cut = recent_cut(frame["ts"].max(), "5min", points)
    return frame[frame["ts"] >= cut]


def test_bounded_history_forecasts_like_the_whole_history_at_every_kind_of_origin(
    forecaster: GlobalForecaster, glucose: pd.DataFrame
) -> None:
    # Origins right after each gap in the real series (gaps of 1..many readings, so windows
    # whose first points are interpolated, cut by a long gap, or complete), plus regular ones.
    gaps = glucose.index[glucose["ts"].diff() > pd.Timedelta("5min")]
    origins = sorted({*[int(i) + k for i in gaps for k in (0, 1, 23, 24, 25, 27)], 800, 2500})
    origins = [o for o in origins if 100 <= o < len(glucose)][:120]
    assert len(origins) > 40
    points = history_needed(forecaster)
    compared = skipped = 0
    for origin in origins:
        full = glucose.iloc[: origin + 1]
        a, skip_a = forecaster.predict(full)
        b, skip_b = forecaster.predict(_bounded(full, points))
        assert skip_a.keys() == skip_b.keys(), origin
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        compared += len(a) > 0
        skipped += bool(skip_a)
    # Both outcomes occur among these origins, so both were compared.
    assert compared > 10 and skipped > 0, (compared, skipped)


def test_the_sql_read_is_bounded_per_series_and_forecasts_the_same(
    engine: Engine, forecaster: GlobalForecaster, glucose: pd.DataFrame
) -> None:
    part = glucose.iloc[:3000]
    other = part.assign(series_id="cgm-copy", value=part["value"] + 1.0).iloc[:2000]
    raw = pd.concat([part, other], ignore_index=True)
    raw["ts"] = raw["ts"].map(lambda t: t.isoformat())
    raw["row_number"] = range(2, len(raw) + 2)
    ingest_observations(engine, raw, "glucose.csv", "h1", SeriesSpec(kind="sensor", freq="5min"))
    points = history_needed(forecaster)

    full = read_group(engine, GROUP)
    recent = read_recent_group(engine, GROUP, points)
    for sid, rows in full.frame.groupby("series_id"):
        expected = _bounded(rows, points).reset_index(drop=True)
        got = recent.frame[recent.frame["series_id"] == sid].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)
        assert 0 < len(got) <= points + 1
    assert recent.freqs == full.freqs
    known = full.frame[full.frame["series_id"] == "cgm-glucose"]
    a, _ = forecaster.predict(known)
    b, _ = forecaster.predict(recent.frame[recent.frame["series_id"] == "cgm-glucose"])
    pd.testing.assert_frame_equal(a, b)
