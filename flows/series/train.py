"""The ``train-forecasters`` flow: train each group's candidates, backtest, register, promote."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.checks import check_database, check_tracking
from flows.hooks import ALERT
from flows.reports.tables import markdown_table
from flows.series.due import drifted_groups
from flows.series.group import train_or_fail
from flows.series.groups import groups_to_run
from flows.series.params import TrainParams
from flows.series.results import GroupsFailed, TrainingSummary
from flows.tracking.runs import run_link

REPORT_COLUMNS = (
    "group", "model", "version", "MASE", "sMAPE", "seasonal-naive MASE", "seasonal-naive sMAPE",
    "MLflow run",
)  # fmt: skip


@flow(name="train-forecasters", log_prints=True, on_failure=ALERT, on_crashed=ALERT)
def train_forecasters(params: TrainParams | None = None) -> TrainingSummary:
    """For each group: read its series, train every cell type, backtest, register, promote.

    Every group runs whatever happens to the others; when any failed, the flow then ends
    Failed naming them (:class:`GroupsFailed`, carrying the summary). With ``dask_address``
    the groups train in parallel on a Dask cluster (flows/series/fanout.py). With
    ``drifted_only`` (the hourly drift check) only the groups whose champion drifted, or that
    have none, are retrained (flows/series/due.py).
    """
    params = params or TrainParams()
    logger = get_run_logger()
    check_database()
    check_tracking()
    run_tags = {"flow_run_id": str(flow_run.id or "local"), "flow": "train-forecasters"}
    decisions: dict[str, str] = {}
    if params.drifted_only:
        groups, unresolved, decisions = drifted_groups(params)
        for name, why in decisions.items():
            logger.info("%s: %s", name, why)
    else:
        groups, unresolved = groups_to_run(params, "retrain")
    if params.dask_address is None or not groups:
        outcomes = tuple(train_or_fail(g, run_tags) for g in groups)
    else:
        from flows.series.fanout import train_groups_on_dask  # prefect-dask only when asked

        outcomes = train_groups_on_dask(groups, run_tags, params.dask_address).outcomes
    summary = TrainingSummary((*unresolved, *outcomes), decisions)
    create_markdown_artifact(key="train-forecasters", markdown=training_report(summary))
    if summary.failed:
        raise GroupsFailed(summary, summary.failed)
    return summary


def training_report(summary: TrainingSummary) -> str:
    """Markdown: each candidate next to the seasonal-naive baseline, its MLflow run, the
    champion decision per group, and each failed group with its reason."""
    rows = [{**r, "MLflow run": run_link(r["run_id"])} for r in summary.candidate_rows()]
    lines = [markdown_table(rows, REPORT_COLUMNS)]
    for g in summary.trained:
        d = g.decision
        lines.append(
            f"\n**{g.group}** ({g.rows} rows, {g.series} series; parent run "
            f"{run_link(g.parent_run_id)}): {d.change}. {d.reason}\n"
        )
    for f in summary.failed:
        lines.append(f"\n**{f.group}**: failed: {f.reason}\n")
    lines += [
        f"\n**{name}**: {why}\n"
        for name, why in summary.decisions.items()
        if not why.startswith("retrain:")
    ]
    return "\n".join(lines)
