"""The on-disk id index at start-up: the live one is what the ledger says, and any index
that is missing, damaged, behind or ahead is rebuilt from the ledger, never trusted."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger import checkpoints, reindex
from execd.ledger.index.store import DIRECTORY, FILTER, MANIFEST, IndexStore
from execd.ledger.recovery import RecoveredState, recover
from execd.ledger.snapshot import encode_snapshot, fold_key
from execd.model.errors import IndexUnusable
from execd.sentinel.risk import Risk
from tests.helpers import damage_every_block, records, write_config
from tests.pipeline.test_crash_states import FILES, line, run_until_idle


def ledger_ids(ledger: Path, through: int | None = None) -> set[int]:
    """The ids the fold counts, read from the ledger's JSON as a test would by hand."""
    found = set()
    for record in records(ledger):
        if through is not None and record["seq"] > through:
            break
        body = record["body"]
        if record["kind"] == "order" or (record["kind"] == "outcome"
                                          and body["status"] != "QUARANTINED"):
            found.add(uuid.UUID(body["intent_id"]).int)
    return found


def index_keys(ledger: Path) -> tuple[list[int], int]:
    """Every key of the index's runs, in order, and the seq the index covers."""
    store = IndexStore.open(ledger / DIRECTORY)
    try:
        keys = sorted(int.from_bytes(record[:16]) for run in store.open_runs()
                      for record in run.records())
        return keys, store.through_seq
    finally:
        store.close()


def start_up(directory: Path) -> tuple[RecoveredState, list[dict[str, object]]]:
    """Recover as the daemon does; the state and its index.rebuilt lines."""
    daemon = Daemon(config.load(directory / "execd.toml"), mode="run",
                    ledger_dir=directory / "ledger")
    daemon.risk = Risk(daemon.config)
    with capture_logs() as logged:
        state = daemon._recover()
    return state, [e for e in logged if e["event"] == "index.rebuilt"]


def holds_exactly(state: RecoveredState, ids: set[int]) -> None:
    """``state.seen`` refuses every id of ``ids``, admits another, and counts them."""
    assert len(state.seen) == len(ids)
    assert not any(state.seen.add(uuid.UUID(int=key)) for key in ids)
    assert state.seen.add(uuid.uuid5(uuid.NAMESPACE_OID, "never seen"))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole run over the crash-state files, a checkpoint every 3 records."""
    directory = tmp_path_factory.mktemp("base")
    inbox = directory / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    for name, data in FILES.items():
        (inbox / name).write_bytes(data)
    anyio.run(run_until_idle, directory, [], 3)
    return directory


def copy(base: Path, to: Path) -> Path:
    shutil.copytree(base, to)
    return to


def test_the_index_rebuilt_from_the_ledger_equals_the_live_one(base: Path, tmp_path: Path) -> None:
    """The runs the checkpointers wrote hold exactly the ids of the records through the
    last checkpoint, once each (runs are disjoint); a rebuild writes the same keys."""
    ledger = base / "ledger"
    live, through = index_keys(ledger)
    newest = checkpoints.through_of(checkpoints.listed(ledger)[0].name)
    assert through == newest and live
    assert len(live) == len(set(live)), "an id in two runs"
    assert set(live) == ledger_ids(ledger, through)
    directory = copy(base, tmp_path / "copy")
    shutil.rmtree(directory / "ledger" / DIRECTORY)
    state, rebuilt = start_up(directory)
    [line_] = rebuilt
    assert "no index" in str(line_["reason"]) and line_["ids"] == len(live)
    assert index_keys(directory / "ledger") == (live, through)
    holds_exactly(state, ledger_ids(ledger))


def flip_a_run_byte(ledger: Path) -> None:
    run = next((ledger / DIRECTORY).glob("run-*.ids"))
    data = bytearray(run.read_bytes())
    data[-1] ^= 0xFF
    run.write_bytes(bytes(data))


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda ledger: shutil.rmtree(ledger / DIRECTORY), "no index"),
    (lambda ledger: (ledger / DIRECTORY / MANIFEST).write_bytes(b"{}"), "not a manifest"),
    (flip_a_run_byte, "SHA-256"),
    (lambda ledger: IndexStore.create(ledger / DIRECTORY).close(), "behind"),
])
def test_a_missing_damaged_or_stale_index_is_rebuilt(base: Path, tmp_path: Path, damage: object,
                                                     reason: str) -> None:
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    damage(ledger)  # type: ignore[operator]
    state, rebuilt = start_up(directory)
    [line_] = rebuilt
    assert reason in str(line_["reason"]), line_
    assert state.checkpoint is not None
    holds_exactly(state, ledger_ids(ledger))
    assert index_keys(ledger)[0] == sorted(ledger_ids(ledger, index_keys(ledger)[1]))


def test_a_damaged_block_met_at_start_up_is_rebuilt_at_once(base: Path, tmp_path: Path) -> None:
    """Without a saved filter, start-up builds one from every run's keys and so reads
    every block: a damaged one means the index is rebuilt then, not a stop and a
    restart (review 3, F3)."""
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    (ledger / DIRECTORY / FILTER).unlink(missing_ok=True)
    damage_every_block(ledger)
    state, rebuilt = start_up(directory)
    [line_] = rebuilt
    assert "is not the one its CRC" in str(line_["reason"]), line_
    holds_exactly(state, ledger_ids(ledger))


def test_an_index_ahead_of_the_ledger_is_rebuilt(base: Path, tmp_path: Path) -> None:
    """A ledger put back from an older copy beside a newer index: the index's later ids
    would refuse intents that never ran, so it is rebuilt from the ledger there is."""
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    segment = ledger / "segment-00000001.jsonl"
    kept = segment.read_bytes().splitlines(keepends=True)[:4]
    segment.write_bytes(b"".join(kept))
    (ledger / "head.json").unlink()
    state, rebuilt = start_up(directory)
    [line_] = rebuilt
    assert str(line_["reason"]).startswith("ahead")
    holds_exactly(state, ledger_ids(ledger))
    assert index_keys(ledger)[1] == 4


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another ledger of the same shape (the same files, each intent id another)."""
    directory = tmp_path_factory.mktemp("other")
    inbox = directory / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    for name, data in FILES.items():
        for n in range(1, 10):
            data = data.replace(line(n), line(n + 100))
        (inbox / name).write_bytes(data)
    anyio.run(run_until_idle, directory, [], 3)
    return directory


