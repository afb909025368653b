"""The file tables' runs while running: one per checkpoint, merged in a thread of their
own and made live at the next checkpoint, the answers the same throughout."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from execd.app import file_runs
from execd.ledger import file_index
from execd.ledger.index.files import FileTables
from execd.ledger.index.runs import BODY
from execd.ledger.index.store import BASE, FACTOR
from execd.model.errors import RunDamaged

SHA = "cd" * 32


def test_runs_are_merged_aside_and_the_tables_answer_the_same(tmp_path: Path) -> None:
    store = file_index.create(tmp_path)
    tables = FileTables(store=store)
    log = structlog.get_logger()
    seq = 0
    for checkpoint in range(3 * FACTOR):
        for n in range(3):
            seq += 1
            tables.finish(f"f{checkpoint}-{n}.jsonl", n, SHA, seq)
        seq += 1
        tables.reject(f"f0-0.jsonl.repeat-{checkpoint + 1}", seq)
        file_runs.write(tables, seq, f"h{seq}", log)
        assert tables.recent == 0 and store.through_seq == seq
    assert tables.merging is not None or len(tables.runs) < 3 * FACTOR
    if tables.merging is not None:
        tables.merging.exception()  # wait for it
    file_runs.write(tables, seq, f"h{seq}", log)  # nothing new: covered already
    seq += 1
    tables.change("f0-0.jsonl", seq)
    file_runs.write(tables, seq, f"h{seq}", log)  # makes the finished merge live
    assert len(tables.runs) < 3 * FACTOR + 1
    assert len(store.manifest.runs) == len(tables.runs)
    assert all(info.count < BASE for info in store.manifest.runs)
    for checkpoint in range(3 * FACTOR):
        for n in range(3):
            assert tables.done[f"f{checkpoint}-{n}.jsonl"] == (n, SHA)
    assert "f0-0.jsonl" in tables.changed and tables.repeats("f0-0.jsonl") == 3 * FACTOR
    if tables.merging is not None:
        tables.merging.exception()
        file_runs.adopt(tables, log)
    assert sorted(run.info.name for run in tables.runs) == sorted(
        info.name for info in store.manifest.runs)
    tables.close()
    store.close()


def test_a_merge_that_meets_a_damaged_block_stops_the_daemon(tmp_path: Path) -> None:
    """A run's block damaged on disk after it was written: the merge that reads it fails
    with RunDamaged, and the next checkpoint's write raises it (the daemon then stops
    and its restart rebuilds the tables, cli/serve.py) instead of logging a merge that
    failed and going on over tables that cannot be trusted."""
    store = file_index.create(tmp_path)
    tables = FileTables(store=store)
    log = structlog.get_logger()
    seq = 0
    for checkpoint in range(FACTOR):
        for n in range(3):
            seq += 1
            tables.finish(f"f{checkpoint}-{n}.jsonl", n, SHA, seq)
        file_runs.write(tables, seq, f"h{seq}", log)
        if checkpoint == 0:
            [first] = store.manifest.runs
            path = tmp_path / first.name
            data = bytearray(path.read_bytes())
            data[BODY + 3] ^= 0x04  # a key byte of the first record
            path.write_bytes(bytes(data))
    assert tables.merging is not None
    assert isinstance(tables.merging.exception(), RunDamaged)
    seq += 1
    tables.finish("late.jsonl", 1, SHA, seq)
    with pytest.raises(RunDamaged, match=first.name):
        file_runs.write(tables, seq, f"h{seq}", log)
    tables.close()
    store.close()
