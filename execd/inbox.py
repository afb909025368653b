"""Where the reader's files come from: the lakehouse inbox, or a list for replay.

The inbox protocol, for ``execd run``::

    inbox/NAME.jsonl ──claim (rename)──▶ work/NAME.jsonl ──input_file durable──▶ archive/
    inbox/NAME.jsonl, NAME already seen ──▶ work/NAME.jsonl.repeat-N ──▶ rejected/

A file is claimed, by renaming it into ``work/``, before its first line is read. So
the inbox only ever holds files nobody has started, and every crash leaves an
unambiguous state: a file in ``work/`` without an ``input_file`` record is resumed
at the offset the ledger gives; one with the record is moved on. A producer cannot
replace a file that is being read, and a second file under a consumed name is
refused as a whole under a claim name of its own, never read and never overwriting
anything.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Protocol

import anyio
from msgspec import Struct

from execd.ledger.segments import InUse, fsync_dir
from execd.liveness import Pulse

_REPEAT = re.compile(r"^(?P<name>.+\.jsonl)\.repeat-(?P<n>\d+)$")


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
    """One file to read (or refuse), with where to resume it."""

    path: str
    name: str
    offset: int = 0
    line: int = 0
    resumed: bool = False
    refuse: str = ""
    refusal_recorded: bool = False


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


def file_digest(path: str) -> tuple[int, str]:
    """Size and SHA-256 of a file. Blocking."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _move(source: Path, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    os.replace(source, target_dir / source.name)


class InboxSource:
    """Claims files from the inbox in name order; resumes what a stop left in work/.

    ``progress``, ``done``, ``refusing`` and ``rejected`` come from the ledger: where
    each unfinished file stopped, the size and digest of each consumed file, refusals
    whose outcome is recorded but not their input_file record, and refusals that are
    complete.
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
        self.poll_seconds = poll_seconds
        self.stopping = stopping
        self.log = log
        for directory in (self.inbox, self.work):
            directory.mkdir(parents=True, exist_ok=True)
        # Every name ever claimed: consumed, being read, or waiting in work/.
        self.seen: set[str] = set(done)
        # Refusals so far per original name, so claim names never collide.
        self.repeats: dict[str, int] = {}
        for claim in (*refusing, *rejected):
            self._count_repeat(claim)
        self._pending = self._recover_work(rejected)

    def _count_repeat(self, claim: str) -> None:
        match = _REPEAT.match(claim)
        if match:
            name, number = match["name"], int(match["n"])
            self.repeats[name] = max(self.repeats.get(name, 0), number)

    def _recover_work(self, rejected: set[str]) -> list[FileJob]:
        """Jobs for what a stop left in work/, and moves for what was already finished."""
        jobs = []
        for path in sorted(self.work.iterdir()):
            name = path.name
            if _REPEAT.match(name):
                self._count_repeat(name)
                if name in rejected:
                    _move(path, self.rejected_dir)
                    self.log.info("input.leftover_moved", file=name, to="rejected")
                else:
                    jobs.append(self._refusal(path, name, recorded=name in self.refusing))
            elif name in self.done:
                _move(path, self.archive)
                self.log.info("input.leftover_moved", file=name, to="archive")
            else:
                self.seen.add(name)
                line, offset = self.progress.get(name, (0, 0))
                jobs.append(FileJob(str(path), name, offset, line, resumed=name in self.progress))
        return jobs

    def _refusal(self, path: Path, claim: str, *, recorded: bool) -> FileJob:
        original = _REPEAT.match(claim)
        name = original["name"] if original else claim
        known = self.done.get(name)
        before = (f"consumed before (size {known[0]}, sha256 {known[1][:12]}…)" if known
                  else "already claimed and not yet finished")
        return FileJob(str(path), claim, refuse=f"{name} was {before}; input file names "
                       "must be unique, so this one is not read", refusal_recorded=recorded)

    def _candidates(self) -> list[str]:
        with os.scandir(self.inbox) as entries:
            return sorted(
                entry.name for entry in entries
                if not entry.name.startswith(".") and entry.name.endswith(".jsonl")
                and entry.is_file(follow_symlinks=False)
            )

    def _claim(self, name: str) -> FileJob:
        """Rename ``name`` from the inbox into work/, durably, before reading it."""
        if name in self.seen:
            number = self.repeats.get(name, 0) + 1
            self.repeats[name] = number
            claim = f"{name}.repeat-{number}"
            os.replace(self.inbox / name, self.work / claim)
            fsync_dir(self.work)
            return self._refusal(self.work / claim, claim, recorded=False)
        self.seen.add(name)
        os.replace(self.inbox / name, self.work / name)
        fsync_dir(self.work)
        return FileJob(str(self.work / name), name)

    async def next_file(self) -> FileJob | None:
        """Wait for the next file; None once stopping."""
        if self._pending:
            return self._pending.pop(0)
        while not self.stopping.is_set():
            for name in self._candidates():
                self.pulse.busy()
                try:
                    return await anyio.to_thread.run_sync(self._claim, name)
                except FileNotFoundError:
                    continue  # taken away by its producer between scan and claim
            self.pulse.rest()
            with anyio.move_on_after(self.poll_seconds):
                await self.stopping.wait()
        return None

    def finished(self, name: str, size: int, sha: str) -> None:
        """Remember a file this process read to its end."""
        self.done[name] = (size, sha)
