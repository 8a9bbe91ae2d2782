"""bench/cli_latency.py's result table: medians with ranges per variant, ratios, outcomes."""

from __future__ import annotations

from typing import Any


def table(results: dict[str, Any], errors: list[str]) -> tuple[list[str], list[list[Any]]]:
    """The result table: one row per user error and per part of the one-shot ingest."""
    variants = list(results)
    columns = ["measure"] + [f"{v} median [min-max] s" for v in variants]
    if "before" in results:
        columns.append("before/after (median)")
    columns.append("outcome (" + " / ".join(v for v in variants if "errors" in results[v]) + ")")
    rows: list[list[Any]] = []

    def row(label: str, get: Any) -> None:
        cells: list[Any] = [label]
        values = {}
        for v in variants:
            s = get(results[v])
            values[v] = s
            cells.append("-" if s is None else f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]")
        if "before" in results:
            b, a = values.get("before"), values.get("after")
            cells.append(f"{b['median'] / a['median']:.1f}x" if b and a and a["median"] else "-")
        rows.append(cells)

    for name in errors:
        row(f"error: {name}", lambda r, n=name: r.get("errors", {}).get(n))
        rows[-1].append(" / ".join(outcome(results[v]["errors"][name]) for v in variants
                                   if "errors" in results[v]))  # fmt: skip
    labels = {
        "total": "one-shot ingest, total",
        "a": "  (a) process start + imports",
        "b": "  (b) waiting for the Prefect server",
        "c": "  (c) the flow",
        "server_boot": "  server boot (spawn to flow start)",
    }
    for key, label in labels.items():
        row(label, lambda r, k=key: r.get("one_shot", {}).get(k))
        rows[-1].append("")
    return columns, rows


def outcome(error: dict[str, Any]) -> str:
    """How the runs of one user error ended: exit codes, tracebacks, Prefect servers."""
    text = "exit " + ",".join(str(c) for c in error["exit_codes"])
    if error["runs_with_a_traceback"]:
        text += ", traceback"
    if error["runs_with_a_server"]:
        text += ", server started"
    return text
