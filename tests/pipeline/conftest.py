"""Fixtures of the pipeline tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live import fake_exchange


@pytest.fixture
async def fake() -> Any:
    """A fake Binance on 127.0.0.1 (tests/fakes/binance.py), with ample balances."""
    exchange = fake_exchange()
    await exchange.start()
    yield exchange
    await exchange.stop()