@pytest.mark.parametrize("start", ["newest", "older", "full"])
def test_another_ledgers_index_is_rebuilt_never_used(base: Path, other: Path, tmp_path: Path,
                                                    start: str) -> None:
    """An index/ copied from another ledger (another shard's, a test's) would let this
    ledger's intents run again and refuse fresh ones: its record hash is not this
    chain's, so it is rebuilt — at start-up from the newest checkpoint (the index
    through it), from an older one and from the full fold (the index past it)."""
    assert index_keys(other / "ledger")[1] == index_keys(base / "ledger")[1]
    assert ledger_ids(other / "ledger").isdisjoint(ledger_ids(base / "ledger"))
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    shutil.rmtree(ledger / DIRECTORY)
    shutil.copytree(other / "ledger" / DIRECTORY, ledger / DIRECTORY)
    if start == "older":
        checkpoints.listed(ledger)[0].unlink()
    elif start == "full":
        shutil.rmtree(ledger / checkpoints.DIRECTORY)
    state, rebuilt = start_up(directory)
    [line_] = rebuilt
    assert str(line_["reason"]).startswith("another ledger's"), line_
    # The consumed-file tables in it (index/files/) are the other ledger's too.
    assert state.file_index is not None
    [files] = state.file_index.rebuilt
    assert files.reason.startswith("another ledger's"), files.reason
    assert (state.checkpoint is None) == (start == "full")
    holds_exactly(state, ledger_ids(ledger))
    keys, through = index_keys(ledger)
    assert keys == sorted(ledger_ids(ledger, through))


