"""Flow parameters as pydantic models: Prefect validates them before any work starts."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flows.series.covariates import CovariateSetting, spec_inputs
from flows.series.selector import SeriesSelector
from flows.sources.layout import FileLayout

if TYPE_CHECKING:
    from forecasting.spec import ForecasterSpec

Cell = Literal["lstm", "gru", "rnn"]


def _default_cells() -> list[Cell]:
    return ["lstm", "gru"]


class ModelGroup(BaseModel):
    """A set of series that share one global model, and how to train it.

    The group's registered model in MLflow is ``seqcast-<name>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,60}$")
    # The selector: every criterion given must hold (SeriesSelector).
    series_kind: str | None = Field(None, description="active series of this kind")
    series_ids: list[str] | None = Field(None, description="exactly these series")
    series_match: str | None = Field(None, description="ids matching this glob")
    series_regex: str | None = Field(None, description="ids fully matching this regex")
    series_freq: str | None = Field(None, description="series declared with this frequency")
    series_exclude: list[str] | None = Field(
        None, description="never these series (an earlier group of the project file takes them)"
    )
    cells: list[Cell] = Field(default_factory=_default_cells, min_length=1)
    window: int = Field(48, ge=2, le=10_000)
    horizon: int = Field(12, ge=1, le=1_000)
    season_length: int = Field(24, ge=1, le=10_000)
    hidden_size: int = Field(64, ge=1, le=4096)
    num_layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    max_epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(256, ge=1, le=65_536)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    clip_norm: float = Field(1.0, gt=0.0)
    patience: int = Field(3, ge=1)
    windows_per_epoch: int | None = Field(8192, ge=1)
    train_minutes: float | None = Field(None, gt=0, description="all cells' training, split evenly")
    val_size: int = Field(480, ge=1)
    test_size: int = Field(96, ge=1)
    max_fill: int = Field(3, ge=0)
    interval: float = Field(0.9, gt=0.0, lt=1.0)
    intervals: Literal["residual", "quantile"] = Field(
        "residual", description="residual quantiles, or quantile outputs (pinball loss)"
    )
    bidirectional: bool = False
    layer_norm: bool = False
    normalize: Literal["none", "level", "window"] = "level"
    patch_len: int = Field(1, ge=1, description="encoder reads the window in such segments")
    seasonal_skip: int = Field(0, ge=0, description="add the value this many steps back")
    head: Literal["direct", "seq2seq"] = "direct"
    calendar: list[str] = Field(default_factory=list, description="e.g. hour, dayofweek")
    covariates: list[CovariateSetting] = Field(
        default_factory=list, description="covariates from the covariates table"
    )
    attributes: list[str] = Field(default_factory=list, description="from series_attributes")
    embed_series: int = Field(0, ge=0, le=256, description="series embedding size (0: off)")
    lr_schedule: Literal["plateau", "onecycle"] = "plateau"
    restore: Literal["best", "last", "significant"] = Field(
        "best",
        description="end with the best-validation epoch's weights, the last epoch's, or the "
        "best's only when clearly better than the last (two standard errors)",
    )
    processes: int | None = Field(
        None, ge=1, le=64, description="DDP processes via torchrun (None: one per GPU if several)"
    )
    loss_scale: Literal["none", "window"] = "none"
    warm_start: bool = Field(
        False, description="fine-tune from the champion's weights when the architecture matches"
    )
    ensemble: Literal["off", "median"] = Field(
        "off",
        description="median: the median of the trained cells' forecasts competes as one more "
        "candidate, registered as one model (needs two cells)",
    )
    refit: bool = Field(
        False,
        description="after promotion, train the chosen recipe again on every point up to the "
        "last observation and make that the champion (bench/refit.py)",
    )
    seed: int = 0
    provenance: dict[str, str] = Field(
        default_factory=dict,
        description="where each setting came from: 'project file', 'derived: why', 'default'",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> ModelGroup:
        self.selector  # noqa: B018 - raises when no criterion is given
        if self.test_size < self.horizon:
            raise ValueError("test_size must be at least one horizon")
        if self.ensemble != "off" and len(set(self.cells)) < 2:
            raise ValueError(f"ensemble: {self.ensemble} needs at least two cells")
        # Build every spec once, so a bad combination fails validation, not the scheduled run.
        for cell in self.cells:
            self.spec(cell)
        return self

    @property
    def _fits(self) -> int:
        """Trainings sharing ``train_minutes``: one per cell, and the refit when on."""
        return len(self.cells) + int(self.refit)

    @property
    def registered_model(self) -> str:
        return f"seqcast-{self.name}"

    @property
    def selector(self) -> SeriesSelector:
        """The series this group takes, as one selector."""
        try:
            return SeriesSelector(
                kind=self.series_kind,
                ids=self.series_ids,
                match=self.series_match,
                regex=self.series_regex,
                freq=self.series_freq,
                exclude=self.series_exclude,
            )
        except ValidationError as exc:
            raise ValueError(
                "give a selector: series_kind, series_ids, series_match, series_regex or "
                f"series_freq ({exc.errors()[0]['msg'].removeprefix('Value error, ')})"
            ) from None

    def spec(self, cell: str) -> ForecasterSpec:
        """The forecasting layer's frozen config for one cell type."""
        from forecasting.models import RecurrentForecasterConfig
        from forecasting.panel import PanelConfig
        from forecasting.spec import ForecasterSpec
        from forecasting.training import TrainConfig

        return ForecasterSpec(
            model=RecurrentForecasterConfig(
                cell=cell,  # type: ignore[arg-type]
                window=self.window,
                horizon=self.horizon,
                hidden_size=self.hidden_size,
                num_layers=self.num_layers,
                dropout=self.dropout,
                bidirectional=self.bidirectional,
                layer_norm=self.layer_norm,
                normalize=self.normalize,
                patch_len=self.patch_len,
                seasonal_skip=self.seasonal_skip,
                head=self.head,
            ),
            train=TrainConfig(
                max_epochs=self.max_epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                clip_norm=self.clip_norm,
                patience=self.patience,
                windows_per_epoch=self.windows_per_epoch,
                lr_schedule=self.lr_schedule,
                restore=self.restore,
                loss_scale=self.loss_scale,
                seed=self.seed,
                time_budget_s=self.train_minutes and self.train_minutes * 60 / self._fits,
            ),
            panel=PanelConfig(
                max_fill=self.max_fill, test_size=self.test_size, val_size=self.val_size
            ),
            season_length=self.season_length,
            interval=self.interval,
            intervals=self.intervals,
            calendar=tuple(self.calendar),
            embed_series=self.embed_series,
            **spec_inputs(self.covariates, self.attributes),
        )


class ProjectGroups(BaseModel):
    """Which groups a flow runs: explicit ``groups``, or those of the project file."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(
        None,
        description="project file (default: $SEQCAST_CONFIG, else ./seqcast.yaml); read at "
        "each run, so an edit applies at the next scheduled run",
    )
    only: list[str] = Field(default_factory=list, description="only these groups of the file")
    shared_schedule_only: bool = Field(
        False, description="leave out the groups with their own schedule in the project file"
    )
    groups: list[ModelGroup] | None = Field(
        None, min_length=1, description="these groups instead of the project file's (Python use)"
    )


class IngestParams(BaseModel):
    """What the ``ingest`` flow loads."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(default_factory=list, description="CSV/Parquet files in long format")
    bundled: list[Literal["glucose", "stocks"]] = Field(default_factory=list)
    kind: str | None = Field(None, description="declare new series in files with this kind")
    freq: str | None = Field(None, description="... and this pandas frequency")
    assume_timezone: str | None = Field(None, description="zone for timestamps without offset")
    layout: FileLayout | None = Field(
        None, description="how the files differ from series_id, ts, value (flows.sources.layout)"
    )
    config: str | None = Field(
        None, description="project (or sources) file: its bundled data sets and sources"
    )
    sources: list[str] = Field(default_factory=list, description="only these sources of it")
    start: dt.datetime | None = Field(None, description="backfill the sources from (UTC)")
    end: dt.datetime | None = Field(None, description="... up to, excluded (UTC)")

    @model_validator(mode="after")
    def _declare_both(self) -> IngestParams:
        if (self.kind is None) != (self.freq is None):
            raise ValueError("give kind and freq together to declare new series")
        if (self.start is None) != (self.end is None):
            raise ValueError("give start and end together to backfill")
        if self.start is not None and self.config is None:
            raise ValueError("a backfill (start, end) needs the sources file (config)")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=dt.UTC))  # naive means UTC
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class DriftCheck(ProjectGroups):
    """When a champion counts as drifted (live error against its backtest error)."""

    drift_ratio: float | None = Field(
        2.0,
        gt=0.0,
        description="retrain early when a series' live MAE (forecast_vs_actual, champion's "
        "forecasts) exceeds this multiple of its backtest MAE (None: off)",
    )
    drift_min_actuals: int = Field(12, ge=1, description="actuals before live error counts")


class TrainParams(DriftCheck):
    """What the ``train-forecasters`` flow trains."""

    dask_address: str | None = Field(
        None,
        description="train the groups in parallel on Dask: a scheduler address "
        "(tcp://host:8786) or 'local' for a cluster in this process; None: one after another",
    )
    drifted_only: bool = Field(
        False, description="retrain only the groups with a drifted champion, or none (hourly)"
    )

    @model_validator(mode="after")
    def _drift_needs_ratio(self) -> TrainParams:
        if self.drifted_only and self.drift_ratio is None:
            raise ValueError("drifted_only needs a drift_ratio (e.g. 2.0)")
        return self


class ForecastParams(ProjectGroups):
    """What the ``forecast`` flow forecasts."""

    alias: str = "champion"


class PipelineParams(DriftCheck):
    """The ``pipeline`` flow: ingest, retrain when due, forecast."""

    ingest: IngestParams = Field(default_factory=IngestParams)
    retrain_after_hours: float = Field(
        24.0, ge=0.0, description="retrain a group whose champion is older than this (0: always)"
    )
