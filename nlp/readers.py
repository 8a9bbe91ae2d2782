"""Readers for labelled text (CSV/TSV), CoNLL token-per-line and CoNLL-U files.

A malformed record (wrong column count, unknown tag, empty document, invalid UTF-8) becomes a
:class:`Reject` naming the file and line; the rest of the file is still read, so
``len(records) + len(rejects)`` is the number of records the file holds.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
TEXT_COLUMNS = ("text", "sentence", "review", "document", "snippet")
LABEL_COLUMNS = ("label", "sentiment", "class", "polarity")
UPOS_TAGS = frozenset(
    {
        *("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM"),
        *("PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"),
    }
)
SCHEMES = ("BIO", "BIOES", "none")
_PREFIXED = re.compile(r"^([A-Z])-(\S+)$")


class TextFormatError(ValueError):
    """A text file cannot be read at all (missing, no header, no text column)."""


@dataclass(frozen=True)
class Reject:
    """One record that was not read, and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class LabelledText:
    """A document from a CSV/TSV file; ``fields`` holds its other columns by name."""

    text: str
    label: str | None
    line: int
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaggedSentence:
    """Tokens and one tag each; ``line`` is the first token's line in the file."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int
    document: int = 0


@dataclass
class ReadResult(Generic[T]):
    """What a reader kept and what it rejected; ``scheme`` for tagged files."""

    path: str
    records: list[T]
    rejects: list[Reject]
    scheme: str | None = None

    @property
    def received(self) -> int:
        return len(self.records) + len(self.rejects)


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line; text is None where the bytes are not valid UTF-8."""
    try:
        data = path.read_bytes()
        if path.suffix == ".bz2":
            data = bz2.decompress(data)
        elif path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise TextFormatError(
            f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
        ) from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    chunks = data.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()  # the newline at the end of the file opens no line
    for number, raw in enumerate(chunks, start=1):
        try:
            yield number, raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, f"\0{exc.start}"  # a NUL never survives decoding of real text


def _suffix(path: Path) -> str:
    """The format suffix, under a compression suffix (``.csv.bz2`` -> ``.csv``)."""
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes and suffixes[-1] in (".bz2", ".gz"):
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _is_bad(text: str | None) -> bool:
    return text is None or text.startswith("\0")


def _bad_utf8(path: Path, number: int, text: str) -> Reject:
    return Reject(str(path), number, f"invalid UTF-8 at byte {text[1:]}")


def _find(names: list[str], given: str | None, candidates: tuple[str, ...]) -> int | None:
    wanted = (given.lower(),) if given else candidates
    for name in wanted:
        if name in names:
            return names.index(name)
    return None


def read_labelled(
    path: str | Path,
    text_column: str | None = None,
    label_column: str | None = None,
    require_label: bool = True,
    delimiter: str | None = None,
) -> ReadResult[LabelledText]:
    """Read a CSV (quoted fields) or TSV (no quoting) file with a header row.

    The text column is ``text_column`` or the first of text, sentence, review, document,
    snippet; the label column likewise from label, sentiment, class, polarity.

    Raises:
        TextFormatError: the file is unreadable or lacks the text (or required label) column.
    """
    path = Path(path)
    lines = _lines(path)
    first = next(lines, None)
    header = first[1] if first is not None else None
    if header is None or _is_bad(header) or not header.strip():
        raise TextFormatError(f"{path}:1: expected a header row (e.g. text,label)")
    tsv = delimiter == "\t" or (
        delimiter is None and (_suffix(path) in (".tsv", ".tab") or "\t" in header)
    )
    sep = "\t" if tsv else (delimiter or ",")
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
    names = [n.strip().lower() for n in next(csv.reader([header], delimiter=sep, quoting=quoting))]
    text_idx = _find(names, text_column, TEXT_COLUMNS)
    label_idx = _find(names, label_column, LABEL_COLUMNS)
    if text_idx is None:
        raise TextFormatError(
            f"{path}:1: no text column among {names}; name one {list(TEXT_COLUMNS)} "
            "or pass text_column"
        )
    if label_idx is None and (require_label or label_column):
        raise TextFormatError(
            f"{path}:1: no label column among {names}; name one {list(LABEL_COLUMNS)} "
            "or pass label_column"
        )
    rejects: list[Reject] = []
    records: list[LabelledText] = []
    start = {"line": 0}

    def feed() -> Iterator[str]:
        for number, text in lines:
            if _is_bad(text):
                rejects.append(_bad_utf8(path, number, text or ""))
                continue
            if start["line"] == 0:
                start["line"] = number
            yield (text or "") + "\n"

    reader = csv.reader(feed(), delimiter=sep, quoting=quoting, strict=True)
    while True:
        start["line"] = 0
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejects.append(Reject(str(path), start["line"], f"malformed CSV: {exc}"))
            continue
        number = start["line"]
        if not row or (len(row) == 1 and not row[0].strip() and len(names) > 1):
            continue  # a blank line is no record
        if len(row) != len(names):
            rejects.append(
                Reject(str(path), number, f"expected {len(names)} columns, got {len(row)}")
            )
            continue
        text = row[text_idx].strip()
        label = row[label_idx].strip() if label_idx is not None else None
        if not text:
            rejects.append(Reject(str(path), number, "empty document"))
        elif require_label and not label:
            rejects.append(Reject(str(path), number, "empty label"))
        else:
            fields = {
                n: v
                for i, (n, v) in enumerate(zip(names, row, strict=True))
                if i not in (text_idx, label_idx)
            }
            records.append(LabelledText(text, label or None, number, fields))
    rejects.sort(key=lambda r: r.line)
    return ReadResult(str(path), records, rejects)


