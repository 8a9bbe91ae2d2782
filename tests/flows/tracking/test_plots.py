"""Figures logged to MLflow show the numbers they are given."""

from __future__ import annotations

import pandas as pd

from flows.tracking import plots


def test_confusion_matrix_shows_every_count_in_its_cell() -> None:
    counts = [[50, 3, 0], [4, 40, 6], [0, 2, 45]]
    fig = plots.confusion_matrix(counts, ["negative", "neutral", "positive"], "sentiment")
    ax = fig.axes[0]
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert cells == {(i, j): str(counts[i][j]) for i in range(3) for j in range(3)}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["negative", "neutral", "positive"]
    plots.close(fig)


def test_entity_scores_bars_have_the_scores_heights() -> None:
    scores = {
        "PER": {"precision": 0.9, "recall": 0.8, "f1": 0.847},
        "LOC": {"precision": 0.7, "recall": 0.75, "f1": 0.724},
    }
    fig = plots.entity_scores(scores, "tagger")
    heights = [round(p.get_height(), 3) for p in fig.axes[0].patches]
    # Bars are drawn metric by metric over the sorted types (LOC, PER).
    assert heights == [0.7, 0.9, 0.75, 0.8, 0.724, 0.847]
    plots.close(fig)


def test_per_horizon_error_plots_model_and_naive() -> None:
    table = pd.DataFrame(
        {"step": [1, 2, 3], "model_mae": [1.0, 1.5, 2.0], "naive_mae": [1.2, 1.9, 2.6]}
    )
    fig = plots.per_horizon_error(table, "prices gru")
    lines = fig.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[1.0, 1.5, 2.0], [1.2, 1.9, 2.6]]
    plots.close(fig)
