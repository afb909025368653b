"""Log lines: which renderer a run gets (a pure choice), and what each renderer writes.

The real terminal, the pipe and systemd's environment are exercised end to end in
tests/process/test_logs_process.py; here the choice is a table and the rendering is
structlog's own chain writing into a buffer.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from execd.app.reload import needs_restart
from execd.config import keys
from execd.service import logs

NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize(("option", "configured", "tty", "environ", "expected"), [
    # auto: a terminal gets the console renderer, anything else JSON.
    (None, "auto", True, NO_ENV, "console"),
    (None, "auto", False, NO_ENV, "json"),
    # Under systemd stdout may even be a terminal (StandardOutput=tty): still JSON.
    (None, "auto", True, {"JOURNAL_STREAM": "8:12345"}, "json"),
    (None, "auto", True, {"INVOCATION_ID": "0f1e2d3c"}, "json"),
    (None, "auto", True, {"JOURNAL_STREAM": ""}, "console"),
    # The config's choice, when no option is given.
    (None, "json", True, NO_ENV, "json"),
    (None, "console", False, {"INVOCATION_ID": "x"}, "console"),
    # The option wins over the config, whatever that says.
    ("json", "console", True, NO_ENV, "json"),
    ("console", "json", False, NO_ENV, "console"),
    ("auto", "json", True, NO_ENV, "console"),
    ("auto", "console", False, NO_ENV, "json"),
])
def test_the_renderer_is_chosen_from_option_config_terminal_and_environment(
        option: str | None, configured: str, tty: bool, environ: dict[str, str],
        expected: str) -> None:
    assert logs.choose(option, configured, tty=tty, environ=environ) == expected


def test_an_unknown_format_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="expected one of auto, console, json, found 'xml'"):
        logs.choose(None, "xml", tty=True, environ=NO_ENV)


@pytest.mark.parametrize(("tty", "environ", "expected"), [
    (True, NO_ENV, True),
    (True, {"NO_COLOR": "1"}, False),
    (True, {"NO_COLOR": ""}, True),  # set but empty asks for nothing
    (False, NO_ENV, False),
])
def test_colour_only_on_a_terminal_and_never_with_no_color(
        tty: bool, environ: dict[str, str], expected: bool) -> None:
    assert logs.coloured(tty=tty, environ=environ) is expected


def test_the_log_format_needs_a_restart() -> None:
    assert not keys.BY_PATH["log.format"].reloadable
    assert needs_restart(["log.format"]) == [
        "log.format: the log format is chosen at start-up"]


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """Log lines written into a buffer; structlog's configuration restored after."""
    saved = structlog.get_config()
    logs.set_level("info")  # an earlier test's CLI run may have left a higher threshold
    buffer = io.StringIO()
    yield buffer
    structlog.configure(**saved)
    logs.set_level("info")


def use(buffer: io.StringIO, renderer: logs.Renderer, *, colour: bool = False) -> None:
    structlog.configure(processors=logs.processors(renderer, colour=colour),
                        logger_factory=structlog.WriteLoggerFactory(file=buffer),
                        cache_logger_on_first_use=False)


def test_json_lines_keep_every_key_with_the_component_that_logged(
        written: io.StringIO) -> None:
    use(written, "json")
    logs.get("daemon").info("control.done", command="halt", operator="alice", reason=None)
    [line] = written.getvalue().splitlines()
    event: dict[str, Any] = json.loads(line)
    assert list(event) == ["component", "command", "operator", "reason", "event", "level",
                           "timestamp"]
    assert (event["component"], event["operator"], event["event"]) == (
        "daemon", "alice", "control.done")
    assert "actor" not in event
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["timestamp"])


def test_the_console_line_is_time_level_event_then_fields_then_component(
        written: io.StringIO) -> None:
    use(written, "console")
    logs.get("venue", venue="binance").warning("order.send_failed", attempt=2, detail=None)
    [line] = written.getvalue().splitlines()
    stamp, rest = line.split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert re.fullmatch(r"\[warning\s*\] order\.send_failed\s+venue=binance attempt=2 "
                        r"component=venue", rest), rest
    assert "\x1b[" not in line


def test_the_console_line_is_coloured_only_when_asked(written: io.StringIO) -> None:
    use(written, "console", colour=True)
    logs.get("daemon").info("daemon.started", mode="run")
    assert "\x1b[" in written.getvalue()


def test_a_level_below_the_threshold_is_dropped_by_either_renderer(
        written: io.StringIO) -> None:
    for renderer in ("json", "console"):
        use(written, renderer)  # type: ignore[arg-type]
        logs.set_level("warning")
        logs.get("daemon").info("ledger.recovered")
        logs.get("daemon").warning("lakehouse.created")
    assert [("lakehouse.created" in line) for line in written.getvalue().splitlines()] == [
        True, True]


def test_an_exception_is_written_with_its_traceback_by_either_renderer(
        written: io.StringIO) -> None:
    for renderer in ("json", "console"):
        use(written, renderer)  # type: ignore[arg-type]
        try:
            raise RuntimeError("boom")  # noqa: TRY301 - the traceback is what is logged
        except RuntimeError:
            logs.get("daemon").exception("daemon.crashed")
    text = written.getvalue()
    assert text.count("Traceback (most recent call last)") == 2
    assert text.count("RuntimeError: boom") == 2