@dataclass
class _Sentence:
    line: int = 0
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    error: Reject | None = None


def _tag_problem(tag: str, scheme: str) -> str | None:
    if scheme == "none" or tag == "O":
        return None
    m = _PREFIXED.match(tag)
    allowed = "BI" if scheme == "BIO" else "BIES"
    if m is None or m.group(1) not in allowed:
        return f"unknown tag {tag!r} for scheme {scheme}: tags are O or {'/'.join(allowed)}-TYPE"
    return None


def _detect_scheme(sentences: list[_Sentence]) -> str:
    tags = [t for s in sentences if s.error is None for t in s.tags if t != "O"]
    prefixed = [m.group(1) for t in tags if (m := _PREFIXED.match(t))]
    if not tags or len(prefixed) * 2 < len(tags):
        return "none"
    return "BIOES" if {"E", "S"} & set(prefixed) else "BIO"


def _finish(
    path: Path, sentences: list[_Sentence], scheme: str | None
) -> ReadResult[TaggedSentence]:
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES} or None (detect), got {scheme!r}")
    scheme = scheme or _detect_scheme(sentences)
    records, rejects, document = [], [], 0
    for s in sentences:
        if s.tokens == ["-DOCSTART-"]:
            document += 1
            continue
        if s.error is None:
            for i, tag in enumerate(s.tags):
                if (problem := _tag_problem(tag, scheme)) is not None:
                    s.error = Reject(str(path), s.line + i, problem)
                    break
        if s.error is not None:
            rejects.append(s.error)
        else:
            records.append(TaggedSentence(tuple(s.tokens), tuple(s.tags), s.line, document))
    return ReadResult(str(path), records, rejects, scheme)


def read_conll(path: str | Path, scheme: str | None = None) -> ReadResult[TaggedSentence]:
    """Read CoNLL token-per-line data: the first column is the token, the last the tag.

    Blank lines end sentences; ``-DOCSTART-`` lines start documents. ``scheme`` is BIO,
    BIOES or ``none`` (any tag, e.g. POS); None detects it. A sentence with a malformed line
    is rejected whole (a sentence missing a token would teach the wrong tags).
    """
    path = Path(path)
    sentences: list[_Sentence] = []
    cur = _Sentence()
    ncols: int | None = None
    for number, text in _lines(path):
        if _is_bad(text):
            cur.line = cur.line or number
            cur.error = cur.error or _bad_utf8(path, number, text or "")
            continue
        parts = (text or "").split()
        if not parts or parts[0] == "-DOCSTART-":
            if cur.line:
                sentences.append(cur)
            if parts:
                sentences.append(_Sentence(number, ["-DOCSTART-"], ["O"]))
            cur = _Sentence()
            continue
        cur.line = cur.line or number
        if ncols is None and len(parts) >= 2:
            ncols = len(parts)
        if len(parts) < 2 or len(parts) != ncols:
            cur.error = cur.error or Reject(
                str(path),
                number,
                f"expected {ncols or 2} columns (token ... tag), got {len(parts)}",
            )
            continue
        cur.tokens.append(parts[0])
        cur.tags.append(parts[-1])
    if cur.line:
        sentences.append(cur)
    return _finish(path, sentences, scheme)


def read_conllu(
    path: str | Path, tagset: frozenset[str] | None = UPOS_TAGS
) -> ReadResult[TaggedSentence]:
    """Read CoNLL-U: tokens (column 2) with their UPOS tags (column 4).

    Comment lines and multiword-token ranges (``3-4``) and empty nodes (``5.1``) are skipped;
    a token line without 10 tab-separated columns or with a tag outside ``tagset`` (the 17 UD
    v2 UPOS tags; None accepts any tag but ``_``, e.g. older treebanks' CONJ and PRT) rejects
    its sentence.
    """
    path = Path(path)
    sentences: list[_Sentence] = []
    cur = _Sentence()
    for number, text in _lines(path):
        if _is_bad(text):
            cur.line = cur.line or number
            cur.error = cur.error or _bad_utf8(path, number, text or "")
            continue
        line = text or ""
        if not line.strip():
            if cur.line:
                sentences.append(cur)
            cur = _Sentence()
            continue
        if line.startswith("#"):
            continue
        cur.line = cur.line or number
        cols = line.split("\t")
        if len(cols) != 10:
            cur.error = cur.error or Reject(
                str(path), number, f"expected 10 tab-separated columns, got {len(cols)}"
            )
            continue
        if "-" in cols[0] or "." in cols[0]:
            continue
        if (tagset is not None and cols[3] not in tagset) or cols[3] in ("", "_"):
            cur.error = cur.error or Reject(str(path), number, f"unknown UPOS tag {cols[3]!r}")
            continue
        cur.tokens.append(cols[1])
        cur.tags.append(cols[3])
    if cur.line:
        sentences.append(cur)
    for s in sentences:
        if s.error is None and not s.tokens:
            s.error = Reject(str(path), s.line, "sentence without tokens")
    return _finish(path, sentences, "none")
