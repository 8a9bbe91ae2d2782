"""The project file (``seqcast.yaml``): the one place a deployment is described.

Every CLI command, ``seqcast serve`` and the ``prefect.yaml`` deployments (which pass its path)
read the same file: its sources, the model groups (a selector and a horizon; every other
setting is derived from the data unless the group overrides it), per-group schedules, and
optionally the database and MLflow URLs. Environment variables (``SEQCAST_DATABASE_URL``,
``MLFLOW_TRACKING_URI``, ``PREFECT_API_URL``) win over the file. A file with only
``sources:`` (the former sources file) is a valid project file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flows.alerts import AlertsConfig
from flows.errors import SeqcastError
from flows.series.covariates import CovariateSetting
from flows.series.params import ModelGroup
from flows.series.selector import SeriesSelector
from flows.sources.config import SourceConfig
from flows.sources.doc_config import DocumentSourceConfig

FILE_NAME = "seqcast.yaml"
ENV_VAR = "SEQCAST_CONFIG"
GROUP_NAME = r"^[a-z0-9][a-z0-9_-]{0,60}$"
CRON = r"^\S+( \S+){4}$"


class GroupSchedule(BaseModel):
    """A group's own cron schedules (UTC), where they differ from the service-wide ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retrain: str | None = Field(None, pattern=CRON, description="e.g. '0 3 * * 1'")
    forecast: str | None = Field(None, pattern=CRON, description="e.g. '*/30 * * * *'")


class GroupConfig(BaseModel):
    """One model group of the project file: a name, a selector, a horizon, and overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=GROUP_NAME)
    select: SeriesSelector
    horizon: int = Field(ge=1, le=1_000, description="steps ahead to forecast")
    schedule: GroupSchedule = Field(default_factory=GroupSchedule)
    derive: bool = Field(
        True,
        description="derive the settings not given from the data (false: the code defaults)",
    )
    covariates: list[CovariateSetting] = Field(
        default_factory=list,
        description="inputs from the covariates table: [{name, kind, missing}]",
    )
    attributes: list[str] = Field(
        default_factory=list, description="static attributes (series_attributes) to feed in"
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="any model-group setting, taken as given"
    )

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        fixed = {"name", "horizon", "series_kind", "series_ids", "series_match", "series_regex",
                 "covariates", "attributes"}  # fmt: skip
        known = (
            set(ModelGroup.model_fields) - fixed - {"series_freq", "series_exclude", "provenance"}
        )
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {unknown}; settings may be any of {sorted(known)}"
                + (" (give the horizon, the selector, covariates and attributes at the group's "
                   "top level)"
                   if set(unknown) & fixed else "")
            )  # fmt: skip
        return value


class Urls(BaseModel):
    """Where the data and the runs live; the environment variables win over these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str | None = Field(None, description="SQLAlchemy URL (SEQCAST_DATABASE_URL wins)")
    mlflow: str | None = Field(None, description="tracking URI (MLFLOW_TRACKING_URI wins)")
    prefect: str | None = Field(None, description="Prefect API URL (PREFECT_API_URL wins)")


