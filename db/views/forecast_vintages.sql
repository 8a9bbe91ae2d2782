-- forecast_vintages: every forecast as issued.
--
-- Every row of every forecast run, with the run's columns. vintage numbers the runs that
-- forecast the same (series_id, ts), newest issue first: vintage 1 is the row
-- latest_forecasts shows, 2 the one issued before it, and so on. Ties on issued_at are broken
-- by created_at, then run_id, exactly as in latest_forecasts.
--
-- Columns:
--   run_id         the forecast run (forecast_runs.run_id)
--   model_name     registered model that made the forecast
--   model_version  its registry version
--   mlflow_run_id  the MLflow run that trained that model version
--   issued_at      newest observation the run used (the "as of" time of this vintage)
--   created_at     when the run was written
--   series_id      the series
--   ts             target time (UTC)
--   step           1..horizon: how many grid steps after issued_at ts lies
--   yhat           point forecast
--   yhat_lower     lower end of the prediction interval; NULL without one
--   yhat_upper     upper end of the prediction interval; NULL without one
--   vintage        1 = newest issue for this (series_id, ts)
CREATE VIEW forecast_vintages AS
SELECT f.run_id, r.model_name, r.model_version, r.mlflow_run_id, r.issued_at, r.created_at,
       f.series_id, f.ts, f.step, f.yhat, f.yhat_lower, f.yhat_upper,
       ROW_NUMBER() OVER (
           PARTITION BY f.series_id, f.ts
           ORDER BY r.issued_at DESC, r.created_at DESC, r.run_id DESC
       ) AS vintage
FROM forecasts f
JOIN forecast_runs r ON r.run_id = f.run_id;
