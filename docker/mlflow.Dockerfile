# syntax=docker/dockerfile:1
#
# The official MLflow image with a PostgreSQL driver added. ghcr.io/mlflow/mlflow ships
# no PostgreSQL driver, and `postgresql://` backend-store URIs resolve to SQLAlchemy's
# psycopg2 dialect. Installing it at build time (instead of `pip install` in the
# container's command) keeps server start-up offline and repeatable.

# Keep in step with mlflow== in constraints.txt: the client and server should match.
ARG MLFLOW_VERSION=3.17.2
FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}

ARG PSYCOPG2_VERSION=2.9.13
RUN pip install --no-cache-dir "psycopg2-binary==${PSYCOPG2_VERSION}"
