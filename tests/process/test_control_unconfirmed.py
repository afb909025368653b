"""A command the daemon could not confirm in time is reported as such, never as refused.

The daemon runs in this process so that its ledger storage can be frozen (the write
blocks until the test thaws it); ``execd ctl`` is the real command line.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.segments import SegmentStore
from tests.helpers import control_socket, ctl, records, write_config


async def test_commands_during_a_frozen_disk_are_not_confirmed_and_apply_once_it_thaws(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path)
    sock = control_socket(tmp_path)
    path.write_text(path.read_text().replace(f'socket = "{sock}"',
                                             f'socket = "{sock}"\ntimeout_ms = 300'))
    ledger = tmp_path / "ledger"
    freeze, thaw, frozen = threading.Event(), threading.Event(), threading.Event()
    write_durably = SegmentStore.write_durably

    def frozen_write(store: SegmentStore, data: bytes) -> None:
        if freeze.is_set():
            frozen.set()
            thaw.wait(60)
        write_durably(store, data)

    monkeypatch.setattr(SegmentStore, "write_durably", frozen_write)
    daemon = Daemon(config.load(path), mode="run")

    async def run(*args: str) -> Any:
        return await anyio.to_thread.run_sync(lambda: ctl(path, *args))

    kinds = lambda: [(r["kind"], r["body"].get("state"), r["body"].get("time"))  # noqa: E731
                     for r in records(ledger)]
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            try:
                await _commands(run, kinds, freeze, frozen, thaw)
            finally:
                thaw.set()  # a failed check must not leave the writer's thread blocked
                daemon.stopping.set()
    assert ("trading_state", "HALTED", None) in kinds()


async def _commands(run: Any, kinds: Any, freeze: threading.Event, frozen: threading.Event,
                    thaw: threading.Event) -> None:
    while (await run("status")).returncode != 0:
        await anyio.sleep(0.05)
    freeze.set()
    # The daemon's own timeout (control.timeout_ms) passes first.
    halt = await run("halt", "--reason", "disk incident", "--actor", "alice")
    assert frozen.is_set()
    assert halt.returncode == 4, halt.stderr
    assert halt.stdout == "" and halt.stderr == (
        "not confirmed: halt not confirmed within 0.3s (control.timeout_ms): it was not "
        "refused and may still take effect\ncheck with `execd ctl status` (state) or "
        "`execd ledger tail --kind trading_state`\n")
    # The client's own timeout passes first.
    tick = await run("tick", "5", "--actor", "alice", "--timeout", "0.1")
    assert tick.returncode == 4, tick.stderr
    assert tick.stderr == (
        "not confirmed: tick: no answer within 0.1s; it was not refused and may still take "
        "effect\ncheck with `execd ctl status` (logical time) or `execd ledger tail --kind "
        "tick`\n")
    assert ("trading_state", "HALTED", None) not in kinds()
    thaw.set()
    while ("tick", None, 5) not in kinds():
        await anyio.sleep(0.05)
    reply = json.loads((await run("status", "--json")).stdout)
    assert reply["state"] == "HALTED" and reply["logical_time"] == 5
