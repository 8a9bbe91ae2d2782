"""Model groups from the project file: which series each takes, and its settings.

A group in ``seqcast.yaml`` gives a name, a selector and a horizon; every other setting comes
from the group's ``settings`` when given there, else is derived from its series (frequency,
horizon and lengths: ``forecasting.defaults``), else is the code default. Each resolved group
records where every setting came from (``ModelGroup.provenance``), which MLflow logs and
``seqcast config show`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from db import make_engine
from db.observations import list_series, read_observations
from flows.errors import SeqcastError
from flows.project import GroupConfig, apply_environment, load_project, require
from flows.series.data import group_catalog
from flows.series.params import ModelGroup, ProjectGroups
from flows.series.results import GroupFailure, group_failed
from flows.settings import Settings
from flows.tasks import io_task
from forecasting.defaults import (
    DefaultsError,
    DerivedSettings,
    derive_settings,
    gap_free_runs,
    seasonal_naive_wins,
)
from forecasting.panel import PanelConfig, PanelError, build_panel

FROM_FILE = "project file"
DEFAULT = "default"
# Settings of ModelGroup that are not model settings.
NOT_SETTINGS = frozenset(
    {"name", "series_kind", "series_ids", "series_match", "series_regex", "series_freq",
     "series_exclude", "provenance"}
)  # fmt: skip


@dataclass(frozen=True)
class Assignment:
    """Which group each active series with observations belongs to.

    Attributes:
        members: group name -> its series ids (a series claimed by two groups stays with the
            first group listed in the project file).
        unconfigured: series no group selects: they are never forecast.
        overlaps: series id -> every group that selects it, the first one winning.
    """

    members: dict[str, list[str]]
    unconfigured: list[str]
    overlaps: dict[str, list[str]] = field(default_factory=dict)


def assign_series(groups: Sequence[GroupConfig], catalog: pd.DataFrame) -> Assignment:
    """Assign the catalog's series (``db.observations.list_series``) to the groups."""
    rows = catalog[catalog["n_obs"] > 0]
    members: dict[str, list[str]] = {g.name: [] for g in groups}
    overlaps: dict[str, list[str]] = {}
    unconfigured: list[str] = []
    for sid, kind, freq in zip(rows["series_id"], rows["kind"], rows["freq"], strict=True):
        claimed = [g.name for g in groups if g.select.matches(str(sid), str(kind), str(freq))]
        if not claimed:
            unconfigured.append(str(sid))
            continue
        members[claimed[0]].append(str(sid))
        if len(claimed) > 1:
            overlaps[str(sid)] = claimed
    return Assignment(members, unconfigured, overlaps)


def grid_lengths(rows: pd.DataFrame) -> dict[str, int]:
    """Points per series on its frequency's grid, first to last observation."""
    out = {}
    for sid, freq, first, last in rows[["series_id", "freq", "first_ts", "last_ts"]].itertuples(
        index=False
    ):
        first, last = pd.Timestamp(first), pd.Timestamp(last)
        grid = pd.date_range(first, last, freq=str(freq))
        out[str(sid)] = max(len(grid), 1)
    return out


def base_group(cfg: GroupConfig, exclude: Sequence[str] = ()) -> dict[str, object]:
    """The ModelGroup fields that say which series: name, selector, exclusions."""
    sel = cfg.select
    return {
        "name": cfg.name,
        "series_kind": sel.kind,
        "series_ids": sel.ids,
        "series_match": sel.match,
        "series_regex": sel.regex,
        "series_freq": sel.freq,
        "series_exclude": sorted(exclude) or None,
        "covariates": [c.model_dump() for c in cfg.covariates],
        "attributes": list(cfg.attributes),
    }


