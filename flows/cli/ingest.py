"""``seqcast ingest``: files (as before) and the configured sources (run, mqtt, backfill).

``seqcast ingest FILE...`` and ``seqcast ingest --bundled ...`` keep loading files and data
sets (the ``files`` command); the first word picks another command when it names one.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
from pathlib import Path
from typing import Any, cast

import typer
from typer._click import Context  # typer ships its own click
from typer.core import TyperGroup

from flows.cli import covariates
from flows.cli.common import (
    console,
    precheck,
    preflight,
    print_rejects,
    print_rows,
    ready_for_flows,
    user_errors,
)
from flows.cli.file_checks import check_files, file_layout
from flows.errors import SeqcastError

COLUMNS = ["source_name", "source", "received", "accepted", "rejected", "inserted", "updated"]


class IngestGroup(TyperGroup):
    """Route ``seqcast ingest <not a command> ...`` to the ``files`` command."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] != "--help"):
            args = ["files", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=IngestGroup,
    help="Load files, bundled data sets (ingest files), configured sources "
    "(ingest run | mqtt | backfill | watermarks), covariates and series attributes.",
)
app.command("covariates")(covariates.covariates)
app.command("attributes")(covariates.attributes)


def _show(results: list[dict[str, Any]]) -> None:
    print_rows("ingest", results, [*COLUMNS, "already_loaded"])
    for r in results:
        print_rejects(r.get("first_rejects", []))


@app.command("files")
@user_errors
def files(
    paths: list[Path] = typer.Argument(
        None, help="CSV/Parquet files with columns series_id, ts, value"
    ),
    bundled: list[str] = typer.Option(
        [], "--bundled", help="bundled real data set: glucose, stocks"
    ),
    kind: str | None = typer.Option(None, help="declare new series in the files with this kind"),
    freq: str | None = typer.Option(
        None, help="... and this pandas frequency (e.g. 5min, h, D, B)"
    ),
    assume_timezone: str | None = typer.Option(None, help="zone for timestamps without offset"),
    columns: str | None = typer.Option(
        None, help="the files' names for our columns, e.g. ts=date,series_id=sensor,value=temp"
    ),
    wide: bool = typer.Option(False, help="a ts column and one column per series"),
    series_id: str | None = typer.Option(None, help="each file is this one series (ts, value)"),
    decimal: str = typer.Option(".", help="decimal mark of the values: . or ,"),
) -> None:
    """Load files or bundled data sets; rows failing validation go to rejected_rows."""
    file_paths = [str(p) for p in paths or []]
    layout = file_layout(columns, wide, series_id, decimal)
    preflight(lambda: check_files(file_paths, bundled, kind, freq, layout), wait=False)
    # The flow's modules (prefect, torch) load while the Prefect server starts.
    from flows.series.ingest import ingest as ingest_flow
    from flows.series.params import IngestParams

    params = IngestParams(
        paths=file_paths, bundled=bundled, kind=kind, freq=freq, assume_timezone=assume_timezone,
        layout=None if layout.is_long else layout,
    )  # fmt: skip
    ready_for_flows()
    results = ingest_flow(params)
    print_rows(
        "ingest",
        results,
        ["source", "received", "accepted", "rejected", "inserted", "updated", "already_loaded"],
    )
    for r in results:
        shown = cast(list[str], r.get("first_rejects", []))
        print_rejects(shown)
        if cast(int, r["rejected"]) > len(shown):
            console.print(
                f"... all {r['rejected']} with reasons: SELECT * FROM rejected_rows "
                f"WHERE batch_id = {r['batch_id']}",
                highlight=False,
                soft_wrap=True,
            )


CONFIG = typer.Option(
    None, "--config", "-c", help="project or sources file (default: the project file)"
)
SOURCE = typer.Option(None, "--source", "-s", help="only this source (repeatable)")


@app.command("run")
@user_errors
def run(config: Path | None = CONFIG, source: list[str] = SOURCE) -> None:
    """Load what is new in every configured source (MQTT: drain what arrived, then stop)."""
    config = sources_file(config)
    preflight(lambda: check_sources(config, source), wait=False)
    from flows.series.ingest import ingest as ingest_flow
    from flows.series.params import IngestParams

    params = IngestParams(config=str(config), sources=source or [])
    ready_for_flows()
    _show(ingest_flow(params))


