"""The risk checks one by one, their documented order, and which of them each slot runs.

Each check is driven directly on a :class:`~execd.sentinel.checks.Candidate` built from a
real config and a real :class:`~execd.sentinel.risk.Risk`; the order is checked through
``Risk.admit``, where the earlier of two refusing checks must win.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from execd.config import schema as config
from execd.model import reasons
from execd.model.messages import ContextRecord, OrderIntent, Side
from execd.model.refusal import Refusal
from execd.reader.context import EMPTY, LakehouseContext, Override
from execd.sentinel import checks
from execd.sentinel.book import VenueBook
from execd.sentinel.checks import Candidate, Check, Gate
from execd.sentinel.risk import Risk
from execd.sentinel.signatures import sign
from tests.helpers import intent, write_config

KEY = b"0123456789abcdef-test-key"
COOLDOWN = "[venues.stubfail.limits]\nfailure_limit = 2\nfailure_window = 100\ncooldown = 50\n"


def make_risk(tmp_path: Path, extra: str = "", signatures: str = "none",
              key: bytes | None = None, regime: str | None = None,
              prices: dict[str, str] | None = None,
              overrides: tuple[Override, ...] = (), plans: dict[str, str] | None = None,
              runs: tuple[str, ...] = ("run-1",)) -> Risk:
    """A Risk for the test config plus ``extra``, under a lakehouse context of its own."""
    table = f'signatures = "{signatures}"'
    if signatures != "none":
        # Required signatures need a key in the config (the Risk is given ``key`` directly).
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "key").write_bytes(KEY)
        table += f'\nkey_file = "{tmp_path / "key"}"'
    loaded = config.load(write_config(tmp_path, extra=extra, risk=table))
    risk = Risk(loaded.config, key=key)
    risk.set_context(LakehouseContext(
        frozenset(runs), regime, {k: Decimal(v) for k, v in (prices or {}).items()},
        {o.intent_id: o for o in overrides}, plans or {},
        ContextRecord(len(runs), None, regime, 0, None, 0, None, 0, None)))
    return risk


def parsed(n: int, signed_with: bytes | None = None, **fields: Any) -> tuple[OrderIntent, bytes]:
    """Intent ``n`` as the sentinel receives it: decoded, with its raw line."""
    body = intent(n, **fields)
    if signed_with is not None:
        body["signature"] = sign(signed_with, json.dumps(body).encode())
    raw = json.dumps(body).encode()
    return msgspec.json.decode(raw, type=OrderIntent), raw


def make(risk: Risk, n: int = 1, now: int = 0, signed_with: bytes | None = None,
         **fields: Any) -> Candidate:
    """The candidate the checks would see for intent ``n`` on ``risk``, at ``now``."""
    order, raw = parsed(n, signed_with, **fields)
    assert order.intent_id is not None
    side: Side = order.side or "buy"
    return checks.candidate(order, order.intent_id, side, raw, now, risk.rules, risk.context,
                            risk.slot(order.venue, order.symbol))


def verdict(check: Gate | Check, c: Candidate) -> Refusal | None:
    """What one check (a gate or an order check) says about ``c``."""
    if check in [gate for gate, _ in checks.GATES]:
        return check(c.rules, c.context, c.intent)
    return cast(Check, check)(c)


def reason(result: Refusal | None) -> str | None:
    return None if result is None else result.reason


def admit(risk: Risk, n: int = 1, now: int = 0, **fields: Any) -> Refusal | Override | None:
    order, raw = parsed(n, **fields)
    assert order.intent_id is not None
    return risk.admit(order, order.intent_id, order.side or "buy", raw, now)


# ------------------------------------------------------------------ the tables


def test_the_tables_are_in_the_documented_order() -> None:
    """The order decides which refusal an intent gets: it changes only on purpose."""
    assert [gate.__name__ for gate, _ in checks.GATES] == [
        "trading_halted", "governance", "registered_run"]
    assert [check.__name__ for check, _ in checks.CHECKS] == [
        "signature", "venue_cooldown", "trading_reducing", "reduce_only", "price_band",
        "regime_parity", "priced", "order_notional", "asset_exposure", "leverage",
        "order_rate"]
    documented = (checks.__doc__ or "").split("``GATES``")[1]
    functions = [gate for gate, _ in checks.GATES] + [check for check, _ in checks.CHECKS]
    positions = [documented.index(f":func:`{f.__name__}`") for f in functions]
    assert positions == sorted(positions)


def test_a_slot_runs_only_the_checks_that_can_refuse_there(tmp_path: Path) -> None:
    bare = make_risk(tmp_path / "bare")
    assert [g.__name__ for g in checks.gates_for(bare.rules)] == ["registered_run"]
    assert [c.__name__ for c in bare.slot("binance", "BTC/USDT").checks] == [
        "reduce_only", "priced", "leverage"]
    full = make_risk(
        tmp_path / "full", "[governance]\nenforce = true\n[risk.limits]\nmax_orders = 5\n"
        'rate_window = 10\nmax_order_notional = "10"\nmax_asset_exposure = "10"\n'
        f"price_band_bps = 10\n{COOLDOWN}", signatures="all", key=KEY, regime="CRISIS")
    full.set_state("REDUCING", "test")
    assert [c.__name__ for c in full.slot("stubfail", "BTC/USDT").checks] == [
        check.__name__ for check, _ in checks.CHECKS]
    full.set_state("HALTED", "test")
    assert [g.__name__ for g in checks.gates_for(full.rules)] == [
        gate.__name__ for gate, _ in checks.GATES]
    # Back to ACTIVE and out of the crisis: the slot drops those two again.
    full.set_state("ACTIVE", "test")
    full.set_context(EMPTY)
    names = [c.__name__ for c in full.slot("stubfail", "BTC/USDT").checks]
    assert "trading_reducing" not in names and "regime_parity" not in names


def test_a_check_left_out_of_a_slot_could_not_have_refused_there(tmp_path: Path) -> None:
    """A check the table leaves out never refuses: leaving it out changes no outcome."""
    risk = make_risk(tmp_path, key=None, prices={"ETH/USDT": "3000"})
    candidates = [
        make(risk, 1), make(risk, 2, side="sell", quantity="3"),
        make(risk, 3, signed_with=b"some-other-key-16", urgency="critical"),
        make(risk, 4, order_type="limit", limit_price="1", reference_price="1000"),
        make(risk, 5, symbol="ETH/USDT", constraints={"max_leverage": "0.001"}),
        make(risk, 6, venue="stubfail", quantity="1E+9"),
    ]
    for c in candidates:
        for check, needed in checks.CHECKS:
            if not needed(c.rules, c.context, risk.slot(c.intent.venue, c.intent.symbol)):
                assert check(c) is None, (check.__name__, c.intent)


# ------------------------------------------------------------------ each gate


def test_trading_halted(tmp_path: Path) -> None:
    risk = make_risk(tmp_path)
    assert checks.trading_halted(risk.rules, risk.context, make(risk).intent) is None
    risk.set_state("HALTED", "alice: outage")
    assert checks.trading_halted(risk.rules, risk.context, make(risk).intent) == Refusal(
        reasons.TRADING_HALTED, "trading state is HALTED (alice: outage)")


def test_governance(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, "[governance]\nenforce = true\nrequire_plan = true\n",
                     plans={"p1": "COMMITTED", "p2": "REVIEWED"})
    cases: list[dict[str, Any]] = [{"plan_id": "p1"}, {}, {"plan_id": "p9"}, {"plan_id": "p2"}]
    results = [reason(checks.governance(risk.rules, risk.context, make(risk, n, **f).intent))
               for n, f in enumerate(cases)]
    assert results == [None, reasons.GOVERNANCE_PLAN_MISSING, reasons.GOVERNANCE_PLAN_UNKNOWN,
                       reasons.GOVERNANCE_PLAN_NOT_COMMITTED]


def test_registered_run(tmp_path: Path) -> None:
    risk = make_risk(tmp_path)
    gate = checks.registered_run
    assert gate(risk.rules, risk.context, make(risk).intent) is None
    refusal = gate(risk.rules, risk.context, make(risk, source_run="run-9").intent)
    assert refusal == Refusal(reasons.PROVENANCE_RUN_UNREGISTERED,
                              "source_run='run-9' is not in audit/runs.jsonl (1 runs registered)")


# ------------------------------------------------------------------ each check


def test_signature(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, signatures="all", key=KEY)
    assert checks.signature(make(risk, signed_with=KEY)) is None
    missing = checks.signature(make(risk))
    assert missing is not None and missing.reason == reasons.PROVENANCE_SIGNATURE_MISSING
    assert missing.detail == "venue=binance is on the paper plane and risk.signatures='all'"
    invalid = checks.signature(make(risk, signed_with=b"another-key-of-16b"))
    assert reason(invalid) == reasons.PROVENANCE_SIGNATURE_INVALID
    # Not required and no key to check with: a signature proves nothing and refuses nothing.
    lax = make_risk(tmp_path / "lax")
    assert checks.signature(make(lax, signed_with=b"another-key-of-16b")) is None


def test_venue_cooldown(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, COOLDOWN)
    cooldown = risk.venues["stubfail"].cooldown
    assert cooldown is not None
    assert checks.venue_cooldown(make(risk, now=10, venue="stubfail")) is None
    cooldown.note_failure(10)
    cooldown.note_failure(20)
    refusal = checks.venue_cooldown(make(risk, now=30, venue="stubfail"))
    assert reason(refusal) == reasons.RISK_VENUE_COOLDOWN
    assert refusal is not None and "until t=70" in refusal.detail
    assert checks.venue_cooldown(make(risk, now=70, venue="stubfail")) is None


def test_trading_reducing_and_reduce_only(tmp_path: Path) -> None:
    risk = make_risk(tmp_path)
    assert admit(risk, 1, quantity="2") is None  # paper fills it: long 2
    only: dict[str, Any] = {"constraints": {"reduce_only": True}}
    assert checks.reduce_only(make(risk, 2, side="sell", quantity="2", **only)) is None
    refusal = checks.reduce_only(make(risk, 3, side="sell", quantity="2.5", **only))
    assert refusal == Refusal(reasons.RISK_REDUCE_ONLY_VIOLATION,
                              "reduce_only: sell 2.5 would not only shrink position=2 "
                              "(pending_buy=0 pending_sell=0)")
    assert checks.reduce_only(make(risk, 4)) is None  # not reduce-only: anything goes
    assert checks.trading_reducing(make(risk, 5)) is None  # ACTIVE
    risk.set_state("REDUCING", "end of day")
    assert reason(checks.trading_reducing(make(risk, 6))) == reasons.TRADING_REDUCING
    assert checks.trading_reducing(make(risk, 7, side="sell", quantity="1")) is None


def test_price_band(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, "[risk.limits]\nprice_band_bps = 100\n",
                     prices={"ETH/USDT": "3000"})
    limit: dict[str, Any] = {"order_type": "limit"}
    assert checks.price_band(make(risk, limit_price="101", reference_price="100",
                                  **limit)) is None
    wide = checks.price_band(make(risk, limit_price="102", reference_price="100", **limit))
    assert wide == Refusal(reasons.RISK_PRICE_BAND_EXCEEDED,
                           "limit_price=102 is 200.0 bps from reference=100 > price_band_bps=100")
    assert reason(checks.price_band(make(risk, symbol="ETH/USDT", limit_price="3031",
                                         **limit))) == reasons.RISK_PRICE_BAND_EXCEEDED
    unknown = checks.price_band(make(risk, symbol="SOL/USDT", limit_price="150", **limit))
    assert reason(unknown) == reasons.RISK_PRICE_UNKNOWN
    assert checks.price_band(make(risk, symbol="SOL/USDT")) is None  # market order


def test_regime_parity_and_its_override(tmp_path: Path) -> None:
    overridden = uuid.UUID(intent(2)["intent_id"])
    override = Override(overridden, "carol", "hedge unwind approved")
    risk = make_risk(tmp_path, regime="CRISIS", overrides=(override,))
    refused = make(risk, 1, urgency="high")
    assert reason(checks.regime_parity(refused)) == reasons.RISK_REGIME_OVERRIDE_REQUIRED
    carried = make(risk, 2, urgency="critical")
    assert checks.regime_parity(carried) is None and checks.override_of(carried) == override
    calm = make(risk, 3, urgency="medium")
    assert checks.regime_parity(calm) is None and checks.override_of(calm) is None
    assert checks.regime_parity(make(risk, 4, side="sell", urgency="critical")) is None


def test_priced_and_order_notional(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, '[risk.limits]\nmax_order_notional = "100000"\n')
    unpriced = make(risk)
    assert reason(checks.priced(unpriced)) == reasons.RISK_PRICE_UNKNOWN
    assert checks.order_notional(unpriced) is None  # priced's refusal, not this one's
    assert checks.priced(make(risk, reference_price="100000", quantity="1")) is None
    refusal = checks.order_notional(make(risk, reference_price="100000", quantity="1.25"))
    assert refusal == Refusal(reasons.RISK_NOTIONAL_EXCEEDED,
                              "notional=125000.00 (quantity=1.25 x price=100000) > "
                              "max_order_notional=100000")
    # An intent's own leverage cap needs a price too, with no limit configured.
    bare = make_risk(tmp_path / "bare")
    own: dict[str, Any] = {"constraints": {"max_leverage": "2"}}
    assert reason(checks.priced(make(bare, **own))) == reasons.RISK_PRICE_UNKNOWN
    assert checks.priced(make(bare)) is None


def test_asset_exposure(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, '[risk.limits]\nmax_asset_exposure = "100000"\n',
                     prices={"BTC/USDT": "50000"})
    assert admit(risk, 1, quantity="1.5") is None
    refusal = checks.asset_exposure(make(risk, 2, quantity="0.6"))
    assert refusal == Refusal(reasons.RISK_ASSET_EXPOSURE_EXCEEDED,
                              "exposure=105000.0 (worst-case position=2.1 x price=50000) > "
                              "max_asset_exposure=100000")
    assert checks.asset_exposure(make(risk, 3, quantity="0.5")) is None
    assert checks.asset_exposure(make(risk, 4, side="sell", quantity="1.5")) is None


def test_leverage(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, '[risk.limits]\nmax_leverage = "2"\nequity = "100000"\n',
                     prices={"BTC/USDT": "50000", "ETH/USDT": "2500"})
    assert admit(risk, 1, quantity="3") is None  # gross 150000
    over = checks.leverage(make(risk, 2, symbol="ETH/USDT", quantity="21"))
    assert over == Refusal(reasons.RISK_LEVERAGE_EXCEEDED,
                           "leverage=2.0250 (gross=202500 / equity=100000) > max_leverage=2")
    assert checks.leverage(make(risk, 3, symbol="ETH/USDT", quantity="20")) is None
    own = checks.leverage(make(risk, 4, venue="alpaca", quantity="1.2",
                               constraints={"max_leverage": "0.5"}))
    assert own is not None and own.reason == reasons.RISK_LEVERAGE_EXCEEDED
    assert "max_leverage=0.5" in own.detail
    # A held position without any price makes the gross exposure unknown: fail closed.
    risk.observe("binance", "SOL/USDT", "buy", "FILLED", None, Decimal(9), None, 0, None)
    unknown = checks.leverage(make(risk, 5, quantity="0.1"))
    assert unknown == Refusal(reasons.RISK_PRICE_UNKNOWN,
                              "gross exposure cannot be valued: no price for held SOL/USDT")
    # The intent's own cap needs an equity.
    bare = make_risk(tmp_path / "bare", prices={"BTC/USDT": "50000"})
    no_equity = checks.leverage(make(bare, 6, constraints={"max_leverage": "1"}))
    assert no_equity is not None and no_equity.detail == (
        "constraints.max_leverage=1 needs an equity for the venue (limits.equity); "
        "none is configured")


def test_order_rate_is_counted_by_the_commit_not_the_check(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, "[risk.limits]\nmax_orders = 2\nrate_window = 10\n")
    rate = risk.venues["binance"].rate
    assert rate is not None
    for n in range(3):
        assert checks.order_rate(make(risk, n, now=100)) is None
    assert list(rate.sent) == []  # checking counts nothing
    assert admit(risk, 4, now=100) is None and admit(risk, 5, now=105) is None
    refusal = checks.order_rate(make(risk, 6, now=109))
    assert reason(refusal) == reasons.RISK_ORDER_RATE_EXCEEDED
    assert refusal is not None and "max=2 per rate_window=10" in refusal.detail
    assert checks.order_rate(make(risk, 7, now=110)) is None


# ------------------------------------------------------------------ the order


# Each case makes two neighbouring checks refuse the same intent: the earlier one wins.
# (``priced`` and ``order_notional`` cannot both refuse: the second needs the price whose
# absence the first refuses.)
ORDER: list[tuple[str, Any, Any, str, dict[str, Any]]] = [
    ("halted before governance", checks.trading_halted, checks.governance,
     "[governance]\nenforce = true\n", {"plan_id": "p9", "_state": "HALTED"}),
    ("governance before registry", checks.governance, checks.registered_run,
     "[governance]\nenforce = true\n", {"plan_id": "p9", "source_run": "run-9"}),
    ("registry before signature", checks.registered_run, checks.signature,
     "", {"source_run": "run-9", "_signatures": "all"}),
    ("signature before cooldown", checks.signature, checks.venue_cooldown,
     COOLDOWN, {"venue": "stubfail", "_signatures": "all", "_cool": True}),
    ("cooldown before reducing", checks.venue_cooldown, checks.trading_reducing,
     COOLDOWN, {"venue": "stubfail", "_cool": True, "_state": "REDUCING"}),
    ("reducing before reduce-only", checks.trading_reducing, checks.reduce_only,
     "", {"constraints": {"reduce_only": True}, "_state": "REDUCING"}),
    ("reduce-only before price band", checks.reduce_only, checks.price_band,
     "[risk.limits]\nprice_band_bps = 10\n",
     {"constraints": {"reduce_only": True}, "order_type": "limit", "limit_price": "200",
      "reference_price": "100"}),
    ("price band before regime", checks.price_band, checks.regime_parity,
     "[risk.limits]\nprice_band_bps = 10\n",
     {"urgency": "high", "order_type": "limit", "limit_price": "200", "reference_price": "100",
      "_crisis": True}),
    ("regime before priced", checks.regime_parity, checks.priced,
     '[risk.limits]\nmax_order_notional = "10"\n', {"urgency": "high", "_crisis": True}),
    ("notional before exposure", checks.order_notional, checks.asset_exposure,
     '[risk.limits]\nmax_order_notional = "10"\nmax_asset_exposure = "10"\n',
     {"reference_price": "100"}),
    ("exposure before leverage", checks.asset_exposure, checks.leverage,
     '[risk.limits]\nmax_asset_exposure = "10"\nmax_leverage = "1"\nequity = "10"\n',
     {"reference_price": "100"}),
    ("leverage before rate", checks.leverage, checks.order_rate,
     '[risk.limits]\nmax_leverage = "1"\nequity = "10"\nmax_orders = 1\nrate_window = 10\n',
     {"reference_price": "100", "_full_rate": True}),
]


@pytest.mark.parametrize(("name", "earlier", "later", "extra", "fields"), ORDER,
                         ids=[case[0] for case in ORDER])
def test_when_two_checks_refuse_the_earlier_one_wins(
        tmp_path: Path, name: str, earlier: Gate | Check, later: Gate | Check, extra: str,
        fields: dict[str, Any]) -> None:
    fields = dict(fields)
    state = fields.pop("_state", None)
    risk = make_risk(tmp_path, extra, signatures=fields.pop("_signatures", "none"),
                     regime="CRISIS" if fields.pop("_crisis", False) else None)
    if fields.pop("_cool", False):
        cooldown = risk.venues["stubfail"].cooldown
        assert cooldown is not None
        cooldown.note_failure(0)
        cooldown.note_failure(0)
    if fields.pop("_full_rate", False):
        rate = risk.venues["binance"].rate
        assert rate is not None
        rate.note(0)
    if state is not None:
        risk.set_state(state, "test")
    c = make(risk, **fields)
    first, second = verdict(earlier, c), verdict(later, c)
    assert first is not None and second is not None, (first, second)
    assert admit(risk, **fields) == first


def test_a_refused_intent_moves_nothing(tmp_path: Path) -> None:
    risk = make_risk(tmp_path, "[risk.limits]\nmax_orders = 5\nrate_window = 10\n"
                     'max_order_notional = "10"\n')
    assert admit(risk, 1, reference_price="100") is not None
    rate = risk.venues["binance"].rate
    assert rate is not None and list(rate.sent) == []
    assert risk.book.open_positions() == []


# ------------------------------------------------------------------ the book and refusals


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_a_fill_valued_by_the_checks_counts_as_a_recount_would(side: Side) -> None:
    """The commit may take the checks' valuation of a fill: gross stays the sum of counts."""
    hinted, counted = VenueBook(), VenueBook()
    price, quantity = Decimal("64200.5"), Decimal("0.37")
    for book, hint in ((hinted, True), (counted, False)):
        for step in range(3):
            position = book.position("BTC/USDT")
            grown = position.grown(side, quantity, at_once=True)
            assert grown is not None
            book.accept(position, side, quantity, price + step, "fill",
                        grown * (price + step) if hint else None)
    a, b = hinted.position("BTC/USDT"), counted.position("BTC/USDT")
    assert (a.filled, a.counted, a.mark, hinted.gross) == (b.filled, b.counted, b.mark,
                                                           counted.gross)
    assert str(hinted.gross) == str(counted.gross)


def test_a_refusal_is_a_frozen_value() -> None:
    refusal = Refusal(reasons.INTENT_HOLD, "action=HOLD: nothing to execute", "SKIPPED")
    assert Refusal("X", "y").status == "REJECTED"
    with pytest.raises(AttributeError):
        refusal.reason = "other"  # type: ignore[misc]
