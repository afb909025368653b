"""Target portfolios on the paper plane (execd replay in-process; README, "Targets"):
the orders are target - position - pending per symbol, each a leg through every
check; a target read again sends nothing; a newer one supersedes (its open schedules
end, the new differences come from what filled); each bad target is refused with its
reason and the lines after it still execute; the ledger is byte-identical across
batch sizes and with checkpoints on or off.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.model import reasons
from execd.sentinel.targets import digest, leg_id
from tests.helpers import intent, ledger_bytes, lines, records, replay

D = Decimal


def target(as_of: int, legs: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"kind": "target", "portfolio_id": "core", "source_run": "run-1", "as_of": as_of,
            "venue": "binance", "targets": legs, **fields}


def tick(time: int) -> dict[str, Any]:
    return {"kind": "tick", "time": time}


def _inputs(tmp_path: Path, rows: list[Any]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines(*rows))
    return path


async def _run(tmp_path: Path, rows: list[Any], **overrides: Any) -> Path:
    return await replay(tmp_path, [_inputs(tmp_path, rows)], **overrides)


def _positions(ledger: Path) -> dict[str, Decimal]:
    held: dict[str, Decimal] = {}
    for r in records(ledger):
        body = r["body"]
        if r["kind"] == "outcome" and body.get("children") is None and body["status"] in (
                "FILLED", "PARTIALLY_FILLED"):
            sign = 1 if body["side"] == "buy" else -1
            held[body["symbol"]] = held.get(body["symbol"], D(0)) + sign * D(
                body["filled_quantity"])
    return held


def _kind(ledger: Path, kind: str) -> list[dict[str, Any]]:
    return [r["body"] for r in records(ledger) if r["kind"] == kind]


@pytest.mark.asyncio
async def test_a_target_is_reached_repeated_sends_nothing_and_a_newer_one_supersedes(
        tmp_path: Path) -> None:
    first = target(1, [{"symbol": "BTC/USDT", "quantity": "2"},
                       {"symbol": "ETH/USDT", "weight": "0.5", "price": "2500"}],
                   capital="10000")
    rows = [
        intent(1, quantity="0.5"),          # 0.5 BTC held before any target
        first,
        first,                               # the same target again: nothing
        target(2, [{"symbol": "BTC/USDT", "quantity": "1"}], capital="10000"),
        target(2, [{"symbol": "BTC/USDT", "quantity": "5"}]),   # not after the last
        {"kind": "drift_target", "portfolio_id": "core", "source_run": "run-1", "as_of": 3,
         "venue": "binance", "orders": [{"symbol": "ETH/USDT", "target_quantity": "4"}]},
    ]
    ledger = await _run(tmp_path, rows)
    targets = _kind(ledger, "target")
    assert len(targets) == 3
    # 2 BTC wanted, 0.5 held: 1.5 sent; 0.5 x 10000 / 2500 = 2 ETH.
    assert [[leg[0], leg[1], leg[2], leg[3], leg[5]] for leg in targets[0]["legs"]] == [
        ["BTC/USDT", "2", "0.5", "1.5", "sent"], ["ETH/USDT", "2", "0", "2", "sent"]]
    # The second: 1 BTC (a sell of 1), and ETH left out of a full target: 0 (sell 2).
    assert [[leg[0], leg[1], leg[3], leg[5]] for leg in targets[1]["legs"]] == [
        ["BTC/USDT", "1", "-1", "sent"], ["ETH/USDT", "0", "-2", "sent"]]
    assert targets[1]["supersedes"] == targets[0]["target_id"]
    # The drift monitor's: ETH to 4, BTC kept at 1.
    assert targets[2]["partial"] is True
    assert _positions(ledger) == {"BTC/USDT": D(1), "ETH/USDT": D(4)}
    outcomes = {o["intent_id"]: o for o in _kind(ledger, "outcome")}
    _, first_id = digest_of(first)
    assert outcomes[str(first_id)]["reason"] == reasons.TARGET_REPEATED
    stale = [o for o in outcomes.values() if o.get("reason") == reasons.TARGET_STALE]
    assert len(stale) == 1
    # Every leg names its target.
    for leg in targets[0]["legs"]:
        body = outcomes[leg[4]]
        assert body["status"] == "FILLED"
        assert json.loads(json.dumps(body["intent"]))["context"]["target_id"] == (
            targets[0]["target_id"])


def digest_of(row: dict[str, Any]) -> tuple[str, Any]:
    from execd.model.input import InputDecoder

    return digest(InputDecoder().decode(json.dumps(row).encode()))


@pytest.mark.asyncio
async def test_a_newer_target_ends_the_open_schedules_and_never_overshoots(
        tmp_path: Path) -> None:
    slow = {"algorithm": "twap", "duration": 40, "slices": 4}
    rows = [
        tick(0),
        target(1, [{"symbol": "BTC/USDT", "quantity": "4"}], execution=slow),
        tick(10),                          # one slice of 1 out of 4 filled
        target(2, [{"symbol": "BTC/USDT", "quantity": "2"}]),
        tick(100),
    ]
    ledger = await _run(tmp_path, rows)
    parents = [o for o in _kind(ledger, "outcome") if o.get("children") is not None]
    assert [p["reason"] for p in parents] == [reasons.SCHEDULE_SUPERSEDED]
    superseded = D(parents[0]["filled_quantity"])
    second = _kind(ledger, "target")[1]
    assert D(second["legs"][0][2]) == superseded     # compared with what filled
    assert _positions(ledger) == {"BTC/USDT": D(2)}


BAD = [
    ({"targets": []}, reasons.TARGET_INVALID),
    ({"targets": [{"symbol": "X"}, {"symbol": "X", "quantity": "1"}]}, reasons.TARGET_INVALID),
    ({"targets": [{"symbol": "X", "quantity": "1", "weight": "0.1"}]}, reasons.TARGET_INVALID),
    ({"targets": [{"symbol": "X", "quantity": "-1"}]}, reasons.TARGET_INVALID),
    ({"targets": [{"symbol": "X", "weight": "0.6", "price": "1"},
                  {"symbol": "Y", "weight": "0.6", "price": "1"}], "capital": "100"},
     reasons.TARGET_WEIGHTS_EXCEEDED),
    ({"targets": [{"symbol": "X", "weight": "0.5", "price": "1"}], "capital": "-100"},
     reasons.TARGET_CAPITAL_INVALID),
    ({"targets": [{"symbol": "X", "weight": "0.5", "price": "1"}]}, reasons.TARGET_CAPITAL_INVALID),
    ({"targets": [{"symbol": "X", "weight": "0.5"}], "capital": "100"},
     reasons.TARGET_PRICE_UNKNOWN),
    ({"venue": "nowhere", "targets": [{"symbol": "X", "quantity": "1"}]},
     reasons.TARGET_INVALID),
    ({"route": "r", "targets": [{"symbol": "X", "quantity": "1"}]}, reasons.TARGET_INVALID),
]


@pytest.mark.asyncio
async def test_each_bad_target_is_refused_with_its_reason_and_the_daemon_goes_on(
        tmp_path: Path) -> None:
    rows: list[Any] = [target(n + 1, [], **fields) | fields for n, (fields, _) in
                       enumerate(BAD)]
    rows += ['{"kind":"target","portfolio_id":"core"', target(50, [], targets="nope"),
             intent(99, quantity="0.1")]
    # Another portfolio claiming a symbol the first owns.
    rows += [target(60, [{"symbol": "BTC/USDT", "quantity": "1"}]),
             target(61, [{"symbol": "BTC/USDT", "quantity": "2"}], portfolio_id="other")]
    ledger = await _run(tmp_path, rows)
    outcomes = _kind(ledger, "outcome")
    by_line = {o["source"][1]: o for o in outcomes if o.get("source")}
    for n, (_, reason) in enumerate(BAD, 1):
        assert (by_line[n]["status"], by_line[n]["reason"]) == ("REJECTED", reason), by_line[n]
        assert by_line[n]["detail"]
    assert by_line[len(BAD) + 1]["reason"] == reasons.INPUT_MALFORMED_JSON
    assert by_line[len(BAD) + 2]["reason"] == reasons.INPUT_SCHEMA_VIOLATION
    assert by_line[len(BAD) + 3]["status"] == "FILLED"
    assert by_line[len(BAD) + 5]["reason"] == reasons.TARGET_SYMBOL_CLAIMED


ROWS = [tick(0), intent(1, quantity="0.5"),
        target(1, [{"symbol": "BTC/USDT", "quantity": "3"},
                   {"symbol": "ETH/USDT", "quantity": "2"}],
               execution={"algorithm": "twap", "duration": 30, "slices": 3}),
        tick(10), target(2, [{"symbol": "BTC/USDT", "quantity": "1"}]), tick(20),
        {"kind": "drift_target", "portfolio_id": "core", "source_run": "run-1", "as_of": 3,
         "venue": "binance", "orders": [{"symbol": "ETH/USDT", "target_quantity": "1.5"}]},
        tick(100)]


@pytest.mark.asyncio
async def test_targets_replay_byte_identical_across_batch_sizes_and_checkpoints(
        tmp_path: Path) -> None:
    runs = [ledger_bytes(await _run(tmp_path / f"r{i}", ROWS, items=items))
            for i, items in enumerate((1, 3, 2048))]
    assert runs[0] == runs[1] == runs[2]
    checkpointed = await _run(tmp_path / "cp", ROWS,
                              segment_bytes=f"{256 << 20}\ncheckpoint_records = 2")
    plain = [r for r in records(checkpointed) if r["kind"] != "checkpoint"]
    assert [(r["kind"], r["body"]) for r in plain] == [
        (r["kind"], r["body"]) for r in records(tmp_path / "r0" / "ledger")]


@pytest.mark.asyncio
async def test_what_the_review_found_stays_fixed(tmp_path: Path) -> None:
    twap = {"algorithm": "twap", "duration": 40, "slices": 4}
    rows = [
        tick(0),
        # 29 significant digits: the difference is exact, and cut toward zero.
        target(1, [{"symbol": "BTC/USDT", "quantity": "1.99999999999999999999999999999"}]),
        # A portfolio is held at one venue.
        target(2, [{"symbol": "ETH/USDT", "quantity": "1"}], venue="alpaca"),
        # Strict decimals in a target's execution, also when another decimal is a number.
        '{"kind":"target","portfolio_id":"q","source_run":"run-1","as_of":1,"venue":"binance",'
        '"targets":[{"symbol":"SOL/USDT","quantity":1}],'
        '"execution":{"algorithm":"iceberg","visible":"0_5"}}',
        # An ordinary TWAP buy of 4 on ADA, half filled, holds 2 pending: a target of 1
        # sells no more than is held.
        intent(7, symbol="ADA/USDT", quantity="4", execution=twap), tick(10),
        target(3, [{"symbol": "ADA/USDT", "quantity": "1"}]),
        # Symbols set to 0 drop out of the next full target.
        target(4, [{"symbol": "XRP/USDT", "quantity": "1"}]),
        target(5, [{"symbol": "DOT/USDT", "quantity": "1"}]),
        tick(100),
    ]
    ledger = await _run(tmp_path, rows)
    targets = _kind(ledger, "target")
    [leg] = targets[0]["legs"]
    assert D(leg[3]) == D("1.999999999999999999") <= D(leg[1])
    outcomes = {o["source"][1]: o for o in _kind(ledger, "outcome") if o.get("source")}
    assert (outcomes[3]["reason"], "one venue") == (reasons.TARGET_INVALID, "one venue")
    assert "venue binance" in outcomes[3]["detail"]
    assert outcomes[4]["reason"] == reasons.INPUT_SCHEMA_VIOLATION
    ada = next(t for t in targets if any(g[0] == "ADA/USDT" for g in t["legs"]))
    [sell] = [g for g in ada["legs"] if g[0] == "ADA/USDT"]
    assert D(sell[2]) == D(4) and D(sell[3]) == D(-2)  # 2 held of 4 expected: sells 2
    last = targets[-1]
    assert sorted(g[0] for g in last["legs"]) == ["DOT/USDT", "XRP/USDT"]


def test_the_targets_state_keeps_owners_and_each_record_once() -> None:
    from execd.model.messages import LegRecord, TargetRecord
    from execd.sentinel.targets import Targets

    state = Targets()
    legs = [LegRecord(f"S{i}", D(1), D(0), D(1), leg_id("x", "v", f"S{i}"), "sent")
            for i in range(50)]
    record = TargetRecord(uuid.UUID(int=1), "x", "p", "r", 1, "v", legs)
    state.record(record)
    state.owners[("w", "OLD")] = "p"  # a symbol owned before the portfolio's last target
    data = state.encode()
    assert data.count(b'"sha256":"x"') == 1  # the record once, not once per leg
    assert b"deferred" not in data  # checkpoints without deferred legs: bytes as before
    again = Targets.decode(data)
    assert again.owners == state.owners and again.awaiting == state.awaiting
    # A deferred leg (its symbol's superseded schedule still had a child out) is kept
    # with the parent it waits for, and comes back from a snapshot the same.
    later = TargetRecord(uuid.UUID(int=2), "y", "p", "r", 2, "v", [
        LegRecord("S1", D(2), D(1), D(0), leg_id("y", "v", "S1"), "deferred")])
    state.record(later)
    assert state.deferred == {leg_id("y", "v", "S1"): (later, later.legs[0],
                                                       leg_id("x", "v", "S1"))}
    assert "S1" not in {leg.symbol for _, leg in state.awaiting.values()
                        if _ is later} and state.pending
    again = Targets.decode(state.encode())
    assert again.deferred == state.deferred
    again.taken(leg_id("y", "v", "S1"), False)  # its order: no longer deferred
    assert not again.deferred


@pytest.mark.asyncio
async def test_where_signatures_are_required_a_target_is_signed_and_so_are_its_legs(
        tmp_path: Path) -> None:
    """Unsigned or forged targets are refused whole; a signed one's legs, signed by
    execd with the same key, pass the one signature check (none refused for lacking it)."""
    from execd.sentinel.signatures import sign, signed_line

    key = b"k" * 32
    (tmp_path / "key").write_bytes(key)
    signed = json.loads(signed_line(key, json.dumps(target(
        1, [{"symbol": "BTC/USDT", "quantity": "2"}, {"symbol": "ETH/USDT", "quantity": "3"}],
        execution={"algorithm": "twap", "duration": 20, "slices": 2})).encode()))
    forged = {**signed, "as_of": 2}  # its signature was made for as_of 1
    unsigned = target(3, [{"symbol": "BTC/USDT", "quantity": "1"}])
    later = json.loads(signed_line(key, json.dumps(
        target(4, [{"symbol": "BTC/USDT", "quantity": "1"}])).encode()))
    rows = [signed, tick(10), tick(20), forged, unsigned, later, tick(30)]
    ledger = await _run(tmp_path, rows,
                        risk=f'signatures = "all"\nkey_file = "{tmp_path / "key"}"')
    found = _kind(ledger, "target")
    assert [(t["as_of"], t.get("signed")) for t in found] == [(1, True), (4, True)]
    out = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    refused = {o["intent_id"]: o["reason"] for o in out if o["status"] == "REJECTED"}
    assert refused == {str(digest_of(forged)[1]): reasons.PROVENANCE_SIGNATURE_INVALID,
                       str(digest_of(unsigned)[1]): reasons.PROVENANCE_SIGNATURE_MISSING}
    assert _positions(ledger) == {"BTC/USDT": D(1), "ETH/USDT": D(0)}  # 4 leaves ETH out
    # Every leg is signed, and its signature is the key's over the leg's own form.
    ids = {leg[4] for t in found for leg in t["legs"] if leg[5] == "sent"}
    legs = [o["intent"] for o in out if o["intent_id"] in ids]
    assert len(legs) == 4  # BTC and ETH (in children, which are not signed), then both back
    for leg in legs:
        assert leg["signature"] == sign(key, json.dumps(
            {k: v for k, v in leg.items() if k != "signature"}).encode())
    # Signed, it is another target than unsigned: refused unsigned, it may come again.
    assert digest_of(signed) != digest_of({k: v for k, v in signed.items()
                                           if k != "signature"})
