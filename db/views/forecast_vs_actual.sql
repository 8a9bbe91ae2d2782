-- forecast_vs_actual: forecasts whose target has an actual.
--
-- Every forecast row (all vintages) whose (series_id, ts) has an observation. Rows appear as
-- soon as the actual is ingested; forecasts for the future are not in it yet.
--
-- Columns:
--   run_id         the forecast run (forecast_runs.run_id)
--   model_name     registered model that made the forecast
--   model_version  its registry version
--   mlflow_run_id  the MLflow run that trained that model version
--   issued_at      newest observation the run used
--   series_id      the series
--   ts             target time (UTC)
--   step           1..horizon: how many grid steps after issued_at ts lies
--   yhat           point forecast
--   yhat_lower     lower end of the prediction interval; NULL without one
--   yhat_upper     upper end of the prediction interval; NULL without one
--   actual         the observation at ts (observations.value)
--   error          actual - yhat (positive: the forecast was too low)
--   abs_error      ABS(error)
--   squared_error  error * error
--   ape            absolute percentage error, 100 * abs_error / ABS(actual); NULL when actual = 0
--   in_interval    1 when yhat_lower <= actual <= yhat_upper, 0 outside, NULL without interval
--   created_at     when the run was written
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
JOIN observations o ON o.series_id = f.series_id AND o.ts = f.ts;
