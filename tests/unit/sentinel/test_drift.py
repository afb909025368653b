"""Drift (execd/sentinel/drift.py), pure: the ledger's band, the baseline, the
tolerance, quote assets never compared, and what a Safety Sell of the venue's holdings
sells."""

from __future__ import annotations

from decimal import Decimal

from execd.config.schema import DriftConfig
from execd.model.messages import DriftRecord, HoldingsRecord
from execd.sentinel.book import VenueBook
from execd.sentinel.drift import DriftState, compare, distance, venue_exits

D = Decimal


def _book(**positions: tuple[str, str, str]) -> VenueBook:
    book = VenueBook()
    for name, (filled, buy, sell) in positions.items():
        position = book.position(name.replace("_", "/"))
        position.filled, position.pending_buy, position.pending_sell = D(filled), D(buy), D(sell)
    return book


def _held(**total: str) -> HoldingsRecord:
    amounts = {asset: D(q) for asset, q in total.items()}
    return HoldingsRecord("v", "poll", amounts, amounts, True)


def test_the_first_quiet_comparison_fixes_the_baseline_then_drift_starts_and_clears() -> None:
    state, config = DriftState(), DriftConfig(tolerance=D("0.001"))
    book = _book(BTC_USDT=("0.5", "0", "0"))
    # In flight: no baseline yet.
    busy = _book(BTC_USDT=("0.5", "0.1", "0"))
    assert compare(state, "v", _held(BTC="1.5"), 1, busy, config, {}) == []
    [base] = compare(state, "v", _held(BTC="1.5", USDT="9"), 2, book, config, {})
    assert (base.state, base.baseline, base.holdings) == ("baseline", D(1), 2)
    # Within the tolerance: nothing.
    assert compare(state, "v", _held(BTC="1.5009"), 3, book, config, {}) == []
    [drift] = compare(state, "v", _held(BTC="1.7"), 4, book, config, {})
    assert drift.state == "drift" and distance(drift) == D("0.2")
    assert state.drifting[("v", "BTC")] == D("0.2")
    # Still outside: no second record, the gauge follows.
    assert compare(state, "v", _held(BTC="1.8"), 5, book, config, {}) == []
    assert state.drifting[("v", "BTC")] == D("0.3")
    [cleared] = compare(state, "v", _held(BTC="1.5"), 6, book, config, {})
    assert cleared.state == "cleared" and ("v", "BTC") not in state.drifting


def test_an_order_in_flight_is_inside_the_band() -> None:
    state = DriftState()
    state.baselines[("v", "BTC")] = D(0)
    book = _book(BTC_USDT=("1", "0.5", "0.25"))
    for held in ("0.75", "1", "1.5"):
        assert compare(state, "v", _held(BTC=held), 1, book, DriftConfig(), {}) == []
    [low] = compare(state, "v", _held(BTC="0.7"), 2, book, DriftConfig(), {})
    assert distance(low) == D("-0.05")


def test_the_default_tolerance_is_the_lot_and_quote_assets_are_never_compared() -> None:
    state = DriftState()
    state.baselines[("v", "BTC")] = D(0)
    state.baselines[("v", "ETH")] = D(0)
    # ETH/BTC makes BTC a quote asset: its balance moves with every ETH trade's notional.
    book = _book(ETH_USDT=("2", "0", "0"), ETH_BTC=("1", "0", "0"), BTC_USDT=("5", "0", "0"))
    lots = {"ETH/USDT": D("0.01"), "ETH/BTC": D("0.1")}
    assert compare(state, "v", _held(ETH="3.09", BTC="0"), 1, book, DriftConfig(), lots) == []
    [eth] = compare(state, "v", _held(ETH="3.2"), 2, book, DriftConfig(), lots)
    assert (eth.asset, eth.tolerance) == ("ETH", D("0.1"))
    ignored = DriftConfig(ignore=("ETH",))
    assert compare(DriftState(), "v", _held(ETH="9"), 3, book, ignored, lots) == []


