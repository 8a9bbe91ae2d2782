"""``recipe:`` in train-text's parameters: the validated settings of flows/text/recipes.py for
every setting not given, checked before any work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.text.params import ClassifierParams, TaggerParams, TrainTextParams
from flows.text.recipes import RECIPES


def test_a_recipe_fills_what_is_not_given_and_given_settings_win() -> None:
    p = TaggerParams(task="pos", recipe="ud", max_minutes=5)
    for key, value in RECIPES["ud"].items():
        assert getattr(p, key) == value, key
    spec = p.spec()
    assert (spec.seeds, spec.model.num_layers, spec.model.use_crf) == (3, 2, True)
    assert (spec.vocab.max_size, spec.train.batch_size, spec.train.max_minutes) == (100_000, 16, 5)
    mine = TaggerParams(task="ner", recipe="conll", seeds=2, hidden_size=50)
    assert (mine.seeds, mine.hidden_size, mine.patience) == (2, 50, RECIPES["conll"]["patience"])
    plain = ClassifierParams()
    assert (plain.recipe, plain.seeds, plain.vectors, plain.max_epochs) == (None, 1, False, 5)
    clf = ClassifierParams(recipe="sst2").spec()
    assert (clf.seeds, clf.train.max_epochs, clf.model.dropout) == (3, 12, 0.4)


def test_recipes_reach_train_text_from_a_parameters_mapping() -> None:
    params = TrainTextParams.model_validate(
        {"classifier": {"task": "sentiment", "recipe": "sst2"}, "tagger": None}
    )
    assert params.classifier is not None and params.classifier.seeds == 3


def test_a_recipe_of_the_other_kind_or_an_unknown_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="recipe 'sst2' is a classifier recipe"):
        TaggerParams(recipe="sst2")
    with pytest.raises(ValidationError, match="recipe 'ud' is a tagger recipe"):
        ClassifierParams(recipe="ud")
    with pytest.raises(ValidationError, match="recipe"):
        TaggerParams(recipe="glove")
    with pytest.raises(ValidationError, match="seeds"):
        TaggerParams(seeds=0)
