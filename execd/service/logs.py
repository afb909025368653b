"""Log lines for people and for machines: structlog's console renderer on a terminal,
JSON lines (which journald keeps) everywhere else.

One event name per line. The component that logs is ``component`` (bound by
:func:`get`), the person who asked for something is ``operator``, and ``intent_id``,
``venue`` are added where they apply. What never changes during a run (its mode) is
logged once, at start (``daemon.started``), not bound to every line. Secrets are never
passed to a logger.

Which renderer a run gets is a pure decision (:func:`choose`), made once at start from
``--log-format``, the config's ``log.format``, whether stdout is a terminal, and the
environment; a reload cannot change it (config/keys.py declares ``log.format`` fixed).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal

import structlog

from execd.model.clock import WallClock
from execd.model.times import iso_utc

Format = Literal["auto", "console", "json"]
"""What ``--log-format`` and ``log.format`` accept."""

Renderer = Literal["console", "json"]
"""What a run's lines are: the console renderer's, or JSON objects."""

FORMATS: Final[tuple[Format, ...]] = ("auto", "console", "json")

# Set by systemd for a service (INVOCATION_ID) and when stdout goes to journald
# (JOURNAL_STREAM): journald keeps JSON lines for jq (README.md, "Operations").
_SERVICE_MANAGER: Final = ("JOURNAL_STREAM", "INVOCATION_ID")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}

_METHOD_LEVELS = {**_LEVELS, "exception": logging.ERROR, "critical": logging.CRITICAL,
                  "warn": logging.WARNING}

# The lowest level written; a reload changes it for loggers already bound too
# (a level baked into the logger class would not change for them).
_threshold = [logging.INFO]

_WALL: Final = WallClock()


def choose(option: str | None, configured: str, *, tty: bool,
           environ: Mapping[str, str]) -> Renderer:
    """The renderer a run gets: pure, so it is tested without a terminal.

    ``option`` is ``--log-format`` (None when not given) and wins over ``configured``
    (``log.format``). ``auto`` is JSON under systemd (``JOURNAL_STREAM`` or
    ``INVOCATION_ID`` set) and when stdout is not a terminal, the console renderer on
    a terminal.
    """
    wanted = option if option is not None else configured
    if wanted == "console":
        return "console"
    if wanted == "json":
        return "json"
    if wanted != "auto":
        raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, found {wanted!r}")
    if any(environ.get(name) for name in _SERVICE_MANAGER):
        return "json"
    return "console" if tty else "json"


def coloured(*, tty: bool, environ: Mapping[str, str]) -> bool:
    """Colour only on a terminal, and not when ``NO_COLOR`` is set to anything."""
    return tty and not environ.get("NO_COLOR")


def set_level(level: str) -> None:
    """Write lines at ``level`` and above from now on."""
    _threshold[0] = _LEVELS[level]


def _below_threshold(logger: Any, method: str, event: Any) -> Any:
    if _METHOD_LEVELS.get(method, logging.INFO) < _threshold[0]:
        raise structlog.DropEvent
    return event


def _stamper(digits: int) -> Any:
    """A processor adding ``timestamp``: ISO 8601 UTC with ``digits`` decimals."""
    def stamp(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        # Log times are for people reading them; the ledger never sees them.
        event["timestamp"] = iso_utc(_WALL.now(), digits=digits)
        return event
    return stamp


def _for_people(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    # On a terminal a field with no value (``reason=None``) is only noise, and the
    # fields that differ from line to line come first, after the event name; who
    # logged the line is read last. The JSON lines keep every key.
    shown = {key: value for key, value in event.items() if value is not None}
    if "component" in shown:
        shown["component"] = shown.pop("component")
    return shown


def processors(renderer: Renderer, *, colour: bool) -> list[Any]:
    """The processor chain for ``renderer``, ending in the renderer itself."""
    common: list[Any] = [
        _below_threshold,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if renderer == "json":
        # Microseconds, as the JSON lines always had.
        return [*common, _stamper(6), structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=False)]
    return [*common, _stamper(3), _for_people,
            structlog.dev.ConsoleRenderer(
                colors=colour, sort_keys=False, pad_event_to=24,
                exception_formatter=structlog.dev.plain_traceback)]


def configure(level: str = "info", option: str | None = None, configured: str = "auto",
              *, environ: Mapping[str, str] | None = None) -> Renderer:
    """Send log lines at ``level`` and above to stdout, rendered as :func:`choose` says.

    ``option`` is ``--log-format`` (None: not given), ``configured`` is ``log.format``.
    Returns the renderer chosen.
    """
    env = os.environ if environ is None else environ
    try:
        tty = sys.stdout.isatty()
    except ValueError:  # stdout closed
        tty = False
    renderer = choose(option, configured, tty=tty, environ=env)
    set_level(level)
    structlog.configure(
        processors=processors(renderer, colour=coloured(tty=tty, environ=env)),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
    return renderer


def get(component: str, **bound: Any) -> Any:
    """A logger for one component (an actor, the daemon, a venue), bound as ``component``."""
    return structlog.get_logger().bind(component=component, **bound)
