"""The duplicate-id index at start-up: opened and checked, or rebuilt from the ledger.

With checkpoints on, the intent ids that already have an outcome or order live in
``<ledger_dir>/index/`` (:mod:`execd.ledger.index`), not in the snapshots, so start-up
memory and snapshots stay flat with history (README, "Checkpoints"). A snapshot
through X is whole only with an index covering at least X (``index_through``).

:func:`open_index` opens the index and uses it when its manifest covers X; when it is
missing, damaged (:class:`~execd.model.errors.IndexDamaged`), behind, or another
ledger's, it is rebuilt with an ids-only pass over the records through X
(:func:`~execd.ledger.fold.id_of`, the ids the fold counts), never trusting what was
found (DESIGN §3: derived state is rebuilt from the ledger). The records after X are
then folded into the index as usual, their ids going to its recent set. After that
fold, :func:`check_after_fold` rebuilds an index that covers records the ledger does
not hold (a ledger restored from an older copy), whose ids would refuse intents never
executed, or whose record hash is not the chain's.

"Another ledger's": the manifest names the hash of the record it covers through
(``through_hash``). An index copied beside another ledger (another shard's, a test
ledger's) would let this ledger's intents run again and refuse fresh ones as
duplicates, so its hash is compared with the chain's: with the snapshot's head hash
when it covers through X, with the record's hash as the fold passes it when it covers
more.

A rebuild holds at most :data:`REBUILD_BATCH` ids at a time: each batch becomes a run
of its own, and one streamed merge then makes them a single run, so its memory does
not grow with history.

Blocking: start-up runs it in the recovery thread.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from execd.ledger import fold, retention, scan
from execd.ledger.index.ids import IdIndex
from execd.ledger.index.runs import KEY
from execd.ledger.index.store import DIRECTORY, MANIFEST, IndexStore
from execd.ledger.record import Record
from execd.model.clock import monotonic
from execd.model.errors import IndexDamaged, IndexUnusable, LedgerArchived, RunDamaged

# Ids gathered before a rebuild writes them as a run (a set of them and its sort: about
# 150 bytes an id, so some 40 MB).
REBUILD_BATCH = 1 << 18


class Rebuilt:
    """Why the index was rebuilt, how many ids it got, and the seconds it took (for the
    ``index.rebuilt`` log line)."""

    __slots__ = ("ids", "reason", "seconds")

    def __init__(self, reason: str, ids: int, seconds: float) -> None:
        self.reason = reason
        self.ids = ids
        self.seconds = seconds

    def fields(self) -> dict[str, object]:
        """The log line's fields."""
        return {"reason": self.reason, "ids": self.ids, "seconds": round(self.seconds, 3),
                "note": "the duplicate-id index was rebuilt from the ledger"}


class OpenIndex:
    """The index a run uses: its directory (``store``), the ``IdIndex`` over its runs
    the sentinel asks (its filter from ``filter.bin``, holding every id through
    ``bloom_through``, or built from the runs), and each rebuild with its reason."""

    __slots__ = ("bloom_through", "ids", "rebuilt", "store", "unchecked")

    def __init__(self, store: IndexStore, ids: IdIndex, bloom_through: int | None,
                 unchecked: int = 0) -> None:
        self.store = store
        self.ids = ids
        #: The seq the filter from ``filter.bin`` holds every id through (None: the filter
        #: was built from the runs, holding them all).
        self.bloom_through = bloom_through
        self.rebuilt: list[Rebuilt] = []
        #: The seq past the snapshot that the index covers through, whose hash the fold
        #: must show (0: checked already; :func:`unchecked_seq`).
        self.unchecked = unchecked

    @property
    def saved_filter(self) -> bool:
        """Whether the filter came from ``filter.bin``."""
        return self.bloom_through is not None


def _refuse_if_archived(ledger: Path) -> None:
    moved = retention.archived(ledger).segments
    if moved:
        # The ids of archived records would be missing: a rebuild without them would let
        # their intents run again (README, "Retention, backup and restore").
        raise LedgerArchived(
            f"{ledger}: the id index must be rebuilt from the whole ledger, and records "
            f"{moved[0].first_seq}..{moved[-1].last_seq} are archived ({moved[0].name} to "
            f"{moved[-1].name}); restore them: gunzip each <segment>.gz from the archive "
            f"into {ledger}, then start again")


