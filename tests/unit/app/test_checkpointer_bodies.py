"""The checkpointer folds a commit's Structs, start-up the bytes written from them: over
generated records of every kind the fold reads, the snapshot (and the ids) are the same.

The pipeline makes only some of these records (tests/pipeline/test_fold_bodies.py runs it);
here each kind comes in any order and any combination, including what only an older
ledger or a rare path holds: an order record without ``wall_time`` under the wall clock,
times older than the newest (LATE records), an outcome that closes a live order or only
shares its intent id, base-asset fees, whole-file refusals of finished files.
"""

from __future__ import annotations

import tempfile
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import Raw

from execd.app.checkpointer import Checkpointer
from execd.config import schema as config
from execd.ledger import checkpoints
from execd.ledger.fold import Fold
from execd.ledger.index.ids import IdIndex
from execd.ledger.record import GENESIS, LedgerChain, record_decoder
from execd.ledger.snapshot import ChainEnd, encode_snapshot, fold_key, take
from execd.ledger.writer import Commit
from execd.model import reasons
from execd.model.messages import (
    LATE,
    CheckpointRecord,
    Entry,
    ExecutionOutcome,
    Fee,
    InputFileRecord,
    OrderRecord,
    SafetySellRecord,
    SendAttemptRecord,
    Source,
    StartRecord,
    StopRecord,
    TickRecord,
    TradingStateRecord,
    encode,
)
from execd.sentinel.risk import Risk
from execd.service import logs
from tests.helpers import write_config

LIMITS = ('[risk.limits]\nmax_orders = 3\nrate_window = 10\n'
          '[venues.stubfail.limits]\nfailure_limit = 2\nfailure_window = 50\ncooldown = 30\n')
IDS = [uuid.UUID(int=n + 1) for n in range(6)]
FILES = ["a.jsonl", "b.jsonl"]
# Trailing zeros and exponents: a Decimal's str keeps them, and so must the fold.
decimals = st.sampled_from(["0", "-0", "0.5", "0.50", "2.500", "1E+2", "3", "0.00001", "12.345"])
times = st.integers(0, 200)
sources = st.none() | st.builds(Source, st.sampled_from(FILES), st.integers(0, 9),
                                st.integers(0, 999))
# Mostly venues the config knows, and fields an outcome that reached a venue has: those
# are the outcomes that move positions and pacing.
venues = st.sampled_from(["binance", "alpaca", "stubfail", "stubfail", "nowhere"])
sides = st.sampled_from(["buy", "sell"])


def coid(n: int) -> str:
    return f"coid-{n}"


outcomes = st.builds(
    lambda n, status, filled, venue, symbol, side, price, reason, source, closes, fees,
    plane, t: ExecutionOutcome(
        execution_id=f"x{n}", intent_id=IDS[n], status=status, filled_quantity=Decimal(filled),
        logical_time=t, plane=plane, venue=venue, symbol=symbol, side=side,
        average_price=None if price is None else Decimal(price), reason=reason,
        source=source, client_order_id=coid(n) if closes else None,
        fees=tuple(Fee(Decimal(cost), currency) for cost, currency in fees)),
    st.integers(0, 5),
    st.sampled_from(["FILLED", "FILLED", "PARTIALLY_FILLED", "FAILED", "FAILED", "REJECTED",
                     "SKIPPED", "QUARANTINED"]),
    decimals, st.sampled_from([None, "binance", "alpaca", "stubfail", "stubfail", "nowhere"]),
    st.sampled_from([None, "BTC/USDT", "BTC/USDT", "ETH/USDT:USDT"]),
    st.sampled_from([None, "buy", "sell", "sell"]), st.sampled_from([None, "3", "3.10", "0.5"]),
    st.sampled_from([None, reasons.EXECUTION_NOT_AVAILABLE, reasons.EXECUTION_REJECTED,
                     reasons.INTENT_DUPLICATE, *sorted(reasons.FILE_LEVEL)]),
    sources, st.booleans(), st.lists(st.tuples(decimals, st.sampled_from(["BTC", "USDT"])),
                                     max_size=2),
    st.none() | st.sampled_from(["paper", "live"]), times)
orders = st.builds(
    lambda n, venue, side, amount, wall, source: OrderRecord(
        intent_id=IDS[n], venue=venue, symbol="BTC/USDT", side=side, client_order_id=coid(n),
        type="market", amount=Decimal(amount), requested_quantity=Decimal(amount),
        intent=Raw(b'{"n": %d}' % n), source=source, wall_time=wall),
    st.integers(0, 5), venues, sides, decimals, st.none() | st.integers(1, 10**18), sources)
attempts = st.builds(
    lambda n, other, attempt, answer: SendAttemptRecord(
        intent_id=IDS[n], venue="stubfail", client_order_id=coid(other), attempt=attempt,
        answer=answer, wall_time=attempt * 1000),
    st.integers(0, 5), st.integers(0, 5), st.integers(1, 3),
    st.sampled_from(["placed", "unknown", "rejected"]))
