"""A short, model-agnostic training loop: AdamW, clipping by global norm, early stopping.

Progress and tracking reach the loop only through callbacks.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from forecasting.device import autocast_context, pick_device
from forecasting.windows import WindowSpec, gather

LOSSES: dict[str, type[nn.Module]] = {"mae": nn.L1Loss, "mse": nn.MSELoss, "huber": nn.HuberLoss}


class TrainingDiverged(RuntimeError):
    """Loss or gradient norm became non-finite; the model must not be used."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``windows_per_epoch`` caps an epoch (None: every window)."""

    max_epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    patience: int = 3
    windows_per_epoch: int | None = 8192
    max_val_windows: int = 4096
    loss: Literal["mae", "mse", "huber"] = "mae"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        for name in ("max_epochs", "batch_size", "patience", "max_val_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.learning_rate <= 0 or self.clip_norm <= 0:
            raise ValueError("learning_rate and clip_norm must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Callback(Protocol):
    """Receives per-epoch metrics (train_loss, val_loss, grad_norm_mean/max, lr)."""

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    """What training did: per-epoch history, per-step pre-clip gradient norms, best epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped_early: bool = False
    device: str = "cpu"
    seconds: float = 0.0
    windows_seen: int = 0


@dataclass
class WindowData:
    """Scaled series resident on one device, and the window starts of each split."""

    values: torch.Tensor  # [N] float32
    train_starts: torch.Tensor  # [K_train] int64
    val_starts: torch.Tensor  # [K_val] int64
    spec: WindowSpec

    def to(self, device: torch.device) -> WindowData:
        return WindowData(
            self.values.to(device),
            self.train_starts.to(device),
            self.val_starts.to(device),
            self.spec,
        )


def _val_subset(starts: torch.Tensor, cap: int) -> torch.Tensor:
    if len(starts) <= cap:
        return starts
    # Evenly spaced, so the validation set is the same every epoch and covers all series.
    idx = torch.linspace(0, len(starts) - 1, cap, device=starts.device).long()
    return starts[idx]


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, data: WindowData, starts: torch.Tensor, loss_fn: nn.Module, batch_size: int
) -> float:
    """Mean loss over the windows at ``starts`` (eval mode)."""
    model.eval()
    device = data.values.device
    total, count = 0.0, 0
    with autocast_context(device):
        for i in range(0, len(starts), batch_size):
            x, y = gather(data.values, starts[i : i + batch_size], data.spec)
            loss = loss_fn(model(x).float(), y)
            total += float(loss) * len(x)
            count += len(x)
    return total / max(count, 1)


def fit(
    model: nn.Module,
    data: WindowData,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``model`` in place and restore its best-validation weights.

    Raises:
        TrainingDiverged: the loss or the gradient norm became non-finite.
        ValueError: there are no training or validation windows.
    """
    if len(data.train_starts) == 0 or len(data.val_starts) == 0:
        raise ValueError(
            f"need training and validation windows, got {len(data.train_starts)} and "
            f"{len(data.val_starts)}; the series are too short or too gappy for this window"
        )
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    model.to(device)
    data = data.to(device)
    loss_fn = LOSSES[config.loss]()
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    val_starts = _val_subset(data.val_starts, config.max_val_windows)
    result = TrainResult(device=str(device))
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    t0 = time.perf_counter()
    n_train = len(data.train_starts)
    per_epoch = min(n_train, config.windows_per_epoch or n_train)

    for epoch in range(1, config.max_epochs + 1):
        model.train()
        gen = torch.Generator(device="cpu").manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(n_train, generator=gen)[:per_epoch].to(device)
        step_losses: list[torch.Tensor] = []
        step_norms: list[torch.Tensor] = []
        for i in range(0, per_epoch, config.batch_size):
            x, y = gather(
                data.values, data.train_starts[order[i : i + config.batch_size]], data.spec
            )
            with autocast_context(device):
                pred = model(x)  # [B, W] -> [B, H]
            loss = loss_fn(pred.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # The returned norm is the one *before* clipping: exploding gradients stay visible.
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            step_losses.append(loss.detach())
            step_norms.append(norm.detach())
        # One host sync per epoch rather than per step.
        losses = torch.stack(step_losses).float().cpu().numpy()
        norms = torch.stack(step_norms).float().cpu().numpy()
        if not (np.isfinite(losses).all() and np.isfinite(norms).all()):
            raise TrainingDiverged(
                f"epoch {epoch}: non-finite loss or gradient norm "
                f"(last loss {losses[-1]}, last grad norm {norms[-1]}); lower learning_rate "
                "or clip_norm"
            )
        result.grad_norms.extend(norms.tolist())
        result.windows_seen += per_epoch
        val_loss = evaluate_loss(model, data, val_starts, loss_fn, config.batch_size * 4)
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"epoch {epoch}: validation loss is {val_loss}")
        metrics = {
            "train_loss": float(losses.mean()),
            "val_loss": val_loss,
            "grad_norm_mean": float(norms.mean()),
            "grad_norm_max": float(norms.max()),
            "lr": float(optimizer.param_groups[0]["lr"]),
        }
        result.history.append({"epoch": float(epoch), **metrics})
        for callback in callbacks:
            callback(epoch, metrics)
        scheduler.step(val_loss)
        if val_loss < result.best_val_loss:
            result.best_val_loss = val_loss
            result.best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                result.stopped_early = True
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def predict(model: nn.Module, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Run ``model`` on scaled inputs [B, W] and return scaled forecasts [B, H] as float64."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    with autocast_context(device):
        for i in range(0, len(inputs), batch_size):
            x = torch.as_tensor(inputs[i : i + batch_size], dtype=torch.float32, device=device)
            outputs.append(model(x).float().cpu().numpy())
    if not outputs:  # no windows: an empty [0, H], with H from one probe forward pass
        with torch.no_grad():
            probe = model(torch.zeros(1, inputs.shape[1], device=device))
        return np.zeros((0, probe.shape[1]))
    return np.concatenate(outputs).astype(np.float64)
