"""``execd ctl status`` (once and ``--watch``) and /healthz, /readyz against ``execd run``.

Status must show what is waiting and what was done, with wall-clock times in ISO 8601
UTC; ``--watch`` must redraw in place on a terminal and end cleanly on Ctrl-C; the
health endpoints must never call a daemon ready that would not trade.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from execd.cli.status import CLEAR
from tests.helpers import (
    EXECD,
    ROOT,
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    outcomes,
    start_daemon,
    started,
    stop,
    wait_for,
    write_config,
)

METRICS = '\n[metrics]\nlisten = "127.0.0.1:0"\nstuck_after_ms = 2000\n'
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def address(log: Path, run: int = 1) -> str:
    """The metrics endpoint's address in the ``run``-th start logged to ``log``."""
    def found() -> list[str]:
        return [json.loads(line)["address"] for line in log.read_text().splitlines()
                if line.startswith("{") and '"metrics.listening"' in line]

    wait_for(lambda: len(found()) >= run)
    return f"http://{found()[run - 1]}"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def gauge(url: str, name: str) -> float | None:
    for line in get(url + "/metrics")[1].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def status(config: Path) -> dict[str, Any]:
    result = ctl(config, "status", "--json")
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def test_status_and_health_show_the_backlog_then_the_outcomes(tmp_path: Path) -> None:
    # A settle time longer than the test: dropped files wait in the inbox, unclaimed.
    config, process = started(tmp_path, level="info", settle=600_000, extra=METRICS)
    inbox, ledger, log = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger", \
        tmp_path / "daemon.log"
    try:
        url = address(log)
        wait_for(lambda: get(url + "/readyz") == (200, "ready\n"))
        assert get(url + "/healthz") == (200, "alive\n")
        old = drop(inbox, "0001.jsonl", lines(intent(1), intent(2, venue="stubfail"), "bad"))
        hour_ago = time.time() - 3700
        os.utime(old, (hour_ago, hour_ago))
        drop(inbox, "0002.jsonl", lines(intent(3, symbol="ETH/USDT")))
        wait_for(lambda: status(config)["inbox"]["files"] == 2)
        reply = status(config)
        assert reply["inbox"]["oldest_age_seconds"] >= 3700
        assert reply["last_outcome"] is None and reply["outcomes"] == {}
        assert reply["config"]["path"] == str(config)
        assert re.fullmatch(r"[0-9a-f]{64}", reply["config"]["file_sha256"])
        assert re.fullmatch(r"[0-9a-f]{64}", reply["config"]["outcome_settings_sha256"])
        text = ctl(config, "status").stdout
        assert re.search(r"^inbox +2 files waiting, oldest 1h 1m \(listed \S+ ago\)$", text,
                         re.MULTILINE), text
        assert re.search(rf"^execd +\S+, run, up \S+ since {ISO}$", text, re.MULTILINE), text
        assert "last outcome none since start" in text
        assert gauge(url, "execd_inbox_files") == 2
        assert (gauge(url, "execd_inbox_oldest_file_age_seconds") or 0) >= 3700
        assert gauge(url, "execd_last_outcome_time_seconds") is None
        assert gauge(url, "execd_watchdog_ok") == 1

        # Halted, the daemon is alive but not ready; reducing still trades.
        assert ctl(config, "halt", "--actor", "ops", "--reason", "test").returncode == 0
        assert get(url + "/readyz") == (503, "trading state HALTED\n")
        assert get(url + "/healthz") == (200, "alive\n")
        assert ctl(config, "reduce", "--actor", "ops", "--reason", "test").returncode == 0
        assert get(url + "/readyz") == (200, "ready\n")
        assert ctl(config, "resume", "--actor", "ops", "--reason", "test").returncode == 0
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()

    # Restarted with the usual settle time: the files are consumed.
    write_config(tmp_path, level="info", extra=METRICS)
    process = start_daemon(config, log)
    try:
        url = address(log, run=2)
        wait_for(lambda: count_outcomes(ledger) == 4)
        by_status = Counter(o["status"] for o in outcomes(ledger))
        assert by_status == {"FILLED": 2, "FAILED": 1, "QUARANTINED": 1}
        wait_for(lambda: status(config)["outcomes"] == by_status)
        wait_for(lambda: status(config)["inbox"]["files"] == 0)
        reply = status(config)
        wall = reply["last_outcome"]["wall_ns"]
        assert reply["last_outcome"]["logical_time"] == 0
        assert abs(wall / 1e9 - time.time()) < 3600  # a wall-clock time, not a logical one
        text = ctl(config, "status").stdout
        assert re.search(rf"^last outcome {ISO} \(\S+ ago\), logical time 0$", text,
                         re.MULTILINE), text
        assert "outcomes     FAILED 1, FILLED 2, QUARANTINED 1 (since start)" in text
        assert re.search(r"^inbox +0 files waiting \(listed \S+ ago\)$", text, re.MULTILINE)
        assert re.search(r"^  binance +paper +paper +ready$", text, re.MULTILINE), text
        assert re.search(r"^  binance +BTC/USDT +0\.5 +mark -$", text, re.MULTILINE), text
        assert gauge(url, "execd_last_outcome_time_seconds") == wall / 1e9
        assert gauge(url, "execd_inbox_files") == 0
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()


