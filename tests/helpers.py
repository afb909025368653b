"""Shared test helpers: configs, intent lines, and reading a ledger back."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.index.runs import BODY, FENCE_EVERY, KEY
from execd.ledger.index.store import DIRECTORY as INDEX
from execd.ledger.record import record_decoder
from execd.ledger.segments import list_segments

ROOT = Path(__file__).resolve().parent.parent
EXECD = [sys.executable, "-m", "execd"]

BASE_CONFIG = """
[daemon]
lakehouse = "{lakehouse}"
ledger_dir = "{ledger}"
poll_interval_ms = 20
settle_ms = {settle}

[queues]
sentinel = {q}
router = {q}
adapter = {q}
ledger = {q}
commits = {commits}

[batches]
read_chunk_bytes = {chunk}
items = {items}
commit_records = {commit_records}

[ledger]
segment_bytes = {segment_bytes}

[log]
level = "{level}"
outcomes = "{outcomes}"

[venues.binance]
plane = "paper"

[venues.alpaca]
plane = "paper"

[venues.stubfail]
plane = "live"
adapter = "stub"
stub_result = "fail"
stub_reason = "EXECUTION_NOT_AVAILABLE"

[control]
socket = "{socket}"

[risk]
{risk}
{extra}
"""

# Research runs in the audit registry that write_config creates.
RUNS = ("run-1", "run-2")


def control_socket(directory: Path) -> Path:
    """A control socket path for ``directory``: short, as AF_UNIX paths must be (< 108 bytes)."""
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"execd-test-{digest}.sock"


def write_config(directory: Path, **overrides: Any) -> Path:
    """A config file under ``directory`` whose lakehouse and ledger live there too."""
    values: dict[str, Any] = {
        "lakehouse": directory / "lakehouse", "ledger": directory / "ledger", "q": 8,
        "commits": 1, "chunk": 1 << 20, "items": 2048, "commit_records": 16384,
        "segment_bytes": 256 << 20, "level": "warning", "outcomes": "summary", "extra": "",
        "risk": 'signatures = "none"', "socket": control_socket(directory), "settle": 40,
    }
    runs = overrides.pop("runs", RUNS)
    values.update(overrides)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "execd.toml"
    path.write_text(BASE_CONFIG.format(**values))
    write_registry(Path(values["lakehouse"]), runs)
    return path


def write_registry(lakehouse: Path, runs: Any = RUNS) -> None:
    """The lakehouse's audit registry (audit/runs.jsonl), naming ``runs``."""
    registry = lakehouse / "audit" / "runs.jsonl"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text("".join(json.dumps({"run_id": run}) + "\n" for run in runs))


def intent(n: int, **fields: Any) -> dict[str, Any]:
    """A valid intent with a stable id derived from ``n``."""
    body: dict[str, Any] = {
        "kind": "intent", "intent_id": f"00000000-0000-4000-8000-{n:012d}",
        "source_run": "run-1", "venue": "binance", "symbol": "BTC/USDT", "side": "buy",
        "quantity": "0.5",
    }
    body.update(fields)
    return body


def lines(*records: dict[str, Any] | str | bytes) -> bytes:
    """JSONL bytes: dicts are encoded, str and bytes go in as they are."""
    out = []
    for record in records:
        if isinstance(record, dict):
            out.append(json.dumps(record).encode())
        elif isinstance(record, str):
            out.append(record.encode())
        else:
            out.append(record)
    return b"\n".join(out) + b"\n"


def records(ledger: Path) -> list[dict[str, Any]]:
    """Every record of a ledger, bodies decoded.

    Only whole lines: a running daemon may be in the middle of writing the last one.
    """
    result = []
    for path in list_segments(ledger):
        for line in path.read_bytes().split(b"\n")[:-1]:
            record = record_decoder.decode(line)
            result.append({"seq": record.seq, "time": record.time, "kind": record.kind,
                           "body": msgspec.json.decode(record.body)})
    return result


def outcomes(ledger: Path) -> list[dict[str, Any]]:
    """The outcome bodies of a ledger, in order."""
    return [r["body"] for r in records(ledger) if r["kind"] == "outcome"]


def open_schedules(ledger: Path) -> set[str]:
    """Parents whose schedule record is on disk and their outcome is not."""
    opened, ended = set(), set()
    for record in records(ledger):
        if record["kind"] == "schedule":
            opened.add(record["body"]["intent_id"])
        elif record["kind"] == "outcome" and "children" in record["body"]:
            ended.add(record["body"]["intent_id"])
    return opened - ended


def ledger_bytes(ledger: Path) -> bytes:
    """All segments of a ledger, concatenated."""
    return b"".join(p.read_bytes() for p in list_segments(ledger))


async def replay(directory: Path, inputs: list[Path], **overrides: Any) -> Path:
    """Run ``execd replay`` in-process into ``directory/ledger``; return that path."""
    loaded = config.load(write_config(directory, **overrides))
    ledger = directory / "ledger"
    await Daemon(loaded, mode="replay", inputs=inputs, ledger_dir=ledger).run()
    return ledger


def drop(inbox: Path, name: str, data: bytes) -> Path:
    """Write a file into an inbox the way producers must: temp name, then rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    temp = inbox / f".{name}.tmp"
    temp.write_bytes(data)
    target = inbox / name
    os.replace(temp, target)
    return target


def start_daemon(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``execd run`` as a real process, logging to ``log_path``."""
    handle = open(log_path, "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen([*EXECD, "run", "--config", str(config_path)], stdout=handle,
                            stderr=subprocess.STDOUT, cwd=ROOT)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


def count_outcomes(ledger: Path) -> int:
    """Outcome records currently on disk (tolerates a torn last line)."""
    total = 0
    for path in list_segments(ledger):
        total += path.read_bytes().count(b'"kind":"outcome"')
    return total


def verify(ledger: Path) -> None:
    """``execd ledger verify`` on ``ledger`` must pass."""
    result = subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def ctl(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``execd ctl ARGS`` against the daemon of ``config_path``."""
    return subprocess.run([*EXECD, "ctl", *args, "--config", str(config_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
         timeout: float = 60) -> int:
    """Send ``sig`` (SIGTERM: a drain) to a daemon process; its exit status."""
    process.send_signal(sig)
    return process.wait(timeout=timeout)


def started(tmp_path: Path, **overrides: Any) -> tuple[Path, subprocess.Popen[bytes]]:
    """``execd run`` as a real process on a config under ``tmp_path``, once it listens."""
    path = write_config(tmp_path, **overrides)
    process = start_daemon(path, tmp_path / "daemon.log")
    sock = control_socket(tmp_path)
    wait_for(lambda: sock.exists() or process.poll() is not None)
    assert process.poll() is None, (tmp_path / "daemon.log").read_text()
    return path, process


def write_inputs(directory: Path, files: list[list[str]]) -> list[Path]:
    """Each of ``files`` (its lines) as ``directory/<n>.jsonl``, in order."""
    inputs = []
    for index, content in enumerate(files):
        path = directory / f"{index}.jsonl"
        path.write_bytes("\n".join(content).encode())
        inputs.append(path)
    return inputs


def damage_every_block(ledger: Path) -> None:
    """One flipped bit in every block of records of every id run (headers and meta
    intact, so each run opens: blocks are checked when read)."""
    for run in (ledger / INDEX).glob("run-*.ids"):
        data = bytearray(run.read_bytes())
        count = int.from_bytes(data[16:24])
        for block in range(-(-count // FENCE_EVERY)):
            data[BODY + block * FENCE_EVERY * KEY + 7] ^= 0x10
        run.write_bytes(bytes(data))
