"""The consumed-file tables: which input files were finished, rejected or changed, on disk.

The inbox asks, about once per file, whether a name was consumed before (a second file
under it is a repeat), the size and digest a finished file had, whether a file was
rejected or recorded as changed, and how many claim names a base name already has
(``NAME.repeat-N``, ``NAME.refused-N``). These tables grow by one entry per file
forever, so with checkpoints on they live in ``<ledger_dir>/index/files/``
(:data:`DIRECTORY`: inside the id index's directory, so a backup of ``index/`` holds
both; each has its own manifest and is rebuilt on its own) as sorted runs behind the
same store as the duplicate-id index
(:mod:`execd.ledger.index.store`, :mod:`execd.ledger.index.runs`), and only the entries
changed since the last run are in memory (``recent``). A snapshot holds none of them;
its ``index_through`` is the record both indexes must cover (``ledger/file_index.py``
rebuilds this one when it covers less).

**One entry per name**, keyed by the first 16 bytes of ``sha256(name)``; its 80-byte
value (:data:`VALUE`, ``runs.VALUE_SIZES``) is the digest's other 16 bytes, the seq of
the ledger record that last changed the entry, the seq of the record that finished the
file (``input_file``, archive), the finished file's size, the flags
(finished, rejected, changed, digest present), the highest claim number of the name
(repeats) and the finished file's sha256 (32 raw bytes). A fixed value keeps the run
format as it is (a size in its header) instead of a values area beside it.

*Collisions.* Two names share a key with odds about n²/2¹²⁹ (n names: 10⁹ files give
10⁻²¹); a lookup also compares the other half of the digest, so a name never reads
another name's entry (that would take a collision of all of SHA-256, which the ledger's
own chain already relies on never happening). Should two names ever share a key, the
later entry replaces the earlier one in a merge: the earlier name would be claimed as
new if it came again, and its intents would still be refused by the duplicate-id index,
so nothing runs twice.

*Changes.* An entry changes (a finished file later recorded as changed, then rejected;
a base name's repeats rising), so runs are not disjoint as the id index's are: the
entry to believe is the one with the highest seq, in ``recent`` first, then among every
run whose filter admits the key (compaction keeps the same one, ``latest``), whatever
the runs' order. Each change is made to the whole current entry, so the latest entry
holds everything before it.

*Ahead of the fold.* A checkpoint writes its run before its snapshot, so start-up may
find runs covering records after the snapshot it folds from (a crash between the two),
and folds those records again over them, as the id index does. Every change is a join
(flags are only set, repeats only rise, a name is finished once: a second file under
it is a repeat), so folding a record twice changes nothing, except the one question the
fold asks of the tables: was this file finished before this record (a whole-file
outcome for a finished file says it changed since)? That is answered from the seq that
finished it (:meth:`FileTables.done_before`), not from the entry's presence.

Lookups cost one filter word per run and one 512-byte ``pread`` where it says maybe
(``Run.get``); in memory a run keeps its filter and fences, about 1.5 bytes a file.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import NamedTuple, Protocol

from execd.ledger.index.filter import probe
from execd.ledger.index.runs import KEY, Run, merge
from execd.ledger.index.store import Compaction, IndexStore, Merged

DIRECTORY = "index/files"
VALUE = 80
# rest of the digest, seq, done seq, size, flags, repeats (56 bits), sha256
_VALUE = struct.Struct(">16sQQQB7s32s")
DONE, REJECTED, CHANGED, DIGEST = 1, 2, 4, 8
_HEX = re.compile(r"^[0-9a-f]{64}$")
# The claim names the inbox makes (reader/lakehouse.py CLAIM, which imports nothing of
# the ledger's; kept equal by tests/unit/ledger/index/test_files.py).
CLAIM = re.compile(r"(?P<name>.+\.jsonl?)\.(?P<kind>repeat|refused)-(?P<n>[0-9]+)\Z", re.DOTALL)
_MAX_REPEATS = (1 << 56) - 1


class Entry(NamedTuple):
    """What the tables hold of one name."""

    flags: int
    repeats: int = 0
    size: int = 0
    sha: str = ""
    seq: int = 0
    done_seq: int = 0


_EMPTY = Entry(0)


def digest(name: str) -> tuple[bytes, bytes]:
    """(key, the rest of the digest) of ``name``."""
    full = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
    return full[:KEY], full[KEY:]


def pack(rest: bytes, entry: Entry) -> bytes:
    """The value of ``entry`` (:data:`VALUE` bytes). ValueError for a sha256 that is
    neither empty nor 64 lowercase hex digits (execd records no other)."""
    flags, sha = entry.flags & ~DIGEST, b""
    if entry.sha:
        if not _HEX.match(entry.sha):
            raise ValueError(f"a file's sha256 of {entry.sha!r}: expected 64 hex digits")
        flags, sha = flags | DIGEST, bytes.fromhex(entry.sha)
    repeats = min(entry.repeats, _MAX_REPEATS).to_bytes(7)
    return _VALUE.pack(rest, entry.seq, entry.done_seq, entry.size, flags, repeats, sha)


def unpack(value: bytes) -> tuple[bytes, Entry]:
    """(the rest of the digest, the entry) of a value :func:`pack` made."""
    rest, seq, done_seq, size, flags, repeats, sha = _VALUE.unpack(value)
    text = sha.hex() if flags & DIGEST else ""
    return rest, Entry(flags & ~DIGEST, int.from_bytes(repeats), size, text, seq, done_seq)


def latest(record: bytes) -> int:
    """A record's seq: of two records of one key, a merge keeps the higher."""
    return int.from_bytes(record[KEY + 16:KEY + 24])


