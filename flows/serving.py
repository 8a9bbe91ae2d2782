"""``seqcast serve``: every deployment of prefect.yaml, on its schedules, in one process."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect import serve

from flows.errors import SeqcastError


def load_flow(entrypoint: str) -> Any:
    """Import ``flows/series/pipeline.py:pipeline`` style entrypoints."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def deployments_from_yaml(prefect_yaml: Path) -> list[Any]:
    """Build runner deployments (name, schedules, parameters, tags) from prefect.yaml."""
    if not prefect_yaml.is_file():
        raise SeqcastError(
            f"{prefect_yaml}: not found; run from the project root or pass --prefect-yaml"
        )
    spec = yaml.safe_load(prefect_yaml.read_text()) or {}
    deployments = []
    for dep in spec.get("deployments", []):
        schedules = [s for s in dep.get("schedules", []) if s.get("active", True)]
        flow_obj = load_flow(dep["entrypoint"])
        deployments.append(
            flow_obj.to_deployment(
                name=dep["name"],
                cron=[s["cron"] for s in schedules if "cron" in s] or None,
                parameters=dep.get("parameters") or {},
                tags=dep.get("tags") or [],
                description=dep.get("description"),
                concurrency_limit=dep.get("concurrency_limit"),
            )
        )
    if not deployments:
        raise SeqcastError(f"{prefect_yaml}: declares no deployments")
    return deployments


def serve_deployments(prefect_yaml: Path) -> None:
    """Serve the deployments until interrupted."""
    serve(*deployments_from_yaml(prefect_yaml))
