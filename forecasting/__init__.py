"""Recurrent forecasting in pure PyTorch, numpy and pandas.

Knows nothing of SQL, Prefect or MLflow: takes frames and arrays, returns models, metrics and
histories.
"""
