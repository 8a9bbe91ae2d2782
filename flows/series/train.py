"""The ``train-forecasters`` flow: train each group's candidates, backtest, register, promote."""

from __future__ import annotations

import math
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.checks import check_database, check_tracking
from flows.series.group import train_group
from flows.series.params import TrainParams
from flows.tracking.runs import run_link


@flow(name="train-forecasters", log_prints=True)
def train_forecasters(params: TrainParams | None = None) -> dict[str, Any]:
    """For each group: read its series, train every cell type, backtest, register, promote.

    With ``dask_address`` the groups train in parallel on a Dask cluster (flows/series/fanout.py).
    """
    params = params or TrainParams()
    check_database()
    check_tracking()
    run_tags = {"flow_run_id": str(flow_run.id or "local"), "flow": "train-forecasters"}
    if params.dask_address is None:
        summary = {g.name: train_group(g, run_tags) for g in params.groups}
    else:
        from flows.series.fanout import train_groups_on_dask  # prefect-dask only when asked

        summary = train_groups_on_dask(params.groups, run_tags, params.dask_address)
    create_markdown_artifact(key="train-forecasters", markdown=training_report(summary))
    return summary


def training_report(summary: dict[str, Any]) -> str:
    """Markdown: each candidate next to the seasonal-naive baseline, its MLflow run, and the
    champion decision per group."""
    lines = [
        "| group | model | version | MASE | sMAPE | seasonal-naive MASE | seasonal-naive sMAPE "
        "| MLflow run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, s in summary.items():
        for cell, m in s["candidates"].items():
            lines.append(
                f"| {group} | {cell} | {m['version']} "
                f"| {m.get('backtest_mase', math.nan):.3f} "
                f"| {m.get('backtest_smape', math.nan):.2f} "
                f"| {m.get('seasonal_naive_mase', math.nan):.3f} "
                f"| {m.get('seasonal_naive_smape', math.nan):.2f} "
                f"| {run_link(m['run_id'])} |"
            )
    for group, s in summary.items():
        d = s["decision"]
        change = (
            f"champion is now v{d['challenger_version']}"
            if d["promoted"]
            else f"champion stays {d.get('champion', '(none)')}"
        )
        lines.append(
            f"\n**{group}** ({s['rows']} rows, {s['series']} series; parent run "
            f"{run_link(s['parent_run_id'])}): {change}. {d['reason']}\n"
        )
    return "\n".join(lines)
