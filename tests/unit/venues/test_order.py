"""The live order's lifecycle (venues.ccxt.order), driven by hand: no venue, no sleep.

Each test feeds an :class:`Order` the events the shell would (the venue's answers,
classified by the real ``exchanges.verdict`` and ``readable_order``) at times it
chooses, and checks the actions and records that come back. The paths are those
of the live and crash tests against the fake exchanges:

- tests/pipeline/test_live.py: a market order fills (test_a_market_fill_...); a reply
  for another client order id, 200-not-an-order, timeouts, lost replies, 5xx with
  JSON or plain, unknown codes, 429, a dropped connection, venue busy (each fault:
  test_each_fault_kind_...); explicit resends (test_explicit_resends_...); a
  documented refusal fails at once (test_a_refusal_...); a duplicate client id
  follows the venue's order (test_a_duplicate_client_id_...); a partial fill
  (test_partial_...); a resting limit followed until it fills, or cancelled after
  the order timeout (test_a_resting_limit_...); a cancel the venue keeps refusing
  (test_a_refused_cancel_...); a stop cancels at once whatever the backoff
  (test_a_stop_cancels_at_once_...); unreachable (test_a_refusal_...); "no such
  order" trusted only after the window (test_no_such_order_...); queued orders not
  sent at a stop (test_a_stop_before_the_send_...); a stop during a lookup, settled
  by the restart (test_a_stop_during_the_lookup_... and test_restart_settles_a_pending_lookup).
- test_live_okx.py / test_live_bybit.py: cancels answered without a state
  (test_a_cancel_answered_without_a_state_...), a venue that places late after a 503
  (test_not_found_then_found_...), expired and partly filled then cancelled orders
  (test_partial_..., test_an_expired_order_...), only an unplaced order sent again
  (test_explicit_resends_...), a lookup answered by a page (test_lookups_that_fail_...).
- test_live_fees.py: fees from the reply, from trades, read again while they lag,
  still short, unreadable, at a stop (test_fees_...).
- test_live_push.py and test_live_push_process.py: every wait of a followed order
  wakes on a push, and a push only leads to a read (test_waits_wake_on_pushes_...).
- tests/process/test_live_crash.py: restart reconciliation in every recorded state
  (test_restart_...: no record, sent with the record not yet written, resend
  announced, placed then gone, lookup pending), a stop with a silent venue leaves the
  order in doubt (test_a_stop_with_a_silent_venue_...), and many orders at once
  (test_many_orders_at_once_...).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, TypeVar

from msgspec import Raw

from execd.config.schema import CcxtConfig
from execd.model import reasons
from execd.model.messages import CancelRecord, Entry, OrderRecord, SendAttemptRecord
from execd.venues.ccxt import actions as act
from execd.venues.ccxt.attempts import attempt_record
from execd.venues.ccxt.exchanges import BINANCE, Reply, readable_order, verdict
from execd.venues.ccxt.order import Order

A = TypeVar("A", bound=act.Action)
MS = 1_000_000
T0 = 1_700_000_000_000 * MS
CID = "xabc"
RECORD = OrderRecord(intent_id=uuid.UUID(int=3), venue="binance", symbol="BTC/USDT",
                     side="buy", client_order_id=CID, type="market", amount=Decimal("1"),
                     requested_quantity=Decimal("1"), intent=Raw(b"{}"), wall_time=T0)
LIMIT = OrderRecord(intent_id=uuid.UUID(int=4), venue="binance", symbol="BTC/USDT",
                    side="buy", client_order_id="xlim", type="limit", amount=Decimal("1"),
                    requested_quantity=Decimal("1"), intent=Raw(b"{}"), wall_time=T0,
                    price=Decimal("45000"))
# Defaults but for the times: poll 500 ms, order timeout 2 s, lookup delay 1 s,
# acceptance window 3 s.
TABLE = dict(exchange="binance", poll_interval_ms=500, order_timeout_ms=2000,
             lookup_delay_ms=1000, acceptance_window_ms=3000)


def table(**overrides: Any) -> CcxtConfig:
    return CcxtConfig(**{**TABLE, **overrides})


def new(record: OrderRecord = RECORD, **overrides: Any) -> Order:
    """A new order, taken by a worker at T0 (its record durable): its first action is a send."""
    order = Order(record, 7, table(**overrides), execution_id="exec-1", trades_readable=True)
    assert isinstance(order.start(T0), act.Queue)
    return order


def expect(action: act.Action, kind: type[A]) -> A:
    assert isinstance(action, kind), action
    return action


def venue_order(status: str, filled: str = "0", **fields: Any) -> dict[str, Any]:
    return {"id": "9", "clientOrderId": CID, "status": status, "filled": filled,
            "amount": "1", "average": "100" if filled != "0" else None, **fields}


FEE = {"cost": "0.1", "currency": "USDT"}
TRADE = {"id": "t1", "amount": "1", "fee": FEE}


def sends(entries: tuple[Entry, ...]) -> list[SendAttemptRecord]:
    out = [e.body for e in entries if isinstance(e.body, SendAttemptRecord)]
    assert len(out) == len(entries), entries
    return out


def records(action: act.Action) -> list[Any]:
    return [e.body for e in expect(action, act.Write).entries]


def follow(order: Order, placed: dict[str, Any], now: int) -> act.Action:
    """From Follow to the first wait of a followed order."""
    expect(order.handle(act.Ok(), now), act.Follow)
    return order.handle(act.Ok(), now)


# ----------------------------------------------------------------- placed orders


def test_a_market_fill_placed_at_once_is_one_commit_with_its_send() -> None:
    order = new()
    assert expect(order.handle(act.Ok(), T0), act.Send).attempt == 1
    filled = venue_order("closed", "1", fee=FEE)
    assert expect(order.handle(act.Placed(filled), T0 + MS), act.Follow).order == filled
    done = expect(order.handle(act.Ok(), T0 + MS), act.Done)
    assert done.outcome is not None and done.outcome.status == "FILLED"
    assert done.outcome.wall_time == T0 + MS and done.outcome.fees_complete
    # The send's record goes with the outcome: nothing waits on it alone.
    [sent] = sends(done.before)
    assert (sent.attempt, sent.answer, sent.venue_order_id) == (1, "placed", "9")


def test_a_resting_limit_is_followed_until_it_fills_and_its_fee_read_from_trades() -> None:
    order = new(LIMIT)
    order.handle(act.Ok(), T0)
    [sent] = records(order.handle(act.Placed(venue_order("open")), T0))
    assert sent.answer == "placed" and sent.venue_status == "open"
    wait = expect(follow(order, venue_order("open"), T0), act.Wait)
    assert (wait.until, wait.push, wait.stop) == (T0 + 500 * MS, True, True)
    expect(order.handle(act.Ok(), wait.until), act.Read)
    wait = expect(order.handle(act.Got(venue_order("open")), wait.until), act.Wait)
    assert wait.until == T0 + 1000 * MS
    expect(order.handle(act.Ok(), wait.until), act.Read)
    # Binance's order query carries no fees: they are read from the order's trades.
    expect(order.handle(act.Got(venue_order("closed", "1")), wait.until), act.ReadTrades)
    done = expect(order.handle(act.Got([TRADE]), wait.until), act.Done)
    assert done.outcome is not None and done.outcome.status == "FILLED"
    assert [(f.cost, f.currency) for f in done.outcome.fees] == [(Decimal("0.1"), "USDT")]


def test_a_resting_limit_is_cancelled_after_the_order_timeout() -> None:
    order = new(LIMIT)
    order.handle(act.Ok(), T0)
    order.handle(act.Placed(venue_order("open")), T0)
    now = T0
    action = follow(order, venue_order("open"), now)
    while isinstance(action, act.Wait):
        now = action.until
        expect(order.handle(act.Ok(), now), act.Read)
        action = order.handle(act.Got(venue_order("open")), now)
    assert now == T0 + 2000 * MS  # the order timeout, read at the poll pace until then
    assert expect(action, act.Cancel).why == "order_timeout_ms"
    [cancel] = records(order.handle(act.Cancelled(venue_order("canceled")), now))
    assert isinstance(cancel, CancelRecord) and cancel.answer == "canceled"
    done = expect(order.handle(act.Ok(), now), act.Done)
    assert done.outcome is not None
    assert (done.outcome.status, done.outcome.reason) == ("FAILED", reasons.EXECUTION_EXPIRED)
    assert "cancelled by execd after order_timeout_ms" in (done.outcome.detail or "")


def test_a_cancel_answered_without_a_state_is_accepted_and_the_order_read() -> None:
    # OKX and Bybit answer a cancel without the order's state; "not found": it ended.
    for reply, answer in (({"id": "9"}, "accepted"), (None, "not found")):
        order = new(LIMIT, order_timeout_ms=0)
        order.handle(act.Ok(), T0)
        order.handle(act.Placed(venue_order("open")), T0)
        expect(follow(order, venue_order("open"), T0), act.Cancel)
        [cancel] = records(order.handle(act.Cancelled(reply), T0))
        assert cancel.answer == answer
        expect(order.handle(act.Ok(), T0), act.Read)
        partly = venue_order("canceled", "0.4", fee=FEE)
        done = expect(order.handle(act.Got(partly), T0), act.Done)
        assert done.outcome is not None and done.outcome.status == "PARTIALLY_FILLED"


def test_partial_fills_are_partially_filled() -> None:
    order = new(LIMIT)
    order.handle(act.Ok(), T0)
    part = venue_order("canceled", "0.4", fee=FEE)
    expect(order.handle(act.Placed(part), T0), act.Follow)
    done = expect(order.handle(act.Ok(), T0), act.Done)
    assert done.outcome is not None
    assert (done.outcome.status, done.outcome.reason, done.outcome.filled_quantity) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, Decimal("0.4"))


def test_an_expired_order_with_nothing_filled_reads_no_trades() -> None:
    order = new(LIMIT)
    order.handle(act.Ok(), T0)
    order.handle(act.Placed(venue_order("open")), T0)
    expect(follow(order, venue_order("open"), T0), act.Wait)
    expect(order.handle(act.Ok(), T0), act.Read)
    done = expect(order.handle(act.Got(venue_order("expired")), T0), act.Done)
    assert done.outcome is not None
    assert (done.outcome.status, done.outcome.reason) == ("FAILED", reasons.EXECUTION_EXPIRED)


def test_waits_wake_on_pushes_and_a_push_only_leads_to_a_read() -> None:
    order = new(LIMIT)
    order.handle(act.Ok(), T0)
    order.handle(act.Placed(venue_order("open")), T0)
    wait = expect(follow(order, venue_order("open"), T0), act.Wait)
    assert wait.push
    # Woken by a push long before the poll: the state is still read by REST.
    expect(order.handle(act.Ok(), T0 + MS), act.Read)
    wait = expect(order.handle(act.Got(venue_order("open", "0.5")), T0 + MS), act.Wait)
    assert wait.push and wait.until == T0 + 501 * MS


# ------------------------------------------------------------------------ faults


def fault_message(status: int, body: Any, error: str) -> act.SendFailed:
    """What the shell feeds for a failed send: the real classification of the reply."""
    reply = Reply(status=status, code=body.get("code") if isinstance(body, dict) else None,
                  message=str(body))
    return act.SendFailed(verdict(BINANCE, reply, error), f"{error}: {body}")


FAULTS = {
    "timeout": act.SendFailed("unknown", "RequestTimeout: binance POST timed out"),
    "lost reply": act.SendFailed("unknown", "NetworkError: connection reset"),
    "503 json": fault_message(503, {"code": -1001, "msg": "internal"}, "ExchangeNotAvailable"),
    "5xx unknown code": fault_message(502, {"code": -9999, "msg": "?"}, "ExchangeError"),
    "429": fault_message(429, {"code": -1003, "msg": "too many"}, "RateLimitExceeded"),
    "venue busy": fault_message(200, {"code": -1008, "msg": "busy"}, "ExchangeError"),
    "200 not an order": act.SendFailed(
        "unknown", readable_order({"code": 0}, CID) or ""),
    "another order's reply": act.SendFailed(
        "unknown", readable_order({"id": "1", "clientOrderId": "xother"}, CID) or ""),
}


def test_each_fault_kind_is_looked_up_and_one_send_made_by_default() -> None:
    for name, failed in FAULTS.items():
        assert failed.verdict == "unknown", name
        # The venue has it: found by the first lookup, then followed.
        order = new()
        order.handle(act.Ok(), T0)
        wait = expect(order.handle(failed, T0 + 100 * MS), act.Wait)
        assert wait.until == T0 + 1100 * MS  # lookup_delay_ms after the answer
        expect(order.handle(act.Ok(), wait.until), act.Lookup)
        [sent] = records(order.handle(act.Found(venue_order("closed", "1")), wait.until))
        assert (sent.answer, sent.lookup, sent.resend) == ("unknown", "found", False), name
        assert [n.event for n in order.take_notes()] == ["order.send_failed",
                                                         "order.found_after_error"]
        expect(order.handle(act.Ok(), wait.until), act.Follow)
        # It has nothing: asked again once the window since the send has passed.
        order = new()
        order.handle(act.Ok(), T0)
        wait = expect(order.handle(failed, T0 + 100 * MS), act.Wait)
        expect(order.handle(act.Ok(), wait.until), act.Lookup)
        wait = expect(order.handle(act.Found(None), wait.until), act.Wait)
        assert wait.until == T0 + 3000 * MS
        expect(order.handle(act.Ok(), wait.until), act.Lookup)
        done = expect(order.handle(act.Found(None), wait.until), act.Done)
        assert done.outcome is not None and done.outcome.reason == reasons.EXECUTION_NOT_SENT
        [sent] = sends(done.before)
        assert (sent.attempt, sent.lookup, sent.resend) == (1, "absent", False)


def test_no_such_order_is_trusted_at_once_once_the_window_has_passed() -> None:
    order = new(lookup_delay_ms=5000)
    order.handle(act.Ok(), T0)
    wait = expect(order.handle(FAULTS["timeout"], T0), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    done = expect(order.handle(act.Found(None), wait.until), act.Done)
    assert done.outcome is not None and done.outcome.reason == reasons.EXECUTION_NOT_SENT


def test_not_found_then_found_after_the_window_is_followed() -> None:
    order = new()
    order.handle(act.Ok(), T0)
    wait = expect(order.handle(FAULTS["503 json"], T0), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    wait = expect(order.handle(act.Found(None), wait.until), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    [sent] = records(order.handle(act.Found(venue_order("closed", "1")), wait.until))
    assert sent.lookup == "found"


def test_lookups_that_fail_are_asked_again_with_backoff() -> None:
    # A lookup answered by a proxy's page (or a busy venue) is no answer, not "no order".
    order = new(lookup_delay_ms=0)
    order.handle(act.Ok(), T0)
    expect(order.handle(FAULTS["timeout"], T0), act.Lookup)
    waits = []
    for _ in range(8):
        wait = expect(order.handle(act.CallFailed("not a list of orders"), T0), act.Wait)
        waits.append((wait.until - T0) // MS)
        expect(order.handle(act.Ok(), T0), act.Lookup)
    assert waits == [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]


def test_a_refusal_or_unreachable_venue_fails_at_once_without_a_lookup() -> None:
    refused = fault_message(400, {"code": -2010, "msg": "insufficient balance"},
                            "InsufficientFunds")
    for failed, reason in ((refused, reasons.EXECUTION_REJECTED),
                           (act.SendFailed("unreachable", "ExchangeNotAvailable: refused"),
                            reasons.EXECUTION_NOT_AVAILABLE)):
        order = new(send_attempts=3)
        order.handle(act.Ok(), T0)
        done = expect(order.handle(failed, T0), act.Done)
        assert done.outcome is not None and done.outcome.reason == reason
        assert done.outcome.detail == failed.message


def test_a_duplicate_client_id_follows_the_venues_order_or_fails_without_it() -> None:
    duplicate = act.SendFailed("exists", "DuplicateOrderId: -2026")
    order = new()
    order.handle(act.Ok(), T0)
    wait = expect(order.handle(duplicate, T0), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    [sent] = records(order.handle(act.Found(venue_order("open")), wait.until))
    assert (sent.answer, sent.lookup) == ("exists", "found")
    order = new(send_attempts=3)
    order.handle(act.Ok(), T0)
    order.handle(duplicate, T0)
    order.handle(act.Ok(), T0 + 3000 * MS)
    done = expect(order.handle(act.Found(None), T0 + 3000 * MS), act.Done)
    assert done.outcome is not None and done.outcome.reason == reasons.EXECUTION_REJECTED


def test_explicit_resends_record_every_send_and_wait_for_it_to_be_durable() -> None:
    order = new(send_attempts=2)
    order.handle(act.Ok(), T0)
    now = T0
    action = order.handle(FAULTS["timeout"], now)
    while not isinstance(action, act.Write):
        now = expect(action, act.Wait).until
        expect(order.handle(act.Ok(), now), act.Lookup)
        action = order.handle(act.Found(None), now)
    assert action.durable
    [first] = records(action)
    assert (first.attempt, first.lookup, first.resend) == (1, "absent", True)
    assert expect(order.handle(act.Ok(), now), act.Send).attempt == 2
    [second] = records(order.handle(act.Placed(venue_order("open")), now))
    assert (second.attempt, second.answer) == (2, "placed")


def test_send_attempts_are_read_when_used_so_a_reload_applies() -> None:
    order = new(send_attempts=1)
    order.handle(act.Ok(), T0)
    order.table = table(send_attempts=2)
    wait = expect(order.handle(FAULTS["timeout"], T0), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    wait = expect(order.handle(act.Found(None), wait.until), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    assert expect(order.handle(act.Found(None), wait.until), act.Write).durable


# ------------------------------------------------------------------- cancels, stops


def resting(**overrides: Any) -> tuple[Order, act.Action]:
    order = new(LIMIT, **overrides)
    order.handle(act.Ok(), T0)
    order.handle(act.Placed(venue_order("open")), T0)
    return order, follow(order, venue_order("open"), T0)


def test_a_refused_cancel_is_tried_again_after_a_backoff_with_reads_between() -> None:
    order, action = resting(order_timeout_ms=0)
    expect(action, act.Cancel)
    [cancel] = records(order.handle(act.CallFailed("ExchangeNotAvailable: 503"), T0))
    assert cancel.answer == "ExchangeNotAvailable: 503"
    expect(order.handle(act.Ok(), T0), act.Read)
    # Backoff poll * 2**failures = 1 s: read at the poll pace meanwhile.
    wait = expect(order.handle(act.Got(venue_order("open")), T0), act.Wait)
    assert wait.until == T0 + 500 * MS
    expect(order.handle(act.Ok(), wait.until), act.Read)
    wait = expect(order.handle(act.Got(venue_order("open")), wait.until), act.Wait)
    assert wait.until == T0 + 1000 * MS
    expect(order.handle(act.Ok(), wait.until), act.Read)
    expect(order.handle(act.Got(venue_order("open")), wait.until), act.Cancel)
    notes = [(n.event, n.fields["failures"]) for n in order.take_notes()]
    assert notes == [("order.cancel_failed", 1)]


def test_a_stop_cancels_at_once_whatever_backoff_a_refused_cancel_left() -> None:
    order, action = resting(order_timeout_ms=0)
    expect(action, act.Cancel)
    order.handle(act.CallFailed("503"), T0)
    expect(order.handle(act.Ok(), T0), act.Read)
    wait = expect(order.handle(act.Got(venue_order("open")), T0), act.Wait)
    order.stop()
    expect(order.handle(act.Ok(), T0 + MS), act.Read)
    assert expect(order.handle(act.Got(venue_order("open")), T0 + MS), act.Cancel).why == (
        "stopping")
    assert wait.stop


def test_a_stop_while_followed_cancels_and_ends_in_doubt_if_it_stays_open() -> None:
    order, action = resting()
    expect(action, act.Wait)
    order.stop()
    expect(order.handle(act.Ok(), T0 + MS), act.Read)
    expect(order.handle(act.Got(venue_order("open")), T0 + MS), act.Cancel)
    order.handle(act.Cancelled({"id": "9"}), T0 + MS)
    expect(order.handle(act.Ok(), T0 + MS), act.Read)
    for _ in range(3):
        wait = expect(order.handle(act.Got(venue_order("open")), T0 + MS), act.Wait)
        assert (wait.push, wait.stop) == (True, False)  # the stop has happened
        expect(order.handle(act.Ok(), wait.until), act.Read)
    done = expect(order.handle(act.Got(venue_order("open")), T0), act.Done)
    assert done.outcome is None and done.in_doubt


def test_a_stop_with_a_silent_venue_leaves_the_order_in_doubt_after_three_failed_reads() -> None:
    order, _ = resting()
    order.stop()
    expect(order.handle(act.Ok(), T0), act.Read)
    expect(order.handle(act.CallFailed("timeout"), T0), act.Wait)
    expect(order.handle(act.Ok(), T0), act.Cancel)
    order.handle(act.Cancelled({"id": "9"}), T0)
    expect(order.handle(act.Ok(), T0), act.Read)
    expect(order.handle(act.CallFailed("timeout"), T0), act.Wait)
    expect(order.handle(act.Ok(), T0), act.Wait)  # cancelled: the next read at the poll pace
    expect(order.handle(act.Ok(), T0), act.Read)
    done = expect(order.handle(act.CallFailed("timeout"), T0), act.Done)
    assert done.outcome is None and done.in_doubt


def test_a_stop_with_a_venue_refusing_cancels_leaves_it_in_doubt_after_three() -> None:
    order, _ = resting()
    order.stop()
    now = T0
    expect(order.handle(act.Ok(), now), act.Read)
    action = order.handle(act.Got(venue_order("open")), now)
    for _ in range(2):
        expect(action, act.Cancel)
        order.handle(act.CallFailed("timeout"), now)
        expect(order.handle(act.Ok(), now), act.Read)
        now += 5000 * MS  # past the backoff
        action = order.handle(act.Got(venue_order("open")), now)
    expect(action, act.Cancel)
    order.handle(act.CallFailed("timeout"), now)
    done = expect(order.handle(act.Ok(), now), act.Done)
    assert done.outcome is None and done.in_doubt


def test_a_stop_before_the_send_fails_the_order_not_sent() -> None:
    order = new()
    order.stop()
    done = expect(order.handle(act.Ok(), T0), act.Done)
    assert done.outcome is not None and done.outcome.reason == reasons.EXECUTION_NOT_SENT
    assert done.outcome.detail == "not sent: the daemon was stopping"


def test_a_stop_during_the_lookup_records_the_send_pending_and_leaves_it_in_doubt() -> None:
    order = new()
    order.handle(act.Ok(), T0)
    wait = expect(order.handle(FAULTS["503 json"], T0), act.Wait)
    expect(order.handle(act.Ok(), wait.until), act.Lookup)
    wait = expect(order.handle(act.Found(None), wait.until), act.Wait)
    order.stop()  # the wait for the window ends early
    expect(order.handle(act.Ok(), T0 + 1500 * MS), act.Lookup)
    [sent] = records(order.handle(act.Found(None), T0 + 1500 * MS))
    assert (sent.answer, sent.lookup) == ("unknown", "pending")
    assert expect(order.handle(act.Ok(), T0 + 1500 * MS), act.Done).in_doubt


# -------------------------------------------------------------------------- fees


def filled_open(**overrides: Any) -> Order:
    order = new(LIMIT, **overrides)
    order.handle(act.Ok(), T0)
    order.handle(act.Placed(venue_order("open")), T0)
    expect(follow(order, venue_order("open"), T0), act.Wait)
    expect(order.handle(act.Ok(), T0), act.Read)
    expect(order.handle(act.Got(venue_order("closed", "1")), T0), act.ReadTrades)
    return order


def test_fees_read_again_while_the_trades_lag_then_marked_incomplete() -> None:
    order = filled_open(fee_reads=2, fee_read_pause_ms=200)
    wait = expect(order.handle(act.Got([]), T0), act.Wait)
    assert wait.until == T0 + 200 * MS
    expect(order.handle(act.Ok(), wait.until), act.ReadTrades)
    half = {**TRADE, "amount": "0.5"}
    done = expect(order.handle(act.Got([half]), wait.until), act.Done)
    assert done.outcome is not None and not done.outcome.fees_complete
    assert [f.cost for f in done.outcome.fees] == [Decimal("0.1")]
    [note] = [n for n in order.take_notes() if n.event == "order.fees_incomplete"]
    assert note.fields["reads"] == 2


def test_fees_unreadable_or_at_a_stop_are_read_once() -> None:
    order = filled_open(fee_reads=3)
    order.stop()
    done = expect(order.handle(act.CallFailed("NetworkError"), T0), act.Done)
    assert done.outcome is not None and not done.outcome.fees_complete
    order = Order(LIMIT, 7, table(), execution_id="e", trades_readable=False)
    order.start(T0)
    order.handle(act.Ok(), T0)
    order.handle(act.Placed(venue_order("closed", "1")), T0)
    done = expect(order.handle(act.Ok(), T0), act.Done)
    assert done.outcome is not None and not done.outcome.fees_complete


# --------------------------------------------------------------------- restarts


def unresolved(last: SendAttemptRecord | None, **overrides: Any) -> tuple[Order, act.Action]:
    order = Order.unresolved(RECORD, 7, table(**overrides), execution_id="e",
                             trades_readable=True, last=last, started=T0)
    return order, order.start(T0 + 10 * MS)


def absent_after_window(order: Order, action: act.Action, now: int) -> act.Action:
    expect(action, act.Lookup)
    window = expect(order.handle(act.Found(None), now), act.AfterWindow)
    assert window.until == T0 + 3000 * MS
    expect(order.handle(act.Ok(), window.until), act.Lookup)
    return order.handle(act.Found(None), window.until)


def test_restart_with_no_send_record_follows_the_order_the_venue_has() -> None:
    order, action = unresolved(None)
    expect(action, act.Lookup)
    write = expect(order.handle(act.Found(venue_order("open")), T0), act.Write)
    [sent] = records(write)
    assert (sent.answer, sent.lookup, write.durable) == ("not_recorded", "found", False)
    expect(order.handle(act.Ok(), T0), act.Queue)
    expect(order.handle(act.Ok(), T0), act.Follow)


def test_restart_with_no_send_record_and_nothing_at_the_venue() -> None:
    order, action = unresolved(None)
    done = expect(absent_after_window(order, action, T0), act.Done)
    assert done.outcome is not None and done.outcome.reason == reasons.EXECUTION_NOT_SENT
    assert "send_attempts=1" in (done.outcome.detail or "")
    [note] = order.take_notes()
    assert note.event == "order.not_sent"
    # With a resend window the order, young enough, is sent again once recorded.
    order, action = unresolved(None, send_attempts=3, resend_window_ms=60_000)
    write = expect(absent_after_window(order, action, T0), act.Write)
    assert write.durable and records(write)[0].resend
    expect(order.handle(act.Ok(), T0), act.Queue)
    assert expect(order.handle(act.Ok(), T0), act.Send).attempt == 2


def test_restart_after_an_announced_resend_within_send_attempts() -> None:
    last = attempt_record(RECORD, 1, "unknown", T0, lookup="absent", resend=True)
    order, action = unresolved(last, send_attempts=2, resend_window_ms=60_000)
    done = expect(absent_after_window(order, action, T0), act.Done)
    assert done.outcome is not None and "send_attempts=2" in (done.outcome.detail or "")


def test_restart_of_a_placed_order_the_venue_no_longer_has_is_expired() -> None:
    last = attempt_record(RECORD, 1, "placed", T0, venue_order_id="9")
    order, action = unresolved(last)
    done = expect(absent_after_window(order, action, T0), act.Done)
    assert done.outcome is not None and done.outcome.reason == reasons.EXECUTION_EXPIRED
    assert done.before == ()


def test_restart_settles_a_pending_lookup() -> None:
    last = attempt_record(RECORD, 1, "unknown", T0, message="503", lookup="pending")
    order, action = unresolved(last)
    expect(action, act.Lookup)
    [sent] = records(order.handle(act.Found(venue_order("closed", "1")), T0))
    assert (sent.attempt, sent.lookup, sent.message) == (1, "found", "503")


def test_restart_with_every_send_recorded_follows_or_ends_without_a_new_record() -> None:
    last = attempt_record(RECORD, 1, "placed", T0, venue_order_id="9")
    order, action = unresolved(last)
    expect(action, act.Lookup)
    expect(order.handle(act.Found(venue_order("open")), T0), act.Queue)
    assert [n.event for n in order.take_notes()] == ["order.reconciled"]


def test_restart_reconciliation_stopped_or_unanswered_leaves_it_in_doubt() -> None:
    order, action = unresolved(None)
    expect(action, act.Lookup)
    expect(order.handle(act.Found(None), T0), act.AfterWindow)
    order.stop()
    assert expect(order.handle(act.Ok(), T0 + MS), act.Done).in_doubt
    order, action = unresolved(None)
    order.stop()
    for _ in range(2):
        wait = expect(order.handle(act.CallFailed("timeout"), T0), act.Wait)
        expect(order.handle(act.Ok(), wait.until), act.Lookup)
    done = expect(order.handle(act.CallFailed("timeout"), T0), act.Done)
    assert done.outcome is None and done.in_doubt


# ------------------------------------------------------------------- many orders


def test_many_orders_at_once_each_run_their_own_course() -> None:
    """Interleaved by hand, a thousand orders never see each other's answers."""
    orders = []
    for n in range(1000):
        record = OrderRecord(intent_id=uuid.UUID(int=n + 10), venue="binance",
                             symbol="BTC/USDT", side="buy", client_order_id=f"x{n}",
                             type="market", amount=Decimal("1"),
                             requested_quantity=Decimal("1"), intent=Raw(b"{}"), wall_time=T0)
        orders.append(new(record))
    pending = {id(o): o.handle(act.Ok(), T0) for o in orders}
    for n, order in enumerate(orders):  # odd ones lose their reply
        event = (act.Placed({**venue_order("closed", "1", fee=FEE), "clientOrderId": f"x{n}"})
                 if n % 2 == 0 else FAULTS["timeout"])
        pending[id(order)] = order.handle(event, T0)
    outcomes = {}
    now = T0
    while pending:
        now += 100 * MS
        for order in orders:
            action = pending.get(id(order))
            if action is None:
                continue
            if isinstance(action, act.Done):
                assert action.outcome is not None
                outcomes[order.record.client_order_id] = action.outcome.reason
                del pending[id(order)]
            elif isinstance(action, act.Wait) and action.until > now:
                continue
            elif isinstance(action, act.Lookup):
                pending[id(order)] = order.handle(act.Found(None), now)
            else:
                pending[id(order)] = order.handle(act.Ok(), now)
    assert len(outcomes) == 1000
    assert {outcomes[f"x{n}"] for n in range(0, 1000, 2)} == {None}
    assert {outcomes[f"x{n}"] for n in range(1, 1000, 2)} == {reasons.EXECUTION_NOT_SENT}


