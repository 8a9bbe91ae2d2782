"""Seed ensembles: per-token majority votes and mean probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from nlp.voting import mean_probabilities, vote_tags


def test_vote_takes_the_majority_per_token_and_breaks_ties_by_member_order() -> None:
    a = [["DET", "NOUN"], ["VERB"]]
    b = [["DET", "VERB"], ["NOUN"]]
    c = [["PRON", "VERB"], ["ADJ"]]
    assert vote_tags([a, b, c]) == [["DET", "VERB"], ["VERB"]]  # second sentence: a 3-way tie
    assert vote_tags([b, a]) == b
    with pytest.raises(ValueError, match="same sentences"):
        vote_tags([a, a[:1]])


def test_mean_probabilities() -> None:
    p = mean_probabilities([np.array([[0.9, 0.1]]), np.array([[0.3, 0.7]])])
    np.testing.assert_allclose(p, [[0.6, 0.4]])
