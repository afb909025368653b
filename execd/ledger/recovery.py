"""What the daemon knows at start-up, rebuilt from the ledger alone.

The ledger is the only durable state. :func:`recover` folds its records into a
:class:`~execd.ledger.fold.Fold` (which intent ids have an outcome, how far each input
file was consumed, the logical time, the Risk Sentinel's positions, pacing and trading
state), then holds pending what live orders left open.

With checkpoints on, it starts from the newest snapshot in ``checkpoints/`` that the
chain vouches for, and folds only the records after it (README, "Checkpoints"). A
snapshot is trusted only when the record right after its last one is the
``checkpoint`` record naming it, with its sha256 and size, linked to the hash the
snapshot says its last record has, and when it was folded under this config's
``fold_key``. Anything else (missing, unreadable, cut, edited, not recorded, another
config) is ignored with its reason, and the next older one is tried, then the full
fold. Records up to the checkpoint are not re-verified at start-up: ``execd ledger
verify`` checks the whole chain.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from execd.ledger import checkpoints, file_index, head, reindex, retention
from execd.ledger.fold import Fold
from execd.ledger.head import Head
from execd.ledger.record import Record, record_decoder
from execd.ledger.scan import Resume, ScanResult, scan
from execd.ledger.segments import list_segments
from execd.ledger.snapshot import (
    ChainEnd,
    Snapshot,
    decode_snapshot,
    restore,
    take,
)
from execd.model.errors import LedgerArchived, LedgerCorrupt, WitnessUnreadable
from execd.model.messages import CheckpointRecord
from execd.sentinel.risk import Risk
from execd.sentinel.schedules import hold_open

# A checkpoint record is a few hundred bytes: a longer line at its place is not one.
_RECORD_BYTES = 4096
_checkpoint_record = msgspec.json.Decoder(CheckpointRecord).decode


class RecoveredState(Fold):
    """The daemon's starting state, as the ledger records it: the fold, and where the
    chain ends."""

    def __init__(self, risk: Risk | None = None) -> None:
        super().__init__(risk)
        self.scan = ScanResult()
        # The ledger has records and no head witness beside it (deleted, or written
        # before witnesses existed): a cut end could not be noticed this time.
        self.head_missing = False
        # With checkpoints on: the fold as it stood before the holds, which the running
        # checkpointer starts from (app/checkpointer.py).
        self.unheld: Snapshot | None = None
        # The ledger's size (every segment) once recovered: where the next record goes.
        self.ledger_bytes = 0
        # The snapshot start-up folded from (None: the full fold), the records folded
        # after it, and each snapshot passed over, with why.
        self.checkpoint: str | None = None
        self.folded = 0
        self.ignored: list[tuple[str, str]] = []
        # Temp files of snapshots removed at start-up (a crash or a failed write's).
        self.strays: list[str] = []
        # With checkpoints on: the on-disk id index ``seen`` is, its directory, and each
        # rebuild (ledger/reindex.py), which the checkpointer takes over.
        self.index: reindex.OpenIndex | None = None
        # With checkpoints on: the on-disk consumed-file tables ``done``, ``rejected`` and
        # ``changed`` are views of, and each rebuild (ledger/file_index.py).
        self.file_index: file_index.OpenFiles | None = None

    def close_index(self) -> None:
        """Close the indexes' descriptors (their stores', ``seen``'s and the file
        tables'), once unused."""
        if self.index is not None:
            self.index.ids.close()
            self.index.store.close()
        if self.file_index is not None:
            self.file_index.close()

    def end(self) -> ChainEnd:
        """Where the recovered chain ends, for a snapshot of this fold."""
        scanned = self.scan
        return ChainEnd(scanned.next_seq - 1, scanned.last_hash, scanned.records,
                        scanned.last_time, self.ledger_bytes)


def _locate(directory: Path, resume: int) -> tuple[Path, int, Path | None, int] | None:
    """The segment and offset just after the record that ends ``resume`` bytes into the
    ledger, and where the next record starts; None when the ledger is shorter."""
    # Archived segments' bytes still count in ``resume`` (ledger/retention.py).
    before = retention.archived_bytes(directory)
    segments = list_segments(directory)
    if segments and resume == before:
        return segments[0], 0, segments[0], 0
    for index, path in enumerate(segments):
        size = path.stat().st_size
        if before < resume <= before + size:
            offset = resume - before
            if offset < size:
                return path, offset, path, offset
            following = segments[index + 1] if index + 1 < len(segments) else None
            return path, offset, following, 0
        before += size
    return None


