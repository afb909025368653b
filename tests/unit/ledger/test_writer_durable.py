"""The writer's durability contract: a record's ``then`` is listed only once it is on disk.

What must never happen: an action listed before its record is fsynced, listed with a
seq other than the record's own in the ledger, listed twice, or out of ledger order.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec

from execd.ledger.record import LedgerChain, record_decoder
from execd.ledger.segments import SegmentStore, list_segments
from execd.ledger.writer import Commit, LedgerWriter
from execd.model.messages import LATE, Entry, StopRecord
from execd.model.once_durable import Call, OnceDurable, Wake


def entry(seq: int, then: OnceDurable | None = None, n: int = 0) -> Entry:
    return Entry(seq, "stop", n, StopRecord(f"r{n}"), then)


def on_disk(directory: Path) -> dict[int, str]:
    """Ledger seq -> the record's body text, as the segment files hold them now."""
    found = {}
    for path in list_segments(directory):
        for line in path.read_bytes().splitlines():
            record = record_decoder.decode(line)
            found[record.seq] = msgspec.json.decode(record.body)["reason"]
    return found


def test_once_durable_lists_actions_with_ledger_seqs_in_commit_order() -> None:
    first, second = Wake(anyio.Event()), Call(lambda seq: None)
    entries = [entry(3, first), entry(LATE), entry(4), entry(LATE, second)]
    commit = Commit(b"", entries, last_seq=12, last_hash="h")
    # The commit holds ledger seqs 9..12: the ingest seq (3, LATE) plays no part.
    assert commit.once_durable() == [(9, entries[0], first), (12, entries[3], second)]
    assert Commit(b"", [entry(0), entry(1)], 1, "h").once_durable() == []


async def test_each_action_comes_after_its_fsync_with_its_own_seq(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, 1 << 20)
    store.open()
    listed: list[tuple[int, str, OnceDurable]] = []

    def durable(commit: Commit) -> None:
        written = on_disk(tmp_path)
        assert max(written) == commit.last_seq  # this commit is on disk, and no more
        for seq, record, action in commit.once_durable():
            assert written[seq] == record.body.reason  # type: ignore[attr-defined]
            listed.append((seq, written[seq], action))

    # Starts after an existing chain, at ledger seq 5, like a restart.
    writer = LedgerWriter(LedgerChain(5), store, first_ingest_seq=0, commit_records=2,
                          commits_in_flight=1, on_durable=durable)
    actions = {n: Wake(anyio.Event()) for n in (0, 2, 3, 9)}
    send, receive = anyio.create_memory_object_stream[list[Entry]](8)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run, receive)
        async with send:
            # Ingest seq 1 comes before 0: the writer holds it, and numbers both in order.
            await send.send([entry(1, n=1), entry(2, actions[2], n=2)])
            await send.send([entry(0, actions[0], n=0)])
            await send.send([entry(LATE, actions[9], n=9)])
            await send.send([entry(3, actions[3], n=3), entry(4, n=4)])
    store.close()
    ledger = on_disk(tmp_path)
    assert [(seq, reason) for seq, reason, _ in listed] == sorted(
        (seq, reason) for seq, reason in ledger.items()
        if reason in {"r0", "r2", "r3", "r9"})
    assert [action for _, reason, action in listed] == [
        actions[int(reason[1:])] for _, reason, _ in listed]
    assert ledger[5] == "r0" and ledger[7] == "r2"  # the ingest order, from seq 5


async def test_nothing_is_listed_for_records_that_never_reach_the_disk(tmp_path: Path) -> None:
    """A failed fsync stops the writer before the hook: nobody is told it is durable."""

    class Failing(SegmentStore):
        def write_durably(self, data: bytes) -> None:
            raise OSError(5, "Input/output error")

    store = Failing(tmp_path, 1 << 20)
    store.open()
    heard: list[Commit] = []
    writer = LedgerWriter(LedgerChain(), store, commit_records=4, commits_in_flight=1,
                          on_durable=heard.append)
    send, receive = anyio.create_memory_object_stream[list[Entry]](2)
    woken = anyio.Event()
    await send.send([entry(0, Wake(woken))])
    send.close()
    failed = False
    try:
        await writer.run(receive)
    except BaseException as exc:  # noqa: BLE001 - an ExceptionGroup from the writer's task group
        failed = "Input/output error" in repr(exc)
    store.close()
    assert failed and heard == [] and not woken.is_set()
