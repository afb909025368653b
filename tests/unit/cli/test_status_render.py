"""``execd ctl status`` for people, rendered from a reply: aligned, ISO times, durations.

A wall-clock time must never reach the operator as raw nanoseconds, and a logical time
must never be dressed up as a wall-clock one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from execd.cli.main import main
from execd.cli.status import render
from execd.model.times import iso_utc

NOW = 1_796_149_410_158_043_967  # 2026-12-01T18:23:30.158Z
HASH = "83b8ba028a1682bcab3902aaaa968c263a45cc76e2252da223f08fba115a5514"


def reply(**changes: Any) -> dict[str, Any]:
    """A status reply as the daemon sends it (raw values)."""
    body: dict[str, Any] = {
        "ok": True, "command": "status", "state": "ACTIVE", "state_note": "",
        "logical_time": 1_700_000_123,
        "positions": [
            {"venue": "binance", "symbol": "BTC/USDT", "position": "0.5", "mark": "50000"},
            {"venue": "kraken", "symbol": "ETH/USDT", "position": "-12.25",
             "pending_buy": "1", "pending_sell": "0"}],
        "mode": "run", "stopping": False, "ready": True,
        "reloads": {"applied": 1, "refused": 0},
        "planes": {"binance": "paper", "kraken": "live"},
        "queues": {"sentinel": 0, "ledger": 2},
        "ledger": {"last_seq": 41, "last_hash": HASH},
        "venues": {"binance": {"state": "ready", "plane": "paper", "adapter": "paper"},
                   "kraken": {"state": "reconciling: 2 orders", "plane": "live",
                              "adapter": "ccxt", "in_flight": 0, "backlog": 0,
                              "unresolved": 2, "stream": "listening",
                              "venue_status": "maintenance", "inactive": 1}},
        "version": "0.1.0", "started_ns": NOW - 3_723_000_000_000, "uptime_seconds": 3723.4,
        "config": {"path": "/etc/execd/execd.toml", "file_sha256": "ab" * 32,
                   "outcome_settings_sha256": "cd" * 32},
        "inbox": {"files": 3, "oldest_age_seconds": 312.0, "listed_seconds_ago": 0.25},
        "last_outcome": {"wall_ns": NOW - 12_500_000_000, "logical_time": 1_700_000_100},
        "outcomes": {"FILLED": 30, "REJECTED": 1, "QUARANTINED": 1},
    }
    body.update(changes)
    return body


def test_every_part_is_shown_with_times_for_people() -> None:
    text = render(reply(), NOW)
    lines = text.splitlines()
    assert lines[:6] == [
        f"execd        0.1.0, run, up 1h 2m since {iso_utc(NOW - 3_723_000_000_000)}",
        "trading      ACTIVE",
        "ready        yes; config reloads 1 applied, 0 refused",
        "config       /etc/execd/execd.toml",
        "             file sha256 " + "ab" * 32,
        "             outcome settings sha256 " + "cd" * 32,
    ]
    assert "inbox        3 files waiting, oldest 5m 12s (listed 250ms ago)" in lines
    assert (f"last outcome {iso_utc(NOW - 12_500_000_000)} (12.5s ago), "
            "logical time 1700000100") in lines
    assert "outcomes     FILLED 30, QUARANTINED 1, REJECTED 1 (since start)" in lines
    # Logical time as it is: an integer from the producer, not a date.
    assert "logical time 1700000123" in lines
    assert f"ledger       last seq 41, last hash {HASH}" in lines
    assert "queues       sentinel=0, ledger=2" in lines
    # No raw wall-clock nanoseconds anywhere.
    assert str(NOW)[:10] not in text


def test_venues_and_positions_are_aligned_tables() -> None:
    lines = render(reply(), NOW).splitlines()
    at = lines.index("venues       2")
    assert lines[at + 1:at + 3] == [
        "  binance  paper  paper  ready",
        "  kraken   live   ccxt   reconciling: 2 orders; stream listening; venue status "
        "maintenance; 1 market(s) not active; 0 in flight, 0 waiting, 2 unresolved",
    ]
    at = lines.index("positions    2 open")
    assert lines[at + 1:] == [
        "  binance  BTC/USDT  0.5     mark 50000",
        "  kraken   ETH/USDT  -12.25  mark -      pending buy 1 sell 0",
    ]
    # Every label starts its value in the same column.
    labelled = [line for line in lines if not line.startswith(" ")]
    assert {line[13] != " " and line[12] == " " for line in labelled} == {True}


def test_a_quiet_daemon_and_a_draining_one() -> None:
    text = render(reply(inbox={"files": 0, "oldest_age_seconds": None,
                               "listed_seconds_ago": None},
                        last_outcome=None, outcomes={}, positions=[], state="HALTED",
                        state_note="alice: incident", stopping=True, ready=False), NOW)
    lines = text.splitlines()
    assert "trading      HALTED (alice: incident); draining (stopping)" in lines
    assert "ready        no; config reloads 1 applied, 0 refused" in lines
    assert "inbox        0 files waiting (not listed yet)" in lines
    assert "last outcome none since start" in lines
    assert "outcomes     none (since start)" in lines
    assert lines[-1] == "positions    0 open"


def test_a_reply_from_an_older_daemon_still_renders() -> None:
    """The keys an earlier release answered with are enough (ctl and daemon may differ)."""
    old = {key: value for key, value in reply().items()
           if key not in ("version", "started_ns", "uptime_seconds", "config", "inbox",
                          "last_outcome", "outcomes")}
    old["venues"] = {}
    lines = render(old, NOW).splitlines()
    assert lines[0] == "mode         run"
    assert "venues       2" in lines
    assert next(line.split() for line in lines if line.startswith("  kraken")) == [
        "kraken", "live", "-"]
    assert not [line for line in lines if line.startswith(("inbox", "last outcome"))]


def test_names_from_outside_are_shown_escaped_and_still_aligned() -> None:
    """Venue and symbol names come from intents (positions keep them in the ledger), the
    state note from an operator: an ESC, a BEL, a C1 control or a bidirectional override
    in any of them is shown as its escape, never sent to the terminal."""
    hostile = reply(
        state="HALTED", state_note="ops\x1b[2J: incident\x07",
        positions=[{"venue": "bin\x1b[2Jance", "symbol": "BTC/\x1b]0;X\x07USDT",
                    "position": "0.5", "mark": "5\x9b0"},
                   {"venue": "kraken", "symbol": "ETH/USDT", "position": "1"}],
        planes={"bin\x1b[2Jance": "paper\u202e"},
        venues={"bin\x1b[2Jance": {"state": "ready\x1b[31m", "adapter": "paper",
                                   "stream": "x\r"}},
        queues={"sentinel\x1b[2J": 0},
        config={"path": "/etc/\x1b]0;owned\x07execd.toml", "file_sha256": "ab" * 32,
                "outcome_settings_sha256": "cd" * 32},
        mode="run\x1b[2J", version="0.1.0\x1b[2J")
    text = render(hostile, NOW)
    assert not {c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f
                or c == "\u202e"}
    lines = text.splitlines()
    assert "trading      HALTED (ops\\u001b[2J: incident\\u0007)" in lines
    assert "config       /etc/\\u001b]0;owned\\u0007execd.toml" in lines
    assert "queues       sentinel\\u001b[2J=0" in lines
    assert lines[0].startswith("execd        0.1.0\\u001b[2J, run\\u001b[2J, up ")
    at = lines.index("venues       1")
    assert lines[at + 1] == \
        "  bin\\u001b[2Jance  paper\\u202e  paper  ready\\u001b[31m; stream x\\u000d"
    # Escaped first, then measured: the columns still line up.
    at = lines.index("positions    2 open")
    first, second = lines[at + 1:]
    assert first == "  bin\\u001b[2Jance  BTC/\\u001b]0;X\\u0007USDT  0.5  mark 5\\u009b0"
    assert second.split() == ["kraken", "ETH/USDT", "1", "mark", "-"]
    assert (second.index("ETH/USDT"), second.index(" 1 ") + 1) == (
        first.index("BTC/"), first.index("0.5"))


@pytest.mark.parametrize("every", ["1e10", "86400.5", "1e-9", "0.09", "0", "-1", "nan", "inf",
                                   "soon"])
def test_watch_outside_a_tenth_of_a_second_to_a_day_is_refused_naming_the_range(
        every: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1e10 overflowed time.sleep after the first refresh; 1e-9 asked the daemon for
    its status without pause."""
    with pytest.raises(SystemExit) as exit_:
        main(["ctl", "status", "--socket", str(tmp_path / "none"), "--watch", every])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "execd ctl status: error: argument --watch: expected a number of seconds from 0.1 "
        f"to 86400, found {every!r}")


@pytest.mark.parametrize("every", ["0.1", "86400", "2"])
def test_watch_from_a_tenth_of_a_second_to_a_day_is_taken(
        every: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Taken, and watched: no daemon answers here, so the watch ends at once with 1.
    socket = tmp_path / "none"
    assert main(["ctl", "status", "--socket", str(socket), "--watch", every]) == 1
    assert capsys.readouterr().err == f"execd ctl: no daemon is listening on {socket}\n"


def test_the_help_of_watch_names_its_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ctl", "status", "--help"])
    assert "a number from 0.1 to 86400" in " ".join(capsys.readouterr().out.split())
