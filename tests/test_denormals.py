"""Subnormal floats are flushed on the CPU when a command or training starts, not at import."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch

from forecasting.training import TrainConfig, WindowData, fit
from forecasting.windows import WindowIndex, WindowSpec

PROBE = "import torch; {setup}; print(float(torch.tensor([1e-39]) * 1.0))"


def _probe(setup: str, flag: str = "1") -> float:
    env = {**os.environ, "SEQCAST_FLUSH_DENORMAL": flag}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_importing_changes_nothing_calling_flushes_and_the_variable_turns_it_off() -> None:
    for pkg in ("forecasting", "nlp"):
        assert _probe(f"import {pkg}") > 0.0
        assert _probe(f"from {pkg}.device import flush_denormals; flush_denormals()") == 0.0
        assert _probe(f"from {pkg}.device import flush_denormals; flush_denormals()", "0") > 0.0


def test_training_turns_flushing_on() -> None:
    from forecasting.models import LSTMForecaster, RecurrentForecasterConfig

    spec = WindowSpec(8, 2)
    values = torch.sin(torch.arange(120, dtype=torch.float32) / 4)
    starts = np.arange(120 - spec.span + 1)
    data = WindowData(
        values, WindowIndex.from_starts(starts[:80]), WindowIndex.from_starts(starts[80:]), spec
    )
    model = LSTMForecaster(
        RecurrentForecasterConfig(cell="lstm", window=8, horizon=2, hidden_size=4, num_layers=1)
    )
    torch.set_flush_denormal(False)
    try:
        fit(model, data, TrainConfig(max_epochs=1, batch_size=16, windows_per_epoch=16))
        assert float(torch.tensor([1e-39]) * 1.0) == 0.0
    finally:
        torch.set_flush_denormal(False)
