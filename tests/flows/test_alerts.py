"""Alerts reach a local webhook and a local SMTP server: a failed run alerts once (a failed
subflow through its parent), a skipped group alerts naming it, an unreadable project file
still alerts through SEQCAST_ALERT_WEBHOOK, and an undeliverable alert never fails a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from prefect import flow

from flows.alerts import Alert, AlertsConfig, EmailAlert, WebhookAlert, deliver
from flows.cli.project import starter_file
from flows.errors import SeqcastError
from flows.hooks import ALERT
from flows.project import load_project
from flows.series.forecast import forecast
from flows.series.ingest import ingest
from flows.series.params import ForecastParams, IngestParams
from tests.support import REPO
from tests.support.groups import tiny_groups, write_project
from tests.support.receivers import smtp_receiver, webhook_receiver

ALERT_ = Alert(
    kind="failed",
    flow="forecast",
    flow_run_id="0f0e",
    flow_run_name="shiny-cat",
    message="Flow run encountered an exception: SeqcastError: boom",
)


def test_an_alert_reaches_the_webhook_and_the_mailbox() -> None:
    with webhook_receiver() as hook, smtp_receiver() as (mailbox, port):
        config = AlertsConfig(
            webhook=WebhookAlert(url=hook.url, headers={"Authorization": "Bearer t0k"}),
            email=EmailAlert(
                smtp_host="127.0.0.1", smtp_port=port, sender="seqcast@example.org",
                to=["ops@example.org", "me@example.org"],
            ),
        )  # fmt: skip
        done = deliver(ALERT_, config)
        assert done.sent == ["webhook", "email"] and done.failed == {}
        posted = hook.wait(1)[0]
        mail = mailbox.wait(1)[0]
    assert posted["headers"]["Authorization"] == "Bearer t0k"
    assert posted["json"]["alert"]["flow_run_id"] == "0f0e"
    assert posted["json"]["text"].startswith("[seqcast] forecast failed (run shiny-cat)\n")
    assert "SeqcastError: boom" in posted["json"]["text"]
    assert mail["rcpt"] == ["<ops@example.org>", "<me@example.org>"]
    assert mail["message"]["Subject"] == "[seqcast] forecast failed (run shiny-cat)"
    assert "SeqcastError: boom" in mail["message"].get_payload()


def test_only_the_listed_events_alert() -> None:
    with webhook_receiver() as hook:
        config = AlertsConfig(webhook=WebhookAlert(url=hook.url), events=["crashed"])
        assert deliver(ALERT_, config).sent == []
        assert deliver(Alert(**{**ALERT_.__dict__, "kind": "crashed"}), config).sent == ["webhook"]
        assert len(hook.wait(1)) == 1


def test_an_undeliverable_alert_is_logged_and_not_raised(caplog: Any) -> None:
    with webhook_receiver(status=500) as hook, smtp_receiver() as (_, port):
        pass  # both stopped: the port is closed now
    config = AlertsConfig(
        webhook=WebhookAlert(url=hook.url, timeout_s=5),
        email=EmailAlert(smtp_host="127.0.0.1", smtp_port=port, sender="a@b.c", to=["d@e.f"]),
    )
    done = deliver(ALERT_, config)
    assert done.sent == [] and set(done.failed) == {"webhook", "email"}
    assert "not delivered by webhook" in caplog.text


def test_the_project_file_alerts_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "seqcast.yaml"
    path.write_text(yaml.safe_dump({"alerts": {"webhook": {"url": "hooks.example/x"}}}))
    with pytest.raises(SeqcastError, match=r"seqcast.yaml: alerts.webhook.url: String should"):
        load_project(path)
    path.write_text(yaml.safe_dump({"alerts": {"events": ["failed", "late"]}}))
    with pytest.raises(SeqcastError, match=r"alerts.events\[1\]: Input should be"):
        load_project(path)
    path.write_text(yaml.safe_dump({"alerts": {"email": {"smtp_host": "mail", "to": ["x@y"]}}}))
    with pytest.raises(SeqcastError, match=r"alerts.email.sender: required; add it"):
        load_project(path)


@flow(name="child-that-fails", on_failure=ALERT, on_crashed=ALERT)
def child() -> None:
    raise SeqcastError("the child failed")


@flow(name="parent-of-failing-child", on_failure=ALERT, on_crashed=ALERT)
def parent() -> None:
    child()


def test_a_failed_subflow_alerts_once_through_its_parent(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./seqcast.yaml: the variable's webhook
    with webhook_receiver() as hook:
        monkeypatch.setenv("SEQCAST_ALERT_WEBHOOK", hook.url)
        with pytest.raises(SeqcastError, match="the child failed"):
            parent()
        alerts = [item["json"]["alert"] for item in hook.items]
    assert [(a["flow"], a["kind"]) for a in alerts] == [("parent-of-failing-child", "failed")]
    assert "the child failed" in alerts[0]["message"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_run_alerts_even_when_its_project_file_is_unreadable(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with webhook_receiver() as hook:
        monkeypatch.setenv("SEQCAST_ALERT_WEBHOOK", hook.url)
        with pytest.raises(SeqcastError, match="no such project file"):
            forecast(ForecastParams(config=str(tmp_path / "missing.yaml")))
        (alert,) = [item["json"]["alert"] for item in hook.items]
    assert alert["flow"] == "forecast" and alert["kind"] == "failed"
    assert "missing.yaml: no such project file" in alert["message"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_group_without_champion_sends_a_skipped_alert(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    ingest(IngestParams(bundled=["stocks"]))
    with webhook_receiver() as hook, smtp_receiver() as (mailbox, port):
        project = write_project(
            tmp_path / "seqcast.yaml",
            [tiny_groups()[1]],
            alerts={
                "webhook": {"url": hook.url},
                "email": {"smtp_host": "127.0.0.1", "smtp_port": port,
                          "sender": "seqcast@example.org", "to": ["ops@example.org"]},
            },
        )  # fmt: skip
        summary = forecast(ForecastParams(config=str(project)))
        (posted,) = [item["json"] for item in hook.items]
        mail = mailbox.wait(1)[0]["message"]
    assert summary.written == [] and summary.failed == []
    alert = posted["alert"]
    assert alert["kind"] == "skipped" and alert["flow"] == "forecast"
    assert alert["groups"] == {"prices": "no seqcast-prices@champion; run train-forecasters first"}
    assert mail["Subject"].startswith("[seqcast] forecast skipped prices (run ")


def yaml_blocks(path: Path) -> list[str]:
    """The ```yaml blocks of a Markdown file."""
    return [b.split("```", 1)[0] for b in path.read_text().split("```yaml\n")[1:]]


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md"])
def test_the_documented_alerts_are_a_valid_project_file(doc: str, tmp_path: Path) -> None:
    (block,) = [b for b in yaml_blocks(REPO / doc) if "alerts:" in b]
    path = tmp_path / "seqcast.yaml"
    path.write_text(block)
    alerts = load_project(path).alerts
    assert alerts.webhook is not None and alerts.email is not None
    assert alerts.email.password_env == "SEQCAST_SMTP_PASSWORD"


def test_the_starter_files_alerts_are_valid_once_uncommented(tmp_path: Path) -> None:
    catalog = pd.DataFrame({"kind": ["sensor"], "freq": ["h"], "n_obs": [500]})
    lines = starter_file(catalog, None).splitlines()
    start = lines.index(next(x for x in lines if x.startswith("# alerts:")))
    block = [x.removeprefix("# ") for x in lines[start : start + 3]]
    path = tmp_path / "seqcast.yaml"
    path.write_text("\n".join(block) + "\n")
    alerts = load_project(path).alerts
    assert alerts.webhook is not None and alerts.email is not None
