"""``execd run`` under a service manager: notify, watchdog, reload, drain, plane switch.

The service manager's side is a real AF_UNIX datagram socket that these tests bind
and name in NOTIFY_SOCKET, as systemd does; the daemon is the real process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from execd.model import reasons
from tests.helpers import (
    EXECD,
    ROOT,
    control_socket,
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    outcomes,
    records,
    replay,
    stop,
    verify,
    wait_for,
    write_config,
)

# The watchdog time the tests ask for: pings every 0.2 s, an actor is stuck after 0.3 s.
WATCHDOG_USEC = 600_000


class Manager:
    """The service manager's end of the notify socket: every datagram, with its time."""

    def __init__(self, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"execd-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.path = Path(tempfile.gettempdir()) / f"execd-notify-{uuid.uuid4().hex[:12]}"
            self.sock.bind(str(self.path))
            self.address = str(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def seen(self, key: str) -> list[tuple[float, str]]:
        """(time, value) of every datagram carrying ``key``."""
        with self._lock:
            return [(t, m[key]) for t, m in self.messages if key in m]

    def statuses(self) -> list[str]:
        return [value for _, value in self.seen("STATUS")]

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=2)
        self.sock.close()
        if hasattr(self, "path"):
            self.path.unlink(missing_ok=True)


def start(config_path: Path, log: Path, manager: Manager | None = None,
          watchdog_usec: int = WATCHDOG_USEC,
          command: list[str] | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if manager is not None:
        env["NOTIFY_SOCKET"] = manager.address
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    handle = open(log, "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen([*(command or EXECD), "run", "--config", str(config_path)],
                            stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def log_events(log: Path) -> list[dict[str, Any]]:
    events = []
    # Only complete lines: the daemon may be halfway through writing the last one.
    for line in log.read_text().split("\n")[:-1]:
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def events_named(log: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in log_events(log) if e.get("event") == name]



@pytest.fixture
def manager() -> Any:
    found = Manager()
    yield found
    found.close()


# ---------------------------------------------------------------- notify protocol


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_status_watchdog_and_stopping_reach_the_manager(tmp_path: Path,
                                                              abstract: bool) -> None:
    manager = Manager(abstract=abstract)
    try:
        config = write_config(tmp_path, level="info")
        ledger = tmp_path / "ledger"
        process = start(config, tmp_path / "log", manager)
        wait_for(lambda: manager.seen("READY"))
        ready_at = manager.seen("READY")[0][0]
        # READY comes after recovery: the start record is durable by then.
        assert [r["kind"] for r in records(ledger)][-1] == "start"
        assert any(s.startswith("recovering the ledger") for s in manager.statuses())
        drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(*(intent(n) for n in range(20))))
        wait_for(lambda: count_outcomes(ledger) == 20)
        wait_for(lambda: len([t for t, _ in manager.seen("WATCHDOG") if t > ready_at]) >= 5)
        wait_for(lambda: any("running; trading ACTIVE; ledger seq" in s
                             for s in manager.statuses()))
        assert stop(process) == 0
        stopping = manager.seen("STOPPING")
        assert len(stopping) == 1
        assert any(s.startswith("draining after SIGTERM") for s in manager.statuses())
        assert all(value == "1" for _, value in manager.seen("WATCHDOG"))
        assert manager.seen("READY") == [(ready_at, "1")]
    finally:
        manager.close()


# ``execd`` whose reads of market/regime.json hang while the file named by
# EXECD_TEST_STALL exists, as a read from a hung mount would: a storage fault
# injected into the real daemon process. A read that hangs first makes STALL.held, so a
# test knows the read is stuck (not merely about to be).
STALLING = [sys.executable, "-c", """
import os, sys, time
import execd.reader.context
from execd.cli.main import main
read = execd.reader.context.read_regular
def stalled(path, *args):
    stall = os.environ["EXECD_TEST_STALL"]
    if os.path.basename(path) == "regime.json" and os.path.exists(stall):
        open(stall + ".held", "w").close()
    while os.path.basename(path) == "regime.json" and os.path.exists(stall):
        time.sleep(0.01)
    return read(path, *args)
execd.reader.context.read_regular = stalled
sys.exit(main(sys.argv[1:]))
"""]


def test_a_stuck_actor_stops_the_watchdog_until_it_moves_again(
        tmp_path: Path, manager: Manager, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader blocks reading market/regime.json (a hung mount): the rest of the
    daemon is alive, but no WATCHDOG=1 goes out."""
    config = write_config(tmp_path, level="info")
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    stall = tmp_path / "stall"
    stall.touch()
    monkeypatch.setenv("EXECD_TEST_STALL", str(stall))
    process = start(config, log, manager, command=STALLING)
    wait_for(lambda: manager.seen("READY"))
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(intent(1)))
    wait_for(lambda: any(s.startswith("STUCK: reader") for s in manager.statuses()))
    stuck_at = time.monotonic()
    time.sleep(1.0)  # five ping periods
    assert not [t for t, _ in manager.seen("WATCHDOG") if t > stuck_at]
    assert process.poll() is None
    withheld = events_named(log, "watchdog.withheld")
    assert len(withheld) == 1 and list(withheld[0]["stuck"]) == ["reader"]
    # The file gives way: the reader moves, the watchdog resumes, the intent fills.
    stall.unlink()
    wait_for(lambda: count_outcomes(ledger) == 1)
    resumed_at = time.monotonic()
    wait_for(lambda: [t for t, _ in manager.seen("WATCHDOG") if t > resumed_at])
    assert events_named(log, "watchdog.resumed")
    assert outcomes(ledger)[0]["status"] == "FILLED"
    assert stop(process) == 0


def test_no_notify_socket_means_no_notifications_and_the_same_ledger(tmp_path: Path) -> None:
    config = write_config(tmp_path, level="info")
    process = start(config, tmp_path / "log")
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(intent(1)))
    wait_for(lambda: count_outcomes(tmp_path / "ledger") == 1)
    assert stop(process) == 0
    assert events_named(tmp_path / "log", "daemon.ready")


# ---------------------------------------------------------------- reload

LIMITS = 'signatures = "none"\n\n[risk.limits]\nmax_order_notional = "{cap}"\n'


def priced(n: int, quantity: str) -> dict[str, Any]:
    return intent(n, quantity=quantity, reference_price="100")


def test_reload_applies_new_limits_and_records_them(tmp_path: Path, manager: Manager) -> None:
    config = write_config(tmp_path, level="info", outcomes="each", risk=LIMITS.format(cap=1000))
    ledger, log, inbox = tmp_path / "ledger", tmp_path / "log", tmp_path / "lakehouse" / "inbox"
    process = start(config, log, manager)
    wait_for(lambda: manager.seen("READY"))
    drop(inbox, "a.jsonl", lines(priced(1, "5")))
    wait_for(lambda: count_outcomes(ledger) == 1)
    # A lower cap and a quieter log, by SIGHUP.
    write_config(tmp_path, level="warning", outcomes="each", risk=LIMITS.format(cap=200))
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: any(r["kind"] == "config" for r in records(ledger)))
    wait_for(lambda: len(manager.seen("READY")) == 2)
    assert manager.seen("RELOADING")
    assert any(s.startswith("config reloaded (2 keys changed)") for s in manager.statuses())
    change = next(r for r in records(ledger) if r["kind"] == "config")["body"]
    assert change["changed"] == ["log.level", "risk.limits.max_order_notional"]
    assert change["actor"] == "SIGHUP" and change["reason"] == "signal SIGHUP"
    assert change["values"] == {"log.level": ["info", "warning"],
                                "risk.limits.max_order_notional": ["1000", "200"]}
    drop(inbox, "b.jsonl", lines(priced(2, "5"), priced(3, "1")))
    wait_for(lambda: count_outcomes(ledger) == 3)
    results = {o["intent_id"][-1]: (o["status"], o.get("reason")) for o in outcomes(ledger)}
    assert results == {"1": ("FILLED", None),
                       "2": ("REJECTED", reasons.RISK_NOTIONAL_EXCEEDED),
                       "3": ("FILLED", None)}
    # The new level applies to loggers made before the reload: no per-outcome info lines.
    assert len(events_named(log, "outcome")) == 1
    # The same through the control socket: nothing changed this time.
    answer = ctl(config, "reload", "--actor", "ops", "--reason", "check")
    assert answer.returncode == 0 and "nothing changed" in answer.stdout
    # And a change through it keeps the operator's reason.
    write_config(tmp_path, level="warning", outcomes="each", risk=LIMITS.format(cap=300))
    answer = ctl(config, "reload", "--actor", "ops", "--reason", "desk raised the cap")
    assert answer.returncode == 0, answer.stderr
    change = [r for r in records(ledger) if r["kind"] == "config"][-1]["body"]
    assert (change["actor"], change["reason"]) == ("ops", "desk raised the cap")
    assert change["values"] == {"risk.limits.max_order_notional": ["200", "300"]}
    assert stop(process) == 0
    verify(ledger)


@pytest.mark.parametrize(("mistake", "expected"), [
    ("syntax", "valid TOML"),
    ("value", "risk.limits.max_order_notional: expected"),
    ("restart", "daemon.ledger_dir: paths and polling are fixed at start-up (needs a restart"),
    ("plane", "venues.alpaca.plane: venues, planes, adapters"),
])
def test_a_bad_reload_is_refused_and_the_old_config_keeps_running(
        tmp_path: Path, manager: Manager, mistake: str, expected: str) -> None:
    config = write_config(tmp_path, level="info", outcomes="each", risk=LIMITS.format(cap=1000))
    good = config.read_text()
    ledger, log, inbox = tmp_path / "ledger", tmp_path / "log", tmp_path / "lakehouse" / "inbox"
    process = start(config, log, manager)
    wait_for(lambda: manager.seen("READY"))
    bad = {
        "syntax": good + "\n[risk.limits\n",
        "value": good.replace('max_order_notional = "1000"', 'max_order_notional = "lots"'),
        "restart": good.replace(str(ledger), str(tmp_path / "elsewhere")),
        "plane": good.replace('[venues.alpaca]\nplane = "paper"',
                              '[venues.alpaca]\nplane = "live"\nadapter = "stub"'),
    }[mistake]
    assert bad != good
    # Intents in flight while the reload is refused: none is lost.
    drop(inbox, "a.jsonl", lines(*(priced(n, "5") for n in range(200))))
    config.write_text(bad)
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: events_named(log, "config.reload_refused"))
    refused = events_named(log, "config.reload_refused")[0]
    assert any(expected in problem for problem in refused["problems"]), refused
    wait_for(lambda: any(s.startswith("RELOAD REFUSED") for s in manager.statuses()))
    answer = ctl(config, "reload", "--actor", "ops", "--reason", "again",
                 "--socket", str(control_socket(tmp_path)))
    assert answer.returncode == 1 and expected in answer.stderr
    # The old limits still decide: 500 <= 1000 fills.
    drop(inbox, "b.jsonl", lines(priced(500, "5")))
    wait_for(lambda: count_outcomes(ledger) == 201)
    assert Counter(o["status"] for o in outcomes(ledger)) == {"FILLED": 201}
    assert not [r for r in records(ledger) if r["kind"] == "config"]
    assert process.poll() is None
    assert stop(process) == 0
    verify(ledger)


@pytest.mark.parametrize(("replacement", "expected"), [
    ("fifo", "(file): expected a regular TOML file, found a FIFO"),
    ("deep", "(syntax): expected valid TOML, found arrays or tables nested too deep to read"),
])
def test_a_config_replaced_by_a_fifo_or_deep_nesting_is_refused_and_the_loop_goes_on(
        tmp_path: Path, manager: Manager, replacement: str, expected: str) -> None:
    """The reload reads the file off the event loop, and only a regular file: a FIFO
    used to block the loop in open() for good; deep nesting raised RecursionError."""
    config = write_config(tmp_path, level="info", outcomes="each", risk=LIMITS.format(cap=1000))
    good = config.read_text()
    ledger, log, inbox = tmp_path / "ledger", tmp_path / "log", tmp_path / "lakehouse" / "inbox"
    socket_path = str(control_socket(tmp_path))
    process = start(config, log, manager)
    wait_for(lambda: manager.seen("READY"))
    config.unlink()
    if replacement == "fifo":
        os.mkfifo(config)
    else:
        config.write_text(good + "\n[x]\ny = " + "[" * 5000 + "]" * 5000 + "\n")
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: events_named(log, "config.reload_refused") or process.poll() is not None)
    assert process.poll() is None
    refused = events_named(log, "config.reload_refused")[0]
    assert refused["problems"] == [f"{config}: {expected}"]
    # The loop still answers, and intake goes on under the old config.
    status = ctl(config, "status", "--socket", socket_path)
    assert status.returncode == 0, status.stderr
    drop(inbox, "a.jsonl", lines(priced(1, "5")))
    wait_for(lambda: count_outcomes(ledger) == 1)
    assert outcomes(ledger)[0]["status"] == "FILLED"
    again = ctl(config, "reload", "--actor", "ops", "--reason", "again", "--socket", socket_path)
    assert again.returncode == 1 and expected in again.stderr
    assert stop(process) == 0
    verify(ledger)


# ---------------------------------------------------------------- stopping


def test_two_sigterms_mid_file_drain_once_and_lose_nothing(tmp_path: Path,
                                                            manager: Manager) -> None:
    """A second SIGTERM during a drain never loses or repeats a line: the restart gives each line
    exactly one outcome.
    """
    config = write_config(tmp_path, level="info", items=64, chunk=8192, commit_records=256)
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    total = 30_000
    drop(tmp_path / "lakehouse" / "inbox", "big.jsonl",
         lines(*(intent(n) for n in range(total))))
    process = start(config, log, manager)
    wait_for(lambda: count_outcomes(ledger) > 500)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    verify(ledger)
    assert records(ledger)[-1]["body"]["reason"] == "signal SIGTERM"
    assert len(manager.seen("STOPPING")) == 1
    first = count_outcomes(ledger)
    assert first < total
    process = start(config, log)
    wait_for(lambda: count_outcomes(ledger) == total)
    assert stop(process) == 0
    verify(ledger)
    done = Counter(o["source"][1] for o in outcomes(ledger))
    assert set(done) == set(range(1, total + 1)) and max(done.values()) == 1


# ---------------------------------------------------------------- planes


SWITCHED = """
[venues.alpaca]
plane = "live"
adapter = "stub"
{confirm}
"""


def test_moving_a_venue_from_paper_to_live_needs_confirm_live(tmp_path: Path) -> None:
    config = write_config(tmp_path, level="info")
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    process = start(config, log)
    wait_for(lambda: events_named(log, "daemon.ready"))
    assert stop(process) == 0
    assert records(ledger)[0]["body"]["planes"]["alpaca"] == "paper"
    text = config.read_text()
    paper = '[venues.alpaca]\nplane = "paper"\n'
    assert paper in text
    config.write_text(text.replace(paper, SWITCHED.format(confirm="")))
    refused = subprocess.run([*EXECD, "run", "--config", str(config)], capture_output=True,
                             text=True, cwd=ROOT, timeout=60)
    assert refused.returncode == 2
    assert (f"{config}: venues.alpaca.confirm_live: expected true to move venue alpaca from "
            "the paper plane (ledger record #1, the last start that named it) to the live "
            "plane, found it unset") in refused.stderr
    assert len(records(ledger)) == 2  # start, stop: nothing written by the refused start
    # A start that leaves the venue out does not erase its paper past.
    config.write_text(text.replace(paper, ""))
    process = start(config, log)
    wait_for(lambda: len(events_named(log, "daemon.ready")) == 2)
    assert stop(process) == 0
    config.write_text(text.replace(paper, SWITCHED.format(confirm="")))
    again = subprocess.run([*EXECD, "run", "--config", str(config)], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 2 and "venues.alpaca.confirm_live" in again.stderr
    config.write_text(text.replace(paper, SWITCHED.format(confirm="confirm_live = true")))
    process = start(config, log)
    wait_for(lambda: len(events_named(log, "daemon.ready")) == 3)
    assert stop(process) == 0
    starts = [r["body"] for r in records(ledger) if r["kind"] == "start"]
    assert starts[-1]["planes"]["alpaca"] == "live"
    planes = {(e["venue"], e["plane"], e["adapter"]) for e in events_named(log, "venue.plane")}
    assert ("alpaca", "live", "stub") in planes and ("alpaca", "paper", "paper") in planes
    # Once recorded live, the key is no longer needed.
    config.write_text(text.replace(paper, SWITCHED.format(confirm="")))
    process = start(config, log)
    wait_for(lambda: len(events_named(log, "daemon.ready")) == 4)
    assert stop(process) == 0


# ---------------------------------------------------------------- metrics


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_scraped_over_http_from_the_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, level="info", risk=LIMITS.format(cap=1000),
                          extra='\n[metrics]\nlisten = "127.0.0.1:0"\n')
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    process = start(config, log)
    wait_for(lambda: events_named(log, "metrics.listening") or process.poll() is not None)
    url = f"http://{events_named(log, 'metrics.listening')[0]['address']}/metrics"
    wait_for(lambda: scrape(url)[("execd_ready", frozenset())] == 1)
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl",
         lines(*(priced(n, "5") for n in range(30)), priced(99, "50"), "not json",
               intent(100, venue="stubfail", quantity="1", reference_price="100")))
    wait_for(lambda: count_outcomes(ledger) == 33)
    # The counters move once a record is durable, a moment after it is in the file.
    wait_for(lambda: sum(v for (name, _), v in scrape(url).items()
                         if name == "execd_outcomes_total") == 33)
    samples = scrape(url)
    assert samples[("execd_intents_ingested_total", frozenset())] == 32  # the bad line is not
    by_status = Counter(o["status"] for o in outcomes(ledger))
    scraped = Counter[str]()
    for (name, labels), value in samples.items():
        if name == "execd_outcomes_total":
            scraped[dict(labels)["status"]] += int(value)
    assert scraped == by_status == {"FILLED": 30, "REJECTED": 1, "QUARANTINED": 1, "FAILED": 1}
    assert samples[("execd_outcomes_total", frozenset({
        ("status", "REJECTED"), ("reason", reasons.RISK_NOTIONAL_EXCEEDED),
        ("venue", "binance"), ("plane", "paper")}))] == 1
    assert samples[("execd_ledger_fsync_seconds_count", frozenset())] >= 1
    assert samples[("execd_ledger_commit_records_sum", frozenset())] >= 33
    # The file's input_file record follows its last outcome: wait for it, then for the
    # gauge, which the daemon updates once that record is durable.
    wait_for(lambda: records(ledger)[-1]["kind"] == "input_file")
    wait_for(lambda: scrape(url)[("execd_ledger_last_seq", frozenset())]
             == records(ledger)[-1]["seq"])
    assert samples[("execd_queue_depth", frozenset({("queue", "ledger")}))] == 0
    assert samples[("execd_queue_capacity", frozenset({("queue", "ledger")}))] == 8
    assert samples[("execd_trading_state", frozenset({("state", "ACTIVE")}))] == 1
    assert ctl(config, "halt", "--actor", "ops", "--reason", "test").returncode == 0
    halted = scrape(url)
    assert halted[("execd_trading_state", frozenset({("state", "HALTED")}))] == 1
    assert halted[("execd_trading_state", frozenset({("state", "ACTIVE")}))] == 0
    assert stop(process) == 0


def test_made_up_venues_make_no_new_metric_series(tmp_path: Path) -> None:
    """An outcome's venue is what its intent named: labels take only configured venues."""
    config = write_config(tmp_path, level="info",
                          extra='\n[metrics]\nlisten = "127.0.0.1:0"\n')
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    process = start(config, log)
    try:
        wait_for(lambda: events_named(log, "metrics.listening") or process.poll() is not None)
        url = f"http://{events_named(log, 'metrics.listening')[0]['address']}/metrics"
        drop(tmp_path / "lakehouse" / "inbox", "a.jsonl",
             lines(*(intent(n, venue=f"made-up-{n}") for n in range(5000)), intent(9999)))
        wait_for(lambda: count_outcomes(ledger) == 5001)

        def counted() -> dict[frozenset[tuple[str, str]], float]:
            return {labels: value for (name, labels), value in scrape(url).items()
                    if name == "execd_outcomes_total"}

        # Outcomes are counted once their commit's fsync returns, a moment after the
        # records can be read back from the segment.
        wait_for(lambda: sum(counted().values()) >= 5001)
        series = counted()
        assert series == {
            frozenset({("status", "REJECTED"), ("reason", reasons.INTENT_UNKNOWN_VENUE),
                       ("venue", "(unknown)"), ("plane", "")}): 5000,
            frozenset({("status", "FILLED"), ("reason", ""), ("venue", "binance"),
                       ("plane", "paper")}): 1,
        }
    finally:
        assert stop(process) == 0


def test_a_metrics_address_in_use_stops_the_start_with_a_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, level="info",
                              extra=f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        result = subprocess.run([*EXECD, "run", "--config", str(config)], capture_output=True,
                                text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    failed = [json.loads(line) for line in result.stdout.splitlines()
              if '"metrics.unavailable"' in line]
    assert failed and f"metrics.listen 127.0.0.1:{port}" in failed[0]["error"]


def test_a_reload_before_start_up_finished_does_not_claim_readiness(tmp_path: Path,
                                                                    manager: Manager) -> None:
    """A live venue that cannot connect keeps the daemon from READY; a SIGHUP meanwhile
    is handled but must not tell the manager that start-up is done."""
    from tests.live import write_live_config

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    config = write_live_config(tmp_path, f"http://127.0.0.1:{port}", level="info")
    log = tmp_path / "log"
    process = start(config, log, manager)
    wait_for(lambda: events_named(log, "venue.start_failed"))
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(events_named(log, "config.reload_unchanged")) == 1)
    assert ctl(config, "reload", "--actor", "ops", "--reason", "x").returncode == 0
    wait_for(lambda: len(events_named(log, "config.reload_unchanged")) == 2)
    assert manager.seen("READY") == [] and manager.seen("RELOADING") == []
    assert any(s.startswith("config reloaded (0 keys changed); waiting for venues (binance "
                            "cannot start") for s in manager.statuses())
    assert stop(process) == 0
    assert manager.seen("READY") == [] and len(manager.seen("STOPPING")) == 1


def test_a_stop_after_a_scrape_abandons_no_thread(tmp_path: Path) -> None:
    """Before: a stop after the endpoint had answered logged daemon.threads_abandoned
    (threads=1): the worker thread that had just closed the endpoint was caught ending.
    A thread finishing its last call is not stuck."""
    import urllib.request

    config = write_config(tmp_path, level="info", extra='\n[metrics]\nlisten = "127.0.0.1:0"\n')
    log = tmp_path / "log"
    for run in range(3):
        process = start(config, log)
        try:
            wait_for(lambda run=run, process=process: process.poll() is not None
                     or len(events_named(log, "metrics.listening")) > run)
            address = events_named(log, "metrics.listening")[run]["address"]
            with urllib.request.urlopen(f"http://{address}/healthz", timeout=10) as response:
                assert response.status == 200
        finally:
            assert stop(process) == 0
    assert len(events_named(log, "daemon.stopped")) == 3
    assert events_named(log, "daemon.threads_abandoned") == []


def test_a_thread_stuck_at_the_stop_is_still_left_behind(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The grace is short and bounded: a read that never returns (a hung mount) still
    does not keep a stopped daemon from exiting, and is reported."""
    config = write_config(tmp_path, level="info")
    log, stall = tmp_path / "log", tmp_path / "stall"
    stall.touch()
    monkeypatch.setenv("EXECD_TEST_STALL", str(stall))
    process = start(config, log, command=STALLING)
    try:
        wait_for(lambda: events_named(log, "daemon.ready") or process.poll() is not None)
        drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(intent(1)))
        # Stopped once the read hangs: a file only claimed may not be read yet, and a
        # stop before the read starts leaves no thread behind to report.
        wait_for(lambda: (tmp_path / "stall.held").exists())
        assert stop(process) == 0
    finally:
        stall.unlink()
        if process.poll() is None:
            process.kill()
    assert [e["threads"] for e in events_named(log, "daemon.threads_abandoned")] == [1]
    assert count_outcomes(tmp_path / "ledger") == 0


# ``execd`` whose recovery hangs in its scan of the ledger while the file named by
# EXECD_TEST_STALL exists (a read from a hung disk); STALL.held says it is held.
STALLED_RECOVERY = [sys.executable, "-c", """
import os, sys, time
import execd.ledger.scan
from execd.cli.main import main
read = execd.ledger.scan.read_lines
def stalled(*args, **kwargs):
    stall = os.environ["EXECD_TEST_STALL"]
    if os.path.exists(stall):
        open(stall + ".held", "w").close()
    while os.path.exists(stall):
        time.sleep(0.01)
    return read(*args, **kwargs)
execd.ledger.scan.read_lines = stalled
sys.exit(main(sys.argv[1:]))
"""]


def test_a_recovery_asks_for_more_time_only_while_it_makes_progress(
        tmp_path: Path, manager: Manager, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long recovery (a full fold, an index rebuilt) would outlast TimeoutStartSec,
    and a restart would begin it again from nothing. While its loops beat, each tick
    asks the manager for three more (EXTEND_TIMEOUT_USEC); once it is silent past half
    the watchdog period (a hung read), it asks no more, so the start times out as
    before; once recovered, the venues get the unit's usual 300 s."""
    config = write_config(tmp_path, level="info")
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(*(intent(n) for n in range(5))))
    first = start(config, tmp_path / "log")
    wait_for(lambda: count_outcomes(tmp_path / "ledger") == 5)
    assert stop(first) == 0
    stall = tmp_path / "STALL"
    stall.touch()
    monkeypatch.setenv("EXECD_TEST_STALL", str(stall))  # start() passes it on
    process = start(config, tmp_path / "log2", manager, command=STALLED_RECOVERY)
    try:
        wait_for(lambda: Path(f"{stall}.held").exists())
        held_at = time.monotonic()
        # Held in its first read: the recovery's first beat asked for time, then none.
        wait_for(lambda: len([t for t, _ in manager.seen("STATUS") if t > held_at + 1.0]) >= 3)
        extended = manager.seen("EXTEND_TIMEOUT_USEC")
        assert extended and extended[0][1] == str(WATCHDOG_USEC)  # three ticks of 0.2 s
        assert all(t < held_at + 0.6 for t, _ in extended), extended
        assert not manager.seen("READY")
        stall.unlink()
        wait_for(lambda: manager.seen("READY"))
        ready_at = manager.seen("READY")[0][0]
        after = [(t, v) for t, v in manager.seen("EXTEND_TIMEOUT_USEC") if t > held_at + 0.6]
        assert after and after[-1][1] == "300000000" and after[-1][0] <= ready_at, after
    finally:
        stall.unlink(missing_ok=True)
        assert stop(process) == 0


async def test_a_long_recovery_keeps_asking_for_time_while_it_folds(
        tmp_path: Path, manager: Manager) -> None:
    """A full fold of 100,000 records in 1 MB segments (checkpoints off) beats at every
    segment: the manager hears EXTEND_TIMEOUT_USEC at nearly every tick of it, then the
    venues' 300 s, then READY."""
    options = "1048576\ncheckpoint_records = 0"
    inbox = tmp_path / "in.jsonl"
    inbox.write_bytes(lines({"kind": "tick", "time": 1}, *(intent(n) for n in range(100_000))))
    await replay(tmp_path, [inbox], segment_bytes=options)
    config = write_config(tmp_path, level="info", segment_bytes=options)
    # A short watchdog, so the fold spans several ticks however fast this machine is
    # today (at 600 ms a fold of half a second saw two).
    watchdog = 150_000
    process = start(config, tmp_path / "log", manager, watchdog_usec=watchdog)
    try:
        wait_for(lambda: manager.seen("READY"), timeout=120)
    finally:
        assert stop(process) == 0
    extended = manager.seen("EXTEND_TIMEOUT_USEC")
    ticks = [t for t, value in extended if value == str(watchdog)]
    [(budget_at, _)] = [(t, v) for t, v in extended if v == "300000000"]
    assert len(ticks) >= 3, extended
    assert all(t < budget_at for t in ticks)
    # No tick of the fold without its request: the supervisor's STATUS= goes out at
    # every tick, and (but for the tick the fold ended in) so did the request.
    statuses = [t for t, _ in manager.seen("STATUS") if ticks[0] <= t < budget_at]
    assert len(ticks) >= len(statuses) - 1, (ticks, statuses)