class DoneTable(Protocol):
    """Finished files: name -> (size, sha256). A dict, or :class:`FileTables`' view."""

    def __contains__(self, name: object, /) -> bool: ...

    def get(self, name: str, /) -> tuple[int, str] | None: ...

    def __getitem__(self, name: str, /) -> tuple[int, str]: ...

    def __setitem__(self, name: str, value: tuple[int, str], /) -> None: ...


class NameTable(Protocol):
    """A set of names (rejected, changed). A set, or :class:`FileTables`' view."""

    def __contains__(self, name: object, /) -> bool: ...

    def add(self, name: str, /) -> None: ...


class FileTables:
    """Finished, rejected and changed files, and repeats per name: ``recent`` over runs.

    With no runs and nothing written (``FileTables()``) this is an in-memory table.
    ``done``, ``rejected`` and ``changed`` are views with the dict's and sets' lookups,
    for the inbox (whose changes, made before they are durable, stay in its own
    ``recent``); the fold changes entries with the seq of the record that made the
    change (:meth:`finish`, :meth:`reject`, :meth:`change`). Used from one thread.
    """

    def __init__(self, runs: Iterable[Run] = (), store: IndexStore | None = None) -> None:
        self._runs = list(runs)
        #: The directory its runs are written to (None: never written).
        self.store = store
        #: A merge of ``store``'s runs under way in another thread (``app/file_runs.py``).
        self.merging: Future[Merged | None] | None = None
        self._recent: dict[bytes, tuple[bytes, Entry]] = {}
        self.done = _Done(self)
        self.rejected = _Flagged(self, REJECTED)
        self.changed = _Flagged(self, CHANGED)

    @property
    def runs(self) -> tuple[Run, ...]:
        """The runs looked up."""
        return tuple(self._runs)

    @property
    def recent(self) -> int:
        """How many entries changed since the last run (held in memory)."""
        return len(self._recent)

    def entry(self, name: str) -> Entry | None:
        """What the tables hold of ``name`` (None: nothing)."""
        key, rest = digest(name)
        return self._entry(key, rest)

    def _entry(self, key: bytes, rest: bytes) -> Entry | None:
        found = self._recent.get(key)
        if found is not None and found[0] == rest:
            return found[1]
        best = None
        x, m = probe(int.from_bytes(key))
        for run in self._runs:
            if not run.filter.may_hold(x, m):
                continue
            value = run.get(key)
            if value is None:
                continue
            theirs, entry = unpack(value)
            if theirs == rest and (best is None or entry.seq > best.seq):
                best = entry
        return best

    def _put(self, name: str, seq: int, flags: int = 0, size: int | None = None,
             sha: str | None = None, repeats: int = 0) -> None:
        key, rest = digest(name)
        now = self._entry(key, rest) or _EMPTY
        self._recent[key] = (rest, Entry(
            now.flags | flags, max(now.repeats, repeats),
            now.size if size is None else size, now.sha if sha is None else sha, seq,
            seq if size is not None else now.done_seq))

    def finish(self, name: str, size: int, sha: str, seq: int = 0) -> None:
        """``name`` was read to its end (record ``seq``): ``size`` bytes of digest ``sha``."""
        self._put(name, seq, DONE, size, sha)

    def done_before(self, name: str, seq: int) -> bool:
        """Whether ``name`` was finished by a record before ``seq`` (see "Ahead of the
        fold" above)."""
        entry = self.entry(name)
        return entry is not None and bool(entry.flags & DONE) and entry.done_seq < seq

    def reject(self, name: str, seq: int = 0) -> None:
        """``name`` went to rejected/ (a claim name counts for its base name's repeats)."""
        self._put(name, seq, REJECTED)
        match = CLAIM.match(name)
        if match:
            self._put(match["name"], seq, repeats=int(match["n"]))

    def change(self, name: str, seq: int = 0) -> None:
        """``name``, finished, was recorded as changed after it was read."""
        self._put(name, seq, CHANGED)

    def repeats(self, base: str) -> int:
        """The highest claim number of ``base`` among rejected claims (0: none)."""
        entry = self.entry(base)
        return entry.repeats if entry is not None else 0

    def consumed(self, name: str) -> bool:
        """Whether ``name`` was consumed: finished, or rejected and not a claim name."""
        entry = self.entry(name)
        if entry is None:
            return False
        return bool(entry.flags & DONE or (entry.flags & REJECTED and not CLAIM.match(name)))

    def pending(self) -> list[bytes]:
        """The recent entries as run records (key, value), sorted by key."""
        return [key + pack(rest, entry) for key, (rest, entry) in sorted(self._recent.items())]

    def take_recent(self, other: FileTables) -> None:
        """Hold ``other``'s recent entries too (they are immutable tuples: a copy)."""
        self._recent.update(other._recent)

    def attach(self, run: Run) -> None:
        """Look ``run`` up from now on (it holds every recent entry): forget them."""
        self._runs.append(run)
        self._recent.clear()

    def replace(self, compaction: Compaction) -> None:
        """Swap the runs a compaction merged for its result."""
        self._runs = compaction.swapped(self._runs)

    def entries(self) -> Iterator[tuple[bytes, bytes, Entry]]:
        """Every (key, rest, entry) the tables hold, by key (the latest of each key):
        for comparing two tables. Reads every run."""
        records = merge((run.records() for run in self._runs), latest)
        recent = dict(self._recent)
        for record in records:
            key = record[:KEY]
            if key in recent:
                continue
            rest, entry = unpack(record[KEY:])
            yield key, rest, entry
        for key, (rest, entry) in sorted(recent.items()):
            yield key, rest, entry

    def close(self) -> None:
        """Close the runs' descriptors."""
        for run in self._runs:
            run.close()
        self._runs.clear()


class _Done:
    """:class:`FileTables`' finished files as a :class:`DoneTable`."""

    def __init__(self, tables: FileTables) -> None:
        self.tables = tables

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str) -> tuple[int, str] | None:
        entry = self.tables.entry(name)
        if entry is None or not entry.flags & DONE:
            return None
        return entry.size, entry.sha

    def __getitem__(self, name: str) -> tuple[int, str]:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __setitem__(self, name: str, value: tuple[int, str]) -> None:
        self.tables.finish(name, *value)


class _Flagged:
    """:class:`FileTables`' rejected or changed files as a :class:`NameTable`."""

    def __init__(self, tables: FileTables, flag: int) -> None:
        self.tables = tables
        self.flag = flag

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        entry = self.tables.entry(name)
        return entry is not None and bool(entry.flags & self.flag)

    def add(self, name: str) -> None:
        if self.flag == REJECTED:
            self.tables.reject(name)
        else:
            self.tables.change(name)


def tables_of(table: object) -> FileTables | None:
    """The :class:`FileTables` whose view ``table`` is (None: a plain dict or set)."""
    return table.tables if isinstance(table, _Done | _Flagged) else None
