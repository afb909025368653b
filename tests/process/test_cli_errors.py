"""Ordinary trouble on the command line ends in a message and an exit status, never a
traceback: a reader that closes the pipe early, a missing input file, an OS error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.helpers import EXECD, ROOT, control_socket, start_daemon, wait_for, write_config


def closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``execd ARGS`` with stdout a pipe whose reader has already gone (as after `head -1`)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([*EXECD, *args], stdout=write, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, timeout=60)
    finally:
        os.close(write)


def execd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_output_into_a_closed_pipe_exits_1_without_a_word(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_for(lambda: control_socket(tmp_path).exists() or process.poll() is not None)
        assert process.poll() is None
        for args in (("ctl", "status"), ("ctl", "status", "--json"), ("ledger", "tail", "-n", "0"),
                     ("ledger", "verify"), ("config", "check")):
            result = closed_pipe(*args, "--config", str(config))
            assert (result.returncode, result.stderr) == (1, ""), args
        # The daemon answered those and is none the worse for it.
        status = execd("ctl", "status", "--json", "--config", str(config))
        assert json.loads(status.stdout)["state"] == "ACTIVE"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_sign_names_the_file_it_cannot_read_and_prints_nothing(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 32)
    good = tmp_path / "good.jsonl"
    good.write_text('{"kind":"intent","intent_id":"i"}\n')
    missing = tmp_path / "missing.jsonl"
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"kind":"intent","context":' + "[" * 5000 + "]" * 5000 + "}\n")
    for inputs, error in (
            ([good, missing], f"{missing}: expected a readable file, found No such file or "
                              "directory"),
            ([tmp_path], f"{tmp_path}: expected a readable file, found Is a directory"),
            ([deep], f"{deep}:1: JSON nested too deeply to sign")):
        result = execd("sign", "--key-file", str(key), *map(str, inputs))
        assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    signed = execd("sign", "--key-file", str(key), str(good))
    assert signed.returncode == 0 and len(json.loads(signed.stdout)["signature"]) == 64


def test_an_os_error_no_command_expected_is_one_line(tmp_path: Path) -> None:
    # A plain file where a plan ledger directory should be.
    where = tmp_path / "not-a-directory"
    where.write_text("")
    result = execd("plan", "list", "--ledger", str(where))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert str(where) in result.stderr


def test_ctl_refuses_a_timeout_that_is_not_a_positive_number(tmp_path: Path) -> None:
    sock = str(tmp_path / "none.sock")
    for value in ("-1", "0", "nan", "inf", "soon"):
        result = execd("ctl", "status", f"--timeout={value}", "--socket", sock)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert (f"argument --timeout: expected a positive number of seconds, found {value!r}"
                in result.stderr)
    nobody = execd("ctl", "status", "--timeout=0.5", "--socket", sock)
    assert nobody.returncode == 1 and "no daemon is listening" in nobody.stderr


def test_signing_a_target_file_that_is_not_one_object_says_so(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    for name, body, expected in (
            ("lines.json", b'{"a": 1}\n{"b": 2}\n', "lines.json: Extra data: line 2"),
            ("list.json", b"[1, 2]\n", "list.json: not a JSON object"),
            ("twice.json", b'{"portfolio_id": "p", "signature": "' + b"0" * 64 + b'"}',
             "twice.json: the target is signed already")):
        (tmp_path / name).write_bytes(body)
        result = execd("sign", "--key-file", str(key), str(tmp_path / name))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"{tmp_path / expected}"), result.stderr
