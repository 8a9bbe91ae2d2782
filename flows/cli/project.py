"""``seqcast init`` and ``seqcast config show``: write the project file, and show what it
resolves to (every group setting with where it came from)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from flows.cli.common import console, user_errors
from flows.errors import SeqcastError

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer()
config_app = typer.Typer(help="The project file (seqcast.yaml).", no_args_is_help=True)
app.add_typer(config_app, name="config")

# Horizons `seqcast init` writes when none is given: the M4 competition's per frequency, and
# two days of points for sub-hourly sensors.
INIT_HORIZONS = {"minute": 48, "hour": 48, "day": 14, "business day": 10, "week": 13,
                 "month": 18, "quarter": 8, "year": 6}  # fmt: skip


def init_horizon(freq: str) -> int:
    """The horizon ``seqcast init`` proposes for a frequency."""
    import pandas as pd

    offset = pd.tseries.frequencies.to_offset(freq)
    name = type(offset).__name__
    if name in ("Minute", "Second", "Milli"):
        return INIT_HORIZONS["minute"]
    for key, words in (("hour", ("Hour",)), ("business day", ("BusinessDay",)),
                       ("day", ("Day",)), ("week", ("Week",)),
                       ("month", ("MonthEnd", "MonthBegin")),
                       ("quarter", ("QuarterEnd", "QuarterBegin")),
                       ("year", ("YearEnd", "YearBegin"))):  # fmt: skip
        if name in words:
            return INIT_HORIZONS[key]
    return 12


def group_name(kind: str, freq: str) -> str:
    """``sensor-h``, ``price-b``: a valid group name from a kind and a frequency."""
    import re

    slug = re.sub(r"[^a-z0-9_-]+", "-", f"{kind}-{freq}".lower()).strip("-_")
    return slug[:60] or "series"


def starter_file(catalog: pd.DataFrame, horizon: int | None) -> str:
    """A commented project file with one group per kind and frequency in ``catalog``."""
    rows = catalog[catalog["n_obs"] > 0]
    lines = [
        "# seqcast project file, written by `seqcast init` from the series in the database.",
        "# Every command, `seqcast serve` and the prefect.yaml deployments read it. Each group",
        "# needs a name, a selector and a horizon; every other setting is derived from the data",
        "# (`seqcast config show` prints them with why) unless `settings:` gives it.",
        "version: 1",
        "",
        "# urls:                      # environment variables win over these",
        "#   database: postgresql+psycopg://user@host:5432/seqcast",
        "#   mlflow: http://127.0.0.1:5000",
        "",
        "# sources:                   # incremental sources for the scheduled ingest",
        "#   - name: incoming-files   # (config/sources.full-example.yaml: every kind and key)",
        "#     type: files",
        "#     path: incoming/*.csv",
        "#     declare: {kind: sensor, freq: h}",
        "#   - name: weather          # covariate files into `covariates` (docs/sources.md)",
        "#     type: files",
        "#     path: weather/*.csv",
        "#     covariate: {kind: known_future, scope: series, name: temperature}",
        "sources: []",
        "",
        "# alerts:                    # failed/crashed runs and skipped groups (README: Alerts)",
        "#   webhook: {url: https://hooks.example.org/abc}",
        "#   email: {smtp_host: smtp.example.org, sender: seqcast@example.org, to: [me@x.org]}",
        "",
        "groups:",
    ]
    for (kind, freq), part in rows.groupby(["kind", "freq"], sort=True):
        h = horizon or init_horizon(str(freq))
        sizes = part["n_obs"]
        lines += [
            f"  # {len(part)} series of kind {kind} every {freq}, "
            f"{int(sizes.min())}-{int(sizes.max())} observations each",
            f"  - name: {group_name(str(kind), str(freq))}",
            f"    select: {{kind: {kind}, freq: {freq}}}   # also: ids, match (glob), regex",
            f"    horizon: {h}{'' if horizon else '   # steps ahead; change to what you need'}",
            "    # settings: {hidden_size: 64, max_epochs: 30}   # override any derived setting",
            '    # schedule: {retrain: "0 3 * * *", forecast: "15 * * * *"}   # own crons (UTC)',
        ]
    if rows.empty:
        lines[-1] = "groups: []   # nothing ingested yet: `seqcast ingest FILE`, then init again"
    return "\n".join(lines) + "\n"


@app.command()
@user_errors
def init(
    output: Path = typer.Option(Path("seqcast.yaml"), "--output", "-o", help="file to write"),
    horizon: int | None = typer.Option(None, min=1, help="horizon of every group written"),
    force: bool = typer.Option(False, "--force", help="replace an existing file"),
) -> None:
    """Write a commented project file with one group per kind and frequency in the database."""
    from db import make_engine
    from db.migrate import require_current
    from db.observations import list_series
    from flows.project import load_project

    if output.exists() and not force:
        raise SeqcastError(f"{output} exists; edit it, or pass --force to replace it")
    engine = make_engine()
    try:
        require_current(engine)
        catalog = list_series(engine)
    finally:
        engine.dispose()
    output.write_text(starter_file(catalog, horizon), encoding="utf-8")
    project = load_project(output)  # what init writes must load
    for g in project.groups:
        console.print(f"group {g.name}: {g.select.describe()}, horizon {g.horizon}")
    console.print(
        f"wrote {output} ({len(project.groups)} group(s)); next: `seqcast config show`, "
        "`seqcast train`, `seqcast forecast`",
        highlight=False,
    )


@config_app.command("show")
@user_errors
def show(group: list[str] = typer.Option(None, "--group", help="only these groups")) -> None:
    """Every group's settings after resolution, with where each came from."""
    from flows.project import require
    from flows.reports.config import resolved_settings

    path = require()
    for title, table in resolved_settings(path, group or []):
        console.print(table if title is None else f"[bold]{title}[/bold]: {table}")
