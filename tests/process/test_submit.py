"""``execd submit``: the inbox protocol done for the producer, against the real daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

from execd.sentinel.signatures import verify
from tests.helpers import (
    EXECD,
    ROOT,
    count_outcomes,
    ctl,
    intent,
    lines,
    outcomes,
    start_daemon,
    wait_for,
    write_config,
)


def submit(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, "submit", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_submit_checks_signs_and_hands_over_atomically(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    path = write_config(tmp_path, risk=f'signatures = "all"\nkey_file = "{key}"')
    inbox = tmp_path / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    source = tmp_path / "batch.jsonl"
    source.write_bytes(lines(intent(1), {"kind": "tick", "time": 5}, intent(2)))

    # A bad line is caught before anything reaches the inbox.
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(lines(intent(3), '{"kind":"intent","venue":"binance"}'))
    refused = submit(path, str(bad))
    assert refused.returncode == 1 and "bad.jsonl: line 2:" in refused.stderr
    assert not any(inbox.iterdir())

    done = submit(path, str(source), "--key-file", str(key))
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    assert name.startswith("batch-") and name.endswith(".jsonl")
    assert sorted(p.name for p in inbox.iterdir()) == [name]  # no temporary left behind
    for line in (inbox / name).read_bytes().splitlines():
        if b'"intent"' in line:
            import json

            signature = json.loads(line)["signature"]
            assert verify(b"0123456789abcdef0123456789abcdef", line, signature)

    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: count_outcomes(tmp_path / "ledger") == 2)
        # The same content again: the same name, already consumed, refused up front.
        wait_for(lambda: (tmp_path / "lakehouse" / "archive" / name).exists())
        again = submit(path, str(source), "--key-file", str(key))
        assert again.returncode == 1 and "INPUT_FILE_REPEATED" in again.stderr
        assert ctl(path, "status").returncode == 0
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    assert [o["status"] for o in outcomes(tmp_path / "ledger")] == ["FILLED", "FILLED"]
    # Not a regular file: refused with the reason.
    fifo = tmp_path / "pipe.jsonl"
    import os

    os.mkfifo(fifo)
    piped = submit(path, str(fifo))
    assert piped.returncode == 1 and "found a FIFO" in piped.stderr


def test_signing_keeps_every_byte_and_checks_what_the_daemon_would_refuse(
        tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    path = write_config(tmp_path)
    inbox = tmp_path / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    exact = (b'{"kind":"intent","intent_id":"00000000-0000-4000-8000-000000000001",'
             b'"source_run":"run-1","venue":"binance","symbol":"BTC/USDT","side":"buy",'
             b'"quantity":0.12345678901234567890123}')
    source = tmp_path / "exact.jsonl"
    source.write_bytes(exact + b"\n")
    done = submit(path, str(source), "--key-file", str(key))
    assert done.returncode == 0, done.stderr
    [line] = (inbox / done.stdout.strip()).read_bytes().splitlines()
    assert line.startswith(exact[:-1] + b',"signature":"')  # the number is untouched
    import json

    assert verify(key.read_bytes(), line, json.loads(line)["signature"])
    for body, expected in ((b"\n \n", "holds no records"),
                           (b'{"kind":"tick","time":9}\n{"kind":"tick","time":3}\n',
                            "INPUT_CLOCK_REGRESSION")):
        source.write_bytes(body)
        refused = submit(path, str(source))
        assert refused.returncode == 1 and expected in refused.stderr, refused.stderr
    source.write_bytes(lines(intent(2)))
    huge = tmp_path / "huge.jsonl"
    huge.write_bytes(b'{"kind":"intent","source_run":"run-1","venue":"binance",'
                     b'"symbol":"BTC/USDT","side":"buy","quantity":1e400}\n')
    odd = submit(path, str(huge), "--key-file", str(key), "--no-check")
    assert odd.returncode == 0, odd.stderr  # signed as written; the daemon judges the number
