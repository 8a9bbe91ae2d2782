"""bench/m4_flow.py on a tiny budget: M4 Hourly through ingest, a model group,
train-forecasters, forecast and the latest_forecasts view scores the same OWA as the same
recipe fit and predicted directly (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support import REPO, SHARED_DATA

M4 = SHARED_DATA / "m4" / "Hourly-train.csv"


@pytest.mark.slow
@pytest.mark.skipif(not M4.is_file(), reason=f"needs {M4} (../shared/data)")
def test_flow_path_scores_the_same_owa_as_the_direct_calls(tmp_path: Path) -> None:
    out = tmp_path / "m4_flow.json"
    cmd = [sys.executable, str(REPO / "bench" / "m4_flow.py"), "--series", "12", "--epochs", "2",
           "--windows-per-epoch", "1024", "--hidden", "32", "--threads", "1",
           "--workdir", str(tmp_path / "project"), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["series"] == 12  # 700 points each, 652 ingested
    assert result["flow"]["ingest"] == {"received": 12 * 652, "accepted": 12 * 652, "rejected": 0}
    assert result["same_spec"] is True  # the registered model's spec is the group's
    assert abs(result["owa_difference"]) <= 0.005
    if not torch.cuda.is_available():  # one CPU thread, one process: the same numbers
        assert result["bit_identical"] is True
        assert result["owa_difference"] == 0.0
