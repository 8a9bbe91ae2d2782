"""Which windows an epoch draws: a capped epoch costs O(windows_per_epoch), not O(windows)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from forecasting.models import RecurrentForecasterConfig, build_model
from forecasting.training import TrainConfig, WindowData, fit
from forecasting.windows import SPARSE_EPOCH, WindowIndex, WindowSpec, epoch_windows


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def _peak_rss_growth_mib(fn: object) -> float:
    """Growth of this process's peak resident memory while ``fn()`` runs (Linux)."""

    def kib(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise RuntimeError(key)

    Path("/proc/self/clear_refs").write_text("5")  # peak := current
    base = kib("VmRSS")
    fn()  # type: ignore[operator]
    return (kib("VmHWM") - base) / 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_a_capped_epoch_over_a_billion_windows_costs_only_its_own_windows() -> None:
    # A permutation of 10**9 windows would be 8 GB of int64 and seconds of work.
    drawn: list[torch.Tensor] = []
    t0 = time.perf_counter()
    growth = _peak_rss_growth_mib(lambda: drawn.append(epoch_windows(10**9, 8192, _gen(1))))
    seconds = time.perf_counter() - t0
    sample = drawn[0]
    assert sample.dtype == torch.int64 and sample.shape == (8192,)
    assert len(torch.unique(sample)) == 8192
    assert int(sample.min()) >= 0 and int(sample.max()) < 10**9
    assert growth < 32, f"peak memory grew {growth:.0f} MiB"
    assert seconds < 1.0, f"{seconds:.2f} s"
    # The same cost at a thousand times fewer windows: it does not follow n.
    small = _peak_rss_growth_mib(lambda: epoch_windows(10**6, 8192, _gen(1)))
    assert small < 32
    torch.testing.assert_close(epoch_windows(10**9, 8192, _gen(1)), sample)


def test_full_and_large_epochs_are_a_shuffle_of_the_windows() -> None:
    assert sorted(epoch_windows(1000, 1000, _gen(0)).tolist()) == list(range(1000))
    assert sorted(epoch_windows(1000, 5000, _gen(0)).tolist()) == list(range(1000))
    half = epoch_windows(1000, 500, _gen(0))  # a large share: from the permutation
    torch.testing.assert_close(half, torch.randperm(1000, generator=_gen(0))[:500])


def test_a_sparse_epoch_is_a_uniform_sample_without_replacement() -> None:
    n, k, draws = 1000, 100, 2000
    counts = np.zeros(n)
    first = np.zeros(n)
    for seed in range(draws):
        s = epoch_windows(n, k, _gen(seed)).numpy()
        assert len(np.unique(s)) == k
        counts[s] += 1
        first[s[0]] += 1
    # Each window is drawn with probability k / n; a chi-square over 1000 cells has mean 999
    # and standard deviation about 45 (the statistic is scaled by 1 - k/n for sampling
    # without replacement).
    expected = draws * k / n
    chi2 = float(((counts - expected) ** 2 / (expected * (1 - k / n))).sum())
    assert 800 < chi2 < 1200, chi2
    # The order is random too: the first position is not biased to small numbers.
    assert abs(float((first * np.arange(n)).sum() / draws) - (n - 1) / 2) < 40


def test_capped_epochs_over_many_windows_reproduce_run_to_run() -> None:
    spec = WindowSpec(16, 4)
    values = np.sin(np.linspace(0, 200, 20_000)) + np.linspace(0, 1, 20_000)
    n = len(values) - spec.span + 1
    data = WindowData(
        torch.as_tensor(values, dtype=torch.float32),
        WindowIndex.from_starts(np.arange(n - 2000)),
        WindowIndex.from_starts(np.arange(n - 2000, n)),
        spec,
    )
    config = TrainConfig(max_epochs=3, batch_size=64, windows_per_epoch=512, patience=5)
    assert config.windows_per_epoch is not None
    assert config.windows_per_epoch < SPARSE_EPOCH * len(data.train_starts)  # the sparse path
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(
            RecurrentForecasterConfig(cell="gru", window=16, horizon=4, hidden_size=8, num_layers=1)
        )
        runs.append((fit(model, data, config), model))
    (a, model_a), (b, model_b) = runs
    assert a.history == b.history and a.grad_norms == b.grad_norms
    assert a.windows_seen == 3 * 512
    torch.testing.assert_close(model_a.state_dict(), model_b.state_dict(), rtol=0, atol=0)
