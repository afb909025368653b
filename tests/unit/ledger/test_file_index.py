"""The consumed-file tables at start-up: the live ones are what the ledger says, and
tables that are missing, damaged, behind or ahead are rebuilt from the ledger; from a
checkpoint they answer every question of the inbox as the full fold's dict and sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger import checkpoints, file_index
from execd.ledger.index.files import DIRECTORY, FileTables, latest
from execd.ledger.index.store import MANIFEST, IndexStore
from execd.ledger.recovery import RecoveredState, recover
from execd.ledger.snapshot import fold_key
from execd.reader.consumed import seen_and_repeats
from execd.reader.lakehouse import CLAIM
from execd.sentinel.risk import Risk
from tests.helpers import records, write_config
from tests.pipeline.test_crash_states import FILES, REPEATS, run_until_idle


def names(ledger: Path) -> set[str]:
    """Every file name the ledger mentions, claim names' base names, and one it never does."""
    found = {"never.jsonl"}
    for record in records(ledger):
        body = record["body"]
        if record["kind"] == "input_file":
            found.add(body["file"])
        elif record["kind"] == "outcome" and body.get("source"):
            found.add(body["source"][0])
    found |= {m["name"] for m in map(CLAIM.match, list(found)) if m}
    return found


def answers(state: RecoveredState, asked: set[str]) -> dict[str, object]:
    """What the inbox and its leftovers ask of the fold's tables, for each name."""
    seen, repeats = seen_and_repeats(state.done, state.refusing, state.rejected)
    return {name: (state.done.get(name), name in state.rejected, name in state.changed,
                   name in seen, repeats.get(name, 0)) for name in sorted(asked)} | {
        "refusing": sorted(state.refusing), "progress": state.progress}


def full_fold(ledger: Path, cfg: config.Config) -> RecoveredState:
    """The state with checkpoints off: every record folded into a dict and sets."""
    return recover(ledger, repair=False, risk=Risk(cfg))


def table_entries(ledger: Path) -> tuple[list[object], int]:
    """Every entry of the live tables on disk, and the seq they cover."""
    store = IndexStore.open(ledger / DIRECTORY, latest)
    tables = FileTables(store.open_runs())
    try:
        return list(tables.entries()), store.through_seq
    finally:
        tables.close()
        store.close()