def rebuild(ledger: Path, through: int) -> tuple[IndexStore, int]:
    """A new index holding the ids of records 1..``through`` of ``ledger`` (the ids the
    fold counts); it and how many ids it wrote. IndexUnusable, naming the file and the
    error, when it cannot be written.

    The records after ``through`` are read and passed over (the checkpoint interval
    bounds them, unless older snapshots were ignored); a torn tail is left to the
    recovery scan, which repairs it. The ids go out as a run every
    :data:`REBUILD_BATCH` of them, each through the record that filled it, and the
    batches are then merged into one run.
    """
    _refuse_if_archived(ledger)
    store = _create(ledger / DIRECTORY)
    if through <= 0:
        return store, 0
    batch: set[int] = set()
    last_hash = ""
    add, id_of = batch.add, fold.id_of

    def flush(seq: int, hash_: str) -> None:
        store.write_run((key.to_bytes(KEY) for key in sorted(batch)), seq,
                        through_hash=hash_).close()
        batch.clear()

    def observe(record: Record) -> None:
        nonlocal last_hash
        seq = record.seq
        if seq > through:
            return
        intent_id = id_of(record)
        if intent_id is not None:
            add(intent_id.int)
        if seq == through:
            last_hash = record.hash
        elif len(batch) >= REBUILD_BATCH:
            flush(seq, record.hash)

    try:
        scan.scan(ledger, observe)
        flush(through, last_hash)
        batches = len(store.manifest.runs)
        if batches > 1:
            # One streamed merge of them all (memory: a block a run), which also drops
            # an id two batches share: the index then counts each id once.
            store.compact(factor=batches, base=1 << 62)
    except OSError as exc:
        store.close()
        if exc.filename is not None and not Path(exc.filename).is_relative_to(
                ledger / DIRECTORY):
            raise  # reading the ledger, not writing the index
        raise unwritable(ledger / DIRECTORY, exc) from None
    except BaseException:
        store.close()
        raise
    return store, sum(info.count for info in store.manifest.runs)


def _create(directory: Path) -> IndexStore:
    """A new, empty index in ``directory``; IndexUnusable when it cannot be written."""
    try:
        return IndexStore.create(directory)
    except OSError as exc:
        raise unwritable(directory, exc) from None


def check_directory(directory: Path, what: str = "id index") -> None:
    """IndexUnusable when ``directory`` (where the ledger's ``what`` is kept) is there
    but is no directory (nor a link to one)."""
    if os.path.lexists(directory) and not directory.is_dir():
        # Not removed to make room: a symlink to nothing may be an index on a disk not
        # mounted yet, and a file there is none of execd's; the operator decides.
        found = "a symlink to nothing" if directory.is_symlink() else "not a directory"
        raise IndexUnusable(
            f"{directory}: {found}; execd keeps the ledger's {what} in this directory. "
            f"Move it away (the {what} is rebuilt from the ledger), then start again")


def unwritable(directory: Path, exc: OSError, what: str = "id index") -> IndexUnusable:
    """The start-up refusal for a ``what`` in ``directory`` that cannot be written."""
    where = exc.filename or directory
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return IndexUnusable(
        f"{where}: the {what} cannot be written ({exc.strerror or exc}, {code}); "
        f"free space or raise the limit for {directory}, then start again")


def _index_over(store: IndexStore) -> tuple[IdIndex, int | None]:
    """An IdIndex over ``store``'s runs, from its saved filter when that one is whole
    and not over-full, with the seq that filter reaches (else built from the runs,
    sized for twice their ids, and None)."""
    try:
        saved = store.load_filter()
    except IndexDamaged:
        saved = None
    runs = store.open_runs()
    if saved is not None:
        bloom, through = saved
        if bloom.count <= bloom.capacity and through <= store.through_seq:
            return IdIndex(runs, bloom=bloom, bloom_through=through), through
    try:
        return IdIndex(runs), None
    except RunDamaged:
        for run in runs:
            run.close()
        raise


