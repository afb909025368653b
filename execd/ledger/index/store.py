"""The id index's directory: its runs, their manifest, and compaction.

``<ledger_dir>/index/`` holds sorted runs (:mod:`execd.ledger.index.runs`) and
``MANIFEST.json``, which alone says which runs are live and the ledger seq the index
covers (``through_seq``: every id with an outcome or order at or before that seq is in
a run), with that record's hash (``through_hash``), which ties the index to its own
ledger: start-up compares it with the chain (``ledger/reindex.py``), so an index
copied from another ledger, or from an older copy of this one, is rebuilt, never used.
The manifest is replaced atomically (temp file, fsync, rename, directory fsync) and
carries the SHA-256 of its own content. A run is durable before the
manifest names it, and a run the manifest no longer names is deleted only after the
new manifest is durable, so a crash at any point leaves either the old index or the
new one, plus orphan files that the next :meth:`IndexStore.open` removes.

``filter.bin`` (optional) is a saved filter (``filter.pack``) and the seq its ids
reach, trusted only when the manifest names its SHA-256 (``filter_sha256``, written
after the file is durable): a filter that came from elsewhere holds other ids.
Rebuilding a filter from the runs costs a few microseconds an id, so a daemon saves it
now and then (every few hundred thousand ids, not at every run: a filter
changes nearly every page between two checkpoints) and re-reads only the runs after
it. It is replaced atomically too, removed by :meth:`IndexStore.create`, and a
damaged one is reported like the rest; the caller then builds one from the runs.

Opening checks the manifest's digest and each run's header, size and meta
(``runs.load``; a run's records are checked block by block as they are read) and
raises :class:`~execd.model.errors.IndexDamaged` for a missing or damaged index: the
index is derived state, so the caller logs it and rebuilds from the ledger
(:meth:`IndexStore.create`, then runs of the ids an ids-only fold finds), never
trusting what it found (DESIGN §3). A block found damaged later
(:class:`~execd.model.errors.RunDamaged`) stops the daemon after :func:`condemn` has
removed the manifest, so the next start rebuilds rather than trusting the run.

Compaction is size-tiered (:func:`plan_compaction`, pure): once ``factor`` runs share
a tier (sizes within a factor of each other), they are merged into one, streamed, so
a lookup touches a number of runs that grows with the log of the history. It has two
steps so it can run in a worker thread beside lookups: :meth:`IndexStore.merge_due`
writes the merged run (an orphan until adopted), :meth:`IndexStore.adopt` makes it
live. Every method may be called from any thread; the manifest changes under a lock.

The seam for the daemon: a checkpointer at seq X calls :meth:`IndexStore.write_run`
with the ids its durable fold added since the last run, then hands the returned
:class:`~execd.ledger.index.runs.Run` and those ids to the sentinel's
:class:`~execd.ledger.index.ids.IdIndex` (``attach``), which forgets them from its
recent set; a compaction's result goes the same way (``IdIndex.replace``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec
from msgspec import Struct

from execd.ledger.index import runs
from execd.ledger.index.filter import BITS_PER_ID, HEADER, BlockedBloom, unpack, words_for
from execd.ledger.index.runs import Run, RunInfo
from execd.ledger.segments import fsync_dir, read_derived, read_derived_buffer, replace_durably
from execd.model.errors import IndexDamaged

DIRECTORY = "index"
MANIFEST = "MANIFEST.json"
FILTER = "filter.bin"
_TEMP = f".{MANIFEST}.tmp"
_FILTER_TEMP = f".{FILTER}.tmp"
_RUN = re.compile(r"^run-(\d{8})\.ids$")
_MANIFEST_LIMIT = 1 << 20
_T = TypeVar("_T")
VERSION = 2  # 2: through_hash and filter_sha256 (a version-1 index is rebuilt)
FACTOR = 4
BASE = 1 << 16  # a run of up to this many ids is in tier 0


class Span(Struct, frozen=True):
    """The ledger bytes an index was read from, for an index that holds byte offsets
    (the positions index, :mod:`execd.ledger.index.positions`): byte-global offsets,
    counting archived segments' bytes as a snapshot's ``resume`` does
    (ledger/retention.py)."""

    first: int
    """Where reading began: the first segment then in the ledger directory."""
    last: int
    """Where record ``through_seq`` starts."""
    end: int
    """Just after record ``through_seq``'s line."""
    head_hash: str
    """Record ``through_seq``'s hash: a reader checks the record at ``last`` has it."""


