"""Parent orders on the paper plane, through the whole pipeline (execd replay in-process):
a TWAP driven by ticks gives one outcome per child and one for the parent, the ledger
is the same bytes whatever the queue and batch sizes, and a bad schedule is a REJECTED
outcome with its reason."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from execd.model import reasons
from execd.model.ids import child_intent_id
from tests.helpers import intent, ledger_bytes, lines, outcomes, records, replay

PARENT = "00000000-0000-4000-8000-000000000001"


def _twap(n: int, quantity: str = "1.00", **execution: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"algorithm": "twap", "duration": 100, "slices": 4}
    params.update(execution)
    return intent(n, quantity=quantity, limit_price="100", order_type="limit",
                  execution=params)


def _inputs(directory: Path, rows: list[dict[str, Any]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "in.jsonl"
    path.write_bytes(lines(*rows))
    return [path]


async def test_a_twap_driven_by_ticks_gives_a_child_per_slice_and_one_parent_outcome(
        tmp_path: Path) -> None:
    rows = [{"kind": "tick", "time": 1000}, _twap(1),
            *({"kind": "tick", "time": t} for t in (1010, 1025, 1060, 1075, 1200))]
    ledger = await replay(tmp_path / "run", _inputs(tmp_path, rows))
    kinds = [(r["kind"], r["time"]) for r in records(ledger)
             if r["kind"] in ("schedule", "outcome", "tick")]
    assert kinds == [("tick", 1000), ("schedule", 1000), ("outcome", 1000), ("tick", 1010),
                     ("tick", 1025), ("outcome", 1025), ("tick", 1060), ("outcome", 1060),
                     ("tick", 1075), ("outcome", 1075), ("outcome", 1075), ("tick", 1200)]
    done = outcomes(ledger)
    children, [parent] = done[:4], done[4:]
    assert all(c["parent"] == PARENT and c["status"] == "FILLED" for c in children)
    assert [c["filled_quantity"] for c in children] == ["0.25"] * 4
    assert len({c["intent_id"] for c in children}) == 4
    assert parent["intent_id"] == PARENT and parent["children"] == 4
    assert (parent["status"], parent["filled_quantity"], parent["average_price"]) == (
        "FILLED", "1.00", "100")
    total = sum(Decimal(c["filled_quantity"]) for c in children)
    assert total == Decimal(parent["filled_quantity"])


async def test_schedules_replay_byte_identical_whatever_the_sizes(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"kind": "tick", "time": 0}]
    for n in range(1, 30):
        rows.append(_twap(n, quantity=f"{n}.{n:02d}", slices=1 + n % 7, duration=10 + n))
        rows.append(intent(1000 + n, quantity="0.1"))
        if n % 3 == 0:
            rows.append({"kind": "tick", "time": n * 2})
    rows.append(intent(2000, quantity="3", execution={"algorithm": "iceberg", "visible": "1"}))
    rows.append({"kind": "tick", "time": 10_000})
    inputs = _inputs(tmp_path, rows)
    ledgers = []
    for index, sizes in enumerate([{"q": 1, "items": 1, "commit_records": 1},
                                   {"q": 64, "items": 4096, "commit_records": 65536},
                                   {"q": 3, "items": 7, "commit_records": 5}]):
        ledgers.append(ledger_bytes(await replay(tmp_path / f"run{index}", inputs, **sizes)))
    assert ledgers[0] == ledgers[1] == ledgers[2]
    done = outcomes(tmp_path / "run0" / "ledger")
    parents = [o for o in done if "children" in o]
    assert len(parents) == 30 and all(p["status"] == "FILLED" for p in parents)
    by_parent: dict[str, Decimal] = {}
    for o in done:
        if "parent" in o:
            by_parent[o["parent"]] = by_parent.get(o["parent"], Decimal(0)) + Decimal(
                o["filled_quantity"])
    for p in parents:
        assert by_parent[p["intent_id"]] == Decimal(p["filled_quantity"]) == Decimal(
            p["requested_quantity"])


async def test_a_bad_schedule_is_rejected_with_its_reason(tmp_path: Path) -> None:
    bad = [
        ({"algorithm": "teleport"}, reasons.EXECUTION_ALGORITHM_UNKNOWN),
        ({"algorithm": "twap", "end": 50, "slices": 2}, reasons.EXECUTION_WINDOW_INVALID),
        ({"algorithm": "twap", "start": 500, "end": 400, "slices": 2},
         reasons.EXECUTION_WINDOW_INVALID),
        ({"algorithm": "twap", "duration": 10, "slices": 0}, reasons.EXECUTION_WINDOW_INVALID),
        ({"algorithm": "twap", "duration": 10}, reasons.EXECUTION_WINDOW_INVALID),
        ({"algorithm": "pov", "duration": 10, "participation": "1.5"},
         reasons.EXECUTION_PARAMETER_INVALID),
        ({"algorithm": "pov", "duration": 10, "participation": "0.5"},  # no volume file
         reasons.EXECUTION_VOLUME_UNUSABLE),
        ({"algorithm": "twap", "duration": 10, "slices": 2, "visible": "1"},
         reasons.EXECUTION_PARAMETER_INVALID),
        ({"algorithm": "iceberg"}, reasons.EXECUTION_PARAMETER_INVALID),
        ({"algorithm": "iceberg", "visible": "-1"}, reasons.EXECUTION_PARAMETER_INVALID),
        ({"algorithm": "twap", "duration": 10, "slices": 2, "time_in_force": "FOREVER"},
         reasons.EXECUTION_TIME_IN_FORCE_INVALID),
        ({"time_in_force": "GTD"}, reasons.EXECUTION_TIME_IN_FORCE_INVALID),
        ({"time_in_force": "GTD", "expire_at": 10}, reasons.EXECUTION_TIME_IN_FORCE_INVALID),
    ]
    rows: list[dict[str, Any]] = [{"kind": "tick", "time": 100}]
    rows += [intent(n, execution=execution) for n, (execution, _) in enumerate(bad, 1)]
    rows.append(intent(99, venue="stubfail", execution={"algorithm": "twap", "duration": 10,
                                                        "slices": 2}))
    ledger = await replay(tmp_path / "run", _inputs(tmp_path, rows))
    done = outcomes(ledger)
    got = [(o["status"], o["reason"]) for o in done]
    assert got == [("REJECTED", reason) for _, reason in bad] + [
        ("REJECTED", reasons.EXECUTION_ALGORITHM_UNSUPPORTED)]
    assert all(o.get("detail") for o in done)
    assert not any(r["kind"] == "schedule" for r in records(ledger))


async def test_a_vwap_follows_its_symbols_lakehouse_profile_and_refuses_an_unusable_one(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    market = run / "lakehouse" / "market"
    market.mkdir(parents=True)
    (market / "volume_profile.json").write_text(json.dumps({
        "BTC/USDT": {"period": 100, "weights": ["1", "3"]},
        "ETH/USDT": {"period": 100, "weights": ["0"]}}))
    vwap = {"algorithm": "vwap", "start": 0, "end": 100, "slices": 4}
    rows = [{"kind": "tick", "time": 0}, intent(1, quantity="8", execution=vwap),
            intent(2, quantity="8", symbol="ETH/USDT", execution=vwap),
            intent(3, quantity="8", symbol="SOL/USDT", execution=vwap),  # no profile: flat
            *({"kind": "tick", "time": t} for t in (25, 50, 75, 100))]
    ledger = await replay(run, _inputs(tmp_path, rows))
    done = outcomes(ledger)
    by_parent: dict[str, list[str]] = {}
    for o in done:
        if "parent" in o:
            by_parent.setdefault(o["parent"][-1:], []).append(o["filled_quantity"])
    assert by_parent == {"1": ["1", "1", "3", "3"], "3": ["2", "2", "2", "2"]}
    [refused] = [o for o in done if o["intent_id"] == "00000000-0000-4000-8000-000000000002"]
    assert (refused["status"], refused["reason"]) == (
        "REJECTED", reasons.EXECUTION_PROFILE_UNUSABLE)
    [context] = [r["body"] for r in records(ledger) if r["kind"] == "context"]
    assert context["profiles"] == 1 and len(context["profiles_sha256"]) == 64
    assert "no usable profile for ETH/USDT" in context["problems"][0]


async def test_an_input_intent_under_a_childs_id_never_gives_that_id_two_outcomes(
        tmp_path: Path) -> None:
    """Child ids are computable: one taken by an input intent before the child is released
    sends the child under its next attempt's id; one reused after is a duplicate."""
    parent = uuid.UUID(PARENT)
    first, second = child_intent_id(parent, 0, 0), child_intent_id(parent, 1, 0)
    rows = [{"kind": "tick", "time": 0}, _twap(1, quantity="4"),
            intent(2, intent_id=str(first), quantity="9"),  # after child 0 went
            intent(3, intent_id=str(second), quantity="9"),  # before child 1 goes
            {"kind": "tick", "time": 30}, {"kind": "tick", "time": 200}]
    done = outcomes(await replay(tmp_path / "run", _inputs(tmp_path, rows)))
    filled = Counter(o["intent_id"] for o in done if o["status"] == "FILLED")
    assert max(filled.values()) == 1  # the reuse after is refused as any duplicate is
    [refused] = [o for o in done if o["status"] == "REJECTED"]
    assert (refused["intent_id"], refused["reason"]) == (str(first), reasons.INTENT_DUPLICATE)
    by_id = {o["intent_id"]: o for o in done if o["status"] == "FILLED"}
    assert by_id[str(second)]["filled_quantity"] == "9" and "parent" not in by_id[str(second)]
    children = [o["intent_id"] for o in done if o.get("parent") == PARENT]
    assert children[0] == str(first) and str(child_intent_id(parent, 1, 1)) in children
    assert by_id[PARENT]["filled_quantity"] == "4"


