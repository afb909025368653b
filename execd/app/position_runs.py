"""The positions index while the daemon runs: brought up to each checkpoint, aside.

At a checkpoint through X the checkpointer (app/checkpointer.py) says so with
:meth:`PositionRuns.due` (X, the byte-global offset just after it, its hash) and goes
on: nothing here is on the writer's checkpoint path. A thread of this object's own
reads the ledger bytes the index does not cover yet (durable: X is), from disk, and
writes them as runs of ``<ledger_dir>/index/positions/``
(:mod:`execd.ledger.index.positions`), then compacts. The index only ever covers a
prefix of the ledger, ``[span.first, span.end)``, so ``tail --intent`` reads it for
that prefix and the ledger after it.

Nothing needs to be rebuilt at start-up: an index that is missing, damaged, or that
does not match the ledger (its last record is not at the place it names, with its
hash) is made again empty, with a warning, and the next checkpoint's catch-up reads
the ledger from its first present segment, :data:`CHUNK` records to a run. Until it
has caught up, tail reads what the index does not cover linearly. A failure to write
is logged and tried again at the next checkpoint: derived state never stops trading.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from execd.ledger.index import positions
from execd.ledger.index.positions import Batch, entries_of, read_line
from execd.ledger.index.store import DIRECTORY, MANIFEST, IndexStore, Span, condemn
from execd.ledger.places import Layout, LineReader
from execd.ledger.segments import MAX_LINE
from execd.model.errors import IndexDamaged, RunDamaged

# Records per run while catching up: a run's entries are sorted in memory (about 70
# bytes each as Python objects), so a long catch-up stays near 20 MB.
CHUNK = 1 << 18
# Ledger bytes read (and decoded in one call) at a time, between two looks at close().
READ_BYTES = 1 << 20
# How long close() waits for a catch-up or a merge under way (the thread is a daemon
# thread: past this, what it was writing is an orphan the next open removes).
JOIN_S = 10.0


class Target(NamedTuple):
    """What a checkpoint through ``through_seq`` asks the index to cover."""

    through_seq: int
    end: int
    head_hash: str


class PositionRuns:
    """The positions index of one run of the daemon: caught up in a thread of its own."""

    def __init__(self, ledger: Path, log: Any) -> None:
        self.ledger = ledger
        self.directory = ledger / DIRECTORY / positions.DIRECTORY
        self.log = log
        self._lock = threading.Lock()
        self._target: Target | None = None
        self._thread: threading.Thread | None = None
        self._store: IndexStore | None = None
        self._closed = False

    def due(self, through_seq: int, end: int, head_hash: str) -> None:
        """Records through ``through_seq`` (ending at byte ``end``, hash ``head_hash``)
        are durable and checkpointed: cover them, soon. Any thread; never blocks."""
        with self._lock:
            if self._closed:
                return
            self._target = Target(through_seq, end, head_hash)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="execd-positions")
                self._thread.start()

    def wait(self) -> None:
        """Block until no catch-up is under way (tests and the bench's primer)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def close(self) -> None:
        """No checkpoint will come any more: stop after the step under way."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join(JOIN_S)
            if thread.is_alive():
                return
        if self._store is not None:
            self._store.close()
            self._store = None

    def _work(self) -> None:
        while True:
            with self._lock:
                target, self._target = self._target, None
                if target is None or self._closed:
                    self._thread = None
                    return
            try:
                self._catch_up(target)
            except RunDamaged as exc:
                # Tail checks every record it is pointed at, so nothing wrong is shown;
                # but the damage would fail every merge from now on: read it all again.
                self._condemn(exc)
            except (OSError, IndexDamaged, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.log.warning("index.positions_unwritten", through_seq=target.through_seq,
                                 error=why, note="tail --intent reads the rest linearly; "
                                 "the next checkpoint tries again")

    def _condemn(self, damaged: RunDamaged) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        try:
            condemn(self.directory)
        except OSError as exc:
            self.log.warning("index.positions_unwritten", error=exc.strerror or str(exc),
                             note="tail --intent reads the rest linearly")
            return
        self.log.warning("index.positions_rebuilt", reason=str(damaged),
                         note="read again from the ledger over the next checkpoints")

    def _open(self, layout: Layout, target: Target) -> IndexStore:
        if self._store is not None:
            return self._store
        try:
            store: IndexStore | None = IndexStore.open(self.directory)
            assert store is not None
            why = _disagrees(store, layout, target)
        except IndexDamaged as exc:
            # No index yet is no news; a damaged one is.
            store, why = None, str(exc) if (self.directory / MANIFEST).exists() else ""
        if why:
            self.log.warning("index.positions_rebuilt", reason=why,
                             note="read again from the ledger over the next checkpoints")
        if store is None or why:
            if store is not None:
                store.close()
            store = IndexStore.create(self.directory)
        self._store = store
        return store

    def _catch_up(self, target: Target) -> None:
        layout = Layout.read(self.ledger)
        store = self._open(layout, target)
        span = store.manifest.span
        # Bytes archived since the index stopped are not read: tail never shows them.
        start = max(span.end if span is not None else 0, layout.archived)
        first = span.first if span is not None else layout.archived
        if start >= target.end:
            return  # a restart folded records the index already covers
        pending: list[bytes] = []
        batch: Batch | None = None
        for at, lines in _chunks(layout, start, target.end):
            if self._closed:
                return
            batch = entries_of(lines, at)
            if batch is None:
                raise IndexDamaged(f"bytes {at} to {at + sum(map(len, lines))} of the ledger "
                                   "are not all records: not indexed")
            pending.extend(batch.entries)
            if len(pending) >= CHUNK:
                self._write(store, pending, first, batch)
        if batch is None or batch.last.seq != target.through_seq or batch.end != target.end:
            raise IndexDamaged(f"the ledger through byte {target.end} does not end with "
                               f"record {target.through_seq}")
        if batch.last.seq > store.through_seq:
            self._write(store, pending, first, batch)
        self.log.info("index.positions_written", through_seq=target.through_seq,
                      runs=len(store.manifest.runs))
        while not self._closed and (done := store.compact(filtered=False)) is not None:
            done.added.close()

    def _write(self, store: IndexStore, pending: list[bytes], first: int, batch: Batch) -> None:
        span = Span(first, batch.last_start, batch.end, batch.last.hash)
        run = store.write_run(sorted(pending), batch.last.seq, positions.VALUE, span=span,
                              filtered=False)
        run.close()
        pending.clear()


def _chunks(layout: Layout, start: int, end: int) -> Iterator[tuple[int, list[bytes]]]:
    """The whole lines from byte ``start`` (a line's start) up to byte ``end`` (a line's
    end), about :data:`READ_BYTES` at a time: (byte-global start of the first, lines)."""
    for (path, size), base in zip(layout.segments, layout.starts, strict=True):
        if base + size <= start or base >= end:
            continue
        at, stop = max(start, base) - base, min(end, base + size) - base
        with open(path, "rb") as handle:
            handle.seek(at)
            held = b""
            while at < stop:
                data = handle.read(min(READ_BYTES, stop - at))
                if not data:
                    break
                at += len(data)
                data = held + data if held else data
                cut = data.rfind(b"\n")
                if cut < 0:
                    if len(data) > MAX_LINE:
                        raise IndexDamaged(f"{path.name}: a line longer than any record")
                    held = data
                    continue
                yield base + at - len(data), data[:cut].split(b"\n")
                held = data[cut + 1:]
            if held:
                raise IndexDamaged(f"{path.name}: a line without its end before byte {end}")


def _disagrees(store: IndexStore, layout: Layout, target: Target) -> str:
    """Why the open index is not this ledger's ("" when it is)."""
    span, through = store.manifest.span, store.through_seq
    if span is None:
        return "" if through == 0 else "a manifest without its span"
    if through > target.through_seq or span.end > target.end:
        return f"it covers record {through}, past the ledger's checkpoint {target.through_seq}"
    if span.first > layout.archived:
        return "it begins after the ledger's first segment (segments were restored)"
    if span.last < layout.archived:
        return ""  # its last record was archived: the records after it are read from span.end
    reader = LineReader(layout)
    try:
        line = reader.line_at(span.last)
    finally:
        reader.close()
    named = read_line(line) if line is not None else None
    if named is None or named.seq != through or named.hash != span.head_hash \
            or span.last + len(line or b"") + 1 != span.end:
        return f"byte {span.last} of the ledger is not record {through} as it names it"
    return ""
