"""Structured logging: JSON lines on stdout, which journald keeps.

One event name per line; actors bind ``actor`` (and ``intent_id``, ``venue`` where
they apply). Secrets are never passed to a logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


# The lowest level written; a reload changes it for loggers already bound too
# (a level baked into the logger class would not change for them).
_threshold = [logging.INFO]


def set_level(level: str) -> None:
    """Write lines at ``level`` and above from now on."""
    _threshold[0] = _LEVELS[level]


def _below_threshold(logger: Any, method: str, event: Any) -> Any:
    if _METHOD_LEVELS.get(method, logging.INFO) < _threshold[0]:
        raise structlog.DropEvent
    return event


_METHOD_LEVELS = {**_LEVELS, "exception": logging.ERROR, "critical": logging.CRITICAL,
                  "warn": logging.WARNING}


def configure(level: str = "info") -> None:
    """Send JSON log lines at ``level`` and above to stdout."""
    set_level(level)
    structlog.configure(
        processors=[
            _below_threshold,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            # Log timestamps are for people reading journald; the ledger never sees them.
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(actor: str, **bound: Any) -> Any:
    """A logger for one actor."""
    return structlog.get_logger().bind(actor=actor, **bound)
