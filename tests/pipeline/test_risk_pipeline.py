"""The Risk Sentinel inside the whole pipeline: context, governance, determinism, recovery."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.config import schema as config
from execd.governance.plan_ledger import PlanLedger
from execd.governance.plans import Governance
from execd.ledger.recovery import recover
from execd.model import reasons
from execd.sentinel.risk import Risk
from tests.helpers import intent, ledger_bytes, lines, outcomes, records, replay, write_config

LIMITS = ('[risk.limits]\nmax_order_notional = "60000"\nmax_asset_exposure = "100000"\n'
          'max_leverage = "3"\nequity = "100000"\nprice_band_bps = 200\n'
          'max_orders = 50\nrate_window = 10\n'
          '[venues.stubfail.limits]\nfailure_limit = 3\nfailure_window = 100\ncooldown = 30\n')


def lakehouse(directory: Path, regime: str = "NORMAL", **files: str) -> None:
    """Write the context files of the lakehouse under ``directory``."""
    root = directory / "lakehouse"
    (root / "market").mkdir(parents=True, exist_ok=True)
    (root / "market" / "regime.json").write_text(json.dumps({"regime": regime}))
    (root / "market" / "prices.json").write_text(json.dumps(
        {"BTC/USDT": "50000", "ETH/USDT": "2500"}))
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def risky_inputs(directory: Path) -> list[Path]:
    """Intents that pass and fail every kind of check, across ticks."""
    rows: list[Any] = [{"kind": "tick", "time": 100}]
    for n in range(200):
        kind = n % 10
        fields: dict[str, Any] = {"quantity": "0.3"}
        if kind == 1:
            fields = {"quantity": "2"}  # notional over 60000
        elif kind == 2:
            fields = {"side": "sell", "quantity": "0.2"}
        elif kind == 3:
            fields = {"order_type": "limit", "limit_price": "52000"}  # outside the band
        elif kind == 4:
            fields = {"venue": "stubfail"}  # fails; then the venue cools down
        elif kind == 5:
            fields = {"symbol": "ETH/USDT", "quantity": "10", "urgency": "high"}
        elif kind == 6:
            fields = {"source_run": "run-unknown"}
        elif kind == 7:
            fields = {"side": "sell", "quantity": "5", "constraints": {"reduce_only": True}}
        rows.append(intent(n, **fields))
        if n % 40 == 39:
            rows.append({"kind": "tick", "time": 100 + n})
    path = directory / "risky.jsonl"
    path.write_bytes(lines(*rows))
    return [path]


async def test_risk_replays_are_byte_identical_whatever_the_sizes(tmp_path: Path) -> None:
    """With risk limits on, queue, batch and commit sizes never change a byte of the ledger."""
    inputs = risky_inputs(tmp_path)
    ledgers = []
    for index, sizes in enumerate([{"q": 1, "items": 1, "commit_records": 1},
                                   {"q": 64, "items": 4096, "commit_records": 65536}]):
        run = tmp_path / f"run{index}"
        lakehouse(run, regime="CRISIS")
        ledgers.append(ledger_bytes(await replay(run, inputs, extra=LIMITS, **sizes)))
    assert ledgers[0] == ledgers[1]
    done = outcomes(tmp_path / "run0" / "ledger")
    seen = {b.get("reason") for b in done}
    assert {None, reasons.RISK_NOTIONAL_EXCEEDED, reasons.RISK_PRICE_BAND_EXCEEDED,
            reasons.RISK_VENUE_COOLDOWN, reasons.RISK_REGIME_OVERRIDE_REQUIRED,
            reasons.PROVENANCE_RUN_UNREGISTERED, reasons.RISK_REDUCE_ONLY_VIOLATION,
            reasons.EXECUTION_NOT_AVAILABLE, reasons.RISK_ASSET_EXPOSURE_EXCEEDED} <= seen
    assert len(done) == 200


async def test_the_context_is_recorded_before_the_intents_it_judged(tmp_path: Path) -> None:
    lakehouse(tmp_path, regime="CRISIS",
              **{"audit/runs.jsonl": '{"run_id":"run-1"}\nnot json\n{"run_id":"run-2"}\n'})
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1, urgency="high"), intent(2, source_run="run-2")))
    ledger = await replay(tmp_path, [source], runs=("run-1", "run-2"))
    # write_config rewrote the registry; put the bad line back for a second, fresh run.
    (tmp_path / "lakehouse" / "audit" / "runs.jsonl").write_text(
        '{"run_id":"run-1"}\nnot json\n{"run_id":"run-2"}\n')
    kinds = [r["kind"] for r in records(ledger)]
    assert kinds[:2] == ["start", "context"]
    context = records(ledger)[1]["body"]
    assert context["regime"] == "CRISIS" and context["runs"] == 2 and context["prices"] == 2
    other = tmp_path / "again"
    other.mkdir()
    loaded_text = (tmp_path / "execd.toml").read_text().replace(
        str(tmp_path / "ledger"), str(other / "ledger"))
    (other / "execd.toml").write_text(loaded_text)
    from execd.app.daemon import Daemon

    await Daemon(config.load(other / "execd.toml"), mode="replay", inputs=[source],
                 ledger_dir=other / "ledger").run()
    context = records(other / "ledger")[1]["body"]
    assert context["runs"] == 2
    assert context["problems"] == ["runs.jsonl: 1 unreadable line(s), first at line 2"]


async def test_an_unreadable_regime_counts_as_crisis(tmp_path: Path) -> None:
    write_config(tmp_path)
    lakehouse(tmp_path)
    (tmp_path / "lakehouse" / "market" / "regime.json").write_text("{calm")
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1, urgency="critical"), intent(2, urgency="low")))
    ledger = await replay(tmp_path, [source])
    context = records(ledger)[1]["body"]
    assert context["regime"] == "CRISIS" and context["problems"][0].startswith("regime.json")
    assert [b.get("reason") for b in outcomes(ledger)] == [
        reasons.RISK_REGIME_OVERRIDE_REQUIRED, None]


async def test_an_override_record_lets_one_intent_through_a_crisis(tmp_path: Path) -> None:
    override = {"intent_id": intent(1)["intent_id"], "operator": "carol", "reason": "approved"}
    lakehouse(tmp_path, regime="CRISIS",
              **{"control/overrides.jsonl": json.dumps(override) + "\n"})
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1, urgency="high"), intent(2, urgency="high")))
    ledger = await replay(tmp_path, [source])
    kinds = [(r["kind"], r["body"].get("status")) for r in records(ledger)][2:5]
    assert kinds == [("override", None), ("outcome", "FILLED"), ("outcome", "REJECTED")]
    assert records(ledger)[2]["body"]["operator"] == "carol"


async def test_governance_enforced_with_the_real_plan_ledger(tmp_path: Path) -> None:
    plans = PlanLedger(tmp_path / "governance")
    ids = []
    for items, steps in ((["item-a"], ("REVIEW", "APPROVE", "COMMIT")), (["item-b"], ("REVIEW",))):
        with plans.change() as (gov, append):
            event = gov.create("2026-q4", items, "balanced", reason="r", actor="a", now_utc="t")
            append(event)
        for step in steps:
            with plans.change() as (gov, append):
                append(gov.transition(event.plan_id, step, reason="r", actor="a", now_utc="t"))
        ids.append(event.plan_id)
    assert isinstance(gov, Governance)
    extra = f'[governance]\nenforce = true\nledger_dir = "{tmp_path / "governance"}"\n'
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1, plan_id=ids[0]), intent(2, plan_id=ids[1]),
                             intent(3, plan_id="nope"), intent(4)))
    ledger = await replay(tmp_path / "run", [source], extra=extra)
    assert [b.get("reason") for b in outcomes(ledger)] == [
        None, reasons.GOVERNANCE_PLAN_NOT_COMMITTED, reasons.GOVERNANCE_PLAN_UNKNOWN, None]
    assert records(ledger)[1]["body"]["plans"] == 2


async def test_recovery_rebuilds_positions_from_fills(tmp_path: Path) -> None:
    """A restart never forgets a position: folding the ledger gives back the positions its fills
    made.
    """
    lakehouse(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1, quantity="1.5"), intent(2, side="sell", quantity="0.5"),
                             intent(3, symbol="ETH/USDT", quantity="4"),
                             intent(4, venue="stubfail")))
    ledger = await replay(tmp_path, [source])
    loaded = config.load(tmp_path / "execd.toml")
    risk = Risk(loaded.config)
    recover(ledger, repair=False, risk=risk)
    views = {(v.venue, v.symbol): v.position for v in risk.book.open_positions()}
    assert views == {("binance", "BTC/USDT"): Decimal(1), ("binance", "ETH/USDT"): Decimal(4)}
    # The fills carried no price; the next context's prices mark them.
    from execd.reader.context import ContextLoader

    risk.set_context(ContextLoader(loaded.config.lakehouse, None, ("CRISIS",)).load())
    assert risk.book.venue("binance").gross == Decimal(60000)


async def test_a_damaged_plan_ledger_fails_closed_instead_of_stopping(tmp_path: Path) -> None:
    plans = PlanLedger(tmp_path / "governance")
    with plans.change() as (gov, append):
        event = gov.create("2026-q4", ["item-a"], "balanced", reason="r", actor="a",
                           now_utc="t")
        append(event)
    segment = next((tmp_path / "governance").glob("segment-*.jsonl"))
    segment.write_bytes(segment.read_bytes().replace(b'"DRAFT"', b'"COMMITTED"', 1) + b"\n{}\n")
    extra = f'[governance]\nenforce = true\nledger_dir = "{tmp_path / "governance"}"\n'
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1, plan_id=event.plan_id), intent(2)))
    ledger = await replay(tmp_path / "run", [source], extra=extra)
    context = records(ledger)[1]["body"]
    assert context["plans"] == 0 and context["problems"][0].startswith("plan ledger")
    assert [b.get("reason") for b in outcomes(ledger)] == [
        reasons.GOVERNANCE_PLAN_UNKNOWN, None]


async def test_unusable_lakehouse_prices_are_named_and_ignored(tmp_path: Path) -> None:
    lakehouse(tmp_path)
    (tmp_path / "lakehouse" / "market" / "prices.json").write_text(
        '{"BTC/USDT": "1E+999999", "ETH/USDT": "2500", "SOL/USDT": "-3"}')
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1), intent(2, symbol="ETH/USDT")))
    ledger = await replay(tmp_path, [source],
                          extra='[risk.limits]\nmax_order_notional = "1000000"\n')
    context = records(ledger)[1]["body"]
    assert context["prices"] == 1
    assert context["problems"] == ["prices.json: no usable price for BTC/USDT, SOL/USDT"]
    assert [b.get("reason") for b in outcomes(ledger)] == [reasons.RISK_PRICE_UNKNOWN, None]


async def test_a_file_moves_only_once_its_own_record_is_durable(tmp_path: Path) -> None:
    """The record's seq can still move up (sentinel records before it): match by identity."""
    import os

    from execd.app.daemon import Daemon
    from execd.ledger.recovery import RecoveredState
    from execd.ledger.writer import Commit
    from execd.model.messages import Entry, InputFileRecord
    from execd.reader.inbox import InboxSource, stat_key

    loaded = config.load(write_config(tmp_path))
    daemon = Daemon(loaded)
    work = loaded.config.lakehouse.work
    work.mkdir(parents=True)
    (work / "f.jsonl").write_bytes(b"{}\n")
    inbox, _ = daemon._source(RecoveredState())
    assert isinstance(inbox, InboxSource)
    record = Entry(5, "input_file", 0, InputFileRecord("f.jsonl", 3, "0" * 64, 1))
    await inbox.slots.acquire()  # as the reader does before it records a file
    daemon._file_entry(record, stat_key(os.stat(work / "f.jsonl")))
    others = [Entry(seq, "tick", 0, record.body) for seq in range(4, 8)]  # seqs span 5
    daemon._durable(Commit(b"", others, 7, "h"))
    inbox.reading_done()
    send, _receive = anyio.create_memory_object_stream[list[Entry]](4)
    # Nothing durable to move yet: the disposals wait (for the record's own commit).
    with anyio.move_on_after(0.2):
        await inbox.run_disposals(send.clone())
    assert (work / "f.jsonl").exists()
    record.seq = 9
    daemon._durable(Commit(b"", [record], 9, "h"))
    await inbox.run_disposals(send)
    assert not (work / "f.jsonl").exists()
    assert (loaded.config.lakehouse.archive / "f.jsonl").exists()
