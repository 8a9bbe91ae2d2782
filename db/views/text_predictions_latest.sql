-- text_predictions_latest: the newest prediction per document and model.
--
-- One row per (doc_id, model_name): the newest text_predictions row by created_at (then
-- prediction_id), joined with its document.
--
-- Columns:
--   doc_id          the document's id (from the file, or a hash of its text)
--   model_name      registered model that made the prediction, e.g. seqcast-sentiment
--   model_version   its registry version
--   mlflow_run_id   the MLflow run that trained that model version
--   label           predicted class (classifiers); NULL for taggers
--   score           probability of label
--   positive_score  probability of the positive class (binary sentiment models only)
--   tags            taggers: [[token, tag], ...] (JSON)
--   created_at      when the prediction was written (UTC)
--   source          the document's source (documents.source)
--   published_at    when the document was published (UTC); may be NULL
--   series_id       the forecast series the document is about; may be NULL
--   text            the document's text
CREATE VIEW text_predictions_latest AS
SELECT p.doc_id, p.model_name, p.model_version, p.mlflow_run_id, p.label, p.score,
       p.positive_score, p.tags, p.created_at,
       d.source, d.published_at, d.series_id, d.text
FROM (
    SELECT tp.*,
           ROW_NUMBER() OVER (
               PARTITION BY tp.doc_id, tp.model_name
               ORDER BY tp.created_at DESC, tp.prediction_id DESC
           ) AS rn
    FROM text_predictions tp
) p
JOIN documents d ON d.doc_id = p.doc_id
WHERE p.rn = 1;
