"""Checkpoints in the running pipeline: at fixed places, each snapshot the fold of its prefix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from execd.config import schema as config
from execd.ledger import checkpoints
from execd.ledger.fold import Fold
from execd.ledger.record import Record, record_decoder
from execd.ledger.segments import list_segments
from execd.ledger.snapshot import ChainEnd, encode_snapshot, fold_key, take
from execd.sentinel.risk import Risk
from tests.helpers import ledger_bytes, replay
from tests.pipeline.test_risk_pipeline import LIMITS, lakehouse, risky_inputs


def ledger_options(every: int, segment_bytes: int = 256 << 20) -> str:
    """The [ledger] keys after segment_bytes (write_config's table has no slot for them)."""
    return f"{segment_bytes}\ncheckpoint_records = {every}\ncheckpoints_kept = 1000"


def lines_of(ledger: Path) -> list[bytes]:
    """Every record line of the ledger, newline included, in order across segments."""
    return [line + b"\n" for path in list_segments(ledger)
            for line in path.read_bytes().split(b"\n")[:-1]]


def full_fold(lines: list[bytes], through: int, cfg: config.Config) -> bytes:
    """The encoded snapshot a fresh full fold of records 1..``through`` gives."""
    fold = Fold(Risk(cfg))
    last_time = size = 0
    record: Record | None = None
    for line in lines[:through]:
        record = record_decoder.decode(line[:-1])
        fold.observe(record)
        last_time = max(last_time, record.time)
        size += len(line)
    assert record is not None and record.seq == through
    return encode_snapshot(take(fold, ChainEnd(through, record.hash, through, last_time, size),
                                fold_key(cfg)))


async def test_checkpoints_sit_at_fixed_places_and_replays_stay_byte_identical(
        tmp_path: Path) -> None:
    """Whatever the queue, batch and commit sizes (and segment rotations), the checkpoint
    records, and so the whole ledger, are the same bytes; each follows a multiple of
    checkpoint_records and names its snapshot's sha256 and size."""
    inputs = risky_inputs(tmp_path)
    ledgers = []
    for index, sizes in enumerate([{"q": 1, "items": 1, "commit_records": 1},
                                   {"q": 64, "items": 4096, "commit_records": 65536},
                                   {"q": 2, "items": 3, "commit_records": 5}]):
        run = tmp_path / f"run{index}"
        lakehouse(run, regime="CRISIS")
        segment = 4096 if index == 2 else 256 << 20
        ledgers.append(await replay(run, inputs, extra=LIMITS,
                                    segment_bytes=ledger_options(7, segment), **sizes))
    assert ledger_bytes(ledgers[0]) == ledger_bytes(ledgers[1]) == ledger_bytes(ledgers[2])
    assert len(list_segments(ledgers[2])) > 1
    found = [record_decoder.decode(line[:-1]) for line in lines_of(ledgers[2])]
    marks = [r for r in found if r.kind == "checkpoint"]
    assert [r.seq for r in marks] == [x + 1 for x in range(7, found[-1].seq - 1, 7)]
    for mark in marks:
        body = msgspec.json.decode(mark.body)
        data = (ledgers[2] / checkpoints.DIRECTORY / body["snapshot"]).read_bytes()
        assert body["through_seq"] == mark.seq - 1 and body["head_hash"] == mark.prev
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert body["size"] == len(data)


async def test_each_snapshot_is_the_full_fold_of_its_prefix(tmp_path: Path) -> None:
    """The shadow fold kept while running writes exactly what folding the ledger from its
    first record to X gives, risk state included."""
    inputs = risky_inputs(tmp_path)
    lakehouse(tmp_path)
    ledger = await replay(tmp_path, inputs, extra=LIMITS, segment_bytes=ledger_options(10),
                          items=4, commit_records=3)
    cfg = config.load(tmp_path / "execd.toml").config
    lines = lines_of(ledger)
    files = checkpoints.listed(ledger)
    assert len(files) > 10
    for path in files:
        through = checkpoints.through_of(path.name)
        assert through is not None
        assert path.read_bytes() == full_fold(lines, through, cfg), path.name


async def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    inputs = risky_inputs(tmp_path)
    lakehouse(tmp_path)
    ledger = await replay(tmp_path, inputs, extra=LIMITS,
                          segment_bytes=f"{256 << 20}\ncheckpoint_records = 10")
    names = [p.name for p in checkpoints.listed(ledger)]
    last = max(r for r in range(10, 300, 10) if r < len(lines_of(ledger)))
    assert names == [checkpoints.name(x) for x in (last, last - 10, last - 20)]
    assert not list((ledger / checkpoints.DIRECTORY).glob(".*"))
