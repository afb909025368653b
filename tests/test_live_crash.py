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

from tests.fake_binance import FakeBinanceThread, FakeOrder
from tests.helpers import EXECD, ROOT, drop, lines, records, start_daemon
from tests.live import fake_exchange, live_intent, write_live_config

pytestmark = pytest.mark.slow

PER_RUN = 4
POINTS = 24
INTENTS = PER_RUN * (POINTS + 1)
SEED = 20261121
EXPECTED_ENDPOINTS = {("GET", "/api/v3/exchangeInfo"), ("GET", "/api/v3/account"),
                      ("POST", "/api/v3/order"), ("GET", "/api/v3/order"),
                      ("DELETE", "/api/v3/order")}


def intents() -> list[dict[str, Any]]:
    """Market buys and sells, and limits that rest until order_timeout_ms cancels them."""
    out = []
    for n in range(1, INTENTS + 1):
        if n % 5 == 0:
            out.append(live_intent(n, order_type="limit", limit_price="45000", urgency="low"))
        else:
            out.append(live_intent(n, side="sell" if n % 3 == 0 else "buy"))
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


def outcome_count(ledger: Path) -> int:
    if not ledger.exists():
        return 0
    return sum(1 for r in records(ledger) if r["kind"] == "outcome")


def test_sigkill_at_seeded_points_never_doubles_or_loses_an_order(tmp_path: Path) -> None:
    fake = fake_exchange()
    ledger = tmp_path / "ledger"
    starts = 0
    kills: list[str] = []
    with FakeBinanceThread(fake) as running:
        path = write_live_config(tmp_path, running.url, level="info", order_timeout_ms=400,
                                 timeout_ms=1000, in_flight=3, backlog=64)
        log = tmp_path / "daemon.log"
        every = intents()
        for run, (kind, value) in enumerate([*crash_points(), ("none", 0.0)]):
            batch = every[run * PER_RUN:(run + 1) * PER_RUN]
            drop(tmp_path / "lakehouse" / "inbox", f"f{run:02d}.jsonl", lines(*batch))
            dropped = (run + 1) * PER_RUN
            process = start_daemon(path, log)
            starts += 1
            seen = {"received": 0, "placed": 0}

            def hook(phase: str, order: FakeOrder | None, kind: str = kind,
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

    # Every intent got exactly one outcome, and the last run drained cleanly.
    assert code == 0, kills
    out = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    by_intent = collections.Counter(o["intent_id"] for o in out)
    assert len(by_intent) == INTENTS and set(by_intent.values()) == {1}, kills
    # Exactly one order per intent at the venue, under the id the ledger recorded.
    per_client = collections.Counter(o.clientOrderId for o in running_orders)
    assert set(per_client.values()) == {1} and len(per_client) == INTENTS, per_client
    assert {o["client_order_id"] for o in out} == set(per_client)
    # What the ledger says filled is what the venue filled.
    venue = {o.clientOrderId: o for o in running_orders}
    for outcome in out:
        assert Decimal(outcome["filled_quantity"]) == venue[outcome["client_order_id"]].executedQty
        expected = "FAILED" if int(outcome["intent_id"][-3:]) % 5 == 0 else "FILLED"
        assert outcome["status"] == expected, outcome
    # The kills really landed (a SIGKILL exits -9) at every seeded point.
    assert sum(1 for k in kills if k.endswith("->-9")) == POINTS, kills
    # No unexpected endpoint; markets loaded once per start, never in a burst.
    assert set(requests) <= EXPECTED_ENDPOINTS, requests
    assert requests[("GET", "/api/v3/exchangeInfo")] <= starts
    verify = subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger)],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


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
        process = start_daemon(path, log)
        deadline = time.monotonic() + 60
        while outcome_count(ledger) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        orders = list(fake.orders)
    out = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    assert sorted((o["status"], o.get("reason")) for o in out) == [
        ("FILLED", None), ("REJECTED", "INTENT_DUPLICATE")]
    filled = next(o for o in out if o["status"] == "FILLED")
    assert [o.clientOrderId for o in orders] == [filled["client_order_id"]]
    assert Decimal(filled["filled_quantity"]) == orders[0].executedQty
