"""Alerts: a webhook call and/or an e-mail when a run fails or crashes, or skips a group.

Configured in the project file's ``alerts:`` (``webhook:``, ``email:``, ``events:``); the flows'
hooks that send them are in flows/hooks.py. A failed delivery is logged, never raised: an
alert must not change the state of the run it reports.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from flows.errors import SeqcastError

log = logging.getLogger("seqcast.alerts")
AlertKind = Literal["failed", "crashed", "skipped"]
ALL_KINDS: list[AlertKind] = ["failed", "crashed", "skipped"]


class WebhookAlert(BaseModel):
    """POST a JSON body (``text`` for chat webhooks, ``alert`` with every field) to a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://\S+$", description="e.g. https://hooks.example/abc")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. an auth header")
    timeout_s: float = Field(10.0, gt=0, le=120)


class EmailAlert(BaseModel):
    """Send a plain-text e-mail through an SMTP server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_host: str
    smtp_port: int = Field(25, ge=1, le=65535)
    sender: str = Field(pattern=r"^\S+@\S+$", description="the From: address")
    to: list[str] = Field(min_length=1, description="recipients")
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(
        None, description="environment variable holding the SMTP password (never the password)"
    )
    timeout_s: float = Field(10.0, gt=0, le=120)


class AlertsConfig(BaseModel):
    """The project file's ``alerts:``: where alerts go and which events send one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: WebhookAlert | None = None
    email: EmailAlert | None = None
    events: list[AlertKind] = Field(
        default_factory=lambda: list(ALL_KINDS),
        description="events that alert: failed, crashed (runs), skipped (groups)",
    )


@dataclass(frozen=True)
class Alert:
    """One event worth a person's attention."""

    kind: AlertKind
    flow: str
    flow_run_id: str
    flow_run_name: str
    message: str
    deployment: str | None = None
    url: str | None = None
    groups: dict[str, str] = field(default_factory=dict)  # group -> why (skipped alerts)

    @property
    def subject(self) -> str:
        what = "skipped " + ", ".join(self.groups) if self.kind == "skipped" else self.kind
        return f"[seqcast] {self.flow} {what} (run {self.flow_run_name})"

    def text(self) -> str:
        lines = [self.subject, self.message]
        lines += [f"- {group}: {why}" for group, why in self.groups.items()]
        if self.url:
            lines.append(self.url)
        return "\n".join(line for line in lines if line)


@dataclass
class Delivery:
    """What happened to an alert: the channels it reached and those that failed (why)."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def deliver(alert: Alert, config: AlertsConfig) -> Delivery:
    """Send ``alert`` on every configured channel that its kind is on for."""
    done = Delivery()
    if alert.kind not in config.events:
        return done
    channels: list[tuple[str, Any]] = []
    if config.webhook is not None:
        channels.append(("webhook", lambda: _post(alert, config.webhook)))
    if config.email is not None:
        channels.append(("email", lambda: _mail(alert, config.email)))
    for name, send in channels:
        try:
            send()
            done.sent.append(name)
        except (OSError, httpx.HTTPError, smtplib.SMTPException, SeqcastError) as exc:
            done.failed[name] = f"{type(exc).__name__}: {exc}"
            log.error("alert %r not delivered by %s: %s", alert.subject, name, exc)
    return done


def _post(alert: Alert, hook: WebhookAlert | None) -> None:
    assert hook is not None
    body = {"text": alert.text(), "alert": asdict(alert)}
    response = httpx.post(hook.url, json=body, headers=hook.headers, timeout=hook.timeout_s)
    response.raise_for_status()


def _mail(alert: Alert, mail: EmailAlert | None) -> None:
    assert mail is not None
    msg = EmailMessage()
    msg["Subject"] = alert.subject
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    msg.set_content(alert.text() + "\n\n" + json.dumps(asdict(alert), indent=2))
    with smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=mail.timeout_s) as smtp:
        if mail.starttls:
            smtp.starttls()
        if mail.username:
            password = os.environ.get(mail.password_env or "")
            if password is None:
                raise SeqcastError(
                    f"alerts.email.password_env: set the variable {mail.password_env!r}"
                )
            smtp.login(mail.username, password)
        smtp.send_message(msg)
