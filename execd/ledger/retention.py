"""Retention: old segments moved to an archive, gzip-compressed, once a checkpoint covers
them (README, "Retention").

``execd ledger archive`` moves every segment whose records all lie at or before the
oldest kept checkpoint's last record into ``<ledger_dir>/archive/`` (or ``--to``), one
``<segment>.gz`` each, with a manifest naming, per segment, its first and last seq, its
last record's hash, its size and the sha256 of its bytes and of the compressed file.
The manifest is written twice, atomically: in the archive (it travels with the files)
and beside the ledger as ``archived.json`` (start-up reads that one and never the
archive: a snapshot's ``resume`` counts the archived bytes too).

Each step is durable before the next (compressed file, both manifests, then the
original's removal), so a kill at any point leaves every record in the ledger, in a
complete archive file, or both; a segment found in both is still the ledger's, and the
next ``archive`` moves it again. The segment being written (the newest) is never moved,
and nothing is moved while another process holds the ledger's lock.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import IO, Final

import msgspec
from msgspec import Struct

from execd.ledger import checkpoints
from execd.ledger.head import Head
from execd.ledger.record import GENESIS, record_decoder
from execd.ledger.scan import Claim, Resume
from execd.ledger.segments import (
    MAX_LINE,
    READ_CHUNK,
    exclusive,
    fsync_dir,
    list_segments,
    open_derived,
    read_derived,
    replace_durably,
)
from execd.model.errors import LedgerCorrupt

ARCHIVE: Final = "archive"
MANIFEST: Final = "manifest.json"
# The copy beside the ledger: what start-up and verify read to know what was moved.
ARCHIVED: Final = "archived.json"
# A manifest line is about 400 bytes a segment; this bounds what a reader takes in.
_MANIFEST_BYTES: Final = 64 << 20


class Archived(Struct, frozen=True):
    """One archived segment, as the manifest names it."""

    name: str
    """The segment's file name in the ledger (its archive file adds ``.gz``)."""
    first_seq: int
    last_seq: int
    last_hash: str
    """The hash of its last record: the next segment's first record links to it."""
    size: int
    """Its bytes, uncompressed."""
    sha256: str
    """Of its bytes, uncompressed."""
    gz_sha256: str
    """Of the compressed file."""


class Manifest(Struct):
    """Every archived segment, oldest first, and where their files are."""

    segments: list[Archived] = msgspec.field(default_factory=list)
    directory: str = ARCHIVE
    """The archive directory: relative to the ledger directory unless absolute."""
    v: int = 1


