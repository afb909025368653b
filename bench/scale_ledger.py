"""Paper ledgers of millions of records for ``bench/scale.py``, built fast and cached.

Building one through the daemon costs about 35 µs a record (msgspec Structs, UUIDv5
ids), so 10M records would take six minutes; here each body is formatted from a byte
template (ids from a counter) and chained with the real ``LedgerChain.append``. Every
template is checked once, at the start of a build, against ``encode()`` of the real
record Struct for the same values, so the ledger holds the bytes the daemon writes.

Shape, as ``execd run`` leaves it after months of paper input: per run of up to 1M
records a ``start`` (the bench config's planes) and a ``stop``; between them input
files of 10,000 lines, each a ``context``, a ``tick`` record for every 100th line
(the file's clock) and an ``outcome`` for every other line, then its ``input_file``.
Intents alternate venues and buy/sell pairs of the same quantity, so positions stay
bounded. Segments are split as ``SegmentStore`` splits them (same names, a new one
before a record that would pass ``segment_bytes``), written with buffered writes and
fsynced once at the end, and ``head.json`` names the last record.

The result is cached under ``var/bench-scale/`` in a directory named by the record
count and a digest of this file and the format version, so a rerun does not rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from msgspec import Raw

from execd import __version__
from execd.ledger import head
from execd.ledger.record import LedgerChain
from execd.ledger.segments import fsync_dir, segment_name
from execd.model.messages import (
    SCHEMA_VERSION,
    ContextRecord,
    ExecutionOutcome,
    InputFileRecord,
    Source,
    StartRecord,
    StopRecord,
    TickRecord,
    encode,
)

RUN_RECORDS = 1_000_000  # records between a start and its stop
FILE_LINES = 10_000  # lines per input file
TICK_EVERY = 100  # every 100th line of a file is a tick
WRITE_CHUNK = 8 << 20  # bytes buffered before a write

LINE = (b'{"kind":"intent","intent_id":"00000000-0000-4000-8000-%012x",'
        b'"source_run":"bench-run","venue":"%s","symbol":"BTC/USDT","side":"%s",'
        b'"quantity":"0.%d","order_type":"limit","limit_price":"64250.5",'
        b'"reference_price":"64200","urgency":"medium","priority":50}')
TICK_LINE = b'{"kind":"tick","time":%d}'
OUTCOME = (b'{"execution_id":"00000000-0000-5000-8000-%012x",'
           b'"intent_id":"00000000-0000-4000-8000-%012x","status":"FILLED",'
           b'"filled_quantity":"0.%d","logical_time":%d,"plane":"paper","venue":"%s",'
           b'"symbol":"BTC/USDT","side":"%s","requested_quantity":"0.%d",'
           b'"average_price":"64250.5","source":["%s",%d,%d],"intent":%s}')
TICK = b'{"time":%d,"source":["%s",%d,%d]}'
VENUES = (b"alpaca", b"binance")
SIDES = (b"buy", b"sell")


def intent_id(n: int) -> str:
    """The id of the bench's ``n``-th intent (as ``LINE`` writes it)."""
    return f"00000000-0000-4000-8000-{n:012x}"


def _intent(n: int) -> tuple[bytes, bytes, int]:
    """Venue, side and quantity digits of intent ``n``: a buy, then a sell of the same."""
    return VENUES[n % 2], SIDES[(n >> 1) % 2], (n >> 2) % 97 + 1


def check_templates() -> None:
    """Each template equals the real encoding of the same record (AssertionError if not)."""
    for n in (0, 1, 2, 3, 4 * 97 + 9, 123_456_789):
        venue, side, q = _intent(n)
        line = LINE % (n, venue, side, q)
        source = Source("00000042.jsonl", 1234, 567_890)
        real = encode(ExecutionOutcome(
            execution_id=f"00000000-0000-5000-8000-{n:012x}", intent_id=uuid.UUID(intent_id(n)),
            status="FILLED", filled_quantity=Decimal(f"0.{q}"), logical_time=777,
            plane="paper", venue=venue.decode(), symbol="BTC/USDT", side=side.decode(),  # type: ignore[arg-type]
            requested_quantity=Decimal(f"0.{q}"), average_price=Decimal("64250.5"),
            source=source, intent=Raw(line)))
        mine = OUTCOME % (n, n, q, 777, venue, side, q, b"00000042.jsonl", 1234, 567_890, line)
        assert mine == real, (mine, real)
        assert json.loads(line)["quantity"] == f"0.{q}"
    real = encode(TickRecord(777, Source("00000042.jsonl", 1, 25)))
    assert real == TICK % (777, b"00000042.jsonl", 1, 25), real


def _context() -> bytes:
    """The context of the bench lakehouse: one registered run, nothing else."""
    runs = hashlib.sha256(b'{"run_id":"bench-run"}\n').hexdigest()
    return encode(ContextRecord(runs=1, runs_sha256=runs, regime=None, prices=0,
                                prices_sha256=None, overrides=0, overrides_sha256=None,
                                plans=0, plans_sha256=None))


