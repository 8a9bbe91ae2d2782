"""The typed summaries: one table built once for every view, failures kept with their reason,
and a failed flow's exception that carries the summary (and survives pickling)."""

from __future__ import annotations

import pickle

import pytest

from flows.cli.forecasting import print_training
from flows.errors import SeqcastError
from flows.series.forecast import forecast_artifact_rows
from flows.series.pipeline import pipeline_report
from flows.series.results import (
    FORECAST_COLUMNS,
    TRAINING_COLUMNS,
    CandidateResult,
    ForecastSkipped,
    ForecastSummary,
    GroupFailure,
    GroupForecast,
    GroupsFailed,
    GroupTraining,
    PipelineSummary,
    TrainingSummary,
    summary_of,
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
    failed = GroupFailure.of("weather", SeqcastError("group 'weather': no active series"))
    return TrainingSummary((glucose, failed))


def test_candidate_rows_are_the_table_every_view_shows() -> None:
    rows = training().candidate_rows()
    assert [(r["model"], r["version"], r["champion"]) for r in rows] == [
        ("lstm", "1", ""),
        ("gru", "2", "yes"),
    ]
    assert rows[1]["MASE"] == "0.800" and rows[1]["sMAPE"] == "12.35"
    assert rows[1]["seasonal-naive MASE"] == "1.000" and rows[1]["MAE"] == "nan"
    assert set(TRAINING_COLUMNS) <= set(rows[0])


def test_the_training_report_shows_the_candidates_the_decision_and_the_failure() -> None:
    report = training_report(training())
    assert report.splitlines()[0] == (
        "| group | model | version | MASE | sMAPE | seasonal-naive MASE | seasonal-naive sMAPE "
        "| MLflow run |"
    )
    assert "| glucose | gru | 2 | 0.800 | 12.35 | 1.000 | nan | `runs:/r2` |" in report
    assert "**glucose** (100 rows, 1 series; parent run `runs:/p1`): champion is now v2." in report
    assert "**weather**: failed: group 'weather': no active series" in report


def test_print_training_shows_the_groups_that_trained(capsys: pytest.CaptureFixture[str]) -> None:
    print_training(training())
    out = capsys.readouterr().out
    assert "glucose" in out and "gru" in out and "weather" not in out


def test_a_bug_is_a_failure_with_its_exception_type() -> None:
    user = GroupFailure.of("a", SeqcastError("group 'a': no data\nmore"))
    assert (user.error, user.user_error, user.reason) == (
        "SeqcastError",
        True,
        "group 'a': no data",
    )
    bug = GroupFailure.of("b", KeyError("cell"))
    assert (bug.error, bug.user_error, bug.reason) == ("KeyError", False, "KeyError: 'cell'")


def forecasts() -> ForecastSummary:
    return ForecastSummary(
        (
            GroupForecast("glucose", "seqcast-glucose v2", "2", "r2", 7, 12, 1, True, {}),
            ForecastSkipped("prices", "no seqcast-prices@champion; run train-forecasters first"),
            GroupFailure.of("weather", KeyError("ts")),
        )
    )


def test_forecast_rows_leave_the_failures_to_their_own_lines() -> None:
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
    with pytest.raises(LookupError, match="KeyError: 'ts'"):
        forecasts().run("weather")


def test_the_pipeline_report_names_each_failure() -> None:
    retrain = {"glucose": "retrain: no champion", "weather": "retrain: x"}
    summary = PipelineSummary([], retrain, training(), forecasts())
    lines = pipeline_report(summary).splitlines()
    assert lines[2] == (
        "| glucose | retrain: no champion | promoted: gru v2 (run `runs:/p1`) | 12 rows, run 7 |"
    )
    assert lines[3] == (
        "| weather | retrain: x | failed: group 'weather': no active series "
        "| failed: KeyError: 'ts' |"
    )
    assert [f.group for f in summary.failed] == ["weather", "weather"]


def test_a_failed_flow_carries_its_summary_through_pickling() -> None:
    summary = training()
    exc = GroupsFailed(summary, summary.failed)
    assert str(exc) == "1 group(s) failed: weather (group 'weather': no active series)"
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, GroupsFailed) and isinstance(again, SeqcastError)
    assert again.summary == summary and str(again) == str(exc)

    def run() -> TrainingSummary:
        raise exc

    assert summary_of(run) is summary


def test_the_forecast_artifact_shows_each_failure() -> None:
    rows = forecast_artifact_rows(forecasts())
    assert rows[0]["mlflow_run"] == "`runs:/r2`" and rows[0]["created"] == "True"
    assert rows[2] == {"group": "weather", "failed": "KeyError: 'ts'"}
