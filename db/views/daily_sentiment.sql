-- daily_sentiment: sentiment per series and UTC day.
--
-- From the latest predictions (text_predictions_latest) of documents that are linked to a
-- series, have a publication time and a positive-class score. The forecasters can take it as
-- an exogenous input.
--
-- SQLite: daily_sentiment.sqlite.sql, the same view with day computed on text.
--
-- Columns:
--   series_id            the series the documents are about
--   day                  the UTC day of publication (a date; YYYY-MM-DD text on SQLite)
--   model_name           registered model that scored the documents
--   n_documents          documents of that series published that day
--   mean_positive_score  mean probability of the positive class over them
CREATE VIEW daily_sentiment AS
SELECT series_id, CAST((published_at AT TIME ZONE 'UTC') AS date) AS day, model_name,
       COUNT(*) AS n_documents,
       AVG(positive_score) AS mean_positive_score
FROM text_predictions_latest
WHERE series_id IS NOT NULL AND published_at IS NOT NULL AND positive_score IS NOT NULL
GROUP BY series_id, CAST((published_at AT TIME ZONE 'UTC') AS date), model_name;