async def test_what_a_schedule_cannot_split_exactly_or_shows_beyond_range_is_refused(
        tmp_path: Path) -> None:
    digits24 = "1." + "0" * 22 + "1"  # 24 significant digits: split exactly
    rows = [{"kind": "tick", "time": 0},
            intent(1, quantity="9." + "9" * 31, execution={"algorithm": "twap",
                                                           "duration": 10, "slices": 4}),
            intent(2, quantity=digits24, execution={"algorithm": "twap", "duration": 10,
                                                    "slices": 3}),
            intent(3, quantity="1", execution={"algorithm": "iceberg", "visible": "1E+1000000"}),
            intent(4, quantity="0.001", execution={"algorithm": "iceberg", "visible": "1E+999"}),
            intent(5, quantity="20001", execution={"algorithm": "iceberg", "visible": "2"}),
            intent(6, quantity="20000", execution={"algorithm": "iceberg", "visible": "2"}),
            {"kind": "tick", "time": 10}]
    done = outcomes(await replay(tmp_path / "run", _inputs(tmp_path, rows)))
    by_number = {o["intent_id"][-1]: o for o in done if "parent" not in o}
    for n in "1345":
        assert (by_number[n]["status"], by_number[n]["reason"]) == (
            "REJECTED", reasons.EXECUTION_PARAMETER_INVALID), by_number[n]
    assert "32 significant digits" in by_number["1"]["detail"]
    assert "more than 10000 children" in by_number["5"]["detail"]
    assert (by_number["2"]["status"], by_number["2"]["filled_quantity"]) == ("FILLED", digits24)
    assert (by_number["6"]["status"], by_number["6"]["children"]) == ("FILLED", 10_000)


