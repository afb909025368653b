"""The lakehouse as the reader sees it: its directories, its files and their names.

What the inbox's three jobs share (``inbox`` claims, ``leftovers`` resumes what a
stop left, ``disposals`` moves files on once recorded): the directory layout, the
stat key that tells a touched file, claim names (``NAME.repeat-N``,
``NAME.refused-N``), and reading only regular files, off the event loop (every
function here blocks). The protocol itself is described in ``execd.reader.inbox``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from pathlib import Path

from msgspec import Struct

from execd.model import reasons
from execd.model.errors import NotRegular
from execd.model.files import kind_of

# A claim name: a file refused whole, under the name it was recorded with (a target
# file's name ends in .json, an inbox file's in .jsonl). Names may hold any character,
# a line feed too: DOTALL, and \Z (not $, which also matches before a final line feed).
CLAIM = re.compile(r"(?P<name>.+\.jsonl?)\.(?P<kind>repeat|refused)-(?P<n>[0-9]+)\Z", re.DOTALL)
# A target file claimed to be read: ``targets/NAME.json`` is rewritten under the same
# name by its producer, so each version is claimed under a number of its own.
TARGET_CLAIM = re.compile(r"(?P<name>.+\.json)\.target-(?P<n>[0-9]+)\Z", re.DOTALL)
# Input file names longer than this are refused (under a hashed claim name), so that
# every claim name, NAME plus ".repeat-N", still fits the filesystem's 255 bytes.
MAX_NAME_BYTES = 240
# (inode, size, mtime_ns, ctime_ns): any write, truncation or replacement changes it.
StatKey = tuple[int, int, int, int]


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
    def targets(self) -> Path:
        """Where producers rename target portfolio files into (README, "Target files")."""
        return self.root / "targets"

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
    def volume_profiles(self) -> Path:
        """Volume profiles per symbol for VWAP schedules (reader/profiles.py)."""
        return self.root / "market" / "volume_profile.json"

    @property
    def allocations(self) -> Path:
        """Allocations intents may be sized from (``{"book:B1": "10000"}``; README, "Sizing")."""
        return self.root / "portfolio" / "allocations.json"

    @property
    def volumes(self) -> Path:
        """The market's volume per interval for POV schedules (reader/volumes.py)."""
        return self.root / "market" / "volume.json"

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


def whole_file(name: str) -> bool:
    """Whether the file ``name`` is one record (a target file), not lines: a claimed
    version, or a ``.json`` file given to ``execd replay``."""
    return name.endswith(".json") or TARGET_CLAIM.match(name) is not None


def target_claim(base: str, seen: set[str], numbers: dict[str, int]) -> str:
    """A claim name for the next version of target file ``base``: ``BASE.target-N``
    with an N no claim of it had (``seen``: every name ever claimed).

    ``numbers`` holds this run's last N per base. A run's first claim of ``base`` finds
    the first free N by doubling, then halving (claims are numbered 1, 2, ... so the
    ones taken form a prefix; a gap a lost claim left is skipped, never reused while its
    name is known): a few lookups, however many versions were claimed before.
    """
    def name(n: int) -> str:
        return f"{base}.target-{n}"

    taken = numbers.get(base, 0)
    step = 1
    while name(taken + step) in seen:
        taken, step = taken + step, step * 2
    free = taken + step  # taken is in seen (or 0), free is not
    while free - taken > 1:
        middle = (taken + free) // 2
        if name(middle) in seen:
            taken = middle
        else:
            free = middle
    numbers[base] = free
    return name(free)


def move_into(source: Path, target_dir: Path) -> None:
    """Rename ``source`` into ``target_dir`` (made if missing), under its own name. Blocking."""
    target_dir.mkdir(parents=True, exist_ok=True)
    os.replace(source, target_dir / source.name)


def size_of(path: Path) -> int | None:
    """The size of ``path`` (not followed if a symlink), or None if it cannot be read."""
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


def count_claim(repeats: dict[str, int], claim: str) -> None:
    """Note the number of the claim name ``claim``, so later claim names never collide."""
    match = CLAIM.match(claim)
    if match:
        name, number = match["name"], int(match["n"])
        repeats[name] = max(repeats.get(name, 0), number)


def repeat_job(path: Path, claim: str, name: str, known: tuple[int, str] | None, *,
               recorded: bool) -> FileJob:
    """The refusal of a second file under ``name`` (``known``: the first one's size and digest)."""
    before = (f"consumed before (size {known[0]}, sha256 {known[1][:12]}…)" if known
              else "already claimed and not yet finished")
    return FileJob(str(path), claim, refuse=f"{name} was {before}; input file names "
                   "must be unique, so this one is not read", refusal_recorded=recorded)
