"""One file per trained text model: weights, configs and vocabularies, ``weights_only``-safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class ArtifactError(ValueError):
    """A text model artifact is missing, of another format, or does not match its config."""


def save_artifact(path: str | Path, fmt: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts only) tagged with ``fmt``."""
    path = Path(path)
    torch.save({"format": fmt, **payload}, path)
    return path


def load_artifact(path: str | Path, fmt: str) -> dict[str, Any]:
    """Read :func:`save_artifact`'s file without executing pickled code."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtifactError(f"{path}: not a loadable seqcast text model ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ArtifactError(f"{path}: expected format {fmt!r}, found {found!r}")
    return payload


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{path}: weights do not match the config ({exc})") from exc
    model.eval()