def test_baseline_zero_says_every_unit_is_execds() -> None:
    [drift] = compare(DriftState(), "v", _held(BTC="1"), 1, _book(BTC_USDT=("0.5", "0", "0")),
                      DriftConfig(baseline="zero", action="reduce"), {})
    assert (drift.state, drift.baseline, drift.action) == ("drift", D(0), "reduce")


def test_the_state_round_trips_and_records_replay_into_it() -> None:
    state = DriftState()
    state.record(DriftRecord("v", "BTC", "baseline", D(2), D(1), D(1), D(1), D(0)))
    state.record(DriftRecord("v", "BTC", "drift", D(3), D(1), D(1), D(1), D(0)))
    state.holdings(_held(BTC="3"), 7)
    again = DriftState.decode(state.encode())
    assert (again.baselines, again.drifting) == (state.baselines, state.drifting)
    assert again.held["v"].seq == 7 and again.held["v"].record == _held(BTC="3")


def test_a_safety_sell_of_the_venue_sells_the_free_base_amounts() -> None:
    held = HoldingsRecord("v", "poll", {"BTC": D(2), "ETH": D(1)}, {"BTC": D("1.5"), "ETH": D(1)})
    assert venue_exits(held, ["BTC/USDT", "ETH/USDT", "ADA/USDT"], None) == [
        ("BTC/USDT", D("1.5")), ("ETH/USDT", D(1))]
    assert venue_exits(held, ["BTC/USDT"], "ETH/USDT") == [("ETH/USDT", D(1))]
    shared = venue_exits(held, ["BTC/USDT", "BTC/EUR"], None)
    assert isinstance(shared, str) and "--symbol" in shared


def test_a_safety_sell_never_sells_from_a_holdings_read_older_than_allowed() -> None:
    import msgspec

    from execd.config.schema import CcxtConfig
    from execd.sentinel.drift import Held, stale

    ccxt = msgspec.convert({"exchange": "binance", "holdings_ms": 60_000}, CcxtConfig)
    read = Held(HoldingsRecord("v", "poll", {}, {}, wall_time=10**12), 7)
    second = 10**9
    assert stale(read, "v", 10**12 + 180 * second, None, ccxt) is None   # 3 reads' worth
    found = stale(read, "v", 10**12 + 181 * second, None, ccxt)
    assert found is not None and found.startswith(
        "venue='v': its last holdings read (record seq 7) is 181.0 s old, more than "
        "3 x ccxt.holdings_ms (60000 ms)")
    assert stale(read, "v", 10**12 + 181 * second, 200, ccxt) is None    # the operator's
    assert "more than --max-age 5 s" in (stale(read, "v", 10**12 + 6 * second, 5, ccxt) or "")
    start_only = msgspec.structs.replace(ccxt, holdings_ms=0)
    assert stale(read, "v", 10**12 + 300 * second, None, start_only) is None
    assert "300 s (ccxt.holdings_ms = 0" in (
        stale(read, "v", 10**12 + 301 * second, None, start_only) or "")
    # Without a wall time on either side there is nothing to judge by.
    unknown = Held(HoldingsRecord("v", "poll", {}, {}), 7)
    assert stale(unknown, "v", 10**15, None, ccxt) is None
    assert stale(read, "v", None, None, ccxt) is None


def test_a_later_read_of_the_same_holdings_keeps_them_fresh() -> None:
    """Holdings are recorded only when they change: a steady account read every
    holdings_ms is as fresh as its last read, not as its last record."""
    import msgspec

    from execd.config.schema import CcxtConfig
    from execd.sentinel.drift import stale

    ccxt = msgspec.convert({"exchange": "binance", "holdings_ms": 60_000}, CcxtConfig)
    state = DriftState()
    record = HoldingsRecord("v", "poll", {}, {}, wall_time=10**12)
    state.holdings(record, 7)
    later = 10**12 + 600 * 10**9
    assert stale(state.held["v"], "v", later, None, ccxt) is not None
    state.holdings(record, 7, read=later - 10**9)
    assert stale(state.held["v"], "v", later, None, ccxt) is None