class Manifest(Struct, frozen=True, omit_defaults=True):
    """The live runs, oldest first, the seq they cover and that record's hash (""
    before any run), the next run's number, and the saved filter's SHA-256 (None: no
    filter is vouched for).

    ``span`` (None, and then not written) is where in the ledger the runs' positions
    were read from (the positions index).
    """

    version: int
    through_seq: int
    next_number: int
    runs: tuple[RunInfo, ...]
    through_hash: str = ""
    filter_sha256: str | None = None
    span: Span | None = None


class _ManifestFile(Struct, frozen=True):
    manifest: Manifest
    sha256: str


def run_name(number: int) -> str:
    """The file name of run ``number``."""
    return f"run-{number:08d}.ids"


def tier(count: int, factor: int = FACTOR, base: int = BASE) -> int:
    """A run's size tier: 0 up to ``base`` ids, then one more per ``factor`` times more."""
    level, limit = 0, base
    while count > limit:
        level += 1
        limit *= factor
    return level


def plan_compaction(infos: Sequence[RunInfo], factor: int = FACTOR,
                    base: int = BASE) -> tuple[RunInfo, ...]:
    """The runs to merge next (the ``factor`` oldest of the lowest full tier), or ()."""
    tiers: dict[int, list[RunInfo]] = {}
    for info in infos:
        tiers.setdefault(tier(info.count, factor, base), []).append(info)
    for level in sorted(tiers):
        if len(tiers[level]) >= factor:
            return tuple(tiers[level][:factor])
    return ()


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest file's bytes: the manifest and the SHA-256 of its encoding."""
    body = msgspec.json.encode(manifest)
    return msgspec.json.encode(_ManifestFile(manifest, hashlib.sha256(body).hexdigest()))


def decode_manifest(data: bytes) -> Manifest:
    """The manifest in ``data``; IndexDamaged if it is not one or its digest differs."""
    try:
        found = msgspec.json.decode(data, type=_ManifestFile)
    except msgspec.DecodeError as exc:
        raise IndexDamaged(f"{MANIFEST}: not a manifest ({exc})") from None
    manifest = found.manifest
    if hashlib.sha256(msgspec.json.encode(manifest)).hexdigest() != found.sha256:
        raise IndexDamaged(f"{MANIFEST}: its SHA-256 does not match its content")
    if manifest.version != VERSION:
        raise IndexDamaged(f"{MANIFEST}: version {manifest.version}, expected {VERSION}")
    names = [info.name for info in manifest.runs]
    if len(set(names)) != len(names) or not all(_RUN.match(name) for name in names):
        raise IndexDamaged(f"{MANIFEST}: run names repeated or not run names")
    if any(info.through_seq > manifest.through_seq for info in manifest.runs):
        raise IndexDamaged(f"{MANIFEST}: a run covers more than the index")
    return manifest


def read_manifest(directory: Path) -> Manifest:
    """The manifest of the index in ``directory``, only read (a reader's view: nothing is
    written or removed). IndexDamaged when there is none or it is damaged. Blocking."""
    data = _read(directory / MANIFEST, _MANIFEST_LIMIT)
    if data is None:
        raise IndexDamaged(f"{directory}: no index (no {MANIFEST})")
    return decode_manifest(data)


class Merged(Struct, frozen=True):
    """A compaction's first step: the merged run, written, and the runs it replaces."""

    run: Run
    inputs: tuple[RunInfo, ...]


class Compaction(Struct, frozen=True):
    """A compaction made live: the new run (the receiver's to close) and the names
    of the runs it replaced (each reader closes its own copies of them)."""

    def swapped(self, held: Sequence[Run]) -> list[Run]:
        """A reader's runs ``held`` with the merged ones closed and the new one in their
        place, oldest first."""
        gone = set(self.removed)
        kept = []
        for run in held:
            if run.info.name in gone:
                run.close()
            else:
                kept.append(run)
        kept.append(self.added)
        kept.sort(key=lambda run: run.info.through_seq)
        return kept

    added: Run
    removed: tuple[str, ...]


