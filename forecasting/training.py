"""A short, model-agnostic training loop: AdamW, clipping by global norm, early stopping.

Progress and tracking reach the loop only through callbacks. Under ``torchrun`` (an
initialised process group) the model is wrapped in DistributedDataParallel and every rank
takes its share of each batch, so the optimisation is the same as on one device.

Precision is decided once at the top of :func:`fit`: the forward pass of a training step runs
under bf16 or fp16 autocast when asked (``TrainConfig.precision``), fp16 with a gradient
scaler; everything evaluated — validation losses for early stopping, :func:`predict`, and so
backtests and the forecasts written to tables — runs in fp32.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from forecasting.device import AUTOCAST_DTYPES, pick_device, training_precision
from forecasting.losses import clearly_better, forecast_loss, step_losses
from forecasting.train_config import TrainConfig
from forecasting.windows import Batch, WindowIndex, WindowSpec, epoch_windows, gather_batch

# fp16 loss scaling: the scaler's first scale, and how many steps in a row it may skip for
# inf/nan gradients before training counts as diverged. Each skip halves the scale, so after
# 24 of them it is below 2**-8: an overflow there is not an artefact of the scaling.
INIT_GRAD_SCALE = 2.0**16
MAX_SKIPPED_RUN = 24


class TrainingDiverged(RuntimeError):
    """Loss or gradient norm became non-finite; the model must not be used."""


class Callback(Protocol):
    """Receives per-epoch metrics (train_loss, val_loss, grad_norm_mean/max, lr,
    skipped_steps, grad_scale)."""

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    """What training did: per-epoch history, per-step pre-clip gradient norms, best epoch.

    ``precision`` is what the training forward pass ran in (``auto`` resolved on the device).
    A step the gradient scaler skipped (fp16 gradients overflowed) has a NaN grad norm.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    kept_epoch: int = 0  # whose weights the model ends with (TrainConfig.restore)
    stopped_early: bool = False
    stopped_by_budget: bool = False
    device: str = "cpu"
    precision: str = "fp32"
    seconds: float = 0.0
    windows_seen: int = 0
    world_size: int = 1


@dataclass
class WindowData:
    """Scaled series resident on one device, the windows of each split (runs of start
    positions, see :class:`~forecasting.windows.WindowIndex`), and the known covariates
    [N, C] and series index [N] of every point when the model uses them."""

    values: torch.Tensor  # [N] float32
    train_starts: WindowIndex  # K_train windows
    val_starts: WindowIndex  # K_val windows
    spec: WindowSpec
    covariates: torch.Tensor | None = None  # [N, C] float32
    point_series: torch.Tensor | None = None  # [N] int64

    def to(self, device: torch.device) -> WindowData:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return WindowData(
            self.values.to(device),
            self.train_starts.to(device),
            self.val_starts.to(device),
            self.spec,
            move(self.covariates),
            move(self.point_series),
        )

    def batch(self, starts: torch.Tensor) -> Batch:
        return gather_batch(self.values, starts, self.spec, self.covariates, self.point_series)


class Budget:
    """A training time budget: spent once the time left (to 97 % of the budget) is less than
    one more step and a validation take, each the slowest seen lately (a shared machine's
    times vary). Until a
    validation is measured it is estimated from the step time: a forward pass (about a third
    of a training step) over ``val_batches`` batches."""

    def __init__(self, start: float, seconds: float | None, val_batches: float) -> None:
        # Aim 3 % short of the budget: room for a step that runs slow on a busy machine.
        self.deadline = None if seconds is None else start + 0.97 * seconds
        self.last = start
        self.steps: deque[float] = deque(maxlen=8)
        self.validation: float | None = None
        self.val_batches = val_batches

    def spent(self) -> bool:
        now = time.perf_counter()
        self.steps.append(now - self.last)
        self.last = now
        step = max(self.steps)
        validation = self.validation
        if validation is None:
            validation = step * self.val_batches / 3
        return self.deadline is not None and now + step + validation >= self.deadline

    @contextmanager
    def validating(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.last = time.perf_counter()
        self.validation = max(self.validation or 0.0, self.last - start)


def _val_subset(windows: WindowIndex, cap: int) -> torch.Tensor:
    """Start positions of at most ``cap`` validation windows, evenly spaced, so the
    validation set is the same every epoch and covers all series."""
    if len(windows) <= cap:
        return windows[:]
    idx = torch.linspace(0, len(windows) - 1, cap, device=windows.device).long()
    return windows[idx]


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    data: WindowData,
    starts: torch.Tensor,
    config: TrainConfig,
    quantiles: Sequence[float] = (),
) -> tuple[float, torch.Tensor]:
    """Mean training loss over the windows at ``starts``, and each window's (eval mode, fp32:
    early stopping and the kept checkpoint are chosen on what the model will predict with)."""
    model.eval()
    total, count, windows = 0.0, 0, []
    size = config.batch_size * 4
    for i in range(0, len(starts), size):
        b = data.batch(starts[i : i + size])
        pred = model(b.x, b.cov, b.series).float()
        per = step_losses(pred, b.y, b.x, config.loss, config.loss_scale, quantiles)
        total += float(per.mean()) * len(b.x)
        count += len(b.x)
        windows.append(per.mean(1).double().cpu())
    return total / max(count, 1), torch.cat(windows) if windows else torch.zeros(0)


