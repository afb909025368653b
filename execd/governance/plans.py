"""Governance of execution plans (README, Execution plans), as a pure core folded from events.

A plan moves DRAFT → REVIEWED → APPROVED → COMMITTED, and any state but COMMITTED
may be CANCELLED; COMMITTED and CANCELLED are final. Every change is an event with
a mandatory reason and actor and a per-plan sequence number; a frozen season refuses
every change until it is unfrozen. The state is never stored: :class:`Governance`
rebuilds it by folding the events, so the event ledger is the only truth.

The core decides and returns events; it does not apply them. The caller appends an
event durably and then applies it, so what is known is always what is on disk.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from msgspec import Struct

from execd.model import ids
from execd.model.errors import GovernanceError

PlanState = Literal["DRAFT", "REVIEWED", "APPROVED", "COMMITTED", "CANCELLED"]
PlanAction = Literal["CREATE", "REVIEW", "APPROVE", "COMMIT", "CANCEL"]
SeasonAction = Literal["FREEZE", "UNFREEZE"]

# action -> (required state, next state); CANCEL is allowed from any open state.
_STEPS: dict[str, tuple[PlanState, PlanState]] = {
    "REVIEW": ("DRAFT", "REVIEWED"),
    "APPROVE": ("REVIEWED", "APPROVED"),
    "COMMIT": ("APPROVED", "COMMITTED"),
}
FINAL: frozenset[str] = frozenset({"COMMITTED", "CANCELLED"})
UNKNOWN = "UNKNOWN"


class ExecutionLeg(Struct, frozen=True):
    """One leg of a plan. Until a strategy registry fills them, legs are placeholders."""

    strategy_id: str
    instance_id: str
    side: str
    symbol: str
    timeframe: str
    risk_budget_r: Decimal


class ExecutionPlan(Struct, frozen=True):
    """A plan as the events make it."""

    season_id: str
    plan_id: str
    state: PlanState
    risk_profile_id: str
    portfolio_item_ids: tuple[str, ...]
    legs: tuple[ExecutionLeg, ...]
    created_from_snapshot_ref: str
    last_event_id: str


class PlanEvent(Struct, frozen=True, forbid_unknown_fields=True):
    """One change of one plan. CREATE events carry what the plan is made of."""

    event_id: str
    season_id: str
    plan_id: str
    action: PlanAction
    from_state: str
    to_state: PlanState
    reason: str
    actor: str
    snapshot_ref: str
    created_at_utc: str
    sequence_no: int
    risk_profile_id: str = ""
    portfolio_item_ids: tuple[str, ...] = ()


class SeasonEvent(Struct, frozen=True, forbid_unknown_fields=True):
    """A season frozen or unfrozen."""

    season_id: str
    action: SeasonAction
    reason: str
    actor: str
    created_at_utc: str


class ExecutionStateSnapshot(Struct, frozen=True):
    """Everything about one season: plans by (state, plan id), events by (plan id, sequence)."""

    season_id: str
    frozen: bool
    plans: tuple[ExecutionPlan, ...]
    events: tuple[PlanEvent, ...]


def plan_id(season_id: str, risk_profile_id: str, item_ids: list[str] | tuple[str, ...]) -> str:
    """UUIDv5 of season, risk profile and the sorted item ids: order does not matter."""
    name = "|".join([season_id, risk_profile_id, *sorted(item_ids)])
    return ids.uuid5(ids.PLAN_NS, name.encode())


def event_id(plan: str, from_state: str, to_state: str, sequence_no: int) -> str:
    """UUIDv5 of plan, transition and sequence number."""
    return ids.uuid5(ids.EVENT_NS, f"{plan}|{from_state}|{to_state}|{sequence_no}".encode())


def placeholder_legs(item_ids: tuple[str, ...]) -> tuple[ExecutionLeg, ...]:
    """One leg per item with an equal share of risk, in (symbol, strategy, instance) order."""
    share = Decimal(1) / Decimal(len(item_ids))
    legs = [ExecutionLeg(item, item, "BOTH", UNKNOWN, UNKNOWN, share) for item in item_ids]
    return tuple(sorted(legs, key=lambda leg: (leg.symbol, leg.strategy_id, leg.instance_id)))


_SEASON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _season(value: str) -> str:
    # Season ids name snapshot files, so they keep to a file-name-safe alphabet.
    value = _required(value, "season")
    if not _SEASON.match(value):
        raise GovernanceError(f"season {value!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return value


def _required(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise GovernanceError(f"{what} is required and may not be empty")
    return value


class Governance:
    """Plans and seasons, folded from events."""

    def __init__(self) -> None:
        self.plans: dict[str, ExecutionPlan] = {}
        self.events: dict[str, list[PlanEvent]] = {}
        self.frozen: set[str] = set()

    # ---------------------------------------------------------------- folding

    def apply(self, event: PlanEvent | SeasonEvent) -> None:
        """Fold one (already durable) event into the state."""
        if isinstance(event, SeasonEvent):
            if event.action == "FREEZE":
                self.frozen.add(event.season_id)
            else:
                self.frozen.discard(event.season_id)
            return
        if event.action == "CREATE":
            items = event.portfolio_item_ids
            self.plans[event.plan_id] = ExecutionPlan(
                event.season_id, event.plan_id, event.to_state, event.risk_profile_id, items,
                placeholder_legs(items), event.snapshot_ref, event.event_id)
        else:
            plan = self.plans[event.plan_id]
            self.plans[event.plan_id] = ExecutionPlan(
                plan.season_id, plan.plan_id, event.to_state, plan.risk_profile_id,
                plan.portfolio_item_ids, plan.legs, plan.created_from_snapshot_ref,
                event.event_id)
        self.events.setdefault(event.plan_id, []).append(event)

    # --------------------------------------------------------------- deciding

    def _open(self, season_id: str) -> None:
        if season_id in self.frozen:
            raise GovernanceError(f"season {season_id!r} is frozen: plans cannot be created "
                                  "or changed until it is unfrozen")

    def create(self, season_id: str, item_ids: list[str], risk_profile_id: str, *,
               reason: str, actor: str, now_utc: str, snapshot_ref: str = UNKNOWN) -> PlanEvent:
        """The CREATE event of a new DRAFT plan, or GovernanceError."""
        reason, actor = _required(reason, "reason"), _required(actor, "actor")
        season_id = _season(season_id)
        risk_profile_id = _required(risk_profile_id, "risk profile")
        items = tuple(sorted({_required(i, "portfolio item id") for i in item_ids}))
        if not items:
            raise GovernanceError("a plan needs at least one portfolio item id")
        self._open(season_id)
        new_id = plan_id(season_id, risk_profile_id, items)
        if new_id in self.plans:
            raise GovernanceError(f"plan {new_id} already exists "
                                  f"(state {self.plans[new_id].state})")
        return PlanEvent(
            event_id(new_id, "", "DRAFT", 1), season_id, new_id, "CREATE", "", "DRAFT", reason,
            actor, snapshot_ref, now_utc, 1, risk_profile_id, items)

    def transition(self, plan: str, action: str, *, reason: str, actor: str,
                   now_utc: str) -> PlanEvent:
        """The event moving ``plan`` by ``action``, or GovernanceError."""
        reason, actor = _required(reason, "reason"), _required(actor, "actor")
        current = self.plans.get(plan)
        if current is None:
            raise GovernanceError(f"no plan {plan}")
        self._open(current.season_id)
        if action == "CANCEL":
            if current.state in FINAL:
                raise GovernanceError(f"plan {plan} is {current.state}, which is final")
            to_state: PlanState = "CANCELLED"
        elif action in _STEPS:
            needed, to_state = _STEPS[action]
            if current.state != needed:
                raise GovernanceError(f"{action} needs a {needed} plan; plan {plan} is "
                                      f"{current.state}")
        else:
            raise GovernanceError(f"unknown action {action!r} "
                                  "(REVIEW, APPROVE, COMMIT or CANCEL)")
        sequence = len(self.events[plan]) + 1
        return PlanEvent(
            event_id(plan, current.state, to_state, sequence), current.season_id, plan,
            action, current.state, to_state, reason, actor,  # type: ignore[arg-type]
            current.created_from_snapshot_ref, now_utc, sequence)

    def season(self, season_id: str, action: str, *, reason: str, actor: str,
               now_utc: str) -> SeasonEvent:
        """The event freezing or unfreezing a season, or GovernanceError."""
        reason, actor = _required(reason, "reason"), _required(actor, "actor")
        season_id = _season(season_id)
        frozen = season_id in self.frozen
        if action == "FREEZE" and frozen:
            raise GovernanceError(f"season {season_id!r} is already frozen")
        if action == "UNFREEZE" and not frozen:
            raise GovernanceError(f"season {season_id!r} is not frozen")
        if action not in ("FREEZE", "UNFREEZE"):
            raise GovernanceError(f"unknown season action {action!r}")
        return SeasonEvent(season_id, action, reason, actor, now_utc)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- reading

    def snapshot(self, season_id: str) -> ExecutionStateSnapshot:
        """The season's plans by (state, plan id) and events by (plan id, sequence)."""
        plans = sorted((p for p in self.plans.values() if p.season_id == season_id),
                       key=lambda p: (p.state, p.plan_id))
        events = sorted((e for p in plans for e in self.events[p.plan_id]),
                        key=lambda e: (e.plan_id, e.sequence_no))
        return ExecutionStateSnapshot(season_id, season_id in self.frozen, tuple(plans),
                                      tuple(events))

    def is_committed(self, plan: str) -> bool:
        """True while ``plan`` exists and is COMMITTED."""
        current = self.plans.get(plan)
        return current is not None and current.state == "COMMITTED"
