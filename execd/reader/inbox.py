"""Where the reader's files come from: the lakehouse inbox, or a list for replay.

The inbox protocol, for ``execd run``::

    inbox/NAME.jsonl ──stable──claim (rename)──▶ work/NAME.jsonl ──input_file durable──▶ archive/
    inbox/NAME.jsonl, NAME already seen ──▶ work/NAME.jsonl.repeat-N ──▶ rejected/
    inbox/NAME.jsonl not a file, or a bad name ──▶ work/NAME.jsonl.refused-N ──▶ rejected/
    targets/NAME.json ──stable──claim──▶ work/NAME.json.target-N ──input_file durable──▶ archive/

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

:class:`InboxSource` claims; what a stop left in work/ is ``leftovers``, moving files
on once recorded is ``disposals``, and what the three share (the directories, stat
keys, claim names, regular files) is ``lakehouse``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import anyio
from anyio.abc import ObjectSendStream

from execd.ledger.index.files import DoneTable, NameTable
from execd.ledger.segments import fsync_dir
from execd.model import reasons
from execd.model.clock import monotonic
from execd.model.errors import NotRegular as NotRegular
from execd.model.files import kind_of
from execd.model.messages import Entry
from execd.reader.consumed import seen_and_repeats
from execd.reader.disposals import Disposals

# Importers of these names (the reader, config, submit) find them here, as before.
from execd.reader.lakehouse import MAX_NAME_BYTES as MAX_NAME_BYTES
from execd.reader.lakehouse import TRANSIENT as TRANSIENT
from execd.reader.lakehouse import FileJob as FileJob
from execd.reader.lakehouse import Lakehouse as Lakehouse
from execd.reader.lakehouse import StatKey as StatKey
from execd.reader.lakehouse import claim_base as claim_base
from execd.reader.lakehouse import describe_refused as describe_refused
from execd.reader.lakehouse import digest_fd as digest_fd
from execd.reader.lakehouse import open_regular as open_regular
from execd.reader.lakehouse import repeat_job, target_claim
from execd.reader.lakehouse import stat_key as stat_key
from execd.reader.lakehouse import why_unreadable as why_unreadable
from execd.reader.leftovers import Leftovers
from execd.service.liveness import Pulse

# How the listing names a file of targets/ (a prefix no inbox name can have: no "/").
TARGETS: Final = "targets/"


class Backlog(NamedTuple):
    """What the inbox held, unclaimed, when the reader last listed it.

    Kept from the listing each scan already makes (no scan of its own), and replaced
    whole, so ``execd ctl status`` and a scrape in another thread read one consistent
    value. While the reader is busy with a file it does not list the inbox, so the
    numbers are as of ``scanned``.
    """

    files: int
    """Input files waiting (temporary dot-names and non-.jsonl names are not counted)."""
    oldest_mtime_ns: int | None
    """The oldest waiting file's modification time (wall clock, ns), or None."""
    scanned: float | None
    """When that listing was made (model.clock.monotonic), or None before the first."""

    def ages(self, wall_ns: int, now: float) -> tuple[float | None, float | None]:
        """The oldest file's age and the listing's, in seconds (None: no file, no listing).

        ``wall_ns`` is the wall-clock time and ``now`` the monotonic time to count from:
        the caller reads them, for display only. The age is counted from the file's
        mtime, which its producer sets: one dated in the future is 0 s old, not negative.
        """
        oldest = max(0.0, (wall_ns - self.oldest_mtime_ns) / 1e9) \
            if self.oldest_mtime_ns is not None else None
        return oldest, now - self.scanned if self.scanned is not None else None


# What status and the gauges show without an inbox (before the reader runs).
NO_BACKLOG: Final = Backlog(0, None, None)


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


