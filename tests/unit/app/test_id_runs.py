"""The id index while running: a run per checkpoint to the sentinel, compaction beside it."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from execd.app.id_runs import IdRuns
from execd.ledger.index.filter import BlockedBloom, words_for
from execd.ledger.index.ids import IdIndex
from execd.ledger.index.store import IndexStore
from execd.model import reasons
from execd.sentinel.core import SentinelCore
from execd.service import logs
from tests.unit.sentinel.test_sentinel import item, refusal


def ids(first: int, count: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=(n * 0x9E3779B97F4A7C15 + (n << 90)) % (1 << 128))
            for n in range(first, first + count)]


def pair(directory: Path) -> tuple[IndexStore, IdRuns]:
    store = IndexStore.create(directory)
    runs = IdRuns(store, IdIndex(), IdIndex(), saved_filter=False, log=logs.get("ledger"))
    return store, runs


def as_set(index: IdIndex, every: list[uuid.UUID]) -> None:
    """``index`` refuses each of ``every`` and counts each once."""
    assert len(index) == len(every)
    assert not any(index.add(intent_id) for intent_id in every)


async def test_each_checkpoint_s_run_moves_exactly_its_ids_out_of_recent(tmp_path: Path) -> None:
    """The sentinel decided ids past X too; after the hand-over only those stay recent, and
    both indexes still answer as the set of every id."""
    store, runs = pair(tmp_path)
    durable, later = ids(0, 300), ids(300, 5)
    for intent_id in durable:
        assert runs.sentinel.add(intent_id) and runs.shadow.add(intent_id)
    for intent_id in later:
        runs.sentinel.add(intent_id)
    await anyio.to_thread.run_sync(runs.write, 10, "h10")
    runs.hand_over()
    assert store.through_seq == 10 and len(store.manifest.runs) == 1
    assert runs.sentinel.recent == {i.int for i in later} and not runs.shadow.recent
    as_set(runs.sentinel, durable + later)
    as_set(runs.shadow, durable)
    assert runs.sentinel.add(uuid.UUID(int=7))


async def test_compaction_keeps_every_answer_even_when_it_beats_the_hand_over(
        tmp_path: Path) -> None:
    """Four runs merge in a worker thread; a merge that took a run the sentinel was not yet
    handed leaves that run's ids in the sentinel's index exactly once."""
    store, runs = pair(tmp_path)
    every: list[uuid.UUID] = []
    with capture_logs() as logged:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runs.compact)
            for number in range(3):
                batch = ids(100 * number, 100)
                every += batch
                for intent_id in batch:
                    runs.sentinel.add(intent_id)
                    runs.shadow.add(intent_id)
                await anyio.to_thread.run_sync(runs.write, 10 * (number + 1), f"h{number}")
                runs.hand_over()
            # The fourth run is live, not yet handed over, when the merge is made live.
            batch = ids(300, 100)
            every += batch
            for intent_id in batch:
                runs.sentinel.add(intent_id)
                runs.shadow.add(intent_id)
            await anyio.to_thread.run_sync(runs.write, 40, "h40")
            runs._written.set()
            with anyio.fail_after(10):
                while len(store.manifest.runs) > 1:
                    await anyio.sleep(0.01)
                while not any(e["event"] == "index.compacted" for e in logged):
                    await anyio.sleep(0.01)
            runs.hand_over()
            runs.close()
    assert len(runs.sentinel.runs) == 1 and not runs.sentinel.recent
    as_set(runs.sentinel, every)
    runs.apply_compactions()
    assert len(runs.shadow.runs) == 1
    as_set(runs.shadow, every)


def test_a_filter_false_positive_still_admits() -> None:
    """A filter that says "maybe" for every id (every bit set) refuses nothing new: the
    runs and recent ids decide, so only a real repeat is a duplicate."""
    capacity = 1 << 10
    bloom = BlockedBloom(capacity, data=b"\xff" * (8 * words_for(capacity)))
    index = IdIndex(bloom=bloom)
    sentinel = SentinelCore({"binance": "paper"}, index)
    for n in range(1, 20):
        assert refusal(sentinel.handle(item(n, quantity="0")))[1] != reasons.INTENT_DUPLICATE
    assert index.false_positives == 19
    assert refusal(sentinel.handle(item(3)))[1] == reasons.INTENT_DUPLICATE


async def test_a_full_filter_grows_at_a_checkpoint_and_start_up_uses_it(tmp_path: Path) -> None:
    """A filter sized for fewer ids than the history brings would fill (false positives
    rise, and a start-up must rebuild the over-full saved one from every run): the
    checkpoint that finds the shadow's full grows it to twice the ids, saves it, and
    hands a copy to the sentinel, which keeps answering exactly."""
    from execd.ledger import reindex

    store = IndexStore.create(tmp_path)
    runs = IdRuns(store, IdIndex(capacity=64), IdIndex(capacity=64), saved_filter=True,
                  log=logs.get("ledger"))
    durable, later = ids(0, 300), ids(300, 5)
    for intent_id in durable:
        assert runs.sentinel.add(intent_id) and runs.shadow.add(intent_id)
    for intent_id in later:
        runs.sentinel.add(intent_id)
    assert runs.shadow.full and runs.sentinel.full
    with capture_logs() as logged:
        await anyio.to_thread.run_sync(runs.write, 10, "h10")
    runs.hand_over()
    assert [e["capacity"] for e in logged if e["event"] == "index.filter_grown"] == [600]
    assert not runs.shadow.full and not runs.sentinel.full
    assert runs.sentinel.bloom.capacity == 600
    as_set(runs.sentinel, durable + later)
    as_set(runs.shadow, durable)
    saved = store.load_filter()
    assert saved is not None and saved[0].capacity == 600 and saved[1] == 10
    runs.close()
    store.close()
    opened = IndexStore.open(tmp_path)
    index, from_file = reindex._index_over(opened)
    assert from_file and index.bloom.capacity == 600
    as_set(index, durable)
    index.close()
    opened.close()


async def test_runs_behind_the_saved_filter_go_into_it_at_the_first_checkpoint(
        tmp_path: Path) -> None:
    """Start-up reads no run into the saved filter: the runs after it are asked through
    their own filters (both indexes refuse their ids meanwhile), and the first
    checkpoint fills the shadow's filter in its thread, saves it, and hands a copy to
    the sentinel, whose runs are then behind nothing."""
    from execd.ledger import reindex
    from execd.ledger.index.filter import pack

    store = IndexStore.create(tmp_path)
    old, behind, durable = ids(0, 200), ids(200, 100), ids(300, 50)
    bloom = BlockedBloom(1 << 12)
    bloom.update(i.int for i in old)
    store.write_run(sorted(i.bytes for i in old), 5, through_hash="h5").close()
    store.save_filter(pack(bloom, 5))
    store.write_run(sorted(i.bytes for i in behind), 8, through_hash="h8").close()
    store.close()
    store = IndexStore.open(tmp_path)
    sentinel, through = reindex._index_over(store)
    assert through == 5 and sentinel.behind
    shadow = IdIndex(store.open_runs(), bloom=sentinel.bloom.copy(), bloom_through=through)
    runs = IdRuns(store, sentinel, shadow, saved_filter=True, log=logs.get("ledger"))
    as_set(sentinel, old + behind)
    as_set(shadow, old + behind)
    for intent_id in durable:
        assert sentinel.add(intent_id) and shadow.add(intent_id)
    await anyio.to_thread.run_sync(runs.write, 10, "h10")
    runs.hand_over()
    assert not shadow.behind and not sentinel.behind
    as_set(sentinel, old + behind + durable)
    as_set(shadow, old + behind + durable)
    saved = store.load_filter()
    assert saved is not None and saved[1] == 10
    runs.close()
    sentinel.close()
    store.close()
    opened = IndexStore.open(tmp_path)
    index, through = reindex._index_over(opened)
    assert through == 10 and not index.behind
    as_set(index, old + behind + durable)
    index.close()
    opened.close()


async def test_a_run_not_handed_over_goes_with_the_next_one_and_no_filter_forgets_it(
        tmp_path: Path) -> None:
    """A checkpoint cut short after its run was written (the file tables' run failed,
    or the bound passed) once skipped the hand-over: the next hand-over then adopted
    the first write's filled filter, without the second run's ids, and forgot those
    ids from the sentinel's recent set, so their repeats were admitted (review 3, F1).
    Every run written is handed over, and the filter adopted first."""
    from execd.ledger import reindex
    from execd.ledger.index.filter import pack
    from execd.ledger.index.ids import every_id_maybe

    store = IndexStore.create(tmp_path)
    old, behind = ids(0, 10), ids(10, 10)
    store.write_run(sorted(i.bytes for i in old), 10, through_hash="h10").close()
    saved = IdIndex(store.open_runs())
    store.save_filter(pack(saved.bloom, 10))
    saved.close()
    store.write_run(sorted(i.bytes for i in behind), 20, through_hash="h20").close()
    store.close()
    store = IndexStore.open(tmp_path)
    sentinel, through = reindex._index_over(store)
    assert sentinel.behind and through == 10
    shadow = IdIndex(store.open_runs(), bloom=every_id_maybe(), bloom_through=through)
    runs = IdRuns(store, sentinel, shadow, saved_filter=True, log=logs.get("ledger"))
    first, second = ids(100, 5), ids(200, 5)
    assert all(sentinel.add(i) for i in first)
    runs.prepare()
    for intent_id in first:
        assert shadow.add(intent_id)
    await anyio.to_thread.run_sync(runs.write, 30, "h30")  # fills the shadow's filter
    # The checkpoint through 30 ends here, its snapshot unwritten: no hand-over yet.
    assert all(sentinel.add(i) for i in second)
    for intent_id in second:
        assert shadow.add(intent_id)
    await anyio.to_thread.run_sync(runs.write, 40, "h40")
    runs.hand_over()
    assert not sentinel.recent and len(sentinel.runs) == 4
    as_set(sentinel, old + behind + first + second)
    as_set(shadow, old + behind + first + second)
    runs.close()
    sentinel.close()
    store.close()


async def test_a_merge_that_cannot_be_written_is_logged_and_trading_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction's merged run is as large as its inputs: a full disk may refuse it
    while the ledger still has room. It is logged (``index.uncompacted``), the index
    stays as it was, and the next run written tries again, as the file tables' merges
    do; it never stops the daemon (review 3, F2)."""
    store, runs = pair(tmp_path)
    every: list[uuid.UUID] = []
    fail = [True]

    def merge_due(*_: object, **__: object) -> None:
        if fail[0]:
            raise OSError(28, "No space left on device")
        return None

    monkeypatch.setattr(store, "merge_due", merge_due)
    with capture_logs() as logged:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runs.compact)
            for seq in range(1, 6):
                batch = ids(seq * 100, 10)
                every.extend(batch)
                for intent_id in batch:
                    assert runs.sentinel.add(intent_id) and runs.shadow.add(intent_id)
                await anyio.to_thread.run_sync(runs.write, seq, f"h{seq}")
                runs.hand_over()
                await anyio.sleep(0.01)
            fail[0] = False
            runs.close()
    failed = [e for e in logged if e["event"] == "index.uncompacted"]
    assert failed and all(e["index"] == "ids" and "No space" in e["error"] for e in failed)
    as_set(runs.sentinel, every)
    store.close()
