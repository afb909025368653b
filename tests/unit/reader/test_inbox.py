"""The inbox's own decisions: claim names, leftovers at restart, changes after a file's record."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.model import reasons
from execd.model.messages import Entry, InputFileRecord
from execd.reader.inbox import MAX_NAME_BYTES, InboxSource, Lakehouse, claim_base, stat_key
from execd.reader.lakehouse import target_claim, whole_file
from tests.helpers import drop

LOG = structlog.get_logger()


def inbox(root: Path, **state: object) -> InboxSource:
    base: dict[str, object] = {"progress": {}, "done": {}, "refusing": set(), "rejected": set()}
    base.update(state)
    return InboxSource(Lakehouse(root), poll_seconds=0.01, stopping=anyio.Event(), log=LOG,
                       **base)  # type: ignore[arg-type]


def test_claim_names_always_fit_and_are_recordable() -> None:
    assert claim_base("a.jsonl") == ("a.jsonl", None)
    long = "y" * (MAX_NAME_BYTES - 6) + ".jsonl"
    assert claim_base(long) == (long, None)
    hashed, problem = claim_base("y" + long)
    assert problem is not None and len(hashed) == 22 and hashed.endswith(".jsonl")
    shown, problem = claim_base(b"caf\xe9.jsonl".decode("utf-8", "surrogateescape"))
    assert shown == "caf\\xe9.jsonl"
    assert problem == "the name is not UTF-8 (bytes 636166e92e6a736f6e6c)"
    shown.encode("utf-8")  # recordable


async def test_a_file_changed_after_its_record_is_recorded_and_rejected(tmp_path: Path) -> None:
    source = inbox(tmp_path)
    work = tmp_path / "work"
    (work / "f.jsonl").write_bytes(b"{}\n")
    key = stat_key(os.stat(work / "f.jsonl"))
    with open(work / "f.jsonl", "ab") as handle:
        handle.write(b'{"late": 1}\n')
    await source.slots.acquire()
    source.record_durable(Entry(3, "input_file", 7, InputFileRecord("f.jsonl", 3, "0" * 64, 1)),
                          key)
    source.reading_done()
    send, receive = anyio.create_memory_object_stream[list[Entry]](4)
    with anyio.fail_after(5):
        await source.run_disposals(send)
    [entry] = receive.receive_nowait()
    assert (entry.seq, entry.kind, entry.time) == (-1, "outcome", 7)
    assert entry.body.reason == reasons.INPUT_FILE_CHANGED  # type: ignore[attr-defined]
    assert "written after it was read and recorded" in entry.body.detail  # type: ignore[attr-defined]
    assert (tmp_path / "rejected" / "f.jsonl").exists()


async def test_restart_checks_finished_leftovers_against_their_record(tmp_path: Path) -> None:
    """A finished file left in work/ is never moved on unchecked: one changed since its record is
    reported changed.
    """
    import hashlib

    work = tmp_path / "work"
    work.mkdir(parents=True)
    same, edited = b"one\n", b"two\n"
    (work / "same.jsonl").write_bytes(same)
    (work / "edited.jsonl").write_bytes(edited + b"more\n")
    done = {"same.jsonl": (4, hashlib.sha256(same).hexdigest()),
            "edited.jsonl": (4, hashlib.sha256(edited).hexdigest())}
    source = inbox(tmp_path, done=done, time=42)
    assert (tmp_path / "archive" / "same.jsonl").exists()
    source.reading_done()
    send, receive = anyio.create_memory_object_stream[list[Entry]](4)
    with anyio.fail_after(5):
        await source.run_disposals(send)
    [entry] = receive.receive_nowait()
    assert entry.body.reason == reasons.INPUT_FILE_CHANGED  # type: ignore[attr-defined]
    assert entry.body.source.file == "edited.jsonl" and entry.time == 42  # type: ignore[attr-defined]
    assert (tmp_path / "rejected" / "edited.jsonl").exists()
    # Recorded as changed already (a restart after that outcome): moved, not recorded again.
    (work / "again.jsonl").write_bytes(b"x\n")
    inbox(tmp_path, done={"again.jsonl": (1, "0" * 64)}, changed={"again.jsonl"})
    assert (tmp_path / "rejected" / "again.jsonl").exists()


def test_a_started_file_gone_from_work_is_owed_its_outcome(tmp_path: Path) -> None:
    source = inbox(tmp_path, progress={"gone.jsonl": (12, 340)})
    [job] = source._pending
    assert (job.name, job.missing, job.refuse_reason, job.line, job.offset) == (
        "gone.jsonl", True, reasons.INPUT_FILE_CHANGED, 12, 340)
    assert not job.refusal_recorded
    assert inbox(tmp_path, progress={"gone.jsonl": (12, 340)},
                 refusing={"gone.jsonl"})._pending[0].refusal_recorded


async def test_a_stop_stops_while_a_read_never_returns(tmp_path: Path, monkeypatch: object) -> None:
    """A chunk read stuck in the kernel (a hung mount) must not keep the drain waiting."""
    import threading

    import pytest

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.reader import shell as reader_module
    from tests.helpers import count_outcomes, drop, intent, lines, write_config

    release = threading.Event()
    real = reader_module._read_chunk
    calls = []

    def stuck(fd: int, digest: object, size: int) -> bytes:
        calls.append(size)
        if len(calls) == 2:  # the first chunk reads; the second never returns
            release.wait(60)
        return real(fd, digest, size)  # type: ignore[arg-type]

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(reader_module, "_read_chunk", stuck)
    daemon = Daemon(config.load(write_config(tmp_path, chunk=4096)))
    ledger = tmp_path / "ledger"

    async def driver() -> None:
        drop(tmp_path / "lakehouse" / "inbox", "a.jsonl",
             lines(*(intent(n) for n in range(1, 200))))
        while len(calls) < 2:
            await anyio.sleep(0.01)
        daemon.stopping.set()

    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(driver)
                await daemon.run()
    finally:
        release.set()
    # What the first chunk held has its outcomes; the rest waits for the next start.
    assert 0 < count_outcomes(ledger) < 199
    assert (tmp_path / "lakehouse" / "work" / "a.jsonl").exists()


async def test_out_of_descriptors_is_waited_out_not_a_refusal(tmp_path: Path,
                                                             monkeypatch: object) -> None:
    """EMFILE while scanning the inbox or opening a file: retried, never fatal or a refusal."""
    import errno

    import pytest

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.reader import inbox as inbox_module
    from execd.reader import shell as reader_module
    from tests.helpers import drop, intent, lines, outcomes, write_config

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    failures = {"scan": 2, "open": 2}
    real_scan, real_open = inbox_module.InboxSource._scan, reader_module._open_at

    def scan(self: InboxSource) -> object:
        if failures["scan"]:
            failures["scan"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real_scan(self)

    def open_at(path: str, offset: int) -> object:
        if failures["open"]:
            failures["open"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, offset)

    monkeypatch.setattr(inbox_module.InboxSource, "_scan", scan)
    monkeypatch.setattr(reader_module, "_open_at", open_at)
    daemon = Daemon(config.load(write_config(tmp_path)))
    ledger = tmp_path / "ledger"

    async def driver() -> None:
        drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(intent(1)))
        while not (ledger.exists() and outcomes(ledger)):
            await anyio.sleep(0.02)
        daemon.stopping.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()
    assert failures == {"scan": 0, "open": 0}
    assert [o["status"] for o in outcomes(ledger)] == ["FILLED"]


def test_restart_moves_a_rejected_leftover_instead_of_reading_it_again(tmp_path: Path) -> None:
    """Its input_file record (reject) is durable, the move was not done: never re-read."""
    work = tmp_path / "work"
    work.mkdir(parents=True)
    (work / "r.jsonl").write_bytes(b"{}\n")
    source = inbox(tmp_path, rejected={"r.jsonl"})
    assert source._pending == []
    assert (tmp_path / "rejected" / "r.jsonl").exists()
    assert "r.jsonl" in source.seen  # consumed: the same name again is a repeat


def test_a_move_that_cannot_be_done_is_logged_and_never_fatal(tmp_path: Path) -> None:
    """archive/ on another filesystem, or not a directory: the daemon must keep running."""
    import hashlib

    work = tmp_path / "work"
    work.mkdir(parents=True)
    (work / "a.jsonl").write_bytes(b"one\n")
    (tmp_path / "archive").write_bytes(b"not a directory")
    done = {"a.jsonl": (4, hashlib.sha256(b"one\n").hexdigest())}
    source = inbox(tmp_path, done=done)  # start-up's move fails: no exception
    assert source._pending == [] and (work / "a.jsonl").exists()


def test_a_truncated_file_is_said_truncated_and_one_cut_while_down_is_refused(
        tmp_path: Path) -> None:
    from execd.reader.shell import _open_at, _what_changed

    path = tmp_path / "f.jsonl"
    path.write_bytes(b"x" * 1000)
    fd, _, opened = _open_at(str(path), 0)
    try:
        import hashlib

        with open(path, "r+b") as handle:
            handle.truncate(400)
        read = hashlib.sha256(b"x" * 400).hexdigest()
        final = stat_key(os.fstat(fd))
        assert _what_changed(fd, opened, final, 400, read).startswith(
            "truncated while it was read: it held 1000 bytes when opened, 400 were read")
    finally:
        os.close(fd)
    work = tmp_path / "work"
    work.mkdir()
    (work / "g.jsonl").write_bytes(b"y" * 10)
    [job] = inbox(tmp_path, progress={"g.jsonl": (3, 300)})._pending
    assert job.refuse_reason == reasons.INPUT_FILE_CHANGED
    assert job.refuse.startswith("truncated while the daemon was down: 300 bytes")


# ---------------------------------------------------------------- targets/

@settings(max_examples=200)
@given(st.integers(0, 300), st.sets(st.integers(1, 400), max_size=20),
       st.integers(0, 300))
def test_a_target_claim_number_is_never_one_taken(prefix: int, extra: set[int],
                                                   known: int) -> None:
    """Whatever versions were claimed before (a prefix, and numbers past gaps), and
    whatever this run remembers, the next claim name is a new one."""
    seen = {f"t.json.target-{n}" for n in range(1, prefix + 1)} | {
        f"t.json.target-{n}" for n in extra}
    numbers = {"t.json": min(known, prefix)}
    claim = target_claim("t.json", seen, numbers)
    assert claim not in seen and whole_file(claim)
    assert numbers["t.json"] == int(claim.rsplit("-", 1)[1])
    if not extra:
        assert claim == f"t.json.target-{prefix + 1}"  # no gaps: the next number


async def test_target_files_are_claimed_a_version_at_a_time(tmp_path: Path) -> None:
    """The producer rewrites one name: each version is claimed under a new number, and
    only .json names are taken (a temporary dot-name, another suffix, never)."""
    targets = tmp_path / "targets"
    source = inbox(tmp_path, done={"p.json.target-1": (3, "0" * 64),
                                   "p.json.target-2": (3, "0" * 64)})
    assert targets.is_dir()
    drop(targets, "p.json", b"{}\n")
    (targets / ".p.json.tmp").write_bytes(b"{}")
    (targets / "notes.txt").write_bytes(b"{}")
    (tmp_path / "inbox" / "p.json").write_bytes(b"{}")  # .json in the inbox: not read
    with anyio.fail_after(5):
        job = await source.next_file()
    assert job is not None and job.name == "p.json.target-3" and not job.refuse
    assert (tmp_path / "work" / "p.json.target-3").read_bytes() == b"{}\n"
    drop(targets, "p.json", b"{ }\n")
    with anyio.fail_after(5):
        job = await source.next_file()
    assert job is not None and job.name == "p.json.target-4"
    # Not a regular file: refused whole under a claim name, never read.
    (targets / "d.json").mkdir()
    with anyio.fail_after(5):
        job = await source.next_file()
    assert job is not None and job.name == "d.json.refused-1"
    assert job.refuse_reason == reasons.INPUT_FILE_UNREADABLE and not whole_file(job.name)
    assert source.backlog.files == 0
    # A restart resumes a claimed version left in work/ as any claimed file, whole.
    again = inbox(tmp_path, done={"p.json.target-1": (3, "0" * 64),
                                  "p.json.target-2": (3, "0" * 64)})
    assert [(j.name, j.refuse) for j in again._pending] == [
        ("d.json.refused-1", "not a regular file (a directory)"),
        ("p.json.target-3", ""), ("p.json.target-4", "")]
    drop(targets, "p.json", b"{}")
    with anyio.fail_after(5):
        for _ in range(3):
            await again.next_file()
        job = await again.next_file()
    assert job is not None and job.name == "p.json.target-5"


async def test_an_unreadable_targets_directory_never_stops_the_inbox(tmp_path: Path) -> None:
    """Gone or replaced while running, or not a directory at start-up (a file, a
    dangling link, a FIFO): the inbox is read on."""
    source = inbox(tmp_path)
    (tmp_path / "targets").rmdir()
    (tmp_path / "targets").write_bytes(b"not a directory")
    drop(tmp_path / "inbox", "a.jsonl", b"{}\n")
    with anyio.fail_after(5):
        job = await source.next_file()
    assert job is not None and job.name == "a.jsonl"
    for n, make in enumerate((lambda p: p.write_bytes(b"x"),
                              lambda p: p.symlink_to(tmp_path / "nowhere"),
                              lambda p: os.mkfifo(p))):
        root = tmp_path / f"r{n}"
        root.mkdir()
        make(root / "targets")
        source = inbox(root)
        drop(root / "inbox", "b.jsonl", b"{}\n")
        with anyio.fail_after(5):
            job = await source.next_file()
        assert job is not None and job.name == "b.jsonl"


async def test_names_with_line_feeds_are_claimed_and_resumed_as_what_they_are(
        tmp_path: Path) -> None:
    """A line feed in a name changes nothing: a target version is read whole, a refusal
    found in work/ at a restart is still a refusal (never read), and numbered on."""
    source = inbox(tmp_path)
    drop(tmp_path / "targets", "evil\n.json", b"{}")
    with anyio.fail_after(5):
        job = await source.next_file()
    assert job is not None and job.name == "evil\n.json.target-1" and whole_file(job.name)
    bad = b"\xff\n0.json".decode("utf-8", "surrogateescape")
    drop(tmp_path / "targets", bad, b"{}")
    with anyio.fail_after(5):
        job = await source.next_file()
    assert job is not None and job.name == "\\xff\n0.json.refused-1" and job.refuse
    again = inbox(tmp_path)  # a stop before either was recorded
    assert [(j.name, bool(j.refuse)) for j in again._pending] == [
        ("\\xff\n0.json.refused-1", True), ("evil\n.json.target-1", False)]
    drop(tmp_path / "targets", bad, b"{}")
    with anyio.fail_after(5):
        for _ in range(2):
            await again.next_file()
        job = await again.next_file()
    assert job is not None and job.name == "\\xff\n0.json.refused-2"
