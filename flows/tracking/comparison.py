"""What makes runs comparable in the MLflow UI: the dataset input, baseline runs and the
per-horizon error, all under the same metric keys for every model."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Protocol

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import PandasDataset, from_pandas
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from db.engine import database_url
from flows.tracking import plots
from flows.tracking.runs import child_run
from forecasting.backtest import BacktestResult
from forecasting.forecaster import GlobalForecaster

BASELINES = ("naive", "seasonal_naive")
MAX_ORIGINS = 40
SCHEMA_SAMPLE_ROWS = 256
# The dataset of a group's snapshot, built once (its schema is set from the column types, see
# dataset_schema): a training flow logs the same snapshot to the parent, every candidate and
# every baseline run.
_DATASETS: OrderedDict[tuple[str, str, str, str], PandasDataset] = OrderedDict()
_DATASETS_KEEP = 4
_DATASETS_LOCK = threading.Lock()


class SeriesGroup(Protocol):
    """What tracking needs of a model group: its name, how it selects series, its season."""

    @property
    def name(self) -> str: ...
    @property
    def series_kind(self) -> str | None: ...
    @property
    def series_ids(self) -> list[str] | None: ...
    @property
    def season_length(self) -> int: ...


class Snapshot(Protocol):
    """What tracking needs of a group's data: the long frame, frequencies and content hash."""

    @property
    def frame(self) -> pd.DataFrame: ...
    @property
    def freqs(self) -> dict[str, str]: ...
    @property
    def sha256(self) -> str: ...


def log_training_dataset(group: SeriesGroup, data: Snapshot) -> None:
    """Log the group's observations as the active run's MLflow dataset input ("training").

    The digest is the start of the snapshot hash (MLflow keeps 36 characters); the whole hash
    is the input's ``data_sha256`` tag, as on the run.
    """
    dataset = training_dataset(group, data)
    mlflow.log_input(dataset, context="training", tags={"data_sha256": data.sha256})


def training_dataset(group: SeriesGroup, data: Snapshot) -> PandasDataset:
    """The MLflow dataset of ``data``, shared by every run that logs the same snapshot."""
    from sqlalchemy.engine import make_url

    where = make_url(database_url()).render_as_string(hide_password=True)
    selector = (
        f"kind={group.series_kind}"
        if group.series_kind is not None
        else f"series_ids={','.join(group.series_ids or [])}"
    )
    key = (where, selector, group.name, data.sha256)
    with _DATASETS_LOCK:
        if key in _DATASETS:
            _DATASETS.move_to_end(key)
            return _DATASETS[key]
    source = CodeDatasetSource(
        {"database": where, "table": "observations", "selector": selector, "freqs": data.freqs}
    )
    dataset = from_pandas(
        data.frame, source=source, targets="value", name=group.name, digest=data.sha256[:36]
    )
    # PandasDataset.schema is a cached property: set here, MLflow never infers it itself.
    dataset.__dict__["schema"] = dataset_schema(data.frame)
    with _DATASETS_LOCK:
        _DATASETS[key] = dataset
        while len(_DATASETS) > _DATASETS_KEEP:
            _DATASETS.popitem(last=False)
    return dataset


def dataset_schema(frame: pd.DataFrame) -> Schema:
    """The MLflow schema MLflow would infer for ``frame``, without its pass over every value.

    MLflow checks the type of every value of an object column (0.3 s warm, 0.7 s in a new
    process for 85k rows); here types come from the first rows (columns seqcast writes hold
    one type each) and "required" from a vectorised missing-value check over all rows.
    """
    sample = infer_signature(frame.head(SCHEMA_SAMPLE_ROWS)).inputs
    missing = frame.isna().any()
    return Schema(
        [ColSpec(c.type, c.name, required=not bool(missing[c.name])) for c in sample.inputs]
    )


