"""Log lines as a person at a terminal and a machine reading a pipe see them.

``execd run`` of the shipped samples, with the shipped config, runs on a real
pseudo-terminal (its stdout is the pty's slave), and ``execd replay`` on a pipe; ``execd
run`` is driven through ``execd ctl`` for the keys that name who logged a line and who
asked for it.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers import EXECD, ROOT, ctl, records, started, stop, wait_for

SAMPLES = ROOT / "config" / "samples"
ANSI = "\x1b["
# The shipped samples' lines that get an outcome (README, "Your first ten minutes").
SAMPLE_OUTCOMES = 11
# Scrubbed from every child's environment: each test sets what it means to test.
_ENV_CHOICES = ("JOURNAL_STREAM", "INVOCATION_ID", "NO_COLOR", "FORCE_COLOR", "TERM")


def shipped(tmp_path: Path, extra: str = "") -> Path:
    """The shipped config, its policy file and sample lakehouse context in ``tmp_path``
    (its relative paths are taken from there), plus ``extra`` appended to the ``[log]`` table."""
    text = (ROOT / "config" / "execd.toml").read_text()
    if extra:
        text = text.replace("[log]\n", f"[log]\n{extra}\n", 1)
    config = tmp_path / "execd.toml"
    config.write_text(text)
    (tmp_path / "config").mkdir(exist_ok=True)
    shutil.copy(ROOT / "config" / "policies.toml", tmp_path / "config" / "policies.toml")
    lakehouse = tmp_path / "var" / "lakehouse"
    for part in ("audit", "market"):
        shutil.copytree(SAMPLES / part, lakehouse / part)
    return config


def environment(**wanted: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_CHOICES}
    # The worktree's execd, run from the temporary directory the config lives in.
    env["PYTHONPATH"] = str(ROOT)
    env.update(wanted)
    return env


def replay_command(*options: str) -> list[str]:
    return [*EXECD, "replay", "--config", "execd.toml", "--ledger", "ledger", *options,
            *(str(p) for p in sorted(SAMPLES.glob("*.jsonl")))]


def on_a_terminal(tmp_path: Path, *options: str, **env: str) -> list[str]:
    """``execd run`` with its stdout on a pseudo-terminal, the samples in its inbox: the
    lines it wrote there until every sample line had its outcome and Ctrl-C drained it.

    ``run``, not ``replay``: replay at a terminal logs only warnings (it shows progress
    and a summary instead, see test_replay_progress), and these tests are about the lines.
    """
    inbox = tmp_path / "var" / "lakehouse" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for sample in sorted(SAMPLES.glob("*.jsonl")):
        shutil.copy(sample, inbox / sample.name)
    master, slave = pty.openpty()
    with open(tmp_path / "stderr", "wb") as err:
        process = subprocess.Popen([*EXECD, "run", "--config", "execd.toml", *options],
                                   stdin=subprocess.DEVNULL, stdout=slave, stderr=err,
                                   cwd=tmp_path, env=environment(**env))
    os.close(slave)
    output = bytearray()
    interrupted = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not interrupted and output.count(b"outcome") >= SAMPLE_OUTCOMES:
                process.send_signal(signal.SIGINT)  # every sample line has its outcome
                interrupted = True
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the slave has closed it
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    assert process.wait(timeout=60) == 0, (tmp_path / "stderr").read_text()
    assert interrupted, output[-2000:]
    # The terminal's line discipline writes \r\n.
    return output.decode().replace("\r\n", "\n").splitlines()


def on_a_pipe(tmp_path: Path, *options: str, **env: str) -> list[str]:
    """``execd replay`` with its stdout on a pipe: the lines it wrote there."""
    result = subprocess.run(replay_command(*options), capture_output=True, text=True,
                            cwd=tmp_path, env=environment(**env), timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def json_events(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as one JSON object: fails on any line that is not one."""
    events = [json.loads(line) for line in lines]
    assert events and all(isinstance(e, dict) for e in events)
    return events


def test_a_terminal_gets_the_console_renderer_event_first_in_colour(tmp_path: Path) -> None:
    shipped(tmp_path)
    lines = on_a_terminal(tmp_path)
    assert not any(line.lstrip().startswith("{") for line in lines), lines[:3]
    assert all(ANSI in line for line in lines)
    plain = [strip_ansi(line) for line in lines]
    # Time, level, the event name, then the fields; the component last.
    [(stamp, level, fields)] = [(p[0], p[1], p[3]) for p in map(parts, plain)
                                if p[2] == "daemon.started"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp) and level == "info"
    assert fields[0] == "mode=run" and fields[-1] == "component=daemon"
    assert any(" outcome " in line and "status=FILLED" in line for line in plain)
    # A quarantined sample line: no venue to name, so no "venue=None" either.
    quarantined = [line for line in plain if "status=QUARANTINED" in line]
    assert quarantined and all("=None" not in line for line in quarantined)
    assert records(tmp_path / "var" / "ledger")[-1]["kind"] == "stop"


