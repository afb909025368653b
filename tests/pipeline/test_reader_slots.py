"""Operator commands while the reader waits for a ``queues.files`` slot.

The reader may only number a file's last items once it holds a slot, under the same
lock an operator's tick is numbered under. Numbered before the wait, they could be
overtaken by a tick numbered after them; a halt then made the sentinel insert its
record at the wrong place, one seq was never sent, and the writer waited for it for
ever: commands unanswered, and a stop that could not drain.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.scan import scan
from execd.reader import disposals
from execd.service.control import Request
from tests.helpers import drop, intent, lines, records, write_config


async def test_a_tick_and_a_halt_while_the_reader_waits_for_a_slot_are_answered_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands sent while the reader waits for a file slot never leave a gap in the
    ledger's sequence: each is answered, every record lands, and the stop drains."""
    path = write_config(tmp_path, items=1, commit_records=1, q=4, settle=0)
    path.write_text(path.read_text().replace("commits = 1", "commits = 1\nfiles = 1"))
    lakehouse = tmp_path / "lakehouse"
    # The first file's move waits until the commands are in, so the second file's
    # reader holds its last items while it waits for the one slot.
    release = threading.Event()
    move = disposals.Disposals.move_logged

    def held_move(self: disposals.Disposals, source: Path, target: Path, event: str) -> bool:
        if source.name == "f0.jsonl":
            release.wait(10)
        return move(self, source, target, event)

    monkeypatch.setattr(disposals.Disposals, "move_logged", held_move)
    daemon = Daemon(config.load(path), mode="run")
    answers: dict[str, Any] = {}

    async def command(name: str, request: Request) -> None:
        answers[name] = await daemon.commands.command(request)

    async def operator() -> None:
        drop(lakehouse / "inbox", "f0.jsonl", lines(intent(1)))
        drop(lakehouse / "inbox", "f1.jsonl", lines(intent(2)))
        while (daemon.graph is None or daemon.graph.inbox is None
               or not daemon.graph.inbox.slots.statistics().tasks_waiting):
            await anyio.sleep(0.01)
        async with anyio.create_task_group() as tg:
            tg.start_soon(command, "tick", Request("tick", time=5000, actor="op"))
            await anyio.sleep(0.2)
            tg.start_soon(command, "halt", Request("halt", reason="r", actor="op"))
            await anyio.sleep(0.2)
            release.set()
        daemon.stopping.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(operator)
            await daemon.run()
    assert answers["tick"]["ok"] and answers["halt"]["ok"], answers
    ledger = tmp_path / "ledger"
    assert scan(ledger).torn is None
    kinds = [r["kind"] for r in records(ledger)]
    assert kinds.count("input_file") == 2 and kinds.count("tick") == 1
    assert kinds.count("trading_state") == 1 and kinds[-1] == "stop"
    assert [r["seq"] for r in records(ledger)] == list(range(1, len(kinds) + 1))


async def test_a_finished_file_that_cannot_be_checked_stays_in_work_and_the_daemon_runs_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose move cannot even be checked (EACCES, EIO) never stops the daemon:
    it is logged, left in work/ for the next start, and later files go on."""
    import os

    class Os:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def lstat(self, path: Any) -> os.stat_result:
            if Path(path).name == "f0.jsonl" and Path(path).parent.name == "work":
                raise PermissionError(13, "Permission denied", str(path))
            return os.lstat(path)

    monkeypatch.setattr(disposals, "os", Os())
    path = write_config(tmp_path, settle=0)
    lakehouse = tmp_path / "lakehouse"
    daemon = Daemon(config.load(path), mode="run")
    ledger = tmp_path / "ledger"

    async def producer() -> None:
        drop(lakehouse / "inbox", "f0.jsonl", lines(intent(1)))
        drop(lakehouse / "inbox", "f1.jsonl", lines(intent(2)))
        while not (lakehouse / "archive" / "f1.jsonl").exists():
            await anyio.sleep(0.01)
        daemon.stopping.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await daemon.run()
    assert (lakehouse / "work" / "f0.jsonl").exists()
    assert [r["kind"] for r in records(ledger)].count("outcome") == 2
    assert records(ledger)[-1]["kind"] == "stop"
