"""The consumed-file tables at start-up: opened and checked, or rebuilt from the ledger.

With checkpoints on, which input files were finished, rejected or changed, and the
repeats of each name, live in ``<ledger_dir>/index/files/``
(:mod:`execd.ledger.index.files`), not in the snapshots, so start-up memory and
snapshots stay flat with the number of files consumed (README, "Checkpoints"). A
snapshot through X is whole only with these tables covering at least X
(``index_through``), as for the id index (``ledger/reindex.py``, whose rules this
mirrors).

:func:`open_files` opens the tables and uses them when their manifest covers X; when
they are missing, damaged (:class:`~execd.model.errors.IndexDamaged`) or behind, they
are rebuilt by folding the records through X into new tables (the fold's own rules,
:class:`~execd.ledger.fold.Fold`, with its ids dropped), written as runs every
:data:`REBUILD_RUN` entries so the rebuild's memory is bounded too. The records after X
are then folded into them as usual, their entries going to ``recent``. After that fold,
:func:`check_after_fold` rebuilds tables that cover records the ledger does not hold (a
ledger restored from an older copy): they would call files consumed that never were;
and, as for the id index, tables written for another chain (their manifest's
``through_hash`` is not this chain's record hash there), which would refuse files
never consumed here and let consumed ones be read again.

Blocking: start-up runs it in the recovery thread.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from execd.ledger import reindex, retention, scan
from execd.ledger.fold import Fold
from execd.ledger.index.files import DIRECTORY, VALUE, FileTables, latest
from execd.ledger.index.store import MANIFEST, IndexStore
from execd.ledger.record import Record
from execd.model.clock import monotonic
from execd.model.errors import IndexDamaged, LedgerArchived

# Entries a rebuild holds in memory before writing them as a run.
REBUILD_RUN = 100_000
# The tables change only at input_file records and whole-file outcomes (reasons.FILE_LEVEL,
# all named INPUT_FILE_*, which no live order's closing outcome carries): a rebuild folds
# only those, the other records' hashes checked by the scan as usual.
_FILE_LEVEL = b'"INPUT_FILE_'


class Rebuilt:
    """Why the tables were rebuilt, how many entries they got, and the seconds it took
    (for the ``file_index.rebuilt`` log line)."""

    __slots__ = ("entries", "reason", "seconds")

    def __init__(self, reason: str, entries: int, seconds: float) -> None:
        self.reason = reason
        self.entries = entries
        self.seconds = seconds

    def fields(self) -> dict[str, object]:
        """The log line's fields."""
        return {"reason": self.reason, "entries": self.entries,
                "seconds": round(self.seconds, 3),
                "note": "the consumed-file tables were rebuilt from the ledger"}


class OpenFiles:
    """The tables a run uses: their directory (``store``), the
    :class:`~execd.ledger.index.files.FileTables` the fold and the inbox ask, and each
    rebuild with its reason (logged as ``file_index.rebuilt``)."""

    __slots__ = ("_shadows", "rebuilt", "store", "tables", "unchecked")

    def __init__(self, store: IndexStore, tables: FileTables, unchecked: int = 0) -> None:
        self.store = store
        self.tables = tables
        self.rebuilt: list[Rebuilt] = []
        self._shadows: list[FileTables] = []
        #: The seq past the snapshot the tables cover through, whose hash the fold must
        #: show (0: checked already; ``reindex.unchecked_seq``).
        self.unchecked = unchecked

    def shadow(self) -> FileTables:
        """Tables of the checkpointer's own over the same runs, holding the entries the
        fold after the snapshot changed (before the inbox changes any), that write their
        runs to ``store`` (``app/file_runs.py``). Closed with these."""
        copy = FileTables(self.store.open_runs(), self.store)
        copy.take_recent(self.tables)
        self._shadows.append(copy)
        return copy

    def close(self) -> None:
        """Close the descriptors of the tables, their shadows and the store (once no
        fold uses them)."""
        self.tables.close()
        for shadow in self._shadows:
            if shadow.merging is not None:
                # Not under a merge reading the store's runs: its result, never adopted,
                # is an orphan the next open removes.
                shadow.merging.exception()
            shadow.close()
        self._shadows.clear()
        self.store.close()


