"""``execd replay`` at a terminal and not: the progress line on a real pseudo-terminal,
the summary after it, ``--quiet``, and the same ledger either way."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXECD, ROOT, intent, ledger_bytes, lines, records, write_config

FILES = 3
INTENTS_PER_FILE = 15_000  # enough for a few redraws (ten a second) on any machine
FRAME = re.compile(
    r"replay  files (\d+)/3  lines ([\d,]+)  ([\d,]+|-) lines/s  (\S+ \S+) of (\S+ \S+)  "
    r"ETA (.+?)  elapsed (.+?)\x1b\[K")
HANG_S = 600  # only a guard against a hung child; nothing here is timed


def _inputs(directory: Path, per_file: int) -> list[Path]:
    """Files of intents, each with a bad line, a refused intent and a failed one."""
    directory.mkdir(parents=True)
    paths = []
    for f in range(FILES):
        base = f * per_file
        rows = [{"kind": "tick", "time": 1_000 + f}, *(intent(base + n) for n in range(per_file)),
                "not json", intent(900_000 + f, venue="nowhere"),
                intent(910_000 + f, venue="stubfail"), intent(920_000 + f, extra=1)]
        path = directory / f"{f:02d}.jsonl"
        path.write_bytes(lines(*rows))
        paths.append(path)
    return paths


def _on_a_terminal(argv: list[str]) -> tuple[int, bytes]:
    """Run ``argv`` with stdin, stdout and stderr on a new pseudo-terminal, 200 columns
    wide; its exit status and everything it wrote there."""
    import fcntl
    import struct
    import termios

    pid, master = pty.fork()
    if pid == 0:  # the child: becomes execd, on the terminal's replica side
        os.chdir(ROOT)
        os.execv(argv[0], argv)  # noqa: S606 - argv is execd's, built by the test
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    written = bytearray()
    deadline = time.monotonic() + HANG_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            written += data
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), bytes(written)


def _counted(ledger: Path) -> tuple[dict[str, int], int, int]:
    """The ledger counted independently: status -> outcomes, records, last seq."""
    every = records(ledger)
    by_status = Counter(r["body"]["status"] for r in every if r["kind"] == "outcome")
    return dict(by_status), len(every), every[-1]["seq"]


def _table(text: str) -> dict[str, int]:
    """The summary table's status rows (and its total) read back."""
    rows = {}
    text = text.replace("\r\n", "\n")  # a terminal's line discipline sends CR LF
    for label, n in re.findall(r"^(total|[A-Z_]+) +([\d,]+)$", text, flags=re.MULTILINE):
        rows[label] = int(n.replace(",", ""))
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One replay on a terminal and one with pipes, of the same inputs and config."""
    root = tmp_path_factory.mktemp("replay")
    config = write_config(root, level="info", outcomes="each")
    inputs = [str(p) for p in _inputs(root / "in", INTENTS_PER_FILE)]
    command = [*EXECD, "replay", "--config", str(config)]
    tty_code, tty_out = _on_a_terminal([*command, "--ledger", str(root / "tty"), *inputs])
    piped = subprocess.run([*command, "--ledger", str(root / "piped"), *inputs], cwd=ROOT,
                           capture_output=True, timeout=HANG_S, check=False)
    return {"root": root, "config": config, "tty": (tty_code, tty_out), "piped": piped}


def test_on_a_terminal_progress_is_redrawn_in_place_then_the_summary(
        runs: dict[str, Any]) -> None:
    code, written = runs["tty"]
    assert code == 0, written[-2000:]
    text = written.decode()
    frames = [FRAME.fullmatch(f) for f in text.split("\r") if f.startswith("replay  files")]
    assert all(frames), [f for f in text.split("\r") if f.startswith("replay  files")][:3]
    assert len(frames) >= 2  # redrawn, not printed once
    read = [int(m.group(2).replace(",", "")) for m in frames if m]
    assert read == sorted(read) and read[-1] > 0  # lines only go up
    assert any(m.group(3) != "-" for m in frames if m)  # a rate once two samples exist
    # The line is erased before the summary, which comes last.
    progress_end = text.rindex("\r\x1b[K")
    summary = text[progress_end + len("\r\x1b[K"):]
    assert summary.startswith("outcomes ")
    assert "lines/s" in summary and "outcomes/s" in summary
    # For a person: no JSON log lines, not one per outcome, though the config says
    # level "info" and outcomes "each".
    assert '"event"' not in text
    by_status, total_records, last_seq = _counted(runs["root"] / "tty")
    assert _table(summary) == {**by_status, "total": sum(by_status.values())}
    assert by_status["QUARANTINED"] == 2 * FILES  # the bad lines are counted too
    assert f"ledger: {total_records:,} records, last seq {last_seq}" in summary


def test_not_on_a_terminal_no_progress_json_logs_and_the_table_on_stderr(
        runs: dict[str, Any]) -> None:
    piped = runs["piped"]
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert b"\r" not in piped.stderr and b"\x1b" not in piped.stderr
    events = [json.loads(line) for line in piped.stdout.splitlines()]
    by_status, total_records, last_seq = _counted(runs["root"] / "piped")
    assert sum(1 for e in events if e["event"] == "outcome") == sum(by_status.values())
    assert events[-1]["event"] == "replay.summary"
    assert events[-1]["by_status"] == by_status
    assert (events[-1]["records"], events[-1]["last_seq"]) == (total_records, last_seq)
    assert _table(piped.stderr.decode()) == {**by_status, "total": sum(by_status.values())}


def test_the_ledger_is_the_same_with_and_without_a_terminal(runs: dict[str, Any]) -> None:
    assert runs["tty"][0] == 0 and runs["piped"].returncode == 0
    assert ledger_bytes(runs["root"] / "tty") == ledger_bytes(runs["root"] / "piped")


def test_quiet_on_a_terminal_prints_only_the_summary(runs: dict[str, Any],
                                                     tmp_path: Path) -> None:
    inputs = [str(p) for p in _inputs(tmp_path / "in", 50)]
    code, written = _on_a_terminal([*EXECD, "replay", "--config", str(runs["config"]),
                                    "--ledger", str(tmp_path / "quiet"), "--quiet", *inputs])
    assert code == 0, written
    text = written.decode()
    assert "replay  " not in text and "\x1b" not in text  # no progress line
    assert text.startswith("outcomes ")  # and nothing before the summary
    by_status, _, _ = _counted(tmp_path / "quiet")
    assert _table(text) == {**by_status, "total": sum(by_status.values())}
