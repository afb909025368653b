"""Routes on the paper plane (execd replay in-process): an intent that names a route goes
to the first of its venues that can take it, under that venue's symbol and limits; each
venue passed over is in the ``route`` record with why; a route whose venues are all
passed over is ROUTE_UNAVAILABLE; a route or venue named wrong is refused, saying why.
(Live routes, a venue down and a full backlog: tests/pipeline/test_live_routes.py.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from execd.config import schema as config
from execd.model import reasons
from execd.model.errors import ConfigError
from tests.helpers import intent, ledger_bytes, lines, records, replay, write_config

ROUTES = """
[venues.alpaca.limits]
max_order_notional = "30000"

[venues.stubfail.limits]
failure_limit = 2
failure_window = 1000
cooldown = 1000

[routes.btc]
venues = ["stubfail", "alpaca", "binance"]

[routes.btc.symbols.alpaca]
"BTC/USDT" = "BTC/USD"

[routes.small]
venues = ["alpaca"]
"""


def routed(n: int, **fields: Any) -> dict[str, Any]:
    body = intent(n, **{"route": "btc", "limit_price": "50000", "order_type": "limit",
                        **fields})
    del body["venue"]
    return body


def _run_inputs(directory: Path, rows: list[dict[str, Any]]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "in.jsonl"
    path.write_bytes(lines(*rows))
    return [path]


def _by_n(ledger: Path, kind: str) -> dict[int, dict[str, Any]]:
    return {int(r["body"]["intent_id"][-12:]): r["body"] for r in records(ledger)
            if r["kind"] == kind and r["body"]["intent_id"].startswith("00000000-")}


ROWS = [
    {"kind": "tick", "time": 10},
    # stubfail takes the first two and fails them: then it cools down.
    routed(1, quantity="0.1"), routed(2, quantity="0.1"),
    # Cooling down: passed over; alpaca takes it, as BTC/USD.
    routed(3, quantity="0.1"),
    # Above alpaca's max_order_notional too: binance takes it.
    routed(4, quantity="1"),
    # Above every venue's: none takes it (binance's limit is the risk default: none)...
    routed(5, route="small", quantity="1"),
    # Wrong names.
    routed(6, route="nowhere"), intent(7, route="btc"), routed(8, route=None),
    # A schedule: the stub venue has no market rules for one, a refusal of its own.
    routed(9, quantity="0.10", execution={"algorithm": "twap", "duration": 10, "slices": 2}),
    {"kind": "tick", "time": 30},
]


async def test_each_routed_intent_goes_to_the_first_venue_that_takes_it(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if v is not None} for r in ROWS]
    ledger = await replay(tmp_path / "run", _run_inputs(tmp_path, rows), extra=ROUTES)
    done = _by_n(ledger, "outcome")
    route = _by_n(ledger, "route")
    assert Counter(r["body"]["intent_id"] for r in records(ledger)
                   if r["kind"] == "outcome").most_common(1)[0][1] == 1
    assert {n: (o["status"], o.get("venue"), o["symbol"]) for n, o in done.items()} == {
        1: ("FAILED", "stubfail", "BTC/USDT"), 2: ("FAILED", "stubfail", "BTC/USDT"),
        3: ("FILLED", "alpaca", "BTC/USD"), 4: ("FILLED", "binance", "BTC/USDT"),
        5: ("REJECTED", None, "BTC/USDT"), 6: ("REJECTED", None, "BTC/USDT"),
        7: ("REJECTED", "binance", "BTC/USDT"), 8: ("REJECTED", None, "BTC/USDT"),
        9: ("FILLED", "alpaca", "BTC/USD")}
    assert (route[1]["venue"], route[1]["hops"]) == ("stubfail", [])
    [(passed, why)] = route[3]["hops"]
    assert passed == "stubfail" and why.startswith(reasons.RISK_VENUE_COOLDOWN)
    assert (route[3]["venue"], route[3]["symbol"]) == ("alpaca", "BTC/USD")
    assert [v for v, _ in route[4]["hops"]] == ["stubfail", "alpaca"]
    assert route[4]["hops"][1][1].startswith(reasons.RISK_NOTIONAL_EXCEEDED)
    assert (route[5].get("venue"), [v for v, _ in route[5]["hops"]]) == (None, ["alpaca"])
    assert (done[5]["reason"], done[6]["reason"], done[7]["reason"], done[8]["reason"]) == (
        reasons.ROUTE_UNAVAILABLE, reasons.ROUTE_UNKNOWN, reasons.ROUTE_UNKNOWN,
        reasons.INTENT_UNKNOWN_VENUE)
    assert done[5]["detail"].startswith("route small: every venue passed over: alpaca: "
                                        "RISK_NOTIONAL_EXCEEDED")
    assert "(known: btc, small)" in done[6]["detail"]
    assert done[7]["detail"] == ("the intent names venue='binance' and route='btc': one or "
                                 "the other")
    # The route record goes right before the intent's outcome.
    kinds = [(r["kind"], r["body"].get("intent_id")) for r in records(ledger)]
    for n in (1, 3, 4, 5):
        at = kinds.index(("outcome", done[n]["intent_id"]))
        assert kinds[at - 1] == ("route", done[n]["intent_id"])
    [schedule] = [r["body"] for r in records(ledger) if r["kind"] == "schedule"]
    assert (schedule["venue"], schedule["symbol"]) == ("alpaca", "BTC/USD")
    assert route[9]["hops"][0][0] == "stubfail"
    assert done[9]["status"] == "FILLED" and done[9]["children"] == 2
    # Each line kept as received: the route, no venue.
    assert "venue" not in done[3]["intent"] and done[3]["intent"]["route"] == "btc"


async def test_routed_replays_are_byte_identical_and_routes_are_in_the_digest(
        tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if v is not None} for r in ROWS]
    inputs = _run_inputs(tmp_path, rows)
    first = await replay(tmp_path / "a", inputs, extra=ROUTES)
    second = await replay(tmp_path / "b", inputs, extra=ROUTES, items=1, q=1,
                          commit_records=1)
    assert ledger_bytes(first) == ledger_bytes(second)
    other = await replay(tmp_path / "c", inputs, extra=ROUTES.replace(
        '"stubfail", "alpaca", "binance"', '"alpaca", "binance"'))
    digests = [records(p)[0]["body"]["config_sha256"] for p in (first, other)]
    assert digests[0] != digests[1]
    plain = config.load(write_config(tmp_path / "d")).config
    assert plain.routes == {}


def test_bad_routes_stop_start_up_with_one_line_each(tmp_path: Path) -> None:
    bad = ('[routes.x]\nvenues = ["binance", "kraken", "binance"]\n'
           '[routes.x.symbols.alpaca]\n"A" = "B"\n[routes.binance]\nvenues = ["alpaca"]\n')
    with pytest.raises(ConfigError) as caught:
        config.load(write_config(tmp_path / "a", extra=bad))
    found = sorted(f"{p.key}: expected {p.expected}, found {p.found}"
                   for p in caught.value.problems)
    assert found == [
        "routes.binance: expected a name that is no venue's, found venue 'binance'",
        "routes.x.symbols: expected symbols only of the route's venues, found alpaca",
        "routes.x.venues: expected each venue once, found binance",
        "routes.x.venues: expected venues of [venues] (known: alpaca, binance, stubfail), "
        "found kraken"]
    for name, extra, line in (
            ("b", "[routes.y]\nvenues = []\n", "routes.y.venues: expected 1 to 16 venues, "
             "found 0"),
            ("c", '[routes.y]\nvenues = ["binance"]\n[routes.y.symbols.binance]\n'
                  '"BTC/USDT" = ""\n', "routes.y.symbols: expected symbols of 1 to 128 "
             "characters, found binance: 'BTC/USDT' = ''")):
        with pytest.raises(ConfigError) as caught:
            config.load(write_config(tmp_path / name, extra=extra))
        [problem] = caught.value.problems
        assert f"{problem.key}: expected {problem.expected}, found {problem.found}" == line
