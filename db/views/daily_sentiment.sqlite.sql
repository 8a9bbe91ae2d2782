-- daily_sentiment on SQLite: the view of daily_sentiment.sql (its columns are described
-- there). published_at is UTC text 'YYYY-MM-DD HH:MM:SS.ffffff', so its first ten
-- characters are the UTC day.
CREATE VIEW daily_sentiment AS
SELECT series_id, substr(published_at, 1, 10) AS day, model_name,
       COUNT(*) AS n_documents,
       AVG(positive_score) AS mean_positive_score
FROM text_predictions_latest
WHERE series_id IS NOT NULL AND published_at IS NOT NULL AND positive_score IS NOT NULL
GROUP BY series_id, substr(published_at, 1, 10), model_name;
