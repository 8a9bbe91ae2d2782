"""What ``seqcast ingest files`` checks before it starts a flow: the options, the data set
names, the files' layout and headers. Light imports only, so a user error answers fast."""

from __future__ import annotations

from typing import Any

from flows.errors import SeqcastError


def file_layout(columns: str | None, wide: bool, series_id: str | None, decimal: str) -> Any:
    """The :class:`~flows.sources.layout.FileLayout` the options give (a user error when they
    contradict each other)."""
    from pydantic import ValidationError

    from flows.sources.layout import FileLayout

    try:
        return FileLayout.model_validate(
            {"columns": FileLayout.parse_columns(columns), "wide": wide, "series_id": series_id,
             "decimal": decimal}
        )  # fmt: skip
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "--columns/--wide/--series-id"
        raise SeqcastError(f"{where}: {problem['msg']}") from None


def check_files(
    paths: list[str], bundled: list[str], kind: str | None, freq: str | None, layout: Any = None
) -> None:
    """What ``ingest files`` can check before it starts: options, data set names, files."""
    from flows.sources.bundled import BUNDLED
    from flows.sources.layout import read_laid_out
    from flows.sources.readers import check_file

    if not paths and not bundled:
        raise SeqcastError("nothing to ingest: give file paths or --bundled glucose/stocks")
    if (kind is None) != (freq is None):
        raise SeqcastError("give kind and freq together to declare new series (--kind --freq)")
    if freq is not None:
        check_freq(freq)
    unknown = sorted(set(bundled) - set(BUNDLED))
    if unknown:
        raise SeqcastError(f"unknown bundled data set(s) {unknown}; choose from {sorted(BUNDLED)}")
    problems = []
    for path in paths:
        try:
            _ = (
                check_file(path)
                if layout is None or layout.is_long
                else read_laid_out(path, None, layout)
            )
        except SeqcastError as exc:
            problems.append(str(exc))
    if len(paths) == 1 and problems:
        raise SeqcastError(problems[0])
    if problems:
        raise SeqcastError(
            f"{len(problems)} of {len(paths)} files cannot be loaded (nothing was): "
            + " | ".join(problems)
        )


def check_freq(freq: str) -> None:
    """A pandas frequency alias (5min, h, D, B...), as the panel will read it."""
    import warnings

    from pandas.tseries.frequencies import to_offset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated aliases still work
            to_offset(freq)
    except ValueError:
        raise SeqcastError(
            f"--freq {freq!r} is not a pandas frequency; use e.g. 5min, 15min, h, D, B or W"
        ) from None
