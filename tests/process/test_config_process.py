"""Bad config stops ``execd run`` and ``execd config check`` as real processes: exit 2, one
line per problem on stderr (the in-process half is tests/unit/config/test_config.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from execd.config import schema as config
from tests.config_texts import GOOD
from tests.helpers import EXECD, ROOT


@pytest.mark.parametrize("command", [["run"], ["config", "check"]])
def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD + "[queues]\nrouter = 0\nledger = 'x'\n")
    result = subprocess.run([*EXECD, *command, "--config", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: queues.router: expected an integer >= 1, found int 0",
        f"{path}: queues.ledger: expected an integer >= 1, found 'x'",
    ]


def test_an_unreadable_signing_key_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "keyed.toml"
    missing = tmp_path / "no-such-key"
    path.write_text(GOOD.replace("var/l", str(tmp_path / "l")).replace("var/g", str(tmp_path / "g"))
                    + f"[control]\nsocket = '{tmp_path / 'ctl.sock'}'\n"
                    + f"[risk]\nsignatures = 'all'\nkey_file = '{missing}'\n")
    run = subprocess.run([*EXECD, "run", "--config", str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"{path}: risk.key_file: expected a readable key file, found {missing}" in run.stderr
    short = tmp_path / "short-key"
    short.write_bytes(b"tiny\n")
    path.write_text(path.read_text().replace(str(missing), str(short)))
    run = subprocess.run([*EXECD, "run", "--config", str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 2
    assert "risk.key_file: expected a key of at least 16 bytes, found 4 bytes" in run.stderr


def make_fifo(path: Path) -> str:
    os.mkfifo(path)
    return "(file): expected a regular TOML file, found a FIFO"


def make_huge(path: Path) -> str:
    path.write_text(GOOD + "#" * config.MAX_CONFIG_BYTES + "\n")
    size = path.stat().st_size
    return (f"(file): expected a TOML file of at most {config.MAX_CONFIG_BYTES} bytes, "
            f"found {size} bytes")


def make_deep(path: Path) -> str:
    path.write_text(GOOD + "[risk]\ncrisis_regimes = " + "[" * 5000 + "]" * 5000 + "\n")
    return "(syntax): expected valid TOML, found arrays or tables nested too deep to read"


@pytest.mark.parametrize("make", [make_fifo, make_huge, make_deep], ids=["fifo", "huge", "deep"])
@pytest.mark.parametrize("command", [["run"], ["config", "check"]])
def test_a_config_that_is_no_regular_small_toml_file_exits_2(
        tmp_path: Path, command: list[str], make: Any) -> None:
    """A FIFO would block the start for good; deep nesting was a RecursionError traceback."""
    path = tmp_path / "execd.toml"
    line = make(path)
    result = subprocess.run([*EXECD, *command, "--config", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"{path}: {line}"]


def test_a_signing_key_that_is_a_fifo_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "keyed.toml"
    key = tmp_path / "key"
    os.mkfifo(key)
    path.write_text(GOOD.replace("var/l", str(tmp_path / "l")).replace("var/g", str(tmp_path / "g"))
                    + f"[control]\nsocket = '{tmp_path / 'ctl.sock'}'\n"
                    + f"[risk]\nsignatures = 'all'\nkey_file = '{key}'\n")
    run = subprocess.run([*EXECD, "run", "--config", str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"{path}: risk.key_file: expected a regular key file, found {key}: a FIFO" in (
        run.stderr)