def open_index(ledger: Path, through: int, head_hash: str = "") -> OpenIndex:
    """The index of ``ledger``, covering at least record ``through`` (the snapshot's
    ``index_through``, whose hash is ``head_hash``; 0 without one), rebuilt when it
    does not, or when it is another ledger's."""
    directory = ledger / DIRECTORY
    check_directory(directory)
    reason = None
    if through == 0 and not (directory / MANIFEST).exists():
        # A new ledger, or one first run with checkpoints: nothing to rebuild, the fold
        # brings every id.
        store = _create(directory)
        return OpenIndex(store, IdIndex(), None)
    try:
        store = IndexStore.open(directory)
        reason = unusable(store, through, head_hash)
        if reason is not None:
            store.close()
    except IndexDamaged as exc:
        reason = str(exc)
    if reason is None:
        try:
            # Without a saved filter, one is built from every run's keys: a damaged block
            # is met here, at start-up, where the index is rebuilt at once (review 3, F3).
            ids, saved = _index_over(store)
        except RunDamaged as exc:
            store.close()
            reason = str(exc)
    rebuilt = None
    if reason is not None:
        began = monotonic()
        store, count = rebuild(ledger, through)
        rebuilt = Rebuilt(reason, count, monotonic() - began)
        ids, saved = _index_over(store)
    opened = OpenIndex(store, ids, saved, unchecked=unchecked_seq(store, through))
    if rebuilt is not None:
        opened.rebuilt.append(rebuilt)
    return opened


def unusable(store: IndexStore, through: int, head_hash: str) -> str | None:
    """Why ``store`` (opened) cannot serve a snapshot through ``through`` of hash
    ``head_hash``: it is behind, or another chain's (None: it can, as far as start-up
    can tell before the fold; :func:`after_fold` checks the rest)."""
    if store.through_seq < through:
        return (f"behind: it covers records through {store.through_seq}, the checkpoint "
                f"needs {through}")
    return foreign(store, through, head_hash)


def foreign(store: IndexStore, through: int, head_hash: str) -> str | None:
    """Why ``store`` (opened, covering through ``through`` exactly or more) is not this
    chain's, judged at start-up from the snapshot's head hash (None: it is, or it covers
    more, which the fold checks: :func:`unchecked_seq`)."""
    if store.through_seq == through and through and store.through_hash != head_hash:
        return _foreign(through)
    return None


def unchecked_seq(store: IndexStore, through: int) -> int:
    """The seq past ``through`` that ``store`` covers through, whose hash the fold after
    the snapshot must show (0: none, the index was checked against the snapshot)."""
    return store.through_seq if store.through_seq > through else 0


def after_fold(store: IndexStore, unchecked: int, last_seq: int,
               hashes: dict[int, str]) -> str | None:
    """Why ``store`` must be rebuilt once the fold is done (None: it need not): it
    covers records past the ledger's last one (``last_seq``), or the record it covers
    through has another hash than the one the fold saw (``hashes``, by seq)."""
    if store.through_seq > last_seq:
        return (f"ahead: it covers records through {store.through_seq}, the ledger ends "
                f"at {last_seq}")
    if unchecked and hashes.get(unchecked) != store.through_hash:
        return _foreign(unchecked)
    return None


def _foreign(seq: int) -> str:
    return (f"another ledger's (or an older copy's): record {seq}'s hash is not the one "
            "the index was written for")


def check_after_fold(ledger: Path, opened: OpenIndex, last_seq: int,
                     hashes: dict[int, str]) -> IdIndex | None:
    """After the fold: when the index covers records past the ledger's last one
    (``last_seq``), or the record it covers through is not the one the chain holds
    (``hashes``: the hashes the fold saw at the seqs asked), rebuild it from the whole
    ledger; the new IdIndex (None: kept)."""
    store = opened.store
    reason = after_fold(store, opened.unchecked, last_seq, hashes)
    if reason is None:
        return None
    began = monotonic()
    opened.ids.close()
    store.close()
    store, count = rebuild(ledger, last_seq)
    opened.rebuilt.append(Rebuilt(reason, count, monotonic() - began))
    opened.store = store
    opened.ids, opened.bloom_through = _index_over(store)
    opened.unchecked = 0
    return opened.ids