def test_a_rebuild_writes_its_ids_in_batches_of_bounded_size(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory: a rebuild holds a batch of ids at a time, each written as a run through
    the record that filled it, then merged into one run holding exactly the ledger's
    ids, each once (an order and its outcome may fall in two batches)."""
    monkeypatch.setattr(reindex, "REBUILD_BATCH", 2)
    batches: list[tuple[int, int]] = []
    write_run = IndexStore.write_run

    def counted(self: IndexStore, records: Any, through_seq: int, *args: Any,
                **kwargs: Any) -> Any:
        records = list(records)
        if self.directory.name == DIRECTORY:  # the id index's (not index/files/)
            batches.append((len(records), through_seq))
        return write_run(self, records, through_seq, *args, **kwargs)

    monkeypatch.setattr(IndexStore, "write_run", counted)
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    shutil.rmtree(ledger / DIRECTORY)
    state, [line_] = start_up(directory)
    assert len(batches) > 2 and all(count <= 3 for count, _ in batches), batches
    seqs = [seq for _, seq in batches]
    assert seqs == sorted(set(seqs))
    holds_exactly(state, ledger_ids(ledger))
    keys, through = index_keys(ledger)
    assert through == seqs[-1] and keys == sorted(ledger_ids(ledger, through))
    assert line_["ids"] == len(keys)
    store = IndexStore.open(ledger / DIRECTORY)
    assert len(store.manifest.runs) == 1
    store.close()


def crash_cuts(base: Path) -> list[tuple[int, int]]:
    """(k, index through) for each checkpoint X: the ledger cut right after X (its record
    not durable) with the index before and after X's run, and cut right after X's
    checkpoint record, the index through X."""
    kinds = [r["kind"] for r in records(base / "ledger")]
    cuts = []
    for x in range(3, len(kinds), 3):
        if kinds[x] != "checkpoint":  # kinds[x] is record x + 1
            continue
        cuts += [(x, x - 3), (x, x), (x + 1, x)]
    return cuts


async def test_a_crash_around_a_run_and_its_checkpoint_recovers_every_id(
        base: Path, tmp_path: Path) -> None:
    """Killed before or after the run through X is written, or after X's checkpoint record:
    start-up uses the index it finds (no rebuild), holds exactly the ledger's ids, has the
    full fold's state, and the restart runs nothing twice."""
    full = (base / "ledger" / "segment-00000001.jsonl").read_bytes().splitlines(keepends=True)
    cuts = crash_cuts(base)
    assert len(cuts) > 6
    for k, through in cuts:
        directory = tmp_path / f"k{k}-{through}"
        ledger = directory / "ledger"
        ledger.mkdir(parents=True)
        (ledger / "segment-00000001.jsonl").write_bytes(b"".join(full[:k]))
        shutil.copytree(base / "ledger" / checkpoints.DIRECTORY, ledger / checkpoints.DIRECTORY)
        reindex.rebuild(ledger, through)[0].close()
        write_config(directory)
        cfg = config.load(directory / "execd.toml").config
        fast = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
        assert fast.index is not None and fast.index.rebuilt == [], (k, through)
        holds_exactly(fast, ledger_ids(ledger))
        aside = directory / "aside"
        (ledger / checkpoints.DIRECTORY).rename(aside)
        slow = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
        aside.rename(ledger / checkpoints.DIRECTORY)
        fast.close_index()
        slow.close_index()
        assert fast.unheld is not None and slow.unheld is not None
        assert encode_snapshot(fast.unheld) == encode_snapshot(slow.unheld)
        # From the newest checkpoint whose record the cut kept (none before the first one).
        newest = k - 1 if k % 3 == 1 else k - 3
        assert fast.checkpoint == (checkpoints.name(newest) if newest else None), k


@pytest.mark.parametrize("index", ["kept", "deleted", "damaged"])
async def test_an_intent_repeated_after_a_restart_is_a_duplicate(
        base: Path, tmp_path: Path, index: str) -> None:
    """The same intents, in a new file after a restart (with the index as it was, deleted
    or damaged): each is refused INTENT_DUPLICATE; none fills twice."""
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    if index == "deleted":
        shutil.rmtree(ledger / DIRECTORY)
    elif index == "damaged":
        flip_a_run_byte(ledger)
    again = b"".join(line(n) + b"\n" for n in (1, 2, 3, 4))
    (directory / "lakehouse" / "inbox" / "e.jsonl").write_bytes(again)
    await run_until_idle(directory, [], 3)
    found = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    repeated = [body for body in found if body["source"][0] == "e.jsonl"]
    assert [body["reason"] for body in repeated] == ["INTENT_DUPLICATE"] * 4
    filled = Counter(body["intent_id"] for body in found if body["status"] == "FILLED")
    assert max(filled.values()) == 1
    assert set(index_keys(ledger)[0]) <= ledger_ids(ledger)


@pytest.mark.parametrize("what", ["file", "dangling", "loop"])
def test_a_file_tables_directory_that_is_no_directory_stops_start_up(
        base: Path, tmp_path: Path, what: str) -> None:
    """index/files/ as a file or a link to nothing is none of execd's to remove: start-up
    refuses with IndexUnusable (exit 3, so systemd does not restart it in a loop)
    naming it, never a traceback."""
    directory = copy(base, tmp_path / "copy")
    files = directory / "ledger" / DIRECTORY / "files"
    shutil.rmtree(files)
    if what == "file":
        files.write_bytes(b"not an index")
    elif what == "dangling":
        files.symlink_to(tmp_path / "nowhere")
    else:
        files.symlink_to(files)
    with pytest.raises(IndexUnusable, match="consumed-file tables in this directory"):
        start_up(directory)
