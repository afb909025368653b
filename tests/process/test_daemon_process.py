"""The real ``execd run`` process: drains on SIGTERM, survives SIGKILL, keeps bad input."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from execd.model import reasons
from tests.helpers import (
    count_outcomes,
    drop,
    intent,
    lines,
    outcomes,
    records,
    start_daemon,
    stop,
    verify,
    wait_for,
    write_config,
)


def test_sigterm_drains_and_exits_0_with_everything_on_disk(tmp_path: Path) -> None:
    config = write_config(tmp_path, level="info", items=64, chunk=8192, commit_records=256)
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    total = 30_000
    drop(inbox, "big.jsonl", lines(*(intent(n) for n in range(total))))
    process = start_daemon(config, tmp_path / "log")
    wait_for(lambda: count_outcomes(ledger) > 500)
    assert stop(process) == 0
    verify(ledger)
    kinds = [r["kind"] for r in records(ledger)]
    assert kinds[-1] == "stop"
    stopped = records(ledger)[-1]["body"]["reason"]
    assert stopped == "signal SIGTERM"
    first = count_outcomes(ledger)
    log = (tmp_path / "log").read_text()
    assert "daemon.draining" in log and "daemon.stopped" in log
    # Whatever was read before the signal is on disk; a restart finishes the rest.
    process = start_daemon(config, tmp_path / "log")
    wait_for(lambda: count_outcomes(ledger) == total)
    assert stop(process) == 0
    verify(ledger)
    lines_done = Counter(o["source"][1] for o in outcomes(ledger))
    assert set(lines_done) == set(range(1, total + 1)) and max(lines_done.values()) == 1
    assert first < total, "the drain should have been exercised mid-file"
    assert (tmp_path / "lakehouse" / "archive" / "big.jsonl").exists()


def test_bad_input_is_recorded_and_the_daemon_keeps_running(tmp_path: Path) -> None:
    """Bad input never stops the running daemon or goes unrecorded: each bad line or file has its
    outcome.
    """
    config = write_config(tmp_path, level="info", outcomes="each")
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    process = start_daemon(config, tmp_path / "log")
    try:
        drop(inbox, "01-malformed.jsonl", b'{"kind":"intent", nope}\n')
        drop(inbox, "02-unknown-field.jsonl", lines(intent(1, colour="red")))
        drop(inbox, "03-wrong-type.jsonl", lines(intent(2, quantity=[1])))
        drop(inbox, "04-negative.jsonl", lines(intent(3, quantity="-1")))
        drop(inbox, "05-zero.jsonl", lines(intent(4, quantity="0")))
        drop(inbox, "06-unknown-venue.jsonl", lines(intent(5, venue="mars")))
        drop(inbox, "07-huge-line.jsonl",
             lines(intent(6), b'{"kind":"intent","x":"' + b"y" * (10 << 20) + b'"}', intent(7)))
        drop(inbox, "08-not-utf8.jsonl", b"\xff\xfe\x00bad\n\xc3\x28\n")
        drop(inbox, "09-empty.jsonl", b"")
        drop(inbox, "10-good.jsonl", lines(intent(8)))
        wait_for(lambda: (tmp_path / "lakehouse" / "archive" / "10-good.jsonl").exists())
        assert process.poll() is None, "the daemon must still be running"
    finally:
        assert stop(process) == 0
    verify(ledger)
    got = {(o["source"][0], o["source"][1]): (o["status"], o.get("reason")) for o in
           outcomes(ledger)}
    assert got == {
        ("01-malformed.jsonl", 1): ("QUARANTINED", reasons.INPUT_MALFORMED_JSON),
        ("02-unknown-field.jsonl", 1): ("QUARANTINED", reasons.INPUT_SCHEMA_VIOLATION),
        ("03-wrong-type.jsonl", 1): ("QUARANTINED", reasons.INPUT_SCHEMA_VIOLATION),
        ("04-negative.jsonl", 1): ("REJECTED", reasons.INTENT_QUANTITY_NOT_POSITIVE),
        ("05-zero.jsonl", 1): ("REJECTED", reasons.INTENT_QUANTITY_NOT_POSITIVE),
        ("06-unknown-venue.jsonl", 1): ("REJECTED", reasons.INTENT_UNKNOWN_VENUE),
        ("07-huge-line.jsonl", 1): ("FILLED", None),
        ("07-huge-line.jsonl", 2): ("QUARANTINED", reasons.INPUT_LINE_TOO_LONG),
        ("07-huge-line.jsonl", 3): ("FILLED", None),
        ("08-not-utf8.jsonl", 1): ("QUARANTINED", reasons.INPUT_INVALID_UTF8),
        ("08-not-utf8.jsonl", 2): ("QUARANTINED", reasons.INPUT_INVALID_UTF8),
        ("09-empty.jsonl", 0): ("QUARANTINED", reasons.INPUT_EMPTY_FILE),
        ("10-good.jsonl", 1): ("FILLED", None),
    }
    log = (tmp_path / "log").read_text()
    assert log.count('"event": "outcome"') == len(got)
    assert sorted(p.name for p in (tmp_path / "lakehouse" / "archive").iterdir()) == \
        sorted({name for name, _ in got})


def test_a_different_file_under_a_consumed_name_is_refused_whole(tmp_path: Path) -> None:
    config = write_config(tmp_path, level="info")
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    archive = tmp_path / "lakehouse" / "archive"
    process = start_daemon(config, tmp_path / "log")
    try:
        drop(inbox, "x.jsonl", lines(intent(1)))
        wait_for(lambda: (archive / "x.jsonl").exists())
        drop(inbox, "x.jsonl", lines(intent(2), intent(3)))
        wait_for(lambda: (tmp_path / "lakehouse" / "rejected" / "x.jsonl.repeat-1").exists())
    finally:
        assert stop(process) == 0
    done = outcomes(ledger)
    assert [(o["status"], o.get("reason")) for o in done] == [
        ("FILLED", None), ("QUARANTINED", reasons.INPUT_FILE_REPEATED)]
    assert "was consumed before" in done[1]["detail"]
    assert done[1]["source"][0] == "x.jsonl.repeat-1"
    assert (archive / "x.jsonl").read_bytes() == lines(intent(1)), "the original is untouched"


@pytest.mark.parametrize(("seed", "every"), [(1, 0), (2, 0), (3, 700)])
def test_sigkill_at_seeded_points_never_loses_or_repeats(tmp_path: Path, seed: int,
                                                          every: int) -> None:
    """A SIGKILL at any point never leaves an input line with zero or two outcomes, nor fills an
    intent id twice; with checkpoints on (``every`` records), restarts fold from them.
    """
    rng = random.Random(seed)
    config = write_config(tmp_path, level="info", items=rng.choice([16, 128, 1024]),
                          chunk=rng.choice([4096, 65536]), commit_records=rng.choice([64, 4096]),
                          segment_bytes=f"{1 << 20}\ncheckpoint_records = {every}")
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    per_file, files = 3000, 8
    expected = set()
    for f in range(files):
        batch = [intent(f * per_file + n) for n in range(per_file)]
        if f % 3 == 1:
            batch[10] = intent(5)  # a duplicate id across files: refused, never filled twice
        drop(inbox, f"{f:02d}.jsonl", lines({"kind": "tick", "time": f}, *batch))
        expected |= {(f"{f:02d}.jsonl", line) for line in range(2, per_file + 2)}
    total = len(expected)
    kills = sorted(rng.sample(range(1, total), 8))
    restarts, mid_run = 0, 0
    for point in kills:
        process = start_daemon(config, tmp_path / "log")
        restarts += 1
        if rng.random() < 0.2:
            wait_for(lambda: (tmp_path / "log").exists(), timeout=5)
        else:
            wait_for(lambda p=point, proc=process: count_outcomes(ledger) >= p
                     or proc.poll() is not None, timeout=60)
        process.kill()
        process.wait()
        assert process.returncode == -signal.SIGKILL
        mid_run += 0 < count_outcomes(ledger) < total
    process = start_daemon(config, tmp_path / "log")
    wait_for(lambda: count_outcomes(ledger) >= total, timeout=120)
    assert stop(process) == 0
    verify(ledger)
    done = outcomes(ledger)
    sources = Counter((o["source"][0], o["source"][1]) for o in done)
    assert set(sources) == expected
    assert max(sources.values()) == 1, "an input line got two outcomes"
    filled = Counter(o["intent_id"] for o in done if o["status"] == "FILLED")
    assert max(filled.values()) == 1, "an intent was filled twice"
    starts = [r for r in records(ledger) if r["kind"] == "start"]
    # A kill during start-up may come before the start record; never more starts than runs.
    assert 1 <= len(starts) <= restarts + 1
    assert mid_run >= 4, "most kills must land while intents are being processed"
    assert sorted(p.name for p in (tmp_path / "lakehouse" / "archive").iterdir()) == \
        [f"{f:02d}.jsonl" for f in range(files)]
    if every:
        assert any(r["kind"] == "checkpoint" for r in records(ledger))
        recovered = [line for line in (tmp_path / "log").read_text().splitlines()
                     if "ledger.recovered" in line]
        assert any("snapshot-0" in line for line in recovered), recovered
