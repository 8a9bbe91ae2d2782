"""Settings from the environment, read when called (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from db.engine import database_url

DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class Settings:
    """Where seqcast keeps its data and runs."""

    database_url: str
    mlflow_tracking_uri: str
    prefect_api_url: str | None
    experiment: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=database_url(),
            mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_URI,
            prefect_api_url=os.environ.get("PREFECT_API_URL") or None,
            experiment=os.environ.get("SEQCAST_EXPERIMENT") or "seqcast",
        )
