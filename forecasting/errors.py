"""The forecasting layer's errors a caller can fix, in a module free of torch and pandas.

The CLI catches them before any model code is loaded, so it must not import the models to
know them; :mod:`forecasting.panel` and :mod:`forecasting.forecaster` re-export them.
"""

from __future__ import annotations


class PanelError(ValueError):
    """The series cannot be used as asked (too short, unknown frequency, nothing valid)."""


class ArtifactError(ValueError):
    """A model artifact is missing, of another format, or has been tampered with."""


class CovariateError(PanelError):
    """A covariate value the model needs is missing; the message names the series, the
    covariate and the timestamp, and what to supply or declare."""