def _record_at(path: Path | None, offset: int) -> CheckpointRecord | str:
    """The checkpoint record that starts at ``offset`` in ``path``, or why there is none
    (the checks of its place in the chain are the caller's)."""
    if path is None:
        return "not recorded: the ledger ends at its last record"
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(_RECORD_BYTES)
    end = data.find(b"\n")
    if end < 0:
        return "not recorded: no whole record follows its last one"
    try:
        record = record_decoder.decode(data[:end])
    except (msgspec.DecodeError, UnicodeDecodeError):
        return "not recorded: the line after its last record is no record"
    if not record.hash_ok() or record.kind != "checkpoint":
        return "not recorded: the record after its last one is no checkpoint record"
    try:
        body = _checkpoint_record(record.body)
    except msgspec.DecodeError:
        return "not recorded: the record after its last one is no checkpoint record"
    if record.seq != body.through_seq + 1 or record.prev != body.head_hash:
        return "not recorded: the checkpoint record after it is out of place"
    return body


def snapshot_limit(directory: Path) -> int:
    """The largest file that can be a snapshot of the ledger in ``directory``.

    Every part of a snapshot comes from the ledger it was folded from, and is no larger
    there (checkpoints.SLACK_BYTES): a larger file is not one, whatever its name. The
    archived segments count, since the fold read them too.
    """
    size = sum(path.stat().st_size for path in list_segments(directory))
    return min(checkpoints.MAX_BYTES,
               size + retention.archived_bytes(directory) + checkpoints.SLACK_BYTES)


def vouched(directory: Path, path: Path, key: str | None, expect: Head | None,
            limit: int | None = None) -> tuple[Snapshot, Resume] | str:
    """The snapshot at ``path`` and where to scan on from, if the chain vouches for it;
    else why not. ``key`` None: under whichever config (``ledger verify``). A snapshot
    larger than ``limit`` (default :func:`snapshot_limit`) is not read."""
    if limit is None:
        limit = snapshot_limit(directory)
    try:
        data = checkpoints.read(path, limit)
    except (OSError, ValueError) as exc:
        return f"unreadable: {getattr(exc, 'strerror', None) or exc}"
    try:
        snapshot = decode_snapshot(data)
    except msgspec.DecodeError as exc:
        return f"not a snapshot ({exc})"
    end = snapshot.end
    if checkpoints.through_of(path.name) != end.through_seq:
        return f"its name says another record than the one it holds ({end.through_seq})"
    if key is not None and snapshot.fold_key != key:
        return "the config the fold reads changed since (venues, planes or pacing limits)"
    if snapshot.index_through != end.through_seq:
        # The ids are the index's, through the snapshot's own last record (ledger/reindex.py).
        return (f"its id index covers record {snapshot.index_through}, not its last one "
                f"({end.through_seq})")
    place = _locate(directory, end.resume)
    if place is None:
        return f"not recorded: the ledger ends before record {end.through_seq}"
    segment, offset, next_path, next_offset = place
    record = _record_at(next_path, next_offset)
    if isinstance(record, str):
        return record
    if record.snapshot is None:
        return f"its checkpoint record says it was skipped ({record.skipped})"
    if (record.through_seq, record.head_hash, record.snapshot) != (
            end.through_seq, end.head_hash, path.name):
        return f"the checkpoint record after record {end.through_seq} names another snapshot"
    if (record.sha256, record.size) != (hashlib.sha256(data).hexdigest(), len(data)):
        return "its sha256 or size is not the one its checkpoint record names (changed)"
    if expect is not None and expect.seq == end.through_seq and expect.hash != end.head_hash:
        return "the head witness names another hash for its last record"
    return snapshot, Resume(segment.name, offset, end.through_seq, end.head_hash,
                            end.last_time, end.records)