class _NoIds:
    """A rebuild folds files only: the ids are the id index's to rebuild."""

    def add(self, intent_id: uuid.UUID, /) -> bool:
        return True

    def __len__(self) -> int:
        return 0


_WHAT = "consumed-file tables"


def create(directory: Path) -> IndexStore:
    """A new, empty file index in ``directory`` (whatever was there is replaced);
    IndexUnusable when it cannot be written."""
    try:
        return IndexStore.create(directory, latest)
    except OSError as exc:
        raise reindex.unwritable(directory, exc, _WHAT) from None


def rebuild(ledger: Path, through: int) -> tuple[IndexStore, int]:
    """New tables holding what records 1..``through`` of ``ledger`` say of files; their
    store and how many entries they got. LedgerArchived when records are archived."""
    moved = retention.archived(ledger).segments
    if moved and through > 0:
        raise LedgerArchived(
            f"{ledger}: the consumed-file tables must be rebuilt from the whole ledger, and "
            f"records {moved[0].first_seq}..{moved[-1].last_seq} are archived "
            f"({moved[0].name} to {moved[-1].name}); restore them: gunzip each "
            f"<segment>.gz from the archive into {ledger}, then start again")
    store = create(ledger / DIRECTORY)
    if through <= 0:
        return store, 0
    tables = FileTables()
    fold = Fold(seen=_NoIds(), files=tables)
    entries = 0

    def observe(record: Record) -> None:
        nonlocal entries
        kind = record.kind
        if record.seq == through:
            hashes[through] = record.hash
        if record.seq > through or not (kind == "input_file" or (
                kind == "outcome" and _FILE_LEVEL in bytes(record.body))):
            return
        fold.observe(record)
        if tables.recent >= REBUILD_RUN and record.seq < through:
            entries += tables.recent
            _write(store, tables, record.seq, record.hash)

    hashes: dict[int, str] = {}
    scan.scan(ledger, observe)
    entries += tables.recent
    _write(store, tables, through, hashes.get(through, ""))
    tables.close()
    while store.compact() is not None:
        pass
    return store, entries


def _write(store: IndexStore, tables: FileTables, through: int, through_hash: str) -> None:
    run = store.write_run(tables.pending(), through, VALUE, through_hash=through_hash)
    tables.attach(run)


def open_files(ledger: Path, through: int, head_hash: str = "") -> OpenFiles:
    """The file tables of ``ledger``, covering at least record ``through`` (the
    snapshot's ``index_through``, whose hash is ``head_hash``; 0 without one), rebuilt
    when they do not, or when they are another ledger's."""
    directory = ledger / DIRECTORY
    reindex.check_directory(directory, _WHAT)
    if through == 0 and not (directory / MANIFEST).exists():
        # A new ledger, or one first run with checkpoints: the fold brings every entry.
        return OpenFiles(create(directory), FileTables())
    reason = None
    try:
        store = IndexStore.open(directory, latest)
        reason = reindex.unusable(store, through, head_hash)
        if reason is not None:
            store.close()
    except IndexDamaged as exc:
        reason = str(exc)
    rebuilt = None
    if reason is not None:
        began = monotonic()
        store, count = rebuild(ledger, through)
        rebuilt = Rebuilt(reason, count, monotonic() - began)
    opened = OpenFiles(store, FileTables(store.open_runs()),
                       unchecked=reindex.unchecked_seq(store, through))
    if rebuilt is not None:
        opened.rebuilt.append(rebuilt)
    return opened


def check_after_fold(ledger: Path, opened: OpenFiles, last_seq: int,
                     hashes: dict[int, str]) -> FileTables | None:
    """After the fold: when the tables cover records past the ledger's last one
    (``last_seq``), or the record they cover through is not the chain's (``hashes``:
    the hashes the fold saw at the seqs asked), rebuild them from the whole ledger; the
    new tables (None: kept)."""
    store = opened.store
    reason = reindex.after_fold(store, opened.unchecked, last_seq, hashes)
    if reason is None:
        return None
    began = monotonic()
    opened.close()
    store, count = rebuild(ledger, last_seq)
    opened.rebuilt.append(Rebuilt(reason, count, monotonic() - began))
    opened.store = store
    opened.tables = FileTables(store.open_runs())
    opened.unchecked = 0
    return opened.tables
