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


def configure(level: str = "info") -> None:
    """Send JSON log lines at ``level`` and above to stdout."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            # Log timestamps are for people reading journald; the ledger never sees them.
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(actor: str, **bound: Any) -> Any:
    """A logger for one actor."""
    return structlog.get_logger().bind(actor=actor, **bound)
