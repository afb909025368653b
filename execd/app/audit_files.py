"""The shell that keeps the lakehouse's derived files (README, "The audit files"):
``execution_logs.jsonl``, ``audit/audit.jsonl`` and ``portfolio_actual_state.json``.

It reads the ledger's records up to the durable head, never past it, and feeds them
to :class:`~execd.audit.derive.Derivation`, in a worker thread and every
``audit.interval_ms``, so trading never waits on it. Each round that adds anything
ends with the JSONL files fsynced, the state file replaced atomically, and then the
*resume point* (``audit/.derived.json``): the derivation's state, the ledger record it
is as of (segment, offset, seq and hash) and the two files' sizes then. A start
resumes there when the ledger still holds that record with that hash and the files
are at least that long (what a round cut short appended after them is cut off);
otherwise it derives everything from the first record (each JSONL file rebuilt
beside its name and renamed over it). ``execd lakehouse rebuild`` always does.
A failure to write is logged and tried again next round; it never stops trading.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import anyio
import msgspec
from anyio.abc import TaskGroup

from execd.audit.derive import Derivation

if TYPE_CHECKING:
    from execd.app.daemon import Daemon
from execd.ledger.record import record_decoder
from execd.ledger.segments import list_segments, read_lines, replace_durably
from execd.model.errors import FileRefused
from execd.model.files import read_regular

_body = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder(decimal_format="string").encode
# A resume point or state file larger than this is not one execd wrote; a derived line
# is far shorter than _LINE.
_MOST, _LINE = 256 << 20, 1 << 16


class AuditFiles:
    """The three files under ``lakehouse``, derived from the ledger at ``ledger``."""

    def __init__(self, lakehouse: Path, ledger: Path, *, resume: bool = True) -> None:
        self.ledger = ledger
        self.log_path = lakehouse / "execution_logs.jsonl"
        self.audit_path = lakehouse / "audit" / "audit.jsonl"
        self.state_path = lakehouse / "portfolio_actual_state.json"
        self.resume_path = lakehouse / "audit" / ".derived.json"
        self.resume = resume
        self.resumed: int | None = None  # the seq a start resumed after (None: from 1)
        # The first record a derivation from the start read: above 1 when `execd ledger
        # archive` moved the earlier ones out (the files then lack their fills).
        self.first: int | None = None
        self.warned = False
        self.derivation = Derivation()
        self._segment: Path | None = None
        self._offset = 0
        # The segment and line start of the last record fed: the resume point.
        self._at: tuple[Path, int] | None = None
        self._files: tuple[BinaryIO, BinaryIO] | None = None
        # The JSONL files rebuilt beside their names, not yet renamed over them.
        self._pending: list[Path] = []

    def step(self, head: int) -> int:
        """Feed every record through seq ``head`` not fed yet, write what it adds;
        how many records. Blocking: run it in a worker thread."""
        if self._files is None:
            self._files = (self.resume and self._resumed()) or self._fresh()
        log, audit = self._files
        fed = 0
        for seq, kind, time, body, hash_ in self._records(head):
            lines, audits = self.derivation.feed(seq, kind, time, body, hash_)
            if lines:
                log.write(b"".join(lines))
            if audits:
                audit.write(b"".join(audits))
            fed += 1
        if fed or not self.state_path.exists():
            for handle in (log, audit):
                handle.flush()
                os.fsync(handle.fileno())
            self._publish()
            replace_durably(self.state_path, self.derivation.state())
            if self._at is not None:
                replace_durably(self.resume_path, _encode({
                    "derivation": self.derivation.snapshot(), "segment": self._at[0].name,
                    "offset": self._at[1], "log_size": log.tell(),
                    "audit_size": audit.tell()}))
        return fed

    def close(self) -> None:
        """Close the JSONL files (after a last :meth:`step`)."""
        if self._files is not None:
            for handle in self._files:
                handle.close()
            self._files = None

    # ------------------------------------------------------------------ internals

    def _fresh(self) -> tuple[BinaryIO, BinaryIO]:
        """New JSONL files beside their names (renamed over them once written)."""
        self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        # A resume point of the files being replaced must not outlive them.
        self.resume_path.unlink(missing_ok=True)
        self._pending = [self.log_path, self.audit_path]
        return (_create(_temp(self.log_path)), _create(_temp(self.audit_path)))

    def _resumed(self) -> tuple[BinaryIO, BinaryIO] | None:
        """The files opened where the last round left them, and the derivation and the
        ledger position restored; None when that cannot be trusted (derive anew).

        Trusted only when everything it says holds: the ledger's record at the saved
        place has the saved seq and hash; the state file is what the saved derivation
        gives; and each JSONL file ends a line at the saved size, on a line of a record
        at or before the saved seq, with only later records' lines after it.
        """
        handles: list[BinaryIO] = []
        try:
            saved = _body(read_regular(self.resume_path, _MOST, "resume point"))
            segment = self.ledger / str(saved["segment"])
            derivation = Derivation.restore(saved["derivation"])
            offset, sizes = int(saved["offset"]), (int(saved["log_size"]),
                                                   int(saved["audit_size"]))
            line = next(iter(read_lines(segment, offset)), None)
            if line is None or not line.complete or line.too_long:
                return None
            record = record_decoder.decode(line.data)
            if (record.seq, record.hash) != (derivation.seq, derivation.hash):
                return None  # another ledger, or rewritten: nothing said here holds
            if read_regular(self.state_path, _MOST, "state file") != derivation.state():
                return None  # the state, or the saved derivation, is not the other's
            for path, size in zip((self.log_path, self.audit_path), sizes, strict=True):
                handles.append(_appending(path, size, derivation.seq))
        except (OSError, FileRefused, KeyError, IndexError, TypeError, ValueError,
                AttributeError, ArithmeticError, RecursionError, msgspec.DecodeError):
            for handle in handles:
                handle.close()
            return None
        self.derivation, self._segment, self._offset = derivation, segment, line.end
        self._at = (segment, offset)
        self.resumed = derivation.seq
        return handles[0], handles[1]

    def _publish(self) -> None:
        """The first time: the rebuilt JSONL files replace what was there."""
        for path in self._pending:
            os.replace(_temp(path), path)
        self._pending = []

    def _records(self, head: int) -> Any:
        if self.derivation.seq >= head:
            return
        segments = list_segments(self.ledger)
        if self._segment is not None and self._segment in segments:
            segments = segments[segments.index(self._segment):]
        else:
            self._offset = 0
        for path in segments:
            if path != self._segment:
                self._segment, self._offset = path, 0
            for line in read_lines(path, self._offset):
                if not line.complete or line.too_long:
                    return
                record = record_decoder.decode(line.data)
                if record.seq > head:
                    return
                start, self._offset = self._offset, line.end
                if record.seq <= self.derivation.seq:
                    continue
                if self.derivation.seq == 0 and self.first is None:
                    self.first = record.seq
                self._at = (path, start)
                yield record.seq, record.kind, record.time, _body(record.body), record.hash


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.rebuild")


def _create(path: Path) -> BinaryIO:
    """``path`` made anew for writing: whatever was there (a stale temp, a FIFO, a
    link) is removed first, never opened."""
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    return os.fdopen(fd, "wb")


def _appending(path: Path, size: int, seq: int) -> BinaryIO:
    """``path`` (a regular file) opened to append at ``size``, what follows it cut off,
    once its lines bear out a resume after record ``seq``; ValueError when they do not."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    handle = os.fdopen(fd, "r+b")
    try:
        problem = _doubt(handle, size, seq)
        if problem is None:
            handle.truncate(size)  # what a round cut short appended, then no resume point
            handle.seek(size)
    except BaseException:
        handle.close()
        raise
    if problem is not None:
        handle.close()
        raise ValueError(f"{path.name}: {problem}")
    return handle


