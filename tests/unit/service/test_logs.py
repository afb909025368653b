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
    # A terminal that says it cannot show colour codes.
    (True, {"TERM": "dumb"}, False),
    (True, {"TERM": "dumb", "NO_COLOR": ""}, False),
    (True, {"TERM": "xterm-256color"}, True),
    (True, {"TERM": ""}, True),
    (False, NO_ENV, False),
])
def test_colour_only_on_a_terminal_and_never_with_no_color_or_a_dumb_terminal(
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


# Text from outside that a log line carries: an inbox file's name, an intent's venue and
# symbol, an operator's name. Each would clear the screen, retitle the window, ring the
# bell, recolour or reorder the line if written raw.
HOSTILE_FILE = "in\x1b[2J\x07box.jsonl"
HOSTILE_SYMBOL = "BTC/\x1b]0;X\x07USDT"
HOSTILE_VENUE = "bin\x1b[31mance\x9b"
HOSTILE_OPERATOR = "ops\x1b[2J\u202e"
# What structlog's console renderer itself writes in colour: Select Graphic Rendition.
_SGR = re.compile("\x1b\\[[0-9;]*m")


class _Shown:
    """A value whose repr holds an escape sequence (the renderer writes reprs)."""

    def __repr__(self) -> str:
        return "<shown \x1b[2J>"


def hostile_lines(written: io.StringIO, *, colour: bool) -> str:
    use(written, "console", colour=colour)
    log = logs.get("reader")
    log.warning("input.ignored", file=HOSTILE_FILE, problem="not a \x1b[2J regular file")
    log.info("outcome", venue=HOSTILE_VENUE, symbol=HOSTILE_SYMBOL, status="FILLED",
             shown=_Shown())
    logs.get("daemon").info("control.done", command="halt", operator=HOSTILE_OPERATOR)
    logs.get("daemon").info("event\x1b[2J", **{"key\x07": "value"})
    try:
        raise RuntimeError(f"cannot move {HOSTILE_FILE}")  # noqa: TRY301 - it is logged
    except RuntimeError:
        log.exception("input.move_failed", file=HOSTILE_FILE)
    return written.getvalue()


def assert_drives_nothing(text: str) -> None:
    """No control character but line feeds, no C1 control, no bidirectional override."""
    bad = {c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f
           or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"}
    assert not bad, sorted(bad)


def test_text_from_outside_is_shown_escaped_by_the_console_renderer(
        written: io.StringIO) -> None:
    text = hostile_lines(written, colour=False)
    assert "\x1b" not in text
    assert_drives_nothing(text)
    # Still recognisable: each character that is not printable is shown as its escape.
    lines = text.splitlines()
    assert any("file=in\\u001b[2J\\u0007box.jsonl" in line for line in lines)
    # A value with a space is written quoted, as its repr: escaped once, not twice.
    assert any("problem='not a \\x1b[2J regular file'" in line for line in lines)
    [outcome] = [line for line in lines if " outcome " in line]
    assert "venue=bin\\u001b[31mance\\u009b" in outcome
    assert "symbol=BTC/\\u001b]0;X\\u0007USDT" in outcome
    assert "shown=<shown \\u001b[2J>" in outcome
    assert any("operator=ops\\u001b[2J\\u202e" in line for line in lines)
    assert any(" event\\u001b[2J " in line and "key\\u0007=value" in line for line in lines)
    # The traceback keeps its lines; the file name in the exception's message is escaped.
    assert "Traceback (most recent call last):" in lines
    assert "RuntimeError: cannot move in\\u001b[2J\\u0007box.jsonl" in lines


def test_in_colour_the_only_escape_sequences_are_the_renderers_own(
        written: io.StringIO) -> None:
    text = hostile_lines(written, colour=True)
    assert _SGR.search(text)  # coloured...
    # ...with the renderer's own colour codes, and nothing else that drives a terminal.
    assert_drives_nothing(_SGR.sub("", text))
    assert "venue=" in _SGR.sub("", text)
    assert "bin\\u001b[31mance\\u009b" in _SGR.sub("", text)


def test_json_lines_need_no_escaping_step(written: io.StringIO) -> None:
    """The JSON renderer escapes every control character itself."""
    use(written, "json")
    logs.get("reader").info("outcome", venue=HOSTILE_VENUE, symbol=HOSTILE_SYMBOL,
                            operator=HOSTILE_OPERATOR)
    [line] = written.getvalue().splitlines()
    assert_drives_nothing(line)
    event = json.loads(line)
    assert (event["venue"], event["symbol"], event["operator"]) == (
        HOSTILE_VENUE, HOSTILE_SYMBOL, HOSTILE_OPERATOR)
