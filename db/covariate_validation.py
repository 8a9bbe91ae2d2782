"""Row-level validation of incoming covariates and static series attributes.

The same contract as observations (:mod:`db.validation`): every received row is accepted or
rejected with the reason of the first check it fails, so ``accepted + rejected == received``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from db.validation import (
    ValidatedBatch,
    _check_series_ids,
    _check_values,
    _parse_timestamps,
    _Reasons,
    _reject_repeated_keys,
)

COVARIATE_KINDS = ("known_future", "past_only")
COVARIATE_SCOPES = ("series", "group", "global")
ATTRIBUTE_KINDS = ("numeric", "categorical")


@dataclass(frozen=True)
class CovariateDeclaration:
    """What the rows of one covariate batch are.

    Attributes:
        kind: ``known_future`` (known over the forecast horizon) or ``past_only`` (known up
            to the forecast origin only).
        scope: ``series`` (the rows' ``scope_key`` is a declared series id), ``group`` (a
            group name of the project file) or ``global`` (for every series; no key).
        name: the covariate every row is a value of; None takes each row's ``name`` column.
    """

    kind: str
    scope: str = "series"
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in COVARIATE_KINDS:
            raise ValueError(f"covariate kind {self.kind!r}: choose from {list(COVARIATE_KINDS)}")
        if self.scope not in COVARIATE_SCOPES:
            raise ValueError(
                f"covariate scope {self.scope!r}: choose from {list(COVARIATE_SCOPES)}"
            )
        if self.name is not None and not self.name.strip():
            raise ValueError("covariate name is empty; give a name or None to read a name column")

    def describe(self) -> str:
        named = f"name {self.name}" if self.name else "names from the name column"
        return f"covariates: {self.kind}, {self.scope} scope, {named}"


@dataclass(frozen=True)
class AttributeDeclaration:
    """What the rows of one static attribute batch are: ``numeric`` or ``categorical``
    values, of the attribute ``name`` (None: each row's ``name`` column)."""

    kind: str
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTRIBUTE_KINDS:
            raise ValueError(f"attribute kind {self.kind!r}: choose from {list(ATTRIBUTE_KINDS)}")
        if self.name is not None and not self.name.strip():
            raise ValueError("attribute name is empty; give a name or None to read a name column")


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).fillna("").astype(str).str.strip()


def _check_names(
    frame: pd.DataFrame,
    given: str | None,
    kind: str,
    stored_kinds: dict[str, str],
    what: str,
    reasons: _Reasons,
) -> pd.Series:
    """Each row's name (``given`` or its ``name`` column); rejects empty names and names
    stored already with another kind."""
    if given is not None:
        names = pd.Series(given.strip(), index=frame.index, dtype=object)
    elif "name" in frame.columns:
        names = _text(frame["name"])
    else:
        raise ValueError(f"{what} rows need a name column, or declare the name of every row")
    reasons.reject((names == "").to_numpy(), f"empty {what} name")
    for name, stored in stored_kinds.items():
        if stored != kind:
            reasons.reject(
                (names == name).to_numpy(),
                f"{what} {name!r} is stored as {stored}, not {kind}; "
                f"ingest it as {stored} or under another name",
            )
    return names


def _check_scope_keys(
    frame: pd.DataFrame, scope: str, known_series: set[str], reasons: _Reasons
) -> pd.Series:
    """The rows' scope keys: declared series ids, non-empty group names, or '' (global)."""
    present = "scope_key" in frame.columns
    if scope == "series":
        if not present:
            raise ValueError("series-scoped covariate rows need a scope_key column (series ids)")
        return _check_series_ids(frame["scope_key"], known_series, reasons)
    if scope == "group":
        if not present:
            raise ValueError("group-scoped covariate rows need a scope_key column (group names)")
        keys = _text(frame["scope_key"])
        reasons.reject((keys == "").to_numpy(), "empty group name")
        return keys
    keys = _text(frame["scope_key"]) if present else pd.Series("", index=frame.index)
    reasons.reject(
        (keys != "").to_numpy(), "a global covariate row takes no scope key; leave it empty"
    )
    return pd.Series("", index=frame.index, dtype=object)