class ProjectFile(BaseModel):
    """The whole ``seqcast.yaml``."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    urls: Urls = Field(default_factory=Urls)
    bundled: list[Literal["glucose", "stocks"]] = Field(
        default_factory=list, description="bundled real data sets every ingest loads"
    )
    sources: list[SourceConfig] = Field(default_factory=list)
    documents: list[DocumentSourceConfig] = Field(
        default_factory=list, description="document sources the ingest-text flow loads"
    )
    groups: list[GroupConfig] = Field(default_factory=list)
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig,
        description="where alerts go (webhook, email) when a run fails or skips a group",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectFile:
        for what, names in (
            # One namespace: a source's name keys its stored watermark.
            ("source", [s.name for s in [*self.sources, *self.documents]]),
            ("group", [g.name for g in self.groups]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {dupes}")
        for group in self.groups:
            for key, names in (
                ("covariates", [c.name for c in group.covariates]),
                ("attributes", list(group.attributes)),
            ):
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    raise ValueError(
                        f"group {group.name!r}: {key} are declared once each; repeated: {dupes}"
                    )
        return self

    def select_sources(self, names: list[str] | None) -> list[SourceConfig]:
        """The named sources (all when ``names`` is empty)."""
        if not names:
            return list(self.sources)
        known = {s.name for s in self.sources}
        unknown = sorted(set(names) - known)
        if unknown:
            raise SeqcastError(f"unknown source(s) {unknown}; the file declares {sorted(known)}")
        return [s for s in self.sources if s.name in names]

    def select_documents(self, names: list[str] | None) -> list[DocumentSourceConfig]:
        """The named document sources (all when ``names`` is empty)."""
        if not names:
            return list(self.documents)
        known = {s.name for s in self.documents}
        unknown = sorted(set(names) - known)
        if unknown:
            raise SeqcastError(
                f"unknown document source(s) {unknown}; the file declares {sorted(known)}"
            )
        return [s for s in self.documents if s.name in names]

    def select_groups(self, names: list[str] | None) -> list[GroupConfig]:
        """The named groups (all when ``names`` is empty); unknown names fail naming the known."""
        if not names:
            return list(self.groups)
        known = [g.name for g in self.groups]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise SeqcastError(f"unknown group(s) {unknown}; the project file declares {known}")
        return [g for g in self.groups if g.name in names]


_chosen: Path | None = None  # --config of the running command (set by the CLI per command)


def choose(path: str | Path | None) -> None:
    """Make ``path`` the project file of this process's command (``seqcast --config PATH``)."""
    global _chosen
    _chosen = Path(path) if path is not None else None


def locate(explicit: str | Path | None = None) -> Path | None:
    """The project file to use: the one given, else ``--config``, else ``$SEQCAST_CONFIG``,
    else ``./seqcast.yaml`` when it exists; None when there is none."""
    chosen = explicit or _chosen or os.environ.get(ENV_VAR) or None
    if chosen is not None:
        return Path(chosen)
    default = Path(FILE_NAME)
    return default if default.is_file() else None


def require(explicit: str | Path | None = None) -> Path:
    """:func:`locate`, failing with what to do when there is no project file."""
    path = locate(explicit)
    if path is None:
        raise SeqcastError(
            f"no project file: there is no ./{FILE_NAME}; write one from your data with "
            f"`seqcast init`, or pass --config PATH (or set {ENV_VAR})"
        )
    return path


def load_project(path: str | Path) -> ProjectFile:
    """Read and validate a project (or sources) file; errors name the file and the key path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SeqcastError(f"{path}: no such project file; `seqcast init` writes one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SeqcastError(f"{path}: cannot read ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeqcastError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if data is not None and not isinstance(data, dict):
        raise SeqcastError(f"{path}: expected a mapping with sources:, groups: ... at the top")
    try:
        return ProjectFile.model_validate(data or {})
    except ValidationError as exc:
        raise SeqcastError(f"{path}: {validation_message(exc, data or {})}") from None


def validation_message(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first error as ``groups[1] (name: prices).horizon: what is wrong; what to write``."""
    err = exc.errors()[0]
    where: list[str] = []
    node: Any = data
    for part in err["loc"]:
        if isinstance(part, int):
            label = f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and "name" in item:
                label += f" (name: {item['name']})"
            where.append(label)
            node = item
        else:
            where.append(f".{part}" if where else str(part))
            node = node.get(part) if isinstance(node, dict) else None
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key; remove it or check its spelling (see the commented starter file)"
    elif err["type"] == "missing":
        msg = "required; add it"
    return f"{''.join(where) or '(top level)'}: {msg}"


def apply_environment(project: ProjectFile) -> None:
    """Make the file's URLs the process defaults; variables already set win."""
    for var, value in (
        ("SEQCAST_DATABASE_URL", project.urls.database),
        ("MLFLOW_TRACKING_URI", project.urls.mlflow),
        ("PREFECT_API_URL", project.urls.prefect),
    ):
        if value and not os.environ.get(var):
            os.environ[var] = value
