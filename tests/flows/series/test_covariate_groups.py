"""Groups declare covariates in the project file; training and forecasting read them from the
covariates table, forecasting refuses a known-future one missing over the horizon, and MLflow
records which covariates a model version uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, delete, text

from db import make_engine
from db.covariates import (
    AttributeDeclaration,
    CovariateDeclaration,
    ingest_attributes,
    ingest_covariates,
)
from db.ingest import ingest_observations
from db.observations import SeriesSpec
from db.schema import covariates
from flows.errors import SeqcastError
from flows.project import load_project
from flows.series.covariates import CovariateSetting, covariate_tags
from flows.series.data import read_group, read_recent_group
from flows.series.forecast import forecast, history_needed
from flows.series.params import ForecastParams, ModelGroup, TrainParams
from flows.series.results import GroupsFailed
from flows.series.torchrun import fit_with_torchrun
from flows.series.train import train_forecasters
from forecasting.errors import CovariateError
from forecasting.forecaster import GlobalForecaster

N, H = 200, 4
IDS = ("p1", "p2")
TS = pd.date_range("2024-01-01", periods=N + H, freq="h", tz="UTC")
COVARIATES = [
    CovariateSetting(name="temp", kind="known_future"),
    CovariateSetting(name="mood", kind="past_only", missing="ffill"),
]


def _group(**overrides: object) -> ModelGroup:
    settings: dict[str, object] = dict(
        name="load", series_kind="load", cells=["gru"], window=12, horizon=H, season_length=24,
        hidden_size=8, num_layers=1, max_epochs=2, windows_per_epoch=128, batch_size=32,
        val_size=24, test_size=8, covariates=COVARIATES,
    )  # fmt: skip
    settings.update(overrides)
    return ModelGroup.model_validate(settings)


def _long(rows: dict[str, np.ndarray], ts: pd.DatetimeIndex) -> pd.DataFrame:
    frame = pd.concat(
        [pd.DataFrame({"scope_key": k, "ts": [t.isoformat() for t in ts], "value": v})
         for k, v in rows.items()],
        ignore_index=True,
    )  # fmt: skip
    frame["value"] = frame["value"].astype(str)
    frame["row_number"] = range(2, len(frame) + 2)
    return frame


def _load(engine: Engine) -> None:
    """Two hourly series, a known-future temperature per series over history and horizon,
    and a group-wide past-only mood every other hour up to the last observation."""
    rng = np.random.default_rng(1)
    temp = {sid: np.sin(np.arange(N + H) / 4) + k for k, sid in enumerate(IDS)}
    obs = _long({sid: temp[sid][:N] + rng.normal(0, 0.1, N) for sid in IDS}, TS[:N])
    obs = obs.rename(columns={"scope_key": "series_id"})
    ingest_observations(engine, obs, "obs.csv", "obs", SeriesSpec(kind="load", freq="h"))
    known = CovariateDeclaration("known_future", "series", "temp")
    ingest_covariates(engine, _long(temp, TS), "temp.csv", "temp", known)
    sizes = pd.DataFrame({"series_id": IDS, "value": ["big", "small"], "row_number": [2, 3]})
    ingest_attributes(engine, sizes, "s.csv", "s", AttributeDeclaration("categorical", "size"))
    mood = _long({"load": rng.normal(size=N // 2)}, TS[:N:2])
    ingest_covariates(
        engine, mood, "mood.csv", "mood", CovariateDeclaration("past_only", "group", "mood")
    )


def test_the_project_file_declares_covariates_and_refuses_bad_ones(tmp_path: Path) -> None:
    def project(covariates: str, settings: str = "") -> Path:
        path = tmp_path / "seqcast.yaml"
        path.write_text(
            "groups:\n  - name: load\n    select: {kind: load}\n    horizon: 4\n"
            f"    covariates: {covariates}\n{settings}"
        )
        return path

    good = load_project(project("[{name: temp, kind: known_future, missing: ffill}]"))
    assert good.groups[0].covariates == [
        CovariateSetting(name="temp", kind="known_future", missing="ffill")
    ]
    with pytest.raises(
        SeqcastError,
        match=r"groups\[0\] \(name: load\)\.covariates\[0\] \(name: temp\)\.kind: Input should "
        r"be 'known_future' or 'past_only'",
    ):
        load_project(project("[{name: temp, kind: future}]"))
    with pytest.raises(
        SeqcastError, match=r"\(name: temp\)\.missing: Input should be 'error', 'ffill' or 'zero'"
    ):
        load_project(project("[{name: temp, kind: past_only, missing: interpolate}]"))
    rain = load_project(project("[{name: rain, kind: past_only, resample: sum}]"))
    assert rain.groups[0].covariates[0].resample == "sum"
    assert (
        rain.groups[0].covariates[0].describe() == "rain (past_only, missing: error, resample: sum)"
    )
    with pytest.raises(
        SeqcastError, match=r"\(name: rain\)\.resample: Input should be 'mean', 'sum', 'first'"
    ):
        load_project(project("[{name: rain, kind: past_only, resample: median}]"))
    with pytest.raises(SeqcastError, match=r"declared once each; repeated: \['temp'\]"):
        load_project(project("[{name: temp, kind: past_only}, {name: temp, kind: known_future}]"))
    with pytest.raises(SeqcastError, match="covariates and attributes at the group's top level"):
        load_project(project("[]", "    settings: {covariates: []}\n"))
    with pytest.raises(SeqcastError, match=r"attributes are declared once each; repeated: \['a'\]"):
        load_project(project("[]", "    attributes: [a, a]\n"))
    spec = _group(attributes=["size"]).spec("gru")
    assert (spec.exogenous, spec.past_covariates) == (("temp",), ("mood",))
    assert spec.static_attributes == ("size",)
    assert spec.covariates.policies == {"temp": "error", "mood": "ffill"}
    assert spec.covariates.rules == {"temp": "mean", "mood": "mean"}


def test_training_and_forecast_reads_bring_the_groups_covariates(engine: Engine) -> None:
    _load(engine)
    group = _group(attributes=["size"])
    data = read_group(engine, group)
    assert data.static is not None and data.static["value"].tolist() == ["big", "small"]
    assert data.exogenous is not None and list(data.exogenous.columns) == [
        "series_id",
        "ts",
        "temp",
        "mood",
    ]
    assert data.exogenous["temp"].notna().sum() == 2 * (N + H)  # the horizon included
    assert data.exogenous["mood"].notna().sum() == 2 * N // 2  # the group's, for each series
    model = GlobalForecaster(group.spec("gru"))
    model.fit(data.frame, data.freqs, exogenous=data.exogenous, static=data.static)
    assert model.model_config.n_static == 2  # size=big, size=small
    with engine.begin() as conn:  # the last mood is older than any window: ffill carries it
        conn.execute(
            delete(covariates).where(covariates.c.name == "mood", covariates.c.ts > TS[100])
        )
    data = read_group(engine, group)
    recent = read_recent_group(engine, group, history_needed(model), model.spec)
    rows, skipped = model.predict(recent.frame, recent.exogenous)
    assert skipped == {} and len(rows) == 2 * H
    # The covariates read is bounded like the observations, and forecasts as the full read
    assert recent.exogenous is not None and data.exogenous is not None
    assert len(recent.exogenous) < len(data.exogenous) / 4
    pd.testing.assert_frame_equal(rows, model.predict(data.frame, data.exogenous)[0])
    # The snapshot hash covers the covariates: a changed value is another input.
    with engine.begin() as conn:
        conn.execute(text("UPDATE covariates SET value = value + 1 WHERE name = 'temp'"))
    assert read_group(engine, group).sha256 != data.sha256
    c = covariates.c
    with engine.begin() as conn:  # p2's temperature stops at the last observation
        conn.execute(
            delete(covariates).where(c.name == "temp", c.scope_key == "p2", c.ts > TS[N - 1])
        )
    recent = read_recent_group(engine, group, history_needed(model), model.spec)
    with pytest.raises(
        CovariateError,
        match="series 'p2': known-future covariate 'temp' is missing over the forecast horizon",
    ):
        model.predict(recent.frame, recent.exogenous)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_torchrun_trains_with_covariates_and_attributes_as_one_process_does(
    engine: Engine,
) -> None:
    """Two DDP processes (gloo) get the covariates and attributes and train what one does."""
    _load(engine)
    group = _group(attributes=["size"], dropout=0.0, processes=2)
    spec = group.spec("gru")
    data = read_group(engine, group)
    assert data.exogenous is not None and data.static is not None
    ddp, result = fit_with_torchrun(
        spec, data.frame, data.freqs, 2, exogenous=data.exogenous, static=data.static
    )
    assert result.world_size == 2 and ddp.model_config.n_static == 2
    single = GlobalForecaster(spec)
    reference = single.fit(data.frame, data.freqs, exogenous=data.exogenous, static=data.static)
    np.testing.assert_allclose(
        [h["val_loss"] for h in result.history],
        [h["val_loss"] for h in reference.history],
        rtol=1e-4,
    )
    a, _ = single.predict(data.frame, data.exogenous)
    b, _ = ddp.predict(data.frame, data.exogenous)
    np.testing.assert_allclose(a["yhat"], b["yhat"], rtol=1e-4)


def test_a_covariate_not_stored_or_stored_as_the_other_kind_is_refused(engine: Engine) -> None:
    _load(engine)
    unknown = _group(covariates=[CovariateSetting(name="rain", kind="known_future")])
    with pytest.raises(
        SeqcastError,
        match=r"covariate 'rain' has no values in the covariates table; ingest them "
        r"\(seqcast ingest covariates FILE --name rain --kind known_future\)",
    ):
        read_group(engine, unknown)
    with pytest.raises(SeqcastError, match=r"no series of it has attribute\(s\) \['floor'\]"):
        read_group(engine, _group(attributes=["floor"]))
    swapped = _group(covariates=[CovariateSetting(name="mood", kind="known_future")])
    with pytest.raises(
        SeqcastError, match="'mood' is known_future for this model but stored as past_only"
    ):
        read_group(engine, swapped)


def test_covariate_tags_name_each_kind_policy_and_rule() -> None:
    settings = [*COVARIATES, CovariateSetting(name="rain", kind="past_only", resample="sum")]
    assert covariate_tags(_group(covariates=settings).spec("gru")) == {
        "covariates.known_future": "temp",
        "covariates.past_only": "mood,rain",
        "covariates.missing": "temp=error,mood=ffill,rain=error",
        "covariates.resample": "temp=mean,mood=mean,rain=sum",
    }


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_train_and_forecast_flows_use_and_record_the_covariates(
    service_env: dict[str, str],
) -> None:
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    _load(engine)
    group = _group(attributes=["size"])
    train_forecasters(TrainParams(groups=[group]))
    client = MlflowClient()
    (version,) = client.search_model_versions("name = 'seqcast-load'")
    assert version.tags["covariates.known_future"] == "temp"
    assert version.tags["covariates.past_only"] == "mood"
    run = client.get_run(version.run_id)
    assert run.data.tags["covariates.missing"] == "temp=error,mood=ffill"
    assert run.data.params["past_covariates"] == "('mood',)"
    assert run.data.tags["attributes"] == "size"
    # A tiny model need not beat seasonal naive (promotion's bar): forecast with it anyway.
    client.set_registered_model_alias("seqcast-load", "champion", version.version)
    summary = forecast(ForecastParams(groups=[group]))
    assert not summary.failed
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM forecasts")).scalar_one() == 2 * H
        conn.execute(text("DELETE FROM covariates WHERE name = 'temp' AND scope_key = 'p1'"))
    with pytest.raises(GroupsFailed, match=r"series 'p1'.*'temp'"):
        forecast(ForecastParams(groups=[group]))
    engine.dispose()