def _rejected(
    frame: pd.DataFrame, reasons: _Reasons, key_column: str, ts_column: str | None
) -> pd.DataFrame:
    bad = ~reasons.free
    return pd.DataFrame(
        {
            "row_number": frame.loc[bad, "row_number"].to_numpy(dtype=np.int64),
            "series_id": frame.loc[bad, key_column].astype(object).to_numpy()
            if key_column in frame.columns
            else None,
            "ts": frame.loc[bad, ts_column].astype(object).to_numpy() if ts_column else None,
            "value": frame.loc[bad, "value"].astype(object).to_numpy(),
            "reason": reasons.text[bad].to_numpy(dtype=object),
        }
    )


def validate_covariates(
    raw: pd.DataFrame,
    declaration: CovariateDeclaration,
    known_series: set[str],
    stored_kinds: dict[str, str],
    assume_timezone: str | None = None,
) -> ValidatedBatch:
    """Validate raw text columns ``[name,] [scope_key,] ts, value, row_number``.

    Checks, first failed gives the reason: ``read_error``, the name (empty, stored with the
    other kind), the scope key, the timestamp, the value, then repeated keys in the frame.
    Accepted rows have ``name, scope_key, ts, value, row_number``; rejected rows keep the scope
    key as received in ``series_id`` (the rejects table's column for whom a row was for).
    """
    frame = raw.reset_index(drop=True)
    reasons = _Reasons(frame)
    names = _check_names(
        frame, declaration.name, declaration.kind, stored_kinds, "covariate", reasons
    )
    keys = _check_scope_keys(frame, declaration.scope, known_series, reasons)
    ts, ts_reasons = _parse_timestamps(frame["ts"], assume_timezone)
    reasons.reject(ts.isna().to_numpy(), ts_reasons)
    value = _check_values(frame["value"], reasons)
    # A row's key is (name, scope key, ts): joined into one label for the repeat check.
    _reject_repeated_keys(
        names + "\x1f" + keys, ts, value, frame["row_number"], reasons, "name, scope key and ts"
    )
    ok = reasons.free
    accepted = pd.DataFrame(
        {
            "name": names[ok].to_numpy(dtype=object),
            "scope_key": keys[ok].to_numpy(dtype=object),
            "ts": pd.to_datetime(ts[ok].array, utc=True).as_unit("us"),
            "value": value[ok].astype(float).to_numpy(),
            "row_number": frame.loc[ok, "row_number"].to_numpy(dtype=np.int64),
        }
    )
    return ValidatedBatch(accepted, _rejected(frame, reasons, "scope_key", "ts"))


def validate_attributes(
    raw: pd.DataFrame,
    declaration: AttributeDeclaration,
    known_series: set[str],
    stored_kinds: dict[str, str],
) -> ValidatedBatch:
    """Validate raw text columns ``series_id, [name,] value, row_number`` of static attributes.

    Numeric values must be finite numbers, categorical ones non-empty text. Accepted rows have
    ``series_id, name, value_num, value_text, row_number``.
    """
    frame = raw.reset_index(drop=True)
    reasons = _Reasons(frame)
    names = _check_names(
        frame, declaration.name, declaration.kind, stored_kinds, "attribute", reasons
    )
    sid = _check_series_ids(frame["series_id"], known_series, reasons)
    if declaration.kind == "numeric":
        number = _check_values(frame["value"], reasons)
        text = pd.Series(None, index=frame.index, dtype=object)
        compared: pd.Series = number
    else:
        text = _text(frame["value"])
        reasons.reject((text == "").to_numpy(), "empty categorical value")
        number = pd.Series(np.nan, index=frame.index)
        compared = text
    _reject_repeated_keys(
        sid, names, compared, frame["row_number"], reasons, "series_id and attribute name"
    )
    ok = reasons.free
    accepted = pd.DataFrame(
        {
            "series_id": sid[ok].to_numpy(dtype=object),
            "name": names[ok].to_numpy(dtype=object),
            "value_num": number[ok].to_numpy(dtype=float),
            "value_text": text[ok].to_numpy(dtype=object),
            "row_number": frame.loc[ok, "row_number"].to_numpy(dtype=np.int64),
        }
    )
    return ValidatedBatch(accepted, _rejected(frame, reasons, "series_id", None))