def selection_only(cfg: GroupConfig, exclude: Sequence[str] = ()) -> ModelGroup:
    """The group with its selection and horizon and code-default settings: what forecasting
    needs (a champion carries the settings it was trained with)."""
    return ModelGroup.model_validate(
        {**base_group(cfg, exclude), "horizon": cfg.horizon,
         "test_size": max(96, cfg.horizon), "val_size": max(480, cfg.horizon)}
    )  # fmt: skip


def resolve_group(
    cfg: GroupConfig,
    catalog: pd.DataFrame,
    exclude: Sequence[str] = (),
    frame: pd.DataFrame | None = None,
) -> ModelGroup:
    """The group's settings: given in the file, else derived from its series, else defaults.

    Args:
        cfg: the group as the project file declares it.
        catalog: ``db.observations.list_series`` (active series with counts and time ranges).
        exclude: series an earlier group of the file already takes.
        frame: the group's observations (long frame), when read: the window then avoids
            the series' gaps and the seasonal settings apply only when the last season
            forecasts the training parts better than the last value.

    Raises:
        SeqcastError: no series, mixed frequencies, series too short for any window, or
            settings that cannot work together; each message names the group and the fix.
    """
    probe = selection_only(cfg, exclude)
    rows = group_catalog(catalog, probe)
    freq = str(rows["freq"].iloc[0])
    derived = None
    if cfg.derive:
        mine = None if frame is None else frame[frame["series_id"].isin(rows["series_id"])]
        derived = derive_from_data(cfg, freq, rows, mine)
    values = {k: v for k, v in (derived.values() if derived else {}).items()
              if k in ModelGroup.model_fields}  # fmt: skip
    values.update(cfg.settings)
    provenance = {"horizon": FROM_FILE}
    for name in ModelGroup.model_fields:
        if name in NOT_SETTINGS or name == "horizon":
            continue
        if name in cfg.settings or (name in ("covariates", "attributes") and getattr(cfg, name)):
            provenance[name] = FROM_FILE
        elif derived is not None and name in derived.settings:
            provenance[name] = f"derived: {derived.settings[name].why}"
        else:
            provenance[name] = DEFAULT
    if derived is not None and derived.too_short:
        shown = "; ".join(f"{k}: {v}" for k, v in list(derived.too_short.items())[:10])
        provenance["series_too_short"] = f"{len(derived.too_short)} not trained on ({shown})"
    try:
        return ModelGroup.model_validate(
            {**base_group(cfg, exclude), **values, "horizon": cfg.horizon, "provenance": provenance}
        )
    except ValueError as exc:
        raise SeqcastError(
            f"group {cfg.name!r}: its settings do not work together: {exc}".replace("\n", " ")
        ) from None


def derive_from_data(
    cfg: GroupConfig, freq: str, rows: pd.DataFrame, frame: pd.DataFrame | None
) -> DerivedSettings:
    """``forecasting.defaults.derive_settings`` for one group; its errors name the group.

    Without ``frame`` the lengths come from each series' first and last timestamps; with it,
    from the regular grid, with the gap-free stretches and the seasonality test.
    """
    overrides = dict(cfg.settings)
    where = f"group {cfg.name!r} ({freq}, horizon {cfg.horizon})"
    try:
        if frame is None or frame.empty:
            return derive_settings(freq, cfg.horizon, grid_lengths(rows), overrides)
        max_fill = int(overrides.get("max_fill", ModelGroup.model_fields["max_fill"].default))
        freqs = dict.fromkeys(rows["series_id"].astype(str), freq)
        panel = build_panel(frame, freqs, PanelConfig(max_fill=max_fill, test_size=0, val_size=0))
        lengths = {sid: int(n) for sid, n in zip(panel.series_ids, panel.lengths, strict=True)}
        runs = {
            sid: gap_free_runs(panel.series_values(i)) for i, sid in enumerate(panel.series_ids)
        }
        first = derive_settings(freq, cfg.horizon, lengths, overrides, runs=runs).values()
        held = int(first["val_size"]) + int(first["test_size"])
        train = [
            panel.series_values(i)[: max(0, int(n) - held)] for i, n in enumerate(panel.lengths)
        ]
        seasonal = seasonal_naive_wins(train, int(first["season_length"]), cfg.horizon)
        return derive_settings(freq, cfg.horizon, lengths, overrides, runs=runs, seasonal=seasonal)
    except (DefaultsError, PanelError) as exc:
        raise SeqcastError(f"{where}: {exc}") from None