def _file_sizes(records: int) -> Iterator[int]:
    """Lines of each input file of a run of ``records`` (start and stop included);
    0 stands for one record of a tick sent through the control socket, which fills
    a remainder too small for a file."""
    body = records - 2
    while body >= FILE_LINES + 2:
        yield FILE_LINES
        body -= FILE_LINES + 2
    if body >= 3:
        yield body - 2
    else:
        yield from (0 for _ in range(body))


def records(total: int, start: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(kind, time, body) of a ledger of ``total`` records."""
    context = _context()
    stop = encode(StopRecord("signal SIGTERM"))
    n = 0  # intents so far
    clock = 0  # logical time: the line count before each tick
    number = 0  # input files so far
    remaining = total
    while remaining:
        run = min(RUN_RECORDS, remaining)
        remaining -= run
        if run == 1:
            yield "tick", clock, encode(TickRecord(clock, None, "ctl"))
            continue
        yield "start", clock, start
        for lines in _file_sizes(run):
            if lines == 0:
                yield "tick", clock, encode(TickRecord(clock, None, "ctl"))
                continue
            number += 1
            name = b"%08d.jsonl" % number
            digest = hashlib.sha256()
            offset = 0
            yield "context", clock, context
            for index in range(1, lines + 1):
                if index % TICK_EVERY == 1:
                    clock += TICK_EVERY
                    line = TICK_LINE % clock
                    offset += len(line) + 1
                    yield "tick", clock, TICK % (clock, name, index, offset)
                else:
                    venue, side, q = _intent(n)
                    line = LINE % (n, venue, side, q)
                    offset += len(line) + 1
                    yield "outcome", clock, OUTCOME % (n, n, q, clock, venue, side, q, name,
                                                       index, offset, line)
                    n += 1
                digest.update(line)
                digest.update(b"\n")
            yield "input_file", clock, encode(InputFileRecord(
                name.decode(), offset, digest.hexdigest(), lines))
        yield "stop", clock, stop


def start_body(config: Any) -> bytes:
    """The start record ``execd run`` writes under ``config`` (a loaded Config)."""
    from execd.config.digest import outcome_settings_sha256

    return encode(StartRecord(__version__, "run", config.clock.kind, config.planes(),
                              outcome_settings_sha256(config)))


def cache_key(total: int, segment_bytes: int) -> str:
    """The cache directory's name: the size and a digest of what makes the ledger."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(b"%d %d %d" % (total, segment_bytes, SCHEMA_VERSION))
    return f"{total}-{digest.hexdigest()[:12]}"


def build(cache: Path, total: int, config: Any) -> Path:
    """The cached ledger directory of ``total`` records, built first if missing.

    ``meta.json`` beside the ledger says what it holds (records, intents, the last
    head, an intent id near the end for ``tail --intent``).
    """
    segment_bytes = config.ledger.segment_bytes
    key = cache_key(total, segment_bytes)
    done = cache / key
    if (done / "meta.json").exists():
        return done
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(f"{total}-*"):
        print(f"  removing the stale cache {stale.name}", flush=True)
        shutil.rmtree(stale)
    check_templates()
    partial = cache / f".building-{key}"
    shutil.rmtree(partial, ignore_errors=True)
    ledger = partial / "ledger"
    ledger.mkdir(parents=True)
    began = time.perf_counter()
    chain = LedgerChain()
    meta = _write(ledger, chain, records(total, start_body(config)), segment_bytes)
    head.write(ledger, head.Head(chain.next_seq - 1, chain.prev_hash))
    meta.update(seconds=round(time.perf_counter() - began, 1), head=f"{chain.next_seq - 1}:"
                f"{chain.prev_hash}", tail_intent=intent_id(max(0, meta["intents"] - 100)))
    (partial / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(partial, done)
    fsync_dir(cache)
    return done


def _write(ledger: Path, chain: LedgerChain, source: Iterator[tuple[str, int, bytes]],
           segment_bytes: int) -> dict[str, Any]:
    """Chain and write every record, rotating segments as ``SegmentStore`` does."""
    append = chain.append
    number, size, written, intents = 1, 0, 0, 0
    handles = [open(ledger / segment_name(1), "wb", buffering=0)]  # noqa: SIM115
    pending: list[bytes] = []
    buffered = 0
    for kind, at, body in source:
        line = append(kind, at, body)
        if size and size + len(line) > segment_bytes:
            handles[-1].write(b"".join(pending))
            pending, buffered, size = [], 0, 0
            number += 1
            handles.append(open(ledger / segment_name(number), "wb", buffering=0))  # noqa: SIM115
        pending.append(line)
        size += len(line)
        buffered += len(line)
        written += len(line)
        intents += kind == "outcome"
        if buffered >= WRITE_CHUNK:
            handles[-1].write(b"".join(pending))
            pending, buffered = [], 0
    handles[-1].write(b"".join(pending))
    for handle in handles:
        os.fsync(handle.fileno())
        handle.close()
    fsync_dir(ledger)
    return {"records": chain.next_seq - 1, "intents": intents, "segments": number,
            "bytes": written}
