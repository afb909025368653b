"""Names from outside reach the operator's terminal escaped, never as escape sequences.

``execd run`` writes its console log lines, in colour, on a real pseudo-terminal while
its inbox holds files named with ESC and BEL and an intent whose symbol and venue hold
escape sequences (the outcome line names the venue; the symbol is logged nowhere), and
an operator halts it under a name with one; ``execd ctl status``
then shows the position the ledger kept under that symbol. The only escape sequences
the terminal receives are the renderer's own colours (docs: execd/model/text.py).
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from pathlib import Path

from tests.helpers import (
    EXECD,
    ROOT,
    control_socket,
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    stop,
    wait_for,
    write_config,
)
from tests.process.test_logs_process import on_a_terminal, shipped

SYMBOL = "BTC/\x1b]0;X\x07USDT"
VENUE = "bin\x1b[2Jance"
OPERATOR = "ops\x1b[2J\x1b]0;T\x07"
FILE = "in\x1b[2J\x07box.jsonl"
IGNORED = "evil\x1b]0;PWNED\x07\x1b[31m.txt"
# What structlog's console renderer writes in colour: Select Graphic Rendition.
SGR = re.compile(rb"\x1b\[[0-9;]*m")


def drives_nothing(data: bytes) -> bool:
    """No control byte but CR LF (the terminal's line ends), none of 0x7f to 0x9f as a
    character, no bidirectional override."""
    text = data.decode()
    return not [c for c in text if (ord(c) < 0x20 and c not in "\r\n")
                or 0x7f <= ord(c) <= 0x9f or c == "\u202e"]


def test_names_with_escape_sequences_are_shown_escaped_in_logs_and_status(
        tmp_path: Path) -> None:
    path = write_config(tmp_path, level="info", outcomes="each")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items()
           if k not in ("JOURNAL_STREAM", "INVOCATION_ID", "NO_COLOR", "FORCE_COLOR")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color")
    process = subprocess.Popen([*EXECD, "run", "--config", str(path)], stdin=subprocess.DEVNULL,
                               stdout=slave, stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    output = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the slave has closed it
                return
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: control_socket(tmp_path).exists() or process.poll() is not None)
        assert process.poll() is None, bytes(output)
        inbox = tmp_path / "lakehouse" / "inbox"
        drop(inbox, FILE, lines(intent(1, symbol=SYMBOL), intent(2, venue=VENUE)))
        drop(inbox, IGNORED, b"{}\n")
        wait_for(lambda: count_outcomes(tmp_path / "ledger") >= 2)
        halted = ctl(path, "halt", "--actor", OPERATOR, "--reason", "r\x1b[31m")
        assert halted.returncode == 0, halted.stderr
        status = ctl(path, "status")
        assert status.returncode == 0, status.stderr
        # The exit orders name the position's symbol: shown escaped too.
        sold = ctl(path, "safety-sell", "--venue", "binance", "--actor", "a", "--reason", "r")
        assert sold.returncode == 0, sold.stderr
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=30)
        os.close(master)
    log = bytes(output)
    assert SGR.search(log), log[-2000:]  # in colour, on a terminal...
    plain = SGR.sub(b"", log)
    assert drives_nothing(plain), plain[-2000:]  # ...and nothing else drives it
    text = plain.decode()
    assert "file=in\\u001b[2J\\u0007box.jsonl" in text
    assert "evil\\u001b]0;PWNED\\u0007\\u001b[31m.txt" in text
    assert "venue=bin\\u001b[2Jance" in text
    assert "operator=ops\\u001b[2J\\u001b]0;T\\u0007" in text
    assert "reason=r\\u001b[31m" in text
    # ctl status: the position under its symbol, the halt under its operator's name.
    shown = status.stdout
    assert drives_nothing(shown.encode()), shown
    assert "BTC/\\u001b]0;X\\u0007USDT" in shown
    assert "HALTED (ops\\u001b[2J\\u001b]0;T\\u0007" in shown
    assert drives_nothing(sold.stdout.encode()), sold.stdout
    assert "BTC/\\u001b]0;X\\u0007USDT" in sold.stdout


def test_a_dumb_terminal_gets_no_colour(tmp_path: Path) -> None:
    """TERM=dumb says the terminal cannot show colour codes: lines without them, as
    with NO_COLOR (test_logs_process.py)."""
    shipped(tmp_path)
    written = on_a_terminal(tmp_path, TERM="dumb")
    assert written and not any("\x1b" in line for line in written)
    assert any(" daemon.started " in line for line in written)
