"""MLflow "models from code" file of a seqcast text model: text in, labels or tags out.

:func:`flows.tracking.registry.log_text_model` logs this file as the model's code and names
the kind (``classifier`` or ``tagger``) in the model config; MLflow runs the file to load the
model, so no pickled object is written or read. The weights, vocabularies and labels come from
seqcast's own artifact, read with ``torch.load(weights_only=True)`` (``nlp/artifact.py``).

It imports only ``nlp`` (logged beside it as a code path), pandas and MLflow.

Request: a column ``text``. Response, classifier: ``label`` and its probability ``score``;
tagger: ``tokens`` (the text split as ``score-text`` splits it) and one tag per token.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel, PythonModelContext

from nlp.classifier import TextClassifier
from nlp.tagger import SequenceTagger
from nlp.vocab import tokenize

ARTIFACT_KEY = "text_model"
KINDS: dict[str, type[TextClassifier] | type[SequenceTagger]] = {
    "classifier": TextClassifier,
    "tagger": SequenceTagger,
}


def answer_texts(model: TextClassifier | SequenceTagger, request: pd.DataFrame) -> pd.DataFrame:
    """Labels (classifier) or tokens and tags (tagger) for each row's ``text``."""
    if "text" not in request.columns:
        raise MlflowException(
            f"the request has columns {list(request.columns)}; send one column 'text'",
            error_code=INVALID_PARAMETER_VALUE,
        )
    texts = request["text"].fillna("").astype(str).tolist()
    if isinstance(model, TextClassifier):
        probs = model.predict_proba(texts)
        best = probs.argmax(1)
        return pd.DataFrame(
            {"label": [model.labels[i] for i in best], "score": probs[range(len(best)), best]}
        )
    tokens = [tokenize(t, lower=False) for t in texts]
    return pd.DataFrame({"tokens": tokens, "tags": model.predict(tokens)})


class TextModel(PythonModel):
    """pyfunc wrapper of :class:`TextClassifier` or :class:`SequenceTagger`."""

    def load_context(self, context: PythonModelContext) -> None:
        kind = str((context.model_config or {}).get("kind", ""))
        if kind not in KINDS:
            raise MlflowException(f"model config kind {kind!r} is none of {sorted(KINDS)}")
        self.model = KINDS[kind].load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        return answer_texts(self.model, model_input)


mlflow.models.set_model(TextModel())
