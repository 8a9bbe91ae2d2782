"""The text recipes validated in bench/ACCURACY.md, by name: ``recipe: ud`` in ``train-text``'s
parameters fills every setting not given with the recipe's, and bench/text.py builds its models
from the same entries, so what the bench measured is what the flow registers.

Each was chosen on validation data cut from its training files only (bench/ACCURACY.md):
``sst2`` (the classifier, SST-2 phrases, sentence-level split), ``conll`` (the NER tagger,
CoNLL-2003 eng.testa), ``ud`` (the POS tagger, UD English EWT dev, sentence split).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal

RecipeName = Literal["sst2", "conll", "ud"]
RECIPE_KINDS: MappingProxyType[str, str] = MappingProxyType(
    {"sst2": "classifier", "conll": "tagger", "ud": "tagger"}
)
_TAGGER = {"embedding_dim": 64, "hidden_size": 100, "char_channels": 32, "use_crf": True,
           "dropout": 0.5, "word_dropout": 0.3, "learning_rate": 2e-3, "max_vocab": 100_000,
           "min_freq": 1, "clip_norm": 5.0}  # fmt: skip
RECIPES: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        # 12 epochs, patience 3, mean of 3 seeds: 0.8406 (one seed 0.8274; vectors 0.8208).
        "sst2": MappingProxyType(
            {
                "embedding_dim": 128,
                "hidden_size": 128,
                "num_layers": 1,
                "bidirectional": True,
                "pooling": "max",
                "dropout": 0.4,
                "min_freq": 1,
                "max_vocab": 50_000,
                "max_epochs": 12,
                "batch_size": 128,
                "learning_rate": 2e-3,
                "patience": 3,
                "clip_norm": 5.0,
                "seeds": 3,
                "vectors": False,
            }
        ),
        # Characters, CRF, word dropout and the n-gram vectors: entity F1 0.9148 on eng.testa.
        "conll": MappingProxyType(
            {
                **_TAGGER,
                "num_layers": 1,
                "max_epochs": 30,
                "batch_size": 32,
                "patience": 4,
                "seeds": 1,
                "vectors": True,
            }
        ),
        # Vectors, two BiLSTM layers, CRF, 3 seeds voting: UPOS 0.9433 (one seed 0.9399).
        "ud": MappingProxyType(
            {
                **_TAGGER,
                "num_layers": 2,
                "max_epochs": 30,
                "batch_size": 16,
                "patience": 5,
                "seeds": 3,
                "vectors": True,
            }
        ),
    }
)


def with_recipe(data: Any, kind: str) -> Any:
    """``data`` (a params mapping) with the settings of its ``recipe`` it does not give."""
    if not isinstance(data, dict) or data.get("recipe") is None:
        return data
    name = data["recipe"]
    if name not in RECIPES:
        return data  # the field's own validation names the choices
    if RECIPE_KINDS[name] != kind:
        raise ValueError(f"recipe {name!r} is a {RECIPE_KINDS[name]} recipe, not a {kind} one")
    return {**RECIPES[name], **data}
