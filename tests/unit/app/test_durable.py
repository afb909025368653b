"""The work after an fsync: each durable record's action, carried out in commit order.

What must never happen: an ``execd ctl`` answer before every record of its command is
durable, a file moved before its input_file record is, or an action run for a record
of another commit.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import structlog

from execd.app.durable import Durability, answer_when_durable, move_when_durable
from execd.ledger.writer import Commit
from execd.model.messages import LATE, Entry, InputFileRecord, TickRecord
from execd.model.once_durable import Answer, Call, MoveFile, Wake
from execd.reader.inbox import InboxSource, Lakehouse, stat_key
from execd.service.control import ControlRequest, Request

LOG = structlog.get_logger()


def tick(seq: int) -> Entry:
    return Entry(seq, "tick", seq, TickRecord(seq, None, "ops"))


def durability() -> Durability:
    return Durability(LOG, outcomes_each=lambda: False)


def test_a_command_is_answered_once_all_its_records_are_durable() -> None:
    request = ControlRequest(Request("halt", reason="r", actor="ops"))
    request.entries = [tick(4), tick(5)]
    answer_when_durable(request)
    first, second = request.entries
    assert isinstance(first.then, Answer) and first.then is second.then
    after = durability()
    after.durable(Commit(b"", [tick(3), first], 11, "h1"))
    assert not request.durable.is_set()
    assert (after.seq, after.hash) == (11, "h1")
    after.durable(Commit(b"", [second, tick(6)], 13, "h2"))
    assert request.durable.is_set()
    assert request.result["ledger_seq"] == 12  # the seq of its last record


def test_a_command_without_records_waits_for_nothing() -> None:
    request = ControlRequest(Request("status"))
    answer_when_durable(request)
    assert request.entries == [] and not request.durable.is_set()


def test_wake_and_call_get_their_own_records_seq() -> None:
    woken = anyio.Event()
    calls: list[int] = []
    late = Entry(LATE, "tick", 0, TickRecord(0, None, "ops"), Wake(woken))
    called = Entry(LATE, "tick", 0, TickRecord(0, None, "ops"), Call(calls.append))
    durability().durable(Commit(b"", [tick(0), called, late], 20, "h"))
    assert woken.is_set() and calls == [19]


async def test_a_file_moves_only_after_its_record_is_durable(tmp_path: Path) -> None:
    lakehouse = Lakehouse(tmp_path)
    source = InboxSource(lakehouse, progress={}, done={}, refusing=set(), rejected=set(),
                         poll_seconds=0.01, stopping=anyio.Event(), log=LOG, wait_durable=True)
    (lakehouse.work / "f.jsonl").write_bytes(b"{}\n")
    record = Entry(2, "input_file", 5, InputFileRecord("f.jsonl", 3, "0" * 64, 1))
    move_when_durable(record, stat_key(os.stat(lakehouse.work / "f.jsonl")))
    assert isinstance(record.then, MoveFile)
    after = durability()
    after.inbox = source
    await source.slots.acquire()  # as the reader does before it records a file
    after.durable(Commit(b"", [tick(1)], 1, "h"))
    source.reading_done()
    send, _receive = anyio.create_memory_object_stream[list[Entry]](4)
    with anyio.move_on_after(0.2):
        await source.run_disposals(send.clone())
    assert (lakehouse.work / "f.jsonl").exists()  # its record is not durable yet
    after.durable(Commit(b"", [record], 2, "h"))
    with anyio.fail_after(5):
        await source.run_disposals(send)
    assert (lakehouse.archive / "f.jsonl").exists()
