"""The replay's progress display: the model's rate and time left, its line, its redraws,
and the reader's counts it reads (ReaderCore.consumed)."""

from __future__ import annotations

import os
import pty
import select

import anyio
import pytest

from execd.cli.progress import (
    RATE_WINDOW_S,
    STARTING,
    Progress,
    Sample,
    View,
    render,
    show,
    size,
)
from execd.model.clock import LogicalClock
from execd.model.messages import Entry
from execd.reader.core import ReaderCore
from tests.helpers import intent, lines


def test_rate_and_time_left_come_from_the_samples() -> None:
    model = Progress(files_total=2, bytes_total=10_000, started=100.0)
    first = model.update(Sample(100.0, 0, 0, 0))
    assert (first.lines_per_s, first.eta) == (None, None)  # one sample says no rate
    view = model.update(Sample(102.0, 1, 4_000, 2_000))
    # 4,000 lines and 2,000 bytes in 2 s; 8,000 bytes left at 1,000 bytes/s.
    assert view == View(1, 2, 4_000, 2_000, 10_000, 2.0, 2_000.0, 8.0)


def test_the_rate_follows_the_last_seconds_not_the_whole_run() -> None:
    model = Progress(files_total=1, bytes_total=1_000_000, started=0.0)
    at, lines_read = 0.0, 0
    for _ in range(100):  # 10 s at 1,000 lines/s ...
        at += 0.1
        lines_read += 100
        model.update(Sample(at, 0, lines_read, lines_read))
    for _ in range(60):  # ... then 6 s at 100 lines/s
        at += 0.1
        lines_read += 10
        view = model.update(Sample(at, 0, lines_read, lines_read))
    assert view.lines_per_s == pytest.approx(100.0)
    assert view.elapsed == pytest.approx(16.0)
    # The window holds about RATE_WINDOW_S of samples, not the run's 160.
    assert len(model._window) <= RATE_WINDOW_S * 10 + 2


def test_time_left_is_zero_once_every_byte_is_read_and_unknown_while_nothing_moves() -> None:
    model = Progress(files_total=1, bytes_total=500, started=0.0)
    model.update(Sample(0.0, 0, 0, 0))
    assert model.update(Sample(1.0, 0, 0, 0)).eta is None  # stalled: no estimate
    assert model.update(Sample(2.0, 1, 10, 500)).eta == 0.0


def test_sizes_for_people() -> None:
    assert [size(n) for n in (0, 999, 1_000, 45_600_000, 1_250_000_000, 7 * 10**15)] == [
        "0 B", "999 B", "1.0 kB", "45.6 MB", "1.2 GB", "7000.0 TB"]
    assert size(999_960) == "1.0 MB"  # never "1000.0 kB"


def test_the_line_names_files_lines_rate_bytes_and_time_left_and_fits_the_terminal() -> None:
    view = View(2, 5, 1_234_567, 45_600_000, 120_000_000, 65.0, 98_765.4, 312.0)
    text = render(view, 200)
    assert text == ("replay  files 2/5  lines 1,234,567  98,765 lines/s  45.6 MB of 120.0 MB  "
                    "ETA 5m 12s  elapsed 1m 5s")
    # Never as wide as the terminal: a line that wraps would not be redrawn in place.
    assert render(view, 40) == text[:39]
    assert render(View(0, 1, 0, 0, 10, 0.0, None, None), 200) == (
        "replay  files 0/1  lines 0  - lines/s  0 B of 10 B  ETA -  elapsed 0ms")


def test_the_reader_counts_files_lines_and_bytes_across_files() -> None:
    core = ReaderCore(LogicalClock(), 0, 1 << 20)
    assert core.consumed == (0, 0, 0)
    first = lines(intent(1), intent(2), "not json")
    core.start_file("a.jsonl")
    core.feed(first[:10])
    assert core.consumed == (0, 0, 10)  # bytes as fed, lines as ended
    core.feed(first[10:])
    assert core.consumed == (0, 3, len(first))
    core.finish_file(len(first), "sha")
    assert core.consumed == (1, 3, len(first))
    # A resumed file counts only what this run reads of it.
    second = lines(intent(3), intent(4))
    split = second.index(b"\n") + 1
    core.start_file("b.jsonl", offset=split, line=1, resumed=True)
    core.feed(second[split:] + b'{"kind":"tick","time":5}')  # an unterminated last line
    assert core.consumed == (1, 4, len(first) + len(second) - split + 24)
    items = core.finish_file(len(second) + 24, "sha")
    assert isinstance(items[-1], Entry) and items[-1].kind == "input_file"
    assert core.consumed == (2, 5, len(first) + len(second) - split + 24)
    # A file refused unread is done, with nothing read.
    core.refuse_file("c.jsonl", 99, None, "not a regular file")
    assert core.consumed == (3, 5, len(first) + len(second) - split + 24)


def _drain(master: int, until: str) -> str:
    """What the terminal's replica side was sent, read from the master up to its end
    (``until``). The kernel hands it over in pieces, so one read may not hold it all."""
    written = b""
    while not written.decode().endswith(until):
        ready, _, _ = select.select([master], [], [], 30.0)
        assert ready, f"the terminal got only {written!r}"
        written += os.read(master, 65536)
    return written.decode()


def test_show_redraws_one_line_in_place_on_a_terminal_then_erases_it() -> None:
    master, replica = pty.openpty()
    counts = iter([None, (0, 10, 100), (1, 20, 200), (2, 30, 300)])
    ticks = iter([1.0, 2.0, 3.0, 4.0])
    model = Progress(files_total=2, bytes_total=300, started=0.0)

    async def run() -> None:
        with os.fdopen(os.dup(replica), "w") as out:
            async with anyio.create_task_group() as tg:
                def read() -> tuple[int, int, int] | None:
                    try:
                        return next(counts)
                    except StopIteration:
                        tg.cancel_scope.cancel()
                        return (2, 30, 300)

                tg.start_soon(lambda: show(read, model, out, clock=lambda: next(ticks)))

    try:
        anyio.run(run)
        written = _drain(master, until="\r\x1b[K")
    finally:
        os.close(master)
        os.close(replica)
    frames = written.split("\r")
    assert frames[0] == ""
    assert frames[1] == f"{STARTING}\x1b[K"
    assert frames[2].startswith("replay  files 0/2  lines 10  - lines/s  100 B of 300 B")
    assert frames[3].startswith("replay  files 1/2  lines 20  10 lines/s  200 B of 300 B  "
                                "ETA 1s")
    assert frames[4].startswith("replay  files 2/2  lines 30  10 lines/s  300 B of 300 B  "
                                "ETA 0ms")
    assert all(f.endswith("\x1b[K") and "\n" not in f for f in frames[1:])
    # The read that cancelled the display is drawn, then the line is erased, so what
    # follows (the summary) starts on a clean line.
    assert frames[5].startswith("replay  files 2/2  lines 30  ")
    assert frames[6:] == ["\x1b[K"]
