"""Text models in pure PyTorch: readers, vocabulary, batching, classifier, tagger, CRF."""

from nlp.device import flush_denormals

flush_denormals()