def sources_file(config: Path | None) -> Path:
    """``--config``, else the project file (seqcast --config, $SEQCAST_CONFIG, ./seqcast.yaml)."""
    from flows.project import require

    return config if config is not None else require()


def check_sources(config: Path, names: list[str] | None) -> list[Any]:
    """The named sources of the file; a bad file or an unknown name is a SeqcastError."""
    from flows.project import load_project

    return load_project(config).select_sources(names)


def _utc(text: str, option: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SeqcastError(
            f"{option} {text!r}: give an ISO date or time, e.g. 2024-01-31"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@app.command("backfill")
@user_errors
def backfill(
    source: str = typer.Argument(..., help="name of a files, http or sql source"),
    config: Path | None = CONFIG,
    start: str = typer.Option(..., help="from this UTC date/time (included)"),
    end: str = typer.Option(..., help="up to this UTC date/time (excluded)"),
) -> None:
    """Replay a time range of a source; idempotent, the live watermark does not move."""
    config = sources_file(config)
    window = (_utc(start, "--start"), _utc(end, "--end"))

    def check() -> None:
        from flows.sources.runner import REPLAYABLE

        cfg = check_sources(config, [source])[0]
        if cfg.type not in REPLAYABLE:
            raise SeqcastError(
                f"source {source} ({cfg.type}) cannot replay; backfill works for "
                f"{', '.join(REPLAYABLE)} sources"
            )
        if window[0] >= window[1]:
            raise SeqcastError(f"start must be before end (--start {start}, --end {end})")

    preflight(check, wait=False)
    from flows.series.ingest import ingest as ingest_flow
    from flows.series.params import IngestParams

    params = IngestParams(config=str(config), sources=[source], start=window[0], end=window[1])
    ready_for_flows()
    _show(ingest_flow(params))


@app.command("mqtt")
@user_errors
def mqtt(config: Path | None = CONFIG, source: str = typer.Option(None, "--source", "-s")) -> None:
    """Consume an MQTT source continuously, a micro-batch at a time, until Ctrl-C/SIGTERM."""
    config = sources_file(config)
    configs = [c for c in check_sources(config, [source] if source else []) if c.type == "mqtt"]
    if len(configs) != 1:
        names = [c.name for c in configs]
        raise SeqcastError(
            f"{config}: name one MQTT source with --source (found {names or 'none'})"
        )
    precheck()  # no flow: the source's loop writes to the database itself
    from db import make_engine
    from flows.sources.config import MqttSource
    from flows.sources.runner import run_source

    cfg = cast(MqttSource, configs[0])
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def show(r: dict[str, Any]) -> None:
        console.print(
            f"{dt.datetime.now(dt.UTC):%H:%M:%S} {r['source']}: received {r['received']}, "
            f"accepted {r['accepted']}, rejected {r['rejected']}, inserted {r['inserted']}",
            highlight=False,
        )

    console.print(f"consuming {cfg.topic} from {cfg.host}:{cfg.port} as {cfg.session_id}")
    engine = make_engine()
    try:
        results, _ = run_source(engine, cfg, forever=True, stop=stop, on_result=show)
    finally:
        engine.dispose()
    total = sum(int(r["received"]) for r in results)
    console.print(f"stopped after {len(results)} micro-batch(es), {total} row(s)")


@app.command("watermarks")
@user_errors
def watermarks(
    reset: str = typer.Option(None, help="forget this source's watermark"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Show how far each source has been loaded (or reset one)."""
    from db import make_engine
    from db.watermarks import list_watermarks, reset_watermark

    engine = make_engine()
    try:
        if reset is not None:
            done = reset_watermark(engine, reset)
            console.print(f"watermark of {reset} {'reset' if done else 'was not set'}")
            return
        rows = list_watermarks(engine)
    finally:
        engine.dispose()
    for r in rows:
        r["watermark"] = json.dumps(r["watermark"], sort_keys=True)
        r["updated_at"] = r["updated_at"].isoformat()
    if as_json:
        for r in rows:
            typer.echo(json.dumps({**r, "watermark": json.loads(r["watermark"])}))
        return
    print_rows("source watermarks", rows, ["source", "watermark", "updated_at"])
