"""The forecaster's artifact: one ``torch.load(weights_only=True)``-safe file.

It holds the spec (covariates and their missing policies included), the model's config and
weights, the series and covariate scalers, the frequencies and the residual interval quantiles:
everything :class:`~forecasting.forecaster.GlobalForecaster` needs to become the same model
again, and no pickled code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forecasting.covariates import ExogenousScaler
from forecasting.errors import ArtifactError
from forecasting.models import RecurrentForecasterConfig
from forecasting.scaling import SeriesScaler
from forecasting.spec import ForecasterSpec

ARTIFACT_FORMAT = "seqcast-forecaster/2"


@dataclass(frozen=True)
class ForecasterArtifact:
    """What a fitted forecaster is made of, as saved and loaded."""

    spec: ForecasterSpec
    model_config: RecurrentForecasterConfig
    state_dict: dict[str, torch.Tensor]
    scaler: SeriesScaler
    exog_scaler: ExogenousScaler | None
    freqs: dict[str, str]
    residual_quantiles: np.ndarray

    def to_payload(self) -> dict[str, Any]:
        """The artifact as tensors, numbers, strings and containers (``weights_only``-safe)."""
        return {
            "format": ARTIFACT_FORMAT,
            "spec": self.spec.to_dict(),
            "model_config": self.model_config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "scaler": self.scaler.to_dict(),
            "exog_scaler": self.exog_scaler.to_dict() if self.exog_scaler else None,
            "freqs": dict(self.freqs),
            "residual_quantiles": torch.from_numpy(self.residual_quantiles.copy()),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        torch.save(self.to_payload(), path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ForecasterArtifact:
        """Read :meth:`save`'s file without executing any pickled code.

        Raises:
            ArtifactError: not such a file, another format, or inconsistent contents.
        """
        return cls.from_payload(read_payload(path), path)

    @classmethod
    def from_payload(cls, payload: Any, path: str | Path) -> ForecasterArtifact:
        """The artifact of :meth:`to_payload`'s dict (read from ``path``, named in errors)."""
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else None
            raise ArtifactError(
                f"{path}: expected format {ARTIFACT_FORMAT!r}, found {found!r}; "
                "retrain the model with this version of seqcast"
            )
        try:
            exog = payload.get("exog_scaler")
            return cls(
                spec=ForecasterSpec.from_dict(payload["spec"]),
                model_config=RecurrentForecasterConfig.from_dict(payload["model_config"]),
                state_dict=payload["state_dict"],
                scaler=SeriesScaler.from_dict(payload["scaler"]),
                exog_scaler=ExogenousScaler.from_dict(exog) if exog else None,
                freqs=dict(payload["freqs"]),
                residual_quantiles=payload["residual_quantiles"].numpy(),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"{path}: inconsistent model artifact ({exc})") from exc


def read_payload(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` of a seqcast artifact file: no pickled code runs.

    Raises:
        ArtifactError: the file cannot be read that way (truncated, pickled objects, ...).
    """
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtifactError(f"{path}: not a loadable seqcast model artifact ({exc})") from exc
