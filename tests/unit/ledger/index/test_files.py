"""The consumed-file tables' entries: their value, the latest of each name, collisions."""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import pytest

from execd.ledger.fold import Fold
from execd.ledger.index import files, runs
from execd.ledger.index.files import VALUE, Entry, FileTables, digest, latest, pack, unpack
from execd.ledger.index.store import IndexStore
from execd.ledger.record import Record
from execd.model import reasons
from execd.reader import lakehouse

SHA = "ab" * 32


def test_the_claim_pattern_is_the_inboxs() -> None:
    assert (files.CLAIM.pattern, files.CLAIM.flags) == (lakehouse.CLAIM.pattern,
                                                         lakehouse.CLAIM.flags)


def test_a_value_round_trips() -> None:
    rest = digest("a.jsonl")[1]
    for entry in (Entry(files.DONE | files.CHANGED, 7, 1234, SHA, 99, 42),
                  Entry(files.REJECTED, 0, 0, "", 5, 0),
                  Entry(0, (1 << 56) - 1)):
        value = pack(rest, entry)
        assert len(value) == VALUE
        assert unpack(value) == (rest, entry)
    with pytest.raises(ValueError, match="64 hex"):
        pack(rest, Entry(files.DONE, sha="not hex"))


def test_changes_join_and_the_tables_answer_as_the_dict_and_sets_did(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path, latest)
    tables = FileTables(store=store)
    tables.finish("a.jsonl", 10, SHA, seq=3)
    tables.reject("a.jsonl.repeat-2", seq=4)
    tables.reject("b.jsonl.refused-1", seq=5)
    tables.reject("c.jsonl", seq=6)  # rejected after some of it was read: consumed
    tables.attach(store.write_run(tables.pending(), 6, VALUE))
    assert tables.recent == 0
    tables.change("a.jsonl", seq=8)
    assert tables.done["a.jsonl"] == (10, SHA) and "a.jsonl" in tables.changed
    assert "a.jsonl" not in tables.rejected and "c.jsonl" in tables.rejected
    assert tables.repeats("a.jsonl") == 2 and tables.repeats("b.jsonl") == 1
    assert tables.consumed("a.jsonl") and tables.consumed("c.jsonl")
    assert not tables.consumed("b.jsonl") and not tables.consumed("a.jsonl.repeat-2")
    assert tables.done_before("a.jsonl", 4) and not tables.done_before("a.jsonl", 3)
    assert tables.done.get("d.jsonl") is None and "d.jsonl" not in tables.done
    with pytest.raises(KeyError):
        tables.done["d.jsonl"]
    tables.attach(store.write_run(tables.pending(), 8, VALUE))
    # Each run holds a.jsonl; the latest (seq 8) is believed, before and after a merge.
    for _ in range(2):
        assert "a.jsonl" in tables.changed and tables.done["a.jsonl"] == (10, SHA)
        assert len(list(tables.entries())) == 5  # a, its claim, b's claim, b, c
        done = store.compact(factor=2)
        if done is not None:
            tables.replace(done)
    assert len(tables.runs) == 1
    tables.close()
    store.close()


def test_a_merge_keeps_the_latest_entry_whatever_the_runs_order() -> None:
    key, rest = digest("a.jsonl")
    old = key + pack(rest, Entry(files.DONE, size=1, seq=3, done_seq=3))
    new = key + pack(rest, Entry(files.DONE | files.CHANGED, size=1, seq=9, done_seq=3))
    assert list(runs.merge([iter([old]), iter([new])], latest)) == [new]
    assert list(runs.merge([iter([new]), iter([old])], latest)) == [new]


def test_a_name_never_reads_another_names_entry(tmp_path: Path) -> None:
    """Two names whose keys collide (forced here: the odds are about n²/2¹²⁹) are told
    apart by the rest of the digest."""
    key, _ = digest("a.jsonl")
    other = key + pack(b"\x01" * 16, Entry(files.DONE, size=5, sha=SHA, seq=1, done_seq=1))
    store = IndexStore.create(tmp_path, latest)
    tables = FileTables(store.open_runs(), store)
    tables.attach(store.write_run([other], 1, VALUE))
    assert "a.jsonl" not in tables.done and not tables.consumed("a.jsonl")
    assert tables.entry("a.jsonl") is None
    tables.close()
    store.close()


def _record(seq: int, kind: str, body: dict[str, object]) -> Record:
    return Record(1, seq, seq, kind, "", msgspec.Raw(msgspec.json.encode(body)), "")


def test_records_folded_again_over_tables_ahead_of_them_change_nothing() -> None:
    """Start-up may fold records the tables already cover (their run was written, the
    snapshot's record was not): each change is a join, and whether a file was finished
    before a whole-file outcome is judged by the seq that finished it."""
    file_level = {"intent_id": str(uuid.UUID(int=1)), "status": "REJECTED",
                  "filled_quantity": "0", "logical_time": 1,
                  "reason": reasons.INPUT_FILE_CHANGED, "source": ["x.jsonl", 0, 0]}
    ledger = [
        _record(1, "outcome", file_level),
        _record(2, "input_file", {"file": "x.jsonl", "size": 3, "sha256": SHA,
                                  "disposition": "archive"}),
        _record(3, "outcome", {**file_level, "intent_id": str(uuid.UUID(int=2))}),
        _record(4, "input_file", {"file": "y.jsonl.repeat-4", "size": 0, "sha256": None,
                                  "disposition": "reject"}),
    ]
    memory = Fold()
    ahead = FileTables()
    once = Fold(files=ahead)
    for record in ledger:
        memory.observe(record)
        once.observe(record)
    again = Fold(files=ahead)
    for record in ledger:
        again.observe(record)
    for fold in (once, again):
        assert fold.refusing == memory.refusing == {"x.jsonl"}
        assert ahead.done["x.jsonl"] == memory.done["x.jsonl"]
        assert ("x.jsonl" in fold.changed) == ("x.jsonl" in memory.changed) is True
        assert "y.jsonl.repeat-4" in fold.rejected and ahead.repeats("y.jsonl") == 4
