"""The series flows and their tasks: ingest, train the forecasters, forecast, pipeline."""
