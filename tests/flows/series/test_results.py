"""The typed summaries: one table built once for every view."""

from __future__ import annotations

import pytest

from flows.cli.forecasting import print_training
from flows.series.pipeline import pipeline_report
from flows.series.results import (
    FORECAST_COLUMNS,
    TRAINING_COLUMNS,
    CandidateResult,
    ForecastSkipped,
    ForecastSummary,
    GroupForecast,
    GroupTraining,
    PipelineSummary,
    TrainingSummary,
)
from flows.series.train import training_report
from flows.tracking.promotion import Challenger, ChampionScore, decide


def training() -> TrainingSummary:
    decision = decide(Challenger("gru", "2", 0.8, 1.0), ChampionScore("0", score=0.9))
    metrics = {"backtest_mase": 0.8, "backtest_smape": 12.345, "seasonal_naive_mase": 1.0}
    glucose = GroupTraining(
        group="glucose",
        registered_model="seqcast-glucose",
        parent_run_id="p1",
        rows=100,
        series=1,
        candidates=(
            CandidateResult("lstm", "1", "r1", {**metrics, "backtest_mase": 0.85}),
            CandidateResult("gru", "2", "r2", metrics),
        ),
        decision=decision,
    )
    return TrainingSummary((glucose,))


def test_candidate_rows_are_the_table_every_view_shows() -> None:
    rows = training().candidate_rows()
    assert [(r["model"], r["version"], r["champion"]) for r in rows] == [
        ("lstm", "1", ""),
        ("gru", "2", "yes"),
    ]
    assert rows[1]["MASE"] == "0.800" and rows[1]["sMAPE"] == "12.35"
    assert rows[1]["seasonal-naive MASE"] == "1.000" and rows[1]["MAE"] == "nan"
    assert set(TRAINING_COLUMNS) <= set(rows[0])


def test_the_training_report_shows_the_candidates_and_the_decision() -> None:
    report = training_report(training())
    assert report.splitlines()[0] == (
        "| group | model | version | MASE | sMAPE | seasonal-naive MASE | seasonal-naive sMAPE "
        "| MLflow run |"
    )
    assert "| glucose | gru | 2 | 0.800 | 12.35 | 1.000 | nan | `runs:/r2` |" in report
    assert "**glucose** (100 rows, 1 series; parent run `runs:/p1`): champion is now v2." in report


def test_print_training_shows_the_groups_that_trained(capsys: pytest.CaptureFixture[str]) -> None:
    print_training(training())
    out = capsys.readouterr().out
    assert "glucose" in out and "gru" in out


def forecasts() -> ForecastSummary:
    return ForecastSummary(
        (
            GroupForecast("glucose", "seqcast-glucose v2", "2", "r2", 7, 12, 1, True, {}),
            ForecastSkipped("prices", "no seqcast-prices@champion; run train-forecasters first"),
        )
    )


def test_forecast_rows_are_the_table_every_view_shows() -> None:
    rows = forecasts().rows()
    assert [r["group"] for r in rows] == ["glucose", "prices"]
    assert {k: rows[0][k] for k in FORECAST_COLUMNS if k in rows[0]} == {
        "group": "glucose",
        "model": "seqcast-glucose v2",
        "run_id": 7,
        "rows": 12,
        "series": 1,
        "created": True,
    }
    assert rows[1]["skipped"].startswith("no seqcast-prices@champion")
    assert forecasts().run("glucose").run_id == 7
    with pytest.raises(LookupError, match="no seqcast-prices@champion"):
        forecasts().run("prices")


def test_the_pipeline_report_shows_each_group() -> None:
    retrain = {"glucose": "retrain: no champion", "prices": "no retrain: x"}
    summary = PipelineSummary([], retrain, training(), forecasts())
    lines = pipeline_report(summary).splitlines()
    assert lines[2] == (
        "| glucose | retrain: no champion | promoted: gru v2 (run `runs:/p1`) | 12 rows, run 7 |"
    )
    assert lines[3] == (
        "| prices | no retrain: x | - | no seqcast-prices@champion; run train-forecasters first |"
    )
