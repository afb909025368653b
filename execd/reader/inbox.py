"""Where the reader's files come from: the lakehouse inbox, or a list for replay.

The inbox protocol, for ``execd run``::

    inbox/NAME.jsonl ──stable──claim (rename)──▶ work/NAME.jsonl ──input_file durable──▶ archive/
    inbox/NAME.jsonl, NAME already seen ──▶ work/NAME.jsonl.repeat-N ──▶ rejected/
    inbox/NAME.jsonl not a file, or a bad name ──▶ work/NAME.jsonl.refused-N ──▶ rejected/

A file is claimed, by renaming it into ``work/``, before its first line is read, and
only once it is stable: its inode, size and times unchanged for ``settle_ms``, so a
producer that writes in place is not read half-written. The inbox therefore only ever
holds files nobody has started, and every crash leaves an unambiguous state: a file
in ``work/`` without an ``input_file`` record is resumed at the offset the ledger
gives; one with the record is checked against it and moved on. A second file under a
consumed name, a name that cannot be recorded (not UTF-8, or too long) and anything
that is not a regular file are refused whole under a claim name of their own, never
read and never overwriting anything.

What a producer does to a file after the claim is noticed, never silently lost: the
reader compares the file with what it read when it reaches the end, and
:meth:`InboxSource.run_disposals` compares it again before moving it out of ``work/``;
a file deleted from ``work/`` before it was read to its end is recorded too. Each is an
``INPUT_FILE_CHANGED`` outcome, and the file goes to ``rejected/`` for inspection.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import ObjectSendStream
from msgspec import Struct

from execd.ledger.segments import InUse, fsync_dir
from execd.model import reasons
from execd.model.clock import monotonic
from execd.model.files import kind_of
from execd.model.messages import LATE, Entry, InputFileRecord, Source, quarantine
from execd.model.once_durable import Wake
from execd.service.liveness import Pulse

_CLAIM = re.compile(r"^(?P<name>.+\.jsonl)\.(?P<kind>repeat|refused)-(?P<n>\d+)$")
# Input file names longer than this are refused (under a hashed claim name), so that
# every claim name, NAME plus ".repeat-N", still fits the filesystem's 255 bytes.
MAX_NAME_BYTES = 240
# (inode, size, mtime_ns, ctime_ns): any write, truncation or replacement changes it.
StatKey = tuple[int, int, int, int]


class LakehouseInUse(InUse):
    """Another daemon holds the lakehouse: both would claim and execute the same files."""


class Lakehouse(Struct, frozen=True):
    """The directories under ``daemon.lakehouse``."""

    root: Path

    @property
    def inbox(self) -> Path:
        """Where producers rename finished files into."""
        return self.root / "inbox"

    @property
    def work(self) -> Path:
        """Where a file is claimed into before its first line is read."""
        return self.root / "work"

    @property
    def archive(self) -> Path:
        """Where a consumed file goes once its input_file record is durable."""
        return self.root / "archive"

    @property
    def rejected(self) -> Path:
        """Where a file refused whole goes once its input_file record is durable."""
        return self.root / "rejected"

    @property
    def runs(self) -> Path:
        """The audit registry of research runs (JSONL, one ``{"run_id": ...}`` a line)."""
        return self.root / "audit" / "runs.jsonl"

    @property
    def regime(self) -> Path:
        """The current market regime (``{"regime": "CRISIS"}``)."""
        return self.root / "market" / "regime.json"

    @property
    def prices(self) -> Path:
        """The latest price per symbol (``{"BTC/USDT": "64200"}``)."""
        return self.root / "market" / "prices.json"

    @property
    def overrides(self) -> Path:
        """Manual overrides for regime parity (JSONL: intent_id, operator, reason)."""
        return self.root / "control" / "overrides.jsonl"


class FileJob(Struct, frozen=True):
    """One file to read (or refuse), with where to resume it.

    ``refuse``: the detail of a whole-file refusal with reason ``refuse_reason``;
    ``refusal_recorded``: its outcome is in the ledger already. ``missing``: the file
    is gone (deleted from work/), so there is nothing to digest or move.
    """

    path: str
    name: str
    offset: int = 0
    line: int = 0
    resumed: bool = False
    refuse: str = ""
    refuse_reason: str = reasons.INPUT_FILE_REPEATED
    refusal_recorded: bool = False
    missing: bool = False


class InputSource(Protocol):
    """Where the reader's files come from."""

    async def next_file(self) -> FileJob | None:
        """The next file, or None when there will be no more."""
        ...


