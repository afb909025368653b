"""The file tables' runs while running: one per checkpoint, merged in a thread of their
own and made live at the next checkpoint, the answers the same throughout."""

from __future__ import annotations

from pathlib import Path

import structlog

from execd.app import file_runs
from execd.ledger import file_index
from execd.ledger.index.files import FileTables
from execd.ledger.index.store import BASE, FACTOR

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
