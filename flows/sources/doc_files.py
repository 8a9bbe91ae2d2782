"""Document files: the format from the suffix, and one file read into a document batch.

Free of Prefect: the ``ingest-text`` flow and the configured document sources
(:mod:`flows.sources.doc_loads`) both read files through here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from db.documents import DocumentBatch, DocumentRow
from flows.errors import SeqcastError
from nlp.readers import TextFormatError, read_conll, read_conllu, read_labelled

TextFormat = Literal["csv", "tsv", "conll", "conllu"]

SUFFIX_FORMATS: dict[str, TextFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".conll": "conll",
    ".txt": "conll",
    ".conllu": "conllu",
}


def guess_format(path: Path) -> TextFormat:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".bz2", ".gz")]
    fmt = SUFFIX_FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise SeqcastError(f"{path}: cannot tell the format from the suffix; pass --format")
    return fmt


def read_document_batch(
    path: Path, fmt: TextFormat, task_name: str | None, label_column: str | None = None
) -> DocumentBatch:
    """Read one file with the nlp readers into rows for the database."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SeqcastError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    sha = hashlib.sha256(content).hexdigest()
    try:
        if fmt in ("csv", "tsv"):
            result = read_labelled(
                path,
                label_column=label_column,
                require_label=False,
                delimiter="\t" if fmt == "tsv" else ",",
            )
            rows = [
                DocumentRow(
                    line=r.line,
                    text=r.text,
                    doc_id=r.fields.get("doc_id") or r.fields.get("id"),
                    source=r.fields.get("source"),
                    published_at=r.fields.get("published_at"),
                    series_id=r.fields.get("series_id"),
                    # "plot" rows of the bundled reviews are documents to score, not labels.
                    label=None if r.label == "plot" and label_column == "category" else r.label,
                )
                for r in result.records
            ]
            scheme = None
        else:
            tagged = read_conll(path) if fmt == "conll" else read_conllu(path, tagset=None)
            rows = [
                DocumentRow(line=s.line, text=" ".join(s.tokens), tokens=s.tokens, tags=s.tags)
                for s in tagged.records
            ]
            result, scheme = tagged, tagged.scheme  # type: ignore[assignment]
    except TextFormatError as exc:
        raise SeqcastError(str(exc)) from exc
    task_name = task_name or ("sentiment" if fmt in ("csv", "tsv") else None)
    return DocumentBatch(
        source=str(path),
        content_sha256=sha,
        task=task_name,
        rows=rows,
        read_rejects=[(r.line, r.reason) for r in result.rejects],
        scheme=scheme,
    )
