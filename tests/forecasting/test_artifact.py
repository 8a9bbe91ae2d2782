"""A model artifact is one weights_only-safe file; tampered files are refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.forecaster import ArtifactError, ForecasterSpec, GlobalForecaster
from forecasting.models import RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.training import TrainConfig


@pytest.fixture(scope="module")
def fitted(glucose: pd.DataFrame) -> tuple[GlobalForecaster, pd.DataFrame]:
    frame = glucose.iloc[-3000:]
    spec = ForecasterSpec(
        model=RecurrentForecasterConfig(
            cell="gru", window=24, horizon=4, hidden_size=8, num_layers=2
        ),
        train=TrainConfig(max_epochs=1, windows_per_epoch=512),
        panel=PanelConfig(test_size=40, val_size=300),
        season_length=288,
    )
    f = GlobalForecaster(spec)
    f.fit(frame, {"cgm-glucose": "5min"})
    return f, frame


def test_save_load_round_trip_gives_identical_forecasts(fitted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    forecaster, frame = fitted
    path = forecaster.save(tmp_path / "m.pt")
    loaded = GlobalForecaster.load(path)
    a, _ = forecaster.predict(frame)
    b, _ = loaded.predict(frame)
    pd.testing.assert_frame_equal(a, b)
    assert loaded.spec == forecaster.spec
    np.testing.assert_array_equal(loaded.residual_quantiles, forecaster.residual_quantiles)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("pwned",))


def test_pickle_payload_is_refused_without_running_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "seqcast-forecaster/1", "x": _Evil()}))
    with pytest.raises(ArtifactError, match="not a loadable"):
        GlobalForecaster.load(path)
    assert "pwned" not in capsys.readouterr().out


def test_truncated_or_foreign_artifacts_are_refused(fitted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    forecaster, _ = fitted
    good = forecaster.save(tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(ArtifactError):
        GlobalForecaster.load(tmp_path / "cut.pt")
    import torch

    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ArtifactError, match="expected format"):
        GlobalForecaster.load(tmp_path / "other.pt")
