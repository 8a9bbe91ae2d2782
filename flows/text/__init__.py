"""The text flows and their tasks: ingest documents, train and score the text models."""
