"""Connectors that read files, bundled data sets, MQTT, HTTP and SQL sources into ingest chunks.

Free of Prefect and MLflow: the flows in ``flows.series.ingest`` run them.
"""
