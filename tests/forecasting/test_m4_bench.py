"""bench/m4_hourly.py: the ``--members`` syntax, its cache names (the older
``{cell}-seed{seed}.npz`` names must keep working) and the subset medians, without training."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.support import REPO

sys.path.insert(0, str(REPO / "bench"))
from m4_hourly import Member, member_ensembles, parse_member


def test_members_read_window_seed_and_loss_with_defaults() -> None:
    assert parse_member("gru:0", 336) == Member("gru", 336, 0, "mae")  # the older CELL:SEED
    assert parse_member("gru:w504:s1", 336) == Member("gru", 504, 1, "mae")
    assert parse_member("lstm:huber:w168", 336) == Member("lstm", 168, 0, "huber")
    with pytest.raises(SystemExit, match="cannot read 'smape'"):
        parse_member("gru:w336:smape", 336)


def test_cache_names_keep_the_default_window_name_and_name_the_rest() -> None:
    assert Member("gru", 336, 1).cache_name == "gru-seed1.npz"
    assert Member("gru", 504, 0).cache_name == "gru-w504-seed0.npz"
    assert Member("lstm", 336, 0, "mse").cache_name == "lstm-w336-seed0-mse.npz"


def test_member_ensembles_score_the_median_of_all_and_of_each_proper_subset() -> None:
    ids = ["a", "b"]
    members = [Member("gru", 336, s) for s in range(3)]
    forecasts = [{k: np.full(2, float(s)) for k in ids} for s in (0, 1, 5)]
    timings = [{"fit_s": 10.0, "predict_s": 1.0}] * 3

    def mean_forecast(fc: dict[str, np.ndarray]) -> dict[str, float]:
        return {"smape": float(np.mean([fc[k] for k in ids])), "mase": 0.0}

    rows = member_ensembles(members, forecasts, timings, ids, mean_forecast)
    assert len(rows) == 1 + 3  # all three, then the three pairs
    assert rows["median of all 3"]["smape"] == 1.0
    assert rows["median of all 3"]["fit_s"] == 30.0
    assert rows["median of gru w336 s0 + gru w336 s2"]["smape"] == 2.5


def test_hidden_size_and_epochs_name_their_cache_file_only_when_not_the_default() -> None:
    member = parse_member("gru:w168:h64:e30:s2", 336)
    assert member == Member("gru", 168, 2, "mae", hidden=64, epochs=30)
    assert member.cache_name == "gru-w168-h64-e30-seed2.npz"
    assert member.label == "gru w168 h64 e30 s2"
    assert parse_member("gru:1", 336, hidden=128, epochs=15).cache_name == "gru-seed1.npz"
