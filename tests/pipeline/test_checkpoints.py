"""Checkpoints in the running pipeline: at fixed places, each snapshot the fold of its prefix."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger import checkpoints
from execd.ledger.fold import Fold
from execd.ledger.record import LedgerChain, Record, record_decoder
from execd.ledger.recovery import recover
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


async def test_checkpoints_by_time_follow_the_records_times_whatever_the_sizes(
        tmp_path: Path) -> None:
    """With ledger.checkpoint_interval, a checkpoint also follows the first record whose
    time is that far past the newest time at the last one: the same places, and so the
    same bytes, whatever the queue, batch and commit sizes; each snapshot is still the
    full fold of its prefix."""
    inputs = risky_inputs(tmp_path)  # ticks at 100, 139, 179, 219, 259, 299
    ledgers = []
    for index, sizes in enumerate([{"q": 1, "items": 1, "commit_records": 1},
                                   {"q": 64, "items": 4096, "commit_records": 65536},
                                   {"q": 2, "items": 3, "commit_records": 5}]):
        run = tmp_path / f"run{index}"
        lakehouse(run, regime="CRISIS")
        ledgers.append(await replay(run, inputs, extra=LIMITS, segment_bytes=ledger_options(
            100_000) + "\ncheckpoint_interval = 50", **sizes))
    assert ledger_bytes(ledgers[0]) == ledger_bytes(ledgers[1]) == ledger_bytes(ledgers[2])
    found = [record_decoder.decode(line[:-1]) for line in lines_of(ledgers[2])]
    followed = [found[r.seq - 2] for r in found if r.kind == "checkpoint"]
    # From the start (time 0): 100 is 50 past it; from 100, 179; from 179, 259.
    assert [r.time for r in followed] == [100, 179, 259]
    for record in followed:
        assert all(r.time < record.time for r in found[:record.seq - 1])
    cfg = config.load(tmp_path / "run2" / "execd.toml").config
    lines = lines_of(ledgers[2])
    for record in followed:
        name = checkpoints.name(record.seq)
        data = (ledgers[2] / checkpoints.DIRECTORY / name).read_bytes()
        assert data == full_fold(lines, record.seq, cfg), name


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


# ------------------------------------------------------------------ start-up


async def checkpointed(directory: Path) -> tuple[Path, config.Config]:
    """A replayed risky ledger with a checkpoint every 10 records, every snapshot kept."""
    inputs = risky_inputs(directory)
    lakehouse(directory)
    ledger = await replay(directory, inputs, extra=LIMITS, segment_bytes=ledger_options(10))
    return ledger, config.load(directory / "execd.toml").config


def full(ledger: Path, cfg: config.Config) -> bytes:
    """The encoded state a full fold of ``ledger`` gives (its snapshots moved aside)."""
    aside = ledger.parent / "aside"
    (ledger / checkpoints.DIRECTORY).rename(aside)
    try:
        state = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
        state.close_index()
    finally:
        aside.rename(ledger / checkpoints.DIRECTORY)
    assert state.checkpoint is None and state.unheld is not None
    return encode_snapshot(state.unheld)


def started_from(ledger: Path, cfg: config.Config) -> tuple[str | None, list[tuple[str, str]]]:
    """Recover through the daemon's own start-up step: the snapshot used and what was
    ignored (each logged as a checkpoint.ignored warning); the state must be the full
    fold's."""
    daemon = Daemon(config.load(ledger.parent / "execd.toml"), mode="run", ledger_dir=ledger)
    daemon.risk = Risk(daemon.config)
    with capture_logs() as logged:
        state = daemon._recover()
    state.close_index()
    assert state.unheld is not None
    assert encode_snapshot(state.unheld) == full(ledger, cfg)
    warned = [(e["snapshot"], e["reason"]) for e in logged if e["event"] == "checkpoint.ignored"]
    assert warned == state.ignored
    assert all(e["log_level"] == "warning" for e in logged if e["event"] == "checkpoint.ignored")
    [recovered] = [e for e in logged if e["event"] == "ledger.recovered"]
    assert recovered["checkpoint"] == state.checkpoint
    return state.checkpoint, state.ignored


