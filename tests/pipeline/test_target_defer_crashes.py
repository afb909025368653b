"""Every crash point of a deferred leg (README, "Targets", Supersede): a target's TWAP
child rests at the fake Binance and part fills, a newer target ends the schedule and
defers its order for the symbol until the cancel settles. The ledger of that run is cut
at each record from the newer target's on, and the daemon restarted on each cut
against the same fake (which keeps the orders the run and earlier restarts sent). A
cut before an order record is a crash before that order was sent (the record goes
first): such a restart sends it, as the run did, and is judged by its own ledger.

Whatever the cut (between the target record and the cancel, the cancel and the child's
outcome, the parent's outcome and the leg's order, its send and its outcome, with
checkpoints on and off): one outcome per id, the deferred leg sent once and computed
from what the child filled, the account at the newer target, and a restart sends only
what its ledger had not (a duplicate client order id is found, not sent again).
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config import schema as config
from tests.helpers import lines, records
from tests.live import fake_exchange, write_live_config
from tests.pipeline.test_live_targets import LOT, _held, resting_target, target

D = Decimal


def _deferred_leg(ledger: Path) -> str | None:
    found = [r["body"] for r in records(ledger) if r["kind"] == "target"] if (
        ledger.exists()) else []
    legs = [leg for t in found for leg in t["legs"] if leg[5] == "deferred"]
    return str(legs[0][4]) if legs else None


def _settled(ledger: Path) -> bool:
    leg = _deferred_leg(ledger)
    return leg is not None and any(r["kind"] == "outcome" and r["body"]["intent_id"] == leg
                                   for r in records(ledger))


async def _run(directory: Path, fake: Any, every: int, base: bool = False) -> None:
    extra = f"\n[ledger]\ncheckpoint_records = {every}\n" if every else ""
    # Sends' recvWindow is half the acceptance window: seconds, so that a restart on a
    # loaded machine does not find its send refused as late.
    loaded = config.load(write_live_config(directory, fake.url, extra=extra,
                                           acceptance_window_ms=1500))
    daemon = Daemon(loaded)
    ledger = directory / "ledger"
    inbox = directory / "lakehouse" / "inbox"

    async def driver() -> None:
        if base:
            inbox.mkdir(parents=True, exist_ok=True)
            (inbox / "a.jsonl").write_bytes(lines({"kind": "tick", "time": 0}, resting_target()))
            while not fake.open_orders():
                await anyio.sleep(0.02)
            fake.fill_resting("BTC/USDT", D("0.004"))  # 0.004 of the child's 0.01
            (inbox / "b.jsonl").write_bytes(lines(target(2, "0.02")))
        while not _settled(ledger):
            await anyio.sleep(0.02)
        daemon.stopping.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()


@pytest.mark.parametrize("every", [0, 3])
async def test_every_crash_point_of_a_deferred_leg_sends_it_once(tmp_path: Path,
                                                                 every: int) -> None:
    fake = fake_exchange()
    await fake.start()
    try:
        base = tmp_path / "base"
        await _run(base, fake, every, base=True)
        [segment] = (base / "ledger").glob("segment-*.jsonl")
        full = segment.read_bytes().splitlines(keepends=True)
        bodies = [json.loads(x) for x in full]
        kinds = [b["kind"] for b in bodies]
        second = [i for i, k in enumerate(kinds) if k == "target"][1]
        leg = _deferred_leg(base / "ledger")
        assert leg is not None
        assert D("0.02") - 2 * LOT <= _held(records(base / "ledger")) <= D("0.02")
        tried = 0
        for k in range(second + 1, len(full)):
            directory = tmp_path / f"k{k}"
            (directory / "ledger").mkdir(parents=True)
            (directory / "ledger" / segment.name).write_bytes(b"".join(full[:k]))
            files = {b["body"]["file"] for b in bodies[:k] if b["kind"] == "input_file"}
            work = directory / "lakehouse" / "work"
            work.mkdir(parents=True)
            for name, rows in (("a.jsonl", [{"kind": "tick", "time": 0}, resting_target()]),
                               ("b.jsonl", [target(2, "0.02")])):
                if name not in files:  # claimed, not yet recorded: still in work/
                    (work / name).write_bytes(lines(*rows))
            before = len(fake.orders)
            await _run(directory, fake, every)
            prefix = {b["body"]["client_order_id"] for b in bodies[:k] if b["kind"] == "order"}
            new = [o.clientOrderId for o in fake.orders[before:]]
            assert len(new) == len(set(new)) and not set(new) & prefix, (k, new)
            found = records(directory / "ledger")
            done = [r["body"] for r in found if r["kind"] == "outcome"]
            assert set(Counter(o["intent_id"] for o in done).values()) == {1}, k
            [sent] = [o for o in done if o["intent_id"] == leg]
            assert (sent["status"], D(sent["filled_quantity"])) == ("FILLED", D("0.016")), k
            assert D("0.02") - 2 * LOT <= _held(found) <= D("0.02"), k
            tried += 1
        assert tried >= 6
    finally:
        await fake.stop()
