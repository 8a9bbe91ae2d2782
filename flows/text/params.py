"""Parameters of the text flows as pydantic models (validated before any work starts)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.sources.doc_files import TextFormat
from flows.text.recipes import RecipeName, with_recipe
from nlp.classifier import ClassifierSpec
from nlp.models import BiLSTMTaggerConfig, LSTMClassifierConfig
from nlp.tagger import TaggerSpec
from nlp.training import TextTrainConfig
from nlp.vocab import VocabConfig
from nlp.word_vectors import VectorConfig, WordVectors, default_cache_dir, load_word_vectors

TASK_PATTERN = r"^[a-z][a-z0-9_-]{0,40}$"


class IngestTextParams(BaseModel):
    """Files of documents to load, their format and the task their labels or tags are for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paths: list[str] = Field(default_factory=list)
    format: TextFormat | None = Field(None, description="default: from the file suffix")
    task: str | None = Field(None, pattern=TASK_PATTERN, description="e.g. sentiment, ner, pos")
    bundled: list[Literal["rotten_tomatoes", "turkish_treebank", "stock_reviews"]] = Field(
        default_factory=list,
        description="stock_reviews: the reviews linked to the bundled stocks (ingest them first)",
    )
    label_column: str | None = None
    config: str | None = Field(
        None, description="project file: its document sources (documents:) are loaded too"
    )
    sources: list[str] = Field(default_factory=list, description="only these document sources")


class _Training(BaseModel):
    """Settings both text models share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(pattern=TASK_PATTERN)
    max_epochs: int = Field(5, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65_536)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    clip_norm: float = Field(5.0, gt=0.0)
    patience: int = Field(2, ge=1)
    max_minutes: float | None = Field(None, gt=0.0)
    min_freq: int = Field(1, ge=1)
    max_vocab: int = Field(50_000, ge=3)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    embedding_dim: int = Field(128, ge=1, le=4096)
    hidden_size: int = Field(128, ge=1, le=4096)
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    seed: int = 0
    seeds: int = Field(1, ge=1, le=16, description="models with seeds seed.. that vote")
    vectors: bool = Field(
        False, description="frozen word vectors from the installed n-gram counts beside"
    )
    recipe: RecipeName | None = Field(
        None, description="a validated recipe (flows/text/recipes.py) for what is not given"
    )

    @property
    def registered_model(self) -> str:
        return f"seqcast-{self.task}"

    def word_vectors(self) -> WordVectors | None:
        """The frozen word vectors these settings ask for (built once, then cached)."""
        if not self.vectors:
            return None
        cased = bool(getattr(self, "vectors_cased", False))
        return load_word_vectors(default_cache_dir(), VectorConfig(cased=cased))

    def _train(self) -> TextTrainConfig:
        return TextTrainConfig(
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            clip_norm=self.clip_norm,
            patience=self.patience,
            seed=self.seed,
            max_minutes=self.max_minutes,
        )


class ClassifierParams(_Training):
    """The LSTM classifier: registered as ``seqcast-<task>``."""

    task: str = Field("sentiment", pattern=TASK_PATTERN)
    num_layers: int = Field(1, ge=1, le=8)
    bidirectional: bool = True
    pooling: Literal["max", "mean", "last"] = "max"
    max_tokens: int = Field(400, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _recipe(cls, data: object) -> object:
        return with_recipe(data, "classifier")

    def spec(self) -> ClassifierSpec:
        return ClassifierSpec(
            model=LSTMClassifierConfig(
                embedding_dim=self.embedding_dim,
                hidden_size=self.hidden_size,
                num_layers=self.num_layers,
                bidirectional=self.bidirectional,
                dropout=self.dropout,
                pooling=self.pooling,
            ),
            vocab=VocabConfig(min_freq=self.min_freq, max_size=self.max_vocab),
            train=self._train(),
            max_tokens=self.max_tokens,
            seeds=self.seeds,
        )


class TaggerParams(_Training):
    """The BiLSTM tagger: registered as ``seqcast-<task>``."""

    task: str = Field("pos", pattern=TASK_PATTERN)
    batch_size: int = Field(32, ge=1, le=65_536)
    max_epochs: int = Field(10, ge=1, le=1000)
    patience: int = Field(3, ge=1)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    num_layers: int = Field(1, ge=1, le=8)
    embedding_dim: int = Field(64, ge=1, le=4096)
    hidden_size: int = Field(100, ge=1, le=4096)
    char_channels: int = Field(32, ge=1, le=1024)
    use_chars: bool = True
    use_crf: bool = True
    word_dropout: float = Field(0.3, ge=0.0, lt=1.0)
    vectors_cased: bool = Field(False, description="with vectors: one per spelling (May, may)")

    @model_validator(mode="before")
    @classmethod
    def _recipe(cls, data: object) -> object:
        return with_recipe(data, "tagger")

    def spec(self) -> TaggerSpec:
        return TaggerSpec(
            model=BiLSTMTaggerConfig(
                embedding_dim=self.embedding_dim,
                hidden_size=self.hidden_size,
                char_channels=self.char_channels,
                dropout=self.dropout,
                use_chars=self.use_chars,
                use_crf=self.use_crf,
                num_layers=self.num_layers,
            ),
            vocab=VocabConfig(min_freq=self.min_freq, max_size=self.max_vocab),
            train=self._train(),
            word_dropout=self.word_dropout,
            seeds=self.seeds,
        )


class TrainTextParams(BaseModel):
    """Which text models ``train-text`` trains; None skips one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classifier: ClassifierParams | None = Field(default_factory=ClassifierParams)
    tagger: TaggerParams | None = Field(default_factory=TaggerParams)

    @model_validator(mode="after")
    def _something(self) -> TrainTextParams:
        if self.classifier is None and self.tagger is None:
            raise ValueError("give a classifier or a tagger to train")
        return self


class ScoreTextParams(BaseModel):
    """Which registered text models ``score-text`` uses, and how many documents at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classifier_tasks: list[str] = Field(default_factory=lambda: ["sentiment"])
    tagger_tasks: list[str] = Field(default_factory=lambda: ["pos"])
    alias: str = Field("champion", pattern=r"^[A-Za-z0-9_-]{1,60}$")
    limit: int | None = Field(None, ge=1, description="documents per model per run")
    source_like: str | None = Field(
        None, max_length=500, description="only documents whose source matches (SQL LIKE)"
    )
    sentiment_covariates: bool = Field(
        True,
        description="after scoring, load each classifier's daily mean positive score per "
        "linked series into the covariates table (past_only, named after its task)",
    )
