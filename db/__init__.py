"""Persistence for seqcast: engine, schema, migrations and read/write functions.

This package knows nothing of torch, Prefect or MLflow.
"""

from db.engine import DatabaseError, DatabaseUnreachable, database_url, make_engine

__all__ = ["DatabaseError", "DatabaseUnreachable", "database_url", "make_engine"]
