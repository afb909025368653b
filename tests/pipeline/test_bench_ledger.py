"""The ledgers ``make bench-scale`` measures are ledgers the daemon reads as its own.

``bench/scale_ledger.py`` formats records from templates instead of running the
pipeline; if the format moved on, the bench would time something the daemon never
meets. Here a small one (several runs, segments and input files) is verified by the
real ``execd ledger verify`` and folded by the real recovery, and what the fold finds
is what the builder says it wrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec
import pytest

from execd.cli.main import main
from execd.config import schema as config
from execd.ledger.record import Record
from execd.ledger.recovery import recover
from execd.ledger.scan import scan
from execd.sentinel.risk import Risk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import scale
import scale_ledger


def test_a_built_ledger_verifies_and_folds_to_what_was_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # Runs of 10,007 records: each a start, a file of 10,000 lines, a file of one line
    # (a tick) and a stop; then a run of a start and a stop.
    monkeypatch.setattr(scale_ledger, "RUN_RECORDS", 10_007)
    path = scale._config(tmp_path, tmp_path / "unused")
    loaded = config.load(path).config
    small = msgspec.structs.replace(
        loaded, ledger=msgspec.structs.replace(loaded.ledger, segment_bytes=1 << 20))
    total = 3 * 10_007 + 2  # the last run: a start and a stop
    built = scale_ledger.build(tmp_path / "cache", total, small)
    meta = json.loads((built / "meta.json").read_text())
    ledger = built / "ledger"
    assert meta["records"] == total
    assert meta["segments"] == len(list(ledger.glob("segment-*.jsonl"))) > 1

    assert main(["ledger", "verify", "--config", str(path), "--ledger", str(ledger)]) == 0
    assert f"reaches head witness {total}" in capsys.readouterr().out
    risk = Risk(loaded)
    state = recover(ledger, repair=False, risk=risk)
    assert state.scan.records == total and state.scan.torn is None
    assert f"{state.scan.records}:{state.scan.last_hash}" == meta["head"]
    assert len(state.seen) == meta["intents"] == 3 * 9_900  # 100 of a file's lines are ticks
    assert state.progress == {} and state.unresolved == {}
    assert sorted(state.done) == [f"{n:08d}.jsonl" for n in range(1, 7)]
    assert {venue: plane for venue, (plane, _) in state.planes.items()} == loaded.planes()
    # Each buy is followed by a sell of the same quantity, and 29,700 intents close
    # every pair.
    assert risk.book.open_positions() == []
    kinds = [record.kind for record in _records(ledger)]
    assert kinds.count("start") == kinds.count("stop") == 4
    assert kinds.count("input_file") == kinds.count("context") == 6

    # A second build of the same size finds the cache and writes nothing.
    before = {p: p.stat().st_mtime_ns for p in ledger.iterdir()}
    assert scale_ledger.build(tmp_path / "cache", total, small) == built
    assert {p: p.stat().st_mtime_ns for p in ledger.iterdir()} == before


def _records(ledger: Path) -> list[Record]:
    found: list[Record] = []
    scan(ledger, found.append)
    return found
