"""Sends of a live order (venues.attempts): what each answer, and each restart, leads to."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from msgspec import Raw

from execd.model import reasons
from execd.model.messages import OrderRecord, SendAttemptRecord
from execd.venues.ccxt.attempts import after_send, at_start, attempt_record, unrecorded

RECORD = OrderRecord(intent_id=uuid.UUID(int=3), venue="binance", symbol="BTC/USDT",
                     side="buy", client_order_id="xabc", type="market", amount=Decimal("1"),
                     requested_quantity=Decimal("1"), intent=Raw(b"{}"), wall_time=10)


def sent(attempt: int, answer: Any, **fields: Any) -> SendAttemptRecord:
    return attempt_record(RECORD, attempt, answer, 5, **fields)


def test_one_send_by_default_and_more_only_when_configured() -> None:
    assert after_send(1, "unknown", "503", "absent", 1).reason == reasons.EXECUTION_NOT_SENT
    assert after_send(1, "unknown", "503", "absent", 2).action == "resend"
    assert after_send(2, "unknown", "503", "absent", 2).action == "fail"
    assert after_send(1, "unknown", "503", "found", 1).action == "track"
    assert after_send(1, "placed", "", None, 1).action == "track"
    assert after_send(1, "rejected", "funds", None, 3).reason == reasons.EXECUTION_REJECTED
    assert after_send(1, "unreachable", "down", None, 3).reason == (
        reasons.EXECUTION_NOT_AVAILABLE)
    # A duplicate-id refusal whose original cannot be found is never sent again.
    assert after_send(1, "exists", "dup", "absent", 3).reason == reasons.EXECUTION_REJECTED


def test_a_send_may_be_unrecorded_only_before_the_first_record_or_after_a_resend() -> None:
    assert unrecorded(None) == 1
    assert unrecorded(sent(1, "unknown", lookup="absent", resend=True)) == 2
    assert unrecorded(sent(1, "unknown", lookup="absent")) is None
    assert unrecorded(sent(1, "placed")) is None
    assert unrecorded(sent(1, "unknown", lookup="pending")) is None


def start(last: SendAttemptRecord | None, found: bool = False, **settings: Any
          ) -> tuple[SendAttemptRecord | None, Any]:
    options: dict[str, Any] = {"send_attempts": 1, "resend_window_ms": 0, "age_ms": 100}
    options.update(settings)
    return at_start(RECORD, last, found, 99, **options)


def test_a_restart_records_the_send_a_killed_run_may_have_made() -> None:
    settle, step = start(None)
    assert settle is not None and (settle.attempt, settle.answer, settle.lookup,
                                   settle.resend) == (1, "not_recorded", "absent", False)
    assert step.reason == reasons.EXECUTION_NOT_SENT
    assert step.detail.endswith("not sent again: send_attempts=1")
    settle, step = start(None, found=True, venue_order_id="7")
    assert settle is not None and (settle.lookup, settle.venue_order_id) == ("found", "7")
    assert step.action == "track"


@pytest.mark.parametrize(("settings", "why"), [
    ({"send_attempts": 2}, "resend_window_ms=0 (no resend at start-up)"),
    ({"send_attempts": 2, "resend_window_ms": 50}, "recorded 100 ms ago > resend_window_ms=50"),
    ({"send_attempts": 2, "resend_window_ms": 500, "age_ms": None},
     "its age is unknown (recorded without a wall-clock time)"),
    ({"send_attempts": 1, "resend_window_ms": 500}, "send_attempts=1"),
])
def test_a_restart_resends_only_when_every_setting_allows_it(settings: dict[str, Any],
                                                            why: str) -> None:
    settle, step = start(None, **settings)
    assert step.action == "fail" and step.detail.endswith(f"not sent again: {why}")
    assert settle is not None and not settle.resend


def test_a_restart_resend_counts_every_earlier_send() -> None:
    settle, step = start(None, send_attempts=2, resend_window_ms=500)
    assert step.action == "resend" and settle is not None and settle.resend
    # That resend in turn was killed before it was recorded: it counts.
    settle, step = start(settle, send_attempts=2, resend_window_ms=500)
    assert settle is not None and (settle.attempt, settle.resend) == (2, False)
    assert step.detail.endswith("not sent again: send_attempts=2")


def test_a_restart_settles_a_lookup_a_stop_cut_short() -> None:
    pending = sent(2, "unknown", message="503", lookup="pending")
    settle, step = start(pending, send_attempts=3, resend_window_ms=500)
    assert settle is not None and (settle.attempt, settle.answer, settle.message,
                                   settle.lookup, settle.resend) == (
        2, "unknown", "503", "absent", True)
    assert step.action == "resend"


def test_a_restart_writes_the_outcome_a_settled_record_leads_to() -> None:
    assert start(sent(1, "placed", venue_order_id="9"), found=True)[1].action == "track"
    settle, refused = start(sent(1, "rejected", message="funds"))
    assert settle is None
    assert (refused.reason, refused.detail) == (reasons.EXECUTION_REJECTED, "funds")
    _, unsent = start(sent(2, "unknown", message="503", lookup="absent"), send_attempts=5,
                      resend_window_ms=500)
    assert unsent.reason == reasons.EXECUTION_NOT_SENT  # that run had chosen not to resend
    # Placed, then gone from the venue (it purges orders that ended without a fill).
    settle, gone = start(sent(1, "placed", venue_order_id="9"))
    assert settle is None and gone.reason == reasons.EXECUTION_EXPIRED
    assert "venue order id 9" in (gone.detail or "")
