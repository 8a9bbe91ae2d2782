-- latest_forecasts: the current forecast.
--
-- One row per (series_id, ts): the row of the most recently issued forecast run that covers
-- that target time. Ties on issued_at are broken by created_at, then run_id (as in
-- forecast_vintages, where this row has vintage = 1).
--
-- Columns:
--   series_id      the series (series.series_id)
--   ts             target time (UTC): the time the forecast is about
--   step           1..horizon: how many grid steps after issued_at ts lies
--   yhat           point forecast
--   yhat_lower     lower end of the prediction interval (default 90 %); NULL without one
--   yhat_upper     upper end of the prediction interval; NULL without one
--   run_id         the forecast run (forecast_runs.run_id)
--   model_name     registered model that made the forecast, e.g. seqcast-prices
--   model_version  its registry version
--   mlflow_run_id  the MLflow run that trained that model version
--   issued_at      newest observation the run used (the "as of" time of the forecast)
--   created_at     when the run was written
CREATE VIEW latest_forecasts AS
SELECT series_id, ts, step, yhat, yhat_lower, yhat_upper,
       run_id, model_name, model_version, mlflow_run_id, issued_at, created_at
FROM (
    SELECT f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
           r.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at, r.created_at,
           ROW_NUMBER() OVER (
               PARTITION BY f.series_id, f.ts
               ORDER BY r.issued_at DESC, r.created_at DESC, r.run_id DESC
           ) AS rn
    FROM forecasts f
    JOIN forecast_runs r ON r.run_id = f.run_id
) ranked
WHERE rn = 1;
