"""``execd ctl status`` for people, rendered from a reply: aligned, ISO times, durations.

A wall-clock time must never reach the operator as raw nanoseconds, and a logical time
must never be dressed up as a wall-clock one.
"""

from __future__ import annotations

from typing import Any

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
                              "unresolved": 2, "stream": "listening"}},
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
        "  kraken   live   ccxt   reconciling: 2 orders; stream listening; 0 in flight, "
        "0 waiting, 2 unresolved",
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
