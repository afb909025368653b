"""The snapshot format: a fold's state round-trips through its bytes, verbatim."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from execd.config import schema as config
from execd.ledger.fold import Fold
from execd.ledger.scan import scan
from execd.ledger.snapshot import (
    ChainEnd,
    decode_snapshot,
    encode_snapshot,
    fold_key,
    restore,
    take,
)
from execd.model.messages import SendAttemptRecord
from execd.sentinel.risk import Risk
from tests.helpers import intent, lines, replay, write_config
from tests.pipeline.test_risk_pipeline import LIMITS, lakehouse, risky_inputs
from tests.unit.ledger.test_recovery import order, outcome, write


def folded(ledger: Path, cfg: config.Config) -> tuple[Fold, ChainEnd]:
    fold = Fold(Risk(cfg))
    result = scan(ledger, fold.observe)
    size = sum(p.stat().st_size for p in ledger.glob("segment-*.jsonl"))
    return fold, ChainEnd(result.next_seq - 1, result.last_hash, result.records,
                          result.last_time, size)


def round_trip(fold: Fold, end: ChainEnd, cfg: config.Config) -> tuple[bytes, Fold]:
    data = encode_snapshot(take(fold, end, fold_key(cfg)))
    again = Fold(Risk(cfg))
    restore(decode_snapshot(data), again)
    return data, again


async def test_a_risky_run_s_fold_round_trips_byte_for_byte(tmp_path: Path) -> None:
    """Positions, marks, the running gross, pacing deques and cooldowns, trading state, file
    tables and ids: what a snapshot restores encodes to the same bytes again.
    """
    inputs = risky_inputs(tmp_path)
    extra = inputs[0].read_bytes() + lines(intent(900, quantity="0.50"))
    inputs[0].write_bytes(extra)
    lakehouse(tmp_path, regime="NORMAL")
    ledger = await replay(tmp_path, inputs, extra=LIMITS)
    cfg = config.load(tmp_path / "execd.toml").config
    fold, end = folded(ledger, cfg)
    data, again = round_trip(fold, end, cfg)
    assert encode_snapshot(take(again, end, fold_key(cfg))) == data
    risk, back = fold.risk, again.risk
    assert risk is not None and back is not None
    book = risk.book.venue("binance")
    assert book.positions and book.gross == back.book.venue("binance").gross
    for symbol, position in book.positions.items():
        other = back.book.venue("binance").positions[symbol]
        # Verbatim: the same digits and exponent, not merely an equal number.
        assert str(position.filled) == str(other.filled)
        assert str(position.mark) == str(other.mark)
        assert str(position.counted) == str(other.counted)
    rate = risk.venues["binance"].rate
    assert rate is not None and rate.sent and back.venues["binance"].rate is not None
    assert list(back.venues["binance"].rate.sent) == list(rate.sent)
    assert back.venues["binance"].rate.sent.maxlen == rate.sent.maxlen
    cooldown, cooled = risk.venues["stubfail"].cooldown, back.venues["stubfail"].cooldown
    assert cooldown is not None and cooled is not None and cooldown.until is not None
    assert (list(cooled.failures), cooled.until) == (list(cooldown.failures), cooldown.until)
    assert again.progress == fold.progress
    # The consumed files are the file index's (ledger/index/files.py), as the ids are.
    assert fold.done and again.done == {} and again.rejected == set() == again.changed
    assert again.planes == fold.planes and again.clock == fold.clock
    assert len(fold.seen) > 0 and len(again.seen) == 0  # the ids are the index's


def test_open_orders_and_their_sends_round_trip(tmp_path: Path) -> None:
    """A live order without an outcome, and its last send, come back exactly (the order's
    intent bytes included), in the fold's order."""
    second = msgspec.structs.replace(order(), intent_id=uuid.UUID(int=2), client_order_id="x2",
                                     amount=Decimal("0.0100"))
    send = SendAttemptRecord(intent_id=uuid.UUID(int=2), venue="binance",
                             client_order_id="x2", attempt=1, answer="unknown", wall_time=7)
    write(tmp_path, ("order", second), ("order", order()), ("order_attempt", send))
    cfg = config.load(write_config(tmp_path / "cfg")).config
    fold, end = folded(tmp_path, cfg)
    _data, again = round_trip(fold, end, cfg)
    assert list(again.unresolved.items()) == list(fold.unresolved.items())
    assert str(again.unresolved[uuid.UUID(int=2)][0].amount) == "0.0100"
    assert again.last_sends == {"x2": send}


def test_the_fold_key_follows_what_the_fold_reads(tmp_path: Path) -> None:
    """Pacing limits and venues change the key; settings the fold never reads do not."""
    base = config.load(write_config(tmp_path / "a")).config
    quiet = config.load(write_config(tmp_path / "b", level="error")).config
    paced = config.load(write_config(tmp_path / "c", extra=LIMITS)).config
    assert fold_key(base) == fold_key(quiet)
    assert fold_key(base) != fold_key(paced)