def test_no_color_removes_the_colour_on_a_terminal(tmp_path: Path) -> None:
    shipped(tmp_path)
    lines = on_a_terminal(tmp_path, NO_COLOR="1")
    assert lines and not any(ANSI in line for line in lines)
    assert "daemon.started" in [parts(line)[2] for line in lines]


def test_a_pipe_gets_json_lines_and_mode_only_on_the_start_line(tmp_path: Path) -> None:
    shipped(tmp_path)
    events = json_events(on_a_pipe(tmp_path))
    assert [e["event"] for e in events if "mode" in e] == ["daemon.started"]
    [start] = [e for e in events if e["event"] == "daemon.started"]
    assert (start["mode"], start["clock"], start["seq"]) == ("replay", "logical", 1)
    assert all("component" in e and "actor" not in e for e in events)
    assert {e["component"] for e in events} >= {"daemon", "ledger"}
    outcome = next(e for e in events if e["event"] == "outcome")
    assert list(outcome)[-3:] == ["event", "level", "timestamp"]


def test_log_format_json_on_a_terminal_and_the_option_wins_over_the_config(
        tmp_path: Path) -> None:
    shipped(tmp_path, 'format = "console"')
    events = json_events(on_a_terminal(tmp_path, "--log-format", "json"))
    assert "daemon.started" in {e["event"] for e in events}
    assert not any(ANSI in json.dumps(e) for e in events)


def test_the_config_chooses_when_no_option_is_given(tmp_path: Path) -> None:
    shipped(tmp_path, 'format = "console"')
    lines = on_a_pipe(tmp_path)
    # Console lines on a pipe, and no colour: stdout is not a terminal.
    assert lines and not any(line.startswith("{") or ANSI in line for line in lines)
    assert any(" daemon.started " in line for line in lines)


def test_under_systemd_a_terminal_still_gets_json(tmp_path: Path) -> None:
    shipped(tmp_path)
    events = json_events(on_a_terminal(tmp_path, INVOCATION_ID="5e1f0c2a9b8d4e7f"))
    assert "daemon.stopped" in {e["event"] for e in events}


def test_a_bad_log_format_is_refused_with_the_allowed_values(tmp_path: Path) -> None:
    config = shipped(tmp_path, 'format = "xml"')
    result = subprocess.run(replay_command(), capture_output=True, text=True, cwd=tmp_path,
                            env=environment(), timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr == (f"{config.name}: log.format: expected one of 'auto', "
                             "'console', 'json', found 'xml'\n")
    option = subprocess.run([*replay_command()[:-2], "--log-format", "xml", "x"],
                            capture_output=True, text=True, cwd=tmp_path, env=environment(),
                            timeout=120, check=False)
    assert option.returncode == 2
    [error] = [line for line in option.stderr.splitlines() if "invalid choice: 'xml'" in line]
    assert all(name in error for name in ("auto", "console", "json"))


def test_component_and_operator_in_a_halt_and_a_reload_through_ctl(tmp_path: Path) -> None:
    path, process = started(tmp_path, level="info")
    log = tmp_path / "daemon.log"
    try:
        assert ctl(path, "halt", "--actor", "alice", "--reason", "incident").returncode == 0
        assert ctl(path, "resume", "--actor", "alice", "--reason", "over").returncode == 0
        path.write_text(path.read_text().replace('outcomes = "summary"', 'outcomes = "each"'))
        assert ctl(path, "reload", "--actor", "bob", "--reason", "more lines").returncode == 0
        assert ctl(path, "reload", "--actor", "carol", "--reason", "again").returncode == 0
        wait_for(lambda: "config.reload_unchanged" in log.read_text())
    finally:
        assert stop(process, signal.SIGTERM) == 0
    events = json_events(log.read_text().splitlines())
    done = [(e["component"], e["command"], e["operator"]) for e in events
            if e["event"] == "control.done"]
    assert done == [("daemon", "halt", "alice"), ("daemon", "resume", "alice")]
    [reloaded] = [e for e in events if e["event"] == "config.reloaded"]
    assert (reloaded["component"], reloaded["operator"], reloaded["changed"]) == (
        "daemon", "bob", ["log.outcomes"])
    [unchanged] = [e for e in events if e["event"] == "config.reload_unchanged"]
    assert (unchanged["component"], unchanged["operator"]) == ("daemon", "carol")
    assert not [e for e in events if "actor" in e]
    assert [e["event"] for e in events if "mode" in e] == ["daemon.started"]
    # The ledger's records keep their own field: the operator in a record is "actor".
    states = [r["body"] for r in records(tmp_path / "ledger") if r["kind"] == "trading_state"]
    assert [(b["state"], b["actor"]) for b in states] == [("HALTED", "alice"),
                                                          ("ACTIVE", "alice")]


def strip_ansi(line: str) -> str:
    """``line`` without its colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def parts(line: str) -> tuple[str, str, str, list[str]]:
    """A console line without colour: its time, level, event name and other fields."""
    found = re.fullmatch(r"(\S+) \[(\w+)\s*\] (\S+)\s*(.*)", line)
    assert found, line
    return found[1], found[2], found[3], found[4].split()