class ListSource:
    """A fixed list of files, in the order given (``execd replay``)."""

    def __init__(self, paths: list[Path]) -> None:
        self._jobs = [FileJob(str(p), p.name) for p in paths]

    async def next_file(self) -> FileJob | None:
        """The next file of the list."""
        return self._jobs.pop(0) if self._jobs else None


def stat_key(st: os.stat_result) -> StatKey:
    """What changes whenever a file is written, truncated or replaced."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file ``path``. Blocking (a worker thread).

    Never blocks on a FIFO and never follows a symlink: anything but a regular file
    raises ``NotRegular``.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegular(f"not a regular file ({kind_of(mode)})")
    return fd


class NotRegular(OSError):
    """A path that execd only reads as a regular file is something else."""


# Errors that say the process is short of something, not that the file is bad: wait
# and try again rather than refuse the file.
TRANSIENT = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN,
                       errno.EINTR))


def why_unreadable(exc: OSError) -> str:
    """An OSError as the detail of a file that could not be read."""
    if isinstance(exc, NotRegular):
        return str(exc)
    if exc.errno == errno.ELOOP:
        return "not a regular file (a symlink)"
    return exc.strerror or type(exc).__name__


def digest_fd(fd: int, size: int | None = None) -> tuple[int, str]:
    """Size and SHA-256 of an open file from its start (to ``size`` bytes). Blocking."""
    digest = hashlib.sha256()
    offset = 0
    while size is None or offset < size:
        want = 1 << 20 if size is None else min(1 << 20, size - offset)
        chunk = os.pread(fd, want, offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return offset, digest.hexdigest()


def describe_refused(path: str) -> tuple[int, str | None]:
    """Size and digest of a file refused whole: the digest only of a readable regular file.

    Blocking. A FIFO, a directory or an unreadable file is never opened for reading.
    """
    try:
        size = os.lstat(path).st_size
    except OSError:
        return 0, None
    try:
        fd = open_regular(path)
    except OSError:
        return size, None
    try:
        return digest_fd(fd)
    except OSError:
        return size, None
    finally:
        os.close(fd)


def claim_base(name: str) -> tuple[str, str | None]:
    """The name a file is recorded and claimed under, and why its own name is refused.

    ``name`` comes from the directory listing, so bytes that are not UTF-8 arrive as
    surrogates: such a name, or one longer than MAX_NAME_BYTES, cannot be recorded (or
    claimed with a suffix) as it is. It is recorded under a readable stand-in.
    """
    try:
        raw = name.encode("utf-8")
        problem = None
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "surrogateescape")
        problem = f"the name is not UTF-8 (bytes {raw.hex()})"
        name = raw.decode("utf-8", "backslashreplace")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problem = problem or (f"the name is {len(raw)} bytes long; input file names may be "
                              f"at most {MAX_NAME_BYTES} bytes ({name[:60]!r}…)")
        name = f"{hashlib.sha256(raw).hexdigest()[:16]}.jsonl"
    return name, problem


def _move(source: Path, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    os.replace(source, target_dir / source.name)


def _size(path: Path) -> int | None:
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


class _Finished(Struct):
    """An input_file record made durable, and the file as the reader last saw it.

    ``problem``: already known to have changed (found at start-up); ``slot``: the
    reader took a slot for it (start-up's leftovers take none).
    """

    record: InputFileRecord
    time: int
    key: StatKey | None
    problem: str | None = None
    slot: bool = True


class InboxSource:
    """Claims stable files from the inbox in name order; resumes what a stop left in work/.

    ``progress``, ``done``, ``refusing``, ``rejected`` and ``changed`` come from the
    ledger: where each unfinished file stopped, the size and digest of each consumed
    file, refusals whose outcome is recorded but not their input_file record, refusals
    that are complete, and consumed files recorded as changed after they were finished.
    """

    def __init__(
        self,
        lakehouse: Lakehouse,
        *,
        progress: dict[str, tuple[int, int]],
        done: dict[str, tuple[int, str]],
        refusing: set[str],
        rejected: set[str],
        poll_seconds: float,
        stopping: anyio.Event,
        log: Any,
        settle_seconds: float = 0.0,
        finished_files: int = 16,
        changed: set[str] | None = None,
        time: int = 0,
        wait_durable: bool = False,
        pulse: Pulse | None = None,
    ) -> None:
        # The reader's pulse: claiming a file (a rename and fsync that a hung mount
        # can block) is work, only the sleep between scans is waiting.
        self.pulse = pulse or Pulse("inbox")
        self.inbox = lakehouse.inbox
        self.work = lakehouse.work
        self.archive = lakehouse.archive
        self.rejected_dir = lakehouse.rejected
        self.progress = progress
        self.done = done
        self.refusing = refusing
        self.changed = changed or set()
        # The logical time at start-up, for what start-up finds changed.
        self.time = time
        # A ledger writer runs the records' actions (the daemon's): a changed file's
        # outcome is then durable before the file moves. Without one, nothing waits.
        self.wait_durable = wait_durable
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds
        self.stopping = stopping
        self.log = log
        for directory in (self.inbox, self.work):
            directory.mkdir(parents=True, exist_ok=True)
        # Every name ever claimed: consumed, being read, or waiting in work/ (a file
        # rejected after some of it was read was consumed too).
        self.seen: set[str] = set(done) | {n for n in rejected if not _CLAIM.match(n)}
        # Refusals so far per base name, so claim names never collide.
        self.repeats: dict[str, int] = {}
        for claim in (*refusing, *rejected):
            self._count_claim(claim)
        # name -> (its stat key, when that key was first seen): settling files.
        self._settling: dict[str, tuple[StatKey | None, float]] = {}
        # Names that are not input files, warned about once each.
        self._ignored: set[str] = set()
        self._scan_failures = 0
        # Finished files whose input_file record is durable, waiting to be moved; each
        # holds a slot the reader took before recording it, so the queue is bounded.
        self._finished: collections.deque[_Finished] = collections.deque()
        self._finished_ready = anyio.Event()
        self.slots = anyio.Semaphore(finished_files)
        self._slot_count = finished_files
        self._reading_done = False
        self._pending = self._recover_work(rejected)

    # ------------------------------------------------------------------ restart

    def _count_claim(self, claim: str) -> None:
        match = _CLAIM.match(claim)
        if match:
            name, number = match["name"], int(match["n"])
            self.repeats[name] = max(self.repeats.get(name, 0), number)

    def _recover_work(self, rejected: set[str]) -> list[FileJob]:
        """Jobs for what a stop left in work/, and moves for what was already finished."""
        jobs = []
        present = set()
        for path in sorted(self.work.iterdir()):
            name = path.name
            present.add(name)
            base, problem = claim_base(name)
            if problem is not None:
                # Only execd writes work/; a name it could not have made is not ours.
                self.log.warning("input.foreign_in_work", file=base, problem=problem)
                continue
            if _CLAIM.match(name):
                self._count_claim(name)
                if name in rejected:
                    self._move_logged(path, self.rejected_dir, "input.leftover_moved")
                else:
                    jobs.append(self._leftover_refusal(path, name))
            elif name in self.done:
                jobs.extend(self._leftover_finished(path, name))
            elif name in rejected:
                # Its input_file record (reject) is durable; only the move was left.
                self.seen.add(name)
                self._move_logged(path, self.rejected_dir, "input.leftover_moved")
            elif name in self.refusing:
                # Its whole-file outcome is recorded (it changed, or became unreadable,
                # while it was read): only its input_file record is owed.
                self.seen.add(name)
                line, offset = self.progress.get(name, (0, 0))
                jobs.append(FileJob(str(path), name, offset, line, resumed=True,
                                    refuse="recorded before the stop",
                                    refuse_reason=reasons.INPUT_FILE_CHANGED,
                                    refusal_recorded=True))
            else:
                self.seen.add(name)
                line, offset = self.progress.get(name, (0, 0))
                size = _size(path)
                if size is not None and size < offset:
                    jobs.append(FileJob(
                        str(path), name, offset, line, resumed=True,
                        refuse_reason=reasons.INPUT_FILE_CHANGED,
                        refuse=f"truncated while the daemon was down: {offset} bytes were read "
                               f"(to line {line}), it now holds {size}; not read further"))
                    continue
                jobs.append(FileJob(str(path), name, offset, line, resumed=name in self.progress))
        for name in sorted(set(self.progress) - present):
            # Started, not finished, and gone: its remaining lines can never be read.
            line, offset = self.progress[name]
            self.seen.add(name)
            jobs.append(FileJob(
                str(self.work / name), name, offset, line, resumed=True, missing=True,
                refuse_reason=reasons.INPUT_FILE_CHANGED, refusal_recorded=name in self.refusing,
                refuse=f"deleted from work/ after it was claimed: lines after line {line} "
                       f"(byte {offset}) were never read"))
        return jobs

    def _move_logged(self, path: Path, target: Path, event: str) -> bool:
        """Move a file out of work/; a failure is logged and leaves it there (never fatal).

        The ledger already says what became of the file; a move that cannot be done
        (archive/ on another filesystem, or not a directory) must not stop the daemon,
        and the next start tries again.
        """
        try:
            _move(path, target)
        except OSError as exc:
            self.log.error("input.move_failed", file=path.name, to=str(target),
                           error=exc.strerror or str(exc), note="left in work/")
            return False
        log = self.log.info if target == self.archive else self.log.warning
        log(event, file=path.name, to=target.name)
        return True

    def _leftover_refusal(self, path: Path, claim: str) -> FileJob:
        match = _CLAIM.match(claim)
        assert match is not None
        recorded = claim in self.refusing
        if match["kind"] == "repeat":
            return self._repeat(path, claim, match["name"], recorded=recorded)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        detail = (f"not a regular file ({kind_of(mode)})" if not stat.S_ISREG(mode)
                  else "its name cannot be recorded as it is")
        reason = (reasons.INPUT_FILE_UNREADABLE if not stat.S_ISREG(mode)
                  else reasons.INPUT_FILE_NAME_INVALID)
        return FileJob(str(path), claim, refuse=detail, refuse_reason=reason,
                       refusal_recorded=recorded)

    def _leftover_finished(self, path: Path, name: str) -> list[FileJob]:
        """A file read to its end before the stop: moved on if it is still what was read."""
        if name in self.changed:
            self._move_logged(path, self.rejected_dir, "input.leftover_moved")
            return []
        size, sha = self.done[name]
        now = describe_refused(str(path))
        if now == (size, sha):
            self._move_logged(path, self.archive, "input.leftover_moved")
            return []
        # Recorded when the disposals run (the file then goes to rejected/).
        problem = (f"changed after it was read and recorded (size {size}, sha256 {sha[:12]}…):"
                   f" now size {now[0]}, sha256 {(now[1] or 'unreadable')[:12]}…; nothing "
                   "after the recorded size was read")
        record = InputFileRecord(name, size, sha, 0, "reject")
        self._finished.append(_Finished(record, self.time, None, problem, slot=False))
        return []

    def _repeat(self, path: Path, claim: str, name: str, *, recorded: bool) -> FileJob:
        known = self.done.get(name)
        before = (f"consumed before (size {known[0]}, sha256 {known[1][:12]}…)" if known
                  else "already claimed and not yet finished")
        return FileJob(str(path), claim, refuse=f"{name} was {before}; input file names "
                       "must be unique, so this one is not read", refusal_recorded=recorded)

    # -------------------------------------------------------------------- claims

    def _scan(self) -> list[tuple[str, StatKey | None, int]]:
        """Candidate names with their stat keys (None: not a regular file) and modes.

        Blocking: a directory listing and an lstat per name (worker thread).
        """
        found = []
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue  # a producer's temporary name: the protocol's own
                if not name.endswith(".jsonl"):
                    if name not in self._ignored:
                        self._ignored.add(name)
                        self.log.warning("input.ignored", file=claim_base(name)[0],
                                         note="inbox names must end in .jsonl")
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                key = stat_key(st) if stat.S_ISREG(st.st_mode) else None
                found.append((name, key, st.st_mode))
        return sorted(found)

    def _ready(self, found: list[tuple[str, StatKey | None, int]]) -> tuple[list[str], float]:
        """Names stable for settle_seconds (in name order), and how long until the next is."""
        now = monotonic()
        settling: dict[str, tuple[StatKey | None, float]] = {}
        ready, wait = [], self.poll_seconds
        for name, key, _ in found:
            seen = self._settling.get(name)
            since = seen[1] if seen is not None and seen[0] == key else now
            settling[name] = (key, since)
            left = since + self.settle_seconds - now
            if key is None or left <= 0:
                ready.append(name)
            else:
                wait = min(wait, left)
        self._settling = settling
        return ready, wait

    def _claim(self, name: str, regular: bool, mode: int) -> FileJob:
        """Rename ``name`` from the inbox into work/, durably, before reading it."""
        base, problem = claim_base(name)
        reason = ""
        if problem is not None:
            reason = reasons.INPUT_FILE_NAME_INVALID
        elif not regular:
            reason, problem = reasons.INPUT_FILE_UNREADABLE, f"not a regular file ({kind_of(mode)})"
        elif name in self.seen:
            reason = reasons.INPUT_FILE_REPEATED
        if not reason:
            self.seen.add(name)
            os.replace(self.inbox / name, self.work / name)
            fsync_dir(self.work)
            self._settling.pop(name, None)
            return FileJob(str(self.work / name), name)
        number = self.repeats.get(base, 0) + 1
        self.repeats[base] = number
        kind = "repeat" if reason == reasons.INPUT_FILE_REPEATED else "refused"
        claim = f"{base}.{kind}-{number}"
        os.replace(self.inbox / name, self.work / claim)
        fsync_dir(self.work)
        self._settling.pop(name, None)
        if kind == "repeat":
            return self._repeat(self.work / claim, claim, name, recorded=False)
        return FileJob(str(self.work / claim), claim, refuse=f"{problem}; not read",
                       refuse_reason=reason)

    async def next_file(self) -> FileJob | None:
        """Wait for the next stable file; None once stopping."""
        if self._pending:
            return self._pending.pop(0)
        while not self.stopping.is_set():
            self.pulse.busy()
            try:
                found = await anyio.to_thread.run_sync(self._scan)
            except OSError as exc:
                # Out of descriptors, or the inbox is gone or unreadable for now: say
                # so, and scan again next time instead of stopping the daemon.
                self._scan_failed(exc)
                found = []
            else:
                self._scan_failures = 0
            ready, wait = self._ready(found)
            modes = {name: (key is not None, mode) for name, key, mode in found}
            for name in ready:
                self.pulse.busy()
                try:
                    return await anyio.to_thread.run_sync(self._claim, name, *modes[name])
                except FileNotFoundError:
                    continue  # taken away by its producer between scan and claim
                except OSError as exc:
                    if exc.errno in TRANSIENT:
                        self._scan_failed(exc)
                        break
                    # Not ours to take (permissions on the inbox): leave it, say so once.
                    if name not in self._ignored:
                        self._ignored.add(name)
                        self.log.warning("input.unclaimable", file=claim_base(name)[0],
                                         error=exc.strerror or str(exc))
            self.pulse.rest()
            with anyio.move_on_after(wait):
                await self.stopping.wait()
        return None

    def _scan_failed(self, exc: OSError) -> None:
        """Log a failed scan or claim: the first of a spell, then every 100th."""
        if self._scan_failures % 100 == 0:
            self.log.warning("input.scan_failed", inbox=str(self.inbox),
                             error=exc.strerror or str(exc), failures=self._scan_failures + 1)
        self._scan_failures += 1

    def finished(self, name: str, size: int, sha: str) -> None:
        """Remember a file this process read to its end."""
        self.done[name] = (size, sha)

    # ----------------------------------------------------------------- disposals

    def reading_done(self) -> None:
        """The reader records no more files: disposals end once the last is moved."""
        self._reading_done = True
        self._finished_ready.set()

    def record_durable(self, entry: Entry, key: StatKey | None) -> None:
        """An input_file record is durable: queue its file to be moved (no I/O here)."""
        assert type(entry.body) is InputFileRecord
        self._finished.append(_Finished(entry.body, entry.time, key))
        self._finished_ready.set()

    def _check(self, finished: _Finished) -> tuple[Path, str | None] | None:
        """Where a finished file goes, and what changed since it was read (None: nothing).

        None when the file is no longer in work/. Blocking (worker thread).
        """
        record = finished.record
        source = self.work / record.file
        try:
            now = stat_key(os.lstat(source))
        except FileNotFoundError:
            self.log.warning("input.already_moved", file=record.file)
            return None
        problem = finished.problem
        if finished.key is not None and now != finished.key:
            problem = (f"written after it was read and recorded (size {record.size}): now "
                       f"size {now[1]}; nothing after the recorded size was read")
        if problem is not None or record.disposition == "reject":
            return self.rejected_dir, problem
        return self.archive, None

    async def _record_change(self, send: ObjectSendStream[list[Entry]], finished: _Finished,
                             problem: str) -> None:
        """Send a finished file's INPUT_FILE_CHANGED outcome and wait until it is durable."""
        self.log.warning("input.changed", file=finished.record.file, problem=problem)
        entry = quarantine(LATE, finished.time,
                           Source(finished.record.file, 0, finished.record.size),
                           reasons.INPUT_FILE_CHANGED, problem)
        durable = anyio.Event()
        if self.wait_durable:
            entry.then = Wake(durable)
        else:
            durable.set()
        await send.send([entry])
        await durable.wait()

    async def run_disposals(self, send: ObjectSendStream[list[Entry]]) -> None:
        """Move finished files out of work/ as their records become durable.

        A file that changed after it was recorded gets an INPUT_FILE_CHANGED outcome,
        appended when found (LATE: the file's place in the ledger is long taken).
        Ends once the reader has stopped and every file it recorded has moved.
        """
        async with send:
            while True:
                while self._finished:
                    finished = self._finished.popleft()
                    checked = await anyio.to_thread.run_sync(self._check, finished)
                    if checked is not None:
                        target, problem = checked
                        if problem is not None:
                            # Recorded before the move: a crash between the two leaves the
                            # file in work/, and the next start moves it (it is marked changed).
                            await self._record_change(send, finished, problem)
                        await anyio.to_thread.run_sync(
                            self._move_logged, self.work / finished.record.file, target,
                            "input.done")
                    if finished.slot:
                        self.slots.release()
                if self._reading_done and self.slots.value == self._slot_count:
                    return
                self._finished_ready = anyio.Event()
                if self._finished or (self._reading_done
                                      and self.slots.value == self._slot_count):
                    continue
                await self._finished_ready.wait()
