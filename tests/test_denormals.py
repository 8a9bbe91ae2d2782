"""Subnormal floats are flushed on the CPU once forecasting or nlp is imported (speed)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

import forecasting  # noqa: F401  (importing it turns flushing on)

CHECK = "import torch, {pkg}; print(float(torch.tensor([1e-39]) * 1.0))"


def test_subnormals_are_zero_after_import() -> None:
    assert float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0


def test_each_package_flushes_and_the_variable_turns_it_off() -> None:
    for pkg in ("forecasting", "nlp"):
        env = {**os.environ, "SEQCAST_FLUSH_DENORMAL": "1"}
        out = subprocess.run(
            [sys.executable, "-c", CHECK.format(pkg=pkg)], env=env, capture_output=True, text=True
        )
        assert out.stdout.strip() == "0.0", out.stderr
        env["SEQCAST_FLUSH_DENORMAL"] = "0"
        out = subprocess.run(
            [sys.executable, "-c", CHECK.format(pkg=pkg)], env=env, capture_output=True, text=True
        )
        assert float(out.stdout) > 0.0, out.stderr
