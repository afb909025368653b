"""Seed 003 §6, for execd: plan ids, event sequencing, state machine, frozen seasons, reasons."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.governance.plans import Governance, event_id, plan_id
from execd.model.errors import GovernanceError

NOW = "2026-11-21T00:00:00Z"


def created(gov: Governance, items: list[str] | None = None, season: str = "S1") -> str:
    event = gov.create(season, items or ["b", "a", "c"], "conservative", reason="rebalance",
                       actor="ops", now_utc=NOW)
    gov.apply(event)
    return event.plan_id


def step(gov: Governance, plan: str, action: str) -> None:
    gov.apply(gov.transition(plan, action, reason=f"{action.lower()} it", actor="ops",
                             now_utc=NOW))


@given(st.lists(st.text(min_size=1).filter(str.strip), min_size=1, max_size=8), st.randoms())
def test_plan_id_is_deterministic_whatever_the_item_order(items: list[str], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan_id("S1", "r", items) == plan_id("S1", "r", shuffled)
    assert plan_id("S1", "r", items) != plan_id("S2", "r", items)


def test_create_gives_a_draft_with_sorted_items_and_placeholder_legs() -> None:
    gov = Governance()
    plan = gov.plans[created(gov)]
    assert plan.state == "DRAFT" and plan.portfolio_item_ids == ("a", "b", "c")
    assert plan.plan_id == plan_id("S1", "conservative", ["c", "b", "a"])
    assert [leg.strategy_id for leg in plan.legs] == ["a", "b", "c"]
    assert sum(leg.risk_budget_r for leg in plan.legs) == Decimal(1) / 3 * 3
    assert plan.created_from_snapshot_ref == "UNKNOWN"


def test_events_are_sequenced_and_sorted_by_plan_and_sequence() -> None:
    gov = Governance()
    first, second = created(gov, ["x"]), created(gov, ["y"])
    for action in ("REVIEW", "APPROVE", "COMMIT"):
        step(gov, first, action)
    step(gov, second, "CANCEL")
    assert [e.sequence_no for e in gov.events[first]] == [1, 2, 3, 4]
    assert [e.to_state for e in gov.events[first]] == ["DRAFT", "REVIEWED", "APPROVED",
                                                       "COMMITTED"]
    snap = gov.snapshot("S1")
    assert [(e.plan_id, e.sequence_no) for e in snap.events] == \
        sorted((e.plan_id, e.sequence_no) for e in snap.events)
    assert [p.state for p in snap.plans] == sorted(p.state for p in snap.plans)
    last = gov.events[first][-1]
    assert last.event_id == event_id(first, "APPROVED", "COMMITTED", 4)
    assert gov.plans[first].last_event_id == last.event_id
    assert gov.is_committed(first) and not gov.is_committed(second)


@pytest.mark.parametrize(("path", "refused", "message"), [
    ([], "APPROVE", "APPROVE needs a REVIEWED plan; plan .* is DRAFT"),
    ([], "COMMIT", "COMMIT needs a APPROVED plan"),
    (["REVIEW"], "REVIEW", "REVIEW needs a DRAFT plan"),
    (["REVIEW", "APPROVE", "COMMIT"], "CANCEL", "COMMITTED, which is final"),
    (["REVIEW", "APPROVE", "COMMIT"], "REVIEW", "REVIEW needs a DRAFT plan"),
    (["CANCEL"], "CANCEL", "CANCELLED, which is final"),
    (["CANCEL"], "REVIEW", "REVIEW needs a DRAFT plan"),
    ([], "LAUNCH", "unknown action 'LAUNCH'"),
])
def test_invalid_transitions_are_refused(path: list[str], refused: str, message: str) -> None:
    gov = Governance()
    plan = created(gov)
    for action in path:
        step(gov, plan, action)
    before = len(gov.events[plan])
    with pytest.raises(GovernanceError, match=message):
        gov.transition(plan, refused, reason="r", actor="a", now_utc=NOW)
    assert len(gov.events[plan]) == before


@pytest.mark.parametrize("start", [[], ["REVIEW"], ["REVIEW", "APPROVE"]])
def test_any_open_state_can_be_cancelled(start: list[str]) -> None:
    gov = Governance()
    plan = created(gov)
    for action in start:
        step(gov, plan, action)
    step(gov, plan, "CANCEL")
    assert gov.plans[plan].state == "CANCELLED"


def test_a_frozen_season_refuses_create_and_transition_until_unfrozen() -> None:
    gov = Governance()
    plan = created(gov)
    gov.apply(gov.season("S1", "FREEZE", reason="quarter end", actor="risk", now_utc=NOW))
    with pytest.raises(GovernanceError, match="season 'S1' is frozen"):
        gov.create("S1", ["z"], "r", reason="r", actor="a", now_utc=NOW)
    with pytest.raises(GovernanceError, match="season 'S1' is frozen"):
        gov.transition(plan, "REVIEW", reason="r", actor="a", now_utc=NOW)
    created(gov, season="S2")  # other seasons are untouched
    assert gov.snapshot("S1").frozen
    gov.apply(gov.season("S1", "UNFREEZE", reason="reopened", actor="risk", now_utc=NOW))
    step(gov, plan, "REVIEW")
    with pytest.raises(GovernanceError, match="not frozen"):
        gov.season("S1", "UNFREEZE", reason="r", actor="a", now_utc=NOW)


@pytest.mark.parametrize("blank", ["", "   "])
def test_reason_and_actor_are_required(blank: str) -> None:
    gov = Governance()
    with pytest.raises(GovernanceError, match="reason is required"):
        gov.create("S1", ["a"], "r", reason=blank, actor="ops", now_utc=NOW)
    with pytest.raises(GovernanceError, match="actor is required"):
        gov.create("S1", ["a"], "r", reason="ok", actor=blank, now_utc=NOW)
    plan = created(gov)
    with pytest.raises(GovernanceError, match="reason is required"):
        gov.transition(plan, "REVIEW", reason=blank, actor="ops", now_utc=NOW)
    with pytest.raises(GovernanceError, match="reason is required"):
        gov.season("S1", "FREEZE", reason=blank, actor="ops", now_utc=NOW)


def test_the_same_plan_cannot_be_created_twice() -> None:
    gov = Governance()
    created(gov, ["a", "b"])
    with pytest.raises(GovernanceError, match="already exists"):
        gov.create("S1", ["b", "a"], "conservative", reason="r", actor="a", now_utc=NOW)


@pytest.mark.parametrize("season", ["../etc", "a/b", ".hidden", "x" * 65])
def test_season_ids_are_file_name_safe(season: str) -> None:
    with pytest.raises(GovernanceError, match="must be 1-64 letters"):
        Governance().create(season, ["a"], "r", reason="r", actor="a", now_utc=NOW)
