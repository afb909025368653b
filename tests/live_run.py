"""The daemon run in-process against a fake exchange, and what it recorded: the live
pipeline tests' shared steps (tests/pipeline/test_live*.py). ``ORDER``, ``LOOKUP`` and
``START`` are Binance's requests (the other exchanges' tests name their own)."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.scan import scan
from tests.fakes.binance import FakeBinance
from tests.helpers import drop, lines, records
from tests.live import write_live_config

ORDER = ("POST", "/api/v3/order")
LOOKUP = ("GET", "/api/v3/order")
START = {("GET", "/api/v3/exchangeInfo"): 1, ("GET", "/api/v3/account"): 1}


async def run_live(directory: Path, fake: FakeBinance, intents: list[dict[str, Any]], *,
                   expect: int | None = None, during: Callable[[Daemon], Any] | None = None,
                   before: Callable[[Daemon], Any] | None = None, name: str = "a.jsonl",
                   until: str | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """Run the daemon on ``intents`` until each has an outcome (``until``: until the intent
    of that id has one: a parent whose children are as many as the schedule makes them);
    return the ledger's records."""
    loaded = config.load(write_live_config(directory, fake.url, **overrides))
    daemon = Daemon(loaded)
    ledger = directory / "ledger"
    want = len(intents) if expect is None else expect

    def outcomes() -> int:
        if not ledger.exists():
            return 0
        if until is not None:
            return want if any(r["kind"] == "outcome" and r["body"]["intent_id"] == until
                               for r in records(ledger)) else 0
        return sum(1 for r in records(ledger) if r["kind"] == "outcome")

    async def driver() -> None:
        if before is not None:
            await before(daemon)
        drop(directory / "lakehouse" / "inbox", name, lines(*intents))
        if during is not None:
            await during(daemon)
        while outcomes() < want:
            await anyio.sleep(0.02)
        daemon.stopping.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()
    assert scan(ledger).torn is None
    return records(ledger)


def outcome_of(ledger: list[dict[str, Any]], n: int = 1) -> dict[str, Any]:
    """The one outcome of intent ``n`` in ``ledger`` (fails unless there is exactly one)."""
    intent_id = f"00000000-0000-4000-8000-{n:012d}"
    found: list[dict[str, Any]] = [r["body"] for r in ledger if r["kind"] == "outcome"
                                   and r["body"]["intent_id"] == intent_id]
    assert len(found) == 1, found
    return found[0]


def requests_besides_start(fake: FakeBinance) -> dict[tuple[str, str], int]:
    """The requests ``fake`` served beyond one start-up's (which must all have been made)."""
    left = collections.Counter(fake.requests)
    left.subtract(START)
    assert all(v == 0 for k, v in left.items() if k in START), fake.requests
    return {k: v for k, v in left.items() if v}


def sends(ledger: list[dict[str, Any]], n: int = 1) -> list[dict[str, Any]]:
    """The order_attempt records of intent ``n``, in ledger order."""
    intent_id = f"00000000-0000-4000-8000-{n:012d}"
    return [r["body"] for r in ledger
            if r["kind"] == "order_attempt" and r["body"]["intent_id"] == intent_id]
