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

The console renderer writes strings as they are, so before it every key, value and
event name is passed through :func:`execd.model.text.printable` (and a traceback line
by line): a file name, a symbol or an operator's name from outside shows its ESC as
``\\u001b`` instead of driving the operator's terminal. The JSON renderer needs no such
step: JSON escapes every control character.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from io import StringIO
from typing import Any, Final, Literal

import structlog

from execd.model.clock import WallClock
from execd.model.text import printable, printable_lines
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
    """Colour only on a terminal, and not when ``NO_COLOR`` is set to anything or the
    terminal says it is ``TERM=dumb`` (one that cannot show colour codes)."""
    return tty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


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


# Passed to the console renderer as objects, not text: it formats them itself.
_OBJECTS: Final = frozenset({"exc_info"})
# Text of several lines that the console renderer writes below the line.
_MULTILINE: Final = frozenset({"exception", "stack"})
# The renderer's columns, which it writes as ``str(value)``; every other value as its
# repr, or a string as it is unless it holds one of _QUOTED (then as its repr).
_COLUMNS: Final = frozenset({"timestamp", "level", "event", "logger", "logger_name"})
_QUOTED: Final = frozenset(" \t=\r\n\"'")


class _Printed(str):
    """Text already made printable, and shown as it is whether the renderer writes a
    value's str or its repr: escaped once, never quoted twice."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)


def _shown(key: str, value: Any) -> Any:
    """What the renderer would write for ``value``, made printable."""
    if key in _OBJECTS:
        return value
    if key in _MULTILINE and isinstance(value, str):
        return printable_lines(value)
    if key in _COLUMNS:
        text = str(value)
    elif isinstance(value, str):
        text = repr(value) if _QUOTED.intersection(value) else value
    else:
        text = repr(value)
    return _Printed(printable(text))


def _escaped(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    # Every key and value, the event name included: any of them can hold text from
    # outside (module docstring).
    return {key if key in _OBJECTS else printable(key): _shown(key, value)
            for key, value in event.items()}


def _traceback(out: Any, exc_info: Any) -> None:
    """structlog's plain traceback, each line made printable (an exception's message
    can hold a file name from outside)."""
    text = StringIO()
    structlog.dev.plain_traceback(text, exc_info)
    out.write(printable_lines(text.getvalue()))


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
    return [*common, _stamper(3), _for_people, _escaped,
            structlog.dev.ConsoleRenderer(
                colors=colour, sort_keys=False, pad_event_to=24,
                exception_formatter=_traceback)]


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
