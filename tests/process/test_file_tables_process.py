"""A real ``execd run`` SIGKILLed while it consumes files and takes checkpoints: the
restart, from a checkpoint and the on-disk consumed-file tables, consumes no file twice,
numbers a repeat after the earlier one, and its tables answer as the full fold's."""

from __future__ import annotations

import contextlib
import json
import signal
from collections import Counter
from pathlib import Path

from execd.config import schema as config
from execd.ledger import checkpoints
from execd.ledger.recovery import recover
from execd.ledger.snapshot import fold_key
from execd.sentinel.risk import Risk
from tests.helpers import drop, records, start_daemon, stop, wait_for, write_config
from tests.unit.ledger.test_file_index import answers, full_fold, names

FILES = 1000


def tick(n: int) -> bytes:
    return json.dumps({"kind": "tick", "time": n}).encode() + b"\n"


def finished(ledger: Path) -> list[str]:
    """The input_file records' names, in ledger order (tolerates a torn last line)."""
    found = []
    for segment in sorted(ledger.glob("segment-*.jsonl")):
        for line in segment.read_bytes().splitlines():
            if b'"kind":"input_file"' in line:
                with contextlib.suppress(json.JSONDecodeError):  # a torn last line
                    found.append(json.loads(line)["body"]["file"])
    return found


def idle(lakehouse: Path) -> bool:
    return not any(any((lakehouse / d).iterdir()) for d in ("inbox", "work"))


def test_a_sigkill_while_files_are_consumed_and_checkpointed(tmp_path: Path) -> None:
    path = write_config(tmp_path, segment_bytes=f"{256 << 20}\ncheckpoint_records = 5",
                        level="info")
    ledger, lakehouse = tmp_path / "ledger", tmp_path / "lakehouse"
    inbox = lakehouse / "inbox"
    drop(inbox, "f0001.jsonl", tick(1))
    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: "f0001.jsonl" in finished(ledger), timeout=60)
        drop(inbox, "f0001.jsonl", tick(1))  # a repeat: f0001.jsonl.repeat-1
        wait_for(lambda: (lakehouse / "rejected" / "f0001.jsonl.repeat-1").exists(),
                 timeout=60)
        for n in range(2, FILES):
            drop(inbox, f"f{n:04d}.jsonl", tick(n))
        wait_for(lambda: len(finished(ledger)) > FILES // 2, timeout=120)
        wait_for(lambda: len(checkpoints.listed(ledger)) > 2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Killed mid-run: files were still waiting or being read.
    assert len(finished(ledger)) < FILES, len(finished(ledger))
    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: idle(lakehouse), timeout=120)
        drop(inbox, "f0001.jsonl", tick(1))
        wait_for(lambda: (lakehouse / "rejected" / "f0001.jsonl.repeat-2").exists(),
                 timeout=60)
        wait_for(lambda: idle(lakehouse), timeout=60)
    finally:
        assert stop(process) == 0
    logged = [json.loads(x) for x in (tmp_path / "daemon.log").read_text().splitlines()
              if x.startswith("{")]
    recovered = [e for e in logged if e.get("event") == "ledger.recovered"]
    assert len(recovered) == 2 and recovered[1]["checkpoint"], recovered
    assert not [e for e in logged if e.get("event") == "file_index.rebuilt"]
    consumed = Counter(name for name in finished(ledger))
    assert max(consumed.values()) == 1, "a file consumed twice"
    assert {f"f{n:04d}.jsonl" for n in range(1, FILES)} <= set(consumed)
    assert sorted(p.name for p in (lakehouse / "archive").iterdir()) == [
        f"f{n:04d}.jsonl" for n in range(1, FILES)]
    refused = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    assert [(o["source"][0], o["reason"]) for o in refused] == [
        ("f0001.jsonl.repeat-1", "INPUT_FILE_REPEATED"),
        ("f0001.jsonl.repeat-2", "INPUT_FILE_REPEATED")]
    cfg = config.load(path).config
    state = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    asked = names(ledger)
    assert state.checkpoint is not None
    assert answers(state, asked) == answers(full_fold(ledger, cfg), asked)
    state.close_index()