async def test_start_up_folds_from_the_newest_checkpoint(tmp_path: Path) -> None:
    ledger, cfg = await checkpointed(tmp_path)
    files = checkpoints.listed(ledger)
    used, ignored = started_from(ledger, cfg)
    assert (used, ignored) == (files[0].name, [])


def edited(path: Path, change: dict[str, object]) -> None:
    """Re-encode the snapshot at ``path`` with ``change``: a valid snapshot, other bytes."""
    raw = msgspec.msgpack.decode(path.read_bytes())
    raw.update(change)
    path.write_bytes(msgspec.msgpack.encode(raw))


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a snapshot"),
    (lambda p: p.write_bytes(b""), "not a snapshot"),
    (lambda p: p.write_bytes(p.read_bytes()[:-40] + bytes(40)), ""),
    (lambda p: edited(p, {"clock": "wall"}), "its sha256 or size"),
    (lambda p: p.unlink() or p.mkdir(), "unreadable"),
    (lambda p: p.rename(p.with_name(checkpoints.name(1_000_000))), "its name says"),
])
async def test_a_damaged_snapshot_is_ignored_for_the_next_older(
        tmp_path: Path, damage: Any, reason: str) -> None:
    """A cut, emptied, overwritten, edited or unreadable snapshot, or one no record names, is
    passed over with its reason; start-up takes the next older one, and the state is the
    full fold's."""
    ledger, cfg = await checkpointed(tmp_path)
    files = checkpoints.listed(ledger)
    damage(files[0])
    used, ignored = started_from(ledger, cfg)
    assert used == files[1].name
    [(name, why)] = ignored
    assert name in (files[0].name, checkpoints.name(1_000_000))
    assert why.startswith(reason) or reason in why, why


async def test_a_crash_before_its_record_leaves_a_snapshot_unrecorded(tmp_path: Path) -> None:
    """Cut right before the newest checkpoint record (the snapshot was written, its record was
    not yet durable): it is ignored; cut right after it, it is used."""
    ledger, cfg = await checkpointed(tmp_path)
    files = checkpoints.listed(ledger)
    through = checkpoints.through_of(files[0].name)
    assert through is not None
    lines = lines_of(ledger)
    (ledger / "head.json").unlink()
    segment = list_segments(ledger)[0]
    segment.write_bytes(b"".join(lines[:through + 1]))
    assert started_from(ledger, cfg)[0] == files[0].name
    segment.write_bytes(b"".join(lines[:through]))
    used, ignored = started_from(ledger, cfg)
    assert used == files[1].name
    assert ignored == [(files[0].name, "not recorded: the ledger ends at its last record")]


async def test_another_fold_config_ignores_every_snapshot(tmp_path: Path) -> None:
    """Pacing limits changed since the snapshots were written: none is this config's fold, so
    start-up folds the whole ledger, and says why for each."""
    ledger, _ = await checkpointed(tmp_path)
    toml = tmp_path / "execd.toml"
    toml.write_text(toml.read_text().replace("max_orders = 50", "max_orders = 49"))
    cfg = config.load(toml).config
    used, ignored = started_from(ledger, cfg)
    assert used is None and len(ignored) == len(checkpoints.listed(ledger)) > 1
    assert {why for _, why in ignored} == {
        "the config the fold reads changed since (venues, planes or pacing limits)"}


async def test_every_snapshot_bad_means_the_full_fold(tmp_path: Path) -> None:
    ledger, cfg = await checkpointed(tmp_path)
    for path in checkpoints.listed(ledger):
        path.write_bytes(b"\x00" * 64)
    used, ignored = started_from(ledger, cfg)
    assert used is None and len(ignored) > 1


# ------------------------------------------------------------ what storage does


def kinds_and_seqs(ledger: Path) -> list[tuple[int, str]]:
    return [(r.seq, r.kind) for r in map(record_decoder.decode,
                                           (line[:-1] for line in lines_of(ledger)))]