class IndexStore:
    """One open index directory: the manifest in force and the runs it names."""

    def __init__(self, directory: Path, manifest: Manifest, opened: dict[str, Run],
                 latest: Callable[[bytes], int] | None = None) -> None:
        self.directory = directory
        #: How a merge chooses among records of one key (``runs.merge``; None: the
        #: smallest): the consumed-file tables keep the latest entry of each file.
        self.latest = latest
        self._manifest = manifest
        self._runs = opened
        self._lock = threading.Lock()
        self._compacting = threading.Lock()

    @classmethod
    def open(cls, directory: Path, latest: Callable[[bytes], int] | None = None
             ) -> IndexStore:
        """Open and check the index in ``directory``; remove orphans. Blocking.

        IndexDamaged when there is no index, or its manifest or any run is damaged.
        """
        manifest = read_manifest(directory)
        opened: dict[str, Run] = {}
        try:
            for info in manifest.runs:
                opened[info.name] = runs.load(directory / info.name, info)
        except BaseException:
            for run in opened.values():
                run.close()
            raise
        _remove_orphans(directory, {info.name for info in manifest.runs})
        return cls(directory, manifest, opened, latest)

    @classmethod
    def create(cls, directory: Path, latest: Callable[[bytes], int] | None = None
               ) -> IndexStore:
        """A new, empty index in ``directory``, replacing whatever index was there."""
        directory.mkdir(parents=True, exist_ok=True)
        _remove_orphans(directory, set())
        # A filter saved for the old runs may claim seqs the new runs cover without
        # holding their ids: it must not survive a rebuild. A damaged manifest may be
        # no file at all (a directory would stop the rename of the new one).
        _clear(directory / FILTER)
        _clear(directory / MANIFEST)
        manifest = Manifest(VERSION, 0, 1, ())
        _write_manifest(directory, manifest)
        return cls(directory, manifest, {}, latest)

    @property
    def manifest(self) -> Manifest:
        """The manifest in force."""
        return self._manifest

    @property
    def through_seq(self) -> int:
        """The ledger seq the index covers (0: none)."""
        return self._manifest.through_seq

    @property
    def through_hash(self) -> str:
        """The hash of record ``through_seq`` as the index was written ("" for none)."""
        return self._manifest.through_hash

    def open_runs(self) -> list[Run]:
        """The live runs, oldest first, each with a descriptor the caller owns."""
        with self._lock:
            return [self._runs[info.name].reopen() for info in self._manifest.runs]

    def write_run(self, records: Iterable[bytes], through_seq: int,
                  value_size: int = 0, capacity: int | None = None, *,
                  through_hash: str = "", span: Span | None = None,
                  filtered: bool = True) -> Run:
        """Make a run of ``records`` (sorted, unique) live, covering through
        ``through_seq``, whose record has hash ``through_hash`` (the daemon always
        names it for the id index and the file tables: one without it is another
        ledger's to start-up); the returned run is the caller's. Blocking (two fsyncs).
        ``capacity`` sizes the run's filter (``runs.write``: default, their number);
        ``span``, when given, becomes the manifest's (else it keeps the one it has);
        ``filtered`` false: no filter (``runs.write``).

        ValueError unless ``through_seq`` is past the index's: a saved filter through
        seq F is trusted to hold every run through F (``IdIndex``).
        """
        with self._lock:
            if through_seq <= self._manifest.through_seq:
                raise ValueError(f"a run through seq {through_seq} is not past the index "
                                 f"(through {self._manifest.through_seq})")
            number = self._take_number()
        run = runs.write(self.directory / run_name(number), records, through_seq, value_size,
                         capacity, filtered)
        fsync_dir(self.directory)
        with self._lock:
            now = self._manifest
            self._commit(msgspec.structs.replace(
                now, through_seq=through_seq, through_hash=through_hash,
                runs=(*now.runs, run.info), span=span or now.span))
            self._runs[run.info.name] = run
            return run.reopen()

    def merge_due(self, factor: int = FACTOR, base: int = BASE,
                  filtered: bool = True) -> Merged | None:
        """Write the merge of the runs due for compaction, if any (not yet live).

        Blocking and long (streams every record of the inputs); one at a time.
        ``filtered`` false: the merged run has no filter (``runs.write``: an index that
        is only read by key range, the positions index).
        """
        with self._lock:
            inputs = plan_compaction(self._manifest.runs, factor, base)
            if not inputs:
                return None
            value_size = inputs[0].value_size
            if any(info.value_size != value_size for info in inputs):
                raise ValueError("runs with and without values cannot be merged")
            self._compacting.acquire()
            sources = [self._runs[info.name] for info in inputs]
            number = self._take_number()
        try:
            run = runs.write(self.directory / run_name(number),
                             runs.merge((source.records() for source in sources), self.latest,
                                        repeats=value_size == runs.REPEATS),
                             max(info.through_seq for info in inputs), value_size,
                             capacity=sum(info.count for info in inputs), filtered=filtered)
            fsync_dir(self.directory)
        except BaseException:
            self._compacting.release()
            raise
        return Merged(run, inputs)

    def adopt(self, merged: Merged) -> Compaction:
        """Make ``merged`` live in place of its inputs, then delete them. Blocking."""
        try:
            with self._lock:
                now = self._manifest
                gone = {info.name for info in merged.inputs}
                kept = [info for info in now.runs if info.name not in gone]
                live = sorted((*kept, merged.run.info), key=lambda info: info.through_seq)
                self._commit(msgspec.structs.replace(now, runs=tuple(live)))
                self._runs[merged.run.info.name] = merged.run
                for name in gone:
                    self._runs.pop(name).close()
            for name in gone:
                (self.directory / name).unlink(missing_ok=True)
            fsync_dir(self.directory)
        finally:
            self._compacting.release()
        return Compaction(merged.run.reopen(), tuple(sorted(gone)))

    def compact(self, factor: int = FACTOR, base: int = BASE,
                filtered: bool = True) -> Compaction | None:
        """Merge the runs due, if any, and make the result live. Blocking."""
        merged = self.merge_due(factor, base, filtered)
        return None if merged is None else self.adopt(merged)

    def save_filter(self, packed: bytes) -> None:
        """Replace the saved filter (``filter.pack``'s bytes) atomically, then name its
        SHA-256 in the manifest. Blocking. A crash between the two leaves a filter the
        manifest does not vouch for: built from the runs instead."""
        _replace(self.directory, FILTER, packed)
        digest = hashlib.sha256(packed).hexdigest()
        with self._lock:
            self._commit(msgspec.structs.replace(self._manifest, filter_sha256=digest))

    def load_filter(self) -> tuple[BlockedBloom, int] | None:
        """The saved filter and the seq its ids reach, or None when none was saved.

        IndexDamaged when it is damaged: the caller builds one from the runs instead.
        """
        vouched = self._manifest.filter_sha256
        data = _read_buffer(self.directory / FILTER, _filter_limit(self._manifest))
        if data is None:
            return None
        if vouched is None or hashlib.sha256(data).hexdigest() != vouched:
            raise IndexDamaged(f"{FILTER}: not the filter the manifest names")
        # The manifest's digest covers every byte: the file's own need not be computed
        # again (it is what a filter found without a manifest would be judged by).
        return unpack(data, vouched=True)

    def close(self) -> None:
        """Close the store's own descriptors (the runs it handed out are the callers')."""
        with self._lock:
            for run in self._runs.values():
                run.close()
            self._runs.clear()

    def _take_number(self) -> int:
        now = self._manifest
        self._manifest = msgspec.structs.replace(now, next_number=now.next_number + 1)
        return now.next_number

    def _commit(self, manifest: Manifest) -> None:
        _write_manifest(self.directory, manifest)
        self._manifest = manifest


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    _replace(directory, MANIFEST, encode_manifest(manifest) + b"\n")


