"""One model group: read its series, train every candidate, compare with the baselines,
register and promote; the unit the fan-out runs on each Dask worker."""

from __future__ import annotations

import dataclasses

import mlflow

from flows.errors import SeqcastError
from flows.series.candidates import train_candidate
from flows.series.data import read_group_data
from flows.series.ensemble import ensemble_candidates
from flows.series.params import ModelGroup
from flows.series.promote import best_candidate, promote_group
from flows.series.refit import refit_champion
from flows.series.results import GroupFailure, GroupTraining, group_failed
from flows.tracking.comparison import log_baseline_runs, log_training_dataset


def train_group(group: ModelGroup, run_tags: dict[str, str]) -> GroupTraining:
    """One group: read its series, train every cell type, backtest, register, promote.

    Raises:
        SeqcastError: the group has no data, or every candidate diverged.
    """
    data = read_group_data(group)
    tags = {**run_tags, "group": group.name, "data_sha256": data.sha256}
    with mlflow.start_run(run_name=f"train-{group.name}", tags=tags) as parent:
        mlflow.log_params(
            {
                "group": group.name,
                "cells": ",".join(group.cells),
                "data.rows": data.rows,
                "data.series": len(data.freqs),
                "data.sha256": data.sha256,
            }
        )
        mlflow.log_params({f"provenance.{k}": v[:6000] for k, v in group.provenance.items()})
        log_training_dataset(group, data)
        candidates = [
            c
            for cell in group.cells
            if (c := train_candidate(group, cell, data, parent.info.run_id, tags)) is not None
        ]
        candidates += ensemble_candidates(group, candidates, data, parent.info.run_id, tags)
        if not candidates:
            raise SeqcastError(
                f"group {group.name!r}: every candidate diverged; "
                f"see MLflow run {parent.info.run_id}"
            )
        log_baseline_runs(group, data, candidates[0].backtest, parent.info.run_id, tags)
        decision = promote_group(group, candidates, data)
        best = best_candidate(candidates)
        decision = refit_champion(group, best, data, decision, parent.info.run_id, tags)
        mlflow.log_dict(dataclasses.asdict(decision), "promotion.json")
        mlflow.set_tags({"champion_change": str(decision.promoted).lower()})
    return GroupTraining(
        group=group.name,
        registered_model=group.registered_model,
        parent_run_id=parent.info.run_id,
        rows=data.rows,
        series=len(data.freqs),
        candidates=tuple(c.result() for c in candidates),
        decision=decision,
        settings=tuple(
            (name, str(getattr(group, name)), source)
            for name, source in group.provenance.items()
            if name in type(group).model_fields
        ),
    )


def train_or_fail(group: ModelGroup, run_tags: dict[str, str]) -> GroupTraining | GroupFailure:
    """:func:`train_group`, with its failure (a user's or a bug) as the group's outcome."""
    try:
        return train_group(group, run_tags)
    except Exception as exc:
        return group_failed(group.name, exc)
