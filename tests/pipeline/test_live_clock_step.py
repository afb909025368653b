"""A step of the system clock (NTP, a resumed VM) changes no live order's fate.

The daemon runs in-process against the fake Binance; only execd's wall clock steps
(its clock module reads the time through a shim), as when the host's clock is set
while execd waits out an acceptance window. Windows, waits and deadlines run on the
monotonic clock, so the outcome is the one an unstepped run gives; the step shows
only in the records' ``wall_time``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import execd.model.clock as clock_module
from tests.live import fake_exchange, live_intent
from tests.live_run import outcome_of, run_live

POST = ("POST", "/api/v3/order")


class SteppedTime:
    """``time`` as execd's clock module sees it, with the wall clock offset by ``step``."""

    def __init__(self) -> None:
        self.offset = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time_ns(self) -> int:
        return time.time_ns() + self.offset


@pytest.fixture
def stepped(monkeypatch: pytest.MonkeyPatch) -> SteppedTime:
    shim = SteppedTime()
    monkeypatch.setattr(clock_module, "time", shim)
    return shim


async def test_a_backward_step_during_the_window_still_gives_the_order_its_outcome(
        tmp_path: Path, stepped: SteppedTime) -> None:
    """A wall clock set back while the window is waited out never leaves a running
    order without an outcome (in doubt, as if a stop had cut the wait)."""
    fake = fake_exchange()
    await fake.start()
    fake.inject("503_json")

    async def during(daemon: Any) -> None:
        while fake.requests[POST] == 0:
            await anyio.sleep(0.005)
        await anyio.sleep(0.5)
        stepped.offset -= 100_000_000

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1)], during=during,
                                acceptance_window_ms=1000)
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == ("FAILED", "EXECUTION_NOT_SENT")
    assert fake.requests[POST] == 1


async def test_a_forward_step_never_trusts_no_such_order_before_the_window(
        tmp_path: Path, stepped: SteppedTime) -> None:
    """A wall clock set forward after a send never makes "no such order" trusted early:
    the order the venue places late is found, and never sent twice."""
    fake = fake_exchange()
    await fake.start()
    fake.inject("503_then_placed", delay=0.7)

    async def during(daemon: Any) -> None:
        while fake.requests[POST] == 0:
            await anyio.sleep(0.002)
        stepped.offset += 1_500_000_000

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1)], during=during,
                                acceptance_window_ms=2000, send_attempts=2)
    finally:
        await fake.stop()
    assert outcome_of(ledger)["status"] == "FILLED"
    assert fake.requests[POST] == 1
    assert len(fake.orders) == 1
