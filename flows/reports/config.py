"""``seqcast config show``: the project file's groups as they resolve against the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.table import Table

from flows.reports.tables import rich_table


def setting_rows(group: Any) -> list[dict[str, str]]:
    """One row per setting of a resolved ModelGroup: name, value, where it came from."""
    from flows.series.groups import NOT_SETTINGS

    rows = [{"setting": "series", "value": group.selector.describe(), "from": "project file"}]
    for name in type(group).model_fields:
        if name in NOT_SETTINGS:
            continue
        rows.append(
            {
                "setting": name,
                "value": "; ".join(c.describe() for c in group.covariates) or "[]"
                if name == "covariates"
                else str(getattr(group, name)),
                "from": group.provenance.get(name, "default"),
            }
        )
    if "series_too_short" in group.provenance:
        rows.append(
            {"setting": "(too short)", "value": "", "from": group.provenance["series_too_short"]}
        )
    return rows


def resolved_settings(path: Path, names: list[str]) -> Iterator[tuple[str | None, Table | str]]:
    """Tables (or one-line notes) for every selected group of the project file at ``path``."""
    from db import make_engine
    from db.migrate import require_current
    from db.observations import list_series, read_observations
    from flows.project import apply_environment, load_project
    from flows.series.groups import assign_series, resolve_groups

    project = load_project(path)
    apply_environment(project)
    selected = project.select_groups(names)
    engine = make_engine()
    try:
        require_current(engine)
        catalog = list_series(engine)
        # The same data training reads: its gaps and seasonality shape the derived settings.
        members = assign_series(project.groups, catalog).members
        ids = sorted({sid for g in selected for sid in members.get(g.name, [])})
        frame = read_observations(engine, ids) if ids else None
    finally:
        engine.dispose()
    resolved, failed = resolve_groups(selected, project.groups, catalog, frame)
    yield None, f"project file {path.resolve()}: {len(project.groups)} group(s)"
    for group in resolved:
        title = f"group {group.name} ({group.registered_model})"
        yield None, rich_table(title, setting_rows(group))
    for name, why in failed.items():
        yield f"group {name}", f"cannot be trained: {why}"
    assignment = assign_series(project.groups, catalog)
    if assignment.unconfigured:
        shown = ", ".join(assignment.unconfigured[:20])
        more = len(assignment.unconfigured) - 20
        yield (
            "series in no group (never forecast)",
            shown + (f" and {more} more" if more > 0 else "") + "; add a group that selects them",
        )
    for sid, claims in assignment.overlaps.items():
        yield (
            "series in two groups",
            f"{sid}: {', '.join(claims)} (the first, {claims[0]}, takes it)",
        )
