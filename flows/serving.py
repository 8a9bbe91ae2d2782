"""``seqcast serve``: every deployment of prefect.yaml, on its schedules, in one process.

The deployments pass the project file's path (``config``), never copies of its contents, so a
change to the file applies at the next run. A group with its own schedule in the project file
gets its own deployment (``train-forecasters-<group>``, ``forecast-<group>``) and the shared
deployment leaves it out (``shared_schedule_only``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.schedules import Cron

from flows.errors import SeqcastError


def load_flow(entrypoint: str) -> Any:
    """Import ``flows/series/pipeline.py:pipeline`` style entrypoints."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


# Deployment name -> the schedule key of a group that replaces it for that group.
GROUP_SCHEDULED = {"train-forecasters": "retrain", "forecast": "forecast"}


def group_deployments(dep: dict[str, Any], project: Any) -> list[dict[str, Any]]:
    """``dep`` as prefect.yaml declares it, plus one deployment per group with its own cron."""
    key = GROUP_SCHEDULED.get(dep["name"])
    own = [g for g in project.groups if key and getattr(g.schedule, key)] if project else []
    if not own:
        return [dep]
    shared = _with_params(dep, {"shared_schedule_only": True})
    extra = []
    for g in own:
        mine = {
            **dep,
            "name": f"{dep['name']}-{g.name}",
            "description": f"{dep.get('description', '')} Group {g.name} on its own schedule.",
            # Its own cron instead of the shared ones; a schedule with its own parameters
            # (the drift check) is kept, for this group alone.
            "schedules": [
                {"cron": getattr(g.schedule, key or ""), "timezone": "UTC"},
                *(s for s in dep.get("schedules", []) if s.get("parameters")),
            ],
        }
        extra.append(_with_params(mine, {"only": [g.name], "shared_schedule_only": False}))
    return [shared, *extra]


def _with_params(dep: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``dep`` with ``update`` merged into its ``params`` and each schedule's ``params``."""

    def merged(parameters: dict[str, Any] | None) -> dict[str, Any]:
        return {"params": {**((parameters or {}).get("params") or {}), **update}}

    schedules = [
        {**s, "parameters": merged(s["parameters"])} if s.get("parameters") else s
        for s in dep.get("schedules", [])
    ]
    return {**dep, "parameters": merged(dep.get("parameters")), "schedules": schedules}


def deployments_from_yaml(prefect_yaml: Path, project_file: Path | None = None) -> list[Any]:
    """Build runner deployments (name, schedules, parameters, tags) from prefect.yaml, with one
    more per group that has its own schedule in ``project_file``."""
    if not prefect_yaml.is_file():
        raise SeqcastError(
            f"{prefect_yaml}: not found; run from the project root or pass --prefect-yaml"
        )
    spec = yaml.safe_load(prefect_yaml.read_text()) or {}
    project = None
    if project_file is not None:
        from flows.project import load_project

        project = load_project(project_file)
    declared = [d for dep in spec.get("deployments", []) for d in group_deployments(dep, project)]
    deployments = []
    for dep in declared:
        schedules = [
            Cron(s["cron"], timezone=s.get("timezone"), parameters=s.get("parameters") or {})
            for s in dep.get("schedules", [])
            if s.get("active", True) and "cron" in s
        ]
        flow_obj = load_flow(dep["entrypoint"])
        deployments.append(
            flow_obj.to_deployment(
                name=dep["name"],
                schedules=schedules or None,
                parameters=dep.get("parameters") or {},
                tags=dep.get("tags") or [],
                description=dep.get("description"),
                concurrency_limit=dep.get("concurrency_limit"),
            )
        )
    if not deployments:
        raise SeqcastError(f"{prefect_yaml}: declares no deployments")
    return deployments


def serve_deployments(prefect_yaml: Path, project_file: Path | None = None) -> None:
    """Serve the deployments until interrupted."""
    serve(*deployments_from_yaml(prefect_yaml, project_file))
