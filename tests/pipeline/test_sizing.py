"""Sizing on the paper plane (execd replay in-process; README, "Sizing"): seed 001's
intents that give ``size_frac`` of the position or of an allocation, and EXIT without a
quantity, resolve to an absolute quantity that the outcome records with what it came
from; lower-case actions are read; each way of getting the size wrong is its own
refusal, and the intents after it still fill; the ledger is byte-identical whatever the
batch size.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.model import reasons
from tests.helpers import intent, ledger_bytes, lines, records, replay

ALLOCATIONS = """
[allocations]
"book:B1" = "10000"
momentum = "1000"
"""

# Seed 001's audit fields, as its portfolio manager writes them (floats and "").
AUDIT = {"state": "S2", "prev_state": "", "a_final": 0.73, "e_final": 0.1,
         "position_id": "pos-17", "token_contract": "0xabc", "token_chain": "binance",
         "book_id": "B1", "timeframe": "1h", "risk_reason": None,
         "reason_codes": ["buy_flag", "s2_dip"]}


def sized(n: int, **fields: Any) -> dict[str, Any]:
    body = intent(n, **fields)
    if "quantity" not in fields:
        del body["quantity"]
    if "side" not in fields:
        del body["side"]
    return body


ROWS: list[dict[str, Any]] = [
    intent(1, quantity="2.0", order_type="limit", limit_price="50000"),
    sized(2, action="trim", size_frac="0.5", reference_price="50000"),
    sized(3, action="exit", reference_price="50000"),
    sized(4, action="exit"),
    sized(5, action="add", size_frac=0.5, reference_price="50000", **AUDIT),
    sized(6, action="ADD", size_frac="0.25", allocation="momentum", reference_price="40000"),
    sized(7, action="hold"),
    sized(8, action="ADD"),
    sized(9, action="ADD", quantity="1", size_frac="0.5"),
    sized(10, action="ADD", size_frac="1.5"),
    sized(11, action="ADD", size_frac="0.5", allocation="nobody", reference_price="1"),
    sized(12, action="ADD", size_frac="0.5", allocation="momentum", symbol="ETH/USDT"),
    sized(13, action="TRIM", size_frac="1", reference_price="50000"),
    sized(14, action="emergency_exit", reference_price="50000", urgency="low"),
    sized(15, action="TRIM", size_frac="0.5", size_of="position", reference_price="50000"),
    sized(16, action="ADD", size_frac="0.5", size_of="allocation", book_id="B1",
          reference_price="50000"),
    sized(17, action="ADD", side="buy", quantity="0.3", reference_price="50000"),
    sized(18, action="TRIM", size_frac="0.1", allocation="momentum", reference_price="50000"),
]


def _by_n(ledger: Path) -> dict[int, dict[str, Any]]:
    return {int(r["body"]["intent_id"][-12:]): r["body"] for r in records(ledger)
            if r["kind"] == "outcome" and r["body"]["intent_id"].startswith("00000000-")}


def _inputs(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines(*rows))
    return path


async def _run(tmp_path: Path, rows: list[dict[str, Any]], **overrides: Any) -> Path:
    path = _inputs(tmp_path, rows)
    overrides.setdefault("extra", ALLOCATIONS)
    return await replay(tmp_path, [path], **overrides)


@pytest.mark.asyncio
async def test_each_size_is_resolved_recorded_or_refused_with_its_reason(tmp_path: Path) -> None:
    got = _by_n(await _run(tmp_path, ROWS))
    assert len(got) == len(ROWS)

    def fill(n: int) -> tuple[str, str, Decimal]:
        body = got[n]
        assert body["status"] == "FILLED", body
        return body["side"], body["sizing"]["basis"], Decimal(body["filled_quantity"])

    assert "sizing" not in got[1]
    # Half of the 2.0 held, then the whole rest; nothing is left to exit after that.
    assert fill(2) == ("sell", "position", Decimal("1.0"))
    assert got[2]["sizing"] == {"basis": "position", "frac": "0.5", "base": "2.0",
                                "quantity": "1"}
    assert fill(3) == ("sell", "exit", Decimal("1.0"))
    assert (got[4]["status"], got[4]["reason"]) == ("SKIPPED", reasons.SIZE_ZERO)
    # Half of book B1's 10000 at 50000: 0.1, from a JSON number and a lower-case action.
    assert fill(5) == ("buy", "allocation", Decimal("0.1"))
    assert got[5]["sizing"] == {"basis": "allocation", "frac": "0.5", "base": "0.2",
                                "quantity": "0.1", "allocation": "book:B1", "price": "50000"}
    # The seed's audit fields stay in the ledger with the line as received.
    assert {k: got[5]["intent"][k] for k in AUDIT} == AUDIT
    assert fill(6) == ("buy", "allocation", Decimal("0.00625"))
    assert (got[7]["status"], got[7]["reason"]) == ("SKIPPED", reasons.INTENT_HOLD)
    expected = {8: ("REJECTED", reasons.SIZE_MISSING), 9: ("REJECTED", reasons.SIZE_CONFLICT),
                10: ("REJECTED", reasons.SIZE_FRAC_OUT_OF_RANGE),
                11: ("REJECTED", reasons.SIZE_ALLOCATION_UNKNOWN),
                12: ("REJECTED", reasons.SIZE_PRICE_UNKNOWN)}
    for n, (status, reason) in expected.items():
        assert (got[n]["status"], got[n]["reason"]) == (status, reason), got[n]
        assert got[n]["detail"]
    # 0.1 + 0.00625 held: TRIM all of it.
    assert fill(13) == ("sell", "position", Decimal("0.10625"))
    assert (got[14]["status"], got[14]["reason"]) == ("SKIPPED", reasons.SIZE_ZERO)
    assert (got[15]["status"], got[15]["reason"]) == ("SKIPPED", reasons.SIZE_ZERO)
    assert fill(16) == ("buy", "allocation", Decimal("0.1"))
    assert "sizing" not in got[17] and got[17]["status"] == "FILLED"
    # A reduction sized from an allocation never sells more than is held (0.4 held).
    assert fill(18) == ("sell", "allocation", Decimal("0.002"))


@pytest.mark.asyncio
async def test_an_emergency_exit_goes_critical_and_sells_the_whole_position(
        tmp_path: Path) -> None:
    policy = _inputs(tmp_path, []).with_name("policies.toml")
    policy.write_text('[rules.crit]\nmatch = { urgency = "critical" }\n')
    rows = [intent(1, quantity="0.7", reference_price="50000"),
            sized(2, action="emergency_exit", urgency="low", reference_price="50000")]
    got = _by_n(await _run(tmp_path, rows,
                           extra=ALLOCATIONS + f'\n[policies]\nfile = "{policy}"\n'))
    assert got[2]["status"] == "FILLED" and got[2]["side"] == "sell"
    assert Decimal(got[2]["filled_quantity"]) == Decimal("0.7")
    assert got[2]["sizing"]["basis"] == "exit"
    # The rule for critical urgency applied: the intent was judged as critical.
    assert "policy:crit" in got[2]["plan"]["constraints"]
    assert "policy:crit" not in got[1]["plan"].get("constraints", [])
    assert got[2]["plan"]["action"] == "EMERGENCY_EXIT"


@pytest.mark.asyncio
async def test_a_routed_intent_cannot_size_from_a_position(tmp_path: Path) -> None:
    row = sized(1, action="TRIM", size_frac="0.5", route="both", reference_price="1")
    del row["venue"]
    got = _by_n(await _run(tmp_path, [row], extra=ALLOCATIONS
                           + '\n[routes.both]\nvenues = ["binance", "alpaca"]\n'))
    assert (got[1]["status"], got[1]["reason"]) == ("REJECTED", reasons.SIZE_POSITION_UNKNOWN)


@pytest.mark.asyncio
async def test_sizing_replays_byte_identical_across_batch_sizes(tmp_path: Path) -> None:
    ledgers = [ledger_bytes(await _run(tmp_path / f"run{items}", ROWS, items=items))
               for items in (1, 3, 2048)]
    assert ledgers[0] == ledgers[1] == ledgers[2]


@pytest.mark.asyncio
async def test_the_lakehouse_allocations_come_before_the_configs(tmp_path: Path) -> None:
    rows = [sized(1, action="ADD", size_frac="0.5", book_id="B1", reference_price="50000"),
            sized(2, action="ADD", size_frac="0.5", allocation="momentum",
                  reference_price="50000")]
    book = tmp_path / "good" / "lakehouse" / "portfolio" / "allocations.json"
    book.parent.mkdir(parents=True)
    book.write_text('{"book:B1": "20000"}')
    ledger = await _run(tmp_path / "good", rows)
    got = _by_n(ledger)
    # B1 from the file (20000, not the config's 10000); momentum from the config.
    assert Decimal(got[1]["filled_quantity"]) == Decimal("0.2")
    assert Decimal(got[2]["filled_quantity"]) == Decimal("0.01")
    [context] = [r["body"] for r in records(ledger) if r["kind"] == "context"]
    assert context["allocations"] == 1 and len(context["allocations_sha256"]) == 64
    # A file that cannot be read hides the config's too: nothing is sized from it.
    broken = tmp_path / "bad" / "lakehouse" / "portfolio" / "allocations.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"book:B1": "-5"}')
    ledger = await _run(tmp_path / "bad", rows)
    got = _by_n(ledger)
    for n in (1, 2):
        assert (got[n]["status"], got[n]["reason"]) == ("REJECTED",
                                                        reasons.SIZE_ALLOCATION_UNKNOWN)
        assert "allocations.json cannot be read" in got[n]["detail"]
    [context] = [r["body"] for r in records(ledger) if r["kind"] == "context"]
    assert any("allocations.json" in p for p in context["problems"])


@pytest.mark.asyncio
async def test_what_the_sizing_review_found_stays_fixed(tmp_path: Path) -> None:
    twap = {"algorithm": "twap", "duration": 60, "slices": 3}
    rows = [
        # A price no quotient can hold (1e-400): refused as the line's own number is
        # (before it is sized from), and the next line fills.
        sized(1, action="ADD", size_frac="1", allocation="momentum", reference_price="1e-400"),
        intent(2, quantity="0.1", reference_price="100"),
        # An EMERGENCY_EXIT from an allocation never sells more than is held (0.1).
        sized(3, action="emergency_exit", size_frac="1", allocation="momentum",
              reference_price="1"),
        {"kind": "tick", "time": 10},
        # An EXIT while a TWAP buy holds 0.6 pending sells only what filled (0.3).
        intent(4, quantity="0.9", reference_price="100", execution=twap),
        sized(5, action="EXIT", reference_price="100"),
    ]
    got = _by_n(await _run(tmp_path, rows))
    assert (got[1]["status"], got[1]["reason"]) == (
        "REJECTED", reasons.INTENT_NUMBER_OUT_OF_RANGE)
    assert got[2]["status"] == "FILLED"
    assert (got[3]["side"], Decimal(got[3]["filled_quantity"])) == ("sell", Decimal("0.1"))
    assert (got[5]["side"], Decimal(got[5]["filled_quantity"])) == ("sell", Decimal("0.3"))
    assert got[5]["sizing"]["basis"] == "exit"


@pytest.mark.asyncio
async def test_what_is_wrong_whatever_the_size_is_said_before_the_size(tmp_path: Path) -> None:
    """A side the action contradicts, or a price out of range, is refused as such, not
    as SIZE_ZERO (nothing held) or a size from a price no check would accept."""
    rows = [
        sized(1, action="EXIT", side="buy"),                       # nothing held either
        sized(2, action="TRIM", size_frac="0.5", reference_price="1e30"),
        sized(3, action="ADD", size_frac="0.5", allocation="momentum",
              order_type="limit", limit_price="100", reference_price="1e30"),
        intent(4, quantity="0.1", order_type="limit", limit_price="100",
               reference_price="1e30"),
        sized(5, action="add", size_frac="0.5", allocation="momentum", side="buy",
              reference_price="100"),                              # agrees: sized
    ]
    got = _by_n(await _run(tmp_path, rows))
    assert (got[1]["reason"], got[1]["detail"]) == (
        reasons.INTENT_SIDE_CONFLICT, "side=buy but action=EXIT implies sell")
    for n in (2, 3, 4):
        assert got[n]["reason"] == reasons.INTENT_NUMBER_OUT_OF_RANGE, got[n]
        assert got[n]["detail"].startswith("reference_price=1E+30 is outside"), got[n]
    assert (got[5]["status"], Decimal(got[5]["filled_quantity"])) == ("FILLED", Decimal(5))


@pytest.mark.asyncio
async def test_a_price_the_checks_take_is_one_sizing_takes(tmp_path: Path) -> None:
    """1e15 and 9.99e15 are within 1e-18 .. 1e15 by exponent, for sizing as for every
    check: sized from the allocation, not SIZE_PRICE_UNKNOWN."""
    rows = [sized(n, action="ADD", size_frac="1", allocation="momentum",
                  reference_price=price) for n, price in ((1, "1e15"), (2, "9.99e15"))]
    got = _by_n(await _run(tmp_path, rows))
    for n in (1, 2):
        assert got[n].get("reason") != reasons.SIZE_PRICE_UNKNOWN, got[n]
        assert got[n]["sizing"]["basis"] == "allocation", got[n]
