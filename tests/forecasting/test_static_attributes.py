"""Static attributes per series: numeric standardised, categorical one-hot, kept in the model
(saved with its weights), read by every cell and head, refused when a series lacks one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forecasting.errors import CovariateError
from forecasting.forecaster import GlobalForecaster
from forecasting.models import MODELS, RecurrentForecasterConfig
from forecasting.panel import PanelConfig
from forecasting.spec import ForecasterSpec
from forecasting.static import static_table
from forecasting.training import TrainConfig

FREQS = {"a": "h", "b": "h", "c": "h"}
ATTRIBUTES = pd.DataFrame(
    {
        "series_id": ["a", "b", "c", "a", "b", "c"],
        "name": ["area", "area", "area", "region", "region", "region"],
        "value": [10.0, 20.0, 30.0, "north", "south", "north"],
    }
)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-01", periods=120, freq="h", tz="UTC")
    return pd.concat(
        [pd.DataFrame({"series_id": s, "ts": ts, "value": k + rng.normal(size=120)})
         for k, s in enumerate(FREQS)],
        ignore_index=True,
    )  # fmt: skip


def _spec(**extra: object) -> ForecasterSpec:
    return ForecasterSpec(
        model=RecurrentForecasterConfig(cell="gru", window=12, horizon=4, hidden_size=8),
        train=TrainConfig(max_epochs=2, windows_per_epoch=128, batch_size=32, patience=2),
        panel=PanelConfig(test_size=8, val_size=16),
        season_length=24,
        static_attributes=("area", "region"),
        **extra,  # type: ignore[arg-type]
    )


def test_numeric_attributes_are_standardised_and_categorical_ones_one_hot() -> None:
    table, labels = static_table(["a", "b", "c"], ATTRIBUTES, ["area", "region"])
    assert labels == ["area", "region=north", "region=south"]
    np.testing.assert_allclose(table[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(table[:, 1:], [[1, 0], [0, 1], [1, 0]])
    with pytest.raises(CovariateError, match="series 'd': static attribute 'area' is missing"):
        static_table(["a", "d"], ATTRIBUTES, ["area"])
    with pytest.raises(CovariateError, match="pass static="):
        static_table(["a"], None, ["area"])


@pytest.mark.parametrize("head", ["direct", "seq2seq"])
@pytest.mark.parametrize("cell", sorted(MODELS))
def test_every_cell_and_head_reads_the_series_attributes(cell: str, head: str) -> None:
    torch.manual_seed(0)
    config = RecurrentForecasterConfig(
        cell=cell, window=8, horizon=3, hidden_size=8, head=head,  # type: ignore[arg-type]
        n_series=2, n_static=2, embedding_dim=3, dropout=0.0,
    )  # fmt: skip
    model = MODELS[cell](config).eval()
    x, series = torch.randn(4, 8), torch.tensor([0, 0, 1, 1])
    out = model(x, series=series)
    assert model.static_table is not None
    with torch.no_grad():
        model.static_table[1] += 3.0
    changed = model(x, series=series)
    torch.testing.assert_close(changed[:2], out[:2], rtol=0, atol=0)  # series 0 untouched
    assert not torch.allclose(changed[2:], out[2:])
    with pytest.raises(ValueError, match="n_static needs n_series"):
        RecurrentForecasterConfig(n_static=2)


def test_fit_keeps_the_attributes_in_the_artifact_and_a_warm_start_keeps_its_own(
    tmp_path: Path,
) -> None:
    frame = _frame()
    first = GlobalForecaster(_spec())
    first.fit(frame, FREQS, static=ATTRIBUTES)
    rows, skipped = first.predict(frame)
    assert skipped == {} and len(rows) == 3 * 4
    loaded = GlobalForecaster.load(first.save(tmp_path / "m.pt"))
    assert loaded.spec.static_attributes == ("area", "region")
    pd.testing.assert_frame_equal(loaded.predict(frame)[0], rows)
    assert loaded.model.static_table is not None and first.model.static_table is not None
    with torch.no_grad():
        loaded.model.static_table[0] += 5.0  # the forecast of series a reads its attributes
    moved = loaded.predict(frame)[0]
    assert not np.allclose(moved["yhat"][:4], rows["yhat"][:4])
    np.testing.assert_array_equal(moved["yhat"][4:], rows["yhat"][4:])
    other = ATTRIBUTES.assign(value=[30.0, 20.0, 10.0, "south", "south", "north"])
    second = GlobalForecaster(_spec())
    second.fit(frame, FREQS, init_state=first.state_dict(), static=other)
    assert second.warm_start_note.startswith("warm start")
    expected, _ = static_table(["a", "b", "c"], other, ["area", "region"])
    assert second.model.static_table is not None
    np.testing.assert_array_equal(second.model.static_table.cpu().numpy(), expected)
    no_region_c = ATTRIBUTES.drop(index=5)  # c's region
    with pytest.raises(CovariateError, match="series 'c': static attribute 'region' is missing"):
        GlobalForecaster(_spec()).fit(frame, FREQS, static=no_region_c)
