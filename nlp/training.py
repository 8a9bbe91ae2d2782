"""The text models' training loop, with the forecasters' habits: AdamW, clipping by global norm
with the pre-clip norm recorded, early stopping on a validation score with best-checkpoint
restore, seeded, device and autocast chosen once. Progress leaves only through callbacks."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from nlp.device import autocast_context, pick_device

Batch = dict[str, torch.Tensor]


class TrainingDiverged(RuntimeError):
    """Loss or gradient norm became non-finite; the model must not be used."""


@dataclass(frozen=True)
class TextTrainConfig:
    """Optimisation settings. ``max_minutes``: no epoch starts that would likely end past it."""

    max_epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    clip_norm: float = 5.0
    patience: int = 3
    seed: int = 0
    device: str | None = None
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.clip_norm <= 0:
            raise ValueError("learning_rate and clip_norm must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Callback(Protocol):
    """Receives per-epoch metrics (train_loss, val_loss, val_score, grad norms, lr, ...)."""

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None: ...


class TextModel(Protocol):
    """What the loop needs of a model: a batch loss (and being an ``nn.Module``)."""

    def loss(self, batch: Batch) -> torch.Tensor: ...


@dataclass
class TrainResult:
    """Per-epoch history, per-step pre-clip gradient norms, the best epoch and its score."""

    history: list[dict[str, float]] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    stopped_early: bool = False
    device: str = "cpu"
    seconds: float = 0.0
    examples_seen: int = 0
    members: list[TrainResult] = field(default_factory=list)  # a seed ensemble's, in order


def to_device(batch: Batch, device: torch.device) -> Batch:
    # Lengths stay where they are: packing wants them on the CPU.
    return {k: v if k == "lengths" else v.to(device, non_blocking=True) for k, v in batch.items()}


def fit(
    model: nn.Module,
    train_batches: Callable[[int], Iterable[Batch]],
    evaluate: Callable[[nn.Module], dict[str, float]],
    config: TextTrainConfig,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train ``model`` in place; keep the weights of the epoch with the highest ``val_score``.

    Args:
        train_batches: the shuffled batches of one epoch, given the epoch number (1-based).
        evaluate: validation metrics of the model in eval mode; must include ``val_score``
            (higher is better) and should include ``val_loss``.

    Raises:
        TrainingDiverged: the loss or the gradient norm became non-finite.
    """
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=1
    )
    result = TrainResult(device=str(device))
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    t0 = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        step_losses: list[torch.Tensor] = []
        step_norms: list[torch.Tensor] = []
        for batch in train_batches(epoch):
            batch = to_device(batch, device)
            with autocast_context(device):
                loss = model.loss(batch)  # type: ignore[operator]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # The returned norm is the one *before* clipping: exploding gradients stay visible.
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            step_losses.append(loss.detach())
            step_norms.append(norm.detach())
            result.examples_seen += len(batch["lengths"])
        if not step_losses:
            raise ValueError("no training batches: the training set is empty")
        losses = torch.stack(step_losses).float().cpu().numpy()
        norms = torch.stack(step_norms).float().cpu().numpy()
        if not (np.isfinite(losses).all() and np.isfinite(norms).all()):
            raise TrainingDiverged(
                f"epoch {epoch}: non-finite loss or gradient norm (last loss {losses[-1]}, "
                f"last grad norm {norms[-1]}); lower learning_rate or clip_norm"
            )
        result.grad_norms.extend(norms.tolist())
        model.eval()
        with torch.no_grad(), autocast_context(device):
            val = evaluate(model)
        score = val["val_score"]
        if not math.isfinite(score):
            raise TrainingDiverged(f"epoch {epoch}: validation score is {score}")
        metrics = {
            "train_loss": float(losses.mean()),
            **{k: float(v) for k, v in val.items()},
            "grad_norm_mean": float(norms.mean()),
            "grad_norm_max": float(norms.max()),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": time.perf_counter() - t0,
        }
        result.history.append({"epoch": float(epoch), **metrics})
        for callback in callbacks:
            callback(epoch, metrics)
        scheduler.step(score)
        if score > result.best_score:
            result.best_score, result.best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                result.stopped_early = True
                break
        # Stop before an epoch that would likely end past the time budget.
        elapsed = time.perf_counter() - t0
        if (
            config.max_minutes is not None
            and elapsed * (epoch + 1) / epoch > 60 * config.max_minutes
        ):
            result.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t0
    return result


def member_config(config: TextTrainConfig, k: int, members: int) -> TextTrainConfig:
    """Member k of a seed ensemble: seed ``config.seed + k``, 1/members of the time cap."""
    cap = None if config.max_minutes is None else config.max_minutes / members
    return replace(config, seed=config.seed + k, max_minutes=cap)


def fit_members(
    build: Callable[[int], nn.Module],
    train_batches: Callable[[int, int], Iterable[Batch]],
    evaluate: Callable[[nn.Module], dict[str, float]],
    config: TextTrainConfig,
    members: int = 1,
    callbacks: Sequence[Callback] = (),
) -> tuple[list[nn.Module], TrainResult]:
    """Train ``members`` models one after another, each by :func:`fit` with
    :func:`member_config`; one member is exactly :func:`fit`.

    Args:
        build: a fresh model, given its seed.
        train_batches: one epoch's shuffled batches, given (seed, epoch).

    Returns the trained models and one result: the members' epochs numbered on (each history
    row names its ``member``), gradient norms, examples and seconds summed; best epoch and
    score those of member 0 (the caller scores the ensemble).
    """
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    models: list[nn.Module] = []
    results: list[TrainResult] = []
    for k in range(members):
        cfg = member_config(config, k, members)
        done = sum(len(r.history) for r in results)
        shifted = [_shifted(c, done, k) for c in callbacks] if members > 1 else list(callbacks)
        model = build(cfg.seed)
        epochs = functools.partial(train_batches, cfg.seed)
        results.append(fit(model, epochs, evaluate, cfg, shifted))
        models.append(model)
    if members == 1:
        return models, results[0]
    first = results[0]
    joined = TrainResult(
        history=[
            {**row, "epoch": float(n), "member": float(k)}
            for n, (k, row) in enumerate(
                ((k, row) for k, r in enumerate(results) for row in r.history), start=1
            )
        ],
        grad_norms=[g for r in results for g in r.grad_norms],
        best_epoch=first.best_epoch,
        best_score=first.best_score,
        stopped_early=any(r.stopped_early for r in results),
        device=first.device,
        seconds=sum(r.seconds for r in results),
        examples_seen=sum(r.examples_seen for r in results),
        members=results,
    )
    return models, joined


def _shifted(callback: Callback, offset: int, member: int) -> Callback:
    """``callback`` with epochs numbered on after ``offset`` earlier ones, naming the member."""

    def shifted(epoch: int, metrics: dict[str, float]) -> None:
        callback(offset + epoch, {**metrics, "member": float(member)})

    return shifted