async def test_a_snapshot_that_cannot_be_written_still_gets_its_record(tmp_path: Path) -> None:
    """A directory where the snapshot through 20 goes: that one cannot be written, but its
    checkpoint record is chained anyway, naming no snapshot and saying why, so every later
    record keeps the seq a clean run gives it (DESIGN §2); the directory is passed over by
    every prune, the later checkpoints are written and recorded, and start-up uses the
    newest."""
    inputs = risky_inputs(tmp_path)
    runs = []
    for name in ("clean", "blocked"):
        run = tmp_path / name
        lakehouse(run)
        if name == "blocked":
            (run / "ledger" / checkpoints.DIRECTORY / checkpoints.name(20)).mkdir(parents=True)
        runs.append(await replay(run, inputs, extra=LIMITS,
                                 segment_bytes=f"{256 << 20}\ncheckpoint_records = 10"))
    clean, blocked = runs
    assert kinds_and_seqs(blocked) == kinds_and_seqs(clean)
    bodies = {r.seq: msgspec.json.decode(r.body) for r in map(
        record_decoder.decode, (line[:-1] for line in lines_of(blocked)))
        if r.kind == "checkpoint"}
    assert bodies[21]["snapshot"] is None and bodies[21]["sha256"] is None
    assert "snapshot-00000000000000000020.msgpack" in bodies[21]["skipped"]
    assert all(body["snapshot"] for seq, body in bodies.items() if seq != 21)
    assert len(bodies) > 5
    cfg = config.load(tmp_path / "blocked" / "execd.toml").config
    used, _ = started_from(blocked, cfg)
    assert used == checkpoints.name(max(bodies) - 1)
    assert (blocked / checkpoints.DIRECTORY / checkpoints.name(20)).is_dir()


def rewritten(path: Path, change: dict[str, object], ledger: Path) -> None:
    """Re-encode the snapshot at ``path`` with ``change``, and make its checkpoint record
    vouch for the new bytes (a chain rewritten end to end, as a build with other rules
    would write it)."""
    edited(path, change)
    data = path.read_bytes()
    lines = lines_of(ledger)
    chain = LedgerChain()
    out = []
    for line in lines:
        record = record_decoder.decode(line[:-1])
        body = bytes(record.body)
        if record.kind == "checkpoint" and msgspec.json.decode(body)["snapshot"] == path.name:
            fields = msgspec.json.decode(body)
            fields.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                          head_hash=chain.prev_hash)
            body = msgspec.json.encode(fields)
        elif record.kind == "checkpoint":
            fields = msgspec.json.decode(body)
            fields["head_hash"] = chain.prev_hash
            body = msgspec.json.encode(fields)
        out.append(chain.append(record.kind, record.time, body))
    [segment] = list_segments(ledger)
    segment.write_bytes(b"".join(out))
    (ledger / "head.json").unlink()


async def test_a_snapshot_whose_id_index_is_not_through_its_last_record_is_refused(
        tmp_path: Path) -> None:
    """The index holds its ids through another record: restoring it would let intent ids
    between the two run again."""
    ledger, cfg = await checkpointed(tmp_path)
    files = checkpoints.listed(ledger)
    rewritten(files[0], {"index_through": 5}, ledger)
    used, ignored = started_from(ledger, cfg)
    assert used is not None and used != files[0].name
    [why] = [w for n, w in ignored if n == files[0].name]
    assert "its id index covers record 5, not its last one" in why


async def test_a_huge_file_with_a_snapshot_name_is_not_read(tmp_path: Path) -> None:
    """No snapshot can hold more than the ledger it was folded from (plus its framing)."""
    ledger, cfg = await checkpointed(tmp_path)
    files = checkpoints.listed(ledger)
    path = files[0]
    path.unlink()
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB that reading would allocate
    used, ignored = started_from(ledger, cfg)
    assert used == files[1].name
    [(name, why)] = ignored
    assert name == path.name and why.startswith("unreadable: larger than"), why


async def test_start_up_removes_what_a_failed_write_left(tmp_path: Path) -> None:
    """A half-written temp file (a crash, a full disk) is removed before the start record is
    written, which would otherwise find no space."""
    ledger, cfg = await checkpointed(tmp_path)
    stray = ledger / checkpoints.DIRECTORY / f".{checkpoints.name(1_000)}.tmp"
    stray.write_bytes(b"half a snapshot")
    state = recover(ledger, repair=True, risk=Risk(cfg), fold_key=fold_key(cfg))
    assert state.strays == [stray.name] and not stray.exists()
    assert state.checkpoint == checkpoints.listed(ledger)[0].name
