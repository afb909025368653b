"""Stop signals held from the first moment of ``execd run``.

Python and execd's modules take about half a second to import (more on a loaded
machine, and a ccxt venue adds its own), and a SIGTERM then would kill the process
with its default action before the daemon could drain (README, "Running as a
service"). So ``execd run`` installs these handlers before anything heavy is imported:
this module imports nothing but :mod:`signal`.
"""

from __future__ import annotations

import signal

# Stop signals that arrived before the daemon listened for them; the daemon reads them
# once it runs and stops as soon as it can.
EARLY_SIGNALS: list[int] = []


def hold_stop_signals() -> None:
    """Ignore SIGHUP (its default would kill), and keep SIGTERM and SIGINT for later."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: EARLY_SIGNALS.append(number))
