"""Training fanned out over a local Dask cluster (two workers) gives the serial path's models."""

from __future__ import annotations

import pandas as pd
import pytest

from db import make_engine
from flows.series.data import read_group
from flows.series.ingest import ingest
from flows.series.params import IngestParams, ModelGroup, TrainParams
from flows.series.train import train_forecasters
from flows.tracking.registry import load_forecaster
from tests.support.groups import tiny_groups

pytestmark = pytest.mark.slow


def groups() -> list[ModelGroup]:
    return tiny_groups(cells=["lstm"], dropout=0.0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dask_fan_out_matches_the_serial_path(service_env: dict[str, str]) -> None:
    ingest(IngestParams(bundled=["glucose", "stocks"]))
    serial = train_forecasters(TrainParams(groups=groups()))
    fanned = train_forecasters(TrainParams(groups=groups(), dask_address="local"))

    assert [o.group for o in fanned.outcomes] == ["glucose", "prices"]
    engine = make_engine(service_env["SEQCAST_DATABASE_URL"])
    for group in groups():
        a = serial.group(group.name).candidate("lstm")
        b = fanned.group(group.name).candidate("lstm")
        assert (a.version, b.version) == ("1", "2")
        for key in ("backtest_mae", "backtest_mase", "seasonal_naive_mae"):
            assert b.metrics[key] == pytest.approx(a.metrics[key], rel=1e-6), key
        data = read_group(engine, group)
        rows_a, _ = load_forecaster(group.registered_model, "1").predict(data.frame)
        rows_b, _ = load_forecaster(group.registered_model, "2").predict(data.frame)
        assert len(rows_a) > 0
        pd.testing.assert_frame_equal(rows_a, rows_b, rtol=1e-6)
        # Same scores on the same holdout: the fanned-out twin does not replace the champion.
        assert fanned.group(group.name).decision.promoted is False
    engine.dispose()
