"""A stand-in for the MLflow client's registry writes, for promotion tests without a store."""

from __future__ import annotations


class RecordingClient:
    """The ``MlflowClient`` calls that recording a promotion makes, kept in dicts."""

    def __init__(self) -> None:
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.aliases: dict[tuple[str, str], str] = {}

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags.setdefault((name, str(version)), {})[key] = str(value)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[(name, alias)] = str(version)
