"""The exceptions users can fix, and how flows and the CLI treat them."""

from __future__ import annotations

import logging
from typing import Any

from db.engine import DatabaseError, DatabaseUnreachable
from forecasting.errors import ArtifactError, PanelError


class SeqcastError(RuntimeError):
    """A problem the user can fix (bad file, unknown series, missing model, bad setting)."""


USER_ERRORS: tuple[type[Exception], ...] = (SeqcastError, DatabaseError, PanelError, ArtifactError)


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry transient failures, never a user's mistake."""
    try:
        state.result()
    except DatabaseUnreachable:
        return True  # a server restarting comes back; the retry delays give it time
    except USER_ERRORS:
        return False
    except Exception:
        return True
    return False


class _DropUserTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], USER_ERRORS):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_tracebacks() -> None:
    """Keep Prefect's run logs to the one-line message for user errors (tracebacks are for bugs)."""
    flt = _DropUserTracebacks()
    loggers = [
        logging.getLogger(n)
        for n in list(logging.root.manager.loggerDict)
        if n.startswith("prefect")
    ]
    for logger in [logging.getLogger("prefect"), *loggers]:
        for handler in logger.handlers:
            if not any(isinstance(f, _DropUserTracebacks) for f in handler.filters):
                handler.addFilter(flt)
