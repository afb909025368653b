"""The shadow fold reads each durable commit's Structs (``Commit.entries``), start-up reads
the bytes on disk: in the running pipeline, every snapshot the shadow writes is, byte for
byte, the one a full fold of the same ledger prefix gives (app/checkpointer.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger import checkpoints
from execd.model import reasons
from execd.service.control import Request
from tests.helpers import drop, lines, records, replay, write_inputs
from tests.live import fake_exchange, live_intent
from tests.live_run import run_live
from tests.pipeline.test_checkpoints import full_fold, ledger_options, lines_of
from tests.pipeline.test_pipeline import SIZES, intent_sets
from tests.pipeline.test_risk_pipeline import LIMITS, lakehouse


def snapshots_are_full_folds(ledger: Path) -> list[dict[str, Any]]:
    """Check every snapshot in ``ledger`` against the full fold of its prefix; the records."""
    cfg = config.load(ledger.parent / "execd.toml").config
    found = lines_of(ledger)
    files = checkpoints.listed(ledger)
    for path in files:
        through = checkpoints.through_of(path.name)
        assert through is not None
        assert path.read_bytes() == full_fold(found, through, cfg), path.name
    assert files, "no checkpoint was taken"
    return records(ledger)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(intent_sets, min_size=1, max_size=3), st.sampled_from(SIZES),
       st.integers(2, 9))
def test_generated_inputs_checkpoint_what_the_full_fold_gives(
        files: list[list[str]], sizes: dict[str, Any], every: int) -> None:
    """Whatever the input (malformed lines, empty files, unknown venues, the live stub's
    failures that start a cooldown, duplicates) and the batch sizes, a checkpoint every
    ``every`` records snapshots the full fold, risk state included."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        inputs = write_inputs(directory, files)
        lakehouse(directory / "run")

        async def go() -> Path:
            return await replay(directory / "run", inputs, extra=LIMITS,
                                segment_bytes=ledger_options(every), **sizes)

        ledger = anyio.run(go)
        if len(lines_of(ledger)) > every:
            snapshots_are_full_folds(ledger)


@pytest.mark.parametrize("clock", ["logical", "wall"])
async def test_live_orders_fees_refused_files_and_a_safety_sell_checkpoint_the_full_fold(
        tmp_path: Path, clock: str) -> None:
    """Live orders (their order and order_attempt records, fees taken in the base asset),
    whole files refused (a repeat of a finished file, a bad name, a directory), a halt
    and a Safety Sell, under either clock: each snapshot is the full fold of its prefix."""
    fake = fake_exchange()
    await fake.start()
    inbox = tmp_path / "lakehouse" / "inbox"

    async def refused_files_then_halt_and_safety_sell(daemon: Daemon) -> None:
        while sum(1 for r in records(tmp_path / "ledger") if r["kind"] == "outcome") < 5:
            await anyio.sleep(0.01)
        drop(inbox, "a.jsonl", lines(live_intent(7)))
        drop(inbox, "n" * 241 + ".jsonl", lines(live_intent(8)))
        (inbox / "folder.jsonl").mkdir()
        while sum(1 for r in records(tmp_path / "ledger") if r["kind"] == "outcome") < 8:
            await anyio.sleep(0.01)
        for request in (Request("halt", reason="incident", actor="ops"),
                        Request("safety-sell", venue="binance", reason="incident",
                                actor="ops")):
            answer = await daemon._command(request)
            assert answer["ok"], answer

    try:
        await run_live(tmp_path, fake, [
            live_intent(1), live_intent(2, symbol="ETH/USDT", quantity="0.5"),
            live_intent(3, venue="paper"), "{not json", live_intent(1)],
            during=refused_files_then_halt_and_safety_sell, expect=10, clock=clock,
            extra="[ledger]\ncheckpoint_records = 2\ncheckpoints_kept = 1000\n")
    finally:
        await fake.stop()
    ledger = snapshots_are_full_folds(tmp_path / "ledger")
    kinds = {r["kind"] for r in ledger}
    assert {"order", "order_attempt", "trading_state", "safety_sell", "input_file",
            "checkpoint"} <= kinds
    bodies = [r["body"] for r in ledger if r["kind"] == "outcome"]
    assert {b.get("reason") for b in bodies} >= {
        reasons.INPUT_FILE_REPEATED, reasons.INPUT_FILE_NAME_INVALID,
        reasons.INPUT_FILE_UNREADABLE, reasons.INTENT_DUPLICATE}
    assert any(b["status"] == "QUARANTINED" for b in bodies)
    assert any(b.get("fees") for b in bodies)