def _from_checkpoint(directory: Path, state: RecoveredState, key: str,
                     expect: Head | None) -> Resume | None:
    """Restore ``state`` from the newest snapshot the chain vouches for; where to scan on
    from (None: none did, ``state`` is untouched)."""
    try:
        files = checkpoints.listed(directory)
    except OSError as exc:
        state.ignored.append((f"{checkpoints.DIRECTORY}/",
                              f"unreadable: {exc.strerror or exc} ({exc.filename})"))
        return None
    limit = snapshot_limit(directory)
    for path in files:
        found = vouched(directory, path, key, expect, limit)
        if isinstance(found, str):
            state.ignored.append((path.name, found))
            continue
        snapshot, resume = found
        # Its bytes are the ones the chain names, so they are the ones a fold wrote.
        restore(snapshot, state)
        state.checkpoint = path.name
        return resume
    return None


def recover(directory: Path, *, repair: bool = True, risk: Risk | None = None,
            fold_key: str | None = None) -> RecoveredState:
    """Scan (and with ``repair``, mend a torn tail of) the ledger in ``directory``.

    With ``risk``, also rebuild its positions, pacing and trading state. With
    ``fold_key`` (checkpoints are on, under a config of that key), start from the newest
    snapshot the chain vouches for, and keep the fold as it is before the holds in
    ``unheld``, and the ids in the on-disk index (``index``, ``seen``; rebuilt from the
    ledger when missing, damaged, behind or ahead), and the consumed-file tables in
    theirs (``file_index``, ``done``, ``rejected``, ``changed``; the same rules).
    ``risk`` must be new (nothing folded into it yet).
    """
    state = RecoveredState(risk)
    try:
        expect = head.read(directory)
    except WitnessUnreadable as exc:
        raise LedgerCorrupt(
            f"{exc}; it is written only by execd: if you know why it is damaged, check the "
            "chain with `execd ledger verify --expect SEQ:HASH` against the last ledger.head "
            "logged, then remove it") from None
    if fold_key and repair:
        # What a crash or a failed write left half-written: on a full disk, it would hold
        # the space the start record needs.
        try:
            state.strays = checkpoints.remove_strays(directory)
        except OSError as exc:
            state.ignored.append((f"{checkpoints.DIRECTORY}/",
                                  f"its temp files cannot be removed: {exc.strerror or exc}"))
    start = _from_checkpoint(directory, state, fold_key, expect) if fold_key else None
    moved = retention.archived(directory).segments
    if start is None and moved:
        raise LedgerArchived(retention.refusal(directory, moved, state.ignored))
    if fold_key is not None:
        # The ids through the snapshot are the index's, never the snapshot's.
        state.index = reindex.open_index(directory, start.seq if start is not None else 0,
                                         start.hash if start is not None else "")
        state.seen = state.index.ids
        # So are the consumed-file tables (ledger/file_index.py).
        state.file_index = file_index.open_files(
            directory, start.seq if start is not None else 0,
            start.hash if start is not None else "")
        state.use_files(state.file_index.tables)
    observe = state.observe
    hashes: dict[int, str] = {}
    wanted = {opened.unchecked for opened in (state.index, state.file_index)
              if opened is not None and opened.unchecked}
    if wanted:
        # The index or the tables cover records past the snapshot: the fold must show
        # that they cover this chain's (reindex.after_fold).
        fold_one = observe

        def observe(record: Record) -> None:
            if record.seq in wanted:
                hashes[record.seq] = record.hash
            fold_one(record)

    state.scan = scan(directory, observe, repair=repair, expect=expect, start=start)
    last = state.scan.next_seq - 1
    if state.index is not None:
        checked = reindex.check_after_fold(directory, state.index, last, hashes)
        if checked is not None:
            state.seen = checked
    if state.file_index is not None:
        tables = file_index.check_after_fold(directory, state.file_index, last, hashes)
        if tables is not None:
            state.use_files(tables)
    state.folded = state.scan.records - (start.records if start is not None else 0)
    state.head_missing = expect is None and state.scan.records > 0
    state.ledger_bytes = retention.archived_bytes(directory) + sum(
        path.stat().st_size for path in list_segments(directory))
    if fold_key is not None:
        state.unheld = take(state, state.end(), fold_key)
    if risk is not None:
        # Orders still open at the venue for all we know: held pending, as when sent.
        for order, _ in state.unresolved.values():
            risk.hold(order.venue, order.symbol, order.side, order.requested_quantity)
        # And what open schedules may still send, as when their parents were admitted.
        hold_open(risk, state.schedules)
    return state