def log_baseline_runs(
    group: SeriesGroup,
    data: Snapshot,
    backtest: BacktestResult,
    parent_run_id: str,
    tags: dict[str, str],
) -> list[str]:
    """One child run per baseline with the same ``backtest_*`` keys as the models' runs, so the
    compare view lines them up; the baselines' numbers come from the models' own windows."""
    run_ids = []
    for method in BASELINES:
        summary = backtest.summary.get(method, {})
        metrics = {
            f"backtest_{k}": v for k, v in summary.items() if k != "coverage" and math.isfinite(v)
        }
        metrics["backtest_windows"] = float(backtest.n_windows)
        run_tags = {**tags, "cell": method, "model_type": "baseline"}
        with child_run(parent_run_id, f"{group.name}-{method}", run_tags) as run:
            mlflow.log_params(
                {"model.cell": method, "season_length": group.season_length, "group": group.name}
            )
            mlflow.log_metrics(metrics)
            per_series = backtest.per_series[backtest.per_series["method"] == method]
            mlflow.log_text(per_series.to_csv(index=False), "backtest/per_series.csv")
            log_training_dataset(group, data)
            run_ids.append(run.info.run_id)
    return run_ids


def horizon_errors(
    forecaster: GlobalForecaster, frame: pd.DataFrame, exogenous: pd.DataFrame | None = None
) -> pd.DataFrame:
    """MAE per horizon step of the model and of the naive forecast over the test part.

    Forecasts are issued, through the forecaster's public ``predict``, from up to
    ``MAX_ORIGINS`` origins spaced one horizon apart over the last ``test_size`` timestamps,
    each seeing only the data before it (``exogenous``: the model's covariates; past-only
    ones are never read after an origin). Returns rows ``step, model_mae, naive_mae, n``.
    """
    spec = forecaster.spec
    horizon, test_size = spec.model.horizon, spec.panel.test_size
    times = np.sort(frame["ts"].unique())
    positions = range(max(len(times) - test_size, 1), len(times) - horizon + 1, horizon)
    origins = [pd.Timestamp(times[p]) for p in positions][-MAX_ORIGINS:]
    actual = frame.set_index(["series_id", "ts"])["value"]
    parts = []
    for origin in origins:
        seen = frame[frame["ts"] < origin]
        rows, _ = forecaster.predict(seen, exogenous)
        if rows.empty:
            continue
        last = seen.sort_values("ts").groupby("series_id")["value"].last()
        keys = pd.MultiIndex.from_frame(rows[["series_id", "ts"]])
        rows = rows.assign(
            actual=actual.reindex(keys).to_numpy(), naive=last.reindex(rows["series_id"]).to_numpy()
        ).dropna(subset=["actual"])
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=["step", "model_mae", "naive_mae", "n"])
    scored = pd.concat(parts, ignore_index=True)
    scored["model_err"] = (scored["actual"] - scored["yhat"]).abs()
    scored["naive_err"] = (scored["actual"] - scored["naive"]).abs()
    out = scored.groupby("step").agg(
        model_mae=("model_err", "mean"), naive_mae=("naive_err", "mean"), n=("model_err", "size")
    )
    return out.reset_index()


def log_horizon_errors(
    client: MlflowClient,
    run_id: str,
    forecaster: GlobalForecaster,
    frame: pd.DataFrame,
    title: str,
    exogenous: pd.DataFrame | None = None,
    per_step: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``mae_by_step`` (MLflow step = horizon step) and ``plots/per_horizon_error.png``.

    ``per_step`` is the backtest's own table (its windows pooled by step); without it the
    errors are computed here from forecasts at origins over the test part."""
    table = per_step if per_step is not None else horizon_errors(forecaster, frame, exogenous)
    from mlflow.entities import Metric

    now = int(pd.Timestamp.now().timestamp() * 1000)
    metrics = [
        Metric(key, float(value), now, int(step))
        for step, model, naive in table[["step", "model_mae", "naive_mae"]].itertuples(index=False)
        for key, value in (("mae_by_step", model), ("naive_mae_by_step", naive))
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    client.log_text(run_id, table.to_csv(index=False), "backtest/per_horizon.csv")
    fig = plots.per_horizon_error(table, title)
    client.log_figure(run_id, fig, "plots/per_horizon_error.png")
    plots.close(fig)
    return table
