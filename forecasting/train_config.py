"""The optimisation settings of :func:`forecasting.training.fit`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from forecasting.device import PRECISIONS

LOSS_NAMES = ("mae", "mse", "huber")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        windows_per_epoch: cap on the windows drawn per epoch (None: every window).
        loss: point loss (``mae``, ``mse``, ``huber``); models with quantile outputs are
            always trained with the pinball loss.
        loss_scale: ``window`` divides each window's loss by the standard deviation of its
            input, so every window counts alike whatever its level (scale-free, like MASE).
        lr_schedule: ``plateau`` halves the rate when validation stalls; ``onecycle`` warms
            up to ``learning_rate`` and anneals over ``max_epochs`` (Smith 2018).
        precision: of the training forward pass: ``auto`` (bf16 on a CUDA device with native
            bf16, else fp32), ``fp32``, ``bf16`` (autocast), ``fp16`` (autocast with a
            gradient scaler). Validation and prediction always run in fp32.
        restore: the weights ``fit`` ends with: ``best``, those of the epoch with the lowest
            validation loss; ``last``, those of the last epoch trained (a one-cycle schedule
            anneals to them; a short validation part picks an epoch by noise);
            ``significant``, the best epoch's only when its validation windows beat the last
            epoch's by more than two standard errors of the paired difference, else the last.
        time_budget_s: wall-clock seconds :func:`~forecasting.training.fit` may take (None:
            no limit): it ends the epoch under way early when the next step and a validation
            would pass it, validates, and stops (``TrainResult.stopped_by_budget``).
    """

    max_epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    patience: int = 3
    windows_per_epoch: int | None = 8192
    max_val_windows: int = 4096
    loss: Literal["mae", "mse", "huber"] = "mae"
    loss_scale: Literal["none", "window"] = "none"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr_schedule: Literal["plateau", "onecycle"] = "plateau"
    seed: int = 0
    device: str | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    time_budget_s: float | None = None
    restore: Literal["best", "last", "significant"] = "best"

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {list(LOSS_NAMES)}, got {self.loss!r}")
        for name in ("max_epochs", "batch_size", "patience", "max_val_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.windows_per_epoch is not None and self.windows_per_epoch < 1:
            raise ValueError(f"windows_per_epoch must be >= 1, got {self.windows_per_epoch}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.lr_schedule not in ("plateau", "onecycle"):
            raise ValueError(f"lr_schedule must be plateau or onecycle, got {self.lr_schedule!r}")
        if self.loss_scale not in ("none", "window"):
            raise ValueError(f"loss_scale must be none or window, got {self.loss_scale!r}")
        if self.restore not in ("best", "last", "significant"):
            raise ValueError(f"restore must be best, last or significant, got {self.restore!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.learning_rate <= 0 or self.clip_norm <= 0:
            raise ValueError("learning_rate and clip_norm must be > 0")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be > 0 (or None), got {self.time_budget_s}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
