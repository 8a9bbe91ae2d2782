"""Analysts' views: every forecast vintage, error columns, accuracy over trailing windows.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-30

The views give the same rows on SQLite and PostgreSQL; only the "N days before" arithmetic
differs between the two dialects (see ``_days_before``). docs/analysts.md documents them.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Every forecast of every run; vintage 1 is the row latest_forecasts shows for that target.
FORECAST_VINTAGES = """
CREATE VIEW forecast_vintages AS
SELECT f.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at, r.created_at,
       f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
       ROW_NUMBER() OVER (
           PARTITION BY f.series_id, f.ts
           ORDER BY r.issued_at DESC, r.created_at DESC, r.run_id DESC
       ) AS vintage
FROM forecasts f
JOIN forecast_runs r ON r.run_id = f.run_id
"""

# The columns of 0001's view first and unchanged, so existing queries keep working.
FORECAST_VS_ACTUAL = """
CREATE VIEW forecast_vs_actual AS
SELECT f.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at,
       f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
       o.value AS actual,
       o.value - f.yhat AS error,
       ABS(o.value - f.yhat) AS abs_error,
       (o.value - f.yhat) * (o.value - f.yhat) AS squared_error,
       CASE WHEN o.value = 0 THEN NULL
            ELSE 100.0 * ABS(o.value - f.yhat) / ABS(o.value) END AS ape,
       CASE WHEN f.yhat_lower IS NULL OR f.yhat_upper IS NULL THEN NULL
            WHEN o.value >= f.yhat_lower AND o.value <= f.yhat_upper THEN 1
            ELSE 0 END AS in_interval,
       r.created_at
FROM forecasts f
JOIN forecast_runs r ON r.run_id = f.run_id
JOIN observations o ON o.series_id = f.series_id AND o.ts = f.ts
"""

FORECAST_VS_ACTUAL_0001 = """
CREATE VIEW forecast_vs_actual AS
SELECT f.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at,
       f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
       o.value AS actual,
       o.value - f.yhat AS error,
       ABS(o.value - f.yhat) AS abs_error
FROM forecasts f
JOIN forecast_runs r ON r.run_id = f.run_id
JOIN observations o ON o.series_id = f.series_id AND o.ts = f.ts
"""

TRAILING_DAYS = (7, 30, 90)

# Self-contained (no view on a view) so a later migration can replace either view alone.
FORECAST_ACCURACY = """
CREATE VIEW forecast_accuracy AS
WITH windows AS ({windows}),
ends AS (
    SELECT series_id, MAX(ts) AS window_end FROM observations GROUP BY series_id
),
bounds AS (
    SELECT e.series_id, w.window_days, {start} AS window_start, e.window_end
    FROM ends e CROSS JOIN windows w
),
scored AS (
    SELECT b.series_id, r.model_name, r.model_version, f.step,
           b.window_days, b.window_start, b.window_end,
           o.value - f.yhat AS error,
           CASE WHEN o.value = 0 THEN NULL
                ELSE 100.0 * ABS(o.value - f.yhat) / ABS(o.value) END AS ape,
           CASE WHEN f.yhat_lower IS NULL OR f.yhat_upper IS NULL THEN NULL
                WHEN o.value >= f.yhat_lower AND o.value <= f.yhat_upper
                THEN CAST(1 AS DOUBLE PRECISION)
                ELSE CAST(0 AS DOUBLE PRECISION) END AS inside
    FROM forecasts f
    JOIN forecast_runs r ON r.run_id = f.run_id
    JOIN observations o ON o.series_id = f.series_id AND o.ts = f.ts
    JOIN bounds b ON b.series_id = f.series_id
                 AND f.ts > b.window_start AND f.ts <= b.window_end
)
SELECT series_id, model_name, model_version, step, window_days, window_start, window_end,
       COUNT(*) AS n,
       AVG(ABS(error)) AS mae,
       SQRT(AVG(error * error)) AS rmse,
       AVG(error) AS bias,
       AVG(ape) AS mape,
       AVG(inside) AS coverage
FROM scored
GROUP BY series_id, model_name, model_version, step, window_days, window_start, window_end
"""


def _days_before(dialect: str) -> str:
    """SQL for ``e.window_end`` minus ``w.window_days`` days, in the column's own type."""
    if dialect == "sqlite":
        # Timestamps are fixed-width UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f
        # has milliseconds, so pad to microseconds to compare like with like.
        return (
            "strftime('%Y-%m-%d %H:%M:%f', e.window_end, '-' || w.window_days || ' days') || '000'"
        )
    return "e.window_end - w.window_days * INTERVAL '1 day'"


def forecast_accuracy_sql(dialect: str) -> str:
    windows = " UNION ALL ".join(f"SELECT {d} AS window_days" for d in TRAILING_DAYS)
    return FORECAST_ACCURACY.format(windows=windows, start=_days_before(dialect))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW forecast_vs_actual")
    op.execute(FORECAST_VS_ACTUAL)
    op.execute(FORECAST_VINTAGES)
    op.execute(forecast_accuracy_sql(dialect))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS forecast_accuracy")
    op.execute("DROP VIEW IF EXISTS forecast_vintages")
    op.execute("DROP VIEW IF EXISTS forecast_vs_actual")
    op.execute(FORECAST_VS_ACTUAL_0001)
