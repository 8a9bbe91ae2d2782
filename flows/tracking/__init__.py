"""MLflow: runs and metrics, the model registry, promotion and rollback, comparison, plots.

Free of Prefect: flows call these functions from their tasks.
"""
