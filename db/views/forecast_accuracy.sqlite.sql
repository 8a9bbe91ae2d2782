-- forecast_accuracy on SQLite: the view of forecast_accuracy.sql (its columns are described
-- there), with window_start computed on SQLite's timestamps. They are fixed-width UTC text
-- 'YYYY-MM-DD HH:MM:SS.ffffff', and strftime's %f has milliseconds only, so the result is
-- padded to microseconds to compare like with like.
CREATE VIEW forecast_accuracy AS
WITH windows AS (
    SELECT 7 AS window_days UNION ALL SELECT 30 AS window_days UNION ALL SELECT 90 AS window_days
),
ends AS (
    SELECT series_id, MAX(ts) AS window_end FROM observations GROUP BY series_id
),
bounds AS (
    SELECT e.series_id, w.window_days,
           strftime('%Y-%m-%d %H:%M:%f', e.window_end, '-' || w.window_days || ' days')
               || '000' AS window_start,
           e.window_end
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
GROUP BY series_id, model_name, model_version, step, window_days, window_start, window_end;
