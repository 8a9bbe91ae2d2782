"""Prefect flows, MLflow tracking, settings and the ``seqcast`` CLI: the only layer that wires
db/, forecasting/ and nlp/ together."""
