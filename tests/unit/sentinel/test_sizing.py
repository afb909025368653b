"""Sizing (execd/sentinel/sizing.py), pure: each basis, the whole position of an exit,
an emergency exit made critical, and each reason a size is refused. Hypothesis: a
fraction of the position is never more than the position, is the exact product cut to
18 places, and a reduction sized from an allocation never sells more than is held."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from execd.model import reasons
from execd.model.messages import OrderIntent, Sizing, normal
from execd.model.refusal import Refusal
from execd.sentinel.book import Position
from execd.sentinel.sizing import Sized, size


def _intent(**fields: Any) -> OrderIntent:
    return OrderIntent(venue="v", symbol="BTC/USDT", source_run="r", **fields)


def _held(filled: str, buy: str = "0", sell: str = "0") -> Position:
    position = Position("BTC/USDT")
    position.filled, position.pending_buy, position.pending_sell = (
        Decimal(filled), Decimal(buy), Decimal(sell))
    return position


ALLOCATIONS = {"book:B1": Decimal("10000"), "m": Decimal("3")}


def _sized(got: Sized | Refusal) -> tuple[Decimal, Sizing | None]:
    assert isinstance(got, Sized), got
    return got.intent.absolute, got.sizing


def test_a_fraction_of_the_position_counts_what_is_in_flight() -> None:
    got = size(_intent(action="trim", size_frac=Decimal("0.5")), _held("2", "1", "0.5"),
               ALLOCATIONS, None)
    assert _sized(got) == (Decimal("1.25"),
                           Sizing("position", Decimal("0.5"), Decimal("2.5"), Decimal("1.25")))
    assert got.intent.action == "TRIM"  # type: ignore[union-attr]


def test_an_exit_without_a_quantity_is_the_whole_position() -> None:
    got = size(_intent(action="EXIT"), _held("0.7", sell="0.2"), ALLOCATIONS, None)
    assert _sized(got) == (Decimal("0.5"), Sizing("exit", Decimal(1), Decimal("0.5"),
                                                  Decimal("0.5")))


def test_an_emergency_exit_is_critical_and_first() -> None:
    got = size(_intent(action="emergency_exit", urgency="low", priority=3), _held("1"),
               ALLOCATIONS, None)
    assert isinstance(got, Sized)
    assert (got.intent.action, got.intent.urgency, got.intent.priority) == (
        "EMERGENCY_EXIT", "critical", 100)
    # With its own quantity too: the emergency is the action's, not the sizing's.
    explicit = normal(_intent(action="EMERGENCY_EXIT", quantity=Decimal("0.1")))
    assert (explicit.urgency, explicit.priority) == ("critical", 100)


def test_a_fraction_of_an_allocation_is_notional_over_price() -> None:
    got = size(_intent(action="ADD", size_frac=Decimal("0.5"), book_id="B1"), _held("0"),
               ALLOCATIONS, Decimal("64000"))
    assert _sized(got) == (Decimal("0.078125"), Sizing(
        "allocation", Decimal("0.5"), Decimal("0.15625"), Decimal("0.078125"), "book:B1",
        Decimal("64000")))
    # A quotient that does not end is cut (never rounded up) to 18 places.
    third = size(_intent(action="ADD", size_frac=Decimal("1"), allocation="m"), None,
                 ALLOCATIONS, Decimal("9"))
    assert _sized(third)[0] == Decimal("0.333333333333333333")


def test_each_way_of_getting_the_size_wrong_has_its_reason() -> None:
    cases = [
        (_intent(action="ADD"), reasons.SIZE_MISSING, "REJECTED"),
        (_intent(side="buy", size_of="position"), reasons.SIZE_MISSING, "REJECTED"),
        (_intent(action="ADD", quantity=Decimal(1), size_frac=Decimal("0.5")),
         reasons.SIZE_CONFLICT, "REJECTED"),
        (_intent(action="ADD", size_frac=Decimal("0.5"), size_of="position", allocation="m"),
         reasons.SIZE_CONFLICT, "REJECTED"),
        (_intent(action="ADD", size_frac=Decimal("0")), reasons.SIZE_FRAC_OUT_OF_RANGE,
         "REJECTED"),
        (_intent(action="ADD", size_frac=Decimal("1.0000001")), reasons.SIZE_FRAC_OUT_OF_RANGE,
         "REJECTED"),
        (_intent(action="ADD", size_frac=Decimal("NaN")), reasons.SIZE_FRAC_OUT_OF_RANGE,
         "REJECTED"),
        (_intent(action="ADD", size_frac=Decimal("0.5"), allocation="x"),
         reasons.SIZE_ALLOCATION_UNKNOWN, "REJECTED"),
        (_intent(action="ADD", size_frac=Decimal("0.5"), size_of="allocation"),
         reasons.SIZE_ALLOCATION_UNKNOWN, "REJECTED"),
        (_intent(action="TRIM", size_frac=Decimal("0.5")), reasons.SIZE_ZERO, "SKIPPED"),
        (_intent(action="exit"), reasons.SIZE_ZERO, "SKIPPED"),
        (_intent(action="hold"), reasons.INTENT_HOLD, "SKIPPED"),
    ]
    for intent, reason, status in cases:
        got = size(intent, _held("0"), ALLOCATIONS, Decimal(1))
        assert isinstance(got, Refusal), intent
        assert (got.reason, got.status) == (reason, status), intent
        assert got.detail
    no_price = size(_intent(action="ADD", size_frac=Decimal("0.5"), allocation="m"),
                    _held("0"), ALLOCATIONS, None)
    assert isinstance(no_price, Refusal) and no_price.reason == reasons.SIZE_PRICE_UNKNOWN
    routed = size(_intent(action="TRIM", size_frac=Decimal("0.5")), None, ALLOCATIONS, None)
    assert isinstance(routed, Refusal) and routed.reason == reasons.SIZE_POSITION_UNKNOWN


_amounts = st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e9"), places=12,
                       allow_nan=False, allow_infinity=False)
_fracs = st.decimals(min_value=Decimal("1e-9"), max_value=Decimal(1), places=9,
                     allow_nan=False, allow_infinity=False).filter(lambda f: f > 0)


@given(_fracs, _amounts, _amounts)
def test_a_fraction_of_the_position_is_cut_never_more(frac: Decimal, filled: Decimal,
                                                       pending_sell: Decimal) -> None:
    position = _held(str(filled + pending_sell), sell=str(pending_sell))
    got = size(_intent(action="TRIM", size_frac=frac), position, {}, None)
    held = filled
    exact = frac * held
    if isinstance(got, Refusal):
        assert got.reason == reasons.SIZE_ZERO and exact < Decimal("1e-18")
        return
    quantity, sizing = _sized(got)
    assert sizing is not None and sizing.base == held
    assert 0 < quantity <= held
    assert exact - Decimal("1e-18") < quantity <= exact


@given(_fracs, _amounts, _amounts, _amounts)
def test_a_reduction_from_an_allocation_never_sells_more_than_is_held(
        frac: Decimal, allocation: Decimal, price: Decimal, filled: Decimal) -> None:
    got = size(_intent(action="trim", size_frac=frac, allocation="a"), _held(str(filled)),
               {"a": allocation}, price)
    if isinstance(got, Refusal):
        assert got.reason == reasons.SIZE_ZERO
        return
    quantity, _ = _sized(got)
    assert 0 < quantity <= filled
