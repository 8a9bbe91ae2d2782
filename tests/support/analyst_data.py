"""A small real database for the analysts' views: stock prices and forecasts issued over time.

Real daily closes of three tickers are ingested; one tiny GRU is trained on the part before
the first issue date, then forecasts are issued every 3 trading days over the last 60, each
from the data as it stood that day (so targets overlap: several vintages per target, most
with actuals), and a last forecast from all the data (targets in the future, no actuals).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from db.forecasts import ForecastRun, write_forecast_run
from db.ingest import ingest_observations
from db.observations import SeriesSpec
from flows.series.data import snapshot_hash
from flows.series.params import ModelGroup
from forecasting.forecaster import GlobalForecaster

TICKERS = ("stock-AAPL", "stock-IBM", "stock-MSFT")
DAYS = 600  # trading days per series
ISSUE_EVERY = 3
ISSUE_SPAN = 60
MODEL = "seqcast-prices"


@dataclass
class AnalystData:
    """The observations, a fitted forecaster and the issue dates of the forecast runs."""

    frame: pd.DataFrame
    forecaster: GlobalForecaster
    issue_dates: list[pd.Timestamp]


def build(stocks: pd.DataFrame) -> AnalystData:
    """Fit the tiny model once (it is shared by every database filled from it)."""
    frame = (
        stocks[stocks["series_id"].isin(TICKERS)]
        .sort_values(["series_id", "ts"])
        .groupby("series_id")
        .tail(DAYS)
        .reset_index(drop=True)
    )
    dates = sorted(frame["ts"].unique())
    issue_dates = [pd.Timestamp(d) for d in dates[-ISSUE_SPAN - 1 : -1 : ISSUE_EVERY]]
    group = ModelGroup(
        name="prices",
        series_ids=list(TICKERS),
        cells=["gru"],
        window=20,
        horizon=5,
        season_length=5,
        hidden_size=8,
        num_layers=1,
        max_epochs=2,
        windows_per_epoch=256,
        batch_size=64,
        val_size=60,
        test_size=30,
    )
    forecaster = GlobalForecaster(group.spec("gru"))
    forecaster.fit(frame[frame["ts"] <= issue_dates[0]], dict.fromkeys(TICKERS, "B"))
    return AnalystData(frame, forecaster, issue_dates)


def fill(engine: Engine, data: AnalystData) -> int:
    """Ingest the observations and write every forecast run; return the number of runs."""
    raw = pd.DataFrame(
        {
            "series_id": data.frame["series_id"],
            "ts": data.frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "value": data.frame["value"].map(repr),
            "row_number": range(2, len(data.frame) + 2),
        }
    )
    digest = hashlib.sha256(raw.to_csv().encode()).hexdigest()
    result = ingest_observations(engine, raw, "test:stocks", digest, SeriesSpec("price", "B"))
    assert result.rejected == 0
    runs = 0
    for issued in [*data.issue_dates, data.frame["ts"].max()]:
        seen = data.frame[data.frame["ts"] <= issued]
        rows, skipped = data.forecaster.predict(seen)
        assert not skipped and len(rows) == len(TICKERS) * 5
        run = ForecastRun(
            model_name=MODEL,
            model_version="1",
            mlflow_run_id="0" * 32,
            horizon=5,
            issued_at=pd.Timestamp(issued).to_pydatetime(),
            input_sha256=snapshot_hash(seen),
        )
        assert write_forecast_run(engine, run, rows).created
        runs += 1
    return runs