def test_a_snapshot_holds_no_ids_and_names_the_index_it_needs(tmp_path: Path) -> None:
    """The ids grow with history, so they are the on-disk index's: a snapshot through X
    holds none and says the index must cover X; restoring one leaves the fold's ids alone."""
    write(tmp_path, ("order", order()))
    cfg = config.load(write_config(tmp_path / "cfg")).config
    fold, end = folded(tmp_path, cfg)
    assert len(fold.seen) == 1
    data = encode_snapshot(take(fold, end, fold_key(cfg)))
    raw = msgspec.msgpack.decode(data)
    assert "seen" not in raw and raw["index_through"] == end.through_seq == 1
    again = Fold(Risk(cfg))
    restore(decode_snapshot(data), again)
    assert len(again.seen) == 0


@pytest.mark.parametrize("cut", [0, 1, 40, -1])
def test_damaged_bytes_are_no_snapshot(tmp_path: Path, cut: int) -> None:
    write(tmp_path, ("order", order()))
    cfg = config.load(write_config(tmp_path / "cfg")).config
    fold, end = folded(tmp_path, cfg)
    data = encode_snapshot(take(fold, end, fold_key(cfg)))
    with pytest.raises(msgspec.DecodeError):
        decode_snapshot(data[:cut])


@pytest.mark.parametrize("version", [1, 2, 3])
def test_another_version_is_no_snapshot(tmp_path: Path, version: int) -> None:
    """Version 2 held the whole order-rate deque: start-up folds the whole ledger instead."""
    write(tmp_path, ("order", order()))
    cfg = config.load(write_config(tmp_path / "cfg")).config
    fold, end = folded(tmp_path, cfg)
    raw = msgspec.msgpack.decode(encode_snapshot(take(fold, end, fold_key(cfg))))
    raw["version"] = version
    with pytest.raises(msgspec.ValidationError):
        decode_snapshot(msgspec.msgpack.encode(raw))


def test_the_order_rate_is_stored_pruned_whatever_max_orders(tmp_path: Path) -> None:
    """With max_orders = 1e9 (the bench config's), a snapshot holds the orders of the last
    rate_window, not every order ever sent, and restores to a rate that decides as the
    full fold's does."""
    # 5,000 fills, ten at each time 0..499; the window is 10 units.
    write(tmp_path, *(("outcome", outcome(plane="paper", intent_id=uuid.UUID(int=n + 1),
                                          logical_time=n // 10)) for n in range(5000)))
    cfg = config.load(write_config(tmp_path / "cfg", extra=(
        "[risk.limits]\nmax_orders = 1000000000\nrate_window = 10\n"))).config
    fold, end = folded(tmp_path, cfg)
    data, again = round_trip(fold, end, cfg)
    snapshot = decode_snapshot(data)
    assert snapshot.risk is not None
    venue = dict(snapshot.risk.venues)["binance"]
    assert venue.rate == [t for t in range(490, 500) for _ in range(10)]
    assert again.risk is not None and fold.risk is not None
    back, rate = again.risk.venues["binance"].rate, fold.risk.venues["binance"].rate
    assert back is not None and rate is not None
    for now in (499, 500, 508, 509, 510):
        assert back.refusal(now) == rate.refusal(now)


def test_routes_in_flight_and_handoffs_fold_and_round_trip(tmp_path: Path) -> None:
    """A routed live order's outcome that hands it on leaves a handoff until the route
    record that follows it; a snapshot holds both states (README, "Routes")."""
    from execd.model.messages import ExecutionOutcome, RouteRecord, StartRecord
    from execd.sentinel.routes import handoff_id

    cfg = config.load(write_config(tmp_path)).config
    fold = Fold(Risk(cfg))
    first, second = uuid.UUID(int=1), uuid.UUID(int=2)
    line = b'{"kind":"intent","route":"btc","symbol":"BTC/USDT","quantity":"3","source_run":"r"}'
    fold.observe_body("start", 1, 0, StartRecord("v", "run", "logical",
                                                 {"stubfail": "live"}, "x"))
    for n, intent_id in ((2, first), (4, second)):
        fold.observe_body("route", n, 0, RouteRecord(intent_id, "btc", [], "stubfail",
                                                     "BTC/USDT"))
    fold.observe_body("outcome", 3, 0, ExecutionOutcome(
        "e", first, "FAILED", Decimal(1), 0, "live", "stubfail", "BTC/USDT", "buy",
        Decimal(3), reason="EXECUTION_NOT_AVAILABLE", intent=msgspec.Raw(line)))
    assert list(fold.routes.open) == [second]
    [handoff] = fold.routes.handoffs()
    assert (handoff.intent_id, handoff.venue, handoff.left, handoff.item.intent.route) == (
        first, "stubfail", Decimal(2), "btc")
    end = ChainEnd(4, "0" * 64, 4, 0, 0)
    data, again = round_trip(fold, end, cfg)
    assert encode_snapshot(take(again, end, fold_key(cfg))) == data
    assert again.routes.handed == fold.routes.handed and again.routes.open == fold.routes.open
    fold.observe_body("route", 5, 0, RouteRecord(handoff_id(first), "btc", [], "binance",
                                                 "BTC/USDT", first, Decimal(2)))
    # Its route record alone may be all a stop left: handed on once its rest has an
    # order or an outcome.
    assert len(fold.routes.handoffs()) == 1
    fold.observe_body("outcome", 6, 0, ExecutionOutcome(
        "e2", handoff_id(first), "REJECTED", Decimal(0), 0, "live", "binance", "BTC/USDT",
        "buy", Decimal(2), reason="ROUTE_UNAVAILABLE"))
    assert fold.routes.handoffs() == [] and fold.routes.awaiting == {}
