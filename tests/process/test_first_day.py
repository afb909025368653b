"""What a new operator noticed on the first day, against the real daemon."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.helpers import (
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    start_daemon,
    wait_for,
    write_config,
)


def test_status_time_survives_a_restart_and_bad_input_is_a_warning(tmp_path: Path) -> None:
    path = write_config(tmp_path, level="info", outcomes="each")
    log = tmp_path / "daemon.log"
    process = start_daemon(path, log)
    wait_for(lambda: ctl(path, "status").returncode == 0)
    assert ctl(path, "tick", "500", "--actor", "alice").returncode == 0
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(intent(1), "not json"))
    wait_for(lambda: count_outcomes(tmp_path / "ledger") == 2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    levels = {e["status"]: e["level"] for e in events if e["event"] == "outcome"}
    assert levels == {"FILLED": "info", "QUARANTINED": "warning"}

    process = start_daemon(path, log)
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
        status = json.loads(ctl(path, "status", "--json").stdout)
        assert status["logical_time"] == 500
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def test_a_missing_lakehouse_and_registry_are_said_at_start(tmp_path: Path) -> None:
    path = write_config(tmp_path, level="info", lakehouse=tmp_path / "nowhere")
    (tmp_path / "nowhere" / "audit" / "runs.jsonl").unlink()
    (tmp_path / "nowhere" / "audit").rmdir()
    (tmp_path / "nowhere").rmdir()
    log = tmp_path / "daemon.log"
    process = start_daemon(path, log)
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    warned = {json.loads(line)["event"] for line in log.read_text().splitlines()
              if '"level": "warning"' in line}
    assert {"lakehouse.created", "provenance.registry_missing"} <= warned


def test_a_sigterm_during_start_up_is_a_clean_stop(tmp_path: Path) -> None:
    """Loading a config with a ccxt venue imports ccxt (about 0.4 s): a SIGTERM then used
    to kill the process (-15) before the daemon's handler was in place."""
    import subprocess
    import time

    from tests.helpers import EXECD, ROOT
    from tests.live import write_live_config

    path = write_live_config(tmp_path, "http://127.0.0.1:9")
    codes = []
    for delay in (0.45, 0.6, 0.8):
        process = subprocess.Popen([*EXECD, "run", "--config", str(path)], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        codes.append(process.wait(timeout=60))
    assert codes == [0, 0, 0]
