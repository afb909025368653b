"""The progress display of ``execd replay``: how far the input is read, redrawn in place.

:class:`Progress` is the model, sans-I/O: it is given the totals once and a
:class:`Sample` of the reader's counts now and then, each with the time it was taken,
and says what to show (:class:`View`): files done of all, lines read, the rate over
the last few seconds, bytes read of the input's size, and the time left, estimated
from the bytes still to read at the recent byte rate. :func:`render` makes one line of
it for a terminal of a given width. :func:`show` is the shell: it samples at most
``REDRAWS_PER_SECOND`` times a second on the daemon's event loop, between the actors'
turns, and redraws the line on a terminal.

It is display only: it reads counts the reader keeps per file and per chunk
(``ReaderCore.consumed``), adds no work to the per-line path, and never touches the
ledger, so a replay on a terminal writes the same ledger byte for byte
(docs/ARCHITECTURE.md, "Determinism"). The monotonic clock it reads is outside the
paper path.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Final, TextIO

import anyio
from msgspec import Struct

from execd.model.clock import monotonic
from execd.model.times import duration

REDRAWS_PER_SECOND: Final = 10
# The rate is taken over this many seconds of samples: long enough to smooth the
# commits' bursts, short enough to follow a file that reads slower than the last.
RATE_WINDOW_S: Final = 5.0
# Erase to the end of the line (ECMA-48 EL): a shorter line leaves no trace of a longer one.
_ERASE: Final = "\x1b[K"
_NARROWEST: Final = 20
# Shown until the reader runs: recovery and the start record come first.
STARTING: Final = "replay  starting"


class Sample(Struct, frozen=True):
    """The reader's counts at monotonic time ``at`` (seconds)."""

    at: float
    files: int
    lines: int
    bytes: int


class View(Struct, frozen=True):
    """What the display shows: counts, totals, rate and time left."""

    files: int
    files_total: int
    lines: int
    bytes: int
    bytes_total: int
    elapsed: float
    lines_per_s: float | None
    """None until two samples are apart in time."""
    eta: float | None
    """Seconds left; None while nothing says how fast bytes are read."""


class Progress:
    """The progress model: totals once, then samples; pure (time comes in with a sample)."""

    def __init__(self, files_total: int, bytes_total: int, started: float) -> None:
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.started = started
        # (at, lines, bytes) over the last RATE_WINDOW_S: at most
        # REDRAWS_PER_SECOND * RATE_WINDOW_S entries plus one.
        self._window: deque[tuple[float, int, int]] = deque()

    def update(self, sample: Sample) -> View:
        """Take ``sample``; the view as of it."""
        window = self._window
        window.append((sample.at, sample.lines, sample.bytes))
        # Keep one sample older than the window, so the rate spans the whole window.
        while len(window) > 2 and window[1][0] <= sample.at - RATE_WINDOW_S:
            window.popleft()
        first_at, first_lines, first_bytes = window[0]
        span = sample.at - first_at
        lines_rate = (sample.lines - first_lines) / span if span > 0 else None
        bytes_rate = (sample.bytes - first_bytes) / span if span > 0 else 0.0
        left = max(self.bytes_total - sample.bytes, 0)
        eta: float | None
        if left == 0 and sample.bytes > 0:
            eta = 0.0
        else:
            eta = left / bytes_rate if bytes_rate > 0 else None
        return View(sample.files, self.files_total, sample.lines, sample.bytes,
                    self.bytes_total, max(sample.at - self.started, 0.0), lines_rate, eta)


def size(n: int) -> str:
    """A byte count for people: ``512 B``, ``12.3 kB``, ``45.6 MB``, ``1.2 GB`` (powers of 1000)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("not reached")


def render(view: View, width: int) -> str:
    """One line for a terminal ``width`` columns wide (cut to ``width - 1``, so the
    cursor never wraps to a new line and the next redraw still lands on this one)."""
    rate = "-" if view.lines_per_s is None else f"{view.lines_per_s:,.0f}"
    eta = "-" if view.eta is None else duration(view.eta)
    text = (f"replay  files {view.files}/{view.files_total}  lines {view.lines:,}  "
            f"{rate} lines/s  {size(view.bytes)} of {size(view.bytes_total)}  "
            f"ETA {eta}  elapsed {duration(view.elapsed)}")
    return text[:max(width, _NARROWEST) - 1]


def _width(out: TextIO) -> int:
    """The terminal's width, or 80 when it does not say (a new pseudo-terminal says 0)."""
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns or 80


async def show(read: Callable[[], tuple[int, int, int] | None], model: Progress,
               out: TextIO, *, clock: Callable[[], float] = monotonic) -> None:
    """Redraw the progress line on ``out`` until cancelled; then erase it.

    ``read`` gives (files done, lines, bytes) now, or None before the reader has started.
    A failed write (the terminal went away) ends the display, never the replay.
    """
    period = 1 / REDRAWS_PER_SECOND
    try:
        while True:
            counts = read()
            width = _width(out)
            text = (STARTING[:width - 1] if counts is None
                    else render(model.update(Sample(clock(), *counts)), width))
            out.write(f"\r{text}{_ERASE}")
            out.flush()
            await anyio.sleep(period)
    except OSError:
        return
    finally:
        try:
            out.write(f"\r{_ERASE}")
            out.flush()
        except OSError:
            pass
