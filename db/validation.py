"""Row-level validation of incoming observations against the data contract.

Every received row ends up either accepted or rejected with a reason, so that
``accepted + rejected == received`` holds for every batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from db.bulk import distinct_codes

REQUIRED_COLUMNS = ("series_id", "ts", "value")


@dataclass(frozen=True)
class ValidatedBatch:
    """The outcome of validating one batch: accepted rows and rejected rows with reasons."""

    accepted: pd.DataFrame  # series_id: str, ts: datetime64[ns, UTC], value: float, row_number
    rejected: pd.DataFrame  # row_number, series_id, ts, value (as received, text), reason

    @property
    def received(self) -> int:
        return len(self.accepted) + len(self.rejected)


def _per_distinct(
    column: pd.Series, parse: Callable[[pd.Series], tuple[pd.Series, pd.Series]]
) -> tuple[pd.Series, pd.Series]:
    """Apply ``parse`` to each distinct value of ``column`` once and spread the results back.

    Long-format batches repeat the same timestamps (one per series) and series ids (one per
    timestamp), so parsing distinct values is far cheaper than parsing every row.
    """
    codes, uniques = distinct_codes(column)
    parsed, reasons = parse(uniques)
    return (
        parsed.take(codes).set_axis(column.index),
        reasons.take(codes).set_axis(column.index),
    )


def _parse_timestamps(text: pd.Series, assume_timezone: str | None) -> tuple[pd.Series, pd.Series]:
    """Parse ISO-like timestamps to UTC; return (parsed, reason-or-empty) per row."""
    return _per_distinct(text, lambda distinct: _parse_distinct(distinct, assume_timezone))


def _parse_distinct(text: pd.Series, assume_timezone: str | None) -> tuple[pd.Series, pd.Series]:
    # Microsecond resolution holds any year; rows outside the nanosecond range that pandas
    # and the forecasters use are rejected below.
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    reasons = pd.Series("", index=text.index, dtype=object)
    stripped = text.fillna("").astype(str).str.strip()
    empty = stripped == ""
    reasons[empty] = "empty timestamp"
    # Offsets are detected per row, so mixed-offset files are handled row by row.
    has_offset = stripped.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    aware_idx = stripped.index[~empty & has_offset]
    naive_idx = stripped.index[~empty & ~has_offset]
    if len(aware_idx):
        parsed.loc[aware_idx] = pd.to_datetime(
            stripped[aware_idx], utc=True, errors="coerce", format="ISO8601"
        ).dt.as_unit("us")
    if len(naive_idx):
        naive = pd.to_datetime(stripped[naive_idx], errors="coerce", format="ISO8601").dt.as_unit(
            "us"
        )
        parseable = naive.notna()
        if assume_timezone is None:
            reasons[naive.index[parseable]] = (
                "timestamp has no UTC offset; write it as ISO 8601 with an offset "
                "(e.g. 2024-01-01T00:00:00+00:00) or give the zone to assume (--assume-timezone "
                "UTC, or assume_timezone in a files source)"
            )
        else:
            localized = naive.dt.tz_localize(
                assume_timezone, ambiguous="NaT", nonexistent="NaT"
            ).dt.tz_convert("UTC")
            parsed.loc[naive_idx] = localized
            ambiguous = parseable & localized.isna()
            reasons[naive.index[ambiguous]] = (
                f"local time does not exist or is ambiguous in {assume_timezone} (DST change)"
            )
    unparsed = parsed.isna() & (reasons == "")
    reasons[unparsed] = "unparseable timestamp " + stripped[unparsed].str.slice(0, 60).map(repr)
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    out_of_range = parsed.notna() & ((parsed < lo) | (parsed > hi)) & (reasons == "")
    reasons[out_of_range] = f"timestamp outside the supported range {lo:%Y-%m-%d} to {hi:%Y-%m-%d}"
    parsed[out_of_range] = pd.NaT
    return parsed, reasons


def _value_text(values: pd.Series) -> pd.Series:
    return values.fillna("").astype(str).str.strip()


def _parse_values(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers and the text they were read from (only where a reason may quote it)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        # Already numbers: the text round trip would give the same floats; only rows that
        # are not finite need their text (for the reason).
        number = values.astype(float)
        text = pd.Series("", index=values.index, dtype=object)
        odd = ~np.isfinite(number.to_numpy())
        text[odd] = _value_text(values[odd].astype(object))
        return number, text
    text = _value_text(values)
    return pd.to_numeric(text, errors="coerce"), text


class _Reasons:
    """The reason each row is rejected for: the first check a row fails gives it its reason."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.text = pd.Series("", index=frame.index, dtype=object)
        if "read_error" in frame.columns:  # the reader could not split these lines
            self.text = frame["read_error"].fillna("").astype(str).astype(object)
        # Rows without a reason so far; each check only gives a reason to these.
        self.free = (self.text == "").to_numpy(copy=True)

    def reject(self, mask: np.ndarray, why: str | pd.Series) -> None:
        take = mask & self.free
        self.text[take] = why  # a Series gives each row its own reason (aligned on the index)
        self.free[take] = False