def train_step(
    model: nn.Module,
    b: Batch,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ctx: AbstractContextManager[object],
    config: TrainConfig,
    quantiles: Sequence[float] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on batch ``b``; returns the loss and the pre-clip gradient norm.

    With an enabled ``scaler`` (fp16) the loss is scaled before the backward pass and the
    gradients unscaled before clipping, so the norm and the clipping are in true units; the
    scaler skips the update when a gradient is inf/nan (the returned norm is then inf/nan)
    and lowers its scale. A disabled scaler makes this a plain step.
    """
    with ctx:
        pred = model(b.x, b.cov, b.series, b.y)  # [B, H, Q]
    loss = forecast_loss(pred.float(), b.y, b.x, config.loss, config.loss_scale, quantiles)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    # The returned norm is the one *before* clipping: exploding gradients stay visible.
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), norm.detach()


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def fit(
    model: nn.Module,
    data: WindowData,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    quantiles: Sequence[float] = (),
) -> TrainResult:
    """Train ``model`` in place; end with its best-validation weights (``config.restore``).

    Args:
        quantiles: the model's output quantile levels (pinball loss); empty for point models.

    Raises:
        TrainingDiverged: the loss or the gradient norm became non-finite.
        ValueError: there are no training or validation windows, or this CPU has no kernel
            for the model's cells in the chosen precision.
    """
    if len(data.train_starts) == 0 or len(data.val_starts) == 0:
        raise ValueError(
            f"need training and validation windows, got {len(data.train_starts)} and "
            f"{len(data.val_starts)}; the series are too short or too gappy for this window"
        )
    torch.manual_seed(config.seed)
    rank, world = _distributed()
    device = pick_device(config.device)
    precision = training_precision(config.precision, device, model)
    ctx: AbstractContextManager[object] = (
        nullcontext()
        if precision == "fp32"
        else torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
    )
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler(
        device.type, init_scale=INIT_GRAD_SCALE, enabled=precision == "fp16"
    )
    model.to(device)
    data = data.to(device)
    train_model: nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer: torch.optim.Optimizer
    # Fused kernels on CUDA: one launch per step, and the scaler's inf check stays on the
    # device instead of a host sync every step.
    fused = device.type == "cuda"
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, fused=fused)
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            fused=fused,
        )
    n_train = len(data.train_starts)
    per_epoch = min(n_train, config.windows_per_epoch or n_train)
    steps_per_epoch = math.ceil(per_epoch / config.batch_size)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    onecycle = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer, config.learning_rate, total_steps=config.max_epochs * steps_per_epoch
        )
        if config.lr_schedule == "onecycle"
        else None
    )
    val_starts = _val_subset(data.val_starts, config.max_val_windows)
    result = TrainResult(device=str(device), precision=precision, world_size=world)
    best_state: dict[str, torch.Tensor] | None = None
    best_windows = windows = torch.zeros(0)  # per-window validation losses
    bad_epochs = skipped_run = 0
    t0 = time.perf_counter()
    budget = Budget(t0, config.time_budget_s, len(val_starts) / config.batch_size)

    for epoch in range(1, config.max_epochs + 1):
        train_model.train()
        gen = torch.Generator(device="cpu").manual_seed(config.seed * 100_003 + epoch)
        order = epoch_windows(n_train, per_epoch, gen).to(device)
        step_losses: list[torch.Tensor] = []
        step_norms: list[torch.Tensor] = []
        for i in range(0, per_epoch, config.batch_size):
            if i > 0 and budget.spent():
                break  # out of time: validate what this epoch trained, then stop
            # Every rank draws the same order and takes every world-th window of the batch.
            b = data.batch(data.train_starts[order[i : i + config.batch_size]][rank::world])
            loss, norm = train_step(train_model, b, optimizer, scaler, ctx, config, quantiles)
            if onecycle is not None:
                onecycle.step()
            step_losses.append(loss)
            step_norms.append(norm)
        # One host sync per epoch rather than per step.
        losses = torch.stack(step_losses).float().cpu().numpy()
        norms = torch.stack(step_norms).float().cpu().numpy()
        # Under the scaler an inf/nan gradient with a finite loss is a skipped step, expected
        # while the scale settles; only a long run of them is divergence.
        skipped = ~np.isfinite(norms) if scaler.is_enabled() else np.zeros(len(norms), bool)
        if not np.isfinite(losses).all() or not np.isfinite(norms[~skipped]).all():
            raise TrainingDiverged(
                f"epoch {epoch}: non-finite loss or gradient norm "
                f"(last loss {losses[-1]}, last grad norm {norms[-1]}); lower learning_rate "
                "or clip_norm"
            )
        for flag in skipped:  # the run carries over from the epoch before
            skipped_run = skipped_run + 1 if flag else 0
            if skipped_run >= MAX_SKIPPED_RUN:
                raise TrainingDiverged(
                    f"epoch {epoch}: {skipped_run} steps in a row had inf/nan fp16 gradients "
                    "whatever the loss scale; train in bf16 or fp32, or lower learning_rate"
                )
        norms[skipped] = np.nan
        applied = norms[~skipped]
        result.grad_norms.extend(norms.tolist())
        result.windows_seen += min(per_epoch, len(losses) * config.batch_size)
        with budget.validating():
            val_loss, windows = evaluate_loss(model, data, val_starts, config, quantiles)
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"epoch {epoch}: validation loss is {val_loss}")
        metrics = {
            "train_loss": float(losses.mean()),
            "val_loss": val_loss,
            "grad_norm_mean": float(applied.mean()) if applied.size else math.nan,
            "grad_norm_max": float(applied.max()) if applied.size else math.nan,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "skipped_steps": float(skipped.sum()),
            "grad_scale": float(scaler.get_scale()),
        }
        result.history.append({"epoch": float(epoch), **metrics})
        if rank == 0:
            for callback in callbacks:
                callback(epoch, metrics)
        if onecycle is None:
            plateau.step(val_loss)
        if val_loss < result.best_val_loss:
            result.best_val_loss = val_loss
            result.best_epoch = epoch
            if config.restore != "last":
                best_state, best_windows = copy.deepcopy(model.state_dict()), windows
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                result.stopped_early = True
                break
        if budget.spent():
            result.stopped_by_budget = True
            break

    keep_last = config.restore == "last" or (
        config.restore == "significant" and not clearly_better(best_windows, windows)
    )
    result.kept_epoch = len(result.history) if keep_last else result.best_epoch
    if best_state is not None and not keep_last:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: np.ndarray,
    covariates: np.ndarray | None = None,
    series: np.ndarray | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Scaled inputs [B, W] (+ covariates [B, W + H, C], series [B]) -> [B, H, Q] float64.

    Computed in fp32 whatever precision the model was trained in (the output is cast to
    float64 only after): the forecasts written to the tables carry no bf16/fp16 rounding.
    """
    model.eval()
    device = next(model.parameters()).device

    def part(a: np.ndarray | None, i: int, dtype: torch.dtype) -> torch.Tensor | None:
        if a is None:
            return None
        return torch.as_tensor(a[i : i + batch_size], dtype=dtype, device=device)

    outputs = []
    # An autocast region the caller opened must not reach the model either.
    with torch.autocast(device.type, enabled=False):
        for i in range(0, len(inputs), batch_size):
            x = part(inputs, i, torch.float32)
            assert x is not None
            out = model(x, part(covariates, i, torch.float32), part(series, i, torch.int64))
            outputs.append(out.cpu().numpy())  # float32
    if not outputs:
        config: Any = model.config  # every forecaster carries its config
        return np.zeros((0, config.horizon, config.n_outputs))
    return np.concatenate(outputs).astype(np.float64)