def _doubt(handle: BinaryIO, size: int, seq: int) -> str | None:
    """Why the open file ``handle`` cannot be resumed at ``size`` after ``seq``, or None."""
    st = os.fstat(handle.fileno())
    if not stat.S_ISREG(st.st_mode) or not 0 <= size <= st.st_size:
        return f"not a regular file of at least {size} bytes"
    os.set_blocking(handle.fileno(), True)
    if size:
        handle.seek(max(0, size - _LINE))
        before = handle.read(size - handle.tell())
        last = _seq(before[:-1].rsplit(b"\n", 1)[-1])
        if not before.endswith(b"\n") or last is None or last > seq:
            return f"byte {size} does not end a line of seq {seq} or before"
    handle.seek(size)
    after = handle.readline(_LINE)
    following = _seq(after) if after.endswith(b"\n") else None
    if following is not None and following <= seq:
        return f"the line after byte {size} is of seq {following}, not after {seq}"
    return None


def _seq(line: bytes) -> int | None:
    """The ``seq`` of a derived file's line (None: it is not one)."""
    try:
        value = _body(line)
    except msgspec.DecodeError:
        return None
    found = value.get("seq") if isinstance(value, dict) else None
    return found if isinstance(found, int) else None


class Rebuilt(NamedTuple):
    """What ``execd lakehouse rebuild`` derived: how many records, from which seq."""

    records: int
    first: int | None


def rebuild(lakehouse: Path, ledger: Path) -> Rebuilt:
    """Derive the three files from the whole ledger (``execd lakehouse rebuild``)."""
    files = AuditFiles(lakehouse, ledger, resume=False)
    try:
        return Rebuilt(files.step(2**63 - 1), files.first)
    finally:
        files.close()


def kept(tg: TaskGroup, daemon: Daemon) -> AuditFiles | None:
    """The files ``execd run`` keeps (``[audit] files``), their task started in ``tg``;
    None when they are not kept (``execd replay``, or turned off)."""
    config = daemon.config.audit
    if daemon.mode != "run" or not config.files:
        return None
    files = AuditFiles(daemon.config.lakehouse.root, daemon.ledger_dir)
    tg.start_soon(follow, files, lambda: daemon.durability.seq, config.interval_ms / 1000,
                  daemon.log)
    return files


async def stopped(files: AuditFiles | None, log: Any) -> None:
    """The last round, through the stop record (the ledger is closed, all of it
    durable), then the files closed."""
    if files is not None:
        with anyio.CancelScope(shield=True):
            await finish(files, lambda: 2**63 - 1, log)
            files.close()


async def follow(files: AuditFiles, head: Callable[[], int], interval: float,
                 log: Any) -> None:
    """Every ``interval`` seconds, the records made durable since (until cancelled)."""
    while True:
        await anyio.sleep(interval)
        await finish(files, head, log)


async def finish(files: AuditFiles, head: Callable[[], int], log: Any) -> None:
    """One round, through the durable head now; a failure is logged, never raised."""
    try:
        await anyio.to_thread.run_sync(files.step, head())
        if files.first is not None and files.first > 1 and not files.warned:
            files.warned = True
            log.warning("audit_files.partial", first_seq=files.first,
                        note="the ledger's earlier records were archived: the files were "
                             "derived without their fills")
    except Exception as exc:  # noqa: BLE001 - the derived files never stop trading
        log.error("audit_files.failed", error=f"{type(exc).__name__}: {exc}",
                  note="tried again next round; `execd lakehouse rebuild` rebuilds them")
