-- Runs once, when the postgres volume is empty (the official image's
-- /docker-entrypoint-initdb.d hook), as POSTGRES_USER connected to POSTGRES_DB (seqcast).
-- One server, three databases, so the application tables, MLflow's tracking store and
-- Prefect's orchestration state can be backed up, dropped or moved out independently.
-- Database names are fixed here because compose.yaml's connection URLs name them.

CREATE DATABASE mlflow;
CREATE DATABASE prefect;

-- Prefect's PostgreSQL backend needs pg_trgm (contrib, shipped in the image); create it up
-- front rather than relying on the migration role being allowed to.
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