def start_up(directory: Path) -> tuple[RecoveredState, list[dict[str, object]]]:
    """Recover as the daemon does; the state and its file_index.rebuilt lines."""
    daemon = Daemon(config.load(directory / "execd.toml"), mode="run",
                    ledger_dir=directory / "ledger")
    daemon.risk = Risk(daemon.config)
    with capture_logs() as logged:
        state = daemon._recover()
    return state, [e for e in logged if e["event"] == "file_index.rebuilt"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs, a checkpoint every 3 records: the crash-state files and two repeats; then
    a.jsonl found changed in work/ at start-up (as if its move was lost), and a third
    a.jsonl (its second repeat)."""
    directory = tmp_path_factory.mktemp("base")
    lakehouse = directory / "lakehouse"
    (lakehouse / "inbox").mkdir(parents=True)
    for name, data in FILES.items():
        (lakehouse / "inbox" / name).write_bytes(data)
    anyio.run(run_until_idle, directory, list(REPEATS), 3)
    (lakehouse / "archive" / "a.jsonl").unlink()
    (lakehouse / "work" / "a.jsonl").write_bytes(b"changed since\n")
    anyio.run(run_until_idle, directory, ["a.jsonl"], 3)
    return directory


def copy(base: Path, to: Path) -> Path:
    shutil.copytree(base, to)
    return to


def test_the_base_ledger_holds_every_kind_of_entry(base: Path) -> None:
    state = full_fold(base / "ledger", config.load(base / "execd.toml").config)
    assert "a.jsonl" in state.done and "a.jsonl" in state.changed
    assert {"a.jsonl.repeat-1", "a.jsonl.repeat-2", "b.jsonl.repeat-1"} <= set(state.rejected)


def test_the_tables_rebuilt_from_the_ledger_equal_the_live_ones(base: Path,
                                                                tmp_path: Path) -> None:
    """The runs the checkpointers wrote hold what a rebuild through the same record
    holds, entry for entry; from them, start-up answers as the full fold does."""
    ledger = base / "ledger"
    live, through = table_entries(ledger)
    assert through == checkpoints.through_of(checkpoints.listed(ledger)[0].name) and live
    directory = copy(base, tmp_path / "copy")
    shutil.rmtree(directory / "ledger" / DIRECTORY)
    state, rebuilt = start_up(directory)
    [line] = rebuilt
    assert "no index" in str(line["reason"]) and line["entries"] == len(live)
    assert table_entries(directory / "ledger") == (live, through)
    cfg = config.load(base / "execd.toml").config
    assert answers(state, names(ledger)) == answers(full_fold(ledger, cfg), names(ledger))
    state.close_index()


def flip_a_run_byte(ledger: Path) -> None:
    run = next((ledger / DIRECTORY).glob("run-*.ids"))
    data = bytearray(run.read_bytes())
    data[-1] ^= 0xFF
    run.write_bytes(bytes(data))


def _behind(ledger: Path) -> None:
    file_index.create(ledger / DIRECTORY).close()


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda ledger: shutil.rmtree(ledger / DIRECTORY), "no index"),
    (lambda ledger: (ledger / DIRECTORY / MANIFEST).write_bytes(b"{}"), "not a manifest"),
    (flip_a_run_byte, "SHA-256"),
    (_behind, "behind"),
])
def test_missing_damaged_or_stale_tables_are_rebuilt(base: Path, tmp_path: Path,
                                                     damage: object, reason: str) -> None:
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    damage(ledger)  # type: ignore[operator]
    state, rebuilt = start_up(directory)
    [line] = rebuilt
    assert reason in str(line["reason"]), line
    assert state.checkpoint is not None
    cfg = config.load(directory / "execd.toml").config
    assert answers(state, names(ledger)) == answers(full_fold(ledger, cfg), names(ledger))
    state.close_index()


def test_tables_ahead_of_the_ledger_are_rebuilt(base: Path, tmp_path: Path) -> None:
    """A ledger put back from an older copy beside newer tables: they would call files
    consumed that never were there, so they are rebuilt from the ledger there is."""
    directory = copy(base, tmp_path / "copy")
    ledger = directory / "ledger"
    segment = ledger / "segment-00000001.jsonl"
    lines = segment.read_bytes().splitlines(keepends=True)
    first = next(n for n, x in enumerate(lines) if json.loads(x)["kind"] == "input_file")
    segment.write_bytes(b"".join(lines[:first + 1]))
    (ledger / "head.json").unlink()
    state, rebuilt = start_up(directory)
    [line] = rebuilt
    assert str(line["reason"]).startswith("ahead")
    cfg = config.load(directory / "execd.toml").config
    assert answers(state, names(base / "ledger")) == answers(full_fold(ledger, cfg),
                                                             names(base / "ledger"))
    assert table_entries(ledger)[1] == first + 1
    state.close_index()


def test_a_crash_around_a_run_and_its_checkpoint_answers_as_the_full_fold(
        base: Path, tmp_path: Path) -> None:
    """Killed before or after the tables' run through X is written, or after X's
    checkpoint record (so start-up may fold records the tables already cover, from the
    checkpoint before X): start-up uses the tables it finds, no rebuild, and answers
    every name as the full fold of the same ledger does."""
    full = (base / "ledger" / "segment-00000001.jsonl").read_bytes().splitlines(keepends=True)
    kinds = [json.loads(x)["kind"] for x in full]
    cuts = [cut for x in range(3, len(kinds), 3) if kinds[x] == "checkpoint"
            for cut in ((x, x - 3), (x, x), (x + 1, x))]
    assert len(cuts) > 6
    asked = names(base / "ledger")
    for k, through in cuts:
        directory = tmp_path / f"k{k}-{through}"
        ledger = directory / "ledger"
        ledger.mkdir(parents=True)
        (ledger / "segment-00000001.jsonl").write_bytes(b"".join(full[:k]))
        shutil.copytree(base / "ledger" / checkpoints.DIRECTORY, ledger / checkpoints.DIRECTORY)
        file_index.rebuild(ledger, through)[0].close()
        write_config(directory)
        cfg = config.load(directory / "execd.toml").config
        fast = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
        assert fast.file_index is not None and fast.file_index.rebuilt == [], (k, through)
        assert fast.checkpoint is not None or k <= 4, k
        assert answers(fast, asked) == answers(full_fold(ledger, cfg), asked), (k, through)
        fast.close_index()
