"""Crash test of the live plane: the real ``execd run`` against the fake Binance, SIGKILLed.

The fake kills the daemon at seeded points of its own (when an order arrives,
before it is placed: the order record is durable and the venue has nothing; and
after it is placed, before the reply: the venue has it and the ledger has no
outcome), and the test kills it at seeded moments besides. After each kill the
daemon is restarted on the same ledger. At the end the fake must hold exactly one
order per intent, the ledger exactly one outcome per intent, and the chain must
verify.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.binance import FakeBinanceThread, FakeOrder
from tests.helpers import EXECD, ROOT, drop, lines, records, start_daemon
from tests.live import VENUES, fake_exchange, live_intent, write_live_config

PER_RUN = 4
POINTS = 24
INTENTS = PER_RUN * (POINTS + 1)
SEED = 20261121


def intents(venue: str) -> list[dict[str, Any]]:
    """Market buys and sells, and limits that rest until order_timeout_ms cancels them."""
    out = []
    for n in range(1, INTENTS + 1):
        if n % 5 == 0:
            out.append(live_intent(n, venue=venue, order_type="limit", limit_price="45000",
                                   urgency="low"))
        else:
            out.append(live_intent(n, venue=venue, side="sell" if n % 3 == 0 else "buy"))
    return out


def crash_points() -> list[tuple[str, float]]:
    """Seeded kill points: at the k-th order's arrival, after the k-th is placed, at a moment.

    Each run of the daemon gets PER_RUN new intents, so the k-th order (k <= PER_RUN)
    always comes. A moment falls anywhere from recovery to idle.
    """
    rng = random.Random(SEED)
    third = POINTS // 3
    points = [("received", float(rng.randint(1, PER_RUN))) for _ in range(third)]
    points += [("placed", float(rng.randint(1, PER_RUN))) for _ in range(third)]
    points += [("moment", rng.uniform(0.2, 2.0)) for _ in range(POINTS - 2 * third)]
    rng.shuffle(points)
    return points


def run_until_outcomes(path: Path, log: Path, ledger: Path, count: int) -> None:
    """Start the daemon, let it run until the ledger holds ``count`` outcomes, stop it."""
    process = start_daemon(path, log)
    deadline = time.monotonic() + 60
    while outcome_count(ledger) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def outcome_count(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    return sum(1 for r in records(ledger) if r["kind"] == "outcome")


@pytest.mark.parametrize(("name", "checkpoints"),
                         [*((name, 0) for name in sorted(VENUES)), ("binance", 2)])
def test_sigkill_at_seeded_points_never_doubles_or_loses_an_order(tmp_path: Path, name: str,
                                                                  checkpoints: int) -> None:
    """A SIGKILL at any point of a live order's life never puts two orders at the venue for one
    intent, loses an outcome, or exceeds send_attempts across restarts; also with a
    checkpoint every ``checkpoints`` records (open orders and their sends in snapshots).
    """
    venue = VENUES[name]
    fake = fake_exchange(exchange=name)
    ledger = tmp_path / "ledger"
    starts = 0
    kills: list[str] = []
    with venue.thread(fake) as running:
        # Resends explicitly on (the default sends once): the kills must never make
        # the sends of one order, across every restart, exceed send_attempts.
        path = write_live_config(tmp_path, running.url, name, level="info",
                                 order_timeout_ms=400, timeout_ms=1000, in_flight=3,
                                 backlog=64, send_attempts=3, resend_window_ms=300000,
                                 extra=f"[ledger]\ncheckpoint_records = {checkpoints}\n")
        log = tmp_path / "daemon.log"
        every = intents(name)
        for run, (kind, value) in enumerate([*crash_points(), ("none", 0.0)]):
            batch = every[run * PER_RUN:(run + 1) * PER_RUN]
            drop(tmp_path / "lakehouse" / "inbox", f"f{run:02d}.jsonl", lines(*batch))
            dropped = (run + 1) * PER_RUN
            process = start_daemon(path, log)
            starts += 1
            seen = {"received": 0, "placed": 0}

            def hook(phase: str, order: Any, kind: str = kind,
                     value: float = value, process: subprocess.Popen[bytes] = process,
                     seen: dict[str, int] = seen) -> None:
                seen[phase] += 1
                if phase == kind and seen[phase] == int(value):
                    os.kill(process.pid, signal.SIGKILL)
                    if phase == "received":
                        # Refuse to place it: the daemon died before the call reached us.
                        raise RuntimeError("daemon killed before the order was placed")

            fake.on_order = hook
            if kind == "moment":
                try:
                    process.wait(timeout=value)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if outcome_count(ledger) >= dropped and kind != "moment":
                    process.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.05)
            code = process.wait(timeout=60)
            fake.on_order = None
            kills.append(f"{kind}:{value:g}->{code}")
        running_orders = list(fake.orders)
        requests = collections.Counter(fake.requests)
        posts = collections.Counter(fake.posts)

    # Every intent got exactly one outcome, and the last run drained cleanly.
    assert code == 0, kills
    out = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    by_intent = collections.Counter(o["intent_id"] for o in out)
    assert len(by_intent) == INTENTS and set(by_intent.values()) == {1}, kills
    # Never two orders for one intent at the venue, each under the id the ledger recorded.
    per_client = collections.Counter(o.clientOrderId for o in running_orders)
    assert set(per_client.values()) == {1}, per_client
    # Not placed: never sent, or refused by the venue (on a loaded machine a send can
    # reach the fake after its recvWindow, and Binance refuses it with -1021).
    placed = {o["client_order_id"] for o in out
              if o.get("reason") not in ("EXECUTION_NOT_SENT", "EXECUTION_REJECTED")}
    assert placed == set(per_client)
    # What the ledger says filled is what the venue filled. An order a kill kept from
    # the venue is resent only while the sends it may have had stay within
    # send_attempts; a send a killed run may have made counts, even if it never left.
    at_venue = {o.clientOrderId: o for o in running_orders}
    for outcome in out:
        if outcome["client_order_id"] not in placed:
            assert (outcome["status"], outcome["filled_quantity"]) == ("FAILED", "0"), outcome
            if outcome["reason"] == "EXECUTION_REJECTED":
                # Refused by the venue (the -1021 above): in its own words, never resent.
                assert outcome["detail"] and "send_attempts" not in outcome["detail"], outcome
            else:
                assert "not sent again: send_attempts=3" in outcome["detail"], outcome
            continue
        assert Decimal(outcome["filled_quantity"]) == venue.filled(
            at_venue[outcome["client_order_id"]])
        # Its fees are those of the venue's fills, however it was learnt (reply,
        # lookup after a kill, start-up reconciliation).
        if venue.fees is not None:
            charged = venue.fees(at_venue[outcome["client_order_id"]])
            recorded = {c: Decimal(v) for v, c in outcome.get("fees", []) if Decimal(v)}
            assert recorded == charged, outcome
        assert "fees_complete" not in outcome, outcome
        expected = "FAILED" if int(outcome["intent_id"][-3:]) % 5 == 0 else "FILLED"
        assert outcome["status"] == expected, outcome
    # Every send that reached the venue is in the ledger (a restart records the one a
    # killed run could not), and no order was sent more than send_attempts times.
    recorded: dict[str, int] = {}
    resent = 0
    for r in records(ledger):
        if r["kind"] == "order_attempt":
            body = r["body"]
            cid = body["client_order_id"]
            recorded[cid] = max(recorded.get(cid, 0), body["attempt"])
            resent += body["answer"] == "placed" and body["attempt"] > 1
    assert all(posts[cid] <= recorded.get(cid, 0) <= 3 for cid in posts), (posts, recorded)
    assert resent and len(placed) > INTENTS // 2  # the kills made resends happen
    # The kills really landed (a SIGKILL exits -9) at every seeded point.
    assert sum(1 for k in kills if k.endswith("->-9")) == POINTS, kills
    # No unexpected endpoint; markets loaded once per start, never in a burst.
    assert set(requests) <= venue.endpoints, requests
    assert requests[venue.markets_request] <= starts
    verify = subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger)],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    if checkpoints:
        recovered = [line for line in log.read_text().splitlines() if "ledger.recovered" in line]
        assert any("snapshot-0" in line for line in recovered), recovered


def test_a_duplicate_of_an_order_in_flight_does_not_hide_it_from_reconciliation(
        tmp_path: Path) -> None:
    """The same live intent twice in a file; the daemon dies once the first is placed.

    The second line is refused INTENT_DUPLICATE while the first order is still at the
    venue. That refusal names the same intent id, but it is not the order's outcome:
    the restart must still look the order up and record what the venue did.
    """
    fake = fake_exchange()
    ledger = tmp_path / "ledger"
    with FakeBinanceThread(fake) as running:
        path = write_live_config(tmp_path, running.url, level="info")
        log = tmp_path / "daemon.log"
        drop(tmp_path / "lakehouse" / "inbox", "dup.jsonl", lines(live_intent(1), live_intent(1)))
        process = start_daemon(path, log)

        def hook(phase: str, order: FakeOrder | None) -> None:
            if phase == "placed":
                # The refusal of the repeat is durable with the order record by now:
                # both lines are in the same batch, and the order waits for its record.
                os.kill(process.pid, signal.SIGKILL)

        fake.on_order = hook
        assert process.wait(timeout=60) == -signal.SIGKILL
        fake.on_order = None
        before = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
        assert [o["reason"] for o in before] == ["INTENT_DUPLICATE"]
        run_until_outcomes(path, log, ledger, 2)
        orders = list(fake.orders)
    out = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    assert sorted((o["status"], o.get("reason")) for o in out) == [
        ("FILLED", None), ("REJECTED", "INTENT_DUPLICATE")]
    filled = next(o for o in out if o["status"] == "FILLED")
    assert [o.clientOrderId for o in orders] == [filled["client_order_id"]]
    assert Decimal(filled["filled_quantity"]) == orders[0].executedQty


@pytest.mark.parametrize(("send_attempts", "resend_window_ms", "kills", "answers"), [
    # The default: the order the venue never got is not sent again.
    (None, None, 1, [(1, "absent", False)]),
    # Resends configured: one more send, recorded before it is made; the next kill
    # leaves nothing to spend, so the third start records it not sent.
    (2, 300000, 2, [(1, "absent", True), (2, "absent", False)]),
])
def test_an_order_killed_before_it_reached_the_venue(
        tmp_path: Path, send_attempts: int | None, resend_window_ms: int | None, kills: int,
        answers: list[tuple[int, str, bool]]) -> None:
    """The daemon dies as each send arrives, before the venue places it.

    The order record is durable and the venue has nothing. Each restart records the
    send the killed run could not, then sends again only within send_attempts.
    """
    fake = fake_exchange()
    ledger = tmp_path / "ledger"
    options: dict[str, Any] = {k: v for k, v in (("send_attempts", send_attempts),
                                                 ("resend_window_ms", resend_window_ms))
                               if v is not None}
    with FakeBinanceThread(fake) as running:
        path = write_live_config(tmp_path, running.url, level="info", **options)
        log = tmp_path / "daemon.log"
        drop(tmp_path / "lakehouse" / "inbox", "one.jsonl", lines(live_intent(1)))
        for _ in range(kills):
            process = start_daemon(path, log)

            def hook(phase: str, order: FakeOrder | None,
                     process: subprocess.Popen[bytes] = process) -> None:
                if phase == "received":
                    os.kill(process.pid, signal.SIGKILL)
                    raise RuntimeError("daemon killed before the order was placed")

            fake.on_order = hook
            assert process.wait(timeout=60) == -signal.SIGKILL
            fake.on_order = None
        run_until_outcomes(path, log, ledger, 1)
        posts = dict(fake.posts)
        assert fake.orders == []
    [outcome] = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    assert (outcome["status"], outcome["reason"]) == ("FAILED", "EXECUTION_NOT_SENT")
    assert "not sent again" in outcome["detail"]
    sent = [r["body"] for r in records(ledger) if r["kind"] == "order_attempt"]
    assert [(s["attempt"], s["lookup"], s.get("resend", False)) for s in sent] == answers
    assert {s["answer"] for s in sent} == {"not_recorded"}
    assert posts == {outcome["client_order_id"]: kills}


def test_a_stop_with_a_silent_venue_ends_within_the_drain_bound_and_the_restart_reconciles(
        tmp_path: Path) -> None:
    """SIGTERM while the venue holds an order's reply far longer than the unit would wait.

    The venue placed the order and says nothing (the call's own timeout is 120 s).
    The drain follows it for drain_timeout_ms, then leaves it in doubt and stops
    cleanly; the next start looks it up and records what the venue did.
    """
    fake = fake_exchange()
    ledger = tmp_path / "ledger"
    thread = FakeBinanceThread(fake)
    with thread as running:
        path = write_live_config(tmp_path, running.url, level="info", timeout_ms=120000,
                                 drain_timeout_ms=500)
        log = tmp_path / "daemon.log"
        thread.call(lambda: fake.inject("timeout", delay=600.0))
        drop(tmp_path / "lakehouse" / "inbox", "one.jsonl", lines(live_intent(1)))
        process = start_daemon(path, log)
        deadline = time.monotonic() + 60
        while not fake.orders and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.orders
        process.send_signal(signal.SIGTERM)
        # Generous next to the 0.5 s bound, and far short of the call's 120 s timeout.
        assert process.wait(timeout=30) == 0
        stopped = records(ledger)
        assert stopped[-1]["kind"] == "stop"
        assert not [r for r in stopped if r["kind"] == "outcome"]
        events = [line for line in log.read_text().splitlines() if "order.in_doubt" in line]
        assert len(events) == 1 and "drain_timeout_ms=500" in events[0]
        run_until_outcomes(path, log, ledger, 1)
        orders = list(fake.orders)
    [outcome] = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    assert outcome["status"] == "FILLED"
    assert [o.clientOrderId for o in orders] == [outcome["client_order_id"]]
    [sent] = [r["body"] for r in records(ledger) if r["kind"] == "order_attempt"]
    assert (sent["attempt"], sent["answer"], sent["lookup"]) == (1, "not_recorded", "found")
