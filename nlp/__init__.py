"""Text models in pure PyTorch: readers, vocabulary, batching, classifier, tagger, CRF."""
