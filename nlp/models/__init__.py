"""Recurrent text models, one per file."""

from nlp.models.classifier import LSTMClassifier, LSTMClassifierConfig
from nlp.models.tagger import BiLSTMTagger, BiLSTMTaggerConfig

__all__ = ["BiLSTMTagger", "BiLSTMTaggerConfig", "LSTMClassifier", "LSTMClassifierConfig"]
