"""Cutting the ledger's end is noticed: the head witness, ``verify --expect``, ``ledger.head``.

Before: a ledger cut at a line boundary, or without its newest segment, passed verify and
the daemon started on it, forgetting outcomes (whose intents would then run again).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from execd.ledger.segments import list_segments
from tests.helpers import EXECD, ROOT, drop, intent, lines, replay, write_config


def verify(ledger: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    """``execd run`` until it has read the inbox; its exit."""
    process = subprocess.Popen([*EXECD, "run", "--config", str(config)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    import time

    ledger = config.parent / "ledger"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        lakehouse = config.parent / "lakehouse"
        if list_segments(ledger) and not any(
                (lakehouse / d).glob("*.jsonl") for d in ("inbox", "work")):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    if process.poll() is None:
        process.terminate()
    out, _ = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def test_a_ledger_cut_at_a_line_boundary_is_refused(tmp_path: Path) -> None:
    """Records cut from the ledger's end at a line boundary never go unnoticed while the head
    witness, or a copy of it given to --expect, names a later record.
    """
    config = write_config(tmp_path, level="info")
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(*(intent(n) for n in range(1, 6))))
    first = run_once(config)
    assert first.returncode == 0, first.stdout
    heads = [json.loads(line) for line in first.stdout.splitlines()
             if '"ledger.head"' in line]
    assert heads, first.stdout  # logged at start and at stop, for journald to keep
    last = heads[-1]["expect"]
    ledger = tmp_path / "ledger"
    assert verify(ledger).returncode == 0
    assert verify(ledger, "--expect", last).returncode == 0
    # Cut the last three records, exactly at a line boundary: still a valid chain.
    [segment] = list_segments(ledger)
    kept = segment.read_bytes().splitlines(keepends=True)[:-3]
    segment.write_bytes(b"".join(kept))
    cut = verify(ledger)
    assert cut.returncode == 1 and "records were removed from its end" in cut.stdout
    again = run_once(config)
    assert again.returncode == 3, again.stdout
    assert "records were removed from its end" in again.stdout
    assert b"".join(kept) == segment.read_bytes()  # refused, not repaired
    # Without the witness (deleted too), the copy kept elsewhere still tells.
    (ledger / "head.json").unlink()
    assert verify(ledger).returncode == 0
    assert "no head witness" in verify(ledger).stdout
    outside = verify(ledger, "--expect", last)
    assert outside.returncode == 1 and "--expect says record" in outside.stdout
    assert verify(ledger, "--expect", "12:nothex").returncode == 2


async def test_a_deleted_newest_segment_or_a_rewritten_record_is_refused(tmp_path: Path) -> None:
    """A deleted newest segment, or another chain under the same head witness, never passes verify.
    """
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(*(intent(n) for n in range(1, 400))))
    ledger = await replay(tmp_path, [source], segment_bytes=4096)
    segments = list_segments(ledger)
    assert len(segments) > 2
    assert verify(ledger).returncode == 0
    witness = json.loads((ledger / "head.json").read_text())
    newest = segments[-1].read_bytes()
    segments[-1].unlink()
    assert "records were removed from its end" in verify(ledger).stdout
    segments[-1].write_bytes(newest)
    # A different chain of the same length (replayed from other input) does not match.
    other = tmp_path / "other"
    source.write_bytes(lines(*(intent(n, quantity="2") for n in range(1, 400))))
    await replay(other, [source], segment_bytes=4096)
    (other / "ledger" / "head.json").write_text(json.dumps(witness))
    rewritten = verify(other / "ledger")
    assert rewritten.returncode == 1 and "the ledger was rewritten" in rewritten.stdout


def test_the_witness_catches_up_once_commits_stop_and_a_missing_one_is_said(
        tmp_path: Path) -> None:
    """A burst, then quiet, then SIGKILL: head.json must name the burst's last record."""
    import signal
    import time

    from tests.helpers import count_outcomes, start_daemon, wait_for

    config = write_config(tmp_path, level="info")
    ledger = tmp_path / "ledger"
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log)
    wait_for(lambda: list_segments(ledger))
    for name in ("a.jsonl", "b.jsonl"):
        drop(tmp_path / "lakehouse" / "inbox", name, lines(intent(ord(name[0]))))
        time.sleep(0.3)
    wait_for(lambda: count_outcomes(ledger) == 2)
    last = json.loads(list_segments(ledger)[-1].read_bytes().splitlines()[-1])
    wait_for(lambda: json.loads((ledger / "head.json").read_text())["seq"] >= last["seq"],
             timeout=10)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert json.loads((ledger / "head.json").read_text()) == {"seq": last["seq"],
                                                              "hash": last["hash"]}
    (ledger / "head.json").unlink()
    again = run_once(config)
    assert again.returncode == 0 and '"ledger.head_missing"' in again.stdout