async def test_a_pov_follows_the_markets_volume_under_its_cap_byte_identical(
        tmp_path: Path) -> None:
    """Intervals of 10 with known volumes; ticks every 5: each child is at most 10% of
    the interval that ended last, one per interval, none at the window's end; one POV
    fills, one runs out of window (SCHEDULE_INCOMPLETE), one on a symbol the file does not
    list is refused; the ledger is the same bytes whatever the sizes."""
    volumes = [(t, t + 10, str(v)) for t, v in zip(range(0, 200, 10),
                                                  (50, 0, 120, 7, 300, 80, 1000, 40, 5, 60,
                                                   90, 10, 70, 20, 30, 10, 400, 90, 10, 5),
                                                  strict=True)]
    pov = {"algorithm": "pov", "start": 0, "end": 100, "participation": "0.1"}
    rows: list[dict[str, Any]] = [
        {"kind": "tick", "time": 0},
        intent(1, quantity="20.0", limit_price="100", order_type="limit", execution=pov),
        intent(2, quantity="500", limit_price="100", order_type="limit", symbol="ETH/USDT",
               execution=pov),
        intent(3, quantity="1", symbol="SOL/USDT", execution=pov),
        intent(4, quantity="1000", limit_price="100", order_type="limit", execution=pov),
        # Slices due when the POVs' windows end: each parent's outcome keeps its place
        # among these children whatever the batch size.
        *(intent(n, quantity="2", execution={"algorithm": "twap", "start": 0, "end": 200,
                                             "slices": 2}) for n in (5, 6)),
        *({"kind": "tick", "time": t} for t in range(5, 205, 5))]
    ledgers = []
    for index, sizes in enumerate([{"q": 1, "items": 1, "commit_records": 1},
                                   {"q": 64, "items": 4096, "commit_records": 65536}]):
        run = tmp_path / f"run{index}"
        market = run / "lakehouse" / "market"
        market.mkdir(parents=True)
        (market / "volume.json").write_text(json.dumps({
            "BTC/USDT": volumes, "ETH/USDT": [(0, 100, "50")]}))
        ledgers.append(ledger_bytes(await replay(run, _inputs(tmp_path, rows), **sizes)))
    assert ledgers[0] == ledgers[1]
    ledger = tmp_path / "run0" / "ledger"
    done = outcomes(ledger)
    by_id = {o["intent_id"][-1]: o for o in done if "parent" not in o}
    assert (by_id["3"]["status"], by_id["3"]["reason"]) == (
        "REJECTED", reasons.EXECUTION_VOLUME_UNUSABLE)
    for n, quantity, lot, status in (("1", "20.0", "0.1", "FILLED"),
                                     ("4", "1000", "1", "PARTIALLY_FILLED")):
        children = [(o["logical_time"], Decimal(o["filled_quantity"])) for o in done
                    if o.get("parent", "").endswith(n)]
        # At each interval's end (a tick), 10% of it in whole lots, until it is all sent;
        # an interval ending at the window's end is not used.
        expected, left = [], Decimal(quantity)
        for _, end, volume in volumes:
            share = min(left, (Decimal(volume) / 10).quantize(Decimal(lot), "ROUND_FLOOR"))
            if end < 100 and share:
                expected.append((end, share))
                left -= share
        assert children == expected
        parent = by_id[n]
        assert (parent["status"], parent["children"]) == (status, len(children))
        assert Decimal(parent["filled_quantity"]) == sum(s for _, s in children)
    assert by_id["4"]["reason"] == reasons.SCHEDULE_INCOMPLETE
    assert by_id["4"]["logical_time"] == 100
    # ETH's one interval ends at the window's end: never used, nothing sent.
    assert (by_id["2"]["status"], by_id["2"]["reason"]) == ("SKIPPED",
                                                            reasons.SCHEDULE_INCOMPLETE)
    assert by_id["2"]["logical_time"] == 100
    [context] = [r["body"] for r in records(ledger) if r["kind"] == "context"]
    assert context["volumes"] == 2 and len(context["volumes_sha256"]) == 64