def resolve_groups(
    groups: Sequence[GroupConfig],
    all_groups: Sequence[GroupConfig],
    catalog: pd.DataFrame,
    frame: pd.DataFrame | None = None,
) -> tuple[list[ModelGroup], dict[str, str]]:
    """Resolve ``groups`` (a selection of ``all_groups``, the file's order deciding overlaps).

    Returns:
        The resolved groups, and group name -> why it could not be resolved (a group that
        fails does not stop the others).
    """
    assignment = assign_series(all_groups, catalog)
    resolved: list[ModelGroup] = []
    failed: dict[str, str] = {}
    for cfg in groups:
        taken_elsewhere = [
            sid for sid, claims in assignment.overlaps.items() if claims[0] != cfg.name
            and cfg.name in claims
        ]  # fmt: skip
        try:
            resolved.append(resolve_group(cfg, catalog, taken_elsewhere, frame))
        except SeqcastError as exc:
            failed[cfg.name] = str(exc)
    return resolved, failed


@io_task()
def groups_to_run(
    params: ProjectGroups, schedule: str | None = None, with_data: bool = True
) -> tuple[list[ModelGroup], list[GroupFailure]]:
    """The groups a flow run takes: ``params.groups`` as given, else the project file's
    (read now, so an edit applies at the next run), resolved against the database.

    Args:
        params: the flow's group selection.
        schedule: ``retrain`` or ``forecast``: with ``shared_schedule_only`` the groups with
            their own schedule of that kind are left out (their own deployment runs them).
        with_data: read the groups' observations to derive their settings (training);
            without, settings derive from the catalog alone (forecasting needs only the
            selection: the champion carries its own settings).

    Returns:
        The resolved groups, and a failure for each group that could not be resolved.
    """
    if params.groups is not None:
        return list(params.groups), []
    path = require(params.config)
    project = load_project(path)
    apply_environment(project)
    selected = project.select_groups(params.only)
    if params.shared_schedule_only and schedule is not None:
        selected = [g for g in selected if not getattr(g.schedule, schedule)]
    engine = make_engine(Settings.from_env().database_url)
    try:
        catalog = list_series(engine)
        frame = None
        if with_data:
            members = assign_series(project.groups, catalog).members
            ids = sorted({sid for g in selected for sid in members.get(g.name, [])})
            frame = read_observations(engine, ids) if ids else None
    finally:
        engine.dispose()
    if with_data:
        resolved, failed = resolve_groups(selected, project.groups, catalog, frame)
    else:
        resolved, failed = select_groups(selected, project.groups, catalog)
    failures = [group_failed(name, SeqcastError(why)) for name, why in failed.items()]
    return resolved, failures


def select_groups(
    groups: Sequence[GroupConfig], all_groups: Sequence[GroupConfig], catalog: pd.DataFrame
) -> tuple[list[ModelGroup], dict[str, str]]:
    """The groups' selections alone (:func:`selection_only`), checked against the catalog."""
    overlaps = assign_series(all_groups, catalog).overlaps
    out: list[ModelGroup] = []
    failed: dict[str, str] = {}
    for cfg in groups:
        exclude = [s for s, c in overlaps.items() if cfg.name in c and c[0] != cfg.name]
        group = selection_only(cfg, exclude)
        try:
            group_catalog(catalog, group)
        except SeqcastError as exc:
            failed[cfg.name] = str(exc)
            continue
        out.append(group)
    return out, failed
