"""Live accuracy: forecast error once actuals arrived, from the ``forecast_vs_actual`` view."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, text


def live_errors(engine: Engine, model_name: str, model_version: str) -> pd.DataFrame:
    """Per series: ``n`` forecasts with an actual and their ``mae``, for one model version.

    Only rows forecast by that version count, so these are actuals that arrived after the
    version was trained (it cannot have forecast earlier).
    """
    sql = text(
        "SELECT series_id, COUNT(*) AS n, AVG(abs_error) AS mae FROM forecast_vs_actual "
        "WHERE model_name = :name AND model_version = :version GROUP BY series_id "
        "ORDER BY series_id"
    )
    with engine.connect() as conn:
        frame = pd.read_sql(sql, conn, params={"name": model_name, "version": str(model_version)})
    return frame.astype({"series_id": str, "n": "int64", "mae": "float64"})
