"""Subnormal floats are flushed on the CPU by the process entry points, never at import."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import torch; {setup}; print(float(torch.tensor([1e-39]) * 1.0))"


def _probe(setup: str, flag: str = "1") -> float:
    env = {**os.environ, "SEQCAST_FLUSH_DENORMAL": flag}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_importing_changes_nothing_calling_flushes_and_the_variable_turns_it_off() -> None:
    assert _probe("import forecasting, nlp, flows.cli") > 0.0
    call = "from forecasting.device import flush_denormals; flush_denormals()"
    assert _probe(call) == 0.0
    assert _probe(call, "0") > 0.0


def test_flushing_is_reported_as_it_is() -> None:
    # A fresh process does not flush until told to; then it reports that it does.
    before = "from forecasting.device import flushing_denormals; assert not flushing_denormals()"
    assert _probe(before) > 0.0
    after = (
        "from forecasting.device import flush_denormals, flushing_denormals; "
        "flush_denormals(); assert flushing_denormals()"
    )
    assert _probe(after) == 0.0
