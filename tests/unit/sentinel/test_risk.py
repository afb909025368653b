"""The Risk Sentinel's checks, on the synchronous core: each accepts and refuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from execd.config import schema as config
from execd.model import reasons
from execd.model.messages import (
    Accepted,
    Entry,
    ExecutionOutcome,
    IntentIn,
    OrderIntent,
    OverrideRecord,
    SafetySellRecord,
    Source,
    TradingStateRecord,
)
from execd.reader.context import EMPTY, Override
from execd.sentinel.core import SeenIds, SentinelCore, safety_sell
from execd.sentinel.risk import Risk
from execd.sentinel.signatures import canonical, sign
from tests.helpers import intent, write_config
from tests.sentinel_inputs import SEQ, ctx, item

KEY = b"0123456789abcdef-test-key"


def build(tmp_path: Path, extra: str = "", risk_table: str = 'signatures = "none"',
          **context: Any) -> SentinelCore:
    """A sentinel core with risk state, for a config whose [risk] table ends with ``extra``."""
    loaded = config.load(write_config(tmp_path, extra=extra, risk=risk_table))
    key = None
    if "key_file" in risk_table:
        key = KEY
    risk = Risk(loaded.config, key=key)
    risk.set_context(ctx(**context))
    return SentinelCore(loaded.config.planes(), SeenIds(), risk)


def accepted(result: Any) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def refused(result: Any, reason: str, *details: str) -> str:
    assert isinstance(result, Entry) and isinstance(result.body, ExecutionOutcome), result
    assert (result.body.status, result.body.reason) == ("REJECTED", reason), result.body
    detail = result.body.detail or ""
    for part in details:
        assert part in detail, detail
    return detail


# --------------------------------------------------------------- trading state


def test_halted_refuses_everything_and_resume_accepts_again(tmp_path: Path) -> None:
    core = build(tmp_path)
    (entry,) = core.set_state("HALTED", "venue outage", "alice")
    assert isinstance(entry, Entry) and entry.body == TradingStateRecord(
        "HALTED", "ACTIVE", "venue outage", "alice")
    refused(core.handle(item(1)), reasons.TRADING_HALTED, "alice: venue outage")
    refused(core.handle(item(2, side="sell")), reasons.TRADING_HALTED)
    core.set_state("ACTIVE", "outage over", "alice")
    accepted(core.handle(item(3)))


def test_reducing_accepts_only_what_shrinks_a_position(tmp_path: Path) -> None:
    core = build(tmp_path)
    accepted(core.handle(item(1, quantity="2")))
    core.set_state("REDUCING", "end of day", "bob")
    refused(core.handle(item(2, quantity="1")), reasons.TRADING_REDUCING,
            "buy 1 would not only shrink position=2")
    refused(core.handle(item(3, side="sell", quantity="3")), reasons.TRADING_REDUCING)
    accepted(core.handle(item(4, side="sell", quantity="1.5")))
    # 0.5 left: the rest of it may go, not a share more.
    refused(core.handle(item(5, side="sell", quantity="0.6")), reasons.TRADING_REDUCING)
    accepted(core.handle(item(6, side="sell", quantity="0.5")))


# ------------------------------------------------------------------ governance


def test_governance_runs_only_committed_plans(tmp_path: Path) -> None:
    plans = {"p-committed": "COMMITTED", "p-approved": "APPROVED"}
    core = build(tmp_path, "[governance]\nenforce = true\n", plans=plans)
    accepted(core.handle(item(1, plan_id="p-committed")))
    refused(core.handle(item(2, plan_id="p-approved")), reasons.GOVERNANCE_PLAN_NOT_COMMITTED,
            "plan_id=p-approved state=APPROVED")
    refused(core.handle(item(3, plan_id="p-nowhere")), reasons.GOVERNANCE_PLAN_UNKNOWN,
            "plan_id=p-nowhere")
    accepted(core.handle(item(4)))  # names no plan, and none is required


def test_governance_can_require_a_plan(tmp_path: Path) -> None:
    core = build(tmp_path, "[governance]\nenforce = true\nrequire_plan = true\n",
                 plans={"p": "COMMITTED"})
    refused(core.handle(item(1)), reasons.GOVERNANCE_PLAN_MISSING)
    accepted(core.handle(item(2, plan_id="p")))


def test_plans_are_not_checked_unless_enforced(tmp_path: Path) -> None:
    core = build(tmp_path, plans={"p": "DRAFT"})
    accepted(core.handle(item(1, plan_id="p")))


# ------------------------------------------------------------------ provenance


def test_source_run_must_be_in_the_registry(tmp_path: Path) -> None:
    core = build(tmp_path, runs=("run-1", "run-2"))
    accepted(core.handle(item(1, source_run="run-2")))
    refused(core.handle(item(2, source_run="run-9")), reasons.PROVENANCE_RUN_UNREGISTERED,
            "source_run='run-9'", "2 runs registered")


def test_registry_check_can_be_turned_off(tmp_path: Path) -> None:
    core = build(tmp_path, "require_registered_run = false\n", runs=())
    accepted(core.handle(item(1, source_run="anything")))


def signed(n: int, key: bytes = KEY, **fields: Any) -> IntentIn:
    body = intent(n, **fields)
    body["signature"] = sign(key, json.dumps(body).encode())
    raw = json.dumps(body).encode()
    return IntentIn(next(SEQ), 0, Source("f", n, 0), msgspec.json.decode(raw, type=OrderIntent),
                    raw)


def test_signatures_accept_the_key_holder_and_refuse_the_rest(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(KEY + b"\n")
    core = build(tmp_path, risk_table=f'signatures = "all"\nkey_file = "{tmp_path / "key"}"')
    accepted(core.handle(signed(1)))
    refused(core.handle(item(2)), reasons.PROVENANCE_SIGNATURE_MISSING, "risk.signatures='all'")
    refused(core.handle(signed(3, key=b"another-key-of-16b")), reasons.PROVENANCE_SIGNATURE_INVALID)
    tampered = signed(4)
    raw = tampered.raw.replace(b'"0.5"', b'"5.0"')
    altered = IntentIn(tampered.seq, 0, tampered.source,
                       msgspec.json.decode(raw, type=OrderIntent), raw)
    refused(core.handle(altered), reasons.PROVENANCE_SIGNATURE_INVALID)


def test_signatures_are_required_on_live_by_default(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(KEY)
    loaded = config.load(write_config(tmp_path, risk=f'key_file = "{tmp_path / "key"}"'))
    risk = Risk(loaded.config, key=KEY)
    risk.set_context(ctx())
    core = SentinelCore(loaded.config.planes(), SeenIds(), risk)
    accepted(core.handle(item(1)))  # paper: not required
    refused(core.handle(item(2, venue="stubfail")), reasons.PROVENANCE_SIGNATURE_MISSING,
            "live plane")
    accepted(core.handle(signed(3, venue="stubfail")))


def test_canonical_form_is_sorted_compact_json_without_the_signature() -> None:
    line = b'{"venue": "b", "kind": "intent", "signature": "ab", "quantity": "1.5"}'
    assert canonical(line) == b'{"kind":"intent","quantity":"1.5","venue":"b"}'
    expected = hmac.new(KEY, b'{"kind":"intent","quantity":"1.5","venue":"b"}',
                        hashlib.sha256).hexdigest()
    assert sign(KEY, line) == expected


# ----------------------------------------------------------- pacing, cooldown


def test_order_rate_per_venue(tmp_path: Path) -> None:
    core = build(tmp_path, "[risk.limits]\nmax_orders = 2\nrate_window = 10\n")
    accepted(core.handle(item(1, time=100)))
    accepted(core.handle(item(2, time=105)))
    refused(core.handle(item(3, time=109)), reasons.RISK_ORDER_RATE_EXCEEDED,
            "max=2 per rate_window=10")
    accepted(core.handle(item(4, time=109, venue="alpaca")))  # another venue's own rate
    accepted(core.handle(item(5, time=110)))


def test_cooldown_after_repeated_failures(tmp_path: Path) -> None:
    core = build(tmp_path, "[venues.stubfail.limits]\nfailure_limit = 2\nfailure_window = 100\n"
                           "cooldown = 50\n")
    accepted(core.handle(item(1, time=10, venue="stubfail")))  # the stub fails it
    accepted(core.handle(item(2, time=20, venue="stubfail")))
    refused(core.handle(item(3, time=30, venue="stubfail")), reasons.RISK_VENUE_COOLDOWN,
            "until t=70", "after 2 failures")
    accepted(core.handle(item(4, time=30)))  # binance is not cooling down
    accepted(core.handle(item(5, time=70, venue="stubfail")))


# ---------------------------------------------------------- orders and prices


def test_reduce_only_is_honoured(tmp_path: Path) -> None:
    core = build(tmp_path)
    accepted(core.handle(item(1, quantity="1")))
    only = {"reduce_only": True}
    refused(core.handle(item(2, quantity="1", constraints=only)),
            reasons.RISK_REDUCE_ONLY_VIOLATION)
    refused(core.handle(item(3, side="sell", quantity="1.5", constraints=only)),
            reasons.RISK_REDUCE_ONLY_VIOLATION, "sell 1.5 would not only shrink position=1")
    accepted(core.handle(item(4, side="sell", quantity="1", constraints=only)))


def test_price_band_for_limit_orders(tmp_path: Path) -> None:
    core = build(tmp_path, "[risk.limits]\nprice_band_bps = 100\n", prices={"ETH/USDT": "3000"})
    limit = {"order_type": "limit"}
    accepted(core.handle(item(1, limit_price="101", reference_price="100", **limit)))
    refused(core.handle(item(2, limit_price="102", reference_price="100", **limit)),
            reasons.RISK_PRICE_BAND_EXCEEDED, "200.0 bps from reference=100", "price_band_bps=100")
    # The lakehouse price is the reference when the intent has none.
    accepted(core.handle(item(3, symbol="ETH/USDT", limit_price="3029", **limit)))
    refused(core.handle(item(4, symbol="ETH/USDT", limit_price="3031", **limit)),
            reasons.RISK_PRICE_BAND_EXCEEDED)
    refused(core.handle(item(5, symbol="SOL/USDT", limit_price="150", **limit)),
            reasons.RISK_PRICE_UNKNOWN, "price_band_bps=100")
    accepted(core.handle(item(6, symbol="SOL/USDT")))  # a market order has no band


def test_order_notional_cap(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_order_notional = "100000"\n')
    accepted(core.handle(item(1, quantity="1", reference_price="100000")))
    refused(core.handle(item(2, quantity="1.25", reference_price="100000")),
            reasons.RISK_NOTIONAL_EXCEEDED, "notional=125000.00", "> max_order_notional=100000")


def test_notional_needs_a_price(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_order_notional = "100000"\n',
                 prices={"ETH/USDT": "3000"})
    refused(core.handle(item(1)), reasons.RISK_PRICE_UNKNOWN, "symbol=BTC/USDT")
    accepted(core.handle(item(2, symbol="ETH/USDT")))  # priced from the lakehouse
    accepted(core.handle(item(3, order_type="limit", limit_price="60000")))


def test_symbol_limits_override_venue_and_global_limits(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_order_notional = "1000"\n'
                           '[venues.binance.symbols."BTC/USDT"]\nmax_order_notional = "100000"\n')
    accepted(core.handle(item(1, reference_price="60000")))
    refused(core.handle(item(2, symbol="ETH/USDT", reference_price="3000")),
            reasons.RISK_NOTIONAL_EXCEEDED, "max_order_notional=1000")


def test_asset_exposure_accumulates_over_fills_and_selling_stays_allowed(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_asset_exposure = "100000"\n',
                 prices={"BTC/USDT": "50000"})
    accepted(core.handle(item(1, quantity="1.5")))
    refused(core.handle(item(2, quantity="0.6")), reasons.RISK_ASSET_EXPOSURE_EXCEEDED,
            "exposure=105000.0", "worst-case position=2.1", "> max_asset_exposure=100000")
    accepted(core.handle(item(3, quantity="0.5")))
    accepted(core.handle(item(4, side="sell", quantity="0.1")))  # shrinks: always allowed
    # Going through flat to a short is growth again, and capped the same way.
    refused(core.handle(item(5, side="sell", quantity="4.1")), reasons.RISK_ASSET_EXPOSURE_EXCEEDED)
    accepted(core.handle(item(6, side="sell", quantity="3.9")))


def test_leverage_over_the_venue_and_the_intent_own_cap(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_leverage = "2"\nequity = "100000"\n',
                 prices={"BTC/USDT": "50000", "ETH/USDT": "2500"})
    accepted(core.handle(item(1, quantity="3")))  # 150000 gross
    refused(core.handle(item(2, symbol="ETH/USDT", quantity="21")),
            reasons.RISK_LEVERAGE_EXCEEDED, "leverage=2.0250", "gross=202500", "max_leverage=2")
    accepted(core.handle(item(3, symbol="ETH/USDT", quantity="20")))  # exactly 2x
    refused(core.handle(item(4, venue="alpaca", quantity="1.2",
                             constraints={"max_leverage": "0.5"})),
            reasons.RISK_LEVERAGE_EXCEEDED, "max_leverage=0.5")
    accepted(core.handle(item(5, venue="alpaca", quantity="1",
                              constraints={"max_leverage": "0.5"})))


# ------------------------------------------------------------- regime parity


def test_crisis_regime_needs_an_override_for_aggressive_longs(tmp_path: Path) -> None:
    overridden = uuid.UUID(intent(2)["intent_id"])
    core = build(tmp_path, regime="CRISIS",
                 overrides=(Override(overridden, "carol", "hedge unwind approved"),))
    refused(core.handle(item(1, urgency="high")), reasons.RISK_REGIME_OVERRIDE_REQUIRED,
            "regime=CRISIS", "urgency=high", f"intent_id={intent(1)['intent_id']}")
    out = core.handle_batch([item(2, urgency="critical")])
    record, order = out
    assert isinstance(record, Entry) and record.kind == "override"
    assert record.body == OverrideRecord(overridden, "CRISIS", "carol", "hedge unwind approved")
    assert accepted(order).seq == record.seq + 1
    accepted(core.handle(item(3, urgency="medium")))  # not aggressive
    accepted(core.handle(item(4, side="sell", urgency="critical")))  # not a long


def test_regime_parity_is_off_outside_crisis(tmp_path: Path) -> None:
    core = build(tmp_path, regime="NORMAL")
    accepted(core.handle(item(1, urgency="critical")))


# ---------------------------------------------------------------- safety sell


def test_safety_sell_exits_open_positions_even_when_halted(tmp_path: Path) -> None:
    core = build(tmp_path)
    core.handle_batch([item(1, quantity="2"), item(2, symbol="ETH/USDT", side="sell",
                                                  quantity="3"), item(3, venue="alpaca")])
    core.set_state("HALTED", "incident", "dave")
    out = safety_sell(core, "binance", None, "incident", "dave")
    record, *exits = out
    assert isinstance(record, Entry)
    assert record.body == SafetySellRecord("binance", "incident", "dave", 2, None)
    orders = [(e.intent.symbol, e.side, e.intent.quantity) for e in exits
              if isinstance(e, Accepted)]
    assert orders == [("BTC/USDT", "sell", Decimal(2)), ("ETH/USDT", "buy", Decimal(3))]
    assert all(isinstance(e, Accepted) and e.intent.action == "EMERGENCY_EXIT"
               and e.source is None for e in exits)
    assert [e.seq for e in out] == list(range(record.seq, record.seq + 3))
    assert safety_sell(core, "binance", None, "again", "dave")[0].body.orders == 0  # type: ignore[union-attr]
    one = safety_sell(core, "alpaca", "BTC/USDT", "one symbol", "dave")
    assert len(one) == 2
    with pytest.raises(ValueError, match="kraken"):
        safety_sell(core, "kraken", None, "x", "dave")


def test_safety_sell_ids_are_reproducible(tmp_path: Path) -> None:
    def run(directory: Path) -> list[str]:
        core = build(directory)
        core.handle_batch([item(1, seq=0, quantity="2")])
        return [str(e.intent_id) for e in safety_sell(core, "binance", None, "r", "a")
                if isinstance(e, Accepted)]

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_empty_context_refuses_every_unregistered_run(tmp_path: Path) -> None:
    loaded = config.load(write_config(tmp_path))
    risk = Risk(loaded.config)
    assert risk.context is EMPTY
    core = SentinelCore(loaded.config.planes(), SeenIds(), risk)
    refused(core.handle(item(1)), reasons.PROVENANCE_RUN_UNREGISTERED, "0 runs registered")


# ------------------------------------------------------- review: edge cases


@pytest.mark.parametrize(("fields", "name"), [
    ({"quantity": "1E+999999", "reference_price": "10"}, "quantity=1E+999999"),
    ({"quantity": "1E-30"}, "quantity=1E-30"),
    ({"order_type": "limit", "limit_price": "9E+999999"}, "limit_price=9E+999999"),
    ({"reference_price": "1E+16"}, "reference_price=1E+16"),
    ({"constraints": {"max_leverage": "NaN"}}, "constraints.max_leverage=NaN"),
    ({"constraints": {"max_leverage": "0"}}, "constraints.max_leverage=0"),
])
def test_numbers_out_of_range_are_refused_not_crashed_on(tmp_path: Path, fields: dict[str, Any],
                                                         name: str) -> None:
    """A number too large or too precise for the risk arithmetic never raises: the intent is refused
    INTENT_NUMBER_OUT_OF_RANGE.
    """
    core = build(tmp_path, '[risk.limits]\nmax_order_notional = "100"\nprice_band_bps = 10\n')
    refused(core.handle(item(1, **fields)), reasons.INTENT_NUMBER_OUT_OF_RANGE, name)


def test_an_intent_price_cannot_revalue_what_is_held(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_leverage = "1"\nequity = "1000"\n',
                 prices={"BTC/USDT": "100", "ETH/USDT": "100"})
    accepted(core.handle(item(1, symbol="ETH/USDT", quantity="9")))
    refused(core.handle(item(2, quantity="2")), reasons.RISK_LEVERAGE_EXCEEDED, "gross=1100")
    # A tiny sell with an absurdly low reference price changes nothing: the mark is
    # the lakehouse price.
    accepted(core.handle(item(3, symbol="ETH/USDT", side="sell", quantity="0.001",
                              reference_price="0.000001")))
    refused(core.handle(item(4, quantity="2")), reasons.RISK_LEVERAGE_EXCEEDED)
    refused(core.handle(item(5, quantity="500", reference_price="0.01")),
            reasons.RISK_LEVERAGE_EXCEEDED)


def test_a_held_position_without_any_price_fails_leverage_closed(tmp_path: Path) -> None:
    core = build(tmp_path, '[risk.limits]\nmax_leverage = "10"\nequity = "1000"\n',
                 prices={"BTC/USDT": "100"})
    # A fill read back at start-up that carried no price, for a symbol with no
    # lakehouse price: its exposure is unknown, so growth anywhere on the venue stops.
    assert core.risk is not None
    core.risk.observe("binance", "ETH/USDT", "buy", "FILLED", None, Decimal(9), None, 0, None)
    refused(core.handle(item(2, quantity="1")), reasons.RISK_PRICE_UNKNOWN,
            "no price for held ETH/USDT")
    accepted(core.handle(item(3, symbol="ETH/USDT", side="sell", quantity="9",
                              reference_price="50")))  # flat again
    accepted(core.handle(item(4, quantity="1")))


def test_each_safety_sell_numbers_its_exits_anew(tmp_path: Path) -> None:
    core = build(tmp_path)
    core.handle_batch([item(1, seq=0, quantity="2")])
    first = [e for e in safety_sell(core, "binance", None, "r", "a") if isinstance(e, Accepted)]
    core.handle_batch([item(2, seq=1, quantity="3")])
    second = [e for e in safety_sell(core, "binance", None, "r", "a") if isinstance(e, Accepted)]
    assert first[0].intent_id != second[0].intent_id
    assert core.risk is not None and core.risk.safety_sells == 2


def test_canonical_form_matches_python_json_for_exponent_floats() -> None:
    body = {"kind": "intent", "quantity": "1", "context": {"tiny": 1e-07, "big": 1.5e300,
                                                           "n": 10 ** 16}}
    line = json.dumps(body).encode()
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    assert canonical(line) == expected