def read_until(fd: int, done: Any, timeout: float = 30.0) -> bytes:
    """Read from ``fd`` until ``done(everything read)`` or the timeout fails the test."""
    out = b""
    deadline = time.monotonic() + timeout
    while not done(out):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; read {out!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the pty's other side closed
                chunk = b""
            if not chunk:
                break
            out += chunk
    return out


def test_watch_redraws_in_place_on_a_terminal_and_ctrl_c_ends_it(tmp_path: Path) -> None:
    config, process = started(tmp_path)
    try:
        wait_for(lambda: ctl(config, "status").returncode == 0)
        pid, fd = pty.fork()
        if pid == 0:  # the child: execd on a real pseudo-terminal
            try:
                os.chdir(ROOT)
                os.execv(EXECD[0], [*EXECD, "ctl", "status", "--watch", "0.2",  # noqa: S606
                                    "--config", str(config)])
            finally:
                os._exit(127)
        try:
            out = read_until(fd, lambda seen: seen.count(CLEAR.encode()) >= 3)
            # Each refresh starts at home and clears: the same screen, redrawn.
            blocks = out.split(CLEAR.encode())[1:]
            assert len(blocks) >= 3
            for block in blocks[:2]:
                text = block.decode()
                assert text.startswith("every 200ms, "), text
                assert "trading      ACTIVE" in text
            os.kill(pid, signal.SIGINT)
            read_until(fd, lambda seen: False, timeout=30)  # to the end of its output
        finally:
            _, code = os.waitpid(pid, 0)
            os.close(fd)
        assert os.waitstatus_to_exitcode(code) == 0
    finally:
        assert stop(process) == 0


def test_watch_off_a_terminal_prints_blocks_and_exits_1_once_the_daemon_is_gone(
        tmp_path: Path) -> None:
    config, process = started(tmp_path)
    try:
        wait_for(lambda: ctl(config, "status").returncode == 0)
        watch = subprocess.Popen([*EXECD, "ctl", "status", "--watch", "0.1", "--config",
                                  str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 cwd=ROOT)
        assert watch.stdout is not None
        out = read_until(watch.stdout.fileno(), lambda seen: seen.count(b"\nevery ") >= 2)
        assert CLEAR.encode() not in out
        blocks = out.decode().split("\n\n")
        assert blocks[0].startswith("every 100ms, ") and blocks[1].startswith("every 100ms, ")
        assert "trading      ACTIVE" in blocks[0]
    finally:
        assert stop(process) == 0
    _, err = watch.communicate(timeout=60)
    assert watch.returncode == 1
    assert "no daemon is listening on" in err.decode()


def test_readyz_is_503_until_the_live_venue_is_ready(tmp_path: Path) -> None:
    """A live venue that cannot connect: alive, not ready, and status says which venue."""
    from tests.live import write_live_config

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    config = write_live_config(tmp_path, f"http://127.0.0.1:{port}", level="info",
                               extra=METRICS)
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log)
    try:
        url = address(log)
        wait_for(lambda: "venue binance cannot start" in get(url + "/readyz")[1])
        code, body = get(url + "/readyz")
        assert code == 503
        assert body.startswith("starting: recovery or the venues' reconciliation is not done; "
                               "venue binance cannot start"), body
        assert get(url + "/healthz") == (200, "alive\n")
        text = ctl(config, "status").stdout
        assert re.search(r"^ready +no;", text, re.MULTILINE), text
        assert re.search(r"^  binance +live +ccxt +cannot start", text, re.MULTILINE), text
        assert re.search(r"^  paper +paper +paper +ready$", text, re.MULTILINE), text
        assert "inbox        0 files waiting (not listed yet)" in text
    finally:
        assert stop(process) == 0
