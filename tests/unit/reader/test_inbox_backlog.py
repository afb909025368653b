"""The inbox backlog that ``execd ctl status`` and the gauges show, kept from the claims' own
listing of the inbox: files waiting and the oldest one's mtime, with no scan of its own.

It must never count the file just claimed, a producer's temporary name or a name the
reader ignores, and an inbox that cannot be listed must not read as an empty one.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import structlog

from execd.reader.inbox import NO_BACKLOG, Backlog, InboxSource, Lakehouse

LOG = structlog.get_logger()
HOUR_AGO_NS = 1_796_000_000 * 10**9


def inbox(root: Path, settle: float = 0.0) -> InboxSource:
    return InboxSource(Lakehouse(root), progress={}, done={}, refusing=set(), rejected=set(),
                       poll_seconds=0.01, stopping=anyio.Event(), log=LOG,
                       settle_seconds=settle)


def put(root: Path, name: str, mtime_ns: int) -> None:
    path = root / "inbox" / name
    path.write_bytes(b"{}\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_the_backlog_is_what_the_listing_left_waiting(tmp_path: Path) -> None:
    source = inbox(tmp_path)
    assert source.backlog == NO_BACKLOG
    # Claimed in name order; the oldest mtime belongs to the last name.
    put(tmp_path, "a.jsonl", HOUR_AGO_NS + 30 * 10**9)
    put(tmp_path, "b.jsonl", HOUR_AGO_NS + 20 * 10**9)
    put(tmp_path, "c.jsonl", HOUR_AGO_NS)
    put(tmp_path, ".d.jsonl.tmp", 1)  # a producer's temporary name: not input yet
    put(tmp_path, "notes.txt", 1)  # not an input name: ignored, not waiting
    with anyio.fail_after(10):
        job = await source.next_file()
    assert job is not None and job.name == "a.jsonl"
    files, oldest, scanned = source.backlog
    assert (files, oldest) == (2, HOUR_AGO_NS)
    assert scanned is not None
    with anyio.fail_after(10):
        await source.next_file()  # b
        job = await source.next_file()  # c: the oldest is gone with it
    assert job is not None and job.name == "c.jsonl"
    assert source.backlog[:2] == (0, None)


async def test_settling_files_are_waiting_too(tmp_path: Path) -> None:
    source = inbox(tmp_path, settle=3600.0)
    put(tmp_path, "a.jsonl", HOUR_AGO_NS)
    put(tmp_path, "b.jsonl", HOUR_AGO_NS + 10**9)
    with anyio.move_on_after(0.2):
        await source.next_file()  # nothing is stable for an hour: nothing is claimed
    assert source.backlog[:2] == (2, HOUR_AGO_NS)


async def test_an_unlistable_inbox_keeps_the_last_backlog(tmp_path: Path) -> None:
    source = inbox(tmp_path, settle=3600.0)
    put(tmp_path, "a.jsonl", HOUR_AGO_NS)
    with anyio.move_on_after(0.2):
        await source.next_file()
    seen = source.backlog
    assert seen[:2] == (1, HOUR_AGO_NS)
    # The inbox replaced by a plain file: listing it fails (as root too, unlike chmod).
    inbox_dir, aside = tmp_path / "inbox", tmp_path / "inbox.aside"
    inbox_dir.rename(aside)
    inbox_dir.write_bytes(b"")
    try:
        with anyio.move_on_after(0.2):
            await source.next_file()
    finally:
        inbox_dir.unlink()
        aside.rename(inbox_dir)
    assert source.backlog == seen


def test_ages_count_from_the_times_given() -> None:
    backlog = Backlog(3, HOUR_AGO_NS, 100.0)
    assert backlog.ages(HOUR_AGO_NS + 90 * 10**9, 102.5) == (90.0, 2.5)
    assert NO_BACKLOG.ages(HOUR_AGO_NS, 102.5) == (None, None)


def test_ignored_names_are_kept_only_while_they_are_in_the_inbox(tmp_path: Path) -> None:
    """Before: every non-.jsonl name ever seen stayed in memory for good (30,000
    ``upload-N.jsonl.part`` names cost 11 MB). Only the latest listing's names are kept;
    each is warned about once while it stays, and again if it comes back later."""
    from structlog.testing import capture_logs

    def scan(source: InboxSource) -> list[str]:
        with capture_logs() as logs:
            source.log = structlog.get_logger()  # a proxy bound inside the capture
            source._scan()
        return sorted(e["file"] for e in logs if e["event"] == "input.ignored")

    source = inbox(tmp_path)
    for name in ("a.part", "b.part"):
        put(tmp_path, name, HOUR_AGO_NS)
    assert scan(source) == ["a.part", "b.part"]
    assert scan(source) == []  # once per name while it stays
    (tmp_path / "inbox" / "a.part").unlink()
    put(tmp_path, "c.part", HOUR_AGO_NS)
    assert scan(source) == ["c.part"]
    assert source._ignored == {"b.part", "c.part"}
    put(tmp_path, "a.part", HOUR_AGO_NS)  # back again: warned again
    assert scan(source) == ["a.part"]
    # A producer's churn: 500 names come and go, 500 others replace them.
    for batch in range(2):
        names = [f"upload-{batch}-{n:04d}.jsonl.part" for n in range(500)]
        for name in names:
            put(tmp_path, name, HOUR_AGO_NS)
        assert len(scan(source)) == 500
        for name in names:
            (tmp_path / "inbox" / name).unlink()
    scan(source)
    assert source._ignored == {"a.part", "b.part", "c.part"}


def test_a_file_dated_in_the_future_is_no_age_not_a_negative_one() -> None:
    """A producer's clock ahead of ours (or ``touch -d tomorrow``) must not show a
    negative age in ``ctl status`` or the gauge."""
    assert Backlog(1, HOUR_AGO_NS + 3600 * 10**9, 100.0).ages(HOUR_AGO_NS, 100.0) == (0.0, 0.0)