def _check_series_ids(ids: pd.Series, known_series: set[str], reasons: _Reasons) -> pd.Series:
    """Stripped series ids; rejects empty and undeclared ones."""
    codes, distinct_ids = distinct_codes(ids)
    distinct_sid = distinct_ids.astype(object).fillna("").astype(str).str.strip()
    sid = pd.Series(distinct_sid.to_numpy(dtype=object)[codes], index=ids.index, dtype=object)
    sid_empty = (distinct_sid == "").to_numpy()[codes]
    reasons.reject(sid_empty, "empty series_id")
    unknown = ~sid_empty & ~sid.isin(known_series).to_numpy()
    reasons.reject(
        unknown,
        "unknown series " + sid.where(unknown & reasons.free).dropna().map(repr)
        + "; declare it first (seqcast ingest --kind --freq)",
    )  # fmt: skip
    return sid


def _check_values(values: pd.Series, reasons: _Reasons) -> pd.Series:
    """Values as floats; rejects empty and non-finite ones, quoting what was received."""
    value, value_text = _parse_values(values)
    bad_value = (value.isna() | ~np.isfinite(value.fillna(0.0).to_numpy())).to_numpy()
    quoted = value_text.where(bad_value & reasons.free).dropna()
    if bad_value.any():
        reasons.reject(bad_value & (value_text == "").to_numpy(), "empty value")
    reasons.reject(
        bad_value, "value " + quoted.str.slice(0, 40).map(repr) + " is not a finite number"
    )
    return value


def _reject_repeated_keys(
    sid: pd.Series,
    ts: pd.Series,
    value: pd.Series,
    row_number: pd.Series,
    reasons: _Reasons,
    key: str = "series_id and ts",
) -> None:
    """Duplicate keys inside the batch: identical repeats keep the first row; conflicting
    values are all rejected because no single one can be trusted. ``key`` names the key in
    the reason."""
    keyed = pd.DataFrame({"series_id": sid, "ts": ts, "value": value, "row_number": row_number})[
        reasons.free
    ]
    # Only keys that occur more than once can be repeats or conflicts (usually none).
    keyed = keyed[keyed.duplicated(["series_id", "ts"], keep=False)]
    if not len(keyed):
        return
    grp = keyed.groupby(["series_id", "ts"], sort=False)
    n_distinct = grp["value"].transform("nunique")
    conflict_idx = keyed.index[n_distinct > 1]
    reasons.text[conflict_idx] = f"conflicting values for the same {key} in this batch"
    repeat_mask = keyed.duplicated(["series_id", "ts"], keep="first") & (n_distinct == 1)
    first_row = grp["row_number"].transform("first")
    rep_idx = keyed.index[repeat_mask]
    reasons.text[rep_idx] = "duplicate of row " + first_row[rep_idx].astype(str)
    reasons.free[conflict_idx] = False
    reasons.free[rep_idx] = False


def _split(
    frame: pd.DataFrame, reasons: _Reasons, sid: pd.Series, ts: pd.Series, value: pd.Series
) -> ValidatedBatch:
    """Accepted rows typed, rejected rows as received with their reason."""
    ok = reasons.free
    accepted = pd.DataFrame(
        {
            "series_id": sid[ok].to_numpy(dtype=object),
            "ts": ts[ok].array,
            "value": value[ok].astype(float).to_numpy(),
            "row_number": frame.loc[ok, "row_number"].to_numpy(dtype=np.int64),
        }
    )
    accepted["ts"] = pd.to_datetime(accepted["ts"], utc=True)
    bad = ~ok
    rejected = pd.DataFrame(
        {
            "row_number": frame.loc[bad, "row_number"].to_numpy(dtype=np.int64),
            "series_id": frame.loc[bad, "series_id"].astype(object).to_numpy(),
            "ts": frame.loc[bad, "ts"].astype(object).to_numpy(),
            "value": frame.loc[bad, "value"].astype(object).to_numpy(),
            "reason": reasons.text[bad].to_numpy(dtype=object),
        }
    )
    return ValidatedBatch(accepted=accepted, rejected=rejected)


def validate_observations(
    raw: pd.DataFrame,
    known_series: set[str],
    assume_timezone: str | None = None,
) -> ValidatedBatch:
    """Validate a raw long frame of text columns ``series_id, ts, value, row_number``.

    Checks run in this order and a row gets the reason of the first it fails: the reader's
    ``read_error`` (optional column), the series id, the timestamp, the value, then repeated
    keys within the frame.

    Args:
        raw: rows as received; ``row_number`` is the 1-based line or record number in the source.
        known_series: series ids declared in the database (others are rejected).
        assume_timezone: IANA zone for timestamps without an offset; None rejects them.

    Returns:
        The accepted rows (typed) and rejected rows (as received) with a reason each.
    """
    frame = raw.reset_index(drop=True)
    reasons = _Reasons(frame)
    sid = _check_series_ids(frame["series_id"], known_series, reasons)
    ts, ts_reasons = _parse_timestamps(frame["ts"], assume_timezone)
    reasons.reject(ts.isna().to_numpy(), ts_reasons)  # every unparsed timestamp has a reason
    value = _check_values(frame["value"], reasons)
    _reject_repeated_keys(sid, ts, value, frame["row_number"], reasons)
    return _split(frame, reasons, sid, ts, value)
