"""Per-epoch metrics sent together: the first epoch at once, the rest at most every few
seconds, everything by the end of training, each at its epoch as MLflow step."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from flows.tracking.runs import EpochLogger


def test_epochs_are_sent_together_and_all_arrive_after_flush(tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("epochs", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(experiment).info.run_id

    def steps(key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]

    logger = EpochLogger(client, run_id, every_s=3600)
    for epoch in range(1, 6):
        logger(epoch, {"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch})
    assert steps("train_loss") == [(1, 1.0)]  # the first epoch at once, then held
    logger.flush()
    assert sorted(steps("train_loss")) == [(e, 1.0 / e) for e in range(1, 6)]
    assert sorted(steps("val_loss")) == [(e, 2.0 / e) for e in range(1, 6)]
    logger.flush()  # nothing pending: nothing sent twice
    assert len(steps("val_loss")) == 5

    immediate = EpochLogger(client, run_id)
    immediate(6, {"train_loss": 0.1})
    assert (6, 0.1) in steps("train_loss")
