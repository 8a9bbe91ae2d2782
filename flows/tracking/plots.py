"""Figures logged to MLflow: forecast vs actual, loss curves, gradient norm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: workers have no display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def forecast_vs_actual(
    examples: Sequence[dict[str, Any]], title: str, max_series: int = 4
) -> Figure:
    """History, actual and forecast (with interval band) for the last backtest window."""
    shown = list(examples)[:max_series]
    fig, axes = plt.subplots(
        len(shown) or 1, 1, figsize=(9, 2.6 * max(len(shown), 1)), squeeze=False
    )
    for ax, ex in zip(axes[:, 0], shown, strict=False):
        hist = ex["history"]
        n = len(hist)
        future = range(n, n + len(ex["actual"]))
        ax.plot(range(n), hist, color="0.4", lw=1, label="history")
        ax.plot(future, ex["actual"], color="black", lw=1.5, label="actual")
        ax.plot(future, ex["model"], color="tab:blue", lw=1.5, label="forecast")
        ax.fill_between(
            future, ex["lower"], ex["upper"], color="tab:blue", alpha=0.2, label="interval"
        )
        ax.plot(
            future, ex["seasonal_naive"], color="tab:orange", lw=1, ls="--", label="seasonal naive"
        )
        ax.set_title(str(ex["series_id"]), fontsize=9)
    if shown:
        axes[0, 0].legend(fontsize=7, loc="upper left")
    else:
        axes[0, 0].text(
            0.5, 0.5, "no complete backtest window", ha="center", transform=axes[0, 0].transAxes
        )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_curves(history: Sequence[dict[str, float]], title: str) -> Figure:
    """Train and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled units)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def grad_norms(norms: Sequence[float], clip_norm: float, title: str) -> Figure:
    """Pre-clip global gradient norm per optimizer step, with the clipping threshold."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(norms) + 1), norms, lw=0.8)
    ax.axhline(clip_norm, color="tab:red", ls="--", lw=1, label=f"clip at {clip_norm}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("grad norm (pre-clip)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)


def per_horizon_error(table: Any, title: str) -> Figure:
    """MAE per horizon step of the model next to the naive forecast (``step, model_mae,
    naive_mae`` columns)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(table):
        ax.plot(table["step"], table["model_mae"], marker="o", label="model")
        ax.plot(table["step"], table["naive_mae"], marker="s", ls="--", label="naive")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no origin with actuals", ha="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MAE (series units)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def confusion_matrix(counts: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> Figure:
    """Text classifier: counts[true][predicted], with row-normalised shading and raw counts."""
    import numpy as np

    matrix = np.asarray(counts, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(3.5, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def entity_scores(scores: dict[str, dict[str, float]], title: str) -> Figure:
    """Sequence tagger: precision, recall and F1 per entity type (``{type: {metric: v}}``)."""
    import numpy as np

    types = sorted(scores)
    metrics = ("precision", "recall", "f1")
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(types) + 2), 3.5))
    x = np.arange(len(types))
    for k, metric in enumerate(metrics):
        ax.bar(x + (k - 1) * 0.27, [scores[t].get(metric, 0.0) for t in types], 0.27,
               label=metric)  # fmt: skip
    ax.set_xticks(x, types)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
