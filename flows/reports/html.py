"""``seqcast report``: one self-contained HTML file with forecasts, actuals and models.

Per series a plot of the recent actuals, the latest forecast with its interval and the
earlier forecasts that now have actuals; a table comparing every registered model version
(and the baselines) on its backtest; the trailing accuracy of the written forecasts. Styles
are inline and figures are embedded PNGs, so the file opens offline and can be mailed.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from db.forecasts import read_view
from db.observations import list_series, read_observations
from flows.reports.status import champions
from flows.settings import Settings
from flows.tracking import plots

HISTORY_POINTS = 120
COMPARE_METRICS = ("backtest_mae", "backtest_rmse", "backtest_smape", "backtest_mase",
                   "backtest_coverage")  # fmt: skip

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
tr.champion td { background: #eef7ee; font-weight: 600; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; }
.meta { color: #555; font-size: .9em; }
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plots.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return html.escape(str(value))


def _table(frame: pd.DataFrame, highlight: pd.Series | None = None) -> str:
    """An HTML table; text columns left-aligned; rows where ``highlight`` is true marked."""
    if frame.empty:
        return "<p>(none)</p>"
    left = {c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(
        f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in frame.columns
    )
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        mark = ' class="champion"' if highlight is not None and bool(highlight.iloc[i]) else ""
        cells = "".join(
            f'<td class="{"l" if c in left else ""}">{_fmt(row[c])}</td>' for c in frame.columns
        )
        rows.append(f"<tr{mark}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def model_comparison(tracking_uri: str) -> pd.DataFrame:
    """Every version of every ``seqcast-*`` model with its backtest, and the baselines' runs."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    champs = {c["model"]: c.get("champion") for c in champions(tracking_uri)}
    rows: list[dict[str, Any]] = []
    for model in client.search_registered_models(filter_string="name LIKE 'seqcast-%'"):
        parents: set[str] = set()
        for version in client.search_model_versions(f"name = '{model.name}'"):
            if not version.run_id:
                continue
            run = client.get_run(version.run_id)
            parents.add(run.data.tags.get("mlflow.parentRunId", ""))
            rows.append(
                {
                    "model": model.name,
                    "version": f"v{version.version}",
                    "cell": run.data.params.get("model.cell", "?"),
                    "champion": champs.get(model.name) == f"v{version.version}",
                    **{k: run.data.metrics.get(k, math.nan) for k in COMPARE_METRICS},
                }
            )
        for parent in sorted(p for p in parents if p):
            found = client.search_runs(
                [client.get_run(parent).info.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{parent}' "
                "and tags.model_type = 'baseline'",
            )
            for run in found:
                rows.append(
                    {
                        "model": model.name,
                        "version": "baseline",
                        "cell": run.data.tags.get("cell", "?"),
                        "champion": False,
                        **{k: run.data.metrics.get(k, math.nan) for k in COMPARE_METRICS},
                    }
                )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.drop_duplicates(["model", "version", "cell"]).reset_index(drop=True)


def series_figure(sid: str, history: pd.DataFrame, latest: pd.DataFrame, past: pd.DataFrame) -> Any:
    """Actuals, the latest forecast with its interval, and earlier forecasts with actuals."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(history["ts"], history["value"], color="black", lw=1.2, label="actual")
    if not past.empty:
        ax.plot(past["ts"], past["yhat"], color="tab:orange", lw=1, ls="--",
                label="earlier forecasts (latest vintage)")  # fmt: skip
    if not latest.empty:
        ax.plot(latest["ts"], latest["yhat"], color="tab:blue", lw=1.5, marker=".",
                label="latest forecast")  # fmt: skip
        if latest["yhat_lower"].notna().any():
            ax.fill_between(latest["ts"], latest["yhat_lower"], latest["yhat_upper"],
                            color="tab:blue", alpha=0.2, label="interval")  # fmt: skip
    ax.set_title(sid, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def build_report(engine: Engine, settings: Settings) -> str:
    """The report as one HTML string."""
    catalog = list_series(engine)
    catalog = catalog[catalog["n_obs"] > 0]
    latest = read_view(engine, "latest_forecasts")
    with_actual = read_view(engine, "forecast_vs_actual")
    sections = []
    for sid in catalog["series_id"]:
        obs = read_observations(engine, [sid]).sort_values("ts").tail(HISTORY_POINTS)
        mine = latest[latest["series_id"] == sid]
        past = with_actual[
            (with_actual["series_id"] == sid) & (with_actual["ts"] >= obs["ts"].min())
        ]
        past = past.sort_values(["ts", "issued_at"]).drop_duplicates("ts", keep="last")
        caption = f"{len(obs)} latest actuals; latest forecast: {len(mine)} steps" + (
            f" by {mine['model_name'].iloc[0]} v{mine['model_version'].iloc[0]} "
            f"(MLflow run {mine['mlflow_run_id'].iloc[0]}), issued "
            f"{_fmt(mine['issued_at'].max())}"
            if not mine.empty
            else " (none written yet)"
        )
        png = _png(series_figure(sid, obs, mine, past))
        sections.append(
            f"<figure><img alt='{html.escape(sid)}' src='data:image/png;base64,{png}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    try:
        compare = model_comparison(settings.mlflow_tracking_uri)
        compare_html = _table(
            compare.drop(columns=["champion"]) if not compare.empty else compare,
            compare["champion"] if not compare.empty else None,
        )
    except Exception as exc:  # the store may be unreachable; the forecasts still report
        compare_html = f"<p>MLflow registry unreadable: {html.escape(str(exc))}</p>"
    accuracy = read_view(engine, "forecast_accuracy")
    accuracy = accuracy[accuracy["window_days"] == 30].drop(columns=["window_days"])
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    now = dt.datetime.now(dt.UTC)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>seqcast report {now:%Y-%m-%d %H:%M} UTC</title><style>{STYLE}</style></head>
<body>
<h1>seqcast report</h1>
<p class="meta">Generated {now:%Y-%m-%d %H:%M} UTC from database {html.escape(where)} and MLflow
{html.escape(settings.mlflow_tracking_uri)}. All times UTC.</p>
<h2>Model comparison</h2>
<p>Every registered version on its rolling-origin backtest, next to the naive and
seasonal-naive baselines on the same windows; the champion is highlighted.</p>
{compare_html}
<h2>Forecasts per series</h2>
{"".join(sections) or "<p>(no series with observations)</p>"}
<h2>Accuracy of written forecasts, last 30 days</h2>
<p>From the <code>forecast_accuracy</code> view (docs/analysts.md): forecasts whose target
has an actual in the 30 days up to each series' newest observation.</p>
{_table(accuracy)}
</body></html>
"""


def write_report(engine: Engine, settings: Settings, path: Path) -> Path:
    """Write :func:`build_report` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(engine, settings), encoding="utf-8")
    return path
