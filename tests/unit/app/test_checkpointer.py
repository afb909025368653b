"""The checkpointer's answers to the writer: bounded in time, skipped in a drain, and old
snapshots pruned only once the new one's record is durable."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec

from execd.app.checkpointer import Checkpointer
from execd.ledger import checkpoints
from execd.ledger.fold import Fold
from execd.ledger.record import GENESIS, LedgerChain
from execd.ledger.snapshot import ChainEnd
from execd.ledger.writer import Commit
from execd.model.messages import LATE, Entry, StopRecord, encode
from execd.service import logs


def checkpointer(ledger: Path, **options: object) -> Checkpointer:
    return Checkpointer(ledger, Fold(None), ChainEnd(0, GENESIS, 0, 0, 0), key="k", every=2,
                        kept=1, log=logs.get("ledger"), **options)  # type: ignore[arg-type]


def commit(chain: LedgerChain, *bodies: tuple[str, msgspec.Struct]) -> Commit:
    entries = [Entry(LATE, kind, 0, body) for kind, body in bodies]  # type: ignore[arg-type]
    data = b"".join(chain.append(e.kind, 0, encode(e.body)) for e in entries)
    return Commit(data, entries, chain.next_seq - 1, chain.prev_hash)


async def test_the_older_snapshot_stays_until_the_new_one_s_record_is_durable(
        tmp_path: Path) -> None:
    """With one snapshot kept, a crash between writing the new one and its record being
    durable must still find the old one, which its own record vouches for."""
    old = tmp_path / checkpoints.DIRECTORY / checkpoints.name(1)
    old.parent.mkdir()
    old.write_bytes(b"the previous run's vouched snapshot")
    taker = checkpointer(tmp_path, good={old.name})
    chain = LedgerChain()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(taker.run)
            taker.durable(commit(chain, ("stop", StopRecord("a")), ("stop", StopRecord("b"))))
            record = await taker.take(2, chain.prev_hash)
            assert record.snapshot == checkpoints.name(2) and record.skipped is None
            assert old.exists()  # its successor's record is not even chained yet
            taker.durable(commit(chain, ("checkpoint", record)))
            while old.exists():
                await anyio.sleep(0.01)
            taker.close()
    assert [p.name for p in checkpoints.listed(tmp_path)] == [checkpoints.name(2)]


async def test_a_checkpoint_not_written_in_time_is_recorded_as_skipped(tmp_path: Path) -> None:
    """Record 2 never becomes durable here: past the bound, the writer gets a record that
    names no snapshot instead of waiting on."""
    taker = checkpointer(tmp_path, timeout_s=0.05)
    with anyio.fail_after(30):
        record = await taker.take(2, "ab" * 32)
    assert (record.through_seq, record.head_hash) == (2, "ab" * 32)
    assert (record.snapshot, record.sha256, record.size) == (None, None, None)
    assert record.skipped == "not written within 0.05 s (ledger.checkpoint_timeout_ms)"
    assert checkpoints.listed(tmp_path) == []


async def test_a_drain_skips_the_checkpoint_at_once(tmp_path: Path) -> None:
    stopping = anyio.Event()
    stopping.set()
    taker = checkpointer(tmp_path, stopping=stopping)
    with anyio.fail_after(30):
        record = await taker.take(2, "cd" * 32)
    assert record.skipped == "the daemon is draining" and record.snapshot is None
