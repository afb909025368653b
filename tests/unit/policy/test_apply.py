"""A rule applied to one intent (execd.policy.apply) and the plans of execd.policy.orders:
defaults only where the intent names no execution, the order type the intent becomes is
what is judged, what is no time in force or no number is left to the intake to refuse as
such, and pacing's numbers."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.model import reasons
from execd.model.messages import Constraints, Execution, OrderIntent
from execd.model.refusal import Refusal
from execd.policy import file as policy_file
from execd.policy.apply import Applied, judge, pacing
from execd.policy.orders import order_type_of, paper_plan, time_in_force_of
from execd.schedule.intake import schedule_of

D = Decimal
_ID = uuid.UUID(int=1)
POLICY = """
[rules.any]
[rules.any.algorithms.low]
algorithm = "twap"
duration = 60
slices = 3
[rules.any.algorithms.critical]
algorithm = "immediate"
time_in_force = "IOC"
[rules.any.algorithms.high]
algorithm = "immediate"

[rules.strict]
match = { venue = "desk", urgency = "medium" }
order_types = ["limit"]
times_in_force = ["IOC"]

[rules.strict.pacing]
max_participation = "0.25"
max_child_notional = "100"
"""


@pytest.fixture(name="policy")
def _policy(tmp_path: Path) -> policy_file.Policy:
    path = tmp_path / "p.toml"
    path.write_text(POLICY)
    return policy_file.load(path)


def _intent(**fields: Any) -> OrderIntent:
    base: dict[str, Any] = {"venue": "binance", "symbol": "BTC/USDT", "quantity": D("3"),
                            "source_run": "r", "side": "buy"}
    base.update(fields)
    return OrderIntent(**base)


def test_a_default_applies_only_where_the_intent_names_no_execution(
        policy: policy_file.Policy) -> None:
    got = judge(policy, _intent(urgency="low"), "paper")
    assert isinstance(got, Applied) and got.rule == "any" and got.defaulted
    assert got.intent.execution == Execution("twap", duration=60, slices=3)
    own = Execution("twap", duration=9, slices=1)
    kept = judge(policy, _intent(urgency="low", execution=own), "paper")
    assert isinstance(kept, Applied) and kept.intent.execution == own and not kept.defaulted
    # An immediate default changes nothing, unless it names a time in force.
    plain = judge(policy, _intent(urgency="high"), "paper")
    assert isinstance(plain, Applied) and plain.intent.execution is None
    ioc = judge(policy, _intent(urgency="critical"), "paper")
    assert isinstance(ioc, Applied) and ioc.intent.execution == Execution(time_in_force="IOC")


def test_the_order_the_intent_becomes_is_judged(policy: policy_file.Policy) -> None:
    desk = {"venue": "desk", "execution": Execution(time_in_force="IOC")}
    # Market with a reference price, not critical: sent as a limit.
    assert isinstance(judge(policy, _intent(reference_price=D("5"), **desk), "live"), Applied)
    refused = judge(policy, _intent(**desk), "live")
    assert isinstance(refused, Refusal)
    assert refused.reason == reasons.POLICY_ORDER_TYPE_REFUSED
    # A limit naming no time in force is GTC: not allowed here.
    gtc = judge(policy, _intent(venue="desk", order_type="limit", limit_price=D("5")), "live")
    assert isinstance(gtc, Refusal) and gtc.reason == reasons.POLICY_TIME_IN_FORCE_REFUSED
    # No time in force at all: the intake's refusal, which says what is wrong.
    odd = _intent(venue="desk", order_type="limit", limit_price=D("5"),
                  execution=Execution(time_in_force="SOON"))
    applied = judge(policy, odd, "live")
    assert isinstance(applied, Applied)
    refusal = schedule_of(applied.intent, _ID, "buy", "live", 0, b"{}", None)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == reasons.EXECUTION_TIME_IN_FORCE_INVALID


def test_pacing_numbers(policy: policy_file.Policy) -> None:
    desk = {"venue": "desk", "order_type": "limit", "limit_price": D("10")}
    pov = Execution("pov", duration=10, participation=D("0.3"), time_in_force="IOC")
    refused = judge(policy, _intent(execution=pov, **desk), "live")
    assert isinstance(refused, Refusal) and refused.reason == reasons.POLICY_PACING_EXCEEDED
    # NaN is no share: the intake's to refuse.
    nan = msgspec.structs.replace(pov, participation=D("NaN"))
    assert isinstance(judge(policy, _intent(execution=nan, **desk), "live"), Applied)
    ioc = Execution(time_in_force="IOC")
    ten = _intent(quantity=D("10"), execution=ioc, **desk)
    assert pacing(policy, "strict", ten, None, 0, D("10")) is None        # 100: at the cap
    over = pacing(policy, "strict", ten, None, 0, D("10.01"))
    assert over is not None and over.detail == (
        "rule strict: a child of 10 at 10.01 is 100.10: above max_child_notional=100")
    twap = _intent(quantity=D("30"), execution=Execution("twap", duration=9, slices=3,
                                                         time_in_force="IOC"), **desk)
    schedule = schedule_of(twap, _ID, "buy", "paper", 0, b"{}", None)
    assert not isinstance(schedule, Refusal) and schedule is not None
    assert pacing(policy, "strict", twap, schedule, 0, D("10")) is None   # children of 10
    assert pacing(policy, "strict", twap, schedule, 0, D("11")) is not None
    assert pacing(policy, "strict", twap, schedule, 0, None) is not None  # no price
    assert pacing(policy, "any", twap, schedule, 0, None) is None         # no pacing


PRICES = st.sampled_from([None, D("1"), D("2.5")])


@given(order_type=st.sampled_from(["market", "limit"]), reference=PRICES,
       urgency=st.sampled_from(["low", "medium", "high", "critical"]),
       tif=st.sampled_from([None, "GTC", "IOC", "FOK", "PO"]), post_only=st.booleans())
def test_a_paper_plan_has_the_live_planes_order_type_and_time_in_force(
        order_type: str, reference: Decimal | None, urgency: str, tif: str | None,
        post_only: bool) -> None:
    intent = _intent(order_type=order_type, urgency=urgency, reference_price=reference,
                     limit_price=D("3") if order_type == "limit" else None,
                     constraints=Constraints(post_only=post_only),
                     execution=Execution(time_in_force=tif) if tif else None)
    plan = paper_plan(intent, "r")
    assert plan.order_type == order_type_of(intent)
    assert plan.size == intent.quantity
    sent = time_in_force_of(intent, plan.order_type)
    assert ("post_only" in plan.constraints) == (sent == "PO" or post_only)
    assert plan.time_in_force == (None if sent == "PO" or plan.order_type == "market"
                                  else sent)
    assert plan.constraints[0] == "policy:r"
    assert (plan.price is None) == (plan.order_type == "market")


def test_a_live_plan_says_what_is_sent_and_a_paper_plan_the_same() -> None:
    """Post-only with IOC: sent as IOC and post-only; the paper plan says the same."""
    from execd.model.messages import Accepted
    from execd.venues.ccxt.prepare import MarketRules, prepare

    intent = _intent(order_type="limit", limit_price=D("100"),
                     constraints=Constraints(post_only=True),
                     execution=Execution(time_in_force="IOC"))
    rules = MarketRules(symbol="BTC/USDT", active=True, amount_step=D("0.5"),
                        price_tick=D("1"), post_only=True, times_in_force=frozenset({"IOC"}))
    item = Accepted(0, 0, None, intent, b"{}", _ID, "buy", "live", None, "r")
    order = prepare(item, rules, 50)
    assert not isinstance(order, tuple)
    assert (order.time_in_force, order.post_only) == ("IOC", True)
    live = order.plan(intent)
    assert (live.time_in_force, live.constraints) == ("IOC", ("policy:r", "post_only"))
    assert paper_plan(intent, "r") == live
