-- forecast_accuracy: accuracy over trailing windows.
--
-- Per series, model version and horizon step, the accuracy of every forecast (all vintages)
-- whose target time lies in the trailing window of window_days days (7, 30 and 90) that ends
-- at the series' newest observation: window_start < ts <= window_end. Ending at the newest
-- actual rather than at the clock means a series whose data stopped arriving still shows its
-- last known accuracy, and the numbers do not change while no new data arrives. Groups with
-- no forecast in the window do not appear. The view reads tables only (no other view), so a
-- later change can replace it alone.
--
-- SQLite: forecast_accuracy.sqlite.sql, the same view with window_start computed on text.
--
-- Columns:
--   series_id      the series
--   model_name     registered model that made the forecasts
--   model_version  its registry version
--   step           1..horizon
--   window_days    7, 30 or 90
--   window_start   window_end minus window_days days (excluded from the window)
--   window_end     the newest observation of the series (included)
--   n              forecasts with an actual in the window
--   mae            mean absolute error
--   rmse           root mean squared error
--   bias           mean error (actual - yhat); positive: forecasts too low
--   mape           mean absolute percentage error (%), actuals of 0 left out
--   coverage       share of actuals inside the interval (compare with the nominal 0.9);
--                  NULL when no forecast in the group has an interval
CREATE VIEW forecast_accuracy AS
WITH windows AS (
    SELECT 7 AS window_days UNION ALL SELECT 30 AS window_days UNION ALL SELECT 90 AS window_days
),
ends AS (
    SELECT series_id, MAX(ts) AS window_end FROM observations GROUP BY series_id
),
bounds AS (
    SELECT e.series_id, w.window_days,
           e.window_end - w.window_days * INTERVAL '1 day' AS window_start,
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
