"""Scaler round trip and fit-on-train-only; metrics and baselines against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting import metrics
from forecasting.baselines import naive, seasonal_naive
from forecasting.scaling import SeriesScaler


def test_scaler_round_trip_and_serialisation() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(100, 15, 200), rng.normal(-3, 0.1, 50)]
    scaler = SeriesScaler.fit(["a", "b"], parts)
    for i, part in enumerate(parts):
        z = scaler.transform(i, part)
        assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
        np.testing.assert_allclose(scaler.inverse(i, z), part)
    again = SeriesScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.mean, scaler.mean)
    assert again.series_ids == ("a", "b")


def test_scaler_ignores_missing_and_survives_constant_series() -> None:
    scaler = SeriesScaler.fit(["c", "n"], [np.full(10, 5.0), np.array([1.0, np.nan, 3.0])])
    assert scaler.scale[0] == 5.0  # constant: scale by level instead of dividing by zero
    assert scaler.mean[1] == 2.0


def test_seasonal_naive_repeats_last_season() -> None:
    history = np.arange(1.0, 11.0)  # 1..10
    np.testing.assert_array_equal(seasonal_naive(history, 5, 3), [8, 9, 10, 8, 9])
    np.testing.assert_array_equal(naive(history, 3), [10, 10, 10])
    with pytest.raises(ValueError, match="needs 24"):
        seasonal_naive(history, 3, 24)


def test_metrics_against_hand_computation() -> None:
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    yhat = np.array([[1.0, 3.0], [1.0, 4.0]])
    assert metrics.mae(y, yhat) == pytest.approx(0.75)
    assert metrics.rmse(y, yhat) == pytest.approx(np.sqrt(5 / 4))
    expected_smape = 100 * np.mean([0, 2 * 1 / 5, 2 * 2 / 4, 0])
    assert metrics.smape(y, yhat) == pytest.approx(expected_smape)
    assert metrics.smape(np.zeros(3), np.zeros(3)) == 0.0
    scale = metrics.mase_scale(np.array([1.0, 2, 4, 7]), 1)  # diffs 1, 2, 3
    assert scale == pytest.approx(2.0)
    assert metrics.mase(y, yhat, scale) == pytest.approx(0.375)
    assert metrics.coverage(y, y - 1, y + 0.5) == 1.0
