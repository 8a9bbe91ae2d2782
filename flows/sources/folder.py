"""Files source: every CSV/Parquet file in a directory or glob whose content is new.

Which files were loaded is remembered by content hash in ``ingest_batches`` (unique on
``(source, content_sha256)``), so a re-run reads only new or changed files; a changed file is
a new batch whose unchanged rows upsert to nothing.
"""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path

from db.watermarks import WatermarkUpdate
from flows.errors import SeqcastError
from flows.sources.base import SourceFailure, SourceItems, SourceLoad, Window
from flows.sources.config import FilesSource
from flows.sources.layout import read_laid_out
from flows.sources.readers import read_file

SUFFIXES = (".csv", ".csv.gz", ".txt", ".parquet")


def list_files(cfg: FilesSource) -> list[Path]:
    """The files the source covers, oldest modification first."""
    return list_paths(cfg.name, cfg.path, SUFFIXES)


def list_paths(source: str, path: str, suffixes: tuple[str, ...]) -> list[Path]:
    """Files with one of ``suffixes`` in the directory or glob ``path``, oldest first."""
    root = Path(path).expanduser()
    if root.is_dir():
        found = [p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(suffixes)]
    elif any(ch in path for ch in "*?["):
        found = [
            Path(p)
            for p in glob.glob(str(root), recursive=True)
            if Path(p).is_file() and p.lower().endswith(suffixes)
        ]
    else:
        raise SeqcastError(
            f"source {source}: {path} is not a directory; give an existing directory "
            "or a glob such as incoming/*.csv"
        )
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def file_loads(cfg: FilesSource, window: Window | None = None) -> SourceItems:
    """One load per file (a backfill takes the files modified inside the window)."""
    for path in list_files(cfg):
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        if window is not None and not (window.start <= mtime < window.end):
            continue
        layout = cfg.layout
        try:
            batches = (
                [read_file(path, cfg.series_spec())]
                if layout is None or layout.is_long
                else read_laid_out(path, cfg.series_spec(), layout)  # wide: one per column
            )
        except SeqcastError as exc:
            yield SourceFailure(str(path), str(exc))
            continue
        for k, batch in enumerate(batches, start=1):
            mark = None
            if window is None and k == len(batches):  # the file is done with its last batch
                mark = WatermarkUpdate(
                    cfg.name, {"last_file": str(path), "last_mtime": mtime.isoformat()}
                )
            chunks = batch.chunks(cfg.chunk_rows)
            yield SourceLoad(batch.source, batch.content_sha256, chunks, mark)
