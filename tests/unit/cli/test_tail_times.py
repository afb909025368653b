"""``execd ledger tail`` shows wall-clock times as ISO 8601 UTC and logical times as they
are, through the real command in process (``execd.cli.main.main``); ``--json`` prints the
stored lines byte for byte. (As a process: tests/process/test_times_process.py.)

The ledgers are written the way the live plane writes them: the record structs of
model/messages.py, chained by ``LedgerChain`` and made durable by ``SegmentStore``.
"""

from __future__ import annotations

import re
import typing
import uuid
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from msgspec import Raw

import execd.model.messages as messages
from execd.cli.main import main
from execd.cli.tail import WALL_FIELDS
from execd.ledger.record import LedgerChain
from execd.ledger.segments import SegmentStore, list_segments
from execd.model.messages import (
    CancelRecord,
    ExecutionOutcome,
    OrderRecord,
    SendAttemptRecord,
    Source,
    StartRecord,
    encode,
)

INTENT = uuid.UUID("00000000-0000-4000-8000-000000000001")
# 2026-12-01T18:14:13.250Z, and the venue's answers 1.5 s and 3 s later.
WALL = 1_796_148_853_250_000_000
SHOWN = ("2026-12-01T18:14:13.250Z", "2026-12-01T18:14:14.750Z", "2026-12-01T18:14:16.250Z")


def live_ledger(directory: Path, clock: str = "logical") -> Path:
    """A live run's records for one order: start, order, its send, a cancel, its outcome.

    On the logical clock records carry the intent's logical time (7); on the wall clock
    their ``time`` is the wall clock's own (nanoseconds since the epoch).
    """
    at = (7, 7, 7, 7) if clock == "logical" else (WALL - 1_000_000_000, WALL, WALL, WALL)
    order = OrderRecord(intent_id=INTENT, venue="binance", symbol="BTC/USDT", side="buy",
                        client_order_id="x0123", type="limit", amount=Decimal("0.01"),
                        requested_quantity=Decimal("0.01"), intent=Raw(b"{}"),
                        price=Decimal("100"), source=Source("a.jsonl", 1, 10), wall_time=WALL)
    attempt = SendAttemptRecord(intent_id=INTENT, venue="binance", client_order_id="x0123",
                                attempt=1, answer="placed", wall_time=WALL + 1_500_000_000,
                                venue_order_id="42")
    cancel = CancelRecord(intent_id=INTENT, venue="binance", client_order_id="x0123",
                          why="order_timeout_ms", answer="canceled", wall_time=WALL + 3 * 10**9)
    outcome = ExecutionOutcome(execution_id="e", intent_id=INTENT, status="FAILED",
                               filled_quantity=Decimal(0), logical_time=at[3], plane="live",
                               venue="binance", symbol="BTC/USDT", side="buy",
                               requested_quantity=Decimal("0.01"),
                               reason="EXECUTION_EXPIRED", source=Source("a.jsonl", 1, 10),
                               client_order_id="x0123", wall_time=WALL + 3 * 10**9)
    start = StartRecord(version="test", mode="run", clock=clock,  # type: ignore[arg-type]
                        planes={"binance": "live"}, config_sha256="0" * 64)
    store = SegmentStore(directory, 1 << 20)
    store.open()
    chain = LedgerChain()
    store.write_durably(b"".join([
        chain.append("start", at[0], encode(start)), chain.append("order", at[1], encode(order)),
        chain.append("order_attempt", at[2], encode(attempt)),
        chain.append("order_cancel", at[3], encode(cancel)),
        chain.append("outcome", at[3], encode(outcome))]))
    store.close()
    return directory


def tail(capsys: pytest.CaptureFixture[str], ledger: Path, *args: str) -> list[str]:
    assert main(["ledger", "tail", "--ledger", str(ledger), "-n", "0", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_wall_clock_fields_are_iso_utc_and_logical_times_stay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = tail(capsys, live_ledger(tmp_path))
    assert [line.split(" ", 2)[1] for line in shown] == ["t=7"] * 5
    start, order, attempt, cancel, outcome = shown
    assert start == "#1 t=7 start mode=run clock=logical planes=binance:live"
    assert f'"wall_time":"{SHOWN[0]}"' in order and '"client_order_id":"x0123"' in order
    assert f'"wall_time":"{SHOWN[1]}"' in attempt and '"answer":"placed"' in attempt
    assert f'"wall_time":"{SHOWN[2]}"' in cancel
    assert outcome.startswith("#5 t=7 outcome FAILED live binance BTC/USDT buy 0/0.01 ")
    assert outcome.endswith(f"reason=EXECUTION_EXPIRED src=a.jsonl:1 wall={SHOWN[2]}")
    # No wall-clock time is left as nanoseconds.
    assert not re.search(r"\d{19}", "\n".join(shown))


def test_on_the_wall_clock_the_records_time_is_a_wall_clock_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = tail(capsys, live_ledger(tmp_path, "wall"))
    assert shown[0] == "#1 t=2026-12-01T18:14:12.250Z start mode=run clock=wall " \
                       "planes=binance:live"
    assert all(line.split(" ", 2)[1] == f"t={SHOWN[0]}" for line in shown[1:])
    # The clock is the run's, read from its start record even when a filter hides it.
    assert tail(capsys, tmp_path, "--kind", "outcome")[0].startswith(f"#5 t={SHOWN[0]} outcome")


def test_json_keeps_the_stored_lines_byte_for_byte(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for clock in ("logical", "wall"):
        ledger = live_ledger(tmp_path / clock, clock)
        stored = b"".join(p.read_bytes() for p in list_segments(ledger))
        assert "\n".join(tail(capsys, ledger, "--json")).encode() + b"\n" == stored


def test_a_wall_field_that_is_not_an_integer_is_shown_as_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tail does not verify: a body may hold what no writer wrote, and still prints."""
    store = SegmentStore(tmp_path, 1 << 20)
    store.open()
    chain = LedgerChain()
    store.write_durably(chain.append("order_cancel", 3, msgspec.json.encode(
        {"wall_time": "soon", "why": "stopping"})) + chain.append(
        "order_cancel", 3, msgspec.json.encode({"wall_time": 10**30})))
    store.close()
    first, second = tail(capsys, tmp_path)
    assert first == '#1 t=3 order_cancel {"wall_time":"soon","why":"stopping"}'
    assert second == f'#2 t=3 order_cancel {{"wall_time":"{10**30} ns (not a representable ' \
                     'time)"}'


def test_every_wall_clock_field_of_a_record_is_shown_as_one() -> None:
    """A record struct that gains a wall-clock field must have tail show it as a time."""
    wall = set()
    for value in vars(messages).values():
        if isinstance(value, type) and issubclass(value, msgspec.Struct):
            hints = typing.get_type_hints(value)
            wall |= {name for name in value.__struct_fields__ if "wall" in name
                     and int in (hints[name], *typing.get_args(hints[name]))}
    assert wall == WALL_FIELDS
