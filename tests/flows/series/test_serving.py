"""REST serving: a real ``mlflow models serve`` of the champion answers the last window of a
real series with exactly the forecast the ``forecast`` flow wrote for that origin."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text

from db import make_engine
from db.observations import read_observations
from flows.series.forecast import forecast
from flows.series.ingest import ingest
from flows.series.params import ForecastParams, IngestParams, TrainParams
from flows.series.train import train_forecasters
from flows.tracking.registry import load_forecaster
from tests.support.model_serving import post_json, served_model
from tests.support.trained_store import tiny_prices

pytestmark = pytest.mark.slow
COLUMNS = ["series_id", "ts", "step", "yhat", "yhat_lower", "yhat_upper"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_served_champion_answers_as_the_forecast_flow_wrote(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    ingest(IngestParams(bundled=["stocks"]))
    group = tiny_prices(("gru",))
    train_forecasters(TrainParams(groups=[group]))
    name = group.registered_model
    # The tiny model may not beat seasonal naive (then it is not promoted): set the alias.
    MlflowClient().set_registered_model_alias(name, "champion", "1")
    written = forecast(ForecastParams(groups=[group])).run("prices")
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    with engine.connect() as conn:
        flow_rows = pd.read_sql(
            text(f"SELECT {', '.join(COLUMNS)} FROM forecasts WHERE run_id = :r"),
            conn,
            params={"r": written.run_id},
        )
    history = read_observations(engine, sorted(flow_rows["series_id"].unique()))
    engine.dispose()
    window = load_forecaster(name, "1").spec.model.window
    last = history.groupby("series_id").tail(window)
    request = {
        "dataframe_split": {
            "columns": ["series_id", "ts", "value"],
            "data": [[s, t.isoformat(), v] for s, t, v in last.itertuples(index=False)],
        }
    }

    with served_model(f"models:/{name}@champion", tmp_path) as url:
        status, answer = post_json(f"{url}/invocations", request)
        assert status == 200, answer
        unknown = [["no-such-series", *row[1:]] for row in request["dataframe_split"]["data"]]
        bad_status, refused = post_json(
            f"{url}/invocations",
            {"dataframe_split": {"columns": ["series_id", "ts", "value"], "data": unknown}},
        )

    served = pd.DataFrame(answer["predictions"])
    assert list(served.columns) == COLUMNS
    served["ts"] = pd.to_datetime(served["ts"], utc=True)
    flow_rows["ts"] = pd.to_datetime(flow_rows["ts"], utc=True)
    key = ["series_id", "step"]
    served = served.sort_values(key).reset_index(drop=True)
    expected = flow_rows.sort_values(key).reset_index(drop=True)
    assert len(served) == len(expected) == 5 * group.horizon
    pd.testing.assert_series_equal(served["ts"], expected["ts"])
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        assert served[column].to_numpy() == pytest.approx(expected[column].to_numpy(), abs=1e-5)
    # A series the model does not know is a client error saying what to do.
    assert bad_status == 400, refused
    assert "no-such-series: series was not in the training data; retrain" in refused["message"]
