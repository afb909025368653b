"""Times and durations people read, through the real ``execd`` as a process: a duration
in the config (``config check``, and ``ctl reload`` on a running daemon), and wall-clock
times in ``ledger tail``. (In process: tests/unit/config/test_durations.py and
tests/unit/cli/test_tail_times.py.)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from execd.config import schema as config
from execd.config.digest import outcome_settings_sha256
from execd.ledger.segments import list_segments
from tests.config_texts import GOOD
from tests.helpers import EXECD, ROOT, ctl, records, started, stop, verify
from tests.unit.cli.test_tail_times import SHOWN, live_ledger


def execd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False)


def test_config_check_names_a_bad_duration_in_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "execd.toml"
    path.write_text(GOOD.replace('ledger_dir = "var/g"\n',
                                 'ledger_dir = "var/g"\nsettle_ms = "fast"\n'))
    result = execd("config", "check", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"{path}: daemon.settle_ms: expected a duration from 0ms to 10m (an integer of "
        'milliseconds, or a number with a unit ms, s, m, h, d: "250ms", "1.5s"), found '
        "'fast'\n")
    path.write_text(GOOD.replace('ledger_dir = "var/g"\n',
                                 'ledger_dir = "var/g"\nsettle_ms = "1.5s"\n'))
    result = execd("config", "check", "--config", str(path))
    assert (result.returncode, result.stdout) == (0, f"ok: {path} (binance=paper)\n")


RISK = ('signatures = "none"\n\n[risk.limits]\nmax_order_notional = "{cap}"\nmax_orders = 100\n'
        "rate_window = {window}\n\n[clock]\nkind = \"wall\"\n")


def test_a_reload_sees_a_duration_as_its_integer(tmp_path: Path) -> None:
    """A window rewritten from nanoseconds to "1m" is no change (it needs a restart, so a
    change would be refused); the digest in the config record is the integers' digest."""
    path, process = started(tmp_path, risk=RISK.format(cap=1000, window=60_000_000_000))
    try:
        first = config.load(path).config
        path.write_text(path.read_text().replace("rate_window = 60000000000",
                                                 'rate_window = "1m"'))
        answer = ctl(path, "reload", "--actor", "ops", "--reason", "same window, in minutes")
        assert answer.returncode == 0 and "nothing changed" in answer.stdout, answer
        # The same file with a new cap: applied, and only the cap changed.
        path.write_text(path.read_text().replace('"1000"', '"200"'))
        answer = ctl(path, "reload", "--actor", "ops", "--reason", "cap down")
        assert answer.returncode == 0, answer.stderr
        change = next(r for r in records(tmp_path / "ledger") if r["kind"] == "config")["body"]
        assert change["changed"] == ["risk.limits.max_order_notional"]
        integers = tmp_path / "integers.toml"
        integers.write_text(path.read_text().replace('rate_window = "1m"',
                                                     "rate_window = 60000000000"))
        assert change["config_sha256"] == outcome_settings_sha256(config.load(integers).config)
        start = next(r for r in records(tmp_path / "ledger") if r["kind"] == "start")["body"]
        assert start["config_sha256"] == outcome_settings_sha256(first)
        # A window that does change is refused, as a pacing key always is.
        path.write_text(path.read_text().replace('"1m"', '"2m"'))
        answer = ctl(path, "reload", "--actor", "ops", "--reason", "longer window")
        assert answer.returncode == 1
        assert "risk.limits.rate_window: pacing is rebuilt from the ledger" in answer.stderr
    finally:
        assert stop(process) == 0
    verify(tmp_path / "ledger")


def test_ledger_tail_shows_wall_clock_times_as_iso_and_json_as_stored(tmp_path: Path) -> None:
    ledger = live_ledger(tmp_path / "ledger")
    shown = execd("ledger", "tail", "--ledger", str(ledger), "-n", "0")
    assert shown.returncode == 0, shown.stderr
    assert all(line.split(" ", 2)[1] == "t=7" for line in shown.stdout.splitlines())
    for iso in SHOWN:
        assert iso in shown.stdout
    assert not re.search(r"\d{19}", shown.stdout)
    stored = execd("ledger", "tail", "--ledger", str(ledger), "-n", "0", "--json")
    assert stored.stdout.encode() == b"".join(p.read_bytes() for p in list_segments(ledger))