def _replace(directory: Path, name: str, data: bytes) -> None:
    # Atomic (DESIGN §3: derived state is replaced whole or not at all).
    replace_durably(directory / name, data)


def _read(path: Path, limit: int) -> bytes | None:
    """The bytes of the index file ``path`` (None: there is none); IndexDamaged when it
    is not a regular file, is over ``limit`` bytes or cannot be read, never a hang."""
    return _reading(read_derived, path, limit)


def _read_buffer(path: Path, limit: int) -> bytearray | None:
    """:func:`_read` into a buffer, not copied again (a saved filter)."""
    return _reading(read_derived_buffer, path, limit)


def _reading(read: Callable[[Path, int], _T], path: Path, limit: int) -> _T | None:
    try:
        return read(path, limit)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexDamaged(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise IndexDamaged(f"{path}: {exc}") from None


def condemn(directory: Path) -> None:
    """Remove the manifest of the index in ``directory``, durably, so that the next
    start finds no index there and rebuilds it from the ledger: one of its runs failed
    a block's check (:class:`~execd.model.errors.RunDamaged`). Blocking. OSError when
    it cannot be removed."""
    _clear(directory / MANIFEST)
    fsync_dir(directory)


def _filter_limit(manifest: Manifest) -> int:
    # A saved filter holds ids of the runs only (its seq is at most the manifest's), and
    # is sized for at most twice the ids held when it grew (ids.IdIndex.grow): four
    # times the runs' ids, at four times the bits per id, bounds every one execd wrote
    # (ids.MIN_CAPACITY, 1 << 20, is the smallest; ids imports this module).
    held = sum(info.count for info in manifest.runs)
    return HEADER.size + 8 * words_for(max(1 << 20, 4 * held), 4 * BITS_PER_ID)


def _clear(path: Path) -> None:
    # What is at an index file's name, whatever it is: index/ holds only execd's files.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_orphans(directory: Path, live: set[str]) -> None:
    removed = False
    for entry in directory.iterdir():
        orphan = _RUN.match(entry.name) is not None and entry.name not in live
        if orphan or entry.name in (_TEMP, _FILTER_TEMP):
            _clear(entry)
            removed = True
    if removed:
        fsync_dir(directory)