# ------------------------------------------------------------ clock steps
# Decisions run on the monotonic ``now``; the wall clock is only recorded. A step of
# the system clock (NTP, a resumed VM) is a jump in ``wall`` alone.

HOUR = 3600 * 1000 * MS


def test_a_wall_clock_step_during_the_window_neither_trusts_no_order_early_nor_ends_in_doubt(
) -> None:
    """A step of the wall clock must never make "no such order" trusted before the
    acceptance window has passed, nor leave a running order in doubt."""
    for step in (-100 * MS, +1500 * MS, -HOUR, +HOUR):
        order = new(send_attempts=2)
        order.handle(act.Ok(), T0)
        wait = expect(order.handle(FAULTS["503 json"], T0, T0), act.Wait)
        expect(order.handle(act.Ok(), wait.until, wait.until + step), act.Lookup)
        # Not found: asked again only once the window since the send has passed on the
        # monotonic clock, whatever the wall clock says.
        wait = expect(order.handle(act.Found(None), wait.until, wait.until + step), act.Wait)
        assert wait.until == T0 + 3000 * MS, step
        expect(order.handle(act.Ok(), wait.until, wait.until + step), act.Lookup)
        [sent] = records(order.handle(act.Found(None), wait.until, wait.until + step))
        assert (sent.lookup, sent.resend) == ("absent", True), step
        # The record carries the wall clock as it was read.
        assert sent.wall_time == T0 + 3000 * MS + step


def test_a_wall_clock_step_never_moves_the_order_timeout() -> None:
    """A step of the wall clock must never cancel a resting order early or never."""
    for step in (+1500 * MS, -HOUR):
        order = new(LIMIT)
        order.handle(act.Ok(), T0)
        order.handle(act.Placed(venue_order("open")), T0)
        now = T0
        action = follow(order, venue_order("open"), now)
        while isinstance(action, act.Wait):
            now = action.until
            expect(order.handle(act.Ok(), now, now + step), act.Read)
            action = order.handle(act.Got(venue_order("open")), now, now + step)
        assert now == T0 + 2000 * MS, step
        assert expect(action, act.Cancel).why == "order_timeout_ms"