async def test_of_children_due_at_once_the_higher_prioritys_goes_first(tmp_path: Path) -> None:
    """Two TWAPs due at the same ticks under a rate limit that lets one order through a
    window: the parent of higher priority gets it, whichever was read first; at equal
    priority, the one read first does."""
    risk = ('signatures = "none"\n[risk.limits]\nmax_orders = 1\nrate_window = 25\n')
    twap = {"algorithm": "twap", "start": 10, "duration": 100, "slices": 2}

    async def first_children(low: int, high: int, name: str) -> dict[str, str]:
        rows = [{"kind": "tick", "time": 0},
                intent(1, quantity="2", priority=low, execution=twap),
                intent(2, quantity="2", priority=high, execution=twap),
                {"kind": "tick", "time": 10}, {"kind": "tick", "time": 200}]
        ledger = await replay(tmp_path / name, _inputs(tmp_path / name, rows), risk=risk)
        at_ten = [o for o in outcomes(ledger) if "parent" in o and o["logical_time"] == 10]
        assert len(at_ten) == 2
        return {o["parent"][-1]: (o["status"], o.get("reason")) for o in at_ten}

    assert await first_children(10, 90, "a") == {
        "2": ("FILLED", None), "1": ("REJECTED", reasons.RISK_ORDER_RATE_EXCEEDED)}
    assert await first_children(90, 10, "b") == {
        "1": ("FILLED", None), "2": ("REJECTED", reasons.RISK_ORDER_RATE_EXCEEDED)}
    assert await first_children(50, 50, "c") == {
        "1": ("FILLED", None), "2": ("REJECTED", reasons.RISK_ORDER_RATE_EXCEEDED)}
