"""Document sources in the project file (``documents:``): text that arrives on its own.

Like the series sources (:mod:`flows.sources.config`), each one loads only what is new: files
by content hash, an HTTP API by the latest ``published_at`` it returned, a SQL table by a
watermark column. Secrets are read from environment variables the file names (``*_env``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.sources.config import HttpRequests, Name, check_url, resolve_url
from flows.sources.doc_files import TextFormat

Task = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,40}$")]


class _DocSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    task: Task | None = Field(
        None, description="the task labels are for (sentiment, ner, pos); none: unlabelled"
    )


class DocFilesSource(_DocSource):
    """Document files (CSV/TSV with a text column, CoNLL, CoNLL-U) in a directory or a glob."""

    type: Literal["files"]
    path: str = Field(description="a directory or a glob, e.g. incoming-docs/*.csv")
    format: TextFormat | None = Field(None, description="default: from each file's suffix")
    label_column: str | None = Field(None, description="CSV/TSV: the label column's name")


class DocHttpSource(_DocSource, HttpRequests):
    """A JSON API returning documents published in ``[{start}, {end})``."""

    type: Literal["http"]
    url: str = Field(description="template: {start} {end} {start_date} {end_date} {start_epoch}")
    records: str = Field("", description="dotted path to the list of records ('' = the body)")
    text_field: str = "text"
    id_field: str | None = "id"
    published_field: str | None = "published_at"
    timestamp_unit: Literal["iso", "s", "ms"] = "iso"
    label_field: str | None = None
    series_field: str | None = Field(None, description="field naming the series a text is about")


class DocSqlSource(_DocSource):
    """New rows of a table of documents in another database, by a watermark column."""

    type: Literal["sql"]
    url: str | None = Field(None, description="SQLAlchemy URL without a password")
    url_env: str | None = Field(None, description="or the environment variable holding the URL")
    table: str
    db_schema: str | None = None
    text_column: str
    watermark_column: str = Field(description="increasing column: an id or an updated_at")
    id_column: str | None = None
    published_column: str | None = None
    label_column: str | None = None
    series_column: str | None = None
    chunk_rows: int = Field(5_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _one_url(self) -> DocSqlSource:
        check_url(self.url, self.url_env)
        return self

    def resolved_url(self) -> str:
        return resolve_url(self.name, self.url, self.url_env)

    def columns(self) -> list[str]:
        """Every column read, each once."""
        named = [
            self.text_column,
            self.watermark_column,
            self.id_column,
            self.published_column,
            self.label_column,
            self.series_column,
        ]
        return list(dict.fromkeys(c for c in named if c))


DocumentSourceConfig = Annotated[
    DocFilesSource | DocHttpSource | DocSqlSource, Field(discriminator="type")
]
