"""Crash test of targets: the real ``execd run`` against the fake Binance, SIGKILLed at
16 seeded points while a portfolio's targets are worked (each run's target supersedes
the last one's, its legs TWAPs of two slices), restarted each time.

The fake kills the daemon when a leg's child order arrives and after one is placed; the
test kills it at seeded moments besides (between a target record and its legs, inside
a superseding). At the end: one outcome per id, one order per client id at the venue,
each target recorded once, every leg toward its target and never past it, the ledger's
fills the venue's, and the lakehouse's derived files equal to those rebuilt from the
ledger alone.
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

from tests.helpers import EXECD, ROOT, drop, lines, open_schedules, records, start_daemon
from tests.live import VENUES, fake_exchange, write_live_config

POINTS = 16
SEED = 20261203
WANTED = ("0.02", "0.01", "0.03", "0.015")
FILES = ("execution_logs.jsonl", "audit/audit.jsonl", "portfolio_actual_state.json")


def rows(run: int) -> list[dict[str, Any]]:
    base = run * 1000
    return [{"kind": "tick", "time": base},
            {"kind": "target", "portfolio_id": "p", "source_run": "run-1", "as_of": run + 1,
             "venue": "binance", "urgency": "critical",
             "targets": [{"symbol": "BTC/USDT", "quantity": WANTED[run % len(WANTED)],
                          "price": "50000"}],
             "execution": {"algorithm": "twap", "duration": 100, "slices": 2}},
            {"kind": "tick", "time": base + 60}, {"kind": "tick", "time": base + 200}]


def crash_points() -> list[tuple[str, float]]:
    rng = random.Random(SEED)
    points = [("received", 1.0) for _ in range(POINTS // 4)]
    points += [("placed", 1.0) for _ in range(POINTS // 4)]
    points += [("moment", rng.uniform(0.2, 1.5)) for _ in range(POINTS - 2 * (POINTS // 4))]
    rng.shuffle(points)
    return points


def settled(ledger: Path, run: int) -> bool:
    """This run's target is recorded, and nothing of it is open or in flight."""
    if not ledger.exists():
        return False
    found = records(ledger)
    targets = [r for r in found if r["kind"] == "target"]
    orders = {r["body"]["intent_id"] for r in found if r["kind"] == "order"}
    done = {r["body"]["intent_id"] for r in found if r["kind"] == "outcome"}
    return (any(t["body"]["as_of"] == run + 1 for t in targets) and not open_schedules(ledger)
            and orders <= done)


def test_sigkill_while_targets_are_worked_never_overshoots_nor_sends_twice(
        tmp_path: Path) -> None:
    venue = VENUES["binance"]
    fake = fake_exchange()
    ledger = tmp_path / "ledger"
    kills: list[str] = []
    runs = [*crash_points(), ("none", 0.0)]
    with venue.thread(fake) as running:
        path = write_live_config(tmp_path, running.url, "binance", level="info",
                                 order_timeout_ms=400, timeout_ms=1000, in_flight=3,
                                 backlog=64, extra="[ledger]\ncheckpoint_records = 5\n")
        log = tmp_path / "daemon.log"
        for run, (kind, value) in enumerate(runs):
            drop(tmp_path / "lakehouse" / "inbox", f"f{run:02d}.jsonl", lines(*rows(run)))
            process = start_daemon(path, log)
            seen = {"received": 0, "placed": 0}

            def hook(phase: str, order: Any, kind: str = kind, value: float = value,
                     process: subprocess.Popen[bytes] = process,
                     seen: dict[str, int] = seen) -> None:
                seen[phase] += 1
                if phase == kind and seen[phase] == int(value):
                    os.kill(process.pid, signal.SIGKILL)
                    if phase == "received":
                        raise RuntimeError("daemon killed before the order was placed")

            fake.on_order = hook
            if kind == "moment":
                try:
                    process.wait(timeout=value)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 60
            late = time.monotonic() + 3
            while process.poll() is None and time.monotonic() < deadline:
                if kind != "moment" and settled(ledger, run):
                    process.send_signal(signal.SIGTERM)
                    break
                if late and time.monotonic() > late:
                    # A deferred leg's schedule starts when the superseded child settles,
                    # maybe after the run's last tick: the clock must move on for it.
                    drop(tmp_path / "lakehouse" / "inbox", f"f{run:02d}-late.jsonl",
                         lines({"kind": "tick", "time": run * 1000 + 900}))
                    late = 0
                time.sleep(0.05)
            try:
                code = process.wait(timeout=60)
            finally:
                if process.poll() is None:  # never leave a daemon behind a failed run
                    process.kill()
                    process.wait()
            fake.on_order = None
            kills.append(f"{kind}:{value:g}->{code}")
        at_venue = list(fake.orders)

    assert code == 0, kills
    # A kill waiting for a leg's order lands only when the run sends one: a run whose
    # target the restart's catch-up already reached sends none, and stops cleanly.
    assert sum(1 for k in kills if k.endswith("->-9")) >= POINTS // 2, kills
    found = records(ledger)
    out = [r["body"] for r in found if r["kind"] == "outcome"]
    count = collections.Counter(o["intent_id"] for o in out)
    assert set(count.values()) == {1}, [k for k, v in count.items() if v > 1]
    assert set(collections.Counter(o.clientOrderId for o in at_venue).values()) == {1}
    targets = [r["body"] for r in found if r["kind"] == "target"]
    ids = [t["target_id"] for t in targets]
    assert len(ids) == len(set(ids)) == len(runs)
    for t in targets:
        for leg in t["legs"]:
            position, target, quantity = (Decimal(leg[2]), Decimal(leg[1]), Decimal(leg[3]))
            if leg[5] == "sent":  # toward the target, never past it (a deferred one's
                # quantity is its order's: computed once the superseded child settled)
                assert (target - position) * quantity > 0, t
                assert abs(quantity) <= abs(target - position), t
    # What the ledger says filled is what the venue filled, order by order.
    filled = {o.clientOrderId: venue.filled(o) for o in at_venue}
    for o in out:
        if o.get("client_order_id") in filled:
            assert Decimal(o["filled_quantity"]) == filled[o["client_order_id"]]
    # The derived files the daemon kept are those the ledger rebuilds.
    into = tmp_path / "rebuilt"
    rebuilt = subprocess.run([*EXECD, "lakehouse", "rebuild", "--config", str(path),
                              "--into", str(into)], cwd=ROOT, capture_output=True,
                             text=True, check=False)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    for name in FILES:
        assert (into / name).read_bytes() == (tmp_path / "lakehouse" / name).read_bytes(), name
    verify = subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger)],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