_decode_manifest = msgspec.json.Decoder(Manifest).decode


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path`` (empty when there is none); LedgerCorrupt when unreadable."""
    try:
        data = read_derived(path, _MANIFEST_BYTES)
    except FileNotFoundError:
        return Manifest()
    except (OSError, ValueError) as exc:
        # Not derived: it says which records were moved, so it is never rebuilt, and a
        # FIFO there must not hang start-up or verify (segments.open_derived).
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise LedgerCorrupt(f"{path}: not an archive manifest ({why}); execd writes it as "
                            f"a regular file, with a copy in the archive ({MANIFEST})") from None
    try:
        return _decode_manifest(data)
    except msgspec.DecodeError as exc:
        raise LedgerCorrupt(f"{path}: not an archive manifest ({exc})") from None


def archived(ledger: Path) -> Manifest:
    """What was moved out of ``ledger``: its ``archived.json``, without the segments that are
    still in the ledger too (a kill came before their removal: the ledger's copy counts)."""
    manifest = read_manifest(ledger / ARCHIVED)
    present = {path.name for path in list_segments(ledger)}
    manifest.segments = [entry for entry in manifest.segments if entry.name not in present]
    return manifest


def archived_bytes(ledger: Path) -> int:
    """The bytes of the segments moved out of ``ledger``: where its own segments begin, in
    the offsets a snapshot's ``resume`` counts."""
    return sum(entry.size for entry in archived(ledger).segments)


def archive_dir(ledger: Path, manifest: Manifest) -> Path:
    """The archive directory ``manifest`` names, for the ledger in ``ledger``."""
    return ledger / manifest.directory


class _Chain:
    """The chain checked record by record across segments, as scan checks it."""

    def __init__(self, seq: int = 0, last_hash: str = GENESIS) -> None:
        self.seq, self.hash, self.last_time, self.records = seq, last_hash, 0, 0

    def take(self, where: str, line: bytes) -> None:
        """Check ``line`` is the next record; LedgerCorrupt when it is not."""
        try:
            record = record_decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise LedgerCorrupt(f"{where}: unreadable record ({exc})") from None
        problem = record.problem(line)
        if problem:
            raise LedgerCorrupt(f"{where}: {problem}")
        if record.seq != self.seq + 1 or record.prev != self.hash:
            raise LedgerCorrupt(f"{where}: expected seq {self.seq + 1} linked to the previous "
                                f"record, found seq {record.seq}")
        self.seq, self.hash, self.records = record.seq, record.hash, self.records + 1
        self.last_time = max(self.last_time, record.time)


def _lines(stream: IO[bytes] | gzip.GzipFile, where: str) -> Iterator[bytes]:
    """Each whole line of ``stream``, bounded; LedgerCorrupt for a longer or unfinished one."""
    while line := stream.readline(MAX_LINE + 1):
        if not line.endswith(b"\n"):
            raise LedgerCorrupt(f"{where}: a line longer than {MAX_LINE} bytes or unfinished")
        yield line[:-1]


def _compress(path: Path, target: Path, chain: _Chain, bound: int) -> Archived:
    """Write ``path`` gzip-compressed to ``target`` durably (streamed), checking its chain
    and that it ends at or before record ``bound``."""
    first = chain.seq + 1
    temp = target.with_name(f".{target.name}.tmp")
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as source, open(temp, "wb") as raw:
        with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as packed:
            for line in _lines(source, path.name):
                chain.take(f"{path.name} at byte {size}", line)
                sha.update(line + b"\n")
                size += len(line) + 1
                packed.write(line + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    if chain.seq < first or chain.seq > bound:
        temp.unlink()
        raise LedgerCorrupt(f"{path.name}: holds records {first}..{chain.seq}, not wholly "
                            f"at or before the oldest kept checkpoint ({bound})")
    os.replace(temp, target)
    fsync_dir(target.parent)
    return Archived(path.name, first, chain.seq, chain.hash, size, sha.hexdigest(),
                    _file_sha(target))


def _file_sha(path: Path) -> str:
    """The sha256 of the regular file at ``path``, read in bounded chunks (ValueError
    when it is no regular file: a FIFO would block the read)."""
    sha = hashlib.sha256()
    with open(open_derived(path), "rb") as handle:
        while block := handle.read(READ_CHUNK):
            sha.update(block)
    return sha.hexdigest()


def _bound(ledger: Path) -> int:
    """The oldest kept checkpoint's last record (0: none, nothing may be archived)."""
    kept = [checkpoints.through_of(path.name) or 0 for path in checkpoints.listed(ledger)]
    return min(kept) if kept else 0


def archive(ledger: Path, to: Path | None = None,
            step: Callable[[str], None] | None = None) -> list[Archived]:
    """Move every segment wholly at or before the oldest kept checkpoint into the archive;
    the segments moved. Holds the ledger's lock throughout (LedgerInUse while the daemon
    runs). ``step`` is told each durable step's name (tests kill the process there)."""
    with exclusive(ledger):
        manifest = read_manifest(ledger / ARCHIVED)
        if to is not None:
            wanted = str(to)
            if archived(ledger).segments and wanted != manifest.directory:
                raise LedgerCorrupt(f"{ledger}: its archive is in {manifest.directory}, not "
                                    f"{wanted}: one archive directory per ledger")
            manifest.directory = wanted
        directory = archive_dir(ledger, manifest)
        directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(directory.parent)
        for stray in directory.glob(".*.tmp"):  # a kill's half-written file: never counted
            stray.unlink()
        kept = list(archived(ledger).segments)
        chain = _Chain()
        if kept:
            chain = _Chain(kept[-1].last_seq, kept[-1].last_hash)
        bound, moved = _bound(ledger), []
        for path, following in pairwise(list_segments(ledger)):  # never the newest
            if _first_seq(following) - 1 > bound:
                break
            entry = _compress(path, directory / f"{path.name}.gz", chain, bound)
            _tell(step, f"compressed {path.name}")
            kept = [old for old in kept if old.name != entry.name] + [entry]
            manifest.segments = kept
            data = msgspec.json.encode(manifest)
            replace_durably(directory / MANIFEST, data)
            _tell(step, f"manifest {path.name}")
            replace_durably(ledger / ARCHIVED, data)
            _tell(step, f"archived.json {path.name}")
            path.unlink()
            fsync_dir(ledger)
            _tell(step, f"removed {path.name}")
            moved.append(entry)
        return moved


def _first_seq(path: Path) -> int:
    """The seq of the first record in segment ``path``; LedgerCorrupt when unreadable."""
    with open(path, "rb") as handle:
        line = next(_lines(handle, path.name), b"")
    try:
        return record_decoder.decode(line).seq
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise LedgerCorrupt(f"{path.name}: its first line is no record ({exc})") from None


def _tell(step: Callable[[str], None] | None, name: str) -> None:
    if step is not None:
        step(name)


def verify_archived(ledger: Path, claims: list[Claim],
                    archive_at: Path | None = None) -> tuple[Resume | None, int]:
    """Check every archived segment, streamed from its compressed file, against the manifest
    and the chain (and ``claims`` that fall in it); where the scan of the ledger picks up
    (None: nothing archived) and the segments checked. LedgerCorrupt on any difference."""
    manifest = archived(ledger)
    if not manifest.segments:
        return None, 0
    directory = archive_at or archive_dir(ledger, manifest)
    _agrees(ledger, directory / MANIFEST)
    chain = _Chain()
    wanted = {claim.seq: (claim, source) for claim, source in claims}
    for entry in manifest.segments:
        path = directory / f"{entry.name}.gz"
        _check_segment(path, entry, chain, wanted)
    segments = list_segments(ledger)
    if not segments:
        raise LedgerCorrupt(f"{ledger}: every segment is archived; the newest never is")
    return Resume(segments[0].name, 0, chain.seq, chain.hash, chain.last_time,
                  chain.records), len(manifest.segments)


def _agrees(ledger: Path, copy: Path) -> None:
    """LedgerCorrupt unless the archive's own manifest (``copy``) names the segments
    ``archived.json`` names, in order. It may name one more whose segment is still in the
    ledger: archive writes the archive's copy first, and a kill can come between."""
    if not os.path.lexists(copy):
        raise LedgerCorrupt(f"{copy}: missing; archive writes it beside the files it names")
    found = read_manifest(copy)
    said = read_manifest(ledger / ARCHIVED).segments
    present = {path.name for path in list_segments(ledger)}
    extra = found.segments[len(said):]
    differ = [a.name for a, b in zip(found.segments, said, strict=False) if a != b]
    if len(found.segments) < len(said):
        differ.append(said[len(found.segments)].name)
    differ += [entry.name for entry in extra if entry.name not in present]
    if differ:
        raise LedgerCorrupt(f"{copy}: names other archived segments than {ledger / ARCHIVED} "
                            f"(they differ at {differ[0]}); one of the two was edited or "
                            "replaced")


def _check_segment(path: Path, entry: Archived, chain: _Chain,
                   wanted: dict[int, tuple[Head, str]]) -> None:
    first, sha, size = chain.seq + 1, hashlib.sha256(), 0
    try:
        # The compressed bytes first: a changed file is named as such, never inflated.
        gz_sha = _file_sha(path)
        if gz_sha != entry.gz_sha256:
            raise LedgerCorrupt(f"{path}: its sha256 is not the one the archive manifest "
                                "names (the compressed file changed)")
        with open(open_derived(path), "rb") as raw, gzip.GzipFile(fileobj=raw) as packed:
            for line in _lines(packed, path.name):
                chain.take(f"{path.name} at byte {size}", line)
                said = wanted.get(chain.seq)
                if said is not None and said[0].hash != chain.hash:
                    raise LedgerCorrupt(
                        f"{path.name}: record {chain.seq} has hash {chain.hash[:16]}…, "
                        f"but {said[1]} says {said[0].hash[:16]}…")
                sha.update(line + b"\n")
                size += len(line) + 1
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise LedgerCorrupt(f"{path}: unreadable archive file ({exc})") from None
    found = (path.name.removesuffix(".gz"), first, chain.seq, chain.hash, size,
             sha.hexdigest(), gz_sha)
    said_of = (entry.name, entry.first_seq, entry.last_seq, entry.last_hash, entry.size,
               entry.sha256, entry.gz_sha256)
    if found != said_of:
        raise LedgerCorrupt(f"{path}: not the segment the archive manifest names "
                            f"(found seqs {first}..{chain.seq}, {size} bytes)")


def refusal(ledger: Path, moved: list[Archived], ignored: list[tuple[str, str]]) -> str:
    """Why start-up cannot fold ``ledger`` whose ``moved`` segments are archived, and what to
    restore (``ignored``: each snapshot passed over, with why)."""
    directory = archive_dir(ledger, read_manifest(ledger / ARCHIVED))
    why = "; ".join(f"{name}: {reason}" for name, reason in ignored) or "there is none"
    return (f"{ledger}: no checkpoint is usable ({why}), and records {moved[0].first_seq}.."
            f"{moved[-1].last_seq} are archived in {directory} ({moved[0].name} to "
            f"{moved[-1].name}); a fold without them would forget their outcomes and run "
            "their intents again. Restore them: gunzip each <segment>.gz from the archive "
            f"into {ledger}, then start again")