outcome = st.tuples(st.just("outcome"), outcomes)
# Outcomes are most records, as in a ledger.
bodies: st.SearchStrategy[tuple[str, msgspec.Struct]] = st.one_of(
    outcome, outcome, outcome, outcome,
    st.tuples(st.just("order"), orders),
    st.tuples(st.just("order_attempt"), attempts),
    st.tuples(st.just("tick"), st.builds(TickRecord, times, sources)),
    st.tuples(st.just("input_file"), st.builds(
        InputFileRecord, st.sampled_from(FILES), st.integers(0, 999),
        st.none() | st.just("ab" * 32), st.integers(0, 9), st.sampled_from(["archive", "reject"]))),
    st.tuples(st.just("trading_state"), st.builds(
        TradingStateRecord, st.sampled_from(["ACTIVE", "REDUCING", "HALTED"]),
        st.just("ACTIVE"), st.sampled_from(["incident", "done"]), st.just("ops"))),
    st.tuples(st.just("safety_sell"), st.just(SafetySellRecord("binance", "r", "ops", 1))),
    st.tuples(st.just("stop"), st.just(StopRecord("not read"))),
    st.tuples(st.just("checkpoint"), st.just(CheckpointRecord(1, "ab" * 32, None, None, None,
                                                              skipped="not read"))),
)


def commits(chain: LedgerChain, entries: list[Entry], cuts: list[int]) -> list[Commit]:
    """``entries`` chained (as the writer's encoder does) and cut into commits."""
    out, start = [], 0
    for end in [*sorted(set(cuts)), len(entries)]:
        part = entries[start:end]
        if part:
            data = b"".join(chain.append(e.kind, e.time, encode(e.body)) for e in part)
            out.append(Commit(data, part, chain.next_seq - 1, chain.prev_hash))
        start = end
    return out


async def shadow_snapshot(ledger: Path, fold: Fold, start: bytes, batch: list[Commit],
                          key: str) -> bytes:
    """What a real Checkpointer writes after folding ``start`` (a line) and ``batch``."""
    (ledger / checkpoints.DIRECTORY).mkdir(parents=True)
    taker = Checkpointer(ledger, fold, ChainEnd(0, GENESIS, 0, 0, 0), key=key, every=10**9,
                         kept=1000, log=logs.get("ledger"))
    taker.observe_line(start)
    last = batch[-1] if batch else None
    async with anyio.create_task_group() as tg:
        tg.start_soon(taker.run)
        for commit in batch:
            taker.durable(commit)
        seq, head = (last.last_seq, last.last_hash) if last else (1, "")
        if last is None:
            head = record_decoder.decode(start[:-1]).hash
        record = await taker.take(seq, head)
        taker.close()
    assert record.snapshot is not None, record.skipped
    return (ledger / checkpoints.DIRECTORY / record.snapshot).read_bytes()


def full_fold(fold: Fold, data: bytes, key: str) -> bytes:
    """The snapshot a fold of the bytes ``data`` gives, as start-up folds them."""
    last_time, records = 0, data.split(b"\n")[:-1]
    for line in records:
        record = record_decoder.decode(line)
        fold.observe(record)
        last_time = max(last_time, record.time)
    end = ChainEnd(record.seq, record.hash, len(records), last_time, len(data))
    return encode_snapshot(take(fold, end, key))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> config.Config:
    """Venues of both planes, an order rate and a failure cooldown (the pacing folded)."""
    return config.load(write_config(tmp_path_factory.mktemp("cfg"), extra=LIMITS)).config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["logical", "wall"]),
       st.lists(st.tuples(bodies, times, st.booleans()), min_size=1, max_size=40),
       st.lists(st.integers(0, 40), max_size=6))
def test_folding_a_commit_s_structs_snapshots_what_folding_its_bytes_does(
        cfg: config.Config, clock: Any, drawn: list[tuple[tuple[str, msgspec.Struct], int, bool]],
        cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        key = fold_key(cfg)
        chain = LedgerChain()
        start = chain.append("start", 0, encode(StartRecord(
            "1", "run", clock, {"binance": "paper", "stubfail": "live"}, "cd" * 32)))
        entries = [Entry(LATE if late else n, kind, t, body)  # type: ignore[arg-type]
                   for n, ((kind, body), t, late) in enumerate(drawn)]
        batch = commits(chain, entries, cuts)
        shadow = Fold(Risk(cfg), IdIndex())
        written = anyio.run(shadow_snapshot, directory / "ledger", shadow, start, batch, key)
        disk = Fold(Risk(cfg), IdIndex())
        assert written == full_fold(disk, start + b"".join(c.data for c in batch), key)
        assert isinstance(shadow.seen, IdIndex) and isinstance(disk.seen, IdIndex)
        assert set(shadow.seen.recent) == set(disk.seen.recent)
