"""``execd submit``: put a file into the inbox the way the protocol asks, so no producer
has to get it right by hand.

1. The file is read once (a regular file only) and every line is checked as the
   daemon will decode it; a file with a bad line is not submitted unless asked.
2. Intent lines are signed when a key is given (as ``execd sign`` signs them): the
   signature is added as text, the rest of each line keeps its exact bytes.
3. The bytes go to a temporary name in the inbox (a leading ``.``: the daemon ignores
   it), are fsynced, and are linked under the final name, which fails rather than
   replaces if that name exists; then the inbox directory is fsynced. The daemon can
   therefore never see a half-written file or lose a line appended late.
4. A name already consumed (in ``archive/`` or ``rejected/``) is refused: the daemon
   would refuse the file whole (INPUT_FILE_REPEATED).

The default name is the file's stem and the first 16 hex digits of the submitted
bytes' SHA-256, so the same content submitted twice is the same name and refused the
second time, while different content never collides.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from execd.cli.configfile import load as _load
from execd.cli.configfile import with_config
from execd.cli.exits import status
from execd.ledger.segments import fsync_dir
from execd.model.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, FileRefused, SubmitError
from execd.model.files import read_regular
from execd.model.messages import ClockTick, InputRecord
from execd.reader.inbox import MAX_NAME_BYTES, Lakehouse, why_unreadable

# The largest file submit reads into memory at once.
MAX_SUBMIT_BYTES = 1 << 30


_decode = msgspec.json.Decoder(InputRecord).decode


def check(data: bytes, max_line_bytes: int) -> list[str]:
    """What the daemon would quarantine in ``data``, as ``line N: why`` (empty: nothing)."""
    problems = []
    if not data.strip():
        return ["the file holds no records (the daemon would record INPUT_EMPTY_FILE)"]
    last_tick = -1
    for number, line in enumerate(data.split(b"\n"), 1):
        text = line.strip()
        if not text:
            continue
        if len(line) > max_line_bytes:
            problems.append(f"line {number}: {len(line)} bytes > input.max_line_bytes="
                            f"{max_line_bytes}")
            continue
        try:
            record = _decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            problems.append(f"line {number}: {exc}")
        except RecursionError:
            problems.append(f"line {number}: nested too deeply")
        else:
            if isinstance(record, ClockTick):
                if record.time < last_tick:
                    problems.append(f"line {number}: tick {record.time} is before tick "
                                    f"{last_tick} above it (INPUT_CLOCK_REGRESSION)")
                last_tick = max(last_tick, record.time)
    return problems


def signed(data: bytes, key: bytes) -> bytes:
    """``data`` with a signature on every intent line (every other byte unchanged)."""
    from execd.sentinel.signatures import signed_line

    out = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            out.append(line)
            continue
        try:
            out.append(signed_line(key, line))
        except ValueError as exc:
            raise SubmitError(f"line {number}: cannot sign: {exc}") from None
    return b"\n".join(out)


def read_source(path: Path) -> bytes:
    """The bytes of a regular file, at most MAX_SUBMIT_BYTES."""
    try:
        return read_regular(path, MAX_SUBMIT_BYTES, "regular file")
    except FileRefused as exc:
        raise SubmitError(str(exc)) from None


def submit(lakehouse: Lakehouse, data: bytes, name: str) -> Path:
    """Write ``data`` into the inbox as ``name``, durably and atomically; its path."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SubmitError(f"{name!r}: expected a UTF-8 file name") from None
    if "/" in name or name.startswith(".") or not name.endswith(".jsonl"):
        raise SubmitError(f"{name}: expected a file name ending in .jsonl, not starting "
                          "with '.' and without '/'")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise SubmitError(f"{name}: longer than {MAX_NAME_BYTES} bytes")
    for done in (lakehouse.archive, lakehouse.rejected, lakehouse.work):
        if (done / name).exists():
            raise SubmitError(f"{name}: a file of that name is already in {done}; the "
                              "daemon would refuse it (INPUT_FILE_REPEATED): choose another "
                              "--name")
    inbox = lakehouse.inbox
    if not inbox.is_dir():
        raise SubmitError(f"{inbox}: no inbox there (is daemon.lakehouse right?)")
    temp = inbox / f".{name}.{os.getpid()}.tmp"
    target = inbox / name
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, target)  # never replaces: a name taken meanwhile fails here
        except FileExistsError:
            raise SubmitError(f"{target}: already in the inbox; choose another --name") from None
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(inbox)
    except OSError as exc:
        raise SubmitError(f"{inbox}: {why_unreadable(exc)}") from None
    return target


def default_name(source: Path, data: bytes) -> str:
    """``STEM-SHA16.jsonl``: the same bytes always get the same name."""
    stem = source.name.removesuffix(".jsonl").lstrip(".") or "intents"
    return f"{stem[:160]}-{hashlib.sha256(data).hexdigest()[:16]}.jsonl"


def cmd_submit(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    source = Path(args.file)
    try:
        data = read_source(source)
        problems = check(data, loaded.config.input.max_line_bytes)
        if problems and not args.no_check:
            for problem in problems[:20]:
                print(f"{source}: {problem}", file=sys.stderr)
            more = f" ({len(problems)} lines)" if len(problems) > 20 else ""
            print(f"{source}: not submitted: the daemon would quarantine these lines{more}; "
                  "fix them, or submit anyway with --no-check", file=sys.stderr)
            return EXIT_FAILED
        if args.key_file:
            from execd.sentinel.signatures import read_key_file

            try:
                key = read_key_file(args.key_file)
            except FileRefused as exc:
                print(exc, file=sys.stderr)
                return status(exc)
            data = signed(data, key)
        target = submit(loaded.config.lakehouse, data, args.name or default_name(source, data))
    except SubmitError as exc:
        print(f"execd submit: {exc}", file=sys.stderr)
        return status(exc)
    print(target.name)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``submit`` to the command line."""
    p = sub.add_parser("submit", help="put a file into the inbox safely (checked, "
                       "optionally signed, written then renamed)")
    with_config(p)
    p.add_argument("file", help="a JSON Lines file of intents and ticks (a regular file, "
                   "at most 1 GiB)")
    p.add_argument("--name", help="its name in the inbox, ending in .jsonl and not starting "
                   "with '.' (default: STEM-SHA16.jsonl from its content)")
    p.add_argument("--key-file", metavar="FILE",
                   help="sign its intent lines with this HMAC key file, as execd sign does "
                        "(default: not signed)")
    p.add_argument("--no-check", action="store_true",
                   help="submit even if some lines would be quarantined (default: a file "
                        "with such lines is not submitted)")
    p.set_defaults(func=cmd_submit)
