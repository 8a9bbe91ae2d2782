"""Prefect hooks that alert: a run failed or crashed, or a flow skipped groups.

Every deployed flow carries :func:`alert_on_state` as its ``on_failure`` and ``on_crashed``
hook; the ``forecast`` flow calls :func:`alert_skipped` for the groups it could not forecast.
Where the alerts go is read from the run's project file (``alerts:``) when the alert is sent.
``SEQCAST_ALERT_WEBHOOK`` (a URL) alerts even when the project file itself cannot be read,
the likeliest cause of a failed scheduled run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flows.alerts import Alert, AlertsConfig, Delivery, WebhookAlert, deliver
from flows.errors import SeqcastError
from flows.project import load_project, locate

log = logging.getLogger("seqcast.alerts")
ENV_WEBHOOK = "SEQCAST_ALERT_WEBHOOK"


def alerts_config(config: str | Path | None) -> AlertsConfig | None:
    """The alerts of the project file ``config`` (or the located one), else the
    ``SEQCAST_ALERT_WEBHOOK`` fallback, else None. Never raises: a file that cannot be read
    is logged and the fallback used."""
    fallback = None
    if os.environ.get(ENV_WEBHOOK):
        fallback = AlertsConfig(webhook=WebhookAlert(url=os.environ[ENV_WEBHOOK]))
    path = locate(config)
    if path is None:
        return fallback
    try:
        alerts = load_project(path).alerts
    except SeqcastError as exc:
        log.error("alerts: cannot read the project file (%s); using %s", exc, ENV_WEBHOOK)
        return fallback
    if alerts.webhook is None and alerts.email is None:
        return fallback
    return alerts


def config_of(parameters: Mapping[str, Any]) -> str | None:
    """The project file a flow run was given (``params.config``), if any."""
    params = parameters.get("params")
    value = params.get("config") if isinstance(params, Mapping) else getattr(params, "config", None)
    return str(value) if value else None


def prefect_url(flow_run_id: str) -> str | None:
    """The run's page in the Prefect UI, when the UI's URL is known."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def alert_on_state(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` / ``on_crashed`` hook: alert on a top-level run's end.

    A subflow's failure is left to its parent flow, which fails with it and alerts once.
    Never raises (an error of its own is logged).
    """
    if getattr(flow_run, "parent_task_run_id", None) is not None:
        return
    try:
        config = alerts_config(config_of(flow_run.parameters or {}))
        if config is None:
            return
        alert = Alert(
            kind="crashed" if state.is_crashed() else "failed",
            flow=flow.name,
            flow_run_id=str(flow_run.id),
            flow_run_name=str(flow_run.name),
            message=str(state.message or state.name),
            deployment=str(flow_run.deployment_id) if flow_run.deployment_id else None,
            url=prefect_url(str(flow_run.id)),
        )
        deliver(alert, config)
    except Exception:  # an alert must never change the run's state
        log.exception("alert for flow run %s not sent", getattr(flow_run, "id", "?"))


def alert_skipped(flow: str, config: str | None, skipped: Mapping[str, str]) -> Delivery | None:
    """Alert that the running flow skipped ``skipped`` (group -> why); None when no alerts
    are configured, nothing was skipped, or the alert could not be built (logged)."""
    from prefect.runtime import deployment, flow_run

    try:
        alerts = alerts_config(config) if skipped else None
        if alerts is None:
            return None
        run_id = str(flow_run.id or "local")
        alert = Alert(
            kind="skipped",
            flow=flow,
            flow_run_id=run_id,
            flow_run_name=str(flow_run.name or "local"),
            message=f"{len(skipped)} group(s) wrote nothing",
            deployment=deployment.name,
            url=prefect_url(run_id) if flow_run.id else None,
            groups=dict(skipped),
        )
        return deliver(alert, alerts)
    except Exception:  # an alert must never fail the run that sends it
        log.exception("skipped-groups alert of %s not sent", flow)
        return None


# ``@flow(on_failure=ALERT, on_crashed=ALERT)`` on every deployed flow.
ALERT: list[Any] = [alert_on_state]  # typed loosely: Prefect types each hook per flow
