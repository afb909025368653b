"""Many consumed files, then a restart from a checkpoint: the inbox behaves as after a
full fold (a repeat's claim number, a file changed in work/, a leftover), while start-up
holds none of the consumed files in memory (they are the on-disk tables')."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger import checkpoints
from execd.ledger.recovery import recover
from execd.ledger.snapshot import fold_key
from execd.sentinel.risk import Risk
from tests.helpers import records, write_config
from tests.pipeline.test_checkpoints import checkpointed, rewritten, started_from
from tests.unit.ledger.test_file_index import answers, full_fold, names

MANY = 2000


def tick(n: int) -> bytes:
    return json.dumps({"kind": "tick", "time": n}).encode() + b"\n"


async def run_until_idle(directory: Path, every: int, deliver: dict[str, bytes]) -> None:
    """Run the daemon (``every``: ledger.checkpoint_records) until inbox and work/ are
    empty; then deliver ``deliver`` into the inbox, and run until idle again."""
    path = write_config(directory, segment_bytes=f"{256 << 20}\ncheckpoint_records = {every}")
    daemon = Daemon(config.load(path), mode="run")
    lakehouse = directory / "lakehouse"

    async def driver() -> None:
        while True:
            await anyio.sleep(0.02)
            if any(any((lakehouse / d).iterdir()) for d in ("inbox", "work")):
                continue
            if deliver:
                for name, data in deliver.items():
                    (lakehouse / "inbox" / f".{name}").write_bytes(data)
                    (lakehouse / "inbox" / f".{name}").rename(lakehouse / "inbox" / name)
                deliver.clear()
                continue
            daemon.stopping.set()
            return

    with anyio.fail_after(600):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()


def after(ledger: Path, seq: int) -> list[tuple[str, object]]:
    """The records after ``seq`` that the inputs decide (not start, stop or checkpoint)."""
    return [(r["kind"], r["body"]) for r in records(ledger)
            if r["seq"] > seq and r["kind"] not in ("start", "stop", "checkpoint")]


def listing(lakehouse: Path) -> dict[str, list[str]]:
    return {d: sorted(p.name for p in (lakehouse / d).iterdir())
            for d in ("inbox", "work", "archive", "rejected")}


async def test_a_restart_after_many_files_behaves_as_after_a_full_fold(tmp_path: Path) -> None:
    base = tmp_path / "base"
    inbox = base / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    for n in range(MANY):
        (inbox / f"f{n:04d}.jsonl").write_bytes(tick(n + 1))
    await run_until_idle(base, 50, {"f0001.jsonl": tick(1)})
    last = max(r["seq"] for r in records(base / "ledger"))
    assert (base / "lakehouse" / "rejected" / "f0001.jsonl.repeat-1").exists()
    runs = {}
    for every in (50, 0):  # from a checkpoint, and the full fold with tables in memory
        directory = tmp_path / f"every-{every}"
        shutil.copytree(base, directory)
        lakehouse = directory / "lakehouse"
        (lakehouse / "archive" / "f0002.jsonl").unlink()
        (lakehouse / "work" / "f0002.jsonl").write_bytes(tick(99))  # changed, move lost
        (lakehouse / "work" / "left.jsonl").write_bytes(tick(MANY + 1))  # claimed, unread
        if every:
            write_config(directory, segment_bytes=f"{256 << 20}\ncheckpoint_records = 50")
            cfg = config.load(directory / "execd.toml").config
            state = recover(directory / "ledger", repair=False, risk=Risk(cfg),
                            fold_key=fold_key(cfg))
            assert state.checkpoint is not None and state.file_index is not None
            assert state.file_index.rebuilt == []
            # Start-up holds only what the records after the checkpoint changed.
            assert state.file_index.tables.recent < 50 < MANY
            assert "f1999.jsonl" in state.done and "f0002.jsonl" in state.done
            state.close_index()
        await run_until_idle(directory, every, {
            "f0001.jsonl": tick(1), "f0005.jsonl": tick(5), "fresh.jsonl": tick(MANY + 2)})
        runs[every] = (after(directory / "ledger", last), listing(lakehouse))
    assert runs[50] == runs[0]
    decided, files = runs[50]
    assert {"f0001.jsonl.repeat-2", "f0005.jsonl.repeat-1", "f0002.jsonl"} <= set(
        files["rejected"])
    assert {"left.jsonl", "fresh.jsonl"} <= set(files["archive"])
    assert [body["reason"] for kind, body in decided if kind == "outcome"].count(
        "INPUT_FILE_CHANGED") == 1


async def test_a_snapshot_of_the_version_before_is_ignored_for_the_full_fold(
        tmp_path: Path) -> None:
    """A version-2 snapshot (the tables inline), vouched for by its record: start-up
    ignores it with its reason and folds from an older one or the whole ledger, and
    the tables answer as the full fold does."""
    ledger, cfg = await checkpointed(tmp_path)
    newest = checkpoints.listed(ledger)[0]
    rewritten(newest, {"version": 2, "done": [], "rejected": [], "changed": []}, ledger)
    used, ignored = started_from(ledger, cfg)
    assert used != newest.name
    [why] = [w for n, w in ignored if n == newest.name]
    assert why.startswith("not a snapshot")
    state = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    asked = names(ledger)
    assert answers(state, asked) == answers(full_fold(ledger, cfg), asked)
    state.close_index()
