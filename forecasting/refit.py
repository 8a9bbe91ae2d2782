"""A selected forecaster refit on every point up to the last observation.

Selection needs a holdout, so a candidate never trains on its newest ``val_size + test_size``
points; once chosen, its recipe is trained again on all of them (``fit(through_end=True)``).
Two ways, measured in bench/refit.py:

* ``scratch``: the same spec from the same seeded initialisation, for as many epochs as the
  selected run kept (its best epoch), without early stopping: nothing is left to stop on.
* ``finetune``: the selected weights, trained ``finetune_epochs`` more epochs on all data.

The refit has no holdout of its own: its evidence is the selected run's backtest, and its
prediction intervals are the selected model's (residuals on data it trained on would be too
narrow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import pandas as pd

from forecasting.forecaster import GlobalForecaster
from forecasting.spec import ForecasterSpec
from forecasting.training import Callback, TrainResult

RefitMode = Literal["scratch", "finetune"]
REFIT_MODES = ("scratch", "finetune")


def refit_spec(
    spec: ForecasterSpec, best_epoch: int, mode: RefitMode = "scratch", finetune_epochs: int = 1
) -> ForecasterSpec:
    """``spec`` with the refit's epochs: the selected run's best epoch (``scratch``) or
    ``finetune_epochs``; patience as long as that, so early stopping never ends it."""
    if mode not in REFIT_MODES:
        raise ValueError(f"refit mode must be one of {list(REFIT_MODES)}, got {mode!r}")
    epochs = max(1, best_epoch) if mode == "scratch" else max(1, finetune_epochs)
    return replace(spec, train=replace(spec.train, max_epochs=epochs, patience=epochs))


def refit(
    selected: GlobalForecaster,
    best_epoch: int,
    frame: pd.DataFrame,
    freqs: dict[str, str],
    mode: RefitMode = "scratch",
    callbacks: Sequence[Callback] = (),
    exogenous: pd.DataFrame | None = None,
    static: pd.DataFrame | None = None,
    finetune_epochs: int = 1,
) -> tuple[GlobalForecaster, TrainResult]:
    """``selected``'s recipe trained on every point of ``frame``; a new forecaster.

    Args:
        best_epoch: the epoch whose weights the selected run kept.

    Raises:
        TrainingDiverged: the refit's loss or gradient norm became non-finite.
    """
    forecaster = GlobalForecaster(refit_spec(selected.spec, best_epoch, mode, finetune_epochs))
    init = selected.state_dict() if mode == "finetune" else None
    result = forecaster.fit(
        frame, freqs, callbacks, exogenous, init_state=init, static=static, through_end=True
    )
    forecaster.residual_quantiles = selected.residual_quantiles.copy()
    return forecaster, result
