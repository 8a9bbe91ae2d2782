"""Static attributes of each series as model inputs: one row of numbers per series.

Numeric attributes are standardised across the training series; categorical ones become one
column per category seen in training (one-hot). The table is computed once, when the model is
fitted, and kept in the model (a buffer saved with the weights): a series' attributes are
those it had when its model was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.errors import CovariateError


def static_table(
    series_ids: Sequence[str], attributes: pd.DataFrame | None, names: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """[S, A] float32 attribute values of ``series_ids`` and the name of each column.

    Args:
        attributes: long frame ``series_id, name, value``; a value that is text (str) makes
            the attribute categorical, numbers make it numeric.
        names: the attributes to use, in order.

    Raises:
        CovariateError: a series has no value for one of ``names`` (both named).
    """
    if attributes is None:
        raise CovariateError(f"this model takes static attributes {list(names)}; pass static=")
    columns: list[np.ndarray] = []
    labels: list[str] = []
    for name in names:
        mine = attributes[attributes["name"] == name].drop_duplicates("series_id")
        values = mine.set_index("series_id")["value"].reindex(list(series_ids))
        absent = values.index[values.isna()]
        if len(absent):
            raise CovariateError(
                f"series {absent[0]!r}: static attribute {name!r} is missing; supply a value "
                f"for every series ({len(absent)} lack one)"
            )
        if any(isinstance(v, str) for v in values):
            text = values.astype(str)
            for category in sorted(set(text)):
                columns.append((text == category).to_numpy(dtype=np.float64))
                labels.append(f"{name}={category}")
        else:
            number = values.astype(float).to_numpy()
            sd = number.std()
            columns.append((number - number.mean()) / (sd if sd > 1e-8 else 1.0))
            labels.append(name)
    table = np.stack(columns, axis=1) if columns else np.zeros((len(series_ids), 0))
    return table.astype(np.float32), labels
