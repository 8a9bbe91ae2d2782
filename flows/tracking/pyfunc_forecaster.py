"""MLflow "models from code" file of a seqcast forecaster: raw recent history in, forecasts out.

:func:`flows.tracking.registry.log_forecaster` logs this file as the model's code; MLflow runs
it when the model is loaded (``mlflow.pyfunc.load_model``, ``mlflow models serve``), so no
pickled object is written or read. The weights, scalers and intervals come from seqcast's own
artifact, loaded with ``torch.load(weights_only=True)``: a single forecaster's
(:meth:`GlobalForecaster.load`) or a median ensemble's (:meth:`EnsembleForecaster.load`, every
member in one file, each answer the members' median), whichever the model was logged with.

It imports only ``forecasting`` (logged beside it as a code path), pandas and MLflow.

Request: one row per observation, columns ``series_id``, ``ts`` (ISO 8601; naive means UTC)
and ``value`` in the series' units, the most recent ``window`` points of each series at least.
A model with exogenous covariates also takes one column per covariate, on the history rows and
on ``horizon`` future rows whose ``value`` is empty (past-only covariates may be empty there:
they are never read after the last observation). Response: ``series_id, ts, step, yhat,
yhat_lower, yhat_upper`` in the series' units, ``ts`` being the target time (ISO 8601, UTC).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

from forecasting.ensemble import Forecaster, load_forecaster_file
from forecasting.errors import PanelError
from forecasting.forecaster import FORECAST_COLUMNS

ARTIFACT_KEY = "forecaster"
REQUEST_COLUMNS = ("series_id", "ts", "value")


def _refuse(message: str) -> MlflowException:
    # INVALID_PARAMETER_VALUE: the scoring server answers 400 with this message.
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def forecast_request(forecaster: Forecaster, request: pd.DataFrame) -> pd.DataFrame:
    """Forecast every series in ``request`` (see the module docstring for both shapes).

    Raises:
        MlflowException: a column is missing, a timestamp does not parse, or a series cannot
            be forecast (unknown to the model, too short, gaps, covariates missing).
    """
    names = list(forecaster.spec.covariates.exogenous)
    missing = [c for c in (*REQUEST_COLUMNS, *names) if c not in request.columns]
    if missing:
        raise _refuse(f"the request lacks columns {missing}; send {[*REQUEST_COLUMNS, *names]}")
    frame = request.loc[:, [*REQUEST_COLUMNS, *names]].copy()
    frame["series_id"] = frame["series_id"].astype(str)
    try:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise _refuse(f"ts must be ISO 8601 timestamps and value numbers: {exc}") from exc
    history = frame.loc[frame["value"].notna(), list(REQUEST_COLUMNS)]
    exogenous = frame.loc[:, ["series_id", "ts", *names]] if names else None
    try:
        rows, skipped = forecaster.predict(history, exogenous)
    except PanelError as exc:  # a covariate missing (named), or a bad frame
        raise _refuse(str(exc)) from exc
    if skipped:
        reasons = "; ".join(f"{sid}: {why}" for sid, why in sorted(skipped.items()))
        raise _refuse(f"cannot forecast {len(skipped)} series ({reasons})")
    out = rows.loc[:, FORECAST_COLUMNS].reset_index(drop=True)
    out["ts"] = pd.to_datetime(out["ts"], utc=True).map(lambda t: t.isoformat())
    out["step"] = out["step"].astype("int64")
    return out


class ForecasterModel(PythonModel):
    """pyfunc wrapper of :class:`GlobalForecaster` or :class:`EnsembleForecaster`."""

    def load_context(self, context: PythonModelContext) -> None:
        self.forecaster = load_forecaster_file(context.artifacts[ARTIFACT_KEY])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        return forecast_request(self.forecaster, model_input)


mlflow.models.set_model(ForecasterModel())