class InboxSource:
    """Claims stable files from the inbox in name order; resumes what a stop left in work/.

    ``progress``, ``done``, ``refusing``, ``rejected`` and ``changed`` come from the
    ledger: where each unfinished file stopped, the size and digest of each consumed
    file, refusals whose outcome is recorded but not their input_file record, refusals
    that are complete, and consumed files recorded as changed after they were finished.
    Blocking while it is made: it moves on at once what a stop left finished in work/.
    ``done``, ``rejected`` and ``changed`` are a dict and sets, or with checkpoints on
    the views of the on-disk tables (``ledger/index/files.py``), which are then asked
    instead of copied (``reader/consumed.py``).
    """

    def __init__(
        self,
        lakehouse: Lakehouse,
        *,
        progress: dict[str, tuple[int, int]],
        done: DoneTable,
        refusing: set[str],
        rejected: NameTable,
        poll_seconds: float,
        stopping: anyio.Event,
        log: Any,
        settle_seconds: float = 0.0,
        finished_files: int = 16,
        changed: NameTable | None = None,
        time: int = 0,
        wait_durable: bool = False,
        pulse: Pulse | None = None,
    ) -> None:
        # The reader's pulse: claiming a file (a rename and fsync that a hung mount
        # can block) is work, only the sleep between scans is waiting.
        self.pulse = pulse or Pulse("inbox")
        self.inbox = lakehouse.inbox
        self.targets = lakehouse.targets
        self.work = lakehouse.work
        self.done = done
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds
        self.stopping = stopping
        self.log = log
        for directory in (self.inbox, self.work):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            self.targets.mkdir(exist_ok=True)
        except OSError as exc:
            # A file, a dangling link, a FIFO where targets/ should be: the inbox is
            # still read, and each scan says why targets/ is not (input.targets_scan_failed).
            log.warning("input.targets_unusable", targets=str(self.targets),
                        error=exc.strerror or str(exc))
        # Every name ever claimed: consumed, being read, or waiting in work/ (a file
        # rejected after some of it was read was consumed too). Refusals so far per base
        # name, so claim names never collide.
        self.seen, self.repeats = seen_and_repeats(done, refusing, rejected)
        self._versions: dict[str, int] = {}  # target file name -> its last claim number
        # name -> (its stat key, when that key was first seen): settling files.
        self._settling: dict[str, tuple[StatKey | None, float]] = {}
        # Names warned about (not input names, or unclaimable), once each while they stay
        # in the inbox: only names of the latest listing are kept, so a producer's churn
        # of temporary names costs nothing once they are gone (see _scan).
        self._ignored: set[str] = set()
        self._scan_failures = 0
        self._targets_failures = 0
        self.backlog = NO_BACKLOG
        self.disposals = Disposals(lakehouse, log=log, finished_files=finished_files,
                                   wait_durable=wait_durable)
        # Taken by the reader before each input_file record, given back once it moved.
        self.slots = self.disposals.slots
        self._pending = Leftovers(
            lakehouse, progress=progress, done=done, refusing=refusing,
            changed=changed or set(), time=time, seen=self.seen, repeats=self.repeats,
            disposals=self.disposals, log=log).jobs(rejected)

    # -------------------------------------------------------------------- claims

    def _scan(self) -> list[tuple[str, StatKey | None, int, int]]:
        """Candidate names with their stat keys (None: not a regular file), modes, mtimes:
        the inbox's in name order, then the target files' (named ``targets/NAME``).

        Blocking: two directory listings and an lstat per name (worker thread).
        """
        listed: set[str] = set()
        found = self._list(self.inbox, "", ".jsonl", listed)
        try:
            found += self._list(self.targets, TARGETS, ".json", listed)
        except OSError as exc:
            # targets/ gone or unreadable for now: the inbox is still read.
            if self._targets_failures % 100 == 0:
                self.log.warning("input.targets_scan_failed", targets=str(self.targets),
                                 error=exc.strerror or str(exc))
            self._targets_failures += 1
            listed |= {name for name in self._ignored if name.startswith(TARGETS)}
        else:
            self._targets_failures = 0
        self._ignored &= listed
        return found

    def _list(self, directory: Path, prefix: str, suffix: str, listed: set[str]
              ) -> list[tuple[str, StatKey | None, int, int]]:
        """One directory's candidates, sorted, each name after ``prefix``.

        Names warned about once (``input.ignored``, ``input.unclaimable``) are forgotten
        when a complete listing no longer has them, so the set is never larger than the
        directories; a name that comes back later is warned about again.
        """
        found = []
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue  # a producer's temporary name: the protocol's own
                name = prefix + name
                listed.add(name)
                if not name.endswith(suffix):
                    if name not in self._ignored:
                        self._ignored.add(name)
                        self.log.warning("input.ignored", file=claim_base(name)[0],
                                         note=f"names in {directory.name}/ must end in {suffix}")
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                key = stat_key(st) if stat.S_ISREG(st.st_mode) else None
                found.append((name, key, st.st_mode, st.st_mtime_ns))
        return sorted(found)

    def _waiting(self, found: list[tuple[str, StatKey | None, int, int]], claimed: str,
                 scanned: float) -> None:
        """Note the backlog: what the listing found, less the file just claimed."""
        mtimes = [mtime for name, _, _, mtime in found if name != claimed]
        self.backlog = Backlog(len(mtimes), min(mtimes, default=None), scanned)

    def _ready(self, found: list[tuple[str, StatKey | None, int, int]]
               ) -> tuple[list[str], float]:
        """Names stable for settle_seconds (in name order), and how long until the next is."""
        now = monotonic()
        settling: dict[str, tuple[StatKey | None, float]] = {}
        ready, wait = [], self.poll_seconds
        for name, key, _, _ in found:
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

    def _claim(self, listed: str, regular: bool, mode: int) -> FileJob:
        """Rename ``listed`` from the inbox (or targets/) into work/, durably, before
        reading it.

        A target file is claimed under a number of its own (``NAME.json.target-N``): its
        producer writes the next version under the same name, and every version is read.
        """
        target = listed.startswith(TARGETS)
        name = listed.removeprefix(TARGETS)
        source = (self.targets if target else self.inbox) / name
        base, problem = claim_base(name)
        reason = ""
        if problem is not None:
            reason = reasons.INPUT_FILE_NAME_INVALID
        elif not regular:
            reason, problem = reasons.INPUT_FILE_UNREADABLE, f"not a regular file ({kind_of(mode)})"
        elif name in self.seen and not target:
            reason = reasons.INPUT_FILE_REPEATED
        if not reason:
            claim = target_claim(name, self.seen, self._versions) if target else name
            self.seen.add(claim)
            os.replace(source, self.work / claim)
            fsync_dir(self.work)
            self._settling.pop(listed, None)
            return FileJob(str(self.work / claim), claim)
        number = self.repeats.get(base, 0) + 1
        self.repeats[base] = number
        kind = "repeat" if reason == reasons.INPUT_FILE_REPEATED else "refused"
        claim = f"{base}.{kind}-{number}"
        os.replace(source, self.work / claim)
        fsync_dir(self.work)
        self._settling.pop(listed, None)
        if kind == "repeat":
            return repeat_job(self.work / claim, claim, name, self.done.get(name),
                              recorded=False)
        return FileJob(str(self.work / claim), claim, refuse=f"{problem}; not read",
                       refuse_reason=reason)

    async def next_file(self) -> FileJob | None:
        """Wait for the next stable file; None once stopping."""
        if self.disposals.changed_at_start and not self.disposals.start_recorded.is_set():
            # Start-up found finished files changed: their outcomes go first.
            with anyio.move_on_after(60):
                await self.disposals.start_recorded.wait()
        if self._pending:
            return self._pending.pop(0)
        while not self.stopping.is_set():
            self.pulse.busy()
            listed = True
            try:
                found = await anyio.to_thread.run_sync(self._scan)
            except OSError as exc:
                # Out of descriptors, or the inbox is gone or unreadable for now: say
                # so, and scan again next time instead of stopping the daemon. The
                # backlog stays as last seen: an unreadable inbox is not an empty one.
                self._scan_failed(exc)
                found, listed = [], False
            else:
                self._scan_failures = 0
            scanned = monotonic()
            ready, wait = self._ready(found)
            modes = {name: (key is not None, mode) for name, key, mode, _ in found}
            for name in ready:
                self.pulse.busy()
                try:
                    job = await anyio.to_thread.run_sync(self._claim, name, *modes[name])
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
                else:
                    self._waiting(found, name, scanned)
                    return job
            if listed:
                self._waiting(found, "", scanned)
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

    # ------------------------------------------- after durable (see disposals)

    def reading_done(self) -> None:
        """The reader records no more files: disposals end once the last is moved."""
        self.disposals.reading_done()

    def record_durable(self, entry: Entry, key: StatKey | None) -> None:
        """An input_file record is durable: queue its file to be moved (no I/O here)."""
        self.disposals.record_durable(entry, key)

    async def run_disposals(self, send: ObjectSendStream[list[Entry]]) -> None:
        """Move finished files out of work/ as their records become durable."""
        await self.disposals.run(send)
